/*
 * tz — TZif reader and local-time arithmetic.
 *
 * A zone is a list of UTC transitions, each switching to a "type" (UTC
 * offset, DST flag, abbreviation), plus an optional POSIX TZ footer
 * ("CET-1CEST,M3.5.0,M10.5.0/3") that RFC 8536 says governs every instant
 * after the last transition.  Debian's tzdata ships "slim" files whose
 * explicit transitions stop around 2037 (and some zones, like UTC, have
 * none), so the footer is not an afterthought: it is how every future
 * schedule is evaluated.  We read only the 64-bit (v2+) block when there is
 * one; v1 files fall back to the 32-bit block and have no footer.
 *
 * Everything is phrased in terms of one primitive, tz_period_at(u): the
 * maximal UTC range [start, end) around u in which one type is in effect.
 * Inside the explicit table it is a binary search; past it, the footer's
 * transitions are computed for the few years around u.  UTC -> local is one
 * lookup.  Local -> UTC asks which periods near the reading contain it: an
 * instant u = wall - offset is a solution iff the period holding u has that
 * offset.  One solution is NORMAL, two are AMBIGUOUS, none is a GAP whose
 * transition is where the local clock jumps over the reading.  This needs
 * no assumption about transition spacing beyond offsets staying under 26
 * hours, which RFC 8536 already requires.
 */
#include "sched/tz.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/buf.h"
#include "util/xmalloc.h"

/* RFC 8536 bounds utoff to -89999..93599; we use 26 h as the search radius. */
#define TZ_MAX_OFFSET  (26 * 3600)
#define TZ_FILE_MAX    (1 << 20)
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"

struct tz_type {
    int32_t off;
    int     isdst;
    char    abbr[TZ_ABBR_MAX];
};

/* One footer rule date: Jn, n or Mm.w.d, and the local time of day. */
struct tz_rule {
    char    kind;    /* 'J', 'D' (zero-based day), 'M' */
    int     a, b, c; /* J/D: day; M: month, week, weekday */
    int32_t time;    /* seconds after local midnight, may be < 0 or > 24 h */
};

struct tz_footer {
    int            present;
    int            has_dst;
    int            std_type, dst_type; /* indexes into types[] */
    struct tz_rule start, end;
};

struct tz {
    char            *name;
    int64_t         *trans;      /* ascending UTC instants */
    int             *trans_type; /* type after each transition */
    size_t           ntrans;
    struct tz_type  *types;      /* file types, then footer std/dst */
    size_t           ntypes;
    int              initial;    /* type before the first transition */
    struct tz_footer ft;
    int32_t         *suf_min, *suf_max; /* offsets of trans[i..] and footer */
};

struct tz_period {
    int64_t start, end; /* [start, end); INT64_MIN/INT64_MAX when unbounded */
    int     type;
};

/* ---- calendar --------------------------------------------------------- */

/* Howard Hinnant's days_from_civil: exact for any int64 year we accept. */
int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int tz_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tz_days_in_month(int64_t y, int m)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && tz_is_leap(y) ? 29 : dim[m - 1];
}

/* Floor division, because wall seconds before 1970 are negative. */
static int64_t tz_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- POSIX TZ footer -------------------------------------------------- */

/* Abbreviation: <...> quoted, or three or more letters. */
static const char *tz_posix_name(const char *p, char *out)
{
    size_t n = 0;
    if (*p == '<') {
        p++;
        while (*p && *p != '>') {
            if (!(*p == '+' || *p == '-' || (*p >= '0' && *p <= '9') ||
                  (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                return NULL;
            if (n + 1 < TZ_ABBR_MAX)
                out[n++] = *p;
            p++;
        }
        if (*p != '>')
            return NULL;
        p++;
    } else {
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
            if (n + 1 < TZ_ABBR_MAX)
                out[n++] = *p;
            p++;
        }
    }
    if (n < 3)
        return NULL;
    out[n] = '\0';
    return p;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours; stores signed seconds. */
static const char *tz_posix_hms(const char *p, int max_hours, int32_t *out)
{
    int sign = 1, parts[3] = { 0, 0, 0 };
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*p != ':')
                break;
            p++;
        }
        if (*p < '0' || *p > '9')
            return NULL;
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 3) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if ((i == 0 && v > max_hours) || (i > 0 && (v > 59 || digits != 2)))
            return NULL;
        parts[i] = v;
    }
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return p;
}

