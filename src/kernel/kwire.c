/*
 * kwire — Jupyter wire protocol framing, signing and verification.
 *
 * Signing is HMAC-SHA256 (RFC 2104) written over OpenSSL's SHA256_* calls:
 * kwire_key_new absorbs key^ipad and key^opad once, and a signature copies
 * those two states (plain structs) and hashes the frames — no allocation,
 * no provider dispatch.  Through EVP_MAC the same signature cost a context
 * re-init with two EVP_MD_CTX copies, each an allocation: 13 % of nbhub
 * run's CPU per cell.  SHA256_* are deprecated in OpenSSL 3 (not removed;
 * still the same assembly underneath), hence OPENSSL_SUPPRESS_DEPRECATED.
 *
 * Verification compares in constant time (CRYPTO_memcmp) so a peer cannot
 * learn the signature byte by byte from timing.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "kernel/kwire.h"
#include "util/hex.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/jwrite.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct kwire_key {
    SHA256_CTX inner, outer;   /* after key^ipad, key^opad */
    int        set;            /* 0: the key is empty, messages are unsigned */
};

kwire_key_t *kwire_key_new(const char *key, size_t keylen)
{
    kwire_key_t *k = xcalloc(1, sizeof *k);
    if (keylen == 0) return k;
    unsigned char block[64] = { 0 }, pad[64];
    if (keylen > sizeof block) SHA256((const unsigned char *)key, keylen, block);   /* RFC 2104: hash long keys */
    else memcpy(block, key, keylen);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, pad, sizeof pad);
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
    k->set = 1;
    return k;
}

void kwire_key_free(kwire_key_t *k)
{
    if (!k) return;
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

void kwire_sign(const kwire_key_t *k, const kframe_t frames[4], char out[65])
{
    out[0] = '\0';
    if (!k || !k->set) return;
    SHA256_CTX c = k->inner;
    for (int i = 0; i < 4; i++)
        SHA256_Update(&c, frames[i].data, frames[i].len);
    unsigned char mac[SHA256_DIGEST_LENGTH];
    SHA256_Final(mac, &c);
    c = k->outer;
    SHA256_Update(&c, mac, sizeof mac);
    SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof c);
    hex_encode(mac, sizeof mac, out);
}

static kbytes_t kwire_copy(const kframe_t *f)
{
    kbytes_t b = { xmalloc(f->len + 1), f->len };
    if (f->len) memcpy(b.data, f->data, f->len);
    b.data[f->len] = '\0';
    return b;
}

/* Parse one JSON frame that must hold an object ({} allowed). */
static json_t *kwire_json(const kframe_t *f, const char *what, nb_err_t *err)
{
    json_error_t je;
    json_t *v = jparse(f->data, f->len, 0, &je);
    if (!v) {
        err_set(err, -EBADMSG, "%s frame is not valid JSON: %s", what, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        err_set(err, -EBADMSG, "%s frame is not a JSON object", what);
        return NULL;
    }
    return v;
}

/* ---- a scanner for top-level string fields ------------------------------
 * Walks one JSON object's top level, skipping nested values, to find a key
 * whose value is a string without escapes.  Returns 1 (found: *v, *vlen),
 * 0 (absent), -1 (malformed, or the value needs unescaping: the caller
 * falls back to a full parse). */

static size_t kwire_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* s[i] == '"': index after the closing quote, or n+1 on error; *escaped
   is set if the string holds a backslash.  memchr finds each quote; a quote
   after an odd run of backslashes is escaped. */
static size_t kwire_skip_string(const char *s, size_t n, size_t i, int *escaped)
{
    size_t start = ++i;
    while (i < n) {
        const char *q = memchr(s + i, '"', n - i);
        if (!q) return n + 1;
        size_t j = (size_t)(q - s), bs = 0;
        while (j - bs > start && s[j - bs - 1] == '\\') bs++;
        if (!(bs & 1)) {
            if (memchr(s + start, '\\', j - start)) *escaped = 1;
            return j + 1;
        }
        i = j + 1;
    }
    return n + 1;
}

static size_t kwire_skip_value(const char *s, size_t n, size_t i)
{
    int esc = 0;
    if (i >= n) return n + 1;
    if (s[i] == '"') return kwire_skip_string(s, n, i, &esc);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') { i = kwire_skip_string(s, n, i, &esc); if (i > n) return i; continue; }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') { if (--depth == 0) return i + 1; }
            i++;
        }
        return n + 1;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
           s[i] != '\n' && s[i] != '\t' && s[i] != '\r') i++;
    return i;
}

