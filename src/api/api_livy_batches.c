/*
 * api_livy_batches — Livy's batch routes at /livy/batches (docs/livy.md):
 * submit, list, get, state, log, delete.  The processes are
 * src/livy/livy_batch.c's; this file checks a request and turns it into
 * spark-submit's words.
 *
 * What a request may name.  A batch is code of the user's (as a notebook
 * is), so what it runs is not the question; where its files come from is:
 *   - a URL (hdfs:, s3a:, http(s):, local: ...) is Spark's business and is
 *     passed as it is (local: means "on every node", Spark's meaning);
 *   - "~/x" and relative paths are in the user's workspace (iso/
 *     workspace.h): under isolation: system spark-submit runs as the
 *     user's account in its home, so the account's rights decide; under
 *     shared, where every user's process is nbhub's own account, the path
 *     must stay inside <home>/workspaces/USER (lexically and on disk);
 *   - an absolute path: under system the account's rights decide again;
 *     under shared only admins and trusted users may name one (the same
 *     rule as a flow's paths outside its directory).
 * A list entry may not hold a comma (spark-submit splits --jars a,b), and
 * the application may not start with '-' (it would be read as an option).
 *
 * Visibility: a batch is its owner's (the caller who submitted it); others
 * get the 404 of a batch that does not exist, admins see all.  proxyUser
 * (admins only, api_livy_proxy_user) names the user whose account runs it.
 */
#include "api/api_int.h"
#include "iso/workspace.h"
#include "livy/livy_batch.h"
#include "store/store_livy.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BATCH_LOG_LINES 100

static const char *const batch_members[] = {
    "file", "proxyUser", "className", "args", "jars", "pyFiles", "files", "archives", "driverMemory",
    "driverCores", "executorMemory", "executorCores", "numExecutors", "queue", "name", "conf", NULL
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

/* Admins and trusted users may name paths outside their workspace under
 * isolation: shared. */
static int batch_trusted(api_t *a, const api_ctx_t *c)
{
    if (c->admin) return 1;
    for (char **p = a->trusted_users; p && *p; p++)
        if (!strcmp(*p, c->name)) return 1;
    store_user_t u;
    int t = store_user_by_name(a->store, c->name, &u, NULL) == 0 && u.trusted;
    if (t || u.name) store_user_clear(&u);
    return t;
}

/* "hdfs:", "local:", "https:" ... : a URL scheme of 2+ characters (so
 * that "C:" style names are not one). */
static size_t url_scheme_len(const char *s)
{
    size_t i = 0;
    while ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
           s[i] == '+' || s[i] == '.' || s[i] == '-')
        i++;
    return i >= 2 && s[i] == ':' && !(s[0] >= '0' && s[0] <= '9') ? i : 0;
}

/* One file named by a request, as spark-submit will get it: 0 and *out
 * (new string), or -1 with why in msg. */
static int batch_path(api_t *a, const api_ctx_t *c, const char *run_as, int trusted, const char *in,
                      char **out, char *msg, size_t n)
{
    *out = NULL;
    size_t sl = url_scheme_len(in);
    const char *p = in;
    if (sl && strncasecmp(in, "file:", 5) != 0) {
        *out = xstrdup(in);
        return 0;
    }
    if (sl) {
        p = in + 5;
        if (!strncmp(p, "//", 2)) p += 2;   /* file:///x -> /x */
    }
    nb_err_t err;
    err_clear(&err);
    if (p[0] == '/') {
        if (!a->isolation_system && !trusted) {
            snprintf(msg, n, "'%.200s': a path outside your workspace (only admins and trusted users "
                             "may name one here); use ~/PATH", in);
            return -1;
        }
        *out = xstrdup(p);
        return 0;
    }
    /* ~/x or x: in the workspace */
    char *rel = NULL;
    const char *r = p;
    if (workspace_is_tilde(p)) {
        if (workspace_rel(p, &rel, &err) < 0) goto bad;
    } else {
        char *t = xasprintf("~/%s", p);
        int rc = workspace_rel(t, &rel, &err);
        free(t);
        if (rc < 0) goto bad;
    }
    (void)r;
    if (a->isolation_system) {
        /* relative to the account's home, where spark-submit starts */
        *out = rel;
        return 0;
    }
    char *dir = xasprintf("%s/workspaces/%s", a->home, run_as);
    char *full = NULL;
    int rc = workspace_path(dir, rel, &full, &err);
    if (rc == 0) rc = workspace_inside(dir, full, &err);
    free(dir);
    free(rel);
    rel = NULL;   /* (bad: frees it) */
    if (rc < 0) {
        free(full);
        goto bad;
    }
    (void)c;
    *out = full;
    return 0;
bad:
    free(rel);
    snprintf(msg, n, "'%.150s': %.180s", in, err.msg);
    return -1;
}

