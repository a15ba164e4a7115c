/*
 * http/notify — delivers the webhook outbox (store_runs.h,
 * webhook_deliveries) over HTTP without ever blocking the loop.
 *
 * The scheduler enqueues a row in the same transaction that ends a run
 * (store_run_finish / store_run_cancel with store_hook_t), then calls
 * notify_kick.  This module reads the due rows, POSTs each with the
 * asynchronous HTTP client (http/hclient.h), and records every attempt with
 * store_webhook_attempt.  Because the row is written before any delivery is
 * tried, a daemon crash loses nothing: the next start delivers what is
 * pending.  Delivery is therefore at least once: a receiver may see the
 * same delivery twice (a crash after its 2xx but before our record), and
 * tells them apart by the X-Nbhub-Delivery header (the row's id).
 *
 * Payload.  payload_json is an envelope written by the scheduler
 * (notify_envelope builds it):
 *     {"headers": {"Name": "value", ...}, "body": {...}}
 * `body` is POSTed as compact JSON with Content-Type: application/json,
 * User-Agent: nbhub, X-Nbhub-Event: <event>, X-Nbhub-Delivery: <id>, plus
 * `headers` (which may replace those defaults, not Host/Content-Length/
 * Transfer-Encoding/Connection/Expect).  A payload without a "body" member
 * is POSTed whole.  A payload that is not JSON, a header name or value with
 * CR/LF or other control characters, a URL that is not http(s), or a
 * receiver at an address the guard refuses can never succeed: the row
 * fails at once, without retries.
 *
 * Retries.  A 2xx answer is success.  Anything else — another status, a
 * refused connection, a timeout, a TLS error — is retried with exponential
 * backoff: backoff_base_ms after the first failed attempt, doubling, at
 * most backoff_max_ms; after max_attempts attempts the row gives up
 * (store_webhook_attempt with next_attempt_at 0: state failed plus a
 * "webhook.failed" event, so the failure is visible in the feed and in
 * /metrics).  Defaults: 5 s, 10 s, 20 s, ... capped at 1 h, 12 attempts,
 * about 2 h 25 min from the first failure to giving up — long enough to
 * ride out a receiver's restart or a short outage.
 *
 * Scheduling.  At most max_inflight deliveries are in flight; a row in
 * flight is never started again until its attempt is recorded.  One uv
 * timer is armed for the earliest next_attempt_at among pending rows not in
 * flight (one indexed query: store_webhooks_due with now = INT64_MAX is
 * "every pending row, earliest first"), and at most poll_ms ahead, so rows
 * written by another process are picked up too.  notify_kick just fires
 * that timer on the next loop iteration: a burst of run ends is one query.
 * If recording an attempt fails (database locked), no new delivery starts
 * for poll_ms, so a broken store cannot turn into a tight resend loop.
 *
 * Where.  Every delivery is posted with hclient_post_guarded: a receiver
 * whose address is loopback, private, link-local, ... (http/netguard.h) is
 * not connected to unless nbhub.yaml's webhooks.allow lists it; such a row
 * fails at once ("address not allowed"), without retries.
 *
 * What users see.  The stored error (webhook_deliveries.last_error, and
 * the "webhook.failed" event the flow's owner reads) is a fixed sentence
 * per kind of failure: "HTTP 500 from the receiver", "timed out", "could
 * not connect", ... — never the receiver's answer, which could be anything
 * an internal service says, and never the address a name resolved to.
 * The admin's log has curl's own message and the refused address.
 *
 * Logs name the URL's host only (hclient_url_host): webhook URLs often
 * carry a secret in their path or query.
 *
 * Ownership: the notifier borrows loop, store and hclient; all three must
 * outlive it.  notify_close stops it: deliveries still in flight finish
 * (their attempts are recorded) before done runs; closing the hclient
 * aborts them at once, and an aborted attempt is not recorded — the row
 * stays pending with its schedule and is sent after the next start.  So a
 * shutdown is, in this order: notify_close(n, ...); hclient_close(hc, ...);
 * then wait for both done callbacks (the notifier never posts once closing,
 * so the hclient may go before the notifier's done has run).
 * Everything runs on the loop's thread.
 */
#ifndef NBHUB_HTTP_NOTIFY_H
#define NBHUB_HTTP_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "http/hclient.h"
#include "http/netguard.h"
#include "store/store.h"

typedef struct notify notify_t;

typedef struct notify_opts {
    uint64_t backoff_base_ms;  /* 5000: delay after the first failed attempt */
    uint64_t backoff_max_ms;   /* 3600000: cap of the doubling delay */
    int      max_attempts;     /* 12: attempts before giving up (>= 1) */
    int      max_inflight;     /* 8: deliveries in flight at once (>= 1) */
    uint64_t timeout_ms;       /* 10000: whole-request timeout of one attempt */
    uint64_t poll_ms;          /* 30000: longest sleep between two looks at the outbox */
    const netguard_t *guard;   /* where deliveries may connect (borrowed, outlives the
                                  notifier); NULL: public addresses only (netguard_new) */
} notify_opts_t;

void notify_opts_default(notify_opts_t *o);

/* A notifier with default options.  Nothing happens until notify_kick (or
 * the first poll_ms tick): call notify_kick once at start to deliver what
 * a previous daemon left pending. */
notify_t *notify_new(uv_loop_t *loop, store_t *st, hclient_t *hc);
/* The same with options (copied; NULL = defaults; zero fields = defaults). */
notify_t *notify_new_opts(uv_loop_t *loop, store_t *st, hclient_t *hc, const notify_opts_t *o);

/* Deliver due rows now (on the next loop iteration): call after a run ended
 * with hooks.  Does nothing once closing. */
void notify_kick(notify_t *n);

/* Deliveries in flight (tests, metrics). */
size_t notify_inflight(const notify_t *n);

/* Stop: no new deliveries; the ones in flight finish and are recorded;
 * then the timer is closed, the notifier freed, and done(ud) (may be NULL)
 * runs from a loop callback.  Call once. */
void notify_close(notify_t *n, void (*done)(void *ud), void *ud);

/* The payload_json envelope for a hook: {"headers": headers, "body": body},
 * compact.  headers (an object of strings, NULL = none) and body are
 * borrowed.  Returns a fresh string (free()). */
char *notify_envelope(json_t *headers, json_t *body);

/* The delay before attempt `attempt + 1` after `attempt` failed ones
 * (attempt >= 1): base * 2^(attempt-1), at most max; 0 when attempt >=
 * max_attempts (give up).  Exposed for the tests and the docs. */
uint64_t notify_backoff_ms(const notify_opts_t *o, int attempt);

#endif
