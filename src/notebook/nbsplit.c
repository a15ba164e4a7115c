/*
 * nbsplit — see nbsplit.h.  The scanner only finds where values begin and
 * end (strings by their unescaped closing quote, arrays and objects by
 * depth); every value it delimits is then parsed strictly by jparse, so a
 * document the scanner mis-delimits because it is not JSON is refused by
 * jparse all the same.
 */
#include "notebook/nbsplit.h"
#include "notebook/nb.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BAD SIZE_MAX

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
    while (j < n && !strchr(",}] \t\r\n", s[j])) j++;
    return j > i ? j : BAD;
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

static json_t *parse_at(const nbsplit_t *it, size_t a, size_t b, nb_err_t *err, int *rc)
{
    json_error_t je;
    json_t *v = jparse(it->s + a, b - a, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) *rc = json_err(it, a, je.line < 1 ? 1 : je.line, je.column < 1 ? 1 : je.column, je.text,
                           err);
    return v;
}

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
        json_t *v = i < len ? parse_at(it, i, len, err, &rc) : NULL;
        if (!v) return rc ? rc : json_err(it, i, 0, 0, "'[' or '{' expected near end of file", err);
        rc = nb_normalise(v, name, err);
        json_decref(v);
        return rc < 0 ? rc : err_set(err, -EINVAL, "%s: not a Jupyter notebook", name);
    }
    json_t *skel = json_object();
    char *key = NULL;
    size_t keylen = 0, keycap = 0;
    i = ws(s, len, i + 1);
    if (i < len && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (i >= len || s[i] != '"') {
                rc = json_err(it, i, 0, 0, "string or '}' expected", err);
                goto fail;
            }
            size_t ke = skip_string(s, len, i);
            if (ke == BAD || jparse_string(s + i, ke - i, &key, &keylen, &keycap) < 0 ||
                memchr(key, '\0', keylen)) {
                rc = json_err(it, i, 0, 0, "invalid string (an object key)", err);
                goto fail;
            }
            if (keylen + 1 > keycap) {
                keycap = keylen + 1;
                key = xrealloc(key, keycap);
            }
            key[keylen] = '\0';           /* jparse_string gives a length, not a C string */
            i = ws(s, len, ke);
            if (i >= len || s[i] != ':') {
                rc = json_err(it, i, 0, 0, "':' expected", err);
                goto fail;
            }
            size_t v = ws(s, len, i + 1), ve = skip_value(s, len, v);
            if (ve == BAD) {
                rc = json_err(it, v, 0, 0, "unexpected end of input or invalid value", err);
                goto fail;
            }
            if (strcmp(key, "cells") == 0 && cells != BAD) {
                /* A second "cells": the last one wins, and the one it
                 * replaces is still checked (json_loadb refuses a document
                 * with any invalid part). */
                json_t *old = parse_at(it, cells, cells_end, err, &rc);
                if (!old) goto fail;
                json_decref(old);
                cells = BAD;
            }
            if (strcmp(key, "cells") == 0 && s[v] == '[') {
                cells = v;
                cells_end = ve;
                json_object_set_new(skel, "cells", json_array());
            } else {
                json_t *val = parse_at(it, v, ve, err, &rc);
                if (!val) goto fail;
                json_object_set_new(skel, key, val);
            }
            i = ws(s, len, ve);
            if (i < len && s[i] == ',') {
                i = ws(s, len, i + 1);
                continue;
            }
            if (i < len && s[i] == '}') {
                i++;
                break;
            }
            rc = json_err(it, i, 0, 0, "',' or '}' expected", err);
            goto fail;
        }
    }
    i = ws(s, len, i);
    if (i < len) {
        rc = json_err(it, i, 0, 0, "end of file expected", err);
        goto fail;
    }
    if ((rc = nb_normalise(skel, name, err)) < 0) goto fail;
    free(key);
    it->pos = cells == BAD ? len : cells + 1;
    it->done = cells == BAD;
    *skeleton = skel;
    return 0;
fail:
    free(key);
    json_decref(skel);
    return rc;
}

int nbsplit_next(nbsplit_t *it, json_t **cell, nb_err_t *err)
{
    *cell = NULL;
    if (it->done) return 0;
    size_t i = ws(it->s, it->n, it->pos);
    int rc = 0;
    if (it->index == 0 && i < it->n && it->s[i] == ']') {
        it->done = 1;
        it->pos = i + 1;
        return 0;
    }
    size_t e = skip_value(it->s, it->n, i);
    if (e == BAD) {
        it->done = 1;
        return json_err(it, i, 0, 0, "unexpected end of input or invalid value", err);
    }
    json_t *c = parse_at(it, i, e, err, &rc);
    if (!c) {
        it->done = 1;
        return rc;
    }
    if ((rc = nb_normalise_cell(c, it->name, ++it->index, err)) < 0) {
        json_decref(c);
        it->done = 1;
        return rc;
    }
    i = ws(it->s, it->n, e);
    if (i < it->n && it->s[i] == ',') {
        it->pos = i + 1;
    } else if (i < it->n && it->s[i] == ']') {
        it->pos = i + 1;
        it->done = 1;
    } else {
        json_decref(c);
        it->done = 1;
        return json_err(it, i, 0, 0, "',' or ']' expected", err);
    }
    *cell = c;
    return 1;
}

size_t nbsplit_consumed(const nbsplit_t *it)
{
    return it->pos;
}
