/*
 * zsock — see zsock.h.
 *
 * A socket goes CONNECTING -> GREETING (ours sent with our READY, waiting
 * for the peer's 64 bytes) -> HANDSHAKE (waiting for the peer's READY) ->
 * ACTIVE.  Any error or EOF closes the stream and, unless zsock_close was
 * called, a timer starts the next attempt: the libuv handle of a failed
 * stream cannot be reused, so each attempt initialises a fresh one.
 *
 * Reading: one buffer per socket.  Frames of a multipart message are kept
 * as offsets into it (a message may span many reads), and the buffer is
 * compacted or grown only in the alloc callback, never while frames of a
 * message being delivered point into it.
 *
 * Writing: uv_try_write of the frame headers and the caller's bytes
 * straight from their memory; only what the kernel did not take at once is
 * copied into a write request.  A send never blocks and never calls back.
 */
#include "kernel/zsock.h"
#include "kernel/zmtp.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum zstate { ZS_IDLE, ZS_CONNECTING, ZS_GREETING, ZS_HANDSHAKE, ZS_ACTIVE, ZS_CLOSING_STREAM };

#define ZSOCK_READ_CHUNK  (64 * 1024)
#define ZSOCK_RETRY_FIRST 10    /* ms between attempts until the first handshake */
#define ZSOCK_RETRY_WATCHED 250 /* the same while the directory is watched: a safety net */
#define ZSOCK_RETRY_AFTER 100   /* ms after a connection that worked was lost */

struct zsock {
    uv_loop_t      *loop;
    enum zsock_type type;
    int             ipc;
    char           *path;           /* ipc */
    struct sockaddr_storage addr;   /* tcp */
    char           *identity;
    zsock_msg_cb    cb;
    void           *ud;
    union { uv_pipe_t pipe; uv_tcp_t tcp; uv_stream_t stream; uv_handle_t handle; } s;
    uv_connect_t    creq;
    uv_timer_t      retry;
    uv_fs_event_t   watch;          /* ipc: the socket's directory, until the first connection */
    int             watching;
    enum zstate     state;
    int             ever_ready;
    int             closing;
    int             held;           /* zsock_hold: not read until drained or released */
    int             final;          /* zsock_final: a lost connection is not retried */
    int             handles;        /* open libuv handles (the timer, the stream) */
    /* receive side */
    uint8_t        *rb;
    size_t          rlen, rcap;     /* bytes held, capacity */
    size_t          roff;           /* parse position */
    size_t          mstart;         /* start of the message being assembled */
    size_t          need;           /* total bytes of the frame being waited for */
    size_t          foff[ZSOCK_MAX_FRAMES], flen[ZSOCK_MAX_FRAMES];
    size_t          nframes;
    int             overflow;       /* current message has too many frames */
    /* send side */
    buf_t           pending;        /* encoded messages waiting for ACTIVE */
    unsigned        npending;
    unsigned long   dropped;
};

static const char *zsock_type_name(enum zsock_type t)
{
    return t == ZSOCK_DEALER ? "DEALER" : t == ZSOCK_SUB ? "SUB" : "REQ";
}

static void zsock_start_connect(zsock_t *z);

static void zsock_maybe_free(zsock_t *z)
{
    if (!z->closing || z->handles > 0) return;
    free(z->rb);
    buf_free(&z->pending);
    free(z->path);
    free(z->identity);
    free(z);
}

static void zsock_on_timer_closed(uv_handle_t *h)
{
    zsock_t *z = h->data;
    z->handles--;
    zsock_maybe_free(z);
}

static void zsock_on_retry(uv_timer_t *t)
{
    zsock_start_connect(t->data);
}

/* ---- waiting for an ipc socket to appear ----
 *
 * Until the kernel has bound its socket there is nothing to connect to.
 * Rather than look every 10 ms (five channels, ~70 looks while an
 * ipykernel starts, many more for a Spark kernel: each a wake-up and a
 * stat), the socket's directory is watched (inotify, through libuv) and
 * the attempt is made when a file of that name is created.  The timer
 * stays as a safety net at 250 ms; where no watch can be set, it is the
 * 10 ms poll as before. */

static void zsock_on_watch_closed(uv_handle_t *h)
{
    zsock_t *z = h->data;
    z->handles--;
    zsock_maybe_free(z);
}

static void zsock_unwatch(zsock_t *z)
{
    if (!z->watching) return;
    z->watching = 0;
    uv_close((uv_handle_t *)&z->watch, zsock_on_watch_closed);
}

