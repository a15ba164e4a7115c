/*
 * oidc.c — discovery, logins in progress, the token endpoint, identities
 * (oidc.h explains the rules).
 */
#include "auth/oidc.h"
#include "auth/oauth.h"
#include "auth/token.h"
#include "http/hclient.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DISCOVERY_MAX   (256u * 1024)
#define TOKEN_RESP_MAX  (256u * 1024)
#define HTTP_TIMEOUT_MS 15000

struct pending {
    char    state[OIDC_STATE_LEN + 1];
    int64_t created_us;
    oidc_login_t l;
};

struct oidc {
    uv_loop_t         *loop;
    hclient_t         *hc;
    const oidc_conf_t *conf;
    uv_timer_t        *retry;          /* discovery back-off; NULL when not running */
    uint64_t           retry_ms;
    int                ready, fetching, freed, stopped;
    unsigned           discoveries;
    char              *authz_ep, *token_ep, *end_session_ep, *device_ep, *jwks_uri;
    int                auth_post;      /* client_secret_post rather than _basic */
    jwks_cache_t      *jwks;
    struct pending    *logins;         /* oldest first */
    size_t             nlogins;
};

static void oidc_discover(oidc_t *o);

oidc_t *oidc_new(uv_loop_t *loop, hclient_t *hc, const oidc_conf_t *conf)
{
    oidc_t *o = xcalloc(1, sizeof *o);
    o->loop = loop;
    o->hc = hc;
    o->conf = conf;
    o->retry_ms = 1000;
    return o;
}

const oidc_conf_t *oidc_conf(const oidc_t *o) { return o->conf; }
int oidc_ready(const oidc_t *o) { return o->ready; }
const char *oidc_end_session_endpoint(const oidc_t *o) { return o->end_session_ep; }
const char *oidc_device_endpoint(const oidc_t *o) { return o->device_ep; }
const char *oidc_token_endpoint(const oidc_t *o) { return o->token_ep; }
jwks_cache_t *oidc_jwks(oidc_t *o) { return o->jwks; }
unsigned oidc_discoveries(const oidc_t *o) { return o->discoveries; }
size_t oidc_logins(const oidc_t *o) { return o->nlogins; }

static void timer_closed(uv_handle_t *h) { free(h); }

static void oidc_destroy(oidc_t *o)
{
    for (size_t i = 0; i < o->nlogins; i++) oidc_login_clear(&o->logins[i].l);
    free(o->logins);
    if (o->jwks) jwks_cache_free(o->jwks);
    free(o->authz_ep);
    free(o->token_ep);
    free(o->end_session_ep);
    free(o->device_ep);
    free(o->jwks_uri);
    free(o);
}

void oidc_stop(oidc_t *o)
{
    if (!o) return;
    o->stopped = 1;
    if (o->retry) {
        uv_timer_stop(o->retry);
        uv_close((uv_handle_t *)o->retry, timer_closed);
        o->retry = NULL;
    }
}

void oidc_free(oidc_t *o)
{
    if (!o) return;
    oidc_stop(o);
    /* A discovery in flight still calls back (hclient_close cancels it). */
    if (o->fetching) o->freed = 1;
    else oidc_destroy(o);
}

/* ---- discovery ------------------------------------------------------------ */

static void on_retry(uv_timer_t *t)
{
    oidc_discover(t->data);
}

static void retry_later(oidc_t *o)
{
    if (o->stopped) return;
    if (!o->retry) {
        o->retry = xcalloc(1, sizeof *o->retry);
        uv_timer_init(o->loop, o->retry);
        o->retry->data = o;
    }
    LOG_W("oidc: provider not available; retrying", "issuer=%s retry_ms=%llu", o->conf->issuer,
          (unsigned long long)o->retry_ms);
    uv_timer_start(o->retry, on_retry, o->retry_ms, 0);
    o->retry_ms = o->retry_ms * 2 > OIDC_RETRY_MAX_MS ? OIDC_RETRY_MAX_MS : o->retry_ms * 2;
}

static char *str_member(json_t *doc, const char *name)
{
    const char *s = json_string_value(json_object_get(doc, name));
    return s && *s ? xstrdup(s) : NULL;
}

static int url_ok(const char *u)
{
    return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0);
}

