/* Unit tests for the store layer: migrations, every transition from the
 * right and the wrong state, exactly-once ticks across reopen, retries,
 * cancel, crash recovery with forked writers killed mid-transaction, events,
 * pagination, auth, and a printed (not asserted) benchmark of the cost of a
 * transition with synchronous=FULL.
 *
 * Each test gets a fresh temporary directory with its own nbhub.db. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NBHUB_STORE_INTERNAL
#include "store/store.h"
#include "store/store_auth.h"
#include "store/store_groups.h"
#include "store/store_flows.h"
#include "store/store_runs.h"

#define T0 1795323600000000LL /* 2026-11-22T05:00:00Z */
#define HOUR 3600000000LL

typedef struct fx {
    char     dir[64];
    char     path[128];
    store_t *st;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nbhub-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/nbhub.db", f->dir);
    nb_err_t err;
    if (store_open(f->path, &f->st, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static void rm_db(const char *dir)
{
    static const char *const sfx[] = { "nbhub.db", "nbhub.db-wal", "nbhub.db-shm",
                                       "other.db", "other.db-wal", "other.db-shm" };
    char p[160];
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->st);
    rm_db(f->dir);
    free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    nb_err_t err;
    store_close(f->st);
    f->st = NULL;
    int rc = store_open(f->path, &f->st, &err);
    if (rc) fprintf(stderr, "reopen: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void add_flow(store_t *st, const char *name, int64_t owner)
{
    store_flow_in_t in = { name, owner, "{\"tasks\":[\"a\",\"b\"]}", "/flows/x.yaml", "h1" };
    nb_err_t err;
    int rc = store_flow_upsert(st, &in, T0, NULL, NULL, &err);
    if (rc) fprintf(stderr, "upsert: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static const store_task_spec_t two_tasks[] = { { "a", 1 }, { "b", 3 } };

static int fire(store_t *st, const char *flow, store_run_kind_t kind, int64_t logical,
                int64_t *run, nb_err_t *err)
{
    store_fire_t fi = { .flow = flow, .kind = kind, .logical_us = logical,
                        .params_json = "{\"x\":1}", .tasks = two_tasks, .ntasks = 2 };
    return store_tick_fire(st, &fi, T0, run, err);
}

/* The task_run id of `task` in `run`. */
static int64_t task_id(store_t *st, int64_t run, const char *task)
{
    store_run_t r;
    store_task_runs_t ts;
    assert_int_equal(store_run_get(st, run, &r, &ts, NULL), 0);
    int64_t id = 0;
    for (size_t i = 0; i < ts.n; i++)
        if (strcmp(ts.v[i].task, task) == 0) id = ts.v[i].id;
    store_run_clear(&r);
    store_task_runs_free(&ts);
    assert_true(id > 0);
    return id;
}

static store_task_state_t task_state(store_t *st, int64_t id)
{
    store_task_run_t t;
    assert_int_equal(store_task_run_get(st, id, &t, NULL), 0);
    store_task_state_t s = t.state;
    store_task_run_clear(&t);
    return s;
}

static store_run_state_t run_state(store_t *st, int64_t id)
{
    store_run_t r;
    assert_int_equal(store_run_get(st, id, &r, NULL, NULL), 0);
    store_run_state_t s = r.state;
    store_run_clear(&r);
    return s;
}

static int64_t count_sql(store_t *st, const char *sql)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static int64_t last_event(store_t *st)
{
    int64_t id;
    assert_int_equal(store_events_last_id(st, &id, NULL), 0);
    return id;
}

/* ---- open / migrations ---------------------------------------------------- */

static void test_open_fresh(void **state)
{
    fx_t *f = *state;
    assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM sqlite_schema WHERE type='table' "
                                      "AND name IN ('users','api_tokens','sessions','flows',"
                                      "'ticks','runs','task_runs','webhook_deliveries','events')"),
                     9);
    assert_int_equal(count_sql(f->st, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(count_sql(f->st, "PRAGMA foreign_keys"), 1);
    assert_int_equal(count_sql(f->st, "PRAGMA busy_timeout"), 5000);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(store_db(f->st), "PRAGMA journal_mode", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_reopen_idempotent(void **state)
{
    fx_t *f = *state;
    add_flow(f->st, "f1", 0);
    int64_t before = count_sql(f->st, "SELECT count(*) FROM sqlite_schema");
    reopen(f);
    reopen(f);
    assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM sqlite_schema"), before);
    store_flow_t fl;
    assert_int_equal(store_flow_get(f->st, "f1", 0, &fl, NULL), 0);
    assert_int_equal(fl.version, 1);
    store_flow_clear(&fl);
}

static void test_newer_version_refused(void **state)
{
    fx_t *f = *state;
    assert_int_equal(sqlite3_exec(store_db(f->st), "PRAGMA user_version=99", 0, 0, 0), SQLITE_OK);
    store_close(f->st);
    f->st = NULL;
    nb_err_t err;
    assert_int_equal(store_open(f->path, &f->st, &err), -ENOTSUP);
    assert_null(f->st);
    assert_non_null(strstr(err.msg, "newer nbhub"));
    assert_non_null(strstr(err.msg, "99"));
    /* nothing was touched: still 99 */
    sqlite3 *db;
    sqlite3_open(f->path, &db);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    sqlite3_step(s);
    assert_int_equal(sqlite3_column_int(s, 0), 99);
    sqlite3_finalize(s);
    char reset[64];
    snprintf(reset, sizeof reset, "PRAGMA user_version=%d", STORE_SCHEMA_VERSION);
    sqlite3_exec(db, reset, 0, 0, 0);
    sqlite3_close(db);
    reopen(f);
}

static void test_foreign_db_refused(void **state)
{
    fx_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/other.db", f->dir);
    sqlite3 *db;
    sqlite3_open(p, &db);
    sqlite3_exec(db, "CREATE TABLE mine(x)", 0, 0, 0);
    sqlite3_close(db);
    store_t *st = NULL;
    nb_err_t err;
    assert_int_equal(store_open(p, &st, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not an nbhub database"));
    assert_int_equal(store_open("/nonexistent-dir/x.db", &st, &err), -ENOENT);
}

/* ---- flows ------------------------------------------------------------------ */

static void test_flow_upsert_versions(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t v;
    int changed;
    store_flow_in_t in = { "etl", 0, "{\"v\":1}", "/a.yaml", "h1" };
    assert_int_equal(store_flow_upsert(f->st, &in, T0, &v, &changed, &err), 0);
    assert_int_equal(v, 1);
    assert_true(changed);
    int64_t ev = last_event(f->st);
    in.source_hash = "h2";
    assert_int_equal(store_flow_upsert(f->st, &in, T0 + 1, &v, &changed, &err), 0);
    assert_int_equal(v, 1);
    assert_false(changed);
    assert_int_equal(last_event(f->st), ev); /* no event for no new version */
    in.spec_json = "{\"v\":2}";
    assert_int_equal(store_flow_upsert(f->st, &in, T0 + 2, &v, &changed, &err), 0);
    assert_int_equal(v, 2);
    assert_true(changed);
    store_flow_t fl;
    assert_int_equal(store_flow_get(f->st, "etl", 0, &fl, &err), 0);
    assert_string_equal(fl.spec_json, "{\"v\":2}");
    assert_string_equal(fl.source_hash, "h2");
    assert_int_equal(fl.created_at, T0);
    assert_int_equal(fl.updated_at, T0 + 2);
    assert_int_equal(fl.owner_id, 0);
    store_flow_clear(&fl);
    assert_int_equal(store_flow_get(f->st, "nope", 0, &fl, &err), -ENOENT);
    store_flow_in_t bad = { "", 0, "{}", NULL, NULL };
    assert_int_equal(store_flow_upsert(f->st, &bad, T0, NULL, NULL, &err), -EINVAL);
    /* owner must exist (foreign key) */
    store_flow_in_t orphan = { "o", 12345, "{}", NULL, NULL };
    assert_int_equal(store_flow_upsert(f->st, &orphan, T0, NULL, NULL, &err), -EINVAL);
}

static void test_flow_pause(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    assert_int_equal(store_flow_set_paused(f->st, "f", 1, T0, &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "f", 1, T0, &err), -ESTALE);
    assert_non_null(strstr(err.msg, "already paused"));
    /* paused: a scheduled tick is refused, manual/backfill allowed */
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, NULL, &err), -ESTALE);
    assert_int_equal(fire(f->st, "f", STORE_RUN_MANUAL, T0, NULL, &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "f", 0, T0, &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "f", 0, T0, &err), -ESTALE);
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, NULL, &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "missing", 1, T0, &err), -ENOENT);
}

static void test_flow_delete(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(store_flow_delete(f->st, "f", T0, &err), -EBUSY);
    assert_int_equal(store_run_cancel(f->st, run, T0, NULL, 0, NULL, &err), 0);
    assert_int_equal(store_flow_delete(f->st, "f", T0 + 5, &err), 0);
    assert_int_equal(store_flow_delete(f->st, "f", T0 + 5, &err), -ENOENT);
    store_flow_t fl;
    assert_int_equal(store_flow_get(f->st, "f", 0, &fl, &err), -ENOENT);
    assert_int_equal(store_flow_get(f->st, "f", 1, &fl, &err), 0);
    assert_int_equal(fl.deleted_at, T0 + 5);
    store_flow_clear(&fl);
    store_flows_t l;
    assert_int_equal(store_flows_list(f->st, 0, 0, &l, &err), 0);
    assert_int_equal(l.n, 0);
    store_flows_free(&l);
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0 + HOUR, NULL, &err), -ENOENT);
    /* Creating the name again makes a new incarnation: version 1, a new
     * id, none of the old runs or ticks; the old row and its run stay. */
    int64_t v;
    store_flow_in_t in = { "f", 0, "{\"tasks\":[\"a\",\"b\"]}", NULL, NULL };
    assert_int_equal(store_flow_upsert(f->st, &in, T0 + 6, &v, NULL, &err), 0);
    assert_int_equal(v, 1);
    store_flow_t now;
    assert_int_equal(store_flow_get(f->st, "f", 0, &now, &err), 0);
    assert_int_equal(now.incarnation, 2);
    assert_int_equal(now.deleted_at, 0);
    assert_int_equal(store_flow_get(f->st, "f", 1, &fl, &err), 0);
    assert_int_equal(fl.id, now.id);   /* the newest row is the live one */
    store_flow_clear(&fl);
    store_run_t r;
    assert_int_equal(store_run_get(f->st, run, &r, NULL, &err), 0);
    assert_int_equal(r.flow_version, 1);
    assert_true(r.flow_id != now.id);
    assert_int_equal(r.flow_incarnation, 1);
    store_flow_t old;
    assert_int_equal(store_flow_get_id(f->st, r.flow_id, &old, &err), 0);
    assert_int_equal(old.deleted_at, T0 + 5);
    assert_int_equal(old.incarnation, 1);
    store_flow_clear(&old);
    store_run_clear(&r);
    store_runs_t page;
    store_run_filter_t mine = { .flow_id = now.id, .state = -1, .limit = 10 };
    assert_int_equal(store_runs_list(f->st, &mine, &page, &err), 0);
    assert_int_equal(page.n, 0);
    store_runs_free(&page);
    store_run_filter_t byname = { .flow = "f", .state = -1, .limit = 10 };
    assert_int_equal(store_runs_list(f->st, &byname, &page, &err), 0);
    assert_int_equal(page.n, 1);
    store_runs_free(&page);
    /* the old tick is the old incarnation's: T0 fires again, same run_id */
    assert_int_equal(store_tick_last(f->st, "f", &v, &err), -ENOENT);
    int64_t run2;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run2, &err), 0);
    assert_int_equal(store_run_get(f->st, run2, &r, NULL, &err), 0);
    assert_int_equal(r.flow_id, now.id);
    assert_int_equal(r.flow_incarnation, 2);
    store_run_clear(&r);
    assert_int_equal(store_flows_list(f->st, 0, 0, &l, &err), 0);
    assert_int_equal(l.n, 1);
    store_flows_free(&l);
    assert_int_equal(store_flows_list(f->st, 1, 0, &l, &err), 0);
    assert_int_equal(l.n, 2);
    store_flows_free(&l);
    /* events name their incarnation */
    store_events_t ev;
    assert_int_equal(store_events_since(f->st, 0, 100, &ev, &err), 0);
    for (size_t i = 0; i < ev.n; i++)
        if (ev.v[i].run == run2) assert_int_equal(ev.v[i].flow_id, now.id);
    int64_t old_id = 0;
    for (size_t i = 0; i < ev.n; i++)
        if (strcmp(ev.v[i].kind, "flow.deleted") == 0) old_id = ev.v[i].flow_id;
    assert_true(old_id > 0 && old_id != now.id);
    for (size_t i = 0; i < ev.n; i++)
        if (ev.v[i].run == run) assert_int_equal(ev.v[i].flow_id, old_id);
    store_events_free(&ev);
    store_flow_clear(&now);
}

/* A database written by the previous schema (v2: flows keyed by name,
 * runs and ticks pointing at the name) upgrades in place: ids, runs, ticks,
 * task runs, webhooks and events kept, each name its incarnation 1. */
static void test_migrate_v2(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    store_close(f->st);
    f->st = NULL;
    char p[160];
    for (const char *const *x = (const char *const[]){ "", "-wal", "-shm", NULL }; *x; x++) {
        snprintf(p, sizeof p, "%s%s", f->path, *x);
        unlink(p);
    }
    assert_int_equal(store_open_at(f->path, 2, &f->st, &err), 0);
    assert_int_equal(store_schema_version(f->st), 2);
    const char *v2 =
        "INSERT INTO users(id, name, is_admin, created_at) VALUES (1, 'alice', 0, 0), "
        "  (2, 'bob', 0, 0);"
        "INSERT INTO flows(name, owner_id, spec_json, version, created_at, updated_at, "
        "  deleted_at) VALUES ('x', 1, '{}', 3, 0, 0, NULL), ('gone', 2, '{}', 1, 0, 0, 5);"
        "INSERT INTO runs(id, run_id, flow, kind, logical_us, state, flow_version, spec_json, "
        "  created_at) VALUES (7, 'scheduled__a', 'x', 'scheduled', 100, 'success', 3, '{}', 0),"
        "  (8, 'manual__b', 'gone', 'manual', 200, 'failed', 1, '{}', 0);"
        "INSERT INTO ticks(flow, logical_us, fired_at, run) VALUES ('x', 100, 0, 7);"
        "INSERT INTO task_runs(id, run, task, state, output_path, spark_app_id) "
        "  VALUES (11, 7, 'a', 'success', '/o', 'app-1'), (12, 8, 'a', 'failed', NULL, NULL);"
        "INSERT INTO webhook_deliveries(id, run, url, event, payload_json, next_attempt_at, "
        "  created_at) VALUES (21, 7, 'http://h', 'run.success', '{}', 0, 0);"
        "INSERT INTO events(at, kind, flow, run, json) VALUES (0, 'run.queued', 'x', 7, '{}'),"
        "  (0, 'flow.deleted', 'gone', NULL, '{}'), (0, 'store.recover', NULL, NULL, '{}');";
    char *msg = NULL;
    int rc = sqlite3_exec(store_db(f->st), v2, NULL, NULL, &msg);
    if (rc) fprintf(stderr, "v2: %s\n", msg);
    assert_int_equal(rc, SQLITE_OK);
    reopen(f);
    assert_int_equal(store_schema_version(f->st), STORE_SCHEMA_VERSION);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM sqlite_temp_schema"), 0);
    store_flow_t x, gone;
    assert_int_equal(store_flow_get(f->st, "x", 0, &x, &err), 0);
    assert_int_equal(x.incarnation, 1);
    assert_int_equal(x.owner_id, 1);
    assert_int_equal(x.version, 3);
    assert_int_equal(store_flow_get(f->st, "gone", 0, &gone, &err), -ENOENT);
    assert_int_equal(store_flow_get(f->st, "gone", 1, &gone, &err), 0);
    assert_int_equal(gone.deleted_at, 5);
    store_run_t r;
    store_task_runs_t ts;
    assert_int_equal(store_run_get(f->st, 7, &r, &ts, &err), 0);
    assert_int_equal(r.flow_id, x.id);
    assert_string_equal(r.flow, "x");
    assert_int_equal(ts.n, 1);
    assert_string_equal(ts.v[0].spark_app_id, "app-1");
    assert_string_equal(ts.v[0].output_path, "/o");
    store_run_clear(&r);
    store_task_runs_free(&ts);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM webhook_deliveries WHERE run = 7"), 1);
    int64_t last;
    assert_int_equal(store_tick_last(f->st, "x", &last, &err), 0);
    assert_int_equal(last, 100);
    assert_int_equal(fire(f->st, "x", STORE_RUN_SCHEDULED, 100, NULL, &err), -EEXIST);
    store_events_t ev;
    assert_int_equal(store_events_since(f->st, 0, 10, &ev, &err), 0);
    assert_int_equal(ev.n, 3);
    assert_int_equal(ev.v[0].flow_id, x.id);
    assert_int_equal(ev.v[1].flow_id, gone.id);
    assert_int_equal(ev.v[2].flow_id, 0);
    store_events_free(&ev);
    /* bob creates "gone" again: a new incarnation without run 8 */
    store_flow_in_t in = { "gone", 2, "{}", NULL, NULL };
    int64_t v;
    assert_int_equal(store_flow_upsert(f->st, &in, T0, &v, NULL, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(store_run_get(f->st, 8, &r, NULL, &err), 0);
    assert_int_equal(r.flow_id, gone.id);
    store_run_clear(&r);
    store_flow_t again;
    assert_int_equal(store_flow_get(f->st, "gone", 0, &again, &err), 0);
    assert_int_equal(again.incarnation, 2);
    assert_true(again.id != gone.id);
    store_flow_clear(&again);
    store_flow_clear(&x);
    store_flow_clear(&gone);
}

/* ---- ticks ------------------------------------------------------------------ */

static void test_run_id_format(void **state)
{
    (void)state;
    char b[96];
    store_run_id_format(STORE_RUN_SCHEDULED, T0, b, sizeof b);
    assert_string_equal(b, "scheduled__2026-11-22T05:00:00+00:00");
    store_run_id_format(STORE_RUN_MANUAL, T0 + 600123456LL, b, sizeof b);
    assert_string_equal(b, "manual__2026-11-22T05:10:00.123456+00:00");
    store_run_id_format(STORE_RUN_BACKFILL, -1, b, sizeof b);
    assert_string_equal(b, "backfill__1969-12-31T23:59:59.999999+00:00");
}

static void test_tick_exactly_once(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    add_flow(f->st, "g", 0);
    int64_t run, run2;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run2, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already fired"));
    /* same logical time, other flow: its own tick and the same run_id text */
    assert_int_equal(fire(f->st, "g", STORE_RUN_SCHEDULED, T0, &run2, &err), 0);
    reopen(f);
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, NULL, &err), -EEXIST);
    /* a backfill of an already-scheduled time is the same tick */
    assert_int_equal(fire(f->st, "f", STORE_RUN_BACKFILL, T0, NULL, &err), -EEXIST);
    assert_int_equal(fire(f->st, "f", STORE_RUN_BACKFILL, T0 - HOUR, NULL, &err), 0);
    /* manual runs record no tick; the same timestamp twice collides on run_id */
    assert_int_equal(fire(f->st, "f", STORE_RUN_MANUAL, T0, NULL, &err), 0);
    assert_int_equal(fire(f->st, "f", STORE_RUN_MANUAL, T0, NULL, &err), -EEXIST);
    assert_int_equal(fire(f->st, "f", STORE_RUN_MANUAL, T0 + 1, NULL, &err), 0);
    /* a refused fire created nothing: 4 runs for f, 1 for g, 2 tasks each */
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM runs WHERE flow='f'"), 4);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM task_runs"), 10);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM ticks"), 3);
    int64_t last;
    assert_int_equal(store_tick_last(f->st, "f", &last, &err), 0);
    assert_int_equal(last, T0);
    assert_int_equal(store_tick_last(f->st, "nope", &last, &err), -ENOENT);

    store_run_t r;
    store_task_runs_t ts;
    assert_int_equal(store_run_get(f->st, run, &r, &ts, &err), 0);
    assert_string_equal(r.run_id, "scheduled__2026-11-22T05:00:00+00:00");
    assert_int_equal(r.state, STORE_RUN_QUEUED);
    assert_int_equal(r.kind, STORE_RUN_SCHEDULED);
    assert_string_equal(r.spec_json, "{\"tasks\":[\"a\",\"b\"]}");
    assert_string_equal(r.params_json, "{\"x\":1}");
    assert_int_equal(ts.n, 2);
    assert_string_equal(ts.v[0].task, "a");
    assert_int_equal(ts.v[0].state, STORE_TASK_PENDING);
    assert_int_equal(ts.v[1].max_tries, 3);
    assert_int_equal(ts.v[1].try_number, 0);
    store_run_clear(&r);
    store_task_runs_free(&ts);
    assert_int_equal(store_run_get_by_run_id(f->st, "g", "scheduled__2026-11-22T05:00:00+00:00",
                                             &r, NULL, &err), 0);
    assert_int_equal(r.id, run2);
    store_run_clear(&r);

    /* bad input */
    store_task_spec_t dup[] = { { "a", 1 }, { "a", 1 } };
    store_fire_t fi = { .flow = "f", .kind = STORE_RUN_SCHEDULED, .logical_us = T0 + HOUR,
                        .tasks = dup, .ntasks = 2 };
    assert_int_equal(store_tick_fire(f->st, &fi, T0, NULL, &err), -EINVAL);
    assert_int_equal(store_tick_last(f->st, "f", &last, &err), 0);
    assert_int_equal(last, T0); /* rolled back with the duplicate task */
    fi.ntasks = 0;
    assert_int_equal(store_tick_fire(f->st, &fi, T0, NULL, &err), -EINVAL);
    assert_int_equal(fire(f->st, "nope", STORE_RUN_SCHEDULED, T0, NULL, &err), -ENOENT);
}

