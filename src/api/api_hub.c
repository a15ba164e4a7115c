/*
 * api_hub — JupyterHub's REST API at /hub/api (JupyterHub 6.1 shapes), so
 * jupyterhub-singleuser, jupyterhub-idle-culler and admin scripts written
 * for JupyterHub work against nbhub (docs/hub.md says what is spoken and
 * what is not).
 *
 * Authentication and authorization happen in one place, api_hub_before
 * (called by api_auth_before for API_HUB routes, on the head alone and
 * again with the body): the credential is a token of any kind in
 * "Authorization: token X" / "Bearer X", or the nbhub session cookie (with
 * X-CSRF-Token on POST, PUT, PATCH and DELETE, as everywhere in nbhub);
 * the caller's JupyterHub scopes are computed from it (api_hub_scopes) and
 * checked against the route's needs (hub_needs[], JupyterHub's
 * @needs_scope for the same handler), with the path's user, server or
 * group as the filter.  As in JupyterHub: no or bad credentials 403
 * "Missing or invalid credentials."; a filtered scope that does not cover
 * this object 404 (names of other users do not leak); no such scope at
 * all 403.  Handlers then only shape answers, and check what depends on
 * the body (a token's requested scopes, an admin flag).
 *
 * The caller's scopes (JupyterHub's roles mapped onto nbhub's, auth/scopes.h):
 *   session cookie          all the user's rights (user role; + admin role)
 *   'api' token, no scopes  the same ("inherit")
 *   'api' token with scopes those within the owner's rights
 *   'server' token          JupyterHub's server role for ITS server only:
 *                           users:activity!user=U, access:servers!server=U/S,
 *                           identify -- whatever scopes were stored with it
 *   'oauth' token           its scopes (identify, access to its server)
 *                           within the owner's rights
 * and every token may identify its owner (GET /hub/api/user).  Only
 * sessions and full 'api' tokens reach nbhub's own /api/v1 (api_auth_full).
 *
 * Errors are JupyterHub's {"status": N, "message": "..."}, and every
 * answer under /hub/api carries X-JupyterHub-Version.
 *
 * Servers (the user model's "servers", start, stop, progress, activity)
 * come from the hub layer through api_hub_servers.c.  OAuth is
 * api_hub_oauth.c.
 */
#include "api/api_int.h"
#include "auth/oauth.h"
#include "auth/scopes.h"
#include "auth/token.h"
#include "hub/hub.h"
#include "store/store_groups.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGINATION_TYPE "application/jupyterhub-pagination+json"
#define PAGE_DEFAULT 50      /* JupyterHub's api_page_default_limit */
#define PAGE_MAX 200         /* and api_page_max_limit */
#define HUB_TOKEN_MAX_EXPIRES_IN (10LL * 366 * 24 * 3600)

void api_hub_error(http_req_t *req, int status, const char *msg)
{
    http_respond_json(req, status, json_pack("{s:i,s:s}", "status", status, "message", msg));
}

void api_hub_fail(http_req_t *req, int rc, const nb_err_t *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    switch (rc) {
    case -ENOENT: api_hub_error(req, 404, msg ? msg : "Not Found"); return;
    case -EACCES:
    case -EPERM: api_hub_error(req, 403, msg ? msg : "Forbidden"); return;
    case -EEXIST: api_hub_error(req, 409, msg ? msg : "Conflict"); return;
    case -EINVAL:
    case -EBUSY:
    case -EUSERS:
    case -ERANGE: api_hub_error(req, 400, msg ? msg : "Bad Request"); return;
    case -ENOTSUP:
    case -ESHUTDOWN:
    case -EAGAIN: api_hub_error(req, 503, msg ? msg : "Service Unavailable"); return;
    default:
        LOG_E("hub api internal error", "method=%s rc=%d error=\"%s\"", http_req_method(req), rc,
              msg ? msg : "");
        api_hub_error(req, 500, "internal error (see the server log)");
        return;
    }
}

/* ---- scopes of the caller ------------------------------------------------------ */

static int hub_in_group(void *ud, const char *user, const char *group)
{
    api_t *a = ud;
    return store_user_in_group(a->store, user, group, NULL) == 1;
}

int api_hub_scopes_inherit(const char *scopes_json)
{
    json_t *l = json_loads(scopes_json, 0, NULL);
    int inherit = 0;
    size_t i;
    json_t *v;
    json_array_foreach(l, i, v) if (json_is_string(v) && strcmp(json_string_value(v), "inherit") == 0)
        inherit = 1;
    json_decref(l);
    return inherit;
}

/* The raw scopes stored with a token, expanded for its owner (and server). */
static void hub_token_scopes(const char *json, const char *user, const char *server, scopes_t *out)
{
    json_t *l = json_loads(json, 0, NULL);
    size_t n = json_array_size(l), k = 0;
    const char **raw = xcalloc(n + 1, sizeof *raw);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(l, i));
        if (s && scopes_check(s, NULL) == 0) raw[k++] = s;
    }
    scopes_expand(raw, k, user, server, out);
    free(raw);
    json_decref(l);
}

void api_hub_server_filter(const char *user, const char *server, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", user, server ? server : "");
}

/* A user's rights.  JupyterHub's admin role holds access:servers on every
 * server; in nbhub that is hub.admin_access (off by default), so without
 * it an admin's access is to their own servers, like anyone's: the second
 * check, in jupyterhub-singleuser through /hub/api/user, then refuses an
 * admin the proxy refused too. */
static void hub_user_rights(api_t *a, const char *name, int admin, scopes_t *out)
{
    scopes_for_user(name, admin, out);
    if (admin && !(a->hub && hub_conf(a->hub)->admin_access) && scopes_remove(out, "access:servers")) {
        char own[300];
        snprintf(own, sizeof own, "access:servers!user=%s", name);
        scopes_add(out, own);
    }
}

void api_hub_scopes(api_t *a, const api_ctx_t *c, scopes_t *out)
{
    scopes_t owner = SCOPES_INIT;
    hub_user_rights(a, c->name, c->admin, &owner);
    if (c->via_cookie || !c->token_digest ||
        (c->token_kind == STORE_TOKEN_API && (!c->token_scopes || api_hub_scopes_inherit(c->token_scopes)))) {
        for (size_t i = 0; i < owner.n; i++) scopes_add(out, owner.v[i]);
        scopes_free(&owner);
        return;
    }
    char server[600];
    const char *srv = NULL;
    if (c->token_server && c->token_server_owner) {
        api_hub_server_filter(c->token_server_owner, c->token_server, server, sizeof server);
        srv = server;
    }
    scopes_t tok = SCOPES_INIT;
    switch (c->token_kind) {
    case STORE_TOKEN_SERVER: {
        /* The server role for its own server, whatever else was stored:
         * user code in the server can read this token. */
        scopes_t role = SCOPES_INIT;
        if (srv) scopes_for_server(c->name, srv, &role);
        if (c->token_scopes && !api_hub_scopes_inherit(c->token_scopes)) {
            scopes_t stored = SCOPES_INIT;
            hub_token_scopes(c->token_scopes, c->name, srv, &stored);
            scopes_intersect(&stored, &role, hub_in_group, a, &tok);
            scopes_free(&stored);
        } else {
            for (size_t i = 0; i < role.n; i++) scopes_add(&tok, role.v[i]);
        }
        scopes_free(&role);
        break;
    }
    case STORE_TOKEN_OAUTH:
        if (c->token_scopes) hub_token_scopes(c->token_scopes, c->name, srv, &tok);
        if (srv) {
            /* an OAuth token may always reach the server that asked for it
             * (JupyterHub's access_scopes(client)), while its owner may */
            char acc[700];
            snprintf(acc, sizeof acc, "access:servers!server=%s", srv);
            scopes_add(&tok, acc);
        }
        break;
    case STORE_TOKEN_API:
    default:
        hub_token_scopes(c->token_scopes, c->name, NULL, &tok);
        break;
    }
    scopes_identify(c->name, &tok);
    scopes_intersect(&tok, &owner, hub_in_group, a, out);
    scopes_free(&tok);
    scopes_free(&owner);
}

