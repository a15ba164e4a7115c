/*
 * http/hclient — libcurl multi on libuv.  See hclient.h for the rules; this
 * note explains the plumbing.
 *
 * Sockets.  curl calls sock_cb when it wants a socket watched for reading,
 * writing or both, and with CURL_POLL_REMOVE before it closes it.  We keep
 * one struct hc_sock (a uv_poll_t) per socket, attached to curl's socket
 * hash with curl_multi_assign so the next call finds it.  On REMOVE the poll
 * is stopped at once — the fd number may be reused by curl's next socket
 * before the loop runs again, and libuv refuses two live polls on one fd —
 * and the handle is closed; its memory goes in the close callback.
 *
 * Timer.  curl calls timer_fn with "call me in N ms" (0 = as soon as
 * possible; never act on it synchronously, curl forbids re-entering
 * curl_multi_socket_action from its own callback) or -1 = "no timeout".
 * One uv_timer_t serves the whole client.
 *
 * Names.  A host name is resolved by us, with uv_getaddrinfo on libuv's
 * thread pool, and handed to curl as a CURLOPT_RESOLVE entry, so curl never
 * starts its own resolver thread.  Why: when a threaded-resolver lookup
 * outlives the request (a DNS server that does not answer), curl joins the
 * thread in curl_multi_remove_handle and the loop stops until getaddrinfo
 * gives up, 5 s or more (curl issues #2975, #8515, listed in its
 * KNOWN_BUGS).  A uv_getaddrinfo that hangs only holds a pool thread; the
 * request is answered at its deadline by its own timer and its memory waits
 * for the lookup's callback.  IP literals need no lookup.  When a proxy is
 * configured in the environment the target is not resolved here (the proxy
 * resolves it), and curl resolves the proxy's name itself.
 *
 * A request is in one of three phases: RESOLVE (lookup running, its timer
 * armed, not yet in the multi handle), TRANSFER (in the multi handle), DONE
 * (answered; its memory lives on only while the lookup's callback or the
 * timer's close callback is still due).
 *
 * Completion.  After every curl_multi_socket_action, finished transfers are
 * read with curl_multi_info_read: the easy handle is removed from the multi
 * (its connection goes back to the cache), the callback runs, then the
 * request is freed.  A callback may post again (adding a handle between two
 * curl_multi_info_read calls is allowed) or close the client, after which
 * the loop stops reading messages: hclient_close has already aborted, and
 * answered, every other request.
 *
 * Closing.  Requests are removed (lookups cancelled when they have not
 * started) and answered with -ECANCELED, then curl_multi_cleanup closes the
 * cached connections (which may still call sock_cb with REMOVE), then the
 * timer and any poll curl left open are closed.  The client counts its open
 * handles and pending lookups and frees itself when the last of their
 * callbacks has run.
 */
#include "http/hclient.h"
#include "http/netguard.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include "util/dlcurl.h"
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_ADDRS          8      /* addresses of one name handed to curl */

struct hc_sock {
    uv_poll_t       poll;
    hclient_t      *hc;
    curl_socket_t   fd;
    struct hc_sock *prev, *next;   /* hc->socks: the polls not yet closed */
};

enum { PH_RESOLVE, PH_TRANSFER, PH_DONE };

struct hc_req {
    hclient_t         *hc;
    CURL              *easy;
    struct curl_slist *hdrs;
    struct curl_slist *resolve;      /* CURLOPT_RESOLVE entry */
    hclient_done_fn    cb;
    void              *ud;
    int                phase;
    int                pending;      /* lookup callback and/or timer close still due */
    int                rtimer_open;
    uint64_t           start_ms, timeout_ms;
    char              *host;         /* to resolve (PH_RESOLVE) */
    int                port;
    uv_getaddrinfo_t   gai;
    uv_timer_t         rtimer;       /* the deadline while resolving */
    size_t             snip_len;
    size_t             max_body;     /* hclient_get: the whole body up to this, else 0 */
    int                too_big;
    const netguard_t  *guard;        /* borrowed; NULL: any address */
    char               refused[160]; /* why the guard refused an address ("" if it did not) */
    buf_t              body, head;   /* hclient_get: body, header lines of the last response */
    struct hc_req     *prev, *next;  /* hc->reqs: not yet answered */
    char               errbuf[CURL_ERROR_SIZE];
    char               snip[HCLIENT_SNIPPET_MAX + 1];
};

