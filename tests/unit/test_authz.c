/*
 * Tests for authz: decisions are made on the workers and reported with
 * their ticket, remembered for the TTL (a repeated token costs no second
 * review, errors are never remembered), keyed by token, path and verb,
 * bounded in number, and a full queue refuses instead of growing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/clock_test.h"
#include "harness.h"
#include "web/authz.h"

/* The fake decision function: "good" may get /metrics, "user" is valid
 * but forbidden, "broken" cannot be decided, anything else is invalid.
 * While gate is closed it blocks (to fill the queue). */
static atomic_int decide_calls;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;

static int decide(void *ud, const char *token, const char *path, const char *verb)
{
    (void)ud;
    atomic_fetch_add(&decide_calls, 1);
    pthread_mutex_lock(&gate_lock);
    while (gate_closed)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    if (strcmp(verb, "get") != 0)
        return AUTHZ_FORBIDDEN;
    if (strcmp(token, "broken") == 0)
        return -EIO;
    if (strcmp(token, "good") == 0)
        return strcmp(path, "/metrics") == 0 ? AUTHZ_ALLOW : AUTHZ_FORBIDDEN;
    if (strcmp(token, "user") == 0)
        return AUTHZ_FORBIDDEN;
    return AUTHZ_UNAUTHENTICATED;
}

