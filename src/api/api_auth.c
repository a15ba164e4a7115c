/*
 * api_auth — who is asking, and may they: the router's before hook, and the
 * login / logout / me endpoints.
 *
 * Credentials.  Two kinds, looked up by digest only (token.h: the store
 * never sees a usable secret):
 *   - an API token in "Authorization: Bearer nbh_..." (or JupyterHub's
 *     "token nbh_..."), for the CLI and scripts;
 *   - the browser session cookie nbhub_session=nbs_..., set by login.
 * A request that sends an Authorization header is judged by it alone: a
 * bad token is a 401 even if a good cookie rides along, so a script never
 * silently acts as whoever last logged in with the same browser profile.
 * Unknown, expired and disabled all answer the same 401 (the store's codes
 * tell them apart for the log only).
 *
 * CSRF.  A browser attaches the cookie to requests other sites make it
 * send, so a cookie alone must not be able to change anything: every POST,
 * PUT, PATCH and DELETE authenticated by the cookie must also carry
 * X-CSRF-Token, a value the page got from the login answer and a foreign
 * page cannot read.  Compared in constant time.  Tokens in an
 * Authorization header cannot be attached by a foreign page, so they need
 * no CSRF header.  SameSite=Lax on the cookie is a second fence, not the
 * only one.  Login itself must be sent as application/json: an HTML form on
 * another site cannot send that without a CORS preflight, which we never
 * grant, so nobody can log a victim's browser into the attacker's account.
 *
 * Authorization, in the order of the route flags (api_int.h): admin-only,
 * self-or-admin on /users/:name, and for flows and runs visibility: the
 * hook loads the flow (or the run and its flow) and answers 404 when the
 * user may not see it, so a handler only ever runs on an object the caller
 * may act on, and names of other people's flows do not leak through a 403.
 *
 * Login cost.  passwd_verify is argon2id, 20-40 ms of CPU, run on libuv's
 * thread pool one check at a time (below).  An unknown user name still
 * costs one verification (against a dummy hash), so response times do not
 * tell which names exist.  Failures are limited per (name, client address)
 * and server-wide (auth/lockout.h); a password change's old password is
 * checked in the same queue under the same limits, so a stolen session or
 * token cannot guess it faster than a login could.
 *
 * Logout ends the credential it was sent with: the session (cookie) or the
 * API token (bearer), so a script can drop its token without its id.
 *
 * Secrets are never logged: neither tokens, cookies, CSRF values nor
 * passwords appear in any log line; failed logins log the (sanitised) user
 * name and the peer.
 */
#include "api/api_int.h"
#include "auth/lockout.h"
#include "auth/passwd.h"
#include "auth/token.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BAD_CREDENTIALS "invalid or expired credentials"
#define BAD_LOGIN "wrong user name or password"

static void api_auth_cookie(api_t *a, http_req_t *req, const char *value, int max_age)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             API_SESSION_COOKIE, value, max_age, a->secure_cookies || http_req_tls(req) ? "; Secure" : "");
    http_set_header(req, "Set-Cookie", buf);
}

/* The token of an Authorization header ("Bearer X" / "token X"), or NULL. */
static const char *api_auth_header_token(const char *h)
{
    size_t n;
    if (strncasecmp(h, "Bearer ", 7) == 0) n = 7;
    else if (strncasecmp(h, "token ", 6) == 0) n = 6;
    else return NULL;
    h += n;
    while (*h == ' ') h++;
    return *h ? h : NULL;
}

static void api_auth_ctx_user(http_req_t *req, api_ctx_t *c, const store_user_t *u)
{
    c->uid = u->id;
    c->name = http_req_strdup(req, u->name);
    c->log_name = api_log_name(req, u->name);
    c->admin = u->is_admin;
}

/* The token tok (from an Authorization header): 0 and *c, -EACCES, or a
 * store error. */