/* 0 and the endpoints taken, or -EINVAL with err. */
static int discovery_apply(oidc_t *o, const char *body, size_t len, nb_err_t *err)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return err_set(err, -EINVAL, "the discovery document is not a JSON object");
    }
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    if (!iss || strcmp(iss, o->conf->issuer) != 0) {
        err_set(err, -EINVAL, "the discovery document names issuer '%.200s', not the configured '%.200s'",
                iss ? iss : "(none)", o->conf->issuer);
        json_decref(doc);
        return -EINVAL;
    }
    char *authz = str_member(doc, "authorization_endpoint"), *tok = str_member(doc, "token_endpoint");
    char *jwks = str_member(doc, "jwks_uri");
    if (!url_ok(authz) || !url_ok(tok) || !url_ok(jwks)) {
        free(authz);
        free(tok);
        free(jwks);
        json_decref(doc);
        return err_set(err, -EINVAL, "the discovery document lacks authorization_endpoint, "
                                     "token_endpoint or jwks_uri (http(s) URLs)");
    }
    o->authz_ep = authz;
    o->token_ep = tok;
    o->jwks_uri = jwks;
    o->end_session_ep = str_member(doc, "end_session_endpoint");
    o->device_ep = str_member(doc, "device_authorization_endpoint");
    /* Basic unless the provider lists methods without it but with _post
     * (the default of the member is client_secret_basic). */
    json_t *m = json_object_get(doc, "token_endpoint_auth_methods_supported");
    int basic = !json_is_array(m), post = 0;
    size_t i;
    json_t *e;
    json_array_foreach(m, i, e) {
        const char *s = json_string_value(e);
        if (s && !strcmp(s, "client_secret_basic")) basic = 1;
        if (s && !strcmp(s, "client_secret_post")) post = 1;
    }
    o->auth_post = !basic && post;
    json_decref(doc);
    o->jwks = jwks_cache_new(o->hc, o->jwks_uri, (uint64_t)o->conf->jwks_cooldown_s * 1000);
    return 0;
}

int oidc_set_discovery(oidc_t *o, const char *doc, size_t len, nb_err_t *err)
{
    if (o->ready) return err_set(err, -EEXIST, "already discovered");
    int rc = discovery_apply(o, doc, len, err);
    if (rc == 0) o->ready = 1;
    return rc;
}

static void keys_warmed(int rc, void *ud)
{
    oidc_t *o = ud;
    if (rc && rc != -ECANCELED) LOG_W("oidc: the provider's keys could not be fetched", "issuer=%s rc=%d",
                                      o->conf->issuer, rc);
}

static void on_discovery(const hclient_resp_t *r, void *ud)
{
    oidc_t *o = ud;
    o->fetching = 0;
    if (o->freed) {
        oidc_destroy(o);
        return;
    }
    if (r->code == -ECANCELED) return;
    nb_err_t err;
    err_clear(&err);
    if (r->code) {
        err_set(&err, r->code, "%s", r->error ? r->error : "request failed");
    } else if (r->status != 200) {
        err_set(&err, -EIO, "HTTP status %d", r->status);
    } else if (discovery_apply(o, r->body, r->body_len, &err) == 0) {
        o->ready = 1;
        LOG_I("oidc: provider discovered", "issuer=%s end_session=%d device=%d auth=%s", o->conf->issuer,
              o->end_session_ep != NULL, o->device_ep != NULL, o->auth_post ? "post" : "basic");
        /* Warm the keys now, so the first login does not wait for them. */
        (void)jwks_cache_refresh(o->jwks, keys_warmed, o);
        return;
    }
    LOG_W("oidc: discovery failed", "issuer=%s error=\"%s\"", o->conf->issuer, err.msg);
    retry_later(o);
}

static void oidc_discover(oidc_t *o)
{
    if (o->ready || o->fetching) return;
    char *url = xasprintf("%s/.well-known/openid-configuration", o->conf->issuer);
    o->discoveries++;
    int rc = hclient_get(o->hc, url, NULL, DISCOVERY_MAX, HTTP_TIMEOUT_MS, on_discovery, o);
    free(url);
    if (rc == 0) o->fetching = 1;
    else retry_later(o);
}

void oidc_start(oidc_t *o)
{
    oidc_discover(o);
}

