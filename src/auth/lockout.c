/* lockout — see lockout.h.  A flat array searched linearly: 1024 short
 * names compared once per login attempt, which argon2 makes ~30 a second
 * at most, is nothing; a hash table would only add code. */
#include "auth/lockout.h"
#include "util/xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define LOCKOUT_NAME_MAX 128   /* longer names share a slot by their prefix */

struct lockout_slot {
    char     name[LOCKOUT_NAME_MAX];
    unsigned failures;
    int64_t  last_us;          /* the last failure */
    int64_t  until_us;         /* attempts refused before this */
};

struct lockout {
    struct lockout_slot slot[LOCKOUT_SLOTS];
};

lockout_t *lockout_new(void) { return xcalloc(1, sizeof(lockout_t)); }
void lockout_free(lockout_t *l) { free(l); }

static struct lockout_slot *lockout_find(lockout_t *l, const char *name)
{
    for (size_t i = 0; i < LOCKOUT_SLOTS; i++)
        if (l->slot[i].failures && strncmp(l->slot[i].name, name, LOCKOUT_NAME_MAX - 1) == 0)
            return &l->slot[i];
    return NULL;
}

int64_t lockout_wait_s(lockout_t *l, const char *name, int64_t now_us)
{
    struct lockout_slot *s = lockout_find(l, name);
    if (!s || s->until_us <= now_us) return 0;
    return (s->until_us - now_us + 999999) / 1000000;
}

void lockout_failed(lockout_t *l, const char *name, int64_t now_us)
{
    struct lockout_slot *s = lockout_find(l, name);
    if (!s) {
        /* a free slot, else the one idle the longest */
        s = &l->slot[0];
        for (size_t i = 0; i < LOCKOUT_SLOTS && s->failures; i++)
            if (!l->slot[i].failures || l->slot[i].last_us < s->last_us) s = &l->slot[i];
        memset(s, 0, sizeof *s);
        strncpy(s->name, name, LOCKOUT_NAME_MAX - 1);
    }
    /* A name quiet for longer than the longest wait starts over. */
    if (s->failures && now_us - s->last_us > (int64_t)LOCKOUT_MAX_S * 1000000) s->failures = 0;
    s->failures++;
    s->last_us = now_us;
    if (s->failures >= LOCKOUT_FREE) {
        unsigned k = s->failures - LOCKOUT_FREE;
        int64_t wait = k >= 16 ? LOCKOUT_MAX_S : (int64_t)LOCKOUT_FIRST_S << k;
        if (wait > LOCKOUT_MAX_S) wait = LOCKOUT_MAX_S;
        s->until_us = now_us + wait * 1000000;
    }
}

void lockout_succeeded(lockout_t *l, const char *name)
{
    struct lockout_slot *s = lockout_find(l, name);
    if (s) memset(s, 0, sizeof *s);
}
