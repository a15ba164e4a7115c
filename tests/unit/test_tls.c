/* Unit tests for http/tls and the TLS listeners of http/server.
 *
 * A real server runs on its own uv loop in a background thread on
 * 127.0.0.1 port 0 with a TLS listener; its certificate (P-256, self-signed,
 * subjectAltName localhost and 127.0.0.1) is made here with OpenSSL's API.
 * The client is OpenSSL on a blocking socket that verifies the chain and
 * the host name against that certificate, as curl or a browser would.
 * Handlers and the certificate reload run on the loop thread; the tests
 * only look at what comes over the wire. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/proxy.h"
#include "http/server.h"
#include "http/sse.h"
#include "http/tls.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define BIG (16u * 1024 * 1024)

static char g_dir[64], g_cert[128], g_key[128], g_key2[128], g_junk[128], g_trust[128];

/* ---- certificates ------------------------------------------------------ */

static EVP_PKEY *key_new(void)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    assert_non_null(pk);
    return pk;
}

static void write_key(EVP_PKEY *pk, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static EVP_PKEY *g_ca_pk;
static X509 *g_ca;

/* A certificate with this serial and subject CN, subjectAltName san (NULL:
 * a CA), signed by the test CA (or by itself when there is none yet). */
static X509 *cert_new(EVP_PKEY *pk, long serial, const char *cn, const char *san)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, g_ca ? X509_get_subject_name(g_ca) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, g_ca ? g_ca : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = san ? X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san)
                              : X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, g_ca ? g_ca_pk : pk, EVP_sha256()) > 0);
    return x;
}

/* A certificate for localhost and 127.0.0.1 with this serial, signed by the
 * test CA (which the client trusts), written to path. */
static void write_cert(EVP_PKEY *pk, long serial, const char *path)
{
    X509 *x = cert_new(pk, serial, "localhost", "DNS:localhost,IP:127.0.0.1");
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
    X509_free(x);
}

static EVP_PKEY *g_pk;

/* Under valgrind (make valgrind) threads run one at a time, many times
 * slower: the fixture's timeouts are raised and the tests that measure
 * timeouts are skipped (ASan runs them; they are about time, not memory). */
static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* ---- server fixture ----------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    uv_thread_t th;
    uv_async_t stop, reload, stats;
    http_server_t *srv, *up;        /* the TLS server; a plain upstream it proxies /up/ to */
    tls_ctx_t *tls;
    int port, up_port;
    atomic_int stopped, up_stopped, reloads, reload_rc, stats_done;
    struct proxy_stats st;
};

static struct fx *F;

static void h_sse_closed(http_sse_t *s, void *ud)
{
    (void)s;
    (void)ud;
}

/* SSE flood for a client that never reads: 256 KiB every millisecond until
 * the server drops it (max_stream_queue, counted in ciphertext). */
static atomic_int g_flood_rc, g_flood_closed;

struct flood {
    uv_timer_t t;
    http_sse_t *s;
};

static void flood_freed(uv_handle_t *h) { free(h->data); }

static void flood_closed(http_sse_t *s, void *ud)
{
    (void)s;
    struct flood *f = ud;
    f->s = NULL;
    atomic_store(&g_flood_closed, 1);
    uv_close((uv_handle_t *)&f->t, flood_freed);
}

static void flood_tick(uv_timer_t *t)
{
    struct flood *f = t->data;
    static char big[256 * 1024];
    if (!big[0]) memset(big, 'x', sizeof big - 1);
    int rc = f->s ? http_sse_send(f->s, NULL, NULL, big) : 0;
    if (rc < 0) {
        atomic_store(&g_flood_rc, rc);
        uv_timer_stop(t);
    }
}

/* ---- the upstream behind the proxy (plain HTTP, as a notebook server) --- */

/* A download of n bytes written as the proxy drains it. */
struct big {
    long long left;
};

static void free_handle(uv_handle_t *h) { free(h); }

static void end_fire(uv_timer_t *z)
{
    http_raw_end(z->data, 1);
    uv_close((uv_handle_t *)z, free_handle);
}

static void big_pump(http_req_t *req, void *ud)
{
    struct big *b = ud;
    static char chunk[65536];
    while (b->left > 0 && http_stream_queued(req) < 256 * 1024) {
        size_t k = b->left < (long long)sizeof chunk ? (size_t)b->left : sizeof chunk;
        memset(chunk, 'a' + (int)(b->left % 26), k);
        http_raw_write(req, chunk, k);
        b->left -= (long long)k;
    }
    if (b->left == 0) {
        http_raw_on_drain(req, 0, NULL, NULL);
        http_req_on_abort(req, NULL, NULL);
        free(b);
        uv_timer_t *z = xcalloc(1, sizeof *z);      /* end from the loop, not from the drain callback */
        uv_timer_init(&F->loop, z);
        z->data = req;
        uv_timer_start(z, end_fire, 0, 0);
    }
}

static void big_abort(http_req_t *req, void *ud)
{
    free(ud);
    http_raw_end(req, 0);
}

