/*
 * sched_run — runs in flight: the DAG of each run, the ready queue, task
 * child processes, retries, timeouts, cancel, and recovery after restart.
 *
 * Event-driven: nothing here polls.  A run starts when it is created (or
 * when a run of its flow ends and max_active_runs allows); starting it
 * evaluates the trigger rules of every task.  A task's end (its child's
 * exit callback) is recorded in the store and then only its children are
 * evaluated — a skip or upstream failure propagates further down the same
 * way — so the cost of a task end is its out-degree, not the size of the
 * DAG, and a dependent starts within the same loop iteration as its
 * parent's exit.
 *
 * The ready queue is global and FIFO: max_active_tasks bounds the children
 * alive at once across all flows.  Every transition is written to the
 * store before the in-memory state follows it; if the store refuses
 * (-ESTALE: a cancel won the race) the memory is not changed.
 *
 * Files of a run live in $HOME/runs/<flow>/<run dir>/ (runs/<flow>@<n>/...
 * for the n-th incarnation of the name, n > 1): <task>.ipynb (the
 * output notebook of the latest try, updated while it runs), <task>.log
 * (stdout and stderr of every try, each headed by a line naming the try),
 * <task>.params.json (the rendered parameters) and <task>.status.json
 * (written by the task wrapper, see sup.h).
 */

#include "sched/sched_int.h"
#include "sched/dag.h"
#include "sched/tmpl.h"
#include "iso/cgroup.h"
#include "iso/uacct.h"
#include "iso/workspace.h"
#include "store/store_auth.h"
#include "util/buf.h"
#include "util/urlesc.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static void task_end(stask_t *t, const sup_end_t *end);
static void task_on_exit(sup_task_t *p, const sup_end_t *end, void *ud);
static void run_check_done(srun_t *r);
static void run_eval_task(srun_t *r, size_t idx);

/* ---- small helpers --------------------------------------------------------------- */

srun_t *sched_run_find(sched_t *s, int64_t id)
{
    for (srun_t *r = s->runs; r; r = r->next)
        if (r->id == id) return r;
    return NULL;
}

static const flow_t *run_flow(const srun_t *r) { return r->fr->f; }

static dag_state_t dag_state_of(store_task_state_t st)
{
    switch (st) {
    case STORE_TASK_SUCCESS:         return DAG_ST_SUCCESS;
    case STORE_TASK_FAILED:
    case STORE_TASK_CANCELLED:       return DAG_ST_FAILED;
    case STORE_TASK_UPSTREAM_FAILED: return DAG_ST_UPSTREAM_FAILED;
    case STORE_TASK_SKIPPED:         return DAG_ST_SKIPPED;
    default:                         return DAG_ST_PENDING;
    }
}

static char *run_dir_name(const char *run_id)
{
    char *d = xstrdup(run_id);
    for (char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == '+'))
            *p = '_';
    return d;
}

static char *task_file(const srun_t *r, const stask_t *t, const char *suffix)
{
    return xasprintf("%s/%s%s", r->dir, run_flow(r)->tasks[t->idx].name, suffix);
}

static void queue_push(sched_t *s, stask_t *t)
{
    if (t->in_queue) return;
    t->in_queue = 1;
    t->qnext = NULL;
    if (s->qtail) s->qtail->qnext = t;
    else s->qhead = t;
    s->qtail = t;
    s->queued++;
}

static void queue_remove(sched_t *s, stask_t *t)
{
    if (!t->in_queue) return;
    stask_t **pp = &s->qhead, *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp) {
        *pp = t->qnext;
        if (s->qtail == t) s->qtail = prev;
    }
    t->in_queue = 0;
    s->queued--;
}

static void task_timer_stop(sched_t *s, stask_t *t)
{
    if (!t->timer) return;
    sched_timer_close(s, t->timer);
    t->timer = NULL;
}

/* ---- run objects ----------------------------------------------------------------- */

