/*
 * cmd_spark_k8s — `nbhub spark render-k8s app|notebook|connect NAME ...`:
 * print the Kubernetes manifests that do on a cluster what nbhub does on
 * one machine (src/spark/sk8s.h builds them; docs/spark-k8s.md).
 *
 * Nothing is applied and no cluster is contacted: the output goes to
 * stdout, for `kubectl apply -f -`, a GitOps repository or a review.  YAML
 * by default (one document per manifest, src/util/jsonyaml.h); --json
 * prints the object, or a v1 List when there are several (the notebook's
 * Service and ConfigMap), which kubectl applies the same way.
 *
 * The one thing taken from this machine is the default --spark-version:
 * the version of the Spark found as `nbhub kernel install-spark` finds it
 * (--python, --spark-home, $SPARK_HOME, the venv's pyspark), read from its
 * files — the jobs and notebooks are written against that pyspark, and in
 * client mode the notebook's pyspark and the image's Spark must agree.
 *
 * Options are checked per form: one that does not apply to the form is a
 * usage error (2), a value that breaks a rule is exit 3 with the option and
 * the rule in the message.
 */
#include "cli/cli.h"
#include "sched/tz.h"
#include "spark/sk8s.h"
#include "util/buf.h"
#include "util/jsonyaml.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char render_usage[] =
    "usage: nbhub spark render-k8s app NAME --application FILE --image IMG [options]\n"
    "       nbhub spark render-k8s notebook NAME --image IMG [options]\n"
    "       nbhub spark render-k8s connect NAME --image IMG [options]\n"
    "       nbhub spark render-k8s flow FILE --image IMG [options]\n"
    "\n"
    "Print Kubernetes manifests (YAML, or --json) for the Kubeflow Spark operator and for\n"
    "notebooks in client mode; nothing is applied (pipe to kubectl apply -f -).\n"
    "See docs/spark-k8s.md.\n"
    "\n"
    "  app       a SparkApplication (a batch job); with --schedule a ScheduledSparkApplication\n"
    "  notebook  a headless Service NAME selecting the notebook pod (the driver: ports 7078,\n"
    "            7079, 4040) and a ConfigMap NAME-spark for the pod's envFrom, with\n"
    "            PYSPARK_SUBMIT_ARGS and each setting under its own key (SPARK_DRIVER_HOST ...);\n"
    "            the pod needs the selector's label and serviceAccountName SA\n"
    "  connect   a SparkConnect (a Spark Connect server; clients use\n"
    "            sc://NAME-server.NS.svc.cluster.local:15002)\n"
    "  flow      the Spark tasks of a flow file: an app per spark_submit task (scheduled with\n"
    "            the flow's schedule), a notebook per notebook task with spark:, a connect\n"
    "            for spark: {connect: true}; each named FLOW-TASK; what does not carry over\n"
    "            (after, tasks without Spark, templates) is said on stderr\n"
    "\n"
    "Every form:\n"
    "  --image IMG                the container image with Spark (required)\n"
    "  --namespace NS             default: default\n"
    "  --service-account SA       default: spark-operator-spark (what the operator's Helm chart creates)\n"
    "  --image-pull-policy P      Always, IfNotPresent or Never (default: Kubernetes' own)\n"
    "  --spark-version V          default: the version of the local Spark, found as by\n"
    "                             nbhub kernel install-spark (--python PATH, --spark-home DIR)\n"
    "  --conf KEY=VALUE           a Spark setting (repeatable; not one that an option sets)\n"
    "  --executor-instances N, --executor-cores C, --executor-memory M (2g, 512m)\n"
    "                             default: 2, 1, 1g\n"
    "  --json                     JSON instead of YAML (several manifests: a v1 List)\n"
    "app:\n"
    "  --application FILE         the job: a path in the image (a relative one is in --workdir,\n"
    "                             default /opt/spark/work-dir) or a URL (s3a://, https://, local://)\n"
    "  --type T                   Python, Scala, Java or R (default: from the extension .py .jar .R)\n"
    "  --main-class CLASS         the main class of a .jar application\n"
    "  --arg A                    an argument of the job (repeatable, in order)\n"
    "  --py-files F,... --jars F,... --files F,...   dependencies, named like --application\n"
    "  --driver-cores C, --driver-memory M           default: 1, 1g\n"
    "  --retries N [--retry-interval S]   run a failed (or unsubmittable) job again, N times,\n"
    "                             S seconds apart (default 10); without: restartPolicy Never\n"
    "  --schedule CRON [--time-zone TZ]   a ScheduledSparkApplication; CRON as in flow files\n"
    "                             (5 fields, @daily, intervals such as 1h30m); runs never overlap\n"
    "notebook:\n"
    "  --driver-memory M          the notebook's own driver JVM\n"
    "  --selector KEY=VALUE       labels of the notebook pod (repeatable; default nbhub/spark-driver=NAME)\n"
    "  --master k8s://URL         the API server as pods see it (default k8s://https://kubernetes.default.svc)\n"
    "  --cluster-domain D         default: cluster.local\n"
    "connect:\n"
    "  --driver-cores C, --driver-memory M   the server's (default 1, 1g)\n"
    "\n"
    "NAME: lowercase letters, digits and '-', a letter first, at most 63 characters (connect: 56,\n"
    "with --schedule: 43, for the names the operator derives from it).\n"
    "\n"
    "Exit codes: 0 printed, 2 usage error, 3 invalid option (the message says which),\n"
    "4 no local Spark to take the default --spark-version from, 7 the output could not be written.\n";

