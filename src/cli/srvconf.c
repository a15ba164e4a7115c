/*
 * srvconf — reading nbhub.yaml.  libyaml's document API keeps each node's
 * start mark, which is all we need for FILE:LINE:COLUMN messages; the file
 * is small and flat, so a table of keys with a type each is the whole
 * parser.  Durations use the flow files' syntax (flow_duration_parse).
 */
#include "cli/srvconf.h"
#include "iso/uacct.h"
#include "http/netguard.h"
#include "http/tls.h"
#include "sched/flow.h"
#include "spark/scluster.h"
#include "util/fsutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum ctype { C_STR, C_STRLIST, C_LISTEN, C_UINT, C_DURATION, C_BOOL, C_POOL, C_LIMITS, C_ULIMITS, C_HTTP, C_SPARK,
             C_WEBHOOKS, C_UI, C_HUB, C_AUTH, C_LIVY };

struct ckey {
    const char *name;
    enum ctype  type;
};

static const struct ckey srvconf_keys[] = {
    { "listen", C_LISTEN },           { "home", C_STR },
    { "flows_dir", C_STR },          { "base_url", C_STR },
    { "max_active_tasks", C_UINT },  { "kill_grace", C_DURATION },
    { "shutdown_grace", C_DURATION },{ "pool", C_POOL },
    { "log_level", C_STR },          { "secure_cookies", C_BOOL },
    { "isolation", C_STR },          { "system_user", C_STR },
    { "create_system_users", C_BOOL },{ "limits", C_LIMITS },
    { "user_limits", C_ULIMITS },    { "trusted_users", C_STRLIST },
    { "http", C_HTTP },
    { "spark", C_SPARK },
    { "webhooks", C_WEBHOOKS },      { "ui", C_UI },
    { "hub", C_HUB },
    { "auth", C_AUTH },
    { "livy", C_LIVY },              { "livy_listen", C_STR },
};
#define NKEYS (sizeof srvconf_keys / sizeof *srvconf_keys)

void srvconf_init(srvconf_t *c)
{
    memset(c, 0, sizeof *c);
    c->kill_grace_ms = -1;
    c->shutdown_grace_ms = -1;
    c->secure_cookies = -1;
    c->create_system_users = -1;
    c->http_max_body = c->http_anon_body = c->http_body_budget = -1;
    c->http_min_body_rate = c->http_body_grace_ms = -1;
    c->http_proxy_body_max = c->http_websocket_idle_ms = -1;
    c->render_max = -1;
    hub_conf_init(&c->hub);
    auth_conf_init(&c->auth);
    livy_conf_init(&c->livy);
}

const iso_limits_t *srvconf_user_limits(const srvconf_t *c, const char *user)
{
    for (size_t i = 0; user && i < c->nulimits; i++)
        if (!strcmp(c->ulimit_names[i], user)) return &c->ulimits[i];
    return &c->limits;
}

static void strv_free(char **v)
{
    if (v)
        for (char **p = v; *p; p++) free(*p);
    free(v);
}

static void listen_free(srvconf_t *c)
{
    for (size_t i = 0; c->listen && c->listen[i]; i++) {
        free(c->listen[i]);
        free(c->listen_cert[i]);
        free(c->listen_key[i]);
    }
    free(c->listen);
    free(c->listen_cert);
    free(c->listen_key);
    c->listen = c->listen_cert = c->listen_key = NULL;
}

void srvconf_clear(srvconf_t *c)
{
    listen_free(c);
    free(c->home);
    free(c->flows_dir);
    free(c->base_url);
    for (size_t i = 0; i < c->npool; i++) free(c->pool_names[i]);
    free(c->pool_names);
    free(c->pool_sizes);
    free(c->log_level);
    free(c->isolation);
    free(c->system_user);
    for (size_t i = 0; i < c->nulimits; i++) free(c->ulimit_names[i]);
    free(c->ulimit_names);
    free(c->ulimits);
    if (c->trusted_users)
        for (char **p = c->trusted_users; *p; p++) free(*p);
    free(c->trusted_users);
    strv_free(c->webhook_allow);
    hub_conf_clear(&c->hub);
    auth_conf_clear(&c->auth);
    livy_conf_clear(&c->livy);
    free(c->livy_listen);
    srvconf_init(c);
}

