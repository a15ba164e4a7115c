/* jwrite — see jwrite.h.  Strings are copied in runs between the bytes that
 * need an escape (a table lookup per byte, one memcpy per run). */
#include "util/jwrite.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1: the byte needs an escape (jansson's dump_string: '"', '\\', < 0x20). */
static const unsigned char jwrite_esc[256] = {
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
};

static void jwrite_string_hex(buf_t *out, const char *s, size_t n, const char *hex)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(out, n + 2);   /* the common case: nothing to escape */
    buf_putc(out, '"');
    size_t run = 0;            /* start of bytes not yet copied */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (!jwrite_esc[ch]) continue;
        if (i > run) buf_append(out, s + run, i - run);
        run = i + 1;
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t elen = 2;
        switch (ch) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[ch >> 4]; esc[5] = hex[ch & 15];
            elen = 6;
            break;
        }
        buf_append(out, esc, elen);
    }
    if (n > run) buf_append(out, s + run, n - run);
    buf_putc(out, '"');
}

void jwrite_string(buf_t *out, const char *s, size_t n) { jwrite_string_hex(out, s, n, "0123456789ABCDEF"); }
void jwrite_string_py(buf_t *out, const char *s, size_t n) { jwrite_string_hex(out, s, n, "0123456789abcdef"); }

static void jwrite_integer(buf_t *out, json_int_t v)
{
    char t[24], *p = t + sizeof t;
    /* through unsigned: -INT64_MIN overflows a signed type */
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do *--p = (char)('0' + u % 10); while (u /= 10);
    if (v < 0) *--p = '-';
    buf_append(out, p, (size_t)(t + sizeof t - p));
}

void jwrite_value(buf_t *out, const json_t *v)
{
    if (!v) return;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        size_t kn;
        json_t *x;
        int first = 1;
        buf_putc(out, '{');
        json_object_keylen_foreach((json_t *)v, k, kn, x) {
            if (!first) buf_putc(out, ',');
            first = 0;
            jwrite_string(out, k, kn);
            buf_putc(out, ':');
            jwrite_value(out, x);
        }
        buf_putc(out, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        buf_putc(out, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) buf_putc(out, ',');
            jwrite_value(out, json_array_get(v, i));
        }
        buf_putc(out, ']');
        break;
    }
    case JSON_STRING:
        jwrite_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        jwrite_integer(out, json_integer_value(v));
        break;
    case JSON_REAL: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s) buf_puts(out, s);
        free(s);
        break;
    }
    case JSON_TRUE: buf_append(out, "true", 4); break;
    case JSON_FALSE: buf_append(out, "false", 5); break;
    case JSON_NULL: buf_append(out, "null", 4); break;
    }
}
