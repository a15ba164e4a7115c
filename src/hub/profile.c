/*
 * profile.c — the `hub:` section of nbhub.yaml (profile.h).  libyaml's
 * document nodes keep their start marks, which give the FILE:LINE:COLUMN
 * of every problem; each mapping is checked against its known keys with a
 * "did you mean" hint, as srvconf does for the top level.
 */
#include "hub/profile.h"

#include "sched/flow.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define POS(n) (int)(n)->start_mark.line + 1, (int)(n)->start_mark.column + 1

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int hub_name_valid(const char *s)
{
    if (!s || !*s || strlen(s) > 63) return 0;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

void hub_conf_init(hub_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->cull_keep_busy = 1;
    c->start_timeout_ms = -1;
    c->max_servers_per_user = (unsigned)-1;
    c->named_servers = -1;
    c->admin_access = -1;
    c->stop_grace_ms = -1;
    c->log_max = -1;
}

static void strv_free(char **v)
{
    if (v)
        for (char **p = v; *p; p++) free(*p);
    free(v);
}

static void profile_clear(hub_profile_t *p)
{
    free(p->name);
    free(p->description);
    free(p->python);
    strv_free(p->command);
    strv_free(p->env);
    free(p->default_url);
    strv_free(p->allow_users);
    strv_free(p->allow_groups);
    memset(p, 0, sizeof *p);
}

void hub_conf_clear(hub_conf_t *c)
{
    for (size_t i = 0; i < c->nprofiles; i++) profile_clear(&c->profiles[i]);
    free(c->profiles);
    hub_conf_init(c);
}

void hub_conf_finish(hub_conf_t *c)
{
    if (c->start_timeout_ms < 0) c->start_timeout_ms = HUB_START_TIMEOUT_MS_DEFAULT;
    if (c->max_servers_per_user == (unsigned)-1) c->max_servers_per_user = HUB_MAX_SERVERS_DEFAULT;
    if (c->named_servers < 0) c->named_servers = 1;
    if (c->admin_access < 0) c->admin_access = 0;
    if (c->stop_grace_ms < 0) c->stop_grace_ms = HUB_STOP_GRACE_MS_DEFAULT;
    if (c->log_max < 0) c->log_max = HUB_LOG_MAX_DEFAULT;
    if (c->nprofiles == 0) {
        c->profiles = xcalloc(1, sizeof *c->profiles);
        c->nprofiles = 1;
        c->profiles[0].name = xstrdup("default");
        c->profiles[0].description = xstrdup("JupyterLab (jupyterhub-singleuser from PATH)");
        c->profiles[0].allow_all = 1;
        c->profiles[0].allow_admins = 1;
    }
}

/* ---- parsing ----------------------------------------------------------- */

struct pctx {
    const char      *path;
    yaml_document_t *doc;
    nb_errlist_t    *errs;
};

static void unknown_key(struct pctx *x, yaml_node_t *kn, const char *where, const char *key,
                        const char *const *known, size_t n)
{
    const char *hint = key ? errlist_closest(key, known, n) : NULL;
    errlist_add(x->errs, x->path, POS(kn), "unknown key '%s%s'%s%s%s", where, key ? key : "?",
                hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
}

static int get_bool(struct pctx *x, yaml_node_t *v, const char *what, int *out)
{
    const char *s = scalar(v);
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))) return *out = 1, 0;
    if (s && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))) return *out = 0, 0;
    errlist_add(x->errs, x->path, POS(v), "'%s' must be true or false", what);
    return -1;
}

static int get_duration_ms(struct pctx *x, yaml_node_t *v, const char *what, int64_t *out)
{
    const char *s = scalar(v);
    int64_t secs;
    if (!s || flow_duration_parse(s, &secs) < 0) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a duration such as 30s, 5m or 1h", what);
        return -1;
    }
    *out = secs * 1000;
    return 0;
}

