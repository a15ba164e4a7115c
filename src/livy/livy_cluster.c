/* livy_cluster — see livy_cluster.h. */
#include "livy/livy_cluster.h"

#include "spark/scluster.h"
#include "store/store_livy.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One session's cluster while we have business with it: starting (the
 * `spark up` child runs) or up with its session live. */
struct lc_ent {
    struct lc_ent  *next;
    struct lclusters *lc;          /* NULL once livy stopped: the callback only frees */
    int64_t         session;
    char           *id;            /* scluster_id(owner, livy-SESSION) */
    char           *name;
    char            mem[32];
    long            cores;
    json_t         *request;       /* for lsess_start once up */
    int             up_pending;
};

struct lclusters {
    livy_t        *l;
    sowned_env_t   env;
    char          *home, *self_exe, *account_tmpl;
    struct lc_ent *ents;
};

char *livy_cluster_ui_url(const char *owner, const char *cluster, const char *app_id)
{
    if (!owner || !cluster || !app_id || !*app_id) return NULL;
    char *id = scluster_id(owner, cluster), *ui = scluster_ui_path(id);
    char *url = xasprintf("%s/proxy/%s/", ui, app_id);
    free(id);
    free(ui);
    return url;
}

/* ---- sizes ------------------------------------------------------------------ */

struct lc_size {
    long workers, cores;
    char mem[32];
};

static int lc_size(const livy_conf_t *c, const json_t *req, struct lc_size *z, nb_err_t *err)
{
    json_t *n = json_object_get(req, "numExecutors"), *m = json_object_get(req, "executorMemory"),
           *k = json_object_get(req, "executorCores");
    z->workers = json_is_integer(n) ? (long)json_integer_value(n) : c->workers;
    z->cores = json_is_integer(k) ? (long)json_integer_value(k) : c->worker_cores;
    snprintf(z->mem, sizeof z->mem, "%s", json_is_string(m) ? json_string_value(m) : c->worker_memory);
    if (z->workers < 1 || z->workers > c->max_workers)
        return err_set(err, -EINVAL, "numExecutors: at most %ld here (livy.max_workers: one executor per worker)",
                       c->max_workers);
    if (z->cores < 1 || z->cores > c->max_worker_cores)
        return err_set(err, -EINVAL, "executorCores: at most %ld here (livy.max_worker_cores)", c->max_worker_cores);
    long mb = scluster_memory_mb(z->mem), max = scluster_memory_mb(c->max_worker_memory);
    if (mb <= 0) return err_set(err, -EINVAL, "executorMemory: a size such as 512m or 2g expected");
    if (mb > max)
        return err_set(err, -EINVAL, "executorMemory: at most %s here (livy.max_worker_memory)",
                       c->max_worker_memory);
    /* Spark's own spelling (scluster_memory_ok): whole megabytes. */
    snprintf(z->mem, sizeof z->mem, "%ldm", mb);
    return 0;
}

int livy_cluster_check(const livy_conf_t *c, const json_t *request, nb_err_t *err)
{
    struct lc_size z;
    return lc_size(c, request, &z, err);
}

/* ---- entries -------------------------------------------------------------------- */

static void ent_free(struct lc_ent *e)
{
    json_decref(e->request);
    free(e->id);
    free(e->name);
    free(e);
}