static const char *tz_posix_num(const char *p, int lo, int hi, int *out)
{
    int v = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 4) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || v < lo || v > hi)
        return NULL;
    *out = v;
    return p;
}

static const char *tz_posix_rule(const char *p, struct tz_rule *r)
{
    if (*p == 'J') {
        r->kind = 'J';
        p = tz_posix_num(p + 1, 1, 365, &r->a);
    } else if (*p == 'M') {
        r->kind = 'M';
        p = tz_posix_num(p + 1, 1, 12, &r->a);
        if (!p || *p++ != '.')
            return NULL;
        p = tz_posix_num(p, 1, 5, &r->b);
        if (!p || *p++ != '.')
            return NULL;
        p = tz_posix_num(p, 0, 6, &r->c);
    } else {
        r->kind = 'D';
        p = tz_posix_num(p, 0, 365, &r->a);
    }
    if (!p)
        return NULL;
    r->time = 7200;
    if (*p == '/')
        p = tz_posix_hms(p + 1, 167, &r->time); /* RFC 8536 extension */
    return p;
}

static int tz_add_type(struct tz *tz, int32_t off, int isdst, const char *abbr)
{
    tz->types = xrealloc(tz->types, (tz->ntypes + 1) * sizeof *tz->types);
    struct tz_type *t = &tz->types[tz->ntypes];
    t->off = off;
    t->isdst = isdst;
    snprintf(t->abbr, sizeof t->abbr, "%s", abbr);
    return (int)tz->ntypes++;
}

/* Parse the footer into tz->ft, appending its types.  0 or -1. */
static int tz_parse_footer(struct tz *tz, const char *s)
{
    char stdname[TZ_ABBR_MAX], dstname[TZ_ABBR_MAX];
    int32_t stdoff, dstoff;
    const char *p = tz_posix_name(s, stdname);
    if (!p || !(p = tz_posix_hms(p, 24, &stdoff)))
        return -1;
    stdoff = -stdoff; /* POSIX counts hours west of Greenwich */
    tz->ft.present = 1;
    tz->ft.std_type = tz_add_type(tz, stdoff, 0, stdname);
    if (*p == '\0')
        return 0;
    if (!(p = tz_posix_name(p, dstname)))
        return -1;
    dstoff = stdoff + 3600;
    if (*p != ',' && *p != '\0') {
        if (!(p = tz_posix_hms(p, 24, &dstoff)))
            return -1;
        dstoff = -dstoff;
    }
    if (*p == '\0') {
        /* POSIX leaves the default rule to the implementation; glibc and
         * tzcode use the US rule. */
        p = ",M3.2.0,M11.1.0";
    }
    if (*p++ != ',' || !(p = tz_posix_rule(p, &tz->ft.start)))
        return -1;
    if (*p++ != ',' || !(p = tz_posix_rule(p, &tz->ft.end)))
        return -1;
    if (*p != '\0')
        return -1;
    tz->ft.has_dst = 1;
    tz->ft.dst_type = tz_add_type(tz, dstoff, 1, dstname);
    return 0;
}

/* Local midnight (as wall days) of a footer rule's date in year y. */
static int64_t tz_rule_day(const struct tz_rule *r, int64_t y)
{
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    if (r->kind == 'J')  /* 1..365, February 29 never counted */
        return jan1 + r->a - 1 + (tz_is_leap(y) && r->a >= 60);
    if (r->kind == 'D')
        return jan1 + r->a;
    int64_t first = tz_days_from_civil(y, r->a, 1);
    int wday1 = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
    int day = 1 + (r->c - wday1 + 7) % 7 + (r->b - 1) * 7;
    while (day > tz_days_in_month(y, r->a))
        day -= 7;
    return first + day - 1;
}

/* The footer's period around u, clamped to start no earlier than lo. */
static struct tz_period tz_footer_period(const struct tz *tz, int64_t u, int64_t lo)
{
    struct tz_period p = { lo, INT64_MAX, tz->ft.std_type };
    if (!tz->ft.has_dst)
        return p;
    int32_t so = tz->types[tz->ft.std_type].off, dso = tz->types[tz->ft.dst_type].off;
    int64_t y;
    int m, d;
    tz_civil_from_days(tz_floordiv(u + so, 86400), &y, &m, &d);

