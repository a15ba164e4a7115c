/*
 * cmd_serve — `nbhub serve`: the daemon.  This file only assembles the
 * parts on one libuv loop and owns the process's life cycle:
 *
 *   config (nbhub.yaml + flags) -> home dir + lock -> store (nbhub.db)
 *   -> warm kernel pool -> scheduler (flows dir, ticks, tasks)
 *   -> REST API + SSE on the HTTP server -> webhook deliverer
 *
 * One daemon per home: an flock on $HOME/nbhub.lock, so a second `nbhub
 * serve` on the same home fails at once with a clear message instead of
 * two schedulers firing the same ticks.
 *
 * First start: when the database has no user, an `admin` user is created
 * with a random one-time password printed on stderr (JupyterHub prints a
 * token the same way), unless NBHUB_ADMIN_PASSWORD_FILE names a file
 * holding the password.
 *
 * Signals: SIGTERM / SIGINT start a graceful stop — /healthz turns 503,
 * the listener closes, no new tick or task starts, running tasks get
 * shutdown_grace to finish, then are stopped and recorded; the second
 * signal makes it quick (grace 0).  SIGHUP rescans the flows directory
 * and reads the TLS listeners' certificates and keys again: connections
 * accepted afterwards get the new pair, open ones keep theirs, and a pair
 * that does not load leaves the old one in place (logged).
 */
#include "cli/cli.h"
#include "cli/srvconf.h"
#include "iso/cgroup.h"
#include "api/api.h"
#include "auth/passwd.h"
#include "auth/token.h"
#include "http/hclient.h"
#include "hub/hub.h"
#include "hub/hub_cull.h"
#include "hub/hub_spark.h"
#include "livy/livy.h"
#include "http/netguard.h"
#include "http/notify.h"
#include "http/proxy.h"
#include "http/server.h"
#include "http/tls.h"
#include "kernel/kspec.h"
#include "sched/pool.h"
#include "sched/sched.h"
#include "store/store.h"
#include "store/store_auth.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef NBHUB_VERSION
#define NBHUB_VERSION "0.1.0"
#endif

static const char serve_usage[] =
    "usage: nbhub serve [options]\n"
    "\n"
    "Run the nbhub daemon: scheduler, REST API (/api/v1), events, metrics.\n"
    "\n"
    "Options (they override the configuration file):\n"
    "  --config FILE          nbhub.yaml (default: $NBHUB_CONFIG, else <home>/nbhub.yaml if present)\n"
    "  --listen ADDR          127.0.0.1:PORT, [::1]:PORT or unix:/path (default 127.0.0.1:8765);\n"
    "                         repeat for several (plain HTTP; TLS listeners are set in\n"
    "                         nbhub.yaml, and these replace them)\n"
    "  --home DIR             state directory (default $NBHUB_HOME, else ~/.local/share/nbhub)\n"
    "  --flows DIR            flows directory (default <home>/flows)\n"
    "  --pool NAME=N          keep N warm kernels of kernel spec NAME (repeatable)\n"
    "  --max-active-tasks N   task processes at once (default 16)\n"
    "  --isolation MODE       shared or system (default: the file's, else $NBHUB_ISOLATION,\n"
    "                         else system as root and shared otherwise; docs/security.md)\n"
    "  --log-level LEVEL      debug, info, warn or error (default info)\n"
    "  --stop-servers-on-exit stop users' notebook servers when nbhub stops (default: they\n"
    "                         keep running and the next nbhub serve adopts them; docs/hub.md)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit codes:\n"
    "  0    stopped cleanly (SIGTERM or SIGINT)\n"
    "  2    usage error\n"
    "  3    invalid configuration file (FILE:LINE:COLUMN messages on stderr)\n"
    "  8    the home directory or its database cannot be used (or another daemon uses it)\n"
    "  9    cannot listen on an address\n";

enum { SERVE_EXIT_CONFIG = 3, SERVE_EXIT_HOME = 8, SERVE_EXIT_LISTEN = 9 };

struct serve {
    uv_loop_t      loop;
    srvconf_t      conf;
    store_t       *store;
    pool_t        *pool;
    sched_t       *sched;
    api_t         *api;
    http_server_t *http;
    http_server_t *livy_http;  /* livy_listen: the Livy API at / (docs/livy.md), or NULL */
    hclient_t     *hc;
    notify_t      *notify;
    hub_t         *hub;        /* users' notebook servers (docs/hub.md) */
    hub_spark_t   *hub_spark;  /* their Spark clusters (profiles' spark:) */
    hub_cull_t    *hub_cull;   /* idle culling (hub.cull) */
    livy_t        *livy;       /* Livy sessions (docs/livy.md) */
    int            stop_servers;   /* --stop-servers-on-exit */
    netguard_t    *guard;      /* where webhooks may go (nbhub.yaml webhooks.allow) */
    uv_signal_t    sigterm, sigint, sighup;
    uv_prepare_t   logflush;   /* the log's batched lines go out before the loop sleeps */
    tls_ctx_t    **tls;        /* per listen address, NULL = plain; NULL-padded, nlisten long */
    const char *const *addrs;
    size_t         nlisten;
    int            stopping;
    int            pending;    /* parts still closing */
};

