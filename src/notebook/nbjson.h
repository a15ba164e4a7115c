/*
 * nbjson — serialise a notebook byte for byte like nbformat.write(nb, f).
 *
 * nbformat.write is, in order: strip_transient (drop metadata.orig_nbformat,
 * metadata.orig_nbformat_minor, metadata.signature and every cell's
 * metadata.trusted), split_lines (multi-line strings become lists of lines
 * as str.splitlines(True) cuts them), then
 *     json.dumps(nb, sort_keys=True, indent=1, separators=(",", ": "),
 *                ensure_ascii=False) + "\n".
 * Tools diff papermill's output notebooks and VCS stores them, so the bytes
 * matter, not only the JSON value.
 *
 * Both transformations are applied on the fly while walking the jansson tree:
 * the input is never copied or mutated.  What to split depends on where a
 * value sits (a cell's "source", a stream output's "text", a text/ entry of
 * a mime bundle...), so the walk carries a "kind" saying what the value is;
 * NBJSON_PLAIN means "just JSON".
 *
 * The output is appended to a buf_t; cost is linear in the output size and
 * the only allocations are the buffer's growth and, for objects with more
 * than 32 keys, the array used to sort them.  Strings are copied in runs
 * between escapes (~0.4 GB/s); a non-integer float costs ~2 us (shortest
 * round-trip digits via one snprintf and a few strtod calls).
 *
 * Verified byte for byte against nbformat.write (fixtures from
 * tests/unit/data/gen_nbjson.py, a 1000-notebook random sweep, 400k
 * doubles against json.dumps).  Python values jansson cannot hold (NaN,
 * Infinity, integers beyond 64 bits, NUL in keys) never reach this code;
 * nbjson_format_real still writes NaN/Infinity as Python does.
 *
 * Ownership: every function borrows its json_t arguments and appends to the
 * caller's buffer(s).
 */
#ifndef NBHUB_NBJSON_H
#define NBHUB_NBJSON_H

#include <jansson.h>
#include "util/buf.h"

/* What a value is, i.e. which of nbformat's split_lines/strip_transient
   rules apply inside it.  A kind that does not fit the value's JSON type
   (e.g. NBJSON_CELL on a string) falls back to NBJSON_PLAIN. */
enum nbjson_kind {
    NBJSON_PLAIN = 0,   /* any JSON value, written as is */
    NBJSON_NOTEBOOK,    /* a whole notebook object */
    NBJSON_CELL,        /* one element of the notebook's "cells" */
    NBJSON_OUTPUT,      /* one element of a code cell's "outputs" */
    NBJSON_MIMEBUNDLE,  /* an output's "data", or one attachment of a cell */
    NBJSON_LINES        /* a string written as the list of its lines */
};

/* Indentation depth of a cell inside a notebook, and what separates two
   cells in nbjson_dump's output (see nbjson_dump_frame). */
#define NBJSON_CELL_DEPTH 2
#define NBJSON_CELL_SEP   ",\n  "

/* Append the nbformat serialisation of a whole notebook to out, ending with
   "\n" (exactly what nbformat.write puts in the file). */
void nbjson_dump(const json_t *nb, buf_t *out);

/* Append the serialisation of one value of the given kind as it appears at
   nesting depth `depth` of a document written with indent=1: the value's
   own text starts at the current position (no indentation is written before
   it), its members are indented by depth+1 spaces and its closing bracket by
   depth spaces.  A cell inside a notebook is
       nbjson_dump_value(cell, NBJSON_CELL_DEPTH, NBJSON_CELL, out). */
void nbjson_dump_value(const json_t *v, int depth, int kind, buf_t *out);

/* The notebook's serialisation cut around its cells, so an incremental
   writer can cache each cell's text and re-serialise only changed cells.
   Appends to prefix and suffix such that, with cell_text[i] =
   nbjson_dump_value(cells[i], NBJSON_CELL_DEPTH, NBJSON_CELL) for the
   elements of nb's "cells" array,

       prefix + join(cell_text, NBJSON_CELL_SEP) + suffix == nbjson_dump(nb)

   byte for byte.  An empty "cells" array is written as "[]" inside prefix;
   if "cells" is missing or not an array, prefix + suffix is the whole
   document and there are no cells to join.  The frame depends only on the
   notebook's non-cell keys and on whether it has any cells. */
void nbjson_dump_frame(const json_t *nb, buf_t *prefix, buf_t *suffix);

/* Append a double as Python's json module writes it: repr() (the shortest
   string that reads back as the same double: 0.1, 100.0, 1e-05, 1e+16),
   NaN, Infinity, -Infinity. */
void nbjson_format_real(double d, buf_t *out);

/* Length of the first line of s[0..n) including its line terminator, as
   str.splitlines(keepends=True) cuts it: \n, \r\n, \r, \v, \f, \x1c, \x1d,
   \x1e, U+0085, U+2028, U+2029.  Returns n if there is no terminator. */
size_t nbjson_line_len(const char *s, size_t n);

#endif