struct hclient {
    uv_loop_t      *loop;
    CURLM          *multi;          /* NULL once closed */
    uv_timer_t      timer;
    struct hc_sock *socks;
    struct hc_req  *reqs;
    size_t          nreqs;
    size_t          open_handles;   /* timer, polls, request timers and lookups whose
                                       callback is still due */
    int             closing;
    void          (*done)(void *);
    void           *done_ud;
};

/* ---- libcurl global state -------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init_once(void)
{
    /* CURL_GLOBAL_DEFAULT initialises TLS too.  Failure means no memory or
     * a broken TLS library: nothing useful can follow. */
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    NB_ASSERT(rc == CURLE_OK);
}

void hclient_global_init(void)
{
    pthread_once(&global_once, global_init_once);
}

/* ---- handles ---------------------------------------------------------- */

static void handle_closed(hclient_t *hc)
{
    NB_ASSERT(hc->open_handles > 0);
    if (--hc->open_handles > 0) return;
    NB_ASSERT(hc->closing);
    void (*done)(void *) = hc->done;
    void *ud = hc->done_ud;
    free(hc);
    if (done) done(ud);
}

static void sock_closed(uv_handle_t *h)
{
    struct hc_sock *s = h->data;
    hclient_t *hc = s->hc;
    free(s);
    handle_closed(hc);
}

static void sock_close(struct hc_sock *s)
{
    hclient_t *hc = s->hc;
    uv_poll_stop(&s->poll);
    if (s->prev) s->prev->next = s->next;
    else hc->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* ---- completion ------------------------------------------------------- */

static int map_curl_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:                   return 0;
    case CURLE_OPERATION_TIMEDOUT:   return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:      return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    default:                         return -EIO;
    }
}

static void req_unlink(struct hc_req *r)
{
    hclient_t *hc = r->hc;
    if (r->prev) r->prev->next = r->next;
    else hc->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    hc->nreqs--;
}

/* Free an answered request once no libuv callback can reach it any more. */
static void req_maybe_free(struct hc_req *r)
{
    if (r->phase == PH_DONE && r->pending == 0) free(r);
}

static void rtimer_closed(uv_handle_t *h)
{
    struct hc_req *r = h->data;
    hclient_t *hc = r->hc;
    r->pending--;
    req_maybe_free(r);
    handle_closed(hc);
}

static void rtimer_close(struct hc_req *r)
{
    if (!r->rtimer_open) return;
    r->rtimer_open = 0;
    uv_timer_stop(&r->rtimer);
    uv_close((uv_handle_t *)&r->rtimer, rtimer_closed);
}

/* Answer one request: unlink it, run the callback, release curl's
 * resources.  The caller took it out of the multi handle already, so
 * whatever the callback does cannot reach it. */
static void req_answer(struct hc_req *r, int code, const char *error, long status)
{
    NB_ASSERT(r->phase != PH_DONE);
    req_unlink(r);
    rtimer_close(r);
    r->phase = PH_DONE;
    r->snip[r->snip_len] = '\0';
    if (r->too_big) {
        code = -EFBIG;
        error = "response body too large";
    }
    buf_putc(&r->body, '\0');
    buf_putc(&r->head, '\0');
    hclient_resp_t resp = {
        .code = code,
        .status = (int)status,
        .error = code ? error : NULL,
        .body = r->max_body ? r->body.data : r->snip,
        .body_len = r->max_body ? r->body.len - 1 : r->snip_len,
        .headers = r->head.data,
        .elapsed_ms = time_mono_ms() - r->start_ms,
    };
    r->cb(&resp, r->ud);
    buf_free(&r->body);
    buf_free(&r->head);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    curl_slist_free_all(r->resolve);
    free(r->host);
    r->easy = NULL;
    r->hdrs = r->resolve = NULL;
    r->host = NULL;
    req_maybe_free(r);
}

