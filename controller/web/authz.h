/*
 * authz — bearer-token decisions for the HTTP side, made off its thread and
 * remembered briefly.
 *
 * httpd cannot ask the API server itself: libwebsockets runs one thread,
 * and a TokenReview plus a SubjectAccessReview take two round trips. So a
 * decision that is not cached becomes a job for a small pool of worker
 * threads, which call the decision function (kube/review through the
 * controller's main: web must not include kube), cache what it says for
 * ttl_ms, and report it through a done callback that wakes the server.
 * A scraper with one token therefore costs two API calls per TTL, not per
 * scrape; denials are cached too, so a bad token repeated is cheap, and a
 * flood of different tokens fills the bounded queue and is refused
 * (-EBUSY) instead of queueing API calls without end.
 *
 * Tokens are secrets: they are kept only in the cache and the queue, never
 * logged, compared in constant time, and wiped when dropped.
 */
#ifndef KVR_AUTHZ_H
#define KVR_AUTHZ_H

#include <stdint.h>

/* What a decision function answers (>= 0; a negative errno means it could
 * not decide, e.g. the API server did not answer: never cached). */
enum authz_decision {
    AUTHZ_ALLOW = 0,           /* the token is valid and may GET the path */
    AUTHZ_UNAUTHENTICATED = 1, /* the token is not valid: 401 */
    AUTHZ_FORBIDDEN = 2,       /* valid, but its user may not: 403 */
};

/* Longest token considered (an OIDC or ServiceAccount token is 1–3 KB);
 * a longer one is refused as unauthenticated without asking anyone. */
#define AUTHZ_TOKEN_MAX 4096

/* Defaults for struct authz_config fields left 0. */
#define AUTHZ_DEFAULT_WORKERS 2
#define AUTHZ_DEFAULT_QUEUE 64
#define AUTHZ_DEFAULT_ENTRIES 128
#define AUTHZ_DEFAULT_TTL_MS 10000L

/**
 * Decides whether the bearer token may use verb ("get") on path: an
 * enum authz_decision, or a negative errno when it cannot tell. Called on a
 * worker thread, concurrently with itself when there are several workers.
 */
typedef int (*authz_fn)(void *ud, const char *token, const char *path, const char *verb);

/** Told each decision a job produced (its ticket, the decision or the
 *  negative errno), on the worker thread that made it. */
typedef void (*authz_done_fn)(void *ud, uint64_t ticket, int decision);

struct authz_config {
    authz_fn decide;    /* required */
    void *decide_ud;    /* not owned */
    authz_done_fn done; /* required */
    void *done_ud;      /* not owned */
    int workers;        /* threads; 0: AUTHZ_DEFAULT_WORKERS */
    int queue;          /* jobs waiting at most; 0: AUTHZ_DEFAULT_QUEUE */
    int entries;        /* decisions remembered at most; 0: AUTHZ_DEFAULT_ENTRIES */
    long ttl_ms;        /* how long one is remembered; 0: AUTHZ_DEFAULT_TTL_MS */
};

struct authz;

/**
 * Starts the workers. Returns 0 and *out (stop it with authz_free()), or
 * -EINVAL when decide or done is missing, -EAGAIN when no thread could be
 * started.
 */
int authz_new(const struct authz_config *cfg, struct authz **out);

/**
 * Stops the workers (a decision being made is finished and reported first)
 * and frees everything; queued jobs are dropped unreported. NULL is fine.
 */
void authz_free(struct authz *a);

/**
 * The remembered decision for (token, path, verb), or -ENOENT when there
 * is none younger than the TTL. Thread-safe; never blocks on I/O.
 */
int authz_cached(struct authz *a, const char *token, const char *path, const char *verb);

/**
 * Queues a decision for (token, path, verb) (all copied), reported later
 * through done with ticket. Returns 0, or -EBUSY when the queue is full
 * (nothing will be reported). Thread-safe.
 */
int authz_submit(struct authz *a, uint64_t ticket, const char *token, const char *path,
                 const char *verb);

#endif
