/*
 * api — the route table of nbhub's REST API and the helpers its handlers
 * share.
 *
 * Why a table.  Every endpoint of docs/api.md is one line below: method,
 * pattern, handler, and the flags that say who may call it.  The flags are
 * enforced in one place (api_auth_before, the router's before hook), so a
 * handler never forgets a check and a reviewer reads the whole policy in
 * one screen.  The unit test walks this same table to build its
 * authorization matrix, and checks that the OpenAPI document lists exactly
 * these routes: adding a route without deciding its flags, its test and
 * its documentation does not go unnoticed.
 *
 * The order matters only where patterns overlap: the router takes the first
 * match in table order.  None of ours overlap except by method.
 *
 * Errors.  Store and scheduler functions return a negative errno and a
 * message; api_fail maps them to the statuses of the contract in one
 * place.  An unexpected code is a 500 whose details go to the log, not to
 * the client (they may carry SQLite text or paths).
 */
#include "api/api_int.h"
#include "auth/lockout.h"
#include "livy/livy_batch.h"
#include "spark/sowned.h"
#include "auth/oauth.h"
#include "auth/oidc.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const struct http_route api_routes[] = {
    /* session and server */
    { "GET",    "/",                                     api_ui_index,            API_PUBLIC },
    { "GET",    "/ui/:file",                             api_ui_asset,            API_PUBLIC },
    /* the UI's pages (its router's paths): the same page, the first view
     * of some written in by the server (api_ssr.c) */
    { "GET",    "/login",                                api_ui_index,            API_PUBLIC },
    { "GET",    "/flows",                                api_ui_index,            API_PUBLIC },
    { "GET",    "/flows/:name",                          api_ui_index,            API_PUBLIC },
    { "GET",    "/runs",                                 api_ui_index,            API_PUBLIC },
    { "GET",    "/runs/:id",                             api_ui_index,            API_PUBLIC },
    { "GET",    "/runs/:id/tasks/:task/output",          api_ui_index,            API_PUBLIC },
    { "GET",    "/admin/users",                          api_ui_index,            API_PUBLIC },
    { "GET",    "/server",                               api_ui_index,            API_PUBLIC },
    { "GET",    "/admin/servers",                        api_ui_index,            API_PUBLIC },
    { "GET",    "/healthz",                              api_metrics_healthz,     API_PUBLIC },
    { "GET",    "/metrics",                              api_metrics_get,         API_ADMIN },
    { "GET",    "/api/v1/openapi.json",                  api_openapi_get,         API_PUBLIC },
    /* single sign-on (api_oidc.c, docs/sso.md): the browser's steps and
     * the provider's back-channel, outside /api/v1 */
    { "GET",    "/auth/oidc/config",                     api_oidc_config,         API_PUBLIC },
    { "GET",    "/auth/oidc/login",                      api_oidc_login,          API_PUBLIC },
    { "GET",    "/auth/oidc/callback",                   api_oidc_callback,       API_PUBLIC },
    { "POST",   "/auth/oidc/backchannel-logout",         api_oidc_backchannel,    API_PUBLIC },
    { "POST",   "/api/v1/login",                         api_auth_login,          API_PUBLIC },
    { "POST",   "/api/v1/logout",                        api_auth_logout,         API_AUTH },
    { "GET",    "/api/v1/me",                            api_auth_me,             API_AUTH },
    { "GET",    "/api/v1/info",                          api_metrics_info,        API_AUTH },
    { "GET",    "/api/v1/events",                        api_events_get,          API_AUTH },
    /* users and tokens */
    { "GET",    "/api/v1/users",                         api_users_list,          API_ADMIN },
    { "POST",   "/api/v1/users",                         api_users_create,        API_ADMIN },
    { "PUT",    "/api/v1/users/:name/password",          api_users_password,      API_SELF },
    { "PUT",    "/api/v1/users/:name/trusted",           api_users_trusted,       API_ADMIN },
    { "GET",    "/api/v1/users/:name/tokens",            api_users_tokens_list,   API_SELF },
    { "POST",   "/api/v1/users/:name/tokens",            api_users_token_create,  API_SELF },
    { "DELETE", "/api/v1/users/:name/tokens/:id",        api_users_token_delete,  API_SELF },
    /* flows */
    { "GET",    "/api/v1/flows",                         api_flows_list,          API_AUTH },
    { "POST",   "/api/v1/flows",                         api_flows_apply,         API_AUTH },
    { "GET",    "/api/v1/flows/:name",                   api_flows_get,           API_FLOW },
    { "DELETE", "/api/v1/flows/:name",                   api_flows_delete,        API_FLOW },
    { "POST",   "/api/v1/flows/:name/pause",             api_flows_pause,         API_FLOW },
    { "POST",   "/api/v1/flows/:name/resume",            api_flows_resume,        API_FLOW },
    { "POST",   "/api/v1/flows/:name/runs",              api_flows_trigger,       API_FLOW },
    { "POST",   "/api/v1/flows/:name/backfill",          api_flows_backfill,      API_FLOW },
    { "GET",    "/api/v1/flows/:name/runs",              api_flows_runs,          API_FLOW },
    { "GET",    "/api/v1/flows/:name/parameters",        api_flows_parameters,    API_FLOW },
    { "GET",    "/api/v1/flows/:name/files",             api_flows_files,         API_FLOW },
    /* runs and tasks */
    { "GET",    "/api/v1/runs",                          api_runs_list,           API_AUTH },
    { "GET",    "/api/v1/runs/:id",                      api_runs_get,            API_RUN },
    { "POST",   "/api/v1/runs/:id/cancel",               api_runs_cancel,         API_RUN },
    { "POST",   "/api/v1/runs/:id/tasks/:task/cancel",   api_runs_task_cancel,    API_RUN },
    { "DELETE", "/api/v1/runs/:id/tasks/:task/kernel",   api_runs_task_kernel_end, API_RUN },
    { "GET",    "/api/v1/runs/:id/tasks/:task/log",      api_runs_task_log,       API_RUN },
    { "GET",    "/api/v1/runs/:id/tasks/:task/output",   api_runs_task_output,    API_RUN },
    { "GET",    "/api/v1/runs/:id/tasks/:task/output.html", api_runs_task_output_html, API_RUN },
    { "GET",    "/api/v1/runs/:id/tasks/:task/spark",    api_runs_task_spark,     API_RUN },
    { "GET",    "/api/v1/spark/clusters",                api_spark_list,          API_AUTH },
    { "POST",   "/api/v1/spark/clusters",                api_spark_create,        API_AUTH },
    { "GET",    "/api/v1/spark/clusters/:name",          api_spark_get,           API_CLUSTER },
    { "DELETE", "/api/v1/spark/clusters/:name",          api_spark_delete,        API_CLUSTER },
    /* the cluster's Spark UIs (a reverse proxy: api_sparkui.c) */
    { "GET",    "/spark/:name/ui",                       api_sparkui_get,         API_CLUSTER },
    { "GET",    "/spark/:name/ui/" "*path",              api_sparkui_get,         API_CLUSTER },
    /* a user's cluster: /spark/~OWNER/NAME/ui/ (the path is read whole:
     * api_sparkui_resolve) */
    { "GET",    "/spark/:owner/:name/ui",                api_sparkui_get,         API_CLUSTER },
    { "GET",    "/spark/:owner/:name/ui/" "*path",       api_sparkui_get,         API_CLUSTER },
    /* notebook servers (the hub: api_servers.c); "default" names the
     * default server in paths */
    { "GET",    "/api/v1/profiles",                      api_servers_profiles,    API_AUTH },
    { "GET",    "/api/v1/servers",                       api_servers_list,        API_AUTH },
    { "POST",   "/api/v1/servers",                       api_servers_start,       API_AUTH },
    { "GET",    "/api/v1/servers/:owner/:server",        api_servers_get,         API_AUTH },
    { "DELETE", "/api/v1/servers/:owner/:server",        api_servers_stop,        API_AUTH },
    { "GET",    "/api/v1/servers/:owner/:server/progress", api_servers_progress,  API_AUTH },
    /* the servers themselves, through the proxy (api_proxy.c): who may
     * pass is decided there (a server's own XSRF rules apply to its
     * requests, not nbhub's CSRF header) */
    { "*",      "/user/:name",                           api_proxy_user_bare,     API_PUBLIC },
    { "*",      "/user/:name/" "*path",                  api_proxy_user,          API_PUBLIC | HTTP_ROUTE_STREAM_BODY },
    /* the Livy API (api_livy.c; docs/livy.md, not in openapi.json: Livy's
     * shapes and errors) */
    { "GET",    "/livy/sessions",                        api_livy_sessions_list,  API_LIVY },
    { "POST",   "/livy/sessions",                        api_livy_sessions_create, API_LIVY },
    { "GET",    "/livy/sessions/:id",                    api_livy_session_get,    API_LIVY },
    { "DELETE", "/livy/sessions/:id",                    api_livy_session_delete, API_LIVY },
    { "GET",    "/livy/sessions/:id/state",              api_livy_session_state,  API_LIVY },
    { "GET",    "/livy/sessions/:id/log",                api_livy_session_log,    API_LIVY },
    { "GET",    "/livy/sessions/:id/statements",         api_livy_stmts_list,     API_LIVY },
    { "POST",   "/livy/sessions/:id/statements",         api_livy_stmts_create,   API_LIVY },
    { "GET",    "/livy/sessions/:id/statements/:sid",    api_livy_stmt_get,       API_LIVY },
    { "POST",   "/livy/sessions/:id/statements/:sid/cancel", api_livy_stmt_cancel, API_LIVY },
    /* JupyterHub's API (api_hub*.c; docs/hub.md, not in openapi.json):
     * API_HUB routes are authorized by JupyterHub scopes in api_hub_before */
    { "GET",    "/hub/api",                              api_hub_root,            API_HUB },
    { "GET",    "/hub/api/info",                         api_hub_info,            API_HUB },
    { "GET",    "/hub/api/user",                         api_hub_self,            API_HUB },
    { "GET",    "/hub/api/users",                        api_hub_users_list,      API_HUB },
    { "POST",   "/hub/api/users",                        api_hub_users_create,    API_HUB },
    { "GET",    "/hub/api/users/:name",                  api_hub_user_get,        API_HUB },
    { "POST",   "/hub/api/users/:name",                  api_hub_user_create,     API_HUB },
    { "PATCH",  "/hub/api/users/:name",                  api_hub_user_patch,      API_HUB },
    { "DELETE", "/hub/api/users/:name",                  api_hub_user_delete,     API_HUB },
    { "GET",    "/hub/api/users/:name/server",           api_hub_server_get,      API_HUB },
    { "POST",   "/hub/api/users/:name/server",           api_hub_server_start,    API_HUB },
    { "DELETE", "/hub/api/users/:name/server",           api_hub_server_stop,     API_HUB },
    { "GET",    "/hub/api/users/:name/server/progress",  api_hub_server_progress, API_HUB },
    { "GET",    "/hub/api/users/:name/servers/:server",  api_hub_server_get,      API_HUB },
    { "POST",   "/hub/api/users/:name/servers/:server",  api_hub_server_start,    API_HUB },
    { "DELETE", "/hub/api/users/:name/servers/:server",  api_hub_server_stop,     API_HUB },
    { "GET",    "/hub/api/users/:name/servers/:server/progress", api_hub_server_progress, API_HUB },
    { "GET",    "/hub/api/users/:name/tokens",           api_hub_tokens_list,     API_HUB },
    { "POST",   "/hub/api/users/:name/tokens",           api_hub_token_create,    API_HUB },
    { "GET",    "/hub/api/users/:name/tokens/:id",       api_hub_token_get,       API_HUB },
    { "DELETE", "/hub/api/users/:name/tokens/:id",       api_hub_token_delete,    API_HUB },
    { "POST",   "/hub/api/users/:name/activity",         api_hub_activity,        API_HUB },
    { "GET",    "/hub/api/groups",                       api_hub_groups_list,     API_HUB },
    { "POST",   "/hub/api/groups",                       api_hub_groups_create,   API_HUB },
    { "GET",    "/hub/api/groups/:name",                 api_hub_group_get,       API_HUB },
    { "POST",   "/hub/api/groups/:name",                 api_hub_group_create,    API_HUB },
    { "DELETE", "/hub/api/groups/:name",                 api_hub_group_delete,    API_HUB },
    { "POST",   "/hub/api/groups/:name/users",           api_hub_group_users_add, API_HUB },
    { "DELETE", "/hub/api/groups/:name/users",           api_hub_group_users_remove, API_HUB },
    { "PUT",    "/hub/api/groups/:name/properties",      api_hub_group_properties, API_HUB },
    { "GET",    "/hub/api/oauth2/authorize",             api_hub_oauth_authorize, API_HUB },
    { "POST",   "/hub/api/oauth2/authorize",             api_hub_oauth_authorize, API_HUB },
    { "POST",   "/hub/api/oauth2/token",                 api_hub_oauth_token,     API_HUB },
    /* Livy's batches (api_livy_batches.c; the Livy API is in docs/livy.md,
     * not in openapi.json).  Every /livy/ route is also served at / on a
     * livy_listen listener (api_livy_handle). */
    { "POST",   "/livy/batches",                         api_livy_batches_create, API_LIVY },
    { "GET",    "/livy/batches",                         api_livy_batches_list,   API_LIVY },
    { "GET",    "/livy/batches/:id",                     api_livy_batch_get,      API_LIVY },
    { "GET",    "/livy/batches/:id/state",               api_livy_batch_state,    API_LIVY },
    { "GET",    "/livy/batches/:id/log",                 api_livy_batch_log,      API_LIVY },
    { "DELETE", "/livy/batches/:id",                     api_livy_batch_delete,   API_LIVY },
    /* GET /hub/api/ (the version), and JupyterHub's JSON 404 for the rest */
    { "*",      "/hub/api/" "*path",                     api_hub_root,            API_HUB },
};
const size_t api_nroutes = sizeof api_routes / sizeof api_routes[0];

