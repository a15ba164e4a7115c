/*
 * cmd_runs — `nbhub runs SUBCOMMAND`: runs and their tasks on a running
 * `nbhub serve`, through the REST API (client.h).
 *
 * A run is named by its numeric id (the "ID" column of `runs list`, the
 * `id` of the JSON), not by its run_id text ("scheduled__2026-..."), which
 * is only unique within one flow.  A task is named by the run id and the
 * task's name in the flow.
 *
 * logs and output pass the server's bytes through untouched (a log is the
 * task's own stdout/stderr; a notebook must stay byte-exact JSON), unlike
 * the tables, which sanitise.  `output -o FILE` writes atomically
 * (fs_write_atomic), so a reader of FILE sees the previous notebook or the
 * new one, never half of one, and a failed download leaves FILE as it was.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_runs_list(int argc, char **argv);
static int cmd_runs_show(int argc, char **argv);
static int cmd_runs_logs(int argc, char **argv);
static int cmd_runs_cancel(int argc, char **argv);
static int cmd_runs_output(int argc, char **argv);
static int cmd_runs_debug(int argc, char **argv);

static const char cmd_runs_help[] =
    "Inspect and control the runs of an nbhub server.  A run is named by its\n"
    "numeric ID (first column of `nbhub runs list`).\n";

#define CMD_RUNS_OPTS \
    CLIENT_OPTS_HELP \
    "  -h, --help     show this help\n"

static const char cmd_runs_list_usage[] =
    "usage: nbhub runs list [--flow NAME] [--state STATE] [--limit N] [--before ID] [--json]\n"
    "\n"
    "List runs, newest first.  When more runs exist than were shown, a hint on\n"
    "stderr gives the --before value that shows the next page.\n"
    "\n"
    "Options:\n"
    "  --flow NAME    only the runs of this flow\n"
    "  --state STATE  only runs in this state: queued, running, success, failed,\n"
    "                 cancelled\n"
    "  --limit N      at most N runs (1..1000; default: the server's, 100)\n"
    "  --before ID    only runs older than run ID (the next page)\n"
    "  --json         print the server's answer as JSON (`next` is the next --before)\n"
    CMD_RUNS_OPTS;

static const char cmd_runs_show_usage[] =
    "usage: nbhub runs show ID [--json]\n"
    "\n"
    "Show one run and the state of each of its tasks.\n"
    "\n"
    "Options:\n"
    "  --json         print the server's answer as JSON\n"
    CMD_RUNS_OPTS;

static const char cmd_runs_logs_usage[] =
    "usage: nbhub runs logs ID TASK [--tail BYTES]\n"
    "\n"
    "Print a task's log (its stdout and stderr) as it is now, also while it runs.\n"
    "\n"
    "Options:\n"
    "  --tail BYTES   only the last BYTES bytes\n"
    CMD_RUNS_OPTS;

static const char cmd_runs_cancel_usage[] =
    "usage: nbhub runs cancel ID [--task TASK] [--json]\n"
    "\n"
    "Cancel a queued or running run (and its unfinished tasks), or with --task\n"
    "only one task: it is interrupted, then stopped, and ends failed with the\n"
    "error \"cancelled\" (no retry); its dependents follow their trigger rules.\n"
    "Cancelling a finished run is a conflict (exit 6).\n"
    "\n"
    "Options:\n"
    "  --task TASK    cancel only this task\n"
    "  --json         print the run (or task) as JSON\n"
    CMD_RUNS_OPTS;

static const char cmd_runs_output_usage[] =
    "usage: nbhub runs output ID TASK [-o FILE]\n"
    "\n"
    "Download the output notebook of a notebook task (as it is now, also while it\n"
    "runs) to stdout, or to FILE, replaced atomically.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE  write to FILE instead of stdout\n"
    CMD_RUNS_OPTS;

static const char cmd_runs_debug_usage[] =
    "usage: nbhub runs debug ID TASK [--print] [--end]\n"
    "\n"
    "Open a console on the kernel kept after TASK of run ID failed (a notebook\n"
    "task with `post_mortem:`): its variables are as the failing cell left them.\n"
    "Runs `jupyter console --existing FILE` when jupyter-console is installed and\n"
    "the connection file is readable here (it is the task's account's alone: run\n"
    "this as that user, on the server's machine); else prints FILE and the command.\n"
    "A task with no kept kernel is a conflict (exit 6).\n"
    "\n"
    "Options:\n"
    "  --print        only print the connection file and the command\n"
    "  --end          end the kept kernel now instead\n"
    CMD_RUNS_OPTS;

static const struct client_sub cmd_runs_subs[] = {
    { "list",   "list runs, newest first",         cmd_runs_list_usage,   cmd_runs_list },
    { "show",   "show a run and its tasks",        cmd_runs_show_usage,   cmd_runs_show },
    { "logs",   "print a task's log",              cmd_runs_logs_usage,   cmd_runs_logs },
    { "cancel", "cancel a run or one of its tasks", cmd_runs_cancel_usage, cmd_runs_cancel },
    { "output", "download a task's output notebook", cmd_runs_output_usage, cmd_runs_output },
    { "debug",  "open a console on a failed task's kept kernel", cmd_runs_debug_usage, cmd_runs_debug },
};
#define CMD_RUNS_NSUBS (sizeof cmd_runs_subs / sizeof cmd_runs_subs[0])

int cmd_runs(int argc, char **argv)
{
    return client_dispatch("runs", cmd_runs_help, cmd_runs_subs, CMD_RUNS_NSUBS, argc, argv);
}

/* ------------------------------------------------------------ shared */

