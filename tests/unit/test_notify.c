/* Unit tests for http/notify: the webhook outbox delivered over real HTTP
 * on 127.0.0.1.
 *
 * Each test has a real SQLite store in a mkdtemp directory (a user, a flow,
 * and one finished run per batch of hooks, made with the store's own
 * transitions so the outbox rows are exactly what the scheduler writes),
 * our own HTTP server on port 0 as the receiver, and the notifier and its
 * HTTP client, all on one uv loop.  Backoff values are shrunk through
 * notify_opts_t so retries take milliseconds; the printed timings show it.
 * A delivery's final state is read straight from the database file with a
 * second SQLite connection (the store has no getter for one row). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/hclient.h"
#include "http/server.h"
#include "http/notify.h"
#include "http/netguard.h"
#include "store/store.h"
#include "store/store_auth.h"
#include "store/store_flows.h"
#include "store/store_runs.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#define T0 1795323600000000LL /* 2026-11-22T05:00:00Z: logical times of the runs */
#define MAX_HITS 32

/* ---- fixture ------------------------------------------------------------ */

struct later;

typedef struct hit {
    char    *path, *body, *auth, *custom, *ctype, *agent, *event, *delivery;
    uint64_t at;          /* monotonic ms */
} hit_t;

typedef struct fx {
    char           dir[64], path[128];
    store_t       *st;
    int64_t        user;
    int            nruns;
    uv_loop_t      loop;
    uv_timer_t     watch;
    http_server_t *srv;
    int            port, stopped;
    hclient_t     *hc;
    notify_t      *n;
    netguard_t    *guard;         /* allows 127.0.0.1: the receiver is on the loopback */
    /* receiver behaviour */
    int            fail_first;    /* answer 500 to this many requests first */
    uint64_t       delay_ms;      /* answer after this long */
    /* what the receiver saw */
    hit_t          hits[MAX_HITS];
    int            nhits, active, max_active, aborted;
    int64_t        seen_attempts; /* outbox row at the 2nd hit (retry test) */
    char          *seen_error;
    struct later  *laters;
} fx_t;

