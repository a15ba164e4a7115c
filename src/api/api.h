/*
 * api — the REST layer of `nbhub serve` (docs/api.md is the contract).
 *
 * The API sits between the HTTP server (src/http) and the scheduler and
 * store below it.  It owns a route table (api.c), an authentication and
 * authorization hook that every request passes through (api_auth.c), the
 * handlers (one file per concern: users, flows, runs, events, metrics) and
 * the conversion of store rows to the JSON shapes of the contract
 * (api_json.c).  It keeps no state of its own beyond the connected SSE
 * clients: everything else is read from the store or asked of the
 * scheduler at request time.
 *
 * Wiring, in `nbhub serve`:
 *
 *     sched_opts.on_change = on_change;   // a function calling api_notify(api)
 *     sched_new(&sched_opts, &sched, &err);
 *     api_opts_t o = { loop, store, sched, pool, home, version, secure };
 *     api_new(&o, &api, &err);
 *     srv = http_server_new(loop, NULL, api_handle, api);
 *     http_server_set_gate(srv, api_gate, api);
 *     api_set_server(api, srv);  api_set_pool_sizes(api, ...);
 *     ...
 *     api_set_stopping(api);            // SIGTERM: /healthz answers 503
 *     http_server_stop(srv, ...);       // closes the SSE streams
 *     api_free(api);                    // in the stop callback, then sched_free
 *
 * Ownership: the API borrows loop, store, sched and pool (they must outlive
 * it); home and version are copied.  Everything runs on the loop's thread.
 */
#ifndef NBHUB_API_H
#define NBHUB_API_H

#include <stddef.h>
#include <uv.h>
#include "iso/limits.h"

#include "http/hclient.h"
#include "http/server.h"
#include "hub/hub.h"
#include "sched/pool.h"
#include "sched/sched.h"
#include "store/store.h"
#include "util/err.h"

typedef struct api api_t;

#define API_SPARK_MAX_CLUSTERS  2
#define API_SPARK_MAX_MEMORY_MB 8192

typedef struct api_opts {
    uv_loop_t  *loop;
    store_t    *store;
    sched_t    *sched;           /* NULL: scheduler endpoints answer 503 */
    pool_t     *pool;            /* may be NULL: no warm kernels */
    const char *home;            /* $NBHUB_HOME; task files must lie below it */
    const char *version;         /* shown by /api/v1/info */
    const char *self_exe;        /* the nbhub binary (Spark clusters run `nbhub spark up`); NULL = "nbhub" */
    int         secure_cookies;  /* 1 when served over https: cookies get Secure */
    hclient_t  *hc;              /* borrowed, outlives the api: the Spark UI proxy's client; NULL = 503 */
    int         isolation_system;   /* tasks run as their owners (docs/security.md) */
    /* isolation: system — what Spark clusters started through the API run
     * as: the owner's account (template, created when missing) inside the
     * owner's cgroup with their limits when cgroups are usable. */
    const char *account_tmpl;
    int         create_accounts;
    int         cgroups;
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void       *limits_ud;
    char *const *trusted_users;  /* NULL-terminated, may be NULL: under isolation shared, who
                                    besides admins may save commands and outside paths */
    size_t      anon_body_max;   /* body limit on public routes (login): 0 = API_ANON_BODY_MAX */
    /* nbhub.yaml spark: what one user (not an admin) may start through the
     * API: clusters starting or up, and their workers x worker_memory in
     * MB.  0 = the defaults, API_SPARK_MAX_CLUSTERS and _MEMORY_MB. */
    int         spark_max_clusters;
    long        spark_max_memory_mb;
    /* output.html (api_runs.c): a notebook larger than render_max bytes gets
     * a "too big to render" page instead; at most render_jobs renders run at
     * once and render_queue more wait, beyond that 503. */
    int64_t     render_max;      /* bytes; 0 = default (32 MiB); < 0 = never render */
    unsigned    render_jobs;     /* 0 = default (2) */
    unsigned    render_queue;    /* 0 = default (16) */
    hub_t      *hub;             /* notebook servers (borrowed, outlives the api); NULL: /api/v1/servers
                                    and /user/ answer 503 */
    /* nbhub.yaml auth: (borrowed, outlives the api).  NULL: password logins
     * only.  With oidc.enabled the api discovers the provider (needs hc)
     * and offers /auth/oidc/ (api_oidc.c). */
    const struct auth_conf *auth;
    const char *base_url;        /* nbhub's public URL, for redirect URIs; NULL: the request's Host */
    int         livy_csrf;       /* nbhub.yaml livy.csrf: X-Requested-By on the Livy API's POST/DELETE */
} api_opts_t;

/* Anonymous bodies: a login is a few hundred bytes. */
#define API_ANON_BODY_MAX (64 * 1024)

/* A new API; -EINVAL with a message for missing options.  *out is owned by
 * the caller (api_free). */
int  api_new(const api_opts_t *o, api_t **out, nb_err_t *err);

/* The http_handler_fn to give http_server_new, with the api as ud. */
void api_handle(http_req_t *req, void *api);
/* The same pair for a livy_listen listener (nbhub.yaml): the Livy API
 * (docs/livy.md) at / instead of /livy/, and nothing else. */
void api_livy_handle(http_req_t *req, void *api);
int  api_livy_gate(http_req_t *req, void *api);
/* The http_gate_fn to give http_server_set_gate, with the api as ud: the
 * route and its authentication and authorization are checked on the head,
 * before the body is read; public routes get anon_body_max. */
int  api_gate(http_req_t *req, void *api);

/* New events were committed (the scheduler's on_change): read them with
 * store_events_since and push each to the SSE clients allowed to see it. */
void api_notify(api_t *a);

/* The daemon is shutting down: /healthz answers 503 from now on. */
void api_set_stopping(api_t *a);

/* The configured warm pool sizes per kernel spec, for /api/v1/info and
 * nbhub_kernel_pool_ready / _size in /metrics (copied; replaces earlier). */
void api_set_pool_sizes(api_t *a, const char *const *names, const unsigned *sizes, size_t n);

/* The server, so /metrics can report nbhub_http_connections (optional). */
void api_set_server(api_t *a, http_server_t *srv);

/* The hub (src/hub/hub.h) whose servers /hub/api shows, starts and stops,
 * and whose servers are the OAuth clients; borrowed, outlives the api.
 * Without one, users have no servers. */
struct hub;
void api_set_hub(api_t *a, struct hub *hub);

/* The Livy session manager (src/livy/livy.h) behind /livy/ (borrowed;
 * NULL: those routes answer 503). */
struct livy;
void api_set_livy(api_t *a, struct livy *livy);

/* Free the API.  SSE streams still open are ended (normally the server's
 * graceful stop has closed them already).  NULL is a no-op. */
void api_free(api_t *a);

#endif
