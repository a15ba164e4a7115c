/*
 * store_auth.c — users, API tokens, sessions (see store_auth.h).
 *
 * Single-statement writes (add, revoke, delete) are atomic on their own in
 * autocommit mode; the writes that touch two tables (password change and
 * disable end the sessions, a password change may revoke the tokens) go
 * through store_tx.  Lookups are one SELECT
 * joining the user, so a disabled user is rejected in the same read that
 * finds the credential.
 */
#define NBHUB_STORE_INTERNAL
#include "store/store_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* last_used_at is refreshed when older than this. */
#define TOKEN_TOUCH_US (60 * 1000000LL)

#define USER_COLS "u.id, u.name, u.password_hash, u.is_admin, u.created_at, u.disabled, u.trusted"

/* Reads USER_COLS starting at column `c`. */
static void user_row(sqlite3_stmt *s, int c, store_user_t *u)
{
    u->id = sqlite3_column_int64(s, c);
    u->name = store_col_str(s, c + 1);
    u->password_hash = store_col_str(s, c + 2);
    u->is_admin = sqlite3_column_int(s, c + 3);
    u->created_at = sqlite3_column_int64(s, c + 4);
    u->disabled = sqlite3_column_int(s, c + 5);
    u->trusted = sqlite3_column_int(s, c + 6);
}

/* ---- users ------------------------------------------------------------------ */

int store_user_add(store_t *st, const char *name, const char *password_hash, int is_admin,
                   int64_t now, int64_t *id, nb_err_t *err)
{
    if (!name || !*name) return err_set(err, -EINVAL, "user name is required");
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT INTO users(name, password_hash, is_admin, created_at) "
                            "VALUES (?1, ?2, ?3, ?4)", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    store_bind_text(s, 2, password_hash);
    sqlite3_bind_int(s, 3, is_admin ? 1 : 0);
    sqlite3_bind_int64(s, 4, now);
    if ((rc = store_step_done(st, s, "add user", err))) {
        if (rc == -EEXIST) err_set(err, rc, "user '%s' already exists", name);
        return rc;
    }
    if (id) *id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

static int user_get(store_t *st, sqlite3_stmt *s, const char *what, store_user_t *out,
                    nb_err_t *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) user_row(s, 0, out);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no user %s", what);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read user", err);
}

int store_user_by_name(store_t *st, const char *name, store_user_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " USER_COLS " FROM users u WHERE u.name = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    char what[300];
    snprintf(what, sizeof what, "named '%.256s'", name);
    return user_get(st, s, what, out, err);
}

int store_user_by_id(store_t *st, int64_t id, store_user_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " USER_COLS " FROM users u WHERE u.id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    char what[40];
    snprintf(what, sizeof what, "with id %lld", (long long)id);
    return user_get(st, s, what, out, err);
}

struct user_arg {
    int64_t id;
    const char *hash;
    int disabled, set_password;
    const char *keep_session;  /* password change: this session survives */
    int revoke_tokens;         /* password change: the API tokens go too */
};

static int user_update_tx(store_t *st, void *varg, nb_err_t *err)
{
    struct user_arg *a = varg;
    sqlite3_stmt *s;
    int rc = a->set_password
        ? store_stmt(st, "UPDATE users SET password_hash = ?2 WHERE id = ?1", &s, err)
        : store_stmt(st, "UPDATE users SET disabled = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, a->id);
    if (a->set_password) store_bind_text(s, 2, a->hash);
    else sqlite3_bind_int(s, 2, a->disabled);
    if ((rc = store_step_done(st, s, "update user", err))) return rc;
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ENOENT, "no user with id %lld", (long long)a->id);
    if (!a->set_password && !a->disabled) return 0;   /* enabling keeps nothing to end */
    if ((rc = store_stmt(st, "DELETE FROM sessions WHERE user_id = ?1 AND "
                             "(?2 IS NULL OR token_hash <> ?2)", &s, err))) return rc;
    sqlite3_bind_int64(s, 1, a->id);
    store_bind_text(s, 2, a->keep_session);
    if ((rc = store_step_done(st, s, "end sessions", err))) return rc;
    if (!a->revoke_tokens) return 0;
    if ((rc = store_stmt(st, "DELETE FROM api_tokens WHERE user_id = ?1", &s, err))) return rc;
    sqlite3_bind_int64(s, 1, a->id);
    return store_step_done(st, s, "revoke tokens", err);
}

