/*
 * watch — the reflector: list and watch one resource, in its own thread.
 *
 * As client-go's reflector: a paged list (limit + continue), then a watch from
 * the list's resourceVersion with bookmarks and a randomized timeoutSeconds,
 * resumed from the last resourceVersion seen when the stream ends, and a
 * fresh list when the server answers 410 Gone (as an HTTP status or as an
 * ERROR event). The newline-delimited JSON stream is buffered in a struct buf,
 * split on '\n', and every line parsed exactly once, whatever the chunk
 * boundaries.
 *
 * It delivers changes to callbacks (on_add, on_update, on_delete, and on_synced
 * once after the first full list), serially, from the reflector thread, each
 * object borrowed for the duration of the call. After a relist it reports as
 * deleted every object it had delivered that the new list lacks, so the
 * consumer converges on the server's state without ever seeing a gap.
 *
 * It keeps only each object's key (namespace/name), uid and resourceVersion,
 * never whole objects: the consumer (the cache) keeps the fields it needs. It
 * must never call back after watch_stop() returns, and never block a stop for
 * longer than about a second.
 */
#ifndef KVR_WATCH_H
#define KVR_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "kube/kube.h"

struct watch; /* opaque reflector */

#define WATCH_DEFAULT_PAGE_SIZE 500
#define WATCH_MIN_TIMEOUT_S 300     /* watch timeoutSeconds is drawn from */
#define WATCH_MAX_TIMEOUT_S 600     /* [min, max) for every watch request */
#define WATCH_BACKOFF_MS 500L       /* first delay after an error */
#define WATCH_MAX_BACKOFF_MS 30000L /* cap on the delay */
#define WATCH_MAX_LINE (64u << 20)  /* longer event lines are refused */

/*
 * The consumer's callbacks; any may be NULL. All run on the reflector thread,
 * one at a time, in the order the server sent the changes. obj is the whole
 * object as the server sent it, borrowed: copy what you need, do not keep
 * the pointer. Do not call watch_stop() or watch_free() from a callback.
 */
struct watch_handlers {
    /* An object the consumer has not seen (first list, ADDED, or a new uid
     * under a known key). */
    void (*on_add)(void *ud, const cJSON *obj);
    /* A new version of an object already delivered (MODIFIED, or a relist
     * that found a different resourceVersion). The old version is not kept
     * here: the consumer compares with its own copy. */
    void (*on_update)(void *ud, const cJSON *obj);
    /* An object is gone. When a relist (not a DELETED event) found it missing,
     * or it was replaced by a new uid, obj is a stub holding only
     * metadata.namespace, metadata.name, metadata.uid and
     * metadata.resourceVersion as last seen, and final_state_unknown is true
     * (client-go's DeletedFinalStateUnknown). */
    void (*on_delete)(void *ud, const cJSON *obj, bool final_state_unknown);
    /* The first full list has been delivered: the consumer's cache is
     * complete. Called once per watch_start(). */
    void (*on_synced)(void *ud);
};

/* What to watch. Strings are copied by watch_new(). */
struct watch_config {
    struct kube_resource res;       /* group/version/resource */
    const char *namespace;          /* NULL or "": all namespaces */
    const char *label_selector;     /* NULL: everything */
    const char *field_selector;     /* NULL: everything */
    const char *name;               /* for logs and metrics; default res.resource */
    long page_size;                 /* list page; 0: WATCH_DEFAULT_PAGE_SIZE */
    struct watch_handlers handlers; /* the consumer */
    void *ud;                       /* passed to every handler */
};

/* Counters since watch_new(), for metrics and tests. */
struct watch_stats {
    unsigned long lists;     /* complete lists (the first one included) */
    unsigned long relists;   /* lists after the first (410 Gone) */
    unsigned long restarts;  /* watch requests after the first one */
    unsigned long events;    /* ADDED/MODIFIED/DELETED events applied */
    unsigned long bookmarks; /* BOOKMARK events */
    unsigned long errors;    /* failed requests and ERROR events */
    unsigned long malformed; /* lines skipped: bad JSON or bad event */
    size_t objects;          /* keys currently known */
};

/**
 * Creates a reflector on client k (borrowed: it must outlive the reflector)
 * for cfg (copied). k may be NULL for a reflector fed only by hand through
 * watch__ functions (tests, fuzzing); watch_start() then fails. Returns 0 and
 * *out, or -EINVAL when cfg lacks a version or resource. Free with
 * watch_free().
 */
int watch_new(struct kube *k, const struct watch_config *cfg, struct watch **out);

/**
 * Starts the reflector thread: list, then watch, until watch_stop(). Returns
 * 0, -EALREADY when running, -EINVAL without a client, or -errno from
 * pthread_create (then no callback is ever called).
 */
int watch_start(struct watch *w);

/**
 * Stops the thread and waits for it: an open watch or list request is
 * aborted, a backoff sleep cut short; returns within about a second. After
 * it returns no callback runs. The known keys are kept, so a later
 * watch_start() relists and reports only the differences. Idempotent.
 */
void watch_stop(struct watch *w);

/** Stops (see watch_stop) and frees w. NULL is fine. */
void watch_free(struct watch *w);

/** True once the first full list has been delivered (on_synced called). */
bool watch_has_synced(const struct watch *w);

/** Waits until watch_has_synced() or timeout_ms passes (< 0: forever).
 *  Returns 0, -ETIMEDOUT, or -ECANCELED when the reflector is stopped. */
int watch_wait_synced(struct watch *w, long timeout_ms);

/** Copies the counters into *st. Thread-safe. */
void watch_get_stats(const struct watch *w, struct watch_stats *st);

/** The resourceVersion the next watch resumes from ("" before the first
 *  list). Returns a new string; the caller frees it. */
char *watch_resource_version(const struct watch *w);

#endif
