/* hub_cull — see hub_cull.h. */
#include "hub/hub_cull.h"
#include "auth/token.h"
#include "store/store_auth.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CULL_POLL_TIMEOUT_MS 10000
#define CULL_TOKEN_LIFE_US   (24LL * 3600 * 1000000)

/* What we keep per server: its poll token, a poll in flight, the last cull. */
struct cull_srv {
    struct cull_srv *next;
    int64_t  server_id;
    char     token[TOKEN_LEN + 1];   /* "" = none yet */
    int64_t  token_id, token_until;
    int      polling;                /* a request of this server's in flight */
    int      warned;                 /* the 401/403 warning was logged */
    int64_t  culled_at;              /* 0 = never */
    char    *reason;
};

struct hub_cull {
    hub_t           *hub;
    hub_cull_opts_t  o;
    char            *home;
    uv_timer_t      *timer;
    struct cull_srv *srvs;
    int64_t          timeout_us, max_age_us;
    int              keep_busy;
    unsigned         inflight;       /* requests whose callbacks still come */
    int              freed;
};

/* One poll: /api/status, then maybe /api/kernels. */
struct cull_poll {
    hub_cull_t *c;
    int64_t     server_id;
    int64_t     known;               /* the activity the hub knew, µs */
    int64_t     now;
    int         kernels;
};

int64_t hub_cull_parse_time(const char *s)
{
    if (!s) return -1;
    struct tm tm = { 0 };
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &n) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    int64_t us = 0, scale = 100000;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            us += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int off = 0;
    if (*p == 'Z') p++;
    else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
        off = (hh * 60 + mm) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    }
    if (*p) return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    return ((int64_t)t - off) * 1000000 + us;
}

static struct cull_srv *cs_get(hub_cull_t *c, int64_t id, int create)
{
    for (struct cull_srv *x = c->srvs; x; x = x->next)
        if (x->server_id == id) return x;
    if (!create) return NULL;
    struct cull_srv *x = xcalloc(1, sizeof *x);
    x->server_id = id;
    x->next = c->srvs;
    c->srvs = x;
    return x;
}

/* A credential the server accepts for its own API (hub_cull.h): the
 * header line, new string, or NULL. */
static char *cull_auth(hub_cull_t *c, hub_server_t *s, struct cull_srv *x)
{
    hub_target_t t;
    if (hub_server_target(s, &t) == 0 && t.upstream_token) return xasprintf("Authorization: token %s", t.upstream_token);
    int64_t now = time_now_us();
    if (x->token[0] && now < x->token_until) return xasprintf("Authorization: token %s", x->token);
    /* JupyterHub's scope for one server: access:servers!server=USER/NAME. */
    json_t *scopes = json_pack("[s+++]", "access:servers!server=", hub_server_user(s), "/", hub_server_name(s));
    char *sj = json_dumps(scopes, JSON_COMPACT);
    json_decref(scopes);
    char tok[TOKEN_LEN + 1], dig[TOKEN_DIGEST_LEN + 1];
    nb_err_t err;
    int64_t id = 0;
    int rc = token_new(TOKEN_API, tok);
    if (rc == 0) {
        token_digest(tok, dig);
        rc = store_token_add_scoped(c->o.store, hub_server_user_id(s), "nbhub idle culler", dig, STORE_TOKEN_OAUTH, sj,
                                    hub_server_id(s), now, now + CULL_TOKEN_LIFE_US, &id, &err);
    } else {
        snprintf(err.msg, sizeof err.msg, "no random bytes");
    }
    free(sj);
    if (rc < 0) {
        LOG_W("cull: cannot make a token for the server", "server=%lld error=\"%s\"", (long long)hub_server_id(s),
              err.msg);
        return NULL;
    }
    if (x->token_id) store_token_revoke(c->o.store, x->token_id, 0, &err);   /* the one it replaces */
    memcpy(x->token, tok, sizeof x->token);
    x->token_id = id;
    x->token_until = now + CULL_TOKEN_LIFE_US - 3600LL * 1000000;
    return xasprintf("Authorization: token %s", x->token);
}

