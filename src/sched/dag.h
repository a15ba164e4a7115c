/*
 * dag — the task graph of a flow: adjacency, topological order, cycle
 * detection, and the trigger rules that decide when a task may run.
 *
 * Edges point downstream: `after: [a]` in task b is the edge a -> b, and
 * messages print paths in that direction ("cycle: a -> b -> a").
 *
 * Trigger rules (Airflow's semantics, evaluated on the states of a task's
 * direct parents; a task without parents is READY under every rule).  A
 * parent is "done" once it is SUCCESS, FAILED, UPSTREAM_FAILED or SKIPPED;
 * "failed" below means FAILED or UPSTREAM_FAILED.
 *
 *   all_success  UPSTREAM_FAILED as soon as a parent failed; else SKIP as
 *                soon as a parent was skipped; READY when all succeeded.
 *   all_done     READY when all parents are done, whatever their outcome.
 *   one_failed   READY as soon as a parent failed; SKIP when all are done
 *                and none failed.
 *   one_success  READY as soon as a parent succeeded; when all are done
 *                without a success: SKIP if all were skipped, else
 *                UPSTREAM_FAILED.
 *   none_failed  UPSTREAM_FAILED as soon as a parent failed; READY when all
 *                are done (succeeded or skipped).
 *
 * Otherwise the verdict is WAIT.  As in Airflow, the "as soon as" verdicts
 * do not wait for the other parents: a failure under all_success is
 * propagated downstream immediately.
 *
 * Ownership: dag_build writes into the flow it is given (the parser calls
 * it before the flow is published); everything else borrows.
 */
#ifndef NBHUB_DAG_H
#define NBHUB_DAG_H

#include <stddef.h>

#include "sched/flow.h"
#include "util/errlist.h"

typedef enum dag_state {
    DAG_ST_PENDING = 0,      /* not finished: none, queued, running, up for retry */
    DAG_ST_SUCCESS,
    DAG_ST_FAILED,
    DAG_ST_UPSTREAM_FAILED,
    DAG_ST_SKIPPED,
} dag_state_t;

typedef enum dag_verdict {
    DAG_WAIT = 0,
    DAG_READY,
    DAG_SKIP,
    DAG_UPSTREAM_FAILED,
} dag_verdict_t;

/* Fill children and topo of f from the tasks' parents.  Cycles are
 * reported to errs ("cycle: a -> b -> a", once per strongly connected
 * component, at the `after` entry that closes it, labelled with `file`).
 * 0, or -EINVAL if there is a cycle (topo then holds only the acyclic part). */
int dag_build(flow_t *f, const char *file, nb_errlist_t *errs);

/* Trigger-rule verdict for t given its parents' states, parent_states[i]
 * being the state of t->parents[i]. */
dag_verdict_t dag_ready(const flow_t *f, const flow_task_t *t, const dag_state_t *parent_states);

/* The same on counts of parent states (n parents in all). */
dag_verdict_t dag_rule_eval(flow_trigger_t rule, size_t n, size_t success, size_t failed,
                            size_t upstream_failed, size_t skipped);

/* Tasks without parents / without children, in file order: writes up to
 * f->ntasks indices into idx (may be NULL) and returns how many. */
size_t dag_roots(const flow_t *f, size_t *idx);
size_t dag_leaves(const flow_t *f, size_t *idx);

const char *dag_state_name(dag_state_t s);
const char *dag_verdict_name(dag_verdict_t v);

#endif
