/* http/gzip — see gzip.h. */
#include "http/gzip.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

int gzip_type_ok(const char *ctype)
{
    if (!ctype) return 0;
    return strncasecmp(ctype, "text/", 5) == 0 || strncasecmp(ctype, "application/json", 16) == 0 ||
           strncasecmp(ctype, "application/javascript", 22) == 0 ||
           strncasecmp(ctype, "image/svg+xml", 13) == 0;
}

int gzip_accepted(const char *ae)
{
    for (const char *p = ae; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t tok = strcspn(p, " \t;,");
        if ((tok == 4 && strncasecmp(p, "gzip", 4) == 0) || (tok == 1 && *p == '*')) {
            /* q=0 (or 0.0...) refuses it */
            const char *q = memchr(p, ';', n);
            if (!q) return 1;
            q = strstr(q, "q=");
            if (!q || q > p + n) return 1;
            double v = strtod(q + 2, NULL);
            return v > 0;
        }
        p += n;
    }
    return 0;
}

int gzip_encode(const void *in, size_t n, int level, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15+16: a 32 KiB window, with the gzip header and trailer */
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t cap = deflateBound(&z, (uLong)n);
    char *buf = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || len >= n) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/* ---- streams ------------------------------------------------------------ */

struct gzip_stream {
    z_stream z;
};

gzip_stream_t *gzip_stream_new(int level)
{
    gzip_stream_t *g = xcalloc(1, sizeof *g);
    int rc = deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    NB_ASSERT(rc == Z_OK);
    return g;
}

/* Deflate in[0..n) with flush, growing out as zlib asks. */
static void gzip_pump(gzip_stream_t *g, const void *in, size_t n, buf_t *out, int flush)
{
    const unsigned char *p = in;
    for (;;) {
        uInt take = n > (1u << 30) ? (1u << 30) : (uInt)n;
        g->z.next_in = (Bytef *)(uintptr_t)p;
        g->z.avail_in = take;
        int rc;
        do {
            buf_reserve(out, 64 * 1024);
            size_t room = out->cap - out->len - 1;   /* buf keeps a NUL after the data */
            g->z.next_out = (Bytef *)out->data + out->len;
            g->z.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
            uInt before = g->z.avail_out;
            rc = deflate(&g->z, n == take ? flush : Z_NO_FLUSH);
            out->len += before - g->z.avail_out;
            out->data[out->len] = '\0';
        } while (g->z.avail_out == 0 || (rc == Z_OK && flush == Z_FINISH && n == take));
        NB_ASSERT(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
        p += take;
        n -= take;
        if (n == 0) return;
    }
}

void gzip_stream_write(gzip_stream_t *g, const void *in, size_t n, buf_t *out)
{
    if (n) gzip_pump(g, in, n, out, Z_NO_FLUSH);
}

void gzip_stream_finish(gzip_stream_t *g, buf_t *out)
{
    gzip_pump(g, "", 0, out, Z_FINISH);
}

void gzip_stream_free(gzip_stream_t *g)
{
    if (!g) return;
    deflateEnd(&g->z);
    free(g);
}
