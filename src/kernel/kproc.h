/*
 * kproc — a kernel process: spawn, signal its process group, observe exit.
 *
 * The kernel runs in its own session/process group (setsid via libuv's
 * UV_PROCESS_DETACHED) so that an interrupt (SIGINT) or a kill reaches the
 * kernel and everything it started, and a Ctrl-C in our terminal does not.
 * It is started through `nbhub __kernel-exec PPID -- argv...`, which sets
 * PR_SET_PDEATHSIG=SIGKILL before exec'ing the kernel: if nbhub is killed
 * with SIGKILL, the kernel dies with it (no orphans).  JPY_PARENT_PID is
 * also set, so ipykernel's own parent poller would notice too.
 *
 * Exit is observed through libuv's SIGCHLD handling: the exit callback runs
 * on the loop the moment the kernel dies, whatever the cell is doing.
 */
#ifndef NBHUB_KPROC_H
#define NBHUB_KPROC_H

#include <stdint.h>
#include <uv.h>
#include "util/err.h"

typedef struct kproc kproc_t;
typedef void (*kproc_exit_cb)(kproc_t *p, int64_t status, int term_signal, void *ud);

/* Spawn argv with env ("K=V" list) in cwd (NULL = inherit).  The child's
 * stdout and stderr go to our stderr.  exit_cb is called once on exit. */
int kproc_spawn(uv_loop_t *loop, char *const *argv, char *const *env, const char *cwd,
                kproc_exit_cb exit_cb, void *ud, kproc_t **out, nb_err_t *err);
/* The same through `nbhub __kernel-keep PPID CONN_DIR -- argv` (see
 * src/cli/cmd_kernel_keep.c): a keeper process between us and the kernel,
 * so that kproc_keep can leave the kernel running after we exit.  Until
 * then it behaves as kproc_spawn's child (the pid is the keeper's; it
 * leads the group and exits the way the kernel did). */
int kproc_spawn_keeper(uv_loop_t *loop, char *const *argv, char *const *env, const char *cwd,
                       const char *conn_dir, kproc_exit_cb exit_cb, void *ud, kproc_t **out,
                       nb_err_t *err);
/* Hand a keeper's kernel over to the keeper until until_s (Unix seconds):
 * it stops the kernel then (or on SIGTERM) and removes conn_dir.  Our
 * handle is closed without a kill and p is freed; exit_cb is not called.
 * -ESRCH if p has no keeper or has exited, -EPIPE if the keeper is gone. */
int kproc_keep(kproc_t *p, int64_t until_s);
/* Signal the whole process group (falls back to the pid). 0 or -errno. */
int kproc_signal_group(kproc_t *p, int sig);
int kproc_pid(const kproc_t *p);
int kproc_exited(const kproc_t *p);
/* Release: if still running, SIGKILL the group first.  Frees after libuv's
 * close callback. */
void kproc_close(kproc_t *p);

/* Path of our own executable (for the __kernel-exec trampoline). */
const char *kproc_self_exe(void);

#endif
