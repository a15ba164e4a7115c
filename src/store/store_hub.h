/*
 * store_hub — the hub's rows: `servers`, one per user's default or named
 * notebook server, kept after a stop (docs/hub.md).
 *
 * A server's life is a few transitions, each one transaction:
 *
 *   store_server_begin     stopped|failed|absent -> starting (a new row or
 *                          the old one reset: started_at = now, process
 *                          identity and error cleared); -ESTALE when it is
 *                          starting, running or stopping
 *   store_server_spawned   starting: the process identity (host, port, pid
 *                          + start time, backend_state, upstream_token)
 *   store_server_set_state any -> running (ready_at = now), stopping,
 *                          stopped or failed (stopped_at = now, error,
 *                          stop_reason)
 *
 * The hub keeps every row in memory and writes through, so there is no
 * "list by user" here beyond the whole table at start.  Server changes do
 * not append to `events` (that feed is shown to every user and is about
 * flows and runs), as auth changes do not.
 *
 * Ownership: store.h's convention (store_server_clear, store_servers_free).
 */
#ifndef NBHUB_STORE_HUB_H
#define NBHUB_STORE_HUB_H

#include "store/store.h"

typedef struct store_server {
    int64_t id, user_id;
    char   *user_name;        /* the owner's name (join) */
    char   *name;             /* "" = the default server */
    char   *profile;
    char   *backend;          /* "local" */
    char   *state;            /* starting|running|stopping|stopped|failed */
    char   *user_options;     /* JSON object as text, or NULL */
    char   *host;
    int     port;
    int     pid;
    int64_t pid_start_time;
    char   *backend_state;    /* JSON, backend-specific, or NULL */
    char   *upstream_token;
    char   *spark_cluster;
    char   *error;
    char   *stop_reason;      /* why it last stopped or failed, or NULL */
    int64_t created_at, started_at, ready_at, stopped_at, last_activity;
} store_server_t;

typedef struct store_servers {
    store_server_t *v;
    size_t          n;
} store_servers_t;

/* Every row, by id. */
int store_servers_list(store_t *st, store_servers_t *out, nb_err_t *err);
int store_server_get(store_t *st, int64_t id, store_server_t *out, nb_err_t *err);

/* Start (see above); *id is the row's id (new or old). -ENOENT for an
 * unknown user. */
int store_server_begin(store_t *st, int64_t user_id, const char *name, const char *profile,
                       const char *backend, const char *user_options, int64_t now, int64_t *id,
                       nb_err_t *err);
/* The started process's identity, while starting (-ESTALE otherwise). */
int store_server_spawned(store_t *st, int64_t id, const char *host, int port, int pid,
                         int64_t pid_start_time, const char *backend_state,
                         const char *upstream_token, nb_err_t *err);
/* state: "running" sets ready_at, "stopped"/"failed" stopped_at (error kept
 * for failed, cleared otherwise); stop_reason is written as given (NULL
 * clears it; store_server_begin clears it too); -ENOENT for no such row. */
int store_server_set_state(store_t *st, int64_t id, const char *state, const char *error,
                           const char *stop_reason, int64_t now, nb_err_t *err);
int store_server_activity(store_t *st, int64_t id, int64_t ts, nb_err_t *err);
int store_server_set_spark(store_t *st, int64_t id, const char *cluster, nb_err_t *err);
/* Delete the row (its tokens go with it: ON DELETE CASCADE). */
int store_server_delete(store_t *st, int64_t id, nb_err_t *err);

void store_server_clear(store_server_t *s);
void store_servers_free(store_servers_t *l);

#endif
