/* Unit tests for http/hclient, over real sockets on 127.0.0.1 only.
 *
 * Each test runs our own HTTP server (http/server.h) on port 0 in the same
 * uv loop as the client: if the client blocked the loop even once, the
 * server could not answer and the test would hang (a watchdog fails it).
 * The server's handler looks at the path: /ok echoes what it saw,
 * /status/N answers N, /slow?ms=N answers after N ms (from a timer), and
 * /redirect answers 302.  Timings are printed, not only asserted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/hclient.h"
#include "http/netguard.h"
#include "http/server.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

/* ---- fixture: a loop, a server, a client ------------------------------ */

struct later;

typedef struct fx {
    uv_loop_t      loop;
    uv_timer_t     watch;       /* bounds each uv_run(ONCE) so run_until can time out */
    http_server_t *srv;
    int            port;
    hclient_t     *hc;
    /* what the server saw */
    int            hits, active, max_active, aborted;
    char          *method, *path, *body, *ctype, *agent, *xtest, *xempty, *expect;
    struct later  *laters;      /* answers not yet sent */
    int            stopped;
} fx_t;

struct later {
    uv_timer_t    t;
    fx_t         *f;
    http_req_t   *req;
    struct later *next;
};

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_answer(struct later *l)
{
    fx_t *f = l->f;
    for (struct later **p = &f->laters; *p; p = &(*p)->next)
        if (*p == l) { *p = l->next; break; }
    f->active--;
    http_respond(l->req, 200, "text/plain", "slow", 4);
    uv_timer_stop(&l->t);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void later_fire(uv_timer_t *t) { later_answer(t->data); }

static void on_req_abort(http_req_t *req, void *ud)
{
    (void)req;
    ((fx_t *)ud)->aborted++;
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void handler(http_req_t *req, void *ud)
{
    fx_t *f = ud;
    const char *path = http_req_path(req);
    f->hits++;
    f->active++;
    if (f->active > f->max_active) f->max_active = f->active;
    if (strcmp(path, "/ok") == 0) {
        free(f->method); free(f->path); free(f->body); free(f->ctype);
        free(f->agent); free(f->xtest); free(f->xempty); free(f->expect);
        f->method = xstrdup(http_req_method(req));
        f->path = xstrdup(http_req_target(req));
        f->body = xstrdup(http_req_body(req, NULL));
        f->ctype = dup_or_null(http_header(req, "content-type"));
        f->agent = dup_or_null(http_header(req, "user-agent"));
        f->xtest = dup_or_null(http_header(req, "x-test"));
        f->xempty = dup_or_null(http_header(req, "x-empty"));
        f->expect = dup_or_null(http_header(req, "expect"));
        f->active--;
        http_respond(req, 200, "text/plain", "ok body", 7);
    } else if (strncmp(path, "/status/", 8) == 0) {
        f->active--;
        http_respond(req, atoi(path + 8), "text/plain", "status body", 11);
    } else if (strcmp(path, "/big") == 0) {
        f->active--;
        char *big = xmalloc(100000);
        memset(big, 'b', 100000);
        http_set_header(req, "X-Big", " yes ");
        http_respond(req, 200, "text/html", big, 100000);
        free(big);
    } else if (strcmp(path, "/redirect") == 0) {
        f->active--;
        http_set_header(req, "Location", "/ok");
        http_respond(req, 302, "text/plain", "", 0);
    } else if (strcmp(path, "/slow") == 0) {
        const char *ms = http_query(req, "ms");
        struct later *l = xcalloc(1, sizeof *l);
        l->f = f;
        l->req = req;
        l->next = f->laters;
        f->laters = l;
        http_req_on_abort(req, on_req_abort, f);
        uv_timer_init(&f->loop, &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_fire, ms ? (uint64_t)atoi(ms) : 1000, 0);
    } else {
        f->active--;
        http_respond(req, 404, "text/plain", "no", 2);
    }
}

static void watch_tick(uv_timer_t *t) { (void)t; }

/* Run the loop until *counter reaches target, at most max_ms.  1 if it did. */
static int run_until_n(fx_t *f, const int *counter, int target, uint64_t max_ms)
{
    uint64_t end = time_mono_ms() + max_ms;
    uv_timer_start(&f->watch, watch_tick, 10, 10);
    while (*counter < target && time_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->watch);
    return *counter >= target;
}

/* Run the loop until *flag becomes non-zero, at most max_ms. */
static int run_until(fx_t *f, const int *flag, uint64_t max_ms)
{
    return run_until_n(f, flag, 1, max_ms);
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    if (uv_loop_init(&f->loop) != 0) return -1;
    uv_timer_init(&f->loop, &f->watch);
    struct http_limits lim;
    http_limits_default(&lim);
    lim.stop_timeout_ms = 500;
    f->srv = http_server_new(&f->loop, &lim, handler, f);
    nb_err_t err;
    if (http_server_listen(f->srv, "127.0.0.1:0", &err) != 0) {
        fprintf(stderr, "listen: %s\n", err.msg);
        return -1;
    }
    f->port = http_server_port(f->srv);
    f->hc = hclient_new(&f->loop);
    *state = f;
    return 0;
}

static void set_flag(void *ud) { *(int *)ud = 1; }

static void srv_stopped(http_server_t *srv, void *ud)
{
    http_server_free(srv);
    ((fx_t *)ud)->stopped = 1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int hc_done = 0;
    if (f->hc) hclient_close(f->hc, set_flag, &hc_done);
    else hc_done = 1;
    while (f->laters) later_answer(f->laters);
    http_server_stop(f->srv, srv_stopped, f);
    assert_true(run_until(f, &hc_done, 5000));
    assert_true(run_until(f, &f->stopped, 5000));
    uv_close((uv_handle_t *)&f->watch, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle the client and server opened is closed: nothing leaked
     * into the loop. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->method); free(f->path); free(f->body); free(f->ctype);
    free(f->agent); free(f->xtest); free(f->xempty); free(f->expect);
    free(f);
    return 0;
}

/* ---- what the client saw ---------------------------------------------- */

typedef struct result {
    int      done;       /* callbacks run (must end at 1) */
    int      code, status;
    char    *error;
    char    *body;
    size_t   body_len;
    uint64_t elapsed_ms;
    char    *location, *xbig, *ctype;   /* hclient_get: response headers */
    int     *counter;    /* if set, incremented by each callback */
    hclient_t *post_again;   /* if set, try to post from the callback */
    int      post_again_rc;
} result_t;

static void on_done(const hclient_resp_t *r, void *ud)
{
    result_t *res = ud;
    res->done++;
    if (res->counter) (*res->counter)++;
    res->code = r->code;
    res->status = r->status;
    free(res->error);
    free(res->body);
    res->error = dup_or_null(r->error);
    assert_non_null(r->body);
    assert_int_equal(strlen(r->body), r->body_len);
    res->body = xstrdup(r->body);
    res->body_len = r->body_len;
    res->elapsed_ms = r->elapsed_ms;
    assert_non_null(r->headers);
    free(res->location); free(res->xbig); free(res->ctype);
    res->location = hclient_resp_header(r, "location");
    res->xbig = hclient_resp_header(r, "X-BIG");
    res->ctype = hclient_resp_header(r, "Content-Type");
    if (res->post_again)
        res->post_again_rc = hclient_post(res->post_again, "http://127.0.0.1:1/", NULL, "", 0,
                                          100, on_done, ud);
}

static void result_free(result_t *r)
{
    free(r->error);
    free(r->body);
    free(r->location);
    free(r->xbig);
    free(r->ctype);
}

static char *url(const fx_t *f, const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", f->port, path);
}

/* ---- tests ------------------------------------------------------------- */

static void test_post_200(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/ok?x=1");
    const char *hdrs[] = { "Content-Type: application/json", "X-Test:  spaced value",
                           "X-Empty:", NULL };
    /* Larger than curl's 1 KiB "Expect: 100-continue" threshold of old. */
    char body[2048];
    memset(body, 'a', sizeof body - 1);
    body[0] = '{';
    body[sizeof body - 1] = '\0';
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, hdrs, body, strlen(body), 2000, on_done, &r), 0);
    assert_int_equal(r.done, 0);                  /* never from inside hclient_post */
    assert_int_equal(hclient_pending(f->hc), 1);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.done, 1);
    assert_int_equal(r.code, 0);
    assert_null(r.error);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok body");
    assert_string_equal(f->method, "POST");
    assert_string_equal(f->path, "/ok?x=1");
    assert_string_equal(f->body, body);
    assert_string_equal(f->ctype, "application/json");
    assert_string_equal(f->agent, "nbhub");
    assert_string_equal(f->xtest, "spaced value");
    assert_non_null(f->xempty);
    assert_string_equal(f->xempty, "");
    assert_null(f->expect);
    assert_int_equal(hclient_pending(f->hc), 0);
    printf("hclient: 200 POST of %zu bytes in %llu ms\n", strlen(body),
           (unsigned long long)r.elapsed_ms);
    result_free(&r);
    free(u);
}

