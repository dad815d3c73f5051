/*
 * wq — rate-limited, de-duplicating work queue. See wq.h.
 *
 * One mutex guards everything. Each distinct key has one item in a hash
 * table; the item's flags say where the key is (client-go's dirty set,
 * processing set, failure counts and waiting heap, folded into one record),
 * and the item is freed once none of them holds it any more. Ready keys form
 * a FIFO through the items, so a key is in the FIFO exactly when it is dirty
 * and not being processed.
 */
#include "reconcile/wq.h"
#include "reconcile/wq_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/xalloc.h"

#define WQ__NOHEAP ((size_t)-1)
#define WQ__MIN_BUCKETS 64 /* a new table's buckets, and the fewest it shrinks to */
#define WQ__MIN_HEAP 16    /* the delay heap's first slots, and the fewest it shrinks to */
#define WQ__NS_PER_MS 1000000ULL
#define WQ__NS_PER_S 1000000000ULL

struct wq__item {
    char *key;               /* the key, owned */
    size_t hash;             /* hash of key, kept for rehashing */
    struct wq__item *hnext;  /* next item in the same hash bucket */
    struct wq__item *qnext;  /* next item in the ready FIFO */
    unsigned dirty : 1;      /* needs processing (client-go's dirty set) */
    unsigned processing : 1; /* handed out by wq_get(), not yet wq_done() */
    unsigned failures;       /* rate-limited requeues since the last forget */
    size_t heap_idx;         /* index in the delay heap, or WQ__NOHEAP */
    uint64_t ready_ns;       /* monotonic time a delayed add becomes due */
    uint64_t seq;            /* heap tie-break: earlier wq_add_after first */
};

struct wq {
    pthread_mutex_t lock;      /* guards every field below */
    pthread_cond_t ready;      /* signalled when a key is ready or on shutdown */
    pthread_cond_t drained;    /* signalled when nprocessing drops to 0 */
    struct wq__item **buckets; /* hash table of all items */
    size_t nbuckets;           /* power of two */
    size_t nitems;             /* items in the table */
    struct wq__item *head;     /* ready FIFO: next key to hand out */
    struct wq__item *tail;     /* ready FIFO: last key queued */
    size_t nready;             /* keys in the FIFO */
    size_t nprocessing;        /* keys handed out and not yet done */
    struct wq__item **heap;    /* min-heap of delayed items by ready_ns */
    size_t nheap;              /* items in the heap */
    size_t heapcap;            /* slots allocated in heap */
    uint64_t seq;              /* next heap tie-break number */
    int shutdown;              /* set once by wq_shutdown() */
    uint64_t base_ns;          /* first backoff */
    uint64_t max_ns;           /* backoff cap */
    double qps;                /* token refill rate; <= 0: no bucket */
    double burst;              /* bucket capacity */
    double tokens;             /* tokens left; negative: reserved ahead */
    uint64_t tokens_ns;        /* when tokens was last brought up to date */
};

/* FNV-1a: keys are short and this table is not exposed to chosen-key
 * floods beyond object names the API server already accepted. */
static size_t wq__hash(const char *s)
{
    return (size_t)hash_fnv_str(HASH_TABLE_INIT, s);
}

static struct wq__item *wq__find(struct wq *q, const char *key)
{
    size_t h = wq__hash(key);

    for (struct wq__item *it = q->buckets[h & (q->nbuckets - 1)]; it; it = it->hnext)
        if (it->hash == h && strcmp(it->key, key) == 0)
            return it;
    return NULL;
}

/* Rehashes the table into n buckets (a power of two): doubled when it
 * holds as many items as buckets, halved when a burst has drained and it
 * holds fewer than an eighth (issue 11: 10,000 keys leave 256 KiB of
 * buckets behind otherwise). */