static void cull_stop(hub_cull_t *c, hub_server_t *s, const char *reason)
{
    struct cull_srv *x = cs_get(c, hub_server_id(s), 1);
    free(x->reason);
    x->reason = xstrdup(reason);
    x->culled_at = time_now_us();
    LOG_I("server culled", "user=%s server=\"%s\" reason=\"%s\"", hub_server_user(s), hub_server_name(s), reason);
    /* The reason stays on the server's row (stop_reason): the API, the
     * page and the progress stream say why it stopped. */
    char *why = xasprintf("culled: %s", reason);
    nb_err_t err;
    int rc = hub_server_stop_because(c->hub, s, 0, why, &err);
    free(why);
    if (rc < 0)
        LOG_W("cull: stop failed", "user=%s server=\"%s\" error=\"%s\"", hub_server_user(s), hub_server_name(s),
              err.msg);
}

static void cull_idle_reason(char *out, size_t n, const hub_cull_t *c, int64_t idle_us, const char *how)
{
    snprintf(out, n, "idle for %lld s (cull.timeout %lld s)%s", (long long)(idle_us / 1000000),
             (long long)(c->timeout_us / 1000000), how);
}

/* The server of a poll, if it is still running (else NULL). */
static hub_server_t *poll_server(struct cull_poll *p)
{
    if (p->c->freed) return NULL;
    hub_server_t *s = hub_server_by_id(p->c->hub, p->server_id);
    return s && hub_server_state(s) == HUB_RUNNING ? s : NULL;
}

/* A poll is over: its bookkeeping, and the cull struct's if it was freed meanwhile. */
static void poll_end(struct cull_poll *p)
{
    hub_cull_t *c = p->c;
    struct cull_srv *x = c->freed ? NULL : cs_get(c, p->server_id, 0);
    if (x) x->polling = 0;
    free(p);
    c->inflight--;
    if (c->freed && !c->inflight) free(c);
}

static void poll_kernels_done(const hclient_resp_t *r, void *ud)
{
    struct cull_poll *p = ud;
    /* -ECANCELED: nbhub stops (hclient_close); nothing is decided then */
    hub_server_t *s = r->code == -ECANCELED ? NULL : poll_server(p);
    if (!s) {
        poll_end(p);
        return;
    }
    int busy = 0, known = 0;
    if (r->code == 0 && r->status == 200) {
        json_t *arr = json_loadb(r->body, r->body_len, 0, NULL);
        size_t i;
        json_t *k;
        known = json_is_array(arr);
        json_array_foreach(arr, i, k) {
            const char *st = json_string_value(json_object_get(k, "execution_state"));
            if (st && !strcmp(st, "busy")) busy++;
        }
        json_decref(arr);
    }
    int64_t idle = p->now - p->known;
    if (busy) {
        LOG_D("cull: idle but busy, spared", "user=%s server=\"%s\" busy_kernels=%d", hub_server_user(s),
              hub_server_name(s), busy);
    } else if (!known) {
        /* cannot tell whether it is busy: spared (keep_busy) */
        LOG_D("cull: kernels unknown, spared", "user=%s server=\"%s\" status=%d", hub_server_user(s),
              hub_server_name(s), r->status);
    } else if (idle >= p->c->timeout_us) {
        char why[160];
        cull_idle_reason(why, sizeof why, p->c, idle, ", no kernel busy");
        cull_stop(p->c, s, why);
    }
    poll_end(p);
}

static int poll_get(struct cull_poll *p, hub_server_t *s, const char *what, hclient_done_fn cb)
{
    hub_target_t t;
    if (hub_server_target(s, &t) < 0) return -ENOTCONN;
    struct cull_srv *x = cs_get(p->c, p->server_id, 1);
    char *auth = cull_auth(p->c, s, x);
    char *url = xasprintf("http://%s:%d%s%s?no_track_activity=1", t.host, t.port, hub_server_prefix(s), what);
    const char *hdr[] = { auth ? auth : "Accept: application/json", "Accept: application/json", NULL };
    int rc = hclient_get(p->c->o.hc, url, hdr, 1 << 20, CULL_POLL_TIMEOUT_MS, cb, p);
    free(url);
    free(auth);
    return rc;
}

