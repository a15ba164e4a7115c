/*
 * cmd_kernel_spark — `nbhub kernel install-spark NAME --master M ...` and
 * `nbhub kernel remove NAME...`.
 *
 * install-spark finds the pieces a PySpark kernel needs and writes its
 * kernel.json (src/spark/sparkspec.h) where `jupyter kernelspec install`
 * would: --user (the default: jupyter_data_dir()/kernels), --sys-prefix (the
 * active environment), --prefix DIR.
 *   - Python: --python PATH, else the active venv's bin/python, else python3
 *     on PATH (kept as found, not resolved: a venv's python is a symlink).
 *   - Spark: --spark-home DIR, else $SPARK_HOME, else the pyspark that Python
 *     imports (PyPI's pyspark bundles a whole Spark; asked by running Python,
 *     with an argv, no shell).  A distribution must have bin/spark-submit;
 *     its python/ and py4j zip go on the kernel's PYTHONPATH.
 *   - Java: only checked, with a warning, since the kernel may run where
 *     this machine is not (a container image).
 * Exit codes: 0 written, 2 usage, 3 invalid option, 4 no Spark found, 7 the
 * spec could not be written.  remove: 0, 2, 3 (no such kernel), 7.
 */
#include "cli/cli.h"
#include "kernel/kspec.h"
#include "spark/sparkspec.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char cmd_kernel_install_spark_usage[] =
    "usage: nbhub kernel install-spark NAME --master MASTER [options]\n"
    "       nbhub kernel install-spark NAME --remote sc://HOST:PORT [--python PATH]\n"
    "\n"
    "Write a PySpark kernel spec: a notebook on it gets a SparkSession from\n"
    "SparkSession.builder.getOrCreate() with nothing else to configure.\n"
    "\n"
    "  --master MASTER           local[*], local[N], spark://HOST:PORT, k8s://https://HOST:PORT, yarn\n"
    "  --remote sc://HOST:PORT   a Spark Connect kernel instead (SPARK_REMOTE; no JVM in the\n"
    "                            kernel; needs pyspark's connect extra: pandas, pyarrow, grpcio)\n"
    "  --conf KEY=VALUE          a Spark setting (repeatable); a value may be ${VAR}, taken from\n"
    "                            the environment the kernel is started in\n"
    "  --executor-instances N, --executor-cores C, --executor-memory M (2g, 512m)\n"
    "  --image IMG, --namespace NS   spark.kubernetes.* for k8s:// masters\n"
    "  --python PATH             interpreter of the kernel and the executors (default: the\n"
    "                            active venv's python, else python3 on PATH)\n"
    "  --spark-home DIR          a Spark distribution (default: $SPARK_HOME, else pyspark's)\n"
    "  --display-name TEXT       name shown by JupyterLab (default: PySpark (NAME))\n"
    "  --user                    install for this user (default; jupyter_data_dir()/kernels)\n"
    "  --sys-prefix              install into the active environment (share/jupyter/kernels)\n"
    "  --prefix DIR              install into DIR/share/jupyter/kernels\n"
    "\n"
    "Exit codes: 0 installed, 2 usage error, 3 invalid option (the message says which),\n"
    "4 no Spark found, 7 the kernel spec could not be written.\n";

const char cmd_kernel_remove_usage[] =
    "usage: nbhub kernel remove NAME...\n"
    "\n"
    "Remove kernel specs (the first directory of each name on the Jupyter path), as\n"
    "`jupyter kernelspec remove -f` does.\n"
    "\n"
    "Exit codes: 0 removed, 2 usage error, 3 no such kernel, 7 it could not be removed.\n";

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_exec(const char *p)
{
    return is_file(p) && access(p, X_OK) == 0;
}

/* exe on PATH (as found, not resolved), or NULL. */
static char *on_path(const char *exe)
{
    for (const char *p = getenv("PATH"); p && *p;) {
        size_t len = strcspn(p, ":");
        if (len && p[0] == '/') {
            char *cand = xasprintf("%.*s/%s", (int)len, p, exe);
            if (is_exec(cand)) return cand;
            free(cand);
        }
        p += len;
        if (*p == ':') p++;
    }
    return NULL;
}

/* Run argv (no shell) and return its stdout without the trailing newline,
 * or NULL if it could not run or failed. */
static char *run_capture(char *const argv[])
{
    int fds[2];
    if (pipe(fds) < 0) return NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 0, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return NULL;
    }
    buf_t out = BUF_INIT;
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof chunk)) > 0) buf_append(&out, chunk, (size_t)n);
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !out.len) {
        buf_free(&out);
        return NULL;
    }
    while (out.len && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == '\r')) out.data[--out.len] = '\0';
    return buf_detach(&out);
}

