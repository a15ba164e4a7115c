/* Unit tests for kwire: HMAC vectors (computed with Python's hmac module),
 * round trips, forged and malformed frames. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel/kwire.h"

#define F(s) { s, sizeof(s) - 1 }

static void test_sign_vector(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("0123456789abcdef", 16);
    kframe_t f[4] = { F("{\"msg_id\":\"a\",\"msg_type\":\"status\"}"), F("{}"), F("{}"),
                      F("{\"execution_state\":\"idle\"}") };
    char sig[65];
    kwire_sign(k, f, sig);
    assert_string_equal(sig, "3322b5eb775188b63fbe09912d6b0b02ea624e5f0999d58debca87aee10d8715");
    kwire_key_free(k);

    k = kwire_key_new("key", 3);
    kframe_t e[4] = { F(""), F(""), F(""), F("") };
    kwire_sign(k, e, sig);
    assert_string_equal(sig, "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0");
    kwire_key_free(k);

    /* keys of a block (64 bytes) and longer (hashed first, RFC 2104) */
    static const struct { char c; size_t n; const char *sig; } longk[] = {
        { 'k', 100, "c12274e08933dfb5c69a95950e1d96984f5f250d0726b14bd8c54e0139707dc3" },
        { 'x', 64, "237ad25899318b38128dd0bc8faf4c686f2b878341b79c5ec7beadc0590d831b" },
        { 'y', 65, "5dff86ae3bead415df2a864c4d0669e43ce6848d5387514b657e5e1f1092f8c6" },
    };
    kframe_t g[4] = { F("{\"h\":1}"), F("{\"p\":2}"), F("{}"), F("{\"c\":3}") };
    for (size_t i = 0; i < sizeof longk / sizeof *longk; i++) {
        char key[128];
        memset(key, longk[i].c, longk[i].n);
        k = kwire_key_new(key, longk[i].n);
        kwire_sign(k, g, sig);
        assert_string_equal(sig, longk[i].sig);
        kwire_sign(k, g, sig);   /* the keyed states are not used up */
        assert_string_equal(sig, longk[i].sig);
        kwire_key_free(k);
    }
}

static void test_empty_key_no_signature(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("", 0);
    kframe_t e[4] = { F("{}"), F("{}"), F("{}"), F("{}") };
    char sig[65];
    kwire_sign(k, e, sig);
    assert_string_equal(sig, "");
    kwire_key_free(k);
}

static void build_frames(kwire_key_t *k, kbytes_t **fr, size_t *n, kframe_t *out)
{
    json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", "0123", "session", "sess",
                          "username", "nbhub", "date", "2026-12-02T10:00:00.000000Z",
                          "msg_type", "execute_request", "version", "5.3");
    json_t *c = json_pack("{s:s}", "code", "1+1");
    kbytes_t id = { (char *)"ident", 5 };
    assert_int_equal(kwire_build(k, &id, 1, h, NULL, NULL, c, fr, n), 0);
    for (size_t i = 0; i < *n; i++) {
        out[i].data = (*fr)[i].data;
        out[i].len = (*fr)[i].len;
    }
    json_decref(h);
    json_decref(c);
}

static void test_round_trip(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("secret", 6);
    kbytes_t *fr;
    size_t n;
    kframe_t f[16];
    build_frames(k, &fr, &n, f);
    assert_int_equal(n, 7);
    kmsg_t *m = NULL;
    nb_err_t err;
    assert_int_equal(kwire_parse(k, f, n, &m, &err), 0);
    assert_string_equal(m->msg_type, "execute_request");
    assert_int_equal(m->nids, 1);
    assert_memory_equal(m->ids[0].data, "ident", 5);
    assert_string_equal(json_string_value(json_object_get(m->content, "code")), "1+1");
    assert_null(m->parent_id);
    kmsg_free(m);
    kwire_frames_free(fr, n);
    kwire_key_free(k);
}

/* A client request: the header written as text must be the JSON a
 * json_pack'd header dumps to, verify with the key, and escape what it is
 * given. */
