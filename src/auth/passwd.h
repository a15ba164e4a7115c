/*
 * passwd — password hashing with argon2id (libargon2), in the PHC string
 * format ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), so the cost
 * parameters travel with each hash and can be raised later without
 * invalidating old ones (passwd_needs_rehash tells the caller when to
 * re-hash at the next successful login).
 *
 * Cost: OWASP's recommended argon2id minimum (19 MiB, 2 passes, 1 lane):
 * about 20-40 ms per hash here — slow for an attacker with a stolen
 * database, fast enough for a login.  Passwords never appear in logs.
 */
#ifndef NBHUB_PASSWD_H
#define NBHUB_PASSWD_H

#include <stddef.h>
#include "util/err.h"

#define PASSWD_MIN_LEN 8
#define PASSWD_MAX_LEN 1024

/* Hash a password; *out is a fresh PHC string (free()).  Rejects passwords
 * shorter than PASSWD_MIN_LEN or longer than PASSWD_MAX_LEN characters
 * (UTF-8 code points, as JSON Schema's minLength counts) with -EINVAL. */
int passwd_hash(const char *password, char **out, nb_err_t *err);
/* The length the limits count: characters (UTF-8 code points, bytes that do
 * not continue a sequence), as the OpenAPI document's minLength does. */
size_t passwd_chars(const char *s);
/* 1 if password matches the PHC string, 0 if not (or the string is not an
 * argon2id hash).  Constant time in the password (libargon2). */
int passwd_verify(const char *phc, const char *password);
/* 1 if phc was made with weaker parameters than passwd_hash uses today. */
int passwd_needs_rehash(const char *phc);

#endif
