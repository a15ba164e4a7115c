/*
 * test_kspec — kernelspec discovery against throw-away directory trees.
 *
 * Every test points the whole search path into a fresh temporary directory
 * through the environment (JUPYTER_PATH, JUPYTER_DATA_DIR, VIRTUAL_ENV,
 * IPYTHONDIR, PATH...), so the machine's own kernels never leak in except
 * from the fixed system dirs (/usr/local/share/jupyter, /usr/share/jupyter),
 * which the assertions are written to tolerate: kernel names used here all
 * start with "nbt".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kernel/kspec.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct test_kspec_ctx {
    char *root;        /* realpath of the temporary directory */
    char *saved_path;  /* PATH before the test */
} test_kspec_ctx_t;

static char *test_kspec_p(const test_kspec_ctx_t *c, const char *rel)
{
    return xasprintf("%s/%s", c->root, rel);
}

static void test_kspec_mkdirs(const char *path)
{
    char *tmp = xstrdup(path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0755);
            *s = '/';
        }
    mkdir(tmp, 0755);
    free(tmp);
}

/* Write ROOT/rel (parents created) with the given content. */
static void test_kspec_write(const test_kspec_ctx_t *c, const char *rel, const char *content, int mode)
{
    char *path = test_kspec_p(c, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    test_kspec_mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    chmod(path, (mode_t)mode);
    free(path);
}

/* A kernel.json under ROOT/<dir>/kernels/<name>. */
static void test_kspec_kernel(const test_kspec_ctx_t *c, const char *dir, const char *name, const char *json)
{
    char *rel = xasprintf("%s/kernels/%s/kernel.json", dir, name);
    test_kspec_write(c, rel, json, 0644);
    free(rel);
}

static int test_kspec_rm(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

/* Point every search-path source into the temporary tree. */
static int test_kspec_setup(void **state)
{
    test_kspec_ctx_t *c = xcalloc(1, sizeof *c);
    char tmpl[] = "/tmp/nbhub-test-kspec-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    c->root = realpath(tmpl, NULL);
    const char *path = getenv("PATH");
    c->saved_path = xstrdup(path ? path : "");

    char *s;
    setenv("JUPYTER_PATH", (s = xasprintf("%s/a:%s/b/", c->root, c->root)), 1); free(s);
    setenv("JUPYTER_DATA_DIR", (s = test_kspec_p(c, "user")), 1); free(s);
    setenv("IPYTHONDIR", (s = test_kspec_p(c, "ipython")), 1); free(s);
    setenv("VIRTUAL_ENV", (s = test_kspec_p(c, "venv")), 1); free(s);
    setenv("PATH", (s = test_kspec_p(c, "nobin")), 1); free(s);
    setenv("PYTHONNOUSERSITE", "1", 1);
    unsetenv("CONDA_PREFIX");
    unsetenv("CONDA_DEFAULT_ENV");
    unsetenv("JUPYTER_PREFER_ENV_PATH");
    unsetenv("XDG_DATA_HOME");
    unsetenv("PYTHONUSERBASE");
    *state = c;
    return 0;
}

static int test_kspec_teardown(void **state)
{
    test_kspec_ctx_t *c = *state;
    nftw(c->root, test_kspec_rm, 16, FTW_DEPTH | FTW_PHYS);
    setenv("PATH", c->saved_path, 1);
    free(c->saved_path);
    free(c->root);
    free(c);
    return 0;
}

static void test_kspec_assert_dirs(const test_kspec_ctx_t *c, const char *const *want)
{
    char **dirs = kspec_dirs();
    size_t i = 0;
    for (; want[i]; i++) {
        assert_non_null(dirs[i]);
        const char *w = want[i];
        char *full = w[0] == '/' ? xstrdup(w) : test_kspec_p(c, w);
        assert_string_equal(dirs[i], full);
        free(full);
    }
    assert_null(dirs[i]);
    kspec_dirs_free(dirs);
}

/* Search path order: JUPYTER_PATH, env before user in an owned venv, system, IPython. */
static void test_kspec_dirs_order(void **state)
{
    test_kspec_ctx_t *c = *state;
    test_kspec_write(c, "venv/pyvenv.cfg", "include-system-site-packages = false\n", 0644);
    const char *venv_first[] = {
        "a/kernels", "b/kernels", "venv/share/jupyter/kernels", "user/kernels",
        "/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels", "ipython/kernels", NULL };
    test_kspec_assert_dirs(c, venv_first);

    setenv("JUPYTER_PREFER_ENV_PATH", "0", 1);
    const char *user_first[] = {
        "a/kernels", "b/kernels", "user/kernels", "venv/share/jupyter/kernels",
        "/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels", "ipython/kernels", NULL };
    test_kspec_assert_dirs(c, user_first);
    unsetenv("JUPYTER_PREFER_ENV_PATH");

    /* Not a venv (no pyvenv.cfg): user first, as for a plain interpreter. */
    char *cfg = test_kspec_p(c, "venv/pyvenv.cfg");
    unlink(cfg);
    free(cfg);
    test_kspec_assert_dirs(c, user_first);

    /* Empty entries are skipped; XDG_DATA_HOME when JUPYTER_DATA_DIR is unset;
     * a system prefix does not repeat the system dir. */
    char *s;
    setenv("JUPYTER_PATH", (s = xasprintf("::%s/a::", c->root)), 1); free(s);
    unsetenv("JUPYTER_DATA_DIR");
    setenv("XDG_DATA_HOME", (s = test_kspec_p(c, "xdg")), 1); free(s);
    setenv("VIRTUAL_ENV", "/usr", 1);
    const char *xdg[] = {
        "a/kernels", "xdg/jupyter/kernels",
        "/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels", "ipython/kernels", NULL };
    test_kspec_assert_dirs(c, xdg);
}

/* sys.prefix from PATH: a venv's symlinked python keeps the venv prefix,
 * a bare interpreter is resolved to its real prefix. */
static void test_kspec_sys_prefix(void **state)
{
    test_kspec_ctx_t *c = *state;
    unsetenv("VIRTUAL_ENV");
    char *s;

    setenv("PATH", "/nonexistent-nbt", 1);
    assert_null(kspec_sys_prefix());

    test_kspec_write(c, "base/bin/python3.11", "#!/bin/sh\n", 0755);
    test_kspec_mkdirs((s = test_kspec_p(c, "venv/bin"))); free(s);
    char *target = test_kspec_p(c, "base/bin/python3.11");
    char *link = test_kspec_p(c, "venv/bin/python3");
    assert_int_equal(symlink(target, link), 0);
    test_kspec_write(c, "venv/pyvenv.cfg", "home = x\n", 0644);
    char *link2 = test_kspec_p(c, "lnk/bin/python3");
    test_kspec_mkdirs((s = test_kspec_p(c, "lnk/bin"))); free(s);
    assert_int_equal(symlink(target, link2), 0);

    /* relative entries are ignored, first absolute hit wins */
    setenv("PATH", (s = xasprintf("relbin:%s/venv/bin:%s/base/bin", c->root, c->root)), 1); free(s);
    char *p = kspec_sys_prefix();
    char *want = test_kspec_p(c, "venv");
    assert_string_equal(p, want);
    free(p); free(want);

    /* no pyvenv.cfg / share/jupyter next to the link: follow it */
    setenv("PATH", (s = xasprintf("%s/lnk/bin", c->root)), 1); free(s);
    p = kspec_sys_prefix();
    want = test_kspec_p(c, "base");
    assert_string_equal(p, want);
    free(p); free(want);

    /* ... unless the link's prefix holds share/jupyter */
    test_kspec_mkdirs((s = test_kspec_p(c, "lnk/share/jupyter"))); free(s);
    p = kspec_sys_prefix();
    want = test_kspec_p(c, "lnk");
    assert_string_equal(p, want);
    free(p); free(want);

    /* "python" is the fallback name */
    test_kspec_write(c, "py2/bin/python", "#!/bin/sh\n", 0755);
    setenv("PATH", (s = xasprintf("%s/py2/bin", c->root)), 1); free(s);
    p = kspec_sys_prefix();
    want = test_kspec_p(c, "py2");
    assert_string_equal(p, want);
    free(p); free(want);

    /* CONDA_PREFIX beats PATH, VIRTUAL_ENV beats CONDA_PREFIX */
    setenv("CONDA_PREFIX", "/opt/conda-nbt", 1);
    p = kspec_sys_prefix();
    assert_string_equal(p, "/opt/conda-nbt");
    free(p);
    setenv("VIRTUAL_ENV", "/opt/venv-nbt", 1);
    p = kspec_sys_prefix();
    assert_string_equal(p, "/opt/venv-nbt");
    free(p);
    free(target); free(link); free(link2);
}

#define KJ(extra) "{\"argv\": [\"nbt-bin\", \"-f\", \"{connection_file}\"]" extra "}"

/* First directory wins; names are case-insensitive and lower-cased. */
static void test_kspec_find_precedence(void **state)
{
    test_kspec_ctx_t *c = *state;
    test_kspec_kernel(c, "a", "nbt1", KJ(", \"display_name\": \"from a\""));
    test_kspec_kernel(c, "b", "NBT1", KJ(", \"display_name\": \"from b\""));
    test_kspec_kernel(c, "b", "nbt2", KJ(", \"display_name\": \"two\""));
    test_kspec_kernel(c, "user", "NbtMixed", KJ(", \"display_name\": \"mixed\""));
    test_kspec_kernel(c, "venv/share/jupyter", "nbt2", KJ(", \"display_name\": \"env two\""));
    /* a directory without kernel.json does not shadow a later one */
    char *s;
    test_kspec_mkdirs((s = test_kspec_p(c, "a/kernels/nbt3"))); free(s);
    test_kspec_kernel(c, "ipython", "nbt3", KJ(", \"display_name\": \"three\""));
    /* a kernel.json that is a directory does not count either */
    test_kspec_mkdirs((s = test_kspec_p(c, "a/kernels/nbt4/kernel.json"))); free(s);

    kspec_t *k = NULL;
    nb_err_t err = { 0 };
    assert_int_equal(kspec_find("nbt1", &k, &err), 0);
    assert_string_equal(k->display_name, "from a");
    assert_string_equal(k->name, "nbt1");
    char *want = test_kspec_p(c, "a/kernels/nbt1");
    assert_string_equal(k->resource_dir, want);
    free(want);
    kspec_free(k);

    assert_int_equal(kspec_find("NBT1", &k, &err), 0);
    assert_string_equal(k->display_name, "from a");
    kspec_free(k);

    assert_int_equal(kspec_find("nbtMIXED", &k, &err), 0);
    assert_string_equal(k->name, "nbtmixed");
    assert_string_equal(k->display_name, "mixed");
    want = test_kspec_p(c, "user/kernels/NbtMixed");
    assert_string_equal(k->resource_dir, want);
    free(want);
    kspec_free(k);

    assert_int_equal(kspec_find("nbt2", &k, &err), 0);
    assert_string_equal(k->display_name, "two");
    kspec_free(k);

    assert_int_equal(kspec_find("nbt3", &k, &err), 0);
    assert_string_equal(k->display_name, "three");
    kspec_free(k);

    assert_int_equal(kspec_find("nbt4", &k, &err), -ENOENT);
    assert_null(k);
    assert_string_equal(err.msg, "no such kernel 'nbt4'");
    assert_int_equal(kspec_find("../a", &k, &err), -ENOENT);

    /* scan: first hit per name, in path order; rank = data dir index */
    size_t n;
    kspec_ref_t *refs = kspec_scan(&n);
    const char *names[] = { "nbt1", "nbt2", "nbtmixed", "nbt3" };
    const int ranks[] = { 0, 1, 2, -1 };   /* a, b, user (no pyvenv.cfg: before venv), ipython */
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(refs[i].name, "nbt", 3) != 0) continue;
        assert_true(j < 4);
        assert_string_equal(refs[i].name, names[j]);
        assert_int_equal(refs[i].rank, ranks[j]);
        j++;
    }
    assert_int_equal(j, 4);
    kspec_scan_free(refs, n);

    char *all = kspec_names();
    assert_non_null(strstr(all, "nbt1, nbt2, nbt3, nbtmixed"));
    free(all);
}

