/* http/gzip — see gzip.h. */
#include "http/gzip.h"
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
