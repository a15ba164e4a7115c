/* Unit tests for scluster: the master's /json/ (a real answer of Spark 4.3's
 * master, trimmed), command lines, the loopback environment, sizes, ports. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "spark/scluster.h"
#include "spark/seventlog.h"
#include "spark/sprogress.h"

#include <jansson.h>

static const char master_json[] =
    "{\"url\":\"spark://127.0.0.1:42479\",\"workers\":[{\"id\":\"worker-1\",\"host\":\"127.0.0.1\","
    "\"port\":45059,\"cores\":1,\"coresused\":0,\"memory\":1024,\"memoryused\":0,\"state\":\"ALIVE\"},"
    "{\"id\":\"worker-2\",\"host\":\"127.0.0.1\",\"port\":45517,\"cores\":1,\"coresused\":1,"
    "\"memory\":1024,\"memoryused\":512,\"state\":\"ALIVE\"}],\"aliveworkers\":2,\"cores\":2,"
    "\"coresused\":1,\"memory\":2048,\"memoryused\":512,\"resources\":[],\"resourcesused\":[],"
    "\"activeapps\":[{\"id\":\"app-1\"}],\"completedapps\":[],\"activedrivers\":[],"
    "\"completeddrivers\":[],\"status\":\"ALIVE\"}";

static void test_status_parse(void **state)
{
    (void)state;
    struct scluster_status st;
    nb_err_t err;
    assert_int_equal(scluster_status_parse(master_json, strlen(master_json), &st, &err), 0);
    assert_string_equal(st.url, "spark://127.0.0.1:42479");
    assert_string_equal(st.status, "ALIVE");
    assert_int_equal(st.alive_workers, 2);
    assert_int_equal(st.cores, 2);
    assert_int_equal(st.cores_used, 1);
    assert_int_equal(st.memory_mb, 2048);
    assert_int_equal(st.memory_used_mb, 512);
    assert_int_equal(st.active_apps, 1);
    assert_int_equal(scluster_status_parse("<html>", 6, &st, &err), -EINVAL);
    assert_int_equal(scluster_status_parse("{\"url\":1}", 9, &st, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "lacks url"));
}

static void test_argv_env(void **state)
{
    (void)state;
    char **m = scluster_master_argv("/opt/spark", 7077, 8080);
    assert_string_equal(m[0], "/opt/spark/bin/spark-class");
    assert_string_equal(m[1], "org.apache.spark.deploy.master.Master");
    assert_string_equal(m[3], "127.0.0.1");
    assert_string_equal(m[5], "7077");
    assert_string_equal(m[7], "8080");
    assert_null(m[8]);
    scluster_strv_free(m);
    char **w = scluster_worker_argv("/opt/spark", "spark://127.0.0.1:7077", 2, "1g", "/w");
    assert_string_equal(w[1], "org.apache.spark.deploy.worker.Worker");
    assert_string_equal(w[5], "2");
    assert_string_equal(w[7], "1g");
    assert_string_equal(w[12], "spark://127.0.0.1:7077");
    scluster_strv_free(w);
    char **c = scluster_connect_argv("/opt/spark", "c1", "spark://127.0.0.1:7077", 15002, "1g");
    assert_string_equal(c[0], "/opt/spark/bin/spark-submit");
    assert_string_equal(c[2], "org.apache.spark.sql.connect.service.SparkConnectServer");
    int bound = 0;
    for (char **q = c; *q; q++)
        if (!strcmp(*q, "spark.connect.grpc.binding.address=127.0.0.1")) bound = 1;
        else if (!strcmp(*q, "spark.ui.reverseProxyUrl=/spark/c1/ui")) bound += 10;
    assert_int_equal(bound, 11);
    scluster_strv_free(c);
    setenv("SPARK_LOCAL_IP", "0.0.0.0", 1);   /* never inherited */
    char **e = scluster_env("/opt/spark", "c1");
    int local = 0, rest = 0, home = 0, proxied = 0;
    for (char **p = e; *p; p++) {
        if (!strcmp(*p, "SPARK_LOCAL_IP=0.0.0.0")) fail_msg("inherited SPARK_LOCAL_IP");
        if (!strcmp(*p, "SPARK_LOCAL_IP=127.0.0.1")) local = 1;
        if (strstr(*p, "spark.master.rest.enabled=false")) rest = 1;
        if (!strcmp(*p, "SPARK_HOME=/opt/spark")) home = 1;
        /* Master and workers draw their links for nbhub's proxy. */
        if ((!strncmp(*p, "SPARK_MASTER_OPTS=", 18) || !strncmp(*p, "SPARK_WORKER_OPTS=", 18)) &&
            strstr(*p, " -Dspark.ui.reverseProxy=true -Dspark.ui.reverseProxyUrl=/spark/c1/ui "))
            proxied++;
    }
    assert_true(local && rest && home);
    assert_int_equal(proxied, 2);
    scluster_strv_free(e);
}

