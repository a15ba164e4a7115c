/*
 * jparse — a fast JSON reader producing jansson values (see jparse.h).
 *
 * Why: json_loadb reads through a byte-at-a-time stream (a call, a UTF-8
 * check and a strbuffer append per character).  On a notebook of 8 MB, most
 * of it base64 and stream text, that was two thirds of `nbhub render`.
 * Here a string is scanned eight bytes at a time for the only bytes that
 * need attention (quote, backslash, control, non-ASCII), and handed to
 * json_stringn_nocheck in one piece.
 *
 * How it stays equal to jansson: the grammar and limits below are
 * jansson 2.14's (number syntax, escapes, surrogate pairs, UTF-8 rules,
 * "\u0000" only with JSON_ALLOW_NUL, no NUL in keys, depth counted per
 * value up to 2048, duplicate keys last-wins unless rejected).  This file
 * only decides "valid, and here is the tree"; whenever it finds anything
 * wrong it gives the input to json_loadb, so errors — text, line, column —
 * are jansson's own, and a disagreement can only ever cost time, not
 * correctness.  fuzz/fuzz_jparse.c checks both halves against json_loadb.
 */
#include "util/jparse.h"
#include "util/fsutil.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define JPARSE_MAX_DEPTH 2048   /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct {
    const unsigned char *p, *end;
    size_t flags;
    int    depth;
    char  *tmp;     /* unescaped strings and number tokens */
    size_t tlen, tcap;
} jp_t;

static json_t *jp_value(jp_t *j);

static void jp_ws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static void jp_put(jp_t *j, const void *s, size_t n)
{
    if (j->tlen + n + 1 > j->tcap) {
        j->tcap = (j->tlen + n + 1) * 2;
        j->tmp = xrealloc(j->tmp, j->tcap);
    }
    memcpy(j->tmp + j->tlen, s, n);
    j->tlen += n;
}

/* The first byte at or after p that a string cannot take as is. */
static const unsigned char *jp_run(const unsigned char *p, const unsigned char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w, q, b;
        memcpy(&w, p, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        /* per byte: >= 0x80, < 0x20, == '"', == '\\'.  Borrows only run
           upwards from a true hit, so the lowest flagged byte is exact. */
        uint64_t m = (w & high) | ((w - ones * 0x20) & ~w & high) |
                     ((q - ones) & ~q & high) | ((b - ones) & ~b & high);
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    return p;
}

/* Length of the valid UTF-8 sequence at p (jansson's utf8_check_first and
   utf8_check_full: no overlongs, no surrogates, nothing past U+10FFFF), or 0. */
static size_t jp_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t k;
    uint32_t v;
    if (c < 0xC2) return 0;
    if (c <= 0xDF) k = 2, v = c & 0x1F;
    else if (c <= 0xEF) k = 3, v = c & 0x0F;
    else if (c <= 0xF4) k = 4, v = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if ((k == 3 && v < 0x800) || (k == 4 && v < 0x10000)) return 0;
    return k;
}

static int jp_hex4(const unsigned char *p, const unsigned char *end, uint32_t *v)
{
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        *v = (*v << 4) | d;
    }
    return 0;
}

/* One \u escape (p after the 'u'), surrogate pairs joined, written to tmp
   as UTF-8.  Returns the bytes consumed, or 0. */
