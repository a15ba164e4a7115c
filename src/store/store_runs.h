/*
 * store_runs — ticks, runs, task runs, the webhook outbox, recovery and the
 * counts behind /metrics.  The state machines are drawn in store.h; every
 * transition below is one transaction that checks the current state first
 * (-ESTALE if it is not the one the arrow starts from) and appends its event.
 *
 * Identifiers: runs and task_runs are addressed by their integer id (the
 * scheduler's handle).  A run belongs to one flow incarnation (flow_id, see
 * store_flows.h).  It also has a text run_id, unique within that
 * incarnation, in Airflow's form: "scheduled__2026-11-22T05:00:00+00:00",
 * "manual__2026-11-22T05:10:00.123456+00:00", "backfill__...": the kind,
 * two underscores, the logical time in ISO 8601 with "+00:00" (microseconds
 * only when non-zero, like Python's isoformat()).
 *
 * Exactly-once ticks: store_tick_fire records (flow_id, logical_us) in `ticks`
 * in the same transaction that creates the run.  A scheduler that crashes
 * after the commit finds the tick on restart (-EEXIST) and does not fire it
 * again; one that crashes before finds nothing and fires it.
 *
 * Ownership: see store.h — single rows are filled into caller structs and
 * released with store_run_clear / store_task_run_clear / store_webhook_clear;
 * lists with store_runs_free / store_task_runs_free / store_webhooks_free.
 */
#ifndef NBHUB_STORE_RUNS_H
#define NBHUB_STORE_RUNS_H

#include "store/store.h"

typedef enum store_run_kind {
    STORE_RUN_SCHEDULED, STORE_RUN_MANUAL, STORE_RUN_BACKFILL, STORE_RUN_NKINDS
} store_run_kind_t;

typedef enum store_run_state {
    STORE_RUN_QUEUED, STORE_RUN_RUNNING, STORE_RUN_SUCCESS, STORE_RUN_FAILED,
    STORE_RUN_CANCELLED, STORE_RUN_NSTATES
} store_run_state_t;

typedef enum store_task_state {
    STORE_TASK_PENDING, STORE_TASK_QUEUED, STORE_TASK_RUNNING, STORE_TASK_SUCCESS,
    STORE_TASK_FAILED, STORE_TASK_UP_FOR_RETRY, STORE_TASK_SKIPPED, STORE_TASK_CANCELLED,
    STORE_TASK_UPSTREAM_FAILED, STORE_TASK_NSTATES
} store_task_state_t;

/* Names as stored ("scheduled", "queued", "up_for_retry", ...); parse
 * functions return 0 or -EINVAL. */
const char *store_run_kind_name(store_run_kind_t k);
const char *store_run_state_name(store_run_state_t s);
const char *store_task_state_name(store_task_state_t s);
int store_run_kind_parse(const char *s, store_run_kind_t *out);
int store_run_state_parse(const char *s, store_run_state_t *out);
int store_task_state_parse(const char *s, store_task_state_t *out);
int store_run_state_terminal(store_run_state_t s);
int store_task_state_terminal(store_task_state_t s);

/* Airflow-style run_id for kind and logical time into buf (64 bytes is
 * always enough). */
void store_run_id_format(store_run_kind_t kind, int64_t logical_us, char *buf, size_t n);

typedef struct store_run {
    int64_t           id;
    char             *run_id;
    char             *flow;
    store_run_kind_t  kind;
    int64_t           logical_us;
    store_run_state_t state;
    int64_t           flow_version;
    char             *spec_json;     /* the flow's spec when the run was created;
                                        NULL in store_runs_list results */
    char             *params_json;   /* may be NULL */
    int64_t           created_at, started_at, ended_at;
    int64_t           triggered_by;  /* users.id, 0 = the scheduler */
    int64_t           flow_id;       /* flows.id: the incarnation it ran under */
    int64_t           flow_incarnation; /* that row's incarnation (1, 2, ...) */
} store_run_t;

typedef struct store_runs {
    store_run_t *v;
    size_t       n;
} store_runs_t;

typedef struct store_task_run {
    int64_t            id;
    int64_t            run;          /* runs.id */
    char              *task;
    store_task_state_t state;
    int                try_number;   /* tries started so far (0 before the first) */
    int                max_tries;
    int64_t            next_retry_at;
    int                pid;          /* 0 = none */
    int64_t            pid_start_time; /* /proc/PID/stat field 22 (clock ticks after boot) */
    int64_t            queued_at, started_at, ended_at;
    int                has_exit_code;
    int                exit_code;    /* negative = killed by signal -exit_code */
    char              *error;        /* may be NULL */
    char              *output_path;  /* may be NULL */
    char              *log_path;     /* may be NULL */
    char              *spark_app_id; /* the Spark application of the latest try, may be NULL */
    /* A kernel kept for a post-mortem after the try failed (post_mortem:),
     * or NULL / 0: its connection file, its keeper's pid and start time
     * (/proc/PID/stat field 22), and until when (microseconds). */
    char              *kernel_conn;
    int                kernel_pid;
    int64_t            kernel_pid_start_time;
    int64_t            kernel_kept_until;
} store_task_run_t;

