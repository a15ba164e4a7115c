/*
 * api_spark — Spark clusters through the REST API (docs/spark.md):
 *
 *   GET    /api/v1/spark/clusters          the clusters the caller may see
 *   POST   /api/v1/spark/clusters          start one, owned by the caller
 *   GET    /api/v1/spark/clusters/:name    its state (the supervisor's state.json)
 *   DELETE /api/v1/spark/clusters/:name    stop it
 *
 * Names are per user (scluster.h): alice's "dev" lives in
 * $NBHUB_HOME/spark/~alice/dev, bob's in ~bob/dev, and :name is the
 * caller's own.  Nothing says whether another user has a name: creating
 * "dev" when bob has one starts yours; his is a 404 like a missing one.
 * An admin sees all, names another user's with ?owner=USER, and reaches
 * the operator's (`nbhub spark up` without --owner) by bare name when
 * they have no cluster of that name themselves.  Clusters made before
 * names were per user stay in spark/NAME/ and are their recorded owner's.
 *
 * Limits (nbhub.yaml spark:): a user may have max_clusters_per_user
 * clusters starting or up, of at most max_memory_per_user in all (workers
 * x worker_memory); over either is 429.  Admins are exempt (they can start
 * clusters from the command line anyway).  A flow's ephemeral clusters are
 * the scheduler's (max_active_tasks) and do not count.
 *
 * One start per cluster, however many requests race: POST takes the
 * directory's claim (scluster_lock) before it answers, writes config.json
 * (what the limits count while the cluster starts), and hands the claim to
 * `nbhub spark up` as fd 3, which hands it to the supervisor, which holds
 * it for its whole life.  A second POST of the name finds it held: 409.
 *
 * The work is `nbhub spark up|down` as a child process, so the loop never
 * waits for a JVM: POST and DELETE answer 202 at once, and the state is
 * polled with GET (state "starting" until every worker is alive).  The
 * supervisor runs in its own session: a cluster outlives a restart of
 * nbhub serve, as one started by `nbhub spark up` does.
 */
#include "api/api_int.h"
#include "spark/scluster.h"
#include "iso/uacct.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *api_spark_dir(const api_t *a, const char *id)
{
    return scluster_dir(a->home, id);
}

/* config.json of a cluster (new reference) or NULL. */
static json_t *api_spark_config(const api_t *a, const char *id)
{
    char *d = api_spark_dir(a, id);
    json_t *j = scluster_config(d);
    free(d);
    return j;
}

char *api_spark_resolve(const api_t *a, const api_ctx_t *c, const char *owner, const char *name)
{
    if (!name || !scluster_name_ok(name)) return NULL;
    if (owner) {
        if (!c->admin && strcmp(owner, c->name)) return NULL;
        return scluster_find(a->home, owner, name);
    }
    char *id = scluster_find(a->home, c->name, name);
    if (!id && c->admin) id = scluster_find(a->home, NULL, name);
    return id;
}

/* The cluster as the API shows it: the live state, or its config with
 * state "starting" while `spark up` waits, "stopped" when nothing runs. */
static json_t *api_spark_json(const api_t *a, const char *id, const json_t *cfg)
{
    char *d = api_spark_dir(a, id);
    json_t *st = scluster_live_state(d);
    int claimed = !st && scluster_locked(d);
    free(d);
    const char *name = json_string_value(json_object_get(cfg, "name"));
    if (!name) name = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
    if (!st)
        st = json_pack("{s:s, s:s, s:O?}", "name", name, "state", claimed ? "starting" : "stopped", "workers",
                       json_object_get(cfg, "workers"));
    json_object_set(st, "owner", json_object_get(cfg, "owner") ? json_object_get(cfg, "owner") : json_null());
    json_object_set(st, "ephemeral", json_object_get(cfg, "ephemeral") ? json_object_get(cfg, "ephemeral")
                                                                       : json_false());
    json_object_set(st, "worker_memory", json_object_get(cfg, "worker_memory"));
    json_object_set(st, "worker_cores", json_object_get(cfg, "worker_cores"));
    /* Where its UIs are, through nbhub (api_sparkui.c). */
    char *ui = scluster_ui_path(id);
    json_object_set_new(st, "ui_path", json_sprintf("%s/", ui));
    free(ui);
    return st;
}

void api_spark_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    /* The caller's own (either layout); an admin's: everyone's. */
    char **ids = scluster_ids(a->home, c->admin ? NULL : c->name);
    json_t *arr = json_array();
    for (char **id = ids; *id; id++) {
        json_t *cfg = api_spark_config(a, *id);
        if (cfg) {
            json_t *j = api_spark_json(a, *id, cfg);
            /* stopped ones are history, not clusters */
            if (strcmp(json_string_value(json_object_get(j, "state")), "stopped")) json_array_append(arr, j);
            json_decref(j);
        }
        json_decref(cfg);
    }
    scluster_strv_free(ids);
    http_respond_json(req, 200, json_pack("{s:o}", "clusters", arr));
}

