/*
 * cmd_run — `nbhub run IN.ipynb [OUT.ipynb] [options]`, papermill's CLI.
 *
 * Order of work (papermill's): load -> parameters merged from -f, -y, -p,
 * -r in that order (later wins) -> metadata prepared -> parameters injected
 * -> execute -> OUT.  Everything that can be checked before a kernel starts
 * (input, kernel name, output directory) is, so bad input costs no kernel.
 */
#include "cli/cli.h"
#include "iso/workspace.h"
#include "kernel/kspec.h"
#include "notebook/nb.h"
#include "notebook/nbexec.h"
#include "notebook/nbjson.h"
#include "notebook/nbparams.h"
#include "sched/flow.h"
#include "sched/sup.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char cmd_run_usage[] =
    "usage: nbhub run IN.ipynb [OUT.ipynb] [options]\n"
    "\n"
    "Execute a notebook headlessly, papermill-compatibly.  IN or OUT may be '-'\n"
    "for stdin/stdout; without OUT the notebook goes to stdout when stdout is not\n"
    "a terminal.\n"
    "\n"
    "Parameters (later ones win: -f, then -y, then -p, then -r):\n"
    "  -p, --parameters NAME VALUE  typed like papermill: int, float, True/False, None, else str\n"
    "  -r, --parameters-raw NAME VALUE  raw string\n"
    "  -f, --parameters-file FILE   YAML file of parameters\n"
    "  -y, --parameters-yaml YAML   YAML text of parameters\n"
    "  --inspect                    print the notebook's parameters as JSON and exit\n"
    "\n"
    "Execution:\n"
    "  -k, --kernel NAME            kernel (default: the notebook's kernelspec)\n"
    "  -l, --language LANG          language for parameter translation (default: the kernel's)\n"
    "  --cwd DIR                    working directory of the kernel\n"
    "  --workspace DIR              IN is relative to the workspace DIR ('~': the home of the\n"
    "                               account running this); a path or symlink leading out of it\n"
    "                               is refused; --cwd defaults to IN's directory\n"
    "  --execution-timeout SECONDS  per-cell limit: interrupt, then kill (default: none)\n"
    "  --start-timeout SECONDS      kernel start-up limit (default: 60)\n"
    "  --deadline SECONDS           limit for the whole run (default: none)\n"
    "  --transport ipc|tcp          kernel transport (default: ipc, no ports used)\n"
    "  --existing-kernel FILE       run on a running kernel (its connection file) instead of\n"
    "                               starting one; it is left running unless --shutdown-kernel\n"
    "  --kernel-pid PID             that kernel's pid: death noticed at once, interrupts by\n"
    "                               signal (without it: heartbeat, interrupt_request)\n"
    "  --shutdown-kernel            ask the existing kernel to exit when the run ends\n"
    "  --max-output-bytes N         output kept per cell, the rest dropped with a note\n"
    "                               (default: 67108864; 0 = unlimited)\n"
    "  --write-interval MS          refresh OUT at most this often while running (default: 1000)\n"
    "  --keep-history               let the IPython kernel nbhub starts write its history database\n"
    "                               (nbclient's default, and nbhub's, is\n"
    "                               --HistoryManager.hist_file=:memory:)\n"
    "  --keep-kernel-on-error DURATION  post-mortem: when a cell raises, keep the kernel (its\n"
    "                               variables) running for DURATION (30s, 30m, 1h, or seconds);\n"
    "                               the connection file is printed for `jupyter console --existing`;\n"
    "                               nbhub run still exits 1, the kernel is stopped at the deadline\n"
    "\n"
    "Output:\n"
    "  --log-output                 stream cell outputs to stderr as they arrive\n"
    "  --progress-bar / --no-progress-bar   (default: on when stderr is a terminal)\n"
    "  --prepare-only               inject parameters and write OUT without executing\n"
    "  --report-mode                hide the input of code cells in OUT\n"
    "  --log-level LEVEL            debug|info|warn|error (default: warn)\n"
    "  -h, --help                   this help\n"
    "\n";