/* c's scopes as a scopes_t view (no copies: the strings are the arena's). */
static scopes_t hub_view(const api_ctx_t *c)
{
    scopes_t s = { (char **)c->scopes, c->nscopes };
    return s;
}

int api_hub_has(api_t *a, const api_ctx_t *c, const char *base, const char *kind, const char *value)
{
    scopes_t s = hub_view(c);
    return scopes_has(&s, base, kind, value, hub_in_group, a);
}

int api_hub_has_any(const api_ctx_t *c, const char *base)
{
    scopes_t s = hub_view(c);
    return scopes_has_any(&s, base);
}

/* ---- what each route needs (JupyterHub's @needs_scope) ------------------------- */

enum hub_filter { HF_NONE, HF_USER, HF_SERVER, HF_GROUP };

struct hub_need {
    http_handler_fn fn;
    int             auth;          /* 0: public (root, OAuth endpoints, 404) */
    enum hub_filter filter;
    int             post_filter;   /* lists: some filtered access is enough */
    const char     *scopes[7];     /* any of these */
};

static const struct hub_need hub_needs[] = {
    { api_hub_root,           0, HF_NONE,   0, { NULL } },
    { api_hub_not_found,      0, HF_NONE,   0, { NULL } },
    { api_hub_oauth_authorize,0, HF_NONE,   0, { NULL } },
    { api_hub_oauth_token,    0, HF_NONE,   0, { NULL } },
    { api_hub_info,           1, HF_NONE,   0, { "read:hub", NULL } },
    { api_hub_self,           1, HF_NONE,   0, { NULL } },   /* any token identifies itself */
    { api_hub_users_list,     1, HF_NONE,   1, { "list:users", NULL } },
    { api_hub_users_create,   1, HF_NONE,   0, { "admin:users", NULL } },
    { api_hub_user_get,       1, HF_USER,   0, { "read:users", "read:users:name", "read:servers",
                                                 "read:users:groups", "read:users:activity",
                                                 "read:roles:users", NULL } },
    { api_hub_user_create,    1, HF_USER,   0, { "admin:users", NULL } },
    { api_hub_user_patch,     1, HF_USER,   0, { "admin:users", NULL } },
    { api_hub_user_delete,    1, HF_USER,   0, { "delete:users", NULL } },
    { api_hub_server_get,     1, HF_SERVER, 0, { "read:servers", NULL } },
    { api_hub_server_start,   1, HF_SERVER, 0, { "start:servers", NULL } },
    { api_hub_server_stop,    1, HF_SERVER, 0, { "delete:servers", NULL } },
    { api_hub_server_progress,1, HF_SERVER, 0, { "read:servers", NULL } },
    { api_hub_tokens_list,    1, HF_USER,   0, { "read:tokens", NULL } },
    { api_hub_token_create,   1, HF_USER,   0, { "tokens", NULL } },
    { api_hub_token_get,      1, HF_USER,   0, { "read:tokens", NULL } },
    { api_hub_token_delete,   1, HF_USER,   0, { "tokens", NULL } },
    { api_hub_activity,       1, HF_USER,   0, { "users:activity", NULL } },
    { api_hub_groups_list,    1, HF_NONE,   1, { "list:groups", NULL } },
    { api_hub_groups_create,  1, HF_NONE,   0, { "admin:groups", NULL } },
    { api_hub_group_get,      1, HF_GROUP,  0, { "read:groups", "read:groups:name", "read:roles:groups", NULL } },
    { api_hub_group_create,   1, HF_GROUP,  0, { "admin:groups", NULL } },
    { api_hub_group_delete,   1, HF_GROUP,  0, { "delete:groups", NULL } },
    { api_hub_group_users_add,1, HF_GROUP,  0, { "groups", NULL } },
    { api_hub_group_users_remove, 1, HF_GROUP, 0, { "groups", NULL } },
    { api_hub_group_properties, 1, HF_GROUP, 0, { "groups", NULL } },
};

static const struct hub_need *hub_need_of(http_handler_fn fn)
{
    for (size_t i = 0; i < sizeof hub_needs / sizeof hub_needs[0]; i++)
        if (hub_needs[i].fn == fn) return &hub_needs[i];
    return NULL;
}

int api_hub_route_known(http_handler_fn fn) { return hub_need_of(fn) != NULL; }

static int hub_unsafe_method(const http_req_t *req)
{
    int m = http_req_method_id(req);
    return m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS;
}

/* The server name a route's path names: "" for /users/NAME/server[/...]. */
static const char *hub_path_server(http_req_t *req)
{
    const char *s = http_param(req, "server");
    return s ? s : "";
}

