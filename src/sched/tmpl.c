/*
 * tmpl — see tmpl.h for the language.
 *
 * One scanner (tmpl_scan) cuts a string into literal runs and holes; the
 * checker and the renderer are two consumers of it, so what the loader
 * accepts is exactly what the renderer can render.  A hole is parsed into a
 * variable and, for params, a key path; anything else inside the braces
 * (a filter `|`, a call, an operator) is an error, with a message saying
 * that expressions are not supported rather than a bare "syntax error".
 */
#include "sched/tmpl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/errlist.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

enum tvar {
    TV_DS, TV_DS_NODASH, TV_TS, TV_TS_NODASH, TV_DIS, TV_DIE,
    TV_RUN_ID, TV_FLOW, TV_TASK, TV_PARAMS, TV_COUNT
};

static const char *const tvar_names[TV_COUNT] = {
    "ds", "ds_nodash", "ts", "ts_nodash", "data_interval_start", "data_interval_end",
    "run_id", "flow", "task", "params",
};

#define TMPL_MAX_PATH 16

/* One parsed hole. */
typedef struct hole {
    enum tvar   var;
    const char *path[TMPL_MAX_PATH];  /* params keys, pointing into s */
    size_t      pathlen[TMPL_MAX_PATH];
    size_t      npath;
    size_t      start, end;           /* [start, end) of "{{...}}" in s */
} hole_t;

/* The text of the hole for messages, e.g. "{{ params.x }}", shortened. */
static void hole_text(const char *s, size_t start, size_t end, char *out, size_t n)
{
    size_t len = end - start;
    if (len > 60) {
        snprintf(out, n, "%.*s...", 57, s + start);
        return;
    }
    snprintf(out, n, "%.*s", (int)len, s + start);
}

static int is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Parse the inside of a hole s[a, b).  Fills h or sets err. */
static int parse_hole(const char *s, size_t a, size_t b, hole_t *h, nb_err_t *err)
{
    char shown[80];
    hole_text(s, h->start, h->end, shown, sizeof shown);
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (a == b)
        return err_set(err, -EINVAL, "empty template '%s'", shown);
    size_t i = a;
    if (!is_ident_start(s[i]))
        goto bad;
    while (i < b && is_ident(s[i]))
        i++;
    size_t nlen = i - a;
    int var = -1;
    for (int v = 0; v < TV_COUNT; v++)
        if (strlen(tvar_names[v]) == nlen && memcmp(tvar_names[v], s + a, nlen) == 0)
            var = v;
    if (var < 0) {
        /* Unknown name: only a plain identifier gets "did you mean". */
        char name[72];
        snprintf(name, sizeof name, "%.*s", (int)(nlen > 64 ? 64 : nlen), s + a);
        if (i < b && s[i] != '.')
            goto bad;
        const char *sug = errlist_closest(name, tvar_names, TV_COUNT);
        if (sug)
            return err_set(err, -EINVAL, "unknown template variable '%s' in '%s'; did you mean '%s'?",
                           name, shown, sug);
        return err_set(err, -EINVAL,
                       "unknown template variable '%s' in '%s' (known: ds, ds_nodash, ts, ts_nodash, "
                       "data_interval_start, data_interval_end, run_id, flow, task, params.NAME)",
                       name, shown);
    }
    h->var = (enum tvar)var;
    h->npath = 0;
    while (i < b && s[i] == '.') {
        if (h->var != TV_PARAMS)
            goto bad;
        size_t k = ++i;
        while (i < b && (is_ident(s[i]) || s[i] == '-'))
            i++;
        if (i == k)
            goto bad;
        if (h->npath == TMPL_MAX_PATH)
            return err_set(err, -EINVAL, "template '%s' nests too deep", shown);
        h->path[h->npath] = s + k;
        h->pathlen[h->npath++] = i - k;
    }
    if (i != b)
        goto bad;
    if (h->var == TV_PARAMS && h->npath == 0)
        return err_set(err, -EINVAL, "'%s' needs a parameter name: {{ params.NAME }}", shown);
    return 0;
bad:
    if (memchr(s + a, '|', b - a))
        return err_set(err, -EINVAL, "template '%s': filters are not supported; only "
                       "{{ name }} and {{ params.NAME }}", shown);
    return err_set(err, -EINVAL, "template '%s': only a variable name is allowed "
                   "(no expressions or code)", shown);
}

