/*
 * flow — a flow file (YAML) parsed and validated into an immutable model.
 *
 * A flow is a named DAG of tasks, each running one notebook (through the
 * kernel layer) or one command (argv, never a shell), with a schedule, a
 * time zone, parameters and retry/timeout policy.  docs/flows.md is the
 * reference for the file format; this header is the C contract.
 *
 * Loading is all-or-nothing: flow_parse_* builds a *new* flow_t and either
 * returns it complete and valid or returns an error and the full list of
 * problems (up to ERRLIST_MAX, each "FILE:LINE:COLUMN: message", in file
 * order).  Nothing shared is touched, so the daemon can keep the previous
 * version of a flow in service when an edited file fails to load, and swap
 * pointers when it succeeds.
 *
 * Ownership: flow_parse_* store a new flow_t in *out that the caller frees
 * with flow_free; a flow_t is immutable afterwards and may be shared
 * read-only (also across threads).  Every pointer reachable from a flow_t
 * (tasks, strings, json_t values, tz, cron) is owned by the flow and lives
 * as long as it; do not decref or free them.  flow_to_json returns a new
 * reference.  Errors are appended to a caller-owned nb_errlist_t.
 */
#ifndef NBHUB_FLOW_H
#define NBHUB_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "iso/limits.h"

#include "sched/cron.h"
#include "sched/tz.h"
#include "util/err.h"
#include "util/errlist.h"

#define FLOW_NAME_MAX   64
#define FLOW_MAX_TASKS  10000
#define FLOW_MAX_BYTES  (8 * 1024 * 1024)

/* Airflow's trigger rules (semantics in dag.h). */
typedef enum flow_trigger {
    FLOW_TRIGGER_ALL_SUCCESS = 0,
    FLOW_TRIGGER_ALL_DONE,
    FLOW_TRIGGER_ONE_FAILED,
    FLOW_TRIGGER_ONE_SUCCESS,
    FLOW_TRIGGER_NONE_FAILED,
} flow_trigger_t;

typedef enum flow_sched_kind {
    FLOW_SCHED_MANUAL = 0,   /* no schedule: runs only when triggered */
    FLOW_SCHED_CRON,         /* 5 fields or an @macro */
    FLOW_SCHED_INTERVAL,     /* "30s", "1h30m", a number of seconds */
} flow_sched_kind_t;

typedef struct flow_hook {
    char   *url;
    json_t *headers;         /* object of strings (maybe empty) */
} flow_hook_t;

/* What a task asks of Spark (docs/spark.md, "Spark in flows"). */
typedef enum flow_spark_kind {
    FLOW_SPARK_NONE = 0,     /* no Spark (or `spark: false` over a flow's default) */
    FLOW_SPARK_EPHEMERAL,    /* a cluster created before the task, removed after it */
    FLOW_SPARK_CLUSTER,      /* a long-lived cluster by name (nbhub spark up) */
} flow_spark_kind_t;

typedef struct flow_spark {
    flow_spark_kind_t kind;
    char   *cluster;         /* FLOW_SPARK_CLUSTER */
    int     workers;         /* FLOW_SPARK_EPHEMERAL: defaults 1, 1 core, "1g" */
    int     worker_cores;
    char   *worker_memory;
    int     connect;         /* the kernel gets SPARK_REMOTE instead of PYSPARK_SUBMIT_ARGS */
    json_t *conf;            /* object of strings: Spark conf of the application (maybe empty) */
} flow_spark_t;

/* A spark-submit batch task (the SparkApplication idea without Kubernetes). */
typedef struct flow_submit {
    char   *application;     /* as written */
    char   *application_path;/* resolved against the flow file's directory */
    char  **args;            /* NULL-terminated; templates unrendered */
    size_t  nargs;
    json_t *conf;            /* object of strings (maybe empty) */
    char  **py_files;        /* NULL-terminated, resolved paths */
    size_t  npy_files;
    char   *main_class;      /* NULL unless a JVM application names it */
} flow_submit_t;

typedef struct flow_task {
    char   *name;
    size_t  index;           /* position in the file (and in flow->tasks) */
    int     line, col;       /* where the task is defined */

    /* Exactly one of notebook / argv / submit is set. */
    char   *notebook;        /* as written in the file */
    char   *notebook_path;   /* resolved against the flow file's directory; NULL for "~/" */
    char   *notebook_ws;     /* "~/x/y.ipynb": "x/y.ipynb" in the owner's workspace
                              * (iso/workspace.h), resolved when the task runs; else NULL */
    char  **argv;            /* NULL-terminated; templates unrendered */
    size_t  argc;
    flow_submit_t *submit;   /* spark_submit */
    flow_spark_t spark;      /* the task's own, else the flow's `spark`, else none */

    char   *kernel;          /* NULL = the notebook's own kernelspec */
    json_t *parameters;      /* object (maybe empty); templates unrendered */
    json_t *env;             /* object of strings (maybe empty); templates unrendered */
    char   *cwd;             /* resolved directory, NULL = default (see docs) */

    int     retries;
    int64_t retry_delay;     /* seconds */
    int     retry_exponential_backoff;
    int64_t max_retry_delay; /* seconds, cap for the backoff */
    int64_t timeout;         /* seconds for the whole task, 0 = none */
    int64_t cell_timeout;    /* seconds per cell, 0 = none */
    int     keep_history;    /* `nbhub run --keep-history` (IPython's history file written) */
    int64_t post_mortem;     /* seconds a failed notebook task's kernel is kept, 0 = not */
    iso_limits_t limits;     /* `limits:` (zeros = none); with the owner's, by cgroups */
    flow_trigger_t trigger_rule;

    /* DAG, filled by dag_build during parsing (indices into flow->tasks). */
    size_t *parents;         /* in the order of `after` */
    int    *parent_pos;      /* line, column of each `after` entry (2 ints each) */
    size_t  nparents;
    size_t *children;        /* in file order */
    size_t  nchildren;
} flow_task_t;

