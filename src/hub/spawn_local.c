/*
 * spawn_local — the local backend of the hub (spawner.h): a notebook
 * server is a process on this machine, listening on 127.0.0.1.
 *
 *   - Started detached (UV_PROCESS_DETACHED: setsid), so it leads its own
 *     session and process group and does not die with nbhub: a restart of
 *     nbhub serve adopts it again by pid + /proc start time (a recycled
 *     pid is not mistaken for it).  stdout and stderr go to its log file.
 *   - Our own child's exit comes through libuv's SIGCHLD handling; an
 *     adopted process is not our child, so a pidfd (Linux >= 5.3) becomes
 *     readable when it exits; without one the hub's 2 s tick polls
 *     kill(pid, 0) and the start time.
 *   - Stop: SIGTERM to the group (jupyter-server shuts its kernels down on
 *     SIGTERM), SIGKILL to the group after the grace.  Kernels are not in
 *     the server's group (jupyter_client starts each in a new session), so
 *     the server's process tree is also walked (/proc, by parent pid) at
 *     the stop and again before the SIGKILL, and whatever of it is still
 *     alive when the server has exited is killed: a stop leaves no orphans.
 *     A server in a cgroup (profile limits) has the cgroup removed too,
 *     which kills anything that escaped the tree.
 *   - The log is rotated once (log -> log.1, by copy and truncate: the
 *     server holds it open with O_APPEND, so truncating is safe) when it
 *     passes log_max, checked at start and on each tick.
 */
#include "hub/spawner.h"

#include "iso/cgroup.h"
#include "sched/sup.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct tree_ent {
    int     pid;
    int64_t start;
};

struct spawn_proc {
    uv_loop_t    *loop;
    spawn_exit_fn cb;
    void         *ud;
    int           pid;
    int64_t       start_time;
    char          host[64];
    int           port;
    char         *log_path;
    int64_t       log_max;
    char         *cgroup;
    int           own;           /* our child (uv_process_t) */
    int           pidfd;         /* adopted, -1 = none (tick polls) */
    uv_process_t  proc;
    uv_poll_t     pidpoll;
    uv_timer_t    kill_timer;
    int           open_handles;
    int           exited, freed, stopping;
    struct tree_ent *tree;       /* descendants seen at the stop */
    size_t        ntree;
};

/* ---- /proc ---------------------------------------------------------------- */

struct pstat {
    int     pid, ppid;
    int64_t start, rss_pages;
};

static int read_pstat(int pid, struct pstat *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* fields from 3 on: state ppid ... (22 starttime, 24 rss) */
    long long f[24] = { 0 };
    int field = 3;
    p += 2;
    while (*p && field <= 24) {
        char *end;
        if (field == 3) {
            p = strchr(p, ' ');
            if (!p) break;
            p++;
            field++;
            continue;
        }
        f[field - 1] = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        while (*p == ' ') p++;
        field++;
    }
    out->pid = pid;
    out->ppid = (int)f[3];
    out->start = f[21];
    out->rss_pages = f[23];
    return field > 24 ? 0 : -1;
}

/* Every process's (pid, ppid, start, rss). */
static struct pstat *scan_all(size_t *n)
{
    *n = 0;
    DIR *d = opendir("/proc");
    if (!d) return NULL;
    size_t cap = 256;
    struct pstat *v = xmalloc(cap * sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        if (*n == cap) v = xrealloc(v, (cap *= 2) * sizeof *v);
        if (read_pstat(atoi(e->d_name), &v[*n]) == 0) (*n)++;
    }
    closedir(d);
    return v;
}

/* pid's descendants (not pid itself) into *out; returns their count. */
static size_t descendants(int pid, struct tree_ent **out, int64_t *rss_pages)
{
    size_t n, m = 0;
    struct pstat *all = scan_all(&n);
    int *queue = xmalloc((n + 1) * sizeof *queue);
    *out = NULL;
    size_t qh = 0, qt = 0;
    queue[qt++] = pid;
    while (qh < qt) {
        int p = queue[qh++];
        for (size_t i = 0; i < n; i++) {
            if (all[i].ppid != p || all[i].pid == pid) continue;
            *out = xrealloc(*out, (m + 1) * sizeof **out);
            (*out)[m++] = (struct tree_ent){ all[i].pid, all[i].start };
            if (rss_pages) *rss_pages += all[i].rss_pages;
            if (qt < n + 1) queue[qt++] = all[i].pid;
        }
    }
    free(queue);
    free(all);
    return m;
}

