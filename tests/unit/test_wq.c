/*
 * Unit tests for the work queue (controller/reconcile/wq.c): de-duplication, one
 * worker per key, re-adds while in process, backoff and forget, delayed
 * adds, and shutdown. Timing checks assert lower bounds and order only, so
 * that they hold under valgrind and on a loaded machine.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock_test.h"
#include "harness.h"
#include "reconcile/wq.h"
#include "reconcile/wq_test.h"

static const struct wq_config no_bucket = {.qps = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Takes one key and checks it is want; the caller owns nothing after. */
static int get_is(struct wq *q, const char *want)
{
    char *key = NULL;
    int ok = wq_get(q, &key) == 0 && key && strcmp(key, want) == 0;

    if (key)
        wq_done(q, key);
    free(key);
    return ok;
}

TEST(add_twice_is_handed_out_once)
{
    struct wq *q = wq_new(&no_bucket);
    char *key = NULL;

    CHECK_INT(wq_add(q, "ns/a"), 0);
    CHECK_INT(wq_add(q, "ns/a"), 0);
    CHECK_INT(wq_add(q, "ns/b"), 0);
    CHECK_INT(wq_add(q, "ns/a"), 0);
    CHECK_INT(wq_len(q), 2);
    CHECK_INT(wq_get(q, &key), 0);
    CHECK_STR(key, "ns/a");
    wq_done(q, key);
    free(key);
    CHECK(get_is(q, "ns/b"));
    CHECK_INT(wq_len(q), 0);
    wq_free(q);
}

/* A burst of keys grows the table and the delay heap; draining them
 * shrinks both, and the keys of the next bursts still come out once each,
 * in order. */
TEST(a_drained_burst_leaves_a_working_queue)
{
    struct wq *q = wq_new(&no_bucket);
    char name[32];

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5000; i++) {
            snprintf(name, sizeof(name), "ns/vm-%d", i);
            CHECK_INT(wq_add(q, name), 0);
        }
        CHECK_INT(wq_len(q), 5000);
        for (int i = 0; i < 5000; i++) {
            snprintf(name, sizeof(name), "ns/vm-%d", i);
            CHECK(get_is(q, name));
        }
        CHECK_INT(wq_len(q), 0);
        for (int i = 0; i < 3000; i++) {
            snprintf(name, sizeof(name), "ns/later-%d", i);
            CHECK_INT(wq_add_after(q, name, 1), 0);
        }
        for (int i = 0; i < 3000; i++) {
            char *key = NULL;
            CHECK_INT(wq_get(q, &key), 0);
            CHECK(key && strncmp(key, "ns/later-", 9) == 0);
            wq_done(q, key);
            free(key);
        }
        CHECK_INT(wq_len(q), 0);
    }
    wq_free(q);
}

TEST(keys_come_out_in_the_order_added)
{
    struct wq *q = wq_new(&no_bucket);

    wq_add(q, "c");
    wq_add(q, "a");
    wq_add(q, "b");
    CHECK(get_is(q, "c"));
    CHECK(get_is(q, "a"));
    CHECK(get_is(q, "b"));
    wq_free(q);
}

TEST(readd_while_processing_waits_for_done)
{
    struct wq *q = wq_new(&no_bucket);
    char *key = NULL;

    wq_add(q, "ns/a");
    CHECK_INT(wq_get(q, &key), 0);
    /* Added while in process: held back, twice still means once. */
    wq_add(q, "ns/a");
    wq_add(q, "ns/a");
    CHECK_INT(wq_len(q), 0);
    wq_done(q, key);
    free(key);
    CHECK_INT(wq_len(q), 1);
    CHECK(get_is(q, "ns/a"));
    CHECK_INT(wq_len(q), 0);
    wq_free(q);
}

TEST(done_for_unknown_key_and_null_key_are_harmless)
{
    struct wq *q = wq_new(NULL);

    wq_done(q, "never-added");
    wq_done(q, NULL);
    wq_forget(q, "never-added");
    CHECK_INT(wq_add(q, NULL), -EINVAL);
    CHECK_INT(wq_add_rate_limited(q, NULL), 0);
    CHECK_INT(wq_num_requeues(q, "never-added"), 0);
    CHECK_INT(wq_len(q), 0);
    wq_free(q);
}

/* --- several workers, one key at a time --------------------------------- */

