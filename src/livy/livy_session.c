/*
 * livy_session.c — a session's kernel: started detached, adopted after a
 * restart, ended with its whole process group (livy.h has the life).
 *
 * The kernel is not started through kmgr_start: that one ties the kernel
 * to nbhub (`nbhub __kernel-exec` sets PR_SET_PDEATHSIG, JPY_PARENT_PID
 * makes ipykernel exit with its parent), which is right for `nbhub run`
 * and flow tasks and wrong for a session that must survive a restart of
 * nbhub serve.  So it is spawned here as a detached child (own session,
 * stdout and stderr to the session's kernel.log) and then driven through
 * kmgr_attach with its pid: the same client, handshake and interrupts as
 * every other kernel, death seen through a pidfd.  kmgr never stops it
 * (attached without shutdown_kernel); the end is ours: shutdown_request
 * on control, SIGTERM to the group after 3 s, SIGKILL after 5 s, and a
 * last SIGKILL to the group once the kernel is gone, for the Spark JVM
 * (pyspark starts it as the kernel's child, in its group).
 *
 * isolation: system: the kernel runs as its owner's account (the
 * proxyUser's when an admin named one) through `nbhub __as-user`, which
 * execs it (same pid: adoption by pid + start time is unchanged), its
 * working directory the account's home, inside nbhub/u-ACCOUNT/livy-ID
 * when cgroups work (removed at the end, which kills whatever left the
 * process group).  What the kernel writes is the account's, what nbhub
 * writes stays root's, so the account can never point nbhub at a file:
 *   livy/sessions/ID/          root 0711 (the account passes through)
 *     kernel.log               root 0600, the kernel writes its inherited fd
 *     journal.jsonl            made by nbhub, given to the account
 *     events/                  the account's (Spark's event log; read with
 *                              O_NOFOLLOW, one link)
 *   livy/run/k-XXXX/           the account's 0700: connection file and the
 *                              ipc sockets (TCP on 127.0.0.1 when the path
 *                              would not fit in a socket address)
 * The connection directory is removed by name, entry by entry, without
 * trusting the (account-writable) file's contents.  The file is read only
 * by a restarted nbhub (the one that started the kernel keeps what it
 * wrote), and then as the account's data: conn_load takes a regular file
 * of the account's (or root's) with one link and at most KCONN_FILE_MAX
 * bytes, never following a link nor blocking on a FIFO, and whose sockets
 * are in its own directory (or TCP on 127.0.0.1); otherwise the session
 * ends (dead, with why) and its kernel is stopped, because nbhub can no
 * longer tell that kernel's connection from one the account forged (a link
 * to another user's connection file would hand nbhub that user's kernel).
 * There is no warm pool (a kernel is its owner's from its first
 * instruction).
 */
#include "livy/livy_session.h"
#include "livy/livy_cluster.h"

#include "iso/cgroup.h"
#include "iso/uacct.h"
#include "kernel/kconn.h"
#include "kernel/kspec.h"
#include "sched/sup.h"
#include "spark/sparkspec.h"
#include "store/store_livy.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STOP_TERM_MS 3000
#define STOP_KILL_MS 5000
#define STOP_POLL_MS 250

static void on_km_ready(kmgr_t *km, int status, const char *errmsg, void *ud);
static void on_km_msg(kmgr_t *km, enum kchan ch, const kmsg_t *msg, void *ud);
static void on_km_died(kmgr_t *km, const char *why, void *ud);
static void on_km_stopped(kmgr_t *km, void *ud);
static const struct kmgr_cbs km_cbs = { on_km_ready, on_km_msg, on_km_died, on_km_stopped };

/* A zombie is dead: an adopted kernel's parent is whatever inherited it,
 * which may never reap it (PID 1 of some containers does not). */
static int zombie(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

static int alive(const lsess_t *s)
{
    return s->pid > 0 && !s->exited && kill(s->pid, 0) == 0 && sup_proc_start_time(s->pid) == s->pid_start &&
           !zombie(s->pid);
}

/* An account's connection directory: its entries (unlinkat, never
 * following anything the account made) and itself; a directory the
 * account made inside stays. */
static void remove_conn_dir(const char *file)
{
    char *d = xstrdup(file);
    char *dir = xstrdup(dirname(d));
    free(d);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dp && fd >= 0) close(fd);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(fd, e->d_name, 0);
        closedir(dp);
    }
    rmdir(dir);
    free(dir);
}

