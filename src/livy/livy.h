/*
 * livy — the session manager behind the Livy API (docs/livy.md): a Livy
 * interactive session is a PySpark kernel of its owner's, and a statement
 * an execute_request on it.
 *
 * Why kernels: nbhub already starts, talks to and supervises Jupyter
 * kernels, so a session costs one kernel start (the JVM inside it) instead
 * of Livy's spark-submit plus its RSC driver and RPC server, and the code
 * runs in exactly the environment a notebook on the same kernel spec has.
 *
 * Life of a session (store_livy.h holds every state, written through):
 *   create    row not_started; a connection file (ipc, 0700 directory) and
 *             the kernel started DETACHED (its own session, no
 *             PR_SET_PDEATHSIG, no JPY_PARENT_PID): it must outlive nbhub
 *             serve, as notebook servers do (spawn_local); its pid + /proc
 *             start time and connection file go into the row; starting.
 *   ready     the kernel answered (kmgr_attach: pidfd for its death); an
 *             initialisation cell makes `spark`, `sc`, `sqlContext` and the
 *             output journal (below) and reads the application id; idle.
 *   statement busy while one runs; statements wait in the store in id order
 *             and run one at a time, as Livy's do.
 *   end       DELETE (row gone at once), the heartbeat timeout (dead), the
 *             kernel's death (dead) or a start failure (error): the kernel
 *             is asked to shut down, then its process group is SIGTERMed
 *             and SIGKILLed (the Spark JVM is in that group: pyspark starts
 *             it as a child that ignores SIGINT only), the connection
 *             directory removed.
 *
 * Restarts of nbhub serve: kernels keep running.  livy_new adopts every
 * live session whose kernel is still the same process (pid + start time)
 * by its connection file; a session whose kernel is gone is ended (dead),
 * its running statement marked error.  A statement that was running while
 * nbhub was away published its outputs to nobody, so the kernel also
 * appends them to a journal file in the session's directory (a wrapper
 * around ipykernel's Session.send, installed by the initialisation cell):
 * an adopted session's running statement is completed from the journal
 * when its execute_reply shows up there.
 *
 * Heartbeats: a session created with heartbeatTimeoutInSecond > 0 ends
 * when no request about it came for that long (livy_session_heartbeat: the
 * API calls it on every request naming the session, as Livy does), but
 * never while a statement runs or waits.
 *
 * Ownership: livy_conf_t fields are the conf's (livy_conf_clear); a
 * livy_t borrows its loop, store and conf, which must outlive it.
 */
#ifndef NBHUB_LIVY_H
#define NBHUB_LIVY_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>
#include <yaml.h>

#include "iso/limits.h"
#include "spark/sowned.h"
#include "store/store.h"
#include "util/err.h"
#include "util/errlist.h"

#define LIVY_OUTPUT_MAX_DEFAULT (16LL * 1024 * 1024)
#define LIVY_START_TIMEOUT_MS_DEFAULT (180 * 1000)
#define LIVY_RETAIN_MS_DEFAULT (10 * 60 * 1000)

/* nbhub.yaml `livy:` (docs/livy.md):
 *   livy:
 *     spark: local          # where sessions' Spark runs: local (the master
 *                           # below, inside the kernel) or cluster (a
 *                           # standalone cluster per session, livy_cluster.h)
 *     workers: 1            # spark: cluster's defaults (numExecutors,
 *     worker_memory: 1g     #   executorMemory, executorCores override them)
 *     worker_cores: 1
 *     max_workers: 4        # ... up to these
 *     max_worker_memory: 4g
 *     max_worker_cores: 4
 *     master: "local[*]"    # spark: local's master
 *     kernel: python3       # the kernel spec sessions start (ipykernel with
 *                           # pyspark importable)
 *     conf: {spark.x: y}    # Spark settings every session gets first
 *     output_max: 16m       # a statement's output, then a truncation marker
 *     start_timeout: 180s   # kernel + SparkSession start
 *     retain: 10m           # how long an ended session stays listed
 *     warm: 0               # kernels started ahead (SparkSession up) for
 *                           # sessions that ask for no Spark settings
 *     csrf: false           # X-Requested-By required (api_livy_batches, h6)
 */
