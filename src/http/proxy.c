/*
 * http/proxy — the reverse proxy in front of users' notebook servers.  See
 * proxy.h for what is forwarded; this note explains how an exchange runs.
 *
 * An exchange (struct exch) pairs one client request (server.c's http_req_t,
 * whose connection I/O stays in server.c so TLS can sit under it) with one
 * upstream connection (struct upconn, a libuv TCP handle of ours).
 *
 *   1. proxy_pass builds the upstream request head at once (the request's
 *      headers live in its arena), takes an idle pooled connection or
 *      connects a new one, and writes the head.  A request with a body
 *      then asks the server for it (http_req_read_start) and relays each
 *      piece; a chunked body is re-chunked piece by piece.
 *   2. The upstream's answer goes through an http_parser (HTTP_RESPONSE).
 *      At the end of its head the filtered head is written to the client
 *      (http_raw_begin/http_raw_write) and the body follows piece by piece:
 *      as it came when it has a Content-Length, re-chunked otherwise (a
 *      chunked or close-delimited answer to an HTTP/1.1 client; to an
 *      HTTP/1.0 client the end is our close).
 *   3. A 101 turns both sides into pipes (splice): bytes go through
 *      unmodified, an EOF on one side becomes a shutdown of the other's
 *      write side, and the exchange ends once both directions ended.
 *
 * Back-pressure, both ways and in every phase: when the receiving side's
 * unsent bytes pass PROXY_HIGH_WATER, reading from the sending side stops
 * (http_req_read_pause for the client, uv_read_stop for the upstream); it
 * resumes when the queue falls to PROXY_LOW_WATER (upstream write callback,
 * http_raw_on_drain).  So what a transfer holds is a high-water mark plus
 * one read per direction (256 KiB from the upstream, 64 KiB from the client),
 * whatever its size.
 *
 * Splice.  The rest of a large Content-Length body going to a plain
 * (not TLS) client does not come up to us at all: once what was read with
 * the head has left, the body moves upstream socket -> pipe -> client
 * socket with splice(2), page references instead of two copies per byte
 * (the copies were most of nbhub's CPU in a 100 MiB download: issue 17's
 * 0.66x of direct).  The two sockets are watched through dup()s of their
 * descriptors with uv_poll, since libuv's own handles stay in place, idle
 * (nobody reads the upstream meanwhile; the server keeps reading the
 * client, so a client that goes away still aborts the exchange).  The
 * pipe holds at most SPLICE_PIPE bytes and is counted as buffered; it is
 * refilled only once the client took all of it, so a slow client holds
 * the upstream exactly as the copying path's high-water mark does.  Under
 * TLS, chunked or close-delimited answers, and small bodies, the copying
 * path below stays.
 *
 * Errors.  Before a byte of the answer went to the client, a failure of the
 * upstream (refused, reset, malformed head, timeout) hands the request back
 * to the caller's on_error (or a 502).  After that the client's connection
 * is closed: it sees a truncated answer, never one we made up.  A client
 * that goes away (on_abort) closes the upstream connection.
 *
 * Pooling.  Upstream connections are kept alive (HTTP/1.1) and pooled per
 * host:port, but only requests without a body take a pooled connection: a
 * pooled connection may have been closed by the server while idle, which we
 * learn only when our request fails on it before any answer; a bodiless
 * request is then retried once on a new connection, while a body already
 * read from the client could not be sent again.
 *
 * Lifetime.  An exch is freed once its request was answered (x->req NULL)
 * and its upstream connection released (x->up NULL); an upconn is freed in
 * the close callbacks of its two handles (socket and timer).
 */
#include "http/proxy.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads of the upstream: 256 KiB, so a download costs a quarter of the
 * read/write calls and loop turns 64 KiB reads did (issue 17: a 100 MiB
 * download went at 0.7x direct with 64 KiB). */
#define UP_READ_SIZE (256 * 1024)
#define PROXY_MAX_HEAD (64 * 1024)
/* Splice: a body with at least SPLICE_MIN bytes left after the read that
 * brought its head (below, the setup's syscalls are not worth it); the
 * pipe's size, and what one pump moves before it lets the loop run. */
#define SPLICE_MIN (1024 * 1024)
#define SPLICE_PIPE (256 * 1024)
#define SPLICE_TURN (4 * 1024 * 1024)  /* an upstream answer head larger than this is malformed (-EPROTO) */

static struct proxy_config cfg = {
    .ws_idle_timeout_ms = 3600000,
    .connect_timeout_ms = 10000,
    .pool_max_idle = 32,
    .no_pool = 0,
    .pool_idle_ms = 30000,
    .activity_min_ms = 1000,
};

struct exch;

struct upconn {
    uv_tcp_t tcp;
    uv_timer_t timer;               /* connect timeout, idle in the pool, websocket idle */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    int open_handles;
    char key[80];                   /* "host:port" for the pool */
    struct upconn *pnext;           /* pool list */
    struct exch *x;                 /* NULL while pooled or closing */
    size_t wq_bytes;
    uint64_t last_traffic;          /* uv_now of the last byte (websocket idle) */
    int connect_err;                /* uv_tcp_connect failed at once: reported from the timer */
    unsigned connected : 1, reading : 1, closing : 1, reused : 1, pooled : 1, shut : 1, shut_done : 1;
};

enum framing { FR_NONE, FR_LENGTH, FR_CHUNK, FR_CLOSE };

struct hdr {
    char *name, *value;
};

/* The splice path of one exchange (see the note at the top).  Freed in the
 * close callbacks of its two poll handles, after the exchange let go of it. */
struct splicer {
    uv_poll_t up_poll, cl_poll;
    int up_fd, cl_fd;               /* dup()s, ours; the originals stay with libuv */
    int pipe_r, pipe_w;
    size_t in_pipe;                 /* bytes in the pipe */
    uint64_t left;                  /* body bytes still to read from the upstream */
    int up_events, cl_events;       /* what each poll watches now */
    int open_handles;
    struct exch *x;                 /* NULL once stopped */
};

struct exch {
    struct exch *prev, *next;
    http_req_t *req;                /* NULL once answered */
    struct upconn *up;
    uv_loop_t *loop;
    /* the target, copied */
    char *host;
    int port;
    void (*on_activity)(void *ud);
    void (*on_error)(http_req_t *req, int err, void *ud);
    void *ud;
    uint64_t last_activity;
    /* the request */
    char *head;                     /* upstream request head, kept for a retry */
    size_t head_len;
    int req_chunked, req_has_body, is_head, retryable, ws_wanted, client_minor;
    /* the response */
    http_parser rp;
    buf_t reason, field, value;
    int have_field, in_value;
    size_t head_bytes;              /* of the upstream's answer head: bounded (a user's server is user code) */
    char *drop_cookie;
    struct hdr *hdrs;
    size_t nhdrs, caphdrs;
    enum framing out_framing;
    int keep_client;
    unsigned started : 1,           /* the response head went to the client */
             resp_done : 1, req_done : 1, resp_any : 1, up_keep : 1,
             upgraded : 1, c_eof : 1, u_eof : 1, up_paused : 1, client_paused : 1,
             finishing : 1;
    struct proxy_wsframes c2u, u2c;
    /* What one read of the upstream produced for the client, written at the
     * end of that read in one piece (gather): a small answer's head and body
     * leave in one write, one segment, not two. */
    buf_t outb;
    int gather;
    size_t client_q;                /* client queue as last seen (stats) */
    struct splicer *sp;             /* the body is being spliced */
    unsigned splice_wait : 1;       /* ... once the client's queue is empty */
};