int api_spark_auth(api_t *a, http_req_t *req, api_ctx_t *c)
{
    /* /spark/.../ui is the UI proxy's shape; the API's is :name (?owner=) */
    char *id = !strncmp(http_req_raw_path(req), "/spark/", 7)
                   ? api_sparkui_resolve(a, req, c)
                   : api_spark_resolve(a, c, http_query(req, "owner"), http_param(req, "name"));
    if (!id) {
        api_error(req, 404, "not_found", "no such cluster");
        return -1;
    }
    c->cluster = http_req_strdup(req, id);
    free(id);
    return 0;
}

/* The cluster api_spark_auth found (its id), and its config, or an answered 404. */
static json_t *api_spark_find(api_t *a, http_req_t *req, const char **id)
{
    *id = api_ctx(req)->cluster;
    json_t *cfg = *id ? api_spark_config(a, *id) : NULL;
    if (!cfg) api_error(req, 404, "not_found", "no such cluster");
    return cfg;
}

void api_spark_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *id;
    json_t *cfg = api_spark_find(a, req, &id);
    if (!cfg) return;
    http_respond_json(req, 200, api_spark_json(a, id, cfg));
    json_decref(cfg);
}

/* ---- running nbhub spark up / down ------------------------------------------------ */

struct api_spark_job {
    uv_process_t proc;
    char        *what;
};

static void api_spark_closed(uv_handle_t *h)
{
    struct api_spark_job *j = h->data;
    free(j->what);
    free(j);
}

static void api_spark_exited(uv_process_t *p, int64_t status, int sig)
{
    struct api_spark_job *j = p->data;
    if (status || sig) LOG_W("spark command failed", "what=\"%s\" exit=%lld signal=%d", j->what, (long long)status, sig);
    else LOG_I("spark command done", "what=\"%s\"", j->what);
    uv_close((uv_handle_t *)p, api_spark_closed);
}

/* Start `nbhub spark ARGV...` for the cluster of that id, with its output
 * appended to DIR/api.log, and lock_fd (the directory's claim, or -1) as
 * its fd 3. */
static int api_spark_spawn(api_t *a, const char *id, char **argv, int lock_fd, nb_err_t *err)
{
    char *dir = api_spark_dir(a, id);
    nb_err_t e2;
    fs_mkdir_p(dir, 0700, &e2);
    char *logp = xasprintf("%s/api.log", dir);
    free(dir);
    /* The directory may be the owner's account's (isolation: system). */
    int fd = fs_open_regular(logp, O_WRONLY | O_CREAT | O_APPEND, 0600, NULL);
    free(logp);
    if (fd < 0) return err_set(err, fd, "cannot open the cluster's log: %s", strerror(-fd));
    struct api_spark_job *j = xcalloc(1, sizeof *j);
    j->what = xasprintf("spark %s %s", argv[2], id);
    j->proc.data = j;
    uv_stdio_container_t io[4] = { { UV_IGNORE, { 0 } }, { UV_INHERIT_FD, { .fd = fd } },
                                   { UV_INHERIT_FD, { .fd = fd } }, { UV_INHERIT_FD, { .fd = lock_fd } } };
    uv_process_options_t po = { .exit_cb = api_spark_exited, .file = argv[0], .args = argv,
                                .stdio_count = lock_fd >= 0 ? 4 : 3, .stdio = io };
    /* A user's cluster under isolation: system gets none of our environment. */
    char **env = a->isolation_system && !strcmp(argv[1], "__as-user") ? uacct_env(NULL) : NULL;
    po.env = env;
    int rc = uv_spawn(a->loop, &j->proc, &po);
    free(env);
    close(fd);
    if (rc < 0) {
        free(j->what);
        free(j);
        return err_set(err, rc, "cannot start nbhub spark: %s", uv_strerror(rc));
    }
    return 0;
}

/* Under isolation: system a user's cluster runs as the user's account (its
 * supervisor, master, workers and their Python), inside the user's cgroup,
 * so its JVMs count against the user's limits: `nbhub __as-user ACCOUNT
 * --chown-tree spark/~OWNER --cgroup nbhub/u-ACCOUNT=LIMITS --cgroup
 * nbhub/u-ACCOUNT/spark-NAME --self -- argv...`.  *out is NULL-terminated,
 * its strings malloc'd (api_spark_wrapped_free). */
