/*
 * sk8s — Kubernetes manifests for Spark (`nbhub spark render-k8s`): the step
 * beyond one machine.  Pure functions: options in, JSON values out, no I/O.
 *
 * Three forms, each an array of manifests (documents of one YAML stream):
 *
 *   app       a batch job for the Kubeflow Spark operator: a SparkApplication
 *             (sparkoperator.k8s.io/v1beta2, mode cluster), or with a
 *             schedule a ScheduledSparkApplication (concurrencyPolicy Forbid,
 *             template = the SparkApplication's spec).  What nbhub's
 *             spark_submit tasks and flow schedules are on one machine.
 *   notebook  a notebook pod as a client-mode driver: a headless Service
 *             (clusterIP None) selecting the pod, with the fixed driver,
 *             block manager and UI ports, and a ConfigMap for the pod's
 *             envFrom whose PYSPARK_SUBMIT_ARGS makes
 *             SparkSession.builder.getOrCreate() start executors as pods
 *             that reach the driver through the Service's DNS name.
 *   connect   a Spark Connect server (SparkConnect, v1alpha1): thin clients
 *             reach it as sc://NAME-server.NS.svc.<domain>:15002.
 *
 * What is checked, each error naming the option (or NAME) and the rule:
 * NAME is a Kubernetes name that can also name a Service (an RFC 1035
 * label: lowercase letters, digits, '-', a letter first, at most 63 — and
 * 56 for connect, whose server Service is NAME-server, 43 for a schedule,
 * whose runs are named and labelled NAME-<19-digit timestamp>); the
 * namespace a DNS-1123 label, the service account a DNS-1123 subdomain;
 * memory a JVM size (512m, 2g: a whole number and k, m, g or t); cores and
 * instances whole numbers >= 1; --conf keys Spark-like, and not one that an
 * option sets (--conf spark.executor.memory=... is refused: use
 * --executor-memory), so a manifest never says two things; the schedule
 * nbhub's cron syntax, turned into the operator's (robfig/cron: intervals
 * become "@every 1h30m", day-of-week 7 is refused); file names without
 * blanks.
 *
 * Files: a path in the image becomes local:///path (a relative one is taken
 * inside opts.workdir, default /opt/spark/work-dir, the working directory of
 * the apache/spark images); anything with a scheme (s3a://, https://,
 * local://) is used as given.  The application's type comes from its
 * extension (.py Python, .jar Scala — it needs main_class —, .R R) unless
 * opts.type says otherwise.
 *
 * Defaults (Spark's own, written out so the manifest shows the knobs):
 * namespace "default", service account "spark-operator-spark" (the one the
 * operator's Helm chart creates), driver 1 core 1g, executors 2 x 1 core 1g,
 * restartPolicy Never (OnFailure with `retries`), master
 * k8s://https://kubernetes.default.svc, cluster domain cluster.local.
 * spark_version has no default here: the caller passes the Spark the jobs
 * are written for (the CLI: the local pyspark's).
 *
 * Ownership: strings in the options are borrowed; on success *out is a new
 * reference (a JSON array), on failure NULL.
 */
#ifndef NBHUB_SK8S_H
#define NBHUB_SK8S_H

#include <jansson.h>

#include "util/err.h"

/* The fixed ports of a client-mode driver (spark.driver.port,
 * spark.blockManager.port, spark.ui.port) and of Spark Connect. */
#define SK8S_DRIVER_PORT        7078
#define SK8S_BLOCK_MANAGER_PORT 7079
#define SK8S_UI_PORT            4040
#define SK8S_CONNECT_PORT       15002

struct sk8s_opts {
    /* every form */
    const char        *name;                 /* NAME: metadata.name */
    const char        *k8s_namespace;        /* NULL: "default" */
    const char        *image;                /* required */
    const char        *image_pull_policy;    /* Always, IfNotPresent, Never; NULL: unset */
    const char        *service_account;      /* NULL: "spark-operator-spark" */
    const char        *spark_version;        /* required, such as 4.0.1 */
    const char *const *conf;                 /* "key=value", NULL-terminated; may be NULL */
    const char        *executor_instances, *executor_cores, *executor_memory;
    const char        *driver_cores, *driver_memory;   /* app; connect: the server; notebook: memory only */
    /* app */
    const char        *application;          /* a path in the image or a URL */
    const char        *type;                 /* Python, Scala, Java, R; NULL: by extension */
    const char        *main_class;           /* required for JVM applications */
    const char *const *args;                 /* NULL-terminated; may be NULL */
    const char        *py_files, *jars, *files;   /* comma-separated, mapped like application */
    const char        *workdir;              /* NULL: /opt/spark/work-dir */
    const char        *retries;              /* NULL or "0": restartPolicy Never */
    const char        *retry_interval;       /* seconds between retries; NULL: 10 */
    const char        *schedule;             /* set: a ScheduledSparkApplication */
    const char        *time_zone;            /* spec.timeZone of a schedule; NULL: the operator's */
    /* notebook */
    const char        *master;               /* NULL: k8s://https://kubernetes.default.svc */
    const char        *cluster_domain;       /* NULL: cluster.local */
    const char *const *selector;             /* "key=value" labels of the notebook pod; NULL: nbhub/spark-driver=NAME */
};

/* The SparkApplication (or ScheduledSparkApplication) of a batch job. */
int sk8s_app(const struct sk8s_opts *o, json_t **out, nb_err_t *err);

/* The headless Service and the ConfigMap of a client-mode notebook. */
int sk8s_notebook(const struct sk8s_opts *o, json_t **out, nb_err_t *err);

/* The SparkConnect of a Spark Connect server. */
int sk8s_connect(const struct sk8s_opts *o, json_t **out, nb_err_t *err);

/* The ConfigMap name of a notebook (NAME-spark) and its Service's DNS name
 * (NAME.NS.svc.DOMAIN); new strings. */
char *sk8s_configmap_name(const struct sk8s_opts *o);
char *sk8s_driver_host(const struct sk8s_opts *o);

/* The checks above, exposed for the CLI and the tests.  `what` names the
 * value in the message ("NAME", "--namespace"). */
int sk8s_check_label(const char *what, const char *s, size_t max, int letter_first, nb_err_t *err);
int sk8s_check_memory(const char *what, const char *s, nb_err_t *err);

/* A schedule in nbhub's syntax (src/sched/cron.h) as the operator's cron
 * wants it, in *out (new string). */
int sk8s_schedule(const char *expr, char **out, nb_err_t *err);

#endif
