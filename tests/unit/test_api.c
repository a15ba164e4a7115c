/* Unit tests for the REST layer (src/api): the real router, hook and
 * handlers driven through socketless ("detached") HTTP connections, on a
 * real SQLite store and the real scheduler in a temporary $NBHUB_HOME.
 *
 * Each test gets a fresh home with three users — admin, alice (owns the
 * flow "daily") and bob (owns nothing) — and an API token for each.
 * Tests that need no scheduler build the API with sched = NULL and create
 * flows and runs straight in the store; the flow tests and the
 * authorization matrix use the scheduler (never started: no timers, no
 * directory watch).  Task children are spawned from /bin/false, so a
 * "running" task stays running (as far as the store knows) until the test
 * runs the loop at teardown: the tests see deterministic states.
 *
 * The authorization matrix is generated from the route table: every route
 * is called as anonymous, as bob, as alice and as admin, each on a fresh
 * home, and the answer is checked against what the route's flags promise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_int.h"
#include "auth/passwd.h"
#include "auth/token.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#define T0 1795323600000000LL /* 2026-11-22T05:00:00Z */

static const char FLOW_YAML[] =
    "name: daily\n"
    "owner: alice\n"
    "description: Daily report\n"
    "schedule: \"0 5 * * *\"\n"
    "timezone: Europe/Berlin\n"
    "params: {n: 1}\n"
    "tasks:\n"
    "  extract:\n"
    "    notebook: nb.ipynb\n"
    "  load:\n"
    "    command: [\"echo\", \"{{ params.n }}\"]\n"
    "    after: [extract]\n";

static const char NOTEBOOK[] =
    "{\"cells\": [], \"metadata\": {\"kernelspec\": {\"name\": \"python3\", \"display_name\": \"P\","
    " \"language\": \"python\"}}, \"nbformat\": 4, \"nbformat_minor\": 5}\n";

enum { ANON, BOB, ALICE, ADMIN, NSUBJ };
static const char *const subj_name[NSUBJ] = { "anonymous", "bob", "alice", "admin" };

typedef struct fx {
    char           dir[64];
    char           flows[96];
    uv_loop_t      loop;
    store_t       *st;
    sched_t       *sched;
    api_t         *api;
    http_server_t *srv;
    int64_t        uid[NSUBJ];
    char           tok[NSUBJ][TOKEN_LEN + 1];
    int64_t        spare_token;       /* a second token of alice's (DELETE target) */
    int64_t        run;               /* a run of "daily" */
} fx_t;

struct resp {
    int   status;
    char *head;                       /* status line and headers */
    char *body;                       /* de-chunked */
    size_t blen;
};

/* ---- fixture -------------------------------------------------------------- */

static void add_user(fx_t *f, int who, const char *name, int admin)
{
    nb_err_t err;
    assert_int_equal(store_user_add(f->st, name, NULL, admin, time_now_us(), &f->uid[who], &err), 0);
    char digest[TOKEN_DIGEST_LEN + 1];
    assert_int_equal(token_new(TOKEN_API, f->tok[who]), 0);
    token_digest(f->tok[who], digest);
    assert_int_equal(store_token_add(f->st, f->uid[who], "test", digest, time_now_us(), 0, NULL, &err), 0);
}

static void write_file(const char *path, const char *text)
{
    nb_err_t err;
    assert_int_equal(fs_write_atomic(path, text, strlen(text), 0, &err), 0);
}