static void test_memory_and_port(void **state)
{
    (void)state;
    assert_int_equal(scluster_memory_ok("512m"), 0);
    assert_int_equal(scluster_memory_ok("2g"), 0);
    assert_int_equal(scluster_memory_ok("1024"), 0);
    assert_int_equal(scluster_memory_ok("lots"), -EINVAL);
    assert_int_equal(scluster_memory_ok("0g"), -EINVAL);
    assert_int_equal(scluster_memory_ok("2gb"), -EINVAL);
    int p = scluster_free_port();
    assert_true(p > 1024 && p < 65536);
}

static void test_memory_mb(void **state)
{
    (void)state;
    assert_int_equal(scluster_memory_mb("512m"), 512);
    assert_int_equal(scluster_memory_mb("2g"), 2048);
    assert_int_equal(scluster_memory_mb("1T"), 1024 * 1024);
    assert_int_equal(scluster_memory_mb("300"), 300);
    assert_int_equal(scluster_memory_mb("2x"), -EINVAL);
    /* Sizes whose megabytes overflowed a long (UBSan: signed overflow; the
     * first wrapped to 1024 MB and passed a 1g per-user quota); the
     * bound is SCLUSTER_MEMORY_MAX_MB, leading zeros are no overflow. */
    assert_int_equal(scluster_memory_mb("18014398509481985g"), -EINVAL);
    assert_int_equal(scluster_memory_ok("18014398509481985g"), -EINVAL);
    assert_int_equal(scluster_memory_mb("999999999999999t"), -EINVAL);
    assert_int_equal(scluster_memory_mb("99999999999999999999999999"), -EINVAL);
    assert_int_equal(scluster_memory_mb("1000t"), -EINVAL);
    assert_int_equal(scluster_memory_mb("999t"), 999L * 1024 * 1024);
    assert_int_equal(scluster_memory_mb("1000000g"), -EINVAL);
    assert_int_equal(scluster_memory_mb("999999g"), 999999L * 1024);
    assert_int_equal(scluster_memory_mb("1000000000m"), -EINVAL);
    assert_int_equal(scluster_memory_mb("999999999"), 999999999L);
    assert_true(scluster_memory_mb("999t") < SCLUSTER_MEMORY_MAX_MB);
    assert_true(scluster_memory_mb("999999g") < SCLUSTER_MEMORY_MAX_MB);
    assert_int_equal(scluster_memory_mb("0000000000000000000000002g"), 2048);
    assert_int_equal(scluster_memory_mb("0m"), -EINVAL);
    assert_true(scluster_host_memory_mb() > 0);
}

