/*
 * spawner — how a notebook server is started, watched, stopped and found
 * again: the interface of a hub backend (DESIGN.md section 7).  The local
 * backend (spawn_local.c) runs a process on this machine; the SSH and
 * Kubernetes backends will implement the same operations.
 *
 * What a backend gives the hub:
 *   - address: where the server must listen and the proxy will connect
 *     (local: 127.0.0.1 and a free port; a remote backend: a forwarded
 *     port, a pod IP), chosen before the command and environment are built
 *     since both name it;
 *   - start: the process is launched (asynchronously for remote ones);
 *     readiness is the hub's business (an HTTP poll of the server's /api,
 *     the same for every backend);
 *   - identity: what the store keeps to re-find the server after nbhub
 *     restarts (local: pid + /proc start time; others: backend_state JSON);
 *   - adopt: from that identity, supervise it again, or -ESRCH if it is gone;
 *   - exit: reported once through the callback, whether the process was
 *     started by this nbhub or adopted;
 *   - stop: graceful (SIGTERM or the backend's delete), then forced after a
 *     grace, for everything the server started (process group, process
 *     tree, cgroup, pod);
 *   - memory: what the server uses now (bytes), for the admin's page.
 *
 * Ownership: a spawn_proc_t belongs to the hub from start/adopt until
 * free.  Freed after the exit callback ran (or from it), or before: then
 * the process is abandoned, not stopped (nbhub exits and a later one
 * adopts it), and the callback never runs.
 * Strings in a spawn_spec_t are borrowed for the call; an identity's
 * backend_state is a new string (free it).  One loop thread.
 */
#ifndef NBHUB_HUB_SPAWNER_H
#define NBHUB_HUB_SPAWNER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/err.h"

typedef struct spawn_proc spawn_proc_t;

/* The process ended: exit_code >= 0, or term_signal > 0, or both -1/0
 * when nothing is known (an adopted process: not our child). */
typedef void (*spawn_exit_fn)(spawn_proc_t *p, int exit_code, int term_signal, void *ud);

typedef struct spawn_spec {
    char *const *argv;         /* NULL-terminated; argv[0] looked up in PATH of env */
    char *const *env;          /* the whole environment, "K=V", NULL-terminated */
    const char  *cwd;          /* NULL = inherit (isolation: system: the trampoline's --cwd) */
    const char  *log_path;     /* stdout + stderr, appended */
    int64_t      log_max;      /* rotated to log_path.1 when it grows past this */
    const char  *cgroup;       /* the cgroup the server runs in (relative name), or NULL */
} spawn_spec_t;

typedef struct spawn_identity {
    char    host[64];
    int     port;
    int     pid;
    int64_t start_time;        /* /proc/PID/stat field 22 */
    char   *backend_state;     /* JSON or NULL */
} spawn_identity_t;

typedef struct spawner_ops {
    const char *name;          /* servers.backend: "local" */
    int  (*address)(char *host, size_t n, int *port, nb_err_t *err);
    int  (*start)(uv_loop_t *loop, const spawn_spec_t *spec, spawn_exit_fn cb, void *ud,
                  spawn_proc_t **out, nb_err_t *err);
    int  (*adopt)(uv_loop_t *loop, const spawn_identity_t *id, const char *log_path, int64_t log_max,
                  const char *cgroup, spawn_exit_fn cb, void *ud, spawn_proc_t **out, nb_err_t *err);
    void (*identity)(const spawn_proc_t *p, spawn_identity_t *out);
    /* Called every 2 s by the hub: log rotation, liveness of adopted ones. */
    void (*tick)(spawn_proc_t *p);
    void (*stop)(spawn_proc_t *p, uint64_t grace_ms);
    int64_t (*memory)(const spawn_proc_t *p);   /* bytes, -1 = unknown */
    void (*free)(spawn_proc_t *p);
} spawner_ops_t;

extern const spawner_ops_t spawn_local_ops;

/* The local backend's helpers, exposed for tests. */
/* A free TCP port on 127.0.0.1 (bound and released): 0 or -errno. */
int     spawn_local_free_port(int *port, nb_err_t *err);
/* Sum of the RSS of pid and all its descendants (bytes), -1 if pid is gone. */
int64_t spawn_local_tree_rss(int pid);

#endif
