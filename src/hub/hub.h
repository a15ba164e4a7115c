/*
 * hub — users' notebook servers (docs/hub.md): profiles, the lifecycle of
 * each server (start, readiness, stop, failure), its JupyterHub-side
 * identity (API token, OAuth client id, URLs), progress events, activity,
 * and adoption of the servers still running after nbhub serve restarts.
 *
 * The layer sits between http and api: the REST handlers (api_servers.c:
 * /api/v1/servers; api_hub*.c: JupyterHub's /hub/api) and the proxy routes
 * (api_proxy.c: /user/NAME[/SERVER]/) call it; it calls the store
 * (store_hub.c: the servers rows), a spawner backend (spawner.h; the local
 * one is spawn_local.c) and hooks (Spark clusters, culling).
 *
 * A server is one row of `servers` (user, name: '' = the default server),
 * kept after a stop as in JupyterHub (until removed), and one hub_server_t
 * in memory for every row, loaded at hub_new.  States:
 *
 *      stopped|failed --start--> starting --ready--> running
 *           ^                      |   \               |
 *           |                      |    `--timeout/exit--> failed
 *           `----- stopping <--stop-+-------------------'
 *
 * running -> stopped also when the process exits by itself (a row whose
 * process is gone after a restart too).  A server that fails keeps its
 * error and the tail of its log for the page.
 *
 * Ownership: hub_new's *out belongs to the caller (hub_free).  hub_t
 * borrows loop, store, hclient and conf (they outlive it).  hub_server_t
 * and hub_profile_t pointers are owned by the hub: a server pointer stays
 * valid until hub_free or until the server is removed (hub_server_stop
 * with remove=1, once the stop is done; the `gone` hook runs before that),
 * so callers that keep one across loop turns look it up again by id
 * (hub_server_by_id).  json_t results are new references.  Strings given
 * in are borrowed for the call.  One loop thread.
 *
 * Stability: h4 (api_hub*.c) and h7 (hub_spark.c, hub_cull.c) build on
 * this header; changes are additions, noted here:
 *   - hub_server_client_id, hub_set_urls, hub_server_touch (added with the implementation)
 *   - hub_server_stop_because, hub_server_stop_reason (h9: why a server stopped)
 */
#ifndef NBHUB_HUB_H
#define NBHUB_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "http/hclient.h"
#include "hub/profile.h"
#include "iso/limits.h"
#include "store/store.h"
#include "util/err.h"

typedef struct hub hub_t;
typedef struct hub_server hub_server_t;

typedef enum hub_state {
    HUB_STOPPED = 0,
    HUB_STARTING,
    HUB_RUNNING,
    HUB_STOPPING,
    HUB_FAILED,
} hub_state_t;

/* "stopped", "starting", "running", "stopping", "failed" (the store's). */
const char *hub_state_name(hub_state_t s);

typedef struct hub_opts {
    uv_loop_t   *loop;
    store_t     *store;
    hclient_t   *hc;            /* readiness polls; may be NULL (a private one is made) */
    const char  *home;          /* $NBHUB_HOME: logs in <home>/servers/ */
    const char  *self_exe;      /* the nbhub binary, for `nbhub __as-user` */
    /* How users reach nbhub (JUPYTERHUB_PUBLIC_URL and _PUBLIC_HUB_URL,
     * the OAuth callback): "http://host:port", no trailing slash; NULL =
     * hub_url. */
    const char  *public_url;
    /* How a server reaches nbhub's /hub/api: "http://127.0.0.1:PORT" (one
     * of the TCP listen addresses), no trailing slash.  NULL: servers
     * cannot be started (hub_server_start answers -ENOTSUP). */
    const char  *hub_url;
    /* isolation: system -- servers run as the user's account, through
     * `nbhub __as-user` (docs/security.md) */
    int          isolation_system;
    const char  *account_tmpl;  /* NULL = UACCT_DEFAULT_TEMPLATE */
    int          create_accounts;
    int          cgroups;       /* cgroups are usable: profile limits enforced */
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void        *limits_ud;
    const hub_conf_t *conf;     /* borrowed; NULL = the defaults (one "default" profile) */
} hub_opts_t;