/* Callbacks of the scanner: literal text, and a parsed hole. */
typedef struct scan_ops {
    int (*text)(void *arg, const char *p, size_t n);
    int (*hole)(void *arg, const char *s, const hole_t *h, nb_err_t *err);
} scan_ops_t;

/* Cut s into literal runs and holes (see the header for the rules). */
static int tmpl_scan(const char *s, const scan_ops_t *ops, void *arg, nb_err_t *err)
{
    size_t i = 0, lit = 0;
    int rc;
    while (s[i]) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        if (i > lit && (rc = ops->text(arg, s + lit, i - lit)) < 0)
            return rc;
        if (s[i + 2] == '{' && s[i + 3] == '{') {
            /* Escape: "{{{{" is a literal "{{". */
            if ((rc = ops->text(arg, "{{", 2)) < 0)
                return rc;
            i += 4;
            lit = i;
            continue;
        }
        const char *close = strstr(s + i + 2, "}}");
        if (!close) {
            char shown[80];
            hole_text(s, i, strlen(s), shown, sizeof shown);
            return err_set(err, -EINVAL, "unclosed '{{' in '%s' (write '{{{{' for a literal '{{')",
                           shown);
        }
        hole_t h;
        memset(&h, 0, sizeof h);
        h.start = i;
        h.end = (size_t)(close - s) + 2;
        if ((rc = parse_hole(s, i + 2, (size_t)(close - s), &h, err)) < 0)
            return rc;
        if ((rc = ops->hole(arg, s, &h, err)) < 0)
            return rc;
        i = lit = h.end;
    }
    if (i > lit)
        return ops->text(arg, s + lit, i - lit);
    return 0;
}

int tmpl_has_holes(const char *s)
{
    return strstr(s, "{{") != NULL;
}

/* ---- checking ---------------------------------------------------------- */

static int check_text(void *arg, const char *p, size_t n)
{
    (void)arg; (void)p; (void)n;
    return 0;
}

static const json_t *param_lookup(const char *s, const hole_t *h, const json_t *params, nb_err_t *err);

static int check_hole(void *arg, const char *s, const hole_t *h, nb_err_t *err)
{
    const json_t *params = arg;
    if (h->var != TV_PARAMS)
        return 0;
    char name[72];
    snprintf(name, sizeof name, "%.*s", (int)(h->pathlen[0] > 64 ? 64 : h->pathlen[0]), h->path[0]);
    if (json_is_object(params) && json_object_get(params, name)) {
        /* Keys below the parameter must exist in its default: the
         * declared default is the shape templates may rely on. */
        if (h->npath > 1 && !param_lookup(s, h, params, err))
            return -EINVAL;
        return 0;
    }
    char shown[80];
    hole_text(s, h->start, h->end, shown, sizeof shown);
    const char *sug = NULL;
    if (json_is_object(params)) {
        size_t n = json_object_size(params), k = 0;
        const char **cands = xcalloc(n ? n : 1, sizeof *cands);
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)params, key, v)
            cands[k++] = key;
        sug = errlist_closest(name, cands, k);
        int rc = sug ? err_set(err, -EINVAL, "unknown parameter '%s' in '%s'; did you mean '%s'?",
                               name, shown, sug)
                     : err_set(err, -EINVAL, "unknown parameter '%s' in '%s' (declare it under "
                               "'params' with a default)", name, shown);
        free(cands);
        return rc;
    }
    return err_set(err, -EINVAL, "unknown parameter '%s' in '%s' (declare it under 'params' "
                   "with a default)", name, shown);
}

