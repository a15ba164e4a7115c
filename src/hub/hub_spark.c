/* hub_spark — see hub_spark.h. */
#include "hub/hub_spark.h"
#include "spark/scluster.h"
#include "spark/sparkspec.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One server's cluster while we have business with it: being started
 * (the `spark up` child runs) or being removed. */
struct hs_ent {
    struct hs_ent *next;
    hub_spark_t   *hs;
    int64_t        server_id;
    char          *owner, *server, *id;   /* id: scluster_id(owner, cluster name) */
    int            up_pending;            /* `spark up` still running */
    int            remove_when_up;        /* the server stopped meanwhile */
};

struct hub_spark {
    hub_t          *hub;
    sowned_env_t    env;
    char           *home, *self_exe, *account_tmpl;   /* env's strings, ours */
    struct hs_ent  *ents;
    uv_timer_t     *sweep;                /* closed (and freed) in hub_spark_free */
    int             freed;
};

char *hub_spark_cluster_name(const char *server_name)
{
    if (!server_name || !*server_name) return xstrdup("server");
    char *n = xasprintf("server-%s", server_name);
    if (scluster_name_ok(n)) return n;
    free(n);
    /* Not a cluster name as it is (too long, or characters a cluster name
     * may not have): a readable part and a digest, so two servers never
     * share a cluster. */
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)server_name; *p; p++) h = (h ^ *p) * 16777619u;
    buf_t b = BUF_INIT;
    buf_puts(&b, "server-");
    for (const char *p = server_name; *p && b.len < 7 + 40; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || c == '.';
        buf_putc(&b, ok ? c : '_');
    }
    buf_printf(&b, "-%08x", h);
    return buf_detach(&b);
}

/* ---- what the server JSON shows ------------------------------------------------- */

json_t *hub_spark_json(const char *home, const char *owner, const char *cluster)
{
    if (!cluster || !owner) return NULL;
    char *id = scluster_id(owner, cluster), *dir = scluster_dir(home, id), *ui = scluster_ui_path(id);
    json_t *cfg = scluster_config(dir), *st = scluster_live_state(dir);
    const char *state = st ? json_string_value(json_object_get(st, "state"))
                           : scluster_locked(dir) ? "starting" : "stopped";
    json_t *j = json_pack("{s:s, s:s, s:s+}", "cluster", cluster, "state", state ? state : "starting", "ui_url", ui, "/");
    json_object_set(j, "master_url", st && json_object_get(st, "master_url") ? json_object_get(st, "master_url")
                                                                              : json_null());
    json_t *cu = st ? json_object_get(st, "connect_url") : NULL;
    json_object_set(j, "connect_url", json_is_string(cu) ? cu : json_null());
    json_object_set(j, "workers", json_object_get(cfg, "workers") ? json_object_get(cfg, "workers") : json_null());
    json_object_set(j, "worker_memory",
                    json_object_get(cfg, "worker_memory") ? json_object_get(cfg, "worker_memory") : json_null());
    json_decref(cfg);
    json_decref(st);
    free(id);
    free(dir);
    free(ui);
    return j;
}

static void hs_final(hub_spark_t *hs)
{
    free(hs->home);
    free(hs->self_exe);
    free(hs->account_tmpl);
    free(hs);
}

/* ---- entries -------------------------------------------------------------------- */

static struct hs_ent *hs_find(hub_spark_t *hs, int64_t server_id)
{
    for (struct hs_ent *e = hs->ents; e; e = e->next)
        if (e->server_id == server_id) return e;
    return NULL;
}

static struct hs_ent *hs_add(hub_spark_t *hs, int64_t server_id, const char *owner, const char *server, const char *id)
{
    struct hs_ent *e = xcalloc(1, sizeof *e);
    e->hs = hs;
    e->server_id = server_id;
    e->owner = xstrdup(owner);
    e->server = xstrdup(server);
    e->id = xstrdup(id);
    e->next = hs->ents;
    hs->ents = e;
    return e;
}