/* Who asks (the API's authenticated user). */
typedef struct hub_user {
    int64_t     id;
    const char *name;
    int         is_admin;
} hub_user_t;

/* -EINVAL with a message for missing options.  Loads every servers row.
 * Nothing is started or adopted yet: call hub_adopt. */
int  hub_new(const hub_opts_t *o, hub_t **out, nb_err_t *err);

/* At start, after hub_new: re-find the process of every 'starting' or
 * 'running' row (local backend: pid + /proc start time + port answering)
 * and supervise it again; rows whose process is gone become 'stopped'
 * (the stopped hook runs).  Returns the number of servers adopted. */
int  hub_adopt(hub_t *h);

/* The daemon stops.  stop_servers = 1 (--stop-servers-on-exit): every
 * server is stopped (SIGTERM, then SIGKILL after the grace) and done() is
 * called when all are gone; 0: servers are left running (a later nbhub
 * adopts them) and done() is called at once.  done may be NULL. */
void hub_shutdown(hub_t *h, int stop_servers, void (*done)(void *ud), void *ud);

/* NULL is a no-op.  Only after hub_shutdown's done (or without servers
 * running under our supervision). */
void hub_free(hub_t *h);

/* hub_url and public_url as in hub_opts_t, known once nbhub listens (the
 * port may be chosen then).  Copied. */
void hub_set_urls(hub_t *h, const char *hub_url, const char *public_url);

/* The configuration in use (never NULL). */
const hub_conf_t *hub_conf(const hub_t *h);

/* ---- profiles ----------------------------------------------------------- */

size_t               hub_profiles_count(const hub_t *h);
const hub_profile_t *hub_profile_at(const hub_t *h, size_t i);
/* By name; NULL or "" = the first profile.  NULL if there is none. */
const hub_profile_t *hub_profile_find(const hub_t *h, const char *name);
/* May user (with these groups, a NULL-terminated list, may be NULL) use
 * the profile?  1 or 0.  hub_profile_allowed_u looks the groups up. */
int  hub_profile_allowed(const hub_profile_t *p, const char *user, const char *const *groups,
                         int is_admin);
int  hub_profile_allowed_u(hub_t *h, const hub_profile_t *p, const hub_user_t *u);
/* The profiles u may use, for the UI and /api/v1/profiles: [{name,
 * description, default_url, limits: {cpu, memory}, spark: {...}|null}]. */
json_t *hub_profiles_json(hub_t *h, const hub_user_t *u);

/* ---- servers ------------------------------------------------------------ */

/* Server names: "" (the default server) or [a-z0-9][a-z0-9._-]{0,62},
 * but not a path of the default server ("api", "lab", "tree", "files",
 * "static", "oauth_callback", "default", ...: /user/NAME/SEG/ is the named
 * server SEG when it exists).  1 if valid. */
int  hub_server_name_valid(const char *name);

/* Start user's server `server_name` ("" = default).  user_options_json is
 * JupyterHub's user options (a JSON object as text, may be NULL):
 * {"profile": "small"}; other members are kept and shown back.
 *   0   already running
 *   1   started, pending (progress events follow)
 *  <0   refused, nothing started; err says why:
 *       -EINVAL  bad server name, unknown profile, named servers disabled,
 *                bad user_options (HTTP 400)
 *       -EACCES  profile not allowed for the user (403)
 *       -EUSERS  the user already has max_servers_per_user servers running
 *                or starting (JupyterHub answers 400 here)
 *       -EBUSY   the server is starting or stopping (400)
 *       -ENOTSUP the hub cannot start servers (no TCP hub_url) (503)
 *       other    store errors, account problems (500)
 * out (may be NULL) is set to the server on 0 and 1. */
int  hub_server_start(hub_t *h, const hub_user_t *user, const char *server_name,
                      const char *user_options_json, hub_server_t **out, nb_err_t *err);