/* ---- transitions -------------------------------------------------------------- */

static void test_transitions_happy_and_wrong(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    int64_t a = task_id(f->st, run, "a"), b = task_id(f->st, run, "b");

    /* run not started yet: tasks cannot move */
    assert_int_equal(store_task_queue(f->st, a, T0, &err), -ESTALE);
    assert_non_null(strstr(err.msg, "not running"));
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_SUCCESS, T0, NULL, 0, &err), -ESTALE);
    assert_int_equal(store_run_start(f->st, run, T0 + 1, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0 + 1, &err), -ESTALE);
    assert_int_equal(store_run_start(f->st, 999, T0 + 1, &err), -ENOENT);

    assert_int_equal(store_task_start(f->st, a, 42, 7, NULL, NULL, T0, &err), -ESTALE);
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_SUCCESS, 0, NULL, 0, T0, NULL, &err),
                     -ESTALE);
    assert_int_equal(store_task_queue(f->st, a, T0 + 2, &err), 0);
    assert_int_equal(store_task_queue(f->st, a, T0 + 2, &err), -ESTALE);
    assert_non_null(strstr(err.msg, "it is queued, not pending"));
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_SUCCESS, 0, NULL, 0, T0, NULL, &err),
                     -ESTALE);
    assert_int_equal(store_task_start(f->st, a, 4242, 123456, "/out/a.ipynb", "/log/a.log",
                                      T0 + 3, &err), 0);
    assert_int_equal(store_task_start(f->st, a, 4242, 123456, NULL, NULL, T0 + 3, &err), -ESTALE);
    assert_int_equal(store_task_skip(f->st, a, STORE_TASK_SKIPPED, NULL, T0, &err), -ESTALE);

    store_task_run_t t;
    assert_int_equal(store_task_run_get(f->st, a, &t, &err), 0);
    assert_int_equal(t.state, STORE_TASK_RUNNING);
    assert_int_equal(t.try_number, 1);
    assert_int_equal(t.pid, 4242);
    assert_int_equal(t.pid_start_time, 123456);
    assert_string_equal(t.output_path, "/out/a.ipynb");
    assert_string_equal(t.log_path, "/log/a.log");
    assert_int_equal(t.queued_at, T0 + 2);
    assert_int_equal(t.started_at, T0 + 3);
    assert_false(t.has_exit_code);
    store_task_run_clear(&t);

    /* unfinished tasks: the run cannot finish */
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_SUCCESS, T0, NULL, 0, &err), -EBUSY);
    assert_non_null(strstr(err.msg, "2 task(s) not finished"));

    store_task_state_t ns;
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_SUCCESS, 0, NULL, 0, T0 + 4, &ns,
                                       &err), 0);
    assert_int_equal(ns, STORE_TASK_SUCCESS);
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_SUCCESS, 0, NULL, 0, T0, NULL, &err),
                     -ESTALE);
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_SKIPPED, 0, NULL, 0, T0, NULL, &err),
                     -EINVAL);
    assert_int_equal(store_task_run_get(f->st, a, &t, &err), 0);
    assert_true(t.has_exit_code);
    assert_int_equal(t.exit_code, 0);
    assert_int_equal(t.ended_at, T0 + 4);
    store_task_run_clear(&t);

    assert_int_equal(store_task_skip(f->st, b, STORE_TASK_RUNNING, NULL, T0, &err), -EINVAL);
    assert_int_equal(store_task_skip(f->st, b, STORE_TASK_SKIPPED, "branch not taken", T0 + 5,
                                     &err), 0);
    assert_int_equal(store_task_skip(f->st, b, STORE_TASK_SKIPPED, NULL, T0, &err), -ESTALE);
    assert_int_equal(store_task_queue(f->st, b, T0, &err), -ESTALE);
    assert_int_equal(store_task_run_get(f->st, b, &t, &err), 0);
    assert_int_equal(t.state, STORE_TASK_SKIPPED);
    assert_string_equal(t.error, "branch not taken");
    store_task_run_clear(&t);

    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_CANCELLED, T0, NULL, 0, &err),
                     -EINVAL);
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_SUCCESS, T0 + 6, NULL, 0, &err), 0);
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_FAILED, T0 + 6, NULL, 0, &err),
                     -ESTALE);
    assert_int_equal(store_run_cancel(f->st, run, T0, NULL, 0, NULL, &err), -ESTALE);
    assert_int_equal(store_run_start(f->st, run, T0, &err), -ESTALE);
    store_run_t r;
    assert_int_equal(store_run_get(f->st, run, &r, NULL, &err), 0);
    assert_int_equal(r.state, STORE_RUN_SUCCESS);
    assert_int_equal(r.started_at, T0 + 1);
    assert_int_equal(r.ended_at, T0 + 6);
    store_run_clear(&r);

    /* queued -> failed is allowed (nothing could start), queued -> success not */
    int64_t run2;
    store_task_spec_t one = { "only", 1 };
    store_fire_t fi = { .flow = "f", .kind = STORE_RUN_MANUAL, .logical_us = T0 + 10,
                        .tasks = &one, .ntasks = 1 };
    assert_int_equal(store_tick_fire(f->st, &fi, T0, &run2, &err), 0);
    int64_t o = task_id(f->st, run2, "only");
    assert_int_equal(store_run_start(f->st, run2, T0, &err), 0);
    assert_int_equal(store_task_queue(f->st, o, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, o, 1, 1, NULL, NULL, T0, &err), 0);
    /* failure with no retry time: failed even though... max_tries is 1 anyway */
    assert_int_equal(store_task_finish(f->st, o, STORE_TASK_FAILED, 3, "boom", T0 + 99, T0, &ns,
                                       &err), 0);
    assert_int_equal(ns, STORE_TASK_FAILED);
    assert_int_equal(store_run_finish(f->st, run2, STORE_RUN_FAILED, T0, NULL, 0, &err), 0);
}