static void run_free(srun_t *r)
{
    sched_t *s = r->s;
    for (srun_t **pp = &s->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    for (size_t i = 0; i < run_flow(r)->ntasks; i++) {
        queue_remove(s, &r->tasks[i]);
        task_timer_stop(s, &r->tasks[i]);
    }
    fref_put(r->fr);
    json_decref(r->params);
    free(r->tasks);
    free(r->run_id);
    free(r->flow);
    free(r->dir);
    free(r);
}

void sched_runs_free(sched_t *s)
{
    while (s->runs) run_free(s->runs);
}

/* Build the in-memory run from the store (fr: a reference is taken). */
static srun_t *run_load(sched_t *s, int64_t id, fref_t *fr, nb_err_t *err)
{
    store_run_t row;
    store_task_runs_t tasks;
    if (store_run_get(s->o.store, id, &row, &tasks, err) < 0) return NULL;
    const flow_t *f = fr->f;
    srun_t *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->id = id;
    r->run_id = xstrdup(row.run_id);
    r->flow = xstrdup(row.flow);
    r->fr = fr;
    fr->refs++;
    r->kind = row.kind;
    r->state = row.state;
    r->logical_us = row.logical_us;
    json_error_t je;
    r->params = row.params_json ? json_loads(row.params_json, 0, &je) : NULL;
    if (!r->params) r->params = json_deep_copy(f->params);
    /* A later incarnation of the name gets its own directory: run ids such
     * as manual__<time> may repeat across incarnations, and one owner's
     * files must not be overwritten by, or served as, another's.  '@' is
     * not allowed in flow names, so no flow's directory can collide. */
    char *dn = run_dir_name(row.run_id);
    if (row.flow_incarnation > 1)
        r->dir = xasprintf("%s/runs/%s@%lld/%s", s->home, row.flow,
                           (long long)row.flow_incarnation, dn);
    else
        r->dir = xasprintf("%s/runs/%s/%s", s->home, row.flow, dn);
    free(dn);
    r->tasks = xcalloc(f->ntasks ? f->ntasks : 1, sizeof *r->tasks);
    for (size_t i = 0; i < f->ntasks; i++) {
        r->tasks[i].run = r;
        r->tasks[i].idx = i;
        r->tasks[i].state = STORE_TASK_PENDING;
    }
    for (size_t i = 0; i < tasks.n; i++) {
        const flow_task_t *ft = flow_task(f, tasks.v[i].task);
        if (!ft) continue;
        stask_t *t = &r->tasks[ft->index];
        t->id = tasks.v[i].id;
        t->state = tasks.v[i].state;
        t->try_number = tasks.v[i].try_number;
        t->max_tries = tasks.v[i].max_tries;
        t->started_us = tasks.v[i].started_at;
        t->next_retry_at = tasks.v[i].next_retry_at;
        if (store_task_state_terminal(t->state)) r->nterminal++;
    }
    store_run_clear(&row);
    store_task_runs_free(&tasks);
    r->next = NULL;
    srun_t **pp = &s->runs;   /* keep ascending id order: FIFO starts */
    while (*pp && (*pp)->id < id) pp = &(*pp)->next;
    r->next = *pp;
    *pp = r;
    return r;
}

/* ---- firing and starting runs ------------------------------------------------------ */

int sched_run_fire(sched_t *s, sflow_t *fl, store_run_kind_t kind, int64_t logical_us,
                   const json_t *params, int64_t user_id, int64_t *run_out, nb_err_t *err)
{
    const flow_t *f = fl->fr->f;
    json_t *merged = json_deep_copy(f->params);
    if (params) json_object_update(merged, (json_t *)params);
    char *pj = json_dumps(merged, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(merged);
    store_task_spec_t *specs = xcalloc(f->ntasks, sizeof *specs);
    for (size_t i = 0; i < f->ntasks; i++) {
        specs[i].task = f->tasks[i].name;
        specs[i].max_tries = f->tasks[i].retries + 1;
    }
    store_fire_t fire = { fl->name, kind, logical_us, NULL, pj, user_id, specs, f->ntasks,
                          fl->flow_id };
    int64_t id = 0;
    int rc = store_tick_fire(s->o.store, &fire, sched_now_us(), &id, err);
    free(specs);
    free(pj);
    if (rc < 0) return rc;
    if (run_out) *run_out = id;
    srun_t *r = run_load(s, id, fl->fr, err);
    if (!r) return -EIO;
    LOG_I("run queued", "flow=%s run=%lld run_id=%s", fl->name, (long long)id, r->run_id);
    sched_changed(s);
    sched_run_start_queued(s, fl->name);
    return 0;
}

static void run_begin(srun_t *r)
{
    sched_t *s = r->s;
    nb_err_t err;
    if (store_run_start(s->o.store, r->id, sched_now_us(), &err) < 0) {
        LOG_E("cannot start run", "run=%lld error=\"%s\"", (long long)r->id, err.msg);
        return;
    }
    r->state = STORE_RUN_RUNNING;
    sflow_t *fl = sched_flow_find(s, r->flow);
    if (fl) fl->running_runs++;
    const flow_t *f = run_flow(r);
    for (size_t i = 0; i < f->ntasks; i++) run_eval_task(r, f->topo[i]);
    run_check_done(r);
    sched_changed(s);
}

void sched_run_start_queued(sched_t *s, const char *flow)
{
    sflow_t *fl = sched_flow_find(s, flow);
    unsigned max = fl && fl->fr ? (unsigned)fl->fr->f->max_active_runs : 1;
    for (srun_t *r = s->runs, *next; r && !s->stopping; r = next) {
        next = r->next;
        if (r->state != STORE_RUN_QUEUED || r->finished || strcmp(r->flow, flow) != 0) continue;
        if (fl && max && fl->running_runs >= max) break;
        run_begin(r);
    }
    sched_run_dispatch(s);
}

/* ---- the DAG ----------------------------------------------------------------------- */

static void task_terminal(srun_t *r, stask_t *t)
{
    r->nterminal++;
    const flow_task_t *ft = &run_flow(r)->tasks[t->idx];
    for (size_t i = 0; i < ft->nchildren; i++) run_eval_task(r, ft->children[i]);
}

/* Decide a pending task by its trigger rule; propagates skips downstream. */
static void run_eval_task(srun_t *r, size_t idx)
{
    sched_t *s = r->s;
    stask_t *t = &r->tasks[idx];
    if (t->state != STORE_TASK_PENDING || r->state != STORE_RUN_RUNNING || r->finished) return;
    const flow_t *f = run_flow(r);
    const flow_task_t *ft = &f->tasks[idx];
    dag_state_t ps[ft->nparents ? ft->nparents : 1];
    for (size_t i = 0; i < ft->nparents; i++) ps[i] = dag_state_of(r->tasks[ft->parents[i]].state);
    dag_verdict_t v = dag_ready(f, ft, ps);
    nb_err_t err;
    int64_t now = sched_now_us();
    switch (v) {
    case DAG_WAIT:
        return;
    case DAG_READY:
        if (store_task_queue(s->o.store, t->id, now, &err) < 0) {
            LOG_E("cannot queue task", "task=%s error=\"%s\"", ft->name, err.msg);
            return;
        }
        t->state = STORE_TASK_QUEUED;
        queue_push(s, t);
        return;
    case DAG_SKIP:
    case DAG_UPSTREAM_FAILED: {
        store_task_state_t to = v == DAG_SKIP ? STORE_TASK_SKIPPED : STORE_TASK_UPSTREAM_FAILED;
        if (store_task_skip(s->o.store, t->id, to, NULL, now, &err) < 0) {
            LOG_E("cannot skip task", "task=%s error=\"%s\"", ft->name, err.msg);
            return;
        }
        t->state = to;
        task_terminal(r, t);
        return;
    }
    }
}

/* The webhook envelope for a run's end (notify.c posts "body" with "headers"). */
static char *run_hook_payload(srun_t *r, const char *state, const flow_hook_t *h)
{
    sched_t *s = r->s;
    const flow_t *f = run_flow(r);
    json_t *tasks = json_array(), *failed = json_array();
    for (size_t i = 0; i < f->ntasks; i++) {
        const char *st = store_task_state_name(r->tasks[i].state);
        json_array_append_new(tasks, json_pack("{ssss}", "name", f->tasks[i].name, "state", st));
        if (dag_state_of(r->tasks[i].state) == DAG_ST_FAILED)
            json_array_append_new(failed, json_string(f->tasks[i].name));
    }
    char logical[40];
    time_iso8601_utc(r->logical_us, logical, sizeof logical, 1);
    char *api = xasprintf("%s/api/v1/runs/%lld", s->base_url, (long long)r->id);
    char *ui = xasprintf("%s/runs/%lld", s->base_url, (long long)r->id);
    json_t *body = json_pack("{ss ss ss sI ss ss so so s{ssss}}", "event",
                             strcmp(state, "success") == 0 ? "run.success" : "run.failed",
                             "flow", r->flow, "run_id", r->run_id, "run", (json_int_t)r->id,
                             "state", state, "logical_date", logical, "tasks", tasks,
                             "failed_tasks", failed, "links", "run", api, "ui", ui);
    free(api);
    free(ui);
    json_t *hdr = h->headers ? json_incref(h->headers) : json_object();
    json_t *env = json_pack("{soso}", "headers", hdr, "body", body);
    char *out = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    return out;
}

static void run_check_done(srun_t *r)
{
    sched_t *s = r->s;
    const flow_t *f = run_flow(r);
    if (r->finished || r->state != STORE_RUN_RUNNING || r->nterminal < f->ntasks) return;
    int ok = 1;
    for (size_t i = 0; i < f->ntasks; i++) {
        dag_state_t d = dag_state_of(r->tasks[i].state);
        if (d == DAG_ST_FAILED || d == DAG_ST_UPSTREAM_FAILED) ok = 0;
    }
    store_run_state_t st = ok ? STORE_RUN_SUCCESS : STORE_RUN_FAILED;
    const char *name = store_run_state_name(st);
    const flow_hook_t *hooks = ok ? f->on_success : f->on_failure;
    size_t nh = ok ? f->non_success : f->non_failure;
    store_hook_t *sh = xcalloc(nh ? nh : 1, sizeof *sh);
    char **payloads = xcalloc(nh ? nh : 1, sizeof *payloads);
    for (size_t i = 0; i < nh; i++) {
        payloads[i] = run_hook_payload(r, name, &hooks[i]);
        sh[i].url = hooks[i].url;
        sh[i].event = ok ? "run.success" : "run.failed";
        sh[i].payload_json = payloads[i];
    }
    nb_err_t err;
    int rc = store_run_finish(s->o.store, r->id, st, sched_now_us(), sh, nh, &err);
    for (size_t i = 0; i < nh; i++) free(payloads[i]);
    free(payloads);
    free(sh);
    if (rc < 0) {
        LOG_E("cannot finish run", "run=%lld error=\"%s\"", (long long)r->id, err.msg);
        return;
    }
    LOG_I("run finished", "flow=%s run=%lld state=%s", r->flow, (long long)r->id, name);
    r->finished = 1;
    r->state = st;
    sflow_t *fl = sched_flow_find(s, r->flow);
    if (fl && fl->running_runs) fl->running_runs--;
    char *flow = xstrdup(r->flow);
    if (r->live == 0) run_free(r);
    sched_changed(s);
    sched_run_start_queued(s, flow);
    free(flow);
}

/* ---- launching a task ---------------------------------------------------------------- */

/* The previous tick before `logical` (seconds), for data_interval_start. */
static int64_t prev_tick(const flow_t *f, int64_t logical)
{
    if (!f->cron) return logical;
    if (f->sched_kind == FLOW_SCHED_INTERVAL) return logical - f->interval;
    static const int64_t windows[] = { 3600, 86400, 8 * 86400, 32 * 86400, 367 * 86400 };
    for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
        int64_t t, last = 0;
        if (cron_next(f->cron, f->tz, logical - windows[w], &t) < 0) break;
        while (t < logical) {
            last = t;
            if (cron_next(f->cron, f->tz, t, &t) < 0) break;
        }
        if (last) return last;
    }
    return logical;
}

static void argv_add(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
}

static void strv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

static char *json_text(const json_t *v)
{
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* One template variable as text into buf ("" if it does not render). */
static void render_var(const char *tmpl, const tmpl_ctx_t *ctx, char *buf, size_t n)
{
    json_t *j = NULL;
    buf[0] = 0;
    if (tmpl_render_string(tmpl, ctx, &j, NULL) == 0) {
        snprintf(buf, n, "%s", json_string_value(j));
        json_decref(j);
    }
}

/* Environment of the task: ours, minus what we set, plus the task's env and
 * the NBHUB_* context. */
static char **task_env(const json_t *env, const tmpl_ctx_t *ctx, int try_number, int scrub)
{
    char **v = NULL;
    size_t n = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "NBHUB_", 6) == 0) continue;
        if (scrub && !uacct_env_kept(*e)) continue;
        const char *eq = strchr(*e, '=');
        if (eq && json_object_getn(env, *e, (size_t)(eq - *e))) continue;
        argv_add(&v, &n, *e);
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)env, k, val) {
        char *t = json_text(val);
        char *kv = xasprintf("%s=%s", k, t);
        argv_add(&v, &n, kv);
        free(kv);
        free(t);
    }
    char ds[16], ts[40];
    render_var("{{ ds }}", ctx, ds, sizeof ds);
    render_var("{{ ts }}", ctx, ts, sizeof ts);
    char *kv;
    kv = xasprintf("NBHUB_FLOW=%s", ctx->flow); argv_add(&v, &n, kv); free(kv);
    kv = xasprintf("NBHUB_TASK=%s", ctx->task); argv_add(&v, &n, kv); free(kv);
    kv = xasprintf("NBHUB_RUN_ID=%s", ctx->run_id); argv_add(&v, &n, kv); free(kv);
    kv = xasprintf("NBHUB_TRY=%d", try_number); argv_add(&v, &n, kv); free(kv);
    kv = xasprintf("NBHUB_DS=%s", ds); argv_add(&v, &n, kv); free(kv);
    kv = xasprintf("NBHUB_TS=%s", ts); argv_add(&v, &n, kv); free(kv);
    return v;
}

