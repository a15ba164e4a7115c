/*
 * yamljson — YAML to jansson, with PyYAML safe_load's typing.
 *
 * libyaml does the parsing (it is the C library PyYAML's own parser mirrors,
 * so the same documents parse and the same error positions come out); this
 * file is the composer + resolver + constructor of PyYAML, ported:
 *
 *   - A plain scalar (or one tagged "!") is typed by PyYAML's YAML 1.1
 *     implicit resolvers, whose regexes are hand-matched below (py_match_*).
 *     Quoted scalars are strings.  Note PyYAML's quirks we keep: "0o17" and
 *     "1e3" are strings (no 0o prefix, exponent floats need a dot and a
 *     sign), "010" is octal 8, "1:30" is sexagesimal 90, "y"/"n" are strings.
 *   - Explicit tags run the matching constructor on the text regardless of
 *     its shape (!!float 1e3 -> 1000.0, !!int 1x -> error), as PyYAML does.
 *   - Mappings honour merge keys (<<) with SafeConstructor.flatten_mapping's
 *     order: merged pairs first (a list of mappings in reverse), then the
 *     mapping's own pairs; a dict keeps a key's first position and last value.
 *   - Keys become Python's str() of the key, and keys equal in Python
 *     (1, 1.0, True) collapse into the first one, as in a dict.
 *
 * Aliases are expanded into deep copies so the result is a tree that callers
 * may mutate.  That makes "billion laughs" documents expensive, so every
 * alias adds the node count of its anchor's subtree and parsing stops at
 * YAMLJSON_MAX_NODES; nesting stops at YAMLJSON_MAX_DEPTH (the builder
 * recurses once per level).
 */
#include "util/yamljson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util/buf.h"
#include "util/xmalloc.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

/* Python refuses int <-> decimal str conversions longer than this (3.11's
 * sys.int_info.default_max_str_digits); PyYAML's int() hits the same wall. */
#define PY_MAX_STR_DIGITS 4300

/* ---- Python-compatible numbers ----------------------------------------- */

json_t *yamljson_pynum(const char *repr)
{
    return json_pack("{ss}", YAMLJSON_PYNUM_KEY, repr);
}

const char *yamljson_pynum_repr(const json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) != 1)
        return NULL;
    return json_string_value(json_object_get(v, YAMLJSON_PYNUM_KEY));
}

/* Turn a finite double into Python's digits: the correctly rounded
 * %.*e for the smallest precision that round-trips, and if that misses
 * (possible next to a power of two, where the rounding interval is
 * lopsided) its neighbours one unit up or down, as David Gay's shortest
 * mode would find.  Writes the digits (no dot) and returns the decimal
 * exponent of the first digit. */
static int float_digits(double v, char *digits)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            goto found;
        /* Try the two neighbours of the rounded mantissa. */
        for (int dir = -1; dir <= 1; dir += 2) {
            char alt[40];
            memcpy(alt, tmp, sizeof alt);
            char *e = strchr(alt, 'e');
            char *p = e - 1;
            int carry = 1;
            while (carry && p >= alt && *p != '-') {
                if (*p == '.') { p--; continue; }
                if (dir > 0) {
                    if (*p == '9') { *p = '0'; p--; } else { (*p)++; carry = 0; }
                } else {
                    if (*p == '0') { *p = '9'; p--; } else { (*p)--; carry = 0; }
                }
            }
            /* A carry out of the first digit or a leading zero changes the
             * exponent; such neighbours are never the shorter answer. */
            if (carry)
                continue;
            const char *first = alt[0] == '-' ? alt + 1 : alt;
            if (*first == '0')
                continue;
            if (strtod(alt, NULL) == v) {
                memcpy(tmp, alt, sizeof tmp);
                goto found;
            }
        }
    }
    snprintf(tmp, sizeof tmp, "%.16e", v);
found:;
    const char *s = tmp;
    size_t n = 0;
    if (*s == '-')
        s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[n++] = *s;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    return atoi(s + 1);
}

void yamljson_float_repr(double v, char out[YAMLJSON_REPR_MAX])
{
    if (isnan(v)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v < 0 ? "-inf" : "inf");
        return;
    }
    char digits[24];
    int exp10 = float_digits(v, digits);
    int nd = (int)strlen(digits);
    int decpt = exp10 + 1;   /* value = 0.DIGITS * 10^decpt */
    char *o = out;
    if (signbit(v))
        *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        /* repr switches to exponent form outside 1e-4 <= |v| < 1e16. */
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++)
            *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt < nd) {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    } else {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int i = nd; i < decpt; i++)
            *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    }
    *o = '\0';
}

/* A real, or the pynum stand-in when JSON cannot hold it. */
static json_t *py_float_json(double v)
{
    if (isfinite(v))
        return json_real(v);
    char r[YAMLJSON_REPR_MAX];
    yamljson_float_repr(v, r);
    return yamljson_pynum(r);
}

/* An arbitrary-size non-negative integer, base 1e9 limbs, least significant
 * first: enough to turn any digit string (in base 2..60) into decimal. */
typedef struct bignum {
    uint32_t *limb;
    size_t    n;
} bignum_t;

#define LIMB_BASE 1000000000u

