/*
 * jwt — verification of the JSON Web Tokens an OpenID Connect provider
 * hands out: ID tokens, access tokens (when configured to accept them) and
 * back-channel logout tokens (OIDC Back-Channel Logout 1.0).  Only compact
 * JWS (three base64url parts) signed with an asymmetric key from the
 * provider's JWKS (auth/jwks.h); nothing here signs or encrypts.
 *
 * The order of the checks is the order of trust: size (JWT_MAX_LEN), shape
 * (three unpadded base64url parts), header (a JSON object without duplicate
 * members, "alg" in the policy's list — never "none", never HS*, whatever
 * the list says — a "kid", no "crit"), key (by kid, use sig; its "alg", if
 * any, equal to the header's; its kty fitting the alg), signature
 * (EVP_DigestVerify; ES256's raw r||s of exactly 64 bytes converted to DER
 * for OpenSSL), and only then the claims, parsed from bytes now known to
 * come from the provider: iss exact, aud (string or array) holds the
 * audience, azp, exp / nbf / iat with a leeway, nonce, typ.
 *
 * Errors: a negative code saying what kind of failure (the cache needs
 * -ENOKEY to know when to refetch), and err->msg beginning with the name of
 * the check that failed, then ": " and the detail — "alg: none is never
 * accepted", "aud: does not contain nbhub" — for the log.  The user should
 * see a generic "login failed"; token bytes are never copied into err.
 *   -E2BIG        size: the token is longer than JWT_MAX_LEN
 *   -EBADMSG      format / header / claims: not three base64url parts, not
 *                 JSON, duplicate members, a member of the wrong type
 *   -ENOTSUP      alg: not in the policy (or none / HS*), crit present
 *   -ENOKEY       kid: no signing key with that kid in the set (or no kid)
 *   -EKEYREJECTED key / signature: the key does not fit the alg, or the
 *                 signature does not verify (wrong length included)
 *   -EACCES       iss, aud, azp, nonce, typ, events, sid: a claim is wrong
 *   -EKEYEXPIRED  exp, nbf, iat: the token is not valid now
 *
 * Ownership: jwt_verify's *claims is a new reference (json_decref).  The
 * policy's strings are borrowed for the call.
 */
#ifndef NBHUB_AUTH_JWT_H
#define NBHUB_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/err.h"

typedef struct jwks jwks_t; /* auth/jwks.h */

#define JWT_MAX_LEN       16384 /* bytes of a token we look at */
#define JWT_LEEWAY_S      60    /* default clock skew allowed on exp / nbf / iat */
#define JWT_LOGOUT_MAX_AGE_S 300 /* a logout token's iat must be this recent (default) */

/* Signature algorithms, as a bit set.  Only asymmetric ones exist here. */
#define JWT_ALG_RS256 (1u << 0)
#define JWT_ALG_ES256 (1u << 1)
#define JWT_ALG_DEFAULT (JWT_ALG_RS256 | JWT_ALG_ES256)

struct jwt_policy {
    unsigned    algs;        /* allowed algorithms; 0 = JWT_ALG_DEFAULT */
    const char *issuer;      /* iss must equal this exactly (required) */
    const char *audience;    /* aud (string or array) must contain this (required):
                                the client id for ID and logout tokens, the
                                configured audience for access tokens */
    const char *client_id;   /* azp: when aud has more than one value, azp must be
                                present and equal this; when azp is present it must
                                equal this.  NULL = azp not checked (access tokens,
                                which any client of the realm may have asked for) */
    const char *nonce;       /* the nonce the login sent: the claim must be present
                                and equal (constant-time).  NULL = not checked (a
                                login MUST set it; single use is the caller's job:
                                forget the nonce once it has been presented) */
    const char *typ;         /* optional: the "typ" claim must equal this (Keycloak's
                                "ID" / "Bearer", so one kind cannot pass as the
                                other).  NULL = not checked */
    int64_t     leeway_s;    /* clock skew allowed; jwt_policy_init sets JWT_LEEWAY_S */
    int64_t     max_age_s;   /* > 0: iat must be no older than this (+ leeway); logout
                                tokens use JWT_LOGOUT_MAX_AGE_S when 0 */
    int64_t     now;         /* seconds since the epoch; 0 = time(NULL) (tests set it) */
};
typedef struct jwt_policy jwt_policy_t;

/* Defaults: algs RS256 | ES256, leeway JWT_LEEWAY_S, everything else unset. */
void jwt_policy_init(jwt_policy_t *p);

/*
 * Verify an ID token or access token token[0..len) against the keys of ks
 * and the policy.  Required claims: iss, aud, exp, iat (numbers, exp in the
 * future, iat not in the future, beyond the leeway); nbf when present.
 * Returns 0 and *claims (the payload object, a new reference: sub,
 * preferred_username, groups, sid, ... for the caller to read), or a
 * negative code (see above) with err naming the failed check.
 */
int jwt_verify(const jwks_t *ks, const char *token, size_t len, const jwt_policy_t *p,
               json_t **claims, nb_err_t *err);

/*
 * Verify a back-channel logout token: the same signature, iss and aud
 * checks (azp not required), then: "events" is an object holding the
 * member "http://schemas.openid.net/event/backchannel-logout" (an object),
 * "sid" or "sub" present (strings), no "nonce" (a logout token must not be
 * mistaken for an ID token and the other way round), "jti" present, iat no
 * older than p->max_age_s (JWT_LOGOUT_MAX_AGE_S when 0), exp checked when
 * present.  p->nonce and p->typ are ignored.
 * Returns 0 and *claims (new reference; read "sid" / "sub" / "jti" from it:
 * the caller may keep recent jti values to refuse a replay), or as jwt_verify.
 */
int jwt_verify_logout(const jwks_t *ks, const char *token, size_t len, const jwt_policy_t *p,
                      json_t **claims, nb_err_t *err);

/* The header's "kid" of token, without verifying anything (the cache uses
 * it to tell an unknown key); new string, or NULL when there is none or the
 * header does not parse. */
char *jwt_peek_kid(const char *token, size_t len);

#endif
