/*
 * cmd_spark — `nbhub spark up|down|status|list`: local Spark standalone
 * clusters as managed resources, and `nbhub __spark-supervise DIR`, the
 * process that keeps one alive.
 *
 * A cluster lives in $NBHUB_HOME/spark/ID/ (ID: NAME for the operator's,
 * ~OWNER/NAME for a user's, scluster.h): config.json (what `up` asked
 * for), state.json (what the supervisor sees, rewritten atomically every
 * second), lock (the claim the supervisor holds for its whole life: one
 * supervisor per directory), supervisor.log, logs/master.log,
 * logs/worker-N.log, work/.
 *
 * `up` writes the config, starts the supervisor in its own session and
 * waits until the master reports every worker ALIVE.  The supervisor runs
 * the master and the workers (spark-class from SPARK_HOME or pyspark's
 * bundled Spark, through `nbhub __kernel-exec`, so they get
 * PR_SET_PDEATHSIG: if the supervisor is killed, even with kill -9, the
 * JVMs die with it — no orphans).  A child that exits is started again
 * after 1, 2, 4 ... 30 s (reset after a minute of running); a master that
 * cannot start is given new ports and the workers follow it.  Health is
 * the master's /json/, polled every 200 ms while starting (workers are
 * started once it answers: one started earlier backs off for seconds
 * between registration attempts), then every second.  SIGTERM (`down`): SIGTERM to every JVM's group,
 * SIGKILL after 10 s, state.json removed, exit 0.
 *
 * Exit codes: 0, 2 usage, 3 invalid option / no such cluster, 4 no Java or
 * no Spark, 5 already up, 6 not ready in time (stopped again; see the
 * logs), 7 state could not be written.
 */
#include "cli/cli.h"
#include "spark/scluster.h"
#include "util/buf.h"
#include "util/dlcurl.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

#define SPARK_MAX_WORKERS 64
#define SPARK_EXIT_PORT   8   /* a port asked for is in use */

static const char cmd_spark_usage[] =
    "usage: nbhub spark <up|down|status|list> [options]\n"
    "\n"
    "  up NAME [--workers N] [--worker-cores C] [--worker-memory M] [--connect] [--timeout S]\n"
    "          [--port P] [--ui-port U] [--connect-port C]\n"
    "          start a Spark standalone master and N workers (default 1 worker, 1 core,\n"
    "          1g) on 127.0.0.1, supervised by nbhub; prints the master URL; --connect adds\n"
    "          a Spark Connect server (printed next: sc://127.0.0.1:PORT, for SPARK_REMOTE);\n"
    "          --port / --ui-port / --connect-port: the master's, its UI's and the Connect\n"
    "          server's ports (default: free ones)\n"
    "  down NAME        stop the cluster (its JVMs get SIGTERM, then SIGKILL after 10 s)\n"
    "  status NAME      state, master and UI URLs, workers alive, cores, memory, restarts\n"
    "  list             the clusters that are up, every owner's\n"
    "  render-k8s app|notebook|connect NAME ...  Kubernetes manifests (nbhub spark render-k8s help)\n"
    "\n"
    "Common options: --home DIR (default $NBHUB_HOME, else ~/.local/share/nbhub),\n"
    "--json (status, list), --python PATH / --spark-home DIR (up: where Spark comes from,\n"
    "as for nbhub kernel install-spark), --owner USER (a user's cluster: names are per\n"
    "user, as the API and flows see them; without it, the operator's).\n"
    "\n"
    "Exit codes: 0 done, 2 usage error, 3 invalid option or no such cluster, 4 no Java or\n"
    "no Spark found, 5 already up, 6 not ready within --timeout (stopped again; see its\n"
    "logs), 7 its state could not be written, 8 a port asked for is in use.\n";

/* ---- shared ---------------------------------------------------------------- */


static int state_pid(const json_t *st)
{
    return (int)json_integer_value(json_object_get(st, "pid"));
}

/* ---- the supervisor ----------------------------------------------------------- */

struct child {
    struct sv     *sv;
    uv_process_t   proc;
    int            running, pid, gen, index;   /* index -1 = master, -2 = Connect server */
    unsigned       restarts, failures;
    uint64_t       started_ms, next_start_ms;
    char          *log;
};

struct sv {
    uv_loop_t      loop;
    char          *dir, *name, *owner, *id, *spark_home, *memory, *self;   /* owner NULL: the operator's */
    int            lock_fd;        /* DIR/lock, held for the whole life (scluster_lock) */
    int            nworkers, cores, connect;
    int            port, ui_port, connect_port, gen;
    int            fixed_port, fixed_ui_port;   /* --port / --ui-port, 0 = free ones */
    int            fixed_connect_port;          /* --connect-port (the hub's: sowned.h), 0 = a free one */
    struct child   master, workers[SPARK_MAX_WORKERS], server;
    uv_timer_t     tick, kill_timer;
    uv_signal_t    sigterm, sigint;
    int            stopping, ever_ready;
    struct scluster_status st;
    int            have_st;
    char           message[512];
};

