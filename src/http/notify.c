/*
 * http/notify — the webhook outbox deliverer.  notify.h has the contract
 * (payload envelope, retry schedule, shutdown order); this note explains
 * the moving parts.
 *
 * One pass ("pump") runs from the notifier's single timer — armed by
 * notify_kick, by a completion, or by the schedule — never from inside
 * another module's call, so the scheduler can kick while it holds its own
 * state half-updated and a burst of kicks or completions costs one query.
 * A pass reads the first max_inflight + 1 pending rows, earliest first.  At
 * most max_inflight of them are in flight, so the list always reaches past
 * them: the due rows not in flight are started while slots are free, and
 * the first row left over tells when to wake up next.  When that row is
 * already due there is no free slot, and the timer stays off: the next
 * completion fires it.
 *
 * A row in flight is kept in a short list (at most max_inflight), and a
 * pass skips rows found there: store_webhooks_due still returns them,
 * because their next_attempt_at only moves when the attempt is recorded.
 *
 * Time: next_attempt_at is wall-clock microseconds (the store's unit); the
 * timer is monotonic.  A wall clock that jumps makes a wake-up early (the
 * pass finds nothing due and re-arms) or late by at most poll_ms.
 */
#include "http/notify.h"
#include "store/store_runs.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Room for the stored error text (a fixed sentence, notify.h). */
#define ERROR_MAX   256

struct delivery {
    notify_t        *n;
    int64_t          id;
    int              attempts;    /* recorded before this one */
    char            *event;
    char             host[128];
    struct delivery *prev, *next;
};

struct notify {
    uv_loop_t       *loop;
    store_t         *st;
    hclient_t       *hc;
    notify_opts_t    o;
    netguard_t      *own_guard;      /* when the options gave none */
    uv_timer_t       timer;
    struct delivery *inflight;
    size_t           ninflight;
    uint64_t         hold_until_ms;  /* monotonic: no new delivery before (store trouble) */
    int              closing;
    void           (*done)(void *);
    void            *done_ud;
};

void notify_opts_default(notify_opts_t *o)
{
    o->backoff_base_ms = 5000;
    o->backoff_max_ms = 3600 * 1000;
    o->max_attempts = 12;
    o->max_inflight = 8;
    o->timeout_ms = 10000;
    o->poll_ms = 30000;
    o->guard = NULL;
}

uint64_t notify_backoff_ms(const notify_opts_t *o, int attempt)
{
    if (attempt >= o->max_attempts) return 0;
    uint64_t d = o->backoff_base_ms;
    for (int i = 1; i < attempt && d < o->backoff_max_ms; i++) d *= 2;
    if (d > o->backoff_max_ms) d = o->backoff_max_ms;
    return d ? d : 1;   /* 0 means "give up" to the store */
}

char *notify_envelope(json_t *headers, json_t *body)
{
    json_t *env = json_object();
    json_object_set_new(env, "headers", headers ? json_incref(headers) : json_object());
    json_object_set(env, "body", body);
    char *s = json_dumps(env, JSON_COMPACT);
    NB_ASSERT(s != NULL);
    json_decref(env);
    return s;
}

/* ASCII-only copy for the store and for log values: a receiver's body may
 * hold anything, and the store's webhook.failed event (JSON) needs valid
 * UTF-8.  Quotes and backslashes become ' and / so a log value can be
 * quoted without escaping. */
static void clean_text(char *dst, size_t n, const char *src, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && src[i] && j + 1 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"') c = '\'';
        else if (c == '\\') c = '/';
        else if (c < 0x20 || c >= 0x7f) c = ' ';
        dst[j++] = (char)c;
    }
    dst[j] = '\0';
}

/* ---- timer ------------------------------------------------------------ */

static void pump(notify_t *n);

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

static void arm(notify_t *n, uint64_t ms)
{
    if (ms > n->o.poll_ms) ms = n->o.poll_ms;
    uv_timer_start(&n->timer, on_timer, ms, 0);
}

void notify_kick(notify_t *n)
{
    if (!n->closing) uv_timer_start(&n->timer, on_timer, 0, 0);
}

static void timer_closed(uv_handle_t *h)
{
    notify_t *n = h->data;
    void (*done)(void *) = n->done;
    void *ud = n->done_ud;
    netguard_free(n->own_guard);
    free(n);
    if (done) done(ud);
}

/* ---- recording -------------------------------------------------------- */

