/* Unit tests for jparse (and jwrite, which must write every tree read back
 * as json_dumps(JSON_COMPACT) does): every input, valid or not, must give what
 * json_loadb gives — the same tree (types, values, key order) or the same
 * error text, line and column.  The inputs are the corners of jansson's
 * grammar that a hand-written scanner gets wrong first: number syntax and
 * ranges, escapes and surrogates, UTF-8 validity, the word boundary after
 * true/false/null, depth, duplicates, NUL, and each special byte at every
 * offset of the eight-byte scan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/jparse.h"
#include "util/jwrite.h"

static void same(const char *s, size_t n, size_t flags)
{
    json_error_t ea, eb;
    json_t *a = jparse(s, n, flags, &ea), *b = json_loadb(s, n, flags, &eb);
    /* and not by falling back: the fast path takes what jansson takes */
    json_t *f = jparse_fast(s, n, flags);
    int supported = !(flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL));
    if (supported && !f != !b)
        fail_msg("fast path %s where json_loadb %s: [%.*s] flags %zx", f ? "accepts" : "rejects",
                 b ? "accepts" : "rejects", (int)n, s, flags);
    json_decref(f);
    if (!a || !b) {
        if (a || b)
            fail_msg("jparse %s, json_loadb %s on [%.*s] flags %zx: %s", a ? "ok" : "failed",
                     b ? "ok" : "failed", (int)n, s, flags, a ? eb.text : ea.text);
        assert_string_equal(ea.text, eb.text);
        assert_int_equal(ea.line, eb.line);
        assert_int_equal(ea.column, eb.column);
        assert_int_equal(ea.position, eb.position);
        return;
    }
    char *da = json_dumps(a, JSON_ENCODE_ANY), *db = json_dumps(b, JSON_ENCODE_ANY);
    if (!json_equal(a, b) || strcmp(da, db) != 0) fail_msg("[%.*s]: %s vs %s", (int)n, s, da, db);
    free(da);
    free(db);
    /* and written back: jwrite gives json_dumps's compact bytes */
    char *dc = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
    buf_t w = BUF_INIT;
    jwrite_value(&w, a);
    if (!dc || w.len != strlen(dc) || memcmp(w.data, dc, w.len) != 0)
        fail_msg("jwrite [%.*s]: %s vs %s", (int)w.len, w.data, w.data, dc);
    free(dc);
    buf_free(&w);
    json_decref(a);
    json_decref(b);
}

static void same_all(const char *s)
{
    static const size_t flags[] = { 0, JSON_DECODE_ANY, JSON_ALLOW_NUL | JSON_DECODE_ANY,
                                    JSON_REJECT_DUPLICATES, JSON_DECODE_INT_AS_REAL };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) same(s, strlen(s), flags[i]);
}

