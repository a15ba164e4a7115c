/*
 * scopes.c — JupyterHub's scopes (see scopes.h).
 *
 * The definitions are JupyterHub 6.1's (jupyterhub/scopes.py), names and
 * subscopes, so a token request or a role written for JupyterHub means the
 * same here.  Sets are small (tens of strings) and built per request, so a
 * sorted array of "base!kind=value" strings with linear scans is plenty.
 */
#include "auth/scopes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct scope_def {
    const char *name;
    const char *sub[5];   /* subscopes, NULL-terminated */
};

static const struct scope_def scope_defs[] = {
    { "(no_scope)",          { NULL } },
    { "self",                { NULL } },
    { "inherit",             { NULL } },
    { "admin-ui",            { NULL } },
    { "admin:users",         { "admin:auth_state", "users", "read:roles:users", "delete:users", NULL } },
    { "admin:auth_state",    { NULL } },
    { "users",               { "read:users", "list:users", "users:activity", NULL } },
    { "delete:users",        { NULL } },
    { "list:users",          { "read:users:name", NULL } },
    { "read:users",          { "read:users:name", "read:users:groups", "read:users:activity", NULL } },
    { "read:users:name",     { NULL } },
    { "read:users:groups",   { NULL } },
    { "read:users:activity", { NULL } },
    { "read:roles",          { "read:roles:users", "read:roles:services", "read:roles:groups", NULL } },
    { "read:roles:users",    { NULL } },
    { "read:roles:services", { NULL } },
    { "read:roles:groups",   { NULL } },
    { "users:activity",      { "read:users:activity", NULL } },
    { "admin:servers",       { "admin:server_state", "servers", NULL } },
    { "admin:server_state",  { NULL } },
    { "servers",             { "read:servers", "start:servers", "delete:servers", NULL } },
    { "read:servers",        { "read:users:name", NULL } },
    { "start:servers",       { NULL } },
    { "delete:servers",      { NULL } },
    { "tokens",              { "read:tokens", NULL } },
    { "read:tokens",         { NULL } },
    { "admin:groups",        { "groups", "read:roles:groups", "delete:groups", NULL } },
    { "groups",              { "read:groups", "list:groups", NULL } },
    { "list:groups",         { "read:groups:name", NULL } },
    { "read:groups",         { "read:groups:name", NULL } },
    { "read:groups:name",    { NULL } },
    { "delete:groups",       { NULL } },
    { "admin:services",      { "list:services", "read:services", "read:roles:services", NULL } },
    { "list:services",       { "read:services:name", NULL } },
    { "read:services",       { "read:services:name", NULL } },
    { "read:services:name",  { NULL } },
    { "read:hub",            { NULL } },
    { "access:servers",      { NULL } },
    { "access:services",     { NULL } },
    { "users:shares",        { "read:users:shares", NULL } },
    { "read:users:shares",   { NULL } },
    { "groups:shares",       { "read:groups:shares", NULL } },
    { "read:groups:shares",  { NULL } },
    { "read:shares",         { NULL } },
    { "shares",              { "access:servers", "read:shares", "users:shares", "groups:shares", NULL } },
    { "proxy",               { NULL } },
    { "shutdown",            { NULL } },
    { "read:metrics",        { NULL } },
};
#define N_DEFS (sizeof scope_defs / sizeof scope_defs[0])

/* JupyterHub's default roles (roles.py get_default_roles). */
static const char *const role_admin[] = {
    "admin-ui", "admin:users", "admin:servers", "admin:services", "tokens", "admin:groups",
    "list:services", "read:services", "read:hub", "proxy", "shutdown", "access:services",
    "access:servers", "read:roles", "read:metrics", "shares",
};
/* What "self" stands for (scopes.py _expand_self_scope), each !user=NAME. */
static const char *const self_scopes[] = {
    "read:users", "users:shares", "read:shares", "users:activity", "servers", "tokens",
    "access:servers",
};

static const struct scope_def *scope_def(const char *name, size_t len)
{
    for (size_t i = 0; i < N_DEFS; i++)
        if (strlen(scope_defs[i].name) == len && memcmp(scope_defs[i].name, name, len) == 0)
            return &scope_defs[i];
    return NULL;
}

/* ---- sets ------------------------------------------------------------------- */

void scopes_free(scopes_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static size_t scopes_pos(const scopes_t *s, const char *scope, int *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->v[mid], scope);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = 0;
    return lo;
}

void scopes_add(scopes_t *s, const char *scope)
{
    int found;
    size_t at = scopes_pos(s, scope, &found);
    if (found) return;
    s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof *s->v);
    s->v[at] = xstrdup(scope);
    s->n++;
}

int scopes_contains(const scopes_t *s, const char *scope)
{
    int found;
    scopes_pos(s, scope, &found);
    return found;
}