/* Two connections race for the same transition: exactly one wins. */
static void test_two_connections_race(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    store_t *st2;
    assert_int_equal(store_open(f->path, &st2, &err), 0);
    assert_int_equal(store_run_start(st2, run, T0, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), -ESTALE);
    int64_t a = task_id(f->st, run, "a");
    assert_int_equal(store_task_queue(f->st, a, T0, &err), 0);
    assert_int_equal(store_task_queue(st2, a, T0, &err), -ESTALE);
    assert_int_equal(task_state(st2, a), STORE_TASK_QUEUED);
    store_close(st2);
}

static void test_retry_flow(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    int64_t b = task_id(f->st, run, "b"); /* max_tries 3 */
    store_task_state_t ns;
    store_task_runs_t due;

    assert_int_equal(store_task_queue(f->st, b, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, b, 10, 100, NULL, "/l1", T0 + 1, &err), 0);
    assert_int_equal(store_task_finish(f->st, b, STORE_TASK_FAILED, 1, "try 1 failed", T0 + 60,
                                       T0 + 2, &ns, &err), 0);
    assert_int_equal(ns, STORE_TASK_UP_FOR_RETRY);
    store_task_run_t t;
    assert_int_equal(store_task_run_get(f->st, b, &t, &err), 0);
    assert_int_equal(t.next_retry_at, T0 + 60);
    assert_string_equal(t.error, "try 1 failed");
    store_task_run_clear(&t);
    /* an up_for_retry task cannot be started, queued or skipped directly */
    assert_int_equal(store_task_start(f->st, b, 1, 1, NULL, NULL, T0, &err), -ESTALE);
    assert_int_equal(store_task_queue(f->st, b, T0, &err), -ESTALE);
    assert_int_equal(store_task_skip(f->st, b, STORE_TASK_UPSTREAM_FAILED, NULL, T0, &err),
                     -ESTALE);
    /* the run is not finished while a retry is pending */
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_FAILED, T0, NULL, 0, &err), -EBUSY);

    assert_int_equal(store_task_retry_due(f->st, T0 + 59, 10, &due, &err), 0);
    assert_int_equal(due.n, 0);
    store_task_runs_free(&due);
    assert_int_equal(store_task_retry_due(f->st, T0 + 60, 10, &due, &err), 0);
    assert_int_equal(due.n, 1);
    assert_int_equal(due.v[0].id, b);
    assert_int_equal(due.v[0].state, STORE_TASK_QUEUED);
    assert_int_equal(due.v[0].try_number, 1);
    store_task_runs_free(&due);
    assert_int_equal(task_state(f->st, b), STORE_TASK_QUEUED);
    assert_int_equal(store_task_retry_due(f->st, T0 + 61, 10, &due, &err), 0);
    assert_int_equal(due.n, 0);
    store_task_runs_free(&due);

    assert_int_equal(store_task_start(f->st, b, 11, 101, NULL, "/l2", T0 + 61, &err), 0);
    assert_int_equal(store_task_run_get(f->st, b, &t, &err), 0);
    assert_int_equal(t.try_number, 2);
    assert_int_equal(t.pid, 11);
    assert_null(t.error);          /* the previous try's error is cleared */
    assert_false(t.has_exit_code);
    assert_int_equal(t.next_retry_at, 0);
    store_task_run_clear(&t);
    /* a failure with no retry time given is final even with tries left */
    assert_int_equal(store_task_finish(f->st, b, STORE_TASK_SUCCESS, 0, NULL, 0, T0 + 62, &ns,
                                       &err), 0);
    assert_int_equal(ns, STORE_TASK_SUCCESS);

    /* exhausting the tries: a (max_tries 1) fails for good despite retry_at */
    int64_t a = task_id(f->st, run, "a");
    assert_int_equal(store_task_queue(f->st, a, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, a, 1, 1, NULL, NULL, T0, &err), 0);
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_FAILED, -9, "killed", T0 + 100, T0,
                                       &ns, &err), 0);
    assert_int_equal(ns, STORE_TASK_FAILED);
    assert_int_equal(store_task_run_get(f->st, a, &t, &err), 0);
    assert_int_equal(t.exit_code, -9);
    assert_int_equal(t.next_retry_at, 0);
    store_task_run_clear(&t);
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_FAILED, T0, NULL, 0, &err), 0);
    assert_int_equal(store_task_retry_due(f->st, T0, 0, &due, &err), -EINVAL);
}

