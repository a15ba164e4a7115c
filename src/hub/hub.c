/*
 * hub.c — notebook servers' lifecycle (hub.h).
 *
 * Every servers row is a hub_server_t in memory, loaded at hub_new; each
 * change is written to the store before it is shown (a reply, a progress
 * event), so a kill -9 of nbhub at any point leaves rows a restarted nbhub
 * can act on: a 'starting' or 'running' row with a pid is adopted (or found
 * gone and marked stopped), a 'stopping' one is adopted and stopped again.
 *
 * A start, step by step (JupyterHub's order, so its clients see the same
 * progress):
 *   1. checks: name, named servers allowed, profile exists and the user may
 *      use it, per-user maximum, not already starting or stopping;
 *   2. the row becomes 'starting' (store_server_begin) and the hooks'
 *      `starting` run (a Spark cluster adds SPARK_REMOTE);
 *   3. the backend picks the address, a new API token is stored for the
 *      server (kind 'server', scoped to it; the old one is revoked), the
 *      environment is JupyterHub's Spawner.get_env(), and the command runs
 *      (through `nbhub __as-user` under isolation: system);
 *   4. readiness: GET http://HOST:PORT/user/NAME/[SERVER/]api every 100 ms
 *      (JupyterHub polls the same URL) until it answers 2xx; meanwhile an
 *      exit or start_timeout fails the start with the tail of the server's
 *      own log in the message (jupyterhub#4003: never a bare timeout).
 *
 * A running server is watched by its backend (exit callback); its exit
 * makes it 'stopped'.  Every 2 s a tick lets the backend rotate logs and
 * poll adopted processes without a pidfd.
 */
#include "hub/hub.h"
#include "hub/hub_spark.h"

#include "auth/token.h"
#include "hub/spawner.h"
#include "iso/uacct.h"
#include "iso/workspace.h"
#include "store/store_auth.h"
#include "store/store_groups.h"
#include "store/store_hub.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUB_TICK_MS          2000
#define HUB_READY_POLL_MS    100
#define HUB_ACTIVITY_WRITE_US (60LL * 1000000)
#define HUB_LOG_TAIL         4000

struct hub_progress_sub {
    hub_server_t       *server;
    hub_progress_fn     cb;
    void               *ud;
    int                 dead;
    hub_progress_sub_t *next;
};

struct hub_server {
    hub_t       *hub;
    int64_t      id, user_id;
    char        *user, *name, *profile, *prefix;
    char        *user_options;       /* JSON object text or NULL */
    hub_state_t  state;
    char        *host;
    int          port, pid;
    int64_t      pid_start;
    char        *upstream_token;
    char        *spark_cluster;
    char        *error;
    char        *stop_reason;        /* why it last stopped or failed (kept on the row) */
    int64_t      started_at, ready_at, stopped_at, last_activity, activity_written;
    spawn_proc_t *proc;
    char       **extra_env;          /* from the starting hooks, "K=V" */
    size_t       nextra;
    uv_timer_t  *ready_timer;        /* while starting */
    uint64_t     start_mono;
    int          polling;            /* a readiness request is in flight */
    json_t      *events;             /* progress events of the current start */
    hub_progress_sub_t *subs;
    int          emitting;
    int          remove_after_stop;
    int          fail_on_exit;       /* the exit ends a start: failed */
    char        *fail_msg;           /* why it is being stopped while starting */
    hub_server_t *next;
};

struct hub {
    uv_loop_t    *loop;
    store_t      *store;
    hclient_t    *hc;
    int           own_hc;
    char         *home, *self_exe, *public_url, *hub_url, *account_tmpl;
    int           isolation_system, create_accounts, cgroups;
    const iso_limits_t *(*user_limits)(void *, const char *);
    void         *limits_ud;
    const hub_conf_t *conf;
    hub_conf_t    defconf;
    const spawner_ops_t *ops;
    hub_server_t *servers, *tail;
    hub_hooks_t  *hooks;
    size_t        nhooks;
    uv_timer_t   *tick;
    struct ready_req *reqs;
    int           shutting_down;
    void        (*shutdown_done)(void *);
    void         *shutdown_ud;
};

static void strv_free(char **v)
{
    if (v)
        for (char **p = v; *p; p++) free(*p);
    free(v);
}

static void argv_add(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n] = NULL;
}

static void timer_free_cb(uv_handle_t *h) { free(h); }

const char *hub_state_name(hub_state_t s)
{
    switch (s) {
    case HUB_STARTING: return "starting";
    case HUB_RUNNING:  return "running";
    case HUB_STOPPING: return "stopping";
    case HUB_FAILED:   return "failed";
    default:           return "stopped";
    }
}

static hub_state_t state_parse(const char *s)
{
    if (!s) return HUB_STOPPED;
    if (!strcmp(s, "starting")) return HUB_STARTING;
    if (!strcmp(s, "running")) return HUB_RUNNING;
    if (!strcmp(s, "stopping")) return HUB_STOPPING;
    if (!strcmp(s, "failed")) return HUB_FAILED;
    return HUB_STOPPED;
}

/* urllib.parse.quote(s, safe): what JupyterHub does to names in URLs and
 * client ids. */
static void quote_append(buf_t *b, const char *s, const char *safe)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("_.-~", *p) || (safe && strchr(safe, *p)))
            buf_append(b, (const char *)p, 1);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

static char *make_prefix(const char *user, const char *name)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "/user/");
    quote_append(&b, user, "@~");
    buf_puts(&b, "/");
    if (name && *name) {
        quote_append(&b, name, "@~");
        buf_puts(&b, "/");
    }
    return buf_detach(&b);
}

/* ---- servers in memory ---------------------------------------------------- */

static hub_server_t *server_from_row(hub_t *h, const store_server_t *r)
{
    hub_server_t *s = xcalloc(1, sizeof *s);
    s->hub = h;
    s->id = r->id;
    s->user_id = r->user_id;
    s->user = xstrdup(r->user_name ? r->user_name : "");
    s->name = xstrdup(r->name ? r->name : "");
    s->profile = xstrdup(r->profile ? r->profile : "");
    s->prefix = make_prefix(s->user, s->name);
    s->user_options = r->user_options ? xstrdup(r->user_options) : NULL;
    s->state = state_parse(r->state);
    s->host = r->host ? xstrdup(r->host) : NULL;
    s->port = r->port;
    s->pid = r->pid;
    s->pid_start = r->pid_start_time;
    s->upstream_token = r->upstream_token ? xstrdup(r->upstream_token) : NULL;
    s->spark_cluster = r->spark_cluster ? xstrdup(r->spark_cluster) : NULL;
    s->error = r->error ? xstrdup(r->error) : NULL;
    s->stop_reason = r->stop_reason ? xstrdup(r->stop_reason) : NULL;
    s->started_at = r->started_at;
    s->ready_at = r->ready_at;
    s->stopped_at = r->stopped_at;
    s->last_activity = s->activity_written = r->last_activity;
    return s;
}

static void server_append(hub_t *h, hub_server_t *s)
{
    if (h->tail) h->tail->next = s;
    else h->servers = s;
    h->tail = s;
}

static void subs_free(hub_server_t *s)
{
    hub_progress_sub_t *n;
    for (hub_progress_sub_t *p = s->subs; p; p = n) {
        n = p->next;
        free(p);
    }
    s->subs = NULL;
}

