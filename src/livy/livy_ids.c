/* livy_ids — see livy_ids.h. */
#include "livy/livy_ids.h"

#include "util/fsutil.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void livy_ids_load(livy_ids_t *ids, store_t *st, const char *home, enum store_livy_kind kind)
{
    int b = kind == STORE_LIVY_BATCH;
    const char *word = b ? "batch" : "session";
    memset(ids, 0, sizeof *ids);
    ids->kind = kind;
    ids->file = xasprintf("%s/livy/%s-id", home, word);
    ids->dir = xasprintf("%s/livy/%s", home, b ? "batches" : "sessions");
    int64_t max = 0;
    nb_err_t err;
    if (store_livy_max_id(st, kind, &max, &err) < 0)
        LOG_W("livy: cannot read the highest id", "kind=%s error=\"%s\"", word, err.msg);
    char *text = NULL;
    size_t n;
    if (fs_read_regular(ids->file, 64, &text, &n, &err) == 0) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (end != text && v > max) max = v;
        free(text);
    }
    DIR *d = opendir(ids->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long long v = strtoll(e->d_name, &end, 10);
            if (end != e->d_name && !*end && v > max) max = v;
        }
        closedir(d);
    }
    ids->hwm = max;
}

void livy_ids_dirs_passable(const livy_ids_t *ids)
{
    char *parent = xstrdup(ids->dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    chmod(parent, 0711);
    chmod(ids->dir, 0711);
    free(parent);
}

void livy_ids_note(livy_ids_t *ids, int64_t id)
{
    if (id <= ids->hwm) return;
    ids->hwm = id;
    /* Written after the insert: a crash in between leaves the row, whose
     * id max(id) finds at the next start. */
    char *dir = fs_dirname(ids->file);
    char num[32];
    int len = snprintf(num, sizeof num, "%lld\n", (long long)id);
    nb_err_t err;
    if (fs_mkdir_p(dir, 0700, &err) < 0 || fs_write_atomic(ids->file, num, (size_t)len, 1, &err) < 0)
        LOG_W("livy: the highest id not saved", "file=%s id=%lld error=\"%s\"", ids->file, (long long)id, err.msg);
    free(dir);
}

void livy_ids_clear(livy_ids_t *ids)
{
    free(ids->file);
    free(ids->dir);
    memset(ids, 0, sizeof *ids);
}
