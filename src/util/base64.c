/*
 * base64 — see base64.h.
 */
#include "util/base64.h"

/* The decoder of both alphabets: c62 and c63 are the last two characters
 * ('+' '/' or '-' '_'); padding has been dealt with by the caller. */
static int b64_decode(buf_t *out, const char *src, size_t n, char c62, char c63)
{
    if (n % 4 == 1) return -1;
    buf_reserve(out, n / 4 * 3 + 3);
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == c62 ? 62 : c == c63 ? 63 : -1;
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char byte = (char)((acc >> bits) & 0xff);
            buf_append(out, &byte, 1);
        }
    }
    /* The bits past the last byte must be zero: one spelling per content. */
    return acc & ((1u << bits) - 1) ? -1 : 0;
}

int base64_decode_append(buf_t *out, const char *src, size_t n)
{
    /* A padded string: strip up to two '=' at the end, which must then be
     * all that is missing from a group of four. */
    size_t pad = 0;
    while (n > 0 && src[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad && (n + pad) % 4) return -1;
    return b64_decode(out, src, n, '+', '/');
}

int base64url_decode_append(buf_t *out, const char *src, size_t n)
{
    return b64_decode(out, src, n, '-', '_');
}

void base64url_append(buf_t *out, const void *src, size_t n)
{
    static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = src;
    buf_reserve(out, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        char q[4] = { b64u[(v >> 18) & 63], b64u[(v >> 12) & 63], b64u[(v >> 6) & 63], b64u[v & 63] };
        buf_append(out, q, i + 2 < n ? 4 : i + 1 < n ? 3 : 2);
    }
}

void base64_append(buf_t *out, const void *src, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = src;
    buf_reserve(out, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        char q[4] = { b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                      i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '=' };
        buf_append(out, q, 4);
    }
}
