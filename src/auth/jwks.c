/*
 * jwks — see jwks.h.
 *
 * Keys become EVP_PKEYs once, when the document is read
 * (EVP_PKEY_fromdata from RSA n/e or the P-256 point x/y), so verifying a
 * token costs one EVP_DigestVerify and no key parsing.  A kid that names
 * two signing keys in one document names neither: choosing one of them
 * would be "the first key" by another name.
 *
 * The cache's fetch is shared: whoever finds the kid unknown while a fetch
 * is in flight waits for that one.  Waiters are a list of what to do when
 * the answer comes (tell a jwks_cache_refresh caller, or verify a token
 * again); the token and policy are copied into the waiter because the
 * caller's request may be gone by then.
 */
#include "auth/jwks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <uv.h>

#include "auth/jwt.h"
#include "http/hclient.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/xmalloc.h"

struct jwks {
    size_t n;
    jwk_t  keys[JWKS_MAX_KEYS];
};

static void jwk_clear(jwk_t *k)
{
    free(k->kid);
    free(k->alg);
    EVP_PKEY_CTX_free(k->vctx);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

/* A base64url member of a JWK as bytes into b; -1 when absent or bad. */
static int b64_member(json_t *jk, const char *name, buf_t *b)
{
    json_t *v = json_object_get(jk, name);
    if (!json_is_string(v)) return -1;
    buf_reset(b);
    return base64url_decode_append(b, json_string_value(v), json_string_length(v));
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pk) {
        /* The EC point on the curve, RSA's n odd and e sane: checked once here. */
        EVP_PKEY_CTX *cc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        int ok = cc && EVP_PKEY_public_check(cc) == 1;
        EVP_PKEY_CTX_free(cc);
        if (!ok) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    }
    return pk;
}

static EVP_PKEY *rsa_key(json_t *jk)
{
    buf_t n = BUF_INIT, e = BUF_INIT;
    EVP_PKEY *pk = NULL;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (b64_member(jk, "n", &n) < 0 || b64_member(jk, "e", &e) < 0 || !n.len || !e.len || e.len > 8) goto out;
    bn = BN_bin2bn((const unsigned char *)n.data, (int)n.len, NULL);
    be = BN_bin2bn((const unsigned char *)e.data, (int)e.len, NULL);
    /* Below 2048 bits is not a key a provider should sign with today; above
     * 8192 only makes every verification slow. */
    if (!bn || !be || BN_num_bits(bn) < 2048 || BN_num_bits(bn) > 8192) goto out;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    pk = from_params("RSA", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    buf_free(&n);
    buf_free(&e);
    return pk;
}

static EVP_PKEY *ec_key(json_t *jk)
{
    json_t *crv = json_object_get(jk, "crv");
    if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256")) return NULL;
    buf_t x = BUF_INIT, y = BUF_INIT;
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (b64_member(jk, "x", &x) < 0 || b64_member(jk, "y", &y) < 0 || x.len != 32 || y.len != 32) goto out;
    unsigned char pt[65];
    pt[0] = 0x04; /* uncompressed point: 04 || x || y */
    memcpy(pt + 1, x.data, 32);
    memcpy(pt + 33, y.data, 32);
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt))
        goto out;
    pk = from_params("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    buf_free(&x);
    buf_free(&y);
    return pk;
}

/* One member of "keys" into k; 0 kept, -1 skipped (not a signing key we
 * understand, or malformed). */
