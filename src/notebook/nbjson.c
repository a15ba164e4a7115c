/*
 * nbjson — see nbjson.h for what is matched and why.
 *
 * The emitter is a recursive walk (depth is bounded by jansson's parser
 * limit, 2048) that writes straight into the output buffer.  Python's
 * json encoder with indent=1 writes a non-empty container as
 *     "[" NL item "," NL item NL-1 "]"
 * where NL is "\n" plus one space per nesting level; empty containers are
 * "[]" and "{}".  Keys are sorted by code point, which for UTF-8 is plain
 * byte order (memcmp), so no decoding is needed.
 *
 * The "kind" passed down says which nbformat rule applies to a value;
 * nbjson_child_kind is the single table of those rules (a transcription
 * of nbformat/v4/rwbase.py split_lines and strip_transient).
 *
 * nbjson_dump_frame reuses the same walk: when it reaches the notebook's
 * non-empty "cells" array it writes the opening bracket, then switches the
 * output buffer to the suffix, skipping the cells themselves.
 */
#include "notebook/nbjson.h"
#include "util/jwrite.h"
#include "util/xmalloc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds that only exist inside the walk (after the public ones). */
enum {
    NBJSON_CELLS = NBJSON_LINES + 1, /* the notebook's "cells" array */
    NBJSON_OUTPUTS,                  /* a code cell's "outputs" array */
    NBJSON_ATTACHMENTS,              /* a cell's "attachments" object */
    NBJSON_NB_METADATA,              /* notebook "metadata": strip transient keys */
    NBJSON_CELL_METADATA             /* cell "metadata": strip "trusted" */
};

typedef struct nbjson_ctx {
    buf_t *out;
    buf_t *suffix;   /* frame mode: where output goes after the cells' "[" */
} nbjson_ctx_t;

/* A value of the object being written, kept for sorting. */
typedef struct nbjson_member {
    const char *key;
    size_t      klen;
    json_t     *val;
} nbjson_member_t;

static void nbjson_emit(nbjson_ctx_t *c, const json_t *v, int depth, int kind);

/* Append "\n" and `depth` spaces. */
static void nbjson_newline(buf_t *out, int depth)
{
    static const char spaces[] = "\n                                                                ";
    const size_t chunk = sizeof spaces - 2; /* spaces after the newline */
    size_t n = depth > 0 ? (size_t)depth : 0;
    size_t first = n < chunk ? n : chunk;
    buf_append(out, spaces, first + 1);
    for (n -= first; n > 0; n -= first) {
        first = n < chunk ? n : chunk;
        buf_append(out, spaces + 1, first);
    }
}

/* Bytes that need attention in a string: 1 = escape, 2 = may start a
   multi-byte line separator (U+0085 is C2 85, U+2028/9 are E2 80 A8/A9). */
static const unsigned char nbjson_special[256] = {
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
};

size_t nbjson_line_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (!nbjson_special[ch]) continue;
        switch (ch) {
        case '\n': case '\v': case '\f': case 0x1c: case 0x1d: case 0x1e:
            return i + 1;
        case '\r':
            return i + 1 < n && p[i + 1] == '\n' ? i + 2 : i + 1;
        case 0xc2:
            if (i + 1 < n && p[i + 1] == 0x85) return i + 2;
            break;
        case 0xe2:
            if (i + 2 < n && p[i + 1] == 0x80 && (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
                return i + 3;
            break;
        default:
            break;
        }
    }
    return n;
}

/* Does the decimal m * 10^e10 read back as d?  Spelled by hand: snprintf
   is the expensive part of this whole business. */
static int nbjson_reads_back(unsigned long long m, int e10, double d)
{
    char t[48], *p = t + sizeof t;
    *--p = '\0';
    unsigned x = (unsigned)(e10 < 0 ? -e10 : e10);
    do *--p = (char)('0' + x % 10); while (x /= 10);
    if (e10 < 0) *--p = '-';
    *--p = 'e';
    do *--p = (char)('0' + m % 10); while (m /= 10);
    return strtod(p, NULL) == d;
}

/* The 17 significant digits of d (correctly rounded by printf), from which
   shorter spellings are derived. */
typedef struct nbjson_digits {
    char d[18];   /* 17 digits */
    int  e10;     /* d = d[0].d[1..16] * 10^e10 */
} nbjson_digits_t;

