/*
 * http/hclient — an asynchronous HTTP client on the daemon's libuv loop,
 * built on libcurl's multi interface.  Used for outgoing webhooks today;
 * anything else the daemon must ask of another server (OIDC discovery,
 * Spark REST) can share it.
 *
 * Why curl's "multi socket" API: the daemon is one loop thread, and a
 * request must never block it (DNS, connect, TLS handshake, a slow
 * server).  curl tells us which sockets it wants watched
 * (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket) and when it next
 * needs to run (CURLMOPT_TIMERFUNCTION -> one uv_timer_t); we call
 * curl_multi_socket_action when either fires and read finished transfers
 * with curl_multi_info_read.  Host names are resolved with uv_getaddrinfo
 * (libuv's thread pool) and handed to curl as CURLOPT_RESOLVE entries: curl's
 * own threaded resolver can block the loop when a lookup outlives the
 * request (hclient.c explains).  Connections are kept alive in the multi
 * handle's cache and reused by later requests to the same host.
 *
 * What a request may do: http:// and https:// only (CURLOPT_PROTOCOLS_STR,
 * so a file:// or gopher:// URL can never be fetched), redirects are not
 * followed (a 3xx is an answer like any other: a webhook receiver that
 * redirects is misconfigured, and following would let it steer our POST
 * elsewhere), a connect timeout of at most HCLIENT_CONNECT_TIMEOUT_MS
 * inside the whole-request timeout, CURLOPT_NOSIGNAL (no SIGALRM in a
 * multi-threaded resolver world), no "Expect: 100-continue" (curl would
 * wait up to 1 s for a 100 before sending a larger body).  TLS peers are
 * verified (curl's default CA bundle).  Proxies come from the usual
 * environment variables (http_proxy, https_proxy, no_proxy), as with curl;
 * with one set, names are left to curl and the proxy (see hclient.c).
 *
 * libcurl global state.  curl_global_init is not safe to race with other
 * threads using libcurl or OpenSSL, so hclient_new calls it exactly once
 * per process (pthread_once) and nothing ever calls curl_global_cleanup:
 * the process exit releases it.  Any other code in nbhub that uses libcurl
 * must create an hclient first, or call hclient_global_init().
 *
 * Ownership and callbacks:
 *   - hclient_new returns a client owned by the caller; it lives until
 *     hclient_close's done callback has run (the client frees itself just
 *     before calling it: libuv rule, memory behind a handle is freed only
 *     after its close callback).
 *   - hclient_post copies url, headers and body; the caller's buffers may be
 *     freed as soon as it returns.  It either returns an error (and never
 *     calls cb) or returns 0 and calls cb exactly once, later, from the
 *     loop — never from inside hclient_post.
 *   - The hclient_resp_t handed to cb and every string in it are valid only
 *     during the callback.  cb may call hclient_post and hclient_close.
 *   - hclient_close aborts every request in flight: each callback runs
 *     (from inside hclient_close) with code -ECANCELED; a post from such a
 *     callback returns -ESHUTDOWN.  After done has run the pointer is gone.
 * Nothing here is thread-safe: one loop thread.
 */
#ifndef NBHUB_HTTP_HCLIENT_H
#define NBHUB_HTTP_HCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hclient hclient_t;
typedef struct netguard netguard_t;   /* http/netguard.h */

/* The body snippet kept from a response (the rest is read and dropped). */
#define HCLIENT_SNIPPET_MAX        1024
/* Upper bound of the connect phase, inside the request's own timeout. */
#define HCLIENT_CONNECT_TIMEOUT_MS 10000

typedef struct hclient_resp {
    /* 0 when a response arrived (whatever its status), else
     *   -ETIMEDOUT     the request's timeout expired
     *   -ECONNREFUSED  nothing listens / connect failed
     *   -EHOSTUNREACH  the host name did not resolve
     *   -ECANCELED     aborted by hclient_close
     *   -EFBIG         hclient_get: the body was larger than asked for
     *   -EACCES        hclient_post_guarded: the guard refused every address
     *                  the host has (error: "address not allowed: ...")
     *   -EIO           anything else (TLS, protocol, ...; see error) */
    int         code;
    int         status;      /* HTTP status, 0 when no status line arrived */
    const char *error;       /* NULL when code == 0, else curl's message */
    const char *body;        /* first HCLIENT_SNIPPET_MAX bytes, NUL-terminated, never NULL */
    size_t      body_len;
    const char *headers;     /* hclient_get: the response's header lines ("Name: value\r\n"...), else "" */
    uint64_t    elapsed_ms;  /* from hclient_post to completion */
} hclient_resp_t;

