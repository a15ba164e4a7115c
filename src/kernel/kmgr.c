/* kmgr — see kmgr.h. */
#include "kernel/kmgr.h"
#include "kernel/kproc.h"
#include "util/buf.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kmgr_state { KM_STARTING, KM_READY, KM_LENT, KM_STOPPING, KM_STOPPED };

struct kmgr {
    uv_loop_t      *loop;
    kconn_t        *conn;
    kproc_t        *proc;
    kclient_t      *client;
    uv_timer_t      timer;        /* start: info resend + timeout; stop: escalation */
    struct kmgr_cbs cbs;
    void           *ud;
    enum kmgr_state state;
    int             interrupt_signal;
    int             got_info, got_iopub;
    unsigned        info_period_ms;    /* kernel_info_request repeat, backing off */
    unsigned        quick_retries;     /* immediate re-asks after a reply without iopub */
    int             infos_queued;      /* a kernel_info_request was sent (or queued) */
    uint64_t        deadline_ms;
    int             escalation;    /* 0 = asked politely, 1 = SIGTERM sent, 2 = SIGKILL sent */
    int             asked;         /* shutdown_request sent (else SIGTERM is not a "did not stop") */
    char            shutdown_id[33];
    int             exited;
    int             orderly;       /* kmgr_shutdown asked: exit is not a death */
    json_t         *info;
    json_t         *env;
    /* Attach mode: a kernel someone else started (the daemon's warm pool). */
    int             attached;
    int             ext_pid;       /* its pid if known, else 0 */
    int             pidfd;         /* readable when ext_pid exits; -1 if none */
    uv_poll_t       pidpoll;
    int             shutdown_attached; /* kmgr_shutdown asks it to exit */
    int             open_handles;  /* embedded handles not yet closed */
};

static void kmgr_finish(kmgr_t *km);
static void kmgr_on_hb_lost(kclient_t *kc, void *ud);

/* libuv runs close callbacks last-closed-first, so the struct is freed
 * only when the last embedded handle reports closed. */
static void kmgr_on_handle_closed(uv_handle_t *h)
{
    kmgr_t *km = h->data;
    if (--km->open_handles > 0) return;
    /* Report first, free after: the callback may still read km as an id but
     * must not call kmgr functions on it (kmgr.h). */
    if (km->cbs.stopped) km->cbs.stopped(km, km->ud);
    json_decref(km->info);
    json_decref(km->env);
    if (km->pidfd >= 0) close(km->pidfd);
    free(km);
}

/* Everything is down: release resources and report. */
static void kmgr_finish(kmgr_t *km)
{
    if (km->state == KM_STOPPED) return;
    km->state = KM_STOPPED;
    kclient_close(km->client);
    km->client = NULL;
    kproc_close(km->proc);
    km->proc = NULL;
    kconn_free(km->conn);
    km->conn = NULL;
    uv_timer_stop(&km->timer);
    if (km->pidfd >= 0) uv_close((uv_handle_t *)&km->pidpoll, kmgr_on_handle_closed);
    uv_close((uv_handle_t *)&km->timer, kmgr_on_handle_closed);
}