/* Store one attempt.  A failure to record (locked or broken database) holds
 * new deliveries back for poll_ms: the row is still due, and sending it
 * again at once would loop. */
static void record(notify_t *n, int64_t id, int ok, const char *error, int64_t next, int64_t now)
{
    nb_err_t err;
    int rc = store_webhook_attempt(n->st, id, ok, error, next, now, &err);
    if (rc == 0) return;
    char msg[ERROR_MAX];
    clean_text(msg, sizeof msg, err.msg, sizeof err.msg);
    LOG_W("webhook attempt not recorded", "delivery=%lld rc=%d error=\"%s\"", (long long)id, rc, msg);
    if (rc != -ESTALE && rc != -ENOENT) n->hold_until_ms = time_mono_ms() + n->o.poll_ms;
}

/* A delivery that can never succeed: failed now, no retries. */
static void give_up(notify_t *n, const store_webhook_t *w, const char *host, const char *why)
{
    char event[64];
    clean_text(event, sizeof event, w->event ? w->event : "?", SIZE_MAX);
    LOG_W("webhook failed", "delivery=%lld event=%s host=%s attempts=%d error=\"%s\"",
          (long long)w->id, event, host, w->attempts + 1, why);
    record(n, w->id, 0, why, 0, time_now_us());
}

/* ---- one delivery ----------------------------------------------------- */

static void delivery_unlink(struct delivery *d)
{
    notify_t *n = d->n;
    if (d->prev) d->prev->next = d->next;
    else n->inflight = d->next;
    if (d->next) d->next->prev = d->prev;
    n->ninflight--;
}

static void delivery_free(struct delivery *d)
{
    free(d->event);
    free(d);
}

static int in_flight(const notify_t *n, int64_t id)
{
    for (const struct delivery *d = n->inflight; d; d = d->next)
        if (d->id == id) return 1;
    return 0;
}

/* The error users see (notify.h): the status, or a fixed sentence per
 * kind of failure.  Never the receiver's body, never curl's message (it
 * names resolved addresses and ports: a map of the inside for whoever
 * writes URLs). */
static void public_error(const hclient_resp_t *resp, char *out, size_t n)
{
    const char *s;
    switch (resp->code) {
    case 0:
        snprintf(out, n, "HTTP %d from the receiver (a 2xx was expected)", resp->status);
        return;
    case -EACCES:
        s = "address not allowed: the receiver's address is loopback, private, link-local or "
            "otherwise internal; an admin can list it under webhooks.allow in nbhub.yaml";
        break;
    case -ETIMEDOUT:    s = "timed out"; break;
    case -ECONNREFUSED: s = "could not connect to the receiver"; break;
    case -EHOSTUNREACH: s = "the receiver's host name did not resolve"; break;
    default:            s = "the request failed (TLS or protocol error)"; break;
    }
    snprintf(out, n, "%s", s);
}

static void on_done(const hclient_resp_t *resp, void *ud)
{
    struct delivery *d = ud;
    notify_t *n = d->n;
    delivery_unlink(d);

    if (resp->code == -ECANCELED) {
        /* The HTTP client is closing (daemon shutdown): not the receiver's
         * fault, so the attempt is not counted; the row stays due. */
        LOG_I("webhook attempt aborted", "delivery=%lld event=%s host=%s", (long long)d->id,
              d->event, d->host);
    } else {
        int ok = resp->code == 0 && resp->status >= 200 && resp->status <= 299;
        int attempt = d->attempts + 1;
        int64_t now = time_now_us(), next = 0;
        char error[ERROR_MAX] = "";
        if (!ok) {
            public_error(resp, error, sizeof error);
            /* An address the guard refuses stays refused: no retries. */
            uint64_t delay = resp->code == -EACCES ? 0 : notify_backoff_ms(&n->o, attempt);
            if (delay) next = now + (int64_t)delay * 1000;
            if (resp->code != 0) {
                /* The admin's log gets curl's words (or the refused address). */
                char detail[ERROR_MAX];
                clean_text(detail, sizeof detail, resp->error, strlen(resp->error));
                LOG_I("webhook attempt detail", "delivery=%lld host=%s detail=\"%s\"",
                      (long long)d->id, d->host, detail);
            }
        }
        if (ok)
            LOG_I("webhook delivered", "delivery=%lld event=%s host=%s status=%d attempt=%d ms=%llu",
                  (long long)d->id, d->event, d->host, resp->status, attempt,
                  (unsigned long long)resp->elapsed_ms);
        else if (next)
            LOG_W("webhook attempt failed",
                  "delivery=%lld event=%s host=%s attempt=%d error=\"%s\" retry_in_ms=%llu",
                  (long long)d->id, d->event, d->host, attempt, error,
                  (unsigned long long)((next - now) / 1000));
        else
            LOG_W("webhook failed", "delivery=%lld event=%s host=%s attempts=%d error=\"%s\"",
                  (long long)d->id, d->event, d->host, attempt, error);
        record(n, d->id, ok, ok ? NULL : error, next, now);
    }
    delivery_free(d);

    if (n->closing) {
        if (n->ninflight == 0) uv_close((uv_handle_t *)&n->timer, timer_closed);
    } else {
        notify_kick(n);   /* a slot is free: look again from the loop */
    }
}

