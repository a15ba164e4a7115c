/* log — see log.h. */
#include "util/log.h"
#include "util/timeutil.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_min_level = LOG_WARN;

static const char *log_names[] = { "debug", "info", "warn", "error", "off" };

void log_set_level(int level) { log_min_level = level; }

/* Batching (log_batch): the info and debug lines of the batching thread
 * wait here for log_flush, which nbhub serve calls once per loop turn before
 * the loop sleeps; warnings and errors, and other threads' lines, are written
 * at once (after what waits, so the order holds within the thread). */
static int batch_on;
static pthread_t batch_thread;
static char batch_buf[64 * 1024];
static size_t batch_len;

void log_flush(void)
{
    if (!batch_len) return;
    fwrite(batch_buf, 1, batch_len, stderr);
    batch_len = 0;
}

void log_batch(int on)
{
    log_flush();
    batch_on = on;
    batch_thread = pthread_self();
}

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
    if (batch_on && pthread_equal(pthread_self(), batch_thread)) {
        size_t len = strnlen(line, sizeof line - 1);
        if (level < LOG_WARN && len + 1 <= sizeof batch_buf) {
            if (batch_len + len + 1 > sizeof batch_buf) log_flush();
            memcpy(batch_buf + batch_len, line, len);
            batch_buf[batch_len + len] = '\n';
            batch_len += len + 1;
            return;
        }
        log_flush();
    }
    fprintf(stderr, "%s\n", line);
}
