/*
 * store_livy.c — Livy sessions, statements and batches (store_livy.h).
 * Every write is one statement, or one transaction where a read decides
 * (the next statement id, the name of a live session, the next id).
 *
 * Sessions and batches are rows of the same shape: an owner joined for
 * its name, got by id, listed by owner and liveness, ids handed out above
 * a high-water mark.  That is written once (lrow_get, lrows_list,
 * lrow_next_id), driven by a table's struct lkind.
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_livy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

int store_livy_state_final(const char *s)
{
    return s && (!strcmp(s, "error") || !strcmp(s, "dead") || !strcmp(s, "killed") ||
                 !strcmp(s, "success"));
}

static int changed_one(store_t *st, const char *what, int64_t id, nb_err_t *err)
{
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ENOENT, "%s: no row with id %lld", what, (long long)id);
    return 0;
}

/* A list's next slot, zeroed. */
#define GROW(l, cap)                                                     \
    do {                                                                 \
        if ((l)->n == (cap)) {                                           \
            (cap) = (cap) ? (cap) * 2 : 8;                               \
            (l)->v = xrealloc((l)->v, (cap) * sizeof *(l)->v);           \
        }                                                                \
        memset(&(l)->v[(l)->n], 0, sizeof *(l)->v);                      \
    } while (0)

/* ---- rows ------------------------------------------------------------------- */

#define SESSION_COLS "s.id, s.user_id, u.name, s.proxy_user, s.name, s.kind, s.state, " \
                     "s.request_json, s.kernel_conn, s.pid, s.pid_start_time, s.spark_cluster, " \
                     "s.app_id, s.log_path, s.error, s.heartbeat_timeout, s.last_heartbeat, " \
                     "s.created_at, s.ended_at"

static void session_row(sqlite3_stmt *s, store_livy_session_t *v)
{
    v->id = sqlite3_column_int64(s, 0);
    v->user_id = sqlite3_column_int64(s, 1);
    v->owner = store_col_str(s, 2);
    v->proxy_user = store_col_str(s, 3);
    v->name = store_col_str(s, 4);
    v->kind = store_col_str(s, 5);
    v->state = store_col_str(s, 6);
    v->request_json = store_col_str(s, 7);
    v->kernel_conn = store_col_str(s, 8);
    v->pid = sqlite3_column_int(s, 9);
    v->pid_start_time = sqlite3_column_int64(s, 10);
    v->spark_cluster = store_col_str(s, 11);
    v->app_id = store_col_str(s, 12);
    v->log_path = store_col_str(s, 13);
    v->error = store_col_str(s, 14);
    v->heartbeat_timeout = sqlite3_column_int64(s, 15);
    v->last_heartbeat = sqlite3_column_int64(s, 16);
    v->created_at = sqlite3_column_int64(s, 17);
    v->ended_at = sqlite3_column_int64(s, 18);
}

#define BATCH_COLS "b.id, b.user_id, u.name, b.proxy_user, b.name, b.state, b.request_json, b.pid, " \
                   "b.pid_start_time, b.spark_cluster, b.app_id, b.log_path, b.exit_code, b.error, " \
                   "b.created_at, b.ended_at"

static void batch_row(sqlite3_stmt *s, store_livy_batch_t *v)
{
    v->id = sqlite3_column_int64(s, 0);
    v->user_id = sqlite3_column_int64(s, 1);
    v->owner = store_col_str(s, 2);
    v->proxy_user = store_col_str(s, 3);
    v->name = store_col_str(s, 4);
    v->state = store_col_str(s, 5);
    v->request_json = store_col_str(s, 6);
    v->pid = sqlite3_column_int(s, 7);
    v->pid_start_time = sqlite3_column_int64(s, 8);
    v->spark_cluster = store_col_str(s, 9);
    v->app_id = store_col_str(s, 10);
    v->log_path = store_col_str(s, 11);
    v->has_exit_code = sqlite3_column_type(s, 12) != SQLITE_NULL;
    v->exit_code = sqlite3_column_int(s, 12);
    v->error = store_col_str(s, 13);
    v->created_at = sqlite3_column_int64(s, 14);
    v->ended_at = sqlite3_column_int64(s, 15);
}