/* The connection file's directory (kconn_new's, private to the session):
 * its file, sockets and the directory itself. */
static void remove_conn(const livy_t *l, const char *file)
{
    if (!file) return;
    if (l->o.isolation_system) {
        remove_conn_dir(file);
        return;
    }
    kconn_t *c;
    if (kconn_load(file, &c, NULL) < 0) {
        unlink(file);
        return;
    }
    char *d = xstrdup(file);
    c->dir = xstrdup(dirname(d));
    free(d);
    kconn_free(c);   /* removes what a directory it created would hold */
}

/* ---- start ------------------------------------------------------------------ */

static void on_proc_closed(uv_handle_t *h)
{
    lsess_t *s = h->data;
    s->proc_open = 0;
    lsess_free_maybe(s);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    lsess_t *s = p->data;
    LOG_D("livy: kernel process exited", "session=%lld status=%lld signal=%d", (long long)s->id,
          (long long)status, sig);
    s->exited = 1;
    uv_close((uv_handle_t *)p, on_proc_closed);
}

/* ---- isolation: system ------------------------------------------------------ */

/* The account the session runs as (its row's proxyUser, else its owner)
 * and its cgroup; *user (may be NULL) gets the nbhub user's name. */
static int owner_load(lsess_t *s, char **user, nb_err_t *err)
{
    livy_t *l = s->l;
    if (user) *user = NULL;
    store_livy_session_t row;
    int rc = store_livy_session_get(l->st, s->id, &row, err);
    if (rc < 0) return rc;
    const char *u = row.proxy_user ? row.proxy_user : row.owner;
    char acct[64];
    rc = uacct_name(l->o.account_tmpl ? l->o.account_tmpl : UACCT_DEFAULT_TEMPLATE, u ? u : "", acct, sizeof acct,
                    err);
    if (rc == 0) {
        free(s->acct);
        free(s->cgroup);
        s->acct = xstrdup(acct);
        s->cgroup = l->o.cgroups ? xasprintf("nbhub/u-%s/livy-%lld", acct, (long long)s->id) : NULL;
        if (user) *user = xstrdup(u);
    }
    store_livy_session_clear(&row);
    return rc;
}

/* The session's directory as the header says: root's, passable; the
 * journal made here; the connection directory's parent. */
static int system_dirs(lsess_t *s, nb_err_t *err)
{
    livy_t *l = s->l;
    livy_ids_dirs_passable(&l->ids);
    chmod(s->dir, 0711);
    int fd = fs_open_regular(s->journal, O_WRONLY | O_CREAT | O_APPEND, 0600, NULL);
    if (fd < 0) return err_set(err, fd, "%s: %s", s->journal, strerror(-fd));
    close(fd);
    char *p = xasprintf("%s/livy/run", l->home);
    int rc = fs_mkdir_p(p, 0711, err);
    if (rc == 0) chmod(p, 0711);
    free(p);
    return rc;
}

/* "K=V" whose key is one of list's keys. */
static int env_in(const char *kv, char *const *list)
{
    size_t kl = strcspn(kv, "=");
    for (; list && *list; list++)
        if (!strncmp(*list, kv, kl) && (*list)[kl] == '=') return 1;
    return 0;
}

/* The kernel's environment without the daemon's (uacct_env_kept): what
 * the spec and we set, and what finds programs, Java and Spark. */
static void env_scrub(char **env, const kspec_t *spec, char *const *extra)
{
    size_t k = 0;
    for (size_t i = 0; env[i]; i++) {
        size_t kl = strcspn(env[i], "=");
        char *key = xstrdup(env[i]);
        key[kl] = '\0';
        int keep = uacct_env_kept(env[i]) || env_in(env[i], extra) || (spec->env && json_object_get(spec->env, key));
        free(key);
        if (keep) env[k++] = env[i];
        else free(env[i]);
    }
    env[k] = NULL;
}

static void argv_push(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
}