static void hs_drop(hub_spark_t *hs, struct hs_ent *e)
{
    for (struct hs_ent **p = &hs->ents; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    free(e->owner);
    free(e->server);
    free(e->id);
    free(e);
}

/* 1 if the cluster of that id is marked as server `server`'s (config.json
 * "server"): only those are ever removed here. */
static int hs_marked(const hub_spark_t *hs, const char *id, const char *server)
{
    char *dir = scluster_dir(hs->home, id);
    json_t *cfg = scluster_config(dir);
    free(dir);
    const char *s = json_string_value(json_object_get(cfg, "server"));
    int ok = s && (!server || !strcmp(s, server));
    json_decref(cfg);
    return ok;
}

static void hs_removed(void *ud, int64_t status, int sig)
{
    char *id = ud;
    if (!status && !sig) LOG_I("server's spark cluster removed", "cluster=%s", id);
    free(id);
}

/* `spark down` for id if it is up: 0 started, -ENOENT nothing up. */
static int hs_remove(hub_spark_t *hs, const char *id, const char *why)
{
    nb_err_t err;
    char *ud = xstrdup(id);
    int rc = sowned_remove(&hs->env, id, hs_removed, ud, &err);
    if (rc < 0) free(ud);
    if (rc == 0) LOG_I("removing server's spark cluster", "cluster=%s why=\"%s\"", id, why);
    else if (rc != -ENOENT) LOG_W("cannot remove server's spark cluster", "cluster=%s error=\"%s\"", id, err.msg);
    return rc;
}

/* `spark up` of a server's cluster exited. */
static void hs_up_done(void *ud, int64_t status, int sig)
{
    struct hs_ent *e = ud;
    hub_spark_t *hs = e->hs;
    e->up_pending = 0;
    if (status || sig)
        LOG_W("server's spark cluster did not start", "cluster=%s exit=%lld signal=%d log=\"%s/spark/%s/api.log\"",
              e->id, (long long)status, sig, hs->home, e->id);
    else
        LOG_I("server's spark cluster up", "cluster=%s", e->id);
    /* The server stopped while it started: now that its supervisor is
     * there (or gone: then nothing is up), it goes too. */
    if (e->remove_when_up) hs_remove(hs, e->id, "its server stopped while it started");
    hs_drop(hs, e);
    if (hs->freed && !hs->ents) hs_final(hs);
}

/* ---- hooks ---------------------------------------------------------------------- */

/* A spark: profile's server is about to start: its cluster (hub_spark.h). */
static int hs_starting(hub_t *h, hub_server_t *s, void *ud, nb_err_t *err)
{
    hub_spark_t *hs = ud;
    if (hs->freed) return 0;
    const hub_profile_t *p = hub_server_profile_def(h, s);
    if (!p || p->spark.workers <= 0) {
        hub_server_set_spark(h, s, NULL);
        return 0;
    }
    const char *owner = hub_server_user(s), *server = hub_server_name(s);
    if (!scluster_owner_ok(owner))
        return err_set(err, -EINVAL, "user '%s' cannot own a Spark cluster (profile '%s' has spark:)", owner, p->name);
    char *name = hub_spark_cluster_name(server), *id = scluster_id(owner, name), *dir = scluster_dir(hs->home, id);
    char mem[32] = "1g";
    if (p->spark.worker_memory > 0) {
        long mb = (long)(p->spark.worker_memory / (1024 * 1024));
        snprintf(mem, sizeof mem, "%ldm", mb > 0 ? mb : 1);
    }
    int rc = 0, master_port = 0, connect_port = 0;
    json_t *live = scluster_live_state(dir);
    struct hs_ent *old = hs_find(hs, hub_server_id(s));
    if (live || scluster_locked(dir) || old) {
        /* One is there: this server's from before (a start right after a
         * stop, while the old one still goes), or the user's own. */
        if (!hs_marked(hs, id, server)) {
            rc = err_set(err, -EEXIST,
                         "you have a Spark cluster named '%s' that is not this server's: the server's own "
                         "cluster needs that name; stop yours first (DELETE /api/v1/spark/clusters/%s)",
                         name, name);
            goto out;
        }
        /* left over (nbhub was not there when the server went): it goes */
        if (!old) hs_remove(hs, id, "left over from an earlier start of its server");
        rc = err_set(err, -EBUSY,
                         "this server's previous Spark cluster ('%s') is still being removed; start the server "
                         "again in a few seconds", name);
        goto out;
    }
    /* The ports now, so that the environment can name them (hub_spark.h). */
    for (int tries = 0; tries < 8; tries++) {
        master_port = scluster_free_port();
        connect_port = p->spark.connect ? scluster_free_port() : 0;
        if (master_port > 0 && (!p->spark.connect || (connect_port > 0 && connect_port != master_port))) break;
        master_port = 0;
    }
    if (master_port <= 0) {
        rc = err_set(err, -EADDRNOTAVAIL, "no free port on 127.0.0.1 for the server's Spark cluster");
        goto out;
    }
    struct hs_ent *e = hs_add(hs, hub_server_id(s), owner, server, id);
    sowned_spec_t spec = { .owner = owner, .name = name, .workers = p->spark.workers, .cores = 1,
                           .worker_memory = mem, .connect = p->spark.connect, .server = server,
                           .port = master_port, .connect_port = connect_port };
    /* Not counted against the user's limits (hub_spark.h): no quota. */
    rc = sowned_create(&hs->env, &spec, NULL, hs_up_done, e, err);
    if (rc < 0) {
        hs_drop(hs, e);
        goto out;
    }
    e->up_pending = 1;
    /* The environment (hub_server_setenv: after the profile's, so it wins). */
    char url[64];
    if (p->spark.connect) {
        snprintf(url, sizeof url, "sc://127.0.0.1:%d", connect_port);
        hub_server_setenv(s, "SPARK_REMOTE", url);
    } else {
        snprintf(url, sizeof url, "spark://127.0.0.1:%d", master_port);
        char em[64];
        snprintf(em, sizeof em, "spark.executor.memory=%s", mem);
        char **ui = scluster_ui_confs(id);
        const char *words[] = { "--master", url, "--conf", "spark.driver.host=127.0.0.1", "--conf",
                                "spark.driver.bindAddress=127.0.0.1",
                                /* one executor per worker, of the worker's size:
                                 * Spark's 1g never starts on a 512m worker */
                                "--conf", em,
                                /* the driver's UI draws its links for nbhub's proxy
                                 * (as the master's and workers' do) */
                                "--conf", ui[0], "--conf", ui[1], "--conf", ui[2], NULL };
        buf_t b = BUF_INIT;
        for (size_t i = 0; words[i]; i++) {
            sparkspec_quote(&b, words[i]);
            buf_putc(&b, ' ');
        }
        buf_puts(&b, "pyspark-shell");
        hub_server_setenv(s, "PYSPARK_SUBMIT_ARGS", b.data);
        buf_free(&b);
        scluster_strv_free(ui);
    }
    hub_server_setenv(s, "SPARK_LOCAL_IP", "127.0.0.1");
    if (p->python) hub_server_setenv(s, "PYSPARK_PYTHON", p->python);
    if (getenv("SPARK_HOME")) hub_server_setenv(s, "SPARK_HOME", getenv("SPARK_HOME"));
    if (getenv("JAVA_HOME")) hub_server_setenv(s, "JAVA_HOME", getenv("JAVA_HOME"));
    hub_server_set_spark(h, s, name);
    LOG_I("server's spark cluster starting", "user=%s server=\"%s\" cluster=%s workers=%d worker_memory=%s connect=%d",
          owner, server, name, p->spark.workers, mem, p->spark.connect);
out:
    json_decref(live);
    free(name);
    free(id);
    free(dir);
    return rc;
}

/* The server is no longer running (stopped, culled, crashed, found gone)
 * or its row goes: so does its cluster. */
static void hs_stopped(hub_t *h, hub_server_t *s, void *ud)
{
    hub_spark_t *hs = ud;
    if (hs->freed) return;
    struct hs_ent *e = hs_find(hs, hub_server_id(s));
    const char *cluster = hub_server_spark_cluster(s);
    if (!e && !cluster) return;
    if (e && e->up_pending) {
        /* Still starting: removed now if its supervisor is there (its
         * `spark up` then exits), else as soon as `spark up` is done. */
        e->remove_when_up = hs_remove(hs, e->id, "its server stopped") == -ENOENT;
    } else {
        char *id = e ? xstrdup(e->id) : scluster_id(hub_server_user(s), cluster);
        if (hs_marked(hs, id, hub_server_name(s))) hs_remove(hs, id, "its server stopped");
        free(id);
        if (e) hs_drop(hs, e);
    }
    if (cluster) hub_server_set_spark(h, s, NULL);
}

/* ---- the sweep ------------------------------------------------------------------ */

static void hs_on_sweep(uv_timer_t *t);

int hub_spark_sweep(hub_spark_t *hs)
{
    int n = 0;
    char **ids = scluster_ids(hs->home, NULL);
    for (char **id = ids; *id; id++) {
        if ((*id)[0] != '~') continue;      /* only users' clusters are servers' */
        char *dir = scluster_dir(hs->home, *id);
        json_t *cfg = scluster_config(dir);
        free(dir);
        const char *server = json_string_value(json_object_get(cfg, "server"));
        const char *owner = json_string_value(json_object_get(cfg, "owner"));
        if (server && owner) {
            hub_server_t *s = hub_server_find(hs->hub, owner, server);
            hub_state_t st = s ? hub_server_state(s) : HUB_STOPPED;
            struct hs_ent *e = s ? hs_find(hs, hub_server_id(s)) : NULL;
            int busy = e && e->up_pending;
            if (!busy && st != HUB_STARTING && st != HUB_RUNNING && hs_remove(hs, *id, "its server is not running") == 0)
                n++;
        }
        json_decref(cfg);
    }
    scluster_strv_free(ids);
    if (!uv_is_active((uv_handle_t *)hs->sweep))
        uv_timer_start(hs->sweep, hs_on_sweep, HUB_SPARK_SWEEP_MS, HUB_SPARK_SWEEP_MS);
    return n;
}

static void hs_on_sweep(uv_timer_t *t)
{
    hub_spark_sweep(t->data);
}

/* ---- life ----------------------------------------------------------------------- */

int hub_spark_new(hub_t *h, const sowned_env_t *env, hub_spark_t **out, nb_err_t *err)
{
    if (!env || !env->loop || !env->home || !env->self_exe)
        return err_set(err, -EINVAL, "hub_spark_new: loop, home and self_exe are needed");
    hub_spark_t *hs = xcalloc(1, sizeof *hs);
    hs->hub = h;
    hs->env = *env;
    hs->home = xstrdup(env->home);
    hs->self_exe = xstrdup(env->self_exe);
    hs->account_tmpl = env->account_tmpl ? xstrdup(env->account_tmpl) : NULL;
    hs->env.home = hs->home;
    hs->env.self_exe = hs->self_exe;
    hs->env.account_tmpl = hs->account_tmpl;
    hs->sweep = xcalloc(1, sizeof *hs->sweep);
    uv_timer_init(env->loop, hs->sweep);
    hs->sweep->data = hs;
    uv_unref((uv_handle_t *)hs->sweep);   /* never what keeps nbhub's loop running */
    hub_hooks_t hooks = { .starting = hs_starting, .stopped = hs_stopped, .gone = hs_stopped, .ud = hs };
    hub_add_hooks(h, &hooks);
    *out = hs;
    return 0;
}

static void hs_sweep_closed(uv_handle_t *t)
{
    free(t);
}

void hub_spark_free(hub_spark_t *hs)
{
    if (!hs) return;
    uv_timer_stop(hs->sweep);
    uv_close((uv_handle_t *)hs->sweep, hs_sweep_closed);
    hs->freed = 1;
    /* Entries of clusters still starting are freed when their `spark up`
     * exits (hs_up_done), the last one frees hs; the others now. */
    for (struct hs_ent *e = hs->ents, *next; e; e = next) {
        next = e->next;
        if (!e->up_pending) hs_drop(hs, e);
    }
    if (!hs->ents) hs_final(hs);
}
