/*
 * http/server — connections, parsing, keep-alive, responses.  See server.h
 * for the ownership rules; this note explains how a connection works.
 *
 * Queue.  A connection holds a FIFO of requests.  Its tail may be the one
 * being parsed (conn->cur); its head is the one being answered.  Parsing
 * runs ahead of answering (pipelining) up to max_pipeline complete requests,
 * then reading pauses.  conn_advance dispatches the head when it is complete
 * and nothing is in flight, so answers leave in request order for free.  A
 * handler that answers synchronously returns into conn_advance's loop,
 * which dispatches the next one: no recursion however deep the pipeline.
 *
 * Errors found while parsing (400, 413, 414, 431, 408) are answered in
 * order too: the bad request is dropped, earlier ones still get their
 * answers, then the error goes out and the connection closes.
 *
 * Closing.  A polite close (Connection: close, errors) is a FIN after the
 * queued writes (uv_shutdown), then "lingering": we keep reading and
 * discarding for linger_ms.  Closing with unread bytes in the receive
 * buffer makes the kernel send a RST, which can destroy our 413 before the
 * client reads it (the reason nginx has lingering_close).  A hard close
 * (client gone, timeouts, dropped SSE client) is uv_close.  A connection's
 * memory is freed only when both its handles (stream, timer) reported
 * their close; requests still owned by handlers are then detached and their
 * on_abort runs, from that close callback: never re-entrantly.
 *
 * Timers.  One timer per connection, re-armed by conn_update after every
 * read and every answer, by what the connection is waiting for: the rest
 * of a request head (absolute deadline from its first byte), body progress,
 * idle keep-alive, linger, or a streaming response's tick (SSE keep-alive).
 * While a handler works and nothing is being received, no timer runs: the
 * handler owns the time.
 *
 * Half-close.  EOF from the client while a request is dispatched aborts it
 * (nginx treats it the same way): we cannot tell shutdown(SHUT_WR) from a
 * client that went away, and a vanished client's work should stop.
 *
 * TLS (http/tls.h) sits at the connection's I/O edges, so that everything above
 * them -- parsing, pipelining, streams, SSE, the proxy -- is the same over TLS:
 * read_cb hands ciphertext to conn_read_tls, which decrypts all it can and
 * feeds the plaintext to conn_input (the one entry of plaintext bytes);
 * conn_write encrypts and puts the ciphertext on the socket with
 * conn_write_raw (the one socket write), so wq_bytes counts what is really
 * queued; conn_shutdown_write (the one FIN) sends close_notify first, so
 * a polite close and the proxy's half-close both end TLS cleanly.  The
 * handshake runs under the head timeout of a new connection.  A failed handshake
 * (or plaintext HTTP sent to the TLS port, which gets a plaintext 400) is
 * logged in one line and closed.
 */
#include "http/server.h"
#include "http/gzip.h"
#include "http/tls.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF_SIZE   (64 * 1024)
#define MAX_LISTENERS   8

/* ---- arena ----------------------------------------------------------- */

/* A bump allocator: a request's strings are many and small and all die
 * together, so one free walk replaces dozens of free() calls. */
struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    char data[];
};

static void *arena_alloc(struct arena_chunk **a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct arena_chunk *c = *a;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 3000 ? n : 4096 - sizeof *c;
        c = xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = *a;
        *a = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static char *arena_strndup(struct arena_chunk **a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void arena_free(struct arena_chunk *c)
{
    while (c) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
}

/* ---- types ----------------------------------------------------------- */

struct kv {
    const char *name;
    const char *value;
};

struct kvs {
    struct kv *v;
    size_t n, cap;
};

static void kvs_add(struct kvs *k, const char *name, const char *value)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 8;
        k->v = xrealloc(k->v, k->cap * sizeof *k->v);
    }
    k->v[k->n].name = name;
    k->v[k->n].value = value;
    k->n++;
}

struct http_req {
    http_req_t *next;               /* connection queue */
    http_conn_t *conn;              /* NULL once the client is gone */
    uv_loop_t *loop;
    struct arena_chunk *arena;
    int method_id;
    const char *method, *target, *raw_path, *path, *query, *peer;
    unsigned short major, minor;
    struct kvs hdrs, qs, cookies, params, resp;
    buf_t body;
    void *user;
    unsigned route_flags;
    const void *route;
    http_abort_fn on_abort;
    void *abort_ud;
    uint64_t t_start;               /* uv_hrtime at the first byte */
    long long content_length;       /* -1: none or chunked */
    size_t body_max;                /* 0: the server's max_body; set by the gate */
    size_t body_charged;            /* bytes of body_budget this request holds */
    uint64_t win_t0;                /* uv_now ms: start of the current body rate window (0: none) */
    size_t win_len;                 /* body.len then */
    int status;
    size_t bytes_out;
    /* Relaying (http/proxy): a streamed body or upgraded connection's
     * reader, and the drain callback of a raw answer. */
    size_t body_rx;                 /* body bytes received (buffered or streamed) */
    http_data_fn data_fn;
    void *data_ud;
    http_drain_fn drain_fn;
    void *drain_ud;
    size_t drain_low;
    unsigned complete : 1, dispatched : 1, streaming : 1, chunked : 1, keep_alive : 1,
             is_head : 1, expect_continue : 1, continue_sent : 1, aborted : 1,
             headers_done : 1, cookies_parsed : 1, endless : 1, gate_wait : 1,
             body_stream : 1, body_chunked : 1, upgrade : 1, raw : 1, end_pending : 1, tls : 1;
};

enum conn_phase { CONN_ACTIVE, CONN_DRAINING, CONN_CLOSING };
enum timer_kind { T_NONE, T_HEAD, T_BODY, T_IDLE, T_LINGER, T_SEND, T_TICK };

struct http_conn {
    http_server_t *srv;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    int open_handles;
    http_conn_t *prev, *next;
    http_parser parser;
    char peer[64];
    http_req_t *qhead, *qtail, *cur;
    size_t ncomplete;               /* complete, unanswered requests in the queue */
    buf_t url, field, value;
    int have_field;                 /* a header name is being accumulated */
    int in_value;                   /* ... and its value has started */
    size_t head_bytes;
    uint64_t head_deadline;         /* uv_now ms */
    uint64_t last_body;             /* uv_now ms of the last body bytes */
    size_t send_mark;               /* T_SEND: bytes unsent when it was armed (progress check) */
    uint64_t nrequests;
    size_t wq_bytes;                /* written but not yet confirmed */
    int err_status;                 /* set by a parser callback, handled after execute */
    /* A method http-parser does not know (conn_unknown_method): its
     * letters while they are read, then while the request is parsed as
     * SOURCE, until on_headers_complete puts it back. */
    enum { UM_NONE, UM_READING, UM_PARSING } um_state;
    char um[32];
    size_t um_len;
    int reject_status;              /* error to send once the queue ahead drains */
    int err_budget;                 /* err_status 503 is the body budget's */
    int reject_budget;              /* ... and so is reject_status */
    buf_t stash;                    /* bytes read past a head that waits for the gate */
    enum conn_phase phase;
    enum timer_kind tkind;
    unsigned parse_done : 1, reading : 1, advancing : 1, close_after : 1, detached : 1,
             reject : 1, peer_eof : 1, gate_wait : 1,
             upgrade_hold : 1,      /* an Upgrade request was parsed: stop reading until it is answered */
             upgraded : 1,          /* http_raw_upgrade: a byte pipe now */
             read_paused : 1,       /* http_req_read_pause */
             wr_shut : 1, shut_done : 1, close_on_shut : 1;
    /* streaming tick */
    http_tick_fn tick_fn;
    void *tick_ud;
    uint64_t tick_ms;
    buf_t out;                      /* detached connections: what was "written" */
    tls_conn_t *tls;                /* TLS listener: the connection's TLS state, else NULL */
};

struct listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    http_server_t *srv;
    int is_tcp;
    char *unix_path;
    tls_ctx_t *tls;                 /* not owned (http_server_listen_tls) */
};

struct http_server {
    uv_loop_t *loop;
    struct http_limits lim;
    http_handler_fn handler;
    void *ud;
    http_gate_fn gate;
    void *gate_ud;
    size_t body_used;               /* request body bytes held, all connections */
    size_t small_used;              /* ... of which by requests the gate held to a lower limit */
    struct listener *ls[MAX_LISTENERS];
    size_t nls;
    http_conn_t *conns;
    size_t nconns;
    size_t open_handles;            /* listeners + connections + stop timer */
    uv_timer_t stop_timer;
    int stopping, stop_called, stop_timer_closing;
    http_stop_fn stop_cb;
    void *stop_ud;
    char *csp;
    char rbuf[READ_BUF_SIZE];       /* one read buffer: reads are parsed synchronously */
    int rbuf_busy;
    time_t date_sec;
    char date[40];
};

static int  on_message_begin(http_parser *p);
static int  on_url(http_parser *p, const char *at, size_t n);
static int  on_header_field(http_parser *p, const char *at, size_t n);
static int  on_header_value(http_parser *p, const char *at, size_t n);
static int  on_headers_complete(http_parser *p);
static int  on_body(http_parser *p, const char *at, size_t n);
static int  on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_advance(http_conn_t *c);
static void conn_update(http_conn_t *c);
static int  req_deliver(http_conn_t *c, http_req_t *r, const char *data, size_t len);
static void conn_close(http_conn_t *c);
static void conn_drain_close(http_conn_t *c);
static void conn_reject(http_conn_t *c, int status);
static void conn_run(http_conn_t *c);
static void srv_handle_closed(http_server_t *srv);

void http_limits_default(struct http_limits *l)
{
    l->max_header_bytes = 16 * 1024;
    l->max_headers = 100;
    l->max_body = 8 * 1024 * 1024;
    l->body_budget = 64 * 1024 * 1024;
    l->min_body_rate = 1024;
    l->body_grace_ms = 10000;
    l->max_url = 8 * 1024;
    l->max_connections = 1024;
    l->max_pipeline = 16;
    l->max_stream_queue = 1024 * 1024;
    l->head_timeout_ms = 10000;
    l->idle_timeout_ms = 30000;
    l->body_timeout_ms = 10000;
    l->linger_ms = 2000;
    l->stop_timeout_ms = 30000;
    l->sse_keepalive_ms = 15000;
    l->stream_body_max = 0;
}

/* ---- requests -------------------------------------------------------- */