    /* Events of years y-1..y+1, sorted; coincident and no-op events are
     * folded so a zone on DST all year ("EST5EDT,0/0,J365/25") has none. */
    struct ev { int64_t at; int dst; } ev[6], kept[6];
    int n = 0, nk = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        ev[n].at = tz_rule_day(&tz->ft.start, yy) * 86400 + tz->ft.start.time - so;
        ev[n++].dst = 1;
        ev[n].at = tz_rule_day(&tz->ft.end, yy) * 86400 + tz->ft.end.time - dso;
        ev[n++].dst = 0;
    }
    for (int i = 1; i < n; i++) /* insertion sort; ends before starts on ties */
        for (int j = i; j > 0 && (ev[j].at < ev[j - 1].at ||
                                  (ev[j].at == ev[j - 1].at && ev[j].dst < ev[j - 1].dst)); j--) {
            struct ev t = ev[j]; ev[j] = ev[j - 1]; ev[j - 1] = t;
        }
    /* Before year y-1's first event the state is the opposite of it. */
    int initial = !ev[0].dst, state = initial;
    for (int i = 0; i < n; i++) {
        if (nk > 0 && kept[nk - 1].at == ev[i].at) {
            nk--;
            state = nk > 0 ? kept[nk - 1].dst : initial;
        }
        if (ev[i].dst != state) {
            kept[nk++] = ev[i];
            state = ev[i].dst;
        }
    }
    int cur = initial;
    int64_t start = INT64_MIN, end = INT64_MAX;
    for (int i = 0; i < nk; i++) {
        if (kept[i].at <= u) {
            cur = kept[i].dst;
            start = kept[i].at;
        } else {
            end = kept[i].at;
            break;
        }
    }
    p.start = start > lo ? start : lo;
    p.end = end;
    p.type = cur ? tz->ft.dst_type : tz->ft.std_type;
    return p;
}

/* ---- periods ---------------------------------------------------------- */

/* Index of the last transition <= u, or -1. */
static ptrdiff_t tz_trans_index(const struct tz *tz, int64_t u)
{
    size_t lo = 0, hi = tz->ntrans;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

static struct tz_period tz_period_at(const struct tz *tz, int64_t u)
{
    struct tz_period p;
    ptrdiff_t i = tz_trans_index(tz, u);
    size_t n = tz->ntrans;
    if (n > 0 && i < 0) {
        p.start = INT64_MIN;
        p.end = tz->trans[0];
        p.type = tz->initial;
        return p;
    }
    if (n > 0 && (size_t)i + 1 < n) {
        p.start = tz->trans[i];
        p.end = tz->trans[i + 1];
        p.type = tz->trans_type[i];
        return p;
    }
    /* At or after the last transition (or none at all). */
    int64_t lo = n > 0 ? tz->trans[n - 1] : INT64_MIN;
    if (tz->ft.present)
        return tz_footer_period(tz, u, lo);
    p.start = lo;
    p.end = INT64_MAX;
    p.type = n > 0 ? tz->trans_type[n - 1] : tz->initial;
    return p;
}

/* ---- loading ---------------------------------------------------------- */

static uint32_t tz_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t tz_be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)tz_be32(p) << 32 | tz_be32(p + 4));
}

struct tz_hdr {
    int      version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static int tz_read_hdr(const unsigned char *p, size_t len, struct tz_hdr *h)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    h->version = p[4] == 0 ? 1 : p[4] - '0';
    if (h->version < 1 || h->version > 9)
        return -1;
    h->isutcnt = tz_be32(p + 20);
    h->isstdcnt = tz_be32(p + 24);
    h->leapcnt = tz_be32(p + 28);
    h->timecnt = tz_be32(p + 32);
    h->typecnt = tz_be32(p + 36);
    h->charcnt = tz_be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 || h->charcnt > 65536 ||
        h->timecnt > 1000000 || h->leapcnt > 100000 ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return -1;
    return 0;
}

