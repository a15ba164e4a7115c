/*
 * oauth — the authorization codes of nbhub's OAuth 2 provider: the
 * authorization-code grant with PKCE (RFC 7636, S256 only) that
 * jupyterhub-singleuser uses to log a browser in to a notebook server
 * (/hub/api/oauth2/authorize, then POST /hub/api/oauth2/token).
 *
 * A code is issued to one logged-in user for one client (a notebook
 * server: client id "jupyterhub-user-NAME" or "jupyterhub-user-NAME-SERVER",
 * as the hub names it: hub_server_client_id), one redirect URI and one S256 challenge, lives
 * OAUTH_CODE_TTL_S seconds, and is consumed by the first exchange that
 * presents it, right or wrong: a code seen twice is an intercepted code, and
 * a wrong verifier must not leave the code usable for another try.  The
 * exchange succeeds only if the client, the redirect URI and
 * SHA-256(verifier) all match what the code was issued for.
 *
 * Why in memory and not in SQLite: a code lives seconds and is used once,
 * so there is nothing to keep across a restart (a browser caught in the
 * middle simply follows the redirect again and gets a new code); keeping
 * codes out of the database also means a copy of nbhub.db never holds a
 * usable one, and issuing one costs no fsync.  Codes are looked up by their
 * SHA-256 (as tokens are), compared in constant time, and the table is
 * bounded (OAUTH_MAX_CODES; the oldest is dropped), so a flood of
 * authorize requests costs no unbounded memory.
 *
 * Ownership: the table owns its codes; oauth_grant_t strings returned by
 * oauth_code_redeem are the caller's (oauth_grant_clear).
 */
#ifndef NBHUB_OAUTH_H
#define NBHUB_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define OAUTH_CODE_TTL_S 300      /* JupyterHub's */
#define OAUTH_MAX_CODES  1024
#define OAUTH_CODE_PREFIX "nbo_"
#define OAUTH_CODE_LEN   (4 + 43)

typedef struct oauth oauth_t;

/* What a code was issued for, handed back by a successful redeem. */
typedef struct oauth_grant {
    int64_t user_id;
    int64_t server_id;     /* the client's server (servers.id) */
    char   *scopes;        /* JSON list the user granted */
} oauth_grant_t;

oauth_t *oauth_new(void);
void     oauth_free(oauth_t *o);

/* A new code into code[OAUTH_CODE_LEN + 1].  challenge is the S256
 * challenge (base64url of SHA-256, 43 characters); method must be "S256"
 * (-EINVAL otherwise: "plain" is refused, so is a missing challenge). */
int  oauth_code_new(oauth_t *o, const char *client_id, const char *redirect_uri,
                    const char *challenge, const char *method, int64_t user_id, int64_t server_id,
                    const char *scopes_json, int64_t now_us, char code[OAUTH_CODE_LEN + 1],
                    nb_err_t *err);
/* Exchange a code: 0 and *out filled when client_id, redirect_uri and the
 * verifier match; the code is gone afterwards whatever the result.
 * -ENOENT unknown, used or expired code; -EACCES wrong client, redirect
 * URI or verifier (err says which, for the log; OAuth answers
 * invalid_grant to all). */
int  oauth_code_redeem(oauth_t *o, const char *code, const char *client_id,
                       const char *redirect_uri, const char *verifier, int64_t now_us,
                       oauth_grant_t *out, nb_err_t *err);
/* Codes currently held (tests). */
size_t oauth_ncodes(const oauth_t *o);
void oauth_grant_clear(oauth_grant_t *g);

/* base64url(SHA-256(verifier)) without padding into out[44]. */
void oauth_s256(const char *verifier, char out[44]);
#endif
