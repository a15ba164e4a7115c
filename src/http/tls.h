/*
 * http/tls — TLS for the HTTP server's connections (OpenSSL), as bytes in
 * and bytes out: the socket stays libuv's, OpenSSL never sees it.
 *
 *   tls_ctx_t   a listener's certificate chain and key (an SSL_CTX): TLS 1.2
 *               and 1.3 only, OpenSSL's server cipher defaults, ALPN
 *               "http/1.1".  tls_ctx_reload builds a new SSL_CTX from the
 *               same files for the connections accepted from then on; an
 *               SSL already made holds its SSL_CTX by reference, so open
 *               connections keep the certificate they were made with.
 *   tls_conn_t  one connection's TLS state.  Ciphertext read from the
 *               socket goes in with tls_conn_input, which decrypts all it
 *               can and hands the plaintext to a callback before returning
 *               (no decrypted byte is left inside OpenSSL, so a caller that
 *               stops reading the socket has really stopped reading);
 *               plaintext to send goes in with tls_conn_write; the
 *               ciphertext to put on the socket (handshake, records,
 *               alerts) is taken with tls_conn_take.
 *
 * Ownership: tls_ctx_new returns a context owned by the caller, which
 * must outlive every tls_conn made from it (tls_conn_new references the
 * SSL_CTX current at that moment, not the tls_ctx_t's later ones).  A
 * tls_conn_t is owned by its connection.  Not thread-safe: one loop.
 */
#ifndef NBHUB_HTTP_TLS_H
#define NBHUB_HTTP_TLS_H

#include <stddef.h>

#include "util/err.h"

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

/* Load a PEM certificate chain (leaf first) and its PEM private key.
 * Errors name the file at fault: unreadable, not PEM, key not matching. */
int  tls_ctx_new(const char *cert, const char *key, tls_ctx_t **out, nb_err_t *err);
/* Read the files again; on success new connections use the new pair, on
 * failure nothing changes (err says why). */
int  tls_ctx_reload(tls_ctx_t *t, nb_err_t *err);
/* "subject=CN=host serial=0A1B not_after=2027-01-01T00:00:00Z" of the
 * current certificate, for logs. */
void tls_ctx_describe(const tls_ctx_t *t, char *out, size_t n);
/* The current certificate's notAfter (Unix seconds; 0 if unreadable). */
long long tls_ctx_not_after(const tls_ctx_t *t);
/* 1 if the key file, when last loaded, was readable by every local user
 * (mode o+r), which under isolation: system includes users' code. */
int  tls_ctx_key_exposed(const tls_ctx_t *t);
void tls_ctx_free(tls_ctx_t *t);

/* Plaintext decrypted by tls_conn_input; return nonzero to stop there (the
 * connection is closing; the rest of the input is dropped). */
typedef int (*tls_plain_fn)(void *ud, const char *data, size_t len);

enum { TLS_EOF = 1 };

tls_conn_t *tls_conn_new(tls_ctx_t *t);
void        tls_conn_free(tls_conn_t *c);
/* Ciphertext from the peer.  0; TLS_EOF once the peer sent close_notify;
 * -EPROTO on a TLS failure (bad handshake, plaintext, bad record), after
 * which the connection is failed: nothing more is decrypted or encrypted,
 * and tls_conn_take gives only the alert OpenSSL wrote, if any. */
int  tls_conn_input(tls_conn_t *c, const void *data, size_t len, tls_plain_fn fn, void *ud,
                    nb_err_t *err);
/* Encrypt plaintext for the peer.  Before the handshake is complete it is
 * held and encrypted when it completes.  Ignored once failed or closed. */
void tls_conn_write(tls_conn_t *c, const void *data, size_t len);
/* Queue a close_notify alert (once); later writes are ignored. */
void tls_conn_close_notify(tls_conn_t *c);
/* The ciphertext waiting to be sent: *data (malloc'd, the caller's) and
 * *len, or 0 with *data NULL when there is none. */
size_t tls_conn_take(tls_conn_t *c, char **data);
int  tls_conn_established(const tls_conn_t *c);
int  tls_conn_failed(const tls_conn_t *c);
/* The failure was a plaintext HTTP request sent to the TLS port. */
int  tls_conn_plain_http(const tls_conn_t *c);
/* The negotiated protocol version ("TLSv1.3") and ALPN ("http/1.1" or ""). */
const char *tls_conn_version(const tls_conn_t *c);
const char *tls_conn_alpn(const tls_conn_t *c, char *out, size_t n);

#endif
