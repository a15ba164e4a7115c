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
 * the scheduler's (max_active_tasks) and the hub's (a notebook server's,
 * config.json "server") are sized by the profile: neither counts.
 *
 * The starting and stopping are spark/sowned.c's, which the hub shares
 * (hub_spark.c): one start per cluster however many requests race (the
 * directory's claim, taken before we answer: a second POST of the name
 * finds it held, 409), `nbhub spark up|down` as a child process so the
 * loop never waits for a JVM (POST and DELETE answer 202 at once; the
 * state is polled with GET, "starting" until every worker is alive), run
 * as the owner under isolation: system.
 */
#include "api/api_int.h"
#include "spark/scluster.h"
#include "spark/sowned.h"
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
    /* a notebook server's (the hub's, hub_spark.c): goes when it stops */
    if (json_is_string(json_object_get(cfg, "server"))) json_object_set(st, "server", json_object_get(cfg, "server"));
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

/* ---- starting and stopping: spark/sowned.c ------------------------------------- */

/* What sowned needs of ours (the isolation settings, where nbhub is). */
static sowned_env_t api_spark_env(const api_t *a)
{
    return (sowned_env_t){ .loop = a->loop, .home = a->home, .self_exe = a->self_exe,
                           .isolation_system = a->isolation_system, .account_tmpl = a->account_tmpl,
                           .create_accounts = a->create_accounts, .cgroups = a->cgroups,
                           .user_limits = a->user_limits, .limits_ud = a->limits_ud };
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
    /* Always the caller's own (~USER/NAME); admins are exempt from the
     * limits (they can start clusters from the command line anyway). */
    sowned_env_t e = api_spark_env(a);
    sowned_quota_t q = { a->spark_max_clusters, a->spark_max_memory_mb };
    sowned_spec_t s = { .owner = c->name, .name = name, .workers = (long)workers, .cores = (long)cores,
                        .worker_memory = mem, .connect = json_is_true(json_object_get(b, "connect")) };
    nb_err_t err;
    int rc = sowned_create(&e, &s, c->admin ? NULL : &q, NULL, NULL, &err);
    if (rc == -EBUSY) api_error(req, 409, "conflict", "you have a cluster of that name starting or up");
    else if (rc == -EDQUOT) api_error(req, 429, "quota", err.msg);
    else if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster starting", "name=%s by=%s", name, c->log_name);
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "name", name, "state", "starting", "owner", c->name,
                              "workers", workers, "worker_cores", cores, "worker_memory", mem);
        char *id = scluster_id(c->name, name), *ui = scluster_ui_path(id);
        json_object_set_new(j, "ui_path", json_sprintf("%s/", ui));
        free(ui);
        free(id);
        http_respond_json(req, 202, j);
    }
    json_decref(b);
}

void api_spark_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *id;
    json_t *cfg = api_spark_find(a, req, &id);
    if (!cfg) return;
    const char *name = json_string_value(json_object_get(cfg, "name"));
    char *n = xstrdup(name ? name : strrchr(id, '/') ? strrchr(id, '/') + 1 : id);
    json_decref(cfg);
    sowned_env_t e = api_spark_env(a);
    nb_err_t err;
    int rc = sowned_remove(&e, id, NULL, NULL, &err);
    if (rc == -ENOENT) api_error(req, 409, "conflict", "the cluster is not running");
    else if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster stopping", "name=%s by=%s", n, api_ctx(req)->log_name);
        http_respond_json(req, 202, json_pack("{s:s, s:s}", "name", n, "state", "stopping"));
    }
    free(n);
}