static void zsock_on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    zsock_t *z = h->data;
    (void)events;
    if (z->closing || z->state != ZS_IDLE || z->ever_ready) return;
    const char *base = strrchr(z->path, '/');
    base = base ? base + 1 : z->path;
    if (status == 0 && filename && strcmp(filename, base) != 0) return;
    uv_timer_stop(&z->retry);
    zsock_start_connect(z);
}

static void zsock_watch(zsock_t *z)
{
    const char *slash = strrchr(z->path, '/');
    if (!slash || slash == z->path) return;
    char *dir = xstrndup(z->path, (size_t)(slash - z->path));
    if (uv_fs_event_init(z->loop, &z->watch) == 0) {
        z->watch.data = z;
        z->handles++;
        if (uv_fs_event_start(&z->watch, zsock_on_dir_event, dir, 0) == 0) z->watching = 1;
        else uv_close((uv_handle_t *)&z->watch, zsock_on_watch_closed);
    }
    free(dir);
}

static void zsock_on_stream_closed(uv_handle_t *h)
{
    zsock_t *z = h->data;
    z->handles--;
    z->state = ZS_IDLE;
    if (z->closing) {
        zsock_maybe_free(z);
        return;
    }
    /* A final socket still connects while it holds messages: a shutdown
     * request queued before the connection was up must reach the kernel. */
    if (z->final && !z->npending) return;
    uv_timer_start(&z->retry, zsock_on_retry, z->ever_ready ? ZSOCK_RETRY_AFTER : ZSOCK_RETRY_FIRST, 0);
}

/* Give up on this connection and, unless closing, try again later. */
static void zsock_drop_conn(zsock_t *z, const char *why)
{
    if (z->state == ZS_CLOSING_STREAM || z->state == ZS_IDLE) return;
    if (z->state == ZS_ACTIVE || z->state == ZS_HANDSHAKE || z->state == ZS_GREETING)
        LOG_D("zmtp connection closed", "socket=%s why=\"%s\"", zsock_type_name(z->type), why);
    z->state = ZS_CLOSING_STREAM;
    z->rlen = z->roff = z->mstart = z->need = 0;
    z->nframes = 0;
    z->overflow = 0;
    uv_close(&z->s.handle, zsock_on_stream_closed);
}

/* ---- writing ---- */

struct zsock_wreq {
    uv_write_t req;
    char       data[];
};

static void zsock_on_write(uv_write_t *req, int status)
{
    free(req);   /* errors show up on the read side, which reconnects */
}

/* Write bufs in order: at once what the socket takes, the rest copied. */
static void zsock_writev(zsock_t *z, uv_buf_t *bufs, unsigned nbufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
    size_t done = 0;
    if (uv_stream_get_write_queue_size(&z->s.stream) == 0) {
        int n = uv_try_write(&z->s.stream, bufs, nbufs);
        if (n > 0) done = (size_t)n;
        else if (n != UV_EAGAIN && n != UV_ENOSYS) return;   /* the read side will notice */
    }
    if (done == total) return;
    struct zsock_wreq *w = xmalloc(sizeof *w + (total - done));
    size_t at = 0, skip = done;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) { skip -= l; continue; }
        memcpy(w->data + at, bufs[i].base + skip, l - skip);
        at += l - skip;
        skip = 0;
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)at);
    if (uv_write(&w->req, &z->s.stream, &b, 1, zsock_on_write) < 0) free(w);
}

int zsock_send(zsock_t *z, const kbytes_t *frames, size_t n)
{
    if (z->closing) return -ECANCELED;
    int req = z->type == ZSOCK_REQ;
    size_t total = n + (size_t)req;
    NB_ASSERT(total > 0 && total <= ZSOCK_MAX_FRAMES);
    uint8_t hdr[ZSOCK_MAX_FRAMES][9];
    uv_buf_t bufs[2 * ZSOCK_MAX_FRAMES];
    unsigned nb = 0;
    for (size_t i = 0; i < total; i++) {
        size_t len = (req && i == 0) ? 0 : frames[i - (size_t)req].len;
        size_t hl = zmtp_frame_header(hdr[i], i + 1 < total ? ZMTP_MORE : 0, len);
        bufs[nb++] = uv_buf_init((char *)hdr[i], (unsigned)hl);
        if (len) bufs[nb++] = uv_buf_init(frames[i - (size_t)req].data, (unsigned)len);
    }
    if (z->state == ZS_ACTIVE) {
        zsock_writev(z, bufs, nb);
        return 0;
    }
    if (z->npending >= ZSOCK_MAX_QUEUED) {
        z->dropped++;
        return -ENOBUFS;
    }
    for (unsigned i = 0; i < nb; i++) buf_append(&z->pending, bufs[i].base, bufs[i].len);
    z->npending++;
    return 0;
}

