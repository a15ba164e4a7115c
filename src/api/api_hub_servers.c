/*
 * api_hub_servers — the hub layer's servers (hub/hub.h) as JupyterHub's
 * API shows them: the user model's "servers", GET/POST/DELETE
 * /users/NAME/server and /users/NAME/servers/SERVER, their progress as
 * SSE, activity, and the servers' identities as OAuth clients.  The scope
 * checks happened in api_hub_before (start:servers, delete:servers,
 * read:servers on USER/SERVER); here only what JupyterHub answers:
 *
 *   POST    201 running, 202 pending (a start begun now or already
 *           starting), 400 already running or stopping, the hub's refusals
 *           (unknown profile 400, profile not allowed 403, too many 400)
 *   DELETE  204 stopped, 202 pending (stop under way); {"remove": true}
 *           removes a named server (400 for the default one)
 *   progress  text/event-stream of JupyterHub's events; 400 when the
 *           server is not starting (nor ready, nor just failed)
 *
 * The body of POST is JupyterHub's user options: {"profile": "small"} or
 * the 6.x form {"user_options": {...}, "display_name": "..."}.
 */
#include "api/api_int.h"
#include "hub/hub.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *api_hub_servers_json(api_t *a, const api_ctx_t *c, int64_t uid, const char *user,
                             int include_stopped)
{
    json_t *o = json_object();
    if (!a->hub) return o;
    char fl[600];
    for (hub_server_t *s = hub_server_next_of(a->hub, uid, NULL); s; s = hub_server_next_of(a->hub, uid, s)) {
        hub_state_t st = hub_server_state(s);
        int active = st == HUB_STARTING || st == HUB_RUNNING || st == HUB_STOPPING;
        if (!active && !include_stopped) continue;
        api_hub_server_filter(user, hub_server_name(s), fl, sizeof fl);
        if (!api_hub_has(a, c, "read:servers", "server", fl)) continue;
        json_object_set_new(o, hub_server_name(s), hub_server_model(a->hub, s));
    }
    return o;
}

int api_hub_user_active(api_t *a, int64_t uid, int ready)
{
    if (!a->hub) return 0;
    for (hub_server_t *s = hub_server_next_of(a->hub, uid, NULL); s; s = hub_server_next_of(a->hub, uid, s)) {
        hub_state_t st = hub_server_state(s);
        if (ready ? st == HUB_RUNNING : (st == HUB_STARTING || st == HUB_RUNNING || st == HUB_STOPPING))
            return 1;
    }
    return 0;
}

void api_hub_default_server(api_t *a, int64_t uid, const char **url, const char **pending)
{
    *url = *pending = NULL;
    if (!a->hub) return;
    for (hub_server_t *s = hub_server_next_of(a->hub, uid, NULL); s; s = hub_server_next_of(a->hub, uid, s)) {
        if (*hub_server_name(s)) continue;
        hub_state_t st = hub_server_state(s);
        if (st == HUB_RUNNING) *url = hub_server_prefix(s);
        else if (st == HUB_STARTING) *pending = "spawn";
        else if (st == HUB_STOPPING) *pending = "stop";
    }
}

int64_t api_hub_last_activity(api_t *a, int64_t uid)
{
    int64_t last = 0;
    if (!a->hub) return 0;
    for (hub_server_t *s = hub_server_next_of(a->hub, uid, NULL); s; s = hub_server_next_of(a->hub, uid, s))
        if (hub_server_last_activity(s) > last) last = hub_server_last_activity(s);
    return last;
}

int api_hub_server_exists(api_t *a, const char *user, const char *server)
{
    return a->hub && hub_server_find(a->hub, user, server) != NULL;
}

void api_hub_server_activity(api_t *a, const char *user, const char *server, int64_t ts_us)
{
    hub_server_t *s = a->hub ? hub_server_find(a->hub, user, server) : NULL;
    if (s) hub_server_activity(a->hub, s, ts_us);
}