int api_hub_before(api_t *a, http_req_t *req, const struct http_route *route)
{
    /* The hook runs twice (the gate, on the head; then with the body):
     * the header goes on once.  A request the hook has seen carries a
     * context, even on public routes (all zero there). */
    int first = http_req_user(req) == NULL;
    if (first) http_set_header(req, "X-JupyterHub-Version", API_HUB_VERSION);
    const struct hub_need *need = hub_need_of(route->handler);
    if (!need) {
        /* a route in the table without an entry here: refuse, loudly */
        LOG_E("hub route without scopes", "route=\"%s\"", route->pattern);
        api_hub_error(req, 500, "internal error (see the server log)");
        return 1;
    }
    if (!need->auth) {
        if (first) {
            api_ctx_t *z = http_req_alloc(req, sizeof *z);
            memset(z, 0, sizeof *z);
            http_req_set_user(req, z);
        }
        return 0;
    }
    api_ctx_t *c = http_req_alloc(req, sizeof *c);
    int rc = api_auth_peek_any(a, req, c);
    if (rc == -EACCES) {
        api_hub_error(req, 403, "Missing or invalid credentials.");
        return 1;
    }
    if (rc) {
        /* the store, not the caller: a locked database is a 503 */
        api_hub_error(req, rc == -EBUSY ? 503 : 500, rc == -EBUSY ? "the database is busy, try again"
                                                                  : "internal error (see the server log)");
        return 1;
    }
    if (c->via_cookie && hub_unsafe_method(req)) {
        const char *sent = http_header(req, "X-CSRF-Token");
        if (!sent || !token_equal(sent, c->csrf)) {
            api_hub_error(req, 403, "'_xsrf' argument missing from POST (send X-CSRF-Token)");
            return 1;
        }
    }
    scopes_t s = SCOPES_INIT;
    api_hub_scopes(a, c, &s);
    /* into the request's arena: the context dies with the request */
    const char **v = http_req_alloc(req, (s.n + 1) * sizeof *v);
    for (size_t i = 0; i < s.n; i++) v[i] = http_req_strdup(req, s.v[i]);
    v[s.n] = NULL;
    c->scopes = v;
    c->nscopes = s.n;
    scopes_free(&s);
    http_req_set_user(req, c);
    if (!need->scopes[0]) return 0;

    const char *kind = NULL, *value = NULL;
    char server[600];
    switch (need->filter) {
    case HF_USER: kind = "user"; value = http_param(req, "name"); break;
    case HF_GROUP: kind = "group"; value = http_param(req, "name"); break;
    case HF_SERVER:
        kind = "server";
        api_hub_server_filter(http_param(req, "name"), hub_path_server(req), server, sizeof server);
        value = server;
        break;
    case HF_NONE: break;
    }
    int any_base = 0;
    for (size_t i = 0; need->scopes[i]; i++) {
        if (need->post_filter ? api_hub_has_any(c, need->scopes[i])
                              : api_hub_has(a, c, need->scopes[i], kind, value))
            return 0;
        any_base |= api_hub_has_any(c, need->scopes[i]);
    }
    LOG_I("hub api refused", "user=%s kind=%s route=\"%s\" method=%s", c->log_name,
          c->token_digest ? store_token_kind_name(c->token_kind) : "session", route->pattern,
          http_req_method(req));
    if (kind && any_base) {
        api_hub_error(req, 404, "No access to resources or resources not found");
        return 1;
    }
    buf_t msg = BUF_INIT;
    buf_printf(&msg, "Action is not authorized with current scopes; requires any of [");
    for (size_t i = 0; need->scopes[i]; i++) buf_printf(&msg, "%s%s", i ? ", " : "", need->scopes[i]);
    buf_printf(&msg, "]");
    api_hub_error(req, 403, msg.data);
    buf_free(&msg);
    return 1;
}

/* ---- small helpers --------------------------------------------------------------- */

/* JSON body (may be empty: NULL), 400 on invalid JSON.  -1 = answered. */
int api_hub_body(http_req_t *req, json_t **out)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    *out = NULL;
    size_t i = 0;
    while (i < len && body[i] && strchr(" \t\r\n", body[i])) i++;
    if (i == len) return 0;
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        api_hub_error(req, 400, "Invalid JSON in body of request");
        return -1;
    }
    *out = j;
    return 0;
}

static int hub_accepts_pagination(http_req_t *req)
{
    for (size_t k = 0;; k++) {
        const char *h = http_header_nth(req, "Accept", k);
        if (!h) return 0;
        const char *p = h;
        while (*p) {
            while (*p == ' ' || *p == ',') p++;
            size_t n = strcspn(p, ",");
            size_t m = n;
            while (m && p[m - 1] == ' ') m--;
            if (m == strlen(PAGINATION_TYPE) && strncasecmp(p, PAGINATION_TYPE, m) == 0) return 1;
            p += n;
        }
    }
}

/* offset/limit as JupyterHub reads them; -1 = answered 400. */
static int hub_pagination(http_req_t *req, int64_t *offset, int64_t *limit)
{
    int64_t def = hub_accepts_pagination(req) ? PAGE_DEFAULT : PAGE_MAX;
    const char *o = http_query(req, "offset"), *l = http_query(req, "limit");
    *offset = 0;
    *limit = def;
    if ((o && api_parse_i64(o, INT64_MIN + 1, INT64_MAX, offset) < 0) ||
        (l && api_parse_i64(l, INT64_MIN + 1, INT64_MAX, limit) < 0)) {
        api_hub_error(req, 400, "Invalid argument type, offset and limit must be integers");
        return -1;
    }
    if (*offset < 0) *offset = -*offset;
    if (*limit < 0) *limit = -*limit;
    if (*limit > PAGE_MAX) *limit = PAGE_MAX;
    if (*limit < 1) *limit = 1;
    return 0;
}

/* {items, _pagination} when asked for, else the bare list.  Takes items. */
static json_t *hub_paginated(api_t *a, http_req_t *req, json_t *items, int64_t offset,
                             int64_t limit, int64_t total)
{
    if (!hub_accepts_pagination(req)) return items;
    json_t *next = json_null();
    if (offset + limit < total) {
        buf_t u = BUF_INIT;
        const char *host = http_header(req, "Host");
        buf_printf(&u, "%s://%s%s?", a->secure_cookies ? "https" : "http", host ? host : "localhost",
                   http_req_raw_path(req));
        const char *name, *value;
        for (size_t i = 0; http_query_at(req, i, &name, &value) == 0; i++) {
            if (strcmp(name, "offset") == 0 || strcmp(name, "limit") == 0) continue;
            urlesc_append(&u, name);
            buf_printf(&u, "=");
            urlesc_append(&u, value);
            buf_printf(&u, "&");
        }
        buf_printf(&u, "offset=%lld&limit=%lld", (long long)(offset + limit), (long long)limit);
        next = json_pack("{s:I,s:I,s:s}", "offset", (json_int_t)(offset + limit), "limit",
                         (json_int_t)limit, "url", u.data);
        buf_free(&u);
    }
    return json_pack("{s:o,s:{s:I,s:I,s:I,s:o}}", "items", items, "_pagination", "offset",
                     (json_int_t)offset, "limit", (json_int_t)limit, "total", (json_int_t)total,
                     "next", next);
}

/* ---- models -------------------------------------------------------------------------- */

static json_t *hub_names_json(const store_names_t *n)
{
    json_t *l = json_array();
    for (size_t i = 0; i < n->n; i++) json_array_append_new(l, json_string(n->v[i]));
    return l;
}