/* Stop it: 0 = stopped (or already), 1 = pending (the stop completes
 * later; progress/hook follow), -ENOENT = no such server.  remove = 1
 * also deletes the row (and its tokens) once stopped (JupyterHub's
 * {"remove": true}); removing the default server only stops it.
 * hub_server_stop_because says why ("stopped by alice", "culled: idle for
 * 312 s (cull.timeout 300 s)"; NULL = "stopped"): kept as the server's
 * stop_reason (hub_server_stop_reason) when it was starting or running --
 * the first reason of a stop wins.  hub_server_stop gives none. */
int  hub_server_stop(hub_t *h, hub_server_t *s, int remove, nb_err_t *err);
int  hub_server_stop_because(hub_t *h, hub_server_t *s, int remove, const char *reason, nb_err_t *err);
/* Stop every server of the user (user deleted, disabled): named ones too. */
void hub_user_stop_all(hub_t *h, int64_t user_id, int remove);

/* Lookups: by owner's name and server name ("" = default); by servers.id
 * (the server_id of a kind 'server' or 'oauth' token); NULL if none. */
hub_server_t *hub_server_find(hub_t *h, const char *user_name, const char *server_name);
hub_server_t *hub_server_by_id(hub_t *h, int64_t id);
/* Iteration over every server in row order: start with prev = NULL.  The
 * _of variant only over user_id's. */
hub_server_t *hub_server_next(hub_t *h, hub_server_t *prev);
hub_server_t *hub_server_next_of(hub_t *h, int64_t user_id, hub_server_t *prev);
/* Number of user_id's servers that are starting, running or stopping. */
unsigned hub_servers_active(hub_t *h, int64_t user_id);

/* Fields.  Strings are borrowed from the server (valid as it is). */
int64_t      hub_server_id(const hub_server_t *s);
int64_t      hub_server_user_id(const hub_server_t *s);
const char  *hub_server_user(const hub_server_t *s);      /* owner's name */
const char  *hub_server_name(const hub_server_t *s);      /* "" = default */
const char  *hub_server_profile(const hub_server_t *s);   /* profile name */
hub_state_t  hub_server_state(const hub_server_t *s);
int          hub_server_ready(const hub_server_t *s);     /* running */
/* "/user/NAME/" or "/user/NAME/SERVER/" (names URL-escaped). */
const char  *hub_server_prefix(const hub_server_t *s);
int64_t      hub_server_started_at(const hub_server_t *s); /* µs, 0 = never */
int64_t      hub_server_ready_at(const hub_server_t *s);
int64_t      hub_server_last_activity(const hub_server_t *s);
const char  *hub_server_error(const hub_server_t *s);     /* NULL unless failed */
/* Why it last stopped or failed (kept on the row until its next start),
 * NULL if it never did: "stopped by alice", "stopped by admin root",
 * "culled: ...", "exited with code 1", "was killed by signal 9", "found
 * gone after a restart of nbhub", "start timed out (...)", "exited with
 * code 3 before it was ready", "the user is being deleted", "stopped with
 * nbhub serve (--stop-servers-on-exit)". */
const char  *hub_server_stop_reason(const hub_server_t *s);
int          hub_server_pid(const hub_server_t *s);       /* 0 = none */
/* JupyterHub's OAuth client id of the server, jupyterhub-user-NAME[-SERVER]
 * (names quoted as JupyterHub does); new string.  Its redirect URI is
 * hub_server_prefix() + "oauth_callback", its client secret the server's
 * API token (kind 'server', server_id = the server's id). */
char        *hub_server_client_id(const hub_server_t *s);
/* The profile's definition as started (NULL if that profile is no longer
 * configured). */
const hub_profile_t *hub_server_profile_def(hub_t *h, const hub_server_t *s);

/* JupyterHub's server model: {name, ready, pending ("spawn", "stop" or
 * null), stopped, url, progress_url, started, last_activity, state: {},
 * user_options}. */
json_t *hub_server_model(hub_t *h, const hub_server_t *s);
/* nbhub's /api/v1/servers object: {owner, name, profile, state, url,
 * started_at, ready_at, last_activity, pid, memory (RSS bytes of the
 * process tree or cgroup, null if unknown), spark: hub_spark_json's
 * {cluster, state, master_url, connect_url, ui_url, workers,
 * worker_memory} | null, error, stop_reason (hub_server_stop_reason),
 * log_tail (on failure)}. */
