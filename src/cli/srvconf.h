/*
 * srvconf — nbhub.yaml, the configuration file of `nbhub serve`.
 *
 *     listen: 127.0.0.1:8765        # or unix:/run/nbhub.sock; a list for several
 *     listen:                       # ... entries may speak TLS (docs/serve.md)
 *       - {addr: "0.0.0.0:8443", tls: {cert: /etc/nbhub/cert.pem, key: /etc/nbhub/key.pem}}
 *       - 127.0.0.1:8765
 *     home: /var/lib/nbhub          # $NBHUB_HOME, default ~/.local/share/nbhub
 *     flows_dir: flows              # relative to home; default <home>/flows
 *     base_url: https://nbhub.example.com   # for links in webhooks
 *     max_active_tasks: 16          # task processes at once, all flows
 *     kill_grace: 10s               # timeout/cancel: SIGINT, SIGTERM, then SIGKILL after this
 *     shutdown_grace: 30s           # SIGTERM of the daemon: tasks get this long to finish
 *     pool: {python3: 2}            # warm kernels per kernel spec
 *     log_level: info
 *     secure_cookies: true          # default: true when a listener has tls
 *     isolation: system             # shared (default unless root) | system (docs/security.md)
 *     system_user: "nbhub-{name}"   # system: the Unix account of each nbhub user
 *     create_system_users: false    # system: useradd missing accounts
 *     limits: {memory: 4g, cpu: 2, pids: 512}   # each user's (cgroups)
 *     user_limits: {alice: {memory: 8g}}         # per user, instead of limits
 *     trusted_users: [alice]        # shared: may save command tasks and paths outside the flow's directory
 *     http:                         # request body limits (docs/serve.md)
 *       max_body: 8m                # an authenticated request's body
 *       anon_body: 64k              # a request no credential vouches for (login)
 *       body_budget: 64m            # all bodies being received at once; 0 = no budget
 *       min_body_rate: 1k           # bytes/s, over each window of body_grace; 0 = off
 *       body_grace: 10s
 *     spark: {max_clusters_per_user: 2, max_memory_per_user: 8g}   # API limits, admins exempt
 *     webhooks:
 *       allow: [10.0.0.0/8, "hooks.internal:8080"]   # internal receivers (http/netguard.h)
 *     ui:
 *       render_max: 32m             # largest output notebook output.html renders
 *       render_jobs: 2              # renders at once (libuv's thread pool)
 *       render_queue: 16            # renders waiting for a slot; beyond, 503
 *     livy_listen: 127.0.0.1:8998   # the Livy API at / as well (docs/livy.md)
 *     hub:                          # notebook servers (src/hub/profile.h, docs/hub.md)
 *       profiles: [{name: small, python: /opt/lab/bin/python, limits: {cpu: 1, memory: 2g}}]
 *     auth:                         # logins (auth/oidc_conf.h, docs/sso.md)
 *       local: true                 # password logins; false: SSO only
 *       oidc: {issuer: https://kc.example.com/realms/acme, client_id: nbhub, ...}
 *     livy:                         # the Livy API's sessions (src/livy/livy.h, docs/livy.md)
 *       master: "local[*]"
 *       kernel: python3
 *
 * Every problem is reported as FILE:LINE:COLUMN: message (unknown key with
 * a "did you mean" hint, wrong type, bad duration), all of them at once.
 * Command-line flags override the file.
 *
 * Ownership: srvconf_load fills a caller-owned struct whose strings it
 * owns; release with srvconf_clear.
 */
#ifndef NBHUB_SRVCONF_H
#define NBHUB_SRVCONF_H
#include <stddef.h>
#include <stdint.h>
#include "auth/oidc_conf.h"
#include "hub/profile.h"
#include "livy/livy.h"
#include "iso/limits.h"
#include "util/errlist.h"

typedef struct srvconf {
    char   **listen;          /* NULL-terminated, may be NULL */
    char   **listen_cert;     /* listen[i]'s TLS certificate chain file, NULL = plain */
    char   **listen_key;      /* ... and its key; both set or both NULL */
    char    *home;
    char    *flows_dir;
    char    *base_url;
    unsigned max_active_tasks;
    int64_t  kill_grace_ms;   /* -1 = unset */
    int64_t  shutdown_grace_ms;
    char   **pool_names;      /* npool entries */
    unsigned *pool_sizes;
    size_t   npool;
    char    *log_level;
    int      secure_cookies;  /* -1 = unset */
    char    *isolation;       /* "shared" | "system" | NULL = by euid */
    char    *system_user;     /* account template, NULL = nbhub-{name} */
    int      create_system_users;   /* -1 = unset */
    iso_limits_t limits;      /* every user's, zeros = none */
    char   **ulimit_names;    /* nulimits per-user overrides */
    iso_limits_t *ulimits;
    size_t   nulimits;
    char   **trusted_users;   /* NULL-terminated, may be NULL */
    /* http: ...; -1 = unset (the server's defaults) */
    int64_t  http_max_body;
    int64_t  http_anon_body;
    int64_t  http_body_budget;
    int64_t  http_min_body_rate;
    int64_t  http_body_grace_ms;
    int64_t  http_proxy_body_max;      /* -1: default (none); a proxied request's body (http/proxy) */
    int64_t  http_websocket_idle_ms;   /* -1: default (1 h); an idle proxied websocket is closed */
    unsigned spark_max_clusters;    /* spark: max_clusters_per_user; 0 = unset */
    long     spark_max_memory_mb;   /* spark: max_memory_per_user in MB; 0 = unset */
    char   **webhook_allow;   /* NULL-terminated, may be NULL; each checked by netguard_allow */
    int64_t  render_max;      /* bytes; -1 = unset */
    unsigned render_jobs;     /* 0 = unset */
    unsigned render_queue;    /* 0 = unset */
    hub_conf_t hub;           /* hub: (hub_conf_finish'ed by srvconf_load) */
    auth_conf_t auth;         /* auth: (local, oidc) */
    livy_conf_t livy;         /* livy: (livy_conf_finish'ed by srvconf_load; src/livy/livy.h) */
    char    *livy_listen;     /* livy_listen: an address serving the Livy API at /, or NULL */
} srvconf_t;

/* The limits of one user: their user_limits entry, else limits. */
const iso_limits_t *srvconf_user_limits(const srvconf_t *c, const char *user);

/* "32m", "512k", "1g", "1048576" (k, m, g are powers of 1024; a final B
 * or iB is allowed): 0, or -1. */
int srvconf_parse_size(const char *s, int64_t *out);

void srvconf_init(srvconf_t *c);
/* 0, or -EINVAL with problems in errs, or -ENOENT/-EIO (unreadable). */
int  srvconf_load(const char *path, srvconf_t *c, nb_errlist_t *errs);
void srvconf_clear(srvconf_t *c);
/* Set or replace a pool size (flags: --pool NAME=N). */
void srvconf_set_pool(srvconf_t *c, const char *name, unsigned size);

#endif