static void server_free(hub_server_t *s)
{
    if (s->ready_timer) {
        uv_close((uv_handle_t *)s->ready_timer, timer_free_cb);
        s->ready_timer = NULL;
    }
    if (s->proc) s->hub->ops->free(s->proc);
    subs_free(s);
    json_decref(s->events);
    free(s->user);
    free(s->name);
    free(s->profile);
    free(s->prefix);
    free(s->user_options);
    free(s->host);
    free(s->upstream_token);
    free(s->spark_cluster);
    free(s->error);
    free(s->stop_reason);
    free(s->fail_msg);
    strv_free(s->extra_env);
    free(s);
}

static void server_unlink(hub_t *h, hub_server_t *s)
{
    hub_server_t **pp = &h->servers, *prev = NULL;
    while (*pp && *pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = s->next;
    if (h->tail == s) h->tail = prev;
}

/* ---- progress --------------------------------------------------------------- */

static void subs_sweep(hub_server_t *s)
{
    hub_progress_sub_t **pp = &s->subs;
    while (*pp) {
        if ((*pp)->dead) {
            hub_progress_sub_t *d = *pp;
            *pp = d->next;
            free(d);
        } else {
            pp = &(*pp)->next;
        }
    }
}

/* Send ev (consumed) to the subscribers; a final event ends them all. */
static void emit(hub_server_t *s, json_t *ev, int final)
{
    if (!final) {
        if (!s->events) s->events = json_array();
        json_array_append(s->events, ev);
    }
    s->emitting++;
    for (hub_progress_sub_t *p = s->subs; p; p = p->next)
        if (!p->dead) {
            p->cb(ev, final, p->ud);
            if (final) p->dead = 1;
        }
    s->emitting--;
    if (!s->emitting) subs_sweep(s);
    json_decref(ev);
}

static json_t *ready_event(const hub_server_t *s)
{
    char msg[300];
    snprintf(msg, sizeof msg, "Server ready at %s", s->prefix);
    return json_pack("{s:i, s:b, s:s, s:s, s:s}", "progress", 100, "ready", 1, "message", msg,
                     "html_message", msg, "url", s->prefix);
}

static json_t *failed_event(const hub_server_t *s)
{
    /* A start that ends in a stop (cancelled, the user deleted) says who
     * or what stopped it. */
    if (s->state != HUB_FAILED && s->stop_reason)
        return json_pack("{s:i, s:b, s:s+}", "progress", 100, "failed", 1, "message", "The server was stopped: ",
                         s->stop_reason);
    const char *m = s->error ? s->error : "the server is not running";
    return json_pack("{s:i, s:b, s:s}", "progress", 100, "failed", 1, "message", m);
}

int hub_progress_subscribe(hub_t *h, hub_server_t *s, hub_progress_fn cb, void *ud,
                           hub_progress_sub_t **out)
{
    (void)h;
    *out = NULL;
    if (s->state == HUB_RUNNING) {
        json_t *ev = ready_event(s);
        cb(ev, 1, ud);
        json_decref(ev);
        return 0;
    }
    if (s->state == HUB_FAILED) {
        json_t *ev = failed_event(s);
        cb(ev, 1, ud);
        json_decref(ev);
        return 0;
    }
    if (s->state != HUB_STARTING) return -ESRCH;
    size_t i;
    json_t *ev;
    json_array_foreach(s->events, i, ev) cb(ev, 0, ud);
    hub_progress_sub_t *p = xcalloc(1, sizeof *p);
    p->server = s;
    p->cb = cb;
    p->ud = ud;
    p->next = s->subs;
    s->subs = p;
    *out = p;
    return 1;
}

void hub_progress_unsubscribe(hub_t *h, hub_progress_sub_t *sub)
{
    (void)h;
    if (!sub) return;
    hub_server_t *s = sub->server;
    sub->dead = 1;
    if (!s->emitting) subs_sweep(s);
}

/* ---- hooks ------------------------------------------------------------------ */

void hub_add_hooks(hub_t *h, const hub_hooks_t *hooks)
{
    h->hooks = xrealloc(h->hooks, (h->nhooks + 1) * sizeof *h->hooks);
    h->hooks[h->nhooks++] = *hooks;
}

void hub_server_setenv(hub_server_t *s, const char *key, const char *value)
{
    s->extra_env = xrealloc(s->extra_env, (s->nextra + 2) * sizeof *s->extra_env);
    s->extra_env[s->nextra++] = xasprintf("%s=%s", key, value ? value : "");
    s->extra_env[s->nextra] = NULL;
}

static void hooks_stopped(hub_t *h, hub_server_t *s)
{
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].stopped) h->hooks[i].stopped(h, s, h->hooks[i].ud);
}

static void hooks_started(hub_t *h, hub_server_t *s)
{
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].started) h->hooks[i].started(h, s, h->hooks[i].ud);
}

/* ---- state changes ---------------------------------------------------------- */

/* Why the server stops (or failed), for the row, the JSON and the page;
 * the first reason of a stop wins (a cull after the user's stop does not
 * rename it).  Written with the next set_state. */
static void set_reason(hub_server_t *s, const char *reason)
{
    if (s->stop_reason || !reason) return;
    s->stop_reason = xstrdup(reason);
}

static void set_state(hub_server_t *s, hub_state_t st, const char *error)
{
    nb_err_t err;
    int64_t now = time_now_us();
    if (store_server_set_state(s->hub->store, s->id, hub_state_name(st), error, s->stop_reason, now, &err) < 0)
        LOG_E("server state not saved", "server=%lld error=\"%s\"", (long long)s->id, err.msg);
    s->state = st;
    if (st == HUB_RUNNING) s->ready_at = now;
    if (st == HUB_STOPPED || st == HUB_FAILED) s->stopped_at = now;
    if (st == HUB_FAILED) {
        free(s->error);
        s->error = error ? xstrdup(error) : NULL;
    } else if (st == HUB_STOPPED) {
        free(s->error);
        s->error = NULL;
    }
}

static void stop_ready_timer(hub_server_t *s)
{
    if (s->ready_timer) {
        uv_close((uv_handle_t *)s->ready_timer, timer_free_cb);
        s->ready_timer = NULL;
    }
}

static void revoke_tokens(hub_server_t *s)
{
    nb_err_t err;
    if (store_tokens_revoke_server(s->hub->store, s->id, -1, NULL, &err) < 0)
        LOG_W("server tokens not revoked", "server=%lld error=\"%s\"", (long long)s->id, err.msg);
}

static char *log_path(hub_t *h, const hub_server_t *s)
{
    return xasprintf("%s/servers/%lld.log", h->home, (long long)s->id);
}

char *hub_server_log_tail(hub_t *h, const hub_server_t *s, size_t max)
{
    char *path = log_path(h, s);
    int fd = fs_open_regular(path, O_RDONLY, 0, NULL);
    free(path);
    if (fd < 0) return xstrdup("");
    struct stat st;
    char *out = xstrdup("");
    if (fstat(fd, &st) == 0) {
        off_t from = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
        size_t n = (size_t)(st.st_size - from);
        free(out);
        out = xmalloc(n + 1);
        ssize_t r = pread(fd, out, n, from);
        out[r > 0 ? r : 0] = 0;
        /* Start at a line. */
        if (from > 0) {
            char *nl = strchr(out, '\n');
            if (nl) memmove(out, nl + 1, strlen(nl + 1) + 1);
        }
    }
    close(fd);
    return out;
}