int api_new(const api_opts_t *o, api_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!o || !o->loop || !o->store || !o->home)
        return err_set(err, -EINVAL, "api: loop, store and home are required");
    api_t *a = xcalloc(1, sizeof *a);
    a->loop = o->loop;
    a->lockout = lockout_new();
    a->oauth = oauth_new();
    a->store = o->store;
    a->sched = o->sched;
    a->pool = o->pool;
    a->home_given = xstrdup(o->home);
    a->self_exe = xstrdup(o->self_exe ? o->self_exe : "nbhub");
    /* Task files are checked against the real path of the home, so a
     * symlinked $NBHUB_HOME still works and "../" tricks do not. */
    char *real = realpath(o->home, NULL);
    a->home = real ? real : xstrdup(o->home);
    a->version = xstrdup(o->version ? o->version : "unknown");
    a->isolation_system = o->isolation_system;
    a->account_tmpl = o->account_tmpl ? xstrdup(o->account_tmpl) : NULL;
    a->create_accounts = o->create_accounts;
    a->cgroups = o->cgroups;
    a->user_limits = o->user_limits;
    a->limits_ud = o->limits_ud;
    if (o->trusted_users) {
        size_t n = 0;
        while (o->trusted_users[n]) n++;
        a->trusted_users = xcalloc(n + 1, sizeof *a->trusted_users);
        for (size_t i = 0; i < n; i++) a->trusted_users[i] = xstrdup(o->trusted_users[i]);
    }
    a->secure_cookies = o->secure_cookies;
    a->anon_body_max = o->anon_body_max ? o->anon_body_max : API_ANON_BODY_MAX;
    a->hc = o->hc;
    a->spark_max_clusters = o->spark_max_clusters > 0 ? o->spark_max_clusters : API_SPARK_MAX_CLUSTERS;
    a->spark_max_memory_mb = o->spark_max_memory_mb > 0 ? o->spark_max_memory_mb : API_SPARK_MAX_MEMORY_MB;
    a->render_max = o->render_max ? o->render_max : API_RENDER_MAX_DEFAULT;
    a->render_jobs = o->render_jobs ? o->render_jobs : API_RENDER_JOBS_DEFAULT;
    a->render_queue = o->render_queue ? o->render_queue : API_RENDER_QUEUE_DEFAULT;
    a->started_at = time_now_us();
    a->hub = o->hub;
    if (a->hub) api_proxy_hooks(a);
    a->local_login = !o->auth || o->auth->local;
    a->base_url = o->base_url && *o->base_url ? xstrdup(o->base_url) : NULL;
    if (o->auth && o->auth->oidc.enabled && o->hc) {
        a->oidc = oidc_new(o->loop, o->hc, &o->auth->oidc);
        /* The seal key of the provider's tokens first: SSO does not run
         * without, and nothing has started yet that api_free must wait for. */
        int orc = api_oidc_start(a, err);
        if (orc < 0) {
            api_free(a);
            return orc;
        }
        oidc_start(a->oidc);
    }
    int rc = http_router_new(api_routes, api_nroutes, a, &a->router, err);
    if (rc < 0) {
        api_free(a);
        return rc;
    }
    http_router_set_before(a->router, api_auth_before, a);
    /* The same Livy routes at / for a livy_listen listener. */
    size_t nl = 0;
    for (size_t i = 0; i < api_nroutes; i++) nl += !strncmp(api_routes[i].pattern, "/livy/", 6);
    a->livy_routes = xcalloc(nl ? nl : 1, sizeof *a->livy_routes);
    for (size_t i = 0, k = 0; i < api_nroutes; i++)
        if (!strncmp(api_routes[i].pattern, "/livy/", 6)) {
            a->livy_routes[k] = api_routes[i];
            a->livy_routes[k++].pattern = api_routes[i].pattern + 5;
        }
    if ((rc = http_router_new(a->livy_routes, nl, a, &a->livy_router, err)) < 0) {
        api_free(a);
        return rc;
    }
    http_router_set_before(a->livy_router, api_auth_before, a);
    /* Livy's batches: those a previous nbhub left running are ours again. */
    a->livy_csrf = o->livy_csrf;
    livy_batch_opts_t lo = { .loop = a->loop, .store = a->store, .home = a->home, .self_exe = a->self_exe,
                             .isolation_system = a->isolation_system, .account_tmpl = a->account_tmpl,
                             .create_accounts = a->create_accounts };
    if (livy_batch_new(&lo, &a->livy_batches, err) < 0) {
        api_free(a);
        return -EINVAL;
    }
    int adopted = livy_batch_adopt(a->livy_batches);
    if (adopted) LOG_I("livy batches adopted", "count=%d", adopted);
    *out = a;
    return 0;
}