json_t *hub_server_json(hub_t *h, const hub_server_t *s);

/* The last `max` bytes of the server's log (new string, may be ""). */
char   *hub_server_log_tail(hub_t *h, const hub_server_t *s, size_t max);

/* Where the proxy sends a running server's requests.  0 and *t filled
 * (strings borrowed from the server), or -ENOTCONN when it is not running
 * (starting servers are not reachable yet). */
typedef struct hub_target {
    const char *host;             /* "127.0.0.1" for the local backend */
    int         port;
    const char *upstream_token;   /* command: profiles: the server's own
                                     token, sent as Authorization: token X;
                                     NULL for jupyterhub-singleuser */
} hub_target_t;
int  hub_server_target(const hub_server_t *s, hub_target_t *t);

/* Activity at ts_us (µs; from POST /hub/api/users/NAME/activity and from
 * proxied traffic): last_activity = max(old, ts), written to the store at
 * most once a minute per server. */
void hub_server_activity(hub_t *h, hub_server_t *s, int64_t ts_us);

/* hub_server_activity(hub, s, now), for callbacks that hold only s (the
 * proxy's on_activity). */
void hub_server_touch(hub_server_t *s);

/* Record the server's Spark cluster (name NULL = none; hub_spark.c).  What
 * the page shows of it is read from the cluster's files (hub_spark_json). */
void hub_server_set_spark(hub_t *h, hub_server_t *s, const char *cluster);
const char *hub_server_spark_cluster(const hub_server_t *s);

/* ---- progress ----------------------------------------------------------- */

/* Events as JupyterHub sends them on .../server/progress:
 *   {"progress": 0..100, "message": "..."}
 *   {"progress": 100, "ready": true, "message": "...", "url": "/user/NAME/"}
 *   {"failed": true, "progress": 100, "message": "... log tail ..."}
 * The callback borrows ev.  final = 1 for the last one (ready or failed),
 * after which the subscription is over and freed by the hub (do not
 * unsubscribe it). */
typedef struct hub_progress_sub hub_progress_sub_t;
typedef void (*hub_progress_fn)(const json_t *ev, int final, void *ud);

/* Subscribe: the events of the current start so far are delivered at once
 * (from within this call), then the new ones as they happen.
 *   1  subscribed (*out set; end it early with hub_progress_unsubscribe)
 *   0  the start was already over: its final event (ready, or failed with
 *      the error) was delivered from within the call; nothing to end
 *  -ESRCH  the server is neither starting nor running nor failed (never
 *      started, or stopped): JupyterHub answers 400 */
int  hub_progress_subscribe(hub_t *h, hub_server_t *s, hub_progress_fn cb, void *ud,
                            hub_progress_sub_t **out);
void hub_progress_unsubscribe(hub_t *h, hub_progress_sub_t *sub);

/* ---- hooks (Spark clusters, culling) ------------------------------------ */

/* Called on the loop thread; s is valid for the call.
 *   starting  before the process is started: may add environment with
 *             hub_server_setenv (SPARK_REMOTE...); a negative return
 *             refuses the start with err (the server becomes failed)
 *   started   the server became ready (running)
 *   stopped   the server is no longer running: stopped, failed, exited,
 *             culled, or found gone at hub_adopt
 *   gone      the server row is being removed (after stopped) */
typedef struct hub_hooks {
    int  (*starting)(hub_t *h, hub_server_t *s, void *ud, nb_err_t *err);
    void (*started)(hub_t *h, hub_server_t *s, void *ud);
    void (*stopped)(hub_t *h, hub_server_t *s, void *ud);
    void (*gone)(hub_t *h, hub_server_t *s, void *ud);
    void *ud;
} hub_hooks_t;
/* Add a hook set (copied); called in the order added. */
void hub_add_hooks(hub_t *h, const hub_hooks_t *hooks);
/* From a starting hook: an extra "K=V" for the server's environment
 * (copied; after the profile's env, so it wins). */
void hub_server_setenv(hub_server_t *s, const char *key, const char *value);

#endif
