/*
 * livy_cluster — a standalone Spark cluster per Livy session (`livy: spark:
 * cluster`, docs/livy.md "A cluster per session").
 *
 * Each session gets its own cluster, owned by the session's user (its
 * proxyUser when an admin gave one), named `livy-ID`, living where the
 * user's API clusters live ($NBHUB_HOME/spark/~USER/livy-ID): it shows in
 * GET /api/v1/spark/clusters, its UIs are under /spark/~USER/livy-ID/ui/.
 * It is started by spark/sowned.c (the one code path for users' clusters:
 * as the user under isolation: system), marked as the session's in its
 * config.json ("livy_session": ID) so that only clusters made here are
 * ever removed here.
 *
 * When.  The cluster comes first (the session is `starting` meanwhile),
 * the kernel once `nbhub spark up` has every worker alive: a driver that
 * finds no master retries its registration only every 20 s, which would
 * cost more than waiting.  The kernel's PYSPARK_SUBMIT_ARGS then name the
 * cluster's master (lsess_t.cluster_master) and these settings
 * (lsess_t.cluster_conf): spark.executor.memory / cores of a worker's size
 * (one executor per worker), the driver on 127.0.0.1, and the driver's UI
 * on with the reverse-proxy settings of the cluster (scluster_ui_confs):
 * the master proxies the driver's UI, so appInfo.sparkUiUrl is
 * /spark/~USER/livy-ID/ui/proxy/APP-ID/ through nbhub's Spark UI proxy.
 *
 * Sizes.  livy.workers / worker_memory / worker_cores are the defaults; a
 * request's numExecutors, executorMemory, executorCores override them, up
 * to livy.max_workers / max_worker_memory / max_worker_cores (a request
 * over a maximum is refused with 400 by livy_cluster_check: silently
 * shrinking a session is worse).  Not counted against spark.max_clusters_
 * per_user: the admin sized Livy's clusters in livy: (as the hub's
 * profiles size servers' clusters).
 *
 * Removal: a cluster goes when its session is no longer live in memory
 * (DELETE, heartbeat timeout, kernel death, start failure; checked on
 * every livy tick, at once on DELETE), and at livy_new any cluster marked
 * as a session's whose session was not adopted (a restart of nbhub that
 * finds the kernel gone, or one that happened while the cluster started).
 * A cluster still starting is removed as soon as `spark up` is done.
 *
 * Ownership: the state hangs off livy_t (l->clusters); strings passed in
 * are borrowed for the call.  One loop thread.
 */
#ifndef NBHUB_LIVY_CLUSTER_H
#define NBHUB_LIVY_CLUSTER_H

#include <jansson.h>
#include "livy/livy_session.h"
#include "spark/sowned.h"

/* After adopt_all: adopted sessions keep their clusters, every other
 * cluster marked as a session's is removed. env NULL: clusters refused. */
void livy_cluster_init(livy_t *l, const sowned_env_t *env);
/* Request check for spark: cluster (sizes against the maxima): 0 or
 * -EINVAL with a message for a 400. */
int  livy_cluster_check(const livy_conf_t *c, const json_t *request, nb_err_t *err);
/* Start s's cluster (s is starting, has its row); lsess_start(s, request)
 * follows when it is up, lsess_end(s, "error") when it fails.  0, or an
 * error (nothing started). */
int  livy_cluster_start(livy_t *l, lsess_t *s, const char *owner, const json_t *request, nb_err_t *err);
/* A named long-lived cluster instead (docs/livy.md "A session on a cluster
 * of yours"): the request's conf names one of the user's own running
 * clusters (made with `nbhub spark up` or POST /api/v1/spark/clusters);
 * the session's driver uses it and leaves it running when it ends.
 * Clusters that are a Livy session's own (livy-ID) cannot be named. */
#define LIVY_CLUSTER_CONF "spark.nbhub.cluster"
/* The name the request asks for, NULL when none; -EINVAL (400) for a
 * value that is not a string. */
int  livy_cluster_named(const json_t *request, const char **name, nb_err_t *err);
/* Point s at owner's running cluster `name` and start its kernel
 * (lsess_start).  -ENOENT: no such running cluster; -EINVAL: a session's
 * own.  Nothing started on error. */
int  livy_cluster_attach(livy_t *l, lsess_t *s, const char *owner, const char *name, const json_t *request,
                         nb_err_t *err);
/* Remove clusters whose session is no longer live (the tick, DELETE). */
void livy_cluster_sweep(livy_t *l);
/* nbhub stops: forget (clusters stay with their kernels). */
void livy_cluster_shutdown(livy_t *l);
/* The driver's UI through nbhub: /spark/~OWNER/CLUSTER/ui/proxy/APP/
 * (new string), NULL when cluster or app_id is NULL. */
char *livy_cluster_ui_url(const char *owner, const char *cluster, const char *app_id);

#endif
