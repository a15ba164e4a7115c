/* kclient — see kclient.h. */
#include "kernel/kclient.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/zsock.h"

struct kclient {
    uv_loop_t     *loop;
    zsock_t       *sock[KCHAN_COUNT];
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
    int            iopub_held;
    int            closing;
};

/* One socket's message: verify, parse lazily, hand to the owner. */
static void kclient_on_frames(zsock_t *z, const kframe_t *frames, size_t n, void *ud)
{
    kclient_t *kc = ud;
    enum kchan ch = KCHAN_SHELL;
    while (ch < KCHAN_COUNT && kc->sock[ch] != z) ch++;
    if (ch == KCHAN_COUNT || kc->closing) return;
    if (ch == KCHAN_HB) {
        kc->hb_waiting = 0;
        kc->hb_last_ok_ms = uv_now(kc->loop);
        return;
    }
    /* A reply comes after the iopub messages its request caused were
     * published: with iopub held, read them first, so they are delivered
     * in the order the kernel sent them. */
    if (ch != KCHAN_IOPUB && kc->iopub_held) {
        zsock_drain(kc->sock[KCHAN_IOPUB]);
        if (kc->closing) return;
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

/* Connect the channels in mask (bit 1 << ch); the others stay NULL. */
static int kclient_open_chans(uv_loop_t *loop, const kconn_t *conn, unsigned mask, kclient_msg_cb cb,
                              void *ud, kclient_t **out, nb_err_t *err)
{
    static const enum zsock_type types[KCHAN_COUNT] = {
        ZSOCK_DEALER, ZSOCK_SUB, ZSOCK_DEALER, ZSOCK_DEALER, ZSOCK_REQ };
    kclient_t *kc = xcalloc(1, sizeof *kc);
    kc->loop = loop;
    kc->cb = cb;
    kc->ud = ud;
    kc->key = kwire_key_new(conn->key, strlen(conn->key));
    kwire_new_id(kc->session);
    int rc = 0;
    for (int ch = 0; ch < KCHAN_COUNT && rc == 0; ch++) {
        if (!(mask & (1u << ch))) continue;
        /* stdin requests are routed back to us by the shell's identity */
        const char *id = (ch == KCHAN_SHELL || ch == KCHAN_STDIN) ? kc->session : NULL;
        char *ep = kconn_endpoint(conn, (enum kchan)ch);
        rc = zsock_connect(loop, types[ch], ep, id, kclient_on_frames, kc, &kc->sock[ch], err);
        free(ep);
    }
    if (rc < 0) {
        for (int ch = 0; ch < KCHAN_COUNT; ch++) zsock_close(kc->sock[ch]);
        kwire_key_free(kc->key);
        free(kc);
        return rc;
    }
    uv_timer_init(loop, &kc->hb_timer);
    kc->hb_timer.data = kc;
    *out = kc;
    return 0;
}

int kclient_open(uv_loop_t *loop, const kconn_t *conn, kclient_msg_cb cb, void *ud,
                 kclient_t **out, nb_err_t *err)
{
    return kclient_open_chans(loop, conn, (1u << KCHAN_COUNT) - 1, cb, ud, out, err);
}

int kclient_open_control(uv_loop_t *loop, const kconn_t *conn, kclient_msg_cb cb, void *ud,
                         kclient_t **out, nb_err_t *err)
{
    return kclient_open_chans(loop, conn, 1u << KCHAN_CONTROL, cb, ud, out, err);
}

/* Send built frames (freed here) and report the request's id. */
static int kclient_push(kclient_t *kc, enum kchan ch, kbytes_t *f, size_t n, const char *id,
                        char *msg_id_out)
{
    if (msg_id_out) memcpy(msg_id_out, id, 33);
    int rc = zsock_send(kc->sock[ch], f, n);
    kwire_frames_free(f, n);
    return rc;
}

int kclient_send(kclient_t *kc, enum kchan ch, const char *msg_type, json_t *content,
                 const json_t *parent_header, char *msg_id_out)
{
    if (kc->closing || !kc->sock[ch]) {
        json_decref(content);
        return kc->closing ? -ECANCELED : -ENOTCONN;
    }
    char id[33];
    kbytes_t *f;
    size_t n;
    kwire_request(kc->key, kc->session, msg_type, parent_header, content, id, &f, &n);
    json_decref(content);
    return kclient_push(kc, ch, f, n, id, msg_id_out);
}

int kclient_send_text(kclient_t *kc, enum kchan ch, const char *msg_type, kbytes_t content,
                      char *msg_id_out)
{
    if (kc->closing || !kc->sock[ch]) {
        free(content.data);
        return kc->closing ? -ECANCELED : -ENOTCONN;
    }
    char id[33];
    kbytes_t *f;
    size_t n;
    kwire_request_text(kc->key, kc->session, msg_type, NULL, content, id, &f, &n);
    return kclient_push(kc, ch, f, n, id, msg_id_out);
}

static void kclient_on_hb(uv_timer_t *t)
{
    kclient_t *kc = t->data;
    if (kc->closing || !kc->sock[KCHAN_HB]) return;
    uint64_t now = uv_now(kc->loop);
    if (kc->hb_waiting) {
        if (now - kc->hb_sent_ms >= kc->hb_timeout_ms) {
            uv_timer_stop(t);
            LOG_W("kernel heartbeat lost", "silent_ms=%llu", (unsigned long long)(now - kc->hb_sent_ms));
            if (kc->hb_lost) kc->hb_lost(kc, kc->ud);
        }
        return;   /* REQ sockets must get the reply before the next ping */
    }
    kbytes_t ping = { (char *)"ping", 4 };
    if (zsock_send(kc->sock[KCHAN_HB], &ping, 1) == 0) {
        kc->hb_waiting = 1;
        kc->hb_sent_ms = now;
    }
}

void kclient_hb_start(kclient_t *kc, unsigned interval_ms, unsigned timeout_ms, kclient_hb_cb lost_cb)
{
    kc->hb_lost = lost_cb;
    kc->hb_timeout_ms = timeout_ms;
    uv_timer_start(&kc->hb_timer, kclient_on_hb, 0, interval_ms);
}

void kclient_hold_iopub(kclient_t *kc, int hold)
{
    if (kc->closing || !kc->sock[KCHAN_IOPUB]) return;
    kc->iopub_held = !!hold;
    zsock_hold(kc->sock[KCHAN_IOPUB], hold);
}

void kclient_drain_iopub(kclient_t *kc)
{
    if (!kc->closing && kc->iopub_held) zsock_drain(kc->sock[KCHAN_IOPUB]);
}

void kclient_final(kclient_t *kc)
{
    if (kc->closing) return;
    for (int ch = 0; ch < KCHAN_COUNT; ch++)
        if (kc->sock[ch]) zsock_final(kc->sock[ch]);
}

int kclient_ready(const kclient_t *kc, enum kchan ch)
{
    return !kc->closing && kc->sock[ch] && zsock_ready(kc->sock[ch]);
}

unsigned long kclient_dropped(const kclient_t *kc) { return kc->dropped; }
const char *kclient_session(const kclient_t *kc) { return kc->session; }

static void kclient_on_close(uv_handle_t *h)
{
    kclient_t *kc = h->data;
    kwire_key_free(kc->key);
    free(kc);
}

/* The sockets promise no callback after zsock_close, so kc lives only until
 * its own timer has closed. */
void kclient_close(kclient_t *kc)
{
    if (!kc || kc->closing) return;
    kc->closing = 1;
    for (int ch = 0; ch < KCHAN_COUNT; ch++) zsock_close(kc->sock[ch]);
    uv_close((uv_handle_t *)&kc->hb_timer, kclient_on_close);
}
