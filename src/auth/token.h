/*
 * token — bearer secrets: API tokens, session cookies, CSRF tokens.
 *
 * A token is a prefix naming its kind plus 32 random bytes in base64url
 * ("nbh_" API token, "nbs_" session, "nbc_" CSRF): 256 bits, so guessing is
 * hopeless and the prefix lets secret scanners and humans recognise a leaked
 * nbhub token.
 *
 * Only token_digest(token) is stored (SHA-256, hex).  A fast hash is right
 * here, unlike for passwords: the input has 256 bits of entropy, so there is
 * nothing to brute-force, and lookups by digest stay an index probe.  A
 * stolen database therefore yields no usable tokens.
 */
#ifndef NBHUB_TOKEN_H
#define NBHUB_TOKEN_H

#include <stddef.h>

#define TOKEN_API     "nbh_"
#define TOKEN_SESSION "nbs_"
#define TOKEN_CSRF    "nbc_"
#define TOKEN_LEN     (4 + 43)          /* prefix + base64url(32 bytes), no padding */
#define TOKEN_DIGEST_LEN 64             /* hex SHA-256 */

/* A fresh token with the given prefix into out[TOKEN_LEN + 1]; 0 or -EIO. */
int  token_new(const char *prefix, char out[TOKEN_LEN + 1]);
/* Hex SHA-256 of a token into out[TOKEN_DIGEST_LEN + 1]. */
void token_digest(const char *token, char out[TOKEN_DIGEST_LEN + 1]);
/* Constant-time equality of two NUL-terminated strings (CSRF checks). */
int  token_equal(const char *a, const char *b);
/* 1 if s looks like a token of that prefix (shape only). */
int  token_is(const char *s, const char *prefix);

#endif
