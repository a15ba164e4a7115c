/* Unit tests for the hub's JupyterHub scopes (auth/scopes) and OAuth codes
 * (auth/oauth). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "auth/oauth.h"
#include "auth/scopes.h"

/* ---- scopes ---------------------------------------------------------------- */

static int in_group(void *ud, const char *user, const char *group)
{
    (void)ud;
    return strcmp(group, "team") == 0 && strcmp(user, "carol") == 0;
}

static void test_scopes_check(void **state)
{
    (void)state;
    nb_err_t err;
    assert_int_equal(scopes_check("read:users", &err), 0);
    assert_int_equal(scopes_check("access:servers!server=alice/", &err), 0);
    assert_int_equal(scopes_check("users:activity!user", &err), 0);
    assert_int_equal(scopes_check("read:users!group=team", &err), 0);
    assert_int_equal(scopes_check("self", &err), 0);
    assert_int_equal(scopes_check("inherit", &err), 0);
    assert_int_equal(scopes_check("read:everything", &err), -EINVAL);
    assert_int_equal(scopes_check("all", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "inherit"));
    assert_int_equal(scopes_check("read:users!user=", &err), -EINVAL);
    assert_int_equal(scopes_check("read:users!owner=alice", &err), -EINVAL);
    assert_int_equal(scopes_check("access:servers!server=alice", &err), -EINVAL);
    assert_int_equal(scopes_check("!user=alice", &err), -EINVAL);
}

static void test_scopes_user_and_admin(void **state)
{
    (void)state;
    scopes_t u = SCOPES_INIT, a = SCOPES_INIT;
    scopes_for_user("alice", 0, &u);
    /* self: her own servers, tokens, activity, and nothing of bob's */
    assert_true(scopes_has(&u, "delete:servers", "server", "alice/", NULL, NULL));
    assert_true(scopes_has(&u, "read:servers", "user", "alice", NULL, NULL));
    assert_true(scopes_has(&u, "tokens", "user", "alice", NULL, NULL));
    assert_true(scopes_has(&u, "access:servers", "server", "alice/gpu", NULL, NULL));
    assert_true(scopes_has(&u, "users:activity", "user", "alice", NULL, NULL));
    assert_false(scopes_has(&u, "delete:servers", "server", "bob/", NULL, NULL));
    assert_false(scopes_has(&u, "read:users", "user", "bob", NULL, NULL));
    assert_false(scopes_has(&u, "list:users", NULL, NULL, NULL, NULL));
    assert_false(scopes_has(&u, "admin:users", "user", "alice", NULL, NULL));
    assert_false(scopes_has(&u, "read:hub", NULL, NULL, NULL, NULL));
    assert_true(scopes_has_any(&u, "read:users"));
    assert_false(scopes_has_any(&u, "read:hub"));

    scopes_for_user("root", 1, &a);
    assert_true(scopes_has(&a, "list:users", NULL, NULL, NULL, NULL));
    assert_true(scopes_has(&a, "delete:servers", "server", "bob/x", NULL, NULL));
    assert_true(scopes_has(&a, "admin:users", "user", "bob", NULL, NULL));
    assert_true(scopes_has(&a, "read:users:activity", NULL, NULL, NULL, NULL));
    assert_true(scopes_has(&a, "delete:groups", "group", "team", NULL, NULL));
    /* reduced: no filtered copy of what is held unfiltered */
    assert_false(scopes_contains(&a, "read:users!user=root"));
    assert_true(scopes_contains(&a, "read:users"));
    scopes_free(&u);
    scopes_free(&a);
}