typedef struct store_task_runs {
    store_task_run_t *v;
    size_t            n;
} store_task_runs_t;

/* A notification to enqueue in the outbox, atomically with a run's end. */
typedef struct store_hook {
    const char *url;
    const char *event;          /* e.g. "run.failed" */
    const char *payload_json;
} store_hook_t;

/* ---- transitions ---------------------------------------------------------- */

typedef struct store_task_spec {
    const char *task;
    int         max_tries;      /* >= 1 */
} store_task_spec_t;

typedef struct store_fire {
    const char              *flow;
    store_run_kind_t         kind;
    int64_t                  logical_us;
    const char              *run_id;      /* NULL = store_run_id_format(kind, logical_us) */
    const char              *params_json; /* NULL allowed */
    int64_t                  triggered_by;/* users.id or 0 */
    const store_task_spec_t *tasks;
    size_t                   ntasks;      /* >= 1, names unique */
    int64_t                  flow_id;     /* 0, or the incarnation expected live (else -ENOENT) */
} store_fire_t;

/* Create the run (queued) and its task_runs (pending) and, unless the kind
 * is manual, the tick (flow, logical_us) — all or nothing.  -EEXIST if the
 * tick already fired or the run_id is taken; -ENOENT for a missing or
 * deleted flow; -ESTALE for a scheduled tick of a paused flow (manual and
 * backfill runs of a paused flow are allowed).  *run_out (may be NULL) gets
 * runs.id.  Event: run.queued. */
int store_tick_fire(store_t *st, const store_fire_t *f, int64_t now, int64_t *run_out,
                    nb_err_t *err);

/* Latest logical time that fired for this flow (scheduled or backfill):
 * where the scheduler resumes after a restart.  -ENOENT if none. */
int store_tick_last(store_t *st, const char *flow, int64_t *logical_us, nb_err_t *err);

/* queued -> running.  Event: run.running. */
int store_run_start(store_t *st, int64_t run, int64_t now, nb_err_t *err);

/* running -> success | failed, or queued -> failed.  Every task_run must be
 * terminal (else -EBUSY).  hooks[0..nhooks) are enqueued in the webhook
 * outbox in the same transaction.  Event: run.<state>. */
int store_run_finish(store_t *st, int64_t run, store_run_state_t state, int64_t now,
                     const store_hook_t *hooks, size_t nhooks, nb_err_t *err);

/* queued | running -> cancelled, with every non-terminal task_run ->
 * cancelled.  *was_running (may be NULL) gets the task_runs that were
 * running (with pid and pid_start_time) so the caller can kill them; their
 * later store_task_finish returns -ESTALE.  Events: task.cancelled per
 * task, run.cancelled. */
int store_run_cancel(store_t *st, int64_t run, int64_t now, const store_hook_t *hooks,
                     size_t nhooks, store_task_runs_t *was_running, nb_err_t *err);

/* pending -> queued (the run must be running).  Event: task.queued. */
int store_task_queue(store_t *st, int64_t task_run, int64_t now, nb_err_t *err);

/* queued -> running, try_number++; records the child's pid and start time
 * (for re-attach after a daemon restart) and the output/log paths (NULL
 * keeps the previous ones).  Clears the previous try's exit code and error.
 * Event: task.running. */
int store_task_start(store_t *st, int64_t task_run, int pid, int64_t pid_start_time,
                     const char *output_path, const char *log_path, int64_t now,
                     nb_err_t *err);

/* The Spark application id the task's latest try ran (NULL clears it). */
int store_task_set_spark(store_t *st, int64_t task_run, const char *app_id, nb_err_t *err);

/* The kernel kept after the task run's failed try (kept_until in
 * microseconds); clear when it was stopped.  kept_kernels lists every task
 * run with one, soonest deadline first. */
int store_task_set_kernel(store_t *st, int64_t task_run, const char *conn, int pid,
                          int64_t pid_start_time, int64_t kept_until, nb_err_t *err);
int store_task_clear_kernel(store_t *st, int64_t task_run, nb_err_t *err);
int store_task_kept_kernels(store_t *st, store_task_runs_t *out, nb_err_t *err);

/* running -> success, or running -> failed / up_for_retry.  A failure
 * becomes up_for_retry when try_number < max_tries and retry_at != 0
 * (the caller computes delay and backoff); else failed.  *new_state (may be
 * NULL) gets the state reached.  Event: task.<new state>. */
int store_task_finish(store_t *st, int64_t task_run, store_task_state_t result, int exit_code,
                      const char *error, int64_t retry_at, int64_t now,
                      store_task_state_t *new_state, nb_err_t *err);

