/*
 * sk8s — see sk8s.h for the forms, the checks and the defaults.
 *
 * Why a manifest looks the way it does:
 *
 *   - Every value is checked here, before kubectl: the API server accepts a
 *     SparkApplication with `memory: 2 GB` or a name with an underscore in
 *     a label, and the failure then surfaces minutes later as an
 *     application stuck in SUBMITTED or FAILED with an event nobody reads
 *     (one of the Spark operators' known complaints).  The name limits
 *     come from what the operator derives from NAME: Service names
 *     (RFC 1035 labels, <= 63), NAME-server for Spark Connect, and for a
 *     schedule runs named NAME-<UnixNano> whose name is also a label value
 *     (<= 63), hence 43.
 *   - A --conf key that an option also sets is refused rather than merged:
 *     with both, the SparkApplication would carry executor.memory and
 *     sparkConf["spark.executor.memory"] and the operator picks one
 *     silently; for the notebook the ports must match the Service's.
 *     Repeating a --conf key keeps the last value (spark-submit's rule).
 *   - The notebook's driver listens on fixed ports so that a Service can
 *     name them (Spark would pick random ones), binds 0.0.0.0 (the pod's
 *     own address is not known when the ConfigMap is written) and
 *     advertises the Service's DNS name.  The Service publishes addresses
 *     of pods that are not Ready: the driver must be reachable whenever it
 *     runs, and a notebook server's readiness says nothing about that.
 *   - The ConfigMap holds PYSPARK_SUBMIT_ARGS (what pyspark reads when it
 *     starts the JVM; quoted as sparkspec does, so shlex gives the words
 *     back) and each setting once more under its own key, the setting's
 *     name in upper case with '.' and '-' as '_' (spark.driver.host ->
 *     SPARK_DRIVER_HOST): with envFrom those become environment variables,
 *     which a kernel spec can use one by one as ${SPARK_DRIVER_HOST}
 *     (kernel launchers substitute env values; docs/spark.md).
 *   - In client mode the driver is the notebook pod itself, so executors
 *     are created with the pod's own service account (Spark cannot change
 *     a running pod's account, SPARK-28360);
 *     spark.kubernetes.authenticate.driver.serviceAccountName is written
 *     anyway, for the executors and as the record of which account the pod
 *     spec must name.
 *   - Nothing is written that the user did not ask for and Spark would not
 *     do anyway: imagePullPolicy only when given (Kubernetes' default
 *     depends on the tag), timeZone only when given.
 */
#include "spark/sk8s.h"
#include "spark/sparkspec.h"
#include "sched/cron.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEF_NAMESPACE       "default"
#define DEF_SERVICE_ACCOUNT "spark-operator-spark"
#define DEF_MASTER          "k8s://https://kubernetes.default.svc"
#define DEF_DOMAIN          "cluster.local"
#define DEF_WORKDIR         "/opt/spark/work-dir"
#define DEF_SELECTOR_KEY    "nbhub/spark-driver"
#define MANAGED_BY          "app.kubernetes.io/managed-by"

/* NAME limits (see the top of this file). */
#define NAME_MAX_LEN          63
#define NAME_MAX_CONNECT      (63 - (int)sizeof "-server" + 1)
#define NAME_MAX_SCHEDULED    (63 - 20)

enum form { F_APP, F_NOTEBOOK, F_CONNECT };

/* ---- checks ------------------------------------------------------------ */

int sk8s_check_label(const char *what, const char *s, size_t max, int letter_first, nb_err_t *err)
{
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= max;
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || isdigit((unsigned char)s[i]) || s[i] == '-';
    if (ok) ok = s[0] != '-' && s[n - 1] != '-' && (!letter_first || (s[0] >= 'a' && s[0] <= 'z'));
    if (ok) return 0;
    return err_set(err, -EINVAL, "%s '%s': a Kubernetes name expected: 1 to %zu lowercase letters, digits or '-', "
                   "%s with a letter or digit",
                   what, s ? s : "", max, letter_first ? "starting with a letter and ending" : "starting and ending");
}

/* A DNS-1123 subdomain: labels joined by '.', at most 253 in all. */
static int check_subdomain(const char *what, const char *s, nb_err_t *err)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 253;
    for (const char *p = s; ok && *p;) {
        size_t l = strcspn(p, ".");
        ok = l >= 1 && isalnum((unsigned char)p[0]) && isalnum((unsigned char)p[l - 1]);
        for (size_t i = 0; ok && i < l; i++)
            ok = (p[i] >= 'a' && p[i] <= 'z') || isdigit((unsigned char)p[i]) || p[i] == '-';
        p += l;
        if (*p == '.') {
            p++;
            ok = ok && *p;
        }
    }
    if (ok) return 0;
    return err_set(err, -EINVAL, "%s '%s': a Kubernetes name expected: lowercase letters, digits, '-' and '.', "
                   "at most 253, each dot-separated part starting and ending with a letter or digit", what, s);
}

