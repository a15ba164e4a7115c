/* Unit tests for http/proxy (and the relaying half of http/server it uses).
 *
 * One uv loop in a background thread runs two real http_servers on
 * 127.0.0.1: the front (a router whose catch-all route streams bodies and
 * hands every request to proxy_pass) and the upstream (handlers that echo
 * what they received, sink or produce large bodies, answer chunked or
 * close-delimited, die mid-answer, or accept a websocket and echo its
 * bytes).  The test thread is the client, with plain blocking sockets, as
 * a browser would be.  Counters are read on the loop thread (stats_now). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include "http/proxy.h"
#include "http/router.h"
#include "http/server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xmalloc.h"

static atomic_int g_activity, g_errors, g_up_aborts, g_sink_done;
static http_req_t *g_hung;         /* loop thread only */
static atomic_llong g_sink_bytes;

/* ---- the loop thread ---------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    uv_thread_t th;
    uv_async_t async;
    uv_mutex_t mu;
    uv_cond_t cv;
    int op;                         /* 1 stats, 2 stop */
    int done;
    struct proxy_stats st;
    http_server_t *front, *up;
    http_router_t *frouter, *urouter;
    int front_port, up_port, dead_port;
    int front_stopped;
};

static struct fx F;

static void on_activity(void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_activity, 1);
}

static void on_error(http_req_t *req, int err, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_errors, 1);
    http_respond_error(req, 503, "server_down", "server is down (%d)", err);
}

static void front_handler(http_req_t *req, void *ud)
{
    (void)ud;
    struct proxy_target t = {
        .host = "127.0.0.1",
        .port = F.up_port,
        .drop_cookie = "dropme",
        .on_activity = on_activity,
        .on_error = on_error,
        .ud = &F,
    };
    const char *p = http_req_raw_path(req);
    if (strncmp(p, "/refused", 8) == 0) t.port = F.dead_port;
    if (strncmp(p, "/auth/up", 8) == 0) t.upstream_auth = "token UPSTREAM";
    if (strncmp(p, "/auth/pass", 10) == 0) t.pass_authorization = 1;
    if (getenv("PROXY_BENCH_AUTH")) t.upstream_auth = getenv("PROXY_BENCH_AUTH");
    proxy_pass(req, &t);
}

/* ---- upstream handlers -------------------------------------------------- */

static void raw_answer(http_req_t *req, const char *head_extra, const char *body, int keep)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
               strlen(body), head_extra);
    buf_puts(&b, body);
    http_raw_begin(req, 200);
    http_raw_write(req, b.data, b.len);
    buf_free(&b);
    http_raw_end(req, keep);
}

/* Everything the request brought, as JSON. */
static void up_echo(http_req_t *req)
{
    json_t *h = json_array();
    const char *n, *v;
    for (size_t i = 0; http_header_at(req, i, &n, &v) == 0; i++) json_array_append_new(h, json_pack("[s,s]", n, v));
    json_t *j = json_pack("{s:s,s:s,s:o}", "method", http_req_method(req), "target", http_req_target(req),
                          "headers", h);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    raw_answer(req, "X-Up: 1\r\nKeep-Alive: timeout=5\r\nConnection: X-Up2\r\nX-Up2: gone\r\n"
                    "Set-Cookie: own=1; Path=/user/alice/\r\nSet-Cookie: nbhub_session=planted; Path=/\r\n"
                    "Set-Cookie: __Host-NBHUB_SESSION=x; Path=/\r\nSet-Cookie: dropme=2\r\n", s, 1);
    free(s);
}

static void free_handle(uv_handle_t *h) { free(h); }

static void end_fire(uv_timer_t *z)
{
    http_raw_end(z->data, 1);
    uv_close((uv_handle_t *)z, free_handle);
}

static void end_later(http_req_t *req)
{
    uv_timer_t *z = xcalloc(1, sizeof *z);
    uv_timer_init(&F.loop, z);
    z->data = req;
    uv_timer_start(z, end_fire, 0, 0);
}

/* A body sink that reads in bursts (pausing 20 ms every 4 MiB), so the
 * proxy's upstream queue fills and its back-pressure must act. */
struct sink {
    http_req_t *req;
    uv_timer_t t;
    long long n, mark;
};

static void sink_closed(uv_handle_t *h) { free(h->data); }

static void sink_resume(uv_timer_t *t)
{
    struct sink *s = t->data;
    http_req_read_pause(s->req, 0);
}

static void sink_data(http_req_t *req, const char *data, size_t len, void *ud)
{
    struct sink *s = ud;
    (void)data;
    if (!data) {
        char out[64];
        snprintf(out, sizeof out, "{\"len\":%lld}", s->n);
        atomic_store(&g_sink_bytes, s->n);
        atomic_store(&g_sink_done, 1);
        s->req = NULL;
        uv_close((uv_handle_t *)&s->t, sink_closed);
        /* The answer is written now; ending it (which frees req) is not
         * allowed from inside fn (server.h), so a zero timer does it. */
        http_req_read_stop(req);
        http_req_on_abort(req, NULL, NULL);
        http_raw_begin(req, 200);
        buf_t b = BUF_INIT;
        buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(out), out);
        http_raw_write(req, b.data, b.len);
        buf_free(&b);
        end_later(req);
        return;
    }
    s->n += (long long)len;
    if (s->n - s->mark >= 4 * 1024 * 1024) {
        s->mark = s->n;
        http_req_read_pause(req, 1);
        uv_timer_start(&s->t, sink_resume, 20, 0);
    }
}


static void sink_abort(http_req_t *req, void *ud)
{
    struct sink *s = ud;
    atomic_fetch_add(&g_up_aborts, 1);
    if (s->req) {
        s->req = NULL;
        uv_close((uv_handle_t *)&s->t, sink_closed);
    }
    http_raw_begin(req, 0);
    http_raw_end(req, 0);
}

