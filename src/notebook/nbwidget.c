/* nbwidget — see nbwidget.h for the rules; this file keeps the tables.
 *
 * Output widgets live in an array (index = their number); `byid` maps a
 * comm id to that index and `hooks` a request's msg_id to a stack of
 * indexes (nbclient's output_hook_stack).  `nhooks` counts the entries of
 * every stack, so the question asked of every output message, "is its
 * parent captured?", is one comparison when nothing is.
 *
 * Stream text is merged as nbclient merges it (`last["text"] += text`),
 * but in a byte buffer written into the JSON only when the outputs are
 * read (sync, save): a loop of prints inside `with out:` costs O(total).
 */
#include "notebook/nbwidget.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <string.h>

struct nbwidget_out {
    char   *comm_id;
    json_t *outputs;       /* its outputs (at first the comm_open state's own list, as nbclient) */
    char   *msg_id;        /* the request it captures, NULL = none */
    int     clear_wait;    /* clear_output(wait=True) seen */
    int     dirty;         /* the kernel has not been told its outputs */
    json_t *stream_out;    /* borrowed: its last output while stream text is merged into it */
    buf_t   stream_text;   /* that output's whole text, authoritative until flushed */
    size_t  used;          /* bytes of output it holds */
    int     noted;         /* the truncation note was added */
};

struct nbwidget {
    json_t          *state;    /* comm id -> merged state (nbclient's widget_state) */
    json_t          *buffers;  /* comm id -> [{data, encoding, path}] in first-seen order of path */
    json_t          *byid;     /* comm id -> index into outs */
    json_t          *hooks;    /* msg_id -> [index, ...], the last one captures */
    size_t           nhooks;
    nbwidget_out_t **outs;
    size_t           nouts, capouts;
    size_t           max_bytes;
};

nbwidget_t *nbwidget_new(size_t max_bytes)
{
    nbwidget_t *w = xcalloc(1, sizeof *w);
    w->state = json_object();
    w->buffers = json_object();
    w->byid = json_object();
    w->hooks = json_object();
    w->max_bytes = max_bytes ? max_bytes : (size_t)-1;
    return w;
}

static void nbwidget_out_free(nbwidget_out_t *o)
{
    free(o->comm_id);
    free(o->msg_id);
    json_decref(o->outputs);
    buf_free(&o->stream_text);
    free(o);
}

void nbwidget_free(nbwidget_t *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->nouts; i++) nbwidget_out_free(w->outs[i]);
    free(w->outs);
    json_decref(w->state);
    json_decref(w->buffers);
    json_decref(w->byid);
    json_decref(w->hooks);
    free(w);
}

/* ---- stream text ------------------------------------------------------- */

static void nbwidget_flush(nbwidget_out_t *o)
{
    if (o->stream_out)
        json_object_set_new(o->stream_out, "text",
                            json_stringn_nocheck(o->stream_text.data ? o->stream_text.data : "",
                                                 o->stream_text.len));
}

static void nbwidget_end_stream(nbwidget_out_t *o)
{
    nbwidget_flush(o);
    o->stream_out = NULL;
    buf_reset(&o->stream_text);
}

/* The widget's outputs changed: the state that is saved is its list (nbclient
 * sets widget_state[id]["outputs"] = self.outputs after every change). */
static void nbwidget_changed(nbwidget_t *w, nbwidget_out_t *o)
{
    json_t *st = json_object_get(w->state, o->comm_id);
    if (json_is_object(st)) json_object_set(st, "outputs", o->outputs);
    o->dirty = 1;
}

/* nbclient's `self.outputs = []`: a new list, the old one stays where it is referenced. */
static void nbwidget_reset(nbwidget_out_t *o)
{
    nbwidget_end_stream(o);
    json_decref(o->outputs);
    o->outputs = json_array();
    o->used = 0;
    o->noted = 0;
}

static const char nbwidget_note_fmt[] =
    "\n[nbhub: output truncated: this Output widget reached the limit of %zu bytes of output; "
    "the rest was dropped]\n";