static void poll_status_done(const hclient_resp_t *r, void *ud)
{
    struct cull_poll *p = ud;
    hub_cull_t *c = p->c;
    hub_server_t *s = r->code == -ECANCELED ? NULL : poll_server(p);
    if (!s) {
        poll_end(p);
        return;
    }
    struct cull_srv *x = cs_get(c, p->server_id, 1);
    char why[200];
    if (r->code < 0 || (r->status >= 500 && r->status != 503)) {
        /* Unreachable: culled on what the hub knows. */
        int64_t idle = p->now - p->known;
        if (idle >= c->timeout_us) {
            char how[96];
            snprintf(how, sizeof how, ", and its /api/status does not answer (%s)",
                     r->code < 0 ? (r->error ? r->error : "no answer") : "server error");
            cull_idle_reason(why, sizeof why, c, idle, how);
            cull_stop(c, s, why);
        }
        poll_end(p);
        return;
    }
    if (r->status != 200) {
        if (!x->warned)
            LOG_W("cull: the server refuses our request", "user=%s server=\"%s\" status=%d", hub_server_user(s),
                  hub_server_name(s), r->status);
        /* The token is kept: a new one every round would fill the tokens
         * table for a server that refuses them all. */
        x->warned = 1;
        int64_t idle = p->now - p->known;
        if (!c->keep_busy && idle >= c->timeout_us) {
            cull_idle_reason(why, sizeof why, c, idle, "");
            cull_stop(c, s, why);
        }
        poll_end(p);
        return;
    }
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    int64_t la = hub_cull_parse_time(json_string_value(json_object_get(j, "last_activity")));
    p->kernels = (int)json_integer_value(json_object_get(j, "kernels"));
    json_decref(j);
    if (la > 0) {
        if (la > p->known) p->known = la;
        /* what the server knows, for the page and the next round */
        if (la > hub_server_last_activity(s) && la <= p->now + 60LL * 1000000) hub_server_activity(c->hub, s, la);
    }
    int64_t idle = p->now - p->known;
    if (idle < c->timeout_us) {
        poll_end(p);
        return;
    }
    if (c->keep_busy && p->kernels > 0) {
        /* is a kernel busy? */
        if (poll_get(p, s, "api/kernels", poll_kernels_done) == 0) return;
        poll_end(p);
        return;
    }
    cull_idle_reason(why, sizeof why, c, idle, p->kernels ? "" : ", no kernel");
    cull_stop(c, s, why);
    poll_end(p);
}

void hub_cull_run(hub_cull_t *c)
{
    if (c->freed || (!c->timeout_us && !c->max_age_us)) return;
    int64_t now = time_now_us();
    /* Collect first: a stop may change the list under us. */
    size_t n = 0, cap = 16;
    int64_t *ids = xcalloc(cap, sizeof *ids);
    for (hub_server_t *s = hub_server_next(c->hub, NULL); s; s = hub_server_next(c->hub, s))
        if (hub_server_state(s) == HUB_RUNNING) {
            if (n == cap) ids = xrealloc(ids, (cap *= 2) * sizeof *ids);
            ids[n++] = hub_server_id(s);
        }
    for (size_t i = 0; i < n; i++) {
        hub_server_t *s = hub_server_by_id(c->hub, ids[i]);
        if (!s || hub_server_state(s) != HUB_RUNNING) continue;
        int64_t started = hub_server_started_at(s), ready = hub_server_ready_at(s);
        char why[200];
        if (c->max_age_us && started && now - started >= c->max_age_us) {
            snprintf(why, sizeof why, "running for %lld s (cull.max_age %lld s)", (long long)((now - started) / 1000000),
                     (long long)(c->max_age_us / 1000000));
            cull_stop(c, s, why);
            continue;
        }
        if (!c->timeout_us) continue;
        int64_t known = hub_server_last_activity(s);
        if (ready > known) known = ready;
        if (started > known) known = started;
        if (now - known < c->timeout_us) continue;     /* active: nothing to ask */
        struct cull_srv *x = cs_get(c, ids[i], 1);
        if (x->polling) continue;
        struct cull_poll *p = xcalloc(1, sizeof *p);
        p->c = c;
        p->server_id = ids[i];
        p->known = known;
        p->now = now;
        if (poll_get(p, s, "api/status", poll_status_done) < 0) {
            free(p);
            continue;
        }
        x->polling = 1;
        c->inflight++;
    }
    free(ids);
    /* Forget servers that are gone (their tokens went with their stop). */
    for (struct cull_srv **pp = &c->srvs; *pp;) {
        struct cull_srv *x = *pp;
        hub_server_t *s = hub_server_by_id(c->hub, x->server_id);
        if (!s && !x->polling) {
            *pp = x->next;
            free(x->reason);
            free(x);
            continue;
        }
        /* A stopped server's tokens were revoked: make a new one next time. */
        if (s && hub_server_state(s) != HUB_RUNNING) {
            memset(x->token, 0, sizeof x->token);
            x->token_id = 0;
            x->warned = 0;
        }
        pp = &x->next;
    }
}