static void bn_muladd(bignum_t *b, uint32_t mul, uint32_t add)
{
    uint64_t carry = add;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t t = (uint64_t)b->limb[i] * mul + carry;
        b->limb[i] = (uint32_t)(t % LIMB_BASE);
        carry = t / LIMB_BASE;
    }
    while (carry) {
        b->limb = xrealloc(b->limb, (b->n + 1) * sizeof *b->limb);
        b->limb[b->n++] = (uint32_t)(carry % LIMB_BASE);
        carry /= LIMB_BASE;
    }
}

/* json integer if it fits in 64 bits, else the pynum stand-in with the
 * decimal digits; NULL if Python could not print it (too many digits). */
static json_t *bn_to_json(bignum_t *b, int neg)
{
    size_t n = b->n;
    while (n > 0 && b->limb[n - 1] == 0)
        n--;
    if (n <= 2 || (n == 3 && b->limb[2] < 10)) {
        uint64_t u = 0;
        for (size_t i = n; i-- > 0;)
            u = u * LIMB_BASE + b->limb[i];
        if (!neg && u <= (uint64_t)INT64_MAX)
            return json_integer((json_int_t)u);
        if (neg && u <= (uint64_t)INT64_MAX + 1)
            return json_integer(u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)u);
    }
    buf_t s = BUF_INIT;
    if (neg)
        buf_putc(&s, '-');
    buf_printf(&s, "%" PRIu32, b->limb[n - 1]);
    for (size_t i = n - 1; i-- > 0;)
        buf_printf(&s, "%09" PRIu32, b->limb[i]);
    json_t *v = NULL;
    if (s.len - (size_t)neg <= PY_MAX_STR_DIGITS)
        v = yamljson_pynum(s.data);
    buf_free(&s);
    return v;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'z') return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return 99;
}

/* Accumulate the digits s[0..n) in `base` into b; 0 if a digit is invalid
 * or there are none (Python's int('', 2) is an error too). */
static int bn_digits(bignum_t *b, const char *s, size_t n, unsigned base)
{
    if (n == 0 || (base == 10 && n > PY_MAX_STR_DIGITS))
        return 0;
    for (size_t i = 0; i < n; i++) {
        int d = digit_value(s[i]);
        if (d >= (int)base)
            return 0;
        bn_muladd(b, base, (uint32_t)d);
    }
    return 1;
}

/* Python's str.isspace() for one code point. */
static int py_isspace(uint32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f))
        return 1;
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decode one UTF-8 sequence (input is trusted to be valid UTF-8 or at least
 * bounded); returns its length. */
static size_t utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = u[0] < 0x80 ? 1 : u[0] < 0xe0 ? 2 : u[0] < 0xf0 ? 3 : 4;
    if (len > n)
        len = n;
    uint32_t c = len == 1 ? u[0] : len == 2 ? u[0] & 0x1f : len == 3 ? u[0] & 0x0f : u[0] & 0x07;
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (u[i] & 0x3f);
    *cp = c;
    return len;
}

/* Python's str.strip() bounds on a UTF-8 string. */
static void py_strip(const char **s, size_t *n)
{
    const char *p = *s, *end = *s + *n;
    while (p < end) {
        uint32_t c;
        size_t l = utf8_next(p, (size_t)(end - p), &c);
        if (!py_isspace(c))
            break;
        p += l;
    }
    /* Strip from the right by scanning forward and remembering the end of
     * the last non-space character (UTF-8 is awkward backwards). */
    const char *last = p;
    for (const char *q = p; q < end;) {
        uint32_t c;
        size_t l = utf8_next(q, (size_t)(end - q), &c);
        q += l;
        if (!py_isspace(c))
            last = q;
    }
    *s = p;
    *n = (size_t)(last - p);
}

/* Copy digits with PEP 515 underscores (single, between digits) removed;
 * returns the position after the digit run or NULL if malformed. */
static const char *py_digitpart(const char *p, const char *end, buf_t *clean)
{
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    while (p < end) {
        if (*p >= '0' && *p <= '9') {
            buf_putc(clean, *p++);
        } else if (*p == '_' && p + 1 < end && p[1] >= '0' && p[1] <= '9') {
            p++;
        } else {
            break;
        }
    }
    return p;
}

int yamljson_py_int(const char *str, json_t **out)
{
    const char *s = str;
    size_t n = strlen(str);
    py_strip(&s, &n);
    const char *end = s + n;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    buf_t clean = BUF_INIT;
    const char *p = py_digitpart(s, end, &clean);
    int ok = p == end && clean.len <= PY_MAX_STR_DIGITS;
    if (ok) {
        bignum_t b = { NULL, 0 };
        bn_digits(&b, clean.data, clean.len, 10);
        *out = bn_to_json(&b, neg);
        free(b.limb);
        ok = *out != NULL;
    }
    buf_free(&clean);
    return ok;
}

