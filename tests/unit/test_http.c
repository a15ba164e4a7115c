/* Unit tests for http/server, http/router and http/sse.
 *
 * A real server runs on its own uv loop in a background thread, on
 * 127.0.0.1 port 0, with timeouts shortened to a few hundred milliseconds;
 * the tests talk to it with plain blocking sockets, exactly as a client
 * would.  Handlers run on the loop thread, so they only record what they
 * saw in atomics; the assertions happen on the test thread.  A few tests
 * drive a socketless ("detached") connection instead, to check the parser
 * deterministically (byte-by-byte feeding must give the same answers). */
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
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "http/gzip.h"
#include "http/router.h"
#include "http/server.h"
#include "http/sse.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define FLAG_AUTH 1u

/* ---- what handlers saw (written on the loop thread) ------------------- */

static atomic_int g_aborted, g_late_rc, g_late_done, g_sse_closed, g_sse_drop_rc, g_before_calls;

/* ---- server fixture --------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    uv_thread_t th;
    uv_async_t stop;
    http_server_t *srv;
    http_router_t *router;
    int port;
    atomic_int stopped;
};

static struct fx *g_fx;     /* the fixture whose loop the handlers use */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A one-shot timer that answers a request later. */
struct later {
    uv_timer_t t;
    http_req_t *req;
    int kind;
};

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    if (l->kind == 0) {
        http_respond(l->req, 200, "text/plain", "async", 5);
    } else {
        int rc = http_respond(l->req, 200, "text/plain", "late", 4);
        atomic_store(&g_late_rc, rc);
        atomic_store(&g_late_done, 1);
    }
    uv_close((uv_handle_t *)t, later_closed);
}

static void answer_later(http_req_t *req, uint64_t ms, int kind)
{
    struct later *l = xcalloc(1, sizeof *l);
    l->req = req;
    l->kind = kind;
    uv_timer_init(&g_fx->loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, ms, 0);
}

static void h_hello(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_echo(http_req_t *req, void *ud)
{
    (void)ud;
    size_t len;
    const char *body = http_req_body(req, &len);
    const char *ct = http_header(req, "content-type");
    http_respond_json(req, 200, json_pack("{s:I,s:s%,s:s}", "len", (json_int_t)len, "body", body, len,
                                          "ctype", ct ? ct : ""));
}

static void h_async(http_req_t *req, void *ud)
{
    (void)ud;
    answer_later(req, 50, 0);
}

static void on_abort(http_req_t *req, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&g_aborted, 1);
}

static void h_abort_me(http_req_t *req, void *ud)
{
    (void)ud;
    http_req_on_abort(req, on_abort, NULL);
    answer_later(req, 150, 1);
}

static void h_flow(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond_json(req, 200, json_pack("{s:s,s:s,s:s}", "name", http_param(req, "name"), "id",
                                          http_param(req, "id"), "path", http_req_path(req)));
}

static void h_query(http_req_t *req, void *ud)
{
    (void)ud;
    json_t *all = json_array();
    const char *n, *v;
    for (size_t i = 0; http_query_at(req, i, &n, &v) == 0; i++) json_array_append_new(all, json_pack("[s,s]", n, v));
    const char *a = http_query(req, "a");
    http_respond_json(req, 200, json_pack("{s:s?,s:o}", "a", a, "all", all));
}

static void h_inject(http_req_t *req, void *ud)
{
    (void)ud;
    int r1 = http_set_header(req, "X-Test", "a\r\nSet-Cookie: evil=1");
    int r2 = http_set_header(req, "Bad Name", "x");
    int r3 = http_set_header(req, "X-Lf", "a\nb");
    int r4 = http_set_header(req, "Content-Length", "1");
    int r5 = http_set_header(req, "X-Ok", "fine");
    int r6 = http_set_header(req, "Content-Security-Policy", "default-src 'none'");
    http_respond_json(req, 200, json_pack("[i,i,i,i,i,i]", r1, r2, r3, r4, r5, r6));
}

static void h_items(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond(req, 200, "text/plain", http_req_method(req), strlen(http_req_method(req)));
}

static void h_static(http_req_t *req, void *ud)
{
    (void)ud;
    const char *rest = http_param(req, "rest");
    http_respond(req, 200, "text/plain", rest, strlen(rest));
}

static void h_cookies(http_req_t *req, void *ud)
{
    (void)ud;
    json_t *multi = json_array();
    const char *v;
    for (size_t i = 0; (v = http_header_nth(req, "x-multi", i)) != NULL; i++) json_array_append_new(multi, json_string(v));
    http_respond_json(req, 200, json_pack("{s:s?,s:s?,s:s?,s:o,s:s?}", "sid", http_cookie(req, "sid"), "theme",
                                          http_cookie(req, "theme"), "none", http_cookie(req, "none"), "multi",
                                          multi, "empty", http_header(req, "x-empty")));
}

static void h_secret(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond_json(req, 200, json_pack("{s:i}", "flags", (int)http_req_route_flags(req)));
}

static void h_stream(http_req_t *req, void *ud)
{
    (void)ud;
    http_stream_begin(req, 200, "text/plain");
    http_stream_write(req, "one,", 4);
    http_stream_write(req, "two,", 4);
    http_stream_write(req, "three", 5);
    http_stream_end(req);
}

/* SSE: one event now, a second one 250 ms later (keep-alives in between at
 * 100 ms), then the server ends the stream. */
struct sse_job {
    uv_timer_t t;
    http_sse_t *s;
    int closed_by_client;
};

static void sse_job_closed(uv_handle_t *h) { free(h->data); }

static void sse_on_close(http_sse_t *s, void *ud)
{
    (void)s;
    struct sse_job *j = ud;
    j->s = NULL;
    atomic_fetch_add(&g_sse_closed, 1);
    uv_timer_stop(&j->t);
    uv_close((uv_handle_t *)&j->t, sse_job_closed);
}