/* The flow "daily" straight in the store (no scheduler). */
static void store_flow(fx_t *f, const char *name, int64_t owner)
{
    flow_t *fl;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(flow_parse_text(FLOW_YAML, strlen(FLOW_YAML), "daily", f->flows, &fl, &errs), 0);
    json_t *spec = flow_to_json(fl);
    json_object_set_new(spec, "name", json_string(name));
    char *sj = json_dumps(spec, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(spec);
    flow_free(fl);
    store_flow_in_t in = { name, owner, sj, NULL, NULL };
    nb_err_t err;
    assert_int_equal(store_flow_upsert(f->st, &in, time_now_us(), NULL, NULL, &err), 0);
    free(sj);
}

/* A run of `flow` straight in the store; start = also running with the
 * first task running and its log/output files written. */
static int64_t store_run(fx_t *f, const char *flow, int64_t logical, int start)
{
    store_task_spec_t tasks[2] = { { "extract", 2 }, { "load", 1 } };
    store_fire_t fire = { flow, STORE_RUN_SCHEDULED, logical, NULL, "{\"n\": 1}", 0, tasks, 2, 0 };
    int64_t run;
    nb_err_t err;
    int rc = store_tick_fire(f->st, &fire, time_now_us(), &run, &err);
    if (rc) fail_msg("tick_fire: %s", err.msg);
    if (!start) return run;
    store_task_runs_t tl;
    store_run_t r;
    assert_int_equal(store_run_get(f->st, run, &r, &tl, &err), 0);
    assert_int_equal(store_run_start(f->st, run, time_now_us(), &err), 0);
    int64_t tid = strcmp(tl.v[0].task, "extract") == 0 ? tl.v[0].id : tl.v[1].id;
    char log[160], out[160];
    snprintf(log, sizeof log, "%s/run%lld.log", f->dir, (long long)run);
    snprintf(out, sizeof out, "%s/run%lld.ipynb", f->dir, (long long)run);
    write_file(log, "line one\nline two\n");
    write_file(out, NOTEBOOK);
    char spark[192];
    snprintf(spark, sizeof spark, "%s/run%lld.spark.json", f->dir, (long long)run);
    write_file(spark, "{\"mode\": \"local\", \"app_id\": \"local-1\", \"master_url\": \"local[*]\"}");
    assert_int_equal(store_task_queue(f->st, tid, time_now_us(), &err), 0);
    assert_int_equal(store_task_start(f->st, tid, 4242, 1, out, log, time_now_us(), &err), 0);
    store_run_clear(&r);
    store_task_runs_free(&tl);
    return run;
}

static void on_change(void *ud) { api_notify(ud); }

/* with_sched: the real scheduler, "daily" applied through it and one run
 * triggered; else "daily" and a running run straight in the store. */
static fx_t *fx_new(int with_sched)
{
    fx_t *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nbhub-api-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->flows, sizeof f->flows, "%s/flows", f->dir);
    assert_int_equal(mkdir(f->flows, 0700), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/nb.ipynb", f->flows);
    write_file(path, NOTEBOOK);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    nb_err_t err;
    snprintf(path, sizeof path, "%s/nbhub.db", f->dir);
    assert_int_equal(store_open(path, &f->st, &err), 0);
    add_user(f, ADMIN, "admin", 1);
    add_user(f, ALICE, "alice", 0);
    add_user(f, BOB, "bob", 0);
    char tok[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    token_new(TOKEN_API, tok);
    token_digest(tok, digest);
    assert_int_equal(store_token_add(f->st, f->uid[ALICE], "spare", digest, time_now_us(), 0,
                                     &f->spare_token, &err), 0);
    /* The ordinary users are trusted: these tests are about who may see and
     * change what, with command tasks as the simplest flows; what untrusted
     * users may save is tests/blackbox/test_isolation.py's. */
    static char *const trusted[] = { "alice", "bob", NULL };
    api_opts_t ao = { .loop = &f->loop, .store = f->st, .home = f->dir, .version = "test-1.0",
                      .self_exe = "/bin/true", .trusted_users = trusted };
    /* a stopped Spark cluster of alice's, named like her flow */
    char *sd = xasprintf("%s/spark/daily", f->dir);
    nb_err_t serr;
    assert_int_equal(fs_mkdir_p(sd, 0700, &serr), 0);
    char *sc = xasprintf("%s/config.json", sd);
    write_file(sc, "{\"name\": \"daily\", \"owner\": \"alice\", \"workers\": 1, \"worker_memory\": \"1g\"}");
    free(sc);
    free(sd);
    if (api_new(&ao, &f->api, &err) != 0) fail_msg("api_new: %s", err.msg);
    if (with_sched) {
        /* The scheduler's on_change needs the api, and the api the
         * scheduler: create the api first and hand it the scheduler after
         * (what nbhub serve does through its own context). */
        sched_opts_t so = { .loop = &f->loop, .store = f->st, .home = f->dir, .flows_dir = f->flows,
                            .self_exe = "/bin/false", .on_change = on_change, .ud = f->api };
        assert_int_equal(sched_new(&so, &f->sched, &err), 0);
        f->api->sched = f->sched;
        nb_errlist_t errs = ERRLIST_INIT;
        int rc = sched_flow_apply(f->sched, FLOW_YAML, strlen(FLOW_YAML), NULL, 0, 1, NULL, "alice", 0, 0, NULL, NULL,
                                  NULL, NULL, &errs, &err);
        if (rc) fail_msg("apply: %s", err.msg);
        errlist_free(&errs);
        rc = sched_trigger(f->sched, "daily", NULL, 0, f->uid[ALICE], &f->run, &err);
        if (rc) fail_msg("trigger: %s", err.msg);
        /* The child (/bin/false) writes nothing: put an output notebook
         * where the scheduler said it would be. */
        store_run_t r;
        store_task_runs_t tl;
        assert_int_equal(store_run_get(f->st, f->run, &r, &tl, &err), 0);
        for (size_t i = 0; i < tl.n; i++) {
            if (tl.v[i].output_path) write_file(tl.v[i].output_path, NOTEBOOK);
            /* and the Spark state a task with spark: would have */
            char *sp = tl.v[i].log_path ? api_runs_spark_path(tl.v[i].log_path) : NULL;
            if (sp) write_file(sp, "{\"mode\": \"local\", \"app_id\": \"local-1\"}");
            free(sp);
        }
        store_run_clear(&r);
        store_task_runs_free(&tl);
    } else {
        store_flow(f, "daily", f->uid[ALICE]);
        f->run = store_run(f, "daily", T0, 1);
    }
    f->srv = http_server_new(&f->loop, NULL, api_handle, f->api);
    http_server_set_gate(f->srv, api_gate, f->api);     /* as nbhub serve does */
    api_set_server(f->api, f->srv);
    return f;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void srv_stopped(http_server_t *srv, void *ud)
{
    (void)ud;
    http_server_free(srv);
}

static void sched_done(void *ud) { *(int *)ud = 1; }

static void fx_free(fx_t *f)
{
    if (f->sched) {
        int done = 0;
        sched_stop(f->sched, 0, sched_done, &done);
        while (!done && uv_run(&f->loop, UV_RUN_ONCE)) {}
    }
    http_server_stop(f->srv, srv_stopped, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    api_free(f->api);
    sched_free(f->sched);
    store_close(f->st);
    uv_run(&f->loop, UV_RUN_NOWAIT);   /* close what api_free let go (sowned_forget) */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* ---- requests ------------------------------------------------------------ */

static void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* A header of the response (case-insensitive name), copied, or NULL. */
static char *resp_header(const struct resp *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            return xstrndup(v, strcspn(v, "\r\n"));
        }
    }
    return NULL;
}

/* Parse what the server wrote: one response (status, headers, body). */
static void resp_parse(const buf_t *out, struct resp *r)
{
    memset(r, 0, sizeof *r);
    const char *s = out->data ? out->data : "";
    const char *end = strstr(s, "\r\n\r\n");
    if (!end || sscanf(s, "HTTP/1.%*d %d", &r->status) != 1) fail_msg("no response: [%s]", s);
    r->head = xstrndup(s, (size_t)(end - s) + 2);
    const char *b = end + 4;
    size_t avail = out->len - (size_t)(b - s);
    char *te = resp_header(r, "Transfer-Encoding");
    buf_t body = BUF_INIT;
    buf_append(&body, "", 0);
    if (te && strcmp(te, "chunked") == 0) {
        const char *p = b, *lim = b + avail;
        while (p < lim) {
            char *e;
            unsigned long n = strtoul(p, &e, 16);
            const char *data = strstr(e, "\r\n");
            if (!data || n == 0) break;
            data += 2;
            if (data + n > lim) n = (unsigned long)(lim - data);
            buf_append(&body, data, n);
            p = data + n + 2;
        }
    } else {
        buf_append(&body, b, avail);
    }
    free(te);
    r->blen = body.len;
    r->body = buf_detach(&body);
}

/* Send raw bytes (a whole request) on a fresh detached connection. */
static void request_raw(fx_t *f, const char *in, size_t n, struct resp *r)
{
    http_conn_t *c = http_conn_new_detached(f->srv);
    http_conn_feed(c, in, n);
    for (int i = 0; i < 5000 && !http_conn_output(c)->len; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!http_conn_output(c)->len) usleep(1000);
    }
    resp_parse(http_conn_output(c), r);
    http_conn_free_detached(c);
}

/* Send one request on a fresh detached connection; *keep (may be NULL)
 * gets the connection, still open (streams), else it is freed. */
static void request_on(fx_t *f, const char *method, const char *target, const char *headers,
                       const char *body, struct resp *r, http_conn_t **keep)
{
    buf_t in = BUF_INIT;
    buf_printf(&in, "%s %s HTTP/1.1\r\nHost: test\r\n%s", method, target, headers ? headers : "");
    if (body) buf_printf(&in, "Content-Length: %zu\r\n", strlen(body));
    buf_puts(&in, "\r\n");
    if (body) buf_puts(&in, body);
    http_conn_t *c = http_conn_new_detached(f->srv);
    http_conn_feed(c, in.data, in.len);
    buf_free(&in);
    /* Some answers come from the loop later (output.html renders on the
     * thread pool): let it run until the answer is there. */
    for (int i = 0; i < 5000 && !http_conn_output(c)->len; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!http_conn_output(c)->len) usleep(1000);
    }
    resp_parse(http_conn_output(c), r);
    if (keep) *keep = c;
    else http_conn_free_detached(c);
}

/* The Authorization header line of a subject ("" for anonymous). */
static char *auth_of(fx_t *f, int who)
{
    if (who == ANON) return xstrdup("");
    return xasprintf("Authorization: Bearer %s\r\n", f->tok[who]);
}

static void call(fx_t *f, int who, const char *method, const char *target, const char *body,
                 struct resp *r)
{
    char *h = auth_of(f, who);
    if (body) {
        char *h2 = xasprintf("%sContent-Type: application/json\r\n", h);
        free(h);
        h = h2;
    }
    request_on(f, method, target, h, body, r, NULL);
    free(h);
}

static json_t *resp_json(const struct resp *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    if (!j) fail_msg("not JSON (%s): [%s]", je.text, r->body);
    return j;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void expect_error(const struct resp *r, int status, const char *code)
{
    if (r->status != status) fail_msg("status %d, want %d: %s", r->status, status, r->body);
    json_t *j = resp_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (!c || strcmp(c, code) != 0) fail_msg("error code %s, want %s", c ? c : "(none)", code);
    json_decref(j);
}

/* ---- the authorization matrix ---------------------------------------------- */

/* Request bodies per route; routes without an entry send none. */
static const struct { const char *method, *pattern, *body; } mx_bodies[] = {
    { "POST", "/api/v1/login", "{}" },
    { "POST", "/api/v1/users", "{\"name\": \"carol\"}" },
    { "PUT", "/api/v1/users/:name/password", "{\"password\": \"new-password-1\"}" },
    { "PUT", "/api/v1/users/:name/trusted", "{\"trusted\": true}" },
    { "POST", "/api/v1/users/:name/tokens", "{\"name\": \"ci\"}" },
    { "POST", "/api/v1/flows", "name: fresh\ntasks:\n  a: {command: [\"true\"]}\n" },
    { "POST", "/api/v1/flows/:name/runs", "{\"params\": {\"n\": 2}}" },
    { "POST", "/api/v1/flows/:name/backfill", "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\"}" },
    { "POST", "/api/v1/spark/clusters", "{\"name\": \"mx\", \"workers\": 1, \"worker_memory\": \"512m\"}" },
};

/* The route's pattern with every parameter filled in for the fixture. */
static char *mx_target(fx_t *f, const char *pattern)
{
    buf_t b = BUF_INIT;
    int users = strncmp(pattern, "/api/v1/users/", 14) == 0;
    for (const char *p = pattern; *p;) {
        if (*p != ':') {
            buf_putc(&b, *p++);
            continue;
        }
        size_t n = strcspn(p + 1, "/");
        if (n == 4 && strncmp(p + 1, "name", 4) == 0) buf_puts(&b, users ? "alice" : "daily");
        else if (n == 2 && strncmp(p + 1, "id", 2) == 0)
            buf_printf(&b, "%lld", (long long)(users ? f->spare_token : f->run));
        else if (n == 4 && strncmp(p + 1, "task", 4) == 0) buf_puts(&b, "extract");
        else if (n == 5 && strncmp(p + 1, "owner", 5) == 0)
            buf_puts(&b, strncmp(pattern, "/api/v1/servers/", 16) == 0 ? "alice" : "~alice");   /* /spark/~OWNER/NAME/ui */
        else if (n == 6 && strncmp(p + 1, "server", 6) == 0) buf_puts(&b, "default");
        else if (n == 4 && strncmp(p + 1, "file", 4) == 0) buf_puts(&b, "app.js");
        else fail_msg("unknown parameter in %s", pattern);
        p += 1 + n;
    }
    return buf_detach(&b);
}

static void test_route_matrix(void **state)
{
    (void)state;
    size_t checked = 0;
    size_t nhub = 0;
    for (size_t i = 0; i < api_nroutes; i++) {
        const struct http_route *rt = &api_routes[i];
        /* JupyterHub's API has its own rules: test_hub_routes; the
         * servers' routes need a hub with servers, which this fixture has
         * not: tests/blackbox/test_hub.py holds them to theirs */
        if ((rt->flags & API_F_HUB) || !strncmp(rt->pattern, "/user/", 6) ||
            !strncmp(rt->pattern, "/api/v1/servers", 15) || !strcmp(rt->pattern, "/api/v1/profiles") ||
            /* the Livy API needs the session manager and real kernels:
             * tests/blackbox/test_livy.py holds it to its rules */
            !strncmp(rt->pattern, "/livy/", 6)) {
            nhub++;
            continue;
        }
        const char *body = NULL;
        for (size_t k = 0; k < sizeof mx_bodies / sizeof mx_bodies[0]; k++)
            if (strcmp(mx_bodies[k].method, rt->method) == 0 && strcmp(mx_bodies[k].pattern, rt->pattern) == 0)
                body = mx_bodies[k].body;
        int public_status = 0;
        for (int who = 0; who < NSUBJ; who++) {
            fx_t *f = fx_new(1);
            char *target = mx_target(f, rt->pattern);
            struct resp r;
            call(f, who, rt->method, target, body, &r);
            int st = r.status;
            /* Past the authorization check: a success, a conflict, or for
             * the Spark UI proxy (the fixture's cluster is stopped) its
             * redirect to the trailing slash or 503 "not running". */
            int ok = (st >= 200 && st < 300) || st == 409 ||
                     (!strncmp(rt->pattern, "/spark/", 7) && (st == 302 || st == 503));
            const char *want;
            int good;
            if (!(rt->flags & API_F_AUTH)) {
                want = "the same answer for everyone, not 401/403/404/5xx";
                if (who == 0) public_status = st;
                good = st == public_status && st != 401 && st != 403 && st != 404 && st < 500;
            } else if (who == ANON) {
                want = "401";
                char *www = resp_header(&r, "WWW-Authenticate");
                good = st == 401 && www && strcmp(www, "Bearer realm=\"nbhub\"") == 0;
                free(www);
            } else if (rt->flags & API_F_ADMIN) {
                want = who == ADMIN ? "2xx" : "403";
                good = who == ADMIN ? ok : st == 403;
            } else if (rt->flags & API_F_SELF) {
                want = who == BOB ? "403" : "2xx";
                good = who == BOB ? st == 403 : ok;
            } else if (rt->flags & (API_F_FLOW | API_F_RUN | API_F_CLUSTER)) {
                want = who == BOB ? "404" : "2xx";
                good = who == BOB ? st == 404 : ok;
            } else {
                want = "2xx";
                good = ok;
            }
            if (!good)
                fail_msg("%s %s as %s: got %d, want %s: %s", rt->method, target, subj_name[who], st,
                         want, r.body);
            checked++;
            resp_free(&r);
            free(target);
            fx_free(f);
        }
    }
    assert_int_equal(checked, (api_nroutes - nhub) * NSUBJ);
}


/* ---- token kinds and /hub/api ------------------------------------------------ */

/* A token of alice's other than her own full 'api' token. */
static void add_token(fx_t *f, store_token_kind_t kind, const char *scopes, char tok[TOKEN_LEN + 1])
{
    nb_err_t err;
    char digest[TOKEN_DIGEST_LEN + 1];
    assert_int_equal(token_new(TOKEN_API, tok), 0);
    token_digest(tok, digest);
    assert_int_equal(store_token_add_scoped(f->st, f->uid[ALICE], "k", digest, kind, scopes, 0,
                                            time_now_us(), 0, NULL, &err), 0);
}

/* The attack: a notebook server's JUPYTERHUB_API_TOKEN (readable by any
 * code in the server), an OAuth token, or a token created with JupyterHub
 * scopes, used on nbhub's own API.  Every authenticated route outside
 * /hub/api refuses them with 403, whatever the route would give alice. */
static void test_token_kinds_confined(void **state)
{
    (void)state;
    size_t checked = 0;
    struct { store_token_kind_t kind; const char *scopes; } kinds[] = {
        { STORE_TOKEN_SERVER, NULL },
        { STORE_TOKEN_OAUTH, "[\"access:servers!server=alice/\"]" },
        { STORE_TOKEN_API, "[\"list:users\", \"delete:servers\"]" },
    };
    for (size_t i = 0; i < api_nroutes; i++) {
        const struct http_route *rt = &api_routes[i];
        if ((rt->flags & API_F_HUB) || !(rt->flags & API_F_AUTH)) continue;
        fx_t *f = fx_new(1);
        /* any value will do: the token is refused before the path is read */
        buf_t tb = BUF_INIT;
        for (const char *p = rt->pattern; *p; p++) {
            if (*p == ':' || *p == '*') {
                buf_puts(&tb, "alice");
                while (p[1] && p[1] != '/') p++;
            } else {
                buf_putc(&tb, *p);
            }
        }
        char *target = buf_detach(&tb);
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            char tok[TOKEN_LEN + 1];
            add_token(f, kinds[k].kind, kinds[k].scopes, tok);
            char *h = xasprintf("Authorization: token %s\r\nContent-Type: application/json\r\n", tok);
            struct resp r;
            request_on(f, rt->method, target, h, "{}", &r, NULL);
            if (r.status != 403)
                fail_msg("%s %s with a %s token (scopes %s): got %d, want 403: %s", rt->method, target,
                         store_token_kind_name(kinds[k].kind), kinds[k].scopes ? kinds[k].scopes : "-",
                         r.status, r.body);
            checked++;
            resp_free(&r);
            free(h);
        }
        free(target);
        fx_free(f);
    }
    assert_true(checked > 30);

    /* "inherit" is all the owner's rights: such a token is a full one */
    fx_t *f = fx_new(0);
    char tok[TOKEN_LEN + 1];
    add_token(f, STORE_TOKEN_API, "[\"inherit\"]", tok);
    char *h = xasprintf("Authorization: Bearer %s\r\n", tok);
    struct resp r;
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(h);
    /* and the UI's pages do not take a server token as a login */
    add_token(f, STORE_TOKEN_SERVER, NULL, tok);
    h = xasprintf("Authorization: Bearer %s\r\n", tok);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    free(h);
    fx_free(f);
}

/* Every /hub/api route has its scopes declared, answers an anonymous
 * caller with JupyterHub's 403 (but the public ones), and carries
 * X-JupyterHub-Version. */
static void test_hub_routes(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    size_t n = 0;
    for (size_t i = 0; i < api_nroutes; i++) {
        const struct http_route *rt = &api_routes[i];
        if (!(rt->flags & API_F_HUB)) continue;
        n++;
        if (!api_hub_route_known(rt->handler)) fail_msg("%s %s: no scopes declared", rt->method, rt->pattern);
        if (rt->handler == api_hub_root || rt->handler == api_hub_oauth_authorize ||
            rt->handler == api_hub_oauth_token)
            continue;
        buf_t t = BUF_INIT;
        for (const char *p = rt->pattern; *p; p++) {
            if (*p == ':') {
                buf_puts(&t, "x");
                while (p[1] && p[1] != '/') p++;
            } else {
                buf_putc(&t, *p);
            }
        }
        struct resp r;
        request_on(f, rt->method, t.data, "", NULL, &r, NULL);
        char *v = resp_header(&r, "X-JupyterHub-Version");
        if (r.status != 403 || !v || strcmp(v, API_HUB_VERSION) != 0)
            fail_msg("%s %s anonymous: %d (version %s): %s", rt->method, t.data, r.status, v ? v : "-", r.body);
        json_t *j = resp_json(&r);
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 403);
        json_decref(j);
        free(v);
        resp_free(&r);
        buf_free(&t);
    }
    assert_true(n > 25);
    /* the root: public, the version, the header once */
    struct resp r;
    request_on(f, "GET", "/hub/api/", "", NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"version\": \"" API_HUB_VERSION "\"") ? r.body : strstr(r.body, API_HUB_VERSION));
    assert_non_null(strstr(r.head, "X-JupyterHub-Version: " API_HUB_VERSION));
    assert_null(strstr(strstr(r.head, "X-JupyterHub-Version") + 1, "X-JupyterHub-Version"));
    resp_free(&r);
    request_on(f, "GET", "/hub/api/nothing/here", "", NULL, &r, NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    fx_free(f);
}