/* A list member (jars, pyFiles, files, archives) as one spark-submit
 * option: "--jars a,b". */
static int batch_list_opt(api_t *a, const api_ctx_t *c, const char *run_as, int trusted,
                          const json_t *body, const char *member, const char *opt, char ***argv,
                          size_t *argc, char *msg, size_t n)
{
    json_t *l = json_object_get(body, member);
    if (!l || json_is_null(l) || !json_array_size(l)) return 0;
    buf_t b = BUF_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(l, i, e) {
        const char *s = json_string_value(e);
        if (strchr(s, ',')) {
            snprintf(msg, n, "'%s' entries may not contain a comma (spark-submit splits on it)", member);
            buf_free(&b);
            return -1;
        }
        char *p;
        if (batch_path(a, c, run_as, trusted, s, &p, msg, n) < 0) {
            buf_free(&b);
            return -1;
        }
        buf_printf(&b, "%s%s", i ? "," : "", p);
        free(p);
    }
    sv_add(argv, argc, opt);
    sv_add(argv, argc, b.data);
    buf_free(&b);
    return 0;
}

static void batch_str_opt(const json_t *body, const char *member, const char *opt, char ***argv, size_t *argc)
{
    const char *s = json_string_value(json_object_get(body, member));
    if (!s) return;
    sv_add(argv, argc, opt);
    sv_add(argv, argc, s);
}

static void batch_int_opt(const json_t *body, const char *member, const char *opt, char ***argv, size_t *argc)
{
    json_t *v = json_object_get(body, member);
    if (!json_is_integer(v)) return;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    sv_add(argv, argc, opt);
    sv_add(argv, argc, num);
}

/* Livy's batch object. */
static json_t *batch_json(const store_livy_batch_t *b, int with_log)
{
    json_t *j = json_pack("{s:I, s:o, s:s, s:o, s:s, s:o, s:{s:n, s:n}}", "id", (json_int_t)b->id, "name",
                          api_json_str(b->name), "owner", b->owner ? b->owner : "", "proxyUser",
                          api_json_str(b->proxy_user), "state", b->state ? b->state : "dead", "appId",
                          api_json_str(b->app_id), "appInfo", "driverLogUrl", "sparkUiUrl");
    if (with_log) json_object_set_new(j, "log", api_livy_log_tail(b->log_path, BATCH_LOG_LINES));
    return j;
}

/* The batch in path parameter :id if the caller may see it: 0 and *b
 * (refreshed), or answered (404, ...) and -1. */
static int batch_load(api_t *a, http_req_t *req, store_livy_batch_t *b)
{
    int64_t id;
    if (api_livy_path_id(req, "id", "Batch", &id) < 0) return -1;
    const api_ctx_t *c = api_ctx(req);
    nb_err_t err;
    err_clear(&err);
    int rc = store_livy_batch_get(a->store, id, b, &err);
    if (rc == 0 && !c->admin && b->user_id != c->uid) {
        store_livy_batch_clear(b);
        rc = -ENOENT;
    }
    if (rc == -ENOENT) {
        char msg[80];
        snprintf(msg, sizeof msg, "Batch '%lld' not found.", (long long)id);
        api_livy_error(req, 404, msg);
        return -1;
    }
    if (rc) {
        api_livy_fail(req, rc, &err);
        return -1;
    }
    if (a->livy_batches) livy_batch_refresh(a->livy_batches, b);
    return 0;
}