/* python/lib/py4j-*.zip of a Spark distribution, or NULL. */
static char *find_py4j(const char *home)
{
    char *lib = xasprintf("%s/python/lib", home);
    DIR *d = opendir(lib);
    char *found = NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && !found) {
            size_t l = strlen(e->d_name);
            if (!strncmp(e->d_name, "py4j-", 5) && l > 4 && !strcmp(e->d_name + l - 4, ".zip"))
                found = xasprintf("%s/%s", lib, e->d_name);
        }
        closedir(d);
    }
    free(lib);
    return found;
}

int cmd_kernel_spark_java(void)
{
    const char *jh = getenv("JAVA_HOME");
    if (jh && *jh) {
        char *j = xasprintf("%s/bin/java", jh);
        int ok = is_exec(j);
        free(j);
        if (ok) return 1;
    }
    char *j = on_path("java");
    int ok = j != NULL;
    free(j);
    return ok;
}

/* The kernel's Python and Spark (see the top of this file).  0, or an exit
 * code (3, 4) after printing why. */
int cmd_kernel_spark_locate(const char *python, const char *home_opt, char **py_out, char **home_out,
                            char **py4j_out)
{
    char *py = NULL, *home = NULL, *py4j = NULL;
    int code = NB_EXIT_INPUT;
    /* The interpreter. */
    if (python) {
        py = python[0] == '/' ? xstrdup(python) : on_path(python);
        if (!py || !is_exec(py)) {
            cli_errorf("--python %s: not an executable file", python);
            goto fail;
        }
    } else {
        const char *venv = getenv("VIRTUAL_ENV");
        if (venv && *venv) {
            py = xasprintf("%s/bin/python", venv);
            if (!is_exec(py)) { free(py); py = NULL; }
        }
        if (!py) py = on_path("python3");
        if (!py) {
            cli_errorf("no Python found: activate the environment with ipykernel and pyspark, or pass --python");
            goto fail;
        }
    }

    /* Spark. */
    const char *envhome = getenv("SPARK_HOME");
    const char *given = home_opt ? home_opt : (envhome && *envhome ? envhome : NULL);
    if (given) {
        home = realpath(given, NULL);
        char *submit = home ? xasprintf("%s/bin/spark-submit", home) : NULL;
        int ok = submit && is_exec(submit);
        free(submit);
        if (!ok) {
            cli_errorf("%s %s is not a Spark distribution (no bin/spark-submit there)",
                       home_opt ? "--spark-home" : "SPARK_HOME", given);
            code = 4;
            goto fail;
        }
        py4j = find_py4j(home);
        if (!py4j) {
            cli_errorf("%s has no python/lib/py4j-*.zip: not a Spark build with Python support", home);
            code = 4;
            goto fail;
        }
    } else {
        char *args[] = { py, (char *)"-c",
                         (char *)"import os, pyspark; print(os.path.dirname(os.path.abspath(pyspark.__file__)))", NULL };
        home = run_capture(args);
        if (!home) {
            cli_errorf("no Spark found: %s cannot import pyspark, and SPARK_HOME is not set "
                       "(pip install pyspark, or pass --spark-home DIR)", py);
            code = 4;
            goto fail;
        }
    }

    *py_out = py;
    *home_out = home;
    *py4j_out = py4j;
    return NB_EXIT_OK;
fail:
    free(py);
    free(home);
    free(py4j);
    return code;
}

