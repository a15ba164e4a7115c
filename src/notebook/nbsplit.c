/*
 * nbsplit — see nbsplit.h.
 *
 * The scanner only finds where values begin and end (strings by their
 * unescaped closing quote, arrays and objects by depth).  The levels a
 * renderer walks — the top-level object, the cells array, a cell, its
 * outputs, an output, a mime bundle — are taken apart by the scanner, which
 * checks their punctuation; every other value it delimits is parsed
 * strictly by jparse, so a document that is not JSON is refused all the
 * same.  Where nb_normalise would join a list of lines into one string (a
 * cell's source, a stream's text, a bundle's non-JSON types), the string
 * literals are decoded one by one straight into the joined string: a cell
 * that printed 60 MB of lines never exists as 600,000 jansson strings (1.5x
 * their text) plus their join.  A list that cannot be joined that way (an
 * element that is not a plain string, a "\u0000") is parsed by jparse and
 * left to nb_normalise, as before.
 *
 * Depth: jansson refuses a document with a value nested deeper than 2048
 * (JSON_PARSER_MAX_DEPTH); a value parsed here by jparse starts at some
 * depth of the document, so its own depth is checked against what is left
 * (span_depth), and the answer stays nb_load_text's.
 */
#include "notebook/nbsplit.h"
#include "notebook/nb.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BAD SIZE_MAX
#define MAX_DEPTH 2048          /* jansson's JSON_PARSER_MAX_DEPTH */

/* Document depth of the values at each level we take apart (a top-level
 * value is at depth 1). */
enum { D_TOP = 2, D_CELL = 3, D_CELL_MEMBER = 4, D_OUTPUT = 5, D_OUTPUT_MEMBER = 6,
       D_BUNDLE_MEMBER = 7 };

static size_t ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* s[i] is '"': the index after the closing quote, or BAD. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    size_t from = i + 1;
    for (;;) {
        const char *q = from < n ? memchr(s + from, '"', n - from) : NULL;
        if (!q) return BAD;
        size_t k = (size_t)(q - s), b = 0;
        while (k - b > i + 1 && s[k - b - 1] == '\\') b++;
        if (b % 2 == 0) return k + 1;
        from = k + 1;
    }
}

/* The index after the value starting at s[i], or BAD. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n) return BAD;
    if (s[i] == '"') return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, n, i);
                if (i == BAD) return BAD;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
            i++;
        }
        return BAD;
    }
    size_t j = i;
    while (j < n && (s[j] == '\0' || !strchr(",}] \t\r\n", s[j]))) j++;
    return j > i ? j : BAD;
}

/* The depth jansson would count inside the value s[a..b) (1 for a scalar
 * or an empty container): every token that starts a value or a key inside
 * a container at depth d is at d + 1 (a key's value is at that depth). */
