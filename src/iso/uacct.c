/* uacct — see uacct.h. */
#include "iso/uacct.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int portable(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) return 0;
    return 1;
}

int uacct_template_valid(const char *tmpl)
{
    if (!tmpl || !strstr(tmpl, "{name}")) return 0;
    char out[64];
    /* "a" is the shortest user name: the rest of the template must be valid
     * around it. */
    return uacct_name(tmpl, "a", out, sizeof out, NULL) == 0;
}

int uacct_name(const char *tmpl, const char *user, char *out, size_t n, nb_err_t *err)
{
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *piece = p;
        size_t len = 1;
        if (!strncmp(p, "{name}", 6)) {
            piece = user;
            len = strlen(user);
            p += 6;
        } else {
            p++;
        }
        if (o + len >= n) return err_set(err, -EINVAL, "the Unix account name for user '%s' is too long", user);
        memcpy(out + o, piece, len);
        o += len;
    }
    out[o] = 0;
    if (!portable(out))
        return err_set(err, -EINVAL,
                       "user '%s' maps to '%s', which is not a valid Unix account name "
                       "([a-z_][a-z0-9_-]*, at most 32 characters): rename the user or change system_user",
                       user, out);
    return 0;
}

int uacct_lookup(const char *name, uacct_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    struct passwd pw, *res = NULL;
    char buf[4096];
    int rc = getpwnam_r(name, &pw, buf, sizeof buf, &res);
    if (rc) return err_set(err, -rc, "looking up account %s: %s", name, strerror(rc));
    if (!res) return err_set(err, -ENOENT, "there is no Unix account '%s'", name);
    if (pw.pw_uid == 0)
        return err_set(err, -EPERM, "Unix account '%s' has uid 0: nbhub never runs users' code as root", name);
    out->name = xstrdup(pw.pw_name);
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    out->home = xstrdup(pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/");
    out->shell = xstrdup(pw.pw_shell && *pw.pw_shell ? pw.pw_shell : "/bin/sh");
    return 0;
}

int uacct_create(const char *name, nb_err_t *err)
{
    if (!portable(name)) return err_set(err, -EINVAL, "'%s' is not a valid Unix account name", name);
    pid_t pid = fork();
    if (pid < 0) return err_set(err, -errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* stdout is the task's log: keep useradd's chatter there, it is
         * the place someone looks when the account could not be made. */
        execl("/usr/sbin/useradd", "useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
              "--comment", "nbhub user", "--", name, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    uacct_t a;
    /* Exit 9 is "name already in use": a concurrent wrapper won the race. */
    if (uacct_lookup(name, &a, NULL) < 0)
        return err_set(err, -EIO, "useradd %s failed (%s %d)", name,
                       WIFEXITED(st) ? "exit code" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    /* Home 0700: other users must not read it, whatever useradd's HOME_MODE. */
    if (strcmp(a.home, "/") != 0) chmod(a.home, 0700);
    uacct_clear(&a);
    return 0;
}

int uacct_env_kept(const char *kv)
{
    static const char *const keep[] = { "PATH=", "LANG=", "LANGUAGE=", "LC_", "TZ=", "JUPYTER_PATH=",
                                        "VIRTUAL_ENV=", "JAVA_HOME=", "SPARK_HOME=", "PYSPARK_PYTHON=" };
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (!strncmp(kv, keep[i], strlen(keep[i]))) return 1;
    return 0;
}

char **uacct_env(char *const *extra)
{
    extern char **environ;
    size_t n = 0, k = 0;
    for (char **e = environ; *e; e++) n++;
    for (char *const *e = extra; e && *e; e++) n++;
    char **v = xcalloc(n + 1, sizeof *v);
    for (char **e = environ; *e; e++)
        if (uacct_env_kept(*e)) v[k++] = *e;
    for (char *const *e = extra; e && *e; e++) v[k++] = *e;
    return v;
}

void uacct_clear(uacct_t *a)
{
    free(a->name);
    free(a->home);
    free(a->shell);
    memset(a, 0, sizeof *a);
}