void api_livy_batches_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    if (!a->livy_batches) {
        api_livy_error(req, 503, "batches are not available on this server");
        return;
    }
    json_t *body;
    if (api_livy_body(req, 0, batch_members, &body) < 0) return;
    char **argv = NULL, **conf = NULL;
    size_t argc = 0, nconf = 0;
    char msg[400] = "";
    const char *proxy = NULL;
    if (api_livy_check_spark(req, body) < 0 || api_livy_proxy_user(req, c, body, &proxy) < 0) goto out;
    const char *file = json_string_value(json_object_get(body, "file"));
    if (!file || !*file) {
        api_livy_error(req, 400, "'file' (the application: a .py file or a .jar) is required");
        goto out;
    }
    if (file[0] == '-') {
        api_livy_error(req, 400, "'file' may not start with '-'");
        goto out;
    }
    json_t *cls = json_object_get(body, "className");
    if (cls && !json_is_null(cls) && (!json_is_string(cls) || !json_string_length(cls))) {
        api_livy_error(req, 400, "'className' must be a string");
        goto out;
    }
    json_t *args = json_object_get(body, "args");
    if (args && !json_is_null(args)) {
        size_t i;
        json_t *e;
        int ok = json_is_array(args);
        json_array_foreach(args, i, e) ok = ok && json_is_string(e);
        if (!ok) {
            api_livy_error(req, 400, "'args' must be a list of strings");
            goto out;
        }
    }
    /* The account that runs it: the proxy user's (admins only), else the caller's. */
    const char *run_as = proxy ? proxy : c->name;
    if (proxy && strcmp(proxy, c->name) != 0) {
        store_user_t pu;
        nb_err_t e2;
        if (store_user_by_name(a->store, proxy, &pu, &e2) < 0) {
            snprintf(msg, sizeof msg, "proxyUser '%s' is not a user of this server", api_log_name(req, proxy));
            api_livy_error(req, 400, msg);
            goto out;
        }
        store_user_clear(&pu);
    }
    int trusted = batch_trusted(a, c);
    /* spark-submit's options, then the application and its arguments */
    batch_str_opt(body, "className", "--class", &argv, &argc);
    batch_str_opt(body, "driverMemory", "--driver-memory", &argv, &argc);
    batch_int_opt(body, "driverCores", "--driver-cores", &argv, &argc);
    batch_str_opt(body, "executorMemory", "--executor-memory", &argv, &argc);
    batch_int_opt(body, "executorCores", "--executor-cores", &argv, &argc);
    batch_int_opt(body, "numExecutors", "--num-executors", &argv, &argc);
    batch_str_opt(body, "queue", "--queue", &argv, &argc);
    if (batch_list_opt(a, c, run_as, trusted, body, "jars", "--jars", &argv, &argc, msg, sizeof msg) < 0 ||
        batch_list_opt(a, c, run_as, trusted, body, "pyFiles", "--py-files", &argv, &argc, msg, sizeof msg) < 0 ||
        batch_list_opt(a, c, run_as, trusted, body, "files", "--files", &argv, &argc, msg, sizeof msg) < 0 ||
        batch_list_opt(a, c, run_as, trusted, body, "archives", "--archives", &argv, &argc, msg, sizeof msg) < 0) {
        api_livy_error(req, 400, msg);
        goto out;
    }
    char *app;
    if (batch_path(a, c, run_as, trusted, file, &app, msg, sizeof msg) < 0) {
        api_livy_error(req, 400, msg);
        goto out;
    }
    sv_add(&argv, &argc, app);
    free(app);
    if (args && json_is_array(args)) {
        size_t i;
        json_t *e;
        json_array_foreach(args, i, e) sv_add(&argv, &argc, json_string_value(e));
    }
    json_t *cj = json_object_get(body, "conf");
    if (json_is_object(cj)) {
        const char *k;
        json_t *v;
        json_object_foreach(cj, k, v) {
            if (!*k || strpbrk(k, "= \t\r\n")) {
                snprintf(msg, sizeof msg, "'conf' keys are Spark settings such as spark.executor.memory, not '%s'",
                         api_log_name(req, k));
                api_livy_error(req, 400, msg);
                goto out;
            }
            char *t = json_is_string(v) ? xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
            char *kv = xasprintf("%s=%s", k, t);
            sv_add(&conf, &nconf, kv);
            free(kv);
            free(t);
        }
    }
    char *cwd = NULL;
    if (!a->isolation_system) {
        /* relative paths the application opens itself start in the workspace */
        char *ws = xasprintf("%s/workspaces/%s", a->home, run_as);
        struct stat stw;
        if (stat(ws, &stw) == 0 && S_ISDIR(stw.st_mode)) cwd = ws;
        else free(ws);
    }
    char *reqtext = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    livy_batch_spec_t spec = {
        .owner_id = c->uid, .run_as = run_as, .proxy_user = proxy,
        .name = json_string_value(json_object_get(body, "name")), .request_json = reqtext,
        .submit_args = argv, .conf = conf, .cwd = cwd,
    };
    int64_t id = 0;
    nb_err_t err;
    err_clear(&err);
    int rc = livy_batch_submit(a->livy_batches, &spec, &id, &err);
    free(reqtext);
    free(cwd);
    if (rc < 0 && id == 0) {
        api_livy_fail(req, rc, &err);
        goto out;
    }
    LOG_I("livy batch submitted", "user=%s batch=%lld proxy_user=%s ok=%d", c->log_name, (long long)id,
          proxy ? api_log_name(req, proxy) : "-", rc == 0);
    /* Even a batch whose process could not start exists now (dead, with
     * the reason in the log), as Livy's does. */
    store_livy_batch_t b;
    if ((rc = store_livy_batch_get(a->store, id, &b, &err)) < 0) {
        api_livy_fail(req, rc, &err);
        goto out;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/batches/%lld", (long long)id);
    http_set_header(req, "Location", loc);
    http_respond_json(req, 201, batch_json(&b, 1));
    store_livy_batch_clear(&b);
out:
    sv_free(argv);
    sv_free(conf);
    json_decref(body);
}