void srvconf_set_pool(srvconf_t *c, const char *name, unsigned size)
{
    for (size_t i = 0; i < c->npool; i++)
        if (strcmp(c->pool_names[i], name) == 0) {
            c->pool_sizes[i] = size;
            return;
        }
    c->pool_names = xrealloc(c->pool_names, (c->npool + 1) * sizeof *c->pool_names);
    c->pool_sizes = xrealloc(c->pool_sizes, (c->npool + 1) * sizeof *c->pool_sizes);
    c->pool_names[c->npool] = xstrdup(name);
    c->pool_sizes[c->npool++] = size;
}

#define POS(n) (int)(n)->start_mark.line + 1, (int)(n)->start_mark.column + 1

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_uint(const char *s, unsigned *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || errno || v > 1000000 || s[0] == '-') return -1;
    *out = (unsigned)v;
    return 0;
}

/* limits: {memory: 4g, cpu: 2, pids: 512}, each key optional. */
static void parse_limits(const char *path, yaml_document_t *doc, yaml_node_t *v, const char *what,
                         iso_limits_t *out, nb_errlist_t *errs)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'%s' must be a mapping such as {memory: 4g, cpu: 2, pids: 512}", what);
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        const char *key = scalar(kn), *why = "is not a key";
        int rc = key ? limits_set(out, key, scalar(vn), &why) : -1;
        if (rc == -ENOENT) errlist_add(errs, path, POS(kn), "unknown limit '%s' (memory, cpu or pids)", key);
        else if (rc < 0) errlist_add(errs, path, POS(vn), "%s: '%s' %s", what, key ? key : "?", why);
    }
}

/* A byte count for http: (srvconf_parse_size's grammar), at most 1 TiB; -1
 * if malformed. */
static int64_t parse_size(const char *s)
{
    int64_t v;
    return srvconf_parse_size(s, &v) < 0 || v > (1LL << 40) ? -1 : v;
}

/* The http: mapping (keys of their own, each a size but body_grace). */
static void set_http(srvconf_t *c, const char *path, yaml_document_t *doc, yaml_node_t *v, nb_errlist_t *errs)
{
    static const char *const keys[] = { "max_body", "anon_body", "body_budget", "min_body_rate", "body_grace",
                                        "proxy_body_max", "websocket_idle" };
    const size_t nkeys = sizeof keys / sizeof *keys;
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'http' must be a mapping (max_body, anon_body, body_budget, "
                                        "min_body_rate, body_grace, proxy_body_max, websocket_idle)");
        return;
    }
    yaml_node_t *budget_node = NULL;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        const char *key = scalar(kn), *s = scalar(vn);
        size_t i = 0;
        while (key && i < nkeys && strcmp(key, keys[i]) != 0) i++;
        if (!key || i == nkeys) {
            const char *hint = key ? errlist_closest(key, keys, nkeys) : NULL;
            errlist_add(errs, path, POS(kn), "unknown key 'http.%s'%s%s%s", key ? key : "?",
                        hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
            continue;
        }
        if (i == 4 || i == 6) {
            int64_t secs;
            if (!s || flow_duration_parse(s, &secs) < 0 || (i == 6 && secs < 60)) {
                errlist_add(errs, path, POS(vn), "'http.%s' must be a duration such as %s", key,
                            i == 4 ? "10s or 1m" : "1h or 2h (at least 1m: Jupyter pings every 30 s)");
                continue;
            }
            if (i == 4) c->http_body_grace_ms = secs * 1000;
            else c->http_websocket_idle_ms = secs * 1000;
            continue;
        }
        int64_t n = parse_size(s);
        /* Zero turns the budget and the rate off; a zero body limit is a typo. */
        if (n < 0 || (n == 0 && i < 2)) {
            errlist_add(errs, path, POS(vn), "'http.%s' must be a size such as 65536, 64k or 8m%s", key,
                        i < 2 ? "" : " (0 = off)");
            continue;
        }
        if (i == 5) c->http_proxy_body_max = n;    /* 0: none, the default */
        else if (i == 0) c->http_max_body = n;
        else if (i == 1) c->http_anon_body = n;
        else if (i == 2) c->http_body_budget = n, budget_node = vn;
        else c->http_min_body_rate = n;
    }
    /* A budget smaller than one allowed body would refuse that body forever. */
    int64_t max = c->http_max_body > 0 ? c->http_max_body : 8 << 20;
    if (budget_node && c->http_body_budget > 0 && c->http_body_budget < max)
        errlist_add(errs, path, POS(budget_node), "'http.body_budget' (%lld bytes) is smaller than max_body "
                    "(%lld bytes): such a body could never be received", (long long)c->http_body_budget,
                    (long long)max);
}

