/*
 * cmd_kernel_exec — `nbhub __kernel-exec PPID -- ARGV...` (internal).
 *
 * A trampoline between fork and the kernel's exec: libuv gives us no hook to
 * run code in the child, so the child is nbhub itself, which asks the kernel
 * (Linux) to SIGKILL it when its parent dies, checks the parent did not die
 * in the meantime, and exec's the real kernel.  PDEATHSIG survives execve.
 */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int cmd_kernel_exec(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        cli_errorf("__kernel-exec: internal command, usage: __kernel-exec PPID -- ARGV...");
        return NB_EXIT_USAGE;
    }
    long ppid = strtol(argv[1], NULL, 10);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if ((long)getppid() != ppid) _exit(127);   /* parent already gone */
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[3], argv + 3);
    cli_errorf("cannot execute kernel '%s': %s", argv[3], strerror(errno));
    return 127;
}