json_t *api_hub_user_model(api_t *a, http_req_t *req, const api_ctx_t *c, const store_user_t *u)
{
    const char *n = u->name;
    int r_users = api_hub_has(a, c, "read:users", "user", n);
    int r_name = api_hub_has(a, c, "read:users:name", "user", n);
    int r_groups = api_hub_has(a, c, "read:users:groups", "user", n);
    int r_act = api_hub_has(a, c, "read:users:activity", "user", n);
    int r_servers = api_hub_has(a, c, "read:servers", "user", n);
    int r_roles = api_hub_has(a, c, "read:roles:users", "user", n);
    int include_stopped = 0;
    const char *is = http_query(req, "include_stopped_servers");
    if (is && strcmp(is, "0") != 0 && strcasecmp(is, "false") != 0) include_stopped = 1;

    json_t *servers = api_hub_servers_json(a, c, u->id, n, include_stopped);
    int any_server = json_object_size(servers) > 0;
    if (!(r_users || r_name || r_groups || r_act || r_servers || r_roles || any_server)) {
        json_decref(servers);
        return NULL;
    }
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string("user"));
    json_object_set_new(j, "name", json_string(n));
    if (r_users || r_name || r_roles) json_object_set_new(j, "admin", json_boolean(u->is_admin));
    if (r_users || r_roles)
        json_object_set_new(j, "roles", u->is_admin ? json_pack("[ss]", "admin", "user") : json_pack("[s]", "user"));
    if (r_users || r_groups) {
        store_names_t g;
        if (store_user_groups(a->store, u->id, &g, NULL) == 0) {
            json_object_set_new(j, "groups", hub_names_json(&g));
            store_names_free(&g);
        } else {
            json_object_set_new(j, "groups", json_array());
        }
    }
    if (r_users) {
        const char *url = NULL, *pending = NULL;
        api_hub_default_server(a, u->id, &url, &pending);
        json_object_set_new(j, "server", api_json_str(url));
        json_object_set_new(j, "pending", api_json_str(pending));
        json_object_set_new(j, "created", api_json_time(u->created_at));
    }
    if (r_users || r_act) json_object_set_new(j, "last_activity", api_json_time(api_hub_last_activity(a, u->id)));
    if (r_users || r_name) json_object_set_new(j, "user_info", json_object());
    /* nbhub keeps no authenticator state: null for whoever may read it */
    if (api_hub_has(a, c, "admin:auth_state", "user", n)) json_object_set_new(j, "auth_state", json_null());
    if (r_servers || any_server) json_object_set_new(j, "servers", servers);
    else json_decref(servers);
    return j;
}

/* The user named in the path; -1 = answered 404. */
static int hub_path_user(api_t *a, http_req_t *req, store_user_t *u)
{
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_by_name(a->store, http_param(req, "name"), u, &err);
    if (rc == 0) return 0;
    if (rc == -ENOENT) api_hub_error(req, 404, "Not Found");
    else api_hub_fail(req, rc, &err);
    return -1;
}

/* ---- root, info, self ----------------------------------------------------------- */

void api_hub_root(http_req_t *req, void *ud)
{
    (void)ud;
    const char *rest = http_param(req, "path");
    if ((rest && *rest) || http_req_method_id(req) != HTTP_GET) {
        api_hub_not_found(req, ud);
        return;
    }
    http_set_header(req, "Access-Control-Allow-Origin", "*");
    http_respond_json(req, 200, json_pack("{s:s}", "version", API_HUB_VERSION));
}

void api_hub_not_found(http_req_t *req, void *ud)
{
    (void)ud;
    api_hub_error(req, 404, "Not Found");
}

void api_hub_info(http_req_t *req, void *ud)
{
    api_t *a = ud;
    http_respond_json(req, 200,
                      json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s}}", "version", API_HUB_VERSION,
                                "python", "", "sys_executable", a->self_exe, "spawner", "class",
                                "nbhub.hub.LocalSpawner", "version", a->version, "authenticator",
                                "class", "nbhub.auth", "version", a->version));
}

void api_hub_self(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    store_user_t u;
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_by_id(a->store, c->uid, &u, &err);
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    json_t *j = api_hub_user_model(a, req, c, &u);
    store_user_clear(&u);
    if (!j) j = json_object();
    if (c->token_digest) {
        char id[32];
        snprintf(id, sizeof id, "a%lld", (long long)c->token_id);
        json_object_set_new(j, "token_id", json_string(id));
    } else {
        json_object_set_new(j, "token_id", json_null());
    }
    json_object_set_new(j, "session_id", json_null());
    json_t *l = json_array();
    for (size_t i = 0; i < c->nscopes; i++) json_array_append_new(l, json_string(c->scopes[i]));
    json_object_set_new(j, "scopes", l);
    http_respond_json(req, 200, j);
}

/* ---- users ------------------------------------------------------------------------ */

static int hub_by_name(const void *x, const void *y, void *ud)
{
    const store_users_t *l = ud;
    return strcmp(l->v[*(const size_t *)x].name, l->v[*(const size_t *)y].name);
}

void api_hub_users_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    const char *state = http_query(req, "state"), *name_filter = http_query(req, "name_filter");
    const char *sort = http_query(req, "sort");
    int want = 0;   /* 1 active, 2 ready, 3 inactive */
    if (state && *state) {
        if (strcmp(state, "active") == 0) want = 1;
        else if (strcmp(state, "ready") == 0) want = 2;
        else if (strcmp(state, "inactive") == 0) want = 3;
        else {
            char msg[160];
            snprintf(msg, sizeof msg, "Unrecognized state filter: '%.100s'", state);
            api_hub_error(req, 400, msg);
            return;
        }
    }
    int desc = sort && sort[0] == '-';
    if (desc) sort++;
    if (sort && strcmp(sort, "id") != 0 && strcmp(sort, "name") != 0) {
        api_hub_error(req, 400, "sort must be 'id' or 'name' here (last_activity is not supported)");
        return;
    }
    int64_t offset, limit;
    if (hub_pagination(req, &offset, &limit) < 0) return;
    store_users_t l;
    nb_err_t err;
    err_clear(&err);
    int rc = store_users_list(a->store, &l, &err);
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    /* The filters first (what list:users covers, the state, the name),
     * then the page: total counts what the filters let through. */
    int by_name = sort && strcmp(sort, "name") == 0;
    size_t *order = xcalloc(l.n + 1, sizeof *order);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        const store_user_t *u = &l.v[i];
        if (!api_hub_has(a, c, "list:users", "user", u->name)) continue;
        if (name_filter && *name_filter && !strcasestr(u->name, name_filter)) continue;
        if (want == 1 && !api_hub_user_active(a, u->id, 0)) continue;
        if (want == 2 && !api_hub_user_active(a, u->id, 1)) continue;
        if (want == 3 && api_hub_user_active(a, u->id, 0)) continue;
        order[n++] = i;
    }
    if (by_name) qsort_r(order, n, sizeof *order, hub_by_name, &l);
    for (size_t i = 0; desc && i < n / 2; i++) {
        size_t t = order[i];
        order[i] = order[n - 1 - i];
        order[n - 1 - i] = t;
    }
    json_t *items = json_array();
    for (int64_t i = offset; i < (int64_t)n && i < offset + limit; i++) {
        json_t *m = api_hub_user_model(a, req, c, &l.v[order[i]]);
        if (m) json_array_append_new(items, m);
    }
    free(order);
    store_users_free(&l);
    http_respond_json(req, 200, hub_paginated(a, req, items, offset, limit, (int64_t)n));
}

/* Create one user (no password: they log in by token or SSO until an admin
 * sets one); -EEXIST if taken.  The model goes into *out. */
static int hub_user_add(api_t *a, http_req_t *req, const char *name, int admin, json_t **out,
                        nb_err_t *err)
{
    if (!api_users_name_valid(name)) return err_set(err, -EINVAL, "Invalid username: %.100s", name);
    int64_t id;
    int rc = store_user_add(a->store, name, NULL, admin, time_now_us(), &id, err);
    if (rc) return rc;
    LOG_I("user created", "user=%s admin=%d by=%s via=hub_api", api_log_name(req, name), admin,
          api_ctx(req)->log_name);
    store_user_t u;
    if ((rc = store_user_by_id(a->store, id, &u, err))) return rc;
    *out = api_hub_user_model(a, req, api_ctx(req), &u);
    if (!*out) *out = json_pack("{s:s,s:s}", "kind", "user", "name", name);
    store_user_clear(&u);
    return 0;
}