static void kmgr_on_msg(kclient_t *kc, enum kchan ch, const kmsg_t *m, void *ud)
{
    kmgr_t *km = ud;
    if (km->state == KM_STARTING) {
        if (ch == KCHAN_IOPUB) km->got_iopub = 1;
        if (ch == KCHAN_SHELL && strcmp(m->msg_type, "kernel_info_reply") == 0) {
            if (!km->info) {
                km->info = json_incref(kmsg_content(m));
                km->got_info = 1;
            }
            /* A reply without any iopub message yet: our subscription had
             * not reached the kernel when it published that request's
             * status.  One round trip later it almost always has, so ask
             * again now rather than at the next timer tick (a few times;
             * the timer's backoff covers a kernel that never publishes). */
            if (!km->got_iopub && km->quick_retries < 3) {
                km->quick_retries++;
                kclient_send(km->client, KCHAN_SHELL, "kernel_info_request", NULL, NULL, NULL);
            }
        }
        if (km->got_info && km->got_iopub) {
            km->state = KM_READY;
            uv_timer_stop(&km->timer);
            if (km->attached && km->pidfd < 0)
                kclient_hb_start(km->client, 1000, 3000, kmgr_on_hb_lost);
            LOG_I("kernel ready", "pid=%d", kmgr_pid(km));
            km->cbs.ready(km, 0, NULL, km->ud);
        }
        return;
    }
    if (km->state == KM_STOPPING && km->asked && ch == KCHAN_CONTROL &&
        strcmp(m->msg_type, "shutdown_reply") == 0 && m->parent_id &&
        strcmp(m->parent_id, km->shutdown_id) == 0) {
        /* ipykernel answers, then stops its loops and exits: the exit is
         * what we wait for.  A kernel we cannot watch (attached without a
         * pid) has nothing more to tell: its reply is the end. */
        LOG_D("kernel acknowledged shutdown", "pid=%d", kmgr_pid(km));
        if (!km->proc && km->pidfd < 0) kmgr_finish(km);
        return;
    }
    if (km->state == KM_READY || km->state == KM_STOPPING)
        if (km->cbs.msg) km->cbs.msg(km, ch, m, km->ud);
}

/* The kernel is gone (exit observed, pidfd readable, or heartbeat lost). */
static void kmgr_dead(kmgr_t *km, const char *why)
{
    km->exited = 1;
    /* What it published before dying is still in the socket: deliver it
     * (a held iopub has not been read) before the death is reported. */
    if (km->client) kclient_drain_iopub(km->client);
    switch (km->state) {
    case KM_STARTING: {
        char msg[256];
        snprintf(msg, sizeof msg, "kernel %s during start-up", why);
        km->state = KM_STOPPING;
        km->cbs.ready(km, -ECHILD, msg, km->ud);
        kmgr_finish(km);
        break;
    }
    case KM_READY:
    case KM_LENT:
        km->state = KM_STOPPING;
        LOG_W("kernel died", "why=\"%s\"", why);
        if (km->cbs.died) km->cbs.died(km, why, km->ud);
        kmgr_finish(km);
        break;
    case KM_STOPPING:
        /* Killed by kmgr_kill (e.g. it ignored an interrupt): still a death
         * for the caller; an orderly shutdown is not. */
        if (!km->orderly && km->cbs.died) km->cbs.died(km, why, km->ud);
        kmgr_finish(km);
        break;
    case KM_STOPPED:
        break;
    }
}

static void kmgr_on_exit(kproc_t *p, int64_t status, int sig, void *ud)
{
    char why[128];
    if (sig) snprintf(why, sizeof why, "killed by signal %d (%s)", sig, strsignal(sig));
    else snprintf(why, sizeof why, "exited with status %lld", (long long)status);
    kmgr_dead(ud, why);
}

static void kmgr_on_pidfd(uv_poll_t *h, int status, int events)
{
    kmgr_t *km = h->data;
    uv_poll_stop(h);
    kmgr_dead(km, "exited");
}

static void kmgr_on_hb_lost(kclient_t *kc, void *ud)
{
    kmgr_dead(ud, "stopped answering heartbeats");
}