/* `SELF __as-user ACCOUNT ... --` in front of the kernel's argv. */
static char **system_wrap(lsess_t *s, const char *user, char **argv, const char *conn_dir)
{
    livy_t *l = s->l;
    char **w = NULL;
    size_t n = 0;
    argv_push(&w, &n, l->o.self_exe ? l->o.self_exe : "nbhub");
    argv_push(&w, &n, "__as-user");
    argv_push(&w, &n, s->acct);
    if (l->o.create_accounts) argv_push(&w, &n, "--create");
    const char *own[] = { conn_dir, s->conn_file, s->journal, s->events_dir };
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        argv_push(&w, &n, "--chown");
        argv_push(&w, &n, own[i]);
    }
    if (s->cgroup) {
        static const iso_limits_t none = { 0, 0, 0 };
        const iso_limits_t *ul = l->o.user_limits ? l->o.user_limits(l->o.limits_ud, user) : NULL;
        char *ug = xasprintf("nbhub/u-%s", s->acct);
        char *a = limits_spec(ug, ul ? ul : &none), *b = limits_spec(s->cgroup, &none);
        argv_push(&w, &n, "--cgroup");
        argv_push(&w, &n, a);
        argv_push(&w, &n, "--cgroup");
        argv_push(&w, &n, b);
        free(ug);
        free(a);
        free(b);
    }
    argv_push(&w, &n, "--");
    for (char **p = argv; *p; p++) argv_push(&w, &n, *p);
    return w;
}

/* Livy's request options as Spark settings, after the configured ones. */
static char **spark_conf(const lsess_t *s, const json_t *req)
{
    const livy_conf_t *lc = s->l->conf;
    size_t n = 0, cap = 16;
    char **v = xcalloc(cap, sizeof *v);
#define ADD(...)                                                   \
    do {                                                           \
        if (n + 2 >= cap) v = xrealloc(v, (cap *= 2) * sizeof *v); \
        v[n++] = xasprintf(__VA_ARGS__);                           \
        v[n] = NULL;                                               \
    } while (0)
    for (char **p = lc->conf; p && *p; p++) ADD("%s", *p);
    json_t *conf = json_object_get(req, "conf");
    const char *k;
    json_t *cv;
    json_object_foreach(conf, k, cv) {
        if (!strcmp(k, LIVY_CLUSTER_CONF)) continue;   /* nbhub's (livy_cluster.h), not Spark's */
        if (json_is_string(cv)) ADD("%s=%s", k, json_string_value(cv));
        else if (json_is_integer(cv)) ADD("%s=%lld", k, (long long)json_integer_value(cv));
        else if (json_is_real(cv)) ADD("%s=%g", k, json_real_value(cv));
        else if (json_is_boolean(cv)) ADD("%s=%s", k, json_is_true(cv) ? "true" : "false");
    }
    static const struct { const char *member, *key; } sizes[] = {
        { "driverMemory", "spark.driver.memory" },       { "driverCores", "spark.driver.cores" },
        { "executorMemory", "spark.executor.memory" },   { "executorCores", "spark.executor.cores" },
        { "numExecutors", "spark.executor.instances" },  { "queue", "spark.yarn.queue" },
    };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        json_t *m = json_object_get(req, sizes[i].member);
        if (json_is_string(m)) ADD("%s=%s", sizes[i].key, json_string_value(m));
        else if (json_is_integer(m)) ADD("%s=%lld", sizes[i].key, (long long)json_integer_value(m));
    }
    static const struct { const char *member, *key; } lists[] = {
        { "jars", "spark.jars" }, { "pyFiles", "spark.submit.pyFiles" }, { "files", "spark.files" },
        { "archives", "spark.archives" },
    };
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        json_t *m = json_object_get(req, lists[i].member);
        if (!json_array_size(m)) continue;
        buf_t b = BUF_INIT;
        size_t j;
        json_t *e;
        json_array_foreach(m, j, e) buf_printf(&b, "%s%s", j ? "," : "", json_string_value(e));
        ADD("%s=%s", lists[i].key, b.data);
        buf_free(&b);
    }
    /* nbhub's own, last so they win: the name finds the JVM (tests, ps),
     * the event log gives statements their progress, and the UI, which
     * nothing proxies for a local session, is not started. */
    if (s->warm) ADD("spark.app.name=livy-warm-%u", s->l->warm_seq);
    else ADD("spark.app.name=livy-session-%lld", (long long)s->id);
    ADD("spark.eventLog.enabled=true");
    /* One plain file seventlog can read as it grows (Spark 4 would roll
     * and compress it with zstd), as flow tasks have theirs. */
    ADD("spark.eventLog.compress=false");
    ADD("spark.eventLog.rolling.enabled=false");
    /* Task ends reach the file every few tasks, for a statement's progress
     * while its job runs (the default buffer is 100 KB: a whole stage). */
    ADD("spark.eventLog.buffer.kb=4k");
    ADD("spark.eventLog.dir=file://%s", s->events_dir);
    /* The console progress bar ("[Stage 0:>  (0 + 2) / 2]") is written to
     * the driver's stderr, which a kernel turns into output: it would land
     * in a statement's text/plain before the result.  Progress is the
     * statement's `progress`, from the event log. */
    ADD("spark.ui.showConsoleProgress=false");
    if (s->cluster_conf)
        for (char **p = s->cluster_conf; *p; p++) ADD("%s", *p);
    else
        ADD("spark.ui.enabled=false");
