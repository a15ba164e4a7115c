/* workspace — see workspace.h. */
#include "iso/workspace.h"
#include "iso/uacct.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int workspace_user_valid(const char *user)
{
    if (!user || !*user || user[0] == '.' || strlen(user) > 64) return 0;
    if (strstr(user, "..")) return 0;
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* The directory must be a directory itself (lstat: a symlink is refused,
 * wherever it points) and belong to uid.  A missing one is made when asked. */
static int check_dir(const char *dir, uid_t uid, gid_t gid, int create, const char *user, nb_err_t *err)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        int e = errno;
        if (e != ENOENT || !create)
            return err_set(err, -e, "workspace of user '%s' (%s): %s", user, dir, strerror(e));
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            e = errno;
            return err_set(err, -e, "%s: cannot create the workspace of user '%s': %s", dir, user, strerror(e));
        }
        /* Made by us (root under isolation: system): give it to the account
         * before anything is put in it. */
        if (geteuid() != uid && chown(dir, uid, gid) < 0) {
            e = errno;
            return err_set(err, -e, "%s: chown to the account of user '%s': %s", dir, user, strerror(e));
        }
        if (lstat(dir, &st) < 0) {
            e = errno;
            return err_set(err, -e, "%s: %s", dir, strerror(e));
        }
    }
    if (S_ISLNK(st.st_mode))
        return err_set(err, -EPERM, "the workspace of user '%s' (%s) is a symbolic link: refused", user, dir);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, -EPERM, "the workspace of user '%s' (%s) is not a directory", user, dir);
    if (st.st_uid != uid)
        return err_set(err, -EPERM, "the workspace of user '%s' (%s) belongs to uid %ld, not to %ld: refused",
                       user, dir, (long)st.st_uid, (long)uid);
    return 0;
}

int workspace_dir(const struct workspace_opts *o, const char *user, char **out, nb_err_t *err)
{
    *out = NULL;
    if (!workspace_user_valid(user))
        return err_set(err, -EINVAL, "'%s' cannot name a workspace (no '/', no leading '.', no '..')",
                       user ? user : "");
    if (!o->system) {
        if (!o->home || o->home[0] != '/')
            return err_set(err, -EINVAL, "the workspaces need nbhub's home as an absolute path");
        char *root = xasprintf("%s/workspaces", o->home);
        if (o->create) {
            int rc = fs_mkdir_p(root, 0700, err);
            if (rc < 0) { free(root); return rc; }
        }
        char *dir = xasprintf("%s/%s", root, user);
        free(root);
        int rc = check_dir(dir, geteuid(), getegid(), o->create, user, err);
        if (rc < 0) { free(dir); return rc; }
        *out = dir;
        return 0;
    }

    char acct[64];
    int rc = uacct_name(o->account_template ? o->account_template : UACCT_DEFAULT_TEMPLATE, user, acct,
                        sizeof acct, err);
    if (rc < 0) return rc;
    uacct_t a;
    rc = uacct_lookup(acct, &a, err);
    if (rc == -ENOENT && o->create_account) {
        rc = uacct_create(acct, err);
        if (rc == 0) rc = uacct_lookup(acct, &a, err);
    }
    if (rc < 0) return rc;
    /* A home of "/" (or any relative one) is no workspace: it would make the
     * whole machine the user's "~/". */
    if (a.home[0] != '/' || strcmp(a.home, "/") == 0) {
        rc = err_set(err, -EPERM, "Unix account '%s' of user '%s' has no home directory of its own (%s)",
                     a.name, user, a.home);
        uacct_clear(&a);
        return rc;
    }
    size_t n = strlen(a.home);
    while (n > 1 && a.home[n - 1] == '/') a.home[--n] = 0;
    rc = check_dir(a.home, a.uid, a.gid, o->create, user, err);
    if (rc == 0) {
        *out = a.home;
        a.home = NULL;
    }
    uacct_clear(&a);
    return rc;
}

