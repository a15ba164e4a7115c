/*
 * api_events — GET /api/v1/events: the store's event feed as Server-Sent
 * Events, each client seeing only what it may see.
 *
 * Source of truth.  Every state transition appends its row to the store's
 * `events` table in the same transaction (store.h), with an id that is
 * never reused.  So the stream is simply "the rows after id N": no second
 * in-memory queue that could disagree with the database, and a client that
 * reconnects with Last-Event-ID (browsers do it by themselves) or
 * ?after=N gets exactly what it missed, read from the table, before the
 * live events.  What the retention job pruned is gone; the client then
 * resumes at the oldest row kept.
 *
 * Delivery.  The scheduler calls api_notify after each commit.  It reads
 * the new rows once (from the lowest cursor among the clients, in batches)
 * and gives each client the rows past its own cursor that it may see.  A
 * client's cursor moves over rows it may not see too, so they are not
 * considered again.  With no client connected, api_notify costs nothing.
 *
 * Visibility.  An event about a flow goes to the owner of the flow
 * incarnation it is about (events.flow_id, see store_flows.h) and to
 * admins, looked up once per batch per incarnation.  A deleted flow keeps
 * its owner, so "flow.deleted" reaches the owner, and the events of its
 * runs never reach whoever creates the name again.  Events about no flow
 * (webhook.failed without a run, store.recover) go to admins only.
 *
 * Re-authentication.  The user and admin bit start as the ones of the
 * request that opened the stream.  Every API_EVENTS_RECHECK_S seconds each
 * stream's credential is looked up again (api_auth_recheck: one indexed row
 * per stream): a stream whose session ended (logout, expiry), whose token
 * was revoked or whose user was disabled is closed — a browser's
 * EventSource then reconnects and gets 401 — and an admin bit taken away
 * stops the admin-only events.
 *
 * Back-pressure is the SSE layer's: a client whose unsent data passes 1 MiB
 * is dropped (http_sse_send says -ENOBUFS) and will reconnect with its
 * Last-Event-ID, reading the rest from the table at its own pace.
 */
#include "api/api_int.h"
#include "util/fsutil.h"
#include "util/jparse.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define API_EVENTS_BATCH 1000
#define API_EVENTS_RECHECK_S 10

struct api_sse_client {
    api_t            *api;
    http_sse_t       *sse;
    int64_t           uid;
    int               admin;
    int64_t           cursor;       /* last event id handled for this client */
    int               via_cookie;   /* the credential: a session, else a token */
    char              digest[65];   /* its digest, for api_auth_recheck */
    int               dead;         /* send failed: on_close will follow */
    api_sse_client_t *prev, *next;
};

/* flow incarnation (flows.id) -> owner id, for one batch of events. */
typedef struct api_owner_cache {
    int64_t *ids;
    int64_t *owners;                /* -1 = no such flow */
    size_t   n;
} api_owner_cache_t;

static int64_t api_events_owner(api_t *a, api_owner_cache_t *c, int64_t flow_id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[i] == flow_id) return c->owners[i];
    store_flow_t f;
    int64_t owner = -1;
    if (store_flow_get_id(a->store, flow_id, &f, NULL) == 0) {
        owner = f.owner_id;
        store_flow_clear(&f);
    }
    c->ids = xrealloc(c->ids, (c->n + 1) * sizeof *c->ids);
    c->owners = xrealloc(c->owners, (c->n + 1) * sizeof *c->owners);
    c->ids[c->n] = flow_id;
    c->owners[c->n] = owner;
    return c->owners[c->n++];
}

static void api_events_cache_free(api_owner_cache_t *c)
{
    free(c->ids);
    free(c->owners);
}

/* May cl see what happens to this flow incarnation (0: about no flow)? */
static int api_events_may_see(api_t *a, api_owner_cache_t *cache, const api_sse_client_t *cl,
                              int64_t flow_id)
{
    if (cl->admin) return 1;
    if (!flow_id) return 0;
    int64_t owner = api_events_owner(a, cache, flow_id);
    return owner > 0 && owner == cl->uid;
}

static int api_events_visible(api_t *a, api_owner_cache_t *cache, const api_sse_client_t *cl,
                              const store_event_t *e)
{
    return api_events_may_see(a, cache, cl, e->flow_id);
}

/* Send one event to one client (if visible) and move its cursor. */
static void api_events_deliver(api_t *a, api_owner_cache_t *cache, api_sse_client_t *cl,
                               const store_event_t *e, const char *data)
{
    if (cl->dead || e->id <= cl->cursor) return;
    cl->cursor = e->id;
    if (!api_events_visible(a, cache, cl, e)) return;
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, e->id);
    /* Kinds are ours ("task.success"), never CR/LF; -EINVAL cannot happen. */
    if (http_sse_send(cl->sse, e->kind, id, data) < 0) cl->dead = 1;
}

