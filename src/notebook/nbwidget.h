/*
 * nbwidget — Jupyter widgets during a headless run, as nbclient keeps them.
 *
 * A frontend does two things for widgets that a notebook's outputs depend
 * on, and nbclient mimics both (nbclient/client.py handle_comm_msg,
 * nbclient/output_widget.py); so does this file, rule for rule:
 *
 *  - Widget state.  Every comm_open / comm_msg / comm_close of the cell
 *    whose data carries "state" is merged into the state of that comm id
 *    (binary buffers, listed by data.buffer_paths, kept base64 by path).
 *    At the end of the run the models that have a _model_name are saved in
 *    metadata.widgets["application/vnd.jupyter.widget-state+json"]
 *    {version_major: 2, version_minor: 0, state: {id: {model_name,
 *    model_module, model_module_version, state[, buffers]}}}, replacing
 *    metadata.widgets; a run that saw no widget state leaves the notebook's
 *    metadata.widgets as it was (nbclient's `if self.widget_state`).
 *
 *  - Output widgets (@jupyter-widgets/output OutputModel).  `with out:`
 *    makes the kernel send an update with state.msg_id = the executing
 *    request's id: from then on, outputs whose parent is that request go
 *    into the widget's `outputs` (stream text merged with a preceding
 *    stream of the same name), not into the cell; clear_output clears the
 *    widget (wait=True: before its next output).  msg_id "" ends the
 *    capture.  Captures nest: a stack of widgets per msg_id, the newest
 *    wins.  The widget's new outputs are sent back to the kernel (comm_msg
 *    method "update" on shell), so `out.outputs` reads them in the next
 *    cell; nbclient sends one per output, nbhub one per changed widget when
 *    the cell ends: the kernel handles neither before the cell is over, so
 *    it ends in the same state.  Display updates (update_display_data, a
 *    display_data with a known display_id) rewrite the *cells'* outputs
 *    with that id and never a widget's: nbclient's rule (nbout.c does it).
 *
 * A cap (max_bytes per widget, as nbout's per cell) keeps a runaway loop
 * inside `with out:` from growing the notebook's metadata without bound.
 *
 * Ownership: nbwidget owns its state; nbwidget_save puts references to it
 * into the notebook.  Content trees passed in are borrowed (the values
 * kept are referenced, as nbclient keeps the message's objects).
 */
#ifndef NBHUB_NBWIDGET_H
#define NBHUB_NBWIDGET_H

#include <jansson.h>
#include <stddef.h>
#include "kernel/kwire.h"

typedef struct nbwidget nbwidget_t;
typedef struct nbwidget_out nbwidget_out_t;

#define NBWIDGET_STATE_MIME "application/vnd.jupyter.widget-state+json"

nbwidget_t *nbwidget_new(size_t max_bytes);
void        nbwidget_free(nbwidget_t *w);

/* A comm_open, comm_msg or comm_close of the executing cell.  Returns 1
 * when it opened an Output widget, else 0. */
int nbwidget_comm(nbwidget_t *w, const char *msg_type, const json_t *content,
                  const kbytes_t *buffers, size_t nbuffers);

/* The Output widget capturing messages whose parent is msg_id, or NULL.
 * Cheap when nothing captures (the common case). */
nbwidget_out_t *nbwidget_capture(const nbwidget_t *w, const char *parent_msg_id);

/* A captured output: stream, display_data, execute_result or error
 * (content of the message); clear_output with its wait flag. */
void nbwidget_output(nbwidget_t *w, nbwidget_out_t *o, const char *msg_type, const json_t *content);
void nbwidget_clear(nbwidget_t *w, nbwidget_out_t *o, int wait);

/* For every Output widget changed since the last call: send(content) with
 * the content of the comm_msg that tells the kernel its new outputs
 * (stolen by send). */
void nbwidget_sync(nbwidget_t *w, void (*send)(json_t *content, void *ud), void *ud);

/* Write metadata.widgets into nb as described above.  Returns 1 if it did. */
int nbwidget_save(nbwidget_t *w, json_t *nb);

#endif
