/*
 * zmtp — the ZeroMQ wire protocol (ZMTP 3.0, RFC 23) as pure functions on
 * byte arrays: greeting, frames, and the NULL mechanism's READY command.
 *
 * Why nbhub speaks ZMTP itself instead of going through libzmq: libzmq moves
 * every message through its own I/O thread and wakes the caller's thread
 * with an eventfd, so each of the five messages of a cell cost two thread
 * wake-ups, and on the VMs we run on those wake-ups were half of nbhub's CPU
 * per cell (bench/RESULTS.md).  A Jupyter client needs very little of
 * ZeroMQ: it connects (never binds) DEALER, SUB and REQ sockets to one peer
 * each, with the NULL mechanism.  That much is this file plus zsock.c, and
 * it runs on the libuv loop like every other socket.  libzmq stays as the
 * reference the unit tests check us against.
 *
 * We announce version 3.0, so a libzmq peer (3.1) talks 3.0 to us:
 * subscriptions are messages whose first byte is 1, and no PING commands
 * arrive unless the peer enabled heartbeats (we answer them anyway).
 *
 * This file allocates nothing except through buf_t, which the caller owns.
 */
#ifndef NBHUB_ZMTP_H
#define NBHUB_ZMTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/buf.h"
#include "util/err.h"

#define ZMTP_GREETING_LEN 64
#define ZMTP_MORE    0x01
#define ZMTP_LONG    0x02
#define ZMTP_COMMAND 0x04
/* Largest frame we accept; a peer announcing more is broken or hostile. */
#define ZMTP_MAX_FRAME ((uint64_t)1 << 30)

struct zmtp_frame {
    int            flags;   /* ZMTP_MORE | ZMTP_COMMAND as received */
    const uint8_t *body;
    size_t         len;
};

/* Our greeting: version 3.0, mechanism NULL, as client. */
void zmtp_greeting(uint8_t out[ZMTP_GREETING_LEN]);
/* Check a peer's greeting: signature, major version >= 3, mechanism NULL. */
int zmtp_greeting_check(const uint8_t in[ZMTP_GREETING_LEN], nb_err_t *err);

/* Parse the frame at p[0..len).  Returns the bytes it takes (> 0), 0 when
 * more bytes are needed (*need, if not NULL, gets the total size once the
 * header is complete, else 0), or -EPROTO (bad flags) / -EMSGSIZE. */
ssize_t zmtp_frame_parse(const uint8_t *p, size_t len, struct zmtp_frame *f, size_t *need);
/* Write the header of a frame of len bytes into out; returns its size (2 or 9). */
size_t zmtp_frame_header(uint8_t out[9], int flags, uint64_t len);

/* Append a whole READY command frame: Socket-Type, and Identity if given. */
void zmtp_ready(buf_t *out, const char *socket_type, const char *identity);
/* Split a command frame's body into its name and data.  0 or -EPROTO. */
int zmtp_command(const struct zmtp_frame *f, const char **name, size_t *namelen,
                 const uint8_t **data, size_t *datalen);
/* Find a property in a READY command's data.  Returns 0 and sets *value and
 * *vlen, -ENOENT when absent, -EPROTO when the data is malformed. */
int zmtp_property(const uint8_t *data, size_t len, const char *name,
                  const uint8_t **value, size_t *vlen);
/* May a socket of type `ours` talk to one of type `theirs` (RFC 23 table)? */
int zmtp_compatible(const char *ours, const char *theirs, size_t theirs_len);

#endif
