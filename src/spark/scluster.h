/*
 * scluster — the pieces of a local Spark standalone cluster that need no
 * process: the master's and workers' command lines, the environment that
 * keeps them on 127.0.0.1, and the master's state as its UI serves it at
 * /json/ (JsonProtocol.writeMasterState).
 *
 * The processes themselves are supervised by `nbhub __spark-supervise`
 * (src/cli/cmd_spark.c).  Everything binds to 127.0.0.1: SPARK_LOCAL_IP
 * for the UIs and RPC, the master's REST submission server off, and port
 * retries off (spark.port.maxRetries=0), so a port taken by someone else
 * is a failed start the supervisor retries with new ports, never a silent
 * move to a port nobody recorded.
 *
 * Ownership: argv/env arrays are new (free with scluster_strv_free).
 */
#ifndef NBHUB_SCLUSTER_H
#define NBHUB_SCLUSTER_H

#include <stddef.h>
#include "util/err.h"

struct scluster_status {
    char   url[256];        /* spark://host:port */
    char   status[32];      /* ALIVE, STANDBY, ... */
    int    alive_workers;
    int    cores, cores_used;
    long   memory_mb, memory_used_mb;
    int    active_apps;
};

/* spark-class Master on 127.0.0.1:port with its UI on ui_port. */
char **scluster_master_argv(const char *spark_home, int port, int ui_port);
/* spark-class Worker for master_url with cores and memory (e.g. "1g"). */
char **scluster_worker_argv(const char *spark_home, const char *master_url, int cores,
                            const char *memory, const char *work_dir);
/* The Spark Connect server as an application of master_url, listening on
 * 127.0.0.1:port, one executor of executor_memory per worker; id: the
 * cluster's (scluster_id), for its UI's links. */
char **scluster_connect_argv(const char *spark_home, const char *id, const char *master_url, int port,
                             const char *executor_memory);
/* environ plus SPARK_HOME, the 127.0.0.1 settings above and the UI
 * settings of scluster_ui_opts for the cluster of that id. */
char **scluster_env(const char *spark_home, const char *id);

/*
 * The cluster's UIs are reached through nbhub serve's reverse proxy at
 * scluster_ui_path(id) = /spark/ID/ui (api_sparkui.c): the master's
 * page there, a worker's or an application's at .../proxy/ID/.  Spark
 * draws its links for that when spark.ui.reverseProxy is on with
 * spark.ui.reverseProxyUrl the path, on the master, the workers and every
 * driver alike (Spark's rule); the master then proxies workers and
 * drivers itself.  Killing from the UI is off: the proxy passes only GET.
 * scluster_ui_confs: those settings as SCLUSTER_UI_NCONFS "key=value"
 * strings (for --conf; free with scluster_strv_free), the one place they
 * are spelled; scluster_ui_opts: the same as -D options (SPARK_*_OPTS).
 * All new.
 */
#define SCLUSTER_UI_NCONFS 3
char *scluster_ui_path(const char *id);
char **scluster_ui_confs(const char *id);
char *scluster_ui_opts(const char *id);
void   scluster_strv_free(char **v);

/* Parse the master's /json/ answer.  0, or -EINVAL with a message. */
int scluster_status_parse(const char *json, size_t len, struct scluster_status *st, nb_err_t *err);

/* DIR/state.json (new reference) if the cluster's supervisor is alive and
 * is a supervisor (pids get reused: /proc/PID/cmdline), else NULL.  (Not
 * the lock: a cluster started before the lock existed holds none.) */
#include <jansson.h>
json_t *scluster_live_state(const char *dir);
/* DIR/config.json, what `nbhub spark up` asked for (name, owner, workers,
 * worker_memory, ...): new reference, NULL if there is none. */
json_t *scluster_config(const char *dir);

/* 1 if n is a valid cluster name: letters, digits, ".", "_", "-", at most
 * 64, not starting with ".". */
int scluster_name_ok(const char *n);

