/*
 * jsonyaml — JSON to YAML (see jsonyaml.h for the promise).
 *
 * libyaml's emitter does the writing: indentation, escapes, line breaks and
 * the syntactic side of choosing a style (a scalar that starts with '-',
 * '&' or '*', holds ": " or " #", or has blanks at its ends cannot be
 * plain; it then falls back to single and then double quotes by itself).
 * What libyaml does not know is what a loader will make of a plain scalar:
 * to it `yes` and `7078` are as good as `hello`.  So this file decides, per
 * string, whether plain is allowed at all, the way PyYAML's representer
 * does — ask the resolver, quote when it would not say "str" — with three
 * resolvers instead of one, because the manifests are read by three kinds
 * of loaders:
 *
 *   - PyYAML / YAML 1.1 (yamljson_plain_is_str: the same resolver our own
 *     loader uses): null ~ Null, yes/no/on/off, 0x1F, 010 (octal), 1_000,
 *     1:30 (sexagesimal), 1.5, .inf, 2024-01-01, <<, =.
 *   - go-yaml v2, under sigs.k8s.io/yaml, which kubectl and the API
 *     server's YAML path use: also y Y n N as booleans, and Go's number
 *     syntax (0o17, 0b1, 1e3 without a dot).
 *   - the YAML 1.2 core schema (go-yaml v3, ruamel in its default mode):
 *     [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, 0o and 0x.
 *
 * A string none of them would retype is written plain; e.g. 512m, 4.0.0,
 * apache/spark:4.0.1 and local:///opt/job.py stay readable, while "7078",
 * "1e3", "on" and "" are quoted.  Multi-line strings use the literal block
 * style (|), which libyaml replaces by double quotes when the text cannot
 * be one (trailing blanks, control characters).  Long lines are never
 * folded: width is unlimited, so a PYSPARK_SUBMIT_ARGS stays one line.
 *
 * Numbers: integers as decimal digits; reals as Python's repr with ".0"
 * put before an exponent that lacks a dot (1e-05 -> 1.0e-05), as PyYAML's
 * representer does, since YAML 1.1 floats need the dot.  JSON cannot hold
 * inf or nan, so those never occur.
 */
#include "util/jsonyaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/xmalloc.h"
#include "util/yamljson.h"

static int isdig(char c) { return c >= '0' && c <= '9'; }

/* go-yaml v2's booleans that YAML 1.1 (PyYAML) reads as strings. */
static int go_bool_extra(const char *s, size_t n)
{
    return n == 1 && (s[0] == 'y' || s[0] == 'Y' || s[0] == 'n' || s[0] == 'N');
}

/* The YAML 1.2 core float/int shape, which go-yaml v2 also tests before
 * strconv.ParseFloat: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int core_number(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (p < end && (*p == '-' || *p == '+')) p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !isdig(*p)) return 0;
        while (p < end && isdig(*p)) p++;
    } else {
        if (p >= end || !isdig(*p)) return 0;
        while (p < end && isdig(*p)) p++;
        if (p < end && *p == '.') {
            p++;
            while (p < end && isdig(*p)) p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '-' || *p == '+')) p++;
        if (p >= end || !isdig(*p)) return 0;
        while (p < end && isdig(*p)) p++;
    }
    return p == end;
}

/* Go's and YAML 1.2's prefixed integers: [-+]?0[oObBxX] followed by digits
 * of any base and '_' (generous on purpose: quoting a string that only
 * looks like a number costs two characters). */
static int prefixed_number(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (p < end && (*p == '-' || *p == '+')) p++;
    if (end - p < 3 || p[0] != '0' || !strchr("oObBxX", p[1])) return 0;
    for (p += 2; p < end; p++)
        if (!(isdig(*p) || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == '_')) return 0;
    return 1;
}

int jsonyaml_plain_ok(const char *s, size_t n)
{
    if (memchr(s, '\0', n)) return 0;   /* only double quotes can carry a NUL */
    return yamljson_plain_is_str(s, n) && !go_bool_extra(s, n) && !core_number(s, n) && !prefixed_number(s, n);
}

/* ---- the emitter ------------------------------------------------------- */

typedef struct {
    yaml_emitter_t e;
    buf_t         *out;
    nb_err_t      *err;
    int            failed;
} jy_t;

static int jy_write(void *data, unsigned char *bytes, size_t size)
{
    buf_append(((jy_t *)data)->out, bytes, size);
    return 1;
}

/* Emit ev (libyaml destroys it either way); 0 or -EINVAL with libyaml's
 * reason. */
static int jy_emit(jy_t *y, yaml_event_t *ev)
{
    if (y->failed) {
        yaml_event_delete(ev);
        return -EINVAL;
    }
    if (!yaml_emitter_emit(&y->e, ev)) {
        y->failed = 1;
        return err_set(y->err, -EINVAL, "YAML emitter: %s", y->e.problem ? y->e.problem : "failed");
    }
    return 0;
}