static int parse_key(json_t *jk, jwk_t *k)
{
    if (!json_is_object(jk)) return -1;
    json_t *kty = json_object_get(jk, "kty"), *use = json_object_get(jk, "use"), *ops = json_object_get(jk, "key_ops"),
           *kid = json_object_get(jk, "kid"), *alg = json_object_get(jk, "alg");
    if (!json_is_string(kty)) return -1;
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig"))) return -1;
    if (ops) {
        size_t i;
        json_t *v;
        int verify = 0;
        if (!json_is_array(ops)) return -1;
        json_array_foreach(ops, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), "verify")) verify = 1;
        if (!verify) return -1;
    }
    if ((kid && !json_is_string(kid)) || (alg && !json_is_string(alg))) return -1;
    memset(k, 0, sizeof *k);
    if (!strcmp(json_string_value(kty), "RSA")) {
        k->kty = JWK_RSA;
        k->pkey = rsa_key(jk);
    } else if (!strcmp(json_string_value(kty), "EC")) {
        k->kty = JWK_EC_P256;
        k->pkey = ec_key(jk);
    }
    if (!k->pkey) return -1;
    /* The verify context, once: OpenSSL 3 fetches the algorithms on every
     * EVP_DigestVerifyInit; a context set up here verifies digest after
     * digest (EVP_PKEY_verify keeps no state between calls). */
    k->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    if (!k->vctx || EVP_PKEY_verify_init(k->vctx) != 1 ||
        (k->kty == JWK_RSA && EVP_PKEY_CTX_set_rsa_padding(k->vctx, RSA_PKCS1_PADDING) != 1) ||
        EVP_PKEY_CTX_set_signature_md(k->vctx, EVP_sha256()) != 1) {
        jwk_clear(k);
        return -1;
    }
    k->kid = xstrdup(kid ? json_string_value(kid) : "");
    k->alg = alg ? xstrdup(json_string_value(alg)) : NULL;
    return 0;
}

int jwks_parse(const char *doc, size_t len, jwks_t **out, nb_err_t *err)
{
    *out = NULL;
    if (len > JWKS_MAX_DOC) return err_set(err, -E2BIG, "jwks: document of %zu bytes (limit %u)", len, JWKS_MAX_DOC);
    json_error_t je;
    json_t *j = jparse(doc ? doc : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return err_set(err, -EBADMSG, "jwks: not JSON (%s)", je.text);
    json_t *keys = json_object_get(j, "keys");
    if (!json_is_object(j) || !json_is_array(keys)) {
        json_decref(j);
        return err_set(err, -EBADMSG, "jwks: not an object with a keys array");
    }
    jwks_t *ks = xcalloc(1, sizeof *ks);
    size_t i;
    json_t *jk;
    json_array_foreach(keys, i, jk) {
        if (ks->n == JWKS_MAX_KEYS) break;
        if (parse_key(jk, &ks->keys[ks->n]) == 0) ks->n++;
    }
    json_decref(j);
    /* A kid that names two keys names none (see the top of the file). */
    for (size_t a = 0; a < ks->n; a++) {
        int dup = 0;
        for (size_t b = a + 1; b < ks->n; b++) {
            if (*ks->keys[a].kid && !strcmp(ks->keys[a].kid, ks->keys[b].kid)) {
                jwk_clear(&ks->keys[b]);
                ks->keys[b] = ks->keys[--ks->n];
                b--;
                dup = 1;
            }
        }
        if (dup) {
            jwk_clear(&ks->keys[a]);
            ks->keys[a] = ks->keys[--ks->n];
            a--;
        }
    }
    *out = ks;
    return 0;
}

void jwks_free(jwks_t *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->n; i++) jwk_clear(&ks->keys[i]);
    free(ks);
}

size_t jwks_count(const jwks_t *ks) { return ks ? ks->n : 0; }

const jwk_t *jwks_key(const jwks_t *ks, size_t i) { return ks && i < ks->n ? &ks->keys[i] : NULL; }

const jwk_t *jwks_find(const jwks_t *ks, const char *kid)
{
    if (!ks || !kid || !*kid) return NULL;
    for (size_t i = 0; i < ks->n; i++)
        if (!strcmp(ks->keys[i].kid, kid)) return &ks->keys[i];
    return NULL;
}

/* ---- the cache -------------------------------------------------------- */

typedef struct waiter {
    struct waiter    *next;
    jwks_refresh_fn   rcb;      /* a jwks_cache_refresh caller, or */
    jwks_verify_fn    vcb;      /* a token to verify again */
    void             *ud;
    char             *token;
    size_t            len;
    jwks_token_kind_t kind;
    jwt_policy_t      pol;      /* strings below are the waiter's copies */
    char             *issuer, *audience, *client_id, *nonce, *typ;
} waiter_t;

