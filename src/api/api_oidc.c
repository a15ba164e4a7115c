/*
 * api_oidc — single sign-on with an OpenID Connect provider: the browser's
 * login (/auth/oidc/login, /auth/oidc/callback), the provider's
 * back-channel logout, sessions that follow the provider (refresh), the
 * provider's access tokens as API credentials, and the logout URL
 * (docs/sso.md "How login works").  auth/oidc.c talks to the provider;
 * this file decides who gets a session.
 *
 * Login.  /auth/oidc/login sends the browser to the provider with a state
 * that is also put in a cookie (nbhub_oidc: HttpOnly, SameSite=Lax, path
 * /auth/oidc, 10 minutes): the callback must carry the same state as the
 * browser's cookie, so a code an attacker obtained for their own account
 * cannot be pushed into a victim's browser (login CSRF), and the state
 * works once.  The code is exchanged with the PKCE verifier, the ID token
 * verified (auth/jwt.h: signature by kid, iss, aud, azp, exp, and the nonce
 * of this very login), then the user is mapped:
 *   - known by (issuer, sub): that user, whatever the name claim says now;
 *   - else the name from username_claim, if it passes nbhub's name rules
 *     and nobody has it: a new user without a password.  A name held by a
 *     local account, or by another subject, is REFUSED, never merged:
 *     whoever controls a provider account named "admin" must not become
 *     nbhub's admin;
 *   - not in allowed_groups (when set): refused; a disabled user: refused;
 *   - groups_claim replaces the user's groups (profile_groups mapped), and
 *     the admin flag follows admin_groups, at every login and refresh.
 * The session is the password login's (cookie + CSRF token) plus what the
 * provider gave: its session id (sid), the ID token (logout's
 * id_token_hint), the refresh token and the tokens' expiry.
 *
 * Following the provider.  A timer (every API_OIDC_TICK_MS) refreshes the
 * sessions whose tokens expire within API_OIDC_AHEAD_MS: the provider says
 * no (invalid_grant: session ended or revoked there) -> the nbhub session
 * ends; new tokens -> verified, groups and admin updated, and a user no
 * longer in allowed_groups loses the session.  The provider unreachable ->
 * the session stays and is tried again next tick (an outage of the
 * provider does not log everyone out).  Back-channel logout (a signed
 * logout token POSTed by the provider) ends the sessions with that sid, or
 * all provider sessions of that sub, at once.
 *
 * Access tokens (auth.oidc.accept_access_tokens).  "Authorization: Bearer
 * <JWT>" on /api/v1 is verified with the configured audience (azp not
 * checked: the CLI's own client asked for it); its user is found or created
 * exactly as at login (so `nbhub login` works for someone who never opened
 * the web UI), groups and admin taken from the token, written only when
 * they changed.  Verification is synchronous against the cached keys; a
 * token signed with a key nbhub has not seen yet starts one refetch of the
 * keys and gets a 401 "retry" (the hook cannot wait), bounded by the
 * cache's cool-down.
 */
#include "api/api_int.h"
#include "auth/oidc.h"
#include "auth/seal.h"
#include "auth/token.h"
#include "store/store_groups.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OIDC_COOKIE "nbhub_oidc"
#define API_OIDC_TICK_MS  2000
#define API_OIDC_AHEAD_MS 5000
#define API_OIDC_MAX_INFLIGHT 64
/* Provider sessions known ended, remembered this long (longer than any
 * access token that names them lives) and at most this many. */
#define API_OIDC_ENDED_KEEP_US (24LL * 3600 * 1000000)
#define API_OIDC_ENDED_MAX     1024

/* A provider session nbhub knows has ended (back-channel logout, refresh
 * refused): sid, or with sid NULL every session of user uid that began by
 * `at`.  Access tokens that name it are refused from then on. */
struct api_oidc_ended {
    char   *sid;
    int64_t uid, at;
};

/* ---- small helpers --------------------------------------------------------- */

static void html_esc(buf_t *b, const char *s)
{
    for (; s && *s; s++) {
        if (strchr("&<>\"'", *s)) buf_printf(b, "&#%d;", *s);
        else buf_putc(b, *s);
    }
}

/* A short HTML page for the browser (the login's failures happen outside
 * the web UI: the provider sent the browser here). */
static void page(http_req_t *req, int status, const char *title, const char *msg)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>");
    html_esc(&b, title);
    buf_puts(&b, "</title></head><body><h1>");
    html_esc(&b, title);
    buf_puts(&b, "</h1><p id=\"msg\">");
    html_esc(&b, msg);
    buf_puts(&b, "</p><p><a href=\"/login\">Back to the login page</a></p></body></html>");
    http_set_header(req, "Cache-Control", "no-store");
    http_set_header(req, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    http_respond(req, status, "text/html; charset=utf-8", b.data, b.len);
    buf_free(&b);
}

static void state_cookie(api_t *a, http_req_t *req, const char *value, int max_age)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s=%s; Path=/auth/oidc; Max-Age=%d; HttpOnly; SameSite=Lax%s", OIDC_COOKIE,
             value, max_age, a->secure_cookies || http_req_tls(req) ? "; Secure" : "");
    http_set_header(req, "Set-Cookie", buf);
}

