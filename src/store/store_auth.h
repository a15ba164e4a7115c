/*
 * store_auth — users, API tokens and browser sessions.
 *
 * Only hashes of secrets are stored: the caller hashes passwords (argon2)
 * and tokens/session cookies (SHA-256 of a random 256-bit value) before they
 * reach the store, and looks tokens up by hash, so a leaked database does
 * not hand out working credentials.
 *
 * Lookups reject what must not authenticate: unknown hash (-ENOENT),
 * expired token or session (-EKEYEXPIRED), disabled user (-EACCES).  The
 * HTTP layer answers 401 to all three alike; the codes are for logs.
 *
 * api_tokens.last_used_at is refreshed by store_token_lookup at most once a
 * minute per token, so a busy API client costs one fsync a minute, not one
 * per request.
 *
 * Auth changes do not append to `events`: that feed is shown to every
 * user (SSE) and is about flows and runs.
 *
 * Ownership: see store.h — store_user_t / store_token_t / store_session_t
 * fields are owned by the caller (store_*_clear), lists by store_*s_free.
 */
#ifndef NBHUB_STORE_AUTH_H
#define NBHUB_STORE_AUTH_H

#include "store/store.h"

typedef struct store_user {
    int64_t id;
    char   *name;
    char   *password_hash;   /* NULL = no password login (token/OIDC only) */
    int     is_admin;
    int64_t created_at;
    int     disabled;
    int     trusted;         /* may save commands and outside paths under isolation: shared */
} store_user_t;

typedef struct store_users {
    store_user_t *v;
    size_t        n;
} store_users_t;

/* What a token is for (api_tokens.kind).  Only STORE_TOKEN_API reaches
 * /api/v1; the other two are the hub's (docs/hub.md) and api_auth holds
 * them to the few /hub/api routes their holder needs. */
typedef enum store_token_kind {
    STORE_TOKEN_API = 0,     /* 'api': a user's (or a service's) own token */
    STORE_TOKEN_SERVER,      /* 'server': a notebook server's JUPYTERHUB_API_TOKEN */
    STORE_TOKEN_OAUTH,       /* 'oauth': issued through a server's OAuth client */
} store_token_kind_t;

/* 'api' / 'server' / 'oauth'; NULL for a value out of range. */
const char *store_token_kind_name(store_token_kind_t k);
/* The kind named s; -EINVAL for anything else. */
int store_token_kind_parse(const char *s, store_token_kind_t *out);

typedef struct store_token {
    int64_t id, user_id;
    char   *name;
    int64_t created_at;
    int64_t expires_at;      /* 0 = never */
    int64_t last_used_at;    /* 0 = never used; up to a minute behind */
    store_token_kind_t kind;
    char   *scopes;          /* JSON list of JupyterHub scopes; NULL = all the owner's rights */
    int64_t server_id;       /* servers.id it is bound to; 0 = none */
    char   *server_name;     /* that server's name ("" = default); NULL when unbound */
    char   *server_owner;    /* and its owner's name (an admin's OAuth token may be bound
                                to another user's server) */
} store_token_t;

typedef struct store_tokens {
    store_token_t *v;
    size_t         n;
} store_tokens_t;

typedef struct store_session {
    int64_t id, user_id;
    char   *csrf_token;
    int64_t created_at, expires_at;
} store_session_t;

/* New user; -EEXIST if the name is taken.  *id may be NULL. */
int store_user_add(store_t *st, const char *name, const char *password_hash, int is_admin,
                   int64_t now, int64_t *id, nb_err_t *err);
int store_user_by_name(store_t *st, const char *name, store_user_t *out, nb_err_t *err);
int store_user_by_id(store_t *st, int64_t id, store_user_t *out, nb_err_t *err);
/* Replace the password hash (NULL = disable password login) and end all of
 * the user's sessions in the same transaction: a password change must log
 * out whoever knew the old one. */
int store_user_set_password(store_t *st, int64_t id, const char *password_hash, nb_err_t *err);
/* The same, for a password change a user asked for: the session whose
 * digest is keep_session (the one that made the change; NULL: none) stays,
 * and with revoke_tokens all of the user's API tokens are deleted too, in
 * the same transaction. */
int store_user_change_password(store_t *st, int64_t id, const char *password_hash,
                               const char *keep_session, int revoke_tokens, nb_err_t *err);