static void remove_server(hub_t *h, hub_server_t *s)
{
    if (s->subs) emit(s, failed_event(s), 1);
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].gone) h->hooks[i].gone(h, s, h->hooks[i].ud);
    nb_err_t err;
    if (store_server_delete(h->store, s->id, &err) < 0)
        LOG_W("server row not removed", "server=%lld error=\"%s\"", (long long)s->id, err.msg);
    server_unlink(h, s);
    server_free(s);
}

static void maybe_shutdown_done(hub_t *h);

/* The process ended (exit callback of the backend). */
static void on_proc_exit(spawn_proc_t *p, int code, int sig, void *ud)
{
    hub_server_t *s = ud;
    hub_t *h = s->hub;
    (void)p;
    stop_ready_timer(s);
    hub_state_t was = s->state;
    char how[64];
    if (sig > 0) snprintf(how, sizeof how, "was killed by signal %d", sig);
    else if (code >= 0) snprintf(how, sizeof how, "exited with code %d", code);
    /* (an adopted process is not our child: its status is not ours to read) */
    else snprintf(how, sizeof how, "exited (status unknown)");
    if (was == HUB_STARTING || s->fail_on_exit) {
        /* (the server exited by itself before it was ready, or it was
         * stopped because the start failed: timeout, a hook) */
        char r[96];
        snprintf(r, sizeof r, "%s before it was ready", how);
        set_reason(s, r);
        char *tail = hub_server_log_tail(h, s, HUB_LOG_TAIL);
        char *msg = s->fail_msg
            ? xasprintf("%s (the server %s).  The last lines of its log:\n%s", s->fail_msg, how, tail)
            : xasprintf("The server %s before it was ready.  The last lines of its log:\n%s", how, tail);
        free(tail);
        set_state(s, HUB_FAILED, msg);
        LOG_W("server failed to start", "user=%s server=%s pid=%d how=\"%s\"", s->user, s->name, s->pid, how);
        free(msg);
        emit(s, failed_event(s), 1);
    } else {
        /* Nobody asked (no reason yet, it was running): it ended by itself. */
        set_reason(s, was == HUB_RUNNING ? how : "stopped");
        set_state(s, HUB_STOPPED, NULL);
        LOG_I("server stopped", "user=%s server=%s pid=%d how=\"%s\" reason=\"%s\"", s->user, s->name, s->pid,
              how, s->stop_reason);
        if (s->subs) emit(s, failed_event(s), 1);
    }
    s->fail_on_exit = 0;
    free(s->fail_msg);
    s->fail_msg = NULL;
    revoke_tokens(s);
    h->ops->free(s->proc);
    s->proc = NULL;
    hooks_stopped(h, s);
    if (s->remove_after_stop && *s->name) remove_server(h, s);
    else s->remove_after_stop = 0;
    maybe_shutdown_done(h);
}

/* A start that cannot go on: stop the process (its exit makes the row
 * failed with msg and the log tail) or, without one, fail now. */
static void fail_start(hub_server_t *s, const char *msg)
{
    hub_t *h = s->hub;
    stop_ready_timer(s);
    set_reason(s, msg);
    if (s->proc) {
        free(s->fail_msg);
        s->fail_msg = xstrdup(msg);
        s->fail_on_exit = 1;
        h->ops->stop(s->proc, (uint64_t)h->conf->stop_grace_ms);
        return;
    }
    set_state(s, HUB_FAILED, msg);
    emit(s, failed_event(s), 1);
    revoke_tokens(s);
    hooks_stopped(h, s);
}

/* ---- readiness -------------------------------------------------------------- */

static void ready_poll(uv_timer_t *t);

/* A readiness request in flight; hub_free orphans them (hub = NULL). */
struct ready_req {
    hub_t  *hub;
    int64_t id;
    struct ready_req *next;
};

static void req_unlink(hub_t *h, struct ready_req *q)
{
    for (struct ready_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            return;
        }
}

static void on_ready(const hclient_resp_t *r, void *ud)
{
    struct ready_req *q = ud;
    hub_t *h = q->hub;
    if (h) req_unlink(h, q);
    hub_server_t *s = h && r->code != -ECANCELED ? hub_server_by_id(h, q->id) : NULL;
    free(q);
    if (!s) return;
    s->polling = 0;
    if (s->state != HUB_STARTING || s->fail_on_exit) return;
    if (r->code == 0 && r->status >= 200 && r->status < 300) {
        stop_ready_timer(s);
        set_state(s, HUB_RUNNING, NULL);
        if (!s->last_activity) hub_server_activity(h, s, time_now_us());
        LOG_I("server ready", "user=%s server=%s pid=%d port=%d ms=%llu", s->user, s->name, s->pid, s->port,
              (unsigned long long)(uv_now(h->loop) - s->start_mono));
        emit(s, ready_event(s), 1);
        hooks_started(h, s);
    }
}

static void ready_poll(uv_timer_t *t)
{
    hub_server_t *s = t->data;
    hub_t *h = s->hub;
    if (s->state != HUB_STARTING) return;
    uint64_t elapsed = uv_now(h->loop) - s->start_mono;
    if ((int64_t)elapsed >= h->conf->start_timeout_ms) {
        char msg[200];
        snprintf(msg, sizeof msg, "The server did not answer within %lld s (hub.start_timeout)",
                 (long long)(h->conf->start_timeout_ms / 1000));
        char why[96];
        snprintf(why, sizeof why, "start timed out (hub.start_timeout %lld s)",
                 (long long)(h->conf->start_timeout_ms / 1000));
        set_reason(s, why);
        fail_start(s, msg);
        return;
    }
    if (s->polling) return;
    char *url = xasprintf("http://%s:%d%sapi", s->host, s->port, s->prefix);
    struct ready_req *q = xmalloc(sizeof *q);
    q->hub = h;
    q->id = s->id;
    if (hclient_get(h->hc, url, NULL, 4096, 2000, on_ready, q) == 0) {
        s->polling = 1;
        q->next = h->reqs;
        h->reqs = q;
    } else {
        free(q);
    }
    free(url);
}

static void start_ready_poll(hub_server_t *s)
{
    hub_t *h = s->hub;
    s->start_mono = uv_now(h->loop);
    s->ready_timer = xcalloc(1, sizeof *s->ready_timer);
    uv_timer_init(h->loop, s->ready_timer);
    s->ready_timer->data = s;
    uv_timer_start(s->ready_timer, ready_poll, HUB_READY_POLL_MS, HUB_READY_POLL_MS);
}

/* ---- the command and its environment --------------------------------------- */

static void env_add(char ***v, size_t *n, const char *k, const char *val)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = xasprintf("%s=%s", k, val ? val : "");
    (*v)[*n] = NULL;
}

static char *scopes_json(const hub_server_t *s)
{
    char a[400], b[300];
    snprintf(a, sizeof a, "access:servers!server=%s/%s", s->user, s->name);
    snprintf(b, sizeof b, "access:servers!user=%s", s->user);
    json_t *j = json_pack("[s,s]", a, b);
    char *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return out;
}

char *hub_server_client_id(const hub_server_t *s)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "jupyterhub-user-");
    quote_append(&b, s->user, "/");
    if (*s->name) {
        buf_puts(&b, "-");
        quote_append(&b, s->name, "/");
    }
    return buf_detach(&b);
}

/* JupyterHub's Spawner.get_env() for this server, then the profile's env,
 * then the hooks'. */