static void test_status_and_redirect(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/status/500");
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 2000, on_done, &r), 0);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.code, 0);           /* a response is not a transport error */
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "status body");
    result_free(&r);
    free(u);

    /* A 302 is an answer: not followed (the server sees one request). */
    u = url(f, "/redirect");
    result_t r2 = { 0 };
    int hits = f->hits;
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 2000, on_done, &r2), 0);
    assert_true(run_until(f, &r2.done, 5000));
    assert_int_equal(r2.status, 302);
    assert_int_equal(f->hits, hits + 1);
    assert_null(f->method);                /* /ok never reached */
    result_free(&r2);
    free(u);
}

/* GET: the whole body and the headers (the proxy's needs), up to a bound. */
static void test_get(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/big");
    result_t r = { 0 };
    assert_int_equal(hclient_get(f->hc, u, NULL, 1 << 20, 2000, on_done, &r), 0);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100000);
    assert_string_equal(r.xbig, "yes");
    assert_string_equal(r.ctype, "text/html");
    assert_null(r.location);
    assert_string_equal(f->method ? f->method : "GET", "GET");
    result_free(&r);

    /* Larger than allowed: the transfer stops, -EFBIG. */
    result_t r2 = { 0 };
    assert_int_equal(hclient_get(f->hc, u, NULL, 1000, 2000, on_done, &r2), 0);
    assert_true(run_until(f, &r2.done, 5000));
    assert_int_equal(r2.code, -EFBIG);
    assert_non_null(r2.error);
    result_free(&r2);
    free(u);

    /* A redirect comes back as it is, Location and all. */
    u = url(f, "/redirect");
    result_t r3 = { 0 };
    assert_int_equal(hclient_get(f->hc, u, NULL, 1000, 2000, on_done, &r3), 0);
    assert_true(run_until(f, &r3.done, 5000));
    assert_int_equal(r3.status, 302);
    assert_string_equal(r3.location, "/ok");
    result_free(&r3);
    free(u);
    assert_int_equal(hclient_get(f->hc, "file:///etc/passwd", NULL, 1000, 2000, on_done, &r3), -EINVAL);
    assert_int_equal(hclient_get(f->hc, "http://127.0.0.1:1/", NULL, 0, 2000, on_done, &r3), -EINVAL);
}

