/*
 * controller — the client-go controller shape, assembled.
 *
 * Four reflectors (watch.h) feed the cache: VirtualMachineInstances and
 * VirtualMachines (kubevirt.io/v1), RecoveryPolicies (kvrecover.io/v1alpha1)
 * and the ConfigMaps labelled kvrecover.io/pool (a label selector: never all
 * ConfigMaps), in every namespace or one. Their handlers turn changes into
 * keys: "vmi/NS/NAME" (a failed VMI to recover), "policy/NS/NAME" (status,
 * events, the dashboard) in the main work queue, "vm/NS/NAME" (spec capture)
 * in a second queue that one worker serves only while the main queue is
 * empty, so that capturing never slows a recovery down. Workers run the
 * reconciles of recover.h, status.h and capture.h.
 *
 * The reflectors run on every replica (a standby keeps a warm cache); keys
 * are queued and workers run only while this replica leads: becoming leader
 * queues every key once (a resync), so nothing that happened while standing
 * by is missed. Events are posted by a thread of their own through their
 * own client, and only while no key waits for a worker, so an Event never
 * delays a replacement.
 *
 * It must never act without leading, never read outside the namespaces of
 * the objects it handles, and never let a stop leave a reconcile half done:
 * controller_stop_workers() waits for the keys in flight.
 */
#ifndef KVR_CONTROLLER_H
#define KVR_CONTROLLER_H

#include <stdbool.h>

#include "kube/kube.h"

struct controller;

#define CONTROLLER_DEFAULT_WORKERS 4

struct controller_config {
    struct kube *kube;       /* reflectors and reconciles (borrowed) */
    struct kube *event_kube; /* Events (borrowed; may be kube) */
    struct kube *extra_kube; /* another client whose requests /metrics counts
                                (the Lease's), or NULL */
    const char *ns;          /* namespace to watch; NULL or "": all */
    /* A label selector: only the RecoveryPolicies it matches are served
     * (their VMs protected, their status written); NULL or "": all. For
     * controllers that share a cluster and each own a part of it. */
    const char *policy_selector;
    int workers;          /* reconcile workers; 0: CONTROLLER_DEFAULT_WORKERS */
    const char *identity; /* this replica, for Events and the dashboard */
    /* Whether this replica leads, checked before every write; NULL: always. */
    int (*leading)(void *ud);
    void *ud; /* for leading */
    /* The ServiceAccount (of the policy's namespace) a write for a policy
     * naming none is made as; NULL: as the controller (recover_env). */
    const char *default_service_account;
};

/** Creates the controller (nothing runs yet). Strings are copied. Returns
 *  0 and *out, or -EINVAL. Free with controller_free(). */
int controller_new(const struct controller_config *cfg, struct controller **out);

/** Starts the reflectors and the Event thread, and registers the metrics
 *  collector. Returns 0 or the -errno of a reflector that did not start. */
int controller_start(struct controller *c);

/** Whether every reflector has delivered its first full list. */
bool controller_synced(struct controller *c);

/**
 * Starts the workers (once; later calls do nothing): queues every key the
 * cache knows, then runs cfg->workers reconcile threads and the capture
 * thread. Call it when this replica starts leading, after the caches synced.
 */
void controller_start_workers(struct controller *c);

/** Shuts the queues down and waits for the keys in flight; the workers
 *  exit. For a stop or a lost lease. Idempotent. */
void controller_stop_workers(struct controller *c);

/** Stops the reflectors, then posts the Events still queued (for at most
 *  about two seconds). Call it after controller_stop_workers(). */
void controller_stop(struct controller *c);

/** Frees everything; the controller must be stopped. NULL is fine. */
void controller_free(struct controller *c);

/* The default of --resync-period: every protected VM that is down or in an
 * incident, and every policy, is reconciled again this often, so that an
 * incident never waits for an event that does not come (a quota raised, an
 * RBAC rule fixed, a node that never reports again). */
#define CONTROLLER_DEFAULT_RESYNC_MS 60000L

/**
 * Queues every policy, and the vm/ key of every VM that a policy protects
 * and that is down, halted by kvrecover, or whose incident is blocked (the
 * book says so). Returns the vm/ keys queued. Does nothing before the
 * workers started.
 */
size_t controller_resync(struct controller *c);

/** Whether the dashboard state changed since the last call (and clears
 *  the flag). */
bool controller_take_dirty(struct controller *c);

/** The dashboard state JSON ({"generatedAt", "leader", "identity",
 *  "policies": [...]}). The caller frees. */
char *controller_state_json(struct controller *c, bool leader);

/** Logs the cache's record counts and bytes, and the entries of the
 *  recover book and the capture state (msg "cache"). */
void controller_log_cache(struct controller *c);

#endif
