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
 * 127.0.0.1:port, one executor of executor_memory per worker. */
char **scluster_connect_argv(const char *spark_home, const char *name, const char *master_url, int port,
                             const char *executor_memory);
/* environ plus SPARK_HOME, the 127.0.0.1 settings above and the UI
 * settings of scluster_ui_opts for cluster name. */
char **scluster_env(const char *spark_home, const char *name);

/*
 * The cluster's UIs are reached through nbhub serve's reverse proxy at
 * scluster_ui_path(name) = /spark/NAME/ui (api_sparkui.c): the master's
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
char *scluster_ui_path(const char *name);
char **scluster_ui_confs(const char *name);
char *scluster_ui_opts(const char *name);
void   scluster_strv_free(char **v);

/* Parse the master's /json/ answer.  0, or -EINVAL with a message. */
int scluster_status_parse(const char *json, size_t len, struct scluster_status *st, nb_err_t *err);

/* DIR/state.json (new reference) if the cluster's supervisor is alive and
 * is a supervisor (pids get reused: /proc/PID/cmdline), else NULL. */
#include <jansson.h>
json_t *scluster_live_state(const char *dir);
/* DIR/config.json, what `nbhub spark up` asked for (name, owner, workers,
 * worker_memory, ...): new reference, NULL if there is none. */
json_t *scluster_config(const char *dir);

/* 1 if n is a valid cluster name: letters, digits, ".", "_", "-", at most
 * 64, not starting with ".". */
int scluster_name_ok(const char *n);

/* A TCP port free on 127.0.0.1 right now (bind to port 0), or -errno. */
int scluster_free_port(void);
/* port if it is free on 127.0.0.1 right now (a listener anywhere on it
 * makes it -EADDRINUSE), else -errno; 0 = any free port. */
int scluster_port_bind(int port);

/* "512m", "2g", "1024m": Spark's worker memory; 0 if valid. */
int scluster_memory_ok(const char *m);
/* That size in megabytes, or -EINVAL. */
long scluster_memory_mb(const char *m);
/* This machine's memory (MemTotal) in megabytes, -1 if unknown. */
long scluster_host_memory_mb(void);

#endif
