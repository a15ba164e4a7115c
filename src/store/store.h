/*
 * store — nbhub's durable state: one SQLite database ($NBHUB_HOME/nbhub.db),
 * and the only code in nbhub that speaks SQL.
 *
 * Why SQLite, and how it is used
 * ------------------------------
 * No server to install (DESIGN section 1), and one file the operator can back
 * up with `sqlite3 nbhub.db .backup`.  The daemon is one thread, so there is
 * one connection (one store_t) per process; `nbhub` CLI processes and a
 * second daemon (refused elsewhere) may open their own.
 *
 *   journal_mode=WAL    readers (SSE, /metrics, the CLI) never block the
 *                       scheduler's writes, and a commit is one append.
 *   synchronous=FULL    the WAL is fsync'ed at every COMMIT: a transition
 *                       acknowledged to the caller survives kill -9 *and*
 *                       power loss.  (NORMAL survives kill -9 but may lose
 *                       the last commits on power loss — too weak for
 *                       "each cron tick fires exactly once".)  The cost is
 *                       one fsync per transition; tests/unit/test_store.c
 *                       prints it.
 *   foreign_keys=ON     runs -> flows, task_runs -> runs, ... are enforced.
 *   busy_timeout=5000   another process holding the write lock makes us wait
 *                       up to 5 s, then the call fails with -EBUSY.
 *
 * The file is created 0600 (it holds password and token hashes); SQLite
 * gives the -wal and -shm files the same mode.
 *
 * Rules every store_* function follows
 * ------------------------------------
 *  - Every state transition is ONE function and ONE transaction
 *    (BEGIN IMMEDIATE ... COMMIT).  The current state is read and validated
 *    inside that transaction, so two racing callers cannot both win: the
 *    loser gets -ESTALE ("the state you acted on is gone") and nothing is
 *    written.  Each transition appends its row to `events` in the same
 *    transaction, so the feed never shows a transition that did not happen
 *    nor misses one that did.
 *  - All SQL is static text with bound parameters; statements are prepared
 *    once per store_t (SQLITE_PREPARE_PERSISTENT) and reused.
 *  - Times are int64 microseconds since the epoch, UTC.  In the C structs
 *    below, 0 means "not set" (NULL in the database).
 *  - A store_t is used by one thread at a time.
 *
 * Errors: 0 or a negative errno, and a message in the nb_err_t (may be NULL):
 *   -ENOENT   no such flow / run / task / user / token
 *   -ESTALE   wrong current state for this transition (nothing written)
 *   -EBUSY    not yet possible (e.g. finishing a run whose tasks still run)
 *             or the database stayed locked by another process for 5 s
 *   -EEXIST   the tick already fired, the name or run_id is taken
 *   -EINVAL   bad argument
 *   -EKEYEXPIRED  token or session expired;  -EACCES  user disabled
 *   -ENOTSUP  the database was written by a newer nbhub (schema version)
 *   -EIO      anything else SQLite reports (message has SQLite's text)
 *
 * Ownership (the convention for every result of the store layer): results
 * are plain C structs.  A single row is written into a caller-provided
 * struct whose char * fields are then owned by the caller: release them with
 * the matching store_*_clear().  A list is a { v, n } struct filled by the
 * callee and released with the matching store_*s_free().  Input strings are
 * borrowed for the duration of the call only.
 *
 * Schema (version 3; see store.c for the exact SQL and migrations)
 * ------
 *   users(id PK, name UNIQUE, password_hash NULL, is_admin, created_at,
 *         disabled)
 *   api_tokens(id PK, user_id -> users CASCADE, name, token_hash UNIQUE,
 *              created_at, expires_at NULL, last_used_at NULL)
 *   sessions(id PK, token_hash UNIQUE, csrf_token, user_id -> users CASCADE,
 *            created_at, expires_at)
 *   flows(id PK, name, incarnation, owner_id -> users NULL, spec_json,
 *         source_path, source_hash, version, paused, created_at, updated_at,
 *         deleted_at NULL, UNIQUE(name, incarnation))
 *         -- one row per incarnation of a name (store_flows.h); deleted_at =
 *         -- soft delete, never undone; UNIQUE(name) WHERE deleted_at IS NULL
 *   runs(id PK, run_id, flow_id -> flows, flow (the name, for display and
 *        filters), kind, logical_us, state, flow_version, spec_json,
 *        params_json NULL, created_at, started_at NULL, ended_at NULL,
 *        triggered_by -> users NULL, UNIQUE(flow_id, run_id))
 *   ticks(flow_id -> flows, logical_us, fired_at, run -> runs,
 *         PRIMARY KEY(flow_id, logical_us))      -- WITHOUT ROWID
 *   task_runs(id PK, run -> runs CASCADE, task, state, try_number,
 *             max_tries, next_retry_at, pid, pid_start_time, queued_at,
 *             started_at, ended_at, exit_code, error, output_path,
 *             log_path, spark_app_id, UNIQUE(run, task))
 *   webhook_deliveries(id PK, run -> runs CASCADE, url, event,
 *             payload_json, state, attempts, next_attempt_at, last_error,
 *             created_at, delivered_at)          -- the notification outbox
 *   events(id PK AUTOINCREMENT, at, kind, flow, run, task, json, flow_id)
 *                                                -- append-only feed; flow_id
 *                                                -- = the incarnation it is about
 *
 * Departures from the first sketch, and why:
 *   - run_id is unique per flow, not globally: "scheduled__2026-11-22T05:00:00
 *     +00:00" is the same text for every flow that ticks at 05:00 (Airflow's
 *     own key is (dag_id, run_id) too).
 *   - runs carry flow_version and a copy of spec_json taken when the run is
 *     created: editing a flow while it runs must not change the DAG of the
 *     runs already in flight.
 *   - events.id is AUTOINCREMENT so an id is never reused after pruning: SSE
 *     clients resume with Last-Event-ID.
 *
 * State machines (every arrow is one store_* function = one transaction)
 * --------------
 *   run:
 *                store_run_start              store_run_finish
 *     queued ------------------> running ---------------------> success
 *       |  \                       |     \--------------------> failed
 *       |   \ store_run_finish     |
 *       |    `---(failed)-------> failed
 *       |                          |
 *       `----- store_run_cancel ---+--------------------------> cancelled
 *
 *     store_run_finish needs every task_run terminal (else -EBUSY);
 *     store_run_cancel cancels the run and its non-terminal task_runs at once.
 *
 *   task_run:
 *                 store_task_queue      store_task_start
 *     pending --------------------> queued ----------------> running
 *       |                             ^    (try_number++)      |
 *       | store_task_skip             |                        | store_task_finish
 *       v                             | store_task_retry_due   v
 *     skipped | upstream_failed       |              success | failed
 *                                     |                        | (tries left and
 *                                     `----- up_for_retry <----' a retry time given)
 *
 *     any non-terminal state --store_run_cancel--> cancelled
 *     Terminal: success, failed, skipped, upstream_failed, cancelled.
 *     queue/start/retry_due also require the run to be 'running'.
 *
 *   ticks: store_tick_fire inserts (flow, logical_us) and the run and its
 *   task_runs in one transaction ("record the tick, then dispatch"): a tick
 *   fires exactly once across crashes and restarts; the second attempt gets
 *   -EEXIST and creates nothing.
 */
