/* pool — see pool.h.
 *
 * Entries are per spec, kernels are in one list with a state each.  Every
 * change (a kernel ready, taken, gone; a size change) calls pool_refill,
 * which starts kernels until starting + ready == size for each spec.
 */
#include "sched/pool.h"
#include "kernel/kmgr.h"
#include "kernel/kspec.h"
#include "util/log.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum pk_state { PK_STARTING, PK_READY, PK_LENT, PK_STOPPING };

struct pool_kernel {
    pool_t             *pool;
    struct pool_entry  *entry;
    kmgr_t             *km;
    enum pk_state       state;
    const char         *conn;    /* borrowed from km once lent */
    int                 pid;
    int                 lent;     /* taken by a borrower ... */
    int                 returned; /* ... who has given it back */
    int                 gone;     /* kmgr stopped: km is no longer valid */
    struct pool_kernel *next;
};

struct pool_entry {
    char              *name;
    kspec_t           *spec;
    unsigned           size;
    unsigned           failures;   /* consecutive start failures: backoff */
    uint64_t           retry_at;   /* uv_now() before which no start is tried */
    struct pool_entry *next;
};

#define POOL_REFILL_DELAY_MS 300
/* From shutdown_request to SIGTERM, as `nbhub run` gives its kernel: an
 * idle ipykernel exits in ~0.1 s (~0.1 s of CPU: Python's finalisation),
 * but on a loaded machine that can take a while, and nobody waits for it. */
#define POOL_STOP_GRACE_MS   3000

struct pool {
    uv_loop_t          *loop;
    struct pool_entry  *entries;
    struct pool_kernel *kernels;
    uv_timer_t          retry;     /* wakes pool_refill after a backoff */
    int                 closing;
    void              (*done)(void *);
    void               *done_ud;
};

static void pool_refill(pool_t *p);

