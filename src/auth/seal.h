/*
 * seal — provider secrets at rest: a value nbhub must keep and use again
 * (an identity provider's refresh token and ID token, sessions.refresh_token
 * and sessions.id_token) is stored sealed, not in clear, so a copy of
 * nbhub.db (a backup, a stolen disk image) hands out no working provider
 * credential.  Values nbhub only needs to recognise (API tokens, session
 * cookies) are hashed instead (token.h); these must come back.
 *
 * The cipher is AES-256-GCM (OpenSSL EVP): a random 96-bit nonce per value,
 * the 128-bit tag, and associated data naming the row the value belongs to
 * ("sessions/<id>"), so a sealed value copied into another row does not
 * open there.  The text form is "nbs1." + base64url(nonce || ciphertext ||
 * tag), ASCII, so it fits the TEXT columns the clear values used.
 *
 * The key is 32 random bytes kept beside the database, not in it:
 * $NBHUB_HOME/secrets/seal.key (hex, 0600, in a 0700 directory), made on
 * first use and never replaced: created under a temporary name with
 * O_EXCL and linked into place, so two processes starting at once end up
 * with the same key (the loser reads the winner's).  Losing the file loses
 * the sealed values (their sessions end and their users log in again);
 * nothing else depends on it.
 */
#ifndef NBHUB_SEAL_H
#define NBHUB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SEAL_KEY_LEN   32
#define SEAL_PREFIX    "nbs1."
#define SEAL_KEY_FILE  "secrets/seal.key"     /* below $NBHUB_HOME */

typedef struct seal_key {
    unsigned char k[SEAL_KEY_LEN];
} seal_key_t;

/* The key of home (home/SEAL_KEY_FILE), made if there is none yet: 0, or
 * a negative errno with err (unreadable, not a regular 0600 file of one
 * link, not 64 hex digits, cannot be created). */
int   seal_key_load(const char *home, seal_key_t *key, nb_err_t *err);
/* plain sealed for row `ad` (e.g. "sessions/12"): a new string, or NULL
 * for plain NULL.  Aborts only when the CSPRNG or the cipher fails. */
char *seal_value(const seal_key_t *key, const char *ad, const char *plain);
/* The clear text of a sealed value into *plain (new, NUL-terminated; NULL
 * for sealed NULL): 0; -EINVAL when it is not sealed at all (a value from
 * before sealing); -EBADMSG when it does not open (another key, another
 * row, changed bytes). */
int   seal_open(const seal_key_t *key, const char *ad, const char *sealed, char **plain);
/* 1 if v has the sealed form's prefix. */
int   seal_is_sealed(const char *v);
/* Wipe and free a clear value. */
void  seal_clear_free(char *plain);

#endif
