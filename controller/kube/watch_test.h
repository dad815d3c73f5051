/*
 * watch_test — for unit tests and the fuzzer only: the reflector's line
 * splitter and the steps it applies a watch event or a list page with,
 * without a thread or a server. Only watch.c and tests include this header
 * (make lint checks).
 */
#ifndef KVR_WATCH_TEST_H
#define KVR_WATCH_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "kube/watch.h"

/* Splits a byte stream into '\n'-terminated lines. A zeroed struct is
 * ready; release it with watch__lines_free(). */
struct watch_lines {
    struct buf pending; /* bytes received after the last '\n' */
    size_t max_line;    /* longer lines are skipped; 0: WATCH_MAX_LINE */
    bool skipping;      /* inside an over-long line, dropping to its '\n' */
    size_t scanned;     /* leading bytes of pending known to hold no '\n', so
                           a line arriving in many chunks is scanned once */
};

/* Receives one complete line, without its '\n' (nor a trailing '\r'), NUL-
 * terminated at line[len]. Empty lines are not passed. Return 0 to go on,
 * nonzero to stop feeding (watch__lines_feed returns that value). */
typedef int (*watch_line_fn)(void *ud, const char *line, size_t len);

/**
 * Appends data[0..len) and passes every line it completes to fn, in order,
 * each exactly once. An over-long line is dropped (fn gets it as NULL, 0 once,
 * so the caller can count it) and its remainder skipped. Returns 0 or fn's
 * nonzero value (the remaining lines stay buffered).
 */
int watch__lines_feed(struct watch_lines *l, const char *data, size_t len, watch_line_fn fn,
                      void *ud);

/** Discards any partial line (a stream ended or restarted). */
void watch__lines_reset(struct watch_lines *l);

/** Frees the buffer. */
void watch__lines_free(struct watch_lines *l);

/**
 * Applies one watch event line (JSON {"type":..., "object":...}) to w: updates
 * the known keys and the resume resourceVersion and calls the handlers.
 * Returns 0; -ESTALE for an ERROR event with code 410 (the caller must
 * relist); -EAGAIN for another ERROR event (re-watch after a backoff);
 * -EBADMSG for a line that is not a valid event (counted as malformed,
 * logged, skipped). Never called concurrently with the thread (tests only
 * use it on a reflector that is not started).
 */
int watch__apply_line(struct watch *w, const char *line, size_t len);

/**
 * Starts a list (as after a 410): every key known now is marked unseen.
 * Then watch__list_page() for each page and watch__list_end() at the end.
 */
void watch__list_begin(struct watch *w);

/**
 * Applies one page of a list (a List object: items, metadata.continue,
 * metadata.resourceVersion, borrowed): new keys give on_add, changed
 * resourceVersions on_update, a changed uid on_delete(stub) + on_add. Returns
 * 0 or -EBADMSG when page is not a list.
 */
int watch__list_page(struct watch *w, const cJSON *page);

/**
 * Ends a list: every key not seen in it gives on_delete(stub, true) and is
 * forgotten; the resume resourceVersion becomes the list's; on_synced is called
 * after the first complete list.
 */
void watch__list_end(struct watch *w);

/*
 * The reflector's known keys (issue 11): an open-addressing table of 8-byte
 * slots over a dense array of entries, instead of a 56-byte uthash handle in
 * each entry. A slot is 0 (empty) or the high 32 bits of the key's hash
 * above the entry's index + 1; linear probing, deletes shift back (no
 * tombstones). The hash is FNV-1a started from a per-table random seed, so
 * that names chosen in advance cannot be made to pile onto one probe run.
 * Iterate with objs[0..n); a delete moves the last entry into the hole.
 * A zeroed struct is empty; hash NULL means the seeded FNV-1a (tests set
 * another to force collisions).
 */
struct watch_obj;
struct watch_keys {
    struct watch_obj **objs; /* the entries, dense, in no order */
    uint32_t n;              /* entries */
    uint32_t cap;            /* objs allocated */
    uint64_t *slots;         /* mask + 1 slots, or NULL before the first add */
    uint32_t mask;           /* slots - 1, a power of two minus one */
    uint64_t seed;           /* start of the hash */
    uint64_t (*hash)(uint64_t seed, const char *key); /* NULL: seeded FNV-1a */
};

/** A new entry for key (the uid packed when it is a canonical UUID, the
 *  resourceVersion as a number when it is one). Free with watch__obj_free(). */
struct watch_obj *watch__obj_new(const char *key, const char *uid, const char *rv);

/** Frees an entry that is in no table. NULL is fine. */
void watch__obj_free(struct watch_obj *o);

/** The key an entry was made with. */
const char *watch__obj_key(const struct watch_obj *o);

/** The entry of key, or NULL. */
struct watch_obj *watch__keys_find(const struct watch_keys *t, const char *key);

/** Adds o (its key must not be in t); t owns it from now on. Grows the
 *  slots at three quarters full. */
void watch__keys_add(struct watch_keys *t, struct watch_obj *o);

/** Takes o (in t) out of t, without freeing it; the last entry moves into
 *  its place in objs. Shrinks what a large relist leaves mostly empty. */
void watch__keys_del(struct watch_keys *t, struct watch_obj *o);

/** Frees every entry and the table; t is empty again (seed kept). */
void watch__keys_clear(struct watch_keys *t);

#endif
