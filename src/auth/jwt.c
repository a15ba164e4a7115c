/*
 * jwt — see jwt.h for what is checked and in which order.
 *
 * Why the header is parsed strictly (duplicate members refused, "crit"
 * refused): two parsers reading one header differently is how "alg"
 * confusion attacks start — a token whose header says "alg" twice could be
 * verified under one and logged under the other.  Why "none" and HS* are
 * refused before looking at the policy: HS256 with the provider's public
 * key as the HMAC secret is the classic forgery against libraries that
 * pick the algorithm from the token; the key table (jwks.c) holds only
 * public keys, and nothing here computes an HMAC, but a configuration
 * typo must not be able to open that door either.
 *
 * The signature is checked before any claim is read, so the claims parser
 * only ever sees bytes the provider signed.  Timing: a warm verification is
 * one base64url pass over the token, two small JSON parses, a SHA-256 and
 * one EVP_PKEY_verify on a context prepared when the JWKS was read
 * (jwks.c), which saves OpenSSL 3's per-call fetches of EVP_DigestVerify
 * (~2.5 us); bench/sso/ measures it.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "auth/jwks.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

#define BACKCHANNEL_EVENT "http://schemas.openid.net/event/backchannel-logout"

typedef enum { KIND_ID, KIND_LOGOUT } kind_t;

void jwt_policy_init(jwt_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->algs = JWT_ALG_DEFAULT;
    p->leeway_s = JWT_LEEWAY_S;
}

/* A value from a token, fit for a log line: printable ASCII without quotes
 * or backslashes, at most n - 1 bytes (the token is the attacker's text). */