static struct exch *exchanges;
static size_t up_queued, client_queued;   /* bytes in upstream / client write queues (stats.buffered) */
static size_t pipe_queued;                /* bytes in splice pipes (stats.buffered) */
static struct upconn *pool;
static struct proxy_stats stats;
static char rbuf[UP_READ_SIZE];
static int rbuf_busy;
/* The read being parsed, when it is in a malloc'd block (a body being
 * relayed): rp_body may hand the block to the client's write queue instead
 * of copying it (rd_given), and up_read_cb then does not free it. */
static char *rd_block;
static int rd_given;

void proxy_configure(const struct proxy_config *c)
{
    struct proxy_config d = { 3600000, 10000, 32, 0, 30000, 1000 };
    cfg = d;
    if (!c) return;
    if (c->ws_idle_timeout_ms) cfg.ws_idle_timeout_ms = c->ws_idle_timeout_ms;
    if (c->connect_timeout_ms) cfg.connect_timeout_ms = c->connect_timeout_ms;
    if (c->pool_max_idle) cfg.pool_max_idle = c->pool_max_idle;
    cfg.no_pool = c->no_pool;
    if (c->pool_idle_ms) cfg.pool_idle_ms = c->pool_idle_ms;
    if (c->activity_min_ms) cfg.activity_min_ms = c->activity_min_ms;
}

void proxy_get_stats(struct proxy_stats *st)
{
    *st = stats;
}

void proxy_stats_reset_peak(void)
{
    stats.buffered_peak = stats.buffered;
}

/* ---- websocket frame headers ----------------------------------------- */

uint64_t proxy_ws_track(struct proxy_wsframes *t, const unsigned char *p, size_t len)
{
    uint64_t n0 = t->data_frames;
    while (len && !t->broken) {
        if (t->skip) {
            size_t k = t->skip < len ? (size_t)t->skip : len;
            t->skip -= k;
            p += k;
            len -= k;
            continue;
        }
        t->hdr[t->hlen++] = *p++;
        len--;
        if (t->hlen < 2) continue;
        unsigned l7 = t->hdr[1] & 0x7f;
        unsigned need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((t->hdr[1] & 0x80) ? 4 : 0);
        if (t->hlen < need) continue;
        uint64_t plen = l7;
        if (l7 == 126) {
            plen = ((uint64_t)t->hdr[2] << 8) | t->hdr[3];
        } else if (l7 == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | t->hdr[2 + i];
            if (plen >> 63) {
                t->broken = 1;
                break;
            }
        }
        unsigned op = t->hdr[0] & 0x0f;
        if (op <= 2) t->data_frames++;
        else if (op >= 8 && op <= 10) t->control_frames++;
        else {
            t->broken = 1;
            break;
        }
        t->skip = plen;
        t->hlen = 0;
    }
    return t->data_frames - n0;
}

/* Track and count frames for the stats; the number of data frames. */
static uint64_t ws_track(struct proxy_wsframes *t, const char *data, size_t len)
{
    uint64_t c0 = t->control_frames;
    uint64_t n = proxy_ws_track(t, (const unsigned char *)data, len);
    stats.ws_data_frames += n;
    stats.ws_control_frames += t->control_frames - c0;
    return n;
}

/* ---- helpers ---------------------------------------------------------- */

/* 1 if a cookie named name[0..nl) must not cross the proxy: any spelling of
 * nbhub's session cookie (also with a __Host-/__Secure- prefix), and the
 * target's drop_cookie. */
static int cookie_blocked(const char *name, size_t nl, const char *drop)
{
    for (size_t k = 0; k + 13 <= nl; k++)
        if (strncasecmp(name + k, "nbhub_session", 13) == 0) return 1;
    return drop && strlen(drop) == nl && strncmp(name, drop, nl) == 0;
}

/* A Set-Cookie from upstream for a cookie that is nbhub's: a user's server
 * must not plant or overwrite the hub's session (it is served from the
 * hub's origin). */
static int set_cookie_blocked(const char *value, const char *drop)
{
    while (*value == ' ' || *value == '\t') value++;
    const char *e = value + strcspn(value, "=;");
    while (e > value && (e[-1] == ' ' || e[-1] == '\t')) e--;
    return cookie_blocked(value, (size_t)(e - value), drop);
}

/* "name: value\r\n" (headers are most of a head: appended, not formatted). */
static void put_hdr(buf_t *b, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    buf_reserve(b, nl + vl + 4);
    buf_append(b, name, nl);
    buf_append(b, ": ", 2);
    buf_append(b, value, vl);
    buf_append(b, "\r\n", 2);
}

static int hop_by_hop(const char *name)
{
    static const char *const hop[] = { "connection", "keep-alive", "te", "trailer", "trailers",
                                       "transfer-encoding", "upgrade", NULL };
    for (size_t i = 0; hop[i]; i++)
        if (strcasecmp(name, hop[i]) == 0) return 1;
    return strncasecmp(name, "proxy-", 6) == 0;
}

/* 1 if name is one of the comma-separated tokens of a Connection value. */
static int conn_token(const char *list, const char *name)
{
    size_t nl = strlen(name);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - p) == nl && strncasecmp(p, name, nl) == 0) return 1;
        p = e;
    }
    return 0;
}

/* 1 if any Connection header of the request names name. */
static int req_conn_names(http_req_t *req, const char *name)
{
    const char *v;
    for (size_t i = 0; (v = http_header_nth(req, "connection", i)) != NULL; i++)
        if (conn_token(v, name)) return 1;
    return 0;
}

/* Account x's client queue as seen now (the server's queue shrinks without
 * telling us except through the drain callback, so this is as of the last
 * look), and keep the peak. */
static void stats_buffered(struct exch *x)
{
    size_t q = x->req ? http_stream_queued(x->req) : 0;
    client_queued = client_queued - x->client_q + q;
    x->client_q = q;
    size_t b = up_queued + client_queued + pipe_queued;
    stats.buffered = b;
    if (b > stats.buffered_peak) stats.buffered_peak = b;
}

static void activity(struct exch *x, int force)
{
    if (!x->on_activity) return;
    uint64_t now = uv_now(x->loop);
    if (!force && x->last_activity && now - x->last_activity < cfg.activity_min_ms) return;
    x->last_activity = now;
    x->on_activity(x->ud);
}

/* ---- the upstream connection ------------------------------------------ */

static void up_handle_closed(uv_handle_t *h)
{
    struct upconn *u = h->data;
    stats.upstream_handles--;
    if (--u->open_handles == 0) free(u);
}

