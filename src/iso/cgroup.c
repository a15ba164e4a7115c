/* cgroup — see cgroup.h.  The directory of a group in one hierarchy is
 *
 *     <mount point> + (<own path from /proc/self/cgroup> - <mount root>) + "/" + rel
 *
 * where the mount root (mountinfo field 4) is not "/" inside containers
 * that mount only their own subtree. */
#include "iso/cgroup.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { H_MEMORY, H_CPU, H_PIDS, H_N };
static const char *const h_names[H_N] = { "memory", "cpu", "pids" };

static cgroup_kind_t g_kind = CGROUP_NONE;
static int g_found;                 /* layout read */
static char *g_dir[H_N];            /* v1: <mount>/<own> per controller; v2: all the same */

/* This process's path in the hierarchy whose /proc/self/cgroup line has
 * controllers ctl ("" = the v2 line "0::"). */
static char *own_path(const char *ctl)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return NULL;
    char line[4096], *res = NULL;
    while (!res && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctls = c1 + 1;
        if (!*ctl) {
            if (!*ctls && strncmp(line, "0", 1) == 0) res = xstrdup(c2 + 1);
            continue;
        }
        /* "cpu,cpuacct" holds "cpu" */
        char *copy = xstrdup(ctls), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (!strcmp(t, ctl)) res = xstrdup(c2 + 1);
        free(copy);
    }
    fclose(f);
    return res;
}

/* Mount point and root of the cgroup fs holding ctl (v1: fstype cgroup with
 * ctl among its options; ctl "" = the cgroup2 mount). */
static int find_mount(const char *ctl, char **point, char **root)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return -errno;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        /* id parent maj:min root point opts [tags] - fstype source superopts */
        char *dash = strstr(line, " - ");
        if (!dash) continue;
        char fstype[32], superopts[1024];
        if (sscanf(dash + 3, "%31s %*s %1023s", fstype, superopts) != 2) continue;
        char r[1024], p[1024];
        if (sscanf(line, "%*s %*s %*s %1023s %1023s", r, p) != 2) continue;
        if (!*ctl) {
            if (strcmp(fstype, "cgroup2")) continue;
        } else {
            if (strcmp(fstype, "cgroup")) continue;
            int has = 0;
            char *save = NULL;
            for (char *t = strtok_r(superopts, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (!strcmp(t, ctl)) has = 1;
            if (!has) continue;
        }
        *point = xstrdup(p);
        *root = xstrdup(r);
        found = 1;
    }
    fclose(f);
    return found ? 0 : -ENOENT;
}

/* <point> + (own - root) */
static char *hier_dir(const char *ctl)
{
    char *point = NULL, *root = NULL, *own = own_path(ctl), *res = NULL;
    if (own && find_mount(ctl, &point, &root) == 0) {
        const char *rest = own;
        size_t rl = strlen(root);
        if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0) rest = own + rl;
        /* v2: the daemon moved itself into <own>/nbhub-daemon (see probe). */
        char *trim = xstrdup(rest);
        size_t tl = strlen(trim);
        static const char leaf[] = "/nbhub-daemon";
        if (tl >= sizeof leaf - 1 && strcmp(trim + tl - (sizeof leaf - 1), leaf) == 0)
            trim[tl - (sizeof leaf - 1)] = 0;
        while (*trim && trim[strlen(trim) - 1] == '/') trim[strlen(trim) - 1] = 0;
        res = xasprintf("%s%s%s", point, *trim == '/' || !*trim ? "" : "/", trim);
        free(trim);
    }
    free(point);
    free(root);
    free(own);
    return res;
}

static int write_file(const char *dir, const char *file, const char *text)
{
    char *p = xasprintf("%s/%s", dir, file);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    if (fd < 0) return -errno;
    ssize_t w = write(fd, text, strlen(text));
    int e = w < 0 ? errno : 0;
    close(fd);
    return w < 0 ? -e : 0;
}

