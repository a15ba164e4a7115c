/*
 * oidc_conf.c — parsing `auth:` (oidc_conf.h).  Same shape as the other
 * sections: each mapping checked against its keys with a "did you mean"
 * hint, every problem at the node's start mark.
 */
#include "auth/oidc_conf.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define POS(n) (int)(n)->start_mark.line + 1, (int)(n)->start_mark.column + 1

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void strv_free(char **v)
{
    if (v)
        for (char **p = v; *p; p++) free(*p);
    free(v);
}

static char **strv_add(char **v, const char *s)
{
    size_t n = 0;
    while (v && v[n]) n++;
    v = xrealloc(v, (n + 2) * sizeof *v);
    v[n] = xstrdup(s);
    v[n + 1] = NULL;
    return v;
}

int oidc_conf_has(char *const *l, const char *s)
{
    for (size_t i = 0; l && s && l[i]; i++)
        if (strcmp(l[i], s) == 0) return 1;
    return 0;
}

void auth_conf_init(auth_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->local = 1;
    c->oidc.leeway_s = 60;
}

void auth_conf_clear(auth_conf_t *c)
{
    oidc_conf_t *o = &c->oidc;
    free(o->issuer);
    free(o->client_id);
    free(o->client_secret_file);
    if (o->client_secret) explicit_bzero(o->client_secret, strlen(o->client_secret));
    free(o->client_secret);
    strv_free(o->scopes);
    free(o->username_claim);
    free(o->groups_claim);
    strv_free(o->admin_groups);
    strv_free(o->allowed_groups);
    for (size_t i = 0; i < o->npg; i++) {
        free(o->pg_from[i]);
        free(o->pg_to[i]);
    }
    free(o->pg_from);
    free(o->pg_to);
    free(o->audience);
    strv_free(o->algorithms);
    free(o->display_name);
    free(o->cli_client_id);
    strv_free(o->cli_scopes);
    auth_conf_init(c);
}

struct pctx {
    const char      *path;
    yaml_document_t *doc;
    nb_errlist_t    *errs;
};

static int sub_key(struct pctx *x, yaml_node_t *kn, const char *parent, const char *const *names,
                   size_t n)
{
    const char *key = scalar(kn);
    for (size_t i = 0; key && i < n; i++)
        if (strcmp(key, names[i]) == 0) return (int)i;
    const char *hint = key ? errlist_closest(key, names, n) : NULL;
    errlist_add(x->errs, x->path, POS(kn), "unknown key '%s' in '%s'%s%s%s", key ? key : "?", parent,
                hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
    return -1;
}

/* A string, or a list of strings (a single string is a list of one). */
static char **str_list(struct pctx *x, yaml_node_t *v, const char *what)
{
    char **l = NULL;
    if (scalar(v)) {
        if (!*scalar(v)) {
            errlist_add(x->errs, x->path, POS(v), "'%s' must be a string or a list of strings", what);
            return NULL;
        }
        return strv_add(NULL, scalar(v));
    }
    if (v->type != YAML_SEQUENCE_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a string or a list of strings", what);
        return NULL;
    }
    l = xcalloc(1, sizeof *l);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        if (!scalar(e) || !*scalar(e)) {
            errlist_add(x->errs, x->path, POS(e), "'%s' entries must be non-empty strings", what);
            continue;
        }
        l = strv_add(l, scalar(e));
    }
    return l;
}

static int str_set(struct pctx *x, yaml_node_t *v, const char *what, char **dst)
{
    const char *s = scalar(v);
    if (!s || !*s) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a non-empty string", what);
        return -1;
    }
    free(*dst);
    *dst = xstrdup(s);
    return 0;
}

static int bool_get(struct pctx *x, yaml_node_t *v, const char *what, int *dst)
{
    const char *s = scalar(v);
    if (s && (!strcmp(s, "true") || !strcmp(s, "false"))) {
        *dst = !strcmp(s, "true");
        return 0;
    }
    errlist_add(x->errs, x->path, POS(v), "'%s' must be true or false", what);
    return -1;
}

/* "30s", "1m", "45": seconds (the flow files' durations live in sched,
 * above this layer; a leeway needs no more than these). */