/* ---- what sessions and batches share ------------------------------------------ */

struct lkind {
    const char *get_sql;      /* ?1 = id */
    const char *list_sql;     /* ?1 = user id or 0, ?2 = live only */
    const char *max_sql;      /* the highest id in the table, 0 for none */
    const char *what;         /* "livy session", for messages */
    size_t      size;         /* of a row struct */
    void      (*row)(sqlite3_stmt *s, void *out);
    void      (*clear)(void *row);
};

static void session_row_v(sqlite3_stmt *s, void *out) { session_row(s, out); }
static void store_livy_session_clear_v(void *v) { store_livy_session_clear(v); }
static void batch_row_v(sqlite3_stmt *s, void *out) { batch_row(s, out); }
static void store_livy_batch_clear_v(void *v) { store_livy_batch_clear(v); }

#define LKIND_FROM(cols, table, a) \
    "SELECT " cols " FROM " table " " a " JOIN users u ON u.id = " a ".user_id "
static const struct lkind lsessions = {
    LKIND_FROM(SESSION_COLS, "livy_sessions", "s") "WHERE s.id = ?1",
    LKIND_FROM(SESSION_COLS, "livy_sessions", "s")
        "WHERE (?1 = 0 OR s.user_id = ?1) AND (?2 = 0 OR s.ended_at IS NULL) ORDER BY s.id",
    "SELECT coalesce(max(id), 0) FROM livy_sessions",
    "livy session", sizeof(store_livy_session_t), session_row_v, store_livy_session_clear_v,
};
static const struct lkind lbatches = {
    LKIND_FROM(BATCH_COLS, "livy_batches", "b") "WHERE b.id = ?1",
    LKIND_FROM(BATCH_COLS, "livy_batches", "b")
        "WHERE (?1 = 0 OR b.user_id = ?1) AND (?2 = 0 OR b.ended_at IS NULL) ORDER BY b.id",
    "SELECT coalesce(max(id), 0) FROM livy_batches",
    "livy batch", sizeof(store_livy_batch_t), batch_row_v, store_livy_batch_clear_v,
};

/* n rows of size bytes at v, each cleared, and v freed. */
static void rows_free(void *v, size_t n, size_t size, void (*clear)(void *))
{
    for (size_t i = 0; i < n; i++) clear((char *)v + i * size);
    free(v);
}

static const struct lkind *lkind_of(enum store_livy_kind k)
{
    return k == STORE_LIVY_BATCH ? &lbatches : &lsessions;
}

/* Livy's word for a missing session and a missing batch alike. */
static int lrow_get(store_t *st, const struct lkind *k, int64_t id, void *out, nb_err_t *err)
{
    memset(out, 0, k->size);
    sqlite3_stmt *s;
    int rc = store_stmt(st, k->get_sql, &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) k->row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "Session '%lld' not found.", (long long)id);
    return store_sqlerr(st, rc, k->what, err);
}

/* *v: n rows of k->size bytes (NULL for none). */
static int lrows_list(store_t *st, const struct lkind *k, int64_t user_id, int live_only, void **v, size_t *n,
                      nb_err_t *err)
{
    *v = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, k->list_sql, &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int(s, 2, live_only);
    char *rows = NULL;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            rows = xrealloc(rows, cap * k->size);
        }
        memset(rows + *n * k->size, 0, k->size);
        k->row(s, rows + (*n)++ * k->size);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        rows_free(rows, *n, k->size, k->clear);
        *n = 0;
        return store_sqlerr(st, rc, k->what, err);
    }
    *v = rows;
    return 0;
}

static int lrow_max_id(store_t *st, const struct lkind *k, int64_t *out, nb_err_t *err)
{
    *out = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, k->max_sql, &s, err);
    if (rc) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, k->what, err);
}

/* The id of a new row, inside the creating transaction: above every id
 * handed out before (the caller's high-water mark, `above`) and every
 * row's.  SQLite's own choice, max(rowid)+1, gives a deleted row's id to
 * the next one: an event about the old kernel would name the new session,
 * a client polling an old batch would see a new one, and the new row would
 * find the old one's files. */
