/*
 * api_livy — the Livy API at /livy/ (docs/livy.md): Livy's conventions,
 * shared with the batches (api_livy_batches.c), and the routes of
 * interactive sessions and their statements (the session manager is
 * src/livy/livy.h).
 *
 * Livy's clients read its shapes, not ours: sparkmagic shows `msg` of an
 * error and retries anything that is not the status it expects, Airflow's
 * LivyHook reads `msg` too.  So every answer under /livy/ is in Livy's
 * shape, errors included: {"msg": "..."}, lists {"from", "total",
 * "sessions"} (batches too, as in Livy), logs {"id", "from", "total",
 * "log"} with Livy's paging rule (no ?from: the last ?size lines).
 * Authentication refusals (401, CSRF's 403) come from api_auth_before
 * before a route runs and keep nbhub's shape.
 *
 * Who sees what: a user their own sessions, an admin everyone's; another
 * user's session id is a 404 like one that does not exist.  Every request
 * naming a session is its heartbeat (Livy's rule).  proxyUser is for
 * admins (403 otherwise, as Livy's impersonation check).
 */
#include "api/api_int.h"
#include "livy/livy_cluster.h"
#include "livy/livy.h"
#include "store/store_livy.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void api_livy_error(http_req_t *req, int status, const char *msg)
{
    http_respond_json(req, status, json_pack("{s:s}", "msg", msg ? msg : ""));
}

void api_livy_fail(http_req_t *req, int rc, const nb_err_t *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    switch (rc) {
    case -ENOENT:
        api_livy_error(req, 404, msg ? msg : "not found");
        return;
    case -EACCES:
    case -EPERM:
        api_livy_error(req, 403, msg ? msg : "forbidden");
        return;
    case -EINVAL:
    case -EEXIST:
    case -ERANGE:
    case -E2BIG:
        /* Livy answers IllegalArgumentException (a duplicate session name
         * too) with 400. */
        api_livy_error(req, 400, msg ? msg : "bad request");
        return;
    case -EBUSY:
    case -ESTALE:
        api_livy_error(req, 409, msg ? msg : "conflict");
        return;
    case -ESHUTDOWN:
    case -EAGAIN:
    case -ENOTSUP:
        api_livy_error(req, 503, msg ? msg : "unavailable");
        return;
    default:
        LOG_E("livy api internal error", "method=%s path=\"%s\" rc=%d error=\"%s\"",
              http_req_method(req), http_req_path(req), rc, msg ? msg : "");
        api_livy_error(req, 500, "internal error (see the server log)");
        return;
    }
}

static void livy_body_bad(http_req_t *req, const char *msg)
{
    api_livy_error(req, 400, msg);
}

int api_livy_body(http_req_t *req, int allow_empty, const char *const *members, json_t **out)
{
    /* Livy (Jackson) refuses unknown fields too: a misspelt
     * "executorMemroy" must not be silently ignored. */
    return api_body_parse(req, allow_empty, members, out, livy_body_bad, "Unrecognized field");
}

static int query_int(http_req_t *req, const char *name, int64_t min, int64_t dflt, int64_t *out)
{
    const char *s = http_query(req, name);
    *out = dflt;
    if (!s) return 0;
    if (api_parse_i64(s, min, INT32_MAX, out) == 0) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "'%s' must be an integer >= %lld", name, (long long)min);
    api_livy_error(req, 400, msg);
    return -1;
}

int api_livy_page(http_req_t *req, int64_t *from, int64_t *size)
{
    if (query_int(req, "from", 0, 0, from) < 0) return -1;
    return query_int(req, "size", 0, API_LIVY_PAGE_DEFAULT, size);
}

json_t *api_livy_page_json(json_t *items, const char *key, int64_t from, int64_t size)
{
    int64_t total = (int64_t)json_array_size(items);
    json_t *page = json_array();
    for (int64_t i = from; i < total && i - from < size; i++)
        json_array_append(page, json_array_get(items, (size_t)i));
    json_decref(items);
    return json_pack("{s:I, s:I, s:o}", "from", (json_int_t)from, "total", (json_int_t)total, key, page);
}

