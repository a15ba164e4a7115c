/* Unit tests for cron.  Expected UTC instants were computed independently
 * with a brute-force reference in Python 3.11 (/work/main/.venv/bin/python):
 * walk every UTC minute, read the wall clock with zoneinfo, fire where the
 * fields match -- at fold 0 only, or at both folds when the hour field is
 * every hour -- and, for other schedules, fire at the transition instant
 * when a skipped wall-clock minute matches.  That reference shares no code
 * with cron.c; the vectors below are its output pasted here, with the UTC
 * and local reading of each instant as a comment.  (The same reference
 * also agreed with cron_next on 1,864 random schedule/zone/start cases
 * around transitions in 2000-2045; that script is not part of the suite.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/cron.h"

static tz_t *load(const char *name)
{
    tz_t *tz = NULL;
    nb_err_t err = { 0, "" };
    if (tz_load(name, &tz, &err) != 0)
        fail_msg("tz_load(%s): %s", name, err.msg);
    return tz;
}

static cron_t *parse(const char *expr)
{
    cron_t *c = NULL;
    nb_err_t err = { 0, "" };
    if (cron_parse(expr, &c, &err) != 0)
        fail_msg("cron_parse(%s): %s", expr, err.msg);
    return c;
}

/* Chain cron_next from start; the fires must be exactly want[] up to end. */
static void expect_fires(const char *zone, const char *expr, int64_t start, int64_t end,
                         const int64_t *want, int n)
{
    tz_t *tz = load(zone);
    cron_t *c = parse(expr);
    int64_t t = start;
    for (int i = 0; i <= n; i++) {
        int64_t next = 0;
        nb_err_t err = { 0, "" };
        if (cron_next_err(c, tz, t, &next, &err) != 0)
            fail_msg("%s \"%s\" after %lld: %s", zone, expr, (long long)t, err.msg);
        if (i < n && next != want[i])
            fail_msg("%s \"%s\" fire %d: got %lld, want %lld", zone, expr, i,
                     (long long)next, (long long)want[i]);
        if (i == n && next <= end)
            fail_msg("%s \"%s\": extra fire %lld", zone, expr, (long long)next);
        t = next;
    }
    cron_free(c);
    tz_free(tz);
}

struct dstvec {
    const char *zone, *expr;
    int64_t     start, end;
    int         n;
    int64_t     want[16];
};