static int span_depth(const char *s, size_t a, size_t b)
{
    if (s[a] != '[' && s[a] != '{') return 1;
    int d = 0, mx = 1;
    for (size_t i = a; i < b;) {
        char c = s[i];
        if (c == ']' || c == '}') { d--; i++; continue; }
        if (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') { i++; continue; }
        if (d + 1 > mx) mx = d + 1;
        if (c == '[' || c == '{') { d++; i++; continue; }
        if (c == '"') {
            size_t e = skip_string(s, b, i);
            i = e == BAD ? b : e;
            continue;
        }
        /* a number, a word or junk: at least one byte (a NUL too: strchr
         * would call it a delimiter, and the scan would stop here) */
        do i++;
        while (i < b && (s[i] == '\0' || !strchr(",:]} \t\r\n", s[i])));
    }
    return mx;
}

/* "NAME:LINE:COLUMN: invalid JSON: what" for byte offset off (+ a relative
 * jansson position inside a value starting there, or 0, 0). */
static int json_err(const nbsplit_t *it, size_t off, int rline, int rcol, const char *what,
                    nb_err_t *err)
{
    int line = 1;
    size_t bol = 0;
    for (const char *p = it->s, *end = it->s + (off < it->n ? off : it->n);
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
        line++;
        bol = (size_t)(p - it->s) + 1;
    }
    int col = (int)(off - bol) + 1;
    if (rline > 1) {
        line += rline - 1;
        col = rcol;
    } else if (rline == 1) {
        col += rcol - 1;
    }
    return err_set(err, -EINVAL, "%s:%d:%d: invalid JSON: %s", it->name, line, col < 1 ? 1 : col,
                   what);
}

/* The value s[a..b), at document depth `depth`, parsed by jparse. */
static json_t *parse_at(const nbsplit_t *it, size_t a, size_t b, int depth, nb_err_t *err, int *rc)
{
    if (depth - 1 + span_depth(it->s, a, b) > MAX_DEPTH) {
        *rc = json_err(it, a, 0, 0, "maximum parsing depth reached", err);
        return NULL;
    }
    json_error_t je;
    json_t *v = jparse(it->s + a, b - a, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) *rc = json_err(it, a, je.line < 1 ? 1 : je.line, je.column < 1 ? 1 : je.column, je.text,
                           err);
    return v;
}

/* ---- objects and arrays we take apart ----------------------------------- */

struct member {
    char  *key;
    size_t v, ve;     /* the value's span */
};

struct members {
    struct member *v;
    size_t         n;
};

static void members_free(struct members *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->v[i].key);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* The members of the object s[a..b) (s[a] is '{', b is after its '}'),
 * keys decoded.  0, or a negative code with a message. */
static int scan_object(const nbsplit_t *it, size_t a, size_t b, struct members *m, nb_err_t *err)
{
    const char *s = it->s;
    size_t i = ws(s, b, a + 1);
    if (i < b && s[i] == '}') return i + 1 == b ? 0 : json_err(it, i, 0, 0, "end of object expected", err);
    char *key = NULL;
    size_t keylen = 0, keycap = 0;
    int rc;
    for (;;) {
        if (i >= b || s[i] != '"') {
            rc = json_err(it, i, 0, 0, "string or '}' expected", err);
            break;
        }
        size_t ke = skip_string(s, b, i);
        if (ke == BAD || jparse_string(s + i, ke - i, &key, &keylen, &keycap) < 0 ||
            memchr(key, '\0', keylen)) {
            rc = json_err(it, i, 0, 0, "invalid string (an object key)", err);
            break;
        }
        i = ws(s, b, ke);
        if (i >= b || s[i] != ':') {
            rc = json_err(it, i, 0, 0, "':' expected", err);
            break;
        }
        size_t v = ws(s, b, i + 1), ve = skip_value(s, b, v);
        if (ve == BAD) {
            rc = json_err(it, v, 0, 0, "unexpected end of input or invalid value", err);
            break;
        }
        m->v = xrealloc(m->v, (m->n + 1) * sizeof *m->v);
        m->v[m->n++] = (struct member){ xstrndup(key, keylen), v, ve };
        i = ws(s, b, ve);
        if (i < b && s[i] == ',') {
            i = ws(s, b, i + 1);
            continue;
        }
        if (i < b && s[i] == '}' && i + 1 == b) {
            free(key);
            return 0;
        }
        rc = json_err(it, i, 0, 0, "',' or '}' expected", err);
        break;
    }
    free(key);
    members_free(m);
    return rc;
}

/* The next element of the array whose content is being read at *pos (just
 * after '[' or after a ','): its span in *a, *e; then *pos is after the
 * ',' that follows it, or after the ']' that closes the array (*last = 1).
 * 1 with an element, 0 for an empty array (*pos after its ']'), or a
 * negative code. */
static int array_next(const nbsplit_t *it, size_t *pos, size_t end, int first, size_t *a, size_t *e,
                      int *last, nb_err_t *err)
{
    *last = 0;
    const char *s = it->s;
    size_t i = ws(s, end, *pos);
    if (first && i < end && s[i] == ']') {
        *pos = i + 1;
        return 0;
    }
    size_t ve = skip_value(s, end, i);
    if (ve == BAD) return json_err(it, i, 0, 0, "unexpected end of input or invalid value", err);
    *a = i;
    *e = ve;
    i = ws(s, end, ve);
    if (i < end && s[i] == ',') {
        *pos = i + 1;
    } else if (i < end && s[i] == ']') {
        *pos = i + 1;
        *last = 1;
    } else {
        return json_err(it, i, 0, 0, "',' or ']' expected", err);
    }
    return 1;
}

/* A list of strings s[a..b) at depth `depth` as the one string "".join()
 * gives, decoded literal by literal; anything else (not a list, an element
 * that is not a plain string, a "\u0000") is parsed by jparse as it is. */
static json_t *parse_lines(const nbsplit_t *it, size_t a, size_t b, int depth, nb_err_t *err, int *rc)
{
    if (it->s[a] != '[') return parse_at(it, a, b, depth, err, rc);
    buf_t j = BUF_INIT;
    char *tmp = NULL;
    size_t tlen = 0, tcap = 0, pos = a + 1, ea, ee;
    int first = 1, r = 0, ok = 1, last = 0;
    nb_err_t ignored;
    size_t told = a;
    while (!last && (r = array_next(it, &pos, b, first, &ea, &ee, &last, &ignored)) > 0) {
        first = 0;
        if (it->release && ea - told >= (1u << 20)) {   /* a long list: its text so far is done */
            it->release(it->release_ud, ea);
            told = ea;
        }
        if (it->s[ea] != '"' || jparse_string(it->s + ea, ee - ea, &tmp, &tlen, &tcap) < 0 ||
            memchr(tmp, '\0', tlen)) {
            ok = 0;
            break;
        }
        buf_append(&j, tmp, tlen);
    }
    free(tmp);
    if (!ok || r < 0 || pos != b) {
        buf_free(&j);
        return parse_at(it, a, b, depth, err, rc);   /* jparse's tree or its error */
    }
    /* Concatenated valid UTF-8 (jparse_string checked each) is valid UTF-8. */
    json_t *v = json_stringn_nocheck(j.data ? j.data : "", j.len);
    buf_free(&j);
    return v;
}

static int is_json_mime(const char *mime)
{
    size_t n = strlen(mime);
    return strcmp(mime, "application/json") == 0 ||
           (strncmp(mime, "application/", 12) == 0 && n >= 5 && strcmp(mime + n - 5, "+json") == 0);
}

/* A rich output's "data": each non-JSON type's list of lines joined. */
static json_t *parse_bundle(const nbsplit_t *it, size_t a, size_t b, nb_err_t *err, int *rc)
{
    if (it->s[a] != '{') return parse_at(it, a, b, D_OUTPUT_MEMBER, err, rc);
    struct members m = { 0 };
    if ((*rc = scan_object(it, a, b, &m, err)) < 0) return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i < m.n; i++) {
        json_t *v = is_json_mime(m.v[i].key)
                        ? parse_at(it, m.v[i].v, m.v[i].ve, D_BUNDLE_MEMBER, err, rc)
                        : parse_lines(it, m.v[i].v, m.v[i].ve, D_BUNDLE_MEMBER, err, rc);
        if (!v) {
            json_decref(o);
            o = NULL;
            break;
        }
        json_object_set_new(o, m.v[i].key, v);
    }
    members_free(&m);
    return o;
}

