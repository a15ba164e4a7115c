/* Unit tests for auth/jwt and auth/jwks: the bad tokens of issue 18, each
 * refused for the right reason, with keys made by OpenSSL at test start
 * (RSA 2048 and P-256, tests/unit/jwtkit.h plays the provider), and the
 * key cache over a real HTTP server on 127.0.0.1 (rotation picked up with
 * one fetch; a flood of unknown kids costs at most one fetch per
 * cool-down).
 *
 * A reason is checked by the error code AND the check's name at the start
 * of err.msg ("alg: ...", "kid: ..."), so a token refused by an earlier,
 * wrong check does not pass for one refused by the right one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwtkit.h"

#include <openssl/x509.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "http/hclient.h"
#include "http/server.h"
#include "util/timeutil.h"

#define ISS "https://idp.example/realms/nb"
#define NOW 1800000000LL

static tkey_t rsa, ec, enc, rsa2;
static jwks_t *ks;
static char *jwks_doc;

static char *make_jwks(const char *const *jwks, size_t n)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&b, ',');
        buf_puts(&b, jwks[i]);
    }
    buf_puts(&b, "]}");
    buf_putc(&b, '\0');
    return buf_detach(&b);
}

static int group_setup(void **state)
{
    tkey_gen(&rsa, 0, "rsa-sig");
    tkey_gen(&ec, 1, "ec-sig");
    tkey_gen(&enc, 0, "rsa-enc");
    tkey_gen(&rsa2, 0, "rsa-new");
    /* As Keycloak publishes it: the encryption key first. */
    char *k[3] = { tkey_jwk(&enc, "enc", "RSA-OAEP", NULL), tkey_jwk(&rsa, "sig", "RS256", NULL),
                   tkey_jwk(&ec, "sig", "ES256", NULL) };
    jwks_doc = make_jwks((const char *const *)k, 3);
    for (int i = 0; i < 3; i++) free(k[i]);
    nb_err_t err;
    assert_int_equal(jwks_parse(jwks_doc, strlen(jwks_doc), &ks, &err), 0);
    return 0;
}

static int group_teardown(void **state)
{
    jwks_free(ks);
    free(jwks_doc);
    tkey_free(&rsa);
    tkey_free(&ec);
    tkey_free(&enc);
    tkey_free(&rsa2);
    return 0;
}

static void policy(jwt_policy_t *p)
{
    jwt_policy_init(p);
    p->issuer = ISS;
    p->audience = "nbhub";
    p->client_id = "nbhub";
    p->nonce = "n-123";
    p->now = NOW;
}

/* A payload with the usual claims; extra is spliced in (",\"k\":v" ...). */
static char *claims(const char *iss, const char *aud, long long exp, const char *extra)
{
    buf_t b = BUF_INIT;
    buf_printf(&b,
               "{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"u-1\",\"preferred_username\":\"alice\","
               "\"exp\":%lld,\"iat\":%lld,\"nonce\":\"n-123\",\"groups\":[\"data\"]%s}",
               iss, aud, exp, NOW - 10, extra ? extra : "");
    buf_putc(&b, '\0');
    return buf_detach(&b);
}

static char *good_payload(void) { return claims(ISS, "\"nbhub\"", NOW + 300, NULL); }

/* Verify token under p (or the default policy) and expect code and the
 * check's name as err.msg's prefix. */
static void expect(const char *tok, const jwt_policy_t *p, int code, const char *check)
{
    jwt_policy_t d;
    if (!p) {
        policy(&d);
        p = &d;
    }
    nb_err_t err = { 0 };
    json_t *c = (json_t *)1;
    int rc = jwt_verify(ks, tok, strlen(tok), p, &c, &err);
    if (rc != code || (check && strncmp(err.msg, check, strlen(check))) || (check && err.msg[strlen(check)] != ':'))
        fail_msg("expected %d %s:, got %d \"%s\"", code, check ? check : "", rc, err.msg);
    if (rc == 0) {
        assert_non_null(c);
        json_decref(c);
    } else {
        assert_null(c);
    }
}

static void test_valid_rs256_es256(void **state)
{
    char *pl = good_payload();
    char *t1 = jwt_sign(&rsa, pl), *t2 = jwt_sign(&ec, pl);
    jwt_policy_t p;
    policy(&p);
    json_t *c = NULL;
    nb_err_t err;
    assert_int_equal(jwt_verify(ks, t1, strlen(t1), &p, &c, &err), 0);
    assert_string_equal(json_string_value(json_object_get(c, "preferred_username")), "alice");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "groups"), 0)), "data");
    json_decref(c);
    expect(t2, NULL, 0, NULL);
    /* Only the algorithms configured: ES256 alone refuses RS256. */
    p.algs = JWT_ALG_ES256;
    expect(t1, &p, -ENOTSUP, "alg");
    expect(t2, &p, 0, NULL);
    free(t1);
    free(t2);
    free(pl);
}

