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
 */
#include "api/api_int.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

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

int api_livy_body(http_req_t *req, int allow_empty, const char *const *members, json_t **out)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    *out = NULL;
    size_t i = 0;
    while (i < len && body[i] && strchr(" \t\r\n", body[i])) i++;
    if (i == len) {
        if (allow_empty) {
            *out = json_object();
            return 0;
        }
        api_livy_error(req, 400, "a JSON object body is required");
        return -1;
    }
    json_error_t je;
    json_t *j = jparse(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        char msg[400];
        if (j)
            snprintf(msg, sizeof msg, "the body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d (byte %d): %s", je.line,
                     je.column, je.position, je.text);
        json_decref(j);
        api_livy_error(req, 400, msg);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        size_t k = 0;
        while (members[k] && strcmp(members[k], key) != 0) k++;
        if (members[k]) continue;
        /* Livy (Jackson) refuses unknown fields too: a misspelt
         * "executorMemroy" must not be silently ignored. */
        buf_t msg = BUF_INIT;
        buf_printf(&msg, "Unrecognized field \"%s\"; expected:", api_log_name(req, key));
        for (k = 0; members[k]; k++) buf_printf(&msg, "%s %s", k ? "," : "", members[k]);
        json_decref(j);
        api_livy_error(req, 400, msg.data);
        buf_free(&msg);
        return -1;
    }
    *out = j;
    return 0;
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
 * cut by the window is dropped), as a new array. */
static json_t *log_lines(const char *path)
{
    json_t *a = json_array();
    FILE *f = path ? fopen(path, "rb") : NULL;
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
