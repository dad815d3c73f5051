/*
 * controller_test — for unit tests only: the table that routes a work-queue
 * key to its reconcile, and the dispatch through it, without workers or a
 * cluster. Only controller.c and tests include this header (make lint
 * checks).
 */
#ifndef KVR_CONTROLLER_TEST_H
#define KVR_CONTROLLER_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "reconcile/wq.h"

/* A reconcile as a route runs it: ud is the worker's context, ns and name
 * come from the key (borrowed for the call); it sets *requeue_ms (already
 * 0) to be called again later. Returns 0 or a -errno worth a retry. */
typedef int (*controller_reconcile_fn)(void *ud, const char *ns, const char *name,
                                       uint64_t *requeue_ms);

/* Keys of one kind ("vm/NS/NAME") and the reconcile they run. */
struct controller_route {
    const char *kind;                  /* the key's first part: "vm", "policy", "capture" */
    controller_reconcile_fn reconcile; /* what a key of that kind runs */
};

/* The workers' routes: vm (incident_reconcile), policy (status_reconcile),
 * capture (capture_vm). */
extern const struct controller_route controller__routes[];
extern const size_t controller__nroutes;

/**
 * Runs work-queue key "KIND/NS/NAME" (NAME is the rest, '/' included): the
 * reconcile of KIND's route in routes[0..n), with ud, NS and NAME. Sets
 * *requeue_ms (0 unless the reconcile asked) and *rc (its result). Returns
 * the route that ran, or NULL for a malformed key (no second '/', an empty
 * part, a kind no route has), which is logged as an error and reaches no
 * reconcile (*rc 0: a retry could not mend it).
 */
const struct controller_route *controller__dispatch(const struct controller_route *routes, size_t n,
                                                    const char *key, void *ud, uint64_t *requeue_ms,
                                                    int *rc);

/* The queues' settings: first retry after 5 ms, backoff capped at 30 s, no
 * overall token bucket (the API client has its own). */
extern const struct wq_config controller__queue_config;

/**
 * What a worker does with key (handed out by wq_get()) after its reconcile
 * returned rc and asked for requeue_ms: a failure (rc < 0 but -ECANCELED)
 * is queued again after its backoff, however many times it failed before
 * (keys are never dropped); a success forgets the key's failures and, when
 * requeue_ms > 0, queues it again after that long. Calls wq_done(). Returns
 * the delay chosen (0: not queued again).
 */
uint64_t controller__retry(struct wq *q, const char *key, int rc, uint64_t requeue_ms);

#endif
