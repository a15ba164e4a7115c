/* Unit tests for the hub's Spark clusters and culling, the parts that need
 * no JVM and no notebook server: cluster names of servers, the JSON of a
 * server's cluster, sowned's refusals (name taken, quota, a server's
 * cluster not counted), jupyter-server's times.  The real thing is
 * tests/blackbox/test_hub_spark.py and test_hub_cull.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/hub_cull.h"
#include "hub/hub_spark.h"
#include "spark/scluster.h"
#include "spark/sowned.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

static void test_cluster_names(void **state)
{
    (void)state;
    char *n = hub_spark_cluster_name("");
    assert_string_equal(n, "server");
    free(n);
    n = hub_spark_cluster_name(NULL);
    assert_string_equal(n, "server");
    free(n);
    n = hub_spark_cluster_name("gpu-1.x");
    assert_string_equal(n, "server-gpu-1.x");
    free(n);
    /* Server names go to 63 characters, cluster names to 64: long ones
     * keep a readable part and a digest, and stay apart. */
    char a[64], b[64];
    memset(a, 'a', 63);
    a[63] = 0;
    memcpy(b, a, sizeof b);
    b[62] = 'b';
    char *na = hub_spark_cluster_name(a), *nb = hub_spark_cluster_name(b);
    assert_true(scluster_name_ok(na));
    assert_true(scluster_name_ok(nb));
    assert_true(strlen(na) <= 64);
    assert_string_not_equal(na, nb);
    assert_int_equal(strncmp(na, "server-aaaa", 11), 0);
    free(na);
    free(nb);
}

static void test_parse_time(void **state)
{
    (void)state;
    /* 2026-12-06T08:40:00Z = 1796546400 */
    assert_true(hub_cull_parse_time("2026-12-06T08:40:00Z") == 1796546400LL * 1000000);
    assert_true(hub_cull_parse_time("2026-12-06T08:40:00.123456Z") == 1796546400LL * 1000000 + 123456);
    assert_true(hub_cull_parse_time("2026-12-06T08:40:00.5+00:00") == 1796546400LL * 1000000 + 500000);
    assert_true(hub_cull_parse_time("2026-12-06T09:40:00+01:00") == 1796546400LL * 1000000);
    assert_true(hub_cull_parse_time("2026-12-06T08:40:00") == 1796546400LL * 1000000);
    assert_true(hub_cull_parse_time("yesterday") == -1);
    assert_true(hub_cull_parse_time("2026-12-06T08:40:00Zjunk") == -1);
    assert_true(hub_cull_parse_time(NULL) == -1);
}

static char *mkhome(void)
{
    char tmpl[] = "/tmp/nbhub-hubspark-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return xstrdup(d);
}

/* A cluster directory of owner's with a config (server: NULL = a user's). */
static char *mkcluster(const char *home, const char *owner, const char *name, const char *server)
{
    char *id = scluster_id(owner, name), *dir = scluster_dir(home, id);
    nb_err_t err;
    assert_int_equal(fs_mkdir_p(dir, 0700, &err), 0);
    sowned_spec_t s = { .owner = owner, .name = name, .workers = 2, .cores = 1, .worker_memory = "512m",
                        .server = server };
    json_t *cfg = sowned_config(&s);
    char *p = xasprintf("%s/config.json", dir);
    assert_int_equal(json_dump_file(cfg, p, 0), 0);
    json_decref(cfg);
    free(p);
    free(id);
    return dir;
}

static void on_exit_cb(void *ud, int64_t status, int sig)
{
    int *done = ud;
    *done = 1 + (int)status + sig;
}

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

static void test_sowned_refusals_and_quota(void **state)
{
    (void)state;
    char *home = mkhome();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sowned_env_t e = { .loop = &loop, .home = home, .self_exe = "/bin/true" };
    sowned_quota_t q = { 1, 1024 };
    nb_err_t err;
    /* alice's "dev" is starting (its claim is held): a second start of it
     * is -EBUSY, and with it she is at her one cluster. */
    char *dev = mkcluster(home, "alice", "dev", NULL);
    int lk = scluster_lock(dev, -1, &err);
    assert_true(lk >= 0);
    sowned_spec_t s = { .owner = "alice", .name = "dev", .workers = 1, .cores = 1, .worker_memory = "512m" };
    assert_int_equal(sowned_create(&e, &s, &q, NULL, NULL, &err), -EBUSY);
    s.name = "other";
    assert_int_equal(sowned_create(&e, &s, &q, NULL, NULL, &err), -EDQUOT);
    assert_non_null(strstr(err.msg, "max_clusters_per_user"));
    /* Bad specs, before anything is touched. */
    s.workers = 0;
    assert_int_equal(sowned_create(&e, &s, &q, NULL, NULL, &err), -EINVAL);
    s.workers = 1;
    s.worker_memory = "lots";
    assert_int_equal(sowned_create(&e, &s, &q, NULL, NULL, &err), -EINVAL);
    s.worker_memory = "512m";
    s.name = "../x";
    assert_int_equal(sowned_create(&e, &s, &q, NULL, NULL, &err), -EINVAL);
    /* A notebook server's cluster (config "server") does not count: with
     * one starting, alice still has room for "other" under q... */
    close(lk);
    char *srv = mkcluster(home, "alice", "server", "");
    int lk2 = scluster_lock(srv, -1, &err);
    assert_true(lk2 >= 0);
    struct scluster_usage u;
    scluster_usage(home, "alice", NULL, &u);
    assert_int_equal(u.clusters, 0);
    s.name = "other";
    int done = 0;
    /* ... so the start goes ahead (`/bin/true spark up ...` here) */
    assert_int_equal(sowned_create(&e, &s, &q, on_exit_cb, &done, &err), 0);
    /* The child's handle does not keep a loop running (nbhub serve's stop
     * does not wait for it): a timer does, while we wait. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, noop_timer, 10, 10);
    while (!done) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    assert_int_equal(done, 1);   /* called once, exit 0 */
    /* the config says what was asked */
    char *od = scluster_dir(home, "~alice/other");
    json_t *cfg = scluster_config(od);
    assert_string_equal(json_string_value(json_object_get(cfg, "owner")), "alice");
    assert_int_equal(json_integer_value(json_object_get(cfg, "workers")), 1);
    assert_null(json_object_get(cfg, "server"));
    json_decref(cfg);
    /* Removing what is not up: -ENOENT, nothing started. */
    assert_int_equal(sowned_remove(&e, "~alice/other", NULL, NULL, &err), -ENOENT);

    /* The server JSON's view of a cluster. */
    json_t *j = hub_spark_json(home, "alice", "server");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "starting");   /* claimed */
    assert_string_equal(json_string_value(json_object_get(j, "ui_url")), "/spark/~alice/server/ui/");
    assert_true(json_is_null(json_object_get(j, "master_url")));
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
    json_decref(j);
    close(lk2);
    j = hub_spark_json(home, "alice", "server");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "stopped");
    json_decref(j);
    assert_null(hub_spark_json(home, "alice", NULL));

    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char *cmd = xasprintf("rm -rf '%s'", home);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(od);
    free(dev);
    free(srv);
    free(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_names),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_sowned_refusals_and_quota),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