static void test_scopes_expand_filters(void **state)
{
    (void)state;
    scopes_t s = SCOPES_INIT;
    const char *raw[] = { "servers!server", "users:activity!user", "read:users!group=team" };
    scopes_expand(raw, 3, "alice", "alice/", &s);
    assert_true(scopes_contains(&s, "read:servers!server=alice/"));
    assert_true(scopes_contains(&s, "delete:servers!server=alice/"));
    /* read:servers -> read:users:name is not carried over for a server filter */
    assert_false(scopes_contains(&s, "read:users:name!server=alice/"));
    assert_true(scopes_contains(&s, "read:users:activity!user=alice"));
    assert_true(scopes_contains(&s, "read:users:name!group=team"));
    /* group filters: carol is in team, dave is not */
    assert_true(scopes_has(&s, "read:users", "user", "carol", in_group, NULL));
    assert_true(scopes_has(&s, "read:users", "server", "carol/x", in_group, NULL));
    assert_false(scopes_has(&s, "read:users", "user", "dave", in_group, NULL));
    assert_false(scopes_has(&s, "read:users", "user", "carol", NULL, NULL));
    scopes_free(&s);

    /* the server role */
    scopes_for_server("alice", "alice/gpu", &s);
    assert_true(scopes_has(&s, "access:servers", "server", "alice/gpu", NULL, NULL));
    assert_false(scopes_has(&s, "access:servers", "server", "alice/", NULL, NULL));
    assert_true(scopes_has(&s, "users:activity", "user", "alice", NULL, NULL));
    assert_false(scopes_has(&s, "users:activity", "user", "bob", NULL, NULL));
    assert_false(scopes_has_any(&s, "delete:servers"));
    assert_false(scopes_has_any(&s, "list:users"));
    assert_true(scopes_has(&s, "read:users:name", "user", "alice", NULL, NULL));
    scopes_free(&s);
}

/* A token's rights are its scopes within its owner's. */
static void test_scopes_intersect(void **state)
{
    (void)state;
    scopes_t owner = SCOPES_INIT, tok = SCOPES_INIT, r = SCOPES_INIT;
    /* a user asking for admin scopes gets only their own part */
    scopes_for_user("alice", 0, &owner);
    const char *want[] = { "list:users", "read:servers", "delete:servers", "access:servers!server=bob/" };
    scopes_expand(want, 4, "alice", NULL, &tok);
    scopes_intersect(&tok, &owner, NULL, NULL, &r);
    assert_false(scopes_has(&r, "list:users", NULL, NULL, NULL, NULL));
    assert_true(scopes_has(&r, "read:servers", "user", "alice", NULL, NULL));
    assert_false(scopes_has(&r, "read:servers", "user", "bob", NULL, NULL));
    assert_false(scopes_has_any(&r, "access:servers"));
    assert_false(scopes_has_any(&r, "tokens"));
    scopes_free(&owner);
    scopes_free(&tok);
    scopes_free(&r);

    /* the idle culler's scopes on an admin */
    scopes_for_user("root", 1, &owner);
    const char *culler[] = { "list:users", "read:users:activity", "read:servers", "delete:servers" };
    scopes_expand(culler, 4, "root", NULL, &tok);
    scopes_intersect(&tok, &owner, NULL, NULL, &r);
    assert_true(scopes_has(&r, "list:users", NULL, NULL, NULL, NULL));
    assert_true(scopes_has(&r, "delete:servers", "server", "bob/", NULL, NULL));
    assert_false(scopes_has_any(&r, "admin:users"));
    assert_false(scopes_has_any(&r, "delete:users"));
    assert_false(scopes_has_any(&r, "tokens"));
    scopes_free(&owner);
    scopes_free(&tok);
    scopes_free(&r);

    /* a narrower filter inside a broader one survives; outside it does not */
    const char *a1[] = { "read:servers!user=alice", "read:users!group=team" };
    const char *b1[] = { "read:servers!server=alice/x", "read:servers!server=bob/", "read:users!user=carol",
                         "read:users!user=dave" };
    scopes_expand(a1, 2, NULL, NULL, &owner);
    scopes_expand(b1, 4, NULL, NULL, &tok);
    scopes_intersect(&tok, &owner, in_group, NULL, &r);
    assert_true(scopes_contains(&r, "read:servers!server=alice/x"));
    assert_false(scopes_contains(&r, "read:servers!server=bob/"));
    assert_true(scopes_contains(&r, "read:users!user=carol"));
    assert_false(scopes_contains(&r, "read:users!user=dave"));
    scopes_free(&owner);
    scopes_free(&tok);
    scopes_free(&r);
}

static void test_scopes_json(void **state)
{
    (void)state;
    nb_err_t err;
    scopes_t s = SCOPES_INIT;
    json_t *l = json_pack("[ss]", "read:users", "tokens!user=alice");
    assert_int_equal(scopes_from_json(l, &s, &err), 0);
    assert_int_equal(s.n, 2);
    json_decref(l);
    json_t *out = scopes_to_json(&s);
    assert_int_equal(json_array_size(out), 2);
    assert_string_equal(json_string_value(json_array_get(out, 0)), "read:users");
    json_decref(out);
    l = json_pack("[si]", "read:users", 3);
    assert_int_equal(scopes_from_json(l, &s, &err), -EINVAL);
    json_decref(l);
    l = json_pack("[s]", "nope");
    assert_int_equal(scopes_from_json(l, &s, &err), -EINVAL);
    json_decref(l);
    assert_int_equal(s.n, 2);
    scopes_free(&s);
}

