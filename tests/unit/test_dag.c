/* Unit tests for dag: topological order, cycles with their paths, roots and
 * leaves, and the trigger-rule table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched/dag.h"
#include "sched/flow.h"
#include "util/buf.h"

static flow_t *load(const char *text)
{
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    int rc = flow_parse_text(text, strlen(text), "d.yaml", ".", &f, &errs);
    if (rc != 0) {
        buf_t b = BUF_INIT;
        errlist_format(&errs, &b);
        print_error("%s", b.data);
        buf_free(&b);
    }
    assert_int_equal(rc, 0);
    errlist_free(&errs);
    return f;
}

static char *errors(const char *text)
{
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    assert_int_equal(flow_parse_text(text, strlen(text), "d.yaml", ".", &f, &errs), -EINVAL);
    assert_null(f);
    buf_t b = BUF_INIT;
    errlist_format(&errs, &b);
    errlist_free(&errs);
    return buf_detach(&b);
}

static char *topo_names(const flow_t *f)
{
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < f->ntasks; i++)
        buf_printf(&b, "%s%s", i ? " " : "", flow_task_topo(f, i)->name);
    return buf_detach(&b);
}

static void test_fan_out_fan_in(void **state)
{
    (void)state;
    flow_t *f = load("tasks:\n"
                     "  report: {command: r, after: [eu, us, asia]}\n"
                     "  start: {command: s}\n"
                     "  eu: {command: e, after: start}\n"
                     "  us: {command: u, after: start}\n"
                     "  asia: {command: a, after: start}\n"
                     "  cleanup: {command: c, after: report, trigger_rule: all_done}\n"
                     "  lonely: {command: l}\n");
    char *t = topo_names(f);
    assert_string_equal(t, "start eu us asia report cleanup lonely");
    free(t);
    /* children in file order, parents in `after` order */
    const flow_task_t *s = flow_task(f, "start");
    assert_int_equal(s->nchildren, 3);
    assert_string_equal(f->tasks[s->children[0]].name, "eu");
    assert_string_equal(f->tasks[s->children[2]].name, "asia");
    const flow_task_t *r = flow_task(f, "report");
    assert_int_equal(r->nparents, 3);
    assert_string_equal(f->tasks[r->parents[2]].name, "asia");
    size_t idx[8];
    assert_int_equal(dag_roots(f, idx), 2);
    assert_string_equal(f->tasks[idx[0]].name, "start");
    assert_string_equal(f->tasks[idx[1]].name, "lonely");
    assert_int_equal(dag_leaves(f, NULL), 2);
    dag_leaves(f, idx);
    assert_string_equal(f->tasks[idx[0]].name, "cleanup");
    assert_string_equal(f->tasks[idx[1]].name, "lonely");
    flow_free(f);
}

/* Ties resolve in file order, even when a later task becomes ready first. */
static void test_stable_order(void **state)
{
    (void)state;
    flow_t *f = load("tasks:\n"
                     "  c: {command: x, after: b}\n"
                     "  z: {command: x}\n"
                     "  b: {command: x}\n"
                     "  a: {command: x, after: z}\n");
    char *t = topo_names(f);
    assert_string_equal(t, "z b c a");
    free(t);
    flow_free(f);
}

static void test_cycles(void **state)
{
    (void)state;
    char *e;
    e = errors("tasks:\n  a: {command: x, after: a}\n");
    assert_string_equal(e, "d.yaml:2:26: cycle: a -> a\n");
    free(e);
    e = errors("tasks:\n  a: {command: x, after: b}\n  b: {command: x, after: [a]}\n");
    assert_string_equal(e, "d.yaml:2:26: cycle: a -> b -> a\n");
    free(e);
    e = errors("tasks:\n"
               "  t1: {command: x, after: [t5]}\n"
               "  t2: {command: x, after: [t1]}\n"
               "  t3: {command: x, after: [t2]}\n"
               "  t4: {command: x, after: [t3]}\n"
               "  t5: {command: x, after: [t4]}\n"
               "  ok: {command: x, after: [t5]}\n");
    assert_string_equal(e, "d.yaml:2:28: cycle: t1 -> t2 -> t3 -> t4 -> t5 -> t1\n");
    free(e);
    /* two independent cycles, each reported once; the shortest path
     * through the first task of a component is shown */
    e = errors("tasks:\n"
               "  a: {command: x, after: [c, b]}\n"
               "  b: {command: x, after: [a]}\n"
               "  c: {command: x, after: [b]}\n"
               "  root: {command: x}\n"
               "  p: {command: x, after: [root, q]}\n"
               "  q: {command: x, after: [p]}\n");
    assert_string_equal(e, "d.yaml:2:30: cycle: a -> b -> a\n"
                           "d.yaml:6:33: cycle: p -> q -> p\n");
    free(e);
    /* a cycle alongside other errors */
    e = errors("tasks:\n  a: {command: x, after: [a, nope]}\n");
    assert_string_equal(e, "d.yaml:2:27: cycle: a -> a\n"
                           "d.yaml:2:30: task 'a': 'after' names unknown task 'nope'\n");
    free(e);
}

/* dag_build on a hand-made flow (the daemon may build flows in code). */
static void test_build_direct(void **state)
{
    (void)state;
    flow_t f;
    memset(&f, 0, sizeof f);
    flow_task_t t[3];
    memset(t, 0, sizeof t);
    size_t p1[] = { 0 }, p2[] = { 1 };
    t[0].name = "x";
    t[1].name = "y";
    t[1].parents = p1;
    t[1].nparents = 1;
    t[2].name = "z";
    t[2].parents = p2;
    t[2].nparents = 1;
    f.tasks = t;
    f.ntasks = 3;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(dag_build(&f, "mem", &errs), 0);
    assert_int_equal(f.topo[0], 0);
    assert_int_equal(f.topo[2], 2);
    p1[0] = 2;   /* x <- z: now x -> y -> z -> x, no positions known */
    t[0].parents = p2;
    t[0].nparents = 0;
    t[1].parents = p1;
    assert_int_equal(dag_build(&f, "mem", &errs), -EINVAL);
    char *s = errlist_format_one(&errs, 0);
    assert_string_equal(s, "mem: cycle: y -> z -> y");
    free(s);
    for (int i = 0; i < 3; i++)
        free(t[i].children);
    free(f.topo);
    errlist_free(&errs);
}

