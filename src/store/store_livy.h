/*
 * store_livy — the Livy API's rows (docs/livy.md): interactive sessions,
 * their statements, and batches (schema v6, store.c).
 *
 * A session is a kernel of its owner's; its row holds what a restarted
 * nbhub needs to find that kernel again (connection file, pid + start
 * time, the Spark cluster it owns) and the session's Livy state:
 *
 *   store_livy_session_create   -> not_started (name unique among live
 *                                  sessions: -EEXIST)
 *   store_livy_session_spawned  the kernel's identity (any live state)
 *   store_livy_session_set_state any state; a final one (error, dead,
 *                                  killed, success) sets ended_at, which
 *                                  frees the name
 *   store_livy_session_delete   the row and its statements go (DELETE
 *                                  /sessions/ID: Livy forgets it at once)
 *
 * Statement ids count from 0 within a session (Livy's); a statement is
 * waiting -> running -> available | error | cancelled, or cancelling on
 * the way to cancelled.  output_json is the JSON object Livy returns as
 * "output" (NULL until the statement ends).
 *
 * A batch (h6-livyclients, livy_batch.c) is a spark-submit process of its
 * owner's: created not_started, then its process identity, then states up
 * to a final one (dead, killed, success, error) with ended_at.
 *
 * Session and batch ids are never handed out twice: a new row's id is
 * above the caller's high-water mark and above every row's (not SQLite's
 * max(rowid)+1, which reuses a deleted row's).
 *
 * Heartbeats are the session's last GET, written through so that a
 * restarted nbhub does not time out a session its client kept alive.
 *
 * Ownership: store.h's convention (store_livy_*_clear, store_livy_*s_free).
 */
#ifndef NBHUB_STORE_LIVY_H
#define NBHUB_STORE_LIVY_H

#include "store/store.h"

typedef struct store_livy_session {
    int64_t id, user_id;
    char   *owner;            /* the owner's name (join) */
    char   *proxy_user;       /* or NULL */
    char   *name;             /* or NULL */
    char   *kind;             /* pyspark | sql | ... */
    char   *state;            /* Livy's session state */
    char   *request_json;     /* the POST /sessions body, as accepted */
    char   *kernel_conn;      /* the kernel's connection file, or NULL */
    int     pid;              /* the kernel's, 0 = none */
    int64_t pid_start_time;
    char   *spark_cluster;    /* the cluster the session owns, or NULL (local) */
    char   *app_id;           /* Spark's application id, or NULL */
    char   *log_path;         /* the kernel's stdout/stderr, or NULL */
    char   *error;
    int64_t heartbeat_timeout;   /* seconds, 0 = none */
    int64_t last_heartbeat, created_at, ended_at;   /* microseconds, 0 = unset */
} store_livy_session_t;

typedef struct store_livy_sessions {
    store_livy_session_t *v;
    size_t                n;
} store_livy_sessions_t;

typedef struct store_livy_stmt {
    int64_t session_id;
    int64_t id;
    char   *kind;
    char   *code;
    char   *state;            /* waiting|running|available|error|cancelling|cancelled */
    char   *msg_id;           /* the execute_request's id, or NULL */
    char   *output_json;      /* Livy's "output" object, or NULL */
    double  progress;         /* 0..1 */
    int64_t started_at, completed_at;   /* microseconds, 0 = unset */
} store_livy_stmt_t;

typedef struct store_livy_stmts {
    store_livy_stmt_t *v;
    size_t             n;
} store_livy_stmts_t;

typedef struct store_livy_batch {
    int64_t id, user_id;
    char   *owner;            /* join */
    char   *proxy_user, *name;
    char   *state;            /* not_started|starting|running|shutting_down|error|dead|killed|success */
    char   *request_json;
    int     pid;
    int64_t pid_start_time;
    char   *spark_cluster, *app_id, *log_path, *error;
    int     has_exit_code, exit_code;
    int64_t created_at, ended_at;
} store_livy_batch_t;

typedef struct store_livy_batches {
    store_livy_batch_t *v;
    size_t              n;
} store_livy_batches_t;

/* 1 for a final session or batch state (error, dead, killed, success). */
int store_livy_state_final(const char *state);

enum store_livy_kind { STORE_LIVY_SESSION, STORE_LIVY_BATCH };
/* The highest session or batch id in its table (0 for none). */
int store_livy_max_id(store_t *st, enum store_livy_kind kind, int64_t *out, nb_err_t *err);

/* ---- sessions ---- */

/* A new session, not_started; *id its id.  -EEXIST when a live session
 * (ended_at unset) has that name; -ENOENT for an unknown user. */
int store_livy_session_create(store_t *st, int64_t user_id, const char *proxy_user,
                              const char *name, const char *kind, const char *request_json,
                              int64_t heartbeat_timeout, int64_t now, int64_t *id, nb_err_t *err);
/* The same with an id above `above` too (a high-water mark of ids handed
 * out before, whose rows may be gone): ids are never reused. */
