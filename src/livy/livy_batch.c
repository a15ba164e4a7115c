/*
 * livy_batch.c — batches as supervised spark-submit processes (the why is
 * in livy_batch.h).  The manager keeps one entry per live batch (its sup
 * handle); everything else is read from the row when asked.
 */
#include "livy/livy_batch.h"
#include "livy/livy_ids.h"

#include "iso/uacct.h"
#include "store/store_livy.h"
#include "sched/sup.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define LIVY_BATCH_GRACE_MS 5000

struct tree_ent {
    int     pid;
    int64_t start;
};

typedef struct lb_entry {
    struct livy_batches *m;
    int64_t          id;
    sup_task_t      *proc;
    int              killing;
    struct tree_ent *tree;       /* the wrapper's descendants when the delete came */
    size_t           ntree;
    struct lb_entry *next;
} lb_entry_t;

struct livy_batches {
    livy_batch_opts_t o;
    char       *home, *self_exe, *account_tmpl;
    lb_entry_t *live;
    livy_ids_t  ids;   /* batch ids, never handed out twice */
};

static void sv_add(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
}

static void sv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

char *livy_batch_dir(const livy_batches_t *m, int64_t id)
{
    return xasprintf("%s/livy/batches/%lld", m->home, (long long)id);
}

static char *lb_file(const livy_batches_t *m, int64_t id, const char *name)
{
    return xasprintf("%s/livy/batches/%lld/%s", m->home, (long long)id, name);
}

int livy_batch_new(const livy_batch_opts_t *o, livy_batches_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!o->loop || !o->store || !o->home || !o->self_exe)
        return err_set(err, -EINVAL, "livy batches: loop, store, home and self_exe are required");
    livy_batches_t *m = xcalloc(1, sizeof *m);
    m->o = *o;
    m->home = xstrdup(o->home);
    m->self_exe = xstrdup(o->self_exe);
    m->account_tmpl = xstrdup(o->account_tmpl ? o->account_tmpl : UACCT_DEFAULT_TEMPLATE);
    if (!m->o.kill_grace_ms) m->o.kill_grace_ms = LIVY_BATCH_GRACE_MS;
    livy_ids_load(&m->ids, m->o.store, m->home, STORE_LIVY_BATCH);
    *out = m;
    return 0;
}

static lb_entry_t *lb_find(livy_batches_t *m, int64_t id)
{
    for (lb_entry_t *e = m->live; e; e = e->next)
        if (e->id == id) return e;
    return NULL;
}

static void lb_unlink(livy_batches_t *m, lb_entry_t *e)
{
    for (lb_entry_t **p = &m->live; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            return;
        }
}

/* The application id __spark-task recorded, or NULL (new string).  The
 * batch's directory is its account's under isolation: system (a link, a
 * FIFO that would block the loop: jparse_file_regular refuses them). */
static char *lb_app_id(const livy_batches_t *m, int64_t id)
{
    char *path = lb_file(m, id, "spark.json");
    json_t *j = jparse_file_regular(path, 8 << 20);
    free(path);
    const char *a = json_string_value(json_object_get(j, "app_id"));
    char *r = a ? xstrdup(a) : NULL;
    json_decref(j);
    return r;
}

/* ---- the process tree ------------------------------------------------------ */

/* ppid and start time from /proc/PID/stat; 0 or -1. */
static int proc_stat(int pid, int *ppid, int64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* fields after comm: 3 state, 4 ppid ... 22 starttime */
    char st;
    long long fields[20];
    int got = sscanf(p + 1, " %c %lld", &st, &fields[0]);
    if (got != 2) return -1;
    *ppid = (int)fields[0];
    *start = sup_proc_start_time(pid);
    return 0;
}

/* Every descendant of root (not root itself), by parent pid. */
static void proc_tree(int root, struct tree_ent **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    size_t cap = 0, n = 0;
    struct { int pid, ppid; int64_t start; } *all = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        int ppid;
        int64_t start;
        if (proc_stat((int)pid, &ppid, &start) < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            all = xrealloc(all, cap * sizeof *all);
        }
        all[n].pid = (int)pid;
        all[n].ppid = ppid;
        all[n].start = start;
        n++;
    }
    closedir(d);
    /* breadth-first from root */
    int *queue = xcalloc(n + 1, sizeof *queue);
    size_t qh = 0, qt = 0;
    queue[qt++] = root;
    while (qh < qt) {
        int p = queue[qh++];
        for (size_t i = 0; i < n; i++)
            if (all[i].ppid == p && all[i].pid != root) {
                *out = xrealloc(*out, (*nout + 1) * sizeof **out);
                (*out)[*nout].pid = all[i].pid;
                (*out)[*nout].start = all[i].start;
                (*nout)++;
                if (qt < n + 1) queue[qt++] = all[i].pid;
            }
    }
    free(queue);
    free(all);
}