static const struct dstvec dstvecs[] = {
    /* Europe/Berlin spring */
    { "Europe/Berlin", "30 2 * * *", 1711717200, 1711976400, 3, {
        1711762200, /* 03-30T01:30Z = 02:30 CET */
        1711846800, /* 03-31T01:00Z = 03:00 CEST */
        1711931400, /* 04-01T00:30Z = 02:30 CEST */
    } },
    /* Europe/Berlin spring */
    { "Europe/Berlin", "30 1 * * *", 1711717200, 1711976400, 3, {
        1711758600, /* 03-30T00:30Z = 01:30 CET */
        1711845000, /* 03-31T00:30Z = 01:30 CET */
        1711927800, /* 03-31T23:30Z = 01:30 CEST */
    } },
    /* Europe/Berlin spring */
    { "Europe/Berlin", "0 * * * *", 1711836000, 1711857600, 6, {
        1711839600, /* 03-30T23:00Z = 00:00 CET */
        1711843200, /* 03-31T00:00Z = 01:00 CET */
        1711846800, /* 03-31T01:00Z = 03:00 CEST */
        1711850400, /* 03-31T02:00Z = 04:00 CEST */
        1711854000, /* 03-31T03:00Z = 05:00 CEST */
        1711857600, /* 03-31T04:00Z = 06:00 CEST */
    } },
    /* Europe/Berlin spring */
    { "Europe/Berlin", "30 * * * *", 1711836000, 1711857600, 6, {
        1711837800, /* 03-30T22:30Z = 23:30 CET */
        1711841400, /* 03-30T23:30Z = 00:30 CET */
        1711845000, /* 03-31T00:30Z = 01:30 CET */
        1711848600, /* 03-31T01:30Z = 03:30 CEST */
        1711852200, /* 03-31T02:30Z = 04:30 CEST */
        1711855800, /* 03-31T03:30Z = 05:30 CEST */
    } },
    /* Europe/Berlin spring */
    { "Europe/Berlin", "*/15 * * * *", 1711843200, 1711850400, 8, {
        1711844100, /* 03-31T00:15Z = 01:15 CET */
        1711845000, /* 03-31T00:30Z = 01:30 CET */
        1711845900, /* 03-31T00:45Z = 01:45 CET */
        1711846800, /* 03-31T01:00Z = 03:00 CEST */
        1711847700, /* 03-31T01:15Z = 03:15 CEST */
        1711848600, /* 03-31T01:30Z = 03:30 CEST */
        1711849500, /* 03-31T01:45Z = 03:45 CEST */
        1711850400, /* 03-31T02:00Z = 04:00 CEST */
    } },
    /* Europe/Berlin fall */
    { "Europe/Berlin", "30 2 * * *", 1729861200, 1730120400, 3, {
        1729902600, /* 10-26T00:30Z = 02:30 CEST */
        1729989000, /* 10-27T00:30Z = 02:30 CEST */
        1730079000, /* 10-28T01:30Z = 02:30 CET */
    } },
    /* Europe/Berlin fall */
    { "Europe/Berlin", "30 1 * * *", 1729861200, 1730120400, 3, {
        1729899000, /* 10-25T23:30Z = 01:30 CEST */
        1729985400, /* 10-26T23:30Z = 01:30 CEST */
        1730075400, /* 10-28T00:30Z = 01:30 CET */
    } },
    /* Europe/Berlin fall */
    { "Europe/Berlin", "0 * * * *", 1729980000, 1730001600, 6, {
        1729983600, /* 10-26T23:00Z = 01:00 CEST */
        1729987200, /* 10-27T00:00Z = 02:00 CEST */
        1729990800, /* 10-27T01:00Z = 02:00 CET */
        1729994400, /* 10-27T02:00Z = 03:00 CET */
        1729998000, /* 10-27T03:00Z = 04:00 CET */
        1730001600, /* 10-27T04:00Z = 05:00 CET */
    } },
    /* Europe/Berlin fall */
    { "Europe/Berlin", "30 * * * *", 1729980000, 1730001600, 6, {
        1729981800, /* 10-26T22:30Z = 00:30 CEST */
        1729985400, /* 10-26T23:30Z = 01:30 CEST */
        1729989000, /* 10-27T00:30Z = 02:30 CEST */
        1729992600, /* 10-27T01:30Z = 02:30 CET */
        1729996200, /* 10-27T02:30Z = 03:30 CET */
        1729999800, /* 10-27T03:30Z = 04:30 CET */
    } },
    /* Europe/Berlin fall */
    { "Europe/Berlin", "*/15 * * * *", 1729987200, 1729994400, 8, {
        1729988100, /* 10-27T00:15Z = 02:15 CEST */
        1729989000, /* 10-27T00:30Z = 02:30 CEST */
        1729989900, /* 10-27T00:45Z = 02:45 CEST */
        1729990800, /* 10-27T01:00Z = 02:00 CET */
        1729991700, /* 10-27T01:15Z = 02:15 CET */
        1729992600, /* 10-27T01:30Z = 02:30 CET */
        1729993500, /* 10-27T01:45Z = 02:45 CET */
        1729994400, /* 10-27T02:00Z = 03:00 CET */
    } },
    /* America/New_York spring */
    { "America/New_York", "30 2 * * *", 1709924400, 1710183600, 3, {
        1709969400, /* 03-09T07:30Z = 02:30 EST */
        1710054000, /* 03-10T07:00Z = 03:00 EDT */
        1710138600, /* 03-11T06:30Z = 02:30 EDT */
    } },
    /* America/New_York spring */
    { "America/New_York", "30 1 * * *", 1709924400, 1710183600, 3, {
        1709965800, /* 03-09T06:30Z = 01:30 EST */
        1710052200, /* 03-10T06:30Z = 01:30 EST */
        1710135000, /* 03-11T05:30Z = 01:30 EDT */
    } },
    /* America/New_York spring */
    { "America/New_York", "0 * * * *", 1710043200, 1710064800, 6, {
        1710046800, /* 03-10T05:00Z = 00:00 EST */
        1710050400, /* 03-10T06:00Z = 01:00 EST */
        1710054000, /* 03-10T07:00Z = 03:00 EDT */
        1710057600, /* 03-10T08:00Z = 04:00 EDT */
        1710061200, /* 03-10T09:00Z = 05:00 EDT */
        1710064800, /* 03-10T10:00Z = 06:00 EDT */
    } },
    /* America/New_York spring */
    { "America/New_York", "30 * * * *", 1710043200, 1710064800, 6, {
        1710045000, /* 03-10T04:30Z = 23:30 EST */
        1710048600, /* 03-10T05:30Z = 00:30 EST */
        1710052200, /* 03-10T06:30Z = 01:30 EST */
        1710055800, /* 03-10T07:30Z = 03:30 EDT */
        1710059400, /* 03-10T08:30Z = 04:30 EDT */
        1710063000, /* 03-10T09:30Z = 05:30 EDT */
    } },
    /* America/New_York spring */
    { "America/New_York", "*/15 * * * *", 1710050400, 1710057600, 8, {
        1710051300, /* 03-10T06:15Z = 01:15 EST */
        1710052200, /* 03-10T06:30Z = 01:30 EST */
        1710053100, /* 03-10T06:45Z = 01:45 EST */
        1710054000, /* 03-10T07:00Z = 03:00 EDT */
        1710054900, /* 03-10T07:15Z = 03:15 EDT */
        1710055800, /* 03-10T07:30Z = 03:30 EDT */
        1710056700, /* 03-10T07:45Z = 03:45 EDT */
        1710057600, /* 03-10T08:00Z = 04:00 EDT */
    } },
    /* America/New_York fall */
    { "America/New_York", "30 2 * * *", 1730484000, 1730743200, 3, {
        1730529000, /* 11-02T06:30Z = 02:30 EDT */
        1730619000, /* 11-03T07:30Z = 02:30 EST */
        1730705400, /* 11-04T07:30Z = 02:30 EST */
    } },
    /* America/New_York fall */
    { "America/New_York", "30 1 * * *", 1730484000, 1730743200, 3, {
        1730525400, /* 11-02T05:30Z = 01:30 EDT */
        1730611800, /* 11-03T05:30Z = 01:30 EDT */
        1730701800, /* 11-04T06:30Z = 01:30 EST */
    } },
    /* America/New_York fall */
    { "America/New_York", "0 * * * *", 1730602800, 1730624400, 6, {
        1730606400, /* 11-03T04:00Z = 00:00 EDT */
        1730610000, /* 11-03T05:00Z = 01:00 EDT */
        1730613600, /* 11-03T06:00Z = 01:00 EST */
        1730617200, /* 11-03T07:00Z = 02:00 EST */
        1730620800, /* 11-03T08:00Z = 03:00 EST */
        1730624400, /* 11-03T09:00Z = 04:00 EST */
    } },
    /* America/New_York fall */
    { "America/New_York", "30 * * * *", 1730602800, 1730624400, 6, {
        1730604600, /* 11-03T03:30Z = 23:30 EDT */
        1730608200, /* 11-03T04:30Z = 00:30 EDT */
        1730611800, /* 11-03T05:30Z = 01:30 EDT */
        1730615400, /* 11-03T06:30Z = 01:30 EST */
        1730619000, /* 11-03T07:30Z = 02:30 EST */
        1730622600, /* 11-03T08:30Z = 03:30 EST */
    } },
    /* America/New_York fall */
    { "America/New_York", "*/15 * * * *", 1730610000, 1730617200, 8, {
        1730610900, /* 11-03T05:15Z = 01:15 EDT */
        1730611800, /* 11-03T05:30Z = 01:30 EDT */
        1730612700, /* 11-03T05:45Z = 01:45 EDT */
        1730613600, /* 11-03T06:00Z = 01:00 EST */
        1730614500, /* 11-03T06:15Z = 01:15 EST */
        1730615400, /* 11-03T06:30Z = 01:30 EST */
        1730616300, /* 11-03T06:45Z = 01:45 EST */
        1730617200, /* 11-03T07:00Z = 02:00 EST */
    } },
    /* Europe/Berlin spring 2040 (footer) */
    { "Europe/Berlin", "30 2 * * *", 2216120400, 2216379600, 3, {
        2216165400, /* 03-24T01:30Z = 02:30 CET */
        2216250000, /* 03-25T01:00Z = 03:00 CEST */
        2216334600, /* 03-26T00:30Z = 02:30 CEST */
    } },
    /* Europe/Berlin spring 2040 (footer) */
    { "Europe/Berlin", "30 1 * * *", 2216120400, 2216379600, 3, {
        2216161800, /* 03-24T00:30Z = 01:30 CET */
        2216248200, /* 03-25T00:30Z = 01:30 CET */
        2216331000, /* 03-25T23:30Z = 01:30 CEST */
    } },
    /* Europe/Berlin spring 2040 (footer) */
    { "Europe/Berlin", "0 * * * *", 2216239200, 2216260800, 6, {
        2216242800, /* 03-24T23:00Z = 00:00 CET */
        2216246400, /* 03-25T00:00Z = 01:00 CET */
        2216250000, /* 03-25T01:00Z = 03:00 CEST */
        2216253600, /* 03-25T02:00Z = 04:00 CEST */
        2216257200, /* 03-25T03:00Z = 05:00 CEST */
        2216260800, /* 03-25T04:00Z = 06:00 CEST */
    } },
    /* Europe/Berlin spring 2040 (footer) */
    { "Europe/Berlin", "30 * * * *", 2216239200, 2216260800, 6, {
        2216241000, /* 03-24T22:30Z = 23:30 CET */
        2216244600, /* 03-24T23:30Z = 00:30 CET */
        2216248200, /* 03-25T00:30Z = 01:30 CET */
        2216251800, /* 03-25T01:30Z = 03:30 CEST */
        2216255400, /* 03-25T02:30Z = 04:30 CEST */
        2216259000, /* 03-25T03:30Z = 05:30 CEST */
    } },
    /* Europe/Berlin spring 2040 (footer) */
    { "Europe/Berlin", "*/15 * * * *", 2216246400, 2216253600, 8, {
        2216247300, /* 03-25T00:15Z = 01:15 CET */
        2216248200, /* 03-25T00:30Z = 01:30 CET */
        2216249100, /* 03-25T00:45Z = 01:45 CET */
        2216250000, /* 03-25T01:00Z = 03:00 CEST */
        2216250900, /* 03-25T01:15Z = 03:15 CEST */
        2216251800, /* 03-25T01:30Z = 03:30 CEST */
        2216252700, /* 03-25T01:45Z = 03:45 CEST */
        2216253600, /* 03-25T02:00Z = 04:00 CEST */
    } },
    /* Europe/Berlin fall 2040 (footer) */
    { "Europe/Berlin", "30 2 * * *", 2234869200, 2235128400, 3, {
        2234910600, /* 10-27T00:30Z = 02:30 CEST */
        2234997000, /* 10-28T00:30Z = 02:30 CEST */
        2235087000, /* 10-29T01:30Z = 02:30 CET */
    } },
    /* Europe/Berlin fall 2040 (footer) */
    { "Europe/Berlin", "30 1 * * *", 2234869200, 2235128400, 3, {
        2234907000, /* 10-26T23:30Z = 01:30 CEST */
        2234993400, /* 10-27T23:30Z = 01:30 CEST */
        2235083400, /* 10-29T00:30Z = 01:30 CET */
    } },
    /* Europe/Berlin fall 2040 (footer) */
    { "Europe/Berlin", "0 * * * *", 2234988000, 2235009600, 6, {
        2234991600, /* 10-27T23:00Z = 01:00 CEST */
        2234995200, /* 10-28T00:00Z = 02:00 CEST */
        2234998800, /* 10-28T01:00Z = 02:00 CET */
        2235002400, /* 10-28T02:00Z = 03:00 CET */
        2235006000, /* 10-28T03:00Z = 04:00 CET */
        2235009600, /* 10-28T04:00Z = 05:00 CET */
    } },
    /* Europe/Berlin fall 2040 (footer) */
    { "Europe/Berlin", "30 * * * *", 2234988000, 2235009600, 6, {
        2234989800, /* 10-27T22:30Z = 00:30 CEST */
        2234993400, /* 10-27T23:30Z = 01:30 CEST */
        2234997000, /* 10-28T00:30Z = 02:30 CEST */
        2235000600, /* 10-28T01:30Z = 02:30 CET */
        2235004200, /* 10-28T02:30Z = 03:30 CET */
        2235007800, /* 10-28T03:30Z = 04:30 CET */
    } },
    /* Europe/Berlin fall 2040 (footer) */
    { "Europe/Berlin", "*/15 * * * *", 2234995200, 2235002400, 8, {
        2234996100, /* 10-28T00:15Z = 02:15 CEST */
        2234997000, /* 10-28T00:30Z = 02:30 CEST */
        2234997900, /* 10-28T00:45Z = 02:45 CEST */
        2234998800, /* 10-28T01:00Z = 02:00 CET */
        2234999700, /* 10-28T01:15Z = 02:15 CET */
        2235000600, /* 10-28T01:30Z = 02:30 CET */
        2235001500, /* 10-28T01:45Z = 02:45 CET */
        2235002400, /* 10-28T02:00Z = 03:00 CET */
    } },
    /* Australia/Lord_Howe spring (+30 min) */
    { "Australia/Lord_Howe", "15 2 * * *", 1728012600, 1728271800, 3, {
        1728056700, /* 10-04T15:45Z = 02:15 +1030 */
        1728142200, /* 10-05T15:30Z = 02:30 +11 */
        1728227700, /* 10-06T15:15Z = 02:15 +11 */
    } },
    /* Australia/Lord_Howe spring (+30 min) */
    { "Australia/Lord_Howe", "45 1 * * *", 1728012600, 1728271800, 3, {
        1728054900, /* 10-04T15:15Z = 01:45 +1030 */
        1728141300, /* 10-05T15:15Z = 01:45 +1030 */
        1728225900, /* 10-06T14:45Z = 01:45 +11 */
    } },
    /* Australia/Lord_Howe spring (+30 min) */
    { "Australia/Lord_Howe", "15 * * * *", 1728131400, 1728153000, 6, {
        1728132300, /* 10-05T12:45Z = 23:15 +1030 */
        1728135900, /* 10-05T13:45Z = 00:15 +1030 */
        1728139500, /* 10-05T14:45Z = 01:15 +1030 */
        1728144900, /* 10-05T16:15Z = 03:15 +11 */
        1728148500, /* 10-05T17:15Z = 04:15 +11 */
        1728152100, /* 10-05T18:15Z = 05:15 +11 */
    } },
    /* Australia/Lord_Howe spring (+30 min) */
    { "Australia/Lord_Howe", "45 * * * *", 1728131400, 1728153000, 6, {
        1728134100, /* 10-05T13:15Z = 23:45 +1030 */
        1728137700, /* 10-05T14:15Z = 00:45 +1030 */
        1728141300, /* 10-05T15:15Z = 01:45 +1030 */
        1728143100, /* 10-05T15:45Z = 02:45 +11 */
        1728146700, /* 10-05T16:45Z = 03:45 +11 */
        1728150300, /* 10-05T17:45Z = 04:45 +11 */
    } },
    /* Australia/Lord_Howe spring (+30 min) */
    { "Australia/Lord_Howe", "*/15 * * * *", 1728138600, 1728145800, 8, {
        1728139500, /* 10-05T14:45Z = 01:15 +1030 */
        1728140400, /* 10-05T15:00Z = 01:30 +1030 */
        1728141300, /* 10-05T15:15Z = 01:45 +1030 */
        1728142200, /* 10-05T15:30Z = 02:30 +11 */
        1728143100, /* 10-05T15:45Z = 02:45 +11 */
        1728144000, /* 10-05T16:00Z = 03:00 +11 */
        1728144900, /* 10-05T16:15Z = 03:15 +11 */
        1728145800, /* 10-05T16:30Z = 03:30 +11 */
    } },
    /* Australia/Lord_Howe fall (-30 min) */
    { "Australia/Lord_Howe", "15 2 * * *", 1712286000, 1712545200, 3, {
        1712330100, /* 04-05T15:15Z = 02:15 +11 */
        1712418300, /* 04-06T15:45Z = 02:15 +1030 */
        1712504700, /* 04-07T15:45Z = 02:15 +1030 */
    } },
    /* Australia/Lord_Howe fall (-30 min) */
    { "Australia/Lord_Howe", "45 1 * * *", 1712286000, 1712545200, 3, {
        1712328300, /* 04-05T14:45Z = 01:45 +11 */
        1712414700, /* 04-06T14:45Z = 01:45 +11 */
        1712502900, /* 04-07T15:15Z = 01:45 +1030 */
    } },
    /* Australia/Lord_Howe fall (-30 min) */
    { "Australia/Lord_Howe", "15 * * * *", 1712404800, 1712426400, 6, {
        1712405700, /* 04-06T12:15Z = 23:15 +11 */
        1712409300, /* 04-06T13:15Z = 00:15 +11 */
        1712412900, /* 04-06T14:15Z = 01:15 +11 */
        1712418300, /* 04-06T15:45Z = 02:15 +1030 */
        1712421900, /* 04-06T16:45Z = 03:15 +1030 */
        1712425500, /* 04-06T17:45Z = 04:15 +1030 */
    } },
    /* Australia/Lord_Howe fall (-30 min) */
    { "Australia/Lord_Howe", "45 * * * *", 1712404800, 1712426400, 6, {
        1712407500, /* 04-06T12:45Z = 23:45 +11 */
        1712411100, /* 04-06T13:45Z = 00:45 +11 */
        1712414700, /* 04-06T14:45Z = 01:45 +11 */
        1712416500, /* 04-06T15:15Z = 01:45 +1030 */
        1712420100, /* 04-06T16:15Z = 02:45 +1030 */
        1712423700, /* 04-06T17:15Z = 03:45 +1030 */
    } },
    /* Australia/Lord_Howe fall (-30 min) */
    { "Australia/Lord_Howe", "*/15 * * * *", 1712412000, 1712419200, 8, {
        1712412900, /* 04-06T14:15Z = 01:15 +11 */
        1712413800, /* 04-06T14:30Z = 01:30 +11 */
        1712414700, /* 04-06T14:45Z = 01:45 +11 */
        1712415600, /* 04-06T15:00Z = 01:30 +1030 */
        1712416500, /* 04-06T15:15Z = 01:45 +1030 */
        1712417400, /* 04-06T15:30Z = 02:00 +1030 */
        1712418300, /* 04-06T15:45Z = 02:15 +1030 */
        1712419200, /* 04-06T16:00Z = 02:30 +1030 */
    } },
};