/* ---- OpenAPI ---------------------------------------------------------------- */

/* A route pattern as OpenAPI writes it: ":name" and a final "*rest" are
 * both {name}. */
static char *openapi_path(const char *pattern)
{
    buf_t p = BUF_INIT;
    for (const char *s = pattern; *s;) {
        if (*s == ':' || *s == '*') {
            size_t n = strcspn(s + 1, "/");
            buf_printf(&p, "{%.*s}", (int)n, s + 1);
            s += 1 + n;
        } else {
            buf_putc(&p, *s++);
        }
    }
    return buf_detach(&p);
}

static void test_openapi(void **state)
{
    (void)state;
    json_error_t je;
    json_t *doc = json_loads(api_openapi_json, 0, &je);
    if (!doc) fail_msg("openapi.json does not parse: line %d: %s", je.line, je.text);
    assert_string_equal(jstr(doc, "openapi"), "3.0.3");
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_is_object(paths));
    /* Every route is documented (but JupyterHub's /hub/api: docs/hub.md) ... */
    size_t nhub = 0;
    for (size_t i = 0; i < api_nroutes; i++) {
        /* ... nor the proxy to notebook servers at /user/ (docs/hub.md) */
        /* ... nor the Livy API at /livy/ (Livy's shapes: docs/livy.md) */
        if ((api_routes[i].flags & API_F_HUB) || !strncmp(api_routes[i].pattern, "/user/", 6) ||
            !strncmp(api_routes[i].pattern, "/livy/", 6)) {
            nhub++;
            continue;
        }
        char *p = openapi_path(api_routes[i].pattern);
        char m[16];
        size_t k = 0;
        for (; api_routes[i].method[k] && k < sizeof m - 1; k++) m[k] = (char)(api_routes[i].method[k] | 0x20);
        m[k] = '\0';
        json_t *op = json_object_get(json_object_get(paths, p), m);
        if (!json_is_object(op)) fail_msg("route %s %s missing from openapi.json", m, p);
        assert_non_null(json_object_get(op, "responses"));
        free(p);
    }
    /* ... and everything documented is a route. */
    const char *path;
    json_t *item;
    size_t nops = 0;
    json_object_foreach(paths, path, item) {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op) {
            nops++;
            int found = 0;
            for (size_t i = 0; i < api_nroutes && !found; i++) {
                char *t = openapi_path(api_routes[i].pattern);
                found = strcmp(t, path) == 0 && strcasecmp(api_routes[i].method, m) == 0;
                free(t);
            }
            if (!found) fail_msg("openapi.json documents %s %s, which is no route", m, path);
        }
    }
    assert_int_equal(nops, api_nroutes - nhub);
    json_decref(doc);

    /* And it is served as is. */
    fx_t *f = fx_new(0);
    struct resp r;
    call(f, ANON, "GET", "/api/v1/openapi.json", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, api_openapi_json);
    resp_free(&r);
    fx_free(f);
}

