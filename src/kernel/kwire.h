/*
 * kwire — the Jupyter wire protocol (messaging spec 5.x), without sockets.
 *
 * A message on the wire is a multipart ZeroMQ message:
 *     [ids..., "<IDS|MSG>", hmac_hex, header, parent_header, metadata, content, buffers...]
 * The HMAC-SHA256 is computed with the connection key over the four JSON
 * frames, in that order.  kwire_parse verifies it (constant time) and drops
 * forged or malformed messages with a reason; kwire_build signs and
 * serialises.  This file knows nothing about ZeroMQ so it can be unit-tested
 * and fuzzed on plain byte arrays; kclient.c moves the frames.
 *
 * Ownership: a kmsg_t owns its JSON references and byte copies; kmsg_free
 * releases everything.  kwire_key_t is created once per connection.
 */
#ifndef NBHUB_KWIRE_H
#define NBHUB_KWIRE_H

#include <jansson.h>
#include <stddef.h>
#include "util/err.h"

#define KWIRE_DELIM "<IDS|MSG>"
#define KWIRE_PROTOCOL_VERSION "5.3"

typedef struct kframe {
    const void *data;
    size_t      len;
} kframe_t;

typedef struct kbytes {
    char  *data;
    size_t len;
} kbytes_t;

typedef struct kmsg {
    kbytes_t *ids;          /* routing identities before the delimiter */
    size_t    nids;
    json_t   *header;       /* eager parse: objects; lazy parse: use the accessors */
    json_t   *parent_header;
    json_t   *metadata;
    json_t   *content;
    kframe_t  raw[4];       /* the four JSON frames; valid only inside the delivery callback */
    kframe_t  content_raw;  /* = raw[3] */
    kbytes_t *buffers;      /* extra binary frames */
    size_t    nbuffers;
    const char *msg_type;   /* routing fields, always set after parsing */
    const char *msg_id;
    const char *parent_id;  /* NULL if the parent header has none */
    const char *date;       /* header.date, or NULL */
    char        scratch[256]; /* holds the routing fields in lazy mode */
} kmsg_t;

typedef struct kwire_key kwire_key_t;

/* A signing context for a connection key (scheme hmac-sha256).  An empty key
 * disables signing and verification, as Jupyter specifies. */
kwire_key_t *kwire_key_new(const char *key, size_t keylen);
void         kwire_key_free(kwire_key_t *k);

/* Hex HMAC-SHA256 of the four frames into out[65]; "" when the key is empty. */
void kwire_sign(const kwire_key_t *k, const kframe_t frames[4], char out[65]);

/* Parse and verify received frames.  Returns 0 and a new message, or
 * -EBADMSG (malformed) / -EPERM (bad signature) with a reason in err. */
int kwire_parse(const kwire_key_t *k, const kframe_t *frames, size_t nframes,
                kmsg_t **out, nb_err_t *err);
/* The same, but no JSON tree is built: the routing fields (msg_type, msg_id,
 * parent msg_id, date) are found by a scanner of top-level keys, and the
 * frames are parsed only if an accessor asks (kmsg_header, kmsg_content...).
 * Most iopub traffic is routed and dropped without ever being parsed.
 * The routing identities are not kept (nids is 0): a client routes by msg
 * ids, and iopub's topic frames cost an allocation per message. */
int kwire_parse_lazy(const kwire_key_t *k, const kframe_t *frames, size_t nframes,
                     kmsg_t **out, nb_err_t *err);

/* Serialise a message for sending: fills frames with freshly allocated
 * bytes ("<IDS|MSG>", signature, 4 JSON frames; identities first if any).
 * *nframes gets the count; free with kwire_frames_free.  Steals nothing:
 * the JSON arguments stay owned by the caller; NULL ones are sent as {}. */
int kwire_build(const kwire_key_t *k, const kbytes_t *ids, size_t nids,
                const json_t *header, const json_t *parent, const json_t *metadata,
                const json_t *content, kbytes_t **frames, size_t *nframes);
/* The same for a client's request: a fresh header {msg_id, session,
 * username, date, msg_type, version} (its msg_id into msg_id), no
 * identities, empty metadata. */
void kwire_request(const kwire_key_t *k, const char *session, const char *msg_type,
                   const json_t *parent, const json_t *content, char msg_id[33],
                   kbytes_t **frames, size_t *nframes);
/* The same with the content given as JSON text, taken over (malloc'd):
 * for a request sent often, built without a tree (kmgr_execute). */
void kwire_request_text(const kwire_key_t *k, const char *session, const char *msg_type,
                        const json_t *parent, kbytes_t content, char msg_id[33],
                        kbytes_t **frames, size_t *nframes);
void kwire_frames_free(kbytes_t *frames, size_t nframes);

void kmsg_free(kmsg_t *m);

/* A top-level string field of frame 0..3 (header, parent, metadata,
 * content) copied into out, without building a tree when possible.
 * Returns 1 found, 0 absent or not a string, -1 too long for out. */
int kmsg_scan(const kmsg_t *m, int frame, const char *key, char *out, size_t outlen);
/* The string literals (quotes and escapes included, for jparse_string) of
 * up to 4 top-level keys of frame 0..3, without a tree: 0 and lits[k]
 * (data NULL for an absent key), or -1 when the scanner cannot decide (a
 * value is not a string, a key is there twice, the frame is malformed, or
 * its tree was already built): ask the tree then. */
int kmsg_scan_literals(const kmsg_t *m, int frame, const char *const *keys, int nk, kframe_t *lits);
/* The same for an integer field: 1 and *out if it is one, else 0. */
int kmsg_scan_int(const kmsg_t *m, int frame, const char *key, long long *out);

/* Lazily parsed frames (borrowed; an empty object if a frame is invalid). */
json_t *kmsg_header(const kmsg_t *m);
json_t *kmsg_parent(const kmsg_t *m);
json_t *kmsg_metadata(const kmsg_t *m);

/* The content object, parsed from content_raw on first use (a flood of big
 * stream messages can then be dropped without parsing).  Returns an empty
 * object if the frame is not a JSON object; borrowed reference.  Only valid
 * inside the delivery callback unless kwire_parse was asked to parse eagerly. */
json_t *kmsg_content(const kmsg_t *m);

/* A unique 32-hex-digit id (uuid4-like, without dashes) into out[33]:
 * message, session and cell ids.  Cheap and unique, not secret. */
void kwire_new_id(char out[33]);
/* 32 hex digits from the kernel's CSPRNG (getrandom) into out[33]: for secrets,
 * such as a kernel's HMAC key. */
void kwire_new_key(char out[33]);

#endif