/* {"admin": bool} and nothing else JupyterHub would accept here but nbhub
 * does not keep (roles, groups, auth_state are refused by name). */
static int hub_user_body(http_req_t *req, json_t *body, int *admin)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "admin") == 0) {
            if (!json_is_boolean(v)) {
                api_hub_error(req, 400, "user.admin must be <class 'bool'>");
                return -1;
            }
            *admin = json_is_true(v);
        } else if (strcmp(key, "usernames") == 0 || strcmp(key, "name") == 0) {
            continue;
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "Invalid JSON keys: '%.80s' (nbhub keeps name and admin)", key);
            api_hub_error(req, 400, msg);
            return -1;
        }
    }
    if (*admin && !api_ctx(req)->admin) {
        api_hub_error(req, 403, "Only admins can grant admin permissions");
        return -1;
    }
    return 0;
}

void api_hub_users_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    json_t *names = json_object_get(body, "usernames");
    if (!json_is_object(body) || !json_is_array(names) || json_array_size(names) == 0) {
        json_decref(body);
        api_hub_error(req, 400, "Must specify at least one user to create");
        return;
    }
    int admin = 0;
    if (hub_user_body(req, body, &admin) < 0) {
        json_decref(body);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        if (!json_is_string(v) || !api_users_name_valid(json_string_value(v))) {
            json_decref(body);
            api_hub_error(req, 400, "Invalid username");
            return;
        }
    }
    json_t *created = json_array();
    nb_err_t err;
    json_array_foreach(names, i, v) {
        json_t *m = NULL;
        err_clear(&err);
        int rc = hub_user_add(a, req, json_string_value(v), admin, &m, &err);
        if (rc == -EEXIST) continue;   /* JupyterHub logs and skips existing users */
        if (rc) {
            json_decref(created);
            json_decref(body);
            api_hub_fail(req, rc, &err);
            return;
        }
        json_array_append_new(created, m);
    }
    if (json_array_size(created) == 0) {
        char msg[80];
        snprintf(msg, sizeof msg, "All %zu users already exist", json_array_size(names));
        json_decref(created);
        json_decref(body);
        api_hub_error(req, 409, msg);
        return;
    }
    json_decref(body);
    http_respond_json(req, 201, created);
}

void api_hub_user_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) return;
    json_t *m = api_hub_user_model(a, req, api_ctx(req), &u);
    store_user_clear(&u);
    if (!m) {
        api_hub_error(req, 404, "Not Found");
        return;
    }
    http_respond_json(req, 200, m);
}

void api_hub_user_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (body && !json_is_object(body)) {
        json_decref(body);
        api_hub_error(req, 400, "Invalid JSON data");
        return;
    }
    int admin = 0;
    if (body && hub_user_body(req, body, &admin) < 0) {
        json_decref(body);
        return;
    }
    json_decref(body);
    const char *name = http_param(req, "name");
    json_t *m = NULL;
    nb_err_t err;
    err_clear(&err);
    int rc = hub_user_add(a, req, name, admin, &m, &err);
    if (rc == -EEXIST) {
        char msg[160];
        snprintf(msg, sizeof msg, "User %.100s already exists", name);
        api_hub_error(req, 409, msg);
        return;
    }
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, 201, m);
}

void api_hub_user_patch(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (!json_is_object(body)) {
        json_decref(body);
        api_hub_error(req, 400, "Invalid JSON data");
        return;
    }
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) {
        json_decref(body);
        return;
    }
    json_t *jname = json_object_get(body, "name");
    if (jname && (!json_is_string(jname) || strcmp(json_string_value(jname), u.name) != 0)) {
        json_decref(body);
        store_user_clear(&u);
        api_hub_error(req, 400, "Renaming users is not supported by nbhub (flows, workspaces "
                                "and accounts are named after them)");
        return;
    }
    int admin = u.is_admin;
    if (hub_user_body(req, body, &admin) < 0) {
        json_decref(body);
        store_user_clear(&u);
        return;
    }
    json_decref(body);
    if (!c->admin && u.is_admin) {
        store_user_clear(&u);
        api_hub_error(req, 403, "Only admins can modify other admins");
        return;
    }
    nb_err_t err;
    err_clear(&err);
    int rc = 0;
    if (admin != u.is_admin) {
        if (u.id == c->uid && !admin) {
            store_user_clear(&u);
            api_hub_error(req, 400, "Cannot remove your own admin rights");
            return;
        }
        rc = store_user_set_admin(a->store, u.id, admin, &err);
        if (rc == 0) {
            LOG_I("user admin changed", "user=%s admin=%d by=%s via=hub_api", api_log_name(req, u.name),
                  admin, c->log_name);
            u.is_admin = admin;
        }
    }
    if (rc) {
        store_user_clear(&u);
        api_hub_fail(req, rc, &err);
        return;
    }
    json_t *m = api_hub_user_model(a, req, c, &u);
    store_user_clear(&u);
    http_respond_json(req, 200, m ? m : json_object());
}

void api_hub_user_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) return;
    if (u.id == c->uid) {
        store_user_clear(&u);
        api_hub_error(req, 400, "Cannot delete yourself!");
        return;
    }
    if (api_hub_user_has_servers(a, u.id)) {
        /* JupyterHub stops the servers and waits; nbhub's stops are
         * asynchronous: stop them all (named ones are removed once
         * stopped) and ask the caller to come back.  A default server is
         * never removed, and the hub keeps every server it knows in
         * memory: deleting its row under it would leave the hub pointing
         * at a row that is gone, so such a user cannot be deleted yet. */
        api_hub_user_stop_all(a, u.id);
        if (api_hub_user_has_servers(a, u.id)) {
            char msg[300];
            if (api_hub_user_active(a, u.id, 0))
                snprintf(msg, sizeof msg, "%.100s's server is in the process of stopping, please wait.",
                         u.name);
            else
                snprintf(msg, sizeof msg, "%.100s has a notebook server (a stopped default server is "
                                          "kept): nbhub cannot delete this user", u.name);
            store_user_clear(&u);
            api_hub_error(req, 400, msg);
            return;
        }
    }
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_delete(a->store, u.id, &err);
    if (rc == 0)
        LOG_I("user deleted", "user=%s by=%s via=hub_api", api_log_name(req, u.name), c->log_name);
    store_user_clear(&u);
    if (rc == -EBUSY) {
        api_hub_error(req, 400, err.msg);
        return;
    }
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    http_respond(req, 204, "text/plain", "", 0);
}

/* ---- tokens ------------------------------------------------------------------------- */