static void up_sink(http_req_t *req)
{
    struct sink *s = xcalloc(1, sizeof *s);
    s->req = req;
    uv_timer_init(&F.loop, &s->t);
    s->t.data = s;
    http_req_on_abort(req, sink_abort, s);
    http_req_read_start(req, sink_data, s);
}

/* A download of n bytes with Content-Length, written as the client's
 * queue drains. */
struct big {
    http_req_t *req;
    long long left;
    long long die_after;            /* > 0: the server drops the connection after this many body bytes */
    int junk;                       /* an answer nobody asked for follows the body */
    long long sent;
};

static void big_pump(http_req_t *req, void *ud)
{
    struct big *b = ud;
    static char chunk[65536];
    while (b->left > 0 && http_stream_queued(req) < 256 * 1024) {
        if (b->die_after && b->sent >= b->die_after) {
            http_stream_drop(req);  /* big_abort follows from the loop */
            return;
        }
        size_t k = b->left < (long long)sizeof chunk ? (size_t)b->left : sizeof chunk;
        memset(chunk, 'a' + (int)(b->left % 26), k);
        http_raw_write(req, chunk, k);
        b->left -= (long long)k;
        b->sent += (long long)k;
    }
    if (b->left == 0) {
        if (b->junk) {
            const char *j = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\njunk";
            http_raw_write(req, j, strlen(j));
        }
        b->left = -1;
        http_raw_on_drain(req, 0, NULL, NULL);
        http_req_on_abort(req, NULL, NULL);
        end_later(req);
        free(b);
    }
}

static void big_abort(http_req_t *req, void *ud)
{
    atomic_fetch_add(&g_up_aborts, 1);
    free(ud);
    http_raw_end(req, 0);
}

static void up_big(http_req_t *req, long long n, long long die_after, int junk)
{
    struct big *b = xcalloc(1, sizeof *b);
    b->junk = junk;
    b->left = n;
    b->die_after = die_after;
    char head[128];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n", n);
    http_raw_begin(req, 200);
    http_raw_write(req, head, strlen(head));
    http_raw_on_drain(req, 64 * 1024, big_pump, b);
    http_req_on_abort(req, big_abort, b);
    big_pump(req, b);
}

/* Websocket echo: the 101 as jupyter-server sends it, then every byte back;
 * EOF -> our FIN after the echo. */
static void ws_data(http_req_t *req, const char *data, size_t len, void *ud)
{
    (void)ud;
    if (!data) {
        http_raw_shutdown(req);
        return;
    }
    http_raw_write(req, data, len);
}

static void ws_abort(http_req_t *req, void *ud)
{
    (void)ud;
    if (req == g_hung) {
        g_hung = NULL;
        atomic_fetch_add(&g_up_aborts, 1);
        http_raw_begin(req, 0);
    }
    http_raw_end(req, 0);
}

static void up_ws(http_req_t *req)
{
    const char *proto = http_header(req, "sec-websocket-protocol");
    buf_t b = BUF_INIT;
    buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
               http_header(req, "sec-websocket-key"), proto ? proto : "");
    http_raw_begin(req, 101);
    http_raw_write(req, b.data, b.len);
    buf_free(&b);
    http_raw_upgrade(req);
    http_req_on_abort(req, ws_abort, NULL);
    http_req_read_start(req, ws_data, NULL);
}

static void up_handler(http_req_t *req, void *ud)
{
    (void)ud;
    const char *p = http_req_raw_path(req);
    if (strstr(p, "/sink")) {
        up_sink(req);
    } else if (strstr(p, "/big")) {
        const char *die = http_query(req, "die");
        up_big(req, atoll(http_query(req, "n")), die ? atoll(die) : 0, http_query(req, "junk") != NULL);
    } else if (strstr(p, "/chunked")) {
        http_stream_begin(req, 200, "text/plain");
        http_stream_write(req, "hello ", 6);
        http_stream_write(req, "chunked ", 8);
        http_stream_write(req, "world", 5);
        http_stream_end(req);
    } else if (strstr(p, "/close") && !strstr(p, "/closeafter")) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
        http_raw_begin(req, 200);
        http_raw_write(req, h, strlen(h));
        http_raw_end(req, 0);
    } else if (strstr(p, "/die")) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        http_raw_begin(req, 200);
        http_raw_write(req, h, strlen(h));
        http_stream_drop(req);
        http_raw_end(req, 0);
    } else if (strstr(p, "/wshang")) {
        /* Never answers the handshake; the proxy's client going away ends it. */
        http_req_on_abort(req, ws_abort, NULL);
        g_hung = req;
    } else if (strstr(p, "/bogus101")) {
        /* A 101 to a request that asked for no upgrade: never relayed. */
        const char *h = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        http_raw_begin(req, 101);
        http_raw_write(req, h, strlen(h));
        http_stream_drop(req);
        http_raw_end(req, 0);
    } else if (strstr(p, "/hugehead")) {
        /* A user's server is user code: an endless head is malformed. */
        char *big = xmalloc(100 * 1024);
        memset(big, 'h', 100 * 1024 - 1);
        big[100 * 1024 - 1] = '\0';
        buf_t b = BUF_INIT;
        buf_printf(&b, "X-Huge: %s\r\n", big);
        raw_answer(req, b.data, "{}", 0);
        buf_free(&b);
        free(big);
    } else if (strstr(p, "/closeafter")) {
        /* Looks keep-alive, but the server closes right after it. */
        raw_answer(req, "", "{}", 0);
    } else if (strstr(p, "/ws")) {
        up_ws(req);
    } else {
        up_echo(req);
    }
}

static const struct http_route routes[] = {
    { "*", "/" "*rest", front_handler, HTTP_ROUTE_STREAM_BODY },
};
static const struct http_route up_routes[] = {
    { "*", "/" "*rest", up_handler, HTTP_ROUTE_STREAM_BODY },
};

