/* passwd — see passwd.h. */
#include "auth/passwd.h"
#include "util/xmalloc.h"

#include <argon2.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define PASSWD_T_COST 2
#define PASSWD_M_COST 19456   /* KiB */
#define PASSWD_LANES  1
#define PASSWD_SALT   16
#define PASSWD_HASH   32

size_t passwd_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int passwd_hash(const char *password, char **out, nb_err_t *err)
{
    size_t n = passwd_chars(password);
    if (n < PASSWD_MIN_LEN)
        return err_set(err, -EINVAL, "password too short: at least %d characters", PASSWD_MIN_LEN);
    if (n > PASSWD_MAX_LEN)
        return err_set(err, -EINVAL, "password too long: at most %d characters", PASSWD_MAX_LEN);
    unsigned char salt[PASSWD_SALT];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return err_set(err, -EIO, "no randomness available for a password salt");
    size_t len = argon2_encodedlen(PASSWD_T_COST, PASSWD_M_COST, PASSWD_LANES, PASSWD_SALT,
                                   PASSWD_HASH, Argon2_id);
    char *enc = xmalloc(len);
    int rc = argon2id_hash_encoded(PASSWD_T_COST, PASSWD_M_COST, PASSWD_LANES, password, strlen(password),
                                   salt, sizeof salt, PASSWD_HASH, enc, len);
    if (rc != ARGON2_OK) {
        free(enc);
        return err_set(err, -EIO, "argon2id failed: %s", argon2_error_message(rc));
    }
    *out = enc;
    return 0;
}

int passwd_verify(const char *phc, const char *password)
{
    if (!phc || strncmp(phc, "$argon2id$", 10) != 0) return 0;
    size_t n = strlen(password);
    if (n > PASSWD_MAX_LEN) return 0;
    return argon2id_verify(phc, password, n) == ARGON2_OK;
}

int passwd_needs_rehash(const char *phc)
{
    unsigned m = 0, t = 0, p = 0;
    const char *params = phc ? strstr(phc, "$m=") : NULL;
    if (!params || sscanf(params, "$m=%u,t=%u,p=%u", &m, &t, &p) != 3) return 1;
    return m < PASSWD_M_COST || t < PASSWD_T_COST;
}