static void task_on_timeout(uv_timer_t *h)
{
    stask_t *t = h->data;
    if (!t->proc) return;
    const flow_task_t *ft = &run_flow(t->run)->tasks[t->idx];
    LOG_W("task timed out", "flow=%s run=%lld task=%s timeout_s=%lld", t->run->flow,
          (long long)t->run->id, ft->name, (long long)ft->timeout);
    t->timed_out = 1;
    sup_stop(t->proc, t->run->s->o.kill_grace_ms);
}

/* Record a task that could not even start: running, then failed (retried
 * by its policy like any failure). */
static void task_start_failed(srun_t *r, stask_t *t, const char *msg)
{
    sched_t *s = r->s;
    nb_err_t err;
    LOG_E("task did not start", "flow=%s task=%s error=\"%s\"", r->flow,
          run_flow(r)->tasks[t->idx].name, msg);
    if (store_task_start(s->o.store, t->id, 0, 0, NULL, NULL, sched_now_us(), &err) < 0) return;
    t->state = STORE_TASK_RUNNING;
    t->try_number++;
    sup_end_t end = { 127, 0, 0 };
    t->start_error = msg;
    task_end(t, &end);
}

/* spark-submit's options and the application, for __spark-task --submit
 * (which puts SPARK_HOME's spark-submit, the master, the driver's settings
 * and the conf in front; the conf goes to it, see spark_wrap). */
static int submit_argv(const flow_submit_t *u, const tmpl_ctx_t *ctx, char ***argv, size_t *argc, nb_err_t *err)
{
    argv_add(argv, argc, "spark-submit");
    if (u->main_class) {
        argv_add(argv, argc, "--class");
        argv_add(argv, argc, u->main_class);
    }
    if (u->npy_files) {
        buf_t b = BUF_INIT;
        for (size_t i = 0; i < u->npy_files; i++) buf_printf(&b, "%s%s", i ? "," : "", u->py_files[i]);
        argv_add(argv, argc, "--py-files");
        argv_add(argv, argc, b.data);
        buf_free(&b);
    }
    argv_add(argv, argc, u->application_path);
    for (size_t i = 0; i < u->nargs; i++) {
        json_t *rv = NULL;
        if (tmpl_render_string(u->args[i], ctx, &rv, err) < 0) return -EINVAL;
        char *txt = json_text(rv);
        json_decref(rv);
        argv_add(argv, argc, txt);
        free(txt);
    }
    return 0;
}

static int task_wants_spark(const flow_task_t *ft)
{
    return ft->spark.kind != FLOW_SPARK_NONE || ft->submit != NULL;
}

/* Put `nbhub __spark-task ... --` in front of a task's command: the
 * cluster, the connection in the environment, progress in <task>.spark.json
 * (src/cli/cmd_spark_task.c). */
static void spark_wrap(sched_t *s, srun_t *r, stask_t *t, char ***argv, size_t *argc)
{
    const flow_t *f = run_flow(r);
    const flow_task_t *ft = &f->tasks[t->idx];
    const flow_spark_t *sp = &ft->spark;
    char **w = NULL;
    size_t n = 0;
    char *state = task_file(r, t, ".spark.json");
    char *app = xasprintf("%s.%s (run %s, try %d)", f->name, ft->name, r->run_id, t->try_number + 1);
    argv_add(&w, &n, s->self_exe);
    argv_add(&w, &n, "__spark-task");
    argv_add(&w, &n, "--home");
    argv_add(&w, &n, s->home);
    argv_add(&w, &n, "--state");
    argv_add(&w, &n, state);
    argv_add(&w, &n, "--app-name");
    argv_add(&w, &n, app);
    if (f->owner) {
        argv_add(&w, &n, "--owner");
        argv_add(&w, &n, f->owner);
    }
    if (sp->kind == FLOW_SPARK_CLUSTER) {
        argv_add(&w, &n, "--cluster");
        argv_add(&w, &n, sp->cluster);
    } else if (sp->kind == FLOW_SPARK_EPHEMERAL) {
        /* one cluster per task run, named after it: unique, and found
         * again by name in `nbhub spark list` and the API */
        char name[96], num[32];
        snprintf(name, sizeof name, "%.40s-t%lld", f->name, (long long)t->id);
        argv_add(&w, &n, "--ephemeral");
        argv_add(&w, &n, name);
        snprintf(num, sizeof num, "%d", sp->workers);
        argv_add(&w, &n, "--workers");
        argv_add(&w, &n, num);
        snprintf(num, sizeof num, "%d", sp->worker_cores);
        argv_add(&w, &n, "--worker-cores");
        argv_add(&w, &n, num);
        argv_add(&w, &n, "--worker-memory");
        argv_add(&w, &n, sp->worker_memory);
    } else {
        argv_add(&w, &n, "--local");
    }
    if (sp->connect) argv_add(&w, &n, "--connect");
    if (ft->submit) argv_add(&w, &n, "--submit");
    /* The conf of the task's spark, then spark_submit's (which wins: the
     * later --conf of a key wins in spark-submit too); __spark-task checks
     * it against the cluster. */
    const json_t *confs[2] = { sp->conf, ft->submit ? ft->submit->conf : NULL };
    for (int c = 0; c < 2; c++) {
        const char *k;
        json_t *v;
        if (confs[c])
            json_object_foreach((json_t *)confs[c], k, v) {
                char *kv = xasprintf("%s=%s", k, json_string_value(v));
                argv_add(&w, &n, "--conf");
                argv_add(&w, &n, kv);
                free(kv);
            }
    }
    argv_add(&w, &n, "--");
    for (size_t i = 0; i < *argc; i++) argv_add(&w, &n, (*argv)[i]);
    strv_free(*argv);
    *argv = w;
    *argc = n;
    free(state);
    free(app);
}