struct later {
    uv_timer_t    t;
    fx_t         *f;
    http_req_t   *req;
    int           status;
    struct later *next;
};

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void answer(fx_t *f, http_req_t *req, int status)
{
    f->active--;
    if (status == 200) http_respond(req, 200, "text/plain", "thanks", 6);
    else http_respond(req, status, "text/plain", "boom\n\"x\"\x01", 9);
}

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_answer(struct later *l)
{
    fx_t *f = l->f;
    for (struct later **p = &f->laters; *p; p = &(*p)->next)
        if (*p == l) { *p = l->next; break; }
    answer(f, l->req, l->status);
    uv_timer_stop(&l->t);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void later_fire(uv_timer_t *t) { later_answer(t->data); }

static void on_req_abort(http_req_t *req, void *ud)
{
    (void)req;
    ((fx_t *)ud)->aborted++;
}

static void handler(http_req_t *req, void *ud)
{
    fx_t *f = ud;
    assert_true(f->nhits < MAX_HITS);
    hit_t *h = &f->hits[f->nhits++];
    h->path = xstrdup(http_req_target(req));
    h->body = xstrdup(http_req_body(req, NULL));
    h->auth = dup_or_null(http_header(req, "authorization"));
    h->custom = dup_or_null(http_header(req, "x-custom"));
    h->ctype = dup_or_null(http_header(req, "content-type"));
    h->agent = dup_or_null(http_header(req, "user-agent"));
    h->event = dup_or_null(http_header(req, "x-nbhub-event"));
    h->delivery = dup_or_null(http_header(req, "x-nbhub-delivery"));
    h->at = time_mono_ms();
    f->active++;
    if (f->active > f->max_active) f->max_active = f->active;
    if (f->nhits == 2) {
        /* The retry test looks at the row between the two attempts. */
        store_webhooks_t due;
        if (store_webhooks_due(f->st, INT64_MAX, 10, &due, NULL) == 0 && due.n == 1) {
            f->seen_attempts = due.v[0].attempts;
            f->seen_error = dup_or_null(due.v[0].last_error);
        }
        if (due.n) store_webhooks_free(&due);
    }
    int status = f->nhits <= f->fail_first ? 500 : 200;
    if (f->delay_ms == 0) {
        answer(f, req, status);
        return;
    }
    struct later *l = xcalloc(1, sizeof *l);
    l->f = f;
    l->req = req;
    l->status = status;
    l->next = f->laters;
    f->laters = l;
    http_req_on_abort(req, on_req_abort, f);
    uv_timer_init(&f->loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, f->delay_ms, 0);
}

static void watch_tick(uv_timer_t *t) { (void)t; }

/* Run the loop until pred(f) holds, at most max_ms.  1 if it did. */
static int run_until(fx_t *f, int (*pred)(fx_t *), uint64_t max_ms)
{
    uint64_t end = time_mono_ms() + max_ms;
    uv_timer_start(&f->watch, watch_tick, 10, 10);
    int ok;
    while (!(ok = pred(f)) && time_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->watch);
    return ok;
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nbhub-notify-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/nbhub.db", f->dir);
    nb_err_t err;
    if (store_open(f->path, &f->st, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    int64_t now = time_now_us();
    if (store_user_add(f->st, "alice", NULL, 0, now, &f->user, &err) != 0) return -1;
    store_flow_in_t in = { "daily", f->user, "{\"tasks\":[\"t\"]}", "/flows/daily.yaml", "h" };
    if (store_flow_upsert(f->st, &in, now, NULL, NULL, &err) != 0) {
        fprintf(stderr, "upsert: %s\n", err.msg);
        return -1;
    }
    if (uv_loop_init(&f->loop) != 0) return -1;
    uv_timer_init(&f->loop, &f->watch);
    struct http_limits lim;
    http_limits_default(&lim);
    lim.stop_timeout_ms = 500;
    f->srv = http_server_new(&f->loop, &lim, handler, f);
    if (http_server_listen(f->srv, "127.0.0.1:0", &err) != 0) {
        fprintf(stderr, "listen: %s\n", err.msg);
        return -1;
    }
    f->port = http_server_port(f->srv);
    f->hc = hclient_new(&f->loop);
    f->guard = netguard_new();
    assert_int_equal(netguard_allow(f->guard, "127.0.0.1", NULL), 0);
    *state = f;
    return 0;
}

static void set_flag(void *ud) { *(int *)ud = 1; }

static void srv_stopped(http_server_t *srv, void *ud)
{
    http_server_free(srv);
    ((fx_t *)ud)->stopped = 1;
}

static int notify_done, hc_done;
static int both_closed(fx_t *f) { (void)f; return notify_done && hc_done; }
static int srv_is_stopped(fx_t *f) { return f->stopped; }

static int teardown(void **state)
{
    fx_t *f = *state;
    /* The documented shutdown order: notifier first, then its client. */
    notify_done = hc_done = 0;
    if (f->n) notify_close(f->n, set_flag, &notify_done);
    else notify_done = 1;
    if (f->hc) hclient_close(f->hc, set_flag, &hc_done);
    else hc_done = 1;
    while (f->laters) later_answer(f->laters);
    http_server_stop(f->srv, srv_stopped, f);
    assert_true(run_until(f, both_closed, 5000));
    assert_true(run_until(f, srv_is_stopped, 5000));
    uv_close((uv_handle_t *)&f->watch, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    store_close(f->st);
    static const char *const files[] = { "nbhub.db", "nbhub.db-wal", "nbhub.db-shm" };
    char p[160];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    for (int i = 0; i < f->nhits; i++) {
        hit_t *h = &f->hits[i];
        free(h->path); free(h->body); free(h->auth); free(h->custom);
        free(h->ctype); free(h->agent); free(h->event); free(h->delivery);
    }
    free(f->seen_error);
    netguard_free(f->guard);
    free(f);
    return 0;
}

/* The receiver is on 127.0.0.1, which webhooks may only reach when it is
 * on the allow-list: o without a guard gets the fixture's. */
static void start_notify(fx_t *f, const notify_opts_t *o)
{
    notify_opts_t g;
    if (o) g = *o;
    else notify_opts_default(&g);
    if (!g.guard) g.guard = f->guard;
    f->n = notify_new_opts(&f->loop, f->st, f->hc, &g);
}

/* Options that make a test fast: short backoff, short poll. */
static notify_opts_t fast_opts(void)
{
    notify_opts_t o;
    notify_opts_default(&o);
    o.backoff_base_ms = 100;
    o.backoff_max_ms = 1000;
    o.max_attempts = 3;
    o.timeout_ms = 2000;
    o.poll_ms = 500;
    return o;
}

/* ---- outbox rows, the way the scheduler makes them ---------------------- */

/* One manual run of "daily" with one task, run to success, finished with
 * these hooks: store_run_finish enqueues them in its transaction. */
static void finish_run_with_hooks(fx_t *f, const store_hook_t *hooks, size_t nhooks)
{
    nb_err_t err;
    int64_t run, now = time_now_us();
    store_task_spec_t one = { "t", 1 };
    store_fire_t fi = { .flow = "daily", .kind = STORE_RUN_MANUAL,
                        .logical_us = T0 + f->nruns++ * 1000000LL, .triggered_by = f->user,
                        .tasks = &one, .ntasks = 1 };
    assert_int_equal(store_tick_fire(f->st, &fi, now, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, now, &err), 0);
    store_run_t r;
    store_task_runs_t ts;
    assert_int_equal(store_run_get(f->st, run, &r, &ts, &err), 0);
    int64_t t = ts.v[0].id;
    store_run_clear(&r);
    store_task_runs_free(&ts);
    assert_int_equal(store_task_queue(f->st, t, now, &err), 0);
    assert_int_equal(store_task_start(f->st, t, 0, 0, NULL, NULL, now, &err), 0);
    assert_int_equal(store_task_finish(f->st, t, STORE_TASK_SUCCESS, 0, NULL, 0, now, NULL, &err),
                     0);
    int rc = store_run_finish(f->st, run, STORE_RUN_SUCCESS, now, hooks, nhooks, &err);
    if (rc) fprintf(stderr, "finish: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static char *hook_url(const fx_t *f, const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", f->port, path);
}

/* The body the scheduler would send, as compact JSON. */
static json_t *sample_body(void)
{
    return json_pack("{ss ss ss ss s{ss}}", "event", "run.success", "flow", "daily",
                     "run_id", "manual__2026-11-22T05:00:00+00:00", "state", "success",
                     "links", "run", "http://127.0.0.1:8765/api/v1/runs/1");
}

/* A row as it is in the database: state, attempts, last_error. */
typedef struct row {
    char state[16];
    int  attempts;
    char error[256];
} row_t;

static int row_get(fx_t *f, int64_t id, row_t *out)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT state, attempts, last_error FROM "
                                            "webhook_deliveries WHERE id = ?1", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, id);
    int found = sqlite3_step(s) == SQLITE_ROW;
    if (found) {
        snprintf(out->state, sizeof out->state, "%s", (const char *)sqlite3_column_text(s, 0));
        out->attempts = sqlite3_column_int(s, 1);
        const unsigned char *e = sqlite3_column_text(s, 2);
        snprintf(out->error, sizeof out->error, "%s", e ? (const char *)e : "");
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return found;
}

/* Ids of the pending rows, oldest first. */
static size_t pending_ids(fx_t *f, int64_t *ids, size_t max)
{
    store_webhooks_t due;
    assert_int_equal(store_webhooks_due(f->st, INT64_MAX, (int)max, &due, NULL), 0);
    for (size_t i = 0; i < due.n; i++) ids[i] = due.v[i].id;
    size_t n = due.n;
    store_webhooks_free(&due);
    return n;
}

static int none_pending(fx_t *f)
{
    store_counts_t c;
    assert_int_equal(store_counts(f->st, &c, NULL), 0);
    return c.webhooks_pending == 0 && notify_inflight(f->n) == 0;
}

static int hit_once(fx_t *f) { return f->nhits >= 1; }

/* Capture what the log writes to stderr (fd 2) into a temporary file. */
typedef struct capture {
    int  saved;
    char path[64];
} capture_t;

static void capture_start(capture_t *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/nbhub-notify-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
    log_set_level(LOG_INFO);
}

/* Stop capturing; the captured text (free()). */
static char *capture_end(capture_t *c)
{
    log_set_level(LOG_OFF);
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    char *text = xcalloc(1, 65536);
    size_t n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(c->path);
    return text;
}

/* ---- tests -------------------------------------------------------------- */

static void test_deliver_200(void **state)
{
    fx_t *f = *state;
    json_t *hdrs = json_pack("{ssss}", "Authorization", "Bearer s3cret", "X-Custom", "v1");
    json_t *body = sample_body();
    char *env = notify_envelope(hdrs, body);
    char *want = json_dumps(body, JSON_COMPACT);
    char *u1 = hook_url(f, "/hook?token=abc"), *u2 = hook_url(f, "/plain");
    store_hook_t hooks[] = { { u1, "run.success", env }, { u2, "run.success", NULL } };
    finish_run_with_hooks(f, hooks, 2);
    int64_t ids[4];
    assert_int_equal(pending_ids(f, ids, 4), 2);

    notify_opts_t o = fast_opts();
    start_notify(f, &o);
    capture_t cap;
    capture_start(&cap);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    int ok = run_until(f, none_pending, 5000);
    uint64_t ms = time_mono_ms() - t0;
    char *log = capture_end(&cap);
    assert_true(ok);
    assert_int_equal(f->nhits, 2);
    /* Our lines name the host, never the URL's path or query, nor headers.
     * (The receiver's own access log, in the same process, shows paths.) */
    int lines = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "msg=\"webhook")) continue;
        lines++;
        assert_non_null(strstr(line, "msg=\"webhook delivered\""));
        assert_non_null(strstr(line, " host=127.0.0.1 "));
        assert_null(strstr(line, "token"));
        assert_null(strstr(line, "/hook"));
        assert_null(strstr(line, "s3cret"));
    }
    assert_int_equal(lines, 2);
    free(log);
    const hit_t *h = strcmp(f->hits[0].path, "/plain") == 0 ? &f->hits[1] : &f->hits[0];
    const hit_t *p = h == &f->hits[0] ? &f->hits[1] : &f->hits[0];
    assert_string_equal(h->path, "/hook?token=abc");
    assert_string_equal(h->body, want);                    /* the body, not the envelope */
    assert_string_equal(h->auth, "Bearer s3cret");
    assert_string_equal(h->custom, "v1");
    assert_string_equal(h->ctype, "application/json");
    assert_string_equal(h->agent, "nbhub");
    assert_string_equal(h->event, "run.success");
    char idtxt[32];
    snprintf(idtxt, sizeof idtxt, "%lld", (long long)ids[0]);
    assert_string_equal(h->delivery, idtxt);
    /* A payload that is not an envelope (the store's "{}") is posted whole. */
    assert_string_equal(p->path, "/plain");
    assert_string_equal(p->body, "{}");
    assert_null(p->auth);
    for (int i = 0; i < 2; i++) {
        row_t r;
        assert_true(row_get(f, ids[i], &r));
        assert_string_equal(r.state, "delivered");
        assert_int_equal(r.attempts, 1);
    }
    printf("notify: kick -> 2 deliveries recorded in %llu ms\n", (unsigned long long)ms);
    json_decref(hdrs);
    json_decref(body);
    free(env);
    free(want);
    free(u1);
    free(u2);
}

