/*
 * kspec — kernelspec discovery and loading, the way jupyter_client does it,
 * without starting Python.
 *
 * A kernelspec is a directory KERNELS/<name>/ holding kernel.json.  The
 * search path (kspec_dirs), highest priority first, is jupyter_core's
 * jupyter_path("kernels") on Linux plus jupyter_client's IPython dir:
 *
 *   1. each non-empty entry of $JUPYTER_PATH (':'-separated, trailing '/'
 *      stripped);
 *   2. user:  $JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter, else
 *             realpath($HOME)/.local/share/jupyter; then, when Python's user
 *             site would be enabled (not a venv without system site packages,
 *             $PYTHONNOUSERSITE unset), ($PYTHONUSERBASE or ~/.local)/share/jupyter
 *             if it differs;
 *      env:   {prefix}/share/jupyter, unless it is one of the system dirs;
 *      user comes first, except that env comes first when
 *      $JUPYTER_PREFER_ENV_PATH is set to a true value, or it is unset and
 *      the prefix is a venv (has pyvenv.cfg) owned by us, or a non-base conda
 *      env ($CONDA_DEFAULT_ENV != "base") owned by us — jupyter_core's
 *      prefer_environment_over_user();
 *   3. system: /usr/local/share/jupyter, /usr/share/jupyter (unless already
 *      listed);
 *   each + "/kernels"; then 4. ($IPYTHONDIR or realpath($HOME)/.ipython)/kernels,
 *   which jupyter_client appends when IPython is importable (we always do).
 *
 * {prefix} is Python's sys.prefix, guessed without running Python
 * (kspec_sys_prefix): $VIRTUAL_ENV if non-empty, else $CONDA_PREFIX if
 * non-empty, else from the first absolute PATH entry holding an executable
 * python3 (then python): dirname(dirname(path as found)) if that directory
 * holds share/jupyter or pyvenv.cfg — a venv's bin/python3 is a symlink to the
 * base interpreter, so realpath would leave the venv — else
 * dirname(dirname(realpath(path))) (/usr/bin/python3 -> /usr).  No python at
 * all: no env dir.
 *
 * Names: the directory name lower-cased (ASCII); lookups are case-insensitive.
 * The first directory on the path that has a name wins; inside one directory
 * entries are taken in case-insensitive name order (ties by strcmp), so
 * results never depend on readdir order — jupyter follows os.listdir order
 * there, and its list (last of "Foo"/"foo" wins) and lookup (first wins)
 * disagree.
 *
 * Not emulated: jupyter_client also lists "python3" with no kernel.json at all
 * when ipykernel is importable (ensure_native_kernel, the spec coming from
 * ipykernel's get_kernel_dict()).  Finding that out needs a Python start, so
 * nbhub only sees kernelspecs that exist on disk; `python -m ipykernel
 * install --sys-prefix` (or --user) makes one.  Also not emulated:
 * JUPYTER_PLATFORM_DIRS, KernelSpecManager config (allowed_kernelspecs,
 * kernel_dirs), kernel provisioners.
 *
 * Ownership: every char * / char ** / json_t * returned is new and owned by
 * the caller (free with the matching *_free, free(), or json_decref);
 * a kspec_t owns all of its fields.
 */
#ifndef NBHUB_KSPEC_H
#define NBHUB_KSPEC_H

#include <stddef.h>
#include <jansson.h>
#include "util/err.h"

typedef struct kspec {
    char   *name;          /* directory name, lower-cased as jupyter does */
    char   *resource_dir;  /* absolute path of the kernel's directory (symlinks kept) */
    char  **argv;          /* NULL-terminated, as in kernel.json (still containing {connection_file}) */
    char   *display_name;  /* "" when absent */
    char   *language;      /* "" when absent */
    json_t *env;           /* object or NULL */
    json_t *metadata;      /* object or NULL */
    json_t *raw;           /* the whole kernel.json */
    int     interrupt_signal; /* 1 = interrupt_mode "signal" (default), 0 = "message" */
} kspec_t;

/* One kernelspec directory found by a scan. */
typedef struct kspec_ref {
    char *name;            /* lower-cased directory name */
    char *resource_dir;    /* absolute */
    int   rank;            /* index of the first data dir (search path entry
                              without "/kernels") that is a string prefix of
                              resource_dir, -1 if none: the sort key
                              `jupyter kernelspec list` uses */
} kspec_ref_t;

/* The kernel search path described above, highest priority first: a fresh
 * NULL-terminated array of fresh strings, made absolute against the cwd (not
 * resolved), duplicates removed (first kept).  Directories need not exist. */
