/*
 * lease — leader election on a coordination.k8s.io/v1 Lease.
 *
 * Several replicas of the controller may run; only the one holding the Lease
 * acts. This is client-go's leaderelection in C: a replica takes the Lease
 * when it is absent, released (empty holderIdentity), expired, or already its
 * own; it writes with the object's resourceVersion, so when two replicas race
 * the API server lets one win and answers 409 Conflict to the other; it
 * renews every retry period, and gives up leading when no renewal succeeded
 * for the renew deadline, which is shorter than the lease duration, so it
 * stops acting before anyone else may take over.
 *
 * Expiry is judged as client-go judges it: on this replica's own monotonic
 * clock, from the moment it saw the Lease record last change, plus the
 * record's leaseDurationSeconds. The holder's renewTime is written for people
 * and tools but never compared with the local wall clock, so clock skew
 * between nodes cannot make two leaders. The cost: a replica that starts
 * while a dead holder's record is still on the server waits one lease
 * duration before taking over (a released Lease is taken at once).
 *
 * It must never report leadership it cannot prove (lease_is_leader() turns
 * false once the renew deadline has passed, even while a request hangs), and
 * never write a Lease it does not hold except to take over an expired or
 * released one.
 */
#ifndef KVR_LEASE_H
#define KVR_LEASE_H

#include <stdbool.h>

#include "kube/kube.h"

#define LEASE_DEFAULT_DURATION_MS 15000L
#define LEASE_DEFAULT_RENEW_DEADLINE_MS 10000L
#define LEASE_DEFAULT_RETRY_PERIOD_MS 2000L
/* client-go's JitterFactor: acquisition attempts wait retry * (1 + [0, 1.2)),
 * and the renew deadline must exceed retry * 1.2. */
#define LEASE_JITTER 1.2

struct lease; /* opaque */

/* What to elect on and whom to tell. Strings are copied by lease_new(). */
struct lease_config {
    const char *ns;         /* namespace of the Lease, e.g. "kvrecover-system" */
    const char *name;       /* name of the Lease, e.g. "kvrecover-controller" */
    const char *identity;   /* this replica; NULL or "": "<hostname>_<pid>" */
    long lease_duration_ms; /* how long a record stays valid; 0 = 15 s */
    long renew_deadline_ms; /* leader gives up after this without a renewal; 0 = 10 s */
    long retry_period_ms;   /* between attempts; 0 = 2 s */
    void *ud;               /* passed to the callbacks */
    /* Called on the lease thread when this replica becomes leader. Must
     * return promptly (start the workers, do not run them here): renewals
     * wait for it. May be NULL. */
    void (*on_started_leading)(void *ud);
    /* Called on the lease thread when leading ends: renewals failed past the
     * deadline, another replica took over, or lease_stop/lease_release. The
     * controller stops acting and exits, as client-go controllers do. Called
     * only after on_started_leading. May be NULL. */
    void (*on_stopped_leading)(void *ud);
    /* Called on the lease thread when the observed holder changes (including
     * to this replica); identity is borrowed for the call, "" when released.
     * For logs and metrics. May be NULL. */
    void (*on_new_leader)(void *ud, const char *identity);
};

/**
 * Fills *opts (zeroing it first) with the client options the Lease's own
 * struct kube should use: no client-side rate limit (renewals must never
 * queue behind the controller's own requests), no retries inside the client
 * (the election loop retries every retry period), and a request timeout of
 * half the renew deadline, so that a hung request leaves time for another
 * attempt. cfg may be NULL for the defaults.
 */
void lease_kube_options(const struct lease_config *cfg, struct kube_options *opts);

/**
 * Creates an elector for cfg using client k (borrowed: it must outlive the
 * elector; best a client of its own, see lease_kube_options()). Returns 0
 * and *out (free with lease_free()); -EINVAL when ns or name is missing, or
 * the durations do not satisfy lease > renew deadline > retry * 1.2 > 0.
 */
int lease_new(struct kube *k, const struct lease_config *cfg, struct lease **out);

/**
 * Frees the elector. lease_run() must have returned. NULL is fine.
 */
void lease_free(struct lease *l);

/**
 * Runs the election on the calling thread (start a thread for it): tries to
 * acquire the Lease every retry period (with jitter) until it succeeds or is
 * stopped, calls on_started_leading, renews every retry period, and returns
 * when leading ends. Returns 0 when stopped by lease_stop() or
 * lease_release(); -ETIMEDOUT when no renewal succeeded within the renew
 * deadline; -EBUSY when another replica was found holding the Lease; -EALREADY
 * if lease_run() is already running on this elector. A stopped elector does
 * not run again.
 */
int lease_run(struct lease *l);

/**
 * Asks lease_run() to return soon, without releasing the Lease (it expires
 * after its duration). Does not wait. Thread-safe; not async-signal-safe.
 */
void lease_stop(struct lease *l);

/**
 * For SIGTERM, after in-flight work has finished: stops lease_run() and, if
 * this replica holds the Lease, writes it released (holderIdentity "",
 * leaseDurationSeconds 1, renewTime now) so that another replica takes over
 * at once instead of after the lease duration. Blocks until lease_run() has
 * returned (at most one request timeout). Returns 0 (also when nothing was
 * held), or the -errno of the failed write (the Lease then simply expires).
 * Must not be called from a callback. Thread-safe; not async-signal-safe.
 */
int lease_release(struct lease *l);

/**
 * True while this replica leads: it acquired the Lease and its last
 * successful renewal started less than the renew deadline ago. Workers may
 * check it before each write. Thread-safe.
 */
bool lease_is_leader(struct lease *l);

/** This replica's identity as written in holderIdentity. Borrowed; valid
 *  until lease_free(). */
const char *lease_identity(const struct lease *l);

#endif
