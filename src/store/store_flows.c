/*
 * store_flows.c — flow rows: upsert with versioning, pause, soft delete,
 * reads.  Each write is one transaction that validates the current row and
 * appends its event (see store.h for the rules).
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_flows.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define FLOW_COLS "name, owner_id, spec_json, source_path, source_hash, version, paused, " \
                  "created_at, updated_at, deleted_at, id, incarnation"

static void flow_row(sqlite3_stmt *s, store_flow_t *f)
{
    f->name = store_col_str(s, 0);
    f->owner_id = sqlite3_column_int64(s, 1);
    f->spec_json = store_col_str(s, 2);
    f->source_path = store_col_str(s, 3);
    f->source_hash = store_col_str(s, 4);
    f->version = sqlite3_column_int64(s, 5);
    f->paused = sqlite3_column_int(s, 6);
    f->created_at = sqlite3_column_int64(s, 7);
    f->updated_at = sqlite3_column_int64(s, 8);
    f->deleted_at = sqlite3_column_int64(s, 9);
    f->id = sqlite3_column_int64(s, 10);
    f->incarnation = sqlite3_column_int64(s, 11);
}

/* ---- upsert -------------------------------------------------------------- */

struct upsert_arg {
    const store_flow_in_t *in;
    int64_t now, version;
    int changed;
};

static int upsert_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct upsert_arg *a = varg;
    const store_flow_in_t *in = a->in;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, version, spec_json = ?2 "
                            "FROM flows WHERE name = ?1 AND deleted_at IS NULL", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, in->name);
    store_bind_text(s, 2, in->spec_json);
    rc = sqlite3_step(s);
    int exists = rc == SQLITE_ROW;
    int64_t id = exists ? sqlite3_column_int64(s, 0) : 0;
    int64_t ver = exists ? sqlite3_column_int64(s, 1) : 0;
    int same = exists && sqlite3_column_int(s, 2);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sqlerr(st, rc, "read flow", err);

    if (!exists) {
        /* A new incarnation: never the deleted row of the same name, whose
         * runs and owner stay with it. */
        rc = store_stmt(st, "INSERT INTO flows(name, incarnation, owner_id, spec_json, "
                            "source_path, source_hash, version, paused, created_at, updated_at) "
                            "VALUES (?1, 1 + coalesce((SELECT max(incarnation) FROM flows "
                            "WHERE name = ?1), 0), ?2, ?3, ?4, ?5, 1, 0, ?6, ?6)", &s, err);
        if (rc) return rc;
        a->version = 1;
    } else {
        a->version = same ? ver : ver + 1;
        rc = store_stmt(st, "UPDATE flows SET owner_id = coalesce(?2, owner_id), "
                            "spec_json = ?3, source_path = ?4, source_hash = ?5, "
                            "version = ?7, updated_at = ?6 WHERE id = ?1", &s, err);
        if (rc) return rc;
        sqlite3_bind_int64(s, 7, a->version);
    }
    if (exists) sqlite3_bind_int64(s, 1, id);
    else store_bind_text(s, 1, in->name);
    store_bind_time(s, 2, in->owner_id);
    store_bind_text(s, 3, in->spec_json);
    store_bind_text(s, 4, in->source_path);
    store_bind_text(s, 5, in->source_hash);
    sqlite3_bind_int64(s, 6, a->now);
    if ((rc = store_step_done(st, s, "write flow", err))) return rc;

    a->changed = !exists || a->version != ver;
    if (!a->changed) return 0;
    return store_event_add(st, a->now, "flow.upsert", in->name, 0, NULL,
                           json_pack("{sIsb}", "version", (json_int_t)a->version,
                                     "created", !exists), err);
}

int store_flow_upsert(store_t *st, const store_flow_in_t *in, int64_t now, int64_t *version,
                      int *changed, nb_err_t *err)
{
    if (!in->name || !*in->name || !in->spec_json)
        return err_set(err, -EINVAL, "flow upsert: name and spec are required");
    struct upsert_arg a = { in, now, 0, 0 };
    int rc = store_tx(st, upsert_tx, &a, err);
    if (rc) return rc;
    if (version) *version = a.version;
    if (changed) *changed = a.changed;
    return 0;
}

/* ---- pause / delete -------------------------------------------------------- */

/* Reads the live flow's id and paused flag under the write lock; -ENOENT
 * unless live. */
