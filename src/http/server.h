/*
 * http/server — the HTTP/1.1 server nbhub serve sits on: libuv for sockets
 * and timers, http-parser (nodejs/http-parser 2.9, Debian's
 * libhttp-parser-dev) for the byte-level grammar.  One loop thread; nothing
 * here is thread-safe.
 *
 * A connection parses ahead (pipelining) but hands requests to the handler
 * one at a time, in order: the next request is dispatched only when the
 * previous one has been answered.  Responses are therefore written in
 * request order without any reordering buffer, and a POST is never
 * overtaken by the GET the client sent after it.
 *
 * Bodies are read only when wanted.  A request that announces a body
 * (Content-Length > 0 or chunked) stops the parser at the end of its head.
 * Once it is first in its connection's queue the gate (if one is set) sees
 * the head: it may refuse (the answer goes out, the body is never read and
 * the connection closes), or let the body in, maybe under a lower limit
 * (anonymous requests).  Every body is charged to a server-wide budget
 * (body_budget, 503 + Retry-After beyond it) until its request is freed,
 * and must keep arriving: no progress for body_timeout_ms, or less than
 * min_body_rate * body_grace_ms bytes in any window of body_grace_ms
 * (consecutive windows from when the body was first wanted), is a 408.
 *
 * Ownership of a request (http_req_t):
 *   - The server owns it until it calls the handler.  From then on the
 *     handler owns it until it answers with exactly one of http_respond*,
 *     http_stream_end (after http_stream_begin) or http_sse_start (sse.h,
 *     which takes it over).  The answer call frees the request: do not touch
 *     it afterwards.  Answering may happen later, from any loop callback.
 *   - If the client goes away first, the on_abort callback (if any) runs,
 *     from a libuv close callback, never from inside one of our calls.  The
 *     request stays valid and must still be answered; that answer writes
 *     nothing and only frees it (http_respond returns -ECONNRESET).
 *   - Every string a request hands out (path, headers, params, ...) lives in
 *     the request's arena and dies with it.  http_req_alloc/http_req_strdup
 *     give handlers memory with the same lifetime.
 *
 * Responses always carry Date, Server: nbhub, X-Content-Type-Options:
 * nosniff and Referrer-Policy: no-referrer, plus the server-wide
 * Content-Security-Policy if one was set.  A header set with
 * http_set_header replaces the default of the same name.  Framing headers
 * (Content-Length, Transfer-Encoding, Connection) belong to the server.
 *
 * The server itself is freed with http_server_free, only after the callback
 * of http_server_stop has run (libuv rule: memory behind a handle is freed
 * only after its close callback).
 */
#ifndef NBHUB_HTTP_SERVER_H
#define NBHUB_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <uv.h>
#include <jansson.h>

#include "http/tls.h"
#include "util/buf.h"
#include "util/err.h"

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;
typedef struct http_conn http_conn_t;

/* Every limit and timeout; http_limits_default fills the defaults shown. */
struct http_limits {
    size_t   max_header_bytes;  /* request line + header fields/values: 16 KiB -> 431 */
    size_t   max_headers;       /* 100 -> 431 */
    size_t   max_body;          /* 8 MiB -> 413 (from Content-Length, before reading); a gate may lower it per request */
    size_t   body_budget;       /* 64 MiB of request bodies buffered at once, all connections: beyond -> 503; 0 = none;
                                 * bodies a gate held below max_body (anonymous) get a quarter of it */
    size_t   min_body_rate;     /* 1 KiB/s: a body slower than that over a window of body_grace_ms -> 408; 0 = off */
    uint64_t body_grace_ms;     /* 10 s: the rate's window (the first one starts with the body) */
    size_t   max_url;           /* 8 KiB -> 414 */
    size_t   max_connections;   /* 1024; beyond: accept, 503, close */
    size_t   max_pipeline;      /* 16 parsed requests waiting: stop reading until answered */
    size_t   max_stream_queue;  /* 1 MiB unsent on an SSE stream: drop that client */
    uint64_t head_timeout_ms;   /* 10 s for the whole request head (and a new connection's first byte) */
    uint64_t idle_timeout_ms;   /* 30 s idle keep-alive connection (idle once its last answer has left) */
    uint64_t body_timeout_ms;   /* 10 s without body progress; also the send timeout: an answer still
                                 * queued (before idleness, or a close) the client takes none of */
    uint64_t linger_ms;         /* 2 s read-and-discard after our FIN so the client sees our answer, not a RST */
    uint64_t stop_timeout_ms;   /* 30 s: graceful stop then closes whatever is left */
    uint64_t sse_keepalive_ms;  /* 15 s between ": keep-alive" comments */
    size_t   stream_body_max;   /* 0 = none: limit of a streamed (proxied) request body -> 413 */
};