static int64_t read_key(const char *dir, const char *file, const char *key)
{
    char *p = xasprintf("%s/%s", dir, file);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ' ') v = strtoll(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Read the layout once per process. */
static void layout(void)
{
    if (g_found) return;
    g_found = 1;
    char *v2 = hier_dir("");
    if (v2) {
        char *ctl = xasprintf("%s/cgroup.controllers", v2);
        FILE *f = fopen(ctl, "re");
        char buf[512] = "";
        if (f) {
            if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
            fclose(f);
        }
        free(ctl);
        if (strstr(buf, "memory") && strstr(buf, "pids") && strstr(buf, "cpu")) {
            g_kind = CGROUP_V2;
            for (int i = 0; i < H_N; i++) g_dir[i] = xstrdup(v2);
        }
        free(v2);
        if (g_kind) return;
    }
    for (int i = 0; i < H_N; i++) g_dir[i] = hier_dir(h_names[i]);
    if (g_dir[H_MEMORY] && g_dir[H_CPU] && g_dir[H_PIDS]) g_kind = CGROUP_V1;
}

static char *group_dir(int h, const char *rel)
{
    return xasprintf("%s/%s", g_dir[h], rel);
}

/* The hierarchies a group lives in: one directory for v2, three for v1. */
static int nhier(void) { return g_kind == CGROUP_V2 ? 1 : H_N; }

int cgroup_setup(const char *rel, const iso_limits_t *lim, nb_err_t *err)
{
    layout();
    if (g_kind == CGROUP_NONE) return err_set(err, -ENOTSUP, "no usable cgroup hierarchy");
    for (int h = 0; h < nhier(); h++) {
        char *d = group_dir(h, rel);
        /* mkdir -p, enabling the controllers for the children on v2 */
        for (char *s = d + strlen(g_dir[h]) + 1;; s++) {
            if (*s != '/' && *s) continue;
            char c = *s;
            *s = 0;
            if (mkdir(d, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                err_set(err, -e, "%s: cannot create cgroup: %s", d, strerror(e));
                free(d);
                return -e;
            }
            if (g_kind == CGROUP_V2 && c == '/') write_file(d, "cgroup.subtree_control", "+memory +cpu +pids");
            *s = c;
            if (!c) break;
        }
        /* Every kind is written, a missing one as "no limit": a group made
         * earlier (the user's, which outlives its tasks) must not keep
         * limits the configuration no longer has. */
        int rc = 0;
        char num[64];
        if (h == H_MEMORY) {
            if (lim->memory) snprintf(num, sizeof num, "%lld", (long long)lim->memory);
            if (g_kind == CGROUP_V2) {
                rc = write_file(d, "memory.max", lim->memory ? num : "max");
                write_file(d, "memory.swap.max", lim->memory ? "0" : "max");   /* no escape into swap */
            } else {
                /* v1 keeps memsw >= memory at every step: raising writes memsw
                 * first, lowering memory first; writing memsw on both sides of
                 * memory does either (the failing write is the no-op one). */
                const char *v = lim->memory ? num : "-1";
                write_file(d, "memory.memsw.limit_in_bytes", v);
                rc = write_file(d, "memory.limit_in_bytes", v);
                write_file(d, "memory.memsw.limit_in_bytes", v);
            }
        }
        if (!rc && (g_kind == CGROUP_V2 || h == H_CPU)) {
            if (g_kind == CGROUP_V2) {
                if (lim->cpu_milli) snprintf(num, sizeof num, "%lld 100000", (long long)lim->cpu_milli * 100);
                rc = write_file(d, "cpu.max", lim->cpu_milli ? num : "max 100000");
            } else if (!(rc = write_file(d, "cpu.cfs_period_us", "100000"))) {
                snprintf(num, sizeof num, "%lld", lim->cpu_milli ? (long long)lim->cpu_milli * 100 : -1LL);
                rc = write_file(d, "cpu.cfs_quota_us", num);
            }
        }
        if (!rc && (g_kind == CGROUP_V2 || h == H_PIDS)) {
            if (lim->pids) snprintf(num, sizeof num, "%lld", (long long)lim->pids);
            rc = write_file(d, "pids.max", lim->pids ? num : "max");
        }
        if (rc) {
            err_set(err, rc, "%s: cannot set limits: %s", d, strerror(-rc));
            free(d);
            return rc;
        }
        free(d);
    }
    return 0;
}

int cgroup_enter(const char *rel, nb_err_t *err)
{
    layout();
    if (g_kind == CGROUP_NONE) return err_set(err, -ENOTSUP, "no usable cgroup hierarchy");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    for (int h = 0; h < nhier(); h++) {
        char *d = group_dir(h, rel);
        int rc = write_file(d, "cgroup.procs", pid);
        if (rc) err_set(err, rc, "%s: cannot enter cgroup: %s", d, strerror(-rc));
        free(d);
        if (rc) return rc;
    }
    return 0;
}

int cgroup_oom_kills(const char *rel, int64_t *n)
{
    layout();
    *n = 0;
    if (g_kind == CGROUP_NONE) return -ENOTSUP;
    char *d = group_dir(H_MEMORY, rel);
    int64_t v = g_kind == CGROUP_V2 ? read_key(d, "memory.events", "oom_kill")
                                    : read_key(d, "memory.oom_control", "oom_kill");
    free(d);
    if (v < 0) return -ENOENT;
    *n = v;
    return 0;
}

int cgroup_limit_hits(const char *rel, int64_t *n)
{
    layout();
    *n = 0;
    if (g_kind == CGROUP_NONE) return -ENOTSUP;
    char *d = group_dir(H_MEMORY, rel);
    int64_t v = -1;
    if (g_kind == CGROUP_V2) {
        v = read_key(d, "memory.events", "max");
    } else {
        /* memory.failcnt stays 0 on some kernels (seen here), but the peak
         * tells: a group whose own limit struck peaked at that limit; one
         * killed by an ancestor's limit peaked below its own. */
        static const char *const files[] = { "memory.max_usage_in_bytes", "memory.limit_in_bytes" };
        long long x[2] = { -1, -1 };
        for (int i = 0; i < 2; i++) {
            char *p = xasprintf("%s/%s", d, files[i]);
            FILE *f = fopen(p, "re");
            free(p);
            if (f) {
                if (fscanf(f, "%lld", &x[i]) != 1) x[i] = -1;
                fclose(f);
            }
        }
        if (x[0] >= 0 && x[1] > 0) v = x[0] >= x[1];
    }
    free(d);
    if (v < 0) return -ENOENT;
    *n = v;
    return 0;
}

/* SIGKILL every process listed in dir/cgroup.procs; 1 if any was listed. */
static int kill_procs(const char *dir)
{
    char *p = xasprintf("%s/cgroup.procs", dir);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f) return 0;
    int pid, any = 0;
    while (fscanf(f, "%d", &pid) == 1) {
        if (pid > 1 && pid != getpid()) kill(pid, SIGKILL);
        any = 1;
    }
    fclose(f);
    return any;
}

void cgroup_remove(const char *rel)
{
    layout();
    if (g_kind == CGROUP_NONE) return;
    for (int h = 0; h < nhier(); h++) {
        char *d = group_dir(h, rel);
        if (g_kind == CGROUP_V2 && write_file(d, "cgroup.kill", "1") == 0) {
            /* the kernel kills the whole subtree */
        } else {
            kill_procs(d);
        }
        /* A killed process leaves the group when it is reaped: a few tries. */
        for (int i = 0; i < 50 && rmdir(d) < 0 && errno == EBUSY; i++) usleep(2000);
        free(d);
    }
}

int cgroup_probe(cgroup_kind_t *kind, nb_err_t *err)
{
    *kind = CGROUP_NONE;
    if (geteuid() != 0) return err_set(err, -EPERM, "cgroups need nbhub serve to run as root");
    layout();
    if (g_kind == CGROUP_NONE)
        return err_set(err, -ENOTSUP, "no cgroup v2 with the memory, cpu and pids controllers, "
                                       "and no cgroup v1 memory, cpu and pids hierarchies");
    if (g_kind == CGROUP_V2) {
        /* "No internal processes": move ourselves into a leaf so that our
         * own group can hand its controllers down to nbhub/. */
        char *own = xstrdup(g_dir[0]);
        char *leaf = xasprintf("%s/nbhub-daemon", own);
        mkdir(leaf, 0755);
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        write_file(leaf, "cgroup.procs", pid);
        int rc = write_file(own, "cgroup.subtree_control", "+memory +cpu +pids");
        free(leaf);
        free(own);
        if (rc) return err_set(err, rc, "%s: cannot delegate controllers: %s", g_dir[0], strerror(-rc));
    }
    char rel[64];
    snprintf(rel, sizeof rel, "nbhub/probe-%d", (int)getpid());
    iso_limits_t l = { 64LL << 20, 1000, 64 };
    int rc = cgroup_setup(rel, &l, err);
    cgroup_remove(rel);
    if (rc < 0) return rc;
    *kind = g_kind;
    return 0;
}
