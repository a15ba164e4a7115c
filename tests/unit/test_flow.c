/* Unit tests for flow: the flow file parser and its validation.  Run from
 * the repository root (fixtures in tests/unit/data/flows/).  Error texts
 * are compared exactly: they are part of the user interface. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/dag.h"
#include "sched/flow.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#define DATA "tests/unit/data/flows"

/* Parse text (named t.yaml, resolved in DATA); returns rc, flow in *out. */
static int parse(const char *text, flow_t **out, nb_errlist_t *errs)
{
    return flow_parse_text(text, strlen(text), "t.yaml", DATA, out, errs);
}

/* All errors of text, one per line. */
static char *errors_of(const char *text)
{
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    int rc = parse(text, &f, &errs);
    assert_int_equal(rc, -EINVAL);
    assert_null(f);
    buf_t b = BUF_INIT;
    errlist_format(&errs, &b);
    errlist_free(&errs);
    return buf_detach(&b);
}

static int mismatches;

/* Check text fails with exactly `expected` (all lines); mismatches are
 * printed and counted, so one run shows them all. */
static void expect_errors(const char *text, const char *expected)
{
    char *got = errors_of(text);
    if (strcmp(got, expected) != 0) {
        print_error("expected:\n%sgot:\n%s", expected, got);
        mismatches++;
    }
    free(got);
}

static flow_t *parse_ok(const char *text)
{
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    int rc = parse(text, &f, &errs);
    if (rc != 0) {
        buf_t b = BUF_INIT;
        errlist_format(&errs, &b);
        print_error("unexpected errors:\n%s", b.data);
        buf_free(&b);
    }
    assert_int_equal(rc, 0);
    assert_non_null(f);
    assert_int_equal(errlist_count(&errs), 0);
    errlist_free(&errs);
    return f;
}

static char *abs_data_dir(void)
{
    char *r = realpath(DATA, NULL);
    assert_non_null(r);
    return r;
}

/* Replace every "@DIR@" in s. */
static char *subst_dir(const char *s, const char *dir)
{
    buf_t b = BUF_INIT;
    for (const char *p = s; *p;) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            buf_puts(&b, dir);
            p += 5;
        } else {
            buf_putc(&b, *p++);
        }
    }
    return buf_detach(&b);
}

static void test_full_roundtrip(void **state)
{
    (void)state;
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    assert_int_equal(flow_parse_file(DATA "/full.yaml", &f, &errs), 0);
    assert_int_equal(errlist_count(&errs), 0);
    char *text = NULL;
    size_t len;
    assert_int_equal(fs_read_all(DATA "/full.json", &text, &len, NULL), 0);
    char *dir = abs_data_dir();
    char *exp_text = subst_dir(text, dir);
    json_error_t jerr;
    json_t *expected = json_loads(exp_text, 0, &jerr);
    assert_non_null(expected);
    json_t *got = flow_to_json(f);
    if (!json_equal(got, expected)) {
        char *g = json_dumps(got, JSON_INDENT(2));
        print_error("got:\n%s\n", g);
        free(g);
        fail();
    }
    /* Canonical: a second parse gives equal JSON and does not touch f. */
    flow_t *f2 = NULL;
    assert_int_equal(flow_parse_file(DATA "/full.yaml", &f2, &errs), 0);
    json_t *got2 = flow_to_json(f2);
    assert_true(json_equal(got, got2));
    assert_ptr_not_equal(f, f2);
    /* The model itself. */
    assert_int_equal(f->sched_kind, FLOW_SCHED_CRON);
    assert_non_null(f->cron);
    assert_non_null(f->tz);
    assert_int_equal(f->ntasks, 4);
    assert_int_equal(f->tasks[3].argc, 5);
    assert_string_equal(f->tasks[3].argv[2], "print(\"done\")");
    assert_null(f->tasks[3].argv[5]);
    assert_string_equal(flow_task(f, "report")->name, "report");
    assert_null(flow_task(f, "nope"));
    assert_string_equal(flow_task_topo(f, 3)->name, "notify");
    json_decref(got2);
    json_decref(got);
    json_decref(expected);
    free(exp_text);
    free(dir);
    free(text);
    flow_free(f2);
    flow_free(f);
    errlist_free(&errs);
}

static void test_list_form_and_default_name(void **state)
{
    (void)state;
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    assert_int_equal(flow_parse_file(DATA "/list-form.yaml", &f, &errs), 0);
    assert_string_equal(f->name, "list-form");
    assert_int_equal(f->ntasks, 2);
    assert_string_equal(f->tasks[1].name, "second");
    assert_int_equal(f->tasks[1].nparents, 1);
    assert_int_equal(f->tasks[1].parents[0], 0);
    assert_int_equal(f->sched_kind, FLOW_SCHED_INTERVAL);
    assert_int_equal(f->interval, 300);
    flow_free(f);
    errlist_free(&errs);
}

static void test_error_file(void **state)
{
    (void)state;
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    assert_int_equal(flow_parse_file(DATA "/errors.yaml", &f, &errs), -EINVAL);
    assert_null(f);
    char *dir = abs_data_dir();
    buf_t b = BUF_INIT;
    errlist_format(&errs, &b);
    char *exp = xasprintf(
        DATA "/errors.yaml:2:1: unknown key 'shedule'; did you mean 'schedule'?\n"
        DATA "/errors.yaml:5:15: notebook 'notebooks/nope.ipynb' not found (looked for %s/notebooks/nope.ipynb)\n"
        DATA "/errors.yaml:6:14: 'retries' must be an integer, not a string\n"
        DATA "/errors.yaml:8:16: task 'b': 'after' names unknown task 'missing'\n"
        DATA "/errors.yaml:9:14: unterminated \" in command\n", dir);
    assert_string_equal(b.data, exp);
    free(exp);
    free(dir);
    buf_free(&b);
    errlist_free(&errs);
}

