/*
 * nbexec — execute a notebook on a kernel, the way papermill + nbclient do.
 *
 * One libuv loop drives everything: the kernel's sockets, its process, the
 * per-cell and whole-run timers, SIGINT/SIGTERM, and the periodic writer.
 * Cells run in order; a cell is finished when BOTH its execute_reply (shell)
 * and the idle status with its msg id (iopub) have arrived — outputs can
 * trail the reply.
 *
 * Metadata written is papermill's: metadata.papermill {start_time, end_time,
 * duration, exception, ...} on the notebook, {status, start_time, end_time,
 * duration, exception} on every cell (pending -> running -> completed |
 * failed), and nbclient's metadata.execution timestamps.  On a failure the
 * notebook gets papermill's error banner at the top and an anchor cell
 * before the failing cell, both tagged papermill-error-cell-tag.
 *
 * Failures and what the cell shows:
 *   cell raised            -> the kernel's error output; exit 1
 *   kernel died            -> DeadKernelError output;      exit 5
 *   --execution-timeout    -> interrupt; CellTimeoutError; kernel killed if
 *                             it ignores the interrupt;    exit 6
 *   --deadline             -> same, RunDeadlineError;      exit 6
 *   SIGINT / SIGTERM       -> interrupt, error output, kernel shut down,
 *                             OUT saved as failed;         exit 130 / 143
 */
#ifndef NBHUB_NBEXEC_H
#define NBHUB_NBEXEC_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include "kernel/kspec.h"
#include "util/err.h"

struct nbexec_opts {
    const char *input_path;       /* for metadata only */
    const char *output_path;      /* NULL = do not write; "-" = stdout at the end */
    const char *cwd;
    double      exec_timeout_s;   /* per cell, 0 = none */
    double      deadline_s;       /* whole run, 0 = none */
    double      start_timeout_s;  /* kernel start, 0 = 60 */
    size_t      max_output_bytes; /* per cell, 0 = unlimited */
    unsigned    write_interval_ms;/* OUT refresh while running, 0 = 1000 */
    int         log_output;       /* stream outputs to stderr */
    int         progress;         /* progress bar on stderr */
    int         tcp;              /* tcp transport instead of ipc */
    char *const *kernel_env;      /* "K=V" pairs that win over the kernel spec's env, may be NULL */
    const char *existing_kernel;  /* attach to this connection file instead of starting one */
    int         kernel_pid;       /* its pid if known (death via pidfd; signals) */
    int         shutdown_kernel;  /* ask the attached kernel to exit at the end */
    int         keep_history;     /* IPython kernels write their history file (default: in memory) */
    double      keep_kernel_s;    /* post-mortem: on a cell error keep the kernel this long (needs kept) */
    struct nbexec_kept *kept;     /* filled in when the kernel was kept */
};

/* A kernel kept after a cell error (kmgr_keep): its keeper stops it at
 * until_s.  conn_file is fresh (the caller frees it); NULL if not kept. */
struct nbexec_kept {
    char   *conn_file;
    int     pid;          /* the keeper's, leading the kernel's process group */
    int64_t until_s;
};

/* Execute nb (modified in place: outputs, metadata, banners) on spec (NULL
 * when o->existing_kernel is set) and
 * write output_path as configured.  Returns an NB_EXIT_* code (cli.h);
 * err holds the reason for codes other than 0 and 1.  SIGINT and SIGTERM
 * are handled while it runs and stay blocked after it returns (the outcome
 * is decided; the caller is about to exit with it). */
int nbexec_run(json_t *nb, const kspec_t *spec, const struct nbexec_opts *o, nb_err_t *err);

/* Papermill's notebook preparation without executing (used by
 * --prepare-only too): metadata.papermill defaults, input/output paths,
 * cell metadata reset, error-marker cells removed, ids for nbformat 4.5. */
void nbexec_prepare(json_t *nb, const struct nbexec_opts *o);

#endif
