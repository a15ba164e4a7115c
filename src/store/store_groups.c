/*
 * store_groups.c — groups and their members (see store_groups.h).  Every
 * write is one statement, atomic on its own.
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_groups.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

int store_group_add(store_t *st, const char *name, const char *properties, int64_t now,
                    int64_t *id, nb_err_t *err)
{
    if (!name || !*name) return err_set(err, -EINVAL, "group name is required");
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT INTO groups(name, properties, created_at) VALUES (?1, ?2, ?3)",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    store_bind_text(s, 2, properties);
    sqlite3_bind_int64(s, 3, now);
    if ((rc = store_step_done(st, s, "add group", err))) {
        if (rc == -EEXIST) err_set(err, rc, "Group %s already exists", name);
        return rc;
    }
    if (id) *id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

static void group_row(sqlite3_stmt *s, store_group_t *g)
{
    g->id = sqlite3_column_int64(s, 0);
    g->name = store_col_str(s, 1);
    g->properties = store_col_str(s, 2);
    g->created_at = sqlite3_column_int64(s, 3);
}

int store_group_get(store_t *st, const char *name, store_group_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, name, properties, created_at FROM groups WHERE name = ?1",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) group_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "No such group: %s", name);
    return store_sqlerr(st, rc, "read group", err);
}

int store_group_delete(store_t *st, const char *name, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM groups WHERE name = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    if ((rc = store_step_done(st, s, "delete group", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "No such group: %s", name);
}

int store_group_set_properties(store_t *st, int64_t id, const char *properties, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE groups SET properties = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    store_bind_text(s, 2, properties);
    if ((rc = store_step_done(st, s, "update group", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "no such group");
}

int store_groups_list(store_t *st, int64_t offset, int64_t limit, store_groups_t *out,
                      int64_t *total, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc;
    if (total) {
        if ((rc = store_stmt(st, "SELECT count(*) FROM groups", &s, err))) return rc;
        rc = sqlite3_step(s);
        *total = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "count groups", err);
    }
    if ((rc = store_stmt(st, "SELECT id, name, properties, created_at FROM groups ORDER BY id "
                             "LIMIT ?2 OFFSET ?1", &s, err))) return rc;
    sqlite3_bind_int64(s, 1, offset);
    sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        group_row(s, &out->v[out->n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_groups_free(out);
        return store_sqlerr(st, rc, "list groups", err);
    }
    return 0;
}

int store_group_member_add(store_t *st, int64_t group_id, int64_t user_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT OR IGNORE INTO group_members(group_id, user_id) VALUES (?1, ?2)",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, group_id);
    sqlite3_bind_int64(s, 2, user_id);
    if ((rc = store_step_done(st, s, "add group member", err))) {
        if (sqlite3_extended_errcode(store_db(st)) == SQLITE_CONSTRAINT_FOREIGNKEY)
            return err_set(err, -ENOENT, "no such group or user");
        return rc;
    }
    return 0;
}

int store_group_member_remove(store_t *st, int64_t group_id, int64_t user_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, group_id);
    sqlite3_bind_int64(s, 2, user_id);
    return store_step_done(st, s, "remove group member", err);
}

static int names_query(store_t *st, sqlite3_stmt *s, const char *what, store_names_t *out,
                       nb_err_t *err)
{
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        out->v[out->n++] = store_col_str(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_names_free(out);
        return store_sqlerr(st, rc, what, err);
    }
    return 0;
}

int store_group_members(store_t *st, int64_t group_id, store_names_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT u.name FROM group_members m JOIN users u ON u.id = m.user_id "
                            "WHERE m.group_id = ?1 ORDER BY u.name", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, group_id);
    return names_query(st, s, "list group members", out, err);
}

int store_user_groups(store_t *st, int64_t user_id, store_names_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id "
                            "WHERE m.user_id = ?1 ORDER BY g.name", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, user_id);
    return names_query(st, s, "list user groups", out, err);
}

int store_user_in_group(store_t *st, const char *user, const char *group, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT 1 FROM group_members m JOIN users u ON u.id = m.user_id "
                            "JOIN groups g ON g.id = m.group_id WHERE u.name = ?1 AND g.name = ?2",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, user);
    store_bind_text(s, 2, group);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return store_sqlerr(st, rc, "read group member", err);
}

void store_group_clear(store_group_t *g)
{
    free(g->name);
    free(g->properties);
    memset(g, 0, sizeof *g);
}

void store_groups_free(store_groups_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_group_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void store_names_free(store_names_t *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

struct set_groups_arg {
    int64_t            user_id;
    const char *const *names;
    size_t             n;
    int64_t            now;
};

static int set_groups_tx(store_t *st, void *arg, nb_err_t *err)
{
    struct set_groups_arg *a = arg;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM group_members WHERE user_id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->user_id);
    if ((rc = store_step_done(st, s, "set groups", err))) return rc;
    for (size_t i = 0; i < a->n; i++) {
        size_t len = strlen(a->names[i]);
        if (!len || len > 200) continue;
        if ((rc = store_stmt(st, "INSERT OR IGNORE INTO groups(name, properties, created_at) "
                                 "VALUES (?1, NULL, ?2)", &s, err)))
            return rc;
        store_bind_text(s, 1, a->names[i]);
        sqlite3_bind_int64(s, 2, a->now);
        if ((rc = store_step_done(st, s, "add group", err))) return rc;
        if ((rc = store_stmt(st, "INSERT OR IGNORE INTO group_members(group_id, user_id) "
                                 "SELECT id, ?2 FROM groups WHERE name = ?1", &s, err)))
            return rc;
        store_bind_text(s, 1, a->names[i]);
        sqlite3_bind_int64(s, 2, a->user_id);
        if ((rc = store_step_done(st, s, "add group member", err))) return rc;
    }
    return 0;
}

int store_user_set_groups(store_t *st, int64_t user_id, const char *const *names, size_t n,
                          int64_t now, nb_err_t *err)
{
    struct set_groups_arg a = { user_id, names, n, now };
    return store_tx(st, set_groups_tx, &a, err);
}