typedef struct livy_conf {
    int      present;         /* the section was given */
    char    *spark;           /* "local" or "cluster" */
    char    *master;          /* "local[*]" */
    char    *kernel;          /* "python3" */
    char   **conf;            /* "key=value", NULL-terminated, or NULL */
    int64_t  output_max;      /* bytes */
    int64_t  start_timeout_ms;
    int64_t  retain_ms;
    int      csrf;
    unsigned warm;            /* warm kernels kept ready */
    /* spark: cluster's sizes (-1 / NULL until livy_conf_finish) */
    long     workers, worker_cores, max_workers, max_worker_cores;
    char    *worker_memory, *max_worker_memory;
} livy_conf_t;

void livy_conf_init(livy_conf_t *c);
/* Parse the `livy:` mapping; errors are FILE:LINE:COLUMN entries in errs. */
void livy_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *v, livy_conf_t *c,
                     nb_errlist_t *errs);
/* Defaults for what was not given (after parse). */
void livy_conf_finish(livy_conf_t *c);
void livy_conf_clear(livy_conf_t *c);

typedef struct livy livy_t;

typedef struct livy_opts {
    uv_loop_t         *loop;
    store_t           *store;
    const char        *home;     /* sessions live in HOME/livy/sessions/ID/ */
    const livy_conf_t *conf;
    /* isolation: system (all borrowed): a session's kernel runs as its
     * owner's account (the proxyUser's when an admin named one) through
     * `SELF_EXE __as-user`, in the user's cgroup when cgroups work. */
    const char        *self_exe;
    int                isolation_system;
    const char        *account_tmpl;   /* NULL: UACCT_DEFAULT_TEMPLATE */
    int                create_accounts;
    int                cgroups;
    const iso_limits_t *(*user_limits)(void *limits_ud, const char *user);
    void              *limits_ud;
    /* how users' Spark clusters are started (spark: cluster); NULL = none */
    const sowned_env_t *spark;
} livy_opts_t;

/* The manager; adopts the live sessions of a previous nbhub serve. */
int  livy_new(const livy_opts_t *o, livy_t **out, nb_err_t *err);
/* nbhub serve stops: disconnect from every kernel, leave them running
 * (a later nbhub adopts them); done(ud) once every handle is closed. */
void livy_shutdown(livy_t *l, void (*done)(void *ud), void *ud);
void livy_free(livy_t *l);
const livy_conf_t *livy_conf(const livy_t *l);

/* Session kinds with a kernel here: pyspark (python: Livy's old name) and
 * sql.  spark (Scala) and sparkr are refused with -ENOTSUP and a message
 * saying no such kernel is configured; anything else -EINVAL. */
int  livy_kind_check(const char *kind, nb_err_t *err);

typedef struct livy_create {
    int64_t       uid;
    const char   *proxy_user;    /* or NULL */
    const char   *name;          /* or NULL */
    const char   *kind;          /* checked by livy_kind_check */
    const json_t *request;       /* the POST body (borrowed; kept as request_json) */
    int64_t       heartbeat_timeout;   /* seconds, 0 = none */
} livy_create_t;

/* A new session (row, kernel started); *id its id.  -EEXIST for a name a
 * live session has; -ESHUTDOWN while stopping. */
int  livy_session_create(livy_t *l, const livy_create_t *c, int64_t *id, nb_err_t *err);
/* End the session and forget it (its row goes at once); -ENOENT. */
int  livy_session_delete(livy_t *l, int64_t id, nb_err_t *err);
/* A client asked about the session (Livy's heartbeat). */
void livy_session_heartbeat(livy_t *l, int64_t id);
/* The live state of a session (idle and busy are kept in memory only),
 * or NULL when it has no kernel here: the row's state is then the truth.
 * Borrowed until the next call into livy. */
const char *livy_session_state(const livy_t *l, int64_t id);
/* Queue a statement (kind NULL: the session's); *stmt its id.  -ENOENT
 * for no live session, -ESTALE for a session that ended. */
int  livy_stmt_submit(livy_t *l, int64_t session_id, const char *kind, const char *code,
                      int64_t *stmt, nb_err_t *err);
/* Cancel: a waiting statement is cancelled at once, a running one gets
 * cancelling and the kernel an interrupt; a final one is left as it is. */
int  livy_stmt_cancel(livy_t *l, int64_t session_id, int64_t stmt, nb_err_t *err);

#endif