typedef struct flow {
    char   *name;
    char   *path;            /* the file it came from ("<string>" names for text) */
    char   *base_dir;        /* relative paths resolve against this */
    char   *description;     /* NULL if absent */
    char   *owner;           /* NULL if absent */
    char  **files;           /* `files:` resolved against base_dir (sent by `flow apply`) */
    size_t  nfiles;

    flow_sched_kind_t sched_kind;
    char   *schedule;        /* as written (a number becomes "Ns"), NULL = manual */
    cron_t *cron;            /* NULL = manual; interval anchored at start_date */
    int64_t interval;        /* seconds, for FLOW_SCHED_INTERVAL */

    char   *timezone;        /* IANA name, default "UTC" */
    tz_t   *tz;

    int     has_start, has_end;
    int64_t start_date;      /* UTC seconds */
    int64_t end_date;        /* UTC seconds */
    int     catchup;
    int     max_active_runs;

    json_t *params;          /* object of defaults */
    flow_hook_t *on_failure;
    size_t  non_failure;
    flow_hook_t *on_success;
    size_t  non_success;

    flow_task_t *tasks;      /* in file order */
    size_t  ntasks;
    size_t *topo;            /* task indices in topological order (ties: file order) */
} flow_t;

/*
 * Parse the file at `path`.  Relative notebook and cwd paths resolve
 * against the file's directory, and the flow name defaults to the file name
 * without .yaml/.yml.  Returns 0 and a new flow in *out, or a negative
 * errno (-EINVAL: the file has errors; -ENOENT/-EIO/...: unreadable) with
 * *out NULL and the problems appended to errs.
 */
int flow_parse_file(const char *path, flow_t **out, nb_errlist_t *errs);

/*
 * Parse `len` bytes of YAML.  `name_for_messages` labels errors (and gives
 * the default flow name, without directories and .yaml/.yml); base_dir
 * (NULL = ".") is where relative paths resolve.
 */
int flow_parse_text(const char *text, size_t len, const char *name_for_messages,
                    const char *base_dir, flow_t **out, nb_errlist_t *errs);

void flow_free(flow_t *f);

/* Under isolation: shared every task runs as the daemon's user, so what a
 * flow saved through the API may do depends on who saves it: a task that
 * runs a command or spark_submit, or a notebook (or cwd) outside the flow's
 * own directory (base_dir: no absolute path elsewhere, no "..") needs an
 * admin or a trusted user.  0 if f needs no trust, else 1 with the first
 * reason in why ("task 'load' runs a command"). */
int flow_needs_trust(const flow_t *f, char *why, size_t n);

/* Canonical JSON: every effective value (defaults applied, durations in
 * seconds, dates as ISO 8601 UTC), tasks in file order.  Two loads of
 * equivalent files give equal JSON, so json_equal (or a dump with
 * JSON_SORT_KEYS) detects changes.  Returns a new reference. */
json_t *flow_to_json(const flow_t *f);

/* Task lookup by name (NULL if none), and by topological position. */
const flow_task_t *flow_task(const flow_t *f, const char *name);
const flow_task_t *flow_task_topo(const flow_t *f, size_t i);

/* Trigger rule names ("all_success" ...) and back; -1 if unknown. */
const char *flow_trigger_name(flow_trigger_t t);
/* A task's spark as JSON: null, {cluster, connect, conf} or {workers,
 * worker_cores, worker_memory, connect, conf}.  New reference. */
json_t *flow_spark_json(const flow_spark_t *sp);
int flow_trigger_parse(const char *s);

/* Durations: "30s", "5m", "1h30m", "2d" (units d h m s, largest first, each
 * at most once) or digits meaning seconds.  0, or -EINVAL / -ERANGE. */
int flow_duration_parse(const char *s, int64_t *secs);

/* Split a command string into argv with POSIX shell quoting ('...', "...",
 * backslash) but no expansion of any kind; unquoted shell operators
 * (| & ; < > ( ) ` $) are refused, since no shell will run them.  New
 * NULL-terminated vector in *argv (free each string and the vector). */
int flow_split_command(const char *s, char ***argv, size_t *argc, nb_err_t *err);

/* Whether s is a valid flow name: [a-z0-9][a-z0-9_-]{0,63}. */
int flow_name_valid(const char *s);
/* Whether s is a valid task name: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. */
int flow_task_name_valid(const char *s);

/* Whether `name` may name a flow parameter (`params:` keys, the names a
 * trigger may set): an ASCII identifier, [A-Za-z_][A-Za-z0-9_]*, at most 64
 * bytes — what {{ params.NAME }} can reach, and an identifier in every
 * language a notebook task may pass it on to. */
int flow_param_name_ok(const char *name);

/* The window of logical dates nbhub accepts: a flow's start_date and
 * end_date, a manual run's logical date, a backfill's range, in UTC
 * seconds, [FLOW_TIME_MIN, FLOW_TIME_MAX): 1970-01-01T00:00:00Z up to but
 * not including 2200-01-01T00:00:00Z.  Outside it a date is a typo or an
 * attack on the run id and directory names, never a real schedule. */
#define FLOW_TIME_MIN 0LL
#define FLOW_TIME_MAX 7258118400LL
#define FLOW_TIME_WINDOW "1970-01-01T00:00:00Z up to 2200-01-01T00:00:00Z"
int flow_time_ok(int64_t utc_seconds);

#endif