static void pool_remove(struct upconn *u)
{
    for (struct upconn **pp = &pool; *pp; pp = &(*pp)->pnext)
        if (*pp == u) {
            *pp = u->pnext;
            u->pnext = NULL;
            u->pooled = 0;
            stats.pool_idle--;
            return;
        }
}

static void up_close(struct upconn *u)
{
    if (u->closing) return;
    u->closing = 1;
    if (u->pooled) pool_remove(u);
    u->x = NULL;
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, up_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
}

static struct upconn *up_new(uv_loop_t *loop, const char *key)
{
    struct upconn *u = xcalloc(1, sizeof *u);
    uv_tcp_init(loop, &u->tcp);
    uv_timer_init(loop, &u->timer);
    u->tcp.data = u->timer.data = u->connect_req.data = u->shutdown_req.data = u;
    u->open_handles = 2;
    stats.upstream_handles += 2;
    snprintf(u->key, sizeof u->key, "%s", key);
    return u;
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void up_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void pool_timer(uv_timer_t *t)
{
    up_close(t->data);
}

/* Keep u for a later request to the same host:port, or close it. */
static void pool_put(struct upconn *u)
{
    size_t n = 0;
    for (struct upconn *p = pool; p; p = p->pnext)
        if (strcmp(p->key, u->key) == 0) n++;
    u->x = NULL;
    if (n >= cfg.pool_max_idle || u->closing || cfg.no_pool) {
        up_close(u);
        return;
    }
    u->pooled = 1;
    u->reused = 1;
    u->pnext = pool;
    pool = u;
    stats.pool_idle++;
    /* Read while idle: the server closing it (EOF) or sending anything
     * unasked is the end of this connection (up_read_cb without an
     * exchange).  Reading goes on from the answer it carried to the next
     * request: a stop and a start per request were two epoll_ctl calls
     * (and a failed third) for nothing. */
    if (!u->reading) {
        uv_read_start((uv_stream_t *)&u->tcp, up_alloc, up_read_cb);
        u->reading = 1;
    }
    uv_timer_start(&u->timer, pool_timer, cfg.pool_idle_ms, 0);
}

static struct upconn *pool_get(const char *key)
{
    for (struct upconn *p = pool; p; p = p->pnext)
        if (strcmp(p->key, key) == 0) {
            pool_remove(p);
            uv_timer_stop(&p->timer);
            return p;               /* still reading: exch_send's up_read_start is a no-op */
        }
    return NULL;
}

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct upconn *u = h->data;
    struct exch *x = u->x;
    (void)suggested;
    /* A body with a length or to the close goes out as it came: into a block
     * of its own that the client's write queue can take over. */
    int relay = x && x->started && !x->upgraded && (x->out_framing == FR_LENGTH || x->out_framing == FR_CLOSE);
    if (!rbuf_busy && !relay) {
        rbuf_busy = 1;
        *b = uv_buf_init(rbuf, sizeof rbuf);
    } else {
        *b = uv_buf_init(xmalloc(UP_READ_SIZE), UP_READ_SIZE);
    }
}

/* ---- exchange life ----------------------------------------------------- */

static void exch_free_maybe(struct exch *x)
{
    if (x->req || x->up) return;
    stats_buffered(x);
    if (x->prev) x->prev->next = x->next;
    else exchanges = x->next;
    if (x->next) x->next->prev = x->prev;
    stats.active--;
    if (x->upgraded) stats.upgraded--;
    for (size_t i = 0; i < x->nhdrs; i++) {
        free(x->hdrs[i].name);
        free(x->hdrs[i].value);
    }
    free(x->hdrs);
    buf_free(&x->reason);
    buf_free(&x->field);
    buf_free(&x->value);
    buf_free(&x->outb);
    free(x->head);
    free(x->host);
    free(x->drop_cookie);
    free(x);
}

/* ---- splice ---------------------------------------------------------------- */

static void sp_closed(uv_handle_t *h)
{
    struct splicer *s = h->data;
    if (--s->open_handles == 0) free(s);
}

/* Stop splicing (the body is through, or the exchange ends early: what is
 * still in the pipe is then dropped with it).  The polls stop at once
 * (uv_close takes them out of epoll), so our descriptors can go now. */
static void sp_stop(struct exch *x)
{
    struct splicer *s = x->sp;
    if (!s) return;
    x->sp = NULL;
    s->x = NULL;
    pipe_queued -= s->in_pipe;
    s->in_pipe = 0;
    uv_close((uv_handle_t *)&s->up_poll, sp_closed);
    uv_close((uv_handle_t *)&s->cl_poll, sp_closed);
    close(s->up_fd);
    close(s->cl_fd);
    close(s->pipe_r);
    close(s->pipe_w);
    stats_buffered(x);
}

/* Let go of the upstream connection: back to the pool if it can carry
 * another request, else closed. */
static void exch_release_up(struct exch *x, int reusable)
{
    sp_stop(x);
    struct upconn *u = x->up;
    if (!u) return;
    x->up = NULL;
    u->x = NULL;
    if (reusable && !u->closing && u->wq_bytes == 0) pool_put(u);
    else up_close(u);
}

/* The request is answered: forget it. */
static void exch_end_req(struct exch *x, int keep)
{
    http_req_t *r = x->req;
    if (!r) return;
    x->req = NULL;
    http_raw_end(r, keep);
}

/* Failure of the upstream.  Before the answer started: the caller's
 * on_error (or 502) answers.  After: the client's connection is closed. */
static void exch_fail(struct exch *x, int err)
{
    exch_release_up(x, 0);
    http_req_t *r = x->req;
    if (r) {
        x->req = NULL;
        if (!x->started) {
            if (http_req_aborted(r)) {
                http_raw_begin(r, 502);
                http_raw_end(r, 0);
            } else if (x->on_error) {
                /* The caller owns it again: nothing of ours may be called. */
                http_raw_on_drain(r, 0, NULL, NULL);
                http_req_read_stop(r);
                http_req_on_abort(r, NULL, NULL);
                x->on_error(r, err, x->ud);
            } else {
                http_req_read_stop(r);
                http_req_on_abort(r, NULL, NULL);
                http_respond_error(r, 502, "bad_gateway", "the server behind this address did not answer (%s)",
                                   strerror(-err));
            }
        } else {
            http_stream_drop(r);
            http_raw_end(r, 0);
        }
    }
    exch_free_maybe(x);
}

static void on_client_abort(http_req_t *req, void *ud)
{
    struct exch *x = ud;
    (void)req;
    exch_release_up(x, 0);
    http_req_t *r = x->req;
    x->req = NULL;
    if (r) {
        if (!x->started) http_raw_begin(r, 0);
        http_raw_end(r, 0);
    }
    exch_free_maybe(x);
}

/* ---- writing upstream --------------------------------------------------- */

struct upw {
    uv_write_t w;
    struct upconn *u;
    size_t len;
    char data[];
};

