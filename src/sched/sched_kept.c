/*
 * sched_kept — kernels kept after a failed notebook task (`post_mortem:`).
 *
 * The task's `nbhub run --keep-kernel-on-error` leaves its kernel under a
 * keeper process (src/cli/cmd_kernel_keep.c) and describes it in
 * <task>.kernel.json.  The keeper stops the kernel at its deadline by
 * itself, also when the daemon is down; the daemon ends it sooner (DELETE,
 * a retry of the task, its own exit) and double-checks the deadline.
 *
 * Trust: the file is written by the task, i.e. by the flow owner's code
 * (under isolation: system, their account).  The pid in it is only
 * signalled while it names a live process started at the recorded start
 * time and owned by the task's account (the owner of the run directory
 * under system, our own uid otherwise) — so a forged file can at worst
 * make us stop one of the owner's own processes.  The connection file's
 * path is recorded, never opened: it holds the kernel's key, is readable by
 * the account alone, and the API shows the path to the owner and admins.
 *
 * Stopping: SIGTERM to the keeper (it SIGTERMs the kernel, SIGKILLs its
 * group 2 s later, removes the connection file); 3 s later we SIGKILL the
 * group ourselves if it is still there, and remove the task's cgroup (its
 * limits held the kernel until then) — the cgroup kill is the last word.
 * State: the store's task_runs.kernel_* columns (the truth, surviving a
 * restart) and a list in memory (the timers).
 */
#include "sched/sched_int.h"
#include "iso/cgroup.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEPT_KILL_GRACE_US 3000000

struct skept {
    int64_t       task_run;
    int           pid;
    int64_t       start_time;
    int64_t       until_us;
    int64_t       kill_at_us;   /* stopping: SIGKILL the group then; 0 = kept */
    char         *cgroup;       /* the task's leaf, removed at the end; NULL = none */
    sched_t      *s;
    int           pidfd;        /* readable when the keeper exits, -1 = not watched */
    uv_poll_t    *poll;
    struct skept *next;
};

/* The keeper still running, and still the one recorded? */
static int kept_alive(const struct skept *k)
{
    return k->pid > 1 && k->start_time > 0 && sup_proc_start_time(k->pid) == k->start_time;
}

/* Real uid of a process, or -1. */
static long kept_proc_uid(int pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    long uid = -1;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, "Uid:", 4) == 0) {
            uid = strtol(buf + 4, NULL, 10);
            break;
        }
    fclose(f);
    return uid;
}

static void kept_arm(sched_t *s);

static void kept_unwatch(struct skept *k)
{
    if (k->poll) {
        uv_poll_stop(k->poll);
        k->poll->data = k->s;
        uv_close((uv_handle_t *)k->poll, sched_handle_close);
        k->poll = NULL;
    }
    if (k->pidfd >= 0) close(k->pidfd);
    k->pidfd = -1;
}

static void kept_free(struct skept *k)
{
    kept_unwatch(k);
    free(k->cgroup);
    free(k);
}

/* The keeper exited: the kernel ended (its deadline, `exit` in a console,
 * a kill).  Forget it now, not at its deadline, so the API tells the truth. */
static void kept_on_exit(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct skept *k = h->data;
    sched_t *s = k->s;
    kept_unwatch(k);
    if (!k->kill_at_us) {
        LOG_I("kept kernel ended", "task_run=%lld pid=%d", (long long)k->task_run, k->pid);
        nb_err_t err;
        if (store_task_clear_kernel(s->o.store, k->task_run, &err) < 0)
            LOG_W("kept kernel not cleared in the store", "task_run=%lld error=\"%s\"",
                  (long long)k->task_run, err.msg);
        sched_changed(s);
    }
    k->kill_at_us = sched_now_us();   /* the sweep removes its cgroup and the entry */
    kept_arm(s);
}

