/*
 * http/gzip — Content-Encoding: gzip for the server's answers.
 *
 * What is compressed: complete (not streamed) answers of at least
 * GZIP_MIN_BYTES whose type is text/... , JSON or JavaScript, to a client
 * whose Accept-Encoding lists gzip (server.c decides; this file only
 * encodes).  The web UI's page with 200 flows is ~100 KB of HTML and its
 * data another ~60 KB of JSON: 6-10x smaller compressed, which is what a
 * page's weight is about over anything slower than loopback.
 *
 * Why the minimum.  Besides not paying for tiny answers, it keeps the
 * small answers that carry a secret (the login's and GET /me's CSRF
 * token, a new API token) out of compression: BREACH-style guessing needs
 * a secret and attacker-chosen text compressed together.
 */
#ifndef NBHUB_HTTP_GZIP_H
#define NBHUB_HTTP_GZIP_H

#include <stddef.h>

#define GZIP_MIN_BYTES 1024

/* 1 if an answer of this Content-Type is worth compressing. */
int gzip_type_ok(const char *ctype);
/* 1 if an Accept-Encoding header value accepts gzip (not "gzip;q=0"). */
int gzip_accepted(const char *accept_encoding);
/* The gzip stream of in[0..n) at zlib's level (1 fastest .. 9 smallest)
 * as a new buffer in *out (*outlen bytes): 0, or -1 when zlib failed or
 * the result would not be smaller. */
int gzip_encode(const void *in, size_t n, int level, char **out, size_t *outlen);
/* The level for answers made per request: 1.  On the flow list's 100 KB
 * page, level 5 was a third of the server's time for 12 % fewer bytes.
 * Content that does not change (the UI's files) is compressed once, at 9,
 * by whoever owns it. */
#define GZIP_LEVEL_FAST 1

/* A gzip stream written piece by piece into a growing buffer, for answers
 * made in parts (a rendered notebook, cell by cell) that should never be
 * held uncompressed in full.  gzip_stream_new never fails (allocation
 * aborts; a zlib that cannot start is an assertion); write and finish
 * append to out (util/buf.h); gzip_stream_free releases zlib's state. */
typedef struct gzip_stream gzip_stream_t;
struct buf;
gzip_stream_t *gzip_stream_new(int level);
void           gzip_stream_write(gzip_stream_t *g, const void *in, size_t n, struct buf *out);
void           gzip_stream_finish(gzip_stream_t *g, struct buf *out);
void           gzip_stream_free(gzip_stream_t *g);

#endif