static int lrow_next_id(store_t *st, const struct lkind *k, int64_t above, int64_t *id, nb_err_t *err)
{
    int64_t max;
    int rc = lrow_max_id(st, k, &max, err);
    if (rc) return rc;
    *id = (above > max ? above : max) + 1;
    return 0;
}

int store_livy_max_id(store_t *st, enum store_livy_kind kind, int64_t *out, nb_err_t *err)
{
    return lrow_max_id(st, lkind_of(kind), out, err);
}

int store_livy_session_get(store_t *st, int64_t id, store_livy_session_t *out, nb_err_t *err)
{
    return lrow_get(st, &lsessions, id, out, err);
}

int store_livy_sessions_list(store_t *st, int64_t user_id, int live_only,
                             store_livy_sessions_t *out, nb_err_t *err)
{
    void *v;
    int rc = lrows_list(st, &lsessions, user_id, live_only, &v, &out->n, err);
    out->v = v;
    return rc;
}

int store_livy_batch_get(store_t *st, int64_t id, store_livy_batch_t *out, nb_err_t *err)
{
    return lrow_get(st, &lbatches, id, out, err);
}

int store_livy_batches_list(store_t *st, int64_t user_id, int live_only,
                            store_livy_batches_t *out, nb_err_t *err)
{
    void *v;
    int rc = lrows_list(st, &lbatches, user_id, live_only, &v, &out->n, err);
    out->v = v;
    return rc;
}


/* ---- sessions --------------------------------------------------------------- */

struct screate {
    int64_t user_id, hb, now, id, above;
    const char *proxy_user, *name, *kind, *req;
};

static int session_create_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct screate *a = varg;
    sqlite3_stmt *s;
    int rc;
    if (a->name) {
        rc = store_stmt(st, "SELECT id FROM livy_sessions WHERE name = ?1 AND ended_at IS NULL", &s, err);
        if (rc) return rc;
        store_bind_text(s, 1, a->name);
        rc = sqlite3_step(s);
        int64_t other = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sqlerr(st, rc, "read livy session", err);
        if (other)
            return err_set(err, -EEXIST, "Duplicate session name: %s for session %lld", a->name,
                           (long long)other);
    }
    if ((rc = lrow_next_id(st, &lsessions, a->above, &a->id, err))) return rc;
    rc = store_stmt(st, "INSERT INTO livy_sessions(id, user_id, proxy_user, name, kind, request_json, "
                        "heartbeat_timeout, last_heartbeat, created_at) "
                        "VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->user_id);
    store_bind_text(s, 2, a->proxy_user);
    store_bind_text(s, 3, a->name);
    store_bind_text(s, 4, a->kind);
    store_bind_text(s, 5, a->req ? a->req : "{}");
    sqlite3_bind_int64(s, 6, a->hb);
    sqlite3_bind_int64(s, 7, a->now);
    sqlite3_bind_int64(s, 8, a->id);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return err_set(err, -ENOENT, "no user with id %lld", (long long)a->user_id);
    if (rc != SQLITE_DONE) return store_sqlerr(st, rc, "create livy session", err);
    return 0;
}

int store_livy_session_create_above(store_t *st, int64_t above, int64_t user_id, const char *proxy_user,
                                    const char *name, const char *kind, const char *request_json,
                                    int64_t heartbeat_timeout, int64_t now, int64_t *id, nb_err_t *err)
{
    struct screate a = { user_id, heartbeat_timeout, now, 0, above, proxy_user, name, kind, request_json };
    int rc = store_tx(st, session_create_tx, &a, err);
    if (rc == 0 && id) *id = a.id;
    return rc;
}

int store_livy_session_create(store_t *st, int64_t user_id, const char *proxy_user,
                              const char *name, const char *kind, const char *request_json,
                              int64_t heartbeat_timeout, int64_t now, int64_t *id, nb_err_t *err)
{
    return store_livy_session_create_above(st, 0, user_id, proxy_user, name, kind, request_json,
                                           heartbeat_timeout, now, id, err);
}