static void test_dst_transitions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dstvecs / sizeof *dstvecs; i++) {
        const struct dstvec *v = &dstvecs[i];
        expect_fires(v->zone, v->expr, v->start, v->end, v->want, v->n);
    }
}

/* The policy spelled out on Berlin, independent of the tables above. */
static void test_dst_policy_berlin(void **state)
{
    (void)state;
    tz_t *tz = load("Europe/Berlin");
    cron_t *c = parse("30 2 * * *");
    int64_t t;
    /* Spring forward: 02:30 does not exist -> 03:00 CEST = 01:00Z. */
    assert_int_equal(cron_next(c, tz, 1711839600 /* 03-30T23:00Z */, &t), 0);
    assert_int_equal(t, 1711846800);
    /* Fall back: first 02:30 (CEST, 00:30Z) only. */
    assert_int_equal(cron_next(c, tz, 1729980000, &t), 0);
    assert_int_equal(t, 1729989000);
    assert_int_equal(cron_next(c, tz, t, &t), 0);
    assert_int_equal(t, 1730079000); /* next day, 02:30 CET */
    cron_free(c);
    /* Several skipped times in one gap fire once, at the gap's end, and a
     * match right after the gap does not fire a second time. */
    c = parse("0,30 2,3 * * *");
    assert_int_equal(cron_next(c, tz, 1711839600, &t), 0);
    assert_int_equal(t, 1711846800); /* 03:00 CEST */
    assert_int_equal(cron_next(c, tz, t, &t), 0);
    assert_int_equal(t, 1711848600); /* 03:30 CEST */
    cron_free(c);
    tz_free(tz);
}

