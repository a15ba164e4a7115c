/*
 * srvconf — nbhub.yaml, the configuration file of `nbhub serve`.
 *
 *     listen: 127.0.0.1:8765        # or unix:/run/nbhub.sock; a list for several
 *     home: /var/lib/nbhub          # $NBHUB_HOME, default ~/.local/share/nbhub
 *     flows_dir: flows              # relative to home; default <home>/flows
 *     base_url: https://nbhub.example.com   # for links in webhooks
 *     max_active_tasks: 16          # task processes at once, all flows
 *     kill_grace: 10s               # timeout/cancel: SIGINT, SIGTERM, then SIGKILL after this
 *     shutdown_grace: 30s           # SIGTERM of the daemon: tasks get this long to finish
 *     pool: {python3: 2}            # warm kernels per kernel spec
 *     log_level: info
 *     secure_cookies: false         # set true behind https
 *     webhooks:
 *       allow: [10.0.0.0/8, "hooks.internal:8080"]   # internal receivers (http/netguard.h)
 *     ui:
 *       render_max: 32m             # largest output notebook output.html renders
 *       render_jobs: 2              # renders at once (libuv's thread pool)
 *       render_queue: 16            # renders waiting for a slot; beyond, 503
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
#include "util/errlist.h"

typedef struct srvconf {
    char   **listen;          /* NULL-terminated, may be NULL */
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
    char   **webhook_allow;   /* NULL-terminated, may be NULL; each checked by netguard_allow */
    int64_t  render_max;      /* bytes; -1 = unset */
    unsigned render_jobs;     /* 0 = unset */
    unsigned render_queue;    /* 0 = unset */
} srvconf_t;

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
