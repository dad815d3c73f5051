/*
 * authz — token decisions off the HTTP thread, cached. See authz.h.
 *
 * One mutex guards the job queue, the cache and the stop flag; a condition
 * variable wakes the workers. A worker takes a job, looks in the cache
 * again (another worker may just have decided the same token: a scraper's
 * parallel first requests then cost one review), calls decide() without
 * the lock, caches a decision, and reports it. The cache is a flat array
 * scanned under the lock: at most a few hundred entries, each compared by
 * a 64-bit hash first and then, in constant time, by the whole key.
 */
#include "web/authz.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/xalloc.h"
#include "web/metrics.h"

struct authz__job {
    uint64_t ticket;
    char *token, *path, *verb; /* owned; token wiped when freed */
    struct authz__job *next;
};

struct authz__entry {
    uint64_t hash; /* of the key (token, path, verb); 0 with token NULL: free */
    char *token;   /* owned, wiped when freed */
    size_t token_len;
    char *path, *verb; /* owned */
    int decision;      /* an enum authz_decision */
    long expires_ms;   /* clock_mono_ms() after which it is not used */
};

struct authz {
    struct authz_config cfg; /* defaults filled in */
    pthread_mutex_t lock;    /* guards everything below */
    pthread_cond_t cond;     /* a job arrived, or stopping */
    struct authz__job *head, *tail;
    int queued;
    bool stopping;
    struct authz__entry *cache; /* cfg.entries slots */
    pthread_t *threads;
    int nthreads; /* started */
};