static void test_missing_file(void **state)
{
    (void)state;
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    int rc = flow_parse_file(DATA "/does-not-exist.yaml", &f, &errs);
    assert_int_equal(rc, -ENOENT);
    assert_null(f);
    assert_int_equal(errlist_count(&errs), 1);
    char *s = errlist_format_one(&errs, 0);
    assert_true(strncmp(s, DATA "/does-not-exist.yaml: ", strlen(DATA) + 22) == 0);
    free(s);
    errlist_free(&errs);
}

/* One error per kind, with its exact text. */
static void test_error_kinds(void **state)
{
    (void)state;
    mismatches = 0;
    const char *nb = "    notebook: notebooks/a.ipynb\n";
    char *t;
    /* unknown key with and without a suggestion, and at the wrong level */
    expect_errors("shedule: '@daily'\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:1: unknown key 'shedule'; did you mean 'schedule'?\n");
    expect_errors("frobnicate: 1\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:1: unknown key 'frobnicate' (known keys: name, description, owner, "
                  "schedule, timezone, start_date, end_date, catchup, max_active_runs, params, "
                  "on_failure, on_success, defaults, tasks, spark, files)\n");
    expect_errors("retries: 1\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:1: unknown key 'retries'; 'retries' belongs in a task (under 'tasks')\n");
    expect_errors("tasks:\n  a:\n    command: ls\n    schedule: 5m\n",
                  "t.yaml:4:5: unknown key 'schedule' in task 'a'; 'schedule' belongs at the top "
                  "of the flow file, not in a task\n");
    expect_errors("tasks:\n  a:\n    command: ls\n    paramters: {}\n",
                  "t.yaml:4:5: unknown key 'paramters' in task 'a'; did you mean 'parameters'?\n");
    /* wrong types */
    expect_errors("catchup: maybe\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:10: 'catchup' must be true or false, not a string\n");
    expect_errors("max_active_runs: 0\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:18: 'max_active_runs' must be between 1 and 1000, not 0\n");
    expect_errors("params: [1]\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:9: 'params' must be a mapping of name: default, not a list\n");
    expect_errors("tasks: {a: {command: ls, env: [1]}}\n",
                  "t.yaml:1:31: 'env' in task 'a' must be a mapping of NAME: value, not a list\n");
    expect_errors("tasks: [a]\n",
                  "t.yaml:1:9: each item of 'tasks' must be a mapping with a 'name', not a string\n");
    /* bad cron (cron_parse's message quoted), bad interval */
    expect_errors("schedule: '0 24 * * *'\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:11: bad schedule '0 24 * * *': field 2 (hour): 24 is out of range 0-23 "
                  "at column 3\n");
    t = errors_of("schedule: 5x\ntasks: {a: {command: ls}}\n");
    assert_true(strncmp(t, "t.yaml:1:11: bad schedule '5x': ", 32) == 0);
    free(t);
    /* unknown time zone */
    expect_errors("timezone: Mars/Olympus\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:11: unknown time zone 'Mars/Olympus'\n");
    /* bad durations */
    expect_errors("tasks: {a: {command: ls, timeout: 5 min}}\n",
                  "t.yaml:1:35: bad duration '5 min' for 'timeout': expected e.g. 30s, 5m, 1h30m, "
                  "2d or a number of seconds\n");
    expect_errors("tasks: {a: {command: ls, retry_delay: 30m1h}}\n",
                  "t.yaml:1:39: bad duration '30m1h' for 'retry_delay': expected e.g. 30s, 5m, "
                  "1h30m, 2d or a number of seconds\n");
    expect_errors("tasks: {a: {command: ls, timeout: -5}}\n",
                  "t.yaml:1:35: 'timeout' must be between 0 and 3153600000 seconds, not -5\n");
    /* missing notebook: the resolved path is in the message */
    char *dir = abs_data_dir();
    char *exp = xasprintf("t.yaml:3:15: notebook 'sub/../x.ipynb' not found (looked for %s/x.ipynb)\n",
                          dir);
    expect_errors("tasks:\n  a:\n    notebook: sub/../x.ipynb\n", exp);
    free(exp);
    exp = xasprintf("t.yaml:3:15: notebook 'notebooks' is not a regular file (%s/notebooks)\n", dir);
    expect_errors("tasks:\n  a:\n    notebook: notebooks\n", exp);
    free(exp);
    exp = xasprintf("t.yaml:1:31: cwd 'nowhere' is not a directory (looked for %s/nowhere)\n", dir);
    expect_errors("tasks: {a: {command: ls, cwd: nowhere}}\n", exp);
    free(exp);
    free(dir);
    /* after naming a missing task (with a suggestion), twice */
    expect_errors("tasks:\n  extract: {command: ls}\n  load: {command: ls, after: [extrct]}\n",
                  "t.yaml:3:31: task 'load': 'after' names unknown task 'extrct'; did you mean "
                  "'extract'?\n");
    expect_errors("tasks:\n  a: {command: ls}\n  b: {command: ls, after: [a, a]}\n",
                  "t.yaml:3:31: task 'b': 'a' is listed twice in 'after'\n");
    /* a cycle */
    expect_errors("tasks:\n  a: {command: ls, after: c}\n  b: {command: ls, after: a}\n"
                  "  c: {command: ls, after: b}\n",
                  "t.yaml:2:27: cycle: a -> b -> c -> a\n");
    /* both / neither notebook and command */
    t = xasprintf("tasks:\n  a:\n%s    command: ls\n", nb);
    expect_errors(t, "t.yaml:2:3: task 'a' has more than one of 'notebook', 'command' and 'spark_submit'; give exactly one\n");
    free(t);
    expect_errors("tasks:\n  a:\n    retries: 1\n", "t.yaml:2:3: task 'a' needs 'notebook', 'command' or 'spark_submit'\n");
    expect_errors("tasks:\n  a:\n", "t.yaml:2:3: task 'a' needs 'notebook', 'command' or 'spark_submit'\n");
    /* invalid names */
    expect_errors("name: Daily Report\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:7: invalid flow name 'Daily Report': use lowercase letters, digits, '_' "
                  "and '-', starting with a letter or digit, at most 64 characters\n");
    expect_errors("tasks: {'-a': {command: ls}}\n",
                  "t.yaml:1:9: invalid task name '-a': use letters, digits, '_', '-' and '.', "
                  "starting with a letter or digit, at most 64 characters\n");
    /* duplicate task names, mapping and list forms; duplicate keys */
    expect_errors("tasks:\n  a: {command: ls}\n  a: {command: ls}\n",
                  "t.yaml:3:3: duplicate task name 'a' (first defined at line 2, column 3)\n");
    expect_errors("tasks:\n  - {name: a, command: ls}\n  - {name: a, command: ls}\n",
                  "t.yaml:3:12: duplicate task name 'a' (first defined at line 2, column 12)\n");
    expect_errors("name: x\nname: y\ntasks: {a: {command: ls}}\n",
                  "t.yaml:2:1: duplicate key 'name' (first at line 1, column 1)\n");
    /* command string with shell syntax; notebook-only keys on a command */
    expect_errors("tasks: {a: {command: 'ls > out'}}\n",
                  "t.yaml:1:22: command uses shell syntax '>' at offset 4, but it runs without a "
                  "shell; quote it, or use a list such as [\"sh\", \"-c\", \"...\"]\n");
    expect_errors("tasks: {a: {command: ls, kernel: python3}}\n",
                  "t.yaml:1:26: 'kernel' applies only to notebook tasks (task 'a' runs a command)\n");
    expect_errors("tasks: {a: {command: ls, keep_history: true}}\n",
                  "t.yaml:1:26: 'keep_history' applies only to notebook tasks (task 'a' runs a command)\n");
    expect_errors("tasks: {a: {notebook: notebooks/a.ipynb, keep_history: 3}}\n",
                  "t.yaml:1:56: 'keep_history' must be true or false, not an integer\n");
    /* post_mortem: a duration, notebook tasks only */
    expect_errors("tasks: {a: {command: ls, post_mortem: 30m}}\n",
                  "t.yaml:1:26: 'post_mortem' applies only to notebook tasks (task 'a' runs a command)\n");
    t = xasprintf("tasks:\n  a:\n%s    post_mortem: half an hour\n", nb);
    expect_errors(t, "t.yaml:4:18: bad duration 'half an hour' for 'post_mortem': expected e.g. 30s, 5m, "
                     "1h30m, 2d or a number of seconds\n");
    free(t);
    /* templates */
    expect_errors("params: {region: eu}\ntasks:\n  a:\n    command: [echo, '{{ params.regoin }}']\n",
                  "t.yaml:4:21: unknown parameter 'regoin' in '{{ params.regoin }}'; did you mean "
                  "'region'?\n");
    expect_errors("tasks: {a: {command: ls, env: {D: '{{ dss }}'}}}\n",
                  "t.yaml:1:35: unknown template variable 'dss' in '{{ dss }}'; did you mean 'ds'?\n");
    /* trigger rules, webhooks, dates */
    expect_errors("tasks: {a: {command: ls, trigger_rule: any}}\n",
                  "t.yaml:1:40: unknown trigger_rule 'any' (one of all_success, all_done, one_failed, "
                  "one_success, none_failed)\n");
    expect_errors("on_failure: [ftp://x]\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:14: webhook URL 'ftp://x' must start with http:// or https://\n");
    expect_errors("start_date: 2026-02-30\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:13: bad start_date '2026-02-30': expected YYYY-MM-DD or YYYY-MM-DD "
                  "HH:MM[:SS] (optionally with Z or +HH:MM)\n");
    expect_errors("start_date: 2026-03-08T\ntasks: {a: {command: ls}}\n",   /* fuzz find */
                  "t.yaml:1:13: bad start_date '2026-03-08T': expected YYYY-MM-DD or YYYY-MM-DD "
                  "HH:MM[:SS] (optionally with Z or +HH:MM)\n");
    expect_errors("start_date: 2026-02-01\nend_date: 2026-01-01\ntasks: {a: {command: ls}}\n",
                  "t.yaml:2:11: end_date is before start_date\n");
    /* defaults */
    expect_errors("defaults: {after: [a]}\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:12: 'after' cannot be given in 'defaults'; set it on each task\n");
    /* document-level problems */
    expect_errors("", "t.yaml:1:1: empty flow file: expected a mapping with at least 'tasks'\n");
    expect_errors("- a\n", "t.yaml:1:1: a flow file must be a mapping (name:, schedule:, tasks:, ...), "
                  "not a list\n");
    expect_errors("name: x\n", "t.yaml:1:1: missing 'tasks': a flow needs at least one task\n");
    expect_errors("tasks: {}\n", "t.yaml:1:8: a flow needs at least one task\n");
    expect_errors("tasks: {a: {command: ls}}\n---\nx: 1\n",
                  "t.yaml:2:1: a flow file holds one YAML document; found a second one\n");
    expect_errors("tasks: {a: [\n", "t.yaml:2:1: YAML syntax error: did not find expected node "
                  "content (while parsing a flow node)\n");
    expect_errors("tasks: {a: {command: *nope}}\n",
                  "t.yaml:1:22: unknown alias '*nope' (anchors must be defined, and complete, before use)\n");
    expect_errors("tasks: {a: {command: ls, retries: !!int x}}\n",
                  "t.yaml:1:35: cannot read 'x' as !!int\n"
                  "t.yaml:1:35: 'retries' must be an integer, not a string\n");
    assert_int_equal(mismatches, 0);
}

