/*
 * jwks — an identity provider's signing keys (RFC 7517 JSON Web Key Set),
 * parsed once into OpenSSL keys, and the cache that keeps the current set
 * of one issuer (fetched from its jwks_uri, refetched on key rotation).
 *
 * What is kept from a JWKS document: keys with kty "RSA" (n, e; 2048 bits
 * or more) or kty "EC" with crv "P-256" (x, y; the point is checked to be
 * on the curve), and only those meant for signatures: a key with
 * "use": "enc" is skipped (Keycloak publishes an RSA-OAEP encryption key
 * beside its signing key, and a token "signed" with an encryption key must
 * not verify), as is any other kty/crv, a key whose "key_ops" does not
 * hold "verify", or a member of the wrong type.  A skipped key is not an
 * error; a document that is not a JSON object with a "keys" array, or
 * holds duplicate JSON members, is.  Keys are chosen by kid only, never
 * "the first key" (jwks_find); a key's "alg", when given, must be the
 * token's (checked in jwt_verify).
 *
 * The cache (jwks_cache_t) lives on the daemon's libuv loop and fetches with
 * http/hclient.  Key rotation: a token whose kid the current set does not
 * hold triggers ONE refetch, then the token is verified again; refetches
 * are spaced by a cool-down (JWKS_COOLDOWN_MS by default), so a flood of
 * tokens with random kids costs the provider at most one request per
 * cool-down, and concurrent misses share the request in flight.  A failed
 * fetch keeps the previous set.  jwks_cache_fetches counts the requests
 * made (tests, metrics).
 *
 * Ownership: jwks_parse returns a set owned by the caller (jwks_free).  The
 * keys inside are the set's; a jwk_t pointer is valid as long as its set.
 * The cache owns its current set, which it replaces on a successful fetch:
 * a jwks_t pointer taken from jwks_cache_keys is valid only until control
 * returns to the loop.  Nothing here is thread-safe.
 */
#ifndef NBHUB_AUTH_JWKS_H
#define NBHUB_AUTH_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "util/err.h"

typedef struct hclient hclient_t;      /* http/hclient.h */
typedef struct jwt_policy jwt_policy_t; /* auth/jwt.h */

#define JWKS_MAX_DOC     (256u * 1024) /* bytes of a JWKS document we read */
#define JWKS_MAX_KEYS    64            /* signing keys kept from one document */
#define JWKS_COOLDOWN_MS 60000         /* least time between two fetches */
#define JWKS_MAX_AGE_MS  3600000       /* a set older than this is refetched in the background */

typedef enum jwk_kty {
    JWK_RSA = 1,
    JWK_EC_P256 = 2,
} jwk_kty_t;

typedef struct jwk {
    jwk_kty_t kty;
    char     *kid;   /* never NULL ("" when the document gave none: such a key is never chosen) */
    char     *alg;   /* NULL when the document gave none */
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *vctx; /* verify context on pkey, SHA-256 (+ PKCS#1 v1.5 for RSA),
                           prepared once: jwt.c passes it a digest */
} jwk_t;

typedef struct jwks jwks_t;

/* Parse a JWKS document (at most JWKS_MAX_DOC bytes).  0 and *out, or
 * -EBADMSG (not JSON, duplicate members, no "keys" array), -E2BIG (too
 * large), with err saying why.  A document with no usable signing key
 * parses into an empty set (every token then fails with "kid"). */
int  jwks_parse(const char *doc, size_t len, jwks_t **out, nb_err_t *err);
void jwks_free(jwks_t *ks);

/* Signing keys kept, and the i-th of them (tests, logs). */
size_t       jwks_count(const jwks_t *ks);
const jwk_t *jwks_key(const jwks_t *ks, size_t i);

/* The signing key with this kid, or NULL.  Keys without a kid are never
 * returned: a token must name its key. */
const jwk_t *jwks_find(const jwks_t *ks, const char *kid);

/* ---- the cache of one issuer ---------------------------------------- */

typedef struct jwks_cache jwks_cache_t;

/* A cache fetching jwks_uri (an http(s) URL, copied) through hc (borrowed,
 * must outlive the cache).  cooldown_ms 0 = JWKS_COOLDOWN_MS.  Starts
 * empty: the first verification (or jwks_cache_refresh) fetches. */
jwks_cache_t *jwks_cache_new(hclient_t *hc, const char *jwks_uri, uint64_t cooldown_ms);

/* Free the cache.  Callbacks waiting for a fetch in flight run now with
 * -ECANCELED; the fetch itself finishes (or is cancelled by hclient_close)
 * without touching anything the caller still holds. */
void jwks_cache_free(jwks_cache_t *c);

/* Install a JWKS document directly (tests, or a set read elsewhere); counts
 * as a fetch for the cool-down but not in jwks_cache_fetches. */
int jwks_cache_set(jwks_cache_t *c, const char *doc, size_t len, nb_err_t *err);

/* The current set (NULL before the first successful fetch). */
const jwks_t *jwks_cache_keys(const jwks_cache_t *c);

/* HTTP fetches started so far. */
uint64_t jwks_cache_fetches(const jwks_cache_t *c);

typedef void (*jwks_refresh_fn)(int rc, void *ud);

/* Fetch the set now, unless the cool-down forbids it.  Returns 0 and
 * calls cb(rc, ud) once, later, from the loop (rc 0: the set was replaced;
 * negative: the fetch failed and the old set stays) — joining a fetch
 * already in flight if there is one; or returns -EBUSY (the last fetch
 * started less than the cool-down ago; cb never called).  cb may be NULL
 * (fetch in the background). */
int jwks_cache_refresh(jwks_cache_t *c, jwks_refresh_fn cb, void *ud);

/* What jwks_cache_verify checks the token as. */
typedef enum jwks_token_kind {
    JWKS_ID_TOKEN = 0,      /* jwt_verify */
    JWKS_LOGOUT_TOKEN = 1,  /* jwt_verify_logout */
} jwks_token_kind_t;

/* The verification's answer: rc as jwt_verify / jwt_verify_logout; claims
 * (borrowed: valid during the callback; take a json_incref to keep them) is
 * NULL unless rc == 0; err says why when rc < 0. */
typedef void (*jwks_verify_fn)(int rc, json_t *claims, const nb_err_t *err, void *ud);

/*
 * Verify token against the cache, refetching once on an unknown kid.
 *   - The key is known (or the token fails before its kid matters): the
 *     result is returned now, as jwt_verify returns it (0 and *claims, a
 *     new reference, or a negative code and err); cb is never called.
 *   - The kid is unknown (or there is no set yet) and a fetch may start or
 *     is in flight: returns -EINPROGRESS, and cb runs once, later, with
 *     the result of verifying again against the fetched set.  token and
 *     policy are copied; the caller's may go.
 *   - The kid is unknown and the cool-down forbids a fetch: -ENOKEY now.
 *   - cb NULL (a caller that cannot wait, e.g. a synchronous Bearer check):
 *     an unknown kid is -ENOKEY now, and a fetch starts in the background
 *     if the cool-down allows, so the client's retry finds the new key.
 * A set older than JWKS_MAX_AGE_MS is refetched in the background (the
 * current one still answers), so a key withdrawn by the provider stops
 * verifying within that time.
 */
int jwks_cache_verify(jwks_cache_t *c, const char *token, size_t len, const jwt_policy_t *policy,
                      jwks_token_kind_t kind, json_t **claims, nb_err_t *err, jwks_verify_fn cb, void *ud);

#endif