static void kept_watch(sched_t *s, struct skept *k)
{
    k->s = s;
    k->pidfd = pidfd_open(k->pid, 0);
    if (k->pidfd < 0) return;   /* no pidfd (old kernel): the deadline timer still ends it */
    if (!kept_alive(k)) {       /* the pid was reused between the check and the open */
        close(k->pidfd);
        k->pidfd = -1;
        return;
    }
    k->poll = xcalloc(1, sizeof *k->poll);
    uv_poll_init(s->o.loop, k->poll, k->pidfd);
    s->open_handles++;
    k->poll->data = k;
    uv_poll_start(k->poll, UV_READABLE, kept_on_exit);
}

static void kept_on_timer(uv_timer_t *h)
{
    sched_t *s = h->data;
    int64_t now = sched_now_us();
    for (struct skept **pp = &s->kept; *pp;) {
        struct skept *k = *pp;
        if (!k->kill_at_us && now >= k->until_us) {
            LOG_I("kept kernel past its deadline", "task_run=%lld pid=%d", (long long)k->task_run, k->pid);
            sched_kept_end(s, k->task_run, NULL);   /* marks it stopping, does not unlink */
        }
        if (k->kill_at_us && now >= k->kill_at_us) {
            if (kept_alive(k)) kill(-k->pid, SIGKILL);
            if (k->cgroup) cgroup_remove(k->cgroup);
            *pp = k->next;
            kept_free(k);
            continue;
        }
        pp = &k->next;
    }
    kept_arm(s);
}

static void kept_arm(sched_t *s)
{
    if (s->stopping == 2) return;
    int64_t next = 0;
    for (struct skept *k = s->kept; k; k = k->next) {
        int64_t at = k->kill_at_us ? k->kill_at_us : k->until_us;
        if (!next || at < next) next = at;
    }
    if (!next) {
        if (s->kept_timer) uv_timer_stop(s->kept_timer);
        return;
    }
    if (!s->kept_timer) {
        s->kept_timer = sched_timer_new(s);
        s->kept_timer->data = s;
    }
    int64_t left = next - sched_now_us();
    uv_timer_start(s->kept_timer, kept_on_timer, left > 0 ? (uint64_t)left / 1000 + 1 : 0, 0);
}

static struct skept *kept_find(sched_t *s, int64_t task_run)
{
    for (struct skept *k = s->kept; k; k = k->next)
        if (k->task_run == task_run) return k;
    return NULL;
}

int sched_kept_take(sched_t *s, int64_t task_run, const char *kernel_file, const char *run_dir,
                    int64_t post_mortem_s, const char *cgroup, nb_err_t *err)
{
    json_t *j = jparse_file_regular(kernel_file, 64 << 10);
    unlink(kernel_file);
    if (!j) return err_set(err, -ENOENT, "no kept kernel described");
    const char *conn = json_string_value(json_object_get(j, "connection_file"));
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    json_int_t start = json_integer_value(json_object_get(j, "pid_start_time"));
    json_int_t until = json_integer_value(json_object_get(j, "kept_until"));
    int rc = 0;
    int ok = conn && conn[0] == '/' && strlen(conn) < 4096 && pid > 1 && pid < (1 << 22) && start > 0;
    for (const char *c = conn; ok && *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) ok = 0;
    if (!ok) {
        rc = err_set(err, -EINVAL, "%s: not a kept kernel's description", kernel_file);
        goto out;
    }
    struct skept probe = { .pid = (int)pid, .start_time = start };
    struct stat st;
    long want = s->o.system ? (stat(run_dir, &st) == 0 ? (long)st.st_uid : -1) : (long)getuid();
    if (!kept_alive(&probe) || (s->o.system && want == 0) || kept_proc_uid((int)pid) != want) {
        rc = err_set(err, -ESRCH, "the kept kernel (pid %lld) is not running as the task's account",
                     (long long)pid);
        goto out;
    }
    /* The task says until when; the flow says how long at most. */
    int64_t now = sched_now_us(), cap = now + (post_mortem_s + 5) * 1000000;
    int64_t until_us = until > 0 && until < INT64_MAX / 1000000 ? (int64_t)until * 1000000 : cap;
    if (until_us > cap) until_us = cap;
    if ((rc = store_task_set_kernel(s->o.store, task_run, conn, (int)pid, start, until_us, err)) < 0)
        goto out;
    struct skept *k = xcalloc(1, sizeof *k);
    k->task_run = task_run;
    k->pid = (int)pid;
    k->start_time = start;
    k->until_us = until_us;
    k->cgroup = cgroup ? xstrdup(cgroup) : NULL;
    k->next = s->kept;
    s->kept = k;
    kept_watch(s, k);
    LOG_I("kernel kept for a post-mortem", "task_run=%lld pid=%d for_s=%lld", (long long)task_run, k->pid,
          (long long)((until_us - now) / 1000000));
    kept_arm(s);
out:
    json_decref(j);
    return rc;
}

