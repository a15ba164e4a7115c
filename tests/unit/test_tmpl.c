/* Unit tests for tmpl: every variable, typed substitution, escapes,
 * errors at check time and at render time, nested values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/tmpl.h"
#include "sched/tz.h"

/* 2026-03-29 05:00 in Berlin is CEST (+02:00): 03:00Z.  The data interval
 * is the day before, which started in CET (+01:00). */
static json_t *params;

static void ctx_init(tmpl_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    c->flow = "daily-report";
    c->task = "extract";
    c->run_id = "scheduled__2026-03-29T03:00:00Z";
    c->logical = (tmpl_time_t){ 1774753200, 7200 };
    c->interval_start = (tmpl_time_t){ 1774666800, 3600 };
    c->interval_end = (tmpl_time_t){ 1774753200, 7200 };
    c->params = params;
}

static int setup(void **state)
{
    (void)state;
    json_error_t e;
    params = json_loads("{\"region\": \"eu\", \"n\": 10, \"ratio\": 0.1, \"on\": true, \"none\": null,"
                        " \"list\": [1, \"a\"], \"db\": {\"host\": \"h\", \"port\": 5432},"
                        " \"big\": {\"__nbhub_pynum__\": \"inf\"}}", 0, &e);
    return params ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(params);
    return 0;
}

/* Render s and compare the compact JSON of the result. */
static void expect_render(const char *s, const char *json)
{
    tmpl_ctx_t c;
    ctx_init(&c);
    json_t *out = NULL;
    nb_err_t err;
    int rc = tmpl_render_string(s, &c, &out, &err);
    if (rc != 0)
        print_error("'%s': %s\n", s, err.msg);
    assert_int_equal(rc, 0);
    char *d = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT);
    if (strcmp(d, json) != 0)
        print_error("'%s' -> %s, expected %s\n", s, d, json);
    assert_string_equal(d, json);
    free(d);
    json_decref(out);
}

static void expect_render_error(const char *s, const char *msg)
{
    tmpl_ctx_t c;
    ctx_init(&c);
    json_t *out = (json_t *)1;
    nb_err_t err;
    assert_int_equal(tmpl_render_string(s, &c, &out, &err), -EINVAL);
    assert_null(out);
    assert_string_equal(err.msg, msg);
}

static void test_variables(void **state)
{
    (void)state;
    expect_render("{{ ds }}", "\"2026-03-29\"");
    expect_render("{{ds_nodash}}", "\"20260329\"");
    expect_render("{{ ts }}", "\"2026-03-29T05:00:00+02:00\"");
    expect_render("{{ ts_nodash }}", "\"20260329T050000\"");
    expect_render("{{ data_interval_start }}", "\"2026-03-28T04:00:00+01:00\"");
    expect_render("{{ data_interval_end }}", "\"2026-03-29T05:00:00+02:00\"");
    expect_render("{{ run_id }}", "\"scheduled__2026-03-29T03:00:00Z\"");
    expect_render("{{ flow }}/{{ task }}", "\"daily-report/extract\"");
    expect_render("{{ params.region }}", "\"eu\"");
    expect_render("{{ params.db.host }}", "\"h\"");
    expect_render("\t{{\t ds \t}}x", "\"\\t2026-03-29x\"");
}

