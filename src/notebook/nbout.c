/* nbout — see nbout.h. */
#include "notebook/nbout.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <string.h>

struct nbout {
    json_t        *cells;
    size_t         max_bytes;
    nbout_dirty_cb dirty;
    void          *ud;
    size_t         cur;           /* current cell index */
    json_t        *outs;          /* borrowed: cells[cur].outputs */
    json_t        *display_map;   /* display_id -> [[cell, out_index], ...] */
    int            clear_pending; /* clear_output(wait=True) seen */
    json_t        *stream_out;    /* borrowed: last output if it is a stream */
    buf_t          stream_text;   /* its full text, authoritative until flush */
    int            stream_dirty;
    size_t         used;          /* bytes of output in this cell */
    size_t         dropped;
    int            noted;         /* truncation note already added */
};

static const char nbout_note_fmt[] =
    "\n[nbhub: output truncated: this cell reached the limit of %zu bytes of output; "
    "the rest was dropped]\n";

nbout_t *nbout_new(json_t *cells, size_t max_bytes, nbout_dirty_cb dirty, void *ud)
{
    nbout_t *o = xcalloc(1, sizeof *o);
    o->cells = cells;
    o->max_bytes = max_bytes ? max_bytes : (size_t)-1;
    o->dirty = dirty;
    o->ud = ud;
    o->display_map = json_object();
    return o;
}

void nbout_free(nbout_t *o)
{
    if (!o) return;
    json_decref(o->display_map);
    buf_free(&o->stream_text);
    free(o);
}

static void nbout_mark(nbout_t *o, size_t cell)
{
    if (o->dirty) o->dirty(cell, o->ud);
}

void nbout_flush(nbout_t *o)
{
    if (o->stream_out && o->stream_dirty) {
        json_object_set_new(o->stream_out, "text",
                            json_stringn_nocheck(o->stream_text.data ? o->stream_text.data : "",
                                                 o->stream_text.len));
        o->stream_dirty = 0;
    }
}

/* The current stream run ends (another output kind arrives, or the cell ends). */
static void nbout_end_stream(nbout_t *o)
{
    nbout_flush(o);
    o->stream_out = NULL;
    buf_reset(&o->stream_text);
}

/* Forget display ids that point into the given cell (its outputs were cleared). */
static void nbout_forget_cell(nbout_t *o, size_t cell)
{
    const char *id;
    json_t *list;
    json_object_foreach(o->display_map, id, list) {
        size_t i = 0;
        while (i < json_array_size(list)) {
            json_t *pair = json_array_get(list, i);
            if ((size_t)json_integer_value(json_array_get(pair, 0)) == cell) json_array_remove(list, i);
            else i++;
        }
    }
}

static void nbout_clear_now(nbout_t *o)
{
    nbout_end_stream(o);
    json_array_clear(o->outs);
    nbout_forget_cell(o, o->cur);
    o->used = 0;
    o->noted = 0;
    nbout_mark(o, o->cur);
}

void nbout_begin(nbout_t *o, size_t index)
{
    nbout_end_stream(o);
    o->cur = index;
    json_t *cell = json_array_get(o->cells, index);
    o->outs = json_array();
    json_object_set_new(cell, "outputs", o->outs);
    o->clear_pending = 0;
    o->used = 0;
    o->dropped = 0;
    o->noted = 0;
}

void nbout_end(nbout_t *o)
{
    nbout_end_stream(o);
    o->clear_pending = 0;
}

size_t nbout_dropped(const nbout_t *o) { return o->dropped; }
int nbout_full(const nbout_t *o) { return o->noted && !o->clear_pending; }
void nbout_count_dropped(nbout_t *o, size_t n) { o->dropped += n; }

/* Longest prefix of s[0..n) no longer than max that does not split a UTF-8
 * sequence (so the JSON we write stays valid UTF-8). */
static size_t nbout_utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

static void nbout_add_note(nbout_t *o)
{
    if (o->noted) return;
    o->noted = 1;
    char note[256];
    snprintf(note, sizeof note, nbout_note_fmt, o->max_bytes);
    if (o->stream_out) {
        buf_puts(&o->stream_text, note);
        o->stream_dirty = 1;
    } else {
        json_array_append_new(o->outs, json_pack("{s:s, s:s, s:s}", "output_type", "stream",
                                                 "name", "stderr", "text", note));
    }
}

static void nbout_stream(nbout_t *o, const json_t *content)
{
    const char *name = json_string_value(json_object_get(content, "name"));
    json_t *t = json_object_get(content, "text");
    const char *text = json_string_value(t);
    if (!name || !text) return;
    nbout_stream_text(o, name, text, json_string_length(t));
}

void nbout_stream_text(nbout_t *o, const char *name, const char *text, size_t n)
{
    if (o->clear_pending) {
        o->clear_pending = 0;
        nbout_clear_now(o);
    }
    size_t room = o->used < o->max_bytes ? o->max_bytes - o->used : 0;
    size_t keep = nbout_utf8_cut(text, n, room);
    if (keep < n) o->dropped += n - keep;
    if (keep == 0 && o->noted) return;

    const char *prev = o->stream_out ? json_string_value(json_object_get(o->stream_out, "name")) : NULL;
    if (!prev || strcmp(prev, name) != 0) {
        nbout_end_stream(o);
        o->stream_out = json_object();   /* not json_pack: its format parsing showed in profiles */
        json_object_set_new_nocheck(o->stream_out, "output_type", json_string_nocheck("stream"));
        json_object_set_new_nocheck(o->stream_out, "name", json_string(name));
        json_object_set_new_nocheck(o->stream_out, "text", json_string_nocheck(""));
        json_array_append_new(o->outs, o->stream_out);
    }
    buf_append(&o->stream_text, text, keep);
    o->stream_dirty = 1;
    o->used += keep;
    if (keep < n) nbout_add_note(o);
    nbout_mark(o, o->cur);
}