static void test_alg_none_and_hs256(void **state)
{
    char *pl = good_payload();
    const char *nones[] = { "none", "None", "NONE" };
    for (int i = 0; i < 3; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"rsa-sig\"}", nones[i]);
        char *t = jwt_make(NULL, TSIG_RAW, hdr, pl, NULL, 0, "AAAA");
        expect(t, NULL, -ENOTSUP, "alg");
        free(t);
        /* unsigned: the empty third part */
        t = jwt_make(NULL, TSIG_RAW, hdr, pl, NULL, 0, "");
        expect(t, NULL, -EBADMSG, "format");
        free(t);
    }
    /* HS256 keyed with the public key's bytes, as JWK text and as DER:
     * the forgery against a verifier that trusts the header's alg. */
    char *jwk = tkey_jwk(&rsa, "sig", NULL, NULL);
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(rsa.pk, &der);
    assert_true(dl > 0);
    const char *algs[] = { "HS256", "HS384", "HS512", "hs256" };
    for (int i = 0; i < 4; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"rsa-sig\"}", algs[i]);
        char *t = jwt_make(NULL, TSIG_HS256, hdr, pl, jwk, strlen(jwk), NULL);
        expect(t, NULL, -ENOTSUP, "alg");
        free(t);
        t = jwt_make(NULL, TSIG_HS256, hdr, pl, der, (size_t)dl, NULL);
        jwt_policy_t p;
        policy(&p);
        p.algs = ~0u; /* not even a policy allowing "everything" lets it in */
        expect(t, &p, -ENOTSUP, "alg");
        free(t);
    }
    /* An algorithm we do not implement. */
    char *t = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"PS256\",\"kid\":\"rsa-sig\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -ENOTSUP, "alg");
    free(t);
    /* crit: extensions we would have to understand. */
    t = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\",\"kid\":\"rsa-sig\",\"crit\":[\"b64\"],\"b64\":false}", pl,
                 NULL, 0, NULL);
    expect(t, NULL, -ENOTSUP, "alg");
    free(t);
    OPENSSL_free(der);
    free(jwk);
    free(pl);
}

static void test_kid(void **state)
{
    char *pl = good_payload();
    /* A key the set does not hold. */
    char *t = jwt_sign(&rsa2, pl);
    expect(t, NULL, -ENOKEY, "kid");
    free(t);
    /* The enc key's kid, token signed with the enc key: the set holds it
     * only for encryption, so it is not there for verifying. */
    t = jwt_sign(&enc, pl);
    expect(t, NULL, -ENOKEY, "kid");
    free(t);
    /* No kid: never "the first key". */
    t = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -ENOKEY, "kid");
    free(t);
    /* Our own key's kid but signed by another key: the signature fails. */
    tkey_t imp = rsa2;
    snprintf(imp.kid, sizeof imp.kid, "rsa-sig");
    t = jwt_sign(&imp, pl);
    expect(t, NULL, -EKEYREJECTED, "signature");
    free(t);
    /* ES256 header with the RSA key's kid, and the key's alg pinned. */
    t = jwt_make(&ec, TSIG_AUTO, "{\"alg\":\"ES256\",\"kid\":\"rsa-sig\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -EKEYREJECTED, "key");
    free(t);
    free(pl);
}

static void test_jwks_enc_first(void **state)
{
    /* The set kept only the two signing keys, whatever came first. */
    assert_int_equal(jwks_count(ks), 2);
    assert_null(jwks_find(ks, "rsa-enc"));
    assert_non_null(jwks_find(ks, "rsa-sig"));
    assert_int_equal(jwks_find(ks, "ec-sig")->kty, JWK_EC_P256);
    /* A set whose only RSA key is the enc key, without kids anywhere (keys
     * without kid are never chosen), a kid named twice (neither chosen),
     * unknown kty, key_ops without verify, a 1024-bit RSA key, and junk. */
    tkey_t small;
    small.ec = 0;
    small.pk = EVP_RSA_gen(1024);
    snprintf(small.kid, sizeof small.kid, "small");
    char *k[] = { tkey_jwk(&enc, "enc", NULL, "x"), tkey_jwk(&rsa, NULL, NULL, ""), tkey_jwk(&rsa, "sig", NULL, "dup"),
                  tkey_jwk(&ec, "sig", NULL, "dup"), xstrdup("{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"AAAA\"}"),
                  xstrdup("{\"kty\":\"RSA\",\"kid\":\"ops\",\"key_ops\":[\"encrypt\"],\"n\":\"AQAB\",\"e\":\"AQAB\"}"),
                  tkey_jwk(&small, "sig", NULL, NULL), xstrdup("7"),
                  xstrdup("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"off\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                          "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}"),
                  tkey_jwk(&rsa2, "sig", NULL, NULL) };
    size_t nk = sizeof k / sizeof *k;
    char *doc = make_jwks((const char *const *)k, nk);
    jwks_t *s2 = NULL;
    nb_err_t err;
    assert_int_equal(jwks_parse(doc, strlen(doc), &s2, &err), 0);
    assert_int_equal(jwks_count(s2), 2); /* rsa-new, and the kid-less key nothing can choose */
    assert_non_null(jwks_find(s2, "rsa-new"));
    assert_null(jwks_find(s2, "dup"));
    assert_null(jwks_find(s2, ""));
    jwks_free(s2);
    free(doc);
    for (size_t i = 0; i < nk; i++) free(k[i]);
    tkey_free(&small);
    /* Documents that are not a key set. */
    const char *bad[] = { "", "[]", "{\"keys\":{}}", "{\"keys\":[],\"keys\":[]}", "{\"keys\":[" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s2 = (jwks_t *)1;
        assert_int_equal(jwks_parse(bad[i], strlen(bad[i]), &s2, &err), -EBADMSG);
        assert_null(s2);
    }
}

