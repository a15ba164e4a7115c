/*
 * dag — see dag.h.
 *
 * Topological order is Kahn's algorithm that always takes the ready task
 * that comes first in the file (a linear scan per step: flows have at most
 * FLOW_MAX_TASKS tasks, so O(n^2) is nothing, and the order is what a
 * reader of the file expects: ties resolve top to bottom).
 *
 * Cycles are found with Tarjan's strongly connected components: every
 * component with more than one task, or a task naming itself, holds at
 * least one cycle.  One cycle per component is reported — the shortest
 * one through the component's first task in file order, found by BFS —
 * because listing every elementary cycle can be exponential and one path
 * is enough to see what to cut.
 */
#include "sched/dag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/xmalloc.h"

/* ---- Tarjan ------------------------------------------------------------ */

typedef struct tarjan {
    const flow_t *f;
    int    *index, *low, *onstack;
    size_t *stack, sp;
    int     next;
    int    *comp;      /* component id per task */
    int     ncomp;
} tarjan_t;

/* Recursion depth is bounded by FLOW_MAX_TASKS. */
static void strongconnect(tarjan_t *t, size_t v)
{
    t->index[v] = t->low[v] = t->next++;
    t->stack[t->sp++] = v;
    t->onstack[v] = 1;
    const flow_task_t *task = &t->f->tasks[v];
    for (size_t k = 0; k < task->nchildren; k++) {
        size_t w = task->children[k];
        if (t->index[w] < 0) {
            strongconnect(t, w);
            if (t->low[w] < t->low[v])
                t->low[v] = t->low[w];
        } else if (t->onstack[w] && t->index[w] < t->low[v]) {
            t->low[v] = t->index[w];
        }
    }
    if (t->low[v] == t->index[v]) {
        size_t w;
        do {
            w = t->stack[--t->sp];
            t->onstack[w] = 0;
            t->comp[w] = t->ncomp;
        } while (w != v);
        t->ncomp++;
    }
}

/* Report the shortest cycle through s inside its component. */
static void report_cycle(const flow_t *f, const int *comp, size_t s, const char *file,
                         nb_errlist_t *errs)
{
    size_t n = f->ntasks;
    size_t *prev = xmalloc(n * sizeof *prev);
    size_t *queue = xmalloc(n * sizeof *queue);
    char *seen = xcalloc(n, 1);
    size_t qh = 0, qt = 0, last = (size_t)-1;
    queue[qt++] = s;
    seen[s] = 1;
    while (qh < qt && last == (size_t)-1) {
        size_t v = queue[qh++];
        const flow_task_t *t = &f->tasks[v];
        for (size_t k = 0; k < t->nchildren; k++) {
            size_t w = t->children[k];
            if (comp[w] != comp[s])
                continue;
            if (w == s) {
                last = v;
                break;
            }
            if (!seen[w]) {
                seen[w] = 1;
                prev[w] = v;
                queue[qt++] = w;
            }
        }
    }
    NB_ASSERT(last != (size_t)-1);
    /* Walk back from `last` to s, then print forwards. */
    size_t len = 0;
    for (size_t v = last; v != s; v = prev[v])
        queue[len++] = v;
    buf_t b = BUF_INIT;
    buf_printf(&b, "cycle: %s", f->tasks[s].name);
    while (len > 0)
        buf_printf(&b, " -> %s", f->tasks[queue[--len]].name);
    buf_printf(&b, " -> %s", f->tasks[s].name);
    /* Position: the `after` entry of s that names `last` (the closing edge). */
    const flow_task_t *st = &f->tasks[s];
    int line = st->line, col = st->col;
    for (size_t k = 0; k < st->nparents; k++) {
        if (st->parents[k] == last && st->parent_pos) {
            line = st->parent_pos[2 * k];
            col = st->parent_pos[2 * k + 1];
            break;
        }
    }
    errlist_add(errs, file, line, col, "%s", b.data);
    buf_free(&b);
    free(prev);
    free(queue);
    free(seen);
}