static void test_utc_and_odd_offsets(void **state)
{
    (void)state;
    static const int64_t weekdays[] = { 1725528600, 1725615000, 1725874200, 1725960600 };
    expect_fires("UTC", "30 9 * * 1-5", 1725494400, 1726012800, weekdays, 4);
    static const int64_t ktm[] = { 1717211700, 1717298100 }; /* 09:00 +0545 = 03:15Z */
    expect_fires("Asia/Kathmandu", "0 9 * * *", 1717200000, 1717372800, ktm, 2);
}

static void test_dom_dow(void **state)
{
    (void)state;
    /* Both restricted: the 13th OR any Monday (Vixie). */
    static const int64_t either[] = { 1725235200, 1725840000, 1726185600, 1726444800,
                                      1727049600, 1727654400 };
    expect_fires("UTC", "0 0 13 * MON", 1725148800, 1727740800, either, 6);
    /* Day-of-month starts with '*': both must match (odd days that are Mondays). */
    static const int64_t both[] = { 1725840000, 1727049600, 1728259200, 1729468800 };
    expect_fires("UTC", "0 0 */2 * 1", 1725148800, 1730419200, both, 4);
    /* "1-7" and MON both restricted: first week OR Mondays. */
    static const int64_t week[] = { 1725235200, 1725321600, 1725408000, 1725494400, 1725580800,
                                    1725667200, 1725840000, 1726444800, 1727049600, 1727654400,
                                    1727740800 };
    expect_fires("UTC", "0 0 1-7 * MON", 1725148800, 1727827200 - 1, week, 11);
}

