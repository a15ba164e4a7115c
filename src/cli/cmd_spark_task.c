/*
 * cmd_spark_task — `nbhub __spark-task OPTIONS -- ARGV...` (internal): the
 * Spark side of one try of a flow task that asks for Spark (docs/spark.md,
 * "Spark in flows").  The scheduler puts it in front of the task's command
 * (`nbhub run ...`, or spark-submit for a spark_submit task); it
 *
 *   1. gets the cluster: an ephemeral one (--ephemeral NAME: started here,
 *      its supervisor tied to this process), a long-lived one (--cluster
 *      NAME: must be up and usable by --owner), or none (--local: local[*]);
 *   2. injects the connection into ARGV's environment: PYSPARK_SUBMIT_ARGS
 *      (--master, --name, the driver on 127.0.0.1, a driver UI port chosen
 *      here, the task's conf; ends in pyspark-shell) or, with --connect,
 *      SPARK_REMOTE; NBHUB_SPARK_MASTER tells `nbhub run` to let these win
 *      over a kernel spec's own (a generated PySpark kernel has them too);
 *      with --submit, ARGV[0] "spark-submit" becomes SPARK_HOME's and the
 *      same settings go on its command line;
 *   3. runs ARGV in our process group (the task's stop signals reach it)
 *      with the driver's event log on (in <state>-events/, next to
 *      --state) and, once a second while it runs (NBHUB_SPARK_POLL_MS),
 *      reads what the driver added to it (spark/seventlog.c: nothing is
 *      asked of the driver, so tracking costs the job nothing but the
 *      log's writes) into --state FILE (atomically, only when it changed):
 *      the application id, jobs and active stages with progress, the
 *      cluster's URLs; the daemon serves that file and sends it over SSE.
 *      A task with its own spark.eventLog.* conf is read from the driver's
 *      REST API instead; once the driver has exited, the log is read to its
 *      end for the final count;
 *   4. removes an ephemeral cluster when ARGV has exited, whatever the
 *      outcome, and exits with ARGV's status (128+N for a signal).
 *
 * No orphans: SIGINT/SIGTERM (a cancel, a timeout, a daemon shutdown) are
 * caught, not obeyed: ARGV gets them too, and we tear down after it.  If
 * this process is SIGKILLed, the supervisor dies with it (PDEATHSIG), and
 * its JVMs with it (PDEATHSIG again).  If the daemon is killed, the task
 * runs on (sup.h) and cleans up as usual.
 *
 * Exit codes besides ARGV's: 20 no Java or no Spark, 21 the ephemeral
 * cluster did not start (see the log: memory, ports, timeout), 22 the named
 * cluster is not up or not usable by the flow's owner, 23 the application's
 * executors cannot fit on the cluster's workers (Spark would wait forever
 * with "Initial job has not accepted any resources"), 2 usage.
 */
#include "cli/cli.h"
#include "kernel/kwire.h"
#include "spark/scluster.h"
#include "spark/seventlog.h"
#include "spark/sparkspec.h"
#include "spark/sprogress.h"
#include "util/buf.h"
#include "util/dlcurl.h"
#include "util/fsutil.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { ST_EXIT_NO_SPARK = 20, ST_EXIT_CLUSTER = 21, ST_EXIT_NAMED = 22, ST_EXIT_FIT = 23 };

struct st_args {
    const char *home, *state, *app_name, *owner, *cluster, *ephemeral, *memory, *python;
    int workers, cores, connect, local, submit, timeout_s, poll_ms;
    char **conf;
    size_t nconf;
    char **argv;
};

struct st_run {
    struct st_args *a;
    json_t *doc;            /* what --state holds */
    char *last;             /* its last text written */
    char *cluster_dir;      /* of the cluster in use, NULL for local */
    char *cluster_id;       /* its id (scluster_id: where it lives, its UI's path) */
    int ui_port;            /* the driver's UI */
    json_int_t master_restarts;
    char *exec_mem;         /* the spark.executor.memory we added, or NULL */
    char *events;           /* the driver's event log directory, or NULL */
    struct timespec since;  /* files there older than this are earlier tries' */
    FILE *evf;              /* our driver's log, once it exists */
    seventlog_t *evlog;     /* what has been read of it */
    char *evconf;           /* spark.eventLog.dir=file://<events> */
    char **uiconf;          /* on a cluster: its UI settings (scluster_ui_confs) */
    char session[40];       /* Spark Connect: the session id we give the client */
};