/* The lines of the last API_LIVY_LOG_WINDOW bytes of path (a first line
 * cut by the window is dropped), as a new array.  A batch's log is in its
 * account's directory under isolation: system: never a link (to a file
 * only root may read, which would be answered to the account's user), a
 * FIFO (the loop would wait on it) or a file with another hard link. */
static json_t *log_lines(const char *path)
{
    json_t *a = json_array();
    int fd = path ? fs_open_regular(path, O_RDONLY, 0, NULL) : -1;
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f && fd >= 0) close(fd);
    if (!f) return a;
    struct stat st;
    long off = 0;
    if (fstat(fileno(f), &st) == 0 && st.st_size > API_LIVY_LOG_WINDOW) {
        off = (long)(st.st_size - API_LIVY_LOG_WINDOW);
        fseek(f, off, SEEK_SET);
    }
    buf_t b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
    fclose(f);
    const char *p = b.data ? b.data : "", *end = p + b.len;
    if (off > 0) {
        const char *nl = memchr(p, '\n', b.len);
        p = nl ? nl + 1 : end;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        /* Kernel output is not always UTF-8: such a line is replaced
         * rather than failing the whole answer. */
        json_t *line = json_stringn(p, (size_t)(e - p));
        json_array_append_new(a, line ? line : json_string("<line not UTF-8>"));
        p = nl ? nl + 1 : end;
    }
    buf_free(&b);
    return a;
}

json_t *api_livy_log_tail(const char *path, int n)
{
    json_t *all = log_lines(path);
    size_t total = json_array_size(all), from = total > (size_t)n ? total - (size_t)n : 0;
    json_t *a = json_array();
    for (size_t i = from; i < total; i++) json_array_append(a, json_array_get(all, i));
    json_decref(all);
    return a;
}

json_t *api_livy_log_json(http_req_t *req, int64_t id, const char *path)
{
    int64_t from, size;
    const char *fs = http_query(req, "from"), *ss = http_query(req, "size");
    from = -1;
    size = 100;
    if ((fs && api_parse_i64(fs, INT32_MIN, INT32_MAX, &from) < 0) ||
        (ss && api_parse_i64(ss, INT32_MIN, INT32_MAX, &size) < 0)) {
        api_livy_error(req, 400, "'from' and 'size' must be integers");
        return NULL;
    }
    json_t *all = log_lines(path);
    int64_t total = (int64_t)json_array_size(all);
    /* Livy's SessionServlet.serializeLogs: size < 0 is everything, no
     * (or a negative) from is the last size lines. */
    if (size < 0) size = total;
    if (from < 0) from = total - size > 0 ? total - size : 0;
    json_t *page = json_array();
    for (int64_t i = from; i < total && i - from < size; i++)
        json_array_append(page, json_array_get(all, (size_t)i));
    json_decref(all);
    return json_pack("{s:I, s:I, s:I, s:o}", "id", (json_int_t)id, "from", (json_int_t)from, "total",
                     (json_int_t)total, "log", page);
}

int api_livy_proxy_user(http_req_t *req, const api_ctx_t *c, const json_t *body, const char **out)
{
    *out = NULL;
    json_t *p = json_object_get(body, "proxyUser");
    if (!p || json_is_null(p)) return 0;
    if (!json_is_string(p) || !json_string_length(p)) {
        api_livy_error(req, 400, "'proxyUser' must be a user name");
        return -1;
    }
    const char *u = json_string_value(p);
    if (!c->admin && strcmp(u, c->name) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "User '%s' not allowed to impersonate '%s'.", c->log_name ? c->log_name : c->name,
                 api_log_name(req, u));
        api_livy_error(req, 403, msg);
        return -1;
    }
    if (!api_users_name_valid(u)) {
        api_livy_error(req, 400, "'proxyUser' is not a valid user name");
        return -1;
    }
    *out = u;
    return 0;
}

/* "512m", "2g", "1024" (bytes, as Spark reads a bare number of a memory
 * setting for the driver: MiB) — Spark's own size syntax. */
