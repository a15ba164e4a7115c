/*
 * cmd_kernel_keep — `nbhub __kernel-keep PPID CONNDIR -- ARGV...` (internal).
 *
 * The kernel's parent when `nbhub run --keep-kernel-on-error` (or a flow
 * task's post_mortem) may keep it after a failed cell.  __kernel-exec ties
 * the kernel to nbhub run with PDEATHSIG, so it cannot outlive the run; a
 * kernel started without that tie could be orphaned by a kill -9 of the
 * run.  The keeper is the middle: it is nbhub run's child (PDEATHSIG-free,
 * but it watches fd 3, a pipe whose write end only nbhub run holds) and the
 * kernel's parent (the kernel has PDEATHSIG=SIGKILL on the keeper).
 *
 *   - fd 3 reads "keep UNTIL\n" (UNTIL: Unix seconds): nbhub run is letting
 *     go of a kernel it wants kept.  Until then EOF on fd 3 means the run
 *     died or dropped the kernel: CONNDIR is removed and the whole group
 *     killed at once.
 *   - kept: the keeper stops the kernel at UNTIL (SIGTERM, SIGKILL to the
 *     group 2 s later), or earlier on SIGTERM to itself (the daemon's
 *     DELETE, its exit, a retry, or `kill PID`); then removes CONNDIR (the
 *     connection file and the ipc sockets) and exits.
 *   - the kernel's stdout and stderr come through a pipe and are copied to
 *     ours — until it is kept: then to /dev/null, unless our stderr is a
 *     regular file (a flow task's log), so that nothing nbhub run's caller
 *     waits on (a pipe) stays open behind it.
 *   - the keeper exits the way the kernel did (same code, or the same
 *     signal), so nbhub run's kernel supervision sees no difference.
 *
 * It leads the kernel's process group (libuv made it a session leader):
 * SIGINT to the group is the kernel's interrupt and is ignored here, and a
 * SIGKILL to the group ends both.  Everything stays under the limits,
 * cgroup and account of the run that started it.
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEP_CTL_FD 3

static int64_t keep_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CONNDIR holds the connection file and the ipc sockets, nothing else
 * (kconn made it 0700 for this kernel): its entries, then itself. */
static void keep_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(dir);
}

static void keep_copy(int from, int to)
{
    char buf[8192];
    ssize_t n = read(from, buf, sizeof buf);
    if (n > 0 && to >= 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w <= 0) break;
            off += w;
        }
    }
}

int cmd_kernel_keep(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        cli_errorf("__kernel-keep: internal command, usage: __kernel-keep PPID CONNDIR -- ARGV...");
        return NB_EXIT_USAGE;
    }
    long ppid = strtol(argv[1], NULL, 10);
    const char *conndir = argv[2];
    if ((long)getppid() != ppid) _exit(127);   /* nbhub run already gone */

    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    int out[2];
    if (sfd < 0 || pipe2(out, O_CLOEXEC) < 0) {
        cli_errorf("__kernel-keep: %s", strerror(errno));
        return 127;
    }
    fcntl(KEEP_CTL_FD, F_SETFD, FD_CLOEXEC);
    pid_t self = getpid();
    pid_t kid = fork();
    if (kid < 0) {
        cli_errorf("__kernel-keep: fork: %s", strerror(errno));
        return 127;
    }
    if (kid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != self) _exit(127);
        dup2(out[1], 1);
        dup2(out[1], 2);
        sigprocmask(SIG_SETMASK, &old, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[4], argv + 4);
        dprintf(2, "nbhub: cannot execute kernel '%s': %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    int to = 2;             /* where the kernel's output goes */
    int kept = 0, ctl_open = 1, out_open = 1;
    int64_t until_ms = 0, kill_at_ms = 0;
    int status = 0, reaped = 0;
    char line[64];
    size_t nline = 0;
    while (!reaped) {
        struct pollfd p[3] = { { sfd, POLLIN, 0 }, { out_open ? out[0] : -1, POLLIN, 0 },
                               { ctl_open ? KEEP_CTL_FD : -1, POLLIN, 0 } };
        int timeout = -1;
        int64_t next = kill_at_ms ? kill_at_ms : (kept ? until_ms : 0);
        if (next) {
            int64_t left = next - keep_now_ms();
            timeout = left < 0 ? 0 : (left > 60000 ? 60000 : (int)left);
        }
        int n = poll(p, 3, timeout);
        if (n < 0 && errno != EINTR) break;
        int64_t now = keep_now_ms();
        if (kill_at_ms && now >= kill_at_ms) {
            kill(0, SIGKILL);   /* the group: the kernel, what it started, and us */
        } else if (kept && !kill_at_ms && now >= until_ms) {
            kill(kid, SIGTERM);
            kill_at_ms = now + 2000;
        }
        if (n <= 0) continue;
        if (p[1].revents) {
            if (p[1].revents & POLLIN) keep_copy(out[0], to);
            else out_open = 0;
        }
        if (p[2].revents) {
            ssize_t r = read(KEEP_CTL_FD, line + nline, sizeof line - 1 - nline);
            if (r > 0) {
                nline += (size_t)r;
                line[nline] = '\0';
                long long until;
                if (strchr(line, '\n') && sscanf(line, "keep %lld", &until) == 1) {
                    kept = 1;
                    until_ms = until * 1000;
                    struct stat st;
                    if (fstat(2, &st) < 0 || !S_ISREG(st.st_mode)) {
                        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                        if (nul >= 0) {
                            dup2(nul, 0);
                            dup2(nul, 1);
                            dup2(nul, 2);
                            close(nul);
                        }
                        to = -1;
                    }
                }
                if (nline >= sizeof line - 1) nline = 0;
            } else {
                ctl_open = 0;
                close(KEEP_CTL_FD);
                if (!kept) {
                    /* The run died (even kill -9) or let the kernel go unkept:
                     * nothing may outlive it, its connection file included. */
                    keep_remove_dir(conndir);
                    kill(0, SIGKILL);
                }
            }
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGTERM && !kill_at_ms) {
                    /* Ours, or the group's: the kernel gets one too either way. */
                    kill(kid, SIGTERM);
                    kill_at_ms = now + 2000;
                }
                /* SIGINT: the kernel's interrupt; SIGHUP: no terminal here. */
            }
            if (waitpid(kid, &status, WNOHANG) == kid) reaped = 1;
        }
    }
    while (out_open) {
        struct pollfd p = { out[0], POLLIN, 0 };
        if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) break;
        char buf[8192];
        ssize_t r = read(out[0], buf, sizeof buf);
        if (r <= 0) break;
        if (to >= 0 && write(to, buf, (size_t)r) < 0) break;
    }
    if (kept) {
        /* Nobody waits for us now: the connection file goes, and what the
         * kernel started goes with it (the group: us included). */
        keep_remove_dir(conndir);
        kill(0, SIGKILL);
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