int yamljson_py_float(const char *str, json_t **out)
{
    const char *s = str;
    size_t n = strlen(str);
    py_strip(&s, &n);
    const char *end = s + n;
    buf_t clean = BUF_INIT;
    int ok = 0;
    if (s < end && (*s == '+' || *s == '-'))
        buf_putc(&clean, *s++);
    size_t rest = (size_t)(end - s);
    if ((rest == 3 && strncasecmp(s, "inf", 3) == 0) ||
        (rest == 8 && strncasecmp(s, "infinity", 8) == 0)) {
        *out = py_float_json(clean.len && clean.data[0] == '-' ? -INFINITY : INFINITY);
        ok = 1;
    } else if (rest == 3 && strncasecmp(s, "nan", 3) == 0) {
        *out = yamljson_pynum("nan");
        ok = 1;
    } else {
        /* digitpart ["." [digitpart]] | "." digitpart, then [e [+-] digitpart] */
        const char *p = s;
        int have = 0;
        if (p < end && *p >= '0' && *p <= '9') {
            p = py_digitpart(p, end, &clean);
            have = 1;
        }
        if (p && p < end && *p == '.') {
            buf_putc(&clean, *p++);
            if (p < end && *p >= '0' && *p <= '9') {
                p = py_digitpart(p, end, &clean);
                have = 1;
            }
        }
        if (p && have && p < end && (*p == 'e' || *p == 'E')) {
            buf_putc(&clean, *p++);
            if (p < end && (*p == '+' || *p == '-'))
                buf_putc(&clean, *p++);
            p = py_digitpart(p, end, &clean);
        }
        if (p == end && have) {
            *out = py_float_json(strtod(clean.data, NULL));
            ok = 1;
        }
    }
    buf_free(&clean);
    return ok;
}

/* ---- PyYAML's implicit resolvers, hand-matched ------------------------- */

enum ykind { Y_STR, Y_NULL, Y_BOOL, Y_INT, Y_FLOAT, Y_TIMESTAMP, Y_MERGE, Y_VALUE };

static int isdig(char c) { return c >= '0' && c <= '9'; }

/* Length of a run of chars from `set` starting at p (set given as a test). */
static size_t run(const char *p, const char *end, int (*ok)(char))
{
    const char *q = p;
    while (q < end && ok(*q))
        q++;
    return (size_t)(q - p);
}
static int is_dig_(char c) { return isdig(c) || c == '_'; }
static int is_bin_(char c) { return c == '0' || c == '1' || c == '_'; }
static int is_oct_(char c) { return (c >= '0' && c <= '7') || c == '_'; }
static int is_hex_(char c) { return isdig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '_'; }

/* `(?::[0-5]?[0-9])+` starting at p: returns the end, or NULL if not even one. */
static const char *sexa_parts(const char *p, const char *end)
{
    const char *ok = NULL;
    while (p < end && *p == ':') {
        size_t d = run(p + 1, end, isdig);
        if (d == 1 || (d == 2 && p[1] <= '5'))
            p = ok = p + 1 + d;
        else
            break;
    }
    return ok;
}

static int match_int(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (p < end && (*p == '-' || *p == '+'))
        p++;
    if (p >= end)
        return 0;
    if (end - p >= 3 && p[0] == '0' && p[1] == 'b' && p + 2 + run(p + 2, end, is_bin_) == end)
        return 1;
    if (end - p >= 3 && p[0] == '0' && p[1] == 'x' && p + 2 + run(p + 2, end, is_hex_) == end)
        return 1;
    if (p[0] == '0')
        return p + 1 == end || p + 1 + run(p + 1, end, is_oct_) == end;
    if (p[0] >= '1' && p[0] <= '9') {
        const char *q = p + 1 + run(p + 1, end, is_dig_);
        return q == end || sexa_parts(q, end) == end;
    }
    return 0;
}

/* `(?:[eE][-+][0-9]+)?$` */
static int float_exp_end(const char *p, const char *end)
{
    if (p == end)
        return 1;
    if ((*p == 'e' || *p == 'E') && end - p >= 3 && (p[1] == '-' || p[1] == '+'))
        return p + 2 + run(p + 2, end, isdig) == end && isdig(p[2]);
    return 0;
}

static int match_float(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    if (n == 4 && s[0] == '.' &&
        (!memcmp(s + 1, "nan", 3) || !memcmp(s + 1, "NaN", 3) || !memcmp(s + 1, "NAN", 3)))
        return 1;
    if (p < end && *p == '.' && p + 1 < end && isdig(p[1])) {   /* unsigned .5 */
        const char *q = p + 1 + run(p + 1, end, is_dig_);
        if (float_exp_end(q, end))
            return 1;
    }
    if (p < end && (*p == '-' || *p == '+'))
        p++;
    if (end - p == 4 && p[0] == '.' &&
        (!memcmp(p + 1, "inf", 3) || !memcmp(p + 1, "Inf", 3) || !memcmp(p + 1, "INF", 3)))
        return 1;
    if (p >= end || !isdig(*p))
        return 0;
    const char *q = p + 1 + run(p + 1, end, is_dig_);
    if (q < end && *q == '.') {
        const char *r = q + 1 + run(q + 1, end, is_dig_);
        return float_exp_end(r, end);
    }
    const char *r = sexa_parts(q, end);
    if (r && r < end && *r == '.')
        return r + 1 + run(r + 1, end, is_dig_) == end;
    return 0;
}

/* Fields of a timestamp, as PyYAML's timestamp_regexp captures them. */
typedef struct ts {
    int year, month, day, has_time, hour, minute, second;
    const char *frac;
    size_t frac_len;
    int tz;              /* 0 none, 'Z', '+' or '-' */
    int tz_hour, tz_minute;
} ts_t;

/* A run of 1 or 2 digits (`[0-9][0-9]?`), its value in *v. */
static const char *dig12(const char *p, const char *end, int *v)
{
    size_t d = run(p, end, isdig);
    if (d < 1 || d > 2)
        return NULL;
    *v = d == 1 ? p[0] - '0' : (p[0] - '0') * 10 + (p[1] - '0');
    return p + d;
}

