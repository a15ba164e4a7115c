/*
 * uacct — the Unix account an nbhub user's processes run as under
 * `isolation: system`.
 *
 * The account name comes from a template, `nbhub-{name}` by default
 * (JupyterHub's LocalAuthenticator uses the name as it is; a prefix keeps
 * nbhub's users apart from the machine's own accounts, so an nbhub user
 * called "root" or "postgres" never becomes that account).  The result must
 * be a portable account name ([a-z_][a-z0-9_-]*, at most 32 bytes): nbhub
 * allows names such as "Ann.Lee@corp" that useradd does not, and mapping
 * them by lowercasing could make two users one account, so such a user is
 * refused with a message instead.
 *
 * With `create_system_users: true` a missing account is created by
 * useradd (its own group, a home directory of mode 0700, /bin/bash).  An
 * account whose uid is 0 is never used.
 *
 * Blocking (NSS lookups, useradd): called from the task wrapper process
 * (`nbhub __as-user`), never on the daemon's loop.  Ownership: uacct_t's
 * strings belong to it (uacct_clear).
 */
#ifndef NBHUB_ISO_UACCT_H
#define NBHUB_ISO_UACCT_H
#include <stddef.h>
#include <sys/types.h>
#include "util/err.h"

typedef struct uacct {
    char  *name;
    uid_t  uid;
    gid_t  gid;
    char  *home;
    char  *shell;
} uacct_t;

#define UACCT_DEFAULT_TEMPLATE "nbhub-{name}"

/* The account name for nbhub user `user` under tmpl (every "{name}"
 * replaced); -EINVAL with why when it is not a portable account name. */
int  uacct_name(const char *tmpl, const char *user, char *out, size_t n, nb_err_t *err);
/* 1 if tmpl holds "{name}" and nothing that could never give a valid name. */
int  uacct_template_valid(const char *tmpl);
/* Look the account up: 0, -ENOENT (no such account), -EPERM (uid 0). */
int  uacct_lookup(const char *name, uacct_t *out, nb_err_t *err);
/* useradd the account (own group, home 0700); 0 also if it appeared
 * meanwhile (another wrapper created it). */
int  uacct_create(const char *name, nb_err_t *err);
void uacct_clear(uacct_t *a);

/* Under isolation: system a user's process gets none of the daemon's
 * environment (its tokens, XDG_RUNTIME_DIR, whatever the service manager
 * set) but what finds programs, kernels, Java and Spark, and the locale:
 * 1 if the "K=V" entry kv is one of those.  HOME, USER, LOGNAME and SHELL
 * come from the account (`nbhub __as-user`). */
int  uacct_env_kept(const char *kv);
/* environ filtered by uacct_env_kept, plus extra (NULL-terminated, may be
 * NULL); the strings are environ's and extra's (free the array only). */
char **uacct_env(char *const *extra);

#endif