/* Request bodies as the OpenAPI document describes them, as schemathesis
 * found they were not: a body of one NUL byte made an unnamed token (the
 * whitespace skip took the NUL for whitespace: strchr finds the
 * terminator), and members the schema does not list (additionalProperties:
 * false) were ignored, so a misspelt "expire_in" made a token that never
 * expires. */
static void test_body_contract(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    char *h = auth_of(f, BOB);
    buf_t in = BUF_INIT;
    buf_printf(&in, "POST /api/v1/users/bob/tokens HTTP/1.1\r\nHost: test\r\n%s"
                    "Content-Type: application/json\r\nContent-Length: 1\r\n\r\n", h);
    buf_append(&in, "", 1);
    request_raw(f, in.data, in.len, &r);
    expect_error(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "invalid JSON"));
    resp_free(&r);
    buf_free(&in);
    free(h);
    call(f, BOB, "POST", "/api/v1/users/bob/tokens", "{\"name\": \"x\", \"expire_in\": 60}", &r);
    expect_error(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "unknown member \\\"expire_in\\\"; expected: name, expires_in"));
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/users/bob/tokens", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"x\""));
    resp_free(&r);
    /* Every JSON body the API takes is held to its members (the flows'
     * trigger and backfill: test_flows). */
    static const struct { const char *path, *method; } bodies[] = {
        { "/api/v1/users", "POST" },
        { "/api/v1/users/bob/password", "PUT" },
        { "/api/v1/users/bob/tokens", "POST" },
        { "/api/v1/spark/clusters", "POST" },
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        call(f, ADMIN, bodies[i].method, bodies[i].path, "{\"bogus\": 1}", &r);
        if (r.status != 400 || !strstr(r.body, "unknown member"))
            fail_msg("%s %s with an unknown member: %d %s", bodies[i].method, bodies[i].path, r.status, r.body);
        resp_free(&r);
    }
    request_on(f, "POST", "/api/v1/login", "Content-Type: application/json\r\n",
               "{\"username\": \"bob\", \"password\": \"x\", \"bogus\": 1}", &r, NULL);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    fx_free(f);
}

/* ---- authentication ---------------------------------------------------------- */