/* SIGKILL what is left of a tree (the same processes: same start time). */
static void tree_kill(const struct tree_ent *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].start && sup_proc_start_time(t[i].pid) == t[i].start) {
            LOG_I("livy batch: killing a process left behind", "pid=%d", t[i].pid);
            kill(t[i].pid, SIGKILL);
        }
}

/* ---- ends -------------------------------------------------------------------- */

static void lb_on_exit(sup_task_t *t, const sup_end_t *end, void *ud)
{
    lb_entry_t *e = ud;
    livy_batches_t *m = e->m;
    char msg[160] = "";
    const char *state;
    int code = -1;
    if (e->killing) {
        state = "killed";
        if (end->exit_code >= 0) code = end->exit_code;
    } else if (end->lost) {
        state = "dead";
        snprintf(msg, sizeof msg, "the batch ended while nbhub was not watching and left no status");
    } else if (end->exit_code == 0) {
        state = "success";
        code = 0;
    } else {
        state = "dead";
        if (end->exit_code > 0) {
            code = end->exit_code;
            snprintf(msg, sizeof msg, "spark-submit exited with status %d", end->exit_code);
        } else {
            snprintf(msg, sizeof msg, "spark-submit was killed by signal %d", end->term_signal);
        }
    }
    tree_kill(e->tree, e->ntree);
    char *app = lb_app_id(m, e->id);
    nb_err_t err;
    if (app) (void)store_livy_batch_set_app(m->o.store, e->id, app, NULL);
    if (store_livy_batch_set_state(m->o.store, e->id, state, code, msg[0] ? msg : NULL, time_now_us(), &err) < 0)
        LOG_W("livy batch: end not recorded", "batch=%lld error=\"%s\"", (long long)e->id, err.msg);
    LOG_I("livy batch ended", "batch=%lld state=%s exit_code=%d", (long long)e->id, state, code);
    free(app);
    lb_unlink(m, e);
    sup_free(t);
    free(e->tree);
    free(e);
}

static lb_entry_t *lb_entry_new(livy_batches_t *m, int64_t id)
{
    lb_entry_t *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->id = id;
    e->next = m->live;
    m->live = e;
    return e;
}

static void lb_stop(livy_batches_t *m, lb_entry_t *e)
{
    if (e->killing) return;
    e->killing = 1;
    int pid = sup_pid(e->proc);
    if (pid > 0) proc_tree(pid, &e->tree, &e->ntree);
    sup_stop(e->proc, m->o.kill_grace_ms);
}

int livy_batch_adopt(livy_batches_t *m)
{
    store_livy_batches_t l;
    nb_err_t err;
    if (store_livy_batches_list(m->o.store, 0, 1, &l, &err) < 0) {
        LOG_E("livy batches: cannot list", "error=\"%s\"", err.msg);
        return 0;
    }
    int adopted = 0;
    for (size_t i = 0; i < l.n; i++) {
        store_livy_batch_t *b = &l.v[i];
        lb_entry_t *e = xcalloc(1, sizeof *e);
        e->m = m;
        e->id = b->id;
        char *status = lb_file(m, b->id, "status.json");
        int rc = b->pid > 0 ? sup_attach(m->o.loop, b->pid, b->pid_start_time, status, lb_on_exit, e,
                                         &e->proc, &err)
                            : -ESRCH;
        if (rc == 0) {
            e->next = m->live;
            m->live = e;
            adopted++;
            LOG_I("livy batch adopted", "batch=%lld pid=%d", (long long)b->id, b->pid);
            if (!strcmp(b->state, "shutting_down")) lb_stop(m, e);
        } else {
            /* Gone: its status file says how it ended (or nothing does). */
            sup_end_t end;
            if (b->pid <= 0 || sup_read_status(status, &end) != 0) end = (sup_end_t){ -1, 0, 1 };
            e->killing = !strcmp(b->state, "shutting_down");
            lb_on_exit(NULL, &end, e);   /* frees e */
        }
        free(status);
    }
    store_livy_batches_free(&l);
    return adopted;
}