/* Retries of a cancelled run never come due. */
static void test_retry_not_due_after_cancel(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    int64_t b = task_id(f->st, run, "b");
    assert_int_equal(store_task_queue(f->st, b, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, b, 1, 1, NULL, NULL, T0, &err), 0);
    assert_int_equal(store_task_finish(f->st, b, STORE_TASK_FAILED, 1, NULL, T0 + 5, T0, NULL,
                                       &err), 0);
    store_task_runs_t running;
    assert_int_equal(store_run_cancel(f->st, run, T0 + 1, NULL, 0, &running, &err), 0);
    assert_int_equal(running.n, 0);
    store_task_runs_free(&running);
    store_task_runs_t due;
    assert_int_equal(store_task_retry_due(f->st, T0 + 10, 10, &due, &err), 0);
    assert_int_equal(due.n, 0);
    store_task_runs_free(&due);
    assert_int_equal(task_state(f->st, b), STORE_TASK_CANCELLED);
}

static void test_cancel_returns_running(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    store_task_spec_t four[] = { { "done", 1 }, { "run1", 1 }, { "run2", 2 }, { "wait", 1 } };
    store_fire_t fi = { .flow = "f", .kind = STORE_RUN_SCHEDULED, .logical_us = T0,
                        .tasks = four, .ntasks = 4 };
    int64_t run;
    assert_int_equal(store_tick_fire(f->st, &fi, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    int64_t d = task_id(f->st, run, "done"), r1 = task_id(f->st, run, "run1"),
            r2 = task_id(f->st, run, "run2"), w = task_id(f->st, run, "wait");
    assert_int_equal(store_task_queue(f->st, d, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, d, 100, 1000, NULL, NULL, T0, &err), 0);
    assert_int_equal(store_task_finish(f->st, d, STORE_TASK_SUCCESS, 0, NULL, 0, T0, NULL, &err),
                     0);
    assert_int_equal(store_task_queue(f->st, r1, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, r1, 101, 1001, NULL, NULL, T0, &err), 0);
    assert_int_equal(store_task_queue(f->st, r2, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, r2, 102, 1002, NULL, NULL, T0, &err), 0);
    (void)w;

    store_hook_t hook = { "http://127.0.0.1:9/hook", "run.cancelled", "{\"run\":1}" };
    store_task_runs_t running;
    assert_int_equal(store_run_cancel(f->st, run, T0 + 7, &hook, 1, &running, &err), 0);
    assert_int_equal(running.n, 2);
    assert_int_equal(running.v[0].pid, 101);
    assert_int_equal(running.v[0].pid_start_time, 1001);
    assert_string_equal(running.v[1].task, "run2");
    assert_int_equal(running.v[1].pid, 102);
    store_task_runs_free(&running);

    assert_int_equal(run_state(f->st, run), STORE_RUN_CANCELLED);
    assert_int_equal(task_state(f->st, d), STORE_TASK_SUCCESS);
    assert_int_equal(task_state(f->st, r1), STORE_TASK_CANCELLED);
    assert_int_equal(task_state(f->st, w), STORE_TASK_CANCELLED);
    /* the killed child's exit report arrives later and is refused */
    assert_int_equal(store_task_finish(f->st, r1, STORE_TASK_FAILED, -15, NULL, 0, T0, NULL, &err),
                     -ESTALE);
    assert_int_equal(store_run_cancel(f->st, run, T0, NULL, 0, &running, &err), -ESTALE);
    assert_int_equal(running.n, 0);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM webhook_deliveries"), 1);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM events WHERE kind='task.cancelled'"), 3);
    assert_int_equal(store_run_cancel(f->st, 4242, T0, NULL, 0, NULL, &err), -ENOENT);
}

/* One task cancelled while the run goes on: any non-terminal state, once. */
static void test_task_cancel(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    int64_t b = task_id(f->st, run, "b");
    /* the run must be running */
    assert_int_equal(store_task_cancel(f->st, b, "cancelled", T0, NULL, &err), -ESTALE);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    assert_int_equal(store_task_queue(f->st, b, T0, &err), 0);
    assert_int_equal(store_task_start(f->st, b, 7, 70, NULL, NULL, T0, &err), 0);
    store_task_state_t was;
    assert_int_equal(store_task_cancel(f->st, b, "cancelled", T0 + 1, &was, &err), 0);
    assert_int_equal(was, STORE_TASK_RUNNING);
    assert_int_equal(task_state(f->st, b), STORE_TASK_CANCELLED);
    assert_int_equal(run_state(f->st, run), STORE_RUN_RUNNING);
    assert_int_equal(store_task_cancel(f->st, b, NULL, T0 + 2, NULL, &err), -ESTALE);
    /* the child's late exit report is refused */
    assert_int_equal(store_task_finish(f->st, b, STORE_TASK_FAILED, -2, NULL, 0, T0, NULL, &err),
                     -ESTALE);
    assert_int_equal(store_task_cancel(f->st, 999999, NULL, T0, NULL, &err), -ENOENT);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM events WHERE kind='task.cancelled'"), 1);
}

/* A kernel kept for a post-mortem: recorded, listed soonest first, read
 * with the task run, forgotten. */
