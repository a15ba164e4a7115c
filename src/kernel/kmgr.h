/*
 * kmgr — one kernel's life: start, handshake, run requests, interrupt, stop.
 *
 * Start: write a fresh connection file (ipc by default), spawn the kernel
 * (kproc), connect the sockets (kclient), then repeat kernel_info_request
 * every 250 ms until BOTH a kernel_info_reply arrived on shell AND some
 * message arrived on iopub — the reply alone does not prove our iopub
 * subscription reached the kernel, and outputs published before it would be
 * lost (jupyter_client waits the same way).  A start timeout or an exit
 * during start-up fails the start with a message.
 *
 * Stop: shutdown_request on control, wait for the process to exit; after the
 * grace period SIGTERM to the process group; two seconds later SIGKILL.
 * The process exit callback always sweeps the group with SIGKILL too.
 * ipykernel answers the request on control, runs its shutdown (the user's
 * atexit handlers too) and exits with status 0 within ~0.1 s, so for a
 * cooperating kernel "kernel did not stop; sending SIGTERM" never shows.
 * A lent kernel (kmgr_lend: our sockets are closed) is asked through a new
 * connection to its control socket.  A kernel without a watched process
 * (attached without a pid) is done when its shutdown_reply arrives.  Only a
 * kernel still starting is not asked: SIGTERM at once.
 * (A lent kernel given back used to be sent SIGTERM at once, logged
 * as "did not stop" although it had never been asked: every stop of a pool
 * kernel in `nbhub serve` looked like a failed shutdown_request.)
 *
 * Callbacks: ready(status) once; msg for every message after ready; died
 * once if the kernel exits without being asked to; stopped once, after
 * which the kmgr_t is freed — do not touch it again.
 */
#ifndef NBHUB_KMGR_H
#define NBHUB_KMGR_H

#include <jansson.h>
#include <uv.h>
#include "kernel/kclient.h"
#include "kernel/kspec.h"

typedef struct kmgr kmgr_t;

struct kmgr_opts {
    const char *cwd;              /* kernel working directory, NULL = ours */
    int         tcp;              /* 1 = tcp transport instead of ipc */
    unsigned    start_timeout_ms; /* 0 = 60 s */
    char *const *extra_env;       /* "K=V" pairs added to the kernel env, may be NULL */
    int          keep_history;    /* 0: an IPython kernel (kspec_is_ipykernel) gets
                                     --HistoryManager.hist_file=:memory: as nbclient
                                     starts it, unless its argv sets hist_file */
    int         keeper;           /* start it under a keeper (kproc_spawn_keeper), for kmgr_keep */
};

struct kmgr_cbs {
    void (*ready)(kmgr_t *km, int status, const char *errmsg, void *ud);
    void (*msg)(kmgr_t *km, enum kchan ch, const kmsg_t *msg, void *ud);
    void (*died)(kmgr_t *km, const char *why, void *ud);
    void (*stopped)(kmgr_t *km, void *ud);
};

/* Returns 0 and calls ready later, or returns an error and calls nothing. */
int  kmgr_start(uv_loop_t *loop, const kspec_t *spec, const struct kmgr_opts *o,
                const struct kmgr_cbs *cbs, void *ud, kmgr_t **out, nb_err_t *err);
/* Attach to a kernel someone else started (connection file; pid if known,
 * else 0).  Death is seen through a pidfd when the pid is known, else by the
 * heartbeat (no echo for 3 s).  kmgr_shutdown asks it to exit only if
 * shutdown_kernel is set; otherwise it just disconnects.  Interrupts use
 * SIGINT to its process group when the pid is known, else interrupt_request. */
int  kmgr_attach(uv_loop_t *loop, const char *conn_file, int pid, int shutdown_kernel,
                 unsigned start_timeout_ms, const struct kmgr_cbs *cbs, void *ud,
                 kmgr_t **out, nb_err_t *err);
/* The same with connection info the caller loaded (kconn_load_owned, or
 * the kconn_new it wrote itself), which km takes whatever the result; so
 * the file is read once, by the caller's rules.  conn_file is for the log. */
int  kmgr_attach_conn(uv_loop_t *loop, kconn_t *conn, const char *conn_file, int pid, int shutdown_kernel,
                      unsigned start_timeout_ms, const struct kmgr_cbs *cbs, void *ud,
                      kmgr_t **out, nb_err_t *err);
/* Hand a ready kernel we started to another client (a task's child process
 * running `nbhub run --existing-kernel FILE --kernel-pid PID`): our sockets
 * close, the process stays supervised (died is still reported, the
 * connection file stays until the kernel is stopped).  *conn_file is
 * borrowed from km.  Only from the ready state; -EBUSY otherwise. */
int  kmgr_lend(kmgr_t *km, const char **conn_file);
/* Leave a ready kernel started with opts.keeper running after us, until
 * until_s (Unix seconds), when its keeper stops it (post-mortem: a failed
 * run's state stays inspectable).  Our sockets close, nothing is killed;
 * the stopped callback follows as for a shutdown (no died).  *conn_file
 * gets a fresh copy of the connection file's path (the file and its
 * directory stay, removed by the keeper).  The keeper's pid is
 * kmgr_pid's, read before the call.  -EBUSY if not ready or not kept-able. */
int  kmgr_keep(kmgr_t *km, int64_t until_s, char **conn_file);
/* execute_request; msg_id receives the request id (33 bytes). */
int  kmgr_execute(kmgr_t *km, const char *code, int stop_on_error, char *msg_id);
/* Send any request (content stolen) on a channel. */
int  kmgr_request(kmgr_t *km, enum kchan ch, const char *msg_type, json_t *content, char *msg_id);
/* Interrupt per the spec's interrupt_mode (SIGINT to the group, or message). */
int  kmgr_interrupt(kmgr_t *km);
/* Orderly stop as described above; grace_ms before SIGTERM. Idempotent. */
void kmgr_shutdown(kmgr_t *km, unsigned grace_ms);
/* Immediate SIGKILL of the group, then the stop sequence completes. */
void kmgr_kill(kmgr_t *km);
/* Hold iopub (kclient_hold_iopub): its messages are read in one go before
 * the next shell, control or stdin message, and before a death is
 * reported.  Only while ready; a no-op otherwise. */
void kmgr_hold_iopub(kmgr_t *km, int hold);
/* The kernel_info_reply content (borrowed), or NULL before ready. */
const json_t *kmgr_kernel_info(const kmgr_t *km);
/* Environment variables nbhub set for the kernel beyond its inherited ones
 * (kernelspec env after substitution, plus extra_env): borrowed object. */
const json_t *kmgr_env(const kmgr_t *km);
int  kmgr_pid(const kmgr_t *km);

#endif