void api_hub_user_stop_all(api_t *a, int64_t uid)
{
    if (a->hub) hub_user_stop_all(a->hub, uid, 1);
}

int api_hub_user_has_servers(api_t *a, int64_t uid)
{
    return a->hub && hub_server_next_of(a->hub, uid, NULL) != NULL;
}

int api_hub_oauth_client(api_t *a, const char *user, const char *server, int64_t *server_id,
                         int64_t *owner_id, char **client_id, char **redirect_uri)
{
    hub_server_t *s = a->hub ? hub_server_find(a->hub, user, server) : NULL;
    if (!s) return -ENOENT;
    *server_id = hub_server_id(s);
    *owner_id = hub_server_user_id(s);
    *client_id = hub_server_client_id(s);
    *redirect_uri = xasprintf("%soauth_callback", hub_server_prefix(s));
    return 0;
}

char *api_hub_oauth_client_of(api_t *a, int64_t server_id)
{
    hub_server_t *s = a->hub ? hub_server_by_id(a->hub, server_id) : NULL;
    return s ? hub_server_client_id(s) : NULL;
}

/* The server the path names, or NULL (answered 404). */
static hub_server_t *path_server(api_t *a, http_req_t *req)
{
    const char *user = http_param(req, "name"), *name = http_param(req, "server");
    hub_server_t *s = a->hub ? hub_server_find(a->hub, user, name ? name : "") : NULL;
    if (!s) {
        char msg[300];
        if (name) snprintf(msg, sizeof msg, "%.100s has no server named '%.100s'", user, name);
        else snprintf(msg, sizeof msg, "Not Found");
        api_hub_error(req, 404, msg);
    }
    return s;
}

void api_hub_server_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    hub_server_t *s = path_server(a, req);
    if (s) http_respond_json(req, 200, hub_server_model(a->hub, s));
}

void api_hub_server_start(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->hub) {
        api_hub_error(req, 503, "this nbhub starts no notebook servers");
        return;
    }
    store_user_t u;
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_by_name(a->store, http_param(req, "name"), &u, &err);
    if (rc) {
        api_hub_fail(req, rc == -ENOENT ? -ENOENT : rc, &err);
        return;
    }
    json_t *body;
    if (api_hub_body(req, &body) < 0) {
        store_user_clear(&u);
        return;
    }
    if (body && !json_is_object(body)) {
        json_decref(body);
        store_user_clear(&u);
        api_hub_error(req, 400, "Body must be a JSON object");
        return;
    }
    /* JupyterHub 6: {"user_options": {...}, "display_name": ...}; before:
     * the body is the user options */
    json_t *opts = body;
    if (body && (json_object_get(body, "user_options") || json_object_get(body, "display_name"))) {
        opts = json_object_get(body, "user_options");
        if (opts && !json_is_null(opts) && !json_is_object(opts)) {
            json_decref(body);
            store_user_clear(&u);
            api_hub_error(req, 400, "user_options must be an object or null");
            return;
        }
    }
    char *opts_text = opts && json_is_object(opts) ? json_dumps(opts, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *name = http_param(req, "server");
    if (!name) name = "";
    hub_server_t *s = hub_server_find(a->hub, u.name, name);
    if (s && hub_server_state(s) == HUB_STARTING) {
        /* JupyterHub: a start already pending is a 202 */
        free(opts_text);
        store_user_clear(&u);
        http_respond(req, 202, "text/plain", "", 0);
        return;
    }
    if (s && hub_server_state(s) == HUB_STOPPING) {
        free(opts_text);
        store_user_clear(&u);
        char msg[300];
        snprintf(msg, sizeof msg, "%.100s/%.100s is pending stop", http_param(req, "name"), name);
        api_hub_error(req, 400, msg);
        return;
    }
    if (s && hub_server_state(s) == HUB_RUNNING) {
        free(opts_text);
        store_user_clear(&u);
        char msg[300];
        snprintf(msg, sizeof msg, "%.100s's server %.100s is already running", http_param(req, "name"), name);
        api_hub_error(req, 400, msg);
        return;
    }
    hub_user_t hu = { u.id, u.name, u.is_admin };
    rc = hub_server_start(a->hub, &hu, name, opts_text, &s, &err);
    free(opts_text);
    if (rc >= 0)
        LOG_I("server start", "user=%s server=%s by=%s via=hub_api", api_log_name(req, u.name),
              api_log_name(req, name), api_ctx(req)->log_name);
    store_user_clear(&u);
    if (rc < 0) {
        api_hub_fail(req, rc, &err);
        return;
    }
    http_respond(req, rc == 1 ? 202 : 201, "text/plain", "", 0);
}