/*
 * Names are per owner: alice and bob may both have "dev", and nothing
 * about one user's clusters (not even that a name is taken) reaches
 * another.  A cluster's id is where it lives, under $NBHUB_HOME/spark/ on
 * disk and under /spark/ in URLs (its UIs, scluster_ui_path):
 *
 *   NAME           the operator's (`nbhub spark up` without --owner), and
 *                  the clusters made before names were per user (their
 *                  config.json says whose; they stay where they are)
 *   ~OWNER/NAME    OWNER's (the API's, `spark up --owner`, a flow's
 *                  ephemeral ones); OWNER percent-encoded as urlesc does
 *
 * A cluster name has no '~' and an owner no '/', so the forms never meet,
 * and "~OWNER" is never "." or "..".  The id is fixed when a cluster
 * starts: its JVMs draw their links for /spark/ID/ui.
 */
/* 1 if o can own clusters: 1 to 64 bytes, no '/', no control bytes. */
int scluster_owner_ok(const char *o);
/* The id of NAME of OWNER (NULL: the operator's).  New string. */
char *scluster_id(const char *owner, const char *name);
/* HOME/spark/ID (ID NULL: HOME/spark).  New string. */
char *scluster_dir(const char *home, const char *id);
/* The id of OWNER's cluster NAME if its directory has a config.json:
 * ~OWNER/NAME, else one from before per-user names (NAME, its config's
 * owner OWNER).  OWNER NULL: NAME, whoever its config names.  NULL if
 * none.  New string. */
char *scluster_find(const char *home, const char *owner, const char *name);
/* The ids of the clusters with a config.json under HOME/spark, sorted:
 * OWNER's (those of the old layout included), or with OWNER NULL all of
 * them.  NULL-terminated, new (scluster_strv_free). */
char **scluster_ids(const char *home, const char *owner);

/*
 * One supervisor per cluster directory, whatever the concurrency: the
 * directory's claim is an open-file-description lock (F_OFD_SETLK) on
 * DIR/lock.  Whoever starts a cluster takes it first (the API, before it
 * answers; `nbhub spark up`; __spark-task) and hands its descriptor down
 * to the supervisor, which holds it for its whole life; the kernel drops
 * it when the last holder exits, however it exits.  A second start finds
 * it taken and stops there, before touching the directory.
 *
 * scluster_lock: take the claim, on fd if fd >= 0 (an inherited
 * descriptor: it must be DIR/lock itself; if it already holds the claim,
 * taking it again is a no-op), else on a new descriptor.  The descriptor
 * (close-on-exec), -EBUSY if someone else holds the claim, or -errno;
 * a message in err either way.
 * scluster_locked: 1 if someone holds DIR/lock (a cluster starting or up),
 * without taking it (F_OFD_GETLK), else 0.
 */
int scluster_lock(const char *dir, int fd, nb_err_t *err);
int scluster_locked(const char *dir);

/* OWNER's long-lived clusters (ephemeral ones are the scheduler's, a
 * notebook server's the hub's: config.json "server") that are starting or up (claimed, or a live supervisor): how many, and their
 * workers x worker_memory in MB.  skip: an id not to count, or NULL. */
struct scluster_usage {
    int  clusters;
    long memory_mb;
};
void scluster_usage(const char *home, const char *owner, const char *skip, struct scluster_usage *u);

/* A TCP port free on 127.0.0.1 right now (bind to port 0), or -errno. */
int scluster_free_port(void);
/* port if it is free on 127.0.0.1 right now (a listener anywhere on it
 * makes it -EADDRINUSE), else -errno; 0 = any free port. */
int scluster_port_bind(int port);

/* The largest memory size taken (1 PiB): beyond any machine, and small
 * enough that callers may multiply it by a number of workers or turn it
 * into bytes in 64 bits. */
#define SCLUSTER_MEMORY_MAX_MB (1L << 30)
/* "512m", "2g", "1024m": Spark's worker memory; 0 if valid (at most 9
 * significant digits of m, 6 of g, 3 of t: below SCLUSTER_MEMORY_MAX_MB). */
int scluster_memory_ok(const char *m);
/* That size in megabytes, or -EINVAL (not a size, 0, or more digits than
 * scluster_memory_ok takes). */
long scluster_memory_mb(const char *m);
/* This machine's memory (MemTotal) in megabytes, -1 if unknown. */
long scluster_host_memory_mb(void);

#endif
