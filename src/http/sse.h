/*
 * http/sse — Server-Sent Events on top of a streaming response.
 *
 * http_sse_start answers the request with 200 text/event-stream (no-cache,
 * no proxy buffering) and keeps the connection open; events go out with
 * http_sse_send.  Every sse_keepalive_ms a ": keep-alive" comment goes out
 * so proxies and browsers do not time the stream out.
 *
 * Back-pressure: a client that does not read fast enough is dropped once
 * its unsent data passes max_stream_queue (1 MiB), rather than buffering
 * without bound; http_sse_send then returns -ENOBUFS.
 *
 * Ownership and lifetime:
 *   - http_sse_start consumes the request; the stream belongs to the caller
 *     until either the caller ends it with http_sse_close, or on_close is
 *     called (client gone, dropped for back-pressure, server stop).
 *   - on_close runs from a libuv callback, never from inside http_sse_send;
 *     after it returns the stream is freed: forget the pointer in on_close
 *     and do not call http_sse_close on it.
 *   - Between a drop and on_close, http_sse_send returns -EPIPE.
 */
#ifndef NBHUB_HTTP_SSE_H
#define NBHUB_HTTP_SSE_H

#include "http/server.h"

typedef struct http_sse http_sse_t;
typedef void (*http_sse_close_fn)(http_sse_t *s, void *ud);

/* Start the stream.  NULL if the client had already gone, or for HEAD
 * (answered with the headers only); req is consumed in every case and
 * on_close is not called after a NULL. */
http_sse_t *http_sse_start(http_req_t *req, http_sse_close_fn on_close, void *ud);
/* Send one event.  event and id may be NULL; they must not contain CR or LF
 * (-EINVAL).  data is split at CR, LF and CRLF into "data:" lines.
 * 0, -EINVAL, -ENOBUFS (client dropped now), -EPIPE (stream is dead). */
int  http_sse_send(http_sse_t *s, const char *event, const char *id, const char *data);
/* A comment line (": text"), e.g. for tests or custom heartbeats. */
int  http_sse_comment(http_sse_t *s, const char *text);
/* The owner ends the stream (terminal chunk; keep-alive may go on) and the
 * stream is freed.  on_close is not called. */
void http_sse_close(http_sse_t *s);
/* The request the stream answers (headers, params, user data). */
http_req_t *http_sse_req(const http_sse_t *s);

#endif