static uint64_t now_ms(struct sv *s) { return uv_now(&s->loop); }

static void sv_log(struct sv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sv_log(struct sv *s, const char *fmt, ...)
{
    char ts[32];
    time_t t = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s cluster=%s ", ts, s->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void sv_write_state(struct sv *s, const char *state)
{
    json_t *kids = json_array();
    unsigned restarts = s->master.restarts;
    json_array_append_new(kids, json_pack("{s:s, s:i, s:i}", "role", "master", "pid", s->master.running ? s->master.pid : 0,
                                          "restarts", (int)s->master.restarts));
    for (int i = 0; i < s->nworkers; i++) {
        restarts += s->workers[i].restarts;
        json_array_append_new(kids, json_pack("{s:s, s:i, s:i}", "role", "worker",
                                              "pid", s->workers[i].running ? s->workers[i].pid : 0,
                                              "restarts", (int)s->workers[i].restarts));
    }
    if (s->connect) {
        restarts += s->server.restarts;
        json_array_append_new(kids, json_pack("{s:s, s:i, s:i}", "role", "connect",
                                              "pid", s->server.running ? s->server.pid : 0,
                                              "restarts", (int)s->server.restarts));
    }
    char url[64], ui[64], sc[64];
    snprintf(sc, sizeof sc, "sc://127.0.0.1:%d", s->connect_port);
    snprintf(url, sizeof url, "spark://127.0.0.1:%d", s->port);
    snprintf(ui, sizeof ui, "http://127.0.0.1:%d/", s->ui_port);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:I, s:i, s:i, s:s, s:o}",
                          "name", s->name, "state", state, "pid", (int)getpid(), "master_url", url,
                          "ui_url", ui, "workers", s->nworkers,
                          "alive_workers", s->have_st ? s->st.alive_workers : 0,
                          "cores", s->have_st ? s->st.cores : 0,
                          "memory_mb", (json_int_t)(s->have_st ? s->st.memory_mb : 0),
                          "active_apps", s->have_st ? s->st.active_apps : 0,
                          "restarts", (int)restarts, "message", s->message, "processes", kids);
    json_object_set_new(j, "connect_url", s->connect ? json_string(sc) : json_null());
    json_object_set_new(j, "owner", s->owner ? json_string(s->owner) : json_null());
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(j);
    char *p = xasprintf("%s/state.json", s->dir);
    nb_err_t err;
    if (fs_write_atomic(p, text, strlen(text), 0, &err) < 0) sv_log(s, "cannot write state: %s", err.msg);
    free(p);
    free(text);
}

static void sv_on_exit(uv_process_t *p, int64_t status, int sig);

static void sv_closed(uv_handle_t *h) { (void)h; }

static void sv_spawn(struct sv *s, struct child *c)
{
    char **jargv = c->index == -1 ? scluster_master_argv(s->spark_home, s->port, s->ui_port) : NULL;
    if (c->index == -2) {
        char url[64];
        snprintf(url, sizeof url, "spark://127.0.0.1:%d", s->port);
        jargv = scluster_connect_argv(s->spark_home, s->id, url, s->connect_port, s->memory);
    }
    if (c->index >= 0) {
        char url[64], work[4096];
        snprintf(url, sizeof url, "spark://127.0.0.1:%d", s->port);
        snprintf(work, sizeof work, "%s/work/worker-%d", s->dir, c->index);
        nb_err_t err;
        fs_mkdir_p(work, 0700, &err);
        jargv = scluster_worker_argv(s->spark_home, url, s->cores, s->memory, work);
    }
    /* nbhub __kernel-exec PPID -- spark-class ...: PR_SET_PDEATHSIG, then exec. */
    size_t n = 0;
    while (jargv[n]) n++;
    char **argv = xcalloc(n + 5, sizeof *argv);
    char ppid[16];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    argv[0] = s->self;
    argv[1] = (char *)"__kernel-exec";
    argv[2] = ppid;
    argv[3] = (char *)"--";
    for (size_t i = 0; i < n; i++) argv[4 + i] = jargv[i];
    char **env = scluster_env(s->spark_home, s->id);
    int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    uv_stdio_container_t io[3] = { { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = fd },
                                   { .flags = UV_INHERIT_FD, .data.fd = fd } };
    uv_process_options_t o = { .exit_cb = sv_on_exit, .file = s->self, .args = argv, .env = env,
                               .stdio_count = 3, .stdio = io, .flags = UV_PROCESS_DETACHED };
    c->proc.data = c;
    int rc = uv_spawn(&s->loop, &c->proc, &o);
    if (fd >= 0) close(fd);
    if (rc == 0) {
        c->running = 1;
        c->pid = c->proc.pid;
        c->gen = s->gen;
        c->started_ms = now_ms(s);
        sv_log(s, "started %s pid=%d", c->index == -1 ? "master" : c->index == -2 ? "connect server" : "worker", c->pid);
    } else {
        uv_close((uv_handle_t *)&c->proc, sv_closed);
        snprintf(s->message, sizeof s->message, "cannot start %s: %s", argv[4], uv_strerror(rc));
        c->next_start_ms = now_ms(s) + 5000;
    }
    free(argv);
    scluster_strv_free(jargv);
    scluster_strv_free(env);
}

