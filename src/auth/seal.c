/* seal — see seal.h. */
#include "auth/seal.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN   16

/* ---- the key file ------------------------------------------------------------ */

static int unhex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Read an existing key file: 0, -ENOENT (none), or another errno. */
static int key_read(const char *path, seal_key_t *key, nb_err_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) return -ENOENT;
        return err_set(err, -e, "%s: %s", path, strerror(e));
    }
    struct stat st;
    char text[2 * SEAL_KEY_LEN + 2];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) < 0) rc = err_set(err, -errno, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        rc = err_set(err, -EINVAL, "%s: not a regular file with one link", path);
    /* Anyone else able to read it could open every sealed value. */
    else if (st.st_mode & 077)
        rc = err_set(err, -EACCES, "%s: readable by others (mode %03o); it must be 0600", path,
                     (unsigned)(st.st_mode & 0777));
    else if ((n = read(fd, text, sizeof text)) < 0)
        rc = err_set(err, -errno, "%s: %s", path, strerror(errno));
    close(fd);
    if (rc) return rc;
    if (n > 0 && text[n - 1] == '\n') n--;
    if (n != 2 * SEAL_KEY_LEN) rc = -EINVAL;
    for (ssize_t i = 0; rc == 0 && i < n; i += 2) {
        int hi = unhex(text[i]), lo = unhex(text[i + 1]);
        if (hi < 0 || lo < 0) rc = -EINVAL;
        else key->k[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    explicit_bzero(text, sizeof text);
    if (rc) return err_set(err, rc, "%s: not %d hex digits", path, 2 * SEAL_KEY_LEN);
    return 0;
}

/* Make the key file: the new key is written under a private temporary
 * name and linked into place, which fails if another process got there
 * first (then -EEXIST: read theirs).  rename would replace theirs. */
static int key_create(const char *path, nb_err_t *err)
{
    unsigned char k[SEAL_KEY_LEN];
    char text[2 * SEAL_KEY_LEN + 2];
    if (RAND_bytes(k, sizeof k) != 1) return err_set(err, -EIO, "no randomness for the seal key");
    hex_encode(k, sizeof k, text);
    explicit_bzero(k, sizeof k);
    text[2 * SEAL_KEY_LEN] = '\n';
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        size_t len = 2 * SEAL_KEY_LEN + 1;
        if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
            rc = err_set(err, -EIO, "%s: cannot write: %s", tmp, strerror(errno));
        if (close(fd) < 0 && rc == 0) rc = err_set(err, -EIO, "%s: cannot write: %s", tmp, strerror(errno));
        if (rc == 0 && link(tmp, path) < 0)
            rc = errno == EEXIST ? -EEXIST : err_set(err, -errno, "%s: cannot create: %s", path, strerror(errno));
        unlink(tmp);
    }
    explicit_bzero(text, sizeof text);
    free(tmp);
    if (rc == 0) {
        /* The link is durable only once its directory is. */
        char *dir = xstrdup(path);
        *strrchr(dir, '/') = '\0';
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return rc;
}

int seal_key_load(const char *home, seal_key_t *key, nb_err_t *err)
{
    char *dir = xasprintf("%s/secrets", home), *path = xasprintf("%s/%s", home, SEAL_KEY_FILE);
    int rc = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = err_set(err, -errno, "%s: cannot create: %s", dir, strerror(errno));
    } else {
        struct stat st;
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
            rc = err_set(err, -ENOTDIR, "%s: not a directory", dir);
        else if (st.st_mode & 077)
            chmod(dir, 0700);
    }
    /* Read; none yet: create, then read what is there (ours, or the key
     * of a process that linked its file first). */
    if (rc == 0 && (rc = key_read(path, key, err)) == -ENOENT) {
        rc = key_create(path, err);
        if (rc == 0 || rc == -EEXIST) rc = key_read(path, key, err);
        if (rc == -ENOENT) rc = err_set(err, -EIO, "%s: created but gone", path);
    }
    free(dir);
    free(path);
    return rc;
}

/* ---- values --------------------------------------------------------------- */

int seal_is_sealed(const char *v)
{
    return v && strncmp(v, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0;
}

char *seal_value(const seal_key_t *key, const char *ad, const char *plain)
{
    if (!plain) return NULL;
    size_t n = strlen(plain);
    unsigned char *raw = xmalloc(SEAL_NONCE_LEN + n + SEAL_TAG_LEN);
    if (RAND_bytes(raw, SEAL_NONCE_LEN) != 1) abort();
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
                            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
                            EVP_EncryptInit_ex(c, NULL, NULL, key->k, raw) == 1 &&
                            EVP_EncryptUpdate(c, NULL, &l1, (const unsigned char *)ad, (int)strlen(ad)) == 1 &&
                            EVP_EncryptUpdate(c, raw + SEAL_NONCE_LEN, &l1, (const unsigned char *)plain,
                                              (int)n) == 1 &&
                            EVP_EncryptFinal_ex(c, raw + SEAL_NONCE_LEN + l1, &l2) == 1 &&
                            (size_t)(l1 + l2) == n &&
                            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
                                                raw + SEAL_NONCE_LEN + n) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) abort();   /* AES-GCM of a few KiB does not fail */
    buf_t b = BUF_INIT;
    buf_puts(&b, SEAL_PREFIX);
    base64url_append(&b, raw, SEAL_NONCE_LEN + n + SEAL_TAG_LEN);
    free(raw);
    return buf_detach(&b);
}

int seal_open(const seal_key_t *key, const char *ad, const char *sealed, char **plain)
{
    *plain = NULL;
    if (!sealed) return 0;
    if (!seal_is_sealed(sealed)) return -EINVAL;
    const char *p = sealed + strlen(SEAL_PREFIX);
    buf_t raw = BUF_INIT;
    if (base64url_decode_append(&raw, p, strlen(p)) < 0 || raw.len < SEAL_NONCE_LEN + SEAL_TAG_LEN) {
        buf_free(&raw);
        return -EBADMSG;
    }
    size_t n = raw.len - SEAL_NONCE_LEN - SEAL_TAG_LEN;
    unsigned char *r = (unsigned char *)raw.data;
    char *out = xmalloc(n + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
                            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
                            EVP_DecryptInit_ex(c, NULL, NULL, key->k, r) == 1 &&
                            EVP_DecryptUpdate(c, NULL, &l1, (const unsigned char *)ad, (int)strlen(ad)) == 1 &&
                            EVP_DecryptUpdate(c, (unsigned char *)out, &l1, r + SEAL_NONCE_LEN, (int)n) == 1 &&
                            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
                                                r + SEAL_NONCE_LEN + n) == 1 &&
                            EVP_DecryptFinal_ex(c, (unsigned char *)out + l1, &l2) == 1 &&
                            (size_t)(l1 + l2) == n;
    EVP_CIPHER_CTX_free(c);
    buf_free(&raw);
    out[n] = '\0';
    /* A NUL inside would make the clear text differ from what was sealed. */
    if (!ok || strlen(out) != n) {
        explicit_bzero(out, n + 1);
        free(out);
        return -EBADMSG;
    }
    *plain = out;
    return 0;
}

void seal_clear_free(char *plain)
{
    if (plain) explicit_bzero(plain, strlen(plain));
    free(plain);
}
