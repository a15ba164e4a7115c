/*
 * seventlog — a Spark application's jobs and stages read from its event
 * log (spark.eventLog.enabled: one JSON object per line, JsonProtocol), in
 * the shapes of the driver's REST API (/api/v1/applications/ID/jobs and
 * .../stages?status=active), so that sprogress_summary condenses both alike.
 *
 * Why the event log and not the REST API: the driver writes the log as it
 * goes, and nbhub reads the file; nothing asks the driver anything.  The
 * REST API costs the driver about a second of CPU when it first answers
 * (Jersey starting up: +4.6 % on a 24 s job, bench/RESULTS.md) and dies with
 * the driver, so a notebook whose jobs all end before the first answer
 * would have no jobs on record.  The log is complete, kept with the run,
 * and read incrementally: seventlog_feed takes the bytes appended since the
 * last call (a partial last line waits for the rest).  The driver flushes it
 * at every job and stage start and end; task ends in between reach the file
 * in chunks of its writer's buffer (8 KB: a few tasks).
 *
 * Counting follows Spark's AppStatusListener: a job's tasks are those of
 * its stages; tasks of stages never submitted (reused shuffle output) are
 * skipped; a killed task is neither done nor failed.  A job without its
 * JobEnd is "RUNNING" while the log is live and "UNKNOWN" once it is final
 * (the driver was killed).  Lines that are not JSON or not a known event
 * are ignored: a log cut short by a kill still counts.
 *
 * Ownership: seventlog_new's log is the caller's (seventlog_free); JSON
 * results are new references; *app_id (seventlog_jobs) is new.
 */
#ifndef NBHUB_SEVENTLOG_H
#define NBHUB_SEVENTLOG_H

#include <jansson.h>
#include <stdio.h>

typedef struct seventlog seventlog_t;

seventlog_t *seventlog_new(void);
void seventlog_free(seventlog_t *l);

/* The next bytes of the log. */
void seventlog_feed(seventlog_t *l, const char *data, size_t n);
/* Everything f has past what was read before (f stays open: a log that is
 * appended to and renamed at the application's end is still the same
 * file); 0, or -1 on a read error. */
int seventlog_read(seventlog_t *l, FILE *f);
/* The log is complete: a last line without its newline counts, and jobs
 * without an end are UNKNOWN from now on. */
void seventlog_finish(seventlog_t *l);

/* The application's id from its ApplicationStart, or NULL (borrowed). */
const char *seventlog_app_id(const seventlog_t *l);
/* Its jobs, newest first, as the REST API's .../jobs. */
json_t *seventlog_jobs_json(const seventlog_t *l);
/* Its stages submitted and not ended, newest first, as .../stages?status=active. */
json_t *seventlog_active_stages(const seventlog_t *l);

/* All of f at once (a finished log): its jobs; *app_id as above, new. */
json_t *seventlog_jobs(FILE *f, char **app_id);

/* The event log in dir: the file named after app_id (with or without
 * .inprogress) if given, else the newest file modified at or after since
 * (NULL: any; the files of earlier tries of a task are older than its
 * start).  NULL if there is none. */
#include <time.h>
char *seventlog_find(const char *dir, const char *app_id, const struct timespec *since);

#endif