struct run_args {
    const char *in, *out;
    const char *kernel, *language, *cwd;
    const char *workspace;
    double exec_timeout, start_timeout, deadline;
    size_t max_output;
    unsigned write_interval;
    int log_output, progress, prepare_only, report_mode, inspect, tcp;
    const char *existing_kernel;
    int kernel_pid, shutdown_kernel, keep_history;
    int64_t keep_kernel;  /* seconds, 0 = off */
    const char *kernel_file;  /* hidden: where to describe a kept kernel (nbhub serve) */
    json_t *params;      /* merged, in order */
    json_t *p_typed;     /* -p, applied after files */
    json_t *p_raw;       /* -r, applied last */
    json_t *p_file;      /* YAML objects from -f, in order */
    json_t *p_yaml;      /* YAML objects from -y, in order */
};

static int run_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nbhub run: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'nbhub run --help'.\n", stderr);
    return NB_EXIT_USAGE;
}

static int run_number(const char *flag, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0) {
        fprintf(stderr, "nbhub run: %s needs a non-negative number of seconds, got '%s'\n", flag, v);
        return -1;
    }
    *out = d;
    return 0;
}

/* Merge a YAML document that must be a mapping (or empty). */
static int run_add_yaml(json_t *list, const char *text, size_t len, const char *name)
{
    json_t *v = NULL;
    nb_err_t err;
    if (yamljson_parse(text, len, name, &v, &err) < 0) {
        cli_errorf("parameters: %s", err.msg);
        return NB_EXIT_INPUT;
    }
    if (json_is_null(v)) {
        json_decref(v);
        return 0;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        cli_errorf("parameters: %s: expected a mapping of NAME: VALUE", name);
        return NB_EXIT_INPUT;
    }
    json_array_append_new(list, v);
    return 0;
}