static void async_cb(uv_async_t *a)
{
    (void)a;
    uv_mutex_lock(&F.mu);
    if (F.op == 1) {
        proxy_get_stats(&F.st);
    } else if (F.op == 3) {
        proxy_stats_reset_peak();
    } else if (F.op == 4) {
        proxy_drop(&F);
    } else if (F.op == 5) {
        F.front_stopped = 1;
        http_server_stop(F.front, NULL, NULL);
    } else if (F.op == 2) {
        if (!F.front_stopped) http_server_stop(F.front, NULL, NULL);
        http_server_stop(F.up, NULL, NULL);
        uv_close((uv_handle_t *)&F.async, NULL);
    }
    F.done = 1;
    uv_cond_signal(&F.cv);
    uv_mutex_unlock(&F.mu);
}

static void loop_op(int op)
{
    uv_mutex_lock(&F.mu);
    F.op = op;
    F.done = 0;
    uv_async_send(&F.async);
    while (!F.done) uv_cond_wait(&F.cv, &F.mu);
    uv_mutex_unlock(&F.mu);
}

static struct proxy_stats stats_now(void)
{
    loop_op(1);
    return F.st;
}

static void loop_main(void *arg)
{
    (void)arg;
    uv_run(&F.loop, UV_RUN_DEFAULT);
}

