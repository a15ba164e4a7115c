/* sparkspec — see sparkspec.h. */
#include "spark/sparkspec.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sparkspec_quote(buf_t *out, const char *w)
{
    /* Words of only these characters survive shlex.split (and an env
     * substitution, which never runs inside them: no '$') as they are. */
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                               "_@%+=:,./-[]*";
    if (*w && strspn(w, safe) == strlen(w)) {
        buf_puts(out, w);
        return;
    }
    buf_putc(out, '\'');
    for (const char *p = w; *p; p++) {
        if (*p == '\'') buf_puts(out, "'\"'\"'");   /* close, a quoted quote, reopen */
        else buf_putc(out, *p);
    }
    buf_putc(out, '\'');
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* host:port with a non-empty host of host characters and a numeric port. */
static int host_port(const char *s, size_t n)
{
    const char *colon = memrchr(s, ':', n);
    if (!colon || colon == s) return 0;
    for (const char *p = s; p < colon; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_' || *p == '[' || *p == ']' ||
              *p == ':'))
            return 0;
    size_t pl = n - (size_t)(colon + 1 - s);
    return all_digits(colon + 1, pl) && pl <= 5 && atoi(colon + 1) > 0 && atoi(colon + 1) < 65536;
}

int sparkspec_check_master(const char *m, nb_err_t *err)
{
    if (!m || !*m) return err_set(err, -EINVAL, "--master is required (local[*], spark://HOST:PORT, k8s://URL or yarn)");
    if (!strcmp(m, "local") || !strcmp(m, "yarn")) return 0;
    size_t n = strlen(m);
    if (!strncmp(m, "local[", 6) && m[n - 1] == ']') {
        const char *in = m + 6;
        size_t il = n - 7;
        const char *comma = memchr(in, ',', il);
        size_t first = comma ? (size_t)(comma - in) : il;
        int ok = (first == 1 && in[0] == '*') || (all_digits(in, first) && atoi(in) > 0);
        if (comma) ok = ok && all_digits(comma + 1, il - first - 1);
        if (ok) return 0;
        return err_set(err, -EINVAL, "master '%s': local[N], local[*] or local[N,MAXFAILURES] expected", m);
    }
    if (!strncmp(m, "spark://", 8)) {
        const char *p = m + 8;
        if (!*p) return err_set(err, -EINVAL, "master '%s': spark://HOST:PORT[,HOST:PORT...] expected", m);
        while (*p) {
            size_t l = strcspn(p, ",");
            if (!host_port(p, l)) return err_set(err, -EINVAL, "master '%s': spark://HOST:PORT[,HOST:PORT...] expected", m);
            p += l;
            if (*p == ',') p++;
        }
        return 0;
    }
    if (!strncmp(m, "k8s://", 6)) {
        const char *u = m + 6;
        if ((!strncmp(u, "https://", 8) || !strncmp(u, "http://", 7)) && strlen(strchr(u, '/') + 2) > 0 &&
            !strpbrk(u, " \t\n'\"\\"))
            return 0;
        return err_set(err, -EINVAL, "master '%s': k8s://https://API-SERVER[:PORT] expected", m);
    }
    return err_set(err, -EINVAL, "master '%s' is not one of local[*], spark://HOST:PORT, k8s://URL, yarn", m);
}

/* A Spark conf key: dotted words of letters, digits, '_' and '-'. */
static int conf_key_ok(const char *k, size_t n)
{
    if (n == 0 || k[0] == '.' || k[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '.' || k[i] == '_' || k[i] == '-')) return 0;
    return 1;
}

int sparkspec_check_conf(const char *item, nb_err_t *err)
{
    const char *eq = strchr(item, '=');
    if (!eq || !conf_key_ok(item, (size_t)(eq - item)))
        return err_set(err, -EINVAL, "--conf '%s': KEY=VALUE with a Spark key (such as spark.executor.memory=2g) expected", item);
    return 0;
}

static void add_conf(buf_t *out, const char *key, const char *value)
{
    buf_puts(out, " --conf ");
    char *kv = xasprintf("%s=%s", key, value);
    sparkspec_quote(out, kv);
    free(kv);
}

/* 2g, 512m, 1024 (bytes), ${VAR}: what Spark's memory settings accept. */
static int size_ok(const char *v)
{
    if (v[0] == '$') return 1;
    size_t n = strlen(v), d = strspn(v, "0123456789");
    if (d == 0) return 0;
    if (d == n) return 1;
    return d + 1 == n && strchr("kKmMgGtT", v[d]);
}

