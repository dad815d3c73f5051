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

#endif
