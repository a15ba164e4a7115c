/*
 * pool — warm kernels, so a task does not wait for a kernel to start.
 *
 * For each kernel spec the pool keeps `size` kernels started and ready
 * (kernel_info answered).  A task takes one (pool_take), the kernel is lent
 * to the task's child process (`nbhub run --existing-kernel FILE
 * --kernel-pid PID`), and the pool keeps supervising the
 * process: when the task is done (pool_return) or the kernel dies, it is
 * stopped and a replacement starts in the background.  A kernel serves one
 * task run only — no state leaks from one run into the next.
 *
 * What a pooled kernel cannot have: per-task environment variables or
 * working directory (it was started before the task was known).  Tasks that
 * set them start their own kernel; so does any task when the pool is empty
 * (pool_take returns -EAGAIN and never blocks).
 *
 * A spec whose kernels fail to start is retried with backoff (1 s doubling
 * to 60 s), never in a hot loop.
 *
 * Ownership: the pool owns every kernel; a pool_kernel_t from pool_take is
 * valid until pool_return.  Runs on one libuv loop, single-threaded.
 */
#ifndef NBHUB_POOL_H
#define NBHUB_POOL_H

#include <uv.h>
#include "util/err.h"

typedef struct pool pool_t;
typedef struct pool_kernel pool_kernel_t;

pool_t *pool_new(uv_loop_t *loop);
/* Keep `size` ready kernels of the named spec (0 stops keeping any).
 * Unknown spec -> -ENOENT with a message. */
int  pool_set_size(pool_t *p, const char *kernel_name, unsigned size, nb_err_t *err);
/* A ready kernel, now: 0, or -EAGAIN if none is ready. */
int  pool_take(pool_t *p, const char *kernel_name, pool_kernel_t **out);
const char *pool_kernel_conn(const pool_kernel_t *k);
int  pool_kernel_pid(const pool_kernel_t *k);
/* The borrower is done with it (its process has exited): the kernel is
 * asked to shut down (shutdown_request), SIGTERM if it has not exited 3 s
 * later, SIGKILL 2 s after that.  pool_close stops idle kernels the same
 * way. */
void pool_return(pool_t *p, pool_kernel_t *k);
/* Ready kernels of a spec (for /metrics and tests). */
unsigned pool_ready(const pool_t *p, const char *kernel_name);
/* Stop every kernel; done(ud) once all are gone, then the pool is freed. */
void pool_close(pool_t *p, void (*done)(void *ud), void *ud);

#endif