int sk8s_check_memory(const char *what, const char *s, nb_err_t *err)
{
    size_t n = strlen(s), d = strspn(s, "0123456789");
    if (d >= 1 && d + 1 == n && strchr("kKmMgGtT", s[d]) && strspn(s, "0") < d && d <= 12) return 0;
    return err_set(err, -EINVAL, "%s '%s': a JVM size such as 512m or 2g expected (a whole number and k, m, g or t)",
                   what, s);
}

/* A whole number in [min, INT32_MAX]. */
static int parse_count(const char *what, const char *s, long min, long *out, nb_err_t *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || !isdigit((unsigned char)s[0]) || *end || errno || v < min || v > INT32_MAX)
        return err_set(err, -EINVAL, "%s '%s': a whole number of at least %ld expected", what, s, min);
    *out = v;
    return 0;
}

/* Printable, no blanks or quotes: names and files that end up in URIs,
 * spark-submit words and YAML, where a blank is always a mistake. */
static int check_word(const char *what, const char *s, nb_err_t *err)
{
    int ok = s && *s;
    for (const char *p = s; ok && *p; p++)
        ok = (unsigned char)*p > ' ' && *p != 0x7f && *p != '"' && *p != '\'' && *p != '\\';
    if (ok) return 0;
    return err_set(err, -EINVAL, "%s '%s': no blanks, quotes or control characters allowed", what, s ? s : "");
}

static int check_one_of(const char *what, const char *s, const char *const *allowed, nb_err_t *err)
{
    for (const char *const *a = allowed; *a; a++)
        if (!strcmp(s, *a)) return 0;
    buf_t b = BUF_INIT;
    for (const char *const *a = allowed; *a; a++) buf_printf(&b, "%s%s", a == allowed ? "" : ", ", *a);
    int rc = err_set(err, -EINVAL, "%s '%s': one of %s expected", what, s, b.data);
    buf_free(&b);
    return rc;
}

/* Spark versions as the operator's sparkVersion and image tags write them:
 * 4.0.1, 3.5, 4.1.0-preview2. */
static int check_version(const char *s, nb_err_t *err)
{
    const char *p = s;
    int parts = 0;
    while (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p)) p++;
        parts++;
        if (*p != '.') break;
        p++;
    }
    int ok = parts >= 2 && p[-1] != '.';
    if (ok && *p == '-') {
        p++;
        ok = *p && strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(p);
    } else if (ok) {
        ok = *p == '\0';
    }
    if (ok) return 0;
    return err_set(err, -EINVAL, "--spark-version '%s': a Spark version such as 4.0.1 expected", s);
}

/* A Java class name: identifiers joined by '.'. */
static int check_class(const char *s, nb_err_t *err)
{
    int ok = *s != '\0';
    for (const char *p = s; ok && *p;) {
        ok = isalpha((unsigned char)*p) || *p == '_' || *p == '$';
        while (ok && (isalnum((unsigned char)*p) || *p == '_' || *p == '$')) p++;
        if (*p == '.') {
            p++;
            ok = ok && *p;
        } else if (*p) {
            ok = 0;
        }
    }
    if (ok) return 0;
    return err_set(err, -EINVAL, "--main-class '%s': a Java class name such as org.example.Job expected", s);
}

/* A label key (optional DNS prefix + '/', then a name of at most 63 of
 * [A-Za-z0-9._-], alphanumeric at both ends) and value (the same, or
 * empty): "KEY=VALUE" of --selector. */
static int label_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.')) return 0;
    return 1;
}

static int check_selector(const char *item, nb_err_t *err)
{
    const char *eq = strchr(item, '=');
    const char *slash = eq ? memchr(item, '/', (size_t)(eq - item)) : NULL;
    int ok = eq != NULL;
    if (ok && slash) {
        char *prefix = xstrndup(item, (size_t)(slash - item));
        ok = check_subdomain("prefix", prefix, NULL) == 0;
        free(prefix);
    }
    const char *name = slash ? slash + 1 : item;
    if (ok) ok = label_name_ok(name, (size_t)(eq - name));
    if (ok) ok = !eq[1] || label_name_ok(eq + 1, strlen(eq + 1));
    if (ok) return 0;
    return err_set(err, -EINVAL, "--selector '%s': KEY=VALUE of a pod label expected (such as "
                   "hub.jupyter.org/username=alice: letters, digits, '-', '_', '.', at most 63 each side)", item);
}