static const char *printable(const char *s, char *out, size_t n)
{
    size_t o = 0;
    for (; s && *s && o + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        out[o++] = (c > 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}

/* The three parts of a compact JWS: header.payload.signature. */
typedef struct {
    const char *p[3];
    size_t      n[3];
} parts_t;

static int split(const char *tok, size_t len, parts_t *pt, nb_err_t *err)
{
    if (len > JWT_MAX_LEN) return err_set(err, -E2BIG, "size: token of %zu bytes (limit %d)", len, JWT_MAX_LEN);
    if (!tok || len == 0) return err_set(err, -EBADMSG, "format: empty token");
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2) return err_set(err, -EBADMSG, "format: not three dot-separated parts");
    if (memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return err_set(err, -EBADMSG, "format: more than three parts (a JWE or nested token?)");
    pt->p[0] = tok;
    pt->n[0] = (size_t)(d1 - tok);
    pt->p[1] = d1 + 1;
    pt->n[1] = (size_t)(d2 - d1 - 1);
    pt->p[2] = d2 + 1;
    pt->n[2] = len - (size_t)(d2 + 1 - tok);
    if (!pt->n[0] || !pt->n[1] || !pt->n[2]) return err_set(err, -EBADMSG, "format: an empty part");
    return 0;
}

/* base64url-decode one part and parse it as a JSON object, refusing
 * duplicate members.  what names the part in the error ("header", "claims"). */
static int part_object(const char *p, size_t n, const char *what, json_t **out, nb_err_t *err)
{
    buf_t b = BUF_INIT;
    if (base64url_decode_append(&b, p, n) < 0) {
        buf_free(&b);
        return err_set(err, -EBADMSG, "%s: not base64url", what);
    }
    json_error_t je;
    json_t *j = jparse(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
    buf_free(&b);
    if (!j) return err_set(err, -EBADMSG, "%s: not JSON (%s)", what, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(err, -EBADMSG, "%s: not a JSON object", what);
    }
    *out = j;
    return 0;
}

/* The header's alg as a bit, after the checks every policy shares. */
static int header_alg(json_t *hdr, const jwt_policy_t *p, const char **alg_out, nb_err_t *err)
{
    char pr[48];
    json_t *a = json_object_get(hdr, "alg");
    if (!json_is_string(a)) return err_set(err, -EBADMSG, "header: alg missing or not a string");
    const char *alg = json_string_value(a);
    if (!strcasecmp(alg, "none")) return err_set(err, -ENOTSUP, "alg: none is never accepted");
    if (!strncasecmp(alg, "HS", 2))
        return err_set(err, -ENOTSUP, "alg: %s (a shared-secret MAC) is never accepted", printable(alg, pr, sizeof pr));
    unsigned bit = !strcmp(alg, "RS256") ? JWT_ALG_RS256 : !strcmp(alg, "ES256") ? JWT_ALG_ES256 : 0;
    unsigned allowed = p->algs ? p->algs : JWT_ALG_DEFAULT;
    if (!bit) return err_set(err, -ENOTSUP, "alg: %s is not supported", printable(alg, pr, sizeof pr));
    if (!(bit & allowed)) return err_set(err, -ENOTSUP, "alg: %s is not allowed by the configuration", alg);
    /* crit names extensions the verifier must understand; we understand none. */
    if (json_object_get(hdr, "crit")) return err_set(err, -ENOTSUP, "alg: header has crit (unsupported extensions)");
    *alg_out = alg;
    return (int)bit;
}

/* One INTEGER of an ECDSA-Sig-Value: minimal (leading zero bytes dropped)
 * and positive (a 0x00 in front of a high bit).  Returns bytes written. */
static size_t der_int(unsigned char *out, const unsigned char *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = v[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    if (pad) out[2] = 0;
    memcpy(out + 2 + pad, v, n);
    return 2 + pad + n;
}

/* ES256 signs as raw r||s (RFC 7518 3.4); OpenSSL verifies DER
 * ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }.  Written by hand (at
 * most 72 bytes, all lengths short-form) rather than through ECDSA_SIG and
 * two BIGNUMs: this runs for every ES256 token.  Zero r or s still encode,
 * and OpenSSL refuses them. */
static size_t es256_der(const unsigned char rs[64], unsigned char der[72])
{
    size_t n = 2;
    n += der_int(der + n, rs, 32);
    n += der_int(der + n, rs + 32, 32);
    der[0] = 0x30;
    der[1] = (unsigned char)(n - 2);
    return n;
}

static int check_signature(const jwk_t *k, unsigned bit, const parts_t *pt, nb_err_t *err)
{
    buf_t sig = BUF_INIT;
    if (base64url_decode_append(&sig, pt->p[2], pt->n[2]) < 0) {
        buf_free(&sig);
        return err_set(err, -EBADMSG, "format: signature not base64url");
    }
    const unsigned char *s = (const unsigned char *)sig.data;
    size_t slen = sig.len;
    unsigned char der[72];
    int rc = 0;
    if (bit == JWT_ALG_ES256) {
        if (slen != 64) {
            rc = err_set(err, -EKEYREJECTED, "signature: ES256 signature of %zu bytes (must be 64)", slen);
            goto out;
        }
        slen = es256_der(s, der);
        s = der;
    } else if ((int)slen != EVP_PKEY_get_size(k->pkey)) {
        /* RFC 7518 3.3: the signature is exactly k bytes; OpenSSL would
         * also take a shorter one with leading zeros stripped. */
        rc = err_set(err, -EKEYREJECTED, "signature: RS256 signature of %zu bytes (key has %d)", slen,
                     EVP_PKEY_get_size(k->pkey));
        goto out;
    }
    /* SHA-256 of the signing input, then the key's prepared verify context
     * (jwks.c: PKCS#1 v1.5 or ECDSA, SHA-256, set up once per key). */
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)pt->p[0], pt->n[0] + 1 + pt->n[1], md);
    if (EVP_PKEY_verify(k->vctx, s, slen, md, sizeof md) != 1) {
        ERR_clear_error();
        rc = err_set(err, -EKEYREJECTED, "signature: does not verify");
    }
out:
    buf_free(&sig);
    return rc;
}

/* A NumericDate claim as seconds; 0 absent, 1 present, -1 not a number. */
static int num_claim(json_t *c, const char *name, int64_t *v)
{
    json_t *j = json_object_get(c, name);
    if (!j) return 0;
    if (!json_is_number(j)) return -1;
    double d = json_number_value(j);
    if (!isfinite(d) || d > 9.0e15 || d < -9.0e15) return -1;
    *v = (int64_t)floor(d);
    return 1;
}

static int check_aud(json_t *c, const jwt_policy_t *p, size_t *naud, nb_err_t *err)
{
    char pr[64];
    json_t *aud = json_object_get(c, "aud");
    int found = 0;
    if (json_is_string(aud)) {
        *naud = 1;
        found = !strcmp(json_string_value(aud), p->audience);
    } else if (json_is_array(aud) && json_array_size(aud) > 0) {
        size_t i;
        json_t *v;
        *naud = json_array_size(aud);
        json_array_foreach(aud, i, v) {
            if (!json_is_string(v)) return err_set(err, -EBADMSG, "aud: an array member is not a string");
            if (!strcmp(json_string_value(v), p->audience)) found = 1;
        }
    } else {
        return err_set(err, -EACCES, "aud: missing, empty or not a string or array");
    }
    if (!found) return err_set(err, -EACCES, "aud: does not contain %s", printable(p->audience, pr, sizeof pr));
    return 0;
}

static int check_claims(json_t *c, const jwt_policy_t *p, kind_t kind, nb_err_t *err)
{
    char pr[64];
    json_t *iss = json_object_get(c, "iss");
    if (!json_is_string(iss)) return err_set(err, -EACCES, "iss: missing or not a string");
    if (strcmp(json_string_value(iss), p->issuer))
        return err_set(err, -EACCES, "iss: %s is not the configured issuer", printable(json_string_value(iss), pr, sizeof pr));
    size_t naud = 0;
    int rc = check_aud(c, p, &naud, err);
    if (rc < 0) return rc;
    json_t *azp = json_object_get(c, "azp");
    if (azp && !json_is_string(azp)) return err_set(err, -EBADMSG, "azp: not a string");
    if (kind == KIND_ID && p->client_id) {
        if (naud > 1 && !azp) return err_set(err, -EACCES, "azp: missing while aud has %zu values", naud);
        if (azp && strcmp(json_string_value(azp), p->client_id))
            return err_set(err, -EACCES, "azp: %s is not the client", printable(json_string_value(azp), pr, sizeof pr));
    }

    int64_t now = p->now ? p->now : (int64_t)time(NULL), lw = p->leeway_s < 0 ? 0 : p->leeway_s;
    int64_t exp = 0, nbf = 0, iat = 0;
    int he = num_claim(c, "exp", &exp), hn = num_claim(c, "nbf", &nbf), hi = num_claim(c, "iat", &iat);
    if (he < 0 || hn < 0 || hi < 0) return err_set(err, -EBADMSG, "claims: exp, nbf or iat is not a number");
    if (!he && kind == KIND_ID) return err_set(err, -EKEYEXPIRED, "exp: missing");
    if (he && now >= exp + lw) return err_set(err, -EKEYEXPIRED, "exp: expired %lld s ago", (long long)(now - exp));
    if (hn && now + lw < nbf) return err_set(err, -EKEYEXPIRED, "nbf: not valid for another %lld s", (long long)(nbf - now));
    if (!hi) return err_set(err, -EKEYEXPIRED, "iat: missing");
    if (iat > now + lw) return err_set(err, -EKEYEXPIRED, "iat: issued %lld s in the future", (long long)(iat - now));
    int64_t max_age = p->max_age_s > 0 ? p->max_age_s : kind == KIND_LOGOUT ? JWT_LOGOUT_MAX_AGE_S : 0;
    if (max_age && now - iat > max_age + lw)
        return err_set(err, -EKEYEXPIRED, "iat: issued %lld s ago (limit %lld)", (long long)(now - iat), (long long)max_age);

    json_t *nonce = json_object_get(c, "nonce");
    if (kind == KIND_LOGOUT) {
        if (nonce) return err_set(err, -EACCES, "nonce: a logout token must not hold one");
        json_t *ev = json_object_get(c, "events");
        if (!json_is_object(ev) || !json_is_object(json_object_get(ev, BACKCHANNEL_EVENT)))
            return err_set(err, -EACCES, "events: no back-channel logout event");
        json_t *sid = json_object_get(c, "sid"), *sub = json_object_get(c, "sub");
        if ((sid && !json_is_string(sid)) || (sub && !json_is_string(sub)))
            return err_set(err, -EBADMSG, "sid: sid or sub is not a string");
        if (!sid && !sub) return err_set(err, -EACCES, "sid: neither sid nor sub");
        if (!json_is_string(json_object_get(c, "jti"))) return err_set(err, -EACCES, "jti: missing");
        return 0;
    }
    if (p->nonce) {
        if (!json_is_string(nonce)) return err_set(err, -EACCES, "nonce: missing");
        size_t a = json_string_length(nonce), b = strlen(p->nonce);
        if (a != b || CRYPTO_memcmp(json_string_value(nonce), p->nonce, a))
            return err_set(err, -EACCES, "nonce: does not match the login's");
    }
    if (p->typ) {
        json_t *t = json_object_get(c, "typ");
        if (!json_is_string(t) || strcmp(json_string_value(t), p->typ))
            return err_set(err, -EACCES, "typ: not %s", printable(p->typ, pr, sizeof pr));
    }
    return 0;
}

static int verify(const jwks_t *ks, const char *tok, size_t len, const jwt_policy_t *p, kind_t kind,
                  json_t **claims, nb_err_t *err)
{
    char pr[80];
    if (claims) *claims = NULL;
    if (!p || !p->issuer || !p->audience) return err_set(err, -EINVAL, "policy: issuer and audience are required");
    parts_t pt;
    int rc = split(tok, len, &pt, err);
    if (rc < 0) return rc;
    json_t *hdr = NULL, *c = NULL;
    if ((rc = part_object(pt.p[0], pt.n[0], "header", &hdr, err)) < 0) return rc;
    const char *alg = NULL;
    int bit = header_alg(hdr, p, &alg, err);
    if (bit < 0) {
        rc = bit;
        goto out;
    }
    json_t *kid = json_object_get(hdr, "kid");
    if (!json_is_string(kid) || !json_string_length(kid)) {
        rc = err_set(err, -ENOKEY, "kid: the header names no key");
        goto out;
    }
    const jwk_t *k = ks ? jwks_find(ks, json_string_value(kid)) : NULL;
    if (!k) {
        rc = err_set(err, -ENOKEY, "kid: no signing key %s", printable(json_string_value(kid), pr, sizeof pr));
        goto out;
    }
    if (k->alg && strcmp(k->alg, alg)) {
        rc = err_set(err, -EKEYREJECTED, "key: %s is for %s, the token says %s", printable(k->kid, pr, sizeof pr), k->alg, alg);
        goto out;
    }
    if ((bit == JWT_ALG_RS256) != (k->kty == JWK_RSA)) {
        rc = err_set(err, -EKEYREJECTED, "key: %s is not a key for %s", printable(k->kid, pr, sizeof pr), alg);
        goto out;
    }
    if ((rc = check_signature(k, (unsigned)bit, &pt, err)) < 0) goto out;
    if ((rc = part_object(pt.p[1], pt.n[1], "claims", &c, err)) < 0) goto out;
    if ((rc = check_claims(c, p, kind, err)) < 0) goto out;
    if (claims) {
        *claims = c;
        c = NULL;
    }
out:
    json_decref(hdr);
    json_decref(c);
    return rc;
}

int jwt_verify(const jwks_t *ks, const char *token, size_t len, const jwt_policy_t *p, json_t **claims, nb_err_t *err)
{
    return verify(ks, token, len, p, KIND_ID, claims, err);
}

int jwt_verify_logout(const jwks_t *ks, const char *token, size_t len, const jwt_policy_t *p, json_t **claims,
                      nb_err_t *err)
{
    return verify(ks, token, len, p, KIND_LOGOUT, claims, err);
}

char *jwt_peek_kid(const char *token, size_t len)
{
    parts_t pt;
    json_t *hdr = NULL;
    if (split(token, len, &pt, NULL) < 0 || part_object(pt.p[0], pt.n[0], "header", &hdr, NULL) < 0) return NULL;
    json_t *kid = json_object_get(hdr, "kid");
    char *r = json_is_string(kid) && json_string_length(kid) ? xstrdup(json_string_value(kid)) : NULL;
    json_decref(hdr);
    return r;
}
