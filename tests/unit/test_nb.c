/* Unit tests for nb (load, validate, normalise) and nbjson (serialise like
 * nbformat.write).  The byte-for-byte cases are fixtures written by
 * tests/unit/data/gen_nbjson.py with Python's nbformat; the test binary is
 * run from the repository root (NBHUB_TEST_DATA overrides the data dir). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notebook/nb.h"
#include "notebook/nbjson.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/jwrite.h"
#include "util/xmalloc.h"

static char *data_path(const char *rel)
{
    const char *dir = getenv("NBHUB_TEST_DATA");
    return xasprintf("%s/%s", dir ? dir : "tests/unit/data", rel);
}

static char *read_data(const char *rel, size_t *len)
{
    char *p = data_path(rel), *text = NULL;
    nb_err_t err;
    if (fs_read_all(p, &text, len, &err) < 0) fail_msg("%s", err.msg);
    free(p);
    return text;
}

/* Compare and, on a mismatch, show where (the only useful failure report for
   a 30 kB document). */
static void assert_same_bytes(const char *what, const char *got, size_t glen, const char *exp,
                              size_t elen)
{
    if (glen == elen && memcmp(got, exp, glen) == 0) return;
    size_t i = 0;
    while (i < glen && i < elen && got[i] == exp[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    fail_msg("%s: differs at byte %zu (len %zu vs expected %zu)\n got: %.*s\n exp: %.*s", what, i,
             glen, elen, (int)((glen - from) < 120 ? glen - from : 120), got + from,
             (int)((elen - from) < 120 ? elen - from : 120), exp + from);
}

static json_t *load_ok(const char *text)
{
    json_t *nb = NULL;
    nb_err_t err;
    err_clear(&err);
    int rc = nb_load_text(text, strlen(text), "t.ipynb", &nb, &err);
    if (rc < 0) fail_msg("load failed: %s", err.msg);
    return nb;
}

static void expect_error(const char *text, int code, const char *msg)
{
    json_t *nb = (json_t *)1;
    nb_err_t err;
    err_clear(&err);
    int rc = nb_load_text(text, strlen(text), "t.ipynb", &nb, &err);
    if (rc != code || strcmp(err.msg, msg) != 0)
        fail_msg("for %s\n got  %d \"%s\"\n want %d \"%s\"", text, rc, err.msg, code, msg);
    assert_null(nb);
}

/* ------------------------------------------------------------------ fixtures */

/* The notebook as prefix + cells + suffix, the way nbwriter assembles it. */
static void dump_by_frame(const json_t *nb, buf_t *out)
{
    buf_t pre = BUF_INIT, suf = BUF_INIT;
    nbjson_dump_frame(nb, &pre, &suf);
    buf_append(out, pre.data, pre.len);
    json_t *cells = json_object_get(nb, "cells");
    for (size_t i = 0; i < json_array_size(cells); i++) {
        if (i) buf_puts(out, NBJSON_CELL_SEP);
        nbjson_dump_value(json_array_get(cells, i), NBJSON_CELL_DEPTH, NBJSON_CELL, out);
    }
    buf_append(out, suf.data, suf.len);
    buf_free(&pre);
    buf_free(&suf);
}

static void check_case(const char *name)
{
    char rel[256];
    size_t ilen, elen;
    snprintf(rel, sizeof rel, "nbjson/%s.in.ipynb", name);
    char *in = read_data(rel, &ilen);
    snprintf(rel, sizeof rel, "nbjson/%s.out.ipynb", name);
    char *exp = read_data(rel, &elen);

    json_t *nb = NULL;
    nb_err_t err;
    if (nb_load_text(in, ilen, name, &nb, &err) < 0) fail_msg("%s: %s", name, err.msg);
    json_t *before = json_deep_copy(nb);
    buf_t b = BUF_INIT;
    nbjson_dump(nb, &b);
    assert_same_bytes(name, b.data, b.len, exp, elen);
    assert_true(json_equal(nb, before));   /* the emitter must not mutate */

    buf_reset(&b);
    dump_by_frame(nb, &b);
    assert_same_bytes(name, b.data, b.len, exp, elen);
    json_decref(nb);

    /* Reading our own output back gives the same bytes again. */
    if (nb_load_text(exp, elen, name, &nb, &err) < 0) fail_msg("%s (reload): %s", name, err.msg);
    buf_reset(&b);
    nbjson_dump(nb, &b);
    assert_same_bytes(name, b.data, b.len, exp, elen);

    json_decref(nb);
    json_decref(before);
    buf_free(&b);
    free(in);
    free(exp);
}

static void test_fixtures(void **state)
{
    (void)state;
    size_t len;
    char *man = read_data("nbjson/MANIFEST", &len);
    int n = 0;
    for (char *save = NULL, *line = strtok_r(man, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        check_case(line);
        n++;
    }
    assert_true(n >= 20);
    free(man);
}

/* ------------------------------------------------------------------ load errors */

static void test_invalid_json(void **state)
{
    (void)state;
    expect_error("{\n  \"cells\": [],\n  x}", -EINVAL,
                 "t.ipynb:3:3: invalid JSON: string or '}' expected near 'x'");
    expect_error("", -EINVAL, "t.ipynb:1:1: invalid JSON: '[' or '{' expected near end of file");
    expect_error("{} extra", -EINVAL, "t.ipynb:1:8: invalid JSON: end of file expected near 'extra'");
    expect_error("\"just a string\"", -EINVAL,
                 "t.ipynb:1:15: invalid JSON: '[' or '{' expected near '\"just a string\"'");
}

static void test_not_notebook(void **state)
{
    (void)state;
    expect_error("[1, 2]", -EINVAL,
                 "t.ipynb: not a Jupyter notebook (the top level is a list, not an object)");
    expect_error("{\"a\": 1}", -EINVAL,
                 "t.ipynb: not a Jupyter notebook (no \"nbformat\" and no \"cells\")");
    expect_error("{\"nbformat\": 4, \"nbformat_minor\": 5, \"metadata\": {}}", -EINVAL,
                 "t.ipynb: not a Jupyter notebook (no \"cells\" list)");
    expect_error("{\"nbformat\": 4, \"cells\": {}, \"metadata\": {}}", -EINVAL,
                 "t.ipynb: not a Jupyter notebook (\"cells\" is not a list)");
    expect_error("{\"nbformat\": 4, \"nbformat_minor\": 5, \"cells\": []}", -EINVAL,
                 "t.ipynb: not a Jupyter notebook (no \"metadata\" object)");
    expect_error("{\"nbformat\": 4, \"nbformat_minor\": \"5\", \"cells\": [], \"metadata\": {}}",
                 -EINVAL, "t.ipynb: \"nbformat_minor\" is not a non-negative integer");
}

static void test_versions(void **state)
{
    (void)state;
    expect_error("{\"nbformat\": 3, \"nbformat_minor\": 0, \"worksheets\": [], \"metadata\": {}}",
                 -EPROTONOSUPPORT,
                 "t.ipynb: nbformat 3 notebooks are not supported; convert with: "
                 "jupyter nbconvert --to notebook --nbformat 4 t.ipynb");
    expect_error("{\"nbformat\": 2, \"worksheets\": []}", -EPROTONOSUPPORT,
                 "t.ipynb: nbformat 2 notebooks are not supported; convert with: "
                 "jupyter nbconvert --to notebook --nbformat 4 t.ipynb");
    expect_error("{\"nbformat\": 5, \"cells\": [], \"metadata\": {}}", -EPROTONOSUPPORT,
                 "t.ipynb: unsupported nbformat 5 (nbhub reads nbformat 4)");
    expect_error("{\"cells\": [], \"metadata\": {}}", -EPROTONOSUPPORT,
                 "t.ipynb: unsupported nbformat (missing) (nbhub reads nbformat 4)");
    expect_error("{\"nbformat\": \"4\", \"cells\": [], \"metadata\": {}}", -EPROTONOSUPPORT,
                 "t.ipynb: unsupported nbformat \"4\" (nbhub reads nbformat 4)");
    expect_error("{\"nbformat\": 4.0, \"cells\": [], \"metadata\": {}}", -EPROTONOSUPPORT,
                 "t.ipynb: unsupported nbformat 4.0 (nbhub reads nbformat 4)");
}

#define NB(cells) "{\"nbformat\": 4, \"nbformat_minor\": 5, \"metadata\": {}, \"cells\": [" cells "]}"
#define OK_CELL "{\"cell_type\": \"markdown\", \"metadata\": {}, \"source\": \"\"}"

static void test_bad_cells(void **state)
{
    (void)state;
    expect_error(NB(OK_CELL ", 7"), -EINVAL, "t.ipynb: cell 2: not an object");
    expect_error(NB("{\"source\": \"\"}"), -EINVAL, "t.ipynb: cell 1: no \"cell_type\"");
    expect_error(NB("{\"cell_type\": \"heading\", \"source\": \"\"}"), -EINVAL,
                 "t.ipynb: cell 1: unknown cell_type \"heading\" (expected code, markdown or raw)");
    expect_error(NB("{\"cell_type\": 1, \"source\": \"\"}"), -EINVAL,
                 "t.ipynb: cell 1: unknown cell_type (not a string) (expected code, markdown or raw)");
    expect_error(NB("{\"cell_type\": \"raw\"}"), -EINVAL, "t.ipynb: cell 1: no \"source\"");
    expect_error(NB("{\"cell_type\": \"raw\", \"source\": [\"a\", 1]}"), -EINVAL,
                 "t.ipynb: cell 1: \"source\" is not a string or a list of strings");
    expect_error(NB("{\"cell_type\": \"raw\", \"source\": \"\", \"metadata\": []}"), -EINVAL,
                 "t.ipynb: cell 1: \"metadata\" is not an object");
    expect_error(NB("{\"cell_type\": \"raw\", \"source\": \"\", \"id\": 5}"), -EINVAL,
                 "t.ipynb: cell 1: \"id\" is not a string");
    expect_error(NB("{\"cell_type\": \"markdown\", \"source\": \"\", \"attachments\": {\"a\": 1}}"),
                 -EINVAL, "t.ipynb: cell 1: attachment \"a\" is not an object");
    expect_error(NB("{\"cell_type\": \"code\", \"source\": \"\", \"outputs\": {}}"), -EINVAL,
                 "t.ipynb: cell 1: \"outputs\" is not a list");
    expect_error(NB("{\"cell_type\": \"code\", \"source\": \"\", \"execution_count\": \"1\"}"), -EINVAL,
                 "t.ipynb: cell 1: \"execution_count\" is not an integer or null");
}

static void test_bad_outputs(void **state)
{
    (void)state;
#define CODE(outs) NB("{\"cell_type\": \"code\", \"source\": \"\", \"outputs\": [" outs "]}")
    expect_error(CODE("[]"), -EINVAL, "t.ipynb: cell 1: output 1: not an object");
    expect_error(CODE("{\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": \"\"}, {}"),
                 -EINVAL, "t.ipynb: cell 1: output 2: no \"output_type\" string");
    expect_error(CODE("{\"output_type\": \"pyout\"}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: unknown output_type \"pyout\" (expected stream, "
                 "display_data, execute_result or error)");
    expect_error(CODE("{\"output_type\": \"stream\", \"text\": \"\"}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: stream has no \"name\" string");
    expect_error(CODE("{\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": 3}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: stream \"text\" is not a string or a list of strings");
    expect_error(CODE("{\"output_type\": \"display_data\", \"data\": []}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: \"data\" is not an object");
    expect_error(CODE("{\"output_type\": \"execute_result\", \"data\": {}, \"metadata\": 1}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: \"metadata\" is not an object");
    expect_error(CODE("{\"output_type\": \"error\", \"ename\": \"E\", \"evalue\": \"v\"}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: error \"traceback\" is not a list of strings");
    expect_error(CODE("{\"output_type\": \"error\", \"traceback\": []}"), -EINVAL,
                 "t.ipynb: cell 1: output 1: error output needs \"ename\" and \"evalue\" strings");
#undef CODE
}

static void test_load_file(void **state)
{
    (void)state;
    json_t *nb = (json_t *)1;
    nb_err_t err;
    assert_int_equal(nb_load_file("/nonexistent/x.ipynb", &nb, &err), -ENOENT);
    assert_null(nb);
    assert_non_null(strstr(err.msg, "/nonexistent/x.ipynb"));

    char path[] = "/tmp/test_nb_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "{\"nbformat\": 4,\n \"cells\": [}";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(nb_load_file(path, &nb, &err), -EINVAL);
    char *want = xasprintf("%s:2:12: invalid JSON: unexpected token near '}'", path);
    assert_string_equal(err.msg, want);
    free(want);

    FILE *f = fopen(path, "w");
    fputs(NB(OK_CELL), f);
    fclose(f);
    assert_int_equal(nb_load_file(path, &nb, &err), 0);
    assert_int_equal(json_array_size(json_object_get(nb, "cells")), 1);
    json_decref(nb);
    unlink(path);
}

/* ------------------------------------------------------------------ normalisation */

static void test_normalise(void **state)
{
    (void)state;
    json_t *nb = load_ok(
        "{\"nbformat\": 4, \"nbformat_minor\": 4, \"extra\": [1],"
        " \"metadata\": {\"signature\": \"x\", \"orig_nbformat\": 3, \"keep\": 1},"
        " \"cells\": ["
        "  {\"cell_type\": \"code\", \"source\": [\"a\\n\", \"b\"], \"unknown\": true},"
        "  {\"cell_type\": \"code\", \"source\": [], \"metadata\": {\"trusted\": true, \"x\": 1},"
        "   \"execution_count\": 3, \"outputs\": ["
        "    {\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": [\"1\\n\", \"2\\n\"]},"
        "    {\"output_type\": \"display_data\", \"metadata\": {},"
        "     \"data\": {\"text/plain\": [\"p\", \"q\"], \"image/png\": [\"AA\", \"BB\"],"
        "               \"application/json\": [\"j\", \"k\"], \"application/geo+json\": [\"g\"],"
        "               \"text/x\": [\"a\", 1], \"text/y\": []}},"
        "    {\"output_type\": \"error\", \"ename\": \"E\", \"evalue\": \"v\", \"traceback\": [\"t\"]}]},"
        "  {\"cell_type\": \"markdown\", \"source\": \"m\","
        "   \"attachments\": {\"a.png\": {\"image/png\": [\"x\", \"y\"]}}}]}");
    json_t *cells = json_object_get(nb, "cells");
    json_t *c0 = json_array_get(cells, 0), *c1 = json_array_get(cells, 1);
    json_t *c2 = json_array_get(cells, 2);
    assert_string_equal(nb_cell_source(c0), "a\nb");
    assert_true(json_is_object(json_object_get(c0, "metadata")));
    assert_true(json_is_array(json_object_get(c0, "outputs")));
    assert_true(json_is_null(json_object_get(c0, "execution_count")));
    assert_true(json_is_true(json_object_get(c0, "unknown")));
    assert_string_equal(nb_cell_source(c1), "");
    assert_null(json_object_get(json_object_get(c1, "metadata"), "trusted"));
    assert_non_null(json_object_get(json_object_get(c1, "metadata"), "x"));
    json_t *outs = json_object_get(c1, "outputs");
    assert_string_equal(json_string_value(json_object_get(json_array_get(outs, 0), "text")), "1\n2\n");
    json_t *data = json_object_get(json_array_get(outs, 1), "data");
    assert_string_equal(json_string_value(json_object_get(data, "text/plain")), "pq");
    assert_string_equal(json_string_value(json_object_get(data, "image/png")), "AABB");
    assert_true(json_is_array(json_object_get(data, "application/json")));
    assert_true(json_is_array(json_object_get(data, "application/geo+json")));
    assert_true(json_is_array(json_object_get(data, "text/x")));
    assert_string_equal(json_string_value(json_object_get(data, "text/y")), "");
    json_t *att = json_object_get(json_object_get(c2, "attachments"), "a.png");
    assert_string_equal(json_string_value(json_object_get(att, "image/png")), "xy");
    assert_null(json_object_get(c2, "outputs"));   /* only code cells get outputs */
    json_t *md = json_object_get(nb, "metadata");
    assert_null(json_object_get(md, "signature"));
    assert_null(json_object_get(md, "orig_nbformat"));
    assert_non_null(json_object_get(md, "keep"));
    assert_non_null(json_object_get(nb, "extra"));
    json_decref(nb);
}

static void test_nul_and_duplicates(void **state)
{
    (void)state;
    /* Python's json accepts \u0000 and keeps the last duplicate key. */
    json_t *nb = load_ok(NB("{\"cell_type\": \"raw\", \"source\": \"first\", \"source\": \"a\\u0000b\\n\"}"));
    json_t *src = json_object_get(json_array_get(json_object_get(nb, "cells"), 0), "source");
    assert_int_equal(json_string_length(src), 4);
    buf_t b = BUF_INIT;
    nbjson_dump_value(src, 0, NBJSON_LINES, &b);
    assert_string_equal(b.data, "[\n \"a\\u0000b\\n\"\n]");
    buf_free(&b);
    json_decref(nb);
}

static void test_helpers(void **state)
{
    (void)state;
    json_t *nb = load_ok("{\"nbformat\": 4, \"nbformat_minor\": 5, \"cells\": ["
                         "{\"cell_type\": \"code\", \"source\": \"x\", \"metadata\": {\"tags\": [1, \"parameters\"]}},"
                         "{\"cell_type\": \"code\", \"source\": \"\", \"metadata\": {\"tags\": \"parameters\"}}],"
                         " \"metadata\": {\"kernelspec\": {\"name\": \"ir\", \"language\": \"R\"},"
                         " \"language_info\": {\"name\": \"python\"}}}");
    json_t *cells = json_object_get(nb, "cells");
    assert_true(nb_cell_has_tag(json_array_get(cells, 0), "parameters"));
    assert_false(nb_cell_has_tag(json_array_get(cells, 0), "param"));
    assert_false(nb_cell_has_tag(json_array_get(cells, 1), "parameters"));
    assert_string_equal(nb_cell_source(json_array_get(cells, 0)), "x");
    assert_string_equal(nb_kernel_name(nb), "ir");
    assert_string_equal(nb_language(nb), "R");
    json_decref(nb);

    nb = load_ok("{\"nbformat\": 4, \"cells\": [], \"metadata\": {\"kernelspec\": {\"name\": \"\"},"
                 " \"language_info\": {\"name\": \"python\"}}}");
    assert_null(nb_kernel_name(nb));
    assert_string_equal(nb_language(nb), "python");
    json_decref(nb);

    nb = load_ok("{\"nbformat\": 4, \"cells\": [], \"metadata\": {}}");
    assert_null(nb_kernel_name(nb));
    assert_null(nb_language(nb));
    json_t *bare = json_object();
    assert_string_equal(nb_cell_source(bare), "");
    assert_false(nb_cell_has_tag(bare, "x"));
    json_decref(bare);
    json_decref(nb);
}

/* ------------------------------------------------------------------ nbjson pieces */

static void test_format_real(void **state)
{
    (void)state;
    /* Right column: Python's repr / json.dumps. */
    static const struct { double d; const char *s; } t[] = {
        { 0.1, "0.1" }, { 100.0, "100.0" }, { 1e-05, "1e-05" }, { 0.0001, "0.0001" },
        { 1e16, "1e+16" }, { 1e15, "1000000000000000.0" }, { -0.0, "-0.0" }, { 0.0, "0.0" },
        { 5e-324, "5e-324" }, { 1.7976931348623157e308, "1.7976931348623157e+308" },
        { 0.30000000000000004, "0.30000000000000004" }, { 1.5e300, "1.5e+300" },
        { 123456789.123, "123456789.123" }, { 9999999999999998.0, "9999999999999998.0" }, { 9.999999999999999e15, "1e+16" },
        { 1e22, "1e+22" }, { 1e23, "1e+23" }, { -2.5e-10, "-2.5e-10" },
        { 1.0 / 3, "0.3333333333333333" }, { 2.0 / 3, "0.6666666666666666" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        buf_t b = BUF_INIT;
        nbjson_format_real(t[i].d, &b);
        assert_string_equal(b.data, t[i].s);
        buf_free(&b);
    }
    buf_t b = BUF_INIT;
    nbjson_format_real(0.0 / 0.0, &b);
    buf_putc(&b, ' ');
    nbjson_format_real(1.0 / 0.0, &b);
    buf_putc(&b, ' ');
    nbjson_format_real(-1.0 / 0.0, &b);
    assert_string_equal(b.data, "NaN Infinity -Infinity");
    buf_free(&b);
}

static void test_format_string(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    const char s[] = "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\0z\xe2\x80\xa8\xc3\xa9";
    /* json.dumps(..., ensure_ascii=False) escapes as jansson does: jwrite */
    jwrite_string_py(&b, s, sizeof s - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\\u0000z\xe2\x80\xa8\xc3\xa9\"");
    buf_free(&b);
}

static void test_line_len(void **state)
{
    (void)state;
    static const struct { const char *s; size_t n, want; } t[] = {
        { "abc", 3, 3 }, { "a\nb", 3, 2 }, { "a\r\nb", 4, 3 }, { "a\rb", 3, 2 }, { "a\r", 2, 2 },
        { "\v", 1, 1 }, { "\f", 1, 1 }, { "x\x1cy", 3, 2 }, { "\x1d", 1, 1 }, { "\x1e", 1, 1 },
        { "\x1f", 1, 1 }, { "a\xc2\x85z", 4, 3 }, { "a\xc2\x86z", 4, 4 }, { "\xe2\x80\xa8z", 4, 3 },
        { "\xe2\x80\xa9", 3, 3 }, { "\xe2\x80\xaa", 3, 3 }, { "\xe2\x80", 2, 2 }, { "\xc2", 1, 1 },
        { "", 0, 0 }, { "\t", 1, 1 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_int_equal(nbjson_line_len(t[i].s, t[i].n), t[i].want);
}

static void test_dump_value(void **state)
{
    (void)state;
    json_t *v = json_loads("{\"b\": [], \"a\": {}, \"c\": [1, {\"z\": null, \"y\": true}]}", 0, NULL);
    buf_t b = BUF_INIT;
    nbjson_dump_value(v, 0, NBJSON_PLAIN, &b);
    assert_string_equal(b.data, "{\n \"a\": {},\n \"b\": [],\n \"c\": [\n  1,\n  {\n   \"y\": true,\n"
                                "   \"z\": null\n  }\n ]\n}");
    buf_reset(&b);
    nbjson_dump_value(v, 2, NBJSON_PLAIN, &b);
    assert_string_equal(b.data, "{\n   \"a\": {},\n   \"b\": [],\n   \"c\": [\n    1,\n    {\n"
                                "     \"y\": true,\n     \"z\": null\n    }\n   ]\n  }");
    json_decref(v);

    /* A cell on its own, and kinds that do not fit the value. */
    v = json_loads("{\"cell_type\": \"code\", \"source\": \"a\\nb\", \"metadata\": {\"trusted\": 1},"
                   " \"outputs\": [{\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": \"\"}],"
                   " \"execution_count\": null}", 0, NULL);
    buf_reset(&b);
    nbjson_dump_value(v, NBJSON_CELL_DEPTH, NBJSON_CELL, &b);
    assert_string_equal(b.data,
        "{\n   \"cell_type\": \"code\",\n   \"execution_count\": null,\n   \"metadata\": {},\n"
        "   \"outputs\": [\n    {\n     \"name\": \"stdout\",\n     \"output_type\": \"stream\",\n"
        "     \"text\": []\n    }\n   ],\n   \"source\": [\n    \"a\\n\",\n    \"b\"\n   ]\n  }");
    buf_reset(&b);
    nbjson_dump_value(json_object_get(v, "source"), 0, NBJSON_CELL, &b);
    assert_string_equal(b.data, "\"a\\nb\"");
    json_decref(v);

    /* Deep indentation (more than the 64-space chunk). */
    v = json_pack("[i]", 1);
    buf_reset(&b);
    nbjson_dump_value(v, 100, NBJSON_PLAIN, &b);
    assert_int_equal(b.len, 1 + 1 + 101 + 1 + 1 + 100 + 1);
    assert_int_equal(b.data[b.len - 2], ' ');
    json_decref(v);
    buf_free(&b);
}

static void test_frame_edges(void **state)
{
    (void)state;
    /* Empty cells: "[]" lives in the prefix; no "cells": everything in prefix. */
    const char *texts[] = {
        "{\"nbformat\": 4, \"nbformat_minor\": 5, \"metadata\": {}, \"cells\": []}",
        "{\"aaa\": 1, \"zzz\": [2], \"nbformat\": 4, \"metadata\": {}, \"cells\": [{\"cell_type\": \"raw\", \"source\": \"\"}]}",
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *nb = load_ok(texts[i]);
        buf_t a = BUF_INIT, f = BUF_INIT;
        nbjson_dump(nb, &a);
        dump_by_frame(nb, &f);
        assert_string_equal(a.data, f.data);
        buf_free(&a);
        buf_free(&f);
        json_decref(nb);
    }
    json_t *v = json_pack("{s:i}", "x", 1);
    buf_t p = BUF_INIT, s = BUF_INIT;
    nbjson_dump_frame(v, &p, &s);
    assert_string_equal(p.data, "{\n \"x\": 1\n}\n");
    assert_int_equal(s.len, 0);
    buf_free(&p);
    buf_free(&s);
    json_decref(v);
}

/* A 5 MB stream output and a 5 MB image: must be linear (this takes a few
   ms; quadratic behaviour would take minutes). */
static void test_big_output(void **state)
{
    (void)state;
    size_t n = 5u << 20;
    char *text = xmalloc(n);
    for (size_t i = 0; i < n; i++) text[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    json_t *nb = json_pack("{s:i, s:i, s:{}, s:[{s:s, s:s, s:{}, s:n, s:[{s:s, s:s, s:s%}, "
                           "{s:s, s:{}, s:{s:s%}}]}]}",
                           "nbformat", 4, "nbformat_minor", 5, "metadata", "cells", "cell_type", "code",
                           "source", "x", "metadata", "execution_count", "outputs", "output_type",
                           "stream", "name", "stdout", "text", text, n, "output_type", "display_data",
                           "metadata", "data", "image/png", text, n);
    assert_non_null(nb);
    buf_t b = BUF_INIT;
    clock_t t0 = clock();
    nbjson_dump(nb, &b);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    /* stream lines: each 80-byte line becomes indent + quotes + "\n" escape + comma. */
    assert_true(b.len > 2 * n);
    assert_true(secs < 5.0);
    print_message("nbjson: 10 MB of outputs in %.3f s (%zu bytes)\n", secs, b.len);

    json_t *back = NULL;
    nb_err_t err;
    assert_int_equal(nb_load_text(b.data, b.len, "big", &back, &err), 0);
    assert_true(json_equal(back, nb));
    json_decref(back);
    json_decref(nb);
    buf_free(&b);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_not_notebook),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_bad_cells),
        cmocka_unit_test(test_bad_outputs),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_nul_and_duplicates),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_format_real),
        cmocka_unit_test(test_format_string),
        cmocka_unit_test(test_line_len),
        cmocka_unit_test(test_dump_value),
        cmocka_unit_test(test_frame_edges),
        cmocka_unit_test(test_big_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