static char **build_env(hub_t *h, hub_server_t *s, const hub_profile_t *p, const char *token,
                        const char *workspace)
{
    char **v = NULL;
    size_t n = 0;
    extern char **environ;
    /* As for tasks: under isolation: system scrubbed to what finds
     * programs and the locale (nbhub's own credentials and whatever its
     * service manager set never reach user code); under shared nbhub's
     * environment without its NBHUB_* variables.  The hub's own variables
     * are set below, never inherited. */
    for (char **e = environ; *e; e++) {
        if (!strncmp(*e, "NBHUB_", 6) || !strncmp(*e, "JUPYTERHUB_", 11) || !strncmp(*e, "JPY_API_TOKEN=", 14))
            continue;
        if (h->isolation_system && !uacct_env_kept(*e)) continue;
        if (!h->isolation_system && workspace && !strncmp(*e, "HOME=", 5)) continue;
        argv_add(&v, &n, *e);
    }
    if (!v) v = xcalloc(1, sizeof *v);
    if (!h->isolation_system && workspace) env_add(&v, &n, "HOME", workspace);
    char *api = xasprintf("%s/hub/api", h->hub_url);
    buf_t act = BUF_INIT;
    buf_printf(&act, "%s/users/", api);
    quote_append(&act, s->user, "@~");
    buf_puts(&act, "/activity");
    char *svc = xasprintf("http://%s:%d%s", s->host, s->port, s->prefix);
    char *cb = xasprintf("%soauth_callback", s->prefix);
    char *scopes = scopes_json(s);
    char *cid = hub_server_client_id(s);
    env_add(&v, &n, "JUPYTERHUB_API_TOKEN", token);
    env_add(&v, &n, "JPY_API_TOKEN", token);
    if (h->conf->admin_access) env_add(&v, &n, "JUPYTERHUB_ADMIN_ACCESS", "1");
    env_add(&v, &n, "JUPYTERHUB_CLIENT_ID", cid);
    env_add(&v, &n, "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "0");
    env_add(&v, &n, "JUPYTERHUB_HOST", "");
    env_add(&v, &n, "JUPYTERHUB_OAUTH_CALLBACK_URL", cb);
    env_add(&v, &n, "JUPYTERHUB_OAUTH_SCOPES", scopes);
    env_add(&v, &n, "JUPYTERHUB_OAUTH_ACCESS_SCOPES", scopes);
    env_add(&v, &n, "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES", "[]");
    env_add(&v, &n, "JUPYTERHUB_USER", s->user);
    env_add(&v, &n, "JUPYTERHUB_SERVER_NAME", s->name);
    env_add(&v, &n, "JUPYTERHUB_API_URL", api);
    env_add(&v, &n, "JUPYTERHUB_ACTIVITY_URL", act.data);
    env_add(&v, &n, "JUPYTERHUB_BASE_URL", "/");
    env_add(&v, &n, "JUPYTERHUB_SERVICE_PREFIX", s->prefix);
    env_add(&v, &n, "JUPYTERHUB_SERVICE_URL", svc);
    if (h->public_url) {
        char *pu = xasprintf("%s%s", h->public_url, s->prefix);
        char *ph = xasprintf("%s/hub/", h->public_url);
        env_add(&v, &n, "JUPYTERHUB_PUBLIC_URL", pu);
        env_add(&v, &n, "JUPYTERHUB_PUBLIC_HUB_URL", ph);
        free(pu);
        free(ph);
    } else {
        env_add(&v, &n, "JUPYTERHUB_PUBLIC_URL", "");
        env_add(&v, &n, "JUPYTERHUB_PUBLIC_HUB_URL", "");
    }
    if (p->limits.memory) {
        char m[32];
        snprintf(m, sizeof m, "%lld", (long long)p->limits.memory);
        env_add(&v, &n, "MEM_LIMIT", m);
    }
    if (p->limits.cpu_milli) {
        char c[32];
        snprintf(c, sizeof c, "%g", (double)p->limits.cpu_milli / 1000.0);
        env_add(&v, &n, "CPU_LIMIT", c);
    }
    if (p->default_url) env_add(&v, &n, "JUPYTERHUB_DEFAULT_URL", p->default_url);
    for (char **e = p->env; e && *e; e++) argv_add(&v, &n, *e);
    for (size_t i = 0; i < s->nextra; i++) argv_add(&v, &n, s->extra_env[i]);
    free(api);
    buf_free(&act);
    free(svc);
    free(cb);
    free(scopes);
    free(cid);
    return v;
}

/* {port}, {base_url}, {token} substituted in one argument. */
static char *subst(const char *a, int port, const char *base_url, const char *token)
{
    buf_t b = BUF_INIT;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    for (const char *p = a; *p;) {
        if (!strncmp(p, "{port}", 6)) { buf_puts(&b, ps); p += 6; }
        else if (!strncmp(p, "{base_url}", 10)) { buf_puts(&b, base_url); p += 10; }
        else if (!strncmp(p, "{token}", 7)) { buf_puts(&b, token ? token : ""); p += 7; }
        else buf_append(&b, p++, 1);
    }
    return buf_detach(&b);
}

/* The cgroup of a server under isolation: system, nbhub/u-ACCOUNT/server-ID
 * (the user's limits on the parent, the profile's on the leaf), or 0 when
 * there is none (no cgroups here, no limits); both limits set into *ul and
 * *pl. */
static int server_cgroup(hub_t *h, const hub_server_t *s, const hub_profile_t *p, const char *acct,
                         char *ug, char *leaf, size_t n, iso_limits_t *ul, iso_limits_t *pl)
{
    if (!h->isolation_system || !h->cgroups || !acct) return 0;
    const iso_limits_t *u = h->user_limits ? h->user_limits(h->limits_ud, s->user) : NULL;
    *ul = u ? *u : (iso_limits_t){ 0, 0, 0 };
    *pl = p ? p->limits : (iso_limits_t){ 0, 0, 0 };
    /* a child's CPU quota above its parent's is refused: the tighter one */
    iso_limits_t cpu = { 0, pl->cpu_milli, 0 }, ucpu = { 0, ul->cpu_milli, 0 };
    limits_tighten(&cpu, &ucpu);
    pl->cpu_milli = cpu.cpu_milli;
    if (!limits_any(ul) && !limits_any(pl)) return 0;
    snprintf(ug, n, "nbhub/u-%s", acct);
    snprintf(leaf, n, "nbhub/u-%s/server-%lld", acct, (long long)s->id);
    return 1;
}

static char **build_argv(hub_t *h, hub_server_t *s, const hub_profile_t *p, const char *acct, char **cgroup_out)
{
    char **v = NULL;
    size_t n = 0;
    *cgroup_out = NULL;
    /* Under isolation: shared a server runs as nbhub's account, like a
     * task; profile limits are enforced under system (hub_new warns). */
    if (h->isolation_system) {
        argv_add(&v, &n, h->self_exe);
        argv_add(&v, &n, "__as-user");
        argv_add(&v, &n, acct ? acct : "-");
        if (h->isolation_system && h->create_accounts) argv_add(&v, &n, "--create");
        char ug[200], leaf[200];
        iso_limits_t uz, pl;
        if (server_cgroup(h, s, p, acct, ug, leaf, sizeof ug, &uz, &pl)) {
            char *a = limits_spec(ug, &uz), *b = limits_spec(leaf, &pl);
            argv_add(&v, &n, "--cgroup");
            argv_add(&v, &n, a);
            argv_add(&v, &n, "--cgroup");
            argv_add(&v, &n, b);
            free(a);
            free(b);
            *cgroup_out = xstrdup(leaf);
        }
        argv_add(&v, &n, "--");
    }
    if (p->command) {
        for (char **a = p->command; *a; a++) {
            char *x = subst(*a, s->port, s->prefix, s->upstream_token);
            argv_add(&v, &n, x);
            free(x);
        }
    } else {
        if (p->python) {
            argv_add(&v, &n, p->python);
            argv_add(&v, &n, "-m");
            argv_add(&v, &n, "jupyterhub.singleuser");
        } else {
            argv_add(&v, &n, "jupyterhub-singleuser");
        }
        /* As root (isolation: shared), jupyter-server refuses to start
         * without it; under system the trampoline has dropped root. */
        if (!h->isolation_system && geteuid() == 0) argv_add(&v, &n, "--allow-root");
    }
    return v;
}

/* ---- start ------------------------------------------------------------------ */

/* Names a named server may not take: /user/NAME/SEG/ is a named server
 * when SEG is one, so these would hide the default server's own pages. */
static const char *const reserved_names[] = {
    "api", "lab", "tree", "files", "static", "notebooks", "edit", "terminals", "doc", "view",
    "oauth_callback", "logout", "login", "kernelspecs", "nbconvert", "metrics", "custom",
    "nbextensions", "voila", "hub", "default", "server", "servers",
};

int hub_server_name_valid(const char *name)
{
    if (!name) return 0;
    if (!*name) return 1;
    if (!hub_name_valid(name)) return 0;
    for (size_t i = 0; i < sizeof reserved_names / sizeof *reserved_names; i++)
        if (!strcmp(name, reserved_names[i])) return 0;
    return 1;
}

void hub_set_urls(hub_t *h, const char *hub_url, const char *public_url)
{
    free(h->hub_url);
    free(h->public_url);
    h->hub_url = hub_url ? xstrdup(hub_url) : NULL;
    h->public_url = public_url ? xstrdup(public_url) : NULL;
}

static const char *options_profile(json_t *o)
{
    json_t *p = json_object_get(o, "profile");
    return json_is_string(p) ? json_string_value(p) : NULL;
}

int hub_server_start(hub_t *h, const hub_user_t *u, const char *server_name,
                     const char *user_options_json, hub_server_t **out, nb_err_t *err)
{
    if (out) *out = NULL;
    const char *name = server_name ? server_name : "";
    if (!hub_server_name_valid(name))
        return err_set(err, -EINVAL, "invalid server name '%.63s' (1-63 of a-z 0-9 . _ -, starting with a letter "
                                    "or digit; not a path of the default server such as 'lab' or 'api')", name);
    if (*name && !h->conf->named_servers) return err_set(err, -EINVAL, "named servers are not enabled (hub.named_servers)");
    if (!h->hub_url) return err_set(err, -ENOTSUP, "the hub needs a TCP listen address for its servers to call back");
    if (h->shutting_down) return err_set(err, -ESHUTDOWN, "nbhub is shutting down");
    json_t *opts = NULL;
    if (user_options_json && *user_options_json) {
        opts = json_loads(user_options_json, 0, NULL);
        if (!json_is_object(opts)) {
            json_decref(opts);
            return err_set(err, -EINVAL, "user options must be a JSON object");
        }
        json_t *pv = json_object_get(opts, "profile");
        if (pv && !json_is_string(pv)) {
            json_decref(opts);
            return err_set(err, -EINVAL, "'profile' must be a string");
        }
    }
    const char *pname = options_profile(opts);
    const hub_profile_t *p = hub_profile_find(h, pname);
    if (!p) {
        err_set(err, -EINVAL, "no profile named '%s'", pname ? pname : "");
        json_decref(opts);
        return -EINVAL;
    }
    if (!hub_profile_allowed_u(h, p, u)) {
        err_set(err, -EACCES, "you may not use profile '%s'", p->name);
        json_decref(opts);
        return -EACCES;
    }
    hub_server_t *s = hub_server_find(h, u->name, name);
    if (s && s->state == HUB_RUNNING) {
        json_decref(opts);
        if (out) *out = s;
        return 0;
    }
    if (s && (s->state == HUB_STARTING || s->state == HUB_STOPPING)) {
        json_decref(opts);
        return err_set(err, -EBUSY, "the server is %s", hub_state_name(s->state));
    }
    unsigned max = h->conf->max_servers_per_user;
    if (max && hub_servers_active(h, u->id) >= max) {
        json_decref(opts);
        return err_set(err, -EUSERS, "%s already has %u servers running (hub.max_servers_per_user)", u->name, max);
    }
    /* The options as stored: with the profile named, so a restart or the
     * page shows which one it is. */
    if (!opts) opts = json_object();
    json_object_set_new(opts, "profile", json_string(p->name));
    char *optstr = json_dumps(opts, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(opts);
    int64_t id = 0, now = time_now_us();
    int rc = store_server_begin(h->store, u->id, name, p->name, h->ops->name, optstr, now, &id, err);
    if (rc < 0) {
        free(optstr);
        return rc == -ESTALE ? err_set(err, -EBUSY, "%s", err ? err->msg : "busy") : rc;
    }
    if (!s) {
        store_server_t row;
        memset(&row, 0, sizeof row);
        row.id = id;
        row.user_id = u->id;
        row.user_name = (char *)u->name;
        row.name = (char *)name;
        row.profile = (char *)p->name;
        row.state = "starting";
        s = server_from_row(h, &row);
        s->last_activity = s->activity_written = 0;
        server_append(h, s);
    }
    free(s->profile);
    s->profile = xstrdup(p->name);
    free(s->user_options);
    s->user_options = optstr;
    s->state = HUB_STARTING;
    s->started_at = now;
    s->ready_at = s->stopped_at = 0;
    free(s->error);
    s->error = NULL;
    free(s->stop_reason);
    s->stop_reason = NULL;
    free(s->host);
    s->host = NULL;
    free(s->upstream_token);
    s->upstream_token = NULL;
    s->pid = 0;
    s->remove_after_stop = 0;
    strv_free(s->extra_env);
    s->extra_env = NULL;
    s->nextra = 0;
    json_decref(s->events);
    s->events = NULL;
    emit(s, json_pack("{s:i, s:s}", "progress", 0, "message", "Server requested"), 0);
    if (out) *out = s;

    nb_err_t e2;
    err_clear(&e2);
    for (size_t i = 0; i < h->nhooks; i++)
        if (h->hooks[i].starting && h->hooks[i].starting(h, s, h->hooks[i].ud, &e2) < 0) {
            fail_start(s, e2.msg);
            return 1;
        }

    char host[64];
    int port = 0;
    if (h->ops->address(host, sizeof host, &port, &e2) < 0) {
        fail_start(s, e2.msg);
        return 1;
    }
    s->host = xstrdup(host);
    s->port = port;

    char token[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    if (token_new(TOKEN_API, token) < 0) {
        fail_start(s, "cannot make the server's API token");
        return 1;
    }
    token_digest(token, digest);
    revoke_tokens(s);
    char *scopes = xasprintf("[\"users:activity!user=%s\", \"access:servers!server=%s/%s\"]", s->user, s->user, s->name);
    char tname[300];
    snprintf(tname, sizeof tname, "server %s/%s", s->user, s->name);
    rc = store_token_add_scoped(h->store, u->id, tname, digest, STORE_TOKEN_SERVER, scopes, s->id, now, 0, NULL, &e2);
    free(scopes);
    if (rc < 0) {
        fail_start(s, e2.msg);
        return 1;
    }
    if (p->command) {
        char up[TOKEN_LEN + 1];
        if (token_new("nbu_", up) < 0) {
            fail_start(s, "cannot make the server's token");
            return 1;
        }
        s->upstream_token = xstrdup(up);
    }

    /* The account and the workspace. */
    char acct[64] = "";
    char *workspace = NULL;
    if (h->isolation_system) {
        if (uacct_name(h->account_tmpl ? h->account_tmpl : UACCT_DEFAULT_TEMPLATE, s->user, acct, sizeof acct, &e2) < 0) {
            fail_start(s, e2.msg);
            return 1;
        }
    } else {
        struct workspace_opts wo = { h->home, 0, NULL, 1, 0 };
        if (workspace_dir(&wo, s->user, &workspace, &e2) < 0) {
            fail_start(s, e2.msg);
            return 1;
        }
    }
    char *cgroup = NULL;
    char **argv = build_argv(h, s, p, acct[0] ? acct : NULL, &cgroup);
    char **env = build_env(h, s, p, token, workspace);
    char *logp = log_path(h, s);
    char *logdir = fs_dirname(logp);
    fs_mkdir_p(logdir, 0700, NULL);
    free(logdir);
    {
        int fd = fs_open_regular(logp, O_WRONLY | O_APPEND | O_CREAT, 0600, NULL);
        if (fd >= 0) {
            char ts[48];
            time_iso8601_utc(now, ts, sizeof ts, 1);
            dprintf(fd, "--- nbhub: server %s%s%s, profile %s, started %s ---\n", s->user, *s->name ? "/" : "",
                    s->name, p->name, ts);
            close(fd);
        }
    }
    spawn_spec_t spec = { argv, env, h->isolation_system ? NULL : workspace, logp, h->conf->log_max, cgroup };
    rc = h->ops->start(h->loop, &spec, on_proc_exit, s, &s->proc, &e2);
    strv_free(argv);
    strv_free(env);
    free(workspace);
    free(logp);
    free(cgroup);
    if (rc < 0) {
        fail_start(s, e2.msg);
        return 1;
    }
    spawn_identity_t ident;
    h->ops->identity(s->proc, &ident);
    s->pid = ident.pid;
    s->pid_start = ident.start_time;
    if (store_server_spawned(h->store, s->id, s->host, s->port, s->pid, s->pid_start, ident.backend_state,
                             s->upstream_token, &e2) < 0)
        LOG_E("server process not recorded", "server=%lld error=\"%s\"", (long long)s->id, e2.msg);
    free(ident.backend_state);
    LOG_I("server starting", "user=%s server=%s profile=%s pid=%d port=%d", s->user, s->name, p->name, s->pid, s->port);
    emit(s, json_pack("{s:i, s:s}", "progress", 50, "message", "Spawning server..."), 0);
    start_ready_poll(s);
    return 1;
}

/* ---- stop ------------------------------------------------------------------- */

int hub_server_stop(hub_t *h, hub_server_t *s, int remove, nb_err_t *err)
{
    return hub_server_stop_because(h, s, remove, NULL, err);
}

int hub_server_stop_because(hub_t *h, hub_server_t *s, int remove, const char *reason, nb_err_t *err)
{
    if (!s) return err_set(err, -ENOENT, "no such server");
    if (remove && *s->name) s->remove_after_stop = 1;
    /* Only a server that is on gets a new reason: stopping a stopped one
     * keeps why it stopped. */
    if (s->state == HUB_STARTING || s->state == HUB_RUNNING) set_reason(s, reason ? reason : "stopped");
    if (s->proc) {
        /* A start in progress is cancelled like any stop: the server ends
         * up stopped, not failed (unless it had failed already: timeout). */
        if (s->state != HUB_STOPPING) {
            set_state(s, HUB_STOPPING, NULL);
            stop_ready_timer(s);
        }
        h->ops->stop(s->proc, (uint64_t)h->conf->stop_grace_ms);
        return 1;
    }
    if (s->state == HUB_STARTING) fail_start(s, "The start was cancelled");
    else if (s->state != HUB_STOPPED && s->state != HUB_FAILED) set_state(s, HUB_STOPPED, NULL);
    if (s->remove_after_stop) remove_server(h, s);
    return 0;
}

void hub_user_stop_all(hub_t *h, int64_t user_id, int remove)
{
    hub_server_t *n;
    for (hub_server_t *s = h->servers; s; s = n) {
        n = s->next;
        if (s->user_id == user_id) hub_server_stop_because(h, s, remove, "the user is being deleted", NULL);
    }
}

/* ---- lookups ---------------------------------------------------------------- */

hub_server_t *hub_server_find(hub_t *h, const char *user_name, const char *server_name)
{
    const char *name = server_name ? server_name : "";
    for (hub_server_t *s = h->servers; s; s = s->next)
        if (!strcmp(s->user, user_name) && !strcmp(s->name, name)) return s;
    return NULL;
}

hub_server_t *hub_server_by_id(hub_t *h, int64_t id)
{
    for (hub_server_t *s = h->servers; s; s = s->next)
        if (s->id == id) return s;
    return NULL;
}

hub_server_t *hub_server_next(hub_t *h, hub_server_t *prev)
{
    return prev ? prev->next : h->servers;
}

hub_server_t *hub_server_next_of(hub_t *h, int64_t user_id, hub_server_t *prev)
{
    for (hub_server_t *s = prev ? prev->next : h->servers; s; s = s->next)
        if (s->user_id == user_id) return s;
    return NULL;
}

unsigned hub_servers_active(hub_t *h, int64_t user_id)
{
    unsigned n = 0;
    for (hub_server_t *s = h->servers; s; s = s->next)
        if (s->user_id == user_id && (s->state == HUB_STARTING || s->state == HUB_RUNNING || s->state == HUB_STOPPING))
            n++;
    return n;
}

int64_t hub_server_id(const hub_server_t *s) { return s->id; }
int64_t hub_server_user_id(const hub_server_t *s) { return s->user_id; }
const char *hub_server_user(const hub_server_t *s) { return s->user; }
const char *hub_server_name(const hub_server_t *s) { return s->name; }
const char *hub_server_profile(const hub_server_t *s) { return s->profile; }
hub_state_t hub_server_state(const hub_server_t *s) { return s->state; }
int hub_server_ready(const hub_server_t *s) { return s->state == HUB_RUNNING; }
const char *hub_server_prefix(const hub_server_t *s) { return s->prefix; }
int64_t hub_server_started_at(const hub_server_t *s) { return s->started_at; }
int64_t hub_server_ready_at(const hub_server_t *s) { return s->ready_at; }
int64_t hub_server_last_activity(const hub_server_t *s) { return s->last_activity; }
const char *hub_server_error(const hub_server_t *s) { return s->state == HUB_FAILED ? s->error : NULL; }
const char *hub_server_stop_reason(const hub_server_t *s) { return s->stop_reason; }
int hub_server_pid(const hub_server_t *s) { return s->proc || s->state == HUB_RUNNING ? s->pid : 0; }
const char *hub_server_spark_cluster(const hub_server_t *s) { return s->spark_cluster; }

const hub_profile_t *hub_server_profile_def(hub_t *h, const hub_server_t *s)
{
    for (size_t i = 0; i < h->conf->nprofiles; i++)
        if (!strcmp(h->conf->profiles[i].name, s->profile)) return &h->conf->profiles[i];
    return NULL;
}

int hub_server_target(const hub_server_t *s, hub_target_t *t)
{
    if (s->state != HUB_RUNNING || !s->host || s->port <= 0) return -ENOTCONN;
    t->host = s->host;
    t->port = s->port;
    t->upstream_token = s->upstream_token;
    return 0;
}

void hub_server_activity(hub_t *h, hub_server_t *s, int64_t ts)
{
    if (ts <= s->last_activity) return;
    s->last_activity = ts;
    if (ts - s->activity_written < HUB_ACTIVITY_WRITE_US) return;
    nb_err_t err;
    if (store_server_activity(h->store, s->id, ts, &err) == 0) s->activity_written = ts;
}

void hub_server_touch(hub_server_t *s)
{
    hub_server_activity(s->hub, s, time_now_us());
}

void hub_server_set_spark(hub_t *h, hub_server_t *s, const char *cluster)
{
    free(s->spark_cluster);
    s->spark_cluster = cluster ? xstrdup(cluster) : NULL;
    nb_err_t err;
    if (store_server_set_spark(h->store, s->id, cluster, &err) < 0)
        LOG_W("server spark cluster not saved", "server=%lld error=\"%s\"", (long long)s->id, err.msg);
}

/* ---- JSON ------------------------------------------------------------------- */

static json_t *time_json(int64_t us)
{
    if (!us) return json_null();
    char b[48];
    time_iso8601_utc(us, b, sizeof b, 1);
    return json_string(b);
}

static json_t *options_json(const hub_server_t *s)
{
    json_t *o = s->user_options ? json_loads(s->user_options, 0, NULL) : NULL;
    return json_is_object(o) ? o : (json_decref(o), json_object());
}

json_t *hub_server_model(hub_t *h, const hub_server_t *s)
{
    (void)h;
    buf_t pu = BUF_INIT;
    buf_puts(&pu, "/hub/api/users/");
    quote_append(&pu, s->user, "@~");
    if (*s->name) {
        buf_puts(&pu, "/servers/");
        quote_append(&pu, s->name, "@~");
        buf_puts(&pu, "/progress");
    } else {
        buf_puts(&pu, "/server/progress");
    }
    const char *pending = s->state == HUB_STARTING ? "spawn" : s->state == HUB_STOPPING ? "stop" : NULL;
    int active = s->state == HUB_STARTING || s->state == HUB_RUNNING || s->state == HUB_STOPPING;
    json_t *m = json_pack("{s:s, s:b, s:o, s:b, s:s, s:s, s:o, s:o, s:{}, s:o}",
                          "name", s->name, "ready", s->state == HUB_RUNNING,
                          "pending", pending ? json_string(pending) : json_null(),
                          "stopped", !active, "url", s->prefix, "progress_url", pu.data,
                          "started", time_json(active ? s->started_at : 0),
                          "last_activity", time_json(s->last_activity ? s->last_activity : s->started_at),
                          "state", "user_options", options_json(s));
    buf_free(&pu);
    return m;
}

json_t *hub_server_json(hub_t *h, const hub_server_t *s)
{
    int64_t mem = s->proc && s->state != HUB_STOPPED ? h->ops->memory(s->proc) : -1;
    /* The cluster as its files say (state, URLs, size), not only its name:
     * the page and the API show whether it is up yet. */
    json_t *spark = s->spark_cluster ? hub_spark_json(h->home, s->user, s->spark_cluster) : NULL;
    if (!spark) spark = json_null();
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                          "owner", s->user, "name", s->name, "profile", s->profile,
                          "state", hub_state_name(s->state), "url", s->prefix,
                          "started_at", time_json(s->started_at), "ready_at", time_json(s->ready_at),
                          "last_activity", time_json(s->last_activity),
                          "pid", hub_server_pid(s) ? json_integer(s->pid) : json_null(),
                          "memory", mem >= 0 ? json_integer(mem) : json_null(), "spark", spark,
                          "error", s->state == HUB_FAILED && s->error ? json_string(s->error) : json_null());
    json_object_set_new(j, "stop_reason", s->stop_reason ? json_string(s->stop_reason) : json_null());
    if (s->state == HUB_FAILED) {
        char *t = hub_server_log_tail(h, s, HUB_LOG_TAIL);
        json_object_set_new(j, "log_tail", json_string(t));
        free(t);
    }
    return j;
}

/* ---- profiles --------------------------------------------------------------- */

size_t hub_profiles_count(const hub_t *h) { return h->conf->nprofiles; }
const hub_profile_t *hub_profile_at(const hub_t *h, size_t i)
{
    return i < h->conf->nprofiles ? &h->conf->profiles[i] : NULL;
}

const hub_profile_t *hub_profile_find(const hub_t *h, const char *name)
{
    if (!name || !*name) return h->conf->nprofiles ? &h->conf->profiles[0] : NULL;
    for (size_t i = 0; i < h->conf->nprofiles; i++)
        if (!strcmp(h->conf->profiles[i].name, name)) return &h->conf->profiles[i];
    return NULL;
}

int hub_profile_allowed(const hub_profile_t *p, const char *user, const char *const *groups, int is_admin)
{
    if (p->allow_all) return 1;
    if (is_admin && p->allow_admins) return 1;
    for (char **u = p->allow_users; u && *u; u++)
        if (!strcmp(*u, user)) return 1;
    for (char **g = p->allow_groups; g && *g; g++)
        for (const char *const *m = groups; m && *m; m++)
            if (!strcmp(*g, *m)) return 1;
    return 0;
}

int hub_profile_allowed_u(hub_t *h, const hub_profile_t *p, const hub_user_t *u)
{
    if (p->allow_all) return 1;
    store_names_t g = { NULL, 0 };
    nb_err_t err;
    if (store_user_groups(h->store, u->id, &g, &err) < 0)
        LOG_W("groups not read", "user=%s error=\"%s\"", u->name, err.msg);
    char **groups = xcalloc(g.n + 1, sizeof *groups);
    for (size_t i = 0; i < g.n; i++) groups[i] = g.v[i];
    int ok = hub_profile_allowed(p, u->name, (const char *const *)groups, u->is_admin);
    free(groups);
    store_names_free(&g);
    return ok;
}

json_t *hub_profiles_json(hub_t *h, const hub_user_t *u)
{
    json_t *a = json_array();
    for (size_t i = 0; i < h->conf->nprofiles; i++) {
        const hub_profile_t *p = &h->conf->profiles[i];
        if (u && !hub_profile_allowed_u(h, p, u)) continue;
        char mem[32] = "";
        if (p->limits.memory) limits_memory_text(p->limits.memory, mem, sizeof mem);
        json_t *lim = json_pack("{s:o, s:o}", "cpu",
                                p->limits.cpu_milli ? json_real((double)p->limits.cpu_milli / 1000.0) : json_null(),
                                "memory", p->limits.memory ? json_string(mem) : json_null());
        json_t *spark = json_null();
        if (p->spark.workers) {
            char wm[32] = "";
            if (p->spark.worker_memory) limits_memory_text(p->spark.worker_memory, wm, sizeof wm);
            spark = json_pack("{s:i, s:o, s:b}", "workers", p->spark.workers, "worker_memory",
                              p->spark.worker_memory ? json_string(wm) : json_null(), "connect", p->spark.connect);
        }
        json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:o, s:o, s:s}", "name", p->name,
                                           "description", p->description ? json_string(p->description) : json_null(),
                                           "default_url", p->default_url ? json_string(p->default_url) : json_null(),
                                           "limits", lim, "spark", spark,
                                           "kind", p->command ? "command" : "jupyterhub-singleuser"));
    }
    return a;
}

