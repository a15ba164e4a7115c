/* kproc — see kproc.h. */
#include "kernel/kproc.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kproc {
    uv_process_t  proc;
    kproc_exit_cb exit_cb;
    void         *ud;
    int           pid;
    int           exited;
    int           closing;
    int           ctl;      /* keeper: write end of its fd 3, else -1 */
};

static void kproc_on_close(uv_handle_t *h) { free(h->data); }

const char *kproc_self_exe(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) snprintf(path, sizeof path, "nbhub");
        else path[n] = '\0';
    }
    return path;
}

static void kproc_on_exit(uv_process_t *h, int64_t status, int term_signal)
{
    kproc_t *p = h->data;
    p->exited = 1;
    /* Sweep the group: the kernel may have left children behind. */
    kill(-p->pid, SIGKILL);
    LOG_D("kernel exited", "pid=%d status=%lld signal=%d", p->pid, (long long)status, term_signal);
    if (p->exit_cb && !p->closing) p->exit_cb(p, status, term_signal, p->ud);
}

static int kproc_spawn_via(uv_loop_t *loop, char *const *argv, char *const *env, const char *cwd,
                           const char *keep_dir, kproc_exit_cb exit_cb, void *ud, kproc_t **out,
                           nb_err_t *err)
{
    size_t n = 0;
    while (argv[n]) n++;
    char **args = xcalloc(n + 6, sizeof *args);
    char ppid[32];
    snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
    size_t k = 0;
    args[k++] = (char *)kproc_self_exe();
    args[k++] = (char *)(keep_dir ? "__kernel-keep" : "__kernel-exec");
    args[k++] = ppid;
    if (keep_dir) args[k++] = (char *)keep_dir;
    args[k++] = (char *)"--";
    for (size_t i = 0; i < n; i++) args[k + i] = argv[i];

    int ctl[2] = { -1, -1 };
    if (keep_dir && pipe2(ctl, O_CLOEXEC) < 0) {
        free(args);
        return err_set(err, -errno, "cannot start kernel %s: pipe: %s", argv[0], strerror(errno));
    }
    kproc_t *p = xcalloc(1, sizeof *p);
    p->exit_cb = exit_cb;
    p->ud = ud;
    p->proc.data = p;
    p->ctl = ctl[1];
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 2;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = ctl[0];
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = args[0];
    o.args = args;
    o.env = (char **)env;
    o.cwd = cwd;
    o.flags = UV_PROCESS_DETACHED;
    o.exit_cb = kproc_on_exit;
    o.stdio = stdio;
    o.stdio_count = keep_dir ? 4 : 3;
    int rc = uv_spawn(loop, &p->proc, &o);
    free(args);
    if (ctl[0] >= 0) close(ctl[0]);
    if (rc < 0) {
        if (p->ctl >= 0) close(p->ctl);
        /* uv_spawn initialised the handle; it must still be closed. */
        p->closing = 1;
        uv_close((uv_handle_t *)&p->proc, (uv_close_cb)free);
        return err_set(err, rc, "cannot start kernel %s: %s", argv[0], uv_strerror(rc));
    }
    p->pid = p->proc.pid;
    *out = p;
    return 0;
}

int kproc_spawn(uv_loop_t *loop, char *const *argv, char *const *env, const char *cwd,
                kproc_exit_cb exit_cb, void *ud, kproc_t **out, nb_err_t *err)
{
    return kproc_spawn_via(loop, argv, env, cwd, NULL, exit_cb, ud, out, err);
}

int kproc_spawn_keeper(uv_loop_t *loop, char *const *argv, char *const *env, const char *cwd,
                       const char *conn_dir, kproc_exit_cb exit_cb, void *ud, kproc_t **out,
                       nb_err_t *err)
{
    return kproc_spawn_via(loop, argv, env, cwd, conn_dir, exit_cb, ud, out, err);
}

int kproc_keep(kproc_t *p, int64_t until_s)
{
    if (p->ctl < 0 || p->exited) return -ESRCH;
    char line[48];
    int n = snprintf(line, sizeof line, "keep %lld\n", (long long)until_s);
    ssize_t w = write(p->ctl, line, (size_t)n);
    int rc = w == n ? 0 : -EPIPE;
    close(p->ctl);
    p->ctl = -1;
    if (rc < 0) return rc;
    /* The keeper has it now: close our handle without the group kill. */
    p->closing = 1;
    p->exited = 1;
    uv_close((uv_handle_t *)&p->proc, kproc_on_close);
    return 0;
}

int kproc_signal_group(kproc_t *p, int sig)
{
    if (p->exited) return -ESRCH;
    if (kill(-p->pid, sig) == 0) return 0;
    return kill(p->pid, sig) == 0 ? 0 : -errno;
}

int kproc_pid(const kproc_t *p) { return p->pid; }
int kproc_exited(const kproc_t *p) { return p->exited; }

void kproc_close(kproc_t *p)
{
    if (!p) return;
    p->closing = 1;
    if (p->ctl >= 0) {
        close(p->ctl);   /* a keeper not told to keep kills the group */
        p->ctl = -1;
    }
    if (!p->exited) kill(-p->pid, SIGKILL);
    uv_close((uv_handle_t *)&p->proc, kproc_on_close);
}
