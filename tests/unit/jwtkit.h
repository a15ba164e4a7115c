/* jwtkit — what a test needs to play identity provider: keys made by
 * OpenSSL on the spot (RSA 2048, P-256), their public JWKs, and tokens
 * signed with them (or deliberately not).  nbhub itself never signs a JWT,
 * so this lives with the tests (test_jwt.c) and the benchmark
 * (bench/sso/bench_jwt.c), header-only. */
#ifndef NBHUB_TESTS_JWTKIT_H
#define NBHUB_TESTS_JWTKIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "util/base64.h"
#include "util/buf.h"
#include "util/xmalloc.h"

typedef struct tkey {
    EVP_PKEY *pk;
    int       ec;       /* P-256, else RSA */
    char      kid[64];
} tkey_t;

static inline void tkey_gen(tkey_t *k, int ec, const char *kid)
{
    k->ec = ec;
    k->pk = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    if (!k->pk) abort();
    snprintf(k->kid, sizeof k->kid, "%s", kid);
}

static inline void tkey_free(tkey_t *k)
{
    EVP_PKEY_free(k->pk);
    k->pk = NULL;
}

static inline void b64u_bn(buf_t *b, EVP_PKEY *pk, const char *name)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pk, name, &bn)) abort();
    unsigned char tmp[1024];
    int n = BN_bn2bin(bn, tmp);
    base64url_append(b, tmp, (size_t)n);
    BN_free(bn);
}

/* The public JWK of k as a JSON object text (malloc'd); use / alg / kid
 * left out when NULL (kid NULL means k->kid). */
static inline char *tkey_jwk(const tkey_t *k, const char *use, const char *alg, const char *kid)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"kid\":\"%s\"", kid ? kid : k->kid);
    if (use) buf_printf(&b, ",\"use\":\"%s\"", use);
    if (alg) buf_printf(&b, ",\"alg\":\"%s\"", alg);
    if (k->ec) {
        unsigned char pt[65];
        size_t n = 0;
        if (!EVP_PKEY_get_octet_string_param(k->pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &n) || n != 65) abort();
        buf_puts(&b, ",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"");
        base64url_append(&b, pt + 1, 32);
        buf_puts(&b, "\",\"y\":\"");
        base64url_append(&b, pt + 33, 32);
        buf_puts(&b, "\"}");
    } else {
        buf_puts(&b, ",\"kty\":\"RSA\",\"n\":\"");
        b64u_bn(&b, k->pk, OSSL_PKEY_PARAM_RSA_N);
        buf_puts(&b, "\",\"e\":\"");
        b64u_bn(&b, k->pk, OSSL_PKEY_PARAM_RSA_E);
        buf_puts(&b, "\"}");
    }
    buf_putc(&b, '\0');
    return buf_detach(&b);
}

typedef enum {
    TSIG_AUTO,      /* RS256 for RSA, ES256 (raw r||s) for EC */
    TSIG_ES256_DER, /* ES256 left in OpenSSL's DER form (wrong for JWS) */
    TSIG_HS256,     /* HMAC-SHA256 keyed with secret */
    TSIG_RAW,       /* the signature part is sig_b64 as given */
} tsig_t;

/* header.payload.signature from JSON texts; malloc'd, NUL-terminated. */
static inline char *jwt_make(const tkey_t *k, tsig_t mode, const char *hdr, const char *payload,
                             const void *secret, size_t secret_len, const char *sig_b64)
{
    buf_t t = BUF_INIT;
    base64url_append(&t, hdr, strlen(hdr));
    buf_putc(&t, '.');
    base64url_append(&t, payload, strlen(payload));
    unsigned char sig[1024];
    size_t slen = sizeof sig;
    if (mode == TSIG_RAW) {
        buf_putc(&t, '.');
        buf_puts(&t, sig_b64);
    } else if (mode == TSIG_HS256) {
        unsigned int hl = 0;
        HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)t.data, t.len, sig, &hl);
        buf_putc(&t, '.');
        base64url_append(&t, sig, hl);
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pk) != 1 ||
            EVP_DigestSign(ctx, sig, &slen, (const unsigned char *)t.data, t.len) != 1)
            abort();
        EVP_MD_CTX_free(ctx);
        buf_putc(&t, '.');
        if (k->ec && mode == TSIG_AUTO) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
            unsigned char rs[64];
            if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32) != 32 ||
                BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32) != 32)
                abort();
            ECDSA_SIG_free(es);
            base64url_append(&t, rs, 64);
        } else {
            base64url_append(&t, sig, slen);
        }
    }
    buf_putc(&t, '\0');
    return buf_detach(&t);
}

/* The usual case: a header naming k's alg and kid. */
static inline char *jwt_sign(const tkey_t *k, const char *payload)
{
    char hdr[160];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->ec ? "ES256" : "RS256", k->kid);
    return jwt_make(k, TSIG_AUTO, hdr, payload, NULL, 0, NULL);
}

#endif
