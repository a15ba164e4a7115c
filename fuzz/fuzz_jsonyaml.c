/*
 * libFuzzer harness for jsonyaml, the JSON -> YAML emitter.  The input is
 * YAML, loaded with yamljson to get arbitrary values (strings of every
 * shape, keys, numbers, nesting); the invariant is the emitter's promise:
 * the emitted text loads back to an equal value.  The only refusal allowed
 * is nesting beyond the limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/jsonyaml.h"
#include "util/xmalloc.h"
#include "util/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    nb_err_t err = { 0, "" };
    if (yamljson_parse((const char *)data, size, "fuzz", &v, &err) < 0) return 0;
    buf_t b = BUF_INIT;
    if (jsonyaml_emit(v, &b, &err) < 0) {
        NB_ASSERT(strstr(err.msg, "nested deeper") != NULL);
        NB_ASSERT(b.len == 0);
    } else {
        json_t *back = NULL;
        NB_ASSERT(yamljson_parse(b.data, b.len, "emitted", &back, &err) == 0);
        NB_ASSERT(json_equal(v, back));
        json_decref(back);
    }
    buf_free(&b);
    json_decref(v);
    return 0;
}
