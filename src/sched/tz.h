/*
 * tz — IANA time zones read straight from TZif files (RFC 8536), without
 * setenv("TZ")/tzset()/localtime(): those are process-global, and the
 * scheduler evaluates many zones at once.
 *
 * A tz_t is immutable once loaded, so one handle may be shared by any number
 * of schedules and threads.  There is no cache and no global state: tz_load
 * reads the file every time, and the caller keeps the handle as long as it
 * needs it (the scheduler keeps one per distinct zone name).
 *
 * Ownership: tz_load returns a new tz_t owned by the caller, released with
 * tz_free.  Every other function borrows its arguments.
 *
 * Time is int64_t seconds since 1970-01-01T00:00:00Z without leap seconds
 * ("UTC seconds").  A local wall-clock reading is also carried as int64_t
 * seconds: the UTC seconds of the same calendar reading as if the zone were
 * UTC ("wall seconds"); tz_days_from_civil helps build one.  Supported
 * instants are years 1 through 9999 (TZ_UTC_MIN..TZ_UTC_MAX).
 *
 * Local-to-UTC follows Python's zoneinfo (PEP 495): a wall-clock reading is
 * NORMAL (one instant), AMBIGUOUS (clocks went back, it happens twice) or in
 * a GAP (clocks went forward, it never happens).  fold = 0 resolves both
 * with the UTC offset in effect *before* the transition, fold = 1 with the
 * offset *after* it.  For AMBIGUOUS that is the first (0) or second (1)
 * occurrence; for a GAP, fold = 0 gives the instant as far after the
 * transition as the reading lies after the gap start (02:30 in Berlin's
 * spring-forward gap -> 03:30 CEST), fold = 1 the same distance before it
 * (-> 01:30 CET).
 */
#ifndef NBHUB_TZ_H
#define NBHUB_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct tz tz_t;

/* 0001-01-02T00:00:00Z .. 9999-12-30T23:59:59Z: keeps every local reading
 * (offsets are under 26 hours) inside years 1..9999. */
#define TZ_UTC_MIN (-62135510400LL)
#define TZ_UTC_MAX (253402127999LL)

#define TZ_ABBR_MAX 16

/* A broken-down local time.  tz_to_local fills every field; tz_from_local
 * reads only year..sec. */
struct tz_tm {
    int     year;       /* proleptic Gregorian, 1..9999 */
    int     month;      /* 1..12 */
    int     day;        /* 1..31 */
    int     hour;       /* 0..23 */
    int     min;        /* 0..59 */
    int     sec;        /* 0..59 */
    int     wday;       /* 0 = Sunday .. 6 = Saturday */
    int     yday;       /* 0..365 */
    int32_t utc_offset; /* seconds east of UTC (Berlin summer: 7200) */
    int     is_dst;
    char    abbr[TZ_ABBR_MAX]; /* "CEST", "+0545", "UTC" */
};

enum tz_local_kind {
    TZ_LOCAL_NORMAL    = 0,
    TZ_LOCAL_GAP       = 1,   /* never shown by the clock */
    TZ_LOCAL_AMBIGUOUS = 2,   /* shown twice */
};

/* Everything known about one wall-clock reading (see tz_resolve). */
struct tz_resolution {
    int     kind;        /* enum tz_local_kind */
    int64_t first;       /* the fold = 0 instant */
    int64_t second;      /* the fold = 1 instant (== first when NORMAL) */
    int64_t transition;  /* GAP/AMBIGUOUS: UTC instant the clock jumped */
};

/* Load zone `name` ("UTC", "Europe/Berlin") from $TZDIR, else
 * /usr/share/zoneinfo.  Names must be relative, made of [A-Za-z0-9._+-]
 * components, with no "." or ".." component, and must resolve (after
 * symlinks) to a TZif file inside that directory.  "UTC" works without
 * tzdata installed.  Errors: -EINVAL bad name, -ENOENT "unknown time zone
 * 'X'", -ENOTSUP leap-second ("right/") zones, -EBADMSG malformed file. */
int tz_load(const char *name, tz_t **out, nb_err_t *err);

/* Parse TZif bytes already in memory; `name` is only remembered for
 * tz_name and messages.  Same errors as tz_load's file checks. */
int tz_parse(const char *name, const void *data, size_t len, tz_t **out, nb_err_t *err);

void tz_free(tz_t *tz);

/* The name given to tz_load/tz_parse; valid as long as tz. */
const char *tz_name(const tz_t *tz);

/* UTC -> local.  0, or -ERANGE outside TZ_UTC_MIN..TZ_UTC_MAX. */
int tz_to_local(const tz_t *tz, int64_t utc, struct tz_tm *out);

/* Local -> UTC, fold as described above.  Returns the enum tz_local_kind
 * (>= 0) and sets *utc; -EINVAL for an impossible date or time (Feb 30,
 * hour 24, fold not 0/1), -ERANGE outside years 1..9999. */
int tz_from_local(const tz_t *tz, const struct tz_tm *local, int fold, int64_t *utc);

/* Classify wall seconds and give both folds and the transition instant.
 * 0, or -ERANGE when the result would leave the supported range. */
int tz_resolve(const tz_t *tz, int64_t wall, struct tz_resolution *r);

/* Smallest and largest UTC offset in effect at any instant >= from_utc:
 * the window in which a wall-clock reading can fall after from_utc. */
void tz_offset_bounds(const tz_t *tz, int64_t from_utc, int32_t *min_off, int32_t *max_off);

/* Days since 1970-01-01 for a proleptic Gregorian date and back. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void    tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int     tz_days_in_month(int64_t y, int m);

#endif