/* ---- reading ---- */

static void zsock_deliver(zsock_t *z)
{
    kframe_t f[ZSOCK_MAX_FRAMES];
    size_t n = z->nframes, first = 0;
    z->nframes = 0;
    if (z->overflow) {
        z->overflow = 0;
        z->dropped++;
        return;
    }
    if (z->type == ZSOCK_REQ) {   /* [empty delimiter, reply...] */
        if (n < 2 || z->flen[0] != 0) {
            z->dropped++;
            return;
        }
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        f[i - first].data = z->rb + z->foff[i];
        f[i - first].len = z->flen[i];
    }
    z->cb(z, f, n - first, z->ud);
}

static void zsock_become_active(zsock_t *z)
{
    z->state = ZS_ACTIVE;
    z->ever_ready = 1;
    zsock_unwatch(z);
    if (z->held) uv_read_stop(&z->s.stream);
    if (z->type == ZSOCK_SUB) {   /* ZMTP 3.0 subscription: a message 0x01 + topic "" */
        static char sub[3] = { 0, 1, 1 };
        uv_buf_t b = uv_buf_init(sub, 3);
        zsock_writev(z, &b, 1);
    }
    if (z->pending.len) {
        uv_buf_t b = uv_buf_init(z->pending.data, (unsigned)z->pending.len);
        zsock_writev(z, &b, 1);   /* copies what it cannot write at once */
        buf_free(&z->pending);
        z->pending = (buf_t)BUF_INIT;
        z->npending = 0;
    }
}

static int zsock_on_command(zsock_t *z, const struct zmtp_frame *fr)
{
    const char *name;
    size_t nl, dl;
    const uint8_t *data;
    if (zmtp_command(fr, &name, &nl, &data, &dl) < 0) return -EPROTO;
    if (nl == 5 && memcmp(name, "READY", 5) == 0) {
        if (z->state != ZS_HANDSHAKE) return -EPROTO;
        const uint8_t *st;
        size_t sl;
        if (zmtp_property(data, dl, "Socket-Type", &st, &sl) < 0 ||
            !zmtp_compatible(zsock_type_name(z->type), (const char *)st, sl)) {
            LOG_W("zmtp peer has an incompatible socket type", "socket=%s", zsock_type_name(z->type));
            return -EPROTO;
        }
        zsock_become_active(z);
        return 0;
    }
    if (nl == 5 && memcmp(name, "ERROR", 5) == 0) {
        LOG_W("zmtp peer refused the handshake", "socket=%s", zsock_type_name(z->type));
        return -EPROTO;
    }
    return 0;   /* PING and other commands of later versions: not for a 3.0 peer */
}

/* Parse and act on everything complete in the buffer. */
static void zsock_parse(zsock_t *z)
{
    while (!z->closing && z->state != ZS_CLOSING_STREAM) {
        const uint8_t *p = z->rb + z->roff;
        size_t avail = z->rlen - z->roff;
        if (z->state == ZS_GREETING) {
            if (avail < ZMTP_GREETING_LEN) return;
            nb_err_t err;
            if (zmtp_greeting_check(p, &err) < 0) {
                LOG_W("zmtp greeting refused", "reason=\"%s\"", err.msg);
                zsock_drop_conn(z, err.msg);
                return;
            }
            z->roff += ZMTP_GREETING_LEN;
            z->mstart = z->roff;
            z->state = ZS_HANDSHAKE;
            continue;
        }
        struct zmtp_frame fr;
        ssize_t used = zmtp_frame_parse(p, avail, &fr, &z->need);
        if (used == 0) return;
        if (used < 0) {
            zsock_drop_conn(z, used == -EMSGSIZE ? "frame too large" : "malformed frame");
            return;
        }
        z->roff += (size_t)used;
        z->need = 0;
        if (fr.flags & ZMTP_COMMAND) {
            if (z->nframes) { zsock_drop_conn(z, "command inside a message"); return; }
            z->mstart = z->roff;
            if (zsock_on_command(z, &fr) < 0) { zsock_drop_conn(z, "handshake failed"); return; }
            continue;
        }
        if (z->state != ZS_ACTIVE) { zsock_drop_conn(z, "message before READY"); return; }
        if (z->nframes < ZSOCK_MAX_FRAMES) {
            z->foff[z->nframes] = (size_t)(fr.body - z->rb);
            z->flen[z->nframes] = fr.len;
            z->nframes++;
        } else {
            z->overflow = 1;
        }
        if (!(fr.flags & ZMTP_MORE)) {
            zsock_deliver(z);
            z->mstart = z->roff;
        }
    }
}

