/*
 * kspec — kernelspec discovery and loading; see kspec.h for the rules.
 *
 * Everything is recomputed from the environment and the file system on each
 * call: a scan is a handful of readdir()s, nbhub does it once or twice per
 * run, and caching would be global mutable state that tests (which setenv
 * between cases) would have to reset.
 *
 * The path rules are transcribed from jupyter_core.paths (jupyter_data_dir,
 * jupyter_path, prefer_environment_over_user) and jupyter_client.kernelspec
 * (KernelSpecManager.kernel_dirs, _list_kernels_in, _find_spec_directory);
 * the env substitution from string.Template.safe_substitute.  Where Python
 * facts (sys.prefix, site.ENABLE_USER_SITE) are needed they are inferred from
 * files instead of asked from an interpreter, because a Python start costs
 * more than the whole of nbhub's own startup.
 */
#include "kernel/kspec.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A growable NULL-terminated string vector. */
typedef struct kspec_strv {
    char  **v;
    size_t  n, cap;
} kspec_strv_t;

static void kspec_strv_push(kspec_strv_t *s, char *str)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

/* Hand the vector over, always as a valid (possibly empty) array. */
static char **kspec_strv_detach(kspec_strv_t *s)
{
    if (!s->v) s->v = xcalloc(1, sizeof *s->v);
    char **v = s->v;
    s->v = NULL;
    s->n = s->cap = 0;
    return v;
}

static int kspec_strv_has(const kspec_strv_t *s, const char *str)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], str) == 0) return 1;
    return 0;
}

void kspec_strv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

void kspec_dirs_free(char **dirs) { kspec_strv_free(dirs); }

/* ---- small file-system and environment helpers ---- */

static int kspec_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int kspec_is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int kspec_is_exec(const char *p)
{
    return kspec_is_file(p) && access(p, X_OK) == 0;
}

/* getenv that treats "" as unset, as Python's `if os.environ.get(X)` does. */
static const char *kspec_getenv(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* jupyter_core.paths.envset: set and not one of the false spellings. */
static int kspec_envset(const char *name)
{
    static const char *const no[] = { "no", "n", "false", "off", "0", "0.0" };
    const char *v = getenv(name);
    if (!v) return 0;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(v, no[i]) == 0) return 0;
    return 1;
}

/* Absolute form of p (cwd prepended, not resolved), trailing '/' removed. */
static char *kspec_abspath(const char *p)
{
    char *r;
    if (p[0] == '/') {
        r = xstrdup(p);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return xstrdup(p);
        r = strcmp(p, ".") == 0 ? xstrdup(cwd) : xasprintf("%s/%s", cwd, p);
    }
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') r[--n] = '\0';
    return r;
}

/* realpath when the path exists, else the path itself (Path.resolve()). */
static char *kspec_resolve(const char *p)
{
    char *r = realpath(p, NULL);
    return r ? r : xstrdup(p);
}

/* Path("~").expanduser(): $HOME, else the passwd entry. */
static char *kspec_home(void)
{
    const char *h = getenv("HOME");
    if (h && *h) return xstrdup(h);
    struct passwd pw, *res = NULL;
    char tmp[4096];
    if (getpwuid_r(geteuid(), &pw, tmp, sizeof tmp, &res) == 0 && res && res->pw_dir)
        return xstrdup(res->pw_dir);
    return xstrdup("/");
}

static char *kspec_dirname2(const char *p)
{
    char *d1 = fs_dirname(p);
    char *d2 = fs_dirname(d1);
    free(d1);
    return d2;
}