void http_limits_default(struct http_limits *l);

/* A request handler (also the router's handler type). */
/* The gate (http_server_set_gate): runs on a request that has a body once
 * its head is complete and it is first in its connection's queue, before a
 * byte of the body is read.  Return 0 to read the body (after
 * http_req_set_body_max, maybe); or answer the request synchronously (it is
 * consumed, and the connection closes after the answer, its body unread)
 * and return 1. */
typedef int (*http_gate_fn)(http_req_t *req, void *ud);
typedef void (*http_handler_fn)(http_req_t *req, void *ud);
/* Called once the client of a dispatched, unanswered request is gone. */
typedef void (*http_abort_fn)(http_req_t *req, void *ud);
typedef void (*http_stop_fn)(http_server_t *srv, void *ud);
/* Periodic callback on a streaming response (SSE keep-alives). */
typedef void (*http_tick_fn)(http_req_t *req, void *ud);

/* ---- server ---------------------------------------------------------- */

/* A server on loop; lim NULL = defaults (copied).  handler gets every
 * request with ud.  Returns a server owned by the caller. */
http_server_t *http_server_new(uv_loop_t *loop, const struct http_limits *lim,
                               http_handler_fn handler, void *ud);
/* Listen on "127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT" or
 * "unix:/path" (mode 0660; a stale socket file is replaced).  Port 0 picks
 * an ephemeral port (http_server_port).  May be called several times. */
int  http_server_listen(http_server_t *srv, const char *addr, nb_err_t *err);
/* The same, speaking TLS with tls's certificate (NULL: plain).  tls is not
 * owned and must outlive the server; tls_ctx_reload on it applies to the
 * connections accepted afterwards. */
int  http_server_listen_tls(http_server_t *srv, const char *addr, tls_ctx_t *tls, nb_err_t *err);
/* The bound port of the first TCP listener, or -1. */
int  http_server_port(const http_server_t *srv);
/* The bound port of the first TCP listener without TLS, or -1. */
int  http_server_plain_port(const http_server_t *srv);
/* Set the gate (NULL = none: every body is read up to max_body). */
void http_server_set_gate(http_server_t *srv, http_gate_fn gate, void *ud);
/* Bytes of request bodies held now (charged against body_budget). */
size_t http_server_body_bytes(const http_server_t *srv);
/* Content-Security-Policy sent on every response (copied; NULL = none). */
int  http_server_set_csp(http_server_t *srv, const char *csp);
const struct http_limits *http_server_limits(const http_server_t *srv);
/* Number of open connections (tests, metrics). */
size_t http_server_connections(const http_server_t *srv);
/* Graceful stop: stop accepting, close idle connections and endless
 * streams (SSE), let dispatched requests finish (their responses say
 * Connection: close), force-close what is left after stop_timeout_ms.
 * cb runs once every handle is closed; it may call http_server_free. */
void http_server_stop(http_server_t *srv, http_stop_fn cb, void *ud);
void http_server_free(http_server_t *srv);

/* ---- request --------------------------------------------------------- */

const char *http_req_method(const http_req_t *req);     /* "GET" */
int         http_req_method_id(const http_req_t *req);  /* enum http_method */
const char *http_req_target(const http_req_t *req);     /* request-target as sent */
const char *http_req_raw_path(const http_req_t *req);   /* path, still percent-encoded */
const char *http_req_path(const http_req_t *req);       /* percent-decoded path */
const char *http_req_query(const http_req_t *req);      /* raw query without '?', "" if none */
const char *http_req_peer(const http_req_t *req);       /* "127.0.0.1:5342", "[::1]:5342", "unix" */
/* The body, NUL-terminated (len may be NULL). */
const char *http_req_body(const http_req_t *req, size_t *len);
/* From the gate only: this request's body may not exceed max (nor the
 * server's max_body): a larger Content-Length is answered 413 unread.  A
 * max below max_body also puts the body in the quarter of body_budget that
 * such requests share. */
void        http_req_set_body_max(http_req_t *req, size_t max);
/* HTTP minor version (0 or 1). */
int         http_req_minor(const http_req_t *req);
/* 1 if the request came over TLS (Secure cookies, X-Forwarded-Proto). */
int         http_req_tls(const http_req_t *req);
/* The server's limits, or NULL once the client is gone. */
const struct http_limits *http_req_limits(const http_req_t *req);

