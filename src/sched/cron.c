/*
 * cron — parsing, next-fire search and English descriptions.
 *
 * A parsed schedule is five bitmasks (one bit per allowed value) or an
 * interval.  The next fire is found in two layers:
 *
 *   cron_next_wall: the first wall-clock minute >= w whose calendar fields
 *   match, skipping whole months, days and hours that cannot match.  This
 *   layer knows nothing about zones.
 *
 *   cron_next: turns wall-clock matches into instants with tz_resolve and
 *   the DST policy in cron.h, and keeps the smallest instant > after.
 *   Wall order and instant order disagree around a fall-back (02:45 CEST is
 *   before 02:30 CET), so we cannot stop at the first acceptable match.
 *   Instead we bound the search by offsets: after `after`, offsets lie in
 *   [lo, hi] (tz_offset_bounds), a wall reading w lands on instants in
 *   [w - hi, w - lo], so candidates start at after + lo and we may stop
 *   once w - hi exceeds the best instant found.  For a one-hour DST zone
 *   that window is one hour of extra matches.
 *
 * The gap rule's "first instant after the gap" is the transition instant
 * itself, which tz_resolve reports.
 */
#include "sched/cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/xmalloc.h"

#define CRON_SEARCH_YEARS 400
#define CRON_MAX_INTERVAL (3660LL * 86400) /* ten years and change */

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

struct cron_field_def {
    const char *name;
    int         lo, hi;
    const char *const *names; /* 3-letter names for lo..; NULL if none */
};

