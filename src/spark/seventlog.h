/*
 * seventlog — a Spark application's jobs read back from its event log
 * (spark.eventLog.enabled: one JSON object per line, JsonProtocol), in the
 * shape of the driver's /api/v1/applications/ID/jobs answer, so that
 * sprogress_summary condenses both alike.
 *
 * Why: the driver's REST API lives only as long as the driver.  A notebook
 * whose jobs all finish within the first poll (or before the API has
 * answered once: its first request costs the driver about a second) would
 * otherwise end with no jobs on record.  The event log is written by the
 * driver as it goes and kept with the run, so a task's final progress is
 * read from it once the driver has exited: complete, and free of races.
 *
 * Counting follows Spark's AppStatusListener: a job's tasks are those of
 * its stages; tasks of stages never submitted (reused shuffle output) are
 * skipped; a killed task is neither done nor failed.  A job without its
 * JobEnd (the driver was killed) is "UNKNOWN".  Lines that are not JSON or
 * not a known event are ignored: a log cut short by a kill still counts.
 *
 * Ownership: the result is a new reference; *app_id (if asked) is new.
 */
#ifndef NBHUB_SEVENTLOG_H
#define NBHUB_SEVENTLOG_H

#include <jansson.h>
#include <stdio.h>

/* The jobs in f, newest first (Spark's order); *app_id the application's
 * id from its ApplicationStart, or NULL. */
json_t *seventlog_jobs(FILE *f, char **app_id);

/* The event log in dir: the file named after app_id (with or without
 * .inprogress) if given, else the newest file.  NULL if there is none. */
char *seventlog_find(const char *dir, const char *app_id);

#endif