/* What a scan returns for a wanted key's value. */
enum kwire_want {
    KWIRE_PLAIN,     /* a string without escapes, its bytes without the quotes */
    KWIRE_ANY,       /* the same, or any other value as its text (numbers) */
    KWIRE_LITERAL,   /* a string as its literal: quotes, escapes and all */
};

/* The values of up to 4 top-level keys in one pass: v[k] set (and vlen[k])
 * for each key found, NULL for the absent ones.  Returns 0, or -1 if the
 * object is malformed, a wanted value is not what `want` takes, or a wanted
 * key is there twice (the caller then parses the frame for real).  The
 * whole object is walked, so a repeated key is always seen. */
static int kwire_scan_keys_impl(const kframe_t *f, const char *const *keys, int nk,
                                const char **v, size_t *vlen, enum kwire_want want)
{
    const char *s = f->data;
    size_t n = f->len, klen[4];
    for (int k = 0; k < nk; k++) {
        v[k] = NULL;
        klen[k] = strlen(keys[k]);
    }
    size_t i = kwire_ws(s, n, 0);
    if (i >= n || s[i] != '{') return -1;
    i = kwire_ws(s, n, i + 1);
    if (i < n && s[i] == '}') return 0;
    while (i < n) {
        if (s[i] != '"') return -1;
        int esc = 0;
        size_t kend = kwire_skip_string(s, n, i, &esc);
        if (kend > n) return -1;
        int match = -1;
        for (int k = 0; k < nk && !esc; k++)
            if (kend - i - 2 == klen[k] && memcmp(s + i + 1, keys[k], klen[k]) == 0) match = k;
        /* a key given twice: jansson keeps the last, let it decide */
        if (match >= 0 && v[match]) return -1;
        i = kwire_ws(s, n, kend);
        if (i >= n || s[i] != ':') return -1;
        i = kwire_ws(s, n, i + 1);
        if (match >= 0 && want == KWIRE_LITERAL) {
            /* literal: a string with its quotes, escapes and all */
            if (i >= n || s[i] != '"') return -1;
            esc = 0;
            size_t vend = kwire_skip_string(s, n, i, &esc);
            if (vend > n) return -1;
            v[match] = s + i;
            vlen[match] = vend - i;
            i = vend;
        } else if (match >= 0 && want == KWIRE_ANY && i < n && s[i] != '"') {
            /* a number, true/false/null, object or array as its text */
            size_t vend = kwire_skip_value(s, n, i);
            if (vend > n) return -1;
            v[match] = s + i;
            vlen[match] = vend - i;
            i = vend;
        } else if (match >= 0) {
            if (i >= n || s[i] != '"') return -1;
            esc = 0;
            size_t vend = kwire_skip_string(s, n, i, &esc);
            if (vend > n || esc) return -1;
            v[match] = s + i + 1;
            vlen[match] = vend - i - 2;
            i = vend;
        } else {
            i = kwire_skip_value(s, n, i);
            if (i > n) return -1;
        }
        i = kwire_ws(s, n, i);
        if (i < n && s[i] == ',') { i = kwire_ws(s, n, i + 1); continue; }
        if (i < n && s[i] == '}') return 0;
        return -1;
    }
    return -1;
}

static int kwire_scan_keys(const kframe_t *f, const char *const *keys, int nk,
                           const char **v, size_t *vlen)
{
    return kwire_scan_keys_impl(f, keys, nk, v, vlen, KWIRE_PLAIN);
}