int store_user_set_password(store_t *st, int64_t id, const char *password_hash, nb_err_t *err)
{
    return store_user_change_password(st, id, password_hash, NULL, 0, err);
}

int store_user_change_password(store_t *st, int64_t id, const char *password_hash,
                               const char *keep_session, int revoke_tokens, nb_err_t *err)
{
    struct user_arg a = { id, password_hash, 0, 1, keep_session, revoke_tokens };
    return store_tx(st, user_update_tx, &a, err);
}

int store_user_set_disabled(store_t *st, int64_t id, int disabled, nb_err_t *err)
{
    struct user_arg a = { id, NULL, disabled ? 1 : 0, 0, NULL, 0 };
    return store_tx(st, user_update_tx, &a, err);
}

int store_user_set_admin(store_t *st, int64_t id, int admin, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE users SET is_admin = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, admin ? 1 : 0);
    if ((rc = store_step_done(st, s, "update user", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "no user with id %lld", (long long)id);
}

static int user_delete_tx(store_t *st, void *varg, nb_err_t *err)
{
    int64_t id = *(int64_t *)varg;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT count(*) FROM flows WHERE owner_id = ?1 AND deleted_at IS NULL",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    int64_t nflows = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) return store_sqlerr(st, rc, "count flows", err);
    if (nflows)
        return err_set(err, -EBUSY, "the user owns %lld flow(s): delete them first",
                       (long long)nflows);
    if ((rc = store_stmt(st, "DELETE FROM users WHERE id = ?1", &s, err))) return rc;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = store_step_done(st, s, "delete user", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "no user with id %lld", (long long)id);
}

int store_user_delete(store_t *st, int64_t id, nb_err_t *err)
{
    return store_tx(st, user_delete_tx, &id, err);
}

int store_user_set_trusted(store_t *st, int64_t id, int trusted, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE users SET trusted = ?2 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, trusted ? 1 : 0);
    if ((rc = store_step_done(st, s, "update user", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "no user with id %lld", (long long)id);
}

int store_users_count(store_t *st, int64_t *n, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT count(*) FROM users", &s, err);
    if (rc) return rc;
    rc = sqlite3_step(s);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "count users", err);
}

int store_users_list(store_t *st, store_users_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " USER_COLS " FROM users u ORDER BY u.name", &s, err);
    if (rc) return rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        user_row(s, 0, &out->v[out->n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_users_free(out);
        return store_sqlerr(st, rc, "list users", err);
    }
    return 0;
}

/* ---- tokens ----------------------------------------------------------------- */

static const char *const token_kinds[] = { "api", "server", "oauth" };

const char *store_token_kind_name(store_token_kind_t k)
{
    return (unsigned)k < sizeof token_kinds / sizeof token_kinds[0] ? token_kinds[k] : NULL;
}

int store_token_kind_parse(const char *s, store_token_kind_t *out)
{
    for (size_t i = 0; s && i < sizeof token_kinds / sizeof token_kinds[0]; i++)
        if (strcmp(s, token_kinds[i]) == 0) {
            *out = (store_token_kind_t)i;
            return 0;
        }
    return -EINVAL;
}

#define TOKEN_COLS "t.id, t.user_id, t.name, t.created_at, t.expires_at, t.last_used_at, " \
                   "t.kind, t.scopes, t.server_id, (SELECT v.name FROM servers v WHERE v.id = t.server_id), " \
                   "(SELECT w.name FROM servers v JOIN users w ON w.id = v.user_id WHERE v.id = t.server_id)"
#define TOKEN_NCOLS 11

/* Reads TOKEN_COLS from column 0.  A kind the schema's CHECK let through
 * but this build does not know cannot happen; it reads as 'oauth', the
 * kind with the fewest rights, rather than as 'api'. */
static void token_row(sqlite3_stmt *s, store_token_t *t)
{
    t->id = sqlite3_column_int64(s, 0);
    t->user_id = sqlite3_column_int64(s, 1);
    t->name = store_col_str(s, 2);
    t->created_at = sqlite3_column_int64(s, 3);
    t->expires_at = sqlite3_column_int64(s, 4);
    t->last_used_at = sqlite3_column_int64(s, 5);
    if (store_token_kind_parse((const char *)sqlite3_column_text(s, 6), &t->kind))
        t->kind = STORE_TOKEN_OAUTH;
    t->scopes = store_col_str(s, 7);
    t->server_id = sqlite3_column_int64(s, 8);
    t->server_name = store_col_str(s, 9);
    t->server_owner = store_col_str(s, 10);
}

int store_token_add(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                    int64_t now, int64_t expires_at, int64_t *id, nb_err_t *err)
{
    return store_token_add_scoped(st, user_id, name, token_hash, STORE_TOKEN_API, NULL, 0, now,
                                  expires_at, id, err);
}

static int token_insert(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                        store_token_kind_t kind, const char *scopes_json, int64_t server_id,
                        const char *idp_sid, int64_t now, int64_t expires_at, int64_t *id, nb_err_t *err)
{
    if (!token_hash || !*token_hash) return err_set(err, -EINVAL, "token hash is required");
    const char *kname = store_token_kind_name(kind);
    if (!kname) return err_set(err, -EINVAL, "unknown token kind %d", (int)kind);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT INTO api_tokens(user_id, name, token_hash, created_at, "
                            "expires_at, kind, scopes, server_id, idp_sid) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, user_id);
    store_bind_text(s, 2, name ? name : "");
    store_bind_text(s, 3, token_hash);
    sqlite3_bind_int64(s, 4, now);
    store_bind_time(s, 5, expires_at);
    store_bind_text(s, 6, kname);
    store_bind_text(s, 7, scopes_json);
    if (server_id) sqlite3_bind_int64(s, 8, server_id);
    else sqlite3_bind_null(s, 8);
    store_bind_text(s, 9, idp_sid);
    if ((rc = store_step_done(st, s, "add token", err))) {
        /* the foreign keys here are the user and the server */
        if (sqlite3_extended_errcode(store_db(st)) == SQLITE_CONSTRAINT_FOREIGNKEY)
            return err_set(err, -ENOENT, "no user with id %lld or no server with id %lld",
                           (long long)user_id, (long long)server_id);
        return rc;
    }
    if (id) *id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

int store_token_add_scoped(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                           store_token_kind_t kind, const char *scopes_json, int64_t server_id,
                           int64_t now, int64_t expires_at, int64_t *id, nb_err_t *err)
{
    return token_insert(st, user_id, name, token_hash, kind, scopes_json, server_id, NULL, now, expires_at,
                        id, err);
}

int store_token_add_idp(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                        const char *scopes_json, const char *idp_sid, int64_t now, int64_t expires_at,
                        int64_t *id, nb_err_t *err)
{
    return token_insert(st, user_id, name, token_hash, STORE_TOKEN_API, scopes_json, 0, idp_sid ? idp_sid : "",
                        now, expires_at, id, err);
}

int store_tokens_revoke_idp(store_t *st, const char *idp_sid, int64_t user_id, int64_t *deleted,
                            nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = idp_sid ? store_stmt(st, "DELETE FROM api_tokens WHERE idp_sid = ?1 AND idp_sid <> ''", &s, err)
                     : store_stmt(st, "DELETE FROM api_tokens WHERE user_id = ?1 AND idp_sid IS NOT NULL",
                                  &s, err);
    if (rc) return rc;
    if (idp_sid) store_bind_text(s, 1, idp_sid);
    else sqlite3_bind_int64(s, 1, user_id);
    rc = store_step_done(st, s, "revoke provider tokens", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(store_db(st));
    return rc;
}

int store_token_lookup(store_t *st, const char *token_hash, int64_t now, store_token_t *tok,
                       store_user_t *user, nb_err_t *err)
{
    if (tok) memset(tok, 0, sizeof *tok);
    if (user) memset(user, 0, sizeof *user);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TOKEN_COLS ", " USER_COLS " FROM api_tokens t "
                            "JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?1",
                        &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "unknown token");
        return store_sqlerr(st, rc, "read token", err);
    }
    int64_t id = sqlite3_column_int64(s, 0);
    int64_t expires = sqlite3_column_int64(s, 4), last = sqlite3_column_int64(s, 5);
    int disabled = sqlite3_column_int(s, TOKEN_NCOLS + 5);
    if (expires && expires <= now) {
        sqlite3_reset(s);
        return err_set(err, -EKEYEXPIRED, "token expired");
    }
    if (disabled) {
        sqlite3_reset(s);
        return err_set(err, -EACCES, "user is disabled");
    }
    if (tok) token_row(s, tok);
    if (user) user_row(s, TOKEN_NCOLS, user);
    sqlite3_reset(s);

    if (last && now - last < TOKEN_TOUCH_US) return 0;
    /* The guard in the WHERE clause keeps two concurrent lookups from both
     * writing; a failure here is not an authentication failure. */
    if (store_stmt(st, "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND "
                       "(last_used_at IS NULL OR last_used_at <= ?2 - ?3)", &s, NULL) == 0) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, now);
        sqlite3_bind_int64(s, 3, TOKEN_TOUCH_US);
        if (store_step_done(st, s, "touch token", NULL) == 0 && tok) tok->last_used_at = now;
    }
    return 0;
}

int store_token_revoke(store_t *st, int64_t id, int64_t user_id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM api_tokens WHERE id = ?1 AND (?2 = 0 OR user_id = ?2)",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, user_id);
    if ((rc = store_step_done(st, s, "revoke token", err))) return rc;
    if (sqlite3_changes(store_db(st)) == 0)
        return err_set(err, -ENOENT, "no token with id %lld", (long long)id);
    return 0;
}

int store_token_revoke_hash(store_t *st, const char *token_hash, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM api_tokens WHERE token_hash = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    if ((rc = store_step_done(st, s, "revoke token", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "unknown token");
}

int store_tokens_revoke_server(store_t *st, int64_t server_id, int kind, int64_t *deleted,
                               nb_err_t *err)
{
    const char *kname = kind < 0 ? NULL : store_token_kind_name((store_token_kind_t)kind);
    if (kind >= 0 && !kname) return err_set(err, -EINVAL, "unknown token kind %d", kind);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM api_tokens WHERE server_id = ?1 AND "
                            "(?2 IS NULL OR kind = ?2)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, server_id);
    store_bind_text(s, 2, kname);
    rc = store_step_done(st, s, "revoke server tokens", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(store_db(st));
    return rc;
}

int store_tokens_prune_oauth(store_t *st, int64_t now, int64_t *deleted, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM api_tokens WHERE kind = 'oauth' AND expires_at IS NOT NULL "
                            "AND expires_at <= ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, now);
    rc = store_step_done(st, s, "prune oauth tokens", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(store_db(st));
    return rc;
}

int store_token_by_id(store_t *st, int64_t id, int64_t user_id, store_token_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TOKEN_COLS " FROM api_tokens t "
                            "WHERE t.id = ?1 AND (?2 = 0 OR t.user_id = ?2)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) token_row(s, out);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no token with id %lld", (long long)id);
    return store_sqlerr(st, rc, "read token", err);
}

int store_tokens_list(store_t *st, int64_t user_id, store_tokens_t *out, nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT " TOKEN_COLS " FROM api_tokens t WHERE t.user_id = ?1 "
                            "ORDER BY t.id", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, user_id);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        store_token_t *t = &out->v[out->n++];
        memset(t, 0, sizeof *t);
        token_row(s, t);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_tokens_free(out);
        return store_sqlerr(st, rc, "list tokens", err);
    }
    return 0;
}

/* ---- sessions ------------------------------------------------------------------ */

int store_session_add(store_t *st, const char *token_hash, const char *csrf_token,
                      int64_t user_id, int64_t now, int64_t expires_at, int64_t *id,
                      nb_err_t *err)
{
    if (!token_hash || !*token_hash || !csrf_token || expires_at <= now)
        return err_set(err, -EINVAL, "session needs a hash, a CSRF token and a future expiry");
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT INTO sessions(token_hash, csrf_token, user_id, created_at, "
                            "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    store_bind_text(s, 2, csrf_token);
    sqlite3_bind_int64(s, 3, user_id);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int64(s, 5, expires_at);
    if ((rc = store_step_done(st, s, "add session", err))) {
        if (sqlite3_extended_errcode(store_db(st)) == SQLITE_CONSTRAINT_FOREIGNKEY)
            return err_set(err, -ENOENT, "no user with id %lld", (long long)user_id);
        return rc;
    }
    if (id) *id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

int store_session_lookup(store_t *st, const char *token_hash, int64_t now, store_session_t *out,
                         store_user_t *user, nb_err_t *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (user) memset(user, 0, sizeof *user);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT x.id, x.user_id, x.csrf_token, x.created_at, x.expires_at, "
                            USER_COLS " FROM sessions x JOIN users u ON u.id = x.user_id "
                            "WHERE x.token_hash = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "unknown session");
        return store_sqlerr(st, rc, "read session", err);
    }
    int64_t expires = sqlite3_column_int64(s, 4);
    int disabled = sqlite3_column_int(s, 10);
    rc = expires <= now ? err_set(err, -EKEYEXPIRED, "session expired")
       : disabled       ? err_set(err, -EACCES, "user is disabled") : 0;
    if (rc == 0 && out) {
        out->id = sqlite3_column_int64(s, 0);
        out->user_id = sqlite3_column_int64(s, 1);
        out->csrf_token = store_col_str(s, 2);
        out->created_at = sqlite3_column_int64(s, 3);
        out->expires_at = expires;
    }
    if (rc == 0 && user) user_row(s, 5, user);
    sqlite3_reset(s);
    return rc;
}

int store_session_delete(store_t *st, const char *token_hash, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM sessions WHERE token_hash = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    if ((rc = store_step_done(st, s, "delete session", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "unknown session");
}

int store_sessions_prune(store_t *st, int64_t now, int64_t *deleted, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM sessions WHERE expires_at <= ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, now);
    rc = store_step_done(st, s, "prune sessions", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(store_db(st));
    return rc;
}

/* ---- single sign-on ------------------------------------------------------------ */

int store_user_add_idp(store_t *st, const char *name, const char *idp, const char *subject,
                       int is_admin, int64_t now, int64_t *id, nb_err_t *err)
{
    if (!name || !*name || !idp || !*idp || !subject || !*subject)
        return err_set(err, -EINVAL, "an SSO user needs a name, a provider and a subject");
    sqlite3_stmt *s;
    int rc = store_stmt(st, "INSERT INTO users(name, password_hash, is_admin, created_at, idp, idp_subject) "
                            "VALUES (?1, NULL, ?2, ?3, ?4, ?5)", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, name);
    sqlite3_bind_int(s, 2, is_admin ? 1 : 0);
    sqlite3_bind_int64(s, 3, now);
    store_bind_text(s, 4, idp);
    store_bind_text(s, 5, subject);
    if ((rc = store_step_done(st, s, "add user", err))) {
        if (rc == -EEXIST) err_set(err, rc, "user '%s' or that identity already exists", name);
        return rc;
    }
    if (id) *id = sqlite3_last_insert_rowid(store_db(st));
    return 0;
}

int store_user_idp(store_t *st, int64_t id, char **idp, char **subject, nb_err_t *err)
{
    *idp = *subject = NULL;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT idp, idp_subject FROM users WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *idp = store_col_str(s, 0);
        *subject = store_col_str(s, 1);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no user with id %lld", (long long)id);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read user", err);
}

int store_user_by_idp(store_t *st, const char *idp, const char *subject, int64_t *id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id FROM users WHERE idp = ?1 AND idp_subject = ?2", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, idp);
    store_bind_text(s, 2, subject);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "no user for that identity");
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read user", err);
}

int store_session_set_idp(store_t *st, int64_t session_id, const store_session_idp_t *v,
                          nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "UPDATE sessions SET idp_sid = ?2, id_token = ?3, refresh_token = ?4, "
                            "idp_expires_at = ?5 WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    store_bind_text(s, 2, v->idp_sid);
    store_bind_text(s, 3, v->id_token);
    store_bind_text(s, 4, v->refresh_token);
    sqlite3_bind_int64(s, 5, v->idp_expires_at);
    if ((rc = store_step_done(st, s, "update session", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "unknown session");
}

/* The provider's side of the session row the statement (its ?1 bound)
 * selects. */
static int session_idp_row(store_t *st, sqlite3_stmt *s, store_session_idp_t *out, nb_err_t *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->idp_sid = store_col_str(s, 0);
        out->id_token = store_col_str(s, 1);
        out->refresh_token = store_col_str(s, 2);
        out->idp_expires_at = sqlite3_column_int64(s, 3);
        out->session_id = sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return err_set(err, -ENOENT, "unknown session");
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "read session", err);
}

int store_session_get_idp(store_t *st, const char *token_hash, store_session_idp_t *out,
                          nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT idp_sid, id_token, refresh_token, idp_expires_at, id FROM sessions "
                            "WHERE token_hash = ?1", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, token_hash);
    return session_idp_row(st, s, out, err);
}

int store_session_get_idp_id(store_t *st, int64_t session_id, store_session_idp_t *out,
                             nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT idp_sid, id_token, refresh_token, idp_expires_at, id FROM sessions "
                            "WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, session_id);
    return session_idp_row(st, s, out, err);
}

int store_sessions_end_idp(store_t *st, const char *idp_sid, int64_t user_id, int64_t *deleted,
                           nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = idp_sid ? store_stmt(st, "DELETE FROM sessions WHERE idp_sid = ?1", &s, err)
                     : store_stmt(st, "DELETE FROM sessions WHERE user_id = ?1 AND id_token IS NOT NULL",
                                  &s, err);
    if (rc) return rc;
    if (idp_sid) store_bind_text(s, 1, idp_sid);
    else sqlite3_bind_int64(s, 1, user_id);
    rc = store_step_done(st, s, "end sessions", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(store_db(st));
    return rc;
}

int store_sessions_idp_due(store_t *st, int64_t before, size_t max, store_idp_due_t **out, size_t *n,
                           nb_err_t *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, user_id, refresh_token, idp_sid FROM sessions WHERE refresh_token IS NOT NULL "
                            "AND idp_expires_at > 0 AND idp_expires_at <= ?1 ORDER BY idp_expires_at LIMIT ?2",
                        &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *out = xrealloc(*out, (*n + 1) * sizeof **out);
        store_idp_due_t *d = &(*out)[(*n)++];
        d->session_id = sqlite3_column_int64(s, 0);
        d->user_id = sqlite3_column_int64(s, 1);
        d->refresh_token = store_col_str(s, 2);
        d->idp_sid = store_col_str(s, 3);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_idp_due_free(*out, *n);
        *out = NULL;
        *n = 0;
        return store_sqlerr(st, rc, "list sessions", err);
    }
    return 0;
}

void store_idp_due_free(store_idp_due_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].refresh_token) explicit_bzero(v[i].refresh_token, strlen(v[i].refresh_token));
        free(v[i].refresh_token);
        free(v[i].idp_sid);
    }
    free(v);
}