static void st_on_signal(int sig)
{
    (void)sig;
    cmd_spark_stop_requested = 1;
}

/* Write the state file if something other than its time changed. */
static void st_write(struct st_run *r)
{
    json_object_del(r->doc, "updated");
    char *text = json_dumps(r->doc, JSON_SORT_KEYS);
    if (r->last && !strcmp(text, r->last)) {
        free(text);
        return;
    }
    free(r->last);
    r->last = text;
    char now[40];
    time_iso8601_utc(time_now_us(), now, sizeof now, 1);
    json_object_set_new(r->doc, "updated", json_string(now));
    char *out = json_dumps(r->doc, JSON_INDENT(1) | JSON_SORT_KEYS);
    nb_err_t err;
    if (fs_write_atomic(r->a->state, out, strlen(out), 0, &err) < 0)
        fprintf(stderr, "nbhub: cannot write %s: %s\n", r->a->state, err.msg);
    free(out);
}

static void st_set(struct st_run *r, const char *key, const char *value)
{
    json_object_set_new(r->doc, key, value ? json_string(value) : json_null());
}

/* The application is known: its id, and on a cluster where its UI is
 * through nbhub's proxy (the master proxies the driver's). */
static void st_app(struct st_run *r, const char *id)
{
    st_set(r, "app_id", id);
    fprintf(stderr, "nbhub: Spark application %s\n", id);
    if (!r->cluster_id) return;
    char *ui = scluster_ui_path(r->cluster_id);
    json_object_set_new(r->doc, "app_ui_path", json_sprintf("%s/proxy/%s/", ui, id));
    free(ui);
}

/* GET a JSON document; NULL if there is none (yet). */
static json_t *st_get_url(const char *url, long timeout_ms)
{
    buf_t body;
    long code;
    json_t *j = NULL;
    if (dlcurl_get(url, timeout_ms, &body, &code) == 0 && code == 200)
        j = json_loadb(body.data, body.len, 0, NULL);
    free(body.data);
    return j;
}

/* GET a JSON document from the driver's REST API. */
static json_t *st_get(int port, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/%s", port, path);
    return st_get_url(url, 500);
}

/* How often the cluster's master was restarted (its state.json lists the
 * master first). */
static json_int_t st_master_restarts(const json_t *cs)
{
    return json_integer_value(json_object_get(json_array_get(json_object_get(cs, "processes"), 0), "restarts"));
}

/* Read what the driver has added to its event log. */
static void st_tail(struct st_run *r)
{
    if (!r->evf) {
        char *path = seventlog_find(r->events, NULL, &r->since);
        r->evf = path ? fopen(path, "r") : NULL;
        free(path);
        if (!r->evf) return;
        r->evlog = seventlog_new();
    }
    seventlog_read(r->evlog, r->evf);
}

/* The progress document from the event log (see seventlog.h). */
static void st_progress_from_log(struct st_run *r)
{
    const char *id = seventlog_app_id(r->evlog);
    if (id && !json_string_value(json_object_get(r->doc, "app_id"))) st_app(r, id);
    json_t *jobs = seventlog_jobs_json(r->evlog), *stages = seventlog_active_stages(r->evlog);
    json_object_set_new(r->doc, "progress", sprogress_summary(id, jobs, stages));
    json_decref(jobs);
    json_decref(stages);
}

/* The progress from the driver's REST API: when there is no event log of
 * ours (a task's own spark.eventLog.* conf). */
static void st_rest(struct st_run *r)
{
    const char *id = json_string_value(json_object_get(r->doc, "app_id"));
    if (!id) {
        json_t *apps = st_get(r->ui_port, "applications");
        const char *got = sprogress_app_id(apps);
        if (got) st_app(r, got);
        json_decref(apps);
        id = json_string_value(json_object_get(r->doc, "app_id"));
    }
    if (id) {
        char *jp = xasprintf("applications/%s/jobs", id), *sp = xasprintf("applications/%s/stages?status=active", id);
        json_t *jobs = st_get(r->ui_port, jp), *stages = jobs ? st_get(r->ui_port, sp) : NULL;
        if (jobs) json_object_set_new(r->doc, "progress", sprogress_summary(id, jobs, stages));
        json_decref(jobs);
        json_decref(stages);
        free(jp);
        free(sp);
    }
}

