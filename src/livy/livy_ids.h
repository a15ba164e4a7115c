/*
 * livy_ids — Livy session and batch ids that are never handed out twice.
 *
 * A client polls an id (sparkmagic its session's, Airflow's LivyOperator
 * its batch's); an old kernel's late event names its session's id; a
 * batch's files are in livy/batches/ID/.  So a new session or batch must
 * never get an id that an earlier one had, even once that one's row is
 * gone (DELETE /sessions/ID, the retain pruning, a user's removal taking
 * their rows): SQLite's max(rowid)+1 would give it out again.
 *
 * The mark is the highest id ever handed out, one per kind, in
 * $NBHUB_HOME/livy/session-id and livy/batch-id (a decimal line, replaced
 * atomically after each insert), and at start the highest of that file,
 * the table's max(id) (a crash between the insert and the file) and the
 * numbered directories in livy/sessions/ or livy/batches/ (a home from
 * before the mark was kept, or a restored database): a new id never
 * finds an old one's journal, log, status or event log.  The store puts
 * a new row above the mark (store_livy_session_create_above,
 * store_livy_batch_create).
 *
 * Ownership: livy_ids_t's strings are its own (livy_ids_clear).  Blocking
 * file I/O of a few bytes, on create and at start.
 */
#ifndef NBHUB_LIVY_IDS_H
#define NBHUB_LIVY_IDS_H

#include <stdint.h>

#include "store/store_livy.h"

typedef struct livy_ids {
    enum store_livy_kind kind;
    char                *file;   /* the mark */
    char                *dir;    /* the rows' directories */
    int64_t              hwm;    /* highest id ever handed out */
} livy_ids_t;

/* The mark of kind under home, as the header says. */
void livy_ids_load(livy_ids_t *ids, store_t *st, const char *home, enum store_livy_kind kind);
/* Under isolation: system, accounts pass through livy/ and the kind's
 * directory (root's) to reach their own row's directory, listing nobody's:
 * both 0711. */
void livy_ids_dirs_passable(const livy_ids_t *ids);
/* id was handed out: the mark follows it (written through). */
void livy_ids_note(livy_ids_t *ids, int64_t id);
void livy_ids_clear(livy_ids_t *ids);

#endif
