/* workspace: a user's directory is theirs only (names that would climb out,
 * a workspace that is a symlink or someone else's), and a path inside it
 * never leads out ("~bob/", "..", a symlink out on disk).  The isolation:
 * system cases need root and useradd; they are skipped otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iso/uacct.h"
#include "iso/workspace.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

static char *tmpdir(void)
{
    char tpl[] = "/tmp/nbhub-test-ws-XXXXXX";
    char *d = mkdtemp(tpl);
    assert_non_null(d);
    return xstrdup(d);
}

static void test_user_names(void **state)
{
    (void)state;
    assert_true(workspace_user_valid("alice"));
    assert_true(workspace_user_valid("Ann.Lee@corp"));
    assert_false(workspace_user_valid(""));
    assert_false(workspace_user_valid(NULL));
    assert_false(workspace_user_valid("."));
    assert_false(workspace_user_valid(".."));
    assert_false(workspace_user_valid(".hidden"));
    assert_false(workspace_user_valid("a/b"));
    assert_false(workspace_user_valid("../etc"));
    assert_false(workspace_user_valid("a..b"));
    assert_false(workspace_user_valid("a\nb"));
}

static void test_shared_created_0700(void **state)
{
    (void)state;
    char *home = tmpdir();
    struct workspace_opts o = { .home = home, .create = 1 };
    char *dir = NULL;
    nb_err_t err;
    assert_int_equal(workspace_dir(&o, "alice", &dir, &err), 0);
    char *want = xasprintf("%s/workspaces/alice", home);
    assert_string_equal(dir, want);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    char *root = xasprintf("%s/workspaces", home);
    assert_int_equal(lstat(root, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);
    /* A second call finds it. */
    char *again = NULL;
    assert_int_equal(workspace_dir(&o, "alice", &again, &err), 0);
    assert_string_equal(again, want);
    free(again);
    /* Without create a missing one is -ENOENT. */
    o.create = 0;
    char *none = NULL;
    assert_int_equal(workspace_dir(&o, "bob", &none, &err), -ENOENT);
    assert_null(none);
    /* Bad names never touch the disk. */
    o.create = 1;
    assert_int_equal(workspace_dir(&o, "..", &none, &err), -EINVAL);
    assert_int_equal(workspace_dir(&o, "../alice", &none, &err), -EINVAL);
    fs_rm_tree(home);
    free(dir);
    free(want);
    free(root);
    free(home);
}

/* A workspace planted as a symlink (to /etc, to another user's directory)
 * is refused, not followed. */
static void test_shared_symlink_refused(void **state)
{
    (void)state;
    char *home = tmpdir();
    char *root = xasprintf("%s/workspaces", home), *link = xasprintf("%s/mallory", root);
    nb_err_t err;
    assert_int_equal(fs_mkdir_p(root, 0700, &err), 0);
    assert_int_equal(symlink("/etc", link), 0);
    struct workspace_opts o = { .home = home, .create = 1 };
    char *dir = NULL;
    assert_int_equal(workspace_dir(&o, "mallory", &dir, &err), -EPERM);
    assert_null(dir);
    assert_non_null(strstr(err.msg, "symbolic link"));
    /* A file where the directory should be. */
    char *f = xasprintf("%s/carol", root);
    assert_int_equal(fs_write_atomic(f, "x", 1, 0, &err), 0);
    assert_int_equal(workspace_dir(&o, "carol", &dir, &err), -EPERM);
    fs_rm_tree(home);
    free(f);
    free(link);
    free(root);
    free(home);
}

