/*
 * jparse — a fast reader of JSON text into jansson values.
 *
 * The promise: jparse(s, n, flags, err) returns what json_loadb(s, n, flags,
 * err) returns — the same tree, the same NULL and, on failure, the same
 * error text, line and column — only faster on the documents nbhub reads
 * most: notebooks, whose bulk is long strings (base64 images, megabytes of
 * stream text), and kernel messages, read once per message.
 *
 * Flags understood: JSON_REJECT_DUPLICATES, JSON_DECODE_ANY,
 * JSON_ALLOW_NUL.  Any other flag hands the call to json_loadb unchanged.
 */
#ifndef NBHUB_JPARSE_H
#define NBHUB_JPARSE_H

#include <jansson.h>
#include <stddef.h>

json_t *jparse(const char *s, size_t n, size_t flags, json_error_t *err);

/* The fast path alone: the tree, or NULL for anything it does not take
   (invalid input, or a flag other than the three above) — no fallback.
   For the tests and fuzz/fuzz_jparse.c, which hold it to json_loadb. */
json_t *jparse_fast(const char *s, size_t n, size_t flags);

/* One JSON string literal, lit[0..n) from its opening to its closing quote,
   decoded as json_loadb would (escapes, surrogate pairs, UTF-8 checked, no
   \u0000) into *out, a malloc'd buffer of *outcap bytes that the call may
   grow (NULL and 0 to start); *outlen gets the text's length.  Returns 0,
   or -1 if json_loadb would refuse the literal. */
int jparse_string(const char *lit, size_t n, char **out, size_t *outlen, size_t *outcap);

/* The JSON document in the file at path, read through fs_read_regular (no
   link followed, no FIFO waited for: files a user's task may have written),
   at most max bytes; NULL when it cannot be read or parsed. */
json_t *jparse_file_regular(const char *path, size_t max);

#endif