/* Python's sys.prefix without Python; see kspec.h for why each step. */
char *kspec_sys_prefix(void)
{
    const char *v = kspec_getenv("VIRTUAL_ENV");
    if (v) return kspec_abspath(v);
    v = kspec_getenv("CONDA_PREFIX");
    if (v) return kspec_abspath(v);

    const char *path = getenv("PATH");
    if (!path) return NULL;
    static const char *const names[] = { "python3", "python" };
    for (size_t ni = 0; ni < 2; ni++) {
        const char *p = path;
        while (*p) {
            size_t len = strcspn(p, ":");
            /* Relative PATH entries depend on the cwd at lookup time; a
             * prefix guessed from one would be fragile, so skip them. */
            if (len > 0 && p[0] == '/') {
                char *exe = xasprintf("%.*s/%s", (int)len, p, names[ni]);
                if (kspec_is_exec(exe)) {
                    char *prefix = kspec_dirname2(exe);
                    char *sj = xasprintf("%s/share/jupyter", prefix);
                    char *cfg = xasprintf("%s/pyvenv.cfg", prefix);
                    int keep = kspec_is_dir(sj) || kspec_is_file(cfg);
                    free(sj);
                    free(cfg);
                    if (!keep) {
                        char *real = kspec_resolve(exe);
                        free(prefix);
                        prefix = kspec_dirname2(real);
                        free(real);
                    }
                    free(exe);
                    return prefix;
                }
                free(exe);
            }
            p += len;
            if (*p == ':') p++;
        }
    }
    return NULL;
}

/* jupyter_core's _do_i_own: owner of the first existing ancestor is us. */
static int kspec_owned(const char *path)
{
    char *p = kspec_resolve(path);
    struct stat st;
    while (stat(p, &st) != 0) {
        char *up = fs_dirname(p);
        int top = strcmp(up, p) == 0;
        free(p);
        p = up;
        if (top) break;
    }
    int ok = stat(p, &st) == 0 && st.st_uid == geteuid();
    free(p);
    return ok;
}

/* Value of "include-system-site-packages" in PREFIX/pyvenv.cfg: 1 = true,
 * 0 = false or absent key, -1 = no pyvenv.cfg (not a venv). */
static int kspec_venv_system_site(const char *prefix)
{
    char *cfg = xasprintf("%s/pyvenv.cfg", prefix);
    FILE *f = fopen(cfg, "re");
    free(cfg);
    if (!f) return -1;
    int r = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        char *k = line, *ke = eq;
        while (isspace((unsigned char)*k)) k++;
        while (ke > k && isspace((unsigned char)ke[-1])) ke--;
        if ((size_t)(ke - k) != strlen("include-system-site-packages") ||
            strncasecmp(k, "include-system-site-packages", (size_t)(ke - k)) != 0)
            continue;
        char *val = eq + 1;
        while (isspace((unsigned char)*val)) val++;
        r = strncasecmp(val, "true", 4) == 0;
    }
    fclose(f);
    return r;
}

/* jupyter_core.paths.prefer_environment_over_user, with our prefix guess. */
static int kspec_prefer_env(const char *prefix)
{
    if (getenv("JUPYTER_PREFER_ENV_PATH")) return kspec_envset("JUPYTER_PREFER_ENV_PATH");
    if (!prefix) return 0;
    if (kspec_venv_system_site(prefix) >= 0 && kspec_owned(prefix)) return 1;
    const char *conda = getenv("CONDA_PREFIX");
    const char *cenv = getenv("CONDA_DEFAULT_ENV");
    if (conda && strncmp(prefix, conda, strlen(conda)) == 0 &&
        strcmp(cenv ? cenv : "base", "base") != 0 && kspec_owned(prefix))
        return 1;
    return 0;
}

/* jupyter_core.paths.jupyter_data_dir on Linux. */
char *kspec_user_data_dir(void)
{
    const char *v = kspec_getenv("JUPYTER_DATA_DIR");
    if (v) return kspec_abspath(v);
    v = kspec_getenv("XDG_DATA_HOME");
    if (v) {
        char *d = xasprintf("%s/jupyter", v);
        char *a = kspec_abspath(d);
        free(d);
        return a;
    }
    char *home = kspec_home();
    char *rhome = kspec_resolve(home);
    char *d = xasprintf("%s/.local/share/jupyter", strcmp(rhome, "/") == 0 ? "" : rhome);
    free(home);
    free(rhome);
    return d;
}

/* site.ENABLE_USER_SITE's value in the interpreter of PREFIX, roughly:
 * off with PYTHONNOUSERSITE, in a venv without system site packages, or in a
 * setuid/setgid process. */
