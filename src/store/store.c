/*
 * store.c — opening the database, pragmas, migrations, the statement cache,
 * the transaction helper and the event feed.  The design (schema, state
 * machines, error and ownership rules) is described in store.h.
 *
 * Migrations: `migrations[i]` takes a database from schema version i to
 * i + 1.  Each step runs in its own BEGIN IMMEDIATE transaction together
 * with `PRAGMA user_version = i + 1` (user_version lives in the database
 * header, so it commits or rolls back with the step): a crash mid-migration
 * leaves the previous version intact, and two processes opening a fresh
 * database at once cannot both apply a step (the version is re-read after
 * the write lock is taken).  Steps are append-only: never edit a released
 * one, add a new one.  A database stamped with a version we do not know was
 * written by a newer nbhub, and we refuse it rather than guess.
 *
 * application_id marks the file as nbhub's, so `nbhub serve` pointed at some
 * other SQLite file says so instead of adding tables to it.
 *
 * The statement cache is an open-addressing hash keyed by the address of
 * the SQL text (a string literal at the call site), so SQL stays next to
 * the code that uses it and is still prepared only once per store_t.
 */
#define NBHUB_STORE_INTERNAL
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xmalloc.h"

#define STORE_APP_ID 0x6e626862 /* "nbhb" */

struct stmt_slot {
    const void   *key;
    sqlite3_stmt *stmt;
};

struct store {
    sqlite3          *db;
    char             *path;
    struct stmt_slot *slots;   /* open addressing, cap is a power of two */
    size_t            cap, used;
    int               in_tx;
    int               in_batch;   /* store_batch_begin: store_tx nests as a SAVEPOINT */
};

/* ---- schema ------------------------------------------------------------ */