static int leeway_parse(const char *s, int64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (v > 100000) return -1;
    if (*end == 'm' && end[1] == '\0') v *= 60;
    else if (*end == 's' && end[1] == '\0') ;
    else if (*end) return -1;
    *out = v;
    return 0;
}

/* The secret's first line, without its line end; the file must not be
 * empty. */
static void read_secret(struct pctx *x, yaml_node_t *v, oidc_conf_t *o)
{
    char *text = NULL;
    size_t len = 0;
    nb_err_t err;
    /* oidc: given twice reads a secret twice: the first is wiped, not leaked
     * (LeakSanitizer, fuzz_srvconf corpus auth-oidc-twice.yaml). */
    if (o->client_secret) {
        explicit_bzero(o->client_secret, strlen(o->client_secret));
        free(o->client_secret);
        o->client_secret = NULL;
    }
    if (fs_read_all(o->client_secret_file, &text, &len, &err) < 0) {
        errlist_add(x->errs, x->path, POS(v), "auth.oidc.client_secret_file: %s", err.msg);
        return;
    }
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    if (!n) {
        errlist_add(x->errs, x->path, POS(v), "auth.oidc.client_secret_file: '%s' is empty",
                    o->client_secret_file);
        free(text);
        return;
    }
    o->client_secret = xstrdup(text);
    explicit_bzero(text, len);
    free(text);
}