static void req_done(struct hc_req *r, CURLcode res)
{
    hclient_t *hc = r->hc;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(hc->multi, r->easy);
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
    int code = map_curl_code(res);
    if (r->refused[0] && res == CURLE_COULDNT_CONNECT) {
        /* Every address was refused by the guard (none was connected). */
        code = -EACCES;
        msg = r->refused;
    }
    req_answer(r, code, msg, status);
}

/* Read every finished transfer.  Stops when a callback closed the client:
 * hclient_close answered the rest and the multi handle is gone. */
static void check_done(hclient_t *hc)
{
    CURLMsg *m;
    int left;
    while (!hc->closing && (m = curl_multi_info_read(hc->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        struct hc_req *r = NULL;
        CURLcode res = m->data.result;   /* m dies with remove_handle: copy first */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        NB_ASSERT(r != NULL);
        req_done(r, res);
    }
}

/* ---- curl -> libuv ---------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct hc_sock *s = h->data;
    hclient_t *hc = s->hc;
    int flags = 0, running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    /* s may be closed (not freed) by sock_cb inside this call. */
    curl_multi_socket_action(hc->multi, s->fd, flags, &running);
    check_done(hc);
}

static void on_timer(uv_timer_t *t)
{
    hclient_t *hc = t->data;
    int running;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(hc);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    hclient_t *hc = userp;
    struct hc_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(hc->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        if (uv_poll_init_socket(hc->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;   /* curl fails the transfers on this socket */
        }
        s->poll.data = s;
        s->hc = hc;
        s->fd = fd;
        s->next = hc->socks;
        if (hc->socks) hc->socks->prev = s;
        hc->socks = s;
        hc->open_handles++;
        curl_multi_assign(hc->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    hclient_t *hc = userp;
    if (timeout_ms < 0) uv_timer_stop(&hc->timer);
    else uv_timer_start(&hc->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct hc_req *r = ud;
    size_t n = size * nmemb;
    if (r->max_body) {
        if (r->body.len + n > r->max_body) {
            r->too_big = 1;
            return 0;   /* curl stops the transfer */
        }
        buf_append(&r->body, p, n);
        return n;
    }
    size_t room = HCLIENT_SNIPPET_MAX - r->snip_len;
    size_t take = n < room ? n : room;
    memcpy(r->snip + r->snip_len, p, take);
    r->snip_len += take;
    return n;   /* the rest is read and dropped: the timeout bounds a server that never stops */
}

/* Header lines of the last response only (a 100 Continue or a proxy's
 * CONNECT answer comes first), kept for hclient_get. */
static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    struct hc_req *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !memcmp(p, "HTTP/", 5)) buf_reset(&r->head);
    if (r->head.len + n > 64 * 1024) return 0;   /* a header flood */
    buf_append(&r->head, p, n);
    return n;
}

/* ---- the address guard ------------------------------------------------ */

/* curl's socket for one connection attempt: the address it is about to
 * connect to is checked here, so what is checked is exactly what is
 * connected (each address of a name, each happy-eyeballs attempt).  A
 * refusal makes curl try the next address, then fail with
 * CURLE_COULDNT_CONNECT, which req_done turns into -EACCES. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct hc_req *r = ud;
    if (r->guard) {
        char why[128];
        if (purpose != CURLSOCKTYPE_IPCXN ||
            netguard_check(r->guard, r->host, r->port, &a->addr, NULL, why, sizeof why) < 0) {
            if (purpose != CURLSOCKTYPE_IPCXN) snprintf(why, sizeof why, "not a plain connection");
            snprintf(r->refused, sizeof r->refused, "address not allowed: %s", why);
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* ---- name resolution -------------------------------------------------- */

/* Hand the request to curl, with what is left of its time. */
static void transfer_start(struct hc_req *r)
{
    hclient_t *hc = r->hc;
    uint64_t spent = time_mono_ms() - r->start_ms;
    long left = spent < r->timeout_ms ? (long)(r->timeout_ms - spent) : 1;
    int bad = curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, left) != CURLE_OK;
    if (r->resolve) bad |= curl_easy_setopt(r->easy, CURLOPT_RESOLVE, r->resolve) != CURLE_OK;
    if (bad || curl_multi_add_handle(hc->multi, r->easy) != CURLM_OK) {
        req_answer(r, -EIO, "libcurl refused the request", 0);
        return;
    }
    r->phase = PH_TRANSFER;
}

static void on_resolve_timeout(uv_timer_t *t)
{
    struct hc_req *r = t->data;
    char msg[96];
    snprintf(msg, sizeof msg, "Resolving timed out after %llu milliseconds",
             (unsigned long long)(time_mono_ms() - r->start_ms));
    req_answer(r, -ETIMEDOUT, msg, 0);   /* memory waits for the lookup's callback */
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct hc_req *r = g->data;
    hclient_t *hc = r->hc;
    r->pending--;
    if (r->phase != PH_RESOLVE) {        /* timed out or cancelled meanwhile */
        uv_freeaddrinfo(res);
        req_maybe_free(r);
        handle_closed(hc);
        return;
    }
    rtimer_close(r);
    if (status < 0) {
        char msg[CURL_ERROR_SIZE];
        snprintf(msg, sizeof msg, "Could not resolve host: %s (%s)", r->host, uv_strerror(status));
        req_answer(r, -EHOSTUNREACH, msg, 0);
        handle_closed(hc);
        return;
    }
    /* "host:port:addr1,[v6addr2],..." — distinct addresses in resolver order. */
    char entry[1024], addrs[MAX_ADDRS][INET6_ADDRSTRLEN + 2];
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < MAX_ADDRS; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        if (ai->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
        else if (ai->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
        else
            continue;
        char fmt[INET6_ADDRSTRLEN + 2];
        snprintf(fmt, sizeof fmt, ai->ai_family == AF_INET6 ? "[%s]" : "%s", ip);
        size_t k = 0;
        while (k < n && strcmp(addrs[k], fmt) != 0) k++;
        if (k == n) memcpy(addrs[n++], fmt, sizeof fmt);
    }
    uv_freeaddrinfo(res);
    if (n == 0) {
        char msg[CURL_ERROR_SIZE];
        snprintf(msg, sizeof msg, "Could not resolve host: %s (no address)", r->host);
        req_answer(r, -EHOSTUNREACH, msg, 0);
        handle_closed(hc);
        return;
    }
    int len = snprintf(entry, sizeof entry, "%s:%d:", r->host, r->port);
    for (size_t i = 0; i < n && len > 0 && (size_t)len < sizeof entry; i++)
        len += snprintf(entry + len, sizeof entry - (size_t)len, "%s%s", i ? "," : "", addrs[i]);
    r->resolve = curl_slist_append(NULL, entry);
    NB_ASSERT(r->resolve != NULL);
    transfer_start(r);
    handle_closed(hc);
}

/* A proxy from the environment resolves the target itself. */
static int proxy_configured(void)
{
    static const char *const vars[] = { "http_proxy", "https_proxy", "HTTPS_PROXY",
                                        "all_proxy", "ALL_PROXY" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return 1;
    }
    return 0;
}

/* 1 if host must be looked up before curl sees it: not an IP literal, plain
 * ASCII (an IDN name is converted by curl, which then resolves it).  A
 * guarded request never goes through a proxy (hc_request), so it is
 * looked up here whatever the environment says. */
static int needs_lookup(const char *host, int guarded)
{
    struct in_addr a4;
    if (host[0] == '[' || inet_pton(AF_INET, host, &a4) == 1) return 0;
    for (const unsigned char *p = (const unsigned char *)host; *p; p++)
        if (*p >= 0x80) return 0;
    return guarded || !proxy_configured();
}

/* ---- public ----------------------------------------------------------- */

hclient_t *hclient_new(uv_loop_t *loop)
{
    hclient_global_init();
    hclient_t *hc = xcalloc(1, sizeof *hc);
    hc->loop = loop;
    hc->multi = curl_multi_init();
    NB_ASSERT(hc->multi != NULL);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    uv_timer_init(loop, &hc->timer);
    hc->timer.data = hc;
    hc->open_handles = 1;
    return hc;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Headers curl (or the transport) owns: setting them by hand could desync
 * the framing of the request. */
static const char *const framing[] = { "host", "content-length", "transfer-encoding",
                                       "connection", "expect" };

int hclient_header_ok(const char *line)
{
    const unsigned char *p = (const unsigned char *)line;
    size_t nlen = 0;
    while (is_tchar(p[nlen])) nlen++;
    if (nlen == 0 || p[nlen] != ':') return 0;
    for (size_t i = 0; i < sizeof framing / sizeof framing[0]; i++)
        if (strlen(framing[i]) == nlen && strncasecmp(line, framing[i], nlen) == 0) return 0;
    for (const unsigned char *v = p + nlen + 1; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7f) return 0;   /* CR, LF, NUL, ... */
    return 1;
}

/* 0 if url is an absolute http(s) URL with a host, free of control
 * characters and spaces; *host (free()) and *port get where it goes. */
static int url_check(const char *url, char **host_out, int *port_out)
{
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) return -EINVAL;
    CURLU *u = curl_url();
    NB_ASSERT(u != NULL);
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0)) {
        rc = 0;
        *host_out = xstrdup(host);
        *port_out = atoi(port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

void hclient_url_host(const char *url, char *out, size_t n)
{
    if (n == 0) return;
    snprintf(out, n, "?");
    if (!url) return;
    hclient_global_init();
    CURLU *u = curl_url();
    NB_ASSERT(u != NULL);
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0]) {
        /* Keep only characters a host name or an IP literal can hold, so a
         * log line cannot be forged through a strange URL. */
        size_t j = 0;
        for (const char *p = host; *p && j + 1 < n; p++)
            if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]%", *p))
                out[j++] = *p;
        out[j] = '\0';
        if (j == 0) snprintf(out, n, "?");
    }
    curl_free(host);
    curl_url_cleanup(u);
}

/* POST (body != NULL) or GET (body == NULL, max_body > 0). */
static int hc_request(hclient_t *hc, const char *url, const char *const *headers, const char *body, size_t len,
                      size_t max_body, uint64_t timeout_ms, const netguard_t *guard,
                      hclient_done_fn cb, void *ud)
{
    NB_ASSERT(cb != NULL);
    if (hc->closing) return -ESHUTDOWN;
    for (size_t i = 0; headers && headers[i]; i++)
        if (!hclient_header_ok(headers[i])) return -EINVAL;
    char *host;
    int port;
    if (!url || url_check(url, &host, &port)) return -EINVAL;
    if (timeout_ms == 0) timeout_ms = DEFAULT_TIMEOUT_MS;
    if (timeout_ms > (uint64_t)INT32_MAX) timeout_ms = INT32_MAX;

    struct hc_req *r = xcalloc(1, sizeof *r);
    r->hc = hc;
    r->cb = cb;
    r->ud = ud;
    r->host = host;
    r->port = port;
    r->max_body = max_body;
    r->guard = guard;
    r->easy = curl_easy_init();
    NB_ASSERT(r->easy != NULL);

    /* curl_slist_append copies; NULL means out of memory. */
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *h = headers[i], *colon = strchr(h, ':');
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        struct curl_slist *nl;
        if (*v == '\0') {
            /* "Name:" would tell curl to drop the header; "Name;" sends it empty. */
            char *semi = xasprintf("%.*s;", (int)(colon - h), h);
            nl = curl_slist_append(r->hdrs, semi);
            free(semi);
        } else {
            nl = curl_slist_append(r->hdrs, h);
        }
        NB_ASSERT(nl != NULL);
        r->hdrs = nl;
    }
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    NB_ASSERT(r->hdrs != NULL);

    CURL *e = r->easy;
    long tmo = (long)timeout_ms;
    long ctmo = tmo < HCLIENT_CONNECT_TIMEOUT_MS ? tmo : HCLIENT_CONNECT_TIMEOUT_MS;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctmo) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "nbhub") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs) != CURLE_OK;
    if (body) {
        /* Size first: COPYPOSTFIELDS copies that many bytes (the body may hold NULs). */
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) != CURLE_OK;
    }
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r) != CURLE_OK;
    if (guard) {
        /* The guard must see the address of the receiver itself: no proxy
         * (it would connect for us), and a connection of its own, never a
         * cached one that an unguarded request (the Spark UI proxy, on the
         * loopback) opened without the check.  Not cached afterwards either. */
        bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
    }
    if (bad) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->hdrs);
        free(r->host);
        free(r);
        return -EIO;
    }
    r->start_ms = time_mono_ms();
    r->timeout_ms = timeout_ms;
    r->next = hc->reqs;
    if (hc->reqs) hc->reqs->prev = r;
    hc->reqs = r;
    hc->nreqs++;

    if (needs_lookup(r->host, guard != NULL)) {
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        r->phase = PH_RESOLVE;
        r->gai.data = r;
        if (uv_getaddrinfo(hc->loop, &r->gai, on_resolved, r->host, NULL, &hints) != 0) {
            req_unlink(r);
            curl_easy_cleanup(e);
            curl_slist_free_all(r->hdrs);
            free(r->host);
            free(r);
            return -EIO;
        }
        r->pending++;
        hc->open_handles++;
        uv_timer_init(hc->loop, &r->rtimer);
        r->rtimer.data = r;
        r->rtimer_open = 1;
        r->pending++;
        hc->open_handles++;
        uv_timer_start(&r->rtimer, on_resolve_timeout, timeout_ms, 0);
        return 0;
    }
    r->phase = PH_TRANSFER;
    /* curl_multi_add_handle arms the timer at 0 ms: the transfer starts from
     * the loop, so cb never runs before we return. */
    if (curl_multi_add_handle(hc->multi, e) != CURLM_OK) {
        req_unlink(r);
        curl_easy_cleanup(e);
        curl_slist_free_all(r->hdrs);
        free(r->host);
        free(r);
        return -EIO;
    }
    return 0;
}