/* Many problems in one file: all reported, in file order. */
static void test_multiple_errors_in_order(void **state)
{
    (void)state;
    mismatches = 0;
    expect_errors(
        "tasks:\n"
        "  b: {command: ls, after: [a]}\n"      /* cycle reported at line 2 */
        "  a: {command: ls, after: [b], retries: x}\n"
        "timezone: Nowhere/Land\n"
        "shedule: 5m\n",
        "t.yaml:2:28: cycle: b -> a -> b\n"
        "t.yaml:3:41: 'retries' must be an integer, not a string\n"
        "t.yaml:4:11: unknown time zone 'Nowhere/Land'\n"
        "t.yaml:5:1: unknown key 'shedule'; did you mean 'schedule'?\n");
    assert_int_equal(mismatches, 0);
}

/* At most ERRLIST_MAX errors are kept, the rest counted. */
/* Parameter names become code in the notebook's parameters cell (issue
 * 16): a notebook task's `parameters` keys must be identifiers of its
 * language, a flow's `params` keys ASCII identifiers. */
static void test_parameter_names(void **state)
{
    (void)state;
    expect_errors("params: {ok_1: 1, 1: one, 'a b': 2, \"x\\nimport os\": 3}\n"
                  "tasks: {a: {command: ls}}\n",
                  "t.yaml:1:19: parameter name '1' is not an identifier: letters, digits and '_' "
                  "(ASCII), not starting with a digit\n"
                  "t.yaml:1:27: parameter name 'a b' is not an identifier: letters, digits and '_' "
                  "(ASCII), not starting with a digit\n"
                  "t.yaml:1:37: parameter name 'x\nimport os' is not an identifier: letters, digits "
                  "and '_' (ASCII), not starting with a digit\n");
    expect_errors("tasks:\n"
                  "  a:\n"
                  "    notebook: notebooks/py.ipynb\n"
                  "    parameters:\n"
                  "      fine: 1\n"
                  "      \"x=1\\nimport os; os.system('id')\\ny\": 2\n"
                  "      class: 3\n",
                  "t.yaml:6:7: task 'a': parameter name 'x=1\\nimport os; os.system(\\'id\\')\\ny' "
                  "is not a valid Python identifier\n"
                  "t.yaml:7:7: task 'a': parameter name 'class' is not a valid Python identifier (it is a "
                  "reserved word)\n");
    expect_errors("tasks:\n  a:\n    notebook: notebooks/r.ipynb\n    parameters: {x.y: 1, 'a-b': 2}\n",
                  "t.yaml:4:26: task 'a': parameter name 'a-b' is not a valid R identifier\n");
    /* unknown language (no metadata): checked when the task runs */
    flow_t *f = parse_ok("tasks:\n  a:\n    notebook: notebooks/a.ipynb\n    parameters: {'a-b': 2}\n");
    flow_free(f);
    f = parse_ok("params: {caf_1: 1}\ntasks:\n  a:\n    notebook: notebooks/py.ipynb\n"
                 "    parameters: {caf\xc3\xa9: '{{ params.caf_1 }}'}\n");
    flow_free(f);
    assert_true(flow_param_name_ok("a_1"));
    assert_false(flow_param_name_ok("1a"));
    assert_false(flow_param_name_ok("a-b"));
    assert_false(flow_param_name_ok(""));
    assert_int_equal(mismatches, 0);
}

