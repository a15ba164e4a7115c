/* Unit tests for zmtp (the codec) and zsock (the sockets), the latter
 * against libzmq itself as the peer: ROUTER, PUB and REP sockets bound by
 * the reference implementation, our DEALER, SUB and REQ connecting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "kernel/zmtp.h"
#include "kernel/zsock.h"

/* ---- codec ---- */

static void test_greeting(void **state)
{
    (void)state;
    uint8_t g[ZMTP_GREETING_LEN];
    zmtp_greeting(g);
    assert_int_equal(g[0], 0xFF);
    assert_int_equal(g[9], 0x7F);
    assert_int_equal(g[10], 3);
    assert_memory_equal(g + 12, "NULL", 4);
    nb_err_t err;
    assert_int_equal(zmtp_greeting_check(g, &err), 0);
    g[10] = 2;
    assert_int_equal(zmtp_greeting_check(g, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "2.0"));
    zmtp_greeting(g);
    memcpy(g + 12, "CURVE", 5);
    assert_int_equal(zmtp_greeting_check(g, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "CURVE"));
    zmtp_greeting(g);
    g[9] = 0;
    assert_int_equal(zmtp_greeting_check(g, &err), -EPROTO);
}

static void test_frames(void **state)
{
    (void)state;
    uint8_t h[9];
    assert_int_equal(zmtp_frame_header(h, ZMTP_MORE, 5), 2);
    assert_int_equal(h[0], 0x01);
    assert_int_equal(h[1], 5);
    assert_int_equal(zmtp_frame_header(h, 0, 256), 9);
    assert_int_equal(h[0], 0x02);
    assert_int_equal(h[7], 1);
    assert_int_equal(h[8], 0);

    uint8_t buf[300] = { 0x01, 3, 'a', 'b', 'c' };
    struct zmtp_frame f;
    size_t need;
    assert_int_equal(zmtp_frame_parse(buf, 5, &f, &need), 5);
    assert_int_equal(f.flags, ZMTP_MORE);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.body, "abc", 3);
    assert_int_equal(zmtp_frame_parse(buf, 4, &f, &need), 0);   /* body incomplete */
    assert_int_equal(need, 5);
    assert_int_equal(zmtp_frame_parse(buf, 1, &f, &need), 0);   /* header incomplete */
    assert_int_equal(need, 0);
    assert_int_equal(zmtp_frame_parse(buf, 0, &f, &need), 0);

    size_t hl = zmtp_frame_header(buf, 0, 280);
    assert_int_equal(zmtp_frame_parse(buf, hl + 279, &f, &need), 0);
    assert_int_equal(need, hl + 280);
    assert_int_equal(zmtp_frame_parse(buf, 1, &f, &need), 0);
    uint8_t bad[2] = { 0x08, 0 };
    assert_int_equal(zmtp_frame_parse(bad, 2, &f, &need), -EPROTO);
    uint8_t badcmd[2] = { ZMTP_COMMAND | ZMTP_MORE, 0 };
    assert_int_equal(zmtp_frame_parse(badcmd, 2, &f, &need), -EPROTO);
    uint8_t huge[9] = { 0x02, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    assert_int_equal(zmtp_frame_parse(huge, 9, &f, &need), -EMSGSIZE);
}

static void test_ready(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    zmtp_ready(&b, "DEALER", "abc");
    struct zmtp_frame f;
    assert_int_equal(zmtp_frame_parse((uint8_t *)b.data, b.len, &f, NULL), (ssize_t)b.len);
    assert_int_equal(f.flags, ZMTP_COMMAND);
    const char *name;
    size_t nl, dl, vl;
    const uint8_t *data, *v;
    assert_int_equal(zmtp_command(&f, &name, &nl, &data, &dl), 0);
    assert_int_equal(nl, 5);
    assert_memory_equal(name, "READY", 5);
    assert_int_equal(zmtp_property(data, dl, "socket-type", &v, &vl), 0);
    assert_int_equal(vl, 6);
    assert_memory_equal(v, "DEALER", 6);
    assert_int_equal(zmtp_property(data, dl, "Identity", &v, &vl), 0);
    assert_memory_equal(v, "abc", 3);
    assert_int_equal(zmtp_property(data, dl, "Resource", &v, &vl), -ENOENT);
    assert_int_equal(zmtp_property(data, dl - 1, "Identity", &v, &vl), -EPROTO);  /* truncated */
    buf_free(&b);

    assert_true(zmtp_compatible("DEALER", "ROUTER", 6));
    assert_true(zmtp_compatible("SUB", "XPUB", 4));
    assert_true(zmtp_compatible("REQ", "REP", 3));
    assert_false(zmtp_compatible("SUB", "ROUTER", 6));
    assert_false(zmtp_compatible("REQ", "PUB", 3));
    assert_false(zmtp_compatible("DEALER", "ROUTE", 5));
}