static void kmgr_on_start_timer(uv_timer_t *t)
{
    kmgr_t *km = t->data;
    if (km->state != KM_STARTING) return;
    if (uv_now(km->loop) >= km->deadline_ms) {
        km->state = KM_STOPPING;
        km->cbs.ready(km, -ETIMEDOUT, NULL, km->ud);
        kmgr_kill(km);
        return;
    }
    /* Until shell is connected, the first request waits in its queue (it
     * goes out the moment the kernel binds) and more would only be answered,
     * with two iopub statuses each, later: just look again in 250 ms.  The
     * quick re-asks after a reply without iopub cover the slow joiner. */
    if (km->infos_queued && !kclient_ready(km->client, KCHAN_SHELL)) {
        uv_timer_start(&km->timer, kmgr_on_start_timer, 250, 0);
        return;
    }
    kclient_send(km->client, KCHAN_SHELL, "kernel_info_request", NULL, NULL, NULL);
    km->infos_queued = 1;
    /* Ask again soon, then less often: the first request's iopub messages
     * are often published before our SUB socket's subscription reached the
     * kernel (ZeroMQ's slow joiner), and a ready kernel answers in a
     * millisecond, so a fixed 250 ms period would cost up to 250 ms of
     * latency per task on warm kernels. */
    km->info_period_ms = km->info_period_ms ? km->info_period_ms * 2 : 5;
    if (km->info_period_ms > 250) km->info_period_ms = 250;
    uv_timer_start(&km->timer, kmgr_on_start_timer, km->info_period_ms, 0);
}

/* nbclient starts IPython kernels with their history in memory: a run
 * does not write the user's ~/.ipython/.../history.sqlite, and parallel
 * runs do not contend for that SQLite file.  A spec that chose its own
 * hist_file keeps it.  Takes and returns argv (NULL-terminated, malloc'd). */
static char **kmgr_history_in_memory(char **argv)
{
    size_t n = 0;
    for (; argv[n]; n++)
        if (strncmp(argv[n], "--HistoryManager.hist_file", 26) == 0) return argv;
    argv = xrealloc(argv, (n + 2) * sizeof *argv);
    argv[n] = xstrdup("--HistoryManager.hist_file=:memory:");
    argv[n + 1] = NULL;
    return argv;
}

int kmgr_start(uv_loop_t *loop, const kspec_t *spec, const struct kmgr_opts *o,
               const struct kmgr_cbs *cbs, void *ud, kmgr_t **out, nb_err_t *err)
{
    kmgr_t *km = xcalloc(1, sizeof *km);
    km->loop = loop;
    km->cbs = *cbs;
    km->ud = ud;
    km->interrupt_signal = spec->interrupt_signal;
    km->pidfd = -1;
    km->open_handles = 1;   /* the timer */
    int rc = kconn_new(!o->tcp, &km->conn, err);
    if (rc < 0) {
        free(km);
        return rc;
    }
    /* The env nbhub adds: the spec's env (substituted) and our extras. */
    char parent[64];
    snprintf(parent, sizeof parent, "JPY_PARENT_PID=%ld", (long)getpid());
    size_t nextra = 0;
    while (o->extra_env && o->extra_env[nextra]) nextra++;
    char **extra = xcalloc(nextra + 3, sizeof *extra);
    for (size_t i = 0; i < nextra; i++) extra[i] = o->extra_env[i];
    extra[nextra] = parent;
    extra[nextra + 1] = (char *)"PYDEVD_DISABLE_FILE_VALIDATION=1";
    char **env = kspec_env(spec, extra);
    char **argv = kspec_argv(spec, km->conn->file);
    if (!o->keep_history && kspec_is_ipykernel(spec)) argv = kmgr_history_in_memory(argv);

    km->env = json_object();
    const char *key;
    json_t *val;
    if (spec->env)
        json_object_foreach(spec->env, key, val) {
            for (char **e = env; *e; e++) {
                size_t kl = strlen(key);
                if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
                    json_object_set_new(km->env, key, json_string(*e + kl + 1));
            }
        }
    for (size_t i = 0; i < nextra + 2; i++) {
        const char *eq = strchr(extra[i], '=');
        if (eq) {
            char *k = xstrndup(extra[i], (size_t)(eq - extra[i]));
            json_object_set_new(km->env, k, json_string(eq + 1));
            free(k);
        }
    }
    free(extra);

    rc = o->keeper ? kproc_spawn_keeper(loop, argv, env, o->cwd, km->conn->dir, kmgr_on_exit, km,
                                        &km->proc, err)
                   : kproc_spawn(loop, argv, env, o->cwd, kmgr_on_exit, km, &km->proc, err);
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
    for (char **p = env; *p; p++) free(*p);
    free(env);
    if (rc < 0) {
        kconn_free(km->conn);
        json_decref(km->env);
        free(km);
        return rc;
    }
    rc = kclient_open(loop, km->conn, kmgr_on_msg, km, &km->client, err);
    uv_timer_init(loop, &km->timer);
    km->timer.data = km;
    if (rc < 0) {
        km->state = KM_STOPPING;
        kproc_close(km->proc);
        km->proc = NULL;
        kmgr_finish(km);
        return rc;
    }
    unsigned to = o->start_timeout_ms ? o->start_timeout_ms : 60000;
    km->deadline_ms = uv_now(loop) + to;
    uv_timer_start(&km->timer, kmgr_on_start_timer, 0, 0);
    LOG_I("kernel starting", "name=%s pid=%d transport=%s", spec->name, kmgr_pid(km),
          o->tcp ? "tcp" : "ipc");
    *out = km;
    return 0;
}