static int api_spark_as_owner(api_t *a, const char *owner, const char *name, char **argv, char ***out,
                              nb_err_t *err)
{
    char acct[64];
    int rc = uacct_name(a->account_tmpl ? a->account_tmpl : UACCT_DEFAULT_TEMPLATE, owner, acct, sizeof acct, err);
    if (rc < 0) return rc;
    const iso_limits_t *ul = a->user_limits ? a->user_limits(a->limits_ud, owner) : NULL;
    size_t n = 0, cap = 32;
    for (char **p = argv; *p; p++) cap++;
    char **w = xcalloc(cap, sizeof *w);
    w[n++] = xstrdup(a->self_exe);
    w[n++] = xstrdup("__as-user");
    w[n++] = xstrdup(acct);
    if (a->create_accounts) w[n++] = xstrdup("--create");
    char *id = scluster_id(owner, name), *dir = scluster_dir(a->home, id), *odir = fs_dirname(dir);
    w[n++] = xstrdup("--chown-tree");
    w[n++] = odir;
    free(id);
    free(dir);
    if (a->cgroups) {
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

static void api_spark_wrapped_free(char **w)
{
    for (char **p = w; p && *p; p++) free(*p);
    free(w);
}

/* 0 if the caller may start one more cluster of workers x mb MB, else an
 * answered 429 (nbhub.yaml spark: max_clusters_per_user,
 * max_memory_per_user; admins are exempt).  id: the one being started
 * (claimed already: not counted twice). */
static int api_spark_quota(api_t *a, http_req_t *req, const api_ctx_t *c, const char *id, long workers, long mb)
{
    if (c->admin) return 0;
    struct scluster_usage u;
    scluster_usage(a->home, c->name, id, &u);
    long want = workers * mb;
    if (u.clusters + 1 > a->spark_max_clusters) {
        char *m = xasprintf("you have %d Spark cluster%s starting or up, the most a user may have "
                            "(spark: max_clusters_per_user in nbhub.yaml); stop one first",
                            u.clusters, u.clusters == 1 ? "" : "s");
        api_error(req, 429, "quota", m);
        free(m);
        return -1;
    }
    if (u.memory_mb + want > a->spark_max_memory_mb) {
        char *m = xasprintf("this cluster needs %ld MB (%ld worker%s x %ld MB) and your clusters starting or up "
                            "have %ld MB; a user may have %ld MB in all (spark: max_memory_per_user in nbhub.yaml)",
                            want, workers, workers == 1 ? "" : "s", mb, u.memory_mb, a->spark_max_memory_mb);
        api_error(req, 429, "quota", m);
        free(m);
        return -1;
    }
    return 0;
}

void api_spark_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    json_t *b;
    if (api_body_object(req, 0, API_MEMBERS("name", "workers", "worker_cores", "worker_memory", "connect"), &b) < 0)
        return;
    const char *name = json_string_value(json_object_get(b, "name"));
    json_t *jw = json_object_get(b, "workers"), *jc = json_object_get(b, "worker_cores");
    const char *mem = json_object_get(b, "worker_memory") ? json_string_value(json_object_get(b, "worker_memory")) : "1g";
    json_int_t workers = jw ? json_integer_value(jw) : 1, cores = jc ? json_integer_value(jc) : 1;
    const char *bad = NULL;
    if (!name || !scluster_name_ok(name)) bad = "name: letters, digits, '.', '_' and '-' expected";
    else if ((jw && !json_is_integer(jw)) || workers < 1 || workers > 64) bad = "workers: a whole number from 1 to 64";
    else if ((jc && !json_is_integer(jc)) || cores < 1 || cores > 1024) bad = "worker_cores: a whole number from 1 to 1024";
    else if (!mem || scluster_memory_ok(mem) < 0) bad = "worker_memory: a size such as 512m or 2g";
    else if (json_object_get(b, "connect") && !json_is_boolean(json_object_get(b, "connect"))) bad = "connect: true or false";
    else if (!scluster_owner_ok(c->name)) bad = "this user's name cannot own Spark clusters";
    if (bad) {
        api_error(req, 400, "bad_request", bad);
        json_decref(b);
        return;
    }
    /* Always the caller's own: ~USER/NAME (scluster.h).  Whatever other
     * users have is not looked at. */
    char *id = scluster_id(c->name, name), *dir = api_spark_dir(a, id);
    char *old = scluster_find(a->home, c->name, name);
    json_t *live = NULL;
    int lk = -1;
    nb_err_t err;
    if (old && strcmp(old, id)) {
        /* the caller's of the old layout, up: the same name twice */
        char *od = api_spark_dir(a, old);
        live = scluster_live_state(od);
        free(od);
    }
    if (!live && fs_mkdir_p(dir, 0700, &err) < 0) {
        api_fail(req, -EIO, &err);
        goto out;
    }
    if (!live) lk = scluster_lock(dir, -1, &err);
    if (lk == -EBUSY || live || (lk >= 0 && (live = scluster_live_state(dir)) != NULL)) {
        api_error(req, 409, "conflict", "you have a cluster of that name starting or up");
        goto out;
    }
    if (lk < 0) {
        api_fail(req, lk, &err);
        goto out;
    }
    if (api_spark_quota(a, req, c, id, (long)workers, scluster_memory_mb(mem)) < 0) goto out;
    /* What the limits count while `spark up` starts it (which rewrites it
     * with where Spark is). */
    json_t *cfg = json_pack("{s:s, s:s, s:I, s:I, s:s, s:b}", "name", name, "owner", c->name, "workers", workers,
                            "worker_cores", cores, "worker_memory", mem, "connect",
                            json_is_true(json_object_get(b, "connect")));
    char *text = json_dumps(cfg, JSON_INDENT(1) | JSON_SORT_KEYS), *cpath = xasprintf("%s/config.json", dir);
    json_decref(cfg);
    int rc = fs_write_atomic(cpath, text, strlen(text), 0, &err);
    free(text);
    free(cpath);
    if (rc < 0) {
        api_fail(req, rc, &err);
        goto out;
    }
    char *self = xstrdup(a->self_exe), *w = xasprintf("%lld", (long long)workers),
         *co = xasprintf("%lld", (long long)cores), *h = xstrdup(a->home);
    char *argv[] = { self, (char *)"spark", (char *)"up", (char *)name, (char *)"--home", h, (char *)"--owner",
                     (char *)c->name, (char *)"--workers", w, (char *)"--worker-cores", co,
                     (char *)"--worker-memory", (char *)mem, (char *)"--lock-fd", (char *)"3",
                     json_is_true(json_object_get(b, "connect")) ? (char *)"--connect" : NULL, NULL };
    /* The claim goes to the child as its fd 3; ours is closed below, so
     * from here the child (then the supervisor) alone holds it. */
    char **run = argv, **wrapped = NULL;
    if (a->isolation_system && (rc = api_spark_as_owner(a, c->name, name, argv, &wrapped, &err)) < 0) {
        api_fail(req, rc, &err);
        free(self);
        free(w);
        free(co);
        free(h);
        goto out;
    }
    if (wrapped) run = wrapped;
    rc = api_spark_spawn(a, id, run, lk, &err);
    api_spark_wrapped_free(wrapped);
    if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster starting", "name=%s by=%s", name, c->log_name);
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "name", name, "state", "starting", "owner", c->name,
                              "workers", workers, "worker_cores", cores, "worker_memory", mem);
        char *ui = scluster_ui_path(id);
        json_object_set_new(j, "ui_path", json_sprintf("%s/", ui));
        free(ui);
        http_respond_json(req, 202, j);
    }
    free(self);
    free(w);
    free(co);
    free(h);
