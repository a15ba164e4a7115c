/*
 * http/router — a declarative route table in front of http/server.
 *
 *     static const struct http_route routes[] = {
 *         { "GET",  "/api/v1/flows",                    flows_list, API_AUTH },
 *         { "POST", "/api/v1/flows/:name/runs",         run_create, API_AUTH | API_CSRF },
 *         { "GET",  "/api/v1/flows/:name/runs/:id",     run_get,    API_AUTH },
 *         { "GET",  "/static/" "*path",                 static_get, 0 },
 *     };
 *
 * Patterns: literal segments, ":name" (one non-empty segment) and a final
 * "*name" (the rest of the path, possibly empty).  The first route in table
 * order whose pattern and method match wins.  Matching is on decoded
 * segments, so "/a%2Fb" is one segment whose value is "a/b".  Parameters are
 * read with http_param(req, "name").
 *
 * Methods: "GET" also answers HEAD (the server drops the body); "*" or NULL
 * matches any method.  A path that matches with no route for the method
 * gets 405 with Allow; OPTIONS on such a path gets 204 with Allow; no path
 * match gets 404.
 *
 * Flags are not interpreted here: they are handed to the before hook and to
 * the handler (http_req_route_flags), which is where the API layer checks
 * auth and CSRF.
 *
 * Ownership: the router borrows the route table (it must outlive the
 * router; a static const table does) and copies nothing else.
 */
#ifndef NBHUB_HTTP_ROUTER_H
#define NBHUB_HTTP_ROUTER_H

#include "http/server.h"

/* The one flag the router itself interprets: the route's request bodies are
 * streamed to its handler (http_req_set_body_stream) instead of being
 * buffered by the server, and are not held to max_body.  The handler is
 * called as soon as the before hook has accepted the head, and reads the
 * body with http_req_read_start (http/proxy does).  The API layer's flags
 * use the low bits. */
#define HTTP_ROUTE_STREAM_BODY (1u << 31)

struct http_route {
    const char     *method;     /* "GET", "POST", ...; "*" or NULL = any */
    const char     *pattern;    /* "/api/v1/flows/:name/runs/:id", "/static/" "*rest" */
    http_handler_fn handler;    /* called with the router's ud */
    unsigned        flags;      /* for the API layer (auth, CSRF, ...) */
};

typedef struct http_router http_router_t;

/* Runs for every matched route before its handler.  Return 0 to go on to
 * the handler; non-zero when the hook took the request over: it answered
 * it, or will answer it later, or will call http_router_continue (an
 * asynchronous auth check). */
typedef int (*http_before_fn)(http_req_t *req, const struct http_route *route, void *ud);

/* Compile the table; -EINVAL with a message for a bad pattern (empty
 * segment, wildcard not last, duplicate parameter name, ...). */
int  http_router_new(const struct http_route *routes, size_t n, void *ud, http_router_t **out, nb_err_t *err);
void http_router_set_before(http_router_t *r, http_before_fn before, void *before_ud);
/* The server's handler: pass http_router_handle with the router as ud. */
void http_router_handle(http_req_t *req, void *router);
/* An http_gate_fn (server.h) with the router as ud: match the route (404,
 * 405 and OPTIONS are answered here) and run the before hook on the head
 * alone, so a request it refuses is refused before its body is read.  The
 * hook must then answer synchronously when it returns non-zero.  A request
 * let in keeps its route, and http_router_handle runs the before hook
 * again when the body is complete: what the hook checks (a revoked token,
 * a deleted flow) may change while a slow body arrives. */
int  http_router_gate(http_req_t *req, void *router);
/* Run the matched route's handler for a request a before hook took over. */
void http_router_continue(http_req_t *req);
void http_router_free(http_router_t *r);

#endif
