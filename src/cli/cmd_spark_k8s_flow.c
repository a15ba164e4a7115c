/*
 * cmd_spark_k8s_flow — `nbhub spark render-k8s flow FILE --image IMG ...`:
 * the Kubernetes manifests of a flow file's Spark tasks, so a flow that
 * outgrows one machine moves task by task (docs/spark-k8s.md).
 *
 *   spark_submit task       a SparkApplication named FLOW-TASK (with the
 *                           flow's schedule and time zone: a
 *                           ScheduledSparkApplication), application, args,
 *                           py_files, class and conf from the task; the
 *                           task's retries and retry_delay as the
 *                           operator's restartPolicy OnFailure
 *   notebook task + spark   the headless driver Service and the ConfigMap of
 *                           a client-mode notebook named FLOW-TASK
 *   + spark: {connect}      one SparkConnect FLOW-connect for the flow
 *
 * Sizes: an ephemeral cluster's workers become executors (workers ->
 * instances, worker_cores -> cores, worker_memory -> memory), the same
 * resources on the operator's pods; spark.executor.* / spark.driver.* in a
 * task's conf become the matching options (sk8s refuses them as conf: a
 * manifest never says two things); command-line options win over both.
 *
 * What does not carry over is said on stderr, not silently dropped: tasks
 * without Spark, `after` (the operator runs each application on its own:
 * keep nbhub, or a workflow engine, for the order), a long-lived
 * `spark: {cluster: NAME}` (the executors are the operator's pods
 * instead), templated arguments ({{ ... }} are nbhub's, filled per run;
 * the manifest has them as written).  Files: as the task names them,
 * relative to the flow file's directory, taken inside the image's
 * --workdir.
 */
#include "cli/cli.h"
#include "sched/flow.h"
#include "spark/sk8s.h"
#include "util/buf.h"
#include "util/errlist.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FLOW-TASK as a Kubernetes name: lowercase, '_' and '.' as '-'. */
static char *k8s_name(const char *flow, const char *task)
{
    char *n = xasprintf("%s-%s", flow, task);
    for (char *p = n; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        else if (*p == '_' || *p == '.') *p = '-';
    }
    return n;
}

/* A path the task resolved against the flow's directory, as written there. */
static const char *as_written(const flow_t *f, const char *path)
{
    size_t n = strlen(f->base_dir);
    return !strncmp(path, f->base_dir, n) && path[n] == '/' ? path + n + 1 : path;
}

/* The conf of a task into o: spark.executor.* / spark.driver.* sizes as
 * options (unless given on the command line), the rest as KEY=VALUE. */
struct kf_conf {
    const char **kv;
    size_t n;
    char **owned;
    size_t nowned;
};

/* One KEY=VALUE more (owned: freed with the list). */
static void kf_push(struct kf_conf *c, const char *kv, char *owned)
{
    c->kv = xrealloc(c->kv, (c->n + 2) * sizeof *c->kv);
    c->kv[c->n++] = kv;
    c->kv[c->n] = NULL;
    if (!owned) return;
    c->owned = xrealloc(c->owned, (c->nowned + 1) * sizeof *c->owned);
    c->owned[c->nowned++] = owned;
}

static void kf_add_conf(struct kf_conf *c, struct sk8s_opts *o, const struct sk8s_opts *cli, const json_t *conf)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)conf, k, v) {
        const char *s = json_string_value(v);
        if (!s) continue;
        struct { const char *key; const char **dst; const char *given; } map[] = {
            { "spark.executor.instances", &o->executor_instances, cli->executor_instances },
            { "spark.executor.cores", &o->executor_cores, cli->executor_cores },
            { "spark.executor.memory", &o->executor_memory, cli->executor_memory },
            { "spark.driver.cores", &o->driver_cores, cli->driver_cores },
            { "spark.driver.memory", &o->driver_memory, cli->driver_memory },
        };
        size_t i;
        for (i = 0; i < sizeof map / sizeof map[0]; i++)
            if (!strcmp(k, map[i].key)) break;
        if (i < sizeof map / sizeof map[0]) {
            if (!map[i].given) *map[i].dst = s;
            continue;
        }
        char *kv = xasprintf("%s=%s", k, s);
        kf_push(c, kv, kv);
    }
}

static void kf_conf_free(struct kf_conf *c)
{
    for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->kv);
}

static void kf_append(json_t *docs, json_t *more)
{
    json_array_extend(docs, more);
    json_decref(more);
}

