/* fsutil — see fsutil.h. */
#include "util/fsutil.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int fs_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT ? -errno : 0;
}

int fs_rm_tree(const char *path)
{
    int rc = nftw(path, fs_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc < 0 ? (errno == ENOENT ? 0 : -errno) : rc;
}

int fs_is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_open_regular(const char *path, int flags, unsigned mode, struct stat *st)
{
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) return -errno;
    struct stat sb;
    if (!st) st = &sb;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_nlink != 1) {
        close(fd);
        return -EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static int fs_read_fd(int fd, const char *path, size_t max, char **out, size_t *len, nb_err_t *err);

int fs_read_regular(const char *path, size_t max, char **out, size_t *len, nb_err_t *err)
{
    return fs_read_owned(path, -1, max, out, len, err);
}

int fs_read_owned(const char *path, long uid, size_t max, char **out, size_t *len, nb_err_t *err)
{
    struct stat st;
    int fd = fs_open_regular(path, O_RDONLY, 0, &st);
    if (fd < 0)
        return err_set(err, fd, "%s: %s", path,
                       fd == -EINVAL ? "not a regular file with one link"
                       : fd == -ELOOP ? "a symbolic link" : strerror(-fd));
    if (uid >= 0 && st.st_uid != (uid_t)uid && st.st_uid != 0) {
        close(fd);
        return err_set(err, -EPERM, "%s: owned by uid %ld, not %ld", path, (long)st.st_uid, uid);
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        close(fd);
        return err_set(err, -EFBIG, "%s: larger than %zu bytes", path, max);
    }
    return fs_read_fd(fd, path, max, out, len, err);
}

int fs_read_all(const char *path, char **out, size_t *len, nb_err_t *err)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return err_set(err, -e, "%s: %s", path, strerror(e));
    }
    return fs_read_fd(fd, path, SIZE_MAX, out, len, err);
}

/* Read fd to its end (closing it unless it is stdin). */
static int fs_read_fd(int fd, const char *path, size_t max, char **out, size_t *len, nb_err_t *err)
{
    struct stat st;
    if (fd != STDIN_FILENO && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(err, -EISDIR, "%s: is a directory", path);
    }
    buf_t b = BUF_INIT;
    buf_reserve(&b, 65536);
    for (;;) {
        buf_reserve(&b, 65536);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            if (fd != STDIN_FILENO) close(fd);
            buf_free(&b);
            return err_set(err, -e, "%s: %s", path, strerror(e));
        }
        if (r == 0) break;
        b.len += (size_t)r;
        if (b.len > max) {
            if (fd != STDIN_FILENO) close(fd);
            buf_free(&b);
            return err_set(err, -EFBIG, "%s: larger than %zu bytes", path, max);
        }
    }
    b.data[b.len] = '\0';
    if (fd != STDIN_FILENO) close(fd);
    if (len) *len = b.len;
    *out = b.data;
    return 0;
}

/* Write all chunks with writev, IOV_MAX at a time, resuming after short
 * writes: one syscall per ~1000 chunks instead of one per chunk. */
static int fs_writev_all(int fd, const struct fs_chunk *chunks, size_t nchunks)
{
    struct iovec iov[256];
    size_t i = 0, off = 0;   /* current chunk and offset inside it */
    while (i < nchunks) {
        int n = 0;
        for (size_t j = i; j < nchunks && n < 256; j++) {
            size_t skip = j == i ? off : 0;
            if (chunks[j].len == skip) continue;
            iov[n].iov_base = (char *)chunks[j].data + skip;
            iov[n].iov_len = chunks[j].len - skip;
            n++;
        }
        if (n == 0) break;
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        size_t left = (size_t)w;
        while (i < nchunks && left >= chunks[i].len - off) {
            left -= chunks[i].len - off;
            i++;
            off = 0;
        }
        off += left;
    }
    return 0;
}

int fs_write_atomic_chunks(const char *path, const struct fs_chunk *chunks, size_t nchunks,
                           int fsync_data, nb_err_t *err)
{
    int rc;
    if (strcmp(path, "-") == 0) {
        if ((rc = fs_writev_all(STDOUT_FILENO, chunks, nchunks)) < 0)
            return err_set(err, rc, "stdout: %s", strerror(-rc));
        return 0;
    }
    char *tmp = xasprintf("%s.nbhub-tmp-%ld", path, (long)getpid());
    /* Created, never opened: the directory may belong to a user's task
     * (a run directory under isolation: system), which could have put a
     * symlink at this predictable name for us to write through.  An entry
     * already there is removed (unlink removes a link, not its target). */
    int fd = -1;
    for (int tries = 0; tries < 3 && fd < 0; tries++) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) unlink(tmp);
        else break;
    }
    if (fd < 0) {
        int e = errno;
        rc = err_set(err, -e, "%s: cannot create: %s", path, strerror(e));
        free(tmp);
        return rc;
    }
    if ((rc = fs_writev_all(fd, chunks, nchunks)) < 0) {
        err_set(err, rc, "%s: write failed: %s", path, strerror(-rc));
        goto fail;
    }
    if (fsync_data && fsync(fd) < 0) {
        rc = err_set(err, -errno, "%s: fsync failed: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = err_set(err, -errno, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = err_set(err, -errno, "%s: rename failed: %s", path, strerror(errno));
        goto fail;
    }
    if (fsync_data) {
        char *dir = fs_dirname(path);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t n, int fsync_data, nb_err_t *err)
{
    struct fs_chunk c = { data, n };
    return fs_write_atomic_chunks(path, &c, 1, fsync_data, err);
}

int fs_mkdir_p(const char *path, unsigned mode, nb_err_t *err)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, mode) < 0 && errno != EEXIST) {
                int e = errno;
                int rc = err_set(err, -e, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return rc;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    free(p);
    return 0;
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *fs_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}