/* Websocket echo: every byte back; EOF -> our FIN. */
static void ws_data(http_req_t *req, const char *data, size_t len, void *ud)
{
    (void)ud;
    if (!data) http_raw_shutdown(req);
    else http_raw_write(req, data, len);
}

static void ws_abort(http_req_t *req, void *ud)
{
    (void)ud;
    http_raw_end(req, 0);
}

static void up_handler(http_req_t *req, void *ud)
{
    (void)ud;
    const char *path = http_req_path(req);
    if (!strcmp(path, "/up/ws")) {
        buf_t b = BUF_INIT;
        buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n\r\n", http_header(req, "sec-websocket-key"));
        http_raw_begin(req, 101);
        http_raw_write(req, b.data, b.len);
        buf_free(&b);
        http_raw_upgrade(req);
        http_req_on_abort(req, ws_abort, NULL);
        http_req_read_start(req, ws_data, NULL);
    } else if (!strcmp(path, "/up/big")) {
        struct big *b = xcalloc(1, sizeof *b);
        b->left = atoll(http_query(req, "n"));
        char head[128];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n", b->left);
        http_raw_begin(req, 200);
        http_raw_write(req, head, strlen(head));
        http_raw_on_drain(req, 64 * 1024, big_pump, b);
        http_req_on_abort(req, big_abort, b);
        big_pump(req, b);
    } else {
        const char *proto = http_header(req, "x-forwarded-proto");
        http_respond(req, 200, "text/plain", proto ? proto : "-", strlen(proto ? proto : "-"));
    }
}

static void handler(http_req_t *req, void *ud)
{
    (void)ud;
    const char *path = http_req_path(req);
    if (!strncmp(path, "/up/", 4)) {
        struct proxy_target t = {
            .host = "127.0.0.1", .port = F->up_port, .ud = F,
            .scheme = http_req_tls(req) ? "https" : "http",
        };
        proxy_pass(req, &t);
    } else if (!strcmp(path, "/hello")) {
        char body[64];
        snprintf(body, sizeof body, "hello tls=%d", http_req_tls(req));
        http_respond(req, 200, "text/plain", body, strlen(body));
    } else if (!strcmp(path, "/big")) {
        char *b = xmalloc(BIG);
        for (size_t i = 0; i < BIG; i++) b[i] = (char)('a' + i % 26);
        http_respond_take(req, 200, "application/octet-stream", b, BIG);
    } else if (!strcmp(path, "/echo")) {
        size_t n;
        const char *b = http_req_body(req, &n);
        uint32_t sum = 0;
        for (size_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)b[i];
        char out[64];
        snprintf(out, sizeof out, "%zu %u", n, sum);
        http_respond(req, 200, "text/plain", out, strlen(out));
    } else if (!strcmp(path, "/events")) {
        http_sse_t *s = http_sse_start(req, h_sse_closed, NULL);
        if (!s) return;
        http_sse_send(s, "greeting", "1", "hello over tls");
        http_sse_close(s);
    } else if (!strcmp(path, "/flood")) {
        struct flood *f = xcalloc(1, sizeof *f);
        uv_timer_init(&F->loop, &f->t);
        f->t.data = f;
        f->s = http_sse_start(req, flood_closed, f);
        uv_timer_start(&f->t, flood_tick, 1, 1);
    } else if (!strcmp(path, "/stream")) {
        http_stream_begin(req, 200, "text/plain");
        for (int i = 0; i < 100; i++) http_stream_write(req, "0123456789", 10);
        http_stream_end(req);
    } else {
        http_respond_error(req, 404, "not_found", "no");
    }
}

static void fx_thread(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_stopped(http_server_t *srv, void *ud)
{
    struct fx *f = ud;
    http_server_free(srv);
    f->srv = NULL;
    atomic_store(&f->stopped, 1);
}

static void fx_up_stopped(http_server_t *srv, void *ud)
{
    struct fx *f = ud;
    http_server_free(srv);
    f->up = NULL;
    atomic_store(&f->up_stopped, 1);
}

static void fx_stop_async(uv_async_t *a)
{
    struct fx *f = a->data;
    proxy_drop(f);
    http_server_stop(f->srv, fx_stopped, f);
    if (f->up) http_server_stop(f->up, fx_up_stopped, f);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&f->reload, NULL);
    uv_close((uv_handle_t *)&f->stats, NULL);
}

static void fx_stats_async(uv_async_t *a)
{
    struct fx *f = a->data;
    proxy_get_stats(&f->st);
    atomic_store(&f->stats_done, 1);
}

/* The proxy's counters, read on the loop thread. */
static struct proxy_stats fx_stats(struct fx *f)
{
    atomic_store(&f->stats_done, 0);
    uv_async_send(&f->stats);
    for (int i = 0; i < 500 && !atomic_load(&f->stats_done); i++) usleep(2000);
    assert_true(atomic_load(&f->stats_done));
    return f->st;
}

/* What SIGHUP does in nbhub serve, on the loop thread. */
static void fx_reload_async(uv_async_t *a)
{
    struct fx *f = a->data;
    nb_err_t err;
    atomic_store(&f->reload_rc, tls_ctx_reload(f->tls, &err));
    atomic_fetch_add(&f->reloads, 1);
}