static int get_uint(struct pctx *x, yaml_node_t *v, const char *what, long max, long *out)
{
    const char *s = scalar(v);
    char *end = NULL;
    long n = s && *s && *s != '-' ? strtol(s, &end, 10) : -1;
    if (!s || !*s || !end || *end || n < 0 || n > max) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a whole number from 0 to %ld", what, max);
        return -1;
    }
    *out = n;
    return 0;
}

static char *get_str(struct pctx *x, yaml_node_t *v, const char *what)
{
    const char *s = scalar(v);
    if (!s || (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !*s)) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a string", what);
        return NULL;
    }
    return xstrdup(s);
}

static char **get_strlist(struct pctx *x, yaml_node_t *v, const char *what)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'%s' must be a list of strings", what);
        return NULL;
    }
    size_t n = 0;
    char **out = xcalloc(1, sizeof *out);
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        const char *s = scalar(e);
        if (!s) {
            errlist_add(x->errs, x->path, POS(e), "'%s' must be a list of strings", what);
            continue;
        }
        out = xrealloc(out, (n + 2) * sizeof *out);
        out[n++] = xstrdup(s);
        out[n] = NULL;
    }
    return out;
}

/* "4m", "512k", "1g" or bytes (powers of 1024). */
static int parse_size(const char *s, int64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024LL * 1024 * 1024, end++;
    if (*end || v < 0 || v > (1LL << 40) / mul) return -1;
    *out = v * mul;
    return 0;
}

static void parse_limits(struct pctx *x, yaml_node_t *v, iso_limits_t *out)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'limits' must be a mapping such as {cpu: 1, memory: 2g}");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn), *why = "is not a key";
        int rc = key ? limits_set(out, key, scalar(vn), &why) : -1;
        if (rc == -ENOENT) errlist_add(x->errs, x->path, POS(kn), "unknown limit '%s' (memory, cpu or pids)", key);
        else if (rc < 0) errlist_add(x->errs, x->path, POS(vn), "limits: '%s' %s", key ? key : "?", why);
    }
}

static int env_name_ok(const char *k)
{
    if (!k || !*k || (*k >= '0' && *k <= '9')) return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

static void parse_env(struct pctx *x, yaml_node_t *v, hub_profile_t *pr)
{
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'env' must be a mapping of NAME: value");
        return;
    }
    size_t n = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn), *val = scalar(vn);
        if (!env_name_ok(key)) {
            errlist_add(x->errs, x->path, POS(kn), "'env': '%s' is not a variable name", key ? key : "?");
            continue;
        }
        /* The hub's own variables are the hub's: a profile cannot point a
         * server at another hub or give it another identity. */
        if (!strncmp(key, "JUPYTERHUB_", 11) || !strcmp(key, "JPY_API_TOKEN")) {
            errlist_add(x->errs, x->path, POS(kn), "'env': %s is set by the hub", key);
            continue;
        }
        if (!val) {
            errlist_add(x->errs, x->path, POS(vn), "'env': the value of %s must be a string", key);
            continue;
        }
        pr->env = xrealloc(pr->env, (n + 2) * sizeof *pr->env);
        pr->env[n++] = xasprintf("%s=%s", key, val);
        pr->env[n] = NULL;
    }
}

static void parse_allow(struct pctx *x, yaml_node_t *v, hub_profile_t *pr)
{
    static const char *const keys[] = { "users", "groups", "admins" };
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'allow' must be a mapping {users: [...], groups: [...], admins: true}");
        return;
    }
    pr->allow_all = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn);
        if (key && !strcmp(key, "users")) { strv_free(pr->allow_users); pr->allow_users = get_strlist(x, vn, "allow.users"); }
        else if (key && !strcmp(key, "groups")) { strv_free(pr->allow_groups); pr->allow_groups = get_strlist(x, vn, "allow.groups"); }
        else if (key && !strcmp(key, "admins")) get_bool(x, vn, "allow.admins", &pr->allow_admins);
        else unknown_key(x, kn, "allow.", key, keys, 3);
    }
}