/* One key: 1 found (*v, *vlen), 0 absent, -1 malformed or not a plain string. */
static int kwire_scan(const kframe_t *f, const char *key, const char **v, size_t *vlen)
{
    const char *vv;
    if (kwire_scan_keys(f, &key, 1, &vv, vlen) < 0) return -1;
    *v = vv;
    return vv != NULL;
}

/* Copy a scanned field into the message's scratch space. */
static const char *kwire_keep(kmsg_t *m, size_t *used, const char *v, size_t vlen)
{
    if (*used + vlen + 1 > sizeof m->scratch) return NULL;
    char *d = m->scratch + *used;
    memcpy(d, v, vlen);
    d[vlen] = '\0';
    *used += vlen + 1;
    return d;
}

/* Routing fields without a tree; 0, or -1 to ask for the full parse. */
static int kwire_route_lazy(kmsg_t *m)
{
    static const char *const hk[3] = { "msg_type", "msg_id", "date" }, *pk = "msg_id";
    const char *v[3];
    size_t vlen[3], used = 0;
    if (kwire_scan_keys(&m->raw[0], hk, 3, v, vlen) < 0 || !v[0] || !v[1]) return -1;
    if (!(m->msg_type = kwire_keep(m, &used, v[0], vlen[0])) ||
        !(m->msg_id = kwire_keep(m, &used, v[1], vlen[1])) ||
        (v[2] && !(m->date = kwire_keep(m, &used, v[2], vlen[2]))))
        return -1;
    if (kwire_scan_keys(&m->raw[1], &pk, 1, v, vlen) < 0) return -1;
    if (v[0] && !(m->parent_id = kwire_keep(m, &used, v[0], vlen[0]))) return -1;
    return 0;
}

static int kwire_parse_impl(const kwire_key_t *k, const kframe_t *frames, size_t nframes,
                            int lazy, kmsg_t **out, nb_err_t *err)
{
    size_t d = 0;
    while (d < nframes && !(frames[d].len == strlen(KWIRE_DELIM) &&
                            memcmp(frames[d].data, KWIRE_DELIM, frames[d].len) == 0))
        d++;
    if (d == nframes)
        return err_set(err, -EBADMSG, "no <IDS|MSG> delimiter in %zu frames", nframes);
    if (nframes - d < 6)
        return err_set(err, -EBADMSG, "%zu frames after the delimiter, need at least 6", nframes - d);

    const kframe_t *sig = &frames[d + 1];
    const kframe_t *js = &frames[d + 2];
    if (k && k->set) {
        char want[65];
        kwire_sign(k, js, want);
        if (sig->len != 64 || CRYPTO_memcmp(want, sig->data, 64) != 0)
            return err_set(err, -EPERM, "invalid HMAC signature");
    }

    /* Zeroed up to the scratch space, which is written before it is read:
     * five messages a cell, and the 256 bytes were most of calloc's work. */
    kmsg_t *m = xmalloc(sizeof *m);
    memset(m, 0, offsetof(kmsg_t, scratch));
    for (int i = 0; i < 4; i++) m->raw[i] = js[i];
    m->content_raw = js[3];
    if (!lazy || kwire_route_lazy(m) < 0) {
        /* Eager parse (or the scanner could not decide): build the trees and
         * take the routing fields from them. */
        static const char *names[4] = { "header", "parent_header", "metadata", "content" };
        json_t **slots[4] = { &m->header, &m->parent_header, &m->metadata, &m->content };
        for (int i = 0; i < (lazy ? 2 : 4); i++) {
            if (!(*slots[i] = kwire_json(&js[i], names[i], err))) {
                kmsg_free(m);
                return err ? err->code : -EBADMSG;
            }
        }
        m->msg_type = json_string_value(json_object_get(m->header, "msg_type"));
        m->msg_id = json_string_value(json_object_get(m->header, "msg_id"));
        m->date = json_string_value(json_object_get(m->header, "date"));
        m->parent_id = json_string_value(json_object_get(m->parent_header, "msg_id"));
    }
    if (!m->msg_type || !m->msg_id) {
        kmsg_free(m);
        return err_set(err, -EBADMSG, "header lacks msg_type or msg_id");
    }
    if (d && !lazy) {   /* lazy: a client routes by msg ids, never by identities */
        m->nids = d;
        m->ids = xcalloc(d, sizeof *m->ids);
        for (size_t i = 0; i < d; i++) m->ids[i] = kwire_copy(&frames[i]);
    }
    size_t nb = nframes - d - 6;
    if (nb) {
        m->nbuffers = nb;
        m->buffers = xcalloc(nb, sizeof *m->buffers);
        for (size_t i = 0; i < nb; i++) m->buffers[i] = kwire_copy(&frames[d + 6 + i]);
    }
    *out = m;
    return 0;
}