static void gate(bool closed)
{
    pthread_mutex_lock(&gate_lock);
    gate_closed = closed;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* What done reported, by ticket (tickets < 64). */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static int done_decision[64];
static bool done_seen[64];

static void done(void *ud, uint64_t ticket, int decision)
{
    (void)ud;
    pthread_mutex_lock(&done_lock);
    if (ticket < 64) {
        done_decision[ticket] = decision;
        done_seen[ticket] = true;
    }
    pthread_mutex_unlock(&done_lock);
}

/* Waits up to 5 s for ticket's report; its decision, or -ETIMEDOUT. */
static int wait_done(uint64_t ticket)
{
    for (int i = 0; i < 500; i++) {
        int d = -ETIMEDOUT;
        bool seen;
        pthread_mutex_lock(&done_lock);
        seen = done_seen[ticket];
        if (seen)
            d = done_decision[ticket];
        pthread_mutex_unlock(&done_lock);
        if (seen)
            return d;
        usleep(10000);
    }
    return -ETIMEDOUT;
}

static struct authz *start(int workers, int queue, int entries)
{
    struct authz_config cfg = {
        .decide = decide, .done = done, .workers = workers, .queue = queue, .entries = entries};
    struct authz *a = NULL;

    atomic_store(&decide_calls, 0);
    memset(done_seen, 0, sizeof(done_seen));
    gate(false);
    if (authz_new(&cfg, &a) != 0)
        return NULL;
    return a;
}

TEST(config_without_decide_or_done_is_refused)
{
    struct authz_config cfg = {.decide = decide};
    struct authz *a = (struct authz *)&cfg;

    CHECK_INT(authz_new(&cfg, &a), -EINVAL);
    CHECK(a == NULL);
    cfg.decide = NULL;
    cfg.done = done;
    CHECK_INT(authz_new(&cfg, &a), -EINVAL);
    authz_free(NULL);
}

TEST(a_decision_is_reported_with_its_ticket_and_then_remembered)
{
    struct authz *a = start(2, 8, 8);

    CHECK(a != NULL);
    CHECK_INT(authz_cached(a, "good", "/metrics", "get"), -ENOENT);
    CHECK_INT(authz_submit(a, 1, "good", "/metrics", "get"), 0);
    CHECK_INT(authz_submit(a, 2, "user", "/metrics", "get"), 0);
    CHECK_INT(authz_submit(a, 3, "bad", "/metrics", "get"), 0);
    CHECK_INT(wait_done(1), AUTHZ_ALLOW);
    CHECK_INT(wait_done(2), AUTHZ_FORBIDDEN);
    CHECK_INT(wait_done(3), AUTHZ_UNAUTHENTICATED);
    CHECK_INT(atomic_load(&decide_calls), 3);
    CHECK_INT(authz_cached(a, "good", "/metrics", "get"), AUTHZ_ALLOW);
    CHECK_INT(authz_cached(a, "user", "/metrics", "get"), AUTHZ_FORBIDDEN);
    CHECK_INT(authz_cached(a, "bad", "/metrics", "get"), AUTHZ_UNAUTHENTICATED);
    /* The key is the token, the path and the verb. */
    CHECK_INT(authz_cached(a, "good", "/api/state", "get"), -ENOENT);
    CHECK_INT(authz_cached(a, "goo", "/metrics", "get"), -ENOENT);
    CHECK_INT(authz_cached(a, "goodd", "/metrics", "get"), -ENOENT);
    CHECK_INT(authz_cached(a, "good", "/metrics", "list"), -ENOENT);
    /* Asked again while remembered: reported without a second review. */
    CHECK_INT(authz_submit(a, 4, "good", "/metrics", "get"), 0);
    CHECK_INT(wait_done(4), AUTHZ_ALLOW);
    CHECK_INT(atomic_load(&decide_calls), 3);
    authz_free(a);
}

TEST(errors_are_reported_and_never_remembered)
{
    struct authz *a = start(1, 8, 8);

    CHECK(a != NULL);
    CHECK_INT(authz_submit(a, 1, "broken", "/metrics", "get"), 0);
    CHECK_INT(wait_done(1), -EIO);
    CHECK_INT(authz_cached(a, "broken", "/metrics", "get"), -ENOENT);
    CHECK_INT(authz_submit(a, 2, "broken", "/metrics", "get"), 0);
    CHECK_INT(wait_done(2), -EIO);
    CHECK_INT(atomic_load(&decide_calls), 2);
    authz_free(a);
}

TEST(decisions_are_forgotten_after_the_ttl)
{
    struct authz *a;

    clock__set(1000, 1000);
    a = start(1, 8, 8);
    CHECK(a != NULL);
    CHECK_INT(authz_submit(a, 1, "good", "/metrics", "get"), 0);
    CHECK_INT(wait_done(1), AUTHZ_ALLOW);
    clock__advance(AUTHZ_DEFAULT_TTL_MS / 1000.0 - 0.5);
    CHECK_INT(authz_cached(a, "good", "/metrics", "get"), AUTHZ_ALLOW);
    clock__advance(1);
    CHECK_INT(authz_cached(a, "good", "/metrics", "get"), -ENOENT);
    CHECK_INT(authz_submit(a, 2, "good", "/metrics", "get"), 0);
    CHECK_INT(wait_done(2), AUTHZ_ALLOW);
    CHECK_INT(atomic_load(&decide_calls), 2);
    authz_free(a);
    clock__real();
}

TEST(at_most_entries_decisions_are_remembered)
{
    struct authz *a = start(1, 16, 4);
    char tok[16];
    int cached = 0;

    CHECK(a != NULL);
    for (int i = 0; i < 6; i++) {
        snprintf(tok, sizeof(tok), "bad%d", i);
        CHECK_INT(authz_submit(a, (uint64_t)i + 1, tok, "/metrics", "get"), 0);
        CHECK_INT(wait_done((uint64_t)i + 1), AUTHZ_UNAUTHENTICATED);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(tok, sizeof(tok), "bad%d", i);
        cached += authz_cached(a, tok, "/metrics", "get") == AUTHZ_UNAUTHENTICATED;
    }
    CHECK_INT(cached, 4);
    /* The newest is kept. */
    CHECK_INT(authz_cached(a, "bad5", "/metrics", "get"), AUTHZ_UNAUTHENTICATED);
    authz_free(a);
}

TEST(a_full_queue_refuses_and_frees_nothing_twice)
{
    struct authz *a = start(1, 2, 8);

    CHECK(a != NULL);
    gate(true);
    CHECK_INT(authz_submit(a, 1, "x1", "/metrics", "get"), 0);
    /* Wait until the worker holds job 1, so that the queue is empty. */
    for (int i = 0; i < 500 && atomic_load(&decide_calls) == 0; i++)
        usleep(10000);
    CHECK_INT(atomic_load(&decide_calls), 1);
    CHECK_INT(authz_submit(a, 2, "x2", "/metrics", "get"), 0);
    CHECK_INT(authz_submit(a, 3, "x3", "/metrics", "get"), 0);
    CHECK_INT(authz_submit(a, 4, "x4", "/metrics", "get"), -EBUSY);
    gate(false);
    CHECK_INT(wait_done(1), AUTHZ_UNAUTHENTICATED);
    CHECK_INT(wait_done(2), AUTHZ_UNAUTHENTICATED);
    CHECK_INT(wait_done(3), AUTHZ_UNAUTHENTICATED);
    CHECK(!done_seen[4]);
    CHECK_INT(authz_submit(a, 5, "x5", "/metrics", "get"), 0);
    CHECK_INT(wait_done(5), AUTHZ_UNAUTHENTICATED);
    authz_free(a);
}

static void *open_gate_later(void *arg)
{
    (void)arg;
    usleep(100000);
    gate(false);
    return NULL;
}

TEST(free_with_jobs_queued_drops_them)
{
    struct authz *a = start(1, 8, 8);
    pthread_t t;

    CHECK(a != NULL);
    gate(true);
    CHECK_INT(authz_submit(a, 1, "x1", "/metrics", "get"), 0);
    for (int i = 0; i < 500 && atomic_load(&decide_calls) == 0; i++)
        usleep(10000);
    CHECK_INT(authz_submit(a, 2, "x2", "/metrics", "get"), 0);
    CHECK_INT(authz_submit(a, 3, "x3", "/metrics", "get"), 0);
    /* free() waits for the decision being made (job 1), reports it, and
     * drops 2 and 3 unreported (valgrind: and frees them). */
    CHECK_INT(pthread_create(&t, NULL, open_gate_later, NULL), 0);
    authz_free(a);
    pthread_join(t, NULL);
    CHECK_INT(wait_done(1), AUTHZ_UNAUTHENTICATED);
    CHECK(!done_seen[2] && !done_seen[3]);
    CHECK_INT(atomic_load(&decide_calls), 1);
}