static void test_time_zones(void **state)
{
    (void)state;
    tz_t *tz = NULL;
    nb_err_t err;
    assert_int_equal(tz_load("America/St_Johns", &tz, &err), 0);
    tmpl_ctx_t c;
    ctx_init(&c);
    assert_int_equal(tmpl_time_in(tz, 1767225600, &c.logical), 0);   /* 2026-01-01T00:00Z */
    assert_int_equal(c.logical.utc_offset, -12600);
    json_t *out;
    assert_int_equal(tmpl_render_string("{{ ds }} {{ ts }} {{ ts_nodash }}", &c, &out, &err), 0);
    assert_string_equal(json_string_value(out),
                        "2025-12-31 2025-12-31T20:30:00-03:30 20251231T203000");
    json_decref(out);
    tz_free(tz);
    assert_int_equal(tmpl_time_in(NULL, 0, &c.logical), 0);
    assert_int_equal(tmpl_render_string("{{ ts }}", &c, &out, &err), 0);
    assert_string_equal(json_string_value(out), "1970-01-01T00:00:00+00:00");
    json_decref(out);
    /* a date before the epoch */
    c.logical = (tmpl_time_t){ -1, 0 };
    assert_int_equal(tmpl_render_string("{{ ts }}", &c, &out, &err), 0);
    assert_string_equal(json_string_value(out), "1969-12-31T23:59:59+00:00");
    json_decref(out);
}

static void test_typed(void **state)
{
    (void)state;
    /* a whole-string params hole keeps the JSON type */
    expect_render("{{ params.n }}", "10");
    expect_render("{{params.ratio}}", "0.10000000000000001");
    expect_render("{{ params.on }}", "true");
    expect_render("{{ params.none }}", "null");
    expect_render("{{ params.list }}", "[1,\"a\"]");
    expect_render("{{ params.db }}", "{\"host\":\"h\",\"port\":5432}");
    expect_render("{{ params.db.port }}", "5432");
    expect_render("{{ params.big }}", "{\"__nbhub_pynum__\":\"inf\"}");
    /* anything else interpolates text */
    expect_render("n={{ params.n }}", "\"n=10\"");
    expect_render("{{ params.ratio }}!", "\"0.1!\"");
    expect_render("{{ params.on }}/{{ params.none }}", "\"true/null\"");
    expect_render("{{ params.list }} ", "\"[1,\\\"a\\\"] \"");
    expect_render("{{ params.big }}x", "\"infx\"");
    expect_render(" {{ params.n }}", "\" 10\"");
    expect_render("{{ params.n }}{{ params.n }}", "\"1010\"");
    /* other variables are strings even alone */
    expect_render("{{ ds_nodash }}", "\"20260329\"");
}

static void test_escapes_and_literals(void **state)
{
    (void)state;
    expect_render("no holes", "\"no holes\"");
    expect_render("", "\"\"");
    expect_render("{{{{ ds }}", "\"{{ ds }}\"");
    expect_render("a {{{{ b }} {{ ds }}", "\"a {{ b }} 2026-03-29\"");
    expect_render("}} { } {x}", "\"}} { } {x}\"");
    expect_render("{{{{{{ ds }}", "\"{{2026-03-29\"");
    expect_render("{{{{", "\"{{\"");
}

static void test_errors(void **state)
{
    (void)state;
    expect_render_error("{{ dss }}", "unknown template variable 'dss' in '{{ dss }}'; did you mean 'ds'?");
    expect_render_error("{{ foo }}", "unknown template variable 'foo' in '{{ foo }}' (known: ds, "
                        "ds_nodash, ts, ts_nodash, data_interval_start, data_interval_end, run_id, "
                        "flow, task, params.NAME)");
    expect_render_error("x {{ ds", "unclosed '{{' in '{{ ds' (write '{{{{' for a literal '{{')");
    expect_render_error("{{ }}", "empty template '{{ }}'");
    expect_render_error("{{ ds | upper }}", "template '{{ ds | upper }}': filters are not supported; "
                        "only {{ name }} and {{ params.NAME }}");
    expect_render_error("{{ ds() }}", "template '{{ ds() }}': only a variable name is allowed "
                        "(no expressions or code)");
    expect_render_error("{{ 1 + 1 }}", "template '{{ 1 + 1 }}': only a variable name is allowed "
                        "(no expressions or code)");
    expect_render_error("{{ ds.x }}", "template '{{ ds.x }}': only a variable name is allowed "
                        "(no expressions or code)");
    expect_render_error("{{ params }}", "'{{ params }}' needs a parameter name: {{ params.NAME }}");
    expect_render_error("{{ params.x }}", "parameter 'x' has no value in '{{ params.x }}'");
    expect_render_error("a{{ params.x }}", "parameter 'x' has no value in '{{ params.x }}'");
    expect_render_error("{{ params.db.user }}", "key 'user' has no value in '{{ params.db.user }}'");
    expect_render_error("{{ params.n.x }}", "key 'x' has no value in '{{ params.n.x }}'");
    expect_render_error("{{{ ds }}", "template '{{{ ds }}': only a variable name is allowed "
                        "(no expressions or code)");
}