static int api_auth_token(api_t *a, http_req_t *req, const char *tok, api_ctx_t *c, nb_err_t *err)
{
    char digest[TOKEN_DIGEST_LEN + 1];
    store_user_t u;
    if (tok && !token_is(tok, TOKEN_API) && a->oidc && strchr(tok, '.')) {
        /* The identity provider's access token (api_oidc.c). */
        int64_t uid;
        const char *why, *sid;
        int rc = api_oidc_bearer(a, req, tok, &uid, &why, &sid);
        if (rc) return rc;
        if ((rc = store_user_by_id(a->store, uid, &u, err))) return rc;
        api_auth_ctx_user(req, c, &u);
        c->idp_sid = sid;
        store_user_clear(&u);
        return 0;
    }
    if (!tok || !token_is(tok, TOKEN_API)) return -EACCES;
    token_digest(tok, digest);
    store_token_t t;
    int rc = store_token_lookup(a->store, digest, time_now_us(), &t, &u, err);
    if (rc == -ENOENT || rc == -EKEYEXPIRED || rc == -EACCES) return -EACCES;
    if (rc) return rc;
    if (u.disabled) {
        rc = -EACCES;
    } else {
        api_auth_ctx_user(req, c, &u);
        c->token_digest = http_req_strdup(req, digest);
        c->token_id = t.id;
        c->token_kind = t.kind;
        c->token_scopes = t.scopes ? http_req_strdup(req, t.scopes) : NULL;
        c->token_server_id = t.server_id;
        c->token_server = t.server_name ? http_req_strdup(req, t.server_name) : NULL;
        c->token_server_owner = t.server_owner ? http_req_strdup(req, t.server_owner) : NULL;
    }
    store_token_clear(&t);
    store_user_clear(&u);
    return rc;
}

/* The session cookie: 0 and *c, -EACCES (none, or not a live session), or
 * a store error. */
static int api_auth_session(api_t *a, http_req_t *req, api_ctx_t *c, nb_err_t *err)
{
    char digest[TOKEN_DIGEST_LEN + 1];
    store_user_t u;
    const char *cookie = http_cookie(req, API_SESSION_COOKIE);
    if (!cookie || !token_is(cookie, TOKEN_SESSION)) return -EACCES;
    token_digest(cookie, digest);
    store_session_t s;
    int rc = store_session_lookup(a->store, digest, time_now_us(), &s, &u, err);
    if (rc == -ENOENT || rc == -EKEYEXPIRED || rc == -EACCES) return -EACCES;
    if (rc) return rc;
    if (u.disabled) {
        rc = -EACCES;
    } else {
        api_auth_ctx_user(req, c, &u);
        c->via_cookie = 1;
        c->session_digest = http_req_strdup(req, digest);
        c->csrf = http_req_strdup(req, s.csrf_token);
    }
    store_session_clear(&s);
    store_user_clear(&u);
    return rc;
}

/* Fill c from the request's credentials: 0, or -EACCES (no or bad
 * credentials, *why says which message), or another errno (store trouble).
 * An Authorization header is the credential when there is one (a bad one
 * is not retried with the cookie); else the session cookie. */
static int api_auth_identify(api_t *a, http_req_t *req, api_ctx_t *c, const char **why,
                             nb_err_t *err)
{
    const char *h = http_header(req, "Authorization");
    if (h) {
        *why = BAD_CREDENTIALS;
        return api_auth_token(a, req, api_auth_header_token(h), c, err);
    }
    if (http_cookie(req, API_SESSION_COOKIE)) {
        *why = BAD_CREDENTIALS;
        return api_auth_session(a, req, c, err);
    }
    *why = "authentication required";
    return -EACCES;
}

int api_auth_peek_header(api_t *a, http_req_t *req, api_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    const char *h = http_header(req, "Authorization");
    nb_err_t err;
    err_clear(&err);
    return h ? api_auth_token(a, req, api_auth_header_token(h), c, &err) : -EACCES;
}

int api_auth_peek_cookie(api_t *a, http_req_t *req, api_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    nb_err_t err;
    err_clear(&err);
    return api_auth_session(a, req, c, &err);
}

static int api_auth_unsafe_method(const http_req_t *req)
{
    switch (http_req_method_id(req)) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
        return 0;
    default:
        return 1;
    }
}

