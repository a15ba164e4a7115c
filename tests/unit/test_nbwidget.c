/* Unit tests for nbwidget: nbclient's widget state and Output widget rules
 * on the messages ipywidgets 8 sends (the black-box parity test runs the
 * real thing: tests/blackbox/test_widgets.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "notebook/nbwidget.h"

#define OUT_ID "aaaa0000aaaa0000aaaa0000aaaa0000"

static void open_output(nbwidget_t *w, const char *id)
{
    json_t *c = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:s, s:s, s:[]}, s:[]}}", "comm_id", id,
                          "target_name", "jupyter.widget", "data", "state",
                          "_model_module", "@jupyter-widgets/output", "_model_name", "OutputModel",
                          "_model_module_version", "1.0.0", "msg_id", "", "outputs", "buffer_paths");
    assert_int_equal(nbwidget_comm(w, "comm_open", c, NULL, 0), 1);
    json_decref(c);
}

static void set_msg_id(nbwidget_t *w, const char *id, const char *msg_id)
{
    json_t *c = json_pack("{s:s, s:{s:s, s:{s:s}, s:[]}}", "comm_id", id, "data", "method", "update",
                          "state", "msg_id", msg_id, "buffer_paths");
    nbwidget_comm(w, "comm_msg", c, NULL, 0);
    json_decref(c);
}

static void stream(nbwidget_t *w, nbwidget_out_t *o, const char *text)
{
    json_t *c = json_pack("{s:s, s:s}", "name", "stdout", "text", text);
    nbwidget_output(w, o, "stream", c);
    json_decref(c);
}

/* The saved state of a model. */
static json_t *saved(json_t *nb, const char *id)
{
    return json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(nb, "metadata"),
           "widgets"), NBWIDGET_STATE_MIME), "state"), id);
}

static void sent(json_t *content, void *ud)
{
    json_array_append_new(ud, content);
}

static void test_capture_stream_merge_and_sync(void **state)
{
    (void)state;
    nbwidget_t *w = nbwidget_new(0);
    assert_null(nbwidget_capture(w, "cell1"));
    open_output(w, OUT_ID);
    set_msg_id(w, OUT_ID, "cell1");
    nbwidget_out_t *o = nbwidget_capture(w, "cell1");
    assert_non_null(o);
    assert_null(nbwidget_capture(w, "cell2"));   /* only that request's outputs */
    stream(w, o, "a\n");
    stream(w, o, "b\n");
    json_t *d = json_pack("{s:{s:s}, s:{}}", "data", "text/plain", "x", "metadata");
    nbwidget_output(w, o, "display_data", d);
    json_decref(d);
    set_msg_id(w, OUT_ID, "");
    assert_null(nbwidget_capture(w, "cell1"));

    json_t *msgs = json_array();
    nbwidget_sync(w, sent, msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0);
    assert_string_equal(json_string_value(json_object_get(m, "comm_id")), OUT_ID);
    json_t *data = json_object_get(m, "data");
    assert_string_equal(json_string_value(json_object_get(data, "method")), "update");
    json_t *outs = json_object_get(json_object_get(data, "state"), "outputs");
    assert_int_equal(json_array_size(outs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(outs, 0), "text")), "a\nb\n");
    /* nothing changed since: nothing sent */
    nbwidget_sync(w, sent, msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_decref(msgs);

    json_t *nb = json_pack("{s:{s:{s:{}}}}", "metadata", "widgets", "stale");
    assert_int_equal(nbwidget_save(w, nb), 1);
    json_t *model = saved(nb, OUT_ID);
    assert_string_equal(json_string_value(json_object_get(model, "model_name")), "OutputModel");
    assert_string_equal(json_string_value(json_object_get(model, "model_module_version")), "1.0.0");
    json_t *st = json_object_get(model, "state");
    assert_string_equal(json_string_value(json_object_get(st, "msg_id")), "");
    assert_int_equal(json_array_size(json_object_get(st, "outputs")), 2);
    assert_null(json_object_get(json_object_get(json_object_get(nb, "metadata"), "widgets"), "stale"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(
        json_object_get(nb, "metadata"), "widgets"), NBWIDGET_STATE_MIME), "version_major")), 2);
    json_decref(nb);
    nbwidget_free(w);
}