char **kspec_dirs(void);
void   kspec_dirs_free(char **dirs);

/* Python's sys.prefix as guessed by the rule above (fresh), or NULL. */
char *kspec_sys_prefix(void);
/* jupyter_core's jupyter_data_dir() (where `--user` kernel specs go). */
char *kspec_user_data_dir(void);

/* Every kernelspec directory (a directory holding a kernel.json regular
 * file) on the search path, first hit per name, in search-path order.
 * Nothing is parsed.  *n receives the count; the array may be NULL when 0. */
kspec_ref_t *kspec_scan(size_t *n);
void         kspec_scan_free(kspec_ref_t *refs, size_t n);

/* Find a kernel by name (case-insensitive) on the search path and load it;
 * first hit wins.  -ENOENT with "no such kernel 'X'" if absent (the caller
 * appends kspec_names()); a load error of the spec found is returned as is. */
int kspec_find(const char *name, kspec_t **out, nb_err_t *err);

/* All loadable kernels, first hit per name, as a new object shaped like
 * `jupyter kernelspec list --json`:
 *   {"kernelspecs": {"NAME": {"resource_dir": "...", "spec": {argv, env,
 *    display_name, language, interrupt_mode, metadata, kernel_protocol_version}}}}
 * with jupyter's defaults filled in (env {}, display_name "", language "",
 * interrupt_mode "signal", metadata {}, kernel_protocol_version "").
 * Specs that fail to load are left out, as jupyter does (it logs a warning;
 * callers that want one use kspec_scan + kspec_load_dir). */
json_t *kspec_list_json(void);

/* Names of every kernelspec found by kspec_scan, sorted, joined with ", "
 * (fresh string; "" when there is none), for error messages. */
char *kspec_names(void);

/* Load DIR/kernel.json as kernel NAME (stored lower-cased).  Errors carry the
 * file's path: bad JSON -> "PATH:LINE:COL: jansson's text"; a missing or
 * empty argv, a non-string argv element, or a field of the wrong type
 * (display_name, language, kernel_protocol_version: string; env: object of
 * strings; metadata: object; interrupt_mode: "signal" or "message", any case)
 * -> "PATH: ..." message.  -EINVAL for content errors, -errno for I/O. */
int kspec_load_dir(const char *name, const char *dir, kspec_t **out, nb_err_t *err);
void kspec_free(kspec_t *k);

/* The argv to exec for a launch (fresh NULL-terminated array of fresh
 * strings).  In every element "{connection_file}" becomes conn_path,
 * "{resource_dir}" k->resource_dir and "{prefix}" the owning prefix (below)
 * or kspec_sys_prefix(); other {name}s stay (jupyter's format_kernel_cmd; the
 * caller passes an absolute conn_path, jupyter realpaths it).
 * If argv[0] is "python", "python3" or "python3.N": when resource_dir is
 * <prefix>/share/jupyter/kernels/<dir> and <prefix>/bin/<argv0> is
 * executable, argv[0] becomes that (the interpreter of the environment that
 * owns the spec — jupyter uses its own sys.executable instead); else
 * kspec_sys_prefix()/bin/<argv0> if executable; else it is left for PATH. */
char **kspec_argv(const kspec_t *k, const char *conn_path);

/* 1 if the kernel is IPython's (ipykernel), so it keeps a history database
 * that --HistoryManager.hist_file points elsewhere.  nbclient's rule is
 * jupyter_client's KernelManager.ipykernel: the spec's name is python,
 * python2 or python3.  nbhub also recognises an ipykernel under any name
 * by its argv ("-m ipykernel_launcher" / "-m ipykernel", or a path to
 * ipykernel_launcher.py), as `python -m ipykernel install --name X` writes
 * it (and nbhub's own PySpark specs). */
int kspec_is_ipykernel(const kspec_t *k);

/* The kernel's environment, a fresh NULL-terminated "K=V" array: the current
 * environ, overlaid with k->env, overlaid with extra (NULL-terminated "K=V"
 * list, may be NULL; extra wins).  Each k->env value goes through Python's
 * string.Template.safe_substitute against environ+extra: "$$" -> "$",
 * "$NAME" and "${NAME}" (NAME = [_A-Za-z][_A-Za-z0-9]*) -> the value when
 * set, else left as is; any other "$" stays.  Like jupyter_client's
 * _finalize_env, PYTHONEXECUTABLE is dropped when the language starts with
 * "python" (any case). */
char **kspec_env(const kspec_t *k, char *const *extra);

/* Free a NULL-terminated array of strings (argv/env/dirs results). */
void kspec_strv_free(char **v);

#endif