static void wq__resize(struct wq *q, size_t n)
{
    struct wq__item **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < q->nbuckets; i++) {
        struct wq__item *it = q->buckets[i], *next;
        for (; it; it = next) {
            next = it->hnext;
            it->hnext = b[it->hash & (n - 1)];
            b[it->hash & (n - 1)] = it;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = n;
}

static struct wq__item *wq__lookup_or_create(struct wq *q, const char *key)
{
    struct wq__item *it = wq__find(q, key);
    size_t slot;

    if (it)
        return it;
    if (q->nitems >= q->nbuckets)
        wq__resize(q, q->nbuckets * 2);
    it = xcalloc(1, sizeof(*it));
    it->key = xstrdup(key);
    it->hash = wq__hash(key);
    it->heap_idx = WQ__NOHEAP;
    slot = it->hash & (q->nbuckets - 1);
    it->hnext = q->buckets[slot];
    q->buckets[slot] = it;
    q->nitems++;
    return it;
}

/* Frees an item nothing refers to any more. */
static void wq__release(struct wq *q, struct wq__item *it)
{
    struct wq__item **pp;

    if (it->dirty || it->processing || it->failures || it->heap_idx != WQ__NOHEAP)
        return;
    for (pp = &q->buckets[it->hash & (q->nbuckets - 1)]; *pp != it; pp = &(*pp)->hnext)
        ;
    *pp = it->hnext;
    q->nitems--;
    free(it->key);
    free(it);
    if (q->nbuckets > WQ__MIN_BUCKETS && q->nitems * 8 < q->nbuckets)
        wq__resize(q, q->nbuckets / 2);
}

static void wq__push_ready(struct wq *q, struct wq__item *it)
{
    it->qnext = NULL;
    if (q->tail)
        q->tail->qnext = it;
    else
        q->head = it;
    q->tail = it;
    q->nready++;
    pthread_cond_signal(&q->ready);
}

/* client-go's Add, with the lock held. */
static void wq__add_locked(struct wq *q, struct wq__item *it)
{
    if (it->dirty)
        return;
    it->dirty = 1;
    if (!it->processing)
        wq__push_ready(q, it);
}

/* --- the delay heap ------------------------------------------------------ */

static int wq__heap_less(const struct wq__item *a, const struct wq__item *b)
{
    if (a->ready_ns != b->ready_ns)
        return a->ready_ns < b->ready_ns;
    return a->seq < b->seq;
}

static void wq__heap_set(struct wq *q, size_t i, struct wq__item *it)
{
    q->heap[i] = it;
    it->heap_idx = i;
}

static void wq__heap_up(struct wq *q, size_t i)
{
    struct wq__item *it = q->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!wq__heap_less(it, q->heap[parent]))
            break;
        wq__heap_set(q, i, q->heap[parent]);
        i = parent;
    }
    wq__heap_set(q, i, it);
}

static void wq__heap_down(struct wq *q, size_t i)
{
    struct wq__item *it = q->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->nheap)
            break;
        if (c + 1 < q->nheap && wq__heap_less(q->heap[c + 1], q->heap[c]))
            c++;
        if (!wq__heap_less(q->heap[c], it))
            break;
        wq__heap_set(q, i, q->heap[c]);
        i = c;
    }
    wq__heap_set(q, i, it);
}

static void wq__heap_push(struct wq *q, struct wq__item *it)
{
    if (q->nheap == q->heapcap) {
        q->heapcap = q->heapcap ? q->heapcap * 2 : WQ__MIN_HEAP;
        q->heap = xreallocarray(q->heap, q->heapcap, sizeof(*q->heap));
    }
    it->seq = q->seq++;
    wq__heap_set(q, q->nheap++, it);
    wq__heap_up(q, q->nheap - 1);
}

static struct wq__item *wq__heap_pop(struct wq *q)
{
    struct wq__item *top = q->heap[0];

    q->nheap--;
    if (q->nheap > 0) {
        wq__heap_set(q, 0, q->heap[q->nheap]);
        wq__heap_down(q, 0);
    }
    if (q->heapcap > WQ__MIN_HEAP && q->nheap * 4 < q->heapcap) {
        /* a drained burst of delayed keys: give the slack back */
        q->heapcap /= 2;
        q->heap = xreallocarray(q->heap, q->heapcap, sizeof(*q->heap));
    }
    top->heap_idx = WQ__NOHEAP;
    return top;
}

