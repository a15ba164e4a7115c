/* libFuzzer harness for the HTTP connection parser (http/server.c) and the
 * router, without sockets: bytes go into a detached connection.
 *
 * The limits are shrunk so the 413/414/431 paths are reachable with small
 * inputs, and the routes exercise query, cookie, header and path-parameter
 * parsing, streaming, SSE and a handler that never answers (the abort path
 * when the connection is freed).
 *
 * Property: feeding the input in one piece or in chunks of 1..16 bytes (the
 * first byte decides) must produce the same output, apart from Date headers
 * and 100 Continue (which depends on whether the body came with the head),
 * and apart from which rejection (400/413/414/431) ends the connection:
 * http-parser reports a header value only when its span ends or the buffer
 * does, so whether our size limit or its syntax check fires first depends
 * on where the input was cut.  Both are right; that a rejection happens, and
 * everything before it, must not depend on the cut.  A difference aborts so
 * libFuzzer keeps the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"
#include "http/server.h"
#include "http/sse.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void f_plain(http_req_t *req, void *ud)
{
    (void)ud;
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s %s %s q=%s", http_req_method(req), http_req_path(req), http_req_raw_path(req),
               http_req_query(req));
    const char *n, *v;
    for (size_t i = 0; http_query_at(req, i, &n, &v) == 0; i++) buf_printf(&b, " [%s=%s]", n, v);
    for (size_t i = 0; http_header_at(req, i, &n, &v) == 0; i++) buf_printf(&b, " {%s: %s}", n, v);
    const char *c = http_cookie(req, "sid");
    buf_printf(&b, " sid=%s", c ? c : "-");
    http_set_header(req, "X-Echo", http_req_path(req));    /* may be refused: that is the point */
    size_t len;
    http_req_body(req, &len);
    buf_printf(&b, " body=%zu", len);
    http_respond(req, 200, "text/plain", b.data, b.len);
    buf_free(&b);
}

static void f_params(http_req_t *req, void *ud)
{
    (void)ud;
    json_t *j = json_pack("{s:s?,s:s?}", "a", http_param(req, "a"), "rest", http_param(req, "rest"));
    http_respond_json(req, 201, j);
}

static void f_stream(http_req_t *req, void *ud)
{
    (void)ud;
    http_stream_begin(req, 200, "text/plain");
    http_stream_write(req, "a", 1);
    http_stream_end(req);
}

static void f_sse(http_req_t *req, void *ud)
{
    (void)ud;
    http_sse_t *s = http_sse_start(req, NULL, NULL);
    if (!s) return;
    http_sse_send(s, "e", "1", http_req_query(req));
    http_sse_close(s);
}

static void f_abort(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond(req, 200, NULL, "", 0);     /* a late answer: frees only */
}

static void f_hold(http_req_t *req, void *ud)
{
    (void)ud;
    http_req_on_abort(req, f_abort, NULL);  /* answered only when the connection goes */
}

static void f_error(http_req_t *req, void *ud)
{
    (void)ud;
    http_respond_error(req, 418, "teapot", "%s", http_req_path(req));
}

static const struct http_route routes[] = {
    { "GET", "/", f_plain, 0 },
    { "*", "/p/:a", f_params, 0 },
    { "POST", "/p/:a/x/" "*rest", f_params, 0 },
    { "GET", "/s", f_stream, 0 },
    { "GET", "/e", f_sse, 0 },
    { "GET", "/hold", f_hold, 0 },
    { "PUT", "/err/" "*rest", f_error, 0 },
    { NULL, "/any", f_plain, 0 },
};

static http_server_t *srv, *gsrv;   /* without and with a gate */

/* The output without Date header lines and interim 100 Continue responses
 * (an answer's body need not end in CRLF, so the latter is searched for
 * anywhere). */
static char *strip(const buf_t *b)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    buf_t o = BUF_INIT;
    const char *p = b->data ? b->data : "", *end = p + b->len;
    while (p < end) {
        const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *k = memmem(p, (size_t)(end - p), cont, sizeof cont - 1);
        if (k && (!e || k <= e + 2)) {
            buf_append(&o, p, (size_t)(k - p));
            p = k + sizeof cont - 1;
            continue;
        }
        size_t n = e ? (size_t)(e - p) + 2 : (size_t)(end - p);
        if (!(n >= 6 && memcmp(p, "Date: ", 6) == 0)) buf_append(&o, p, n);
        p += n;
    }
    buf_append(&o, "", 0);
    return buf_detach(&o);
}

/* Replace a final server rejection by a marker (see the note at the top). */
static void cut_rejection(char *out)
{
    static const char *const st[] = { "HTTP/1.1 400 ", "HTTP/1.1 413 ", "HTTP/1.1 414 ", "HTTP/1.1 431 " };
    char *last = NULL;
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        for (char *p = out; (p = strstr(p, st[i])) != NULL; p++)
            if ((!last || p > last) && strstr(p, "Connection: close\r\n")) last = p;
    if (last && strstr(last, "\"error\":{\"code\":\"")) strcpy(last, "<rejected>");
}

/* Whole versus in pieces of step bytes: the same output, and no body
 * bytes left charged once the connections are gone. */
static void check(http_server_t *server, const uint8_t *data, size_t size, size_t step)
{
    http_conn_t *c = http_conn_new_detached(server);
    http_conn_feed(c, data, size);
    char *whole = strip(http_conn_output(c));
    http_conn_free_detached(c);

    c = http_conn_new_detached(server);
    for (size_t off = 0; off < size; off += step)
        http_conn_feed(c, data + off, size - off < step ? size - off : step);
    char *pieces = strip(http_conn_output(c));
    http_conn_free_detached(c);

    cut_rejection(whole);
    cut_rejection(pieces);
    if (strcmp(whole, pieces) != 0) {
        fprintf(stderr, "fuzz_http: output differs with %zu-byte pieces\n--- whole\n%s\n--- pieces\n%s\n", step,
                whole, pieces);
        abort();
    }
    free(whole);
    free(pieces);
    if (http_server_body_bytes(server) != 0) {
        fprintf(stderr, "fuzz_http: %zu body bytes still charged\n", http_server_body_bytes(server));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) {
        static http_router_t *router;
        nb_err_t err;
        if (http_router_new(routes, sizeof routes / sizeof routes[0], NULL, &router, &err) < 0) abort();
        struct http_limits lim;
        http_limits_default(&lim);
        lim.max_header_bytes = 600;
        lim.max_headers = 12;
        lim.max_body = 700;
        lim.max_url = 200;
        srv = http_server_new(uv_default_loop(), &lim, http_router_handle, router);
        http_server_set_csp(srv, "default-src 'none'");
        /* The same behind a gate: a body waits for it, the parser stops
         * after the head and goes on from what was read past it. */
        gsrv = http_server_new(uv_default_loop(), &lim, http_router_handle, router);
        http_server_set_csp(gsrv, "default-src 'none'");
        http_server_set_gate(gsrv, http_router_gate, router);
    }
    if (size == 0) return 0;
    size_t step = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    check(srv, data, size, step);
    check(gsrv, data, size, step);
    return 0;
}