/* Equivalent spellings give the same fires. */
static void test_equivalent_spellings(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        { "0 0 * * 7", "0 0 * * 0" },         { "0 0 * * sun", "0 0 * * SUN" },
        { "0 0 1 jan *", "@yearly" },         { "0 0 1 1 *", "@annually" },
        { "0 0 1 * *", "@monthly" },          { "0 0 * * 0", "@weekly" },
        { "0 0 * * *", "@daily" },            { "0 0 * * *", "@MIDNIGHT" },
        { "0 * * * *", "@hourly" },           { "0-59/15 * * * *", "*/15 * * * *" },
        { "0,15,30,45 * * * *", "*/15 * * * *" }, { "1,3,5,7,9 * * * *", "1-10/2 * * * *" },
        { "5/20 * * * *", "5,25,45 * * * *" }, { "0 0 * * MON-FRI", "0 0 * * 1-5" },
        { "0 0 * * 5-7", "0 0 * * 0,5,6" },   { "0 0 * Jan-Mar *", "0 0 * 1-3 *" },
        { "  0 0 * * *\n", "0\t0 * * *" },
    };
    tz_t *tz = load("Europe/Berlin");
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        cron_t *a = parse(pairs[i][0]), *b = parse(pairs[i][1]);
        int64_t ta = 1704067200, tb = ta;
        for (int k = 0; k < 50; k++) {
            assert_int_equal(cron_next(a, tz, ta, &ta), 0);
            assert_int_equal(cron_next(b, tz, tb, &tb), 0);
            if (ta != tb)
                fail_msg("'%s' vs '%s': %lld != %lld", pairs[i][0], pairs[i][1],
                         (long long)ta, (long long)tb);
        }
        cron_free(a);
        cron_free(b);
    }
    tz_free(tz);
}