static int run_parse(int argc, char **argv, struct run_args *a)
{
    a->max_output = 64u << 20;
    a->progress = -1;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
#define NEED(n) do { if (i + (n) >= argc) return run_usage_error("option %s needs an argument", s); } while (0)
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            fputs(cmd_run_usage, stdout);
            fputs(cli_exit_codes_help, stdout);
            return -1;
        } else if (strcmp(s, "-p") == 0 || strcmp(s, "--parameters") == 0) {
            if (i + 2 >= argc) return run_usage_error("option %s needs NAME and VALUE", s);
            json_object_set_new(a->p_typed, argv[i + 1], nbparams_resolve_type(argv[i + 2]));
            i += 2;
        } else if (strcmp(s, "-r") == 0 || strcmp(s, "--parameters-raw") == 0) {
            if (i + 2 >= argc) return run_usage_error("option %s needs NAME and VALUE", s);
            json_object_set_new(a->p_raw, argv[i + 1], json_string(argv[i + 2]));
            i += 2;
        } else if (strcmp(s, "-f") == 0 || strcmp(s, "--parameters-file") == 0) {
            NEED(1);
            char *text;
            size_t len;
            nb_err_t err;
            if (fs_read_all(argv[++i], &text, &len, &err) < 0) {
                cli_errorf("parameters file: %s", err.msg);
                return NB_EXIT_INPUT;
            }
            int rc = run_add_yaml(a->p_file, text, len, argv[i]);
            free(text);
            if (rc) return rc;
        } else if (strcmp(s, "-y") == 0 || strcmp(s, "--parameters-yaml") == 0) {
            NEED(1);
            i++;
            int rc = run_add_yaml(a->p_yaml, argv[i], strlen(argv[i]), "-y");
            if (rc) return rc;
        } else if (strcmp(s, "-k") == 0 || strcmp(s, "--kernel") == 0) {
            NEED(1); a->kernel = argv[++i];
        } else if (strcmp(s, "-l") == 0 || strcmp(s, "--language") == 0) {
            NEED(1); a->language = argv[++i];
        } else if (strcmp(s, "--cwd") == 0) {
            NEED(1); a->cwd = argv[++i];
        } else if (strcmp(s, "--workspace") == 0) {
            NEED(1); a->workspace = argv[++i];
        } else if (strcmp(s, "--execution-timeout") == 0) {
            NEED(1); if (run_number(s, argv[++i], &a->exec_timeout)) return NB_EXIT_USAGE;
        } else if (strcmp(s, "--start-timeout") == 0 || strcmp(s, "--start_timeout") == 0) {
            NEED(1); if (run_number(s, argv[++i], &a->start_timeout)) return NB_EXIT_USAGE;
        } else if (strcmp(s, "--deadline") == 0) {
            NEED(1); if (run_number(s, argv[++i], &a->deadline)) return NB_EXIT_USAGE;
        } else if (strcmp(s, "--max-output-bytes") == 0) {
            NEED(1);
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || end == argv[i]) return run_usage_error("--max-output-bytes needs a byte count, got '%s'", argv[i]);
            a->max_output = (size_t)v;
        } else if (strcmp(s, "--write-interval") == 0) {
            NEED(1);
            a->write_interval = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(s, "--transport") == 0) {
            NEED(1);
            i++;
            if (strcmp(argv[i], "tcp") == 0) a->tcp = 1;
            else if (strcmp(argv[i], "ipc") == 0) a->tcp = 0;
            else return run_usage_error("--transport must be ipc or tcp, got '%s'", argv[i]);
        } else if (strcmp(s, "--log-level") == 0) {
            NEED(1);
            int l = log_level_parse(argv[++i]);
            if (l < 0) return run_usage_error("unknown log level '%s'", argv[i]);
            log_set_level(l);
        } else if (strcmp(s, "--existing-kernel") == 0) {
            NEED(1); a->existing_kernel = argv[++i];
        } else if (strcmp(s, "--kernel-pid") == 0) {
            NEED(1);
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v <= 0) return run_usage_error("--kernel-pid needs a process id, got '%s'", argv[i]);
            a->kernel_pid = (int)v;
        } else if (strcmp(s, "--keep-kernel-on-error") == 0) {
            NEED(1);
            i++;
            if (flow_duration_parse(argv[i], &a->keep_kernel) < 0 || a->keep_kernel <= 0)
                return run_usage_error("--keep-kernel-on-error needs a duration like 30s, 30m or 1h, got '%s'",
                                       argv[i]);
        } else if (strcmp(s, "--shutdown-kernel") == 0) {
            a->shutdown_kernel = 1;
        } else if (strcmp(s, "--keep-history") == 0) {
            a->keep_history = 1;
        } else if (strcmp(s, "--log-output") == 0) {
            a->log_output = 1;
        } else if (strcmp(s, "--progress-bar") == 0) {
            a->progress = 1;
        } else if (strcmp(s, "--no-progress-bar") == 0) {
            a->progress = 0;
        } else if (strcmp(s, "--prepare-only") == 0) {
            a->prepare_only = 1;
        } else if (strcmp(s, "--report-mode") == 0) {
            a->report_mode = 1;
        } else if (strcmp(s, "--inspect") == 0) {
            a->inspect = 1;
        } else if (s[0] == '-' && s[1] != '\0') {
            return run_usage_error("unknown option '%s'", s);
        } else if (pos == 0) {
            a->in = s; pos++;
        } else if (pos == 1) {
            a->out = s; pos++;
        } else {
            return run_usage_error("unexpected argument '%s'", s);
        }
#undef NEED
    }
    if (!a->in) return run_usage_error("%s", "missing input notebook (IN.ipynb or '-')");
    if (a->keep_kernel && a->existing_kernel)
        return run_usage_error("%s", "--keep-kernel-on-error keeps a kernel nbhub run started, not an --existing-kernel");
    return 0;
}

/* Final parameters, papermill's order: all -f, all -y, all -p, all -r. */
static json_t *run_merge_params(struct run_args *a)
{
    json_t *p = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(a->p_file, i, v) json_object_update(p, v);
    json_array_foreach(a->p_yaml, i, v) json_object_update(p, v);
    json_object_update(p, a->p_typed);
    json_object_update(p, a->p_raw);
    return p;
}