static void nbwidget_stream(nbwidget_out_t *o, size_t max, const char *name, const char *text, size_t n)
{
    size_t room = o->used < max ? max - o->used : 0;
    size_t keep = n <= room ? n : room;
    while (keep < n && keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80) keep--;   /* UTF-8 */
    if (keep == 0 && o->noted) return;
    if (!o->stream_out || strcmp(json_string_value(json_object_get(o->stream_out, "name")), name) != 0) {
        nbwidget_end_stream(o);
        /* Merge with a stream that is already last (the comm_open's own
         * outputs, or one before a display update): nbclient looks at
         * outputs[-1] whatever put it there. */
        json_t *last = json_array_get(o->outputs, json_array_size(o->outputs) - 1);
        const char *lt = json_string_value(json_object_get(last, "output_type"));
        const char *ln = json_string_value(json_object_get(last, "name"));
        const char *ltext = json_string_value(json_object_get(last, "text"));
        if (lt && strcmp(lt, "stream") == 0 && ln && strcmp(ln, name) == 0 && ltext) {
            o->stream_out = last;
            buf_append(&o->stream_text, ltext, json_string_length(json_object_get(last, "text")));
        } else {
            o->stream_out = json_pack("{s:s, s:s, s:s}", "output_type", "stream", "name", name, "text", "");
            json_array_append_new(o->outputs, o->stream_out);
        }
    }
    buf_append(&o->stream_text, text, keep);
    o->used += keep;
    if (keep < n && !o->noted) {
        char note[256];
        snprintf(note, sizeof note, nbwidget_note_fmt, max);
        buf_puts(&o->stream_text, note);
        o->noted = 1;
    }
}

/* ---- captured outputs ---------------------------------------------------- */

nbwidget_out_t *nbwidget_capture(const nbwidget_t *w, const char *parent_msg_id)
{
    if (!w->nhooks || !parent_msg_id) return NULL;
    json_t *stack = json_object_get(w->hooks, parent_msg_id);
    size_t n = json_array_size(stack);
    if (!n) return NULL;
    return w->outs[json_integer_value(json_array_get(stack, n - 1))];
}

static size_t nbwidget_bundle_size(const json_t *data)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)data, k, v) n += json_is_string(v) ? json_string_length(v) : 64;
    return n;
}

/* nbformat.v4.output_from_msg (the ename/evalue/traceback order is its too). */
static json_t *nbwidget_output_from(const char *msg_type, const json_t *content)
{
    if (strcmp(msg_type, "error") == 0) {
        json_t *out = json_pack("{s:s, s:O?, s:O?, s:O?}", "output_type", "error",
                                "ename", json_object_get(content, "ename"),
                                "evalue", json_object_get(content, "evalue"),
                                "traceback", json_object_get(content, "traceback"));
        if (!json_is_array(json_object_get(out, "traceback"))) json_object_set_new(out, "traceback", json_array());
        return out;
    }
    json_t *data = json_object_get(content, "data"), *meta = json_object_get(content, "metadata");
    /* nbformat's new_output key order (output_type, metadata, data[,
     * execution_count]): the kernel sees these objects as dicts, and a
     * notebook that prints out.outputs shows that order. */
    json_t *out = json_object();
    json_object_set_new(out, "output_type", json_string(msg_type));
    json_object_set_new(out, "metadata", json_is_object(meta) ? json_incref(meta) : json_object());
    json_object_set_new(out, "data", json_is_object(data) ? json_incref(data) : json_object());
    if (strcmp(msg_type, "execute_result") == 0) {
        json_t *ec = json_object_get(content, "execution_count");
        json_object_set(out, "execution_count", ec ? ec : json_null());
    }
    return out;
}

void nbwidget_output(nbwidget_t *w, nbwidget_out_t *o, const char *msg_type, const json_t *content)
{
    int stream = strcmp(msg_type, "stream") == 0;
    if (!stream && strcmp(msg_type, "display_data") != 0 && strcmp(msg_type, "execute_result") != 0 &&
        strcmp(msg_type, "error") != 0)
        return;
    if (o->clear_wait) {
        nbwidget_reset(o);
        o->clear_wait = 0;
    }
    if (stream) {
        json_t *t = json_object_get(content, "text");
        const char *name = json_string_value(json_object_get(content, "name"));
        if (!name || !json_is_string(t)) return;
        nbwidget_stream(o, w->max_bytes, name, json_string_value(t), json_string_length(t));
    } else {
        nbwidget_end_stream(o);
        json_t *out = nbwidget_output_from(msg_type, content);
        size_t size = nbwidget_bundle_size(json_object_get(out, "data"));
        if (strcmp(msg_type, "error") != 0 && o->used + size > w->max_bytes) {
            char note[256];
            snprintf(note, sizeof note, "[nbhub: a %s output of %zu bytes was dropped: this Output widget "
                     "reached the limit of %zu bytes of output]", msg_type, size, w->max_bytes);
            json_object_set_new(out, "data", json_pack("{s:s}", "text/plain", note));
            json_object_set_new(out, "metadata", json_object());
        } else {
            o->used += size;
        }
        json_array_append_new(o->outputs, out);
    }
    nbwidget_changed(w, o);
}

