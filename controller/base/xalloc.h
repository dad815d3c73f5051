/*
 * xalloc — allocation that never returns NULL.
 *
 * Like Redis' zmalloc, an allocation failure aborts the process: the pod is
 * restarted by Kubernetes, and no caller carries a half-handled NULL path.
 * Everything allocated here is released with plain free().
 *
 * cJSON allocates on its own; xalloc_init() routes it through xmalloc too,
 * so that a failed allocation inside cJSON aborts like any other instead of
 * coming back as a NULL node that a caller drops, leaving a truncated tree
 * that is then scored, printed or sent to the API server as if it were whole.
 */
#ifndef KVR_XALLOC_H
#define KVR_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/**
 * Makes cJSON allocate with xmalloc() (and free with free(), which it
 * already did): from then on no cJSON create, parse, copy or print returns
 * NULL for lack of memory. Call it first thing in main() of every program
 * (both binaries, the unit-test harness, each fuzz target), before any
 * thread starts: cJSON_InitHooks() is not thread-safe. Calling it again is
 * harmless.
 */
void xalloc_init(void);

/**
 * Reports "kvrecover: out of memory allocating N bytes" (N 0: the size is
 * not known, "kvrecover: out of memory") as one line on stderr and aborts.
 * For allocators that are not ours (libyaml, cJSON without xalloc_init())
 * and report failure their own way.
 */
void xalloc_oom(size_t n) __attribute__((noreturn));

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

/**
 * cJSON_PrintUnformatted(item), aborting where cJSON would return NULL
 * (out of memory; item NULL or not a valid cJSON value, both programming
 * errors). Never NULL. The caller frees with free() (or cJSON_free()).
 */
char *xcjson_print(const cJSON *item);

#endif