static http_req_t *req_new(http_conn_t *c)
{
    http_req_t *r = xcalloc(1, sizeof *r);
    r->conn = c;
    r->loop = c->srv->loop;
    r->t_start = uv_hrtime();
    r->peer = arena_strndup(&r->arena, c->peer, strlen(c->peer));
    r->method = "-";
    r->raw_path = r->path = r->target = "-";
    r->query = "";
    r->content_length = -1;
    r->tls = c->tls != NULL;
    return r;
}

/* Held by the gate to less than max_body (anonymous requests): such bodies
 * may fill only a quarter of the budget, so that clients nobody vouches for
 * cannot take it all from those somebody does. */
static int req_small(const http_server_t *srv, const http_req_t *r)
{
    return r->body_max && r->body_max < srv->lim.max_body;
}

/* Give back r's share of the body budget (its client is gone, or it is
 * freed).  The connection, and so the server, must still be there. */
static void req_uncharge(http_req_t *r)
{
    if (r->conn && r->body_charged) {
        http_server_t *srv = r->conn->srv;
        srv->body_used -= r->body_charged;
        if (req_small(srv, r)) srv->small_used -= r->body_charged;
        r->body_charged = 0;
    }
}

static void req_free(http_req_t *r)
{
    req_uncharge(r);
    free(r->hdrs.v);
    free(r->qs.v);
    free(r->cookies.v);
    free(r->params.v);
    free(r->resp.v);
    buf_free(&r->body);
    arena_free(r->arena);
    free(r);
}

/* Remove r from its connection's queue (it need not be the head). */
static void queue_remove(http_conn_t *c, http_req_t *r)
{
    http_req_t **pp = &c->qhead, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = r->next;
    if (c->qtail == r) c->qtail = prev;
    if (c->cur == r) c->cur = NULL;
    if (r->complete) c->ncomplete--;
    r->next = NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

char *http_req_decode(http_req_t *req, const char *src, size_t len, int plus_space)
{
    char *out = arena_alloc(&req->arena, len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            if (i + 2 >= len) return NULL;
            int a = hexval((unsigned char)src[i + 1]), b = hexval((unsigned char)src[i + 2]);
            if (a < 0 || b < 0) return NULL;
            ch = (char)(a * 16 + b);
            if (ch == '\0') return NULL;
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        } else if (ch == '\0') {
            return NULL;
        }
        *o++ = ch;
    }
    *o = '\0';
    return out;
}

/* Split the query string into decoded name/value pairs; -1 if malformed. */
static int req_parse_query(http_req_t *r)
{
    const char *q = r->query;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len) {
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            char *name = http_req_decode(r, q, nlen, 1);
            char *value = eq ? http_req_decode(r, eq + 1, len - nlen - 1, 1) : arena_strndup(&r->arena, "", 0);
            if (!name || !value) return -1;
            kvs_add(&r->qs, name, value);
        }
        q += len;
        if (*q == '&') q++;
    }
    return 0;
}

/* Cookie: a=b; c="d" — parsed on first use; values are not decoded
 * (RFC 6265 defines no encoding). */
static void req_parse_cookies(http_req_t *r)
{
    r->cookies_parsed = 1;
    const char *h;
    for (size_t nth = 0; (h = http_header_nth(r, "cookie", nth)) != NULL; nth++) {
        const char *p = h;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ';') p++;
            const char *start = p;
            while (*p && *p != ';') p++;
            const char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
            const char *eq = memchr(start, '=', (size_t)(end - start));
            if (!eq || eq == start) continue;
            const char *ne = eq;
            while (ne > start && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
            const char *vs = eq + 1;
            while (vs < end && (*vs == ' ' || *vs == '\t')) vs++;
            const char *ve = end;
            if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
                vs++;
                ve--;
            }
            kvs_add(&r->cookies, arena_strndup(&r->arena, start, (size_t)(ne - start)),
                    arena_strndup(&r->arena, vs, (size_t)(ve - vs)));
        }
    }
}

static const char *kvs_get(const struct kvs *k, const char *name, int icase, size_t nth)
{
    for (size_t i = 0; i < k->n; i++)
        if ((icase ? strcasecmp(k->v[i].name, name) : strcmp(k->v[i].name, name)) == 0 && nth-- == 0)
            return k->v[i].value;
    return NULL;
}

const char *http_req_method(const http_req_t *r) { return r->method; }
int http_req_method_id(const http_req_t *r) { return r->method_id; }
const char *http_req_target(const http_req_t *r) { return r->target; }
const char *http_req_raw_path(const http_req_t *r) { return r->raw_path; }
const char *http_req_path(const http_req_t *r) { return r->path; }
const char *http_req_query(const http_req_t *r) { return r->query; }
const char *http_req_peer(const http_req_t *r) { return r->peer; }
int http_req_minor(const http_req_t *r) { return r->minor; }
int http_req_tls(const http_req_t *r) { return r->tls; }

const struct http_limits *http_req_limits(const http_req_t *r)
{
    return r->conn ? &r->conn->srv->lim : NULL;
}

void http_req_set_body_max(http_req_t *r, size_t max) { r->body_max = max; }

const char *http_req_body(const http_req_t *r, size_t *len)
{
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *http_query(const http_req_t *r, const char *name) { return kvs_get(&r->qs, name, 0, 0); }

int http_query_at(const http_req_t *r, size_t i, const char **name, const char **value)
{
    if (i >= r->qs.n) return -ENOENT;
    *name = r->qs.v[i].name;
    *value = r->qs.v[i].value;
    return 0;
}

const char *http_header(const http_req_t *r, const char *name) { return kvs_get(&r->hdrs, name, 1, 0); }

const char *http_header_nth(const http_req_t *r, const char *name, size_t nth)
{
    return kvs_get(&r->hdrs, name, 1, nth);
}

int http_header_at(const http_req_t *r, size_t i, const char **name, const char **value)
{
    if (i >= r->hdrs.n) return -ENOENT;
    *name = r->hdrs.v[i].name;
    *value = r->hdrs.v[i].value;
    return 0;
}

const char *http_cookie(http_req_t *r, const char *name)
{
    if (!r->cookies_parsed) req_parse_cookies(r);
    return kvs_get(&r->cookies, name, 0, 0);
}

const char *http_param(const http_req_t *r, const char *name) { return kvs_get(&r->params, name, 0, 0); }
unsigned http_req_route_flags(const http_req_t *r) { return r->route_flags; }
void *http_req_user(const http_req_t *r) { return r->user; }
void http_req_set_user(http_req_t *r, void *user) { r->user = user; }
void *http_req_alloc(http_req_t *r, size_t n) { return arena_alloc(&r->arena, n); }
char *http_req_strdup(http_req_t *r, const char *s) { return arena_strndup(&r->arena, s, strlen(s)); }

void http_req_on_abort(http_req_t *r, http_abort_fn fn, void *ud)
{
    r->on_abort = fn;
    r->abort_ud = ud;
}

int http_req_aborted(const http_req_t *r) { return r->aborted; }

void http_req_set_route(http_req_t *r, unsigned flags, const void *route)
{
    r->route_flags = flags;
    r->route = route;
}

const void *http_req_route(const http_req_t *r) { return r->route; }

void http_req_add_param(http_req_t *r, const char *name, size_t nlen, const char *value)
{
    kvs_add(&r->params, arena_strndup(&r->arena, name, nlen), arena_strndup(&r->arena, value, strlen(value)));
}

/* ---- writing --------------------------------------------------------- */

struct wreq {
    uv_write_t w;
    http_conn_t *conn;
    size_t len;
    char *owned[3];
};

static void write_cb(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    http_conn_t *c = wr->conn;
    c->wq_bytes -= wr->len;
    for (int i = 0; i < 3; i++) free(wr->owned[i]);
    free(wr);
    if (status < 0 && status != UV_ECANCELED) {
        c->peer_eof = 1;            /* the socket is broken: conn_close says nothing more */
        conn_close(c);
        return;
    }
    /* A raw answer (http/proxy) resumes reading its source once our queue
     * has drained enough. */
    http_req_t *r = c->qhead;
    if (c->phase != CONN_CLOSING && r && r->dispatched && r->drain_fn && c->wq_bytes <= r->drain_low)
        r->drain_fn(r, r->drain_ud);
}

/* Put bufs on the socket as they are (the only socket write); the owned
 * pointers are freed once written.  On a closed connection the data is
 * dropped.
 *
 * Into an empty queue the bytes go with uv_try_write first: a small answer
 * (nearly all of them) is then written without a write request, and
 * without libuv's drain after it, which costs an epoll_ctl per write
 * (issue 17: two per proxied request, one per side).  Only what the socket
 * did not take is queued; an error is left to uv_write to report, from the
 * loop, as before. */
static void conn_write_raw(http_conn_t *c, uv_buf_t *bufs, unsigned n, char *own0, char *own1)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) len += bufs[i].len;
    if (!c->detached && c->phase != CONN_CLOSING && len && !uv_stream_get_write_queue_size(&c->h.stream)) {
        int w = uv_try_write(&c->h.stream, bufs, n);
        if (w > 0 && (size_t)w == len) {
            free(own0);
            free(own1);
            return;
        }
        if (w > 0) {
            /* Skip what left; bufs is the caller's array, ours to adjust. */
            size_t skip = (size_t)w;
            len -= skip;
            while (skip >= bufs[0].len) {
                skip -= bufs[0].len;
                bufs++;
                n--;
            }
            bufs[0].base += skip;
            bufs[0].len -= skip;
        }
    }
    if (c->detached) {
        if (c->phase != CONN_CLOSING)
            for (unsigned i = 0; i < n; i++) buf_append(&c->out, bufs[i].base, bufs[i].len);
        free(own0);
        free(own1);
        return;
    }
    if (c->phase == CONN_CLOSING) {
        free(own0);
        free(own1);
        return;
    }
    struct wreq *wr = xcalloc(1, sizeof *wr);
    wr->conn = c;
    wr->len = len;
    wr->owned[0] = own0;
    wr->owned[1] = own1;
    c->wq_bytes += len;
    int rc = uv_write(&wr->w, &c->h.stream, bufs, n, write_cb);
    if (rc < 0) {
        c->wq_bytes -= len;
        free(own0);
        free(own1);
        free(wr);
        conn_close(c);
    }
}

/* The ciphertext the TLS state has for the peer (handshake, records,
 * alerts) goes on the socket. */
static void conn_flush_tls(http_conn_t *c)
{
    char *data;
    size_t n = tls_conn_take(c->tls, &data);
    if (!n) return;
    uv_buf_t b = uv_buf_init(data, (unsigned)n);
    conn_write_raw(c, &b, 1, data, NULL);
}

/* Over TLS, our close_notify goes out (once) ahead of whatever comes next,
 * a FIN (conn_shutdown_write) or a close: the client sees a clean end, not
 * a truncation.  A write error closes the connection (phase CONN_CLOSING
 * on return). */