/* The answers of a driver's REST API as Spark 4 serves them (trimmed). */
static void test_progress_summary(void **state)
{
    (void)state;
    json_t *apps = json_loads("[{\"id\": \"app-20261202080349-0000\", \"name\": \"x\", \"attempts\": []}]", 0, NULL);
    assert_string_equal(sprogress_app_id(apps), "app-20261202080349-0000");
    assert_null(sprogress_app_id(NULL));
    json_t *empty = json_array();
    assert_null(sprogress_app_id(empty));
    json_t *jobs = json_loads(
        "[{\"jobId\": 1, \"name\": \"count at x.py:3\", \"status\": \"RUNNING\", \"stageIds\": [1, 2],"
        "  \"numTasks\": 8, \"numActiveTasks\": 2, \"numCompletedTasks\": 5, \"numSkippedTasks\": 0,"
        "  \"numFailedTasks\": 1, \"numCompletedStages\": 1},"
        " {\"jobId\": 0, \"name\": \"sum\", \"status\": \"SUCCEEDED\", \"stageIds\": [0], \"numTasks\": 4,"
        "  \"numCompletedTasks\": 4, \"numCompletedStages\": 1}, 42]", 0, NULL);
    json_t *stages = json_loads("[{\"stageId\": 2, \"attemptId\": 0, \"name\": \"count\", \"status\": \"ACTIVE\","
                                " \"numTasks\": 4, \"numActiveTasks\": 2, \"numCompleteTasks\": 1, \"numFailedTasks\": 1}]",
                                0, NULL);
    json_t *s = sprogress_summary("app-1", jobs, stages);
    assert_string_equal(json_string_value(json_object_get(s, "app_id")), "app-1");
    json_t *t = json_object_get(s, "totals");
    assert_int_equal(json_integer_value(json_object_get(t, "jobs")), 2);   /* 42 is no job */
    assert_int_equal(json_integer_value(json_object_get(t, "running")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "succeeded")), 1);
    json_t *j0 = json_array_get(json_object_get(s, "jobs"), 0);
    assert_int_equal(json_integer_value(json_object_get(j0, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(j0, "done")), 5);
    assert_int_equal(json_integer_value(json_object_get(j0, "stages")), 2);
    json_t *st = json_array_get(json_object_get(s, "active_stages"), 0);
    assert_int_equal(json_integer_value(json_object_get(st, "id")), 2);
    assert_int_equal(json_integer_value(json_object_get(st, "active")), 2);
    json_decref(s);
    /* Nothing yet: an empty summary, not a crash. */
    s = sprogress_summary(NULL, NULL, NULL);
    assert_true(json_is_null(json_object_get(s, "app_id")));
    assert_int_equal(json_array_size(json_object_get(s, "jobs")), 0);
    json_decref(s);
    /* At most SPROGRESS_MAX_JOBS jobs kept; all counted. */
    json_t *many = json_array();
    for (int i = 0; i < 3 * SPROGRESS_MAX_JOBS; i++)
        json_array_append_new(many, json_pack("{s:i, s:s}", "jobId", i, "status", "SUCCEEDED"));
    s = sprogress_summary("a", many, NULL);
    assert_int_equal(json_array_size(json_object_get(s, "jobs")), SPROGRESS_MAX_JOBS);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "totals"), "succeeded")), 3 * SPROGRESS_MAX_JOBS);
    json_decref(s);
    json_decref(many);
    json_decref(apps);
    json_decref(empty);
    json_decref(jobs);
    json_decref(stages);
}

/* The event log of a real Spark 4.3 application (tests/unit/data/
 * spark-eventlog.jsonl, bulky fields trimmed): a sum (job 0, 4 tasks), a
 * reduceByKey counted twice (job 1 runs both stages; job 2 reuses the
 * shuffle, its map stage skipped) and a collect whose task raised (job 3). */
static void test_eventlog(void **state)
{
    (void)state;
    FILE *f = fopen("tests/unit/data/spark-eventlog.jsonl", "r");
    assert_non_null(f);
    char *app = NULL;
    json_t *jobs = seventlog_jobs(f, &app);
    assert_string_equal(app, "local-1796223557523");
    assert_int_equal(json_array_size(jobs), 4);
    /* Newest first, with the REST API's names and counts. */
    static const struct { int id; const char *status; int tasks, done, failed, skipped, stages_done; } want[] = {
        { 3, "FAILED", 2, 1, 1, 0, 0 },
        { 2, "SUCCEEDED", 6, 3, 0, 3, 1 },
        { 1, "SUCCEEDED", 6, 6, 0, 0, 2 },
        { 0, "SUCCEEDED", 4, 4, 0, 0, 1 },
    };
    for (size_t i = 0; i < 4; i++) {
        json_t *j = json_array_get(jobs, i);
        assert_int_equal(json_integer_value(json_object_get(j, "jobId")), want[i].id);
        assert_string_equal(json_string_value(json_object_get(j, "status")), want[i].status);
        assert_int_equal(json_integer_value(json_object_get(j, "numTasks")), want[i].tasks);
        assert_int_equal(json_integer_value(json_object_get(j, "numCompletedTasks")), want[i].done);
        assert_int_equal(json_integer_value(json_object_get(j, "numFailedTasks")), want[i].failed);
        assert_int_equal(json_integer_value(json_object_get(j, "numSkippedTasks")), want[i].skipped);
        assert_int_equal(json_integer_value(json_object_get(j, "numCompletedStages")), want[i].stages_done);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 3), "name")),
                        "sum at /tmp/evl/job.py:4");
    /* What the run keeps: sprogress condenses it like a REST answer. */
    json_t *s = sprogress_summary(app, jobs, NULL);
    json_t *t = json_object_get(s, "totals");
    assert_int_equal(json_integer_value(json_object_get(t, "succeeded")), 3);
    assert_int_equal(json_integer_value(json_object_get(t, "failed")), 1);
    json_decref(s);
    json_decref(jobs);
    free(app);

    /* Cut short inside job 3 (the driver was killed): job 3 is unknown,
     * the torn last line is ignored, the rest counts. */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *text = malloc((size_t)size);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    char *cut = strstr(text, "{\"Event\":\"SparkListenerJobEnd\",\"Job ID\":3");
    assert_non_null(cut);
    FILE *m = fmemopen(text, (size_t)(cut - text) + 30, "r");
    jobs = seventlog_jobs(m, NULL);
    fclose(m);
    assert_int_equal(json_array_size(jobs), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 0), "status")), "UNKNOWN");
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 1), "status")), "SUCCEEDED");
    json_decref(jobs);
    free(text);

    /* Garbage and events of no job: nothing, no crash. */
    static const char junk[] = "not json\n{\"Event\":\"SparkListenerTaskEnd\",\"Stage ID\":7}\n"
                               "{\"Event\":\"SparkListenerJobEnd\",\"Job ID\":\"x\"}\n[1,2]\n";
    m = fmemopen((void *)junk, sizeof junk - 1, "r");
    jobs = seventlog_jobs(m, &app);
    fclose(m);
    assert_int_equal(json_array_size(jobs), 0);
    assert_null(app);
    json_decref(jobs);
}

