/*
 * xalloc — allocation that aborts instead of returning NULL. See xalloc.h.
 */
#include "base/xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void xalloc_oom(size_t n)
{
    /* one line on stderr (the CLI's promise); stderr is unbuffered, so this
     * allocates nothing */
    if (n)
        fprintf(stderr, "kvrecover: out of memory allocating %zu bytes\n", n);
    else
        fputs("kvrecover: out of memory\n", stderr);
    abort();
}

void xalloc_init(void)
{
    cJSON_Hooks hooks = {.malloc_fn = xmalloc, .free_fn = free};

    cJSON_InitHooks(&hooks);
}

char *xcjson_print(const cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);

    if (!s) {
        if (!item)
            abort();   /* a programming error, not a lack of memory */
        xalloc_oom(0); /* the size cJSON wanted is not known here */
    }
    return s;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        xalloc_oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p;

    if (size && count > SIZE_MAX / size)
        xalloc_oom(SIZE_MAX);
    p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        xalloc_oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        xalloc_oom(n);
    return q;
}

void *xreallocarray(void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        xalloc_oom(SIZE_MAX);
    return xrealloc(p, count * size);
}

char *xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *p;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        abort(); /* an invalid format is a programming error */
    p = xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;

    va_start(ap, fmt);
    p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}
