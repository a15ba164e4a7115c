/*
 * kclient — a Jupyter client's five sockets, driven by a libuv loop.
 *
 * Each channel is a zsock (ZMTP spoken on the loop itself, no libzmq
 * thread: zmtp.h says why): DEALER for shell, control and stdin, SUB for
 * iopub, REQ for the heartbeat.  Messages are delivered from the sockets'
 * read callbacks; sends never call back, so a message callback may send.
 *
 * Messages failing HMAC verification are dropped and counted, never
 * delivered.  The heartbeat (REQ "ping", expect the echo) runs only when
 * asked; local kernels are watched through their process instead.
 *
 * Ownership: the message passed to the callback is freed by kclient after
 * the callback returns.  kclient_close may be called from inside a callback;
 * the memory is released once libuv has closed every handle.
 */
#ifndef NBHUB_KCLIENT_H
#define NBHUB_KCLIENT_H

#include <jansson.h>
#include <uv.h>
#include "kernel/kconn.h"
#include "kernel/kwire.h"
#include "util/err.h"

typedef struct kclient kclient_t;

typedef void (*kclient_msg_cb)(kclient_t *kc, enum kchan ch, const kmsg_t *msg, void *ud);
typedef void (*kclient_hb_cb)(kclient_t *kc, void *ud);

/* Connect all five channels.  Returns 0 or negative errno. */
int kclient_open(uv_loop_t *loop, const kconn_t *conn, kclient_msg_cb cb, void *ud,
                 kclient_t **out, nb_err_t *err);
/* Connect only the control channel (to ask a kernel whose client has gone
 * to shut down): sends on other channels fail with -ENOTCONN, hold, drain
 * and heartbeats are no-ops. */
int kclient_open_control(uv_loop_t *loop, const kconn_t *conn, kclient_msg_cb cb, void *ud,
                         kclient_t **out, nb_err_t *err);
/* Send a request.  content is stolen (may be NULL for {}).  msg_id_out, if
 * not NULL, receives the new message id (33 bytes). */
int kclient_send(kclient_t *kc, enum kchan ch, const char *msg_type, json_t *content,
                 const json_t *parent_header, char *msg_id_out);
/* The same with the content as JSON text, taken over (malloc'd). */
int kclient_send_text(kclient_t *kc, enum kchan ch, const char *msg_type, kbytes_t content,
                      char *msg_id_out);
/* Start heartbeats: ping every interval_ms; call lost_cb once if no echo
 * arrives within timeout_ms. */
void kclient_hb_start(kclient_t *kc, unsigned interval_ms, unsigned timeout_ms, kclient_hb_cb lost_cb);
/* Hold iopub (1) or release it (0).  While held, iopub is not read as
 * messages arrive but in one go before any other channel's message is
 * delivered (a reply follows the outputs of its request), or by
 * kclient_drain_iopub.  A client that expects a reply soon saves a wake-up
 * per output message; one that wants outputs live releases it. */
void kclient_hold_iopub(kclient_t *kc, int hold);
void kclient_drain_iopub(kclient_t *kc);
/* The kernel is going away: lost connections are not retried once what was
 * sent has gone out (zsock_final). */
void kclient_final(kclient_t *kc);
/* 1 once the channel's connection is up (sends go out at once). */
int kclient_ready(const kclient_t *kc, enum kchan ch);
/* Messages dropped for a bad signature or malformed framing. */
unsigned long kclient_dropped(const kclient_t *kc);
const char *kclient_session(const kclient_t *kc);
void kclient_close(kclient_t *kc);

#endif