/* Is there a spelling of d with p significant digits (1..17)?  If so, set
   *m and *e10 to it (d == m * 10^e10).  For a given digit count the only
   candidate is the correctly rounded value, except when d's significand is
   a power of two: the rounding interval is then lopsided (half as wide
   below) and a neighbour in the last digit may fit where the rounded value
   does not; more distant strings cannot (the interval is under two
   digit-steps wide). */
static int nbjson_try_digits(double d, const nbjson_digits_t *g, int p, int lopsided,
                             unsigned long long *m, int *e10)
{
    unsigned long long v = 0, lo = 1;
    for (int k = 0; k < p; k++) {
        v = v * 10 + (unsigned long long)(g->d[k] - '0');
        if (k) lo *= 10;
    }
    int ex = g->e10 - (p - 1);
    if (p < 17) {
        /* Round the 17-digit string to p digits.  An exact tie in the string
           may hide a value on either side of it (the 17 digits are rounded
           themselves): then let printf round the real value. */
        int r = g->d[p] - '0', tail = 0;
        for (int k = p + 1; k < 17; k++) tail |= g->d[k] != '0';
        if (r == 5 && !tail) {
            char tmp[40];
            snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
            v = 0;
            for (const char *q = tmp; *q && *q != 'e'; q++)
                if (*q >= '0' && *q <= '9') v = v * 10 + (unsigned long long)(*q - '0');
            ex = atoi(strchr(tmp, 'e') + 1) - (p - 1);
        } else if (r >= 5) {
            v++;
        }
        if (v == lo * 10) {   /* 999 rounded up to 1000: keep p digits */
            v = lo;
            ex++;
        }
    }
    unsigned long long cand[3] = { v, v - 1, v + 1 };
    for (int k = 0; k < (lopsided ? 3 : 1); k++) {
        if (cand[k] < lo || cand[k] >= lo * 10) continue;   /* would change the digit count */
        if (!nbjson_reads_back(cand[k], ex, d)) continue;
        *m = cand[k];
        *e10 = ex;
        return 1;
    }
    return 0;
}

/* Shortest decimal digits of finite d > 0 that strtod reads back as d, the
   way Python's repr (David Gay's dtoa mode 0) chooses them.  Writes the
   digits (no trailing zeros) and returns decpt with d = 0.DIGITS * 10^decpt.
   "Some p-digit string reads back as d" is monotone in p (append a zero),
   so the digit count is found by bisection: one snprintf and about five
   strtod calls per number. */
static int nbjson_shortest(double d, char digits[20])
{
    if (d < 9007199254740992.0 && d == floor(d)) {
        /* Integers below 2^53 are exact and 1 apart, so no shorter decimal
           can read back as one: its digits are the answer (common in data). */
        int nd = snprintf(digits, 20, "%llu", (unsigned long long)d);
        int decpt = nd;
        while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
        return decpt;
    }
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    int lopsided = (bits & 0xfffffffffffffULL) == 0;
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.16e", d);
    nbjson_digits_t g;
    int n = 0;
    const char *q = tmp;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && n < 17) g.d[n++] = *q;
    g.d[n] = '\0';
    NB_ASSERT(n == 17 && *q == 'e');
    g.e10 = atoi(q + 1);

    int lo = 1, hi = 17;   /* 17 significant digits always read back */
    unsigned long long m = 0;
    int e10 = 0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (nbjson_try_digits(d, &g, mid, lopsided, &m, &e10)) hi = mid;
        else lo = mid + 1;
    }
    int ok = nbjson_try_digits(d, &g, lo, lopsided, &m, &e10);
    NB_ASSERT(ok);
    int nd = snprintf(digits, 20, "%llu", m);
    int decpt = e10 + nd;
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    return decpt;
}

