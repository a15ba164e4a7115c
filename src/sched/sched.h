/*
 * sched — the scheduler of nbhub serve: flows in memory, cron ticks, the
 * DAG of each run, dispatch of task runs to child processes, retries,
 * timeouts, cancel, and recovery after a restart.
 *
 * Event-driven, no polling loop: a flow's next tick is a uv timer; a task's
 * end is its child's exit callback, which finishes the task in the store
 * and at once evaluates its children's trigger rules and dispatches the
 * ready ones.  Retries are timers too.
 *
 * Every state change goes through the store first (one transaction), then
 * acts: "record the tick, then dispatch".  A crash between the two leaves a
 * state that sched_start's recovery completes.
 *
 * Task runs execute in child processes (see sup.h): a notebook task is
 * `nbhub run` attached to a kernel lent by the warm pool when one is ready
 * (else starting its own), a command task its argv.  Why children and not
 * the daemon's own loop: a crash, leak or runaway output in one run never
 * takes the daemon or the other runs down, memory goes back to the system
 * when the run ends, and after a daemon restart a task still running is
 * found again by pid + start time (recorded in the store).
 *
 * Ownership: the scheduler borrows loop, store and pool (they outlive it);
 * strings passed in are copied or used during the call only.  Everything
 * runs on the loop's thread.
 */
#ifndef NBHUB_SCHED_H
#define NBHUB_SCHED_H
#include <stdint.h>
#include <uv.h>
#include "iso/limits.h"
#include <jansson.h>
#include "sched/flow.h"
#include "sched/pool.h"
#include "store/store.h"
#include "util/err.h"
#include "util/errlist.h"

typedef struct sched sched_t;

typedef struct sched_opts {
    uv_loop_t  *loop;
    store_t    *store;
    pool_t     *pool;             /* may be NULL: every notebook task starts its own kernel */
    const char *home;             /* $NBHUB_HOME: runs/ go below it */
    const char *flows_dir;        /* watched for *.yaml / *.yml; NULL = none */
    const char *self_exe;         /* path of the nbhub binary, for task children */
    const char *base_url;         /* for links in webhooks ("http://127.0.0.1:8765") */
    unsigned    max_active_tasks; /* running task children at once, all flows (0 = 16) */
    uint64_t    kill_grace_ms;    /* SIGTERM -> SIGKILL for timeouts and cancel (0 = 10000) */
    /* Called after each committed transition, so the API can push the new
     * events (store_events_since) to SSE clients.  May be NULL. */
    void      (*on_change)(void *ud);
    void       *ud;
    /* Isolation (docs/security.md).  system: every task runs as its flow
     * owner's Unix account (account_tmpl, e.g. "nbhub-{name}"; created when
     * missing if create_accounts) through `nbhub __as-user`, with an
     * environment of env_keep only; no warm pool.  cgroups: limits are
     * enforced (cgroup_probe passed); user_limits(limits_ud, owner) gives an
     * owner's limits (NULL = none). */
    int         system;
    const char *account_tmpl;
    int         create_accounts;
    int         cgroups;
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void       *limits_ud;
} sched_opts_t;

int  sched_new(const sched_opts_t *o, sched_t **out, nb_err_t *err);

/* Recover what a previous daemon left (task runs still 'running' are
 * re-attached by pid + start time or finished by their status file or as
 * failed; runs left queued/running are driven on), load the flows
 * directory and start its watch, arm the tick timers. */
int  sched_start(sched_t *s, nb_err_t *err);

/* Graceful stop (SIGTERM of the daemon): fire no more ticks, start no more
 * tasks; tasks still running after grace_ms are stopped (SIGTERM, then
 * SIGKILL) and recorded failed with "daemon shutdown" (retried by their
 * policy after the next start).  done(ud) once no child is left.  Then
 * sched_free. */
void sched_stop(sched_t *s, uint64_t grace_ms, void (*done)(void *ud), void *ud);
void sched_free(sched_t *s);

/* ---- flows ----------------------------------------------------------- */

/* The flows directory (NULL = none). */
const char *sched_flows_dir(const sched_t *s);
/* f's own directory (flows_dir/NAME/, a flow deployed with its files), or
 * NULL when its paths resolve against the flows directory itself. */
const char *sched_flow_own_dir(const sched_t *s, const flow_t *f);

/* Rescan the flows directory now (also done on inotify changes). */
void sched_reload(sched_t *s);

/* The flow as currently in service, or NULL.  Borrowed: valid until the
 * next return to the loop. */
const flow_t *sched_flow(sched_t *s, const char *name);

/* Problems of the newest version of a flow's file that failed to load
 * (NULL when it loaded): borrowed, like sched_flow. */
const nb_errlist_t *sched_flow_errors(sched_t *s, const char *name);

/* Errors of files in the flows dir whose flow name is unknown (they never
 * loaded): name -> errlist, for `nbhub flow list`. Borrowed. */
size_t sched_broken_files(sched_t *s, const char ***paths, const nb_errlist_t ***errs);

/* Next tick (UTC microseconds) of a live, unpaused flow with a schedule;
 * 0 if none. */
int64_t sched_next_run(sched_t *s, const char *name);