static int size_ok(const char *s)
{
    size_t n = strlen(s), i = 0;
    if (!n || n > 16) return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == 0) return 0;
    if (i == n) return 1;
    const char *u = s + i;
    static const char *const units[] = { "k", "m", "g", "t", "kb", "mb", "gb", "tb", NULL };
    for (size_t k = 0; units[k]; k++)
        if (!strcasecmp(u, units[k])) return 1;
    return 0;
}

int api_livy_check_spark(http_req_t *req, const json_t *body)
{
    static const char *const sizes[] = { "driverMemory", "executorMemory", NULL };
    static const char *const counts[] = { "driverCores", "executorCores", "numExecutors", NULL };
    static const char *const lists[] = { "jars", "pyFiles", "files", "archives", NULL };
    static const char *const strs[] = { "name", "queue", NULL };
    char msg[200];
    for (size_t i = 0; sizes[i]; i++) {
        json_t *v = json_object_get(body, sizes[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v) || !size_ok(json_string_value(v))) {
            snprintf(msg, sizeof msg, "'%s' must be a size such as \"512m\" or \"2g\"", sizes[i]);
            goto bad;
        }
    }
    for (size_t i = 0; counts[i]; i++) {
        json_t *v = json_object_get(body, counts[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000) {
            snprintf(msg, sizeof msg, "'%s' must be a positive integer", counts[i]);
            goto bad;
        }
    }
    for (size_t i = 0; lists[i]; i++) {
        json_t *v = json_object_get(body, lists[i]);
        if (!v || json_is_null(v)) continue;
        size_t k;
        json_t *e;
        int ok = json_is_array(v);
        json_array_foreach(v, k, e) ok = ok && json_is_string(e) && json_string_length(e) > 0;
        if (!ok) {
            snprintf(msg, sizeof msg, "'%s' must be a list of strings", lists[i]);
            goto bad;
        }
    }
    for (size_t i = 0; strs[i]; i++) {
        json_t *v = json_object_get(body, strs[i]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 200) {
            snprintf(msg, sizeof msg, "'%s' must be a string of 1 to 200 characters", strs[i]);
            goto bad;
        }
    }
    json_t *conf = json_object_get(body, "conf");
    if (conf && !json_is_null(conf)) {
        const char *k;
        json_t *v;
        int ok = json_is_object(conf);
        json_object_foreach(conf, k, v) ok = ok && (json_is_string(v) || json_is_number(v) || json_is_boolean(v));
        if (!ok) {
            snprintf(msg, sizeof msg, "'conf' must be an object of Spark settings (strings)");
            goto bad;
        }
    }
    return 0;
bad:
    api_livy_error(req, 400, msg);
    return -1;
}

int api_livy_path_id(http_req_t *req, const char *name, const char *what, int64_t *out)
{
    const char *s = http_param(req, name);
    if (s && api_parse_i64(s, 0, INT64_MAX, out) == 0) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s '%s' not found.", what, s ? api_log_name(req, s) : "");
    api_livy_error(req, 404, msg);
    return -1;
}

/* ---- sessions and statements ---------------------------------------------- */

static int no_livy(api_t *a, http_req_t *req)
{
    if (a->livy) return 0;
    api_livy_error(req, 503, "the Livy API is not running in this nbhub");
    return 1;
}

/* The row with the live state of its kernel overlaid (livy_session_state). */
static void live(api_t *a, store_livy_session_t *r)
{
    const char *st = livy_session_state(a->livy, r->id);
    if (st && strcmp(st, r->state) != 0) {
        free(r->state);
        r->state = xstrdup(st);
    }
}

/* The session of path :id, if the caller may see it: 0 and *row (clear
 * it), or answered 404 and -1.  A heartbeat. */
static int path_session(api_t *a, http_req_t *req, int64_t *id, store_livy_session_t *row)
{
    const api_ctx_t *c = api_ctx(req);
    if (api_livy_path_id(req, "id", "Session", id) < 0) return -1;
    nb_err_t err;
    int rc = store_livy_session_get(a->store, *id, row, &err);
    if (rc == 0 && !api_may_see(c, row->user_id)) {
        store_livy_session_clear(row);
        rc = -ENOENT;
    }
    if (rc == -ENOENT) {
        char msg[80];
        snprintf(msg, sizeof msg, "Session '%lld' not found.", (long long)*id);
        api_livy_error(req, 404, msg);
        return -1;
    }
    if (rc < 0) {
        api_livy_fail(req, rc, &err);
        return -1;
    }
    livy_session_heartbeat(a->livy, *id);
    live(a, row);
    return 0;
}

static json_t *session_json(const store_livy_session_t *r)
{
    json_t *req = r->request_json ? json_loads(r->request_json, 0, NULL) : NULL;
    if (!json_is_object(req)) {
        json_decref(req);
        req = json_object();
    }
    char log_url[96];
    snprintf(log_url, sizeof log_url, "/livy/sessions/%lld/log", (long long)r->id);
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(r->id));
    json_object_set_new(j, "name", api_json_str(r->name));
    json_object_set_new(j, "appId", api_json_str(r->app_id));
    json_object_set_new(j, "owner", api_json_str(r->owner));
    json_object_set_new(j, "proxyUser", api_json_str(r->proxy_user ? r->proxy_user : r->owner));
    json_object_set_new(j, "state", json_string(r->state));
    json_object_set_new(j, "kind", json_string(r->kind));
    /* A session on its own cluster (livy.spark: cluster): the driver's UI
     * through the cluster master's reverse proxy and nbhub's Spark UI
     * proxy, while the session is live.  A local session's driver has its
     * UI off: null, as Livy's is before the application has one. */
    char *ui = store_livy_state_final(r->state)
                   ? NULL
                   : livy_cluster_ui_url(r->proxy_user ? r->proxy_user : r->owner, r->spark_cluster, r->app_id);
    json_object_set_new(j, "appInfo", json_pack("{s:s, s:s?}", "driverLogUrl", log_url, "sparkUiUrl", ui));
    free(ui);
    /* The end of the kernel's log, and the reason a session ended as its
     * last line: livy_session.c writes it into the log too, but what the
     * kernel and its JVM print while they stop comes after it. */
    json_t *log = api_livy_log_tail(r->log_path, 10);
    if (r->error && store_livy_state_final(r->state)) {
        char *m = xasprintf("nbhub: session %s: %s", r->state, r->error);
        const char *last = json_string_value(json_array_get(log, json_array_size(log) - 1));
        if (!last || strcmp(last, m) != 0) json_array_append_new(log, json_string(m));
        free(m);
    }
    json_object_set_new(j, "log", log);
    static const char *const echo[] = { "driverMemory", "driverCores", "executorMemory", "executorCores",
                                        "numExecutors", "queue", "ttl", NULL };
    for (size_t i = 0; echo[i]; i++) {
        json_t *v = json_object_get(req, echo[i]);
        json_object_set(j, echo[i], v ? v : json_null());
    }
    static const char *const lists[] = { "jars", "pyFiles", "files", "archives", NULL };
    for (size_t i = 0; lists[i]; i++) {
        json_t *v = json_object_get(req, lists[i]);
        json_object_set_new(j, lists[i], v ? json_incref(v) : json_array());
    }
    json_t *conf = json_object_get(req, "conf");
    json_object_set_new(j, "conf", conf ? json_incref(conf) : json_object());
    json_object_set_new(j, "heartbeatTimeoutInSecond", json_integer(r->heartbeat_timeout));
    json_decref(req);
    return j;
}