static size_t jp_unicode(jp_t *j, const unsigned char *p)
{
    uint32_t v, lo;
    size_t used = 4;
    if (jp_hex4(p, j->end, &v) < 0) return 0;
    if (v >= 0xDC00 && v <= 0xDFFF) return 0;
    if (v >= 0xD800 && v <= 0xDBFF) {
        if (j->end - p < 6 || p[4] != '\\' || p[5] != 'u' || jp_hex4(p + 6, j->end, &lo) < 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return 0;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        used = 10;
    }
    if (v == 0 && !(j->flags & JSON_ALLOW_NUL)) return 0;
    unsigned char u[4];
    size_t k;
    if (v < 0x80) u[0] = (unsigned char)v, k = 1;
    else if (v < 0x800) u[0] = 0xC0 | (v >> 6), u[1] = 0x80 | (v & 0x3F), k = 2;
    else if (v < 0x10000)
        u[0] = 0xE0 | (v >> 12), u[1] = 0x80 | ((v >> 6) & 0x3F), u[2] = 0x80 | (v & 0x3F), k = 3;
    else
        u[0] = 0xF0 | (v >> 18), u[1] = 0x80 | ((v >> 12) & 0x3F), u[2] = 0x80 | ((v >> 6) & 0x3F),
        u[3] = 0x80 | (v & 0x3F), k = 4;
    jp_put(j, u, k);
    return used;
}

/* A string, j->p just past its opening quote.  On success *s, *n point into
   the input (no escapes) or into j->tmp (valid until the next string). */
static int jp_string(jp_t *j, const char **s, size_t *n)
{
    const unsigned char *p = j->p, *start = p, *end = j->end;
    int esc = 0;
    for (;;) {
        const unsigned char *q = jp_run(p, end);
        if (esc) jp_put(j, p, (size_t)(q - p));
        p = q;
        if (p >= end) return -1;
        unsigned c = *p;
        if (c == '"') break;
        if (c < 0x20) return -1;
        if (c >= 0x80) {
            size_t k = jp_utf8(p, end);
            if (!k) return -1;
            if (esc) jp_put(j, p, k);
            p += k;
            continue;
        }
        /* a backslash: from here on the string is built in tmp */
        if (!esc) {
            esc = 1;
            j->tlen = 0;
            jp_put(j, start, (size_t)(p - start));
        }
        if (++p >= end) return -1;
        char e;
        switch (*p++) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '/': e = '/'; break;
        case 'b': e = '\b'; break;
        case 'f': e = '\f'; break;
        case 'n': e = '\n'; break;
        case 'r': e = '\r'; break;
        case 't': e = '\t'; break;
        case 'u': {
            size_t used = jp_unicode(j, p);
            if (!used) return -1;
            p += used;
            continue;
        }
        default: return -1;
        }
        jp_put(j, &e, 1);
    }
    j->p = p + 1;
    if (esc) *s = j->tmp, *n = j->tlen;
    else *s = (const char *)start, *n = (size_t)(p - start);
    return 0;
}

int jparse_string(const char *lit, size_t n, char **out, size_t *outlen, size_t *outcap)
{
    if (n < 2 || lit[0] != '"') return -1;
    jp_t j = { (const unsigned char *)lit + 1, (const unsigned char *)lit + n, 0, 0,
               *out, 0, *outcap };
    const char *s;
    size_t len;
    int rc = jp_string(&j, &s, &len);
    *out = j.tmp;           /* jp_put may have grown it */
    *outcap = j.tcap;
    if (rc < 0 || j.p != j.end) return -1;   /* refused, or not one whole literal */
    if (s != j.tmp) {       /* no escapes: the bytes are the input's */
        if (len + 1 > *outcap) {
            *outcap = len + 1;
            *out = xrealloc(*out, *outcap);
        }
        memcpy(*out, s, len);
    }
    *outlen = len;
    return 0;
}

static int jp_digits(jp_t *j)
{
    const unsigned char *p0 = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > p0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, converted as jansson does:
   strtoll for integers (out of range fails), strtod for reals (overflow to
   infinity fails, underflow does not). */
static json_t *jp_number(jp_t *j)
{
    const unsigned char *p0 = j->p;
    int real = 0;
    if (*j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0') {
        j->p++;
        if (j->p < j->end && *j->p >= '0' && *j->p <= '9') return NULL;
    } else if (!jp_digits(j)) {
        return NULL;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        real = 1;
        if (!jp_digits(j)) return NULL;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        real = 1;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!jp_digits(j)) return NULL;
    }
    /* strto* need a terminated copy: the input is a length, not a C string */
    j->tlen = 0;
    jp_put(j, p0, (size_t)(j->p - p0));
    j->tmp[j->tlen] = '\0';
    errno = 0;
    if (!real) {
        long long v = strtoll(j->tmp, NULL, 10);
        return errno == ERANGE ? NULL : json_integer(v);
    }
    double d = strtod(j->tmp, NULL);
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) return NULL;
    return json_real(d);
}

static json_t *jp_literal(jp_t *j, const char *word, json_t *v)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return NULL;
    j->p += n;
    /* jansson reads a word as a run of letters: "truex" is no "true" */
    if (j->p < j->end && ((*j->p | 0x20) >= 'a' && (*j->p | 0x20) <= 'z')) return NULL;
    return v;
}

/* The step after '[' or '{' (j->p on it): 1 if the container is empty
   (close consumed), 0 to read the first item. */
static int jp_open(jp_t *j, unsigned char close)
{
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 1;
    }
    return 0;
}

/* The step after an item: 1 at the close (consumed), 0 after a comma (the
   next item follows), -1 for anything else. */