/* Apply a flow file sent by a user (API POST /flows, `nbhub flow apply`).
 * The text is parsed and validated (problems to errs, -EINVAL), labelled
 * `label` in messages (the client's file name; NULL = "<request>"), whose
 * base name without .yaml is also the default flow name; owner rule:
 * a non-admin may only apply flows whose `owner:` is empty or their own
 * name and must own the flow if it exists already (-EACCES, message in
 * err).  When valid and not dry_run, the file is written atomically to
 * flows_dir/NAME.yaml (so the flows directory stays the one source of
 * truth) and the flow is put in service at once.  Outputs may be NULL:
 * *name_out (malloc'd), *version, *created (1 if new), *changed. */
/* A file sent with a flow (`nbhub flow apply` bundles the notebooks and
 * `files:` it references): path relative to the flow's directory. */
typedef struct sched_file {
    const char *path;
    const char *data;
    size_t      len;
} sched_file_t;

/* 0 if path may name a file in a flow's directory: relative, at most 255
 * bytes, components of printable ASCII, none empty, ".", ".." or starting
 * with '.' (no hidden files, no escapes). */
int  sched_file_path_ok(const char *path);

/* files (nfiles, may be 0) are written to flows_dir/NAME/ — the flow's
 * directory, against which its paths then resolve — replacing what was
 * there, all at once (staged, then renamed) and only when the flow is
 * valid and the caller may apply it.  trusted: the caller may save command
 * tasks and paths outside the flow's directory (flow_needs_trust); else
 * such a flow is refused (-EACCES). */
int  sched_flow_apply(sched_t *s, const char *yaml, size_t len, const sched_file_t *files, size_t nfiles,
                      int trusted, const char *label,
                      const char *user,
                      int is_admin, int dry_run, char **name_out, int64_t *version,
                      int *created, int *changed, nb_errlist_t *errs, nb_err_t *err);

/* Pause (1) / resume (0).  Idempotent (no error when already so).  -ENOENT. */
int  sched_flow_pause(sched_t *s, const char *name, int paused, nb_err_t *err);

/* Soft-delete the flow and remove its file from the flows dir.  -EBUSY
 * while runs are queued or running. */
int  sched_flow_delete(sched_t *s, const char *name, nb_err_t *err);

/* ---- runs ------------------------------------------------------------ */

/* Manual trigger: a run now (logical_us 0 = now) with params (object, may
 * be NULL) merged over the flow's defaults; unknown parameter names are
 * refused (-EINVAL) like the flow file's templates would be.  user_id 0 =
 * the system.  *run_out = runs.id. */
int  sched_trigger(sched_t *s, const char *flow, const json_t *params, int64_t logical_us,
                   int64_t user_id, int64_t *run_out, nb_err_t *err);

/* Backfill: one run (kind backfill) per schedule tick in [from_us, to_us],
 * skipping ticks that already fired.  Ids appended to *runs (a JSON array
 * of integers, caller-owned).  -EINVAL for a flow without a schedule or
 * more than 1000 ticks. */
int  sched_backfill(sched_t *s, const char *flow, int64_t from_us, int64_t to_us,
                    int64_t user_id, json_t *runs, nb_err_t *err);

/* Cancel a run: the store marks it and its unfinished tasks cancelled;
 * running children are interrupted (SIGINT), then SIGTERM, then SIGKILL
 * after kill_grace_ms.  -ESTALE if it already finished. */
int  sched_cancel_run(sched_t *s, int64_t run, nb_err_t *err);

/* Cancel one task run: a running child is stopped as above and the task
 * ends failed with error "cancelled" (no retry); pending/queued/up_for_retry
 * ones end failed at once.  Dependents follow their trigger rules. */
int  sched_cancel_task(sched_t *s, int64_t run, const char *task, nb_err_t *err);

/* End the kernel kept for a post-mortem after task run task_run failed
 * (post_mortem:, src/sched/sched_kept.c): its keeper is sent SIGTERM, its
 * process group SIGKILL 3 s later if still there.  -ENOENT if none is kept. */
int  sched_kept_end(sched_t *s, int64_t task_run, nb_err_t *err);

/* ---- numbers for /metrics and /api/v1/info --------------------------- */

typedef struct sched_stats {
    unsigned running_tasks;   /* children alive */
    unsigned queued_tasks;    /* ready, waiting for a max_active_tasks slot */
    unsigned flows;           /* in service */
    unsigned broken_files;
    uint64_t ticks_fired;     /* since start */
    uint64_t tasks_started;
    /* Task durations (seconds) of tasks finished since start, for the
     * nbhub_task_duration_seconds histogram. */
    uint64_t dur_bucket[10];  /* <= 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, +Inf (cumulative) */
    double   dur_sum;
    uint64_t dur_count;
} sched_stats_t;
extern const double sched_dur_bounds[9];

void sched_get_stats(sched_t *s, sched_stats_t *out);

/* Each running try of a task that asks for Spark, with the path of the
 * state file its __spark-task keeps (<task>.spark.json, maybe not written
 * yet): what the API streams as task.spark events.  Strings are borrowed
 * for the call. */
typedef void (*sched_spark_fn)(const char *flow, int64_t run, const char *task, const char *state_path,
                               void *ud);
void sched_spark_each(sched_t *s, sched_spark_fn fn, void *ud);

#endif