static json_t *hub_token_model(api_t *a, const store_user_t *owner, const store_token_t *t)
{
    /* the scopes the token has today: computed as for a request with it */
    api_ctx_t c;
    memset(&c, 0, sizeof c);
    c.uid = owner->id;
    c.name = owner->name;
    c.admin = owner->is_admin;
    c.token_digest = "-";
    c.token_kind = t->kind;
    c.token_scopes = t->scopes;
    c.token_server = t->server_name;
    c.token_server_owner = t->server_owner;
    c.token_server_id = t->server_id;
    scopes_t s = SCOPES_INIT;
    api_hub_scopes(a, &c, &s);
    char id[32];
    snprintf(id, sizeof id, "a%lld", (long long)t->id);
    const char *client = "jupyterhub";
    char *cid = NULL;
    if (t->kind != STORE_TOKEN_API && t->server_id) cid = api_hub_oauth_client_of(a, t->server_id);
    if (cid) client = cid;
    json_t *j = json_pack("{s:s,s:s,s:s,s:[],s:o,s:o,s:o,s:o,s:s,s:n,s:s}", "user", owner->name, "id",
                          id, "kind", "api_token", "roles", "scopes", scopes_to_json(&s), "created",
                          api_json_time(t->created_at), "last_activity",
                          api_json_time(t->last_used_at), "expires_at", api_json_time(t->expires_at),
                          "note", t->name ? t->name : "", "session_id", "oauth_client", client);
    free(cid);
    scopes_free(&s);
    return j;
}

void api_hub_tokens_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) return;
    store_tokens_t l;
    nb_err_t err;
    err_clear(&err);
    int rc = store_tokens_list(a->store, u.id, &l, &err);
    if (rc) {
        store_user_clear(&u);
        api_hub_fail(req, rc, &err);
        return;
    }
    int64_t now = time_now_us();
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++)
        if (!l.v[i].expires_at || l.v[i].expires_at > now)
            json_array_append_new(arr, hub_token_model(a, &u, &l.v[i]));
    store_tokens_free(&l);
    store_user_clear(&u);
    http_respond_json(req, 200, json_pack("{s:o}", "api_tokens", arr));
}

/* "a123" -> 123; -1 if not a token id of ours. */
static int64_t hub_token_id(const char *s)
{
    int64_t id;
    if (!s || s[0] != 'a' || api_parse_i64(s + 1, 1, INT64_MAX, &id) < 0) return -1;
    return id;
}

void api_hub_token_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) return;
    int64_t id = hub_token_id(http_param(req, "id"));
    store_token_t t;
    if (id < 0 || store_token_by_id(a->store, id, u.id, &t, NULL) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "No such token %.40s for user %.100s", http_param(req, "id"), u.name);
        store_user_clear(&u);
        api_hub_error(req, 404, msg);
        return;
    }
    json_t *j = hub_token_model(a, &u, &t);
    store_token_clear(&t);
    store_user_clear(&u);
    http_respond_json(req, 200, j);
}

void api_hub_token_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) return;
    int64_t id = hub_token_id(http_param(req, "id"));
    if (id < 0 || store_token_revoke(a->store, id, u.id, NULL) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "No such token %.40s for user %.100s", http_param(req, "id"), u.name);
        store_user_clear(&u);
        api_hub_error(req, 404, msg);
        return;
    }
    LOG_I("token revoked", "user=%s token_id=%lld by=%s via=hub_api", api_log_name(req, u.name),
          (long long)id, api_ctx(req)->log_name);
    store_user_clear(&u);
    http_respond(req, 204, "text/plain", "", 0);
}

void api_hub_token_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (body && !json_is_object(body)) {
        json_decref(body);
        api_hub_error(req, 400, "Body must be a JSON dict or empty");
        return;
    }
    if (!body) body = json_object();
    json_t *jnote = json_object_get(body, "note"), *jscopes = json_object_get(body, "scopes");
    json_t *jroles = json_object_get(body, "roles"), *jexp = json_object_get(body, "expires_in");
    nb_err_t err;
    err_clear(&err);
    scopes_t raw = SCOPES_INIT;
    if (jroles && !json_is_null(jroles)) {
        json_decref(body);
        api_hub_error(req, 400, "token roles are not supported by nbhub: give scopes");
        return;
    }
    if (scopes_from_json(jscopes, &raw, &err) < 0) {
        json_decref(body);
        api_hub_error(req, 400, err.msg);
        return;
    }
    if (jexp && !json_is_null(jexp) &&
        (!json_is_integer(jexp) || json_integer_value(jexp) < 1 ||
         json_integer_value(jexp) > HUB_TOKEN_MAX_EXPIRES_IN)) {
        scopes_free(&raw);
        json_decref(body);
        api_hub_error(req, 400, "token expires_in must be null or integer (seconds, at most 10 years)");
        return;
    }
    if (jnote && !json_is_null(jnote) &&
        (!json_is_string(jnote) || strlen(json_string_value(jnote)) > 200)) {
        scopes_free(&raw);
        json_decref(body);
        api_hub_error(req, 400, "token note must be a string of at most 200 bytes");
        return;
    }
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) {
        scopes_free(&raw);
        json_decref(body);
        return;
    }
    int inherit = raw.n == 0 || scopes_contains(&raw, "inherit");
    /* A token never holds more than its owner (JupyterHub's rule), nor
     * more than the credential that creates it (nbhub's: a token limited
     * by scopes cannot mint itself a bigger one, e.g. "inherit"). */
    int requester_full = api_auth_full(c);
    if (inherit && !requester_full) {
        scopes_free(&raw);
        store_user_clear(&u);
        json_decref(body);
        api_hub_error(req, 403, "A token limited by scopes may only create tokens with explicit "
                                "scopes it holds itself");
        return;
    }
    char *scopes_json = NULL;
    if (!inherit) {
        scopes_t want = SCOPES_INIT, owner = SCOPES_INIT, in = SCOPES_INIT;
        scopes_expand((const char *const *)raw.v, raw.n, u.name, NULL, &want);
        hub_user_rights(a, u.name, u.is_admin, &owner);
        scopes_intersect(&want, &owner, hub_in_group, a, &in);
        int ok = in.n == want.n;
        if (ok && !requester_full)
            for (size_t i = 0; ok && i < want.n; i++) {
                scopes_t one = SCOPES_INIT, r = SCOPES_INIT;
                scopes_t mine = hub_view(c);
                scopes_add(&one, want.v[i]);
                scopes_intersect(&one, &mine, hub_in_group, a, &r);
                ok = r.n == 1 && strcmp(r.v[0], want.v[i]) == 0;
                scopes_free(&one);
                scopes_free(&r);
            }
        buf_t excess = BUF_INIT;
        for (size_t i = 0; i < want.n; i++)
            if (!scopes_contains(&in, want.v[i])) buf_printf(&excess, "%s%s", excess.len ? "," : "", want.v[i]);
        scopes_free(&want);
        scopes_free(&owner);
        scopes_free(&in);
        if (!ok) {
            char msg[600];
            snprintf(msg, sizeof msg, "Not assigning requested scopes %.400s not held by User %.100s%s",
                     excess.len ? excess.data : "(beyond the requesting token)", u.name, "");
            buf_free(&excess);
            scopes_free(&raw);
            store_user_clear(&u);
            json_decref(body);
            api_hub_error(req, 400, msg);
            return;
        }
        buf_free(&excess);
        json_t *l = scopes_to_json(&raw);
        scopes_json = json_dumps(l, JSON_COMPACT);
        json_decref(l);
    }
    scopes_free(&raw);
    char note[260];
    if (json_is_string(jnote) && *json_string_value(jnote))
        snprintf(note, sizeof note, "%s", json_string_value(jnote));
    else if (u.id != c->uid)
        snprintf(note, sizeof note, "Requested via api by user %.100s", c->name);
    else
        snprintf(note, sizeof note, "Requested via api");
    char tok[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    if (token_new(TOKEN_API, tok) < 0) {
        free(scopes_json);
        store_user_clear(&u);
        json_decref(body);
        api_hub_fail(req, -EIO, NULL);
        return;
    }
    token_digest(tok, digest);
    int64_t now = time_now_us();
    int64_t expires = json_is_integer(jexp) ? now + json_integer_value(jexp) * 1000000 : 0;
    int64_t id;
    /* Minted with the provider's access token: it follows that provider
     * session, as /api/v1's (api_oidc.c). */
    int rc = c->idp_sid ? store_token_add_idp(a->store, u.id, note, digest, scopes_json, c->idp_sid, now,
                                              expires, &id, &err)
                        : store_token_add_scoped(a->store, u.id, note, digest, STORE_TOKEN_API, scopes_json, 0,
                                                 now, expires, &id, &err);
    free(scopes_json);
    json_decref(body);
    if (rc) {
        store_user_clear(&u);
        api_hub_fail(req, rc, &err);
        return;
    }
    LOG_I("token created", "user=%s token_id=%lld by=%s via=hub_api", api_log_name(req, u.name),
          (long long)id, c->log_name);
    store_token_t t;
    json_t *j = NULL;
    if (store_token_by_id(a->store, id, u.id, &t, &err) == 0) {
        j = hub_token_model(a, &u, &t);
        store_token_clear(&t);
    }
    store_user_clear(&u);
    if (!j) {
        api_hub_error(req, 500, "Failed to create token");
        return;
    }
    json_object_set_new(j, "token", json_string(tok));
    memset(tok, 0, sizeof tok);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 201, j);
}

