/*
 * api_servers — nbhub's own API for notebook servers (docs/api.md,
 * docs/hub.md): the profiles a user may pick, their servers, start, stop
 * and the start's progress as SSE.  JupyterHub's API for the same servers
 * is /hub/api (api_hub*.c); both call the hub layer (hub/hub.h).
 *
 * Who sees what: a user their own servers, an admin everyone's.  Someone
 * else's server is a 404 like one that does not exist, so names do not
 * leak.  In paths the default server is called "default" (a reserved
 * server name, hub_server_name_valid).
 */
#include "api/api_int.h"
#include "http/sse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <string.h>

static int no_hub(api_t *a, http_req_t *req)
{
    if (a->hub) return 0;
    api_error(req, 503, "unavailable", "this nbhub runs no hub");
    return 1;
}

static hub_user_t ctx_user(const api_ctx_t *c)
{
    return (hub_user_t){ c->uid, c->name, c->admin };
}

/* The refusals of hub_server_start / _stop as HTTP. */
static void hub_fail(http_req_t *req, int rc, const nb_err_t *err)
{
    const char *m = err && err->msg[0] ? err->msg : "refused";
    switch (rc) {
    case -EINVAL:    api_error(req, 400, "bad_request", m); return;
    case -EACCES:    api_error(req, 403, "forbidden", m); return;
    case -EUSERS:    api_error(req, 429, "too_many_requests", m); return;
    case -EBUSY:     api_error(req, 409, "conflict", m); return;
    case -ENOENT:    api_error(req, 404, "not_found", m); return;
    case -ENOTSUP:
    case -ESHUTDOWN: api_error(req, 503, "unavailable", m); return;
    default:         api_fail(req, rc, err); return;
    }
}

/* The server named by :owner/:server, if the caller may see it; else
 * answers 404 and returns NULL. */
static hub_server_t *path_server(api_t *a, http_req_t *req, const api_ctx_t *c)
{
    const char *owner = http_param(req, "owner"), *name = http_param(req, "server");
    if (!strcmp(name, "default")) name = "";
    hub_server_t *s = NULL;
    if (owner && (c->admin || !strcmp(owner, c->name))) s = hub_server_find(a->hub, owner, name);
    if (!s) api_error(req, 404, "not_found", "no such server");
    return s;
}

void api_servers_profiles(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    hub_user_t u = ctx_user(api_ctx(req));
    http_respond_json(req, 200, json_pack("{s:o}", "profiles", hub_profiles_json(a->hub, &u)));
}

void api_servers_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    const char *owner = http_query(req, "owner");
    json_t *arr = json_array();
    for (hub_server_t *s = hub_server_next(a->hub, NULL); s; s = hub_server_next(a->hub, s)) {
        if (!c->admin && hub_server_user_id(s) != c->uid) continue;
        if (owner && strcmp(owner, hub_server_user(s)) != 0) continue;
        json_array_append_new(arr, hub_server_json(a->hub, s));
    }
    http_respond_json(req, 200, json_pack("{s:o}", "servers", arr));
}

void api_servers_start(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_body_object(req, 1, API_MEMBERS("owner", "name", "profile", "options"), &body) < 0) return;
    json_t *jo = json_object_get(body, "owner"), *jn = json_object_get(body, "name"),
           *jp = json_object_get(body, "profile"), *jopt = json_object_get(body, "options");
    if ((jo && !json_is_string(jo)) || (jn && !json_is_string(jn)) || (jp && !json_is_string(jp)) ||
        (jopt && !json_is_object(jopt))) {
        json_decref(body);
        api_error(req, 400, "bad_request", "owner, name and profile are strings, options an object");
        return;
    }
    const char *owner = jo ? json_string_value(jo) : c->name;
    const char *name = jn ? json_string_value(jn) : "";
    if (!strcmp(name, "default")) name = "";
    hub_user_t u = ctx_user(c);
    store_user_t ou;
    memset(&ou, 0, sizeof ou);
    if (strcmp(owner, c->name) != 0) {
        nb_err_t err;
        if (!c->admin || store_user_by_name(a->store, owner, &ou, &err) < 0) {
            json_decref(body);
            api_error(req, 404, "not_found", "no such user");
            return;
        }
        /* An admin starts it as the owner would: the owner's profiles. */
        u = (hub_user_t){ ou.id, ou.name, ou.is_admin };
    }
    json_t *opts = jopt ? json_deep_copy(jopt) : json_object();
    if (jp) json_object_set(opts, "profile", jp);
    char *optstr = json_dumps(opts, JSON_COMPACT);
    json_decref(opts);
    nb_err_t err;
    err_clear(&err);
    hub_server_t *s = NULL;
    int rc = hub_server_start(a->hub, &u, name, optstr, &s, &err);
    free(optstr);
    if (rc >= 0)
        LOG_I("server start requested", "by=%s owner=%s server=%s rc=%d", c->log_name, api_log_name(req, u.name),
              api_log_name(req, name), rc);
    /* name and owner point into body and ou */
    json_decref(body);
    store_user_clear(&ou);
    if (rc < 0) {
        hub_fail(req, rc, &err);
        return;
    }
    http_respond_json(req, rc == 0 ? 201 : 202, hub_server_json(a->hub, s));
}

