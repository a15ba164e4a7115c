/*
 * lockout — failed logins counted per (user name, client address), a
 * growing wait after too many, and a cap on failed logins for the whole
 * server.
 *
 * Per pair.  After LOCKOUT_FREE consecutive failures for a name from one
 * address, further attempts for that name from that address are refused
 * without checking the password, for a wait that starts at LOCKOUT_FIRST_S
 * seconds and doubles with each failure after that, up to LOCKOUT_MAX_S; a
 * success resets the pair.  This is Keycloak's temporary lockout (and
 * NativeAuthenticator's) in small: argon2 alone still allowed ~30 guesses a
 * second against one account, day and night.  Counting per name alone let
 * anyone who knew a user name keep that user (the admin) locked out from
 * everywhere; keyed by the pair, a stranger locks out only themselves.
 * IPv6 clients are counted per /64 (the caller passes the prefix): one host
 * usually holds a whole /64, and counting each of its addresses apart would
 * hand it 2^64 fresh starts.  Behind a reverse proxy every client has the
 * proxy's address, and the pair degrades to the name alone (the old rule).
 *
 * Whole server.  A guesser with many addresses gets LOCKOUT_FREE tries per
 * name per address, so failures are also rate-limited globally: a GCRA
 * (a token bucket kept as one time stamp) lets LOCKOUT_GLOBAL_BURST
 * failures through at once and LOCKOUT_GLOBAL_PER_S per second after that;
 * beyond it every login is refused (429) until the bucket refills.  A
 * distributed guesser is held to LOCKOUT_GLOBAL_PER_S guesses a second over
 * all accounts (86,400 a day, against ~2.6 million at argon2's pace).  The
 * price: while someone keeps the limit saturated, legitimate logins are
 * refused too (everyone already logged in, and every API token, keeps
 * working).
 *
 * Names are counted whether or not the user exists, so a lockout tells
 * nothing about which names are real.  The table is bounded: LOCKOUT_SLOTS
 * entries (~200 bytes each, ~0.8 MB in all, allocated once) in sets of
 * LOCKOUT_WAYS chosen by a keyed hash of the pair; a new pair takes a free
 * way of its set, else the way of the set not locked and idle the longest,
 * else the one idle the longest.  Spraying names or addresses therefore
 * costs no memory, and each failure that could evict a lock passes the
 * global limit first.  In memory only: a restart forgets it.
 */
#ifndef NBHUB_LOCKOUT_H
#define NBHUB_LOCKOUT_H

#include <stdint.h>

#define LOCKOUT_FREE     5      /* failures of a pair before its first wait */
#define LOCKOUT_FIRST_S  30
#define LOCKOUT_MAX_S    900
#define LOCKOUT_SLOTS    4096   /* pairs remembered */
#define LOCKOUT_WAYS     8      /* a pair lives in one of the 8 slots of its set */
#define LOCKOUT_GLOBAL_BURST 20 /* failures the whole server may have at once */
#define LOCKOUT_GLOBAL_PER_S 1  /* and per second after that */

typedef struct lockout lockout_t;

lockout_t *lockout_new(void);
void       lockout_free(lockout_t *l);

/* 0 if name may try now from addr, else the seconds to wait (>= 1). */
int64_t lockout_wait_s(lockout_t *l, const char *name, const char *addr, int64_t now_us);
/* 0 if the server-wide failure budget allows a check now, else the
 * seconds until it does (>= 1). */
int64_t lockout_global_wait_s(lockout_t *l, int64_t now_us);
/* The outcome of a password check for name from addr.  A failure counts
 * for the pair and against the global budget. */
void    lockout_failed(lockout_t *l, const char *name, const char *addr, int64_t now_us);
void    lockout_succeeded(lockout_t *l, const char *name, const char *addr);

#endif