#define NKEYS 8
#define NWORKERS 4
#define NADDS 4000

static const char *const conc_keys[NKEYS] = {"ns/k0", "ns/k1", "ns/k2", "ns/k3",
                                             "ns/k4", "ns/k5", "ns/k6", "ns/k7"};

struct conc {
    struct wq *q;
    atomic_int busy[NKEYS];  /* workers inside this key right now */
    atomic_int overlap;      /* times a key was taken while busy */
    atomic_int added[NKEYS]; /* generation: bumped before each add */
    atomic_int seen[NKEYS];  /* newest generation a worker started on */
    atomic_int processed;    /* keys handed out in total */
};

static int key_index(const char *key)
{
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(key, conc_keys[i]) == 0)
            return i;
    return -1;
}

static void *conc_worker(void *arg)
{
    struct conc *c = arg;
    char *key;

    while (wq_get(c->q, &key) == 0) {
        int i = key_index(key);
        if (i < 0 || atomic_fetch_add(&c->busy[i], 1) != 0)
            atomic_fetch_add(&c->overlap, 1);
        if (i >= 0) {
            /* Level-triggered: what we start on covers every add so far. */
            atomic_store(&c->seen[i], atomic_load(&c->added[i]));
            if (atomic_fetch_add(&c->processed, 1) % 16 == 0)
                sleep_ms(1);
            atomic_fetch_sub(&c->busy[i], 1);
        }
        wq_done(c->q, key);
        free(key);
    }
    return NULL;
}

static void *conc_producer(void *arg)
{
    struct conc *c = arg;
    unsigned seed = 42;

    for (int n = 0; n < NADDS; n++) {
        int i = (int)(rand_r(&seed) % NKEYS);
        atomic_fetch_add(&c->added[i], 1);
        wq_add(c->q, conc_keys[i]);
    }
    return NULL;
}

TEST(a_key_is_never_processed_by_two_workers_and_no_add_is_lost)
{
    static struct conc c;
    pthread_t workers[NWORKERS], producers[2];
    uint64_t deadline;
    int settled = 0;

    memset(&c, 0, sizeof(c));
    c.q = wq_new(&no_bucket);
    for (int i = 0; i < NWORKERS; i++)
        pthread_create(&workers[i], NULL, conc_worker, &c);
    for (int i = 0; i < 2; i++)
        pthread_create(&producers[i], NULL, conc_producer, &c);
    for (int i = 0; i < 2; i++)
        pthread_join(producers[i], NULL);
    /* Wait until every key's last add has been picked up by a worker. */
    deadline = now_ms() + 30000;
    while (!settled && now_ms() < deadline) {
        settled = wq_len(c.q) == 0;
        for (int i = 0; i < NKEYS && settled; i++)
            settled = atomic_load(&c.seen[i]) == atomic_load(&c.added[i]);
        if (!settled)
            sleep_ms(5);
    }
    wq_shutdown_drain(c.q);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(workers[i], NULL);
    wq_free(c.q);
    CHECK_INT(atomic_load(&c.overlap), 0);
    CHECK(settled);
    /* Every hand-out needs an add of its own. */
    CHECK(atomic_load(&c.processed) <= NADDS);
    CHECK(atomic_load(&c.processed) >= NKEYS);
}

/* --- backoff ------------------------------------------------------------ */

TEST(rate_limited_backoff_doubles_from_5ms_and_forget_resets_it)
{
    struct wq *q = wq_new(&no_bucket);

    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 5);
    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 10);
    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 20);
    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 40);
    CHECK_INT(wq_num_requeues(q, "ns/a"), 4);
    /* Backoff is per key. */
    CHECK_INT(wq_add_rate_limited(q, "ns/b"), 5);
    wq_forget(q, "ns/a");
    CHECK_INT(wq_num_requeues(q, "ns/a"), 0);
    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 5);
    CHECK_INT(wq_num_requeues(q, "ns/b"), 1);
    wq_free(q);
}

TEST(backoff_is_capped_at_the_max_delay)
{
    struct wq_config cfg = {.base_delay_ms = 1, .max_delay_ms = 8, .qps = -1};
    struct wq *q = wq_new(&cfg);
    const uint64_t want[] = {1, 2, 4, 8, 8, 8};

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_INT(wq_add_rate_limited(q, "k"), want[i]);
    for (int i = 0; i < 100; i++)
        wq_add_rate_limited(q, "k");
    CHECK_INT(wq_add_rate_limited(q, "k"), 8);
    wq_free(q);
}