int dag_build(flow_t *f, const char *file, nb_errlist_t *errs)
{
    size_t n = f->ntasks;
    /* Children in file order: iterate children-to-be in file order. */
    size_t *nch = xcalloc(n ? n : 1, sizeof *nch);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < f->tasks[i].nparents; k++)
            nch[f->tasks[i].parents[k]]++;
    for (size_t i = 0; i < n; i++) {
        free(f->tasks[i].children);
        f->tasks[i].children = xmalloc((nch[i] ? nch[i] : 1) * sizeof(size_t));
        f->tasks[i].nchildren = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const flow_task_t *t = &f->tasks[i];
        for (size_t k = 0; k < t->nparents; k++) {
            flow_task_t *p = &f->tasks[t->parents[k]];
            /* A task naming the same parent twice is one edge. */
            if (p->nchildren && p->children[p->nchildren - 1] == i)
                continue;
            p->children[p->nchildren++] = i;
        }
    }
    free(nch);

    /* Kahn, smallest index first. */
    size_t *indeg = xcalloc(n ? n : 1, sizeof *indeg);
    char *done = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < f->tasks[i].nchildren; k++)
            indeg[f->tasks[i].children[k]]++;
    free(f->topo);
    f->topo = xmalloc((n ? n : 1) * sizeof *f->topo);
    size_t nt = 0;
    for (;;) {
        size_t pick = (size_t)-1;
        for (size_t i = 0; i < n; i++) {
            if (!done[i] && indeg[i] == 0) {
                pick = i;
                break;
            }
        }
        if (pick == (size_t)-1)
            break;
        done[pick] = 1;
        f->topo[nt++] = pick;
        for (size_t k = 0; k < f->tasks[pick].nchildren; k++)
            indeg[f->tasks[pick].children[k]]--;
    }
    free(indeg);
    free(done);
    if (nt == n)
        return 0;

    tarjan_t t = { 0 };
    t.f = f;
    t.index = xmalloc(n * sizeof *t.index);
    t.low = xmalloc(n * sizeof *t.low);
    t.onstack = xcalloc(n, sizeof *t.onstack);
    t.stack = xmalloc(n * sizeof *t.stack);
    t.comp = xmalloc(n * sizeof *t.comp);
    for (size_t i = 0; i < n; i++)
        t.index[i] = -1;
    for (size_t i = 0; i < n; i++)
        if (t.index[i] < 0)
            strongconnect(&t, i);
    /* Size of each component, and whether a member names itself. */
    size_t *csize = xcalloc((size_t)t.ncomp, sizeof *csize);
    char *reported = xcalloc((size_t)t.ncomp, 1);
    for (size_t i = 0; i < n; i++)
        csize[t.comp[i]]++;
    for (size_t i = 0; i < n; i++) {
        int c = t.comp[i];
        if (reported[c])
            continue;
        int self = 0;
        for (size_t k = 0; k < f->tasks[i].nchildren; k++)
            self |= f->tasks[i].children[k] == i;
        if (csize[c] > 1 || self) {
            /* i is the component's first task in file order. */
            reported[c] = 1;
            report_cycle(f, t.comp, i, file, errs);
        }
    }
    free(csize);
    free(reported);
    free(t.index);
    free(t.low);
    free(t.onstack);
    free(t.stack);
    free(t.comp);
    return -EINVAL;
}

dag_verdict_t dag_rule_eval(flow_trigger_t rule, size_t n, size_t success, size_t failed,
                            size_t upstream_failed, size_t skipped)
{
    if (n == 0)
        return DAG_READY;
    size_t fails = failed + upstream_failed;
    size_t done = success + fails + skipped;
    int all_done = done >= n;
    switch (rule) {
    case FLOW_TRIGGER_ALL_SUCCESS:
        if (fails)
            return DAG_UPSTREAM_FAILED;
        if (skipped)
            return DAG_SKIP;
        return success >= n ? DAG_READY : DAG_WAIT;
    case FLOW_TRIGGER_ALL_DONE:
        return all_done ? DAG_READY : DAG_WAIT;
    case FLOW_TRIGGER_ONE_FAILED:
        if (fails)
            return DAG_READY;
        return all_done ? DAG_SKIP : DAG_WAIT;
    case FLOW_TRIGGER_ONE_SUCCESS:
        if (success)
            return DAG_READY;
        if (!all_done)
            return DAG_WAIT;
        return skipped >= n ? DAG_SKIP : DAG_UPSTREAM_FAILED;
    case FLOW_TRIGGER_NONE_FAILED:
        if (fails)
            return DAG_UPSTREAM_FAILED;
        return all_done ? DAG_READY : DAG_WAIT;
    }
    return DAG_WAIT;
}

dag_verdict_t dag_ready(const flow_t *f, const flow_task_t *t, const dag_state_t *parent_states)
{
    (void)f;
    size_t s = 0, fl = 0, uf = 0, sk = 0;
    for (size_t i = 0; i < t->nparents; i++) {
        switch (parent_states[i]) {
        case DAG_ST_SUCCESS:         s++; break;
        case DAG_ST_FAILED:          fl++; break;
        case DAG_ST_UPSTREAM_FAILED: uf++; break;
        case DAG_ST_SKIPPED:         sk++; break;
        case DAG_ST_PENDING:         break;
        }
    }
    return dag_rule_eval(t->trigger_rule, t->nparents, s, fl, uf, sk);
}

size_t dag_roots(const flow_t *f, size_t *idx)
{
    size_t k = 0;
    for (size_t i = 0; i < f->ntasks; i++) {
        if (f->tasks[i].nparents == 0) {
            if (idx)
                idx[k] = i;
            k++;
        }
    }
    return k;
}

size_t dag_leaves(const flow_t *f, size_t *idx)
{
    size_t k = 0;
    for (size_t i = 0; i < f->ntasks; i++) {
        if (f->tasks[i].nchildren == 0) {
            if (idx)
                idx[k] = i;
            k++;
        }
    }
    return k;
}

const char *dag_state_name(dag_state_t s)
{
    static const char *const names[] = { "pending", "success", "failed", "upstream_failed", "skipped" };
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "?";
}

const char *dag_verdict_name(dag_verdict_t v)
{
    static const char *const names[] = { "wait", "ready", "skip", "upstream_failed" };
    return (unsigned)v < sizeof names / sizeof *names ? names[v] : "?";
}