static void fx_limits(struct http_limits *lim)
{
    http_limits_default(lim);
    lim->head_timeout_ms = under_valgrind() ? 10000 : 500;
    lim->idle_timeout_ms = 5000;
    lim->linger_ms = 200;
    lim->stop_timeout_ms = 2000;
    lim->max_stream_queue = 4 * 1024 * 1024;
}

/* The TLS server on 127.0.0.1; with unix_path, also a plain listener there
 * (and no upstream); lim NULL: fx_limits. */
static struct fx *fx_start_with(const struct http_limits *lim, const char *unix_path)
{
    struct fx *f = xcalloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct http_limits def;
    fx_limits(&def);
    nb_err_t err;
    if (tls_ctx_new(g_cert, g_key, &f->tls, &err) < 0) fail_msg("tls_ctx_new: %s", err.msg);
    f->srv = http_server_new(&f->loop, lim ? lim : &def, handler, NULL);
    if (http_server_listen_tls(f->srv, "127.0.0.1:0", f->tls, &err) < 0) fail_msg("listen: %s", err.msg);
    f->port = http_server_port(f->srv);
    if (unix_path) {
        char addr[160];
        snprintf(addr, sizeof addr, "unix:%s", unix_path);
        if (http_server_listen(f->srv, addr, &err) < 0) fail_msg("listen: %s", err.msg);
        atomic_store(&f->up_stopped, 1);
    } else {
        f->up = http_server_new(&f->loop, NULL, up_handler, NULL);
        if (http_server_listen(f->up, "127.0.0.1:0", &err) < 0) fail_msg("listen: %s", err.msg);
        f->up_port = http_server_port(f->up);
    }
    uv_async_init(&f->loop, &f->stop, fx_stop_async);
    uv_async_init(&f->loop, &f->reload, fx_reload_async);
    uv_async_init(&f->loop, &f->stats, fx_stats_async);
    f->stop.data = f->reload.data = f->stats.data = f;
    assert_int_equal(uv_thread_create(&f->th, fx_thread, f), 0);
    return f;
}

static struct fx *fx_start(void) { return fx_start_with(NULL, NULL); }

static void fx_finish(struct fx *f)
{
    uv_async_send(&f->stop);
    uv_thread_join(&f->th);
    assert_true(atomic_load(&f->stopped));
    assert_true(atomic_load(&f->up_stopped));
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tls_ctx_free(f->tls);
    free(f);
}

static void fx_reload(struct fx *f, int want_rc)
{
    int before = atomic_load(&f->reloads);
    uv_async_send(&f->reload);
    for (int i = 0; i < 500 && atomic_load(&f->reloads) == before; i++) usleep(10000);
    assert_int_equal(atomic_load(&f->reloads), before + 1);
    if (want_rc == 0) assert_int_equal(atomic_load(&f->reload_rc), 0);
    else assert_true(atomic_load(&f->reload_rc) < 0);
}

/* ---- a blocking TLS client -------------------------------------------- */

struct tc {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    buf_t in;
};

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = { 30, 0 };     /* generous: valgrind (make valgrind) is slow */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Connect and handshake; 0, or -1 if the handshake failed.  alpn is in
 * wire format (NULL: none offered); max_version 0 = OpenSSL's. */
static int tc_open(struct tc *c, int port, const char *alpn, size_t alpn_len, int max_version)
{
    memset(c, 0, sizeof *c);
    c->fd = tcp_connect(port);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, g_trust, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (max_version) {
        SSL_CTX_set_min_proto_version(c->ctx, 0);
        SSL_CTX_set_security_level(c->ctx, 0);
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
    }
    if (alpn) SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)alpn, (unsigned)alpn_len);
    c->ssl = SSL_new(c->ctx);
    SSL_set1_host(c->ssl, "localhost");
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        if (getenv("TEST_TLS_DEBUG")) {
            fprintf(stderr, "handshake: verify=%ld\n", SSL_get_verify_result(c->ssl));
            ERR_print_errors_fp(stderr);
        }
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static void tc_close(struct tc *c)
{
    if (c->ssl) SSL_free(c->ssl);
    if (c->ctx) SSL_CTX_free(c->ctx);
    if (c->fd >= 0) close(c->fd);
    buf_free(&c->in);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void tc_send(struct tc *c, const char *s, size_t n)
{
    size_t put;
    while (n) {
        assert_int_equal(SSL_write_ex(c->ssl, s, n, &put), 1);
        s += put;
        n -= put;
    }
}

/* More bytes into c->in: > 0, 0 on close_notify, -1 on another end. */
static int tc_fill(struct tc *c)
{
    char tmp[65536];
    size_t got;
    if (SSL_read_ex(c->ssl, tmp, sizeof tmp, &got) == 1) {
        buf_append(&c->in, tmp, got);
        return (int)got;
    }
    int e = SSL_get_error(c->ssl, 0);
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

struct resp {
    int status;
    char head[4096];
    buf_t body;
};

/* Read one Content-Length or chunked response. */
static int tc_response(struct tc *c, struct resp *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL))
        if (tc_fill(c) <= 0) return -1;
    size_t hlen = (size_t)(end - c->in.data) + 4;
    snprintf(r->head, sizeof r->head, "%.*s", (int)hlen, c->in.data);
    r->status = atoi(r->head + 9);
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    size_t need = 0, have;
    if (cl) {
        need = strtoul(cl + 17, NULL, 10);
        while (c->in.len < hlen + need)
            if (tc_fill(c) <= 0) return -1;
        buf_append(&r->body, c->in.data + hlen, need);
        have = hlen + need;
    } else if (strcasestr(r->head, "Transfer-Encoding: chunked")) {
        size_t pos = hlen;
        for (;;) {
            char *crlf;
            while (!(crlf = strstr(c->in.data + pos, "\r\n")))
                if (tc_fill(c) <= 0) return -1;
            size_t n = strtoul(c->in.data + pos, NULL, 16);
            size_t start = (size_t)(crlf - c->in.data) + 2;
            while (c->in.len < start + n + 2)
                if (tc_fill(c) <= 0) return -1;
            buf_append(&r->body, c->in.data + start, n);
            pos = start + n + 2;
            if (!n) break;
        }
        have = pos;
    } else {
        return -1;
    }
    memmove(c->in.data, c->in.data + have, c->in.len - have);
    c->in.len -= have;
    c->in.data[c->in.len] = 0;
    return 0;
}

