/*
 * base64 — bytes as standard base64 with padding (RFC 4648 section 4), as
 * data: URIs and CSP hash sources want it, and base64url without padding
 * (RFC 4648 section 5) as JSON Web Tokens and Keys spell their parts
 * (auth/jwt.c, auth/jwks.c).  nbhub's own tokens have their own fixed-size
 * encoder (auth/token.c).
 */
#ifndef NBHUB_BASE64_H
#define NBHUB_BASE64_H

#include "util/buf.h"

#include <stddef.h>

/* Appends the base64 form of src[0..n) to out (4 characters per 3 bytes). */
void base64_append(buf_t *out, const void *src, size_t n);

/* Decodes standard base64 onto out: padding optional at the very end, no
 * whitespace, the unused low bits of the last character zero (so each
 * content has one spelling).  0, or -1 on any character outside the
 * alphabet, a misplaced '=' or stray bits (out then holds a prefix; the
 * caller discards it). */
int  base64_decode_append(buf_t *out, const char *src, size_t n);

/* base64url (alphabet '-' '_'), no padding: decodes onto out as
 * base64_decode_append does (strict: any '=', other character or stray
 * bits is -1).  RFC 7515 section 2 forbids the padding in JWS parts. */
int  base64url_decode_append(buf_t *out, const char *src, size_t n);

/* Appends the unpadded base64url form of src[0..n). */
void base64url_append(buf_t *out, const void *src, size_t n);

#endif