int kwire_parse(const kwire_key_t *k, const kframe_t *frames, size_t nframes,
                kmsg_t **out, nb_err_t *err)
{
    return kwire_parse_impl(k, frames, nframes, 0, out, err);
}

int kwire_parse_lazy(const kwire_key_t *k, const kframe_t *frames, size_t nframes,
                     kmsg_t **out, nb_err_t *err)
{
    return kwire_parse_impl(k, frames, nframes, 1, out, err);
}

/* Parse raw[i] into *slot on first use (a cache fill, not a visible change). */
static json_t *kmsg_lazy(const kmsg_t *cm, json_t *const *cslot, int i)
{
    json_t **slot = (json_t **)cslot;
    if (!*slot) {
        *slot = cm->raw[i].data ? kwire_json(&cm->raw[i], "frame", NULL) : NULL;
        if (!*slot) *slot = json_object();
    }
    return *slot;
}

/* Frame 0..3 for the scanner, or NULL: no such frame, or its tree is
 * built already (then the tree is the answer). */
static const kframe_t *kmsg_scannable(const kmsg_t *m, int frame)
{
    json_t *const slots[4] = { m->header, m->parent_header, m->metadata, m->content };
    return frame >= 0 && frame < 4 && m->raw[frame].data && !slots[frame] ? &m->raw[frame] : NULL;
}

/* Frame 0..3 as a tree (parsed on first use). */
static json_t *kmsg_tree(const kmsg_t *m, int frame)
{
    return frame == 0 ? kmsg_header(m) : frame == 1 ? kmsg_parent(m)
         : frame == 2 ? kmsg_metadata(m) : kmsg_content(m);
}

int kmsg_scan(const kmsg_t *m, int frame, const char *key, char *out, size_t outlen)
{
    const char *v;
    size_t vlen;
    const kframe_t *f = kmsg_scannable(m, frame);
    int r = f ? kwire_scan(f, key, &v, &vlen) : -1;
    if (r < 0) {   /* tree already built, or the scanner cannot decide */
        json_t *j = json_object_get(kmsg_tree(m, frame), key);
        if (!json_is_string(j)) return 0;
        v = json_string_value(j);
        vlen = json_string_length(j);
    } else if (r == 0) {
        return 0;
    }
    if (vlen + 1 > outlen) return -1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 1;
}

int kmsg_scan_literals(const kmsg_t *m, int frame, const char *const *keys, int nk, kframe_t *lits)
{
    const kframe_t *f = kmsg_scannable(m, frame);
    const char *v[4];
    size_t vlen[4];
    if (nk < 1 || nk > 4 || !f || kwire_scan_keys_impl(f, keys, nk, v, vlen, KWIRE_LITERAL) < 0)
        return -1;
    for (int k = 0; k < nk; k++) {
        lits[k].data = v[k];
        lits[k].len = v[k] ? vlen[k] : 0;
    }
    return 0;
}