/* ---- sockets against libzmq ---- */

struct got {
    int    n;
    size_t nframes;
    char   frames[8][64];
    size_t lens[8];
    size_t biglen;
    char   bigfirst, biglast;
    int    out_of_order;   /* bodies "mNNN" not in NNN order */
};

static void on_msg(zsock_t *z, const kframe_t *f, size_t n, void *ud)
{
    struct got *g = ud;
    if (n == 1 && f[0].len > 4 && ((const char *)f[0].data)[0] == 'm' &&
        atoi((const char *)f[0].data + 1) != g->n)
        g->out_of_order++;
    g->n++;
    g->nframes = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        g->lens[i] = f[i].len;
        if (f[i].len > 60000) {
            g->biglen = f[i].len;
            g->bigfirst = ((const char *)f[i].data)[0];
            g->biglast = ((const char *)f[i].data)[f[i].len - 1];
        }
        size_t l = f[i].len < 63 ? f[i].len : 63;
        memcpy(g->frames[i], f[i].data, l);
        g->frames[i][l] = '\0';
    }
}

/* Run our loop and let libzmq's thread work until cond or ~3 s. */
#define PUMP_UNTIL(loop, cond) do { \
        for (int _i = 0; _i < 3000 && !(cond); _i++) { \
            uv_run((loop), UV_RUN_NOWAIT); \
            usleep(1000); \
        } \
    } while (0)

static char tmpdir[64];
static void *zctx;

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/nbhub-zsock-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    zctx = zmq_ctx_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    zmq_ctx_term(zctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int zrecv_all(void *s, char frames[][64], size_t *lens, int max, int timeout_ms)
{
    zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, timeout_ms) <= 0) return -1;
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) return -1;
        more = zmq_msg_more(&m);
        if (n < max) {
            size_t l = zmq_msg_size(&m) < 63 ? zmq_msg_size(&m) : 63;
            memcpy(frames[n], zmq_msg_data(&m), l);
            frames[n][l] = '\0';
            lens[n] = zmq_msg_size(&m);
        }
        n++;
        zmq_msg_close(&m);
    }
    return n;
}

/* Receive on a libzmq socket while our loop runs (our side must write). */
static int pump_recv(uv_loop_t *loop, void *s, char frames[][64], size_t *lens)
{
    int n = -1;
    for (int i = 0; i < 200 && n < 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        n = zrecv_all(s, frames, lens, 8, 10);
    }
    return n;
}

static void close_and_drain(uv_loop_t *loop, zsock_t *z)
{
    zsock_close(z);
    uv_run(loop, UV_RUN_DEFAULT);   /* returns once every handle has closed */
}