/* One output: its text or its bundle's lines joined the way nb_normalise
 * joins them (which depends on output_type, wherever it is in the object). */
static json_t *parse_output(const nbsplit_t *it, size_t a, size_t b, nb_err_t *err, int *rc)
{
    if (it->s[a] != '{') return parse_at(it, a, b, D_OUTPUT, err, rc);
    struct members m = { 0 };
    if ((*rc = scan_object(it, a, b, &m, err)) < 0) return NULL;
    json_t *o = json_object(), *type = NULL;
    for (size_t i = 0; i < m.n; i++) {     /* the (last) output_type first: it decides the rest */
        if (strcmp(m.v[i].key, "output_type")) continue;
        json_decref(type);
        if (!(type = parse_at(it, m.v[i].v, m.v[i].ve, D_OUTPUT_MEMBER, err, rc))) goto fail;
    }
    const char *t = json_string_value(type);
    int rich = t && (!strcmp(t, "execute_result") || !strcmp(t, "display_data"));
    for (size_t i = 0; i < m.n; i++) {      /* in the document's order, as jparse would */
        const char *k = m.v[i].key;
        json_t *v = !strcmp(k, "output_type") ? parse_at(it, m.v[i].v, m.v[i].ve, D_OUTPUT_MEMBER, err, rc)
                  : !rich && !strcmp(k, "text") ? parse_lines(it, m.v[i].v, m.v[i].ve, D_OUTPUT_MEMBER, err, rc)
                  : rich && !strcmp(k, "data") ? parse_bundle(it, m.v[i].v, m.v[i].ve, err, rc)
                  : parse_at(it, m.v[i].v, m.v[i].ve, D_OUTPUT_MEMBER, err, rc);
        if (!v) goto fail;
        json_object_set_new(o, k, v);
    }
    members_free(&m);
    json_decref(type);
    return o;
fail:
    members_free(&m);
    json_decref(type);
    json_decref(o);
    return NULL;
}