void nbwidget_clear(nbwidget_t *w, nbwidget_out_t *o, int wait)
{
    if (wait) {
        o->clear_wait = 1;
        return;
    }
    nbwidget_reset(o);
    nbwidget_changed(w, o);
}

/* ---- comm messages ----------------------------------------------------- */

static void nbwidget_hook_push(nbwidget_t *w, const char *msg_id, size_t idx)
{
    json_t *stack = json_object_get(w->hooks, msg_id);
    if (!stack) {
        stack = json_array();
        json_object_set_new(w->hooks, msg_id, stack);
    }
    json_array_append_new(stack, json_integer((json_int_t)idx));
    w->nhooks++;
}

/* nbclient pops the top and asserts it is this widget; one that is not is
 * taken out wherever it is, newest first, instead of failing the run. */
static void nbwidget_hook_remove(nbwidget_t *w, const char *msg_id, size_t idx)
{
    json_t *stack = json_object_get(w->hooks, msg_id);
    for (size_t i = json_array_size(stack); i-- > 0;)
        if ((size_t)json_integer_value(json_array_get(stack, i)) == idx) {
            json_array_remove(stack, i);
            w->nhooks--;
            break;
        }
    if (stack && json_array_size(stack) == 0) json_object_del(w->hooks, msg_id);
}

/* OutputWidget.set_state: only msg_id matters to a frontend's Output. */
static void nbwidget_set_msg_id(nbwidget_t *w, size_t idx, const json_t *v)
{
    nbwidget_out_t *o = w->outs[idx];
    const char *id = json_string_value(v);
    if (id && *id) {
        nbwidget_hook_push(w, id, idx);
        free(o->msg_id);
        o->msg_id = xstrdup(id);
    } else if (o->msg_id) {
        nbwidget_hook_remove(w, o->msg_id, idx);
        free(o->msg_id);
        o->msg_id = NULL;
    }
}

/* data.buffer_paths[i] names where buffers[i] goes in the state; kept per
 * path, a later buffer for the same path replacing the earlier in place. */
static void nbwidget_buffers(nbwidget_t *w, const char *comm_id, const json_t *paths,
                             const kbytes_t *buffers, size_t nbuffers)
{
    json_t *list = json_object_get(w->buffers, comm_id);
    if (!list) {
        list = json_array();
        json_object_set_new(w->buffers, comm_id, list);
    }
    for (size_t i = 0; i < json_array_size(paths) && i < nbuffers; i++) {
        json_t *path = json_array_get(paths, i);
        buf_t b64 = BUF_INIT;
        base64_append(&b64, buffers[i].data, buffers[i].len);
        json_t *entry = json_pack("{s:s%, s:s, s:O}", "data", b64.data ? b64.data : "", b64.len,
                                  "encoding", "base64", "path", path);
        buf_free(&b64);
        size_t j;
        json_t *old;
        int replaced = 0;
        json_array_foreach(list, j, old)
            if (json_equal(json_object_get(old, "path"), path)) {
                json_array_set(list, j, entry);
                replaced = 1;
                break;
            }
        if (!replaced) json_array_append(list, entry);
        json_decref(entry);
    }
}