static json_t *stmt_json(const store_livy_stmt_t *s)
{
    json_t *out = s->output_json ? json_loads(s->output_json, 0, NULL) : NULL;
    return json_pack("{s:I, s:s, s:s, s:o, s:f, s:I, s:I}", "id", (json_int_t)s->id, "code", s->code, "state",
                     s->state, "output", out ? out : json_null(), "progress", s->progress, "started",
                     (json_int_t)(s->started_at / 1000), "completed", (json_int_t)(s->completed_at / 1000));
}

void api_livy_sessions_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    int64_t from, size;
    if (api_livy_page(req, &from, &size) < 0) return;
    store_livy_sessions_t l;
    nb_err_t err;
    int rc = store_livy_sessions_list(a->store, c->admin ? 0 : c->uid, 0, &l, &err);
    if (rc < 0) {
        api_livy_fail(req, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < l.n; i++) {
        live(a, &l.v[i]);
        json_array_append_new(items, session_json(&l.v[i]));
    }
    store_livy_sessions_free(&l);
    http_respond_json(req, 200, api_livy_page_json(items, "sessions", from, size));
}

void api_livy_sessions_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    const api_ctx_t *c = api_ctx(req);
    json_t *body;
    if (api_livy_body(req, 1,
                      API_MEMBERS("kind", "proxyUser", "jars", "pyFiles", "files", "driverMemory", "driverCores",
                                  "executorMemory", "executorCores", "numExecutors", "archives", "queue", "name",
                                  "conf", "heartbeatTimeoutInSecond"),
                      &body) < 0)
        return;
    const char *proxy;
    if (api_livy_check_spark(req, body) < 0 || api_livy_proxy_user(req, c, body, &proxy) < 0) goto out;
    /* Under isolation: system the kernel runs as the proxyUser's account:
     * one of a user of this server, as for batches. */
    if (proxy && a->isolation_system && strcmp(proxy, c->name) != 0) {
        store_user_t pu;
        nb_err_t e2;
        if (store_user_by_name(a->store, proxy, &pu, &e2) < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "proxyUser '%s' is not a user of this server", api_log_name(req, proxy));
            api_livy_error(req, 400, msg);
            goto out;
        }
        store_user_clear(&pu);
    }
    json_t *k = json_object_get(body, "kind");
    if (k && !json_is_null(k) && !json_is_string(k)) {
        api_livy_error(req, 400, "'kind' must be a string: pyspark or sql");
        goto out;
    }
    json_t *hb = json_object_get(body, "heartbeatTimeoutInSecond");
    if (hb && !json_is_null(hb) && (!json_is_integer(hb) || json_integer_value(hb) < 0)) {
        api_livy_error(req, 400, "'heartbeatTimeoutInSecond' must be an integer >= 0");
        goto out;
    }
    /* Livy without a kind makes a "shared" session whose statements name
     * theirs; here every session is a PySpark kernel, so pyspark. */
    livy_create_t cr = {
        .uid = c->uid, .proxy_user = proxy,
        .name = json_string_value(json_object_get(body, "name")),
        .kind = json_is_string(k) ? json_string_value(k) : "pyspark",
        .request = body, .heartbeat_timeout = json_is_integer(hb) ? json_integer_value(hb) : 0,
    };
    int64_t id;
    nb_err_t err;
    int rc = livy_session_create(a->livy, &cr, &id, &err);
    if (rc < 0) {
        if (rc == -ENOTSUP) rc = -EINVAL;   /* a kind without a kernel: the request's fault */
        api_livy_fail(req, rc, &err);
        goto out;
    }
    LOG_I("livy session created", "user=%s session=%lld kind=%s", c->log_name, (long long)id, cr.kind);
    store_livy_session_t row;
    if ((rc = store_livy_session_get(a->store, id, &row, &err)) < 0) {
        api_livy_fail(req, rc, &err);
        goto out;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/sessions/%lld", (long long)id);
    http_set_header(req, "Location", loc);
    http_respond_json(req, 201, session_json(&row));
    store_livy_session_clear(&row);
out:
    json_decref(body);
}

