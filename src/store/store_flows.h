/*
 * store_flows — flow definitions: a flow is a named DAG of notebook tasks
 * whose spec (JSON, produced by the sched layer from a flow file) is stored
 * verbatim; the store never parses it.
 *
 * `version` starts at 1 and grows by one each time the spec text changes
 * (or a soft-deleted flow is brought back), so a run can say which spec it
 * was created from (runs.flow_version) and the UI can show "edited since".
 * Deletion is soft (deleted_at): runs keep referring to their flow, and the
 * name cannot be silently reused for a different history.
 *
 * Ownership: see store.h — store_flow_t fields are owned by the caller and
 * released with store_flow_clear(); lists with store_flows_free().
 */
#ifndef NBHUB_STORE_FLOWS_H
#define NBHUB_STORE_FLOWS_H

#include "store/store.h"

typedef struct store_flow {
    char   *name;
    int64_t owner_id;        /* users.id, 0 = no owner (e.g. loaded from a file) */
    char   *spec_json;
    char   *source_path;     /* may be NULL */
    char   *source_hash;     /* may be NULL */
    int64_t version;
    int     paused;
    int64_t created_at, updated_at;
    int64_t deleted_at;      /* 0 = live */
} store_flow_t;

typedef struct store_flows {
    store_flow_t *v;
    size_t        n;
} store_flows_t;

/* What store_flow_upsert writes; strings are borrowed. */
typedef struct store_flow_in {
    const char *name;
    int64_t     owner_id;     /* 0: none on create, unchanged on update */
    const char *spec_json;    /* required */
    const char *source_path;  /* NULL allowed */
    const char *source_hash;  /* NULL allowed */
} store_flow_in_t;

/* Create the flow, or update it: version++ when spec_json differs from the
 * stored text or the flow was soft-deleted (it comes back live, unpaused
 * state kept).  Source path/hash are refreshed without a version bump.
 * *version (may be NULL) gets the resulting version; *changed (may be NULL)
 * 1 if a version was created.  Appends "flow.upsert" when it was. */
int store_flow_upsert(store_t *st, const store_flow_in_t *in, int64_t now, int64_t *version,
                      int *changed, nb_err_t *err);

/* live flow: paused 0 -> 1 or 1 -> 0.  Already in that state: -ESTALE. */
int store_flow_set_paused(store_t *st, const char *name, int paused, int64_t now,
                          nb_err_t *err);

/* Soft delete of a live flow.  -EBUSY while it has queued or running runs
 * (cancel them first: deleting must not orphan work in flight). */
int store_flow_delete(store_t *st, const char *name, int64_t now, nb_err_t *err);

/* One flow by name; deleted flows only when include_deleted.  -ENOENT. */
int store_flow_get(store_t *st, const char *name, int include_deleted, store_flow_t *out,
                   nb_err_t *err);

/* Flows ordered by name; owner_id 0 = everyone's. */
int store_flows_list(store_t *st, int include_deleted, int64_t owner_id, store_flows_t *out,
                     nb_err_t *err);

void store_flow_clear(store_flow_t *f);
void store_flows_free(store_flows_t *l);

#endif
