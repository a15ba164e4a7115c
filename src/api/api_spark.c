/*
 * api_spark — Spark clusters through the REST API (docs/spark.md):
 *
 *   GET    /api/v1/spark/clusters          the clusters the caller may see
 *   POST   /api/v1/spark/clusters          start one, owned by the caller
 *   GET    /api/v1/spark/clusters/:name    its state (the supervisor's state.json)
 *   DELETE /api/v1/spark/clusters/:name    stop it
 *
 * Ownership: a cluster records its owner in config.json.  A user sees, uses
 * (spark: {cluster: NAME} in a flow they own) and stops only their own;
 * an admin sees and stops all, and those started from the command line
 * without --owner.  Another user's cluster is a 404, so names do not leak.
 *
 * The work is `nbhub spark up|down` as a child process, so the loop never
 * waits for a JVM: POST and DELETE answer 202 at once, and the state is
 * polled with GET (state "starting" until every worker is alive).  The
 * supervisor runs in its own session: a cluster outlives a restart of
 * nbhub serve, as one started by `nbhub spark up` does.
 */
#include "api/api_int.h"
#include "spark/scluster.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *api_spark_dir(const api_t *a, const char *name)
{
    return name ? xasprintf("%s/spark/%s", a->home, name) : xasprintf("%s/spark", a->home);
}

/* config.json of a cluster (new reference) or NULL. */
static json_t *api_spark_config(const api_t *a, const char *name)
{
    char *d = api_spark_dir(a, name);
    json_t *j = scluster_config(d);
    free(d);
    return j;
}

static int api_spark_visible(const api_ctx_t *c, const json_t *cfg)
{
    const char *owner = json_string_value(json_object_get(cfg, "owner"));
    return c->admin || (owner && !strcmp(owner, c->name));
}

/* The cluster as the API shows it: the live state, or its config with
 * state "starting" while `spark up` waits, "stopped" when nothing runs. */
static json_t *api_spark_json(const api_t *a, const char *name, const json_t *cfg)
{
    char *d = api_spark_dir(a, name);
    json_t *st = scluster_live_state(d);
    free(d);
    if (!st)
        st = json_pack("{s:s, s:s, s:O?}", "name", name, "state", "stopped", "workers",
                       json_object_get(cfg, "workers"));
    json_object_set(st, "owner", json_object_get(cfg, "owner") ? json_object_get(cfg, "owner") : json_null());
    json_object_set(st, "ephemeral", json_object_get(cfg, "ephemeral") ? json_object_get(cfg, "ephemeral")
                                                                       : json_false());
    json_object_set(st, "worker_memory", json_object_get(cfg, "worker_memory"));
    json_object_set(st, "worker_cores", json_object_get(cfg, "worker_cores"));
    /* Where its UIs are, through nbhub (api_sparkui.c). */
    char *ui = scluster_ui_path(name);
    json_object_set_new(st, "ui_path", json_sprintf("%s/", ui));
    free(ui);
    return st;
}

void api_spark_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    char *base = api_spark_dir(a, NULL);
    DIR *d = opendir(base);
    free(base);
    json_t *arr = json_array();
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!scluster_name_ok(e->d_name)) continue;
        json_t *cfg = api_spark_config(a, e->d_name);
        if (cfg && api_spark_visible(c, cfg)) {
            json_t *j = api_spark_json(a, e->d_name, cfg);
            /* stopped ones are history, not clusters */
            if (strcmp(json_string_value(json_object_get(j, "state")), "stopped")) json_array_append(arr, j);
            json_decref(j);
        }
        json_decref(cfg);
    }
    if (d) closedir(d);
    http_respond_json(req, 200, json_pack("{s:o}", "clusters", arr));
}

int api_spark_auth(api_t *a, http_req_t *req, const api_ctx_t *c)
{
    const char *name = http_param(req, "name");
    json_t *cfg = name && scluster_name_ok(name) ? api_spark_config(a, name) : NULL;
    int ok = cfg && api_spark_visible(c, cfg);
    json_decref(cfg);
    if (!ok) api_error(req, 404, "not_found", "no such cluster");
    return ok ? 0 : -1;
}

