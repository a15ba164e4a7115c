/*
 * api_sparkui — a Spark cluster's web UIs through nbhub serve, at
 * /spark/ID/ui/ (docs/spark.md, "Spark UIs"; ID is NAME for the operator's
 * clusters, ~OWNER/NAME for a user's, scluster.h): the master's page, and
 * through it (spark.ui.reverseProxy) every worker's and every running
 * application's at /spark/ID/ui/proxy/APP/.  The cluster, its workers and
 * the drivers nbhub starts draw their links for that path (scluster.h), so
 * nothing in the pages needs rewriting here.  The path is fixed when the
 * cluster starts, so it names the owner: an admin browsing bob's "dev"
 * follows links that stay on bob's.  /spark/NAME/ui/... names the caller's
 * own NAME and is redirected to its ~OWNER form (an admin without one of
 * that name gets the operator's, which lives there).
 *
 * Who: the cluster's owner and admins (API_CLUSTER; anyone else gets the
 * same 404 as for a cluster that does not exist).  The UI's ports stay on
 * 127.0.0.1: this is the only way to them from another machine.
 *
 * What is passed: GET and HEAD only (the router answers others 405), so
 * the proxy can change nothing on the cluster (the UIs' kill links are
 * off: spark.ui.killEnabled=false).  Nothing of the caller's reaches
 * Spark but the path and query: no cookie, no Authorization, no token.
 * Back come the status, the body (whole, at most SPARKUI_MAX_BODY), and the
 * headers a page needs: Content-Type, Content-Disposition (log
 * downloads), Cache-Control, and Location rewritten from the UI's own
 * http://127.0.0.1:PORT/ to /spark/NAME/ui/ (a Location elsewhere is
 * dropped: the proxy does not send browsers to other hosts).
 *
 * Scripts: Spark's pages run on nbhub's origin, so they must not run
 * anything but Spark's own code.  Spark 4 sends a CSP with a per-response
 * nonce on its inline scripts ("script-src 'self' 'nonce-...'"); that CSP
 * is passed on.  A page proxied by the master loses its driver's CSP
 * header, so for HTML without one the nonce is taken from the page's
 * <head> (written by Spark before any content of the application's) and
 * the same policy is built around it; failing that, the server's strict
 * app CSP stays.  Spark escapes what applications put in its pages.
 *
 * The request to Spark runs on the loop (http/hclient): a slow UI holds up
 * nobody else.  Ownership: the pending request owns its struct until the
 * answer; the http request is answered exactly once, from the callback.
 */
#include "api/api_int.h"
#include "spark/scluster.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* The raw path /spark/NAME/ui[/REST] or /spark/~OWNER/NAME/ui[/REST]:
 * owner (NULL in the first form) and name, percent-decoded into the
 * request's arena, and the length of the raw prefix up to "ui".  -1 if
 * the path has neither shape.  (The router cannot tell
 * /spark/~bob/ui/ui/x, bob's cluster "ui", from the operator's "~bob" with
 * a path ui/x; "~" is never in a cluster name, so this can.) */
static int sparkui_split(http_req_t *req, const char **owner, const char **name, size_t *plen)
{
    const char *raw = http_req_raw_path(req), *p = raw + 7, *seg[3];
    size_t len[3];
    if (strncmp(raw, "/spark/", 7)) return -1;
    for (int i = 0; i < 3; i++) {
        seg[i] = p;
        len[i] = strcspn(p, "/");
        p += len[i];
        if (*p == '/') p++;
        else if (i < 2) {
            for (int k = i + 1; k < 3; k++) seg[k] = p, len[k] = 0;
            break;
        }
    }
    const char *first = http_req_decode(req, seg[0], len[0], 0);
    if (!first) return -1;
    int qualified = first[0] == '~';
    const char *ui = seg[qualified ? 2 : 1];
    size_t ul = len[qualified ? 2 : 1];
    if (ul != 2 || strncmp(ui, "ui", 2)) return -1;
    *owner = qualified ? first + 1 : NULL;
    *name = qualified ? http_req_decode(req, seg[1], len[1], 0) : first;
    *plen = (size_t)(ui + 2 - raw);
    return *name ? 0 : -1;
}

char *api_sparkui_resolve(const api_t *a, http_req_t *req, const api_ctx_t *c)
{
    const char *owner, *name;
    size_t plen;
    if (sparkui_split(req, &owner, &name, &plen) < 0) return NULL;
    return api_spark_resolve(a, c, owner, name);
}

#define SPARKUI_MAX_BODY   (64u << 20)
#define SPARKUI_TIMEOUT_MS 30000

struct sparkui_call {
    http_req_t *req;
    char       *prefix;     /* /spark/NAME/ui */
    char       *origin;     /* http://127.0.0.1:PORT of the master's UI */
};