int store_sessions_idp_unsealed(store_t *st, const char *prefix, int64_t **ids, size_t *n, nb_err_t *err)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id FROM sessions WHERE (id_token IS NOT NULL AND substr(id_token, 1, ?2) <> ?1) "
                            "OR (refresh_token IS NOT NULL AND substr(refresh_token, 1, ?2) <> ?1)", &s, err);
    if (rc) return rc;
    store_bind_text(s, 1, prefix);
    sqlite3_bind_int(s, 2, (int)strlen(prefix));
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *ids = xrealloc(*ids, (*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return store_sqlerr(st, rc, "list sessions", err);
    }
    return 0;
}

int store_session_delete_id(store_t *st, int64_t id, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM sessions WHERE id = ?1", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = store_step_done(st, s, "delete session", err))) return rc;
    return sqlite3_changes(store_db(st)) ? 0 : err_set(err, -ENOENT, "unknown session");
}

void store_session_idp_clear(store_session_idp_t *v)
{
    free(v->idp_sid);
    free(v->id_token);
    if (v->refresh_token) explicit_bzero(v->refresh_token, strlen(v->refresh_token));
    free(v->refresh_token);
    memset(v, 0, sizeof *v);
}

/* ---- free ------------------------------------------------------------------------ */

void store_user_clear(store_user_t *u)
{
    free(u->name);
    free(u->password_hash);
    memset(u, 0, sizeof *u);
}

void store_users_free(store_users_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_user_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void store_token_clear(store_token_t *t)
{
    free(t->name);
    free(t->scopes);
    free(t->server_name);
    free(t->server_owner);
    memset(t, 0, sizeof *t);
}

void store_tokens_free(store_tokens_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_token_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void store_session_clear(store_session_t *s)
{
    free(s->csrf_token);
    memset(s, 0, sizeof *s);
}