static size_t nbout_bundle_size(const json_t *data)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)data, k, v) {
        if (json_is_string(v)) n += json_string_length(v);
        else n += 64;   /* JSON values (application/json): rough, they are small in practice */
    }
    return n;
}

static void nbout_rewrite_display(nbout_t *o, const char *id, const json_t *content)
{
    json_t *list = json_object_get(o->display_map, id);
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair) {
        size_t cell = (size_t)json_integer_value(json_array_get(pair, 0));
        size_t idx = (size_t)json_integer_value(json_array_get(pair, 1));
        json_t *outs = json_object_get(json_array_get(o->cells, cell), "outputs");
        json_t *out = json_array_get(outs, idx);
        if (!out) continue;
        json_object_set(out, "data", json_object_get(content, "data"));
        json_object_set(out, "metadata", json_object_get(content, "metadata"));
        nbout_mark(o, cell);
    }
}

void nbout_update_display(nbout_t *o, const json_t *content)
{
    const json_t *transient = json_object_get(content, "transient");
    const char *display_id = json_is_object(transient)
        ? json_string_value(json_object_get(transient, "display_id")) : NULL;
    if (display_id) nbout_rewrite_display(o, display_id, content);
}

void nbout_append(nbout_t *o, json_t *output)
{
    nbout_end_stream(o);
    json_array_append_new(o->outs, output);
    nbout_mark(o, o->cur);
}

static void nbout_rich(nbout_t *o, const char *msg_type, const json_t *content)
{
    const json_t *transient = json_object_get(content, "transient");
    const char *display_id = json_is_object(transient)
        ? json_string_value(json_object_get(transient, "display_id")) : NULL;
    if (display_id) nbout_rewrite_display(o, display_id, content);
    if (strcmp(msg_type, "update_display_data") == 0) return;

    if (o->clear_pending) {
        o->clear_pending = 0;
        nbout_clear_now(o);
    }
    json_t *out;
    if (strcmp(msg_type, "error") == 0) {
        out = json_pack("{s:s, s:O?, s:O?, s:O?}", "output_type", "error",
                        "ename", json_object_get(content, "ename"),
                        "evalue", json_object_get(content, "evalue"),
                        "traceback", json_object_get(content, "traceback"));
        if (!json_is_array(json_object_get(out, "traceback")))
            json_object_set_new(out, "traceback", json_array());
    } else {
        json_t *data = json_object_get(content, "data");
        json_t *meta = json_object_get(content, "metadata");
        size_t size = json_is_object(data) ? nbout_bundle_size(data) : 0;
        out = json_pack("{s:s}", "output_type", msg_type);
        if (o->used + size > o->max_bytes) {
            o->dropped += size;
            char note[256];
            snprintf(note, sizeof note, "[nbhub: a %s output of %zu bytes was dropped: this cell "
                     "reached the limit of %zu bytes of output]", msg_type, size, o->max_bytes);
            json_object_set_new(out, "data", json_pack("{s:s}", "text/plain", note));
            json_object_set_new(out, "metadata", json_object());
        } else {
            o->used += size;
            json_object_set(out, "data", json_is_object(data) ? data : json_object());
            json_object_set(out, "metadata", json_is_object(meta) ? meta : json_object());
        }
        if (strcmp(msg_type, "execute_result") == 0) {
            json_t *ec = json_object_get(content, "execution_count");
            json_object_set(out, "execution_count", ec ? ec : json_null());
        }
        if (display_id) {
            json_t *list = json_object_get(o->display_map, display_id);
            if (!list) {
                list = json_array();
                json_object_set_new(o->display_map, display_id, list);
            }
            json_array_append_new(list, json_pack("[I, I]", (json_int_t)o->cur,
                                                  (json_int_t)json_array_size(o->outs)));
        }
    }
    nbout_append(o, out);
}

void nbout_handle(nbout_t *o, const char *msg_type, const json_t *content)
{
    if (strcmp(msg_type, "stream") == 0) {
        nbout_stream(o, content);
    } else if (strcmp(msg_type, "display_data") == 0 || strcmp(msg_type, "execute_result") == 0 ||
               strcmp(msg_type, "update_display_data") == 0 || strcmp(msg_type, "error") == 0) {
        nbout_rich(o, msg_type, content);
    } else if (strcmp(msg_type, "clear_output") == 0) {
        if (json_is_true(json_object_get(content, "wait"))) o->clear_pending = 1;
        else nbout_clear_now(o);
    }
}

void nbout_log(const char *msg_type, const json_t *content, void *fp)
{
    FILE *f = fp;
    if (strcmp(msg_type, "stream") == 0) {
        const char *t = json_string_value(json_object_get(content, "text"));
        if (t) fputs(t, f);
    } else if (strcmp(msg_type, "display_data") == 0 || strcmp(msg_type, "execute_result") == 0) {
        const char *t = json_string_value(json_object_get(json_object_get(content, "data"), "text/plain"));
        if (t) fprintf(f, "%s\n", t);
    } else if (strcmp(msg_type, "error") == 0) {
        size_t i;
        json_t *line;
        json_array_foreach(json_object_get(content, "traceback"), i, line)
            if (json_is_string(line)) fprintf(f, "%s\n", json_string_value(line));
    }
    fflush(f);
}