static void test_task_kept_kernel(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    int64_t a = task_id(f->st, run, "a"), b = task_id(f->st, run, "b");
    store_task_runs_t l;
    assert_int_equal(store_task_kept_kernels(f->st, &l, &err), 0);
    assert_int_equal(l.n, 0);
    store_task_runs_free(&l);
    assert_int_equal(store_task_set_kernel(f->st, b, "/tmp/k/kernel-b.json", 4242, 777, T0 + 20, &err), 0);
    assert_int_equal(store_task_set_kernel(f->st, a, "/tmp/k/kernel-a.json", 4243, 778, T0 + 10, &err), 0);
    assert_int_equal(store_task_kept_kernels(f->st, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[0].id, a);
    assert_string_equal(l.v[1].kernel_conn, "/tmp/k/kernel-b.json");
    assert_int_equal(l.v[1].kernel_pid, 4242);
    assert_int_equal(l.v[1].kernel_pid_start_time, 777);
    assert_int_equal(l.v[1].kernel_kept_until, T0 + 20);
    store_task_runs_free(&l);
    assert_int_equal(store_task_clear_kernel(f->st, a, &err), 0);
    store_task_run_t t;
    assert_int_equal(store_task_run_get(f->st, a, &t, &err), 0);
    assert_null(t.kernel_conn);
    assert_int_equal(t.kernel_pid, 0);
    assert_int_equal(t.kernel_kept_until, 0);
    store_task_run_clear(&t);
    assert_int_equal(store_task_kept_kernels(f->st, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].id, b);
    store_task_runs_free(&l);
}

/* ---- events ------------------------------------------------------------------ */

static void test_events_per_transition(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t start = last_event(f->st);
    assert_int_equal(start, 0);
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    int64_t a = task_id(f->st, run, "a"), b = task_id(f->st, run, "b");
    assert_int_equal(store_task_queue(f->st, a, T0, &err), 0);
    int64_t before = last_event(f->st);
    /* a refused transition appends nothing */
    assert_int_equal(store_task_queue(f->st, a, T0, &err), -ESTALE);
    assert_int_equal(store_run_start(f->st, run, T0, &err), -ESTALE);
    assert_int_equal(last_event(f->st), before);
    assert_int_equal(store_task_start(f->st, a, 5, 6, NULL, NULL, T0, &err), 0);
    assert_int_equal(store_task_finish(f->st, a, STORE_TASK_FAILED, 2, "x", 0, T0, NULL, &err), 0);
    assert_int_equal(store_task_skip(f->st, b, STORE_TASK_UPSTREAM_FAILED, "a failed", T0, &err),
                     0);
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_FAILED, T0, NULL, 0, &err), 0);
    assert_int_equal(store_flow_set_paused(f->st, "f", 1, T0, &err), 0);

    static const char *const kinds[] = {
        "flow.upsert", "run.queued", "run.running", "task.queued", "task.running",
        "task.failed", "task.upstream_failed", "run.failed", "flow.paused"
    };
    store_events_t ev;
    assert_int_equal(store_events_since(f->st, 0, 100, &ev, &err), 0);
    assert_int_equal(ev.n, 9);
    for (size_t i = 0; i < ev.n; i++) {
        assert_string_equal(ev.v[i].kind, kinds[i]);
        assert_string_equal(ev.v[i].flow, "f");
        assert_int_equal(ev.v[i].at, T0);
        if (i) assert_true(ev.v[i].id > ev.v[i - 1].id);
    }
    assert_int_equal(ev.v[4].run, run);
    assert_string_equal(ev.v[4].task, "a");
    assert_string_equal(ev.v[4].json,
                        "{\"pid\":5,\"run_id\":\"scheduled__2026-11-22T05:00:00+00:00\",\"try\":1}");
    assert_string_equal(ev.v[5].json, "{\"error\":\"x\",\"exit_code\":2,\"run_id\":"
                                      "\"scheduled__2026-11-22T05:00:00+00:00\",\"try\":1}");
    int64_t third = ev.v[2].id;
    store_events_free(&ev);
    /* resume after an id, with a limit */
    assert_int_equal(store_events_since(f->st, third, 2, &ev, &err), 0);
    assert_int_equal(ev.n, 2);
    assert_string_equal(ev.v[0].kind, "task.queued");
    store_events_free(&ev);
    assert_int_equal(store_events_since(f->st, 0, 0, &ev, &err), -EINVAL);
    /* prune keeps ids monotonic */
    int64_t del;
    int64_t last = last_event(f->st);
    assert_int_equal(store_events_prune(f->st, T0 + 1, &del, &err), 0);
    assert_int_equal(del, 9);
    assert_int_equal(store_flow_set_paused(f->st, "f", 0, T0, &err), 0);
    assert_int_equal(last_event(f->st), last + 1);
}

/* ---- pagination ------------------------------------------------------------------ */

static void test_runs_pagination(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t alice;
    assert_int_equal(store_user_add(f->st, "alice", NULL, 0, T0, &alice, &err), 0);
    add_flow(f->st, "mine", alice);
    add_flow(f->st, "other", 0);
    for (int i = 0; i < 25; i++) {
        int64_t run;
        assert_int_equal(fire(f->st, i % 5 == 0 ? "mine" : "other", STORE_RUN_SCHEDULED,
                              T0 + i * HOUR, &run, &err), 0);
        if (i % 2) assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    }
    store_run_filter_t flt = { .state = -1, .limit = 10 };
    store_runs_t page;
    int64_t seen = 0, prev = INT64_MAX;
    int pages = 0;
    do {
        assert_int_equal(store_runs_list(f->st, &flt, &page, &err), 0);
        for (size_t i = 0; i < page.n; i++) {
            assert_true(page.v[i].id < prev); /* newest first, no repeats */
            prev = page.v[i].id;
            assert_null(page.v[i].spec_json);
            assert_non_null(page.v[i].run_id);
        }
        seen += (int64_t)page.n;
        pages++;
        if (page.n) flt.before_id = page.v[page.n - 1].id;
        size_t n = page.n;
        store_runs_free(&page);
        if (n < 10) break;
    } while (1);
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);

    store_run_filter_t byflow = { .flow = "mine", .state = -1, .limit = 100 };
    assert_int_equal(store_runs_list(f->st, &byflow, &page, &err), 0);
    assert_int_equal(page.n, 5);
    store_runs_free(&page);
    store_run_filter_t bystate = { .state = STORE_RUN_RUNNING, .limit = 100 };
    assert_int_equal(store_runs_list(f->st, &bystate, &page, &err), 0);
    assert_int_equal(page.n, 12);
    for (size_t i = 0; i < page.n; i++) assert_int_equal(page.v[i].state, STORE_RUN_RUNNING);
    store_runs_free(&page);
    store_run_filter_t byowner = { .owner_id = alice, .state = STORE_RUN_QUEUED, .limit = 2 };
    assert_int_equal(store_runs_list(f->st, &byowner, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.v[0].flow, "mine");
    store_runs_free(&page);
    store_run_filter_t all3 = { .flow = "mine", .owner_id = alice, .state = STORE_RUN_QUEUED,
                                .limit = 100 };
    assert_int_equal(store_runs_list(f->st, &all3, &page, &err), 0);
    assert_int_equal(page.n, 3); /* i = 0, 10, 20 are even: never started */
    store_runs_free(&page);
    store_run_filter_t bad = { .state = -1, .limit = 0 };
    assert_int_equal(store_runs_list(f->st, &bad, &page, &err), -EINVAL);

    store_flows_t fl;
    assert_int_equal(store_flows_list(f->st, 0, alice, &fl, &err), 0);
    assert_int_equal(fl.n, 1);
    assert_string_equal(fl.v[0].name, "mine");
    store_flows_free(&fl);
    assert_int_equal(store_flows_list(f->st, 0, 0, &fl, &err), 0);
    assert_int_equal(fl.n, 2);
    store_flows_free(&fl);

    store_counts_t c;
    assert_int_equal(store_counts(f->st, &c, &err), 0);
    assert_int_equal(c.runs[STORE_RUN_QUEUED], 13);
    assert_int_equal(c.runs[STORE_RUN_RUNNING], 12);
    assert_int_equal(c.tasks[STORE_TASK_PENDING], 50);
    assert_int_equal(c.flows, 2);
    assert_int_equal(c.last_event_id, last_event(f->st));
}

/* ---- crash and recovery --------------------------------------------------------- */

/* The child's end of the "I am where you want me, kill me now" pipe. */
static int crash_ready_fd = -1;

static void child_ready_then_wait(void)
{
    char c = 'r';
    if (write(crash_ready_fd, &c, 1) != 1) _exit(7);
    for (;;) pause();
}

/* Parent: wait for the child to be ready, then kill -9 it.  (Killed from
 * outside, like the real thing — and valgrind cannot run its exit-time leak
 * check on a process that did not exit.) */