static void scopes_add2(scopes_t *s, const char *base, const char *kind, const char *value)
{
    if (!kind) {
        scopes_add(s, base);
        return;
    }
    size_t n = strlen(base) + strlen(kind) + strlen(value) + 3;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s!%s=%s", base, kind, value);
    scopes_add(s, tmp);
    free(tmp);
}

/* Split "base!kind=value" into its parts (copies into the caller's buffer). */
struct scope_parts {
    char base[64];
    char kind[16];
    const char *value;    /* into the original string; NULL if unfiltered */
    int bare;             /* "!user" / "!server" without a value */
};

static int scope_split(const char *scope, struct scope_parts *p)
{
    const char *bang = strchr(scope, '!');
    size_t blen = bang ? (size_t)(bang - scope) : strlen(scope);
    if (blen == 0 || blen >= sizeof p->base) return -1;
    memcpy(p->base, scope, blen);
    p->base[blen] = '\0';
    p->kind[0] = '\0';
    p->value = NULL;
    p->bare = 0;
    if (!bang) return 0;
    const char *f = bang + 1, *eq = strchr(f, '=');
    size_t klen = eq ? (size_t)(eq - f) : strlen(f);
    if (klen == 0 || klen >= sizeof p->kind) return -1;
    memcpy(p->kind, f, klen);
    p->kind[klen] = '\0';
    if (eq) p->value = eq + 1;
    else p->bare = 1;
    return 0;
}

/* Drop filtered scopes whose base is also held unfiltered (reduce_scopes).
 * Two passes: the lookups (a binary search over the whole array) must see
 * the set as it was, so nothing is freed or moved until all are decided. */
static void scopes_reduce(scopes_t *s)
{
    unsigned char *drop = xcalloc(s->n + 1, 1);
    for (size_t i = 0; i < s->n; i++) {
        const char *bang = strchr(s->v[i], '!');
        if (!bang) continue;
        char base[64];
        size_t n = (size_t)(bang - s->v[i]);
        if (n >= sizeof base) continue;
        memcpy(base, s->v[i], n);
        base[n] = '\0';
        drop[i] = (unsigned char)scopes_contains(s, base);
    }
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (drop[i]) free(s->v[i]);
        else s->v[w++] = s->v[i];
    }
    s->n = w;
    free(drop);
}

/* ---- checking and expanding ------------------------------------------------------- */

int scopes_check(const char *scope, nb_err_t *err)
{
    struct scope_parts p;
    if (!scope || scope_split(scope, &p) < 0 || !scope_def(p.base, strlen(p.base))) {
        if (scope && strcmp(scope, "all") == 0)
            return err_set(err, -EINVAL, "Draft scope 'all' is now called 'inherit'");
        return err_set(err, -EINVAL, "Scope '%.100s' does not exist", scope ? scope : "");
    }
    if (!p.kind[0]) return 0;
    if (p.bare && (strcmp(p.kind, "user") == 0 || strcmp(p.kind, "server") == 0 ||
                   strcmp(p.kind, "service") == 0))
        return 0;
    if (!p.bare && *p.value &&
        (strcmp(p.kind, "user") == 0 || strcmp(p.kind, "server") == 0 ||
         strcmp(p.kind, "group") == 0 || strcmp(p.kind, "service") == 0)) {
        /* a server filter names USER/SERVER (the default server: "USER/") */
        if (strcmp(p.kind, "server") == 0 && !strchr(p.value, '/'))
            return err_set(err, -EINVAL, "Scope filter '!server=%.100s' must be USER/SERVER",
                           p.value);
        return 0;
    }
    return err_set(err, -EINVAL, "Scope filter in scope '%.100s' does not exist", scope);
}

static void expand_one(const char *name, const char *kind, const char *value, scopes_t *out)
{
    const struct scope_def *d = scope_def(name, strlen(name));
    if (!d) return;
    /* a server filter does not carry over to the user-reading subscopes of
     * server scopes (read:servers -> read:users:name), as in JupyterHub */
    if (!(kind && strcmp(kind, "server") == 0 && strncmp(name, "read:user", 9) == 0))
        scopes_add2(out, name, kind, value);
    for (size_t i = 0; d->sub[i]; i++) expand_one(d->sub[i], kind, value, out);
}

void scopes_expand(const char *const *raw, size_t n, const char *user, const char *server,
                   scopes_t *out)
{
    for (size_t i = 0; i < n; i++) {
        struct scope_parts p;
        if (scope_split(raw[i], &p) < 0) continue;
        if (strcmp(p.base, "inherit") == 0) {
            scopes_add(out, "inherit");
            continue;
        }
        if (strcmp(p.base, "self") == 0) {
            if (!user) continue;
            for (size_t k = 0; k < sizeof self_scopes / sizeof self_scopes[0]; k++)
                expand_one(self_scopes[k], "user", user, out);
            continue;
        }
        const char *kind = p.kind[0] ? p.kind : NULL, *value = p.value;
        if (kind && p.bare) {
            if (strcmp(kind, "user") == 0) value = user;
            else if (strcmp(kind, "server") == 0) value = server;
            else value = NULL;   /* !service: nbhub has no services */
            if (!value) continue;
        }
        expand_one(p.base, kind, value, out);
    }
    scopes_reduce(out);
}