static void up_write_cb(uv_write_t *w, int status)
{
    struct upw *uw = (struct upw *)w;
    struct upconn *u = uw->u;
    u->wq_bytes -= uw->len;
    up_queued -= uw->len;
    free(uw);
    struct exch *x = u->x;
    if (!x) return;
    if (status < 0) {
        /* A reset while writing; the read side will tell what was answered. */
        if (!x->resp_any) exch_fail(x, status == UV_ECONNRESET || status == UV_EPIPE ? -ECONNRESET : status);
        return;
    }
    if (x->client_paused && u->wq_bytes <= PROXY_LOW_WATER && x->req) {
        x->client_paused = 0;
        http_req_read_pause(x->req, 0);
    }
}

/* Send bytes upstream: into an empty queue of a connected socket with
 * uv_try_write first (no copy, no write request, no epoll_ctl for libuv's
 * drain), what is left copied and queued; prefix/suffix frame a chunk. */
static void up_write(struct exch *x, const char *pre, size_t plen, const char *data, size_t len, const char *suf,
                     size_t slen)
{
    struct upconn *u = x->up;
    if (!u || u->closing) return;
    size_t total = plen + len + slen;
    if (u->connected && !u->wq_bytes && total) {
        uv_buf_t v[3];
        unsigned nv = 0;
        if (plen) v[nv++] = uv_buf_init((char *)pre, (unsigned)plen);
        if (len) v[nv++] = uv_buf_init((char *)data, (unsigned)len);
        if (slen) v[nv++] = uv_buf_init((char *)suf, (unsigned)slen);
        int w = uv_try_write((uv_stream_t *)&u->tcp, v, nv);
        if (w > 0) {
            if ((size_t)w == total) return;
            /* The rest goes the queued way, from where the socket stopped. */
            size_t k = (size_t)w, t = plen < k ? plen : k;
            pre += t;
            plen -= t;
            k -= t;
            t = len < k ? len : k;
            data += t;
            len -= t;
            k -= t;
            suf += k;
            slen -= k;
            total -= (size_t)w;
        }
    }
    struct upw *uw = xmalloc(sizeof *uw + total);
    uw->u = u;
    uw->len = total;
    if (plen) memcpy(uw->data, pre, plen);
    if (len) memcpy(uw->data + plen, data, len);
    if (slen) memcpy(uw->data + plen + len, suf, slen);
    uv_buf_t b = uv_buf_init(uw->data, (unsigned)total);
    u->wq_bytes += total;
    up_queued += total;
    int rc = uv_write(&uw->w, (uv_stream_t *)&u->tcp, &b, 1, up_write_cb);
    if (rc < 0) {
        u->wq_bytes -= total;
        up_queued -= total;
        free(uw);
        return;                     /* the read side reports the broken connection */
    }
    stats_buffered(x);
}

static void splice_end(struct exch *x);

static void up_shutdown_cb(uv_shutdown_t *sr, int status)
{
    struct upconn *u = sr->data;
    u->shut_done = 1;
    struct exch *x = u->x;
    if (!x) return;
    if (status < 0 || x->u_eof) splice_end(x);  /* both ways ended */
}

static void up_shutdown(struct upconn *u)
{
    if (u->shut || u->closing) return;
    u->shut = 1;
    if (uv_shutdown(&u->shutdown_req, (uv_stream_t *)&u->tcp, up_shutdown_cb) < 0) u->shut_done = 1;
}