static int match_timestamp(const char *s, size_t n, ts_t *t)
{
    const char *p = s, *end = s + n;
    memset(t, 0, sizeof *t);
    if (n < 8 || run(p, end, isdig) != 4 || p[4] != '-')
        return 0;
    t->year = atoi(p);   /* stops at '-' */
    p += 5;
    if (!(p = dig12(p, end, &t->month)) || p >= end || *p != '-')
        return 0;
    if (!(p = dig12(p + 1, end, &t->day)))
        return 0;
    if (p == end)   /* date only: the resolver wants exactly YYYY-MM-DD */
        return n == 10;
    if (*p == 'T' || *p == 't')
        p++;
    else if (*p == ' ' || *p == '\t')
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
    else
        return 0;
    t->has_time = 1;
    if (!(p = dig12(p, end, &t->hour)) || p >= end || *p != ':')
        return 0;
    p++;
    if (end - p < 5 || !isdig(p[0]) || !isdig(p[1]) || p[2] != ':' || !isdig(p[3]) || !isdig(p[4]))
        return 0;
    t->minute = (p[0] - '0') * 10 + (p[1] - '0');
    t->second = (p[3] - '0') * 10 + (p[4] - '0');
    p += 5;
    if (p < end && *p == '.') {
        t->frac = ++p;
        t->frac_len = run(p, end, isdig);
        p += t->frac_len;
    }
    if (p == end)
        return 1;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && *p == 'Z') {
        t->tz = 'Z';
        return p + 1 == end;
    }
    if (p >= end || (*p != '+' && *p != '-'))
        return 0;
    t->tz = *p;
    if (!(p = dig12(p + 1, end, &t->tz_hour)))
        return 0;
    if (p == end)
        return 1;
    if (end - p == 3 && p[0] == ':' && isdig(p[1]) && isdig(p[2])) {
        t->tz_minute = (p[1] - '0') * 10 + (p[2] - '0');
        return 1;
    }
    return 0;
}

static int bool_word(const char *s, size_t n)
{
    static const char *const words[] = {
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    };
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strlen(words[i]) == n && !memcmp(words[i], s, n))
            return 1;
    return 0;
}

/* PyYAML's Resolver.resolve for a scalar with implicit typing on. */
static enum ykind resolve_plain(const char *s, size_t n)
{
    if (n == 0 || (n == 1 && s[0] == '~') ||
        (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4))))
        return Y_NULL;
    if (bool_word(s, n))
        return Y_BOOL;
    if (match_float(s, n))
        return Y_FLOAT;
    if (match_int(s, n))
        return Y_INT;
    ts_t t;
    if (match_timestamp(s, n, &t))
        return Y_TIMESTAMP;
    if (n == 2 && s[0] == '<' && s[1] == '<')
        return Y_MERGE;
    if (n == 1 && s[0] == '=')
        return Y_VALUE;
    return Y_STR;
}

int yamljson_plain_is_str(const char *s, size_t n)
{
    return resolve_plain(s, n) == Y_STR;
}

/* ---- the builder -------------------------------------------------------- */

typedef struct yj_anchor {
    json_t *value;    /* NULL while the anchored node is being built */
    size_t  nodes;
} yj_anchor_t;

typedef struct yj {
    yaml_parser_t parser;
    const char   *name;
    const char   *text;
    size_t        len;
    nb_err_t     *err;
    size_t        nodes;
    json_t       *anchor_index;   /* anchor name -> index into anchors */
    yj_anchor_t  *anchors;
    size_t        nanchors;
} yj_t;