static void zsock_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    zsock_t *z = h->data;
    /* Drop what is consumed: everything before the message being assembled. */
    if (z->mstart > 0) {
        size_t keep = z->rlen - z->mstart;
        memmove(z->rb, z->rb + z->mstart, keep);
        for (size_t i = 0; i < z->nframes; i++) z->foff[i] -= z->mstart;
        z->roff -= z->mstart;
        z->rlen = keep;
        z->mstart = 0;
    }
    /* After a big message, give the memory back. */
    if (z->rlen == 0 && z->rcap > 4 * ZSOCK_READ_CHUNK) {
        free(z->rb);
        z->rb = NULL;
        z->rcap = 0;
    }
    size_t want = ZSOCK_READ_CHUNK;
    if (z->need > z->rlen - z->roff && z->need - (z->rlen - z->roff) > want)
        want = z->need - (z->rlen - z->roff);   /* room for the whole frame at once */
    if (z->rcap - z->rlen < want) {
        size_t cap = z->rcap ? z->rcap : ZSOCK_READ_CHUNK;
        while (cap - z->rlen < want) cap *= 2;
        z->rb = xrealloc(z->rb, cap);
        z->rcap = cap;
    }
    size_t room = z->rcap - z->rlen;
    if (room > UINT32_MAX / 2) room = UINT32_MAX / 2;
    *buf = uv_buf_init((char *)z->rb + z->rlen, (unsigned)room);
}

static void zsock_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    zsock_t *z = s->data;
    if (nread < 0) {
        zsock_drop_conn(z, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    z->rlen += (size_t)nread;
    zsock_parse(z);
}

/* ---- connecting ---- */

static void zsock_on_connect(uv_connect_t *req, int status)
{
    zsock_t *z = req->data;
    if (z->closing || z->state != ZS_CONNECTING) return;
    if (status < 0) {
        zsock_drop_conn(z, uv_strerror(status));
        return;
    }
    z->state = ZS_GREETING;
    if (!z->ipc) uv_tcp_nodelay(&z->s.tcp, 1);
    uv_read_start(&z->s.stream, zsock_on_alloc, zsock_on_read);
    buf_t out = BUF_INIT;
    uint8_t g[ZMTP_GREETING_LEN];
    zmtp_greeting(g);
    buf_append(&out, g, sizeof g);
    zmtp_ready(&out, zsock_type_name(z->type), z->type == ZSOCK_SUB ? NULL : z->identity);
    uv_buf_t b = uv_buf_init(out.data, (unsigned)out.len);
    zsock_writev(z, &b, 1);
    buf_free(&out);
}

static void zsock_start_connect(zsock_t *z)
{
    if (z->closing) return;
    /* Until the kernel has bound its socket the file does not exist: one
     * stat instead of a pipe handle, a socket, a refused connect and a
     * close per attempt (five channels, every 10 ms while a kernel starts:
     * a fifth of a one-cell run's CPU). */
    struct stat st;
    if (z->ipc && !z->ever_ready && stat(z->path, &st) < 0 && errno == ENOENT) {
        uv_timer_start(&z->retry, zsock_on_retry, z->watching ? ZSOCK_RETRY_WATCHED : ZSOCK_RETRY_FIRST, 0);
        return;
    }
    z->state = ZS_CONNECTING;
    z->handles++;
    z->creq.data = z;
    if (z->ipc) {
        uv_pipe_init(z->loop, &z->s.pipe, 0);
        z->s.pipe.data = z;
        uv_pipe_connect(&z->creq, &z->s.pipe, z->path, zsock_on_connect);
        return;
    }
    uv_tcp_init(z->loop, &z->s.tcp);
    z->s.tcp.data = z;
    int rc = uv_tcp_connect(&z->creq, &z->s.tcp, (const struct sockaddr *)&z->addr, zsock_on_connect);
    if (rc < 0) zsock_drop_conn(z, uv_strerror(rc));
}

static int zsock_parse_endpoint(zsock_t *z, const char *ep, nb_err_t *err)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        struct sockaddr_un sun;
        if (strlen(ep + 6) >= sizeof sun.sun_path)
            return err_set(err, -EINVAL, "ipc path too long for a Unix socket: %s", ep + 6);
        z->ipc = 1;
        z->path = xstrdup(ep + 6);
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) != 0)
        return err_set(err, -EINVAL, "unsupported endpoint %s (ipc:// or tcp:// expected)", ep);
    const char *hp = ep + 6, *colon = strrchr(hp, ':');
    if (!colon || !colon[1])
        return err_set(err, -EINVAL, "endpoint %s has no port", ep);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return err_set(err, -EINVAL, "endpoint %s has a bad port", ep);
    char host[64];
    size_t hl = (size_t)(colon - hp);
    if (hl >= sizeof host) return err_set(err, -EINVAL, "endpoint %s: host too long", ep);
    memcpy(host, hp, hl);
    host[hl] = '\0';
    /* A kernel bound to every interface is reached on loopback. */
    if (!strcmp(host, "localhost") || !strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
        strcpy(host, "127.0.0.1");
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&z->addr) == 0) return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&z->addr) == 0) return 0;
    return err_set(err, -EINVAL, "endpoint %s: host must be a numeric IP address", ep);
}