#ifndef NBHUB_STORE_H
#define NBHUB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* The schema version this nbhub writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 7

typedef struct store store_t;

/* Open (creating and migrating if needed) the database at `path`.  The
 * directory must exist.  A database whose schema version is newer than
 * STORE_SCHEMA_VERSION is refused with -ENOTSUP; a file that is not an nbhub
 * database is refused with -EINVAL.  *out is owned by the caller: store_close. */
int  store_open(const char *path, store_t **out, nb_err_t *err);
/* Finalize the cached statements and close.  NULL is a no-op. */
void store_close(store_t *st);
/* PRAGMA user_version of the open database. */
int  store_schema_version(store_t *st);

/* Events: the append-only feed (SSE, /metrics, audit).  kind is one of
 * "flow.upsert", "flow.paused", "flow.unpaused", "flow.deleted",
 * "run.queued", "run.running", "run.success", "run.failed", "run.cancelled",
 * "task.<state>" for every task_run state reached, "webhook.failed",
 * "store.recover".  json is a small object with the details. */
typedef struct store_event {
    int64_t id, at;
    char   *kind;
    char   *flow;      /* NULL when not about a flow */
    int64_t run;       /* runs.id, 0 if none */
    char   *task;      /* NULL if none */
    char   *json;      /* a JSON object, never NULL */
    int64_t flow_id;   /* flows.id of the incarnation it is about, 0 if none */
} store_event_t;

