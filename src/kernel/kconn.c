/* kconn — see kconn.h. */
#include "kernel/kconn.h"
#include "kernel/kwire.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kconn_names[KCHAN_COUNT] = { "shell", "iopub", "stdin", "control", "hb" };
static const char *kconn_keys[KCHAN_COUNT] = { "shell_port", "iopub_port", "stdin_port",
                                               "control_port", "hb_port" };

const char *kconn_chan_name(enum kchan ch) { return kconn_names[ch]; }

/* A free TCP port on 127.0.0.1, found by binding to port 0.  There is a
 * window between close and the kernel's bind: that is exactly why ipc is
 * the default. */
static int kconn_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -EADDRNOTAVAIL;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static char *kconn_runtime_dir(void)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (x && *x && access(x, W_OK) == 0) return xasprintf("%s/nbhub", x);
    return xasprintf("/tmp/nbhub-%ld", (long)getuid());
}

static int kconn_write(kconn_t *c, nb_err_t *err)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}",
                          "transport", c->ipc ? "ipc" : "tcp", "ip", c->ip,
                          "signature_scheme", "hmac-sha256", "key", c->key,
                          "kernel_name", "");
    for (int i = 0; i < KCHAN_COUNT; i++)
        json_object_set_new(j, kconn_keys[i], json_integer(c->ports[i]));
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(j);
    int fd = open(c->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        free(s);
        return err_set(err, -e, "%s: cannot write connection file: %s", c->file, strerror(e));
    }
    size_t n = strlen(s);
    ssize_t w = write(fd, s, n);
    close(fd);
    free(s);
    if (w != (ssize_t)n) return err_set(err, -EIO, "%s: short write", c->file);
    return 0;
}

int kconn_new(int ipc, kconn_t **out, nb_err_t *err)
{
    char *root = kconn_runtime_dir();
    int rc = fs_mkdir_p(root, 0700, err);
    if (rc == 0) rc = kconn_new_in(root, ipc, out, err);
    free(root);
    return rc;
}

int kconn_new_in(const char *root, int ipc, kconn_t **out, nb_err_t *err)
{
    int rc;
    char id[33];
    kwire_new_id(id);
    id[16] = '\0'; /* short: ipc paths must fit in sun_path (108 bytes) */
    kconn_t *c = xcalloc(1, sizeof *c);
    c->ipc = ipc;
    c->dir = xasprintf("%s/k-%s", root, id);
    if (mkdir(c->dir, 0700) < 0) {
        rc = err_set(err, -errno, "%s: %s", c->dir, strerror(errno));
        free(c->dir);
        free(c);
        return rc;
    }
    c->file = xasprintf("%s/kernel-%s.json", c->dir, id);
    char keyid[33];
    kwire_new_key(keyid);
    char keyid2[33];
    kwire_new_key(keyid2);
    snprintf(c->key, sizeof c->key, "%s%s", keyid, keyid2);
    if (ipc) {
        c->ip = xasprintf("%s/ipc", c->dir);
        for (int i = 0; i < KCHAN_COUNT; i++) c->ports[i] = i + 1;
    } else {
        c->ip = xstrdup("127.0.0.1");
        for (int i = 0; i < KCHAN_COUNT; i++) {
            int p = kconn_free_port();
            if (p < 0) {
                kconn_free(c);
                return err_set(err, p, "no free TCP port on 127.0.0.1: %s", strerror(-p));
            }
            c->ports[i] = p;
        }
    }
    if ((rc = kconn_write(c, err)) < 0) {
        kconn_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int kconn_load(const char *path, kconn_t **out, nb_err_t *err)
{
    return kconn_load_owned(path, -1, out, err);
}

int kconn_load_owned(const char *path, long uid, kconn_t **out, nb_err_t *err)
{
    char *text;
    size_t len;
    int rc = fs_read_owned(path, uid, KCONN_FILE_MAX, &text, &len, err);
    if (rc < 0) return rc;
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    free(text);
    if (!j)
        return err_set(err, -EINVAL, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    kconn_t *c = xcalloc(1, sizeof *c);
    const char *tr = json_string_value(json_object_get(j, "transport"));
    const char *ip = json_string_value(json_object_get(j, "ip"));
    const char *key = json_string_value(json_object_get(j, "key"));
    c->ipc = tr && strcmp(tr, "ipc") == 0;
    c->ip = xstrdup(ip ? ip : "127.0.0.1");
    snprintf(c->key, sizeof c->key, "%s", key ? key : "");
    for (int i = 0; i < KCHAN_COUNT; i++) {
        json_t *p = json_object_get(j, kconn_keys[i]);
        if (!json_is_integer(p)) {
            json_decref(j);
            kconn_free(c);
            return err_set(err, -EINVAL, "%s: missing %s", path, kconn_keys[i]);
        }
        c->ports[i] = (int)json_integer_value(p);
    }
    json_decref(j);
    *out = c;
    return 0;
}

char *kconn_endpoint(const kconn_t *c, enum kchan ch)
{
    if (c->ipc) return xasprintf("ipc://%s-%d", c->ip, c->ports[ch]);
    return xasprintf("tcp://%s:%d", c->ip, c->ports[ch]);
}

void kconn_free(kconn_t *c)
{
    if (!c) return;
    if (c->dir) {
        /* Only what we created: the file, the sockets, the directory. */
        if (c->file) unlink(c->file);
        if (c->ipc)
            for (int i = 0; i < KCHAN_COUNT; i++) {
                char *p = xasprintf("%s-%d", c->ip, c->ports[i]);
                unlink(p);
                free(p);
            }
        rmdir(c->dir);
    }
    free(c->ip);
    free(c->file);
    free(c->dir);
    free(c);
}