/* API_FLOW: the flow must exist (live) and be visible. */
static int api_auth_flow(api_t *a, http_req_t *req, api_ctx_t *c)
{
    const char *name = http_param(req, "name");
    store_flow_t f;
    nb_err_t err;
    err_clear(&err);
    int rc = store_flow_get(a->store, name, 0, &f, &err);
    if (rc == -ENOENT || (rc == 0 && !api_may_see(c, f.owner_id))) {
        if (rc == 0) store_flow_clear(&f);
        char msg[160];
        snprintf(msg, sizeof msg, "no flow named '%.100s'", name);
        api_error(req, 404, "not_found", msg);
        return -1;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return -1;
    }
    c->flow = http_req_strdup(req, f.name);
    c->flow_id = f.id;
    store_flow_clear(&f);
    return 0;
}

int api_auth_run_visible(api_t *a, http_req_t *req, api_ctx_t *c, int64_t id, nb_err_t *err)
{
    store_run_t r;
    int rc = store_run_get(a->store, id, &r, NULL, err);
    if (rc == 0) {
        /* The owner of the incarnation the run belongs to, not of whatever
         * flow has the name today (it may have been deleted and created
         * again by someone else). */
        store_flow_t f;
        rc = store_flow_get_id(a->store, r.flow_id, &f, err);
        if (rc == 0) {
            if (api_may_see(c, f.owner_id)) {
                c->flow = http_req_strdup(req, r.flow);
                c->flow_id = r.flow_id;
                c->run = r.id;
            } else {
                rc = -ENOENT;
            }
            store_flow_clear(&f);
        }
        store_run_clear(&r);
    }
    return rc;
}

/* API_RUN: the run must exist and its flow incarnation (live or deleted)
 * be visible. */
static int api_auth_run(api_t *a, http_req_t *req, api_ctx_t *c)
{
    int64_t id;
    nb_err_t err;
    err_clear(&err);
    if (api_parse_i64(http_param(req, "id"), 1, INT64_MAX, &id) < 0) {
        api_error(req, 404, "not_found", "no such run");
        return -1;
    }
    int rc = api_auth_run_visible(a, req, c, id, &err);
    if (rc == -ENOENT) {
        api_error(req, 404, "not_found", "no such run");
        return -1;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return -1;
    }
    return 0;
}

/* May this credential use nbhub's own API (/api/v1, the UI's pages, the
 * Spark UIs)?  Sessions and the user's own 'api' tokens may.  A server's
 * token may not: user code inside the notebook server can read it
 * (JUPYTERHUB_API_TOKEN), so it is held to the few /hub/api routes
 * jupyterhub-singleuser needs.  Nor an 'oauth' token (it identifies a
 * browser to one notebook server), nor an 'api' token created with
 * JupyterHub scopes (the idle culler's list:users, delete:servers ...):
 * /api/v1 has no scopes, so such a token could only mean all the owner's
 * rights there, which is what its scopes were chosen not to give. */
int api_auth_full(const api_ctx_t *c)
{
    if (c->via_cookie || !c->token_digest) return 1;
    if (c->token_kind != STORE_TOKEN_API) return 0;
    return c->token_scopes == NULL || api_hub_scopes_inherit(c->token_scopes);
}

int api_auth_peek_any(api_t *a, http_req_t *req, api_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    const char *why;
    nb_err_t err;
    err_clear(&err);
    return api_auth_identify(a, req, c, &why, &err);
}

int api_auth_peek(api_t *a, http_req_t *req, api_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    const char *why;
    nb_err_t err;
    err_clear(&err);
    int rc = api_auth_identify(a, req, c, &why, &err);
    if (rc == 0 && !api_auth_full(c)) {
        memset(c, 0, sizeof *c);
        return -EACCES;
    }
    return rc;
}