static void serve_on_change(void *ud)
{
    struct serve *sv = ud;
    if (sv->api) api_notify(sv->api);
    if (sv->notify) notify_kick(sv->notify);
}

static void serve_part_closed(void *ud)
{
    struct serve *sv = ud;
    if (--sv->pending == 0) {
        uv_close((uv_handle_t *)&sv->sigterm, NULL);
        uv_close((uv_handle_t *)&sv->sigint, NULL);
        uv_close((uv_handle_t *)&sv->sighup, NULL);
        log_batch(0);
        uv_close((uv_handle_t *)&sv->logflush, NULL);
    }
}

static void serve_log_flush(uv_prepare_t *p)
{
    (void)p;
    log_flush();
}

static void serve_http_stopped(http_server_t *srv, void *ud)
{
    (void)srv;
    serve_part_closed(ud);
}


static void serve_sched_stopped(void *ud)
{
    struct serve *sv = ud;
    /* Tasks are done: now the kernels and the webhook client can go. */
    sv->pending += 3;
    if (sv->pool) pool_close(sv->pool, serve_part_closed, sv);
    else serve_part_closed(sv);
    sv->pool = NULL;
    /* A delivery in flight is abandoned (not counted as an attempt) and
     * retried by the next daemon: shutdown does not wait for receivers. */
    notify_close(sv->notify, serve_part_closed, sv);
    sv->notify = NULL;
    hclient_close(sv->hc, serve_part_closed, sv);
    sv->hc = NULL;
    serve_part_closed(sv);
}

static void serve_stop(struct serve *sv, uint64_t grace_ms)
{
    if (sv->stopping) {
        if (grace_ms == 0) {
            LOG_W("second signal: stopping tasks now", "%s", "");
        }
        return;
    }
    sv->stopping = 1;
    LOG_I("stopping", "grace_ms=%llu", (unsigned long long)grace_ms);
    api_set_stopping(sv->api);
    sv->pending = 3;
    http_server_stop(sv->http, serve_http_stopped, sv);
    if (sv->livy_http) {
        sv->pending++;
        http_server_stop(sv->livy_http, serve_http_stopped, sv);
    }
    /* Servers keep running unless asked (a later nbhub adopts them). */
    hub_shutdown(sv->hub, sv->stop_servers, serve_part_closed, sv);
    /* Livy sessions' kernels keep running too (adopted by the next nbhub). */
    if (sv->livy) {
        sv->pending++;
        livy_shutdown(sv->livy, serve_part_closed, sv);
    }
    sched_stop(sv->sched, grace_ms, serve_sched_stopped, sv);
}

/* What an admin should hear about a certificate just loaded: expired or
 * close to it (renewal failing silently is how TLS outages happen), or a
 * key every local user can read (under isolation: system, users' code). */
static void serve_tls_check(const char *addr, const tls_ctx_t *t)
{
    long long left = tls_ctx_not_after(t) - (long long)time(NULL);
    if (left <= 0)
        LOG_W("tls certificate has expired", "addr=%s", addr);
    else if (left < 14 * 86400)
        LOG_W("tls certificate expires soon", "addr=%s days_left=%lld", addr, left / 86400);
    if (tls_ctx_key_exposed(t))
        LOG_W("tls key is readable by every local user: chmod o-r it", "addr=%s", addr);
}

/* SIGHUP: each TLS listener's files again, for the connections to come. */
static void serve_tls_reload(struct serve *sv)
{
    for (size_t i = 0; i < sv->nlisten; i++) {
        if (!sv->tls[i]) continue;
        nb_err_t err;
        char d[512];
        if (tls_ctx_reload(sv->tls[i], &err) < 0) {
            tls_ctx_describe(sv->tls[i], d, sizeof d);
            LOG_W("tls reload failed: keeping the old certificate", "addr=%s error=\"%s\" %s", sv->addrs[i],
                  err.msg, d);
            continue;
        }
        tls_ctx_describe(sv->tls[i], d, sizeof d);
        LOG_I("tls certificate reloaded", "addr=%s %s", sv->addrs[i], d);
        serve_tls_check(sv->addrs[i], sv->tls[i]);
    }
}

static void serve_on_signal(uv_signal_t *h, int sig)
{
    struct serve *sv = h->data;
    if (sig == SIGHUP) {
        LOG_I("SIGHUP: reloading flows", "%s", "");
        sched_reload(sv->sched);
        serve_tls_reload(sv);
        return;
    }
    uint64_t grace = sv->conf.shutdown_grace_ms >= 0 ? (uint64_t)sv->conf.shutdown_grace_ms : 30000;
    serve_stop(sv, sv->stopping ? 0 : grace);
}

