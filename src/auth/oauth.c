/*
 * oauth.c — authorization codes (see oauth.h).
 *
 * The table is a fixed array: OAUTH_MAX_CODES slots, scanned linearly (a
 * code is looked up once, and a browser login makes one).  A code is kept
 * as the SHA-256 of its text, so a core dump or a debugger shows no code
 * that could be replayed.
 */
#include "auth/oauth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"
#include "util/xmalloc.h"

struct oauth_code {
    int     used;                          /* slot holds a code */
    char    digest[TOKEN_DIGEST_LEN + 1];
    char   *client_id, *redirect_uri, *scopes;
    char    challenge[44];
    int64_t user_id, server_id;
    int64_t expires_us, created_us;
};

struct oauth {
    struct oauth_code codes[OAUTH_MAX_CODES];
};

oauth_t *oauth_new(void) { return xcalloc(1, sizeof(oauth_t)); }

static void code_drop(struct oauth_code *c)
{
    free(c->client_id);
    free(c->redirect_uri);
    free(c->scopes);
    OPENSSL_cleanse(c, sizeof *c);
}

void oauth_free(oauth_t *o)
{
    if (!o) return;
    for (size_t i = 0; i < OAUTH_MAX_CODES; i++)
        if (o->codes[i].used) code_drop(&o->codes[i]);
    free(o);
}

size_t oauth_ncodes(const oauth_t *o)
{
    size_t n = 0;
    for (size_t i = 0; i < OAUTH_MAX_CODES; i++) n += o->codes[i].used ? 1 : 0;
    return n;
}

void oauth_grant_clear(oauth_grant_t *g)
{
    free(g->scopes);
    memset(g, 0, sizeof *g);
}

void oauth_s256(const char *verifier, char out[44])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char md[33];
    unsigned int n = 0;
    EVP_Digest(verifier, strlen(verifier), md, &n, EVP_sha256(), NULL);
    md[32] = 0;
    size_t o = 0;
    for (size_t i = 0; i < 32; i += 3) {
        unsigned v = (unsigned)md[i] << 16 | (unsigned)md[i + 1] << 8 | (i + 2 < 32 ? md[i + 2] : 0);
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < 32) out[o++] = b64[v & 63];
    }
    out[o] = '\0';   /* 43 characters */
}

/* RFC 7636 4.1: 43 to 128 characters of [A-Za-z0-9-._~]; a challenge is
 * the 43 characters of an S256 digest. */
static int pkce_chars_ok(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max) return 0;
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", *s))
            return 0;
    return 1;
}

int oauth_code_new(oauth_t *o, const char *client_id, const char *redirect_uri,
                   const char *challenge, const char *method, int64_t user_id, int64_t server_id,
                   const char *scopes_json, int64_t now_us, char code[OAUTH_CODE_LEN + 1],
                   nb_err_t *err)
{
    if (!challenge || !*challenge)
        return err_set(err, -EINVAL, "code_challenge is required (PKCE, S256)");
    if (!method || strcmp(method, "S256") != 0)
        return err_set(err, -EINVAL, "code_challenge_method must be S256");
    if (strlen(challenge) != 43 || !pkce_chars_ok(challenge, 43, 43))
        return err_set(err, -EINVAL, "code_challenge is not an S256 challenge");
    if (!client_id || !redirect_uri) return err_set(err, -EINVAL, "client and redirect URI required");
    if (token_new(OAUTH_CODE_PREFIX, code) < 0) return err_set(err, -EIO, "no randomness for a code");

    /* a free or expired slot, else the oldest code goes */
    struct oauth_code *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < OAUTH_MAX_CODES && !slot; i++) {
        struct oauth_code *c = &o->codes[i];
        if (c->used && c->expires_us <= now_us) code_drop(c);
        if (!c->used) slot = c;
        else if (!oldest || c->created_us < oldest->created_us) oldest = c;
    }
    if (!slot) {
        code_drop(oldest);
        slot = oldest;
    }
    slot->used = 1;
    token_digest(code, slot->digest);
    slot->client_id = xstrdup(client_id);
    slot->redirect_uri = xstrdup(redirect_uri);
    slot->scopes = scopes_json ? xstrdup(scopes_json) : NULL;
    memcpy(slot->challenge, challenge, 44);
    slot->user_id = user_id;
    slot->server_id = server_id;
    slot->created_us = now_us;
    slot->expires_us = now_us + (int64_t)OAUTH_CODE_TTL_S * 1000000;
    return 0;
}

int oauth_code_redeem(oauth_t *o, const char *code, const char *client_id,
                      const char *redirect_uri, const char *verifier, int64_t now_us,
                      oauth_grant_t *out, nb_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!code || !*code) return err_set(err, -ENOENT, "no code");
    char digest[TOKEN_DIGEST_LEN + 1];
    token_digest(code, digest);
    struct oauth_code *c = NULL;
    for (size_t i = 0; i < OAUTH_MAX_CODES && !c; i++)
        if (o->codes[i].used && token_equal(o->codes[i].digest, digest)) c = &o->codes[i];
    if (!c) return err_set(err, -ENOENT, "unknown or already used code");
    /* Whatever happens next, the code is spent. */
    struct oauth_code k = *c;
    c->used = 0;
    c->client_id = c->redirect_uri = c->scopes = NULL;
    OPENSSL_cleanse(c, sizeof *c);
    int rc = 0;
    if (k.expires_us <= now_us) rc = err_set(err, -ENOENT, "code expired");
    else if (!client_id || strcmp(client_id, k.client_id) != 0)
        rc = err_set(err, -EACCES, "code issued to another client");
    else if (!redirect_uri || strcmp(redirect_uri, k.redirect_uri) != 0)
        rc = err_set(err, -EACCES, "redirect_uri differs from the authorization request's");
    else if (!verifier || !pkce_chars_ok(verifier, 43, 128))
        rc = err_set(err, -EACCES, "code_verifier missing or malformed");
    else {
        char s[44];
        oauth_s256(verifier, s);
        if (CRYPTO_memcmp(s, k.challenge, 44) != 0)
            rc = err_set(err, -EACCES, "code_verifier does not match the code_challenge");
    }
    if (rc == 0) {
        out->user_id = k.user_id;
        out->server_id = k.server_id;
        out->scopes = k.scopes;
        k.scopes = NULL;
    }
    code_drop(&k);
    return rc;
}