/* A Spark Connect task: its jobs are the Connect server's (an application
 * of the cluster, shared by every client) that carry our session's tag
 * (SparkConnect_OperationTag_User_..._Session_<id>_Operation_...), read
 * from the server's REST API through the master's proxy. */
static void st_connect(struct st_run *r)
{
    const char *ui = json_string_value(json_object_get(r->doc, "ui_url"));
    if (!ui) return;
    const char *app = json_string_value(json_object_get(r->doc, "app_id"));
    if (!app) {
        char *url = xasprintf("%sjson/", ui);
        json_t *m = st_get_url(url, 500);
        free(url);
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(m, "activeapps"), i, a) {
            const char *n = json_string_value(json_object_get(a, "name"));
            const char *id = json_string_value(json_object_get(a, "id"));
            if (n && id && !strcmp(n, "Spark Connect server")) st_app(r, id);
        }
        json_decref(m);
        app = json_string_value(json_object_get(r->doc, "app_id"));
        if (!app) return;
    }
    char *url = xasprintf("%sproxy/%s/api/v1/applications/%s/jobs", ui, app, app);
    json_t *jobs = st_get_url(url, 2000);
    free(url);
    if (!jobs) return;
    char tag[64];
    snprintf(tag, sizeof tag, "_Session_%s_", r->session);
    json_t *ours = json_array();
    size_t i, k;
    json_t *j, *t;
    json_array_foreach(jobs, i, j) {
        json_array_foreach(json_object_get(j, "jobTags"), k, t) {
            const char *s = json_string_value(t);
            if (s && strstr(s, tag)) {
                json_array_append(ours, j);
                break;
            }
        }
    }
    json_object_set_new(r->doc, "progress", sprogress_summary(app, ours, NULL));
    json_decref(ours);
    json_decref(jobs);
}

