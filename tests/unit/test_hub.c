/* Unit tests for the hub's parts that need no notebook server: the hub:
 * section of nbhub.yaml (defaults, profiles, every error at its position),
 * server names, who may use a profile, the store's servers rows, and what
 * hub_new / hub_adopt make of rows left by an earlier nbhub (a process that
 * is gone becomes stopped; JupyterHub's server model; nbhub's JSON).  The
 * real servers are tests/blackbox/test_hub.py. */
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

#include "hub/hub.h"
#include "hub/profile.h"
#include "store/store_auth.h"
#include "store/store_hub.h"
#include "util/buf.h"
#include "util/xmalloc.h"

/* Parse text as the value of hub: (a whole file "hub: ..."). */
static int parse(const char *text, hub_conf_t *c, nb_errlist_t *errs)
{
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    assert_true(yaml_parser_load(&p, &doc));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_int_equal(root->type, YAML_MAPPING_NODE);
    yaml_node_pair_t *pr = root->data.mapping.pairs.start;
    hub_conf_init(c);
    size_t before = errlist_count(errs);
    hub_conf_parse("nbhub.yaml", &doc, yaml_document_get_node(&doc, pr->value), c, errs);
    hub_conf_finish(c);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return errlist_count(errs) > before ? -EINVAL : 0;
}

static void test_defaults(void **state)
{
    (void)state;
    hub_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse("hub: {}\n", &c, &errs), 0);
    assert_int_equal(c.nprofiles, 1);
    assert_string_equal(c.profiles[0].name, "default");
    assert_null(c.profiles[0].python);
    assert_null(c.profiles[0].command);
    assert_true(c.profiles[0].allow_all);
    assert_int_equal(c.start_timeout_ms, HUB_START_TIMEOUT_MS_DEFAULT);
    assert_int_equal(c.max_servers_per_user, HUB_MAX_SERVERS_DEFAULT);
    assert_int_equal(c.named_servers, 1);
    assert_int_equal(c.admin_access, 0);
    assert_int_equal(c.cull_keep_busy, 1);
    hub_conf_clear(&c);
    errlist_free(&errs);
}

static void test_profiles(void **state)
{
    (void)state;
    hub_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    int rc = parse("hub:\n"
                   "  start_timeout: 90s\n"
                   "  max_servers_per_user: 0\n"
                   "  admin_access: true\n"
                   "  cull: {timeout: 1h, keep_busy: false, max_age: 1d}\n"
                   "  profiles:\n"
                   "    - name: small\n"
                   "      description: 1 CPU\n"
                   "      python: /opt/lab/bin/python\n"
                   "      limits: {cpu: 1, memory: 2g}\n"
                   "      env: {A: b}\n"
                   "      default_url: /lab\n"
                   "      allow: {users: [alice], groups: [ds], admins: false}\n"
                   "      spark: {workers: 2, worker_memory: 1g, connect: false}\n"
                   "    - {name: cmd, command: [js, '--port={port}', '{base_url}', '{token}']}\n",
                   &c, &errs);
    if (rc) {
        buf_t b = BUF_INIT;
        errlist_format(&errs, &b);
        fail_msg("%s", b.data);
    }
    assert_int_equal(c.nprofiles, 2);
    hub_profile_t *p = &c.profiles[0];
    assert_string_equal(p->python, "/opt/lab/bin/python");
    assert_int_equal(p->limits.cpu_milli, 1000);
    assert_true(p->limits.memory == 2LL << 30);
    assert_string_equal(p->env[0], "A=b");
    assert_null(p->env[1]);
    assert_false(p->allow_all);
    assert_false(p->allow_admins);
    assert_int_equal(p->spark.workers, 2);
    assert_false(p->spark.connect);
    assert_int_equal(c.start_timeout_ms, 90000);
    assert_int_equal(c.max_servers_per_user, 0);
    assert_true(c.admin_access);
    assert_true(c.cull_timeout_ms == 3600000);
    assert_false(c.cull_keep_busy);
    assert_true(c.cull_max_age_ms == 86400000);
    assert_string_equal(c.profiles[1].command[1], "--port={port}");
    /* who may use small: alice, group ds; not admins (admins: false) */
    const char *ds[] = { "ds", NULL }, *other[] = { "x", NULL };
    assert_true(hub_profile_allowed(p, "alice", NULL, 0));
    assert_true(hub_profile_allowed(p, "carol", ds, 0));
    assert_false(hub_profile_allowed(p, "carol", other, 0));
    assert_false(hub_profile_allowed(p, "root", NULL, 1));
    assert_true(hub_profile_allowed(&c.profiles[1], "anyone", NULL, 0));
    hub_conf_clear(&c);
    errlist_free(&errs);
}