static int kspec_user_site_enabled(const char *prefix)
{
    if (kspec_getenv("PYTHONNOUSERSITE")) return 0;
    if (getuid() != geteuid() || getgid() != getegid()) return 0;
    if (prefix && kspec_venv_system_site(prefix) == 0) return 0;
    return 1;
}

static void kspec_push_unique(kspec_strv_t *s, char *p)
{
    if (kspec_strv_has(s, p)) free(p);
    else kspec_strv_push(s, p);
}

/* jupyter_path() (the data dirs, without "/kernels"), all absolute. */
static char **kspec_data_dirs(void)
{
    kspec_strv_t out = { 0 };
    const char *jp = kspec_getenv("JUPYTER_PATH");
    for (const char *p = jp; p && *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0) {
            char *e = xstrndup(p, len);
            size_t n = strlen(e);
            while (n > 0 && e[n - 1] == '/') e[--n] = '\0';
            /* An entry that was empty or all slashes would, in Python, join
             * to the relative "kernels"; nobody means that, so skip it. */
            if (n > 0) kspec_push_unique(&out, kspec_abspath(e));
            free(e);
        }
        p += len;
        if (*p == ':') p++;
    }

    char *prefix = kspec_sys_prefix();
    static const char *const sys_dirs[] = { "/usr/local/share/jupyter", "/usr/share/jupyter" };

    kspec_strv_t user = { 0 };
    kspec_strv_push(&user, kspec_user_data_dir());
    if (kspec_user_site_enabled(prefix)) {
        const char *ub = kspec_getenv("PYTHONUSERBASE");
        char *home = ub ? NULL : kspec_home();
        char *d = ub ? xasprintf("%s/share/jupyter", ub)
                     : xasprintf("%s/.local/share/jupyter", strcmp(home, "/") == 0 ? "" : home);
        kspec_push_unique(&user, kspec_abspath(d));
        free(d);
        free(home);
    }

    char *envdir = NULL;
    if (prefix) {
        envdir = xasprintf("%s/share/jupyter", strcmp(prefix, "/") == 0 ? "" : prefix);
        for (size_t i = 0; i < 2; i++)
            if (strcmp(envdir, sys_dirs[i]) == 0) {
                free(envdir);
                envdir = NULL;
                break;
            }
    }

    int env_first = kspec_prefer_env(prefix);
    if (env_first && envdir) kspec_push_unique(&out, envdir), envdir = NULL;
    for (size_t i = 0; i < user.n; i++) kspec_push_unique(&out, user.v[i]);
    free(user.v);
    if (envdir) kspec_push_unique(&out, envdir);
    for (size_t i = 0; i < 2; i++) kspec_push_unique(&out, xstrdup(sys_dirs[i]));
    free(prefix);
    return kspec_strv_detach(&out);
}

/* IPython's get_ipython_dir() + "/kernels" (minus its XDG legacy case). */
static char *kspec_ipython_kernels(void)
{
    const char *ip = kspec_getenv("IPYTHONDIR");
    char *d;
    if (ip) {
        char *a = kspec_abspath(ip);
        d = xasprintf("%s/kernels", a);
        free(a);
    } else {
        char *home = kspec_home();
        char *rhome = kspec_resolve(home);
        d = xasprintf("%s/.ipython/kernels", strcmp(rhome, "/") == 0 ? "" : rhome);
        free(home);
        free(rhome);
    }
    return d;
}

/* The kernel dirs for a given jupyter_path() list. */
static char **kspec_kernel_dirs(char *const *data)
{
    kspec_strv_t out = { 0 };
    for (char *const *p = data; *p; p++)
        kspec_push_unique(&out, xasprintf("%s/kernels", strcmp(*p, "/") == 0 ? "" : *p));
    kspec_push_unique(&out, kspec_ipython_kernels());
    return kspec_strv_detach(&out);
}

char **kspec_dirs(void)
{
    char **data = kspec_data_dirs();
    char **dirs = kspec_kernel_dirs(data);
    kspec_strv_free(data);
    return dirs;
}

/* ---- scanning ---- */

static void kspec_lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static int kspec_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Case-insensitive order, ties (names differing only in case) by strcmp. */
static int kspec_cmp_name(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int c = strcasecmp(x, y);
    return c ? c : strcmp(x, y);
}

