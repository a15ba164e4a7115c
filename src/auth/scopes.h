/*
 * scopes — JupyterHub's permission scopes, for the /hub/api nbhub speaks.
 *
 * A scope is a name from JupyterHub's list ("read:users", "servers",
 * "access:servers", ...) with an optional filter naming what it applies to:
 * "!user=alice", "!server=alice/" (alice's default server), "!server=alice/gpu",
 * "!group=team".  An unfiltered scope applies to everything.  Raw scopes (in
 * a token request, a role) may also be abbreviations: a scope implies its
 * subscopes ("servers" -> read:servers, start:servers, delete:servers), the
 * metascope "self" is a user's own rights, and the bare filters "!user" and
 * "!server" mean the token owner / the token's server.  scopes_expand turns
 * raw scopes into the expanded form everything else works on: plain names
 * with filters filled in, no abbreviations, reduced (a filtered scope is
 * dropped when the same scope is held unfiltered).
 *
 * Filters nest: a server belongs to its user, a user to their groups, so
 * "read:servers!user=alice" covers "read:servers!server=alice/x" and
 * "!group=team" covers every member.  Group membership is asked of the
 * caller (scopes_group_fn) only when a group filter is in play.
 *
 * nbhub's roles map onto JupyterHub's default roles (jupyterhub/roles.py):
 * every user has "user" (= self), admins also "admin" (admin:users,
 * admin:servers, tokens, admin:groups, read:hub, access:servers, ...).  A
 * token's rights are its scopes intersected with its owner's, so a token
 * never holds more than its owner has today (a demoted admin's tokens shrink
 * with them).
 *
 * Ownership: a scopes_t owns its strings; scopes_free releases them.
 * Functions that fill a scopes_t append to it (dedup'ed); start from
 * SCOPES_INIT.
 */
#ifndef NBHUB_SCOPES_H
#define NBHUB_SCOPES_H

#include <jansson.h>
#include <stddef.h>

#include "util/err.h"

typedef struct scopes {
    char  **v;      /* "base" or "base!kind=value", sorted, unique */
    size_t  n;
} scopes_t;

#define SCOPES_INIT { NULL, 0 }

/* Is user a member of group?  1 / 0. */
typedef int (*scopes_group_fn)(void *ud, const char *user, const char *group);

void scopes_free(scopes_t *s);
/* Add one scope string as is (no expansion). */
void scopes_add(scopes_t *s, const char *scope);
/* 1 if s holds exactly this string. */
int  scopes_contains(const scopes_t *s, const char *scope);

/* A raw scope as a token request or the configuration may give it: a known
 * name (or "self", "inherit"), and a filter that is "!user", "!server" or
 * "!user=", "!server=", "!group=", "!service=" with a non-empty value.
 * 0 or -EINVAL with a message (JupyterHub's wording). */
int  scopes_check(const char *scope, nb_err_t *err);

/* Expand raw scopes (scopes_check'ed) for a user: subscopes added, "!user"
 * -> "!user=USER", "!server" -> "!server=SERVER" (USER/NAME; dropped when
 * server is NULL), "self" -> the user's own rights.  "inherit" is kept
 * as is: it means "all the owner's rights" and only the caller knows them. */
void scopes_expand(const char *const *raw, size_t n, const char *user, const char *server,
                   scopes_t *out);
/* The expanded rights of a user of nbhub: JupyterHub's "user" role, and the
 * "admin" role when admin. */
void scopes_for_user(const char *user, int admin, scopes_t *out);
/* What a notebook server's own API token may do (JupyterHub's "server"
 * role): post activity for its user, access its server, identify. */
void scopes_for_server(const char *user, const char *server, scopes_t *out);
/* Identify scopes of a user: read:users:name and read:users:groups on them. */
void scopes_identify(const char *user, scopes_t *out);

/* Expanded a ∩ expanded b, filters nesting (a server is within its user,
 * a user within their groups via in_group, which may be NULL). */
void scopes_intersect(const scopes_t *a, const scopes_t *b, scopes_group_fn in_group, void *ud,
                      scopes_t *out);

/* Does `have` grant base on the object kind=value ("user", "alice";
 * "server", "alice/gpu"; "group", "team")?  kind NULL: base unfiltered
 * (everything).  1 / 0. */
int  scopes_has(const scopes_t *have, const char *base, const char *kind, const char *value,
                scopes_group_fn in_group, void *ud);
/* 1 if have holds base in any form, filtered or not. */
int  scopes_has_any(const scopes_t *have, const char *base);

/* Expanded scopes as a sorted JSON list (new reference). */
json_t *scopes_to_json(const scopes_t *s);
/* A JSON list of strings into raw scopes (each scopes_check'ed); -EINVAL
 * with a message for anything else.  NULL or json null: nothing added. */
int  scopes_from_json(const json_t *list, scopes_t *out, nb_err_t *err);

#endif