static void ent_unlink(struct lclusters *lc, struct lc_ent *e)
{
    for (struct lc_ent **p = &lc->ents; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
}

/* The live session of that id (not ended, not deleted), or NULL. */
static lsess_t *live_session(livy_t *l, int64_t id)
{
    for (lsess_t *s = l->sessions; s; s = s->next)
        if (s->id == id && !s->warm && !s->deleted && !s->ending) return s;
    return NULL;
}

static void lc_removed(void *ud, int64_t status, int sig)
{
    char *id = ud;
    if (!status && !sig) LOG_I("livy: session's spark cluster removed", "cluster=%s", id);
    else LOG_W("livy: session's spark cluster removal failed", "cluster=%s exit=%lld signal=%d", id,
               (long long)status, sig);
    free(id);
}

/* `spark down` for id: 0 started, -ENOENT nothing up. */
static int lc_remove(struct lclusters *lc, const char *id, const char *why)
{
    nb_err_t err;
    char *ud = xstrdup(id);
    int rc = sowned_remove(&lc->env, id, lc_removed, ud, &err);
    if (rc < 0) free(ud);
    if (rc == 0) LOG_I("livy: removing session's spark cluster", "cluster=%s why=\"%s\"", id, why);
    else if (rc != -ENOENT) LOG_W("livy: cannot remove session's spark cluster", "cluster=%s error=\"%s\"", id, err.msg);
    return rc;
}

/* 1 if the cluster of that id is marked as a Livy session's: its number
 * in *session. */
static int lc_marked(const struct lclusters *lc, const char *id, int64_t *session)
{
    char *dir = scluster_dir(lc->home, id);
    json_t *cfg = scluster_config(dir);
    free(dir);
    json_t *v = json_object_get(cfg, "livy_session");
    int ok = json_is_integer(v) && json_integer_value(v) > 0;
    if (ok && session) *session = json_integer_value(v);
    json_decref(cfg);
    return ok;
}

/* ---- start ---------------------------------------------------------------------- */

static void lc_up_done(void *ud, int64_t status, int sig)
{
    struct lc_ent *e = ud;
    struct lclusters *lc = e->lc;
    e->up_pending = 0;
    if (!lc) {   /* livy stopped meanwhile: a later nbhub sorts it out */
        ent_free(e);
        return;
    }
    livy_t *l = lc->l;
    lsess_t *s = live_session(l, e->session);
    if (status || sig) {
        LOG_W("livy: session's spark cluster did not start", "session=%lld cluster=%s exit=%lld signal=%d",
              (long long)e->session, e->id, (long long)status, sig);
        lc_remove(lc, e->id, "it did not start");
        ent_unlink(lc, e);
        if (s) {
            char why[512];
            snprintf(why, sizeof why, "the session's Spark cluster did not start (`nbhub spark up` exit %lld); "
                     "its log is %s/spark/%s/api.log", (long long)status, lc->home, e->id);
            lsess_end(s, "error", why);
        }
        ent_free(e);
        return;
    }
    if (!s) {   /* deleted, timed out or nbhub stopping while it started */
        lc_remove(lc, e->id, "its session ended while it started");
        ent_unlink(lc, e);
        ent_free(e);
        return;
    }
    char *dir = scluster_dir(lc->home, e->id);
    json_t *st = scluster_live_state(dir);
    free(dir);
    const char *master = json_string_value(json_object_get(st, "master_url"));
    if (!master) {
        json_decref(st);
        lc_remove(lc, e->id, "no master URL in its state");
        ent_unlink(lc, e);
        ent_free(e);
        lsess_end(s, "error", "the session's Spark cluster came up without a master URL");
        return;
    }
    LOG_I("livy: session's spark cluster up", "session=%lld cluster=%s master=%s", (long long)e->session, e->id,
          master);
    free(s->cluster_master);
    s->cluster_master = xstrdup(master);
    json_decref(st);
    /* What the driver needs beside --master (livy_cluster.h). */
    char **ui = scluster_ui_confs(e->id);
    size_t n = 0;
    char **c = xcalloc(8, sizeof *c);
    c[n++] = xasprintf("spark.executor.memory=%s", e->mem);
    c[n++] = xasprintf("spark.executor.cores=%ld", e->cores);
    c[n++] = xstrdup("spark.driver.host=127.0.0.1");
    c[n++] = xstrdup("spark.driver.bindAddress=127.0.0.1");
    for (char **p = ui; *p; p++) c[n++] = xstrdup(*p);
    scluster_strv_free(ui);
    if (s->cluster_conf)
        for (char **p = s->cluster_conf; *p; p++) free(*p);
    free(s->cluster_conf);
    s->cluster_conf = c;
    nb_err_t err;
    if (lsess_start(s, e->request, &err) < 0) {
        LOG_W("livy: session start failed", "session=%lld error=\"%s\"", (long long)s->id, err.msg);
        lsess_end(s, "error", err.msg);   /* the sweep removes the cluster */
    }
    json_decref(e->request);
    e->request = NULL;
}

/* The session's cluster is name: in memory and in its row. */
static void lc_record(livy_t *l, lsess_t *s, const char *name)
{
    free(s->cluster);
    s->cluster = xstrdup(name);
    nb_err_t serr;
    if (store_livy_session_spawned(l->st, s->id, NULL, 0, 0, NULL, name, &serr) < 0)
        LOG_W("livy: session's cluster not recorded", "session=%lld error=\"%s\"", (long long)s->id, serr.msg);
}

int livy_cluster_start(livy_t *l, lsess_t *s, const char *owner, const json_t *request, nb_err_t *err)
{
    struct lclusters *lc = l->clusters;
    if (!lc)
        return err_set(err, -ENOTSUP, "livy.spark is cluster but nbhub cannot start Spark clusters here "
                                      "(see nbhub serve's log)");
    struct lc_size z;
    int rc = lc_size(l->conf, request, &z, err);
    if (rc < 0) return rc;
    if (!scluster_owner_ok(owner)) return err_set(err, -EINVAL, "user '%s' cannot own a Spark cluster", owner);
    char *name = xasprintf("livy-%lld", (long long)s->id), *id = scluster_id(owner, name);
    char *dir = scluster_dir(lc->home, id);
    json_t *live = scluster_live_state(dir);
    if (live || scluster_locked(dir)) {
        /* The user made one of that name: never touched here. */
        rc = err_set(err, -EEXIST, "user '%s' has a Spark cluster named '%s' that is not this session's: "
                                   "the session's own cluster needs that name", owner, name);
        json_decref(live);
        goto out;
    }
    struct lc_ent *e = xcalloc(1, sizeof *e);
    e->lc = lc;
    e->session = s->id;
    e->id = xstrdup(id);
    e->name = xstrdup(name);
    snprintf(e->mem, sizeof e->mem, "%s", z.mem);
    e->cores = z.cores;
    e->request = json_deep_copy(request);
    sowned_spec_t spec = { .owner = owner, .name = name, .workers = z.workers, .cores = z.cores,
                           .worker_memory = z.mem, .livy_session = s->id };
    /* Sized by livy: (the admin's), not counted against the user's
     * spark: limits (livy_cluster.h). */
    rc = sowned_create(&lc->env, &spec, NULL, lc_up_done, e, err);
    if (rc < 0) {
        ent_free(e);
        goto out;
    }
    e->up_pending = 1;
    e->next = lc->ents;
    lc->ents = e;
    /* The column first, so that a restart of nbhub now knows the cluster. */
    lc_record(l, s, name);
    lsess_set_state(s, "starting");
    LOG_I("livy: session's spark cluster starting", "session=%lld owner=%s cluster=%s workers=%ld worker_memory=%s "
          "cores=%ld", (long long)s->id, owner, name, z.workers, z.mem, z.cores);
out:
    free(name);
    free(id);
    free(dir);
    return rc;
}

/* ---- a named cluster of the user's ---------------------------------------------- */

int livy_cluster_named(const json_t *request, const char **name, nb_err_t *err)
{
    *name = NULL;
    json_t *v = json_object_get(json_object_get(request, "conf"), LIVY_CLUSTER_CONF);
    if (!v) return 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return err_set(err, -EINVAL, "conf." LIVY_CLUSTER_CONF " must be the name of one of your Spark clusters");
    *name = json_string_value(v);
    return 0;
}

int livy_cluster_attach(livy_t *l, lsess_t *s, const char *owner, const char *name, const json_t *request,
                        nb_err_t *err)
{
    struct lclusters *lc = l->clusters;
    if (!lc)
        return err_set(err, -ENOTSUP, "nbhub cannot reach Spark clusters here (see nbhub serve's log)");
    if (!scluster_owner_ok(owner)) return err_set(err, -EINVAL, "user '%s' cannot own a Spark cluster", owner);
    /* The user's own namespace only: the id is made from owner and name. */
    char *id = scluster_id(owner, name);
    char *dir = scluster_dir(lc->home, id);
    json_t *st = scluster_live_state(dir);
    int rc = 0;
    const char *master = json_string_value(json_object_get(st, "master_url"));
    if (lc_marked(lc, id, NULL))
        rc = err_set(err, -EINVAL, "'%s' is a Livy session's own cluster, not one a session can share", name);
    else if (!st || !master)
        rc = err_set(err, -ENOENT, "user '%s' has no running Spark cluster named '%s'", owner, name);
    if (rc < 0) goto out;
    free(s->cluster_master);
    s->cluster_master = xstrdup(master);
    char **ui = scluster_ui_confs(id);
    size_t n = 0;
    char **c = xcalloc(10, sizeof *c);
    /* One executor per worker of the cluster's size, as for a session's
     * own cluster: Spark's default (1g) would never fit a smaller worker,
     * and the job would wait for executors forever.  A request that
     * sizes its executors itself keeps its sizes (these come last). */
    json_t *cfg = scluster_config(dir), *rconf = json_object_get(request, "conf");
    const char *wm = json_string_value(json_object_get(cfg, "worker_memory"));
    json_int_t wc = json_integer_value(json_object_get(cfg, "worker_cores"));
    if (wm && !json_object_get(request, "executorMemory") && !json_object_get(rconf, "spark.executor.memory"))
        c[n++] = xasprintf("spark.executor.memory=%s", wm);
    if (wc > 0 && !json_object_get(request, "executorCores") && !json_object_get(rconf, "spark.executor.cores"))
        c[n++] = xasprintf("spark.executor.cores=%lld", (long long)wc);
    json_decref(cfg);
    c[n++] = xstrdup("spark.driver.host=127.0.0.1");
    c[n++] = xstrdup("spark.driver.bindAddress=127.0.0.1");
    for (char **p = ui; *p && n < 9; p++) c[n++] = xstrdup(*p);
    scluster_strv_free(ui);
    if (s->cluster_conf)
        for (char **p = s->cluster_conf; *p; p++) free(*p);
    free(s->cluster_conf);
    s->cluster_conf = c;
    /* Recorded for appInfo.sparkUiUrl; never removed here: it carries no
     * livy_session mark, so neither the sweep nor livy_cluster_init
     * touches it. */
    lc_record(l, s, name);
    LOG_I("livy: session on a cluster of its user's", "session=%lld owner=%s cluster=%s master=%s",
          (long long)s->id, owner, name, master);
    rc = lsess_start(s, request, err);
out:
    json_decref(st);
    free(id);
    free(dir);
    return rc;
}

/* ---- removal -------------------------------------------------------------------- */

void livy_cluster_sweep(livy_t *l)
{
    struct lclusters *lc = l->clusters;
    if (!lc) return;
    for (struct lc_ent *e = lc->ents, *next; e; e = next) {
        next = e->next;
        if (e->up_pending || live_session(l, e->session)) continue;
        lc_remove(lc, e->id, "its session ended");
        ent_unlink(lc, e);
        ent_free(e);
    }
}

void livy_cluster_init(livy_t *l, const sowned_env_t *env)
{
    if (!env || !env->loop || !env->home || !env->self_exe) return;
    struct lclusters *lc = xcalloc(1, sizeof *lc);
    lc->l = l;
    lc->env = *env;
    lc->home = xstrdup(env->home);
    lc->self_exe = xstrdup(env->self_exe);
    lc->account_tmpl = env->account_tmpl ? xstrdup(env->account_tmpl) : NULL;
    lc->env.home = lc->home;
    lc->env.self_exe = lc->self_exe;
    lc->env.account_tmpl = lc->account_tmpl;
    l->clusters = lc;
    /* Adopted sessions keep theirs. */
    store_livy_sessions_t rows;
    nb_err_t err;
    if (store_livy_sessions_list(l->st, 0, 1, &rows, &err) == 0) {
        for (size_t i = 0; i < rows.n; i++) {
            store_livy_session_t *r = &rows.v[i];
            lsess_t *s = live_session(l, r->id);
            if (!s || !r->spark_cluster) continue;
            const char *owner = r->proxy_user ? r->proxy_user : r->owner;
            free(s->cluster);
            s->cluster = xstrdup(r->spark_cluster);
            /* A named cluster of the user's (livy_cluster_attach) is not
             * the session's to remove. */
            char *cid = scluster_id(owner, r->spark_cluster);
            int64_t mark = 0;
            int own = lc_marked(lc, cid, &mark) && mark == r->id;
            free(cid);
            if (!own) continue;
            struct lc_ent *e = xcalloc(1, sizeof *e);
            e->lc = lc;
            e->session = r->id;
            e->id = scluster_id(owner, r->spark_cluster);
            e->name = xstrdup(r->spark_cluster);
            e->next = lc->ents;
            lc->ents = e;
        }
        store_livy_sessions_free(&rows);
    }
    /* Every other cluster marked as a session's: its session is gone. */
    int n = 0;
    char **ids = scluster_ids(lc->home, NULL);
    for (char **id = ids; *id; id++) {
        int64_t sid;
        if ((*id)[0] != '~' || !lc_marked(lc, *id, &sid)) continue;
        int ours = 0;
        for (struct lc_ent *e = lc->ents; e; e = e->next) ours |= !strcmp(e->id, *id);
        if (!ours && lc_remove(lc, *id, "its session was not there after a restart") == 0) n++;
    }
    scluster_strv_free(ids);
    if (n) LOG_I("livy: leftover session clusters removed", "count=%d", n);
}

void livy_cluster_shutdown(livy_t *l)
{
    struct lclusters *lc = l->clusters;
    if (!lc) return;
    l->clusters = NULL;
    for (struct lc_ent *e = lc->ents, *next; e; e = next) {
        next = e->next;
        if (e->up_pending) e->lc = NULL;   /* freed by its callback */
        else ent_free(e);
    }
    free(lc->home);
    free(lc->self_exe);
    free(lc->account_tmpl);
    free(lc);
}