static int jy_scalar(jy_t *y, const char *s, size_t n, int plain_implicit, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    /* plain_implicit 0 + quoted_implicit 1: libyaml quotes the scalar and
     * writes no tag, so it loads as a string. */
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, plain_implicit, 1, style))
        return err_set(y->err, -EINVAL, "YAML emitter: cannot build a scalar of %zu bytes", n);
    return jy_emit(y, &ev);
}

static int jy_string(jy_t *y, const char *s, size_t n)
{
    if (!jsonyaml_plain_ok(s, n)) return jy_scalar(y, s, n, 0, YAML_ANY_SCALAR_STYLE);
    return jy_scalar(y, s, n, 1, memchr(s, '\n', n) ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
}

static int jy_value(jy_t *y, const json_t *v, int depth)
{
    if (depth > YAMLJSON_MAX_DEPTH) return err_set(y->err, -EINVAL, "YAML emitter: nested deeper than %d", YAMLJSON_MAX_DEPTH);
    yaml_event_t ev;
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (jy_emit(y, &ev) < 0) return -EINVAL;
        const char *k;
        size_t kl;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, kl, m) {
            if (jy_string(y, k, kl) < 0 || jy_value(y, m, depth + 1) < 0) return -EINVAL;
        }
        yaml_mapping_end_event_initialize(&ev);
        return jy_emit(y, &ev);
    }
    case JSON_ARRAY: {
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (jy_emit(y, &ev) < 0) return -EINVAL;
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
            if (jy_value(y, m, depth + 1) < 0) return -EINVAL;
        yaml_sequence_end_event_initialize(&ev);
        return jy_emit(y, &ev);
    }
    case JSON_STRING:
        return jy_string(y, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return jy_scalar(y, num, strlen(num), 1, YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL: {
        char r[YAMLJSON_REPR_MAX];
        yamljson_float_repr(json_real_value(v), r);
        char *e = strchr(r, 'e');
        if (e && !strchr(r, '.')) snprintf(num, sizeof num, "%.*s.0%s", (int)(e - r), r, e);
        else snprintf(num, sizeof num, "%s", r);
        return jy_scalar(y, num, strlen(num), 1, YAML_PLAIN_SCALAR_STYLE);
    }
    case JSON_TRUE:
        return jy_scalar(y, "true", 4, 1, YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
        return jy_scalar(y, "false", 5, 1, YAML_PLAIN_SCALAR_STYLE);
    case JSON_NULL:
    default:
        return jy_scalar(y, "null", 4, 1, YAML_PLAIN_SCALAR_STYLE);
    }
}

/* The stream: docs[0..n) (from an array, or the one value). */
static int jy_stream(const json_t *const *docs, size_t n, buf_t *out, nb_err_t *err)
{
    size_t start = out->len;
    jy_t y = { .out = out, .err = err };
    yaml_emitter_initialize(&y.e);
    yaml_emitter_set_output(&y.e, jy_write, &y);
    yaml_emitter_set_unicode(&y.e, 1);
    yaml_emitter_set_indent(&y.e, 2);
    yaml_emitter_set_width(&y.e, -1);
    yaml_emitter_set_break(&y.e, YAML_LN_BREAK);
    yaml_event_t ev;
    int rc = 0;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    rc = jy_emit(&y, &ev);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* implicit 0: every document starts with "---". */
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
        if ((rc = jy_emit(&y, &ev)) < 0) break;
        if ((rc = jy_value(&y, docs[i], 0)) < 0) break;
        yaml_document_end_event_initialize(&ev, 1);
        rc = jy_emit(&y, &ev);
    }
    if (rc == 0) {
        yaml_stream_end_event_initialize(&ev);
        rc = jy_emit(&y, &ev);
    }
    if (rc == 0 && !yaml_emitter_flush(&y.e)) rc = err_set(err, -EINVAL, "YAML emitter: flush failed");
    yaml_emitter_delete(&y.e);
    if (rc < 0) {
        out->len = start;
        if (out->data) out->data[start] = '\0';
    }
    return rc;
}

int jsonyaml_emit(const json_t *v, buf_t *out, nb_err_t *err)
{
    return jy_stream(&v, 1, out, err);
}

int jsonyaml_emit_all(const json_t *docs, buf_t *out, nb_err_t *err)
{
    if (!json_is_array(docs)) return err_set(err, -EINVAL, "jsonyaml_emit_all: an array of documents expected");
    size_t n = json_array_size(docs);
    const json_t **d = n ? xcalloc(n, sizeof *d) : NULL;
    for (size_t i = 0; i < n; i++) d[i] = json_array_get(docs, i);
    int rc = jy_stream(d, n, out, err);
    free(d);
    return rc;
}