static int yj_fail(yj_t *y, yaml_mark_t mark, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int yj_fail(yj_t *y, yaml_mark_t mark, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    err_set(y->err, code, "%s:%zu:%zu: %s", y->name, mark.line + 1, mark.column + 1, msg);
    free(msg);
    return code;
}

/* Fetch the next event, turning libyaml's error into ours. */
static int yj_next(yj_t *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return 0;
    yaml_parser_t *p = &y->parser;
    const char *problem = p->problem ? p->problem : "out of memory";
    yaml_mark_t mark = p->problem_mark;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark: count it out. */
        mark.line = mark.column = 0;
        for (size_t i = 0; i < p->problem_offset && i < y->len; i++) {
            if (y->text[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else if (((unsigned char)y->text[i] & 0xc0) != 0x80) {
                mark.column++;
            }
        }
        if (p->problem_value != -1)
            return yj_fail(y, mark, -EINVAL, "%s (#%X)", problem, (unsigned)p->problem_value);
        return yj_fail(y, mark, -EINVAL, "%s", problem);
    }
    if (p->context)
        return yj_fail(y, mark, -EINVAL, "%s (%s at %zu:%zu)", problem, p->context,
                       p->context_mark.line + 1, p->context_mark.column + 1);
    return yj_fail(y, mark, -EINVAL, "%s", problem);
}

/* Python's str() of a constructed key, and a second string that is equal
 * for keys Python's dict treats as equal (1 == 1.0 == True). */
static int yj_key_strings(yj_t *y, yaml_mark_t mark, const json_t *k, char **str, char **canon)
{
    char r[YAMLJSON_REPR_MAX];
    const char *pn = yamljson_pynum_repr(k);
    switch (json_typeof(k)) {
    case JSON_STRING:
        *str = xstrndup(json_string_value(k), json_string_length(k));
        *canon = xasprintf("s%s", *str);
        return 0;
    case JSON_NULL:
        *str = xstrdup("None");
        *canon = xstrdup("n");
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        *str = xstrdup(json_is_true(k) ? "True" : "False");
        *canon = xstrdup(json_is_true(k) ? "#1" : "#0");
        return 0;
    case JSON_INTEGER:
        *str = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(k));
        *canon = xasprintf("#%s", *str);
        return 0;
    case JSON_REAL: {
        double d = json_real_value(k);
        yamljson_float_repr(d, r);
        *str = xstrdup(r);
        if (d == 0)
            *canon = xstrdup("#0");
        else if (d == floor(d))
            *canon = xasprintf("#%.0f", d);
        else
            *canon = xasprintf("r%s", r);
        return 0;
    }
    case JSON_OBJECT:
        if (pn) {
            *str = xstrdup(pn);
            /* Big ints compare with ints; inf and nan with floats. */
            *canon = xasprintf("%c%s", strpbrk(pn, "in") ? 'r' : '#', pn);
            return 0;
        }
        break;
    default:
        break;
    }
    return yj_fail(y, mark, -EINVAL, "found unhashable key (while constructing a mapping)");
}

static int yj_node(yj_t *y, yaml_event_t *ev, int depth, int as_key, json_t **out, int *is_merge);

static json_t *yj_timestamp(const ts_t *t)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (t->year < 1 || t->month < 1 || t->month > 12 || t->day < 1)
        return NULL;
    int leap = (t->year % 4 == 0 && t->year % 100 != 0) || t->year % 400 == 0;
    if (t->day > mdays[t->month - 1] + (t->month == 2 && leap))
        return NULL;
    if (!t->has_time)
        return json_sprintf("%04d-%02d-%02d", t->year, t->month, t->day);
    if (t->hour > 23 || t->minute > 59 || t->second > 59)
        return NULL;
    buf_t b = BUF_INIT;
    buf_printf(&b, "%04d-%02d-%02d %02d:%02d:%02d", t->year, t->month, t->day, t->hour,
               t->minute, t->second);
    /* PyYAML keeps 6 fraction digits, right-padded; str() omits a zero one. */
    char frac[7] = "000000";
    memcpy(frac, t->frac ? t->frac : "", t->frac_len < 6 ? t->frac_len : 6);
    if (strcmp(frac, "000000") != 0)
        buf_printf(&b, ".%s", frac);
    if (t->tz == 'Z') {
        buf_puts(&b, "+00:00");
    } else if (t->tz) {
        int off = t->tz_hour * 60 + t->tz_minute;
        if (off >= 24 * 60) {   /* datetime.timezone refuses a day or more */
            buf_free(&b);
            return NULL;
        }
        buf_printf(&b, "%c%02d:%02d", off && t->tz == '-' ? '-' : '+', off / 60, off % 60);
    }
    json_t *v = json_string(b.data);
    buf_free(&b);
    return v;
}

/* construct_yaml_int on the scalar text (which an explicit !!int need not
 * have vetted, so everything is checked). */
static json_t *yj_int(const char *s, size_t n)
{
    buf_t c = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            buf_putc(&c, s[i]);
    json_t *v = NULL;
    bignum_t b = { NULL, 0 };
    const char *p = c.data ? c.data : "";
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    size_t len = strlen(p);
    int ok;
    if (c.len == 0)
        ok = 0;
    else if (strcmp(p, "0") == 0)
        ok = bn_digits(&b, "0", 1, 10);
    else if (!strncmp(p, "0b", 2))
        ok = bn_digits(&b, p + 2, len - 2, 2);
    else if (!strncmp(p, "0x", 2))
        ok = bn_digits(&b, p + 2, len - 2, 16);
    else if (p[0] == '0')
        ok = bn_digits(&b, p, len, 8);
    else if (strchr(p, ':')) {
        /* Sexagesimal: sum(part * 60**i), i.e. Horner in base 60. */
        ok = 1;
        for (const char *q = p; ok;) {
            const char *colon = strchr(q, ':');
            size_t pl = colon ? (size_t)(colon - q) : strlen(q);
            bignum_t part = { NULL, 0 };
            ok = bn_digits(&part, q, pl, 10);
            if (ok && q == p) {
                b = part;
            } else if (ok) {
                /* Later parts are 0..59 when the resolver matched; an
                 * explicit !!int could give more, so do a full add. */
                size_t need = part.n > b.n ? part.n : b.n;
                bn_muladd(&b, 60, 0);
                if (b.n < need + 1) {
                    b.limb = xrealloc(b.limb, (need + 1) * sizeof *b.limb);
                    memset(b.limb + b.n, 0, (need + 1 - b.n) * sizeof *b.limb);
                    b.n = need + 1;
                }
                uint64_t carry = 0;
                for (size_t i = 0; i < b.n; i++) {
                    uint64_t t = (uint64_t)b.limb[i] + (i < part.n ? part.limb[i] : 0) + carry;
                    b.limb[i] = (uint32_t)(t % LIMB_BASE);
                    carry = t / LIMB_BASE;
                }
                free(part.limb);
            } else {
                free(part.limb);
            }
            if (!colon)
                break;
            q = colon + 1;
        }
    } else
        ok = bn_digits(&b, p, len, 10);
    if (ok)
        v = bn_to_json(&b, neg);
    free(b.limb);
    buf_free(&c);
    return v;
}