static void test_check(void **state)
{
    (void)state;
    nb_err_t err;
    assert_int_equal(tmpl_check("{{ ds }} {{ params.region }} {{ params.db.port }}", params, &err), 0);
    /* keys below a parameter must exist in its default */
    assert_int_equal(tmpl_check("{{ params.db.user }}", params, &err), -EINVAL);
    assert_string_equal(err.msg, "key 'user' has no value in '{{ params.db.user }}'");
    assert_int_equal(tmpl_check("plain", NULL, &err), 0);
    assert_int_equal(tmpl_check("{{ params.regon }}", params, &err), -EINVAL);
    assert_string_equal(err.msg, "unknown parameter 'regon' in '{{ params.regon }}'; did you mean 'region'?");
    assert_int_equal(tmpl_check("{{ params.zzz }}", params, &err), -EINVAL);
    assert_string_equal(err.msg, "unknown parameter 'zzz' in '{{ params.zzz }}' (declare it under "
                        "'params' with a default)");
    assert_int_equal(tmpl_check("{{ params.x }}", NULL, &err), -EINVAL);
    assert_int_equal(tmpl_check("{{ tss }}", params, &err), -EINVAL);
    assert_string_equal(err.msg, "unknown template variable 'tss' in '{{ tss }}'; did you mean 'ts'?");
    assert_true(tmpl_has_holes("a {{ b"));
    assert_false(tmpl_has_holes("a { b"));
}

static void test_nested(void **state)
{
    (void)state;
    json_error_t je;
    json_t *in = json_loads("{\"day\": \"{{ ds }}\", \"n\": \"{{ params.n }}\", \"k\": 3, \"b\": false,"
                            " \"deep\": {\"l\": [\"{{ task }}\", [\"{{ params.list }}\"], null, 1.5]},"
                            " \"{{ ds }}\": \"keys are not templated\"}", 0, &je);
    assert_non_null(in);
    tmpl_ctx_t c;
    ctx_init(&c);
    json_t *out = NULL;
    nb_err_t err;
    assert_int_equal(tmpl_render(in, &c, &out, &err), 0);
    char *d = json_dumps(out, JSON_COMPACT);
    assert_string_equal(d, "{\"day\":\"2026-03-29\",\"n\":10,\"k\":3,\"b\":false,"
                        "\"deep\":{\"l\":[\"extract\",[[1,\"a\"]],null,1.5]},"
                        "\"{{ ds }}\":\"keys are not templated\"}");
    free(d);
    json_decref(out);
    /* the input is untouched, and an error deep inside fails the whole */
    json_object_set_new(json_object_get(in, "deep"), "bad", json_string("{{ nope }}"));
    out = (json_t *)1;
    assert_int_equal(tmpl_render(in, &c, &out, &err), -EINVAL);
    assert_null(out);
    assert_string_equal(json_string_value(json_object_get(in, "day")), "{{ ds }}");
    /* a scalar renders too */
    json_t *s = json_string("{{ params.n }}");
    assert_int_equal(tmpl_render(s, &c, &out, &err), 0);
    assert_int_equal(json_integer_value(out), 10);
    json_decref(out);
    json_decref(s);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_time_zones),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_escapes_and_literals),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_nested),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