/* Ports for the master, its UI and the Connect server: free ones, or the
 * ones asked for (kept across restarts: the operator chose them). */
static void sv_new_ports(struct sv *s)
{
    int p = s->fixed_port ? s->fixed_port : scluster_free_port();
    int u = s->fixed_ui_port ? s->fixed_ui_port : scluster_free_port();
    int c = s->fixed_connect_port ? s->fixed_connect_port : scluster_free_port();
    if (p > 0 && u > 0 && c > 0 && p != u && c != p && c != u) {
        s->port = p;
        s->ui_port = u;
        s->connect_port = c;
        s->gen++;
    }
}

/* Is something accepting on 127.0.0.1:port (the Connect server's gRPC)? */
static int sv_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void sv_maybe_done(struct sv *s)
{
    if (!s->stopping || s->master.running || s->server.running) return;
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].running) return;
    char *p = xasprintf("%s/state.json", s->dir);
    unlink(p);
    free(p);
    sv_log(s, "stopped");
    uv_stop(&s->loop);
}

static void sv_on_exit(uv_process_t *p, int64_t status, int sig)
{
    struct child *c = p->data;
    struct sv *s = c->sv;
    c->running = 0;
    uv_close((uv_handle_t *)p, sv_closed);
    if (s->stopping) {
        sv_maybe_done(s);
        return;
    }
    uint64_t ran = now_ms(s) - c->started_ms;
    if (ran > 60000) c->failures = 0;
    c->failures++;
    c->restarts++;
    unsigned delay = 1000u << (c->failures > 5 ? 5 : c->failures - 1);
    if (delay > 30000) delay = 30000;
    c->next_start_ms = now_ms(s) + delay;
    snprintf(s->message, sizeof s->message, "%s pid %d %s %d after %.1f s; restarting in %u s",
             c->index == -1 ? "master" : c->index == -2 ? "connect server" : "worker", c->pid, sig ? "was killed by signal" : "exited with",
             sig ? sig : (int)status, ran / 1000.0, delay / 1000);
    sv_log(s, "%s", s->message);
    /* A master that died at once probably lost its ports: new ones, and the
     * workers follow it (they are restarted for the new URL in the tick). */
    if (c->index == -1 && ran < 5000) sv_new_ports(s);
}

/* The master's /json/, on this process's own thread: a local request with
 * a one-second limit is all this loop ever waits for. */
static int sv_poll_master(struct sv *s)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/json/", s->ui_port);
    buf_t body;
    long code;
    int ok = -1;
    nb_err_t err;
    if (dlcurl_get(url, 1000, &body, &code) == 0 && code == 200 &&
        scluster_status_parse(body.data, body.len, &s->st, &err) == 0) {
        s->have_st = 1;
        ok = 0;
    }
    free(body.data);
    return ok;
}

static void sv_on_tick(uv_timer_t *t)
{
    struct sv *s = t->data;
    if (s->stopping) return;
    uint64_t now = now_ms(s);
    if (!s->master.running && now >= s->master.next_start_ms) sv_spawn(s, &s->master);
    int master_ok = s->master.running && sv_poll_master(s) == 0 && !strcmp(s->st.status, "ALIVE");
    if (!master_ok) s->have_st = s->master.running ? s->have_st : 0;
    for (int i = 0; i < s->nworkers; i++) {
        struct child *w = &s->workers[i];
        if (w->running && w->gen != s->gen) {      /* the master moved: follow it */
            kill(-w->pid, SIGTERM);
            continue;
        }
        /* Workers start once the master answers: one started earlier
         * backs off between registration attempts for seconds. */
        if (!w->running && master_ok && now >= w->next_start_ms) sv_spawn(s, w);
    }
    int workers_ok = master_ok && s->st.alive_workers >= s->nworkers;
    int connect_ok = 1;
    if (s->connect) {
        struct child *c = &s->server;
        if (c->running && c->gen != s->gen) kill(-c->pid, SIGTERM);
        else if (!c->running && workers_ok && now >= c->next_start_ms) sv_spawn(s, c);
        connect_ok = c->running && sv_port_open(s->connect_port);
    }
    const char *state = "starting";
    if (workers_ok && connect_ok) {
        state = "running";
        if (!s->ever_ready) {
            sv_log(s, "running: %d workers alive", s->st.alive_workers);
            uv_timer_set_repeat(&s->tick, 1000);   /* fast checks only while starting */
        }
        s->ever_ready = 1;
        s->message[0] = '\0';
    } else if (s->ever_ready) {
        state = "degraded";
    }
    sv_write_state(s, state);
}

