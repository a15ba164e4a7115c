/*
 * xmalloc — allocation that never returns NULL, and an assert that stays on.
 *
 * Out of memory is not a condition nbhub tries to survive: a daemon that
 * half-handles it corrupts state, so we abort with a message (the tmux way).
 * Every pointer returned here is owned by the caller and freed with free().
 */
#ifndef NBHUB_XMALLOC_H
#define NBHUB_XMALLOC_H

#include <stddef.h>
#include <stdarg.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Invariant check, also in release builds. */
#define NB_ASSERT(cond) \
    ((cond) ? (void)0 : nb_assert_fail(#cond, __FILE__, __LINE__, __func__))
void nb_assert_fail(const char *cond, const char *file, int line, const char *func)
    __attribute__((noreturn));

#endif
