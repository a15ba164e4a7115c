/*
 * cgroup — resource limits enforced by the kernel's control groups.
 *
 * nbhub's groups live below the daemon's own cgroup in each hierarchy (the
 * way systemd delegates a subtree to a service), so whatever limits the
 * machine puts on nbhub also bound its users:
 *
 *     <own>/nbhub/u-<user>/            the user's limits (all their tasks together)
 *     <own>/nbhub/u-<user>/<leaf>/     one task try: the task's own limits (the
 *                                      user's group bounds it too; its CPU quota
 *                                      is kept within the user's)
 *
 * Two layouts are spoken:
 *   - v2 (unified, /sys/fs/cgroup with "memory" in cgroup.controllers):
 *     memory.max + memory.swap.max 0, cpu.max, pids.max; memory.events's
 *     oom_kill counts kills.  A v2 group with processes cannot hand
 *     controllers to children, so the daemon first moves itself into
 *     <own>/nbhub-daemon (cgroup_probe).
 *   - v1 (separate memory, cpu and pids hierarchies — what this kind of
 *     machine mounts): memory.limit_in_bytes (+ memsw when swap is
 *     accounted), cpu.cfs_quota_us over a 100 ms period, pids.max;
 *     memory.oom_control's oom_kill counts kills.
 * Anything else (no cgroup fs, not root, a read-only mount) is "none", and
 * nbhub serve refuses limits at start with the reason instead of ignoring
 * them.
 *
 * The group of a task is created and entered by the task's own wrapper
 * (`nbhub __as-user`, as root, before it drops privileges and execs), so
 * every process of the task is in it from its first instruction; the daemon
 * reads the kill count when the task has ended and removes the group.
 * Paths are relative names such as "nbhub/u-alice/r42-t3-1"; they are
 * built by the caller from checked names (no "/", no "..").
 * Blocking file I/O on /sys (microseconds).  No state but the probed kind.
 */
#ifndef NBHUB_ISO_CGROUP_H
#define NBHUB_ISO_CGROUP_H
#include <stdint.h>
#include "iso/limits.h"
#include "util/err.h"

typedef enum { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 } cgroup_kind_t;

/* Find out whether limits can be enforced here (creates and removes a test
 * group).  0 with *kind set, or a negative errno with why in err. */
int  cgroup_probe(cgroup_kind_t *kind, nb_err_t *err);
/* Create rel (and its parents, without limits of their own unless they
 * exist already) and set lim on rel itself; 0 or -errno. */
int  cgroup_setup(const char *rel, const iso_limits_t *lim, nb_err_t *err);
/* Move the calling process into rel. */
int  cgroup_enter(const char *rel, nb_err_t *err);
/* How many processes the kernel's OOM killer ended in rel (v1: in rel
 * itself, whichever ancestor's limit was hit; v2: in rel and below). */
int  cgroup_oom_kills(const char *rel, int64_t *n);
/* Whether (how often, on v2) rel's own memory limit was reached: v2
 * memory.events max; v1 1 if the peak usage reached the limit (its failcnt
 * is not kept by every kernel).  Tells the task's limit from an ancestor's. */
int  cgroup_limit_hits(const char *rel, int64_t *n);
/* SIGKILL what is left in rel and remove it; quiet, best effort. */
void cgroup_remove(const char *rel);

#endif
