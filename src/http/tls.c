/*
 * http/tls — OpenSSL on the loop through a BIO of our own.
 *
 * Why not OpenSSL's memory BIOs: a BIO_s_mem keeps the capacity of the
 * largest thing that went through it, per connection and per direction, and
 * copies every byte in and out once more.  Our BIO has no storage of its
 * own: reading, it hands OpenSSL the bytes of the socket read being
 * processed (c->in, which tls_conn_input sets and OpenSSL consumes entirely
 * before it asks for more: a partial record is kept in OpenSSL's own
 * buffer); writing, it appends to c->out, whose bytes tls_conn_take gives
 * away to the socket write without a copy.  With SSL_MODE_RELEASE_BUFFERS
 * an idle connection then holds only its SSL object (a few KB).
 *
 * Plaintext written before the handshake completes (an answer to nothing
 * yet: cannot happen for HTTP, but the server's write path must not care)
 * waits in c->early.  Renegotiation is off (a client could make us redo the
 * expensive half of a handshake at will); TLS 1.3 key updates work.  The
 * server-side session cache is off: resumption uses stateless tickets,
 * whose keys belong to the SSL_CTX, so a reload also retires them.
 */
#include "http/tls.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct tls_ctx {
    SSL_CTX *ctx;
    char *cert, *key;
    int key_exposed;
};

struct tls_conn {
    SSL *ssl;
    const char *in;             /* ciphertext being consumed (tls_conn_input) */
    size_t in_len;
    buf_t out;                  /* ciphertext waiting for tls_conn_take */
    buf_t early;                /* plaintext written before the handshake finished */
    unsigned established : 1, failed : 1, closed : 1, plain_http : 1;
};

/* ---- the BIO --------------------------------------------------------- */

static BIO_METHOD *g_bio_method;

static int bio_read(BIO *b, char *dst, size_t n, size_t *got)
{
    tls_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!c->in_len) {
        BIO_set_retry_read(b);
        *got = 0;
        return 0;
    }
    if (n > c->in_len) n = c->in_len;
    memcpy(dst, c->in, n);
    c->in += n;
    c->in_len -= n;
    *got = n;
    return 1;
}

static int bio_write(BIO *b, const char *src, size_t n, size_t *put)
{
    tls_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    buf_append(&c->out, src, n);
    *put = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    tls_conn_t *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return c ? (long)c->in_len : 0;
    case BIO_CTRL_WPENDING: return 0;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

static BIO_METHOD *bio_method(void)
{
    if (!g_bio_method) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nbhub-conn");
        NB_ASSERT(m);
        BIO_meth_set_read_ex(m, bio_read);
        BIO_meth_set_write_ex(m, bio_write);
        BIO_meth_set_ctrl(m, bio_ctrl);
        BIO_meth_set_create(m, bio_create);
        BIO_meth_set_destroy(m, bio_destroy);
        g_bio_method = m;
    }
    return g_bio_method;
}

/* ---- contexts -------------------------------------------------------- */

/* The reason of OpenSSL's first queued error (the queue is cleared). */
static const char *ossl_reason(char *buf, size_t n)
{
    /* The first error is the root cause ("no start line"); later ones say
     * which function gave up. */
    unsigned long first = ERR_get_error();
    while (ERR_get_error()) {}
    if (!first) return "unknown error";
    const char *r = ERR_reason_error_string(first);
    if (r) snprintf(buf, n, "%s", r);
    else ERR_error_string_n(first, buf, n);
    return buf;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    (void)s;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* A client that offers only h2 hears no ALPN and may speak HTTP/1.1
     * (what nginx does without http2). */
    return SSL_TLSEXT_ERR_NOACK;
}

/* Can the file be opened for reading?  OpenSSL's own message for a missing
 * file is "system lib". */
static int readable(const char *what, const char *path, nb_err_t *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return err_set(err, -errno, "%s %s: %s", what, path, strerror(errno));
    fclose(f);
    return 0;
}

static int key_exposed(const char *key)
{
    struct stat st;
    return stat(key, &st) == 0 && (st.st_mode & S_IROTH);
}