static void kill9_when_ready(pid_t pid, int rfd)
{
    char c;
    assert_int_equal(read(rfd, &c, 1), 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
}

/* Inside a transaction: write rows, then wait to be killed before COMMIT. */
static int die_mid_tx(store_t *st, void *varg, nb_err_t *err)
{
    (void)varg;
    sqlite3_exec(store_db(st), "INSERT INTO flows(name, spec_json, created_at, updated_at) "
                               "VALUES ('ghost', '{}', 0, 0)", 0, 0, 0);
    store_event_add(st, 0, "flow.upsert", "ghost", 0, NULL, NULL, err);
    child_ready_then_wait();
    return 0;
}

static void test_crash_recovery(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int p[2];
    add_flow(f->st, "f", 0);
    /* A child opens its own connection (the parent's stays open, as if it
     * were a second daemon), fires a tick, starts a task, and is killed -9
     * with no close: acknowledged commits must all be there. */
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        store_t *st;
        nb_err_t e;
        int64_t run;
        crash_ready_fd = p[1];
        if (store_open(f->path, &st, &e)) _exit(2);
        if (fire(st, "f", STORE_RUN_SCHEDULED, T0, &run, &e)) _exit(3);
        if (store_run_start(st, run, T0, &e)) _exit(4);
        int64_t a = task_id(st, run, "a");
        if (store_task_queue(st, a, T0, &e)) _exit(5);
        if (store_task_start(st, a, getpid(), 777, "/o", "/l", T0, &e)) _exit(6);
        child_ready_then_wait();
    }
    kill9_when_ready(pid, p[0]);

    /* A second child is killed in the middle of a transaction, holding the
     * write lock, with rows written but not committed. */
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        store_t *st;
        nb_err_t e;
        crash_ready_fd = p[1];
        if (store_open(f->path, &st, &e)) _exit(2);
        store_tx(st, die_mid_tx, NULL, &e);
        _exit(9); /* not reached */
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    /* while it lives: WAL readers do not see its uncommitted rows */
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM flows WHERE name='ghost'"), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    close(p[0]);
    close(p[1]);

    /* The parent's connection sees the committed work, not the rest, and
     * can write at once (the dead child's lock went with it). */
    store_flow_t fl;
    assert_int_equal(store_flow_get(f->st, "ghost", 1, &fl, &err), -ENOENT);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM events WHERE flow='ghost'"), 0);
    store_task_runs_t running;
    store_runs_t active;
    assert_int_equal(store_recover(f->st, T0 + 1, &running, &active, &err), 0);
    assert_int_equal(running.n, 1);
    assert_string_equal(running.v[0].task, "a");
    assert_int_equal(running.v[0].pid_start_time, 777);
    assert_int_equal(running.v[0].try_number, 1);
    assert_string_equal(running.v[0].output_path, "/o");
    assert_int_equal(active.n, 1);
    assert_int_equal(active.v[0].state, STORE_RUN_RUNNING);
    assert_non_null(active.v[0].spec_json);
    /* the tick survived: the restarted scheduler will not fire it again */
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, NULL, &err), -EEXIST);
    /* re-attach failed: fail the orphan, which then retries or fails */
    store_task_state_t ns;
    assert_int_equal(store_task_finish(f->st, running.v[0].id, STORE_TASK_FAILED, -1,
                                       "daemon restarted; process gone", 0, T0 + 2, &ns, &err), 0);
    assert_int_equal(ns, STORE_TASK_FAILED);
    store_task_runs_free(&running);
    store_runs_free(&active);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM events WHERE kind='store.recover'"), 1);
    /* and a fresh open after all this is fine, integrity intact */
    reopen(f);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM pragma_integrity_check "
                                      "WHERE integrity_check != 'ok'"), 0);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

/* ---- webhooks ---------------------------------------------------------------------- */

static void test_webhook_outbox(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    store_task_spec_t one = { "t", 1 };
    store_fire_t fi = { .flow = "f", .kind = STORE_RUN_MANUAL, .logical_us = T0,
                        .tasks = &one, .ntasks = 1 };
    assert_int_equal(store_tick_fire(f->st, &fi, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0, &err), 0);
    int64_t t = task_id(f->st, run, "t");
    assert_int_equal(store_task_skip(f->st, t, STORE_TASK_SKIPPED, NULL, T0, &err), 0);
    store_hook_t hooks[] = { { "http://a/h", "run.success", "{\"ok\":true}" },
                             { "http://b/h", "run.success", NULL } };
    assert_int_equal(store_run_finish(f->st, run, STORE_RUN_SUCCESS, T0 + 10, hooks, 2, &err), 0);
    store_webhooks_t due;
    assert_int_equal(store_webhooks_due(f->st, T0 + 10, 10, &due, &err), 0);
    assert_int_equal(due.n, 2);
    int64_t h1 = due.v[0].id, h2 = due.v[1].id;
    assert_string_equal(due.v[0].url, "http://a/h");
    assert_string_equal(due.v[1].payload_json, "{}");
    assert_int_equal(due.v[0].state, STORE_WEBHOOK_PENDING);
    store_webhooks_free(&due);
    assert_int_equal(store_webhook_attempt(f->st, h1, 1, NULL, 0, T0 + 11, &err), 0);
    assert_int_equal(store_webhook_attempt(f->st, h1, 1, NULL, 0, T0 + 11, &err), -ESTALE);
    assert_int_equal(store_webhook_attempt(f->st, h2, 0, "connection refused", T0 + 100, T0 + 11,
                                           &err), 0);
    assert_int_equal(store_webhooks_due(f->st, T0 + 99, 10, &due, &err), 0);
    assert_int_equal(due.n, 0);
    store_webhooks_free(&due);
    assert_int_equal(store_webhooks_due(f->st, T0 + 100, 10, &due, &err), 0);
    assert_int_equal(due.n, 1);
    assert_int_equal(due.v[0].attempts, 1);
    assert_string_equal(due.v[0].last_error, "connection refused");
    store_webhooks_free(&due);
    assert_int_equal(store_webhook_attempt(f->st, h2, 0, "HTTP 500", 0, T0 + 101, &err), 0);
    assert_int_equal(store_webhook_attempt(f->st, 999, 1, NULL, 0, T0, &err), -ENOENT);
    store_events_t ev;
    int64_t last = last_event(f->st);
    assert_int_equal(store_events_since(f->st, last - 1, 10, &ev, &err), 0);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.v[0].kind, "webhook.failed");
    assert_non_null(strstr(ev.v[0].json, "HTTP 500"));
    store_events_free(&ev);
    store_counts_t c;
    assert_int_equal(store_counts(f->st, &c, &err), 0);
    assert_int_equal(c.webhooks_failed, 1);
    assert_int_equal(c.webhooks_pending, 0);
    assert_int_equal(c.runs[STORE_RUN_SUCCESS], 1);
    assert_int_equal(c.tasks[STORE_TASK_SKIPPED], 1);
}

/* ---- auth ------------------------------------------------------------------------ */