static void sv_on_kill_timer(uv_timer_t *t)
{
    struct sv *s = t->data;
    if (s->master.running) kill(-s->master.pid, SIGKILL);
    if (s->server.running) kill(-s->server.pid, SIGKILL);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].running) kill(-s->workers[i].pid, SIGKILL);
}

static void sv_on_signal(uv_signal_t *h, int sig)
{
    struct sv *s = h->data;
    if (s->stopping) return;
    s->stopping = 1;
    sv_log(s, "stopping (signal %d)", sig);
    sv_write_state(s, "stopping");
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].running) kill(-s->workers[i].pid, SIGTERM);
    if (s->server.running) kill(-s->server.pid, SIGTERM);
    if (s->master.running) kill(-s->master.pid, SIGTERM);
    uv_timer_start(&s->kill_timer, sv_on_kill_timer, 10000, 0);
    sv_maybe_done(s);
}

int cmd_spark_supervise(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        cli_errorf("__spark-supervise: internal command, usage: __spark-supervise DIR [LOCK-FD]");
        return NB_EXIT_USAGE;
    }
    struct sv *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(argv[1]);
    /* The directory's claim, handed down by whoever started us (or taken
     * here): one supervisor per directory.  Never released: the kernel
     * drops it when this process ends, however it ends. */
    nb_err_t lerr;
    s->lock_fd = scluster_lock(s->dir, argc == 3 ? atoi(argv[2]) : -1, &lerr);
    if (s->lock_fd < 0) {
        cli_errorf("__spark-supervise: %s", lerr.msg);
        return 5;
    }
    json_t *cfg = scluster_config(s->dir);
    if (!cfg) {
        cli_errorf("__spark-supervise: no config.json in %s", s->dir);
        return NB_EXIT_INPUT;
    }
    s->name = xstrdup(json_string_value(json_object_get(cfg, "name")));
    const char *owner = json_string_value(json_object_get(cfg, "owner"));
    s->owner = owner ? xstrdup(owner) : NULL;
    s->id = scluster_id(s->owner, s->name);
    s->spark_home = xstrdup(json_string_value(json_object_get(cfg, "spark_home")));
    s->memory = xstrdup(json_string_value(json_object_get(cfg, "worker_memory")));
    s->nworkers = (int)json_integer_value(json_object_get(cfg, "workers"));
    s->cores = (int)json_integer_value(json_object_get(cfg, "worker_cores"));
    s->connect = json_is_true(json_object_get(cfg, "connect"));
    s->fixed_port = (int)json_integer_value(json_object_get(cfg, "port"));
    s->fixed_ui_port = (int)json_integer_value(json_object_get(cfg, "ui_port"));
    s->fixed_connect_port = (int)json_integer_value(json_object_get(cfg, "connect_port"));
    json_decref(cfg);
    s->self = cli_self_exe("nbhub");
    char *logs = xasprintf("%s/logs", s->dir);
    nb_err_t err;
    fs_mkdir_p(logs, 0700, &err);
    s->master.sv = s;
    s->master.index = -1;
    s->master.log = xasprintf("%s/master.log", logs);
    s->server.sv = s;
    s->server.index = -2;
    s->server.log = xasprintf("%s/connect.log", logs);
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].sv = s;
        s->workers[i].index = i;
        s->workers[i].log = xasprintf("%s/worker-%d.log", logs, i);
    }
    free(logs);
    sv_new_ports(s);
    uv_loop_init(&s->loop);
    uv_timer_init(&s->loop, &s->tick);
    uv_timer_init(&s->loop, &s->kill_timer);
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->tick.data = s->kill_timer.data = s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, sv_on_signal, SIGTERM);
    uv_signal_start(&s->sigint, sv_on_signal, SIGINT);
    sv_write_state(s, "starting");
    uv_timer_start(&s->tick, sv_on_tick, 0, 200);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NB_EXIT_OK;   /* the process ends here; the OS takes the rest */
}

/* ---- the client side ------------------------------------------------------------- */

