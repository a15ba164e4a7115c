/*
 * sup — task child processes: spawn through the __task-wrap wrapper,
 * re-attach after a restart, stop by signalling the process group.  The
 * why is in sup.h; the how:
 *
 *   - A spawned wrapper is our child: libuv's uv_process_t reports its exit.
 *     We still prefer the status file (the wrapper's view of the real
 *     command) and fall back to the wrapper's own status when the file is
 *     missing (wrapper killed by SIGKILL).
 *   - A re-attached wrapper is not our child: a pidfd (Linux >= 5.3) becomes
 *     readable when it exits; without pidfd we poll kill(pid, 0) every
 *     250 ms (a fallback, not the normal path).
 *   - Stopping sends signals to -pgid.  The wrapper was started with
 *     UV_PROCESS_DETACHED (setsid), so its pid is the group id and the real
 *     command (and nbhub run's kernel trampoline, which makes its own
 *     group and dies with nbhub run through PDEATHSIG) are reached.
 */

#include "sched/sup.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct sup_task {
    uv_loop_t   *loop;
    uv_process_t proc;         /* spawned: the wrapper */
    uv_poll_t    pidpoll;      /* attached with a pidfd */
    uv_timer_t   poll_timer;   /* attached without pidfd */
    uv_timer_t   stop_timer;   /* SIGTERM / SIGKILL steps */
    int          spawned, attached_fd, use_poll_timer;
    int          pid;
    int64_t      start_time;
    char        *status_path;
    sup_exit_fn  cb;
    void        *ud;
    int          exited;       /* exit callback ran */
    int          open_handles;
    int          freed;        /* sup_free was called: free when handles close */
    int          stop_step;    /* 0 none, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL sent */
    uint64_t     grace_ms, stop_started;
};

int64_t sup_proc_start_time(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* Field 2 (comm) is in parentheses and may contain spaces: count fields
     * from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    /* p is at the space before field 3; 19 more spaces to the one before 22 */
    for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
    return p ? strtoll(p + 1, NULL, 10) : 0;
}

int sup_read_status(const char *status_path, sup_end_t *out)
{
    memset(out, 0, sizeof *out);
    /* The file is in a directory the task's user can write: never follow a
     * link or block on a FIFO they put there (fs_read_regular). */
    json_t *j = jparse_file_regular(status_path, 4096);
    if (!j) return -ENOENT;
    json_t *code = json_object_get(j, "exit_code"), *sig = json_object_get(j, "signal");
    int rc = 0;
    if (json_is_integer(code)) out->exit_code = (int)json_integer_value(code);
    else if (json_is_integer(sig)) {
        out->exit_code = -1;
        out->term_signal = (int)json_integer_value(sig);
    } else rc = -ENOENT;
    json_decref(j);
    return rc;
}

static void sup_on_close(uv_handle_t *h)
{
    sup_task_t *t = h->data;
    if (--t->open_handles == 0 && t->freed) {
        free(t->status_path);
        free(t);
    }
}

static void sup_close_handles(sup_task_t *t)
{
    uv_timer_stop(&t->stop_timer);
    if (t->spawned && !uv_is_closing((uv_handle_t *)&t->proc))
        uv_close((uv_handle_t *)&t->proc, sup_on_close);
    if (t->attached_fd >= 0 && !uv_is_closing((uv_handle_t *)&t->pidpoll)) {
        uv_close((uv_handle_t *)&t->pidpoll, sup_on_close);
    }
    if (t->use_poll_timer && !uv_is_closing((uv_handle_t *)&t->poll_timer))
        uv_close((uv_handle_t *)&t->poll_timer, sup_on_close);
    if (!uv_is_closing((uv_handle_t *)&t->stop_timer))
        uv_close((uv_handle_t *)&t->stop_timer, sup_on_close);
}

static void sup_finish(sup_task_t *t, const sup_end_t *fallback)
{
    if (t->exited) return;
    t->exited = 1;
    uv_timer_stop(&t->stop_timer);
    if (t->attached_fd >= 0) uv_poll_stop(&t->pidpoll);
    if (t->use_poll_timer) uv_timer_stop(&t->poll_timer);
    sup_end_t end;
    if (sup_read_status(t->status_path, &end) != 0) end = *fallback;
    t->cb(t, &end, t->ud);
}