static const char *const migrations[] = {
    /* 0 -> 1: the initial schema. */
    "CREATE TABLE users ("
    "  id            INTEGER PRIMARY KEY,"
    "  name          TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),"
    "  password_hash TEXT,"
    "  is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
    "  created_at    INTEGER NOT NULL,"
    "  disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))"
    ") STRICT;"
    "CREATE TABLE api_tokens ("
    "  id            INTEGER PRIMARY KEY,"
    "  user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  name          TEXT    NOT NULL,"
    "  token_hash    TEXT    NOT NULL UNIQUE,"
    "  created_at    INTEGER NOT NULL,"
    "  expires_at    INTEGER,"
    "  last_used_at  INTEGER"
    ") STRICT;"
    "CREATE INDEX api_tokens_user ON api_tokens(user_id);"
    "CREATE TABLE sessions ("
    "  id            INTEGER PRIMARY KEY,"
    "  token_hash    TEXT    NOT NULL UNIQUE,"
    "  csrf_token    TEXT    NOT NULL,"
    "  user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  created_at    INTEGER NOT NULL,"
    "  expires_at    INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE INDEX sessions_expiry ON sessions(expires_at);"
    "CREATE TABLE flows ("
    "  name          TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),"
    "  owner_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  spec_json     TEXT    NOT NULL,"
    "  source_path   TEXT,"
    "  source_hash   TEXT,"
    "  version       INTEGER NOT NULL DEFAULT 1,"
    "  paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
    "  created_at    INTEGER NOT NULL,"
    "  updated_at    INTEGER NOT NULL,"
    "  deleted_at    INTEGER"
    ") STRICT;"
    "CREATE INDEX flows_owner ON flows(owner_id);"
    "CREATE TABLE runs ("
    "  id            INTEGER PRIMARY KEY,"
    "  run_id        TEXT    NOT NULL,"
    "  flow          TEXT    NOT NULL REFERENCES flows(name),"
    "  kind          TEXT    NOT NULL CHECK (kind IN ('scheduled', 'manual', 'backfill')),"
    "  logical_us    INTEGER NOT NULL,"
    "  state         TEXT    NOT NULL DEFAULT 'queued'"
    "                CHECK (state IN ('queued', 'running', 'success', 'failed', 'cancelled')),"
    "  flow_version  INTEGER NOT NULL,"
    "  spec_json     TEXT    NOT NULL,"
    "  params_json   TEXT,"
    "  created_at    INTEGER NOT NULL,"
    "  started_at    INTEGER,"
    "  ended_at      INTEGER,"
    "  triggered_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  UNIQUE (flow, run_id)"
    ") STRICT;"
    /* (flow, rowid) and (state, rowid): filters with keyset order by id. */
    "CREATE INDEX runs_flow ON runs(flow);"
    "CREATE INDEX runs_state ON runs(state);"
    "CREATE INDEX runs_user ON runs(triggered_by);"
    "CREATE TABLE ticks ("
    "  flow          TEXT    NOT NULL REFERENCES flows(name),"
    "  logical_us    INTEGER NOT NULL,"
    "  fired_at      INTEGER NOT NULL,"
    "  run           INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
    "  PRIMARY KEY (flow, logical_us)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX ticks_run ON ticks(run);"
    "CREATE TABLE task_runs ("
    "  id             INTEGER PRIMARY KEY,"
    "  run            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  task           TEXT    NOT NULL CHECK (length(task) >= 1),"
    "  state          TEXT    NOT NULL DEFAULT 'pending'"
    "                 CHECK (state IN ('pending', 'queued', 'running', 'success', 'failed',"
    "                        'up_for_retry', 'skipped', 'cancelled', 'upstream_failed')),"
    "  try_number     INTEGER NOT NULL DEFAULT 0,"
    "  max_tries      INTEGER NOT NULL DEFAULT 1 CHECK (max_tries >= 1),"
    "  next_retry_at  INTEGER,"
    "  pid            INTEGER,"
    "  pid_start_time INTEGER,"
    "  queued_at      INTEGER,"
    "  started_at     INTEGER,"
    "  ended_at       INTEGER,"
    "  exit_code      INTEGER,"
    "  error          TEXT,"
    "  output_path    TEXT,"
    "  log_path       TEXT,"
    "  UNIQUE (run, task)"
    ") STRICT;"
    "CREATE INDEX task_runs_state ON task_runs(state);"
    "CREATE INDEX task_runs_retry ON task_runs(next_retry_at) WHERE state = 'up_for_retry';"
    "CREATE TABLE webhook_deliveries ("
    "  id              INTEGER PRIMARY KEY,"
    "  run             INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
    "  url             TEXT    NOT NULL,"
    "  event           TEXT    NOT NULL,"
    "  payload_json    TEXT    NOT NULL,"
    "  state           TEXT    NOT NULL DEFAULT 'pending'"
    "                  CHECK (state IN ('pending', 'delivered', 'failed')),"
    "  attempts        INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  last_error      TEXT,"
    "  created_at      INTEGER NOT NULL,"
    "  delivered_at    INTEGER"
    ") STRICT;"
    "CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';"
    "CREATE INDEX webhook_run ON webhook_deliveries(run);"
    "CREATE TABLE events ("
    "  id    INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at    INTEGER NOT NULL,"
    "  kind  TEXT    NOT NULL,"
    "  flow  TEXT,"
    "  run   INTEGER,"
    "  task  TEXT,"
    "  json  TEXT    NOT NULL"
    ") STRICT;",
    /* 1 -> 2: the Spark application a task ran (docs/spark.md). */
    "ALTER TABLE task_runs ADD COLUMN spark_app_id TEXT;",
    /* 2 -> 3: flow incarnations.  A flow row gets an immutable id and is
     * never brought back after a soft delete: the name, created again, is
     * a new row (incarnation + 1), and runs, ticks and events point at the
     * row they belong to, not at the name.  flows.name stops being a key,
     * so the tables whose foreign keys named it are rebuilt: copied aside,
     * dropped children first (no cascade fires: a child is gone before its
     * parent), created anew and copied back, ids kept.  Every existing
     * name has exactly one row, which becomes incarnation 1. */
    "CREATE TEMP TABLE m_flows AS SELECT rowid AS rid, * FROM main.flows;"
    "CREATE TEMP TABLE m_runs AS SELECT * FROM main.runs;"
    "CREATE TEMP TABLE m_ticks AS SELECT * FROM main.ticks;"
    "CREATE TEMP TABLE m_task_runs AS SELECT * FROM main.task_runs;"
    "CREATE TEMP TABLE m_webhooks AS SELECT * FROM main.webhook_deliveries;"
    "DROP TABLE main.webhook_deliveries;"
    "DROP TABLE main.task_runs;"
    "DROP TABLE main.ticks;"
    "DROP TABLE main.runs;"
    "DROP TABLE main.flows;"
    "CREATE TABLE main.flows ("
    "  id            INTEGER PRIMARY KEY,"
    "  name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),"
    "  incarnation   INTEGER NOT NULL CHECK (incarnation >= 1),"
    "  owner_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  spec_json     TEXT    NOT NULL,"
    "  source_path   TEXT,"
    "  source_hash   TEXT,"
    "  version       INTEGER NOT NULL DEFAULT 1,"
    "  paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
    "  created_at    INTEGER NOT NULL,"
    "  updated_at    INTEGER NOT NULL,"
    "  deleted_at    INTEGER,"
    "  UNIQUE (name, incarnation)"
    ") STRICT;"
    /* At most one live row per name. */
    "CREATE UNIQUE INDEX main.flows_live ON flows(name) WHERE deleted_at IS NULL;"
    "CREATE INDEX main.flows_owner ON flows(owner_id);"
    "INSERT INTO main.flows(id, name, incarnation, owner_id, spec_json, source_path,"
    "  source_hash, version, paused, created_at, updated_at, deleted_at)"
    "  SELECT rid, name, 1, owner_id, spec_json, source_path, source_hash, version, paused,"
    "  created_at, updated_at, deleted_at FROM temp.m_flows;"
    "CREATE TABLE main.runs ("
    "  id            INTEGER PRIMARY KEY,"
    "  run_id        TEXT    NOT NULL,"
    "  flow_id       INTEGER NOT NULL REFERENCES flows(id),"
    "  flow          TEXT    NOT NULL,"
    "  kind          TEXT    NOT NULL CHECK (kind IN ('scheduled', 'manual', 'backfill')),"
    "  logical_us    INTEGER NOT NULL,"
    "  state         TEXT    NOT NULL DEFAULT 'queued'"
    "                CHECK (state IN ('queued', 'running', 'success', 'failed', 'cancelled')),"
    "  flow_version  INTEGER NOT NULL,"
    "  spec_json     TEXT    NOT NULL,"
    "  params_json   TEXT,"
    "  created_at    INTEGER NOT NULL,"
    "  started_at    INTEGER,"
    "  ended_at      INTEGER,"
    "  triggered_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    "  UNIQUE (flow_id, run_id)"
    ") STRICT;"
    "CREATE INDEX main.runs_flow_name ON runs(flow);"
    "CREATE INDEX main.runs_state ON runs(state);"
    "CREATE INDEX main.runs_user ON runs(triggered_by);"
    "INSERT INTO main.runs(id, run_id, flow_id, flow, kind, logical_us, state, flow_version,"
    "  spec_json, params_json, created_at, started_at, ended_at, triggered_by)"
    "  SELECT r.id, r.run_id, f.id, r.flow, r.kind, r.logical_us, r.state, r.flow_version,"
    "  r.spec_json, r.params_json, r.created_at, r.started_at, r.ended_at, r.triggered_by"
    "  FROM temp.m_runs r JOIN main.flows f ON f.name = r.flow;"
    "CREATE TABLE main.ticks ("
    "  flow_id       INTEGER NOT NULL REFERENCES flows(id),"
    "  logical_us    INTEGER NOT NULL,"
    "  fired_at      INTEGER NOT NULL,"
    "  run           INTEGER REFERENCES runs(id) ON DELETE SET NULL,"
    "  PRIMARY KEY (flow_id, logical_us)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX main.ticks_run ON ticks(run);"
    "INSERT INTO main.ticks(flow_id, logical_us, fired_at, run)"
    "  SELECT f.id, t.logical_us, t.fired_at, t.run"
    "  FROM temp.m_ticks t JOIN main.flows f ON f.name = t.flow;"
    "CREATE TABLE main.task_runs ("
    "  id             INTEGER PRIMARY KEY,"
    "  run            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  task           TEXT    NOT NULL CHECK (length(task) >= 1),"
    "  state          TEXT    NOT NULL DEFAULT 'pending'"
    "                 CHECK (state IN ('pending', 'queued', 'running', 'success', 'failed',"
    "                        'up_for_retry', 'skipped', 'cancelled', 'upstream_failed')),"
    "  try_number     INTEGER NOT NULL DEFAULT 0,"
    "  max_tries      INTEGER NOT NULL DEFAULT 1 CHECK (max_tries >= 1),"
    "  next_retry_at  INTEGER,"
    "  pid            INTEGER,"
    "  pid_start_time INTEGER,"
    "  queued_at      INTEGER,"
    "  started_at     INTEGER,"
    "  ended_at       INTEGER,"
    "  exit_code      INTEGER,"
    "  error          TEXT,"
    "  output_path    TEXT,"
    "  log_path       TEXT,"
    "  spark_app_id   TEXT,"
    "  UNIQUE (run, task)"
    ") STRICT;"
    "CREATE INDEX main.task_runs_state ON task_runs(state);"
    "CREATE INDEX main.task_runs_retry ON task_runs(next_retry_at) WHERE state = 'up_for_retry';"
    "INSERT INTO main.task_runs(id, run, task, state, try_number, max_tries, next_retry_at, pid,"
    "  pid_start_time, queued_at, started_at, ended_at, exit_code, error, output_path, log_path,"
    "  spark_app_id)"
    "  SELECT id, run, task, state, try_number, max_tries, next_retry_at, pid, pid_start_time,"
    "  queued_at, started_at, ended_at, exit_code, error, output_path, log_path, spark_app_id"
    "  FROM temp.m_task_runs;"
    "CREATE TABLE main.webhook_deliveries ("
    "  id              INTEGER PRIMARY KEY,"
    "  run             INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
    "  url             TEXT    NOT NULL,"
    "  event           TEXT    NOT NULL,"
    "  payload_json    TEXT    NOT NULL,"
    "  state           TEXT    NOT NULL DEFAULT 'pending'"
    "                  CHECK (state IN ('pending', 'delivered', 'failed')),"
    "  attempts        INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  last_error      TEXT,"
    "  created_at      INTEGER NOT NULL,"
    "  delivered_at    INTEGER"
    ") STRICT;"
    "CREATE INDEX main.webhook_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';"
    "CREATE INDEX main.webhook_run ON webhook_deliveries(run);"
    "INSERT INTO main.webhook_deliveries(id, run, url, event, payload_json, state, attempts,"
    "  next_attempt_at, last_error, created_at, delivered_at)"
    "  SELECT id, run, url, event, payload_json, state, attempts, next_attempt_at, last_error,"
    "  created_at, delivered_at FROM temp.m_webhooks;"
    "DROP TABLE temp.m_flows;"
    "DROP TABLE temp.m_runs;"
    "DROP TABLE temp.m_ticks;"
    "DROP TABLE temp.m_task_runs;"
    "DROP TABLE temp.m_webhooks;"
    /* Events name the incarnation they are about: SSE shows an event to
     * that row's owner, not to whoever owns the name today. */
    "ALTER TABLE events ADD COLUMN flow_id INTEGER;"
    "UPDATE events SET flow_id = coalesce("
    "  (SELECT r.flow_id FROM runs r WHERE r.id = events.run),"
    "  (SELECT f.id FROM flows f WHERE f.name = events.flow)) WHERE flow IS NOT NULL;",
    /* 3 -> 4: the trusted role (docs/security.md): under isolation: shared,
     * who besides admins may save command tasks and paths outside a flow's
     * directory. */
    "ALTER TABLE users ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0 CHECK (trusted IN (0, 1));",
    /* 4 -> 5: the hub (docs/hub.md).  A row of servers is a user's
     * notebook server, default ('') or named; it outlives a stop (as in
     * JupyterHub, until removed) and holds what a restarted nbhub needs to
     * find the process again: the backend, its address, pid + start time
     * for the local backend, backend_state (JSON) for the others.
     * upstream_token is the own token of a `command:` profile's plain
     * jupyter-server, which the proxy must send upstream (so it is kept,
     * not hashed; nbhub.db is 0600).  Tokens gain JupyterHub's scopes and
     * may belong to a server (its JUPYTERHUB_API_TOKEN, kind 'server') or
     * come from a server's OAuth client (kind 'oauth'); either dies with
     * its server row.  stop_reason says why the server last stopped or
     * failed ("stopped by alice", "culled: idle for ...", "exited with
     * status 1"), for the page and the API.  Groups choose profiles (and, from SSO, admin rights). */
    "CREATE TABLE servers ("
    "  id              INTEGER PRIMARY KEY,"
    "  user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  name            TEXT    NOT NULL DEFAULT '' CHECK (length(name) <= 200),"
    "  profile         TEXT    NOT NULL,"
    "  backend         TEXT    NOT NULL DEFAULT 'local',"
    "  state           TEXT    NOT NULL DEFAULT 'stopped'"
    "                  CHECK (state IN ('starting', 'running', 'stopping', 'stopped', 'failed')),"
    "  user_options    TEXT,"
    "  host            TEXT,"
    "  port            INTEGER,"
    "  pid             INTEGER,"
    "  pid_start_time  INTEGER,"
    "  backend_state   TEXT,"
    "  upstream_token  TEXT,"
    "  spark_cluster   TEXT,"
    "  error           TEXT,"
    "  stop_reason     TEXT,"
    "  created_at      INTEGER NOT NULL,"
    "  started_at      INTEGER,"
    "  ready_at        INTEGER,"
    "  stopped_at      INTEGER,"
    "  last_activity   INTEGER,"
    "  UNIQUE (user_id, name)"
    ") STRICT;"
    "ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api'"
    "  CHECK (kind IN ('api', 'server', 'oauth'));"
    "ALTER TABLE api_tokens ADD COLUMN scopes TEXT;"
    "ALTER TABLE api_tokens ADD COLUMN server_id INTEGER REFERENCES servers(id) ON DELETE CASCADE;"
    "CREATE INDEX api_tokens_server ON api_tokens(server_id) WHERE server_id IS NOT NULL;"
    "CREATE TABLE groups ("
    "  id              INTEGER PRIMARY KEY,"
    "  name            TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),"
    "  properties      TEXT,"
    "  created_at      INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE group_members ("
    "  group_id        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
    "  user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (group_id, user_id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX group_members_user ON group_members(user_id);",
    /* 5 -> 6: single sign-on, the Livy API and post-mortem kernels.
     *
     * SSO (docs/sso.md): a user created by an OpenID provider carries the
     * issuer and subject it came from; a second identity claiming the same
     * name is refused, never merged, so (idp, idp_subject) is unique.  A
     * browser session that came from the provider keeps what logout and
     * refresh need: the ID token (id_token_hint), the refresh token, when
     * the provider's tokens expire, and the provider's session id `sid`
     * (back-channel logout names it).  The refresh token is a credential,
     * kept as the session row's secret like upstream_token (nbhub.db is 0600).
     *
     * Livy (docs/livy.md): a session is a kernel of the owner's; the row
     * holds what a restarted nbhub needs to find it again (connection file,
     * pid + start time, the Spark cluster it owns).  Statement ids count
     * from 0 within a session, as in Livy; outputs are kept as the JSON
     * Livy returns.  A batch is a spark-submit process of the owner's.
     *
     * Post-mortem (docs/flows.md): a failed task's kernel kept alive until
     * kernel_kept_until, found again by its connection file and pid. */
    "ALTER TABLE users ADD COLUMN idp TEXT;"
    "ALTER TABLE users ADD COLUMN idp_subject TEXT;"
    "CREATE UNIQUE INDEX users_idp ON users(idp, idp_subject) WHERE idp IS NOT NULL;"
    "ALTER TABLE sessions ADD COLUMN idp_sid TEXT;"
    "ALTER TABLE sessions ADD COLUMN id_token TEXT;"
    "ALTER TABLE sessions ADD COLUMN refresh_token TEXT;"
    "ALTER TABLE sessions ADD COLUMN idp_expires_at INTEGER;"
    "CREATE INDEX sessions_idp_sid ON sessions(idp_sid) WHERE idp_sid IS NOT NULL;"
    "CREATE TABLE livy_sessions ("
    "  id              INTEGER PRIMARY KEY,"
    "  user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  proxy_user      TEXT,"
    "  name            TEXT,"
    "  kind            TEXT    NOT NULL,"
    "  state           TEXT    NOT NULL DEFAULT 'not_started'"
    "                  CHECK (state IN ('not_started', 'starting', 'idle', 'busy', 'shutting_down',"
    "                         'error', 'dead', 'killed', 'success')),"
    "  request_json    TEXT    NOT NULL,"
    "  kernel_conn     TEXT,"
    "  pid             INTEGER,"
    "  pid_start_time  INTEGER,"
    "  spark_cluster   TEXT,"
    "  app_id          TEXT,"
    "  log_path        TEXT,"
    "  error           TEXT,"
    "  heartbeat_timeout INTEGER NOT NULL DEFAULT 0,"
    "  last_heartbeat  INTEGER,"
    "  created_at      INTEGER NOT NULL,"
    "  ended_at        INTEGER"
    ") STRICT;"
    "CREATE UNIQUE INDEX livy_sessions_name ON livy_sessions(name)"
    "  WHERE name IS NOT NULL AND ended_at IS NULL;"
    "CREATE INDEX livy_sessions_user ON livy_sessions(user_id);"
    "CREATE TABLE livy_statements ("
    "  session_id      INTEGER NOT NULL REFERENCES livy_sessions(id) ON DELETE CASCADE,"
    "  id              INTEGER NOT NULL CHECK (id >= 0),"
    "  kind            TEXT    NOT NULL,"
    "  code            TEXT    NOT NULL,"
    "  state           TEXT    NOT NULL DEFAULT 'waiting'"
    "                  CHECK (state IN ('waiting', 'running', 'available', 'error', 'cancelling',"
    "                         'cancelled')),"
    "  msg_id          TEXT,"
    "  output_json     TEXT,"
    "  progress        REAL    NOT NULL DEFAULT 0,"
    "  started_at      INTEGER,"
    "  completed_at    INTEGER,"
    "  PRIMARY KEY (session_id, id)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE livy_batches ("
    "  id              INTEGER PRIMARY KEY,"
    "  user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  proxy_user      TEXT,"
    "  name            TEXT,"
    "  state           TEXT    NOT NULL DEFAULT 'not_started'"
    "                  CHECK (state IN ('not_started', 'starting', 'running', 'shutting_down',"
    "                         'error', 'dead', 'killed', 'success')),"
    "  request_json    TEXT    NOT NULL,"
    "  pid             INTEGER,"
    "  pid_start_time  INTEGER,"
    "  spark_cluster   TEXT,"
    "  app_id          TEXT,"
    "  log_path        TEXT,"
    "  exit_code       INTEGER,"
    "  error           TEXT,"
    "  created_at      INTEGER NOT NULL,"
    "  ended_at        INTEGER"
    ") STRICT;"
    "CREATE INDEX livy_batches_user ON livy_batches(user_id);"
    "ALTER TABLE task_runs ADD COLUMN kernel_conn TEXT;"
    "ALTER TABLE task_runs ADD COLUMN kernel_pid INTEGER;"
    "ALTER TABLE task_runs ADD COLUMN kernel_pid_start_time INTEGER;"
    "ALTER TABLE task_runs ADD COLUMN kernel_kept_until INTEGER;"
    "CREATE INDEX task_runs_kept ON task_runs(kernel_kept_until) WHERE kernel_kept_until IS NOT NULL;",
    /* 6 -> 7: an API token minted with the provider's access token
     * (`nbhub login`, docs/sso.md) carries the provider session it came
     * from, so a back-channel logout of that sid (or of the user's sub)
     * revokes it as it ends the browser sessions.  '' = minted through the
     * provider, which named no session; NULL = an ordinary token. */
    "ALTER TABLE api_tokens ADD COLUMN idp_sid TEXT;"
    "CREATE INDEX api_tokens_idp_sid ON api_tokens(idp_sid) WHERE idp_sid IS NOT NULL;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

/* ---- errors ------------------------------------------------------------ */

int store_sqlerr(store_t *st, int rc, const char *what, nb_err_t *err)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:     code = -EBUSY; break;
    case SQLITE_CONSTRAINT: code = -EINVAL; break;
    case SQLITE_NOTFOUND:   code = -ENOENT; break;
    case SQLITE_READONLY:
    case SQLITE_PERM:       code = -EACCES; break;
    case SQLITE_FULL:       code = -ENOSPC; break;
    case SQLITE_NOTADB:     code = -EINVAL; break;
    default:                code = -EIO; break;
    }
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) code = -EEXIST;
    const char *m = st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    return err_set(err, code, "%s: %s", what, m);
}

