/*
 * store_runs.c — the scheduler's transitions (ticks, runs, task runs), the
 * webhook outbox, recovery and /metrics counts.
 *
 * Every transition has the same shape: an argument struct, a static *_tx
 * function run by store_tx() inside BEGIN IMMEDIATE, which (1) reads the
 * current row(s) under the write lock, (2) returns -ESTALE if the state is
 * not the one the transition starts from, (3) writes, (4) appends the event.
 * Any error rolls the whole transaction back, so a refused transition leaves
 * no trace, and the caller's view is simply stale.
 *
 * Updates also carry the expected state in their WHERE clause.  Under the
 * write lock this is redundant; it is the belt to the braces, asserted by
 * checking sqlite3_changes().
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_runs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/xmalloc.h"

/* ---- names ------------------------------------------------------------------ */

static const char *const kind_names[STORE_RUN_NKINDS] = { "scheduled", "manual", "backfill" };
static const char *const run_state_names[STORE_RUN_NSTATES] = {
    "queued", "running", "success", "failed", "cancelled"
};
static const char *const task_state_names[STORE_TASK_NSTATES] = {
    "pending", "queued", "running", "success", "failed", "up_for_retry", "skipped",
    "cancelled", "upstream_failed"
};
static const char *const webhook_state_names[] = { "pending", "delivered", "failed" };

static int name_parse(const char *const *names, int n, const char *s)
{
    if (s)
        for (int i = 0; i < n; i++)
            if (strcmp(names[i], s) == 0) return i;
    return -1;
}

const char *store_run_kind_name(store_run_kind_t k)
{
    return (unsigned)k < STORE_RUN_NKINDS ? kind_names[k] : "?";
}

const char *store_run_state_name(store_run_state_t s)
{
    return (unsigned)s < STORE_RUN_NSTATES ? run_state_names[s] : "?";
}

const char *store_task_state_name(store_task_state_t s)
{
    return (unsigned)s < STORE_TASK_NSTATES ? task_state_names[s] : "?";
}

int store_run_kind_parse(const char *s, store_run_kind_t *out)
{
    int i = name_parse(kind_names, STORE_RUN_NKINDS, s);
    if (i < 0) return -EINVAL;
    *out = (store_run_kind_t)i;
    return 0;
}

int store_run_state_parse(const char *s, store_run_state_t *out)
{
    int i = name_parse(run_state_names, STORE_RUN_NSTATES, s);
    if (i < 0) return -EINVAL;
    *out = (store_run_state_t)i;
    return 0;
}

int store_task_state_parse(const char *s, store_task_state_t *out)
{
    int i = name_parse(task_state_names, STORE_TASK_NSTATES, s);
    if (i < 0) return -EINVAL;
    *out = (store_task_state_t)i;
    return 0;
}

int store_run_state_terminal(store_run_state_t s)
{
    return s == STORE_RUN_SUCCESS || s == STORE_RUN_FAILED || s == STORE_RUN_CANCELLED;
}

int store_task_state_terminal(store_task_state_t s)
{
    return s == STORE_TASK_SUCCESS || s == STORE_TASK_FAILED || s == STORE_TASK_SKIPPED ||
           s == STORE_TASK_CANCELLED || s == STORE_TASK_UPSTREAM_FAILED;
}

/* Column text -> enum; the CHECK constraints make an unknown name impossible. */
static int col_enum(sqlite3_stmt *s, int col, const char *const *names, int n)
{
    int i = name_parse(names, n, (const char *)sqlite3_column_text(s, col));
    NB_ASSERT(i >= 0);
    return i;
}

void store_run_id_format(store_run_kind_t kind, int64_t logical_us, char *buf, size_t n)
{
    /* floor division so times before 1970 format correctly too */
    int64_t secs = logical_us / 1000000, frac = logical_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char fr[16] = "";
    if (frac) snprintf(fr, sizeof fr, ".%06lld", (long long)frac);
    snprintf(buf, n, "%s__%04d-%02d-%02dT%02d:%02d:%02d%s+00:00", store_run_kind_name(kind),
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fr);
}

/* ---- rows ------------------------------------------------------------------- */

#define RUN_COLS "r.id, r.run_id, r.flow, r.kind, r.logical_us, r.state, r.flow_version, " \
                 "r.spec_json, r.params_json, r.created_at, r.started_at, r.ended_at, "    \
                 "r.triggered_by, r.flow_id, "                                             \
                 "(SELECT incarnation FROM flows WHERE id = r.flow_id)"
/* Lists leave the spec out: it can be large and the list never shows it. */
#define RUN_COLS_NOSPEC "r.id, r.run_id, r.flow, r.kind, r.logical_us, r.state, "         \
                        "r.flow_version, NULL, r.params_json, r.created_at, r.started_at, " \
                        "r.ended_at, r.triggered_by, r.flow_id, "                           \
                        "(SELECT incarnation FROM flows WHERE id = r.flow_id)"
#define TASK_COLS "t.id, t.run, t.task, t.state, t.try_number, t.max_tries, t.next_retry_at, " \
                  "t.pid, t.pid_start_time, t.queued_at, t.started_at, t.ended_at, "          \
                  "t.exit_code, t.error, t.output_path, t.log_path, t.spark_app_id, "        \
                  "t.kernel_conn, t.kernel_pid, t.kernel_pid_start_time, t.kernel_kept_until"
#define HOOK_COLS "id, run, url, event, payload_json, state, attempts, next_attempt_at, " \
                  "last_error, created_at, delivered_at"

static void run_row(sqlite3_stmt *s, store_run_t *r)
{
    r->id = sqlite3_column_int64(s, 0);
    r->run_id = store_col_str(s, 1);
    r->flow = store_col_str(s, 2);
    r->kind = (store_run_kind_t)col_enum(s, 3, kind_names, STORE_RUN_NKINDS);
    r->logical_us = sqlite3_column_int64(s, 4);
    r->state = (store_run_state_t)col_enum(s, 5, run_state_names, STORE_RUN_NSTATES);
    r->flow_version = sqlite3_column_int64(s, 6);
    r->spec_json = store_col_str(s, 7);
    r->params_json = store_col_str(s, 8);
    r->created_at = sqlite3_column_int64(s, 9);
    r->started_at = sqlite3_column_int64(s, 10);
    r->ended_at = sqlite3_column_int64(s, 11);
    r->triggered_by = sqlite3_column_int64(s, 12);
    r->flow_id = sqlite3_column_int64(s, 13);
    r->flow_incarnation = sqlite3_column_int64(s, 14);
}

