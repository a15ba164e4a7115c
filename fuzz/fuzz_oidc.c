/*
 * libFuzzer harness for auth/oidc: what the identity provider hands the
 * relying party outside a signed token, and what it reads from one.  The
 * input is the discovery document, a NUL byte, then the claims of a
 * verified token as JSON (no NUL: the document alone).  Both are
 * provider-shaped: the issuer we are pointed at may be hostile or confused,
 * and users often choose their own claims (a username, groups in a
 * self-service directory).
 *
 * Invariants beyond "no crash, no leak": a discovery document is taken
 * only when it names the configured issuer and gives http(s) endpoints; a
 * refused one leaves the provider unready; a login's URL starts with the
 * authorization endpoint and its state works once; an identity has a
 * non-empty subject and name, a NULL-terminated list of distinct non-empty
 * groups, admin only through admin_groups, allowed only through
 * allowed_groups; a logout URL starts with the end-session endpoint.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oidc.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *admins[] = { "admins", NULL };
static char *staff[] = { "staff", "admins", NULL };
static char *scopes[] = { "openid", "profile", NULL };
static char *pg_from[] = { "/data/spark", "data" };
static char *pg_to[] = { "spark-users", "data-team" };

static void conf_init(oidc_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->enabled = 1;
    c->issuer = "https://idp.example/realms/nb";
    c->client_id = "nbhub";
    c->scopes = scopes;
    c->username_claim = "preferred_username";
    c->groups_claim = "groups";
    c->admin_groups = admins;
    c->allowed_groups = staff;
    c->pg_from = pg_from;
    c->pg_to = pg_to;
    c->npg = 2;
    c->audience = "nbhub";
    c->leeway_s = 60;
}

static int prefix(const char *s, const char *p) { return s && p && strncmp(s, p, strlen(p)) == 0; }

/* g is in the list, bare or as Keycloak's full path "/g". */
static int named(char *const *l, const json_t *claims, const char *claim)
{
    json_t *g = json_object_get(claims, claim), *e;
    json_t *one = json_is_string(g) ? json_pack("[O]", g) : json_incref(g);
    size_t i;
    int found = 0;
    json_array_foreach(one, i, e) {
        const char *s = json_string_value(e);
        if (!s || !*s) continue;
        for (size_t k = 0; l[k]; k++)
            if (!strcmp(s, l[k]) || (s[0] == '/' && !strcmp(s + 1, l[k]) && !strchr(s + 1, '/'))) found = 1;
    }
    json_decref(one);
    return found;
}

static void check_identity(const oidc_t *o, const oidc_conf_t *c, const char *text, size_t n)
{
    json_t *claims = json_loadb(text, n, 0, NULL);
    oidc_identity_t id;
    nb_err_t err;
    int rc = oidc_identity(o, claims, &id, &err);
    if (rc == 0) {
        NB_ASSERT(id.subject && *id.subject && id.name && *id.name);
        NB_ASSERT(!strcmp(id.name, json_string_value(json_object_get(claims, c->username_claim))));
        NB_ASSERT(id.groups && !id.groups[id.ngroups]);
        for (size_t i = 0; i < id.ngroups; i++) {
            NB_ASSERT(id.groups[i] && *id.groups[i]);
            for (size_t k = 0; k < i; k++) NB_ASSERT(strcmp(id.groups[i], id.groups[k]) != 0);
        }
        NB_ASSERT(id.admin == named(c->admin_groups, claims, c->groups_claim));
        NB_ASSERT(id.allowed == named(c->allowed_groups, claims, c->groups_claim));
        NB_ASSERT(!id.sid || *id.sid);
    } else {
        NB_ASSERT(rc == -EACCES && err.msg[0]);
        NB_ASSERT(!id.subject && !id.name && !id.groups);
    }
    oidc_identity_clear(&id);
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t dn = nul ? (size_t)(nul - s) : size;
    oidc_conf_t c;
    conf_init(&c);
    oidc_t *o = oidc_new(NULL, NULL, &c);
    nb_err_t err;
    int rc = oidc_set_discovery(o, s, dn, &err);
    if (rc == 0) {
        NB_ASSERT(oidc_ready(o));
        NB_ASSERT(prefix(oidc_token_endpoint(o), "https://") || prefix(oidc_token_endpoint(o), "http://"));
        NB_ASSERT(oidc_jwks(o) != NULL);
        NB_ASSERT(oidc_set_discovery(o, s, dn, &err) == -EEXIST);
        /* a login: its URL, its state once */
        char state[OIDC_STATE_LEN + 1], *url = NULL;
        NB_ASSERT(oidc_login_begin(o, "https://nb.example/auth/oidc/callback", "/ui/", 1, state, &url, &err) == 0);
        NB_ASSERT(url && strstr(url, "response_type=code") && strstr(url, state));
        oidc_login_t l;
        NB_ASSERT(oidc_login_take(o, state, 2, &l) == 0 && !strcmp(l.next, "/ui/"));
        oidc_login_clear(&l);
        NB_ASSERT(oidc_login_take(o, state, 3, &l) == -ENOENT);
        free(url);
        char *out = oidc_logout_url(o, "a.b.c", "https://nb.example/");
        const char *es = oidc_end_session_endpoint(o);
        NB_ASSERT(!out == !es);
        NB_ASSERT(!out || prefix(out, es));
        free(out);
    } else {
        NB_ASSERT(rc == -EINVAL && err.msg[0] && !oidc_ready(o));
        NB_ASSERT(!oidc_token_endpoint(o) && !oidc_jwks(o));
    }
    if (nul) check_identity(o, &c, nul + 1, size - dn - 1);
    oidc_free(o);
    return 0;
}