static void parse_oidc(struct pctx *x, yaml_node_t *v, oidc_conf_t *o)
{
    static const char *const keys[] = { "issuer", "client_id", "client_secret_file", "scopes",
                                        "username_claim", "groups_claim", "admin_groups",
                                        "allowed_groups", "profile_groups", "accept_access_tokens",
                                        "audience", "algorithms", "leeway", "display_name",
                                        "cli_client_id", "jwks_cooldown", "cli_scopes" };
    const size_t nkeys = sizeof keys / sizeof *keys;
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'auth.oidc' must be a mapping (issuer, client_id, ...)");
        return;
    }
    o->enabled = 1;
    yaml_node_t *secret_node = NULL;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        int k = sub_key(x, kn, "auth.oidc", keys, nkeys);
        switch (k) {
        case 0:
            if (str_set(x, vn, "auth.oidc.issuer", &o->issuer) == 0 &&
                strncmp(o->issuer, "https://", 8) != 0 && strncmp(o->issuer, "http://", 7) != 0)
                errlist_add(x->errs, x->path, POS(vn), "'auth.oidc.issuer' must be an http(s) URL, "
                                                       "such as https://kc.example.com/realms/acme");
            break;
        case 1: str_set(x, vn, "auth.oidc.client_id", &o->client_id); break;
        case 2:
            if (str_set(x, vn, "auth.oidc.client_secret_file", &o->client_secret_file) == 0) secret_node = vn;
            break;
        case 3: strv_free(o->scopes); o->scopes = str_list(x, vn, "auth.oidc.scopes"); break;
        case 4: str_set(x, vn, "auth.oidc.username_claim", &o->username_claim); break;
        case 5: str_set(x, vn, "auth.oidc.groups_claim", &o->groups_claim); break;
        case 6: strv_free(o->admin_groups); o->admin_groups = str_list(x, vn, "auth.oidc.admin_groups"); break;
        case 7: strv_free(o->allowed_groups); o->allowed_groups = str_list(x, vn, "auth.oidc.allowed_groups"); break;
        case 8:
            if (vn->type != YAML_MAPPING_NODE) {
                errlist_add(x->errs, x->path, POS(vn), "'auth.oidc.profile_groups' must be a mapping of "
                                                       "provider group: nbhub group");
                break;
            }
            for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
                yaml_node_t *gk = yaml_document_get_node(x->doc, q->key), *gv = yaml_document_get_node(x->doc, q->value);
                if (!scalar(gk) || !*scalar(gk) || !scalar(gv) || !*scalar(gv)) {
                    errlist_add(x->errs, x->path, POS(gk), "'auth.oidc.profile_groups' entries must be "
                                                           "provider group: nbhub group (two strings)");
                    continue;
                }
                o->pg_from = xrealloc(o->pg_from, (o->npg + 1) * sizeof *o->pg_from);
                o->pg_to = xrealloc(o->pg_to, (o->npg + 1) * sizeof *o->pg_to);
                o->pg_from[o->npg] = xstrdup(scalar(gk));
                o->pg_to[o->npg++] = xstrdup(scalar(gv));
            }
            break;
        case 9: bool_get(x, vn, "auth.oidc.accept_access_tokens", &o->accept_access_tokens); break;
        case 10: str_set(x, vn, "auth.oidc.audience", &o->audience); break;
        case 11: {
            char **l = str_list(x, vn, "auth.oidc.algorithms");
            for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], "RS256") && strcmp(l[i], "ES256"))
                    errlist_add(x->errs, x->path, POS(vn), "auth.oidc.algorithms: '%s' is not supported "
                                                           "(RS256 or ES256; never none or HS*)", l[i]);
            strv_free(o->algorithms);
            o->algorithms = l;
            break;
        }
        case 12: {
            int64_t secs;
            if (leeway_parse(scalar(vn), &secs) < 0 || secs > 600)
                errlist_add(x->errs, x->path, POS(vn), "'auth.oidc.leeway' must be a duration such as "
                                                       "30s or 1m (at most 10m)");
            else
                o->leeway_s = secs;
            break;
        }
        case 13: str_set(x, vn, "auth.oidc.display_name", &o->display_name); break;
        case 14: str_set(x, vn, "auth.oidc.cli_client_id", &o->cli_client_id); break;
        case 15: {
            int64_t secs;
            if (leeway_parse(scalar(vn), &secs) < 0 || secs < 1 || secs > 3600)
                errlist_add(x->errs, x->path, POS(vn), "'auth.oidc.jwks_cooldown' must be a duration from "
                                                       "1s to 60m, such as 60s");
            else
                o->jwks_cooldown_s = secs;
            break;
        }
        case 16: strv_free(o->cli_scopes); o->cli_scopes = str_list(x, vn, "auth.oidc.cli_scopes"); break;
        default: break;
        }
    }
    if (!o->issuer) errlist_add(x->errs, x->path, POS(v), "'auth.oidc' needs 'issuer' (the provider's URL)");
    if (!o->client_id) errlist_add(x->errs, x->path, POS(v), "'auth.oidc' needs 'client_id'");
    if (secret_node) read_secret(x, secret_node, o);
    /* Defaults, and "openid" always asked for (without it there is no ID token). */
    if (!o->scopes || !oidc_conf_has(o->scopes, "openid")) {
        char **l = strv_add(NULL, "openid");
        if (!o->scopes) {
            l = strv_add(l, "profile");
            l = strv_add(l, "email");
        }
        for (size_t i = 0; o->scopes && o->scopes[i]; i++) l = strv_add(l, o->scopes[i]);
        strv_free(o->scopes);
        o->scopes = l;
    }
    if (!o->username_claim) o->username_claim = xstrdup("preferred_username");
    if (!o->groups_claim) o->groups_claim = xstrdup("groups");
    if (!o->algorithms || !o->algorithms[0]) {
        strv_free(o->algorithms);
        o->algorithms = strv_add(strv_add(NULL, "RS256"), "ES256");
    }
    if (!o->audience && o->client_id) o->audience = xstrdup(o->client_id);
    if (!o->display_name && o->issuer) {
        const char *h = strstr(o->issuer, "://");
        h = h ? h + 3 : o->issuer;
        o->display_name = xstrndup(h, strcspn(h, "/:"));
    }
}

void auth_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *v, auth_conf_t *c,
                     nb_errlist_t *errs)
{
    struct pctx x = { path, doc, errs };
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'auth' must be a mapping (local, oidc)");
        return;
    }
    static const char *const keys[] = { "local", "oidc" };
    yaml_node_t *local_node = NULL;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        int k = sub_key(&x, kn, "auth", keys, 2);
        if (k == 0) {
            if (bool_get(&x, vn, "auth.local", &c->local) == 0) local_node = vn;
        } else if (k == 1) {
            parse_oidc(&x, vn, &c->oidc);
        }
    }
    /* Nobody could log in in a browser at all. */
    if (local_node && !c->local && !c->oidc.enabled)
        errlist_add(errs, path, POS(local_node), "'auth.local: false' needs 'auth.oidc' (else nobody "
                                                 "could log in)");
}