static int flow_live(store_t *st, const char *name, int64_t *id, int *paused, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, paused FROM flows WHERE name = ?1 AND deleted_at IS NULL",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        *paused = sqlite3_column_int(s, 1);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no flow named '%s'", name);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "read flow", err);
    return 0;
}

struct pause_arg {
    const char *name;
    int paused;
    int64_t now;
};

static int pause_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct pause_arg *a = varg;
    int cur, rc;
    int64_t id;
    if ((rc = flow_live(st, a->name, &id, &cur, err))) return rc;
    if (cur == a->paused)
        return err_set(err, -ESTALE, "flow '%s' is already %s", a->name,
                       cur ? "paused" : "unpaused");
    sqlite3_stmt *s;
    if ((rc = store_stmt(st, "UPDATE flows SET paused = ?2, updated_at = ?3 WHERE id = ?1",
                         &s, err)))
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, a->paused);
    sqlite3_bind_int64(s, 3, a->now);
    if ((rc = store_step_done(st, s, "pause flow", err))) return rc;
    return store_event_add(st, a->now, a->paused ? "flow.paused" : "flow.unpaused", a->name, 0,
                           NULL, NULL, err);
}

int store_flow_set_paused(store_t *st, const char *name, int paused, int64_t now,
                          nb_err_t *err)
{
    struct pause_arg a = { name, paused ? 1 : 0, now };
    return store_tx(st, pause_tx, &a, err);
}

static int delete_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct pause_arg *a = varg;
    int cur, rc;
    int64_t id;
    if ((rc = flow_live(st, a->name, &id, &cur, err))) return rc;
    sqlite3_stmt *s;
    if ((rc = store_stmt(st, "SELECT count(*) FROM runs WHERE flow_id = ?1 "
                             "AND state IN ('queued', 'running')", &s, err)))
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    int64_t active = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "count runs", err);
    if (active)
        return err_set(err, -EBUSY, "flow '%s' has %lld active run(s): cancel them first",
                       a->name, (long long)active);
    if ((rc = store_stmt(st, "UPDATE flows SET deleted_at = ?2, updated_at = ?2 "
                             "WHERE id = ?1", &s, err)))
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, a->now);
    if ((rc = store_step_done(st, s, "delete flow", err))) return rc;
    return store_event_add(st, a->now, "flow.deleted", a->name, 0, NULL, NULL, err);
}

int store_flow_delete(store_t *st, const char *name, int64_t now, nb_err_t *err)
{
    struct pause_arg a = { name, 0, now };
    return store_tx(st, delete_tx, &a, err);
}

/* ---- reads ----------------------------------------------------------------- */

int store_flow_get(store_t *st, const char *name, int include_deleted, store_flow_t *out,
                   nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    /* The live row has the highest id of its name (rows are never removed
     * and a new incarnation is only made when none is live). */
    int rc = store_stmt(st, "SELECT " FLOW_COLS " FROM flows WHERE name = ?1 "
                            "AND (?2 OR deleted_at IS NULL) ORDER BY id DESC LIMIT 1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    sqlite3_bind_int(s, 2, include_deleted ? 1 : 0);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) flow_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no flow named '%s'", name);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read flow", err);
}

int store_flow_get_id(store_t *st, int64_t id, store_flow_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " FLOW_COLS " FROM flows WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) flow_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no flow with id %lld", (long long)id);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read flow", err);
}

int store_flows_list(store_t *st, int include_deleted, int64_t owner_id, store_flows_t *out,
                     nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " FLOW_COLS " FROM flows "
                            "WHERE (?1 OR deleted_at IS NULL) AND (?2 = 0 OR owner_id = ?2) "
                            "ORDER BY name, id", &s, err);
    if (rc) return rc;
    sqlite3_bind_int(s, 1, include_deleted ? 1 : 0);
    sqlite3_bind_int64(s, 2, owner_id);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        flow_row(s, &out->v[out->n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_flows_free(out);
        return store_sqlerr(st, rc, "list flows", err);
    }
    return 0;
}

void store_flow_clear(store_flow_t *f)
{
    free(f->name);
    free(f->spec_json);
    free(f->source_path);
    free(f->source_hash);
    memset(f, 0, sizeof *f);
}

void store_flows_free(store_flows_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_flow_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