void oidc_policy(const oidc_t *o, jwt_policy_t *p, const char *nonce, int access)
{
    jwt_policy_init(p);
    p->algs = 0;
    for (size_t i = 0; o->conf->algorithms && o->conf->algorithms[i]; i++) {
        if (!strcmp(o->conf->algorithms[i], "RS256")) p->algs |= JWT_ALG_RS256;
        if (!strcmp(o->conf->algorithms[i], "ES256")) p->algs |= JWT_ALG_ES256;
    }
    if (!p->algs) p->algs = JWT_ALG_DEFAULT;
    p->issuer = o->conf->issuer;
    p->leeway_s = o->conf->leeway_s;
    if (access) {
        p->audience = o->conf->audience;
        p->client_id = NULL;
    } else {
        p->audience = o->conf->client_id;
        p->client_id = o->conf->client_id;
        p->nonce = nonce;
    }
}

/* ---- logins in progress --------------------------------------------------- */

/* 43 random base64url characters. */
static int random_str(char out[OIDC_STATE_LEN + 1])
{
    char t[TOKEN_LEN + 1];
    if (token_new("nbx_", t) < 0) return -EIO;
    memcpy(out, t + 4, OIDC_STATE_LEN + 1);
    explicit_bzero(t, sizeof t);
    return 0;
}

void oidc_login_clear(oidc_login_t *l)
{
    free(l->nonce);
    if (l->verifier) explicit_bzero(l->verifier, strlen(l->verifier));
    free(l->verifier);
    free(l->next);
    free(l->redirect_uri);
    memset(l, 0, sizeof *l);
}

static void logins_expire(oidc_t *o, int64_t now_us)
{
    size_t k = 0;
    while (k < o->nlogins && now_us - o->logins[k].created_us > OIDC_LOGIN_TTL_S * 1000000LL) k++;
    if (o->nlogins >= OIDC_MAX_LOGINS && k == 0) k = 1;
    if (!k) return;
    for (size_t i = 0; i < k; i++) oidc_login_clear(&o->logins[i].l);
    memmove(o->logins, o->logins + k, (o->nlogins - k) * sizeof *o->logins);
    o->nlogins -= k;
}

static void q_param(buf_t *b, const char *name, const char *value)
{
    buf_putc(b, '&');
    buf_puts(b, name);
    buf_putc(b, '=');
    urlesc_append(b, value);
}

int oidc_login_begin(oidc_t *o, const char *redirect_uri, const char *next, int64_t now_us,
                     char state[OIDC_STATE_LEN + 1], char **url, nb_err_t *err)
{
    *url = NULL;
    if (!o->ready) return err_set(err, -EAGAIN, "the identity provider has not been reached yet");
    char nonce[OIDC_STATE_LEN + 1], verifier[OIDC_STATE_LEN + 1], challenge[44];
    if (random_str(state) < 0 || random_str(nonce) < 0 || random_str(verifier) < 0)
        return err_set(err, -EIO, "no randomness");
    oauth_s256(verifier, challenge);
    logins_expire(o, now_us);
    if (!o->logins) o->logins = xcalloc(OIDC_MAX_LOGINS, sizeof *o->logins);
    struct pending *p = &o->logins[o->nlogins++];
    memcpy(p->state, state, OIDC_STATE_LEN + 1);
    p->created_us = now_us;
    p->l.nonce = xstrdup(nonce);
    p->l.verifier = xstrdup(verifier);
    p->l.next = xstrdup(next ? next : "/");
    p->l.redirect_uri = xstrdup(redirect_uri);
    explicit_bzero(verifier, sizeof verifier);

    buf_t b = { 0 };
    buf_puts(&b, o->authz_ep);
    buf_puts(&b, strchr(o->authz_ep, '?') ? "&response_type=code" : "?response_type=code");
    q_param(&b, "client_id", o->conf->client_id);
    q_param(&b, "redirect_uri", redirect_uri);
    buf_puts(&b, "&scope=");
    for (size_t i = 0; o->conf->scopes[i]; i++) {
        if (i) buf_puts(&b, "%20");
        urlesc_append(&b, o->conf->scopes[i]);
    }
    q_param(&b, "state", state);
    q_param(&b, "nonce", nonce);
    q_param(&b, "code_challenge", challenge);
    buf_puts(&b, "&code_challenge_method=S256");
    *url = buf_detach(&b);
    return 0;
}