static void test_users(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t n, id, id2;
    assert_int_equal(store_users_count(f->st, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_user_add(f->st, "admin", "$argon2id$x", 1, T0, &id, &err), 0);
    assert_int_equal(store_user_add(f->st, "admin", "$argon2id$y", 0, T0, NULL, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_int_equal(store_user_add(f->st, "bob", NULL, 0, T0, &id2, &err), 0);
    assert_int_equal(store_user_add(f->st, "", NULL, 0, T0, NULL, &err), -EINVAL);
    assert_int_equal(store_users_count(f->st, &n, &err), 0);
    assert_int_equal(n, 2);
    store_user_t u;
    assert_int_equal(store_user_by_name(f->st, "admin", &u, &err), 0);
    assert_int_equal(u.id, id);
    assert_true(u.is_admin);
    assert_string_equal(u.password_hash, "$argon2id$x");
    store_user_clear(&u);
    assert_int_equal(store_user_by_id(f->st, id2, &u, &err), 0);
    assert_null(u.password_hash);
    assert_false(u.is_admin);
    store_user_clear(&u);
    assert_int_equal(store_user_by_name(f->st, "carol", &u, &err), -ENOENT);

    /* a password change ends the user's sessions */
    assert_int_equal(store_session_add(f->st, "sess1", "csrf1", id, T0, T0 + HOUR, NULL, &err), 0);
    assert_int_equal(store_user_set_password(f->st, id, "$argon2id$z", &err), 0);
    assert_int_equal(store_session_lookup(f->st, "sess1", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_user_by_id(f->st, id, &u, &err), 0);
    assert_string_equal(u.password_hash, "$argon2id$z");
    store_user_clear(&u);
    assert_int_equal(store_user_set_password(f->st, 999, "x", &err), -ENOENT);

    /* a change the user asked for: the session that made it stays, the
     * others end; tokens stay unless revoked with it, and only this user's */
    assert_int_equal(store_session_add(f->st, "keep", "c1", id, T0, T0 + HOUR, NULL, &err), 0);
    assert_int_equal(store_session_add(f->st, "other", "c2", id, T0, T0 + HOUR, NULL, &err), 0);
    assert_int_equal(store_session_add(f->st, "bobs", "c3", id2, T0, T0 + HOUR, NULL, &err), 0);
    assert_int_equal(store_token_add(f->st, id, "a", "atok", T0, 0, NULL, &err), 0);
    assert_int_equal(store_token_add(f->st, id2, "b", "btok", T0, 0, NULL, &err), 0);
    assert_int_equal(store_user_change_password(f->st, id, "$argon2id$w", "keep", 0, &err), 0);
    assert_int_equal(store_session_lookup(f->st, "keep", T0, NULL, NULL, &err), 0);
    assert_int_equal(store_session_lookup(f->st, "other", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "atok", T0, NULL, NULL, &err), 0);
    assert_int_equal(store_user_change_password(f->st, id, "$argon2id$v", NULL, 1, &err), 0);
    assert_int_equal(store_session_lookup(f->st, "keep", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "atok", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "btok", T0, NULL, NULL, &err), 0);
    assert_int_equal(store_session_lookup(f->st, "bobs", T0, NULL, NULL, &err), 0);
    /* logout with a token: revoked by its digest */
    assert_int_equal(store_token_revoke_hash(f->st, "btok", &err), 0);
    assert_int_equal(store_token_lookup(f->st, "btok", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_revoke_hash(f->st, "btok", &err), -ENOENT);
    assert_int_equal(store_session_delete(f->st, "bobs", &err), 0);

    /* disabled users cannot authenticate with tokens or sessions */
    assert_int_equal(store_token_add(f->st, id2, "ci", "tokhash", T0, 0, NULL, &err), 0);
    assert_int_equal(store_session_add(f->st, "sess2", "csrf2", id2, T0, T0 + HOUR, NULL, &err),
                     0);
    assert_int_equal(store_user_set_disabled(f->st, id2, 1, &err), 0);
    assert_int_equal(store_token_lookup(f->st, "tokhash", T0, NULL, NULL, &err), -EACCES);
    assert_int_equal(store_session_lookup(f->st, "sess2", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_user_set_disabled(f->st, id2, 0, &err), 0);
    assert_int_equal(store_token_lookup(f->st, "tokhash", T0, NULL, NULL, &err), 0);
    store_users_t l;
    assert_int_equal(store_users_list(f->st, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[1].name, "bob");
    store_users_free(&l);
}

static void test_tokens(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t u1, u2, t1, t2;
    assert_int_equal(store_user_add(f->st, "u1", NULL, 0, T0, &u1, &err), 0);
    assert_int_equal(store_user_add(f->st, "u2", NULL, 0, T0, &u2, &err), 0);
    assert_int_equal(store_token_add(f->st, u1, "laptop", "h-1", T0, 0, &t1, &err), 0);
    assert_int_equal(store_token_add(f->st, u1, "ci", "h-2", T0, T0 + HOUR, &t2, &err), 0);
    assert_int_equal(store_token_add(f->st, u2, "dup", "h-1", T0, 0, NULL, &err), -EEXIST);
    assert_int_equal(store_token_add(f->st, 999, "x", "h-9", T0, 0, NULL, &err), -ENOENT);

    store_token_t tok;
    store_user_t u;
    assert_int_equal(store_token_lookup(f->st, "h-1", T0 + 10, &tok, &u, &err), 0);
    assert_int_equal(tok.id, t1);
    assert_int_equal(tok.last_used_at, T0 + 10);
    assert_string_equal(tok.name, "laptop");
    assert_string_equal(u.name, "u1");
    store_token_clear(&tok);
    store_user_clear(&u);
    /* within a minute: last_used_at is not rewritten */
    assert_int_equal(store_token_lookup(f->st, "h-1", T0 + 30000000, &tok, NULL, &err), 0);
    assert_int_equal(tok.last_used_at, T0 + 10);
    store_token_clear(&tok);
    assert_int_equal(count_sql(f->st, "SELECT last_used_at FROM api_tokens WHERE token_hash='h-1'"),
                     T0 + 10);
    assert_int_equal(store_token_lookup(f->st, "h-1", T0 + 70000000, &tok, NULL, &err), 0);
    assert_int_equal(tok.last_used_at, T0 + 70000000);
    store_token_clear(&tok);

    /* expiry */
    assert_int_equal(store_token_lookup(f->st, "h-2", T0 + HOUR - 1, NULL, NULL, &err), 0);
    assert_int_equal(store_token_lookup(f->st, "h-2", T0 + HOUR, NULL, NULL, &err), -EKEYEXPIRED);
    assert_int_equal(store_token_lookup(f->st, "nope", T0, NULL, NULL, &err), -ENOENT);

    store_tokens_t l;
    assert_int_equal(store_tokens_list(f->st, u1, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[1].expires_at, T0 + HOUR);
    store_tokens_free(&l);
    /* u2 cannot revoke u1's token; u1 (or an admin, user 0) can */
    assert_int_equal(store_token_revoke(f->st, t1, u2, &err), -ENOENT);
    assert_int_equal(store_token_revoke(f->st, t1, u1, &err), 0);
    assert_int_equal(store_token_revoke(f->st, t1, u1, &err), -ENOENT);
    assert_int_equal(store_token_revoke(f->st, t2, 0, &err), 0);
    assert_int_equal(store_token_lookup(f->st, "h-1", T0, NULL, NULL, &err), -ENOENT);
}

/* Schema v5: a token's kind, scopes and server; a server's tokens go with
 * a stop (store_tokens_revoke_server) and with its row (ON DELETE CASCADE). */
static void test_tokens_scoped(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t u1, t1, t2, t3;
    assert_int_equal(store_user_add(f->st, "u1", NULL, 0, T0, &u1, &err), 0);
    assert_int_equal(sqlite3_exec(store_db(f->st),
                                  "INSERT INTO servers(id, user_id, name, profile, created_at) "
                                  "VALUES (7, 1, '', 'default', 0)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_token_add_scoped(f->st, u1, "server", "s-1", STORE_TOKEN_SERVER,
                                            "[\"access:servers!server=u1/\"]", 7, T0, 0, &t1, &err),
                     0);
    assert_int_equal(store_token_add_scoped(f->st, u1, "oauth", "o-1", STORE_TOKEN_OAUTH,
                                            "[\"identify\"]", 7, T0, 0, &t2, &err), 0);
    assert_int_equal(store_token_add(f->st, u1, "mine", "a-1", T0, 0, &t3, &err), 0);
    /* an unknown server is refused like an unknown user */
    assert_int_equal(store_token_add_scoped(f->st, u1, "x", "x-1", STORE_TOKEN_SERVER, NULL, 99,
                                            T0, 0, NULL, &err), -ENOENT);
    assert_int_equal(store_token_add_scoped(f->st, u1, "x", "x-1", (store_token_kind_t)7, NULL, 0,
                                            T0, 0, NULL, &err), -EINVAL);

    store_token_t tok;
    assert_int_equal(store_token_lookup(f->st, "s-1", T0, &tok, NULL, &err), 0);
    assert_int_equal(tok.kind, STORE_TOKEN_SERVER);
    assert_int_equal(tok.server_id, 7);
    assert_string_equal(tok.server_name, "");
    assert_string_equal(tok.server_owner, "u1");
    assert_string_equal(tok.scopes, "[\"access:servers!server=u1/\"]");
    store_token_clear(&tok);
    assert_int_equal(store_token_lookup(f->st, "a-1", T0, &tok, NULL, &err), 0);
    assert_int_equal(tok.kind, STORE_TOKEN_API);
    assert_null(tok.scopes);
    assert_int_equal(tok.server_id, 0);
    assert_null(tok.server_name);
    store_token_clear(&tok);
    assert_int_equal(store_token_by_id(f->st, t2, u1, &tok, &err), 0);
    assert_int_equal(tok.kind, STORE_TOKEN_OAUTH);
    store_token_clear(&tok);
    assert_int_equal(store_token_by_id(f->st, t2, u1 + 1, &tok, &err), -ENOENT);

    store_tokens_t l;
    assert_int_equal(store_tokens_list(f->st, u1, &l, &err), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[1].kind, STORE_TOKEN_OAUTH);
    store_tokens_free(&l);

    /* a stop: the server's API token only, then the rest */
    int64_t n = -1;
    assert_int_equal(store_tokens_revoke_server(f->st, 7, STORE_TOKEN_SERVER, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_token_lookup(f->st, "s-1", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "o-1", T0, NULL, NULL, &err), 0);
    assert_int_equal(store_token_add_scoped(f->st, u1, "server", "s-2", STORE_TOKEN_SERVER, NULL,
                                            7, T0, 0, NULL, &err), 0);
    /* the row removed: its tokens go with it, the user's own stays */
    assert_int_equal(sqlite3_exec(store_db(f->st), "DELETE FROM servers WHERE id = 7", NULL, NULL,
                                  NULL), SQLITE_OK);
    assert_int_equal(store_token_lookup(f->st, "o-1", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "s-2", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "a-1", T0, NULL, NULL, &err), 0);
    assert_int_equal(store_tokens_revoke_server(f->st, 7, -1, &n, &err), 0);
    assert_int_equal(n, 0);

    /* expired OAuth tokens are pruned, nothing else */
    assert_int_equal(store_token_add_scoped(f->st, u1, "o", "o-old", STORE_TOKEN_OAUTH, NULL, 0, T0,
                                            T0 + 10, NULL, &err), 0);
    assert_int_equal(store_token_add_scoped(f->st, u1, "o", "o-new", STORE_TOKEN_OAUTH, NULL, 0, T0,
                                            T0 + 1000, NULL, &err), 0);
    assert_int_equal(store_token_add(f->st, u1, "api-old", "a-old", T0, T0 + 10, NULL, &err), 0);
    assert_int_equal(store_tokens_prune_oauth(f->st, T0 + 20, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(count_sql(f->st, "SELECT count(*) FROM api_tokens WHERE token_hash IN "
                                      "('o-new', 'a-old')"), 2);
    assert_string_equal(store_token_kind_name(STORE_TOKEN_OAUTH), "oauth");
    store_token_kind_t k;
    assert_int_equal(store_token_kind_parse("server", &k), 0);
    assert_int_equal(k, STORE_TOKEN_SERVER);
    assert_int_equal(store_token_kind_parse("admin", &k), -EINVAL);
    (void)t3;
}

/* Groups and their members; users deleted (members, tokens go) or made admin. */
static void test_groups(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a, b, g, g2;
    assert_int_equal(store_user_add(f->st, "alice", NULL, 0, T0, &a, &err), 0);
    assert_int_equal(store_user_add(f->st, "bob", NULL, 0, T0, &b, &err), 0);
    assert_int_equal(store_group_add(f->st, "team", NULL, T0, &g, &err), 0);
    assert_int_equal(store_group_add(f->st, "team", NULL, T0, NULL, &err), -EEXIST);
    assert_int_equal(store_group_add(f->st, "other", "{\"k\": 1}", T0, &g2, &err), 0);
    assert_int_equal(store_group_member_add(f->st, g, b, &err), 0);
    assert_int_equal(store_group_member_add(f->st, g, a, &err), 0);
    assert_int_equal(store_group_member_add(f->st, g, a, &err), 0);   /* twice: no error */
    assert_int_equal(store_group_member_add(f->st, g, 999, &err), -ENOENT);
    store_names_t n;
    assert_int_equal(store_group_members(f->st, g, &n, &err), 0);
    assert_int_equal(n.n, 2);
    assert_string_equal(n.v[0], "alice");
    store_names_free(&n);
    assert_int_equal(store_user_in_group(f->st, "bob", "team", &err), 1);
    assert_int_equal(store_user_in_group(f->st, "bob", "other", &err), 0);
    assert_int_equal(store_user_in_group(f->st, "nobody", "team", &err), 0);
    assert_int_equal(store_group_member_remove(f->st, g, b, &err), 0);
    assert_int_equal(store_user_in_group(f->st, "bob", "team", &err), 0);

    store_groups_t l;
    int64_t total;
    assert_int_equal(store_groups_list(f->st, 1, 5, &l, &total, &err), 0);
    assert_int_equal(total, 2);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "other");
    assert_string_equal(l.v[0].properties, "{\"k\": 1}");
    store_groups_free(&l);
    assert_int_equal(store_user_groups(f->st, a, &n, &err), 0);
    assert_int_equal(n.n, 1);
    store_names_free(&n);

    assert_int_equal(store_user_set_admin(f->st, b, 1, &err), 0);
    store_user_t u;
    assert_int_equal(store_user_by_id(f->st, b, &u, &err), 0);
    assert_int_equal(u.is_admin, 1);
    store_user_clear(&u);

    /* delete: refused while she owns a live flow */
    assert_int_equal(store_token_add(f->st, a, "t", "tok-a", T0, 0, NULL, &err), 0);
    assert_int_equal(sqlite3_exec(store_db(f->st),
                                  "INSERT INTO flows(name, incarnation, owner_id, spec_json, "
                                  "source_path, version, created_at, updated_at) "
                                  "VALUES ('f', 1, 1, '{}', 'x', 1, 0, 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_user_delete(f->st, a, &err), -EBUSY);
    assert_int_equal(sqlite3_exec(store_db(f->st), "UPDATE flows SET deleted_at = 1", NULL, NULL,
                                  NULL), SQLITE_OK);
    assert_int_equal(store_user_delete(f->st, a, &err), 0);
    assert_int_equal(store_user_delete(f->st, a, &err), -ENOENT);
    assert_int_equal(store_token_lookup(f->st, "tok-a", T0, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_group_members(f->st, g, &n, &err), 0);
    assert_int_equal(n.n, 0);
    store_names_free(&n);
    assert_int_equal(store_group_delete(f->st, "team", &err), 0);
    assert_int_equal(store_group_delete(f->st, "team", &err), -ENOENT);
    store_group_t gr;
    assert_int_equal(store_group_get(f->st, "other", &gr, &err), 0);
    assert_int_equal(gr.id, g2);
    store_group_clear(&gr);
}

static void test_sessions(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t uid, sid;
    assert_int_equal(store_user_add(f->st, "u", "pw", 0, T0, &uid, &err), 0);
    assert_int_equal(store_session_add(f->st, "s1", "c1", uid, T0, T0 + HOUR, &sid, &err), 0);
    assert_int_equal(store_session_add(f->st, "s2", "c2", uid, T0, T0 + 10, NULL, &err), 0);
    assert_int_equal(store_session_add(f->st, "s1", "c", uid, T0, T0 + HOUR, NULL, &err), -EEXIST);
    assert_int_equal(store_session_add(f->st, "s3", "c", 999, T0, T0 + HOUR, NULL, &err), -ENOENT);
    assert_int_equal(store_session_add(f->st, "s4", "c", uid, T0, T0, NULL, &err), -EINVAL);
    store_session_t s;
    store_user_t u;
    assert_int_equal(store_session_lookup(f->st, "s1", T0 + 5, &s, &u, &err), 0);
    assert_int_equal(s.id, sid);
    assert_string_equal(s.csrf_token, "c1");
    assert_string_equal(u.name, "u");
    store_session_clear(&s);
    store_user_clear(&u);
    assert_int_equal(store_session_lookup(f->st, "s2", T0 + 10, &s, &u, &err), -EKEYEXPIRED);
    assert_null(s.csrf_token);
    int64_t del;
    assert_int_equal(store_sessions_prune(f->st, T0 + 10, &del, &err), 0);
    assert_int_equal(del, 1);
    assert_int_equal(store_session_delete(f->st, "s1", &err), 0);
    assert_int_equal(store_session_delete(f->st, "s1", &err), -ENOENT);
    assert_int_equal(store_session_lookup(f->st, "s1", T0, NULL, NULL, &err), -ENOENT);
}

/* ---- benchmark (printed, not asserted) -------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One scheduled run of one task through its whole life: 6 transitions.
 * Only the transitions are timed (not the id lookup between them). */
static double bench_cycles(store_t *st, int n, int64_t base)
{
    store_task_spec_t one = { "t", 1 };
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(store_db(st), "SELECT id FROM task_runs WHERE run = ?1",
                                        -1, &q, NULL), SQLITE_OK);
    double total = 0;
    for (int i = 0; i < n; i++) {
        int64_t run;
        store_fire_t fi = { .flow = "bench", .kind = STORE_RUN_SCHEDULED,
                            .logical_us = base + i * HOUR, .tasks = &one, .ntasks = 1 };
        double t0 = now_s();
        assert_int_equal(store_tick_fire(st, &fi, T0, &run, NULL), 0);
        assert_int_equal(store_run_start(st, run, T0, NULL), 0);
        total += now_s() - t0;
        sqlite3_bind_int64(q, 1, run);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        int64_t t = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        t0 = now_s();
        assert_int_equal(store_task_queue(st, t, T0, NULL), 0);
        assert_int_equal(store_task_start(st, t, 1, 1, "/o", "/l", T0, NULL), 0);
        assert_int_equal(store_task_finish(st, t, STORE_TASK_SUCCESS, 0, NULL, 0, T0, NULL, NULL),
                         0);
        assert_int_equal(store_run_finish(st, run, STORE_RUN_SUCCESS, T0, NULL, 0, NULL), 0);
        total += now_s() - t0;
    }
    sqlite3_finalize(q);
    return total;
}

static void test_bench_transitions(void **state)
{
    fx_t *f = *state;
    add_flow(f->st, "bench", 0);
    int n = getenv("NBHUB_STORE_BENCH_N") ? atoi(getenv("NBHUB_STORE_BENCH_N")) : 100;
    bench_cycles(f->st, 5, -100 * HOUR); /* warm the statement cache */
    double full = bench_cycles(f->st, n, 0);
    sqlite3_exec(store_db(f->st), "PRAGMA synchronous=NORMAL", 0, 0, 0);
    double normal = bench_cycles(f->st, n, 1000000 * HOUR);
    sqlite3_exec(store_db(f->st), "PRAGMA synchronous=FULL", 0, 0, 0);
    /* the read side the API uses */
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        store_run_t r;
        store_task_runs_t ts;
        assert_int_equal(store_run_get(f->st, 1 + i % n, &r, &ts, NULL), 0);
        store_run_clear(&r);
        store_task_runs_free(&ts);
    }
    double rd = now_s() - t0;
    int tr = 6 * n;
    printf("[ bench    ] store transitions in %s (%d runs x 6 transitions):\n", f->dir, n);
    printf("[ bench    ]   synchronous=FULL:   %8.0f transitions/s, %7.1f us/transition\n",
           tr / full, full * 1e6 / tr);
    printf("[ bench    ]   synchronous=NORMAL: %8.0f transitions/s, %7.1f us/transition "
           "(comparison only)\n", tr / normal, normal * 1e6 / tr);
    printf("[ bench    ]   store_run_get + task_runs: %8.0f reads/s\n", 1000 / rd);
}

/* A batch: each transition atomic on its own (a refused one undoes only
 * itself), all durable at the end; without the end (a crash), none is. */
static void test_batch_group_commit(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    add_flow(f->st, "f", 0);
    int64_t run;
    assert_int_equal(fire(f->st, "f", STORE_RUN_SCHEDULED, T0, &run, &err), 0);
    assert_int_equal(store_run_start(f->st, run, T0 + 1, &err), 0);
    int64_t a = task_id(f->st, run, "a"), b = task_id(f->st, run, "b");

    assert_int_equal(store_batch_begin(f->st, &err), 0);
    assert_int_equal(store_task_queue(f->st, a, T0 + 2, &err), 0);
    assert_int_equal(store_task_queue(f->st, a, T0 + 2, &err), -ESTALE);   /* undone alone */
    assert_int_equal(store_task_start(f->st, a, 4242, 1, NULL, NULL, T0 + 3, &err), 0);
    assert_int_equal(task_state(f->st, a), STORE_TASK_RUNNING);  /* visible to ourselves */
    assert_int_equal(store_batch_end(f->st, &err), 0);
    reopen(f);
    assert_int_equal(task_state(f->st, a), STORE_TASK_RUNNING);

    /* No end: the process dies with the transaction open. */
    assert_int_equal(store_batch_begin(f->st, &err), 0);
    assert_int_equal(store_task_queue(f->st, b, T0 + 4, &err), 0);
    assert_int_equal(task_state(f->st, b), STORE_TASK_QUEUED);
    reopen(f);   /* closing without COMMIT rolls back, as a crash does */
    assert_int_equal(task_state(f->st, b), STORE_TASK_PENDING);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_fresh),
        T(test_reopen_idempotent),
        T(test_newer_version_refused),
        T(test_foreign_db_refused),
        T(test_flow_upsert_versions),
        T(test_flow_pause),
        T(test_flow_delete),
        T(test_migrate_v2),
        T(test_run_id_format),
        T(test_tick_exactly_once),
        T(test_transitions_happy_and_wrong),
        T(test_batch_group_commit),
        T(test_two_connections_race),
        T(test_retry_flow),
        T(test_retry_not_due_after_cancel),
        T(test_cancel_returns_running),
        T(test_task_cancel),
        T(test_task_kept_kernel),
        T(test_events_per_transition),
        T(test_runs_pagination),
        T(test_crash_recovery),
        T(test_webhook_outbox),
        T(test_users),
        T(test_tokens),
        T(test_tokens_scoped),
        T(test_groups),
        T(test_sessions),
        T(test_bench_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
