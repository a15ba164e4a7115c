/*
 * cli — the subcommand table and the exit codes every subcommand shares.
 *
 * Each subcommand is a function cmd_NAME(argc, argv) (argv[0] is the
 * subcommand name) returning an exit code from the table below.  --help goes
 * to stdout with exit 0; misuse goes to stderr with exit 2 (the jq habit).
 */
#ifndef NBHUB_CLI_H
#define NBHUB_CLI_H

#include <jansson.h>
#include <signal.h>

enum nb_exit {
    NB_EXIT_OK           = 0,   /* success */
    NB_EXIT_FAILED       = 1,   /* a cell raised an error; OUT records it */
    NB_EXIT_USAGE        = 2,   /* bad command line */
    NB_EXIT_INPUT        = 3,   /* input notebook or parameters unreadable/invalid */
    NB_EXIT_KERNEL       = 4,   /* unknown kernel, or kernel failed to start in time */
    NB_EXIT_KERNEL_DIED  = 5,   /* the kernel died during the run */
    NB_EXIT_TIMEOUT      = 6,   /* a cell hit --execution-timeout or the run hit --deadline */
    NB_EXIT_OUTPUT       = 7,   /* OUT could not be written */
    NB_EXIT_SIGINT       = 130, /* interrupted by Ctrl-C (OUT saved as failed) */
    NB_EXIT_SIGTERM      = 143, /* terminated by SIGTERM (OUT saved as failed) */
};

/* The exit-code table as printed in --help (one line per code). */
extern const char cli_exit_codes_help[];

struct cli_cmd {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
};

int cmd_run(int argc, char **argv);
int cmd_kernel(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_render(int argc, char **argv);
/* Clients of the REST API (cmd_flow.c, cmd_runs.c, cmd_user.c); their exit
 * codes are client.h's enum client_exit. */
int cmd_flow(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_user(int argc, char **argv);
/* cmd_login.c: `nbhub login --server URL` (device login with the server's SSO provider). */
int cmd_login(int argc, char **argv);
int cmd_asuser(int argc, char **argv);
/* cmd_kernel_spark.c: `nbhub kernel install-spark` and `remove`. */
int cmd_kernel_install_spark(int argc, char **argv);
int cmd_kernel_remove(int argc, char **argv);
extern const char cmd_kernel_install_spark_usage[], cmd_kernel_remove_usage[];
int cmd_kernel_spark_locate(const char *python, const char *home_opt, char **py_out, char **home_out,
                            char **py4j_out);
/* cmd_spark_k8s.c: `nbhub spark render-k8s` (argv[0] = "render-k8s"). */
int cmd_spark_render_k8s(int argc, char **argv);
/* render-k8s flow FILE: the manifests of a flow's Spark tasks, with cli's
 * options (cmd_spark_k8s_flow.c); an exit code, *docs new on 0. */
struct sk8s_opts;
#include <jansson.h>
int cmd_spark_k8s_flow(const char *file, const struct sk8s_opts *cli, json_t **docs);
/* cmd_spark.c: `nbhub spark up|down|status|list` and the hidden supervisor. */
int cmd_kernel_spark_java(void);   /* 1 if a java is found (JAVA_HOME, PATH) */
/* $NBHUB_HOME, else $XDG_DATA_HOME/nbhub, else ~/.local/share/nbhub (new string). */
char *cli_default_home(void);
/* This binary's path (/proc/self/exe), else argv0 (new string). */
char *cli_self_exe(const char *argv0);
int cmd_spark(int argc, char **argv);
/* cmd_server.c: `nbhub server start|stop|list` (the hub's notebook servers). */
int cmd_server(int argc, char **argv);
int cmd_spark_supervise(int argc, char **argv);
/* Shared with cmd_spark_task.c (an ephemeral cluster of a flow task).
 * cmd_spark_start: take DIR's claim (scluster_lock; lock_fd: one handed
 * down to us, else -1; exit 5 if another holds it or a supervisor of the
 * old layout runs there), write cfg as DIR/config.json,
 * start the supervisor (which inherits the claim) in its own session (tied: it dies with this process,
 * PR_SET_PDEATHSIG) and wait up to timeout_s for every worker; 0 with the
 * supervisor's pid and state (new reference), else an exit code of `nbhub
 * spark up` after printing why.  Setting cmd_spark_stop_requested (from a
 * signal handler) ends the wait.  cmd_spark_stop: SIGTERM, wait (30 s),
 * SIGKILL; 0 when gone.  cmd_spark_locate: Java, then Python and Spark as for
 * install-spark; 0 or exit code 4 (3 for a bad option) after printing why. */
int cmd_spark_start(const char *dir, json_t *cfg, int tied, int timeout_s, int lock_fd, int *pid, json_t **state);
int cmd_spark_stop(int pid);
int cmd_spark_locate(const char *python, const char *spark_home, char **py, char **home, char **py4j);
extern volatile sig_atomic_t cmd_spark_stop_requested;
int cmd_spark_task(int argc, char **argv);
/* Hidden helper: exec a kernel with PR_SET_PDEATHSIG so it dies with us. */
int cmd_kernel_exec(int argc, char **argv);
int cmd_kernel_keep(int argc, char **argv);

/* Print "nbhub: <msg>" to stderr. */
/* The text of the last cli_errorf (for a command that records why it failed). */
extern char cli_last_error[512];
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