/* Where notebook servers call the hub back (/hub/api): the first TCP
 * listen address, a wildcard one as loopback, with the port bound; and
 * the public URL (base_url) users reach nbhub at. */
static void serve_hub_urls(struct serve *sv, const char *const *addrs)
{
    /* Notebook servers call /hub/api over plain HTTP from this machine
     * (jupyterhub-singleuser would have to trust our certificate, issued for
     * a public name, at 127.0.0.1): the first TCP listener without TLS, or
     * else one of their own on the loopback. */
    const char *tcp = NULL;
    for (size_t i = 0; addrs[i] && !tcp; i++)
        if (strncmp(addrs[i], "unix:", 5) != 0 && !(sv->tls && sv->tls[i])) tcp = addrs[i];
    char *hub_url = NULL;
    nb_err_t err;
    if (!tcp) {
        if (http_server_listen(sv->http, "127.0.0.1:0", &err) < 0)
            LOG_W("hub: no loopback listener for notebook servers", "error=\"%s\"", err.msg);
        else {
            tcp = "127.0.0.1:0";
            printf("nbhub serve: notebook servers reach /hub/api on http://127.0.0.1:%d (loopback only)\n",
                   http_server_plain_port(sv->http));
            fflush(stdout);
        }
    }
    int port = http_server_plain_port(sv->http);
    if (tcp && port > 0) {
        const char *colon = strrchr(tcp, ':');
        size_t hl = colon ? (size_t)(colon - tcp) : strlen(tcp);
        char host[128];
        snprintf(host, sizeof host, "%.*s", (int)hl, tcp);
        if (!strcmp(host, "0.0.0.0") || !*host) snprintf(host, sizeof host, "127.0.0.1");
        else if (!strcmp(host, "[::]")) snprintf(host, sizeof host, "[::1]");
        hub_url = xasprintf("http://%s:%d", host, port);
    } else {
        LOG_W("hub: no TCP listen address, notebook servers cannot be started", "%s", "");
    }
    const char *pub = sv->conf.base_url;
    char *p = pub ? xstrdup(pub) : NULL;
    if (p && *p && p[strlen(p) - 1] == '/') p[strlen(p) - 1] = 0;
    hub_set_urls(sv->hub, hub_url, p);
    free(hub_url);
    free(p);
}

/* The first user, so that somebody can log in. */
static int serve_first_admin(store_t *st)
{
    int64_t n = 0;
    nb_err_t err;
    if (store_users_count(st, &n, &err) < 0 || n > 0) return 0;
    char pw[TOKEN_LEN + 1];
    const char *file = getenv("NBHUB_ADMIN_PASSWORD_FILE");
    char *text = NULL;
    size_t len = 0;
    if (file) {
        if (fs_read_all(file, &text, &len, &err) < 0) {
            cli_errorf("NBHUB_ADMIN_PASSWORD_FILE: %s", err.msg);
            return -1;
        }
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
        snprintf(pw, sizeof pw, "%s", text);
        free(text);
    } else {
        char t[TOKEN_LEN + 1];
        if (token_new(TOKEN_API, t) < 0) return -1;
        snprintf(pw, sizeof pw, "%.20s", t + strlen(TOKEN_API));   /* 120 random bits */
    }
    char *hash = NULL;
    if (passwd_hash(pw, &hash, &err) < 0) {
        cli_errorf("cannot hash the admin password: %s", err.msg);
        return -1;
    }
    int rc = store_user_add(st, "admin", hash, 1, time_now_us(), NULL, &err);
    free(hash);
    if (rc < 0) {
        cli_errorf("cannot create the admin user: %s", err.msg);
        return -1;
    }
    if (!file)
        fprintf(stderr, "nbhub: first start: created user 'admin' with the one-time password\n"
                        "    %s\n"
                        "nbhub: change it with `nbhub user passwd admin`\n", pw);
    return 0;
}

char *cli_default_home(void)
{
    const char *h = getenv("NBHUB_HOME");
    if (h && *h) return xstrdup(h);
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) return xasprintf("%s/nbhub", xdg);
    const char *home = getenv("HOME");
    return xasprintf("%s/.local/share/nbhub", home ? home : ".");
}

char *cli_self_exe(const char *argv0)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        return xstrdup(buf);
    }
    return xstrdup(argv0);
}

/* ---- isolation (docs/security.md) ---------------------------------------- */

static const iso_limits_t *serve_user_limits(void *ud, const char *user)
{
    return srvconf_user_limits(ud, user);
}

static int serve_any_limits(const srvconf_t *c)
{
    if (limits_any(&c->limits)) return 1;
    for (size_t i = 0; i < c->nulimits; i++)
        if (limits_any(&c->ulimits[i])) return 1;
    return 0;
}

/* Refuse what cannot be kept: system mode without root, limits without
 * cgroups.  *cg says whether flow tasks' own limits can be enforced. */
