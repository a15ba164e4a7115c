/*
 * hex — bytes as lowercase hex digits (ids, keys, digests, signatures).
 */
#ifndef NBHUB_HEX_H
#define NBHUB_HEX_H

#include <stddef.h>

/* Writes 2*n digits and a NUL to out (which holds 2*n+1 bytes). */
void hex_encode(const void *p, size_t n, char *out);

#endif