int cmd_spark_k8s_flow(const char *file, const struct sk8s_opts *cli, json_t **out)
{
    *out = NULL;
    flow_t *f = NULL;
    nb_errlist_t errs;
    errlist_init(&errs);
    if (flow_parse_file(file, &f, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++) {
            char *m = errlist_format_one(&errs, i);   /* file:line:col: message */
            cli_errorf("%s", m);
            free(m);
        }
        if (!errs.n) cli_errorf("render-k8s: cannot read %s", file);
        errlist_free(&errs);
        return NB_EXIT_INPUT;
    }
    errlist_free(&errs);
    json_t *docs = json_array();
    int code = NB_EXIT_OK, connect_done = 0, any_after = 0;
    char buf[64];
    for (size_t t = 0; t < f->ntasks && code == NB_EXIT_OK; t++) {
        const flow_task_t *ft = &f->tasks[t];
        const flow_spark_t *sp = &ft->spark;
        if (!ft->submit && sp->kind == FLOW_SPARK_NONE) {
            fprintf(stderr, "nbhub: render-k8s: task %s has no Spark: not rendered\n", ft->name);
            continue;
        }
        if (ft->nparents) any_after = 1;
        if (sp->kind == FLOW_SPARK_CLUSTER)
            fprintf(stderr, "nbhub: render-k8s: task %s uses cluster '%s'; on Kubernetes its executors are "
                            "pods of its own\n", ft->name, sp->cluster);
        struct sk8s_opts o = *cli;
        struct kf_conf c = { 0 };
        for (const char *const *p = cli->conf; p && *p; p++) kf_push(&c, *p, NULL);
        char workers[16], cores[16], interval[24];
        if (sp->kind == FLOW_SPARK_EPHEMERAL) {
            snprintf(workers, sizeof workers, "%d", sp->workers);
            snprintf(cores, sizeof cores, "%d", sp->worker_cores);
            if (!cli->executor_instances) o.executor_instances = workers;
            if (!cli->executor_cores) o.executor_cores = cores;
            if (!cli->executor_memory) o.executor_memory = sp->worker_memory;
        }
        kf_add_conf(&c, &o, cli, sp->conf);
        char *name = NULL;
        const char **args = NULL;
        char *py = NULL;
        json_t *more = NULL;
        nb_err_t err;
        int rc = 0;
        if (ft->submit) {
            const flow_submit_t *sb = ft->submit;
            kf_add_conf(&c, &o, cli, sb->conf);
            name = k8s_name(f->name, ft->name);
            o.name = name;
            o.application = sb->application;
            o.main_class = sb->main_class;
            args = xcalloc(sb->nargs + 1, sizeof *args);
            for (size_t i = 0; i < sb->nargs; i++) {
                args[i] = sb->args[i];
                if (strstr(sb->args[i], "{{"))
                    fprintf(stderr, "nbhub: render-k8s: task %s: argument '%s' is a template nbhub fills per run; "
                                    "the manifest has it as written\n", ft->name, sb->args[i]);
            }
            o.args = args;
            if (sb->npy_files) {
                buf_t b = BUF_INIT;
                for (size_t i = 0; i < sb->npy_files; i++) {
                    if (i) buf_putc(&b, ',');
                    buf_puts(&b, as_written(f, sb->py_files[i]));
                }
                o.py_files = py = buf_detach(&b);
            }
            if (f->schedule) {
                o.schedule = f->schedule;
                o.time_zone = f->timezone;
            }
            if (ft->retries > 0) {
                snprintf(buf, sizeof buf, "%d", ft->retries);
                o.retries = buf;
                snprintf(interval, sizeof interval, "%lld", (long long)(ft->retry_delay > 0 ? ft->retry_delay : 10));
                o.retry_interval = interval;
            }
            o.conf = c.kv;
            rc = sk8s_app(&o, &more, &err);
        } else if (sp->connect) {
            if (!connect_done) {
                name = xasprintf("%s-connect", f->name);
                o.name = name;
                o.conf = c.kv;
                rc = sk8s_connect(&o, &more, &err);
                connect_done = 1;
            }
        } else {
            name = k8s_name(f->name, ft->name);
            o.name = name;
            o.conf = c.kv;
            rc = sk8s_notebook(&o, &more, &err);
        }
        if (rc < 0) {
            cli_errorf("render-k8s: task %s (%s:%d:%d): %s", ft->name, f->path, ft->line, ft->col, err.msg);
            code = NB_EXIT_INPUT;
        } else if (more) {
            kf_append(docs, more);
        }
        free(name);
        free(args);
        free(py);
        kf_conf_free(&c);
    }
    if (code == NB_EXIT_OK && any_after)
        fprintf(stderr, "nbhub: render-k8s: the order of the tasks (after) is nbhub's: the operator runs each "
                        "application on its own\n");
    if (code == NB_EXIT_OK && json_array_size(docs) == 0) {
        cli_errorf("render-k8s: flow %s has no Spark task (spark: or spark_submit:)", f->name);
        code = NB_EXIT_INPUT;
    }
    flow_free(f);
    if (code) json_decref(docs);
    else *out = docs;
    return code;
}
