/*
 * api_hub_oauth — nbhub as the OAuth 2 provider of its users' notebook
 * servers, where jupyterhub-singleuser (HubOAuth) expects JupyterHub's:
 *
 *   GET  /hub/api/oauth2/authorize  (the browser, with the nbhub session)
 *        response_type=code, client_id, redirect_uri, state,
 *        code_challenge, code_challenge_method=S256
 *        -> 302 redirect_uri?code=...&state=...
 *   POST /hub/api/oauth2/token      (the notebook server)
 *        client_id, client_secret (= its JUPYTERHUB_API_TOKEN),
 *        grant_type=authorization_code, code, redirect_uri, code_verifier
 *        -> {access_token, token_type: "Bearer", expires_in, scope}
 *
 * A client is a notebook server: its client id and redirect URI are fixed
 * by its owner's and its own names (hub_server_client_id, its prefix + oauth_callback;
 * the hub hands them to the server as JUPYTERHUB_CLIENT_ID and
 * JUPYTERHUB_OAUTH_CALLBACK_URL), so there is no client registry to keep:
 * the redirect URI names the server, and the client id must then be that
 * server's, exactly.  A redirect URI that names no server of ours, or a
 * client id that does not match it, is answered with an error page and no
 * redirect (never send a code, or even an error, to a URI we did not
 * check).  Once the URI is checked, request errors (no PKCE, "plain", a
 * response_type other than code) go back to it as error=invalid_request.
 *
 * Who gets a code: the server's owner, without being asked (as in
 * JupyterHub for one's own server); with hub.admin_access, an admin too,
 * but only after a consent page ("Server at /user/alice/ would like to
 * identify you"), posted back with the session's CSRF token: a link alone
 * must not log an admin's browser in to a user's server, whose pages the
 * user controls.  Anyone else gets 403.
 *
 * PKCE is required (S256 only): JupyterHub 6 makes it optional, but every
 * jupyterhub-singleuser that can talk to a 6.x hub sends it, and without it
 * a code leaked from a redirect (a log, a Referer) could be exchanged by
 * anyone holding the server's secret -- which user code in that server
 * has.  Codes are single use and short-lived (auth/oauth.h).
 *
 * The token endpoint authenticates the client by its secret, the server's
 * own API token (kind 'server'): its server must be the client the code
 * was issued to.  The access token issued is an 'oauth' token bound to the
 * server, with the scopes the code carried (identify the user, access
 * that server); it dies with the server row and reaches no /api/v1 route.
 */
#include "api/api_int.h"
#include "auth/oauth.h"
#include "auth/scopes.h"
#include "auth/token.h"
#include "hub/hub.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/urlesc.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OAUTH_TOKEN_TTL_S (24 * 3600)   /* the browser is sent through again after a day */

/* "/user/NAME/oauth_callback" or "/user/NAME/SERVER/oauth_callback" (the
 * path part when absolute): the user and server it names, into the
 * request's arena.  -1 if it is not such a path. */
static int oauth_parse_redirect(http_req_t *req, const char *uri, const char **user, const char **server)
{
    const char *p = uri;
    if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
        p = strchr(strstr(p, "//") + 2, '/');
        if (!p) return -1;
    }
    if (strncmp(p, "/user/", 6) != 0) return -1;
    p += 6;
    const char *seg[3];
    size_t len[3], n = 0;
    while (*p && n < 3) {
        const char *e = strchr(p, '/');
        seg[n] = p;
        len[n] = e ? (size_t)(e - p) : strlen(p);
        n++;
        if (!e) break;
        p = e + 1;
    }
    if (*p && n == 3 && strchr(p, '/')) return -1;
    if (n == 2 && len[1] == 14 && strncmp(seg[1], "oauth_callback", 14) == 0) {
        *user = http_req_decode(req, seg[0], len[0], 0);
        *server = "";
    } else if (n == 3 && len[2] == 14 && strncmp(seg[2], "oauth_callback", 14) == 0 &&
               !strchr(seg[2], '?')) {
        *user = http_req_decode(req, seg[0], len[0], 0);
        *server = http_req_decode(req, seg[1], len[1], 0);
    } else {
        return -1;
    }
    return *user && *server && **user ? 0 : -1;
}