/* kernel.json errors carry the path and, for syntax errors, line:col. */
static void test_kspec_load_errors(void **state)
{
    test_kspec_ctx_t *c = *state;
    kspec_t *k = (kspec_t *)1;
    nb_err_t err = { 0 };
    char *dir = test_kspec_p(c, "a/kernels/nbtbad");
    char *want;

    test_kspec_kernel(c, "a", "nbtbad", "{\n  \"argv\": [\"x\",\n}\n");
    assert_int_equal(kspec_load_dir("nbtbad", dir, &k, &err), -EINVAL);
    assert_null(k);
    want = xasprintf("%s/kernel.json:3:1: ", dir);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);
    free(want);

    test_kspec_kernel(c, "a", "nbtbad", "");
    assert_int_equal(kspec_load_dir("nbtbad", dir, &k, &err), -EINVAL);
    want = xasprintf("%s/kernel.json:1:1: ", dir);
    assert_true(strncmp(err.msg, want, strlen(want)) == 0);
    free(want);

    static const struct { const char *json, *needle; } bad[] = {
        { "{\"display_name\": \"x\"}", "'argv'" },
        { "{\"argv\": []}", "'argv'" },
        { "{\"argv\": \"python\"}", "'argv'" },
        { "{\"argv\": [\"x\", 3]}", "argv[1]" },
        { "[1]", "object" },
        { KJ(", \"env\": []"), "'env'" },
        { KJ(", \"env\": {\"A\": 1}"), "env['A']" },
        { KJ(", \"metadata\": 1"), "'metadata'" },
        { KJ(", \"display_name\": null"), "'display_name'" },
        { KJ(", \"interrupt_mode\": \"sometimes\""), "'interrupt_mode'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_kspec_kernel(c, "a", "nbtbad", bad[i].json);
        err.msg[0] = '\0';
        assert_int_equal(kspec_load_dir("nbtbad", dir, &k, &err), -EINVAL);
        assert_null(k);
        assert_non_null(strstr(err.msg, dir));
        if (!strstr(err.msg, bad[i].needle)) fail_msg("case %zu: '%s'", i, err.msg);
    }

    char *none = test_kspec_p(c, "a/kernels/nbtnone");
    assert_int_equal(kspec_load_dir("nbtnone", none, &k, &err), -ENOENT);
    free(none);

    /* a broken spec is a load error through kspec_find too ... */
    assert_int_equal(kspec_find("NBTBAD", &k, &err), -EINVAL);
    /* ... and is left out of the JSON list */
    json_t *l = kspec_list_json();
    assert_null(json_object_get(json_object_get(l, "kernelspecs"), "nbtbad"));
    json_decref(l);
    free(dir);
}