static void test_nesting_and_clear_wait(void **state)
{
    (void)state;
    nbwidget_t *w = nbwidget_new(0);
    open_output(w, "outer");
    open_output(w, "inner");
    set_msg_id(w, "outer", "c");
    nbwidget_out_t *outer = nbwidget_capture(w, "c");
    set_msg_id(w, "inner", "c");
    nbwidget_out_t *inner = nbwidget_capture(w, "c");
    assert_ptr_not_equal(inner, outer);   /* the newest captures */
    stream(w, inner, "in\n");
    set_msg_id(w, "inner", "");
    assert_ptr_equal(nbwidget_capture(w, "c"), outer);
    stream(w, outer, "1\n");
    nbwidget_clear(w, outer, 1);   /* wait: still there until the next output */
    json_t *nb = json_object();
    nbwidget_save(w, nb);
    assert_int_equal(json_array_size(json_object_get(json_object_get(saved(nb, "outer"), "state"), "outputs")), 1);
    stream(w, outer, "2\n");
    nbwidget_save(w, nb);
    json_t *os = json_object_get(json_object_get(saved(nb, "outer"), "state"), "outputs");
    assert_int_equal(json_array_size(os), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(os, 0), "text")), "2\n");
    nbwidget_clear(w, outer, 0);
    nbwidget_save(w, nb);
    assert_int_equal(json_array_size(json_object_get(json_object_get(saved(nb, "outer"), "state"), "outputs")), 0);
    json_decref(nb);
    nbwidget_free(w);
}

/* Other widgets: state merged across updates, buffers by path, models
 * without _model_name left out; no state at all: the notebook untouched. */
static void test_state_buffers_and_nothing(void **state)
{
    (void)state;
    nbwidget_t *w = nbwidget_new(0);
    json_t *nb = json_pack("{s:{s:{s:b}}}", "metadata", "widgets", "stale", 1);
    assert_int_equal(nbwidget_save(w, nb), 0);
    assert_non_null(json_object_get(json_object_get(json_object_get(nb, "metadata"), "widgets"), "stale"));

    json_t *c = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:i}, s:[[s]]}}", "comm_id", "img", "target_name",
                          "jupyter.widget", "data", "state", "_model_name", "ImageModel", "_model_module",
                          "@jupyter-widgets/controls", "width", 1, "buffer_paths", "value");
    kbytes_t b1 = { (char *)"\x89PNG", 4 };
    assert_int_equal(nbwidget_comm(w, "comm_open", c, &b1, 1), 0);
    json_decref(c);
    c = json_pack("{s:s, s:{s:s, s:{s:i}, s:[[s]]}}", "comm_id", "img", "data", "method", "update",
                  "state", "width", 2, "buffer_paths", "value");
    kbytes_t b2 = { (char *)"abc", 3 };
    nbwidget_comm(w, "comm_msg", c, &b2, 1);
    json_decref(c);
    c = json_pack("{s:s, s:{s:{s:i}}}", "comm_id", "nameless", "data", "state", "x", 1);
    nbwidget_comm(w, "comm_open", c, NULL, 0);
    json_decref(c);

    assert_int_equal(nbwidget_save(w, nb), 1);
    json_t *m = saved(nb, "img");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "state"), "width")), 2);
    assert_true(json_is_null(json_object_get(m, "model_module_version")));
    json_t *bufs = json_object_get(m, "buffers");
    assert_int_equal(json_array_size(bufs), 1);   /* one path, the later buffer */
    assert_string_equal(json_string_value(json_object_get(json_array_get(bufs, 0), "data")), "YWJj");
    assert_string_equal(json_string_value(json_object_get(json_array_get(bufs, 0), "encoding")), "base64");
    assert_null(saved(nb, "nameless"));
    assert_null(json_object_get(json_object_get(json_object_get(nb, "metadata"), "widgets"), "stale"));
    json_decref(nb);
    nbwidget_free(w);
}

/* A loop printing into a widget is capped like a cell's output. */
static void test_cap(void **state)
{
    (void)state;
    nbwidget_t *w = nbwidget_new(10);
    open_output(w, OUT_ID);
    set_msg_id(w, OUT_ID, "c");
    nbwidget_out_t *o = nbwidget_capture(w, "c");
    for (int i = 0; i < 100; i++) stream(w, o, "0123");
    json_t *nb = json_object();
    nbwidget_save(w, nb);
    json_t *os = json_object_get(json_object_get(saved(nb, OUT_ID), "state"), "outputs");
    assert_int_equal(json_array_size(os), 1);
    const char *t = json_string_value(json_object_get(json_array_get(os, 0), "text"));
    assert_memory_equal(t, "0123012301", 10);
    assert_non_null(strstr(t, "output truncated"));
    json_decref(nb);
    nbwidget_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_stream_merge_and_sync),
        cmocka_unit_test(test_nesting_and_clear_wait),
        cmocka_unit_test(test_state_buffers_and_nothing),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
