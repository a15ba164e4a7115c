/*
 * limits — resource limits of a user or a task: `limits: {memory: 4g, cpu: 2,
 * pids: 512}` in nbhub.yaml (per user) and in flow files (per task).
 *
 *   memory  bytes; "4g", "512m", "1024k", "1.5g" or a plain number of bytes
 *           (powers of 1024, as Kubernetes' Gi and Spark's 4g mean); at
 *           least 16m, since a kernel alone needs more than that
 *   cpu     cores, fractions allowed: "2", "0.5", or Kubernetes' "500m";
 *           enforced as a CFS quota (cpu.max / cpu.cfs_quota_us)
 *   pids    processes and threads at once
 *
 * A zero field means "no limit of this kind".  Pure functions, no I/O; the
 * cgroup side is cgroup.c.  Ownership: plain values.
 */
#ifndef NBHUB_ISO_LIMITS_H
#define NBHUB_ISO_LIMITS_H
#include <stddef.h>
#include <stdint.h>

typedef struct iso_limits {
    int64_t memory;      /* bytes, 0 = none */
    int64_t cpu_milli;   /* thousandths of a core, 0 = none */
    int64_t pids;        /* 0 = none */
} iso_limits_t;

/* 0, or -EINVAL (with why: a short phrase for the caller's message). */
int  limits_parse_memory(const char *s, int64_t *out, const char **why);
int  limits_parse_cpu(const char *s, int64_t *milli, const char **why);
int  limits_parse_pids(const char *s, int64_t *out, const char **why);

/* One key of a `limits:` mapping (memory, cpu or pids) into out: 0,
 * -EINVAL (bad value, why set) or -ENOENT (unknown key). */
int  limits_set(iso_limits_t *out, const char *key, const char *value, const char **why);

/* The limits as one argument, "REL=MEMORY,CPU_MILLI,PIDS" (`nbhub __as-user
 * --cgroup`), malloc'd; and back: 0, or -EINVAL (spec is cut at '='). */
char *limits_spec(const char *rel, const iso_limits_t *l);
int  limits_spec_parse(char *spec, iso_limits_t *l);

/* The tighter of the two for each kind (0 = none counts as looser). */
void limits_tighten(iso_limits_t *dst, const iso_limits_t *other);
int  limits_any(const iso_limits_t *l);

/* "4g", "1536m", "123456" — the shortest exact spelling (for messages). */
void limits_memory_text(int64_t bytes, char *out, size_t n);

#endif