/* Every up_for_retry task_run of a running run whose next_retry_at <= now
 * (earliest first, at most `limit`) -> queued, in one transaction; *out gets
 * them as they are after the move.  Events: task.queued each. */
int store_task_retry_due(store_t *st, int64_t now, int limit, store_task_runs_t *out,
                         nb_err_t *err);

/* pending -> skipped | upstream_failed (the run must be running); `reason`
 * (may be NULL) goes to error.  Event: task.<state>. */
int store_task_skip(store_t *st, int64_t task_run, store_task_state_t state, const char *reason,
                    int64_t now, nb_err_t *err);

/* Any non-terminal state -> cancelled for one task of a running run (the
 * run goes on; dependents see the task as failed).  `reason` (may be NULL)
 * goes to error; *was (may be NULL) gets the state it left, so the caller
 * knows whether a child must be stopped.  -ESTALE when already terminal or
 * the run is not running.  Event: task.cancelled. */
int store_task_cancel(store_t *st, int64_t task_run, const char *reason, int64_t now,
                      store_task_state_t *was, nb_err_t *err);
/* After a daemon restart: the task_runs left 'running' (the caller
 * re-attaches by pid + start time, or fails them with store_task_finish) and
 * the runs left queued or running, read in one transaction that also
 * appends a "store.recover" event.  Either output may be NULL. */
int store_recover(store_t *st, int64_t now, store_task_runs_t *running, store_runs_t *active,
                  nb_err_t *err);

/* ---- webhook outbox --------------------------------------------------------- */

typedef enum store_webhook_state {
    STORE_WEBHOOK_PENDING, STORE_WEBHOOK_DELIVERED, STORE_WEBHOOK_FAILED
} store_webhook_state_t;

typedef struct store_webhook {
    int64_t               id, run;
    char                 *url, *event, *payload_json;
    store_webhook_state_t state;
    int                   attempts;
    int64_t               next_attempt_at;
    char                 *last_error;    /* may be NULL */
    int64_t               created_at, delivered_at;
} store_webhook_t;

typedef struct store_webhooks {
    store_webhook_t *v;
    size_t           n;
} store_webhooks_t;

/* Pending deliveries whose next_attempt_at <= now, earliest first. */
int store_webhooks_due(store_t *st, int64_t now, int limit, store_webhooks_t *out,
                       nb_err_t *err);

/* Record one delivery attempt of a pending webhook: ok -> delivered; else
 * attempts++, last_error = error, and retry at next_attempt_at, or (0) give
 * up -> failed, with a "webhook.failed" event so the failure is not silent. */
int store_webhook_attempt(store_t *st, int64_t id, int ok, const char *error,
                          int64_t next_attempt_at, int64_t now, nb_err_t *err);

/* ---- queries ---------------------------------------------------------------- */

/* One run, and its task_runs by task name when tasks != NULL.  -ENOENT. */
int store_run_get(store_t *st, int64_t run, store_run_t *out, store_task_runs_t *tasks,
                  nb_err_t *err);
int store_run_get_by_run_id(store_t *st, const char *flow, const char *run_id,
                            store_run_t *out, store_task_runs_t *tasks, nb_err_t *err);
int store_task_run_get(store_t *st, int64_t task_run, store_task_run_t *out, nb_err_t *err);

typedef struct store_run_filter {
    const char *flow;      /* a flow name (every incarnation), NULL = all flows */
    int64_t     flow_id;   /* one incarnation (flows.id), 0 = any */
    int         state;     /* a store_run_state_t, or -1 = any */
    int64_t     owner_id;  /* flows owned by this user, 0 = any */
    int64_t     before_id; /* keyset pagination: ids < before_id; 0 = from the newest */
    int         limit;     /* 1..1000 */
} store_run_filter_t;

/* Runs matching the filter, newest (highest id) first, spec_json omitted.
 * Next page: before_id = the last id returned; fewer than limit = the end. */
int store_runs_list(store_t *st, const store_run_filter_t *f, store_runs_t *out,
                    nb_err_t *err);

typedef struct store_counts {
    int64_t runs[STORE_RUN_NSTATES];
    int64_t tasks[STORE_TASK_NSTATES];
    int64_t webhooks_pending, webhooks_failed;
    int64_t flows, flows_paused;
    int64_t last_event_id;
} store_counts_t;

/* Rows per state for /metrics, read in one snapshot (index-only scans). */
int store_counts(store_t *st, store_counts_t *out, nb_err_t *err);

void store_run_clear(store_run_t *r);
void store_runs_free(store_runs_t *l);
void store_task_run_clear(store_task_run_t *t);
void store_task_runs_free(store_task_runs_t *l);
void store_webhook_clear(store_webhook_t *w);
void store_webhooks_free(store_webhooks_t *l);

#endif