struct spark_args {
    const char *name, *home, *python, *spark_home, *memory, *owner, *server, *livy_session;
    int workers, cores, json, timeout_s, connect, port, ui_port, connect_port, lock_fd;
};

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        cli_errorf("%s %s: a whole number from %d to %d expected", flag, v, lo, hi);
        return NB_EXIT_INPUT;
    }
    *out = (int)n;
    return 0;
}

static int spark_parse(int argc, char **argv, struct spark_args *a, int want_name)
{
    memset(a, 0, sizeof *a);
    a->workers = 1;
    a->cores = 1;
    a->memory = "1g";
    a->timeout_s = 180;
    a->lock_fd = -1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--json")) { a->json = 1; continue; }
        if (!strcmp(f, "--connect")) { a->connect = 1; continue; }
        const char **sv = !strcmp(f, "--home") ? &a->home : !strcmp(f, "--python") ? &a->python
                        : !strcmp(f, "--spark-home") ? &a->spark_home : !strcmp(f, "--worker-memory") ? &a->memory
                        : !strcmp(f, "--owner") ? &a->owner
                        /* internal: the hub's notebook server the cluster belongs to (sowned.h) */
                        : !strcmp(f, "--server") ? &a->server
                        /* internal: the Livy session the cluster belongs to (livy_cluster.h) */
                        : !strcmp(f, "--livy-session") ? &a->livy_session : NULL;
        int iv = !strcmp(f, "--workers") || !strcmp(f, "--worker-cores") || !strcmp(f, "--timeout") ||
                 !strcmp(f, "--port") || !strcmp(f, "--ui-port") || !strcmp(f, "--connect-port") ||
                 !strcmp(f, "--lock-fd");
        if (sv || iv) {
            if (i + 1 >= argc) {
                cli_errorf("%s needs a value (see nbhub spark --help)", f);
                return NB_EXIT_USAGE;
            }
            const char *v = argv[++i];
            if (sv) *sv = v;
            else if (!strcmp(f, "--workers")) { if (parse_int(f, v, 1, SPARK_MAX_WORKERS, &a->workers)) return NB_EXIT_INPUT; }
            else if (!strcmp(f, "--worker-cores")) { if (parse_int(f, v, 1, 1024, &a->cores)) return NB_EXIT_INPUT; }
            else if (!strcmp(f, "--port")) { if (parse_int(f, v, 1, 65535, &a->port)) return NB_EXIT_INPUT; }
            else if (!strcmp(f, "--ui-port")) { if (parse_int(f, v, 1, 65535, &a->ui_port)) return NB_EXIT_INPUT; }
            else if (!strcmp(f, "--connect-port")) { if (parse_int(f, v, 1, 65535, &a->connect_port)) return NB_EXIT_INPUT; }
            /* internal: the API hands its claim on the directory down */
            else if (!strcmp(f, "--lock-fd")) { if (parse_int(f, v, 3, 1023, &a->lock_fd)) return NB_EXIT_INPUT; }
            else if (parse_int(f, v, 1, 3600, &a->timeout_s)) return NB_EXIT_INPUT;
            continue;
        }
        if (f[0] == '-') {
            cli_errorf("spark %s: unknown option %s (see nbhub spark --help)", argv[0], f);
            return NB_EXIT_USAGE;
        }
        if (!want_name || a->name) {
            cli_errorf("spark %s: unexpected argument '%s'", argv[0], f);
            return NB_EXIT_USAGE;
        }
        a->name = f;
    }
    if (want_name && !a->name) {
        cli_errorf("spark %s: which cluster? (see nbhub spark --help)", argv[0]);
        return NB_EXIT_USAGE;
    }
    if (a->name && !scluster_name_ok(a->name)) {
        cli_errorf("cluster name '%s': letters, digits, '.', '_' and '-' expected", a->name);
        return NB_EXIT_INPUT;
    }
    if (a->owner && !scluster_owner_ok(a->owner)) {
        cli_errorf("--owner '%s': a user name (1 to 64 bytes, no '/') expected", a->owner);
        return NB_EXIT_INPUT;
    }
    if (scluster_memory_ok(a->memory) < 0) {
        cli_errorf("--worker-memory %s: a size such as 512m or 2g expected", a->memory);
        return NB_EXIT_INPUT;
    }
    return 0;
}

static char *spark_home_dir(const struct spark_args *a)
{
    return a->home ? xstrdup(a->home) : cli_default_home();
}

/* The directory of cluster NAME of --owner (without: the operator's).
 * `up` makes a new one where it belongs (scluster.h); the others find an
 * owner's cluster of the old layout too. */
static char *cluster_dir(const struct spark_args *a, const char *name, int for_up)
{
    char *home = spark_home_dir(a);
    char *id = for_up ? NULL : scluster_find(home, a->owner, name);
    if (!id) id = scluster_id(a->owner, name);
    char *d = scluster_dir(home, id);
    free(id);
    free(home);
    return d;
}

