/* fsutil: the daemon writing and reading in directories a user's task owns
 * (isolation: system) — no write through a planted symlink, no read of a
 * link, FIFO or second hard link. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/xmalloc.h"

static char *tmpdir(void)
{
    char tpl[] = "/tmp/nbhub-test-fsutil-XXXXXX";
    char *d = mkdtemp(tpl);
    assert_non_null(d);
    return xstrdup(d);
}

static void test_atomic_write_ignores_planted_link(void **state)
{
    (void)state;
    char *d = tmpdir(), *victim = xasprintf("%s/victim", d), *path = xasprintf("%s/params.json", d);
    char *tmp = xasprintf("%s.nbhub-tmp-%ld", path, (long)getpid());
    nb_err_t err;
    assert_int_equal(fs_write_atomic(victim, "precious", 8, 0, &err), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    assert_int_equal(fs_write_atomic(path, "{}", 2, 0, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_all(victim, &text, &len, &err), 0);
    assert_string_equal(text, "precious");
    free(text);
    assert_int_equal(fs_read_all(path, &text, &len, &err), 0);
    assert_string_equal(text, "{}");
    free(text);
    assert_int_equal(fs_rm_tree(d), 0);
    assert_false(fs_exists(d));
    free(d), free(victim), free(path), free(tmp);
}

static void test_open_regular_refuses_links_fifos_and_hard_links(void **state)
{
    (void)state;
    char *d = tmpdir(), *file = xasprintf("%s/f", d), *lnk = xasprintf("%s/l", d), *fifo = xasprintf("%s/p", d);
    char *hard = xasprintf("%s/h", d), *plain = xasprintf("%s/plain", d);
    nb_err_t err;
    assert_int_equal(fs_write_atomic(file, "x", 1, 0, &err), 0);
    assert_int_equal(fs_write_atomic(plain, "ok", 2, 0, &err), 0);
    assert_int_equal(symlink(file, lnk), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(link(file, hard) == 0 ? 0 : -1, 0);
    assert_int_equal(fs_open_regular(lnk, O_RDONLY, 0, NULL), -ELOOP);
    assert_int_equal(fs_open_regular(fifo, O_RDONLY, 0, NULL), -EINVAL);   /* and it did not block */
    assert_int_equal(fs_open_regular(hard, O_RDONLY, 0, NULL), -EINVAL);
    /* a log opened for appending through a link is refused too */
    assert_true(fs_open_regular(lnk, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL) < 0);
    int fd = fs_open_regular(plain, O_RDONLY, 0, NULL);
    assert_true(fd >= 0);
    close(fd);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_regular(plain, 1, &text, &len, &err), -EFBIG);
    assert_int_equal(fs_read_regular(plain, 16, &text, &len, &err), 0);
    assert_string_equal(text, "ok");
    free(text);
    fs_rm_tree(d);
    free(d), free(file), free(lnk), free(fifo), free(hard), free(plain);
}

/* What the daemon reads back from a directory an account owns: the
 * account's own file (or root's), nobody else's; the size is refused from
 * fstat before any read (a sparse 10 GB file costs nothing to make). */
static void test_read_owned_checks_owner_and_size_first(void **state)
{
    (void)state;
    char *d = tmpdir(), *mine = xasprintf("%s/mine", d), *other = xasprintf("%s/other", d);
    char *huge = xasprintf("%s/huge", d), *fifo = xasprintf("%s/p", d);
    nb_err_t err;
    assert_int_equal(fs_write_atomic(mine, "{}", 2, 0, &err), 0);
    assert_int_equal(fs_write_atomic(other, "{}", 2, 0, &err), 0);
    int fd = open(huge, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)10 << 30), 0);
    close(fd);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char *text = NULL;
    size_t len = 0;
    long me = (long)getuid();
    assert_int_equal(fs_read_owned(mine, me, 64, &text, &len, &err), 0);
    assert_string_equal(text, "{}");
    free(text);
    assert_int_equal(fs_read_owned(mine, -1, 64, &text, &len, &err), 0);
    free(text);
    assert_int_equal(fs_read_owned(huge, me, 64, &text, &len, &err), -EFBIG);
    assert_int_equal(fs_read_owned(fifo, me, 64, &text, &len, &err), -EINVAL);
    if (me == 0) {
        /* root's own file is accepted for any account; another account's is not */
        assert_int_equal(fs_read_owned(mine, 4242, 64, &text, &len, &err), 0);
        free(text);
        assert_int_equal(chown(other, 4243, 4243), 0);
        assert_int_equal(fs_read_owned(other, 4242, 64, &text, &len, &err), -EPERM);
        assert_non_null(strstr(err.msg, "owned by uid 4243"));
    } else {
        assert_int_equal(fs_read_owned(mine, me + 1, 64, &text, &len, &err), -EPERM);
    }
    fs_rm_tree(d);
    free(d), free(mine), free(other), free(huge), free(fifo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_write_ignores_planted_link),
        cmocka_unit_test(test_open_regular_refuses_links_fifos_and_hard_links),
        cmocka_unit_test(test_read_owned_checks_owner_and_size_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