static void test_kspec_interrupt_mode(void **state)
{
    test_kspec_ctx_t *c = *state;
    char *dir = test_kspec_p(c, "a/kernels/nbti");
    kspec_t *k;
    static const struct { const char *extra; int sig; } cases[] = {
        { "", 1 },
        { ", \"interrupt_mode\": \"signal\"", 1 },
        { ", \"interrupt_mode\": \"message\"", 0 },
        { ", \"interrupt_mode\": \"MESSAGE\"", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *json = xasprintf("{\"argv\": [\"x\"]%s}", cases[i].extra);
        test_kspec_kernel(c, "a", "nbti", json);
        free(json);
        assert_int_equal(kspec_load_dir("NBTI", dir, &k, NULL), 0);
        assert_int_equal(k->interrupt_signal, cases[i].sig);
        assert_string_equal(k->name, "nbti");
        assert_string_equal(k->display_name, "");
        assert_string_equal(k->language, "");
        assert_null(k->env);
        assert_null(k->metadata);
        kspec_free(k);
    }
    free(dir);
}

/* Count "K=" entries and return the value of the last one. */
static const char *test_kspec_envget(char **env, const char *key, int *count)
{
    const char *v = NULL;
    size_t n = strlen(key);
    *count = 0;
    for (char **e = env; *e; e++)
        if (strncmp(*e, key, n) == 0 && (*e)[n] == '=') {
            v = *e + n + 1;
            (*count)++;
        }
    return v;
}

#define ENV_IS(env, key, want) do { \
        int cnt_; const char *v_ = test_kspec_envget(env, key, &cnt_); \
        assert_int_equal(cnt_, 1); assert_string_equal(v_, want); } while (0)

