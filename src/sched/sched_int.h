/*
 * sched_int — the scheduler's internal state, shared by sched.c (flows,
 * the flows directory, ticks, start/stop) and sched_run.c (runs, the DAG of
 * each run, task dispatch, retries, timeouts, cancel, recovery).  Nothing
 * outside src/sched/sched*.c includes it.
 *
 * In memory the scheduler keeps only what drives work forward: the flows in
 * service and the runs that are queued or running, each with its tasks'
 * states.  The store holds the truth; memory mirrors it and is rebuilt
 * from the store at start (recovery).
 */
#ifndef NBHUB_SCHED_INT_H
#define NBHUB_SCHED_INT_H
#include "sched/sched.h"
#include "sched/sup.h"
#include "store/store_flows.h"
#include "store/store_runs.h"

/* A parsed flow shared by the flow in service and its runs in flight
 * (a run keeps the version it was created with). */
typedef struct fref {
    flow_t *f;
    int     refs;
    int64_t version;
    char  **kernel;     /* per task: kernel spec name for notebook tasks (NULL = unknown) */
} fref_t;

typedef struct sflow {
    sched_t     *s;
    char        *name;
    fref_t      *fr;           /* NULL while only a broken file exists */
    char        *path;         /* its file in the flows dir, NULL if none */
    char        *file_hash;    /* of the file content last seen */
    int64_t      version, owner_id;
    int64_t      flow_id;      /* flows.id of the live incarnation (store_flows.h) */
    int          paused;
    int          seen;         /* mark for reload sweeps */
    nb_errlist_t errs;         /* newest file's problems (n == 0: loaded fine) */
    uv_timer_t  *timer;        /* next tick; heap-allocated (closed asynchronously) */
    int64_t      next_us;      /* UTC microseconds of the armed tick, 0 = none */
    unsigned     running_runs;
} sflow_t;

struct srun;

typedef struct stask {
    struct srun       *run;
    size_t             idx;        /* index in the flow's tasks */
    int64_t            id;         /* task_runs.id */
    store_task_state_t state;
    int                try_number, max_tries;
    sup_task_t        *proc;       /* child while running */
    pool_kernel_t     *kernel;     /* lent kernel while running */
    uv_timer_t        *timer;      /* timeout while running, retry while up_for_retry */
    int64_t            started_us;
    int64_t            next_retry_at;  /* as loaded from the store (recovery) */
    int                timed_out, cancelled, shutdown;
    const char        *start_error; /* set while recording a task that could not start */
    struct stask      *qnext;      /* ready queue link */
    int                in_queue;
} stask_t;

typedef struct srun {
    sched_t          *s;
    int64_t           id;
    char             *run_id;
    char             *flow;
    fref_t           *fr;
    store_run_kind_t  kind;
    store_run_state_t state;
    int64_t           logical_us;
    json_t           *params;      /* defaults merged with the trigger's values */
    char             *dir;         /* $HOME/runs/<flow>/<run dir> */
    stask_t          *tasks;       /* fr->f->ntasks */
    size_t            nterminal;
    unsigned          live;        /* children still running (also after cancel) */
    int               finished;    /* state terminal in the store */
    struct srun      *next;
} srun_t;

struct sched {
    sched_opts_t  o;
    char         *home, *flows_dir, *self_exe, *base_url;
    char         *pool_cwd;        /* where pooled kernels run (our cwd) */
    sflow_t     **flows;
    size_t        nflows, capflows;
    srun_t       *runs;            /* queued and running runs, and finished ones with live children */
    stask_t      *qhead, *qtail;   /* ready tasks waiting for a slot */
    unsigned      queued, running;
    int           stopping;
    int           batch;          /* inside sched_batch_begin/end */
    int           changed_in_batch;
    uv_fs_event_t *watch;
    uv_timer_t   *reload_timer;    /* debounce of directory events */
    uv_timer_t   *stop_timer;
    void        (*stop_done)(void *);
    void         *stop_ud;
    int           open_handles;
    sched_stats_t stats;
    char        **broken_paths;    /* files that never loaded */
    nb_errlist_t **broken_errs;
    size_t        nbroken;
    struct skept *kept;            /* kernels kept for a post-mortem (sched_kept.c) */
    uv_timer_t   *kept_timer;      /* their next deadline */
};

/* sched.c */
sflow_t *sched_flow_find(sched_t *s, const char *name);
void     sched_changed(sched_t *s);
/* One durable commit for a burst of transitions (store_batch_begin);
 * change notifications wait for the commit. */
void     sched_batch_begin(sched_t *s);
void     sched_batch_end(sched_t *s);
void     sched_arm_flow(sched_t *s, sflow_t *fl);
int64_t  sched_now_us(void);
void     sched_handle_close(uv_handle_t *h);   /* frees h, counts open handles */
uv_timer_t *sched_timer_new(sched_t *s);         /* counted; data = s */
void     sched_timer_close(sched_t *s, uv_timer_t *t);
void     sched_stop_progress(sched_t *s);         /* a child ended during a stop */
/* read_kernels: read each notebook's kernel name (for the warm pool; never
 * under isolation: system, where the daemon does not open users' notebooks). */
fref_t  *fref_new(flow_t *f, int64_t version, int read_kernels);
void     fref_put(fref_t *r);

/* sched_run.c */
/* Create a run in the store and in memory; start it if its flow has room. */
int  sched_run_fire(sched_t *s, sflow_t *fl, store_run_kind_t kind, int64_t logical_us,
                    const json_t *params, int64_t user_id, int64_t *run_out, nb_err_t *err);
/* Start queued runs of this flow while max_active_runs allows. */
void sched_run_start_queued(sched_t *s, const char *flow);
/* Rebuild runs from the store after a restart. */
int  sched_run_recover(sched_t *s, nb_err_t *err);
/* Fill the ready queue's slots. */
void sched_run_dispatch(sched_t *s);
/* Stop every child (daemon shutdown). */
void sched_run_stop_all(sched_t *s);
srun_t *sched_run_find(sched_t *s, int64_t id);
void sched_runs_free(sched_t *s);
/* Load a run's flow from its spec JSON (a previous version). */
/* Kernels kept after a failed notebook task (post_mortem:, sched_kept.c).
 * take: read and check the task's <task>.kernel.json (removed), record it
 * in the store and arm its deadline; cgroup is the task's leaf, removed
 * when the kernel ends instead of at the task's end (NULL = none).
 * has: one is kept (sched_kept_end: sched.h).
 * recover: at start-up, from the store (past deadline, gone or orphaned
 * ones are ended).  stop_all: at exit, synchronously (at most ~3 s). */
int  sched_kept_take(sched_t *s, int64_t task_run, const char *kernel_file, const char *run_dir,
                     int64_t post_mortem_s, const char *cgroup, nb_err_t *err);
int  sched_kept_has(sched_t *s, int64_t task_run);
int  sched_kept_recover(sched_t *s, nb_err_t *err);
void sched_kept_stop_all(sched_t *s);

fref_t *sched_fref_from_spec(const char *spec_json, int64_t version, int read_kernels, nb_err_t *err);

#endif