/* Lines "Name: value" for hclient_post: the envelope's headers, then each
 * default the envelope did not replace.  NULL, or a message for give_up
 * (*out is set either way: free_lines it). */
static const char *build_headers(const store_webhook_t *w, json_t *hdrs, char ***out)
{
    size_t cap = (hdrs ? json_object_size(hdrs) : 0) + 5, k = 0;
    char **v = xcalloc(cap, sizeof *v);
    *out = v;
    const char *name;
    json_t *val;
    if (hdrs) {
        json_object_foreach(hdrs, name, val) {
            if (!json_is_string(val)) return "webhook header values must be strings";
            const char *s = json_string_value(val);
            char *line = xasprintf("%s: %s", name, s);
            /* A NUL inside the value would cut the line short: refuse it too. */
            int ok = strlen(s) == json_string_length(val) && hclient_header_ok(line);
            v[k++] = line;
            if (!ok)
                return "invalid webhook header (a name that is not a token, a control "
                       "character such as CR or LF in the value, or a framing header)";
        }
    }
    char delivery[32];
    snprintf(delivery, sizeof delivery, "%lld", (long long)w->id);
    const char *defaults[][2] = {
        { "Content-Type", "application/json" },
        { "User-Agent", "nbhub" },
        { "X-Nbhub-Event", w->event ? w->event : "" },
        { "X-Nbhub-Delivery", delivery },
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        int replaced = 0;
        if (hdrs)
            json_object_foreach(hdrs, name, val)
                if (strcasecmp(name, defaults[i][0]) == 0) replaced = 1;
        if (replaced) continue;
        char *line = xasprintf("%s: %s", defaults[i][0], defaults[i][1]);
        if (hclient_header_ok(line)) v[k++] = line;
        else free(line);   /* an event name no header can carry: leave it out */
    }
    return NULL;
}