static int run_check_output_dir(const char *out)
{
    if (!out || strcmp(out, "-") == 0) return 0;
    char *dir = fs_dirname(out);
    int ok = access(dir, W_OK) == 0;
    if (!ok) cli_errorf("%s: cannot write the output notebook: directory %s: %s", out, dir, strerror(errno));
    free(dir);
    return ok ? 0 : NB_EXIT_OUTPUT;
}

static void run_report_mode(json_t *nb)
{
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(nb, "cells"), i, cell) {
        const char *t = json_string_value(json_object_get(cell, "cell_type"));
        if (!t || strcmp(t, "code") != 0) continue;
        json_t *md = json_object_get(cell, "metadata");
        json_t *jup = json_object_get(md, "jupyter");
        if (!json_is_object(jup)) {
            jup = json_object();
            json_object_set_new(md, "jupyter", jup);
        }
        json_object_set_new(jup, "source_hidden", json_true());
    }
}

static int run_write_now(json_t *nb, const char *out)
{
    buf_t b = BUF_INIT;
    nbjson_dump(nb, &b);
    nb_err_t err;
    int rc = fs_write_atomic(out, b.data, b.len, 1, &err);
    buf_free(&b);
    if (rc < 0) {
        cli_errorf("%s", err.msg);
        return NB_EXIT_OUTPUT;
    }
    return 0;
}

static int cmd_run_main(int argc, char **argv);
static const char *run_kernel_file;

/* A kernel kept for a post-mortem (nbexec_kept): say how to reach it,
 * and for nbhub serve describe it in --kernel-file as
 * {"connection_file", "pid", "pid_start_time", "kept_until"} (seconds). */
static void run_kept(const struct nbexec_kept *k)
{
    char until[40];
    time_t t = (time_t)k->until_s;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(until, sizeof until, "%H:%M:%S", &tm);
    fprintf(stderr,
            "nbhub: the kernel is kept for a post-mortem until %s (pid %d; `kill %d` ends it sooner)\n"
            "nbhub: connection file: %s\n"
            "nbhub: open a console on it: jupyter console --existing %s\n",
            until, k->pid, k->pid, k->conn_file, k->conn_file);
    if (!run_kernel_file) return;
    json_t *j = json_pack("{s:s, s:i, s:I, s:I}", "connection_file", k->conn_file, "pid", k->pid,
                          "pid_start_time", (json_int_t)sup_proc_start_time(k->pid), "kept_until",
                          (json_int_t)k->until_s);
    char *text = json_dumps(j, JSON_SORT_KEYS);
    nb_err_t err;
    if (fs_write_atomic(run_kernel_file, text, strlen(text), 0, &err) < 0)
        cli_errorf("cannot write %s: %s", run_kernel_file, err.msg);
    free(text);
    json_decref(j);
}

/* --workspace: IN names a notebook in a user's workspace (a flow's
 * "~/..." task).  Checked here, by the process that opens it -- under
 * isolation: system the task already runs as the account -- so what is
 * judged is what is read: the path text (no "~bob/", no ".." out), then
 * where its symlinks lead.  *in and *cwd are the resolved path and, when
 * no --cwd was given, its directory. */
static int run_in_workspace(struct run_args *a, char **in, char **cwd)
{
    nb_err_t err;
    char *dir = NULL;
    int rc = strcmp(a->workspace, "~") == 0 ? workspace_own(&dir, &err)
           : (dir = xstrdup(a->workspace), 0);
    if (rc == 0) rc = workspace_path(dir, a->in, in, &err);
    if (rc == 0) rc = workspace_inside(dir, *in, &err);
    free(dir);
    if (rc < 0) {
        cli_errorf("%s: %s", a->in, err.msg);
        return NB_EXIT_INPUT;
    }
    a->in = *in;
    if (!a->cwd) a->cwd = *cwd = fs_dirname(*in);
    return 0;
}

/* `--status-file FILE` (for nbhub serve, not in --help): write how the run
 * ended to FILE as {"exit_code": N}, atomically, as `nbhub __task-wrap`
 * does (src/sched/sup.h) — so the daemon can start notebook tasks without
 * the wrapper process and still learn their end after its own restart. */