/* ---- isolation ------------------------------------------------------------ */

/* The Unix account of the run's flow owner (isolation: system). */
static int task_account(sched_t *s, srun_t *r, char *out, size_t n, nb_err_t *err)
{
    const char *owner = run_flow(r)->owner;
    if (!owner)
        return err_set(err, -EPERM, "isolation: system runs every task as its flow's owner, "
                                    "and this flow has no owner: set 'owner:' in the flow file");
    return uacct_name(s->o.account_tmpl ? s->o.account_tmpl : UACCT_DEFAULT_TEMPLATE, owner, out, n, err);
}

/* The owner's limits (their group's) and the task's own (its leaf's).  The
 * owner's group bounds the leaf anyway (cgroups are hierarchical), so the
 * leaf keeps the task's own memory limit, and a kill by the owner's limit is
 * counted in the owner's group, where isolate_end finds it; the CPU quota is
 * the tighter of the two, since a child's CFS quota above its parent's is
 * refused. */
static void task_limits(sched_t *s, srun_t *r, stask_t *t, iso_limits_t *user, iso_limits_t *task)
{
    const flow_t *f = run_flow(r);
    const iso_limits_t *u = s->o.user_limits && f->owner ? s->o.user_limits(s->o.limits_ud, f->owner) : NULL;
    *user = u ? *u : (iso_limits_t){ 0, 0, 0 };
    *task = f->tasks[t->idx].limits;
    iso_limits_t cpu = { 0, task->cpu_milli, 0 }, ucpu = { 0, user->cpu_milli, 0 };
    limits_tighten(&cpu, &ucpu);
    task->cpu_milli = cpu.cpu_milli;
}

/* cgroup names: nbhub/u-<account or "shared">[/t<task run id>-<try>]. */
static void task_cgroups(const char *acct, stask_t *t, int try_number, char *user, char *leaf, size_t n)
{
    snprintf(user, n, "nbhub/u-%s", acct);
    snprintf(leaf, n, "nbhub/u-%s/t%lld-%d", acct, (long long)t->id, try_number);
}

/* Put `nbhub __as-user` in front of the task's command when it must run
 * as its owner (system) or inside cgroups (limits).  The run directory and
 * the parameters file are handed to the account; the parents of the run
 * directory become 0711 so the account can reach its own directory but
 * list nobody's. */
static int isolate_wrap(sched_t *s, srun_t *r, stask_t *t, char ***argv, size_t *argc, nb_err_t *err)
{
    const flow_task_t *ft = &run_flow(r)->tasks[t->idx];
    iso_limits_t ul, tl;
    task_limits(s, r, t, &ul, &tl);
    int limited = limits_any(&ul) || limits_any(&tl);
    if (!s->o.system && !limited) return 0;
    if (limited && !s->o.cgroups)
        return err_set(err, -ENOTSUP, "the task has limits, but nbhub serve cannot enforce them here (see its start-up log)");
    char acct[64] = "-";
    int rc;
    if (s->o.system && (rc = task_account(s, r, acct, sizeof acct, err)) < 0) return rc;
    char **w = NULL;
    size_t n = 0;
    argv_add(&w, &n, s->self_exe);
    argv_add(&w, &n, "__as-user");
    argv_add(&w, &n, acct);
    if (s->o.system) {
        if (s->o.create_accounts) argv_add(&w, &n, "--create");
        /* runs/ was made 0711 at start; runs/<flow>/ is made with the run
         * directory (fs_mkdir_p, 0700) and must let the account through. */
        char *flowdir = fs_dirname(r->dir);
        chmod(flowdir, 0711);
        free(flowdir);
        argv_add(&w, &n, "--chown");
        argv_add(&w, &n, r->dir);
        if (ft->notebook) {
            char *pfile = task_file(r, t, ".params.json");
            argv_add(&w, &n, "--chown");
            argv_add(&w, &n, pfile);
            free(pfile);
        }
        /* A flow deployed with its files: its directory is the owner's. */
        const char *own = sched_flow_own_dir(s, run_flow(r));
        if (own) {
            argv_add(&w, &n, "--chown-tree");
            argv_add(&w, &n, own);
        }
        /* A Spark task's ephemeral cluster lives in spark/~OWNER/, which
         * must be the account's (spark/ is 0711, the daemon's). */
        if (task_wants_spark(ft)) {
            buf_t od = BUF_INIT;
            buf_printf(&od, "%s/spark/~", s->home);
            urlesc_append(&od, run_flow(r)->owner);
            nb_err_t e2;
            if (fs_mkdir_p(od.data, 0700, &e2) == 0) {
                argv_add(&w, &n, "--chown");
                argv_add(&w, &n, od.data);
            }
            buf_free(&od);
        }
        if (ft->cwd && !ft->notebook) {
            argv_add(&w, &n, "--cwd");
            argv_add(&w, &n, ft->cwd);
        }
    }
    if (limited) {
        char ug[160], leaf[160];
        task_cgroups(acct[0] == '-' ? "shared" : acct, t, t->try_number + 1, ug, leaf, sizeof ug);
        for (int k = 0; k < 2; k++) {
            char *spec = limits_spec(k ? leaf : ug, k ? &tl : &ul);
            argv_add(&w, &n, "--cgroup");
            argv_add(&w, &n, spec);
            free(spec);
        }
    }
    /* nbhub's own binary (nbhub run, __spark-task, __task-wrap) is exec'd
     * through a descriptor: the account needs no access to where it lives. */
    if (!strcmp((*argv)[0], s->self_exe)) argv_add(&w, &n, "--self");
    argv_add(&w, &n, "--");
    for (size_t i = 0; i < *argc; i++) argv_add(&w, &n, (*argv)[i]);
    strv_free(*argv);
    *argv = w;
    *argc = n;
    return 0;
}

/* After a try: was it the memory limit?  Then say so (instead of "killed
 * by signal 9" or "the kernel died"), and remove its cgroup. */
