/*
 * libFuzzer harness for JupyterHub scopes as tokens and requests bring them
 * in (auth/scopes.c): one raw scope per line.  Invariants: scopes_check
 * never crashes on any bytes; what survives intersecting a token's scopes
 * with a user's rights is held by that user (a token never grants more
 * than its owner has -- the property the hub API's authorization rests
 * on); intersection is symmetric and idempotent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/scopes.h"
#include "util/err.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_group(void *ud, const char *user, const char *group)
{
    (void)ud;
    return user[0] && group[0] && user[0] == group[0];
}

/* Every scope of s is granted by have. */
static void held(const scopes_t *s, const scopes_t *have)
{
    for (size_t i = 0; i < s->n; i++) {
        char *c = xstrdup(s->v[i]);
        char *bang = strchr(c, '!');
        const char *kind = NULL, *value = NULL;
        if (bang) {
            *bang = '\0';
            char *eq = strchr(bang + 1, '=');
            NB_ASSERT(eq);
            *eq = '\0';
            kind = bang + 1;
            value = eq + 1;
        }
        NB_ASSERT(scopes_has(have, c, kind, value, in_group, NULL));
        free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *text = xstrndup((const char *)data, size);
    const char *raw[64];
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line && n < 64; line = strtok(NULL, "\n"))
        if (scopes_check(line, NULL) == 0) raw[n++] = line;

    scopes_t tok = SCOPES_INIT;
    scopes_expand(raw, n, "alice", "alice/gpu", &tok);
    for (int admin = 0; admin < 2; admin++) {
        scopes_t owner = SCOPES_INIT, r = SCOPES_INIT, r2 = SCOPES_INIT, again = SCOPES_INIT;
        scopes_for_user("alice", admin, &owner);
        scopes_intersect(&tok, &owner, in_group, NULL, &r);
        held(&r, &owner);
        scopes_intersect(&owner, &tok, in_group, NULL, &r2);
        NB_ASSERT(r.n == r2.n);
        for (size_t i = 0; i < r.n; i++) NB_ASSERT(strcmp(r.v[i], r2.v[i]) == 0);
        scopes_intersect(&r, &owner, in_group, NULL, &again);
        NB_ASSERT(again.n == r.n);
        scopes_free(&owner);
        scopes_free(&r);
        scopes_free(&r2);
        scopes_free(&again);
    }
    scopes_free(&tok);
    free(text);
    return 0;
}