void api_livy_batches_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    int64_t from, size;
    if (api_livy_page(req, &from, &size) < 0) return;
    store_livy_batches_t l;
    nb_err_t err;
    err_clear(&err);
    int rc = store_livy_batches_list(a->store, c->admin ? 0 : c->uid, 0, &l, &err);
    if (rc) {
        api_livy_fail(req, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < l.n; i++) {
        if ((int64_t)i >= from && (int64_t)i - from < size) {
            if (a->livy_batches) livy_batch_refresh(a->livy_batches, &l.v[i]);
            json_array_append_new(items, batch_json(&l.v[i], 1));
        } else {
            json_array_append_new(items, json_null());   /* outside the page: never shown */
        }
    }
    store_livy_batches_free(&l);
    http_respond_json(req, 200, api_livy_page_json(items, "sessions", from, size));
}

void api_livy_batch_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_livy_batch_t b;
    if (batch_load(a, req, &b) < 0) return;
    http_respond_json(req, 200, batch_json(&b, 1));
    store_livy_batch_clear(&b);
}

void api_livy_batch_state(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_livy_batch_t b;
    if (batch_load(a, req, &b) < 0) return;
    http_respond_json(req, 200, json_pack("{s:I, s:s}", "id", (json_int_t)b.id, "state", b.state));
    store_livy_batch_clear(&b);
}

void api_livy_batch_log(http_req_t *req, void *ud)
{
    api_t *a = ud;
    store_livy_batch_t b;
    if (batch_load(a, req, &b) < 0) return;
    json_t *j = api_livy_log_json(req, b.id, b.log_path);
    if (j) http_respond_json(req, 200, j);
    store_livy_batch_clear(&b);
}

void api_livy_batch_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    store_livy_batch_t b;
    if (batch_load(a, req, &b) < 0) return;
    nb_err_t err;
    err_clear(&err);
    int rc = a->livy_batches ? livy_batch_kill(a->livy_batches, b.id, &err) : 0;
    if (rc < 0) {
        store_livy_batch_clear(&b);
        api_livy_fail(req, rc, &err);
        return;
    }
    LOG_I("livy batch deleted", "user=%s batch=%lld", c->log_name, (long long)b.id);
    store_livy_batch_clear(&b);
    http_respond_json(req, 200, json_pack("{s:s}", "msg", "deleted"));
}
