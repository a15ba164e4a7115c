/*
 * timeutil — wall and monotonic clocks in microseconds, ISO 8601 formatting
 * the way Jupyter and papermill write timestamps.
 */
#ifndef NBHUB_TIMEUTIL_H
#define NBHUB_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock microseconds since the epoch. */
int64_t time_now_us(void);
/* Monotonic milliseconds (for timeouts). */
uint64_t time_mono_ms(void);
/* "2026-11-22T05:10:00.123456Z" (zulu=1) or "...123456+00:00"-less form
 * "2026-11-22T05:10:00.123456" (zulu=0, papermill's utcnow().isoformat()). */
void time_iso8601_utc(int64_t us, char *out, size_t n, int zulu);

#endif