static void test_retry_then_success(void **state)
{
    fx_t *f = *state;
    f->fail_first = 1;
    json_t *body = sample_body();
    char *env = notify_envelope(NULL, body);
    char *u = hook_url(f, "/hook");
    store_hook_t hook = { u, "run.success", env };
    finish_run_with_hooks(f, &hook, 1);
    int64_t id;
    assert_int_equal(pending_ids(f, &id, 1), 1);

    notify_opts_t o = fast_opts();
    o.backoff_base_ms = 200;
    start_notify(f, &o);
    notify_kick(f->n);
    assert_true(run_until(f, none_pending, 5000));
    assert_int_equal(f->nhits, 2);
    uint64_t gap = f->hits[1].at - f->hits[0].at;
    assert_true(gap >= 195);          /* the backoff was respected */
    assert_true(gap < 1500);
    /* Between the attempts the row was pending with the first failure. */
    assert_int_equal(f->seen_attempts, 1);
    assert_non_null(f->seen_error);
    /* The status, never the receiver's answer ("boom ..."). */
    assert_string_equal(f->seen_error, "HTTP 500 from the receiver (a 2xx was expected)");
    row_t r;
    assert_true(row_get(f, id, &r));
    assert_string_equal(r.state, "delivered");
    assert_int_equal(r.attempts, 2);
    printf("notify: 500 then 200; retry came %llu ms after the failure (backoff 200 ms)\n",
           (unsigned long long)gap);
    json_decref(body);
    free(env);
    free(u);
}