static void test_request(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("secret", 6);
    json_t *parent = json_pack("{s:s}", "msg_id", "p1");
    json_t *content = json_pack("{s:s, s:b, s:i}", "code", "print(\"\\n\")\n\x01", "silent", 0, "n", -42);
    char id[33];
    kbytes_t *fr;
    size_t n;
    kwire_request(k, "se\"ss", "execute_request", parent, content, id, &fr, &n);
    assert_int_equal(n, 6);
    assert_int_equal(strlen(id), 32);
    kframe_t f[6];
    for (size_t i = 0; i < n; i++) f[i] = (kframe_t){ fr[i].data, fr[i].len };
    json_error_t je;
    json_t *h = json_loadb(f[2].data, f[2].len, 0, &je);
    assert_non_null(h);
    json_t *want = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s}", "msg_id", id, "session", "se\"ss",
                             "username", "nbhub", "date", json_object_get(h, "date"),
                             "msg_type", "execute_request", "version", "5.3");
    char *ws = json_dumps(want, JSON_COMPACT);
    assert_string_equal(f[2].data, ws);   /* same keys, same order, same bytes */
    free(ws);
    const char *date = json_string_value(json_object_get(h, "date"));
    assert_int_equal(strlen(date), 27);
    assert_int_equal(date[26], 'Z');
    char *cs = json_dumps(content, JSON_COMPACT);
    assert_string_equal(f[5].data, cs);
    free(cs);
    assert_string_equal(f[3].data, "{\"msg_id\":\"p1\"}");
    assert_string_equal(f[4].data, "{}");
    kmsg_t *m = NULL;
    nb_err_t err;
    assert_int_equal(kwire_parse(k, f, n, &m, &err), 0);
    assert_string_equal(m->msg_id, id);
    assert_string_equal(m->parent_id, "p1");
    kmsg_free(m);
    json_decref(want);
    json_decref(h);
    json_decref(parent);
    json_decref(content);
    kwire_frames_free(fr, n);
    kwire_key_free(k);
}