/* The fetch in flight: it outlives a freed cache (hclient calls back later). */
typedef struct fetch {
    jwks_cache_t *c;            /* NULL once the cache is freed */
} fetch_t;

struct jwks_cache {
    hclient_t *hc;
    char      *uri;
    uint64_t   cooldown_ms;
    jwks_t    *ks;
    int        fetched_once;    /* a fetch (or set) has started: the cool-down applies */
    uint64_t   last_start_ms;   /* when the last fetch started (monotonic) */
    uint64_t   set_at_ms;       /* when ks was installed */
    uint64_t   fetches;
    fetch_t   *inflight;
    waiter_t  *waiters;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

jwks_cache_t *jwks_cache_new(hclient_t *hc, const char *jwks_uri, uint64_t cooldown_ms)
{
    jwks_cache_t *c = xcalloc(1, sizeof *c);
    c->hc = hc;
    c->uri = xstrdup(jwks_uri);
    c->cooldown_ms = cooldown_ms ? cooldown_ms : JWKS_COOLDOWN_MS;
    return c;
}

static void waiter_free(waiter_t *w)
{
    free(w->token);
    free(w->issuer);
    free(w->audience);
    free(w->client_id);
    free(w->nonce);
    free(w->typ);
    free(w);
}

/* Answer every waiter with the cache's present state (rc: the fetch's). */
static void answer_waiters(jwks_cache_t *c, waiter_t *list, int rc, const nb_err_t *ferr)
{
    while (list) {
        waiter_t *w = list;
        list = w->next;
        if (w->rcb) {
            w->rcb(rc, w->ud);
        } else if (!c) {
            nb_err_t e;
            err_set(&e, -ECANCELED, "kid: the key cache was closed");
            w->vcb(-ECANCELED, NULL, &e, w->ud);
        } else {
            nb_err_t e = { 0 };
            json_t *claims = NULL;
            int vr = w->kind == JWKS_LOGOUT_TOKEN ? jwt_verify_logout(c->ks, w->token, w->len, &w->pol, &claims, &e)
                                                  : jwt_verify(c->ks, w->token, w->len, &w->pol, &claims, &e);
            if (vr == -ENOKEY && rc < 0 && ferr)
                err_set(&e, -ENOKEY, "kid: unknown, and the key set could not be fetched (%s)", ferr->msg);
            w->vcb(vr, claims, &e, w->ud);
            json_decref(claims);
        }
        waiter_free(w);
    }
}

void jwks_cache_free(jwks_cache_t *c)
{
    if (!c) return;
    if (c->inflight) c->inflight->c = NULL;
    waiter_t *w = c->waiters;
    c->waiters = NULL;
    answer_waiters(NULL, w, -ECANCELED, NULL);
    jwks_free(c->ks);
    free(c->uri);
    free(c);
}

static void install(jwks_cache_t *c, jwks_t *ks)
{
    jwks_free(c->ks);
    c->ks = ks;
    c->set_at_ms = now_ms();
}

int jwks_cache_set(jwks_cache_t *c, const char *doc, size_t len, nb_err_t *err)
{
    jwks_t *ks;
    int rc = jwks_parse(doc, len, &ks, err);
    if (rc < 0) return rc;
    install(c, ks);
    c->fetched_once = 1;
    c->last_start_ms = now_ms();
    return 0;
}

const jwks_t *jwks_cache_keys(const jwks_cache_t *c) { return c->ks; }

uint64_t jwks_cache_fetches(const jwks_cache_t *c) { return c->fetches; }

static void on_fetched(const hclient_resp_t *r, void *ud)
{
    fetch_t *f = ud;
    jwks_cache_t *c = f->c;
    free(f);
    if (!c) return; /* freed meanwhile; its waiters were answered then */
    c->inflight = NULL;
    nb_err_t e = { 0 };
    int rc;
    jwks_t *ks = NULL;
    if (r->code < 0)
        rc = err_set(&e, r->code, "jwks: fetch failed: %s", r->error ? r->error : "error");
    else if (r->status != 200)
        rc = err_set(&e, -EIO, "jwks: fetch answered HTTP %d", r->status);
    else
        rc = jwks_parse(r->body, r->body_len, &ks, &e);
    if (rc == 0) install(c, ks);
    waiter_t *w = c->waiters;
    c->waiters = NULL;
    answer_waiters(c, w, rc, &e);
}

/* Start a fetch if none is in flight and the cool-down allows; join it with
 * w (may be NULL: a background refresh).  0, -EBUSY, or hclient's error. */
static int start_fetch(jwks_cache_t *c, waiter_t *w)
{
    if (!c->inflight) {
        uint64_t now = now_ms();
        if (c->fetched_once && now - c->last_start_ms < c->cooldown_ms) return -EBUSY;
        static const char *const hdrs[] = { "Accept: application/json", NULL };
        fetch_t *f = xcalloc(1, sizeof *f);
        f->c = c;
        int rc = hclient_get(c->hc, c->uri, hdrs, JWKS_MAX_DOC, 10000, on_fetched, f);
        if (rc < 0) {
            free(f);
            return rc;
        }
        c->inflight = f;
        c->fetched_once = 1;
        c->last_start_ms = now;
        c->fetches++;
    }
    if (w) {
        w->next = c->waiters;
        c->waiters = w;
    }
    return 0;
}

int jwks_cache_refresh(jwks_cache_t *c, jwks_refresh_fn cb, void *ud)
{
    if (!cb) return start_fetch(c, NULL);
    waiter_t *w = xcalloc(1, sizeof *w);
    w->rcb = cb;
    w->ud = ud;
    int rc = start_fetch(c, w);
    if (rc < 0) waiter_free(w);
    return rc;
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

int jwks_cache_verify(jwks_cache_t *c, const char *token, size_t len, const jwt_policy_t *policy,
                      jwks_token_kind_t kind, json_t **claims, nb_err_t *err, jwks_verify_fn cb, void *ud)
{
    int rc = kind == JWKS_LOGOUT_TOKEN ? jwt_verify_logout(c->ks, token, len, policy, claims, err)
                                       : jwt_verify(c->ks, token, len, policy, claims, err);
    if (rc != -ENOKEY) {
        /* A set kept too long is renewed behind the answer (no one waits). */
        if (c->ks && !c->inflight && now_ms() - c->set_at_ms > JWKS_MAX_AGE_MS) (void)start_fetch(c, NULL);
        return rc;
    }
    char *kid = jwt_peek_kid(token, len);
    if (!kid) return rc; /* no kid at all: no fetch can help */
    free(kid);
    if (!cb) {
        /* A caller that cannot wait: refused now, the set renewed behind it. */
        (void)start_fetch(c, NULL);
        return rc;
    }
    waiter_t *w = xcalloc(1, sizeof *w);
    w->vcb = cb;
    w->ud = ud;
    w->token = xmalloc(len + 1);
    memcpy(w->token, token, len);
    w->token[len] = '\0';
    w->len = len;
    w->kind = kind;
    w->pol = *policy;
    w->pol.issuer = w->issuer = dup_or_null(policy->issuer);
    w->pol.audience = w->audience = dup_or_null(policy->audience);
    w->pol.client_id = w->client_id = dup_or_null(policy->client_id);
    w->pol.nonce = w->nonce = dup_or_null(policy->nonce);
    w->pol.typ = w->typ = dup_or_null(policy->typ);
    int fr = start_fetch(c, w);
    if (fr == -EBUSY) {
        waiter_free(w);
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err ? err->msg : "kid: unknown");
        return err_set(err, -ENOKEY, "%.900s (key set fetched less than %llu s ago)", why,
                       (unsigned long long)(c->cooldown_ms / 1000));
    }
    if (fr < 0) {
        waiter_free(w);
        return err_set(err, -ENOKEY, "kid: unknown, and the key set could not be fetched (%d)", fr);
    }
    return -EINPROGRESS;
}