static int setup(void **state)
{
    (void)state;
    log_min_level = LOG_ERROR;
    signal(SIGPIPE, SIG_IGN);     /* as nbhub serve: a peer gone is an error code, not a signal */
    uv_loop_init(&F.loop);
    uv_mutex_init(&F.mu);
    uv_cond_init(&F.cv);
    uv_async_init(&F.loop, &F.async, async_cb);
    nb_err_t err;
    struct http_limits lim;
    http_limits_default(&lim);
    assert_int_equal(http_router_new(routes, 1, NULL, &F.frouter, &err), 0);
    struct http_limits flim = lim;
    flim.body_timeout_ms = 1000;    /* test_slow_body */
    flim.stream_body_max = 100 << 20; /* test_proxy_body_max */
    F.front = http_server_new(&F.loop, &flim, http_router_handle, F.frouter);
    http_server_set_gate(F.front, http_router_gate, F.frouter);
    http_server_set_csp(F.front, "default-src 'none'");
    assert_int_equal(http_server_listen(F.front, "127.0.0.1:0", &err), 0);
    F.front_port = http_server_port(F.front);
    assert_int_equal(http_router_new(up_routes, 1, NULL, &F.urouter, &err), 0);
    F.up = http_server_new(&F.loop, &lim, http_router_handle, F.urouter);
    http_server_set_gate(F.up, http_router_gate, F.urouter);
    assert_int_equal(http_server_listen(F.up, "127.0.0.1:0", &err), 0);
    F.up_port = http_server_port(F.up);
    /* A port nothing listens on: bind, read the port, close. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    F.dead_port = ntohs(a.sin_port);
    close(s);
    struct proxy_config pc = { .activity_min_ms = 300 };
    proxy_configure(&pc);
    uv_thread_create(&F.th, loop_main, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    loop_op(4);
    loop_op(2);
    uv_thread_join(&F.th);
    http_server_free(F.front);
    http_server_free(F.up);
    http_router_free(F.frouter);
    http_router_free(F.urouter);
    uv_loop_close(&F.loop);
    return 0;
}

/* ---- the client ----------------------------------------------------------- */

static int cconnect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { .tv_sec = 20 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void csend(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        assert_true(k > 0);
        c += k;
        n -= (size_t)k;
    }
}

struct resp {
    int status;
    char head[8192];                /* status line + headers, lower-cased names untouched */
    buf_t body;
    long long body_len;
    int eof;                        /* the connection ended (after or instead of the body) */
    int truncated;
};

/* Buffered reader over a socket. */
struct rd {
    int fd;
    char buf[65536];
    size_t off, len;
};

static ssize_t rd_fill(struct rd *r)
{
    if (r->off < r->len) return (ssize_t)(r->len - r->off);
    ssize_t k = recv(r->fd, r->buf, sizeof r->buf, 0);
    r->off = 0;
    r->len = k > 0 ? (size_t)k : 0;
    return k;
}

static int rd_line(struct rd *r, char *out, size_t n)
{
    size_t o = 0;
    for (;;) {
        if (rd_fill(r) <= 0) return -1;
        char ch = r->buf[r->off++];
        if (ch == '\n') {
            if (o && out[o - 1] == '\r') o--;
            out[o] = '\0';
            return (int)o;
        }
        if (o < n - 1) out[o++] = ch;
    }
}

/* Read from *hp the value of header name (first), or NULL. */
static const char *hget(const struct resp *rs, const char *name, char *out, size_t n)
{
    const char *p = rs->head;
    size_t nl = strlen(name);
    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            size_t l = strcspn(v, "\r\n");
            if (l >= n) l = n - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

static int hhas(const struct resp *rs, const char *name)
{
    char tmp[8];
    return hget(rs, name, tmp, sizeof tmp) != NULL;
}

/* Read one response; keep the body unless keep == 0 (count only).  slow:
 * sleep 1 ms every 256 KiB read (a slow reader). */
static void read_resp(struct rd *r, struct resp *rs, int keep, int slow, int is_head)
{
    memset(rs, 0, sizeof *rs);
    char line[8192];
    size_t ho = 0;
    for (;;) {
        if (rd_line(r, line, sizeof line) < 0) {
            rs->eof = 1;
            return;
        }
        if (!line[0]) break;
        ho += (size_t)snprintf(rs->head + ho, sizeof rs->head - ho, "%s\n", line);
    }
    rs->status = atoi(rs->head + 9);
    if (rs->status < 200 || is_head || rs->status == 204 || rs->status == 304) return;
    char v[64];
    long long cl = hget(rs, "content-length", v, sizeof v) ? atoll(v) : -1;
    int chunked = hget(rs, "transfer-encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0;
    size_t since = 0;
    long long want = chunked ? 0 : cl;
    for (;;) {
        if (chunked && want == 0) {
            if (rs->body_len && rd_line(r, line, sizeof line) < 0) goto trunc;  /* CRLF after data */
            if (rd_line(r, line, sizeof line) < 0) goto trunc;
            want = strtoll(line, NULL, 16);
            if (want == 0) {
                rd_line(r, line, sizeof line);
                return;
            }
        }
        if (!chunked && cl >= 0 && rs->body_len == cl) return;
        ssize_t k = rd_fill(r);
        if (k <= 0) {
            if (!chunked && cl < 0) {
                rs->eof = 1;
                return;
            }
            goto trunc;
        }
        size_t take = r->len - r->off;
        if (want > 0 && (long long)take > want) take = (size_t)want;
        if (keep) buf_append(&rs->body, r->buf + r->off, take);
        r->off += take;
        rs->body_len += (long long)take;
        if (want > 0) want -= (long long)take;
        since += take;
        if (slow && since >= 256 * 1024) {
            since = 0;
            usleep(1000);
        }
        if (!chunked && cl >= 0 && want == 0) return;
    }
trunc:
    rs->truncated = rs->eof = 1;
}

static void resp_free(struct resp *rs) { buf_free(&rs->body); }

/* ---- tests ------------------------------------------------------------------- */

static int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 500; i++) {
        if (atomic_load(v) >= want) return 1;
        usleep(10000);
    }
    return 0;
}

static void wait_idle(void)
{
    for (int i = 0; i < 300; i++) {
        struct proxy_stats st = stats_now();
        if (st.active == 0) return;
        usleep(10000);
    }
    fail_msg("exchanges still active");
}

/* Header rules both ways; the raw path with %2F kept; Host kept. */
static void test_headers(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    const char *req = "GET /u/a%2Fb/echo?x=%20y&z=1 HTTP/1.1\r\n"
                      "Host: hub.example:8443\r\n"
                      "Connection: keep-alive, X-Hop\r\n"
                      "X-Hop: secret-hop\r\n"
                      "Keep-Alive: timeout=5\r\n"
                      "TE: trailers\r\n"
                      "Proxy-Authorization: Basic eA==\r\n"
                      "Authorization: token CLIENT\r\n"
                      "Cookie: a=1; nbhub_session=SECRET; dropme=3\r\n"
                      "Cookie: __Host-nbhub_session=S2; b=2\r\n"
                      "X-Forwarded-For: 6.6.6.6\r\n"
                      "X-Forwarded-Host: evil\r\n"
                      "Forwarded: for=6.6.6.6\r\n"
                      "X-Keep: kept\r\n"
                      "\r\n";
    csend(fd, req, strlen(req));
    struct rd r = { .fd = fd };
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    json_error_t je;
    json_t *j = json_loadb(rs.body.data, rs.body.len, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "target")), "/u/a%2Fb/echo?x=%20y&z=1");
    json_t *hs = json_object_get(j, "headers");
    buf_t all = BUF_INIT;
    size_t i;
    json_t *h;
    json_array_foreach(hs, i, h) buf_printf(&all, "%s: %s\n", json_string_value(json_array_get(h, 0)),
                                             json_string_value(json_array_get(h, 1)));
    const char *a = all.data;
    assert_non_null(strstr(a, "Host: hub.example:8443\n"));
    assert_null(strcasestr(a, "x-hop"));
    assert_null(strcasestr(a, "keep-alive"));
    assert_null(strcasestr(a, "\nte:"));
    assert_null(strcasestr(a, "proxy-authorization"));
    assert_null(strcasestr(a, "authorization"));             /* not the owner: dropped */
    assert_null(strstr(a, "SECRET"));
    assert_null(strstr(a, "S2"));
    assert_null(strstr(a, "dropme"));
    assert_non_null(strstr(a, "Cookie: a=1; b=2\n"));
    assert_null(strstr(a, "6.6.6.6"));
    assert_null(strstr(a, "evil"));
    assert_non_null(strstr(a, "X-Forwarded-For: 127.0.0.1\n"));
    assert_non_null(strstr(a, "X-Forwarded-Proto: http\n"));
    assert_non_null(strstr(a, "X-Forwarded-Host: hub.example:8443\n"));
    assert_non_null(strstr(a, "X-Forwarded-Port: 8443\n"));
    assert_non_null(strstr(a, "X-Keep: kept\n"));
    buf_free(&all);
    json_decref(j);
    /* The response: upstream's headers as sent minus hop-by-hop, none of ours. */
    char v[256];
    assert_non_null(hget(&rs, "x-up", v, sizeof v));
    assert_false(hhas(&rs, "x-up2"));
    assert_false(hhas(&rs, "keep-alive"));
    assert_false(hhas(&rs, "content-security-policy"));
    assert_false(hhas(&rs, "x-content-type-options"));
    assert_false(hhas(&rs, "server"));
    assert_false(hhas(&rs, "connection"));
    /* Only the server's own cookies pass. */
    assert_non_null(strstr(rs.head, "Set-Cookie: own=1; Path=/user/alice/\n"));
    assert_null(strcasestr(rs.head, "nbhub_session"));
    assert_null(strstr(rs.head, "dropme"));
    resp_free(&rs);

    /* Authorization per target. */
    const char *r2 = "GET /auth/pass HTTP/1.1\r\nHost: h\r\nAuthorization: token OWNER\r\n\r\n"
                     "GET /auth/up HTTP/1.1\r\nHost: h\r\nAuthorization: token OWNER\r\n\r\n";
    csend(fd, r2, strlen(r2));
    read_resp(&r, &rs, 1, 0, 0);
    assert_non_null(strstr(rs.body.data, "\"Authorization\",\"token OWNER\""));
    resp_free(&rs);
    read_resp(&r, &rs, 1, 0, 0);
    assert_non_null(strstr(rs.body.data, "\"Authorization\",\"token UPSTREAM\""));
    assert_null(strstr(rs.body.data, "OWNER"));
    resp_free(&rs);
    close(fd);
    wait_idle();
}