/* ---- statement cache ----------------------------------------------------- */

static size_t slot_hash(const void *key, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static void cache_grow(store_t *st)
{
    size_t ncap = st->cap ? st->cap * 2 : 128;
    struct stmt_slot *ns = xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i < st->cap; i++) {
        if (!st->slots[i].key) continue;
        size_t j = slot_hash(st->slots[i].key, ncap);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = st->slots[i];
    }
    free(st->slots);
    st->slots = ns;
    st->cap = ncap;
}

int store_stmt_k(store_t *st, const void *key, const char *sql, sqlite3_stmt **out,
                 nb_err_t *err)
{
    if (st->used * 2 >= st->cap) cache_grow(st);
    size_t j = slot_hash(key, st->cap);
    while (st->slots[j].key && st->slots[j].key != key) j = (j + 1) & (st->cap - 1);
    if (st->slots[j].key) {
        sqlite3_stmt *s = st->slots[j].stmt;
        /* Callers reset after use; this is the safety net that guarantees
         * no statement carries a read snapshot or old bindings over. */
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        *out = s;
        return 0;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(s);
        return store_sqlerr(st, rc, "prepare", err);
    }
    st->slots[j].key = key;
    st->slots[j].stmt = s;
    st->used++;
    *out = s;
    return 0;
}

