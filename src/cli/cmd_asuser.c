/*
 * cmd_asuser — `nbhub __as-user ACCOUNT [OPTIONS] -- ARGV...` (internal).
 *
 * Under `isolation: system` every process nbhub starts for a user goes
 * through this trampoline, which runs as root between the daemon's fork and
 * the exec of the user's command (libuv's spawn can set a uid but drops all
 * supplementary groups and cannot enter a cgroup, so a small program of our
 * own does it, in the order that leaves no window):
 *
 *   1. find the account, or create it (--create: useradd, home 0700);
 *   2. hand the task's files to it (--chown: the run directory, the
 *      parameters file; --chown-tree: the flow's own directory with the
 *      notebooks `flow apply` sent; lchown, never following a link);
 *   3. create the cgroups (--cgroup REL=MEMORY,CPU_MILLI,PIDS, parents
 *      first) and enter the last one: every process of the task is inside
 *      its limits from its first instruction;
 *   4. initgroups (the account's own supplementary groups), setgid,
 *      setuid, and check that root cannot be regained;
 *   5. HOME, USER, LOGNAME, SHELL from the account (the rest of the
 *      environment was scrubbed by the daemon), umask 077, chdir (--cwd, as
 *      the user: a directory they cannot enter is an error, not a leak);
 *   6. exec ARGV — with --self, ARGV[0] is nbhub itself, exec'd through a
 *      descriptor opened before the privileges were dropped, so the user
 *      needs no access to the directories the binary lives in.
 *
 * ACCOUNT "-" (isolation: shared with limits) skips 1, 2, 4 and 5: the
 * command enters its cgroups and runs as nbhub's user.
 *
 * It never forks (but for useradd): the task's pid is this process's, so
 * supervision, status files and restarts work as for any task.  Failures
 * print "nbhub: ..." on stderr (the task's log) and exit 126.
 */
#include "cli/cli.h"
#include "iso/cgroup.h"
#include "iso/uacct.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ASUSER_FAIL 126

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nbhub: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return ASUSER_FAIL;
}

static uid_t tree_uid;
static gid_t tree_gid;

static int chown_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(p, tree_uid, tree_gid) < 0 ? -1 : 0;
}

/* Create the --cgroup specs (parents first) and enter the last one.
 * -1 after saying why on stderr. */
static int enter_cgroups(char **groups, size_t ngroup)
{
    nb_err_t err;
    for (size_t k = 0; k < ngroup; k++) {
        iso_limits_t l;
        if (limits_spec_parse(groups[k], &l) < 0) return fail("__as-user: bad --cgroup limits for %s", groups[k]), -1;
        if (cgroup_setup(groups[k], &l, &err) < 0) return fail("%s", err.msg), -1;
        if (k + 1 == ngroup && cgroup_enter(groups[k], &err) < 0) return fail("%s", err.msg), -1;
    }
    return 0;
}