static void cull_on_timer(uv_timer_t *t)
{
    hub_cull_run(t->data);
}

json_t *hub_cull_last(hub_cull_t *c, int64_t server_id)
{
    struct cull_srv *x = c ? cs_get(c, server_id, 0) : NULL;
    if (!x || !x->culled_at) return NULL;
    return json_pack("{s:I, s:s}", "at", (json_int_t)x->culled_at, "reason", x->reason ? x->reason : "");
}

int hub_cull_new(hub_t *h, const hub_cull_opts_t *o, hub_cull_t **out, nb_err_t *err)
{
    if (!o || !o->loop || !o->hc || !o->store || !o->home)
        return err_set(err, -EINVAL, "hub_cull_new: loop, hc, store and home are needed");
    const hub_conf_t *conf = hub_conf(h);
    hub_cull_t *c = xcalloc(1, sizeof *c);
    c->hub = h;
    c->o = *o;
    c->home = xstrdup(o->home);
    c->o.home = c->home;
    c->timeout_us = conf->cull_timeout_ms * 1000;
    c->max_age_us = conf->cull_max_age_ms * 1000;
    c->keep_busy = conf->cull_keep_busy;
    c->timer = xcalloc(1, sizeof *c->timer);
    uv_timer_init(o->loop, c->timer);
    c->timer->data = c;
    uv_unref((uv_handle_t *)c->timer);   /* never what keeps nbhub's loop running */
    int64_t every = conf->cull_every_ms;
    if (every <= 0) {
        int64_t base = conf->cull_timeout_ms ? conf->cull_timeout_ms : conf->cull_max_age_ms;
        every = base / 2;
        if (every > HUB_CULL_EVERY_MAX_MS) every = HUB_CULL_EVERY_MAX_MS;
        if (every < 1000) every = 1000;
    }
    if (c->timeout_us || c->max_age_us) {
        uv_timer_start(c->timer, cull_on_timer, (uint64_t)every, (uint64_t)every);
        LOG_I("idle culling on", "timeout_s=%lld keep_busy=%d max_age_s=%lld every_ms=%lld",
              (long long)(conf->cull_timeout_ms / 1000), c->keep_busy, (long long)(conf->cull_max_age_ms / 1000),
              (long long)every);
    }
    *out = c;
    return 0;
}

static void cull_timer_closed(uv_handle_t *t)
{
    free(t);
}

void hub_cull_free(hub_cull_t *c)
{
    if (!c) return;
    uv_timer_stop(c->timer);
    uv_close((uv_handle_t *)c->timer, cull_timer_closed);
    for (struct cull_srv *x = c->srvs, *n; x; x = n) {
        n = x->next;
        free(x->reason);
        free(x);
    }
    c->srvs = NULL;
    free(c->home);
    c->home = NULL;
    c->freed = 1;
    /* Requests in flight end later (or now, from hclient_close): the last
     * one frees c. */
    if (!c->inflight) free(c);
}
