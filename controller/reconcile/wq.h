/*
 * wq — the controller's rate-limited, de-duplicating work queue.
 *
 * The client-go workqueue in C. Watch handlers add keys ("namespace/name",
 * or any string); workers take them with wq_get(), reconcile, and say
 * wq_done(). The queue guarantees what a level-triggered reconcile needs:
 *
 *  - a key queued several times before a worker takes it is handed out once;
 *  - a key is never handed to two workers at once: a key added while it is
 *    being processed is held back and queued again by wq_done();
 *  - a key that failed is retried later with per-key exponential backoff
 *    (wq_add_rate_limited), reset by wq_forget() after a success;
 *  - a key can be scheduled for later (wq_add_after), e.g. to look again at
 *    a VMI when its Unknown grace period ends.
 *
 * Delayed keys wait in a min-heap; the getters themselves serve it, sleeping
 * in pthread_cond_timedwait() on CLOCK_MONOTONIC until the earliest one is
 * due, so the queue owns no thread.
 *
 * It must never hand out a key after shutdown, and never let one key be
 * processed by two workers at once. All functions are thread-safe except
 * wq_new() and wq_free().
 */
#ifndef KVR_WQ_H
#define KVR_WQ_H

#include <stddef.h>
#include <stdint.h>

struct wq;

/* Rate-limiting parameters, client-go's DefaultControllerRateLimiter by
 * default: the larger of a per-key exponential backoff and an overall token
 * bucket's wait. */
struct wq_config {
    uint64_t base_delay_ms; /* first backoff of a key; 0 = 5 ms */
    uint64_t max_delay_ms;  /* backoff cap; 0 = 1000 s */
    double qps;             /* token bucket refill per second; 0 = 10, < 0 = no bucket */
    unsigned burst;         /* token bucket size; 0 = 100 */
};

/**
 * Creates an empty queue. cfg may be NULL for the defaults; zero fields take
 * their defaults too. The caller frees it with wq_free(). Never fails
 * (allocation failure aborts).
 */
struct wq *wq_new(const struct wq_config *cfg);

/**
 * Frees the queue and every key still in it. Call it only once no thread
 * uses the queue any more (after wq_shutdown() and joining the workers).
 * NULL is allowed.
 */
void wq_free(struct wq *q);

/**
 * Queues a copy of key for processing. A key already waiting is not queued
 * twice; a key being processed is queued again when wq_done() is called for
 * it. Returns 0; -EINVAL for a NULL key; -ESHUTDOWN after shutdown (the key
 * is dropped).
 */
int wq_add(struct wq *q, const char *key);

/**
 * Queues key once delay_ms milliseconds have passed (at once when 0). A key
 * already waiting for a later time is moved to the earlier one; a key
 * waiting for an earlier time keeps it. Same returns as wq_add().
 */
int wq_add_after(struct wq *q, const char *key, uint64_t delay_ms);

/**
 * Queues key after its backoff: base_delay * 2^n for its n-th requeue since
 * the last wq_forget(), capped at max_delay, or the token bucket's wait when
 * that is longer. Returns the delay chosen in milliseconds (for logs and
 * tests); 0 when the key was dropped (NULL key, or after shutdown).
 */
uint64_t wq_add_rate_limited(struct wq *q, const char *key);

/**
 * Forgets key's failures: its next wq_add_rate_limited() starts again at the
 * base delay. Call it after a successful reconcile. It does not unqueue the
 * key. Unknown keys and NULL are ignored.
 */
void wq_forget(struct wq *q, const char *key);

/**
 * How many times key has been rate-limited since its last wq_forget(), so a
 * worker can give up on a key that keeps failing. 0 for unknown keys.
 */
unsigned wq_num_requeues(struct wq *q, const char *key);

/**
 * Blocks until a key is ready or the queue is shut down. On success *key is
 * a new string the caller frees (free()) and the key is marked in process
 * until wq_done(q, *key). Returns 0, or -ESHUTDOWN once the queue is shut
 * down — even if keys are still queued: a controller that stopped leading
 * must not act on more keys, and the next leader relists anyway.
 */
int wq_get(struct wq *q, char **key);

/**
 * Marks key, which wq_get() returned, as processed. If it was added again
 * meanwhile, it is queued now. Must be called exactly once per wq_get(),
 * also after shutdown. Unknown keys are ignored.
 */
void wq_done(struct wq *q, const char *key);

/**
 * Number of keys ready to be handed out (neither delayed nor in process),
 * the figure client-go calls the queue depth.
 */
size_t wq_len(struct wq *q);

/**
 * Shuts the queue down: later adds are dropped, and every wq_get(), blocked
 * or future, returns -ESHUTDOWN. Does not wait. Idempotent.
 */
void wq_shutdown(struct wq *q);

/**
 * wq_shutdown(), then blocks until every key handed out has been given back
 * with wq_done(), so in-flight reconciles finish before the process exits.
 * Must not be called from a worker holding a key (it would wait for itself).
 */
void wq_shutdown_drain(struct wq *q);

#endif
