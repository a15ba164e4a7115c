/*
 * main — nbhub's entry point: a declarative subcommand table (tmux
 * cmd_entry style).  Adding a subcommand is one line here plus its cmd_*.c.
 */
#include "cli/cli.h"
#include "sched/sup.h"
#include "util/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NBHUB_VERSION
#define NBHUB_VERSION "0.1.0"
#endif

static const struct cli_cmd cli_cmds[] = {
    { "run",    "execute a notebook headlessly (papermill-compatible)", cmd_run },
    { "render", "render a notebook to a self-contained HTML file",      cmd_render },
    { "kernel", "Jupyter kernel specs: list, install-spark, remove",    cmd_kernel },
    { "spark",  "local Spark clusters: up, down, status, list",         cmd_spark },
    { "serve",  "run the daemon: scheduler, REST API, events",           cmd_serve },
    { "flow",   "manage flows on a server",                              cmd_flow },
    { "runs",   "inspect and control runs",                              cmd_runs },
    { "user",   "manage users and API tokens",                           cmd_user },
    { "login",  "log in with the server's single sign-on (device login)", cmd_login },
    { "server", "users' notebook servers: start, stop, list",           cmd_server },
    { "__kernel-exec", NULL, cmd_kernel_exec },   /* internal trampoline */
    { "__kernel-keep", NULL, cmd_kernel_keep },   /* internal: keeps a failed run's kernel (post-mortem) */
    { "__task-wrap",   NULL, sup_wrap_main },     /* internal: records a task's exit */
    { "__as-user",     NULL, cmd_asuser },        /* internal: a user's process under isolation: system */
    { "__spark-supervise", NULL, cmd_spark_supervise },   /* internal: keeps a cluster alive */
    { "__spark-task",  NULL, cmd_spark_task },    /* internal: the Spark side of a flow task */
};

static void main_usage(FILE *f)
{
    fprintf(f, "usage: nbhub <command> [options]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof cli_cmds / sizeof cli_cmds[0]; i++)
        if (cli_cmds[i].summary)
            fprintf(f, "  %-8s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    fprintf(f, "\nRun 'nbhub <command> --help' for a command's options and exit codes.\n");
}

int main(int argc, char **argv)
{
    const char *lvl = getenv("NBHUB_LOG");
    if (lvl && log_level_parse(lvl) >= 0) log_set_level(log_level_parse(lvl));
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        main_usage(stderr);
        return NB_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main_usage(stdout);
        return NB_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nbhub %s\n", NBHUB_VERSION);
        return NB_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cli_cmds / sizeof cli_cmds[0]; i++)
        if (strcmp(argv[1], cli_cmds[i].name) == 0)
            return cli_cmds[i].fn(argc - 1, argv + 1);
    cli_errorf("unknown command '%s'", argv[1]);
    main_usage(stderr);
    return NB_EXIT_USAGE;
}
