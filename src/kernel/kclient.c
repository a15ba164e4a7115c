/* kclient — see kclient.h. */
#include "kernel/kclient.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define KCLIENT_MAX_FRAMES 64

struct kclient {
    uv_loop_t     *loop;
    void          *sock[KCHAN_COUNT];
    uv_poll_t      poll[KCHAN_COUNT];
    uv_idle_t      idle;        /* drains after sends */
    uv_timer_t     hb_timer;
    kwire_key_t   *key;
    kclient_msg_cb cb;
    kclient_hb_cb  hb_lost;
    void          *ud;
    char           session[33];
    unsigned long  dropped;
    uint64_t       hb_sent_ms, hb_last_ok_ms;
    unsigned       hb_timeout_ms;
    int            hb_waiting;
    int            closing;
    int            open_handles;
    int            in_drain;
    unsigned       need_drain;  /* bit per channel: sent on, re-check ZMQ_EVENTS */
};

/* One ZeroMQ context per process: it owns the I/O thread, and contexts are
 * heavyweight.  Created on first use, never destroyed (process lifetime). */
static void *kclient_zctx(void)
{
    static void *ctx;
    if (!ctx) {
        ctx = zmq_ctx_new();
        NB_ASSERT(ctx != NULL);
        zmq_ctx_set(ctx, ZMQ_BLOCKY, 0);
    }
    return ctx;
}

static void kclient_drain(kclient_t *kc, enum kchan ch);

static void kclient_deliver(kclient_t *kc, enum kchan ch, zmq_msg_t *parts, size_t n)
{
    if (ch == KCHAN_HB) {
        kc->hb_waiting = 0;
        kc->hb_last_ok_ms = uv_now(kc->loop);
        return;
    }
    kframe_t frames[KCLIENT_MAX_FRAMES];
    for (size_t i = 0; i < n; i++) {
        frames[i].data = zmq_msg_data(&parts[i]);
        frames[i].len = zmq_msg_size(&parts[i]);
    }
    kmsg_t *m = NULL;
    nb_err_t err;
    if (kwire_parse_lazy(kc->key, frames, n, &m, &err) < 0) {
        kc->dropped++;
        LOG_W("dropped kernel message", "channel=%s reason=\"%s\"", kconn_chan_name(ch), err.msg);
        return;
    }
    kc->cb(kc, ch, m, kc->ud);
    kmsg_free(m);
}

/* Read every complete multipart message waiting on one socket. */
static void kclient_drain(kclient_t *kc, enum kchan ch)
{
    zmq_msg_t parts[KCLIENT_MAX_FRAMES];
    kc->in_drain++;
    while (!kc->closing) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(kc->sock[ch], ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            break;
        size_t n = 0;
        int more = 1, ok = 1;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, kc->sock[ch], ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&tmp);
                ok = 0;
                break;
            }
            more = zmq_msg_more(&tmp);
            if (n < KCLIENT_MAX_FRAMES) parts[n++] = tmp;
            else { zmq_msg_close(&tmp); ok = 0; }  /* absurd frame count: drop */
        }
        if (ok) kclient_deliver(kc, ch, parts, n);
        else kc->dropped++;
        for (size_t i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    }
    kc->in_drain--;
}

static void kclient_on_poll(uv_poll_t *h, int status, int events)
{
    kclient_t *kc = h->data;
    if (kc->closing) return;
    for (int ch = 0; ch < KCHAN_COUNT; ch++)
        if (h == &kc->poll[ch]) kclient_drain(kc, (enum kchan)ch);
}

static void kclient_on_idle(uv_idle_t *h)
{
    kclient_t *kc = h->data;
    uv_idle_stop(h);
    /* Only a socket we sent on can have had its edge consumed by the send. */
    unsigned need = kc->need_drain;
    kc->need_drain = 0;
    for (int ch = 0; ch < KCHAN_COUNT && !kc->closing; ch++)
        if (need & (1u << ch)) kclient_drain(kc, (enum kchan)ch);
}