/* Entry names of DIR (no "." / ".."), sorted by kspec_cmp_name so results
 * never depend on readdir order; empty when unreadable. */
static char **kspec_listdir(const char *dir)
{
    kspec_strv_t s = { 0 };
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            kspec_strv_push(&s, xstrdup(de->d_name));
        }
        closedir(d);
    }
    if (s.n > 1) qsort(s.v, s.n, sizeof *s.v, kspec_cmp_name);
    return kspec_strv_detach(&s);
}

/* jupyter_client's _is_kernel_dir (both tests follow symlinks). */
static int kspec_is_kernel_dir(const char *path)
{
    if (!kspec_is_dir(path)) return 0;
    char *kj = xasprintf("%s/kernel.json", path);
    int ok = kspec_is_file(kj);
    free(kj);
    return ok;
}

kspec_ref_t *kspec_scan(size_t *n)
{
    char **data = kspec_data_dirs();
    char **dirs = kspec_kernel_dirs(data);
    kspec_ref_t *refs = NULL;
    size_t cnt = 0, cap = 0;
    for (char **dp = dirs; *dp; dp++) {
        char **ents = kspec_listdir(*dp);
        for (char **e = ents; *e; e++) {
            char *path = xasprintf("%s/%s", *dp, *e);
            char *name = xstrdup(*e);
            kspec_lower(name);
            int seen = 0;
            for (size_t i = 0; i < cnt && !seen; i++) seen = strcmp(refs[i].name, name) == 0;
            if (seen || !kspec_is_kernel_dir(path)) {
                free(path);
                free(name);
                continue;
            }
            if (cnt == cap) {
                cap = cap ? cap * 2 : 8;
                refs = xrealloc(refs, cap * sizeof *refs);
            }
            int rank = -1;
            for (int i = 0; data[i] && rank < 0; i++)
                if (strncmp(path, data[i], strlen(data[i])) == 0) rank = i;
            refs[cnt++] = (kspec_ref_t){ name, path, rank };
        }
        kspec_strv_free(ents);
    }
    kspec_strv_free(dirs);
    kspec_strv_free(data);
    *n = cnt;
    return refs;
}

void kspec_scan_free(kspec_ref_t *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(refs[i].name);
        free(refs[i].resource_dir);
    }
    free(refs);
}

/* ---- loading ---- */

void kspec_free(kspec_t *k)
{
    if (!k) return;
    free(k->name);
    free(k->resource_dir);
    kspec_strv_free(k->argv);
    free(k->display_name);
    free(k->language);
    json_decref(k->env);
    json_decref(k->metadata);
    json_decref(k->raw);
    free(k);
}

/* A string field that traitlets' Unicode() would accept: absent -> "". */
static int kspec_get_string(json_t *root, const char *key, const char *path,
                            char **out, nb_err_t *err)
{
    json_t *v = json_object_get(root, key);
    if (v && !json_is_string(v))
        return err_set(err, -EINVAL, "%s: '%s' must be a string", path, key);
    if (out) *out = xstrdup(v ? json_string_value(v) : "");
    return 0;
}