static void isolate_end(sched_t *s, srun_t *r, stask_t *t, int ok, char *msg, size_t n, char **keep_leaf)
{
    iso_limits_t ul, tl;
    task_limits(s, r, t, &ul, &tl);
    if (!s->o.cgroups || (!limits_any(&ul) && !limits_any(&tl))) return;
    char acct[64] = "shared";
    if (s->o.system && task_account(s, r, acct, sizeof acct, NULL) < 0) return;
    char ug[160], leaf[160];
    task_cgroups(acct, t, t->try_number, ug, leaf, sizeof ug);
    int64_t kills = 0, hits = 0;
    char mem[32], was[400];
    snprintf(was, sizeof was, "%.399s", msg);
    if (!ok && cgroup_oom_kills(leaf, &kills) == 0 && kills > 0) {
        /* An OOM kill in the task: its own limit if that was reached, else
         * the owner's, for all their tasks (and clusters) together. */
        cgroup_limit_hits(leaf, &hits);
        if (tl.memory && (hits > 0 || !ul.memory)) {
            limits_memory_text(tl.memory, mem, sizeof mem);
            snprintf(msg, n, "memory limit %.31s exceeded (%.399s)", mem, was);
        } else if (ul.memory) {
            limits_memory_text(ul.memory, mem, sizeof mem);
            snprintf(msg, n, "memory limit %.31s of all of %.64s's tasks exceeded (%.300s)", mem,
                     run_flow(r)->owner ? run_flow(r)->owner : "?", was);
        }
    }
    /* A kernel kept for a post-mortem still runs in the leaf, under its
     * limits: the leaf goes when that kernel ends (sched_kept.c). */
    if (keep_leaf) *keep_leaf = xstrdup(leaf);
    else cgroup_remove(leaf);
}

/* The leaf a kept kernel will run in, as isolate_end names it, or NULL. */
static char *isolate_leaf(sched_t *s, srun_t *r, stask_t *t)
{
    iso_limits_t ul, tl;
    task_limits(s, r, t, &ul, &tl);
    if (!s->o.cgroups || (!limits_any(&ul) && !limits_any(&tl))) return NULL;
    char acct[64] = "shared";
    if (s->o.system && task_account(s, r, acct, sizeof acct, NULL) < 0) return NULL;
    char ug[160], leaf[160];
    task_cgroups(acct, t, t->try_number, ug, leaf, sizeof ug);
    return xstrdup(leaf);
}

/* The user whose workspace "~/" is: the flow file's `owner:` (the account
 * its tasks run as under isolation: system, also when an admin applied it
 * for that user), else the user who applied it.  NULL if neither. */
static char *task_owner(sched_t *s, srun_t *r)
{
    const flow_t *f = run_flow(r);
    if (f->owner) return xstrdup(f->owner);
    sflow_t *fl = sched_flow_find(s, r->flow);
    store_user_t u;
    if (!fl || !fl->owner_id || store_user_by_id(s->o.store, fl->owner_id, &u, NULL) < 0) return NULL;
    char *name = xstrdup(u.name);
    store_user_clear(&u);
    return name;
}

/* The workspace a "~/" notebook task reads from, as `nbhub run
 * --workspace` takes it: under isolation: system "~", the home of the
 * account the task runs as (looked up by the task, after it became that
 * account: the daemon does no NSS lookups on its loop and opens no user's
 * notebook); under shared <home>/workspaces/<owner>. */
static int task_workspace(sched_t *s, srun_t *r, char **out, nb_err_t *err)
{
    *out = NULL;
    char *owner = task_owner(s, r);
    if (!owner)
        return err_set(err, -EPERM, "the notebook is in its owner's workspace ('~/'), and this flow has "
                                    "no owner: set 'owner:' in the flow file");
    int rc = 0;
    if (s->o.system) {
        /* task_account refuses a flow without `owner:` with its own message. */
        if (!workspace_user_valid(owner))
            rc = err_set(err, -EINVAL, "'%s' cannot name a workspace", owner);
        else
            *out = xstrdup("~");
    } else {
        struct workspace_opts wo = { .home = s->home };
        rc = workspace_dir(&wo, owner, out, err);
        if (rc == -ENOENT)
            rc = err_set(err, rc, "user '%s' has no workspace yet (%s/workspaces/%s): start a server on "
                         "the Server page, or create it", owner, s->home, owner);
    }
    free(owner);
    return rc;
}