/* Keep-alive: one client connection, many requests; upstream connections
 * come from the pool. */
static void test_keepalive_pool(void **state)
{
    (void)state;
    struct proxy_stats s0 = stats_now();
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    for (int i = 0; i < 20; i++) {
        const char *req = "GET /x/echo HTTP/1.1\r\nHost: h\r\n\r\n";
        csend(fd, req, strlen(req));
        struct resp rs;
        read_resp(&r, &rs, 1, 0, 0);
        assert_int_equal(rs.status, 200);
        assert_false(rs.eof);
        resp_free(&rs);
    }
    /* HEAD: no body, and the connection goes on. */
    const char *hr = "HEAD /x/echo HTTP/1.1\r\nHost: h\r\n\r\nGET /x/echo HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, hr, strlen(hr));
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 1);
    assert_int_equal(rs.status, 200);
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.body_len > 0);
    resp_free(&rs);
    struct proxy_stats s1 = stats_now();
    assert_true(s1.upstream_connects - s0.upstream_connects <= 1);
    assert_true(s1.pool_idle >= 1);
    close(fd);
    wait_idle();
}

/* Chunked both ways, close-delimited answers. */
static void test_chunked_and_close(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    const char *req = "POST /c/sink HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    atomic_store(&g_sink_done, 0);
    csend(fd, req, strlen(req));
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_string_equal(rs.body.data, "{\"len\":11}");
    resp_free(&rs);
    const char *r2 = "GET /c/chunked HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, r2, strlen(r2));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    char v[64];
    assert_non_null(hget(&rs, "transfer-encoding", v, sizeof v));
    assert_string_equal(rs.body.data, "hello chunked world");
    resp_free(&rs);
    /* Close-delimited upstream answer: re-chunked for an HTTP/1.1 client,
     * whose connection goes on. */
    const char *r3 = "GET /c/close HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, r3, strlen(r3));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_false(rs.truncated);
    assert_non_null(hget(&rs, "transfer-encoding", v, sizeof v));
    assert_string_equal(rs.body.data, "until the end");
    resp_free(&rs);
    csend(fd, r2, strlen(r2));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    resp_free(&rs);
    close(fd);
    /* An HTTP/1.0 client gets the close-delimited body and our close. */
    fd = cconnect(F.front_port);
    struct rd r4 = { .fd = fd };
    const char *r5 = "GET /c/close HTTP/1.0\r\nHost: h\r\n\r\n";
    csend(fd, r5, strlen(r5));
    read_resp(&r4, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.eof);
    assert_string_equal(rs.body.data, "until the end");
    resp_free(&rs);
    close(fd);
    wait_idle();
}

#define BIG (64LL * 1024 * 1024)

/* A field of /proc/self/status in KiB (VmRSS, VmHWM); -1 if unreadable. */
static long proc_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') v = atol(line + fl + 1);
    fclose(f);
    return v;
}

/* Start a new VmHWM from the current RSS (Linux: clear_refs 5).  Not
 * under ASan, whose quarantine keeps freed blocks (the upstream's own
 * copies here), so RSS says nothing about what we hold. */