int sparkspec_submit_args(const struct sparkspec_opts *o, buf_t *out, nb_err_t *err)
{
    int rc = sparkspec_check_master(o->master, err);
    if (rc < 0) return rc;
    buf_t b = BUF_INIT;
    buf_puts(&b, "--master ");
    sparkspec_quote(&b, o->master);
    for (const char *const *c = o->conf; c && *c; c++) {
        if ((rc = sparkspec_check_conf(*c, err)) < 0) {
            buf_free(&b);
            return rc;
        }
        buf_puts(&b, " --conf ");
        sparkspec_quote(&b, *c);
    }
    struct { const char *v, *key, *flag; int mem; } sized[] = {
        { o->executor_instances, "spark.executor.instances", "--executor-instances", 0 },
        { o->executor_cores, "spark.executor.cores", "--executor-cores", 0 },
        { o->executor_memory, "spark.executor.memory", "--executor-memory", 1 },
    };
    for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) {
        if (!sized[i].v) continue;
        int ok = sized[i].mem ? size_ok(sized[i].v)
                              : (sized[i].v[0] == '$' || (all_digits(sized[i].v, strlen(sized[i].v)) && atoi(sized[i].v) > 0));
        if (!ok) {
            buf_free(&b);
            return err_set(err, -EINVAL, "%s '%s': %s expected", sized[i].flag, sized[i].v,
                           sized[i].mem ? "a size such as 2g or 512m" : "a positive whole number");
        }
        add_conf(&b, sized[i].key, sized[i].v);
    }
    if ((o->image || o->k8s_namespace) && strncmp(o->master, "k8s://", 6) != 0) {
        buf_free(&b);
        return err_set(err, -EINVAL, "--image and --namespace apply to k8s:// masters only");
    }
    /* A driver for a master on this machine listens on loopback only (left
     * alone, Spark binds it to the address the host name resolves to). */
    int loopback = !strncmp(o->master, "local", 5) || !strncmp(o->master, "spark://127.0.0.1:", 18) ||
                   !strncmp(o->master, "spark://localhost:", 18);
    if (loopback) {
        int host = 0, bind = 0;
        for (const char *const *c = o->conf; c && *c; c++) {
            if (!strncmp(*c, "spark.driver.host=", 18)) host = 1;
            if (!strncmp(*c, "spark.driver.bindAddress=", 25)) bind = 1;
        }
        if (!host) add_conf(&b, "spark.driver.host", "127.0.0.1");
        if (!bind) add_conf(&b, "spark.driver.bindAddress", "127.0.0.1");
    }
    if (o->image) add_conf(&b, "spark.kubernetes.container.image", o->image);
    if (o->k8s_namespace) add_conf(&b, "spark.kubernetes.namespace", o->k8s_namespace);
    /* pyspark's java_gateway requires the primary resource last. */
    buf_puts(&b, " pyspark-shell");
    buf_append(out, b.data, b.len);
    buf_free(&b);
    return 0;
}

static int name_ok(const char *n)
{
    if (!n || !*n || strlen(n) > 64) return 0;
    for (const char *p = n; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-')) return 0;
    return 1;
}

/* sc://HOST:PORT with an optional /;key=value... tail, no blanks or quotes. */
static int remote_ok(const char *r)
{
    if (strncmp(r, "sc://", 5) != 0 || strpbrk(r, " \t\n'\"\\")) return 0;
    const char *hp = r + 5;
    size_t l = strcspn(hp, "/");
    return host_port(hp, l);
}

int sparkspec_build(const struct sparkspec_opts *o, json_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!name_ok(o->name))
        return err_set(err, -EINVAL, "kernel name '%s': 1 to 64 letters, digits, '.', '_' or '-' expected",
                       o->name ? o->name : "");
    if (o->remote && (o->master || (o->conf && *o->conf) || o->executor_instances || o->executor_cores ||
                      o->executor_memory || o->image || o->k8s_namespace))
        return err_set(err, -EINVAL, "--remote (Spark Connect) takes no --master, --conf or executor options: "
                                     "the Connect server has its own");
    if (o->remote && !remote_ok(o->remote))
        return err_set(err, -EINVAL, "--remote '%s': sc://HOST:PORT expected", o->remote);
    buf_t args = BUF_INIT;
    int rc = o->remote ? 0 : sparkspec_submit_args(o, &args, err);
    if (rc < 0) return rc;
    json_t *env = json_object();
    json_object_set_new(env, "SPARK_HOME", json_string(o->spark_home));
    json_object_set_new(env, "PYSPARK_PYTHON", json_string(o->python));
    if (o->remote) json_object_set_new(env, "SPARK_REMOTE", json_string(o->remote));
    else json_object_set_new(env, "PYSPARK_SUBMIT_ARGS", json_string(args.data));
    /* A Spark distribution's python and py4j, as its bin/pyspark sets them;
     * pyspark from PyPI is importable already and must not be shadowed. */
    if (o->py4j_zip) {
        char *pp = xasprintf("%s/python:%s", o->spark_home, o->py4j_zip);
        json_object_set_new(env, "PYTHONPATH", json_string(pp));
        free(pp);
    }
    char *dn = o->display_name ? xstrdup(o->display_name) : xasprintf("PySpark (%s)", o->name);
    json_t *k = json_pack("{s:[s,s,s,s,s], s:s, s:s, s:s, s:o, s:{s:{s:s, s:s}}}",
                          "argv", o->python, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                          "display_name", dn, "language", "python", "interrupt_mode", "signal",
                          "env", env, "metadata", "nbhub", o->remote ? "spark_remote" : "spark_master",
                          o->remote ? o->remote : o->master,
                          "generated_by", "nbhub kernel install-spark");
    free(dn);
    buf_free(&args);
    NB_ASSERT(k != NULL);
    *out = k;
    return 0;
}