int sched_kept_end(sched_t *s, int64_t task_run, nb_err_t *err)
{
    struct skept *k = kept_find(s, task_run);
    if (!k || k->kill_at_us) return err_set(err, -ENOENT, "no kernel is kept for this task");
    kept_unwatch(k);   /* its exit is expected now */
    if (kept_alive(k)) kill(k->pid, SIGTERM);
    k->kill_at_us = sched_now_us() + KEPT_KILL_GRACE_US;
    nb_err_t e2;
    if (store_task_clear_kernel(s->o.store, task_run, &e2) < 0)
        LOG_W("kept kernel not cleared in the store", "task_run=%lld error=\"%s\"", (long long)task_run, e2.msg);
    LOG_I("kept kernel stopped", "task_run=%lld pid=%d", (long long)task_run, k->pid);
    sched_changed(s);
    kept_arm(s);
    return 0;
}

int sched_kept_has(sched_t *s, int64_t task_run)
{
    struct skept *k = kept_find(s, task_run);
    return k && !k->kill_at_us;
}

int sched_kept_recover(sched_t *s, nb_err_t *err)
{
    store_task_runs_t l;
    int rc = store_task_kept_kernels(s->o.store, &l, err);
    if (rc < 0) return rc;
    int64_t now = sched_now_us();
    for (size_t i = 0; i < l.n; i++) {
        const store_task_run_t *t = &l.v[i];
        struct skept *k = xcalloc(1, sizeof *k);
        k->task_run = t->id;
        k->pid = t->kernel_pid;
        k->start_time = t->kernel_pid_start_time;
        k->until_us = t->kernel_kept_until;
        k->s = s;
        k->pidfd = -1;
        k->next = s->kept;
        s->kept = k;
        /* Gone already (its keeper's deadline passed while we were down),
         * past its deadline, or orphaned: its task moved on (a retry started
         * before our restart), so the kernel no longer shows its failure. */
        int orphan = t->state != STORE_TASK_FAILED && t->state != STORE_TASK_UP_FOR_RETRY;
        if (!kept_alive(k) || k->until_us <= now || orphan) {
            LOG_I("kept kernel ended at start-up", "task_run=%lld pid=%d alive=%d orphan=%d",
                  (long long)t->id, k->pid, kept_alive(k), orphan);
            sched_kept_end(s, t->id, NULL);
        } else {
            kept_watch(s, k);
        }
    }
    store_task_runs_free(&l);
    kept_arm(s);
    return 0;
}

void sched_kept_stop_all(sched_t *s)
{
    for (struct skept *k = s->kept; k; k = k->next)
        if (!k->kill_at_us) sched_kept_end(s, k->task_run, NULL);
    /* Our exit must not leave them behind: wait for the keepers (they stop
     * within ~0.1 s), then kill what is left. */
    for (int i = 0; i < 60; i++) {
        int any = 0;
        for (struct skept *k = s->kept; k; k = k->next) any |= kept_alive(k);
        if (!any) break;
        usleep(50000);
    }
    while (s->kept) {
        struct skept *k = s->kept;
        s->kept = k->next;
        if (kept_alive(k)) kill(-k->pid, SIGKILL);
        if (k->cgroup) cgroup_remove(k->cgroup);
        kept_free(k);
    }
    if (s->kept_timer) {
        sched_timer_close(s, s->kept_timer);
        s->kept_timer = NULL;
    }
}