/* A port nothing listens on: bind one, note it, close it. */
static int dead_port(uv_loop_t *loop)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &t);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

static void test_refused(void **state)
{
    fx_t *f = *state;
    char *u = xasprintf("http://127.0.0.1:%d/hook", dead_port(&f->loop));
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 2000, on_done, &r), 0);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.code, -ECONNREFUSED);
    assert_int_equal(r.status, 0);
    assert_non_null(r.error);
    assert_int_equal(r.body_len, 0);
    printf("hclient: refused in %llu ms: %s\n", (unsigned long long)r.elapsed_ms, r.error);
    result_free(&r);
    free(u);
}

/* The server takes 1 s; a 20 ms timer in the same loop must keep ticking
 * the whole time (the client never blocks the loop). */
struct ticker {
    uv_timer_t t;
    uint64_t   last, max_gap;
    int        ticks;
};

static void tick(uv_timer_t *t)
{
    struct ticker *k = t->data;
    uint64_t now = time_mono_ms();
    if (k->last && now - k->last > k->max_gap) k->max_gap = now - k->last;
    k->last = now;
    k->ticks++;
}

static void test_slow_server_loop_free(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/slow?ms=1000");
    struct ticker k = { .last = 0 };
    uv_timer_init(&f->loop, &k.t);
    k.t.data = &k;
    uv_timer_start(&k.t, tick, 20, 20);
    k.last = time_mono_ms();
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 5000, on_done, &r), 0);
    assert_true(run_until(f, &r.done, 5000));
    uv_timer_stop(&k.t);
    uv_close((uv_handle_t *)&k.t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);       /* k lives on this stack: finish its close */
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow");
    assert_true(r.elapsed_ms >= 1000);
    assert_true(k.ticks >= 30);            /* ~50 expected at 20 ms */
    assert_true(k.max_gap < 250);
    printf("hclient: slow server answered in %llu ms; loop ticked %d times, max gap %llu ms\n",
           (unsigned long long)r.elapsed_ms, k.ticks, (unsigned long long)k.max_gap);
    result_free(&r);
    free(u);
}

