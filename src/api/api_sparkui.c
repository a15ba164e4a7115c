/*
 * api_sparkui — a Spark cluster's web UIs through nbhub serve, at
 * /spark/NAME/ui/ (docs/spark.md, "Spark UIs"): the master's page, and
 * through it (spark.ui.reverseProxy) every worker's and every running
 * application's at /spark/NAME/ui/proxy/ID/.  The cluster, its workers and
 * the drivers nbhub starts draw their links for that path (scluster.h), so
 * nothing in the pages needs rewriting here.
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
    const char *name = http_param(req, "name");
    char *prefix = scluster_ui_path(name);
    const char *raw = http_req_raw_path(req);
    size_t pl = strlen(prefix);
    /* Spark's relative links need the trailing slash (as reverseProxyUrl's
     * documentation says the front proxy must see to). */
    if (strncmp(raw, prefix, pl) || !raw[pl]) {
        char *to = xasprintf("%s/", prefix);
        http_set_header(req, "Location", to);
        http_respond(req, 302, "text/plain", "", 0);
        free(to);
        free(prefix);
        return;
    }
    char *dir = api_spark_dir(a, name);
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