static void print_state(const json_t *st, int as_json)
{
    if (as_json) {
        char *t = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(t);
        free(t);
        return;
    }
    const char *sc = json_string_value(json_object_get(st, "connect_url"));
    printf("%s: %s\n  master  %s\n%s%s%s  ui      %s\n  workers %lld of %lld alive, %lld cores, %lld MB; %lld restarts\n",
           json_string_value(json_object_get(st, "name")), json_string_value(json_object_get(st, "state")),
           json_string_value(json_object_get(st, "master_url")), sc ? "  connect " : "", sc ? sc : "", sc ? "\n" : "",
           json_string_value(json_object_get(st, "ui_url")),
           json_integer_value(json_object_get(st, "alive_workers")), json_integer_value(json_object_get(st, "workers")),
           json_integer_value(json_object_get(st, "cores")), json_integer_value(json_object_get(st, "memory_mb")),
           json_integer_value(json_object_get(st, "restarts")));
    const char *m = json_string_value(json_object_get(st, "message"));
    if (m && *m) printf("  last    %s\n", m);
}

int cmd_spark_start(const char *dir, json_t *cfg, int tied, int timeout_s, int lock_fd, int *pid_out,
                    json_t **state_out)
{
    const char *name = json_string_value(json_object_get(cfg, "name"));
    const char *mem = json_string_value(json_object_get(cfg, "worker_memory"));
    long workers = (long)json_integer_value(json_object_get(cfg, "workers"));
    /* A worker only advertises its memory; an executor asking for more
     * than the machine has fails late and obscurely.  Refuse it here. */
    long want = scluster_memory_mb(mem) * workers, have = scluster_host_memory_mb();
    if (have > 0 && want > have) {
        cli_errorf("cluster '%s': %ld worker%s x %s = %ld MB, but this machine has %ld MB of memory",
                   name, workers, workers == 1 ? "" : "s", mem, want, have);
        return NB_EXIT_INPUT;
    }
    /* Ports asked for must be free now: a JVM that cannot bind would be
     * restarted on the same port forever. */
    static const char *const fixed[] = { "port", "ui_port", "connect_port" },
                      *const flag[] = { "port", "ui-port", "connect-port" };
    for (size_t i = 0; i < 3; i++) {
        int p = (int)json_integer_value(json_object_get(cfg, fixed[i]));
        if (!p) continue;
        int twice = p == json_integer_value(json_object_get(cfg, fixed[(i + 1) % 3])) ||
                    p == json_integer_value(json_object_get(cfg, fixed[(i + 2) % 3]));
        if (twice || scluster_port_bind(p) != p) {
            cli_errorf("cluster '%s': port %d on 127.0.0.1 (--%s) is %s: choose another, or leave --%s out for a "
                       "free one", name, p, flag[i], twice ? "asked for twice" : "in use", flag[i]);
            return SPARK_EXIT_PORT;
        }
    }
    nb_err_t err;
    if (fs_mkdir_p(dir, 0700, &err) < 0) {
        cli_errorf("cannot create %s: %s", dir, err.msg);
        if (lock_fd >= 0) close(lock_fd);
        return NB_EXIT_OUTPUT;
    }
    /* The claim first, then nothing in the directory is touched by a
     * second start: it stops here.  (A supervisor of the old layout holds
     * no claim: its live state.json is the other check.) */
    int lk = scluster_lock(dir, lock_fd, &err);
    if (lk < 0) {
        if (lock_fd >= 0) close(lock_fd);
        if (lk == -EBUSY) cli_errorf("cluster '%s' is already up or starting", name);
        else cli_errorf("cluster '%s': %s", name, err.msg);
        return lk == -EBUSY ? 5 : NB_EXIT_OUTPUT;
    }
    json_t *old = scluster_live_state(dir);
    if (old) {
        cli_errorf("cluster '%s' is already up (supervisor pid %d)", name, state_pid(old));
        json_decref(old);
        close(lk);
        return 5;
    }
    /* Kept off fds 0-3 (the supervisor gets it as fd 3: a dup2 onto
     * itself would keep close-on-exec), close-on-exec here. */
    int hold = fcntl(lk, F_DUPFD_CLOEXEC, 10);
    close(lk);
    if (hold < 0) {
        cli_errorf("cannot keep the cluster's lock: %s", strerror(errno));
        return NB_EXIT_OUTPUT;
    }
    char *text = json_dumps(cfg, JSON_INDENT(1) | JSON_SORT_KEYS);
    char *cpath = xasprintf("%s/config.json", dir), *spath = xasprintf("%s/state.json", dir);
    int rc = fs_write_atomic(cpath, text, strlen(text), 1, &err);
    free(text);
    free(cpath);
    unlink(spath);
    if (rc < 0) {
        cli_errorf("cannot write the cluster's config: %s", err.msg);
        free(spath);
        close(hold);
        return NB_EXIT_OUTPUT;
    }
    /* The supervisor: its own session, so the signals of a terminal or of a
     * task's process group do not reach it; output to supervisor.log.  Tied
     * to us through __kernel-exec (PR_SET_PDEATHSIG) when it must not
     * outlive us, else free to outlive this command. */
    char *self = cli_self_exe("nbhub");
    char *logp = xasprintf("%s/supervisor.log", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, hold, 3);   /* the claim, for its whole life */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
    char ppid[32];
    snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
    char *free_argv[] = { self, (char *)"__spark-supervise", (char *)dir, (char *)"3", NULL };
    char *tied_argv[] = { self, (char *)"__kernel-exec", ppid, (char *)"--", self, (char *)"__spark-supervise",
                          (char *)dir, (char *)"3", NULL };
    pid_t sp;
    rc = posix_spawn(&sp, self, &fa, &at, tied ? tied_argv : free_argv, environ);
    /* Ours goes; the supervisor's copy keeps the claim (never unlocked
     * here: that would release it for both). */
    close(hold);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(logp);
    free(self);
    if (rc != 0) {
        cli_errorf("cannot start the supervisor: %s", strerror(rc));
        free(spath);
        return NB_EXIT_OUTPUT;
    }
    /* Wait for every worker to be ALIVE at the master. */
    int code = 6;
    for (int waited = 0; waited < timeout_s * 20; waited++) {
        json_t *st = json_load_file(spath, 0, NULL);
        const char *s = json_string_value(json_object_get(st, "state"));
        if (s && !strcmp(s, "running")) {
            *state_out = st;
            *pid_out = sp;
            free(spath);
            return NB_EXIT_OK;
        }
        json_decref(st);
        int status;
        if (waitpid(sp, &status, WNOHANG) == sp) {
            cli_errorf("the supervisor of '%s' exited; see %s/supervisor.log", name, dir);
            free(spath);
            return code;
        }
        if (cmd_spark_stop_requested) break;
        usleep(50000);
    }
    json_t *st = json_load_file(spath, 0, NULL);
    const char *m = json_string_value(json_object_get(st, "message"));
    if (cmd_spark_stop_requested)
        cli_errorf("cluster '%s': stopped while starting", name);
    else
        cli_errorf("cluster '%s' was not ready within %d s%s%s; stopping it (logs in %s/logs)", name, timeout_s,
                   m && *m ? ": " : "", m && *m ? m : "", dir);
    json_decref(st);
    cmd_spark_stop(sp);
    free(spath);
    return code;
}