/* string.Template.safe_substitute semantics, layering and uniqueness. */
static void test_kspec_env_subst(void **state)
{
    test_kspec_ctx_t *c = *state;
    setenv("NBT_HOME", "/h", 1);
    setenv("NBT_KEEP", "environ", 1);
    setenv("NBT_OVER", "environ", 1);
    setenv("PYTHONEXECUTABLE", "/bad/python", 1);
    unsetenv("NBT_UNSET");
    test_kspec_kernel(c, "a", "nbte",
        "{\"argv\": [\"x\"], \"language\": \"Python\", \"env\": {"
        "\"A\": \"${NBT_HOME}/x\", \"B\": \"$NBT_HOME-y\", \"C\": \"$$NBT_HOME\","
        "\"D\": \"$NBT_UNSET and ${NBT_UNSET}\", \"E\": \"cost $5 ${bad\", \"F\": \"$NBT_HOMEx\","
        "\"G\": \"${NBT_EXTRA}\", \"NBT_OVER\": \"spec\", \"NBT_SPEC\": \"spec:$NBT_OVER\","
        "\"NBT_X\": \"spec\", \"H\": \"$\", \"I\": \"\\u00e9$NBT_HOME\"}}");
    kspec_t *k;
    assert_int_equal(kspec_find("nbte", &k, NULL), 0);
    char *extra[] = { "NBT_EXTRA=e", "NBT_X=extra", "NBT_X=extra2", "NOEQUALS", NULL };
    char **env = kspec_env(k, extra);
    ENV_IS(env, "A", "/h/x");
    ENV_IS(env, "B", "/h-y");
    ENV_IS(env, "C", "$NBT_HOME");
    ENV_IS(env, "D", "$NBT_UNSET and ${NBT_UNSET}");
    ENV_IS(env, "E", "cost $5 ${bad");
    ENV_IS(env, "F", "$NBT_HOMEx");
    ENV_IS(env, "G", "e");               /* extra is visible to substitution */
    ENV_IS(env, "H", "$");
    ENV_IS(env, "I", "\xc3\xa9/h");
    ENV_IS(env, "NBT_KEEP", "environ");
    ENV_IS(env, "NBT_OVER", "spec");
    ENV_IS(env, "NBT_SPEC", "spec:environ"); /* substitution sees environ, not the spec */
    ENV_IS(env, "NBT_X", "extra2");      /* extra wins, the last of duplicates */
    int cnt;
    assert_null(test_kspec_envget(env, "PYTHONEXECUTABLE", &cnt));
    assert_null(test_kspec_envget(env, "NOEQUALS", &cnt));
    kspec_strv_free(env);

    /* Non-Python kernels keep PYTHONEXECUTABLE; NULL extra is fine. */
    free(k->language);
    k->language = xstrdup("R");
    env = kspec_env(k, NULL);
    ENV_IS(env, "PYTHONEXECUTABLE", "/bad/python");
    ENV_IS(env, "G", "${NBT_EXTRA}");
    kspec_strv_free(env);
    kspec_free(k);
    unsetenv("PYTHONEXECUTABLE");
}

