/* Unit tests for the relying party's parts that need no provider: the
 * auth: section of nbhub.yaml (defaults, every error at its position, the
 * secret file), the discovery document's issuer check, logins in progress
 * (state single use, expiry, PKCE and nonce in the URL), identities from
 * claims (admin, allowed, profile_groups, Keycloak's full paths) and the
 * end-session URL.  The flow against a real Keycloak is
 * tests/blackbox/test_sso.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/oauth.h"
#include "auth/oidc.h"
#include "http/hclient.h"
#include "store/store_auth.h"
#include "store/store_groups.h"
#include "util/buf.h"
#include "util/xmalloc.h"

/* Parse text (a whole file "auth: ...") into c; the number of problems. */
static size_t parse(const char *text, auth_conf_t *c, nb_errlist_t *errs)
{
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    assert_true(yaml_parser_load(&p, &doc));
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_pair_t *pr = root->data.mapping.pairs.start;
    auth_conf_init(c);
    size_t before = errlist_count(errs);
    auth_conf_parse("nbhub.yaml", &doc, yaml_document_get_node(&doc, pr->value), c, errs);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return errlist_count(errs) - before;
}

static int has_err(nb_errlist_t *errs, const char *needle)
{
    buf_t b = BUF_INIT;
    errlist_format(errs, &b);
    buf_putc(&b, '\0');
    int found = strstr(b.data, needle) != NULL;
    if (!found) print_message("errors: %s\n", b.data);
    buf_free(&b);
    return found;
}

static void test_conf_defaults(void **state)
{
    (void)state;
    auth_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse("auth:\n  oidc: {issuer: 'https://kc.example.com/realms/acme', client_id: nbhub}\n",
                           &c, &errs), 0);
    assert_true(c.local);
    assert_true(c.oidc.enabled);
    assert_string_equal(c.oidc.scopes[0], "openid");
    assert_string_equal(c.oidc.scopes[1], "profile");
    assert_string_equal(c.oidc.username_claim, "preferred_username");
    assert_string_equal(c.oidc.groups_claim, "groups");
    assert_string_equal(c.oidc.audience, "nbhub");
    assert_string_equal(c.oidc.algorithms[0], "RS256");
    assert_string_equal(c.oidc.algorithms[1], "ES256");
    assert_null(c.oidc.algorithms[2]);
    assert_int_equal(c.oidc.leeway_s, 60);
    assert_string_equal(c.oidc.display_name, "kc.example.com");
    assert_null(c.oidc.client_secret);
    assert_null(c.oidc.allowed_groups);
    auth_conf_clear(&c);
    /* openid is always asked for */
    assert_int_equal(parse("auth:\n  oidc: {issuer: 'http://x', client_id: a, scopes: [groups]}\n", &c, &errs), 0);
    assert_string_equal(c.oidc.scopes[0], "openid");
    assert_string_equal(c.oidc.scopes[1], "groups");
    assert_null(c.oidc.scopes[2]);
    auth_conf_clear(&c);
    errlist_free(&errs);
}

static void test_conf_errors(void **state)
{
    (void)state;
    auth_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse("auth:\n  locall: true\n", &c, &errs), 1);
    assert_true(has_err(&errs, "nbhub.yaml:2:3: unknown key 'locall' in 'auth' (did you mean 'local'?)"));
    auth_conf_clear(&c);
    errlist_free(&errs);
    errs = (nb_errlist_t)ERRLIST_INIT;
    assert_int_equal(parse("auth:\n  oidc:\n    client_id: x\n    algorithms: [RS256, HS256]\n"
                           "    leeway: forever\n    isuer: y\n", &c, &errs), 4);
    assert_true(has_err(&errs, "nbhub.yaml:4:17: auth.oidc.algorithms: 'HS256' is not supported"));
    assert_true(has_err(&errs, "nbhub.yaml:5:13: 'auth.oidc.leeway' must be a duration"));
    assert_true(has_err(&errs, "nbhub.yaml:6:5: unknown key 'isuer' in 'auth.oidc' (did you mean 'issuer'?)"));
    assert_true(has_err(&errs, "nbhub.yaml:3:5: 'auth.oidc' needs 'issuer'"));
    auth_conf_clear(&c);
    errlist_free(&errs);
    errs = (nb_errlist_t)ERRLIST_INIT;
    assert_int_equal(parse("auth: {local: false}\n", &c, &errs), 1);
    assert_true(has_err(&errs, "nbhub.yaml:1:15: 'auth.local: false' needs 'auth.oidc'"));
    auth_conf_clear(&c);
    errlist_free(&errs);
    errs = (nb_errlist_t)ERRLIST_INIT;
    assert_int_equal(parse("auth:\n  oidc: {issuer: 'ftp://x', client_id: a, client_secret_file: /nonexistent/s}\n",
                           &c, &errs), 2);
    assert_true(has_err(&errs, "'auth.oidc.issuer' must be an http(s) URL"));
    assert_true(has_err(&errs, "auth.oidc.client_secret_file: "));
    auth_conf_clear(&c);
    errlist_free(&errs);
}