int cmd_run(int argc, char **argv)
{
    const char *status = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--status-file") == 0) {
            status = argv[i + 1];
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    /* `--kernel-file FILE` (for nbhub serve, not in --help): a kept
     * kernel is described there, written before the status file. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--kernel-file") == 0) {
            run_kernel_file = argv[i + 1];
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    int rc = cmd_run_main(argc, argv);
    if (status) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "{\"exit_code\": %d}\n", rc);
        nb_err_t err;
        if (fs_write_atomic(status, buf, (size_t)n, 0, &err) < 0)
            cli_errorf("cannot write %s: %s", status, err.msg);
    }
    return rc;
}

static int cmd_run_main(int argc, char **argv)
{
    struct run_args a;
    memset(&a, 0, sizeof a);
    a.p_typed = json_object();
    a.p_raw = json_object();
    a.p_yaml = json_array();
    a.p_file = json_array();
    json_t *nb = NULL, *params = NULL;
    kspec_t *spec = NULL;
    char *ws_in = NULL, *ws_cwd = NULL;
    int code = run_parse(argc, argv, &a);
    if (code) {
        code = code < 0 ? NB_EXIT_OK : code;
        goto done;
    }
    /* papermill's rule: with piped stdin and one path that is not an existing
     * file, the notebook comes from stdin and the path is OUT. */
    if (!a.out && !a.inspect && strcmp(a.in, "-") != 0 && !isatty(STDIN_FILENO) && !fs_exists(a.in)) {
        a.out = a.in;
        a.in = "-";
    }
    if (!a.out && !a.inspect) {
        if (isatty(STDOUT_FILENO)) {
            code = run_usage_error("%s", "missing OUT.ipynb (use '-' to write the notebook to stdout)");
            goto done;
        }
        a.out = "-";
    }
    if (a.progress < 0) a.progress = isatty(STDERR_FILENO) && !a.log_output;

    nb_err_t err;
    err_clear(&err);
    if (a.workspace && (code = run_in_workspace(&a, &ws_in, &ws_cwd))) goto done;
    if (nb_load_file(a.in, &nb, &err) < 0) {
        cli_errorf("%s", err.msg);
        code = NB_EXIT_INPUT;
        goto done;
    }
    const char *nb_lang = nb_language(nb);
    if (a.inspect) {
        json_t *ins = nbparams_inspect(nb, a.language ? a.language : (nb_lang ? nb_lang : "python"));
        char *s = json_dumps(ins, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(ins);
        goto done;
    }
    if ((code = run_check_output_dir(a.out))) goto done;
    if (a.cwd) {
        struct stat st;
        errno = 0;
        if (stat(a.cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
            cli_errorf("--cwd %s: %s", a.cwd, errno ? strerror(errno) : "not a directory");
            code = NB_EXIT_INPUT;
            goto done;
        }
    }

    const char *kname = a.kernel ? a.kernel : nb_kernel_name(nb);
    if (a.keep_history && a.existing_kernel)
        fprintf(stderr, "nbhub: warning: --keep-history has no effect on an existing kernel "
                        "(its history was decided when it started)\n");
    if (a.existing_kernel) {
        if (!fs_exists(a.existing_kernel)) {
            cli_errorf("--existing-kernel %s: no such connection file", a.existing_kernel);
            code = NB_EXIT_KERNEL;
            goto done;
        }
        /* The kernel is running already; its spec only helps name the language. */
        if (kname) kspec_find(kname, &spec, NULL);
    } else if (!kname) {
        cli_errorf("%s: no kernel named in the notebook's metadata.kernelspec; use --kernel NAME", a.in);
        code = NB_EXIT_KERNEL;
        goto done;
    }
    if (!a.existing_kernel && kspec_find(kname, &spec, &err) < 0) {
        char *names = kspec_names();
        cli_errorf("%s; available kernels: %s", err.msg, *names ? names : "(none found)");
        free(names);
        code = NB_EXIT_KERNEL;
        goto done;
    }
    const char *lang = a.language ? a.language
                     : (spec && spec->language && *spec->language ? spec->language : nb_lang);

    /* A flow task that asked for Spark (nbhub __spark-task): its cluster
     * wins over the master a PySpark kernel spec names. */
    struct nbexec_kept kept = { 0 };
    static char *spark_env[3];   /* lives until exit */
    if (getenv("NBHUB_SPARK_MASTER")) {
        size_t ns = 0;
        if (getenv("PYSPARK_SUBMIT_ARGS"))
            spark_env[ns++] = xasprintf("PYSPARK_SUBMIT_ARGS=%s", getenv("PYSPARK_SUBMIT_ARGS"));
        if (getenv("SPARK_REMOTE"))
            spark_env[ns++] = xasprintf("SPARK_REMOTE=%s", getenv("SPARK_REMOTE"));
    }
    struct nbexec_opts o = {
        .kernel_env = spark_env,
        .input_path = a.in, .output_path = a.out, .cwd = a.cwd,
        .exec_timeout_s = a.exec_timeout, .deadline_s = a.deadline,
        .start_timeout_s = a.start_timeout, .max_output_bytes = a.max_output,
        .write_interval_ms = a.write_interval, .log_output = a.log_output,
        .progress = a.progress, .tcp = a.tcp,
        .existing_kernel = a.existing_kernel, .kernel_pid = a.kernel_pid,
        .shutdown_kernel = a.shutdown_kernel, .keep_history = a.keep_history,
        .keep_kernel_s = (double)a.keep_kernel, .kept = &kept,
    };
    if (a.report_mode) run_report_mode(nb);
    nbexec_prepare(nb, &o);
    params = run_merge_params(&a);
    /* Names are code in the parameters cell: only identifiers of the
     * language (nbparams.h), checked before anything echoes them. */
    if (json_object_size(params) > 0 &&
        nbparams_check_names(params, lang ? lang : "python", &err) == -EINVAL) {
        cli_errorf("%s", err.msg);
        err_clear(&err);
        code = NB_EXIT_INPUT;
        goto done;
    }
    if (json_object_size(params) > 0) {
        json_t *unknown = nbparams_unknown(nb, params, lang ? lang : "python");
        size_t i;
        json_t *u;
        json_array_foreach(unknown, i, u)
            fprintf(stderr, "nbhub: warning: Passed unknown parameter: %s\n", json_string_value(u));
        json_decref(unknown);
        int warned = 0;
        if (nbparams_inject(nb, params, lang ? lang : "python", a.report_mode, &warned, &err) < 0) {
            cli_errorf("%s", err.msg);
            code = NB_EXIT_INPUT;
            goto done;
        }
        if (warned)
            fprintf(stderr, "nbhub: warning: Input notebook does not contain a cell with tag 'parameters'; "
                            "parameters were injected at the top\n");
    }
    if (a.prepare_only) {
        code = run_write_now(nb, a.out);
        goto done;
    }

    err_clear(&err);
    code = nbexec_run(nb, spec, &o, &err);
    {
        /* Our own cost, for benchmarks (NBHUB_LOG=info): wait4's rusage would
         * mix in the kernel, which we reap. */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        LOG_I("run finished", "exit=%d cells=%zu cpu_user_us=%ld cpu_sys_us=%ld maxrss_kb=%ld wakeups=%ld", code,
              json_array_size(json_object_get(nb, "cells")),
              (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec),
              (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec), ru.ru_maxrss,
              ru.ru_nvcsw);
    }
    if (code != NB_EXIT_OK && err.msg[0]) cli_errorf("%s", err.msg);
    else if (code != NB_EXIT_OK) cli_errorf("run failed (exit %d)", code);
    if (kept.conn_file) run_kept(&kept);
    free(kept.conn_file);

done:
    free(ws_in);
    free(ws_cwd);
    json_decref(nb);
    json_decref(params);
    json_decref(a.p_typed);
    json_decref(a.p_raw);
    json_decref(a.p_yaml);
    json_decref(a.p_file);
    kspec_free(spec);
    return code;
}
