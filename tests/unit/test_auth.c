/* Unit tests for passwd (argon2id) and token. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "auth/lockout.h"
#include "auth/passwd.h"
#include "auth/token.h"

static void test_passwd_roundtrip(void **state)
{
    (void)state;
    char *h = NULL;
    nb_err_t err;
    assert_int_equal(passwd_hash("correct horse battery", &h, &err), 0);
    assert_true(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_true(passwd_verify(h, "correct horse battery"));
    assert_false(passwd_verify(h, "correct horse batterY"));
    assert_false(passwd_verify(h, ""));
    assert_false(passwd_needs_rehash(h));
    char *h2 = NULL;
    assert_int_equal(passwd_hash("correct horse battery", &h2, &err), 0);
    assert_string_not_equal(h, h2);   /* salted */
    free(h);
    free(h2);
}

static void test_passwd_rules(void **state)
{
    (void)state;
    char *h = NULL;
    nb_err_t err;
    assert_int_equal(passwd_hash("short", &h, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "at least 8"));
    /* Characters, not bytes (the OpenAPI minLength): seven two-byte
     * characters are 14 bytes but too short; eight are enough. */
    assert_int_equal(passwd_hash("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", &h, &err), -EINVAL);
    assert_int_equal(passwd_hash("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", &h, &err), 0);
    assert_true(passwd_verify(h, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"));
    free(h);
    h = NULL;
    assert_false(passwd_verify("$2b$10$bcryptisnotaccepted", "whatever1"));
    assert_false(passwd_verify(NULL, "whatever1"));
    assert_true(passwd_needs_rehash("$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHQ$aGFzaA"));
    assert_true(passwd_needs_rehash("garbage"));
}

static void test_token_shape_and_digest(void **state)
{
    (void)state;
    char a[TOKEN_LEN + 1], b[TOKEN_LEN + 1];
    assert_int_equal(token_new(TOKEN_API, a), 0);
    assert_int_equal(token_new(TOKEN_API, b), 0);
    assert_int_equal(strlen(a), TOKEN_LEN);
    assert_string_not_equal(a, b);
    assert_true(token_is(a, TOKEN_API));
    assert_false(token_is(a, TOKEN_SESSION));
    assert_false(token_is("nbh_short", TOKEN_API));
    char d[TOKEN_DIGEST_LEN + 1];
    token_digest("abc", d);   /* SHA-256("abc"), FIPS 180-2 vector */
    assert_string_equal(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(token_equal(a, a));
    assert_false(token_equal(a, b));
    assert_false(token_equal("abc", "abcd"));
}

#define S 1000000LL   /* microseconds per second */

/* Free failures, then 30 s doubling to 15 min; a success or a quiet spell
 * resets; names are separate, also unknown ones. */
static void test_lockout(void **state)
{
    (void)state;
    lockout_t *l = lockout_new();
    const char *ip = "192.0.2.1";
    int64_t t = 1000 * S;
    for (int i = 0; i < LOCKOUT_FREE - 1; i++) {
        lockout_failed(l, "ann", ip, t);
        assert_int_equal(lockout_wait_s(l, "ann", ip, t), 0);
    }
    lockout_failed(l, "ann", ip, t);
    assert_int_equal(lockout_wait_s(l, "ann", ip, t), LOCKOUT_FIRST_S);
    assert_int_equal(lockout_wait_s(l, "ann", ip, t + 29 * S + 1), 1);
    assert_int_equal(lockout_wait_s(l, "ann", ip, t + 30 * S), 0);
    assert_int_equal(lockout_wait_s(l, "bob", ip, t), 0);          /* another name */
    lockout_failed(l, "ann", ip, t + 30 * S);                       /* next failure: 60 s */
    assert_int_equal(lockout_wait_s(l, "ann", ip, t + 30 * S), 2 * LOCKOUT_FIRST_S);
    for (int i = 0; i < 20; i++) lockout_failed(l, "ann", ip, t + 31 * S);
    assert_int_equal(lockout_wait_s(l, "ann", ip, t + 31 * S), LOCKOUT_MAX_S);
    lockout_succeeded(l, "ann", ip);
    assert_int_equal(lockout_wait_s(l, "ann", ip, t + 31 * S), 0);
    /* quiet for longer than the longest wait: counting starts over */
    for (int i = 0; i < LOCKOUT_FREE - 1; i++) lockout_failed(l, "cy", ip, t);
    lockout_failed(l, "cy", ip, t + (LOCKOUT_MAX_S + 1) * S);
    assert_int_equal(lockout_wait_s(l, "cy", ip, t + (LOCKOUT_MAX_S + 1) * S), 0);
    lockout_free(l);
}

/* The finding: five failures for "admin" from one address locked the admin
 * out everywhere.  Now the pair is locked: the same name from another
 * address, and the same address for another name, are free; a success
 * from the other address leaves the stranger's lock in place. */
static void test_lockout_per_name_and_address(void **state)
{
    (void)state;
    lockout_t *l = lockout_new();
    int64_t t = 1000 * S;
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, "admin", "203.0.113.9", t);
    assert_int_equal(lockout_wait_s(l, "admin", "203.0.113.9", t), LOCKOUT_FIRST_S);
    assert_int_equal(lockout_wait_s(l, "admin", "192.0.2.1", t), 0);
    assert_int_equal(lockout_wait_s(l, "ann", "203.0.113.9", t), 0);
    lockout_succeeded(l, "admin", "192.0.2.1");
    assert_int_equal(lockout_wait_s(l, "admin", "203.0.113.9", t), LOCKOUT_FIRST_S);
    /* name and address are two keys, not one string: no collision by concatenation */
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, "ab", "c", t);
    assert_int_equal(lockout_wait_s(l, "a", "bc", t), 0);
    assert_true(lockout_wait_s(l, "ab", "c", t) > 0);
    /* names longer than the slot's share it by their prefix (still locked) */
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, longname, "192.0.2.1", t);
    assert_true(lockout_wait_s(l, longname, "192.0.2.1", t) > 0);
    lockout_free(l);
}

