/*
 * libFuzzer harness for proxy_ws_track, the websocket frame-header tracker
 * the proxy runs on spliced bytes (it tells data frames from pings for the
 * hub's activity).  Invariants beyond "no crash": the counts do not depend
 * on how the stream is cut into reads (whole, split at a point the first
 * byte chooses, byte by byte), and they equal those of a plain reference
 * walk over the whole buffer; after a complete frame nothing is pending.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference: frames whose header is complete in d[0..n). */
static void reference(const uint8_t *d, size_t n, uint64_t *data_frames, uint64_t *control, int *broken)
{
    size_t i = 0;
    *data_frames = *control = 0;
    *broken = 0;
    while (i + 2 <= n) {
        unsigned l7 = d[i + 1] & 0x7f;
        size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((d[i + 1] & 0x80) ? 4 : 0);
        if (i + hl > n) return;
        uint64_t plen = l7;
        if (l7 == 126) plen = ((uint64_t)d[i + 2] << 8) | d[i + 3];
        if (l7 == 127) {
            plen = 0;
            for (int k = 0; k < 8; k++) plen = (plen << 8) | d[i + 2 + k];
            if (plen >> 63) {
                *broken = 1;
                return;
            }
        }
        unsigned op = d[i] & 0x0f;
        if (op <= 2) (*data_frames)++;
        else if (op >= 8 && op <= 10) (*control)++;
        else {
            *broken = 1;
            return;
        }
        if (plen > n - i - hl) return;
        i += hl + (size_t)plen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    size_t cut = data[0] % size;
    const uint8_t *s = data + 1;
    size_t n = size - 1;
    if (cut > n) cut = n;

    struct proxy_wsframes a = { 0 }, b = { 0 }, c = { 0 };
    uint64_t da = proxy_ws_track(&a, s, n);
    uint64_t db = proxy_ws_track(&b, s, cut) + proxy_ws_track(&b, s + cut, n - cut);
    uint64_t dc = 0;
    for (size_t i = 0; i < n; i++) dc += proxy_ws_track(&c, s + i, 1);
    NB_ASSERT(da == a.data_frames && db == b.data_frames && dc == c.data_frames);
    NB_ASSERT(a.data_frames == b.data_frames && b.data_frames == c.data_frames);
    NB_ASSERT(a.control_frames == b.control_frames && b.control_frames == c.control_frames);
    NB_ASSERT(a.broken == b.broken && b.broken == c.broken);
    NB_ASSERT(a.skip == b.skip && a.hlen == b.hlen && b.skip == c.skip && b.hlen == c.hlen);
    NB_ASSERT(a.hlen <= sizeof a.hdr);        /* 14: a complete header left by a broken frame */

    uint64_t rd, rc;
    int rb;
    reference(s, n, &rd, &rc, &rb);
    NB_ASSERT(rd == a.data_frames && rc == a.control_frames && rb == a.broken);
    return 0;
}