static void test_dealer_router(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/shell", tmpdir);
    struct got g = { 0 };
    zsock_t *z;
    nb_err_t err;
    /* Connect (and send) before the peer exists: queued, retried. */
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, ep, "me-123", on_msg, &g, &z, &err), 0);
    kbytes_t out[3] = { { (char *)"one", 3 }, { (char *)"", 0 }, { (char *)"three", 5 } };
    assert_int_equal(zsock_send(z, out, 3), 0);
    for (int i = 0; i < 30; i++) {      /* a few failed attempts */
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_false(zsock_ready(z));

    void *router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, ep), 0);
    PUMP_UNTIL(&loop, zsock_ready(z));
    assert_true(zsock_ready(z));
    char fr[8][64];
    size_t lens[8];
    int n = pump_recv(&loop, router, fr, lens);
    assert_int_equal(n, 4);
    assert_string_equal(fr[0], "me-123");   /* our Identity property */
    assert_string_equal(fr[1], "one");
    assert_int_equal(lens[2], 0);
    assert_string_equal(fr[3], "three");

    /* A reply with a frame bigger than one read. */
    size_t big = 300000;
    char *bigbuf = malloc(big);
    memset(bigbuf, 'x', big);
    bigbuf[0] = 'A';
    bigbuf[big - 1] = 'Z';
    zmq_send(router, "me-123", 6, ZMQ_SNDMORE);
    zmq_send(router, "hdr", 3, ZMQ_SNDMORE);
    zmq_send(router, bigbuf, big, 0);
    for (int i = 0; i < 50; i++) {       /* and many small ones right behind it */
        zmq_send(router, "me-123", 6, ZMQ_SNDMORE);
        zmq_send(router, "small", 5, 0);
    }
    free(bigbuf);
    PUMP_UNTIL(&loop, g.n >= 51);
    assert_int_equal(g.n, 51);
    assert_int_equal(g.biglen, big);
    assert_int_equal(g.bigfirst, 'A');
    assert_int_equal(g.biglast, 'Z');
    assert_string_equal(g.frames[0], "small");
    assert_int_equal(g.nframes, 1);

    /* The peer goes away and comes back (a restarted kernel): we reconnect. */
    zmq_close(router);
    PUMP_UNTIL(&loop, !zsock_ready(z));
    assert_false(zsock_ready(z));
    router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, ep), 0);
    PUMP_UNTIL(&loop, zsock_ready(z));
    assert_true(zsock_ready(z));
    kbytes_t again = { (char *)"again", 5 };
    assert_int_equal(zsock_send(z, &again, 1), 0);
    n = pump_recv(&loop, router, fr, lens);
    assert_int_equal(n, 2);
    assert_string_equal(fr[1], "again");
    assert_int_equal(zsock_dropped(z), 0);

    close_and_drain(&loop, z);
    zmq_close(router);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Connect a SUB to the publisher at ep and publish [topic, body] until the
 * subscription has reached it (ZeroMQ's slow joiner); the loop stays
 * unpumped after, so stragglers of the loop may still arrive. */
static zsock_t *subscribe(uv_loop_t *loop, void *pub, const char *ep, struct got *g)
{
    zsock_t *z;
    nb_err_t err;
    assert_int_equal(zsock_connect(loop, ZSOCK_SUB, ep, NULL, on_msg, g, &z, &err), 0);
    for (int i = 0; i < 3000 && g->n == 0; i++) {
        zmq_send(pub, "topic", 5, ZMQ_SNDMORE);
        zmq_send(pub, "body", 4, 0);
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(g->n > 0);
    return z;
}

static void test_sub_pub_tcp(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    void *pub = zmq_socket(zctx, ZMQ_PUB);
    assert_int_equal(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t sz = sizeof ep;
    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, ep, &sz);
    struct got g = { 0 };
    zsock_t *z = subscribe(&loop, pub, ep, &g);
    assert_int_equal(g.nframes, 2);
    assert_string_equal(g.frames[0], "topic");
    assert_string_equal(g.frames[1], "body");
    close_and_drain(&loop, z);
    zmq_close(pub);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A held SUB is not read by the loop: what the publisher sends waits until
 * zsock_drain, which delivers all of it, in order, from inside the call
 * (also more than one read's worth); released, it is read live again. */
static void test_sub_hold_drain(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/iopub", tmpdir);
    void *pub = zmq_socket(zctx, ZMQ_PUB);
    assert_int_equal(zmq_bind(pub, ep), 0);
    struct got g = { 0 };
    zsock_t *z = subscribe(&loop, pub, ep, &g);
    PUMP_UNTIL(&loop, 0);   /* let stragglers of the subscribing loop arrive */

    zsock_hold(z, 1);
    zsock_drain(z);        /* nothing waiting: returns at once */
    g = (struct got){ 0 };
    char body[2000];
    memset(body, 'b', sizeof body);
    for (int i = 0; i < 100; i++) {   /* ~200 KB: more than one 64 KiB read */
        snprintf(body, 16, "m%03d", i);
        zmq_send(pub, body, sizeof body, 0);
    }
    for (int i = 0; i < 300; i++) {   /* the loop runs; nothing is delivered */
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(g.n, 0);
    for (int i = 0; i < 3000 && g.n < 100; i++) {   /* libzmq's thread writes as we read */
        zsock_drain(z);
        usleep(1000);
    }
    assert_int_equal(g.n, 100);
    assert_int_equal(g.out_of_order, 0);
    assert_memory_equal(g.frames[0], "m099", 4);   /* the last one came last */
    assert_int_equal(g.lens[0], sizeof body);

    zsock_hold(z, 0);
    zmq_send(pub, "live", 4, 0);
    PUMP_UNTIL(&loop, g.n == 101);
    assert_int_equal(g.n, 101);
    assert_string_equal(g.frames[0], "live");
    assert_int_equal(zsock_dropped(z), 0);
    close_and_drain(&loop, z);
    zmq_close(pub);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_req_rep(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/hb", tmpdir);
    void *rep = zmq_socket(zctx, ZMQ_REP);
    assert_int_equal(zmq_bind(rep, ep), 0);
    struct got g = { 0 };
    zsock_t *z;
    nb_err_t err;
    assert_int_equal(zsock_connect(&loop, ZSOCK_REQ, ep, NULL, on_msg, &g, &z, &err), 0);
    kbytes_t ping = { (char *)"ping", 4 };
    assert_int_equal(zsock_send(z, &ping, 1), 0);
    char fr[8][64];
    size_t lens[8];
    int n = pump_recv(&loop, rep, fr, lens);
    assert_int_equal(n, 1);                /* REP stripped our delimiter */
    assert_string_equal(fr[0], "ping");
    zmq_send(rep, "pong", 4, 0);
    PUMP_UNTIL(&loop, g.n == 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.nframes, 1);         /* and we stripped REP's */
    assert_string_equal(g.frames[0], "pong");
    close_and_drain(&loop, z);
    zmq_close(rep);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_incompatible_peer(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/wrong", tmpdir);
    void *router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, ep), 0);
    struct got g = { 0 };
    zsock_t *z;
    nb_err_t err;
    assert_int_equal(zsock_connect(&loop, ZSOCK_SUB, ep, NULL, on_msg, &g, &z, &err), 0);
    for (int i = 0; i < 100; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_false(zsock_ready(z));
    close_and_drain(&loop, z);
    zmq_close(router);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* zsock_final (a kernel asked to shut down): a message queued before the
 * connection was up still goes out, the connection being retried until it
 * has; once it is lost after that, it is not retried.  (tcp: with ipc the
 * directory watch would connect anyway.) */
static void test_final_delivers_queued(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A free port, released at once (libzmq's listener would close later,
     * in its own thread, and might take our first connection). */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char ep[128];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(a.sin_port));

    struct got g = { 0 };
    zsock_t *z;
    nb_err_t err;
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, ep, "ctl-1", on_msg, &g, &z, &err), 0);
    kbytes_t req = { (char *)"shutdown", 8 };
    assert_int_equal(zsock_send(z, &req, 1), 0);
    zsock_final(z);
    for (int i = 0; i < 50; i++) {      /* refused attempts */
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    void *router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, ep), 0);
    char fr[8][64];
    size_t lens[8];
    int n = pump_recv(&loop, router, fr, lens);
    assert_int_equal(n, 2);
    assert_string_equal(fr[0], "ctl-1");
    assert_string_equal(fr[1], "shutdown");

    /* The peer goes: no reconnection, even when it is back. */
    zmq_close(router);
    PUMP_UNTIL(&loop, !zsock_ready(z));
    assert_false(zsock_ready(z));
    router = zmq_socket(zctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(router, ep), 0);
    for (int i = 0; i < 300; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_false(zsock_ready(z));
    close_and_drain(&loop, z);
    zmq_close(router);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_endpoints(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    zsock_t *z;
    nb_err_t err;
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, "inproc://x", NULL, on_msg, NULL, &z, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "inproc://x"));
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, "tcp://127.0.0.1", NULL, on_msg, NULL, &z, &err), -EINVAL);
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, "tcp://127.0.0.1:99999", NULL, on_msg, NULL, &z, &err), -EINVAL);
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, "tcp://kernel.example:5555", NULL, on_msg, NULL, &z, &err), -EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof longp);
    memcpy(longp, "ipc://", 6);
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, longp, NULL, on_msg, NULL, &z, &err), -EINVAL);
    /* Queue limit while nobody listens. */
    assert_int_equal(zsock_connect(&loop, ZSOCK_DEALER, "tcp://[::1]:1", NULL, on_msg, NULL, &z, &err), 0);
    kbytes_t m = { (char *)"m", 1 };
    for (int i = 0; i < ZSOCK_MAX_QUEUED; i++) assert_int_equal(zsock_send(z, &m, 1), 0);
    assert_int_equal(zsock_send(z, &m, 1), -ENOBUFS);
    assert_int_equal(zsock_dropped(z), 1);
    close_and_drain(&loop, z);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_dealer_router),
        cmocka_unit_test(test_sub_pub_tcp),
        cmocka_unit_test(test_sub_hold_drain),
        cmocka_unit_test(test_req_rep),
        cmocka_unit_test(test_incompatible_peer),
        cmocka_unit_test(test_final_delivers_queued),
        cmocka_unit_test(test_bad_endpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