/* A port nothing listens on. */
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

static int one_failed(fx_t *f)
{
    store_counts_t c;
    assert_int_equal(store_counts(f->st, &c, NULL), 0);
    return c.webhooks_failed == 1 && c.webhooks_pending == 0 && notify_inflight(f->n) == 0;
}

/* The webhook.failed events in the feed, their json concatenated. */
static int failed_events(fx_t *f, char *json, size_t n)
{
    store_events_t ev;
    assert_int_equal(store_events_since(f->st, 0, 10000, &ev, NULL), 0);
    int k = 0;
    size_t used = 0;
    if (n) json[0] = '\0';
    for (size_t i = 0; i < ev.n; i++) {
        if (strcmp(ev.v[i].kind, "webhook.failed") != 0) continue;
        k++;
        assert_string_equal(ev.v[i].flow, "daily");
        if (used < n) used += (size_t)snprintf(json + used, n - used, "%s\n", ev.v[i].json);
    }
    store_events_free(&ev);
    return k;
}

static void test_refused_gives_up(void **state)
{
    fx_t *f = *state;
    char *u = xasprintf("http://127.0.0.1:%d/hook", dead_port(&f->loop));
    json_t *body = sample_body();
    char *env = notify_envelope(NULL, body);
    store_hook_t hook = { u, "run.failed", env };
    finish_run_with_hooks(f, &hook, 1);
    int64_t id;
    assert_int_equal(pending_ids(f, &id, 1), 1);
    assert_int_equal(failed_events(f, NULL, 0), 0);

    notify_opts_t o = fast_opts();    /* 3 attempts, 100 ms then 200 ms apart */
    start_notify(f, &o);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    assert_true(run_until(f, one_failed, 5000));
    uint64_t ms = time_mono_ms() - t0;
    assert_true(ms >= 295);
    row_t r;
    assert_true(row_get(f, id, &r));
    assert_string_equal(r.state, "failed");
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr(r.error, "connect"));
    char json[1024];
    assert_int_equal(failed_events(f, json, sizeof json), 1);
    json_t *ev = json_loads(json, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "attempts")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(ev, "error")), "connect"));
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "run.failed");
    json_decref(ev);
    printf("notify: refused x3 -> failed + webhook.failed in %llu ms (backoff 100, 200 ms): %s\n",
           (unsigned long long)ms, r.error);
    json_decref(body);
    free(env);
    free(u);
}