#undef ADD
    return v;
}

int lsess_start(lsess_t *s, const json_t *request, nb_err_t *err)
{
    livy_t *l = s->l;
    int rc = fs_mkdir_p(s->events_dir, 0700, err);
    if (rc < 0) return rc;
    int sys = l->o.isolation_system;
    char *user = NULL;
    if (sys) {
        if (s->warm) return err_set(err, -ENOTSUP, "no warm kernels under isolation: system");
        if ((rc = owner_load(s, &user, err)) < 0 || (rc = system_dirs(s, err)) < 0) {
            free(user);
            return rc;
        }
    }
    kspec_t *spec;
    if ((rc = kspec_find(l->conf->kernel, &spec, err)) < 0) {
        free(user);
        return rc;
    }
    char **conf = spark_conf(s, request);
    buf_t args = BUF_INIT;
    struct sparkspec_opts so = { .name = "livy", .master = s->cluster_master ? s->cluster_master : l->conf->master, .conf = (const char *const *)conf };
    rc = sparkspec_submit_args(&so, &args, err);
    for (char **p = conf; *p; p++) free(*p);
    free(conf);
    kconn_t *conn = NULL;
    if (rc == 0) {
        if (sys) {
            /* In the account's own directory: ipc when its socket paths fit
             * (sun_path), else TCP on 127.0.0.1 (the key still signs). */
            char *root = xasprintf("%s/livy/run", l->home);
            rc = kconn_new_in(root, strlen(root) + sizeof "/k-0123456789abcdef/ipc-5" < 100, &conn, err);
            free(root);
        } else {
            rc = kconn_new(1, &conn, err);
        }
    }
    if (rc < 0) {
        buf_free(&args);
        kspec_free(spec);
        free(user);
        return rc;
    }
    /* The directory is the session's now: it must outlive this nbhub.  The
     * info stays in memory for kmgr: the file, the account's from now on,
     * is not read back. */
    s->conn_file = xstrdup(conn->file);
    char *conn_dir = conn->dir;
    conn->dir = NULL;
    char **argv = kspec_argv(spec, s->conn_file);
    char *e_args = xasprintf("PYSPARK_SUBMIT_ARGS=%s", args.data);
    char *e_py = xasprintf("PYSPARK_PYTHON=%s", argv[0]);
    char *e_sess = xasprintf("NBHUB_LIVY_SESSION=%lld", (long long)s->id);
    char *extra[] = { e_args, e_py, e_sess, NULL };
    char **env = kspec_env(spec, extra);
    if (sys) {
        env_scrub(env, spec, extra);
        char **w = system_wrap(s, user, argv, conn_dir);
        for (char **p = argv; *p; p++) free(*p);
        free(argv);
        argv = w;
    }
    free(conn_dir);
    buf_free(&args);
    int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = err_set(err, -errno, "%s: %s", s->log_path, strerror(errno));
        kconn_free(conn);
        goto out;
    }
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = fd }, { .flags = UV_INHERIT_FD, .data.fd = fd },
    };
    uv_process_options_t po = { .exit_cb = on_proc_exit, .file = argv[0], .args = argv, .env = env,
                                .cwd = sys ? NULL : s->dir, .flags = UV_PROCESS_DETACHED, .stdio_count = 3,
                                .stdio = stdio };
    s->proc.data = s;
    rc = uv_spawn(l->loop, &s->proc, &po);
    close(fd);
    if (rc < 0) {
        uv_close((uv_handle_t *)&s->proc, NULL);
        rc = err_set(err, rc, "cannot start the kernel %s: %s", argv[0], uv_strerror(rc));
        kconn_free(conn);
        goto out;
    }
    s->proc_open = 1;
    s->pid = s->proc.pid;
    s->pid_start = sup_proc_start_time(s->pid);
    if (!s->warm) {
        if ((rc = store_livy_session_spawned(l->st, s->id, s->conn_file, s->pid, s->pid_start, s->log_path, s->cluster,
                                             err)) < 0) {
            kconn_free(conn);
            goto out;
        }
        lsess_set_state(s, "starting");
    }
    LOG_I("livy: session kernel started", "session=%lld pid=%d kernel=%s account=%s", (long long)s->id, s->pid,
          spec->name, s->acct ? s->acct : "-");
    rc = kmgr_attach_conn(l->loop, conn, s->conn_file, s->pid, 0, (unsigned)l->conf->start_timeout_ms, &km_cbs, s,
                          &s->km, err);
    if (rc < 0) s->km = NULL;