int store_stmt(store_t *st, const char *sql, sqlite3_stmt **out, nb_err_t *err)
{
    return store_stmt_k(st, sql, sql, out, err);
}

int store_step_done(store_t *st, sqlite3_stmt *s, const char *what, nb_err_t *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    return store_sqlerr(st, sqlite3_extended_errcode(st->db), what, err);
}

int store_bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    return v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
}

int store_bind_time(sqlite3_stmt *s, int idx, int64_t v)
{
    return v ? sqlite3_bind_int64(s, idx, v) : sqlite3_bind_null(s, idx);
}

char *store_col_str(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? xstrndup((const char *)t, (size_t)sqlite3_column_bytes(s, col)) : NULL;
}

sqlite3 *store_db(store_t *st)
{
    return st->db;
}

/* ---- transactions -------------------------------------------------------- */

/* Plain statements for BEGIN/COMMIT/ROLLBACK, also cached. */
static int exec_cached(store_t *st, const char *sql, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, sql, &s, err);
    if (rc) return rc;
    return store_step_done(st, s, sql, err);
}

int store_tx(store_t *st, store_tx_fn fn, void *arg, nb_err_t *err)
{
    NB_ASSERT(!st->in_tx);
    /* Inside a batch the transition is a savepoint: atomic on its own (a
     * failure undoes just this step), durable with the batch's COMMIT. */
    const char *begin = st->in_batch ? "SAVEPOINT tx" : "BEGIN IMMEDIATE";
    const char *commit = st->in_batch ? "RELEASE tx" : "COMMIT";
    /* IMMEDIATE takes the write lock now (waiting up to busy_timeout), so
     * the state we read inside is the state we write over: no upgrade
     * deadlock, no lost update. */
    int rc = exec_cached(st, begin, err);
    if (rc) return rc;
    st->in_tx = 1;
    rc = fn(st, arg, err);
    if (rc == 0) rc = exec_cached(st, commit, err);
    if (rc != 0 && st->in_batch) {
        nb_err_t ignored;
        exec_cached(st, "ROLLBACK TO tx", &ignored);
        exec_cached(st, "RELEASE tx", &ignored);
    } else if (rc != 0 && !sqlite3_get_autocommit(st->db)) {
        nb_err_t ignored;
        exec_cached(st, "ROLLBACK", &ignored);
    }
    st->in_tx = 0;
    return rc;
}