static void conn_tls_close_notify(http_conn_t *c)
{
    if (!c->tls || !tls_conn_established(c->tls)) return;
    tls_conn_close_notify(c->tls);
    conn_flush_tls(c);
}

/* Queue bufs for the client: over TLS encrypted first (the plaintext is
 * freed at once, wq_bytes counts the ciphertext).  Every byte to a client
 * passes here. */
static void conn_write(http_conn_t *c, uv_buf_t *bufs, unsigned n, char *own0, char *own1)
{
    if (!c->tls) {
        conn_write_raw(c, bufs, n, own0, own1);
        return;
    }
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) total += bufs[i].len;
    if (c->phase == CONN_CLOSING) {
        /* dropped, as conn_write_raw would */
    } else if (n > 1 && total <= 16384) {
        /* A head and a small body: one record, not two (less framing, one
         * seal instead of two). */
        char one[16384];
        size_t off = 0;
        for (unsigned i = 0; i < n; i++) {
            memcpy(one + off, bufs[i].base, bufs[i].len);
            off += bufs[i].len;
        }
        tls_conn_write(c->tls, one, total);
    } else {
        for (unsigned i = 0; i < n; i++) tls_conn_write(c->tls, bufs[i].base, bufs[i].len);
    }
    free(own0);
    free(own1);
    if (c->phase != CONN_CLOSING) conn_flush_tls(c);
}

static void conn_write_str(http_conn_t *c, const char *s)
{
    char *copy = xstrdup(s);
    uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(copy));
    conn_write(c, &b, 1, copy, NULL);
}

static const char *srv_date(http_server_t *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

static int user_has(const http_req_t *r, const char *name)
{
    return r && kvs_get(&r->resp, name, 1, 0) != NULL;
}

static const char *status_text(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}

static int header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

/* The response head.  body_len < 0 means a streaming response. */
static void build_head(buf_t *b, http_conn_t *c, http_req_t *r, int status, const char *ctype,
                       long long body_len, int keep_alive, int chunked, int retry_after)
{
    http_server_t *srv = c->srv;
    buf_printf(b, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (!user_has(r, "date")) buf_printf(b, "Date: %s\r\n", srv_date(srv));
    if (!user_has(r, "server")) buf_puts(b, "Server: nbhub\r\n");
    if (ctype && !user_has(r, "content-type") && header_value_ok(ctype))
        buf_printf(b, "Content-Type: %s\r\n", ctype);
    if (!user_has(r, "x-content-type-options")) buf_puts(b, "X-Content-Type-Options: nosniff\r\n");
    if (!user_has(r, "referrer-policy")) buf_puts(b, "Referrer-Policy: no-referrer\r\n");
    if (srv->csp && !user_has(r, "content-security-policy"))
        buf_printf(b, "Content-Security-Policy: %s\r\n", srv->csp);
    if (r)
        for (size_t i = 0; i < r->resp.n; i++)
            buf_printf(b, "%s: %s\r\n", r->resp.v[i].name, r->resp.v[i].value);
    if (body_len >= 0 && status != 204 && status != 304)
        buf_printf(b, "Content-Length: %lld\r\n", body_len);
    if (chunked) buf_puts(b, "Transfer-Encoding: chunked\r\n");
    if (retry_after > 0) buf_printf(b, "Retry-After: %d\r\n", retry_after);
    if (!keep_alive) buf_puts(b, "Connection: close\r\n");
    else if (r && r->minor == 0) buf_puts(b, "Connection: keep-alive\r\n");
    buf_puts(b, "\r\n");
}

/* Log one access line; the query string, headers and cookies are never
 * logged (tokens travel in them).  The path is escaped so a request cannot
 * forge log fields. */
static void access_log(http_req_t *r, int status, const char *note)
{
    if (LOG_INFO < log_min_level) return;
    char path[512];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)r->raw_path; *p && o < sizeof path - 4; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            snprintf(path + o, 4, "%%%02X", *p);
            o += 3;
        } else {
            path[o++] = (char)*p;
        }
    }
    path[o] = '\0';
    double ms = (double)(uv_hrtime() - r->t_start) / 1e6;
    LOG_I("http request", "method=%s path=\"%s\" status=%d bytes=%zu duration_ms=%.1f peer=%s%s", r->method,
          path, status, r->bytes_out, ms, r->peer, note ? note : "");
}

/* The head request of c has been answered completely. */
static void req_done(http_req_t *r)
{
    http_conn_t *c = r->conn;
    access_log(r, r->status, NULL);
    /* A request answered before its body was read (the gate refused it)
     * leaves that body in the stream: the connection cannot go on. */
    int keep = r->keep_alive && r->complete && !c->close_after;
    queue_remove(c, r);
    req_free(r);
    c->read_paused = 0;             /* a relaying handler's pause ends with its request */
    if (c->phase != CONN_ACTIVE) return;
    c->nrequests++;
    if (!keep) {
        conn_drain_close(c);
        return;
    }
    conn_run(c);
}

/* Common exit for an answer on a request whose client is gone or going. */
static int req_answer_dead(http_req_t *r)
{
    if (r->conn) {
        access_log(r, 0, " aborted=1");
        queue_remove(r->conn, r);
    }
    req_free(r);
    return -ECONNRESET;
}

static int status_ok(int status) { return status >= 200 && status <= 599; }

/* gzip the answer when it is worth it (http/gzip.h says which).  The
 * choice depends on Accept-Encoding, so caches are told (Vary), and an
 * ETag names the encoded bytes, which are not the identity's: it becomes
 * weak (RFC 9110 8.8.3), and If-None-Match compares weakly anyway. */
static void http_compress(http_req_t *r, const char *ctype, char **body, size_t *len, int nobody)
{
    if (!gzip_type_ok(ctype) || user_has(r, "content-encoding")) return;
    if (!user_has(r, "vary")) http_set_header(r, "Vary", "Accept-Encoding");
    if (*len < GZIP_MIN_BYTES || !gzip_accepted(http_header(r, "Accept-Encoding"))) return;
    char *z;
    size_t zlen;
    if (nobody || gzip_encode(*body, *len, GZIP_LEVEL_FAST, &z, &zlen) < 0) return;
    free(*body);
    *body = z;
    *len = zlen;
    http_set_header(r, "Content-Encoding", "gzip");
    for (size_t i = 0; i < r->resp.n; i++)
        if (strcasecmp(r->resp.v[i].name, "ETag") == 0 && r->resp.v[i].value[0] == '"') {
            char *w = xasprintf("W/%s", r->resp.v[i].value);
            r->resp.v[i].value = http_req_strdup(r, w);
            free(w);
            break;
        }
}

int http_respond_take(http_req_t *r, int status, const char *ctype, char *body, size_t len)
{
    NB_ASSERT(!r->streaming);
    if (!r->conn || r->conn->phase == CONN_CLOSING) {
        free(body);
        return req_answer_dead(r);
    }
    http_conn_t *c = r->conn;
    NB_ASSERT(c->qhead == r && r->dispatched);
    if (!status_ok(status)) status = 500;
    int keep = r->keep_alive && r->complete && !c->close_after;
    int nobody = r->is_head || status == 204 || status == 304;
    http_compress(r, ctype, &body, &len, nobody);
    buf_t head = BUF_INIT;
    build_head(&head, c, r, status, ctype, (long long)len, keep, 0, 0);
    uv_buf_t bufs[2];
    unsigned n = 0;
    size_t hlen = head.len;
    char *hdata = buf_detach(&head);
    bufs[n++] = uv_buf_init(hdata, (unsigned)hlen);
    if (!nobody && len) bufs[n++] = uv_buf_init(body, (unsigned)len);
    r->status = status;
    r->bytes_out = nobody ? 0 : len;
    conn_write(c, bufs, n, hdata, body);
    req_done(r);
    return 0;
}

int http_respond(http_req_t *r, int status, const char *ctype, const void *body, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len) memcpy(copy, body, len);
    return http_respond_take(r, status, ctype, copy, len);
}

int http_respond_json(http_req_t *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) return http_respond_error(r, 500, "internal", "response could not be encoded");
    return http_respond_take(r, status, "application/json", s, strlen(s));
}

/* The error document, shared with server-generated errors. */
static char *error_json(const char *code, const char *msg)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (!j) j = json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message", "invalid UTF-8 in error message");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    NB_ASSERT(s);
    return s;
}

int http_respond_error(http_req_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *s = error_json(code, msg);
    free(msg);
    return http_respond_take(r, status, "application/json", s, strlen(s));
}

static int token_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int http_set_header(http_req_t *r, const char *name, const char *value)
{
    if (!name || !*name || !value) return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p)) return -EINVAL;
    if (!header_value_ok(value)) return -EINVAL;
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0)
        return -EINVAL;
    kvs_add(&r->resp, http_req_strdup(r, name), http_req_strdup(r, value));
    return 0;
}

/* ---- streaming ------------------------------------------------------- */

int http_stream_begin(http_req_t *r, int status, const char *ctype)
{
    NB_ASSERT(!r->streaming);
    r->streaming = 1;
    if (!r->conn || r->conn->phase == CONN_CLOSING) return -ECONNRESET;
    http_conn_t *c = r->conn;
    NB_ASSERT(c->qhead == r && r->dispatched);
    if (!status_ok(status)) status = 500;
    r->status = status;
    /* HTTP/1.0 has no chunked encoding: the end of the body is our close. */
    r->chunked = r->minor >= 1 && !r->is_head;
    if (r->minor == 0) r->keep_alive = 0;
    int keep = r->keep_alive && r->complete && !c->close_after;
    buf_t head = BUF_INIT;
    build_head(&head, c, r, status, ctype, -1, keep, r->minor >= 1, 0);
    size_t hlen = head.len;
    char *h = buf_detach(&head);
    uv_buf_t b = uv_buf_init(h, (unsigned)hlen);
    conn_write(c, &b, 1, h, NULL);
    return 0;
}

int http_stream_write(http_req_t *r, const void *data, size_t len)
{
    NB_ASSERT(r->streaming);
    if (!r->conn || r->conn->phase == CONN_CLOSING) return -ECONNRESET;
    if (r->is_head || len == 0) return 0;
    char *copy = xmalloc(len + 32);
    size_t off = 0;
    if (r->chunked) off = (size_t)snprintf(copy, 32, "%zx\r\n", len);
    memcpy(copy + off, data, len);
    off += len;
    if (r->chunked) {
        memcpy(copy + off, "\r\n", 2);
        off += 2;
    }
    uv_buf_t b = uv_buf_init(copy, (unsigned)off);
    r->bytes_out += len;
    conn_write(r->conn, &b, 1, copy, NULL);
    return 0;
}