/* The named cluster's config (visible: api_spark_auth ran), or an answered 404. */
static json_t *api_spark_find(api_t *a, http_req_t *req, const char **name)
{
    *name = http_param(req, "name");
    json_t *cfg = api_spark_config(a, *name);
    if (!cfg) api_error(req, 404, "not_found", "no such cluster");
    return cfg;
}

void api_spark_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *name;
    json_t *cfg = api_spark_find(a, req, &name);
    if (!cfg) return;
    http_respond_json(req, 200, api_spark_json(a, name, cfg));
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

/* Start `nbhub spark ARGV...` with its output appended to DIR/api.log. */
static int api_spark_spawn(api_t *a, const char *name, char **argv, nb_err_t *err)
{
    char *dir = api_spark_dir(a, name);
    nb_err_t e2;
    fs_mkdir_p(dir, 0700, &e2);
    char *logp = xasprintf("%s/api.log", dir);
    free(dir);
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    free(logp);
    if (fd < 0) return err_set(err, -errno, "cannot open the cluster's log: %s", strerror(errno));
    struct api_spark_job *j = xcalloc(1, sizeof *j);
    j->what = xasprintf("spark %s %s", argv[2], name);
    j->proc.data = j;
    uv_stdio_container_t io[3] = { { UV_IGNORE, { 0 } }, { UV_INHERIT_FD, { .fd = fd } }, { UV_INHERIT_FD, { .fd = fd } } };
    uv_process_options_t po = { .exit_cb = api_spark_exited, .file = argv[0], .args = argv,
                                .stdio_count = 3, .stdio = io };
    int rc = uv_spawn(a->loop, &j->proc, &po);
    close(fd);
    if (rc < 0) {
        free(j->what);
        free(j);
        return err_set(err, rc, "cannot start nbhub spark: %s", uv_strerror(rc));
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
    if (bad) {
        api_error(req, 400, "bad_request", bad);
        json_decref(b);
        return;
    }
    json_t *cfg = api_spark_config(a, name);
    char *d = api_spark_dir(a, name);
    json_t *live = scluster_live_state(d);
    free(d);
    if (live || (cfg && !api_spark_visible(c, cfg) && json_object_get(cfg, "owner"))) {
        /* up, or someone else's name: either way not yours to start */
        api_error(req, 409, "conflict", "a cluster of that name exists");
        json_decref(live);
        json_decref(cfg);
        json_decref(b);
        return;
    }
    json_decref(cfg);
    char *self = xstrdup(a->self_exe), *w = xasprintf("%lld", (long long)workers),
         *co = xasprintf("%lld", (long long)cores), *h = xstrdup(a->home);
    char *argv[] = { self, (char *)"spark", (char *)"up", (char *)name, (char *)"--home", h, (char *)"--owner",
                     (char *)c->name, (char *)"--workers", w, (char *)"--worker-cores", co,
                     (char *)"--worker-memory", (char *)mem,
                     json_is_true(json_object_get(b, "connect")) ? (char *)"--connect" : NULL, NULL };
    nb_err_t err;
    int rc = api_spark_spawn(a, name, argv, &err);
    if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster starting", "name=%s by=%s", name, c->log_name);
        http_respond_json(req, 202, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "name", name, "state", "starting",
                                              "owner", c->name, "workers", workers, "worker_cores", cores,
                                              "worker_memory", mem));
    }
    free(self);
    free(w);
    free(co);
    free(h);
    json_decref(b);
}

void api_spark_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const char *name;
    json_t *cfg = api_spark_find(a, req, &name);
    if (!cfg) return;
    json_decref(cfg);
    char *d = api_spark_dir(a, name);
    json_t *live = scluster_live_state(d);
    free(d);
    if (!live) {
        api_error(req, 409, "conflict", "the cluster is not running");
        return;
    }
    json_decref(live);
    char *self = xstrdup(a->self_exe), *h = xstrdup(a->home);
    char *argv[] = { self, (char *)"spark", (char *)"down", (char *)name, (char *)"--home", h, NULL };
    nb_err_t err;
    int rc = api_spark_spawn(a, name, argv, &err);
    if (rc < 0) api_fail(req, rc, &err);
    else {
        LOG_I("spark cluster stopping", "name=%s by=%s", name, api_ctx(req)->log_name);
        http_respond_json(req, 202, json_pack("{s:s, s:s}", "name", name, "state", "stopping"));
    }
    free(self);
    free(h);
}
