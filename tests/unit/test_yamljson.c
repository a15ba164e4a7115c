/* Unit tests for yamljson.  The scalar typing table and the float repr
 * table were produced by PyYAML 6.0.3's safe_load and Python 3.11's repr()
 * and pasted here (NULL = safe_load raises). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/yamljson.h"

struct scalar_vec { const char *yaml, *expected_json; };
struct frepr_vec { double v; const char *repr; };

static const struct scalar_vec svecs[] = {
    { "1", "1" },
    { "-1", "-1" },
    { "+1", "1" },
    { "0", "0" },
    { "-0", "0" },
    { "00", "0" },
    { "007", "7" },
    { "08", "\"08\"" },
    { "0_", "0" },
    { "0b101", "5" },
    { "-0b101", "-5" },
    { "0b_", NULL },
    { "0b2", "\"0b2\"" },
    { "0x1F", "31" },
    { "0xff_ff", "65535" },
    { "0X1F", "\"0X1F\"" },
    { "0x", "\"0x\"" },
    { "1_000", "1000" },
    { "1__0", "10" },
    { "_1", "\"_1\"" },
    { "1:30", "90" },
    { "-1:30", "-90" },
    { "1:60", "\"1:60\"" },
    { "1:5:7", "3907" },
    { "1:305", "\"1:305\"" },
    { "190:20:30", "685230" },
    { "1.5", "1.5" },
    { "-1.5", "-1.5" },
    { "+1.5", "1.5" },
    { "1.", "1.0" },
    { "1._5", "1.5" },
    { ".5", "0.5" },
    { "-.5", "\"-.5\"" },
    { "+.5", "\"+.5\"" },
    { ".5e+3", "500.0" },
    { "1.0e+3", "1000.0" },
    { "1.0e3", "\"1.0e3\"" },
    { "1.0E-3", "0.001" },
    { "1e3", "\"1e3\"" },
    { "1.0e+", "\"1.0e+\"" },
    { "1:30.5", "90.5" },
    { "1:30.", "90.0" },
    { ".inf", "{\"__nbhub_pynum__\": \"inf\"}" },
    { ".Inf", "{\"__nbhub_pynum__\": \"inf\"}" },
    { ".INF", "{\"__nbhub_pynum__\": \"inf\"}" },
    { "-.inf", "{\"__nbhub_pynum__\": \"-inf\"}" },
    { "+.inf", "{\"__nbhub_pynum__\": \"inf\"}" },
    { ".iNf", "\".iNf\"" },
    { ".nan", "{\"__nbhub_pynum__\": \"nan\"}" },
    { ".NaN", "{\"__nbhub_pynum__\": \"nan\"}" },
    { ".NAN", "{\"__nbhub_pynum__\": \"nan\"}" },
    { "-.nan", "\"-.nan\"" },
    { "nan", "\"nan\"" },
    { "inf", "\"inf\"" },
    { "yes", "true" },
    { "Yes", "true" },
    { "YES", "true" },
    { "yEs", "\"yEs\"" },
    { "no", "false" },
    { "NO", "false" },
    { "true", "true" },
    { "True", "true" },
    { "TRUE", "true" },
    { "tRUE", "\"tRUE\"" },
    { "false", "false" },
    { "on", "true" },
    { "ON", "true" },
    { "off", "false" },
    { "Off", "false" },
    { "y", "\"y\"" },
    { "n", "\"n\"" },
    { "~", "null" },
    { "null", "null" },
    { "Null", "null" },
    { "NULL", "null" },
    { "nULL", "\"nULL\"" },
    { "''", "\"\"" },
    { "\"\"", "\"\"" },
    { "2001-12-14", "\"2001-12-14\"" },
    { "2001-12-14t21:59:43.10-05:00", "\"2001-12-14 21:59:43.100000-05:00\"" },
    { "2001-12-14 21:59:43.10 -5", "\"2001-12-14 21:59:43.100000-05:00\"" },
    { "2001-12-14T21:59:43Z", "\"2001-12-14 21:59:43+00:00\"" },
    { "2001-12-14 21:59:43.1234567", "\"2001-12-14 21:59:43.123456\"" },
    { "2001-12-14 21:59:43.000", "\"2001-12-14 21:59:43\"" },
    { "2001-1-1", "\"2001-1-1\"" },
    { "2001-1-1 1:02:03", "\"2001-01-01 01:02:03\"" },
    { "2001-02-30", NULL },
    { "2001-13-01", NULL },
    { "2000-02-29", "\"2000-02-29\"" },
    { "1900-02-29", NULL },
    { "2001-12-14T24:00:00", NULL },
    { "2001-12-14T21:59:43+25:00", NULL },
    { "2001-12-14T21:59:43-00:00", "\"2001-12-14 21:59:43+00:00\"" },
    { "99999999999999999999", "{\"__nbhub_pynum__\": \"99999999999999999999\"}" },
    { "-9223372036854775808", "-9223372036854775808" },
    { "9223372036854775807", "9223372036854775807" },
    { "9223372036854775808", "{\"__nbhub_pynum__\": \"9223372036854775808\"}" },
    { "0x7fffffffffffffffffff", "{\"__nbhub_pynum__\": \"604462909807314587353087\"}" },
    { "0.1", "0.1" },
    { "0.3", "0.3" },
    { "1e-5", "\"1e-5\"" },
    { "100000000000000000.0", "1e+17" },
    { "1234567890123456789.0", "1.2345678901234568e+18" },
    { "5e-324", "\"5e-324\"" },
    { "1.7976931348623157e+308", "1.7976931348623157e+308" },
    { "1.8e+308", "{\"__nbhub_pynum__\": \"inf\"}" },
    { "<<", NULL },
    { "=", NULL },
    { "'<<'", "\"<<\"" },
    { "'='", "\"=\"" },
    { "! 123", "123" },
    { "!!str 123", "\"123\"" },
    { "!!int \"12\"", "12" },
    { "!!float 1e3", "1000.0" },
    { "!!float 1", "1.0" },
    { "!!bool yes", "true" },
    { "!!bool maybe", NULL },
    { "!!int abc", NULL },
    { "!!null x", "null" },
    { "!foo bar", NULL },
    { "a b c", "\"a b c\"" },
    { "\"tab\\there\"", "\"tab\\there\"" },
};
static const struct frepr_vec fvecs[] = {
    { 0.0, "0.0" },
    { -0.0, "-0.0" },
    { 1.0, "1.0" },
    { 0.1, "0.1" },
    { 0.3, "0.3" },
    { 1.0 / 3.0, "0.3333333333333333" },
    { 1e+16, "1e+16" },
    { 1000000000000000.0, "1000000000000000.0" },
    { 9999999999999998.0, "9999999999999998.0" },
    { 0.0001, "0.0001" },
    { 1e-05, "1e-05" },
    { 1.5e-07, "1.5e-07" },
    { 1.2345678901234568e+17, "1.2345678901234568e+17" },
    { 5e-324, "5e-324" },
    { 1.7976931348623157e+308, "1.7976931348623157e+308" },
    { 2.2250738585072014e-308, "2.2250738585072014e-308" },
    { 1.152921504606847e+18, "1.152921504606847e+18" },
    { 8.673617379884035e-19, "8.673617379884035e-19" },
    { 1e+22, "1e+22" },
    { 1e+23, "1e+23" },
    { 100.0, "100.0" },
    { 12345.678, "12345.678" },
};


static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    nb_err_t err = { 0, "" };
    int rc = yamljson_parse(text, strlen(text), "t.yaml", &v, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.msg);
    return v;
}

static int parse_err(const char *text, nb_err_t *err)
{
    json_t *v = (json_t *)1;
    int rc = yamljson_parse(text, strlen(text), "t.yaml", &v, err);
    assert_true(rc < 0);
    assert_null(v);
    return rc;
}

static void assert_json(const json_t *got, const char *want_text)
{
    json_error_t je;
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, &je);
    if (!want)
        fail_msg("bad test JSON %s", want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("got %s, want %s", g, want_text);
    }
    json_decref(want);
}

static void test_scalar_typing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof svecs / sizeof *svecs; i++) {
        char *doc;
        if (asprintf(&doc, "v: %s\n", svecs[i].yaml) < 0)
            fail();
        json_t *v = NULL;
        nb_err_t err;
        int rc = yamljson_parse(doc, strlen(doc), "t", &v, &err);
        if (!svecs[i].expected_json) {
            if (rc == 0)
                fail_msg("'%s' parsed, PyYAML refuses it", svecs[i].yaml);
        } else {
            if (rc != 0)
                fail_msg("'%s': %s", svecs[i].yaml, err.msg);
            assert_json(json_object_get(v, "v"), svecs[i].expected_json);
        }
        json_decref(v);
        free(doc);
    }
}

static void test_float_repr(void **state)
{
    (void)state;
    char r[YAMLJSON_REPR_MAX];
    for (size_t i = 0; i < sizeof fvecs / sizeof *fvecs; i++) {
        yamljson_float_repr(fvecs[i].v, r);
        assert_string_equal(r, fvecs[i].repr);
    }
    yamljson_float_repr(1.0 / 0.0, r);
    assert_string_equal(r, "inf");
    yamljson_float_repr(-1.0 / 0.0, r);
    assert_string_equal(r, "-inf");
}

static void test_py_numbers(void **state)
{
    (void)state;
    json_t *v;
    assert_true(yamljson_py_int(" \t-1_000\n", &v));
    assert_int_equal(json_integer_value(v), -1000);
    json_decref(v);
    assert_false(yamljson_py_int("1_", &v));
    assert_false(yamljson_py_int("0x10", &v));
    assert_false(yamljson_py_int("", &v));
    assert_true(yamljson_py_int("-18446744073709551616", &v));
    assert_string_equal(yamljson_pynum_repr(v), "-18446744073709551616");
    json_decref(v);
    assert_true(yamljson_py_float("  .5e1 ", &v));
    assert_true(json_real_value(v) == 5.0);
    json_decref(v);
    assert_true(yamljson_py_float("-iNfInItY", &v));
    assert_string_equal(yamljson_pynum_repr(v), "-inf");
    json_decref(v);
    assert_false(yamljson_py_float("0x1p3", &v));   /* strtod would take it */
    assert_false(yamljson_py_float("1e", &v));
    assert_false(yamljson_py_float(".", &v));
    /* Python's 4300-digit limit for int(str). */
    char *many = malloc(4402);
    memset(many, '7', 4401);
    many[4401] = '\0';
    assert_false(yamljson_py_int(many, &v));
    assert_true(yamljson_py_float(many, &v));
    assert_string_equal(yamljson_pynum_repr(v), "inf");
    json_decref(v);
    free(many);
}