int api_auth_before(http_req_t *req, const struct http_route *route, void *ud)
{
    api_t *a = ud;
    unsigned fl = route->flags;
    /* JupyterHub's API authenticates and authorizes by its own rules
     * (scopes, its error shape): api_hub.c, still in this one hook. */
    if (fl & API_F_HUB) return api_hub_before(a, req, route);
    /* The Livy API: Basic too, Livy's CSRF header and shapes (api_livy_auth.c). */
    if (fl & API_F_LIVY) return api_livy_before(a, req, route);
    if (!(fl & API_F_AUTH)) return 0;
    api_ctx_t *c = http_req_alloc(req, sizeof *c);
    memset(c, 0, sizeof *c);
    const char *why = BAD_CREDENTIALS;
    nb_err_t err;
    err_clear(&err);
    int rc = api_auth_identify(a, req, c, &why, &err);
    if (rc == -EACCES) {
        /* A stale cookie is worth clearing, so the browser stops sending it. */
        if (!http_header(req, "Authorization") && http_cookie(req, API_SESSION_COOKIE))
            api_auth_cookie(a, req, "", 0);
        api_error(req, 401, "unauthorized", why);
        return 1;
    }
    if (rc == -EBUSY) {
        /* The database stayed locked (another process): not a conflict
         * of this request's making. */
        api_error(req, 503, "unavailable", "the database is busy, try again");
        return 1;
    }
    if (rc) {
        api_fail(req, rc, &err);
        return 1;
    }
    if (c->via_cookie && api_auth_unsafe_method(req)) {
        const char *sent = http_header(req, "X-CSRF-Token");
        if (!sent || !token_equal(sent, c->csrf)) {
            api_error(req, 403, "csrf", "missing or wrong X-CSRF-Token header");
            return 1;
        }
    }
    if (!api_auth_full(c)) {
        LOG_W("token refused outside /hub/api", "user=%s token_id=%lld kind=%s method=%s route=\"%s\"",
              c->log_name, (long long)c->token_id, store_token_kind_name(c->token_kind),
              http_req_method(req), route->pattern);
        api_error(req, 403, "forbidden",
                  "this token is limited to JupyterHub's API (/hub/api): a notebook server's or "
                  "OAuth token, or one created with scopes");
        return 1;
    }
    http_req_set_user(req, c);
    if ((fl & API_F_ADMIN) && !c->admin) {
        api_error(req, 403, "forbidden", "admins only");
        return 1;
    }
    if ((fl & API_F_SELF) && !c->admin && strcmp(http_param(req, "name"), c->name) != 0) {
        api_error(req, 403, "forbidden", "only the user themself or an admin may do this");
        return 1;
    }
    if ((fl & API_F_FLOW) && api_auth_flow(a, req, c) < 0) return 1;
    if ((fl & API_F_RUN) && api_auth_run(a, req, c) < 0) return 1;
    if ((fl & API_F_CLUSTER) && api_spark_auth(a, req, c) < 0) return 1;
    return 0;
}

int api_auth_recheck(api_t *a, int via_cookie, const char *digest, int64_t uid, int *admin)
{
    store_user_t u;
    nb_err_t err;
    int64_t now = time_now_us();
    int rc = via_cookie ? store_session_lookup(a->store, digest, now, NULL, &u, &err)
                        : store_token_lookup(a->store, digest, now, NULL, &u, &err);
    if (rc == -ENOENT || rc == -EKEYEXPIRED || rc == -EACCES) return 0;
    if (rc) return rc;
    int ok = !u.disabled && u.id == uid;
    if (ok) *admin = u.is_admin;
    store_user_clear(&u);
    return ok;
}

/* ---- endpoints ------------------------------------------------------------ */

static int api_auth_is_json(const http_req_t *req)
{
    const char *ct = http_header(req, "Content-Type");
    if (!ct) return 0;
    size_t n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

void api_auth_peer_key(const char *peer, char *out, size_t size)
{
    char host[64];
    const char *p = peer;
    const char *e = p[0] == '[' ? strchr(p, ']') : strrchr(p, ':');
    if (p[0] == '[') p++;
    size_t n = e && e >= p ? (size_t)(e - p) : strlen(p);
    if (n >= sizeof host) n = sizeof host - 1;
    memcpy(host, p, n);
    host[n] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, a6.s6_addr + 12, host, sizeof host);
        } else {
            memset(a6.s6_addr + 8, 0, 8);
            inet_ntop(AF_INET6, &a6, host, sizeof host - 3);
            strcat(host, "/64");
        }
    }
    snprintf(out, size, "%s", host);
}