static void test_conf_secret(void **state)
{
    (void)state;
    char path[] = "/tmp/nbhub-oidc-secretXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cr3t\n", 7), 7);
    close(fd);
    char *text = xasprintf("auth:\n  oidc: {issuer: 'http://x', client_id: a, client_secret_file: %s,\n"
                           "         profile_groups: {data: spark}, admin_groups: admins,\n"
                           "         cli_scopes: [openid, 'api://x/access'], jwks_cooldown: 2m}\n", path);
    auth_conf_t c;
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse(text, &c, &errs), 0);
    assert_string_equal(c.oidc.client_secret, "s3cr3t");
    assert_int_equal(c.oidc.npg, 1);
    assert_string_equal(c.oidc.pg_to[0], "spark");
    assert_string_equal(c.oidc.admin_groups[0], "admins");
    assert_string_equal(c.oidc.cli_scopes[1], "api://x/access");
    assert_int_equal(c.oidc.jwks_cooldown_s, 120);
    auth_conf_clear(&c);
    /* an empty file is an error at the key's value */
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    assert_int_equal(parse(text, &c, &errs), 1);
    assert_true(has_err(&errs, "is empty"));
    auth_conf_clear(&c);
    errlist_free(&errs);
    free(text);
    unlink(path);
}

static const char *const DISCOVERY =
    "{\"issuer\": \"https://kc.test/realms/r\","
    " \"authorization_endpoint\": \"https://kc.test/realms/r/auth\","
    " \"token_endpoint\": \"https://kc.test/realms/r/token\","
    " \"jwks_uri\": \"https://kc.test/realms/r/certs\","
    " \"end_session_endpoint\": \"https://kc.test/realms/r/logout\"}";

struct fx {
    uv_loop_t   loop;
    hclient_t  *hc;
    auth_conf_t conf;
    oidc_t     *o;
};

static struct fx *fx_new(const char *yaml)
{
    struct fx *f = xcalloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    f->hc = hclient_new(&f->loop);
    nb_errlist_t errs = ERRLIST_INIT;
    assert_int_equal(parse(yaml, &f->conf, &errs), 0);
    errlist_free(&errs);
    f->o = oidc_new(&f->loop, f->hc, &f->conf.oidc);
    return f;
}

