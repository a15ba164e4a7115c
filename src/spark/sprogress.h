/*
 * sprogress — a Spark application's progress, condensed from its REST API
 * (/api/v1/applications/ID/jobs and .../stages?status=active, as the
 * driver's UI serves them) into the small document nbhub keeps on a task
 * run and sends over SSE:
 *
 *   {"app_id": "app-2026...", "jobs": [{"id", "name", "status", "tasks",
 *    "done", "active", "failed", "skipped", "stages", "stages_done"}...],
 *    "active_stages": [{"id", "attempt", "name", "tasks", "done", "active",
 *    "failed"}...], "totals": {"jobs", "running", "succeeded", "failed"}}
 *
 * Jobs are newest first (Spark's order), at most SPROGRESS_MAX_JOBS.  Pure
 * functions on parsed JSON: unit-tested without Spark.  Ownership: the
 * result is a new reference; the inputs are borrowed and may be NULL.
 */
#ifndef NBHUB_SPROGRESS_H
#define NBHUB_SPROGRESS_H

#include <jansson.h>

#define SPROGRESS_MAX_JOBS 50

json_t *sprogress_summary(const char *app_id, const json_t *jobs, const json_t *stages);

/* The id of the application named name in an /api/v1/applications answer
 * (the driver serves one: its own), or NULL.  Borrowed from apps. */
const char *sprogress_app_id(const json_t *apps);

#endif