/* Without the allow-list the same receiver on 127.0.0.1 is never reached,
 * whatever the URL's spelling; the row fails at once, no retries, and the
 * event says why without the address. */
static void test_loopback_refused(void **state)
{
    fx_t *f = *state;
    static const char *const spellings[] = {
        "127.0.0.1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "localhost",
        "localhost.", "[::ffff:127.0.0.1]", "[::1]",
    };
    size_t n = sizeof spellings / sizeof spellings[0];
    char *urls[16];
    store_hook_t hooks[16];
    for (size_t i = 0; i < n; i++) {
        urls[i] = xasprintf("http://%s:%d/hook", spellings[i], f->port);
        hooks[i] = (store_hook_t){ urls[i], "run.failed", NULL };
    }
    finish_run_with_hooks(f, hooks, n);
    notify_opts_t o = fast_opts();
    o.max_inflight = 16;
    netguard_t *none = netguard_new();     /* no allow-list: public addresses only */
    o.guard = none;
    start_notify(f, &o);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    assert_true(run_until(f, none_pending, 5000));
    uint64_t ms = time_mono_ms() - t0;
    assert_int_equal(f->nhits, 0);         /* the receiver saw nothing */
    char json[8192];
    assert_int_equal(failed_events(f, json, sizeof json), (int)n);
    const char *p = json;
    if (getenv("NBHUB_TEST_LOG")) fprintf(stderr, "%s", json);
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_loads(p, JSON_DISABLE_EOF_CHECK, NULL);
        assert_non_null(ev);
        const char *e = json_string_value(json_object_get(ev, "error"));
        /* "localhost." resolves only where the resolver knows it (not from
         * this machine's /etc/hosts): then it is refused like the rest. */
        if (strstr(json_string_value(json_object_get(ev, "url")), "localhost.") &&
            strstr(e, "did not resolve")) {
            json_decref(ev);
            p = strchr(p, '\n') + 1;
            continue;
        }
        assert_int_equal(json_integer_value(json_object_get(ev, "attempts")), 1);
        assert_non_null(strstr(e, "address not allowed"));
        assert_null(strstr(e, "127.0.0.1"));   /* what a name resolved to is not told */
        json_decref(ev);
        p = strchr(p, '\n') + 1;
    }
    printf("notify: %zu spellings of the loopback refused in %llu ms, receiver saw 0 requests\n", n,
           (unsigned long long)ms);
    notify_close(f->n, NULL, NULL);
    f->n = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    netguard_free(none);
    for (size_t i = 0; i < n; i++) free(urls[i]);
}

