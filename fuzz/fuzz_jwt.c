/*
 * libFuzzer harness for auth/jwks and auth/jwt: a JWKS document and a token
 * from the provider, both attacker-shaped (a provider we are pointed at may
 * be hostile, and anyone can send a token).  The input is the JWKS text, a
 * NUL byte, then the token (no NUL: the token alone, checked against the
 * fixed set below).
 *
 * Invariants: nothing crashes or leaks; jwks_parse either fails or gives a
 * set whose every key has an EVP_PKEY and a kid, at most JWKS_MAX_KEYS;
 * verification returns 0 with claims (an object holding the policy's iss)
 * or one of the documented codes with err naming a known check and no
 * claims; against FIXED, whose private keys exist nowhere, nothing verifies
 * (a success would be a forgery); jwt_peek_kid agrees with jwks_find on
 * what a token names.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public halves of keys generated once and thrown away (RSA 2048, P-256). */
#define FIXED_RSA_N \
    "py7gAWSvbqXMVohli4dOgUfPK3q-DjlS_TgymTKeoEOeihAMo263CJ_VSY3Ue4w8zdLgTJ3fzhuX8XM1nt6EC1a7JNpEd9TQ" \
    "MFChEeeStuHqQFxTa8zxtR20uz711hljOfTNTlJN3f4iXYXo18qxjzWDPgb0LYPdKq3RThKgkyUBKxV_Cs4Lah4vTdeoXqrT" \
    "KmnR45efdeK3eO9EVRt1iPpDUzKG7MJXJ-PRO0m3X9ll1lDalCWpFuU2ArtYFJ56UIVJCe-ZBU4dv0q8q1KBdZwYySGwj6Qb" \
    "3LiM8jFabIfVT4KryGwGwqceY7nc_5Dh4UD1rCstpi8q5P8ir8zgcw"
#define FIXED_EC_X "fV_ehNypvsDIIMAvpJrHP6Zr1ZsYg6nq-23lLj7ZXXA"
#define FIXED_EC_Y "VPe7yw0yJIu2H1mWid_CFCPWijkttom_wldkchtk3Rc"
static const char FIXED[] =
    "{\"keys\":[{\"kid\":\"enc\",\"use\":\"enc\",\"alg\":\"RSA-OAEP\",\"kty\":\"RSA\",\"n\":\"" FIXED_RSA_N "\",\"e\":\"AQAB\"},"
    "{\"kid\":\"rsa-sig\",\"use\":\"sig\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"n\":\"" FIXED_RSA_N "\",\"e\":\"AQAB\"},"
    "{\"kid\":\"ec-sig\",\"use\":\"sig\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FIXED_EC_X "\",\"y\":\"" FIXED_EC_Y "\"}]}";

static const char *const CHECKS[] = { "size", "format", "header", "alg", "kid", "key", "signature", "claims",
                                      "iss", "aud", "azp", "exp", "nbf", "iat", "nonce", "typ", "events", "sid",
                                      "jti", NULL };

static void check_result(int rc, json_t *claims, const nb_err_t *err, const jwt_policy_t *p)
{
    if (rc == 0) {
        if (!json_is_object(claims) || !json_is_string(json_object_get(claims, "iss")) ||
            strcmp(json_string_value(json_object_get(claims, "iss")), p->issuer))
            abort();
        return;
    }
    if (claims) abort();
    if (rc != -E2BIG && rc != -EBADMSG && rc != -ENOTSUP && rc != -ENOKEY && rc != -EKEYREJECTED && rc != -EACCES &&
        rc != -EKEYEXPIRED)
        abort();
    const char *colon = strchr(err->msg, ':');
    if (!colon) abort();
    int known = 0;
    for (const char *const *c = CHECKS; *c; c++)
        if (strlen(*c) == (size_t)(colon - err->msg) && !strncmp(*c, err->msg, strlen(*c))) known = 1;
    if (!known) {
        fprintf(stderr, "fuzz_jwt: unknown check in \"%s\"\n", err->msg);
        abort();
    }
}

static void verify_all(const jwks_t *ks, const char *tok, size_t n, int must_fail)
{
    jwt_policy_t p;
    jwt_policy_init(&p);
    p.issuer = "https://idp.example/realms/nb";
    p.audience = "nbhub";
    p.client_id = "nbhub";
    p.now = 1800000000;
    for (int kind = 0; kind < 3; kind++) {
        nb_err_t err = { 0 };
        json_t *c = NULL;
        p.nonce = kind == 1 ? "n-123" : NULL;
        int rc = kind == 2 ? jwt_verify_logout(ks, tok, n, &p, &c, &err) : jwt_verify(ks, tok, n, &p, &c, &err);
        check_result(rc, c, &err, &p);
        if (must_fail && rc == 0) abort();
        json_decref(c);
    }
    char *kid = jwt_peek_kid(tok, n);
    if (kid && !*kid) abort();
    if (!kid && n <= JWT_MAX_LEN && ks) {
        /* a token naming no key can match none */
        nb_err_t err;
        jwt_policy_t q;
        jwt_policy_init(&q);
        q.issuer = p.issuer;
        q.audience = p.audience;
        if (jwt_verify(ks, tok, n, &q, NULL, &err) == 0) abort();
    }
    free(kid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static jwks_t *fixed;
    nb_err_t err;
    if (!fixed && jwks_parse(FIXED, sizeof FIXED - 1, &fixed, &err) != 0) abort();
    if (!fixed || jwks_count(fixed) != 2) abort();

    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    const char *tok = nul ? nul + 1 : s;
    size_t tn = nul ? size - (size_t)(nul + 1 - s) : size;
    if (nul) {
        jwks_t *ks = NULL;
        int rc = jwks_parse(s, (size_t)(nul - s), &ks, &err);
        if (rc == 0) {
            if (!ks || jwks_count(ks) > JWKS_MAX_KEYS) abort();
            for (size_t i = 0; i < jwks_count(ks); i++) {
                const jwk_t *k = jwks_key(ks, i);
                if (!k->pkey || !k->kid) abort();
                if (*k->kid && jwks_find(ks, k->kid) != k) abort();
            }
            verify_all(ks, tok, tn, 0);
            jwks_free(ks);
        } else if (ks || (rc != -EBADMSG && rc != -E2BIG)) {
            abort();
        }
    }
    verify_all(fixed, tok, tn, 1);
    verify_all(NULL, tok, tn, 1);
    return 0;
}