static const char *api_auth_client_addr(http_req_t *req)
{
    char key[64];
    api_auth_peer_key(http_req_peer(req), key, sizeof key);
    return http_req_strdup(req, key);
}

/*
 * Password checks — a login's, or the old password of a password change —
 * done on libuv's thread pool: argon2id with m = 19 MiB takes ~35 ms,
 * which on the loop would stall every request, event stream and task of
 * the daemon.  Checks run one at a time (a queue in front of the pool):
 * memory stays at one argon2 work area, and a burst of guesses is served
 * at argon2's pace, ~30 per second, without slowing anything else.  A
 * password change hashes its new password in the same job.  Both kinds
 * count their failures in the same lockout, so a stolen session cannot
 * guess the old password faster than a login could.
 */
struct api_login_job {
    uv_work_t              work;
    api_t                 *a;
    http_req_t            *req;
    store_user_t           u;
    int                    found;      /* u holds a user with a password */
    char                  *password;   /* login: the password; change: the old one,
                                        * NULL when none is checked (wiped, freed) */
    char                  *name;       /* as given: the lockout's key */
    char                  *addr;       /* the client's address: the lockout's key too */
    char                  *logname;    /* the name as logs may show it */
    char                  *new_hash;   /* rehash / the new password's hash, or NULL */
    int                    ok;
    /* a password change */
    int                    change;
    char                  *new_password;   /* wiped, freed */
    int                    hash_rc;
    nb_err_t               hash_err;
    char                  *keep_session;   /* digest of the session that survives */
    int                    revoke_tokens;
    /* HTTP Basic on the Livy routes (api_auth_basic_check) */
    api_basic_fn           basic;
    void                  *basic_ud;
    struct api_login_job  *next;
};

static void api_login_start_next(api_t *a);

/* Same work for a name that does not exist (or has no password).  One job
 * at a time, so the lazy dummy hash is not raced. */
static void api_login_dummy(api_t *a, const char *password)
{
    if (!a->dummy_hash) passwd_hash("nbhub-no-such-user-password", &a->dummy_hash, NULL);
    if (a->dummy_hash) (void)passwd_verify(a->dummy_hash, password);
}

static void api_login_work(uv_work_t *w)
{
    struct api_login_job *j = w->data;
    api_t *a = j->a;
    if (j->change) {
        j->ok = !j->password || passwd_verify(j->u.password_hash, j->password) == 1;
        if (j->ok) j->hash_rc = passwd_hash(j->new_password, &j->new_hash, &j->hash_err);
        return;
    }
    if (j->found) {
        j->ok = passwd_verify(j->u.password_hash, j->password) == 1 && !j->u.disabled;
        /* Hashes made with weaker parameters are upgraded while we hold the
         * password (written by the loop, below). */
        if (j->ok && passwd_needs_rehash(j->u.password_hash) && passwd_hash(j->password, &j->new_hash, NULL) != 0)
            j->new_hash = NULL;
    } else {
        api_login_dummy(a, j->password);
        j->ok = 0;
    }
}

