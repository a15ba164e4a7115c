/*
 * hub_spark — a Spark cluster per notebook server (docs/hub.md "Spark with
 * your server").  A profile's `spark: {workers, worker_memory, connect}`
 * gives each server started with it a standalone cluster owned by the
 * server's user, named `server` (the default server) or `server-NAME`,
 * living where the user's API clusters live ($NBHUB_HOME/spark/~USER/NAME,
 * its UI at /spark/~USER/NAME/ui/), started by spark/sowned.c as the user
 * under isolation: system.
 *
 * When.  The hub's `starting` hook runs before the server's process is
 * started and must answer at once, while a cluster needs 8-12 s.  So the
 * ports are chosen here (free ones on 127.0.0.1: the master's and the
 * Connect server's) and handed to `nbhub spark up --port --connect-port`:
 * the server's environment names the cluster before it is up, and both
 * start in parallel.  What the notebook gets:
 *
 *   connect: false  PYSPARK_SUBMIT_ARGS="--master spark://127.0.0.1:P
 *                   --conf spark.driver.host=127.0.0.1 --conf
 *                   spark.driver.bindAddress=127.0.0.1 --conf
 *                   spark.executor.memory=WORKER_MEMORY --conf
 *                   spark.ui.reverseProxy... pyspark-shell" (words quoted
 *                   as sparkspec does: shlex)
 *   connect: true   SPARK_REMOTE=sc://127.0.0.1:C
 *
 * plus SPARK_LOCAL_IP=127.0.0.1, PYSPARK_PYTHON (the profile's python),
 * and SPARK_HOME / JAVA_HOME when nbhub has them, so that
 * SparkSession.builder.getOrCreate() needs nothing else.  A driver that
 * asks before the master is up retries its registration (Spark: every 20
 * s, 3 times; Spark Connect's client: with backoff), so a first cell run
 * within the cluster's start is slower, not broken.
 *
 * The cluster goes when the server stops for any reason (the `stopped`
 * hook: stop, cull, crash, found gone at hub_adopt) or its row is removed
 * (`gone`).  A cluster still starting is removed as soon as its supervisor
 * is there.  A sweep (at hub_spark_sweep and every HUB_SPARK_SWEEP_MS)
 * removes any cluster marked as a server's (config.json "server") whose
 * server is neither starting nor running: nothing is left behind by a
 * crash of nbhub between the two.  Only clusters marked so are ever
 * removed: a user's own cluster that happens to be called `server` is
 * left alone, and that server's start fails with a message saying so.
 *
 * Limits: a server's cluster is sized by its profile (which an admin
 * wrote and may restrict to some users), so it is not counted against
 * nbhub.yaml spark.max_clusters_per_user / max_memory_per_user and is
 * never refused because of the user's other clusters (the machine's
 * memory still bounds it: `spark up` refuses more workers x memory than
 * there is).
 *
 * Ownership: hub_spark_new's *out belongs to the caller: hub_spark_free
 * after hub_free (the hub's hooks point at it, and hub_shutdown with
 * --stop-servers-on-exit runs them); clusters still starting then keep
 * it until their `spark up` exits.  The env is copied.  One loop thread.
 */
#ifndef NBHUB_HUB_SPARK_H
#define NBHUB_HUB_SPARK_H

#include <jansson.h>
#include "hub/hub.h"
#include "spark/sowned.h"
#include "util/err.h"

#define HUB_SPARK_SWEEP_MS (30 * 1000)

typedef struct hub_spark hub_spark_t;

/* Adds the hooks to h.  Call before hub_adopt (servers found gone there
 * lose their clusters), then hub_spark_sweep. */
int  hub_spark_new(hub_t *h, const sowned_env_t *env, hub_spark_t **out, nb_err_t *err);
/* Remove every server's cluster whose server is not starting or running;
 * starts the periodic sweep.  Returns the number of removals started. */
int  hub_spark_sweep(hub_spark_t *hs);
/* Stops the sweep; clusters are left as they are (they outlive nbhub like
 * their servers; a later nbhub adopts both).  NULL is a no-op. */
void hub_spark_free(hub_spark_t *hs);

/* The cluster name of a server: "server" for "" (the default server),
 * "server-NAME" for a named one (names that are not cluster names, or too
 * long, are mapped with a digest).  New string. */
char *hub_spark_cluster_name(const char *server_name);

/* What the server JSON shows of a server's cluster (owner's cluster
 * `cluster`, NULL = none): {cluster, state, master_url, connect_url,
 * ui_url: "/spark/~OWNER/NAME/ui/", workers, worker_memory}, or NULL when
 * cluster is NULL.  Reads config.json and state.json (no process). */
json_t *hub_spark_json(const char *home, const char *owner, const char *cluster);

#endif