/* Read live, in pieces as the driver writes them (7 bytes at a time: lines
 * split anywhere), up to job 1's second stage running its 3 tasks. */
static void test_eventlog_live(void **state)
{
    (void)state;
    FILE *f = fopen("tests/unit/data/spark-eventlog.jsonl", "r");
    assert_non_null(f);
    char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    const char *cut = strstr(text, "{\"Event\":\"SparkListenerTaskEnd\",\"Stage ID\":2");
    assert_non_null(cut);
    seventlog_t *l = seventlog_new();
    for (const char *p = text; p < cut; p += 7) seventlog_feed(l, p, (size_t)(cut - p) < 7 ? (size_t)(cut - p) : 7);
    assert_string_equal(seventlog_app_id(l), "local-1796223557523");
    json_t *jobs = seventlog_jobs_json(l), *stages = seventlog_active_stages(l);
    assert_int_equal(json_array_size(jobs), 2);
    json_t *j1 = json_array_get(jobs, 0);
    assert_string_equal(json_string_value(json_object_get(j1, "status")), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j1, "numCompletedTasks")), 3);
    assert_int_equal(json_integer_value(json_object_get(j1, "numActiveTasks")), 3);
    assert_int_equal(json_array_size(stages), 1);
    json_t *st = json_array_get(stages, 0);
    assert_int_equal(json_integer_value(json_object_get(st, "stageId")), 2);
    assert_int_equal(json_integer_value(json_object_get(st, "numActiveTasks")), 3);
    assert_int_equal(json_integer_value(json_object_get(st, "numTasks")), 3);
    /* The same in sprogress's shape: one running job, its active stage. */
    json_t *sum = sprogress_summary(seventlog_app_id(l), jobs, stages);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(sum, "totals"), "running")), 1);
    assert_int_equal(json_array_size(json_object_get(sum, "active_stages")), 1);
    json_decref(sum);
    json_decref(jobs);
    json_decref(stages);
    /* The rest arrives; once final, nothing is active and all four jobs ended. */
    seventlog_feed(l, cut, len - (size_t)(cut - text));
    seventlog_finish(l);
    jobs = seventlog_jobs_json(l);
    stages = seventlog_active_stages(l);
    assert_int_equal(json_array_size(jobs), 4);
    assert_int_equal(json_array_size(stages), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 2), "status")), "SUCCEEDED");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jobs, 2), "numActiveTasks")), 0);
    json_decref(jobs);
    json_decref(stages);
    seventlog_free(l);
}

