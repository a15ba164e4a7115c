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
 * resets; names are separate, also unknown ones; the table is bounded. */
static void test_lockout(void **state)
{
    (void)state;
    lockout_t *l = lockout_new();
    int64_t t = 1000 * S;
    for (int i = 0; i < LOCKOUT_FREE - 1; i++) {
        lockout_failed(l, "ann", t);
        assert_int_equal(lockout_wait_s(l, "ann", t), 0);
    }
    lockout_failed(l, "ann", t);
    assert_int_equal(lockout_wait_s(l, "ann", t), LOCKOUT_FIRST_S);
    assert_int_equal(lockout_wait_s(l, "ann", t + 29 * S + 1), 1);
    assert_int_equal(lockout_wait_s(l, "ann", t + 30 * S), 0);
    assert_int_equal(lockout_wait_s(l, "bob", t), 0);          /* another name */
    lockout_failed(l, "ann", t + 30 * S);                       /* next failure: 60 s */
    assert_int_equal(lockout_wait_s(l, "ann", t + 30 * S), 2 * LOCKOUT_FIRST_S);
    for (int i = 0; i < 20; i++) lockout_failed(l, "ann", t + 31 * S);
    assert_int_equal(lockout_wait_s(l, "ann", t + 31 * S), LOCKOUT_MAX_S);
    lockout_succeeded(l, "ann");
    assert_int_equal(lockout_wait_s(l, "ann", t + 31 * S), 0);
    /* quiet for longer than the longest wait: counting starts over */
    for (int i = 0; i < LOCKOUT_FREE - 1; i++) lockout_failed(l, "cy", t);
    lockout_failed(l, "cy", t + (LOCKOUT_MAX_S + 1) * S);
    assert_int_equal(lockout_wait_s(l, "cy", t + (LOCKOUT_MAX_S + 1) * S), 0);
    /* spraying names reuses the slot idle longest; the table does not grow */
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, "dee", t + 40 * S);
    char name[32];
    for (int i = 0; i < 2 * LOCKOUT_SLOTS; i++) {
        snprintf(name, sizeof name, "spray-%d", i);
        lockout_failed(l, name, t + 50 * S + i);
    }
    assert_int_equal(lockout_wait_s(l, "dee", t + 41 * S), 0);   /* evicted: idle longest */
    snprintf(name, sizeof name, "spray-%d", 2 * LOCKOUT_SLOTS - 1);
    for (int i = 0; i < LOCKOUT_FREE; i++) lockout_failed(l, name, t + 60 * S);
    assert_true(lockout_wait_s(l, name, t + 60 * S) > 0);
    lockout_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passwd_roundtrip),
        cmocka_unit_test(test_passwd_rules),
        cmocka_unit_test(test_token_shape_and_digest),
        cmocka_unit_test(test_lockout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