int tmpl_check(const char *s, const json_t *params, nb_err_t *err)
{
    static const scan_ops_t ops = { check_text, check_hole };
    return tmpl_scan(s, &ops, (void *)params, err);
}

/* ---- rendering --------------------------------------------------------- */

int tmpl_time_in(const tz_t *tz, int64_t utc, tmpl_time_t *out)
{
    out->utc = utc;
    out->utc_offset = 0;
    if (!tz)
        return 0;
    struct tz_tm tm;
    int rc = tz_to_local(tz, utc, &tm);
    if (rc < 0)
        return rc;
    out->utc_offset = tm.utc_offset;
    return 0;
}

/* Civil fields of t in its own offset. */
static void civil(const tmpl_time_t *t, int64_t *y, int *mo, int *d, int *h, int *mi, int *sec)
{
    int64_t wall = t->utc + t->utc_offset;
    int64_t days = wall >= 0 ? wall / 86400 : -((-wall + 86399) / 86400);
    int64_t rem = wall - days * 86400;
    tz_civil_from_days(days, y, mo, d);
    *h = (int)(rem / 3600);
    *mi = (int)(rem / 60 % 60);
    *sec = (int)(rem % 60);
}

static void fmt_time(buf_t *b, enum tvar var, const tmpl_time_t *t)
{
    int64_t y;
    int mo, d, h, mi, sec;
    civil(t, &y, &mo, &d, &h, &mi, &sec);
    switch (var) {
    case TV_DS:
        buf_printf(b, "%04" PRId64 "-%02d-%02d", y, mo, d);
        return;
    case TV_DS_NODASH:
        buf_printf(b, "%04" PRId64 "%02d%02d", y, mo, d);
        return;
    case TV_TS_NODASH:
        buf_printf(b, "%04" PRId64 "%02d%02dT%02d%02d%02d", y, mo, d, h, mi, sec);
        return;
    default: {
        int32_t off = t->utc_offset;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        buf_printf(b, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, h, mi, sec,
                   sign, (int)(off / 3600), (int)(off / 60 % 60));
        if (off % 60)
            buf_printf(b, ":%02d", (int)(off % 60));
        return;
    }
    }
}

/* The value of params.PATH, or NULL with a message. */
static const json_t *param_lookup(const char *s, const hole_t *h, const json_t *params, nb_err_t *err)
{
    const json_t *v = params;
    for (size_t i = 0; i < h->npath; i++) {
        char key[72];
        snprintf(key, sizeof key, "%.*s", (int)(h->pathlen[i] > 64 ? 64 : h->pathlen[i]), h->path[i]);
        const json_t *next = json_is_object(v) && !yamljson_pynum_repr(v) ? json_object_get(v, key) : NULL;
        if (!next) {
            char shown[80];
            hole_text(s, h->start, h->end, shown, sizeof shown);
            err_set(err, -EINVAL, "%s '%s' has no value in '%s'", i == 0 ? "parameter" : "key",
                    key, shown);
            return NULL;
        }
        v = next;
    }
    return v;
}