int store_livy_session_create_above(store_t *st, int64_t above, int64_t user_id, const char *proxy_user,
                                    const char *name, const char *kind, const char *request_json,
                                    int64_t heartbeat_timeout, int64_t now, int64_t *id, nb_err_t *err);
int store_livy_session_get(store_t *st, int64_t id, store_livy_session_t *out, nb_err_t *err);
/* Sessions by id; user_id 0 = everybody's; live_only: ended_at unset. */
int store_livy_sessions_list(store_t *st, int64_t user_id, int live_only,
                             store_livy_sessions_t *out, nb_err_t *err);
/* The kernel's identity (NULLs and 0 clear). -ENOENT for no such row. */
int store_livy_session_spawned(store_t *st, int64_t id, const char *kernel_conn, int pid,
                               int64_t pid_start_time, const char *log_path,
                               const char *spark_cluster, nb_err_t *err);
/* Any state; error is kept as given (NULL clears).  A final state sets
 * ended_at = now (once). */
int store_livy_session_set_state(store_t *st, int64_t id, const char *state, const char *error,
                                 int64_t now, nb_err_t *err);
int store_livy_session_set_app(store_t *st, int64_t id, const char *app_id, nb_err_t *err);
int store_livy_session_heartbeat(store_t *st, int64_t id, int64_t now, nb_err_t *err);
/* The row and its statements. -ENOENT for no such row. */
int store_livy_session_delete(store_t *st, int64_t id, nb_err_t *err);
/* Final sessions that ended before `before` go (Livy forgets them after
 * a while); *n how many (may be NULL). */
int store_livy_sessions_prune(store_t *st, int64_t before, int64_t *n, nb_err_t *err);

/* ---- statements ---- */

/* A new statement, waiting, with the next id of the session (0, 1, ...). */
int store_livy_stmt_add(store_t *st, int64_t session_id, const char *kind, const char *code,
                        int64_t *id, nb_err_t *err);
int store_livy_stmt_get(store_t *st, int64_t session_id, int64_t id, store_livy_stmt_t *out,
                        nb_err_t *err);
/* The session's statements by id. */
int store_livy_stmts_list(store_t *st, int64_t session_id, store_livy_stmts_t *out, nb_err_t *err);
/* waiting -> running, with the request's msg_id (-ESTALE otherwise). */
int store_livy_stmt_start(store_t *st, int64_t session_id, int64_t id, const char *msg_id,
                          int64_t now, nb_err_t *err);
/* waiting|running -> cancelling (-ESTALE otherwise). */
int store_livy_stmt_cancelling(store_t *st, int64_t session_id, int64_t id, nb_err_t *err);
/* Any non-final -> available|error|cancelled with the output (may be
 * NULL); completed_at = now, progress 1 unless cancelled.  -ESTALE for a
 * statement already final. */
int store_livy_stmt_finish(store_t *st, int64_t session_id, int64_t id, const char *state,
                           const char *output_json, int64_t now, nb_err_t *err);
int store_livy_stmt_progress(store_t *st, int64_t session_id, int64_t id, double progress,
                             nb_err_t *err);

/* ---- batches ---- */

/* A new batch, not_started, its id above `above` (the high-water mark of
 * ids handed out before, livy_ids.h) and above every row's: never a
 * deleted batch's id.  -ENOENT for an unknown user. */
int store_livy_batch_create(store_t *st, int64_t above, int64_t user_id, const char *proxy_user,
                            const char *name, const char *request_json, int64_t now, int64_t *id,
                            nb_err_t *err);
int store_livy_batch_get(store_t *st, int64_t id, store_livy_batch_t *out, nb_err_t *err);
/* Batches by id; user_id 0 = everybody's; live_only: ended_at unset. */
int store_livy_batches_list(store_t *st, int64_t user_id, int live_only,
                            store_livy_batches_t *out, nb_err_t *err);
int store_livy_batch_spawned(store_t *st, int64_t id, int pid, int64_t pid_start_time,
                             const char *log_path, const char *spark_cluster, nb_err_t *err);
/* Any state; exit_code < 0 = unknown (kept NULL); a final state sets ended_at. */
int store_livy_batch_set_state(store_t *st, int64_t id, const char *state, int exit_code,
                               const char *error, int64_t now, nb_err_t *err);
int store_livy_batch_set_app(store_t *st, int64_t id, const char *app_id, nb_err_t *err);
int store_livy_batch_delete(store_t *st, int64_t id, nb_err_t *err);

void store_livy_session_clear(store_livy_session_t *s);
void store_livy_sessions_free(store_livy_sessions_t *l);
void store_livy_stmt_clear(store_livy_stmt_t *s);
void store_livy_stmts_free(store_livy_stmts_t *l);
void store_livy_batch_clear(store_livy_batch_t *b);
void store_livy_batches_free(store_livy_batches_t *l);

#endif
