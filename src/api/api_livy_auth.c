/*
 * api_livy_auth — who is calling the Livy API (docs/livy.md), and the
 * livy_listen listener that serves it at / for clients that cannot take a
 * path prefix.
 *
 * Credentials, in the order of api_auth's rule (an Authorization header
 * is judged alone; else the session cookie):
 *   - "Authorization: Basic" with an nbhub user's name and password:
 *     sparkmagic's Basic_Access, and what most Livy scripts send;
 *   - "Authorization: Bearer nbh_..." / "token nbh_...": nbhub's own API
 *     tokens (a full 'api' token: api_auth_full), for Airflow and scripts;
 *   - the browser's session cookie, with X-CSRF-Token on POST/DELETE as
 *     everywhere in nbhub.
 *
 * Basic costs a password check per request, and Livy clients send it on
 * every request: sparkmagic polls a statement several times a second and
 * GETs its session every 30 s.  argon2id is ~35 ms, one at a time
 * (api_auth's queue), so checking each would put a floor of 35 ms under
 * every statement and let one client's polling starve the logins.  A
 * good name:password pair is therefore remembered for five minutes as an
 * HMAC-SHA256 under a key made at start (the password itself is never
 * kept), together with the hash it matched: a password change, a disabled
 * user or a deleted one is seen at the next request, since every hit
 * reads the user's row again (one indexed SELECT).  A miss is a login in
 * every respect: the same queue, the same lockout (auth/lockout.h: per
 * name and address, and server-wide), 429 while locked out; wrong
 * passwords are never remembered.
 *
 * The check runs on the thread pool, so it cannot run on the head alone
 * (api_gate's pass, which must answer at once): a Basic request whose pair
 * is not remembered is let in on the head with the small body limit of
 * requests no credential vouches for (http.anon_body) and checked when its
 * body is in (the hook's second pass), before any handler runs.
 *
 * X-Requested-By: with `livy: {csrf: true}` every POST and DELETE must
 * carry it (any value), Livy's own CSRF rule (livy.server.csrf-protection
 * .enabled), answered as Livy answers it: 400 "Missing Required Header for
 * CSRF protection.".  Off by default, as in Livy: sparkmagic 0.23 sends it
 * only from its config's custom_headers, Airflow's LivyHook only from
 * extra_headers.
 *
 * Refusals are in Livy's shape ({"msg"}): 401 with WWW-Authenticate:
 * Basic, 403 for a token limited to the hub, 400 for the CSRF header.
 */
#include "api/api_int.h"
#include "auth/token.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC_TTL_US   (300LL * 1000000)
#define BASIC_ENTRIES  128

struct basic_ent {
    unsigned char mac[32];
    int64_t       uid;
    char         *hash;      /* the password hash it matched */
    int64_t       until;
};

struct api_livy_auth {
    unsigned char    key[32];
    struct basic_ent ents[BASIC_ENTRIES];
    size_t           next;   /* round robin: the oldest entry goes first */
};

static struct api_livy_auth *livy_auth(api_t *a)
{
    if (!a->livy_auth) {
        a->livy_auth = xcalloc(1, sizeof *a->livy_auth);
        if (RAND_bytes(a->livy_auth->key, sizeof a->livy_auth->key) != 1) abort();
    }
    return a->livy_auth;
}

void api_livy_auth_free(struct api_livy_auth *la)
{
    if (!la) return;
    for (size_t i = 0; i < BASIC_ENTRIES; i++) free(la->ents[i].hash);
    OPENSSL_cleanse(la, sizeof *la);
    free(la);
}

static void basic_mac(struct api_livy_auth *la, const char *name, const char *pw, unsigned char out[32])
{
    size_t nl = strlen(name), pl = strlen(pw);
    unsigned char *msg = xmalloc(nl + pl + 1);
    memcpy(msg, name, nl);
    msg[nl] = 0;   /* "ab" + "c" and "a" + "bc" differ */
    memcpy(msg + nl + 1, pw, pl);
    unsigned int len = 32;
    HMAC(EVP_sha256(), la->key, sizeof la->key, msg, nl + pl + 1, out, &len);
    OPENSSL_cleanse(msg, nl + pl + 1);
    free(msg);
}

/* A remembered pair: 0 and *u (the user's row, still with that hash and
 * enabled), or -ENOENT. */
static int basic_cached(api_t *a, const unsigned char mac[32], store_user_t *u)
{
    struct api_livy_auth *la = livy_auth(a);
    int64_t now = time_now_us();
    for (size_t i = 0; i < BASIC_ENTRIES; i++) {
        struct basic_ent *e = &la->ents[i];
        if (!e->hash || e->until < now || CRYPTO_memcmp(e->mac, mac, 32) != 0) continue;
        if (store_user_by_id(a->store, e->uid, u, NULL) == 0) {
            if (!u->disabled && u->password_hash && !strcmp(u->password_hash, e->hash)) return 0;
            store_user_clear(u);
        }
        free(e->hash);
        e->hash = NULL;
        return -ENOENT;
    }
    return -ENOENT;
}