/* ---- start --------------------------------------------------------------------- */

int livy_batch_submit(livy_batches_t *m, const livy_batch_spec_t *s, int64_t *id, nb_err_t *err)
{
    *id = 0;
    store_t *st = m->o.store;
    char acct[64] = "";
    int rc;
    if (m->o.isolation_system && (rc = uacct_name(m->account_tmpl, s->run_as, acct, sizeof acct, err)) < 0)
        return rc;
    char cluster[64] = "";
    if ((rc = store_livy_batch_create(st, m->ids.hwm, s->owner_id, s->proxy_user, s->name, s->request_json,
                                      time_now_us(), id, err)) < 0)
        return rc;
    livy_ids_note(&m->ids, *id);
    if (s->workers > 0) snprintf(cluster, sizeof cluster, "livy-batch-%lld", (long long)*id);
    char *dir = livy_batch_dir(m, *id);
    char *log_path = lb_file(m, *id, "log");
    char *status = lb_file(m, *id, "status.json");
    char *state = lb_file(m, *id, "spark.json");
    char **argv = NULL, **env = NULL;
    size_t argc = 0, envc = 0;
    char *app = s->name ? xstrdup(s->name) : xasprintf("livy-batch-%lld", (long long)*id);
    rc = fs_mkdir_p(dir, 0700, err);
    if (rc == 0 && m->o.isolation_system) {
        /* The account reaches its own directory, lists nobody's. */
        livy_ids_dirs_passable(&m->ids);
    }
    if (rc < 0) goto fail;
    if (m->o.isolation_system) {
        sv_add(&argv, &argc, m->self_exe);
        sv_add(&argv, &argc, "__as-user");
        sv_add(&argv, &argc, acct);
        if (m->o.create_accounts) sv_add(&argv, &argc, "--create");
        sv_add(&argv, &argc, "--chown");
        sv_add(&argv, &argc, dir);
        if (cluster[0]) {
            /* An ephemeral cluster lives in spark/~USER/, the account's. */
            buf_t od = BUF_INIT;
            buf_printf(&od, "%s/spark/~", m->home);
            urlesc_append(&od, s->run_as);
            nb_err_t e2;
            if (fs_mkdir_p(od.data, 0700, &e2) == 0) {
                sv_add(&argv, &argc, "--chown");
                sv_add(&argv, &argc, od.data);
            }
            buf_free(&od);
        }
        if (s->cwd) {
            sv_add(&argv, &argc, "--cwd");
            sv_add(&argv, &argc, s->cwd);
        }
        sv_add(&argv, &argc, "--self");
        sv_add(&argv, &argc, "--");
    }
    sv_add(&argv, &argc, m->self_exe);
    sv_add(&argv, &argc, "__spark-task");
    sv_add(&argv, &argc, "--home");
    sv_add(&argv, &argc, m->home);
    sv_add(&argv, &argc, "--state");
    sv_add(&argv, &argc, state);
    sv_add(&argv, &argc, "--app-name");
    sv_add(&argv, &argc, app);
    sv_add(&argv, &argc, "--owner");
    sv_add(&argv, &argc, s->run_as);
    if (cluster[0]) {
        char num[32];
        sv_add(&argv, &argc, "--ephemeral");
        sv_add(&argv, &argc, cluster);
        snprintf(num, sizeof num, "%d", s->workers);
        sv_add(&argv, &argc, "--workers");
        sv_add(&argv, &argc, num);
        snprintf(num, sizeof num, "%d", s->worker_cores > 0 ? s->worker_cores : 1);
        sv_add(&argv, &argc, "--worker-cores");
        sv_add(&argv, &argc, num);
        sv_add(&argv, &argc, "--worker-memory");
        sv_add(&argv, &argc, s->worker_memory ? s->worker_memory : "1g");
    } else {
        sv_add(&argv, &argc, "--local");
    }
    sv_add(&argv, &argc, "--submit");
    for (size_t i = 0; s->conf && s->conf[i]; i++) {
        sv_add(&argv, &argc, "--conf");
        sv_add(&argv, &argc, s->conf[i]);
    }
    sv_add(&argv, &argc, "--");
    sv_add(&argv, &argc, "spark-submit");
    for (size_t i = 0; s->submit_args[i]; i++) sv_add(&argv, &argc, s->submit_args[i]);

    for (char **e = environ; *e; e++) {
        if (!strncmp(*e, "NBHUB_", 6)) continue;
        if (m->o.isolation_system && !uacct_env_kept(*e)) continue;
        sv_add(&env, &envc, *e);
    }
    {
        int fd = fs_open_regular(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL);
        if (fd >= 0) {
            char now[40];
            time_iso8601_utc(time_now_us(), now, sizeof now, 1);
            dprintf(fd, "--- nbhub: Livy batch %lld, started %s ---\n", (long long)*id, now);
            close(fd);
        }
    }
    lb_entry_t *e = lb_entry_new(m, *id);
    sup_spawn_opts_t so = { m->self_exe, argv, env, m->o.isolation_system ? NULL : s->cwd,
                            log_path, status, 0 };
    rc = sup_spawn(m->o.loop, &so, lb_on_exit, e, &e->proc, err);
    if (rc < 0) {
        lb_unlink(m, e);
        free(e);
        goto fail;
    }
    nb_err_t e2;
    if (store_livy_batch_spawned(st, *id, sup_pid(e->proc), sup_start_time(e->proc), log_path,
                                 cluster[0] ? cluster : NULL, &e2) < 0 ||
        store_livy_batch_set_state(st, *id, "starting", -1, NULL, time_now_us(), &e2) < 0)
        LOG_W("livy batch: process not recorded", "batch=%lld error=\"%s\"", (long long)*id, e2.msg);
    LOG_I("livy batch started", "batch=%lld pid=%d cluster=%s", (long long)*id, sup_pid(e->proc),
          cluster[0] ? cluster : "local");
    goto out;
fail: {
        nb_err_t e3;
        (void)store_livy_batch_set_state(st, *id, "dead", -1, err->msg, time_now_us(), &e3);
    }
out:
    sv_free(argv);
    sv_free(env);
    free(app);
    free(dir);
    free(log_path);
    free(status);
    free(state);
    return rc;
}

