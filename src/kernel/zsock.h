/*
 * zsock — a connecting ZeroMQ socket (DEALER, SUB or REQ) on the libuv loop,
 * speaking ZMTP 3.0 (zmtp.h) to exactly one peer over a Unix socket
 * ("ipc://PATH") or TCP ("tcp://IP:PORT", numeric addresses).
 *
 * It behaves as a libzmq socket with zmq_connect would for a Jupyter client:
 *   - messages sent before the connection is up are queued (up to
 *     ZSOCK_MAX_QUEUED; past that they are dropped, as at libzmq's HWM);
 *   - a refused or lost connection is retried: every 10 ms until the first
 *     handshake succeeds (a kernel binds its sockets a few hundred ms after
 *     it starts, and each retry is one failed connect()), then every 100 ms;
 *   - SUB subscribes to everything; REQ adds and strips the empty delimiter.
 * Received messages are delivered from the read callback, frames pointing
 * into the socket's buffer, valid only during the callback.
 *
 * Ownership: zsock_close may be called at any time, also from inside the
 * message callback; no callback runs after it returns, and the memory is
 * released once libuv has closed the handles.
 */
#ifndef NBHUB_ZSOCK_H
#define NBHUB_ZSOCK_H

#include <uv.h>
#include "kernel/kwire.h"
#include "util/err.h"

enum zsock_type { ZSOCK_DEALER, ZSOCK_SUB, ZSOCK_REQ };

#define ZSOCK_MAX_QUEUED 1000
#define ZSOCK_MAX_FRAMES 64   /* more frames in one message: dropped */

typedef struct zsock zsock_t;
typedef void (*zsock_msg_cb)(zsock_t *z, const kframe_t *frames, size_t n, void *ud);

/* Start connecting to endpoint.  identity (may be NULL) is announced to the
 * peer (a ROUTER routes replies by it).  Returns 0, or -EINVAL with a message
 * for an endpoint it cannot parse; connection failures are retried, never
 * reported. */
int zsock_connect(uv_loop_t *loop, enum zsock_type type, const char *endpoint,
                  const char *identity, zsock_msg_cb cb, void *ud, zsock_t **out, nb_err_t *err);
/* Send a multipart message (the frames are copied).  Returns 0, or -ENOBUFS
 * when the queue of a socket still connecting is full (message dropped). */
int zsock_send(zsock_t *z, const kbytes_t *frames, size_t n);
/* Hold (1) or release (0) the receive side: a held socket is not read by
 * the loop, only by zsock_drain, which reads what has arrived and delivers
 * it from inside the call.  Holding an unconnected socket takes effect
 * when its handshake is complete. */
void zsock_hold(zsock_t *z, int hold);
void zsock_drain(zsock_t *z);
/* The peer is going away for good (a kernel asked to shut down): once the
 * connection is lost it is not retried, unless messages are still queued
 * (sent before it was up): those are what the peer is waiting for.  A send
 * after a lost connection is queued and never goes out. */
void zsock_final(zsock_t *z);
/* 1 once the handshake with the peer is complete (and the connection up). */
int zsock_ready(const zsock_t *z);
/* Messages dropped: malformed, too many frames, or over the queue limit. */
unsigned long zsock_dropped(const zsock_t *z);
void zsock_close(zsock_t *z);

#endif
