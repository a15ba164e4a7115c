/* zmtp — see zmtp.h. */
#include "kernel/zmtp.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

void zmtp_greeting(uint8_t out[ZMTP_GREETING_LEN])
{
    memset(out, 0, ZMTP_GREETING_LEN);
    out[0] = 0xFF;          /* signature: FF, 8 bytes padding, 7F */
    out[9] = 0x7F;
    out[10] = 3;            /* version 3.0 */
    out[11] = 0;
    memcpy(out + 12, "NULL", 4);   /* mechanism, 20 bytes NUL-padded */
    out[32] = 0;            /* as-server: no */
}

int zmtp_greeting_check(const uint8_t in[ZMTP_GREETING_LEN], nb_err_t *err)
{
    if (in[0] != 0xFF || in[9] != 0x7F)
        return err_set(err, -EPROTO, "peer does not speak ZMTP (bad signature)");
    if (in[10] < 3)
        return err_set(err, -EPROTO, "peer speaks ZMTP %u.%u; 3.0 or later is needed", in[10], in[11]);
    static const uint8_t null_mech[20] = "NULL";
    if (memcmp(in + 12, null_mech, sizeof null_mech) != 0)
        return err_set(err, -EPROTO, "peer wants a security mechanism other than NULL (%.20s)",
                       (const char *)in + 12);
    return 0;
}

ssize_t zmtp_frame_parse(const uint8_t *p, size_t len, struct zmtp_frame *f, size_t *need)
{
    if (need) *need = 0;
    if (len < 1) return 0;
    int flags = p[0];
    if (flags & ~(ZMTP_MORE | ZMTP_LONG | ZMTP_COMMAND)) return -EPROTO;
    if ((flags & ZMTP_COMMAND) && (flags & ZMTP_MORE)) return -EPROTO;
    size_t hlen = (flags & ZMTP_LONG) ? 9 : 2;
    if (len < hlen) return 0;
    uint64_t size;
    if (flags & ZMTP_LONG) {
        size = 0;
        for (int i = 1; i <= 8; i++) size = (size << 8) | p[i];
        if (size > ZMTP_MAX_FRAME) return -EMSGSIZE;
    } else {
        size = p[1];
    }
    if (need) *need = hlen + (size_t)size;
    if (len - hlen < size) return 0;
    f->flags = flags & (ZMTP_MORE | ZMTP_COMMAND);
    f->body = p + hlen;
    f->len = (size_t)size;
    return (ssize_t)(hlen + size);
}

size_t zmtp_frame_header(uint8_t out[9], int flags, uint64_t len)
{
    flags &= ZMTP_MORE | ZMTP_COMMAND;
    if (len <= 255) {
        out[0] = (uint8_t)flags;
        out[1] = (uint8_t)len;
        return 2;
    }
    out[0] = (uint8_t)(flags | ZMTP_LONG);
    for (int i = 8; i >= 1; i--) {
        out[i] = (uint8_t)(len & 0xFF);
        len >>= 8;
    }
    return 9;
}

static void zmtp_put_property(buf_t *b, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    uint8_t v[4] = { (uint8_t)(vl >> 24), (uint8_t)(vl >> 16), (uint8_t)(vl >> 8), (uint8_t)vl };
    buf_putc(b, (char)nl);
    buf_append(b, name, nl);
    buf_append(b, v, 4);
    buf_append(b, value, vl);
}

void zmtp_ready(buf_t *out, const char *socket_type, const char *identity)
{
    buf_t body = BUF_INIT;
    buf_putc(&body, 5);
    buf_append(&body, "READY", 5);
    zmtp_put_property(&body, "Socket-Type", socket_type);
    if (identity && *identity) zmtp_put_property(&body, "Identity", identity);
    uint8_t h[9];
    size_t hl = zmtp_frame_header(h, ZMTP_COMMAND, body.len);
    buf_append(out, h, hl);
    buf_append(out, body.data, body.len);
    buf_free(&body);
}

int zmtp_command(const struct zmtp_frame *f, const char **name, size_t *namelen,
                 const uint8_t **data, size_t *datalen)
{
    if (f->len < 1 || (size_t)f->body[0] + 1 > f->len) return -EPROTO;
    *namelen = f->body[0];
    *name = (const char *)f->body + 1;
    *data = f->body + 1 + *namelen;
    *datalen = f->len - 1 - *namelen;
    return 0;
}

int zmtp_property(const uint8_t *data, size_t len, const char *name,
                  const uint8_t **value, size_t *vlen)
{
    size_t want = strlen(name), i = 0;
    while (i < len) {
        size_t nl = data[i];
        if (nl == 0 || len - i - 1 < nl + 4) return -EPROTO;
        const uint8_t *n = data + i + 1;
        const uint8_t *v = n + nl;
        uint64_t vl = ((uint64_t)v[0] << 24) | ((uint64_t)v[1] << 16) | ((uint64_t)v[2] << 8) | v[3];
        size_t rest = len - i - 1 - nl - 4;
        if (vl > rest) return -EPROTO;
        /* Property names are case-insensitive (RFC 23). */
        if (nl == want && strncasecmp((const char *)n, name, nl) == 0) {
            *value = v + 4;
            *vlen = (size_t)vl;
            return 0;
        }
        i += 1 + nl + 4 + (size_t)vl;
    }
    return -ENOENT;
}

int zmtp_compatible(const char *ours, const char *theirs, size_t tl)
{
    static const struct { const char *ours; const char *peers[4]; } table[] = {
        { "DEALER", { "DEALER", "ROUTER", "REP", NULL } },
        { "REQ",    { "REP", "ROUTER", NULL } },
        { "SUB",    { "PUB", "XPUB", NULL } },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(table[i].ours, ours) != 0) continue;
        for (const char *const *p = table[i].peers; *p; p++)
            if (strlen(*p) == tl && memcmp(*p, theirs, tl) == 0) return 1;
    }
    return 0;
}