static void test_feb29_and_year_boundary(void **state)
{
    (void)state;
    static const int64_t leap[] = { 1835434800 }; /* 2028-02-29 12:00 CET */
    expect_fires("Europe/Berlin", "0 12 29 2 *", 1709251200, 1835434800, leap, 1);
    /* 2100 is not a leap year: 2096 -> 2104. */
    tz_t *tz = load("UTC");
    cron_t *c = parse("0 0 29 2 *");
    int64_t t;
    assert_int_equal(cron_next(c, tz, 3981398400, &t), 0);
    assert_int_equal(t, 4233686400);
    cron_free(c);
    tz_free(tz);
    static const int64_t newyear[] = { 1735686000 }; /* 2024-12-31T23:00Z = 00:00 CET */
    expect_fires("Europe/Berlin", "0 0 1 1 *", 1735516800, 1735776000, newyear, 1);
    static const int64_t nye[] = { 1735707540 }; /* 2025-01-01T04:59Z = 23:59 EST */
    expect_fires("America/New_York", "59 23 31 12 *", 1735516800, 1735776000, nye, 1);
}

static void test_never_fires(void **state)
{
    (void)state;
    static const char *const never[] = { "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *" };
    tz_t *tz = load("Europe/Berlin");
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        cron_t *c = parse(never[i]);
        int64_t t = 0;
        nb_err_t err = { 0, "" };
        assert_int_equal(cron_next_err(c, tz, 1704067200, &t, &err), -ENOENT);
        assert_string_equal(err.msg, "never fires");
        assert_int_equal(cron_next(c, tz, 1704067200, &t), -ENOENT);
        cron_free(c);
    }
    /* Close to the end of the supported range: ERANGE/ENOENT, not a hang. */
    cron_t *c = parse("0 0 1 1 *");
    int64_t t;
    assert_int_equal(cron_next(c, tz, TZ_UTC_MAX - 10, &t), -ENOENT);
    assert_int_equal(cron_next(c, tz, TZ_UTC_MAX + 1, &t), -ERANGE);
    assert_int_equal(cron_next(c, NULL, 0, &t), -EINVAL);
    cron_free(c);
    tz_free(tz);
}