/* Disable (1) or enable (0); disabling also ends the user's sessions.  Tokens
 * are kept but rejected while disabled. */
int store_user_set_disabled(store_t *st, int64_t id, int disabled, nb_err_t *err);
/* The admin role on (1) or off (0). */
int store_user_set_admin(store_t *st, int64_t id, int admin, nb_err_t *err);
/* Delete a user: sessions, tokens, servers rows and group memberships go
 * with it (ON DELETE CASCADE), flows and runs keep their rows without an
 * owner.  -EBUSY while the user owns a live flow (delete or hand those
 * over first: an ownerless scheduled flow would go on running as nobody
 * in particular), -ENOENT if there is no such user. */
int store_user_delete(store_t *st, int64_t id, nb_err_t *err);
/* The trusted role on (1) or off (0). */
int store_user_set_trusted(store_t *st, int64_t id, int trusted, nb_err_t *err);
int store_users_count(store_t *st, int64_t *n, nb_err_t *err);
int store_users_list(store_t *st, store_users_t *out, nb_err_t *err);

/* New API token for user_id (expires_at 0 = never); -EEXIST on a hash
 * collision, -ENOENT for an unknown user.  *id may be NULL. */
int store_token_add(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                    int64_t now, int64_t expires_at, int64_t *id, nb_err_t *err);
/* The same with a kind, JupyterHub scopes (a JSON list as text, stored as
 * given: the caller validates it and keeps it within the owner's rights;
 * NULL = all of them) and the server it belongs to (0 = none; a 'server' or
 * 'oauth' token dies with its servers row).  -ENOENT for an unknown user or
 * server. */
int store_token_add_scoped(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                           store_token_kind_t kind, const char *scopes_json, int64_t server_id,
                           int64_t now, int64_t expires_at, int64_t *id, nb_err_t *err);
/* A token minted with the provider's access token (`nbhub login`,
 * docs/sso.md): an 'api' token that carries the provider session it came
 * from (api_tokens.idp_sid; "" when the provider named none), so the end
 * of that provider session, or of all of the user's, revokes it. */
int store_token_add_idp(store_t *st, int64_t user_id, const char *name, const char *token_hash,
                        const char *scopes_json, const char *idp_sid, int64_t now, int64_t expires_at,
                        int64_t *id, nb_err_t *err);
/* Delete the tokens of provider session idp_sid, or with idp_sid NULL
 * every provider-minted token of user_id (a logout by sub).  *deleted may
 * be NULL; none is not an error. */
int store_tokens_revoke_idp(store_t *st, const char *idp_sid, int64_t user_id, int64_t *deleted,
                            nb_err_t *err);
/* The token with this hash and its user (either output may be NULL). */
int store_token_lookup(store_t *st, const char *token_hash, int64_t now, store_token_t *tok,
                       store_user_t *user, nb_err_t *err);
/* Delete a token; user_id != 0 restricts to that user's tokens (so a user
 * cannot revoke someone else's: -ENOENT). */
int store_token_revoke(store_t *st, int64_t id, int64_t user_id, nb_err_t *err);
/* Delete the token with this digest (logout with a token); -ENOENT if
 * there is none. */
int store_token_revoke_hash(store_t *st, const char *token_hash, nb_err_t *err);
/* Delete the tokens bound to server_id (a stop ends its API token and the
 * OAuth tokens it handed out); kind < 0 = every kind, else only that kind.
 * *deleted may be NULL.  No token is not an error. */
int store_tokens_revoke_server(store_t *st, int64_t server_id, int kind, int64_t *deleted,
                               nb_err_t *err);
/* Drop expired OAuth tokens (a browser login makes one; they are not
 * listed once expired, and nothing else would ever delete them).
 * *deleted may be NULL. */
int store_tokens_prune_oauth(store_t *st, int64_t now, int64_t *deleted, nb_err_t *err);
/* One token by id (any kind), with user_id != 0 restricting to that user's:
 * -ENOENT otherwise. */
int store_token_by_id(store_t *st, int64_t id, int64_t user_id, store_token_t *out, nb_err_t *err);
/* A user's tokens, every kind, oldest first. */
int store_tokens_list(store_t *st, int64_t user_id, store_tokens_t *out, nb_err_t *err);