/* ---- activity ---------------------------------------------------------------------- */

/* Parse a JupyterHub timestamp; reject more than 59 minutes ahead. */
static int hub_activity_time(http_req_t *req, json_t *v, int64_t *us)
{
    char msg[200];
    if (!json_is_string(v) || api_json_parse_time(json_string_value(v), NULL, us, NULL) < 0) {
        snprintf(msg, sizeof msg, "Not a valid timestamp: %.100s", json_is_string(v) ? json_string_value(v) : "?");
        api_hub_error(req, 400, msg);
        return -1;
    }
    if (*us - time_now_us() > 59LL * 60 * 1000000) {
        api_hub_error(req, 400, "Rejecting activity from more than an hour in the future");
        return -1;
    }
    return 0;
}

void api_hub_activity(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (!json_is_object(body)) {
        json_decref(body);
        api_hub_error(req, 400, "body must be a json dict");
        return;
    }
    store_user_t u;
    if (hub_path_user(a, req, &u) < 0) {
        json_decref(body);
        return;
    }
    json_t *jlast = json_object_get(body, "last_activity"), *servers = json_object_get(body, "servers");
    int64_t ts;
    if (!jlast && !servers) {
        api_hub_error(req, 400, "body must contain at least one of `last_activity` or `servers`");
        goto out;
    }
    if (jlast && hub_activity_time(req, jlast, &ts) < 0) goto out;
    if (servers) {
        const char *msg = "servers must be a dict of the form {server_name: {last_activity: timestamp}}";
        if (!json_is_object(servers)) {
            api_hub_error(req, 400, msg);
            goto out;
        }
        const char *name;
        json_t *v;
        /* validate every entry before recording any */
        json_object_foreach(servers, name, v) {
            if (!api_hub_server_exists(a, u.name, name)) {
                char m[300];
                snprintf(m, sizeof m, "No such server '%.100s' for user %.100s", name, u.name);
                api_hub_error(req, 400, m);
                goto out;
            }
            if (!json_is_object(v) || !json_object_get(v, "last_activity")) {
                api_hub_error(req, 400, msg);
                goto out;
            }
            if (hub_activity_time(req, json_object_get(v, "last_activity"), &ts) < 0) goto out;
        }
        json_object_foreach(servers, name, v) {
            hub_activity_time(req, json_object_get(v, "last_activity"), &ts);
            api_hub_server_activity(a, u.name, name, ts);
        }
    }
    http_respond(req, 200, "application/json", "", 0);
out:
    store_user_clear(&u);
    json_decref(body);
}

/* ---- groups ------------------------------------------------------------------------- */

static json_t *hub_group_model(api_t *a, const api_ctx_t *c, const store_group_t *g)
{
    int rg = api_hub_has(a, c, "read:groups", "group", g->name);
    int rn = api_hub_has(a, c, "read:groups:name", "group", g->name);
    int rr = api_hub_has(a, c, "read:roles:groups", "group", g->name);
    if (!rg && !rn && !rr) return NULL;
    json_t *j = json_pack("{s:s,s:s}", "kind", "group", "name", g->name);
    if (rr) json_object_set_new(j, "roles", json_array());
    if (rg) {
        store_names_t m;
        if (store_group_members(a->store, g->id, &m, NULL) == 0) {
            json_object_set_new(j, "users", hub_names_json(&m));
            store_names_free(&m);
        } else {
            json_object_set_new(j, "users", json_array());
        }
        json_t *p = g->properties ? json_loads(g->properties, 0, NULL) : NULL;
        json_object_set_new(j, "properties", p ? p : json_object());
    }
    return j;
}

static int hub_path_group(api_t *a, http_req_t *req, store_group_t *g)
{
    nb_err_t err;
    err_clear(&err);
    int rc = store_group_get(a->store, http_param(req, "name"), g, &err);
    if (rc == 0) return 0;
    api_hub_fail(req, rc, &err);
    return -1;
}

/* Resolve a list of user names to ids (400 for an unknown name). */
static int hub_user_ids(api_t *a, http_req_t *req, json_t *users, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!users) return 0;
    if (!json_is_array(users)) {
        api_hub_error(req, 400, "group.users must be <class 'list'>");
        return -1;
    }
    *ids = xcalloc(json_array_size(users) + 1, sizeof **ids);
    size_t i;
    json_t *v;
    json_array_foreach(users, i, v) {
        store_user_t u;
        if (!json_is_string(v) || store_user_by_name(a->store, json_string_value(v), &u, NULL) != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "No such user: %.100s", json_is_string(v) ? json_string_value(v) : "?");
            free(*ids);
            *ids = NULL;
            api_hub_error(req, 400, msg);
            return -1;
        }
        (*ids)[(*n)++] = u.id;
        store_user_clear(&u);
    }
    return 0;
}

/* Only "users" (and for create "groups") in a group body: nbhub keeps no
 * group roles. */
static int hub_group_body_ok(http_req_t *req, json_t *body, int allow_groups)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "users") == 0 || (allow_groups && strcmp(key, "groups") == 0)) continue;
        char msg[200];
        snprintf(msg, sizeof msg, "Invalid JSON keys: '%.80s'", key);
        api_hub_error(req, 400, msg);
        return -1;
    }
    return 0;
}

