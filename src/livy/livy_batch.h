/*
 * livy_batch — Livy's batches (POST /livy/batches, docs/livy.md): a
 * spark-submit of the user's, run the way a flow's spark_submit task is.
 *
 * A batch is
 *
 *     nbhub __task-wrap STATUS -- [nbhub __as-user ACCOUNT ... --]
 *         nbhub __spark-task --local|--ephemeral NAME ... --submit -- spark-submit ARGS...
 *
 * started detached (sched/sup.h): its own session and process group, so it
 * outlives nbhub serve; the wrapper writes how it ended to STATUS, and the
 * row in livy_batches holds the wrapper's pid + start time, so a restarted
 * nbhub re-attaches to it (livy_batch_adopt) or, if it ended meanwhile,
 * reads its end from STATUS.  __spark-task puts SPARK_HOME's spark-submit,
 * the master (local[*], or a cluster started for the batch and removed
 * after it) and the driver's event log in front, and records the
 * application id in spark.json, which is where the state running comes
 * from (livy_batch_refresh, on reads: no timer).  Everything of batch ID
 * is in <home>/livy/batches/ID/: log (stdout and stderr), status.json,
 * spark.json and its event log.
 *
 * States (Livy's): starting (spark-submit is bringing the driver up),
 * running (the driver has an application id), success (exit 0), dead
 * (any other end, or an end nobody saw), shutting_down (deleted, being
 * stopped), killed (deleted and stopped).
 *
 * Delete stops the whole process tree: SIGINT, SIGTERM and SIGKILL to the
 * wrapper's group (sup_stop: __spark-task removes an ephemeral cluster on
 * the first two), then SIGKILL to every process that descended from the
 * wrapper when the delete came, found by parent pid in /proc (a child that
 * made its own session is not in the group) and recognised by its start
 * time.
 *
 * Under isolation: system the batch runs as the Unix account of its user
 * (the owner, or the proxyUser an admin named), its directory handed to
 * that account, with the scrubbed environment of every user process.
 *
 * Ownership: the manager is the caller's (livy_batch_free); strings passed
 * in are borrowed for the call.  One loop thread.
 */
#ifndef NBHUB_LIVY_BATCH_H
#define NBHUB_LIVY_BATCH_H

#include <stdint.h>
#include <uv.h>

#include "store/store_livy.h"
#include "util/err.h"

typedef struct livy_batches livy_batches_t;

typedef struct livy_batch_opts {
    uv_loop_t  *loop;
    store_t    *store;
    const char *home;            /* nbhub's home */
    const char *self_exe;        /* the nbhub binary */
    int         isolation_system;
    const char *account_tmpl;    /* NULL = UACCT_DEFAULT_TEMPLATE */
    int         create_accounts;
    uint64_t    kill_grace_ms;   /* delete: SIGKILL after this; 0 = 5 s */
} livy_batch_opts_t;

/* One batch to start: spark-submit's words after "spark-submit" (its
 * options, the application, the application's arguments), already checked
 * by the caller (api_livy_batches.c). */
typedef struct livy_batch_spec {
    int64_t      owner_id;       /* whose batch it is (who may see and delete it) */
    const char  *run_as;         /* the nbhub user whose account runs it (system) */
    const char  *proxy_user;     /* recorded; NULL */
    const char  *name;           /* NULL: livy-batch-ID */
    const char  *request_json;   /* the request as sent */
    char *const *submit_args;    /* NULL-terminated */
    char *const *conf;           /* NULL-terminated "key=value", may be NULL */
    const char  *cwd;            /* working directory; NULL: the account's home
                                    (system) or nbhub's own */
    /* An ephemeral Spark cluster for the batch (workers > 0), removed
     * after it; else local[*]. */
    int          workers, worker_cores;
    const char  *worker_memory;
} livy_batch_spec_t;

int  livy_batch_new(const livy_batch_opts_t *o, livy_batches_t **out, nb_err_t *err);
/* At start: re-attach to every batch a previous nbhub left running, end
 * those that ended meanwhile.  Returns how many were re-attached. */
int  livy_batch_adopt(livy_batches_t *m);
/* Record and start a batch: 0 and *id, or a negative errno (the row, if
 * written, is ended as dead with the reason). */
int  livy_batch_submit(livy_batches_t *m, const livy_batch_spec_t *s, int64_t *id, nb_err_t *err);
/* Delete: stop it (asynchronously; the row goes to shutting_down now and
 * killed at the end).  0, also for a batch that had ended; -ENOENT. */
int  livy_batch_kill(livy_batches_t *m, int64_t id, nb_err_t *err);
/* Bring b (a row just read) up to date: starting -> running once the
 * driver has an application id (b->state and b->app_id are updated too). */
void livy_batch_refresh(livy_batches_t *m, store_livy_batch_t *b);
/* <home>/livy/batches/ID (new string). */
char *livy_batch_dir(const livy_batches_t *m, int64_t id);
/* nbhub serve stops: let go of every batch without stopping it. */
void livy_batch_shutdown(livy_batches_t *m);
void livy_batch_free(livy_batches_t *m);

#endif