/* nbhub's own address as the browser sees it: base_url when configured,
 * else the request's Host (the provider checks the redirect URI against the
 * client's registered ones, so a forged Host cannot steer a code away). */
static char *self_url(api_t *a, http_req_t *req, const char *path)
{
    if (a->base_url) {
        size_t n = strlen(a->base_url);
        while (n && a->base_url[n - 1] == '/') n--;
        return xasprintf("%.*s%s", (int)n, a->base_url, path);
    }
    const char *host = http_header(req, "Host");
    if (!host || !*host || strpbrk(host, "/\\@ ")) host = "localhost";
    return xasprintf("%s://%s%s", a->secure_cookies || http_req_tls(req) ? "https" : "http", host, path);
}

/* A path of this origin ("/x", never "//host" or "/\host"), else "/". */
static const char *safe_next(const char *next)
{
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\') return "/";
    for (const char *p = next; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return "/";
    return next;
}

/* ---- provider tokens at rest ----------------------------------------------------
 *
 * sessions.id_token and sessions.refresh_token are sealed (auth/seal.h)
 * under $NBHUB_HOME/secrets/seal.key with the row's id as associated
 * data: a copy of nbhub.db holds no usable provider token, and a value
 * moved to another row does not open there (that session ends at its next
 * refresh).  Values a build before sealing wrote in clear are sealed in
 * place when nbhub starts (api_oidc_start), so those sessions go on. */

static void session_ad(char ad[32], int64_t session_id)
{
    snprintf(ad, 32, "sessions/%lld", (long long)session_id);
}

/* Write the provider part of session session_id, its tokens sealed. */
static int idp_put(api_t *a, int64_t session_id, const char *idp_sid, const char *id_token,
                   const char *refresh_token, int64_t expires_at, nb_err_t *err)
{
    char ad[32];
    session_ad(ad, session_id);
    char *it = seal_value(a->oidc_seal, ad, id_token), *rt = seal_value(a->oidc_seal, ad, refresh_token);
    store_session_idp_t v = {
        .idp_sid = (char *)idp_sid,
        .id_token = it,
        .refresh_token = rt,
        .idp_expires_at = expires_at,
    };
    int rc = store_session_set_idp(a->store, session_id, &v, err);
    free(it);
    free(rt);
    return rc;
}

/* Open v's sealed tokens in place: 0, or -EBADMSG / -EINVAL (seal_open)
 * with v's tokens unchanged. */
static int idp_open(api_t *a, store_session_idp_t *v)
{
    char ad[32], *it = NULL, *rt = NULL;
    session_ad(ad, v->session_id);
    int rc = seal_open(a->oidc_seal, ad, v->id_token, &it);
    if (rc == 0 && (rc = seal_open(a->oidc_seal, ad, v->refresh_token, &rt)) != 0) seal_clear_free(it);
    if (rc) return rc;
    free(v->id_token);
    free(v->refresh_token);
    v->id_token = it;
    v->refresh_token = rt;
    return 0;
}

/* Seal the values a build before sealing left in clear. */
static int idp_reseal_legacy(api_t *a, nb_err_t *err)
{
    int64_t *ids = NULL;
    size_t n = 0, done = 0;
    int rc = store_sessions_idp_unsealed(a->store, SEAL_PREFIX, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        store_session_idp_t v;
        if (store_session_get_idp_id(a->store, ids[i], &v, err) != 0) continue;
        /* A row with one value sealed and one not cannot happen; it
         * would be sealed over again, never opened: end it instead. */
        if (seal_is_sealed(v.id_token) || seal_is_sealed(v.refresh_token)) {
            (void)store_session_delete_id(a->store, ids[i], err);
        } else {
            rc = idp_put(a, ids[i], v.idp_sid, v.id_token, v.refresh_token, v.idp_expires_at, err);
            done += rc == 0;
        }
        store_session_idp_clear(&v);
    }
    free(ids);
    if (done) LOG_I("oidc: provider tokens written in clear by an older nbhub are sealed now", "sessions=%zu", done);
    return rc;
}

/* ---- provider sessions known ended -------------------------------------------- */

static void ended_add(api_t *a, const char *sid, int64_t uid, int64_t now)
{
    if (!a->oidc_ended) a->oidc_ended = xcalloc(API_OIDC_ENDED_MAX, sizeof *a->oidc_ended);
    /* Oldest first out: entries are appended in time order, so a full
     * table drops entry 0; an entry past its keep time goes the same way. */
    size_t drop = 0;
    while (drop < a->oidc_nended && a->oidc_ended[drop].at + API_OIDC_ENDED_KEEP_US < now) drop++;
    if (drop == 0 && a->oidc_nended == API_OIDC_ENDED_MAX) drop = 1;
    for (size_t i = 0; i < drop; i++) free(a->oidc_ended[i].sid);
    memmove(a->oidc_ended, a->oidc_ended + drop, (a->oidc_nended - drop) * sizeof *a->oidc_ended);
    a->oidc_nended -= drop;
    struct api_oidc_ended *e = &a->oidc_ended[a->oidc_nended++];
    e->sid = sid ? xstrdup(sid) : NULL;
    e->uid = uid;
    e->at = now;
}

/* 1 if an access token of user uid issued at iat (s) naming provider
 * session sid (NULL or "": none) belongs to a session known ended. */
static int ended_has(const api_t *a, const char *sid, int64_t uid, int64_t iat_s)
{
    for (size_t i = 0; i < a->oidc_nended; i++) {
        const struct api_oidc_ended *e = &a->oidc_ended[i];
        if (e->sid ? sid && !strcmp(e->sid, sid) : e->uid == uid && iat_s * 1000000LL <= e->at) return 1;
    }
    return 0;
}

/* The provider says session sid (or, sid NULL, every session of user uid)
 * has ended: the nbhub API tokens minted through it are revoked and its
 * access tokens refused from now on.  The browser sessions are the
 * caller's. */
static void provider_session_ended(api_t *a, const char *sid, int64_t uid, const char *why)
{
    if (sid && !*sid) return;   /* no session named: nothing to tie it to */
    nb_err_t err;
    int64_t n = 0;
    ended_add(a, sid, uid, time_now_us());
    if (store_tokens_revoke_idp(a->store, sid, uid, &n, &err) != 0)
        LOG_E("oidc: could not revoke the tokens of an ended provider session", "error=\"%s\"", err.msg);
    else if (n)
        LOG_I("oidc: tokens of an ended provider session revoked", "tokens=%lld by=%s why=\"%s\"", (long long)n,
              sid ? "sid" : "sub", why);
}

/* ---- users ------------------------------------------------------------------ */

/* The nbhub user for a verified identity, found or created, with groups
 * and the admin flag brought up to date.  0 and *uid; -EACCES with *why
 * (shown to the user) when refused; another errno on store trouble. */
static int oidc_user(api_t *a, const oidc_identity_t *id, int64_t *uid, const char **why, nb_err_t *err)
{
    const oidc_conf_t *c = oidc_conf(a->oidc);
    *why = NULL;
    if (!id->allowed) {
        *why = "your account at the identity provider is not in a group allowed to use nbhub";
        return -EACCES;
    }
    int64_t now = time_now_us();
    int rc = store_user_by_idp(a->store, c->issuer, id->subject, uid, err);
    int created = 0;
    if (rc == -ENOENT) {
        if (!api_users_name_valid(id->name)) {
            *why = "your user name at the identity provider is not a valid nbhub user name "
                   "(letters, digits, '.', '_', '@', '-'; at most 64)";
            return -EACCES;
        }
        store_user_t u;
        rc = store_user_by_name(a->store, id->name, &u, err);
        if (rc == 0) {
            store_user_clear(&u);
            *why = "an nbhub account with this user name already exists and is not linked to this "
                   "identity; it was not merged (ask an admin)";
            return -EACCES;
        }
        if (rc != -ENOENT) return rc;
        rc = store_user_add_idp(a->store, id->name, c->issuer, id->subject, id->admin, now, uid, err);
        if (rc == -EEXIST) {
            *why = "an nbhub account with this user name already exists";
            return -EACCES;
        }
        if (rc) return rc;
        created = 1;
        LOG_I("oidc: user created", "user=%s admin=%d", id->name, id->admin);
    } else if (rc) {
        return rc;
    }
    store_user_t u;
    if ((rc = store_user_by_id(a->store, *uid, &u, err))) return rc;
    if (u.disabled) {
        store_user_clear(&u);
        *why = "this nbhub account is disabled";
        return -EACCES;
    }
    if (!created && u.is_admin != id->admin) {
        rc = store_user_set_admin(a->store, *uid, id->admin, err);
        LOG_I("oidc: admin role follows the provider's groups", "user=%s admin=%d", u.name, id->admin);
    }
    /* Groups: written only when they differ (a bearer token comes with
     * every request). */
    store_names_t have = { 0 };
    int same = 0;
    if (rc == 0 && store_user_groups(a->store, *uid, &have, err) == 0 && have.n == id->ngroups) {
        same = 1;
        for (size_t i = 0; i < id->ngroups && same; i++) {
            int found = 0;
            for (size_t k = 0; k < have.n && !found; k++) found = !strcmp(have.v[k], id->groups[i]);
            same = found;
        }
    }
    store_names_free(&have);
    if (rc == 0 && !same)
        rc = store_user_set_groups(a->store, *uid, (const char *const *)id->groups, id->ngroups, now, err);
    store_user_clear(&u);
    return rc;
}

/* ---- GET /auth/oidc/config -------------------------------------------------- */

void api_oidc_config(http_req_t *req, void *ud)
{
    api_t *a = ud;
    json_t *j = json_object();
    json_object_set_new(j, "local", json_boolean(a->local_login));
    json_object_set_new(j, "enabled", json_boolean(a->oidc != NULL));
    if (a->oidc) {
        const oidc_conf_t *c = oidc_conf(a->oidc);
        json_object_set_new(j, "issuer", json_string(c->issuer));
        json_object_set_new(j, "client_id", json_string(c->client_id));
        json_object_set_new(j, "display_name", json_string(c->display_name));
        json_object_set_new(j, "login_url", json_string("/auth/oidc/login"));
        json_object_set_new(j, "ready", json_boolean(oidc_ready(a->oidc)));
        json_object_set_new(j, "accept_access_tokens", json_boolean(c->accept_access_tokens));
        json_object_set_new(j, "audience", json_string(c->audience));
        if (c->cli_client_id) json_object_set_new(j, "cli_client_id", json_string(c->cli_client_id));
        if (c->cli_scopes) {
            json_t *l = json_array();
            for (size_t i = 0; c->cli_scopes[i]; i++) json_array_append_new(l, json_string(c->cli_scopes[i]));
            json_object_set_new(j, "cli_scopes", l);
        }
        const char *dev = oidc_device_endpoint(a->oidc);
        if (dev) json_object_set_new(j, "device_authorization_endpoint", json_string(dev));
        const char *tok = oidc_token_endpoint(a->oidc);
        if (tok) json_object_set_new(j, "token_endpoint", json_string(tok));
    }
    http_respond_json(req, 200, j);
}

/* ---- GET /auth/oidc/login ------------------------------------------------------ */

void api_oidc_login(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->oidc) {
        /* Nothing to start: the password login page. */
        http_set_header(req, "Location", "/login");
        http_respond(req, 302, NULL, "", 0);
        return;
    }
    char state[OIDC_STATE_LEN + 1], *url = NULL;
    char *redirect = self_url(a, req, "/auth/oidc/callback");
    nb_err_t err;
    err_clear(&err);
    int rc = oidc_login_begin(a->oidc, redirect, safe_next(http_query(req, "next")), time_now_us(), state,
                              &url, &err);
    free(redirect);
    if (rc) {
        page(req, 503, "The identity provider is not available",
             "nbhub has not reached the identity provider yet; try again in a minute.");
        return;
    }
    state_cookie(a, req, state, OIDC_LOGIN_TTL_S);
    http_set_header(req, "Location", url);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond(req, 302, NULL, "", 0);
    free(url);
}