out:
    for (char **p = argv; p && *p; p++) free(*p);
    free(argv);
    for (char **p = env; p && *p; p++) free(*p);
    free(env);
    free(e_args);
    free(e_py);
    free(e_sess);
    free(user);
    kspec_free(spec);
    return rc;
}

/* The connection file a previous nbhub recorded, read back as the
 * header says (the account may have replaced it). */
static int conn_load(lsess_t *s, const char *file, kconn_t **out, nb_err_t *err)
{
    long uid = (long)getuid();
    int rc;
    if (s->l->o.isolation_system) {
        if (!s->acct) return err_set(err, -ENOENT, "the session's account is unknown");
        uacct_t a;
        if ((rc = uacct_lookup(s->acct, &a, err)) < 0) return rc;
        uid = (long)a.uid;
        uacct_clear(&a);
    }
    kconn_t *c;
    if ((rc = kconn_load_owned(file, uid, &c, err)) < 0) return rc;
    /* kconn_new's shape: "<dir>/ipc" beside the file, or the loopback */
    char *dir = fs_dirname(file);
    size_t n = strlen(dir);
    int ok = c->key[0] && (c->ipc ? !strncmp(c->ip, dir, n) && c->ip[n] == '/' && !strchr(c->ip + n + 1, '/')
                                  : !strcmp(c->ip, "127.0.0.1"));
    for (int i = 0; ok && i < KCHAN_COUNT; i++) ok = c->ports[i] > 0 && c->ports[i] < 65536;
    free(dir);
    if (!ok) {
        kconn_free(c);
        return err_set(err, -EINVAL, "%s: not the connection file nbhub wrote (its sockets are elsewhere)", file);
    }
    *out = c;
    return 0;
}

int lsess_adopt(lsess_t *s, const char *conn_file, int pid, int64_t pid_start, nb_err_t *err)
{
    s->pid = pid;
    s->pid_start = pid_start;
    free(s->conn_file);
    s->conn_file = xstrdup(conn_file);
    /* its account and cgroup, for the end */
    if (s->l->o.isolation_system && owner_load(s, NULL, err) < 0)
        LOG_W("livy: a session's account is unknown", "session=%lld error=\"%s\"", (long long)s->id, err->msg);
    if (!alive(s)) return err_set(err, -ESRCH, "the kernel was gone when nbhub restarted");
    kconn_t *conn = NULL;
    int rc = conn_load(s, conn_file, &conn, err);
    if (rc < 0) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        LOG_W("livy: a session's connection file refused", "session=%lld error=\"%s\"", (long long)s->id, why);
        return err_set(err, rc, "nbhub restarted and refused the kernel's connection file: %s", why);
    }
    /* Adopted: the initialisation ran in the previous nbhub's time. */
    s->ready = 1;
    /* A kernel busy with a statement answers kernel_info only when the
     * statement ends, which may be hours away: no start timeout to speak
     * of (its death is still seen at once, through the pidfd). */
    if ((rc = kmgr_attach_conn(s->l->loop, conn, conn_file, pid, 0, 7u * 24 * 3600 * 1000, &km_cbs, s, &s->km,
                               err)) < 0) {
        LOG_W("livy: cannot attach to a session's kernel", "session=%lld error=\"%s\"", (long long)s->id,
              err->msg);
        s->km = NULL;
        s->ready = 0;
        return rc;
    }
    nb_err_t e2;
    /* The statement that was running when nbhub went: its outputs are in
     * the journal, and the rest will be. */
    store_livy_stmts_t st;
    if (store_livy_stmts_list(s->l->st, s->id, &st, &e2) == 0) {
        for (size_t i = 0; i < st.n; i++) {
            if (strcmp(st.v[i].state, "running") != 0 && strcmp(st.v[i].state, "cancelling") != 0) continue;
            s->cur.id = st.v[i].id;
            snprintf(s->cur.msg_id, sizeof s->cur.msg_id, "%s", st.v[i].msg_id ? st.v[i].msg_id : "");
            s->cur.from_journal = 1;
            s->cur.started_us = st.v[i].started_at;
            break;
        }
        store_livy_stmts_free(&st);
    }
    LOG_I("livy: session adopted", "session=%lld pid=%d running_statement=%lld", (long long)s->id, pid,
          (long long)s->cur.id);
    return 0;
}