static int hwm_reset(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return -1;
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* 64 MiB each way through the proxy: what it holds stays near the
 * high-water mark. */
static void test_large_streamed(void **state)
{
    (void)state;
    loop_op(3);
    /* Upload, with a Content-Length far above max_body (8 MiB). */
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    char head[128];
    snprintf(head, sizeof head, "POST /l/sink HTTP/1.1\r\nHost: h\r\nContent-Length: %lld\r\n\r\n", BIG);
    atomic_store(&g_sink_done, 0);
    csend(fd, head, strlen(head));
    static char block[1 << 20];
    memset(block, 'u', sizeof block);
    for (long long sent = 0; sent < BIG; sent += (long long)sizeof block) csend(fd, block, sizeof block);
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    char want[64];
    snprintf(want, sizeof want, "{\"len\":%lld}", BIG);
    assert_string_equal(rs.body.data, want);
    resp_free(&rs);
    struct proxy_stats st = stats_now();
    print_message("upload 64 MiB: peak buffered in the proxy %zu bytes\n", st.buffered_peak);
    assert_true(st.buffered_peak <= 1024 * 1024);
    /* Download, read slowly: spliced (a plain client, a Content-Length
     * body), and neither the pipe nor our memory holds more than a little
     * of it.  The process's peak RSS (proxy, upstream and client together)
     * is the check that counts no copy left behind in a queue. */
    loop_op(3);
    uint64_t sp0 = st.spliced_bytes;
    long rss0 = proc_kb("VmRSS");
    int hwm_ok = hwm_reset() == 0;
    char req[128];
    snprintf(req, sizeof req, "GET /l/big?n=%lld HTTP/1.1\r\nHost: h\r\n\r\n", BIG);
    csend(fd, req, strlen(req));
    read_resp(&r, &rs, 0, 1, 0);
    assert_int_equal(rs.status, 200);
    assert_int_equal(rs.body_len, BIG);
    st = stats_now();
    long hwm = proc_kb("VmHWM");
    print_message("download 64 MiB: peak buffered in the proxy %zu bytes, %llu bytes spliced, RSS %ld KiB before, "
                  "peak %ld KiB during%s\n", st.buffered_peak, (unsigned long long)(st.spliced_bytes - sp0), rss0,
                  hwm, hwm_ok ? "" : " (not checked: no peak reset, or ASan)");
    assert_true(st.buffered_peak <= 1024 * 1024);
    assert_true(st.buffered_peak >= PROXY_HIGH_WATER / 2);   /* the back-pressure was exercised */
    assert_true(st.spliced_bytes - sp0 >= (uint64_t)(BIG - 1024 * 1024));
    if (hwm_ok) assert_true(hwm - rss0 <= 16 * 1024);
    close(fd);
    wait_idle();
}

/* The byte the big handler sends at offset off of an n-byte body. */
static char big_byte(long long n, long long off)
{
    long long left = n - off / 65536 * 65536;
    return (char)('a' + (int)(left % 26));
}

/* The splice path: bodies arrive intact and in order, the client's and
 * the upstream's connections both go on after a spliced answer (the pool
 * reuses the upstream one), and an upstream that dies mid-body gives the
 * client a truncated answer and a close, never a made-up end. */
static void test_splice(void **state)
{
    (void)state;
    wait_idle();
    struct proxy_stats s0 = stats_now();
    const long long n = 3 * 1024 * 1024 + 12345;
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    struct resp rs;
    char req[128];
    for (int i = 0; i < 2; i++) {
        snprintf(req, sizeof req, "GET /s/big?n=%lld HTTP/1.1\r\nHost: h\r\n\r\n", n);
        csend(fd, req, strlen(req));
        read_resp(&r, &rs, 1, 0, 0);
        assert_int_equal(rs.status, 200);
        assert_false(rs.truncated);
        assert_int_equal(rs.body_len, n);
        for (long long off = 0; off < n; off += 4093)
            if (rs.body.data[off] != big_byte(n, off)) fail_msg("byte %lld: %c, want %c", off, rs.body.data[off], big_byte(n, off));
        assert_int_equal(rs.body.data[n - 1], big_byte(n, n - 1));
        resp_free(&rs);
    }
    const char *echo = "GET /s/echo HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, echo, strlen(echo));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    resp_free(&rs);
    struct proxy_stats s1 = stats_now();
    assert_int_equal(s1.splices - s0.splices, 2);
    assert_true(s1.spliced_bytes - s0.spliced_bytes >= (uint64_t)(2 * (n - 512 * 1024)));
    assert_true(s1.upstream_connects - s0.upstream_connects <= 1);   /* one connection for all three */
    /* An answer nobody asked for right behind a spliced body: never
     * relayed, and that upstream connection is not reused. */
    snprintf(req, sizeof req, "GET /s/big?n=%lld&junk=1 HTTP/1.1\r\nHost: h\r\n\r\n", n);
    csend(fd, req, strlen(req));
    read_resp(&r, &rs, 0, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_int_equal(rs.body_len, n);
    resp_free(&rs);
    csend(fd, echo, strlen(echo));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_null(strstr(rs.body.data ? rs.body.data : "", "junk"));
    assert_non_null(strstr(rs.body.data ? rs.body.data : "", "/s/echo"));
    resp_free(&rs);
    close(fd);
    wait_idle();

    /* The upstream drops its connection 2 MiB into a 16 MiB body. */
    int a0 = atomic_load(&g_up_aborts);
    fd = cconnect(F.front_port);
    struct rd r2 = { .fd = fd };
    const char *die = "GET /s/big?n=16777216&die=2097152 HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, die, strlen(die));
    read_resp(&r2, &rs, 0, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.truncated);
    assert_true(rs.body_len < 16777216);
    assert_true(wait_for(&g_up_aborts, a0 + 1));
    close(fd);
    wait_idle();
    assert_int_equal(stats_now().buffered, 0);
}

/* The upstream refuses: on_error answers; dies mid-answer: the client sees
 * a truncated answer and a close. */
static void test_upstream_errors(void **state)
{
    (void)state;
    int e0 = atomic_load(&g_errors);
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    const char *req = "GET /refused/x HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, req, strlen(req));
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 503);
    assert_non_null(strstr(rs.body.data, "server_down"));
    assert_int_equal(atomic_load(&g_errors), e0 + 1);
    resp_free(&rs);
    /* The same connection still works (on_error's answer kept it). */
    const char *ok = "GET /x/echo HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, ok, strlen(ok));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    resp_free(&rs);
    /* A head too large from upstream: on_error, not relayed. */
    const char *hh = "GET /x/hugehead HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, hh, strlen(hh));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 503);
    assert_int_equal(atomic_load(&g_errors), e0 + 2);
    resp_free(&rs);
    /* A 101 nobody asked for: on_error, the client connection is not taken over. */
    const char *b101 = "GET /x/bogus101 HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, b101, strlen(b101));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 503);
    assert_int_equal(atomic_load(&g_errors), e0 + 3);
    resp_free(&rs);
    /* Dying mid-answer. */
    const char *die = "GET /x/die HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, die, strlen(die));
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.truncated);
    assert_int_equal(rs.body_len, 10);
    resp_free(&rs);
    close(fd);
    wait_idle();
}

/* A client that goes away mid-upload: the upstream side is closed too. */
static void test_client_gone(void **state)
{
    (void)state;
    int a0 = atomic_load(&g_up_aborts);
    int fd = cconnect(F.front_port);
    const char *head = "POST /g/sink HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n";
    csend(fd, head, strlen(head));
    static char block[1 << 20];
    for (int i = 0; i < 3; i++) csend(fd, block, sizeof block);
    usleep(100000);
    close(fd);
    assert_true(wait_for(&g_up_aborts, a0 + 1));
    wait_idle();
    /* Mid-download too. */
    fd = cconnect(F.front_port);
    const char *req = "GET /g/big?n=100000000 HTTP/1.1\r\nHost: h\r\n\r\n";
    csend(fd, req, strlen(req));
    char tmp[65536];
    assert_true(recv(fd, tmp, sizeof tmp, 0) > 0);
    close(fd);
    assert_true(wait_for(&g_up_aborts, a0 + 2));
    wait_idle();
}

static size_t ws_frame(unsigned char *out, int op, const char *payload, size_t n)
{
    size_t o = 0;
    out[o++] = (unsigned char)(0x80 | op);
    out[o++] = (unsigned char)(0x80 | n);   /* masked, n < 126 */
    unsigned char mask[4] = { 1, 2, 3, 4 };
    memcpy(out + o, mask, 4);
    o += 4;
    for (size_t i = 0; i < n; i++) out[o++] = (unsigned char)(payload[i] ^ mask[i % 4]);
    return o;
}