static void fx_free(struct fx *f)
{
    oidc_free(f->o);
    hclient_close(f->hc, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    auth_conf_clear(&f->conf);
    free(f);
}

#define CONF "auth:\n  oidc: {issuer: 'https://kc.test/realms/r', client_id: nbhub,\n" \
             "         admin_groups: [admins], allowed_groups: [admins, data],\n" \
             "         profile_groups: {data: spark-users}}\n"

/* A document served for another issuer must not be trusted (its keys
 * would sign our logins). */
static void test_discovery_issuer(void **state)
{
    (void)state;
    struct fx *f = fx_new("auth:\n  oidc: {issuer: 'https://kc.test/realms/other', client_id: nbhub}\n");
    nb_err_t err;
    assert_int_equal(oidc_set_discovery(f->o, DISCOVERY, strlen(DISCOVERY), &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not the configured"));
    assert_false(oidc_ready(f->o));
    char state_[OIDC_STATE_LEN + 1], *url;
    assert_int_equal(oidc_login_begin(f->o, "http://127.0.0.1/cb", "/", 1, state_, &url, &err), -EAGAIN);
    fx_free(f);
}

static void test_login_state(void **state)
{
    (void)state;
    struct fx *f = fx_new(CONF);
    nb_err_t err;
    assert_int_equal(oidc_set_discovery(f->o, DISCOVERY, strlen(DISCOVERY), &err), 0);
    char s1[OIDC_STATE_LEN + 1], s2[OIDC_STATE_LEN + 1], *u1, *u2;
    int64_t now = 1000000000000LL;
    assert_int_equal(oidc_login_begin(f->o, "http://127.0.0.1:1/auth/oidc/callback", "/flows", now, s1, &u1, &err), 0);
    assert_int_equal(oidc_login_begin(f->o, "http://127.0.0.1:1/auth/oidc/callback", NULL, now, s2, &u2, &err), 0);
    assert_string_not_equal(s1, s2);
    assert_int_equal(strlen(s1), OIDC_STATE_LEN);
    assert_true(strncmp(u1, "https://kc.test/realms/r/auth?response_type=code&client_id=nbhub&", 65) == 0);
    assert_non_null(strstr(u1, "&code_challenge_method=S256"));
    assert_non_null(strstr(u1, "&nonce="));
    assert_non_null(strstr(u1, "&scope=openid%20profile%20email&"));
    assert_non_null(strstr(u1, "&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fauth%2Foidc%2Fcallback&"));
    char *st = xasprintf("&state=%s&", s1);
    assert_non_null(strstr(u1, st));
    free(st);
    /* the verifier never leaves nbhub: only its S256 challenge is in the URL */
    oidc_login_t l;
    assert_int_equal(oidc_login_take(f->o, "nope", now, &l), -ENOENT);
    assert_int_equal(oidc_login_take(f->o, s1, now + 1000, &l), 0);
    assert_null(strstr(u1, l.verifier));
    char ch[44];
    oauth_s256(l.verifier, ch);
    assert_non_null(strstr(u1, ch));
    assert_non_null(strstr(u1, l.nonce));
    assert_string_equal(l.next, "/flows");
    oidc_login_clear(&l);
    /* single use */
    assert_int_equal(oidc_login_take(f->o, s1, now + 1000, &l), -ENOENT);
    /* ten minutes later the other one is gone */
    assert_int_equal(oidc_login_take(f->o, s2, now + (OIDC_LOGIN_TTL_S + 1) * 1000000LL, &l), -ENOENT);
    assert_int_equal(oidc_logins(f->o), 0);
    free(u1);
    free(u2);
    fx_free(f);
}

static void test_login_bounded(void **state)
{
    (void)state;
    struct fx *f = fx_new(CONF);
    nb_err_t err;
    assert_int_equal(oidc_set_discovery(f->o, DISCOVERY, strlen(DISCOVERY), &err), 0);
    char first[OIDC_STATE_LEN + 1], s[OIDC_STATE_LEN + 1], *u;
    for (int i = 0; i < OIDC_MAX_LOGINS + 10; i++) {
        assert_int_equal(oidc_login_begin(f->o, "http://h/cb", "/", 5 + i, i ? s : first, &u, &err), 0);
        free(u);
    }
    assert_int_equal(oidc_logins(f->o), OIDC_MAX_LOGINS);
    oidc_login_t l;
    assert_int_equal(oidc_login_take(f->o, first, 100, &l), -ENOENT);   /* the oldest went */
    assert_int_equal(oidc_login_take(f->o, s, 100, &l), 0);
    oidc_login_clear(&l);
    fx_free(f);
}

static void test_identity(void **state)
{
    (void)state;
    struct fx *f = fx_new(CONF);
    nb_err_t err;
    oidc_identity_t id;
    json_t *c = json_pack("{s:s, s:s, s:s, s:[s,s,s]}", "sub", "u-1", "preferred_username", "alice", "sid", "S1",
                          "groups", "/admins", "data", "other");
    assert_int_equal(oidc_identity(f->o, c, &id, &err), 0);
    assert_string_equal(id.name, "alice");
    assert_string_equal(id.subject, "u-1");
    assert_string_equal(id.sid, "S1");
    assert_true(id.admin);
    assert_true(id.allowed);
    assert_int_equal(id.ngroups, 3);
    assert_string_equal(id.groups[0], "admins");
    assert_string_equal(id.groups[1], "spark-users");
    assert_string_equal(id.groups[2], "other");
    oidc_identity_clear(&id);
    json_decref(c);
    /* not in an allowed group, not an admin */
    c = json_pack("{s:s, s:s, s:[s]}", "sub", "u-3", "preferred_username", "carol", "groups", "other");
    assert_int_equal(oidc_identity(f->o, c, &id, &err), 0);
    assert_false(id.admin);
    assert_false(id.allowed);
    oidc_identity_clear(&id);
    json_decref(c);
    /* no groups claim at all */
    c = json_pack("{s:s, s:s}", "sub", "u-3", "preferred_username", "carol");
    assert_int_equal(oidc_identity(f->o, c, &id, &err), 0);
    assert_false(id.allowed);
    assert_int_equal(id.ngroups, 0);
    oidc_identity_clear(&id);
    json_decref(c);
    /* sub and the name claim are required */
    c = json_pack("{s:s}", "preferred_username", "x");
    assert_int_equal(oidc_identity(f->o, c, &id, &err), -EACCES);
    json_decref(c);
    c = json_pack("{s:s, s:i}", "sub", "x", "preferred_username", 5);
    assert_int_equal(oidc_identity(f->o, c, &id, &err), -EACCES);
    json_decref(c);
    fx_free(f);
}

static void test_logout_url(void **state)
{
    (void)state;
    struct fx *f = fx_new(CONF);
    nb_err_t err;
    assert_null(oidc_logout_url(f->o, "a.b.c", NULL));   /* not discovered */
    assert_int_equal(oidc_set_discovery(f->o, DISCOVERY, strlen(DISCOVERY), &err), 0);
    char *u = oidc_logout_url(f->o, "a.b.c", "http://127.0.0.1:5/login");
    assert_string_equal(u, "https://kc.test/realms/r/logout?client_id=nbhub&id_token_hint=a.b.c"
                           "&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Flogin");
    free(u);
    fx_free(f);
}

/* The store's side: an identity is unique and never shares a name with a
 * local account; provider sessions end by sid or by user; a user's groups
 * are replaced as a whole; sessions due for refresh. */
static void test_store_identities(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbhub-test-oidc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *db = xasprintf("%s/nbhub.db", dir);
    store_t *st;
    nb_err_t err;
    assert_int_equal(store_open(db, &st, &err), 0);
    int64_t local, alice, id;
    assert_int_equal(store_user_add(st, "bob", "hash", 0, 1, &local, &err), 0);
    assert_int_equal(store_user_add_idp(st, "alice", "https://i", "sub-a", 1, 2, &alice, &err), 0);
    /* the name of a local account, or the same identity again: refused */
    assert_int_equal(store_user_add_idp(st, "bob", "https://i", "sub-b", 0, 3, &id, &err), -EEXIST);
    assert_int_equal(store_user_add_idp(st, "alice2", "https://i", "sub-a", 0, 3, &id, &err), -EEXIST);
    /* the same subject at another issuer is another identity */
    assert_int_equal(store_user_add_idp(st, "alice3", "https://other", "sub-a", 0, 3, &id, &err), 0);
    assert_int_equal(store_user_by_idp(st, "https://i", "sub-a", &id, &err), 0);
    assert_int_equal(id, alice);
    assert_int_equal(store_user_by_idp(st, "https://i", "sub-b", &id, &err), -ENOENT);
    char *idp, *sub;
    assert_int_equal(store_user_idp(st, local, &idp, &sub, &err), 0);
    assert_null(idp);
    assert_int_equal(store_user_idp(st, alice, &idp, &sub, &err), 0);
    assert_string_equal(idp, "https://i");
    assert_string_equal(sub, "sub-a");
    free(idp);
    free(sub);
    store_user_t u;
    assert_int_equal(store_user_by_name(st, "alice", &u, &err), 0);
    assert_null(u.password_hash);
    assert_true(u.is_admin);
    store_user_clear(&u);

    /* sessions: two of alice's from the provider (sids S1, S2), one local of bob's */
    int64_t s1, s2, s3;
    assert_int_equal(store_session_add(st, "d1", "c", alice, 10, 1000000, &s1, &err), 0);
    assert_int_equal(store_session_add(st, "d2", "c", alice, 10, 1000000, &s2, &err), 0);
    assert_int_equal(store_session_add(st, "d3", "c", local, 10, 1000000, &s3, &err), 0);
    store_session_idp_t v1 = { "S1", "id1", "rt1", 500, 0 }, v2 = { "S2", "id2", "rt2", 900, 0 };
    assert_int_equal(store_session_set_idp(st, s1, &v1, &err), 0);
    assert_int_equal(store_session_set_idp(st, s2, &v2, &err), 0);
    store_session_idp_t got;
    assert_int_equal(store_session_get_idp(st, "d1", &got, &err), 0);
    assert_string_equal(got.refresh_token, "rt1");
    assert_int_equal(got.idp_expires_at, 500);
    assert_int_equal(got.session_id, s1);
    store_session_idp_clear(&got);
    /* values not in the sealed form (written by a build before sealing) */
    int64_t *ids, ended;
    size_t n;
    assert_int_equal(store_sessions_idp_unsealed(st, "nbs1.", &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    free(ids);
    store_session_idp_t v2s = { "S2", "nbs1.x", "nbs1.y", 900, 0 };
    assert_int_equal(store_session_set_idp(st, s2, &v2s, &err), 0);
    assert_int_equal(store_sessions_idp_unsealed(st, "nbs1.", &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], s1);
    free(ids);
    assert_int_equal(store_session_get_idp(st, "d3", &got, &err), 0);
    assert_null(got.id_token);
    store_session_idp_clear(&got);
    store_idp_due_t *due;
    assert_int_equal(store_sessions_idp_due(st, 600, 10, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(due[0].session_id, s1);
    assert_string_equal(due[0].refresh_token, "rt1");
    assert_string_equal(due[0].idp_sid, "S1");
    store_idp_due_free(due, n);

    /* tokens minted through the provider follow its session: by sid, or
     * all of a user's by sub; ordinary tokens are never touched */
    int64_t t1, t2, t3, t4;
    assert_int_equal(store_token_add_idp(st, alice, "cli", "h1", NULL, "S1", 10, 0, &t1, &err), 0);
    assert_int_equal(store_token_add_idp(st, alice, "cli2", "h2", NULL, "S9", 10, 0, &t2, &err), 0);
    assert_int_equal(store_token_add_idp(st, alice, "cli3", "h3", NULL, NULL, 10, 0, &t3, &err), 0);
    assert_int_equal(store_token_add(st, alice, "own", "h4", 10, 0, &t4, &err), 0);
    assert_int_equal(store_tokens_revoke_idp(st, "S1", 0, &ended, &err), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(store_token_lookup(st, "h1", 20, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(st, "h2", 20, NULL, NULL, &err), 0);
    /* "" names no session: a logout by sid never matches it */
    assert_int_equal(store_tokens_revoke_idp(st, "", 0, &ended, &err), 0);
    assert_int_equal(ended, 0);
    assert_int_equal(store_tokens_revoke_idp(st, NULL, local, &ended, &err), 0);
    assert_int_equal(ended, 0);
    assert_int_equal(store_tokens_revoke_idp(st, NULL, alice, &ended, &err), 0);
    assert_int_equal(ended, 2);
    assert_int_equal(store_token_lookup(st, "h3", 20, NULL, NULL, &err), -ENOENT);
    assert_int_equal(store_token_lookup(st, "h4", 20, NULL, NULL, &err), 0);
    assert_int_equal(store_sessions_end_idp(st, "S1", 0, &ended, &err), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(store_session_get_idp(st, "d1", &got, &err), -ENOENT);
    /* by user: every provider session of alice's, none of bob's local one */
    assert_int_equal(store_sessions_end_idp(st, NULL, alice, &ended, &err), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(store_sessions_end_idp(st, NULL, local, &ended, &err), 0);
    assert_int_equal(ended, 0);
    assert_int_equal(store_session_delete_id(st, s3, &err), 0);
    assert_int_equal(store_session_delete_id(st, s3, &err), -ENOENT);

    /* groups replaced as a whole, created on the way */
    const char *g1[] = { "admins", "data" }, *g2[] = { "data", "spark" };
    assert_int_equal(store_user_set_groups(st, alice, g1, 2, 5, &err), 0);
    assert_int_equal(store_user_set_groups(st, alice, g2, 2, 6, &err), 0);
    store_names_t names;
    assert_int_equal(store_user_groups(st, alice, &names, &err), 0);
    assert_int_equal(names.n, 2);
    assert_string_equal(names.v[0], "data");
    assert_string_equal(names.v[1], "spark");
    store_names_free(&names);
    assert_int_equal(store_user_set_groups(st, alice, NULL, 0, 7, &err), 0);
    assert_int_equal(store_user_groups(st, alice, &names, &err), 0);
    assert_int_equal(names.n, 0);
    store_names_free(&names);

    store_close(st);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_defaults),
        cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_conf_secret),
        cmocka_unit_test(test_discovery_issuer),
        cmocka_unit_test(test_login_state),
        cmocka_unit_test(test_login_bounded),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_logout_url),
        cmocka_unit_test(test_store_identities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
