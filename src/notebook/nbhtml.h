/*
 * nbhtml — an output notebook as one self-contained HTML document, rendered
 * in C (what `jupyter nbconvert --to html` does, without Python, Jinja or
 * Pygments).
 *
 * What a cell becomes:
 *  - markdown: GitHub-flavoured markdown (cmark-gfm: tables, strikethrough,
 *    autolinks, task lists, the tag filter), cell attachments resolved to
 *    data: URIs, math ($..$, $$..$$, \(..\), \[..\], \begin{..}) kept out of
 *    the markdown parser and emitted as escaped TeX in class="math" elements
 *    for client-side KaTeX or MathJax;
 *  - code: "In [n]:" and the escaped source (hidden in report mode), then
 *    each output: streams and tracebacks with ANSI colours as spans; rich
 *    data by priority text/html, image/svg+xml, image/png, image/jpeg,
 *    image/gif, text/markdown, text/latex, application/json, text/plain;
 *  - raw: escaped, preformatted.
 * A cell that failed (papermill status "failed", or an error output) gets
 * class "failed"; papermill's banner cells are markdown and render as such.
 *
 * Security: a notebook's content is untrusted.  Every string we place is
 * escaped; images, SVG included, are <img> elements with data: URIs (a
 * script inside an SVG loaded as an image never runs); text/html outputs
 * and raw HTML in markdown are kept, as nbconvert does, under a
 * Content-Security-Policy in the document itself that allows no script at
 * all (inline, event handler or javascript: URL), no network fetch, and
 * images from data: only.  nbhub serve additionally serves the document
 * with `Content-Security-Policy: sandbox`, so it has an opaque origin and
 * cannot reach the session even if a browser ignored the meta policy.
 *
 * Ownership: nbhtml_render borrows the notebook and appends to out.
 */
#ifndef NBHUB_NBHTML_H
#define NBHUB_NBHTML_H

#include <jansson.h>
#include <stddef.h>
#include "util/buf.h"

/* The policy in the document's <meta http-equiv="Content-Security-Policy">. */
#define NBHTML_CSP "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; " \
                   "form-action 'none'; base-uri 'none'"

struct nbhtml_opts {
    const char *title;       /* <title> and heading; NULL: "Notebook" */
    const char *ipynb_href;  /* link to download the .ipynb, or NULL */
    int         no_input;    /* report mode: hide code cells' source */
};

void nbhtml_render(const json_t *nb, const struct nbhtml_opts *o, buf_t *out);

/* The same in pieces, for a notebook read cell by cell (nbsplit.h):
 * nbhtml_begin with the notebook (its "cells" are not read), nbhtml_cell
 * for each cell in order, nbhtml_end.  nbhtml_render is exactly these. */
void nbhtml_begin(const json_t *nb, const struct nbhtml_opts *o, buf_t *out);
void nbhtml_cell(const json_t *cell, const struct nbhtml_opts *o, buf_t *out);
void nbhtml_end(buf_t *out);

/* A page in the rendered notebooks' style and policy that shows a notice
 * instead of the notebook (too big to render, ...): title, the message
 * (text, escaped) and, if ipynb_href is not NULL, a download link. */
void nbhtml_notice(buf_t *out, const char *title, const char *message, const char *ipynb_href);

/* Building blocks, exposed for tests. */
/* Append s[0..n) with & < > " ' escaped. */
void nbhtml_escape(buf_t *out, const char *s, size_t n);
/* Escape s[0..n) and turn ANSI SGR sequences into spans (other escape
 * sequences are dropped). */
void nbhtml_ansi(buf_t *out, const char *s, size_t n);
/* Markdown to HTML with math protected; attachments (may be NULL) is a
 * cell's "attachments" object. */
void nbhtml_markdown(buf_t *out, const char *md, size_t n, const json_t *attachments);

#endif