static void api_login_wipe(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void api_login_free(struct api_login_job *j)
{
    api_login_wipe(j->password);
    api_login_wipe(j->new_password);
    free(j->new_hash);
    free(j->name);
    free(j->addr);
    free(j->logname);
    free(j->keep_session);
    if (j->found || j->u.name) store_user_clear(&j->u);
    free(j);
}

static void api_login_finish(struct api_login_job *j);
static void api_passwd_finish(struct api_login_job *j);
static void api_basic_finish(struct api_login_job *j);

static void api_login_done(uv_work_t *w, int status)
{
    struct api_login_job *j = w->data;
    api_t *a = j->a;
    a->login_running = NULL;
    if (status != 0) api_error(j->req, 503, "unavailable", "the password could not be checked");
    else if (j->change) api_passwd_finish(j);
    else if (j->basic) api_basic_finish(j);
    else api_login_finish(j);
    api_login_free(j);
    api_login_start_next(a);
}

/* 429 with Retry-After if name must wait from addr, or the whole server
 * has had too many failures (lockout.h); 1 if refused. */
static int api_login_locked(api_t *a, http_req_t *req, const char *name, const char *addr,
                            const char *logname)
{
    int64_t now = time_now_us();
    int64_t wait = lockout_wait_s(a->lockout, name, addr, now);
    const char *why = "too many failed logins for this user name from this address";
    const char *scope = "name_address";
    if (!wait) {
        wait = lockout_global_wait_s(a->lockout, now);
        why = "too many failed logins on this server";
        scope = "server";
    }
    if (!wait) return 0;
    char v[24], msg[160];
    snprintf(v, sizeof v, "%lld", (long long)wait);
    snprintf(msg, sizeof msg, "%s; try again in %lld s", why, (long long)wait);
    LOG_W("login refused: locked out", "user=%s peer=%s wait_s=%lld scope=%s", logname,
          http_req_peer(req), (long long)wait, scope);
    http_set_header(req, "Retry-After", v);
    api_error(req, 429, "too_many_requests", msg);
    return 1;
}

static void api_login_start_next(api_t *a)
{
    while (!a->login_running && a->login_queue) {
        struct api_login_job *j = a->login_queue;
        a->login_queue = j->next;
        if (!a->login_queue) a->login_tail = NULL;
        /* A burst queued before the lockout began is refused here.  A
         * change that checks no old password (an admin's) is not a guess. */
        if ((!j->change || j->password) && api_login_locked(a, j->req, j->name, j->addr, j->logname)) {
            api_login_free(j);
            continue;
        }
        a->login_running = j;
        j->work.data = j;
        if (uv_queue_work(a->loop, &j->work, api_login_work, api_login_done) == 0) return;
        a->login_running = NULL;
        api_error(j->req, 503, "unavailable", "the password could not be checked");
        api_login_free(j);
    }
}

static void api_login_enqueue(api_t *a, struct api_login_job *j)
{
    if (a->login_tail) a->login_tail->next = j;
    else a->login_queue = j;
    a->login_tail = j;
    api_login_start_next(a);
}

/* A password check for the queue: the user's row (a user without a
 * password, or none of that name, is checked against the dummy hash all
 * the same, so timing tells nothing), the name, password and address it
 * came with.  NULL when the store failed; the request is answered. */
static struct api_login_job *login_job_new(api_t *a, http_req_t *req, const char *name, const char *pw,
                                           const char *addr)
{
    struct api_login_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->req = req;
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_by_name(a->store, name, &j->u, &err);
    if (rc && rc != -ENOENT) {
        free(j);
        api_fail(req, rc, &err);
        return NULL;
    }
    if (rc == 0 && !j->u.password_hash) {
        store_user_clear(&j->u);
        memset(&j->u, 0, sizeof j->u);
    } else if (rc == 0) {
        j->found = 1;
    }
    j->password = xstrdup(pw);
    j->name = xstrdup(name);
    j->addr = xstrdup(addr);
    j->logname = xstrdup(api_log_name(req, name));
    return j;
}

void api_auth_login(http_req_t *req, void *ud)
{
    api_t *a = ud;
    if (!a->local_login) {
        /* auth.local: false — SSO only; the break-glass is `nbhub user
         * token NAME --home DIR` on the server (docs/sso.md). */
        api_error(req, 403, "forbidden", "password login is turned off on this server; log in with single sign-on");
        return;
    }
    if (!api_auth_is_json(req)) {
        api_error(req, 400, "bad_request", "login needs Content-Type: application/json");
        return;
    }
    json_t *body;
    if (api_body_object(req, 0, API_MEMBERS("username", "password"), &body) < 0) return;
    const char *name = json_string_value(json_object_get(body, "username"));
    const char *pw = json_string_value(json_object_get(body, "password"));
    if (!name || !pw) {
        json_decref(body);
        api_error(req, 400, "bad_request", "username and password (strings) are required");
        return;
    }
    const char *addr = api_auth_client_addr(req);
    if (api_login_locked(a, req, name, addr, api_log_name(req, name))) {
        json_decref(body);
        return;
    }
    struct api_login_job *j = login_job_new(a, req, name, pw, addr);
    json_decref(body);
    if (!j) return;
    api_login_enqueue(a, j);
}

/* Back on the loop: the rehash, the session, the answer. */
static void api_login_finish(struct api_login_job *j)
{
    api_t *a = j->a;
    http_req_t *req = j->req;
    const char *logname = j->logname;
    nb_err_t err;
    err_clear(&err);
    if (!j->ok) {
        lockout_failed(a->lockout, j->name, j->addr, time_now_us());
        LOG_I("login failed", "user=%s peer=%s", logname, http_req_peer(req));
        api_error(req, 401, "unauthorized", BAD_LOGIN);
        return;
    }
    store_user_t *u = &j->u;
    /* The store ends the user's other sessions when the hash changes; that
     * happens once per parameter change, before this login's session is
     * created, so this login survives it. */
    if (j->new_hash && store_user_set_password(a->store, u->id, j->new_hash, &err) != 0)
        LOG_W("password rehash failed", "user=%s error=\"%s\"", logname, err.msg);
    char sess[TOKEN_LEN + 1], csrf[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    if (token_new(TOKEN_SESSION, sess) < 0 || token_new(TOKEN_CSRF, csrf) < 0) {
        api_fail(req, -EIO, NULL);
        return;
    }
    token_digest(sess, digest);
    int64_t now = time_now_us();
    int rc = store_session_add(a->store, digest, csrf, u->id, now, now + API_SESSION_TTL_US, NULL, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    lockout_succeeded(a->lockout, j->name, j->addr);
    LOG_I("login", "user=%s peer=%s", logname, http_req_peer(req));
    api_auth_cookie(a, req, sess, (int)(API_SESSION_TTL_US / 1000000));
    json_t *ans = json_object();
    json_object_set_new(ans, "user", api_json_user(u));
    json_object_set_new(ans, "csrf_token", json_string(csrf));
    /* The answer carries a secret: no cache may keep it. */
    http_set_header(req, "Cache-Control", "no-store");
    http_respond_json(req, 200, ans);
}

/* ---- HTTP Basic (the Livy routes) ---------------------------------------- */

void api_auth_basic_check(api_t *a, http_req_t *req, const char *name, const char *pw, api_basic_fn done,
                          void *ud)
{
    const char *addr = api_auth_client_addr(req);
    if (api_login_locked(a, req, name, addr, api_log_name(req, name))) return;
    struct api_login_job *j = login_job_new(a, req, name, pw, addr);
    if (!j) return;
    j->basic = done;
    j->basic_ud = ud;
    api_login_enqueue(a, j);
}

/* As a login's end, without the session: the lockout counts it, a weak
 * hash is upgraded, and the caller decides what the request gets. */
static void api_basic_finish(struct api_login_job *j)
{
    api_t *a = j->a;
    nb_err_t err;
    if (!j->ok) {
        lockout_failed(a->lockout, j->name, j->addr, time_now_us());
        LOG_I("basic auth failed", "user=%s peer=%s", j->logname, http_req_peer(j->req));
        j->basic(j->req, NULL, j->basic_ud);
        return;
    }
    if (j->new_hash && store_user_set_password(a->store, j->u.id, j->new_hash, &err) != 0)
        LOG_W("password rehash failed", "user=%s error=\"%s\"", j->logname, err.msg);
    lockout_succeeded(a->lockout, j->name, j->addr);
    j->basic(j->req, &j->u, j->basic_ud);
}

/* ---- password change ----------------------------------------------------- */

void api_auth_password_change(api_t *a, http_req_t *req, store_user_t *u, const char *old_pw,
                              const char *new_pw, int revoke_tokens)
{
    const api_ctx_t *c = api_ctx(req);
    int self = c->uid == u->id;
    const char *addr = api_auth_client_addr(req);
    const char *logname = api_log_name(req, u->name);
    /* One's own password needs the old one, admin or not: whoever holds a
     * session or a token must not be able to take the account over.  A
     * user who has none yet (token login only) sets the first freely: the
     * token can do anything a password could. */
    int need_old = self && u->password_hash;
    if (need_old && api_login_locked(a, req, u->name, addr, logname)) {
        store_user_clear(u);
        return;
    }
    if (need_old && !old_pw) {
        lockout_failed(a->lockout, u->name, addr, time_now_us());
        LOG_I("password change refused: no old password", "user=%s peer=%s", logname,
              http_req_peer(req));
        api_error(req, 403, "forbidden", "changing your own password needs the current one in old_password");
        store_user_clear(u);
        return;
    }
    struct api_login_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->req = req;
    j->change = 1;
    j->u = *u;
    memset(u, 0, sizeof *u);
    j->found = 1;
    j->password = need_old ? xstrdup(old_pw) : NULL;
    j->new_password = xstrdup(new_pw);
    j->name = xstrdup(j->u.name);
    j->addr = xstrdup(addr);
    j->logname = xstrdup(logname);
    /* The session that made the change stays (as JupyterHub and GitHub
     * do): its owner just proved to know the password. */
    j->keep_session = self && c->via_cookie ? xstrdup(c->session_digest) : NULL;
    j->revoke_tokens = revoke_tokens;
    api_login_enqueue(a, j);
}

static void api_passwd_finish(struct api_login_job *j)
{
    api_t *a = j->a;
    http_req_t *req = j->req;
    if (!j->ok) {
        lockout_failed(a->lockout, j->name, j->addr, time_now_us());
        LOG_I("password change refused: wrong old password", "user=%s peer=%s", j->logname,
              http_req_peer(req));
        api_error(req, 403, "forbidden", "old_password is not your current password");
        return;
    }
    if (j->hash_rc) {
        api_fail(req, j->hash_rc, &j->hash_err);
        return;
    }
    nb_err_t err;
    err_clear(&err);
    int rc = store_user_change_password(a->store, j->u.id, j->new_hash, j->keep_session,
                                        j->revoke_tokens, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    if (j->password) lockout_succeeded(a->lockout, j->name, j->addr);
    LOG_I("password changed", "user=%s by=%s session_kept=%d tokens_revoked=%d", j->logname,
          api_ctx(req)->log_name, j->keep_session != NULL, j->revoke_tokens);
    http_respond(req, 204, NULL, "", 0);
}

/* ---- logout -------------------------------------------------------------- */

/* With the cookie: that session ends and the cookie is cleared.  With a
 * token: that token is revoked — what a script's "log out" means, and the
 * only way to end a token one holds without knowing its id. */
void api_auth_logout(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    nb_err_t err;
    err_clear(&err);
    /* A session from the provider: the answer names the provider's
     * end-session URL, which the UI opens, so the provider's session ends
     * too (else the next "log in" would be let straight back in). */
    char *logout_url = c->via_cookie ? api_oidc_logout_url(a, req, c->session_digest) : NULL;
    int rc = c->via_cookie ? store_session_delete(a->store, c->session_digest, &err)
           : c->token_digest ? store_token_revoke_hash(a->store, c->token_digest, &err) : 0;
    if (rc && rc != -ENOENT) {
        free(logout_url);
        api_fail(req, rc, &err);
        return;
    }
    if (c->via_cookie) {
        api_auth_cookie(a, req, "", 0);
    } else if (c->token_digest) {
        LOG_I("token revoked by logout", "user=%s peer=%s", c->log_name, http_req_peer(req));
    }
    if (logout_url) {
        json_t *j = json_pack("{s:s}", "logout_url", logout_url);
        free(logout_url);
        http_set_header(req, "Cache-Control", "no-store");
        http_respond_json(req, 200, j);
        return;
    }
    http_respond(req, 204, NULL, "", 0);
}

void api_auth_me(http_req_t *req, void *ud)
{
    api_t *a = ud;
    const api_ctx_t *c = api_ctx(req);
    store_user_t u;
    nb_err_t err;
    int rc = store_user_by_id(a->store, c->uid, &u, &err);
    if (rc) {
        api_fail(req, rc, &err);
        return;
    }
    json_t *j = api_json_user(&u);
    store_user_clear(&u);
    /* A page reloaded by the browser has the cookie but lost the CSRF
     * token it got at login; other origins cannot read this answer (no
     * CORS), so handing it out again here is safe. */
    if (c->via_cookie && c->csrf) json_object_set_new(j, "csrf_token", json_string(c->csrf));
    http_respond_json(req, 200, j);
}