/* Requests go out only to a kernel that is ready (or being stopped). */
static int kmgr_can_send(const kmgr_t *km)
{
    return (km->state == KM_READY || km->state == KM_STOPPING) && km->client;
}

int kmgr_request(kmgr_t *km, enum kchan ch, const char *msg_type, json_t *content, char *msg_id)
{
    if (!kmgr_can_send(km)) {
        json_decref(content);
        return -ENOTCONN;
    }
    return kclient_send(km->client, ch, msg_type, content, NULL, msg_id);
}

int kmgr_execute(kmgr_t *km, const char *code, int stop_on_error, char *msg_id)
{
    if (!kmgr_can_send(km)) return -ENOTCONN;
    /* Written as text, as json_pack and a dump would spell it: through the
     * tree this was a seventh of the cost of sending a cell. */
    buf_t b = BUF_INIT;
    buf_reserve(&b, strlen(code) + 128);
    buf_puts(&b, "{\"code\":");
    jwrite_string(&b, code, strlen(code));
    buf_puts(&b, ",\"silent\":false,\"store_history\":true,\"user_expressions\":{},"
                 "\"allow_stdin\":false,\"stop_on_error\":");
    buf_puts(&b, stop_on_error ? "true}" : "false}");
    kbytes_t c = { .len = b.len };
    c.data = buf_detach(&b);
    return kclient_send_text(km->client, KCHAN_SHELL, "execute_request", c, msg_id);
}

/* Signal an attached kernel's process group (it leads one when the daemon
 * started it), falling back to the pid. */
static int kmgr_signal_ext(kmgr_t *km, int sig)
{
    pid_t pg = getpgid(km->ext_pid);
    if (pg == km->ext_pid && kill(-pg, sig) == 0) return 0;
    return kill(km->ext_pid, sig) == 0 ? 0 : -errno;
}

/* Signal the kernel's group, whoever started it. */
static int kmgr_signal(kmgr_t *km, int sig)
{
    if (km->proc) return kproc_signal_group(km->proc, sig);
    if (km->ext_pid > 0) return kmgr_signal_ext(km, sig);
    return -ESRCH;
}

int kmgr_interrupt(kmgr_t *km)
{
    if (km->state == KM_STOPPED || km->exited) return -ESRCH;
    if (km->interrupt_signal && km->proc) return kproc_signal_group(km->proc, SIGINT);
    if (km->interrupt_signal && km->ext_pid > 0) return kmgr_signal_ext(km, SIGINT);
    if (!km->client) return -ENOTCONN;
    return kclient_send(km->client, KCHAN_CONTROL, "interrupt_request", NULL, NULL, NULL);
}