/* An error the browser shows (no redirect). */
static void oauth_page_error(http_req_t *req, int status, const char *msg)
{
    LOG_I("oauth authorize refused", "status=%d reason=\"%s\"", status, msg);
    api_hub_error(req, status, msg);
}

/* 302 to redirect_uri with error=... (the URI is checked). */
static void oauth_redirect_error(http_req_t *req, const char *redirect_uri, const char *error,
                                 const char *desc, const char *state)
{
    buf_t u = BUF_INIT;
    buf_printf(&u, "%s%serror=", redirect_uri, strchr(redirect_uri, '?') ? "&" : "?");
    urlesc_append(&u, error);
    buf_printf(&u, "&error_description=");
    urlesc_append(&u, desc);
    if (state) {
        buf_printf(&u, "&state=");
        urlesc_append(&u, state);
    }
    LOG_I("oauth authorize refused", "error=%s reason=\"%s\"", error, desc);
    http_set_header(req, "Location", u.data);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond(req, 302, "text/plain", "", 0);
    buf_free(&u);
}

/* The consent page for an admin opening another user's server. */
static void oauth_consent_page(http_req_t *req, const api_ctx_t *c, const char *user, const char *server)
{
    buf_t b = BUF_INIT, act = BUF_INIT;
    /* the form posts back to this very URL; the target is escaped for HTML */
    for (const char *p = http_req_target(req); *p; p++) {
        if (*p == '&') buf_puts(&act, "&amp;");
        else if (*p == '"') buf_puts(&act, "&quot;");
        else if (*p == '<') buf_puts(&act, "&lt;");
        else if (*p == '>') buf_puts(&act, "&gt;");
        else buf_putc(&act, *p);
    }
    buf_t who = BUF_INIT;
    for (const char *p = user; *p; p++) buf_printf(&who, strchr("&<>\"'", *p) ? "&#%d;" : "%c", *p);
    if (*server) {
        buf_putc(&who, '/');
        for (const char *p = server; *p; p++) buf_printf(&who, strchr("&<>\"'", *p) ? "&#%d;" : "%c", *p);
    }
    buf_printf(&b,
               "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Authorize access</title></head>"
               "<body><h1>Authorize access</h1><p>The server of <b>%s</b> would like to identify you "
               "(%s, an admin) and let you in.  Its owner controls what its pages do with your "
               "browser.</p><form method=\"post\" action=\"%s\"><input type=\"hidden\" "
               "name=\"_xsrf\" value=\"%s\"><button type=\"submit\">Authorize</button></form></body></html>",
               who.data, api_log_name(req, c->name), act.data, c->csrf);
    http_set_header(req, "Cache-Control", "no-store");
    http_set_header(req, "X-Frame-Options", "DENY");
    http_set_header(req, "Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
    http_respond(req, 200, "text/html; charset=utf-8", b.data, b.len);
    buf_free(&b);
    buf_free(&act);
    buf_free(&who);
}

static const char *oauth_form(http_req_t *req, const char *body, size_t len, const char *name, int *dup);

void api_hub_oauth_authorize(http_req_t *req, void *ud)
{
    api_t *a = ud;
    api_ctx_t c;
    /* The browser's session only: a bearer token is not a browser. */
    if (http_header(req, "Authorization") || api_auth_peek(a, req, &c) != 0 || !c.via_cookie) {
        buf_t u = BUF_INIT;
        buf_printf(&u, "/login?next=");
        urlesc_append(&u, http_req_target(req));
        http_set_header(req, "Location", u.data);
        http_respond(req, 302, "text/plain", "", 0);
        buf_free(&u);
        return;
    }
    const char *client_id = http_query(req, "client_id");
    const char *redirect_uri = http_query(req, "redirect_uri");
    const char *state = http_query(req, "state");
    const char *user, *server;
    if (!client_id || !redirect_uri) {
        oauth_page_error(req, 400, "Missing client_id or redirect_uri parameter.");
        return;
    }
    if (oauth_parse_redirect(req, redirect_uri, &user, &server) < 0) {
        oauth_page_error(req, 400, "Mismatching redirect URI.");
        return;
    }
    int64_t server_id = 0, owner_id = 0;
    char *want_uri = NULL, *want_id = NULL;
    if (api_hub_oauth_client(a, user, server, &server_id, &owner_id, &want_id, &want_uri) != 0 ||
        strcmp(want_id, client_id) != 0) {
        free(want_uri);
        free(want_id);
        oauth_page_error(req, 400, "Invalid client_id parameter value.");
        return;
    }
    int uri_ok = strcmp(want_uri, redirect_uri) == 0;
    free(want_uri);
    free(want_id);
    if (!uri_ok) {
        oauth_page_error(req, 400, "Mismatching redirect URI.");
        return;
    }
    /* the URI is checked from here on: errors go back to it */
    const char *rt = http_query(req, "response_type");
    if (!rt || strcmp(rt, "code") != 0) {
        oauth_redirect_error(req, redirect_uri, "unsupported_response_type", "response_type must be code",
                             state);
        return;
    }
    int consented = 0, posted = http_req_method_id(req) == HTTP_POST;
    if (posted) {
        /* the consent form, and nothing else, posts here */
        size_t blen;
        const char *body = http_req_body(req, &blen);
        int dup = 0;
        const char *x = oauth_form(req, body, blen, "_xsrf", &dup);
        if (dup || !x || !c.csrf || !token_equal(x, c.csrf)) {
            api_hub_error(req, 403, "'_xsrf' argument missing or wrong");
            return;
        }
    }
    if (owner_id != c.uid && c.admin && a->hub && hub_conf(a->hub)->admin_access) {
        if (!posted) {
            oauth_consent_page(req, &c, user, server);
            return;
        }
        consented = 1;
        LOG_W("oauth admin access", "admin=%s server_owner=%s server=%s", c.log_name,
              api_log_name(req, user), api_log_name(req, server));
    }
    if (owner_id != c.uid && !consented) {
        char msg[300];
        snprintf(msg, sizeof msg, "You do not have permission to access Server at /user/%.100s/%.100s",
                 user, server);
        LOG_W("oauth authorize for another user's server", "user=%s server_owner=%s", c.log_name,
              api_log_name(req, user));
        api_hub_error(req, 403, msg);
        return;
    }
    /* The scopes: identify and access to this server, less any the
     * request narrows them to ("scope", space separated). */
    char acc[700], fl[600];
    api_hub_server_filter(user, server, fl, sizeof fl);
    snprintf(acc, sizeof acc, "access:servers!server=%s", fl);
    scopes_t grant = SCOPES_INIT;
    scopes_add(&grant, acc);
    scopes_identify(c.name, &grant);
    json_t *l = scopes_to_json(&grant);
    char *scopes_json = json_dumps(l, JSON_COMPACT);
    json_decref(l);
    char code[OAUTH_CODE_LEN + 1];
    nb_err_t err;
    err_clear(&err);
    int rc = oauth_code_new(a->oauth, client_id, redirect_uri, http_query(req, "code_challenge"),
                            http_query(req, "code_challenge_method"), c.uid, server_id, scopes_json,
                            time_now_us(), code, &err);
    free(scopes_json);
    scopes_free(&grant);
    if (rc == -EINVAL) {
        oauth_redirect_error(req, redirect_uri, "invalid_request", err.msg, state);
        return;
    }
    if (rc) {
        api_hub_fail(req, rc, &err);
        return;
    }
    buf_t u = BUF_INIT;
    buf_printf(&u, "%s%scode=%s", redirect_uri, strchr(redirect_uri, '?') ? "&" : "?", code);
    if (state) {
        buf_printf(&u, "&state=");
        urlesc_append(&u, state);
    }
    LOG_I("oauth code issued", "user=%s client=%s", c.log_name, api_log_name(req, client_id));
    http_set_header(req, "Location", u.data);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond(req, 302, "text/plain", "", 0);
    memset(code, 0, sizeof code);
    buf_free(&u);
}

/* One field of an application/x-www-form-urlencoded body (request arena),
 * NULL if absent; a field given twice is refused (-1 via *dup). */
static const char *oauth_form(http_req_t *req, const char *body, size_t len, const char *name, int *dup)
{
    size_t nl = strlen(name);
    const char *found = NULL;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && body[e] != '&') e++;
        const char *eq = memchr(body + i, '=', e - i);
        size_t kl = eq ? (size_t)(eq - (body + i)) : e - i;
        if (kl == nl && memcmp(body + i, name, nl) == 0) {
            if (found) *dup = 1;
            found = eq ? http_req_decode(req, eq + 1, (size_t)(body + e - (eq + 1)), 1) : "";
        }
        i = e + 1;
    }
    return found;
}