int oidc_login_take(oidc_t *o, const char *state, int64_t now_us, oidc_login_t *out)
{
    memset(out, 0, sizeof *out);
    logins_expire(o, now_us);
    for (size_t i = 0; state && i < o->nlogins; i++) {
        if (!token_equal(o->logins[i].state, state)) continue;
        *out = o->logins[i].l;
        memmove(o->logins + i, o->logins + i + 1, (o->nlogins - i - 1) * sizeof *o->logins);
        o->nlogins--;
        return 0;
    }
    return -ENOENT;
}

/* ---- the token endpoint --------------------------------------------------- */

struct tok_req {
    oidc_t        *o;
    oidc_tokens_fn cb;
    void          *ud;
};

void oidc_tokens_clear(oidc_tokens_t *t)
{
    free(t->id_token);
    free(t->access_token);
    if (t->refresh_token) explicit_bzero(t->refresh_token, strlen(t->refresh_token));
    free(t->refresh_token);
    memset(t, 0, sizeof *t);
}

static void on_token(const hclient_resp_t *r, void *ud)
{
    struct tok_req *q = ud;
    oidc_tokens_t t = { 0 };
    nb_err_t err;
    err_clear(&err);
    int rc = 0;
    json_t *doc = NULL;
    if (r->code) {
        rc = err_set(&err, r->code == -ECANCELED ? -ECANCELED : -EIO, "token endpoint: %s",
                     r->error ? r->error : "request failed");
    } else {
        json_error_t je;
        doc = json_loadb(r->body, r->body_len, 0, &je);
        const char *e = json_string_value(json_object_get(doc, "error"));
        if (r->status != 200 || !json_is_object(doc)) {
            rc = err_set(&err, e && !strcmp(e, "invalid_grant") ? -EACCES : -EIO,
                         "token endpoint: HTTP %d%s%.100s", r->status, e ? ", " : "", e ? e : "");
        } else {
            t.id_token = str_member(doc, "id_token");
            t.access_token = str_member(doc, "access_token");
            t.refresh_token = str_member(doc, "refresh_token");
            json_t *ex = json_object_get(doc, "expires_in");
            t.expires_in_s = json_is_integer(ex) ? json_integer_value(ex) : 0;
            if (!t.access_token) rc = err_set(&err, -EIO, "token endpoint: no access_token in the answer");
        }
    }
    json_decref(doc);
    q->cb(rc, rc ? NULL : &t, &err, q->ud);
    oidc_tokens_clear(&t);
    free(q);
}

/* POST form to the token endpoint with the client's credentials. */
static int token_post(oidc_t *o, buf_t *form, oidc_tokens_fn cb, void *ud)
{
    if (!o->ready) {
        buf_free(form);
        return -EAGAIN;
    }
    const char *secret = o->conf->client_secret;
    char *auth = NULL;
    if (secret && !o->auth_post) {
        /* RFC 6749 §2.3.1: both form-encoded, then base64. */
        buf_t cred = { 0 }, b64 = { 0 };
        urlesc_append(&cred, o->conf->client_id);
        buf_putc(&cred, ':');
        urlesc_append(&cred, secret);
        base64_append(&b64, cred.data, cred.len);
        buf_putc(&b64, '\0');
        auth = xasprintf("Authorization: Basic %s", b64.data);
        explicit_bzero(cred.data, cred.len);
        buf_free(&cred);
        explicit_bzero(b64.data, b64.len);
        buf_free(&b64);
    } else {
        q_param(form, "client_id", o->conf->client_id);
        if (secret) q_param(form, "client_secret", secret);
    }
    const char *hdrs[] = { "Content-Type: application/x-www-form-urlencoded", "Accept: application/json",
                           auth, NULL };
    struct tok_req *q = xcalloc(1, sizeof *q);
    q->o = o;
    q->cb = cb;
    q->ud = ud;
    int rc = hclient_post_full(o->hc, o->token_ep, hdrs, form->data, form->len, TOKEN_RESP_MAX,
                               HTTP_TIMEOUT_MS, on_token, q);
    if (auth) explicit_bzero(auth, strlen(auth));
    free(auth);
    explicit_bzero(form->data, form->len);
    buf_free(form);
    if (rc) free(q);
    return rc;
}