static void task_row(sqlite3_stmt *s, store_task_run_t *t)
{
    t->id = sqlite3_column_int64(s, 0);
    t->run = sqlite3_column_int64(s, 1);
    t->task = store_col_str(s, 2);
    t->state = (store_task_state_t)col_enum(s, 3, task_state_names, STORE_TASK_NSTATES);
    t->try_number = sqlite3_column_int(s, 4);
    t->max_tries = sqlite3_column_int(s, 5);
    t->next_retry_at = sqlite3_column_int64(s, 6);
    t->pid = sqlite3_column_int(s, 7);
    t->pid_start_time = sqlite3_column_int64(s, 8);
    t->queued_at = sqlite3_column_int64(s, 9);
    t->started_at = sqlite3_column_int64(s, 10);
    t->ended_at = sqlite3_column_int64(s, 11);
    t->has_exit_code = sqlite3_column_type(s, 12) != SQLITE_NULL;
    t->exit_code = sqlite3_column_int(s, 12);
    t->error = store_col_str(s, 13);
    t->output_path = store_col_str(s, 14);
    t->log_path = store_col_str(s, 15);
    t->spark_app_id = store_col_str(s, 16);
    t->kernel_conn = store_col_str(s, 17);
    t->kernel_pid = sqlite3_column_int(s, 18);
    t->kernel_pid_start_time = sqlite3_column_int64(s, 19);
    t->kernel_kept_until = sqlite3_column_int64(s, 20);
}

static void hook_row(sqlite3_stmt *s, store_webhook_t *w)
{
    w->id = sqlite3_column_int64(s, 0);
    w->run = sqlite3_column_int64(s, 1);
    w->url = store_col_str(s, 2);
    w->event = store_col_str(s, 3);
    w->payload_json = store_col_str(s, 4);
    w->state = (store_webhook_state_t)col_enum(s, 5, webhook_state_names, 3);
    w->attempts = sqlite3_column_int(s, 6);
    w->next_attempt_at = sqlite3_column_int64(s, 7);
    w->last_error = store_col_str(s, 8);
    w->created_at = sqlite3_column_int64(s, 9);
    w->delivered_at = sqlite3_column_int64(s, 10);
}

/* Grow-by-doubling append for the { v, n } lists; returns the new slot. */
static void *list_push(void **v, size_t *n, size_t elem)
{
    /* capacity is implicit: powers of two from 8 */
    if (*n == 0 || (*n >= 8 && (*n & (*n - 1)) == 0))
        *v = xrealloc(*v, (*n < 8 ? 8 : *n * 2) * elem);
    char *slot = (char *)*v + *n * elem;
    (*n)++;
    memset(slot, 0, elem);
    return slot;
}

/* Step a bound SELECT of TASK_COLS into a list (appending), then reset. */
static int collect_tasks(store_t *st, sqlite3_stmt *s, store_task_runs_t *out, nb_err_t *err)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        task_row(s, list_push((void **)&out->v, &out->n, sizeof *out->v));
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(st, rc, "read task runs", err);
}

static int collect_runs(store_t *st, sqlite3_stmt *s, store_runs_t *out, nb_err_t *err)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        run_row(s, list_push((void **)&out->v, &out->n, sizeof *out->v));
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : store_sqlerr(st, rc, "read runs", err);
}

/* An UPDATE guarded by the expected state must have changed exactly one
 * row; anything else means the lock discipline was broken. */
static int step_one(store_t *st, sqlite3_stmt *s, const char *what, nb_err_t *err)
{
    int rc = store_step_done(st, s, what, err);
    if (rc) return rc;
    NB_ASSERT(sqlite3_changes(store_db(st)) == 1);
    return 0;
}

/* ---- current state, read under the write lock ---------------------------------- */

struct run_cur {
    store_run_state_t state;
    char *flow, *run_id;
};

static void run_cur_free(struct run_cur *c)
{
    free(c->flow);
    free(c->run_id);
}

static int run_load(store_t *st, int64_t run, struct run_cur *c, nb_err_t *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT state, flow, run_id FROM runs WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, run);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        c->state = (store_run_state_t)col_enum(s, 0, run_state_names, STORE_RUN_NSTATES);
        c->flow = store_col_str(s, 1);
        c->run_id = store_col_str(s, 2);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no run with id %lld", (long long)run);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read run", err);
}

struct task_cur {
    store_task_state_t state;
    store_run_state_t  run_state;
    int64_t            run;
    int                try_number, max_tries;
    char              *flow, *run_id, *task;
};

static void task_cur_free(struct task_cur *c)
{
    free(c->flow);
    free(c->run_id);
    free(c->task);
}

static int task_load(store_t *st, int64_t id, struct task_cur *c, nb_err_t *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT t.state, r.state, t.run, t.try_number, t.max_tries, "
                            "r.flow, r.run_id, t.task "
                            "FROM task_runs t JOIN runs r ON r.id = t.run WHERE t.id = ?1",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        c->state = (store_task_state_t)col_enum(s, 0, task_state_names, STORE_TASK_NSTATES);
        c->run_state = (store_run_state_t)col_enum(s, 1, run_state_names, STORE_RUN_NSTATES);
        c->run = sqlite3_column_int64(s, 2);
        c->try_number = sqlite3_column_int(s, 3);
        c->max_tries = sqlite3_column_int(s, 4);
        c->flow = store_col_str(s, 5);
        c->run_id = store_col_str(s, 6);
        c->task = store_col_str(s, 7);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return err_set(err, -ENOENT, "no task run with id %lld", (long long)id);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read task run", err);
}

/* -ESTALE unless the task is in `want` and its run is running. */
static int task_expect(const struct task_cur *c, store_task_state_t want, const char *action,
                       nb_err_t *err)
{
    if (c->state != want)
        return err_set(err, -ESTALE, "cannot %s task '%s' of run %s: it is %s, not %s", action,
                       c->task, c->run_id, task_state_names[c->state], task_state_names[want]);
    if (c->run_state != STORE_RUN_RUNNING)
        return err_set(err, -ESTALE, "cannot %s task '%s': run %s is %s, not running", action,
                       c->task, c->run_id, run_state_names[c->run_state]);
    return 0;
}

