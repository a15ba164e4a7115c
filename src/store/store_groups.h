/*
 * store_groups — JupyterHub's groups (tables groups, group_members; schema
 * v5): named sets of users that choose profiles (docs/hub.md), scope
 * filters ("read:users!group=team") and, later, SSO roles.  A group's
 * properties are a JSON object kept as text, as JupyterHub's are.
 *
 * Ownership: store_group_t fields and lists are the caller's
 * (store_group_clear, store_groups_free, store_names_free).
 */
#ifndef NBHUB_STORE_GROUPS_H
#define NBHUB_STORE_GROUPS_H

#include "store/store.h"

typedef struct store_group {
    int64_t id;
    char   *name;
    char   *properties;   /* JSON object as text; NULL = {} */
    int64_t created_at;
} store_group_t;

typedef struct store_groups {
    store_group_t *v;
    size_t         n;
} store_groups_t;

/* A list of names (users of a group, groups of a user). */
typedef struct store_names {
    char  **v;
    size_t  n;
} store_names_t;

/* New group; -EEXIST if the name is taken.  *id may be NULL. */
int store_group_add(store_t *st, const char *name, const char *properties, int64_t now,
                    int64_t *id, nb_err_t *err);
int store_group_get(store_t *st, const char *name, store_group_t *out, nb_err_t *err);
/* -ENOENT if there is none; members go with it. */
int store_group_delete(store_t *st, const char *name, nb_err_t *err);
int store_group_set_properties(store_t *st, int64_t id, const char *properties, nb_err_t *err);
/* All groups by id; offset/limit (limit 0 = all), *total (may be NULL) the count. */
int store_groups_list(store_t *st, int64_t offset, int64_t limit, store_groups_t *out,
                      int64_t *total, nb_err_t *err);
/* Add / remove a user (adding twice or removing a non-member is no error). */
int store_group_member_add(store_t *st, int64_t group_id, int64_t user_id, nb_err_t *err);
int store_group_member_remove(store_t *st, int64_t group_id, int64_t user_id, nb_err_t *err);
/* Member names of a group, sorted by name. */
int store_group_members(store_t *st, int64_t group_id, store_names_t *out, nb_err_t *err);
/* Names of user_id's groups, sorted. */
int store_user_groups(store_t *st, int64_t user_id, store_names_t *out, nb_err_t *err);
/* 1 if the user named user is in the group named group, 0 if not (or
 * either is unknown), negative errno on store trouble. */
int store_user_in_group(store_t *st, const char *user, const char *group, nb_err_t *err);

/* Make names (n of them) the user's groups, in one transaction: the
 * memberships of other groups end, groups that do not exist yet are
 * created (an SSO login brings its provider's groups, store_auth.h).
 * Names longer than 200 bytes or empty are skipped. */
int store_user_set_groups(store_t *st, int64_t user_id, const char *const *names, size_t n,
                          int64_t now, nb_err_t *err);

void store_group_clear(store_group_t *g);
void store_groups_free(store_groups_t *l);
void store_names_free(store_names_t *l);

#endif