static void kmgr_on_stop_timer(uv_timer_t *t)
{
    kmgr_t *km = t->data;
    if (km->state != KM_STOPPING || km->exited) return;
    if (km->escalation == 0) {
        km->escalation = 1;
        if (km->asked) LOG_I("kernel did not stop; sending SIGTERM", "pid=%d", kmgr_pid(km));
        else LOG_D("stopping a kernel that cannot be asked; sending SIGTERM", "pid=%d", kmgr_pid(km));
        if (kmgr_signal(km, SIGTERM) < 0 && km->attached) {
            kmgr_finish(km);   /* no pid to signal: we can only let go */
            return;
        }
        uv_timer_start(&km->timer, kmgr_on_stop_timer, 2000, 0);
    } else {
        km->escalation = 2;
        LOG_W("kernel ignored SIGTERM; sending SIGKILL", "pid=%d", kmgr_pid(km));
        kmgr_signal(km, SIGKILL);
    }
}

/* shutdown_request on control.  Since kmgr_lend closed our sockets, a lent
 * kernel is reached through a new connection to its control socket alone:
 * ROUTER sockets take a new peer at any time. */
static int kmgr_ask_shutdown(kmgr_t *km)
{
    if (!km->client) {
        nb_err_t err;
        if (kclient_open_control(km->loop, km->conn, kmgr_on_msg, km, &km->client, &err) < 0) {
            LOG_W("cannot reach the kernel to ask it to stop", "pid=%d error=\"%s\"", kmgr_pid(km), err.msg);
            return -ENOTCONN;
        }
    }
    int rc = kclient_send(km->client, KCHAN_CONTROL, "shutdown_request", json_pack("{s:b}", "restart", 0),
                          NULL, km->shutdown_id);
    if (rc < 0) return rc;
    /* It closes its sockets before it exits: reconnecting to them would be
     * five refused connects every 100 ms until the exit is seen.  (A socket
     * still connecting keeps trying until the request has gone out.) */
    kclient_final(km->client);
    km->asked = 1;
    return 0;
}

void kmgr_shutdown(kmgr_t *km, unsigned grace_ms)
{
    if (km->state == KM_STOPPED || km->state == KM_STOPPING) return;
    int was_ready = km->state == KM_READY || km->state == KM_LENT;
    km->state = KM_STOPPING;
    km->orderly = 1;
    if (km->attached && !km->shutdown_attached) {
        kmgr_finish(km);   /* not ours to stop: disconnect, leave it running */
        return;
    }
    if (km->exited) {
        kmgr_finish(km);
        return;
    }
    /* A ready (or lent and given back) kernel is asked and left the grace
     * to exit by itself: ipykernel replies on control, runs its shutdown
     * (the user's atexit handlers, history, its sockets' files) and exits.
     * SIGTERM would skip all of that.  A kernel still starting cannot be
     * asked (its handlers may not be up): SIGTERM at once. */
    if (!was_ready || kmgr_ask_shutdown(km) < 0) grace_ms = 0;
    uv_timer_stop(&km->timer);
    uv_timer_start(&km->timer, kmgr_on_stop_timer, grace_ms, 0);
}

void kmgr_kill(kmgr_t *km)
{
    if (km->state == KM_STOPPED) return;
    km->state = KM_STOPPING;
    km->escalation = 2;
    uv_timer_stop(&km->timer);
    if (km->exited) {
        kmgr_finish(km);
        return;
    }
    if (kmgr_signal(km, SIGKILL) < 0) kmgr_finish(km);
}

void kmgr_hold_iopub(kmgr_t *km, int hold)
{
    if (km->client && km->state == KM_READY) kclient_hold_iopub(km->client, hold);
}

const json_t *kmgr_kernel_info(const kmgr_t *km) { return km->info; }
const json_t *kmgr_env(const kmgr_t *km) { return km->env; }
int kmgr_lend(kmgr_t *km, const char **conn_file)
{
    if (km->state != KM_READY || km->attached) return -EBUSY;
    /* Our sockets go: the borrower must be the kernel's only client, or its
     * outputs would be read twice.  The process stays supervised. */
    kclient_close(km->client);
    km->client = NULL;
    km->state = KM_LENT;
    *conn_file = km->conn->file;
    return 0;
}

