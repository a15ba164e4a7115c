/*
 * profile — the `hub:` section of nbhub.yaml (docs/hub.md):
 *
 *     hub:
 *       profiles:
 *         - name: small                  # [a-z0-9][a-z0-9._-]*, unique
 *           description: "1 CPU, 2 GB"
 *           python: /opt/lab/bin/python  # runs python -m jupyterhub.singleuser
 *           # or: command: [jupyter-server, --port={port}, "--ServerApp.base_url={base_url}",
 *           #               "--IdentityProvider.token={token}"]   (argv, never a shell)
 *           limits: {cpu: 1, memory: 2g}
 *           env: {FOO: bar}
 *           default_url: /lab
 *           allow: {users: [alice], groups: [ds], admins: true}   # absent = everyone
 *           spark: {workers: 2, worker_memory: 1g, connect: true}
 *       cull: {timeout: 1h, keep_busy: true, max_age: 0, every: 5m}
 *       start_timeout: 60s
 *       max_servers_per_user: 3
 *       named_servers: true
 *       admin_access: false              # may admins open users' servers
 *       stop_grace: 10s                  # SIGTERM, then SIGKILL
 *       log_max: 4m                      # each server's log, rotated once
 *
 * With no profiles, one "default" profile runs jupyterhub-singleuser as
 * found on PATH.  Problems are FILE:LINE:COLUMN messages, all at once, like
 * the rest of nbhub.yaml (srvconf.c calls hub_conf_parse for the `hub` key).
 *
 * Ownership: hub_conf_t owns everything in it (hub_conf_clear).
 */
#ifndef NBHUB_HUB_PROFILE_H
#define NBHUB_HUB_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "iso/limits.h"
#include "util/errlist.h"

typedef struct hub_spark_conf {
    int     workers;          /* 0 = no Spark cluster for this profile */
    int64_t worker_memory;    /* bytes, 0 = the cluster's default */
    int     connect;          /* 1: Spark Connect (SPARK_REMOTE), 0: PYSPARK_SUBMIT_ARGS */
} hub_spark_conf_t;

typedef struct hub_profile {
    char   *name;
    char   *description;      /* may be NULL */
    char   *python;           /* NULL: jupyterhub-singleuser on PATH (or command) */
    char  **command;          /* NULL-terminated argv template, or NULL */
    iso_limits_t limits;
    char  **env;              /* NULL-terminated "K=V", may be NULL */
    char   *default_url;      /* NULL = the server's own default */
    int     allow_all;        /* no allow: given */
    char  **allow_users;      /* NULL-terminated, may be NULL */
    char  **allow_groups;     /* NULL-terminated, may be NULL */
    int     allow_admins;     /* default 1 */
    hub_spark_conf_t spark;
} hub_profile_t;

typedef struct hub_conf {
    hub_profile_t *profiles;      /* nprofiles >= 1 after hub_conf_finish */
    size_t         nprofiles;
    int64_t  cull_timeout_ms;     /* 0 = no culling */
    int      cull_keep_busy;      /* default 1 */
    int64_t  cull_max_age_ms;     /* 0 = none */
    int64_t  cull_every_ms;       /* 0 = default (timeout / 2, at most 5 min) */
    int64_t  start_timeout_ms;    /* default 60 s */
    unsigned max_servers_per_user;/* default 3; 0 = no limit */
    int      named_servers;       /* default 1 */
    int      admin_access;        /* default 0 */
    int64_t  stop_grace_ms;       /* default 10 s */
    int64_t  log_max;             /* bytes, default 4 MiB */
    int      present;             /* a hub: section was given */
} hub_conf_t;

#define HUB_START_TIMEOUT_MS_DEFAULT (60 * 1000)
#define HUB_MAX_SERVERS_DEFAULT      3
#define HUB_STOP_GRACE_MS_DEFAULT    (10 * 1000)
#define HUB_LOG_MAX_DEFAULT          (4 * 1024 * 1024)

void hub_conf_init(hub_conf_t *c);
/* Parse the value of the `hub:` key (node of doc, read from path) into c;
 * problems go to errs.  Then hub_conf_finish. */
void hub_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *node, hub_conf_t *c,
                    nb_errlist_t *errs);
/* The defaults where unset; the "default" profile when there is none. */
void hub_conf_finish(hub_conf_t *c);
void hub_conf_clear(hub_conf_t *c);

/* [a-z0-9][a-z0-9._-]{0,62}: 1 if valid (profile and server names). */
int  hub_name_valid(const char *s);

#endif