static void free_lines(char **v)
{
    for (size_t i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

/* Start one delivery.  1 if it is now in flight, 0 if not (given up, or
 * the HTTP client is closing). */
static int start(notify_t *n, const store_webhook_t *w)
{
    char host[128];
    hclient_url_host(w->url, host, sizeof host);

    json_error_t je;
    json_t *p = json_loads(w->payload_json ? w->payload_json : "{}", 0, &je);
    if (!p || !json_is_object(p)) {
        json_decref(p);
        give_up(n, w, host, "webhook payload is not a JSON object");
        return 0;
    }
    json_t *body = json_object_get(p, "body"), *hdrs = json_object_get(p, "headers");
    if (!body) {        /* not an envelope: the whole payload is the body */
        body = p;
        hdrs = NULL;
    }
    if (hdrs && !json_is_object(hdrs)) {
        json_decref(p);
        give_up(n, w, host, "webhook payload: 'headers' is not an object");
        return 0;
    }
    char **lines;
    const char *bad = build_headers(w, hdrs, &lines);
    if (bad) {
        json_decref(p);
        free_lines(lines);
        give_up(n, w, host, bad);
        return 0;
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(p);
    NB_ASSERT(text != NULL);

    struct delivery *d = xcalloc(1, sizeof *d);
    d->n = n;
    d->id = w->id;
    d->attempts = w->attempts;
    char event[64];
    clean_text(event, sizeof event, w->event ? w->event : "?", SIZE_MAX);
    d->event = xstrdup(event);   /* for logs only */
    memcpy(d->host, host, sizeof d->host);
    int rc = hclient_post_guarded(n->hc, w->url ? w->url : "", (const char *const *)lines, text,
                                  strlen(text), n->o.timeout_ms, n->o.guard, on_done, d);
    free(text);
    free_lines(lines);
    if (rc == 0) {
        d->next = n->inflight;
        if (n->inflight) n->inflight->prev = d;
        n->inflight = d;
        n->ninflight++;
        return 1;
    }
    delivery_free(d);
    if (rc == -EINVAL)
        give_up(n, w, host, "invalid webhook URL: it must be http:// or https:// with a host");
    else if (rc != -ESHUTDOWN)
        LOG_W("webhook not sent", "delivery=%lld host=%s rc=%d", (long long)w->id, host, rc);
    return 0;
}

/* ---- the pass --------------------------------------------------------- */

static void pump(notify_t *n)
{
    if (n->closing) return;
    uint64_t mono = time_mono_ms();
    if (mono < n->hold_until_ms) {
        arm(n, n->hold_until_ms - mono);
        return;
    }
    size_t slots = (size_t)n->o.max_inflight - n->ninflight;
    store_webhooks_t rows;
    nb_err_t err;
    /* now = INT64_MAX: every pending row, earliest first (see the note on top). */
    int rc = store_webhooks_due(n->st, INT64_MAX, n->o.max_inflight + 1, &rows, &err);
    if (rc) {
        char msg[ERROR_MAX];
        clean_text(msg, sizeof msg, err.msg, sizeof err.msg);
        LOG_W("webhook outbox unreadable", "rc=%d error=\"%s\"", rc, msg);
        arm(n, n->o.poll_ms);
        return;
    }
    int64_t now = time_now_us(), wake = -1;   /* -1: no row left over */
    for (size_t i = 0; i < rows.n; i++) {
        const store_webhook_t *w = &rows.v[i];
        if (in_flight(n, w->id)) continue;
        if (w->next_attempt_at <= now && slots > 0 && mono >= n->hold_until_ms) {
            slots -= (size_t)start(n, w);
            continue;
        }
        wake = w->next_attempt_at;
        break;
    }
    store_webhooks_free(&rows);

    if (n->hold_until_ms > mono) {           /* a give_up could not be recorded */
        arm(n, n->hold_until_ms - mono);
    } else if (wake < 0) {
        arm(n, n->o.poll_ms);                /* nothing pending beyond what runs */
    } else if (wake <= now) {
        uv_timer_stop(&n->timer);            /* due but no slot: a completion kicks */
    } else {
        arm(n, (uint64_t)(wake - now + 999) / 1000);
    }
}

/* ---- public ----------------------------------------------------------- */

notify_t *notify_new(uv_loop_t *loop, store_t *st, hclient_t *hc)
{
    return notify_new_opts(loop, st, hc, NULL);
}

notify_t *notify_new_opts(uv_loop_t *loop, store_t *st, hclient_t *hc, const notify_opts_t *o)
{
    notify_t *n = xcalloc(1, sizeof *n);
    n->loop = loop;
    n->st = st;
    n->hc = hc;
    notify_opts_default(&n->o);
    if (o) {
        if (o->backoff_base_ms) n->o.backoff_base_ms = o->backoff_base_ms;
        if (o->backoff_max_ms) n->o.backoff_max_ms = o->backoff_max_ms;
        if (o->max_attempts > 0) n->o.max_attempts = o->max_attempts;
        if (o->max_inflight > 0) n->o.max_inflight = o->max_inflight;
        if (o->timeout_ms) n->o.timeout_ms = o->timeout_ms;
        if (o->poll_ms) n->o.poll_ms = o->poll_ms;
        n->o.guard = o->guard;
    }
    if (!n->o.guard) n->o.guard = n->own_guard = netguard_new();
    if (n->o.backoff_max_ms < n->o.backoff_base_ms) n->o.backoff_max_ms = n->o.backoff_base_ms;
    uv_timer_init(loop, &n->timer);
    n->timer.data = n;
    return n;
}

size_t notify_inflight(const notify_t *n)
{
    return n->ninflight;
}

void notify_close(notify_t *n, void (*done)(void *ud), void *ud)
{
    NB_ASSERT(!n->closing);
    n->closing = 1;
    n->done = done;
    n->done_ud = ud;
    uv_timer_stop(&n->timer);
    if (n->ninflight == 0) uv_close((uv_handle_t *)&n->timer, timer_closed);
}
