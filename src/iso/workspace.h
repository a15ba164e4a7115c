/*
 * workspace — the directory that is an nbhub user's own: where their
 * notebook server starts (the hub, docs/hub.md) and where a flow's
 * `notebook: ~/...` is read from (docs/flows.md).
 *
 * Under `isolation: system` it is the home directory of the user's Unix
 * account (uacct: the account template maps the nbhub name to the account,
 * so it is never another account's), and it must be a real directory
 * owned by that account: a home that is a symlink, or one owned by someone
 * else (root's /, a shared /tmp), is refused rather than used.  Under
 * `isolation: shared` every user's code runs as the daemon's account, so a
 * workspace is only a convention, `<home>/workspaces/<user>`, made 0700
 * (other accounts on the machine must not read it); it must be a real
 * directory too.
 *
 * A user name becomes a path component here, so it is checked again
 * (nbhub's own rule is [A-Za-z0-9._@-]): no '/', no leading '.', no "..",
 * no control characters.
 *
 * Paths inside a workspace (workspace_path) are checked lexically: a
 * relative path whose ".." would climb above the workspace is refused, and
 * so is a "~user/" form.  What is on disk (a symlink in the workspace that
 * points out of it) is checked when the file is opened (workspace_inside),
 * by whoever opens it: under isolation: system that is the task process
 * running as the account, after dropping root.
 *
 * Blocking (NSS lookups, mkdir, useradd): call from a CLI command, a task
 * wrapper or a worker thread, not the daemon's loop.  Ownership: *out is
 * a new string the caller frees.
 */
#ifndef NBHUB_ISO_WORKSPACE_H
#define NBHUB_ISO_WORKSPACE_H
#include "util/err.h"

struct workspace_opts {
    const char *home;             /* nbhub's home (shared: <home>/workspaces/<user>) */
    int         system;           /* isolation: system (the account's home) */
    const char *account_template; /* system: uacct template, NULL = UACCT_DEFAULT_TEMPLATE */
    int         create;           /* make the directory if it is missing (0700, the owner's) */
    int         create_account;   /* system: useradd a missing account (create_system_users) */
};

/* The workspace of the account this process runs as (isolation: system,
 * inside the task after `nbhub __as-user`): its home from the password
 * database, checked as workspace_dir checks it (never created here). */
int workspace_own(char **out, nb_err_t *err);

/* 1 if user may name a workspace (a path component). */
int workspace_user_valid(const char *user);

/* The workspace directory of nbhub user `user` (absolute, no trailing
 * slash) in *out.  -EINVAL bad name, -ENOENT missing (account or
 * directory, and not created), -EPERM a symlink, not a directory, or owned
 * by someone else; a message says which. */
int workspace_dir(const struct workspace_opts *o, const char *user, char **out, nb_err_t *err);

/* rel as written in a flow ("~/reports/daily.ipynb", or "reports/x" with
 * no "~/"): 1 if it starts with "~" (a workspace path), else 0. */
int workspace_is_tilde(const char *rel);

/* Check a workspace-relative path lexically and normalise it: "~/a/./b"
 * -> "a/b".  Refused (-EINVAL, with why): "~" alone, "~bob/...", an
 * absolute path after "~/", a ".." that climbs out, an empty path, a
 * NUL-free but control-character path.  *out is relative (no leading "/"). */
int workspace_rel(const char *rel, char **out, nb_err_t *err);

/* dir + "/" + the normalised rel in *out (workspace_rel's checks). */
int workspace_path(const char *dir, const char *rel, char **out, nb_err_t *err);

/* On disk: 0 if path, with every symlink resolved, is dir or below it
 * (dir resolved too); -EPERM (a link out of the workspace) or -errno (it
 * does not exist ...), with a message. */
int workspace_inside(const char *dir, const char *path, nb_err_t *err);

#endif