/* A random (version 4) UUID: the Spark Connect session id of the task. */
static void st_uuid(char out[40])
{
    char h[33];
    kwire_new_id(h);
    int v = h[16] <= '9' ? h[16] - '0' : h[16] - 'a' + 10;
    h[12] = '4';              /* version 4 */
    h[16] = "89ab"[v & 3];    /* variant 10xx */
    snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/* One look at the application and at the cluster. */
static void st_poll(struct st_run *r)
{
    if (r->session[0]) {
        st_connect(r);
    } else if (r->events) {
        st_tail(r);
        if (r->evlog) st_progress_from_log(r);
    } else {
        st_rest(r);
    }
    if (r->cluster_dir) {
        json_t *cs = scluster_live_state(r->cluster_dir);
        const char *name = json_string_value(json_object_get(r->doc, "cluster"));
        if (!cs) {
            if (!json_object_get(r->doc, "cluster_lost")) {
                fprintf(stderr, "nbhub: Spark cluster '%s' went down during the task\n", name);
                json_object_set_new(r->doc, "cluster_lost", json_true());
                st_set(r, "message", "the Spark cluster went down during the task");
            }
        } else {
            json_int_t rs = st_master_restarts(cs);
            if (rs > r->master_restarts) {
                fprintf(stderr, "nbhub: the Spark master of cluster '%s' died and was restarted; applications "
                                "running on it were lost\n", name);
                st_set(r, "message", "the Spark master died during the task (restarted by nbhub)");
                r->master_restarts = rs;
            }
            json_decref(cs);
        }
    }
    st_write(r);
}

/* The application's final progress, from its event log: the REST API is
 * gone with the driver, and its last answer may predate the last jobs (or
 * never have come: a notebook can be done within a poll). */
static void st_final(struct st_run *r)
{
    if (r->session[0]) {
        st_connect(r);   /* the server lives on: one last look has every job */
        return;
    }
    if (!r->events) return;
    st_tail(r);
    if (!r->evlog) return;   /* the driver never started, or logs elsewhere */
    seventlog_finish(r->evlog);
    st_progress_from_log(r);
}

/* --state with its ".json" replaced by suffix (a path beside it), or NULL
 * if --state does not end in .json. */
static char *st_beside(const struct st_args *a, const char *suffix)
{
    size_t sl = strlen(a->state);
    return sl > 5 && !strcmp(a->state + sl - 5, ".json") ? xasprintf("%.*s%s", (int)(sl - 5), a->state, suffix)
                                                         : NULL;
}

/* An ephemeral cluster's directory (its JVMs' logs) goes with the task
 * run, next to --state, once the cluster is down: it is the run's record
 * (kept and pruned with the run), and $NBHUB_HOME/spark keeps only
 * clusters that exist.  A later try of the task gets .2, .3, ... */
static void st_keep_cluster_dir(struct st_run *r)
{
    char *base = r->cluster_dir ? st_beside(r->a, "-cluster") : NULL;
    if (!base) return;
    char *to = xstrdup(base);
    for (int n = 2; rename(r->cluster_dir, to) < 0 && (errno == EEXIST || errno == ENOTEMPTY) && n < 100; n++) {
        free(to);
        to = xasprintf("%s.%d", base, n);
    }
    free(base);
    if (access(r->cluster_dir, F_OK) == 0)
        fprintf(stderr, "nbhub: the logs of Spark cluster %s stay in %s\n", r->a->ephemeral, r->cluster_dir);
    else
        json_object_set_new(r->doc, "cluster_logs", json_string(to));
    free(to);
}

static int st_parse(int argc, char **argv, struct st_args *a)
{
    memset(a, 0, sizeof *a);
    a->workers = a->cores = 1;
    a->memory = "1g";
    a->timeout_s = 300;
    /* NBHUB_SPARK_POLL_MS: how often the progress is looked at (0 = only
     * at the end).  A look reads the new bytes of a local file. */
    const char *pm = getenv("NBHUB_SPARK_POLL_MS");
    a->poll_ms = pm && *pm ? atoi(pm) : 1000;
    a->conf = xcalloc((size_t)argc + 1, sizeof *a->conf);
    int i;
    for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--connect")) { a->connect = 1; continue; }
        if (!strcmp(f, "--local")) { a->local = 1; continue; }
        if (!strcmp(f, "--submit")) { a->submit = 1; continue; }
        if (i + 1 >= argc) break;
        const char *v = argv[++i];
        if (!strcmp(f, "--home")) a->home = v;
        else if (!strcmp(f, "--state")) a->state = v;
        else if (!strcmp(f, "--app-name")) a->app_name = v;
        else if (!strcmp(f, "--owner")) a->owner = v;
        else if (!strcmp(f, "--cluster")) a->cluster = v;
        else if (!strcmp(f, "--ephemeral")) a->ephemeral = v;
        else if (!strcmp(f, "--worker-memory")) a->memory = v;
        else if (!strcmp(f, "--python")) a->python = v;
        else if (!strcmp(f, "--conf")) a->conf[a->nconf++] = (char *)v;
        else if (!strcmp(f, "--workers")) a->workers = atoi(v);
        else if (!strcmp(f, "--worker-cores")) a->cores = atoi(v);
        else if (!strcmp(f, "--start-timeout")) a->timeout_s = atoi(v);
        else break;
    }
    if (i >= argc || strcmp(argv[i], "--") || i + 1 >= argc || !a->home || !a->state ||
        (!!a->cluster + !!a->ephemeral + a->local) != 1 || a->workers < 1 || a->cores < 1 || a->timeout_s < 1) {
        cli_errorf("__spark-task: internal command, usage: __spark-task --home H --state FILE "
                   "(--cluster NAME|--ephemeral NAME|--local) [options] -- ARGV...");
        return NB_EXIT_USAGE;
    }
    a->argv = argv + i + 1;
    return 0;
}