int kmgr_keep(kmgr_t *km, int64_t until_s, char **conn_file)
{
    if (km->state != KM_READY || !km->proc || km->exited) return -EBUSY;
    int pid = kproc_pid(km->proc);
    char *file = xstrdup(km->conn->file);
    int rc = kproc_keep(km->proc, until_s);
    if (rc < 0) {
        free(file);
        return rc;
    }
    km->proc = NULL;   /* freed by kproc_keep */
    /* The keeper removes the connection file and sockets when it stops the
     * kernel: forget the directory so that kmgr_finish leaves them. */
    free(km->conn->dir);
    km->conn->dir = NULL;
    km->orderly = 1;
    km->state = KM_STOPPING;
    kmgr_finish(km);
    LOG_I("kernel kept", "pid=%d until=%lld file=%s", pid, (long long)until_s, file);
    *conn_file = file;
    return 0;
}

int kmgr_pid(const kmgr_t *km) { return km->proc ? kproc_pid(km->proc) : (km->ext_pid > 0 ? km->ext_pid : -1); }

int kmgr_attach(uv_loop_t *loop, const char *conn_file, int pid, int shutdown_kernel,
                unsigned start_timeout_ms, const struct kmgr_cbs *cbs, void *ud,
                kmgr_t **out, nb_err_t *err)
{
    kconn_t *conn;
    int rc = kconn_load(conn_file, &conn, err);
    if (rc < 0) return rc;
    return kmgr_attach_conn(loop, conn, conn_file, pid, shutdown_kernel, start_timeout_ms, cbs, ud, out, err);
}

int kmgr_attach_conn(uv_loop_t *loop, kconn_t *conn, const char *conn_file, int pid, int shutdown_kernel,
                     unsigned start_timeout_ms, const struct kmgr_cbs *cbs, void *ud,
                     kmgr_t **out, nb_err_t *err)
{
    kmgr_t *km = xcalloc(1, sizeof *km);
    km->loop = loop;
    km->cbs = *cbs;
    km->ud = ud;
    km->attached = 1;
    km->ext_pid = pid;
    km->shutdown_attached = shutdown_kernel;
    km->interrupt_signal = pid > 0;   /* without a pid only interrupt_request works */
    km->pidfd = -1;
    km->env = json_object();
    km->conn = conn;
    int rc = 0;
    if (pid > 0) {
        km->pidfd = pidfd_open(pid, 0);
        if (km->pidfd < 0 && (errno == ENOSYS || errno == EPERM)) {
            /* Kernels before 5.3 (and valgrind) lack pidfd_open: the
             * heartbeat watches the kernel instead; signals still use pid. */
            LOG_D("pidfd_open unavailable; using the heartbeat", "pid=%d", pid);
        } else if (km->pidfd < 0) {
            rc = err_set(err, -errno, "kernel pid %d: %s", pid, strerror(errno));
            kconn_free(km->conn);
            json_decref(km->env);
            free(km);
            return rc;
        }
    }
    rc = kclient_open(loop, km->conn, kmgr_on_msg, km, &km->client, err);
    uv_timer_init(loop, &km->timer);
    km->timer.data = km;
    km->open_handles = 1;
    if (km->pidfd >= 0) {
        uv_poll_init(loop, &km->pidpoll, km->pidfd);
        km->pidpoll.data = km;
        km->open_handles++;
        uv_poll_start(&km->pidpoll, UV_READABLE, kmgr_on_pidfd);
    }
    if (rc < 0) {
        km->state = KM_STOPPING;
        kmgr_finish(km);
        return rc;
    }
    km->deadline_ms = uv_now(loop) + (start_timeout_ms ? start_timeout_ms : 60000);
    uv_timer_start(&km->timer, kmgr_on_start_timer, 0, 0);
    LOG_I("attaching to kernel", "file=%s pid=%d", conn_file, pid);
    *out = km;
    return 0;
}