/* ---- conf -------------------------------------------------------------- */

/* Keys an option sets; --conf may not set them too (see the top). */
static const struct { const char *key, *use; } owned_keys[] = {
    { "spark.master", "--master (notebook)" },
    { "spark.submit.deployMode", "nothing: app and connect run in cluster mode, a notebook in client mode" },
    { "spark.app.name", "NAME" },
    { "spark.kubernetes.container.image", "--image" },
    { "spark.kubernetes.container.image.pullPolicy", "--image-pull-policy" },
    { "spark.kubernetes.namespace", "--namespace" },
    { "spark.kubernetes.authenticate.driver.serviceAccountName", "--service-account" },
    { "spark.driver.cores", "--driver-cores" },
    { "spark.driver.memory", "--driver-memory" },
    { "spark.executor.instances", "--executor-instances" },
    { "spark.executor.cores", "--executor-cores" },
    { "spark.executor.memory", "--executor-memory" },
    { "spark.driver.host", "nothing: it is the headless Service's name" },
    { "spark.driver.bindAddress", "nothing: the driver listens on every address of its pod" },
    { "spark.driver.port", "nothing: the Service names port 7078" },
    { "spark.blockManager.port", "nothing: the Service names port 7079" },
    { "spark.submit.pyFiles", "--py-files" },
    { "spark.jars", "--jars" },
    { "spark.files", "--files" },
};

/* The --conf items as an object (key order of first appearance, the last
 * value of a repeated key). */
static int conf_object(const struct sk8s_opts *o, json_t **out, nb_err_t *err)
{
    json_t *c = json_object();
    for (const char *const *it = o->conf; it && *it; it++) {
        int rc = sparkspec_check_conf(*it, err);
        if (rc < 0) {
            json_decref(c);
            return rc;
        }
        const char *eq = strchr(*it, '=');
        char *key = xstrndup(*it, (size_t)(eq - *it));
        for (size_t i = 0; i < sizeof owned_keys / sizeof owned_keys[0]; i++)
            if (!strcmp(key, owned_keys[i].key)) {
                rc = err_set(err, -EINVAL, "--conf '%s': %s is set by render-k8s; use %s", *it, key, owned_keys[i].use);
                free(key);
                json_decref(c);
                return rc;
            }
        json_object_set_new(c, key, json_string(eq + 1));
        free(key);
    }
    *out = c;
    return 0;
}

/* ---- shared pieces ------------------------------------------------------- */

static const char *or_default(const char *v, const char *def)
{
    return v ? v : def;
}

struct sizes {
    long driver_cores, executor_instances, executor_cores;
    const char *driver_memory, *executor_memory;
};

static int common_checks(const struct sk8s_opts *o, enum form f, struct sizes *sz, json_t **conf, nb_err_t *err)
{
    int rc;
    size_t max = f == F_CONNECT ? NAME_MAX_CONNECT : (f == F_APP && o->schedule) ? NAME_MAX_SCHEDULED : NAME_MAX_LEN;
    if ((rc = sk8s_check_label("NAME", o->name, max, 1, err)) < 0) {
        if (max != NAME_MAX_LEN && o->name && strlen(o->name) > max)
            return err_set(err, -EINVAL, "NAME '%s' is longer than %zu characters: %s", o->name, max,
                           f == F_CONNECT ? "the operator names the server's Service NAME-server, at most 63"
                                          : "the operator names each scheduled run NAME-<19-digit time> and puts "
                                            "that in a label, at most 63");
        return rc;
    }
    if ((rc = sk8s_check_label("--namespace", or_default(o->k8s_namespace, DEF_NAMESPACE), 63, 0, err)) < 0) return rc;
    if ((rc = check_subdomain("--service-account", or_default(o->service_account, DEF_SERVICE_ACCOUNT), err)) < 0) return rc;
    if (!o->image) return err_set(err, -EINVAL, "--image is required: the container image with Spark (such as apache/spark:4.0.1)");
    if ((rc = check_word("--image", o->image, err)) < 0) return rc;
    static const char *const policies[] = { "Always", "IfNotPresent", "Never", NULL };
    if (o->image_pull_policy && (rc = check_one_of("--image-pull-policy", o->image_pull_policy, policies, err)) < 0) return rc;
    if (!o->spark_version) return err_set(err, -EINVAL, "--spark-version is required");
    if ((rc = check_version(o->spark_version, err)) < 0) return rc;
    sz->driver_cores = 1;
    sz->executor_instances = 2;
    sz->executor_cores = 1;
    sz->driver_memory = or_default(o->driver_memory, "1g");
    sz->executor_memory = or_default(o->executor_memory, "1g");
    if (o->driver_cores && (rc = parse_count("--driver-cores", o->driver_cores, 1, &sz->driver_cores, err)) < 0) return rc;
    if (o->executor_instances &&
        (rc = parse_count("--executor-instances", o->executor_instances, 1, &sz->executor_instances, err)) < 0)
        return rc;
    if (o->executor_cores && (rc = parse_count("--executor-cores", o->executor_cores, 1, &sz->executor_cores, err)) < 0)
        return rc;
    if ((rc = sk8s_check_memory("--driver-memory", sz->driver_memory, err)) < 0) return rc;
    if ((rc = sk8s_check_memory("--executor-memory", sz->executor_memory, err)) < 0) return rc;
    return conf_object(o, conf, err);
}

