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
 * Visibility.  An event about a flow goes to that flow's owner and to
 * admins, looked up once per batch per flow (soft-deleted flows keep their
 * owner, so "flow.deleted" reaches the owner).  Events about no flow
 * (webhook.failed without a run, store.recover) go to admins only.  The
 * user and admin bit are the ones of the request that opened the stream;
 * a user disabled later keeps a stream already open until it reconnects
 * (see the report: the stream is not re-authenticated).
 *
 * Back-pressure is the SSE layer's: a client whose unsent data passes 1 MiB
 * is dropped (http_sse_send says -ENOBUFS) and will reconnect with its
 * Last-Event-ID, reading the rest from the table at its own pace.
 */
#include "api/api_int.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_EVENTS_BATCH 1000

struct api_sse_client {
    api_t            *api;
    http_sse_t       *sse;
    int64_t           uid;
    int               admin;
    int64_t           cursor;       /* last event id handled for this client */
    int               dead;         /* send failed: on_close will follow */
    api_sse_client_t *prev, *next;
};

/* flow name -> owner id, for one batch of events. */
typedef struct api_owner_cache {
    char   **names;
    int64_t *owners;                /* -1 = no such flow */
    size_t   n;
} api_owner_cache_t;

static int64_t api_events_owner(api_t *a, api_owner_cache_t *c, const char *flow)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], flow) == 0) return c->owners[i];
    store_flow_t f;
    int64_t owner = -1;
    if (store_flow_get(a->store, flow, 1, &f, NULL) == 0) {
        owner = f.owner_id;
        store_flow_clear(&f);
    }
    c->names = xrealloc(c->names, (c->n + 1) * sizeof *c->names);
    c->owners = xrealloc(c->owners, (c->n + 1) * sizeof *c->owners);
    c->names[c->n] = xstrdup(flow);
    c->owners[c->n] = owner;
    return c->owners[c->n++];
}

static void api_events_cache_free(api_owner_cache_t *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->names[i]);
    free(c->names);
    free(c->owners);
}

static int api_events_visible(api_t *a, api_owner_cache_t *cache, const api_sse_client_t *cl,
                              const store_event_t *e)
{
    if (cl->admin) return 1;
    if (!e->flow) return 0;
    int64_t owner = api_events_owner(a, cache, e->flow);
    return owner > 0 && owner == cl->uid;
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

static void api_events_unlink(api_sse_client_t *cl)
{
    api_t *a = cl->api;
    if (cl->prev) cl->prev->next = cl->next;
    else a->clients = cl->next;
    if (cl->next) cl->next->prev = cl->prev;
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
    const char *resume = last && *last ? last : after;
    int64_t cursor = 0;
    if (resume) {
        if (api_parse_i64(resume, 0, INT64_MAX, &cursor) < 0) {
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
    /* The request dies in http_sse_start: c must not be used after it. */
    cl->sse = http_sse_start(req, api_events_closed, cl);
    if (!cl->sse) {
        free(cl);
        return;
    }
    cl->next = a->clients;
    if (a->clients) a->clients->prev = cl;
    a->clients = cl;
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