static void test_errors_at_their_positions(void **state)
{
    (void)state;
    hub_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse("hub:\n"
                           "  named_servers: maybe\n"
                           "  profiles:\n"
                           "    - {name: a, python: /p, command: [x, '{port}']}\n"
                           "    - {name: a}\n"
                           "    - {name: b, allow: {user: [x]}, spark: {workers: 0}}\n",
                           &c, &errs), -EINVAL);
    const char *want[] = {
        "nbhub.yaml:2:18: 'hub.named_servers' must be true or false",
        "nbhub.yaml:4:38: a profile has either 'python' or 'command', not both",
        "nbhub.yaml:5:7: a second profile named 'a'",
        "nbhub.yaml:6:25: unknown key 'allow.user' (did you mean 'users'?)",
        "nbhub.yaml:6:54: 'spark.workers' must be at least 1",
    };
    assert_int_equal(errlist_count(&errs), sizeof want / sizeof *want);
    for (size_t i = 0; i < errs.n; i++) {
        char *m = errlist_format_one(&errs, i);
        int found = 0;
        for (size_t k = 0; k < sizeof want / sizeof *want; k++) found |= strcmp(m, want[k]) == 0;
        if (!found) fail_msg("unexpected: %s", m);
        free(m);
    }
    hub_conf_clear(&c);
    errlist_free(&errs);
}

static void test_server_names(void **state)
{
    (void)state;
    assert_true(hub_server_name_valid(""));
    assert_true(hub_server_name_valid("dev"));
    assert_true(hub_server_name_valid("gpu-1.x_y"));
    assert_false(hub_server_name_valid(NULL));
    assert_false(hub_server_name_valid("Dev"));
    assert_false(hub_server_name_valid("-x"));
    assert_false(hub_server_name_valid("a/b"));
    assert_false(hub_server_name_valid("lab"));
    assert_false(hub_server_name_valid("api"));
    assert_false(hub_server_name_valid("default"));
    char longname[70];
    memset(longname, 'a', 64);
    longname[64] = 0;
    assert_false(hub_server_name_valid(longname));
    longname[63] = 0;
    assert_true(hub_server_name_valid(longname));
}

/* Rows an earlier nbhub left: one 'running' whose process is gone, one
 * stopped.  hub_new loads them, hub_adopt marks the first stopped (and
 * runs the stopped hook), the models say so. */
static int stopped_calls;
static void on_stopped(hub_t *h, hub_server_t *s, void *ud)
{
    (void)h;
    (void)ud;
    assert_string_equal(hub_server_name(s), "dev");
    stopped_calls++;
}