/* Bytes of the data block that follows a header, for time size ts. */
static size_t tz_block_len(const struct tz_hdr *h, size_t ts)
{
    return (size_t)h->timecnt * ts + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (ts + 4) + h->isstdcnt + h->isutcnt;
}

static int tz_bad(nb_err_t *err, const char *name, const char *why)
{
    return err_set(err, -EBADMSG, "time zone '%s': malformed TZif data (%s)", name, why);
}

int tz_parse(const char *name, const void *data, size_t len, tz_t **out, nb_err_t *err)
{
    const unsigned char *p = data, *end = p + len;
    struct tz_hdr h;
    *out = NULL;
    if (tz_read_hdr(p, len, &h) < 0)
        return tz_bad(err, name, "bad header");
    size_t ts = 4;
    const unsigned char *blk = p + 44;
    if (h.version >= 2) {
        /* Skip the v1 block; the second header describes 64-bit data. */
        size_t skip = tz_block_len(&h, 4);
        if (skip > (size_t)(end - blk))
            return tz_bad(err, name, "truncated v1 block");
        blk += skip;
        if (tz_read_hdr(blk, (size_t)(end - blk), &h) < 0)
            return tz_bad(err, name, "bad v2 header");
        blk += 44;
        ts = 8;
    }
    if (tz_block_len(&h, ts) > (size_t)(end - blk))
        return tz_bad(err, name, "truncated data block");
    if (h.leapcnt > 0)
        return err_set(err, -ENOTSUP, "time zone '%s' counts leap seconds; use the zone "
                       "without the right/ prefix", name);

    struct tz *tz = xcalloc(1, sizeof *tz);
    tz->name = xstrdup(name);
    const unsigned char *tp = blk, *ip = tp + h.timecnt * ts, *typ = ip + h.timecnt;
    const unsigned char *chars = typ + h.typecnt * 6;
    const char *why = NULL;

    tz->ntypes = h.typecnt;
    tz->types = xcalloc(h.typecnt, sizeof *tz->types);
    for (uint32_t i = 0; i < h.typecnt && !why; i++) {
        const unsigned char *t = typ + i * 6;
        int32_t off = (int32_t)tz_be32(t);
        unsigned idx = t[5];
        if (off <= -TZ_MAX_OFFSET || off >= TZ_MAX_OFFSET || t[4] > 1)
            why = "bad local time type";
        else if (idx >= h.charcnt || !memchr(chars + idx, '\0', h.charcnt - idx))
            why = "bad abbreviation index";
        else {
            tz->types[i].off = off;
            tz->types[i].isdst = t[4];
            snprintf(tz->types[i].abbr, sizeof tz->types[i].abbr, "%s",
                     (const char *)chars + idx);
        }
    }
    tz->ntrans = h.timecnt;
    tz->trans = xcalloc(h.timecnt + 1, sizeof *tz->trans);
    tz->trans_type = xcalloc(h.timecnt + 1, sizeof *tz->trans_type);
    for (uint32_t i = 0; i < h.timecnt && !why; i++) {
        tz->trans[i] = ts == 8 ? tz_be64(tp + i * 8) : (int32_t)tz_be32(tp + i * 4);
        tz->trans_type[i] = ip[i];
        if (ip[i] >= h.typecnt)
            why = "bad type index";
        else if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            why = "transitions out of order";
    }
    tz->initial = 0; /* RFC 8536 3.2: type 0 applies before the first transition */

    if (!why && h.version >= 2) {
        const unsigned char *f = blk + tz_block_len(&h, ts);
        const unsigned char *nl = f < end ? memchr(f + 1, '\n', (size_t)(end - f - 1)) : NULL;
        if (f >= end || *f != '\n' || !nl)
            why = "missing footer";
        else if (nl > f + 1) {
            char *s = xstrndup((const char *)f + 1, (size_t)(nl - f - 1));
            if (strlen(s) != (size_t)(nl - f - 1) || tz_parse_footer(tz, s) < 0)
                why = "bad TZ string footer";
            free(s);
        }
    }
    if (why) {
        tz_free(tz);
        return tz_bad(err, name, why);
    }

    /* Suffix min/max of offsets, for tz_offset_bounds. */
    int32_t fmin = INT32_MAX, fmax = INT32_MIN;
    if (tz->ft.present) {
        fmin = fmax = tz->types[tz->ft.std_type].off;
        if (tz->ft.has_dst) {
            int32_t o = tz->types[tz->ft.dst_type].off;
            fmin = o < fmin ? o : fmin;
            fmax = o > fmax ? o : fmax;
        }
    }
    tz->suf_min = xcalloc(tz->ntrans + 1, sizeof *tz->suf_min);
    tz->suf_max = xcalloc(tz->ntrans + 1, sizeof *tz->suf_max);
    tz->suf_min[tz->ntrans] = fmin;
    tz->suf_max[tz->ntrans] = fmax;
    for (size_t i = tz->ntrans; i-- > 0;) {
        int32_t o = tz->types[tz->trans_type[i]].off;
        tz->suf_min[i] = o < tz->suf_min[i + 1] ? o : tz->suf_min[i + 1];
        tz->suf_max[i] = o > tz->suf_max[i + 1] ? o : tz->suf_max[i + 1];
    }
    *out = tz;
    return 0;
}

