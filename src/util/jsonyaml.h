/*
 * jsonyaml — JSON values as YAML text: block style, one document per value,
 * each starting with "---", for manifests that people read and kubectl
 * applies (nbhub spark render-k8s).
 *
 * The promise is the round trip: loading the text with PyYAML's safe_load
 * (yamljson_parse), kubectl's loader (sigs.k8s.io/yaml, go-yaml) or a YAML
 * 1.2 core-schema loader gives back the same JSON value — in particular
 * every JSON string comes back a string, never a bool ("yes", "on", "n"), a
 * null ("~", "null"), a number ("7078", "1e3", "0o17") or a date.  Object
 * keys keep their order (jansson keeps insertion order).
 *
 * Ownership: the value is borrowed; text is appended to the caller's buf.
 */
#ifndef NBHUB_JSONYAML_H
#define NBHUB_JSONYAML_H

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

/* Append one document for v.  0, or -EINVAL (nesting deeper than
 * YAMLJSON_MAX_DEPTH, or libyaml refused an event) with a message; on
 * error nothing is appended. */
int jsonyaml_emit(const json_t *v, buf_t *out, nb_err_t *err);

/* Append one document per element of the array docs (a multi-document
 * stream, as `kubectl apply -f` reads it).  Same errors. */
int jsonyaml_emit_all(const json_t *docs, buf_t *out, nb_err_t *err);

/* 1 if every loader named above types the plain scalar s[0..n) as a string
 * (whether YAML's syntax allows it plain — no leading '-', no ": " — is
 * libyaml's call, which falls back to quotes).  Exposed for the tests. */
int jsonyaml_plain_ok(const char *s, size_t n);

#endif