static void test_intervals(void **state)
{
    (void)state;
    static const struct { const char *expr; int64_t period; } iv[] = {
        { "30s", 30 }, { "5m", 300 }, { "2h", 7200 }, { "1d", 86400 }, { "1h30m", 5400 },
        { "1d2h3m4s", 93784 }, { "@every 90s", 90 }, { "10M", 600 },
    };
    for (size_t i = 0; i < sizeof iv / sizeof *iv; i++) {
        cron_t *c = parse(iv[i].expr);
        assert_int_equal(cron_is_interval(c), 1);
        assert_int_equal(cron_interval(c), iv[i].period);
        cron_free(c);
    }
    cron_t *c = parse("5m");
    int64_t t;
    /* Epoch anchor: wall-clock-aligned in UTC. */
    assert_int_equal(cron_next(c, NULL, 1000, &t), 0);
    assert_int_equal(t, 1200);
    assert_int_equal(cron_next(c, NULL, 1200, &t), 0);
    assert_int_equal(t, 1500);
    /* Anchored to a start date: the grid extends both ways. */
    cron_set_anchor(c, 1000007);
    assert_int_equal(cron_next(c, NULL, 1000007, &t), 0);
    assert_int_equal(t, 1000307);
    assert_int_equal(cron_next(c, NULL, 1000006, &t), 0);
    assert_int_equal(t, 1000007);
    assert_int_equal(cron_next(c, NULL, 999000, &t), 0);
    assert_int_equal(t, 999107);
    assert_int_equal(cron_next(c, NULL, -5, &t), 0);
    assert_int_equal(t, 107);
    cron_free(c);
    /* "1d" is 86400 s of real time, not "same wall clock": across Berlin's
     * spring-forward it moves from 00:00 CET to 01:00 CEST. */
    c = parse("1d");
    cron_set_anchor(c, 1711753200); /* 2024-03-29T23:00Z = 03-30 00:00 CET */
    tz_t *tz = load("Europe/Berlin");
    assert_int_equal(cron_next(c, tz, 1711753200, &t), 0);
    assert_int_equal(t, 1711839600);
    assert_int_equal(cron_next(c, tz, t, &t), 0);
    assert_int_equal(t, 1711926000); /* 03-31T23:00Z = 04-01 01:00 CEST */
    tz_free(tz);
    cron_free(c);
}