static void test_timeout(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/slow?ms=3000");
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 300, on_done, &r), 0);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.code, -ETIMEDOUT);
    assert_non_null(r.error);
    assert_true(r.elapsed_ms >= 290 && r.elapsed_ms < 2000);
    printf("hclient: timeout (300 ms) reported after %llu ms: %s\n",
           (unsigned long long)r.elapsed_ms, r.error);
    /* The server sees the client go away. */
    assert_true(run_until(f, &f->aborted, 2000));
    result_free(&r);
    free(u);
}

static void test_concurrent(void **state)
{
    fx_t *f = *state;
    enum { N = 20 };
    result_t r[N];
    memset(r, 0, sizeof r);
    char *u = url(f, "/slow?ms=200");
    int ndone = 0;
    uint64_t t0 = time_mono_ms();
    for (int i = 0; i < N; i++) {
        r[i].counter = &ndone;
        assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 5000, on_done, &r[i]), 0);
    }
    assert_true(run_until_n(f, &ndone, N, 5000));
    uint64_t ms = time_mono_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].status, 200);
        result_free(&r[i]);
    }
    assert_int_equal(f->max_active, N);   /* all at once, not one after the other */
    assert_true(ms < 1500);
    printf("hclient: %d concurrent 200 ms requests took %llu ms\n", N, (unsigned long long)ms);
    free(u);
}

static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    enum { N = 3 };
    result_t r[N];
    memset(r, 0, sizeof r);
    char *u = url(f, "/slow?ms=5000");
    for (int i = 0; i < N; i++) {
        r[i].post_again = f->hc;
        assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 10000, on_done, &r[i]), 0);
    }
    /* Let the requests reach the server. */
    assert_true(run_until_n(f, &f->hits, N, 3000));
    int closed = 0;
    hclient_close(f->hc, set_flag, &closed);
    f->hc = NULL;
    for (int i = 0; i < N; i++) {   /* answered from inside hclient_close */
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].code, -ECANCELED);
        assert_non_null(r[i].error);
        assert_int_equal(r[i].post_again_rc, -ESHUTDOWN);
        result_free(&r[i]);
    }
    assert_int_equal(closed, 0);    /* done comes from a close callback */
    assert_true(run_until(f, &closed, 2000));
    /* The server sees every client connection go away. */
    assert_true(run_until_n(f, &f->aborted, N, 2000));
    free(u);
}

/* A host name goes through our own lookup (uv_getaddrinfo) before curl;
 * "localhost" comes from /etc/hosts, so no DNS traffic leaves the machine.
 * It may give ::1 first, where nothing listens: curl then tries 127.0.0.1. */
static void test_host_name(void **state)
{
    fx_t *f = *state;
    char *u = xasprintf("http://localhost:%d/ok", f->port);
    result_t r = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{\"a\":1}", 7, 3000, on_done, &r), 0);
    assert_int_equal(r.done, 0);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.code, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(f->body, "{\"a\":1}");
    printf("hclient: via name lookup (localhost) in %llu ms\n", (unsigned long long)r.elapsed_ms);
    result_free(&r);

    /* Closing while a lookup may still run: answered at once, freed later. */
    result_t r2 = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 3000, on_done, &r2), 0);
    int closed = 0;
    hclient_close(f->hc, set_flag, &closed);
    f->hc = NULL;
    assert_int_equal(r2.done, 1);
    assert_int_equal(r2.code, -ECANCELED);
    assert_true(run_until(f, &closed, 2000));
    result_free(&r2);
    free(u);
}

