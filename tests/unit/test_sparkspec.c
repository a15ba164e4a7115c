/* Unit tests for sparkspec: masters, conf items, sizes, shlex quoting and
 * the kernel.json of a PySpark kernel.  (That pyspark really splits the
 * quoted words back is checked with Python's shlex in
 * tests/blackbox/test_spark_kernel.py.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spark/sparkspec.h"

static void test_masters(void **state)
{
    (void)state;
    static const char *const good[] = { "local", "local[*]", "local[4]", "local[2,3]", "yarn",
                                        "spark://h:7077", "spark://a.b-c:7077,d:7078",
                                        "k8s://https://10.0.0.1:6443", "k8s://http://api" };
    static const char *const bad[] = { "", "local[]", "local[0]", "local[x]", "spark://", "spark://h",
                                       "spark://h:0", "spark://h:99999", "k8s://api", "k8s://https://",
                                       "mesos://h:5050", "local[2", "spark://h:7077 --conf x" };
    nb_err_t err;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (sparkspec_check_master(good[i], &err) != 0) fail_msg("%s refused: %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sparkspec_check_master(bad[i], &err) != -EINVAL) fail_msg("%s accepted", bad[i]);
    assert_int_equal(sparkspec_check_master(NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "--master is required"));
}

static char *quote(const char *w)
{
    buf_t b = BUF_INIT;
    sparkspec_quote(&b, w);
    return b.data;
}

static void test_quote(void **state)
{
    (void)state;
    char *q = quote("spark.executor.memory=2g");
    assert_string_equal(q, "spark.executor.memory=2g");
    free(q);
    q = quote("spark.driver.extraJavaOptions=-Dx=1 -Dy=2");
    assert_string_equal(q, "'spark.driver.extraJavaOptions=-Dx=1 -Dy=2'");
    free(q);
    q = quote("it's");
    assert_string_equal(q, "'it'\"'\"'s'");
    free(q);
    q = quote("${MEM}");   /* substituted before pyspark splits: must stay one word */
    assert_string_equal(q, "'${MEM}'");
    free(q);
    q = quote("");
    assert_string_equal(q, "''");
    free(q);
}

static void test_submit_args(void **state)
{
    (void)state;
    const char *conf[] = { "spark.ui.enabled=false", "spark.sql.shuffle.partitions=4", NULL };
    struct sparkspec_opts o = { .name = "k", .master = "k8s://https://api:6443", .conf = conf,
                                .executor_instances = "2", .executor_cores = "1", .executor_memory = "2g",
                                .image = "apache/spark:4.0.0", .k8s_namespace = "team-a" };
    buf_t b = BUF_INIT;
    nb_err_t err;
    assert_int_equal(sparkspec_submit_args(&o, &b, &err), 0);
    assert_string_equal(b.data, "--master k8s://https://api:6443 --conf spark.ui.enabled=false "
                                "--conf spark.sql.shuffle.partitions=4 --conf spark.executor.instances=2 "
                                "--conf spark.executor.cores=1 --conf spark.executor.memory=2g "
                                "--conf spark.kubernetes.container.image=apache/spark:4.0.0 "
                                "--conf spark.kubernetes.namespace=team-a pyspark-shell");
    buf_free(&b);

    /* Each bad option is named. */
    struct { struct sparkspec_opts o; const char *msg; } bad[] = {
        { { .master = "local[*]", .conf = (const char *[]){ "novalue", NULL } }, "--conf 'novalue'" },
        { { .master = "local[*]", .conf = (const char *[]){ "bad key=1", NULL } }, "--conf 'bad key=1'" },
        { { .master = "local[*]", .executor_memory = "lots" }, "--executor-memory 'lots'" },
        { { .master = "local[*]", .executor_instances = "0" }, "--executor-instances '0'" },
        { { .master = "local[*]", .image = "img" }, "k8s:// masters only" },
        { { .master = "nowhere" }, "master 'nowhere'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_t x = BUF_INIT;
        assert_int_equal(sparkspec_submit_args(&bad[i].o, &x, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
        assert_int_equal(x.len, 0);
        buf_free(&x);
    }
    /* ${VAR} is accepted where numbers and sizes go. */
    struct sparkspec_opts v = { .master = "local[*]", .executor_memory = "${MEM}", .executor_instances = "${N}" };
    assert_int_equal(sparkspec_submit_args(&v, &b, &err), 0);
    assert_non_null(strstr(b.data, "'spark.executor.memory=${MEM}'"));
    buf_free(&b);
}

static void test_build(void **state)
{
    (void)state;
    struct sparkspec_opts o = { .name = "spark-local", .master = "local[2]", .python = "/venv/bin/python",
                                .spark_home = "/opt/spark", .py4j_zip = "/opt/spark/python/lib/py4j-0.10.9.9-src.zip" };
    json_t *k = NULL;
    nb_err_t err;
    assert_int_equal(sparkspec_build(&o, &k, &err), 0);
    json_t *argv = json_object_get(k, "argv");
    assert_string_equal(json_string_value(json_array_get(argv, 0)), "/venv/bin/python");
    assert_string_equal(json_string_value(json_array_get(argv, 4)), "{connection_file}");
    assert_string_equal(json_string_value(json_object_get(k, "display_name")), "PySpark (spark-local)");
    assert_string_equal(json_string_value(json_object_get(k, "language")), "python");
    json_t *env = json_object_get(k, "env");
    assert_string_equal(json_string_value(json_object_get(env, "SPARK_HOME")), "/opt/spark");
    assert_string_equal(json_string_value(json_object_get(env, "PYSPARK_PYTHON")), "/venv/bin/python");
    assert_string_equal(json_string_value(json_object_get(env, "PYTHONPATH")),
                        "/opt/spark/python:/opt/spark/python/lib/py4j-0.10.9.9-src.zip");
    assert_string_equal(json_string_value(json_object_get(env, "PYSPARK_SUBMIT_ARGS")),
                        "--master local[2] --conf spark.driver.host=127.0.0.1 "
                        "--conf spark.driver.bindAddress=127.0.0.1 pyspark-shell");
    json_decref(k);

    o.py4j_zip = NULL;   /* pyspark from PyPI: no PYTHONPATH to shadow it */
    o.display_name = "Spark <team>";
    assert_int_equal(sparkspec_build(&o, &k, &err), 0);
    assert_null(json_object_get(json_object_get(k, "env"), "PYTHONPATH"));
    assert_string_equal(json_string_value(json_object_get(k, "display_name")), "Spark <team>");
    json_decref(k);

    /* A Spark Connect kernel. */
    struct sparkspec_opts r = { .name = "remote", .remote = "sc://127.0.0.1:15002", .python = "/venv/bin/python",
                                .spark_home = "/opt/spark" };
    assert_int_equal(sparkspec_build(&r, &k, &err), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(k, "env"), "SPARK_REMOTE")),
                        "sc://127.0.0.1:15002");
    assert_null(json_object_get(json_object_get(k, "env"), "PYSPARK_SUBMIT_ARGS"));
    json_decref(k);
    r.remote = "sc://nohost";
    assert_int_equal(sparkspec_build(&r, &k, &err), -EINVAL);
    r.remote = "sc://h:1";
    r.executor_memory = "1g";
    assert_int_equal(sparkspec_build(&r, &k, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "takes no --master"));

    o.name = "../etc";
    assert_int_equal(sparkspec_build(&o, &k, &err), -EINVAL);
    assert_null(k);
    assert_non_null(strstr(err.msg, "kernel name '../etc'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masters),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_submit_args),
        cmocka_unit_test(test_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
