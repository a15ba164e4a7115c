/*
 * api_proxy — /user/NAME[/SERVER]/...: who may reach a notebook server,
 * then http/proxy relays the request to it (docs/hub.md).
 *
 * Who passes.  The request is authenticated here, not by the route flags:
 * the nbhub session cookie (a browser) or an Authorization token
 * ("token X" or "Bearer X": an nbhub API token, or an OAuth token the hub
 * issued); nbhub's CSRF header is not asked for, since the requests are
 * the notebook server's own (it has its XSRF checks, and checks the user
 * again through the Hub API: the check is made twice, as JupyterHub's
 * proxy and singleuser server do).  A server's own API token (kind
 * 'server') does not open servers.  Then only the owner passes, or an
 * admin when hub.admin_access is on.  Anyone else gets the same 404 as for
 * a server that does not exist, so the proxy does not tell who has a
 * server; an admin without admin_access gets 403 (they may list servers
 * anyway).  Without credentials: browsers are sent to the login page,
 * API clients get 401.
 *
 * What is forwarded (http/proxy does it): never nbhub's session cookie;
 * the Authorization header only when it is the owner's own token (so
 * scripts with a token work, as with JupyterHub); an admin's credentials
 * never; for a `command:` profile the server's own token instead.
 *
 * Which server.  /user/alice/x/... is alice's named server x when she has
 * one, else her default server's path x/... (JupyterHub's proxy picks the
 * longest route the same way); names that are paths of a server ("lab",
 * "api", ...) cannot be server names.
 *
 * A server that is not running: a page that says so with a link to start
 * it (browsers), or 503 {"error": ...} for API clients.
 */
#include "api/api_int.h"
#include "http/proxy.h"
#include "util/buf.h"
#include "util/urlesc.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

struct who {
    int64_t     uid;
    const char *name;
    int         admin;
    int         by_token;   /* the Authorization header authenticated */
};

/* 0 and *w, or -EACCES (no usable credentials).  An Authorization header
 * with one of the user's tokens or an OAuth token the hub issued; a
 * server's own token does not count, and a header that is not ours is the
 * notebook server's business: then the session cookie. */
static int identify(api_t *a, http_req_t *req, struct who *w)
{
    memset(w, 0, sizeof *w);
    api_ctx_t c;
    if (api_auth_peek_header(a, req, &c) == 0 &&
        (c.token_kind == STORE_TOKEN_API || c.token_kind == STORE_TOKEN_OAUTH))
        w->by_token = 1;
    else if (api_auth_peek_cookie(a, req, &c) < 0)
        return -EACCES;
    w->uid = c.uid;
    w->name = c.name;
    w->admin = c.admin;
    return 0;
}

static int wants_html(http_req_t *req)
{
    const char *acc = http_header(req, "Accept");
    const char *m = http_req_method(req);
    return m && (!strcmp(m, "GET") || !strcmp(m, "HEAD")) && acc && strstr(acc, "text/html") && !http_header(req, "Authorization");
}

static void html_escape(buf_t *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_append(b, s, 1);
        }
    }
}

/* The server is not running (or went away under the request). */
static void not_running(http_req_t *req, const char *user, const char *server, const char *state)
{
    char msg[400];
    snprintf(msg, sizeof msg, "the server %s%s%s is not running (%s)", user, *server ? "/" : "", server, state);
    if (!wants_html(req)) {
        http_set_header(req, "Retry-After", "5");
        api_error(req, 503, "unavailable", msg);
        return;
    }
    buf_t b = BUF_INIT;
    buf_puts(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>Server not running</title></head><body>"
                 "<h1>Your server is not running</h1><p>");
    html_escape(&b, msg);
    buf_puts(&b, ".</p><p><a href=\"/server\">Start it</a> from the Server page, then reload this page.</p>"
                 "</body></html>\n");
    http_set_header(req, "Cache-Control", "no-store");
    size_t len = b.len;
    http_respond_take(req, 503, "text/html; charset=utf-8", buf_detach(&b), len);
}