int store_batch_begin(store_t *st, nb_err_t *err)
{
    NB_ASSERT(!st->in_tx && !st->in_batch);
    int rc = exec_cached(st, "BEGIN IMMEDIATE", err);
    if (rc == 0) st->in_batch = 1;
    return rc;
}

int store_batch_end(store_t *st, nb_err_t *err)
{
    NB_ASSERT(st->in_batch && !st->in_tx);
    st->in_batch = 0;
    int rc = exec_cached(st, "COMMIT", err);
    if (rc != 0 && !sqlite3_get_autocommit(st->db)) {
        nb_err_t ignored;
        exec_cached(st, "ROLLBACK", &ignored);
    }
    return rc;
}

/* ---- open / close / migrate ---------------------------------------------- */

static int pragma_int(store_t *st, const char *sql, int *out, nb_err_t *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int(s, 0);
    else rc = sqlite3_extended_errcode(st->db);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, sql, err);
}

static int exec_sql(store_t *st, const char *sql, const char *what, nb_err_t *err)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_sqlerr(st, sqlite3_extended_errcode(st->db), what, err);
}

static int set_pragmas(store_t *st, nb_err_t *err)
{
    /* journal_mode answers with the mode in effect: a filesystem without
     * shared memory support (some network mounts) stays in "delete" mode,
     * which would silently give up concurrent readers — refuse instead. */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        return store_sqlerr(st, sqlite3_errcode(st->db), "PRAGMA journal_mode=WAL", err);
    }
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    int is_wal = mode && strcmp(mode, "wal") == 0;
    sqlite3_finalize(s);
    if (!is_wal)
        return err_set(err, -EIO, "%s: cannot use WAL journal mode (network filesystem?)",
                       st->path);
    return exec_sql(st,
                    "PRAGMA synchronous=FULL;"
                    "PRAGMA foreign_keys=ON;"
                    "PRAGMA busy_timeout=5000;"
                    "PRAGMA trusted_schema=OFF;",
                    "pragmas", err);
}