static void recv_exact(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = recv(fd, c, n, 0);
        assert_true(k > 0);
        c += k;
        n -= (size_t)k;
    }
}

/* Upgrade: the 101 relayed as is, bytes echoed unmodified, pings not
 * counted as activity, half-close passed on both ways. */
static void test_websocket(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    const char *req = "GET /user/alice/api/kernels/k1/channels?session_id=s HTTP/1.1\r\n"
                      "Host: hub:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Origin: http://hub:8000\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: v1.kernel.websocket.jupyter.org\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    /* the path must reach /ws upstream: */
    (void)req;
    const char *req2 = "GET /user/alice/ws/channels?session_id=s HTTP/1.1\r\n"
                       "Host: hub:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Origin: http://hub:8000\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: v1.kernel.websocket.jupyter.org\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    csend(fd, req2, strlen(req2));
    struct rd r = { .fd = fd };
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 101);
    char v[256];
    assert_non_null(hget(&rs, "sec-websocket-protocol", v, sizeof v));
    assert_string_equal(v, "v1.kernel.websocket.jupyter.org");
    assert_non_null(hget(&rs, "sec-websocket-accept", v, sizeof v));
    assert_string_equal(v, "dGhlIHNhbXBsZSBub25jZQ==");        /* what upstream got, echoed */
    assert_non_null(hget(&rs, "sec-websocket-extensions", v, sizeof v));
    assert_non_null(hget(&rs, "upgrade", v, sizeof v));
    assert_non_null(hget(&rs, "connection", v, sizeof v));
    assert_string_equal(v, "Upgrade");
    assert_int_equal(r.len - r.off, 0);
    struct proxy_stats s0 = stats_now();
    assert_int_equal(s0.upgraded, 1);
    /* A ping after the activity interval: echoed, not activity. */
    usleep(400000);
    int act0 = atomic_load(&g_activity);
    unsigned char f[256], back[256];
    size_t n = ws_frame(f, 0x9, "pi", 2);
    csend(fd, f, n);
    recv_exact(fd, back, n);
    assert_memory_equal(back, f, n);                       /* unmodified, still masked */
    assert_int_equal(atomic_load(&g_activity), act0);
    struct proxy_stats s1 = stats_now();
    assert_int_equal(s1.ws_control_frames - s0.ws_control_frames, 2);
    assert_int_equal(s1.ws_data_frames, s0.ws_data_frames);
    /* A data frame: activity. */
    n = ws_frame(f, 0x1, "{\"msg\":\"execute\"}", 17);
    csend(fd, f, n);
    recv_exact(fd, back, n);
    assert_memory_equal(back, f, n);
    assert_true(atomic_load(&g_activity) > act0);
    struct proxy_stats s2 = stats_now();
    assert_int_equal(s2.ws_data_frames - s1.ws_data_frames, 2);
    /* Half-close: our FIN reaches upstream, which then closes its side. */
    n = ws_frame(f, 0x2, "last", 4);
    csend(fd, f, n);
    shutdown(fd, SHUT_WR);
    recv_exact(fd, back, n);
    assert_memory_equal(back, f, n);
    char tmp[16];
    assert_int_equal(recv(fd, tmp, sizeof tmp, 0), 0);     /* EOF passed on */
    close(fd);
    wait_idle();
    assert_int_equal(stats_now().upgraded, 0);
}

/* A client that gives up while its upgrade waits for the upstream's answer
 * is noticed: the upstream side is closed. */
static void test_websocket_client_gone_before_101(void **state)
{
    (void)state;
    int a0 = atomic_load(&g_up_aborts);
    int fd = cconnect(F.front_port);
    const char *req = "GET /wshang HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
    csend(fd, req, strlen(req));
    usleep(200000);
    close(fd);
    assert_true(wait_for(&g_up_aborts, a0 + 1));
    wait_idle();
}

/* A graceful stop of the server closes an open websocket at once (it has
 * no end of its own), and the upstream side with it. */
static void test_websocket_stop(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    const char *req = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
    csend(fd, req, strlen(req));
    struct rd r = { .fd = fd };
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 101);
    assert_int_equal(stats_now().upgraded, 1);
    uint64_t t0 = (uint64_t)time(NULL);
    loop_op(5);
    char tmp[16];
    assert_true(recv(fd, tmp, sizeof tmp, 0) <= 0);
    assert_true((uint64_t)time(NULL) - t0 <= 2);          /* not the 30 s stop timeout */
    close(fd);
    wait_idle();
}

/* Nothing left over: after drop, no upstream handle is open. */
static void test_no_leak(void **state)
{
    (void)state;
    wait_idle();
    loop_op(4);                     /* proxy_drop closes the pool */
    for (int i = 0; i < 100; i++) {
        if (stats_now().upstream_handles == 0) break;
        usleep(10000);
    }
    struct proxy_stats st = stats_now();
    assert_int_equal(st.active, 0);
    assert_int_equal(st.pool_idle, 0);
    assert_int_equal(st.upstream_handles, 0);
    assert_int_equal(st.buffered, 0);
}

/* The frame tracker on its own: headers cut anywhere, extended lengths. */
static void test_ws_track(void **state)
{
    (void)state;
    unsigned char s[300];
    size_t o = 0;
    s[o++] = 0x81, s[o++] = 0x03, memcpy(s + o, "abc", 3), o += 3;           /* text */
    s[o++] = 0x89, s[o++] = 0x80, memset(s + o, 0, 4), o += 4;               /* masked empty ping */
    s[o++] = 0x82, s[o++] = 126, s[o++] = 0, s[o++] = 200;                   /* binary, 200 */
    memset(s + o, 'x', 200), o += 200;
    s[o++] = 0x8a, s[o++] = 0x00;                                            /* pong */
    for (size_t cut = 0; cut <= o; cut++) {
        struct proxy_wsframes t = { 0 };
        uint64_t d = proxy_ws_track(&t, s, cut) + proxy_ws_track(&t, s + cut, o - cut);
        assert_int_equal(d, 2);
        assert_int_equal(t.control_frames, 2);
        assert_int_equal(t.skip, 0);
        assert_int_equal(t.hlen, 0);
    }
    struct proxy_wsframes t = { 0 };
    unsigned char bad[2] = { 0x83, 0 };
    proxy_ws_track(&t, bad, 2);
    assert_true(t.broken);
}