/* The receiver takes 1 s; a 20 ms timer in the same loop keeps ticking. */
struct ticker {
    uv_timer_t t;
    uint64_t   last, max_gap;
    int        ticks;
};

static void tick(uv_timer_t *t)
{
    struct ticker *k = t->data;
    uint64_t now = time_mono_ms();
    if (now - k->last > k->max_gap) k->max_gap = now - k->last;
    k->last = now;
    k->ticks++;
}

static void test_slow_receiver_loop_free(void **state)
{
    fx_t *f = *state;
    f->delay_ms = 1000;
    char *u = hook_url(f, "/hook");
    store_hook_t hook = { u, "run.success", NULL };
    finish_run_with_hooks(f, &hook, 1);
    notify_opts_t o = fast_opts();
    start_notify(f, &o);
    struct ticker k = { .last = time_mono_ms() };
    uv_timer_init(&f->loop, &k.t);
    k.t.data = &k;
    uv_timer_start(&k.t, tick, 20, 20);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    assert_true(run_until(f, none_pending, 5000));
    uint64_t ms = time_mono_ms() - t0;
    uv_timer_stop(&k.t);
    uv_close((uv_handle_t *)&k.t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);     /* k lives on this stack: finish its close */
    assert_int_equal(f->nhits, 1);
    assert_true(ms >= 1000);
    assert_true(k.ticks >= 30);          /* ~50 expected */
    assert_true(k.max_gap < 250);
    printf("notify: 1 s receiver delivered in %llu ms; loop ticked %d times, max gap %llu ms\n",
           (unsigned long long)ms, k.ticks, (unsigned long long)k.max_gap);
    free(u);
}