void api_livy_session_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    http_respond_json(req, 200, session_json(&row));
    store_livy_session_clear(&row);
}

void api_livy_session_state(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    http_respond_json(req, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", row.state));
    store_livy_session_clear(&row);
}

void api_livy_session_log(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    json_t *j = api_livy_log_json(req, id, row.log_path);
    if (j) http_respond_json(req, 200, j);
    store_livy_session_clear(&row);
}

void api_livy_session_delete(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    store_livy_session_clear(&row);
    nb_err_t err;
    int rc = livy_session_delete(a->livy, id, &err);
    if (rc < 0) {
        api_livy_fail(req, rc, &err);
        return;
    }
    LOG_I("livy session deleted", "user=%s session=%lld", api_ctx(req)->log_name, (long long)id);
    api_livy_error(req, 200, "deleted");
}

void api_livy_stmts_list(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id, from, size;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    store_livy_session_clear(&row);
    if (api_livy_page(req, &from, &size) < 0) return;
    store_livy_stmts_t l;
    nb_err_t err;
    int rc = store_livy_stmts_list(a->store, id, &l, &err);
    if (rc < 0) {
        api_livy_fail(req, rc, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = (size_t)from; i < l.n && (int64_t)(i - (size_t)from) < size; i++)
        json_array_append_new(arr, stmt_json(&l.v[i]));
    http_respond_json(req, 200, json_pack("{s:I, s:o}", "total_statements", (json_int_t)l.n, "statements", arr));
    store_livy_stmts_free(&l);
}

void api_livy_stmts_create(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id;
    store_livy_session_t row;
    if (path_session(a, req, &id, &row) < 0) return;
    store_livy_session_clear(&row);
    json_t *body;
    if (api_livy_body(req, 0, API_MEMBERS("code", "kind"), &body) < 0) return;
    json_t *code = json_object_get(body, "code"), *kind = json_object_get(body, "kind");
    if (!json_is_string(code)) {
        api_livy_error(req, 400, "'code' must be a string");
        json_decref(body);
        return;
    }
    if (kind && !json_is_null(kind) && !json_is_string(kind)) {
        api_livy_error(req, 400, "'kind' must be a string: pyspark or sql");
        json_decref(body);
        return;
    }
    int64_t sid;
    nb_err_t err;
    int rc = livy_stmt_submit(a->livy, id, json_string_value(kind), json_string_value(code), &sid, &err);
    json_decref(body);
    if (rc < 0) {
        if (rc == -ENOTSUP) rc = -EINVAL;
        if (rc == -ESTALE) rc = -EINVAL;   /* Livy: IllegalStateException, 400 */
        api_livy_fail(req, rc, &err);
        return;
    }
    store_livy_stmt_t s;
    if ((rc = store_livy_stmt_get(a->store, id, sid, &s, &err)) < 0) {
        api_livy_fail(req, rc, &err);
        return;
    }
    char loc[96];
    snprintf(loc, sizeof loc, "/sessions/%lld/statements/%lld", (long long)id, (long long)sid);
    http_set_header(req, "Location", loc);
    http_respond_json(req, 201, stmt_json(&s));
    store_livy_stmt_clear(&s);
}

/* The statement of path :sid in the session of :id: 0, or answered. */
static int path_stmt(api_t *a, http_req_t *req, int64_t *id, int64_t *sid, store_livy_stmt_t *s)
{
    store_livy_session_t row;
    if (path_session(a, req, id, &row) < 0) return -1;
    store_livy_session_clear(&row);
    if (api_livy_path_id(req, "sid", "Statement", sid) < 0) return -1;
    nb_err_t err;
    int rc = store_livy_stmt_get(a->store, *id, *sid, s, &err);
    if (rc < 0) {
        api_livy_fail(req, rc, &err);
        return -1;
    }
    return 0;
}

void api_livy_stmt_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id, sid;
    store_livy_stmt_t s;
    if (path_stmt(a, req, &id, &sid, &s) < 0) return;
    http_respond_json(req, 200, stmt_json(&s));
    store_livy_stmt_clear(&s);
}

void api_livy_stmt_cancel(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (no_livy(a, req)) return;
    int64_t id, sid;
    store_livy_stmt_t s;
    if (path_stmt(a, req, &id, &sid, &s) < 0) return;
    store_livy_stmt_clear(&s);
    nb_err_t err;
    int rc = livy_stmt_cancel(a->livy, id, sid, &err);
    if (rc < 0 && rc != -ESTALE) {
        api_livy_fail(req, rc, &err);
        return;
    }
    api_livy_error(req, 200, "canceled");
}