static long tc_serial(struct tc *c)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    assert_non_null(x);
    long s = ASN1_INTEGER_get(X509_get0_serialNumber(x));
    X509_free(x);
    return s;
}

static void tc_get_hello(struct tc *c)
{
    struct resp r;
    tc_send(c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", 40);
    assert_int_equal(tc_response(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "hello tls=1");
    buf_free(&r.body);
}

/* Wait until the server has n connections (closes are asynchronous). */
static void wait_conns(size_t n)
{
    for (int i = 0; i < 300 && http_server_connections(F->srv) != n; i++) usleep(10000);
    assert_int_equal(http_server_connections(F->srv), n);
}

/* ---- tests ---------------------------------------------------------- */

static void test_ctx_errors(void **state)
{
    (void)state;
    tls_ctx_t *t = NULL;
    nb_err_t err;
    assert_int_equal(tls_ctx_new("/nonexistent/cert.pem", g_key, &t, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
    assert_true(tls_ctx_new(g_junk, g_key, &t, &err) < 0);
    assert_non_null(strstr(err.msg, "not a usable PEM certificate"));
    assert_true(tls_ctx_new(g_cert, g_junk, &t, &err) < 0);
    assert_non_null(strstr(err.msg, "not a usable PEM private key"));
    assert_true(tls_ctx_new(g_cert, g_key2, &t, &err) < 0);
    assert_non_null(strstr(err.msg, "does not match"));
    assert_null(t);
    assert_int_equal(tls_ctx_new(g_cert, g_key, &t, &err), 0);
    char d[512];
    tls_ctx_describe(t, d, sizeof d);
    assert_non_null(strstr(d, "CN=localhost"));
    assert_non_null(strstr(d, "serial=01"));
    /* notAfter: the certificate was made for a day. */
    long long left = tls_ctx_not_after(t) - (long long)time(NULL);
    assert_true(left > 86400 - 600 && left <= 86400 + 60);
    /* A key every local user can read is reported (serve warns). */
    assert_int_equal(tls_ctx_key_exposed(t), 0);
    tls_ctx_free(t);
    assert_int_equal(chmod(g_key, 0644), 0);
    assert_int_equal(tls_ctx_new(g_cert, g_key, &t, &err), 0);
    assert_int_equal(tls_ctx_key_exposed(t), 1);
    assert_int_equal(chmod(g_key, 0600), 0);
    assert_int_equal(tls_ctx_reload(t, &err), 0);
    assert_int_equal(tls_ctx_key_exposed(t), 0);
    tls_ctx_free(t);
}

static void test_handshake_get(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, "\x02h2\x08http/1.1", 12, 0), 0);
    assert_true(SSL_version(c.ssl) >= TLS1_2_VERSION);
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(c.ssl, &p, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(p, "http/1.1", 8);
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK);
    tc_get_hello(&c);
    tc_close(&c);

    /* A client offering only h2 gets no ALPN and HTTP/1.1 still works. */
    assert_int_equal(tc_open(&c, F->port, "\x02h2", 3, 0), 0);
    SSL_get0_alpn_selected(c.ssl, &p, &n);
    assert_int_equal(n, 0);
    tc_get_hello(&c);
    tc_close(&c);
    /* TLS 1.2 works too. */
    assert_int_equal(tc_open(&c, F->port, NULL, 0, TLS1_2_VERSION), 0);
    assert_int_equal(SSL_version(c.ssl), TLS1_2_VERSION);
    tc_get_hello(&c);
    tc_close(&c);
}

static void test_old_versions_refused(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, TLS1_1_VERSION), -1);
    tc_close(&c);
    wait_conns(0);
}