static void task_launch(sched_t *s, stask_t *t)
{
    srun_t *r = t->run;
    const flow_t *f = run_flow(r);
    const flow_task_t *ft = &f->tasks[t->idx];
    nb_err_t err;
    if (fs_mkdir_p(r->dir, 0700, &err) < 0) {
        task_start_failed(r, t, err.msg);
        return;
    }
    /* A retry ends the kernel kept after the previous try. */
    if (sched_kept_has(s, t->id)) sched_kept_end(s, t->id, NULL);
    tmpl_ctx_t ctx = { .flow = r->flow, .task = ft->name, .run_id = r->run_id,
                       .params = r->params };
    int64_t logical = r->logical_us / 1000000;
    tmpl_time_in(f->tz, logical, &ctx.logical);
    tmpl_time_in(f->tz, r->kind == STORE_RUN_MANUAL ? logical : prev_tick(f, logical),
                 &ctx.interval_start);
    ctx.interval_end = ctx.logical;

    char *out_path = NULL, *log_path = task_file(r, t, ".log");
    char *status_path = task_file(r, t, ".status.json");
    char **argv = NULL, **env = NULL;
    size_t argc = 0;
    json_t *renv = NULL;
    pool_kernel_t *kernel = NULL;
    char *failed = NULL;
    if (tmpl_render(ft->env, &ctx, &renv, &err) < 0) {
        failed = xasprintf("env: %s", err.msg);
        goto out;
    }
    if (ft->notebook) {
        char *ws = NULL;
        if (ft->notebook_ws && task_workspace(s, r, &ws, &err) < 0) {
            failed = xstrdup(err.msg);
            goto out;
        }
        json_t *params = NULL;
        if (tmpl_render(ft->parameters, &ctx, &params, &err) < 0) {
            free(ws);
            failed = xasprintf("parameters: %s", err.msg);
            goto out;
        }
        char *pfile = task_file(r, t, ".params.json");
        char *ptext = json_dumps(params, JSON_SORT_KEYS | JSON_INDENT(1));
        json_decref(params);
        int rc = fs_write_atomic(pfile, ptext, strlen(ptext), 0, &err);
        free(ptext);
        if (rc < 0) {
            free(ws);
            free(pfile);
            failed = xstrdup(err.msg);
            goto out;
        }
        out_path = task_file(r, t, ".ipynb");
        /* A "~/" notebook: `nbhub run --workspace` resolves it, refuses a
         * path or link that leads out, and starts the kernel in the
         * notebook's directory unless the task has a cwd. */
        char *cwd = ft->cwd ? xstrdup(ft->cwd) : ws ? NULL : fs_dirname(ft->notebook_path);
        argv_add(&argv, &argc, s->self_exe);
        argv_add(&argv, &argc, "run");
        if (ws) {
            argv_add(&argv, &argc, "--workspace");
            argv_add(&argv, &argc, ws);
        }
        argv_add(&argv, &argc, ws ? ft->notebook_ws : ft->notebook_path);
        argv_add(&argv, &argc, out_path);
        argv_add(&argv, &argc, "-f");
        argv_add(&argv, &argc, pfile);
        free(ws);
        /* Under isolation: system the flows directory is the daemon's: the
         * kernel starts in the task's cwd or the user's home. */
        if (cwd && (!s->o.system || ft->cwd || sched_flow_own_dir(s, f))) {
            argv_add(&argv, &argc, "--cwd");
            argv_add(&argv, &argc, cwd);
        }
        argv_add(&argv, &argc, "--log-output");
        argv_add(&argv, &argc, "--status-file");
        argv_add(&argv, &argc, status_path);
        free(pfile);
        if (ft->cell_timeout) {
            char n[32];
            snprintf(n, sizeof n, "%lld", (long long)ft->cell_timeout);
            argv_add(&argv, &argc, "--execution-timeout");
            argv_add(&argv, &argc, n);
        }
        if (ft->keep_history) argv_add(&argv, &argc, "--keep-history");
        if (ft->kernel) {
            argv_add(&argv, &argc, "-k");
            argv_add(&argv, &argc, ft->kernel);
        }
        if (ft->post_mortem) {
            char n[32];
            snprintf(n, sizeof n, "%lld", (long long)ft->post_mortem);
            argv_add(&argv, &argc, "--keep-kernel-on-error");
            argv_add(&argv, &argc, n);
            char *kf = task_file(r, t, ".kernel.json");
            unlink(kf);
            argv_add(&argv, &argc, "--kernel-file");
            argv_add(&argv, &argc, kf);
            free(kf);
        }
        /* A pooled kernel was started before the task was known, in the
         * daemon's working directory (the flows directory), its IPython
         * history in memory: only tasks without their own environment,
         * with that working directory and without keep_history can use one. */
        const char *kname = r->fr->kernel[t->idx];
        if (s->o.pool && !s->o.system && !ft->post_mortem && kname && json_object_size(ft->env) == 0 && !task_wants_spark(ft) && s->pool_cwd &&
            !ft->keep_history &&   /* pooled kernels keep their history in memory */
            cwd && strcmp(cwd, s->pool_cwd) == 0 && pool_take(s->o.pool, kname, &kernel) == 0) {
            char pid[32];
            snprintf(pid, sizeof pid, "%d", pool_kernel_pid(kernel));
            argv_add(&argv, &argc, "--existing-kernel");
            argv_add(&argv, &argc, pool_kernel_conn(kernel));
            argv_add(&argv, &argc, "--kernel-pid");
            argv_add(&argv, &argc, pid);
            /* No --shutdown-kernel: the pool stops the kernel when the task's
             * process has exited, so the task need not wait for it. */
        }
        free(cwd);
    } else if (ft->submit) {
        if (submit_argv(ft->submit, &ctx, &argv, &argc, &err) < 0) {
            failed = xasprintf("spark_submit: %s", err.msg);
            goto out;
        }
    } else {
        for (size_t i = 0; i < ft->argc; i++) {
            json_t *v = NULL;
            if (tmpl_render_string(ft->argv[i], &ctx, &v, &err) < 0) {
                failed = xasprintf("command: %s", err.msg);
                goto out;
            }
            char *txt = json_text(v);
            json_decref(v);
            argv_add(&argv, &argc, txt);
            free(txt);
        }
    }
    int spark = task_wants_spark(ft);
    if (spark) spark_wrap(s, r, t, &argv, &argc);
    env = task_env(renv, &ctx, t->try_number + 1, s->o.system);
    if (isolate_wrap(s, r, t, &argv, &argc, &err) < 0) {
        failed = xstrdup(err.msg);
        goto out;
    }

    /* A header line in the log per try. */
    int fd = fs_open_regular(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL);
    if (fd >= 0) {
        char now[40];
        time_iso8601_utc(sched_now_us(), now, sizeof now, 1);
        dprintf(fd, "--- nbhub: %s try %d of %d, started %s%s ---\n", ft->name,
                t->try_number + 1, t->max_tries, now, kernel ? " (warm kernel)" : "");
        close(fd);
    }
    sup_spawn_opts_t so = { s->self_exe, argv, env,
                            ft->notebook || s->o.system ? NULL : (ft->cwd ? ft->cwd : f->base_dir),
                            log_path, status_path, ft->notebook != NULL && !spark };
    sup_task_t *proc = NULL;
    if (sup_spawn(s->o.loop, &so, task_on_exit, t, &proc, &err) < 0) {
        failed = xstrdup(err.msg);
        goto out;
    }
    int64_t now = sched_now_us();
    if (store_task_start(s->o.store, t->id, sup_pid(proc), sup_start_time(proc), out_path,
                         log_path, now, &err) < 0) {
        /* A cancel won the race: stop what we just started. */
        LOG_W("task start refused", "task=%s error=\"%s\"", ft->name, err.msg);
        t->cancelled = 1;
        sup_stop(proc, 0);
    } else {
        t->state = STORE_TASK_RUNNING;
        t->try_number++;
    }
    t->proc = proc;
    t->kernel = kernel;
    kernel = NULL;
    t->started_us = now;
    s->running++;
    r->live++;
    s->stats.tasks_started++;
    if (ft->timeout && !t->cancelled) {
        t->timer = sched_timer_new(s);
        t->timer->data = t;
        uv_timer_start(t->timer, task_on_timeout, (uint64_t)ft->timeout * 1000, 0);
    }
    LOG_I("task started", "flow=%s run=%lld task=%s try=%d pid=%d", r->flow, (long long)r->id,
          ft->name, t->try_number, sup_pid(proc));
    sched_changed(s);
out:
    if (kernel) pool_return(s->o.pool, kernel);
    json_decref(renv);
    strv_free(argv);
    strv_free(env);
    free(out_path);
    free(log_path);
    free(status_path);
    if (failed) {
        task_start_failed(r, t, failed);
        free(failed);
    }
}

void sched_run_dispatch(sched_t *s)
{
    while (!s->stopping && s->qhead && s->running < s->o.max_active_tasks) {
        stask_t *t = s->qhead;
        queue_remove(s, t);
        task_launch(s, t);
    }
}

/* ---- a task's end ---------------------------------------------------------------------- */

static const char *run_exit_meaning(int code)
{
    switch (code) {
    case 1: return "a cell raised an error";
    case 3: return "the notebook or its parameters are invalid";
    case 4: return "the kernel did not start";
    case 5: return "the kernel died";
    case 6: return "a cell timed out";
    case 7: return "the output notebook could not be written";
    default: return NULL;
    }
}

/* Exit codes of nbhub __spark-task (src/cli/cmd_spark_task.c). */
static const char *spark_exit_meaning(int code)
{
    switch (code) {
    case 20: return "no Java or no Spark found";
    case 21: return "the Spark cluster did not start";
    case 22: return "the Spark cluster is not up or not usable by this flow";
    case 23: return "the Spark settings do not fit the cluster";
    default: return NULL;
    }
}

void sched_spark_each(sched_t *s, sched_spark_fn fn, void *ud)
{
    for (srun_t *r = s->runs; r; r = r->next) {
        if (r->finished) continue;
        const flow_t *f = run_flow(r);
        for (size_t i = 0; i < f->ntasks; i++) {
            stask_t *t = &r->tasks[i];
            if (t->state != STORE_TASK_RUNNING || !task_wants_spark(&f->tasks[i])) continue;
            char *p = task_file(r, t, ".spark.json");
            fn(r->flow, r->id, f->tasks[i].name, p, ud);
            free(p);
        }
    }
}

/* <task>.spark.json of a try (written by __spark-task), or NULL. */
static json_t *spark_state(srun_t *r, stask_t *t)
{
    char *p = task_file(r, t, ".spark.json");
    json_t *j = jparse_file_regular(p, 16 << 20);
    free(p);
    return j;
}

/* The Spark application of a try onto the task run. */
static void spark_record(srun_t *r, stask_t *t, const json_t *sj)
{
    const char *id = json_string_value(json_object_get(sj, "app_id"));
    nb_err_t err;
    if (id && store_task_set_spark(r->s->o.store, t->id, id, &err) < 0)
        LOG_W("spark app id not recorded", "task=%lld error=\"%s\"", (long long)t->id, err.msg);
}