int workspace_own(char **out, nb_err_t *err)
{
    *out = NULL;
    struct passwd pw, *res = NULL;
    char buf[4096];
    uid_t uid = getuid();
    int rc = getpwuid_r(uid, &pw, buf, sizeof buf, &res);
    if (rc) return err_set(err, -rc, "looking up uid %ld: %s", (long)uid, strerror(rc));
    if (!res) return err_set(err, -ENOENT, "uid %ld has no account, hence no workspace", (long)uid);
    if (!pw.pw_dir || pw.pw_dir[0] != '/' || strcmp(pw.pw_dir, "/") == 0)
        return err_set(err, -EPERM, "account '%s' has no home directory of its own", pw.pw_name);
    char *home = xstrdup(pw.pw_dir);
    size_t n = strlen(home);
    while (n > 1 && home[n - 1] == '/') home[--n] = 0;
    rc = check_dir(home, uid, pw.pw_gid, 0, pw.pw_name, err);
    if (rc < 0) {
        free(home);
        return rc;
    }
    *out = home;
    return 0;
}

int workspace_is_tilde(const char *rel)
{
    return rel && rel[0] == '~';
}

int workspace_rel(const char *rel, char **out, nb_err_t *err)
{
    *out = NULL;
    if (!rel) return err_set(err, -EINVAL, "no path");
    const char *p = rel;
    if (p[0] == '~') {
        if (p[1] == 0)
            return err_set(err, -EINVAL, "'~' alone names the workspace, not a notebook in it");
        if (p[1] != '/')
            return err_set(err, -EINVAL,
                           "'%s': '~user/' (another user's workspace) is not allowed; "
                           "'~/' is the flow owner's workspace",
                           rel);
        p += 2;
    }
    if (*p == '/') return err_set(err, -EINVAL, "'%s': the path inside the workspace must be relative", rel);
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f) return err_set(err, -EINVAL, "'%s': control character in the path", rel);

    /* Normalise component by component; a ".." pops one, and one with
     * nothing to pop would leave the workspace. */
    size_t cap = strlen(p) + 1;
    char *res = xmalloc(cap);
    size_t len = 0;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* "a//b", "./a" */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0) {
                free(res);
                return err_set(err, -EINVAL, "'%s': '..' leads out of the workspace", rel);
            }
            while (len > 0 && res[len - 1] != '/') len--;
            if (len > 0) len--;   /* the separator */
        } else {
            if (len) res[len++] = '/';
            memcpy(res + len, p, n);
            len += n;
        }
        p += n;
        if (*p == '/') p++;
    }
    res[len] = 0;
    if (len == 0) {
        free(res);
        return err_set(err, -EINVAL, "'%s' names the workspace itself, not a file in it", rel);
    }
    *out = res;
    return 0;
}

int workspace_path(const char *dir, const char *rel, char **out, nb_err_t *err)
{
    char *r = NULL;
    int rc = workspace_rel(rel, &r, err);
    if (rc < 0) {
        *out = NULL;
        return rc;
    }
    *out = xasprintf("%s/%s", dir, r);
    free(r);
    return 0;
}

int workspace_inside(const char *dir, const char *path, nb_err_t *err)
{
    char rd[PATH_MAX], rp[PATH_MAX];
    if (!realpath(dir, rd)) {
        int e = errno;
        return err_set(err, -e, "%s: %s", dir, strerror(e));
    }
    if (!realpath(path, rp)) {
        int e = errno;
        return err_set(err, -e, "%s: %s", path, strerror(e));
    }
    size_t n = strlen(rd);
    if (strcmp(rd, "/") != 0 && (strncmp(rp, rd, n) != 0 || (rp[n] != '/' && rp[n] != 0)))
        return err_set(err, -EPERM, "%s resolves to %s, outside the workspace %s: refused", path, rp, rd);
    return 0;
}
