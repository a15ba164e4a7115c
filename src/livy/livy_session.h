/*
 * livy_session — what the files of src/livy share (nothing else includes
 * this): the manager and one live session in memory, the kernel's start,
 * adoption and end (livy_session.c), statements (livy_stmt.c).
 *
 * A session in memory exists while its kernel may be running: from create
 * (or adoption) until the kernel is gone and our handles are closed.  The
 * store row is the truth clients read; `state` mirrors it.
 */
#ifndef NBHUB_LIVY_SESSION_H
#define NBHUB_LIVY_SESSION_H

#include "kernel/kmgr.h"
#include "livy/livy.h"
#include "livy/livy_ids.h"
#include "spark/seventlog.h"
#include "util/buf.h"

typedef struct lsess lsess_t;

struct livy {
    uv_loop_t         *loop;
    store_t           *st;
    char              *home;
    const livy_conf_t *conf;
    livy_opts_t        o;             /* as given to livy_new (isolation) */
    lsess_t           *sessions;
    struct lclusters  *clusters;      /* livy_cluster.c's, NULL = no clusters */
    uv_timer_t         tick;
    int                stopping;
    int                tick_closed;
    unsigned           warm_seq;      /* names of warm kernels' directories */
    livy_ids_t         ids;           /* session ids, never handed out twice */
    void             (*done)(void *ud);
    void              *done_ud;
};

/* The statement in flight on a session. */
typedef struct lstmt {
    int64_t  id;                 /* -1: none */
    char     msg_id[33];
    int      got_reply, got_idle;
    char     status[16];         /* execute_reply's status */
    long long execution_count;
    buf_t    text;               /* stream text + execute_result text/plain */
    json_t  *data;               /* the other mime types, last wins */
    json_t  *error;              /* {ename, evalue, traceback} */
    int64_t  bytes;              /* output kept, against output_max */
    int64_t  dropped;            /* output past output_max */
    int      from_journal;       /* adopted: completed from the journal */
    int64_t  started_us;
    long long base_job;          /* Spark jobs with a higher id are this statement's */
    int64_t  interrupted_us;     /* last interrupt sent (cancel), 0 = none */
} lstmt_t;

struct lsess {
    livy_t  *l;
    lsess_t *next;
    int64_t  id, uid;
    char    *kind;
    char     state[16];
    char    *dir;                /* HOME/livy/sessions/ID */
    char    *log_path, *journal, *events_dir;
    char    *conn_file;
    char    *acct;               /* isolation: system: the account it runs as */
    char    *cgroup;             /* ... and its cgroup (removed at the end), or NULL */
    int      pid;
    int64_t  pid_start;
    kmgr_t  *km;
    uv_process_t proc;           /* our child (not after adoption) */
    int      proc_open;
    uv_timer_t stop_timer;       /* SIGTERM / SIGKILL escalation */
    int      stop_timer_open;
    int      escalation;
    int      ready;              /* initialised, statements may run */
    int      km_ready;           /* our client is connected (kmgr ready) */
    int      warm;               /* a pool kernel no session has claimed yet (no row) */
    char    *app_id;             /* Spark's application id, once known */
    int      init_pending;       /* the initialisation cell is running */
    char     init_msg[33];
    int      ending;             /* stop under way */
    int      deleted;            /* the row is gone (DELETE) */
    int      km_gone;            /* kmgr stopped callback came */
    int      exited;             /* the kernel process is gone */
    int64_t  hb_timeout_s;
    int64_t  last_hb_us, hb_written_us;
    char     end_state[16];      /* what the row becomes at the end */
    char    *end_error;
    lstmt_t  cur;
    seventlog_t *evlog;          /* the driver's event log, for progress */
    FILE    *evfile;
    int64_t  journal_off;        /* how far the journal was read (adopted) */
    /* spark: cluster (livy_cluster.h): the session's own cluster's name,
     * its master (the kernel's --master) and the driver's settings for it
     * (instead of spark.ui.enabled=false); NULL = local */
    char    *cluster, *cluster_master;
    char   **cluster_conf;
};

/* ---- livy_session.c ---- */
/* Start the kernel of row s->id (already in the store). */
int  lsess_start(lsess_t *s, const json_t *request, nb_err_t *err);
/* Adopt a live row's kernel: 0, -ESRCH when it is gone, or another
 * negative errno with why in err (its connection file refused: not a
 * regular file of the session's account, too large, not naming its own
 * sockets).  At start only (looks the account up: NSS). */
int  lsess_adopt(lsess_t *s, const char *conn_file, int pid, int64_t pid_start, nb_err_t *err);
/* End: state (dead, killed, error; NULL after DELETE), error (may be
 * NULL).  Idempotent; the session is freed when its handles are closed. */
void lsess_end(lsess_t *s, const char *state, const char *error);
/* nbhub stops: disconnect, leave the kernel running. */
void lsess_detach(lsess_t *s);
/* Write the mirrored state through. */
void lsess_set_state(lsess_t *s, const char *state);
void lsess_free_maybe(lsess_t *s);
lsess_t *lsess_new(livy_t *l, int64_t id, int64_t uid, const char *kind);
/* The session's files live in dir (a warm kernel's, or a session's). */
void lsess_set_dir(lsess_t *s, const char *dir);

/* ---- livy_stmt.c ---- */
/* Run the next waiting statement if the session is idle. */
void lstmt_next(lsess_t *s);
/* A kernel message (kmgr's msg callback, after ready). */
void lstmt_on_msg(lsess_t *s, enum kchan ch, const kmsg_t *m);
/* The kernel died or the session ends: the statement in flight becomes
 * error (or cancelled), the waiting ones cancelled. */
void lstmt_abort(lsess_t *s, const char *why);
/* Adopted session: a running statement is read from the journal. */
void lstmt_poll_journal(lsess_t *s);
/* The tick: Spark progress of the running statement. */
void lstmt_progress(lsess_t *s);
/* The initialisation cell's code for the session (new string). */
char *lstmt_init_code(const lsess_t *s);
void lstmt_clear(lstmt_t *c);

#endif