/* Append what __spark-task saw go wrong ("exit code 21: the Spark cluster
 * did not start: 2 workers x 64g = ..."; "exit code 1: a cell raised an
 * error; the Spark master died during the task"). */
static void spark_why(const json_t *sj, char *msg, size_t n)
{
    const char *why = json_string_value(json_object_get(sj, "message"));
    size_t len = strlen(msg);
    if (why && *why && len < n)
        snprintf(msg + len, n - len, "%s%s", strstr(msg, ": ") ? "; " : ": ", why);
}

static void retry_on_timer(uv_timer_t *h);

/* Record the end of a try and move the DAG on. */
static void task_end(stask_t *t, const sup_end_t *end)
{
    srun_t *r = t->run;
    sched_t *s = r->s;
    const flow_task_t *ft = &run_flow(r)->tasks[t->idx];
    int64_t now = sched_now_us();
    int ok = !t->start_error && !end->lost && end->term_signal == 0 && end->exit_code == 0 && !t->timed_out &&
             !t->cancelled && !t->shutdown;
    char msg[512];
    json_t *sj = task_wants_spark(ft) ? spark_state(r, t) : NULL;
    if (t->timed_out) snprintf(msg, sizeof msg, "timed out after %llds", (long long)ft->timeout);
    else if (t->shutdown) snprintf(msg, sizeof msg, "stopped by daemon shutdown");
    else if (end->lost) snprintf(msg, sizeof msg, "the task's process was lost (daemon restart)");
    else if (end->term_signal) snprintf(msg, sizeof msg, "killed by signal %d", end->term_signal);
    else if (t->start_error)
        snprintf(msg, sizeof msg, "could not start: %s", t->start_error);
    else {
        const char *m = task_wants_spark(ft) ? spark_exit_meaning(end->exit_code) : NULL;
        if (!m && ft->notebook) m = run_exit_meaning(end->exit_code);
        snprintf(msg, sizeof msg, "exit code %d%s%s", end->exit_code, m ? ": " : "", m ? m : "");
        if (sj && end->exit_code) spark_why(sj, msg, sizeof msg);
    }
    if (sj) spark_record(r, t, sj);
    json_decref(sj);
    /* post_mortem: a cell raised (exit 1), and the run kept its kernel. */
    int kept = 0;
    if (ft->notebook && ft->post_mortem && !ok && !end->lost && end->term_signal == 0 &&
        end->exit_code == 1 && !t->timed_out && !t->cancelled && !t->shutdown && !t->start_error) {
        char *kf = task_file(r, t, ".kernel.json");
        char *leaf = isolate_leaf(s, r, t);
        nb_err_t e2;
        if (sched_kept_take(s, t->id, kf, r->dir, ft->post_mortem, leaf, &e2) == 0) kept = 1;
        else LOG_W("no kernel kept", "task=%s error=\"%s\"", ft->name, e2.msg);
        free(leaf);
        free(kf);
    }
    char *kept_leaf = NULL;
    isolate_end(s, r, t, ok, msg, sizeof msg, kept ? &kept_leaf : NULL);
    free(kept_leaf);
    if (t->started_us) {
        double d = (double)(now - t->started_us) / 1e6;
        s->stats.dur_sum += d;
        s->stats.dur_count++;
        for (int i = 0; i < 9; i++)
            if (d <= sched_dur_bounds[i]) s->stats.dur_bucket[i]++;
        s->stats.dur_bucket[9]++;
    }
    t->start_error = NULL;
    if (r->finished || t->cancelled || t->state != STORE_TASK_RUNNING) {
        /* Cancelled: the store already says so. */
        return;
    }
    int64_t retry_at = 0;
    if (!ok && t->try_number < t->max_tries) {
        int64_t delay = ft->retry_delay;
        if (ft->retry_exponential_backoff)
            for (int i = 1; i < t->try_number && delay < ft->max_retry_delay; i++) delay *= 2;
        if (ft->max_retry_delay && delay > ft->max_retry_delay) delay = ft->max_retry_delay;
        retry_at = now + delay * 1000000 + 1;
    }
    store_task_state_t ns;
    nb_err_t err;
    int code = end->term_signal ? -end->term_signal : end->exit_code;
    if (store_task_finish(s->o.store, t->id, ok ? STORE_TASK_SUCCESS : STORE_TASK_FAILED, code,
                          ok ? NULL : msg, retry_at, now, &ns, &err) < 0) {
        LOG_E("cannot finish task", "task=%s error=\"%s\"", ft->name, err.msg);
        return;
    }
    t->state = ns;
    LOG_I("task finished", "flow=%s run=%lld task=%s state=%s%s%s%s", r->flow, (long long)r->id,
          ft->name, store_task_state_name(ns), ok ? "" : " error=\"", ok ? "" : msg,
          ok ? "" : "\"");
    if (ns == STORE_TASK_UP_FOR_RETRY) {
        t->timer = sched_timer_new(s);
        t->timer->data = t;
        uv_timer_start(t->timer, retry_on_timer, (uint64_t)((retry_at - now) / 1000) + 1, 0);
    } else {
        task_terminal(r, t);
        run_check_done(r);   /* may free r */
    }
}

static void task_on_exit(sup_task_t *p, const sup_end_t *end, void *ud)
{
    stask_t *t = ud;
    srun_t *r = t->run;
    sched_t *s = r->s;
    /* The try's end, its children queued and the next tasks started: one
     * commit (each fsync is ~1 ms here, and this is the dependent-latency
     * path).  The children's processes start before the commit, so the
     * window in which a daemon crash leaves a started task unrecorded (it
     * runs again after the restart) is what it was with one commit per
     * step: from its spawn to the next commit, a millisecond. */
    sched_batch_begin(s);
    s->running--;
    r->live--;
    task_timer_stop(s, t);
    if (t->kernel) {
        pool_return(s->o.pool, t->kernel);
        t->kernel = NULL;
    }
    sup_free(p);
    t->proc = NULL;
    int was_finished = r->finished;
    task_end(t, end);   /* may free r when the run ends with no child left */
    if (was_finished && r->live == 0) run_free(r);
    sched_changed(s);
    sched_run_dispatch(s);
    sched_batch_end(s);
    if (s->stopping) sched_stop_progress(s);
}

static void retry_on_timer(uv_timer_t *h)
{
    stask_t *t = h->data;
    sched_t *s = t->run->s;
    task_timer_stop(s, t);
    store_task_runs_t due;
    nb_err_t err;
    if (store_task_retry_due(s->o.store, sched_now_us(), 1000, &due, &err) < 0) {
        LOG_E("cannot requeue retries", "error=\"%s\"", err.msg);
        return;
    }
    for (size_t i = 0; i < due.n; i++) {
        srun_t *r = sched_run_find(s, due.v[i].run);
        if (!r) continue;
        const flow_task_t *ft = flow_task(run_flow(r), due.v[i].task);
        if (!ft) continue;
        stask_t *x = &r->tasks[ft->index];
        task_timer_stop(s, x);
        x->state = STORE_TASK_QUEUED;
        queue_push(s, x);
    }
    store_task_runs_free(&due);
    sched_changed(s);
    sched_run_dispatch(s);
}

/* ---- cancel ------------------------------------------------------------------------------ */

/* The run in memory if it is still queued or running; else -ENOENT (no such
 * run) or -ESTALE (it already finished). */