static void test_iss_aud_azp(void **state)
{
    char *pl = claims(ISS "/", "\"nbhub\"", NOW + 300, NULL);
    char *t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EACCES, "iss");
    free(t);
    free(pl);
    pl = claims(ISS, "\"other\"", NOW + 300, NULL);
    t = jwt_sign(&ec, pl);
    expect(t, NULL, -EACCES, "aud");
    free(t);
    free(pl);
    pl = claims(ISS, "[\"other\",\"account\"]", NOW + 300, NULL);
    t = jwt_sign(&ec, pl);
    expect(t, NULL, -EACCES, "aud");
    free(t);
    free(pl);
    /* Several audiences: azp must be there and be us. */
    pl = claims(ISS, "[\"nbhub\",\"account\"]", NOW + 300, NULL);
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EACCES, "azp");
    free(t);
    free(pl);
    pl = claims(ISS, "[\"nbhub\",\"account\"]", NOW + 300, ",\"azp\":\"nbhub\"");
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, 0, NULL);
    free(t);
    free(pl);
    pl = claims(ISS, "\"nbhub\"", NOW + 300, ",\"azp\":\"evil-client\"");
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EACCES, "azp");
    /* An access token for a configured audience: azp is whoever asked. */
    jwt_policy_t p;
    policy(&p);
    p.client_id = NULL;
    p.nonce = NULL;
    expect(t, &p, 0, NULL);
    p.typ = "Bearer";
    expect(t, &p, -EACCES, "typ");
    free(t);
    free(pl);
    /* aud of the wrong type */
    pl = claims(ISS, "[\"nbhub\",7]", NOW + 300, ",\"azp\":\"nbhub\"");
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EBADMSG, "aud");
    free(t);
    free(pl);
    /* the policy itself must name issuer and audience */
    policy(&p);
    p.issuer = NULL;
    pl = good_payload();
    t = jwt_sign(&rsa, pl);
    expect(t, &p, -EINVAL, "policy");
    free(t);
    free(pl);
}

static void test_times(void **state)
{
    /* expired: 61 s ago is beyond the 60 s leeway, 59 s is not */
    char *pl = claims(ISS, "\"nbhub\"", NOW - 61, NULL);
    char *t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EKEYEXPIRED, "exp");
    jwt_policy_t p;
    policy(&p);
    p.leeway_s = 120;
    expect(t, &p, 0, NULL);
    free(t);
    free(pl);
    pl = claims(ISS, "\"nbhub\"", NOW - 59, NULL);
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, 0, NULL);
    p.leeway_s = 0;
    expect(t, &p, -EKEYEXPIRED, "exp");
    free(t);
    free(pl);
    /* nbf in the future */
    pl = claims(ISS, "\"nbhub\"", NOW + 3600, ",\"nbf\":1800000600");
    t = jwt_sign(&ec, pl);
    expect(t, NULL, -EKEYEXPIRED, "nbf");
    free(t);
    free(pl);
    /* no exp at all; exp as a string */
    t = jwt_sign(&rsa, "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"iat\":1800000000,\"nonce\":\"n-123\"}");
    expect(t, NULL, -EKEYEXPIRED, "exp");
    free(t);
    t = jwt_sign(&rsa, "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"exp\":\"1800000300\",\"iat\":1800000000}");
    expect(t, NULL, -EBADMSG, "claims");
    free(t);
    /* iat in the future */
    t = jwt_sign(&rsa, "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"exp\":1800009000,\"iat\":1800000500,\"nonce\":\"n-123\"}");
    expect(t, NULL, -EKEYEXPIRED, "iat");
    free(t);
}

