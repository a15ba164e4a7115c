/* cli — shared helpers for subcommands; see cli.h. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>

const char cli_exit_codes_help[] =
    "Exit codes:\n"
    "  0    success\n"
    "  1    a cell raised an error (the output notebook records it)\n"
    "  2    usage error (bad command line)\n"
    "  3    input error: notebook or parameters missing, invalid JSON/YAML, unsupported nbformat\n"
    "  4    kernel error: unknown kernel, or the kernel did not become ready in time\n"
    "  5    the kernel died during the run\n"
    "  6    timeout: a cell exceeded --execution-timeout or the run exceeded --deadline\n"
    "  7    the output notebook could not be written\n"
    "  130  interrupted by SIGINT (Ctrl-C); 143 terminated by SIGTERM\n";

char cli_last_error[512];

void cli_errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli_last_error, sizeof cli_last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nbhub: %s\n", cli_last_error);
}