/* A piece of the client's body (or, after a 101, of its byte stream). */
static void on_client_data(http_req_t *req, const char *data, size_t len, void *ud)
{
    struct exch *x = ud;
    if (!x->up) return;
    if (x->upgraded) {
        x->up->last_traffic = uv_now(x->loop);
        if (!data) {
            /* The client's half-close goes on upstream, after what we queued. */
            x->c_eof = 1;
            up_shutdown(x->up);
            if (x->up->shut_done && x->u_eof) splice_end(x);
            return;
        }
        if (ws_track(&x->c2u, data, len)) activity(x, 0);
        up_write(x, NULL, 0, data, len, NULL, 0);
    } else if (!data) {
        x->req_done = 1;
        if (x->req_chunked) up_write(x, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
        return;
    } else if (x->req_chunked) {
        char pre[24];
        int pl = snprintf(pre, sizeof pre, "%zx\r\n", len);
        up_write(x, pre, (size_t)pl, data, len, "\r\n", 2);
    } else {
        up_write(x, NULL, 0, data, len, NULL, 0);
    }
    if (x->up && x->up->wq_bytes > PROXY_HIGH_WATER && !x->client_paused) {
        x->client_paused = 1;
        http_req_read_pause(req, 1);
    }
}

/* ---- reading upstream --------------------------------------------------- */

static void up_read_start(struct upconn *u)
{
    if (u->reading || u->closing) return;
    u->reading = 1;
    uv_read_start((uv_stream_t *)&u->tcp, up_alloc, up_read_cb);
}

static void up_read_stop(struct upconn *u)
{
    if (!u->reading) return;
    u->reading = 0;
    uv_read_stop((uv_stream_t *)&u->tcp);
}

static void splice_try(struct exch *x);

/* The client's queue drained: read the upstream again (or splice from it,
 * now that nothing queued can be overtaken). */
static void on_client_drain(http_req_t *req, void *ud)
{
    struct exch *x = ud;
    (void)req;
    stats_buffered(x);
    if (x->sp) return;
    if (x->splice_wait) {
        splice_try(x);
        return;
    }
    if (x->up_paused && x->up) {
        x->up_paused = 0;
        up_read_start(x->up);
    }
}

/* Bytes for the client, inside the malloc'd block (freed once written);
 * back-pressure on the upstream past the mark. */
static void client_send_in(struct exch *x, char *block, const char *data, size_t len)
{
    if (!x->req) {
        free(block);
        return;
    }
    http_raw_write_in(x->req, block, data, len);
    if (x->req && http_stream_queued(x->req) > PROXY_HIGH_WATER && x->up && !x->up_paused) {
        x->up_paused = 1;
        up_read_stop(x->up);
    }
    stats_buffered(x);
}

/* What was gathered goes out; gathering ends. */
static void client_flush(struct exch *x)
{
    x->gather = 0;
    if (!x->outb.len) return;
    size_t n = x->outb.len;
    char *d = buf_detach(&x->outb);
    client_send_in(x, d, d, n);
}

#define GATHER_MAX (16 * 1024)     /* a bigger piece is not worth a copy to save a write */

static void client_send(struct exch *x, char *owned, size_t len)
{
    if (x->gather && x->req && x->outb.len + len <= GATHER_MAX) {
        buf_append(&x->outb, owned, len);
        free(owned);
        return;
    }
    int g = x->gather;
    client_flush(x);
    x->gather = g;
    client_send_in(x, owned, owned, len);
}

static void hdr_commit(struct exch *x)
{
    if (!x->have_field) return;
    if (x->nhdrs == x->caphdrs) {
        x->caphdrs = x->caphdrs ? 2 * x->caphdrs : 16;
        x->hdrs = xrealloc(x->hdrs, x->caphdrs * sizeof *x->hdrs);
    }
    x->hdrs[x->nhdrs].name = xstrdup(x->field.data ? x->field.data : "");
    x->hdrs[x->nhdrs].value = xstrdup(x->value.data ? x->value.data : "");
    x->nhdrs++;
    x->have_field = x->in_value = 0;
    buf_reset(&x->field);
    buf_reset(&x->value);
}

static int rp_message_begin(http_parser *p)
{
    struct exch *x = p->data;
    for (size_t i = 0; i < x->nhdrs; i++) {
        free(x->hdrs[i].name);
        free(x->hdrs[i].value);
    }
    x->nhdrs = 0;
    x->head_bytes = 0;
    buf_reset(&x->reason);
    buf_reset(&x->field);
    buf_reset(&x->value);
    x->have_field = x->in_value = 0;
    return 0;
}

static int rp_status(http_parser *p, const char *at, size_t n)
{
    struct exch *x = p->data;
    if (x->reason.len + n > 1024 || (x->head_bytes += n) > PROXY_MAX_HEAD) return -1;
    buf_append(&x->reason, at, n);
    return 0;
}

static int rp_field(http_parser *p, const char *at, size_t n)
{
    struct exch *x = p->data;
    if (x->in_value) hdr_commit(x);
    if (!x->have_field && x->nhdrs >= 200) return -1;
    x->have_field = 1;
    if ((x->head_bytes += n) > PROXY_MAX_HEAD) return -1;
    buf_append(&x->field, at, n);
    return 0;
}

static int rp_value(http_parser *p, const char *at, size_t n)
{
    struct exch *x = p->data;
    x->in_value = 1;
    if ((x->head_bytes += n) > PROXY_MAX_HEAD) return -1;
    buf_append(&x->value, at, n);
    return 0;
}

static const char *resp_hdr(struct exch *x, const char *name)
{
    for (size_t i = 0; i < x->nhdrs; i++)
        if (strcasecmp(x->hdrs[i].name, name) == 0) return x->hdrs[i].value;
    return NULL;
}

static int resp_conn_names(struct exch *x, const char *name)
{
    for (size_t i = 0; i < x->nhdrs; i++)
        if (strcasecmp(x->hdrs[i].name, "connection") == 0 && conn_token(x->hdrs[i].value, name)) return 1;
    return 0;
}

static int rp_headers_complete(http_parser *p)
{
    struct exch *x = p->data;
    hdr_commit(x);
    int status = (int)p->status_code;
    if (status >= 100 && status < 200 && status != 101) return 0;    /* interim: not relayed */
    if (!x->req) return -1;
    int upgrade = status == 101;
    if (upgrade && (!x->ws_wanted || !p->upgrade)) return -1;      /* a 101 nobody asked for */
    /* How the body reaches the client. */
    int nobody = x->is_head || status == 204 || status == 304 || upgrade;
    if (nobody) x->out_framing = FR_NONE;
    else if (p->flags & F_CONTENTLENGTH) x->out_framing = FR_LENGTH;
    else if (x->client_minor >= 1) x->out_framing = FR_CHUNK;
    else x->out_framing = FR_CLOSE;
    x->keep_client = !upgrade && x->out_framing != FR_CLOSE && http_req_keep_alive(x->req);

    buf_t h = BUF_INIT;
    buf_reserve(&h, 512);
    buf_printf(&h, "HTTP/1.1 %d %s\r\n", status, x->reason.data ? x->reason.data : "");
    for (size_t i = 0; i < x->nhdrs; i++) {
        const char *n = x->hdrs[i].name;
        if (hop_by_hop(n) || resp_conn_names(x, n)) continue;
        if (strcasecmp(n, "set-cookie") == 0 && set_cookie_blocked(x->hdrs[i].value, x->drop_cookie)) continue;
        if (x->out_framing != FR_LENGTH && strcasecmp(n, "content-length") == 0 && !nobody) continue;
        put_hdr(&h, n, x->hdrs[i].value);
    }
    if (upgrade) {
        const char *up = resp_hdr(x, "upgrade");
        buf_printf(&h, "Connection: Upgrade\r\nUpgrade: %s\r\n", up ? up : "websocket");
    } else {
        if (x->out_framing == FR_CHUNK) buf_puts(&h, "Transfer-Encoding: chunked\r\n");
        if (!x->keep_client) buf_puts(&h, "Connection: close\r\n");
        else if (x->client_minor == 0) buf_puts(&h, "Connection: keep-alive\r\n");
    }
    buf_puts(&h, "\r\n");
    http_raw_begin(x->req, status);
    x->started = 1;
    http_raw_on_drain(x->req, PROXY_LOW_WATER, on_client_drain, x);
    size_t hl = h.len;
    client_send(x, buf_detach(&h), hl);
    activity(x, 1);
    return x->is_head ? 1 : 0;      /* 1: no body follows (HEAD) */
}

static int rp_body(http_parser *p, const char *at, size_t n)
{
    struct exch *x = p->data;
    if (!x->req) return 0;
    if (x->out_framing == FR_CHUNK) {
        char *b = xmalloc(n + 32);
        int pl = snprintf(b, 32, "%zx\r\n", n);
        memcpy(b + pl, at, n);
        memcpy(b + pl + n, "\r\n", 2);
        client_send(x, b, (size_t)pl + n + 2);
    } else if (x->out_framing != FR_NONE && rd_block && !rd_given && n >= UP_READ_SIZE / 4) {
        /* Most of a read (the rest was head or is not ours): no copy.  A
         * smaller piece is copied, so that a block held in the queue is
         * at most 4 times the bytes it carries (the high-water mark counts
         * bytes). */
        rd_given = 1;
        int g = x->gather;
        client_flush(x);
        x->gather = g;
        client_send_in(x, rd_block, at, n);
    } else if (x->out_framing != FR_NONE) {
        char *b = xmalloc(n);
        memcpy(b, at, n);
        client_send(x, b, n);
    }
    return 0;
}

static int rp_message_complete(http_parser *p)
{
    struct exch *x = p->data;
    int status = (int)p->status_code;
    if (status >= 100 && status < 200 && status != 101) return 0;
    x->resp_done = 1;
    x->up_keep = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);        /* nothing after it is ours */
    return 0;
}

static const http_parser_settings rp_settings = {
    .on_message_begin = rp_message_begin,
    .on_status = rp_status,
    .on_header_field = rp_field,
    .on_header_value = rp_value,
    .on_headers_complete = rp_headers_complete,
    .on_body = rp_body,
    .on_message_complete = rp_message_complete,
};

static void ws_idle(uv_timer_t *t);
static void splice_up(struct exch *x, const char *data, size_t len);

/* The answer is complete: end the request, and keep or close the upstream. */
static void exch_finish(struct exch *x)
{
    if (x->out_framing == FR_CHUNK && x->req) client_send(x, xstrdup("0\r\n\r\n"), 5);
    client_flush(x);
    /* An answer that came before the whole body was sent: the client's
     * connection cannot go on (its body is unread), nor can the upstream's. */
    int body_complete = x->req_done || !x->req_has_body;
    exch_release_up(x, x->up_keep && body_complete && x->resp_done);
    exch_end_req(x, x->keep_client && body_complete);
    exch_free_maybe(x);
}

