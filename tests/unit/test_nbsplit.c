/* Unit tests for nbsplit: a notebook read cell by cell must render exactly
 * as the whole tree does (every notebook of tests/unit/data/nbjson and
 * examples/), and refuse what nb_load_text refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nb.h"
#include "notebook/nbhtml.h"
#include "notebook/nbsplit.h"
#include "util/fsutil.h"

/* Render text cell by cell; NULL and the message in err on refusal. */
static char *render_split(const char *text, size_t len, nb_err_t *err)
{
    nbsplit_t it;
    json_t *skel, *cell;
    if (nbsplit_open(&it, text, len, "t.ipynb", &skel, err) < 0) return NULL;
    struct nbhtml_opts o = { "T", "/x.ipynb", 0 };
    buf_t b = BUF_INIT;
    nbhtml_begin(skel, &o, &b);
    json_decref(skel);
    int rc;
    size_t last = 0;
    while ((rc = nbsplit_next(&it, &cell, err)) > 0) {
        assert_true(nbsplit_consumed(&it) > last);
        last = nbsplit_consumed(&it);
        nbhtml_cell(cell, &o, &b);
        json_decref(cell);
    }
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    nbhtml_end(&b);
    return b.data;
}

static char *render_whole(const char *text, size_t len, nb_err_t *err)
{
    json_t *nb;
    if (nb_load_text(text, len, "t.ipynb", &nb, err) < 0) return NULL;
    struct nbhtml_opts o = { "T", "/x.ipynb", 0 };
    buf_t b = BUF_INIT;
    nbhtml_render(nb, &o, &b);
    json_decref(nb);
    return b.data;
}

static int same(const char *text, size_t len)
{
    nb_err_t e1, e2;
    char *a = render_whole(text, len, &e1), *b = render_split(text, len, &e2);
    int ok = (a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0);
    if (!ok)
        fprintf(stderr, "differ on: %.200s\n  whole: %s\n  split: %s\n", text, a ? "ok" : e1.msg,
                b ? "ok" : e2.msg);
    free(a);
    free(b);
    return ok;
}

static void test_corpus_renders_the_same(void **state)
{
    (void)state;
    static const char *const dirs[] = { "tests/unit/data/nbjson", "examples" };
    int n = 0;
    for (size_t d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir))) {
            size_t l = strlen(e->d_name);
            if (l < 6 || strcmp(e->d_name + l - 6, ".ipynb")) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            char *text;
            size_t len;
            nb_err_t err;
            assert_int_equal(fs_read_all(path, &text, &len, &err), 0);
            if (!same(text, len)) fail_msg("%s", path);
            free(text);
            n++;
        }
        closedir(dir);
    }
    assert_true(n >= 20);
    printf("nbsplit: %d notebooks render byte for byte as the whole tree does\n", n);
}

static void test_odd_but_valid(void **state)
{
    (void)state;
    static const char *const ok[] = {
        /* members in any order, cells last or first, spaces everywhere */
        " { \"nbformat\" : 4 , \"nbformat_minor\":5, \"metadata\":{}, \"cells\" : [ ] } \n",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":[\"a\\\"]\",\"b\\\\\"]}],"
        "\"metadata\":{\"kernelspec\":{\"name\":\"python3\"}},\"nbformat\":4,\"nbformat_minor\":4}",
        /* a key spelled with an escape, and cells given twice: the last wins */
        "{\"c\\u0065lls\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"first\"}],"
        "\"cells\":[{\"cell_type\":\"markdown\",\"metadata\":{},\"source\":\"# [x]{y}\"}],"
        "\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}",
        "{\"cells\":[{\"cell_type\":\"code\",\"metadata\":{},\"execution_count\":null,\"source\":\"1\","
        "\"outputs\":[{\"output_type\":\"error\",\"ename\":\"E\",\"evalue\":\"v\",\"traceback\":[]}]}],"
        "\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        nb_err_t err;
        char *h = render_split(ok[i], strlen(ok[i]), &err);
        if (!h) fail_msg("refused: %s: %s", ok[i], err.msg);
        free(h);
        if (!same(ok[i], strlen(ok[i]))) fail_msg("%s", ok[i]);
    }
}