/* A zone name is relative, ASCII, with no empty, "." or ".." component. */
static int tz_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || name[0] == '/')
        return 0;
    const char *c = name;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++) {
            char ch = c[i];
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '+' || ch == '.'))
                return 0;
        }
        c += n;
        if (*c == '/')
            c++;
    }
    return name[len - 1] != '/';
}

/* Built-in UTC, so "UTC" works on a machine without tzdata. */
static tz_t *tz_builtin_utc(void)
{
    struct tz *tz = xcalloc(1, sizeof *tz);
    tz->name = xstrdup("UTC");
    tz->trans = xcalloc(1, sizeof *tz->trans);
    tz->trans_type = xcalloc(1, sizeof *tz->trans_type);
    tz_add_type(tz, 0, 0, "UTC");
    tz->suf_min = xcalloc(1, sizeof *tz->suf_min);
    tz->suf_max = xcalloc(1, sizeof *tz->suf_max);
    return tz;
}

int tz_load(const char *name, tz_t **out, nb_err_t *err)
{
    *out = NULL;
    if (!name || !tz_name_ok(name))
        return err_set(err, -EINVAL, "invalid time zone name '%s'", name ? name : "(null)");
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = TZ_DEFAULT_DIR;

    char *path = xasprintf("%s/%s", dir, name);
    char *real = realpath(path, NULL);
    char *realdir = realpath(dir, NULL);
    int rc = -ENOENT;
    FILE *f = NULL;
    struct stat st;
    /* Symlinks may point anywhere (Debian's zoneinfo/localtime points at
     * /etc/localtime): only files that end up inside the directory count. */
    if (real && realdir && strncmp(real, realdir, strlen(realdir)) == 0 &&
        real[strlen(realdir)] == '/' && stat(real, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size <= TZ_FILE_MAX && (f = fopen(real, "rb")) != NULL) {
        buf_t b = BUF_INIT;
        char chunk[8192];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= TZ_FILE_MAX)
            buf_append(&b, chunk, n);
        fclose(f);
        if (b.len >= 4 && memcmp(b.data, "TZif", 4) == 0)
            rc = tz_parse(name, b.data, b.len, out, err);
        buf_free(&b);
    }
    free(path);
    free(real);
    free(realdir);
    if (rc == -ENOENT) {
        if (strcmp(name, "UTC") == 0) {
            *out = tz_builtin_utc();
            return 0;
        }
        return err_set(err, -ENOENT, "unknown time zone '%s'", name);
    }
    return rc;
}

void tz_free(tz_t *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->trans);
    free(tz->trans_type);
    free(tz->types);
    free(tz->suf_min);
    free(tz->suf_max);
    free(tz);
}

const char *tz_name(const tz_t *tz)
{
    return tz->name;
}

/* ---- conversions ------------------------------------------------------ */

static void tz_fill_tm(int64_t wall, struct tz_tm *out)
{
    int64_t days = tz_floordiv(wall, 86400), secs = wall - days * 86400, y;
    tz_civil_from_days(days, &y, &out->month, &out->day);
    out->year = (int)y;
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    out->wday = (int)(((days % 7) + 11) % 7);
    out->yday = (int)(days - tz_days_from_civil(y, 1, 1));
}