int srvconf_parse_size(const char *s, int64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno) return -1;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024; end++; break;
    case 'm': case 'M': mul = 1024 * 1024; end++; break;
    case 'g': case 'G': mul = 1024ULL * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && *end == 'i') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end || v > (uint64_t)INT64_MAX / mul) return -1;
    *out = (int64_t)(v * mul);
    return 0;
}

/* A mapping's sub-keys, with the same unknown-key message as the top level. */
static int sub_key(const char *path, yaml_node_t *kn, const char *parent, const char *const *names,
                   size_t n, nb_errlist_t *errs)
{
    const char *key = scalar(kn);
    for (size_t i = 0; key && i < n; i++)
        if (strcmp(key, names[i]) == 0) return (int)i;
    const char *hint = key ? errlist_closest(key, names, n) : NULL;
    errlist_add(errs, path, POS(kn), "unknown key '%s' in '%s'%s%s%s", key ? key : "?", parent,
                hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
    return -1;
}

static void set_webhooks(srvconf_t *c, const char *path, yaml_document_t *doc, yaml_node_t *v,
                         nb_errlist_t *errs)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'webhooks' must be a mapping, such as {allow: [10.0.0.0/8]}");
        return;
    }
    static const char *const names[] = { "allow" };
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        if (sub_key(path, kn, "webhooks", names, 1, errs) < 0) continue;
        if (vn->type != YAML_SEQUENCE_NODE) {
            errlist_add(errs, path, POS(vn), "'webhooks.allow' must be a list of CIDRs, addresses "
                                             "or host[:port] entries");
            continue;
        }
        netguard_t *g = netguard_new();
        size_t n = 0;
        char **list = xcalloc(1, sizeof *list);
        for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
             it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            nb_err_t err;
            if (!scalar(e)) {
                errlist_add(errs, path, POS(e), "'webhooks.allow' entries must be strings");
                continue;
            }
            if (netguard_allow(g, scalar(e), &err) < 0) {
                errlist_add(errs, path, POS(e), "webhooks.allow: %s", err.msg);
                continue;
            }
            list = xrealloc(list, (n + 2) * sizeof *list);
            list[n++] = xstrdup(scalar(e));
            list[n] = NULL;
        }
        netguard_free(g);
        strv_free(c->webhook_allow);
        c->webhook_allow = list;
    }
}

static void set_ui(srvconf_t *c, const char *path, yaml_document_t *doc, yaml_node_t *v,
                   nb_errlist_t *errs)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'ui' must be a mapping, such as {render_max: 32m}");
        return;
    }
    static const char *const names[] = { "render_max", "render_jobs", "render_queue" };
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        int k = sub_key(path, kn, "ui", names, 3, errs);
        unsigned u;
        if (k == 0) {
            int64_t sz;
            if (srvconf_parse_size(scalar(vn), &sz) < 0)
                errlist_add(errs, path, POS(vn), "'ui.render_max' must be a size such as 32m, "
                                                 "512k or 1g (0: never render)");
            else
                c->render_max = sz;
        } else if (k == 1) {
            if (parse_uint(scalar(vn), &u) < 0 || u < 1 || u > 64)
                errlist_add(errs, path, POS(vn), "'ui.render_jobs' must be an integer from 1 to 64");
            else
                c->render_jobs = u;
        } else if (k == 2) {
            if (parse_uint(scalar(vn), &u) < 0 || u < 1 || u > 10000)
                errlist_add(errs, path, POS(vn), "'ui.render_queue' must be an integer from 1 to 10000");
            else
                c->render_queue = u;
        }
    }
}

/* tls: {cert: FILE, key: FILE} of a listen entry: both loaded now, so that
 * a missing file, a file that is not PEM or a key of another certificate
 * is reported here with its position rather than at the first handshake. */
