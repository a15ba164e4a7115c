/*
 * libFuzzer harness for notebook/nbwidget: the widget messages a kernel
 * sends while a notebook runs (the notebook's code chooses them).  The
 * input is one message per line, each a JSON array [msg_type, content,
 * parent_msg_id, nbuffers]; lines that are not such an array are skipped.
 * Messages go where nbexec sends them: comm_* to nbwidget_comm (with
 * nbuffers small buffers), the others, when an Output widget captures
 * their parent, to nbwidget_clear or nbwidget_output.  Every few messages
 * the outputs are synced to the "kernel", at the end saved into a notebook.
 *
 * Invariants beyond "no crash, no leak": a sync sends only update messages
 * whose outputs are a list, and the saved notebook serialises to JSON that
 * loads back (the state is shared with the outputs being written, which
 * borrow objects from each other).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nbwidget.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sent(json_t *content, void *ud)
{
    json_t *d = json_object_get(content, "data");
    NB_ASSERT(json_is_string(json_object_get(content, "comm_id")));
    NB_ASSERT(!strcmp(json_string_value(json_object_get(d, "method")), "update"));
    NB_ASSERT(json_is_array(json_object_get(json_object_get(d, "state"), "outputs")));
    char *s = json_dumps(content, JSON_COMPACT);
    NB_ASSERT(s != NULL);
    free(s);
    (*(size_t *)ud)++;
    json_decref(content);
}

static void one(nbwidget_t *w, json_t *m)
{
    const char *type = json_string_value(json_array_get(m, 0));
    json_t *content = json_array_get(m, 1);
    const char *parent = json_string_value(json_array_get(m, 2));
    json_int_t nb = json_integer_value(json_array_get(m, 3));
    if (!type || !json_is_object(content)) return;
    if (!strncmp(type, "comm_", 5)) {
        kbytes_t bufs[4];
        size_t n = nb > 0 && nb <= 4 ? (size_t)nb : 0;
        for (size_t i = 0; i < n; i++) {
            bufs[i].data = xmalloc(i + 1);
            memset(bufs[i].data, 'a' + (int)i, i + 1);
            bufs[i].len = i + 1;
        }
        nbwidget_comm(w, type, content, n ? bufs : NULL, n);
        for (size_t i = 0; i < n; i++) free(bufs[i].data);
        return;
    }
    nbwidget_out_t *cap = nbwidget_capture(w, parent);
    if (!cap || !strcmp(type, "status") || !strcmp(type, "execute_input")) return;
    if (!strcmp(type, "clear_output")) nbwidget_clear(w, cap, json_is_true(json_object_get(content, "wait")));
    else nbwidget_output(w, cap, type, content);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nbwidget_t *w = nbwidget_new(size & 1 ? 64 : 0);   /* a small output cap, or none */
    const char *p = (const char *)data, *end = p + size;
    size_t nmsg = 0, nsent = 0;
    while (p < end && nmsg < 256) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        json_t *m = json_loadb(p, (size_t)(e - p), 0, NULL);
        if (json_is_array(m)) {
            one(w, m);
            if (++nmsg % 4 == 0) nbwidget_sync(w, sent, &nsent);
        }
        json_decref(m);
        p = nl ? nl + 1 : end;
    }
    nbwidget_sync(w, sent, &nsent);
    json_t *nb = json_pack("{s:[], s:{}}", "cells", "metadata");
    nbwidget_save(w, nb);
    char *s = json_dumps(nb, JSON_COMPACT);
    NB_ASSERT(s != NULL);
    json_t *back = json_loads(s, 0, NULL);
    NB_ASSERT(back != NULL);
    json_decref(back);
    free(s);
    json_decref(nb);
    nbwidget_free(w);
    return 0;
}