static void sp_pump(struct exch *x);

static void sp_poll_cb(uv_poll_t *p, int status, int events)
{
    struct splicer *s = p->data;
    (void)status;                   /* an error shows in the splice that follows */
    (void)events;
    if (s->x) sp_pump(s->x);
}

static void sp_arm(uv_poll_t *p, int *cur, int want)
{
    if (*cur == want) return;
    *cur = want;
    if (want) uv_poll_start(p, want, sp_poll_cb);
    else uv_poll_stop(p);
}

/* Move what can move now: the pipe to the client until it is empty or the
 * client's socket is full, then, only into an empty pipe, the upstream to
 * the pipe; then wait for whichever side blocked.  At most SPLICE_TURN
 * bytes per call, so one fast download does not hold the loop. */
static void sp_pump(struct exch *x)
{
    struct splicer *s = x->sp;
    size_t moved = 0;
    int err = 0;
    for (;;) {
        int blocked = 0;
        while (s->in_pipe) {
            ssize_t n = splice(s->pipe_r, NULL, s->cl_fd, NULL, s->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                s->in_pipe -= (size_t)n;
                pipe_queued -= (size_t)n;
                stats.spliced_bytes += (uint64_t)n;
                if (x->req) http_raw_sent(x->req, (size_t)n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && errno == EAGAIN) {
                blocked = 1;
                break;
            } else {
                /* The client went away: its connection closes, as on the
                 * copying path when a write fails. */
                exch_fail(x, -ECONNRESET);
                return;
            }
        }
        if (blocked || !s->left || moved >= SPLICE_TURN) break;
        size_t want = s->left < SPLICE_PIPE ? (size_t)s->left : SPLICE_PIPE;
        ssize_t n = splice(s->up_fd, NULL, s->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            s->in_pipe += (size_t)n;
            pipe_queued += (size_t)n;
            s->left -= (uint64_t)n;
            moved += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        /* EOF or an error before the body's end: a truncated answer. */
        err = n == 0 ? -ECONNRESET : -errno;
        break;
    }
    if (err) {
        exch_fail(x, err);
        return;
    }
    if (!s->left && !s->in_pipe) {
        /* The answer is complete; the upstream connection is at a message
         * boundary, as if the parser had seen the body through.  Bytes
         * already waiting behind the body were sent unasked (the copying
         * path sees them in its last read): such a connection is not
         * reused, as there. */
        char c;
        x->resp_done = 1;
        x->up_keep = http_should_keep_alive(&x->rp) != 0 && recv(s->up_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
                     errno == EAGAIN;
        exch_finish(x);
        return;
    }
    if (x->up) x->up->last_traffic = uv_now(x->loop);
    sp_arm(&s->cl_poll, &s->cl_events, s->in_pipe ? UV_WRITABLE : 0);
    sp_arm(&s->up_poll, &s->up_events, !s->in_pipe && s->left ? UV_READABLE : 0);
    stats_buffered(x);
}

/* Back to copying (splicing could not start): read the upstream again. */
static void splice_fallback(struct exch *x)
{
    x->splice_wait = 0;
    x->up_paused = 0;               /* only ever called with the client's queue empty */
    if (x->req) http_raw_on_drain(x->req, PROXY_LOW_WATER, on_client_drain, x);
    if (x->up) up_read_start(x->up);
}

static int dup_fd(uv_handle_t *h)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) < 0) return -1;
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* After a read of the answer (or once the client's queue drained): splice
 * the rest of a Content-Length body if it is large and the client's
 * connection is a plain socket. */
static void splice_try(struct exch *x)
{
    if (x->sp || !x->req || !x->up || !x->started || x->resp_done || x->upgraded || x->out_framing != FR_LENGTH ||
        !(x->req_done || !x->req_has_body) || x->rp.content_length < SPLICE_MIN ||
        x->rp.content_length == ULLONG_MAX) {
        if (x->splice_wait) splice_fallback(x);
        return;
    }
    int cfd = http_raw_sink_fd(x->req);
    if (cfd == -EAGAIN) {
        /* What went out before (the head, the first piece) must leave
         * first; read nothing more meanwhile. */
        if (!x->splice_wait) {
            x->splice_wait = 1;
            up_read_stop(x->up);
            http_raw_on_drain(x->req, 0, on_client_drain, x);
        }
        return;
    }
    if (cfd < 0) {
        if (x->splice_wait) splice_fallback(x);
        return;
    }
    int p[2] = { -1, -1 };
    int ufd = dup_fd((uv_handle_t *)&x->up->tcp);
    cfd = fcntl(cfd, F_DUPFD_CLOEXEC, 0);
    if (ufd < 0 || cfd < 0 || pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        if (ufd >= 0) close(ufd);
        if (cfd >= 0) close(cfd);
        if (x->splice_wait) splice_fallback(x);
        return;
    }
    (void)fcntl(p[1], F_SETPIPE_SZ, SPLICE_PIPE);     /* 64 KiB by default; the kernel's limit may refuse more */
    struct splicer *s = xcalloc(1, sizeof *s);
    if (uv_poll_init_socket(x->loop, &s->up_poll, ufd) < 0) {
        close(ufd);
        close(cfd);
        close(p[0]);
        close(p[1]);
        free(s);
        if (x->splice_wait) splice_fallback(x);
        return;
    }
    if (uv_poll_init_socket(x->loop, &s->cl_poll, cfd) < 0) {
        /* the first poll is a handle now: it goes through uv_close */
        s->up_poll.data = s;
        s->open_handles = 1;
        uv_close((uv_handle_t *)&s->up_poll, sp_closed);
        close(ufd);
        close(cfd);
        close(p[0]);
        close(p[1]);
        if (x->splice_wait) splice_fallback(x);
        return;
    }
    s->up_poll.data = s->cl_poll.data = s;
    s->open_handles = 2;
    s->up_fd = ufd;
    s->cl_fd = cfd;
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    s->left = x->rp.content_length;
    s->x = x;
    x->sp = s;
    x->splice_wait = 0;
    x->up_paused = 0;
    up_read_stop(x->up);
    stats.splices++;
    /* From the loop, not from here (a read callback, or the server's write
     * callback): the upstream is most likely readable already. */
    sp_arm(&s->up_poll, &s->up_events, UV_READABLE);
}

/* After the 101: switch both sides to pipes. */
static void exch_upgrade(struct exch *x, const char *rest, size_t len)
{
    x->upgraded = 1;
    stats.upgraded++;
    if (http_raw_upgrade(x->req) < 0) {
        exch_fail(x, -ECONNRESET);
        return;
    }
    x->up->last_traffic = uv_now(x->loop);
    uv_timer_start(&x->up->timer, ws_idle, cfg.ws_idle_timeout_ms, 0);
    if (len) splice_up(x, rest, len);
    if (x->req) http_req_read_start(x->req, on_client_data, x);
}

/* Upgraded: both directions ended (or one failed). */
static void splice_end(struct exch *x)
{
    exch_release_up(x, 0);
    exch_end_req(x, 0);
    exch_free_maybe(x);
}

static void splice_up(struct exch *x, const char *data, size_t len)
{
    if (x->up) x->up->last_traffic = uv_now(x->loop);
    if (ws_track(&x->u2c, data, len)) activity(x, 0);
    char *b = xmalloc(len);
    memcpy(b, data, len);
    client_send(x, b, len);
}

static void ws_idle(uv_timer_t *t)
{
    struct upconn *u = t->data;
    struct exch *x = u->x;
    if (!x) return;
    uint64_t now = uv_now(x->loop), dl = u->last_traffic + cfg.ws_idle_timeout_ms;
    if (now < dl) {
        uv_timer_start(&u->timer, ws_idle, dl - now, 0);
        return;
    }
    splice_end(x);
}

/* Acknowledge the upstream's data at once (Linux: TCP_QUICKACK, which the
 * kernel clears again by itself, hence after every read).  jupyter-server
 * writes a kernel's messages one by one without TCP_NODELAY, so the next
 * message (an execute_reply after its status) waits under Nagle for the ACK
 * of the previous one, and a delayed ACK takes ~40 ms: measured through the
 * proxy, execute_request -> execute_reply went from 44 ms p50 to ~4 ms
 * (bench/hub/bench_proxy.py, the quick-ACK client rows). */
static void quickack(struct upconn *u)
{
#ifdef TCP_QUICKACK
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&u->tcp, &fd) == 0) (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)u;
#endif
}