const hub_conf_t *hub_conf(const hub_t *h) { return h->conf; }

/* ---- life of the hub -------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    hub_t *h = t->data;
    hub_server_t *n;
    for (hub_server_t *s = h->servers; s; s = n) {
        n = s->next;
        if (s->proc) h->ops->tick(s->proc);   /* may end s (its exit callback) */
    }
}

int hub_new(const hub_opts_t *o, hub_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!o->loop || !o->store || !o->home || !o->self_exe)
        return err_set(err, -EINVAL, "hub_new: loop, store, home and self_exe are required");
    hub_t *h = xcalloc(1, sizeof *h);
    h->loop = o->loop;
    h->store = o->store;
    h->hc = o->hc;
    if (!h->hc) {
        h->hc = hclient_new(o->loop);
        h->own_hc = 1;
    }
    h->home = xstrdup(o->home);
    h->self_exe = xstrdup(o->self_exe);
    h->public_url = o->public_url ? xstrdup(o->public_url) : NULL;
    h->hub_url = o->hub_url ? xstrdup(o->hub_url) : NULL;
    h->account_tmpl = o->account_tmpl ? xstrdup(o->account_tmpl) : NULL;
    h->isolation_system = o->isolation_system;
    h->create_accounts = o->create_accounts;
    h->cgroups = o->cgroups;
    h->user_limits = o->user_limits;
    h->limits_ud = o->limits_ud;
    hub_conf_init(&h->defconf);
    hub_conf_finish(&h->defconf);
    h->conf = o->conf && o->conf->nprofiles ? o->conf : &h->defconf;
    h->ops = &spawn_local_ops;
    for (size_t i = 0; i < h->conf->nprofiles; i++)
        if (limits_any(&h->conf->profiles[i].limits) && !(h->isolation_system && h->cgroups))
            LOG_W("hub: profile limits are not enforced here", "profile=%s why=\"%s\"", h->conf->profiles[i].name,
                  h->isolation_system ? "cgroups are not usable" : "they need isolation: system");
    store_servers_t rows;
    int rc = store_servers_list(o->store, &rows, err);
    if (rc < 0) {
        hub_free(h);
        return rc;
    }
    for (size_t i = 0; i < rows.n; i++) server_append(h, server_from_row(h, &rows.v[i]));
    store_servers_free(&rows);
    h->tick = xcalloc(1, sizeof *h->tick);
    uv_timer_init(h->loop, h->tick);
    h->tick->data = h;
    uv_timer_start(h->tick, on_tick, HUB_TICK_MS, HUB_TICK_MS);
    uv_unref((uv_handle_t *)h->tick);
    *out = h;
    return 0;
}