static void sup_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    sup_task_t *t = p->data;
    sup_end_t end = { (int)exit_status, term_signal, 0 };
    if (term_signal) end.exit_code = -1;
    sup_finish(t, &end);
}

static void sup_on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    sup_task_t *t = h->data;
    sup_end_t lost = { -1, 0, 1 };
    sup_finish(t, &lost);
}

static void sup_on_poll_timer(uv_timer_t *h)
{
    sup_task_t *t = h->data;
    if (kill(t->pid, 0) == 0 && sup_proc_start_time(t->pid) == t->start_time) return;
    sup_end_t lost = { -1, 0, 1 };
    sup_finish(t, &lost);
}

static sup_task_t *sup_alloc(uv_loop_t *loop, const char *status_path, sup_exit_fn cb, void *ud)
{
    sup_task_t *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->status_path = xstrdup(status_path);
    t->cb = cb;
    t->ud = ud;
    t->attached_fd = -1;
    uv_timer_init(loop, &t->stop_timer);
    t->stop_timer.data = t;
    t->open_handles = 1;
    return t;
}

int sup_spawn(uv_loop_t *loop, const sup_spawn_opts_t *o, sup_exit_fn cb, void *ud,
              sup_task_t **out, nb_err_t *err)
{
    *out = NULL;
    size_t n = 0;
    while (o->argv[n]) n++;
    if (n == 0) return err_set(err, -EINVAL, "empty command");
    int logfd = fs_open_regular(o->log_path, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL);
    if (logfd < 0) return err_set(err, -errno, "cannot open log %s: %s", o->log_path,
                                  strerror(errno));
    if (unlink(o->status_path) != 0 && errno != ENOENT) {
        close(logfd);
        return err_set(err, -errno, "cannot remove %s: %s", o->status_path, strerror(errno));
    }
    char **args = xcalloc(n + 5, sizeof *args);
    if (o->direct) {
        for (size_t i = 0; i < n; i++) args[i] = o->argv[i];
    } else {
        args[0] = (char *)o->self_exe;
        args[1] = "__task-wrap";
        args[2] = (char *)o->status_path;
        args[3] = "--";
        for (size_t i = 0; i < n; i++) args[4 + i] = o->argv[i];
    }

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = logfd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = logfd;
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = sup_on_exit;
    po.file = args[0];
    po.args = args;
    po.env = (char **)o->env;
    po.cwd = o->cwd;
    po.flags = UV_PROCESS_DETACHED;   /* setsid: own session and process group */
    po.stdio_count = 3;
    po.stdio = stdio;

    sup_task_t *t = sup_alloc(loop, o->status_path, cb, ud);
    t->proc.data = t;
    int rc = uv_spawn(loop, &t->proc, &po);
    close(logfd);
    free(args);
    if (rc < 0) {
        /* libuv: the handle must still be closed after a failed spawn. */
        t->spawned = 1;
        t->exited = 1;
        t->open_handles++;
        t->freed = 1;
        sup_close_handles(t);
        return err_set(err, rc, "cannot start %s: %s", o->argv[0], uv_strerror(rc));
    }
    t->spawned = 1;
    t->open_handles++;
    t->pid = t->proc.pid;
    t->start_time = sup_proc_start_time(t->pid);
    *out = t;
    return 0;
}