static void test_structure(void **state)
{
    (void)state;
    json_t *v = parse_ok("a:\n  b: [1, {c: d}]\n  e:\n    - x\n    - - y\n      - z\n"
                         "f: {}\ng: []\nh:\n");
    assert_json(v, "{\"a\": {\"b\": [1, {\"c\": \"d\"}], \"e\": [\"x\", [\"y\", \"z\"]]},"
                   " \"f\": {}, \"g\": [], \"h\": null}");
    /* Key order is document order. */
    const char *k;
    json_t *x;
    const char *order[] = { "a", "f", "g", "h" };
    size_t i = 0;
    json_object_foreach(v, k, x)
        assert_string_equal(k, order[i++]);
    json_decref(v);

    /* Keys are Python's str() of the key; equal keys (1, 1.0, True) merge
     * into the first, keeping the last value. */
    v = parse_ok("1: a\n1.5: b\ntrue: c\n1.0: d\nnull: e\n~: f\n2001-01-02: g\n.inf: h\n");
    assert_json(v, "{\"1\": \"d\", \"1.5\": \"b\", \"None\": \"f\", \"2001-01-02\": \"g\", \"inf\": \"h\"}");
    json_decref(v);

    /* Duplicate keys: first position, last value, like a dict. */
    v = parse_ok("x: 1\ny: 2\nx: 3\n");
    i = 0;
    json_object_foreach(v, k, x)
        assert_string_equal(k, i++ == 0 ? "x" : "y");
    assert_int_equal(json_integer_value(json_object_get(v, "x")), 3);
    json_decref(v);

    v = parse_ok("text: |\n  line1\n  line2\nfold: >\n  a\n  b\nq: 'it''s'\ndq: \"\\t\\u00e9\"\n");
    assert_json(v, "{\"text\": \"line1\\nline2\\n\", \"fold\": \"a b\\n\", \"q\": \"it's\", \"dq\": \"\\t\\u00e9\"}");
    json_decref(v);
}

