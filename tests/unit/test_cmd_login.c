/* Unit tests for cli/cmd_login: how `nbhub login` reads the provider's answers
 * while it polls the token endpoint (RFC 8628 3.5).  The whole device login
 * runs against the real Keycloak in tests/blackbox/test_sso_cli.py; the answers
 * Keycloak cannot be made to give on demand (slow_down, expired_token, a 5xx,
 * a 200 without a token) are here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cli/cmd_login.h"

static enum login_poll poll_of(long status, const char *body, const char **at, const char **e)
{
    static json_t *keep;
    json_decref(keep);
    keep = body ? json_loads(body, 0, NULL) : NULL;
    return login_poll_answer(status, keep, at, e);
}

static void test_poll_answers(void **state)
{
    (void)state;
    const char *at, *e;
    assert_int_equal(poll_of(200, "{\"access_token\": \"eyJx\", \"token_type\": \"Bearer\"}", &at, &e),
                     LOGIN_POLL_DONE);
    assert_string_equal(at, "eyJx");
    assert_null(e);
    /* A 200 without a token is an error, not a success with NULL. */
    assert_int_equal(poll_of(200, "{\"token_type\": \"Bearer\"}", &at, &e), LOGIN_POLL_ERROR);
    assert_null(at);
    assert_string_equal(e, "no access_token");
    assert_int_equal(poll_of(200, "{\"access_token\": \"\"}", &at, &e), LOGIN_POLL_ERROR);
    assert_int_equal(poll_of(400, "{\"error\": \"authorization_pending\"}", &at, &e), LOGIN_POLL_PENDING);
    assert_int_equal(poll_of(400, "{\"error\": \"slow_down\"}", &at, &e), LOGIN_POLL_SLOW_DOWN);
    assert_int_equal(poll_of(400, "{\"error\": \"access_denied\"}", &at, &e), LOGIN_POLL_DENIED);
    assert_int_equal(poll_of(400, "{\"error\": \"expired_token\"}", &at, &e), LOGIN_POLL_EXPIRED);
    assert_int_equal(poll_of(401, "{\"error\": \"invalid_client\", \"error_description\": \"x\"}", &at, &e),
                     LOGIN_POLL_ERROR);
    assert_string_equal(e, "invalid_client");
    /* A pending error with an access token beside it is still pending: only a 200 logs in. */
    assert_int_equal(poll_of(400, "{\"error\": \"authorization_pending\", \"access_token\": \"eyJx\"}", &at, &e),
                     LOGIN_POLL_PENDING);
    assert_null(at);
    /* The provider failing: ask again later, never give up at once. */
    assert_int_equal(poll_of(503, "{\"error\": \"temporarily_unavailable\"}", &at, &e), LOGIN_POLL_RETRY);
    assert_int_equal(poll_of(502, NULL, &at, &e), LOGIN_POLL_RETRY);
    assert_int_equal(poll_of(400, "[1]", &at, &e), LOGIN_POLL_RETRY);
    assert_int_equal(poll_of(400, "{\"error\": 7}", &at, &e), LOGIN_POLL_RETRY);
    poll_of(0, NULL, &at, &e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
