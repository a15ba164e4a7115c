/*
 * nbsplit — a notebook's cells one at a time, from its JSON text, without
 * the whole tree.
 *
 * Why: rendering a big output notebook (the web UI's output.html) with
 * nb_load_text holds the text, the tree of every cell (jansson's strings
 * copy the text, and nbformat's lists of lines cost ~1.5x the text until
 * they are joined) and the HTML at once: 3.3x the file's size measured on a
 * 66 MB notebook, 10x for four requests.  A renderer only needs one cell at
 * a time.  nbsplit_open scans the top-level object (strings skipped with
 * memchr, nothing decoded), parses every member except "cells" into a
 * skeleton notebook whose "cells" is [] and checks it with nb_normalise;
 * nbsplit_next then parses and normalises (nb_normalise_cell) the next
 * element of the cells array, decoding lists of lines (a source, a
 * stream's text, a bundle's text/plain ...) straight into the one string
 * nb_normalise would join them into.  The caller frees each cell when done and may
 * release the text before nbsplit_consumed(): it is never read again.
 *
 * What is accepted is what nb_load_text accepts (each part goes through
 * jparse, the same flags, then the same checks); the messages differ only
 * in where a JSON error is reported (line and column are computed from the
 * byte offset, counted in bytes where jansson counts characters).  A member
 * given twice: the last wins, as with jansson.
 *
 * Ownership: the iterator borrows text (it must stay readable from
 * nbsplit_consumed() on until the last nbsplit_next) and name.  *skeleton
 * and each *cell are new references.
 */
#ifndef NBHUB_NBSPLIT_H
#define NBHUB_NBSPLIT_H

#include <jansson.h>
#include <stddef.h>
#include "util/err.h"

typedef struct nbsplit {
    const char *s;
    size_t      n;
    const char *name;
    size_t      pos;      /* where the next cell (or the closing ]) is looked for */
    size_t      cells_end;/* after the cells array's ] */
    size_t      index;    /* cells returned so far */
    int         done;
    /* Optional, set after nbsplit_open: told now and then, while a long
     * list of lines is decoded, that text[0..upto) will not be read again
     * (a caller can give those pages back before the cell is complete). */
    void      (*release)(void *ud, size_t upto);
    void       *release_ud;
} nbsplit_t;

/* 0 with *skeleton (the notebook, "cells": []), or a negative code and a
 * message (nb_load_text's codes: -EINVAL, -EPROTONOSUPPORT). */
int nbsplit_open(nbsplit_t *it, const char *text, size_t len, const char *name, json_t **skeleton,
                 nb_err_t *err);
/* 1 with the next cell in *cell, 0 after the last, or a negative code. */
int nbsplit_next(nbsplit_t *it, json_t **cell, nb_err_t *err);
/* Bytes of the text at the start that will not be read again. */
size_t nbsplit_consumed(const nbsplit_t *it);

#endif