TEST(default_backoff_caps_at_1000_seconds)
{
    struct wq *q = wq_new(&no_bucket);
    uint64_t d = 0;

    for (int i = 0; i < 40; i++)
        d = wq_add_rate_limited(q, "k");
    CHECK_INT(d, 1000 * 1000);
    wq_free(q);
}

TEST(rate_limited_key_becomes_ready_after_its_backoff)
{
    struct wq_config cfg = {.base_delay_ms = 40, .qps = -1};
    struct wq *q = wq_new(&cfg);
    uint64_t t0 = now_ms();

    CHECK_INT(wq_add_rate_limited(q, "ns/a"), 40);
    CHECK_INT(wq_len(q), 0);
    CHECK(get_is(q, "ns/a"));
    CHECK(now_ms() - t0 >= 40);
    wq_free(q);
}

TEST(token_bucket_delays_beyond_the_burst)
{
    struct wq_config cfg = {.base_delay_ms = 1, .qps = 10, .burst = 2};
    struct wq *q = wq_new(&cfg);
    uint64_t d3;

    CHECK_INT(wq_add_rate_limited(q, "a"), 1);
    CHECK_INT(wq_add_rate_limited(q, "b"), 1);
    /* The third token arrives 100 ms later at 10 per second. */
    d3 = wq_add_rate_limited(q, "c");
    CHECK(d3 >= 80 && d3 <= 100);
    wq_free(q);
}

/* --- delayed adds ------------------------------------------------------- */

TEST(add_after_hands_keys_out_in_deadline_order)
{
    struct wq *q = wq_new(&no_bucket);
    uint64_t t0 = now_ms();

    wq_add_after(q, "late", 90);
    wq_add_after(q, "early", 30);
    wq_add_after(q, "middle", 60);
    CHECK_INT(wq_len(q), 0);
    CHECK(get_is(q, "early"));
    CHECK(now_ms() - t0 >= 30);
    CHECK(get_is(q, "middle"));
    CHECK(now_ms() - t0 >= 60);
    CHECK(get_is(q, "late"));
    CHECK(now_ms() - t0 >= 90);
    wq_free(q);
}

TEST(add_after_keeps_the_earliest_deadline_and_dedupes)
{
    struct wq *q = wq_new(&no_bucket);
    uint64_t t0 = now_ms();

    wq_add_after(q, "a", 5000);
    wq_add_after(q, "a", 20); /* brought forward */
    wq_add_after(q, "b", 20);
    wq_add_after(q, "b", 5000); /* ignored: already due sooner */
    CHECK(get_is(q, "a"));
    CHECK(get_is(q, "b"));
    CHECK(now_ms() - t0 < 4000);
    CHECK_INT(wq_len(q), 0);
    wq_free(q);
}

TEST(add_after_zero_is_a_plain_add)
{
    struct wq *q = wq_new(&no_bucket);

    wq_add_after(q, "a", 0);
    CHECK_INT(wq_len(q), 1);
    wq_add(q, "a");
    CHECK_INT(wq_len(q), 1);
    CHECK(get_is(q, "a"));
    wq_free(q);
}

TEST(plain_add_does_not_wait_for_a_pending_delayed_add)
{
    struct wq *q = wq_new(&no_bucket);
    uint64_t t0 = now_ms();

    wq_add_after(q, "a", 5000);
    wq_add(q, "a");
    CHECK(get_is(q, "a"));
    CHECK(now_ms() - t0 < 4000);
    /* The delayed add is still pending; free drops it. */
    CHECK_INT(wq_len(q), 0);
    wq_free(q);
}

/* A getter asleep on a far deadline must notice a nearer one. */
struct getter {
    struct wq *q;
    int rc;
    char *key;
    uint64_t at;
};

static void *getter_thread(void *arg)
{
    struct getter *g = arg;

    g->rc = wq_get(g->q, &g->key);
    g->at = now_ms();
    if (g->rc == 0)
        wq_done(g->q, g->key);
    return NULL;
}