static json_t *metadata(const struct sk8s_opts *o, const char *name)
{
    return json_pack("{s:s, s:s, s:{s:s}}", "name", name, "namespace", or_default(o->k8s_namespace, DEF_NAMESPACE),
                     "labels", MANAGED_BY, "nbhub");
}

static json_t *manifest(const char *api, const char *kind, json_t *meta, json_t *spec_key_value, const char *spec_key)
{
    json_t *m = json_pack("{s:s, s:s, s:o}", "apiVersion", api, "kind", kind, "metadata", meta);
    json_object_set_new(m, spec_key, spec_key_value);
    return m;
}

/* ---- files ----------------------------------------------------------------- */

/* A scheme: [a-zA-Z][a-zA-Z0-9+.-]*:// */
static int has_scheme(const char *s)
{
    if (!isalpha((unsigned char)s[0])) return 0;
    const char *p = s + 1;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '.' || *p == '-') p++;
    return !strncmp(p, "://", 3);
}

/* What Spark gets for a file: URLs as given, paths as local:// in the image. */
static int file_uri(const char *what, const char *f, const char *workdir, char **out, nb_err_t *err)
{
    int rc = check_word(what, f, err);
    if (rc < 0) return rc;
    if (has_scheme(f)) *out = xstrdup(f);
    else if (f[0] == '/') *out = xasprintf("local://%s", f);
    else *out = xasprintf("local://%s/%s", workdir, f[0] == '.' && f[1] == '/' ? f + 2 : f);
    return 0;
}

/* A comma-separated list of files as an array of URIs. */
static int file_list(const char *what, const char *list, const char *workdir, json_t **out, nb_err_t *err)
{
    json_t *a = json_array();
    for (const char *p = list;;) {
        size_t l = strcspn(p, ",");
        if (l == 0) {
            json_decref(a);
            return err_set(err, -EINVAL, "%s '%s': a comma-separated list of files expected (an empty item)", what, list);
        }
        char *one = xstrndup(p, l), *uri = NULL;
        int rc = file_uri(what, one, workdir, &uri, err);
        free(one);
        if (rc < 0) {
            json_decref(a);
            return rc;
        }
        json_array_append_new(a, json_string(uri));
        free(uri);
        p += l;
        if (!*p) break;
        p++;
    }
    *out = a;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcasecmp(s + n - m, suffix);
}

/* ---- schedules -------------------------------------------------------------- */

/* Does the day-of-week field name 7 (Sunday in Vixie cron and nbhub, out of
 * range for robfig/cron, which takes 0-6)? */