int hub_adopt(hub_t *h)
{
    int adopted = 0;
    hub_server_t *n;
    for (hub_server_t *s = h->servers; s; s = n) {
        n = s->next;
        if (s->state != HUB_STARTING && s->state != HUB_RUNNING && s->state != HUB_STOPPING) continue;
        spawn_identity_t id;
        memset(&id, 0, sizeof id);
        snprintf(id.host, sizeof id.host, "%s", s->host ? s->host : "");
        id.port = s->port;
        id.pid = s->pid;
        id.start_time = s->pid_start;
        char *logp = log_path(h, s);
        /* Its cgroup, to remove at its stop (the same name as at its start). */
        char acct[64], ug[200], leaf[200];
        iso_limits_t ul, pl;
        int cg = h->isolation_system &&
                 uacct_name(h->account_tmpl ? h->account_tmpl : UACCT_DEFAULT_TEMPLATE, s->user, acct, sizeof acct, NULL) == 0 &&
                 server_cgroup(h, s, hub_server_profile_def(h, s), acct, ug, leaf, sizeof ug, &ul, &pl);
        nb_err_t err;
        int rc = s->pid > 0 ? h->ops->adopt(h->loop, &id, logp, h->conf->log_max, cg ? leaf : NULL, on_proc_exit, s,
                                            &s->proc, &err)
                            : err_set(&err, -ESRCH, "no process was recorded");
        free(logp);
        if (rc < 0) {
            LOG_I("server gone while nbhub was down", "user=%s server=%s pid=%d", s->user, s->name, s->pid);
            set_reason(s, "found gone after a restart of nbhub");
            set_state(s, HUB_STOPPED, NULL);
            revoke_tokens(s);
            hooks_stopped(h, s);
            continue;
        }
        adopted++;
        LOG_I("server adopted", "user=%s server=%s pid=%d port=%d state=%s", s->user, s->name, s->pid, s->port,
              hub_state_name(s->state));
        if (s->state == HUB_STOPPING) h->ops->stop(s->proc, (uint64_t)h->conf->stop_grace_ms);
        else if (s->state == HUB_STARTING) start_ready_poll(s);
        else hooks_started(h, s);
    }
    return adopted;
}