static int task_event(store_t *st, int64_t now, const struct task_cur *c,
                      store_task_state_t state, json_t *extra, nb_err_t *err)
{
    char kind[32];
    snprintf(kind, sizeof kind, "task.%s", task_state_names[state]);
    json_t *j = extra ? extra : json_object();
    json_object_set_new(j, "run_id", json_string(c->run_id));
    return store_event_add(st, now, kind, c->flow, c->run, c->task, j, err);
}

static int enqueue_hooks(store_t *st, int64_t run, const store_hook_t *hooks, size_t n,
                         int64_t now, nb_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *s;
        int rc = store_stmt(st, "INSERT INTO webhook_deliveries(run, url, event, payload_json, "
                                "next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                            &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, run);
        store_bind_text(s, 2, hooks[i].url);
        store_bind_text(s, 3, hooks[i].event);
        store_bind_text(s, 4, hooks[i].payload_json ? hooks[i].payload_json : "{}");
        sqlite3_bind_int64(s, 5, now);
        if ((rc = store_step_done(st, s, "enqueue webhook", err))) return rc;
    }
    return 0;
}

/* ---- tick fire ---------------------------------------------------------------- */

struct fire_arg {
    const store_fire_t *f;
    const char *run_id;
    int64_t now, run;
};

static int fire_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct fire_arg *a = varg;
    const store_fire_t *f = a->f;
    sqlite3_stmt *s;
    /* The live incarnation of the name: a run never lands on a deleted row. */
    int rc = store_stmt(st, "SELECT id, paused FROM flows WHERE name = ?1 AND deleted_at IS NULL",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, f->flow);
    rc = sqlite3_step(s);
    int64_t flow_id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    int paused = rc == SQLITE_ROW && sqlite3_column_int(s, 1);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no flow named '%s'", f->flow);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "read flow", err);
    if (f->flow_id && f->flow_id != flow_id)
        return err_set(err, -ENOENT, "flow '%s' was deleted and created again", f->flow);
    if (paused && f->kind == STORE_RUN_SCHEDULED)
        return err_set(err, -ESTALE, "flow '%s' is paused: scheduled tick not fired", f->flow);

    /* Checked before anything is written, for a precise message (the
     * primary key below would refuse the tick anyway). */
    if (f->kind != STORE_RUN_MANUAL) {
        rc = store_stmt(st, "SELECT run FROM ticks WHERE flow_id = ?1 AND logical_us = ?2", &s,
                        err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, flow_id);
        sqlite3_bind_int64(s, 2, f->logical_us);
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc == SQLITE_ROW)
            return err_set(err, -EEXIST, "tick %lld of flow '%s' already fired",
                           (long long)f->logical_us, f->flow);
        if (rc != SQLITE_DONE) return store_sqlerr(st, rc, "read ticks", err);
    }

    /* The run copies the flow's current spec and version. */
    rc = store_stmt(st, "INSERT INTO runs(run_id, flow_id, flow, kind, logical_us, state, "
                        "flow_version, spec_json, params_json, created_at, triggered_by) "
                        "SELECT ?1, id, name, ?2, ?3, 'queued', version, spec_json, ?4, ?5, ?6 "
                        "FROM flows WHERE id = ?7", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, a->run_id);
    store_bind_text(s, 2, kind_names[f->kind]);
    sqlite3_bind_int64(s, 3, f->logical_us);
    store_bind_text(s, 4, f->params_json);
    sqlite3_bind_int64(s, 5, a->now);
    store_bind_time(s, 6, f->triggered_by);
    sqlite3_bind_int64(s, 7, flow_id);
    if ((rc = store_step_done(st, s, "create run", err))) {
        if (rc == -EEXIST)
            err_set(err, rc, "flow '%s' already has a run '%s'", f->flow, a->run_id);
        return rc;
    }
    a->run = sqlite3_last_insert_rowid(store_db(st));

    if (f->kind != STORE_RUN_MANUAL) {
        rc = store_stmt(st, "INSERT INTO ticks(flow_id, logical_us, fired_at, run) "
                            "VALUES (?1, ?2, ?3, ?4)", &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, flow_id);
        sqlite3_bind_int64(s, 2, f->logical_us);
        sqlite3_bind_int64(s, 3, a->now);
        sqlite3_bind_int64(s, 4, a->run);
        if ((rc = store_step_done(st, s, "record tick", err))) {
            if (rc == -EEXIST)
                err_set(err, rc, "tick %s of flow '%s' already fired", a->run_id, f->flow);
            return rc;
        }
    }

    for (size_t i = 0; i < f->ntasks; i++) {
        rc = store_stmt(st, "INSERT INTO task_runs(run, task, state, max_tries) "
                            "VALUES (?1, ?2, 'pending', ?3)", &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, a->run);
        store_bind_text(s, 2, f->tasks[i].task);
        sqlite3_bind_int(s, 3, f->tasks[i].max_tries);
        if ((rc = store_step_done(st, s, "create task run", err))) {
            if (rc == -EEXIST)
                err_set(err, -EINVAL, "task '%s' listed twice", f->tasks[i].task);
            return rc == -EEXIST ? -EINVAL : rc;
        }
    }
    return store_event_add(st, a->now, "run.queued", f->flow, a->run, NULL,
                           json_pack("{sssssIsi}", "run_id", a->run_id, "kind",
                                     kind_names[f->kind], "logical_us",
                                     (json_int_t)f->logical_us, "tasks", (int)f->ntasks),
                           err);
}

int store_tick_fire(store_t *st, const store_fire_t *f, int64_t now, int64_t *run_out,
                    nb_err_t *err)
{
    if (!f->flow || (unsigned)f->kind >= STORE_RUN_NKINDS || f->ntasks == 0 || !f->tasks)
        return err_set(err, -EINVAL, "tick fire: flow, kind and at least one task are required");
    for (size_t i = 0; i < f->ntasks; i++)
        if (!f->tasks[i].task || !*f->tasks[i].task || f->tasks[i].max_tries < 1)
            return err_set(err, -EINVAL, "tick fire: task %zu needs a name and max_tries >= 1",
                           i);
    char idbuf[96];
    if (!f->run_id) store_run_id_format(f->kind, f->logical_us, idbuf, sizeof idbuf);
    struct fire_arg a = { f, f->run_id ? f->run_id : idbuf, now, 0 };
    int rc = store_tx(st, fire_tx, &a, err);
    if (rc == 0 && run_out) *run_out = a.run;
    return rc;
}