/* ---- kmgr callbacks ------------------------------------------------------- */

static void on_km_ready(kmgr_t *km, int status, const char *errmsg, void *ud)
{
    lsess_t *s = ud;
    (void)km;
    if (status < 0) {
        char why[512];
        snprintf(why, sizeof why, "the kernel did not start: %s (see GET /livy/sessions/%lld/log)",
                 errmsg ? errmsg : "error", (long long)s->id);
        lsess_end(s, "error", why);
        return;
    }
    s->km_ready = 1;
    if (s->ready) {       /* adopted */
        if (s->cur.id >= 0) lstmt_poll_journal(s);
        else lstmt_next(s);
        return;
    }
    /* The initialisation cell: spark, sc, sqlContext as Livy's shells
     * have them, the journal, and the application id. */
    char *code = lstmt_init_code(s);
    json_t *content = json_pack("{s:s, s:b, s:b, s:{s:s}, s:b, s:b}", "code", code, "silent", 1,
                                "store_history", 0, "user_expressions", "app", "sc.applicationId",
                                "allow_stdin", 0, "stop_on_error", 1);
    free(code);
    s->init_pending = 1;
    if (kmgr_request(s->km, KCHAN_SHELL, "execute_request", content, s->init_msg) < 0)
        lsess_end(s, "error", "could not send the initialisation to the kernel");
}

/* The initialisation's execute_reply. */
static void init_reply(lsess_t *s, const kmsg_t *m)
{
    s->init_pending = 0;
    json_t *c = kmsg_content(m);
    const char *st = json_string_value(json_object_get(c, "status"));
    if (!st || strcmp(st, "ok") != 0) {
        char why[1024];
        snprintf(why, sizeof why, "the session's SparkSession did not start: %s: %s",
                 json_string_value(json_object_get(c, "ename")) ?: "error",
                 json_string_value(json_object_get(c, "evalue")) ?: "");
        lsess_end(s, "error", why);
        return;
    }
    json_t *app = json_object_get(json_object_get(json_object_get(json_object_get(c, "user_expressions"), "app"),
                                                  "data"), "text/plain");
    if (json_is_string(app)) {
        /* a repr: 'local-1765...' */
        char id[128];
        snprintf(id, sizeof id, "%s", json_string_value(app));
        size_t n = strlen(id);
        const char *v = id;
        if (n >= 2 && (id[0] == '\'' || id[0] == '"')) {
            id[n - 1] = '\0';
            v = id + 1;
        }
        free(s->app_id);
        s->app_id = xstrdup(v);
        if (!s->warm) store_livy_session_set_app(s->l->st, s->id, v, NULL);
    }
    s->ready = 1;
    if (s->warm) {
        LOG_I("livy: warm kernel ready", "pid=%d", s->pid);
        return;
    }
    lsess_set_state(s, "idle");
    LOG_I("livy: session idle", "session=%lld", (long long)s->id);
    lstmt_next(s);
}

static void on_km_msg(kmgr_t *km, enum kchan ch, const kmsg_t *msg, void *ud)
{
    lsess_t *s = ud;
    (void)km;
    if (s->init_pending) {
        if (ch == KCHAN_SHELL && msg->parent_id && !strcmp(msg->parent_id, s->init_msg) &&
            !strcmp(msg->msg_type, "execute_reply"))
            init_reply(s, msg);
        return;
    }
    lstmt_on_msg(s, ch, msg);
}

static void on_km_died(kmgr_t *km, const char *why, void *ud)
{
    lsess_t *s = ud;
    (void)km;
    s->exited = s->exited || !alive(s);
    if (s->ending) return;
    char msg[256];
    snprintf(msg, sizeof msg, "the kernel died: %s", why ? why : "exited");
    lsess_end(s, "dead", msg);
}