/* The log of an application among others: by its id, else the newest. */
static void test_eventlog_find(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbhub-evl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_null(seventlog_find(dir, "app-1", NULL));
    char p[128];
    const char *names[] = { "app-1.inprogress", "app-2", ".hidden" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        fputs("{}\n", f);
        fclose(f);
    }
    char *got = seventlog_find(dir, "app-1", NULL);
    snprintf(p, sizeof p, "%s/app-1.inprogress", dir);
    assert_string_equal(got, p);
    free(got);
    got = seventlog_find(dir, "app-10", NULL);
    assert_non_null(got);
    assert_null(strstr(got, ".hidden"));
    free(got);
    /* Files older than a try's start are earlier tries'. */
    struct timespec later = { time(NULL) + 60, 0 };
    assert_null(seventlog_find(dir, NULL, &later));
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- names per owner, the claim, the per-user count ------------------------ */

/* A cluster directory HOME/spark/ID with a config.json of that JSON. */
static char *mkcluster(const char *home, const char *id, const char *cfg)
{
    char *dir = scluster_dir(home, id), cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fputs(cfg, f);
    fclose(f);
    return dir;
}

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_ids(void **state)
{
    (void)state;
    char *id = scluster_id(NULL, "dev");
    assert_string_equal(id, "dev");
    free(id);
    id = scluster_id("alice", "dev");
    assert_string_equal(id, "~alice/dev");
    char *ui = scluster_ui_path(id);
    assert_string_equal(ui, "/spark/~alice/dev/ui");
    free(ui);
    char **c = scluster_ui_confs(id);
    assert_string_equal(c[1], "spark.ui.reverseProxyUrl=/spark/~alice/dev/ui");
    scluster_strv_free(c);
    free(id);
    /* An owner is one path component, whatever its bytes: ".." is "~.." */
    id = scluster_id("a@b c%", "x");
    assert_string_equal(id, "~a%40b%20c%25/x");
    free(id);
    id = scluster_id("..", "x");
    assert_string_equal(id, "~../x");
    free(id);
    char *d = scluster_dir("/h", "~bob/dev");
    assert_string_equal(d, "/h/spark/~bob/dev");
    free(d);
    assert_true(scluster_owner_ok("alice"));
    assert_true(scluster_owner_ok("a.b@c-d"));
    assert_false(scluster_owner_ok(""));
    assert_false(scluster_owner_ok(NULL));
    assert_false(scluster_owner_ok("a/b"));
    assert_false(scluster_owner_ok("a\nb"));
    assert_false(scluster_owner_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));   /* 65 */
    /* No cluster name is an owner's directory. */
    assert_false(scluster_name_ok("~alice"));
}

/* alice and bob both have "dev"; a cluster of the old layout (spark/NAME,
 * its owner in config.json) is still its owner's; the operator's are
 * spark/NAME without an owner. */