int store_tick_last(store_t *st, const char *flow, int64_t *logical_us, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT max(t.logical_us) FROM ticks t JOIN flows f "
                            "ON f.id = t.flow_id WHERE f.name = ?1 AND f.deleted_at IS NULL",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, flow);
    rc = sqlite3_step(s);
    int none = rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL;
    if (rc == SQLITE_ROW) *logical_us = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "read ticks", err);
    return none ? err_set(err, -ENOENT, "flow '%s' has no tick yet", flow) : 0;
}

/* ---- runs --------------------------------------------------------------------- */

struct run_arg {
    int64_t run, now;
    store_run_state_t state;
    const store_hook_t *hooks;
    size_t nhooks;
    store_task_runs_t *running;
};

static int run_start_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct run_arg *a = varg;
    struct run_cur c;
    int rc = run_load(st, a->run, &c, err);
    if (rc) goto out;
    if (c.state != STORE_RUN_QUEUED) {
        rc = err_set(err, -ESTALE, "cannot start run %s: it is %s, not queued", c.run_id,
                     run_state_names[c.state]);
        goto out;
    }
    sqlite3_stmt *s;
    if ((rc = store_stmt(st, "UPDATE runs SET state = 'running', started_at = ?2 "
                             "WHERE id = ?1 AND state = 'queued'", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->run);
    sqlite3_bind_int64(s, 2, a->now);
    if ((rc = step_one(st, s, "start run", err))) goto out;
    rc = store_event_add(st, a->now, "run.running", c.flow, a->run, NULL,
                         json_pack("{ss}", "run_id", c.run_id), err);
out:
    run_cur_free(&c);
    return rc;
}

int store_run_start(store_t *st, int64_t run, int64_t now, nb_err_t *err)
{
    struct run_arg a = { .run = run, .now = now };
    return store_tx(st, run_start_tx, &a, err);
}

static int run_finish_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct run_arg *a = varg;
    struct run_cur c;
    sqlite3_stmt *s;
    int rc = run_load(st, a->run, &c, err);
    if (rc) goto out;
    int ok = c.state == STORE_RUN_RUNNING ||
             (c.state == STORE_RUN_QUEUED && a->state == STORE_RUN_FAILED);
    if (!ok) {
        rc = err_set(err, -ESTALE, "cannot mark run %s %s: it is %s", c.run_id,
                     run_state_names[a->state], run_state_names[c.state]);
        goto out;
    }
    if ((rc = store_stmt(st, "SELECT count(*) FROM task_runs WHERE run = ?1 AND state IN "
                             "('pending', 'queued', 'running', 'up_for_retry')", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->run);
    rc = sqlite3_step(s);
    int64_t open = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        rc = store_sqlerr(st, rc, "count tasks", err);
        goto out;
    }
    if (open) {
        rc = err_set(err, -EBUSY, "cannot mark run %s %s: %lld task(s) not finished", c.run_id,
                     run_state_names[a->state], (long long)open);
        goto out;
    }
    if ((rc = store_stmt(st, "UPDATE runs SET state = ?2, ended_at = ?3 "
                             "WHERE id = ?1 AND state IN ('queued', 'running')", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->run);
    store_bind_text(s, 2, run_state_names[a->state]);
    sqlite3_bind_int64(s, 3, a->now);
    if ((rc = step_one(st, s, "finish run", err))) goto out;
    if ((rc = enqueue_hooks(st, a->run, a->hooks, a->nhooks, a->now, err))) goto out;
    char kind[32];
    snprintf(kind, sizeof kind, "run.%s", run_state_names[a->state]);
    rc = store_event_add(st, a->now, kind, c.flow, a->run, NULL,
                         json_pack("{ss}", "run_id", c.run_id), err);
out:
    run_cur_free(&c);
    return rc;
}

int store_run_finish(store_t *st, int64_t run, store_run_state_t state, int64_t now,
                     const store_hook_t *hooks, size_t nhooks, nb_err_t *err)
{
    if (state != STORE_RUN_SUCCESS && state != STORE_RUN_FAILED)
        return err_set(err, -EINVAL, "a run finishes as success or failed (cancel is "
                       "store_run_cancel)");
    struct run_arg a = { .run = run, .now = now, .state = state, .hooks = hooks,
                         .nhooks = nhooks };
    return store_tx(st, run_finish_tx, &a, err);
}

static int run_cancel_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct run_arg *a = varg;
    struct run_cur c;
    store_task_runs_t open = { NULL, 0 };
    sqlite3_stmt *s;
    int rc = run_load(st, a->run, &c, err);
    if (rc) goto out;
    if (store_run_state_terminal(c.state)) {
        rc = err_set(err, -ESTALE, "cannot cancel run %s: it is already %s", c.run_id,
                     run_state_names[c.state]);
        goto out;
    }
    if ((rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t WHERE t.run = ?1 AND "
                             "t.state IN ('pending', 'queued', 'running', 'up_for_retry') "
                             "ORDER BY t.id", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->run);
    if ((rc = collect_tasks(st, s, &open, err))) goto out;
    for (size_t i = 0; i < open.n; i++) {
        if ((rc = store_stmt(st, "UPDATE task_runs SET state = 'cancelled', ended_at = ?2, "
                                 "next_retry_at = NULL WHERE id = ?1", &s, err)))
            goto out;
        sqlite3_bind_int64(s, 1, open.v[i].id);
        sqlite3_bind_int64(s, 2, a->now);
        if ((rc = step_one(st, s, "cancel task", err))) goto out;
        json_t *j = json_pack("{ss}", "was", task_state_names[open.v[i].state]);
        json_object_set_new(j, "run_id", json_string(c.run_id));
        if ((rc = store_event_add(st, a->now, "task.cancelled", c.flow, a->run, open.v[i].task,
                                  j, err)))
            goto out;
    }
    if ((rc = store_stmt(st, "UPDATE runs SET state = 'cancelled', ended_at = ?2 "
                             "WHERE id = ?1 AND state IN ('queued', 'running')", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->run);
    sqlite3_bind_int64(s, 2, a->now);
    if ((rc = step_one(st, s, "cancel run", err))) goto out;
    if ((rc = enqueue_hooks(st, a->run, a->hooks, a->nhooks, a->now, err))) goto out;
    if ((rc = store_event_add(st, a->now, "run.cancelled", c.flow, a->run, NULL,
                              json_pack("{sssi}", "run_id", c.run_id, "tasks_cancelled",
                                        (int)open.n), err)))
        goto out;
    if (a->running) {
        /* hand over the ones that were running (state as it was) */
        for (size_t i = 0; i < open.n; i++) {
            if (open.v[i].state == STORE_TASK_RUNNING) {
                store_task_run_t *t = list_push((void **)&a->running->v, &a->running->n,
                                                 sizeof *t);
                *t = open.v[i];
                memset(&open.v[i], 0, sizeof open.v[i]);
            }
        }
    }
out:
    store_task_runs_free(&open);
    run_cur_free(&c);
    return rc;
}

int store_run_cancel(store_t *st, int64_t run, int64_t now, const store_hook_t *hooks,
                     size_t nhooks, store_task_runs_t *was_running, nb_err_t *err)
{
    if (was_running) {
        was_running->v = NULL;
        was_running->n = 0;
    }
    struct run_arg a = { .run = run, .now = now, .hooks = hooks, .nhooks = nhooks,
                         .running = was_running };
    int rc = store_tx(st, run_cancel_tx, &a, err);
    if (rc && was_running) store_task_runs_free(was_running);
    return rc;
}

/* ---- task runs ------------------------------------------------------------------ */

struct task_arg {
    int64_t id, now;
    store_task_state_t state;          /* queue: -, finish: result, skip: target */
    int pid, exit_code;
    int64_t pid_start_time, retry_at;
    const char *output_path, *log_path, *error;
};

static int task_queue_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct task_arg *a = varg;
    struct task_cur c;
    sqlite3_stmt *s;
    int rc = task_load(st, a->id, &c, err);
    if (rc || (rc = task_expect(&c, STORE_TASK_PENDING, "queue", err))) goto out;
    if ((rc = store_stmt(st, "UPDATE task_runs SET state = 'queued', queued_at = ?2 "
                             "WHERE id = ?1 AND state = 'pending'", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    sqlite3_bind_int64(s, 2, a->now);
    if ((rc = step_one(st, s, "queue task", err))) goto out;
    rc = task_event(st, a->now, &c, STORE_TASK_QUEUED, NULL, err);
out:
    task_cur_free(&c);
    return rc;
}

int store_task_queue(store_t *st, int64_t task_run, int64_t now, nb_err_t *err)
{
    struct task_arg a = { .id = task_run, .now = now };
    return store_tx(st, task_queue_tx, &a, err);
}

static int task_start_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct task_arg *a = varg;
    struct task_cur c;
    sqlite3_stmt *s;
    int rc = task_load(st, a->id, &c, err);
    if (rc || (rc = task_expect(&c, STORE_TASK_QUEUED, "start", err))) goto out;
    if ((rc = store_stmt(st, "UPDATE task_runs SET state = 'running', "
                             "try_number = try_number + 1, pid = ?2, pid_start_time = ?3, "
                             "output_path = coalesce(?4, output_path), "
                             "log_path = coalesce(?5, log_path), started_at = ?6, "
                             "ended_at = NULL, exit_code = NULL, error = NULL, "
                             "next_retry_at = NULL WHERE id = ?1 AND state = 'queued'",
                         &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    store_bind_time(s, 2, a->pid);
    store_bind_time(s, 3, a->pid_start_time);
    store_bind_text(s, 4, a->output_path);
    store_bind_text(s, 5, a->log_path);
    sqlite3_bind_int64(s, 6, a->now);
    if ((rc = step_one(st, s, "start task", err))) goto out;
    rc = task_event(st, a->now, &c, STORE_TASK_RUNNING,
                    json_pack("{sisi}", "try", c.try_number + 1, "pid", a->pid), err);
out:
    task_cur_free(&c);
    return rc;
}

int store_task_start(store_t *st, int64_t task_run, int pid, int64_t pid_start_time,
                     const char *output_path, const char *log_path, int64_t now, nb_err_t *err)
{
    struct task_arg a = { .id = task_run, .now = now, .pid = pid,
                          .pid_start_time = pid_start_time, .output_path = output_path,
                          .log_path = log_path };
    return store_tx(st, task_start_tx, &a, err);
}

static int task_finish_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct task_arg *a = varg;
    struct task_cur c;
    sqlite3_stmt *s;
    int rc = task_load(st, a->id, &c, err);
    if (rc || (rc = task_expect(&c, STORE_TASK_RUNNING, "finish", err))) goto out;
    store_task_state_t to = a->state;
    if (to == STORE_TASK_FAILED && a->retry_at && c.try_number < c.max_tries)
        to = STORE_TASK_UP_FOR_RETRY;
    if ((rc = store_stmt(st, "UPDATE task_runs SET state = ?2, exit_code = ?3, error = ?4, "
                             "ended_at = ?5, next_retry_at = ?6 "
                             "WHERE id = ?1 AND state = 'running'", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    store_bind_text(s, 2, task_state_names[to]);
    sqlite3_bind_int(s, 3, a->exit_code);
    store_bind_text(s, 4, a->error);
    sqlite3_bind_int64(s, 5, a->now);
    store_bind_time(s, 6, to == STORE_TASK_UP_FOR_RETRY ? a->retry_at : 0);
    if ((rc = step_one(st, s, "finish task", err))) goto out;
    json_t *j = json_pack("{sisi}", "try", c.try_number, "exit_code", a->exit_code);
    if (a->error) json_object_set_new(j, "error", json_string(a->error));
    if (to == STORE_TASK_UP_FOR_RETRY)
        json_object_set_new(j, "next_retry_at", json_integer(a->retry_at));
    if ((rc = task_event(st, a->now, &c, to, j, err))) goto out;
    a->state = to;
out:
    task_cur_free(&c);
    return rc;
}

int store_task_set_spark(store_t *st, int64_t task_run, const char *app_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE task_runs SET spark_app_id = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, task_run);
    store_bind_text(s, 2, app_id);
    return store_step_done(st, s, "record the Spark application", err);
}

int store_task_set_kernel(store_t *st, int64_t task_run, const char *conn, int pid,
                         int64_t pid_start_time, int64_t kept_until, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE task_runs SET kernel_conn = ?2, kernel_pid = ?3, "
                            "kernel_pid_start_time = ?4, kernel_kept_until = ?5 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, task_run);
    store_bind_text(s, 2, conn);
    sqlite3_bind_int(s, 3, pid);
    sqlite3_bind_int64(s, 4, pid_start_time);
    sqlite3_bind_int64(s, 5, kept_until);
    return store_step_done(st, s, "record the kept kernel", err);
}

int store_task_clear_kernel(store_t *st, int64_t task_run, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE task_runs SET kernel_conn = NULL, kernel_pid = NULL, "
                            "kernel_pid_start_time = NULL, kernel_kept_until = NULL WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, task_run);
    return store_step_done(st, s, "forget the kept kernel", err);
}

int store_task_kept_kernels(store_t *st, store_task_runs_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t WHERE t.kernel_kept_until IS NOT NULL "
                            "ORDER BY t.kernel_kept_until", &s, err);
    if (rc) return rc;
    return collect_tasks(st, s, out, err);
}

int store_task_finish(store_t *st, int64_t task_run, store_task_state_t result, int exit_code,
                      const char *error, int64_t retry_at, int64_t now,
                      store_task_state_t *new_state, nb_err_t *err)
{
    if (result != STORE_TASK_SUCCESS && result != STORE_TASK_FAILED)
        return err_set(err, -EINVAL, "a task finishes as success or failed");
    struct task_arg a = { .id = task_run, .now = now, .state = result, .exit_code = exit_code,
                          .error = error, .retry_at = retry_at };
    int rc = store_tx(st, task_finish_tx, &a, err);
    if (rc == 0 && new_state) *new_state = a.state;
    return rc;
}

struct retry_arg {
    int64_t now;
    int limit;
    store_task_runs_t *out;
};

static int retry_due_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct retry_arg *a = varg;
    sqlite3_stmt *s;
    store_task_runs_t due = { NULL, 0 };
    int rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t JOIN runs r ON r.id = t.run "
                            "WHERE t.state = 'up_for_retry' AND t.next_retry_at <= ?1 "
                            "AND r.state = 'running' ORDER BY t.next_retry_at, t.id LIMIT ?2",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->now);
    sqlite3_bind_int(s, 2, a->limit);
    if ((rc = collect_tasks(st, s, &due, err))) goto out;
    for (size_t i = 0; i < due.n; i++) {
        store_task_run_t *t = &due.v[i];
        struct task_cur c;
        if ((rc = task_load(st, t->id, &c, err))) goto out;
        if ((rc = store_stmt(st, "UPDATE task_runs SET state = 'queued', queued_at = ?2, "
                                 "next_retry_at = NULL WHERE id = ?1 AND state = 'up_for_retry'",
                             &s, err)) ||
            (rc = (sqlite3_bind_int64(s, 1, t->id), sqlite3_bind_int64(s, 2, a->now),
                   step_one(st, s, "requeue task", err))) ||
            (rc = task_event(st, a->now, &c, STORE_TASK_QUEUED,
                             json_pack("{si}", "retry_of_try", c.try_number), err))) {
            task_cur_free(&c);
            goto out;
        }
        task_cur_free(&c);
        t->state = STORE_TASK_QUEUED;
        t->queued_at = a->now;
        t->next_retry_at = 0;
    }
    *a->out = due;
    due.v = NULL;
    due.n = 0;
out:
    store_task_runs_free(&due);
    return rc;
}

int store_task_retry_due(store_t *st, int64_t now, int limit, store_task_runs_t *out,
                         nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    if (limit < 1) return err_set(err, -EINVAL, "limit must be >= 1");
    struct retry_arg a = { now, limit, out };
    return store_tx(st, retry_due_tx, &a, err);
}

static int task_skip_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct task_arg *a = varg;
    struct task_cur c;
    sqlite3_stmt *s;
    int rc = task_load(st, a->id, &c, err);
    if (rc || (rc = task_expect(&c, STORE_TASK_PENDING, "skip", err))) goto out;
    if ((rc = store_stmt(st, "UPDATE task_runs SET state = ?2, error = ?3, ended_at = ?4 "
                             "WHERE id = ?1 AND state = 'pending'", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    store_bind_text(s, 2, task_state_names[a->state]);
    store_bind_text(s, 3, a->error);
    sqlite3_bind_int64(s, 4, a->now);
    if ((rc = step_one(st, s, "skip task", err))) goto out;
    json_t *j = json_object();
    if (a->error) json_object_set_new(j, "reason", json_string(a->error));
    rc = task_event(st, a->now, &c, a->state, j, err);
out:
    task_cur_free(&c);
    return rc;
}

int store_task_skip(store_t *st, int64_t task_run, store_task_state_t state, const char *reason,
                    int64_t now, nb_err_t *err)
{
    if (state != STORE_TASK_SKIPPED && state != STORE_TASK_UPSTREAM_FAILED)
        return err_set(err, -EINVAL, "skip target must be skipped or upstream_failed");
    struct task_arg a = { .id = task_run, .now = now, .state = state, .error = reason };
    return store_tx(st, task_skip_tx, &a, err);
}

/* Any non-terminal state -> cancelled, for one task of a running run (the
 * run goes on: its other tasks follow their trigger rules). */
static int task_cancel_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct task_arg *a = varg;
    struct task_cur c;
    sqlite3_stmt *s;
    int rc = task_load(st, a->id, &c, err);
    if (rc) goto out;
    if (store_task_state_terminal(c.state)) {
        rc = err_set(err, -ESTALE, "cannot cancel task '%s' of run %s: it is already %s",
                     c.task, c.run_id, task_state_names[c.state]);
        goto out;
    }
    if (c.run_state != STORE_RUN_RUNNING) {
        rc = err_set(err, -ESTALE, "cannot cancel task '%s': run %s is %s, not running",
                     c.task, c.run_id, run_state_names[c.run_state]);
        goto out;
    }
    a->state = c.state;   /* what it was, for the caller */
    if ((rc = store_stmt(st, "UPDATE task_runs SET state = 'cancelled', error = ?3, "
                             "ended_at = ?2, next_retry_at = NULL WHERE id = ?1", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    sqlite3_bind_int64(s, 2, a->now);
    store_bind_text(s, 3, a->error);
    if ((rc = step_one(st, s, "cancel task", err))) goto out;
    rc = task_event(st, a->now, &c, STORE_TASK_CANCELLED, NULL, err);
out:
    task_cur_free(&c);
    return rc;
}

int store_task_cancel(store_t *st, int64_t task_run, const char *reason, int64_t now,
                      store_task_state_t *was, nb_err_t *err)
{
    struct task_arg a = { .id = task_run, .now = now, .error = reason };
    int rc = store_tx(st, task_cancel_tx, &a, err);
    if (rc == 0 && was) *was = a.state;
    return rc;
}

/* ---- recovery ------------------------------------------------------------------- */

struct recover_arg {
    int64_t now;
    store_task_runs_t *running;
    store_runs_t *active;
};

static int recover_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct recover_arg *a = varg;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t "
                            "WHERE t.state = 'running' ORDER BY t.id", &s, err);
    if (rc || (rc = collect_tasks(st, s, a->running, err))) return rc;
    rc = store_stmt(st, "SELECT " RUN_COLS " FROM runs r "
                        "WHERE r.state IN ('queued', 'running') ORDER BY r.id", &s, err);
    if (rc || (rc = collect_runs(st, s, a->active, err))) return rc;
    return store_event_add(st, a->now, "store.recover", NULL, 0, NULL,
                           json_pack("{sisi}", "running_tasks", (int)a->running->n,
                                     "active_runs", (int)a->active->n), err);
}

int store_recover(store_t *st, int64_t now, store_task_runs_t *running, store_runs_t *active,
                  nb_err_t *err)
{
    store_task_runs_t t = { NULL, 0 };
    store_runs_t r = { NULL, 0 };
    struct recover_arg a = { now, &t, &r };
    int rc = store_tx(st, recover_tx, &a, err);
    if (rc == 0 && running) {
        *running = t;
        t.v = NULL;
        t.n = 0;
    }
    if (rc == 0 && active) {
        *active = r;
        r.v = NULL;
        r.n = 0;
    }
    store_task_runs_free(&t);
    store_runs_free(&r);
    return rc;
}

/* ---- webhooks ------------------------------------------------------------------- */

/* scheme://host[:port] of a URL: events are visible to users through the
 * API, and webhook URLs often carry a secret in their path or query. */
static const char *url_origin(const char *url, char *out, size_t n)
{
    const char *p = url ? strstr(url, "://") : NULL;
    size_t len = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : 0;
    const char *at = p ? memchr(p + 3, '@', len - (size_t)(p + 3 - url)) : NULL;
    if (!p) {
        snprintf(out, n, "?");
        return out;
    }
    if (at)   /* drop user:password@ */
        snprintf(out, n, "%.*s%.*s", (int)(p + 3 - url), url, (int)(url + len - at - 1), at + 1);
    else
        snprintf(out, n, "%.*s", (int)len, url);
    return out;
}

int store_webhooks_due(store_t *st, int64_t now, int limit, store_webhooks_t *out,
                       nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " HOOK_COLS " FROM webhook_deliveries "
                            "WHERE state = 'pending' AND next_attempt_at <= ?1 "
                            "ORDER BY next_attempt_at, id LIMIT ?2", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        hook_row(s, list_push((void **)&out->v, &out->n, sizeof *out->v));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_webhooks_free(out);
        return store_sqlerr(st, rc, "read webhooks", err);
    }
    return 0;
}

struct hook_arg {
    int64_t id, next, now;
    int ok;
    const char *error;
};

static int hook_attempt_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct hook_arg *a = varg;
    sqlite3_stmt *s;
    char origin[256];
    int rc = store_stmt(st, "SELECT w.state, w.attempts, w.url, w.event, w.run, r.flow "
                            "FROM webhook_deliveries w LEFT JOIN runs r ON r.id = w.run "
                            "WHERE w.id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->id);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            return err_set(err, -ENOENT, "no webhook delivery %lld", (long long)a->id);
        return store_sqlerr(st, rc, "read webhook", err);
    }
    int state = col_enum(s, 0, webhook_state_names, 3);
    int attempts = sqlite3_column_int(s, 1) + 1;
    char *url = store_col_str(s, 2), *event = store_col_str(s, 3), *flow = store_col_str(s, 5);
    int64_t run = sqlite3_column_int64(s, 4);
    sqlite3_reset(s);
    if (state != STORE_WEBHOOK_PENDING) {
        rc = err_set(err, -ESTALE, "webhook delivery %lld is already %s", (long long)a->id,
                     webhook_state_names[state]);
        goto out;
    }
    const char *to = a->ok ? "delivered" : a->next ? "pending" : "failed";
    if ((rc = store_stmt(st, "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, "
                             "last_error = ?4, next_attempt_at = coalesce(?5, next_attempt_at), "
                             "delivered_at = ?6 WHERE id = ?1 AND state = 'pending'", &s, err)))
        goto out;
    sqlite3_bind_int64(s, 1, a->id);
    store_bind_text(s, 2, to);
    sqlite3_bind_int(s, 3, attempts);
    store_bind_text(s, 4, a->ok ? NULL : a->error);
    store_bind_time(s, 5, a->ok ? 0 : a->next);
    store_bind_time(s, 6, a->ok ? a->now : 0);
    if ((rc = step_one(st, s, "record webhook attempt", err))) goto out;
    if (!a->ok && !a->next)
        rc = store_event_add(st, a->now, "webhook.failed", flow, run, NULL,
                             json_pack("{sIsssssiss?}", "delivery", (json_int_t)a->id, "url",
                                       url_origin(url, origin, sizeof origin),
                                       "event", event, "attempts", attempts, "error", a->error),
                             err);
out:
    free(url);
    free(event);
    free(flow);
    return rc;
}

int store_webhook_attempt(store_t *st, int64_t id, int ok, const char *error,
                          int64_t next_attempt_at, int64_t now, nb_err_t *err)
{
    struct hook_arg a = { id, next_attempt_at, now, ok, error };
    return store_tx(st, hook_attempt_tx, &a, err);
}

/* ---- queries -------------------------------------------------------------------- */

static int run_tasks(store_t *st, int64_t run, store_task_runs_t *tasks, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t WHERE t.run = ?1 "
                            "ORDER BY t.task", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, run);
    return collect_tasks(st, s, tasks, err);
}

/* Shared tail of the two run_get variants: s is bound and ready.  With
 * tasks, both reads share one snapshot (a read transaction), so a run never
 * shows as finished next to a task still running. */
static int run_get_common(store_t *st, sqlite3_stmt *s, const char *what, store_run_t *out,
                          store_task_runs_t *tasks, nb_err_t *err)
{
    sqlite3_stmt *tx = NULL;
    nb_err_t ignored;
    int rc;
    if (tasks && (rc = store_stmt(st, "BEGIN", &tx, err)) == 0)
        rc = store_step_done(st, tx, "begin", err);
    else
        rc = 0;
    if (rc) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) run_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) rc = err_set(err, -ENOENT, "no run %s", what);
    else if (rc != SQLITE_ROW) rc = store_sqlerr(st, rc, "read run", err);
    else if (tasks && (rc = run_tasks(st, out->id, tasks, err))) store_run_clear(out);
    else rc = 0;
    if (tasks && store_stmt(st, "COMMIT", &tx, &ignored) == 0)
        store_step_done(st, tx, "end", &ignored);
    return rc;
}

int store_run_get(store_t *st, int64_t run, store_run_t *out, store_task_runs_t *tasks,
                  nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (tasks) {
        tasks->v = NULL;
        tasks->n = 0;
    }
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " RUN_COLS " FROM runs r WHERE r.id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, run);
    char what[32];
    snprintf(what, sizeof what, "with id %lld", (long long)run);
    return run_get_common(st, s, what, out, tasks, err);
}

int store_run_get_by_run_id(store_t *st, const char *flow, const char *run_id,
                            store_run_t *out, store_task_runs_t *tasks, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (tasks) {
        tasks->v = NULL;
        tasks->n = 0;
    }
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " RUN_COLS " FROM runs r JOIN flows f ON f.id = r.flow_id "
                            "WHERE f.name = ?1 AND f.deleted_at IS NULL AND r.run_id = ?2",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, flow);
    store_bind_text(s, 2, run_id);
    char what[600];
    snprintf(what, sizeof what, "'%.256s' in flow '%.256s'", run_id, flow);
    return run_get_common(st, s, what, out, tasks, err);
}

int store_task_run_get(store_t *st, int64_t task_run, store_task_run_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TASK_COLS " FROM task_runs t WHERE t.id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, task_run);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) task_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return err_set(err, -ENOENT, "no task run with id %lld", (long long)task_run);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read task run", err);
}

/*
 * The list query is assembled from fixed fragments — one statement per
 * combination of filters, so each can use its index (runs_flow_name,
 * runs_state, the unique (flow_id, run_id), or the rowid for "everything"),
 * which a single "(?1 IS NULL OR flow = ?1)" statement would defeat.  No
 * input ever reaches the SQL text; the 16 variants are cached under the
 * addresses of list_keys[].
 */
static const char list_keys[16] = { 0 };

int store_runs_list(store_t *st, const store_run_filter_t *f, store_runs_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    if (f->limit < 1 || f->limit > 1000) return err_set(err, -EINVAL, "limit must be 1..1000");
    if (f->state >= STORE_RUN_NSTATES || f->state < -1)
        return err_set(err, -EINVAL, "bad state filter");
    int combo = (f->flow ? 1 : 0) | (f->state >= 0 ? 2 : 0) | (f->owner_id ? 4 : 0) |
                (f->flow_id ? 8 : 0);
    sqlite3_stmt *s = NULL;
    char sql[1024];
    /* The owner is the owner of the incarnation the run belongs to. */
    snprintf(sql, sizeof sql,
             "SELECT " RUN_COLS_NOSPEC " FROM runs r%s WHERE r.id < ?1%s%s%s%s "
             "ORDER BY r.id DESC LIMIT ?5",
             (combo & 4) ? " JOIN flows f ON f.id = r.flow_id" : "",
             (combo & 1) ? " AND r.flow = ?2" : "",
             (combo & 2) ? " AND r.state = ?3" : "",
             (combo & 4) ? " AND f.owner_id = ?4" : "",
             (combo & 8) ? " AND r.flow_id = ?6" : "");
    int rc = store_stmt_k(st, &list_keys[combo], sql, &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, f->before_id > 0 ? f->before_id : INT64_MAX);
    if (combo & 1) store_bind_text(s, 2, f->flow);
    if (combo & 2) store_bind_text(s, 3, run_state_names[f->state]);
    if (combo & 4) sqlite3_bind_int64(s, 4, f->owner_id);
    sqlite3_bind_int(s, 5, f->limit);
    if (combo & 8) sqlite3_bind_int64(s, 6, f->flow_id);
    if ((rc = collect_runs(st, s, out, err))) store_runs_free(out);
    return rc;
}

/* One snapshot for all the counts: an explicit read transaction. */
int store_counts(store_t *st, store_counts_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "BEGIN", &s, err);
    if (rc || (rc = store_step_done(st, s, "begin", err))) return rc;

    static const char *const q[] = {
        "SELECT state, count(*) FROM runs GROUP BY state",
        "SELECT state, count(*) FROM task_runs GROUP BY state",
        "SELECT state, count(*) FROM webhook_deliveries WHERE state != 'delivered' "
        "GROUP BY state",
        "SELECT paused, count(*) FROM flows WHERE deleted_at IS NULL GROUP BY paused",
        "SELECT 'last', coalesce(max(id), 0) FROM events",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0] && rc == 0; i++) {
        if ((rc = store_stmt(st, q[i], &s, err))) break;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t n = sqlite3_column_int64(s, 1);
            const char *k = (const char *)sqlite3_column_text(s, 0);
            int j;
            switch (i) {
            case 0:
                if ((j = name_parse(run_state_names, STORE_RUN_NSTATES, k)) >= 0)
                    out->runs[j] = n;
                break;
            case 1:
                if ((j = name_parse(task_state_names, STORE_TASK_NSTATES, k)) >= 0)
                    out->tasks[j] = n;
                break;
            case 2:
                if (strcmp(k, "pending") == 0) out->webhooks_pending = n;
                else out->webhooks_failed = n;
                break;
            case 3:
                out->flows += n;
                if (sqlite3_column_int(s, 0)) out->flows_paused = n;
                break;
            default:
                out->last_event_id = n;
            }
        }
        sqlite3_reset(s);
        rc = rc == SQLITE_DONE ? 0 : store_sqlerr(st, rc, "counts", err);
    }
    nb_err_t ignored;
    if (store_stmt(st, "COMMIT", &s, &ignored) == 0) store_step_done(st, s, "end", &ignored);
    return rc;
}

/* ---- free -------------------------------------------------------------------------- */

void store_run_clear(store_run_t *r)
{
    free(r->run_id);
    free(r->flow);
    free(r->spec_json);
    free(r->params_json);
    memset(r, 0, sizeof *r);
}

void store_runs_free(store_runs_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_run_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void store_task_run_clear(store_task_run_t *t)
{
    free(t->task);
    free(t->error);
    free(t->output_path);
    free(t->log_path);
    free(t->spark_app_id);
    free(t->kernel_conn);
    memset(t, 0, sizeof *t);
}

void store_task_runs_free(store_task_runs_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_task_run_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void store_webhook_clear(store_webhook_t *w)
{
    free(w->url);
    free(w->event);
    free(w->payload_json);
    free(w->last_error);
    memset(w, 0, sizeof *w);
}

void store_webhooks_free(store_webhooks_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_webhook_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