typedef void (*hclient_done_fn)(const hclient_resp_t *resp, void *ud);

/* Initialise libcurl for the process (once; later calls do nothing). */
void hclient_global_init(void);

/* A client on loop.  Never NULL (allocation failure aborts; a failing
 * curl_multi_init, which only fails on out-of-memory, too). */
hclient_t *hclient_new(uv_loop_t *loop);

/*
 * POST body[0..len) to url.  headers: "Name: value" strings, NULL-terminated
 * array, may be NULL; a "User-Agent: nbhub" is sent unless one is given.
 * timeout_ms bounds the whole request (0 = 30 s).
 * Returns 0 (cb will run once), or
 *   -EINVAL           url is not an absolute http(s) URL with a host, or a
 *                     header is not "token: value" with a value free of CR,
 *                     LF and other control characters, or names a framing
 *                     header (Host, Content-Length, Transfer-Encoding,
 *                     Connection, Expect)
 *   -ESHUTDOWN        hclient_close was called
 *   -EIO              curl refused the request
 */
int hclient_post(hclient_t *hc, const char *url, const char *const *headers,
                 const char *body, size_t len, uint64_t timeout_ms,
                 hclient_done_fn cb, void *ud);

/*
 * hclient_post, connecting only where guard (borrowed, must outlive the
 * request) allows: the check is made on each address curl is about to
 * connect to (CURLOPT_OPENSOCKETFUNCTION), after name resolution, so it
 * holds for any spelling of an address and there is no second lookup to
 * win.  Such a request never uses a proxy from the environment and always
 * opens a connection of its own (FRESH_CONNECT, FORBID_REUSE): a cached
 * connection was not made under its guard.  Redirects are not followed
 * (as for every request).
 */
int hclient_post_guarded(hclient_t *hc, const char *url, const char *const *headers,
                         const char *body, size_t len, uint64_t timeout_ms,
                         const netguard_t *guard, hclient_done_fn cb, void *ud);

/*
 * GET url and keep the whole body (up to max_body bytes: beyond, the
 * transfer stops and cb gets -EFBIG) and the response's headers.  The rest
 * as hclient_post (redirects not followed: a 3xx comes back as it is).
 */
int hclient_get(hclient_t *hc, const char *url, const char *const *headers, size_t max_body,
                uint64_t timeout_ms, hclient_done_fn cb, void *ud);

/* hclient_post keeping the whole body as hclient_get does (up to max_body
 * bytes, else -EFBIG): answers worth reading whole, such as an OIDC token
 * endpoint's (auth/oidc.c).  Its headers are not kept. */
int hclient_post_full(hclient_t *hc, const char *url, const char *const *headers, const char *body,
                      size_t len, size_t max_body, uint64_t timeout_ms, hclient_done_fn cb, void *ud);

/* The value of header name (case-insensitive, first of its kind) in an
 * hclient_get answer, trimmed; new string, NULL if absent. */
char *hclient_resp_header(const hclient_resp_t *resp, const char *name);

/* Requests in flight (tests, metrics). */
size_t hclient_pending(const hclient_t *hc);

/* Abort the requests in flight (their callbacks run now with -ECANCELED),
 * close every handle, free the client, then call done(ud) (may be NULL)
 * from a later loop callback.  Call once. */
void hclient_close(hclient_t *hc, void (*done)(void *ud), void *ud);

/*
 * The host part of url, for logs: never the userinfo, path or query, which
 * may hold credentials or tokens.  Writes "?" when url does not parse.
 */
void hclient_url_host(const char *url, char *out, size_t n);

/* 1 if "Name: value" is a header hclient_post accepts (see -EINVAL above). */
int hclient_header_ok(const char *line);

#endif