int64_t spawn_local_tree_rss(int pid)
{
    struct pstat self;
    if (pid <= 0 || read_pstat(pid, &self) < 0) return -1;
    int64_t pages = self.rss_pages;
    struct tree_ent *t = NULL;
    descendants(pid, &t, &pages);
    free(t);
    return pages * (int64_t)sysconf(_SC_PAGESIZE);
}

int spawn_local_free_port(int *port, nb_err_t *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return err_set(err, -errno, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, -e, "cannot find a free port: %s", strerror(e));
    }
    close(fd);
    *port = ntohs(a.sin_port);
    return 0;
}

static int local_address(char *host, size_t n, int *port, nb_err_t *err)
{
    snprintf(host, n, "127.0.0.1");
    return spawn_local_free_port(port, err);
}

/* ---- log rotation --------------------------------------------------------- */

static void log_rotate(const char *path, int64_t max)
{
    struct stat st;
    if (!path || max <= 0 || lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= max) return;
    char *old = xasprintf("%s.1", path);
    int in = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    int out = in >= 0 ? open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    if (in >= 0 && out >= 0) {
        char buf[65536];
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0)
            if (write(out, buf, (size_t)r) != r) break;
        if (ftruncate(in, 0) < 0) LOG_W("server log not truncated", "path=%s errno=%d", path, errno);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    free(old);
}

/* ---- handles ---------------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
    spawn_proc_t *p = h->data;
    if (h == (uv_handle_t *)&p->pidpoll) close(p->pidfd);
    if (--p->open_handles == 0 && p->freed) {
        free(p->log_path);
        free(p->cgroup);
        free(p->tree);
        free(p);
    }
}

static spawn_proc_t *alloc_proc(uv_loop_t *loop, spawn_exit_fn cb, void *ud, const char *log_path,
                                int64_t log_max, const char *cgroup)
{
    spawn_proc_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->cb = cb;
    p->ud = ud;
    p->pidfd = -1;
    p->log_path = log_path ? xstrdup(log_path) : NULL;
    p->log_max = log_max;
    p->cgroup = cgroup ? xstrdup(cgroup) : NULL;
    uv_timer_init(loop, &p->kill_timer);
    p->kill_timer.data = p;
    p->open_handles = 1;
    return p;
}

static void kill_tree(spawn_proc_t *p)
{
    for (size_t i = 0; i < p->ntree; i++)
        if (sup_proc_start_time(p->tree[i].pid) == p->tree[i].start) kill(p->tree[i].pid, SIGKILL);
}

/* Remember the server's descendants (merged with what we saw before). */
static void snapshot_tree(spawn_proc_t *p)
{
    struct tree_ent *t = NULL;
    size_t n = descendants(p->pid, &t, NULL);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        for (k = 0; k < p->ntree; k++)
            if (p->tree[k].pid == t[i].pid && p->tree[k].start == t[i].start) break;
        if (k < p->ntree) continue;
        p->tree = xrealloc(p->tree, (p->ntree + 1) * sizeof *p->tree);
        p->tree[p->ntree++] = t[i];
    }
    free(t);
}

static void finish(spawn_proc_t *p, int code, int sig)
{
    if (p->exited) return;
    p->exited = 1;
    uv_timer_stop(&p->kill_timer);
    if (p->pidfd >= 0) uv_poll_stop(&p->pidpoll);
    /* What the server left behind (its kernels, if it was killed before it
     * could shut them down). */
    if (p->stopping) {
        kill(-p->pid, SIGKILL);
        kill_tree(p);
    }
    if (p->cgroup && p->stopping) cgroup_remove(p->cgroup);
    p->cb(p, code, sig, p->ud);
}

static void proc_on_exit(uv_process_t *h, int64_t status, int sig)
{
    spawn_proc_t *p = h->data;
    finish(p, sig ? -1 : (int)status, sig);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    finish(h->data, -1, 0);
}

