/*
 * nb — load a notebook file into a jansson tree the executor can trust.
 *
 * Loading does what nbformat.reads(s, as_version=4) does to the data, plus
 * a light structural check of what nbhub relies on:
 *  - parse the JSON like Python's json.loads where jansson allows it
 *    (duplicate keys: the last one wins; "\u0000" in strings is accepted).
 *    What Python reads and jansson rejects, as "invalid JSON": NaN and
 *    Infinity literals, integers beyond 64 bits, reals that overflow to
 *    infinity, lone surrogate escapes, "\u0000" inside an object key;
 *  - accept nbformat 4 only (any minor), with a precise message otherwise;
 *  - rejoin_lines: multi-line strings stored as lists of strings become one
 *    string (cell "source"; an output's "text"; in execute_result and
 *    display_data "data" and in every cell attachment, each value that is a
 *    list of strings, except JSON mime types);
 *  - strip_transient: drop metadata.orig_nbformat, orig_nbformat_minor,
 *    signature and each cell's metadata.trusted;
 *  - make the tree regular: every cell has a "metadata" object, every code
 *    cell an "outputs" array and an "execution_count" (null if missing).
 * Unknown keys are kept.  Cell ids are not touched (the executor adds the
 * missing ones when it upgrades the notebook to 4.5).  Full JSON-schema
 * validation is left to nbformat.validate in the black-box tests.
 *
 * Error messages name the input and, for cells and outputs, their 1-based
 * position ("in.ipynb: cell 3: output 1: ...").  Codes: -EINVAL for input
 * that is not a valid notebook, -EPROTONOSUPPORT for a notebook of another
 * nbformat version, or fs_read_all's code when the file cannot be read.
 *
 * Ownership: nb_load_* return a new reference in *nb (json_decref it); the
 * accessors borrow the tree and return pointers into it (valid while the
 * value is not modified).
 */
#ifndef NBHUB_NB_H
#define NBHUB_NB_H

#include <jansson.h>
#include <stddef.h>
#include "util/err.h"

/* Parse notebook JSON text (len bytes, need not be NUL-terminated).  name is
   used in messages.  Invalid JSON gives "NAME:LINE:COLUMN: invalid JSON: ..."
   with jansson's 1-based line and column (the column is where the offending
   token ends, in characters). */
int nb_load_text(const char *text, size_t len, const char *name, json_t **nb, nb_err_t *err);
/* Read and load a file; path "-" reads stdin and is called "<stdin>". */
int nb_load_file(const char *path, json_t **nb, nb_err_t *err);
/* The checks and normalisation of nb_load_text on an already parsed value
   (modified in place). */
int nb_normalise(json_t *nb, const char *name, nb_err_t *err);
/* nb_normalise's part for one cell, the index-th (1-based, for messages),
   of a notebook read cell by cell (nbsplit.h). */
int nb_normalise_cell(json_t *cell, const char *name, size_t index, nb_err_t *err);

/* The cell's "source" string; "" if missing or not a string. */
const char *nb_cell_source(const json_t *cell);
/* 1 if the cell's metadata.tags array contains tag, else 0. */
int nb_cell_has_tag(const json_t *cell, const char *tag);
/* metadata.kernelspec.name, or NULL if missing or empty. */
const char *nb_kernel_name(const json_t *nb);
/* metadata.kernelspec.language, else metadata.language_info.name, else NULL
   (empty strings count as missing). */
const char *nb_language(const json_t *nb);

#endif