enum { F_APP = 1, F_NOTEBOOK = 2, F_CONNECT = 4, F_FLOW = 8, F_ALL = 15 };

/* The version in a file: a distribution's RELEASE ("Spark 4.0.1 built for
 * ...") or pyspark's version.py (__version__: str = '4.3.0').  New string
 * or NULL. */
static char *version_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[512], *found = NULL;
    while (!found && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Spark ", 6)) {
            size_t l = strcspn(line + 6, " \t\r\n");
            if (l) found = xstrndup(line + 6, l);
        } else if (!strncmp(line, "__version__", 11)) {
            char *q = strpbrk(line + 11, "'\"");
            char *e = q ? strchr(q + 1, *q) : NULL;
            if (e && e > q + 1) found = xstrndup(q + 1, (size_t)(e - q - 1));
        }
    }
    fclose(f);
    return found;
}

/* The local Spark's version (see the top), or NULL after printing why. */
static char *local_spark_version(const char *python, const char *spark_home)
{
    char *py = NULL, *home = NULL, *py4j = NULL, *v = NULL;
    if (cmd_kernel_spark_locate(python, spark_home, &py, &home, &py4j) != NB_EXIT_OK) {
        cli_errorf("render-k8s: or pass --spark-version V (the Spark in the image) to render without a local Spark");
        return NULL;
    }
    const char *const rel[] = { "RELEASE", "version.py", "python/pyspark/version.py" };
    for (size_t i = 0; !v && i < sizeof rel / sizeof rel[0]; i++) {
        char *p = xasprintf("%s/%s", home, rel[i]);
        v = version_in(p);
        free(p);
    }
    if (!v) cli_errorf("render-k8s: cannot tell the version of the Spark in %s; pass --spark-version", home);
    free(py);
    free(home);
    free(py4j);
    return v;
}

/* The version an image's tag starts with (apache/spark:4.0.1-python3 ->
 * 4.0.1, spark:3.5 -> 3.5), or NULL. */
static char *image_tag_version(const char *image)
{
    const char *slash = strrchr(image, '/'), *name = slash ? slash + 1 : image;
    const char *colon = strchr(name, ':');
    if (!colon) return NULL;
    const char *t = colon + 1;
    size_t n = strspn(t, "0123456789.");
    while (n && t[n - 1] == '.') n--;
    if (n < 3 || !memchr(t, '.', n) || t[0] == '.') return NULL;
    return xstrndup(t, n);
}

/* Warn when the default --spark-version (the local Spark's) and the
 * image's tag disagree: the operator would label and configure the job
 * for the wrong Spark, and a client-mode notebook fails outright when its
 * pyspark and the executors' Spark differ. */