/* Retry a bodiless request once on a new connection after a pooled one
 * failed before any answer (the server had closed it while idle). */
static int exch_connect(struct exch *x);

static void up_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct upconn *u = s->data;
    struct exch *x = u->x;
    const char *data = b->base;
    if (n == 0 || !x) {
        if (data == rbuf) rbuf_busy = 0;
        else free(b->base);
        if (!x && n != 0) up_close(u);
        return;
    }
    if (n < 0) {
        if (data == rbuf) rbuf_busy = 0;
        else free(b->base);
        if (x->upgraded) {
            x->u_eof = 1;
            up_read_stop(u);
            if (x->req) http_raw_shutdown(x->req);
            if (n != UV_EOF || (x->c_eof && u->shut_done)) splice_end(x);
            return;
        }
        if (!x->resp_any && u->reused && x->retryable) {
            stats.retries++;
            exch_release_up(x, 0);
            exch_connect(x);
            return;
        }
        /* EOF ends a close-delimited answer. */
        if (n == UV_EOF && x->started) {
            http_parser_execute(&x->rp, &rp_settings, NULL, 0);
            if (x->resp_done) {
                x->up_keep = 0;
                exch_finish(x);
                return;
            }
        }
        exch_fail(x, n == UV_EOF ? -ECONNRESET : (int)n);
        return;
    }
    if (x->upgraded) {
        quickack(u);
        splice_up(x, data, (size_t)n);
        if (data == rbuf) rbuf_busy = 0;
        else free(b->base);
        return;
    }
    x->resp_any = 1;
    int more = 0;
    rd_block = data == rbuf ? NULL : b->base;
    rd_given = 0;
    x->gather = 1;
    size_t used = http_parser_execute(&x->rp, &rp_settings, data, (size_t)n);
    rd_block = NULL;
    enum http_errno e = HTTP_PARSER_ERRNO(&x->rp);
    if (x->rp.upgrade && x->started && x->req) {
        /* The 101's head is relayed; what follows is the new protocol's. */
        x->resp_done = 1;
        client_flush(x);
        exch_upgrade(x, data + used, (size_t)n - used);
    } else if (x->resp_done) {
        if (used < (size_t)n) x->up_keep = 0;       /* bytes nobody asked for */
        exch_finish(x);             /* flushes, with the last chunk */
    } else if (e != HPE_OK) {
        exch_fail(x, -EPROTO);
    } else {
        client_flush(x);
        more = 1;
    }
    if (data == rbuf) rbuf_busy = 0;
    else if (!rd_given) free(b->base);
    rd_given = 0;
    if (more) splice_try(x);       /* x is still ours: the answer goes on */
}

/* ---- connecting ---------------------------------------------------------- */

/* The connection is ready: send the head, then the body as it comes. */
static void exch_send(struct exch *x)
{
    up_write(x, x->head, x->head_len, NULL, 0, NULL, 0);
    up_read_start(x->up);
    if (x->req_has_body && x->req) {
        if (http_req_read_start(x->req, on_client_data, x) < 0) exch_fail(x, -ECONNRESET);
    } else {
        x->req_done = 1;
    }
}

static void connect_timeout(uv_timer_t *t)
{
    struct upconn *u = t->data;
    struct exch *x = u->x;
    if (x) exch_fail(x, u->connect_err == UV_ECONNREFUSED ? -ECONNREFUSED : u->connect_err ? -ECONNRESET : -ETIMEDOUT);
    else up_close(u);
}

static void connect_cb(uv_connect_t *cr, int status)
{
    struct upconn *u = cr->data;
    struct exch *x = u->x;
    if (!x || u->closing) return;
    uv_timer_stop(&u->timer);
    if (status < 0) {
        exch_fail(x, status == UV_ECONNREFUSED ? -ECONNREFUSED : status == UV_ETIMEDOUT ? -ETIMEDOUT : status);
        return;
    }
    u->connected = 1;
    uv_tcp_nodelay(&u->tcp, 1);
    exch_send(x);
}

static int target_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (port <= 0 || port > 65535) return -EINVAL;
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return -EINVAL;
}

static int exch_connect(struct exch *x)
{
    char key[80];
    snprintf(key, sizeof key, "%s:%d", x->host, x->port);
    if (x->retryable && !x->ws_wanted) {
        struct upconn *u = pool_get(key);
        if (u) {
            u->x = x;
            x->up = u;
            exch_send(x);
            return 0;
        }
    }
    struct sockaddr_storage ss;
    int rc = target_addr(x->host, x->port, &ss);
    if (rc < 0) return rc;
    struct upconn *u = up_new(x->loop, key);
    u->x = x;
    x->up = u;
    stats.upstream_connects++;
    x->retryable = 0;               /* a new connection is not retried */
    rc = uv_tcp_connect(&u->connect_req, &u->tcp, (struct sockaddr *)&ss, connect_cb);
    if (rc < 0) u->connect_err = rc;
    /* A failure now is reported from the loop like any other. */
    uv_timer_start(&u->timer, connect_timeout, rc < 0 ? 0 : cfg.connect_timeout_ms, 0);
    return 0;
}

/* ---- the request head ------------------------------------------------------ */

/* Cookie without nbhub's session and the target's drop_cookie. */
static void cookie_filter(http_req_t *req, const char *drop, buf_t *out)
{
    const char *v;
    for (size_t i = 0; (v = http_header_nth(req, "cookie", i)) != NULL; i++) {
        const char *p = v;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ';') p++;
            if (!*p) break;
            const char *e = strchr(p, ';');
            if (!e) e = p + strlen(p);
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *ne = eq ? eq : e;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
            size_t nl = (size_t)(ne - p);
            if (!cookie_blocked(p, nl, drop)) {
                if (out->len) buf_puts(out, "; ");
                const char *t = e;
                while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
                buf_append(out, p, (size_t)(t - p));
            }
            p = e;
        }
    }
}