int http_stream_end(http_req_t *r)
{
    NB_ASSERT(r->streaming);
    if (!r->conn || r->conn->phase == CONN_CLOSING) return req_answer_dead(r);
    http_conn_t *c = r->conn;
    if (c->qhead == r && c->tick_fn) {
        c->tick_fn = NULL;
        c->tkind = T_NONE;
    }
    if (r->chunked) conn_write_str(c, "0\r\n\r\n");
    else if (r->minor == 0) r->keep_alive = 0;
    req_done(r);
    return 0;
}

size_t http_stream_queued(const http_req_t *r) { return r->conn ? r->conn->wq_bytes : 0; }

void http_stream_drop(http_req_t *r)
{
    if (r->conn) conn_close(r->conn);
}

int http_stream_tick(http_req_t *r, uint64_t every_ms, http_tick_fn fn, void *ud)
{
    if (!r->conn || r->conn->phase != CONN_ACTIVE) return -ECONNRESET;
    http_conn_t *c = r->conn;
    c->tick_fn = fn;
    c->tick_ud = ud;
    c->tick_ms = every_ms ? every_ms : 1;
    c->tkind = T_NONE;              /* force conn_update to arm it */
    conn_update(c);
    return 0;
}

void http_stream_set_endless(http_req_t *r) { r->endless = 1; }

/* ---- parser callbacks ------------------------------------------------ */

static int fail(http_conn_t *c, int status)
{
    c->err_status = status;
    return -1;
}

/* A refusal of body_start's or the budget's: a 503 is the budget's. */
static int fail_body(http_conn_t *c, int status)
{
    c->err_budget = status == 503;
    return fail(c, status);
}

/* The most r's body may hold: the server's max_body, or less if the gate said so. */
static size_t req_body_max(const http_conn_t *c, const http_req_t *r)
{
    size_t max = c->srv->lim.max_body;
    return r->body_max && r->body_max < max ? r->body_max : max;
}

/* Charge r for holding total bytes of body.  -ENOSPC (nothing charged)
 * when that would take the server past body_budget, unless force: a
 * buffer's doubling after bytes already accepted is charged, not refused. */
static int body_charge(http_conn_t *c, http_req_t *r, size_t total, int force)
{
    http_server_t *srv = c->srv;
    if (total <= r->body_charged) return 0;
    size_t extra = total - r->body_charged;
    int small = req_small(srv, r);
    if (!force && srv->lim.body_budget &&
        (srv->body_used + extra > srv->lim.body_budget ||
         (small && srv->small_used + extra > srv->lim.body_budget / 4)))
        return -ENOSPC;
    srv->body_used += extra;
    if (small) srv->small_used += extra;
    r->body_charged = total;
    return 0;
}

/* r's body is wanted now: 413 if its Content-Length is over r's limit, 503
 * if the budget cannot hold it; else 0, the whole announced length charged
 * and allocated at once (no doublings, no copies), and its clock started. */
static int body_start(http_conn_t *c, http_req_t *r)
{
    if (r->body_stream) {
        size_t smax = c->srv->lim.stream_body_max;
        if (smax && r->content_length > 0 && (size_t)r->content_length > smax) return 413;
        return 0;                   /* nothing held: the handler takes it as it comes */
    }
    if (r->content_length > 0) {
        size_t cl = (size_t)r->content_length;
        if (cl > req_body_max(c, r)) return 413;
        if (body_charge(c, r, cl + 1, 0) < 0) return 503;
        NB_ASSERT(!r->body.data);
        r->body.data = xmalloc(cl + 1);
        r->body.data[0] = '\0';
        r->body.cap = cl + 1;
    }
    if (!c->detached) r->win_t0 = c->last_body = uv_now(c->srv->loop);
    r->win_len = 0;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_t *r = req_new(c);
    if (c->qtail) c->qtail->next = r;
    else c->qhead = r;
    c->qtail = r;
    c->cur = r;
    c->head_bytes = 0;
    c->have_field = 0;
    c->in_value = 0;
    buf_reset(&c->url);
    buf_reset(&c->field);
    buf_reset(&c->value);
    if (!c->detached) c->head_deadline = uv_now(c->srv->loop) + c->srv->lim.head_timeout_ms;
    return 0;
}

static int count_head(http_conn_t *c, size_t n)
{
    c->head_bytes += n;
    return c->head_bytes > c->srv->lim.max_header_bytes;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    if (c->url.len + n > c->srv->lim.max_url) return fail(c, 414);
    if (count_head(c, n)) return fail(c, 431);
    buf_append(&c->url, at, n);
    return 0;
}