static struct pool_entry *pool_entry(const pool_t *p, const char *name)
{
    for (struct pool_entry *e = p->entries; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void pool_unlink(pool_t *p, struct pool_kernel *k)
{
    for (struct pool_kernel **pp = &p->kernels; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            return;
        }
}

static void pool_free(pool_t *p)
{
    while (p->entries) {
        struct pool_entry *e = p->entries;
        p->entries = e->next;
        kspec_free(e->spec);
        free(e->name);
        free(e);
    }
    void (*done)(void *) = p->done;
    void *ud = p->done_ud;
    free(p);
    if (done) done(ud);
}

static void pool_on_retry_closed(uv_handle_t *h) { pool_free(h->data); }

static void pool_maybe_finish_close(pool_t *p)
{
    if (p->closing && !p->kernels && !uv_is_closing((uv_handle_t *)&p->retry))
        uv_close((uv_handle_t *)&p->retry, pool_on_retry_closed);
}

static void pool_on_ready(kmgr_t *km, int status, const char *errmsg, void *ud)
{
    pool_kernel_t *k = ud;
    if (status < 0) {
        struct pool_entry *e = k->entry;
        e->failures++;
        uint64_t delay = 1000u << (e->failures < 7 ? e->failures - 1 : 6);
        if (delay > 60000) delay = 60000;
        e->retry_at = uv_now(k->pool->loop) + delay;
        LOG_W("warm kernel failed to start", "kernel=%s error=\"%s\" retry_in_ms=%llu", e->name,
              errmsg ? errmsg : "timeout", (unsigned long long)delay);
        k->state = PK_STOPPING;   /* kmgr stops it and calls stopped */
        return;
    }
    k->entry->failures = 0;
    k->state = PK_READY;
    k->pid = kmgr_pid(km);
    LOG_D("warm kernel ready", "kernel=%s pid=%d", k->entry->name, k->pid);
}

static void pool_on_died(kmgr_t *km, const char *why, void *ud)
{
    pool_kernel_t *k = ud;
    if (k->state == PK_READY) LOG_W("warm kernel died while idle", "kernel=%s why=\"%s\"", k->entry->name, why);
    k->state = PK_STOPPING;   /* stopped follows */
}

/* A lent kernel's handle lives until the borrower returns it, even if the
 * kernel died meanwhile: the borrower still holds the pointer. */
static void pool_release(pool_t *p, pool_kernel_t *k)
{
    if (!k->gone || (k->lent && !k->returned)) return;
    pool_unlink(p, k);
    free(k);
    if (p->closing) pool_maybe_finish_close(p);
    else pool_refill(p);
}

static void pool_on_stopped(kmgr_t *km, void *ud)
{
    pool_kernel_t *k = ud;
    k->gone = 1;
    k->km = NULL;
    k->state = PK_STOPPING;
    pool_release(k->pool, k);
}

static void pool_on_retry(uv_timer_t *t) { pool_refill(t->data); }

static void pool_start_one(pool_t *p, struct pool_entry *e)
{
    pool_kernel_t *k = xcalloc(1, sizeof *k);
    k->pool = p;
    k->entry = e;
    k->state = PK_STARTING;
    struct kmgr_opts o = { .start_timeout_ms = 60000 };
    struct kmgr_cbs cbs = { pool_on_ready, NULL, pool_on_died, pool_on_stopped };
    nb_err_t err;
    if (kmgr_start(p->loop, e->spec, &o, &cbs, k, &k->km, &err) < 0) {
        LOG_W("cannot start warm kernel", "kernel=%s error=\"%s\"", e->name, err.msg);
        e->failures++;
        e->retry_at = uv_now(p->loop) + 5000;
        free(k);
        return;
    }
    k->next = p->kernels;
    p->kernels = k;
}

/* Start kernels until every spec has `size` starting or ready. */
static void pool_refill(pool_t *p)
{
    if (p->closing) return;
    uint64_t now = uv_now(p->loop), next_retry = 0;
    for (struct pool_entry *e = p->entries; e; e = e->next) {
        unsigned have = 0;
        for (pool_kernel_t *k = p->kernels; k; k = k->next)
            if (k->entry == e && (k->state == PK_STARTING || k->state == PK_READY)) have++;
        if (have >= e->size) continue;
        if (e->retry_at > now) {
            if (!next_retry || e->retry_at < next_retry) next_retry = e->retry_at;
            continue;
        }
        for (; have < e->size; have++) pool_start_one(p, e);
    }
    if (next_retry) uv_timer_start(&p->retry, pool_on_retry, next_retry - now, 0);
}

pool_t *pool_new(uv_loop_t *loop)
{
    pool_t *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    uv_timer_init(loop, &p->retry);
    p->retry.data = p;
    return p;
}

int pool_set_size(pool_t *p, const char *kernel_name, unsigned size, nb_err_t *err)
{
    struct pool_entry *e = pool_entry(p, kernel_name);
    if (!e) {
        kspec_t *spec = NULL;
        int rc = kspec_find(kernel_name, &spec, err);
        if (rc < 0) return rc;
        e = xcalloc(1, sizeof *e);
        e->name = xstrdup(kernel_name);
        e->spec = spec;
        e->next = p->entries;
        p->entries = e;
    }
    e->size = size;
    /* Shrinking: stop surplus idle kernels. */
    unsigned have = 0;
    for (pool_kernel_t *k = p->kernels; k; k = k->next) {
        if (k->entry != e || (k->state != PK_READY && k->state != PK_STARTING)) continue;
        if (++have > size) {
            k->state = PK_STOPPING;
            kmgr_shutdown(k->km, POOL_STOP_GRACE_MS);
        }
    }
    pool_refill(p);
    return 0;
}

int pool_take(pool_t *p, const char *kernel_name, pool_kernel_t **out)
{
    for (pool_kernel_t *k = p->kernels; k; k = k->next) {
        if (k->state != PK_READY || strcmp(k->entry->name, kernel_name) != 0) continue;
        if (kmgr_lend(k->km, &k->conn) < 0) continue;
        k->state = PK_LENT;
        k->lent = 1;
        *out = k;
        /* The replacement starts a little later, while the task runs: a
         * Python kernel's start-up is ~1 s of CPU (imports), and on a
         * small machine it would compete with the task's own start — the
         * very latency the pool exists to save (measured: the dependent's
         * first cell 20-40 ms later with an immediate refill). */
        uv_timer_start(&p->retry, pool_on_retry, POOL_REFILL_DELAY_MS, 0);
        return 0;
    }
    return -EAGAIN;
}

const char *pool_kernel_conn(const pool_kernel_t *k) { return k->conn; }
int pool_kernel_pid(const pool_kernel_t *k) { return k->pid; }

void pool_return(pool_t *p, pool_kernel_t *k)
{
    k->returned = 1;
    if (k->gone) {
        pool_release(p, k);
        return;
    }
    if (k->state != PK_STOPPING) {
        /* The borrower is done (the scheduler returns a kernel after the
         * task's process has exited).  The kernel is asked to shut down
         * (through a new connection to its control socket: the borrower's
         * went with its process) like any kernel `nbhub run` stops, so the
         * notebook's atexit and finally code runs as it would have on a
         * kernel of its own; SIGTERM only if it has not exited after the
         * grace.  The borrower did not wait for any of it (no
         * --shutdown-kernel): the task ended when its cells did, and the
         * replacement kernel has been starting since pool_take. */
        k->state = PK_STOPPING;
        kmgr_shutdown(k->km, POOL_STOP_GRACE_MS);
    }
}

unsigned pool_ready(const pool_t *p, const char *kernel_name)
{
    unsigned n = 0;
    for (pool_kernel_t *k = p->kernels; k; k = k->next)
        if (k->state == PK_READY && strcmp(k->entry->name, kernel_name) == 0) n++;
    return n;
}

void pool_close(pool_t *p, void (*done)(void *ud), void *ud)
{
    p->closing = 1;
    p->done = done;
    p->done_ud = ud;
    uv_timer_stop(&p->retry);
    for (pool_kernel_t *k = p->kernels; k; k = k->next) {
        k->returned = 1;   /* closing: borrowers' handles end with the pool */
        if (k->state == PK_STOPPING || k->gone) continue;
        k->state = PK_STOPPING;
        kmgr_shutdown(k->km, POOL_STOP_GRACE_MS);
    }
    /* Handles whose kernel is already gone can go now. */
    for (pool_kernel_t *k = p->kernels, *nx; k; k = nx) {
        nx = k->next;
        if (k->gone) pool_release(p, k);
    }
    pool_maybe_finish_close(p);
}