static void test_refuses(void **state)
{
    fx_t *f = *state;
    result_t r = { 0 };
    const char *bad_urls[] = { "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
                               "http://", "/relative", "not a url", "http://127.0.0.1/a b",
                               "http://127.0.0.1/\r\nX: y", "" };
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++)
        assert_int_equal(hclient_post(f->hc, bad_urls[i], NULL, "", 0, 100, on_done, &r), -EINVAL);
    char *u = url(f, "/ok");
    const char *bad_hdrs[][2] = {
        { "X-A: b\r\nInjected: 1", NULL }, { "X-A: b\nc", NULL }, { "X A: b", NULL },
        { ": b", NULL }, { "NoColon", NULL }, { "Host: evil", NULL },
        { "content-length: 5", NULL }, { "Transfer-Encoding: chunked", NULL },
        { "X-A: \x01", NULL },
    };
    for (size_t i = 0; i < sizeof bad_hdrs / sizeof bad_hdrs[0]; i++)
        assert_int_equal(hclient_post(f->hc, u, bad_hdrs[i], "", 0, 100, on_done, &r), -EINVAL);
    assert_true(hclient_header_ok("X-Ok: caf\xc3\xa9 \t tab"));
    assert_int_equal(r.done, 0);
    assert_int_equal(hclient_pending(f->hc), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
    assert_int_equal(f->hits, 0);
    free(u);
}

/* hclient_post_guarded: the loopback receiver is refused before any byte is
 * sent, also right after an unguarded request left a kept-alive connection
 * to it in curl's cache (the Spark UI proxy's kind of request); listed, it
 * is reached, directly even when the environment names a proxy. */
static void test_guarded(void **state)
{
    fx_t *f = *state;
    char *u = url(f, "/ok");
    netguard_t *none = netguard_new();
    result_t r0 = { 0 }, r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
    assert_int_equal(hclient_post(f->hc, u, NULL, "{}", 2, 2000, on_done, &r0), 0);
    assert_true(run_until(f, &r0.done, 5000));
    assert_int_equal(r0.status, 200);
    int hits = f->hits;
    assert_int_equal(hclient_post_guarded(f->hc, u, NULL, "{}", 2, 2000, none, on_done, &r1), 0);
    assert_true(run_until(f, &r1.done, 5000));
    assert_int_equal(r1.code, -EACCES);
    assert_int_equal(r1.status, 0);
    assert_non_null(strstr(r1.error, "127.0.0.1 is a loopback address"));
    assert_int_equal(f->hits, hits);

    netguard_t *g = netguard_new();
    char entry[32];
    snprintf(entry, sizeof entry, "127.0.0.1:%d", f->port);
    assert_int_equal(netguard_allow(g, entry, NULL), 0);
    setenv("http_proxy", "http://127.0.0.1:1", 1);        /* would refuse the connection */
    assert_int_equal(hclient_post_guarded(f->hc, u, NULL, "{}", 2, 2000, g, on_done, &r2), 0);
    assert_true(run_until(f, &r2.done, 5000));
    unsetenv("http_proxy");
    assert_int_equal(r2.code, 0);
    assert_int_equal(r2.status, 200);
    assert_int_equal(f->hits, hits + 1);

    /* "localhost" is looked up on the pool, then refused by its address. */
    char *lu = xasprintf("http://localhost:%d/ok", f->port);
    assert_int_equal(hclient_post_guarded(f->hc, lu, NULL, "{}", 2, 2000, none, on_done, &r3), 0);
    assert_true(run_until(f, &r3.done, 5000));
    assert_int_equal(r3.code, -EACCES);
    assert_int_equal(f->hits, hits + 1);
    result_free(&r0);
    result_free(&r1);
    result_free(&r2);
    result_free(&r3);
    netguard_free(none);
    netguard_free(g);
    free(lu);
    free(u);
}

static void test_url_host(void **state)
{
    (void)state;
    char h[64];
    hclient_url_host("https://user:s3cret@hooks.example.com:8443/p/TOKEN?key=x#f", h, sizeof h);
    assert_string_equal(h, "hooks.example.com");
    hclient_url_host("http://[::1]:80/x", h, sizeof h);
    assert_string_equal(h, "[::1]");
    hclient_url_host("not a url", h, sizeof h);
    assert_string_equal(h, "?");
    hclient_url_host(NULL, h, sizeof h);
    assert_string_equal(h, "?");
    hclient_url_host("http://averyveryverylonghostname.example/", h, 8);
    assert_string_equal(h, "averyve");
}

int main(void)
{
    /* Hermetic: a proxy from the environment would take our 127.0.0.1 traffic. */
    static const char *const proxies[] = { "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                           "all_proxy", "ALL_PROXY" };
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_server_loop_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses, setup, teardown),
        cmocka_unit_test(test_url_host),
        cmocka_unit_test_setup_teardown(test_guarded, setup, teardown),
    };
    return cmocka_run_group_tests_name("hclient", tests, NULL, NULL);
}