static void test_nonce(void **state)
{
    char *pl = good_payload();
    char *t = jwt_sign(&rsa, pl);
    jwt_policy_t p;
    policy(&p);
    expect(t, &p, 0, NULL);
    /* The login's nonce is single-use: once presented, the caller forgets
     * it, and the next login has its own.  The same token replayed into
     * that next login is refused. */
    p.nonce = "n-456";
    expect(t, &p, -EACCES, "nonce");
    p.nonce = "n-12";   /* a prefix is not the nonce */
    expect(t, &p, -EACCES, "nonce");
    free(t);
    free(pl);
    pl = claims(ISS, "\"nbhub\"", NOW + 300, NULL);
    /* without a nonce claim */
    char *nn = xstrdup(pl);
    char *q = strstr(nn, ",\"nonce\":\"n-123\"");
    memmove(q, q + 16, strlen(q + 16) + 1);
    t = jwt_sign(&ec, nn);
    p.nonce = "n-123";
    expect(t, &p, -EACCES, "nonce");
    free(t);
    free(nn);
    free(pl);
}

static void test_garbled(void **state)
{
    char *pl = good_payload();
    char *t = jwt_sign(&rsa, pl);
    size_t n = strlen(t);
    /* truncated: every cut of the signature fails */
    for (size_t cut = 1; cut < 8; cut++) {
        char *c = xstrdup(t);
        c[n - cut] = '\0';
        nb_err_t err;
        jwt_policy_t p;
        policy(&p);
        int rc = jwt_verify(ks, c, strlen(c), &p, NULL, &err);
        assert_true(rc == -EKEYREJECTED || rc == -EBADMSG);
        free(c);
    }
    /* truncated into the payload: only two parts */
    char *c = xstrdup(t);
    *strrchr(c, '.') = '\0';
    expect(c, NULL, -EBADMSG, "format");
    free(c);
    /* a character outside base64url, padding, standard-alphabet characters */
    c = xstrdup(t);
    c[3] = '*';
    expect(c, NULL, -EBADMSG, "header");
    free(c);
    buf_t b = BUF_INIT;
    buf_append(&b, t, strchr(t, '.') - t);
    buf_puts(&b, "==");
    buf_puts(&b, strchr(t, '.'));
    buf_putc(&b, '\0');
    expect(b.data, NULL, -EBADMSG, "header");
    buf_free(&b);
    c = xstrdup(t);
    char *sig = strrchr(c, '.') + 1;
    for (char *s = sig; *s; s++)
        if (*s == '-') *s = '+';
        else if (*s == '_') *s = '/';
    if (strpbrk(sig, "+/")) expect(c, NULL, -EBADMSG, "format");
    free(c);
    /* four parts (a JWE has five) */
    buf_puts(&b, t);
    buf_puts(&b, ".AAAA");
    buf_putc(&b, '\0');
    expect(b.data, NULL, -EBADMSG, "format");
    buf_free(&b);
    /* payload changed after signing */
    c = xstrdup(t);
    char *p1 = strchr(c, '.') + 1;
    p1[5] = p1[5] == 'A' ? 'B' : 'A';
    nb_err_t err;
    jwt_policy_t p;
    policy(&p);
    int rc = jwt_verify(ks, c, strlen(c), &p, NULL, &err);
    assert_true(rc == -EKEYREJECTED || rc == -EBADMSG);
    free(c);
    /* header not JSON, not an object */
    char *x = jwt_make(&rsa, TSIG_AUTO, "[\"RS256\"]", pl, NULL, 0, NULL);
    expect(x, NULL, -EBADMSG, "header");
    free(x);
    x = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\",", pl, NULL, 0, NULL);
    expect(x, NULL, -EBADMSG, "header");
    free(x);
    /* claims not JSON (signed correctly) */
    x = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\",\"kid\":\"rsa-sig\"}", "{\"iss\":", NULL, 0, NULL);
    expect(x, NULL, -EBADMSG, "claims");
    free(x);
    expect("", NULL, -EBADMSG, "format");
    expect("..", NULL, -EBADMSG, "format");
    free(t);
    free(pl);
}

