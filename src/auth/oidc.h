/*
 * oidc — nbhub as an OpenID Connect relying party: the provider's
 * discovery, the logins in progress, the token endpoint, and turning a
 * verified token's claims into an nbhub identity.  The HTTP side (routes,
 * cookies, sessions) is api_oidc.c; token signatures are auth/jwt.h and
 * the provider's keys auth/jwks.h.
 *
 * Discovery.  Only the issuer is configured: oidc_start fetches
 * {issuer}/.well-known/openid-configuration on the loop (http/hclient.h),
 * checks that the document's "issuer" is the configured one exactly (OIDC
 * Discovery 1.0 §4.3: a document served for another issuer must not be
 * trusted, or its keys would sign our logins), and keeps the endpoints.
 * While the provider is down nbhub keeps serving (local logins work; an SSO
 * login answers 503) and retries with back-off, 1 s doubling to 60 s.
 *
 * Logins in progress.  oidc_login_begin makes three random values: state
 * (names the login; the browser gets it in a short-lived cookie too, so
 * a callback must come from the browser that started it — login CSRF),
 * nonce (must come back inside the ID token: a token minted for another
 * login cannot be replayed into this one) and the PKCE verifier (RFC
 * 7636 S256: an intercepted code is useless without it).  They live in
 * memory for OIDC_LOGIN_TTL_S (a restart drops them: the user clicks
 * again), at most OIDC_MAX_LOGINS (the oldest goes first, so a flood of
 * /auth/oidc/login costs bounded memory), and oidc_login_take removes the
 * one it returns: a state works once.
 *
 * The token endpoint is called with client_secret_basic unless the
 * provider advertises only client_secret_post (a public client sends its
 * client_id alone).  An "invalid_grant" answer is -EACCES (the provider
 * said no: the code was used, the refresh token revoked); anything else
 * is -EIO (the provider is unreachable or confused: keep what we have).
 *
 * Ownership: oidc_t borrows the loop, the client and the configuration
 * (which must outlive it).  Strings in the structs it returns are the
 * caller's (the _clear functions).  Everything runs on the loop's thread.
 */
#ifndef NBHUB_AUTH_OIDC_H
#define NBHUB_AUTH_OIDC_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/oidc_conf.h"
#include "util/err.h"

typedef struct hclient hclient_t;
typedef struct oidc oidc_t;

#define OIDC_LOGIN_TTL_S  600     /* a login must come back within 10 minutes */
#define OIDC_MAX_LOGINS   4096
#define OIDC_STATE_LEN    43      /* base64url of 32 random bytes */
#define OIDC_RETRY_MAX_MS 60000

oidc_t *oidc_new(uv_loop_t *loop, hclient_t *hc, const oidc_conf_t *conf);
/* Start discovery (and its retries). */
void oidc_start(oidc_t *o);
/* Stop retrying discovery (the daemon is stopping: no timer may keep
 * the loop alive). */
void oidc_stop(oidc_t *o);
/* Free (after oidc_stop, or a discovery still in flight frees it when it
 * comes back). */
void oidc_free(oidc_t *o);

const oidc_conf_t *oidc_conf(const oidc_t *o);
/* 1 once discovery succeeded. */
int oidc_ready(const oidc_t *o);
/* Discovered endpoints (NULL before discovery, or when not offered). */
const char *oidc_end_session_endpoint(const oidc_t *o);
const char *oidc_device_endpoint(const oidc_t *o);
const char *oidc_token_endpoint(const oidc_t *o);
/* The provider's keys (NULL before discovery). */
jwks_cache_t *oidc_jwks(oidc_t *o);
/* Install a discovery document as if fetched (tests): 0, or -EINVAL
 * (wrong issuer, missing endpoints) with err. */
int oidc_set_discovery(oidc_t *o, const char *doc, size_t len, nb_err_t *err);
/* Discovery documents fetched so far (tests, logs). */
unsigned oidc_discoveries(const oidc_t *o);

/* The policy an ID token (nonce given) or an access token (nonce NULL,
 * access 1) is checked with. */
void oidc_policy(const oidc_t *o, jwt_policy_t *p, const char *nonce, int access);

/* ---- logins in progress ---------------------------------------------- */

typedef struct oidc_login {
    char   *nonce;
    char   *verifier;
    char   *next;           /* where to go afterwards (a local path) */
    char   *redirect_uri;   /* the callback the code was issued to */
} oidc_login_t;

/* A new login: state[] for the cookie and *url (new string) for the
 * browser.  -EAGAIN before discovery, -EIO without randomness. */
int  oidc_login_begin(oidc_t *o, const char *redirect_uri, const char *next, int64_t now_us,
                      char state[OIDC_STATE_LEN + 1], char **url, nb_err_t *err);
/* Take the login named state (it is gone afterwards): 0 and *out, or
 * -ENOENT (unknown, used or expired). */
int  oidc_login_take(oidc_t *o, const char *state, int64_t now_us, oidc_login_t *out);
size_t oidc_logins(const oidc_t *o);
void oidc_login_clear(oidc_login_t *l);

/* ---- the token endpoint ---------------------------------------------- */

typedef struct oidc_tokens {
    char   *id_token;
    char   *access_token;
    char   *refresh_token;      /* NULL when none was given */
    int64_t expires_in_s;       /* the access token's; 0 = not said */
} oidc_tokens_t;

/* rc 0 and *t (the callback's to keep: move the strings out, or they are
 * freed after it returns), -EACCES (invalid_grant), -EIO, -ECANCELED. */
typedef void (*oidc_tokens_fn)(int rc, oidc_tokens_t *t, const nb_err_t *err, void *ud);

/* Exchange an authorization code (grant_type=authorization_code).
 * 0 (cb runs later, once) or a negative errno (cb never runs). */
int  oidc_token_code(oidc_t *o, const char *code, const char *redirect_uri, const char *verifier,
                     oidc_tokens_fn cb, void *ud);
/* Refresh (grant_type=refresh_token); same contract. */
int  oidc_token_refresh(oidc_t *o, const char *refresh_token, oidc_tokens_fn cb, void *ud);
void oidc_tokens_clear(oidc_tokens_t *t);

/* ---- identity --------------------------------------------------------- */

typedef struct oidc_identity {
    char   *subject;            /* sub */
    char   *name;               /* the username claim, as given */
    char   *sid;                /* the provider's session id, NULL if none */
    char  **groups;             /* nbhub groups (profile_groups applied), NULL-terminated */
    size_t  ngroups;
    int     admin;              /* in admin_groups */
    int     allowed;            /* allowed_groups unset, or in one of them */
} oidc_identity_t;

/* Read an identity from verified claims: -EACCES (err says which claim)
 * when sub or the username claim is missing or not a string. */
int  oidc_identity(const oidc_t *o, json_t *claims, oidc_identity_t *out, nb_err_t *err);
void oidc_identity_clear(oidc_identity_t *id);

/* The provider's end-session URL (RP-Initiated Logout 1.0) for a session
 * whose ID token is id_token, coming back to post_logout (may be NULL);
 * new string, or NULL when the provider has no end_session_endpoint. */
char *oidc_logout_url(const oidc_t *o, const char *id_token, const char *post_logout);

#endif
