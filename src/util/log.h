/*
 * log — structured key=value log lines on stderr.
 *
 * The macro checks the level before any formatting happens (redis
 * serverLog), so a debug line in a hot path costs one comparison when debug
 * logging is off.  Lines look like:
 *     ts=2026-11-22T05:10:00.123Z level=info msg="kernel ready" kernel=python3
 * Callers pass the key=value tail already formatted; values with spaces are
 * quoted by the caller (log_quote helps).
 */
#ifndef NBHUB_LOG_H
#define NBHUB_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

extern int log_min_level;

void log_set_level(int level);
/* Parse "debug|info|warn|error|off"; returns -1 if unknown. */
int  log_level_parse(const char *s);
/* Batch this thread's info/debug lines until log_flush (one write per
 * flush instead of one per line: nbhub serve's access log under load);
 * log_batch(0) flushes and ends it.  Only for the thread that runs a loop
 * calling log_flush before it sleeps. */
void log_batch(int on);
void log_flush(void);
void log_write(int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG(level, msg, ...) \
    do { if ((level) >= log_min_level) log_write((level), (msg), __VA_ARGS__); } while (0)
#define LOG_D(msg, ...) LOG(LOG_DEBUG, msg, __VA_ARGS__)
#define LOG_I(msg, ...) LOG(LOG_INFO, msg, __VA_ARGS__)
#define LOG_W(msg, ...) LOG(LOG_WARN, msg, __VA_ARGS__)
#define LOG_E(msg, ...) LOG(LOG_ERROR, msg, __VA_ARGS__)

#endif
