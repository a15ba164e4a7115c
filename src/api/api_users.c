/*
 * api_users — users and their API tokens.
 *
 * Who may do what is decided by the route flags before these run
 * (api_auth.c): listing and creating users is for admins, a user's
 * password and tokens for that user or an admin.  What remains here is
 * validation and the one rule about secrets: a new API token is shown in
 * the answer of its creation and never again.  The store only ever gets
 * its SHA-256 digest (token.h), so neither a database backup nor a later
 * GET can give it back, and "Cache-Control: no-store" keeps proxies and
 * browsers from holding on to that one answer.
 *
 * User names.  [A-Za-z0-9][A-Za-z0-9._@-]{0,63}: they appear in URLs, in
 * flow files (`owner:`), in run directories and in log lines, and a name
 * that needs quoting in any of those is trouble nobody needs.
 */
#include "api/api_int.h"
#include "auth/passwd.h"
#include "auth/token.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokens expire within ten years at most: "never" is expires_in absent. */
#define TOKEN_MAX_EXPIRES_IN (10LL * 366 * 24 * 3600)
#define TOKEN_NAME_MAX 200

int api_users_name_valid(const char *s)
{
    if (!s || !*s) return 0;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (p == s || !strchr("._@-", c))) return 0;
    }
    return n <= 64;
}

/* The user named by ":name", answering 404 when there is none. */
static int api_users_target(api_t *a, http_req_t *req, store_user_t *u)
{
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_by_name(a->store, http_param(req, "name"), u, &err);
    if (rc == -ENOENT) {
        api_error(req, 404, "not_found", "no such user");
        return -1;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return -1;
    }
    return 0;
}

void api_users_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_users_t l;
    nb_err_t err;
    int rc = store_users_list(a->store, &l, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) json_array_append_new(arr, api_json_user(&l.v[i]));
    store_users_free(&l);
    http_respond_json(req, 200, json_pack("{s:o}", "users", arr));
}

void api_users_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_body_object(req, 0, API_MEMBERS("name", "password", "admin", "trusted"), &body) < 0) return;
    json_t *jname = json_object_get(body, "name"), *jpw = json_object_get(body, "password"),
           *jadmin = json_object_get(body, "admin"), *jtrusted = json_object_get(body, "trusted");
    const char *name = json_string_value(jname);
    if (!api_users_name_valid(name)) {
        json_decref(body);
        api_error(req, 400, "bad_request",
                  "name must be 1-64 characters [A-Za-z0-9._@-] starting with a letter or digit");
        return;
    }
    if ((jpw && !json_is_null(jpw) && !json_is_string(jpw)) || (jadmin && !json_is_boolean(jadmin)) ||
        (jtrusted && !json_is_boolean(jtrusted))) {
        json_decref(body);
        api_error(req, 400, "bad_request", "password must be a string, admin and trusted booleans");
        return;
    }
    char *hash = NULL;
    nb_err_t err;
    err_clear(&err);
    int rc = 0;
    if (json_is_string(jpw)) rc = passwd_hash(json_string_value(jpw), &hash, &err);
    if (rc) {
        json_decref(body);
        api_fail(req, rc, &err);
        return;
    }
    int64_t id;
    rc = store_user_add(a->store, name, hash, json_is_true(jadmin), time_now_us(), &id, &err);
    free(hash);
    if (rc == -EEXIST) {
        json_decref(body);
        api_error(req, 409, "conflict", "a user with this name exists");
        return;
    }
    int trusted = json_is_true(jtrusted);
    json_decref(body);
    if (rc == 0 && trusted) rc = store_user_set_trusted(a->store, id, 1, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    store_user_t u;
    rc = store_user_by_id(a->store, id, &u, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("user created", "user=%s admin=%d by=%s", api_log_name(req, u.name), u.is_admin,
          api_ctx(req)->log_name);
    json_t *j = api_json_user(&u);
    store_user_clear(&u);
    http_respond_json(req, 201, j);
}

/* PUT /users/:name/trusted {"trusted": bool} (admins): the role that lets a
 * user save command tasks and paths outside a flow's directory under
 * isolation: shared (docs/security.md). */
void api_users_trusted(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_body_object(req, 0, API_MEMBERS("trusted"), &body) < 0) return;
    json_t *jt = json_object_get(body, "trusted");
    int on = json_is_true(jt), ok = json_is_boolean(jt);
    json_decref(body);
    if (!ok) {
        api_error(req, 400, "bad_request", "the body must be {\"trusted\": true|false}");
        return;
    }
    store_user_t u;
    if (api_users_target(a, req, &u) < 0) return;
    nb_err_t err;
    int64_t id = u.id;
    store_user_clear(&u);
    int rc = store_user_set_trusted(a->store, id, on, &err);
    if (rc == 0) rc = store_user_by_id(a->store, id, &u, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    LOG_I("user trusted", "user=%s trusted=%d by=%s", api_log_name(req, u.name), on, api_ctx(req)->log_name);
    json_t *j = api_json_user(&u);
    store_user_clear(&u);
    http_respond_json(req, 200, j);
}

/* PUT /users/:name/password {"password", "old_password"?, "revoke_tokens"?}:
 * the checks of the body here, the rest (old password, lockout, hashing on
 * the pool, the store) in api_auth_password_change. */
void api_users_password(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_body_object(req, 0, API_MEMBERS("password", "old_password", "revoke_tokens"), &body) < 0) return;
    json_t *jold = json_object_get(body, "old_password"), *jrev = json_object_get(body, "revoke_tokens");
    const char *pw = json_string_value(json_object_get(body, "password"));
    if (!pw) {
        json_decref(body);
        api_error(req, 400, "bad_request", "password (a string) is required");
        return;
    }
    if ((jold && !json_is_null(jold) && !json_is_string(jold)) || (jrev && !json_is_boolean(jrev))) {
        json_decref(body);
        api_error(req, 400, "bad_request", "old_password must be a string and revoke_tokens a boolean");
        return;
    }
    /* A new password the hash would refuse is refused before the old one
     * is looked at: a typo in the new one is not a failed login. */
    size_t n = passwd_chars(pw);
    if (n < PASSWD_MIN_LEN || n > PASSWD_MAX_LEN) {
        json_decref(body);
        char msg[80];
        snprintf(msg, sizeof msg, "password must be %d to %d characters", PASSWD_MIN_LEN, PASSWD_MAX_LEN);
        api_error(req, 400, "bad_request", msg);
        return;
    }
    store_user_t u;
    if (api_users_target(a, req, &u) < 0) {
        json_decref(body);
        return;
    }
    api_auth_password_change(a, req, &u, json_string_value(jold), pw, json_is_true(jrev));
    json_decref(body);
}

