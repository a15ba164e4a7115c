/* Unit tests for src/sched/sup.c: the process start time that identifies a
 * task's wrapper across daemon restarts (/proc/PID/stat field 22). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sched/sup.h"

/* Field 22 the plain way: what ps(1) calls START, in clock ticks. */
static long long starttime_of(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[1024];
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    char *save = NULL, *tok = strtok_r(strrchr(buf, ')') + 1, " ", &save);   /* field 3 */
    for (int field = 3; field < 22; field++) tok = strtok_r(NULL, " ", &save);
    long long v = strtoll(tok, NULL, 10);
    return v;
}

static void test_start_time_is_field_22(void **state)
{
    (void)state;
    assert_true(sup_proc_start_time(getpid()) > 0);
    assert_int_equal(sup_proc_start_time(getpid()), starttime_of(getpid()));
}

/* It must not change while the process lives and grows (field 23, vsize,
 * does: reading that one made every re-attach after a restart fail). */
static void test_start_time_stable_while_process_grows(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(fds[1]);   /* a parent that fails and exits ends us too (EOF) */
        (void)!read(fds[0], &c, 1);
        void *big = malloc(64 << 20);   /* vsize grows */
        memset(big, 1, 1 << 20);
        (void)!read(fds[0], &c, 1);
        _exit(0);
    }
    close(fds[0]);
    int64_t before = sup_proc_start_time(pid);
    assert_true(before > 0);
    (void)!write(fds[1], "x", 1);
    usleep(100000);
    assert_int_equal(sup_proc_start_time(pid), before);
    assert_int_equal(before, starttime_of(pid));
    (void)!write(fds[1], "x", 1);
    waitpid(pid, NULL, 0);
    assert_int_equal(sup_proc_start_time(pid), 0);   /* gone */
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_time_is_field_22),
        cmocka_unit_test(test_start_time_stable_while_process_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