int nbwidget_comm(nbwidget_t *w, const char *msg_type, const json_t *content,
                  const kbytes_t *buffers, size_t nbuffers)
{
    const char *comm_id = json_string_value(json_object_get(content, "comm_id"));
    json_t *data = json_object_get(content, "data");
    if (!comm_id || !json_is_object(data)) return 0;
    json_t *state = json_object_get(data, "state");
    if (json_is_object(state)) {
        json_t *st = json_object_get(w->state, comm_id);
        if (!st) {
            st = json_object();
            json_object_set_new(w->state, comm_id, st);
        }
        json_object_update(st, state);
        json_t *paths = json_object_get(data, "buffer_paths");
        if (json_array_size(paths) > 0) nbwidget_buffers(w, comm_id, paths, buffers, nbuffers);
    }
    json_t *known = json_object_get(w->byid, comm_id);
    if (strcmp(msg_type, "comm_open") == 0) {
        const char *target = json_string_value(json_object_get(content, "target_name"));
        const char *module = json_string_value(json_object_get(state, "_model_module"));
        const char *model = json_string_value(json_object_get(state, "_model_name"));
        if (!target || strcmp(target, "jupyter.widget") != 0 || !module || !model ||
            strcmp(module, "@jupyter-widgets/output") != 0 || strcmp(model, "OutputModel") != 0)
            return 0;
        nbwidget_out_t *o = xcalloc(1, sizeof *o);
        o->comm_id = xstrdup(comm_id);
        json_t *outs = json_object_get(state, "outputs");
        o->outputs = json_is_array(outs) ? json_incref(outs) : json_array();
        if (known) {   /* the same comm id opened again: the new widget replaces the old */
            size_t idx = (size_t)json_integer_value(known);
            if (w->outs[idx]->msg_id) nbwidget_hook_remove(w, w->outs[idx]->msg_id, idx);
            nbwidget_out_free(w->outs[idx]);
            w->outs[idx] = o;
            return 1;
        }
        if (w->nouts == w->capouts) {
            w->capouts = w->capouts ? 2 * w->capouts : 8;
            w->outs = xrealloc(w->outs, w->capouts * sizeof *w->outs);
        }
        json_object_set_new(w->byid, comm_id, json_integer((json_int_t)w->nouts));
        w->outs[w->nouts++] = o;
        return 1;
    }
    if (strcmp(msg_type, "comm_msg") == 0 && known && json_is_object(state) &&
        json_object_get(state, "msg_id"))
        nbwidget_set_msg_id(w, (size_t)json_integer_value(known), json_object_get(state, "msg_id"));
    return 0;
}

/* ---- to the kernel, to the notebook -------------------------------------- */

void nbwidget_sync(nbwidget_t *w, void (*send)(json_t *content, void *ud), void *ud)
{
    for (size_t i = 0; i < w->nouts; i++) {
        nbwidget_out_t *o = w->outs[i];
        if (!o->dirty) continue;
        o->dirty = 0;
        nbwidget_flush(o);
        /* OutputWidget.sync_state: {method: update, state: {outputs}, buffer_paths: []} */
        send(json_pack("{s:s, s:{s:s, s:{s:O}, s:[]}}", "comm_id", o->comm_id, "data",
                       "method", "update", "state", "outputs", o->outputs, "buffer_paths"), ud);
    }
}

static json_t *nbwidget_get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v ? json_incref(v) : json_null();
}

int nbwidget_save(nbwidget_t *w, json_t *nb)
{
    if (json_object_size(w->state) == 0) return 0;
    for (size_t i = 0; i < w->nouts; i++) nbwidget_flush(w->outs[i]);
    json_t *models = json_object();
    const char *id;
    json_t *st;
    json_object_foreach(w->state, id, st) {
        if (!json_object_get(st, "_model_name")) continue;
        json_t *m = json_object();   /* state.get(...): null when absent */
        json_object_set(m, "model_name", json_object_get(st, "_model_name"));
        json_object_set_new(m, "model_module", nbwidget_get(st, "_model_module"));
        json_object_set_new(m, "model_module_version", nbwidget_get(st, "_model_module_version"));
        json_object_set(m, "state", st);
        json_t *bufs = json_object_get(w->buffers, id);
        if (json_array_size(bufs) > 0) json_object_set(m, "buffers", bufs);
        json_object_set_new(models, id, m);
    }
    json_t *meta = json_object_get(nb, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(nb, "metadata", meta);
    }
    json_object_set_new(meta, "widgets",
                        json_pack("{s:{s:o, s:i, s:i}}", NBWIDGET_STATE_MIME, "state", models,
                                  "version_major", 2, "version_minor", 0));
    return 1;
}