int store_livy_session_spawned(store_t *st, int64_t id, const char *kernel_conn, int pid,
                               int64_t pid_start_time, const char *log_path,
                               const char *spark_cluster, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_sessions SET kernel_conn = ?2, pid = ?3, pid_start_time = ?4, "
                            "log_path = coalesce(?5, log_path), spark_cluster = ?6 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, kernel_conn);
    if (pid > 0) sqlite3_bind_int(s, 3, pid);
    store_bind_time(s, 4, pid_start_time);
    store_bind_text(s, 5, log_path);
    store_bind_text(s, 6, spark_cluster);
    if ((rc = store_step_done(st, s, "record livy kernel", err))) return rc;
    return changed_one(st, "record livy kernel", id, err);
}

int store_livy_session_set_state(store_t *st, int64_t id, const char *state, const char *error,
                                 int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_sessions SET state = ?2, error = ?3, "
                            "ended_at = CASE WHEN ?4 AND ended_at IS NULL THEN ?5 ELSE ended_at END "
                            "WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, state);
    store_bind_text(s, 3, error);
    sqlite3_bind_int(s, 4, store_livy_state_final(state));
    sqlite3_bind_int64(s, 5, now);
    if ((rc = store_step_done(st, s, "set livy session state", err))) return rc;
    return changed_one(st, "set livy session state", id, err);
}

int store_livy_session_set_app(store_t *st, int64_t id, const char *app_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_sessions SET app_id = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, app_id);
    return store_step_done(st, s, "set livy session app", err);
}

int store_livy_session_heartbeat(store_t *st, int64_t id, int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_sessions SET last_heartbeat = max(coalesce(last_heartbeat, 0), ?2) "
                            "WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now);
    return store_step_done(st, s, "livy session heartbeat", err);
}

int store_livy_session_delete(store_t *st, int64_t id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM livy_sessions WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = store_step_done(st, s, "delete livy session", err))) return rc;
    return changed_one(st, "delete livy session", id, err);
}

int store_livy_sessions_prune(store_t *st, int64_t before, int64_t *n, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM livy_sessions WHERE ended_at IS NOT NULL AND ended_at < ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, before);
    if ((rc = store_step_done(st, s, "prune livy sessions", err))) return rc;
    if (n) *n = sqlite3_changes(store_db(st));
    return 0;
}

/* ---- statements ------------------------------------------------------------- */

#define STMT_COLS "session_id, id, kind, code, state, msg_id, output_json, progress, started_at, completed_at"

static void stmt_row(sqlite3_stmt *s, store_livy_stmt_t *v)
{
    v->session_id = sqlite3_column_int64(s, 0);
    v->id = sqlite3_column_int64(s, 1);
    v->kind = store_col_str(s, 2);
    v->code = store_col_str(s, 3);
    v->state = store_col_str(s, 4);
    v->msg_id = store_col_str(s, 5);
    v->output_json = store_col_str(s, 6);
    v->progress = sqlite3_column_double(s, 7);
    v->started_at = sqlite3_column_int64(s, 8);
    v->completed_at = sqlite3_column_int64(s, 9);
}

static void store_livy_stmt_clear_v(void *v) { store_livy_stmt_clear(v); }

struct sadd {
    int64_t session_id, id;
    const char *kind, *code;
};

static int stmt_add_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct sadd *a = varg;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT coalesce(max(id) + 1, 0) FROM livy_statements WHERE session_id = ?1",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->session_id);
    rc = sqlite3_step(s);
    a->id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "next livy statement id", err);
    rc = store_stmt(st, "INSERT INTO livy_statements(session_id, id, kind, code) VALUES (?1, ?2, ?3, ?4)",
                    &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->session_id);
    sqlite3_bind_int64(s, 2, a->id);
    store_bind_text(s, 3, a->kind);
    store_bind_text(s, 4, a->code);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return err_set(err, -ENOENT, "Session '%lld' not found.", (long long)a->session_id);
    if (rc != SQLITE_DONE) return store_sqlerr(st, rc, "add livy statement", err);
    return 0;
}

