/*
 * status — a RecoveryPolicy's status subresource, its Events about itself,
 * its gauges, and its part of the dashboard.
 *
 * status_reconcile() recomputes everything from the cache and the book of
 * decisions (level-triggered): the Ready condition (False: InvalidPolicy
 * naming the field, or InvalidPool when every member is invalid; True: Valid,
 * or EmptyPool while no ConfigMap matches the pool selector); the StormHold
 * condition (True, TooManyDown, while more protected VMs are down than
 * spec.stormLimit allows); the Blocked condition (True, IncidentsBlocked,
 * naming the VMs and why, while an incident cannot go on); status.down,
 * status.blocked and status.incidents (one entry per protected VM that is
 * down, restarting, waiting for its trigger, halted or blocked: state
 * Restarting, Waiting, Recovering, Halted or Blocked), each condition with
 * observedGeneration,
 * observedGeneration, the protected VMs (VMs whose template labels, and VMIs
 * whose labels, match the selector, counted by VM name, for the policy that
 * acts on them), the pool size, the protected VMs that no member could
 * replace right now (each ranked against the pool, before any failure),
 * recoveries (replacement VMs labelled kvrecover.io/policy, which survive
 * restarts, plus this process's dry runs and those its status already
 * listed) and the last 10 decisions. It writes the status with a merge patch
 * only when something changed, keeping lastTransitionTime while the Ready
 * status stays the same.
 *
 * It announces InvalidPolicy once per generation and error, and
 * InvalidPoolMember once per member and error. A policy reconciled again
 * within a short interval (at least 0.5 s, and twice the time its last
 * reconcile took, so that a large pool cannot keep a worker busy) is
 * postponed, not skipped.
 */
#ifndef KVR_STATUS_H
#define KVR_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "reconcile/env.h"

struct recover_ranker;

struct status_state; /* opaque, thread-safe: what each policy's reconcile remembers */

/* Dashboard lists are cut to this many entries per policy. */
#define STATUS_VIEW_MAX 500
/* status.unprotectedVMs holds at most this many names (the CRD's maxItems). */
#define STATUS_UNPROTECTED_MAX 100
/* status.incidents holds at most this many entries (the CRD's maxItems). */
#define STATUS_INCIDENTS_MAX 100
/* The Blocked condition's message names at most this many VMs. */
#define STATUS_BLOCKED_NAMED 10

/* One entry of status.recent. Strings borrowed. */
struct status_recent {
    const char *failed_vm, *failed_uid, *replacement, *tmpl, *decision;
    double score; /* 4 decimals */
    double when;  /* epoch seconds */
};

/* The facts status_build() turns into a status object. Strings borrowed. */
struct status_facts {
    long generation;                /* metadata.generation */
    int valid;                      /* the spec is valid */
    const char *error;              /* why not (names the field) */
    size_t pool_size;               /* members matching poolSelector, valid or not */
    size_t pool_invalid;            /* of which invalid */
    const char *first_invalid;      /* the first invalid member's error, or NULL */
    size_t protected_vms;           /* protected VMs */
    size_t unprotected;             /* of which without an eligible substitute */
    const char **unprotected_names; /* sorted, up to STATUS_UNPROTECTED_MAX */
    size_t nunprotected_names;
    size_t recoveries;                  /* total handled: replacements and dry runs */
    const struct status_recent *recent; /* newest first, up to RECOVER_RECENT */
    size_t nrecent;
    size_t down;             /* protected VMs down now (health's down) */
    size_t blocked;          /* incidents blocked now */
    size_t storm_limit;      /* policy_storm_limit() for protected_vms */
    const char *blocked_msg; /* "vm-1: Forbidden; vm-2: NoEligibleCandidate", bounded */
    const char *blocked_why; /* the first blocked incident's reason, or NULL */
    const cJSON *incidents;  /* status.incidents entries, sorted by VM, bounded; or NULL */
};

/** A new state. Never NULL. */
struct status_state *status_state_new(void);

/** Frees it. NULL is fine. */
void status_state_free(struct status_state *s);

/**
 * Reconciles policy ns/name (see above). *requeue_ms is set (else 0) when
 * the reconcile was postponed: queue the key again after that long.
 * Returns 0, or the negative errno of a failed status write (worth a
 * retry). A deleted policy's state, decisions and gauges are forgotten.
 */
int status_reconcile(const struct recover_env *env, struct status_state *st,
                     struct recover_ranker *rk, const char *ns, const char *name,
                     uint64_t *requeue_ms);

/**
 * The dashboard's "policies" array: one object per policy reconciled, as
 * CONTRACT's dashboard state describes (namespace, name, pool, mode,
 * threshold, action, ready, readyMessage, poolSize, members, protected,
 * recoveries with their rankings, and with "changes" and "changesOmitted":
 * what each replacement this process built changes of its member, cut as
 * recover.h's RECOVER_CHANGES_MAX says, or null), sorted by namespace and
 * name. Returns a new array the caller frees.
 */
cJSON *status_views(struct status_state *s);

/* ---- pieces exposed for unit tests ---------------------------------- */

/**
 * The status object for facts f, given the status the server has (old, may
 * be NULL: its Ready condition's lastTransitionTime is kept while the
 * status stays the same) and the time now (RFC 3339). Returns a new object.
 */
cJSON *status_build(const struct status_facts *f, const cJSON *old, const char *now);

/**
 * The merge patch that turns old (may be NULL) into new: {"status": new},
 * with null for every top-level status field old has and new lacks. NULL
 * when they are equal (nothing to write). Returns a new object.
 */
cJSON *status_patch(const cJSON *old, const cJSON *new_status);

#endif