volatile sig_atomic_t cmd_spark_stop_requested;

int cmd_spark_stop(int pid)
{
    kill(pid, SIGTERM);
    /* The supervisor gives the JVMs 10 s, then kills them. */
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid || kill(pid, 0) < 0) return 0;
        usleep(100000);
    }
    kill(pid, SIGKILL);
    return -ETIMEDOUT;
}

static int spark_up(int argc, char **argv)
{
    struct spark_args a;
    int rc = spark_parse(argc, argv, &a, 1);
    if (rc) return rc;
    char *dir = cluster_dir(&a, a.name, 1);
    int code;
    char *py = NULL, *home = NULL, *py4j = NULL;
    json_t *up = scluster_live_state(dir);
    if (up || (a.lock_fd < 0 && scluster_locked(dir))) {
        if (up) cli_errorf("cluster '%s' is already up (supervisor pid %d); nbhub spark status %s", a.name,
                           state_pid(up), a.name);
        else cli_errorf("cluster '%s' is starting", a.name);
        json_decref(up);
        code = 5;
        goto out;
    }
    if ((code = cmd_spark_locate(a.python, a.spark_home, &py, &home, &py4j))) goto out;
    json_t *cfg = json_pack("{s:s, s:s, s:i, s:i, s:s, s:b, s:s?}", "name", a.name, "spark_home", home,
                            "workers", a.workers, "worker_cores", a.cores, "worker_memory", a.memory,
                            "connect", a.connect, "owner", a.owner);
    if (a.server) json_object_set_new(cfg, "server", json_string(a.server));
    if (a.livy_session && atoll(a.livy_session) > 0)
        json_object_set_new(cfg, "livy_session", json_integer((json_int_t)atoll(a.livy_session)));
    if (a.port) json_object_set_new(cfg, "port", json_integer(a.port));
    if (a.ui_port) json_object_set_new(cfg, "ui_port", json_integer(a.ui_port));
    if (a.connect_port) json_object_set_new(cfg, "connect_port", json_integer(a.connect_port));
    json_t *st = NULL;
    int sp;
    code = cmd_spark_start(dir, cfg, 0, a.timeout_s, a.lock_fd, &sp, &st);
    json_decref(cfg);
    if (code == NB_EXIT_OK) {
        if (a.json) print_state(st, 1);
        else {
            printf("%s\n", json_string_value(json_object_get(st, "master_url")));
            if (a.connect) printf("%s\n", json_string_value(json_object_get(st, "connect_url")));
        }
        json_decref(st);
    }
out:
    free(dir);
    free(py);
    free(home);
    free(py4j);
    return code;
}

