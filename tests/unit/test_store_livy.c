/* Unit tests for store_livy: session names unique among live sessions,
 * statement ids from 0 per session, statement transitions from the right
 * and the wrong state, final states ending a session, and batches. */
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

#include "store/store_auth.h"
#include "store/store_livy.h"

typedef struct fx {
    char     dir[64];
    char     path[128];
    store_t *st;
    int64_t  alice, bob;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nbhub-slivy-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/nbhub.db", f->dir);
    nb_err_t err;
    if (store_open(f->path, &f->st, &err) != 0) return -1;
    if (store_user_add(f->st, "alice", NULL, 0, 1, &f->alice, &err)) return -1;
    if (store_user_add(f->st, "bob", NULL, 0, 1, &f->bob, &err)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->st);
    char p[160];
    static const char *const sfx[] = { "nbhub.db", "nbhub.db-wal", "nbhub.db-shm" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void sessions_names_and_states(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a, b, c;
    assert_int_equal(store_livy_session_create(f->st, f->alice, NULL, "etl", "pyspark", "{}", 60, 100, &a, &err), 0);
    assert_int_equal(store_livy_session_create(f->st, f->bob, NULL, "etl", "pyspark", "{}", 0, 100, &b, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "Duplicate session name: etl"));
    assert_int_equal(store_livy_session_create(f->st, f->bob, "carol", NULL, "sql", "{}", 0, 100, &b, &err), 0);
    assert_int_equal(store_livy_session_spawned(f->st, a, "/k.json", 42, 777, "/log", NULL, &err), 0);
    store_livy_session_t s;
    assert_int_equal(store_livy_session_get(f->st, a, &s, &err), 0);
    assert_string_equal(s.owner, "alice");
    assert_string_equal(s.state, "not_started");
    assert_int_equal(s.pid, 42);
    assert_int_equal(s.heartbeat_timeout, 60);
    assert_int_equal(s.last_heartbeat, 100);
    assert_null(s.ended_at);
    store_livy_session_clear(&s);
    assert_int_equal(store_livy_session_heartbeat(f->st, a, 200, &err), 0);
    assert_int_equal(store_livy_session_heartbeat(f->st, a, 150, &err), 0);   /* never goes back */
    assert_int_equal(store_livy_session_set_state(f->st, a, "idle", NULL, 300, &err), 0);
    store_livy_sessions_t l;
    assert_int_equal(store_livy_sessions_list(f->st, f->alice, 1, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].last_heartbeat, 200);
    store_livy_sessions_free(&l);
    /* A final state ends the session and frees its name. */
    assert_int_equal(store_livy_session_set_state(f->st, a, "dead", "timed out", 400, &err), 0);
    assert_int_equal(store_livy_session_create(f->st, f->bob, NULL, "etl", "pyspark", "{}", 0, 500, &c, &err), 0);
    assert_int_equal(store_livy_sessions_list(f->st, 0, 1, &l, &err), 0);
    assert_int_equal(l.n, 2);
    store_livy_sessions_free(&l);
    assert_int_equal(store_livy_sessions_list(f->st, 0, 0, &l, &err), 0);
    assert_int_equal(l.n, 3);
    store_livy_sessions_free(&l);
    assert_int_equal(store_livy_sessions_prune(f->st, 401, NULL, &err), 0);
    assert_int_equal(store_livy_session_get(f->st, a, &s, &err), -ENOENT);
    assert_string_equal(err.msg, "Session '1' not found.");
    assert_int_equal(store_livy_session_delete(f->st, c, &err), 0);
    assert_int_equal(store_livy_session_delete(f->st, c, &err), -ENOENT);
}

static void statements(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a, b, id;
    assert_int_equal(store_livy_session_create(f->st, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &a, &err), 0);
    assert_int_equal(store_livy_session_create(f->st, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &b, &err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_livy_stmt_add(f->st, a, "pyspark", "1+1", &id, &err), 0);
        assert_int_equal(id, i);
    }
    assert_int_equal(store_livy_stmt_add(f->st, b, "sql", "SELECT 1", &id, &err), 0);
    assert_int_equal(id, 0);
    assert_int_equal(store_livy_stmt_add(f->st, 99, "sql", "x", &id, &err), -ENOENT);
    assert_int_equal(store_livy_stmt_start(f->st, a, 0, "m0", 10, &err), 0);
    assert_int_equal(store_livy_stmt_start(f->st, a, 0, "m0", 10, &err), -ESTALE);
    assert_int_equal(store_livy_stmt_progress(f->st, a, 0, 0.5, &err), 0);
    assert_int_equal(store_livy_stmt_finish(f->st, a, 0, "available", "{\"status\": \"ok\"}", 20, &err), 0);
    assert_int_equal(store_livy_stmt_finish(f->st, a, 0, "error", NULL, 20, &err), -ESTALE);
    assert_int_equal(store_livy_stmt_cancelling(f->st, a, 1, &err), 0);
    assert_int_equal(store_livy_stmt_finish(f->st, a, 1, "cancelled", NULL, 30, &err), 0);
    assert_int_equal(store_livy_stmt_cancelling(f->st, a, 1, &err), -ESTALE);
    store_livy_stmts_t l;
    assert_int_equal(store_livy_stmts_list(f->st, a, &l, &err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0].state, "available");
    assert_string_equal(l.v[0].msg_id, "m0");
    assert_true(l.v[0].progress == 1.0);
    assert_int_equal(l.v[0].started_at, 10);
    assert_int_equal(l.v[0].completed_at, 20);
    assert_string_equal(l.v[1].state, "cancelled");
    assert_int_equal(l.v[1].started_at, 30);
    assert_string_equal(l.v[2].state, "waiting");
    assert_null(l.v[2].output_json);
    store_livy_stmts_free(&l);
    /* Statements go with their session. */
    assert_int_equal(store_livy_session_delete(f->st, a, &err), 0);
    store_livy_stmt_t s;
    assert_int_equal(store_livy_stmt_get(f->st, a, 0, &s, &err), -ENOENT);
}

static void batches(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a;
    assert_int_equal(store_livy_batch_create(f->st, 0, f->bob, NULL, "job", "{\"file\": \"x.py\"}", 5, &a, &err), 0);
    assert_int_equal(store_livy_batch_spawned(f->st, a, 123, 456, "/b.log", NULL, &err), 0);
    assert_int_equal(store_livy_batch_set_state(f->st, a, "running", -1, NULL, 6, &err), 0);
    store_livy_batch_t b;
    assert_int_equal(store_livy_batch_get(f->st, a, &b, &err), 0);
    assert_false(b.has_exit_code);
    assert_null(b.ended_at);
    store_livy_batch_clear(&b);
    assert_int_equal(store_livy_batch_set_state(f->st, a, "success", 0, NULL, 7, &err), 0);
    assert_int_equal(store_livy_batch_get(f->st, a, &b, &err), 0);
    assert_true(b.has_exit_code);
    assert_int_equal(b.exit_code, 0);
    assert_int_equal(b.ended_at, 7);
    assert_string_equal(b.owner, "bob");
    store_livy_batch_clear(&b);
    store_livy_batches_t l;
    assert_int_equal(store_livy_batches_list(f->st, f->alice, 0, &l, &err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_livy_batches_list(f->st, 0, 0, &l, &err), 0);
    assert_int_equal(l.n, 1);
    store_livy_batches_free(&l);
    assert_int_equal(store_livy_batch_delete(f->st, a, &err), 0);
}

/* Ids above a high-water mark and above every row: a deleted session's
 * id is not handed out again. */
static void session_ids_above(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a, b, max;
    assert_int_equal(store_livy_max_id(f->st, STORE_LIVY_SESSION, &max, &err), 0);
    assert_int_equal(max, 0);
    assert_int_equal(store_livy_session_create_above(f->st, 0, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &a, &err), 0);
    assert_int_equal(a, 1);
    assert_int_equal(store_livy_session_delete(f->st, a, &err), 0);
    assert_int_equal(store_livy_session_create_above(f->st, 1, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &b, &err), 0);
    assert_int_equal(b, 2);
    assert_int_equal(store_livy_session_create_above(f->st, 7, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &b, &err), 0);
    assert_int_equal(b, 8);
    /* the rows win over a lower mark */
    assert_int_equal(store_livy_session_create_above(f->st, 0, f->alice, NULL, NULL, "pyspark", "{}", 0, 1, &b, &err), 0);
    assert_int_equal(b, 9);
    assert_int_equal(store_livy_max_id(f->st, STORE_LIVY_SESSION, &max, &err), 0);
    assert_int_equal(max, 9);
}

/* The same for batches: a batch whose row went (its user removed) does
 * not lend its id to the next one, with or without a mark. */
static void batch_ids_above(void **state)
{
    fx_t *f = *state;
    nb_err_t err;
    int64_t a, b, max;
    assert_int_equal(store_livy_batch_create(f->st, 0, f->alice, NULL, NULL, "{}", 1, &a, &err), 0);
    assert_int_equal(a, 1);
    assert_int_equal(store_livy_batch_delete(f->st, a, &err), 0);
    assert_int_equal(store_livy_max_id(f->st, STORE_LIVY_BATCH, &max, &err), 0);
    assert_int_equal(max, 0);
    assert_int_equal(store_livy_batch_create(f->st, 1, f->bob, NULL, NULL, "{}", 1, &b, &err), 0);
    assert_int_equal(b, 2);
    assert_int_equal(store_livy_batch_create(f->st, 0, f->bob, NULL, NULL, "{}", 1, &b, &err), 0);
    assert_int_equal(b, 3);
    store_livy_batch_t r;
    assert_int_equal(store_livy_batch_get(f->st, a, &r, &err), -ENOENT);
    assert_string_equal(err.msg, "Session '1' not found.");
    /* sessions count apart */
    assert_int_equal(store_livy_max_id(f->st, STORE_LIVY_SESSION, &max, &err), 0);
    assert_int_equal(max, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = { T(sessions_names_and_states), T(statements), T(batches),
                                        T(session_ids_above), T(batch_ids_above) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