int kmsg_scan_int(const kmsg_t *m, int frame, const char *key, long long *out)
{
    const kframe_t *f = kmsg_scannable(m, frame);
    const char *v;
    size_t vlen;
    if (f && kwire_scan_keys_impl(f, &key, 1, &v, &vlen, KWIRE_ANY) == 0) {
        if (!v || v[-1] == '"') return 0;   /* absent, or a string (v is past its quote) */
        /* JSON's integer grammar exactly: -?(0|[1-9][0-9]*), nothing after;
         * anything else (a real, a literal, a long number) asks the tree. */
        size_t i = *v == '-';
        int ok = i < vlen && vlen - i <= 18 && (v[i] != '0' || vlen - i == 1);
        long long r = 0;
        for (; ok && i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9') ok = 0;
            else r = r * 10 + (v[i] - '0');
        }
        if (ok) {
            *out = *v == '-' ? -r : r;
            return 1;
        }
    }
    json_t *j = json_object_get(kmsg_tree(m, frame), key);
    if (!json_is_integer(j)) return 0;
    *out = json_integer_value(j);
    return 1;
}

json_t *kmsg_header(const kmsg_t *m) { return kmsg_lazy(m, &m->header, 0); }
json_t *kmsg_parent(const kmsg_t *m) { return kmsg_lazy(m, &m->parent_header, 1); }
json_t *kmsg_metadata(const kmsg_t *m) { return kmsg_lazy(m, &m->metadata, 2); }
json_t *kmsg_content(const kmsg_t *m) { return kmsg_lazy(m, &m->content, 3); }

/* Random bytes from the kernel's CSPRNG.  getrandom, not RAND_bytes: the
 * first RAND_bytes initialises all of libcrypto (config file, providers,
 * cipher tables), a seventh of a one-cell run's CPU, and nothing else in
 * nbhub run needs it. */