int store_session_add(store_t *st, const char *token_hash, const char *csrf_token,
                      int64_t user_id, int64_t now, int64_t expires_at, int64_t *id,
                      nb_err_t *err);
int store_session_lookup(store_t *st, const char *token_hash, int64_t now, store_session_t *out,
                         store_user_t *user, nb_err_t *err);
/* Logout; -ENOENT if there was no such session. */
int store_session_delete(store_t *st, const char *token_hash, nb_err_t *err);
/* Drop expired sessions (a periodic timer calls it). */
int store_sessions_prune(store_t *st, int64_t now, int64_t *deleted, nb_err_t *err);

/* ---- single sign-on (schema v6: users.idp/idp_subject, sessions.idp_*) ----
 * A provider's user is known by (idp = issuer, idp_subject = sub), unique;
 * the name is nbhub's and is never merged with a local account's.  The
 * session of an SSO login keeps what logout and refresh need: the
 * provider's session id (back-channel logout names it), the ID token
 * (id_token_hint), the refresh token and when the provider's tokens
 * expire (µs; then the next request refreshes). */
typedef struct store_session_idp {
    char   *idp_sid;         /* NULL: not from a provider */
    char   *id_token;        /* as stored: sealed by the caller (auth/seal.h) */
    char   *refresh_token;   /* the same */
    int64_t idp_expires_at;  /* µs, 0 = not known */
    int64_t session_id;      /* the row's id (read only: the seal's associated data) */
} store_session_idp_t;

/* New user with no password, bound to (idp, subject); -EEXIST if the name
 * or the identity is taken.  *id may be NULL. */
int store_user_add_idp(store_t *st, const char *name, const char *idp, const char *subject,
                       int is_admin, int64_t now, int64_t *id, nb_err_t *err);
/* The identity of user id: *idp and *subject (new strings, NULL for a
 * local user); -ENOENT for no such user. */
int store_user_idp(store_t *st, int64_t id, char **idp, char **subject, nb_err_t *err);
/* The provider part of the session with this id (after store_session_add). */
int store_session_set_idp(store_t *st, int64_t session_id, const store_session_idp_t *v,
                          nb_err_t *err);
/* The provider part of the session with this digest; -ENOENT if none. */
int store_session_get_idp(store_t *st, const char *token_hash, store_session_idp_t *out,
                          nb_err_t *err);
/* The same by the session's id. */
int store_session_get_idp_id(store_t *st, int64_t session_id, store_session_idp_t *out, nb_err_t *err);
/* End the sessions of a provider session (idp_sid), or with idp_sid NULL
 * every provider session of user_id (back-channel logout by sub).
 * *deleted may be NULL; none is not an error. */
int store_sessions_end_idp(store_t *st, const char *idp_sid, int64_t user_id, int64_t *deleted,
                           nb_err_t *err);
/* The user bound to (idp, subject): its id, or -ENOENT. */
int store_user_by_idp(store_t *st, const char *idp, const char *subject, int64_t *id, nb_err_t *err);
void store_session_idp_clear(store_session_idp_t *v);
/* Provider sessions to refresh: those with a refresh token whose
 * idp_expires_at is at or before `before` (µs), at most max of them,
 * soonest first.  *out is the caller's (store_idp_due_free). */
typedef struct store_idp_due {
    int64_t session_id, user_id;
    char   *refresh_token;   /* as stored (sealed) */
    char   *idp_sid;         /* the provider's session id; NULL or "" when none */
} store_idp_due_t;
int  store_sessions_idp_due(store_t *st, int64_t before, size_t max, store_idp_due_t **out, size_t *n,
                            nb_err_t *err);
void store_idp_due_free(store_idp_due_t *v, size_t n);
/* Ids of the sessions whose id_token or refresh_token does not start with
 * prefix (values written in clear by a build before sealing); *ids is the
 * caller's (free). */
int  store_sessions_idp_unsealed(store_t *st, const char *prefix, int64_t **ids, size_t *n, nb_err_t *err);
/* End the session with this id; -ENOENT if it is gone already. */
int  store_session_delete_id(store_t *st, int64_t id, nb_err_t *err);

void store_user_clear(store_user_t *u);
void store_users_free(store_users_t *l);
void store_token_clear(store_token_t *t);
void store_tokens_free(store_tokens_t *l);
void store_session_clear(store_session_t *s);

#endif