/* The client's address without its port, for X-Forwarded-For ("" for unix). */
static void peer_ip(http_req_t *req, char *out, size_t n)
{
    const char *p = http_req_peer(req);
    out[0] = '\0';
    if (p[0] == '[') {
        const char *e = strchr(p, ']');
        if (e && (size_t)(e - p) < n) {
            memcpy(out, p + 1, (size_t)(e - p - 1));
            out[e - p - 1] = '\0';
        }
    } else if (isdigit((unsigned char)p[0])) {
        const char *e = strrchr(p, ':');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l < n) {
            memcpy(out, p, l);
            out[l] = '\0';
        }
    }
}

static int forwarded_header(const char *name)
{
    return strncasecmp(name, "x-forwarded-", 12) == 0 || strcasecmp(name, "forwarded") == 0;
}

static void build_head(struct exch *x, http_req_t *req, const struct proxy_target *t)
{
    buf_t h = BUF_INIT;
    buf_reserve(&h, 1024);
    const char *q = http_req_query(req);
    /* The path exactly as the client sent it (still percent-encoded). */
    buf_printf(&h, "%s %s%s%s HTTP/1.1\r\n", http_req_method(req), http_req_raw_path(req), q[0] ? "?" : "", q);
    const char *host = http_header(req, "host");
    if (host) put_hdr(&h, "Host", host);
    else buf_printf(&h, "Host: %s:%d\r\n", t->host, t->port);
    const char *name, *value;
    int has_conn = http_header(req, "connection") != NULL;     /* most requests name nothing in it */
    for (size_t i = 0; http_header_at(req, i, &name, &value) == 0; i++) {
        if (hop_by_hop(name) || (has_conn && req_conn_names(req, name)) || forwarded_header(name)) continue;
        if (strcasecmp(name, "host") == 0 || strcasecmp(name, "cookie") == 0 ||
            strcasecmp(name, "authorization") == 0 || strcasecmp(name, "expect") == 0 ||
            strcasecmp(name, "content-length") == 0)
            continue;
        put_hdr(&h, name, value);
    }
    buf_t ck = BUF_INIT;
    cookie_filter(req, t->drop_cookie, &ck);
    if (ck.len) put_hdr(&h, "Cookie", ck.data);
    buf_free(&ck);
    if (t->upstream_auth) put_hdr(&h, "Authorization", t->upstream_auth);
    else if (t->pass_authorization && (value = http_header(req, "authorization")) != NULL)
        put_hdr(&h, "Authorization", value);
    /* X-Forwarded-*: set from what we saw; the client's own are not trusted
     * (nbhub is the edge: nothing in front of it vouches for them). */
    char ip[64];
    peer_ip(req, ip, sizeof ip);
    const char *scheme = t->scheme ? t->scheme : "http";
    if (ip[0]) put_hdr(&h, "X-Forwarded-For", ip);
    put_hdr(&h, "X-Forwarded-Proto", scheme);
    if (host) {
        put_hdr(&h, "X-Forwarded-Host", host);
        const char *colon = strrchr(host, ':');
        const char *rb = strrchr(host, ']');
        if (colon && (!rb || colon > rb)) put_hdr(&h, "X-Forwarded-Port", colon + 1);
        else put_hdr(&h, "X-Forwarded-Port", strcmp(scheme, "https") == 0 ? "443" : "80");
    }
    if (x->ws_wanted) {
        buf_printf(&h, "Connection: Upgrade\r\nUpgrade: %s\r\n", http_header(req, "upgrade"));
    } else if (x->req_chunked) {
        buf_puts(&h, "Transfer-Encoding: chunked\r\n");
    } else if (http_req_content_length(req) >= 0) {
        buf_printf(&h, "Content-Length: %lld\r\n", http_req_content_length(req));
    }
    buf_puts(&h, "\r\n");
    x->head_len = h.len;
    x->head = buf_detach(&h);
}

/* ---- entry points ---------------------------------------------------------- */

/* Settle an exchange that failed at its start, from the loop. */
int proxy_pass(http_req_t *req, const struct proxy_target *t)
{
    struct sockaddr_storage ss;
    if (!t || !t->host || target_addr(t->host, t->port, &ss) < 0) {
        http_respond_error(req, 502, "bad_gateway", "no valid address for this server");
        return -EINVAL;
    }
    if (http_req_aborted(req)) {
        http_respond(req, 502, "text/plain", "", 0);
        return 0;
    }
    struct exch *x = xcalloc(1, sizeof *x);
    x->loop = http_req_loop(req);
    x->req = req;
    x->host = xstrdup(t->host);
    x->drop_cookie = t->drop_cookie ? xstrdup(t->drop_cookie) : NULL;
    x->port = t->port;
    x->on_activity = t->on_activity;
    x->on_error = t->on_error;
    x->ud = t->ud;
    x->client_minor = http_req_minor(req);
    x->is_head = strcmp(http_req_method(req), "HEAD") == 0;
    x->req_chunked = http_req_body_chunked(req);
    x->req_has_body = http_req_body_streamed(req) && (x->req_chunked || http_req_content_length(req) > 0);
    const char *upg = http_header(req, "upgrade");
    x->ws_wanted = http_req_upgrade_wanted(req) && upg && strcasecmp(upg, "websocket") == 0 &&
                   req_conn_names(req, "upgrade");
    /* A body the server buffered (the route is not streamed) is sent whole. */
    int buffered_body = !http_req_body_streamed(req) && http_req_content_length(req) > 0;
    x->retryable = !x->req_has_body && !buffered_body;
    http_parser_init(&x->rp, HTTP_RESPONSE);
    x->rp.data = x;
    build_head(x, req, t);
    if (buffered_body) {
        size_t bl;
        const char *b = http_req_body(req, &bl);
        char *nh = xmalloc(x->head_len + bl);
        memcpy(nh, x->head, x->head_len);
        memcpy(nh + x->head_len, b, bl);
        free(x->head);
        x->head = nh;
        x->head_len += bl;
    }
    x->next = exchanges;
    if (exchanges) exchanges->prev = x;
    exchanges = x;
    stats.active++;
    http_req_on_abort(req, on_client_abort, x);
    return exch_connect(x);
}

void proxy_drop(void *ud)
{
    struct exch *next;
    for (struct exch *x = exchanges; x; x = next) {
        next = x->next;
        if (x->ud != ud) continue;
        x->on_activity = NULL;
        x->on_error = NULL;
        exch_release_up(x, 0);
        http_req_t *r = x->req;
        x->req = NULL;
        if (r) {
            if (!x->started) http_raw_begin(r, 502);
            http_stream_drop(r);
            http_raw_end(r, 0);
        }
        exch_free_maybe(x);
    }
    while (pool) up_close(pool);
}