void scopes_for_user(const char *user, int admin, scopes_t *out)
{
    const char *self = "self";
    scopes_expand(&self, 1, user, NULL, out);
    if (admin) scopes_expand(role_admin, sizeof role_admin / sizeof role_admin[0], user, NULL, out);
}

void scopes_for_server(const char *user, const char *server, scopes_t *out)
{
    static const char *const role_server[] = { "users:activity!user", "access:servers!server" };
    scopes_expand(role_server, 2, user, server, out);
    scopes_identify(user, out);
}

void scopes_identify(const char *user, scopes_t *out)
{
    scopes_add2(out, "read:users:name", "user", user);
    scopes_add2(out, "read:users:groups", "user", user);
    scopes_reduce(out);
}

/* ---- asking ------------------------------------------------------------------ */

/* Does the filter kf=vf (held) cover the object kind=value? */
static int filter_covers(const char *kf, const char *vf, const char *kind, const char *value,
                         scopes_group_fn in_group, void *ud)
{
    if (strcmp(kf, kind) == 0 && strcmp(vf, value) == 0) return 1;
    char user[256];
    const char *u = NULL;
    if (strcmp(kind, "user") == 0) {
        u = value;
    } else if (strcmp(kind, "server") == 0) {
        const char *slash = strchr(value, '/');
        size_t n = slash ? (size_t)(slash - value) : strlen(value);
        if (n >= sizeof user) return 0;
        memcpy(user, value, n);
        user[n] = '\0';
        u = user;
        if (strcmp(kf, "user") == 0 && strcmp(vf, u) == 0) return 1;
    }
    if (u && strcmp(kf, "group") == 0 && in_group) return in_group(ud, u, vf) == 1;
    return 0;
}

int scopes_has(const scopes_t *have, const char *base, const char *kind, const char *value,
               scopes_group_fn in_group, void *ud)
{
    if (scopes_contains(have, base)) return 1;
    if (!kind) return 0;
    size_t blen = strlen(base);
    for (size_t i = 0; i < have->n; i++) {
        const char *s = have->v[i];
        if (strncmp(s, base, blen) != 0 || s[blen] != '!') continue;
        struct scope_parts p;
        if (scope_split(s, &p) < 0 || !p.value) continue;
        if (filter_covers(p.kind, p.value, kind, value, in_group, ud)) return 1;
    }
    return 0;
}

int scopes_has_any(const scopes_t *have, const char *base)
{
    size_t blen = strlen(base);
    for (size_t i = 0; i < have->n; i++)
        if (strncmp(have->v[i], base, blen) == 0 && (have->v[i][blen] == '\0' || have->v[i][blen] == '!'))
            return 1;
    return 0;
}

void scopes_intersect(const scopes_t *a, const scopes_t *b, scopes_group_fn in_group, void *ud,
                      scopes_t *out)
{
    /* Keep what each side holds and the other covers: an unfiltered scope
     * on one side lets the other side's filters through as they are, a
     * filter on both sides survives when the other side's filters contain
     * it (server within user within group). */
    for (int pass = 0; pass < 2; pass++) {
        const scopes_t *x = pass ? b : a, *y = pass ? a : b;
        for (size_t i = 0; i < x->n; i++) {
            struct scope_parts p;
            if (scope_split(x->v[i], &p) < 0) continue;
            if (!p.value) {
                if (scopes_contains(y, p.base)) scopes_add(out, p.base);
                continue;
            }
            if (scopes_has(y, p.base, p.kind, p.value, in_group, ud)) scopes_add(out, x->v[i]);
        }
    }
    scopes_reduce(out);
}

/* ---- JSON ------------------------------------------------------------------------ */

json_t *scopes_to_json(const scopes_t *s)
{
    json_t *l = json_array();
    for (size_t i = 0; i < s->n; i++) json_array_append_new(l, json_string(s->v[i]));
    return l;
}

int scopes_from_json(const json_t *list, scopes_t *out, nb_err_t *err)
{
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return err_set(err, -EINVAL, "scopes must be null or a list of strings");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) return err_set(err, -EINVAL, "scopes must be null or a list of strings");
        int rc = scopes_check(json_string_value(v), err);
        if (rc) return rc;
    }
    json_array_foreach(list, i, v) scopes_add(out, json_string_value(v));
    return 0;
}