/* The trigger-rule table: (rule, success, failed, upstream_failed,
 * skipped, pending) -> verdict, checked against Airflow's semantics. */
static void test_trigger_rules(void **state)
{
    (void)state;
    enum { AS = FLOW_TRIGGER_ALL_SUCCESS, AD = FLOW_TRIGGER_ALL_DONE, OF = FLOW_TRIGGER_ONE_FAILED,
           OS = FLOW_TRIGGER_ONE_SUCCESS, NF = FLOW_TRIGGER_NONE_FAILED };
    enum { W = DAG_WAIT, R = DAG_READY, S = DAG_SKIP, U = DAG_UPSTREAM_FAILED };
    static const struct { int rule, succ, fail, ufail, skip, pend, verdict; } v[] = {
        /* all_success */
        { AS, 3, 0, 0, 0, 0, R }, { AS, 2, 0, 0, 0, 1, W }, { AS, 0, 1, 0, 0, 2, U },
        { AS, 2, 0, 1, 0, 0, U }, { AS, 2, 0, 0, 1, 0, S }, { AS, 0, 0, 0, 1, 2, S },
        { AS, 0, 1, 0, 1, 0, U }, { AS, 0, 0, 0, 0, 0, R },
        /* all_done */
        { AD, 3, 0, 0, 0, 0, R }, { AD, 1, 1, 1, 0, 0, R }, { AD, 0, 0, 0, 3, 0, R },
        { AD, 2, 0, 0, 0, 1, W }, { AD, 0, 3, 0, 0, 1, W },
        /* one_failed */
        { OF, 0, 1, 0, 0, 2, R }, { OF, 0, 0, 1, 0, 2, R }, { OF, 3, 0, 0, 0, 0, S },
        { OF, 2, 0, 0, 1, 0, S }, { OF, 2, 0, 0, 0, 1, W },
        /* one_success */
        { OS, 1, 0, 0, 0, 2, R }, { OS, 1, 2, 0, 0, 0, R }, { OS, 0, 0, 0, 0, 3, W },
        { OS, 0, 1, 0, 0, 1, W }, { OS, 0, 0, 0, 3, 0, S }, { OS, 0, 1, 0, 2, 0, U },
        { OS, 0, 0, 2, 0, 0, U },
        /* none_failed */
        { NF, 3, 0, 0, 0, 0, R }, { NF, 1, 0, 0, 2, 0, R }, { NF, 0, 0, 0, 3, 0, R },
        { NF, 1, 0, 0, 0, 1, W }, { NF, 0, 1, 0, 0, 2, U }, { NF, 1, 0, 1, 0, 0, U },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        size_t n = (size_t)(v[i].succ + v[i].fail + v[i].ufail + v[i].skip + v[i].pend);
        dag_verdict_t got = dag_rule_eval((flow_trigger_t)v[i].rule, n, (size_t)v[i].succ,
                                          (size_t)v[i].fail, (size_t)v[i].ufail, (size_t)v[i].skip);
        if ((int)got != v[i].verdict)
            print_error("row %zu (%s): got %s, want %s\n", i, flow_trigger_name((flow_trigger_t)v[i].rule),
                        dag_verdict_name(got), dag_verdict_name((dag_verdict_t)v[i].verdict));
        assert_int_equal(got, v[i].verdict);
    }
}

/* dag_ready reads the states in the order of the task's parents. */
static void test_dag_ready(void **state)
{
    (void)state;
    flow_t *f = load("tasks:\n"
                     "  a: {command: x}\n"
                     "  b: {command: x}\n"
                     "  j: {command: x, after: [a, b], trigger_rule: one_success}\n"
                     "  k: {command: x, after: [a, b]}\n");
    const flow_task_t *a = flow_task(f, "a"), *j = flow_task(f, "j"), *k = flow_task(f, "k");
    assert_int_equal(dag_ready(f, a, NULL), DAG_READY);
    dag_state_t st[2] = { DAG_ST_PENDING, DAG_ST_PENDING };
    assert_int_equal(dag_ready(f, j, st), DAG_WAIT);
    assert_int_equal(dag_ready(f, k, st), DAG_WAIT);
    st[1] = DAG_ST_SUCCESS;
    assert_int_equal(dag_ready(f, j, st), DAG_READY);
    assert_int_equal(dag_ready(f, k, st), DAG_WAIT);
    st[0] = DAG_ST_FAILED;
    assert_int_equal(dag_ready(f, k, st), DAG_UPSTREAM_FAILED);
    st[0] = DAG_ST_SKIPPED;
    assert_int_equal(dag_ready(f, k, st), DAG_SKIP);
    st[0] = DAG_ST_SUCCESS;
    assert_int_equal(dag_ready(f, k, st), DAG_READY);
    assert_string_equal(dag_state_name(DAG_ST_UPSTREAM_FAILED), "upstream_failed");
    assert_string_equal(dag_verdict_name(DAG_SKIP), "skip");
    flow_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fan_out_fan_in),
        cmocka_unit_test(test_stable_order),
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_build_direct),
        cmocka_unit_test(test_trigger_rules),
        cmocka_unit_test(test_dag_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