/* {placeholders} and the python -> owning environment's interpreter rule. */
static void test_kspec_argv_rewrite(void **state)
{
    test_kspec_ctx_t *c = *state;
    test_kspec_kernel(c, "env1/share/jupyter", "nbtpy",
        "{\"argv\": [\"python3\", \"-f\", \"{connection_file}\", \"--rd={resource_dir}\","
        " \"{prefix}\", \"{unknown}\", \"{\", \"{connection_file\", \"{{connection_file}}\"]}");
    test_kspec_write(c, "env1/bin/python3", "#!/bin/sh\n", 0755);
    char *dir = test_kspec_p(c, "env1/share/jupyter/kernels/nbtpy");
    kspec_t *k;
    assert_int_equal(kspec_load_dir("nbtpy", dir, &k, NULL), 0);
    char **argv = kspec_argv(k, "/run/conn.json");
    char *want = test_kspec_p(c, "env1/bin/python3");
    assert_string_equal(argv[0], want);
    free(want);
    assert_string_equal(argv[1], "-f");
    assert_string_equal(argv[2], "/run/conn.json");
    want = xasprintf("--rd=%s", dir);
    assert_string_equal(argv[3], want);
    free(want);
    want = test_kspec_p(c, "env1");
    assert_string_equal(argv[4], want);
    free(want);
    assert_string_equal(argv[5], "{unknown}");
    assert_string_equal(argv[6], "{");
    assert_string_equal(argv[7], "{connection_file");
    assert_string_equal(argv[8], "{/run/conn.json}");
    assert_null(argv[9]);
    kspec_strv_free(argv);
    kspec_free(k);

    /* Not executable in the owning prefix: the active prefix's; else as is. */
    static const char *const names[] = { "python", "python3.11" };
    for (size_t i = 0; i < 2; i++) {
        char *json = xasprintf("{\"argv\": [\"%s\", \"{connection_file}\"]}", names[i]);
        test_kspec_kernel(c, "env1/share/jupyter", "nbtpy", json);
        free(json);
        assert_int_equal(kspec_load_dir("nbtpy", dir, &k, NULL), 0);
        argv = kspec_argv(k, "c.json");
        assert_string_equal(argv[0], names[i]);           /* venv has no bin/ */
        kspec_strv_free(argv);
        char *rel = xasprintf("venv/bin/%s", names[i]);
        test_kspec_write(c, rel, "#!/bin/sh\n", 0755);
        argv = kspec_argv(k, "c.json");
        want = test_kspec_p(c, rel);
        assert_string_equal(argv[0], want);
        free(want);
        free(rel);
        kspec_strv_free(argv);
        kspec_free(k);
    }

    /* Names that are not python, or not executable, are never rewritten. */
    static const char *const other[] = { "python3.x", "python2", "ipython", "/usr/bin/python3" };
    for (size_t i = 0; i < 4; i++) {
        char *rel = xasprintf("env1/bin/%s", other[i]);
        if (other[i][0] != '/') test_kspec_write(c, rel, "#!/bin/sh\n", 0755);
        free(rel);
        char *json = xasprintf("{\"argv\": [\"%s\"]}", other[i]);
        test_kspec_kernel(c, "env1/share/jupyter", "nbtpy", json);
        free(json);
        assert_int_equal(kspec_load_dir("nbtpy", dir, &k, NULL), 0);
        argv = kspec_argv(k, "c.json");
        assert_string_equal(argv[0], other[i]);
        kspec_strv_free(argv);
        kspec_free(k);
    }
    test_kspec_write(c, "env1/bin/python3", "#!/bin/sh\n", 0644);
    test_kspec_kernel(c, "env1/share/jupyter", "nbtpy", "{\"argv\": [\"python3\"]}");
    assert_int_equal(kspec_load_dir("nbtpy", dir, &k, NULL), 0);
    argv = kspec_argv(k, "c.json");
    assert_string_equal(argv[0], "python3");
    kspec_strv_free(argv);
    kspec_free(k);
    free(dir);
}

