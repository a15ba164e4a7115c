/*
 * buf — a growable byte buffer, always NUL-terminated so it can be used as a
 * C string.  The struct is owned by whoever declares it; buf_free releases
 * the bytes.  buf_detach hands the bytes to the caller (free() them).
 */
#ifndef NBHUB_BUF_H
#define NBHUB_BUF_H

#include <stddef.h>
#include <stdarg.h>

typedef struct buf {
    char  *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT { NULL, 0, 0 }

void  buf_reserve(buf_t *b, size_t extra);
void  buf_append(buf_t *b, const void *p, size_t n);
void  buf_puts(buf_t *b, const char *s);
void  buf_putc(buf_t *b, char c);
void  buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void  buf_reset(buf_t *b);
void  buf_free(buf_t *b);
char *buf_detach(buf_t *b);

#endif
