/*
 * sup — supervision of task child processes, surviving daemon restarts.
 *
 * Every task run executes as
 *
 *     nbhub __task-wrap STATUS_FILE -- ARGV...
 *
 * started detached (its own session and process group) with stdout and
 * stderr on the task's log file.  The wrapper forks ARGV, ignores SIGINT,
 * SIGTERM and SIGHUP itself, waits for the child and writes the child's end
 * ({"exit_code": N} or {"signal": N}) atomically to STATUS_FILE, then exits
 * with the same code.  Why a wrapper: the daemon may be killed (kill -9,
 * OOM, a deploy) while tasks run.  The tasks go on; a process that is not
 * our child cannot be waited for, so without the file the next daemon
 * could not tell success from failure.  With it, a restarted daemon reads
 * the file if the task ended meanwhile, or re-attaches to the wrapper —
 * found by pid plus its start time (/proc/PID/stat field 22, so a recycled
 * pid is not mistaken for it) — and reads the file when it exits.
 *
 * Stopping (timeout, cancel, daemon shutdown) signals the whole process
 * group: SIGINT first (nbhub run interrupts the kernel and saves the output
 * notebook), SIGTERM after 3 s, SIGKILL when the grace period ends.  The
 * wrapper outlives SIGINT/SIGTERM so the end is recorded.
 *
 * Ownership: sup_spawn/sup_attach give a sup_task_t owned by the caller;
 * the exit callback runs exactly once (unless sup_spawn/sup_attach failed),
 * after which the caller frees it with sup_free — from the callback or
 * later.  Before the exit callback it must not be freed.  One loop thread.
 */
#ifndef NBHUB_SUP_H
#define NBHUB_SUP_H
#include <stdint.h>
#include <uv.h>
#include "util/err.h"

typedef struct sup_task sup_task_t;

/* How a task process ended.  exit_code >= 0 when it exited, else
 * term_signal > 0; lost = 1 when nothing is known (a re-attached wrapper
 * died without writing its status file). */
typedef struct sup_end {
    int exit_code;
    int term_signal;
    int lost;
} sup_end_t;

typedef void (*sup_exit_fn)(sup_task_t *t, const sup_end_t *end, void *ud);

typedef struct sup_spawn_opts {
    const char  *self_exe;     /* the nbhub binary */
    char *const *argv;         /* the task's command, NULL-terminated */
    char *const *env;          /* NULL-terminated "K=V" list (the whole environment) */
    const char  *cwd;          /* NULL = inherit */
    const char  *log_path;     /* opened O_APPEND|O_CREAT, 0600: stdout and stderr */
    const char  *status_path;  /* removed before the start */
    int          direct;       /* argv writes status_path itself (`nbhub run
                                  --status-file`): no wrapper process, one
                                  exec less on the path of every task */
} sup_spawn_opts_t;

int  sup_spawn(uv_loop_t *loop, const sup_spawn_opts_t *o, sup_exit_fn cb, void *ud,
               sup_task_t **out, nb_err_t *err);

/* Re-attach to a wrapper started by an earlier daemon.  -ESRCH if no
 * process with that pid and start time exists (read the status file then:
 * sup_read_status). */
int  sup_attach(uv_loop_t *loop, int pid, int64_t start_time, const char *status_path,
                sup_exit_fn cb, void *ud, sup_task_t **out, nb_err_t *err);

/* The end recorded in a status file: 0, or -ENOENT when there is none
 * (or it is unreadable). */
int  sup_read_status(const char *status_path, sup_end_t *out);

int     sup_pid(const sup_task_t *t);
int64_t sup_start_time(const sup_task_t *t);

/* Start the stop sequence (idempotent): SIGINT to the group now, SIGTERM
 * after min(3 s, grace), SIGKILL after grace_ms. */
void sup_stop(sup_task_t *t, uint64_t grace_ms);

/* Free after the exit callback. */
void sup_free(sup_task_t *t);

/* Let go of a task that goes on running without us (nbhub serve stops, a
 * later one re-attaches with sup_attach): its handles close, the exit
 * callback will not run, and t is freed.  Nothing is signalled. */
void sup_detach(sup_task_t *t);

/* /proc/PID/stat field 22 (start time in clock ticks after boot), or 0. */
int64_t sup_proc_start_time(int pid);

/* `nbhub __task-wrap STATUS_FILE -- ARGV...`: the wrapper's main. */
int  sup_wrap_main(int argc, char **argv);

#endif