static void commit_header(http_conn_t *c)
{
    http_req_t *r = c->cur;
    if (!c->have_field) return;
    kvs_add(&r->hdrs, arena_strndup(&r->arena, c->field.data ? c->field.data : "", c->field.len),
            arena_strndup(&r->arena, c->value.data ? c->value.data : "", c->value.len));
    c->have_field = 0;
    c->in_value = 0;
    buf_reset(&c->field);
    buf_reset(&c->value);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    if (count_head(c, n)) return fail(c, 431);
    /* Names and values may arrive in pieces: a new name starts once a value
     * callback was seen (http-parser reports even an empty value). */
    if (c->in_value) commit_header(c);
    if (!c->have_field) {
        if (c->cur->hdrs.n >= c->srv->lim.max_headers) return fail(c, 431);
        c->have_field = 1;
    }
    buf_append(&c->field, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    if (count_head(c, n)) return fail(c, 431);
    c->in_value = 1;
    buf_append(&c->value, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_t *r = c->cur;
    const struct http_limits *lim = &c->srv->lim;
    commit_header(c);
    r->headers_done = 1;
    r->method_id = p->method;
    r->method = http_method_str((enum http_method)p->method);
    if (c->um_state == UM_PARSING) {
        r->method_id = -1;
        r->method = arena_strndup(&r->arena, c->um, c->um_len);
        c->um_state = UM_NONE;
    }
    r->is_head = p->method == HTTP_HEAD;
    r->major = p->http_major;
    r->minor = p->http_minor;
    r->keep_alive = http_should_keep_alive(p) != 0;
    if (r->major != 1) return fail(c, 505);

    /* Request-target: origin-form "/p?q", absolute-form "http://h/p?q"
     * (we ignore the authority), or "*" for OPTIONS. */
    const char *url = c->url.data ? c->url.data : "";
    size_t ulen = c->url.len;
    r->target = arena_strndup(&r->arena, url, ulen);
    if (ulen == 1 && url[0] == '*') {
        r->raw_path = r->path = "*";
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (ulen == 0 || http_parser_parse_url(url, ulen, p->method == HTTP_CONNECT, &u) != 0)
            return fail(c, 400);
        if (!(u.field_set & (1 << UF_PATH))) {
            if (p->method == HTTP_CONNECT) r->raw_path = r->path = "/";
            else return fail(c, 400);
        } else {
            const char *ps = url + u.field_data[UF_PATH].off;
            size_t pl = u.field_data[UF_PATH].len;
            if (pl == 0 || ps[0] != '/') return fail(c, 400);
            r->raw_path = arena_strndup(&r->arena, ps, pl);
            r->path = http_req_decode(r, ps, pl, 0);
            if (!r->path) return fail(c, 400);
        }
        if (u.field_set & (1 << UF_QUERY))
            r->query = arena_strndup(&r->arena, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    if (req_parse_query(r) < 0) return fail(c, 400);

    /* With a gate, the limit depends on the route (a streamed body has its
     * own): body_start checks it once the gate has seen the head. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > lim->max_body && !c->srv->gate) return fail(c, 413);
    r->body_chunked = (p->flags & F_CHUNKED) != 0;
    r->upgrade = p->upgrade && p->method != HTTP_CONNECT;
    const char *expect = http_header(r, "expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0) return fail(c, 417);
        if (r->minor >= 1) r->expect_continue = 1;
    }
    if (p->flags & F_CONTENTLENGTH) r->content_length = (long long)p->content_length;
    int has_body = (p->flags & F_CHUNKED) || r->content_length > 0;
    if (has_body && c->srv->gate) {
        /* Not a byte of the body before the gate has seen the head:
         * conn_parse keeps what was read past it, conn_advance runs the
         * gate once the request is first in line. */
        r->gate_wait = 1;
        c->gate_wait = 1;
        http_parser_pause(p, 1);
        return 0;
    }
    int st = has_body ? body_start(c, r) : 0;
    if (st) return fail_body(c, st);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    http_req_t *r = c->cur;
    r->body_rx += n;
    if (r->body_stream) {
        size_t smax = c->srv->lim.stream_body_max;
        if (smax && r->body_rx > smax) return fail(c, 413);
        if (!c->detached) c->last_body = uv_now(c->srv->loop);
        if (!req_deliver(c, r, at, n) || c->cur != r) {
            c->parse_done = 1;      /* answered or dropped from fn: stop here */
            return -1;
        }
        return 0;
    }
    size_t need = r->body.len + n;
    if (need > req_body_max(c, r)) return fail(c, 413);
    if (body_charge(c, r, need, 0) < 0) return fail_body(c, 503);
    buf_append(&r->body, at, n);
    body_charge(c, r, r->body.cap, 1);
    if (!c->detached) c->last_body = uv_now(c->srv->loop);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_t *r = c->cur;
    r->complete = 1;
    c->ncomplete++;
    c->cur = NULL;
    if (r->body_stream) r->end_pending = 1;     /* conn_parse tells fn, once the parser is out */
    /* After a request that ends the connection (close, HTTP/1.0, upgrade)
     * anything else the client sends is not ours to parse. */
    if (!r->keep_alive || p->upgrade) {
        r->keep_alive = 0;
        c->parse_done = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

/* ---- connection life ------------------------------------------------- */

static void read_stop(http_conn_t *c)
{
    if (c->reading && !c->detached) uv_read_stop(&c->h.stream);
    c->reading = 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    http_conn_t *c = h->data;
    http_server_t *srv = c->srv;
    /* libuv calls read_cb right after alloc_cb, and we parse synchronously,
     * so one server-wide buffer serves every connection. */
    if (srv->rbuf_busy) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    srv->rbuf_busy = 1;
    b->base = srv->rbuf;
    b->len = sizeof srv->rbuf;
}

static void conn_process(http_conn_t *c, const char *data, size_t len);
static void conn_input(http_conn_t *c, const char *data, size_t len);
static void conn_read_tls(http_conn_t *c, const char *data, size_t len);

/* The client will send nothing more (EOF, error, or TLS close_notify). */
static void conn_eof(http_conn_t *c)
{
    c->peer_eof = 1;
    if (c->upgraded && c->phase == CONN_ACTIVE) {
        /* A half-close is passed on, not taken for a vanished client. */
        read_stop(c);
        http_req_t *r = c->qhead;
        if (r && r->data_fn) req_deliver(c, r, NULL, 0);
        return;
    }
    int inflight = c->qhead && c->qhead->dispatched;
    if (c->phase == CONN_ACTIVE && !inflight && c->wq_bytes > 0) conn_drain_close(c);
    else if (c->phase == CONN_DRAINING && c->wq_bytes > 0) read_stop(c);  /* let the shutdown finish */
    else conn_close(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    http_conn_t *c = s->data;
    if (b->base == c->srv->rbuf) c->srv->rbuf_busy = 0;
    if (nread == 0) return;
    if (nread < 0) {
        conn_eof(c);
        return;
    }
    if (c->tls) conn_read_tls(c, b->base, (size_t)nread);
    else conn_input(c, b->base, (size_t)nread);
}

/* The plaintext a client sent, in order, from the socket or from TLS. */
static void conn_input(http_conn_t *c, const char *data, size_t len)
{
    conn_process(c, data, len);
}

static int conn_tls_plain(void *ud, const char *data, size_t len)
{
    http_conn_t *c = ud;
    conn_input(c, data, len);
    return c->phase == CONN_CLOSING;
}

/* Ciphertext from the client: decrypt it all (tls_conn_input leaves no
 * plaintext behind, so stopping the socket's reads stops the input), send
 * what the handshake or an alert wrote.  A TLS failure is one log line;
 * plaintext HTTP gets a plaintext 400 saying what the port wants. */
static void conn_read_tls(http_conn_t *c, const char *data, size_t len)
{
    if (c->phase != CONN_ACTIVE) return;            /* lingering: discard */
    nb_err_t err;
    int rc = tls_conn_input(c->tls, data, len, conn_tls_plain, c, &err);
    conn_flush_tls(c);
    if (rc == TLS_EOF) {
        conn_eof(c);
    } else if (rc < 0 && c->phase == CONN_ACTIVE) {
        LOG_I("tls error", "peer=%s error=\"%s\"", c->peer, err.msg);
        if (tls_conn_plain_http(c->tls)) {
            static const char body[] = "This port speaks HTTPS: use an https:// URL.\n";
            char *resp = xasprintf("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                   sizeof body - 1, body);
            uv_buf_t b = uv_buf_init(resp, (unsigned)strlen(resp));
            conn_write_raw(c, &b, 1, resp, NULL);
        }
        conn_drain_close(c);
    }
}

/*
 * A method http-parser does not know (QUERY, or any other token) is not a
 * malformed request: the router answers it 405 with the Allow header, as it
 * does a known method no route takes, and the connection goes on.
 * http-parser cannot parse such a request, so when it stops at the method
 * the letters it took (a prefix of the method it was matching: its method
 * and index) and the ones after are collected up to the space, over as many
 * reads as they come in; then the request is parsed as SOURCE, which no
 * route takes, and on_headers_complete puts the method back (id -1).  The
 * outcome does not depend on how the bytes were cut (fuzz_http holds it to
 * that).  Not a token of 1 to 31 characters followed by a space: 400.
 */
static void conn_parse(http_conn_t *c, const char *data, size_t len);

static void conn_um_read(http_conn_t *c, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && data[i] && (isalnum((unsigned char)data[i]) || strchr("!#$%&'*+-.^_`|~", data[i]))) {
        if (c->um_len >= sizeof c->um - 1) {
            c->um_state = UM_NONE;
            conn_reject(c, 400);
            return;
        }
        c->um[c->um_len++] = data[i++];
    }
    if (i == len) return;           /* more letters may come (conn_run answers what came before) */
    if (data[i] != ' ' || c->um_len == 0) {
        c->um_state = UM_NONE;
        conn_reject(c, 400);
        return;
    }
    c->um[c->um_len] = '\0';
    c->um_state = UM_PARSING;
    conn_parse(c, "SOURCE", 6);
    conn_parse(c, data + i, len - i);
}

static void conn_unknown_method(http_conn_t *c, const char *rest, size_t n)
{
    c->um_len = 0;
    http_req_t *bad = c->cur;
    if (bad) {                      /* begun: the method's first letters were taken */
        const char *m = http_method_str((enum http_method)c->parser.method);
        size_t k = c->parser.index;
        if (k > strlen(m)) k = strlen(m);
        memcpy(c->um, m, k);
        c->um_len = k;
        queue_remove(c, bad);
        req_free(bad);
        c->cur = NULL;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->um_state = UM_READING;
    conn_um_read(c, rest, n);
}

static void conn_reject_budget(http_conn_t *c, int status, int budget);

/* Parse len bytes.  When the parser stops at a head that waits for the
 * gate, the rest is kept in c->stash (at most one read: reading stops
 * while the gate waits) for conn_run to parse after the gate. */
static void conn_parse(http_conn_t *c, const char *data, size_t len)
{
    if (c->phase != CONN_ACTIVE) return;                      /* discard: lingering */
    if (c->upgrade_hold) {
        /* Waiting for the answer to an Upgrade: keep what the client sends
         * for the new protocol (a read's worth at most, then reading
         * pauses), and keep reading so that its EOF aborts the request. */
        buf_append(&c->stash, data, len);
        return;
    }
    if (c->parse_done) return;                                 /* discard: done */
    if (c->gate_wait) {
        buf_append(&c->stash, data, len);                      /* detached feeds only */
        return;
    }
    if (c->um_state == UM_READING) {
        conn_um_read(c, data, len);
        return;
    }
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_INVALID_METHOD && !c->err_status && c->um_state == UM_NONE) {
        conn_unknown_method(c, data + n, len - n);
        return;
    }
    if (c->err_status) {
        int st = c->err_status, budget = c->err_budget;
        c->err_status = c->err_budget = 0;
        conn_reject_budget(c, st, budget);
        return;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        conn_reject(c, e == HPE_HEADER_OVERFLOW ? 431 : 400);
        return;
    }
    if (c->gate_wait && n < len) buf_append(&c->stash, data + n, len - n);
    if (c->parse_done && c->parser.upgrade && c->phase == CONN_ACTIVE && !c->upgrade_hold) {
        /* An Upgrade request: what follows its head is the new protocol's
         * (kept for http_raw_upgrade); read no more until it is answered. */
        c->upgrade_hold = 1;
        if (n < len) buf_append(&c->stash, data + n, len - n);
    }
    http_req_t *h = c->qhead;
    if (h && h->end_pending && h->dispatched && c->phase == CONN_ACTIVE) {
        h->end_pending = 0;
        req_deliver(c, h, NULL, 0);
    }
}

static void conn_process(http_conn_t *c, const char *data, size_t len)
{
    if (c->upgraded) {
        http_req_t *r = c->qhead;
        if (r && r->data_fn) req_deliver(c, r, data, len);
        else buf_append(&c->stash, data, len);
        conn_update(c);
        return;
    }
    conn_parse(c, data, len);
    conn_run(c);
}

/* Dispatch what can be, and parse what the gate held back, until neither
 * makes progress; then re-arm the timer and the reading. */
static void conn_run(http_conn_t *c)
{
    if (c->advancing) {
        /* An answer from inside conn_advance: the loop below, further up
         * the stack, goes on. */
        conn_update(c);
        return;
    }
    while (c->phase == CONN_ACTIVE) {
        conn_advance(c);
        if (c->phase != CONN_ACTIVE || c->gate_wait || c->parse_done || !c->stash.len) break;
        buf_t s = c->stash;
        c->stash = (buf_t)BUF_INIT;
        conn_parse(c, s.data, s.len);
        buf_free(&s);
    }
    conn_update(c);
}

/* r, first in line, waits for the gate with its body unread.  The gate
 * either answers it (0: the connection is closing) or lets its body in
 * (1: the parser goes on; conn_run feeds it the stash). */
static int conn_gate(http_conn_t *c, http_req_t *r)
{
    r->gate_wait = 0;
    r->dispatched = 1;              /* the gate may answer it like a handler */
    int taken = c->srv->gate(r, c->srv->gate_ud);
    if (taken) return 0;            /* answered and freed; conn_drain_close ran */
    if (r->body_stream) {
        /* The handler gets the head now; the parser stays paused (and the
         * bytes read past the head stashed) until http_req_read_start. */
        int st = body_start(c, r);
        if (st) {
            r->dispatched = 0;
            c->gate_wait = 0;
            conn_reject_budget(c, st, 0);
            return 0;
        }
        c->srv->handler(r, c->srv->ud);
        return 0;
    }
    r->dispatched = 0;
    c->gate_wait = 0;
    http_parser_pause(&c->parser, 0);
    int st = body_start(c, r);
    if (st) {
        conn_reject_budget(c, st, st == 503);
        return 0;
    }
    return 1;
}

/* Dispatch requests while the head of the queue is complete and nothing
 * is in flight.  Re-entry (a handler answering synchronously) just returns:
 * the outer loop picks up the next request. */
static void conn_advance(http_conn_t *c)
{
    if (c->advancing) return;
    c->advancing = 1;
    while (c->phase == CONN_ACTIVE) {
        http_req_t *r = c->qhead;
        if (!r) {
            if (c->reject) {
                c->reject = 0;
                conn_reject_budget(c, c->reject_status, c->reject_budget);
            }
            break;
        }
        if (r->dispatched) break;
        if (r->gate_wait && !conn_gate(c, r)) break;
        if (!r->complete) {
            /* 100 Continue only once the request is at the head: an interim
             * response must not overtake the answers before it. */
            if (r->expect_continue && !r->continue_sent) {
                r->continue_sent = 1;
                conn_write_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
            }
            break;
        }
        r->dispatched = 1;
        c->srv->handler(r, c->srv->ud);
    }
    c->advancing = 0;
}

static void timer_cb(uv_timer_t *t);

static void timer_set(http_conn_t *c, enum timer_kind kind, uint64_t ms, uint64_t repeat)
{
    c->tkind = kind;
    if (c->detached) return;
    if (kind == T_NONE) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, timer_cb, ms, repeat);
}

/* Bytes of ours libuv has not yet handed to the kernel: what a client that
 * does not read leaves behind.  Unlike wq_bytes it shrinks during one big
 * write, as the client takes it. */
static size_t conn_unsent(http_conn_t *c)
{
    return c->detached ? 0 : uv_stream_get_write_queue_size(&c->h.stream);
}

/* What the client has yet to take: libuv's queue and the socket's send
 * queue in the kernel (unsent or unacknowledged: TIOCOUTQ), which alone can
 * hold megabytes, so a client draining it shows progress even while libuv
 * writes nothing. */
static size_t conn_untaken(http_conn_t *c)
{
    size_t n = conn_unsent(c);
    uv_os_fd_t fd;
    int q = 0;
    if (!c->detached && uv_fileno(&c->h.handle, &fd) == 0 && ioctl(fd, TIOCOUTQ, &q) == 0 && q > 0)
        n += (size_t)q;
    return n;
}

/* The send timeout: body_timeout_ms without the client taking any of what
 * we queued (not for the whole answer: a big one to a slow reader is fine). */
static void conn_send_timer(http_conn_t *c)
{
    c->send_mark = conn_untaken(c);
    timer_set(c, T_SEND, c->srv->lim.body_timeout_ms, 0);
}

/* Re-arm the timer and the read flow control for what c waits for now. */
static void conn_update(http_conn_t *c)
{
    if (c->phase != CONN_ACTIVE) return;
    http_server_t *srv = c->srv;
    const struct http_limits *lim = &srv->lim;
    if (!c->detached) {
        /* Parse ahead, but not without bound: at most max_pipeline requests
         * and about one max_body of bodies waiting behind the one in flight. */
        size_t queued = 0;
        for (http_req_t *r = c->qhead; r; r = r->next)
            if (r->complete) queued += r->body.len;
        int want = c->ncomplete < lim->max_pipeline && queued <= lim->max_body && !c->gate_wait &&
                   !(c->upgrade_hold && c->stash.len >= READ_BUF_SIZE) && !c->read_paused;
        if (c->upgraded) want = !c->read_paused && !c->peer_eof;
        if (want && !c->reading) {
            uv_read_start(&c->h.stream, alloc_cb, read_cb);
            c->reading = 1;
        } else if (!want) {
            read_stop(c);
        }
    }
    uint64_t now = c->detached ? 0 : uv_now(srv->loop);
    http_req_t *cur = c->cur;
    if (c->tick_fn && c->qhead && c->qhead->streaming) {
        if (c->tkind != T_TICK) timer_set(c, T_TICK, c->tick_ms, c->tick_ms);
    } else if (c->upgraded || c->upgrade_hold) {
        timer_set(c, T_NONE, 0, 0);  /* the relaying handler owns the time */
    } else if (cur && cur->headers_done && cur->body_stream && (!cur->data_fn || c->read_paused)) {
        timer_set(c, T_NONE, 0, 0);  /* not reading the body: not the client's fault */
    } else if (cur && !cur->headers_done) {
        timer_set(c, T_HEAD, c->head_deadline > now ? c->head_deadline - now : 0, 0);
    } else if (cur && cur->gate_wait) {
        /* Behind a request in flight: its handler owns the time. */
        timer_set(c, T_NONE, 0, 0);
    } else if (cur) {
        uint64_t dl = c->last_body + lim->body_timeout_ms;
        /* ... or the end of the rate window (body_window_ok). */
        if (lim->min_body_rate && lim->body_grace_ms && cur->win_t0 && cur->win_t0 + lim->body_grace_ms < dl)
            dl = cur->win_t0 + lim->body_grace_ms;
        timer_set(c, T_BODY, dl > now ? dl - now : 0, 0);
    } else if (!c->qhead) {
        /* A new connection gets head_timeout for its first request from
         * accept, so sending nothing (or only CRLFs) does not reset it. */
        if (c->nrequests && conn_unsent(c)) {
            /* The last answer is still leaving: the connection is not idle
             * until it has (a big download to a slow reader must not be cut
             * at idle_timeout), but the client must keep taking it. */
            if (c->tkind != T_SEND) conn_send_timer(c);
        } else if (c->nrequests) {
            timer_set(c, T_IDLE, lim->idle_timeout_ms, 0);
        } else {
            timer_set(c, T_HEAD, c->head_deadline > now ? c->head_deadline - now : 0, 0);
        }
    } else {
        timer_set(c, T_NONE, 0, 0);
    }
}

/* The body timer fired: is it only the end of a rate window the body
 * passed?  A body must bring min_body_rate * body_grace bytes in each
 * window of body_grace from when it was first wanted (10 KiB per 10 s by
 * default), not on average since then: a fast start buys no time to hold
 * the connection afterwards.  Then a new window starts (1); the
 * no-progress timeout or a short window is a 408 (0). */
static int body_window_ok(http_conn_t *c, http_req_t *r)
{
    const struct http_limits *lim = &c->srv->lim;
    uint64_t now = uv_now(c->srv->loop);
    if (now >= c->last_body + lim->body_timeout_ms) return 0;
    if (!lim->min_body_rate || !lim->body_grace_ms || !r->win_t0) return 1;     /* not a window's end */
    if (now < r->win_t0 + lim->body_grace_ms) return 1;                         /* early wake-up */
    uint64_t need = (uint64_t)lim->min_body_rate * lim->body_grace_ms / 1000;
    if (r->body_rx - r->win_len < need) return 0;
    r->win_t0 = now;
    r->win_len = r->body_rx;
    return 1;
}

static void timer_cb(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    switch (c->tkind) {
    case T_TICK:
        if (c->tick_fn && c->qhead && c->qhead->streaming) c->tick_fn(c->qhead, c->tick_ud);
        break;
    case T_BODY:
        if (c->cur && body_window_ok(c, c->cur)) {
            conn_update(c);
            break;
        }
        /* fall through */
    case T_HEAD:
        if (c->tls && !tls_conn_established(c->tls)) {
            LOG_I("tls error", "peer=%s error=\"handshake not complete after %llu ms\"", c->peer,
                  (unsigned long long)c->srv->lim.head_timeout_ms);
            conn_close(c);
        } else if (c->cur || !c->nrequests) conn_reject(c, 408);
        else conn_close(c);
        break;
    case T_SEND:
        if (!conn_unsent(c) && c->phase == CONN_ACTIVE) {
            conn_update(c);                 /* all handed to the kernel: now idle */
            break;
        }
        if (conn_untaken(c) < c->send_mark) {
            conn_send_timer(c);             /* the client took some: another period */
            break;
        }
        conn_close(c);
        break;
    case T_IDLE:
    case T_LINGER:
        conn_close(c);
        break;
    case T_NONE:
        break;
    }
}

static void conn_free(http_conn_t *c)
{
    http_server_t *srv = c->srv;
    http_req_t *r = c->qhead;
    c->qhead = c->qtail = c->cur = NULL;
    while (r) {
        http_req_t *next = r->next;
        r->next = NULL;
        if (r->dispatched) {
            /* Still owned by its handler: detach, then tell it. */
            access_log(r, r->status, " aborted=1");
            req_uncharge(r);        /* the server may go before the handler answers */
            r->conn = NULL;
            r->aborted = 1;
            if (r->on_abort) r->on_abort(r, r->abort_ud);
        } else {
            req_free(r);
        }
        r = next;
    }
    buf_free(&c->url);
    buf_free(&c->field);
    buf_free(&c->value);
    buf_free(&c->stash);
    buf_free(&c->out);
    tls_conn_free(c->tls);
    if (c->prev) c->prev->next = c->next;
    else if (srv->conns == c) srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nconns--;
    int detached = c->detached;
    free(c);
    if (!detached) srv_handle_closed(srv);
}

static void conn_handle_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    if (--c->open_handles == 0) conn_free(c);
}

/* Hard close.  Memory goes in the close callbacks. */
static void conn_close(http_conn_t *c)
{
    if (c->phase == CONN_CLOSING) return;
    if (c->tls && !c->wq_bytes && !c->peer_eof && !c->detached) {
        /* Nothing is queued, so the alert leaves at once (uv_write writes
         * synchronously into an empty queue).  A write error re-enters
         * conn_close, which then finds nothing more to say. */
        conn_tls_close_notify(c);
        if (c->phase == CONN_CLOSING) return;
    }
    c->phase = CONN_CLOSING;
    c->tick_fn = NULL;
    if (c->detached) return;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close(&c->h.handle, conn_handle_closed);
}

/* Our FIN, after the queued writes: the one place the client's write side
 * is shut (with conn_write and read_cb/conn_process, the connection's whole
 * I/O, where a transport such as TLS sits). */
static int conn_shutdown_write(http_conn_t *c, uv_shutdown_cb cb)
{
    if (c->wr_shut) return -EALREADY;
    conn_tls_close_notify(c);       /* over TLS, close_notify goes before the FIN */
    if (c->phase == CONN_CLOSING) return -ECONNRESET;
    c->wr_shut = 1;
    c->shutdown_req.data = c;
    return uv_shutdown(&c->shutdown_req, &c->h.stream, cb);
}

static void shutdown_cb(uv_shutdown_t *s, int status)
{
    http_conn_t *c = s->data;
    if (c->phase == CONN_CLOSING) return;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    timer_set(c, T_LINGER, c->srv->lim.linger_ms, 0);
}

/* Polite close: drop unanswered pipelined requests, FIN after the queued
 * writes, then linger reading and discarding. */
static void conn_drain_close(http_conn_t *c)
{
    if (c->phase != CONN_ACTIVE) return;
    c->phase = CONN_DRAINING;
    c->parse_done = 1;
    c->gate_wait = 0;
    buf_free(&c->stash);
    c->tick_fn = NULL;
    http_req_t *r = c->qhead;
    while (r) {
        http_req_t *next = r->next;
        if (!r->dispatched) {
            queue_remove(c, r);
            req_free(r);
        }
        r = next;
    }
    if (c->detached) {
        conn_close(c);
        return;
    }
    if (!c->reading && !c->peer_eof) {
        uv_read_start(&c->h.stream, alloc_cb, read_cb);
        c->reading = 1;
    }
    if (c->tls && !tls_conn_failed(c->tls) && !tls_conn_established(c->tls)) {
        conn_close(c);              /* no handshake: nothing can be said (503, 408) */
        return;
    }
    /* The send timeout bounds a client that never reads our answer. */
    conn_send_timer(c);
    if (conn_shutdown_write(c, shutdown_cb) < 0) conn_close(c);
}

static const char *reject_code(int status, int budget, const char **msg)
{
    if (status == 503 && budget) {
        *msg = "too many request bodies are being received; try again";
        return "unavailable";
    }
    switch (status) {
    case 400: *msg = "malformed request"; return "bad_request";
    case 408: *msg = "request not received in time"; return "timeout";
    case 413: *msg = "request body too large"; return "payload_too_large";
    case 414: *msg = "URL too long"; return "uri_too_long";
    case 417: *msg = "unsupported Expect header"; return "expectation_failed";
    case 431: *msg = "request headers too large"; return "header_too_large";
    case 503: *msg = "too many connections"; return "unavailable";
    case 505: *msg = "HTTP version not supported"; return "version_not_supported";
    default: *msg = "error"; return "error";
    }
}

static void conn_reject(http_conn_t *c, int status)
{
    conn_reject_budget(c, status, 0);
}

/* A parse-level error: stop parsing, answer it after the requests before
 * it, then close.  budget: a 503 for the body budget (Retry-After: 1). */
static void conn_reject_budget(http_conn_t *c, int status, int budget)
{
    if (c->phase != CONN_ACTIVE) return;
    c->parse_done = 1;
    http_req_t *bad = c->cur;
    if (bad && bad->dispatched) {
        /* A streamed body went wrong (too slow, too large, malformed) while
         * its handler owns the request and may have answered part of it:
         * no answer of ours can follow, the client is cut off (on_abort). */
        conn_close(c);
        return;
    }
    const char *method = "-", *path = "-";
    if (bad) {
        queue_remove(c, bad);
    }
    if (c->qhead) {
        /* Earlier requests are still waiting for their answers. */
        c->reject = 1;
        c->reject_status = status;
        c->reject_budget = budget;
        if (bad) req_free(bad);
        /* They may not even be dispatched yet (parsed in this same read). */
        conn_advance(c);
        conn_update(c);
        return;
    }
    const char *msg, *code = reject_code(status, budget, &msg);
    char *body = error_json(code, msg);
    size_t blen = strlen(body);
    buf_t head = BUF_INIT;
    build_head(&head, c, NULL, status, "application/json", (long long)blen, 0, 0, budget ? 1 : 0);
    size_t hlen = head.len;
    char *h = buf_detach(&head);
    uv_buf_t bufs[2] = { uv_buf_init(h, (unsigned)hlen), uv_buf_init(body, (unsigned)blen) };
    conn_write(c, bufs, 2, h, body);
    if (bad) {
        bad->bytes_out = blen;
        access_log(bad, status, NULL);
        req_free(bad);
    } else if (LOG_INFO >= log_min_level) {
        LOG_I("http request", "method=%s path=\"%s\" status=%d bytes=%zu duration_ms=0.0 peer=%s", method, path,
              status, blen, c->peer);
    }
    conn_drain_close(c);
}

static http_conn_t *conn_new(http_server_t *srv)
{
    http_conn_t *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->h.handle.data = c;
    c->timer.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    return c;
}

static void peer_name(http_conn_t *c, int is_tcp)
{
    if (!is_tcp) {
        snprintf(c->peer, sizeof c->peer, "unix");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
        }
    } else {
        snprintf(c->peer, sizeof c->peer, "?");
    }
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct listener *l = ls->data;
    http_server_t *srv = l->srv;
    if (status < 0) {
        LOG_W("http accept failed", "error=\"%s\"", uv_strerror(status));
        return;
    }
    http_conn_t *c = conn_new(srv);
    int rc = l->is_tcp ? uv_tcp_init(srv->loop, &c->h.tcp) : uv_pipe_init(srv->loop, &c->h.pipe, 0);
    NB_ASSERT(rc == 0);
    c->h.handle.data = c;
    uv_timer_init(srv->loop, &c->timer);
    c->open_handles = 2;
    srv->open_handles++;
    if (uv_accept(ls, &c->h.stream) < 0) {
        conn_close(c);
        return;
    }
    if (l->is_tcp) uv_tcp_nodelay(&c->h.tcp, 1);
    c->head_deadline = uv_now(srv->loop) + srv->lim.head_timeout_ms;
    peer_name(c, l->is_tcp);
    if (l->tls) c->tls = tls_conn_new(l->tls);
    if (srv->nconns > srv->lim.max_connections || srv->stopping) {
        /* Far beyond the limit, do not even spend a write on it. */
        if (srv->nconns > 2 * srv->lim.max_connections) conn_close(c);
        else conn_reject(c, 503);
        return;
    }
    conn_update(c);
}

/* ---- detached connections (fuzzing, tests) --------------------------- */

http_conn_t *http_conn_new_detached(http_server_t *srv)
{
    http_conn_t *c = conn_new(srv);
    c->detached = 1;
    snprintf(c->peer, sizeof c->peer, "detached");
    return c;
}

int http_conn_feed(http_conn_t *c, const void *data, size_t len)
{
    conn_process(c, data, len);
    return c->phase == CONN_ACTIVE ? 0 : -ECONNRESET;
}

const buf_t *http_conn_output(const http_conn_t *c) { return &c->out; }

void http_conn_free_detached(http_conn_t *c)
{
    c->phase = CONN_CLOSING;
    conn_free(c);
}

/* ---- server ---------------------------------------------------------- */

static void srv_maybe_stopped(http_server_t *srv)
{
    if (srv->stopping && srv->open_handles == 0 && !srv->stop_called) {
        srv->stop_called = 1;
        if (srv->stop_cb) srv->stop_cb(srv, srv->stop_ud);    /* may free srv */
    }
}

static void stop_timer_closed(uv_handle_t *h);

/* Once only the stop timer is left, close it too; the stop callback then
 * comes from its close callback. */
static void srv_close_stop_timer(http_server_t *srv)
{
    if (srv->stop_timer_closing) return;
    srv->stop_timer_closing = 1;
    uv_close((uv_handle_t *)&srv->stop_timer, stop_timer_closed);
}

static void srv_handle_closed(http_server_t *srv)
{
    srv->open_handles--;
    if (srv->stopping && srv->open_handles == 1 && !srv->stop_timer_closing) srv_close_stop_timer(srv);
    srv_maybe_stopped(srv);
}

http_server_t *http_server_new(uv_loop_t *loop, const struct http_limits *lim, http_handler_fn handler,
                               void *ud)
{
    http_server_t *srv = xcalloc(1, sizeof *srv);
    srv->loop = loop;
    if (lim) srv->lim = *lim;
    else http_limits_default(&srv->lim);
    srv->handler = handler;
    srv->ud = ud;
    uv_timer_init(loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    srv->open_handles = 1;
    return srv;
}

const struct http_limits *http_server_limits(const http_server_t *srv) { return &srv->lim; }
size_t http_server_body_bytes(const http_server_t *srv) { return srv->body_used; }

void http_server_set_gate(http_server_t *srv, http_gate_fn gate, void *ud)
{
    srv->gate = gate;
    srv->gate_ud = ud;
}
size_t http_server_connections(const http_server_t *srv) { return srv->nconns; }

int http_server_set_csp(http_server_t *srv, const char *csp)
{
    if (csp && !header_value_ok(csp)) return -EINVAL;
    free(srv->csp);
    srv->csp = csp ? xstrdup(csp) : NULL;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    http_server_t *srv = l->srv;
    if (l->unix_path) unlink(l->unix_path);
    free(l->unix_path);
    free(l);
    srv_handle_closed(srv);
}

/* A leftover socket file nobody answers on is replaced; a live one is not. */
static int unix_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    return rc < 0 && e == ECONNREFUSED;
}

int http_server_listen(http_server_t *srv, const char *addr, nb_err_t *err)
{
    return http_server_listen_tls(srv, addr, NULL, err);
}

int http_server_listen_tls(http_server_t *srv, const char *addr, tls_ctx_t *tls, nb_err_t *err)
{
    if (srv->stopping) return err_set(err, -EINVAL, "server is stopping");
    if (srv->nls == MAX_LISTENERS) return err_set(err, -ENOSPC, "too many listeners");
    struct listener *l = xcalloc(1, sizeof *l);
    l->srv = srv;
    l->tls = tls;
    l->h.handle.data = l;
    int rc;
    if (strncmp(addr, "unix:", 5) == 0) {
        const char *path = addr + 5;
        if (!*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            free(l);
            return err_set(err, -EINVAL, "bad unix socket path: %s", addr);
        }
        uv_pipe_init(srv->loop, &l->h.pipe, 0);
        rc = uv_pipe_bind(&l->h.pipe, path);
        if (rc == UV_EADDRINUSE && unix_stale(path)) {
            unlink(path);
            rc = uv_pipe_bind(&l->h.pipe, path);
        }
        if (rc == 0) l->unix_path = xstrdup(path);
        /* chmod before listen(): until listen nobody can connect, so the
         * umask-given mode is never usable. */
        if (rc == 0 && chmod(path, 0660) < 0) rc = -errno;
    } else {
        char host[256];
        const char *port_s;
        if (addr[0] == '[') {
            const char *end = strchr(addr, ']');
            if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) {
                free(l);
                return err_set(err, -EINVAL, "bad listen address: %s", addr);
            }
            memcpy(host, addr + 1, (size_t)(end - addr - 1));
            host[end - addr - 1] = '\0';
            port_s = end + 2;
        } else {
            const char *colon = strrchr(addr, ':');
            if (!colon || (size_t)(colon - addr) >= sizeof host) {
                free(l);
                return err_set(err, -EINVAL, "bad listen address: %s (want HOST:PORT or unix:PATH)", addr);
            }
            memcpy(host, addr, (size_t)(colon - addr));
            host[colon - addr] = '\0';
            port_s = colon + 1;
        }
        char *endp;
        long port = strtol(port_s, &endp, 10);
        if (!*port_s || *endp || port < 0 || port > 65535) {
            free(l);
            return err_set(err, -EINVAL, "bad port in %s", addr);
        }
        if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
        struct sockaddr_storage ss;
        unsigned flags = 0;
        if (strchr(host, ':')) {
            rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
            flags = UV_TCP_IPV6ONLY;
        } else {
            rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
        }
        if (rc < 0) {
            free(l);
            return err_set(err, -EINVAL, "bad address in %s", addr);
        }
        uv_tcp_init(srv->loop, &l->h.tcp);
        l->is_tcp = 1;
        rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, flags);
    }
    if (rc == 0) rc = uv_listen(&l->h.stream, 511, on_connection);
    srv->open_handles++;
    if (rc < 0) {
        char *path = l->unix_path;
        l->unix_path = NULL;      /* not ours to unlink if bind failed; ours if listen failed */
        if (path) unlink(path);
        free(path);
        uv_close(&l->h.handle, listener_closed);
        return err_set(err, rc, "listen on %s: %s", addr, uv_strerror(rc));
    }
    srv->ls[srv->nls++] = l;
    LOG_I("http listening", "addr=%s tls=%s", addr, tls ? "yes" : "no");
    return 0;
}

static int srv_port_where(const http_server_t *srv, int plain_only)
{
    for (size_t i = 0; i < srv->nls; i++) {
        if (!srv->ls[i]->is_tcp || (plain_only && srv->ls[i]->tls)) continue;
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getsockname(&srv->ls[i]->h.tcp, (struct sockaddr *)&ss, &len) < 0) return -1;
        if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return -1;
}

int http_server_port(const http_server_t *srv) { return srv_port_where(srv, 0); }
int http_server_plain_port(const http_server_t *srv) { return srv_port_where(srv, 1); }

static void stop_timer_closed(uv_handle_t *h)
{
    srv_handle_closed(h->data);
}

/* The stop deadline: whatever is still open is closed now. */
static void stop_deadline(uv_timer_t *t)
{
    http_server_t *srv = t->data;
    for (http_conn_t *c = srv->conns; c; c = c->next)
        if (!c->detached) conn_close(c);
    if (srv->open_handles == 1) srv_close_stop_timer(srv);
}

void http_server_stop(http_server_t *srv, http_stop_fn cb, void *ud)
{
    NB_ASSERT(!srv->stopping);
    srv->stopping = 1;
    srv->stop_cb = cb;
    srv->stop_ud = ud;
    for (size_t i = 0; i < srv->nls; i++) uv_close(&srv->ls[i]->h.handle, listener_closed);
    srv->nls = 0;
    http_conn_t *next;
    for (http_conn_t *c = srv->conns; c; c = next) {
        next = c->next;
        if (c->detached || c->phase != CONN_ACTIVE) continue;
        http_req_t *h = c->qhead;
        if (!h || !h->dispatched || h->endless) {
            conn_close(c);          /* idle, still receiving, or SSE */
        } else {
            c->close_after = 1;     /* answer in flight: let it finish */
            c->parse_done = 1;
        }
    }
    /* Listeners and closing connections still count until their close
     * callbacks; those callbacks close the stop timer once it is alone. */
    if (srv->open_handles == 1) srv_close_stop_timer(srv);
    else uv_timer_start(&srv->stop_timer, stop_deadline, srv->lim.stop_timeout_ms, 0);
}

void http_server_free(http_server_t *srv)
{
    if (!srv) return;
    /* The stop timer lives in the loop until http_server_stop's callback. */
    NB_ASSERT(srv->stop_called);
    free(srv->csp);
    free(srv);
}

/* ---- relaying (http/proxy) ------------------------------------------- */

/* Hand bytes of a streamed body or an upgraded connection to the request's
 * reader.  The reader may answer nothing, but what it calls (a write that
 * fails, http_stream_drop) may close the connection: 1 if c is still
 * active afterwards.  conn_run is held off meanwhile (advancing), so an
 * answer cannot start parsing from under the parser that called us. */
static int req_deliver(http_conn_t *c, http_req_t *r, const char *data, size_t len)
{
    if (!r->data_fn) return c->phase == CONN_ACTIVE;
    unsigned adv = c->advancing;
    c->advancing = 1;
    r->data_fn(r, data, len, r->data_ud);
    c->advancing = adv;
    return c->phase == CONN_ACTIVE;
}

void http_req_set_body_stream(http_req_t *r) { r->body_stream = 1; }
int http_req_body_streamed(const http_req_t *r) { return r->body_stream; }
long long http_req_content_length(const http_req_t *r) { return r->content_length; }
int http_req_body_chunked(const http_req_t *r) { return r->body_chunked; }
int http_req_upgrade_wanted(const http_req_t *r) { return r->upgrade; }

int http_req_keep_alive(const http_req_t *r)
{
    return r->conn && r->keep_alive && !r->conn->close_after && r->conn->phase == CONN_ACTIVE;
}

/* (Re)start the clocks of a body the handler reads again. */
static void body_clock_restart(http_conn_t *c, http_req_t *r)
{
    if (c->detached) return;
    r->win_t0 = c->last_body = uv_now(c->srv->loop);
    r->win_len = r->body_rx;
}

int http_req_read_start(http_req_t *r, http_data_fn fn, void *ud)
{
    http_conn_t *c = r->conn;
    if (!c || c->phase != CONN_ACTIVE) return -ECONNRESET;
    if (!r->dispatched || c->qhead != r) return -EINVAL;
    r->data_fn = fn;
    r->data_ud = ud;
    c->read_paused = 0;
    if (c->upgraded) {
        if (c->stash.len) {
            buf_t st = c->stash;
            c->stash = (buf_t)BUF_INIT;
            int alive = req_deliver(c, r, st.data, st.len);
            buf_free(&st);
            if (!alive) return 0;
        }
        if (c->peer_eof) req_deliver(c, r, NULL, 0);
        else conn_update(c);
        return 0;
    }
    if (!r->body_stream) return -EINVAL;
    if (c->gate_wait && c->cur == r) {
        /* First call: let the parser go on into the body. */
        c->gate_wait = 0;
        http_parser_pause(&c->parser, 0);
        if (r->expect_continue && !r->continue_sent) {
            r->continue_sent = 1;
            conn_write_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        body_clock_restart(c, r);
    }
    conn_run(c);                    /* parses what was stashed, re-arms reading */
    return 0;
}

void http_req_read_pause(http_req_t *r, int pause)
{
    http_conn_t *c = r->conn;
    if (!c || c->phase != CONN_ACTIVE || c->qhead != r) return;
    if (!!pause == c->read_paused) return;
    c->read_paused = pause ? 1 : 0;
    if (!pause && c->cur == r) body_clock_restart(c, r);
    conn_update(c);
}

void http_req_read_stop(http_req_t *r)
{
    r->data_fn = NULL;
    r->data_ud = NULL;
    http_req_read_pause(r, 1);
}

uv_loop_t *http_req_loop(const http_req_t *r) { return r->loop; }

int http_raw_begin(http_req_t *r, int status)
{
    NB_ASSERT(!r->raw && !r->streaming);
    r->raw = 1;
    r->status = status;
    if (!r->conn || r->conn->phase == CONN_CLOSING) return -ECONNRESET;
    NB_ASSERT(r->conn->qhead == r && r->dispatched);
    return 0;
}

int http_raw_write(http_req_t *r, const void *data, size_t len)
{
    NB_ASSERT(r->raw);
    if (!r->conn || r->conn->phase == CONN_CLOSING) return -ECONNRESET;
    if (len == 0) return 0;
    char *copy = xmalloc(len);
    memcpy(copy, data, len);
    uv_buf_t b = uv_buf_init(copy, (unsigned)len);
    r->bytes_out += len;
    conn_write(r->conn, &b, 1, copy, NULL);
    return r->conn && r->conn->phase != CONN_CLOSING ? 0 : -ECONNRESET;
}

int http_raw_write_take(http_req_t *r, char *data, size_t len)
{
    NB_ASSERT(r->raw);
    if (!r->conn || r->conn->phase == CONN_CLOSING || len == 0) {
        free(data);
        return len == 0 && r->conn ? 0 : -ECONNRESET;
    }
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    r->bytes_out += len;
    conn_write(r->conn, &b, 1, data, NULL);
    return r->conn && r->conn->phase != CONN_CLOSING ? 0 : -ECONNRESET;
}

int http_raw_write_in(http_req_t *r, char *block, const char *data, size_t len)
{
    NB_ASSERT(r->raw);
    if (!r->conn || r->conn->phase == CONN_CLOSING || len == 0) {
        free(block);
        return len == 0 && r->conn ? 0 : -ECONNRESET;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    r->bytes_out += len;
    conn_write(r->conn, &b, 1, block, NULL);
    return r->conn && r->conn->phase != CONN_CLOSING ? 0 : -ECONNRESET;
}

void http_raw_on_drain(http_req_t *r, size_t low, http_drain_fn fn, void *ud)
{
    r->drain_fn = fn;
    r->drain_ud = ud;
    r->drain_low = low;
}

int http_raw_sink_fd(http_req_t *r)
{
    http_conn_t *c = r->conn;
    if (!r->raw || !c || c->phase != CONN_ACTIVE || c->detached || c->tls || c->upgraded || c->wr_shut ||
        c->qhead != r)
        return -ENOTSUP;
    if (c->wq_bytes) return -EAGAIN;
    uv_os_fd_t fd;
    if (uv_fileno(&c->h.handle, &fd) < 0) return -ENOTSUP;
    return fd;
}

void http_raw_sent(http_req_t *r, size_t n)
{
    r->bytes_out += n;
}

int http_raw_upgrade(http_req_t *r)
{
    NB_ASSERT(r->raw);
    http_conn_t *c = r->conn;
    if (!c || c->phase != CONN_ACTIVE) return -ECONNRESET;
    if (!r->upgrade || c->qhead != r) return -EINVAL;
    c->upgraded = 1;
    c->upgrade_hold = 0;
    r->endless = 1;                 /* a graceful stop closes it */
    r->status = 101;
    conn_update(c);
    return 0;
}

static void raw_shutdown_cb(uv_shutdown_t *s, int status)
{
    http_conn_t *c = s->data;
    c->shut_done = 1;
    if (c->phase == CONN_CLOSING) return;
    if (status < 0 || c->close_on_shut) conn_close(c);
}

int http_raw_shutdown(http_req_t *r)
{
    http_conn_t *c = r->conn;
    if (!c || c->phase != CONN_ACTIVE) return -ECONNRESET;
    if (!c->upgraded) return -EINVAL;
    if (c->wr_shut) return 0;
    if (c->detached) {
        c->wr_shut = c->shut_done = 1;
        return 0;
    }
    if (conn_shutdown_write(c, raw_shutdown_cb) < 0) conn_close(c);
    return 0;
}

int http_raw_end(http_req_t *r, int keep_alive)
{
    NB_ASSERT(r->raw);
    if (!r->conn || r->conn->phase == CONN_CLOSING) return req_answer_dead(r);
    http_conn_t *c = r->conn;
    r->drain_fn = NULL;
    r->data_fn = NULL;
    c->read_paused = 0;
    if (c->upgraded) {
        /* The pipe is done: close once what we queued has left. */
        access_log(r, r->status, NULL);
        queue_remove(c, r);
        req_free(r);
        c->parse_done = 1;
        if (c->detached || (c->wr_shut && c->shut_done)) {
            conn_close(c);
        } else {
            c->close_on_shut = 1;
            if (!c->wr_shut && conn_shutdown_write(c, raw_shutdown_cb) < 0) conn_close(c);
        }
        return 0;
    }
    if (!keep_alive) r->keep_alive = 0;
    req_done(r);
    return 0;
}
