/*
 * xalloc — allocation that never returns NULL.
 *
 * Like Redis' zmalloc, an allocation failure aborts the process: the pod is
 * restarted by Kubernetes, and no caller carries a half-handled NULL path.
 * Everything allocated here is released with plain free().
 */
#ifndef KVR_XALLOC_H
#define KVR_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

/** malloc(n), aborting on failure. n == 0 returns a unique pointer. */
void *xmalloc(size_t n);

/** calloc(count, size), aborting on failure or on count*size overflow. */
void *xcalloc(size_t count, size_t size);

/** realloc(p, n), aborting on failure. */
void *xrealloc(void *p, size_t n);

/** reallocarray(p, count, size): aborts on overflow or failure. */
void *xreallocarray(void *p, size_t count, size_t size);

/** strdup(s); NULL gives NULL. The caller frees. */
char *xstrdup(const char *s);

/** A copy of the first n bytes of s, NUL-terminated. The caller frees. */
char *xstrndup(const char *s, size_t n);

/** A newly allocated formatted string. The caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** xasprintf() with a va_list. */
char *xvasprintf(const char *fmt, va_list ap);

#endif
