/*
 * yamljson — YAML text to a jansson value, typed the way PyYAML's
 * yaml.safe_load types it (papermill reads -y and -f parameters with it).
 *
 * Ownership: yamljson_parse stores a new reference in *out on success and
 * leaves *out NULL on failure.  yamljson_pynum returns a new reference;
 * yamljson_pynum_repr borrows (the string lives as long as the value).
 *
 * Python values JSON cannot hold.  PyYAML (and papermill's `-p x=inf`)
 * produce float('inf'), float('nan') and integers beyond 64 bits; jansson
 * refuses non-finite reals and has no big integers.  Such a value travels as
 * a one-member object {"__nbhub_pynum__": "<Python repr>"} — "inf", "-inf",
 * "nan" or the decimal digits — which nbparams translates like the Python
 * number it stands for.  Whoever writes a notebook's metadata may render it
 * as papermill does (json.dumps writes Infinity, NaN, or the digits).
 */
#ifndef NBHUB_YAMLJSON_H
#define NBHUB_YAMLJSON_H

#include <stddef.h>
#include <jansson.h>

#include "util/err.h"

/* Limits that keep hostile input cheap: nodes counted with every alias
 * expanded (a "billion laughs" document stops here), and nesting depth. */
#define YAMLJSON_MAX_NODES 1000000
#define YAMLJSON_MAX_DEPTH 512

#define YAMLJSON_PYNUM_KEY "__nbhub_pynum__"

/*
 * Parse one YAML document of `len` bytes (need not be NUL-terminated).
 * `name` labels error messages ("NAME:LINE:COLUMN: problem", 1-based);
 * NULL means "<string>".  An empty stream gives JSON null; more than one
 * document is an error, as in safe_load.  Mapping keys become Python's str()
 * of the key (1 -> "1", true -> "True", null -> "None"); timestamps become
 * the str() of the datetime/date PyYAML builds.  Tags safe_load accepts but
 * JSON cannot carry (!!binary, !!set, !!omap, !!pairs) are errors.
 * Returns 0, -EINVAL (bad YAML or value), -E2BIG (a limit was hit).
 */
int yamljson_parse(const char *text, size_t len, const char *name, json_t **out, nb_err_t *err);

/* 1 if the plain (unquoted, untagged) scalar s[0..n) loads as a str under
 * safe_load's implicit resolvers, 0 if it would become null, a bool, a
 * number, a timestamp or a merge/value key.  An emitter that writes a
 * string plain must get 1 here (src/util/jsonyaml.c). */
int yamljson_plain_is_str(const char *s, size_t n);

/* The stand-in for a Python number JSON cannot hold (see above). */
json_t *yamljson_pynum(const char *repr);

/* The repr inside a stand-in made by yamljson_pynum, or NULL if `v` is not one. */
const char *yamljson_pynum_repr(const json_t *v);

/*
 * Python number semantics shared with nbparams.
 */
#define YAMLJSON_REPR_MAX 32

/* Python's repr(float): shortest round-trip digits, exponent form ("1e-05",
 * "1e+16") outside 1e-4 <= |v| < 1e16, ".0" on integral values, "inf",
 * "-inf", "nan". */
void yamljson_float_repr(double v, char out[YAMLJSON_REPR_MAX]);

/* Python's int(s) / float(s) on a str (what papermill's _resolve_type calls):
 * surrounding Unicode whitespace, a sign, PEP 515 underscores; float also
 * "inf", "infinity", "nan" in any case.  On success returns 1 and stores a
 * new reference (integer, real, or pynum stand-in) in *out; else returns 0.
 * Not handled: non-ASCII decimal digits, which Python also accepts. */
int yamljson_py_int(const char *s, json_t **out);
int yamljson_py_float(const char *s, json_t **out);

#endif