static int hub_group_create1(api_t *a, http_req_t *req, const char *name, const int64_t *ids,
                             size_t n, store_group_t *out)
{
    nb_err_t err;
    err_clear(&err);
    if (!api_users_name_valid(name)) {
        api_hub_error(req, 400, "Invalid group name");
        return -1;
    }
    int64_t gid;
    int rc = store_group_add(a->store, name, NULL, time_now_us(), &gid, &err);
    for (size_t i = 0; rc == 0 && i < n; i++) rc = store_group_member_add(a->store, gid, ids[i], &err);
    if (rc == 0) rc = store_group_get(a->store, name, out, &err);
    if (rc) {
        api_hub_fail(req, rc, &err);
        return -1;
    }
    LOG_I("group created", "group=%s users=%zu by=%s", api_log_name(req, name), n, api_ctx(req)->log_name);
    return 0;
}

void api_hub_groups_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    int64_t offset, limit;
    if (hub_pagination(req, &offset, &limit) < 0) return;
    store_groups_t l;
    nb_err_t err;
    err_clear(&err);
    int rc = store_groups_list(a->store, 0, 0, &l, NULL, &err);
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    json_t *items = json_array();
    int64_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (!api_hub_has(a, c, "list:groups", "group", l.v[i].name)) continue;
        if (n >= offset && n < offset + limit) {
            json_t *m = hub_group_model(a, c, &l.v[i]);
            if (!m) m = json_pack("{s:s,s:s}", "kind", "group", "name", l.v[i].name);
            json_array_append_new(items, m);
        }
        n++;
    }
    store_groups_free(&l);
    http_respond_json(req, 200, hub_paginated(a, req, items, offset, limit, n));
}

void api_hub_groups_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    json_t *names = json_object_get(body, "groups");
    if (!json_is_object(body) || !json_is_array(names) || json_array_size(names) == 0) {
        json_decref(body);
        api_hub_error(req, 400, "Must specify at least one group to create");
        return;
    }
    int64_t *ids;
    size_t n;
    if (hub_group_body_ok(req, body, 1) < 0 || hub_user_ids(a, req, json_object_get(body, "users"), &ids, &n) < 0) {
        json_decref(body);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        store_group_t g;
        if (json_is_string(v) && store_group_get(a->store, json_string_value(v), &g, NULL) == 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "Group %.100s already exists", g.name);
            store_group_clear(&g);
            free(ids);
            json_decref(body);
            api_hub_error(req, 409, msg);
            return;
        }
    }
    json_t *created = json_array();
    json_array_foreach(names, i, v) {
        store_group_t g;
        if (!json_is_string(v) || hub_group_create1(a, req, json_string_value(v), ids, n, &g) < 0) {
            if (!json_is_string(v)) api_hub_error(req, 400, "group names must be str");
            json_decref(created);
            free(ids);
            json_decref(body);
            return;
        }
        json_array_append_new(created, hub_group_model(a, api_ctx(req), &g));
        store_group_clear(&g);
    }
    free(ids);
    json_decref(body);
    http_respond_json(req, 201, created);
}

void api_hub_group_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_group_t g;
    if (hub_path_group(a, req, &g) < 0) return;
    json_t *m = hub_group_model(a, api_ctx(req), &g);
    store_group_clear(&g);
    http_respond_json(req, 200, m ? m : json_object());
}

void api_hub_group_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (body && (!json_is_object(body) || hub_group_body_ok(req, body, 0) < 0)) {
        if (!json_is_object(body)) api_hub_error(req, 400, "Invalid JSON data");
        json_decref(body);
        return;
    }
    const char *name = http_param(req, "name");
    store_group_t g;
    if (store_group_get(a->store, name, &g, NULL) == 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "Group %.100s already exists", g.name);
        store_group_clear(&g);
        json_decref(body);
        api_hub_error(req, 409, msg);
        return;
    }
    int64_t *ids;
    size_t n;
    if (hub_user_ids(a, req, json_object_get(body, "users"), &ids, &n) < 0) {
        json_decref(body);
        return;
    }
    json_decref(body);
    int rc = hub_group_create1(a, req, name, ids, n, &g);
    free(ids);
    if (rc < 0) return;
    json_t *m = hub_group_model(a, api_ctx(req), &g);
    store_group_clear(&g);
    http_respond_json(req, 201, m ? m : json_object());
}

void api_hub_group_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    nb_err_t err;
    err_clear(&err);
    int rc = store_group_delete(a->store, http_param(req, "name"), &err);
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    LOG_I("group deleted", "group=%s by=%s", api_log_name(req, http_param(req, "name")),
          api_ctx(req)->log_name);
    http_respond(req, 204, "text/plain", "", 0);
}

static void hub_group_users(http_req_t *req, api_t *a, int add)
{
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (!json_is_object(body) || hub_group_body_ok(req, body, 0) < 0) {
        if (!json_is_object(body)) api_hub_error(req, 400, "Invalid JSON data");
        json_decref(body);
        return;
    }
    if (!json_object_get(body, "users")) {
        json_decref(body);
        api_hub_error(req, 400, add ? "Must specify users to add" : "Must specify users to delete");
        return;
    }
    store_group_t g;
    if (hub_path_group(a, req, &g) < 0) {
        json_decref(body);
        return;
    }
    int64_t *ids;
    size_t n;
    if (hub_user_ids(a, req, json_object_get(body, "users"), &ids, &n) < 0) {
        store_group_clear(&g);
        json_decref(body);
        return;
    }
    json_decref(body);
    nb_err_t err;
    err_clear(&err);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = add ? store_group_member_add(a->store, g.id, ids[i], &err)
                 : store_group_member_remove(a->store, g.id, ids[i], &err);
    free(ids);
    if (rc) {
        store_group_clear(&g);
        api_hub_fail(req, rc, &err);
        return;
    }
    LOG_I(add ? "group members added" : "group members removed", "group=%s users=%zu by=%s",
          api_log_name(req, g.name), n, api_ctx(req)->log_name);
    json_t *m = hub_group_model(a, api_ctx(req), &g);
    store_group_clear(&g);
    http_respond_json(req, 200, m ? m : json_object());
}

void api_hub_group_users_add(http_req_t *req, void *ud) { hub_group_users(req, ud, 1); }
void api_hub_group_users_remove(http_req_t *req, void *ud) { hub_group_users(req, ud, 0); }

void api_hub_group_properties(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    if (!json_is_object(body)) {
        json_decref(body);
        api_hub_error(req, 400, "Must specify properties");
        return;
    }
    store_group_t g;
    if (hub_path_group(a, req, &g) < 0) {
        json_decref(body);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    nb_err_t err;
    err_clear(&err);
    int rc = store_group_set_properties(a->store, g.id, text, &err);
    free(text);
    if (rc) {
        store_group_clear(&g);
        api_hub_fail(req, rc, &err);
        return;
    }
    store_group_clear(&g);
    if (hub_path_group(a, req, &g) < 0) return;
    json_t *m = hub_group_model(a, api_ctx(req), &g);
    store_group_clear(&g);
    http_respond_json(req, 200, m ? m : json_object());
}