int kspec_load_dir(const char *name, const char *dir, kspec_t **out, nb_err_t *err)
{
    *out = NULL;
    char *absdir = kspec_abspath(dir);
    char *path = xasprintf("%s/kernel.json", absdir);
    char *text = NULL;
    size_t len = 0;
    kspec_t *k = NULL;
    int rc = fs_read_all(path, &text, &len, err);
    if (rc < 0) goto out;

    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        /* jansson reports column 0 at the start of a line (an empty file);
         * editors and Python count from 1. */
        rc = err_set(err, -EINVAL, "%s:%d:%d: %s", path, jerr.line,
                     jerr.column < 1 ? 1 : jerr.column, jerr.text);
        goto out;
    }
    k = xcalloc(1, sizeof *k);
    k->raw = root;
    k->name = xstrdup(name);
    kspec_lower(k->name);
    k->resource_dir = absdir;
    absdir = NULL;
    k->interrupt_signal = 1;
    if (!json_is_object(root)) {
        rc = err_set(err, -EINVAL, "%s: kernel.json must hold a JSON object", path);
        goto out;
    }

    json_t *argv = json_object_get(root, "argv");
    if (!json_is_array(argv) || json_array_size(argv) == 0) {
        rc = err_set(err, -EINVAL, "%s: 'argv' is missing or not a non-empty array", path);
        goto out;
    }
    k->argv = xcalloc(json_array_size(argv) + 1, sizeof *k->argv);
    for (size_t i = 0; i < json_array_size(argv); i++) {
        json_t *a = json_array_get(argv, i);
        if (!json_is_string(a)) {
            rc = err_set(err, -EINVAL, "%s: argv[%zu] is not a string", path, i);
            goto out;
        }
        k->argv[i] = xstrdup(json_string_value(a));
    }

    if ((rc = kspec_get_string(root, "display_name", path, &k->display_name, err)) < 0 ||
        (rc = kspec_get_string(root, "language", path, &k->language, err)) < 0 ||
        (rc = kspec_get_string(root, "kernel_protocol_version", path, NULL, err)) < 0)
        goto out;

    json_t *env = json_object_get(root, "env");
    if (env) {
        if (!json_is_object(env)) {
            rc = err_set(err, -EINVAL, "%s: 'env' must be an object", path);
            goto out;
        }
        const char *key;
        json_t *val;
        json_object_foreach(env, key, val)
            if (!json_is_string(val)) {
                rc = err_set(err, -EINVAL, "%s: env['%s'] must be a string", path, key);
                goto out;
            }
        k->env = json_incref(env);
    }
    json_t *md = json_object_get(root, "metadata");
    if (md) {
        if (!json_is_object(md)) {
            rc = err_set(err, -EINVAL, "%s: 'metadata' must be an object", path);
            goto out;
        }
        k->metadata = json_incref(md);
    }
    json_t *im = json_object_get(root, "interrupt_mode");
    if (im) {
        const char *s = json_string_value(im);   /* NULL when not a string */
        if (s && strcasecmp(s, "signal") == 0) k->interrupt_signal = 1;
        else if (s && strcasecmp(s, "message") == 0) k->interrupt_signal = 0;
        else {
            rc = err_set(err, -EINVAL, "%s: 'interrupt_mode' must be \"signal\" or \"message\"", path);
            goto out;
        }
    }
    *out = k;
    k = NULL;
    rc = 0;
out:
    kspec_free(k);
    free(text);
    free(path);
    free(absdir);
    return rc;
}

int kspec_find(const char *name, kspec_t **out, nb_err_t *err)
{
    *out = NULL;
    /* Walk the path rather than kspec_scan so the first hit stops the
     * search, as _find_spec_directory does. */
    char **dirs = kspec_dirs();
    int rc = 1;
    for (char **dp = dirs; *dp && rc == 1; dp++) {
        char **ents = kspec_listdir(*dp);
        for (char **e = ents; *e && rc == 1; e++) {
            if (strcasecmp(*e, name) != 0) continue;
            char *path = xasprintf("%s/%s", *dp, *e);
            if (kspec_is_kernel_dir(path)) rc = kspec_load_dir(*e, path, out, err);
            free(path);
        }
        kspec_strv_free(ents);
    }
    kspec_strv_free(dirs);
    if (rc == 1) rc = err_set(err, -ENOENT, "no such kernel '%s'", name);
    return rc;
}

/* KernelSpec.to_dict() of a loaded spec, key order as jupyter prints it. */
static json_t *kspec_to_dict(const kspec_t *k)
{
    json_t *d = json_object();
    json_t *argv = json_array();
    for (char **a = k->argv; *a; a++) json_array_append_new(argv, json_string(*a));
    json_object_set_new(d, "argv", argv);
    json_object_set_new(d, "env", k->env ? json_deep_copy(k->env) : json_object());
    json_object_set_new(d, "display_name", json_string(k->display_name));
    json_object_set_new(d, "language", json_string(k->language));
    json_object_set_new(d, "interrupt_mode", json_string(k->interrupt_signal ? "signal" : "message"));
    json_object_set_new(d, "metadata", k->metadata ? json_deep_copy(k->metadata) : json_object());
    json_t *kpv = json_object_get(k->raw, "kernel_protocol_version");
    json_object_set_new(d, "kernel_protocol_version", kpv ? json_incref(kpv) : json_string(""));
    return d;
}