int livy_batch_kill(livy_batches_t *m, int64_t id, nb_err_t *err)
{
    lb_entry_t *e = lb_find(m, id);
    if (!e) {
        store_livy_batch_t b;
        int rc = store_livy_batch_get(m->o.store, id, &b, err);
        if (rc < 0) return rc;
        /* Live in the table but not ours (its start failed half-way): end it. */
        if (!b.ended_at) (void)store_livy_batch_set_state(m->o.store, id, "killed", -1, NULL, time_now_us(), NULL);
        store_livy_batch_clear(&b);
        return 0;
    }
    if (!e->killing) {
        /* the row says so at once, and killed when it has stopped */
        nb_err_t e2;
        if (store_livy_batch_set_state(m->o.store, id, "shutting_down", -1, NULL, time_now_us(), &e2) < 0)
            LOG_W("livy batch: stopping not recorded", "batch=%lld error=\"%s\"", (long long)id, e2.msg);
        LOG_I("livy batch deleted: stopping", "batch=%lld", (long long)id);
        lb_stop(m, e);
    }
    return 0;
}

void livy_batch_refresh(livy_batches_t *m, store_livy_batch_t *b)
{
    if (b->ended_at || strcmp(b->state, "starting")) return;
    char *app = lb_app_id(m, b->id);
    if (!app) return;
    if (store_livy_batch_set_app(m->o.store, b->id, app, NULL) == 0 &&
        store_livy_batch_set_state(m->o.store, b->id, "running", -1, NULL, time_now_us(), NULL) == 0) {
        free(b->state);
        b->state = xstrdup("running");
        free(b->app_id);
        b->app_id = app;
        return;
    }
    free(app);
}

void livy_batch_shutdown(livy_batches_t *m)
{
    if (!m) return;
    while (m->live) {
        lb_entry_t *e = m->live;
        m->live = e->next;
        sup_detach(e->proc);
        free(e->tree);
        free(e);
    }
}

void livy_batch_free(livy_batches_t *m)
{
    if (!m) return;
    livy_batch_shutdown(m);
    livy_ids_clear(&m->ids);
    free(m->home);
    free(m->self_exe);
    free(m->account_tmpl);
    free(m);
}
