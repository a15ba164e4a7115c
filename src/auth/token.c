/* token — see token.h. */
#include "auth/token.h"
#include "util/hex.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

static const char token_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int token_new(const char *prefix, char out[TOKEN_LEN + 1])
{
    unsigned char r[33];   /* 32 random bytes + a zero pad byte for the last group */
    if (RAND_bytes(r, 32) != 1) return -EIO;
    r[32] = 0;
    size_t o = 0;
    memcpy(out, prefix, 4);
    o = 4;
    for (size_t i = 0; i < 32; i += 3) {
        unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | (i + 2 < 32 ? r[i + 2] : 0);
        out[o++] = token_b64[(v >> 18) & 63];
        out[o++] = token_b64[(v >> 12) & 63];
        out[o++] = token_b64[(v >> 6) & 63];
        if (i + 2 < 32) out[o++] = token_b64[v & 63];
    }
    out[o] = '\0';
    return o == TOKEN_LEN ? 0 : -EIO;
}

void token_digest(const char *token, char out[TOKEN_DIGEST_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
    hex_encode(md, sizeof md, out);
}

int token_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na != nb) return 0;
    return CRYPTO_memcmp(a, b, na) == 0;
}

int token_is(const char *s, const char *prefix)
{
    if (!s || strlen(s) != TOKEN_LEN || strncmp(s, prefix, 4) != 0) return 0;
    for (const char *p = s + 4; *p; p++)
        if (!strchr(token_b64, *p)) return 0;
    return 1;
}