static void test_keepalive_pipelining(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    for (int i = 0; i < 5; i++) tc_get_hello(&c);
    /* Three requests in one record, answered in order. */
    const char *three = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                        "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    tc_send(&c, three, strlen(three));
    struct resp r;
    assert_int_equal(tc_response(&c, &r), 0);
    assert_string_equal(r.body.data, "hello tls=1");
    buf_free(&r.body);
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(strncmp(r.body.data, "3 ", 2), 0);
    buf_free(&r.body);
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(r.body.len, 1000);
    buf_free(&r.body);
    assert_int_equal(http_server_connections(F->srv), 1);
    tc_close(&c);
    wait_conns(0);
}

static void test_big_bodies(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    tc_send(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 30);
    struct resp r;
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, BIG);
    for (size_t i = 0; i < BIG; i += 4093) assert_int_equal(r.body.data[i], 'a' + i % 26);
    buf_free(&r.body);

    /* A 4 MiB upload, sent in many records, arrives whole. */
    size_t n = 4u << 20;
    char *up = xmalloc(n);
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        up[i] = (char)(i * 7 % 251);
        sum = sum * 31 + (unsigned char)up[i];
    }
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    tc_send(&c, head, strlen(head));
    tc_send(&c, up, n);
    free(up);
    assert_int_equal(tc_response(&c, &r), 0);
    char want[64];
    snprintf(want, sizeof want, "%zu %u", n, sum);
    assert_string_equal(r.body.data, want);
    buf_free(&r.body);
    tc_close(&c);
}

static void test_sse_and_close_notify(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    tc_send(&c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 33);
    struct resp r;
    assert_int_equal(tc_response(&c, &r), 0);
    assert_non_null(strstr(r.head, "text/event-stream"));
    assert_non_null(strstr(r.body.data, "id: 1\nevent: greeting\ndata: hello over tls\n\n"));
    buf_free(&r.body);
    /* Connection: close -> the answer, then close_notify (a clean end, not
     * a truncation), then the FIN. */
    tc_send(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 51);
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    buf_free(&r.body);
    assert_int_equal(tc_fill(&c), 0);
    assert_true(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN);
    tc_close(&c);
    wait_conns(0);
}

static void test_sse_slow_client_dropped(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    int small = 64 * 1024;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    tc_send(&c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n", 32);
    /* Never read: the encrypted queue passes max_stream_queue (4 MiB) and
     * the server drops the client instead of buffering without end. */
    for (int i = 0; i < 500 && !atomic_load(&g_flood_closed); i++) usleep(10000);
    assert_int_equal(atomic_load(&g_flood_rc), -ENOBUFS);
    assert_true(atomic_load(&g_flood_closed));
    tc_close(&c);
    wait_conns(0);
}

static void test_plaintext_refused(void **state)
{
    (void)state;
    int fd = tcp_connect(F->port);
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char buf[1024];
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) got += (size_t)n;
    buf[got] = 0;
    assert_int_equal(n, 0);             /* FIN, not a reset */
    assert_int_equal(strncmp(buf, "HTTP/1.1 400 ", 13), 0);
    assert_non_null(strstr(buf, "https://"));
    assert_null(strstr(buf, "hello tls"));
    close(fd);
    wait_conns(0);

    /* Garbage that is not HTTP: closed without an answer. */
    fd = tcp_connect(F->port);
    char junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(0x16 + i * 13);
    junk[0] = 0x16, junk[1] = 3, junk[2] = 1, junk[3] = 0, junk[4] = 200;     /* a bogus ClientHello record */
    send(fd, junk, sizeof junk, 0);
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {}
    assert_true(n == 0 || errno == ECONNRESET);
    close(fd);
    wait_conns(0);

    /* The server still serves. */
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    tc_get_hello(&c);
    tc_close(&c);
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    if (under_valgrind()) skip();
    /* Connected, nothing sent; then half a ClientHello: both closed after
     * head_timeout (500 ms). */
    int fd = tcp_connect(F->port);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char buf[64];
    assert_true(recv(fd, buf, sizeof buf, 0) <= 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 400 && ms < 4000);
    close(fd);
    fd = tcp_connect(F->port);
    const char part[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00 };
    send(fd, part, sizeof part, 0);
    assert_true(recv(fd, buf, sizeof buf, 0) <= 0);
    close(fd);
    wait_conns(0);
}