int kclient_open(uv_loop_t *loop, const kconn_t *conn, kclient_msg_cb cb, void *ud,
                 kclient_t **out, nb_err_t *err)
{
    static const int types[KCHAN_COUNT] = { ZMQ_DEALER, ZMQ_SUB, ZMQ_DEALER, ZMQ_DEALER, ZMQ_REQ };
    kclient_t *kc = xcalloc(1, sizeof *kc);
    kc->loop = loop;
    kc->cb = cb;
    kc->ud = ud;
    kc->key = kwire_key_new(conn->key, strlen(conn->key));
    kwire_new_id(kc->session);
    void *ctx = kclient_zctx();
    int rc = 0;
    for (int ch = 0; ch < KCHAN_COUNT; ch++) {
        void *s = zmq_socket(ctx, types[ch]);
        NB_ASSERT(s != NULL);
        kc->sock[ch] = s;
        int linger = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (ch == KCHAN_SHELL || ch == KCHAN_STDIN)   /* stdin requests route back by identity */
            zmq_setsockopt(s, ZMQ_ROUTING_ID, kc->session, strlen(kc->session));
        if (ch == KCHAN_IOPUB) zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
        char *ep = kconn_endpoint(conn, (enum kchan)ch);
        if (zmq_connect(s, ep) < 0) {
            rc = err_set(err, -errno, "connect %s: %s", ep, zmq_strerror(errno));
            free(ep);
            break;
        }
        free(ep);
    }
    if (rc < 0) {
        for (int ch = 0; ch < KCHAN_COUNT; ch++)
            if (kc->sock[ch]) zmq_close(kc->sock[ch]);
        kwire_key_free(kc->key);
        free(kc);
        return rc;
    }
    for (int ch = 0; ch < KCHAN_COUNT; ch++) {
        int fd;
        size_t sz = sizeof fd;
        zmq_getsockopt(kc->sock[ch], ZMQ_FD, &fd, &sz);
        uv_poll_init(loop, &kc->poll[ch], fd);
        kc->poll[ch].data = kc;
        uv_poll_start(&kc->poll[ch], UV_READABLE, kclient_on_poll);
        kc->open_handles++;
    }
    uv_idle_init(loop, &kc->idle);
    kc->idle.data = kc;
    kc->open_handles++;
    uv_timer_init(loop, &kc->hb_timer);
    kc->hb_timer.data = kc;
    kc->open_handles++;
    kc->need_drain = (1u << KCHAN_COUNT) - 1;   /* look once at every socket */
    uv_idle_start(&kc->idle, kclient_on_idle);
    *out = kc;
    return 0;
}

static int kclient_send_frames(void *sock, kbytes_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(sock, f[i].data, f[i].len, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            return -errno;
    }
    return 0;
}

int kclient_send(kclient_t *kc, enum kchan ch, const char *msg_type, json_t *content,
                 const json_t *parent_header, char *msg_id_out)
{
    if (kc->closing) {
        json_decref(content);
        return -ECANCELED;
    }
    json_t *hdr = kwire_header(kc->session, msg_type);
    if (msg_id_out) strcpy(msg_id_out, json_string_value(json_object_get(hdr, "msg_id")));
    kbytes_t *f;
    size_t n;
    kwire_build(kc->key, NULL, 0, hdr, parent_header, NULL, content, &f, &n);
    int rc = kclient_send_frames(kc->sock[ch], f, n);
    kwire_frames_free(f, n);
    json_decref(hdr);
    json_decref(content);
    kc->need_drain |= 1u << ch;
    uv_idle_start(&kc->idle, kclient_on_idle);
    return rc;
}

static void kclient_on_hb(uv_timer_t *t)
{
    kclient_t *kc = t->data;
    if (kc->closing) return;
    uint64_t now = uv_now(kc->loop);
    if (kc->hb_waiting) {
        if (now - kc->hb_sent_ms >= kc->hb_timeout_ms) {
            uv_timer_stop(t);
            LOG_W("kernel heartbeat lost", "silent_ms=%llu", (unsigned long long)(now - kc->hb_sent_ms));
            if (kc->hb_lost) kc->hb_lost(kc, kc->ud);
        }
        return;   /* REQ sockets must get the reply before the next ping */
    }
    if (zmq_send(kc->sock[KCHAN_HB], "ping", 4, ZMQ_DONTWAIT) == 4) {
        kc->hb_waiting = 1;
        kc->hb_sent_ms = now;
        kc->need_drain |= 1u << KCHAN_HB;
        uv_idle_start(&kc->idle, kclient_on_idle);
    }
}

void kclient_hb_start(kclient_t *kc, unsigned interval_ms, unsigned timeout_ms, kclient_hb_cb lost_cb)
{
    kc->hb_lost = lost_cb;
    kc->hb_timeout_ms = timeout_ms;
    uv_timer_start(&kc->hb_timer, kclient_on_hb, 0, interval_ms);
}

unsigned long kclient_dropped(const kclient_t *kc) { return kc->dropped; }
const char *kclient_session(const kclient_t *kc) { return kc->session; }

static void kclient_on_close(uv_handle_t *h)
{
    kclient_t *kc = h->data;
    if (--kc->open_handles == 0) {
        kwire_key_free(kc->key);
        free(kc);
    }
}

void kclient_close(kclient_t *kc)
{
    if (!kc || kc->closing) return;
    kc->closing = 1;
    for (int ch = 0; ch < KCHAN_COUNT; ch++) {
        uv_close((uv_handle_t *)&kc->poll[ch], kclient_on_close);
        zmq_close(kc->sock[ch]);   /* after uv_close: the fd belongs to zmq */
    }
    uv_close((uv_handle_t *)&kc->idle, kclient_on_close);
    uv_close((uv_handle_t *)&kc->hb_timer, kclient_on_close);
}