/* A schedule that never fires and dates outside 1970..2200 are load
 * errors (issue 16: "0 0 31 2 *" was accepted with next_run null). */
static void test_schedule_window(void **state)
{
    (void)state;
    expect_errors("schedule: '0 0 31 2 *'\ntasks: {a: {command: ls}}\n",
                  "t.yaml:1:11: schedule '0 0 31 2 *' never fires\n");
    expect_errors("tasks: {a: {command: ls}}\nschedule: 0 0 30 2 *\n",
                  "t.yaml:2:11: schedule '0 0 30 2 *' never fires\n");
    expect_errors("schedule: '0 0 29 2 *'\nstart_date: 2025-03-01\nend_date: 2027-12-31\n"
                  "tasks: {a: {command: ls}}\n",
                  "t.yaml:1:11: schedule '0 0 29 2 *' never fires between start_date and end_date\n");
    expect_errors("schedule: '@daily'\nstart_date: 1969-12-31\ntasks: {a: {command: ls}}\n",
                  "t.yaml:2:13: start_date '1969-12-31' is outside 1970-01-01T00:00:00Z up to "
                  "2200-01-01T00:00:00Z\n");
    expect_errors("schedule: '@daily'\nend_date: 2200-01-01\ntasks: {a: {command: ls}}\n",
                  "t.yaml:2:11: end_date '2200-01-01' is outside 1970-01-01T00:00:00Z up to "
                  "2200-01-01T00:00:00Z\n");
    expect_errors("schedule: '@daily'\nstart_date: 1900-01-01\ntasks: {a: {command: ls}}\n",
                  "t.yaml:2:13: start_date '1900-01-01' is outside 1970-01-01T00:00:00Z up to "
                  "2200-01-01T00:00:00Z\n");
    /* leap days in the window, the window's ends, intervals */
    flow_t *f = parse_ok("schedule: '0 0 29 2 *'\nstart_date: 2027-03-01\nend_date: 2028-12-31\n"
                         "tasks: {a: {command: ls}}\n");
    flow_free(f);
    f = parse_ok("schedule: '@yearly'\nstart_date: 1970-01-01\nend_date: 2199-12-31 23:59:59\n"
                 "tasks: {a: {command: ls}}\n");
    flow_free(f);
    f = parse_ok("schedule: 5m\nstart_date: 2026-01-01\ntasks: {a: {command: ls}}\n");
    flow_free(f);
    f = parse_ok("schedule: 1d\nstart_date: 2026-01-01 10:00\nend_date: 2026-01-01 10:00\n"
                 "tasks: {a: {command: ls}}\n");
    flow_free(f);
    assert_true(flow_time_ok(0));
    assert_false(flow_time_ok(-1));
    assert_true(flow_time_ok(FLOW_TIME_MAX - 1));
    assert_false(flow_time_ok(FLOW_TIME_MAX));
    assert_int_equal(mismatches, 0);
}

