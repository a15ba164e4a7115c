/*
 * sparkspec — PySpark kernel specs: the kernel.json that `nbhub kernel
 * install-spark` writes, so that a notebook gets a SparkSession from
 * `SparkSession.builder.getOrCreate()` with nothing else to configure.
 *
 * The spec is an ipykernel spec (argv: PYTHON -m ipykernel_launcher -f
 * {connection_file}) whose env carries what pyspark reads when it starts
 * the JVM: SPARK_HOME, PYSPARK_PYTHON (executors run the same Python),
 * PYTHONPATH (SPARK_HOME/python and its py4j zip, only for a Spark
 * distribution the interpreter does not already import: pyspark from PyPI
 * must not be shadowed) and PYSPARK_SUBMIT_ARGS:
 * "--master M --conf k=v ... pyspark-shell", every word quoted the way
 * pyspark splits it (shlex).  A value may name an environment variable as
 * ${VAR}: kernel launchers (nbhub, jupyter_client) substitute env values
 * from the launching environment, which is how a Kubernetes pod's
 * ConfigMap (envFrom) reaches the kernel without templating the file.
 *
 * For a master on this machine (local[...], spark://127.0.0.1 or localhost)
 * the driver is told to listen on 127.0.0.1 (spark.driver.host and
 * .bindAddress, unless given): Spark would otherwise bind it to whatever
 * address the host name resolves to.
 *
 * Masters accepted: local, local[N], local[*], local[N,F], spark://H:P[,H:P],
 * k8s://https://H[:P] (or http), yarn.  Conf keys must look like Spark's
 * (dotted words); the values are not interpreted.
 *
 * With remote (sc://HOST:PORT[/;params]) the kernel is a Spark Connect
 * client instead: SPARK_REMOTE in its env, no PYSPARK_SUBMIT_ARGS, no JVM
 * in the kernel (pyspark's connect extra must be installed).
 *
 * Ownership: sparkspec_build returns a new reference; strings in the
 * options are borrowed.
 */
#ifndef NBHUB_SPARKSPEC_H
#define NBHUB_SPARKSPEC_H

#include <jansson.h>
#include "util/buf.h"
#include "util/err.h"

struct sparkspec_opts {
    const char        *name;            /* kernel directory name */
    const char        *display_name;    /* NULL: "PySpark (NAME)" */
    const char        *master;          /* or NULL with remote */
    const char        *remote;          /* sc://HOST:PORT: a Spark Connect kernel (SPARK_REMOTE) */
    const char *const *conf;            /* "key=value", NULL-terminated; may be NULL */
    const char        *executor_instances, *executor_cores, *executor_memory;  /* or NULL */
    const char        *image, *k8s_namespace;   /* k8s:// masters; or NULL */
    const char        *python;          /* absolute path of the interpreter */
    const char        *spark_home;      /* absolute */
    const char        *py4j_zip;        /* set: a distribution, PYTHONPATH needed; NULL: pyspark importable */
};

/* The kernel.json of a PySpark kernel.  -EINVAL with a message naming the
 * offending option for a bad name, master, conf item or size. */
int sparkspec_build(const struct sparkspec_opts *o, json_t **out, nb_err_t *err);

/* PYSPARK_SUBMIT_ARGS for the options (same checks), appended to out. */
int sparkspec_submit_args(const struct sparkspec_opts *o, buf_t *out, nb_err_t *err);

/* Append word quoted so Python's shlex.split gives it back unchanged. */
void sparkspec_quote(buf_t *out, const char *word);

/* 0 if item is KEY=VALUE with a Spark-like key (dotted words of letters,
 * digits, '_' and '-'), else -EINVAL with a message naming it as --conf. */
int sparkspec_check_conf(const char *item, nb_err_t *err);

/* 0 if master is one of the forms above, else -EINVAL with the reason. */
int sparkspec_check_master(const char *master, nb_err_t *err);

#endif