static void test_documents(void **state)
{
    (void)state;
    json_t *v = parse_ok("");
    assert_true(json_is_null(v));
    json_decref(v);
    v = parse_ok("# just a comment\n");
    assert_true(json_is_null(v));
    json_decref(v);
    v = parse_ok("--- 5\n...\n");
    assert_int_equal(json_integer_value(v), 5);
    json_decref(v);
    v = parse_ok("- 1\n");
    assert_true(json_is_array(v));
    json_decref(v);
    nb_err_t err;
    assert_int_equal(parse_err("a: 1\n---\nb: 2\n", &err), -EINVAL);
    assert_string_equal(err.msg,
                        "t.yaml:2:1: expected a single document in the stream, but found another document");
}

static void test_aliases_and_merges(void **state)
{
    (void)state;
    json_t *v = parse_ok("base: &b {x: 1, y: 2}\ncopy: *b\nlist: [&n 7, *n]\n");
    assert_json(v, "{\"base\": {\"x\": 1, \"y\": 2}, \"copy\": {\"x\": 1, \"y\": 2}, \"list\": [7, 7]}");
    /* Aliases are copies, not shared nodes. */
    assert_ptr_not_equal(json_object_get(v, "base"), json_object_get(v, "copy"));
    json_decref(v);

    /* Merge keys: merged pairs first, own pairs override. */
    v = parse_ok("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\n"
                 "m: {<<: *a, y: 9}\n"
                 "n: {<<: [*a, *b], w: 0}\n"
                 "q: {z: 0, '<<': 5}\n");
    assert_json(json_object_get(v, "m"), "{\"x\": 1, \"y\": 9}");
    /* A list merges in reverse, so earlier mappings win; order follows. */
    assert_json(json_object_get(v, "n"), "{\"y\": 1, \"z\": 2, \"x\": 1, \"w\": 0}");
    const char *k;
    json_t *x;
    const char *order[] = { "y", "z", "x", "w" };
    size_t i = 0;
    json_object_foreach(json_object_get(v, "n"), k, x)
        assert_string_equal(k, order[i++]);
    /* A quoted '<<' is an ordinary key. */
    assert_json(json_object_get(v, "q"), "{\"z\": 0, \"<<\": 5}");
    json_decref(v);

    nb_err_t err;
    parse_err("a: *nope\n", &err);
    assert_string_equal(err.msg, "t.yaml:1:4: found undefined alias 'nope'");
    parse_err("a: &x [1, *x]\n", &err);
    assert_string_equal(err.msg, "t.yaml:1:11: found recursive alias 'x'");
    parse_err("a: &x 1\nb: &x 2\n", &err);
    assert_string_equal(err.msg, "t.yaml:2:4: found duplicate anchor 'x'");
    parse_err("a: {<<: 1}\n", &err);
    assert_non_null(strstr(err.msg, "expected a mapping or list of mappings for merging"));
    parse_err("a: <<\n", &err);
    assert_non_null(strstr(err.msg, "could not determine a constructor for the tag 'tag:yaml.org,2002:merge'"));
}

