/* timeutil — see timeutil.h. */
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *time_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
    return p + width;
}

void time_iso8601_utc(int64_t us, char *out, size_t n, int zulu)
{
    time_t secs = (time_t)(us / 1000000);
    int frac = (int)(us % 1000000);
    /* Most calls fall in the same second as the last one (a date per kernel
     * message): keep its "YYYY-MM-DDTHH:MM:SS" and skip gmtime_r's lock. */
    static _Thread_local time_t last_secs = -1;
    static _Thread_local char last_head[20];
    if (secs == last_secs && n >= 28 && frac >= 0) {
        memcpy(out, last_head, 19);
        char *p = out + 19;
        *p++ = '.';
        p = time_digits(p, frac, 6);
        if (zulu) *p++ = 'Z';
        *p = '\0';
        return;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (n < 28 || frac < 0 || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, frac, zulu ? "Z" : "");
        return;
    }
    /* by hand: snprintf was 3 % of nbhub run's CPU per cell (a date per message) */
    char *p = time_digits(out, tm.tm_year + 1900, 4);
    *p++ = '-';
    p = time_digits(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = time_digits(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = time_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = time_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = time_digits(p, tm.tm_sec, 2);
    *p++ = '.';
    p = time_digits(p, frac, 6);
    if (zulu) *p++ = 'Z';
    *p = '\0';
    memcpy(last_head, out, 19);
    last_secs = secs;
}