/* A streamed body that stalls is still cut off (body_timeout_ms), and the
 * upstream side is closed with it. */
static void test_slow_body(void **state)
{
    (void)state;
    int a0 = atomic_load(&g_up_aborts);
    int fd = cconnect(F.front_port);
    const char *head = "POST /s/sink HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n0123456789";
    csend(fd, head, strlen(head));
    uint64_t t0 = (uint64_t)time(NULL);
    char tmp[256];
    ssize_t k = recv(fd, tmp, sizeof tmp, 0);
    assert_true(k <= 0);                                    /* closed, no made-up answer */
    assert_true((uint64_t)time(NULL) - t0 <= 5);
    close(fd);
    assert_true(wait_for(&g_up_aborts, a0 + 1));
    wait_idle();
}

/* A streamed body has its own limit (none by default), not max_body: over
 * it, 413 on the head, unread, and nothing reaches the upstream. */
static void test_proxy_body_max(void **state)
{
    (void)state;
    struct proxy_stats s0 = stats_now();
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    const char *head = "POST /m/sink HTTP/1.1\r\nHost: h\r\nContent-Length: 200000000\r\n\r\n";
    csend(fd, head, strlen(head));
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 413);
    resp_free(&rs);
    close(fd);
    struct proxy_stats s1 = stats_now();
    assert_int_equal(s1.upstream_connects, s0.upstream_connects);
    wait_idle();
}

/* Expect: 100-continue on a streamed body: the 100 comes once the proxy
 * asks for the body. */
static void test_expect_continue(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    struct rd r = { .fd = fd };
    const char *head = "POST /e/sink HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    csend(fd, head, strlen(head));
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 100);
    resp_free(&rs);
    csend(fd, "hello", 5);
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 200);
    assert_string_equal(rs.body.data, "{\"len\":5}");
    resp_free(&rs);
    close(fd);
    wait_idle();
}

/* A pooled connection the server closed: the next bodiless request is
 * retried on a new one, the client sees nothing of it. */
static void test_pool_retry(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        int fd = cconnect(F.front_port);
        struct rd r = { .fd = fd };
        const char *req = "GET /r/closeafter HTTP/1.1\r\nHost: h\r\n\r\nGET /r/echo HTTP/1.1\r\nHost: h\r\n\r\n";
        csend(fd, req, strlen(req));
        struct resp rs;
        read_resp(&r, &rs, 1, 0, 0);
        assert_int_equal(rs.status, 200);
        resp_free(&rs);
        read_resp(&r, &rs, 1, 0, 0);
        assert_int_equal(rs.status, 200);
        assert_non_null(strstr(rs.body.data, "/r/echo"));
        resp_free(&rs);
        close(fd);
        wait_idle();
    }
    uint64_t retries = stats_now().retries;
    print_message("pool retries: %llu of 5\n", (unsigned long long)retries);
    assert_true(retries >= 1);      /* the retry path ran (the FIN comes after the answer) */
}

/* Bytes the client sends right behind its upgrade request (before the 101)
 * are not lost. */
static void test_websocket_eager(void **state)
{
    (void)state;
    int fd = cconnect(F.front_port);
    char buf[1024];
    unsigned char f[64], back[64];
    int hl = snprintf(buf, sizeof buf, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                       "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n"
                                       "Sec-WebSocket-Version: 13\r\n\r\n");
    size_t n = ws_frame(f, 0x1, "early", 5);
    memcpy(buf + hl, f, n);
    csend(fd, buf, (size_t)hl + n);
    struct rd r = { .fd = fd };
    struct resp rs;
    read_resp(&r, &rs, 1, 0, 0);
    assert_int_equal(rs.status, 101);
    size_t have = r.len - r.off;
    memcpy(back, r.buf + r.off, have);
    if (have < n) recv_exact(fd, back + have, n - have);
    assert_memory_equal(back, f, n);
    close(fd);
    wait_idle();
}

/* PROXY_BENCH_SECONDS=N: no tests; serve the proxy (front port printed) for
 * N seconds, to PROXY_BENCH_UPSTREAM (a port on 127.0.0.1, e.g. a jupyter
 * server) or the built-in upstream; PROXY_BENCH_NOPOOL=1 disables the pool.
 * For measuring with wrk, not part of the suite. */
static int bench(int seconds)
{
    setup(NULL);
    if (getenv("PROXY_BENCH_UPSTREAM")) F.up_port = atoi(getenv("PROXY_BENCH_UPSTREAM"));
    struct proxy_config pc = { .no_pool = getenv("PROXY_BENCH_NOPOOL") != NULL };
    proxy_configure(&pc);
    printf("front %d upstream %d\n", F.front_port, F.up_port);
    fflush(stdout);
    sleep((unsigned)seconds);
    struct proxy_stats st = stats_now();
    printf("upstream connects %llu\n", (unsigned long long)st.upstream_connects);
    teardown(NULL);
    return 0;
}

int main(void)
{
    if (getenv("PROXY_BENCH_SECONDS")) return bench(atoi(getenv("PROXY_BENCH_SECONDS")));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_track),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_keepalive_pool),
        cmocka_unit_test(test_chunked_and_close),
        cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_websocket_eager),
        cmocka_unit_test(test_websocket_client_gone_before_101),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_proxy_body_max),
        cmocka_unit_test(test_pool_retry),
        cmocka_unit_test(test_large_streamed),
        cmocka_unit_test(test_splice),
        cmocka_unit_test(test_websocket_stop),      /* stops the front: keep it last but one */
        cmocka_unit_test(test_no_leak),
    };
    return cmocka_run_group_tests_name("proxy", tests, setup, teardown);
}