static void on_km_stopped(kmgr_t *km, void *ud)
{
    lsess_t *s = ud;
    (void)km;
    s->km = NULL;
    s->km_gone = 1;
    if (!s->ending && !s->l->stopping) {
        /* kmgr gave up on a kernel that is still there (its heartbeat):
         * it cannot be reached any more, so it ends. */
        lsess_end(s, "dead", "the kernel stopped answering");
        return;
    }
    lsess_free_maybe(s);
}

/* ---- end -------------------------------------------------------------------- */

static void on_stop_timer_closed(uv_handle_t *h)
{
    lsess_t *s = h->data;
    s->stop_timer_open = 0;
    lsess_free_maybe(s);
}

/* The kernel is gone: its group's leftovers (the Spark JVM), our client,
 * the connection directory. */
static void finish(lsess_t *s)
{
    if (s->pid > 0) kill(-s->pid, SIGKILL);
    /* whatever left the group (setsid) but not the cgroup */
    if (s->cgroup) cgroup_remove(s->cgroup);
    remove_conn(s->l, s->conn_file);
    if (s->stop_timer_open) uv_close((uv_handle_t *)&s->stop_timer, on_stop_timer_closed);
    if (s->km) kmgr_shutdown(s->km, 0);   /* attached: disconnect only */
    LOG_I("livy: session ended", "session=%lld state=%s", (long long)s->id, s->deleted ? "deleted" : s->end_state);
    lsess_free_maybe(s);
}

static void on_stop_timer(uv_timer_t *t)
{
    lsess_t *s = t->data;
    if (!alive(s)) {
        uv_timer_stop(t);
        finish(s);
        return;
    }
    uint64_t waited = (uint64_t)s->escalation * STOP_POLL_MS;
    s->escalation++;
    if (waited == STOP_TERM_MS) {
        LOG_I("livy: kernel did not stop; sending SIGTERM", "session=%lld pid=%d", (long long)s->id, s->pid);
        kill(-s->pid, SIGTERM);
    } else if (waited >= STOP_KILL_MS && (waited - STOP_KILL_MS) % 1000 == 0) {
        kill(-s->pid, SIGKILL);
    }
}

void lsess_end(lsess_t *s, const char *state, const char *error)
{
    if (s->ending) return;
    s->ending = 1;
    snprintf(s->end_state, sizeof s->end_state, "%s", state ? state : "killed");
    s->end_error = error ? xstrdup(error) : NULL;
    if (!s->deleted) {
        /* The reason goes into the session's log too: a client whose
         * session failed to start reads /log (sparkmagic does). */
        FILE *lf = fopen(s->log_path, "a");
        if (lf) {
            fprintf(lf, "nbhub: session %s: %s\n", s->end_state, error ? error : "ended");
            fclose(lf);
        }
        lstmt_abort(s, error ? error : "the session ended");
        snprintf(s->state, sizeof s->state, "%s", s->end_state);
        nb_err_t err;
        if (store_livy_session_set_state(s->l->st, s->id, s->end_state, error, time_now_us(), &err) < 0)
            LOG_W("livy: session end not recorded", "session=%lld error=\"%s\"", (long long)s->id, err.msg);
    }
    if (!alive(s)) {
        finish(s);
        return;
    }
    /* Ask first: ipykernel runs its shutdown (atexit, SparkContext.stop
     * through pyspark's own atexit) and exits. */
    if (s->km) kmgr_request(s->km, KCHAN_CONTROL, "shutdown_request", json_pack("{s:b}", "restart", 0), NULL);
    else kill(-s->pid, SIGTERM);
    uv_timer_init(s->l->loop, &s->stop_timer);
    s->stop_timer.data = s;
    s->stop_timer_open = 1;
    s->escalation = 0;
    uv_timer_start(&s->stop_timer, on_stop_timer, STOP_POLL_MS, STOP_POLL_MS);
}

void lsess_detach(lsess_t *s)
{
    /* The kernel stays; our handles go.  A stop under way finishes first
     * (its timer is on the loop nbhub still runs while stopping). */
    if (s->ending) return;
    s->ending = 1;
    if (s->proc_open) uv_close((uv_handle_t *)&s->proc, on_proc_closed);
    if (s->km) kmgr_shutdown(s->km, 0);
    lsess_free_maybe(s);
}