int zsock_connect(uv_loop_t *loop, enum zsock_type type, const char *endpoint,
                  const char *identity, zsock_msg_cb cb, void *ud, zsock_t **out, nb_err_t *err)
{
    zsock_t *z = xcalloc(1, sizeof *z);
    z->loop = loop;
    z->type = type;
    z->cb = cb;
    z->ud = ud;
    z->identity = identity ? xstrdup(identity) : NULL;
    int rc = zsock_parse_endpoint(z, endpoint, err);
    if (rc < 0) {
        free(z->identity);
        free(z->path);
        free(z);
        return rc;
    }
    uv_timer_init(loop, &z->retry);
    z->retry.data = z;
    z->handles = 1;
    if (z->ipc) zsock_watch(z);   /* before the first look: no creation is missed */
    zsock_start_connect(z);
    *out = z;
    return 0;
}

/* ---- holding ----
 *
 * A held socket is not watched by the loop: what the peer sends waits in
 * the kernel's socket buffer (and behind it in the peer's queue) until
 * zsock_drain reads it.  This lets a client take the messages of one
 * channel in one read when another channel's message says they are all
 * there, instead of being woken for each. */

void zsock_hold(zsock_t *z, int hold)
{
    if (z->closing || z->held == !!hold) return;
    z->held = !!hold;
    if (z->state != ZS_ACTIVE) return;   /* applied when the connection becomes active */
    if (hold) uv_read_stop(&z->s.stream);
    else uv_read_start(&z->s.stream, zsock_on_alloc, zsock_on_read);
}

void zsock_drain(zsock_t *z)
{
    uv_os_fd_t fd;
    if (!z->held || z->closing || z->state != ZS_ACTIVE || uv_fileno(&z->s.handle, &fd) < 0) return;
    for (;;) {
        uv_buf_t b;
        zsock_on_alloc(&z->s.handle, ZSOCK_READ_CHUNK, &b);
        ssize_t n = read(fd, b.base, b.len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        zsock_on_read(&z->s.stream, n > 0 ? n : n == 0 ? UV_EOF : -errno, &b);
        /* A short read emptied the socket (as libuv assumes too); the
         * callbacks may have closed or released it. */
        if (n <= 0 || (size_t)n < b.len || !z->held || z->closing || z->state != ZS_ACTIVE) return;
    }
}

void zsock_final(zsock_t *z)
{
    z->final = 1;
    if (z->state == ZS_IDLE && !z->npending) uv_timer_stop(&z->retry);
}

int zsock_ready(const zsock_t *z) { return z->state == ZS_ACTIVE; }
unsigned long zsock_dropped(const zsock_t *z) { return z->dropped; }

void zsock_close(zsock_t *z)
{
    if (!z || z->closing) return;
    z->closing = 1;
    zsock_unwatch(z);
    uv_close((uv_handle_t *)&z->retry, zsock_on_timer_closed);
    if (z->state != ZS_IDLE && z->state != ZS_CLOSING_STREAM)
        uv_close(&z->s.handle, zsock_on_stream_closed);
}
