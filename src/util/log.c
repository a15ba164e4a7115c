/* log — see log.h. */
#include "util/log.h"
#include "util/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_min_level = LOG_WARN;

static const char *log_names[] = { "debug", "info", "warn", "error", "off" };

void log_set_level(int level) { log_min_level = level; }

int log_level_parse(const char *s)
{
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcmp(s, log_names[i]) == 0) return i;
    return -1;
}

void log_write(int level, const char *msg, const char *fmt, ...)
{
    char ts[40], line[4096];
    time_iso8601_utc(time_now_us(), ts, sizeof ts, 1);
    int n = snprintf(line, sizeof line, "ts=%s level=%s msg=\"%s\"", ts, log_names[level], msg);
    if (n < 0) return;
    if (fmt && *fmt && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}