/* Lists of lines that cannot be decoded one literal at a time ("\u0000",
 * not only strings) go through jparse and nb_normalise as before; values
 * nested near jansson's depth limit (2048) are refused exactly when
 * nb_load_text refuses them, wherever they sit. */
static void test_fallbacks_and_depth(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"cells\":[{\"cell_type\":\"code\",\"metadata\":{},\"execution_count\":1,\"source\":[\"a\\u0000\",\"b\"],"
        "\"outputs\":[{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":[\"x\\u0000y\\n\",\"z\"]},"
        "{\"output_type\":\"display_data\",\"metadata\":{},\"data\":{\"text/plain\":[\"p\",1],"
        "\"application/json\":[\"a\",\"b\"],\"text/html\":[\"<b>\",\"</b>\"]}}]}],"
        "\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}",
        "{\"cells\":[{\"cell_type\":\"code\",\"metadata\":{},\"source\":[],\"outputs\":["
        "{\"text\":[\"t\"],\"output_type\":\"execute_result\",\"data\":{\"text/plain\":[]},\"metadata\":{}},"
        "{\"output_type\":\"error\",\"ename\":\"E\",\"evalue\":\"v\",\"traceback\":[\"a\",\"b\"],\"text\":[\"q\"]}]}],"
        "\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        if (!same(docs[i], strlen(docs[i]))) fail_msg("%s", docs[i]);

    static const char *const where[][2] = {
        { "{\"metadata\":{\"x\":", "},\"cells\":[],\"nbformat\":4}" },
        { "{\"metadata\":{},\"nbformat\":4,\"cells\":[{\"cell_type\":\"code\",\"metadata\":{},"
          "\"source\":\"\",\"outputs\":[{\"output_type\":\"display_data\",\"metadata\":{},"
          "\"data\":{\"text/plain\":", "}}]}]}" },
        { "{\"metadata\":{},\"nbformat\":4,\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":",
          "}]}" },
    };
    int took = 0, refused = 0;
    for (size_t w = 0; w < 3; w++)
        for (int k = 2036; k <= 2050; k++) {
            buf_t b = BUF_INIT;
            buf_puts(&b, where[w][0]);
            for (int i = 0; i < k; i++) buf_putc(&b, '[');
            buf_puts(&b, "\"s\"");
            for (int i = 0; i < k; i++) buf_putc(&b, ']');
            buf_puts(&b, where[w][1]);
            if (!same(b.data, b.len)) fail_msg("depth %d at place %zu", k, w);
            nb_err_t err;
            char *h = render_split(b.data, b.len, &err);
            if (h) took++;
            else refused++;
            free(h);
            buf_free(&b);
        }
    assert_true(took > 0 && refused > 0);     /* the limit falls inside the range */
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "[]", "{", "{}", "nope",
        "{\"cells\":[],\"metadata\":{},\"nbformat\":3}",
        "{\"cells\":[],\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5} x",
        "{\"cells\":[{}],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"a\"},],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"a\"}\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"a}],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":{},\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[],\"metadata\":[],\"nbformat\":4}",
        "{\"cells\":[],\"metadata\":{},\"nbformat\":4,}",
        "{\"cells\":[1 2],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"\\x\"}],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[{\"cell_type\":\"raw\",\"metadata\":{},\"source\":\"a\"]],\"metadata\":{},\"nbformat\":4}",
        "{\"cells\":[],\"metadata\":{},\"nbformat\":4 \"x\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nb_err_t e1, e2;
        char *a = render_whole(bad[i], strlen(bad[i]), &e1);
        char *b = render_split(bad[i], strlen(bad[i]), &e2);
        if (a) fail_msg("nb_load_text took: %s", bad[i]);
        if (b) fail_msg("nbsplit took: %s", bad[i]);
        assert_non_null(strstr(e2.msg, "t.ipynb"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_renders_the_same),
        cmocka_unit_test(test_odd_but_valid),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_fallbacks_and_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