static void authz__wipe_free(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void authz__job_free(struct authz__job *j)
{
    if (j == NULL)
        return;
    authz__wipe_free(j->token);
    free(j->path);
    free(j->verb);
    free(j);
}

static void authz__entry_clear(struct authz__entry *e)
{
    authz__wipe_free(e->token);
    free(e->path);
    free(e->verb);
    memset(e, 0, sizeof(*e));
}

static uint64_t authz__hash(const char *token, const char *path, const char *verb)
{
    return hash_fnv_field(hash_fnv_field(hash_fnv_field(HASH_FNV_INIT, token), path), verb);
}

/* Equal strings, in time that depends on the lengths only. */
static bool authz__equal(const char *a, size_t an, const char *b, size_t bn)
{
    volatile unsigned char d = an != bn;
    size_t n = an < bn ? an : bn;

    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* The live entry for the key, or NULL. Under the lock. */
static struct authz__entry *authz__find(struct authz *a, uint64_t h, const char *token,
                                        const char *path, const char *verb, long now)
{
    size_t tl = strlen(token);

    for (int i = 0; i < a->cfg.entries; i++) {
        struct authz__entry *e = &a->cache[i];
        if (e->token == NULL || e->hash != h || e->expires_ms <= now)
            continue;
        if (authz__equal(e->token, e->token_len, token, tl) && strcmp(e->path, path) == 0 &&
            strcmp(e->verb, verb) == 0)
            return e;
    }
    return NULL;
}

/* Remembers a decision: in the key's own slot, a free or expired one, or
 * the one closest to expiry. Under the lock. */
static void authz__remember(struct authz *a, const char *token, const char *path, const char *verb,
                            int decision, long now)
{
    uint64_t h = authz__hash(token, path, verb);
    struct authz__entry *e = authz__find(a, h, token, path, verb, now), *victim = NULL;

    for (int i = 0; e == NULL && i < a->cfg.entries; i++) {
        struct authz__entry *c = &a->cache[i];
        if (c->token == NULL || c->expires_ms <= now) {
            e = c;
            break;
        }
        if (victim == NULL || c->expires_ms < victim->expires_ms)
            victim = c;
    }
    if (e == NULL)
        e = victim;
    authz__entry_clear(e);
    e->hash = h;
    e->token = xstrdup(token);
    e->token_len = strlen(token);
    e->path = xstrdup(path);
    e->verb = xstrdup(verb);
    e->decision = decision;
    e->expires_ms = now + a->cfg.ttl_ms;
}

static const char *authz__result_name(int decision)
{
    switch (decision) {
    case AUTHZ_ALLOW:
        return "allowed";
    case AUTHZ_UNAUTHENTICATED:
        return "unauthenticated";
    case AUTHZ_FORBIDDEN:
        return "forbidden";
    default:
        return "error";
    }
}

static void *authz__worker(void *arg)
{
    struct authz *a = arg;

    pthread_mutex_lock(&a->lock);
    for (;;) {
        struct authz__job *j;
        struct authz__entry *e;
        int decision;

        while (!a->stopping && a->head == NULL)
            pthread_cond_wait(&a->cond, &a->lock);
        if (a->stopping)
            break;
        j = a->head;
        a->head = j->next;
        if (a->head == NULL)
            a->tail = NULL;
        a->queued--;
        e = authz__find(a, authz__hash(j->token, j->path, j->verb), j->token, j->path, j->verb,
                        clock_mono_ms());
        if (e != NULL) {
            decision = e->decision;
        } else {
            pthread_mutex_unlock(&a->lock);
            decision = a->cfg.decide(a->cfg.decide_ud, j->token, j->path, j->verb);
            if (decision > AUTHZ_FORBIDDEN)
                decision = -EPROTO;
            {
                char *labels = metrics_labels("result", authz__result_name(decision), NULL, NULL);
                metrics_counter_add(METRICS_HTTP_AUTH_REVIEWS, labels, 1);
                free(labels);
            }
            pthread_mutex_lock(&a->lock);
            if (decision >= 0)
                authz__remember(a, j->token, j->path, j->verb, decision, clock_mono_ms());
        }
        pthread_mutex_unlock(&a->lock);
        a->cfg.done(a->cfg.done_ud, j->ticket, decision);
        authz__job_free(j);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int authz_new(const struct authz_config *cfg, struct authz **out)
{
    struct authz *a;

    *out = NULL;
    if (cfg == NULL || cfg->decide == NULL || cfg->done == NULL)
        return -EINVAL;
    a = xcalloc(1, sizeof(*a));
    a->cfg = *cfg;
    if (a->cfg.workers <= 0)
        a->cfg.workers = AUTHZ_DEFAULT_WORKERS;
    if (a->cfg.queue <= 0)
        a->cfg.queue = AUTHZ_DEFAULT_QUEUE;
    if (a->cfg.entries <= 0)
        a->cfg.entries = AUTHZ_DEFAULT_ENTRIES;
    if (a->cfg.ttl_ms <= 0)
        a->cfg.ttl_ms = AUTHZ_DEFAULT_TTL_MS;
    pthread_mutex_init(&a->lock, NULL);
    clock_cond_init(&a->cond);
    a->cache = xcalloc((size_t)a->cfg.entries, sizeof(*a->cache));
    a->threads = xcalloc((size_t)a->cfg.workers, sizeof(*a->threads));
    for (int i = 0; i < a->cfg.workers; i++) {
        if (pthread_create(&a->threads[i], NULL, authz__worker, a) != 0)
            break;
        a->nthreads++;
    }
    if (a->nthreads == 0) {
        authz_free(a);
        return -EAGAIN;
    }
    *out = a;
    return 0;
}

void authz_free(struct authz *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < a->nthreads; i++)
        pthread_join(a->threads[i], NULL);
    while (a->head != NULL) {
        struct authz__job *j = a->head;
        a->head = j->next;
        authz__job_free(j);
    }
    for (int i = 0; i < a->cfg.entries; i++)
        authz__entry_clear(&a->cache[i]);
    free(a->cache);
    free(a->threads);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int authz_cached(struct authz *a, const char *token, const char *path, const char *verb)
{
    const struct authz__entry *e;
    int decision;

    pthread_mutex_lock(&a->lock);
    e = authz__find(a, authz__hash(token, path, verb), token, path, verb, clock_mono_ms());
    decision = e ? e->decision : -ENOENT;
    pthread_mutex_unlock(&a->lock);
    return decision;
}

int authz_submit(struct authz *a, uint64_t ticket, const char *token, const char *path,
                 const char *verb)
{
    struct authz__job *j = xcalloc(1, sizeof(*j));

    j->ticket = ticket;
    j->token = xstrdup(token);
    j->path = xstrdup(path);
    j->verb = xstrdup(verb);
    pthread_mutex_lock(&a->lock);
    if (a->stopping || a->queued >= a->cfg.queue) {
        pthread_mutex_unlock(&a->lock);
        authz__job_free(j);
        return -EBUSY;
    }
    a->queued++;
    if (a->tail)
        a->tail->next = j;
    else
        a->head = j;
    a->tail = j;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    return 0;
}