int oidc_token_code(oidc_t *o, const char *code, const char *redirect_uri, const char *verifier,
                    oidc_tokens_fn cb, void *ud)
{
    buf_t f = { 0 };
    buf_puts(&f, "grant_type=authorization_code");
    q_param(&f, "code", code);
    q_param(&f, "redirect_uri", redirect_uri);
    q_param(&f, "code_verifier", verifier);
    return token_post(o, &f, cb, ud);
}

int oidc_token_refresh(oidc_t *o, const char *refresh_token, oidc_tokens_fn cb, void *ud)
{
    buf_t f = { 0 };
    buf_puts(&f, "grant_type=refresh_token");
    q_param(&f, "refresh_token", refresh_token);
    return token_post(o, &f, cb, ud);
}

/* ---- identity ------------------------------------------------------------- */

void oidc_identity_clear(oidc_identity_t *id)
{
    free(id->subject);
    free(id->name);
    free(id->sid);
    for (size_t i = 0; i < id->ngroups; i++) free(id->groups[i]);
    free(id->groups);
    memset(id, 0, sizeof *id);
}

static void group_add(oidc_identity_t *id, const char *g)
{
    for (size_t i = 0; i < id->ngroups; i++)
        if (!strcmp(id->groups[i], g)) return;
    id->groups = xrealloc(id->groups, (id->ngroups + 2) * sizeof *id->groups);
    id->groups[id->ngroups++] = xstrdup(g);
    id->groups[id->ngroups] = NULL;
}

int oidc_identity(const oidc_t *o, json_t *claims, oidc_identity_t *out, nb_err_t *err)
{
    const oidc_conf_t *c = o->conf;
    memset(out, 0, sizeof *out);
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *name = json_string_value(json_object_get(claims, c->username_claim));
    if (!sub || !*sub) return err_set(err, -EACCES, "the token has no 'sub'");
    if (!name || !*name) return err_set(err, -EACCES, "the token has no '%.64s' (username_claim)",
                                        c->username_claim);
    out->subject = xstrdup(sub);
    out->name = xstrdup(name);
    const char *sid = json_string_value(json_object_get(claims, "sid"));
    out->sid = sid && *sid ? xstrdup(sid) : NULL;
    out->groups = xcalloc(1, sizeof *out->groups);
    json_t *g = json_object_get(claims, c->groups_claim);
    size_t i;
    json_t *e;
    int admin = 0, allowed = c->allowed_groups == NULL;
    /* A single group may come as a string. */
    json_t *one = json_is_string(g) ? json_pack("[O]", g) : json_incref(g);
    json_array_foreach(one, i, e) {
        const char *pg = json_string_value(e);
        if (!pg || !*pg) continue;
        /* Keycloak's full paths ("/admins") when the mapper has them on. */
        const char *bare = pg[0] == '/' && pg[1] && !strchr(pg + 1, '/') ? pg + 1 : pg;
        if (oidc_conf_has(c->admin_groups, pg) || oidc_conf_has(c->admin_groups, bare)) admin = 1;
        if (oidc_conf_has(c->allowed_groups, pg) || oidc_conf_has(c->allowed_groups, bare)) allowed = 1;
        const char *mapped = NULL;
        for (size_t k = 0; k < c->npg; k++)
            if (!strcmp(c->pg_from[k], pg) || !strcmp(c->pg_from[k], bare)) mapped = c->pg_to[k];
        group_add(out, mapped ? mapped : bare);
    }
    json_decref(one);
    out->admin = admin;
    out->allowed = allowed;
    return 0;
}

char *oidc_logout_url(const oidc_t *o, const char *id_token, const char *post_logout)
{
    if (!o->end_session_ep) return NULL;
    buf_t b = { 0 };
    buf_puts(&b, o->end_session_ep);
    buf_puts(&b, strchr(o->end_session_ep, '?') ? "&client_id=" : "?client_id=");
    urlesc_append(&b, o->conf->client_id);
    if (id_token) q_param(&b, "id_token_hint", id_token);
    if (post_logout) q_param(&b, "post_logout_redirect_uri", post_logout);
    return buf_detach(&b);
}
