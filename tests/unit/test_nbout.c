/* Unit tests for nbout: nbclient's output rules and the size cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "notebook/nbout.h"

static json_t *cells_new(int n)
{
    json_t *cells = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(cells, json_pack("{s:s, s:[]}", "cell_type", "code", "outputs"));
    return cells;
}

static json_t *outs(json_t *cells, size_t i) { return json_object_get(json_array_get(cells, i), "outputs"); }

static void stream(nbout_t *o, const char *name, const char *text)
{
    json_t *c = json_pack("{s:s, s:s}", "name", name, "text", text);
    nbout_handle(o, "stream", c);
    json_decref(c);
}

static void display(nbout_t *o, const char *type, const char *text, const char *id)
{
    json_t *c = json_pack("{s:{s:s}, s:{}}", "data", "text/plain", text, "metadata");
    if (id) json_object_set_new(c, "transient", json_pack("{s:s}", "display_id", id));
    if (strcmp(type, "execute_result") == 0) json_object_set_new(c, "execution_count", json_integer(3));
    nbout_handle(o, type, c);
    json_decref(c);
}

static void test_stream_merge(void **state)
{
    (void)state;
    json_t *cells = cells_new(1);
    nbout_t *o = nbout_new(cells, 0, NULL, NULL);
    nbout_begin(o, 0);
    stream(o, "stdout", "a\n");
    stream(o, "stdout", "b\n");
    stream(o, "stderr", "e\n");
    stream(o, "stdout", "c\n");
    nbout_end(o);
    json_t *os = outs(cells, 0);
    assert_int_equal(json_array_size(os), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(os, 0), "text")), "a\nb\n");
    assert_string_equal(json_string_value(json_object_get(json_array_get(os, 1), "name")), "stderr");
    assert_string_equal(json_string_value(json_object_get(json_array_get(os, 2), "text")), "c\n");
    nbout_free(o);
    json_decref(cells);
}

static void test_clear_output(void **state)
{
    (void)state;
    json_t *cells = cells_new(1);
    nbout_t *o = nbout_new(cells, 0, NULL, NULL);
    nbout_begin(o, 0);
    stream(o, "stdout", "1\n");
    json_t *w = json_pack("{s:b}", "wait", 1);
    nbout_handle(o, "clear_output", w);
    assert_int_equal(json_array_size(outs(cells, 0)), 1);   /* waits for the next output */
    stream(o, "stdout", "2\n");
    nbout_end(o);
    assert_int_equal(json_array_size(outs(cells, 0)), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(outs(cells, 0), 0), "text")), "2\n");
    json_decref(w);
    nbout_begin(o, 0);
    stream(o, "stdout", "x");
    json_t *now = json_pack("{s:b}", "wait", 0);
    nbout_handle(o, "clear_output", now);
    assert_int_equal(json_array_size(outs(cells, 0)), 0);
    json_decref(now);
    nbout_free(o);
    json_decref(cells);
}

static void test_display_id_update_across_cells(void **state)
{
    (void)state;
    json_t *cells = cells_new(2);
    nbout_t *o = nbout_new(cells, 0, NULL, NULL);
    nbout_begin(o, 0);
    display(o, "display_data", "v1", "d1");
    display(o, "display_data", "other", NULL);
    nbout_end(o);
    nbout_begin(o, 1);
    display(o, "update_display_data", "v2", "d1");
    display(o, "execute_result", "r", NULL);
    nbout_end(o);
    json_t *first = json_array_get(outs(cells, 0), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(first, "data"), "text/plain")), "v2");
    assert_int_equal(json_array_size(outs(cells, 1)), 1);  /* update adds no output */
    json_t *er = json_array_get(outs(cells, 1), 0);
    assert_int_equal(json_integer_value(json_object_get(er, "execution_count")), 3);
    nbout_free(o);
    json_decref(cells);
}

static void test_cap(void **state)
{
    (void)state;
    json_t *cells = cells_new(1);
    nbout_t *o = nbout_new(cells, 10, NULL, NULL);
    nbout_begin(o, 0);
    stream(o, "stdout", "12345678");
    stream(o, "stdout", "\xc3\xa9\xc3\xa9\xc3\xa9");  /* 6 bytes, only one é fits after a cut */
    stream(o, "stdout", "more");
    display(o, "display_data", "big payload", NULL);
    nbout_end(o);
    json_t *os = outs(cells, 0);
    const char *t = json_string_value(json_object_get(json_array_get(os, 0), "text"));
    assert_non_null(strstr(t, "12345678\xc3\xa9"));
    assert_non_null(strstr(t, "output truncated"));
    assert_null(strstr(t, "more"));
    json_t *d = json_array_get(os, 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(d, "data"), "text/plain")), "dropped"));
    assert_true(nbout_dropped(o) > 0);
    nbout_free(o);
    json_decref(cells);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_merge),
        cmocka_unit_test(test_clear_output),
        cmocka_unit_test(test_display_id_update_across_cells),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
