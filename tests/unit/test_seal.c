/* Unit tests for seal: provider secrets sealed at rest (AES-256-GCM bound
 * to their row) and the key file beside the database. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/seal.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

static char *tmp_home(void)
{
    char t[] = "/tmp/nbhub-seal-XXXXXX";
    assert_non_null(mkdtemp(t));
    return xstrdup(t);
}

static void test_roundtrip_and_row_binding(void **state)
{
    (void)state;
    seal_key_t k, other;
    memset(k.k, 7, sizeof k.k);
    memset(other.k, 8, sizeof other.k);
    const char *rt = "eyJhbGciOiJIUzI1NiJ9.refresh-token-of-alice.sig";
    char *s1 = seal_value(&k, "sessions/1", rt), *s2 = seal_value(&k, "sessions/1", rt);
    assert_true(seal_is_sealed(s1));
    assert_null(strstr(s1, "refresh-token"));
    assert_string_not_equal(s1, s2);   /* a fresh nonce per value */
    char *p = NULL;
    assert_int_equal(seal_open(&k, "sessions/1", s1, &p), 0);
    assert_string_equal(p, rt);
    seal_clear_free(p);
    /* Copied to another row, or opened with another key: refused. */
    assert_int_equal(seal_open(&k, "sessions/2", s1, &p), -EBADMSG);
    assert_null(p);
    assert_int_equal(seal_open(&other, "sessions/1", s1, &p), -EBADMSG);
    /* One bit changed anywhere (here the last base64url character). */
    char *s3 = xstrdup(s1);
    s3[strlen(s3) - 1] = s3[strlen(s3) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(seal_open(&k, "sessions/1", s3, &p), -EBADMSG);
    /* Cut short, not base64url, or a value from before sealing. */
    assert_int_equal(seal_open(&k, "sessions/1", SEAL_PREFIX "AAAA", &p), -EBADMSG);
    assert_int_equal(seal_open(&k, "sessions/1", SEAL_PREFIX "!!!!", &p), -EBADMSG);
    assert_int_equal(seal_open(&k, "sessions/1", rt, &p), -EINVAL);
    /* NULL stays NULL; the empty string is a value. */
    assert_null(seal_value(&k, "sessions/1", NULL));
    assert_int_equal(seal_open(&k, "sessions/1", NULL, &p), 0);
    assert_null(p);
    char *e = seal_value(&k, "sessions/1", "");
    assert_int_equal(seal_open(&k, "sessions/1", e, &p), 0);
    assert_string_equal(p, "");
    seal_clear_free(p);
    free(e);
    free(s1);
    free(s2);
    free(s3);
}

static void test_key_file_made_once_private(void **state)
{
    (void)state;
    char *home = tmp_home();
    seal_key_t a, b;
    nb_err_t err;
    assert_int_equal(seal_key_load(home, &a, &err), 0);
    char *path = xasprintf("%s/%s", home, SEAL_KEY_FILE), *dir = xasprintf("%s/secrets", home);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Read again, not replaced. */
    assert_int_equal(seal_key_load(home, &b, &err), 0);
    assert_memory_equal(a.k, b.k, SEAL_KEY_LEN);
    /* Readable by others: refused, not used. */
    chmod(path, 0644);
    assert_int_equal(seal_key_load(home, &b, &err), -EACCES);
    assert_non_null(strstr(err.msg, "0600"));
    chmod(path, 0600);
    /* Damaged: refused, never silently replaced by a new key. */
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(seal_key_load(home, &b, &err), -EINVAL);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 10);
    fs_rm_tree(home);
    free(path);
    free(dir);
    free(home);
}

/* Processes starting at once all end up with the one key on disk. */
static void test_key_file_race(void **state)
{
    (void)state;
    char *home = tmp_home();
    enum { N = 8 };
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        if (pids[i] == 0) {
            seal_key_t k;
            nb_err_t err;
            int rc = seal_key_load(home, &k, &err);
            if (rc == 0 && write(fds[i][1], k.k, sizeof k.k) != (ssize_t)sizeof k.k) rc = -1;
            _exit(rc == 0 ? 0 : 1);
        }
        close(fds[i][1]);
    }
    seal_key_t first, k;
    nb_err_t err;
    for (int i = 0; i < N; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(fds[i][0], k.k, sizeof k.k), (ssize_t)sizeof k.k);
        close(fds[i][0]);
        if (i == 0) first = k;
        assert_memory_equal(first.k, k.k, SEAL_KEY_LEN);
    }
    assert_int_equal(seal_key_load(home, &k, &err), 0);
    assert_memory_equal(first.k, k.k, SEAL_KEY_LEN);
    fs_rm_tree(home);
    free(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_row_binding),
        cmocka_unit_test(test_key_file_made_once_private),
        cmocka_unit_test(test_key_file_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