static void set_listen_tls(srvconf_t *c, size_t i, const char *path, yaml_document_t *doc, yaml_node_t *v,
                           nb_errlist_t *errs)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'tls' must be a mapping {cert: FILE, key: FILE}");
        return;
    }
    static const char *const names[] = { "cert", "key" };
    yaml_node_t *nodes[2] = { NULL, NULL };
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        int k = sub_key(path, kn, "tls", names, 2, errs);
        if (k < 0) continue;
        if (!scalar(vn) || !*scalar(vn)) {
            errlist_add(errs, path, POS(vn), "'tls.%s' must be a file name", names[k]);
            continue;
        }
        nodes[k] = vn;
    }
    for (int k = 0; k < 2; k++)
        if (!nodes[k]) {
            errlist_add(errs, path, POS(v), "'tls' needs '%s' (a PEM %s file)", names[k],
                        k == 0 ? "certificate chain" : "private key");
            return;
        }
    const char *cert = scalar(nodes[0]), *key = scalar(nodes[1]);
    tls_ctx_t *t;
    nb_err_t err;
    if (tls_ctx_new(cert, key, &t, &err) < 0) {
        /* The certificate's own problems at cert:, the rest at key:. */
        int at_cert = strncmp(err.msg, "certificate ", 12) == 0;
        errlist_add(errs, path, POS(at_cert ? nodes[0] : nodes[1]), "tls: %s", err.msg);
        return;
    }
    tls_ctx_free(t);
    c->listen_cert[i] = xstrdup(cert);
    c->listen_key[i] = xstrdup(key);
}

/* listen: an address, {addr: ADDR, tls: {cert, key}}, or a list of both. */
static void set_listen(srvconf_t *c, const char *path, yaml_document_t *doc, yaml_node_t *v,
                       nb_errlist_t *errs)
{
    listen_free(c);
    yaml_node_t *one[1] = { v };
    yaml_node_t **items = one;
    size_t n = 1;
    yaml_node_t **seq = NULL;
    if (v->type == YAML_SEQUENCE_NODE) {
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        seq = xcalloc(n ? n : 1, sizeof *seq);
        for (size_t i = 0; i < n; i++) seq[i] = yaml_document_get_node(doc, v->data.sequence.items.start[i]);
        items = seq;
    }
    c->listen = xcalloc(n + 1, sizeof *c->listen);
    c->listen_cert = xcalloc(n + 1, sizeof *c->listen_cert);
    c->listen_key = xcalloc(n + 1, sizeof *c->listen_key);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *e = items[i];
        if (scalar(e) && *scalar(e)) {
            c->listen[out++] = xstrdup(scalar(e));
            continue;
        }
        if (e->type != YAML_MAPPING_NODE) {
            errlist_add(errs, path, POS(e), "'listen' entries must be addresses (127.0.0.1:8765, "
                                            "unix:/path) or {addr: ADDR, tls: {cert: FILE, key: FILE}}");
            continue;
        }
        static const char *const names[] = { "addr", "tls" };
        yaml_node_t *addr = NULL, *tls = NULL;
        for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(doc, p->value);
            int k = sub_key(path, kn, "listen", names, 2, errs);
            if (k == 0) addr = vn;
            else if (k == 1) tls = vn;
        }
        if (!addr || !scalar(addr) || !*scalar(addr)) {
            errlist_add(errs, path, POS(addr ? addr : e), "a 'listen' entry needs 'addr', such as "
                                                          "0.0.0.0:8443 or unix:/path");
            continue;
        }
        if (tls) set_listen_tls(c, out, path, doc, tls, errs);
        c->listen[out++] = xstrdup(scalar(addr));
    }
    free(seq);
    if (!out) {
        if (v->type == YAML_SEQUENCE_NODE && n == 0)
            errlist_add(errs, path, POS(v), "'listen' must name at least one address");
        listen_free(c);
    }
}

