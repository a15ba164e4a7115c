/*
 * libFuzzer harness for flow files: the YAML composer, scalar typing, the
 * schema walk, command splitting, template checks and the DAG.  Beyond "no
 * crash, no leak": a failed parse gives no flow and at least one error, each
 * starting with the file name; a successful one gives no errors, a full
 * topological order, and canonical JSON that is stable across two parses;
 * every template it accepted renders.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/dag.h"
#include "sched/flow.h"
#include "sched/tmpl.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_errlist_t errs = ERRLIST_INIT;
    flow_t *f = NULL;
    /* Relative notebook paths resolve in fuzz/corpus/flow, where the seeds'
     * notebooks live, so valid flows are reachable. */
    int rc = flow_parse_text((const char *)data, size, "fuzz.yaml", "fuzz/corpus/flow", &f, &errs);
    if (rc < 0) {
        NB_ASSERT(f == NULL);
        NB_ASSERT(errlist_count(&errs) > 0);
        for (size_t i = 0; i < errs.n; i++)
            NB_ASSERT(strcmp(errs.v[i].file, "fuzz.yaml") == 0);
        errlist_free(&errs);
        return 0;
    }
    NB_ASSERT(f != NULL && errlist_count(&errs) == 0);
    NB_ASSERT(f->ntasks > 0);
    char *seen = xcalloc(f->ntasks, 1);
    for (size_t i = 0; i < f->ntasks; i++) {
        const flow_task_t *t = flow_task_topo(f, i);
        for (size_t k = 0; k < t->nparents; k++)
            NB_ASSERT(seen[t->parents[k]]);   /* parents come first */
        seen[t->index] = 1;
        NB_ASSERT((t->notebook != NULL) != (t->argv != NULL));
    }
    free(seen);

    flow_t *g = NULL;
    NB_ASSERT(flow_parse_text((const char *)data, size, "fuzz.yaml", "fuzz/corpus/flow", &g, &errs) == 0);
    json_t *a = flow_to_json(f), *b = flow_to_json(g);
    NB_ASSERT(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    flow_free(g);

    /* Every accepted template renders with the declared params. */
    tmpl_ctx_t ctx = { f->name, "t", "run", { 0, 0 }, { 0, 0 }, { 0, 0 }, f->params };
    for (size_t i = 0; i < f->ntasks; i++) {
        const flow_task_t *t = &f->tasks[i];
        ctx.task = t->name;
        json_t *out = NULL;
        nb_err_t err;
        NB_ASSERT(tmpl_render(t->parameters, &ctx, &out, &err) == 0);
        json_decref(out);
        NB_ASSERT(tmpl_render(t->env, &ctx, &out, &err) == 0);
        json_decref(out);
        for (size_t k = 0; k < t->argc; k++) {
            NB_ASSERT(tmpl_render_string(t->argv[k], &ctx, &out, &err) == 0);
            json_decref(out);
        }
    }
    flow_free(f);
    errlist_free(&errs);
    return 0;
}