static void expect_error(const char *expr, const char *msg)
{
    cron_t *c = (cron_t *)1;
    nb_err_t err = { 0, "" };
    assert_int_equal(cron_parse(expr, &c, &err), -EINVAL);
    assert_null(c);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("'%s':\n got  \"%s\"\n want \"%s\"", expr, err.msg, msg);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("0 24 * * *", "field 2 (hour): 24 is out of range 0-23 at column 3");
    expect_error("0  24 * * *", "field 2 (hour): 24 is out of range 0-23 at column 4");
    expect_error("60 * * * *", "field 1 (minute): 60 is out of range 0-59 at column 1");
    expect_error("* * 0 * *", "field 3 (day-of-month): 0 is out of range 1-31 at column 5");
    expect_error("* * * 13 *", "field 4 (month): 13 is out of range 1-12 at column 7");
    expect_error("* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7 at column 9");
    expect_error("* * * * MON-FOO", "field 5 (day-of-week): unknown name 'FOO' at column 13");
    expect_error("* * * JANUARY *", "field 4 (month): unknown name 'JANUARY' at column 7");
    expect_error("MON * * * *",
                 "field 1 (minute): names are only allowed in month and day-of-week at column 1");
    expect_error("*/0 * * * *", "field 1 (minute): step 0 is out of range 1-60 at column 3");
    expect_error("* */25 * * *", "field 2 (hour): step 25 is out of range 1-24 at column 5");
    expect_error("10-5 * * * *", "field 1 (minute): range 10-5 is backwards at column 4");
    expect_error("1,,2 * * * *", "field 1 (minute): unexpected character ',' at column 3");
    expect_error("1, * * * *", "field 1 (minute): list ends with ',' at column 2");
    expect_error("1- * * * *", "field 1 (minute): range has no end at column 2");
    expect_error("*/ * * * *", "field 1 (minute): step has no value at column 2");
    expect_error("5x * * * *", "field 1 (minute): unexpected character 'x' at column 2");
    expect_error("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
    expect_error("* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), "
                                "got 6: extra field at column 11");
    expect_error("", "empty schedule");
    expect_error("   ", "empty schedule");
    expect_error("@reboot", "unknown macro '@reboot' at column 1 (use @yearly, @annually, "
                            "@monthly, @weekly, @daily, @midnight, @hourly or @every)");
    expect_error("@daily 5", "unexpected text after @daily at column 7");
    expect_error("5x", "interval: unknown unit 'x' at column 2 (use s, m, h or d)");
    expect_error("30m1h", "interval: unit 'h' at column 5 is repeated or out of order "
                          "(write days, hours, minutes, seconds)");
    expect_error("1h30", "interval: number at column 3 has no unit (s, m, h or d)");
    expect_error("0s", "interval: must be longer than zero at column 1");
    expect_error("99999999d", "interval: longer than 3660 days at column 1");
    expect_error("@every 5q", "interval: unknown unit 'q' at column 9 (use s, m, h or d)");
    expect_error("0 0 * * \x01", "unexpected character 0x01 at column 9");
    expect_error("0 0 * * 1\xc3\xa9", "unexpected character 0xc3 at column 10");
}

static void expect_describe(const char *expr, const char *want)
{
    cron_t *c = parse(expr);
    char *d = cron_describe(c);
    if (strcmp(d, want) != 0)
        fail_msg("'%s':\n got  \"%s\"\n want \"%s\"", expr, d, want);
    free(d);
    cron_free(c);
}

static void test_describe(void **state)
{
    (void)state;
    expect_describe("0 5 * * *", "every day at 05:00");
    expect_describe("*/15 * * * *", "every 15 minutes");
    expect_describe("30 9 * * 1-5", "at 09:30 on Monday through Friday");
    expect_describe("30s", "every 30 seconds");
    expect_describe("1m", "every minute");
    expect_describe("1h30m", "every 1 hour and 30 minutes");
    expect_describe("1d", "every day");
    expect_describe("2d", "every 2 days");
    expect_describe("* * * * *", "every minute");
    expect_describe("@hourly", "every hour");
    expect_describe("30 * * * *", "every hour at minute 30");
    expect_describe("0 */2 * * *", "every 2 hours");
    expect_describe("@daily", "every day at 00:00");
    expect_describe("@weekly", "at 00:00 on Sunday");
    expect_describe("@monthly", "at 00:00 on day 1 of the month");
    expect_describe("@yearly", "at 00:00 on January 1");
    expect_describe("0 9,17 * * *", "every day at 09:00 and 17:00");
    expect_describe("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday");
    expect_describe("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month");
    expect_describe("0 12 * * 1,3,5", "at 12:00 on Monday, Wednesday and Friday");
    expect_describe("0 6 * 6-8 *", "at 06:00 in June through August");
    expect_describe("*/10 9-17 * * 1-5",
                    "every 10 minutes past hours 9 through 17 on Monday through Friday");
    expect_describe("0 0 */2 * 1", "at 00:00 every 2 days of the month if it is Monday");
    expect_describe("0 0 29 2 *", "at 00:00 on February 29");
    expect_describe("0 0 1-31 * 1-7", "every day at 00:00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dst_transitions),
        cmocka_unit_test(test_dst_policy_berlin),
        cmocka_unit_test(test_utc_and_odd_offsets),
        cmocka_unit_test(test_dom_dow),
        cmocka_unit_test(test_equivalent_spellings),
        cmocka_unit_test(test_feb29_and_year_boundary),
        cmocka_unit_test(test_never_fires),
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