static void oauth_token_error(http_req_t *req, int status, const char *error, const char *desc)
{
    LOG_I("oauth token refused", "error=%s reason=\"%s\"", error, desc);
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_json(req, status, json_pack("{s:s,s:s}", "error", error, "error_description", desc));
}

void api_hub_oauth_token(http_req_t *req, void *ud)
{
    api_t *a = ud;
    size_t len;
    const char *body = http_req_body(req, &len);
    int dup = 0;
    const char *client_id = oauth_form(req, body, len, "client_id", &dup);
    const char *secret = oauth_form(req, body, len, "client_secret", &dup);
    const char *grant = oauth_form(req, body, len, "grant_type", &dup);
    const char *code = oauth_form(req, body, len, "code", &dup);
    const char *redirect_uri = oauth_form(req, body, len, "redirect_uri", &dup);
    const char *verifier = oauth_form(req, body, len, "code_verifier", &dup);
    if (dup) {
        oauth_token_error(req, 400, "invalid_request", "Duplicate parameter");
        return;
    }
    if (!grant || strcmp(grant, "authorization_code") != 0) {
        oauth_token_error(req, 400, "unsupported_grant_type", "grant_type must be authorization_code");
        return;
    }
    /* The client: its secret is its server's own API token. */
    char digest[TOKEN_DIGEST_LEN + 1];
    store_token_t t;
    store_user_t owner;
    memset(&t, 0, sizeof t);
    memset(&owner, 0, sizeof owner);
    int client_ok = 0;
    if (client_id && secret && token_is(secret, TOKEN_API)) {
        token_digest(secret, digest);
        if (store_token_lookup(a->store, digest, time_now_us(), &t, &owner, NULL) == 0) {
            if (t.kind == STORE_TOKEN_SERVER && t.server_id) {
                char *want = api_hub_oauth_client_of(a, t.server_id);
                client_ok = want && strcmp(want, client_id) == 0;
                free(want);
            }
        }
    }
    if (!client_ok) {
        store_token_clear(&t);
        store_user_clear(&owner);
        oauth_token_error(req, 401, "invalid_client", "Client authentication failed");
        return;
    }
    oauth_grant_t g;
    nb_err_t err;
    err_clear(&err);
    int rc = oauth_code_redeem(a->oauth, code, client_id, redirect_uri, verifier, time_now_us(), &g, &err);
    if (rc == 0 && g.server_id != t.server_id) {
        oauth_grant_clear(&g);
        rc = err_set(&err, -EACCES, "code issued for another server");
    }
    int64_t server_id = t.server_id;
    store_token_clear(&t);
    store_user_clear(&owner);
    if (rc) {
        oauth_token_error(req, 400, "invalid_grant", err.msg);
        return;
    }
    char tok[TOKEN_LEN + 1];
    if (token_new(TOKEN_API, tok) < 0) {
        oauth_grant_clear(&g);
        oauth_token_error(req, 500, "server_error", "no randomness");
        return;
    }
    token_digest(tok, digest);
    int64_t now = time_now_us(), id;
    rc = store_token_add_scoped(a->store, g.user_id, client_id, digest, STORE_TOKEN_OAUTH, g.scopes,
                                server_id, now, now + (int64_t)OAUTH_TOKEN_TTL_S * 1000000, &id, &err);
    if (rc) {
        oauth_grant_clear(&g);
        oauth_token_error(req, 500, "server_error", "could not store the token");
        return;
    }
    buf_t scope = BUF_INIT;
    json_t *l = g.scopes ? json_loads(g.scopes, 0, NULL) : NULL;
    size_t i;
    json_t *v;
    json_array_foreach(l, i, v) buf_printf(&scope, "%s%s", i ? " " : "", json_string_value(v));
    json_decref(l);
    LOG_I("oauth token issued", "token_id=%lld client=%s", (long long)id, api_log_name(req, client_id));
    http_set_header(req, "Cache-Control", "no-store");
    http_set_header(req, "Pragma", "no-cache");
    http_respond_json(req, 200, json_pack("{s:s,s:s,s:i,s:s}", "access_token", tok, "token_type", "Bearer",
                                          "expires_in", OAUTH_TOKEN_TTL_S, "scope", scope.data ? scope.data : ""));
    memset(tok, 0, sizeof tok);
    buf_free(&scope);
    oauth_grant_clear(&g);
}
