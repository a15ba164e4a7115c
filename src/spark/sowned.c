/* sowned — see sowned.h. */
#include "spark/sowned.h"
#include "spark/scluster.h"
#include "iso/uacct.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sowned_job {
    uv_process_t proc;
    char        *what;
    sowned_cb    cb;
    void        *ud;
    struct sowned_job *next;   /* the jobs still running (sowned_forget) */
};

/* One loop thread: the jobs whose `nbhub spark` has not exited yet. */
static struct sowned_job *sowned_jobs;

static void sowned_unlink(struct sowned_job *j)
{
    for (struct sowned_job **p = &sowned_jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

static void sowned_closed(uv_handle_t *h)
{
    struct sowned_job *j = h->data;
    free(j->what);
    free(j);
}

void sowned_forget(uv_loop_t *loop)
{
    struct sowned_job **p = &sowned_jobs;
    while (*p) {
        struct sowned_job *j = *p;
        if (j->proc.loop != loop) {
            p = &j->next;
            continue;
        }
        *p = j->next;
        j->cb = NULL;
        uv_close((uv_handle_t *)&j->proc, sowned_closed);
    }
}

static void sowned_exited(uv_process_t *p, int64_t status, int sig)
{
    struct sowned_job *j = p->data;
    if (status || sig) LOG_W("spark command failed", "what=\"%s\" exit=%lld signal=%d", j->what, (long long)status, sig);
    else LOG_I("spark command done", "what=\"%s\"", j->what);
    sowned_unlink(j);
    if (j->cb) j->cb(j->ud, status, sig);
    uv_close((uv_handle_t *)p, sowned_closed);
}

/* Start `nbhub spark ARGV...` for the cluster of that id, with its output
 * appended to DIR/api.log, and lock_fd (the directory's claim, or -1) as
 * its fd 3. */
static int sowned_spawn(const sowned_env_t *e, const char *id, const char *what, char **argv, int lock_fd,
                        sowned_cb cb, void *ud, nb_err_t *err)
{
    char *dir = scluster_dir(e->home, id);
    nb_err_t e2;
    fs_mkdir_p(dir, 0700, &e2);
    char *logp = xasprintf("%s/api.log", dir);
    free(dir);
    /* The directory may be the owner's account's (isolation: system). */
    int fd = fs_open_regular(logp, O_WRONLY | O_CREAT | O_APPEND, 0600, NULL);
    free(logp);
    if (fd < 0) return err_set(err, fd, "cannot open the cluster's log: %s", strerror(-fd));
    struct sowned_job *j = xcalloc(1, sizeof *j);
    int as_user = !strcmp(argv[1], "__as-user");
    j->what = xasprintf("spark %s %s", what, id);
    j->cb = cb;
    j->ud = ud;
    j->proc.data = j;
    uv_stdio_container_t io[4] = { { UV_IGNORE, { 0 } }, { UV_INHERIT_FD, { .fd = fd } },
                                   { UV_INHERIT_FD, { .fd = fd } }, { UV_INHERIT_FD, { .fd = lock_fd } } };
    uv_process_options_t po = { .exit_cb = sowned_exited, .file = argv[0], .args = argv,
                                .stdio_count = lock_fd >= 0 ? 4 : 3, .stdio = io };
    /* A user's cluster under isolation: system gets none of our environment. */
    char **env = e->isolation_system && as_user ? uacct_env(NULL) : NULL;
    po.env = env;
    int rc = uv_spawn(e->loop, &j->proc, &po);
    free(env);
    close(fd);
    if (rc < 0) {
        free(j->what);
        free(j);
        return err_set(err, rc, "cannot start nbhub spark: %s", uv_strerror(rc));
    }
    /* nbhub serve's stop does not wait for it: `spark up` waits up to its
     * --timeout for the workers, and the work goes on without us anyway
     * (the supervisor has its own session). */
    uv_unref((uv_handle_t *)&j->proc);
    j->next = sowned_jobs;
    sowned_jobs = j;
    return 0;
}

/* Under isolation: system a user's cluster runs as the user's account (its
 * supervisor, master, workers and their Python), inside the user's cgroup,
 * so its JVMs count against the user's limits (sowned.h).  *out is
 * NULL-terminated, its strings malloc'd (sowned_strv_free). */
static int sowned_as_owner(const sowned_env_t *e, const char *owner, const char *name, char **argv, char ***out,
                           nb_err_t *err)
{
    char acct[64];
    int rc = uacct_name(e->account_tmpl ? e->account_tmpl : UACCT_DEFAULT_TEMPLATE, owner, acct, sizeof acct, err);
    if (rc < 0) return rc;
    const iso_limits_t *ul = e->user_limits ? e->user_limits(e->limits_ud, owner) : NULL;
    size_t n = 0, cap = 32;
    for (char **p = argv; *p; p++) cap++;
    char **w = xcalloc(cap, sizeof *w);
    w[n++] = xstrdup(e->self_exe);
    w[n++] = xstrdup("__as-user");
    w[n++] = xstrdup(acct);
    if (e->create_accounts) w[n++] = xstrdup("--create");
    char *id = scluster_id(owner, name), *dir = scluster_dir(e->home, id), *odir = fs_dirname(dir);
    w[n++] = xstrdup("--chown-tree");
    w[n++] = odir;
    free(id);
    free(dir);
    if (e->cgroups) {
        static const iso_limits_t none = { 0, 0, 0 };
        char *ug = xasprintf("nbhub/u-%s", acct), *leaf = xasprintf("nbhub/u-%s/spark-%s", acct, name);
        w[n++] = xstrdup("--cgroup");
        w[n++] = limits_spec(ug, ul ? ul : &none);
        w[n++] = xstrdup("--cgroup");
        w[n++] = limits_spec(leaf, &none);
        free(ug);
        free(leaf);
    }
    w[n++] = xstrdup("--self");
    w[n++] = xstrdup("--");
    for (char **p = argv; *p; p++) w[n++] = xstrdup(*p);
    w[n] = NULL;
    *out = w;
    return 0;
}

static void sowned_strv_free(char **w)
{
    for (char **p = w; p && *p; p++) free(*p);
    free(w);
}

/* 0 if owner may start one more cluster of workers x mb MB under q, else
 * -EDQUOT with which limit.  id: the one being started (claimed already:
 * not counted twice). */
static int sowned_quota(const sowned_env_t *e, const sowned_quota_t *q, const char *owner, const char *id,
                        long workers, long mb, nb_err_t *err)
{
    if (!q) return 0;
    struct scluster_usage u;
    scluster_usage(e->home, owner, id, &u);
    long want = workers * mb;
    if (u.clusters + 1 > q->max_clusters)
        return err_set(err, -EDQUOT,
                       "you have %d Spark cluster%s starting or up, the most a user may have "
                       "(spark: max_clusters_per_user in nbhub.yaml); stop one first",
                       u.clusters, u.clusters == 1 ? "" : "s");
    if (u.memory_mb + want > q->max_memory_mb)
        return err_set(err, -EDQUOT,
                       "this cluster needs %ld MB (%ld worker%s x %ld MB) and your clusters starting or up "
                       "have %ld MB; a user may have %ld MB in all (spark: max_memory_per_user in nbhub.yaml)",
                       want, workers, workers == 1 ? "" : "s", mb, u.memory_mb, q->max_memory_mb);
    return 0;
}

json_t *sowned_config(const sowned_spec_t *s)
{
    json_t *cfg = json_pack("{s:s, s:s, s:I, s:I, s:s, s:b}", "name", s->name, "owner", s->owner, "workers",
                            (json_int_t)s->workers, "worker_cores", (json_int_t)s->cores, "worker_memory",
                            s->worker_memory, "connect", s->connect);
    if (s->server) json_object_set_new(cfg, "server", json_string(s->server));
    if (s->livy_session > 0) json_object_set_new(cfg, "livy_session", json_integer((json_int_t)s->livy_session));
    return cfg;
}

int sowned_create(const sowned_env_t *e, const sowned_spec_t *s, const sowned_quota_t *q, sowned_cb cb, void *ud,
                  nb_err_t *err)
{
    if (!scluster_name_ok(s->name)) return err_set(err, -EINVAL, "name: letters, digits, '.', '_' and '-' expected");
    if (!scluster_owner_ok(s->owner)) return err_set(err, -EINVAL, "this user's name cannot own Spark clusters");
    if (s->workers < 1 || s->workers > 64) return err_set(err, -EINVAL, "workers: a whole number from 1 to 64");
    if (s->cores < 1 || s->cores > 1024) return err_set(err, -EINVAL, "worker_cores: a whole number from 1 to 1024");
    if (!s->worker_memory || scluster_memory_ok(s->worker_memory) < 0)
        return err_set(err, -EINVAL, "worker_memory: a size such as 512m or 2g expected");
    /* Always the owner's own: ~OWNER/NAME (scluster.h).  Whatever other
     * users have is not looked at. */
    char *id = scluster_id(s->owner, s->name), *dir = scluster_dir(e->home, id);
    char *old = scluster_find(e->home, s->owner, s->name);
    json_t *live = NULL;
    int lk = -1, rc;
    if (old && strcmp(old, id)) {
        /* the owner's of the old layout, up: the same name twice */
        char *od = scluster_dir(e->home, old);
        live = scluster_live_state(od);
        free(od);
    }
    if (!live && (rc = fs_mkdir_p(dir, 0700, err)) < 0) {
        rc = -EIO;
        goto out;
    }
    if (!live) lk = scluster_lock(dir, -1, err);
    if (lk == -EBUSY || live || (lk >= 0 && (live = scluster_live_state(dir)) != NULL)) {
        rc = err_set(err, -EBUSY, "%s has a cluster named '%s' starting or up", s->owner, s->name);
        goto out;
    }
    if (lk < 0) {
        rc = lk;
        goto out;
    }
    if ((rc = sowned_quota(e, q, s->owner, id, s->workers, scluster_memory_mb(s->worker_memory), err)) < 0) goto out;
    /* What the limits count while `spark up` starts it (which rewrites it
     * with where Spark is). */
    json_t *cfg = sowned_config(s);
    char *text = json_dumps(cfg, JSON_INDENT(1) | JSON_SORT_KEYS), *cpath = xasprintf("%s/config.json", dir);
    json_decref(cfg);
    rc = fs_write_atomic(cpath, text, strlen(text), 0, err);
    free(text);
    free(cpath);
    if (rc < 0) goto out;
    char w[24], co[24], to[24];
    snprintf(w, sizeof w, "%ld", s->workers);
    snprintf(co, sizeof co, "%ld", s->cores);
    snprintf(to, sizeof to, "%d", s->timeout_s);
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)e->self_exe;
    argv[n++] = (char *)"spark";
    argv[n++] = (char *)"up";
    argv[n++] = (char *)s->name;
    argv[n++] = (char *)"--home";
    argv[n++] = (char *)e->home;
    argv[n++] = (char *)"--owner";
    argv[n++] = (char *)s->owner;
    argv[n++] = (char *)"--workers";
    argv[n++] = w;
    argv[n++] = (char *)"--worker-cores";
    argv[n++] = co;
    argv[n++] = (char *)"--worker-memory";
    argv[n++] = (char *)s->worker_memory;
    argv[n++] = (char *)"--lock-fd";
    argv[n++] = (char *)"3";
    if (s->connect) argv[n++] = (char *)"--connect";
    if (s->timeout_s > 0) {
        argv[n++] = (char *)"--timeout";
        argv[n++] = to;
    }
    char po[16], cp[16];
    snprintf(po, sizeof po, "%d", s->port);
    snprintf(cp, sizeof cp, "%d", s->connect_port);
    if (s->port > 0) {
        argv[n++] = (char *)"--port";
        argv[n++] = po;
    }
    if (s->connect && s->connect_port > 0) {
        argv[n++] = (char *)"--connect-port";
        argv[n++] = cp;
    }
    if (s->server) {
        argv[n++] = (char *)"--server";
        argv[n++] = (char *)s->server;
    }
    char ls[24];
    if (s->livy_session > 0) {
        snprintf(ls, sizeof ls, "%lld", s->livy_session);
        argv[n++] = (char *)"--livy-session";
        argv[n++] = ls;
    }
    argv[n] = NULL;
    /* The claim goes to the child as its fd 3; ours is closed below, so
     * from here the child (then the supervisor) alone holds it. */
    char **run = argv, **wrapped = NULL;
    if (e->isolation_system && (rc = sowned_as_owner(e, s->owner, s->name, argv, &wrapped, err)) < 0) goto out;
    if (wrapped) run = wrapped;
    rc = sowned_spawn(e, id, "up", run, lk, cb, ud, err);
    sowned_strv_free(wrapped);
out:
    if (lk >= 0) close(lk);
    json_decref(live);
    free(old);
    free(id);
    free(dir);
    return rc;
}

int sowned_remove(const sowned_env_t *e, const char *id, sowned_cb cb, void *ud, nb_err_t *err)
{
    char *d = scluster_dir(e->home, id);
    json_t *live = scluster_live_state(d), *cfg = scluster_config(d);
    free(d);
    if (!live || !cfg) {
        json_decref(live);
        json_decref(cfg);
        return err_set(err, -ENOENT, "the cluster is not running");
    }
    json_decref(live);
    /* `spark down NAME [--owner O]` finds this very directory: ~O/NAME for
     * an id of that form, NAME (the operator's or the old layout's) else. */
    const char *name = json_string_value(json_object_get(cfg, "name"));
    const char *owner = id[0] == '~' ? json_string_value(json_object_get(cfg, "owner")) : NULL;
    if (!name) name = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
    char *argv[] = { (char *)e->self_exe, (char *)"spark", (char *)"down", (char *)name, (char *)"--home",
                     (char *)e->home, owner ? (char *)"--owner" : NULL, (char *)owner, NULL };
    int rc = sowned_spawn(e, id, "down", argv, -1, cb, ud, err);
    json_decref(cfg);
    return rc;
}