static void test_find_ids(void **state)
{
    (void)state;
    char home[] = "/tmp/nbhub-scl-XXXXXX";
    assert_non_null(mkdtemp(home));
    free(mkcluster(home, "~alice/dev", "{\"name\":\"dev\",\"owner\":\"alice\"}"));
    free(mkcluster(home, "~bob/dev", "{\"name\":\"dev\",\"owner\":\"bob\"}"));
    free(mkcluster(home, "old", "{\"name\":\"old\",\"owner\":\"alice\"}"));
    free(mkcluster(home, "ops", "{\"name\":\"ops\"}"));
    char p[256];
    snprintf(p, sizeof p, "mkdir -p '%s/spark/~carol/nocfg'", home);   /* no config.json: no cluster */
    assert_int_equal(system(p), 0);
    struct { const char *owner, *name, *want; } cases[] = {
        { "alice", "dev", "~alice/dev" }, { "bob", "dev", "~bob/dev" }, { "carol", "dev", NULL },
        { "alice", "old", "old" },        { "bob", "old", NULL },       { NULL, "ops", "ops" },
        { NULL, "old", "old" },           { NULL, "dev", NULL },        { "alice", "ops", NULL },
        { "alice", "../x", NULL },        { "a/b", "dev", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = scluster_find(home, cases[i].owner, cases[i].name);
        if (cases[i].want) assert_string_equal(got, cases[i].want);
        else assert_null(got);
        free(got);
    }
    char **v = scluster_ids(home, "alice");
    assert_string_equal(v[0], "old");
    assert_string_equal(v[1], "~alice/dev");
    assert_null(v[2]);
    scluster_strv_free(v);
    v = scluster_ids(home, "bob");
    assert_string_equal(v[0], "~bob/dev");
    assert_null(v[1]);
    scluster_strv_free(v);
    v = scluster_ids(home, "carol");
    assert_null(v[0]);
    scluster_strv_free(v);
    v = scluster_ids(home, NULL);
    const char *all[] = { "old", "ops", "~alice/dev", "~bob/dev" };
    for (size_t i = 0; i < 4; i++) assert_string_equal(v[i], all[i]);
    assert_null(v[4]);
    scluster_strv_free(v);
    rmtree(home);
}

/* One claim per directory: a second description cannot take it, in this
 * process or another; the descriptor handed down keeps it after the
 * first holder closes its copy; it goes with the last holder. */
static void test_lock(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbhub-lck-XXXXXX";
    assert_non_null(mkdtemp(dir));
    nb_err_t err;
    assert_int_equal(scluster_locked(dir), 0);
    int fd = scluster_lock(dir, -1, &err);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(scluster_locked(dir), 1);
    assert_int_equal(scluster_lock(dir, -1, &err), -EBUSY);
    assert_non_null(strstr(err.msg, "starting or up"));
    assert_int_equal(scluster_lock(dir, fd, &err), fd);   /* handed down: already ours */
    assert_int_equal(scluster_lock(dir, 0, &err), -EBADF);   /* not the lock file */
    /* A child inherits the claim; the parent's copy goes; still held. */
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) < 0) _exit(2);
        _exit(scluster_lock(dir, fd, &err) == fd ? 0 : 1);
    }
    close(go[0]);
    close(fd);
    assert_int_equal(scluster_locked(dir), 1);
    assert_int_equal(scluster_lock(dir, -1, &err), -EBUSY);
    assert_int_equal(write(go[1], "x", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(go[1]);
    assert_int_equal(scluster_locked(dir), 0);   /* gone with its last holder */
    fd = scluster_lock(dir, -1, &err);
    assert_true(fd >= 0);
    close(fd);
    rmtree(dir);
}

/* What one user has starting or up: claimed or live, not ephemeral, not
 * the one being started, not another user's. */
static void test_usage(void **state)
{
    (void)state;
    char home[] = "/tmp/nbhub-use-XXXXXX";
    assert_non_null(mkdtemp(home));
    char *a = mkcluster(home, "~alice/a", "{\"name\":\"a\",\"owner\":\"alice\",\"workers\":2,\"worker_memory\":\"512m\"}");
    char *b = mkcluster(home, "~alice/b", "{\"name\":\"b\",\"owner\":\"alice\",\"workers\":1,\"worker_memory\":\"1g\"}");
    char *e = mkcluster(home, "~alice/flow-t1", "{\"name\":\"flow-t1\",\"owner\":\"alice\",\"workers\":1,"
                                                "\"worker_memory\":\"4g\",\"ephemeral\":true}");
    char *s = mkcluster(home, "~alice/stopped", "{\"name\":\"stopped\",\"owner\":\"alice\",\"workers\":1,"
                                                "\"worker_memory\":\"4g\"}");
    char *o = mkcluster(home, "~bob/a", "{\"name\":\"a\",\"owner\":\"bob\",\"workers\":1,\"worker_memory\":\"8g\"}");
    /* a Livy session's (livy_cluster.h): sized by livy:, not counted */
    char *l = mkcluster(home, "~alice/livy-3", "{\"name\":\"livy-3\",\"owner\":\"alice\",\"workers\":2,"
                                               "\"worker_memory\":\"1g\",\"livy_session\":3}");
    nb_err_t err;
    int fa = scluster_lock(a, -1, &err), fb = scluster_lock(b, -1, &err), fe = scluster_lock(e, -1, &err),
        fo = scluster_lock(o, -1, &err), fl = scluster_lock(l, -1, &err);
    assert_true(fa >= 0 && fb >= 0 && fe >= 0 && fo >= 0 && fl >= 0);
    struct scluster_usage u;
    scluster_usage(home, "alice", NULL, &u);
    assert_int_equal(u.clusters, 2);
    assert_int_equal(u.memory_mb, 2 * 512 + 1024);
    scluster_usage(home, "alice", "~alice/b", &u);
    assert_int_equal(u.clusters, 1);
    assert_int_equal(u.memory_mb, 1024);
    scluster_usage(home, "bob", NULL, &u);
    assert_int_equal(u.clusters, 1);
    assert_int_equal(u.memory_mb, 8192);
    scluster_usage(home, "carol", NULL, &u);
    assert_int_equal(u.clusters, 0);
    close(fa);
    scluster_usage(home, "alice", NULL, &u);
    assert_int_equal(u.clusters, 1);
    close(fb);
    close(fe);
    close(fo);
    close(fl);
    free(l);
    free(a);
    free(b);
    free(e);
    free(s);
    free(o);
    rmtree(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_argv_env),
        cmocka_unit_test(test_memory_and_port),
        cmocka_unit_test(test_memory_mb),
        cmocka_unit_test(test_progress_summary),
        cmocka_unit_test(test_eventlog),
        cmocka_unit_test(test_eventlog_live),
        cmocka_unit_test(test_eventlog_find),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_find_ids),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
