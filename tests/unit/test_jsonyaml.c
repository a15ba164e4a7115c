/* Unit tests for jsonyaml: JSON -> YAML, checked by loading the text back
 * with yamljson (PyYAML safe_load's typing) and comparing with the value —
 * above all strings that a YAML loader would retype if written plain.
 * (kubectl's loader is not available here; the strings it alone retypes,
 * y/n and Go number syntax, are checked through jsonyaml_plain_ok.) */
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
#include "util/jsonyaml.h"
#include "util/yamljson.h"

/* Emit v as one document, load it back, and require the same value. */
static char *round_trip(json_t *v)
{
    buf_t b = BUF_INIT;
    nb_err_t err;
    if (jsonyaml_emit(v, &b, &err) != 0) fail_msg("emit: %s", err.msg);
    json_t *back = NULL;
    if (yamljson_parse(b.data, b.len, "emitted", &back, &err) != 0) fail_msg("load: %s\n%s", err.msg, b.data);
    if (!json_equal(v, back)) {
        char *a = json_dumps(v, JSON_ENCODE_ANY | JSON_ALLOW_NUL), *c = json_dumps(back, JSON_ENCODE_ANY);
        fail_msg("round trip changed %s into %s via\n%s", a, c, b.data);
    }
    json_decref(back);
    return buf_detach(&b);
}

static const char *const tricky[] = {
    /* YAML 1.1 null, bool, int, float, timestamp, merge/value */
    "", "~", "null", "Null", "NULL", "yes", "Yes", "NO", "no", "on", "On", "off", "OFF", "true",
    "False", "y", "n", "Y", "N", "7078", "-1", "+1", "0", "007", "08", "0x1F", "0X1F", "0o17", "0b101",
    "0b_", "1_000", "1:30", "190:20:30", "1.5", "1.", ".5", "-.5", "1e3", "1E3", "1.0e+3", "-.inf", ".inf",
    ".NaN", "2024-01-01", "2024-1-1", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z", "<<", "=",
    /* indicators and syntax */
    "-", "- x", "-x", "?", "? x", ":", "a: b", "a:b", "a #b", "a#b", "#x", "&a", "*a", "!tag", "!!str",
    "|", "| x", ">", "> x", "%x", "@x", "`x", "'q'", "\"dq\"", "it's", "{a}", "[a]", "a, b", ",",
    "k8s://https://kubernetes.default.svc", "local:///opt/spark/work-dir/job.py",
    "--master k8s://https://kubernetes.default.svc --deploy-mode client --conf 'a=b c' pyspark-shell",
    /* blanks, breaks, control and non-ASCII characters */
    " lead", "trail ", "\ttab", "tab\t", "multi\nline", "multi\nline\n", "\n", "two\n\n", "\n\nlead",
    "x\n  indented", "  both\n", "a\rb", "\r\n", "bell\a", "esc\x1b[0m", "h\xc3\xa9llo", "\xe2\x98\x83",
    "\xef\xbb\xbf" "bom", "ls\xe2\x80\xa8sep", "nel\xc2\x85", "key with spaces",
};

static void test_tricky_strings(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
        const char *s = tricky[i];
        /* as a value, as a key, as a list item and as the whole document */
        json_t *m = json_pack("{s:s}", "k", s);
        free(round_trip(m));
        json_decref(m);
        m = json_object();
        json_object_set_new(m, s, json_integer(1));
        free(round_trip(m));
        json_decref(m);
        m = json_pack("[s,{s:[s]}]", s, "x", s);
        free(round_trip(m));
        json_decref(m);
        m = json_string(s);
        free(round_trip(m));
        json_decref(m);
    }
    /* A NUL and a 300-character line. */
    json_t *nul = json_stringn("a\0b", 3);
    free(round_trip(nul));
    json_decref(nul);
    char longs[301];
    for (int i = 0; i < 300; i++) longs[i] = i % 7 == 6 ? ' ' : 'a' + i % 26;
    longs[300] = '\0';
    json_t *l = json_pack("{s:s}", "k", longs);
    char *t = round_trip(l);
    assert_int_equal(strchr(strchr(t, '\n') + 1, '\n') - t, (ptrdiff_t)(4 + 3 + 300));   /* one line: not folded */
    free(t);
    json_decref(l);
}

/* The exact text for strings people read in manifests: plain where safe,
 * quoted where a loader would retype them. */