static char *api_events_data(const store_event_t *e)
{
    json_t *j = api_json_event(e);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s ? s : xstrdup("{}");
}

/* Rows after `from` to the clients in `only` (one client) or all. */
static void api_events_pump(api_t *a, int64_t from, api_sse_client_t *only)
{
    api_owner_cache_t cache = { NULL, NULL, 0 };
    for (;;) {
        store_events_t l;
        nb_err_t err;
        if (store_events_since(a->store, from, API_EVENTS_BATCH, &l, &err) != 0) {
            LOG_W("cannot read events", "error=\"%s\"", err.msg);
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            char *data = api_events_data(&l.v[i]);
            if (only) {
                api_events_deliver(a, &cache, only, &l.v[i], data);
            } else {
                for (api_sse_client_t *cl = a->clients; cl; cl = cl->next)
                    api_events_deliver(a, &cache, cl, &l.v[i], data);
            }
            free(data);
        }
        size_t n = l.n;
        if (n) from = l.v[n - 1].id;
        store_events_free(&l);
        if (n < API_EVENTS_BATCH) break;
        if (only && only->dead) break;
    }
    api_events_cache_free(&cache);
}

void api_notify(api_t *a)
{
    if (!a || !a->clients) return;
    int64_t from = INT64_MAX;
    for (api_sse_client_t *cl = a->clients; cl; cl = cl->next)
        if (!cl->dead && cl->cursor < from) from = cl->cursor;
    if (from == INT64_MAX) return;
    api_events_pump(a, from, NULL);
}

/* ---- Spark progress ----------------------------------------------------
 *
 * A Spark task's progress (<task>.spark.json, rewritten by its
 * __spark-task whenever a poll of the driver saw something new) goes out
 * as "task.spark" events: {"kind", "flow", "run", "task", "spark": the file}.
 * Progress is a view of the moment, not a state transition: these events
 * are not rows of the events table and carry no id (a reconnecting client
 * reads the current state with GET .../spark, and Last-Event-ID keeps
 * meaning "rows seen").  While a stream is open, a 1 s timer asks the
 * scheduler for its running Spark tasks and sends a file again only when
 * its mtime or size moved (one stat per task per second; no stream, no
 * timer). */

struct api_spark_seen {
    char   *path;
    int64_t mtime_ns;
    int64_t size;
};

struct api_spark_tick {
    api_t                 *a;
    api_owner_cache_t      cache;
    struct api_spark_seen *next;   /* the files seen this tick */
    size_t                 nnext;
};

static void api_events_spark_one(const char *flow, int64_t run, const char *task, const char *path, void *ud)
{
    struct api_spark_tick *k = ud;
    api_t *a = k->a;
    struct stat sb;
    if (stat(path, &sb) != 0) return;
    int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    int changed = 1;
    for (size_t i = 0; i < a->nspark_seen; i++)
        if (!strcmp(a->spark_seen[i].path, path))
            changed = a->spark_seen[i].mtime_ns != mt || a->spark_seen[i].size != (int64_t)sb.st_size;
    k->next = xrealloc(k->next, (k->nnext + 1) * sizeof *k->next);
    k->next[k->nnext++] = (struct api_spark_seen){ xstrdup(path), mt, (int64_t)sb.st_size };
    if (!changed) return;
    json_t *doc = jparse_file_regular(path, 16 << 20);
    if (!json_is_object(doc)) {   /* never half-written (atomic rename), but not ours to trust */
        json_decref(doc);
        return;
    }
    json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:o}", "kind", "task.spark", "flow", flow, "run", (json_int_t)run,
                           "task", task, "spark", doc);
    char *data = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    /* Visible like the run's own events: by the run's flow incarnation. */
    int64_t flow_id = 0;
    store_run_t r;
    if (store_run_get(a->store, run, &r, NULL, NULL) == 0) {
        flow_id = r.flow_id;
        store_run_clear(&r);
    }
    for (api_sse_client_t *cl = a->clients; data && cl; cl = cl->next)
        if (!cl->dead && api_events_may_see(a, &k->cache, cl, flow_id) &&
            http_sse_send(cl->sse, "task.spark", NULL, data) < 0)
            cl->dead = 1;
    free(data);
}

static void api_events_spark_forget(api_t *a)
{
    for (size_t i = 0; i < a->nspark_seen; i++) free(a->spark_seen[i].path);
    free(a->spark_seen);
    a->spark_seen = NULL;
    a->nspark_seen = 0;
}

static void api_events_unlink(api_sse_client_t *cl);

