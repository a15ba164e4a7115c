/* libFuzzer harness for the renderer's parsers: the input goes through the
 * ANSI colour parser and through markdown with math protection (the first
 * byte picks which), so both state machines see arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notebook/nbhtml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    buf_t b = BUF_INIT;
    if (data[0] & 1) {
        nbhtml_ansi(&b, (const char *)data + 1, size - 1);
    } else {
        /* markdown text is a C string in notebooks (no NUL inside) */
        char *s = strndup((const char *)data + 1, size - 1);
        nbhtml_markdown(&b, s, strlen(s), NULL);
        free(s);
    }
    buf_free(&b);
    return 0;
}