static void test_error_cap(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_puts(&b, "tasks:\n");
    for (int i = 0; i < 60; i++)
        buf_printf(&b, "  t%d: {command: ls, retries: x}\n", i);
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    assert_int_equal(parse(b.data, &f, &errs), -EINVAL);
    assert_int_equal(errs.n, ERRLIST_MAX);
    assert_int_equal(errs.dropped, 10);
    assert_int_equal(errlist_count(&errs), 60);
    buf_t out = BUF_INIT;
    errlist_format(&errs, &out);
    assert_non_null(strstr(out.data, "... and 10 more errors\n"));
    buf_free(&out);
    buf_free(&b);
    errlist_free(&errs);
}

static void test_schedules(void **state)
{
    (void)state;
    static const struct { const char *yaml; int kind; int64_t interval; const char *norm; } v[] = {
        { "schedule: '0 5 * * *'", FLOW_SCHED_CRON, 0, "0 5 * * *" },
        { "schedule: '@daily'", FLOW_SCHED_CRON, 0, "@daily" },
        { "schedule: '@hourly'", FLOW_SCHED_CRON, 0, "@hourly" },
        { "schedule: 30s", FLOW_SCHED_INTERVAL, 30, "30s" },
        { "schedule: 1h30m", FLOW_SCHED_INTERVAL, 5400, "1h30m" },
        { "schedule: 2d", FLOW_SCHED_INTERVAL, 172800, "2d" },
        { "schedule: 45", FLOW_SCHED_INTERVAL, 45, "45s" },
        { "schedule: '90'", FLOW_SCHED_INTERVAL, 90, "90s" },
        { "schedule:", FLOW_SCHED_MANUAL, 0, NULL },
        { "description: manual", FLOW_SCHED_MANUAL, 0, NULL },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char *t = xasprintf("%s\ntasks: {a: {command: ls}}\n", v[i].yaml);
        flow_t *f = parse_ok(t);
        assert_int_equal(f->sched_kind, v[i].kind);
        assert_int_equal(f->interval, v[i].interval);
        if (v[i].norm)
            assert_string_equal(f->schedule, v[i].norm);
        else
            assert_null(f->schedule);
        assert_true((f->cron != NULL) == (v[i].kind != FLOW_SCHED_MANUAL));
        flow_free(f);
        free(t);
    }
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    flow_t *f = parse_ok(
        "tasks:\n"
        "  a: {command: ls}\n");
    const flow_task_t *t = &f->tasks[0];
    assert_string_equal(f->name, "t");
    assert_string_equal(f->timezone, "UTC");
    assert_int_equal(f->catchup, 0);
    assert_int_equal(f->max_active_runs, 1);
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->retry_delay, 30);
    assert_int_equal(t->max_retry_delay, 3600);
    assert_int_equal(t->timeout, 0);
    assert_int_equal(t->trigger_rule, FLOW_TRIGGER_ALL_SUCCESS);
    assert_null(t->cwd);
    flow_free(f);

    /* YAML typing follows PyYAML for params; string fields take the text. */
    f = parse_ok(
        "params: {a: 010, b: yes, c: '10', d: 1.5, e: ~, f: 2026-01-01}\n"
        "tasks:\n"
        "  a: {command: ls, env: {X: yes, Y: 010, Z: ~}}\n");
    char *s = json_dumps(f->params, JSON_COMPACT);
    assert_string_equal(s, "{\"a\":8,\"b\":true,\"c\":\"10\",\"d\":1.5,\"e\":null,\"f\":\"2026-01-01\"}");
    free(s);
    s = json_dumps(f->tasks[0].env, JSON_COMPACT);
    assert_string_equal(s, "{\"X\":\"yes\",\"Y\":\"010\",\"Z\":\"\"}");
    free(s);
    flow_free(f);

    /* Merge keys and x- extension keys share settings. */
    f = parse_ok(
        "x-common: &common {retries: 2, timeout: 5m, env: {A: '1'}}\n"
        "tasks:\n"
        "  a: {<<: *common, command: ls, retries: 3}\n"
        "  b: {<<: *common, command: ls}\n");
    assert_int_equal(f->tasks[0].retries, 3);
    assert_int_equal(f->tasks[0].timeout, 300);
    assert_int_equal(f->tasks[1].retries, 2);
    assert_string_equal(json_string_value(json_object_get(f->tasks[1].env, "A")), "1");
    flow_free(f);

    /* start_date in the flow's zone, or with an explicit offset */
    f = parse_ok("timezone: Europe/Berlin\nstart_date: 2026-07-01 05:00\n"
                 "end_date: 2026-07-01T05:00:00Z\ntasks: {a: {command: ls}}\n");
    assert_int_equal(f->start_date, 1782874800 - 0);   /* 03:00Z */
    assert_int_equal(f->end_date, 1782882000);          /* 05:00Z */
    flow_free(f);
}