static int ctx_build(const char *cert, const char *key, SSL_CTX **out, nb_err_t *err)
{
    char why[256];
    int rc = readable("certificate", cert, err);
    if (rc < 0) return rc;
    if ((rc = readable("key", key, err)) < 0) return rc;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return err_set(err, -ENOMEM, "TLS: %s", ossl_reason(why, sizeof why));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        rc = err_set(err, -EINVAL, "certificate %s: not a usable PEM certificate chain (%s)", cert,
                     ossl_reason(why, sizeof why));
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        const char *r = ossl_reason(why, sizeof why);
        /* OpenSSL checks the pair while loading the key, too. */
        if (strstr(r, "mismatch")) rc = err_set(err, -EINVAL, "key %s does not match the certificate %s", key, cert);
        else rc = err_set(err, -EINVAL, "key %s: not a usable PEM private key (%s)", key, r);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        rc = err_set(err, -EINVAL, "key %s does not match the certificate %s", key, cert);
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int tls_ctx_new(const char *cert, const char *key, tls_ctx_t **out, nb_err_t *err)
{
    SSL_CTX *ctx;
    int rc = ctx_build(cert, key, &ctx, err);
    if (rc < 0) return rc;
    tls_ctx_t *t = xcalloc(1, sizeof *t);
    t->ctx = ctx;
    t->cert = xstrdup(cert);
    t->key = xstrdup(key);
    t->key_exposed = key_exposed(key);
    *out = t;
    return 0;
}

int tls_ctx_reload(tls_ctx_t *t, nb_err_t *err)
{
    SSL_CTX *ctx;
    int rc = ctx_build(t->cert, t->key, &ctx, err);
    if (rc < 0) return rc;
    /* Connections made with the old one hold their own reference. */
    SSL_CTX_free(t->ctx);
    t->ctx = ctx;
    t->key_exposed = key_exposed(t->key);
    return 0;
}

void tls_ctx_describe(const tls_ctx_t *t, char *out, size_t n)
{
    X509 *x = SSL_CTX_get0_certificate(t->ctx);
    char subject[256] = "?", serial[80] = "?", after[32] = "?";
    if (x) {
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex) snprintf(serial, sizeof serial, "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
            strftime(after, sizeof after, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(out, n, "subject=\"%s\" serial=%s not_after=%s", subject, serial, after);
}

long long tls_ctx_not_after(const tls_ctx_t *t)
{
    X509 *x = SSL_CTX_get0_certificate(t->ctx);
    struct tm tm;
    if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) return 0;
    return (long long)timegm(&tm);
}

int tls_ctx_key_exposed(const tls_ctx_t *t) { return t->key_exposed; }

void tls_ctx_free(tls_ctx_t *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    free(t->cert);
    free(t->key);
    free(t);
}

/* ---- connections ----------------------------------------------------- */

tls_conn_t *tls_conn_new(tls_ctx_t *t)
{
    tls_conn_t *c = xcalloc(1, sizeof *c);
    c->ssl = SSL_new(t->ctx);
    NB_ASSERT(c->ssl);
    BIO *b = BIO_new(bio_method());
    NB_ASSERT(b);
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);      /* one reference, owned by the SSL */
    SSL_set_accept_state(c->ssl);
    return c;
}

void tls_conn_free(tls_conn_t *c)
{
    if (!c) return;
    SSL_free(c->ssl);
    buf_free(&c->out);
    buf_free(&c->early);
    free(c);
}

static void conn_encrypt(tls_conn_t *c, const void *data, size_t len)
{
    /* Room for the records at once (at most 32 bytes of framing and tag
     * per 16 KiB record), rather than a buffer doubling its way up. */
    buf_reserve(&c->out, len + (len / 16384 + 1) * 32);
    while (len) {
        size_t put = 0;
        if (SSL_write_ex(c->ssl, data, len, &put) != 1) {
            /* Our BIO never refuses: only a broken connection gets here. */
            ERR_clear_error();
            c->failed = 1;
            return;
        }
        data = (const char *)data + put;
        len -= put;
    }
}

static int conn_fail(tls_conn_t *c, int ssl_error, nb_err_t *err)
{
    char why[256];
    c->failed = 1;
    c->early.len = 0;
    unsigned long e = ERR_peek_error();
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST || ERR_GET_REASON(e) == SSL_R_HTTPS_PROXY_REQUEST))
        c->plain_http = 1;
    if (ssl_error == SSL_ERROR_SSL) return err_set(err, -EPROTO, "%s", ossl_reason(why, sizeof why));
    ERR_clear_error();
    return err_set(err, -EPROTO, "TLS error %d", ssl_error);
}

int tls_conn_input(tls_conn_t *c, const void *data, size_t len, tls_plain_fn fn, void *ud, nb_err_t *err)
{
    if (c->failed) return -EPROTO;
    c->in = data;
    c->in_len = len;
    int rc = 0;
    char plain[16384];              /* one TLS record's worth */
    ERR_clear_error();
    for (;;) {
        if (!c->established) {
            int r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e != SSL_ERROR_WANT_READ) rc = conn_fail(c, e, err);
                break;
            }
            c->established = 1;
            if (c->early.len && !c->closed) conn_encrypt(c, c->early.data, c->early.len);
            buf_free(&c->early);
        }
        size_t got = 0;
        if (SSL_read_ex(c->ssl, plain, sizeof plain, &got) == 1) {
            if (fn(ud, plain, got)) break;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            rc = TLS_EOF;
            break;
        }
        rc = conn_fail(c, e, err);
        break;
    }
    c->in = NULL;
    c->in_len = 0;
    return rc;
}

void tls_conn_write(tls_conn_t *c, const void *data, size_t len)
{
    if (c->failed || c->closed || !len) return;
    if (!c->established) {
        buf_append(&c->early, data, len);
        return;
    }
    conn_encrypt(c, data, len);
}

void tls_conn_close_notify(tls_conn_t *c)
{
    if (c->closed) return;
    c->closed = 1;
    if (c->failed || !c->established) return;
    /* Our half of the shutdown; the peer's close_notify is not waited for
     * (RFC 8446 6.1 lets the closing side go). */
    if (SSL_shutdown(c->ssl) < 0) ERR_clear_error();
}

size_t tls_conn_take(tls_conn_t *c, char **data)
{
    size_t n = c->out.len;
    *data = n ? buf_detach(&c->out) : NULL;
    c->out = (buf_t)BUF_INIT;
    return n;
}

int tls_conn_established(const tls_conn_t *c) { return c->established && !c->failed; }
int tls_conn_failed(const tls_conn_t *c) { return c->failed; }
int tls_conn_plain_http(const tls_conn_t *c) { return c->plain_http; }
const char *tls_conn_version(const tls_conn_t *c) { return SSL_get_version(c->ssl); }

const char *tls_conn_alpn(const tls_conn_t *c, char *out, size_t n)
{
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    snprintf(out, n, "%.*s", (int)len, p ? (const char *)p : "");
    return out;
}