/* The cluster: 0 with master (and connect) URL in r->doc, or an exit code. */
static int st_cluster(struct st_run *r, const char *spark_home, int *sup_pid)
{
    struct st_args *a = r->a;
    if (a->local) {
        st_set(r, "mode", "local");
        st_set(r, "master_url", "local[*]");
        return 0;
    }
    const char *name = a->cluster ? a->cluster : a->ephemeral;
    st_set(r, "cluster", name);
    json_t *cs = NULL, *cfg = NULL;
    if (a->cluster) {
        st_set(r, "mode", "cluster");
        /* Names are per owner (scluster.h): the flow owner's cluster of
         * that name, else the operator's (nbhub spark up without --owner:
         * every flow may use those).  Another user's is not looked at, and
         * the error does not say whether one exists. */
        r->cluster_id = a->owner ? scluster_find(a->home, a->owner, name) : NULL;
        if (!r->cluster_id) {
            r->cluster_id = scluster_find(a->home, NULL, name);
            char *d = r->cluster_id ? scluster_dir(a->home, r->cluster_id) : NULL;
            cfg = d ? scluster_config(d) : NULL;
            free(d);
            if (cfg && json_string_value(json_object_get(cfg, "owner"))) {
                free(r->cluster_id);
                r->cluster_id = NULL;
            }
            json_decref(cfg);
            cfg = NULL;
        }
        if (r->cluster_id) {
            r->cluster_dir = scluster_dir(a->home, r->cluster_id);
            cs = scluster_live_state(r->cluster_dir);
        }
        if (!cs) {
            if (a->owner)
                cli_errorf("Spark cluster '%s' is not up (start it with: POST /api/v1/spark/clusters, or nbhub "
                           "spark up %s --owner %s)", name, name, a->owner);
            else
                cli_errorf("Spark cluster '%s' is not up (start it with: nbhub spark up %s)", name, name);
            return ST_EXIT_NAMED;
        }
        cfg = scluster_config(r->cluster_dir);
    } else {
        r->cluster_id = scluster_id(a->owner, name);
        r->cluster_dir = scluster_dir(a->home, r->cluster_id);
        st_set(r, "mode", "ephemeral");
        st_set(r, "state", "starting cluster");
        st_write(r);
        cfg = json_pack("{s:s, s:s, s:i, s:i, s:s, s:b, s:s?, s:b, s:s?}", "name", name, "spark_home",
                                spark_home, "workers", a->workers, "worker_cores", a->cores, "worker_memory",
                                a->memory, "connect", a->connect, "owner", a->owner, "ephemeral", 1, "task",
                                a->app_name);
        uint64_t t0 = time_now_us();
        int code = cmd_spark_start(r->cluster_dir, cfg, 1, a->timeout_s, -1, sup_pid, &cs);
        if (code) {
            json_decref(cfg);
            st_set(r, "state", "failed");
            st_set(r, "message", cli_last_error);
            return code == 4 ? ST_EXIT_NO_SPARK : ST_EXIT_CLUSTER;
        }
        fprintf(stderr, "nbhub: Spark cluster %s up in %.1f s: %d worker%s x %d core%s, %s\n", name,
                (double)(time_now_us() - t0) / 1e6, a->workers, a->workers == 1 ? "" : "s", a->cores,
                a->cores == 1 ? "" : "s", a->memory);
    }
    if (a->connect && !json_string_value(json_object_get(cs, "connect_url"))) {
        cli_errorf("Spark cluster '%s' has no Spark Connect server (nbhub spark up %s --connect)", name, name);
        json_decref(cs);
        json_decref(cfg);
        return ST_EXIT_NAMED;
    }
    /* Executors must fit a worker, or Spark waits for resources forever.
     * Spark's default executor (1g) does not fit a 512m worker: without a
     * spark.executor.memory of the task's, one executor takes the worker's
     * memory (as the Connect server's do). */
    const char *wmem = json_string_value(json_object_get(cfg, "worker_memory"));
    const char *emem = NULL;
    for (size_t i = 0; i < a->nconf; i++)
        if (!strncmp(a->conf[i], "spark.executor.memory=", 22)) emem = a->conf[i] + 22;
    if (wmem && emem && scluster_memory_mb(emem) > scluster_memory_mb(wmem)) {
        cli_errorf("spark.executor.memory %s is more than the memory of a worker of cluster '%s' (%s): no "
                   "executor could start", emem, name, wmem);
        json_decref(cfg);
        json_decref(cs);
        return ST_EXIT_FIT;
    }
    if (wmem && !emem) a->conf[a->nconf++] = r->exec_mem = xasprintf("spark.executor.memory=%s", wmem);
    json_decref(cfg);
    json_object_set(r->doc, "master_url", json_object_get(cs, "master_url"));
    json_object_set(r->doc, "ui_url", json_object_get(cs, "ui_url"));
    char *ui = scluster_ui_path(r->cluster_id);
    json_object_set_new(r->doc, "ui_path", json_sprintf("%s/", ui));
    free(ui);
    json_object_set(r->doc, "connect_url", json_object_get(cs, "connect_url"));
    r->master_restarts = st_master_restarts(cs);
    json_decref(cs);
    return 0;
}