static void test_style(void **state)
{
    (void)state;
    struct { const char *s, *line; } cases[] = {
        { "512m", "k: 512m" },
        { "4.0.0", "k: 4.0.0" },
        { "apache/spark:4.0.1", "k: apache/spark:4.0.1" },
        { "local:///opt/job.py", "k: local:///opt/job.py" },
        { "spark.driver.port=7078", "k: spark.driver.port=7078" },
        { "7078", "k: '7078'" },
        { "1e3", "k: '1e3'" },
        { "on", "k: 'on'" },
        { "n", "k: 'n'" },
        { "", "k: ''" },
        { "it's", "k: it's" },
        { "- x", "k: '- x'" },
        { "a: b", "k: 'a: b'" },
        { "'yes'", "k: '''yes'''" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *m = json_pack("{s:s}", "k", cases[i].s);
        char *t = round_trip(m);
        char *want = NULL;
        if (asprintf(&want, "---\n%s\n", cases[i].line) < 0) fail();
        if (strcmp(t, want) != 0) fail_msg("'%s': got\n%s", cases[i].s, t);
        free(want);
        free(t);
        json_decref(m);
    }
    /* Multi-line text is a literal block. */
    json_t *m = json_pack("{s:s}", "script", "print(1)\nprint(2)\n");
    char *t = round_trip(m);
    assert_string_equal(t, "---\nscript: |\n  print(1)\n  print(2)\n");
    free(t);
    json_decref(m);
}

static void test_plain_ok(void **state)
{
    (void)state;
    static const char *const plain[] = { "512m", "2g", "4.0.0", "hello", "a-b", "IfNotPresent", "Python",
                                         "yess", "nope", "0x", "1.2.3", "v1", "1a", "e3", "inf", "nan" };
    static const char *const not_plain[] = { "", "y", "N", "yes", "off", "null", "~", "1", "-3", "1.5",
                                             "1e3", "1E+3", ".5", "+.5", "0o17", "0O17", "0b1", "0B1",
                                             "0x1f", "0X1F", "1:30", "2024-01-01", "<<", "=" };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!jsonyaml_plain_ok(plain[i], strlen(plain[i]))) fail_msg("'%s' should be plain", plain[i]);
    for (size_t i = 0; i < sizeof not_plain / sizeof not_plain[0]; i++)
        if (jsonyaml_plain_ok(not_plain[i], strlen(not_plain[i]))) fail_msg("'%s' should be quoted", not_plain[i]);
    assert_false(jsonyaml_plain_ok("a\0b", 3));
}

static void test_values(void **state)
{
    (void)state;
    json_error_t je;
    json_t *v = json_loads("{\"z\": 1, \"a\": [-5, 2.5, 1e-05, 1e+16, 0.1, 123456789012, true, false, null],"
                           " \"m\": {\"empty\": {}, \"list\": [], \"nested\": [[1, [2]], {\"x\": {\"y\": []}}]}}",
                           0, &je);
    assert_non_null(v);
    char *t = round_trip(v);
    /* Keys in insertion order; floats that YAML 1.1 reads as floats. */
    assert_non_null(strstr(t, "---\nz: 1\na:\n- -5\n- 2.5\n- 1.0e-05\n- 1.0e+16\n- 0.1\n"));
    assert_non_null(strstr(t, "  empty: {}\n  list: []\n"));
    free(t);
    json_decref(v);
}

static void test_multi_document(void **state)
{
    (void)state;
    json_t *docs = json_pack("[{s:s},{s:i},[i]]", "kind", "Service", "count", 1, 2);
    buf_t b = BUF_INIT;
    nb_err_t err;
    assert_int_equal(jsonyaml_emit_all(docs, &b, &err), 0);
    assert_string_equal(b.data, "---\nkind: Service\n---\ncount: 1\n---\n- 2\n");
    /* Each document loads back on its own. */
    const char *p = b.data;
    for (size_t i = 0; i < 3; i++) {
        const char *next = strstr(p + 4, "---\n");
        size_t len = next ? (size_t)(next - p) : strlen(p);
        json_t *one = NULL;
        assert_int_equal(yamljson_parse(p, len, "doc", &one, &err), 0);
        assert_true(json_equal(one, json_array_get(docs, i)));
        json_decref(one);
        p += len;
    }
    buf_free(&b);
    /* An empty stream is empty; a non-array is refused. */
    json_t *none = json_array();
    assert_int_equal(jsonyaml_emit_all(none, &b, &err), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(jsonyaml_emit_all(docs, &b, &err), 0);
    json_decref(none);
    buf_free(&b);
    assert_int_equal(jsonyaml_emit_all(json_array_get(docs, 0), &b, &err), -EINVAL);
    json_decref(docs);
}

static void test_too_deep(void **state)
{
    (void)state;
    json_t *v = json_array();
    for (int i = 0; i < YAMLJSON_MAX_DEPTH + 5; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, v);
        v = outer;
    }
    buf_t b = BUF_INIT;
    buf_puts(&b, "kept");
    nb_err_t err;
    assert_int_equal(jsonyaml_emit(v, &b, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nested deeper"));
    assert_string_equal(b.data, "kept");   /* nothing appended on error */
    buf_free(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tricky_strings),
        cmocka_unit_test(test_style),
        cmocka_unit_test(test_plain_ok),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_multi_document),
        cmocka_unit_test(test_too_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
