/*
 * cmd_login — `nbhub login --server URL`: the identity provider's device
 * authorization grant (RFC 8628), then an nbhub API token kept in the CLI's
 * config file.  The one piece with decisions worth testing on its own is
 * the reading of the token endpoint's answers while polling, exposed here.
 */
#ifndef NBHUB_CMD_LOGIN_H
#define NBHUB_CMD_LOGIN_H

#include <jansson.h>

enum login_poll {
    LOGIN_POLL_DONE,      /* 200 with an access_token */
    LOGIN_POLL_PENDING,   /* authorization_pending: ask again after the interval */
    LOGIN_POLL_SLOW_DOWN, /* slow_down: the interval grows by 5 s for good (RFC 8628 3.5) */
    LOGIN_POLL_DENIED,    /* access_denied: the user said no */
    LOGIN_POLL_EXPIRED,   /* expired_token: the code was not confirmed in time */
    LOGIN_POLL_ERROR,     /* anything else: a refusal to report (invalid_client, ...) */
    LOGIN_POLL_RETRY,     /* the provider failed (5xx, no JSON): back off and ask again */
};

/*
 * What an answer of the token endpoint to a device_code poll means.  status
 * is the HTTP status, body the parsed JSON or NULL.  On LOGIN_POLL_DONE
 * *access_token points into body; on LOGIN_POLL_ERROR *error names the
 * error code ("invalid_grant", or "no access_token" for a 200 without one).
 */
enum login_poll login_poll_answer(long status, const json_t *body, const char **access_token,
                                  const char **error);

#endif