void api_servers_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    hub_server_t *s = path_server(a, req, api_ctx(req));
    if (s) http_respond_json(req, 200, hub_server_json(a->hub, s));
}

void api_stop_reason(const api_ctx_t *c, const char *owner, char *out, size_t n)
{
    const char *who = c->name ? c->name : "?";
    if (c->admin && (!owner || strcmp(owner, who) != 0)) snprintf(out, n, "stopped by admin %s", who);
    else snprintf(out, n, "stopped by %s", who);
}

void api_servers_stop(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    hub_server_t *s = path_server(a, req, c);
    if (!s) return;
    const char *rm = http_query(req, "remove");
    int remove = rm && (!strcmp(rm, "true") || !strcmp(rm, "1"));
    int named = hub_server_name(s)[0] != 0;
    LOG_I("server stop requested", "by=%s owner=%s server=%s", c->log_name, api_log_name(req, hub_server_user(s)),
          api_log_name(req, hub_server_name(s)));
    /* The answer is written first: a removal may free s. */
    json_t *j = hub_server_json(a->hub, s);
    nb_err_t err;
    char why[160];
    api_stop_reason(c, hub_server_user(s), why, sizeof why);
    int rc = hub_server_stop_because(a->hub, s, remove, why, &err);
    if (rc < 0) {
        json_decref(j);
        hub_fail(req, rc, &err);
        return;
    }
    if (rc == 0 && remove && named) {
        json_decref(j);
        http_respond(req, 204, NULL, NULL, 0);
        return;
    }
    json_object_set_new(j, "state", json_string(rc == 1 ? "stopping" : "stopped"));
    http_respond_json(req, rc == 1 ? 202 : 200, j);
}

/* ---- progress as SSE ---------------------------------------------------- */

struct prog {
    http_sse_t         *sse;
    hub_progress_sub_t *sub;
    api_t              *a;
};

static void prog_event(const json_t *ev, int final, void *ud)
{
    struct prog *p = ud;
    char *data = json_dumps(ev, JSON_COMPACT);
    http_sse_send(p->sse, NULL, NULL, data);
    free(data);
    if (final) {
        /* The hub ends the subscription itself after a final event. */
        p->sub = NULL;
        http_sse_close(p->sse);
        free(p);
    }
}

static void prog_closed(http_sse_t *sse, void *ud)
{
    (void)sse;
    struct prog *p = ud;
    if (p->sub) hub_progress_unsubscribe(p->a->hub, p->sub);
    free(p);
}

void api_servers_progress(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_hub(a, req)) return;
    hub_server_t *s = path_server(a, req, api_ctx(req));
    if (!s) return;
    if (hub_server_state(s) != HUB_STARTING && hub_server_state(s) != HUB_RUNNING &&
        hub_server_state(s) != HUB_FAILED) {
        api_error(req, 409, "conflict", "the server is not starting");
        return;
    }
    struct prog *p = xcalloc(1, sizeof *p);
    p->a = a;
    p->sse = http_sse_start(req, prog_closed, p);
    if (!p->sse) {
        free(p);
        return;
    }
    hub_progress_sub_t *sub = NULL;
    int rc = hub_progress_subscribe(a->hub, s, prog_event, p, &sub);
    /* rc 0: the final event was sent and p is gone already. */
    if (rc == 1) p->sub = sub;
    else if (rc < 0) {
        http_sse_close(p->sse);
        free(p);
    }
}
