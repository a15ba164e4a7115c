/*
 * store_hub.c — servers rows and group names (store_hub.h).  Every write is
 * one statement or one transaction; the hub holds the rows in memory and
 * writes each change through before it is shown.
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_hub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define SERVER_COLS "s.id, s.user_id, u.name, s.name, s.profile, s.backend, s.state, " \
                    "s.user_options, s.host, s.port, s.pid, s.pid_start_time, s.backend_state, " \
                    "s.upstream_token, s.spark_cluster, s.error, s.created_at, s.started_at, " \
                    "s.ready_at, s.stopped_at, s.last_activity, s.stop_reason"

static void server_row(sqlite3_stmt *s, store_server_t *v)
{
    v->id = sqlite3_column_int64(s, 0);
    v->user_id = sqlite3_column_int64(s, 1);
    v->user_name = store_col_str(s, 2);
    v->name = store_col_str(s, 3);
    v->profile = store_col_str(s, 4);
    v->backend = store_col_str(s, 5);
    v->state = store_col_str(s, 6);
    v->user_options = store_col_str(s, 7);
    v->host = store_col_str(s, 8);
    v->port = sqlite3_column_int(s, 9);
    v->pid = sqlite3_column_int(s, 10);
    v->pid_start_time = sqlite3_column_int64(s, 11);
    v->backend_state = store_col_str(s, 12);
    v->upstream_token = store_col_str(s, 13);
    v->spark_cluster = store_col_str(s, 14);
    v->error = store_col_str(s, 15);
    v->created_at = sqlite3_column_int64(s, 16);
    v->started_at = sqlite3_column_int64(s, 17);
    v->ready_at = sqlite3_column_int64(s, 18);
    v->stopped_at = sqlite3_column_int64(s, 19);
    v->last_activity = sqlite3_column_int64(s, 20);
    v->stop_reason = store_col_str(s, 21);
}

int store_servers_list(store_t *st, store_servers_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " SERVER_COLS " FROM servers s JOIN users u ON u.id = s.user_id "
                            "ORDER BY s.id", &s, err);
    if (rc) return rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        store_server_t *v = &out->v[out->n++];
        memset(v, 0, sizeof *v);
        server_row(s, v);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_servers_free(out);
        return store_sqlerr(st, rc, "list servers", err);
    }
    return 0;
}

int store_server_get(store_t *st, int64_t id, store_server_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " SERVER_COLS " FROM servers s JOIN users u ON u.id = s.user_id "
                            "WHERE s.id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) server_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no server with id %lld", (long long)id);
    return store_sqlerr(st, rc, "read server", err);
}

struct begin_arg {
    int64_t user_id, now, id;
    const char *name, *profile, *backend, *options;
};

static int begin_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct begin_arg *a = varg;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, state FROM servers WHERE user_id = ?1 AND name = ?2", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->user_id);
    store_bind_text(s, 2, a->name);
    rc = sqlite3_step(s);
    int exists = rc == SQLITE_ROW;
    char state[16] = "";
    if (exists) {
        a->id = sqlite3_column_int64(s, 0);
        snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sqlerr(st, rc, "read server", err);
    if (exists && strcmp(state, "stopped") != 0 && strcmp(state, "failed") != 0)
        return err_set(err, -ESTALE, "the server is %s", state);
    if (!exists) {
        rc = store_stmt(st, "INSERT INTO servers(user_id, name, profile, backend, state, user_options, "
                            "created_at, started_at) VALUES (?1, ?2, ?3, ?4, 'starting', ?5, ?6, ?6)",
                        &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, a->user_id);
        store_bind_text(s, 2, a->name);
    } else {
        rc = store_stmt(st, "UPDATE servers SET profile = ?3, backend = ?4, state = 'starting', "
                            "user_options = ?5, started_at = ?6, host = NULL, port = NULL, pid = NULL, "
                            "pid_start_time = NULL, backend_state = NULL, upstream_token = NULL, "
                            "error = NULL, stop_reason = NULL, ready_at = NULL, stopped_at = NULL "
                            "WHERE id = ?1 AND ?2 IS ?2",
                        &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 1, a->id);
        store_bind_text(s, 2, a->name);
    }
    store_bind_text(s, 3, a->profile);
    store_bind_text(s, 4, a->backend ? a->backend : "local");
    store_bind_text(s, 5, a->options);
    sqlite3_bind_int64(s, 6, a->now);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT) return err_set(err, -ENOENT, "no user with id %lld", (long long)a->user_id);
    if (rc != SQLITE_DONE) return store_sqlerr(st, rc, "start server", err);
    if (!exists) a->id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

int store_server_begin(store_t *st, int64_t user_id, const char *name, const char *profile,
                       const char *backend, const char *user_options, int64_t now, int64_t *id,
                       nb_err_t *err)
{
    struct begin_arg a = { user_id, now, 0, name ? name : "", profile, backend, user_options };
    int rc = store_tx(st, begin_tx, &a, err);
    if (rc == 0 && id) *id = a.id;
    return rc;
}

static int changed_one(store_t *st, int64_t id, const char *what, nb_err_t *err)
{
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ENOENT, "%s: no server with id %lld", what, (long long)id);
    return 0;
}

int store_server_spawned(store_t *st, int64_t id, const char *host, int port, int pid,
                         int64_t pid_start_time, const char *backend_state,
                         const char *upstream_token, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE servers SET host = ?2, port = ?3, pid = ?4, pid_start_time = ?5, "
                            "backend_state = ?6, upstream_token = ?7 WHERE id = ?1 AND state = 'starting'",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, host);
    if (port > 0) sqlite3_bind_int(s, 3, port);
    if (pid > 0) sqlite3_bind_int(s, 4, pid);
    store_bind_time(s, 5, pid_start_time);
    store_bind_text(s, 6, backend_state);
    store_bind_text(s, 7, upstream_token);
    if ((rc = store_step_done(st, s, "record server process", err))) return rc;
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ESTALE, "server %lld is no longer starting", (long long)id);
    return 0;
}

int store_server_set_state(store_t *st, int64_t id, const char *state, const char *error,
                           const char *stop_reason, int64_t now, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE servers SET state = ?2, "
                            "ready_at = CASE WHEN ?2 = 'running' THEN ?3 ELSE ready_at END, "
                            "stopped_at = CASE WHEN ?2 IN ('stopped', 'failed') THEN ?3 ELSE stopped_at END, "
                            "error = CASE WHEN ?2 = 'failed' THEN ?4 WHEN ?2 = 'stopped' THEN NULL ELSE error END, "
                            "stop_reason = ?5 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, state);
    sqlite3_bind_int64(s, 3, now);
    store_bind_text(s, 4, error);
    store_bind_text(s, 5, stop_reason);
    if ((rc = store_step_done(st, s, "set server state", err))) return rc;
    return changed_one(st, id, "set server state", err);
}

int store_server_activity(store_t *st, int64_t id, int64_t ts, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE servers SET last_activity = max(coalesce(last_activity, 0), ?2) "
                            "WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, ts);
    return store_step_done(st, s, "server activity", err);
}

int store_server_set_spark(store_t *st, int64_t id, const char *cluster, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE servers SET spark_cluster = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, cluster);
    return store_step_done(st, s, "server spark cluster", err);
}

int store_server_delete(store_t *st, int64_t id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM servers WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = store_step_done(st, s, "delete server", err))) return rc;
    return changed_one(st, id, "delete server", err);
}

void store_server_clear(store_server_t *v)
{
    if (!v) return;
    free(v->user_name);
    free(v->name);
    free(v->profile);
    free(v->backend);
    free(v->state);
    free(v->user_options);
    free(v->host);
    free(v->backend_state);
    free(v->upstream_token);
    free(v->spark_cluster);
    free(v->error);
    free(v->stop_reason);
    memset(v, 0, sizeof *v);
}

void store_servers_free(store_servers_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_server_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