out:
    if (lk >= 0) close(lk);
    json_decref(live);
    free(old);
    free(id);
    free(dir);
    json_decref(b);
}

void api_spark_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *id;
    json_t *cfg = api_spark_find(a, req, &id);
    if (!cfg) return;
    char *d = api_spark_dir(a, id);
    json_t *live = scluster_live_state(d);
    free(d);
    if (!live) {
        api_error(req, 409, "conflict", "the cluster is not running");
        json_decref(cfg);
        return;
    }
    json_decref(live);
    /* `spark down NAME [--owner O]` finds this very directory: ~O/NAME for
     * an id of that form, NAME (the operator's or the old layout's) else. */
    const char *name = json_string_value(json_object_get(cfg, "name"));
    const char *owner = id[0] == '~' ? json_string_value(json_object_get(cfg, "owner")) : NULL;
    if (!name) name = strrchr(id, '/') ? strrchr(id, '/') + 1 : id;
    char *self = xstrdup(a->self_exe), *h = xstrdup(a->home), *n = xstrdup(name), *o = owner ? xstrdup(owner) : NULL;
    char *argv[] = { self, (char *)"spark", (char *)"down", n, (char *)"--home", h,
                     o ? (char *)"--owner" : NULL, o, NULL };
    json_decref(cfg);
    nb_err_t err;
    int rc = api_spark_spawn(a, id, argv, -1, &err);
    if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster stopping", "name=%s by=%s", n, api_ctx(req)->log_name);
        http_respond_json(req, 202, json_pack("{s:s, s:s}", "name", n, "state", "stopping"));
    }
    free(self);
    free(h);
    free(n);
    free(o);
}