json_t *kspec_list_json(void)
{
    size_t n;
    kspec_ref_t *refs = kspec_scan(&n);
    json_t *specs = json_object();
    for (size_t i = 0; i < n; i++) {
        kspec_t *k;
        if (kspec_load_dir(refs[i].name, refs[i].resource_dir, &k, NULL) < 0) continue;
        json_t *e = json_object();
        json_object_set_new(e, "resource_dir", json_string(k->resource_dir));
        json_object_set_new(e, "spec", kspec_to_dict(k));
        json_object_set_new(specs, k->name, e);
        kspec_free(k);
    }
    kspec_scan_free(refs, n);
    json_t *root = json_object();
    json_object_set_new(root, "kernelspecs", specs);
    return root;
}

char *kspec_names(void)
{
    size_t n;
    kspec_ref_t *refs = kspec_scan(&n);
    char **names = xcalloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++) names[i] = refs[i].name;
    if (n > 1) qsort(names, n, sizeof *names, kspec_cmp_str);
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i) buf_puts(&b, ", ");
        buf_puts(&b, names[i]);
    }
    free(names);
    kspec_scan_free(refs, n);
    return buf_detach(&b);
}

/* ---- launching ---- */

/* The prefix whose share/jupyter/kernels holds the spec, or NULL. */
static char *kspec_owning_prefix(const char *resource_dir)
{
    static const char suffix[] = "/share/jupyter/kernels";
    const char *slash = strrchr(resource_dir, '/');
    if (!slash) return NULL;
    size_t plen = (size_t)(slash - resource_dir);
    size_t slen = sizeof suffix - 1;
    if (plen < slen || memcmp(resource_dir + plen - slen, suffix, slen) != 0) return NULL;
    return xstrndup(resource_dir, plen - slen);   /* "" = the root prefix */
}

