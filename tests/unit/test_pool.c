/* Unit test for the warm kernel pool against real ipykernels (the .venv's
 * python3 kernel: run through scripts/run-tests.sh, which sets VIRTUAL_ENV).
 * The test binary doubles as nbhub's __kernel-exec trampoline, since kproc
 * spawns kernels through our own executable. */
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

#include "cli/cli.h"
#include "kernel/kmgr.h"
#include "kernel/kspec.h"
#include "sched/pool.h"

struct t {
    uv_loop_t  loop;
    pool_t    *pool;
    kmgr_t    *km;
    char       msg_id[33];
    int        got_output, stopped, pool_closed;
    const char *code;         /* the borrower's cell; default print(6 * 7) */
};

/* Run the loop until cond is true or ms pass. */
static int spin(struct t *t, int *cond, unsigned ms)
{
    uint64_t end = uv_now(&t->loop) + ms;
    while (!*cond && uv_now(&t->loop) < end) {
        uv_run(&t->loop, UV_RUN_ONCE);
        uv_update_time(&t->loop);
    }
    return *cond;
}

static void on_ready(kmgr_t *km, int status, const char *e, void *ud)
{
    struct t *t = ud;
    assert_int_equal(status, 0);
    kmgr_execute(km, t->code ? t->code : "print(6 * 7)", 1, t->msg_id);
}

static void on_msg(kmgr_t *km, enum kchan ch, const kmsg_t *m, void *ud)
{
    struct t *t = ud;
    if (ch == KCHAN_IOPUB && m->parent_id && strcmp(m->parent_id, t->msg_id) == 0 &&
        strcmp(m->msg_type, "stream") == 0) {
        const char *text = json_string_value(json_object_get(kmsg_content(m), "text"));
        t->got_output = text && strcmp(text, "42\n") == 0;
        kmgr_shutdown(km, 2000);   /* as `nbhub run` ends: stops it only if attached with shutdown_kernel */
    }
}

static void on_stopped(kmgr_t *km, void *ud) { ((struct t *)ud)->stopped = 1; }
static void on_pool_closed(void *ud) { ((struct t *)ud)->pool_closed = 1; }

static void test_pool_lend_return_refill(void **state)
{
    (void)state;
    struct t t;
    memset(&t, 0, sizeof t);
    uv_loop_init(&t.loop);
    t.pool = pool_new(&t.loop);
    nb_err_t err;
    assert_int_equal(pool_set_size(t.pool, "no-such-kernel", 1, &err), -ENOENT);
    assert_int_equal(pool_set_size(t.pool, "python3", 1, &err), 0);
    pool_kernel_t *k = NULL;
    assert_int_equal(pool_take(t.pool, "python3", &k), -EAGAIN);   /* not ready yet: never blocks */

    int ready = 0;
    uint64_t end = uv_now(&t.loop) + 60000;
    while (!(ready = pool_ready(t.pool, "python3") == 1) && uv_now(&t.loop) < end) {
        uv_run(&t.loop, UV_RUN_ONCE);
        uv_update_time(&t.loop);
    }
    assert_true(ready);
    assert_int_equal(pool_take(t.pool, "python3", &k), 0);
    assert_int_equal(pool_ready(t.pool, "python3"), 0);
    assert_true(pool_kernel_pid(k) > 0);

    /* The borrower attaches like `nbhub run --existing-kernel F --kernel-pid P`. */
    struct kmgr_cbs cbs = { on_ready, on_msg, NULL, on_stopped };
    assert_int_equal(kmgr_attach(&t.loop, pool_kernel_conn(k), pool_kernel_pid(k), 1, 30000,
                                 &cbs, &t, &t.km, &err), 0);
    assert_true(spin(&t, &t.stopped, 30000));
    assert_true(t.got_output);
    pool_return(t.pool, k);

    /* A replacement was started at take time and becomes ready. */
    end = uv_now(&t.loop) + 60000;
    while (!(ready = pool_ready(t.pool, "python3") == 1) && uv_now(&t.loop) < end) {
        uv_run(&t.loop, UV_RUN_ONCE);
        uv_update_time(&t.loop);
    }
    assert_true(ready);

    pool_close(t.pool, on_pool_closed, &t);
    assert_true(spin(&t, &t.pool_closed, 30000));
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t.loop), 0);
}

/* A task's borrower does not stop the kernel (no --shutdown-kernel): the
 * pool asks it when it is given back, and it exits by itself, running its
 * atexit handlers, before the grace would send SIGTERM (which skips them). */
static void test_pool_return_asks_shutdown(void **state)
{
    (void)state;
    struct t t;
    memset(&t, 0, sizeof t);
    char mark[] = "/tmp/nbhub-pool-atexit-XXXXXX";
    int fd = mkstemp(mark);
    assert_true(fd >= 0);
    close(fd);
    unlink(mark);
    char code[256];
    snprintf(code, sizeof code,
             "import atexit\natexit.register(lambda: open(%s%s%s, 'w').write('clean'))\nprint(6 * 7)",
             "'", mark, "'");
    t.code = code;
    uv_loop_init(&t.loop);
    t.pool = pool_new(&t.loop);
    nb_err_t err;
    assert_int_equal(pool_set_size(t.pool, "python3", 1, &err), 0);
    uint64_t end = uv_now(&t.loop) + 60000;
    while (pool_ready(t.pool, "python3") != 1 && uv_now(&t.loop) < end) {
        uv_run(&t.loop, UV_RUN_ONCE);
        uv_update_time(&t.loop);
    }
    pool_kernel_t *k = NULL;
    assert_int_equal(pool_take(t.pool, "python3", &k), 0);
    struct kmgr_cbs cbs = { on_ready, on_msg, NULL, on_stopped };
    assert_int_equal(kmgr_attach(&t.loop, pool_kernel_conn(k), pool_kernel_pid(k), 0, 30000,
                                 &cbs, &t, &t.km, &err), 0);
    assert_true(spin(&t, &t.stopped, 30000));
    assert_true(t.got_output);
    pool_return(t.pool, k);

    /* The grace is 3 s: an atexit mark within 2.5 s was not a SIGTERM. */
    int clean = 0;
    end = uv_now(&t.loop) + 2500;
    while (!(clean = access(mark, F_OK) == 0) && uv_now(&t.loop) < end) {
        uv_run(&t.loop, UV_RUN_NOWAIT);
        usleep(10000);
        uv_update_time(&t.loop);
    }
    assert_true(clean);
    unlink(mark);

    pool_close(t.pool, on_pool_closed, &t);
    assert_true(spin(&t, &t.pool_closed, 30000));
    uv_run(&t.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&t.loop), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "__kernel-exec") == 0) return cmd_kernel_exec(argc - 1, argv + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_lend_return_refill),
        cmocka_unit_test(test_pool_return_asks_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