void nbjson_format_real(double d, buf_t *out)
{
    /* json.encoder.floatstr */
    if (isnan(d)) { buf_puts(out, "NaN"); return; }
    if (isinf(d)) { buf_puts(out, d > 0 ? "Infinity" : "-Infinity"); return; }
    if (signbit(d)) { buf_putc(out, '-'); d = -d; }
    if (d == 0) { buf_puts(out, "0.0"); return; }

    char dig[20];
    int decpt = nbjson_shortest(d, dig);
    int nd = (int)strlen(dig);
    /* Python's format_float_short, repr mode: exponent outside (-4, 16]. */
    if (decpt <= -4 || decpt > 16) {
        buf_putc(out, dig[0]);
        if (nd > 1) {
            buf_putc(out, '.');
            buf_append(out, dig + 1, (size_t)nd - 1);
        }
        int x = decpt - 1;
        buf_printf(out, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    } else if (decpt <= 0) {
        buf_puts(out, "0.");
        for (int k = 0; k < -decpt; k++) buf_putc(out, '0');
        buf_append(out, dig, (size_t)nd);
    } else if (decpt >= nd) {
        buf_append(out, dig, (size_t)nd);
        for (int k = nd; k < decpt; k++) buf_putc(out, '0');
        buf_puts(out, ".0");
    } else {
        buf_append(out, dig, (size_t)decpt);
        buf_putc(out, '.');
        buf_append(out, dig + decpt, (size_t)(nd - decpt));
    }
}

/* The string as a list of its lines, as split_lines stores it. */
static void nbjson_emit_lines(buf_t *out, const char *s, size_t n, int depth)
{
    if (n == 0) {
        buf_append(out, "[]", 2);   /* "".splitlines(True) == [] */
        return;
    }
    buf_putc(out, '[');
    size_t pos = 0;
    while (pos < n) {
        if (pos) buf_putc(out, ',');
        nbjson_newline(out, depth + 1);
        size_t l = nbjson_line_len(s + pos, n - pos);
        jwrite_string_py(out, s + pos, l);
        pos += l;
    }
    nbjson_newline(out, depth);
    buf_putc(out, ']');
}

static int nbjson_member_cmp(const void *a, const void *b)
{
    const nbjson_member_t *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(x->key, y->key, n);
    if (r) return r;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int nbjson_key_is(const nbjson_member_t *m, const char *lit)
{
    size_t n = strlen(lit);
    return m->klen == n && memcmp(m->key, lit, n) == 0;
}

/* Does a mime-bundle key get split?  rwbase._split_mimebundle. */
static int nbjson_mime_splits(const nbjson_member_t *m)
{
    return (m->klen >= 5 && memcmp(m->key, "text/", 5) == 0)
        || nbjson_key_is(m, "application/javascript")
        || nbjson_key_is(m, "image/svg+xml");
}

/* Keys strip_transient removes; returns 1 to skip the member. */
static int nbjson_skip(int kind, const nbjson_member_t *m)
{
    if (kind == NBJSON_NB_METADATA)
        return nbjson_key_is(m, "orig_nbformat") || nbjson_key_is(m, "orig_nbformat_minor")
            || nbjson_key_is(m, "signature");
    if (kind == NBJSON_CELL_METADATA)
        return nbjson_key_is(m, "trusted");
    return 0;
}

static const char *nbjson_str_member(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The kind of a member of an object of kind `kind` (the split_lines and
   strip_transient rules).  obj is the object, for the cell_type and
   output_type tests. */
static int nbjson_child_kind(int kind, const json_t *obj, const nbjson_member_t *m)
{
    const char *t;
    switch (kind) {
    case NBJSON_NOTEBOOK:
        if (nbjson_key_is(m, "cells")) return NBJSON_CELLS;
        if (nbjson_key_is(m, "metadata")) return NBJSON_NB_METADATA;
        return NBJSON_PLAIN;
    case NBJSON_CELL:
        if (nbjson_key_is(m, "source")) return NBJSON_LINES;
        if (nbjson_key_is(m, "metadata")) return NBJSON_CELL_METADATA;
        if (nbjson_key_is(m, "attachments")) return NBJSON_ATTACHMENTS;
        if (nbjson_key_is(m, "outputs")) {
            t = nbjson_str_member(obj, "cell_type");
            return t && strcmp(t, "code") == 0 ? NBJSON_OUTPUTS : NBJSON_PLAIN;
        }
        return NBJSON_PLAIN;
    case NBJSON_OUTPUT:
        t = nbjson_str_member(obj, "output_type");
        if (!t) return NBJSON_PLAIN;
        if (nbjson_key_is(m, "data")
            && (strcmp(t, "execute_result") == 0 || strcmp(t, "display_data") == 0))
            return NBJSON_MIMEBUNDLE;
        if (nbjson_key_is(m, "text") && strcmp(t, "stream") == 0) return NBJSON_LINES;
        return NBJSON_PLAIN;
    case NBJSON_MIMEBUNDLE:
        return nbjson_mime_splits(m) ? NBJSON_LINES : NBJSON_PLAIN;
    case NBJSON_ATTACHMENTS:
        return NBJSON_MIMEBUNDLE;
    default:
        return NBJSON_PLAIN;
    }
}

static void nbjson_emit_object(nbjson_ctx_t *c, const json_t *obj, int depth, int kind)
{
    nbjson_member_t stackbuf[32];
    size_t n = json_object_size(obj);
    nbjson_member_t *mem = n <= 32 ? stackbuf : xmalloc(n * sizeof *mem);
    size_t k = 0;
    const char *key;
    json_t *val;
    void *it;
    for (it = json_object_iter((json_t *)obj); it && k < n;
         it = json_object_iter_next((json_t *)obj, it)) {
        key = json_object_iter_key(it);
        val = json_object_iter_value(it);
        mem[k].key = key;
        mem[k].klen = json_object_iter_key_len(it);
        mem[k].val = val;
        if (!nbjson_skip(kind, &mem[k])) k++;
    }
    if (k == 0) {
        buf_append(c->out, "{}", 2);
    } else {
        qsort(mem, k, sizeof *mem, nbjson_member_cmp);
        buf_putc(c->out, '{');
        for (size_t i = 0; i < k; i++) {
            if (i) buf_putc(c->out, ',');
            nbjson_newline(c->out, depth + 1);
            jwrite_string_py(c->out, mem[i].key, mem[i].klen);
            buf_append(c->out, ": ", 2);
            nbjson_emit(c, mem[i].val, depth + 1, nbjson_child_kind(kind, obj, &mem[i]));
        }
        nbjson_newline(c->out, depth);
        buf_putc(c->out, '}');
    }
    if (mem != stackbuf) free(mem);
}

static void nbjson_emit_array(nbjson_ctx_t *c, const json_t *arr, int depth, int kind)
{
    size_t n = json_array_size(arr);
    if (n == 0) {
        buf_append(c->out, "[]", 2);
        return;
    }
    int ek = kind == NBJSON_CELLS ? NBJSON_CELL : kind == NBJSON_OUTPUTS ? NBJSON_OUTPUT
                                                                         : NBJSON_PLAIN;
    buf_putc(c->out, '[');
    if (kind == NBJSON_CELLS && c->suffix) {
        /* Frame mode: the caller joins the cached cell texts here. */
        nbjson_newline(c->out, depth + 1);
        c->out = c->suffix;
        c->suffix = NULL;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i) buf_putc(c->out, ',');
            nbjson_newline(c->out, depth + 1);
            nbjson_emit(c, json_array_get(arr, i), depth + 1, ek);
        }
    }
    nbjson_newline(c->out, depth);
    buf_putc(c->out, ']');
}

static void nbjson_emit(nbjson_ctx_t *c, const json_t *v, int depth, int kind)
{
    if (!v) {   /* defensive: a NULL member would be a bug elsewhere; write null */
        buf_append(c->out, "null", 4);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        nbjson_emit_object(c, v, depth, kind == NBJSON_LINES || kind == NBJSON_CELLS
                                                || kind == NBJSON_OUTPUTS ? NBJSON_PLAIN : kind);
        break;
    case JSON_ARRAY:
        nbjson_emit_array(c, v, depth,
                          kind == NBJSON_CELLS || kind == NBJSON_OUTPUTS ? kind : NBJSON_PLAIN);
        break;
    case JSON_STRING:
        if (kind == NBJSON_LINES)
            nbjson_emit_lines(c->out, json_string_value(v), json_string_length(v), depth);
        else
            jwrite_string_py(c->out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        char num[32];
        int len = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        buf_append(c->out, num, (size_t)len);
        break;
    }
    case JSON_REAL:
        nbjson_format_real(json_real_value(v), c->out);
        break;
    case JSON_TRUE:
        buf_append(c->out, "true", 4);
        break;
    case JSON_FALSE:
        buf_append(c->out, "false", 5);
        break;
    case JSON_NULL:
        buf_append(c->out, "null", 4);
        break;
    }
}

void nbjson_dump_value(const json_t *v, int depth, int kind, buf_t *out)
{
    nbjson_ctx_t c = { out, NULL };
    nbjson_emit(&c, v, depth, kind);
}

void nbjson_dump(const json_t *nb, buf_t *out)
{
    nbjson_dump_value(nb, 0, NBJSON_NOTEBOOK, out);
    buf_putc(out, '\n');
}

void nbjson_dump_frame(const json_t *nb, buf_t *prefix, buf_t *suffix)
{
    nbjson_ctx_t c = { prefix, suffix };
    nbjson_emit(&c, nb, 0, NBJSON_NOTEBOOK);
    buf_putc(c.out, '\n');   /* c.out is suffix once the cells were reached */
}