/* Positional argument `want` (1-based count so far) or an error. */
static int cmd_runs_pos(const char *cmd, const char *a, const char **slots, int nslots, int *n)
{
    if (a[0] == '-' && a[1]) return client_usage_error(cmd, "unknown option '%s'", a);
    if (*n == nslots) return client_usage_error(cmd, "unexpected argument '%s'", a);
    slots[(*n)++] = a;
    return CLIENT_EXIT_OK;
}

/* "/api/v1/runs/ID" [+ "/tasks/TASK"] + suffix; TASK escaped. */
static char *cmd_runs_path(int64_t id, const char *task, const char *suffix)
{
    if (!task) return xasprintf("/api/v1/runs/%lld%s", (long long)id, suffix);
    char *e = client_esc(task);
    char *p = xasprintf("/api/v1/runs/%lld/tasks/%s%s", (long long)id, e, suffix);
    free(e);
    return p;
}

static int cmd_runs_id(const char *cmd, const char *s, int64_t *id)
{
    if (client_parse_id(s, id) < 0)
        return client_usage_error(cmd, "run ID must be a positive number, got '%s'", s);
    return CLIENT_EXIT_OK;
}

/* ------------------------------------------------------------ list */

static int cmd_runs_list(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *flow = NULL, *state = NULL, *limit = NULL, *before = NULL;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs list");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--flow", &flow, "runs list");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--state", &state, "runs list");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--limit", &limit, "runs list");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--before", &before, "runs list");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1])
            return client_usage_error("runs list", "unknown option '%s'", argv[i]);
        return client_usage_error("runs list", "unexpected argument '%s'", argv[i]);
    }
    int64_t v;
    if (limit && (client_parse_id(limit, &v) < 0 || v > 1000))
        return client_usage_error("runs list", "--limit must be a number from 1 to 1000, got '%s'",
                                  limit);
    if (before && client_parse_id(before, &v) < 0)
        return client_usage_error("runs list", "--before must be a run ID, got '%s'", before);

    buf_t path = BUF_INIT;
    buf_puts(&path, "/api/v1/runs");
    if (flow) client_query_add(&path, "flow", flow);
    if (state) client_query_add(&path, "state", state);
    if (limit) client_query_add(&path, "limit", limit);
    if (before) client_query_add(&path, "before", before);
    client_t *c;
    int rc = client_open(&o, &c);
    json_t *ans = NULL;
    if (rc == CLIENT_EXIT_OK) {
        rc = client_call(c, "GET", path.data, NULL, &ans);
        client_close(c);
    }
    buf_free(&path);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(ans);
        json_decref(ans);
        return rc ? rc : client_flush();
    }
    json_t *runs = json_object_get(ans, "runs");
    buf_t out = BUF_INIT;
    if (json_array_size(runs) == 0) buf_puts(&out, "No runs.\n");
    else client_render_runs(runs, &out);
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    json_t *next = json_object_get(ans, "next");
    if (json_is_integer(next))
        fprintf(stderr, "nbhub: more runs: add --before %lld\n", (long long)json_integer_value(next));
    json_decref(ans);
    return client_flush();
}

/* ------------------------------------------------------------ show */