int sup_attach(uv_loop_t *loop, int pid, int64_t start_time, const char *status_path,
               sup_exit_fn cb, void *ud, sup_task_t **out, nb_err_t *err)
{
    *out = NULL;
    if (pid <= 0 || start_time <= 0 || sup_proc_start_time(pid) != start_time)
        return err_set(err, -ESRCH, "process %d is gone", pid);
    sup_task_t *t = sup_alloc(loop, status_path, cb, ud);
    t->pid = pid;
    t->start_time = start_time;
    int fd = pidfd_open(pid, 0);
    if (fd >= 0 && sup_proc_start_time(pid) != start_time) {
        close(fd);   /* the pid was recycled between our checks */
        t->freed = 1;
        t->exited = 1;
        sup_close_handles(t);
        return err_set(err, -ESRCH, "process %d is gone", pid);
    }
    if (fd >= 0) {
        uv_poll_init(loop, &t->pidpoll, fd);
        t->pidpoll.data = t;
        t->attached_fd = fd;
        t->open_handles++;
        uv_poll_start(&t->pidpoll, UV_READABLE, sup_on_pidfd);
    } else {
        LOG_W("pidfd_open failed, polling the process", "pid=%d errno=%d", pid, errno);
        uv_timer_init(loop, &t->poll_timer);
        t->poll_timer.data = t;
        t->use_poll_timer = 1;
        t->open_handles++;
        uv_timer_start(&t->poll_timer, sup_on_poll_timer, 250, 250);
    }
    *out = t;
    return 0;
}

int sup_pid(const sup_task_t *t) { return t->pid; }
int64_t sup_start_time(const sup_task_t *t) { return t->start_time; }

static void sup_signal(sup_task_t *t, int sig)
{
    if (t->exited) return;
    /* The group first; the wrapper itself if it is not a group leader
     * (cannot happen for our spawns, but a re-attached pid is checked). */
    if (kill(-t->pid, sig) != 0) kill(t->pid, sig);
}

static void sup_on_stop_timer(uv_timer_t *h)
{
    sup_task_t *t = h->data;
    uint64_t elapsed = uv_now(t->loop) - t->stop_started;
    if (t->stop_step == 1) {
        sup_signal(t, SIGTERM);
        t->stop_step = 2;
        if (elapsed < t->grace_ms) {
            uv_timer_start(&t->stop_timer, sup_on_stop_timer, t->grace_ms - elapsed, 0);
            return;
        }
    }
    if (t->stop_step == 2) {
        sup_signal(t, SIGKILL);
        t->stop_step = 3;
    }
}

void sup_stop(sup_task_t *t, uint64_t grace_ms)
{
    if (t->exited || t->stop_step) return;
    t->grace_ms = grace_ms;
    t->stop_started = uv_now(t->loop);
    sup_signal(t, SIGINT);
    t->stop_step = 1;
    uint64_t first = grace_ms < 3000 ? grace_ms : 3000;
    uv_timer_start(&t->stop_timer, sup_on_stop_timer, first, 0);
}

void sup_free(sup_task_t *t)
{
    if (!t) return;
    NB_ASSERT(t->exited);
    t->freed = 1;
    sup_close_handles(t);
}

void sup_detach(sup_task_t *t)
{
    if (!t) return;
    t->exited = 1;
    t->freed = 1;
    sup_close_handles(t);
}

/* ---- the wrapper process -------------------------------------------------- */

static void sup_wrap_write_status(const char *path, int status)
{
    char buf[64];
    int n = WIFEXITED(status)
                ? snprintf(buf, sizeof buf, "{\"exit_code\": %d}\n", WEXITSTATUS(status))
                : snprintf(buf, sizeof buf, "{\"signal\": %d}\n", WTERMSIG(status));
    nb_err_t err;
    /* No fsync: the file matters after a daemon crash, which leaves the
     * page cache intact; after a power loss the task counts as lost and
     * is retried by its policy. */
    if (fs_write_atomic(path, buf, (size_t)n, 0, &err) < 0)
        fprintf(stderr, "nbhub: cannot write task status %s: %s\n", path, err.msg);
}

int sup_wrap_main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "nbhub: __task-wrap: internal command, usage: "
                        "__task-wrap STATUS_FILE -- ARGV...\n");
        return 2;
    }
    const char *status_path = argv[1];
    /* Ignore the stop signals so the end of the child is always recorded;
     * the child gets the default dispositions back (ignored signals would
     * be inherited across exec). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "nbhub: fork: %s\n", strerror(errno));
        sup_wrap_write_status(status_path, 127 << 8);
        return 127;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[3], argv + 3);
        fprintf(stderr, "nbhub: cannot execute '%s': %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = 127 << 8;
            break;
        }
    }
    sup_wrap_write_status(status_path, status);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