/* ---- GET /auth/oidc/callback ---------------------------------------------------- */

struct cb_job {
    api_t        *a;
    http_req_t   *req;
    oidc_login_t  l;
    oidc_tokens_t t;
};

static void cb_job_free(struct cb_job *j)
{
    oidc_login_clear(&j->l);
    oidc_tokens_clear(&j->t);
    free(j);
}

/* A new session for uid with the provider's part; the cookie set.  0 or
 * an errno. */
static int session_new(api_t *a, http_req_t *req, int64_t uid, const oidc_identity_t *id,
                       const oidc_tokens_t *t, nb_err_t *err)
{
    char sess[TOKEN_LEN + 1], csrf[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    if (token_new(TOKEN_SESSION, sess) < 0 || token_new(TOKEN_CSRF, csrf) < 0)
        return err_set(err, -EIO, "no randomness");
    token_digest(sess, digest);
    int64_t now = time_now_us(), sid = 0;
    int rc = store_session_add(a->store, digest, csrf, uid, now, now + API_SESSION_TTL_US, &sid, err);
    if (rc) return rc;
    if ((rc = idp_put(a, sid, id->sid ? id->sid : "", t->id_token, t->refresh_token,
                      t->expires_in_s > 0 ? now + t->expires_in_s * 1000000LL : 0, err)))
        return rc;
    char buf[256];
    snprintf(buf, sizeof buf, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s", API_SESSION_COOKIE, sess,
             (int)(API_SESSION_TTL_US / 1000000), a->secure_cookies || http_req_tls(req) ? "; Secure" : "");
    http_set_header(req, "Set-Cookie", buf);
    explicit_bzero(sess, sizeof sess);
    return 0;
}

static void cb_finish(struct cb_job *j, int rc, json_t *claims, const nb_err_t *verr)
{
    api_t *a = j->a;
    http_req_t *req = j->req;
    if (rc) {
        LOG_W("oidc: login refused: ID token", "peer=%s error=\"%s\"", http_req_peer(req),
              verr ? verr->msg : "?");
        page(req, 403, "Login failed", "The identity provider's answer could not be verified.");
        return;
    }
    oidc_identity_t id;
    nb_err_t err;
    err_clear(&err);
    const char *why = NULL;
    int64_t uid = 0;
    rc = oidc_identity(a->oidc, claims, &id, &err);
    if (rc == 0) rc = oidc_user(a, &id, &uid, &why, &err);
    if (rc == -EACCES) {
        LOG_W("oidc: login refused", "user=%s peer=%s why=\"%s\"", api_log_name(req, id.name ? id.name : "?"),
              http_req_peer(req), why ? why : err.msg);
        page(req, 403, "Login refused", why ? why : "The identity provider's token lacks the user's identity.");
    } else if (rc == 0 && (rc = session_new(a, req, uid, &id, &j->t, &err)) == 0) {
        LOG_I("login", "user=%s peer=%s via=oidc", api_log_name(req, id.name), http_req_peer(req));
        http_set_header(req, "Location", j->l.next);
        http_set_header(req, "Cache-Control", "no-store");
        http_respond(req, 302, NULL, "", 0);
    } else {
        LOG_E("oidc: login failed", "peer=%s error=\"%s\"", http_req_peer(req), err.msg);
        page(req, 500, "Login failed", "nbhub could not record the login; see its log.");
    }
    oidc_identity_clear(&id);
}

static void cb_verified(int rc, json_t *claims, const nb_err_t *err, void *ud)
{
    struct cb_job *j = ud;
    cb_finish(j, rc, claims, err);
    cb_job_free(j);
}

static void cb_tokens(int rc, oidc_tokens_t *t, const nb_err_t *err, void *ud)
{
    struct cb_job *j = ud;
    if (rc) {
        LOG_W("oidc: code exchange failed", "peer=%s error=\"%s\"", http_req_peer(j->req), err->msg);
        page(j->req, rc == -EACCES ? 400 : 502, "Login failed",
             rc == -EACCES ? "The identity provider refused the login code; start again."
                           : "The identity provider could not be reached; try again.");
        cb_job_free(j);
        return;
    }
    j->t = *t;
    memset(t, 0, sizeof *t);
    if (!j->t.id_token) {
        page(j->req, 502, "Login failed", "The identity provider sent no ID token (is 'openid' a scope?).");
        cb_job_free(j);
        return;
    }
    jwt_policy_t p;
    oidc_policy(j->a->oidc, &p, j->l.nonce, 0);
    json_t *claims = NULL;
    nb_err_t verr;
    err_clear(&verr);
    int vr = jwks_cache_verify(oidc_jwks(j->a->oidc), j->t.id_token, strlen(j->t.id_token), &p, JWKS_ID_TOKEN,
                               &claims, &verr, cb_verified, j);
    if (vr == -EINPROGRESS) return;
    cb_finish(j, vr, claims, &verr);
    json_decref(claims);
    cb_job_free(j);
}

void api_oidc_callback(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->oidc) {
        page(req, 400, "Single sign-on is not configured", "This nbhub has no identity provider.");
        return;
    }
    const char *state = http_query(req, "state"), *code = http_query(req, "code");
    const char *cookie = http_cookie(req, OIDC_COOKIE), *error = http_query(req, "error");
    /* The cookie has done its work whatever happens next. */
    state_cookie(a, req, "", 0);
    if (!state || !cookie || !token_equal(state, cookie)) {
        LOG_W("oidc: callback refused: state does not match this browser's", "peer=%s", http_req_peer(req));
        page(req, 400, "Login failed", "This login was not started in this browser, or it expired; "
                                        "start again from the login page.");
        return;
    }
    oidc_login_t l;
    if (oidc_login_take(a->oidc, state, time_now_us(), &l) < 0) {
        page(req, 400, "Login failed", "This login expired or was already used; start again.");
        return;
    }
    if (error || !code || !*code) {
        oidc_login_clear(&l);
        page(req, 400, "Login failed", error ? "The identity provider did not log you in." :
                                               "The identity provider sent no code.");
        return;
    }
    struct cb_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->req = req;
    j->l = l;
    if (oidc_token_code(a->oidc, code, j->l.redirect_uri, j->l.verifier, cb_tokens, j) < 0) {
        page(req, 503, "Login failed", "The identity provider is not available.");
        cb_job_free(j);
    }
}