static int local_start(uv_loop_t *loop, const spawn_spec_t *s, spawn_exit_fn cb, void *ud,
                       spawn_proc_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!s->argv || !s->argv[0]) return err_set(err, -EINVAL, "empty command");
    log_rotate(s->log_path, s->log_max);
    int logfd = fs_open_regular(s->log_path, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL);
    if (logfd < 0) return err_set(err, -errno, "cannot open log %s: %s", s->log_path, strerror(errno));
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = logfd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = logfd;
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.exit_cb = proc_on_exit;
    po.file = s->argv[0];
    po.args = (char **)s->argv;
    po.env = (char **)s->env;
    po.cwd = s->cwd;
    po.flags = UV_PROCESS_DETACHED;
    po.stdio_count = 3;
    po.stdio = stdio;
    spawn_proc_t *p = alloc_proc(loop, cb, ud, s->log_path, s->log_max, s->cgroup);
    p->proc.data = p;
    p->own = 1;
    int rc = uv_spawn(loop, &p->proc, &po);
    close(logfd);
    p->open_handles++;
    if (rc < 0) {
        p->exited = 1;
        p->freed = 1;
        uv_close((uv_handle_t *)&p->proc, on_close);
        uv_close((uv_handle_t *)&p->kill_timer, on_close);
        return err_set(err, rc, "cannot start %s: %s", s->argv[0], uv_strerror(rc));
    }
    p->pid = p->proc.pid;
    p->start_time = sup_proc_start_time(p->pid);
    *out = p;
    return 0;
}

static int local_adopt(uv_loop_t *loop, const spawn_identity_t *id, const char *log_path, int64_t log_max,
                       const char *cgroup, spawn_exit_fn cb, void *ud, spawn_proc_t **out, nb_err_t *err)
{
    *out = NULL;
    if (id->pid <= 0 || id->start_time <= 0 || sup_proc_start_time(id->pid) != id->start_time)
        return err_set(err, -ESRCH, "process %d is gone", id->pid);
    int fd = pidfd_open(id->pid, 0);
    if (fd >= 0 && sup_proc_start_time(id->pid) != id->start_time) {
        close(fd);   /* recycled between the two checks */
        return err_set(err, -ESRCH, "process %d is gone", id->pid);
    }
    spawn_proc_t *p = alloc_proc(loop, cb, ud, log_path, log_max, cgroup);
    p->pid = id->pid;
    p->start_time = id->start_time;
    snprintf(p->host, sizeof p->host, "%s", id->host);
    p->port = id->port;
    if (fd >= 0) {
        p->pidfd = fd;
        uv_poll_init(loop, &p->pidpoll, fd);
        p->pidpoll.data = p;
        p->open_handles++;
        uv_poll_start(&p->pidpoll, UV_READABLE, on_pidfd);
    }
    *out = p;
    return 0;
}

static void local_identity(const spawn_proc_t *p, spawn_identity_t *out)
{
    memset(out, 0, sizeof *out);
    out->pid = p->pid;
    out->start_time = p->start_time;
}

static void local_tick(spawn_proc_t *p)
{
    if (p->exited) return;
    log_rotate(p->log_path, p->log_max);
    if (!p->own && p->pidfd < 0 && (kill(p->pid, 0) != 0 || sup_proc_start_time(p->pid) != p->start_time))
        finish(p, -1, 0);
}

static void on_kill_timer(uv_timer_t *h)
{
    spawn_proc_t *p = h->data;
    if (p->exited) return;
    LOG_I("server did not stop; sending SIGKILL", "pid=%d", p->pid);
    snapshot_tree(p);
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    kill_tree(p);
    /* An adopted process without a pidfd is seen gone by the next tick. */
}

static void local_stop(spawn_proc_t *p, uint64_t grace_ms)
{
    if (p->exited || p->stopping) return;
    p->stopping = 1;
    snapshot_tree(p);
    if (kill(-p->pid, SIGTERM) != 0) kill(p->pid, SIGTERM);
    uv_timer_start(&p->kill_timer, on_kill_timer, grace_ms, 0);
}

static int64_t local_memory(const spawn_proc_t *p)
{
    return p->exited ? -1 : spawn_local_tree_rss(p->pid);
}

static void local_free(spawn_proc_t *p)
{
    if (!p) return;
    /* Before its exit: abandoned, the process goes on (nbhub stops without
     * --stop-servers-on-exit; the next one adopts it). */
    p->exited = 1;
    uv_timer_stop(&p->kill_timer);
    p->freed = 1;
    if (p->own && !uv_is_closing((uv_handle_t *)&p->proc)) uv_close((uv_handle_t *)&p->proc, on_close);
    if (p->pidfd >= 0 && !uv_is_closing((uv_handle_t *)&p->pidpoll)) {
        uv_close((uv_handle_t *)&p->pidpoll, on_close);
    }
    if (!uv_is_closing((uv_handle_t *)&p->kill_timer)) uv_close((uv_handle_t *)&p->kill_timer, on_close);
}

const spawner_ops_t spawn_local_ops = {
    "local", local_address, local_start, local_adopt, local_identity, local_tick, local_stop,
    local_memory, local_free,
};