/* First query parameter called name (percent-decoded, '+' is a space), or NULL. */
const char *http_query(const http_req_t *req, const char *name);
/* The i-th query parameter; 0 or -ENOENT past the end. */
int         http_query_at(const http_req_t *req, size_t i, const char **name, const char **value);
/* First header called name (case-insensitive), or NULL. */
const char *http_header(const http_req_t *req, const char *name);
/* The nth (0-based) header called name: repeated headers are all kept. */
const char *http_header_nth(const http_req_t *req, const char *name, size_t nth);
int         http_header_at(const http_req_t *req, size_t i, const char **name, const char **value);
/* Cookie value by name from the Cookie header(s), surrounding quotes removed. */
const char *http_cookie(http_req_t *req, const char *name);
/* Path parameter set by the router (":name" or "*rest"), decoded, or NULL. */
const char *http_param(const http_req_t *req, const char *name);
/* The flags of the matched route (router.h), 0 without a router. */
unsigned    http_req_route_flags(const http_req_t *req);

void *http_req_user(const http_req_t *req);
void  http_req_set_user(http_req_t *req, void *user);
/* Memory that lives exactly as long as the request. */
void *http_req_alloc(http_req_t *req, size_t n);
char *http_req_strdup(http_req_t *req, const char *s);

/* Ask to be told when the client disconnects before the answer. */
void  http_req_on_abort(http_req_t *req, http_abort_fn fn, void *ud);
/* 1 once the client is gone (answers then only free the request). */
int   http_req_aborted(const http_req_t *req);

/* ---- response -------------------------------------------------------- */

/* Add a response header.  -EINVAL (and nothing set) if the name is not an
 * RFC 7230 token, the value holds CR, LF, NUL or another control character
 * (header injection), or the name is a framing header. */
int http_set_header(http_req_t *req, const char *name, const char *value);

/* Answer with a body (copied).  Consumes req.  HEAD gets no body; 204/304
 * no body and no Content-Length.  0, or -ECONNRESET if the client had gone. */
int http_respond(http_req_t *req, int status, const char *content_type,
                 const void *body, size_t len);
/* The same, taking ownership of a malloc'd body (no copy). */
int http_respond_take(http_req_t *req, int status, const char *content_type,
                      char *body, size_t len);