static void basic_remember(api_t *a, const unsigned char mac[32], const store_user_t *u)
{
    struct api_livy_auth *la = livy_auth(a);
    struct basic_ent *e = &la->ents[la->next];
    la->next = (la->next + 1) % BASIC_ENTRIES;
    free(e->hash);
    memcpy(e->mac, mac, 32);
    e->uid = u->id;
    e->hash = xstrdup(u->password_hash);
    e->until = time_now_us() + BASIC_TTL_US;
}

static void livy_401(http_req_t *req, const char *msg)
{
    http_set_header(req, "WWW-Authenticate", "Basic realm=\"nbhub\", charset=\"UTF-8\"");
    api_livy_error(req, 401, msg);
}

static int unsafe_method(const http_req_t *req)
{
    int m = http_req_method_id(req);
    return m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS;
}

static void ctx_user(http_req_t *req, api_ctx_t *c, const store_user_t *u)
{
    c->uid = u->id;
    c->name = http_req_strdup(req, u->name);
    c->log_name = api_log_name(req, u->name);
    c->admin = u->is_admin;
}

/* What every credential passes after it was found good: 0, or answered. */
static int livy_checks(api_t *a, http_req_t *req, api_ctx_t *c)
{
    if (!api_auth_full(c)) {
        api_livy_error(req, 403, "this token is limited to JupyterHub's API (/hub/api)");
        return -1;
    }
    if (c->via_cookie && unsafe_method(req)) {
        const char *sent = http_header(req, "X-CSRF-Token");
        if (!sent || !c->csrf || !token_equal(sent, c->csrf)) {
            api_livy_error(req, 403, "missing or wrong X-CSRF-Token header");
            return -1;
        }
    }
    if (a->livy_csrf && unsafe_method(req) && !http_header(req, "X-Requested-By")) {
        api_livy_error(req, 400, "Missing Required Header for CSRF protection.");
        return -1;
    }
    return 0;
}

/* "Basic base64(name:password)": 0 with both (request arena), or -1. */
static int basic_parse(http_req_t *req, const char *h, const char **name, const char **pw)
{
    h += 6;
    while (*h == ' ') h++;
    buf_t b = BUF_INIT;
    if (base64_decode_append(&b, h, strlen(h)) < 0 || !b.data) {
        buf_free(&b);
        return -1;
    }
    char *colon = memchr(b.data, ':', b.len);
    int ok = colon && colon != b.data && !memchr(b.data, '\0', b.len);
    if (ok) {
        *colon = 0;
        *name = http_req_strdup(req, b.data);
        *pw = http_req_strdup(req, colon + 1);
    }
    OPENSSL_cleanse(b.data, b.len);
    buf_free(&b);
    return ok ? 0 : -1;
}

struct basic_wait {
    api_t        *a;
    unsigned char mac[32];
};

static void basic_done(http_req_t *req, const store_user_t *u, void *ud)
{
    struct basic_wait *w = ud;
    api_t *a = w->a;
    if (!u) {
        livy_401(req, "invalid user name or password");
        return;
    }
    basic_remember(a, w->mac, u);
    api_ctx_t *c = http_req_alloc(req, sizeof *c);
    memset(c, 0, sizeof *c);
    ctx_user(req, c, u);
    if (livy_checks(a, req, c) < 0) return;
    http_req_set_user(req, c);
    http_router_continue(req);
}

int api_livy_before(api_t *a, http_req_t *req, const struct http_route *route)
{
    (void)route;
    api_ctx_t *c = http_req_alloc(req, sizeof *c);
    memset(c, 0, sizeof *c);
    const char *h = http_header(req, "Authorization");
    int rc;
    if (h && strncasecmp(h, "Basic ", 6) == 0) {
        const char *name, *pw;
        if (basic_parse(req, h, &name, &pw) < 0) {
            livy_401(req, "malformed Basic credentials");
            return 1;
        }
        struct basic_wait *w = http_req_alloc(req, sizeof *w);
        w->a = a;
        basic_mac(livy_auth(a), name, pw, w->mac);
        store_user_t u;
        if (basic_cached(a, w->mac, &u) == 0) {
            ctx_user(req, c, &u);
            store_user_clear(&u);
            rc = 0;
        } else if (api_gate_pass) {
            /* the head alone: checked when the body is in */
            http_req_set_body_max(req, a->anon_body_max);
            c->basic_pending = 1;
            if (a->livy_csrf && unsafe_method(req) && !http_header(req, "X-Requested-By")) {
                api_livy_error(req, 400, "Missing Required Header for CSRF protection.");
                return 1;
            }
            http_req_set_user(req, c);
            return 0;
        } else {
            api_auth_basic_check(a, req, name, pw, basic_done, w);
            return 1;
        }
    } else if (h) {
        rc = api_auth_peek_header(a, req, c);
    } else if (http_cookie(req, API_SESSION_COOKIE)) {
        rc = api_auth_peek_cookie(a, req, c);
    } else {
        livy_401(req, "authentication required");
        return 1;
    }
    if (rc == -EACCES) {
        livy_401(req, "invalid or expired credentials");
        return 1;
    }
    if (rc == -EBUSY) {
        api_livy_error(req, 503, "the database is busy, try again");
        return 1;
    }
    if (rc) {
        api_livy_fail(req, rc, NULL);
        return 1;
    }
    if (livy_checks(a, req, c) < 0) return 1;
    http_req_set_user(req, c);
    return 0;
}