static const char *const cron_mon_names[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC" };
static const char *const cron_dow_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT" };

static const struct cron_field_def cron_fields[F_COUNT] = {
    { "minute", 0, 59, NULL },
    { "hour", 0, 23, NULL },
    { "day-of-month", 1, 31, NULL },
    { "month", 1, 12, cron_mon_names },
    { "day-of-week", 0, 7, cron_dow_names },
};

struct cron {
    int      interval;      /* 1: period/anchor; 0: bitmasks */
    int64_t  period, anchor;
    uint64_t bits[F_COUNT]; /* bit v set: value v allowed (dow 7 folded to 0) */
    int      star[F_COUNT]; /* field began with '*' (Vixie's DOM_STAR/DOW_STAR) */
};

/* ---- parsing ---------------------------------------------------------- */

struct cron_parser {
    const char *expr;
    nb_err_t   *err;
};

static int cron_col(const struct cron_parser *ps, const char *p)
{
    return (int)(p - ps->expr) + 1;
}

static int cron_field_err(const struct cron_parser *ps, int f, const char *at,
                          const char *msg)
{
    return err_set(ps->err, -EINVAL, "field %d (%s): %s at column %d", f + 1,
                   cron_fields[f].name, msg, cron_col(ps, at));
}

static int cron_unexpected(const struct cron_parser *ps, int f, const char *at)
{
    char what[8];
    if (isprint((unsigned char)*at))
        snprintf(what, sizeof what, "'%c'", *at);
    else
        snprintf(what, sizeof what, "0x%02x", (unsigned char)*at);
    char msg[40];
    snprintf(msg, sizeof msg, "unexpected character %s", what);
    return cron_field_err(ps, f, at, msg);
}

/* One value: digits or a name.  Advances *pp; 0 or -EINVAL. */
static int cron_value(const struct cron_parser *ps, int f, const char **pp, int *out)
{
    const struct cron_field_def *d = &cron_fields[f];
    const char *p = *pp;
    if (isdigit((unsigned char)*p)) {
        long v = 0;
        const char *s = p;
        while (isdigit((unsigned char)*p)) {
            if (v < 100000)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v < d->lo || v > d->hi) {
            char what[64];
            snprintf(what, sizeof what, "%.*s is out of range %d-%d",
                     (int)(p - s > 12 ? 12 : p - s), s, d->lo, d->hi);
            return cron_field_err(ps, f, s, what);
        }
        *out = (int)v;
        *pp = p;
        return 0;
    }
    if (isalpha((unsigned char)*p)) {
        if (!d->names)
            return cron_field_err(ps, f, p, "names are only allowed in month and day-of-week");
        const char *s = p;
        while (isalpha((unsigned char)*p))
            p++;
        int n = d->hi - d->lo + 1 - (f == F_DOW); /* 7 has no name of its own */
        for (int i = 0; i < n && p - s == 3; i++)
            if (strncasecmp(s, d->names[i], 3) == 0) {
                *out = d->lo + i;
                *pp = p;
                return 0;
            }
        char what[48];
        snprintf(what, sizeof what, "unknown name '%.*s'", (int)(p - s > 16 ? 16 : p - s), s);
        return cron_field_err(ps, f, s, what);
    }
    return cron_unexpected(ps, f, p);
}

/* One comma-separated field in [s, e). */
static int cron_field(const struct cron_parser *ps, int f, const char *s, const char *e,
                      cron_t *c)
{
    const struct cron_field_def *d = &cron_fields[f];
    const char *p = s;
    uint64_t bits = 0;
    c->star[f] = *s == '*';
    for (;;) {
        int lo, hi, step = 1, rc;
        int single = 0;
        if (*p == '*') {
            lo = d->lo;
            hi = d->hi == 7 ? 6 : d->hi;
            p++;
        } else {
            if ((rc = cron_value(ps, f, &p, &lo)) < 0)
                return rc;
            hi = lo;
            single = 1;
            if (*p == '-') {
                p++;
                if (p >= e)
                    return cron_field_err(ps, f, p - 1, "range has no end");
                const char *hs = p;
                if ((rc = cron_value(ps, f, &p, &hi)) < 0)
                    return rc;
                if (hi < lo) {
                    char what[48];
                    snprintf(what, sizeof what, "range %d-%d is backwards", lo, hi);
                    return cron_field_err(ps, f, hs, what);
                }
                single = 0;
            }
        }
        if (*p == '/') {
            const char *ss = ++p;
            if (!isdigit((unsigned char)*p))
                return p < e ? cron_unexpected(ps, f, p)
                             : cron_field_err(ps, f, p - 1, "step has no value");
            long v = 0;
            while (isdigit((unsigned char)*p)) {
                if (v < 100000)
                    v = v * 10 + (*p - '0');
                p++;
            }
            int maxstep = d->hi - d->lo + (f == F_DOW ? 0 : 1);
            if (v < 1 || v > maxstep) {
                char what[64];
                snprintf(what, sizeof what, "step %.*s is out of range 1-%d",
                         (int)(p - ss > 12 ? 12 : p - ss), ss, maxstep);
                return cron_field_err(ps, f, ss, what);
            }
            step = (int)v;
            if (single) /* "5/15" means 5-max/15, as croniter reads it */
                hi = d->hi == 7 ? 6 : d->hi;
        }
        for (int v = lo; v <= hi; v += step)
            bits |= 1ULL << (f == F_DOW && v == 7 ? 0 : v);
        if (p == e)
            break;
        if (*p != ',')
            return cron_unexpected(ps, f, p);
        p++;
        if (p == e)
            return cron_field_err(ps, f, p - 1, "list ends with ','");
    }
    c->bits[f] = bits;
    return 0;
}

/* "1h30m", "30s": units d h m s, largest first, each once. */
static int cron_parse_interval(const struct cron_parser *ps, const char *s, const char *e,
                               cron_t *c)
{
    static const char units[] = "dhms";
    static const int64_t mult[] = { 86400, 3600, 60, 1 };
    int next_unit = 0;
    int64_t total = 0;
    const char *p = s;
    while (p < e) {
        if (!isdigit((unsigned char)*p))
            return err_set(ps->err, -EINVAL, "interval: expected a number at column %d",
                           cron_col(ps, p));
        int64_t v = 0;
        const char *ns = p;
        while (p < e && isdigit((unsigned char)*p)) {
            if (v <= CRON_MAX_INTERVAL)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (p == e)
            return err_set(ps->err, -EINVAL, "interval: number at column %d has no unit "
                           "(s, m, h or d)", cron_col(ps, ns));
        char u = (char)tolower((unsigned char)*p);
        const char *up = strchr(units, u);
        if (!up || u == '\0')
            return err_set(ps->err, -EINVAL, "interval: unknown unit '%c' at column %d "
                           "(use s, m, h or d)", *p, cron_col(ps, p));
        int ui = (int)(up - units);
        if (ui < next_unit)
            return err_set(ps->err, -EINVAL, "interval: unit '%c' at column %d is repeated "
                           "or out of order (write days, hours, minutes, seconds)",
                           *p, cron_col(ps, p));
        next_unit = ui + 1;
        if (v > CRON_MAX_INTERVAL / mult[ui] || total + v * mult[ui] > CRON_MAX_INTERVAL)
            return err_set(ps->err, -EINVAL, "interval: longer than 3660 days at column %d",
                           cron_col(ps, ns));
        total += v * mult[ui];
        p++;
    }
    if (total <= 0)
        return err_set(ps->err, -EINVAL, "interval: must be longer than zero at column %d",
                       cron_col(ps, s));
    c->interval = 1;
    c->period = total;
    c->anchor = 0;
    return 0;
}

static const struct {
    const char *name, *expr;
} cron_macros[] = {
    { "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

static int cron_parse_fields(const struct cron_parser *ps, const char *s, cron_t *c)
{
    const char *fs[F_COUNT + 1], *fe[F_COUNT + 1];
    int n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n <= F_COUNT) {
            fs[n] = p;
            while (*p && *p != ' ' && *p != '\t')
                p++;
            fe[n] = p;
        } else {
            while (*p && *p != ' ' && *p != '\t')
                p++;
        }
        n++;
    }
    if (n != F_COUNT) {
        if (n > F_COUNT)
            return err_set(ps->err, -EINVAL, "expected 5 fields (minute hour day-of-month "
                           "month day-of-week), got %d: extra field at column %d",
                           n, cron_col(ps, fs[F_COUNT]));
        return err_set(ps->err, -EINVAL, "expected 5 fields (minute hour day-of-month month "
                       "day-of-week), got %d", n);
    }
    for (int f = 0; f < F_COUNT; f++) {
        int rc = cron_field(ps, f, fs[f], fe[f], c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* True if the single token [s, e) looks like an interval: digits then a
 * unit letter. */
static int cron_looks_interval(const char *s, const char *e)
{
    const char *p = s;
    while (p < e && isdigit((unsigned char)*p))
        p++;
    return p > s && p < e && isalpha((unsigned char)*p);
}

int cron_parse(const char *expr, cron_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!expr)
        return err_set(err, -EINVAL, "empty schedule");
    /* Work on a copy cut at the trimmed end; offsets into it are columns. */
    const char *s = expr;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    if (s == e)
        return err_set(err, -EINVAL, "empty schedule");
    char *whole = xstrndup(expr, (size_t)(e - expr));
    struct cron_parser ps = { whole, err };
    const char *ws = whole + (s - expr), *we = whole + (e - expr);
    for (const char *q = ws; q < we; q++)
        if ((unsigned char)*q >= 0x80 || (!isprint((unsigned char)*q) && *q != '\t')) {
            int col = cron_col(&ps, q);
            free(whole);
            return err_set(err, -EINVAL, "unexpected character 0x%02x at column %d",
                           (unsigned char)expr[col - 1], col);
        }

    cron_t *c = xcalloc(1, sizeof *c);
    int rc;
    const char *sp = strpbrk(ws, " \t");
    size_t wl = sp ? (size_t)(sp - ws) : (size_t)(we - ws);
    if (*ws == '@') {
        if (wl == 6 && strncasecmp(ws, "@every", 6) == 0 && sp) {
            while (*sp == ' ' || *sp == '\t')
                sp++;
            rc = cron_parse_interval(&ps, sp, we, c);
        } else if (sp) {
            rc = err_set(err, -EINVAL, "unexpected text after %.*s at column %d", (int)wl, ws,
                         cron_col(&ps, sp));
        } else {
            rc = -1;
            for (size_t i = 0; i < sizeof cron_macros / sizeof *cron_macros; i++)
                if (strcasecmp(ws, cron_macros[i].name) == 0) {
                    struct cron_parser mp = { cron_macros[i].expr, err };
                    rc = cron_parse_fields(&mp, cron_macros[i].expr, c);
                    break;
                }
            if (rc == -1)
                rc = err_set(err, -EINVAL, "unknown macro '%.32s' at column %d (use @yearly, "
                             "@annually, @monthly, @weekly, @daily, @midnight, @hourly or "
                             "@every)", ws, cron_col(&ps, ws));
        }
    } else if (!sp && cron_looks_interval(ws, we)) {
        rc = cron_parse_interval(&ps, ws, we, c);
    } else {
        rc = cron_parse_fields(&ps, ws, c);
    }
    free(whole);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cron_free(cron_t *c)
{
    free(c);
}

void cron_set_anchor(cron_t *c, int64_t anchor_utc)
{
    /* Clamped so that after - anchor cannot overflow in cron_next. */
    c->anchor = anchor_utc < TZ_UTC_MIN ? TZ_UTC_MIN
              : anchor_utc > TZ_UTC_MAX ? TZ_UTC_MAX : anchor_utc;
}

int cron_is_interval(const cron_t *c)
{
    return c->interval;
}

int64_t cron_interval(const cron_t *c)
{
    return c->interval ? c->period : 0;
}

/* ---- matching --------------------------------------------------------- */

static int cron_has(const cron_t *c, int f, int v)
{
    return (int)((c->bits[f] >> v) & 1);
}

/* Smallest allowed value >= v in field f, or -1. */
static int cron_next_bit(const cron_t *c, int f, int v, int hi)
{
    for (; v <= hi; v++)
        if (cron_has(c, f, v))
            return v;
    return -1;
}

static int cron_day_ok(const cron_t *c, int64_t y, int m, int d)
{
    int wday = (int)(((tz_days_from_civil(y, m, d) % 7) + 11) % 7);
    int dom = cron_has(c, F_DOM, d), dow = cron_has(c, F_DOW, wday);
    if (!c->star[F_DOM] && !c->star[F_DOW])
        return dom || dow; /* Vixie: either restricted field may match */
    return dom && dow;
}

/* Can any day of month m (of some year) match on day-of-month alone?  Lets
 * the search skip months such as February for "0 0 30 * *". */
static int cron_month_possible(const cron_t *c, int64_t y, int m)
{
    if (!c->star[F_DOW] && !c->star[F_DOM])
        return 1; /* the day-of-week half of the OR matches every month */
    uint64_t mask = (2ULL << tz_days_in_month(y, m)) - 2; /* bits 1..dim */
    return (c->bits[F_DOM] & mask) != 0;
}

static int64_t cron_wall(int64_t y, int m, int d, int h, int mi)
{
    return tz_days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60;
}

/* First matching wall minute >= w, searching up to year limit_y. */
static int cron_next_wall(const cron_t *c, int64_t w, int64_t limit_y, int64_t *out)
{
    int64_t days = w >= 0 ? w / 86400 : -((-w + 86399) / 86400);
    int64_t secs = w - days * 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    int h = (int)(secs / 3600), mi = (int)((secs % 3600 + 59) / 60);
    if (mi == 60) {
        mi = 0;
        h++;
    }
    if (h == 24) {
        h = 0;
        mi = 0;
        if (++d > tz_days_in_month(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    while (y <= limit_y) {
        int nm = cron_next_bit(c, F_MON, m, 12);
        if (nm < 0 || !cron_month_possible(c, y, nm)) {
            /* Nothing left this year, or this month cannot match. */
            if (nm < 0) {
                y++;
                m = 1;
            } else {
                m = nm + 1;
                if (m > 12) {
                    m = 1;
                    y++;
                }
            }
            d = 1; h = 0; mi = 0;
            continue;
        }
        if (nm != m) {
            m = nm;
            d = 1; h = 0; mi = 0;
        }
        int dim = tz_days_in_month(y, m);
        while (d <= dim && !cron_day_ok(c, y, m, d)) {
            d++;
            h = 0; mi = 0;
        }
        if (d > dim) {
            d = 1; h = 0; mi = 0;
            if (++m > 12) {
                m = 1;
                y++;
            }
            continue;
        }
        int nh = cron_next_bit(c, F_HOUR, h, 23);
        if (nh < 0) {
            goto next_day;
        }
        if (nh != h) {
            h = nh;
            mi = 0;
        }
        int nmi = cron_next_bit(c, F_MIN, mi, 59);
        if (nmi < 0) {
            nh = cron_next_bit(c, F_HOUR, h + 1, 23);
            if (nh < 0)
                goto next_day;
            h = nh;
            nmi = cron_next_bit(c, F_MIN, 0, 59);
        }
        *out = cron_wall(y, m, d, h, nmi);
        return 0;
next_day:
        h = 0; mi = 0;
        if (++d > dim) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    return -ENOENT;
}

/* Hour field allows all 24 hours: the "follow real time" rule 3. */
static int cron_every_hour(const cron_t *c)
{
    return (c->bits[F_HOUR] & 0xffffffULL) == 0xffffffULL;
}

int cron_next_err(const cron_t *c, const tz_t *tz, int64_t after, int64_t *next,
                  nb_err_t *err)
{
    if (after < TZ_UTC_MIN || after > TZ_UTC_MAX)
        return err_set(err, -ERANGE, "time %lld is outside years 1-9999", (long long)after);
    if (c->interval) {
        /* Smallest anchor + k * period > after, k any integer. */
        int64_t k = (after - c->anchor) / c->period;
        if ((after - c->anchor) % c->period != 0 && after < c->anchor)
            k--; /* round toward minus infinity */
        int64_t t = c->anchor + (k + 1) * c->period;
        if (t <= after)
            t += c->period;
        if (t > TZ_UTC_MAX)
            return err_set(err, -ERANGE, "next fire is after year 9999");
        *next = t;
        return 0;
    }
    if (!tz)
        return err_set(err, -EINVAL, "a cron schedule needs a time zone");

    int32_t lo, hi;
    tz_offset_bounds(tz, after, &lo, &hi);
    int every_hour = cron_every_hour(c);
    int64_t w = after + lo + 1, best = 0, y;
    int have = 0, mo, dd;
    tz_civil_from_days(w / 86400, &y, &mo, &dd);
    int64_t limit_y = y + CRON_SEARCH_YEARS;
    if (limit_y > 9999)
        limit_y = 9999;
    for (;;) {
        int64_t cand_w;
        if (w > TZ_UTC_MAX || cron_next_wall(c, w, limit_y, &cand_w) < 0 || cand_w > TZ_UTC_MAX)
            break;
        if (have && cand_w - hi > best)
            break;
        struct tz_resolution r;
        if (tz_resolve(tz, cand_w, &r) < 0)
            break;
        int64_t t = 0;
        int ok = 0;
        switch (r.kind) {
        case TZ_LOCAL_NORMAL:
            t = r.first;
            ok = 1;
            break;
        case TZ_LOCAL_AMBIGUOUS:
            if (r.first > after) {
                t = r.first;
                ok = 1;
            } else if (every_hour) {
                t = r.second;
                ok = 1;
            }
            break;
        case TZ_LOCAL_GAP:
            if (!every_hour) {
                t = r.transition;
                ok = 1;
            }
            break;
        }
        if (ok && t > after && (!have || t < best)) {
            best = t;
            have = 1;
        }
        w = cand_w + 60;
    }
    if (!have)
        return err_set(err, -ENOENT, "never fires");
    if (best > TZ_UTC_MAX)
        return err_set(err, -ERANGE, "next fire is after year 9999");
    *next = best;
    return 0;
}

int cron_next(const cron_t *c, const tz_t *tz, int64_t after, int64_t *next)
{
    return cron_next_err(c, tz, after, next, NULL);
}

/* ---- describe --------------------------------------------------------- */

static const char *const cron_mon_long[] = { "January", "February", "March", "April", "May",
                                             "June", "July", "August", "September", "October",
                                             "November", "December" };
static const char *const cron_dow_long[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday" };

static int cron_count(uint64_t bits)
{
    return __builtin_popcountll(bits);
}

static int cron_lowest(uint64_t bits)
{
    return bits ? __builtin_ctzll(bits) : -1;
}

/* Values lo..hi starting at first, every step, and nothing else? */
static int cron_is_step(uint64_t bits, int first, int hi, int step)
{
    uint64_t want = 0;
    for (int v = first; v <= hi; v += step)
        want |= 1ULL << v;
    return bits == want;
}

/* Step s > 1 if bits == {lo, lo+s, ...} up to hi, else 0.  With whole set,
 * s must divide the span too, so that "every s" stays true across the wrap
 * ("*\/7" minutes is 0,7,..,56 then 0: not every 7 minutes). */
static int cron_even_step(uint64_t bits, int lo, int hi, int whole)
{
    if (cron_lowest(bits) != lo || cron_count(bits) < 2)
        return 0;
    uint64_t rest = bits & ~(1ULL << lo);
    int s = cron_lowest(rest) - lo;
    if ((whole && (hi - lo + 1) % s != 0) || !cron_is_step(bits, lo, hi, s))
        return 0;
    return s;
}

/* "Monday through Friday", "January, March and May", "1, 15 and 20-22". */
static void cron_list(buf_t *b, uint64_t bits, int lo, int hi, const char *const *names)
{
    int runs[64][2], n = 0;
    for (int v = lo; v <= hi; v++) {
        if (!((bits >> v) & 1))
            continue;
        if (n > 0 && runs[n - 1][1] == v - 1)
            runs[n - 1][1] = v;
        else {
            runs[n][0] = runs[n][1] = v;
            n++;
        }
    }
    /* A run of two reads better as "A and B". */
    int items[64][2], k = 0;
    for (int i = 0; i < n; i++) {
        if (runs[i][1] - runs[i][0] == 1) {
            items[k][0] = items[k][1] = runs[i][0];
            k++;
            items[k][0] = items[k][1] = runs[i][1];
            k++;
        } else {
            items[k][0] = runs[i][0];
            items[k][1] = runs[i][1];
            k++;
        }
    }
    for (int i = 0; i < k; i++) {
        if (i > 0)
            buf_puts(b, i == k - 1 ? " and " : ", ");
        for (int j = 0; j < (items[i][0] == items[i][1] ? 1 : 2); j++) {
            int v = items[i][j];
            if (j)
                buf_puts(b, " through ");
            if (names)
                buf_puts(b, names[v - lo]);
            else
                buf_printf(b, "%d", v);
        }
    }
}

static void cron_describe_interval(buf_t *b, int64_t p)
{
    static const char *const unit[] = { "day", "hour", "minute", "second" };
    static const int64_t mult[] = { 86400, 3600, 60, 1 };
    int64_t part[4];
    int nz = 0;
    for (int i = 0; i < 4; i++) {
        part[i] = p / mult[i];
        p %= mult[i];
        nz += part[i] != 0;
    }
    buf_puts(b, "every");
    int done = 0;
    for (int i = 0; i < 4; i++) {
        if (!part[i])
            continue;
        if (nz == 1 && part[i] == 1) {
            buf_printf(b, " %s", unit[i]);
            return;
        }
        buf_printf(b, "%s%lld %s%s", done == 0 ? " " : (done == nz - 1 ? " and " : ", "),
                   (long long)part[i], unit[i], part[i] == 1 ? "" : "s");
        done++;
    }
}

char *cron_describe(const cron_t *c)
{
    buf_t b = BUF_INIT;
    if (c->interval) {
        cron_describe_interval(&b, c->period);
        return buf_detach(&b);
    }
    uint64_t mins = c->bits[F_MIN], hours = c->bits[F_HOUR] & 0xffffff;
    uint64_t all_min = (1ULL << 60) - 1, all_hour = 0xffffff;
    int nmin = cron_count(mins), nhour = cron_count(hours);
    int mstep = cron_even_step(mins, 0, 59, 1), hstep = cron_even_step(hours, 0, 23, 1);
    int timed = 0; /* description is "at HH:MM..." */

    /* Time of day. */
    if (mins == all_min && hours == all_hour) {
        buf_puts(&b, "every minute");
    } else if (mins == all_min) {
        buf_puts(&b, "every minute during hour ");
        cron_list(&b, hours, 0, 23, NULL);
    } else if (mstep && hours == all_hour) {
        buf_printf(&b, "every %d minutes", mstep);
    } else if (nmin == 1 && hours == all_hour) {
        if (cron_lowest(mins) == 0)
            buf_puts(&b, "every hour");
        else
            buf_printf(&b, "every hour at minute %d", cron_lowest(mins));
    } else if (nmin == 1 && hstep) {
        buf_printf(&b, "every %d hours", hstep);
        if (cron_lowest(mins) != 0)
            buf_printf(&b, " at minute %d", cron_lowest(mins));
    } else if (nmin * nhour <= 6) {
        buf_puts(&b, "at ");
        int k = 0, total = nmin * nhour;
        for (int h = 0; h < 24; h++)
            for (int m = 0; m < 60; m++)
                if (((hours >> h) & 1) && ((mins >> m) & 1)) {
                    if (k > 0)
                        buf_puts(&b, k == total - 1 ? " and " : ", ");
                    buf_printf(&b, "%02d:%02d", h, m);
                    k++;
                }
        timed = 1;
    } else {
        if (mstep)
            buf_printf(&b, "every %d minutes", mstep);
        else {
            buf_puts(&b, nmin == 1 ? "at minute " : "at minutes ");
            cron_list(&b, mins, 0, 59, NULL);
        }
        if (hours != all_hour) {
            buf_puts(&b, nhour == 1 ? " past hour " : " past hours ");
            cron_list(&b, hours, 0, 23, NULL);
        }
    }

    /* Days.  Vixie semantics: OR when both day fields are restricted
     * (neither starts with '*'), AND otherwise. */
    uint64_t domb = c->bits[F_DOM], dowb = c->bits[F_DOW];
    int dom_r = domb != 0xfffffffeULL, dow_r = dowb != 0x7f;
    int or_mode = !c->star[F_DOM] && !c->star[F_DOW];
    if (or_mode && (!dom_r || !dow_r))
        dom_r = dow_r = 0; /* one half of the OR matches every day */
    int mon_any = c->bits[F_MON] == 0x1ffe;
    if (!dom_r && !dow_r && mon_any) {
        if (timed) {
            char *t = buf_detach(&b);
            buf_printf(&b, "every day %s", t);
            free(t);
        }
        return buf_detach(&b);
    }
    if (dom_r && !dow_r && cron_count(domb) == 1 && cron_count(c->bits[F_MON]) == 1) {
        buf_printf(&b, " on %s %d", cron_mon_long[cron_lowest(c->bits[F_MON]) - 1],
                   cron_lowest(domb));
        return buf_detach(&b);
    }
    if (dom_r) {
        int dstep = c->star[F_DOM] ? cron_even_step(domb, 1, 31, 0) : 0;
        if (dstep)
            buf_printf(&b, " every %d days of the month", dstep);
        else {
            buf_puts(&b, cron_count(domb) == 1 ? " on day " : " on days ");
            cron_list(&b, domb, 1, 31, NULL);
            buf_puts(&b, " of the month");
        }
    }
    if (dow_r) {
        buf_puts(&b, !dom_r ? " on " : or_mode ? " or on " : " if it is ");
        cron_list(&b, dowb, 0, 6, cron_dow_long);
    }
    if (!mon_any) {
        buf_puts(&b, " in ");
        cron_list(&b, c->bits[F_MON], 1, 12, cron_mon_long);
    }
    return buf_detach(&b);
}
