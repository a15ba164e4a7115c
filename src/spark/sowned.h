/*
 * sowned — a user's long-lived Spark cluster ($NBHUB_HOME/spark/~OWNER/NAME,
 * scluster.h), created and removed from nbhub serve's loop.  Two callers:
 * the REST API (POST / DELETE /api/v1/spark/clusters, api_spark.c) and the
 * hub, which gives a notebook server of a `spark:` profile its own cluster
 * (hub_spark.c).  Both want the same things, so they live here once:
 *
 *   - one start per cluster: the directory's claim (scluster_lock) is taken
 *     before anything else and handed to `nbhub spark up` as fd 3, which
 *     hands it to the supervisor, which holds it for its whole life;
 *   - config.json written at once, so the limits count a cluster while it
 *     starts (scluster_usage);
 *   - the work done by `nbhub spark up|down` as a child process, so the loop
 *     never waits for a JVM; its output appended to DIR/api.log;
 *   - under isolation: system, the cluster runs as the owner's account in
 *     the owner's cgroup: `nbhub __as-user ACCOUNT --chown-tree spark/~OWNER
 *     --cgroup nbhub/u-ACCOUNT=LIMITS --cgroup nbhub/u-ACCOUNT/spark-NAME
 *     --self -- nbhub spark up ...`, with none of nbhub's environment.
 *
 * The supervisor runs in its own session: a cluster outlives a restart of
 * nbhub serve, as one started by `nbhub spark up` does.
 *
 * Ownership: the env and spec strings are borrowed for the call only; the
 * callback's ud is the caller's.  A callback is called exactly once when
 * the function returned 0 (when `nbhub spark up|down` exits), never when it
 * returned an error.
 */
#ifndef NBHUB_SOWNED_H
#define NBHUB_SOWNED_H

#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "iso/limits.h"
#include "util/err.h"

typedef struct sowned_env {
    uv_loop_t  *loop;
    const char *home;               /* $NBHUB_HOME */
    const char *self_exe;           /* the nbhub binary */
    /* isolation: system: run as the owner's account, in their cgroup */
    int         isolation_system;
    const char *account_tmpl;       /* NULL: UACCT_DEFAULT_TEMPLATE */
    int         create_accounts, cgroups;
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void       *limits_ud;
} sowned_env_t;

typedef struct sowned_spec {
    const char *owner, *name;       /* scluster_owner_ok, scluster_name_ok */
    long        workers, cores;     /* 1..64, 1..1024 */
    const char *worker_memory;      /* scluster_memory_ok */
    int         connect;            /* a Spark Connect server too */
    /* the hub's: the notebook server the cluster belongs to ("" = the
     * default one), recorded in config.json as "server"; NULL = none */
    const char *server;
    int         timeout_s;          /* `spark up --timeout`; 0 = its default */
    /* the master's and the Connect server's ports, 0 = free ones.  The hub
     * picks them itself so that a server's environment can name them
     * before the cluster is up (`spark up --port --connect-port`). */
    int         port, connect_port;
    /* livy_cluster's: the Livy session the cluster belongs to, recorded in
     * config.json as "livy_session" (only those are removed there); 0 = none */
    long long   livy_session;
} sowned_spec_t;

/* What one user may have starting or up (nbhub.yaml spark:); NULL = no
 * limit (admins; the hub's clusters, which the profile sizes). */
typedef struct sowned_quota {
    int  max_clusters;
    long max_memory_mb;
} sowned_quota_t;

/* `nbhub spark up|down` exited: status and signal as libuv gives them. */
typedef void (*sowned_cb)(void *ud, int64_t status, int sig);

/*
 * Start spec's cluster.  0: `nbhub spark up` runs (cb when it exits: 0 =
 * every worker alive; the cluster is in state.json).  -EBUSY: the owner has
 * a cluster of that name starting or up (message says so); -EDQUOT: over
 * quota (message says which limit); -EINVAL: a bad spec; else -errno.
 */
int sowned_create(const sowned_env_t *e, const sowned_spec_t *s, const sowned_quota_t *q, sowned_cb cb, void *ud,
                  nb_err_t *err);

/*
 * Stop the cluster of that id (scluster_id) with `nbhub spark down`: its
 * JVMs get SIGTERM, SIGKILL 10 s later.  0: started (cb when it exits);
 * -ENOENT: no cluster of that id is up (nothing to do); else -errno.
 */
int sowned_remove(const sowned_env_t *e, const char *id, sowned_cb cb, void *ud, nb_err_t *err);

/* The config.json the API and the hub write for spec before `spark up`
 * (new reference): name, owner, workers, worker_cores, worker_memory,
 * connect, and server when given. */
json_t *sowned_config(const sowned_spec_t *s);

/* Let go of the `nbhub spark` children still running on loop (nbhub serve
 * is stopping, or a test's loop is about to close): their callbacks will
 * not run, the processes go on by themselves (the supervisor has its own
 * session).  Their handles close at the loop's next turn. */
void sowned_forget(uv_loop_t *loop);

#endif