void api_hub_server_stop(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *body;
    if (api_hub_body(req, &body) < 0) return;
    int remove = json_is_object(body) && json_is_true(json_object_get(body, "remove"));
    json_decref(body);
    const char *name = http_param(req, "server");
    if (!name && remove) {
        api_hub_error(req, 400, "Cannot delete the default server");
        return;
    }
    hub_server_t *s = path_server(a, req);
    if (!s) return;
    if (hub_server_state(s) == HUB_STOPPING && !remove) {
        http_respond(req, 202, "text/plain", "", 0);
        return;
    }
    nb_err_t err;
    err_clear(&err);
    char why[160];
    api_stop_reason(api_ctx(req), hub_server_user(s), why, sizeof why);
    int rc = hub_server_stop_because(a->hub, s, remove, why, &err);
    if (rc < 0) {
        api_hub_fail(req, rc, &err);
        return;
    }
    LOG_I("server stop", "user=%s server=%s remove=%d by=%s via=hub_api",
          api_log_name(req, http_param(req, "name")), api_log_name(req, name ? name : ""), remove,
          api_ctx(req)->log_name);
    http_respond(req, rc == 1 ? 202 : 204, "text/plain", "", 0);
}

/* ---- progress ------------------------------------------------------------- */

struct hub_prog {
    http_sse_t         *sse;
    hub_progress_sub_t *sub;
    api_t              *a;
};

static void hub_prog_event(const json_t *ev, int final, void *ud)
{
    struct hub_prog *p = ud;
    /* JupyterHub's events go out as bare "data:" lines */
    char *data = json_dumps(ev, JSON_COMPACT);
    http_sse_send(p->sse, NULL, NULL, data);
    free(data);
    if (final) {
        p->sub = NULL;   /* the hub ends a subscription after its final event */
        http_sse_close(p->sse);
        free(p);
    }
}

static void hub_prog_closed(http_sse_t *sse, void *ud)
{
    (void)sse;
    struct hub_prog *p = ud;
    if (p->sub) hub_progress_unsubscribe(p->a->hub, p->sub);
    free(p);
}

void api_hub_server_progress(http_req_t *req, void *ud)
{
    api_t *a = ud;
    hub_server_t *s = path_server(a, req);
    if (!s) return;
    hub_state_t st = hub_server_state(s);
    if (st != HUB_STARTING && st != HUB_RUNNING && st != HUB_FAILED) {
        char msg[300];
        snprintf(msg, sizeof msg, "%.100s/%.100s is not starting...", hub_server_user(s), hub_server_name(s));
        api_hub_error(req, 400, msg);
        return;
    }
    struct hub_prog *p = xcalloc(1, sizeof *p);
    p->a = a;
    http_set_header(req, "Cache-Control", "no-cache");
    p->sse = http_sse_start(req, hub_prog_closed, p);
    if (!p->sse) {
        free(p);
        return;
    }
    hub_progress_sub_t *sub = NULL;
    int rc = hub_progress_subscribe(a->hub, s, hub_prog_event, p, &sub);
    if (rc == 1) p->sub = sub;
    else if (rc < 0) {
        http_sse_close(p->sse);
        free(p);
    }
}
