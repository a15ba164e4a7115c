/* Unit tests for sk8s: the SparkApplication, ScheduledSparkApplication,
 * notebook Service + ConfigMap and SparkConnect manifests, the checks with
 * their messages, and the manifests' YAML round trip (jsonyaml ->
 * yamljson).  That the manifests satisfy the operator's CRD schemas is
 * checked with jsonschema in tests/blackbox/test_spark_k8s.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spark/sk8s.h"
#include "util/buf.h"
#include "util/jsonyaml.h"
#include "util/yamljson.h"

/* Valid required options; a case overrides one of them on purpose. */
#define BASE .name = "etl", .image = "apache/spark:4.0.1", .spark_version = "4.0.1"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Woverride-init"
#endif

/* The value at a path of keys separated by blanks ("spec driver cores";
 * digits index arrays): Spark keys and label keys hold '.' and '/'. */
static json_t *at(json_t *v, const char *path)
{
    char *p = strdup(path), *save = NULL;
    for (char *k = strtok_r(p, " ", &save); k && v; k = strtok_r(NULL, " ", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    free(p);
    return v;
}

static const char *str_at(json_t *v, const char *path)
{
    const char *s = json_string_value(at(v, path));
    if (!s) fail_msg("no string at '%s'", path);
    return s;
}

static long long int_at(json_t *v, const char *path)
{
    json_t *i = at(v, path);
    if (!json_is_integer(i)) fail_msg("no integer at '%s'", path);
    return json_integer_value(i);
}

static void test_names(void **state)
{
    (void)state;
    nb_err_t err;
    static const char *const good[] = { "a", "etl", "etl-2", "a1", "x-y-z", NULL };
    static const char *const bad[] = { "", "A", "Etl", "etl_2", "-a", "a-", "a.b", "a b", "1a", NULL };
    for (const char *const *g = good; *g; g++)
        if (sk8s_check_label("NAME", *g, 63, 1, &err)) fail_msg("%s refused: %s", *g, err.msg);
    for (const char *const *b = bad; *b; b++)
        if (sk8s_check_label("NAME", *b, 63, 1, &err) != -EINVAL) fail_msg("%s accepted", *b);
    assert_int_equal(sk8s_check_label("--namespace", "1a", 63, 0, &err), 0);   /* DNS-1123 allows a digit first */
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = '\0';
    memset(n64, 'a', 64);
    n64[64] = '\0';
    assert_int_equal(sk8s_check_label("NAME", n63, 63, 1, &err), 0);
    assert_int_equal(sk8s_check_label("NAME", n64, 63, 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "': a Kubernetes name expected: 1 to 63 lowercase letters, digits or '-', "
                                    "starting with a letter and ending with a letter or digit"));
    assert_int_equal(sk8s_check_label("NAME", NULL, 63, 1, &err), -EINVAL);
}

static void test_memory(void **state)
{
    (void)state;
    nb_err_t err;
    static const char *const good[] = { "512m", "2g", "1G", "1024k", "1t", "4096M", NULL };
    static const char *const bad[] = { "", "2", "2gb", "2 g", "g", "0g", "00m", "-1g", "1.5g", "2x", "${MEM}", NULL };
    for (const char *const *g = good; *g; g++)
        if (sk8s_check_memory("--executor-memory", *g, &err)) fail_msg("%s refused: %s", *g, err.msg);
    for (const char *const *b = bad; *b; b++)
        if (sk8s_check_memory("--executor-memory", *b, &err) != -EINVAL) fail_msg("%s accepted", *b);
    assert_string_equal(err.msg, "--executor-memory '${MEM}': a JVM size such as 512m or 2g expected "
                                 "(a whole number and k, m, g or t)");
}

static void test_app_python(void **state)
{
    (void)state;
    const char *conf[] = { "spark.sql.shuffle.partitions=64", "spark.x=yes", "spark.sql.shuffle.partitions=8", NULL };
    const char *args[] = { "2024-01-01", "--full", NULL };
    struct sk8s_opts o = { BASE, .application = "jobs/etl.py", .conf = conf, .args = args, .k8s_namespace = "team-a",
                           .service_account = "spark", .image_pull_policy = "IfNotPresent",
                           .py_files = "lib.py,./util.py,/opt/x.zip,s3a://b/y.py", .driver_memory = "2g",
                           .executor_instances = "4", .executor_cores = "2", .executor_memory = "4g", .retries = "3",
                           .retry_interval = "30" };
    json_t *docs = NULL;
    nb_err_t err;
    assert_int_equal(sk8s_app(&o, &docs, &err), 0);
    assert_int_equal(json_array_size(docs), 1);
    json_t *m = json_array_get(docs, 0);
    assert_string_equal(str_at(m, "apiVersion"), "sparkoperator.k8s.io/v1beta2");
    assert_string_equal(str_at(m, "kind"), "SparkApplication");
    assert_string_equal(str_at(m, "metadata name"), "etl");
    assert_string_equal(str_at(m, "metadata namespace"), "team-a");
    assert_string_equal(str_at(m, "metadata labels app.kubernetes.io/managed-by"), "nbhub");
    assert_string_equal(str_at(m, "spec type"), "Python");
    assert_string_equal(str_at(m, "spec mode"), "cluster");
    assert_string_equal(str_at(m, "spec image"), "apache/spark:4.0.1");
    assert_string_equal(str_at(m, "spec imagePullPolicy"), "IfNotPresent");
    assert_null(at(m, "spec mainClass"));
    assert_string_equal(str_at(m, "spec mainApplicationFile"), "local:///opt/spark/work-dir/jobs/etl.py");
    assert_string_equal(str_at(m, "spec arguments 0"), "2024-01-01");
    assert_string_equal(str_at(m, "spec arguments 1"), "--full");
    assert_string_equal(str_at(m, "spec sparkVersion"), "4.0.1");
    /* A repeated key keeps its first place and its last value. */
    json_t *sc = at(m, "spec sparkConf");
    assert_int_equal(json_object_size(sc), 2);
    assert_string_equal(json_object_iter_key(json_object_iter(sc)), "spark.sql.shuffle.partitions");
    assert_string_equal(str_at(sc, "spark.sql.shuffle.partitions"), "8");
    assert_string_equal(str_at(sc, "spark.x"), "yes");
    assert_string_equal(str_at(m, "spec deps pyFiles 0"), "local:///opt/spark/work-dir/lib.py");
    assert_string_equal(str_at(m, "spec deps pyFiles 1"), "local:///opt/spark/work-dir/util.py");
    assert_string_equal(str_at(m, "spec deps pyFiles 2"), "local:///opt/x.zip");
    assert_string_equal(str_at(m, "spec deps pyFiles 3"), "s3a://b/y.py");
    assert_string_equal(str_at(m, "spec restartPolicy type"), "OnFailure");
    assert_int_equal(int_at(m, "spec restartPolicy onFailureRetries"), 3);
    assert_int_equal(int_at(m, "spec restartPolicy onFailureRetryInterval"), 30);
    assert_int_equal(int_at(m, "spec restartPolicy onSubmissionFailureRetries"), 3);
    assert_int_equal(int_at(m, "spec driver cores"), 1);
    assert_string_equal(str_at(m, "spec driver memory"), "2g");
    assert_string_equal(str_at(m, "spec driver serviceAccount"), "spark");
    assert_int_equal(int_at(m, "spec executor instances"), 4);
    assert_int_equal(int_at(m, "spec executor cores"), 2);
    assert_string_equal(str_at(m, "spec executor memory"), "4g");
    json_decref(docs);

    /* Defaults: Spark's own sizes, the operator's service account, no
     * pull policy, no retries, nothing empty. */
    struct sk8s_opts d = { BASE, .application = "/opt/app/job.py" };
    assert_int_equal(sk8s_app(&d, &docs, &err), 0);
    m = json_array_get(docs, 0);
    assert_string_equal(str_at(m, "metadata namespace"), "default");
    assert_string_equal(str_at(m, "spec mainApplicationFile"), "local:///opt/app/job.py");
    assert_null(at(m, "spec imagePullPolicy"));
    assert_null(at(m, "spec sparkConf"));
    assert_null(at(m, "spec deps"));
    assert_null(at(m, "spec arguments"));
    assert_string_equal(str_at(m, "spec restartPolicy type"), "Never");
    assert_int_equal(json_object_size(at(m, "spec restartPolicy")), 1);
    assert_string_equal(str_at(m, "spec driver serviceAccount"), "spark-operator-spark");
    assert_string_equal(str_at(m, "spec driver memory"), "1g");
    assert_int_equal(int_at(m, "spec executor instances"), 2);
    assert_string_equal(str_at(m, "spec executor memory"), "1g");
    json_decref(docs);
}

static void test_app_jvm_and_files(void **state)
{
    (void)state;
    nb_err_t err;
    json_t *docs = NULL;
    struct sk8s_opts o = { BASE, .application = "s3a://bucket/jobs/etl.jar", .main_class = "org.example.Etl$Main",
                           .jars = "deps/a.jar,https://repo/b.jar", .files = "conf/app.conf", .workdir = "/srv" };
    assert_int_equal(sk8s_app(&o, &docs, &err), 0);
    json_t *m = json_array_get(docs, 0);
    assert_string_equal(str_at(m, "spec type"), "Scala");
    assert_string_equal(str_at(m, "spec mainClass"), "org.example.Etl$Main");
    assert_string_equal(str_at(m, "spec mainApplicationFile"), "s3a://bucket/jobs/etl.jar");
    assert_string_equal(str_at(m, "spec deps jars 0"), "local:///srv/deps/a.jar");
    assert_string_equal(str_at(m, "spec deps jars 1"), "https://repo/b.jar");
    assert_string_equal(str_at(m, "spec deps files 0"), "local:///srv/conf/app.conf");
    json_decref(docs);
    o.type = "Java";
    assert_int_equal(sk8s_app(&o, &docs, &err), 0);
    assert_string_equal(str_at(json_array_get(docs, 0), "spec type"), "Java");
    json_decref(docs);
    struct sk8s_opts r = { BASE, .application = "report.R" };
    assert_int_equal(sk8s_app(&r, &docs, &err), 0);
    assert_string_equal(str_at(json_array_get(docs, 0), "spec type"), "R");
    json_decref(docs);
    /* local:// given explicitly stays as it is. */
    struct sk8s_opts l = { BASE, .application = "local:///opt/spark/examples/src/main/python/pi.py" };
    assert_int_equal(sk8s_app(&l, &docs, &err), 0);
    assert_string_equal(str_at(json_array_get(docs, 0), "spec mainApplicationFile"),
                        "local:///opt/spark/examples/src/main/python/pi.py");
    json_decref(docs);
}

static void test_schedule(void **state)
{
    (void)state;
    struct { const char *in, *out; } ok[] = {
        { "30 2 * * *", "30 2 * * *" },
        { "  0\t6  * * 1-5 ", "0 6 * * 1-5" },
        { "*/15 * * * *", "*/15 * * * *" },
        { "0 0 * * 0", "0 0 * * 0" },
        { "0 0 * * */7", "0 0 * * */7" },   /* a step of 7, not Sunday */
        { "0 9 * JAN MON-FRI", "0 9 * JAN MON-FRI" },
        { "@daily", "@daily" },
        { "@Hourly", "@hourly" },
        { "30s", "@every 30s" },
        { "1h30m", "@every 1h30m" },
        { "2d", "@every 48h" },
        { "@every 90s", "@every 1m30s" },
        { "1d1h1m1s", "@every 25h1m1s" },
    };
    nb_err_t err;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *s = NULL;
        if (sk8s_schedule(ok[i].in, &s, &err) != 0) fail_msg("'%s' refused: %s", ok[i].in, err.msg);
        if (strcmp(s, ok[i].out) != 0) fail_msg("'%s' became '%s', not '%s'", ok[i].in, s, ok[i].out);
        free(s);
    }
    struct { const char *in, *msg; } bad[] = {
        { "0 0 * * 7", "day-of-week 7 is out of range for the operator's cron (0-6); write 0 for Sunday" },
        { "0 0 * * 5-7", "day-of-week 7" },
        { "0 0 * * 07", "day-of-week 7" },
        { "61 * * * *", "--schedule '61 * * * *': field 1 (minute)" },
        { "daily", "--schedule 'daily': " },
        { "", "--schedule '': " },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = (char *)"x";
        assert_int_equal(sk8s_schedule(bad[i].in, &s, &err), -EINVAL);
        assert_null(s);
        if (!strstr(err.msg, bad[i].msg)) fail_msg("'%s': '%s' lacks '%s'", bad[i].in, err.msg, bad[i].msg);
    }

    /* The ScheduledSparkApplication wraps exactly the SparkApplication's spec. */
    struct sk8s_opts plain = { BASE, .application = "etl.py" };
    struct sk8s_opts sched = plain;
    sched.schedule = "0 3 * * *";
    sched.time_zone = "Europe/Berlin";
    json_t *a = NULL, *s = NULL;
    assert_int_equal(sk8s_app(&plain, &a, &err), 0);
    assert_int_equal(sk8s_app(&sched, &s, &err), 0);
    json_t *m = json_array_get(s, 0);
    assert_string_equal(str_at(m, "kind"), "ScheduledSparkApplication");
    assert_string_equal(str_at(m, "apiVersion"), "sparkoperator.k8s.io/v1beta2");
    assert_string_equal(str_at(m, "spec schedule"), "0 3 * * *");
    assert_string_equal(str_at(m, "spec timeZone"), "Europe/Berlin");
    assert_string_equal(str_at(m, "spec concurrencyPolicy"), "Forbid");
    assert_true(json_equal(at(m, "spec template"), at(json_array_get(a, 0), "spec")));
    json_decref(a);
    json_decref(s);

    /* Runs are named NAME-<19 digits>, and that name is a label value. */
    char n44[45];
    memset(n44, 'a', 44);
    n44[44] = '\0';
    sched.name = n44;
    assert_int_equal(sk8s_app(&sched, &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "is longer than 43 characters: the operator names each scheduled run"));
    n44[43] = '\0';
    assert_int_equal(sk8s_app(&sched, &s, &err), 0);
    json_decref(s);
    plain.time_zone = "UTC";
    assert_int_equal(sk8s_app(&plain, &s, &err), -EINVAL);
    assert_string_equal(err.msg, "--time-zone needs --schedule");
    sched.time_zone = "../etc/passwd";
    assert_int_equal(sk8s_app(&sched, &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "--time-zone '../etc/passwd'"));
}

static void test_notebook(void **state)
{
    (void)state;
    const char *conf[] = { "spark.driver.extraJavaOptions=-Dx=1 -Dy=2", "spark.sql.shuffle.partitions=16", NULL };
    struct sk8s_opts o = { BASE, .name = "alice", .k8s_namespace = "team-a", .service_account = "nb",
                           .executor_instances = "3", .executor_memory = "2g", .driver_memory = "4g", .conf = conf };
    json_t *docs = NULL;
    nb_err_t err;
    assert_int_equal(sk8s_notebook(&o, &docs, &err), 0);
    assert_int_equal(json_array_size(docs), 2);
    json_t *svc = json_array_get(docs, 0), *cm = json_array_get(docs, 1);
    assert_string_equal(str_at(svc, "apiVersion"), "v1");
    assert_string_equal(str_at(svc, "kind"), "Service");
    assert_string_equal(str_at(svc, "metadata name"), "alice");
    assert_string_equal(str_at(svc, "metadata namespace"), "team-a");
    assert_string_equal(str_at(svc, "spec clusterIP"), "None");
    assert_true(json_is_true(at(svc, "spec publishNotReadyAddresses")));
    assert_int_equal(json_object_size(at(svc, "spec selector")), 1);
    assert_string_equal(str_at(svc, "spec selector nbhub/spark-driver"), "alice");
    assert_int_equal(int_at(svc, "spec ports 0 port"), 7078);
    assert_int_equal(int_at(svc, "spec ports 0 targetPort"), 7078);
    assert_string_equal(str_at(svc, "spec ports 0 name"), "driver-rpc");
    assert_int_equal(int_at(svc, "spec ports 1 port"), 7079);
    assert_int_equal(int_at(svc, "spec ports 2 port"), 4040);

    assert_string_equal(str_at(cm, "kind"), "ConfigMap");
    assert_string_equal(str_at(cm, "metadata name"), "alice-spark");
    assert_string_equal(str_at(cm, "data PYSPARK_SUBMIT_ARGS"),
                        "--master k8s://https://kubernetes.default.svc --deploy-mode client"
                        " --conf spark.kubernetes.container.image=apache/spark:4.0.1"
                        " --conf spark.kubernetes.namespace=team-a"
                        " --conf spark.kubernetes.authenticate.driver.serviceAccountName=nb"
                        " --conf spark.driver.host=alice.team-a.svc.cluster.local"
                        " --conf spark.driver.port=7078 --conf spark.driver.bindAddress=0.0.0.0"
                        " --conf spark.blockManager.port=7079 --conf spark.driver.memory=4g"
                        " --conf spark.executor.instances=3 --conf spark.executor.cores=1"
                        " --conf spark.executor.memory=2g"
                        " --conf 'spark.driver.extraJavaOptions=-Dx=1 -Dy=2'"
                        " --conf spark.sql.shuffle.partitions=16 pyspark-shell");
    /* Each setting once more under its own key, all values strings. */
    assert_string_equal(str_at(cm, "data SPARK_MASTER"), "k8s://https://kubernetes.default.svc");
    assert_string_equal(str_at(cm, "data SPARK_DRIVER_HOST"), "alice.team-a.svc.cluster.local");
    assert_string_equal(str_at(cm, "data SPARK_DRIVER_PORT"), "7078");
    assert_string_equal(str_at(cm, "data SPARK_BLOCKMANAGER_PORT"), "7079");
    assert_string_equal(str_at(cm, "data SPARK_EXECUTOR_INSTANCES"), "3");
    assert_string_equal(str_at(cm, "data SPARK_KUBERNETES_CONTAINER_IMAGE"), "apache/spark:4.0.1");
    assert_string_equal(str_at(cm, "data SPARK_DRIVER_EXTRAJAVAOPTIONS"), "-Dx=1 -Dy=2");
    const char *k;
    json_t *v;
    json_object_foreach(at(cm, "data"), k, v)
        if (!json_is_string(v)) fail_msg("data %s is not a string", k);
    json_decref(docs);

    char *host = sk8s_driver_host(&o), *cmn = sk8s_configmap_name(&o);
    assert_string_equal(host, "alice.team-a.svc.cluster.local");
    assert_string_equal(cmn, "alice-spark");
    free(host);
    free(cmn);

    /* The pod's own labels, another API server address and cluster domain. */
    const char *sel[] = { "hub.jupyter.org/username=alice", "component=singleuser-server", NULL };
    struct sk8s_opts p = { BASE, .name = "alice", .selector = sel, .master = "k8s://https://10.0.0.1:6443",
                           .cluster_domain = "corp.example", .image_pull_policy = "Always" };
    assert_int_equal(sk8s_notebook(&p, &docs, &err), 0);
    svc = json_array_get(docs, 0);
    cm = json_array_get(docs, 1);
    assert_int_equal(json_object_size(at(svc, "spec selector")), 2);
    assert_string_equal(str_at(svc, "spec selector hub.jupyter.org/username"), "alice");
    assert_string_equal(str_at(cm, "data SPARK_DRIVER_HOST"), "alice.default.svc.corp.example");
    assert_string_equal(str_at(cm, "data SPARK_KUBERNETES_CONTAINER_IMAGE_PULLPOLICY"), "Always");
    const char *args = str_at(cm, "data PYSPARK_SUBMIT_ARGS");
    assert_true(!strncmp(args, "--master k8s://https://10.0.0.1:6443 --deploy-mode client ", 58));
    assert_null(strstr(args, "spark.driver.memory"));
    json_decref(docs);
}

static void test_connect(void **state)
{
    (void)state;
    const char *conf[] = { "spark.connect.grpc.maxInboundMessageSize=134217728", NULL };
    struct sk8s_opts o = { BASE, .name = "team-connect", .k8s_namespace = "team-a", .driver_cores = "2",
                           .driver_memory = "4g", .executor_instances = "3", .conf = conf, .image_pull_policy = "Never" };
    json_t *docs = NULL;
    nb_err_t err;
    assert_int_equal(sk8s_connect(&o, &docs, &err), 0);
    json_t *m = json_array_get(docs, 0);
    assert_string_equal(str_at(m, "apiVersion"), "sparkoperator.k8s.io/v1alpha1");
    assert_string_equal(str_at(m, "kind"), "SparkConnect");
    assert_string_equal(str_at(m, "spec sparkVersion"), "4.0.1");
    assert_string_equal(str_at(m, "spec image"), "apache/spark:4.0.1");
    assert_string_equal(str_at(m, "spec sparkConf spark.connect.grpc.maxInboundMessageSize"), "134217728");
    assert_int_equal(int_at(m, "spec server cores"), 2);
    assert_string_equal(str_at(m, "spec server memory"), "4g");
    assert_string_equal(str_at(m, "spec server template spec serviceAccountName"), "spark-operator-spark");
    assert_string_equal(str_at(m, "spec server template spec containers 0 imagePullPolicy"), "Never");
    assert_string_equal(str_at(m, "spec executor template spec containers 0 name"), "spark-kubernetes-executor");
    assert_int_equal(int_at(m, "spec executor instances"), 3);
    json_decref(docs);
    /* NAME-server is a Service name: NAME has 56 characters at most. */
    char n57[58];
    memset(n57, 'c', 57);
    n57[57] = '\0';
    o.name = n57;
    assert_int_equal(sk8s_connect(&o, &docs, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "longer than 56 characters: the operator names the server's Service NAME-server"));
    n57[56] = '\0';
    assert_int_equal(sk8s_connect(&o, &docs, &err), 0);
    json_decref(docs);
}

/* Each bad input fails with a message naming the option or NAME, and
 * nothing is returned. */
static void test_errors(void **state)
{
    (void)state;
    enum { APP, NB, CONN };
    struct { int form; struct sk8s_opts o; const char *msg; } bad[] = {
        { APP, { BASE, .name = "Etl", .application = "a.py" }, "NAME 'Etl': a Kubernetes name expected" },
        { APP, { BASE, .name = "etl_job", .application = "a.py" }, "NAME 'etl_job'" },
        { APP, { BASE, .name = NULL, .application = "a.py" }, "NAME '':" },
        { APP, { BASE, .application = "a.py", .k8s_namespace = "Team A" }, "--namespace 'Team A'" },
        { APP, { BASE, .application = "a.py", .service_account = "sa_1" }, "--service-account 'sa_1'" },
        { APP, { BASE, .application = "a.py", .executor_memory = "2gb" }, "--executor-memory '2gb': a JVM size" },
        { APP, { BASE, .application = "a.py", .driver_memory = "lots" }, "--driver-memory 'lots'" },
        { APP, { BASE, .application = "a.py", .executor_cores = "0" }, "--executor-cores '0': a whole number of at least 1" },
        { APP, { BASE, .application = "a.py", .executor_instances = "two" }, "--executor-instances 'two'" },
        { APP, { BASE, .application = "a.py", .driver_cores = "99999999999" }, "--driver-cores '99999999999'" },
        { APP, { BASE, .application = "a.py", .image = NULL }, "--image is required" },
        { APP, { BASE, .application = "a.py", .image = "apache/spark: 4" }, "--image 'apache/spark: 4': no blanks" },
        { APP, { BASE, .application = "a.py", .image_pull_policy = "always" }, "--image-pull-policy 'always': one of Always, IfNotPresent, Never" },
        { APP, { BASE, .application = "a.py", .spark_version = "4" }, "--spark-version '4'" },
        { APP, { BASE, .application = "a.py", .spark_version = NULL }, "--spark-version is required" },
        { APP, { BASE, .application = NULL }, "--application is required" },
        { APP, { BASE, .application = "run.sh" }, "--application 'run.sh': a .py, .jar or .R file expected" },
        { APP, { BASE, .application = "my job.py" }, "--application 'my job.py': no blanks" },
        { APP, { BASE, .application = "a.jar" }, "--main-class is required for a Scala application" },
        { APP, { BASE, .application = "a.py", .main_class = "x.Y" }, "--main-class applies to .jar" },
        { APP, { BASE, .application = "a.jar", .main_class = "org..X" }, "--main-class 'org..X'" },
        { APP, { BASE, .application = "a.py", .type = "python" }, "--type 'python': one of Python, Scala, Java, R" },
        { APP, { BASE, .application = "a.jar", .main_class = "X", .py_files = "a.py" }, "--py-files applies to Python" },
        { APP, { BASE, .application = "a.py", .py_files = "a.py,,b.py" }, "--py-files 'a.py,,b.py': a comma-separated list" },
        { APP, { BASE, .application = "a.py", .workdir = "rel" }, "--workdir 'rel': an absolute path" },
        { APP, { BASE, .application = "a.py", .retries = "-1" }, "--retries '-1'" },
        { APP, { BASE, .application = "a.py", .retry_interval = "5" }, "--retry-interval needs --retries" },
        { APP, { BASE, .application = "a.py", .retries = "2", .retry_interval = "0" }, "--retry-interval '0'" },
        { APP, { BASE, .application = "a.py", .conf = (const char *[]){ "novalue", NULL } }, "--conf 'novalue'" },
        { APP, { BASE, .application = "a.py", .conf = (const char *[]){ "spark.executor.memory=2g", NULL } },
          "--conf 'spark.executor.memory=2g': spark.executor.memory is set by render-k8s; use --executor-memory" },
        { APP, { BASE, .application = "a.py", .conf = (const char *[]){ "spark.kubernetes.namespace=x", NULL } }, "use --namespace" },
        { APP, { BASE, .application = "a.py", .selector = (const char *[]){ "a=b", NULL } }, "apply to notebooks only" },
        { APP, { BASE, .application = "a.py", .schedule = "0 0 * * 7" }, "day-of-week 7" },
        { NB, { BASE, .application = "a.py" }, "a notebook takes no application" },
        { NB, { BASE, .driver_cores = "2" }, "--driver-cores" },
        { NB, { BASE, .master = "spark://h:7077" }, "--master 'spark://h:7077': k8s://https://API-SERVER[:PORT] expected" },
        { NB, { BASE, .master = "k8s://nohttp" }, "master 'k8s://nohttp'" },
        { NB, { BASE, .cluster_domain = "Corp" }, "--cluster-domain 'Corp'" },
        { NB, { BASE, .selector = (const char *[]){ "novalue", NULL } }, "--selector 'novalue': KEY=VALUE of a pod label" },
        { NB, { BASE, .selector = (const char *[]){ "a=b c", NULL } }, "--selector 'a=b c'" },
        { NB, { BASE, .selector = (const char *[]){ "Bad_Prefix/x=y", NULL } }, "--selector 'Bad_Prefix/x=y'" },
        { NB, { BASE, .conf = (const char *[]){ "spark.driver.port=1", NULL } }, "the Service names port 7078" },
        { NB, { BASE, .conf = (const char *[]){ "spark.driver.host=x", NULL } }, "headless Service's name" },
        { NB, { BASE, .conf = (const char *[]){ "spark.a-b=1", "spark.a.b=2", NULL } },
          "--conf spark.a.b: its ConfigMap key SPARK_A_B is taken by another setting" },
        { CONN, { BASE, .application = "a.py" }, "a Spark Connect server takes no application" },
        { CONN, { BASE, .executor_memory = "1.5g" }, "--executor-memory '1.5g'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *docs = (json_t *)&bad;   /* must come back NULL */
        nb_err_t err = { 0 };
        int rc = bad[i].form == APP ? sk8s_app(&bad[i].o, &docs, &err)
               : bad[i].form == NB ? sk8s_notebook(&bad[i].o, &docs, &err) : sk8s_connect(&bad[i].o, &docs, &err);
        if (rc != -EINVAL) fail_msg("case %zu (%s) gave %d", i, bad[i].msg, rc);
        assert_null(docs);
        if (!strstr(err.msg, bad[i].msg)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
    }
}

/* Every manifest through the YAML emitter and back through the loader,
 * with values a loader would retype if they were written plain. */
static void test_yaml_round_trip(void **state)
{
    (void)state;
    const char *conf[] = { "spark.a=yes", "spark.b=7078", "spark.c=a: b", "spark.d=", "spark.e=null", "spark.f=1e3",
                           "spark.g=- x", "spark.h=#x", "spark.i=line1\nline2", NULL };
    const char *args[] = { "on", "0o17", "~", "2024-01-01", "--x=1", "'q'", NULL };
    struct sk8s_opts o = { BASE, .application = "etl.py", .conf = conf, .args = args, .schedule = "@every 1h" };
    json_t *docs[3] = { NULL, NULL, NULL };
    nb_err_t err;
    assert_int_equal(sk8s_app(&o, &docs[0], &err), 0);
    struct sk8s_opts n = { BASE, .conf = conf };
    assert_int_equal(sk8s_notebook(&n, &docs[1], &err), 0);
    struct sk8s_opts c = { BASE, .conf = conf };
    assert_int_equal(sk8s_connect(&c, &docs[2], &err), 0);
    for (int d = 0; d < 3; d++) {
        buf_t b = BUF_INIT;
        assert_int_equal(jsonyaml_emit_all(docs[d], &b, &err), 0);
        /* Split at the document markers and load each document. */
        size_t ndoc = 0;
        for (const char *p = b.data; p && *p; ndoc++) {
            assert_true(!strncmp(p, "---\n", 4));
            const char *next = strstr(p + 4, "\n---\n");
            size_t len = next ? (size_t)(next + 1 - p) : strlen(p);
            json_t *back = NULL;
            if (yamljson_parse(p, len, "manifest", &back, &err) != 0) fail_msg("%s\n%s", err.msg, b.data);
            if (!json_equal(back, json_array_get(docs[d], ndoc))) fail_msg("document %zu changed:\n%s", ndoc, b.data);
            json_decref(back);
            p = next ? next + 1 : NULL;
        }
        assert_int_equal(ndoc, json_array_size(docs[d]));
        buf_free(&b);
        json_decref(docs[d]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_app_python),
        cmocka_unit_test(test_app_jvm_and_files),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_notebook),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_yaml_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