static void test_notebook_paths(void **state)
{
    (void)state;
    char *dir = abs_data_dir();
    flow_t *f = parse_ok("tasks:\n  a: {notebook: ./notebooks/a.ipynb, cwd: notebooks}\n"
                         "  b: {notebook: notebooks/../notebooks/b.ipynb}\n");
    char *exp = xasprintf("%s/notebooks/a.ipynb", dir);
    assert_string_equal(f->tasks[0].notebook_path, exp);
    assert_string_equal(f->tasks[0].notebook, "./notebooks/a.ipynb");
    free(exp);
    exp = xasprintf("%s/notebooks", dir);
    assert_string_equal(f->tasks[0].cwd, exp);
    free(exp);
    exp = xasprintf("%s/notebooks/b.ipynb", dir);
    assert_string_equal(f->tasks[1].notebook_path, exp);
    free(exp);
    assert_int_equal(f->tasks[0].keep_history, 0);
    flow_free(f);
    /* keep_history: a task's own, or from defaults (commands drop it) */
    f = parse_ok("defaults: {keep_history: true}\n"
                 "tasks:\n  a: {notebook: notebooks/a.ipynb}\n  b: {notebook: notebooks/b.ipynb, keep_history: no}\n"
                 "  c: {command: ls}\n");
    assert_int_equal(f->tasks[0].keep_history, 1);
    assert_int_equal(f->tasks[1].keep_history, 0);
    assert_int_equal(f->tasks[2].keep_history, 0);
    flow_free(f);
    /* absolute paths stay */
    char *t = xasprintf("tasks: {a: {notebook: '%s/notebooks/a.ipynb'}}\n", dir);
    f = parse_ok(t);
    exp = xasprintf("%s/notebooks/a.ipynb", dir);
    assert_string_equal(f->tasks[0].notebook_path, exp);
    free(exp);
    free(t);
    flow_free(f);
    free(dir);
}

static void test_duration_parse(void **state)
{
    (void)state;
    static const struct { const char *s; int rc; int64_t v; } v[] = {
        { "30s", 0, 30 }, { "5m", 0, 300 }, { "1h30m", 0, 5400 }, { "2d", 0, 172800 },
        { "1d2h3m4s", 0, 93784 }, { "0", 0, 0 }, { "45", 0, 45 }, { "0s", 0, 0 },
        { "", -EINVAL, 0 }, { "5", 0, 5 }, { "m", -EINVAL, 0 }, { "5x", -EINVAL, 0 },
        { "1m1h", -EINVAL, 0 }, { "1h1h", -EINVAL, 0 }, { "1.5h", -EINVAL, 0 },
        { "-5s", -EINVAL, 0 }, { " 5s", -EINVAL, 0 }, { "5s ", -EINVAL, 0 },
        { "99999999999999d", -ERANGE, 0 }, { "36600d", -ERANGE, 0 },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        int64_t x = -1;
        int rc = flow_duration_parse(v[i].s, &x);
        if (rc != v[i].rc)
            print_error("'%s': rc %d\n", v[i].s, rc);
        assert_int_equal(rc, v[i].rc);
        if (rc == 0)
            assert_int_equal(x, v[i].v);
    }
}