static void test_reload(void **state)
{
    (void)state;
    struct tc old;
    assert_int_equal(tc_open(&old, F->port, NULL, 0, 0), 0);
    assert_int_equal(tc_serial(&old), 1);
    tc_get_hello(&old);

    /* A new certificate (serial 2) with the same key, as certbot renews. */
    write_cert(g_pk, 2, g_cert);
    fx_reload(F, 0);
    struct tc fresh;
    assert_int_equal(tc_open(&fresh, F->port, NULL, 0, 0), 0);
    assert_int_equal(tc_serial(&fresh), 2);
    tc_get_hello(&fresh);
    /* The open connection keeps working with its certificate. */
    tc_get_hello(&old);
    assert_int_equal(tc_serial(&old), 1);

    /* A broken file: the reload fails and serial 2 stays in use. */
    char *saved = NULL;
    size_t len = 0;
    FILE *f = fopen(g_cert, "r");
    assert_non_null(f);
    char tmp[8192];
    len = fread(tmp, 1, sizeof tmp, f);
    fclose(f);
    saved = xmalloc(len);
    memcpy(saved, tmp, len);
    f = fopen(g_cert, "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    fx_reload(F, -1);
    struct tc third;
    assert_int_equal(tc_open(&third, F->port, NULL, 0, 0), 0);
    assert_int_equal(tc_serial(&third), 2);
    tc_get_hello(&third);
    tc_get_hello(&old);
    tc_get_hello(&fresh);
    f = fopen(g_cert, "w");
    fwrite(saved, 1, len, f);
    fclose(f);
    free(saved);
    tc_close(&third);
    tc_close(&fresh);
    tc_close(&old);
    /* Back to serial 1 for other tests. */
    write_cert(g_pk, 1, g_cert);
    fx_reload(F, 0);
    wait_conns(0);
}

static void test_many_connections(void **state)
{
    (void)state;
    enum { N = 40 };
    static struct tc cs[N];
    /* A request at once: a connection with none is closed after head_timeout. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(tc_open(&cs[i], F->port, NULL, 0, 0), 0);
        tc_get_hello(&cs[i]);
    }
    for (int i = 0; i < N; i++) tc_get_hello(&cs[i]);
    for (int i = 0; i < N; i++) tc_close(&cs[i]);
    wait_conns(0);
}

/* The proxy (http/proxy.c) over TLS: X-Forwarded-Proto https; a download
 * with the back-pressure acting on the encrypted queue; a websocket whose
 * bytes are spliced through TLS both ways, and whose half-close (the
 * client's close_notify) reaches upstream and comes back as our
 * close_notify. */
static void test_proxy_over_tls(void **state)
{
    (void)state;
    struct tc c;
    assert_int_equal(tc_open(&c, F->port, NULL, 0, 0), 0);
    struct resp r;
    tc_send(&c, "GET /up/hdr HTTP/1.1\r\nHost: x\r\n\r\n", 33);
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "https");
    buf_free(&r.body);

    long long n = 32LL << 20;
    char req[128];
    snprintf(req, sizeof req, "GET /up/big?n=%lld HTTP/1.1\r\nHost: x\r\n\r\n", n);
    tc_send(&c, req, strlen(req));
    assert_int_equal(tc_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, (size_t)n);
    assert_int_equal(r.body.data[0], 'a' + (int)(n % 26));
    buf_free(&r.body);
    struct proxy_stats st = fx_stats(F);
    print_message("download 32 MiB over TLS: peak buffered in the proxy %zu bytes\n", st.buffered_peak);
    assert_true(st.buffered_peak <= 1024 * 1024);
    assert_int_equal(st.splices, 0);    /* encrypted here: the copying path, never splice(2) */

    const char *up = "GET /up/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tc_send(&c, up, strlen(up));
    char *end;
    while (!(end = c.in.data ? strstr(c.in.data, "\r\n\r\n") : NULL)) assert_true(tc_fill(&c) > 0);
    assert_int_equal(strncmp(c.in.data, "HTTP/1.1 101 ", 13), 0);
    size_t hl = (size_t)(end - c.in.data) + 4;
    memmove(c.in.data, c.in.data + hl, c.in.len - hl);
    c.in.len -= hl;
    assert_int_equal(fx_stats(F).upgraded, 1);
    /* 256 KiB each way (many records), unmodified; small enough for the
     * socket buffers to hold while this client writes before reading. */
    size_t total = 256 << 10;
    char *blob = xmalloc(total);
    for (size_t i = 0; i < total; i++) blob[i] = (char)(i * 13 + 7);
    tc_send(&c, blob, total);
    while (c.in.len < total) assert_true(tc_fill(&c) > 0);
    assert_memory_equal(c.in.data, blob, total);
    free(blob);
    /* Our half-close: close_notify; the echo's FIN comes back as the
     * server's close_notify. */
    assert_true(SSL_shutdown(c.ssl) >= 0);
    c.in.len = 0;
    assert_int_equal(tc_fill(&c), 0);
    assert_true(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN);
    tc_close(&c);
    wait_conns(0);
    for (int i = 0; i < 300 && fx_stats(F).upgraded; i++) usleep(10000);
    assert_int_equal(fx_stats(F).upgraded, 0);
}

/* ---- tls_conn alone: fragmentation ---------------------------------- */

static int plain_sink(void *ud, const char *data, size_t len)
{
    buf_append(ud, data, len);
    return 0;
}

/* Move what the client SSL wrote (its memory BIO) into the server in
 * pieces of 1, 2, 3 ... 7 bytes: every record, and the handshake, arrives
 * cut everywhere.  Returns the last tls_conn_input result. */
static int to_server(BIO *c_out, tls_conn_t *s, buf_t *plain, int *cut)
{
    char tmp[65536];
    int n, rc = 0;
    while ((n = BIO_read(c_out, tmp, sizeof tmp)) > 0) {
        for (int off = 0; off < n;) {
            int k = 1 + (*cut)++ % 7;
            if (k > n - off) k = n - off;
            nb_err_t err;
            rc = tls_conn_input(s, tmp + off, (size_t)k, plain_sink, plain, &err);
            if (rc < 0) fail_msg("server: %s", err.msg);
            off += k;
        }
    }
    return rc;
}

static void to_client(tls_conn_t *s, BIO *c_in)
{
    char *data;
    size_t n = tls_conn_take(s, &data);
    if (n) BIO_write(c_in, data, (int)n);
    free(data);
}

static void test_fragmented_io(void **state)
{
    (void)state;
    tls_ctx_t *t;
    nb_err_t err;
    assert_int_equal(tls_ctx_new(g_cert, g_key, &t, &err), 0);
    tls_conn_t *s = tls_conn_new(t);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(cctx, g_trust, NULL), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL *cl = SSL_new(cctx);
    SSL_set1_host(cl, "localhost");
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(cl, c_in, c_out);
    SSL_set_connect_state(cl);
    buf_t plain = BUF_INIT;
    int cut = 0;

    /* Written before the handshake: held, sent once it completes. */
    tls_conn_write(s, "early ", 6);
    assert_false(tls_conn_established(s));
    int done = 0;
    for (int i = 0; i < 20 && !done; i++) {
        int r = SSL_do_handshake(cl);
        done = r == 1 && tls_conn_established(s);
        assert_int_equal(to_server(c_out, s, &plain, &cut), 0);
        to_client(s, c_in);
    }
    assert_true(tls_conn_established(s));
    assert_int_equal(SSL_get_verify_result(cl), X509_V_OK);
    assert_string_equal(tls_conn_version(s), SSL_get_version(cl));

    /* 200 KB each way in records of up to 16 KB, cut in 1..7 byte pieces. */
    size_t n = 200 * 1000;
    char *up = xmalloc(n), *down = xmalloc(n);
    for (size_t i = 0; i < n; i++) up[i] = (char)(i * 31 + 1), down[i] = (char)(i * 17 + 3);
    size_t put;
    assert_int_equal(SSL_write_ex(cl, up, n, &put), 1);
    assert_int_equal(put, n);
    assert_int_equal(to_server(c_out, s, &plain, &cut), 0);
    assert_int_equal(plain.len, n);
    assert_memory_equal(plain.data, up, n);
    tls_conn_write(s, down, n);
    to_client(s, c_in);
    buf_t got = BUF_INIT;
    char tmp[65536];
    size_t k;
    while (SSL_read_ex(cl, tmp, sizeof tmp, &k) == 1) buf_append(&got, tmp, k);
    assert_int_equal(got.len, 6 + n);
    assert_memory_equal(got.data, "early ", 6);
    assert_memory_equal(got.data + 6, down, n);

    /* The client's close_notify is the server's EOF; ours reaches it. */
    SSL_shutdown(cl);
    plain.len = 0;
    assert_int_equal(to_server(c_out, s, &plain, &cut), TLS_EOF);
    tls_conn_close_notify(s);
    tls_conn_write(s, "too late", 8);        /* ignored after close_notify */
    to_client(s, c_in);
    assert_int_equal(SSL_read_ex(cl, tmp, sizeof tmp, &k), 0);
    assert_int_equal(SSL_get_error(cl, 0), SSL_ERROR_ZERO_RETURN);

    free(up);
    free(down);
    buf_free(&got);
    buf_free(&plain);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    tls_conn_free(s);
    tls_ctx_free(t);
}

/* A failure is final and says what it was. */
static void test_failure_sticky(void **state)
{
    (void)state;
    tls_ctx_t *t;
    nb_err_t err;
    assert_int_equal(tls_ctx_new(g_cert, g_key, &t, &err), 0);
    tls_conn_t *s = tls_conn_new(t);
    buf_t plain = BUF_INIT;
    const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(tls_conn_input(s, get, strlen(get), plain_sink, &plain, &err), -EPROTO);
    assert_true(tls_conn_failed(s));
    assert_true(tls_conn_plain_http(s));
    assert_non_null(strstr(err.msg, "http request"));
    assert_int_equal(tls_conn_input(s, get, strlen(get), plain_sink, &plain, &err), -EPROTO);
    tls_conn_write(s, "x", 1);
    char *data;
    size_t n = tls_conn_take(s, &data);
    free(data);
    assert_true(n < 64);            /* an alert at most, never plaintext */
    assert_int_equal(plain.len, 0);
    tls_conn_free(s);
    tls_ctx_free(t);
}

/* ---- a slow reader of a big answer ------------------------------------ */

static int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Read one 16 MiB answer with a pause after each 64 KiB (a client on a
 * slow link); the bytes received, head included. */
static size_t slow_read(struct tc *c, int fd)
{
    size_t got = 0;
    char buf[65536];
    for (;;) {
        size_t k = 0;
        if (c) {
            if (SSL_read_ex(c->ssl, buf, sizeof buf, &k) != 1) {
                if (getenv("TEST_TLS_DEBUG")) {
                    fprintf(stderr, "slow_read: SSL error %d errno %d\n", SSL_get_error(c->ssl, 0), errno);
                    ERR_print_errors_fp(stderr);
                }
                ERR_clear_error();
                break;
            }
        } else {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            k = (size_t)n;
        }
        if ((got + k) / 65536 != got / 65536) usleep(5000);     /* ~13 MB/s at most */
        got += k;
        if (got >= BIG + 64) break;         /* the head is < 64 bytes longer: all there */
    }
    return got;
}

/* Regression (plain HTTP too, on main): the idle timer was armed as soon as
 * the last answer was queued, so a client reading a big answer for longer
 * than idle_timeout got it cut (and one answered with Connection: close,
 * for longer than body_timeout).  Now the connection is idle only once the
 * answer has left; until then the client must keep taking it
 * (body_timeout_ms without progress closes). */
static void test_slow_reader_gets_the_whole_answer(void **state)
{
    (void)state;
    if (under_valgrind()) skip();
    struct http_limits lim;
    fx_limits(&lim);
    lim.idle_timeout_ms = 200;
    lim.body_timeout_ms = 800;      /* not less: valgrind runs one thread at a time */
    char sock[128];
    snprintf(sock, sizeof sock, "%s/plain.sock", g_dir);
    struct fx *f = fx_start_with(&lim, sock);
    int small = 64 * 1024;
    const char *get = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *get_close = "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int tls = 0; tls < 2; tls++) {
        for (int close_it = 0; close_it < 2; close_it++) {
            struct tc c;
            int fd = -1;
            if (tls) {
                assert_int_equal(tc_open(&c, f->port, NULL, 0, 0), 0);
                setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
                tc_send(&c, close_it ? get_close : get, strlen(close_it ? get_close : get));
            } else {
                fd = unix_connect(sock);
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
                const char *g = close_it ? get_close : get;
                assert_int_equal(send(fd, g, strlen(g), 0), (ssize_t)strlen(g));
            }
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            size_t got = slow_read(tls ? &c : NULL, fd);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
            print_message("%s%s: %zu bytes in %.1f s\n", tls ? "tls" : "plain", close_it ? " close" : "", got, s);
            assert_true(s > 0.9);           /* longer than idle_timeout and body_timeout */
            assert_true(got > BIG);
            if (tls) tc_close(&c);
            else close(fd);
        }
    }
    /* A client that stops reading is still let go of: body_timeout without
     * progress. */
    struct tc c;
    assert_int_equal(tc_open(&c, f->port, NULL, 0, 0), 0);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    tc_send(&c, get, strlen(get));
    for (int i = 0; i < 300 && http_server_connections(f->srv) != 0; i++) usleep(10000);
    assert_int_equal(http_server_connections(f->srv), 0);
    tc_close(&c);
    fx_finish(f);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/nbhub-test-tls-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_cert, sizeof g_cert, "%s/cert.pem", g_dir);
    snprintf(g_key, sizeof g_key, "%s/key.pem", g_dir);
    snprintf(g_key2, sizeof g_key2, "%s/other-key.pem", g_dir);
    snprintf(g_junk, sizeof g_junk, "%s/junk.pem", g_dir);
    snprintf(g_trust, sizeof g_trust, "%s/trust.pem", g_dir);
    g_ca_pk = key_new();
    g_ca = cert_new(g_ca_pk, 100, "nbhub test CA", NULL);
    FILE *t = fopen(g_trust, "w");
    PEM_write_X509(t, g_ca);
    fclose(t);
    g_pk = key_new();
    write_key(g_pk, g_key);
    chmod(g_key, 0600);
    write_cert(g_pk, 1, g_cert);
    EVP_PKEY *other = key_new();
    write_key(other, g_key2);
    EVP_PKEY_free(other);
    FILE *f = fopen(g_junk, "w");
    fputs("this is not PEM\n", f);
    fclose(f);
    F = fx_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fx_finish(F);
    EVP_PKEY_free(g_pk);
    EVP_PKEY_free(g_ca_pk);
    X509_free(g_ca);
    unlink(g_cert);
    unlink(g_key);
    unlink(g_key2);
    unlink(g_junk);
    unlink(g_trust);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/plain.sock", g_dir);
    unlink(sock);
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    if (!getenv("NBHUB_LOG")) log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_fragmented_io),
        cmocka_unit_test(test_failure_sticky),
        cmocka_unit_test(test_handshake_get),
        cmocka_unit_test(test_old_versions_refused),
        cmocka_unit_test(test_keepalive_pipelining),
        cmocka_unit_test(test_big_bodies),
        cmocka_unit_test(test_sse_and_close_notify),
        cmocka_unit_test(test_sse_slow_client_dropped),
        cmocka_unit_test(test_plaintext_refused),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_proxy_over_tls),
        cmocka_unit_test(test_slow_reader_gets_the_whole_answer),
    };
    return cmocka_run_group_tests_name("tls", tests, group_setup, group_teardown);
}