static int kwire_random(void *p, size_t n)
{
    unsigned char *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return RAND_bytes(b, (int)n) == 1 ? 0 : -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

void kwire_new_key(char out[33])
{
    unsigned char r[16];
    /* no fallback: a key nobody can guess or none at all */
    NB_ASSERT(kwire_random(r, sizeof r) == 0);
    hex_encode(r, sizeof r, out);
}

/* Ids need uniqueness, not secrecy (jupyter_client's are uuid4s; nothing
 * trusts them).  RAND_bytes per id — a DRBG call behind a lock — was 9 % of
 * nbhub run's CPU per cell, so an id is splitmix64's finaliser (a bijection)
 * over a per-process counter plus a seed drawn once; a forked child draws
 * its own seed, or it would repeat its parent's ids. */
static struct {
    uint64_t seed[2];
    uint64_t next;
    int      seeded;
} kwire_ids;

static void kwire_ids_forked(void) { kwire_ids.seeded = 0; }

static uint64_t kwire_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void kwire_new_id(char out[33])
{
    if (!__atomic_load_n(&kwire_ids.seeded, __ATOMIC_ACQUIRE)) {
        static int atfork;
        if (!atfork) atfork = 1, pthread_atfork(NULL, NULL, kwire_ids_forked);
        if (kwire_random(kwire_ids.seed, sizeof kwire_ids.seed) < 0) {
            kwire_ids.seed[0] = (uint64_t)time_now_us();
            kwire_ids.seed[1] = (uint64_t)getpid();
        }
        __atomic_store_n(&kwire_ids.seeded, 1, __ATOMIC_RELEASE);
    }
    uint64_t c = __atomic_fetch_add(&kwire_ids.next, 1, __ATOMIC_RELAXED);
    uint64_t v[2] = { kwire_mix(kwire_ids.seed[0] + c), kwire_mix(kwire_ids.seed[1] ^ (c * 0x9e3779b97f4a7c15ULL)) };
    hex_encode((const unsigned char *)v, sizeof v, out);
}

static kbytes_t kwire_detach(buf_t *b)
{
    kbytes_t f;
    f.len = b->len;
    f.data = buf_detach(b);
    return f;
}

static kbytes_t kwire_dump(const json_t *v)
{
    buf_t b = BUF_INIT;
    if (v) jwrite_value(&b, v);
    else buf_append(&b, "{}", 2);
    return kwire_detach(&b);
}

/* The frames around four JSON texts (taken over): identities, delimiter,
 * signature, the texts. */
static void kwire_frames(const kwire_key_t *k, const kbytes_t *ids, size_t nids,
                         const kbytes_t js[4], kbytes_t **frames, size_t *nframes)
{
    size_t n = nids + 6;
    kbytes_t *f = xcalloc(n, sizeof *f);
    for (size_t i = 0; i < nids; i++) {
        kframe_t src = { ids[i].data, ids[i].len };
        f[i] = kwire_copy(&src);
    }
    f[nids].data = xstrdup(KWIRE_DELIM);
    f[nids].len = strlen(KWIRE_DELIM);
    kframe_t view[4];
    for (int i = 0; i < 4; i++) {
        f[nids + 2 + i] = js[i];
        view[i].data = js[i].data;
        view[i].len = js[i].len;
    }
    char sig[65];
    kwire_sign(k, view, sig);
    f[nids + 1].data = xstrdup(sig);
    f[nids + 1].len = strlen(sig);
    *frames = f;
    *nframes = n;
}

int kwire_build(const kwire_key_t *k, const kbytes_t *ids, size_t nids,
                const json_t *header, const json_t *parent, const json_t *metadata,
                const json_t *content, kbytes_t **frames, size_t *nframes)
{
    kbytes_t js[4] = { kwire_dump(header), kwire_dump(parent), kwire_dump(metadata), kwire_dump(content) };
    kwire_frames(k, ids, nids, js, frames, nframes);
    return 0;
}

void kwire_request(const kwire_key_t *k, const char *session, const char *msg_type,
                   const json_t *parent, const json_t *content, char msg_id[33],
                   kbytes_t **frames, size_t *nframes)
{
    kwire_request_text(k, session, msg_type, parent, kwire_dump(content), msg_id, frames, nframes);
}

void kwire_request_text(const kwire_key_t *k, const char *session, const char *msg_type,
                        const json_t *parent, kbytes_t content, char msg_id[33],
                        kbytes_t **frames, size_t *nframes)
{
    /* The header is written as text: through json_pack and a dump it was a
       fifth of the cost of sending a cell. */
    char date[40];
    kwire_new_id(msg_id);
    time_iso8601_utc(time_now_us(), date, sizeof date, 1);
    buf_t h = BUF_INIT;
    buf_reserve(&h, 192);
    buf_append(&h, "{\"msg_id\":\"", 11);
    buf_append(&h, msg_id, 32);
    buf_append(&h, "\",\"session\":", 12);
    jwrite_string(&h, session, strlen(session));
    buf_puts(&h, ",\"username\":\"nbhub\",\"date\":");
    jwrite_string(&h, date, strlen(date));
    buf_puts(&h, ",\"msg_type\":");
    jwrite_string(&h, msg_type, strlen(msg_type));
    buf_puts(&h, ",\"version\":\"" KWIRE_PROTOCOL_VERSION "\"}");
    kbytes_t js[4] = { kwire_detach(&h), kwire_dump(parent), kwire_dump(NULL), content };
    kwire_frames(k, NULL, 0, js, frames, nframes);
}

void kwire_frames_free(kbytes_t *frames, size_t nframes)
{
    for (size_t i = 0; i < nframes; i++) free(frames[i].data);
    free(frames);
}

void kmsg_free(kmsg_t *m)
{
    if (!m) return;
    json_decref(m->header);
    json_decref(m->parent_header);
    json_decref(m->metadata);
    json_decref(m->content);
    for (size_t i = 0; i < m->nids; i++) free(m->ids[i].data);
    free(m->ids);
    for (size_t i = 0; i < m->nbuffers; i++) free(m->buffers[i].data);
    free(m->buffers);
    free(m);
}