int cmd_asuser(int argc, char **argv)
{
    if (argc < 4) {
        cli_errorf("__as-user: internal command, usage: __as-user ACCOUNT [OPTIONS] -- ARGV...");
        return NB_EXIT_USAGE;
    }
    const char *acct = argv[1], *cwd = NULL;
    int create = 0, self = 0, i;
    char **chowns = xcalloc((size_t)argc, sizeof *chowns);
    char **groups = xcalloc((size_t)argc, sizeof *groups);
    char **trees = xcalloc((size_t)argc, sizeof *trees);
    size_t nchown = 0, ngroup = 0, ntree = 0;
    for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strcmp(argv[i], "--create")) create = 1;
        else if (!strcmp(argv[i], "--self")) self = 1;
        else if (!strcmp(argv[i], "--chown") && i + 1 < argc) chowns[nchown++] = argv[++i];
        else if (!strcmp(argv[i], "--chown-tree") && i + 1 < argc) trees[ntree++] = argv[++i];
        else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc) groups[ngroup++] = argv[++i];
        else if (!strcmp(argv[i], "--cwd") && i + 1 < argc) cwd = argv[++i];
        else return fail("__as-user: unknown option %s", argv[i]);
    }
    if (i + 1 >= argc) return fail("__as-user: no command after --");
    char **cmd = argv + i + 1;
    if (geteuid() != 0) return fail("isolation: system needs nbhub serve to run as root");

    nb_err_t err;
    /* ACCOUNT "-": isolation: shared with limits (a flow task's, a profile's).
     * There is no account to become: only the cgroups are entered, and the
     * command runs as nbhub's own user in nbhub's environment.  Account
     * options make no sense then and are refused. */
    if (!strcmp(acct, "-")) {
        if (create || nchown || ntree || cwd)
            return fail("__as-user: -: --create, --chown, --chown-tree and --cwd need an account");
        if (enter_cgroups(groups, ngroup) < 0) return ASUSER_FAIL;
        extern char **environ;
        if (self) {
            execve("/proc/self/exe", cmd, environ);
            return fail("cannot execute nbhub: %s", strerror(errno));
        }
        execvp(cmd[0], cmd);
        int e = errno;
        fprintf(stderr, "nbhub: cannot execute '%s': %s\n", cmd[0], strerror(e));
        return e == ENOENT ? 127 : ASUSER_FAIL;
    }
    uacct_t a;
    int rc = uacct_lookup(acct, &a, &err);
    if (rc == -ENOENT && create) {
        if (uacct_create(acct, &err) < 0) return fail("%s", err.msg);
        rc = uacct_lookup(acct, &a, &err);
    }
    if (rc < 0) {
        if (rc == -ENOENT)
            return fail("%s (create it, or set create_system_users: true in nbhub.yaml)", err.msg);
        return fail("%s", err.msg);
    }
    for (size_t k = 0; k < nchown; k++)
        if (lchown(chowns[k], a.uid, a.gid) < 0) return fail("cannot give %s to its user: %s", chowns[k], strerror(errno));
    tree_uid = a.uid;
    tree_gid = a.gid;
    for (size_t k = 0; k < ntree; k++)
        if (nftw(trees[k], chown_one, 16, FTW_PHYS) != 0)
            return fail("cannot give %s to its user: %s", trees[k], strerror(errno));

    if (enter_cgroups(groups, ngroup) < 0) return ASUSER_FAIL;

    int selffd = -1;
    if (self && (selffd = open("/proc/self/exe", O_PATH | O_CLOEXEC)) < 0)
        return fail("cannot open nbhub's own binary: %s", strerror(errno));

    if (initgroups(a.name, a.gid) < 0) return fail("initgroups(%s): %s", a.name, strerror(errno));
    if (setgid(a.gid) < 0) return fail("setgid(%s): %s", a.name, strerror(errno));
    if (setuid(a.uid) < 0) return fail("setuid(%s): %s", a.name, strerror(errno));
    if (setuid(0) == 0 || geteuid() == 0) return fail("could still regain root after dropping to %s", a.name);

    setenv("HOME", a.home, 1);
    setenv("USER", a.name, 1);
    setenv("LOGNAME", a.name, 1);
    setenv("SHELL", a.shell, 1);
    umask(077);
    if (chdir(cwd ? cwd : a.home) < 0)
        return fail("%s cannot enter its working directory %s", a.name, cwd ? cwd : a.home);

    extern char **environ;
    if (selffd >= 0) {
        syscall(SYS_execveat, selffd, "", cmd, environ, AT_EMPTY_PATH);
        return fail("cannot execute nbhub as %s: %s", a.name, strerror(errno));
    }
    execvp(cmd[0], cmd);
    int e = errno;
    fprintf(stderr, "nbhub: cannot execute '%s' as %s: %s\n", cmd[0], a.name, strerror(e));
    return e == ENOENT ? 127 : ASUSER_FAIL;
}