static void test_tags(void **state)
{
    (void)state;
    json_t *v = parse_ok("a: !!str 12\nb: !!int \"12\"\nc: !!float 1e3\nd: ! 12\ne: !!null x\n"
                         "f: !!map {k: v}\ng: !!seq [1]\nh: !!bool Yes\n");
    assert_json(v, "{\"a\": \"12\", \"b\": 12, \"c\": 1000.0, \"d\": 12, \"e\": null,"
                   " \"f\": {\"k\": \"v\"}, \"g\": [1], \"h\": true}");
    json_decref(v);
    nb_err_t err;
    parse_err("a: !foo bar\n", &err);
    assert_string_equal(err.msg, "t.yaml:1:4: could not determine a constructor for the tag '!foo'");
    parse_err("a: !!binary aGk=\n", &err);
    assert_non_null(strstr(err.msg, "no JSON equivalent"));
    parse_err("a: !!int x\n", &err);
    parse_err("a: !!seq {k: v}\n", &err);
    assert_string_equal(err.msg, "t.yaml:1:4: expected a sequence node, but found mapping");
    parse_err("? [1]\n: x\n", &err);
    assert_non_null(strstr(err.msg, "unhashable key"));
}

static void test_syntax_errors(void **state)
{
    (void)state;
    nb_err_t err;
    assert_int_equal(parse_err("a: [1, 2\n", &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:1: did not find expected ',' or ']' "
                                 "(while parsing a flow sequence at 1:4)");
    parse_err("a: 1\n  b: 2\n", &err);
    assert_string_equal(err.msg, "t.yaml:2:4: mapping values are not allowed in this context");
    parse_err("a:\n\t- 1\n", &err);
    assert_string_equal(strncmp(err.msg, "t.yaml:2:1: ", 12) ? err.msg : "ok", "ok");
    parse_err("ok: 1\nbad: \xff\n", &err);
    assert_string_equal(err.msg, "t.yaml:2:6: invalid leading UTF-8 octet (#FF)");
    /* A NULL name and non-terminated input. */
    json_t *v;
    assert_true(yamljson_parse("a: [", 4, NULL, &v, &err) < 0);
    assert_int_equal(strncmp(err.msg, "<string>:", 9), 0);
    assert_int_equal(yamljson_parse("a: 1XXXX", 4, NULL, &v, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
}

static void test_limits(void **state)
{
    (void)state;
    /* Billion laughs: 10 levels of 10 aliases each. */
    buf_t b = BUF_INIT;
    buf_puts(&b, "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        buf_printf(&b, "l%d: &l%d [", i, i);
        for (int j = 0; j < 10; j++)
            buf_printf(&b, "%s*l%d", j ? ", " : "", i - 1);
        buf_puts(&b, "]\n");
    }
    nb_err_t err;
    assert_int_equal(parse_err(b.data, &err), -E2BIG);
    assert_non_null(strstr(err.msg, "more than 1000000 nodes"));
    buf_free(&b);

    /* Four levels (~11k nodes) are fine. */
    json_t *v = parse_ok("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n");
    assert_int_equal(json_array_size(json_array_get(json_array_get(json_object_get(v, "d"), 9), 9)), 10);
    json_decref(v);

    /* Nesting: 512 levels parse, 513 do not. */
    for (int depth = 512; depth <= 513; depth++) {
        buf_t d = BUF_INIT;
        for (int i = 0; i < depth; i++)
            buf_putc(&d, '[');
        buf_puts(&d, "leaf");
        for (int i = 0; i < depth; i++)
            buf_putc(&d, ']');
        json_t *out = NULL;
        int rc = yamljson_parse(d.data, d.len, "deep", &out, &err);
        if (depth == 512) {
            assert_int_equal(rc, 0);
            json_decref(out);
        } else {
            assert_int_equal(rc, -E2BIG);
            assert_non_null(strstr(err.msg, "nesting deeper than 512"));
        }
        buf_free(&d);
    }
}

static void test_pynum(void **state)
{
    (void)state;
    json_t *v = yamljson_pynum("inf");
    assert_string_equal(yamljson_pynum_repr(v), "inf");
    json_decref(v);
    v = json_pack("{ss, si}", YAMLJSON_PYNUM_KEY, "inf", "other", 1);
    assert_null(yamljson_pynum_repr(v));
    json_decref(v);
    assert_null(yamljson_pynum_repr(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_typing),
        cmocka_unit_test(test_float_repr),
        cmocka_unit_test(test_py_numbers),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_aliases_and_merges),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pynum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