static void test_auth_tokens(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    nb_err_t err;
    /* No credentials, a malformed header, an unknown token: 401. */
    request_on(f, "GET", "/api/v1/me", NULL, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    request_on(f, "GET", "/api/v1/me", "Authorization: Basic YWxpY2U6eA==\r\n", NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    char tok[TOKEN_LEN + 1];
    token_new(TOKEN_API, tok);
    char *h = xasprintf("Authorization: Bearer %s\r\n", tok);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    /* A session token in the Authorization header is not an API token. */
    char sess[TOKEN_LEN + 1];
    token_new(TOKEN_SESSION, sess);
    h = xasprintf("Authorization: Bearer %s\r\n", sess);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    /* Bearer and JupyterHub's "token" scheme both work. */
    call(f, ALICE, "GET", "/api/v1/me", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "name"), "alice");
    assert_true(json_is_false(json_object_get(j, "admin")));
    assert_true(json_is_false(json_object_get(j, "disabled")));
    assert_int_equal(json_integer_value(json_object_get(j, "id")), f->uid[ALICE]);
    json_decref(j);
    resp_free(&r);
    h = xasprintf("Authorization: token %s\r\n", f->tok[ALICE]);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(h);
    /* An expired token: 401. */
    char old[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    token_new(TOKEN_API, old);
    token_digest(old, digest);
    int64_t now = time_now_us();
    assert_int_equal(store_token_add(f->st, f->uid[BOB], "old", digest, now - 2000000, now - 1000000,
                                     NULL, &err), 0);
    h = xasprintf("Authorization: Bearer %s\r\n", old);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    /* A disabled user: 401 with their valid token; back after enabling. */
    assert_int_equal(store_user_set_disabled(f->st, f->uid[BOB], 1, &err), 0);
    call(f, BOB, "GET", "/api/v1/me", NULL, &r);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    assert_int_equal(store_user_set_disabled(f->st, f->uid[BOB], 0, &err), 0);
    call(f, BOB, "GET", "/api/v1/me", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    fx_free(f);
}

/* 1 if any of the database files contains s. */
static int db_contains(fx_t *f, const char *s)
{
    static const char *const sfx[] = { "nbhub.db", "nbhub.db-wal" };
    int found = 0;
    for (size_t i = 0; i < 2; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", f->dir, sfx[i]);
        char *data;
        size_t len;
        if (fs_read_all(p, &data, &len, NULL) != 0) continue;
        if (memmem(data, len, s, strlen(s))) found = 1;
        free(data);
    }
    return found;
}

/* Log in; fills cookie ("nbhub_session=...") and csrf. */
static void login(fx_t *f, const char *user, const char *pw, char *cookie, size_t cn, char *csrf,
                  size_t sn, struct resp *r)
{
    char *body = xasprintf("{\"username\": \"%s\", \"password\": \"%s\"}", user, pw);
    request_on(f, "POST", "/api/v1/login", "Content-Type: application/json\r\n", body, r, NULL);
    free(body);
    if (r->status != 200) return;
    char *sc = resp_header(r, "Set-Cookie");
    assert_non_null(sc);
    snprintf(cookie, cn, "%.*s", (int)strcspn(sc, ";"), sc);
    free(sc);
    json_t *j = resp_json(r);
    snprintf(csrf, sn, "%s", jstr(j, "csrf_token"));
    json_decref(j);
}

static void test_login_csrf(void **state)
{
    (void)state;
    fx_t *f = fx_new(1);
    nb_err_t err;
    char *hash;
    assert_int_equal(passwd_hash("alice-password", &hash, &err), 0);
    assert_int_equal(store_user_set_password(f->st, f->uid[ALICE], hash, &err), 0);
    free(hash);
    struct resp r;
    char cookie[128], csrf[64];

    /* Wrong password and unknown user: the same 401. */
    login(f, "alice", "not-her-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    expect_error(&r, 401, "unauthorized");
    char *msg1 = xstrdup(r.body);
    resp_free(&r);
    login(f, "mallory", "whatever-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    expect_error(&r, 401, "unauthorized");
    assert_string_equal(r.body, msg1);
    free(msg1);
    resp_free(&r);
    /* A user without a password (token only) cannot log in. */
    login(f, "bob", "whatever-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    /* Login must be JSON (no cross-site form can send that). */
    request_on(f, "POST", "/api/v1/login", "Content-Type: application/x-www-form-urlencoded\r\n",
               "{\"username\": \"alice\", \"password\": \"alice-password\"}", &r, NULL);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);

    login(f, "alice", "alice-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    assert_int_equal(r.status, 200);
    char *sc = resp_header(&r, "Set-Cookie");
    assert_non_null(strstr(sc, "HttpOnly"));
    assert_non_null(strstr(sc, "SameSite=Lax"));
    assert_non_null(strstr(sc, "Path=/"));
    assert_non_null(strstr(sc, "Max-Age=604800"));
    assert_null(strstr(sc, "Secure"));
    free(sc);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(json_object_get(j, "user"), "name"), "alice");
    json_decref(j);
    resp_free(&r);
    assert_true(token_is(cookie + strlen("nbhub_session="), TOKEN_SESSION));
    assert_true(token_is(csrf, TOKEN_CSRF));

    /* Cookie reads need no CSRF token. */
    char *h = xasprintf("Cookie: %s\r\n", cookie);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* Cookie writes do: missing, wrong, right. */
    request_on(f, "POST", "/api/v1/flows/daily/pause", h, NULL, &r, NULL);
    expect_error(&r, 403, "csrf");
    resp_free(&r);
    char *hw = xasprintf("Cookie: %s\r\nX-CSRF-Token: nbc_wrongwrongwrongwrongwrongwrongwrongwrongwro\r\n", cookie);
    request_on(f, "POST", "/api/v1/flows/daily/pause", hw, NULL, &r, NULL);
    expect_error(&r, 403, "csrf");
    resp_free(&r);
    free(hw);
    char *hc = xasprintf("Cookie: %s\r\nX-CSRF-Token: %s\r\n", cookie, csrf);
    request_on(f, "POST", "/api/v1/flows/daily/pause", hc, NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_true(json_is_true(json_object_get(j, "paused")));
    json_decref(j);
    resp_free(&r);
    /* Tokens need no CSRF header. */
    call(f, ALICE, "POST", "/api/v1/flows/daily/resume", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* A bad Authorization header is not rescued by a good cookie. */
    char *hb = xasprintf("Cookie: %s\r\nAuthorization: Bearer nbh_nope\r\n", cookie);
    request_on(f, "GET", "/api/v1/me", hb, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(hb);
    /* The database holds the session's digest, never the cookie itself. */
    const char *sess_tok = cookie + strlen("nbhub_session=");
    char sdig[TOKEN_DIGEST_LEN + 1];
    token_digest(sess_tok, sdig);
    assert_false(db_contains(f, sess_tok));
    assert_true(db_contains(f, sdig));
    /* Logout (a write: CSRF needed) ends the session and clears the cookie. */
    request_on(f, "POST", "/api/v1/logout", h, NULL, &r, NULL);
    expect_error(&r, 403, "csrf");
    resp_free(&r);
    request_on(f, "POST", "/api/v1/logout", hc, NULL, &r, NULL);
    assert_int_equal(r.status, 204);
    sc = resp_header(&r, "Set-Cookie");
    assert_non_null(strstr(sc, "nbhub_session=;"));
    assert_non_null(strstr(sc, "Max-Age=0"));
    free(sc);
    resp_free(&r);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    /* The stale cookie is cleared. */
    sc = resp_header(&r, "Set-Cookie");
    assert_non_null(sc);
    free(sc);
    resp_free(&r);
    free(h);
    free(hc);

    /* A disabled user cannot log in, and their sessions end. */
    login(f, "alice", "alice-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(store_user_set_disabled(f->st, f->uid[ALICE], 1, &err), 0);
    h = xasprintf("Cookie: %s\r\n", cookie);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    login(f, "alice", "alice-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    fx_free(f);
}

static void test_secure_cookie(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    f->api->secure_cookies = 1;
    nb_err_t err;
    char *hash;
    assert_int_equal(passwd_hash("bob-password", &hash, &err), 0);
    assert_int_equal(store_user_set_password(f->st, f->uid[BOB], hash, &err), 0);
    free(hash);
    struct resp r;
    char cookie[128], csrf[64];
    login(f, "bob", "bob-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    assert_int_equal(r.status, 200);
    char *sc = resp_header(&r, "Set-Cookie");
    assert_non_null(strstr(sc, "; Secure"));
    free(sc);
    char *cc = resp_header(&r, "Cache-Control");
    assert_string_equal(cc, "no-store");
    free(cc);
    resp_free(&r);
    fx_free(f);
}

/* ---- users and tokens ------------------------------------------------------------ */

static void test_tokens(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    call(f, BOB, "POST", "/api/v1/users/bob/tokens", "{\"name\": \"laptop\", \"expires_in\": 3600}", &r);
    assert_int_equal(r.status, 201);
    char *cc = resp_header(&r, "Cache-Control");
    assert_string_equal(cc, "no-store");
    free(cc);
    json_t *j = resp_json(&r);
    const char *tok = jstr(j, "token");
    assert_true(token_is(tok, TOKEN_API));
    assert_string_equal(jstr(j, "name"), "laptop");
    assert_non_null(jstr(j, "expires_at"));
    int64_t id = json_integer_value(json_object_get(j, "id"));
    char *token = xstrdup(tok);
    json_decref(j);
    resp_free(&r);
    /* Stored hashed: the database never contains the token text. */
    char digest[TOKEN_DIGEST_LEN + 1];
    token_digest(token, digest);
    assert_false(db_contains(f, token));
    assert_false(db_contains(f, token + 4));
    assert_true(db_contains(f, digest));
    /* It works, and is never shown again. */
    char *h = xasprintf("Authorization: Bearer %s\r\n", token);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/users/bob/tokens", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, token));
    assert_null(strstr(r.body, "\"token\""));
    j = resp_json(&r);
    json_t *toks = json_object_get(j, "tokens");
    assert_int_equal(json_array_size(toks), 2);
    json_t *t = json_array_get(toks, 1);
    assert_true(json_object_get(t, "last_used_at") != NULL);
    assert_non_null(jstr(t, "created_at"));
    json_decref(j);
    resp_free(&r);
    /* Others may not see or revoke it; an admin may. */
    char *path = xasprintf("/api/v1/users/bob/tokens/%lld", (long long)id);
    call(f, ALICE, "GET", "/api/v1/users/bob/tokens", NULL, &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    call(f, ALICE, "DELETE", path, NULL, &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    /* Bob's id under alice's name is not found (tokens are per user). */
    char *wrong = xasprintf("/api/v1/users/alice/tokens/%lld", (long long)id);
    call(f, ADMIN, "DELETE", wrong, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    free(wrong);
    call(f, ADMIN, "DELETE", path, NULL, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    call(f, ADMIN, "DELETE", path, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    free(path);
    free(token);
    /* Bad input. */
    call(f, BOB, "POST", "/api/v1/users/bob/tokens", "{\"expires_in\": -5}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, BOB, "POST", "/api/v1/users/bob/tokens", "{\"name\": 7}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, ADMIN, "GET", "/api/v1/users/nobody/tokens", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    /* A token that never expires, no body at all. */
    call(f, BOB, "POST", "/api/v1/users/bob/tokens", NULL, &r);
    assert_int_equal(r.status, 201);
    j = resp_json(&r);
    assert_true(json_is_null(json_object_get(j, "expires_at")));
    json_decref(j);
    resp_free(&r);
    fx_free(f);
}

static void test_users(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    call(f, ADMIN, "GET", "/api/v1/users", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "users")), 3);
    json_decref(j);
    resp_free(&r);
    call(f, ADMIN, "POST", "/api/v1/users", "{\"name\": \"carol\", \"password\": \"carol-password\", \"admin\": true}", &r);
    assert_int_equal(r.status, 201);
    j = resp_json(&r);
    assert_string_equal(jstr(j, "name"), "carol");
    assert_true(json_is_true(json_object_get(j, "admin")));
    assert_non_null(jstr(j, "created_at"));
    json_decref(j);
    resp_free(&r);
    assert_false(db_contains(f, "carol-password"));
    call(f, ADMIN, "POST", "/api/v1/users", "{\"name\": \"carol\"}", &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    const char *bad[] = { "{\"name\": \"a b\"}", "{\"name\": \"\"}", "{\"name\": \"-x\"}",
                          "{\"name\": \"x/y\"}", "{}", "{\"name\": \"dave\", \"password\": \"short\"}",
                          "{\"name\": \"dave\", \"admin\": \"yes\"}", "[1]", "{\"name\": \"dave\",}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call(f, ADMIN, "POST", "/api/v1/users", bad[i], &r);
        if (r.status != 400) fail_msg("%s: %d", bad[i], r.status);
        resp_free(&r);
    }
    /* JSON errors say where. */
    call(f, ADMIN, "POST", "/api/v1/users", "{\"name\":\n  tru}", &r);
    expect_error(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "line 2"));
    resp_free(&r);
    /* Passwords: self or admin, min 8, 404 for nobody (admin), 403 for others. */
    call(f, BOB, "PUT", "/api/v1/users/bob/password", "{\"password\": \"bob-password\"}", &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    call(f, BOB, "PUT", "/api/v1/users/bob/password", "{\"password\": \"short\"}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, BOB, "PUT", "/api/v1/users/alice/password", "{\"password\": \"bob-was-here\"}", &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    call(f, BOB, "PUT", "/api/v1/users/nobody/password", "{\"password\": \"bob-was-here\"}", &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    call(f, ADMIN, "PUT", "/api/v1/users/nobody/password", "{\"password\": \"whatever-1\"}", &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    /* The new password logs in; a change ends the sessions. */
    char cookie[128], csrf[64];
    login(f, "bob", "bob-password", cookie, sizeof cookie, csrf, sizeof csrf, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    call(f, ADMIN, "PUT", "/api/v1/users/bob/password", "{\"password\": \"reset-by-admin\"}", &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    char *h = xasprintf("Cookie: %s\r\n", cookie);
    request_on(f, "GET", "/api/v1/me", h, NULL, &r, NULL);
    expect_error(&r, 401, "unauthorized");
    resp_free(&r);
    free(h);
    fx_free(f);
}

/* ---- runs ---------------------------------------------------------------------- */

static void test_runs_pagination(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    store_flow(f, "other", f->uid[BOB]);
    /* 25 more runs of daily (26 in all) and 3 of bob's flow. */
    for (int i = 1; i <= 25; i++) store_run(f, "daily", T0 + i * 86400000000LL, 0);
    for (int i = 1; i <= 3; i++) store_run(f, "other", T0 + i * 86400000000LL, 0);
    struct resp r;
    int64_t before = 0, prev = INT64_MAX;
    size_t total = 0, pages = 0;
    for (;;) {
        char *t = before ? xasprintf("/api/v1/runs?limit=10&before=%lld", (long long)before)
                         : xstrdup("/api/v1/runs?limit=10");
        call(f, ALICE, "GET", t, NULL, &r);
        free(t);
        assert_int_equal(r.status, 200);
        json_t *j = resp_json(&r);
        json_t *runs = json_object_get(j, "runs");
        pages++;
        size_t i;
        json_t *run;
        json_array_foreach(runs, i, run) {
            int64_t id = json_integer_value(json_object_get(run, "id"));
            assert_true(id < prev);       /* newest first, no repeats */
            prev = id;
            assert_string_equal(jstr(run, "flow"), "daily");
            assert_null(json_object_get(run, "tasks"));
            total++;
        }
        json_t *next = json_object_get(j, "next");
        if (json_is_null(next)) {
            json_decref(j);
            resp_free(&r);
            break;
        }
        assert_int_equal(json_array_size(runs), 10);
        before = json_integer_value(next);
        assert_int_equal(before, prev);
        json_decref(j);
        resp_free(&r);
    }
    assert_int_equal(total, 26);
    assert_int_equal(pages, 3);
    /* Exactly one page: next is null, not an extra empty page. */
    call(f, ALICE, "GET", "/api/v1/runs?limit=26", NULL, &r);
    json_t *j = resp_json(&r);
    assert_true(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    resp_free(&r);
    /* Admin sees all 29; bob his 3; filters. */
    call(f, ADMIN, "GET", "/api/v1/runs?limit=1000", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 29);
    json_decref(j);
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/runs", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 3);
    json_decref(j);
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/runs?flow=daily", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 0);
    json_decref(j);
    resp_free(&r);
    call(f, ADMIN, "GET", "/api/v1/runs?flow=other&state=queued", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 3);
    json_decref(j);
    resp_free(&r);
    call(f, ADMIN, "GET", "/api/v1/runs?state=running", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 1);
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "GET", "/api/v1/flows/daily/runs?limit=5", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 5);
    assert_true(json_is_integer(json_object_get(j, "next")));
    json_decref(j);
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/flows/daily/runs", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    const char *bad[] = { "/api/v1/runs?limit=0", "/api/v1/runs?limit=1001", "/api/v1/runs?limit=x",
                          "/api/v1/runs?before=-1", "/api/v1/runs?state=done" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call(f, ALICE, "GET", bad[i], NULL, &r);
        expect_error(&r, 400, "bad_request");
        resp_free(&r);
    }
    fx_free(f);
}

static void test_run_get_and_files(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    char *path = xasprintf("/api/v1/runs/%lld", (long long)f->run);
    call(f, ALICE, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "run_id"), "scheduled__2026-11-22T05:00:00+00:00");
    assert_string_equal(jstr(j, "logical_date"), "2026-11-22T05:00:00Z");
    assert_string_equal(jstr(j, "kind"), "scheduled");
    assert_string_equal(jstr(j, "state"), "running");
    assert_true(json_is_null(json_object_get(j, "ended_at")));
    assert_true(json_is_null(json_object_get(j, "triggered_by")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "params"), "n")), 1);
    json_t *tasks = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(tasks), 2);
    json_t *t0 = json_array_get(tasks, 0);
    assert_string_equal(jstr(t0, "name"), "extract");
    assert_string_equal(jstr(t0, "state"), "running");
    assert_int_equal(json_integer_value(json_object_get(t0, "try_number")), 1);
    assert_int_equal(json_integer_value(json_object_get(t0, "max_tries")), 2);
    assert_true(json_is_true(json_object_get(t0, "has_log")));
    assert_true(json_is_true(json_object_get(t0, "has_output")));
    assert_true(json_is_null(json_object_get(t0, "exit_code")));
    json_t *t1 = json_array_get(tasks, 1);
    assert_string_equal(jstr(t1, "state"), "pending");
    assert_true(json_is_false(json_object_get(t1, "has_log")));
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "GET", "/api/v1/runs/999999", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    call(f, ALICE, "GET", "/api/v1/runs/abc", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);

    /* Log: whole, tail, and the output notebook. */
    char *lp = xasprintf("%s/tasks/extract/log", path);
    call(f, ALICE, "GET", lp, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "line one\nline two\n");
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "text/plain; charset=utf-8");
    free(ct);
    resp_free(&r);
    char *lt = xasprintf("%s?tail=9", lp);
    call(f, ALICE, "GET", lt, NULL, &r);
    assert_string_equal(r.body, "line two\n");
    resp_free(&r);
    free(lt);
    lt = xasprintf("%s?tail=100000", lp);
    call(f, ALICE, "GET", lt, NULL, &r);
    assert_string_equal(r.body, "line one\nline two\n");
    resp_free(&r);
    free(lt);
    lt = xasprintf("%s?tail=x", lp);
    call(f, ALICE, "GET", lt, NULL, &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    free(lt);
    char *op = xasprintf("%s/tasks/extract/output", path);
    call(f, ALICE, "GET", op, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, NOTEBOOK);
    ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "application/x-ipynb+json");
    free(ct);
    resp_free(&r);
    char *np = xasprintf("%s/tasks/load/log", path);
    call(f, ALICE, "GET", np, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    free(np);
    np = xasprintf("%s/tasks/nope/log", path);
    call(f, ALICE, "GET", np, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    free(np);

    /* A big log (> 1 MiB) is streamed, and arrives whole. */
    char logp[160];
    snprintf(logp, sizeof logp, "%s/run%lld.log", f->dir, (long long)f->run);
    size_t big = 3 * 1024 * 1024 + 123;
    char *data = xmalloc(big + 1);
    for (size_t i = 0; i < big; i++) data[i] = (char)('a' + i % 26);
    data[big] = '\0';
    nb_err_t err;
    assert_int_equal(fs_write_atomic(logp, data, big, 0, &err), 0);
    call(f, ALICE, "GET", lp, NULL, &r);
    assert_int_equal(r.status, 200);
    char *te = resp_header(&r, "Transfer-Encoding");
    assert_string_equal(te, "chunked");
    free(te);
    assert_int_equal(r.blen, big);
    assert_memory_equal(r.body, data, big);
    resp_free(&r);
    call(f, ALICE, "HEAD", lp, NULL, &r);           /* headers only, nothing read */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.blen, 0);
    resp_free(&r);
    lt = xasprintf("%s?tail=2000000", lp);
    call(f, ALICE, "GET", lt, NULL, &r);
    assert_int_equal(r.blen, 2000000);
    assert_memory_equal(r.body, data + big - 2000000, 2000000);
    resp_free(&r);
    free(lt);
    free(data);

    /* A path outside the home is refused even though the store says so. */
    int64_t run2 = store_run(f, "daily", T0 + 86400000000LL, 0);
    store_task_runs_t tl;
    store_run_t rr;
    assert_int_equal(store_run_get(f->st, run2, &rr, &tl, &err), 0);
    assert_int_equal(store_run_start(f->st, run2, time_now_us(), &err), 0);
    assert_int_equal(store_task_queue(f->st, tl.v[0].id, time_now_us(), &err), 0);
    assert_int_equal(store_task_start(f->st, tl.v[0].id, 1, 1, "/etc/hostname", "/etc/passwd",
                                      time_now_us(), &err), 0);
    store_run_clear(&rr);
    store_task_runs_free(&tl);
    char *p2 = xasprintf("/api/v1/runs/%lld/tasks/extract/log", (long long)run2);
    call(f, ADMIN, "GET", p2, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    free(p2);
    /* A symlink inside the home pointing out is refused too. */
    char link[200];
    snprintf(link, sizeof link, "%s/run%lld.log", f->dir, (long long)f->run);
    unlink(link);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    call(f, ALICE, "GET", lp, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);

    /* Without a scheduler, cancelling answers 503. */
    char *cp = xasprintf("%s/cancel", path);
    call(f, ALICE, "POST", cp, NULL, &r);
    expect_error(&r, 503, "unavailable");
    resp_free(&r);
    free(cp);
    free(lp);
    free(op);
    free(path);
    fx_free(f);
}

/* ---- events ---------------------------------------------------------------------- */

/* The SSE events in a connection's output: "id|event" lines. */
static char *sse_events(http_conn_t *c)
{
    struct resp r;
    resp_parse(http_conn_output(c), &r);
    assert_int_equal(r.status, 200);
    buf_t b = BUF_INIT;
    buf_append(&b, "", 0);
    const char *id = NULL;
    for (char *line = r.body; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (strncmp(line, "id: ", 4) == 0) id = line + 4;
        else if (strncmp(line, "event: ", 7) == 0) buf_printf(&b, "%s|%s\n", id ? id : "?", line + 7);
        else if (strncmp(line, "data: ", 6) == 0) {
            json_t *j = json_loads(line + 6, 0, NULL);
            if (!j) fail_msg("bad data line: %s", line);
            assert_non_null(jstr(j, "kind"));
            assert_non_null(jstr(j, "at"));
            json_decref(j);
        }
        line = nl ? nl + 1 : NULL;
    }
    resp_free(&r);
    return buf_detach(&b);
}

static http_conn_t *sse_open(fx_t *f, int who, const char *target, const char *extra)
{
    char *h = auth_of(f, who);
    char *h2 = xasprintf("%s%s", h, extra ? extra : "");
    struct resp r;
    http_conn_t *c;
    request_on(f, "GET", target, h2, NULL, &r, &c);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_non_null(strstr(ct, "text/event-stream"));
    free(ct);
    resp_free(&r);
    free(h);
    free(h2);
    return c;
}

static int64_t last_event(fx_t *f)
{
    int64_t id;
    nb_err_t err;
    assert_int_equal(store_events_last_id(f->st, &id, &err), 0);
    return id;
}

static void test_events(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    store_flow(f, "other", f->uid[BOB]);
    nb_err_t err;
    int64_t mark = last_event(f);
    http_conn_t *ca = sse_open(f, ALICE, "/api/v1/events", NULL);
    http_conn_t *cb = sse_open(f, BOB, "/api/v1/events", NULL);
    http_conn_t *cd = sse_open(f, ADMIN, "/api/v1/events", NULL);
    /* Nothing old is replayed to a client that does not ask. */
    char *s = sse_events(ca);
    assert_string_equal(s, "");
    free(s);
    store_run(f, "other", T0, 0);
    assert_int_equal(store_flow_set_paused(f->st, "daily", 1, time_now_us(), &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "other", 1, time_now_us(), &err), 0);
    api_notify(f->api);
    api_notify(f->api);                /* nothing new: nothing sent twice */
    char *ea = sse_events(ca), *eb = sse_events(cb), *ed = sse_events(cd);
    char want_a[64], want_b[128], want_d[192];
    snprintf(want_a, sizeof want_a, "%lld|flow.paused\n", (long long)mark + 2);
    snprintf(want_b, sizeof want_b, "%lld|run.queued\n%lld|flow.paused\n", (long long)mark + 1,
             (long long)mark + 3);
    snprintf(want_d, sizeof want_d, "%lld|run.queued\n%lld|flow.paused\n%lld|flow.paused\n",
             (long long)mark + 1, (long long)mark + 2, (long long)mark + 3);
    assert_string_equal(ea, want_a);
    assert_string_equal(eb, want_b);
    assert_string_equal(ed, want_d);
    free(ea);
    free(eb);
    free(ed);
    /* A client that went away is forgotten (its close callback ran). */
    http_conn_free_detached(cb);
    assert_int_equal(store_flow_set_paused(f->st, "daily", 0, time_now_us(), &err), 0);
    api_notify(f->api);
    ea = sse_events(ca);
    assert_non_null(strstr(ea, "|flow.unpaused\n"));
    free(ea);
    /* Resume with Last-Event-ID: what was missed, then live. */
    char *hdr = xasprintf("Last-Event-ID: %lld\r\n", (long long)mark);
    http_conn_t *cr = sse_open(f, ALICE, "/api/v1/events", hdr);
    free(hdr);
    char *er = sse_events(cr);
    char want_r[128];
    snprintf(want_r, sizeof want_r, "%lld|flow.paused\n%lld|flow.unpaused\n", (long long)mark + 2,
             (long long)mark + 4);
    assert_string_equal(er, want_r);
    free(er);
    /* ?after= works the same; the event data carries the members. */
    char *t = xasprintf("/api/v1/events?after=%lld", (long long)mark + 2);
    http_conn_t *cq = sse_open(f, ADMIN, t, NULL);
    free(t);
    er = sse_events(cq);
    char want_q[128];
    snprintf(want_q, sizeof want_q, "%lld|flow.paused\n%lld|flow.unpaused\n", (long long)mark + 3,
             (long long)mark + 4);
    assert_string_equal(er, want_q);
    free(er);
    const buf_t *out = http_conn_output(cq);
    assert_non_null(strstr(out->data, "\"flow\":\"other\""));
    assert_non_null(strstr(out->data, "\"kind\":\"flow.paused\""));
    http_conn_free_detached(cq);
    /* Live events reach the resumed client once, not twice. */
    assert_int_equal(store_flow_set_paused(f->st, "daily", 1, time_now_us(), &err), 0);
    api_notify(f->api);
    er = sse_events(cr);
    size_t n = 0;
    for (const char *p = er; (p = strstr(p, "|flow.paused")) != NULL; p++) n++;
    assert_int_equal(n, 2);
    free(er);
    /* Bad resume ids. */
    struct resp r;
    call(f, ALICE, "GET", "/api/v1/events?after=x", NULL, &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    /* ... even where Last-Event-ID wins (schemathesis: a negative after
     * beside a good Last-Event-ID was accepted). */
    char *auth = xasprintf("Authorization: Bearer %s\r\nLast-Event-ID: 1\r\n", f->tok[ALICE]);
    request_on(f, "GET", "/api/v1/events?after=-1", auth, NULL, &r, NULL);
    free(auth);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    auth = xasprintf("Authorization: Bearer %s\r\nLast-Event-ID:\r\n", f->tok[ALICE]);
    request_on(f, "GET", "/api/v1/events", auth, NULL, &r, NULL);
    free(auth);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    http_conn_free_detached(cr);
    /* Streams still open when the API goes away are ended properly. */
    api_events_close_all(f->api);
    assert_null(f->api->clients);
    out = http_conn_output(ca);
    assert_true(out->len >= 5 && memcmp(out->data + out->len - 5, "0\r\n\r\n", 5) == 0);
    http_conn_free_detached(ca);
    http_conn_free_detached(cd);
    fx_free(f);
}

/* ---- metrics, health, info ----------------------------------------------------- */

static void test_metrics(void **state)
{
    (void)state;
    fx_t *f = fx_new(1);
    const char *names[] = { "python3", "ir \"x\"" };
    const unsigned sizes[] = { 2, 1 };
    api_set_pool_sizes(f->api, names, sizes, 2);
    struct resp r;
    call(f, ADMIN, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    free(ct);
    /* Every line is a comment or "name{labels} value". */
    size_t samples = 0;
    char *save = NULL;
    char *text = xstrdup(r.body);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP nbhub_", 13) == 0 || strncmp(line, "# TYPE nbhub_", 13) == 0);
            continue;
        }
        assert_true(strncmp(line, "nbhub_", 6) == 0);
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        char *e;
        strtod(sp + 1, &e);
        if (*e) fail_msg("bad value in: %s", line);
        samples++;
    }
    free(text);
    assert_true(samples > 30);
    const char *want[] = {
        "# TYPE nbhub_runs gauge\n", "nbhub_runs{state=\"running\"} 1\n",
        "nbhub_runs{state=\"cancelled\"} 0\n",
        "# TYPE nbhub_task_runs gauge\n", "nbhub_task_runs{state=\"upstream_failed\"} 0\n",
        "# TYPE nbhub_task_duration_seconds histogram\n",
        "nbhub_task_duration_seconds_bucket{le=\"0.1\"} ",
        "nbhub_task_duration_seconds_bucket{le=\"1800\"} ",
        "nbhub_task_duration_seconds_bucket{le=\"+Inf\"} ",
        "nbhub_task_duration_seconds_sum ", "nbhub_task_duration_seconds_count ",
        "# TYPE nbhub_queue_depth gauge\n", "# TYPE nbhub_running_tasks gauge\n",
        "nbhub_running_tasks 1\n",
        "nbhub_kernel_pool_ready{kernel=\"python3\"} 0\n",
        "nbhub_kernel_pool_size{kernel=\"python3\"} 2\n",
        "nbhub_kernel_pool_size{kernel=\"ir \\\"x\\\"\"} 1\n",
        "nbhub_flows 1\n", "nbhub_webhooks_pending 0\n", "nbhub_webhooks_failed 0\n",
        "# HELP nbhub_http_connections ", "# TYPE nbhub_ticks_fired_total counter\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i])) fail_msg("metrics lack [%s]:\n%s", want[i], r.body);
    resp_free(&r);

    call(f, ALICE, "GET", "/api/v1/info", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "version"), "test-1.0");
    assert_string_equal(jstr(j, "home"), f->dir);
    assert_non_null(jstr(j, "started_at"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "pool"), "python3"), "size")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "running_tasks")), 1);
    json_decref(j);
    resp_free(&r);

    call(f, ANON, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    resp_free(&r);
    api_set_stopping(f->api);
    call(f, ANON, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"stopping\"}");
    resp_free(&r);
    fx_free(f);
}

/* ---- flows (through the scheduler) ------------------------------------------------ */

static void post_yaml(fx_t *f, int who, const char *target, const char *yaml, struct resp *r)
{
    char *h = auth_of(f, who);
    char *h2 = xasprintf("%sContent-Type: application/yaml\r\n", h);
    request_on(f, "POST", target, h2, yaml, r, NULL);
    free(h);
    free(h2);
}

static void test_flows(void **state)
{
    (void)state;
    fx_t *f = fx_new(1);
    struct resp r;
    /* Apply: new (201), same again (200, unchanged), changed (200). */
    const char *y1 = "name: weekly\ndescription: one\ntasks:\n  a: {command: [\"true\"]}\n";
    post_yaml(f, BOB, "/api/v1/flows", y1, &r);
    assert_int_equal(r.status, 201);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "name"), "weekly");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    assert_true(json_is_true(json_object_get(j, "changed")));
    json_decref(j);
    resp_free(&r);
    post_yaml(f, BOB, "/api/v1/flows", y1, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_true(json_is_false(json_object_get(j, "changed")));
    json_decref(j);
    resp_free(&r);
    /* Dry run of a change: 200, nothing changes. */
    const char *y2 = "name: weekly\ndescription: two\ntasks:\n  a: {command: [\"true\"]}\n";
    post_yaml(f, BOB, "/api/v1/flows?dry_run=1", y2, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_true(json_is_true(json_object_get(j, "dry_run")));
    json_decref(j);
    resp_free(&r);
    post_yaml(f, BOB, "/api/v1/flows", y2, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
    resp_free(&r);
    /* Invalid: 400 invalid_flow with positioned details. */
    post_yaml(f, BOB, "/api/v1/flows", "name: broken\ntasks:\n  a: {command: [\"true\"], after: [zz]}\n", &r);
    expect_error(&r, 400, "invalid_flow");
    j = resp_json(&r);
    json_t *details = json_object_get(json_object_get(j, "error"), "details");
    assert_true(json_array_size(details) >= 1);
    assert_non_null(strstr(json_string_value(json_array_get(details, 0)), ":3:"));
    json_decref(j);
    resp_free(&r);
    post_yaml(f, BOB, "/api/v1/flows", "", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    /* Ownership: bob may not take alice's flow, nor name alice as owner. */
    post_yaml(f, BOB, "/api/v1/flows", FLOW_YAML, &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);
    post_yaml(f, BOB, "/api/v1/flows", "name: gift\nowner: alice\ntasks:\n  a: {command: [\"true\"]}\n", &r);
    expect_error(&r, 403, "forbidden");
    resp_free(&r);

    /* Lists: each sees their own, admin all (plus broken files). */
    call(f, BOB, "GET", "/api/v1/flows", NULL, &r);
    j = resp_json(&r);
    json_t *flows = json_object_get(j, "flows");
    assert_int_equal(json_array_size(flows), 1);
    json_t *w = json_array_get(flows, 0);
    assert_string_equal(jstr(w, "name"), "weekly");
    assert_string_equal(jstr(w, "owner"), "bob");
    assert_string_equal(jstr(w, "description"), "two");
    assert_true(json_is_null(json_object_get(w, "schedule")));
    assert_true(json_is_null(json_object_get(w, "next_run")));
    assert_true(json_is_null(json_object_get(w, "last_run")));
    assert_int_equal(json_integer_value(json_object_get(w, "tasks")), 1);
    assert_int_equal(json_array_size(json_object_get(w, "errors")), 0);
    assert_null(json_object_get(j, "broken"));
    json_decref(j);
    resp_free(&r);
    call(f, ADMIN, "GET", "/api/v1/flows", NULL, &r);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "flows")), 2);
    assert_true(json_is_array(json_object_get(j, "broken")));
    json_decref(j);
    resp_free(&r);

    /* One flow with its spec; summary fields from the scheduler. */
    call(f, ALICE, "GET", "/api/v1/flows/daily", NULL, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_string_equal(jstr(j, "schedule"), "0 5 * * *");
    assert_string_equal(jstr(j, "timezone"), "Europe/Berlin");
    assert_string_equal(jstr(j, "owner"), "alice");
    assert_non_null(jstr(j, "next_run"));
    assert_non_null(strstr(jstr(j, "next_run"), ":00:00Z"));
    json_t *lr = json_object_get(j, "last_run");
    assert_int_equal(json_integer_value(json_object_get(lr, "id")), f->run);
    assert_string_equal(jstr(json_object_get(j, "spec"), "name"), "daily");
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "spec"), "tasks")), 2);
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "GET", "/api/v1/flows/weekly", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);

    /* Pause twice, resume. */
    for (int i = 0; i < 2; i++) {
        call(f, ALICE, "POST", "/api/v1/flows/daily/pause", NULL, &r);
        assert_int_equal(r.status, 200);
        j = resp_json(&r);
        assert_true(json_is_true(json_object_get(j, "paused")));
        assert_true(json_is_null(json_object_get(j, "next_run")));
        json_decref(j);
        resp_free(&r);
    }
    call(f, ALICE, "POST", "/api/v1/flows/daily/resume", NULL, &r);
    j = resp_json(&r);
    assert_true(json_is_false(json_object_get(j, "paused")));
    json_decref(j);
    resp_free(&r);

    /* Trigger and backfill take only the members they document. */
    call(f, ALICE, "POST", "/api/v1/flows/daily/runs", "{\"parms\": {\"n\": 1}}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/backfill", "{\"from\": \"2026-01-01\", \"to\": \"2026-01-01\", \"x\": 1}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);

    /* Trigger: 201 Run with tasks, params merged, triggered_by. */
    call(f, ALICE, "POST", "/api/v1/flows/daily/runs",
         "{\"params\": {\"n\": 5}, \"logical_date\": \"2026-03-01T10:00\"}", &r);
    assert_int_equal(r.status, 201);
    j = resp_json(&r);
    assert_string_equal(jstr(j, "kind"), "manual");
    assert_string_equal(jstr(j, "triggered_by"), "alice");
    assert_string_equal(jstr(j, "logical_date"), "2026-03-01T09:00:00Z");   /* Berlin, CET */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "params"), "n")), 5);
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 2);
    int64_t run2 = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/runs", "{\"params\": {\"nope\": 1}}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/runs", "{\"params\": 3}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/runs", "{\"logical_date\": \"yesterday\"}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);

    /* Backfill: dates in Berlin, `to` inclusive; again: all skipped. */
    call(f, ALICE, "POST", "/api/v1/flows/daily/backfill", "{\"from\": \"2026-01-01\", \"to\": \"2026-01-03\"}", &r);
    assert_int_equal(r.status, 201);
    j = resp_json(&r);
    json_t *runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 3);
    assert_string_equal(jstr(json_array_get(runs, 0), "logical_date"), "2026-01-01T04:00:00Z");
    assert_string_equal(jstr(json_array_get(runs, 2), "logical_date"), "2026-01-03T04:00:00Z");
    assert_string_equal(jstr(json_array_get(runs, 0), "kind"), "backfill");
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/backfill", "{\"from\": \"2026-01-01\", \"to\": \"2026-01-03\"}", &r);
    assert_int_equal(r.status, 201);
    j = resp_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 0);
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/backfill", "{\"from\": \"2026-01-05\", \"to\": \"2026-01-01\"}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/backfill", "{\"from\": \"2026-01-05\"}", &r);
    expect_error(&r, 400, "bad_request");
    resp_free(&r);
    call(f, BOB, "POST", "/api/v1/flows/weekly/backfill", "{\"from\": \"2026-01-01\", \"to\": \"2026-01-02\"}", &r);
    expect_error(&r, 400, "bad_request");            /* no schedule */
    resp_free(&r);

    /* Cancel a task, a run; again: 409. */
    char *p = xasprintf("/api/v1/runs/%lld/tasks/extract/cancel", (long long)f->run);
    call(f, ALICE, "POST", p, NULL, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_string_equal(jstr(j, "name"), "extract");
    assert_string_equal(jstr(j, "error"), "cancelled");
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "POST", p, NULL, &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    free(p);
    p = xasprintf("/api/v1/runs/%lld/tasks/nope/cancel", (long long)f->run);
    call(f, ALICE, "POST", p, NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    free(p);
    p = xasprintf("/api/v1/runs/%lld/cancel", (long long)run2);
    call(f, ADMIN, "POST", p, NULL, &r);
    assert_int_equal(r.status, 200);
    j = resp_json(&r);
    assert_string_equal(jstr(j, "state"), "cancelled");
    json_decref(j);
    resp_free(&r);
    call(f, ADMIN, "POST", p, NULL, &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    free(p);

    /* Delete: 409 while runs are in flight (the backfill's); else 204 and
     * the file is gone from the flows directory. */
    call(f, ALICE, "DELETE", "/api/v1/flows/daily", NULL, &r);
    expect_error(&r, 409, "conflict");
    resp_free(&r);
    call(f, BOB, "DELETE", "/api/v1/flows/weekly", NULL, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    call(f, BOB, "GET", "/api/v1/flows/weekly", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    char fp[160];
    snprintf(fp, sizeof fp, "%s/weekly.yaml", f->flows);
    assert_false(fs_exists(fp));
    fx_free(f);
}

/* ---- misc -------------------------------------------------------------------------- */

static void test_router_errors(void **state)
{
    (void)state;
    fx_t *f = fx_new(0);
    struct resp r;
    call(f, ALICE, "GET", "/api/v1/nothing", NULL, &r);
    expect_error(&r, 404, "not_found");
    resp_free(&r);
    call(f, ALICE, "PATCH", "/api/v1/me", NULL, &r);
    expect_error(&r, 405, "method_not_allowed");
    resp_free(&r);
    /* Without a scheduler, flow reads come from the store, writes 503. */
    call(f, ALICE, "GET", "/api/v1/flows/daily", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "timezone"), "Europe/Berlin");
    assert_int_equal(json_integer_value(json_object_get(j, "tasks")), 2);
    json_decref(j);
    resp_free(&r);
    call(f, ALICE, "POST", "/api/v1/flows/daily/pause", NULL, &r);
    expect_error(&r, 503, "unavailable");
    resp_free(&r);
    fx_free(f);
}

static void test_json_times(void **state)
{
    (void)state;
    char buf[48];
    api_json_time_fmt(T0, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-22T05:00:00Z");
    api_json_time_fmt(T0 + 123456, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-22T05:00:00.123456Z");
    api_json_time_fmt(T0 + 1, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-22T05:00:00.000001Z");
    api_json_time_fmt(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
    json_t *n = api_json_time(0);
    assert_true(json_is_null(n));
    json_decref(n);

    int64_t us;
    int d;
    assert_int_equal(api_json_parse_time("2026-11-22", NULL, &us, &d), 0);
    assert_int_equal(us, T0 - 5 * 3600000000LL);
    assert_true(d);
    assert_int_equal(api_json_parse_time("2026-11-22T05:00:00.5Z", NULL, &us, &d), 0);
    assert_int_equal(us, T0 + 500000);
    assert_false(d);
    assert_int_equal(api_json_parse_time("2026-11-22T06:00+01:00", NULL, &us, NULL), 0);
    assert_int_equal(us, T0);
    tz_t *tz;
    assert_int_equal(tz_load("Europe/Berlin", &tz, NULL), 0);
    assert_int_equal(api_json_parse_time("2026-11-22 06:00:00", tz, &us, NULL), 0);
    assert_int_equal(us, T0);
    assert_int_equal(api_json_parse_time("2026-11-22T05:00:00Z", tz, &us, NULL), 0);
    assert_int_equal(us, T0);
    tz_free(tz);
    const char *bad[] = { "", "2026", "2026-13-01", "2026-02-30", "2026-01-01T25:00", "2026-01-01T", "2026-01-01Z",
                          "2026-01-01T10:00:00.", "2026-01-01T10:00:00+2", "x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (api_json_parse_time(bad[i], NULL, &us, NULL) != -EINVAL) fail_msg("accepted %s", bad[i]);
    assert_true(api_users_name_valid("alice.b-c@x_y"));
    assert_false(api_users_name_valid("_alice"));
    assert_false(api_users_name_valid("a:b"));
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(api_users_name_valid(long_name));
}

/* The lockout's client key: port dropped, IPv6 per /64, mapped IPv4 as IPv4. */
static void test_peer_key(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "192.0.2.1:5342", "192.0.2.1" },
        { "127.0.0.2:1", "127.0.0.2" },
        { "[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64" },
        { "[2001:db8:1:2:ffff::9]:443", "2001:db8:1:2::/64" },
        { "[::1]:8765", "::/64" },
        { "[::ffff:198.51.100.7]:80", "198.51.100.7" },
        { "unix", "unix" },
        { "?", "?" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[64];
        api_auth_peer_key(cases[i][0], key, sizeof key);
        assert_string_equal(key, cases[i][1]);
    }
}

int main(void)
{
    log_set_level(LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_key),
        cmocka_unit_test(test_json_times),
        cmocka_unit_test(test_openapi),
        cmocka_unit_test(test_body_contract),
        cmocka_unit_test(test_auth_tokens),
        cmocka_unit_test(test_login_csrf),
        cmocka_unit_test(test_secure_cookie),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_runs_pagination),
        cmocka_unit_test(test_run_get_and_files),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_router_errors),
        cmocka_unit_test(test_flows),
        cmocka_unit_test(test_route_matrix),
        cmocka_unit_test(test_token_kinds_confined),
        cmocka_unit_test(test_hub_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