int hclient_post(hclient_t *hc, const char *url, const char *const *headers,
                 const char *body, size_t len, uint64_t timeout_ms,
                 hclient_done_fn cb, void *ud)
{
    return hc_request(hc, url, headers, body ? body : "", len, 0, timeout_ms, NULL, cb, ud);
}

int hclient_post_guarded(hclient_t *hc, const char *url, const char *const *headers,
                         const char *body, size_t len, uint64_t timeout_ms,
                         const netguard_t *guard, hclient_done_fn cb, void *ud)
{
    NB_ASSERT(guard != NULL);
    return hc_request(hc, url, headers, body ? body : "", len, 0, timeout_ms, guard, cb, ud);
}

int hclient_post_full(hclient_t *hc, const char *url, const char *const *headers, const char *body,
                      size_t len, size_t max_body, uint64_t timeout_ms, hclient_done_fn cb, void *ud)
{
    if (max_body == 0) return -EINVAL;
    return hc_request(hc, url, headers, body ? body : "", len, max_body, timeout_ms, NULL, cb, ud);
}

int hclient_get(hclient_t *hc, const char *url, const char *const *headers, size_t max_body,
                uint64_t timeout_ms, hclient_done_fn cb, void *ud)
{
    if (max_body == 0) return -EINVAL;
    return hc_request(hc, url, headers, NULL, 0, max_body, timeout_ms, NULL, cb, ud);
}

