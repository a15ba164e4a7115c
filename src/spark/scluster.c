/* scluster — see scluster.h. */
#include "spark/scluster.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static char **strv(const char *const *items)
{
    size_t n = 0;
    while (items[n]) n++;
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = xstrdup(items[i]);
    return v;
}

void scluster_strv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

char **scluster_master_argv(const char *spark_home, int port, int ui_port)
{
    char *cls = xasprintf("%s/bin/spark-class", spark_home);
    char p[16], u[16];
    snprintf(p, sizeof p, "%d", port);
    snprintf(u, sizeof u, "%d", ui_port);
    const char *a[] = { cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                        "--port", p, "--webui-port", u, NULL };
    char **v = strv(a);
    free(cls);
    return v;
}

char **scluster_worker_argv(const char *spark_home, const char *master_url, int cores,
                            const char *memory, const char *work_dir)
{
    char *cls = xasprintf("%s/bin/spark-class", spark_home);
    char c[16];
    snprintf(c, sizeof c, "%d", cores);
    /* --webui-port 0: any free port (workers' UIs are reached through the
     * master's page). */
    const char *a[] = { cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--cores", c, "--memory", memory, "--work-dir", work_dir,
                        "--webui-port", "0", master_url, NULL };
    char **v = strv(a);
    free(cls);
    return v;
}

char **scluster_connect_argv(const char *spark_home, const char *id, const char *master_url, int port,
                             const char *executor_memory)
{
    char *submit = xasprintf("%s/bin/spark-submit", spark_home);
    char *bind = xasprintf("spark.connect.grpc.binding.port=%d", port);
    char **ui = scluster_ui_confs(id);
    /* No primary resource: SparkSubmit knows the Connect server as one of
     * its internal classes (as Spark's sbin/start-connect-server.sh runs it). */
    const char *a[] = { submit, "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                        "--name", "Spark Connect server", "--master", master_url,
                        "--executor-memory", executor_memory,
                        "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", bind,
                        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
                        /* Its UI (a free port: the master proxies it) shows every
                         * session's jobs and SQL, through nbhub at
                         * /spark/NAME/ui/proxy/APP/. */
                        "--conf", "spark.ui.port=0", "--conf", ui[0], "--conf", ui[1], "--conf", ui[2], NULL };
    char **v = strv(a);
    free(submit);
    free(bind);
    scluster_strv_free(ui);
    return v;
}

char *scluster_ui_path(const char *id)
{
    return xasprintf("/spark/%s/ui", id);
}

char **scluster_ui_confs(const char *id)
{
    char *path = scluster_ui_path(id), *url = xasprintf("spark.ui.reverseProxyUrl=%s", path);
    const char *a[] = { "spark.ui.reverseProxy=true", url, "spark.ui.killEnabled=false", NULL };
    char **v = strv(a);
    free(path);
    free(url);
    return v;
}

char *scluster_ui_opts(const char *id)
{
    char **c = scluster_ui_confs(id);
    char *o = xasprintf("-D%s -D%s -D%s", c[0], c[1], c[2]);
    scluster_strv_free(c);
    return o;
}

char **scluster_env(const char *spark_home, const char *id)
{
    static const char *const drop[] = { "SPARK_HOME=", "SPARK_LOCAL_IP=", "SPARK_PUBLIC_DNS=",
                                        "SPARK_MASTER_OPTS=", "SPARK_WORKER_OPTS=", "SPARK_CONNECT_MODE=", "SPARK_REMOTE=", NULL };
    size_t n = 0;
    while (environ[n]) n++;
    char **v = xcalloc(n + 7, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (const char *const *d = drop; *d; d++)
            if (!strncmp(environ[i], *d, strlen(*d))) skip = 1;
        if (!skip) v[k++] = xstrdup(environ[i]);
    }
    v[k++] = xasprintf("SPARK_HOME=%s", spark_home);
    v[k++] = xstrdup("SPARK_LOCAL_IP=127.0.0.1");
    v[k++] = xstrdup("SPARK_PUBLIC_DNS=127.0.0.1");
    /* The UIs behind nbhub's proxy (scluster.h). */
    char *ui = scluster_ui_opts(id);
    v[k++] = xasprintf("SPARK_MASTER_OPTS=-Dspark.master.rest.enabled=false -Dspark.port.maxRetries=0 %s", ui);
    v[k++] = xasprintf("SPARK_WORKER_OPTS=-Dspark.port.maxRetries=0 %s", ui);
    free(ui);
    v[k++] = xstrdup("SPARK_CONNECT_MODE=0");   /* the server itself is classic Spark */
    return v;
}