/* construct_yaml_float on the scalar text. */
static json_t *yj_float(const char *s, size_t n)
{
    buf_t c = BUF_INIT;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            buf_putc(&c, s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i]);
    json_t *v = NULL;
    const char *p = c.data ? c.data : "";
    double sign = 1;
    if (*p == '-')
        sign = -1;
    if (*p == '-' || *p == '+')
        p++;
    if (c.len == 0) {
        v = NULL;
    } else if (strcmp(p, ".inf") == 0) {
        v = py_float_json(sign * INFINITY);
    } else if (strcmp(p, ".nan") == 0) {
        v = yamljson_pynum("nan");
    } else if (strchr(p, ':')) {
        /* Same arithmetic order as PyYAML (last part first), for the same
         * rounding. */
        char *copy = xstrdup(p);
        size_t np = 1;
        for (char *q = copy; *q; q++)
            if (*q == ':')
                np++;
        char **parts = xmalloc(np * sizeof *parts);
        parts[0] = copy;
        for (size_t i = 1; i < np; i++) {
            parts[i] = strchr(parts[i - 1], ':');
            *parts[i]++ = '\0';
        }
        double value = 0, base = 1;
        int ok = 1;
        for (size_t i = np; ok && i-- > 0;) {
            json_t *f = NULL;
            ok = yamljson_py_float(parts[i], &f) && json_is_real(f);
            if (ok)
                value += json_real_value(f) * base;
            json_decref(f);
            base *= 60;
        }
        if (ok)
            v = py_float_json(sign * value);
        free(parts);
        free(copy);
    } else {
        json_t *f = NULL;
        if (yamljson_py_float(p, &f)) {
            const char *pn = yamljson_pynum_repr(f);
            if (json_is_real(f))
                v = py_float_json(sign * json_real_value(f));
            else if (pn && strcmp(pn, "nan") == 0)
                v = json_incref(f);
            else if (pn)
                v = py_float_json(sign * (pn[0] == '-' ? -INFINITY : INFINITY));
        }
        json_decref(f);
    }
    buf_free(&c);
    return v;
}

/* Build one scalar.  A plain "<<" key comes back as *is_merge = 1. */
static int yj_scalar(yj_t *y, yaml_event_t *ev, int as_key, json_t **out, int *is_merge)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    enum ykind k = Y_STR;
    if (!tag || strcmp(tag, "!") == 0) {
        if (ev->data.scalar.plain_implicit)
            k = resolve_plain(s, n);
    } else if (!strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX))) {
        static const struct { const char *name; enum ykind kind; } tags[] = {
            { "str", Y_STR }, { "null", Y_NULL }, { "bool", Y_BOOL }, { "int", Y_INT },
            { "float", Y_FLOAT }, { "timestamp", Y_TIMESTAMP }, { "merge", Y_MERGE },
            { "value", Y_VALUE },
        };
        const char *t = tag + strlen(TAG_PREFIX);
        size_t i;
        for (i = 0; i < sizeof tags / sizeof *tags; i++)
            if (strcmp(t, tags[i].name) == 0)
                break;
        if (i == sizeof tags / sizeof *tags)
            goto bad_tag;
        k = tags[i].kind;
    } else {
        goto bad_tag;
    }

    *out = NULL;
    switch (k) {
    case Y_STR:
        *out = json_stringn(s, n);
        if (!*out)
            return yj_fail(y, ev->start_mark, -EINVAL, "string is not valid UTF-8");
        break;
    case Y_NULL:
        *out = json_null();
        break;
    case Y_BOOL: {
        char low[6] = "";
        for (size_t i = 0; i < n && i < 5; i++)
            low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        static const char *const t[] = { "yes", "true", "on" }, *const f[] = { "no", "false", "off" };
        for (int i = 0; i < 3 && n <= 5; i++) {
            if (!strcmp(low, t[i]) && strlen(t[i]) == n) *out = json_true();
            if (!strcmp(low, f[i]) && strlen(f[i]) == n) *out = json_false();
        }
        if (!*out)
            return yj_fail(y, ev->start_mark, -EINVAL, "invalid boolean '%.*s'", (int)n, s);
        break;
    }
    case Y_INT:
        if (!(*out = yj_int(s, n)))
            return yj_fail(y, ev->start_mark, -EINVAL, "invalid integer '%.*s'", (int)(n > 64 ? 64 : n), s);
        break;
    case Y_FLOAT:
        if (!(*out = yj_float(s, n)))
            return yj_fail(y, ev->start_mark, -EINVAL, "invalid float '%.*s'", (int)(n > 64 ? 64 : n), s);
        break;
    case Y_TIMESTAMP: {
        ts_t t;
        if (!match_timestamp(s, n, &t) || !(*out = yj_timestamp(&t)))
            return yj_fail(y, ev->start_mark, -EINVAL, "invalid timestamp '%.*s'", (int)(n > 64 ? 64 : n), s);
        break;
    }
    case Y_MERGE:
        if (!as_key)
            goto bad_tag;
        *is_merge = 1;
        break;
    case Y_VALUE:
        /* flatten_mapping retags a "=" key as a string; elsewhere it has
         * no constructor. */
        if (!as_key)
            goto bad_tag;
        *out = json_string("=");
        break;
    }
    return 0;