void api_handle(http_req_t *req, void *api)
{
    api_t *a = api;
    http_router_handle(req, a->router);
}

/* Bodies are read only for requests their route would take: refusals
 * (404, 405, 401, CSRF's 403, admins-only, other people's flows) go out on
 * the head alone, so nobody can make the server hold a body it would throw
 * away.  A body no credential vouches for (login) is kept small. */
int api_gate_pass;

void api_livy_handle(http_req_t *req, void *api)
{
    api_t *a = api;
    http_router_handle(req, a->livy_router);
}

int api_livy_gate(http_req_t *req, void *api)
{
    api_t *a = api;
    api_gate_pass = 1;
    int refused = http_router_gate(req, a->livy_router);
    api_gate_pass = 0;
    return refused;
}

int api_gate(http_req_t *req, void *api)
{
    api_t *a = api;
    api_gate_pass = 1;
    int refused = http_router_gate(req, a->router);
    api_gate_pass = 0;
    if (refused) return 1;
    if (!(http_req_route_flags(req) & API_F_AUTH)) http_req_set_body_max(req, a->anon_body_max);
    return 0;
}

void api_set_stopping(api_t *a)
{
    a->stopping = 1;
    /* Their timers must not keep the loop alive. */
    api_oidc_stop(a);
    oidc_stop(a->oidc);
    /* Batches run on without us; the next nbhub adopts them. */
    livy_batch_shutdown(a->livy_batches);
}