static int dow_has_seven(const char *field, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (isdigit((unsigned char)field[i])) {
            size_t j = i;
            while (j < n && isdigit((unsigned char)field[j])) j++;
            int after_slash = i > 0 && field[i - 1] == '/';   /* a step, not a day */
            if (!after_slash && atoi(field + i) == 7) return 1;
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

int sk8s_schedule(const char *expr, char **out, nb_err_t *err)
{
    *out = NULL;
    cron_t *c = NULL;
    nb_err_t cerr;
    if (!expr || cron_parse(expr, &c, &cerr) < 0)
        return err_set(err, -EINVAL, "--schedule '%s': %s", expr ? expr : "", expr ? cerr.msg : "empty");
    if (cron_is_interval(c)) {
        /* Go durations have no days: 1d is 24h. */
        int64_t s = cron_interval(c);
        buf_t b = BUF_INIT;
        buf_puts(&b, "@every ");
        if (s >= 3600) buf_printf(&b, "%lldh", (long long)(s / 3600));
        if (s % 3600 >= 60) buf_printf(&b, "%lldm", (long long)(s % 3600 / 60));
        if (s % 60) buf_printf(&b, "%llds", (long long)(s % 60));
        cron_free(c);
        *out = buf_detach(&b);
        return 0;
    }
    cron_free(c);
    /* Five fields (or a macro, which robfig/cron knows by the same names). */
    const char *p = expr;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != '@') {
        const char *f = p;
        for (int i = 0; i < 4; i++) {
            f += strcspn(f, " \t");
            f += strspn(f, " \t");
        }
        size_t fl = strcspn(f, " \t");
        if (dow_has_seven(f, fl))
            return err_set(err, -EINVAL, "--schedule '%s': day-of-week 7 is out of range for the operator's "
                           "cron (0-6); write 0 for Sunday", expr);
    }
    /* One space between fields, none around them; macros in lower case
     * (robfig/cron knows only "@daily", nbhub any case). */
    buf_t b = BUF_INIT;
    for (const char *q = p; *q;) {
        size_t l = strcspn(q, " \t\r\n");
        buf_append(&b, q, l);
        q += l;
        q += strspn(q, " \t\r\n");
        if (*q) buf_putc(&b, ' ');
    }
    if (b.data[0] == '@')
        for (char *q = b.data; *q; q++) *q = (char)tolower((unsigned char)*q);
    *out = buf_detach(&b);
    return 0;
}

/* A time zone name as Go's time.LoadLocation takes it (Area/City, UTC,
 * Local); that it exists is the caller's check (this file does no I/O). */
static int check_tz(const char *s, nb_err_t *err)
{
    int ok = *s && s[0] != '/' && !strstr(s, "..");
    for (const char *p = s; ok && *p; p++) ok = isalnum((unsigned char)*p) || strchr("/_+-", *p);
    if (ok) return 0;
    return err_set(err, -EINVAL, "--time-zone '%s': a time zone name such as Europe/Berlin or UTC expected", s);
}

/* ---- app -------------------------------------------------------------------- */

static int app_spec(const struct sk8s_opts *o, const struct sizes *sz, json_t *conf, json_t **out, nb_err_t *err)
{
    int rc;
    const char *workdir = or_default(o->workdir, DEF_WORKDIR);
    if (o->workdir && (o->workdir[0] != '/' || check_word("--workdir", o->workdir, NULL) < 0))
        return err_set(err, -EINVAL, "--workdir '%s': an absolute path in the image expected", o->workdir);
    if (!o->application)
        return err_set(err, -EINVAL, "--application is required: the job's file (job.py, job.jar) in the image, or a URL");
    const char *type = o->type;
    static const char *const types[] = { "Python", "Scala", "Java", "R", NULL };
    if (type && (rc = check_one_of("--type", type, types, err)) < 0) return rc;
    if (!type) {
        if (ends_with(o->application, ".py")) type = "Python";
        else if (ends_with(o->application, ".jar")) type = "Scala";
        else if (ends_with(o->application, ".r")) type = "R";
        else
            return err_set(err, -EINVAL, "--application '%s': a .py, .jar or .R file expected (or say which with --type)",
                           o->application);
    }
    int jvm = !strcmp(type, "Scala") || !strcmp(type, "Java");
    if (jvm && !o->main_class)
        return err_set(err, -EINVAL, "--main-class is required for a %s application (the class with main, such as org.example.Job)", type);
    if (!jvm && o->main_class) return err_set(err, -EINVAL, "--main-class applies to .jar (Scala, Java) applications only");
    if (o->main_class && (rc = check_class(o->main_class, err)) < 0) return rc;
    if (o->py_files && strcmp(type, "Python") != 0) return err_set(err, -EINVAL, "--py-files applies to Python applications only");
    char *main_uri = NULL;
    if ((rc = file_uri("--application", o->application, workdir, &main_uri, err)) < 0) return rc;

    json_t *deps = json_object();
    struct { const char *list, *flag, *key; } dl[] = {
        { o->py_files, "--py-files", "pyFiles" }, { o->jars, "--jars", "jars" }, { o->files, "--files", "files" },
    };
    for (size_t i = 0; i < sizeof dl / sizeof dl[0]; i++) {
        if (!dl[i].list) continue;
        json_t *a = NULL;
        if ((rc = file_list(dl[i].flag, dl[i].list, workdir, &a, err)) < 0) {
            json_decref(deps);
            free(main_uri);
            return rc;
        }
        json_object_set_new(deps, dl[i].key, a);
    }

    long retries = 0, interval = 10;
    if ((o->retries && (rc = parse_count("--retries", o->retries, 0, &retries, err)) < 0) ||
        (o->retry_interval && (rc = parse_count("--retry-interval", o->retry_interval, 1, &interval, err)) < 0)) {
        json_decref(deps);
        free(main_uri);
        return rc;
    }
    if (o->retry_interval && !retries) {
        json_decref(deps);
        free(main_uri);
        return err_set(err, -EINVAL, "--retry-interval needs --retries N (N >= 1)");
    }

    json_t *spec = json_pack("{s:s, s:s, s:s}", "type", type, "mode", "cluster", "image", o->image);
    if (o->image_pull_policy) json_object_set_new(spec, "imagePullPolicy", json_string(o->image_pull_policy));
    if (o->main_class) json_object_set_new(spec, "mainClass", json_string(o->main_class));
    json_object_set_new(spec, "mainApplicationFile", json_string(main_uri));
    free(main_uri);
    if (o->args && *o->args) {
        json_t *a = json_array();
        for (const char *const *p = o->args; *p; p++) json_array_append_new(a, json_string(*p));
        json_object_set_new(spec, "arguments", a);
    }
    json_object_set_new(spec, "sparkVersion", json_string(o->spark_version));
    if (json_object_size(conf)) json_object_set(spec, "sparkConf", conf);
    if (json_object_size(deps)) json_object_set(spec, "deps", deps);
    json_decref(deps);
    /* Retries cover both a failed run and a failed submission (an image
     * that cannot be pulled, a quota): the latter is what leaves
     * applications stuck otherwise. */
    json_t *restart = retries ? json_pack("{s:s, s:I, s:I, s:I, s:I}", "type", "OnFailure", "onFailureRetries",
                                          (json_int_t)retries, "onFailureRetryInterval", (json_int_t)interval,
                                          "onSubmissionFailureRetries", (json_int_t)retries,
                                          "onSubmissionFailureRetryInterval", (json_int_t)interval)
                              : json_pack("{s:s}", "type", "Never");
    json_object_set_new(spec, "restartPolicy", restart);
    json_object_set_new(spec, "driver",
                        json_pack("{s:I, s:s, s:s}", "cores", (json_int_t)sz->driver_cores, "memory", sz->driver_memory,
                                  "serviceAccount", or_default(o->service_account, DEF_SERVICE_ACCOUNT)));
    json_object_set_new(spec, "executor",
                        json_pack("{s:I, s:I, s:s}", "instances", (json_int_t)sz->executor_instances, "cores",
                                  (json_int_t)sz->executor_cores, "memory", sz->executor_memory));
    *out = spec;
    return 0;
}

int sk8s_app(const struct sk8s_opts *o, json_t **out, nb_err_t *err)
{
    *out = NULL;
    struct sizes sz;
    json_t *conf = NULL, *spec = NULL;
    int rc = common_checks(o, F_APP, &sz, &conf, err);
    if (rc < 0) return rc;
    if (o->selector || o->master || o->cluster_domain) {
        json_decref(conf);
        return err_set(err, -EINVAL, "--selector, --master and --cluster-domain apply to notebooks only");
    }
    char *sched = NULL;
    if (o->time_zone && !o->schedule) rc = err_set(err, -EINVAL, "--time-zone needs --schedule");
    else if (o->schedule && (rc = sk8s_schedule(o->schedule, &sched, err)) == 0 && o->time_zone) rc = check_tz(o->time_zone, err);
    if (rc == 0) rc = app_spec(o, &sz, conf, &spec, err);
    json_decref(conf);
    if (rc < 0) {
        free(sched);
        return rc;
    }
    json_t *m;
    if (sched) {
        /* Forbid: a run that is still going when the next is due makes the
         * next one wait, as nbhub's own scheduler does with a flow's runs. */
        json_t *s = json_pack("{s:s}", "schedule", sched);
        if (o->time_zone) json_object_set_new(s, "timeZone", json_string(o->time_zone));
        json_object_set_new(s, "concurrencyPolicy", json_string("Forbid"));
        json_object_set_new(s, "template", spec);
        m = manifest("sparkoperator.k8s.io/v1beta2", "ScheduledSparkApplication", metadata(o, o->name), s, "spec");
        free(sched);
    } else {
        m = manifest("sparkoperator.k8s.io/v1beta2", "SparkApplication", metadata(o, o->name), spec, "spec");
    }
    *out = json_pack("[o]", m);
    return 0;
}

/* ---- notebook ---------------------------------------------------------------- */

char *sk8s_configmap_name(const struct sk8s_opts *o)
{
    return xasprintf("%s-spark", o->name);
}

char *sk8s_driver_host(const struct sk8s_opts *o)
{
    return xasprintf("%s.%s.svc.%s", o->name, or_default(o->k8s_namespace, DEF_NAMESPACE),
                     or_default(o->cluster_domain, DEF_DOMAIN));
}

/* spark.driver.host -> SPARK_DRIVER_HOST */
static char *env_key(const char *key)
{
    char *e = xstrdup(key);
    for (char *p = e; *p; p++) *p = *p == '.' || *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    return e;
}

int sk8s_notebook(const struct sk8s_opts *o, json_t **out, nb_err_t *err)
{
    *out = NULL;
    struct sizes sz;
    json_t *user = NULL;
    int rc = common_checks(o, F_NOTEBOOK, &sz, &user, err);
    if (rc < 0) return rc;
    if (o->application || o->main_class || o->type || (o->args && *o->args) || o->py_files || o->jars || o->files ||
        o->schedule || o->time_zone || o->retries || o->retry_interval || o->workdir || o->driver_cores) {
        json_decref(user);
        return err_set(err, -EINVAL, "a notebook takes no application, schedule, retries or --driver-cores: "
                       "it is the driver (see nbhub spark render-k8s help)");
    }
    const char *master = or_default(o->master, DEF_MASTER);
    if (strncmp(master, "k8s://", 6) != 0) rc = err_set(err, -EINVAL, "--master '%s': k8s://https://API-SERVER[:PORT] expected", master);
    else rc = sparkspec_check_master(master, err);
    if (rc < 0) {
        json_decref(user);
        return rc;
    }
    if (o->cluster_domain && (rc = check_subdomain("--cluster-domain", o->cluster_domain, err)) < 0) {
        json_decref(user);
        return rc;
    }
    json_t *selector = json_object();
    for (const char *const *s = o->selector; s && *s; s++) {
        if ((rc = check_selector(*s, err)) < 0) {
            json_decref(user);
            json_decref(selector);
            return rc;
        }
        const char *eq = strchr(*s, '=');
        char *k = xstrndup(*s, (size_t)(eq - *s));
        json_object_set_new(selector, k, json_string(eq + 1));
        free(k);
    }
    if (!json_object_size(selector)) json_object_set_new(selector, DEF_SELECTOR_KEY, json_string(o->name));

    /* The settings, in the order PYSPARK_SUBMIT_ARGS lists them. */
    char *host = sk8s_driver_host(o), num[3][24];
    snprintf(num[0], sizeof num[0], "%ld", sz.executor_instances);
    snprintf(num[1], sizeof num[1], "%ld", sz.executor_cores);
    json_t *conf = json_object();
    json_object_set_new(conf, "spark.kubernetes.container.image", json_string(o->image));
    if (o->image_pull_policy) json_object_set_new(conf, "spark.kubernetes.container.image.pullPolicy", json_string(o->image_pull_policy));
    json_object_set_new(conf, "spark.kubernetes.namespace", json_string(or_default(o->k8s_namespace, DEF_NAMESPACE)));
    json_object_set_new(conf, "spark.kubernetes.authenticate.driver.serviceAccountName",
                        json_string(or_default(o->service_account, DEF_SERVICE_ACCOUNT)));
    json_object_set_new(conf, "spark.driver.host", json_string(host));
    snprintf(num[2], sizeof num[2], "%d", SK8S_DRIVER_PORT);
    json_object_set_new(conf, "spark.driver.port", json_string(num[2]));
    json_object_set_new(conf, "spark.driver.bindAddress", json_string("0.0.0.0"));
    snprintf(num[2], sizeof num[2], "%d", SK8S_BLOCK_MANAGER_PORT);
    json_object_set_new(conf, "spark.blockManager.port", json_string(num[2]));
    if (o->driver_memory) json_object_set_new(conf, "spark.driver.memory", json_string(sz.driver_memory));
    json_object_set_new(conf, "spark.executor.instances", json_string(num[0]));
    json_object_set_new(conf, "spark.executor.cores", json_string(num[1]));
    json_object_set_new(conf, "spark.executor.memory", json_string(sz.executor_memory));
    json_object_update(conf, user);   /* owned keys were refused, so this only adds */
    json_decref(user);
    free(host);

    buf_t args = BUF_INIT;
    buf_puts(&args, "--master ");
    sparkspec_quote(&args, master);
    buf_puts(&args, " --deploy-mode client");
    json_t *data = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(conf, k, v) {
        buf_puts(&args, " --conf ");
        char *kv = xasprintf("%s=%s", k, json_string_value(v));
        sparkspec_quote(&args, kv);
        free(kv);
    }
    /* pyspark's java_gateway requires the primary resource last. */
    buf_puts(&args, " pyspark-shell");
    json_object_set_new(data, "PYSPARK_SUBMIT_ARGS", json_string(args.data));
    buf_free(&args);
    json_object_set_new(data, "SPARK_MASTER", json_string(master));
    json_object_foreach(conf, k, v) {
        char *e = env_key(k);
        json_t *prev = json_object_get(data, e);
        if (prev) {
            rc = err_set(err, -EINVAL, "--conf %s: its ConfigMap key %s is taken by another setting", k, e);
            free(e);
            json_decref(data);
            json_decref(conf);
            json_decref(selector);
            return rc;
        }
        json_object_set(data, e, v);
        free(e);
    }
    json_decref(conf);

    struct { const char *name; int port; } ports[] = {
        { "driver-rpc", SK8S_DRIVER_PORT }, { "blockmanager", SK8S_BLOCK_MANAGER_PORT }, { "spark-ui", SK8S_UI_PORT },
    };
    json_t *pl = json_array();
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        json_array_append_new(pl, json_pack("{s:s, s:i, s:i, s:s}", "name", ports[i].name, "port", ports[i].port,
                                            "targetPort", ports[i].port, "protocol", "TCP"));
    json_t *svc_spec = json_pack("{s:s, s:b, s:o, s:o}", "clusterIP", "None", "publishNotReadyAddresses", 1,
                                 "selector", selector, "ports", pl);
    json_t *svc = manifest("v1", "Service", metadata(o, o->name), svc_spec, "spec");
    char *cm_name = sk8s_configmap_name(o);
    json_t *cm = manifest("v1", "ConfigMap", metadata(o, cm_name), data, "data");
    free(cm_name);
    *out = json_pack("[o,o]", svc, cm);
    return 0;
}

/* ---- connect ----------------------------------------------------------------- */

int sk8s_connect(const struct sk8s_opts *o, json_t **out, nb_err_t *err)
{
    *out = NULL;
    struct sizes sz;
    json_t *conf = NULL;
    int rc = common_checks(o, F_CONNECT, &sz, &conf, err);
    if (rc < 0) return rc;
    if (o->application || o->main_class || o->type || (o->args && *o->args) || o->py_files || o->jars || o->files ||
        o->schedule || o->time_zone || o->retries || o->retry_interval || o->workdir || o->selector || o->master ||
        o->cluster_domain) {
        json_decref(conf);
        return err_set(err, -EINVAL, "a Spark Connect server takes no application, schedule, retries, selector or "
                       "master (see nbhub spark render-k8s help)");
    }
    json_t *spec = json_pack("{s:s, s:s}", "sparkVersion", o->spark_version, "image", o->image);
    if (json_object_size(conf)) json_object_set(spec, "sparkConf", conf);
    json_decref(conf);
    /* The server is the driver: its pod creates the executors, so it runs
     * under the service account; the template is a plain pod template. */
    json_t *pod = json_pack("{s:s}", "serviceAccountName", or_default(o->service_account, DEF_SERVICE_ACCOUNT));
    if (o->image_pull_policy)
        json_object_set_new(pod, "containers", json_pack("[{s:s, s:s}]", "name", "spark-kubernetes-driver",
                                                         "imagePullPolicy", o->image_pull_policy));
    json_object_set_new(spec, "server", json_pack("{s:I, s:s, s:{s:o}}", "cores", (json_int_t)sz.driver_cores, "memory",
                                                  sz.driver_memory, "template", "spec", pod));
    json_t *ex = json_pack("{s:I, s:I, s:s}", "instances", (json_int_t)sz.executor_instances, "cores",
                           (json_int_t)sz.executor_cores, "memory", sz.executor_memory);
    if (o->image_pull_policy)
        json_object_set_new(ex, "template", json_pack("{s:{s:[{s:s, s:s}]}}", "spec", "containers", "name",
                                                      "spark-kubernetes-executor", "imagePullPolicy", o->image_pull_policy));
    json_object_set_new(spec, "executor", ex);
    *out = json_pack("[o]", manifest("sparkoperator.k8s.io/v1alpha1", "SparkConnect", metadata(o, o->name), spec, "spec"));
    return 0;
}