bad_tag:;
    const char *shown = tag && strcmp(tag, "!") ? tag : (k == Y_MERGE ? TAG_PREFIX "merge" : TAG_PREFIX "value");
    if (tag && (!strcmp(tag, TAG_PREFIX "binary") || !strcmp(tag, TAG_PREFIX "set") ||
                !strcmp(tag, TAG_PREFIX "omap") || !strcmp(tag, TAG_PREFIX "pairs")))
        return yj_fail(y, ev->start_mark, -EINVAL, "tag '%s' has no JSON equivalent", shown);
    return yj_fail(y, ev->start_mark, -EINVAL, "could not determine a constructor for the tag '%s'", shown);
}

/* Check a collection's tag before reading its children. */
static int yj_collection_tag(yj_t *y, yaml_event_t *ev, const char *tag, const char *want)
{
    if (!tag || !strcmp(tag, "!") || !strcmp(tag, want))
        return 0;
    if (!strcmp(tag, TAG_PREFIX "seq") || !strcmp(tag, TAG_PREFIX "map"))
        return yj_fail(y, ev->start_mark, -EINVAL, "expected a %s node, but found %s",
                       strcmp(tag, TAG_PREFIX "seq") ? "mapping" : "sequence",
                       ev->type == YAML_SEQUENCE_START_EVENT ? "sequence" : "mapping");
    if (!strcmp(tag, TAG_PREFIX "str") || !strcmp(tag, TAG_PREFIX "int") ||
        !strcmp(tag, TAG_PREFIX "float") || !strcmp(tag, TAG_PREFIX "bool") ||
        !strcmp(tag, TAG_PREFIX "timestamp"))
        return yj_fail(y, ev->start_mark, -EINVAL, "expected a scalar node, but found %s",
                       ev->type == YAML_SEQUENCE_START_EVENT ? "sequence" : "mapping");
    if (!strcmp(tag, TAG_PREFIX "set") || !strcmp(tag, TAG_PREFIX "omap") ||
        !strcmp(tag, TAG_PREFIX "pairs"))
        return yj_fail(y, ev->start_mark, -EINVAL, "tag '%s' has no JSON equivalent", tag);
    return yj_fail(y, ev->start_mark, -EINVAL, "could not determine a constructor for the tag '%s'", tag);
}

static int yj_sequence(yj_t *y, int depth, json_t **out)
{
    json_t *arr = json_array();
    for (;;) {
        yaml_event_t ev;
        int rc = yj_next(y, &ev);
        if (rc < 0) {
            json_decref(arr);
            return rc;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        json_t *item;
        rc = yj_node(y, &ev, depth + 1, 0, &item, NULL);
        if (rc < 0) {
            json_decref(arr);
            return rc;
        }
        json_array_append_new(arr, item);
    }
    *out = arr;
    return 0;
}

/* A merge value must be a mapping or a sequence of mappings; append them to
 * `merges` in the order their pairs are applied (a list goes in reverse). */
static int yj_add_merge(yj_t *y, yaml_mark_t mark, json_t *merges, json_t *v)
{
    if (json_is_object(v) && !yamljson_pynum_repr(v)) {
        json_array_append(merges, v);
        return 0;
    }
    if (json_is_array(v)) {
        for (size_t i = json_array_size(v); i-- > 0;) {
            json_t *m = json_array_get(v, i);
            if (!json_is_object(m) || yamljson_pynum_repr(m))
                return yj_fail(y, mark, -EINVAL,
                               "expected a mapping for merging, but found %s (while constructing a mapping)",
                               json_is_array(m) ? "sequence" : "scalar");
            json_array_append(merges, m);
        }
        return 0;
    }
    return yj_fail(y, mark, -EINVAL,
                   "expected a mapping or list of mappings for merging, but found scalar "
                   "(while constructing a mapping)");
}

static int yj_mapping(yj_t *y, int depth, json_t **out)
{
    json_t *own = json_object();
    json_t *canon = json_object();   /* canonical key -> first key string */
    json_t *merges = json_array();
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = yj_next(y, &ev)) < 0)
            break;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        yaml_mark_t key_mark = ev.start_mark;
        json_t *key = NULL, *val = NULL;
        int is_merge = 0;
        if ((rc = yj_node(y, &ev, depth + 1, 1, &key, &is_merge)) < 0)
            break;
        if ((rc = yj_next(y, &ev)) < 0) {
            json_decref(key);
            break;
        }
        if ((rc = yj_node(y, &ev, depth + 1, 0, &val, NULL)) < 0) {
            json_decref(key);
            break;
        }
        if (is_merge) {
            rc = yj_add_merge(y, key_mark, merges, val);
            json_decref(val);
            if (rc < 0)
                break;
            continue;
        }
        char *str = NULL, *ck = NULL;
        rc = yj_key_strings(y, key_mark, key, &str, &ck);
        json_decref(key);
        if (rc < 0) {
            json_decref(val);
            break;
        }
        const char *first = json_string_value(json_object_get(canon, ck));
        if (!first) {
            json_object_set_new(canon, ck, json_string(str));
            first = str;
        }
        /* A key holding a NUL ("\0") is cut there: C strings. */
        json_object_set_new(own, first, val);
        free(str);
        free(ck);
    }
    json_decref(canon);
    if (rc < 0) {
        json_decref(own);
        json_decref(merges);
        return rc;
    }
    if (json_array_size(merges) == 0) {
        *out = own;
    } else {
        json_t *res = json_object(), *m;
        size_t i;
        json_array_foreach(merges, i, m)
            json_object_update(res, m);
        json_object_update(res, own);
        json_decref(own);
        *out = res;
    }
    json_decref(merges);
    return 0;
}