static int cmd_runs_show(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *pos[1];
    int n = 0, rc;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs show");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((rc = cmd_runs_pos("runs show", argv[i], pos, 1, &n))) return rc;
    }
    if (n < 1) return client_usage_error("runs show", "missing run ID");
    int64_t id;
    if ((rc = cmd_runs_id("runs show", pos[0], &id))) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    char *path = cmd_runs_path(id, NULL, "");
    json_t *run = NULL;
    rc = client_call(c, "GET", path, NULL, &run);
    free(path);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(run);
    } else {
        buf_t out = BUF_INIT;
        client_render_run(run, &out);
        fwrite(out.data, 1, out.len, stdout);
        buf_free(&out);
    }
    json_decref(run);
    return rc ? rc : client_flush();
}

/* ------------------------------------------------------------ logs, output */

/* GET the raw bytes of a task resource; an exit code, *r filled on 0. */
static int cmd_runs_fetch(const struct client_opts *o, int64_t id, const char *task,
                          const char *what, const char *tail, client_resp_t *r)
{
    client_t *c;
    int rc = client_open(o, &c);
    if (rc) return rc;
    char *p = cmd_runs_path(id, task, what);
    buf_t path = BUF_INIT;
    buf_puts(&path, p);
    free(p);
    if (tail) client_query_add(&path, "tail", tail);
    rc = client_call_raw(c, "GET", path.data, NULL, NULL, 0, r);
    buf_free(&path);
    client_close(c);
    return rc;
}

static int cmd_runs_logs(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *pos[2], *tail = NULL;
    int n = 0, rc;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs logs");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--tail", &tail, "runs logs");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((rc = cmd_runs_pos("runs logs", argv[i], pos, 2, &n))) return rc;
    }
    if (o.json) return client_usage_error("runs logs", "--json is not supported here");
    if (n < 2) return client_usage_error("runs logs", "missing %s", n ? "TASK" : "run ID and TASK");
    int64_t id, t;
    if ((rc = cmd_runs_id("runs logs", pos[0], &id))) return rc;
    if (tail && client_parse_id(tail, &t) < 0)
        return client_usage_error("runs logs", "--tail must be a positive number of bytes, got '%s'",
                                  tail);
    client_resp_t r = CLIENT_RESP_INIT;
    if ((rc = cmd_runs_fetch(&o, id, pos[1], "/log", tail, &r))) return rc;
    fwrite(r.body.data, 1, r.body.len, stdout);
    client_resp_free(&r);
    return client_flush();
}

static int cmd_runs_output(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *pos[2], *file = NULL;
    int n = 0, rc;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs output");
        if (r == 0) r = client_opt_value(argc, argv, &i, "-o", &file, "runs output");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--output", &file, "runs output");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((rc = cmd_runs_pos("runs output", argv[i], pos, 2, &n))) return rc;
    }
    if (o.json) return client_usage_error("runs output", "--json is not supported here (the "
                                          "notebook is JSON already)");
    if (n < 2) return client_usage_error("runs output", "missing %s", n ? "TASK" : "run ID and TASK");
    int64_t id;
    if ((rc = cmd_runs_id("runs output", pos[0], &id))) return rc;
    client_resp_t r = CLIENT_RESP_INIT;
    if ((rc = cmd_runs_fetch(&o, id, pos[1], "/output", NULL, &r))) return rc;
    nb_err_t err;
    if (file && strcmp(file, "-") != 0) {
        rc = fs_write_atomic(file, r.body.data, r.body.len, 1, &err) < 0 ? CLIENT_EXIT_FAILED : 0;
        if (rc) cli_errorf("runs output: %s", err.msg);
    } else {
        fwrite(r.body.data, 1, r.body.len, stdout);
        rc = client_flush();
    }
    client_resp_free(&r);
    return rc;
}

/* ------------------------------------------------------------ cancel */

static int cmd_runs_cancel(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *pos[1], *task = NULL;
    int n = 0, rc;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs cancel");
        if (r == 0) r = client_opt_value(argc, argv, &i, "--task", &task, "runs cancel");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((rc = cmd_runs_pos("runs cancel", argv[i], pos, 1, &n))) return rc;
    }
    if (n < 1) return client_usage_error("runs cancel", "missing run ID");
    int64_t id;
    if ((rc = cmd_runs_id("runs cancel", pos[0], &id))) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    char *path = cmd_runs_path(id, task, "/cancel");
    json_t *ans = NULL;
    rc = client_call(c, "POST", path, NULL, &ans);
    free(path);
    client_close(c);
    if (rc) return rc;
    if (o.json) {
        rc = client_print_json(ans);
    } else {
        /* The state as the server says it: a task ends "failed" (error
         * "cancelled"), a run "cancelled". */
        char *st = table_clean(client_str(ans, "state") ? client_str(ans, "state") : "cancelled", 0);
        if (task) printf("run %lld: task %s is %s\n", (long long)id, task, st);
        else printf("run %lld is %s\n", (long long)id, st);
        free(st);
    }
    json_decref(ans);
    return rc ? rc : client_flush();
}