/* The server-wide budget: LOCKOUT_GLOBAL_BURST failures at once, then one
 * per 1/LOCKOUT_GLOBAL_PER_S s, whatever the names and addresses. */
static void test_lockout_global_rate(void **state)
{
    (void)state;
    lockout_t *l = lockout_new();
    int64_t t = 1000 * S;
    char name[32], addr[32];
    for (int i = 0; i < LOCKOUT_GLOBAL_BURST; i++) {
        assert_int_equal(lockout_global_wait_s(l, t), 0);
        snprintf(name, sizeof name, "user-%d", i);
        snprintf(addr, sizeof addr, "10.0.%d.%d", i / 256, i % 256);
        lockout_failed(l, name, addr, t);
    }
    int64_t per = S / LOCKOUT_GLOBAL_PER_S;
    assert_int_equal(lockout_global_wait_s(l, t), (per + S - 1) / S);
    assert_int_equal(lockout_global_wait_s(l, t + per - 1), 1);
    assert_int_equal(lockout_global_wait_s(l, t + per), 0);          /* one more may try */
    lockout_failed(l, "x", "10.9.9.9", t + per);
    assert_true(lockout_global_wait_s(l, t + per) > 0);
    /* a success does not refill it; time does, up to the burst and no more */
    lockout_succeeded(l, "x", "10.9.9.9");
    assert_true(lockout_global_wait_s(l, t + per) > 0);
    int64_t later = t + 3600 * S;
    for (int i = 0; i < LOCKOUT_GLOBAL_BURST; i++) {
        assert_int_equal(lockout_global_wait_s(l, later), 0);
        lockout_failed(l, "y", "10.8.8.8", later);
    }
    assert_true(lockout_global_wait_s(l, later) > 0);
    lockout_free(l);
}

/* Memory is bounded however many pairs fail: a flood of pairs evicts the
 * old ones (the table never grows), a new pair is still counted, and a
 * flood of other pairs does not evict a live lock while a set has unlocked
 * slots to give. */
static void test_lockout_table_bounded(void **state)
{
    (void)state;
    lockout_t *l = lockout_new();
    int64_t t = 1000 * S;
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, "dee", "192.0.2.7", t);
    assert_true(lockout_wait_s(l, "dee", "192.0.2.7", t) > 0);
    char name[32], addr[32];
    /* Many more pairs than slots, each failing once (never locked): the
     * locked pair survives, each set prefers evicting the unlocked. */
    for (int i = 0; i < 8 * LOCKOUT_SLOTS; i++) {
        snprintf(name, sizeof name, "spray-%d", i);
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        lockout_failed(l, name, addr, t + 1 + i);
    }
    assert_true(lockout_wait_s(l, "dee", "192.0.2.7", t + 2) > 0);
    /* After its lock expires, the pair is an ordinary idle entry: evicted. */
    int64_t after = t + (LOCKOUT_FIRST_S + 1) * S;
    for (int i = 0; i < 8 * LOCKOUT_SLOTS; i++) {
        snprintf(name, sizeof name, "again-%d", i);
        lockout_failed(l, name, "10.0.0.1", after + i);
    }
    for (int i = 0; i < LOCKOUT_FREE - 1; i++) lockout_failed(l, "dee", "192.0.2.7", after + S);
    assert_int_equal(lockout_wait_s(l, "dee", "192.0.2.7", after + S), 0);   /* counted from 0 */
    /* a fresh pair still locks after its own five */
    lockout_failed(l, "dee", "192.0.2.7", after + S);
    assert_true(lockout_wait_s(l, "dee", "192.0.2.7", after + S) > 0);
    lockout_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passwd_roundtrip),
        cmocka_unit_test(test_passwd_rules),
        cmocka_unit_test(test_token_shape_and_digest),
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_lockout_per_name_and_address),
        cmocka_unit_test(test_lockout_global_rate),
        cmocka_unit_test(test_lockout_table_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