static void test_timeout(void **state)
{
    fx_t *f = *state;
    f->delay_ms = 3000;
    char *u = hook_url(f, "/hook");
    store_hook_t hook = { u, "run.success", NULL };
    finish_run_with_hooks(f, &hook, 1);
    int64_t id;
    assert_int_equal(pending_ids(f, &id, 1), 1);
    notify_opts_t o = fast_opts();
    o.timeout_ms = 300;
    o.max_attempts = 2;
    start_notify(f, &o);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    assert_true(run_until(f, one_failed, 5000));
    uint64_t ms = time_mono_ms() - t0;
    assert_int_equal(f->nhits, 2);
    assert_true(ms >= 690 && ms < 2500);   /* 300 + 100 backoff + 300 */
    row_t r;
    assert_true(row_get(f, id, &r));
    assert_string_equal(r.state, "failed");
    assert_int_equal(r.attempts, 2);
    assert_non_null(strstr(r.error, "timed out"));
    printf("notify: 2 timeouts of 300 ms -> failed in %llu ms: %s\n", (unsigned long long)ms,
           r.error);
    free(u);
}

static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    f->delay_ms = 5000;
    char *u = hook_url(f, "/hook");
    store_hook_t hook = { u, "run.success", NULL };
    finish_run_with_hooks(f, &hook, 1);
    int64_t id;
    assert_int_equal(pending_ids(f, &id, 1), 1);
    notify_opts_t o = fast_opts();
    start_notify(f, &o);
    notify_kick(f->n);
    assert_true(run_until(f, hit_once, 3000));
    assert_int_equal(notify_inflight(f->n), 1);
    notify_done = hc_done = 0;
    uint64_t t0 = time_mono_ms();
    notify_close(f->n, set_flag, &notify_done);
    hclient_close(f->hc, set_flag, &hc_done);
    f->n = NULL;
    f->hc = NULL;
    assert_true(run_until(f, both_closed, 2000));
    uint64_t ms = time_mono_ms() - t0;
    assert_true(ms < 1000);              /* not the receiver's 5 s */
    /* The aborted attempt is not counted: the row waits for the next start. */
    row_t r;
    assert_true(row_get(f, id, &r));
    assert_string_equal(r.state, "pending");
    assert_int_equal(r.attempts, 0);
    printf("notify: close with a delivery in flight took %llu ms\n", (unsigned long long)ms);
    free(u);
}

static int all_failed5(fx_t *f)
{
    store_counts_t c;
    assert_int_equal(store_counts(f->st, &c, NULL), 0);
    return c.webhooks_failed == 5 && c.webhooks_pending == 0;
}

static void test_bad_payloads_fail_at_once(void **state)
{
    fx_t *f = *state;
    char *u = hook_url(f, "/hook");
    json_t *body = sample_body();
    json_t *inj = json_pack("{ss}", "X-Bad", "a\r\nInjected: 1");
    json_t *framing = json_pack("{ss}", "Content-Length", "5");
    char *e_inj = notify_envelope(inj, body), *e_framing = notify_envelope(framing, body);
    store_hook_t hooks[] = {
        { u, "run.success", e_inj },
        { u, "run.success", e_framing },
        { u, "run.success", "not json" },
        { u, "run.success", "{\"headers\": [1], \"body\": {}}" },
        { "ftp://127.0.0.1/x", "run.success", NULL },
    };
    finish_run_with_hooks(f, hooks, 5);
    notify_opts_t o = fast_opts();
    o.max_attempts = 5;
    start_notify(f, &o);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    assert_true(run_until(f, all_failed5, 2000));
    uint64_t ms = time_mono_ms() - t0;
    assert_true(ms < 500);               /* no retries for what can never work */
    assert_int_equal(f->nhits, 0);       /* nothing was sent */
    char json[4096];
    assert_int_equal(failed_events(f, json, sizeof json), 5);
    assert_non_null(strstr(json, "invalid webhook header"));
    assert_non_null(strstr(json, "not a JSON object"));
    assert_non_null(strstr(json, "invalid webhook URL"));
    json_decref(body);
    json_decref(inj);
    json_decref(framing);
    free(e_inj);
    free(e_framing);
    free(u);
}

