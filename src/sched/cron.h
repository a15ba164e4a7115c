/*
 * cron — when a scheduled flow fires.
 *
 * Three spellings, one type:
 *   - 5-field cron: "minute hour day-of-month month day-of-week" with `*`,
 *     lists, ranges, steps ("*\/15", "1-10/2", and "5/15" meaning 5-59/15
 *     as croniter reads it; Vixie cron rejects that form), names JAN..DEC
 *     and SUN..SAT in any case, 0 and 7 both Sunday.  As in Vixie cron,
 *     when day-of-month and day-of-week are both restricted a day matches
 *     if EITHER does; a field counts as unrestricted when it starts with
 *     `*` (so "*\/2" is unrestricted, again exactly like Vixie cron).
 *   - macros @yearly/@annually, @monthly, @weekly, @daily/@midnight, @hourly.
 *   - intervals "30s", "5m", "2h", "1d", "1h30m" (units d h m s, each at
 *     most once, largest first; also "@every 5m").
 *
 * Ownership: cron_parse returns a new cron_t owned by the caller, freed
 * with cron_free; cron_describe returns a new string (free()).  A cron_t is
 * immutable apart from cron_set_anchor and may be shared read-only.
 *
 * DST policy (cron_next).  Cron fields are matched against the wall clock
 * of the schedule's zone, then turned into instants:
 *   1. A wall-clock time the clock skips (spring forward) fires once, at the
 *      first instant after the gap: "30 2 * * *" in Berlin on the last
 *      Sunday of March fires at 03:00 CEST (01:00Z).  Several skipped times
 *      in one gap still fire once.
 *   2. A wall-clock time the clock shows twice (fall back) fires once, at
 *      its first occurrence: "30 2 * * *" in Berlin on the last Sunday of
 *      October fires at 02:30 CEST (00:30Z), not again at 02:30 CET.
 *   3. Exception for schedules whose hour field covers every hour ("*",
 *      "0-23", "*\/1"; e.g. hourly, "*\/15 * * * *"): they follow real time.
 *      They fire at both occurrences of a repeated hour and simply have no
 *      fires inside a gap (rule 1 does not apply), so "30 * * * *" fires
 *      once per real hour across both transitions, never twice in one hour
 *      and never skipping one.  (With 30-minute shifts such as
 *      Australia/Lord_Howe a wall-clock minute cannot stay an hour apart;
 *      fires are then 30 or 90 minutes apart around the change.)
 *   4. Intervals are pure UTC arithmetic: fires at anchor + k * period for
 *      every integer k, ignoring time zones and DST ("1d" is 86400 s and
 *      so drifts an hour against the wall clock across DST).  The anchor
 *      defaults to the Unix epoch (so "5m" fires on :00, :05, ... UTC);
 *      the scheduler sets a flow's start date with cron_set_anchor.
 * This is cronie's policy for fixed-time jobs (run skipped ones right after
 * the jump, don't repeat repeated ones) and wildcard-hour jobs (follow the
 * clock).  Airflow 2 (CronMixin over croniter + pendulum) differs:
 *   - it uses the same "hour field is *" test for its every-hour special
 *     case, and agrees with rule 3 when the shift is a whole hour;
 *   - other schedules go through make_aware(..., fold=1) and pendulum:
 *     a skipped time is shifted by the gap length (02:30 -> 03:30 CEST, we
 *     say 03:00) and a repeated time fires at its SECOND occurrence (02:30
 *     CET, 01:30Z; we say the first, 00:30Z).
 *   - timedelta schedules (DeltaDataIntervalTimetable) chain current + delta
 *     in UTC from start_date, firing at start_date + k * delta for k >= 1
 *     (a run waits for its data interval to end), and with catchup=False
 *     restart the chain at now - delta, off the start_date grid.  We keep
 *     the grid (k may be 0 or negative) and leave catch-up policy to the
 *     scheduler, which passes the instant it wants the next fire after.
 *
 * A schedule that can never fire ("0 0 30 2 *") makes cron_next return
 * -ENOENT "never fires"; the search is bounded to 400 years (a whole
 * Gregorian cycle, after which the calendar repeats).
 */
#ifndef NBHUB_CRON_H
#define NBHUB_CRON_H

#include <stdint.h>

#include "sched/tz.h"
#include "util/err.h"

typedef struct cron cron_t;

/* Parse expr.  0, or -EINVAL with a message naming the field and the
 * 1-based column of the offending character, e.g.
 * "field 2 (hour): 24 is out of range 0-23 at column 4". */
int cron_parse(const char *expr, cron_t **out, nb_err_t *err);

void cron_free(cron_t *c);

/* Interval schedules only: fires are anchor + k * period (UTC seconds);
 * the anchor is clamped to TZ_UTC_MIN..TZ_UTC_MAX.  Ignored for cron
 * schedules. */
void cron_set_anchor(cron_t *c, int64_t anchor_utc);

/* 1 for interval schedules, 0 for cron fields and macros. */
int cron_is_interval(const cron_t *c);

/* Interval length in seconds, 0 for cron schedules. */
int64_t cron_interval(const cron_t *c);

/* First fire strictly after after_utc, per the DST policy above; tz may be
 * NULL for intervals.  0; -ENOENT "never fires" (no fire within 400
 * years); -ERANGE when after_utc is outside TZ_UTC_MIN..TZ_UTC_MAX or the
 * answer would be; -EINVAL for a cron schedule without tz. */
int cron_next(const cron_t *c, const tz_t *tz, int64_t after_utc, int64_t *next_utc);

/* Same, with a message for the user in err. */
int cron_next_err(const cron_t *c, const tz_t *tz, int64_t after_utc, int64_t *next_utc,
                  nb_err_t *err);

/* English for the web UI: "every day at 05:00", "every 15 minutes",
 * "at 09:30 on Monday through Friday", "every 30 seconds". */
char *cron_describe(const cron_t *c);

#endif
