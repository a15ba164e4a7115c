/* libFuzzer harness for the ZMTP codec: the input is a byte stream as a
 * peer would send it — a greeting, then frames; commands are split into
 * name and data and READY properties are looked up, as zsock.c does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/zmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err_t err;
    if (size < ZMTP_GREETING_LEN) return 0;
    (void)zmtp_greeting_check(data, &err);   /* judged, but parse on regardless */
    size_t off = ZMTP_GREETING_LEN;
    while (off < size) {
        struct zmtp_frame f;
        size_t need;
        ssize_t used = zmtp_frame_parse(data + off, size - off, &f, &need);
        if (used <= 0) break;
        if (f.flags & ZMTP_COMMAND) {
            const char *name;
            size_t nl, dl, vl;
            const uint8_t *d, *v;
            if (zmtp_command(&f, &name, &nl, &d, &dl) == 0 &&
                zmtp_property(d, dl, "Socket-Type", &v, &vl) == 0)
                (void)zmtp_compatible("DEALER", (const char *)v, vl);
        }
        off += (size_t)used;
    }
    return 0;
}