int cmd_kernel_install_spark(int argc, char **argv)
{
    struct sparkspec_opts o = { 0 };
    const char **conf = xcalloc((size_t)argc + 1, sizeof *conf);
    size_t nconf = 0;
    const char *where = "user", *prefix = NULL, *python = NULL, *home_opt = NULL;
    int code = NB_EXIT_USAGE;
    char *py = NULL, *home = NULL, *py4j = NULL, *dir = NULL;
    json_t *spec = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        struct { const char *flag; const char **dst; } vals[] = {
            { "--master", &o.master }, { "--remote", &o.remote }, { "--executor-instances", &o.executor_instances },
            { "--executor-cores", &o.executor_cores }, { "--executor-memory", &o.executor_memory },
            { "--image", &o.image }, { "--namespace", &o.k8s_namespace }, { "--python", &python },
            { "--spark-home", &home_opt }, { "--display-name", &o.display_name }, { "--prefix", &prefix },
            { "--conf", NULL },
        };
        size_t k, nv = sizeof vals / sizeof vals[0];
        for (k = 0; k < nv; k++)
            if (!strcmp(a, vals[k].flag)) break;
        if (k < nv) {
            if (i + 1 >= argc) {
                cli_errorf("%s needs a value (see nbhub kernel install-spark --help)", a);
                goto out;
            }
            if (vals[k].dst) *vals[k].dst = argv[++i];
            else conf[nconf++] = argv[++i];
            if (!strcmp(a, "--prefix")) where = "prefix";
            continue;
        }
        if (!strcmp(a, "--user")) { where = "user"; continue; }
        if (!strcmp(a, "--sys-prefix")) { where = "sys-prefix"; continue; }
        if (a[0] == '-') {
            cli_errorf("install-spark: unknown option %s (see nbhub kernel install-spark --help)", a);
            goto out;
        }
        if (o.name) {
            cli_errorf("install-spark: one kernel name, not '%s' too", a);
            goto out;
        }
        o.name = a;
    }
    if (!o.name || (!o.master && !o.remote)) {
        cli_errorf("install-spark: NAME and --master (or --remote) are required (see nbhub kernel install-spark --help)");
        goto out;
    }
    o.conf = conf;
    code = NB_EXIT_INPUT;

    code = cmd_kernel_spark_locate(python, home_opt, &py, &home, &py4j);
    if (code != NB_EXIT_OK) goto out;
    o.python = py;
    o.spark_home = home;
    o.py4j_zip = py4j;
    code = NB_EXIT_INPUT;

    nb_err_t err;
    if (sparkspec_build(&o, &spec, &err) < 0) {
        cli_errorf("%s", err.msg);
        goto out;
    }
    if (!cmd_kernel_spark_java())
        fprintf(stderr, "nbhub: warning: no Java found (JAVA_HOME, PATH): Spark needs Java 17 or later "
                        "where the kernel runs (Debian: apt-get install openjdk-17-jre-headless)\n");

    /* Where. */
    char *base = NULL;
    if (!strcmp(where, "user")) base = kspec_user_data_dir();
    else if (!strcmp(where, "sys-prefix")) {
        char *sp = kspec_sys_prefix();
        if (!sp) {
            cli_errorf("--sys-prefix: no active Python environment found");
            goto out;
        }
        base = xasprintf("%s/share/jupyter", sp);
        free(sp);
    } else base = xasprintf("%s/share/jupyter", prefix);
    dir = xasprintf("%s/kernels/%s", base, o.name);
    free(base);
    code = NB_EXIT_OUTPUT;
    if (fs_mkdir_p(dir, 0755, &err) < 0) {
        cli_errorf("cannot create %s: %s", dir, err.msg);
        goto out;
    }
    char *path = xasprintf("%s/kernel.json", dir);
    int existed = is_file(path);
    char *text = json_dumps(spec, JSON_INDENT(1) | JSON_SORT_KEYS);
    buf_t t = BUF_INIT;
    buf_puts(&t, text);
    buf_putc(&t, '\n');
    free(text);
    int rc = fs_write_atomic(path, t.data, t.len, 1, &err);
    buf_free(&t);
    free(path);
    if (rc < 0) {
        cli_errorf("cannot write the kernel spec: %s", err.msg);
        goto out;
    }
    printf("%s kernelspec %s in %s\n", existed ? "Replaced" : "Installed", o.name, dir);
    code = NB_EXIT_OK;
out:
    json_decref(spec);
    free(conf);
    free(py);
    free(home);
    free(py4j);
    free(dir);
    return code;
}

int cmd_kernel_remove(int argc, char **argv)
{
    if (argc < 2) {
        cli_errorf("remove: which kernel? (see nbhub kernel remove --help)");
        return NB_EXIT_USAGE;
    }
    int code = NB_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        kspec_t *k = NULL;
        nb_err_t err;
        if (kspec_find(argv[i], &k, &err) < 0) {
            cli_errorf("no kernel spec named '%s'", argv[i]);
            if (code == NB_EXIT_OK) code = NB_EXIT_INPUT;
            continue;
        }
        /* A kernel directory holds kernel.json and perhaps logos: files only. */
        DIR *d = opendir(k->resource_dir);
        int failed = !d;
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = xasprintf("%s/%s", k->resource_dir, e->d_name);
            if (unlink(p) < 0) failed = 1;
            free(p);
        }
        if (d) closedir(d);
        if (failed || rmdir(k->resource_dir) < 0) {
            cli_errorf("cannot remove %s: %s", k->resource_dir, strerror(errno));
            code = NB_EXIT_OUTPUT;
        } else {
            printf("Removed %s\n", k->resource_dir);
        }
        kspec_free(k);
    }
    return code;
}