/* Text form of a value interpolated into a string (see the header). */
static void fmt_value(buf_t *b, const json_t *v)
{
    const char *pyrepr = yamljson_pynum_repr(v);
    char r[YAMLJSON_REPR_MAX];
    if (pyrepr) {
        buf_puts(b, pyrepr);
    } else if (json_is_string(v)) {
        buf_append(b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        yamljson_float_repr(json_real_value(v), r);
        buf_puts(b, r);
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (s)
            buf_puts(b, s);
        free(s);
    }
}

typedef struct render_st {
    const tmpl_ctx_t *ctx;
    buf_t             out;
} render_st_t;

static int render_text(void *arg, const char *p, size_t n)
{
    render_st_t *st = arg;
    buf_append(&st->out, p, n);
    return 0;
}

static int render_hole(void *arg, const char *s, const hole_t *h, nb_err_t *err)
{
    render_st_t *st = arg;
    const tmpl_ctx_t *c = st->ctx;
    const char *str = NULL;
    switch (h->var) {
    case TV_DS: case TV_DS_NODASH: case TV_TS: case TV_TS_NODASH:
        fmt_time(&st->out, h->var, &c->logical);
        return 0;
    case TV_DIS:
        fmt_time(&st->out, TV_TS, &c->interval_start);
        return 0;
    case TV_DIE:
        fmt_time(&st->out, TV_TS, &c->interval_end);
        return 0;
    case TV_RUN_ID: str = c->run_id; break;
    case TV_FLOW:   str = c->flow; break;
    case TV_TASK:   str = c->task; break;
    case TV_PARAMS: {
        const json_t *v = param_lookup(s, h, c->params, err);
        if (!v)
            return -EINVAL;
        fmt_value(&st->out, v);
        return 0;
    }
    default:
        break;
    }
    buf_puts(&st->out, str ? str : "");
    return 0;
}

/* A string that is exactly one params hole: its parsed hole, else 0. */
static int single_param_hole(const char *s, hole_t *h)
{
    size_t n = strlen(s);
    if (n < 4 || s[0] != '{' || s[1] != '{' || s[2] == '{' || s[n - 1] != '}' || s[n - 2] != '}')
        return 0;
    const char *close = strstr(s + 2, "}}");
    if ((size_t)(close - s) != n - 2)
        return 0;
    memset(h, 0, sizeof *h);
    h->start = 0;
    h->end = n;
    nb_err_t e;
    if (parse_hole(s, 2, n - 2, h, &e) < 0)
        return 0;
    return h->var == TV_PARAMS;
}

int tmpl_render_string(const char *s, const tmpl_ctx_t *ctx, json_t **out, nb_err_t *err)
{
    *out = NULL;
    hole_t h;
    if (single_param_hole(s, &h)) {
        const json_t *v = param_lookup(s, &h, ctx->params, err);
        if (!v)
            return -EINVAL;
        *out = json_deep_copy(v);
        return 0;
    }
    if (!tmpl_has_holes(s)) {
        *out = json_string(s);
        return *out ? 0 : err_set(err, -EINVAL, "string is not valid UTF-8");
    }
    static const scan_ops_t ops = { render_text, render_hole };
    render_st_t st = { ctx, BUF_INIT };
    int rc = tmpl_scan(s, &ops, &st, err);
    if (rc == 0) {
        *out = json_stringn(st.out.data ? st.out.data : "", st.out.len);
        if (!*out)
            rc = err_set(err, -EINVAL, "rendered string is not valid UTF-8");
    }
    buf_free(&st.out);
    return rc;
}

static int render_rec(const json_t *v, const tmpl_ctx_t *ctx, json_t **out, nb_err_t *err, int depth)
{
    if (depth > 256)
        return err_set(err, -EINVAL, "value nests too deep");
    if (json_is_string(v))
        return tmpl_render_string(json_string_value(v), ctx, out, err);
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            json_t *r;
            int rc = render_rec(item, ctx, &r, err, depth + 1);
            if (rc < 0) {
                json_decref(a);
                *out = NULL;
                return rc;
            }
            json_array_append_new(a, r);
        }
        *out = a;
        return 0;
    }
    if (json_is_object(v) && !yamljson_pynum_repr(v)) {
        json_t *o = json_object();
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item) {
            json_t *r;
            int rc = render_rec(item, ctx, &r, err, depth + 1);
            if (rc < 0) {
                json_decref(o);
                *out = NULL;
                return rc;
            }
            json_object_set_new(o, key, r);
        }
        *out = o;
        return 0;
    }
    *out = json_deep_copy(v);
    return 0;
}

int tmpl_render(const json_t *value, const tmpl_ctx_t *ctx, json_t **out, nb_err_t *err)
{
    return render_rec(value, ctx, out, err, 0);
}