typedef struct store_events {
    store_event_t *v;
    size_t         n;
} store_events_t;

/* Events with id > after_id, oldest first, at most `limit` (1..10000). */
int  store_events_since(store_t *st, int64_t after_id, int limit, store_events_t *out,
                        nb_err_t *err);
/* Highest event id (0 when empty): where a new SSE client starts. */
int  store_events_last_id(store_t *st, int64_t *out, nb_err_t *err);
/* Retention: delete the oldest events up to the first one at or after
 * before_us (events are appended in time order); *deleted may be NULL. */
int  store_events_prune(store_t *st, int64_t before_us, int64_t *deleted, nb_err_t *err);
void store_event_clear(store_event_t *e);
void store_events_free(store_events_t *l);

/* Group commit: the transitions between begin and end are each atomic (a
 * SAVEPOINT; a failed one is undone alone) and become durable together at
 * end, with one fsync instead of one each.  For a burst the loop does in
 * one callback (a task's end, its children queued and started).  Nothing
 * may be shown outside the process (events, replies) before end. */
int store_batch_begin(store_t *st, nb_err_t *err);
int store_batch_end(store_t *st, nb_err_t *err);

#ifdef NBHUB_STORE_INTERNAL
/*
 * Internal interface shared by store.c, store_flows.c, store_runs.c and
 * store_auth.c (they define NBHUB_STORE_INTERNAL before including this).
 * Nothing outside src/store/ may use it, except the store's own unit test.
 */
#include <sqlite3.h>
#include <jansson.h>

/* store_open, migrating no further than `version` (1..STORE_SCHEMA_VERSION):
 * for the unit test that builds an old database and upgrades it. */
int store_open_at(const char *path, int version, store_t **out, nb_err_t *err);

/* The connection, for the unit test's benchmark only. */
sqlite3 *store_db(store_t *st);

/* The cached prepared statement for `sql`, reset and with its bindings
 * cleared.  `sql` must have static storage (a string literal): its address
 * is the cache key.  store_stmt_k lets a caller with SQL assembled from
 * fixed fragments (never from input) key it by a static address instead.
 * The statement stays owned by the cache; callers sqlite3_reset it (or use
 * store_step_done) when done so no read snapshot is held open. */
int store_stmt(store_t *st, const char *sql, sqlite3_stmt **out, nb_err_t *err);
int store_stmt_k(store_t *st, const void *key, const char *sql, sqlite3_stmt **out,
                 nb_err_t *err);

/* Map an SQLite result code to our errno convention, with the connection's
 * message.  `what` says what we were doing. */
int store_sqlerr(store_t *st, int rc, const char *what, nb_err_t *err);

/* Step a statement expected to return no row (INSERT/UPDATE/DELETE), reset
 * it, return 0 or a mapped error. */
int store_step_done(store_t *st, sqlite3_stmt *s, const char *what, nb_err_t *err);

/* Run fn(st, arg, err) inside BEGIN IMMEDIATE ... COMMIT; any non-zero
 * return from fn (or a failed COMMIT) rolls back and is returned.  Not
 * reentrant: a transition never calls another transition. */
typedef int (*store_tx_fn)(store_t *st, void *arg, nb_err_t *err);
int store_tx(store_t *st, store_tx_fn fn, void *arg, nb_err_t *err);


/* Append one event; `data` (may be NULL = {}) is consumed (json_decref'ed).
 * Called only inside a transaction, by the transition that caused it. */
int store_event_add(store_t *st, int64_t at, const char *kind, const char *flow, int64_t run,
                    const char *task, json_t *data, nb_err_t *err);

/* Binding / column helpers: NULL pointers and 0 times map to SQL NULL. */
int   store_bind_text(sqlite3_stmt *s, int idx, const char *v);
int   store_bind_time(sqlite3_stmt *s, int idx, int64_t v);
char *store_col_str(sqlite3_stmt *s, int col);   /* xstrdup'ed or NULL */
#endif /* NBHUB_STORE_INTERNAL */

#endif