static int serve_isolation_check(const srvconf_t *c, int system_mode, cgroup_kind_t *cg)
{
    if (system_mode && geteuid() != 0) {
        cli_errorf("isolation: system runs each user's code as that user's Unix account, "
                   "which needs nbhub serve to run as root (or use isolation: shared)");
        return -EPERM;
    }
    nb_err_t err;
    if (geteuid() == 0 && cgroup_probe(cg, &err) == 0) return 0;
    if (geteuid() != 0) err_set(&err, -EPERM, "cgroups need nbhub serve to run as root");
    if (serve_any_limits(c)) {
        cli_errorf("limits are configured but cannot be enforced here: %s", err.msg);
        return -ENOTSUP;
    }
    LOG_I("resource limits not available", "why=\"%s\"", err.msg);
    return 0;
}

/* The daemon's files are its own: <home> is searchable but not listable
 * (0711: users reach their own run directories in runs/, 0711 too),
 * nbhub.db, the lock and the flows directory are private. */
static void serve_isolation_home(const char *home, const char *flows, const char *db, const char *lock)
{
    chmod(home, 0711);
    chmod(flows, 0711);   /* not listable; flows/NAME/ belongs to NAME's owner */
    chmod(lock, 0600);
    /* runs/ and spark/: users reach their own runs/<flow>/<run>/ and
     * spark/~NAME/, which belong to their accounts. */
    static const char *const shared_dirs[] = { "runs", "spark" };
    for (size_t i = 0; i < 2; i++) {
        char *d = xasprintf("%s/%s", home, shared_dirs[i]);
        mkdir(d, 0711);
        chmod(d, 0711);
        free(d);
    }
    int fd = open(db, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        fchmod(fd, 0600);
        close(fd);
    }
    /* Every directory above <home> must let the users' accounts through. */
    char *p = xstrdup(home);
    for (char *slash; (slash = strrchr(p, '/')) && slash != p;) {
        *slash = 0;
        struct stat st;
        if (stat(p, &st) == 0 && !(st.st_mode & S_IXOTH))
            LOG_W("users' tasks cannot reach their run directories", "dir=%s mode=%04o fix=\"chmod o+x %s\"", p,
                  (unsigned)(st.st_mode & 07777), p);
    }
    free(p);
}