static void on_upstream_error(http_req_t *req, int err, void *ud)
{
    hub_server_t *s = ud;
    LOG_I("proxy: server did not answer", "user=%s server=%s error=%d", hub_server_user(s), hub_server_name(s), err);
    not_running(req, hub_server_user(s), hub_server_name(s), "it did not answer");
}

static void on_activity(void *ud)
{
    hub_server_touch(ud);
}

static void proxy_hook_stopped(hub_t *h, hub_server_t *s, void *ud)
{
    (void)h;
    (void)ud;
    proxy_drop(s);
}

void api_proxy_hooks(api_t *a)
{
    hub_hooks_t hk = { NULL, NULL, proxy_hook_stopped, proxy_hook_stopped, a };
    hub_add_hooks(a->hub, &hk);
}

void api_proxy_user_bare(http_req_t *req, void *ud)
{
    (void)ud;
    /* /user/alice -> /user/alice/ (the raw path, plus the query). */
    const char *target = http_req_target(req);
    const char *q = strchr(target, '?');
    buf_t b = BUF_INIT;
    buf_append(&b, target, q ? (size_t)(q - target) : strlen(target));
    buf_puts(&b, "/");
    if (q) buf_puts(&b, q);
    http_set_header(req, "Location", b.data);
    buf_free(&b);
    http_respond(req, 302, NULL, NULL, 0);
}

void api_proxy_user(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->hub) {
        api_error(req, 404, "not_found", "no such server");
        return;
    }
    const char *user = http_param(req, "name"), *path = http_param(req, "path");
    /* Who asks comes first: nothing below (not even whether a named
     * server exists, which the redirect would tell) is for others. */
    struct who w;
    if (identify(a, req, &w) < 0) {
        if (wants_html(req)) {
            buf_t b = BUF_INIT;
            buf_puts(&b, "/login?next=");
            urlesc_append(&b, http_req_target(req));
            http_set_header(req, "Location", b.data);
            buf_free(&b);
            http_respond(req, 302, NULL, NULL, 0);
        } else {
            api_error(req, 401, "unauthorized", "authentication required");
        }
        return;
    }
    int owner = !strcmp(w.name, user);
    if (!owner && !(w.admin && hub_conf(a->hub)->admin_access)) {
        if (w.admin) api_error(req, 403, "forbidden", "admins may not open users' servers (hub.admin_access is off)");
        else api_error(req, 404, "not_found", "no such server");
        return;
    }
    /* The first segment names a server when the user has one by that name. */
    char server[80] = "";
    const char *slash = path ? strchr(path, '/') : NULL;
    if (path && slash && (size_t)(slash - path) < sizeof server) {
        memcpy(server, path, (size_t)(slash - path));
        server[slash - path] = 0;
        if (!server[0] || !hub_server_find(a->hub, user, server)) server[0] = 0;
    } else if (path && *path && strlen(path) < sizeof server && hub_server_find(a->hub, user, path)) {
        /* /user/alice/x without its slash: the named server's root. */
        buf_t b = BUF_INIT;
        buf_puts(&b, http_req_raw_path(req));
        buf_puts(&b, "/");
        const char *q = strchr(http_req_target(req), '?');
        if (q) buf_puts(&b, q);
        http_set_header(req, "Location", b.data);
        buf_free(&b);
        http_respond(req, 302, NULL, NULL, 0);
        return;
    }

    hub_server_t *s = hub_server_find(a->hub, user, server);
    hub_target_t t;
    if (!s || hub_server_target(s, &t) < 0) {
        if (!s && !owner) {
            api_error(req, 404, "not_found", "no such server");
            return;
        }
        not_running(req, user, server, s ? hub_state_name(hub_server_state(s)) : "never started");
        return;
    }
    hub_server_touch(s);
    char *upstream_auth = t.upstream_token ? xasprintf("token %s", t.upstream_token) : NULL;
    struct proxy_target pt = {
        .host = t.host,
        .port = t.port,
        .upstream_auth = upstream_auth,
        .pass_authorization = owner && w.by_token,
        .drop_cookie = API_SESSION_COOKIE,
        .scheme = http_req_tls(req) ? "https" : "http",
        .on_activity = on_activity,
        .on_error = on_upstream_error,
        .ud = s,
    };
    proxy_pass(req, &pt);
    free(upstream_auth);
}