void api_set_server(api_t *a, http_server_t *srv) { a->srv = srv; }

void api_set_hub(api_t *a, struct hub *hub) { a->hub = hub; }

void api_set_livy(api_t *a, struct livy *livy) { a->livy = livy; }

void api_set_pool_sizes(api_t *a, const char *const *names, const unsigned *sizes, size_t n)
{
    for (size_t i = 0; i < a->npool; i++) free(a->pool_names[i]);
    free(a->pool_names);
    free(a->pool_sizes);
    a->pool_names = n ? xcalloc(n, sizeof *a->pool_names) : NULL;
    a->pool_sizes = n ? xcalloc(n, sizeof *a->pool_sizes) : NULL;
    a->npool = n;
    for (size_t i = 0; i < n; i++) {
        a->pool_names[i] = xstrdup(names[i]);
        a->pool_sizes[i] = sizes[i];
    }
}

void api_free(api_t *a)
{
    if (!a) return;
    api_events_close_all(a);
    api_oidc_free(a);
    oidc_free(a->oidc);
    free(a->base_url);
    sowned_forget(a->loop);
    http_router_free(a->router);
    http_router_free(a->livy_router);
    free(a->livy_routes);
    livy_batch_free(a->livy_batches);
    api_livy_auth_free(a->livy_auth);
    api_set_pool_sizes(a, NULL, NULL, 0);
    free(a->home);
    free(a->home_given);
    free(a->self_exe);
    free(a->version);
    free(a->account_tmpl);
    if (a->trusted_users)
        for (char **p = a->trusted_users; *p; p++) free(*p);
    free(a->trusted_users);
    free(a->dummy_hash);
    lockout_free(a->lockout);
    oauth_free(a->oauth);
    free(a);
}