int scluster_status_parse(const char *text, size_t len, struct scluster_status *st, nb_err_t *err)
{
    memset(st, 0, sizeof *st);
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(err, -EINVAL, "the master's /json/ is not a JSON object (%s)", je.text);
    }
    const char *url = json_string_value(json_object_get(j, "url"));
    const char *status = json_string_value(json_object_get(j, "status"));
    if (!url || !status) {
        json_decref(j);
        return err_set(err, -EINVAL, "the master's /json/ lacks url or status");
    }
    snprintf(st->url, sizeof st->url, "%s", url);
    snprintf(st->status, sizeof st->status, "%s", status);
    st->alive_workers = (int)json_integer_value(json_object_get(j, "aliveworkers"));
    st->cores = (int)json_integer_value(json_object_get(j, "cores"));
    st->cores_used = (int)json_integer_value(json_object_get(j, "coresused"));
    st->memory_mb = (long)json_integer_value(json_object_get(j, "memory"));
    st->memory_used_mb = (long)json_integer_value(json_object_get(j, "memoryused"));
    st->active_apps = (int)json_array_size(json_object_get(j, "activeapps"));
    json_decref(j);
    return 0;
}

int scluster_port_bind(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    /* As a JVM's server socket does: a port in TIME_WAIT is free to it. */
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &l) < 0
                 ? -errno : ntohs(a.sin_port);
    close(fd);
    return rc;
}

int scluster_free_port(void)
{
    return scluster_port_bind(0);
}

/* Digits scaled by their unit, checked against SCLUSTER_MEMORY_MAX_MB digit
 * by digit: "18014398509481985g" once overflowed a long (undefined; here it
 * wrapped to 1024 MB and passed the per-user memory quota, found by UBSan). */
/* A size is at most 9 significant digits of megabytes, 6 of gigabytes or
 * 3 of terabytes: under SCLUSTER_MEMORY_MAX_MB whatever the unit, and a
 * rule a JSON Schema pattern can state exactly (openapi.json's
 * worker_memory), so the document and the server refuse the same sizes. */
long scluster_memory_mb(const char *m)
{
    size_t d = strspn(m, "0123456789");
    if (d == 0) return -EINVAL;
    char u = m[d];
    if (u != '\0' && (m[d + 1] != '\0' || !strchr("mMgGtT", u))) return -EINVAL;
    int g = u == 'g' || u == 'G', t = u == 't' || u == 'T';
    size_t zeros = strspn(m, "0");
    if (zeros > d) zeros = d;
    if (d - zeros > (t ? 3u : g ? 6u : 9u)) return -EINVAL;
    long n = 0;
    for (size_t i = zeros; i < d; i++) n = n * 10 + (m[i] - '0');
    n *= t ? 1024L * 1024 : g ? 1024 : 1;
    return n > 0 ? n : -EINVAL;
}

long scluster_host_memory_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb > 0 ? kb / 1024 : -1;
}

int scluster_memory_ok(const char *m)
{
    return scluster_memory_mb(m) > 0 ? 0 : -EINVAL;
}

/* What state.json and config.json may weigh: a few hundred bytes each. */
#define SCLUSTER_STATE_MAX (1u << 20)

/* state.json of the cluster in dir if its supervisor is alive and is a
 * supervisor (pids get reused), else NULL.  One read serves the liveness
 * check and the caller. */