/* "python", "python3" or "python3.N": the names jupyter swaps for an interpreter. */
static int kspec_is_python_name(const char *s)
{
    if (strcmp(s, "python") == 0 || strcmp(s, "python3") == 0) return 1;
    if (strncmp(s, "python3.", 8) != 0 || !s[8]) return 0;
    for (s += 8; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* jupyter's format_kernel_cmd: "{name}" with NAME in [A-Za-z0-9_]+ replaced
 * when known; anything else copied. */
static char *kspec_format_arg(const char *arg, const char *const *keys,
                              const char *const *vals, size_t nkeys)
{
    buf_t b = BUF_INIT;
    const char *p = arg;
    while (*p) {
        if (*p == '{') {
            size_t n = 0;
            while (isalnum((unsigned char)p[1 + n]) || p[1 + n] == '_') n++;
            if (n > 0 && p[1 + n] == '}') {
                size_t i;
                for (i = 0; i < nkeys; i++)
                    if (vals[i] && strlen(keys[i]) == n && memcmp(keys[i], p + 1, n) == 0) break;
                if (i < nkeys) buf_puts(&b, vals[i]);
                else buf_append(&b, p, n + 2);
                p += n + 2;
                continue;
            }
        }
        buf_putc(&b, *p++);
    }
    return buf_detach(&b);
}

char **kspec_argv(const kspec_t *k, const char *conn_path)
{
    char *owner = kspec_owning_prefix(k->resource_dir);
    char *active = kspec_sys_prefix();
    const char *prefix = owner ? owner : active;
    const char *keys[] = { "connection_file", "resource_dir", "prefix" };
    const char *vals[] = { conn_path, k->resource_dir, prefix };

    kspec_strv_t out = { 0 };
    for (char **a = k->argv; *a; a++)
        kspec_strv_push(&out, kspec_format_arg(*a, keys, vals, 3));

    if (out.n > 0 && kspec_is_python_name(out.v[0])) {
        const char *cands[] = { owner, active };
        for (size_t i = 0; i < 2; i++) {
            if (!cands[i]) continue;
            char *exe = xasprintf("%s/bin/%s", strcmp(cands[i], "/") == 0 ? "" : cands[i], out.v[0]);
            if (kspec_is_exec(exe)) {
                free(out.v[0]);
                out.v[0] = exe;
                break;
            }
            free(exe);
        }
    }
    free(owner);
    free(active);
    return kspec_strv_detach(&out);
}

int kspec_is_ipykernel(const kspec_t *k)
{
    if (k->name && (strcmp(k->name, "python") == 0 || strcmp(k->name, "python2") == 0 ||
                    strcmp(k->name, "python3") == 0))
        return 1;
    for (char **a = k->argv; a && *a; a++) {
        const char *base = strrchr(*a, '/');
        base = base ? base + 1 : *a;
        if (strcmp(*a, "ipykernel_launcher") == 0 || strcmp(*a, "ipykernel") == 0 ||
            strcmp(base, "ipykernel_launcher.py") == 0)
            return 1;
    }
    return 0;
}

/* Look NAME (length n) up in extra (which wins) then environ. */
static const char *kspec_lookup(const char *name, size_t n, char *const *extra)
{
    for (char *const *e = extra; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

static int kspec_id_start(char c) { return c == '_' || isalpha((unsigned char)c); }
static int kspec_id_char(char c) { return c == '_' || isalnum((unsigned char)c); }

/* string.Template(s).safe_substitute(environ + extra). */
static char *kspec_template(const char *s, char *const *extra)
{
    buf_t b = BUF_INIT;
    const char *p = s;
    while (*p) {
        if (*p != '$') {
            buf_putc(&b, *p++);
            continue;
        }
        if (p[1] == '$') {                       /* escaped */
            buf_putc(&b, '$');
            p += 2;
            continue;
        }
        const char *id = p + 1;
        int braced = *id == '{';
        if (braced) id++;
        size_t n = 0;
        if (kspec_id_start(id[0]))
            while (kspec_id_char(id[n])) n++;
        if (n == 0 || (braced && id[n] != '}')) {  /* invalid: '$' stays */
            buf_putc(&b, *p++);
            continue;
        }
        const char *end = id + n + (braced ? 1 : 0);
        const char *val = kspec_lookup(id, n, extra);
        if (val) buf_puts(&b, val);
        else buf_append(&b, p, (size_t)(end - p));
        p = end;
    }
    return buf_detach(&b);
}

/* Length of the key of "K=V" (whole string when there is no '='). */
static size_t kspec_keylen(const char *kv)
{
    return strcspn(kv, "=");
}

static int kspec_key_in(const char *kv, size_t klen, char *const *list)
{
    for (char *const *e = list; e && *e; e++)
        if (kspec_keylen(*e) == klen && strncmp(*e, kv, klen) == 0) return 1;
    return 0;
}

char **kspec_env(const kspec_t *k, char *const *extra)
{
    int drop_pyexe = k->language && strncasecmp(k->language, "python", 6) == 0;

    /* The spec's env, substituted, as "K=V" strings. */
    kspec_strv_t spec = { 0 };
    if (k->env) {
        const char *key;
        json_t *val;
        json_object_foreach(k->env, key, val) {
            if (!*key || strchr(key, '=')) continue;   /* cannot be an env name */
            char *v = kspec_template(json_string_value(val), extra);
            kspec_strv_push(&spec, xasprintf("%s=%s", key, v));
            free(v);
        }
    }
    char **specv = kspec_strv_detach(&spec);

    kspec_strv_t out = { 0 };
    char *const *layers[] = { environ, specv, extra };
    for (size_t li = 0; li < 3; li++) {
        for (char *const *e = layers[li]; e && *e; e++) {
            size_t kl = kspec_keylen(*e);
            if ((*e)[kl] != '=') continue;
            if (drop_pyexe && kl == 16 && strncmp(*e, "PYTHONEXECUTABLE", 16) == 0) continue;
            /* Skip what a later entry or layer overrides: each key once. */
            int overridden = kspec_key_in(*e, kl, e + 1);
            for (size_t lj = li + 1; lj < 3 && !overridden; lj++)
                overridden = kspec_key_in(*e, kl, layers[lj]);
            if (!overridden) kspec_strv_push(&out, xstrdup(*e));
        }
    }
    kspec_strv_free(specv);
    return kspec_strv_detach(&out);
}
