/*
 * http/router — route table matching.  See router.h for the pattern rules.
 *
 * Cost.  Patterns are split into segments once, at http_router_new.  A
 * request's path is split and decoded once (a handful of arena
 * allocations), then the table is scanned in order: a route whose segment
 * count cannot fit is skipped with one integer compare, and the first
 * literal segment usually rejects the rest with a short memcmp.  For the
 * ~100 routes nbhub will have, that is a few hundred compares, well under a
 * microsecond, against the tens of microseconds a request spends in
 * syscalls.  A trie would save nothing measurable and would lose the
 * "first match in table order wins" rule that makes the table easy to read.
 */
#include "http/router.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 64

enum seg_kind { SEG_LIT, SEG_PARAM, SEG_REST };

struct seg {
    enum seg_kind kind;
    const char *s;              /* literal text or parameter name, into the pattern */
    size_t len;
};

struct croute {
    const struct http_route *route;
    http_router_t *router;
    struct seg *segs;
    size_t nseg;                /* including a final SEG_REST */
    int rest;
};

struct http_router {
    struct croute *routes;
    size_t n;
    void *ud;
    http_before_fn before;
    void *before_ud;
};

/* Split one pattern; -EINVAL with a message when it is malformed. */
static int compile(struct croute *cr, const struct http_route *rt, nb_err_t *err)
{
    const char *p = rt->pattern;
    cr->route = rt;
    if (!p || p[0] != '/') return err_set(err, -EINVAL, "route pattern must start with '/': %s", p ? p : "(null)");
    if (!rt->handler) return err_set(err, -EINVAL, "route %s has no handler", p);
    cr->segs = xcalloc(MAX_SEGMENTS, sizeof *cr->segs);
    if (p[1] == '\0') return 0;                     /* "/" */
    const char *s = p + 1;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (cr->nseg == MAX_SEGMENTS) return err_set(err, -EINVAL, "route %s: too many segments", p);
        if (cr->rest) return err_set(err, -EINVAL, "route %s: '*' must be the last segment", p);
        if (len == 0) return err_set(err, -EINVAL, "route %s: empty segment", p);
        struct seg *g = &cr->segs[cr->nseg++];
        if (s[0] == ':' || s[0] == '*') {
            g->kind = s[0] == ':' ? SEG_PARAM : SEG_REST;
            g->s = s + 1;
            g->len = len - 1;
            if (g->len == 0) return err_set(err, -EINVAL, "route %s: parameter without a name", p);
            for (size_t i = 0; i < g->len; i++) {
                char ch = g->s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
                    return err_set(err, -EINVAL, "route %s: bad parameter name", p);
            }
            for (size_t j = 0; j + 1 < cr->nseg; j++)
                if (cr->segs[j].kind != SEG_LIT && cr->segs[j].len == g->len && memcmp(cr->segs[j].s, g->s, g->len) == 0)
                    return err_set(err, -EINVAL, "route %s: duplicate parameter name", p);
            if (g->kind == SEG_REST) cr->rest = 1;
        } else {
            g->kind = SEG_LIT;
            g->s = s;
            g->len = len;
        }
        if (!slash) break;
        s = slash + 1;
    }
    return 0;
}