/* The nonce of the first <script nonce="..."> in the page's head, or NULL. */
static char *sparkui_nonce(const char *body, size_t len)
{
    static const char tag[] = "<script nonce=\"";
    const char *end = body + len;
    for (const char *p = body; p < end; p++) {
        if ((size_t)(end - p) >= 7 && !strncmp(p, "</head>", 7)) return NULL;
        if ((size_t)(end - p) < sizeof tag || strncmp(p, tag, sizeof tag - 1)) continue;
        const char *v = p + sizeof tag - 1, *q = v;
        while (q < end && (*q == '-' || (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                           (*q >= 'A' && *q <= 'Z')))
            q++;
        return q < end && *q == '"' && q - v >= 16 && q - v <= 64 ? xstrndup(v, (size_t)(q - v)) : NULL;
    }
    return NULL;
}

/* A header of Spark's answer, passed on unchanged if present. */
static void sparkui_pass(http_req_t *req, const hclient_resp_t *resp, const char *name)
{
    char *v = hclient_resp_header(resp, name);
    if (v) http_set_header(req, name, v);
    free(v);
}

static void sparkui_done(const hclient_resp_t *resp, void *ud)
{
    struct sparkui_call *c = ud;
    http_req_t *req = c->req;
    if (resp->code) {
        LOG_W("spark ui proxy: no answer", "prefix=%s error=%s", c->prefix, resp->error);
        api_error(req, 502, "bad_gateway",
                  resp->code == -EFBIG ? "the Spark UI's answer is too large" : "the Spark UI did not answer");
        goto out;
    }
    char *loc = hclient_resp_header(resp, "Location");
    if (loc) {
        size_t n = strlen(c->origin);
        char *to = NULL;
        if (!strncmp(loc, c->origin, n) && (loc[n] == '/' || !loc[n])) to = xasprintf("%s%s", c->prefix, loc + n);
        else if (!strstr(loc, "://") && strncmp(loc, "//", 2)) to = xstrdup(loc);   /* relative, or prefixed by Spark */
        if (to) http_set_header(req, "Location", to);
        free(to);
        free(loc);
    }
    sparkui_pass(req, resp, "Cache-Control");
    sparkui_pass(req, resp, "Content-Disposition");
    char *ctype = hclient_resp_header(resp, "Content-Type");
    char *csp = hclient_resp_header(resp, "Content-Security-Policy");
    if (!csp && ctype && !strncmp(ctype, "text/html", 9)) {
        char *nonce = sparkui_nonce(resp->body, resp->body_len);
        if (nonce)
            csp = xasprintf("default-src 'self'; script-src 'self' 'nonce-%s'; style-src 'self' 'unsafe-inline'; "
                            "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'",
                            nonce);
        free(nonce);
    }
    if (csp) http_set_header(req, "Content-Security-Policy", csp);
    http_respond(req, resp->status >= 100 && resp->status <= 599 ? resp->status : 502,
                 ctype ? ctype : "application/octet-stream", resp->body, resp->body_len);
    free(ctype);
    free(csp);
out:
    free(c->prefix);
    free(c->origin);
    free(c);
}

void api_sparkui_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *id = api_ctx(req)->cluster, *owner, *name;
    char *prefix = scluster_ui_path(id);
    const char *raw = http_req_raw_path(req);
    size_t pl = strlen(prefix), asked;
    /* The cluster's own path, with the slash Spark's relative links need
     * (as reverseProxyUrl's documentation says the front proxy must see
     * to); else there, with the rest of the path and the query. */
    if (strncmp(raw, prefix, pl) || !raw[pl]) {
        const char *rest = sparkui_split(req, &owner, &name, &asked) == 0 ? raw + asked : "";
        const char *q = http_req_query(req);
        char *to = xasprintf("%s%s%s%s", prefix, *rest ? rest : "/", *q ? "?" : "", q);
        http_set_header(req, "Location", to);
        http_respond(req, 302, "text/plain", "", 0);
        free(to);
        free(prefix);
        return;
    }
    char *dir = api_spark_dir(a, id);
    json_t *st = scluster_live_state(dir);
    free(dir);
    const char *ui = json_string_value(json_object_get(st, "ui_url"));
    if (!ui || strncmp(ui, "http://127.0.0.1:", 17) || !a->hc || a->stopping) {
        api_error(req, 503, "unavailable", "the Spark cluster is not running");
        json_decref(st);
        free(prefix);
        return;
    }
    struct sparkui_call *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->prefix = prefix;
    size_t ul = strlen(ui);
    c->origin = xstrndup(ui, ul && ui[ul - 1] == '/' ? ul - 1 : ul);
    json_decref(st);
    const char *q = http_req_query(req);
    char *url = xasprintf("%s%s%s%s", c->origin, raw + pl, *q ? "?" : "", q);
    const char *hdrs[] = { "Accept: */*", NULL };
    int rc = hclient_get(a->hc, url, hdrs, SPARKUI_MAX_BODY, SPARKUI_TIMEOUT_MS, sparkui_done, c);
    free(url);
    if (rc) {
        api_error(req, 502, "bad_gateway", "the Spark UI cannot be asked");
        free(c->prefix);
        free(c->origin);
        free(c);
    }
}