/* The --json shape: keys, their order, defaults, first hit wins. */
/* Which kernels get --HistoryManager.hist_file=:memory: (kmgr_start). */
static void test_kspec_is_ipykernel(void **state)
{
    (void)state;
    char *launcher[] = { "python", "-m", "ipykernel_launcher", "-f", "{connection_file}", NULL };
    char *module[] = { "/opt/env/bin/python", "-m", "ipykernel", "-f", "{connection_file}", NULL };
    char *path[] = { "python", "/x/site-packages/ipykernel_launcher.py", "-f", "{connection_file}", NULL };
    char *other[] = { "/usr/bin/ir", "--connection", "{connection_file}", NULL };
    kspec_t k = { .name = "myenv", .argv = launcher };
    assert_true(kspec_is_ipykernel(&k));
    k.argv = module;
    assert_true(kspec_is_ipykernel(&k));
    k.argv = path;
    assert_true(kspec_is_ipykernel(&k));
    k.argv = other;
    assert_false(kspec_is_ipykernel(&k));   /* IRkernel */
    k.name = "python3";                      /* nbclient's rule: by name, whatever the argv */
    assert_true(kspec_is_ipykernel(&k));
    k.name = "python3-ipykernel-not";
    assert_false(kspec_is_ipykernel(&k));
}