/* ---- oauth codes ------------------------------------------------------------ */

#define VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define T0 1000000000000LL

static void test_oauth_s256_rfc7636(void **state)
{
    (void)state;
    char c[44];
    oauth_s256(VERIFIER, c);
    /* RFC 7636 appendix B */
    assert_string_equal(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static int new_code(oauth_t *o, char code[OAUTH_CODE_LEN + 1])
{
    char ch[44];
    oauth_s256(VERIFIER, ch);
    return oauth_code_new(o, "jupyterhub-user-alice", "/user/alice/oauth_callback", ch, "S256", 1, 7,
                          "[\"identify\"]", T0, code, NULL);
}

static void test_oauth_code_flow(void **state)
{
    (void)state;
    oauth_t *o = oauth_new();
    char code[OAUTH_CODE_LEN + 1];
    oauth_grant_t g;
    nb_err_t err;

    /* the good exchange, once */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + 1, &g, &err), 0);
    assert_int_equal(g.user_id, 1);
    assert_int_equal(g.server_id, 7);
    assert_string_equal(g.scopes, "[\"identify\"]");
    oauth_grant_clear(&g);
    /* reused */
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + 2, &g, &err), -ENOENT);

    /* wrong verifier: refused, and the code is spent (no second guess) */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       "x" VERIFIER, T0 + 1, &g, &err), -EACCES);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + 1, &g, &err), -ENOENT);
    /* missing verifier */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       NULL, T0 + 1, &g, &err), -EACCES);
    /* another client's code */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-bob", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + 1, &g, &err), -EACCES);
    /* another redirect URI */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/x/oauth_callback",
                                       VERIFIER, T0 + 1, &g, &err), -EACCES);
    /* expired */
    assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + OAUTH_CODE_TTL_S * 1000000LL, &g, &err),
                     -ENOENT);
    assert_int_equal(oauth_ncodes(o), 0);

    /* plain method and missing challenge are refused at issue */
    char ch[44];
    oauth_s256(VERIFIER, ch);
    assert_int_equal(oauth_code_new(o, "c", "/r", VERIFIER, "plain", 1, 7, NULL, T0, code, &err), -EINVAL);
    assert_int_equal(oauth_code_new(o, "c", "/r", NULL, NULL, 1, 7, NULL, T0, code, &err), -EINVAL);
    assert_int_equal(oauth_code_new(o, "c", "/r", "", "S256", 1, 7, NULL, T0, code, &err), -EINVAL);
    assert_int_equal(oauth_code_new(o, "c", "/r", "short", "S256", 1, 7, NULL, T0, code, &err), -EINVAL);
    assert_int_equal(oauth_code_new(o, "c", "/r", ch, NULL, 1, 7, NULL, T0, code, &err), -EINVAL);
    oauth_free(o);
}

/* A flood of authorize requests holds at most OAUTH_MAX_CODES codes. */
static void test_oauth_bounded(void **state)
{
    (void)state;
    oauth_t *o = oauth_new();
    char first[OAUTH_CODE_LEN + 1], code[OAUTH_CODE_LEN + 1];
    assert_int_equal(new_code(o, first), 0);
    for (int i = 0; i < OAUTH_MAX_CODES + 10; i++) assert_int_equal(new_code(o, code), 0);
    assert_int_equal(oauth_ncodes(o), OAUTH_MAX_CODES);
    oauth_grant_t g;
    assert_int_equal(oauth_code_redeem(o, code, "jupyterhub-user-alice", "/user/alice/oauth_callback",
                                       VERIFIER, T0 + 1, &g, NULL), 0);
    oauth_grant_clear(&g);
    oauth_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes_check),
        cmocka_unit_test(test_scopes_user_and_admin),
        cmocka_unit_test(test_scopes_expand_filters),
        cmocka_unit_test(test_scopes_intersect),
        cmocka_unit_test(test_scopes_json),
        cmocka_unit_test(test_oauth_s256_rfc7636),
        cmocka_unit_test(test_oauth_code_flow),
        cmocka_unit_test(test_oauth_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