static void test_es256_signature_length(void **state)
{
    char *pl = good_payload();
    /* OpenSSL's DER form (70-72 bytes) is not what JWS sends */
    char *t = jwt_make(&ec, TSIG_ES256_DER, "{\"alg\":\"ES256\",\"kid\":\"ec-sig\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -EKEYREJECTED, "signature");
    free(t);
    /* 63 and 65 bytes */
    char *good = jwt_sign(&ec, pl);
    buf_t sig = BUF_INIT, b = BUF_INIT;
    char *dot = strrchr(good, '.');
    assert_int_equal(base64url_decode_append(&sig, dot + 1, strlen(dot + 1)), 0);
    assert_int_equal(sig.len, 64);
    for (int d = -1; d <= 1; d += 2) {
        buf_reset(&b);
        buf_append(&b, good, (size_t)(dot + 1 - good));
        unsigned char s2[65] = { 0 };
        memcpy(s2, sig.data, 64);
        base64url_append(&b, s2, (size_t)(64 + d));
        buf_putc(&b, '\0');
        expect(b.data, NULL, -EKEYREJECTED, "signature");
    }
    /* r or s zero, and a flipped bit */
    buf_reset(&b);
    buf_append(&b, good, (size_t)(dot + 1 - good));
    unsigned char z[64] = { 0 };
    base64url_append(&b, z, 64);
    buf_putc(&b, '\0');
    expect(b.data, NULL, -EKEYREJECTED, "signature");
    buf_reset(&b);
    buf_append(&b, good, (size_t)(dot + 1 - good));
    sig.data[10] ^= 1;
    base64url_append(&b, sig.data, 64);
    buf_putc(&b, '\0');
    expect(b.data, NULL, -EKEYREJECTED, "signature");
    /* RS256 with a signature one byte short */
    char *r = jwt_sign(&rsa, pl);
    buf_reset(&sig);
    dot = strrchr(r, '.');
    assert_int_equal(base64url_decode_append(&sig, dot + 1, strlen(dot + 1)), 0);
    buf_reset(&b);
    buf_append(&b, r, (size_t)(dot + 1 - r));
    base64url_append(&b, sig.data + 1, sig.len - 1);
    buf_putc(&b, '\0');
    expect(b.data, NULL, -EKEYREJECTED, "signature");
    buf_free(&sig);
    buf_free(&b);
    free(r);
    free(good);
    free(pl);
}

/* r and s as DER INTEGERs: a leading zero byte is dropped, a high bit gets a
 * 0x00 in front.  Sign until each case has come up and verify every token
 * (random signatures: the high bit half the time, a zero byte 1 in 128). */
static void test_es256_der_edges(void **state)
{
    int zero = 0, high = 0, n = 0;
    for (int i = 0; i < 20000 && (zero < 2 || high < 2); i++, n++) {
        char pl[256];
        snprintf(pl, sizeof pl, "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"exp\":%lld,\"iat\":%lld,\"i\":%d}",
                 NOW + 60, NOW, i);
        char *t = jwt_sign(&ec, pl);
        buf_t sig = BUF_INIT;
        const char *dot = strrchr(t, '.');
        assert_int_equal(base64url_decode_append(&sig, dot + 1, strlen(dot + 1)), 0);
        unsigned char r0 = (unsigned char)sig.data[0], s0 = (unsigned char)sig.data[32];
        zero += r0 == 0 || s0 == 0;
        high += (r0 & 0x80) && (s0 & 0x80);
        buf_free(&sig);
        jwt_policy_t p;
        policy(&p);
        p.nonce = NULL;
        nb_err_t err;
        if (jwt_verify(ks, t, strlen(t), &p, NULL, &err) != 0) fail_msg("token %d (r0 %02x s0 %02x): %s", i, r0, s0, err.msg);
        free(t);
    }
    printf("es256: %d tokens, %d with a zero leading byte, %d with both high bits\n", n, zero, high);
    assert_true(zero >= 2 && high >= 2);
}

static void test_huge_token(void **state)
{
    /* A valid signature over a 20 KiB payload is still refused, unread. */
    char *big = xmalloc(20000);
    memset(big, 'a', 19990);
    big[19990] = '\0';
    char *extra = xmalloc(20100);
    snprintf(extra, 20100, ",\"pad\":\"%s\"", big);
    char *pl = claims(ISS, "\"nbhub\"", NOW + 300, extra);
    char *t = jwt_sign(&rsa, pl);
    assert_true(strlen(t) > JWT_MAX_LEN);
    expect(t, NULL, -E2BIG, "size");
    free(t);
    free(pl);
    free(big);
    free(extra);
}

static void test_duplicate_members(void **state)
{
    char *pl = good_payload();
    /* "alg" twice: one parser could read RS256, another none */
    char *t = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\",\"kid\":\"rsa-sig\",\"alg\":\"none\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -EBADMSG, "header");
    free(t);
    t = jwt_make(&rsa, TSIG_AUTO, "{\"alg\":\"RS256\",\"kid\":\"rsa-sig\",\"kid\":\"other\"}", pl, NULL, 0, NULL);
    expect(t, NULL, -EBADMSG, "header");
    free(t);
    /* and in the claims: two "sub" */
    char *dup = claims(ISS, "\"nbhub\"", NOW + 300, ",\"sub\":\"admin\"");
    t = jwt_sign(&rsa, dup);
    expect(t, NULL, -EBADMSG, "claims");
    free(t);
    free(dup);
    free(pl);
    const char *pk = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.e30.AA";
    char *kid = jwt_peek_kid(pk, strlen(pk));
    assert_string_equal(kid, "k1");
    free(kid);
}

static char *logout_payload(const char *extra, long long iat)
{
    char *s = xmalloc(1024);
    snprintf(s, 1024,
             "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"j-1\",\"sid\":\"s-9\"%s}",
             iat, iat + 86400, extra);
    return s;
}

static void logout_expect(const char *pl, int code, const char *check)
{
    char *t = jwt_sign(&rsa, pl);
    jwt_policy_t p;
    policy(&p);
    nb_err_t err = { 0 };
    json_t *c = NULL;
    int rc = jwt_verify_logout(ks, t, strlen(t), &p, &c, &err);
    if (rc != code || (check && strncmp(err.msg, check, strlen(check))))
        fail_msg("expected %d %s, got %d \"%s\"", code, check ? check : "", rc, err.msg);
    if (rc == 0) assert_string_equal(json_string_value(json_object_get(c, "sid")), "s-9");
    json_decref(c);
    free(t);
}

#define EV ",\"events\":{\"http://schemas.openid.net/event/backchannel-logout\":{}}"

static void test_logout_token(void **state)
{
    char *pl;
    logout_expect(pl = logout_payload(EV, NOW - 5), 0, NULL), free(pl);
    /* a nonce: an ID token, not a logout token */
    logout_expect(pl = logout_payload(EV ",\"nonce\":\"n-123\"", NOW - 5), -EACCES, "nonce"), free(pl);
    logout_expect(pl = logout_payload("", NOW - 5), -EACCES, "events"), free(pl);
    logout_expect(pl = logout_payload(",\"events\":{\"other\":{}}", NOW - 5), -EACCES, "events"), free(pl);
    /* an old one (replayed long after) */
    logout_expect(pl = logout_payload(EV, NOW - 3600), -EKEYEXPIRED, "iat"), free(pl);
    /* neither sid nor sub */
    char *t = jwt_sign(&rsa, "{\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"iat\":1800000000,\"jti\":\"j\"" EV "}");
    jwt_policy_t p;
    policy(&p);
    nb_err_t err;
    assert_int_equal(jwt_verify_logout(ks, t, strlen(t), &p, NULL, &err), -EACCES);
    assert_memory_equal(err.msg, "sid:", 4);
    free(t);
    /* the ID token is not a logout token, and the other way round */
    pl = good_payload();
    t = jwt_sign(&rsa, pl);
    assert_int_equal(jwt_verify_logout(ks, t, strlen(t), &p, NULL, &err), -EACCES);
    free(t);
    free(pl);
    pl = logout_payload(EV, NOW - 5);
    t = jwt_sign(&rsa, pl);
    expect(t, NULL, -EACCES, "nonce");
    free(t);
    free(pl);
    /* wrong audience */
    t = jwt_sign(&rsa, "{\"iss\":\"" ISS "\",\"aud\":\"x\",\"iat\":1800000000,\"jti\":\"j\",\"sub\":\"u\"" EV "}");
    assert_int_equal(jwt_verify_logout(ks, t, strlen(t), &p, NULL, &err), -EACCES);
    assert_memory_equal(err.msg, "aud:", 4);
    free(t);
}

/* ---- the cache, over HTTP ------------------------------------------- */

typedef struct fx {
    uv_loop_t      loop;
    uv_timer_t     watch;
    http_server_t *srv;
    int            port;
    hclient_t     *hc;
    int            hits, stopped;
    char          *doc;       /* what /jwks serves */
} fx_t;

static void handler(http_req_t *req, void *ud)
{
    fx_t *f = ud;
    f->hits++;
    if (!strcmp(http_req_path(req), "/jwks")) http_respond(req, 200, "application/json", f->doc, strlen(f->doc));
    else http_respond(req, 404, "text/plain", "no", 2);
}

static void watch_tick(uv_timer_t *t) { (void)t; }

static int run_until(fx_t *f, const int *flag, int target, uint64_t max_ms)
{
    uint64_t end = time_mono_ms() + max_ms;
    uv_timer_start(&f->watch, watch_tick, 10, 10);
    while (*flag < target && time_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->watch);
    return *flag >= target;
}

static void set_flag(void *ud) { *(int *)ud = 1; }

static void srv_stopped(http_server_t *srv, void *ud)
{
    http_server_free(srv);
    ((fx_t *)ud)->stopped = 1;
}

static fx_t *fx_new(void)
{
    fx_t *f = xcalloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watch);
    struct http_limits lim;
    http_limits_default(&lim);
    lim.stop_timeout_ms = 500;
    f->srv = http_server_new(&f->loop, &lim, handler, f);
    nb_err_t err;
    assert_int_equal(http_server_listen(f->srv, "127.0.0.1:0", &err), 0);
    f->port = http_server_port(f->srv);
    f->hc = hclient_new(&f->loop);
    return f;
}