static void sse_second(uv_timer_t *t)
{
    struct sse_job *j = t->data;
    http_sse_send(j->s, "tick", "2", "two");
    http_sse_close(j->s);
    uv_close((uv_handle_t *)t, sse_job_closed);
}

static void h_events(http_req_t *req, void *ud)
{
    (void)ud;
    struct sse_job *j = xcalloc(1, sizeof *j);
    uv_timer_init(&g_fx->loop, &j->t);
    j->t.data = j;
    j->s = http_sse_start(req, sse_on_close, j);
    if (!j->s) {
        uv_close((uv_handle_t *)&j->t, sse_job_closed);
        return;
    }
    /* No cmocka asserts on the loop thread: a wrong answer shows in the stream. */
    if (http_sse_send(j->s, "bad\nevent", NULL, "x") != -EINVAL) http_sse_send(j->s, "FAIL", NULL, "x");
    http_sse_send(j->s, "greeting", "1", "hello\nworld\r\nagain");
    uv_timer_start(&j->t, sse_second, 250, 0);
}

/* SSE flood for a client that never reads: 256 KiB every millisecond until
 * the server drops it. */
static void flood_tick(uv_timer_t *t)
{
    struct sse_job *j = t->data;
    if (!j->s) return;
    static char big[256 * 1024];
    if (!big[0]) memset(big, 'x', sizeof big - 1);
    int rc = http_sse_send(j->s, NULL, NULL, big);
    if (rc < 0) {
        atomic_store(&g_sse_drop_rc, rc);
        uv_timer_stop(t);           /* on_close follows from the loop */
    }
}

static void h_flood(http_req_t *req, void *ud)
{
    (void)ud;
    struct sse_job *j = xcalloc(1, sizeof *j);
    uv_timer_init(&g_fx->loop, &j->t);
    j->t.data = j;
    j->s = http_sse_start(req, sse_on_close, j);
    uv_timer_start(&j->t, flood_tick, 1, 1);
}

/* The before hook: FLAG_AUTH routes need "Authorization: Bearer good". */
static int before(http_req_t *req, const struct http_route *route, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_before_calls, 1);
    if (!(route->flags & FLAG_AUTH)) return 0;
    const char *a = http_header(req, "authorization");
    if (a && strcmp(a, "Bearer good") == 0) return 0;
    http_respond_error(req, 401, "unauthorized", "login required");
    return 1;
}

static const struct http_route routes[] = {
    { "GET", "/hello", h_hello, 0 },
    { "POST", "/echo", h_echo, 0 },
    { "GET", "/async", h_async, 0 },
    { "GET", "/abort-me", h_abort_me, 0 },
    { "GET", "/api/v1/flows/:name/runs/:id", h_flow, 0 },
    { "GET", "/q", h_query, 0 },
    { "GET", "/inject", h_inject, 0 },
    { "GET", "/items", h_items, 0 },
    { "POST", "/items", h_items, 0 },
    { "GET", "/static/" "*rest", h_static, 0 },
    { "GET", "/cookies", h_cookies, 0 },
    { "GET", "/secret", h_secret, FLAG_AUTH },
    { "POST", "/secret", h_echo, FLAG_AUTH },
    { "GET", "/stream", h_stream, 0 },
    { "GET", "/events", h_events, 0 },
    { "GET", "/flood", h_flood, 0 },
};