void api_users_tokens_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_user_t u;
    if (api_users_target(a, req, &u) < 0) return;
    store_tokens_t l;
    nb_err_t err;
    int rc = store_tokens_list(a->store, u.id, &l, &err);
    store_user_clear(&u);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) json_array_append_new(arr, api_json_token(&l.v[i]));
    store_tokens_free(&l);
    http_respond_json(req, 200, json_pack("{s:o}", "tokens", arr));
}

void api_users_token_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_body_object(req, 1, API_MEMBERS("name", "expires_in"), &body) < 0) return;
    json_t *jname = json_object_get(body, "name"), *jexp = json_object_get(body, "expires_in");
    if ((jname && !json_is_null(jname) && !json_is_string(jname)) ||
        (jname && json_is_string(jname) && strlen(json_string_value(jname)) > TOKEN_NAME_MAX)) {
        json_decref(body);
        api_error(req, 400, "bad_request", "name must be a string of at most 200 bytes");
        return;
    }
    if (jexp && !json_is_null(jexp) &&
        (!json_is_integer(jexp) || json_integer_value(jexp) < 1 ||
         json_integer_value(jexp) > TOKEN_MAX_EXPIRES_IN)) {
        json_decref(body);
        api_error(req, 400, "bad_request", "expires_in must be a number of seconds, 1 to 10 years");
        return;
    }
    store_user_t u;
    if (api_users_target(a, req, &u) < 0) {
        json_decref(body);
        return;
    }
    char tok[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    nb_err_t err;
    err_clear(&err);
    if (token_new(TOKEN_API, tok) < 0) {
        store_user_clear(&u);
        json_decref(body);
        api_fail(req, -EIO, NULL);
        return;
    }
    token_digest(tok, digest);
    int64_t now = time_now_us();
    int64_t expires = json_is_integer(jexp) ? now + json_integer_value(jexp) * 1000000 : 0;
    const char *name = json_is_string(jname) ? json_string_value(jname) : "";
    int64_t id;
    /* Minted with the provider's access token (`nbhub login`): the token
     * follows that provider session (revoked when it ends, api_oidc.c). */
    const char *idp_sid = api_ctx(req)->idp_sid;
    int rc = idp_sid ? store_token_add_idp(a->store, u.id, name, digest, NULL, idp_sid, now, expires, &id, &err)
                     : store_token_add(a->store, u.id, name, digest, now, expires, &id, &err);
    if (rc == 0)
        LOG_I("token created", "user=%s token_id=%lld by=%s", api_log_name(req, u.name),
              (long long)id, api_ctx(req)->log_name);
    store_user_clear(&u);
    if (rc) {
        json_decref(body);
        api_fail(req, rc, &err);
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(id));
    json_object_set_new(j, "name", json_string(name));
    json_object_set_new(j, "token", json_string(tok));
    json_object_set_new(j, "created_at", api_json_time(now));
    json_object_set_new(j, "expires_at", api_json_time(expires));
    json_decref(body);
    memset(tok, 0, sizeof tok);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 201, j);
}

void api_users_token_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    int64_t id;
    if (api_parse_i64(http_param(req, "id"), 1, INT64_MAX, &id) < 0) {
        api_error(req, 404, "not_found", "no such token");
        return;
    }
    store_user_t u;
    if (api_users_target(a, req, &u) < 0) return;
    nb_err_t err;
    err_clear(&err);
    /* Restricted to the path's user: /users/alice/tokens/7 never deletes
     * Bob's token 7, even for an admin who mistyped. */
    int rc = store_token_revoke(a->store, id, u.id, &err);
    store_user_clear(&u);
    if (rc == -ENOENT) {
        api_error(req, 404, "not_found", "no such token");
        return;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    http_respond(req, 204, NULL, "", 0);
}