static void test_rows_and_adoption(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbhub-test-hub-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *db = xasprintf("%s/nbhub.db", dir);
    store_t *st;
    nb_err_t err;
    assert_int_equal(store_open(db, &st, &err), 0);
    int64_t uid, id1, id2;
    assert_int_equal(store_user_add(st, "ann@x", NULL, 0, 1, &uid, &err), 0);
    assert_int_equal(store_server_begin(st, uid, "dev", "small", NULL, "{\"profile\":\"small\"}", 10, &id1, &err), 0);
    /* a second start while starting: refused */
    assert_int_equal(store_server_begin(st, uid, "dev", "small", NULL, NULL, 11, NULL, &err), -ESTALE);
    /* pid 1's start time is never 12345 */
    assert_int_equal(store_server_spawned(st, id1, "127.0.0.1", 40000, 1, 12345, NULL, NULL, &err), 0);
    assert_int_equal(store_server_set_state(st, id1, "running", NULL, NULL, 20, &err), 0);
    assert_int_equal(store_server_begin(st, uid, "", "small", NULL, NULL, 30, &id2, &err), 0);
    assert_int_equal(store_server_set_state(st, id2, "failed", "boom", "start timed out", 40, &err), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    hub_opts_t o = { .loop = &loop, .store = st, .home = dir, .self_exe = "/bin/false" };
    hub_t *h;
    assert_int_equal(hub_new(&o, &h, &err), 0);
    hub_hooks_t hk = { NULL, NULL, on_stopped, NULL, NULL };
    hub_add_hooks(h, &hk);
    hub_server_t *s = hub_server_find(h, "ann@x", "dev");
    assert_non_null(s);
    assert_int_equal(hub_server_state(s), HUB_RUNNING);
    assert_int_equal(hub_adopt(h), 0);
    assert_int_equal(hub_server_state(s), HUB_STOPPED);
    assert_int_equal(stopped_calls, 1);
    /* why, in memory and on the row; the failed row's reason was loaded */
    assert_string_equal(hub_server_stop_reason(s), "found gone after a restart of nbhub");
    store_server_t gone;
    assert_int_equal(store_server_get(st, id1, &gone, &err), 0);
    assert_string_equal(gone.stop_reason, "found gone after a restart of nbhub");
    store_server_clear(&gone);
    assert_string_equal(hub_server_stop_reason(hub_server_by_id(h, id2)), "start timed out");
    /* names quoted as JupyterHub does: '@' stays in paths, is %40 in the client id */
    assert_string_equal(hub_server_prefix(s), "/user/ann@x/dev/");
    char *cid = hub_server_client_id(s);
    assert_string_equal(cid, "jupyterhub-user-ann%40x-dev");
    free(cid);
    json_t *m = hub_server_model(h, s);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "dev");
    assert_true(json_is_false(json_object_get(m, "ready")));
    assert_true(json_is_true(json_object_get(m, "stopped")));
    assert_true(json_is_null(json_object_get(m, "pending")));
    assert_string_equal(json_string_value(json_object_get(m, "progress_url")),
                        "/hub/api/users/ann@x/servers/dev/progress");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "user_options"), "profile")), "small");
    json_decref(m);
    hub_server_t *d = hub_server_find(h, "ann@x", "");
    json_t *j = hub_server_json(h, d);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "failed");
    assert_string_equal(json_string_value(json_object_get(j, "error")), "boom");
    assert_non_null(json_object_get(j, "log_tail"));
    json_decref(j);
    hub_target_t t;
    assert_int_equal(hub_server_target(s, &t), -ENOTCONN);
    /* the store agrees */
    store_server_t row;
    assert_int_equal(store_server_get(st, id1, &row, &err), 0);
    assert_string_equal(row.state, "stopped");
    store_server_clear(&row);
    /* without a hub URL nothing starts */
    hub_user_t u = { uid, "ann@x", 0 };
    assert_int_equal(hub_server_start(h, &u, "dev", NULL, NULL, &err), -ENOTSUP);
    hub_set_urls(h, "http://127.0.0.1:1", NULL);
    assert_int_equal(hub_server_start(h, &u, "lab", NULL, NULL, &err), -EINVAL);
    assert_int_equal(hub_server_start(h, &u, "x", "{\"profile\": \"nope\"}", NULL, &err), -EINVAL);
    assert_int_equal(hub_server_start(h, &u, "x", "[1]", NULL, &err), -EINVAL);
    hub_shutdown(h, 0, NULL, NULL);
    hub_free(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(st);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_errors_at_their_positions),
        cmocka_unit_test(test_server_names),
        cmocka_unit_test(test_rows_and_adoption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