static void test_split_command(void **state)
{
    (void)state;
    static const struct { const char *s; const char *joined; } v[] = {
        { "python3 load.py", "python3|load.py" },
        { "  a   b\tc\n", "a|b|c" },
        { "echo 'a b' \"c d\"", "echo|a b|c d" },
        { "echo a'b c'd", "echo|ab cd" },
        { "echo \"a \\\"q\\\" \\\\ \\$x\"", "echo|a \"q\" \\ $x" },
        { "echo \"\\n\"", "echo|\\n" },
        { "echo a\\ b", "echo|a b" },
        { "echo ''", "echo|" },
        { "echo '$HOME|x;y'", "echo|$HOME|x;y" },
        { "echo {{ ds }}", "echo|{{|ds|}}" },
        { "echo a#b", "echo|a#b" },
        { "ls *.csv ~", "ls|*.csv|~" },
        { "ls | wc", NULL }, { "a && b", NULL }, { "a; b", NULL }, { "a > f", NULL },
        { "echo $HOME", NULL }, { "echo \"$HOME\"", NULL }, { "echo `id`", NULL },
        { "echo 'x", NULL }, { "echo \"x", NULL }, { "echo x\\", NULL }, { "", NULL },
        { "   ", NULL }, { "echo # comment", NULL }, { "(ls)", NULL },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char **argv = NULL;
        size_t argc = 0;
        nb_err_t err;
        int rc = flow_split_command(v[i].s, &argv, &argc, &err);
        if (!v[i].joined) {
            if (rc != -EINVAL)
                print_error("'%s' should fail\n", v[i].s);
            assert_int_equal(rc, -EINVAL);
            assert_null(argv);
            continue;
        }
        if (rc != 0)
            print_error("'%s': %s\n", v[i].s, err.msg);
        assert_int_equal(rc, 0);
        buf_t b = BUF_INIT;
        for (size_t k = 0; k < argc; k++)
            buf_printf(&b, "%s%s", k ? "|" : "", argv[k]);
        assert_string_equal(b.data ? b.data : "", v[i].joined);
        assert_null(argv[argc]);
        buf_free(&b);
        for (size_t k = 0; k < argc; k++)
            free(argv[k]);
        free(argv);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_true(flow_name_valid("daily-report"));
    assert_true(flow_name_valid("0abc_d"));
    assert_false(flow_name_valid("Daily"));
    assert_false(flow_name_valid("-x"));
    assert_false(flow_name_valid(""));
    assert_false(flow_name_valid("a.b"));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(flow_name_valid(long_name));
    long_name[64] = '\0';
    assert_true(flow_name_valid(long_name));
    assert_true(flow_task_name_valid("Extract.EU-1_x"));
    assert_false(flow_task_name_valid(".x"));
    assert_false(flow_task_name_valid("a b"));
    assert_false(flow_task_name_valid("a/b"));
    assert_int_equal(flow_trigger_parse("one_success"), FLOW_TRIGGER_ONE_SUCCESS);
    assert_int_equal(flow_trigger_parse("x"), -1);
    assert_string_equal(flow_trigger_name(FLOW_TRIGGER_NONE_FAILED), "none_failed");
}

/* An alias bomb is refused quickly instead of expanding. */
static void test_alias_bomb(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_puts(&b, "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    char prev = 'a';
    for (char c = 'b'; c <= 'j'; c++) {
        buf_printf(&b, "x-%c: &%c [", c, c);
        for (int i = 0; i < 10; i++)
            buf_printf(&b, "%s*%c", i ? ", " : "", prev);
        buf_puts(&b, "]\n");
        prev = c;
    }
    buf_puts(&b, "params: {bomb: *j}\ntasks: {a: {command: ls}}\n");
    char *t = errors_of(b.data);
    assert_non_null(strstr(t, "value too large (more than 1000000 items after expanding aliases)"));
    free(t);
    buf_free(&b);
}

static void test_closest(void **state)
{
    (void)state;
    static const char *const c[] = { "schedule", "timezone", "tasks", "params" };
    assert_string_equal(errlist_closest("shedule", c, 4), "schedule");
    assert_string_equal(errlist_closest("SCHEDULE", c, 4), "schedule");
    assert_string_equal(errlist_closest("timzeone", c, 4), "timezone");
    assert_string_equal(errlist_closest("task", c, 4), "tasks");
    assert_null(errlist_closest("frobnicate", c, 4));
    assert_null(errlist_closest("x", c, 4));
}

/* spark and spark_submit (docs/spark.md). */
static void test_spark(void **state)
{
    (void)state;
    mismatches = 0;
    /* The flow's spark is every task's default; a task's own wins; false opts out. */
    flow_t *f = parse_ok("spark: {workers: 2, worker_memory: 2g, conf: {spark.sql.shuffle.partitions: 8}}\n"
                         "tasks:\n"
                         "  a: {command: [\"true\"]}\n"
                         "  b: {command: [\"true\"], spark: {cluster: shared, connect: true}}\n"
                         "  c: {command: [\"true\"], spark: false}\n"
                         "  d: {command: [\"true\"], spark: true}\n");
    assert_int_equal(f->tasks[0].spark.kind, FLOW_SPARK_EPHEMERAL);
    assert_int_equal(f->tasks[0].spark.workers, 2);
    assert_string_equal(f->tasks[0].spark.worker_memory, "2g");
    assert_string_equal(json_string_value(json_object_get(f->tasks[0].spark.conf, "spark.sql.shuffle.partitions")), "8");
    assert_int_equal(f->tasks[1].spark.kind, FLOW_SPARK_CLUSTER);
    assert_string_equal(f->tasks[1].spark.cluster, "shared");
    assert_true(f->tasks[1].spark.connect);
    assert_int_equal(f->tasks[2].spark.kind, FLOW_SPARK_NONE);
    assert_int_equal(f->tasks[3].spark.kind, FLOW_SPARK_EPHEMERAL);
    assert_int_equal(f->tasks[3].spark.workers, 1);
    assert_string_equal(f->tasks[3].spark.worker_memory, "1g");
    json_t *j = flow_to_json(f);
    json_t *t1 = json_array_get(json_object_get(j, "tasks"), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t1, "spark"), "cluster")), "shared");
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(j, "tasks"), 2), "spark")));
    json_decref(j);
    flow_free(f);

    /* spark_submit: files resolved against the flow's directory; URLs kept. */
    f = parse_ok("tasks:\n"
                 "  s:\n"
                 "    spark_submit:\n"
                 "      application: notebooks/a.ipynb\n"
                 "      args: ['{{ ds }}', x]\n"
                 "      py_files: 'notebooks/a.ipynb,s3a://b/lib.zip'\n"
                 "      conf: {spark.executor.cores: 2}\n");
    const flow_submit_t *u = f->tasks[0].submit;
    assert_non_null(u);
    assert_non_null(strstr(u->application_path, "/notebooks/a.ipynb"));
    assert_int_equal(u->nargs, 2);
    assert_string_equal(u->args[0], "{{ ds }}");
    assert_int_equal(u->npy_files, 2);
    assert_string_equal(u->py_files[1], "s3a://b/lib.zip");
    assert_string_equal(json_string_value(json_object_get(u->conf, "spark.executor.cores")), "2");
    flow_free(f);

    expect_errors("tasks:\n  a: {command: [x], spark: {cluster: c, workers: 2}}\n",
                  "t.yaml:2:41: 'workers' sizes an ephemeral cluster; a named cluster has the size it was "
                  "started with (nbhub spark up)\n");
    expect_errors("tasks:\n  a: {command: [x], spark: {worker_memory: lots}}\n",
                  "t.yaml:2:44: 'worker_memory' lots: a size such as 512m or 2g expected\n");
    expect_errors("tasks:\n  a: {command: [x], spark: {conf: {executor.memory: 1g}}}\n",
                  "t.yaml:2:36: 'spark.conf': 'executor.memory' is not a Spark property (spark.something, no "
                  "spaces or '=')\n");
    expect_errors("tasks:\n  a: {command: [x], spark: {wokers: 2}}\n",
                  "t.yaml:2:29: unknown key 'wokers' in 'spark'; did you mean 'workers'?\n");
    expect_errors("tasks:\n  a: {command: [x], spark: 3}\n",
                  "t.yaml:2:28: 'spark' must be true or false, not an integer\n");
    expect_errors("tasks:\n  a: {spark_submit: {args: [x]}}\n",
                  "t.yaml:2:21: 'spark_submit' needs an 'application' (a .py file or a .jar)\n");
    expect_errors("tasks:\n  a: {spark_submit: {application: 'local:///opt/app.jar'}}\n",
                  "t.yaml:2:21: 'spark_submit': a .jar application needs its main 'class'\n");
    char *e = errors_of("tasks:\n  a: {spark_submit: {application: nope.py}}\n");
    assert_non_null(strstr(e, "t.yaml:2:35: application 'nope.py' not found (looked for /"));
    assert_non_null(strstr(e, "/tests/unit/data/flows/nope.py)"));
    free(e);
    expect_errors("tasks:\n  a: {command: [x], spark_submit: {application: 'local:///a.py'}}\n",
                  "t.yaml:2:3: task 'a' has more than one of 'notebook', 'command' and 'spark_submit'; give "
                  "exactly one\n");
    assert_int_equal(mismatches, 0);
}