/* Compact JSON.  Steals the reference to j (NULL -> 500). */
int http_respond_json(http_req_t *req, int status, json_t *j);
/* {"error": {"code": code, "message": printf(fmt, ...)}} */
int http_respond_error(http_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Streaming response: chunked on HTTP/1.1, close-delimited on HTTP/1.0.
 * Writes return -ECONNRESET once the client is gone; http_stream_end
 * consumes req in every case. */
int    http_stream_begin(http_req_t *req, int status, const char *content_type);
int    http_stream_write(http_req_t *req, const void *data, size_t len);
int    http_stream_end(http_req_t *req);
/* Bytes accepted but not yet handed to the kernel (back-pressure). */
size_t http_stream_queued(const http_req_t *req);
/* Close the client's connection now; on_abort follows from the loop. */
void   http_stream_drop(http_req_t *req);
/* Call fn every every_ms while the stream is open (uses the connection's timer). */
int    http_stream_tick(http_req_t *req, uint64_t every_ms, http_tick_fn fn, void *ud);
/* The stream never ends by itself (SSE): a graceful stop closes it. */
void   http_stream_set_endless(http_req_t *req);

/* ---- relaying (http/proxy) ------------------------------------------
 *
 * A handler that relays another server's answer (http/proxy) needs what the
 * calls above hide: the request body as it arrives instead of buffered,
 * the response head and framing written as it wants them, and after a 101
 * the connection's raw bytes both ways.  Every byte still goes through the
 * connection's one write path and one read path, so a transport under them
 * (TLS) sees all of it.
 *
 * Streamed request bodies.  From the gate, http_req_set_body_stream marks a
 * request whose body will not be buffered (nor held to max_body: to
 * stream_body_max, none by default; nor charged to body_budget).  Its
 * handler is then dispatched as soon as the gate let it in, before a byte
 * of the body is read, and calls http_req_read_start when it can take the
 * body: fn gets each piece as it is parsed (de-chunked), then (NULL, 0) once
 * the body is complete.  The body timeouts (body_timeout_ms, min_body_rate)
 * apply while the handler reads and not while it paused reading.
 *
 * Raw answers.  http_raw_begin starts an answer whose bytes the handler
 * writes itself with http_raw_write (status line, headers, framing: none of
 * the server's defaults are added); http_raw_end ends it (consumes req).
 * http_stream_queued tells the bytes not yet sent; http_raw_on_drain asks
 * to be called back when they fall to low or below.
 *
 * Upgrades.  After writing a 101, http_raw_upgrade turns the connection
 * into a byte pipe: the read fn gets every byte the client sends (also
 * those it sent right after the request head), and (NULL, 0) at its EOF;
 * http_raw_write sends; http_raw_shutdown sends our FIN after the queued
 * bytes; http_raw_end closes (after the queued bytes).  The server runs no
 * timer on an upgraded connection (the handler owns the time) and a
 * graceful stop closes it.  A request may be upgraded only if the client
 * asked for it (Upgrade header, http_req_upgrade_wanted).
 *
 * fn may run from inside http_req_read_start (bytes read ahead) and from
 * the read callback; it must not answer or drop req itself (it may write,
 * pause, and schedule).  The usual rule stays: once the client is gone,
 * on_abort runs and the answer (http_raw_end) only frees req.
 */
typedef void (*http_data_fn)(http_req_t *req, const char *data, size_t len, void *ud);
typedef void (*http_drain_fn)(http_req_t *req, void *ud);

/* From the gate: stream this request's body to its handler. */
void      http_req_set_body_stream(http_req_t *req);
int       http_req_body_streamed(const http_req_t *req);
/* The announced Content-Length, or -1 (none, or chunked). */
long long http_req_content_length(const http_req_t *req);
/* 1 if the body is chunked (Transfer-Encoding: chunked). */
int       http_req_body_chunked(const http_req_t *req);
/* 1 if the connection may carry another request after this one's answer. */
int       http_req_keep_alive(const http_req_t *req);
/* 1 if the request asked to switch protocols (Upgrade + Connection: upgrade). */
int       http_req_upgrade_wanted(const http_req_t *req);
/* Start (or resume) delivering the body, or an upgraded connection's bytes. */
int       http_req_read_start(http_req_t *req, http_data_fn fn, void *ud);
/* Stop (1) / resume (0) reading the client: back-pressure. */
void      http_req_read_pause(http_req_t *req, int pause);
/* Forget the reader (fn is not called again) and stop reading. */
void      http_req_read_stop(http_req_t *req);
/* The loop the request's server runs on. */
uv_loop_t *http_req_loop(const http_req_t *req);

int  http_raw_begin(http_req_t *req, int status);
int  http_raw_write(http_req_t *req, const void *data, size_t len);
/* The same, taking a malloc'd buffer (freed in every case; no copy). */
int  http_raw_write_take(http_req_t *req, char *data, size_t len);
/* The same for data inside a malloc'd block: block (not data) is freed once
 * written, or at once on a dead connection (the proxy hands over its read
 * buffer this way: a body relayed without a copy). */
int  http_raw_write_in(http_req_t *req, char *block, const char *data, size_t len);
void http_raw_on_drain(http_req_t *req, size_t low, http_drain_fn fn, void *ud);
/* Zero-copy relaying (http/proxy's splice path): the client's socket, for
 * the caller to write the rest of a raw answer's body to directly (never
 * to read, never to close); -EAGAIN while bytes written through
 * http_raw_write* are still queued (they would be overtaken: ask again
 * from the drain callback with low 0); -ENOTSUP when it cannot be done:
 * over TLS (the bytes must be encrypted here), on a detached or closing
 * connection, after an upgrade.  While the caller writes to it, it
 * writes nothing through the calls above, and tells what it wrote with
 * http_raw_sent (the access log's byte count). */
int  http_raw_sink_fd(http_req_t *req);
void http_raw_sent(http_req_t *req, size_t n);
int  http_raw_upgrade(http_req_t *req);
int  http_raw_shutdown(http_req_t *req);
/* End a raw answer.  keep_alive 0 closes the connection after it (always
 * so for an upgraded one, or one whose streamed body was not read to its
 * end).  Consumes req; 0 or -ECONNRESET as http_respond. */
int  http_raw_end(http_req_t *req, int keep_alive);

/* ---- internals shared with router.c and fuzz/tests ------------------- */

/* Router: record the matched route's flags and an opaque route pointer. */
void        http_req_set_route(http_req_t *req, unsigned flags, const void *route);
const void *http_req_route(const http_req_t *req);
/* Router: add a path parameter (name copied up to nlen, value copied). */
void        http_req_add_param(http_req_t *req, const char *name, size_t nlen, const char *value);

/* Percent-decode src[0..len) into a NUL-terminated arena string; plus_space
 * maps '+' to ' ' (query strings).  NULL if malformed or it decodes a NUL. */
char *http_req_decode(http_req_t *req, const char *src, size_t len, int plus_space);

/* A connection without a socket: bytes go in with http_conn_feed, the
 * server's output collects in http_conn_output.  Used by the fuzzer and
 * unit tests to drive the parser deterministically; no timers run. */
http_conn_t  *http_conn_new_detached(http_server_t *srv);
/* 0, or -ECONNRESET once the connection was closed by the server. */
int           http_conn_feed(http_conn_t *c, const void *data, size_t len);
const buf_t  *http_conn_output(const http_conn_t *c);
/* Frees the connection; dispatched unanswered requests are aborted. */
void          http_conn_free_detached(http_conn_t *c);

#endif