int tz_to_local(const tz_t *tz, int64_t utc, struct tz_tm *out)
{
    if (utc < TZ_UTC_MIN || utc > TZ_UTC_MAX)
        return -ERANGE;
    struct tz_period p = tz_period_at(tz, utc);
    const struct tz_type *t = &tz->types[p.type];
    tz_fill_tm(utc + t->off, out);
    out->utc_offset = t->off;
    out->is_dst = t->isdst;
    memcpy(out->abbr, t->abbr, sizeof out->abbr);
    return 0;
}

int tz_resolve(const tz_t *tz, int64_t wall, struct tz_resolution *r)
{
    if (wall < TZ_UTC_MIN || wall > TZ_UTC_MAX)
        return -ERANGE;
    /* Every solution u = wall - off lies within TZ_MAX_OFFSET of wall; walk
     * the periods covering that window in order. */
    struct tz_period ps[16];
    int np = 0, nsol = 0;
    int64_t sol[2] = { 0, 0 };
    int64_t u = wall - TZ_MAX_OFFSET;
    while (np < 16) {
        struct tz_period p = tz_period_at(tz, u);
        ps[np++] = p;
        int64_t cand = wall - tz->types[p.type].off;
        if (cand >= p.start && cand < p.end && nsol < 2)
            sol[nsol++] = cand;
        if (p.end == INT64_MAX || p.end > wall + TZ_MAX_OFFSET)
            break;
        u = p.end;
    }
    r->transition = 0;
    if (nsol == 1) {
        r->kind = TZ_LOCAL_NORMAL;
        r->first = r->second = sol[0];
        return 0;
    }
    if (nsol == 2) {
        r->kind = TZ_LOCAL_AMBIGUOUS;
        r->first = sol[0];
        r->second = sol[1];
        /* The transition between the two occurrences. */
        for (int i = 0; i + 1 < np; i++)
            if (ps[i].end > sol[0] && ps[i].end <= sol[1]) {
                r->transition = ps[i].end;
                break;
            }
        return 0;
    }
    /* Gap: the boundary where the local clock jumps over wall. */
    for (int i = 0; i + 1 < np; i++) {
        int64_t t = ps[i].end;
        int32_t before = tz->types[ps[i].type].off, after = tz->types[ps[i + 1].type].off;
        if (t + before <= wall && wall < t + after) {
            r->kind = TZ_LOCAL_GAP;
            r->first = wall - before;
            r->second = wall - after;
            r->transition = t;
            return 0;
        }
    }
    /* Not reachable with consistent data; answer something monotone. */
    r->kind = TZ_LOCAL_GAP;
    r->first = r->second = r->transition = wall - tz->types[ps[0].type].off;
    return 0;
}

int tz_from_local(const tz_t *tz, const struct tz_tm *lt, int fold, int64_t *utc)
{
    if (fold < 0 || fold > 1 || lt->year < 1 || lt->year > 9999 || lt->month < 1 ||
        lt->month > 12 || lt->day < 1 || lt->day > tz_days_in_month(lt->year, lt->month) ||
        lt->hour < 0 || lt->hour > 23 || lt->min < 0 || lt->min > 59 || lt->sec < 0 ||
        lt->sec > 59)
        return -EINVAL;
    int64_t wall = tz_days_from_civil(lt->year, lt->month, lt->day) * 86400 +
                   lt->hour * 3600 + lt->min * 60 + lt->sec;
    struct tz_resolution r;
    int rc = tz_resolve(tz, wall, &r);
    if (rc < 0)
        return rc;
    *utc = fold ? r.second : r.first;
    return r.kind;
}

void tz_offset_bounds(const tz_t *tz, int64_t from_utc, int32_t *min_off, int32_t *max_off)
{
    struct tz_period p = tz_period_at(tz, from_utc);
    int32_t o = tz->types[p.type].off;
    ptrdiff_t i = tz_trans_index(tz, from_utc);
    size_t next = (size_t)(i + 1);
    int32_t lo = tz->suf_min[next], hi = tz->suf_max[next];
    *min_off = o < lo ? o : lo;
    *max_off = o > hi ? o : hi;
}