static void expect_rel(const char *in, const char *want)
{
    char *out = NULL;
    nb_err_t err;
    int rc = workspace_rel(in, &out, &err);
    if (!want) {
        assert_int_equal(rc, -EINVAL);
        assert_null(out);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    free(out);
}

static void test_rel_paths(void **state)
{
    (void)state;
    expect_rel("~/reports/daily.ipynb", "reports/daily.ipynb");
    expect_rel("~/./a//b/../c.ipynb", "a/c.ipynb");
    expect_rel("~/a/..//b.ipynb", "b.ipynb");
    expect_rel("x.ipynb", "x.ipynb");
    expect_rel("~", NULL);
    expect_rel("~/", NULL);
    expect_rel("~/.", NULL);
    expect_rel("~bob/x.ipynb", NULL);
    expect_rel("~root/.ssh/id_rsa", NULL);
    expect_rel("~/../../etc/passwd", NULL);
    expect_rel("~/a/../../x", NULL);
    expect_rel("~//etc/passwd", NULL);
    expect_rel("~/a\nb", NULL);
    char *p = NULL;
    nb_err_t err;
    assert_int_equal(workspace_path("/w/alice", "~/r/d.ipynb", &p, &err), 0);
    assert_string_equal(p, "/w/alice/r/d.ipynb");
    free(p);
    assert_int_equal(workspace_path("/w/alice", "~bob/d.ipynb", &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "another user"));
}

/* On disk: a symlink in the workspace to a file outside it. */
static void test_inside(void **state)
{
    (void)state;
    char *d = tmpdir();
    char *ws = xasprintf("%s/ws", d), *sub = xasprintf("%s/ws/sub", d);
    nb_err_t err;
    assert_int_equal(fs_mkdir_p(sub, 0700, &err), 0);
    char *nb = xasprintf("%s/ok.ipynb", sub), *out = xasprintf("%s/secret", d);
    assert_int_equal(fs_write_atomic(nb, "{}", 2, 0, &err), 0);
    assert_int_equal(fs_write_atomic(out, "s", 1, 0, &err), 0);
    char *l1 = xasprintf("%s/evil.ipynb", ws), *l2 = xasprintf("%s/inner.ipynb", ws);
    char *l3 = xasprintf("%s/dirlink", ws), *ws2 = xasprintf("%s/ws2", d);
    assert_int_equal(symlink(out, l1), 0);
    assert_int_equal(symlink("sub/ok.ipynb", l2), 0);
    assert_int_equal(symlink(d, l3), 0);
    assert_int_equal(fs_mkdir_p(ws2, 0700, &err), 0);
    char *via = xasprintf("%s/dirlink/secret", ws), *sib = xasprintf("%s/../ws2", ws);
    assert_int_equal(workspace_inside(ws, nb, &err), 0);
    assert_int_equal(workspace_inside(ws, l2, &err), 0);
    assert_int_equal(workspace_inside(ws, l1, &err), -EPERM);
    assert_int_equal(workspace_inside(ws, via, &err), -EPERM);
    /* "ws2" shares the prefix "ws" but is not inside it. */
    assert_int_equal(workspace_inside(ws, sib, &err), -EPERM);
    char *missing = xasprintf("%s/nope.ipynb", ws);
    assert_int_equal(workspace_inside(ws, missing, &err), -ENOENT);
    fs_rm_tree(d);
    free(missing); free(via); free(sib); free(ws2); free(l3); free(l2); free(l1);
    free(out); free(nb); free(sub); free(ws); free(d);
}

/* isolation: system — the account's home, checked: needs root + useradd. */
static void test_system_home(void **state)
{
    (void)state;
    if (geteuid() != 0 || access("/usr/sbin/useradd", X_OK) != 0) {
        skip();
        return;
    }
    char tmpl[64];
    snprintf(tmpl, sizeof tmpl, "nbws%d-{name}", (int)(getpid() % 100000));
    struct workspace_opts o = { .system = 1, .account_template = tmpl, .create = 1, .create_account = 0 };
    char *dir = NULL;
    nb_err_t err;
    /* No account and no create_system_users: -ENOENT. */
    assert_int_equal(workspace_dir(&o, "ws", &dir, &err), -ENOENT);
    o.create_account = 1;
    assert_int_equal(workspace_dir(&o, "ws", &dir, &err), 0);
    char acct[64];
    assert_int_equal(uacct_name(tmpl, "ws", acct, sizeof acct, &err), 0);
    struct passwd *pw = getpwnam(acct);
    assert_non_null(pw);
    assert_string_equal(dir, pw->pw_dir);
    uid_t uid = pw->pw_uid;
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_uid, uid);
    /* The home handed to root: refused (it would be someone else's). */
    assert_int_equal(chown(dir, 0, 0), 0);
    char *d2 = NULL;
    assert_int_equal(workspace_dir(&o, "ws", &d2, &err), -EPERM);
    assert_non_null(strstr(err.msg, "belongs to uid 0"));
    /* The home replaced by a symlink to another directory: refused. */
    char *moved = xasprintf("%s.moved", dir);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(symlink("/tmp", dir), 0);
    assert_int_equal(workspace_dir(&o, "ws", &d2, &err), -EPERM);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(dir);
    /* A missing home is made again, the account's, 0700. */
    assert_int_equal(workspace_dir(&o, "ws", &d2, &err), 0);
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_uid, uid);
    assert_int_equal(st.st_mode & 0777, 0700);
    free(d2);
    fs_rm_tree(moved);
    fs_rm_tree(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "/usr/sbin/userdel %s 2>/dev/null", acct);
    assert_int_equal(system(cmd), 0);
    free(moved);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_names),
        cmocka_unit_test(test_shared_created_0700),
        cmocka_unit_test(test_shared_symlink_refused),
        cmocka_unit_test(test_rel_paths),
        cmocka_unit_test(test_inside),
        cmocka_unit_test(test_system_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