int cmd_spark_locate(const char *python, const char *spark_home, char **py, char **home, char **py4j)
{
    if (!cmd_kernel_spark_java()) {
        cli_errorf("no Java found (JAVA_HOME, PATH): Spark needs Java 17 or later "
                   "(Debian: apt-get install openjdk-17-jre-headless)");
        return 4;
    }
    return cmd_kernel_spark_locate(python, spark_home, py, home, py4j);
}

static int spark_down(int argc, char **argv)
{
    struct spark_args a;
    int rc = spark_parse(argc, argv, &a, 1);
    if (rc) return rc;
    char *dir = cluster_dir(&a, a.name, 0);
    json_t *st = scluster_live_state(dir);
    if (!st) {
        cli_errorf("no cluster '%s' is up%s%s", a.name, a.owner ? " for " : " (a user's: --owner USER)",
                   a.owner ? a.owner : "");
        free(dir);
        return NB_EXIT_INPUT;
    }
    int pid = state_pid(st);
    json_decref(st);
    int code = cmd_spark_stop(pid) < 0 ? NB_EXIT_OUTPUT : NB_EXIT_OK;
    if (code) cli_errorf("cluster '%s' did not stop within 30 s (supervisor pid %d)", a.name, pid);
    else printf("stopped %s\n", a.name);
    free(dir);
    return code;
}

static int spark_status(int argc, char **argv)
{
    struct spark_args a;
    int rc = spark_parse(argc, argv, &a, 1);
    if (rc) return rc;
    char *dir = cluster_dir(&a, a.name, 0);
    json_t *st = scluster_live_state(dir);
    free(dir);
    if (!st) {
        cli_errorf("no cluster '%s' is up%s%s", a.name, a.owner ? " for " : " (a user's: --owner USER)",
                   a.owner ? a.owner : "");
        return NB_EXIT_INPUT;
    }
    print_state(st, a.json);
    json_decref(st);
    return NB_EXIT_OK;
}

static int spark_list(int argc, char **argv)
{
    struct spark_args a;
    int rc = spark_parse(argc, argv, &a, 0);
    if (rc) return rc;
    /* Every owner's (--owner: that one's). */
    char *home = spark_home_dir(&a);
    char **ids = scluster_ids(home, a.owner);
    json_t *all = json_array();
    for (char **id = ids; *id; id++) {
        char *dir = scluster_dir(home, *id);
        json_t *st = scluster_live_state(dir);
        if (st && !json_object_get(st, "owner")) {   /* a supervisor from before owners were in its state */
            json_t *cfg = scluster_config(dir);
            json_object_set(st, "owner", json_object_get(cfg, "owner") ? json_object_get(cfg, "owner") : json_null());
            json_decref(cfg);
        }
        if (st) json_array_append_new(all, st);
        free(dir);
    }
    scluster_strv_free(ids);
    free(home);
    if (a.json) {
        char *t = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(t);
        free(t);
    } else if (!json_array_size(all)) {
        puts("No clusters are up.");
    } else {
        size_t i;
        json_t *st;
        printf("%-20s %-12s %-9s %-28s %s\n", "NAME", "OWNER", "STATE", "MASTER", "WORKERS");
        json_array_foreach(all, i, st) {
            const char *o = json_string_value(json_object_get(st, "owner"));
            printf("%-20s %-12s %-9s %-28s %lld/%lld\n", json_string_value(json_object_get(st, "name")), o ? o : "-",
                   json_string_value(json_object_get(st, "state")), json_string_value(json_object_get(st, "master_url")),
                   json_integer_value(json_object_get(st, "alive_workers")), json_integer_value(json_object_get(st, "workers")));
        }
    }
    json_decref(all);
    return NB_EXIT_OK;
}

int cmd_spark(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(int, char **); } subs[] = {
        { "up", spark_up }, { "down", spark_down }, { "status", spark_status }, { "list", spark_list },
        { "render-k8s", cmd_spark_render_k8s },
    };
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(cmd_spark_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? NB_EXIT_USAGE : NB_EXIT_OK;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(cmd_spark_usage, stdout);
            return NB_EXIT_OK;
        }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    cli_errorf("spark: unknown subcommand '%s'", argv[1]);
    fputs(cmd_spark_usage, stderr);
    return NB_EXIT_USAGE;
}