int cmd_serve(int argc, char **argv)
{
    const char *config = getenv("NBHUB_CONFIG"), *home_flag = NULL, *flows_flag = NULL;
    const char *level = NULL, *isolation = NULL;
    int stop_servers = 0;
    char **listen = NULL;
    size_t nlisten = 0;
    srvconf_t flags;
    srvconf_init(&flags);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(serve_usage, stdout);
            srvconf_clear(&flags);
            free(listen);
            return NB_EXIT_OK;
        } else if (strcmp(a, "--config") == 0 && more) config = argv[++i];
        else if (strcmp(a, "--home") == 0 && more) home_flag = argv[++i];
        else if (strcmp(a, "--flows") == 0 && more) flows_flag = argv[++i];
        else if (strcmp(a, "--log-level") == 0 && more) level = argv[++i];
        else if (strcmp(a, "--stop-servers-on-exit") == 0) stop_servers = 1;
        else if (strcmp(a, "--isolation") == 0 && more) {
            isolation = argv[++i];
            if (strcmp(isolation, "shared") && strcmp(isolation, "system")) {
                cli_errorf("--isolation: expected shared or system, got '%s'", isolation);
                goto usage;
            }
        }
        else if (strcmp(a, "--listen") == 0 && more) {
            listen = xrealloc(listen, (nlisten + 2) * sizeof *listen);
            listen[nlisten++] = argv[++i];
            listen[nlisten] = NULL;
        } else if (strcmp(a, "--max-active-tasks") == 0 && more) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 100000) {
                cli_errorf("--max-active-tasks: expected a positive integer, got '%s'", argv[i]);
                goto usage;
            }
            flags.max_active_tasks = (unsigned)v;
        } else if (strcmp(a, "--pool") == 0 && more) {
            const char *spec = argv[++i], *eq = strchr(spec, '=');
            char *end;
            long v = eq ? strtol(eq + 1, &end, 10) : -1;
            if (!eq || eq == spec || *end || v < 0 || v > 64) {
                cli_errorf("--pool: expected NAME=N (N from 0 to 64), got '%s'", spec);
                goto usage;
            }
            char *name = xstrndup(spec, (size_t)(eq - spec));
            srvconf_set_pool(&flags, name, (unsigned)v);
            free(name);
        } else {
            cli_errorf("serve: unknown or incomplete option '%s'", a);
            goto usage;
        }
    }
    if (level && log_level_parse(level) < 0) {
        cli_errorf("--log-level: expected debug, info, warn or error, got '%s'", level);
        goto usage;
    }

    struct serve sv;
    memset(&sv, 0, sizeof sv);
    sv.stop_servers = stop_servers;
    srvconf_init(&sv.conf);
    int rc = NB_EXIT_OK;
    char *home = home_flag ? xstrdup(home_flag) : NULL;
    char *cfg_path = config ? xstrdup(config) : NULL;
    if (!cfg_path) {
        char *h = home ? xstrdup(home) : cli_default_home();
        char *p = xasprintf("%s/nbhub.yaml", h);
        if (fs_exists(p)) cfg_path = p;
        else free(p);
        free(h);
    }
    if (cfg_path) {
        nb_errlist_t errs = ERRLIST_INIT;
        if (srvconf_load(cfg_path, &sv.conf, &errs) < 0) {
            buf_t b = { 0 };
            errlist_format(&errs, &b);
            fprintf(stderr, "%s", b.data ? b.data : "");
            buf_free(&b);
            errlist_free(&errs);
            free(cfg_path);
            free(home);
            srvconf_clear(&sv.conf);
            srvconf_clear(&flags);
            free(listen);
            return SERVE_EXIT_CONFIG;
        }
        errlist_free(&errs);
    }
    /* Flags over the file over the defaults. */
    if (!home) home = sv.conf.home ? xstrdup(sv.conf.home) : cli_default_home();
    if (level || sv.conf.log_level) log_set_level(log_level_parse(level ? level : sv.conf.log_level));
    else if (!getenv("NBHUB_LOG")) log_set_level(LOG_INFO);
    for (size_t i = 0; i < flags.npool; i++)
        srvconf_set_pool(&sv.conf, flags.pool_names[i], flags.pool_sizes[i]);
    if (flags.max_active_tasks) sv.conf.max_active_tasks = flags.max_active_tasks;
    srvconf_clear(&flags);
    char *flows_dir = flows_flag ? xstrdup(flows_flag)
                      : sv.conf.flows_dir ? (sv.conf.flows_dir[0] == '/'
                                                 ? xstrdup(sv.conf.flows_dir)
                                                 : xasprintf("%s/%s", home, sv.conf.flows_dir))
                                          : xasprintf("%s/flows", home);
    const char *default_listen[] = { "127.0.0.1:8765", NULL };
    const char *const *addrs = listen ? (const char *const *)listen
                               : sv.conf.listen ? (const char *const *)sv.conf.listen
                                                : default_listen;
    /* --listen replaces the file's listeners, TLS ones included. */
    char **certs = !listen && sv.conf.listen ? sv.conf.listen_cert : NULL;
    char **keys = !listen && sv.conf.listen ? sv.conf.listen_key : NULL;
    int any_tls = 0;
    while (addrs[sv.nlisten]) sv.nlisten++;
    sv.addrs = addrs;
    sv.tls = xcalloc(sv.nlisten + 1, sizeof *sv.tls);
    for (size_t i = 0; certs && i < sv.nlisten; i++) any_tls |= certs[i] != NULL;
    char *self = cli_self_exe(argv[0]);
    char *db = NULL, *lock = NULL;
    int lockfd = -1;
    nb_err_t err;
    if (!isolation) isolation = sv.conf.isolation;
    if (!isolation && getenv("NBHUB_ISOLATION") && *getenv("NBHUB_ISOLATION")) {
        isolation = getenv("NBHUB_ISOLATION");
        if (strcmp(isolation, "shared") && strcmp(isolation, "system")) {
            cli_errorf("NBHUB_ISOLATION: expected shared or system, got '%s'", isolation);
            rc = SERVE_EXIT_CONFIG;
            goto out;
        }
    }
    if (!isolation) isolation = geteuid() == 0 ? "system" : "shared";
    int system_mode = !strcmp(isolation, "system");
    cgroup_kind_t cg = CGROUP_NONE;
    if (serve_isolation_check(&sv.conf, system_mode, &cg) < 0) {
        rc = SERVE_EXIT_CONFIG;
        goto out;
    }
    if (system_mode) umask(077);   /* the database, its WAL, logs: the daemon's alone */

    if (fs_mkdir_p(home, 0700, &err) < 0) {
        cli_errorf("home %s: %s", home, err.msg);
        rc = SERVE_EXIT_HOME;
        goto out;
    }
    lock = xasprintf("%s/nbhub.lock", home);
    lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "?";
        if (lockfd >= 0) {
            ssize_t n = pread(lockfd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
        }
        cli_errorf("home %s is in use by another nbhub serve (pid %s)", home, pid);
        rc = SERVE_EXIT_HOME;
        goto out;
    }
    /* Absolute paths, then work in the flows directory: warm kernels are
     * started before their task is known and inherit our working
     * directory, which is the default working directory of a notebook
     * task (its notebook's directory) for notebooks kept with the flows. */
    if (fs_mkdir_p(flows_dir, 0700, &err) < 0) {
        cli_errorf("flows directory %s: %s", flows_dir, err.msg);
        rc = SERVE_EXIT_HOME;
        goto out;
    }
    char *abs;
    if ((abs = realpath(home, NULL))) { free(home); home = abs; }
    if ((abs = realpath(flows_dir, NULL))) { free(flows_dir); flows_dir = abs; }
    if (chdir(flows_dir) != 0) LOG_W("cannot enter the flows directory", "dir=%s", flows_dir);
    if (ftruncate(lockfd, 0) == 0) dprintf(lockfd, "%d\n", (int)getpid());
    db = xasprintf("%s/nbhub.db", home);
    if (system_mode) serve_isolation_home(home, flows_dir, db, lock);
    if (store_open(db, &sv.store, &err) < 0) {
        cli_errorf("%s: %s", db, err.msg);
        rc = SERVE_EXIT_HOME;
        goto out;
    }
    if (serve_first_admin(sv.store) < 0) {
        rc = SERVE_EXIT_HOME;
        goto out;
    }

    /* A fixed mmap threshold: glibc raises it dynamically after the first
     * large free (argon2id's 19 MiB work area at each login), after which
     * such buffers come from the heap and are never given back — idle RSS
     * went from 15 to 34 MB after two logins.  Fixed, they stay mmap'ed and
     * go back to the system when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    uv_loop_init(&sv.loop);
    if (sv.conf.npool && system_mode) {
        /* A warm kernel is started before its task, so before its user is
         * known: under isolation: system every task starts its own kernel as
         * its user (docs/security.md has the cost). */
        LOG_W("warm kernel pool not used under isolation: system", "kernels=%zu", sv.conf.npool);
    } else if (sv.conf.npool) {
        sv.pool = pool_new(&sv.loop);
        for (size_t i = 0; i < sv.conf.npool; i++)
            if (pool_set_size(sv.pool, sv.conf.pool_names[i], sv.conf.pool_sizes[i], &err) < 0)
                LOG_W("warm pool disabled for a kernel", "kernel=%s error=\"%s\"",
                      sv.conf.pool_names[i], err.msg);
    }
    char *base_url = sv.conf.base_url ? xstrdup(sv.conf.base_url)
                     : strncmp(addrs[0], "unix:", 5) == 0 ? xstrdup("")
                                                          : xasprintf("%s://%s", certs && certs[0] ? "https" : "http",
                                                                      addrs[0]);
    sched_opts_t so = {
        .loop = &sv.loop, .store = sv.store, .pool = sv.pool, .home = home,
        .flows_dir = flows_dir, .self_exe = self, .base_url = base_url,
        .max_active_tasks = sv.conf.max_active_tasks,
        .kill_grace_ms = sv.conf.kill_grace_ms > 0 ? (uint64_t)sv.conf.kill_grace_ms : 0,
        .on_change = serve_on_change, .ud = &sv,
        .system = system_mode, .account_tmpl = sv.conf.system_user,
        .create_accounts = sv.conf.create_system_users == 1, .cgroups = cg != CGROUP_NONE,
        .user_limits = serve_user_limits, .limits_ud = &sv.conf,
    };
    LOG_I("isolation", "mode=%s cgroups=%s", isolation,
          cg == CGROUP_V2 ? "v2" : cg == CGROUP_V1 ? "v1" : "none");
    /* One HTTP client for what the daemon asks of others: webhooks and the
     * Spark UI proxy. */
    sv.hc = hclient_new(&sv.loop);
    api_opts_t ao = { .loop = &sv.loop, .store = sv.store, .pool = sv.pool, .home = home,
                      .version = NBHUB_VERSION, .self_exe = self, /* unset: Secure when any listener speaks TLS (a
                       * cookie that came over TLS is Secure anyway: api_auth) */
                      .secure_cookies = sv.conf.secure_cookies == 1 || (sv.conf.secure_cookies < 0 && any_tls),
                      .hc = sv.hc, .isolation_system = system_mode, .trusted_users = sv.conf.trusted_users,
                      .anon_body_max = sv.conf.http_anon_body > 0 ? (size_t)sv.conf.http_anon_body : 0,
                      .spark_max_clusters = (int)sv.conf.spark_max_clusters,
                      .spark_max_memory_mb = sv.conf.spark_max_memory_mb,
                      .account_tmpl = sv.conf.system_user, .create_accounts = sv.conf.create_system_users == 1,
                      .cgroups = cg != CGROUP_NONE, .user_limits = serve_user_limits, .limits_ud = &sv.conf,
                      /* nbhub.yaml's ui.render_max 0 means "never render": -1 for the api */
                      .render_max = sv.conf.render_max < 0 ? 0 : sv.conf.render_max == 0 ? -1
                                                                 : sv.conf.render_max,
                      .render_jobs = sv.conf.render_jobs, .render_queue = sv.conf.render_queue,
                      .auth = &sv.conf.auth, .base_url = sv.conf.base_url,
                      .livy_csrf = sv.conf.livy.csrf };
    hub_conf_finish(&sv.conf.hub);
    hub_opts_t ho = { .loop = &sv.loop, .store = sv.store, .hc = sv.hc, .home = home, .self_exe = self,
                      .isolation_system = system_mode, .account_tmpl = sv.conf.system_user,
                      .create_accounts = sv.conf.create_system_users == 1, .cgroups = cg != CGROUP_NONE,
                      .user_limits = serve_user_limits, .limits_ud = &sv.conf, .conf = &sv.conf.hub };
    if (sched_new(&so, &sv.sched, &err) < 0 || hub_new(&ho, &sv.hub, &err) < 0 ||
        (ao.sched = sv.sched, ao.hub = sv.hub, api_new(&ao, &sv.api, &err) < 0)) {
        cli_errorf("%s", err.msg);
        rc = SERVE_EXIT_HOME;
        free(base_url);
        goto out_loop;
    }
    free(base_url);
    api_set_pool_sizes(sv.api, (const char *const *)sv.conf.pool_names, sv.conf.pool_sizes,
                       sv.conf.npool);
    struct http_limits lim;
    http_limits_default(&lim);
    if (sv.conf.http_max_body > 0) lim.max_body = (size_t)sv.conf.http_max_body;
    if (sv.conf.http_body_budget >= 0) lim.body_budget = (size_t)sv.conf.http_body_budget;
    if (sv.conf.http_min_body_rate >= 0) lim.min_body_rate = (size_t)sv.conf.http_min_body_rate;
    if (sv.conf.http_body_grace_ms >= 0) lim.body_grace_ms = (uint64_t)sv.conf.http_body_grace_ms;
    if (sv.conf.http_proxy_body_max > 0) lim.stream_body_max = (size_t)sv.conf.http_proxy_body_max;
    struct proxy_config pcfg = { .ws_idle_timeout_ms = sv.conf.http_websocket_idle_ms > 0 ?
                                                       (uint64_t)sv.conf.http_websocket_idle_ms : 0 };
    proxy_configure(&pcfg);
    sv.http = http_server_new(&sv.loop, &lim, api_handle, sv.api);
    /* Authentication and authorization on the head: no body is read for a
     * request that would be refused (api_gate). */
    http_server_set_gate(sv.http, api_gate, sv.api);
    /* API answers are data, never documents to render or frame; the UI's
     * page and the rendered notebooks set their own policies. */
    http_server_set_csp(sv.http, "default-src 'none'; frame-ancestors 'none'");
    api_set_server(sv.api, sv.http);
    for (size_t i = 0; addrs[i]; i++) {
        if (certs && certs[i]) {
            /* srvconf loaded the pair already; the files may have changed since. */
            if (tls_ctx_new(certs[i], keys[i], &sv.tls[i], &err) < 0) {
                cli_errorf("cannot listen on %s: tls: %s", addrs[i], err.msg);
                rc = SERVE_EXIT_CONFIG;
                goto out_loop;
            }
            char d[512];
            tls_ctx_describe(sv.tls[i], d, sizeof d);
            LOG_I("tls certificate", "addr=%s %s", addrs[i], d);
            serve_tls_check(addrs[i], sv.tls[i]);
        }
        if (http_server_listen_tls(sv.http, addrs[i], sv.tls[i], &err) < 0) {
            cli_errorf("cannot listen on %s: %s", addrs[i], err.msg);
            rc = SERVE_EXIT_LISTEN;
            goto out_loop;
        }
    }
    if (sv.conf.livy_listen) {
        /* The Livy API at / for clients that cannot take a path prefix:
         * its own server (same limits, same API), its own router. */
        sv.livy_http = http_server_new(&sv.loop, &lim, api_livy_handle, sv.api);
        http_server_set_gate(sv.livy_http, api_livy_gate, sv.api);
        http_server_set_csp(sv.livy_http, "default-src 'none'; frame-ancestors 'none'");
        if (http_server_listen(sv.livy_http, sv.conf.livy_listen, &err) < 0) {
            cli_errorf("cannot listen on %s (livy_listen): %s", sv.conf.livy_listen, err.msg);
            rc = SERVE_EXIT_LISTEN;
            goto out_loop;
        }
        LOG_I("livy listener", "listen=%s port=%d", sv.conf.livy_listen, http_server_port(sv.livy_http));
    }
    serve_hub_urls(&sv, addrs);
    /* The servers' Spark clusters: hooks first, so servers found gone by
     * hub_adopt lose theirs. */
    sowned_env_t se = { .loop = &sv.loop, .home = home, .self_exe = self, .isolation_system = system_mode,
                        .account_tmpl = sv.conf.system_user, .create_accounts = sv.conf.create_system_users == 1,
                        .cgroups = cg != CGROUP_NONE, .user_limits = serve_user_limits, .limits_ud = &sv.conf };
    if (hub_spark_new(sv.hub, &se, &sv.hub_spark, &err) < 0)
        LOG_W("hub: Spark clusters for servers disabled", "error=\"%s\"", err.msg);
    /* Servers still running from the previous nbhub: their routes work
     * from now on. */
    int adopted = hub_adopt(sv.hub);
    if (adopted) LOG_I("notebook servers adopted", "count=%d", adopted);
    if (sv.hub_spark) hub_spark_sweep(sv.hub_spark);
    hub_cull_opts_t co = { .loop = &sv.loop, .hc = sv.hc, .store = sv.store, .home = home };
    if (hub_cull_new(sv.hub, &co, &sv.hub_cull, &err) < 0)
        LOG_W("hub: idle culling disabled", "error=\"%s\"", err.msg);
    /* Livy sessions: those of the previous nbhub are adopted here. */
    livy_conf_finish(&sv.conf.livy);
    livy_opts_t lo = { .loop = &sv.loop, .store = sv.store, .home = home, .conf = &sv.conf.livy,
                       .self_exe = self, .isolation_system = system_mode, .account_tmpl = sv.conf.system_user,
                       .create_accounts = sv.conf.create_system_users == 1, .cgroups = cg != CGROUP_NONE,
                       .user_limits = serve_user_limits, .limits_ud = &sv.conf,
                       .spark = &se };   /* spark: cluster's clusters, as the hub's */
    if (livy_new(&lo, &sv.livy, &err) < 0)
        LOG_W("livy: the Livy API is disabled", "error=\"%s\"", err.msg);
    else
        api_set_livy(sv.api, sv.livy);
    /* Webhooks reach public addresses, and the internal ones the admin
     * listed (srvconf checked every entry already). */
    sv.guard = netguard_new();
    for (size_t i = 0; sv.conf.webhook_allow && sv.conf.webhook_allow[i]; i++)
        NB_ASSERT(netguard_allow(sv.guard, sv.conf.webhook_allow[i], &err) == 0);
    if (netguard_count(sv.guard))
        LOG_I("webhook allow-list", "entries=%zu", netguard_count(sv.guard));
    notify_opts_t no;
    notify_opts_default(&no);
    no.guard = sv.guard;
    sv.notify = notify_new_opts(&sv.loop, sv.store, sv.hc, &no);
    if (sched_start(sv.sched, &err) < 0) {
        cli_errorf("scheduler: %s", err.msg);
        rc = SERVE_EXIT_HOME;
        goto out_loop;
    }
    notify_kick(sv.notify);
    uv_signal_init(&sv.loop, &sv.sigterm);
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sighup);
    sv.sigterm.data = sv.sigint.data = sv.sighup.data = &sv;
    uv_signal_start(&sv.sigterm, serve_on_signal, SIGTERM);
    uv_signal_start(&sv.sigint, serve_on_signal, SIGINT);
    uv_signal_start(&sv.sighup, serve_on_signal, SIGHUP);
    /* The access log: a line per request was a write(2) per request (a
     * third of the proxy's writes for small answers); batched per loop turn. */
    uv_prepare_init(&sv.loop, &sv.logflush);
    uv_prepare_start(&sv.logflush, serve_log_flush);
    log_batch(1);
    LOG_I("nbhub serve ready", "listen=%s home=%s flows=%s pid=%d", addrs[0], home, flows_dir,
          (int)getpid());
    /* A line on stdout for scripts and tests that wait for readiness. */
    printf("nbhub serve: listening on %s%s (port %d)\n", sv.tls[0] ? "https://" : "", addrs[0],
           http_server_port(sv.http));
    fflush(stdout);
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    LOG_I("stopped", "%s", "");
out_loop:
    if (rc != NB_EXIT_OK) {
        /* Startup failed after the loop existed: close what was opened. */
        if (sv.http) http_server_stop(sv.http, NULL, NULL);
        if (sv.api) api_set_stopping(sv.api);
        if (sv.livy_http) http_server_stop(sv.livy_http, NULL, NULL);
        if (sv.sched) sched_stop(sv.sched, 0, NULL, NULL);
        if (sv.pool) pool_close(sv.pool, NULL, NULL);
        if (sv.notify) notify_close(sv.notify, NULL, NULL);
        if (sv.hc) hclient_close(sv.hc, NULL, NULL);
        uv_run(&sv.loop, UV_RUN_DEFAULT);
    }
    if (sv.http) http_server_free(sv.http);
    if (sv.livy_http) http_server_free(sv.livy_http);
    for (size_t i = 0; sv.tls && i < sv.nlisten; i++) tls_ctx_free(sv.tls[i]);
    api_free(sv.api);
    hub_cull_free(sv.hub_cull);
    hub_free(sv.hub);
    hub_spark_free(sv.hub_spark);
    livy_free(sv.livy);
    sched_free(sv.sched);
    /* The hub's handles close on the loop (servers left running are not
     * waited for: their handles were let go at hub_shutdown). */
    uv_run(&sv.loop, UV_RUN_NOWAIT);
    uv_loop_close(&sv.loop);
    netguard_free(sv.guard);
out:
    free(sv.tls);
    store_close(sv.store);
    if (lockfd >= 0) close(lockfd);
    free(lock);
    free(db);
    free(self);
    free(flows_dir);
    free(home);
    free(cfg_path);
    free(listen);
    srvconf_clear(&sv.conf);
    return rc;
usage:
    srvconf_clear(&flags);
    free(listen);
    fputs(serve_usage, stderr);
    return NB_EXIT_USAGE;
}
