/*
 * http/sse — Server-Sent Events.  See sse.h for the contract.
 *
 * The stream is a chunked streaming response (close-delimited for HTTP/1.0
 * clients) marked endless, so a graceful server stop closes it rather than
 * waiting forever.  The keep-alive comment rides on the connection's own
 * timer (http_stream_tick): no extra handle, so a stream is plain memory and
 * can be freed synchronously.
 *
 * Dropping a slow client closes its connection; the server reports that
 * through the request's on_abort, from the connection's close callback,
 * which is where the owner hears on_close.  A send never calls back into
 * the owner, so an owner may drop clients while iterating its list.
 */
#include "http/sse.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

struct http_sse {
    http_req_t *req;
    http_sse_close_fn on_close;
    void *ud;
    size_t max_queue;
    int dead;
};

/* The client went away (or we dropped it): tell the owner, then free. */
static void sse_abort(http_req_t *req, void *ud)
{
    http_sse_t *s = ud;
    s->dead = 1;
    if (s->on_close) s->on_close(s, s->ud);
    http_stream_end(req);           /* client gone: this only frees req */
    free(s);
}

/* Write bytes unless the client is too far behind, in which case drop it. */
static int sse_write(http_sse_t *s, const char *data, size_t len)
{
    if (s->dead) return -EPIPE;
    if (http_stream_queued(s->req) + len > s->max_queue) {
        s->dead = 1;
        http_stream_drop(s->req);
        return -ENOBUFS;
    }
    if (http_stream_write(s->req, data, len) < 0) {
        s->dead = 1;
        return -EPIPE;
    }
    return 0;
}

static void sse_tick(http_req_t *req, void *ud)
{
    (void)req;
    http_sse_comment(ud, "keep-alive");
}

http_sse_t *http_sse_start(http_req_t *req, http_sse_close_fn on_close, void *ud)
{
    http_set_header(req, "Cache-Control", "no-cache");
    http_set_header(req, "X-Accel-Buffering", "no");    /* nginx: do not buffer the stream */
    /* HEAD gets the headers and nothing else: a stream nobody can read
     * would only sit in the owner's list until the client leaves. */
    if (http_stream_begin(req, 200, "text/event-stream; charset=utf-8") < 0 ||
        http_req_method_id(req) == HTTP_HEAD) {
        http_stream_end(req);
        return NULL;
    }
    const struct http_limits *lim = http_req_limits(req);
    http_sse_t *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->on_close = on_close;
    s->ud = ud;
    s->max_queue = lim->max_stream_queue;
    http_stream_set_endless(req);
    http_req_on_abort(req, sse_abort, s);
    http_stream_tick(req, lim->sse_keepalive_ms, sse_tick, s);
    return s;
}

static int has_newline(const char *s) { return s && strpbrk(s, "\r\n") != NULL; }

int http_sse_send(http_sse_t *s, const char *event, const char *id, const char *data)
{
    if (s->dead) return -EPIPE;
    if (has_newline(event) || has_newline(id)) return -EINVAL;
    buf_t b = BUF_INIT;
    if (id) buf_printf(&b, "id: %s\n", id);
    if (event) buf_printf(&b, "event: %s\n", event);
    const char *p = data ? data : "";
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        buf_puts(&b, "data: ");
        buf_append(&b, p, n);
        buf_putc(&b, '\n');
        p += n;
        if (!*p) break;
        p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
    }
    buf_putc(&b, '\n');
    int rc = sse_write(s, b.data, b.len);
    buf_free(&b);
    return rc;
}

int http_sse_comment(http_sse_t *s, const char *text)
{
    if (has_newline(text)) return -EINVAL;
    buf_t b = BUF_INIT;
    buf_printf(&b, ": %s\n\n", text ? text : "");
    int rc = sse_write(s, b.data, b.len);
    buf_free(&b);
    return rc;
}

void http_sse_close(http_sse_t *s)
{
    /* If the client was dropped but its close callback has not run yet,
     * http_stream_end unlinks the request, so on_abort never comes. */
    http_req_on_abort(s->req, NULL, NULL);
    http_stream_end(s->req);
    free(s);
}

http_req_t *http_sse_req(const http_sse_t *s) { return s->req; }