/* kmsg_scan_int: integers by the scanner, everything else as the tree says. */
static void test_scan_int(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("secret", 6);
    static const struct { const char *content; int found; long long v; } cases[] = {
        { "{\"execution_count\":7}", 1, 7 },
        { "{\"code\":\"x\\\"y\",\"execution_count\": 123 }", 1, 123 },
        { "{\"execution_count\":-0}", 1, 0 },
        { "{\"execution_count\":-12}", 1, -12 },
        { "{\"execution_count\":1.5}", 0, 0 },
        { "{\"execution_count\":1e3}", 0, 0 },
        { "{\"execution_count\":\"7\"}", 0, 0 },
        { "{\"execution_count\":null}", 0, 0 },
        { "{\"execution_count\":[1]}", 0, 0 },
        { "{\"other\":{\"execution_count\":5}}", 0, 0 },            /* nested: not top level */
        { "{\"execution_count\":1,\"execution_count\":2}", 1, 2 },  /* twice: the tree's last */
        { "{\"execution_count\":1234567890123456789}", 1, 1234567890123456789LL },  /* long: the tree */
        { "{}", 0, 0 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        json_t *content = json_loads(cases[c].content, 0, NULL);
        assert_non_null(content);
        char id[33];
        kbytes_t *fr;
        size_t n;
        kwire_request_text(k, "s", "execute_input", NULL,
                           (kbytes_t){ strdup(cases[c].content), strlen(cases[c].content) }, id, &fr, &n);
        kframe_t f[8];
        for (size_t i = 0; i < n; i++) f[i] = (kframe_t){ fr[i].data, fr[i].len };
        kmsg_t *m = NULL;
        nb_err_t err;
        assert_int_equal(kwire_parse_lazy(k, f, n, &m, &err), 0);
        long long v = -999;
        assert_int_equal(kmsg_scan_int(m, 3, "execution_count", &v), cases[c].found);
        if (cases[c].found) assert_true(v == cases[c].v);
        kmsg_free(m);
        kwire_frames_free(fr, n);
        json_decref(content);
    }
    kwire_key_free(k);
}

static void test_forged_dropped(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("secret", 6);
    kwire_key_t *other = kwire_key_new("other", 5);
    kbytes_t *fr;
    size_t n;
    kframe_t f[16];
    build_frames(other, &fr, &n, f);   /* signed with the wrong key */
    kmsg_t *m = NULL;
    nb_err_t err;
    assert_int_equal(kwire_parse(k, f, n, &m, &err), -EPERM);
    assert_null(m);
    kwire_frames_free(fr, n);

    build_frames(k, &fr, &n, f);       /* right key, content tampered */
    f[6].data = "{\"code\":\"rm -rf /\"}";
    f[6].len = strlen(f[6].data);
    assert_int_equal(kwire_parse(k, f, n, &m, &err), -EPERM);
    kwire_frames_free(fr, n);
    kwire_key_free(k);
    kwire_key_free(other);
}

static void test_malformed(void **state)
{
    (void)state;
    kwire_key_t *k = kwire_key_new("", 0);  /* no signing: reach the parser */
    nb_err_t err;
    kmsg_t *m = NULL;
    kframe_t nodelim[3] = { F("a"), F("b"), F("c") };
    assert_int_equal(kwire_parse(k, nodelim, 3, &m, &err), -EBADMSG);
    kframe_t short_[4] = { F("<IDS|MSG>"), F(""), F("{}"), F("{}") };
    assert_int_equal(kwire_parse(k, short_, 4, &m, &err), -EBADMSG);
    kframe_t badjson[6] = { F("<IDS|MSG>"), F(""), F("{\"msg_id\":"), F("{}"), F("{}"), F("{}") };
    assert_int_equal(kwire_parse(k, badjson, 6, &m, &err), -EBADMSG);
    kframe_t notobj[6] = { F("<IDS|MSG>"), F(""), F("[1]"), F("{}"), F("{}"), F("{}") };
    assert_int_equal(kwire_parse(k, notobj, 6, &m, &err), -EBADMSG);
    kframe_t notype[6] = { F("<IDS|MSG>"), F(""), F("{\"msg_id\":\"x\"}"), F("{}"), F("{}"), F("{}") };
    assert_int_equal(kwire_parse(k, notype, 6, &m, &err), -EBADMSG);
    kframe_t ok[7] = { F("<IDS|MSG>"), F(""), F("{\"msg_id\":\"x\",\"msg_type\":\"t\"}"),
                       F("{\"msg_id\":\"p\"}"), F("{}"), F("{}"), F("\x00\x01") };
    assert_int_equal(kwire_parse(k, ok, 7, &m, &err), 0);
    assert_string_equal(m->parent_id, "p");
    assert_int_equal(m->nbuffers, 1);
    assert_int_equal(m->buffers[0].len, 2);
    kmsg_free(m);
    kwire_key_free(k);
}

/* Ids: 32 hex digits, unique over many, and a forked child does not repeat
   its parent's (it draws its own seed); keys come from the CSPRNG. */
static void test_ids_unique(void **state)
{
    (void)state;
    enum { N = 20000 };
    static char ids[N][33];
    for (int i = 0; i < N; i++) {
        kwire_new_id(ids[i]);
        assert_int_equal(strlen(ids[i]), 32);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
    }
    qsort(ids, N, sizeof ids[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++) assert_string_not_equal(ids[i - 1], ids[i]);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char parent[33], child[33] = "";
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kwire_new_id(child);
        _exit(write(fds[1], child, 33) == 33 ? 0 : 1);
    }
    kwire_new_id(parent);
    assert_int_equal(read(fds[0], child, 33), 33);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    assert_string_not_equal(parent, child);

    char k1[33], k2[33];
    kwire_new_key(k1);
    kwire_new_key(k2);
    assert_int_equal(strspn(k1, "0123456789abcdef"), 32);
    assert_string_not_equal(k1, k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_vector),
        cmocka_unit_test(test_empty_key_no_signature),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_scan_int),
        cmocka_unit_test(test_forged_dropped),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_ids_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