static void test_values(void **state)
{
    (void)state;
    static const char *cases[] = {
        "{}", "[]", " [ ] ", "{\"a\":1}", "[1,2,3]", "{\"a\":{\"b\":[true,false,null]}}",
        "[\"\"]", "\"x\"", "1", "-1", "0", "-0", "-0.0", "1.5", "1e5", "1E+5", "1e-5", "2.5e-308",
        "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
        "1e309", "-1e309", "1e-400", "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.5.3", "[1 2]",
        "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{1:2}", "[", "{", "]", "", "   ", "[1]x", "[1] [2]",
        "true", "false", "null", "truex", "nul", "[true1]", "[nullnull]", "[True]",
        "{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":2,\"a\":3}",
        "[\"\\u0000\"]", "[\"\\u001f\\u000b\\u007f\"]", "{\"a\\u0000b\":1}", "[\"a\\u00e9\\u20ac\\ud83d\\ude00\"]", "[\"\\ud83d\"]",
        "[\"\\ud83dx\"]", "[\"\\ude00\"]", "[\"\\ud83d\\u0041\"]", "[\"\\u12\"]", "[\"\\uZZZZ\"]",
        "[\"\\x\"]", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"tab\there\"]", "[\"nl\nhere\"]",
        "[\"\xc3\xa9\"]", "[\"\xe2\x82\xac\"]", "[\"\xf0\x9f\x98\x80\"]", "[\"\xc0\x80\"]", "[\"\xc1\xbf\"]",
        "[\"\xe0\x80\x80\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\x80\x80\x80\"]",
        "[\"\xff\"]", "[\"\x80\"]", "[\"\xc3\"]", "[\"\xc3\x28\"]", "[1] \xff", "\xef\xbb\xbf[]",
        "[\"unterminated", "[\"esc at end\\", "{\"k\":\"v\"", "[1,\n2,\n  x]", "\n\n  {\"a\": [1, 2,\n ]}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) same_all(cases[i]);
    /* bytes a C string cannot carry */
    same("[\"a\0b\"]", 7, JSON_ALLOW_NUL);
    same("[1]\0", 4, 0);
    same("\0", 1, JSON_DECODE_ANY);
    /* jansson drops a NUL that ends a number or a word (found by the fuzzer) */
    same("0\0", 2, JSON_DECODE_ANY);
    same("[0\0]", 5, 0);
    same("[true\0,null\0]", 15, 0);
    same("[1.5\0\0]", 7, 0);
    same("[\"a\"\0]", 6, 0);
}

/* A special byte at each offset of a long plain string, so that the
   eight-at-a-time scan meets it in every lane and in the byte-wise tail. */
static void test_scan_lanes(void **state)
{
    (void)state;
    static const char *special[] = { "\"", "\\n", "\\u00e9", "\x01", "\x1f", "\xc3\xa9", "\xff", "\x7f", " " };
    for (size_t s = 0; s < sizeof special / sizeof *special; s++) {
        for (size_t len = 0; len < 40; len++) {
            for (size_t at = 0; at <= len; at++) {
                buf_t b = BUF_INIT;
                buf_puts(&b, "[\"");
                for (size_t i = 0; i < len; i++) {
                    if (i == at) buf_puts(&b, special[s]);
                    buf_putc(&b, (char)('a' + i % 26));
                }
                buf_puts(&b, "\"]");
                same(b.data, b.len, 0);
                buf_free(&b);
            }
        }
    }
}

static void test_depth(void **state)
{
    (void)state;
    /* jansson counts every value, scalars included, up to 2048 */
    for (int d = 2045; d <= 2050; d++) {
        for (int scalar = 0; scalar < 2; scalar++) {
            buf_t b = BUF_INIT;
            for (int i = 0; i < d; i++) buf_putc(&b, '[');
            if (scalar) buf_putc(&b, '1');
            for (int i = 0; i < d; i++) buf_putc(&b, ']');
            same(b.data, b.len, 0);
            buf_free(&b);
        }
    }
}

static void test_errors_are_janssons(void **state)
{
    (void)state;
    json_error_t e;
    json_t *v = jparse("{\n  \"a\": [1,\n  2,,\n]}", 20, 0, &e);
    assert_null(v);
    assert_int_equal(e.line, 3);
    assert_true(strlen(e.text) > 0);
    v = jparse("{\"a\": 1}", 8, 0, &e);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    assert_int_equal(e.line, -1);
    assert_string_equal(e.text, "");
    json_decref(v);
    assert_null(jparse(NULL, 0, 0, &e));
}

/* A notebook-shaped document: long base64 and many escaped lines. */
/* jparse_string decodes one literal exactly as json_loads decodes it inside
 * an array, and refuses what json_loads refuses. */
static void test_string_literal(void **state)
{
    (void)state;
    static const char *const lits[] = {
        "\"\"", "\"plain\"", "\"a\\nb\\tc\\\\d\\\"e\\/f\\b\\f\\r\"", "\"\\u00e9\\u20ac\"",
        "\"\\ud83d\\ude00 smile\"", "\"caf\xc3\xa9\"",
        /* refused */
        "\"ctrl\x01\"", "\"\\ud83d alone\"", "\"\\ude00\"", "\"\\u0000\"", "\"bad\xc3\"",
        "\"\\x\"", "\"open", "\"two\" \"x\"", "noquote\"", "\"\\u12\"",
    };
    char *out = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        char doc[128];
        snprintf(doc, sizeof doc, "[%s]", lits[i]);
        json_t *want = json_loads(doc, 0, NULL);
        int rc = jparse_string(lits[i], strlen(lits[i]), &out, &len, &cap);
        if (!want) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        json_t *w = json_array_get(want, 0);
        assert_int_equal(len, json_string_length(w));
        assert_memory_equal(out, json_string_value(w), len);
        json_decref(want);
    }
    free(out);
}

static void test_big_strings(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"cells\":[");
    for (int c = 0; c < 20; c++) {
        buf_printf(&b, "%s{\"data\":{\"image/png\":\"", c ? "," : "");
        for (int i = 0; i < 5000; i++) buf_putc(&b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7 + c) % 64]);
        buf_puts(&b, "\"},\"text\":[");
        for (int i = 0; i < 200; i++) buf_printf(&b, "%s\"line %d \\u00e9 caf\xc3\xa9 \\\"q\\\"\\n\"", i ? "," : "", i);
        buf_puts(&b, "]}");
    }
    buf_puts(&b, "]}");
    same(b.data, b.len, 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_scan_lanes),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_errors_are_janssons),
        cmocka_unit_test(test_big_strings),
        cmocka_unit_test(test_string_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