/* Moves every due delayed key to the ready FIFO. */
static void wq__promote_due(struct wq *q, uint64_t now)
{
    while (q->nheap > 0 && q->heap[0]->ready_ns <= now) {
        struct wq__item *it = wq__heap_pop(q);
        wq__add_locked(q, it);
    }
}

/* Schedules it for now + delay_ns, with the lock held. */
static void wq__add_after_locked(struct wq *q, struct wq__item *it, uint64_t delay_ns)
{
    uint64_t when;

    if (delay_ns == 0) {
        wq__add_locked(q, it);
        return;
    }
    when = clock_mono_ns() + delay_ns;
    if (it->heap_idx != WQ__NOHEAP) {
        /* Already waiting: only ever bring it forward, as client-go does. */
        if (when < it->ready_ns) {
            it->ready_ns = when;
            wq__heap_up(q, it->heap_idx);
            pthread_cond_broadcast(&q->ready);
        }
        return;
    }
    it->ready_ns = when;
    wq__heap_push(q, it);
    /* A getter asleep until a later deadline must recompute it. */
    if (q->heap[0] == it)
        pthread_cond_broadcast(&q->ready);
}

/* --- public API ---------------------------------------------------------- */

struct wq *wq_new(const struct wq_config *cfg)
{
    struct wq *q = xcalloc(1, sizeof(*q));

    pthread_mutex_init(&q->lock, NULL);
    /* Deadlines are monotonic: a wall-clock step must not fire or stall
     * delayed keys. */
    clock_cond_init(&q->ready);
    clock_cond_init(&q->drained);
    q->nbuckets = WQ__MIN_BUCKETS;
    q->buckets = xcalloc(q->nbuckets, sizeof(*q->buckets));

    q->base_ns = 5 * WQ__NS_PER_MS;
    q->max_ns = 1000 * WQ__NS_PER_S;
    q->qps = 10;
    q->burst = 100;
    if (cfg) {
        if (cfg->base_delay_ms)
            q->base_ns = cfg->base_delay_ms * WQ__NS_PER_MS;
        if (cfg->max_delay_ms)
            q->max_ns = cfg->max_delay_ms * WQ__NS_PER_MS;
        if (cfg->qps != 0)
            q->qps = cfg->qps;
        if (cfg->burst)
            q->burst = cfg->burst;
    }
    q->tokens = q->burst;
    q->tokens_ns = clock_mono_ns();
    return q;
}

void wq_free(struct wq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct wq__item *it = q->buckets[i], *next;
        for (; it; it = next) {
            next = it->hnext;
            free(it->key);
            free(it);
        }
    }
    free(q->buckets);
    free(q->heap);
    pthread_cond_destroy(&q->ready);
    pthread_cond_destroy(&q->drained);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

int wq_add(struct wq *q, const char *key)
{
    return wq_add_after(q, key, 0);
}

int wq_add_after(struct wq *q, const char *key, uint64_t delay_ms)
{
    int rc = 0;

    if (!key)
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    if (q->shutdown) {
        rc = -ESHUTDOWN;
        goto out;
    }
    /* Saturate rather than wrap: a huge delay means "never soon". */
    if (delay_ms > UINT64_MAX / 2 / WQ__NS_PER_MS)
        delay_ms = UINT64_MAX / 2 / WQ__NS_PER_MS;
    wq__add_after_locked(q, wq__lookup_or_create(q, key), delay_ms * WQ__NS_PER_MS);
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* The token bucket's wait for one more token, reserving it (client-go's
 * BucketRateLimiter: a burst passes at once, then qps per second). */
static uint64_t wq__bucket_wait(struct wq *q, uint64_t now)
{
    double t;

    if (q->qps <= 0)
        return 0;
    t = q->tokens + (double)(now - q->tokens_ns) / (double)WQ__NS_PER_S * q->qps;
    if (t > q->burst)
        t = q->burst;
    q->tokens = t - 1;
    q->tokens_ns = now;
    if (q->tokens >= 0)
        return 0;
    return (uint64_t)(-q->tokens / q->qps * (double)WQ__NS_PER_S);
}