static void fx_thread(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_stopped(http_server_t *srv, void *ud)
{
    struct fx *f = ud;
    http_server_free(srv);
    f->srv = NULL;
    atomic_store(&f->stopped, 1);
}

static void fx_stop_async(uv_async_t *a)
{
    struct fx *f = a->data;
    http_server_stop(f->srv, fx_stopped, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void test_limits(struct http_limits *lim)
{
    http_limits_default(lim);
    lim->head_timeout_ms = 300;
    lim->idle_timeout_ms = 300;
    lim->body_timeout_ms = 300;
    lim->linger_ms = 200;
    lim->sse_keepalive_ms = 100;
    lim->stop_timeout_ms = 2000;
}

/* Start a server on its own thread.  listen2 is an optional extra address. */
static struct fx *fx_start(const struct http_limits *lim, const char *listen1, const char *listen2)
{
    struct fx *f = xcalloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    nb_err_t err;
    assert_int_equal(http_router_new(routes, sizeof routes / sizeof routes[0], NULL, &f->router, &err), 0);
    http_router_set_before(f->router, before, NULL);
    f->srv = http_server_new(&f->loop, lim, http_router_handle, f->router);
    assert_int_equal(http_server_set_csp(f->srv, "default-src 'self'"), 0);
    int rc = http_server_listen(f->srv, listen1, &err);
    if (rc < 0) fail_msg("listen %s: %s", listen1, err.msg);
    if (listen2) http_server_listen(f->srv, listen2, &err);     /* optional (IPv6 may be absent) */
    f->port = http_server_port(f->srv);
    uv_async_init(&f->loop, &f->stop, fx_stop_async);
    f->stop.data = f;
    g_fx = f;
    assert_int_equal(uv_thread_create(&f->th, fx_thread, f), 0);
    return f;
}

static void fx_finish(struct fx *f)
{
    uv_async_send(&f->stop);
    uv_thread_join(&f->th);
    assert_true(atomic_load(&f->stopped));
    assert_int_equal(uv_loop_close(&f->loop), 0);
    http_router_free(f->router);
    free(f);
}

/* ---- a tiny blocking client ------------------------------------------- */

struct cli {
    int fd;
    buf_t in;
};

struct resp {
    int status;
    char head[16384];
    buf_t body;
};

static void set_timeout(int fd, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static struct cli cli_tcp(int port, int rcvbuf)
{
    struct cli c = { socket(AF_INET, SOCK_STREAM, 0), BUF_INIT };
    assert_true(c.fd >= 0);
    if (rcvbuf) setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    set_timeout(c.fd, 3000);
    return c;
}

static void cli_close(struct cli *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
}

static void cli_send(struct cli *c, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

static void cli_puts(struct cli *c, const char *s) { cli_send(c, s, strlen(s)); }

static ssize_t cli_fill(struct cli *c)
{
    char tmp[65536];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n > 0) buf_append(&c->in, tmp, (size_t)n);
    return n;
}

static void cli_consume(struct cli *c, size_t n)
{
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

static const char *resp_header(const struct resp *r, const char *name)
{
    static char val[1024];
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ') v++;
            size_t len = strcspn(v, "\r");
            if (len >= sizeof val) len = sizeof val - 1;
            memcpy(val, v, len);
            val[len] = '\0';
            return val;
        }
    }
    return NULL;
}

/* Read one response (interim 1xx responses are returned too).  0, or -1 on
 * EOF/timeout before a complete response. */
static int cli_response(struct cli *c, struct resp *r, int head_method)
{
    memset(r->head, 0, sizeof r->head);
    r->body = (buf_t)BUF_INIT;
    char *end;
    while (!c->in.data || !(end = strstr(c->in.data, "\r\n\r\n")))
        if (cli_fill(c) <= 0) return -1;
    size_t hlen = (size_t)(end - c->in.data) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, c->in.data, hlen);
    cli_consume(c, hlen);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    if (head_method || r->status < 200 || r->status == 204 || r->status == 304) return 0;
    const char *cl = resp_header(r, "content-length"), *te = resp_header(r, "transfer-encoding");
    if (cl) {
        size_t n = (size_t)strtoul(cl, NULL, 10);
        while (c->in.len < n)
            if (cli_fill(c) <= 0) return -1;
        buf_append(&r->body, c->in.data, n);
        cli_consume(c, n);
    } else if (te && strcmp(te, "chunked") == 0) {
        for (;;) {
            while (!c->in.data || !strstr(c->in.data, "\r\n"))
                if (cli_fill(c) <= 0) return -1;
            size_t size = (size_t)strtoul(c->in.data, NULL, 16);
            size_t line = (size_t)(strstr(c->in.data, "\r\n") - c->in.data) + 2;
            while (c->in.len < line + size + 2)
                if (cli_fill(c) <= 0) return -1;
            buf_append(&r->body, c->in.data + line, size);
            cli_consume(c, line + size + 2);
            if (size == 0) break;
        }
    } else {
        while (cli_fill(c) > 0) {}
        buf_append(&r->body, c->in.data ? c->in.data : "", c->in.len);
        cli_consume(c, c->in.len);
    }
    if (!r->body.data) buf_append(&r->body, "", 0);
    return 0;
}

/* 1 if the server closes the connection (EOF or reset) within the timeout. */
static int cli_closed(struct cli *c)
{
    for (;;) {
        ssize_t n = cli_fill(c);
        if (n == 0) return 1;
        if (n < 0) return errno == ECONNRESET;
    }
}

/* One request on a fresh connection. */
static int simple(struct fx *f, const char *req, struct resp *r)
{
    struct cli c = cli_tcp(f->port, 0);
    cli_puts(&c, req);
    int rc = cli_response(&c, r, strncmp(req, "HEAD ", 5) == 0);
    cli_close(&c);
    return rc;
}

static json_t *body_json(const struct resp *r)
{
    json_error_t je;
    json_t *j = json_loadb(r->body.data, r->body.len, 0, &je);
    if (!j) fail_msg("bad JSON body: %s", r->body.data);
    return j;
}

static int wait_for(atomic_int *v, int want, int ms)
{
    uint64_t until = now_ms() + (uint64_t)ms;
    while (atomic_load(v) < want && now_ms() < until) usleep(5000);
    return atomic_load(v) >= want;
}

/* ---- tests on the shared server --------------------------------------- */

static struct fx *S;

static int group_setup(void **state)
{
    (void)state;
    if (getenv("NBHUB_TEST_LOG")) log_set_level(LOG_INFO);     /* to look at the access log */
    struct http_limits lim;
    test_limits(&lim);
    S = fx_start(&lim, "127.0.0.1:0", NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fx_finish(S);
    return 0;
}

static void test_get(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "hello");
    assert_string_equal(resp_header(&r, "Server"), "nbhub");
    assert_non_null(resp_header(&r, "Date"));
    assert_string_equal(resp_header(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(resp_header(&r, "Referrer-Policy"), "no-referrer");
    assert_string_equal(resp_header(&r, "Content-Security-Policy"), "default-src 'self'");
    assert_string_equal(resp_header(&r, "Content-Type"), "text/plain");
    assert_null(resp_header(&r, "Connection"));
    buf_free(&r.body);
}

static void test_post_json(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 13\r\n\r\n{\"a\": [1, 2]}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(r.body.data, "{\"len\":13,\"body\":\"{\\\"a\\\": [1, 2]}\",\"ctype\":\"application/json\"}");
    buf_free(&r.body);
}

static void test_keepalive(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    for (int i = 0; i < 3; i++) {
        struct resp r;
        cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(cli_response(&c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        buf_free(&r.body);
    }
    cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(cli_closed(&c));
    buf_free(&r.body);
    cli_close(&c);
}

static void test_pipelining(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    /* The slow one first: answers must still come in request order. */
    cli_puts(&c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /api/v1/flows/f/runs/7 HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "async");
    buf_free(&r.body);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_non_null(strstr(r.body.data, "\"len\":3"));
    buf_free(&r.body);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_non_null(strstr(r.body.data, "\"id\":\"7\""));
    buf_free(&r.body);
    cli_close(&c);
}

static void test_chunked_upload(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
    json_decref(j);
    buf_free(&r.body);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 100);
    cli_puts(&c, "data");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\"body\":\"data\""));
    buf_free(&r.body);
    /* Too large: 413 instead of 100, and the body is never asked for. */
    cli_puts(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999999\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    buf_free(&r.body);
    assert_true(cli_closed(&c));
    cli_close(&c);
}

static void test_header_too_large(void **state)
{
    (void)state;
    buf_t req = BUF_INIT;
    buf_puts(&req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 20000; i++) buf_putc(&req, 'a');
    buf_puts(&req, "\r\n\r\n");
    struct cli c = cli_tcp(S->port, 0);
    cli_send(&c, req.data, req.len);
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 431);
    assert_non_null(strstr(r.body.data, "\"code\":\"header_too_large\""));
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(cli_closed(&c));
    buf_free(&r.body);
    cli_close(&c);
    /* Too many headers. */
    buf_reset(&req);
    buf_puts(&req, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i < 150; i++) buf_printf(&req, "X-H%d: v\r\n", i);
    buf_puts(&req, "\r\n");
    c = cli_tcp(S->port, 0);
    cli_send(&c, req.data, req.len);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 431);
    buf_free(&r.body);
    cli_close(&c);
    buf_free(&req);
}

static void test_body_too_large(void **state)
{
    (void)state;
    /* Only the head is sent: the 413 must come without reading any body. */
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body.data, "payload_too_large"));
    assert_true(cli_closed(&c));
    buf_free(&r.body);
    cli_close(&c);
}

static void test_url_too_long(void **state)
{
    (void)state;
    buf_t req = BUF_INIT;
    buf_puts(&req, "GET /");
    for (int i = 0; i < 9000; i++) buf_putc(&req, 'a');
    buf_puts(&req, " HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(simple(S, req.data, &r), 0);
    assert_int_equal(r.status, 414);
    buf_free(&r.body);
    buf_free(&req);
}

static void test_garbage(void **state)
{
    (void)state;
    const char *bad[] = {
        "HELLO WORLD\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "GET /hello HTTP/1.1\r\nExpect: bananas\r\n\r\n",
    };
    int want[] = { 400, 400, 400, 400, 400, 400, 417 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cli c = cli_tcp(S->port, 0);
        cli_puts(&c, bad[i]);
        struct resp r;
        assert_int_equal(cli_response(&c, &r, 0), 0);
        if (r.status != want[i]) fail_msg("request %zu: status %d, want %d", i, r.status, want[i]);
        assert_true(cli_closed(&c));
        buf_free(&r.body);
        cli_close(&c);
    }
}

static void test_slow_head(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    uint64_t t0 = now_ms();
    cli_puts(&c, "GET /hello HTTP/1.1\r\nHost:");
    usleep(150 * 1000);
    cli_puts(&c, " x\r\n");         /* bytes arrive, but the head deadline is absolute */
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    assert_true(cli_closed(&c));
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 250 && dt < 2000);
    buf_free(&r.body);
    cli_close(&c);
    /* A connection that sends nothing at all is closed too. */
    c = cli_tcp(S->port, 0);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    buf_free(&r.body);
    cli_close(&c);
}

static void test_slow_body(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    for (int i = 0; i < 3; i++) {           /* progress keeps it alive past one timeout */
        usleep(150 * 1000);
        cli_puts(&c, "d");
    }
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    buf_free(&r.body);
    cli_close(&c);
}

static void test_idle_keepalive(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    buf_free(&r.body);
    uint64_t t0 = now_ms();
    assert_true(cli_closed(&c));
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 250 && dt < 2000);
    cli_close(&c);
}