static void test_max_inflight(void **state)
{
    fx_t *f = *state;
    f->delay_ms = 150;
    char *u = hook_url(f, "/hook");
    store_hook_t hooks[6];
    for (int i = 0; i < 6; i++) hooks[i] = (store_hook_t){ u, "run.success", NULL };
    finish_run_with_hooks(f, hooks, 6);
    notify_opts_t o = fast_opts();
    o.max_inflight = 2;
    start_notify(f, &o);
    uint64_t t0 = time_mono_ms();
    notify_kick(f->n);
    notify_kick(f->n);                   /* kicks coalesce; no row is sent twice */
    assert_true(run_until(f, none_pending, 5000));
    uint64_t ms = time_mono_ms() - t0;
    assert_int_equal(f->nhits, 6);
    assert_int_equal(f->max_active, 2);
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            assert_string_not_equal(f->hits[i].delivery, f->hits[j].delivery);
    assert_true(ms >= 445);              /* three waves of 150 ms */
    printf("notify: 6 deliveries, 2 at a time, 150 ms each: %llu ms\n", (unsigned long long)ms);
    free(u);
}

/* A row written without a kick (another process, a missed kick) is found
 * by the periodic look at the outbox. */
static void test_poll_finds_unkicked_rows(void **state)
{
    fx_t *f = *state;
    notify_opts_t o = fast_opts();
    o.poll_ms = 200;
    start_notify(f, &o);
    notify_kick(f->n);                   /* the start-up kick: nothing pending yet */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    char *u = hook_url(f, "/hook");
    store_hook_t hook = { u, "run.success", NULL };
    finish_run_with_hooks(f, &hook, 1);
    uint64_t t0 = time_mono_ms();
    assert_true(run_until(f, hit_once, 2000));
    uint64_t ms = time_mono_ms() - t0;
    assert_true(run_until(f, none_pending, 2000));
    assert_true(ms <= 400);
    printf("notify: unkicked row found by the %llu ms poll after %llu ms\n",
           (unsigned long long)o.poll_ms, (unsigned long long)ms);
    free(u);
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    notify_opts_t o;
    notify_opts_default(&o);
    static const uint64_t want[] = { 5000, 10000, 20000, 40000, 80000, 160000, 320000,
                                     640000, 1280000, 2560000, 3600000 };
    uint64_t total = 0;
    for (int a = 1; a <= 11; a++) {
        assert_int_equal(notify_backoff_ms(&o, a), want[a - 1]);
        total += want[a - 1];
    }
    assert_int_equal(notify_backoff_ms(&o, 12), 0);   /* the 12th failure gives up */
    assert_int_equal(notify_backoff_ms(&o, 40), 0);
    o.max_attempts = 100;
    assert_int_equal(notify_backoff_ms(&o, 90), 3600000);  /* no overflow */
    printf("notify: default schedule waits %llu s in all before giving up\n",
           (unsigned long long)(total / 1000));
}

static void test_envelope(void **state)
{
    (void)state;
    json_t *body = json_pack("{si}", "a", 1), *h = json_pack("{ss}", "X-A", "b");
    char *e = notify_envelope(NULL, body);
    assert_string_equal(e, "{\"headers\":{},\"body\":{\"a\":1}}");
    free(e);
    e = notify_envelope(h, body);
    assert_string_equal(e, "{\"headers\":{\"X-A\":\"b\"},\"body\":{\"a\":1}}");
    free(e);
    json_decref(body);
    json_decref(h);
}

int main(void)
{
    static const char *const proxies[] = { "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                                           "all_proxy", "ALL_PROXY" };
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
    log_set_level(getenv("NBHUB_TEST_LOG") ? LOG_DEBUG : LOG_OFF);   /* the failures here are on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_receiver_loop_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_payloads_fail_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_finds_unkicked_rows, setup, teardown),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