/* ---- helpers ------------------------------------------------------------ */

const api_ctx_t *api_ctx(const http_req_t *req) { return http_req_user(req); }

void api_error(http_req_t *req, int status, const char *code, const char *msg)
{
    if (status == 401) http_set_header(req, "WWW-Authenticate", "Bearer realm=\"nbhub\"");
    http_respond_error(req, status, code, "%s", msg);
}

void api_fail(http_req_t *req, int rc, const nb_err_t *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    switch (rc) {
    case -ENOENT:
        api_error(req, 404, "not_found", msg ? msg : "not found");
        return;
    case -EACCES:
    case -EPERM:
        api_error(req, 403, "forbidden", msg ? msg : "forbidden");
        return;
    case -EBUSY:
    case -ESTALE:
    case -EEXIST:
        api_error(req, 409, "conflict", msg ? msg : "conflict");
        return;
    case -EINVAL:
    case -ERANGE:
    case -E2BIG:
        api_error(req, 400, "bad_request", msg ? msg : "bad request");
        return;
    case -ESHUTDOWN:
    case -EAGAIN:
    case -ENOTSUP:
        api_error(req, 503, "unavailable", msg ? msg : "shutting down");
        return;
    default:
        LOG_E("api internal error", "method=%s path=\"%s\" rc=%d error=\"%s\"", http_req_method(req),
              http_req_path(req), rc, msg ? msg : "");
        api_error(req, 500, "internal", "internal error (see the server log)");
        return;
    }
}