static void test_kspec_list_json_shape(void **state)
{
    test_kspec_ctx_t *c = *state;
    test_kspec_kernel(c, "a", "nbtfull",
        "{\"argv\": [\"x\", \"{connection_file}\"], \"display_name\": \"Full\","
        " \"language\": \"scala\", \"interrupt_mode\": \"Message\","
        " \"env\": {\"Z\": \"1\", \"A\": \"$HOME\"}, \"metadata\": {\"debugger\": true},"
        " \"kernel_protocol_version\": \"5.5\", \"extra_key\": 1}");
    test_kspec_kernel(c, "b", "NBTFULL", "{\"argv\": [\"shadowed\"]}");
    test_kspec_kernel(c, "user", "nbtmin", "{\"argv\": [\"y\"]}");

    json_t *l = kspec_list_json();
    assert_int_equal(json_object_size(l), 1);
    json_t *specs = json_object_get(l, "kernelspecs");
    assert_true(json_is_object(specs));

    json_t *full = json_object_get(specs, "nbtfull");
    assert_int_equal(json_object_size(full), 2);
    char *want = test_kspec_p(c, "a/kernels/nbtfull");
    assert_string_equal(json_string_value(json_object_get(full, "resource_dir")), want);
    free(want);
    json_t *spec = json_object_get(full, "spec");
    char *got = json_dumps(spec, JSON_COMPACT);
    assert_string_equal(got,
        "{\"argv\":[\"x\",\"{connection_file}\"],\"env\":{\"Z\":\"1\",\"A\":\"$HOME\"},"
        "\"display_name\":\"Full\",\"language\":\"scala\",\"interrupt_mode\":\"message\","
        "\"metadata\":{\"debugger\":true},\"kernel_protocol_version\":\"5.5\"}");
    free(got);

    got = json_dumps(json_object_get(json_object_get(specs, "nbtmin"), "spec"), JSON_COMPACT);
    assert_string_equal(got,
        "{\"argv\":[\"y\"],\"env\":{},\"display_name\":\"\",\"language\":\"\","
        "\"interrupt_mode\":\"signal\",\"metadata\":{},\"kernel_protocol_version\":\"\"}");
    free(got);

    /* insertion order follows the search path */
    const char *first = NULL, *key;
    json_t *v;
    json_object_foreach(specs, key, v)
        if (strncmp(key, "nbt", 3) == 0 && !first) first = key;
    assert_string_equal(first, "nbtfull");
    json_decref(l);
}

/* No kernels on the path: empty object, empty names. */
static void test_kspec_empty(void **state)
{
    (void)state;
    json_t *l = kspec_list_json();
    json_t *specs = json_object_get(l, "kernelspecs");
    assert_true(json_is_object(specs));
    const char *key;
    json_t *v;
    json_object_foreach(specs, key, v) assert_true(strncmp(key, "nbt", 3) != 0);
    json_decref(l);
    char *names = kspec_names();
    assert_null(strstr(names, "nbt"));
    free(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kspec_dirs_order, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_sys_prefix, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_find_precedence, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_load_errors, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_interrupt_mode, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_env_subst, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_argv_rewrite, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test(test_kspec_is_ipykernel),
        cmocka_unit_test_setup_teardown(test_kspec_list_json_shape, test_kspec_setup, test_kspec_teardown),
        cmocka_unit_test_setup_teardown(test_kspec_empty, test_kspec_setup, test_kspec_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
