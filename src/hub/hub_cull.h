/*
 * hub_cull — idle culling built into the hub (docs/hub.md "Idle culling"),
 * nbhub.yaml `hub: {cull: {timeout, keep_busy, max_age, every}}`.
 *
 * Every cull.every (default timeout / 2, at most 5 min) each running
 * server is looked at:
 *
 *   - max_age (0 = never): a server started longer ago than that is
 *     culled, busy or not;
 *   - idle: the latest of the activity the hub knows (what the server
 *     pushed to /hub/api/users/NAME/activity, proxied traffic other than
 *     websocket pings: hub_server_last_activity), its ready time, and the
 *     server's own `last_activity` from GET PREFIX/api/status (which
 *     counts kernel activity: every message a kernel sends).  The server
 *     is asked only when what the hub knows is already older than
 *     cull.timeout, so an active server costs nothing; what it answers is
 *     given back to the hub (hub_server_activity) for the page and the
 *     next round;
 *   - keep_busy (default true): an idle server whose kernels are busy
 *     (/api/status `kernels` > 0, then GET PREFIX/api/kernels: an
 *     `execution_state` "busy") is spared: a cell that runs for hours
 *     sends nothing while it computes.  Open connections alone (a tab
 *     left open) do not make a server busy.
 *
 * Both requests carry `no_track_activity=1` (jupyter-server does not count
 * them as activity) and a credential of the server's user: for
 * jupyterhub-singleuser an OAuth-kind token bound to the server, scoped
 * access:servers!server=USER/NAME, made by us on first need and kept in
 * memory (it dies with the server's tokens when the server stops); for a
 * `command:` profile the server's own token.  A server that cannot be
 * reached (refused, timeout) is culled on what the hub knows; one that
 * refuses the credential (401/403) is culled only without keep_busy
 * (whether it is busy cannot be known).
 *
 * A cull is the normal stop (hub_server_stop_because: SIGTERM, its Spark
 * cluster removed by hub_spark's hook), logged with its reason ("server
 * culled" user= server= reason="idle for 312 s (cull.timeout 300 s)"),
 * kept as the server's stop_reason ("culled: idle for ...": the row, the
 * API, the page) and per server (hub_cull_last).
 *
 * Ownership: *out belongs to the caller (hub_cull_free, before hub_free:
 * requests in flight look their server up by id when they end).  loop,
 * hc and store are borrowed and outlive it.  One loop thread.
 */
#ifndef NBHUB_HUB_CULL_H
#define NBHUB_HUB_CULL_H

#include <stdint.h>
#include <jansson.h>
#include "hub/hub.h"
#include "http/hclient.h"
#include "store/store.h"
#include "util/err.h"

#define HUB_CULL_EVERY_MAX_MS (5 * 60 * 1000)

typedef struct hub_cull hub_cull_t;

typedef struct hub_cull_opts {
    uv_loop_t  *loop;
    hclient_t  *hc;         /* the daemon's client (requests to 127.0.0.1) */
    store_t    *store;      /* for the servers' poll tokens */
    const char *home;       /* $NBHUB_HOME (required; nothing is written there) */
} hub_cull_opts_t;

/* Reads the cull settings of hub_conf(h); with neither a timeout nor a
 * max_age nothing is ever culled (and no timer runs).  -EINVAL for
 * missing options. */
int  hub_cull_new(hub_t *h, const hub_cull_opts_t *o, hub_cull_t **out, nb_err_t *err);
/* One round now (the timer runs them too). */
void hub_cull_run(hub_cull_t *c);
/* The latest cull of server id: {at: µs, reason} (new reference), or NULL. */
json_t *hub_cull_last(hub_cull_t *c, int64_t server_id);
/* NULL is a no-op. */
void hub_cull_free(hub_cull_t *c);

/* Seconds since the epoch, in µs, of an ISO 8601 time as jupyter-server
 * writes it ("2026-12-06T08:40:00.123456Z", "+00:00" or no zone = UTC);
 * -1 if it does not parse. */
int64_t hub_cull_parse_time(const char *s);

#endif