/* Streams whose credential is no longer good are closed (see the top). */
static void api_events_recheck(api_t *a)
{
    api_sse_client_t *next;
    for (api_sse_client_t *cl = a->clients; cl; cl = next) {
        next = cl->next;
        if (cl->dead) continue;
        int admin = cl->admin;
        int rc = api_auth_recheck(a, cl->via_cookie, cl->digest, cl->uid, &admin);
        if (rc < 0) continue;
        cl->admin = admin;
        if (rc == 0) {
            LOG_I("event stream closed: credential no longer valid", "uid=%lld", (long long)cl->uid);
            api_events_unlink(cl);
            http_sse_close(cl->sse);
            free(cl);
        }
    }
}

static void api_events_spark_tick(uv_timer_t *t)
{
    api_t *a = t->data;
    if (a->clients && ++a->recheck_ticks >= API_EVENTS_RECHECK_S) {
        a->recheck_ticks = 0;
        api_events_recheck(a);
    }
    if (!a->sched || !a->clients) return;
    struct api_spark_tick k = { .a = a };
    sched_spark_each(a->sched, api_events_spark_one, &k);
    api_events_cache_free(&k.cache);
    api_events_spark_forget(a);
    a->spark_seen = k.next;
    a->nspark_seen = k.nnext;
}

static void api_events_timer_closed(uv_handle_t *h) { free(h); }

/* The timer runs while a stream is open. */
static void api_events_spark_timer(api_t *a, int on)
{
    if (on && !a->spark_timer) {
        a->spark_timer = xcalloc(1, sizeof *a->spark_timer);
        uv_timer_init(a->loop, a->spark_timer);
        a->spark_timer->data = a;
        uv_unref((uv_handle_t *)a->spark_timer);   /* never what keeps the daemon up */
        uv_timer_start(a->spark_timer, api_events_spark_tick, 1000, 1000);
    } else if (!on && a->spark_timer) {
        uv_close((uv_handle_t *)a->spark_timer, api_events_timer_closed);
        a->spark_timer = NULL;
        api_events_spark_forget(a);
    }
}

static void api_events_unlink(api_sse_client_t *cl)
{
    api_t *a = cl->api;
    if (cl->prev) cl->prev->next = cl->next;
    else a->clients = cl->next;
    if (cl->next) cl->next->prev = cl->prev;
    if (!a->clients) api_events_spark_timer(a, 0);
}

static void api_events_closed(http_sse_t *s, void *ud)
{
    (void)s;
    api_sse_client_t *cl = ud;
    api_events_unlink(cl);
    free(cl);
}

void api_events_get(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    const char *after = http_query(req, "after");
    const char *last = http_header(req, "Last-Event-ID");
    const char *resume = last ? last : after;
    int64_t cursor = 0, ignored;
    /* Both are checked even when Last-Event-ID wins: a bad parameter is an
     * error whether or not it would have been used.  An empty header is no
     * event id either, as an empty ?after= is not (a browser sends the
     * header only with the id of an event it got). */
    if (resume) {
        if (api_parse_i64(resume, 0, INT64_MAX, &cursor) < 0 ||
            (after && api_parse_i64(after, 0, INT64_MAX, &ignored) < 0)) {
            api_error(req, 400, "bad_request", "Last-Event-ID / after must be an event id");
            return;
        }
    } else {
        nb_err_t err;
        int rc = store_events_last_id(a->store, &cursor, &err);
        if (rc) {
            api_fail(req, rc, &err);
            return;
        }
    }
    api_sse_client_t *cl = xcalloc(1, sizeof *cl);
    cl->api = a;
    cl->uid = c->uid;
    cl->admin = c->admin;
    cl->cursor = cursor;
    cl->via_cookie = c->via_cookie;
    const char *dg = c->via_cookie ? c->session_digest : c->token_digest;
    snprintf(cl->digest, sizeof cl->digest, "%s", dg ? dg : "");
    /* The request dies in http_sse_start: c must not be used after it. */
    cl->sse = http_sse_start(req, api_events_closed, cl);
    if (!cl->sse) {
        free(cl);
        return;
    }
    cl->next = a->clients;
    if (a->clients) a->clients->prev = cl;
    a->clients = cl;
    api_events_spark_timer(a, 1);
    /* A comment first, so clients and proxies see the stream is open even
     * when there is nothing to replay. */
    http_sse_comment(cl->sse, "nbhub events");
    if (resume) api_events_pump(a, cursor, cl);
}

void api_events_close_all(api_t *a)
{
    while (a->clients) {
        api_sse_client_t *cl = a->clients;
        api_events_unlink(cl);
        http_sse_close(cl->sse);
        free(cl);
    }
}