static void parse_spark(struct pctx *x, yaml_node_t *v, hub_profile_t *pr)
{
    static const char *const keys[] = { "workers", "worker_memory", "connect" };
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'spark' must be a mapping {workers: 2, worker_memory: 1g, connect: true}");
        return;
    }
    pr->spark.workers = 1;
    pr->spark.connect = 1;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn);
        long n;
        const char *why = "";
        if (key && !strcmp(key, "workers")) {
            if (get_uint(x, vn, "spark.workers", 64, &n) == 0) {
                if (n == 0) errlist_add(x->errs, x->path, POS(vn), "'spark.workers' must be at least 1");
                else pr->spark.workers = (int)n;
            }
        } else if (key && !strcmp(key, "worker_memory")) {
            if (!scalar(vn) || limits_parse_memory(scalar(vn), &pr->spark.worker_memory, &why) < 0)
                errlist_add(x->errs, x->path, POS(vn), "'spark.worker_memory' must be a size such as 1g%s%s",
                            *why ? ": " : "", why);
        } else if (key && !strcmp(key, "connect")) {
            get_bool(x, vn, "spark.connect", &pr->spark.connect);
        } else {
            unknown_key(x, kn, "spark.", key, keys, 3);
        }
    }
}

static void parse_profile(struct pctx *x, yaml_node_t *v, hub_profile_t *pr)
{
    static const char *const keys[] = { "name", "description", "python", "command", "limits",
                                        "env", "default_url", "allow", "spark" };
    pr->allow_all = 1;
    pr->allow_admins = 1;
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "a profile must be a mapping with at least a name");
        return;
    }
    yaml_node_t *cmdnode = NULL, *pynode = NULL;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn);
        if (key && !strcmp(key, "name")) {
            free(pr->name);
            pr->name = get_str(x, vn, "name");
            if (pr->name && !hub_name_valid(pr->name)) {
                errlist_add(x->errs, x->path, POS(vn), "profile name '%s' must be 1-63 of a-z 0-9 . _ - "
                            "starting with a letter or digit", pr->name);
            }
        } else if (key && !strcmp(key, "description")) {
            free(pr->description);
            pr->description = get_str(x, vn, "description");
        } else if (key && !strcmp(key, "python")) {
            free(pr->python);
            pr->python = get_str(x, vn, "python");
            pynode = vn;
            if (pr->python && pr->python[0] != '/')
                errlist_add(x->errs, x->path, POS(vn), "'python' must be an absolute path to a Python interpreter");
        } else if (key && !strcmp(key, "command")) {
            strv_free(pr->command);
            pr->command = get_strlist(x, vn, "command");
            cmdnode = vn;
            if (pr->command && !pr->command[0]) errlist_add(x->errs, x->path, POS(vn), "'command' is empty");
        } else if (key && !strcmp(key, "limits")) {
            parse_limits(x, vn, &pr->limits);
        } else if (key && !strcmp(key, "env")) {
            parse_env(x, vn, pr);
        } else if (key && !strcmp(key, "default_url")) {
            free(pr->default_url);
            pr->default_url = get_str(x, vn, "default_url");
            if (pr->default_url && pr->default_url[0] != '/')
                errlist_add(x->errs, x->path, POS(vn), "'default_url' must start with / (such as /lab)");
        } else if (key && !strcmp(key, "allow")) {
            parse_allow(x, vn, pr);
        } else if (key && !strcmp(key, "spark")) {
            parse_spark(x, vn, pr);
        } else {
            unknown_key(x, kn, "", key, keys, sizeof keys / sizeof *keys);
        }
    }
    if (!pr->name) errlist_add(x->errs, x->path, POS(v), "a profile needs a name");
    if (cmdnode && pynode)
        errlist_add(x->errs, x->path, POS(cmdnode), "a profile has either 'python' or 'command', not both");
    if (pr->command) {
        int port = 0;
        for (char **a = pr->command; *a; a++) port |= strstr(*a, "{port}") != NULL;
        if (!port) errlist_add(x->errs, x->path, POS(cmdnode), "'command' must contain {port} (where the server listens)");
    }
}

