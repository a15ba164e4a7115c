/*
 * jwrite — compact JSON text from jansson values, the writing half of jparse.
 *
 * The promise: jwrite_value(out, v) appends exactly the bytes of
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) — same key order (insertion
 * order), same escapes (only '"', '\\' and bytes below 0x20; UTF-8 passes
 * through), same number spelling — only without jansson's per-character
 * callback and UTF-8 re-validation.  Every message nbhub sends to a kernel
 * goes through it.  Reals are rare on the wire and are handed to jansson, so
 * their spelling is jansson's by construction.
 *
 * Held to json_dumps by tests/unit/test_jparse.c (every tree it reads) and, on every input of its
 * corpus, by fuzz/fuzz_jparse.c.
 */
#ifndef NBHUB_JWRITE_H
#define NBHUB_JWRITE_H

#include <jansson.h>
#include <stddef.h>
#include "util/buf.h"

/* A JSON string literal of s[0..n) with its quotes, as jansson spells it
   (a control byte as \u001F).  _py spells it as Python's json.dumps with
   ensure_ascii=False does (\u001f): the same escapes in lowercase hex, what
   nbformat writes into notebook files. */
void jwrite_string(buf_t *out, const char *s, size_t n);
void jwrite_string_py(buf_t *out, const char *s, size_t n);

/* Any value (NULL writes nothing). */
void jwrite_value(buf_t *out, const json_t *v);

#endif