char *hclient_resp_header(const hclient_resp_t *resp, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = resp->headers; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t ll = end ? (size_t)(end - l) : strlen(l);
        if (ll > n && l[n] == ':' && !strncasecmp(l, name, n)) {
            const char *v = l + n + 1, *e = l + ll;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
            return xstrndup(v, (size_t)(e - v));
        }
        l += ll + (end ? 1 : 0);
    }
    return NULL;
}

size_t hclient_pending(const hclient_t *hc)
{
    return hc->nreqs;
}

void hclient_close(hclient_t *hc, void (*done)(void *ud), void *ud)
{
    NB_ASSERT(!hc->closing);
    hc->closing = 1;
    hc->done = done;
    hc->done_ud = ud;
    /* Answer in-flight requests.  A callback may post (refused: closing). */
    while (hc->reqs) {
        struct hc_req *r = hc->reqs;
        if (r->phase == PH_TRANSFER)
            curl_multi_remove_handle(hc->multi, r->easy);
        else   /* a lookup not yet started is dropped; a running one calls back later */
            uv_cancel((uv_req_t *)&r->gai);
        req_answer(r, -ECANCELED, "request aborted: HTTP client closed", 0);
    }
    /* Closes cached connections; may call sock_cb (REMOVE) and timer_fn. */
    curl_multi_cleanup(hc->multi);
    hc->multi = NULL;
    while (hc->socks) sock_close(hc->socks);
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *)&hc->timer, timer_closed);
}