static void maybe_shutdown_done(hub_t *h)
{
    if (!h->shutting_down || !h->shutdown_done) return;
    for (hub_server_t *s = h->servers; s; s = s->next)
        if (s->proc) return;
    void (*done)(void *) = h->shutdown_done;
    h->shutdown_done = NULL;
    done(h->shutdown_ud);
}

void hub_shutdown(hub_t *h, int stop_servers, void (*done)(void *ud), void *ud)
{
    h->shutting_down = 1;
    /* Activity not yet written (at most a minute of it). */
    for (hub_server_t *s = h->servers; s; s = s->next)
        if (s->last_activity > s->activity_written)
            store_server_activity(h->store, s->id, s->last_activity, NULL);
    if (!stop_servers) {
        /* Let go of them: their handles would keep the loop running, and
         * the next nbhub adopts them (a start in progress goes on too, and
         * is waited for again then). */
        for (hub_server_t *s = h->servers; s; s = s->next) {
            stop_ready_timer(s);
            if (s->proc) h->ops->free(s->proc);
            s->proc = NULL;
        }
        if (h->tick) uv_timer_stop(h->tick);
        if (done) done(ud);
        return;
    }
    h->shutdown_done = done;
    h->shutdown_ud = ud;
    hub_server_t *n;
    for (hub_server_t *s = h->servers; s; s = n) {
        n = s->next;
        if (s->proc) hub_server_stop_because(h, s, 0, "stopped with nbhub serve (--stop-servers-on-exit)", NULL);
    }
    maybe_shutdown_done(h);
}

void hub_free(hub_t *h)
{
    if (!h) return;
    hub_server_t *n;
    for (hub_server_t *s = h->servers; s; s = n) {
        n = s->next;
        /* A server still running is left to run: the next nbhub adopts it. */
        server_free(s);
    }
    for (struct ready_req *q = h->reqs; q; q = q->next) q->hub = NULL;
    if (h->tick) uv_close((uv_handle_t *)h->tick, timer_free_cb);
    if (h->own_hc && h->hc) hclient_close(h->hc, NULL, NULL);
    hub_conf_clear(&h->defconf);
    free(h->hooks);
    free(h->home);
    free(h->self_exe);
    free(h->public_url);
    free(h->hub_url);
    free(h->account_tmpl);
    free(h);
}
