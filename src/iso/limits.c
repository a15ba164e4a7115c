/* limits — see limits.h. */
#include "iso/limits.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MIN  (16LL << 20)
#define MEM_MAX  (1LL << 50)     /* 1 PiB: anything above is a typo */

int limits_parse_memory(const char *s, int64_t *out, const char **why)
{
    const char *w = "must be a size such as 512m, 4g or 1.5g";
    if (!s || !*s || *s == '-' || *s == '+') goto bad;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v)) goto bad;
    double mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; break;
        case 'm': case 'M': mul = 1024.0 * 1024; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: goto bad;
        }
        end++;
        /* Kubernetes' Gi/Mi and the "gb"/"mb" people write: the same powers. */
        if (*end == 'i' || *end == 'b' || *end == 'B') end++;
        if (*end) goto bad;
    } else if (strchr(s, '.')) {
        goto bad;   /* a fraction of a byte */
    }
    double bytes = v * mul;
    if (bytes < (double)MEM_MIN) { w = "must be at least 16m"; goto bad; }
    if (bytes > (double)MEM_MAX) { w = "is larger than 1 PiB"; goto bad; }
    *out = (int64_t)bytes;
    return 0;
bad:
    if (why) *why = w;
    return -EINVAL;
}

int limits_parse_cpu(const char *s, int64_t *milli, const char **why)
{
    if (why) *why = "must be a number of cores such as 2, 0.5 or 500m";
    if (!s || !*s || *s == '-' || *s == '+') return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v)) return -EINVAL;
    if (*end == 'm' && end[1] == 0) v /= 1000;
    else if (*end) return -EINVAL;
    /* The CFS quota's floor is 1 ms per 100 ms period. */
    if (v < 0.01) { if (why) *why = "must be at least 0.01 (10m)"; return -EINVAL; }
    if (v > 4096) { if (why) *why = "is more than 4096 cores"; return -EINVAL; }
    *milli = (int64_t)llround(v * 1000);
    return 0;
}

int limits_parse_pids(const char *s, int64_t *out, const char **why)
{
    if (why) *why = "must be a whole number of processes from 8 to 4194304";
    if (!s || !*s || *s == '-' || *s == '+') return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 8 || v > 4194304) return -EINVAL;
    *out = v;
    return 0;
}

int limits_set(iso_limits_t *out, const char *key, const char *value, const char **why)
{
    if (!strcmp(key, "memory")) return limits_parse_memory(value, &out->memory, why);
    if (!strcmp(key, "cpu")) return limits_parse_cpu(value, &out->cpu_milli, why);
    if (!strcmp(key, "pids")) return limits_parse_pids(value, &out->pids, why);
    return -ENOENT;
}

char *limits_spec(const char *rel, const iso_limits_t *l)
{
    return xasprintf("%s=%lld,%lld,%lld", rel, (long long)l->memory, (long long)l->cpu_milli, (long long)l->pids);
}

int limits_spec_parse(char *spec, iso_limits_t *l)
{
    *l = (iso_limits_t){ 0, 0, 0 };
    char *eq = strchr(spec, '=');
    if (!eq) return 0;
    *eq = 0;
    char end;
    return sscanf(eq + 1, "%" SCNd64 ",%" SCNd64 ",%" SCNd64 "%c", &l->memory, &l->cpu_milli, &l->pids, &end) == 3
               ? 0 : -EINVAL;
}

static int64_t tighter(int64_t a, int64_t b)
{
    if (!a) return b;
    if (!b) return a;
    return a < b ? a : b;
}

void limits_tighten(iso_limits_t *dst, const iso_limits_t *o)
{
    dst->memory = tighter(dst->memory, o->memory);
    dst->cpu_milli = tighter(dst->cpu_milli, o->cpu_milli);
    dst->pids = tighter(dst->pids, o->pids);
}

int limits_any(const iso_limits_t *l)
{
    return l->memory || l->cpu_milli || l->pids;
}

void limits_memory_text(int64_t b, char *out, size_t n)
{
    static const char units[] = "tgmk";
    for (int i = 0; i < 4; i++) {
        int64_t u = 1LL << (10 * (4 - i));
        if (b >= u && b % u == 0) {
            snprintf(out, n, "%lld%c", (long long)(b / u), units[i]);
            return;
        }
    }
    snprintf(out, n, "%lld", (long long)b);
}