static void fx_free(fx_t *f)
{
    int done = 0;
    hclient_close(f->hc, set_flag, &done);
    http_server_stop(f->srv, srv_stopped, f);
    assert_true(run_until(f, &done, 1, 5000));
    assert_true(run_until(f, &f->stopped, 1, 5000));
    uv_close((uv_handle_t *)&f->watch, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->doc);
    free(f);
}

typedef struct vres {
    int   done, rc;
    char *user;
    char  msg[1024];
} vres_t;

static void on_verified(int rc, json_t *claims, const nb_err_t *err, void *ud)
{
    vres_t *v = ud;
    v->done++;
    v->rc = rc;
    if (claims) v->user = xstrdup(json_string_value(json_object_get(claims, "preferred_username")));
    if (rc < 0) memcpy(v->msg, err->msg, sizeof v->msg);
}

static void test_cache_rotation(void **state)
{
    fx_t *f = fx_new();
    char *k1 = tkey_jwk(&rsa, "sig", "RS256", NULL);
    f->doc = make_jwks((const char *const *)&k1, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/jwks", f->port);
    jwks_cache_t *c = jwks_cache_new(f->hc, url, 1500);
    jwt_policy_t p;
    policy(&p);
    char *pl = good_payload();
    char *t1 = jwt_sign(&rsa, pl), *t2 = jwt_sign(&rsa2, pl);
    nb_err_t err;
    json_t *cl = NULL;

    /* Garbage costs no fetch, even with no set yet. */
    assert_int_equal(jwks_cache_verify(c, "x.y.z", 5, &p, JWKS_ID_TOKEN, &cl, &err, on_verified, NULL), -EBADMSG);
    assert_int_equal(jwks_cache_fetches(c), 0);

    /* First use: the set is fetched, then the token verified. */
    vres_t v = { 0 };
    assert_int_equal(jwks_cache_verify(c, t1, strlen(t1), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, &v), -EINPROGRESS);
    assert_true(run_until(f, &v.done, 1, 5000));
    assert_int_equal(v.rc, 0);
    assert_string_equal(v.user, "alice");
    free(v.user);
    assert_int_equal(jwks_cache_fetches(c), 1);
    /* Warm: answered now, no fetch. */
    assert_int_equal(jwks_cache_verify(c, t1, strlen(t1), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, NULL), 0);
    json_decref(cl);

    /* The provider rotates: rsa-new is published beside rsa-sig.  Within
     * the cool-down the unknown kid is refused without a fetch ... */
    char *k2[2] = { tkey_jwk(&rsa2, "sig", "RS256", NULL), k1 };
    free(f->doc);
    f->doc = make_jwks((const char *const *)k2, 2);
    assert_int_equal(jwks_cache_verify(c, t2, strlen(t2), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, NULL), -ENOKEY);
    assert_memory_equal(err.msg, "kid:", 4);
    assert_int_equal(jwks_cache_fetches(c), 1);
    /* ... and after it, one fetch picks the new key up, no restart. */
    uv_sleep(1600);
    memset(&v, 0, sizeof v);
    assert_int_equal(jwks_cache_verify(c, t2, strlen(t2), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, &v), -EINPROGRESS);
    assert_true(run_until(f, &v.done, 1, 5000));
    assert_int_equal(v.rc, 0);
    free(v.user);
    assert_int_equal(jwks_cache_fetches(c), 2);
    assert_int_equal(f->hits, 2);

    /* A caller that cannot wait (cb NULL): refused now, fetched behind. */
    uv_sleep(1600);
    tkey_t third;
    tkey_gen(&third, 1, "ec-third");
    char *k3[3] = { tkey_jwk(&third, "sig", NULL, NULL), k2[0], k1 };
    free(f->doc);
    f->doc = make_jwks((const char *const *)k3, 3);
    char *t4 = jwt_sign(&third, pl);
    assert_int_equal(jwks_cache_verify(c, t4, strlen(t4), &p, JWKS_ID_TOKEN, &cl, &err, NULL, NULL), -ENOKEY);
    assert_int_equal(jwks_cache_fetches(c), 3);
    int hits = 3;
    assert_true(run_until(f, &f->hits, hits, 5000));
    for (int i = 0; i < 50 && !jwks_find(jwks_cache_keys(c), "ec-third"); i++) uv_run(&f->loop, UV_RUN_NOWAIT), uv_sleep(10);
    assert_int_equal(jwks_cache_verify(c, t4, strlen(t4), &p, JWKS_ID_TOKEN, &cl, &err, NULL, NULL), 0);
    json_decref(cl);
    free(t4);
    free(k3[0]);
    tkey_free(&third);

    /* After a fetch that still lacks the kid: -ENOKEY in the callback. */
    uv_sleep(1600);
    tkey_t stranger = ec;
    snprintf(stranger.kid, sizeof stranger.kid, "never");
    char *t3 = jwt_sign(&stranger, pl);
    memset(&v, 0, sizeof v);
    assert_int_equal(jwks_cache_verify(c, t3, strlen(t3), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, &v), -EINPROGRESS);
    assert_true(run_until(f, &v.done, 1, 5000));
    assert_int_equal(v.rc, -ENOKEY);
    assert_int_equal(jwks_cache_fetches(c), 4);

    jwks_cache_free(c);
    free(t1);
    free(t2);
    free(t3);
    free(pl);
    free(k1);
    free(k2[0]);
    fx_free(f);
}

static void test_cache_flood(void **state)
{
    fx_t *f = fx_new();
    char *k1 = tkey_jwk(&ec, "sig", NULL, NULL);
    f->doc = make_jwks((const char *const *)&k1, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/jwks", f->port);
    jwks_cache_t *c = jwks_cache_new(f->hc, url, 0); /* the default 60 s */
    jwt_policy_t p;
    policy(&p);
    char *pl = good_payload();
    /* 2000 validly-shaped tokens with random kids, in two waves: the first
     * wave joins the one fetch in flight, the second finds the cool-down. */
    enum { N = 2000 };
    vres_t *v = xcalloc(N, sizeof *v);
    int inprogress = 0, refused = 0, answered = 0;
    for (int wave = 0; wave < 2; wave++) {
        for (int i = wave * N / 2; i < (wave + 1) * N / 2; i++) {
            char hdr[96], tok[512];
            snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"rnd-%d-%d\"}", i, rand());
            char *t = jwt_make(NULL, TSIG_RAW, hdr, "{}", NULL, 0,
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
            snprintf(tok, sizeof tok, "%s", t);
            free(t);
            nb_err_t err;
            int rc = jwks_cache_verify(c, tok, strlen(tok), &p, JWKS_ID_TOKEN, NULL, &err, on_verified, &v[i]);
            if (rc == -EINPROGRESS) inprogress++;
            else if (rc == -ENOKEY) refused++;
        }
        if (wave == 0) {
            for (int i = 0; i < N / 2; i++)
                if (v[i].done == 0) assert_true(run_until(f, &v[i].done, 1, 5000));
        }
    }
    for (int i = 0; i < N; i++) answered += v[i].done;
    printf("flood: %d tokens, %d waited for the one fetch, %d refused at once, fetches %llu, server hits %d\n", N,
           inprogress, refused, (unsigned long long)jwks_cache_fetches(c), f->hits);
    assert_int_equal(inprogress, N / 2);
    assert_int_equal(refused, N / 2);
    assert_int_equal(answered, N / 2);
    for (int i = 0; i < N / 2; i++) assert_int_equal(v[i].rc, -ENOKEY);
    assert_int_equal(jwks_cache_fetches(c), 1);
    assert_int_equal(f->hits, 1);
    /* jwks_cache_refresh obeys the same cool-down */
    assert_int_equal(jwks_cache_refresh(c, NULL, NULL), -EBUSY);
    /* and the real token still verifies, from the cache */
    char *t = jwt_sign(&ec, pl);
    json_t *cl = NULL;
    nb_err_t err;
    assert_int_equal(jwks_cache_verify(c, t, strlen(t), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, NULL), 0);
    json_decref(cl);
    free(t);

    /* Freed with a fetch in flight: the waiter hears -ECANCELED. */
    jwks_cache_t *c2 = jwks_cache_new(f->hc, url, 0);
    char *t2 = jwt_sign(&ec, pl);
    vres_t w = { 0 };
    assert_int_equal(jwks_cache_verify(c2, t2, strlen(t2), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, &w), -EINPROGRESS);
    jwks_cache_free(c2);
    assert_int_equal(w.done, 1);
    assert_int_equal(w.rc, -ECANCELED);
    free(t2);

    /* A provider that answers 404: the callback hears -ENOKEY and why. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nothing", f->port);
    jwks_cache_t *c3 = jwks_cache_new(f->hc, url, 0);
    t2 = jwt_sign(&ec, pl);
    memset(&w, 0, sizeof w);
    assert_int_equal(jwks_cache_verify(c3, t2, strlen(t2), &p, JWKS_ID_TOKEN, &cl, &err, on_verified, &w), -EINPROGRESS);
    assert_true(run_until(f, &w.done, 1, 5000));
    assert_int_equal(w.rc, -ENOKEY);
    assert_non_null(strstr(w.msg, "HTTP 404"));
    jwks_cache_free(c3);
    free(t2);

    jwks_cache_free(c);
    free(v);
    free(pl);
    free(k1);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_rs256_es256),
        cmocka_unit_test(test_alg_none_and_hs256),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_jwks_enc_first),
        cmocka_unit_test(test_iss_aud_azp),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_garbled),
        cmocka_unit_test(test_es256_signature_length),
        cmocka_unit_test(test_es256_der_edges),
        cmocka_unit_test(test_huge_token),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_logout_token),
        cmocka_unit_test(test_cache_rotation),
        cmocka_unit_test(test_cache_flood),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
