/*
 * lockout — failed logins counted per user name, and a growing wait after
 * too many.
 *
 * After LOCKOUT_FREE consecutive failures for a name, every further attempt
 * is refused without checking the password for a wait that starts at
 * LOCKOUT_FIRST_S seconds and doubles with each failure after that, up to
 * LOCKOUT_MAX_S; a success resets the name.  This is Keycloak's temporary
 * lockout (and NativeAuthenticator's) in small: argon2 alone still allowed
 * ~30 guesses a second against one account, day and night.  The price is
 * the usual one: someone who knows a user name can keep that user waiting
 * (at most LOCKOUT_MAX_S after the last failed attempt).
 *
 * Names are counted whether or not the user exists, so a lockout tells
 * nothing about which names are real.  The table is bounded (LOCKOUT_SLOTS
 * names; the entry idle the longest is reused), so spraying random names
 * costs no memory, and in memory only: a restart forgets it.
 */
#ifndef NBHUB_LOCKOUT_H
#define NBHUB_LOCKOUT_H

#include <stdint.h>

#define LOCKOUT_FREE     5      /* failures before the first wait */
#define LOCKOUT_FIRST_S  30
#define LOCKOUT_MAX_S    900
#define LOCKOUT_SLOTS    1024

typedef struct lockout lockout_t;

lockout_t *lockout_new(void);
void       lockout_free(lockout_t *l);

/* 0 if name may try now, else the seconds to wait (>= 1). */
int64_t lockout_wait_s(lockout_t *l, const char *name, int64_t now_us);
/* The outcome of a password check for name. */
void    lockout_failed(lockout_t *l, const char *name, int64_t now_us);
void    lockout_succeeded(lockout_t *l, const char *name);

#endif