uint64_t wq_add_rate_limited(struct wq *q, const char *key)
{
    struct wq__item *it;
    uint64_t backoff = 0, bucket;

    if (!key)
        return 0;
    pthread_mutex_lock(&q->lock);
    if (q->shutdown)
        goto out;
    it = wq__lookup_or_create(q, key);
    /* base * 2^failures, computed by doubling so that it cannot overflow. */
    backoff = q->base_ns;
    for (unsigned i = 0; i < it->failures && backoff < q->max_ns; i++)
        backoff *= 2;
    if (backoff > q->max_ns)
        backoff = q->max_ns;
    if (it->failures < UINT32_MAX)
        it->failures++;
    bucket = wq__bucket_wait(q, clock_mono_ns());
    if (bucket > backoff)
        backoff = bucket;
    wq__add_after_locked(q, it, backoff);
out:
    pthread_mutex_unlock(&q->lock);
    /* Round up so that a non-zero delay never reads as "dropped". */
    return (backoff + WQ__NS_PER_MS - 1) / WQ__NS_PER_MS;
}

void wq_forget(struct wq *q, const char *key)
{
    struct wq__item *it;

    if (!key)
        return;
    pthread_mutex_lock(&q->lock);
    it = wq__find(q, key);
    if (it) {
        it->failures = 0;
        wq__release(q, it);
    }
    pthread_mutex_unlock(&q->lock);
}

unsigned wq_num_requeues(struct wq *q, const char *key)
{
    struct wq__item *it;
    unsigned n = 0;

    if (!key)
        return 0;
    pthread_mutex_lock(&q->lock);
    it = wq__find(q, key);
    if (it)
        n = it->failures;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int wq_get(struct wq *q, char **key)
{
    struct wq__item *it;
    int rc = 0;

    *key = NULL;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->shutdown) {
            rc = -ESHUTDOWN;
            goto out;
        }
        uint64_t now = clock_mono_ns();

        wq__promote_due(q, now);
        if (q->head)
            break;
        if (q->nheap > 0) {
            /* Sleep until the earliest key is due: that delay on the
             * condition variable's own clock (see clock.h). */
            struct timespec ts;

            clock_deadline_ns(&ts, q->heap[0]->ready_ns - now);
            pthread_cond_timedwait(&q->ready, &q->lock, &ts);
        } else {
            pthread_cond_wait(&q->ready, &q->lock);
        }
    }
    it = q->head;
    q->head = it->qnext;
    if (!q->head)
        q->tail = NULL;
    it->qnext = NULL;
    q->nready--;
    it->dirty = 0;
    it->processing = 1;
    q->nprocessing++;
    *key = xstrdup(it->key);
    /* More keys may be ready (several signals can coalesce): pass it on. */
    if (q->head)
        pthread_cond_signal(&q->ready);
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void wq_done(struct wq *q, const char *key)
{
    struct wq__item *it;

    if (!key)
        return;
    pthread_mutex_lock(&q->lock);
    it = wq__find(q, key);
    if (!it || !it->processing)
        goto out;
    it->processing = 0;
    q->nprocessing--;
    if (q->nprocessing == 0)
        pthread_cond_broadcast(&q->drained);
    /* Added while in process: its turn comes now, never earlier. */
    if (it->dirty && !q->shutdown)
        wq__push_ready(q, it);
    else
        it->dirty = 0;
    wq__release(q, it);
out:
    pthread_mutex_unlock(&q->lock);
}

size_t wq_len(struct wq *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    if (!q->shutdown)
        wq__promote_due(q, clock_mono_ns());
    n = q->nready;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void wq_shutdown(struct wq *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

void wq_shutdown_drain(struct wq *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = 1;
    pthread_cond_broadcast(&q->ready);
    while (q->nprocessing > 0)
        pthread_cond_wait(&q->drained, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

int wq_shutting_down(struct wq *q)
{
    int s;

    pthread_mutex_lock(&q->lock);
    s = q->shutdown;
    pthread_mutex_unlock(&q->lock);
    return s;
}