static json_t *parse_outputs(const nbsplit_t *it, size_t a, size_t b, nb_err_t *err, int *rc)
{
    if (it->s[a] != '[') return parse_at(it, a, b, D_CELL_MEMBER, err, rc);
    json_t *arr = json_array();
    size_t pos = a + 1, ea, ee;
    int first = 1, r = 0, last = 0;
    while (!last && (r = array_next(it, &pos, b, first, &ea, &ee, &last, err)) > 0) {
        first = 0;
        json_t *o = parse_output(it, ea, ee, err, rc);
        if (!o) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, o);
    }
    if (r < 0 || pos != b) {
        *rc = r < 0 ? r : json_err(it, pos, 0, 0, "end of array expected", err);
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* One cell: its source and its outputs taken apart, the rest by jparse. */
static json_t *parse_cell(const nbsplit_t *it, size_t a, size_t b, nb_err_t *err, int *rc)
{
    if (it->s[a] != '{') return parse_at(it, a, b, D_CELL, err, rc);
    struct members m = { 0 };
    if ((*rc = scan_object(it, a, b, &m, err)) < 0) return NULL;
    json_t *c = json_object();
    for (size_t i = 0; i < m.n; i++) {
        const char *k = m.v[i].key;
        json_t *v = !strcmp(k, "source") ? parse_lines(it, m.v[i].v, m.v[i].ve, D_CELL_MEMBER, err, rc)
                  : !strcmp(k, "outputs") ? parse_outputs(it, m.v[i].v, m.v[i].ve, err, rc)
                  : parse_at(it, m.v[i].v, m.v[i].ve, D_CELL_MEMBER, err, rc);
        if (!v) {
            json_decref(c);
            c = NULL;
            break;
        }
        json_object_set_new(c, k, v);
    }
    members_free(&m);
    return c;
}

/* ---- the notebook ------------------------------------------------------- */

int nbsplit_open(nbsplit_t *it, const char *text, size_t len, const char *name, json_t **skeleton,
                 nb_err_t *err)
{
    memset(it, 0, sizeof *it);
    it->s = text;
    it->n = len;
    it->name = name;
    it->done = 1;
    *skeleton = NULL;
    const char *s = text;
    size_t i = ws(s, len, 0), cells = BAD, cells_end = 0;
    int rc = 0;
    if (i >= len || s[i] != '{') {
        /* not an object: jparse gives nb_load_text's answer (or the error) */
        json_t *v = i < len ? parse_at(it, i, len, 1, err, &rc) : NULL;
        if (!v) return rc ? rc : json_err(it, i, 0, 0, "'[' or '{' expected near end of file", err);
        rc = nb_normalise(v, name, err);
        json_decref(v);
        return rc < 0 ? rc : err_set(err, -EINVAL, "%s: not a Jupyter notebook", name);
    }
    size_t end = skip_value(s, len, i);
    if (end == BAD) return json_err(it, i, 0, 0, "unexpected end of input", err);
    size_t after = ws(s, len, end);
    if (after < len) return json_err(it, after, 0, 0, "end of file expected", err);
    struct members m = { 0 };
    if ((rc = scan_object(it, i, end, &m, err)) < 0) return rc;
    json_t *skel = json_object();
    for (size_t k = 0; k < m.n; k++) {
        const struct member *e = &m.v[k];
        if (strcmp(e->key, "cells") == 0 && cells != BAD) {
            /* A second "cells": the last one wins, and the one it replaces
             * is still checked (json_loadb refuses a document with any
             * invalid part). */
            json_t *old = parse_at(it, cells, cells_end, D_TOP, err, &rc);
            if (!old) goto fail;
            json_decref(old);
            cells = BAD;
        }
        if (strcmp(e->key, "cells") == 0 && s[e->v] == '[') {
            cells = e->v;
            cells_end = e->ve;
            json_object_set_new(skel, "cells", json_array());
        } else {
            json_t *val = parse_at(it, e->v, e->ve, D_TOP, err, &rc);
            if (!val) goto fail;
            json_object_set_new(skel, e->key, val);
        }
    }
    members_free(&m);
    if ((rc = nb_normalise(skel, name, err)) < 0) goto fail;
    it->pos = cells == BAD ? len : cells + 1;
    it->cells_end = cells_end;
    it->done = cells == BAD;
    *skeleton = skel;
    return 0;
fail:
    members_free(&m);
    json_decref(skel);
    return rc;
}

int nbsplit_next(nbsplit_t *it, json_t **cell, nb_err_t *err)
{
    *cell = NULL;
    if (it->done) return 0;
    size_t a, e;
    int last;
    int rc = array_next(it, &it->pos, it->cells_end, it->index == 0, &a, &e, &last, err);
    if (rc <= 0) {
        it->done = 1;
        return rc;
    }
    json_t *c = parse_cell(it, a, e, err, &rc);
    if (!c) {
        it->done = 1;
        return rc;
    }
    if ((rc = nb_normalise_cell(c, it->name, ++it->index, err)) < 0) {
        json_decref(c);
        it->done = 1;
        return rc;
    }
    if (last) it->done = 1;
    *cell = c;
    return 1;
}

size_t nbsplit_consumed(const nbsplit_t *it)
{
    return it->pos;
}