static void strv_add(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

int cmd_spark_task(int argc, char **argv)
{
    struct st_args a;
    int code = st_parse(argc, argv, &a);
    if (code) {
        free(a.conf);
        return code;
    }
    struct sigaction sa = { 0 };
    sa.sa_handler = st_on_signal;   /* no SA_RESTART: a sleep ends early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct st_run r = { .a = &a, .doc = json_object() };
    st_set(&r, "app_name", a.app_name);
    st_set(&r, "app_id", NULL);
    int sup = 0;
    char *py = NULL, *home = NULL, *py4j = NULL;
    char **env = NULL, **cargv = NULL;
    size_t nenv = 0, nargv = 0;
    if (cmd_spark_locate(a.python, NULL, &py, &home, &py4j)) {
        code = ST_EXIT_NO_SPARK;
        st_set(&r, "state", "failed");
        st_set(&r, "message", cli_last_error);
        goto out;
    }
    if ((code = st_cluster(&r, home, &sup))) {
        st_set(&r, "state", "failed");
        st_set(&r, "message", cli_last_error);
        goto out;
    }
    if (cmd_spark_stop_requested) {
        code = NB_EXIT_SIGTERM;
        goto out;
    }

    /* The driver's settings, on 127.0.0.1 with a UI port we know. */
    r.ui_port = scluster_free_port();
    char uip[48];
    snprintf(uip, sizeof uip, "spark.ui.port=%d", r.ui_port);
    char *appui = xasprintf("http://127.0.0.1:%d/", r.ui_port);
    st_set(&r, "app_ui_url", appui);
    free(appui);
    const char *master = json_string_value(json_object_get(r.doc, "master_url"));
    const char *sc = a.connect ? json_string_value(json_object_get(r.doc, "connect_url")) : NULL;
    const char *words[64];
    size_t nw = 0;
    words[nw++] = "--master";
    words[nw++] = master;
    if (a.app_name) {
        words[nw++] = "--name";
        words[nw++] = a.app_name;
    }
    const char *confs[] = { "spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1", uip };
    for (size_t i = 0; i < 3; i++) {
        words[nw++] = "--conf";
        words[nw++] = confs[i];
    }
    /* On a cluster, the driver's UI draws its links for nbhub's proxy
     * (Spark wants the same settings on master, workers and drivers). */
    if (r.cluster_id) {
        r.uiconf = scluster_ui_confs(r.cluster_id);
        for (size_t i = 0; i < SCLUSTER_UI_NCONFS; i++) {
            words[nw++] = "--conf";
            words[nw++] = r.uiconf[i];
        }
    }
    /* The event log, next to --state: the jobs on record once the driver
     * is gone (st_final).  Plain and in one file so that we (and a Spark
     * history server pointed at it) can read it; a task's own
     * spark.eventLog.* conf comes later and wins.  A Connect server's
     * driver is the cluster's, not the task's: nothing to log here. */
    char *dir = sc ? NULL : st_beside(&a, "-events");
    if (dir) {
        r.events = mkdir(dir, 0700) == 0 || errno == EEXIST ? realpath(dir, NULL) : NULL;
        clock_gettime(CLOCK_REALTIME, &r.since);
        free(dir);
    }
    if (r.events) {
        static const char *const ev[] = { "spark.eventLog.enabled=true", "spark.eventLog.compress=false",
                                          "spark.eventLog.rolling.enabled=false" };
        for (size_t i = 0; i < 3; i++) {
            words[nw++] = "--conf";
            words[nw++] = ev[i];
        }
        r.evconf = xasprintf("spark.eventLog.dir=file://%s", r.events);
        words[nw++] = "--conf";
        words[nw++] = r.evconf;
    }

    /* The environment. */
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "PYSPARK_SUBMIT_ARGS=", 20) && strncmp(*e, "SPARK_REMOTE=", 13) &&
            strncmp(*e, "NBHUB_SPARK_", 12))
            strv_add(&env, &nenv, xstrdup(*e));
    if (sc) {
        /* A session id of ours, so the server's jobs of this task can be
         * told from other clients' (st_connect). */
        st_uuid(r.session);
        st_set(&r, "session_id", r.session);
        strv_add(&env, &nenv, xasprintf("SPARK_REMOTE=%s/;session_id=%s", sc, r.session));
    } else {
        buf_t b = BUF_INIT;
        for (size_t i = 0; i < nw; i++) {
            if (i) buf_putc(&b, ' ');
            sparkspec_quote(&b, words[i]);
        }
        for (size_t i = 0; i < a.nconf; i++) {
            buf_puts(&b, " --conf ");
            sparkspec_quote(&b, a.conf[i]);
        }
        buf_puts(&b, " pyspark-shell");
        strv_add(&env, &nenv, xasprintf("PYSPARK_SUBMIT_ARGS=%s", b.data));
        buf_free(&b);
    }
    strv_add(&env, &nenv, xasprintf("NBHUB_SPARK_MASTER=%s", master));
    if (!getenv("SPARK_HOME")) strv_add(&env, &nenv, xasprintf("SPARK_HOME=%s", home));
    if (!getenv("PYSPARK_PYTHON")) strv_add(&env, &nenv, xasprintf("PYSPARK_PYTHON=%s", py));
    if (!getenv("SPARK_LOCAL_IP")) strv_add(&env, &nenv, xstrdup("SPARK_LOCAL_IP=127.0.0.1"));

    /* The command. */
    size_t k = 0;
    if (a.submit) {
        strv_add(&cargv, &nargv, xasprintf("%s/bin/spark-submit", home));
        for (size_t i = 0; i < nw; i++) strv_add(&cargv, &nargv, xstrdup(words[i]));
        for (size_t i = 0; i < a.nconf; i++) {
            strv_add(&cargv, &nargv, xstrdup("--conf"));
            strv_add(&cargv, &nargv, xstrdup(a.conf[i]));
        }
        k = 1;   /* a.argv[0] is the placeholder "spark-submit" */
    }
    for (; a.argv[k]; k++) strv_add(&cargv, &nargv, xstrdup(a.argv[k]));

    st_set(&r, "state", "running");
    st_write(&r);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execvpe(cargv[0], cargv, env);
        fprintf(stderr, "nbhub: cannot execute %s: %s\n", cargv[0], strerror(errno));
        _exit(127);
    }
    if (child < 0) {
        cli_errorf("cannot start %s: %s", cargv[0], strerror(errno));
        code = 127;
        goto out;
    }
    int status = 0;
    for (unsigned tick = 0;; tick++) {
        pid_t w = waitpid(child, &status, WNOHANG);
        if (w == child) break;
        if (w < 0 && errno != EINTR) {
            status = 127 << 8;
            break;
        }
        if (a.poll_ms > 0 && (tick * 100) % (unsigned)a.poll_ms < 100) st_poll(&r);
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    st_final(&r);
    st_set(&r, "state", "done");
out:
    if (sup) {
        st_set(&r, "state", "stopping cluster");
        st_write(&r);
        cmd_spark_stop(sup);
        fprintf(stderr, "nbhub: Spark cluster %s removed\n", a.ephemeral);
        st_set(&r, "state", code == 0 ? "done" : "failed");
    } else if (code && !json_object_get(r.doc, "state")) {
        st_set(&r, "state", "failed");
    }
    if (a.ephemeral && r.cluster_dir) {
        json_t *live = scluster_live_state(r.cluster_dir);
        if (!live) st_keep_cluster_dir(&r);
        json_decref(live);
    }
    st_write(&r);
    json_decref(r.doc);
    free(r.last);
    free(r.cluster_dir);
    free(r.cluster_id);
    free(r.exec_mem);
    free(r.events);
    if (r.evf) fclose(r.evf);
    seventlog_free(r.evlog);
    free(r.evconf);
    scluster_strv_free(r.uiconf);
    free(py);
    free(home);
    free(py4j);
    for (size_t i = 0; i < nenv; i++) free(env[i]);
    free(env);
    for (size_t i = 0; i < nargv; i++) free(cargv[i]);
    free(cargv);
    free(a.conf);
    return code;
}