static void check_image_version(const char *image, const char *version, int notebook)
{
    char *tag = image_tag_version(image);
    size_t tl = tag ? strlen(tag) : 0;
    if (tag && strcmp(tag, version) != 0 && !(strncmp(version, tag, tl) == 0 && version[tl] == '.'))
        fprintf(stderr, "nbhub: warning: --image %s is tagged %s but the local Spark, the default --spark-version, is %s%s\n",
                image, tag, version,
                notebook ? ": in client mode the notebook's pyspark and the image's Spark must be the same version"
                         : "; pass --spark-version for the image's Spark");
    free(tag);
}

static int write_out(const char *text, size_t len)
{
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        cli_errorf("render-k8s: cannot write the manifests: %s", strerror(errno));
        return NB_EXIT_OUTPUT;
    }
    return NB_EXIT_OK;
}

int cmd_spark_render_k8s(int argc, char **argv)
{
    if (argc < 2) {
        fputs(render_usage, stderr);
        return NB_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "help")) {
        fputs(render_usage, stdout);
        return NB_EXIT_OK;
    }
    const char *formname = argv[1];
    unsigned form = !strcmp(formname, "app") ? F_APP : !strcmp(formname, "notebook") ? F_NOTEBOOK
                  : !strcmp(formname, "connect") ? F_CONNECT : !strcmp(formname, "flow") ? F_FLOW : 0;
    if (!form) {
        cli_errorf("render-k8s: app, notebook, connect or flow expected, not '%s' (see nbhub spark render-k8s help)", formname);
        return NB_EXIT_USAGE;
    }
    struct sk8s_opts o = { 0 };
    const char **conf = xcalloc((size_t)argc + 1, sizeof *conf);
    const char **args = xcalloc((size_t)argc + 1, sizeof *args);
    const char **sel = xcalloc((size_t)argc + 1, sizeof *sel);
    size_t nconf = 0, nargs = 0, nsel = 0;
    const char *python = NULL, *spark_home = NULL;
    int as_json = 0, code = NB_EXIT_USAGE;
    char *version = NULL;
    json_t *docs = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        struct { const char *flag; const char **dst; const char **list; size_t *n; unsigned forms; } opts[] = {
            { "--image", &o.image, NULL, NULL, F_ALL },
            { "--namespace", &o.k8s_namespace, NULL, NULL, F_ALL },
            { "--service-account", &o.service_account, NULL, NULL, F_ALL },
            { "--image-pull-policy", &o.image_pull_policy, NULL, NULL, F_ALL },
            { "--spark-version", &o.spark_version, NULL, NULL, F_ALL },
            { "--python", &python, NULL, NULL, F_ALL },
            { "--spark-home", &spark_home, NULL, NULL, F_ALL },
            { "--conf", NULL, conf, &nconf, F_ALL },
            { "--executor-instances", &o.executor_instances, NULL, NULL, F_ALL },
            { "--executor-cores", &o.executor_cores, NULL, NULL, F_ALL },
            { "--executor-memory", &o.executor_memory, NULL, NULL, F_ALL },
            { "--driver-memory", &o.driver_memory, NULL, NULL, F_ALL },
            { "--driver-cores", &o.driver_cores, NULL, NULL, F_APP | F_CONNECT | F_FLOW },
            { "--application", &o.application, NULL, NULL, F_APP },
            { "--type", &o.type, NULL, NULL, F_APP },
            { "--main-class", &o.main_class, NULL, NULL, F_APP },
            { "--arg", NULL, args, &nargs, F_APP },
            { "--py-files", &o.py_files, NULL, NULL, F_APP },
            { "--jars", &o.jars, NULL, NULL, F_APP },
            { "--files", &o.files, NULL, NULL, F_APP },
            { "--workdir", &o.workdir, NULL, NULL, F_APP | F_FLOW },
            { "--retries", &o.retries, NULL, NULL, F_APP },
            { "--retry-interval", &o.retry_interval, NULL, NULL, F_APP },
            { "--schedule", &o.schedule, NULL, NULL, F_APP },
            { "--time-zone", &o.time_zone, NULL, NULL, F_APP },
            { "--selector", NULL, sel, &nsel, F_NOTEBOOK },
            { "--master", &o.master, NULL, NULL, F_NOTEBOOK | F_FLOW },
            { "--cluster-domain", &o.cluster_domain, NULL, NULL, F_NOTEBOOK | F_FLOW },
        };
        size_t k, nopts = sizeof opts / sizeof opts[0];
        for (k = 0; k < nopts; k++)
            if (!strcmp(a, opts[k].flag)) break;
        if (k < nopts) {
            if (!(opts[k].forms & form)) {
                cli_errorf("render-k8s %s: %s does not apply here (see nbhub spark render-k8s help)", formname, a);
                goto out;
            }
            if (i + 1 >= argc) {
                cli_errorf("render-k8s %s: %s needs a value", formname, a);
                goto out;
            }
            if (opts[k].dst) *opts[k].dst = argv[++i];
            else opts[k].list[(*opts[k].n)++] = argv[++i];
            continue;
        }
        if (!strcmp(a, "--json")) {
            as_json = 1;
            continue;
        }
        if (a[0] == '-') {
            cli_errorf("render-k8s %s: unknown option %s (see nbhub spark render-k8s help)", formname, a);
            goto out;
        }
        if (o.name) {
            cli_errorf("render-k8s %s: one NAME, not '%s' too", formname, a);
            goto out;
        }
        o.name = a;
    }
    if (!o.name) {
        cli_errorf("render-k8s %s: NAME is required (see nbhub spark render-k8s help)", formname);
        goto out;
    }
    if (!o.image || (form == F_APP && !o.application)) {
        cli_errorf("render-k8s %s: %s is required (see nbhub spark render-k8s help)", formname,
                   !o.image ? "--image IMG" : "--application FILE");
        goto out;
    }
    o.conf = conf;
    o.args = args;
    o.selector = nsel ? sel : NULL;

    if (!o.spark_version) {
        version = local_spark_version(python, spark_home);
        if (!version) {
            code = 4;
            goto out;
        }
        o.spark_version = version;
        check_image_version(o.image, version, form == F_NOTEBOOK);
    }

    code = NB_EXIT_INPUT;
    nb_err_t err;
    if (form == F_FLOW) {
        if ((code = cmd_spark_k8s_flow(o.name, &o, &docs))) goto out;
        code = NB_EXIT_INPUT;
    } else {
        int rc = form == F_APP ? sk8s_app(&o, &docs, &err) : form == F_NOTEBOOK ? sk8s_notebook(&o, &docs, &err)
                                                                                 : sk8s_connect(&o, &docs, &err);
        if (rc < 0) {
            cli_errorf("%s", err.msg);
            goto out;
        }
    }
    /* The operator resolves the zone with Go's tzdata; the same names are
     * in tzdata here ("Local" is the operator's own zone). */
    if (o.time_zone && strcmp(o.time_zone, "Local") != 0) {
        tz_t *tz = NULL;
        if (tz_load(o.time_zone, &tz, &err) < 0) {
            cli_errorf("--time-zone '%s': %s", o.time_zone, err.msg);
            goto out;
        }
        tz_free(tz);
    }

    if (as_json) {
        json_t *one = json_array_size(docs) == 1 ? json_incref(json_array_get(docs, 0))
                                                  : json_pack("{s:s, s:s, s:O}", "apiVersion", "v1", "kind", "List",
                                                              "items", docs);
        char *t = json_dumps(one, JSON_INDENT(2));
        json_decref(one);
        buf_t b = BUF_INIT;
        buf_puts(&b, t);
        buf_putc(&b, '\n');
        free(t);
        code = write_out(b.data, b.len);
        buf_free(&b);
    } else {
        buf_t b = BUF_INIT;
        if (jsonyaml_emit_all(docs, &b, &err) < 0) {
            cli_errorf("%s", err.msg);
            buf_free(&b);
            goto out;
        }
        code = write_out(b.data, b.len);
        buf_free(&b);
    }
out:
    json_decref(docs);
    free(version);
    free(conf);
    free(args);
    free(sel);
    return code;
}
