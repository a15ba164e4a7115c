/*
 * store_flows — flow definitions: a flow is a named DAG of notebook tasks
 * whose spec (JSON, produced by the sched layer from a flow file) is stored
 * verbatim; the store never parses it.
 *
 * `version` starts at 1 and grows by one each time the spec text changes,
 * so a run can say which spec it was created from (runs.flow_version) and
 * the UI can show "edited since".
 *
 * Incarnations.  Deletion is soft (deleted_at) and final: a deleted row is
 * never brought back.  Creating the name again — by anyone, the same user
 * too — makes a new row with its own immutable id and incarnation + 1, at
 * version 1, without runs, ticks or events.  Runs point at the row they ran
 * under (runs.flow_id), so the old runs stay with the old row and its owner:
 * the new owner of the name does not inherit them, and the old owner keeps
 * reading them.  At most one row per name is live (a partial unique index).
 *
 * Ownership: see store.h — store_flow_t fields are owned by the caller and
 * released with store_flow_clear(); lists with store_flows_free().
 */
#ifndef NBHUB_STORE_FLOWS_H
#define NBHUB_STORE_FLOWS_H

#include "store/store.h"

typedef struct store_flow {
    int64_t id;              /* flows.id: this incarnation, never reused */
    int64_t incarnation;     /* 1 for the first row of this name, then 2, ... */
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

/* Update the live flow of that name (version++ when spec_json differs from
 * the stored text; source path/hash are refreshed without a version bump),
 * or, when there is none, create a new incarnation at version 1 (a deleted
 * row of the name is left as it is).
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

/* The live flow of that name; with include_deleted, the newest incarnation
 * even if deleted.  -ENOENT. */
int store_flow_get(store_t *st, const char *name, int include_deleted, store_flow_t *out,
                   nb_err_t *err);

/* One incarnation by flows.id, live or deleted.  -ENOENT. */
int store_flow_get_id(store_t *st, int64_t id, store_flow_t *out, nb_err_t *err);

/* Flows ordered by name (then incarnation); owner_id 0 = everyone's. */
int store_flows_list(store_t *st, int include_deleted, int64_t owner_id, store_flows_t *out,
                     nb_err_t *err);

void store_flow_clear(store_flow_t *f);
void store_flows_free(store_flows_t *l);

#endif
