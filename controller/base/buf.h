/*
 * buf — a growable byte buffer, always NUL-terminated.
 *
 * Used to collect HTTP bodies, to split the watch stream into lines, and to
 * build JSON or text output. A zeroed struct buf is a valid empty buffer.
 */
#ifndef KVR_BUF_H
#define KVR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NUL-terminated contents, or NULL while empty and unused */
    size_t len; /* bytes used, not counting the terminator */
    size_t cap; /* bytes allocated */
};

/** Appends n bytes. */
void buf_append(struct buf *b, const void *p, size_t n);

/** Appends a NUL-terminated string. */
void buf_puts(struct buf *b, const char *s);

/** Appends formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Removes the first n bytes (n <= len), keeping the rest. */
void buf_consume(struct buf *b, size_t n);

/** Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/** Returns the contents and leaves the buffer empty; the caller frees.
 *  Never NULL: an empty buffer gives "". */
char *buf_steal(struct buf *b);

/** Frees the memory; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

/** Reads a whole file into b (appending). Returns 0, or -errno; a file
 *  larger than max bytes gives -EFBIG. */
int buf_read_file(struct buf *b, const char *path, size_t max);

#endif