/* ------------------------------------------------------------ debug */

/* jupyter-console's executable on PATH (fresh), or NULL. */
static char *cmd_runs_find_console(void)
{
    const char *path = getenv("PATH");
    if (!path) return NULL;
    char *dirs = xstrdup(path), *save = NULL;
    char *found = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/jupyter-console", *d ? d : ".");
        if (access(p, X_OK) == 0) found = p;
        else free(p);
    }
    free(dirs);
    return found;
}

static int cmd_runs_debug(int argc, char **argv)
{
    struct client_opts o = { 0 };
    const char *pos[2];
    int n = 0, rc, print = 0, end = 0;
    for (int i = 1; i < argc; i++) {
        int r = client_opt_common(&o, argc, argv, &i, "runs debug");
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if (strcmp(argv[i], "--print") == 0) print = 1;
        else if (strcmp(argv[i], "--end") == 0) end = 1;
        else if ((rc = cmd_runs_pos("runs debug", argv[i], pos, 2, &n))) return rc;
    }
    if (o.json) return client_usage_error("runs debug", "--json is not supported here");
    if (n < 2) return client_usage_error("runs debug", "missing %s", n ? "TASK" : "run ID and TASK");
    int64_t id;
    if ((rc = cmd_runs_id("runs debug", pos[0], &id))) return rc;
    client_t *c;
    if ((rc = client_open(&o, &c))) return rc;
    json_t *ans = NULL;
    char *path = cmd_runs_path(id, end ? pos[1] : NULL, end ? "/kernel" : "");
    rc = client_call(c, end ? "DELETE" : "GET", path, NULL, &ans);
    free(path);
    client_close(c);
    if (rc) return rc;
    if (end) {
        printf("run %lld: the kernel kept for task %s is being stopped\n", (long long)id, pos[1]);
        json_decref(ans);
        return client_flush();
    }
    const json_t *task = NULL, *t;
    size_t i;
    json_array_foreach(json_object_get(ans, "tasks"), i, t)
        if (client_str(t, "name") && strcmp(client_str(t, "name"), pos[1]) == 0) task = t;
    const char *until = task ? client_str(task, "kernel_kept_until") : NULL;
    const char *file = task ? client_str(task, "kernel_connection_file") : NULL;
    if (!task) {
        cli_errorf("runs debug: run %lld has no task '%s'", (long long)id, pos[1]);
        json_decref(ans);
        return CLIENT_EXIT_NOT_FOUND;
    }
    if (!until || !file) {
        cli_errorf("runs debug: no kernel is kept for task '%s' of run %lld (the task did not fail "
                   "with post_mortem: set, or its kernel has ended)", pos[1], (long long)id);
        json_decref(ans);
        return CLIENT_EXIT_CONFLICT;
    }
    char *f = table_clean(file, 0), *u = table_clean(until, 0);
    char *console = print ? NULL : cmd_runs_find_console();
    int readable = access(file, R_OK) == 0;
    if (!console || !readable) {
        printf("kernel kept until %s\nconnection file: %s\njupyter console --existing %s\n", u, f, f);
        if (!print && !readable)
            fprintf(stderr, "nbhub: %s is not readable here: run this as the task's user on the "
                            "server's machine\n", f);
        else if (!print)
            fprintf(stderr, "nbhub: jupyter-console is not installed (pip install jupyter-console)\n");
        free(f);
        free(u);
        free(console);
        json_decref(ans);
        return client_flush();
    }
    fprintf(stderr, "nbhub: kernel kept until %s; console on %s (`exit` ends the kernel, `exit(keep_kernel=True)` leaves it running)\n", u, f);
    fflush(NULL);
    char *args[] = { console, (char *)"--existing", f, NULL };
    execv(console, args);
    cli_errorf("runs debug: cannot run %s: %s", console, strerror(errno));
    free(f);
    free(u);
    free(console);
    json_decref(ans);
    return CLIENT_EXIT_FAILED;
}