json_t *scluster_live_state(const char *dir)
{
    char *p = xasprintf("%s/state.json", dir);
    /* Under isolation: system the directory is the cluster's account's:
     * no link followed, no FIFO waited for, a bounded read. */
    json_t *st = jparse_file_regular(p, SCLUSTER_STATE_MAX);
    free(p);
    int pid = (int)json_integer_value(json_object_get(st, "pid"));
    char cmd[256] = "";
    int fd = -1;
    if (pid > 0 && kill(pid, 0) == 0) {
        char *cp = xasprintf("/proc/%d/cmdline", pid);
        fd = open(cp, O_RDONLY | O_CLOEXEC);
        free(cp);
    }
    if (fd >= 0) {
        ssize_t n = read(fd, cmd, sizeof cmd - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (!cmd[i]) cmd[i] = ' ';
        cmd[n > 0 ? n : 0] = '\0';
    }
    if (!strstr(cmd, "__spark-supervise")) {
        json_decref(st);
        return NULL;
    }
    return st;
}

int scluster_name_ok(const char *n)
{
    if (!n || !*n || strlen(n) > 64) return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return n[0] != '.';
}

json_t *scluster_config(const char *dir)
{
    char *p = xasprintf("%s/config.json", dir);
    json_t *j = jparse_file_regular(p, SCLUSTER_STATE_MAX);
    free(p);
    return j;
}

/* ---- owners, ids, the claim (scluster.h) ---------------------------------- */

int scluster_owner_ok(const char *o)
{
    if (!o || !*o || strlen(o) > 64) return 0;
    for (const unsigned char *p = (const unsigned char *)o; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/') return 0;
    return 1;
}

char *scluster_id(const char *owner, const char *name)
{
    if (!owner) return xstrdup(name);
    buf_t b = { 0 };
    buf_putc(&b, '~');
    urlesc_append(&b, owner);
    buf_printf(&b, "/%s", name);
    return buf_detach(&b);
}

char *scluster_dir(const char *home, const char *id)
{
    return id ? xasprintf("%s/spark/%s", home, id) : xasprintf("%s/spark", home);
}

/* config.json of the cluster of that id, or NULL. */
static json_t *scluster_config_of(const char *home, const char *id)
{
    char *d = scluster_dir(home, id);
    json_t *j = scluster_config(d);
    free(d);
    return j;
}

/* 1 if the cluster of that id has a config.json naming owner (NULL:
 * any, or none when owner_null), else 0. */
static int scluster_owned(const char *home, const char *id, const char *owner)
{
    json_t *cfg = scluster_config_of(home, id);
    const char *o = json_string_value(json_object_get(cfg, "owner"));
    int ok = cfg && (!owner || (o && !strcmp(o, owner)));
    json_decref(cfg);
    return ok;
}

char *scluster_find(const char *home, const char *owner, const char *name)
{
    if (!scluster_name_ok(name) || (owner && !scluster_owner_ok(owner))) return NULL;
    if (owner) {
        char *id = scluster_id(owner, name);
        if (scluster_owned(home, id, NULL)) return id;
        free(id);
    }
    return scluster_owned(home, name, owner) ? xstrdup(name) : NULL;
}

static int scluster_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Append the ids under HOME/spark/SUB (SUB NULL: the top) to v. */
static void scluster_scan(const char *home, const char *sub, const char *owner, char ***v, size_t *n, int deep)
{
    char *base = scluster_dir(home, sub);
    DIR *d = opendir(base);
    free(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '~' && deep) {
            scluster_scan(home, e->d_name, owner, v, n, 0);
            continue;
        }
        if (!scluster_name_ok(e->d_name)) continue;
        char *id = sub ? xasprintf("%s/%s", sub, e->d_name) : xstrdup(e->d_name);
        if (scluster_owned(home, id, sub ? NULL : owner)) {
            *v = xrealloc(*v, (*n + 2) * sizeof **v);
            (*v)[(*n)++] = id;
            (*v)[*n] = NULL;
        } else {
            free(id);
        }
    }
    if (d) closedir(d);
}

char **scluster_ids(const char *home, const char *owner)
{
    char **v = xcalloc(1, sizeof *v);
    size_t n = 0;
    if (owner && !scluster_owner_ok(owner)) return v;
    scluster_scan(home, NULL, owner, &v, &n, !owner);        /* the old layout's, or all */
    if (owner) {
        char *mine = scluster_id(owner, "x");
        mine[strlen(mine) - 2] = '\0';                       /* ~OWNER */
        scluster_scan(home, mine, NULL, &v, &n, 0);
        free(mine);
    }
    qsort(v, n, sizeof *v, scluster_cmp);
    return v;
}

/* Is fd open on DIR/lock itself? */
static int scluster_is_lock(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int scluster_lock(const char *dir, int fd, nb_err_t *err)
{
    char *path = xasprintf("%s/lock", dir);
    int own = fd < 0;
    if (!own && !scluster_is_lock(fd, path)) {
        free(path);
        return err_set(err, -EBADF, "descriptor %d is not %s/lock", fd, dir);
    }
    if (own) fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0) return err_set(err, -errno, "cannot open %s/lock: %s", dir, strerror(errno));
    /* Held by this very description (handed down): taking it again is a
     * no-op.  Held by any other description, in any process: EAGAIN. */
    struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_OFD_SETLK, &l) < 0) {
        int e = errno;
        if (own) close(fd);
        if (e == EAGAIN || e == EACCES)
            return err_set(err, -EBUSY, "the cluster in %s is starting or up (its lock is held)", dir);
        return err_set(err, -e, "cannot lock %s/lock: %s", dir, strerror(e));
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);   /* the JVMs must not hold it */
    return fd;
}

int scluster_locked(const char *dir)
{
    char *path = xasprintf("%s/lock", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0) return 0;
    struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int held = fcntl(fd, F_OFD_GETLK, &l) == 0 && l.l_type != F_UNLCK;
    close(fd);
    return held;
}

void scluster_usage(const char *home, const char *owner, const char *skip, struct scluster_usage *u)
{
    memset(u, 0, sizeof *u);
    char **ids = scluster_ids(home, owner);
    for (char **id = ids; *id; id++) {
        if (skip && !strcmp(*id, skip)) continue;
        char *dir = scluster_dir(home, *id);
        json_t *cfg = scluster_config(dir), *live = NULL;
        /* a flow's ephemeral clusters are the scheduler's, a notebook
         * server's (the hub's) the profile's, a Livy session's livy:'s:
         * none counts */
        int busy = !json_is_true(json_object_get(cfg, "ephemeral")) && !json_is_string(json_object_get(cfg, "server")) &&
                   !json_object_get(cfg, "livy_session") &&
                   (scluster_locked(dir) || (live = scluster_live_state(dir)) != NULL);
        json_decref(live);
        free(dir);
        if (busy) {
            const char *m = json_string_value(json_object_get(cfg, "worker_memory"));
            long mb = m ? scluster_memory_mb(m) : 0;
            u->clusters++;
            u->memory_mb += (mb > 0 ? mb : 0) * (long)json_integer_value(json_object_get(cfg, "workers"));
        }
        json_decref(cfg);
    }
    scluster_strv_free(ids);
}