static void body_bad(http_req_t *req, const char *msg)
{
    api_error(req, 400, "bad_request", msg);
}

int api_body_parse(http_req_t *req, int allow_empty, const char *const *members, json_t **out,
                   void (*bad)(http_req_t *req, const char *msg), const char *unknown)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    *out = NULL;
    size_t i = 0;
    /* body[i] first: strchr finds the terminating NUL too, and a body of
     * NUL bytes is not an empty body. */
    while (i < len && body[i] && strchr(" \t\r\n", body[i])) i++;
    if (i == len) {
        if (allow_empty) {
            *out = json_object();
            return 0;
        }
        bad(req, "a JSON object body is required");
        return -1;
    }
    json_error_t je;
    json_t *j = jparse(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char msg[400];
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d (byte %d): %s", je.line,
                 je.column, je.position, je.text);
        bad(req, msg);
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        bad(req, "the body must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        size_t k = 0;
        while (members[k] && strcmp(members[k], key) != 0) k++;
        if (members[k]) continue;
        buf_t msg = BUF_INIT;
        buf_printf(&msg, "%s \"%s\"; expected:", unknown, api_log_name(req, key));
        for (k = 0; members[k]; k++) buf_printf(&msg, "%s %s", k ? "," : "", members[k]);
        json_decref(j);
        bad(req, msg.data);
        buf_free(&msg);
        return -1;
    }
    *out = j;
    return 0;
}

