/*
 * http/proxy — a reverse proxy (HTTP/1.1 and WebSocket) in nbhub's own
 * loop, for the hub's /user/NAME[/SERVER]/ routes: a route handler hands a
 * request to proxy_pass and the answer is the upstream's, relayed as it
 * comes.
 *
 *     static void user_route(http_req_t *req, void *ud)
 *     {
 *         struct hub_server *s = ...;          // the user's running server
 *         struct proxy_target t = {
 *             .host = "127.0.0.1", .port = s->port,
 *             .pass_authorization = 1,         // the client is the owner
 *             .drop_cookie = "nbhub_session",
 *             .on_activity = server_touch, .on_error = server_down_page, .ud = s,
 *         };
 *         proxy_pass(req, &t);                 // req consumed, whatever happens
 *     }
 *
 * and, in the route table, HTTP_ROUTE_STREAM_BODY (router.h) on the route so
 * its request bodies reach the proxy as they arrive instead of being
 * buffered (and limited to max_body) by the server.
 *
 * What is forwarded (DESIGN.md 7, issue 17 item 3):
 *   - the request line as the client sent it (method, raw still
 *     percent-encoded path and query; never decoded and re-encoded);
 *   - the client's headers minus the hop-by-hop ones (Connection,
 *     Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade unless
 *     upgrading to websocket, Expect, and every header named in
 *     Connection), Host kept as sent, X-Forwarded-For/-Proto/-Host/-Port set
 *     (the client's own X-Forwarded-* and Forwarded are dropped, not
 *     trusted: nbhub is the edge), Cookie without drop_cookie nor
 *     nbhub_session, Authorization per upstream_auth / pass_authorization;
 *   - bodies streamed both ways with back-pressure (PROXY_HIGH_WATER);
 *   - the response head as upstream sent it (status, reason, headers),
 *     minus hop-by-hop headers; none of the server's default headers are
 *     added;
 *   - a 101 Switching Protocols: relayed as is, then bytes are spliced both
 *     ways unmodified until both sides have closed.
 *
 * Ownership: proxy_pass consumes req in every case (it is answered by the
 * proxy, or by on_error).  The target and its strings are copied; ud is
 * borrowed and must stay valid until proxy_drop(ud) or until the exchanges
 * using it ended (proxy_active).  Callbacks run from the loop, never from
 * inside proxy_pass.  One loop thread; nothing here is thread-safe.
 */
#ifndef NBHUB_HTTP_PROXY_H
#define NBHUB_HTTP_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

/* Stop reading one side while the other side's unsent bytes are above
 * this; resume below PROXY_LOW_WATER. */
#define PROXY_HIGH_WATER (256 * 1024)
#define PROXY_LOW_WATER  (64 * 1024)

struct proxy_target {
    const char *host;              /* an IP literal ("127.0.0.1", "::1") or "localhost" */
    int         port;
    const char *upstream_auth;     /* NULL, or the Authorization value sent upstream ("token X"),
                                      replacing the client's (a plain jupyter-server's own token) */
    int         pass_authorization;/* upstream_auth NULL: 1 forwards the client's Authorization
                                      (it belongs to the server's owner), 0 drops it */
    const char *drop_cookie;       /* a cookie removed from Cookie before forwarding (nbhub_session
                                      is always removed); NULL = none */
    const char *scheme;            /* the client's scheme for X-Forwarded-Proto: "http" (NULL) or "https" */
    /* Traffic that counts as the server's activity: each request, and each
     * websocket data frame either way (not ping/pong/close).  Called at most
     * once per activity_min_ms (1 s) per exchange, but once for every
     * request (its answer's head).  May be NULL. */
    void (*on_activity)(void *ud);
    /* The upstream could not be reached, or failed before a byte of the
     * response was relayed (err: -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT,
     * -EPROTO for a malformed response head, -EINVAL for a bad host).  The
     * handler owns req and must answer it (a "server is down" page, a
     * 503).  NULL: the proxy answers 502 with a JSON error. */
    void (*on_error)(http_req_t *req, int err, void *ud);
    void *ud;
};

/* Forward req to t and relay the answer.  Consumes req.  Returns 0, or
 * -EINVAL for a target that is not an IP literal/localhost with a port in
 * 1..65535 (a caller's bug): req was then answered 502 at once, without
 * on_error.  Either way the caller has nothing more to do with req. */
int proxy_pass(http_req_t *req, const struct proxy_target *t);

/* Settings shared by every exchange (proxy_configure copies; zeros mean
 * the defaults shown). */
struct proxy_config {
    uint64_t ws_idle_timeout_ms;   /* 3600000: an upgraded connection with no byte either way is closed */
    uint64_t connect_timeout_ms;   /* 10000 */
    size_t   pool_max_idle;        /* 32 idle keep-alive upstream connections kept per host:port */
    int      no_pool;              /* 1: a new upstream connection per request (measurements) */
    uint64_t pool_idle_ms;         /* 30000: an idle pooled connection is closed after this */
    uint64_t activity_min_ms;      /* 1000: on_activity at most once per this, per exchange */
};
void proxy_configure(const struct proxy_config *cfg);

/* Close every exchange whose target had this ud (the server is stopping):
 * their callbacks are not called again; clients see their connection
 * close.  Idle pooled connections to every target are closed too. */
void proxy_drop(void *ud);

/* ---- counters (tests, metrics) ---------------------------------------- */

struct proxy_stats {
    size_t   active;               /* exchanges in progress (incl. upgraded) */
    size_t   upgraded;             /* ... of which websockets */
    size_t   upstream_handles;     /* upstream sockets + timers not yet closed */
    size_t   pool_idle;            /* idle pooled upstream connections */
    uint64_t upstream_connects;    /* connections opened (pool misses) */
    uint64_t retries;              /* requests sent again after a pooled connection failed */
    size_t   buffered;             /* bytes queued now: client + upstream write queues of proxied exchanges,
                                      and splice pipes */
    size_t   buffered_peak;        /* highest value of buffered (proxy_stats_reset_peak) */
    uint64_t splices;              /* bodies whose rest went upstream -> client by splice(2) */
    uint64_t spliced_bytes;        /* ... the bytes that went so */
    uint64_t ws_data_frames;       /* websocket frames seen, both ways */
    uint64_t ws_control_frames;
};
void proxy_get_stats(struct proxy_stats *st);
void proxy_stats_reset_peak(void);

/* ---- websocket frame tracking (exposed for the fuzzer) ---------------- */

/* Follows RFC 6455 frame headers in a byte stream without reassembling or
 * unmasking anything: the header (2 to 14 bytes, possibly cut across
 * reads) is collected, then the payload length is skipped.  Counts data
 * frames (opcodes 0x0 continuation, 0x1 text, 0x2 binary) and control
 * frames apart. */
struct proxy_wsframes {
    uint64_t skip;                 /* payload bytes still to pass */
    unsigned char hdr[14];
    unsigned hlen;                 /* header bytes collected */
    uint64_t data_frames, control_frames;
    int broken;                    /* reserved opcode or a 64-bit length with the top bit: stop counting */
};
/* Feed len bytes; returns the number of data frames whose header ended in them. */
uint64_t proxy_ws_track(struct proxy_wsframes *t, const unsigned char *p, size_t len);

#endif
