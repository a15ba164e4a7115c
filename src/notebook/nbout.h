/*
 * nbout — what happens to a cell's outputs as iopub messages arrive,
 * following nbclient (and the Jupyter frontends) exactly:
 *
 *  - stream: appended to the previous output when that is a stream of the
 *    same name (one "stdout" output for a loop of prints), else a new one;
 *  - display_data / execute_result / error: a new output;
 *  - clear_output: clears now, or with wait=True just before the next output;
 *  - display_id: a display_data/execute_result carrying transient.display_id
 *    is remembered; update_display_data (or a new display with that id)
 *    rewrites data+metadata of every output with that id, in any cell.
 *
 * Streams are accumulated in a byte buffer and written into the JSON lazily
 * (nbout_flush), so a cell printing 100k chunks costs O(total) not O(n^2).
 *
 * Size cap: each cell may hold at most max_bytes of output text/data.  Past
 * it, stream text is cut (at a UTF-8 boundary) with a visible note, and rich
 * outputs are replaced by a text/plain note, so the notebook stays loadable.
 *
 * Ownership: nbout borrows the cells array; it never outlives the notebook.
 */
#ifndef NBHUB_NBOUT_H
#define NBHUB_NBOUT_H

#include <jansson.h>
#include <stddef.h>

typedef struct nbout nbout_t;
typedef void (*nbout_dirty_cb)(size_t cell_index, void *ud);

nbout_t *nbout_new(json_t *cells, size_t max_bytes, nbout_dirty_cb dirty, void *ud);
void     nbout_free(nbout_t *o);
/* Start collecting outputs for cells[index] (its outputs are reset to []). */
void     nbout_begin(nbout_t *o, size_t index);
/* Apply one iopub message for the current cell.  Unknown types are ignored. */
void     nbout_handle(nbout_t *o, const char *msg_type, const json_t *content);
/* Only the display_id rule of a display_data, execute_result or
 * update_display_data: the outputs with its transient.display_id, in any
 * cell, get its data and metadata.  For an output an Output widget
 * captured (nbwidget.h): nbclient applies this rule before routing. */
void     nbout_update_display(nbout_t *o, const json_t *content);
/* A stream message given as its name and text (valid UTF-8), without the
 * content tree: what nbout_handle does with "stream". */
void     nbout_stream_text(nbout_t *o, const char *name, const char *text, size_t n);
/* Append an output object (stolen) directly, e.g. an error nbhub makes. */
void     nbout_append(nbout_t *o, json_t *output);
/* Write pending stream text into the JSON tree (before serialising). */
void     nbout_flush(nbout_t *o);
/* Finish the current cell (flushes). */
void     nbout_end(nbout_t *o);
/* The current cell reached its cap: further stream text will be dropped. */
int      nbout_full(const nbout_t *o);
/* Count bytes dropped by the caller without handing them to nbout. */
void     nbout_count_dropped(nbout_t *o, size_t n);
/* Bytes dropped by the cap in the current/last cell. */
size_t   nbout_dropped(const nbout_t *o);

/* Print an output for --log-output (stream text as is, rich as text/plain). */
void     nbout_log(const char *msg_type, const json_t *content, void *fp);

#endif