int api_body_object(http_req_t *req, int allow_empty, const char *const *members, json_t **out)
{
    return api_body_parse(req, allow_empty, members, out, body_bad, "unknown member");
}

int api_may_see(const api_ctx_t *c, int64_t owner_id)
{
    return c && (c->admin || (owner_id != 0 && owner_id == c->uid));
}

const char *api_log_name(http_req_t *req, const char *s)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-";
    char *out = http_req_alloc(req, 65);
    size_t n = 0;
    for (; s && *s && n < 64; s++) out[n++] = strchr(ok, *s) ? *s : '?';
    out[n] = '\0';
    return out;
}

int api_no_sched(api_t *a, http_req_t *req)
{
    if (a->sched) return 0;
    api_error(req, 503, "unavailable", "the scheduler is not running");
    return 1;
}

int api_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s) return -EINVAL;
    int64_t v = 0;
    const char *p = s;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!*p) return -EINVAL;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10) return -EINVAL;
        v = v * 10 + d;
    }
    if (neg) v = -v;
    if (v < min || v > max) return -EINVAL;
    *out = v;
    return 0;
}

const char *api_names_get(api_t *a, api_names_t *c, int64_t id)
{
    if (!id) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[i] == id) return c->names[i];
    store_user_t u;
    char *name = NULL;
    if (store_user_by_id(a->store, id, &u, NULL) == 0) {
        name = u.name;
        u.name = NULL;
        store_user_clear(&u);
    }
    c->ids = xrealloc(c->ids, (c->n + 1) * sizeof *c->ids);
    c->names = xrealloc(c->names, (c->n + 1) * sizeof *c->names);
    c->ids[c->n] = id;
    c->names[c->n] = name;
    return c->names[c->n++];
}

void api_names_free(api_names_t *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->names[i]);
    free(c->ids);
    free(c->names);
    c->ids = NULL;
    c->names = NULL;
    c->n = 0;
}
