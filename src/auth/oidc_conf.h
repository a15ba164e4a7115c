/*
 * oidc_conf — the `auth:` section of nbhub.yaml (docs/serve.md, docs/sso.md):
 *
 *     auth:
 *       local: true                  # password logins (false: SSO only, see below)
 *       oidc:
 *         issuer: https://kc.example.com/realms/acme   # everything else is discovered
 *         client_id: nbhub
 *         client_secret_file: /etc/nbhub/oidc-secret   # read at start; omit for a public client
 *         scopes: [openid, profile, email]             # openid is always asked for
 *         username_claim: preferred_username
 *         groups_claim: groups
 *         admin_groups: [admins]        # members are nbhub admins (at every login)
 *         allowed_groups: [staff]       # if set, everybody else is refused
 *         profile_groups: {data: spark-users}   # provider group -> nbhub group
 *         accept_access_tokens: false   # Authorization: Bearer <provider JWT> on /api/v1
 *         audience: nbhub               # the aud those access tokens must carry
 *         algorithms: [RS256, ES256]
 *         leeway: 60s
 *         display_name: Keycloak        # "Log in with Keycloak"
 *         cli_client_id: nbhub-cli      # public client for `nbhub login` (GET /auth/oidc/config)
 *         cli_scopes: [openid, "api://nbhub/access"]   # what `nbhub login` asks for (Entra ID)
 *         jwks_cooldown: 60s            # an unknown kid refetches the keys at most this often
 *
 * Parsed like the rest of the file (srvconf.c calls auth_conf_parse for the
 * `auth` key): every problem at FILE:LINE:COLUMN, all at once.  The client
 * secret is read from its file here, so a missing or empty file is a
 * configuration error with a position, not a failed login later.
 *
 * auth.local: false turns POST /api/v1/login off for everyone; the
 * break-glass is the command line on the server itself (`nbhub user
 * add/passwd/admin` work on the database directly, and `nbhub user token`
 * makes an API token that still works), so losing the provider never locks
 * the operator out.
 *
 * Ownership: auth_conf_t owns its strings (auth_conf_clear).
 */
#ifndef NBHUB_AUTH_OIDC_CONF_H
#define NBHUB_AUTH_OIDC_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "util/errlist.h"

typedef struct oidc_conf {
    int      enabled;              /* an oidc: mapping was given */
    char    *issuer;               /* without a trailing '/' as given (compared exactly) */
    char    *client_id;
    char    *client_secret_file;
    char    *client_secret;        /* the file's first line; NULL: a public client */
    char   **scopes;               /* NULL-terminated, "openid" first */
    char    *username_claim;       /* default preferred_username */
    char    *groups_claim;         /* default groups */
    char   **admin_groups;         /* NULL-terminated, may be NULL */
    char   **allowed_groups;       /* NULL-terminated; NULL = every user of the provider */
    char   **pg_from, **pg_to;     /* profile_groups: provider group -> nbhub group */
    size_t   npg;
    int      accept_access_tokens;
    char    *audience;             /* access tokens' aud (default: client_id) */
    char   **algorithms;           /* NULL-terminated; default RS256, ES256 */
    int64_t  leeway_s;             /* default 60 */
    char    *display_name;         /* default: the issuer's host */
    char    *cli_client_id;        /* the public client `nbhub login` uses (device grant); NULL: none */
    char   **cli_scopes;           /* NULL-terminated: what `nbhub login` asks for; NULL = openid */
    int64_t  jwks_cooldown_s;      /* least time between two fetches of the keys; 0 = JWKS_COOLDOWN_MS */
} oidc_conf_t;

typedef struct auth_conf {
    int         local;             /* password login on (default 1) */
    oidc_conf_t oidc;
} auth_conf_t;

void auth_conf_init(auth_conf_t *c);
void auth_conf_clear(auth_conf_t *c);
/* The `auth:` mapping v of doc (file path for messages); problems go to errs. */
void auth_conf_parse(const char *path, yaml_document_t *doc, yaml_node_t *v, auth_conf_t *c,
                     nb_errlist_t *errs);

/* 1 if s is in the NULL-terminated list l (NULL: no). */
int oidc_conf_has(char *const *l, const char *s);

#endif