int http_router_new(const struct http_route *routes, size_t n, void *ud, http_router_t **out, nb_err_t *err)
{
    http_router_t *r = xcalloc(1, sizeof *r);
    r->routes = xcalloc(n ? n : 1, sizeof *r->routes);
    r->n = n;
    r->ud = ud;
    for (size_t i = 0; i < n; i++) {
        r->routes[i].router = r;
        int rc = compile(&r->routes[i], &routes[i], err);
        if (rc < 0) {
            http_router_free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

void http_router_set_before(http_router_t *r, http_before_fn before, void *before_ud)
{
    r->before = before;
    r->before_ud = before_ud;
}

void http_router_free(http_router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->routes[i].segs);
    free(r->routes);
    free(r);
}

static int method_match(const char *rm, const char *m, int is_head)
{
    if (!rm || strcmp(rm, "*") == 0 || strcmp(rm, m) == 0) return 1;
    return is_head && strcmp(rm, "GET") == 0;
}

/* A request path split into raw segments, each decoded lazily once. */
struct pathsegs {
    size_t n;
    const char *raw[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    const char *dec[MAX_SEGMENTS];
};

static int split_path(const char *path, struct pathsegs *ps)
{
    ps->n = 0;
    if (path[0] != '/') return -1;
    if (path[1] == '\0') return 0;
    const char *s = path + 1;
    for (;;) {
        if (ps->n == MAX_SEGMENTS) return -1;
        const char *slash = strchr(s, '/');
        ps->raw[ps->n] = s;
        ps->len[ps->n] = slash ? (size_t)(slash - s) : strlen(s);
        ps->dec[ps->n] = NULL;
        ps->n++;
        if (!slash) return 0;
        s = slash + 1;
    }
}

static const char *seg_decoded(http_req_t *req, struct pathsegs *ps, size_t i)
{
    if (!ps->dec[i]) ps->dec[i] = http_req_decode(req, ps->raw[i], ps->len[i], 0);
    return ps->dec[i];
}

/* Does cr's pattern match?  Path-only; the method is checked by the caller. */
static int path_match(http_req_t *req, const struct croute *cr, struct pathsegs *ps)
{
    size_t fixed = cr->rest ? cr->nseg - 1 : cr->nseg;
    if (cr->rest ? ps->n < fixed : ps->n != fixed) return 0;
    for (size_t i = 0; i < fixed; i++) {
        const struct seg *g = &cr->segs[i];
        const char *d = seg_decoded(req, ps, i);
        if (!d) return 0;
        if (g->kind == SEG_LIT) {
            if (strlen(d) != g->len || memcmp(d, g->s, g->len) != 0) return 0;
        } else if (!*d) {
            return 0;                               /* ":name" needs a non-empty segment */
        }
    }
    return 1;
}

static void add_params(http_req_t *req, const struct croute *cr, struct pathsegs *ps)
{
    size_t fixed = cr->rest ? cr->nseg - 1 : cr->nseg;
    for (size_t i = 0; i < fixed; i++)
        if (cr->segs[i].kind == SEG_PARAM) http_req_add_param(req, cr->segs[i].s, cr->segs[i].len, ps->dec[i]);
    if (cr->rest) {
        const struct seg *g = &cr->segs[cr->nseg - 1];
        const char *rest = "";
        if (ps->n > fixed) {
            const char *raw = ps->raw[fixed];
            rest = http_req_decode(req, raw, strlen(raw), 0);
            if (!rest) rest = "";
        }
        http_req_add_param(req, g->s, g->len, rest);
    }
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t ml = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0')) return;
    size_t len = strlen(allow);
    if (len + ml + 3 >= cap) return;
    if (len) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, m, ml + 1);
}

static void run_route(http_req_t *req, const struct croute *cr)
{
    http_router_t *r = cr->router;
    if (r->before && r->before(req, cr->route, r->before_ud)) return;
    cr->route->handler(req, r->ud);
}

/* Find req's route and record it (flags, parameters); NULL when there is
 * none, after answering 404, 405 or OPTIONS' 204. */
static const struct croute *route_match(http_router_t *r, http_req_t *req)
{
    struct pathsegs ps;
    const char *m = http_req_method(req);
    int is_head = http_req_method_id(req) == HTTP_HEAD;
    char allow[256] = "";
    int path_hit = 0;
    if (split_path(http_req_raw_path(req), &ps) == 0) {
        for (size_t i = 0; i < r->n; i++) {
            const struct croute *cr = &r->routes[i];
            if (!path_match(req, cr, &ps)) continue;
            if (method_match(cr->route->method, m, is_head)) {
                http_req_set_route(req, cr->route->flags, cr);
                add_params(req, cr, &ps);
                return cr;
            }
            path_hit = 1;
            allow_add(allow, sizeof allow, cr->route->method);
            if (strcmp(cr->route->method, "GET") == 0) allow_add(allow, sizeof allow, "HEAD");
        }
    }
    if (!path_hit) {
        http_respond_error(req, 404, "not_found", "no such resource");
        return NULL;
    }
    if (http_req_method_id(req) == HTTP_OPTIONS) {
        allow_add(allow, sizeof allow, "OPTIONS");
        http_set_header(req, "Allow", allow);
        http_respond(req, 204, NULL, "", 0);
        return NULL;
    }
    http_set_header(req, "Allow", allow);
    http_respond_error(req, 405, "method_not_allowed", "method %s not allowed here", m);
    return NULL;
}

void http_router_handle(http_req_t *req, void *router)
{
    /* A request the gate let in was matched then. */
    const struct croute *cr = http_req_route(req);
    if (!cr) cr = route_match(router, req);
    if (cr) run_route(req, cr);
}

int http_router_gate(http_req_t *req, void *router)
{
    http_router_t *r = router;
    const struct croute *cr = route_match(r, req);
    if (!cr) return 1;
    if (cr->route->flags & HTTP_ROUTE_STREAM_BODY) {
        http_req_set_body_stream(req);
    } else {
        /* The server left the max_body check to us (it depends on the
         * route): refused on the head, before the hook (a 413 whoever asks). */
        const struct http_limits *lim = http_req_limits(req);
        long long cl = http_req_content_length(req);
        if (lim && cl > 0 && (unsigned long long)cl > lim->max_body) {
            http_respond_error(req, 413, "payload_too_large", "request body too large");
            return 1;
        }
    }
    return r->before ? r->before(req, cr->route, r->before_ud) : 0;
}

void http_router_continue(http_req_t *req)
{
    const struct croute *cr = http_req_route(req);
    NB_ASSERT(cr);
    cr->route->handler(req, cr->router->ud);
}
