/* lockout — see lockout.h.  A set-associative table: the keyed hash of
 * (name, address) picks a set of LOCKOUT_WAYS slots, searched linearly, so
 * a lookup touches 8 slots however many pairs are remembered, and a flood of
 * cheap refused attempts costs no scan of the whole table.  The hash key is
 * random per process, so nobody can aim many pairs at the set of a lock
 * they want evicted. */
#include "auth/lockout.h"
#include "util/xmalloc.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCKOUT_NAME_MAX 128   /* longer names share a slot by their prefix */
#define LOCKOUT_ADDR_MAX 48    /* an IPv6 text address fits (INET6_ADDRSTRLEN 46) */
#define LOCKOUT_SETS (LOCKOUT_SLOTS / LOCKOUT_WAYS)
#define US 1000000LL

struct lockout_slot {
    char     name[LOCKOUT_NAME_MAX];
    char     addr[LOCKOUT_ADDR_MAX];
    unsigned failures;         /* 0 = free slot */
    int64_t  last_us;          /* the last failure */
    int64_t  until_us;         /* attempts refused before this */
};

struct lockout {
    uint64_t key;              /* hash key, random per process */
    int64_t  tat_us;           /* GCRA: when the global budget is whole again */
    struct lockout_slot slot[LOCKOUT_SLOTS];
};

lockout_t *lockout_new(void)
{
    lockout_t *l = xcalloc(1, sizeof *l);
    if (RAND_bytes((unsigned char *)&l->key, sizeof l->key) != 1)
        l->key = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)l;
    return l;
}

void lockout_free(lockout_t *l) { free(l); }

/* FNV-1a over the key, the name (as stored: its prefix) and the address,
 * then a 64-bit finaliser so the low bits (the set) depend on every byte. */
static size_t lockout_set(const lockout_t *l, const char *name, const char *addr)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ l->key;
    size_t n = strnlen(name, LOCKOUT_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)name[i]) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;   /* a byte no name holds: "ab"+"c" != "a"+"bc" */
    n = strnlen(addr, LOCKOUT_ADDR_MAX - 1);
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)addr[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t)(h % LOCKOUT_SETS) * LOCKOUT_WAYS;
}

static int lockout_is(const struct lockout_slot *s, const char *name, const char *addr)
{
    return s->failures && strncmp(s->name, name, LOCKOUT_NAME_MAX - 1) == 0 &&
           strncmp(s->addr, addr, LOCKOUT_ADDR_MAX - 1) == 0;
}

static struct lockout_slot *lockout_find(lockout_t *l, const char *name, const char *addr)
{
    struct lockout_slot *set = &l->slot[lockout_set(l, name, addr)];
    for (size_t i = 0; i < LOCKOUT_WAYS; i++)
        if (lockout_is(&set[i], name, addr)) return &set[i];
    return NULL;
}

int64_t lockout_wait_s(lockout_t *l, const char *name, const char *addr, int64_t now_us)
{
    struct lockout_slot *s = lockout_find(l, name, addr);
    if (!s || s->until_us <= now_us) return 0;
    return (s->until_us - now_us + US - 1) / US;
}

/* GCRA with interval T = 1 s / rate: each failure moves tat by T; a check
 * may run while tat is less than BURST intervals ahead of now. */
#define LOCKOUT_T_US (US / LOCKOUT_GLOBAL_PER_S)

int64_t lockout_global_wait_s(lockout_t *l, int64_t now_us)
{
    int64_t over = l->tat_us - now_us - (int64_t)(LOCKOUT_GLOBAL_BURST - 1) * LOCKOUT_T_US;
    return over > 0 ? (over + US - 1) / US : 0;
}

/* The slot a new pair takes in its set (see lockout.h for the order). */
static struct lockout_slot *lockout_victim(struct lockout_slot *set, int64_t now_us)
{
    struct lockout_slot *best = NULL;
    for (size_t i = 0; i < LOCKOUT_WAYS; i++) {
        struct lockout_slot *s = &set[i];
        if (!s->failures) return s;
        if (!best) {
            best = s;
            continue;
        }
        int locked = s->until_us > now_us, best_locked = best->until_us > now_us;
        if (locked != best_locked ? !locked : s->last_us < best->last_us) best = s;
    }
    return best;
}

void lockout_failed(lockout_t *l, const char *name, const char *addr, int64_t now_us)
{
    l->tat_us = (l->tat_us > now_us ? l->tat_us : now_us) + LOCKOUT_T_US;
    struct lockout_slot *s = lockout_find(l, name, addr);
    if (!s) {
        s = lockout_victim(&l->slot[lockout_set(l, name, addr)], now_us);
        memset(s, 0, sizeof *s);
        strncpy(s->name, name, LOCKOUT_NAME_MAX - 1);
        strncpy(s->addr, addr, LOCKOUT_ADDR_MAX - 1);
    }
    /* A pair quiet for longer than the longest wait starts over. */
    if (s->failures && now_us - s->last_us > (int64_t)LOCKOUT_MAX_S * US) s->failures = 0;
    s->failures++;
    s->last_us = now_us;
    if (s->failures >= LOCKOUT_FREE) {
        unsigned k = s->failures - LOCKOUT_FREE;
        int64_t wait = k >= 16 ? LOCKOUT_MAX_S : (int64_t)LOCKOUT_FIRST_S << k;
        if (wait > LOCKOUT_MAX_S) wait = LOCKOUT_MAX_S;
        s->until_us = now_us + wait * US;
    }
}

void lockout_succeeded(lockout_t *l, const char *name, const char *addr)
{
    struct lockout_slot *s = lockout_find(l, name, addr);
    if (s) memset(s, 0, sizeof *s);
}