static int run_in_flight(sched_t *s, int64_t run, srun_t **out, nb_err_t *err)
{
    srun_t *r = sched_run_find(s, run);
    if (r && !r->finished) {
        *out = r;
        return 0;
    }
    store_run_t row;
    int rc = store_run_get(s->o.store, run, &row, NULL, err);
    if (rc < 0) return rc;
    store_run_clear(&row);
    return err_set(err, -ESTALE, "run %lld already finished", (long long)run);
}

int sched_cancel_run(sched_t *s, int64_t run, nb_err_t *err)
{
    srun_t *r;
    int rc = run_in_flight(s, run, &r, err);
    if (rc < 0) return rc;
    if ((rc = store_run_cancel(s->o.store, run, sched_now_us(), NULL, 0, NULL, err)) < 0)
        return rc;
    LOG_I("run cancelled", "flow=%s run=%lld", r->flow, (long long)run);
    int was_running = r->state == STORE_RUN_RUNNING;
    r->finished = 1;
    r->state = STORE_RUN_CANCELLED;
    for (size_t i = 0; i < run_flow(r)->ntasks; i++) {
        stask_t *t = &r->tasks[i];
        queue_remove(s, t);
        if (!store_task_state_terminal(t->state)) t->state = STORE_TASK_CANCELLED;
        if (t->proc) {
            t->cancelled = 1;
            sup_stop(t->proc, s->o.kill_grace_ms);
        } else {
            task_timer_stop(s, t);
        }
    }
    sflow_t *fl = sched_flow_find(s, r->flow);
    if (was_running && fl && fl->running_runs) fl->running_runs--;
    char *flow = xstrdup(r->flow);
    if (r->live == 0) run_free(r);
    sched_changed(s);
    sched_run_start_queued(s, flow);
    free(flow);
    return 0;
}

int sched_cancel_task(sched_t *s, int64_t run, const char *task, nb_err_t *err)
{
    srun_t *r;
    int rc = run_in_flight(s, run, &r, err);
    if (rc < 0) return rc;
    const flow_task_t *ft = flow_task(run_flow(r), task);
    if (!ft) return err_set(err, -ENOENT, "run %lld has no task '%s'", (long long)run, task);
    stask_t *t = &r->tasks[ft->index];
    if ((rc = store_task_cancel(s->o.store, t->id, "cancelled", sched_now_us(), NULL, err)) < 0)
        return rc;
    LOG_I("task cancelled", "flow=%s run=%lld task=%s", r->flow, (long long)run, task);
    queue_remove(s, t);
    t->state = STORE_TASK_CANCELLED;
    if (t->proc) {
        t->cancelled = 1;
        sup_stop(t->proc, s->o.kill_grace_ms);
    } else {
        task_timer_stop(s, t);
    }
    task_terminal(r, t);
    run_check_done(r);
    sched_changed(s);
    sched_run_dispatch(s);
    return 0;
}

void sched_run_stop_all(sched_t *s)
{
    for (srun_t *r = s->runs; r; r = r->next)
        for (size_t i = 0; i < run_flow(r)->ntasks; i++)
            if (r->tasks[i].proc) {
                r->tasks[i].shutdown = 1;
                sup_stop(r->tasks[i].proc, s->o.kill_grace_ms);
            }
}

/* ---- recovery ----------------------------------------------------------------------------- */

int sched_run_recover(sched_t *s, nb_err_t *err)
{
    store_task_runs_t running;
    store_runs_t active;
    int rc = store_recover(s->o.store, sched_now_us(), &running, &active, err);
    if (rc < 0) return rc;
    for (size_t i = 0; i < active.n; i++) {
        store_run_t *row = &active.v[i];
        sflow_t *fl = sched_flow_find(s, row->flow);
        fref_t *fr = NULL;
        nb_err_t e;
        if (fl && fl->fr && fl->fr->version == row->flow_version) {
            fr = fl->fr;
            fr->refs++;
        } else {
            store_run_t full;
            if (store_run_get(s->o.store, row->id, &full, NULL, &e) == 0) {
                fr = sched_fref_from_spec(full.spec_json, row->flow_version, s->o.pool != NULL, &e);
                store_run_clear(&full);
            }
        }
        if (!fr) {
            LOG_E("cannot resume run: cancelling it", "run=%lld error=\"%s\"", (long long)row->id,
                  e.msg);
            store_run_cancel(s->o.store, row->id, sched_now_us(), NULL, 0, NULL, NULL);
            continue;
        }
        srun_t *r = run_load(s, row->id, fr, &e);
        fref_put(fr);
        if (!r) continue;
        if (r->state == STORE_RUN_RUNNING && fl) fl->running_runs++;
    }
    /* Tasks left running: re-attach, or take the status file, or lost. */
    for (size_t i = 0; i < running.n; i++) {
        store_task_run_t *tr = &running.v[i];
        srun_t *r = sched_run_find(s, tr->run);
        if (!r) continue;
        const flow_task_t *ft = flow_task(run_flow(r), tr->task);
        if (!ft) continue;
        stask_t *t = &r->tasks[ft->index];
        char *status = task_file(r, t, ".status.json");
        sup_task_t *p = NULL;
        nb_err_t e;
        if (sup_attach(s->o.loop, tr->pid, tr->pid_start_time, status, task_on_exit, t, &p,
                       &e) == 0) {
            LOG_I("task re-attached", "flow=%s run=%lld task=%s pid=%d", r->flow,
                  (long long)r->id, ft->name, tr->pid);
            t->proc = p;
            s->running++;
            r->live++;
            if (ft->timeout) {
                int64_t left = tr->started_at + ft->timeout * 1000000 - sched_now_us();
                t->timer = sched_timer_new(s);
                t->timer->data = t;
                uv_timer_start(t->timer, task_on_timeout, left > 0 ? (uint64_t)left / 1000 : 0, 0);
            }
        } else {
            sup_end_t end;
            if (sup_read_status(status, &end) != 0) {
                end.exit_code = -1;
                end.term_signal = 0;
                end.lost = 1;
            }
            LOG_I("task ended while the daemon was down", "flow=%s run=%lld task=%s exit=%d lost=%d",
                  r->flow, (long long)r->id, ft->name, end.exit_code, end.lost);
            task_end(t, &end);
        }
        free(status);
    }
    store_task_runs_free(&running);
    /* Drive the rest on: queued tasks to the queue, retries to timers,
     * pending ones through their trigger rules; then queued runs. */
    int64_t now = sched_now_us();
    for (srun_t *r = s->runs, *next; r; r = next) {
        next = r->next;
        if (r->state != STORE_RUN_RUNNING) continue;
        const flow_t *f = run_flow(r);
        for (size_t i = 0; i < f->ntasks; i++) {
            stask_t *t = &r->tasks[i];
            if (t->state == STORE_TASK_QUEUED) queue_push(s, t);
            else if (t->state == STORE_TASK_UP_FOR_RETRY && !t->timer) {
                int64_t at = t->next_retry_at;
                t->timer = sched_timer_new(s);
                t->timer->data = t;
                uv_timer_start(t->timer, retry_on_timer,
                               at > now ? (uint64_t)(at - now) / 1000 + 1 : 0, 0);
            }
        }
        for (size_t i = 0; i < f->ntasks; i++) run_eval_task(r, f->topo[i]);
        run_check_done(r);
    }
    for (size_t i = 0; i < active.n; i++)
        if (active.v[i].state == STORE_RUN_QUEUED) sched_run_start_queued(s, active.v[i].flow);
    store_runs_free(&active);
    return 0;
}