int store_livy_stmt_add(store_t *st, int64_t session_id, const char *kind, const char *code,
                        int64_t *id, nb_err_t *err)
{
    struct sadd a = { session_id, 0, kind, code };
    int rc = store_tx(st, stmt_add_tx, &a, err);
    if (rc == 0 && id) *id = a.id;
    return rc;
}

int store_livy_stmt_get(store_t *st, int64_t session_id, int64_t id, store_livy_stmt_t *out,
                        nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " STMT_COLS " FROM livy_statements WHERE session_id = ?1 AND id = ?2",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) stmt_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "Statement not found");
    return store_sqlerr(st, rc, "read livy statement", err);
}

int store_livy_stmts_list(store_t *st, int64_t session_id, store_livy_stmts_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " STMT_COLS " FROM livy_statements WHERE session_id = ?1 ORDER BY id",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        GROW(out, cap);
        stmt_row(s, &out->v[out->n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_livy_stmts_free(out);
        return store_sqlerr(st, rc, "list livy statements", err);
    }
    return 0;
}

static int stmt_stale(store_t *st, int64_t sid, int64_t id, const char *what, nb_err_t *err)
{
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ESTALE, "%s: statement %lld of session %lld is not in that state", what,
                       (long long)id, (long long)sid);
    return 0;
}

int store_livy_stmt_start(store_t *st, int64_t session_id, int64_t id, const char *msg_id,
                          int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_statements SET state = 'running', msg_id = ?3, started_at = ?4 "
                            "WHERE session_id = ?1 AND id = ?2 AND state = 'waiting'", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    store_bind_text(s, 3, msg_id);
    sqlite3_bind_int64(s, 4, now);
    if ((rc = store_step_done(st, s, "start livy statement", err))) return rc;
    return stmt_stale(st, session_id, id, "start", err);
}

int store_livy_stmt_cancelling(store_t *st, int64_t session_id, int64_t id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_statements SET state = 'cancelling' "
                            "WHERE session_id = ?1 AND id = ?2 AND state IN ('waiting', 'running')", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    if ((rc = store_step_done(st, s, "cancel livy statement", err))) return rc;
    return stmt_stale(st, session_id, id, "cancel", err);
}

int store_livy_stmt_finish(store_t *st, int64_t session_id, int64_t id, const char *state,
                           const char *output_json, int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_statements SET state = ?3, output_json = ?4, completed_at = ?5, "
                            "started_at = coalesce(started_at, ?5), "
                            "progress = CASE WHEN ?3 = 'cancelled' THEN progress ELSE 1 END "
                            "WHERE session_id = ?1 AND id = ?2 "
                            "AND state IN ('waiting', 'running', 'cancelling')", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    store_bind_text(s, 3, state);
    store_bind_text(s, 4, output_json);
    sqlite3_bind_int64(s, 5, now);
    if ((rc = store_step_done(st, s, "finish livy statement", err))) return rc;
    return stmt_stale(st, session_id, id, "finish", err);
}

int store_livy_stmt_progress(store_t *st, int64_t session_id, int64_t id, double progress,
                             nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_statements SET progress = ?3 WHERE session_id = ?1 AND id = ?2",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    sqlite3_bind_int64(s, 2, id);
    sqlite3_bind_double(s, 3, progress);
    return store_step_done(st, s, "livy statement progress", err);
}

/* ---- batches ---------------------------------------------------------------- */

struct bcreate {
    int64_t user_id, now, id, above;
    const char *proxy_user, *name, *req;
};

static int batch_create_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct bcreate *a = varg;
    sqlite3_stmt *s;
    int rc = lrow_next_id(st, &lbatches, a->above, &a->id, err);
    if (rc) return rc;
    rc = store_stmt(st, "INSERT INTO livy_batches(id, user_id, proxy_user, name, request_json, created_at) "
                        "VALUES (?6, ?1, ?2, ?3, ?4, ?5)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->user_id);
    store_bind_text(s, 2, a->proxy_user);
    store_bind_text(s, 3, a->name);
    store_bind_text(s, 4, a->req ? a->req : "{}");
    sqlite3_bind_int64(s, 5, a->now);
    sqlite3_bind_int64(s, 6, a->id);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return err_set(err, -ENOENT, "no user with id %lld", (long long)a->user_id);
    if (rc != SQLITE_DONE) return store_sqlerr(st, rc, "create livy batch", err);
    return 0;
}