TEST(a_delayed_key_is_due_when_the_clock_says_so)
{
    struct wq *q = wq_new(&no_bucket);
    size_t before, at;
    uint64_t backoff;
    int got;

    /* The queue's time is the clock's: moved by the test, no sleeping. */
    clock__set(1795635000.0, 500.0);
    wq_add_after(q, "vmi/fx/a", 60000);
    clock__advance(59.5);
    before = wq_len(q);
    clock__advance(0.5);
    at = wq_len(q);
    got = get_is(q, "vmi/fx/a");
    backoff = wq_add_rate_limited(q, "vmi/fx/b"); /* 5 ms, the first backoff */
    clock__advance(0.004);
    before += wq_len(q);
    clock__advance(0.001);
    at += wq_len(q);
    clock__real();
    CHECK_INT(before, 0);
    CHECK_INT(at, 2);
    CHECK(got);
    CHECK_INT(backoff, 5);
    CHECK(get_is(q, "vmi/fx/b"));
    wq_free(q);
}

TEST(sleeping_getter_wakes_for_a_nearer_deadline)
{
    struct getter g = {0};
    pthread_t t;
    uint64_t t0;

    g.q = wq_new(&no_bucket);
    wq_add_after(g.q, "far", 60000);
    pthread_create(&t, NULL, getter_thread, &g);
    sleep_ms(20);
    t0 = now_ms();
    wq_add_after(g.q, "near", 20);
    pthread_join(t, NULL);
    CHECK_INT(g.rc, 0);
    CHECK_STR(g.key, "near");
    CHECK(g.at - t0 < 30000);
    free(g.key);
    wq_free(g.q);
}

/* --- shutdown ----------------------------------------------------------- */

TEST(shutdown_wakes_every_blocked_getter)
{
    struct getter g[3] = {{0}};
    pthread_t t[3];
    struct wq *q = wq_new(&no_bucket);

    wq_add_after(q, "far", 60000); /* one getter sleeps on a deadline */
    for (int i = 0; i < 3; i++) {
        g[i].q = q;
        pthread_create(&t[i], NULL, getter_thread, &g[i]);
    }
    sleep_ms(30);
    wq_shutdown(q);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(g[i].rc, -ESHUTDOWN);
        CHECK(g[i].key == NULL);
    }
    CHECK(wq_shutting_down(q));
    wq_free(q);
}

TEST(after_shutdown_adds_are_refused_and_queued_keys_not_handed_out)
{
    struct wq *q = wq_new(&no_bucket);
    char *key = (char *)"sentinel";

    wq_add(q, "queued");
    wq_add_rate_limited(q, "backing-off");
    wq_shutdown(q);
    wq_shutdown(q); /* idempotent */
    CHECK_INT(wq_add(q, "x"), -ESHUTDOWN);
    CHECK_INT(wq_add_after(q, "x", 10), -ESHUTDOWN);
    CHECK_INT(wq_add_rate_limited(q, "x"), 0);
    CHECK_INT(wq_get(q, &key), -ESHUTDOWN);
    CHECK(key == NULL);
    wq_free(q); /* frees the queued and the delayed keys */
}

struct slow {
    struct wq *q;
    atomic_int started;
    atomic_int finished;
};

static void *slow_worker(void *arg)
{
    struct slow *s = arg;
    char *key;

    if (wq_get(s->q, &key) != 0)
        return NULL;
    atomic_store(&s->started, 1);
    sleep_ms(80);
    /* Re-adding during drain must not resurrect the key. */
    wq_add(s->q, key);
    atomic_store(&s->finished, 1);
    wq_done(s->q, key);
    free(key);
    return NULL;
}

TEST(shutdown_drain_waits_for_in_flight_work)
{
    struct slow s = {0};
    pthread_t t;

    s.q = wq_new(&no_bucket);
    wq_add(s.q, "ns/a");
    pthread_create(&t, NULL, slow_worker, &s);
    while (!atomic_load(&s.started))
        sleep_ms(1);
    wq_shutdown_drain(s.q);
    CHECK(atomic_load(&s.finished));
    CHECK_INT(wq_len(s.q), 0);
    pthread_join(t, NULL);
    wq_free(s.q);
}

TEST(shutdown_drain_with_nothing_in_flight_returns_at_once)
{
    struct wq *q = wq_new(NULL);

    wq_shutdown_drain(q);
    CHECK(wq_shutting_down(q));
    wq_free(q);
    wq_free(NULL);
}