/* "~/": a notebook in the owner's workspace, kept as written (it is found
 * when the task runs); another user's "~bob/", "~" alone and ".." out are
 * refused where they are written. */
static void test_workspace_notebook(void **state)
{
    (void)state;
    mismatches = 0;
    flow_t *f = parse_ok("tasks:\n  a:\n    notebook: ~/reports/./daily.ipynb\n    parameters: {x: 1}\n");
    assert_string_equal(f->tasks[0].notebook, "~/reports/./daily.ipynb");
    assert_string_equal(f->tasks[0].notebook_ws, "reports/daily.ipynb");
    assert_null(f->tasks[0].notebook_path);
    char why[128];
    assert_int_equal(flow_needs_trust(f, why, sizeof why), 0);
    /* The canonical JSON (a run's stored spec) keeps it as written. */
    json_t *j = flow_to_json(f);
    json_t *t0 = json_array_get(json_object_get(j, "tasks"), 0);
    assert_string_equal(json_string_value(json_object_get(t0, "notebook")), "~/reports/./daily.ipynb");
    assert_true(json_is_null(json_object_get(t0, "notebook_path")));
    json_decref(j);
    flow_free(f);
    expect_errors("tasks:\n  a:\n    notebook: ~bob/daily.ipynb\n",
                  "t.yaml:3:15: notebook '~bob/daily.ipynb': '~user/' (another user's workspace) is not "
                  "allowed; '~/' is the flow owner's workspace\n");
    expect_errors("tasks:\n  a: {notebook: ~}\n",
                  "t.yaml:2:17: notebook '~' alone names the workspace, not a notebook in it\n");
    expect_errors("tasks:\n  a: {notebook: ~/../../etc/passwd}\n",
                  "t.yaml:2:17: notebook '~/../../etc/passwd': '..' leads out of the workspace\n");
    expect_errors("tasks:\n  a: {notebook: ~//etc/passwd}\n",
                  "t.yaml:2:17: notebook '~//etc/passwd': the path inside the workspace must be relative\n");
    expect_errors("tasks:\n  a: {notebook: ~/x.ipynb, cwd: ~/data}\n",
                  "t.yaml:2:33: cwd '~/data': '~' is not expanded in 'cwd' (a '~/' notebook's kernel starts "
                  "in the notebook's directory; give cwd relative to the flow file)\n");
    assert_int_equal(mismatches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_roundtrip),
        cmocka_unit_test(test_list_form_and_default_name),
        cmocka_unit_test(test_error_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_error_kinds),
        cmocka_unit_test(test_multiple_errors_in_order),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_parameter_names),
        cmocka_unit_test(test_schedule_window),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_notebook_paths),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_closest),
        cmocka_unit_test(test_spark),
        cmocka_unit_test(test_workspace_notebook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