int store_livy_batch_create(store_t *st, int64_t above, int64_t user_id, const char *proxy_user,
                            const char *name, const char *request_json, int64_t now, int64_t *id,
                            nb_err_t *err)
{
    struct bcreate a = { user_id, now, 0, above, proxy_user, name, request_json };
    int rc = store_tx(st, batch_create_tx, &a, err);
    if (rc == 0 && id) *id = a.id;
    return rc;
}

int store_livy_batch_spawned(store_t *st, int64_t id, int pid, int64_t pid_start_time,
                             const char *log_path, const char *spark_cluster, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_batches SET pid = ?2, pid_start_time = ?3, "
                            "log_path = coalesce(?4, log_path), spark_cluster = ?5 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    if (pid > 0) sqlite3_bind_int(s, 2, pid);
    store_bind_time(s, 3, pid_start_time);
    store_bind_text(s, 4, log_path);
    store_bind_text(s, 5, spark_cluster);
    if ((rc = store_step_done(st, s, "record livy batch process", err))) return rc;
    return changed_one(st, "record livy batch process", id, err);
}

int store_livy_batch_set_state(store_t *st, int64_t id, const char *state, int exit_code,
                               const char *error, int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_batches SET state = ?2, error = ?3, "
                            "exit_code = coalesce(?6, exit_code), "
                            "ended_at = CASE WHEN ?4 AND ended_at IS NULL THEN ?5 ELSE ended_at END "
                            "WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, state);
    store_bind_text(s, 3, error);
    sqlite3_bind_int(s, 4, store_livy_state_final(state));
    sqlite3_bind_int64(s, 5, now);
    if (exit_code >= 0) sqlite3_bind_int(s, 6, exit_code);
    if ((rc = store_step_done(st, s, "set livy batch state", err))) return rc;
    return changed_one(st, "set livy batch state", id, err);
}

int store_livy_batch_set_app(store_t *st, int64_t id, const char *app_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE livy_batches SET app_id = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, app_id);
    return store_step_done(st, s, "set livy batch app", err);
}

int store_livy_batch_delete(store_t *st, int64_t id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM livy_batches WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = store_step_done(st, s, "delete livy batch", err))) return rc;
    return changed_one(st, "delete livy batch", id, err);
}

/* ---- freeing ---------------------------------------------------------------- */

void store_livy_session_clear(store_livy_session_t *v)
{
    if (!v) return;
    free(v->owner);
    free(v->proxy_user);
    free(v->name);
    free(v->kind);
    free(v->state);
    free(v->request_json);
    free(v->kernel_conn);
    free(v->spark_cluster);
    free(v->app_id);
    free(v->log_path);
    free(v->error);
    memset(v, 0, sizeof *v);
}

void store_livy_sessions_free(store_livy_sessions_t *l)
{
    rows_free(l->v, l->n, sizeof *l->v, store_livy_session_clear_v);
    l->v = NULL;
    l->n = 0;
}

void store_livy_stmt_clear(store_livy_stmt_t *v)
{
    if (!v) return;
    free(v->kind);
    free(v->code);
    free(v->state);
    free(v->msg_id);
    free(v->output_json);
    memset(v, 0, sizeof *v);
}

void store_livy_stmts_free(store_livy_stmts_t *l)
{
    rows_free(l->v, l->n, sizeof *l->v, store_livy_stmt_clear_v);
    l->v = NULL;
    l->n = 0;
}

void store_livy_batch_clear(store_livy_batch_t *v)
{
    if (!v) return;
    free(v->owner);
    free(v->proxy_user);
    free(v->name);
    free(v->state);
    free(v->request_json);
    free(v->spark_cluster);
    free(v->app_id);
    free(v->log_path);
    free(v->error);
    memset(v, 0, sizeof *v);
}

void store_livy_batches_free(store_livy_batches_t *l)
{
    rows_free(l->v, l->n, sizeof *l->v, store_livy_batch_clear_v);
    l->v = NULL;
    l->n = 0;
}