static void set_value(srvconf_t *c, const char *path, yaml_document_t *doc,
                      const struct ckey *k, yaml_node_t *v, nb_errlist_t *errs)
{
    const char *s = scalar(v);
    switch (k->type) {
    case C_STR:
        if (!s || !*s) {
            errlist_add(errs, path, POS(v), "'%s' must be a non-empty string", k->name);
            return;
        }
        if (strcmp(k->name, "home") == 0) { free(c->home); c->home = xstrdup(s); }
        else if (strcmp(k->name, "livy_listen") == 0) { free(c->livy_listen); c->livy_listen = xstrdup(s); }
        else if (strcmp(k->name, "flows_dir") == 0) { free(c->flows_dir); c->flows_dir = xstrdup(s); }
        else if (strcmp(k->name, "base_url") == 0) { free(c->base_url); c->base_url = xstrdup(s); }
        else if (strcmp(k->name, "isolation") == 0) {
            if (strcmp(s, "shared") && strcmp(s, "system")) {
                errlist_add(errs, path, POS(v), "'isolation' must be shared or system, not '%s'", s);
                return;
            }
            free(c->isolation);
            c->isolation = xstrdup(s);
        } else if (strcmp(k->name, "system_user") == 0) {
            if (!uacct_template_valid(s)) {
                errlist_add(errs, path, POS(v),
                            "'system_user' must contain {name} and give a valid Unix account name, such as nbhub-{name}");
                return;
            }
            free(c->system_user);
            c->system_user = xstrdup(s);
        }
        else if (strcmp(k->name, "log_level") == 0) {
            if (strcmp(s, "debug") && strcmp(s, "info") && strcmp(s, "warn") && strcmp(s, "error")) {
                errlist_add(errs, path, POS(v), "'log_level' must be debug, info, warn or error, not '%s'", s);
                return;
            }
            free(c->log_level);
            c->log_level = xstrdup(s);
        }
        return;
    case C_STRLIST: {
        size_t n = 0;
        char **list = NULL;
        if (s) {
            list = xcalloc(2, sizeof *list);
            list[n++] = xstrdup(s);
        } else if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(doc, *it);
                if (!scalar(e)) {
                    errlist_add(errs, path, POS(e), "'%s' entries must be strings", k->name);
                    continue;
                }
                list = xrealloc(list, (n + 2) * sizeof *list);
                list[n++] = xstrdup(scalar(e));
                list[n] = NULL;
            }
        } else {
            errlist_add(errs, path, POS(v), "'%s' must be an address or a list of addresses", k->name);
            return;
        }
        strv_free(c->trusted_users);
        c->trusted_users = list;
        return;
    }
    case C_LISTEN:
        set_listen(c, path, doc, v, errs);
        return;
    case C_UINT: {
        unsigned u;
        if (parse_uint(s, &u) < 0 || u == 0) {
            errlist_add(errs, path, POS(v), "'%s' must be a positive integer", k->name);
            return;
        }
        c->max_active_tasks = u;
        return;
    }
    case C_DURATION: {
        int64_t secs;
        if (!s || flow_duration_parse(s, &secs) < 0) {
            errlist_add(errs, path, POS(v), "'%s' must be a duration such as 30s, 5m or 1h", k->name);
            return;
        }
        if (strcmp(k->name, "kill_grace") == 0) c->kill_grace_ms = secs * 1000;
        else c->shutdown_grace_ms = secs * 1000;
        return;
    }
    case C_BOOL:
        if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
            int b = strcmp(s, "true") == 0;
            if (strcmp(k->name, "create_system_users") == 0) c->create_system_users = b;
            else c->secure_cookies = b;
            return;
        }
        errlist_add(errs, path, POS(v), "'%s' must be true or false", k->name);
        return;
    case C_HTTP:
        set_http(c, path, doc, v, errs);
        return;
    case C_POOL:
        if (v->type != YAML_MAPPING_NODE) {
            errlist_add(errs, path, POS(v), "'pool' must be a mapping of kernel name: count");
            return;
        }
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(doc, p->value);
            unsigned u;
            if (!scalar(kn) || parse_uint(scalar(vn), &u) < 0 || u > 64) {
                errlist_add(errs, path, POS(vn), "pool sizes must be integers from 0 to 64");
                continue;
            }
            srvconf_set_pool(c, scalar(kn), u);
        }
        return;
    case C_LIMITS:
        parse_limits(path, doc, v, "limits", &c->limits, errs);
        return;
    case C_ULIMITS:
        if (v->type != YAML_MAPPING_NODE) {
            errlist_add(errs, path, POS(v), "'user_limits' must be a mapping of user name: limits");
            return;
        }
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            if (!scalar(kn)) {
                errlist_add(errs, path, POS(kn), "'user_limits' keys must be user names");
                continue;
            }
            c->ulimit_names = xrealloc(c->ulimit_names, (c->nulimits + 1) * sizeof *c->ulimit_names);
            c->ulimits = xrealloc(c->ulimits, (c->nulimits + 1) * sizeof *c->ulimits);
            c->ulimit_names[c->nulimits] = xstrdup(scalar(kn));
            c->ulimits[c->nulimits] = (iso_limits_t){ 0, 0, 0 };
            parse_limits(path, doc, yaml_document_get_node(doc, p->value), "user_limits",
                         &c->ulimits[c->nulimits], errs);
            c->nulimits++;
        }
        return;
    case C_SPARK:
        if (v->type != YAML_MAPPING_NODE) {
            errlist_add(errs, path, POS(v), "'spark' must be a mapping (max_clusters_per_user, max_memory_per_user)");
            return;
        }
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(doc, p->value);
            const char *key = scalar(kn), *val = scalar(vn);
            unsigned u;
            if (key && !strcmp(key, "max_clusters_per_user")) {
                if (parse_uint(val, &u) < 0 || u == 0)
                    errlist_add(errs, path, POS(vn), "'spark.max_clusters_per_user' must be a positive integer");
                else
                    c->spark_max_clusters = u;
            } else if (key && !strcmp(key, "max_memory_per_user")) {
                long mb = val ? scluster_memory_mb(val) : -EINVAL;
                if (mb <= 0)
                    errlist_add(errs, path, POS(vn), "'spark.max_memory_per_user' must be a size such as 8g or 4096m");
                else
                    c->spark_max_memory_mb = mb;
            } else {
                static const char *const sk[] = { "max_clusters_per_user", "max_memory_per_user" };
                const char *hint = key ? errlist_closest(key, sk, 2) : NULL;
                errlist_add(errs, path, POS(kn), "unknown key 'spark.%s'%s%s%s", key ? key : "?",
                            hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
            }
        }
        return;
    case C_WEBHOOKS:
        set_webhooks(c, path, doc, v, errs);
        return;
    case C_UI:
        set_ui(c, path, doc, v, errs);
        return;
    case C_HUB:
        hub_conf_parse(path, doc, v, &c->hub, errs);
        return;
    case C_AUTH:
        auth_conf_parse(path, doc, v, &c->auth, errs);
        return;
    case C_LIVY:
        livy_conf_parse(path, doc, v, &c->livy, errs);
        return;
    }
}

