/*
 * fsutil — whole-file reads and crash-safe writes.
 *
 * fs_write_atomic writes to "<path>.nbhub-tmp-<pid>" in the same directory,
 * fsyncs it, renames it over <path> and fsyncs the directory: a reader (or a
 * crash) sees either the old file or the new one, never a half-written one.
 */
#ifndef NBHUB_FSUTIL_H
#define NBHUB_FSUTIL_H

#include <stddef.h>
#include "util/err.h"

/* Read all of path ("-" = stdin) into a fresh NUL-terminated buffer. */
int fs_read_all(const char *path, char **out, size_t *len, nb_err_t *err);
/* Atomically replace path with n bytes (path "-" writes to stdout). */
int fs_write_atomic(const char *path, const void *data, size_t n, int fsync_data, nb_err_t *err);
/* Write an iovec-like list of chunks atomically (avoids joining big buffers). */
struct fs_chunk { const void *data; size_t len; };
int fs_write_atomic_chunks(const char *path, const struct fs_chunk *chunks, size_t nchunks,
                           int fsync_data, nb_err_t *err);
/* mkdir -p with the given mode. */
int fs_mkdir_p(const char *path, unsigned mode, nb_err_t *err);
/* 1 if path names an existing regular file or directory. */
int fs_exists(const char *path);
/* Directory part of a path, freshly allocated ("." if none). */
char *fs_dirname(const char *path);

/* rm -rf path, never following symlinks (a link is removed, not its
 * target).  0, or the first -errno. */
int fs_rm_tree(const char *path);
/* 1 if path is a directory (not following a final symlink). */
int fs_is_dir(const char *path);

/* Files in directories a user's code can write (run directories under
 * `isolation: system`, and anything a task may touch in `shared` mode) are
 * opened by the daemon only through these: the last component is never
 * followed if it is a symlink (O_NOFOLLOW: a task cannot point its log at
 * /etc/passwd or its output notebook at nbhub.db), a FIFO or device never
 * blocks the loop (O_NONBLOCK, then refused), and a file with more than one
 * hard link is refused (a link to a file of someone else's).  flags are
 * open(2)'s (O_RDONLY, or O_WRONLY|O_APPEND|O_CREAT with mode); returns the
 * fd (blocking again) or a negative errno (-EINVAL for a non-regular or
 * multiply-linked file).  st may be NULL. */
struct stat;
int fs_open_regular(const char *path, int flags, unsigned mode, struct stat *st);
/* fs_read_all through fs_open_regular, refusing files over max bytes. */
int fs_read_regular(const char *path, size_t max, char **out, size_t *len, nb_err_t *err);
/* The same for a file that must also be owned by uid (or root; uid < 0:
 * anyone): what the daemon reads back from a directory a user's account
 * owns (a kernel's connection file), where the account may have put a
 * link, a FIFO, a huge file or someone else's file.  -EPERM for another
 * owner, -EFBIG over max (from fstat, before reading), -EINVAL for a
 * non-regular or multiply-linked file, -ELOOP for a symlink. */
int fs_read_owned(const char *path, long uid, size_t max, char **out, size_t *len, nb_err_t *err);

#endif
