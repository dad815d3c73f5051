/*
 * incident — the reconcile of a protected VirtualMachine: when KubeVirt
 * cannot bring it back, halt it and create its replacement, exactly once
 * (CONTRACT.md "When kvrecover acts"; the lead's design, section 3).
 *
 * incident_reconcile() runs for the key vm/NS/NAME, level-triggered:
 *
 *  1. A VM that kvrecover halted (runStrategy Halted, annotated
 *     kvrecover.io/replaced-by) is in an incident: its replacement is made
 *     to exist under that name, from the member its kvrecover.io/template
 *     annotation names (ranked again when that member is gone). A
 *     controller killed between the halt and the create finishes here with
 *     the same name; an admin who runs the original again ends the
 *     incident.
 *  2. Else health_eval() judges it. No trigger: nothing (looked at again
 *     when a pending trigger would fire).
 *  3. A trigger: the storm check (more of the policy's protected VMs down
 *     than spec.stormLimit allows: hold, act on none). The answer is always
 *     the one a count of the namespace's VMs would give now, but a count
 *     is made only when what changed since the last one could change it
 *     (see incident.c): a mass failure of N VMs costs a few counts, not N.
 *  4. Ranking; for a trigger about room (ErrorUnschedulable, a lost node)
 *     a candidate whose replacement fits no node is refused (NoCapacity).
 *     No eligible candidate: NoEligibleCandidate, and the VM is not halted
 *     (KubeVirt may still bring it back).
 *  5. DryRun: the decision is announced, nothing is written.
 *  6. Recreate: a server-side dry-run create of the replacement (admission
 *     judges it before anything changes: 422 tries the next candidate, 403
 *     or a quota blocks the incident), then the halt (a merge patch with
 *     the VM's resourceVersion: a second replica or anyone else who changed
 *     the VM meanwhile makes it fail with 409, and the reconcile starts
 *     again from the VM as it is now), then the create (409 AlreadyExists
 *     for the same failed uid is done; for another, Blocked NameTaken).
 *
 * Exactly once: the replacement's name derives from the VM and the failed
 * uid (recover_replacement_name()), the halt is conditional on the
 * resourceVersion, and the halted VM's annotations carry the decision, so
 * neither a restart nor a second replica makes a second replacement.
 *
 * Every write made for a policy (the dry-run create, the halt, the create)
 * goes through incident_write(), the one place where acting as the
 * policy's spec.serviceAccountName plugs in.
 */
#ifndef KVR_INCIDENT_H
#define KVR_INCIDENT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "kube/kube.h"
#include "reconcile/cache.h"
#include "reconcile/env.h"
#include "reconcile/health.h"

struct recover_ranker;

/* How long a storm hold waits before it counts again (a resync catches
 * it too; this keeps a storm's end from waiting a full resync period). */
#define INCIDENT_STORM_RECHECK_MS 10000

/* The policy a write is made for. Strings borrowed. */
struct incident_actor {
    const char *ns;              /* the policy's namespace (the write's too) */
    const char *policy;          /* the policy's name */
    const char *service_account; /* spec.serviceAccountName, or NULL: env's
                                    default_service_account, else as the controller */
};

/* The writes an incident makes. */
enum incident_write_kind {
    INCIDENT_WRITE_CREATE,      /* POST body to the collection path (a dry run when the
                                   path carries dryRun=All) */
    INCIDENT_WRITE_MERGE_PATCH, /* PATCH path with body, application/merge-patch+json */
    INCIDENT_WRITE_JSON_PATCH,  /* PATCH path with body, application/json-patch+json */
};

/**
 * Makes one write for the policy as: kind to path with body (borrowed).
 * Returns as kube_request() (0 with *out, which may be NULL, or a negative
 * errno with *err filled; err may be NULL).
 */
int incident_write(const struct recover_env *env, const struct incident_actor *as,
                   enum incident_write_kind kind, const char *path, const cJSON *body, cJSON **out,
                   struct kube_error *err);

/**
 * Reconciles VM ns/name (see above). *requeue_ms is set (else 0) when the
 * VM must be looked at again then (a pending trigger, a storm hold).
 * Returns 0, or a negative errno worth a retry with backoff: an API error,
 * a conflict, an incident blocked (Forbidden, a quota, NoEligibleCandidate,
 * NameTaken), which is retried until it is unblocked.
 */
int incident_reconcile(const struct recover_env *env, struct recover_ranker *rk, const char *ns,
                       const char *name, uint64_t *requeue_ms);

/**
 * The health of VM vm (cache read lock held) under policy p at time now:
 * the facts copied from the cache (the VM, its VMI, that VMI's node) and
 * down_seen (when this process first saw it down, 0 unknown) through
 * health_eval(). Fills *out; its failed_uid points into the cache: use it
 * before the unlock.
 */
void incident_health(struct cache *c, const struct cache_policy *p, const struct cache_vm *vm,
                     double down_seen, double now, struct health_verdict *out);

/**
 * How many of policy p's protected VMs are down (health's down) and how
 * many it protects. Cache read lock held.
 */
void incident_count_down(struct cache *c, const struct cache_policy *p,
                         const struct recover_env *env, double now, size_t *down,
                         size_t *protected_vms);

#endif