static int jp_next(jp_t *j, unsigned char close)
{
    jp_ws(j);
    if (j->p >= j->end) return -1;
    if (*j->p == close) {
        j->p++;
        return 1;
    }
    if (*j->p++ != ',') return -1;
    jp_ws(j);
    return 0;
}

static json_t *jp_array(jp_t *j)
{
    json_t *a = json_array();
    if (jp_open(j, ']')) return a;
    for (;;) {
        json_t *v = jp_value(j);
        if (!v || json_array_append_new(a, v) < 0) break;
        int r = jp_next(j, ']');
        if (r > 0) return a;
        if (r < 0) break;
    }
    json_decref(a);
    return NULL;
}

/* One "key": value into o: 0, or -1 for anything jansson would refuse. */
static int jp_member(jp_t *j, json_t *o)
{
    const char *k;
    size_t kn;
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    if (jp_string(j, &k, &kn) < 0 || memchr(k, '\0', kn)) return -1;
    /* the key may sit in tmp, which the value's strings reuse */
    char kbuf[64], *key = kn < sizeof kbuf ? kbuf : xmalloc(kn + 1);
    memcpy(key, k, kn);
    key[kn] = '\0';
    int rc = -1;
    if (!(j->flags & JSON_REJECT_DUPLICATES) || !json_object_getn(o, key, kn)) {
        jp_ws(j);
        if (j->p < j->end && *j->p++ == ':') {
            jp_ws(j);
            json_t *v = jp_value(j);
            if (v && json_object_setn_new_nocheck(o, key, kn, v) == 0) rc = 0;
        }
    }
    if (key != kbuf) free(key);
    return rc;
}

static json_t *jp_object(jp_t *j)
{
    json_t *o = json_object();
    if (jp_open(j, '}')) return o;
    for (;;) {
        if (jp_member(j, o) < 0) break;
        int r = jp_next(j, '}');
        if (r > 0) return o;
        if (r < 0) break;
    }
    json_decref(o);
    return NULL;
}

static json_t *jp_value(jp_t *j)
{
    json_t *v = NULL;
    if (++j->depth > JPARSE_MAX_DEPTH || j->p >= j->end) return NULL;
    switch (*j->p) {
    case '{': v = jp_object(j); break;
    case '[': v = jp_array(j); break;
    case '"': {
        const char *s;
        size_t n;
        j->p++;
        if (jp_string(j, &s, &n) == 0) v = json_stringn_nocheck(s, n);
        break;
    }
    case 't': v = jp_literal(j, "true", json_true()); break;
    case 'f': v = jp_literal(j, "false", json_false()); break;
    case 'n': v = jp_literal(j, "null", json_null()); break;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) v = jp_number(j);
    }
    /* jansson's quirk, kept so the trees stay equal: the byte that ends a
       number or a word is pushed back into its stream, and a pushed-back
       NUL is lost — "[1\0]" is "[1]" to it. */
    if (v && !json_is_object(v) && !json_is_array(v) && !json_is_string(v) && j->p < j->end && *j->p == '\0')
        j->p++;
    j->depth--;
    return v;
}

json_t *jparse_fast(const char *s, size_t n, size_t flags)
{
    if (!s || (flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL))) return NULL;
    jp_t j = { (const unsigned char *)s, (const unsigned char *)s + n, flags, 0, NULL, 0, 0 };
    jp_ws(&j);
    json_t *v = NULL;
    if ((flags & JSON_DECODE_ANY) || (j.p < j.end && (*j.p == '[' || *j.p == '{'))) v = jp_value(&j);
    if (v) {
        jp_ws(&j);
        if (j.p != j.end) {
            json_decref(v);
            v = NULL;
        }
    }
    free(j.tmp);
    return v;
}

json_t *jparse(const char *s, size_t n, size_t flags, json_error_t *err)
{
    json_t *v = jparse_fast(s, n, flags);
    /* invalid, or a flag of jansson's only: jansson says what is wrong, and where */
    if (!v) return json_loadb(s, n, flags, err);
    if (err) {
        memset(err, 0, sizeof *err);
        err->line = err->column = -1;
        strcpy(err->source, "<buffer>");
    }
    return v;
}

json_t *jparse_file_regular(const char *path, size_t max)
{
    char *text = NULL;
    size_t len = 0;
    if (fs_read_regular(path, max, &text, &len, NULL) < 0) return NULL;
    json_t *j = jparse(text, len, 0, NULL);
    free(text);
    return j;
}