static void parse_cull(struct pctx *x, yaml_node_t *v, hub_conf_t *c)
{
    static const char *const keys[] = { "timeout", "keep_busy", "max_age", "every" };
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(x->errs, x->path, POS(v), "'cull' must be a mapping {timeout: 1h, keep_busy: true, max_age: 0}");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = scalar(kn);
        if (key && !strcmp(key, "timeout")) get_duration_ms(x, vn, "cull.timeout", &c->cull_timeout_ms);
        else if (key && !strcmp(key, "keep_busy")) get_bool(x, vn, "cull.keep_busy", &c->cull_keep_busy);
        else if (key && !strcmp(key, "max_age")) get_duration_ms(x, vn, "cull.max_age", &c->cull_max_age_ms);
        else if (key && !strcmp(key, "every")) get_duration_ms(x, vn, "cull.every", &c->cull_every_ms);
        else unknown_key(x, kn, "cull.", key, keys, 4);
    }
}

void hub_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *v, hub_conf_t *c,
                    nb_errlist_t *errs)
{
    static const char *const keys[] = { "profiles", "cull", "start_timeout", "max_servers_per_user",
                                        "named_servers", "admin_access", "stop_grace", "log_max" };
    struct pctx x = { path, doc, errs };
    c->present = 1;
    if (v->type != YAML_MAPPING_NODE) {
        errlist_add(errs, path, POS(v), "'hub' must be a mapping (profiles, cull, start_timeout, ...)");
        return;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        const char *key = scalar(kn);
        long n;
        if (key && !strcmp(key, "profiles")) {
            if (vn->type != YAML_SEQUENCE_NODE) {
                errlist_add(errs, path, POS(vn), "'hub.profiles' must be a list of profiles");
                continue;
            }
            for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(doc, *it);
                c->profiles = xrealloc(c->profiles, (c->nprofiles + 1) * sizeof *c->profiles);
                hub_profile_t *pr = &c->profiles[c->nprofiles++];
                memset(pr, 0, sizeof *pr);
                parse_profile(&x, e, pr);
                for (size_t k = 0; pr->name && k + 1 < c->nprofiles; k++)
                    if (c->profiles[k].name && !strcmp(c->profiles[k].name, pr->name))
                        errlist_add(errs, path, POS(e), "a second profile named '%s'", pr->name);
            }
        } else if (key && !strcmp(key, "cull")) {
            parse_cull(&x, vn, c);
        } else if (key && !strcmp(key, "start_timeout")) {
            if (get_duration_ms(&x, vn, "hub.start_timeout", &c->start_timeout_ms) == 0 && c->start_timeout_ms == 0)
                errlist_add(errs, path, POS(vn), "'hub.start_timeout' must be more than 0");
        } else if (key && !strcmp(key, "max_servers_per_user")) {
            if (get_uint(&x, vn, "hub.max_servers_per_user", 10000, &n) == 0) c->max_servers_per_user = (unsigned)n;
        } else if (key && !strcmp(key, "named_servers")) {
            get_bool(&x, vn, "hub.named_servers", &c->named_servers);
        } else if (key && !strcmp(key, "admin_access")) {
            get_bool(&x, vn, "hub.admin_access", &c->admin_access);
        } else if (key && !strcmp(key, "stop_grace")) {
            get_duration_ms(&x, vn, "hub.stop_grace", &c->stop_grace_ms);
        } else if (key && !strcmp(key, "log_max")) {
            if (parse_size(scalar(vn), &c->log_max) < 0 || c->log_max < 4096)
                errlist_add(errs, path, POS(vn), "'hub.log_max' must be a size such as 4m");
        } else {
            unknown_key(&x, kn, "hub.", key, keys, sizeof keys / sizeof *keys);
        }
    }
}