/* ---- POST /auth/oidc/backchannel-logout ------------------------------------------- */

/* One field of an x-www-form-urlencoded body, or NULL. */
static const char *form_field(http_req_t *req, const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name), i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && body[e] != '&') e++;
        const char *eq = memchr(body + i, '=', e - i);
        if (eq && (size_t)(eq - (body + i)) == nl && memcmp(body + i, name, nl) == 0)
            return http_req_decode(req, eq + 1, (size_t)(body + e - (eq + 1)), 1);
        i = e + 1;
    }
    return NULL;
}

static void bc_error(http_req_t *req, const char *desc)
{
    json_t *j = json_pack("{s:s, s:s}", "error", "invalid_request", "error_description", desc);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 400, j);
}

struct bc_job {
    api_t      *a;
    http_req_t *req;
    char       *tok;      /* kept for the second audience */
    int         as_cli;   /* verifying with aud = cli_client_id */
};

static int bc_verify(struct bc_job *j, json_t **claims, nb_err_t *err);

static void bc_job_free(struct bc_job *j)
{
    free(j->tok);
    free(j);
}

static void bc_finish(api_t *a, http_req_t *req, int rc, json_t *claims, const nb_err_t *verr)
{
    /* The provider sends a logout token to every client of the ended
     * session: `nbhub login`'s public client too (its aud), when the
     * provider has this address as that client's back-channel URL. */
    if (rc) {
        LOG_W("oidc: back-channel logout refused", "peer=%s error=\"%s\"", http_req_peer(req),
              verr ? verr->msg : "?");
        bc_error(req, "the logout token did not verify");
        return;
    }
    const char *sid = json_string_value(json_object_get(claims, "sid"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    nb_err_t err;
    err_clear(&err);
    int64_t n = 0, uid = 0;
    if (sid && *sid) {
        rc = store_sessions_end_idp(a->store, sid, 0, &n, &err);
        provider_session_ended(a, sid, 0, "back-channel logout");
    } else {
        rc = store_user_by_idp(a->store, oidc_conf(a->oidc)->issuer, sub, &uid, &err);
        if (rc == 0) rc = store_sessions_end_idp(a->store, NULL, uid, &n, &err);
        else if (rc == -ENOENT) rc = 0;
        if (uid) provider_session_ended(a, NULL, uid, "back-channel logout");
    }
    if (rc) {
        LOG_E("oidc: back-channel logout failed", "error=\"%s\"", err.msg);
        http_respond_error(req, 500, "internal", "could not end the sessions");
        return;
    }
    LOG_I("oidc: back-channel logout", "sessions_ended=%lld by=%s", (long long)n, sid ? "sid" : "sub");
    http_set_header(req, "Cache-Control", "no-store");
    http_respond(req, 200, NULL, "", 0);
}

static void bc_verified(int rc, json_t *claims, const nb_err_t *err, void *ud)
{
    struct bc_job *j = ud;
    if (rc == -EACCES && !j->as_cli && oidc_conf(j->a->oidc)->cli_client_id) {
        j->as_cli = 1;
        json_t *c2 = NULL;
        nb_err_t e2;
        err_clear(&e2);
        int r2 = bc_verify(j, &c2, &e2);
        if (r2 == -EINPROGRESS) return;
        bc_finish(j->a, j->req, r2, c2, &e2);
        json_decref(c2);
    } else {
        bc_finish(j->a, j->req, rc, claims, err);
    }
    bc_job_free(j);
}

/* Verify j's logout token as addressed to nbhub's client, or (as_cli) to
 * `nbhub login`'s. */
static int bc_verify(struct bc_job *j, json_t **claims, nb_err_t *err)
{
    jwt_policy_t p;
    oidc_policy(j->a->oidc, &p, NULL, 0);
    if (j->as_cli) p.audience = p.client_id = oidc_conf(j->a->oidc)->cli_client_id;
    return jwks_cache_verify(oidc_jwks(j->a->oidc), j->tok, strlen(j->tok), &p, JWKS_LOGOUT_TOKEN, claims, err,
                             bc_verified, j);
}

void api_oidc_backchannel(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->oidc || !oidc_jwks(a->oidc)) {
        bc_error(req, "single sign-on is not configured or not ready");
        return;
    }
    size_t len = 0;
    const char *body = http_req_body(req, &len);
    const char *tok = body ? form_field(req, body, len, "logout_token") : NULL;
    if (!tok || !*tok) {
        bc_error(req, "logout_token is required");
        return;
    }
    json_t *claims = NULL;
    nb_err_t err;
    err_clear(&err);
    struct bc_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->req = req;
    j->tok = xstrdup(tok);
    int rc = bc_verify(j, &claims, &err);
    if (rc == -EACCES && oidc_conf(a->oidc)->cli_client_id) {
        j->as_cli = 1;
        err_clear(&err);
        rc = bc_verify(j, &claims, &err);
    }
    if (rc == -EINPROGRESS) return;
    bc_job_free(j);
    bc_finish(a, req, rc, claims, &err);
    json_decref(claims);
}

/* ---- logout ------------------------------------------------------------------------ */

char *api_oidc_logout_url(api_t *a, http_req_t *req, const char *session_digest)
{
    if (!a->oidc || !session_digest) return NULL;
    store_session_idp_t v;
    nb_err_t err;
    if (store_session_get_idp(a->store, session_digest, &v, &err) != 0) return NULL;
    char *url = NULL;
    if (v.id_token && idp_open(a, &v) != 0) {
        LOG_W("oidc: the session's provider tokens do not open; no provider logout", "session_id=%lld",
              (long long)v.session_id);
    } else if (v.id_token) {
        char *back = self_url(a, req, "/login");
        url = oidc_logout_url(a->oidc, v.id_token, back);
        free(back);
    }
    store_session_idp_clear(&v);
    return url;
}

/* ---- access tokens ----------------------------------------------------------------- */

static void bearer_refetched(int rc, json_t *claims, const nb_err_t *err, void *ud)
{
    (void)rc, (void)claims, (void)err, (void)ud;
}

int api_oidc_bearer(api_t *a, http_req_t *req, const char *tok, int64_t *uid, const char **why,
                    const char **idp_sid)
{
    *why = NULL;
    *idp_sid = NULL;
    if (!a->oidc || !oidc_conf(a->oidc)->accept_access_tokens || !oidc_jwks(a->oidc)) return -EACCES;
    jwt_policy_t p;
    oidc_policy(a->oidc, &p, NULL, 1);
    json_t *claims = NULL;
    nb_err_t err;
    err_clear(&err);
    int rc = jwks_cache_verify(oidc_jwks(a->oidc), tok, strlen(tok), &p, JWKS_ID_TOKEN, &claims, &err,
                               bearer_refetched, NULL);
    if (rc == -EINPROGRESS) {
        LOG_I("oidc: unknown signing key; fetching the provider's keys", "peer=%s", http_req_peer(req));
        *why = "the token is signed with a key nbhub is fetching now; retry in a moment";
        return -EACCES;
    }
    if (rc) {
        LOG_I("oidc: access token refused", "peer=%s error=\"%s\"", http_req_peer(req), err.msg);
        return -EACCES;
    }
    /* An ID token is not an access token, though its aud (the client id)
     * may be the configured audience: Keycloak marks its kinds (typ), and
     * an ID token from a login carries the login's nonce. */
    const char *typ = json_string_value(json_object_get(claims, "typ"));
    if ((typ && strcasecmp(typ, "Bearer") != 0) || json_object_get(claims, "nonce")) {
        LOG_I("oidc: access token refused", "peer=%s error=\"an ID token, not an access token\"",
              http_req_peer(req));
        json_decref(claims);
        return -EACCES;
    }
    oidc_identity_t id;
    const char *sid = json_string_value(json_object_get(claims, "sid"));
    json_int_t iat = json_integer_value(json_object_get(claims, "iat"));
    rc = oidc_identity(a->oidc, claims, &id, &err);
    if (rc == 0) rc = oidc_user(a, &id, uid, why, &err);
    /* The provider said this session ended (a token lives on for minutes
     * after): the token must not act, nor mint a longer-lived nbhub one. */
    if (rc == 0 && ended_has(a, sid, *uid, (int64_t)iat)) {
        *why = "the identity provider's session of this token has ended";
        rc = -EACCES;
    }
    if (rc == 0) *idp_sid = http_req_strdup(req, sid ? sid : "");
    json_decref(claims);
    if (rc == -EACCES)
        LOG_I("oidc: access token refused", "peer=%s why=\"%s\"", http_req_peer(req), *why ? *why : err.msg);
    oidc_identity_clear(&id);
    return rc;
}

/* ---- refresh ------------------------------------------------------------------------ */

struct rf_job {
    api_t  *a;
    int64_t session_id, user_id;
    char   *idp_sid;
    oidc_tokens_t t;
};

static void rf_job_free(struct rf_job *j)
{
    oidc_tokens_clear(&j->t);
    free(j->idp_sid);
    free(j);
}

static void rf_done(api_t *a, int64_t session_id)
{
    for (size_t i = 0; i < a->oidc_nflight; i++)
        if (a->oidc_inflight[i] == session_id) {
            a->oidc_inflight[i] = a->oidc_inflight[--a->oidc_nflight];
            return;
        }
}

static void rf_end(api_t *a, int64_t session_id, const char *why)
{
    nb_err_t err;
    if (store_session_delete_id(a->store, session_id, &err) == 0)
        LOG_I("oidc: session ended", "session_id=%lld why=\"%s\"", (long long)session_id, why);
}

static void rf_finish(struct rf_job *j, int rc, json_t *claims, const nb_err_t *verr)
{
    api_t *a = j->a;
    nb_err_t err;
    err_clear(&err);
    int64_t now = time_now_us();
    if (rc) {
        LOG_W("oidc: refreshed ID token refused", "session_id=%lld error=\"%s\"", (long long)j->session_id,
              verr ? verr->msg : "?");
        rf_end(a, j->session_id, "the refreshed ID token did not verify");
        return;
    }
    if (claims) {
        oidc_identity_t id;
        const char *why = NULL;
        int64_t uid = 0;
        rc = oidc_identity(a->oidc, claims, &id, &err);
        if (rc == 0) rc = oidc_user(a, &id, &uid, &why, &err);
        if (rc == 0 && uid != j->user_id) rc = -EACCES, why = "the provider's subject changed";
        oidc_identity_clear(&id);
        if (rc == -EACCES) {
            rf_end(a, j->session_id, why ? why : err.msg);
            return;
        }
    }
    store_session_idp_t cur;
    if (store_session_get_idp_id(a->store, j->session_id, &cur, &err) != 0) return;
    if (idp_open(a, &cur) != 0) {
        store_session_idp_clear(&cur);
        rf_end(a, j->session_id, "its provider tokens do not open");
        return;
    }
    (void)idp_put(a, j->session_id, cur.idp_sid, j->t.id_token ? j->t.id_token : cur.id_token,
                  j->t.refresh_token ? j->t.refresh_token : cur.refresh_token,
                  j->t.expires_in_s > 0 ? now + j->t.expires_in_s * 1000000LL : 0, &err);
    store_session_idp_clear(&cur);
}

static void rf_verified(int rc, json_t *claims, const nb_err_t *err, void *ud)
{
    struct rf_job *j = ud;
    if (rc != -ECANCELED) rf_finish(j, rc, claims, err);
    rf_done(j->a, j->session_id);
    rf_job_free(j);
}

static void rf_tokens(int rc, oidc_tokens_t *t, const nb_err_t *err, void *ud)
{
    struct rf_job *j = ud;
    api_t *a = j->a;
    if (rc == -EACCES) {
        LOG_I("oidc: the provider refused the refresh", "session_id=%lld error=\"%s\"",
              (long long)j->session_id, err->msg);
        rf_end(a, j->session_id, "the provider ended the session");
        provider_session_ended(a, j->idp_sid ? j->idp_sid : "", 0, "the provider refused a refresh");
    } else if (rc == 0) {
        j->t = *t;
        memset(t, 0, sizeof *t);
        if (j->t.id_token) {
            jwt_policy_t p;
            oidc_policy(a->oidc, &p, NULL, 0);
            json_t *claims = NULL;
            nb_err_t verr;
            err_clear(&verr);
            int vr = jwks_cache_verify(oidc_jwks(a->oidc), j->t.id_token, strlen(j->t.id_token), &p,
                                       JWKS_ID_TOKEN, &claims, &verr, rf_verified, j);
            if (vr == -EINPROGRESS) return;
            rf_finish(j, vr, claims, &verr);
            json_decref(claims);
        } else {
            rf_finish(j, 0, NULL, NULL);
        }
    } else if (rc != -ECANCELED) {
        LOG_W("oidc: refresh failed; will retry", "session_id=%lld error=\"%s\"", (long long)j->session_id,
              err->msg);
    }
    rf_done(a, j->session_id);
    rf_job_free(j);
}

static void rf_tick(uv_timer_t *t)
{
    api_t *a = t->data;
    if (!oidc_ready(a->oidc) || a->stopping) return;
    store_idp_due_t *due = NULL;
    size_t n = 0;
    nb_err_t err;
    int rc;
    if (store_sessions_idp_due(a->store, time_now_us() + API_OIDC_AHEAD_MS * 1000LL, API_OIDC_MAX_INFLIGHT,
                               &due, &n, &err) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int busy = 0;
        for (size_t k = 0; k < a->oidc_nflight; k++) busy |= a->oidc_inflight[k] == due[i].session_id;
        if (busy || a->oidc_nflight >= API_OIDC_MAX_INFLIGHT) continue;
        char ad[32], *rt = NULL;
        session_ad(ad, due[i].session_id);
        if (seal_open(a->oidc_seal, ad, due[i].refresh_token, &rt) != 0 || !rt) {
            LOG_W("oidc: a session's refresh token does not open (copied from another session, or another "
                  "seal key)", "session_id=%lld", (long long)due[i].session_id);
            rf_end(a, due[i].session_id, "its provider tokens do not open");
            continue;
        }
        struct rf_job *j = xcalloc(1, sizeof *j);
        j->a = a;
        j->session_id = due[i].session_id;
        j->user_id = due[i].user_id;
        j->idp_sid = due[i].idp_sid ? xstrdup(due[i].idp_sid) : NULL;
        rc = oidc_token_refresh(a->oidc, rt, rf_tokens, j);
        seal_clear_free(rt);
        if (rc < 0) {
            rf_job_free(j);
            continue;
        }
        a->oidc_inflight[a->oidc_nflight++] = due[i].session_id;
    }
    store_idp_due_free(due, n);
}

static void rf_timer_closed(uv_handle_t *h)
{
    free(h);
}

int api_oidc_start(api_t *a, nb_err_t *err)
{
    if (!a->oidc || a->oidc_timer) return 0;
    if (!a->oidc_seal) {
        a->oidc_seal = xcalloc(1, sizeof *a->oidc_seal);
        int rc = seal_key_load(a->home_given, a->oidc_seal, err);
        if (rc == 0) rc = idp_reseal_legacy(a, err);
        if (rc) return rc;
    }
    a->oidc_timer = xcalloc(1, sizeof *a->oidc_timer);
    uv_timer_init(a->loop, a->oidc_timer);
    a->oidc_timer->data = a;
    uv_timer_start(a->oidc_timer, rf_tick, API_OIDC_TICK_MS, API_OIDC_TICK_MS);
    return 0;
}

void api_oidc_free(api_t *a)
{
    api_oidc_stop(a);
    if (a->oidc_seal) explicit_bzero(a->oidc_seal, sizeof *a->oidc_seal);
    free(a->oidc_seal);
    a->oidc_seal = NULL;
    for (size_t i = 0; i < a->oidc_nended; i++) free(a->oidc_ended[i].sid);
    free(a->oidc_ended);
    a->oidc_ended = NULL;
    a->oidc_nended = 0;
}

void api_oidc_stop(api_t *a)
{
    if (!a->oidc_timer) return;
    uv_timer_stop(a->oidc_timer);
    uv_close((uv_handle_t *)a->oidc_timer, rf_timer_closed);
    a->oidc_timer = NULL;
}