int srvconf_load(const char *path, srvconf_t *c, nb_errlist_t *errs)
{
    char *text = NULL;
    size_t len = 0;
    nb_err_t err;
    int rc = fs_read_all(path, &text, &len, &err);
    if (rc < 0) {
        errlist_add(errs, path, 0, 0, "%s", err.msg);
        return rc;
    }
    size_t before = errlist_count(errs);
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        errlist_add(errs, path, (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1,
                    "%s", p.problem ? p.problem : "invalid YAML");
        yaml_parser_delete(&p);
        free(text);
        return -EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        if (root->type != YAML_MAPPING_NODE) {
            errlist_add(errs, path, POS(root), "the configuration must be a mapping of settings");
        } else {
            const char *names[NKEYS];
            for (size_t i = 0; i < NKEYS; i++) names[i] = srvconf_keys[i].name;
            for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
                 pr < root->data.mapping.pairs.top; pr++) {
                yaml_node_t *kn = yaml_document_get_node(&doc, pr->key);
                yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);
                const char *key = scalar(kn);
                const struct ckey *k = NULL;
                for (size_t i = 0; key && i < NKEYS; i++)
                    if (strcmp(key, srvconf_keys[i].name) == 0) k = &srvconf_keys[i];
                if (!k) {
                    const char *hint = key ? errlist_closest(key, names, NKEYS) : NULL;
                    errlist_add(errs, path, POS(kn), "unknown key '%s'%s%s%s", key ? key : "?",
                                hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
                    continue;
                }
                set_value(c, path, &doc, k, vn, errs);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    free(text);
    hub_conf_finish(&c->hub);
    livy_conf_finish(&c->livy);
    return errlist_count(errs) > before ? -EINVAL : 0;
}