static int yj_count(yj_t *y, yaml_mark_t mark, size_t add)
{
    if (add > YAMLJSON_MAX_NODES - y->nodes)
        return yj_fail(y, mark, -E2BIG, "document expands to more than %d nodes (alias bomb?)",
                       YAMLJSON_MAX_NODES);
    y->nodes += add;
    return 0;
}

/* Build the node that starts with *ev (consumed).  as_key lets a "<<" merge
 * key through; is_merge may be NULL when as_key is 0. */
static int yj_node(yj_t *y, yaml_event_t *ev, int depth, int as_key, json_t **out, int *is_merge)
{
    int rc;
    *out = NULL;
    if (ev->type == YAML_ALIAS_EVENT) {
        const char *a = (const char *)ev->data.alias.anchor;
        json_t *idx = json_object_get(y->anchor_index, a);
        if (!idx)
            rc = yj_fail(y, ev->start_mark, -EINVAL, "found undefined alias '%s'", a);
        else if (!y->anchors[json_integer_value(idx)].value)
            rc = yj_fail(y, ev->start_mark, -EINVAL, "found recursive alias '%s'", a);
        else if ((rc = yj_count(y, ev->start_mark, y->anchors[json_integer_value(idx)].nodes)) == 0)
            *out = json_deep_copy(y->anchors[json_integer_value(idx)].value);
        yaml_event_delete(ev);
        return rc;
    }

    const char *anchor = NULL;
    if (ev->type == YAML_SCALAR_EVENT)
        anchor = (const char *)ev->data.scalar.anchor;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        anchor = (const char *)ev->data.sequence_start.anchor;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        anchor = (const char *)ev->data.mapping_start.anchor;
    size_t slot = 0, before = y->nodes;
    if ((rc = yj_count(y, ev->start_mark, 1)) < 0)
        goto done;
    /* Collections only: the root is depth 0, so 512 nested ones pass. */
    if (depth >= YAMLJSON_MAX_DEPTH && ev->type != YAML_SCALAR_EVENT) {
        rc = yj_fail(y, ev->start_mark, -E2BIG, "nesting deeper than %d levels", YAMLJSON_MAX_DEPTH);
        goto done;
    }
    if (anchor) {
        if (json_object_get(y->anchor_index, anchor)) {
            rc = yj_fail(y, ev->start_mark, -EINVAL, "found duplicate anchor '%s'", anchor);
            goto done;
        }
        slot = y->nanchors++;
        y->anchors = xrealloc(y->anchors, y->nanchors * sizeof *y->anchors);
        y->anchors[slot].value = NULL;
        y->anchors[slot].nodes = 0;
        json_object_set_new(y->anchor_index, anchor, json_integer((json_int_t)slot));
    }

    int merge = 0;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        rc = yj_scalar(y, ev, as_key, out, &merge);
        if (rc == 0 && merge) {
            if (is_merge)
                *is_merge = 1;
            if (anchor)   /* an anchored "<<" key: aliases of it see a string */
                y->anchors[slot].value = json_string("<<");
            anchor = NULL;
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
        if ((rc = yj_collection_tag(y, ev, (const char *)ev->data.sequence_start.tag,
                                    TAG_PREFIX "seq")) == 0)
            rc = yj_sequence(y, depth, out);
        break;
    case YAML_MAPPING_START_EVENT:
        if ((rc = yj_collection_tag(y, ev, (const char *)ev->data.mapping_start.tag,
                                    TAG_PREFIX "map")) == 0)
            rc = yj_mapping(y, depth, out);
        break;
    default:
        rc = yj_fail(y, ev->start_mark, -EINVAL, "unexpected YAML event");
        break;
    }
    if (rc == 0 && anchor) {
        y->anchors[slot].value = json_incref(*out);
        y->anchors[slot].nodes = y->nodes - before;
    }
done:
    yaml_event_delete(ev);
    return rc;
}

int yamljson_parse(const char *text, size_t len, const char *name, json_t **out, nb_err_t *err)
{
    yj_t y;
    memset(&y, 0, sizeof y);
    y.name = name ? name : "<string>";
    y.text = text;
    y.len = len;
    y.err = err;
    y.anchor_index = json_object();
    *out = NULL;
    if (!yaml_parser_initialize(&y.parser))
        NB_ASSERT(!"yaml_parser_initialize");
    yaml_parser_set_input_string(&y.parser, (const unsigned char *)text, len);

    json_t *doc = NULL;
    int rc, seen_doc = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = yj_next(&y, &ev)) < 0)
            break;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT && seen_doc) {
            rc = yj_fail(&y, ev.start_mark, -EINVAL,
                         "expected a single document in the stream, but found another document");
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            seen_doc = 1;
            yaml_event_delete(&ev);
            continue;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
            t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            if ((rc = yj_node(&y, &ev, 0, 0, &doc, NULL)) < 0)
                break;
            continue;
        }
        yaml_event_delete(&ev);   /* stream start, document end */
    }

    for (size_t i = 0; i < y.nanchors; i++)
        json_decref(y.anchors[i].value);
    free(y.anchors);
    json_decref(y.anchor_index);
    yaml_parser_delete(&y.parser);
    if (rc < 0) {
        json_decref(doc);
        return rc;
    }
    *out = doc ? doc : json_null();
    return 0;
}