/* Reads the version, refuses foreign or newer databases, applies the
 * missing steps (each one transaction, version re-checked under the lock). */
static int migrate(store_t *st, int target, nb_err_t *err)
{
    for (;;) {
        int ver = 0, app = 0, ntables = 0, rc;
        if ((rc = exec_sql(st, "BEGIN IMMEDIATE", "begin migration", err))) return rc;
        if ((rc = pragma_int(st, "PRAGMA user_version", &ver, err)) ||
            (rc = pragma_int(st, "PRAGMA application_id", &app, err)) ||
            (rc = pragma_int(st, "SELECT count(*) FROM sqlite_schema", &ntables, err)))
            goto fail;
        if (app != 0 && app != STORE_APP_ID) {
            rc = err_set(err, -EINVAL, "%s is not an nbhub database (application_id %#x)",
                         st->path, (unsigned)app);
            goto fail;
        }
        if (ver == 0 && ntables > 0) {
            rc = err_set(err, -EINVAL, "%s is not an nbhub database (it has tables but no "
                         "nbhub schema version)", st->path);
            goto fail;
        }
        if (ver > STORE_SCHEMA_VERSION) {
            rc = err_set(err, -ENOTSUP, "%s has schema version %d, written by a newer nbhub; "
                         "this nbhub knows versions up to %d: upgrade nbhub (or restore a "
                         "backup made with this version)", st->path, ver, STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (ver >= target) return exec_sql(st, "COMMIT", "commit", err);
        if ((rc = exec_sql(st, migrations[ver], "migration", err))) {
            err_set(err, rc, "%s: migration %d -> %d failed: %s", st->path, ver, ver + 1,
                    sqlite3_errmsg(st->db));
            goto fail;
        }
        char set[96];
        snprintf(set, sizeof set, "PRAGMA user_version=%d; PRAGMA application_id=%d;",
                 ver + 1, STORE_APP_ID);
        if ((rc = exec_sql(st, set, "set schema version", err))) goto fail;
        if ((rc = exec_sql(st, "COMMIT", "commit migration", err))) goto fail;
        LOG_I("store migrated", "db=%s from=%d to=%d", st->path, ver, ver + 1);
        continue;
    fail:
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
}

int store_open(const char *path, store_t **out, nb_err_t *err)
{
    return store_open_at(path, STORE_SCHEMA_VERSION, out, err);
}

int store_open_at(const char *path, int version, store_t **out, nb_err_t *err)
{
    *out = NULL;
    NB_ASSERT(version >= 1 && version <= STORE_SCHEMA_VERSION);
    if (sqlite3_libversion_number() < 3037000)
        return err_set(err, -ENOTSUP, "SQLite %s is too old: nbhub needs 3.37 or newer",
                       sqlite3_libversion());
    /* Create the file ourselves so it is 0600 from its first byte; SQLite
     * copies the mode to -wal and -shm. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return err_set(err, -errno, "%s: %s", path, strerror(errno));
    close(fd);

    store_t *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = err_set(err, -EIO, "%s: %s", path, st->db ? sqlite3_errmsg(st->db)
                                                        : sqlite3_errstr(rc));
        store_close(st);
        return rc;
    }
    /* Defensive mode: no writable_schema tricks even through SQL we run. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    /* busy_timeout first, so that the WAL switch and the migration wait for
     * another process instead of failing at once. */
    sqlite3_busy_timeout(st->db, 5000);
    if ((rc = set_pragmas(st, err)) || (rc = migrate(st, version, err))) {
        if (err && !strstr(err->msg, path)) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            err_set(err, rc, "%s: %s", path, m);
        }
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(store_t *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->cap; i++)
        if (st->slots[i].stmt) sqlite3_finalize(st->slots[i].stmt);
    free(st->slots);
    if (st->db) sqlite3_close(st->db);
    free(st->path);
    free(st);
}

int store_schema_version(store_t *st)
{
    int v = -1;
    pragma_int(st, "PRAGMA user_version", &v, NULL);
    return v;
}

/* ---- events -------------------------------------------------------------- */

int store_event_add(store_t *st, int64_t at, const char *kind, const char *flow, int64_t run,
                    const char *task, json_t *data, nb_err_t *err)
{
    NB_ASSERT(st->in_tx);
    if (!data) data = json_object();
    char *js = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(data);
    NB_ASSERT(js);
    sqlite3_stmt *s;
    /* The incarnation: the run's flow row, else the newest row of that
     * name (the live one, or the one just deleted for "flow.deleted"; ids
     * only grow and rows are never removed). */
    int rc = store_stmt(st, "INSERT INTO events(at, kind, flow, run, task, json, flow_id) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce("
                            "(SELECT flow_id FROM runs WHERE id = ?4), "
                            "(SELECT id FROM flows WHERE name = ?3 ORDER BY id DESC LIMIT 1)))",
                        &s, err);
    if (rc == 0) {
        sqlite3_bind_int64(s, 1, at);
        sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
        store_bind_text(s, 3, flow);
        store_bind_time(s, 4, run);
        store_bind_text(s, 5, task);
        sqlite3_bind_text(s, 6, js, -1, SQLITE_STATIC);
        rc = store_step_done(st, s, "append event", err);
    }
    free(js);
    return rc;
}

static void event_row(sqlite3_stmt *s, store_event_t *e)
{
    e->id = sqlite3_column_int64(s, 0);
    e->at = sqlite3_column_int64(s, 1);
    e->kind = store_col_str(s, 2);
    e->flow = store_col_str(s, 3);
    e->run = sqlite3_column_int64(s, 4);
    e->task = store_col_str(s, 5);
    e->json = store_col_str(s, 6);
    e->flow_id = sqlite3_column_int64(s, 7);
}

int store_events_since(store_t *st, int64_t after_id, int limit, store_events_t *out,
                       nb_err_t *err)
{
    out->v = NULL;
    out->n = 0;
    if (limit < 1 || limit > 10000) return err_set(err, -EINVAL, "limit must be 1..10000");
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT id, at, kind, flow, run, task, json, flow_id FROM events "
                            "WHERE id > ?1 ORDER BY id LIMIT ?2", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int(s, 2, limit);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        event_row(s, &out->v[out->n++]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        store_events_free(out);
        return store_sqlerr(st, rc, "read events", err);
    }
    return 0;
}

int store_events_last_id(store_t *st, int64_t *out, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "SELECT coalesce(max(id), 0) FROM events", &s, err);
    if (rc) return rc;
    rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : store_sqlerr(st, rc, "last event id", err);
}

/* No index on events.at (it would cost a page write in every transition):
 * ids grow with time, so the cut-off is found by walking from the oldest
 * event to the first one that stays — a scan as long as what is deleted. */
int store_events_prune(store_t *st, int64_t before_us, int64_t *deleted, nb_err_t *err)
{
    sqlite3_stmt *s;
    int rc = store_stmt(st, "DELETE FROM events WHERE id < coalesce("
                            "(SELECT id FROM events WHERE at >= ?1 ORDER BY id LIMIT 1), "
                            "(SELECT max(id) + 1 FROM events), 0)", &s, err);
    if (rc) return rc;
    sqlite3_bind_int64(s, 1, before_us);
    rc = store_step_done(st, s, "prune events", err);
    if (rc == 0 && deleted) *deleted = sqlite3_changes64(st->db);
    return rc;
}

void store_event_clear(store_event_t *e)
{
    free(e->kind);
    free(e->flow);
    free(e->task);
    free(e->json);
    memset(e, 0, sizeof *e);
}

void store_events_free(store_events_t *l)
{
    for (size_t i = 0; i < l->n; i++) store_event_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