static void test_async(void **state)
{
    (void)state;
    uint64_t t0 = now_ms();
    struct resp r;
    assert_int_equal(simple(S, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_true(now_ms() - t0 >= 45);
    assert_string_equal(r.body.data, "async");
    buf_free(&r.body);
}

static void test_abort(void **state)
{
    (void)state;
    atomic_store(&g_aborted, 0);
    atomic_store(&g_late_done, 0);
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /abort-me HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(30 * 1000);
    cli_close(&c);
    assert_true(wait_for(&g_aborted, 1, 2000));
    assert_true(wait_for(&g_late_done, 1, 2000));
    assert_int_equal(atomic_load(&g_late_rc), -ECONNRESET);
}

static void test_head(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    /* HEAD then GET pipelined: if HEAD leaked a body, the second response
     * would not parse. */
    cli_puts(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Content-Length"), "5");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    /* HEAD on an event stream: headers only, and the connection goes on. */
    cli_puts(&c, "HEAD /events HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 1), 0);
    assert_string_equal(resp_header(&r, "Content-Type"), "text/event-stream; charset=utf-8");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    cli_close(&c);
}

static void test_404_405(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body.data, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such resource\"}}");
    buf_free(&r.body);
    assert_int_equal(simple(S, "DELETE /items HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(resp_header(&r, "Allow"), "GET, HEAD, POST");
    buf_free(&r.body);
    assert_int_equal(simple(S, "OPTIONS /items HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 204);
    assert_string_equal(resp_header(&r, "Allow"), "GET, HEAD, POST, OPTIONS");
    assert_null(resp_header(&r, "Content-Length"));
    assert_int_equal(simple(S, "POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r), 0);
    assert_string_equal(r.body.data, "POST");
    buf_free(&r.body);
    /* A method http-parser does not know is no malformed request: 405 with
     * Allow (schemathesis sends QUERY), 404 off the routes, and the
     * connection (body and all) goes on. */
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "QUERY /items HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(resp_header(&r, "Allow"), "GET, HEAD, POST");
    assert_non_null(strstr(r.body.data, "method QUERY not allowed"));
    buf_free(&r.body);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    cli_close(&c);
    assert_int_equal(simple(S, "FROB /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);
    /* Trailing slash and extra segments do not match. */
    assert_int_equal(simple(S, "GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);
    assert_int_equal(simple(S, "GET /api/v1/flows//runs/1 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    buf_free(&r.body);
}

static void test_path_params(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /api/v1/flows/daily%20etl%2Fv2/runs/42 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "daily etl/v2");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "42");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/api/v1/flows/daily etl/v2/runs/42");
    json_decref(j);
    buf_free(&r.body);
    /* Literal segments match decoded text; absolute-form targets work. */
    assert_int_equal(simple(S, "GET http://example/api/v1/fl%6Fws/a/runs/b HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    /* Wildcard. */
    assert_int_equal(simple(S, "GET /static/css/site%2Dmain.css?v=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_string_equal(r.body.data, "css/site-main.css");
    buf_free(&r.body);
    assert_int_equal(simple(S, "GET /static HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "");
    buf_free(&r.body);
}

static void test_query(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /q?x=1&a=hello+w%C3%B6rld&&flag&a=second&e= HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"a\":\"hello w\xc3\xb6rld\",\"all\":[[\"x\",\"1\"],[\"a\",\"hello w\xc3\xb6rld\"],"
                                     "[\"flag\",\"\"],[\"a\",\"second\"],[\"e\",\"\"]]}");
    buf_free(&r.body);
    assert_int_equal(simple(S, "GET /q?a=%2 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 400);
    buf_free(&r.body);
}

static void test_header_injection(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "[%d,%d,%d,%d,0,0]", -EINVAL, -EINVAL, -EINVAL, -EINVAL);
    assert_string_equal(r.body.data, want);
    assert_null(resp_header(&r, "Set-Cookie"));
    assert_null(resp_header(&r, "X-Test"));
    assert_string_equal(resp_header(&r, "X-Ok"), "fine");
    /* Set per request, it replaces the server-wide CSP. */
    assert_string_equal(resp_header(&r, "Content-Security-Policy"), "default-src 'none'");
    assert_null(strstr(r.head, "default-src 'self'"));
    buf_free(&r.body);
}

static void test_cookies_headers(void **state)
{
    (void)state;
    struct resp r;
    assert_int_equal(simple(S, "GET /cookies HTTP/1.1\r\nHost: x\r\nCookie: sid=abc123; theme=\"dark\"\r\n"
                               "X-Multi: one\r\nx-multi: two\r\nX-Empty:\r\nX-After: z\r\n\r\n", &r), 0);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "sid")), "abc123");
    assert_string_equal(json_string_value(json_object_get(j, "theme")), "dark");
    assert_true(json_is_null(json_object_get(j, "none")));
    assert_int_equal(json_array_size(json_object_get(j, "multi")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "multi"), 1)), "two");
    assert_string_equal(json_string_value(json_object_get(j, "empty")), "");
    json_decref(j);
    buf_free(&r.body);
}

static void test_before_hook(void **state)
{
    (void)state;
    int before_calls = atomic_load(&g_before_calls);
    struct resp r;
    assert_int_equal(simple(S, "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 401);
    buf_free(&r.body);
    assert_int_equal(simple(S, "GET /secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"flags\":1}");
    buf_free(&r.body);
    assert_int_equal(atomic_load(&g_before_calls), before_calls + 2);
}

static void test_http10(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /hello HTTP/1.0\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Connection"), "close");
    assert_true(cli_closed(&c));
    buf_free(&r.body);
    cli_close(&c);
    /* 1.0 with keep-alive asked for keeps the connection. */
    c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(resp_header(&r, "Connection"), "keep-alive");
    buf_free(&r.body);
    cli_puts(&c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 0), 0);       /* close-delimited */
    assert_string_equal(r.body.data, "one,two,three");
    buf_free(&r.body);
    cli_close(&c);
}

static void test_stream(void **state)
{
    (void)state;
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(resp_header(&r, "Transfer-Encoding"), "chunked");
    assert_string_equal(r.body.data, "one,two,three");
    buf_free(&r.body);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    cli_close(&c);
}

static void test_sse(void **state)
{
    (void)state;
    int closed = atomic_load(&g_sse_closed);
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);     /* returns at the terminal chunk */
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Content-Type"), "text/event-stream; charset=utf-8");
    assert_string_equal(resp_header(&r, "Cache-Control"), "no-cache");
    const char *b = r.body.data;
    const char *first = "id: 1\nevent: greeting\ndata: hello\ndata: world\ndata: again\n\n";
    assert_true(strncmp(b, first, strlen(first)) == 0);
    assert_non_null(strstr(b, ": keep-alive\n\n"));
    const char *tail = "id: 2\nevent: tick\ndata: two\n\n";
    assert_string_equal(b + strlen(b) - strlen(tail), tail);
    buf_free(&r.body);
    /* The connection stays usable after the stream ended. */
    cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    cli_close(&c);
    assert_int_equal(atomic_load(&g_sse_closed), closed);   /* ended by us: no on_close */
}

static void test_sse_client_gone(void **state)
{
    (void)state;
    int closed = atomic_load(&g_sse_closed);
    struct cli c = cli_tcp(S->port, 0);
    cli_puts(&c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(cli_fill(&c) > 0);
    cli_close(&c);
    assert_true(wait_for(&g_sse_closed, closed + 1, 2000));
}

static void test_sse_slow_client(void **state)
{
    (void)state;
    int closed = atomic_load(&g_sse_closed);
    atomic_store(&g_sse_drop_rc, 0);
    struct cli c = cli_tcp(S->port, 4096);
    cli_puts(&c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Never read: the server must drop us instead of buffering forever. */
    assert_true(wait_for(&g_sse_closed, closed + 1, 10000));
    assert_int_equal(atomic_load(&g_sse_drop_rc), -ENOBUFS);
    cli_close(&c);
}

/* ---- tests with their own server -------------------------------------- */

static void test_unix_and_ipv6(void **state)
{
    (void)state;
    char path[108];
    snprintf(path, sizeof path, "/tmp/nbhub-test-http-%d.sock", (int)getpid());
    char addr[120];
    snprintf(addr, sizeof addr, "unix:%s", path);
    struct http_limits lim;
    test_limits(&lim);
    struct fx *f = fx_start(&lim, addr, "[::1]:0");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    struct cli c = { socket(AF_UNIX, SOCK_STREAM, 0), BUF_INIT };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    set_timeout(c.fd, 3000);
    cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_string_equal(r.body.data, "hello");
    buf_free(&r.body);
    cli_close(&c);
    if (f->port > 0) {                          /* IPv6 is not always available */
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)f->port) };
        s6.sin6_addr = in6addr_loopback;
        assert_int_equal(connect(fd, (struct sockaddr *)&s6, sizeof s6), 0);
        c = (struct cli){ fd, BUF_INIT };
        set_timeout(fd, 3000);
        cli_puts(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(cli_response(&c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        buf_free(&r.body);
        cli_close(&c);
    }
    fx_finish(f);
    g_fx = S;
    assert_int_equal(access(path, F_OK), -1);       /* removed on stop */
}

static void test_max_connections(void **state)
{
    (void)state;
    struct http_limits lim;
    test_limits(&lim);
    lim.max_connections = 2;
    lim.head_timeout_ms = 5000;
    struct fx *f = fx_start(&lim, "127.0.0.1:0", NULL);
    struct cli a = cli_tcp(f->port, 0), b = cli_tcp(f->port, 0);
    usleep(50 * 1000);
    struct cli c = cli_tcp(f->port, 0);
    struct resp r;
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 503);
    assert_true(cli_closed(&c));
    buf_free(&r.body);
    cli_close(&c);
    /* The first two still work. */
    cli_puts(&a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cli_response(&a, &r, 0), 0);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    cli_close(&a);
    cli_close(&b);
    fx_finish(f);
    g_fx = S;
}

static void test_graceful_stop(void **state)
{
    (void)state;
    struct http_limits lim;
    test_limits(&lim);
    lim.idle_timeout_ms = 10000;
    struct fx *f = fx_start(&lim, "127.0.0.1:0", NULL);
    struct cli idle = cli_tcp(f->port, 0);
    cli_puts(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    struct resp r;
    assert_int_equal(cli_response(&idle, &r, 0), 0);
    buf_free(&r.body);
    struct cli busy = cli_tcp(f->port, 0);
    cli_puts(&busy, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(20 * 1000);
    uint64_t t0 = now_ms();
    uv_async_send(&f->stop);
    /* The in-flight request still gets its answer, with Connection: close. */
    assert_int_equal(cli_response(&busy, &r, 0), 0);
    assert_string_equal(r.body.data, "async");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    buf_free(&r.body);
    assert_true(cli_closed(&busy));
    assert_true(cli_closed(&idle));
    uv_thread_join(&f->th);
    assert_true(atomic_load(&f->stopped));
    assert_true(now_ms() - t0 < 1500);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), -1);
    close(fd);
    cli_close(&busy);
    cli_close(&idle);
    http_router_free(f->router);
    free(f);
    g_fx = S;
}

/* ---- detached connections (no sockets, no timers) --------------------- */

struct dfx {
    uv_loop_t loop;
    http_server_t *srv;
    http_router_t *router;
};

/* lim may be NULL (the server's defaults). */
static void dfx_start(struct dfx *d, const struct http_limits *lim)
{
    uv_loop_init(&d->loop);
    nb_err_t err;
    assert_int_equal(http_router_new(routes, sizeof routes / sizeof routes[0], NULL, &d->router, &err), 0);
    d->srv = http_server_new(&d->loop, lim, http_router_handle, d->router);
}

static void dfx_stopped(http_server_t *srv, void *ud)
{
    (void)ud;
    http_server_free(srv);
}

static void dfx_finish(struct dfx *d)
{
    http_server_stop(d->srv, dfx_stopped, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&d->loop), 0);
    http_router_free(d->router);
}

/* Output with Date lines removed (they may tick between two runs). */
static char *strip_date(const buf_t *b)
{
    buf_t o = BUF_INIT;
    const char *p = b->data ? b->data : "";
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t)(e - p) + 2 : strlen(p);
        if (strncmp(p, "Date: ", 6) != 0) buf_append(&o, p, n);
        p += n;
    }
    if (!o.data) buf_append(&o, "", 0);
    return buf_detach(&o);
}

static void test_detached_split(void **state)
{
    (void)state;
    struct dfx d;
    dfx_start(&d, NULL);
    const char *in = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                     "GET /api/v1/flows/a%20b/runs/1?x=y HTTP/1.1\r\nCookie: a=b\r\n\r\n"
                     "HEAD /hello HTTP/1.1\r\n\r\n"
                     "GET /stream HTTP/1.1\r\n\r\n"
                     "GET /missing HTTP/1.1\r\nConnection: close\r\n\r\n"
                     "GET /hello HTTP/1.1\r\n\r\n";       /* after close: ignored */
    http_conn_t *c = http_conn_new_detached(d.srv);
    http_conn_feed(c, in, strlen(in));
    char *whole = strip_date(http_conn_output(c));
    http_conn_free_detached(c);
    c = http_conn_new_detached(d.srv);
    for (size_t i = 0; in[i]; i++) http_conn_feed(c, in + i, 1);
    char *bytewise = strip_date(http_conn_output(c));
    http_conn_free_detached(c);
    assert_string_equal(whole, bytewise);
    int n = 0;
    for (const char *p = whole; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++) n++;
    assert_int_equal(n, 6);
    assert_non_null(strstr(whole, "HTTP/1.1 404 Not Found"));
    free(whole);
    free(bytewise);
    dfx_finish(&d);
}

static void test_detached_limits(void **state)
{
    (void)state;
    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body = 10;
    struct dfx d;
    dfx_start(&d, &lim);
    http_server_t *srv = d.srv;
    /* A chunked body is cut as soon as it passes the limit. */
    http_conn_t *c = http_conn_new_detached(srv);
    const char *in = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n"
                     "5\r\nagain\r\n";
    assert_int_equal(http_conn_feed(c, in, strlen(in)), -ECONNRESET);
    assert_non_null(strstr(http_conn_output(c)->data, "HTTP/1.1 413 "));
    http_conn_free_detached(c);
    /* Exactly at the limit is fine. */
    c = http_conn_new_detached(srv);
    in = "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nhelloworld";
    assert_int_equal(http_conn_feed(c, in, strlen(in)), 0);
    assert_non_null(strstr(http_conn_output(c)->data, "HTTP/1.1 200 "));
    http_conn_free_detached(c);
    dfx_finish(&d);
}

/* A gated server on a detached connection: refusals come before the body,
 * close the connection, and a body let in is parsed from where the head
 * stopped, whole or byte by byte, pipelined or not. */
static void test_detached_gate(void **state)
{
    (void)state;
    struct dfx d;
    dfx_start(&d, NULL);
    http_router_set_before(d.router, before, NULL);
    http_server_set_gate(d.srv, http_router_gate, d.router);
    const char *ok = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                     "POST /secret HTTP/1.1\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n"
                     "GET /hello HTTP/1.1\r\n\r\n"
                     "POST /secret HTTP/1.1\r\nContent-Length: 7\r\n\r\nignored"
                     "GET /hello HTTP/1.1\r\n\r\n";              /* after the refusal: never read */
    char *outs[2];
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        http_conn_t *c = http_conn_new_detached(d.srv);
        if (bytewise)
            for (size_t i = 0; ok[i]; i++) http_conn_feed(c, ok + i, 1);
        else
            http_conn_feed(c, ok, strlen(ok));
        outs[bytewise] = strip_date(http_conn_output(c));
        http_conn_free_detached(c);
    }
    assert_string_equal(outs[0], outs[1]);
    const char *o = outs[0];
    int n = 0;
    for (const char *p = o; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++) n++;
    assert_int_equal(n, 4);
    const char *e1 = strstr(o, "\"body\":\"hello\""), *e2 = strstr(o, "\"body\":\"abc\""),
               *h = strstr(o, "hello\r\n" ), *u = strstr(o, "HTTP/1.1 401 ");
    assert_non_null(e1);
    assert_non_null(e2);
    assert_non_null(u);
    assert_true(e1 < e2 && e2 < u);
    (void)h;
    assert_non_null(strstr(u, "Connection: close"));
    free(outs[0]);
    free(outs[1]);
    /* Over the gate's limit: 413 on the head. */
    http_conn_t *c = http_conn_new_detached(d.srv);
    const char *big = "POST /echo HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n";
    assert_int_equal(http_conn_feed(c, big, strlen(big)), -ECONNRESET);
    assert_non_null(strstr(http_conn_output(c)->data, "HTTP/1.1 413 "));
    http_conn_free_detached(c);
    assert_int_equal(http_server_body_bytes(d.srv), 0);
    dfx_finish(&d);
}

/* A gate like api_gate: requests marked anonymous get 400 bytes. */
static int anon_gate(http_req_t *req, void *router)
{
    if (http_router_gate(req, router)) return 1;
    if (http_header(req, "x-anon")) http_req_set_body_max(req, 400);
    return 0;
}

/* The body budget is shared: a second body that does not fit gets 503 with
 * Retry-After while the first still holds its share; freed shares return. */
static void test_detached_budget(void **state)
{
    (void)state;
    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body = 1000;
    lim.body_budget = 1500;
    struct dfx d;
    dfx_start(&d, &lim);
    http_server_t *srv = d.srv;
    http_router_t *router = d.router;
    http_server_set_gate(srv, http_router_gate, router);
    http_conn_t *a = http_conn_new_detached(srv), *b = http_conn_new_detached(srv);
    const char *h1000 = "POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\npart";
    assert_int_equal(http_conn_feed(a, h1000, strlen(h1000)), 0);
    assert_int_equal(http_server_body_bytes(srv), 1001);
    assert_int_equal(http_conn_feed(b, h1000, strlen(h1000)), -ECONNRESET);
    const char *out = http_conn_output(b)->data;
    assert_non_null(strstr(out, "HTTP/1.1 503 "));
    assert_non_null(strstr(out, "Retry-After: 1\r\n"));
    http_conn_free_detached(b);
    /* Chunked bodies are charged as they grow. */
    b = http_conn_new_detached(srv);
    const char *ch = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    assert_int_equal(http_conn_feed(b, ch, strlen(ch)), 0);
    assert_true(http_server_body_bytes(srv) > 1001);
    http_conn_free_detached(b);
    assert_int_equal(http_server_body_bytes(srv), 1001);
    http_conn_free_detached(a);
    assert_int_equal(http_server_body_bytes(srv), 0);
    /* Anonymous bodies share a quarter of it (375 bytes here): a second
     * 300-byte one does not fit, a vouched-for 1000-byte one still does. */
    http_server_set_gate(srv, anon_gate, router);
    const char *anon = "POST /echo HTTP/1.1\r\nX-Anon: 1\r\nContent-Length: 300\r\n\r\nx";
    http_conn_t *a1 = http_conn_new_detached(srv), *a2 = http_conn_new_detached(srv);
    assert_int_equal(http_conn_feed(a1, anon, strlen(anon)), 0);
    assert_int_equal(http_conn_feed(a2, anon, strlen(anon)), -ECONNRESET);
    assert_non_null(strstr(http_conn_output(a2)->data, "HTTP/1.1 503 "));
    b = http_conn_new_detached(srv);
    assert_int_equal(http_conn_feed(b, h1000, strlen(h1000)), 0);
    assert_int_equal(http_server_body_bytes(srv), 301 + 1001);
    /* Over the gate's 400: 413 unread. */
    http_conn_t *a3 = http_conn_new_detached(srv);
    const char *anon_big = "POST /echo HTTP/1.1\r\nX-Anon: 1\r\nContent-Length: 401\r\n\r\n";
    assert_int_equal(http_conn_feed(a3, anon_big, strlen(anon_big)), -ECONNRESET);
    assert_non_null(strstr(http_conn_output(a3)->data, "HTTP/1.1 413 "));
    http_conn_free_detached(a3);
    http_conn_free_detached(a2);
    http_conn_free_detached(a1);
    http_conn_free_detached(b);
    assert_int_equal(http_server_body_bytes(srv), 0);
    dfx_finish(&d);
}

/* A body that keeps moving, but slower than min_body_rate over a window of
 * body_grace, is answered 408 (the no-progress timeout alone would never
 * end it), even after a fast start; a fast one on the same server is not. */
static void test_min_body_rate(void **state)
{
    (void)state;
    struct http_limits lim;
    test_limits(&lim);
    lim.body_timeout_ms = 5000;
    lim.min_body_rate = 1000;           /* bytes/s */
    lim.body_grace_ms = 300;
    struct fx *f = fx_start(&lim, "127.0.0.1:0", NULL);
    struct cli c = cli_tcp(f->port, 0);
    uint64_t t0 = now_ms();
    cli_puts(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    struct resp r;
    int got = -1;
    for (int i = 0; i < 40 && got < 0; i++) {   /* 10 bytes every 50 ms: 200 B/s */
        usleep(50 * 1000);
        if (send(c.fd, "0123456789", 10, MSG_NOSIGNAL) < 0) got = 0;
    }
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 250 && dt < 1800);
    buf_free(&r.body);
    cli_close(&c);
    /* A fast start buys nothing: each 300 ms window needs its 300 bytes. */
    c = cli_tcp(f->port, 0);
    buf_t fast = BUF_INIT;
    buf_puts(&fast, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    for (int i = 0; i < 5000; i++) buf_puts(&fast, "0123456789");
    t0 = now_ms();
    cli_send(&c, fast.data, fast.len);
    buf_free(&fast);
    for (int i = 0; i < 40; i++) {
        usleep(50 * 1000);
        if (send(c.fd, "0123456789", 10, MSG_NOSIGNAL) < 0) break;
    }
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    dt = now_ms() - t0;
    assert_true(dt >= 500 && dt < 1800);
    buf_free(&r.body);
    cli_close(&c);
    /* 20 kB at once is far above the rate. */
    c = cli_tcp(f->port, 0);
    buf_t req = BUF_INIT;
    buf_puts(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n");
    for (int i = 0; i < 2000; i++) buf_puts(&req, "0123456789");
    cli_send(&c, req.data, req.len);
    assert_int_equal(cli_response(&c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    buf_free(&req);
    cli_close(&c);
    fx_finish(f);
}

static void test_router_compile(void **state)
{
    (void)state;
    const char *bad[] = { "nope", "/a//b", "/a/*rest/b", "/a/:", "/a/:x/:x", "/a/:b-c" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_route rt[1] = { { "GET", bad[i], h_hello, 0 } };
        http_router_t *r = NULL;
        nb_err_t err;
        if (http_router_new(rt, 1, NULL, &r, &err) != -EINVAL) fail_msg("pattern %s accepted", bad[i]);
    }
    struct http_route ok[1] = { { "GET", "/", h_hello, 0 } };
    http_router_t *r;
    nb_err_t err;
    assert_int_equal(http_router_new(ok, 1, NULL, &r, &err), 0);
    http_router_free(r);
}

/* ---- gzip ------------------------------------------------------------- */

static void test_gzip(void **state)
{
    (void)state;
    assert_true(gzip_accepted("gzip"));
    assert_true(gzip_accepted("gzip, deflate, br, zstd"));
    assert_true(gzip_accepted("br;q=1.0, GZIP;q=0.5"));
    assert_true(gzip_accepted("*"));
    assert_false(gzip_accepted(NULL));
    assert_false(gzip_accepted(""));
    assert_false(gzip_accepted("deflate, br"));
    assert_false(gzip_accepted("gzip;q=0"));
    assert_false(gzip_accepted("gzip; q=0.000, deflate"));
    assert_false(gzip_accepted("xgzip, gzipx"));
    assert_true(gzip_type_ok("text/html; charset=utf-8"));
    assert_true(gzip_type_ok("application/json"));
    assert_false(gzip_type_ok("image/png"));
    assert_false(gzip_type_ok(NULL));
    /* round trip through zlib's own decoder */
    char in[8192];
    for (size_t k = 0; k < sizeof in; k++) in[k] = "<tr><td>flow</td></tr>\n"[k % 23];
    char *z;
    size_t zlen;
    assert_int_equal(gzip_encode(in, sizeof in, 9, &z, &zlen), 0);
    assert_true(zlen < sizeof in / 10);
    assert_int_equal((unsigned char)z[0], 0x1f);
    assert_int_equal((unsigned char)z[1], 0x8b);
    char back[sizeof in + 16];
    z_stream d;
    memset(&d, 0, sizeof d);
    assert_int_equal(inflateInit2(&d, 15 + 16), Z_OK);
    d.next_in = (Bytef *)z;
    d.avail_in = (uInt)zlen;
    d.next_out = (Bytef *)back;
    d.avail_out = sizeof back;
    assert_int_equal(inflate(&d, Z_FINISH), Z_STREAM_END);
    assert_int_equal(d.total_out, sizeof in);
    inflateEnd(&d);
    assert_memory_equal(back, in, sizeof in);
    free(z);
    /* incompressible input is left alone */
    unsigned char rnd[256];
    uint32_t x = 2463534242u;
    for (size_t k = 0; k < sizeof rnd; k++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        rnd[k] = (unsigned char)x;
    }
    assert_int_equal(gzip_encode(rnd, sizeof rnd, 1, &z, &zlen), -1);
}

int main(void)
{
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_post_json),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_chunked_upload),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_header_too_large),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_url_too_long),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_slow_head),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_idle_keepalive),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_path_params),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_cookies_headers),
        cmocka_unit_test(test_before_hook),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_sse),
        cmocka_unit_test(test_sse_client_gone),
        cmocka_unit_test(test_sse_slow_client),
        cmocka_unit_test(test_unix_and_ipv6),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_graceful_stop),
    };
    const struct CMUnitTest detached[] = {
        cmocka_unit_test(test_detached_split),
        cmocka_unit_test(test_detached_limits),
        cmocka_unit_test(test_detached_gate),
        cmocka_unit_test(test_detached_budget),
        cmocka_unit_test(test_min_body_rate),
        cmocka_unit_test(test_router_compile),
        cmocka_unit_test(test_gzip),
    };
    int fails = cmocka_run_group_tests_name("http", shared, group_setup, group_teardown);
    fails += cmocka_run_group_tests_name("http_detached", detached, NULL, NULL);
    return fails;
}
