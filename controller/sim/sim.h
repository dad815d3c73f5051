/*
 * sim — the similarity engine: the paper's weighted similarity, ranked.
 *
 * Pure computation: no I/O, no logging, no clock. A pool (struct sim_pool) is
 * built once from feature sets and ranked many times; every string is
 * interned when a member is added, so scoring adds integer weights looked up
 * by item id and never compares strings. A ranker (struct sim_ranker) holds
 * the scratch space of a ranking and is reused: a ranking allocates nothing
 * unless the pool has outgrown the scratch or the caller's result array.
 *
 * The score of member B for the failed VM A (SPEC.md):
 *   Jaccard   W(A and B) / W(A or B)
 *   Coverage  W(A and B) / W(A)
 * where each item weighs its category's weight, and the numeric resources
 * cpu, memory and disk add w*min(a,b)/max(a,b) (Coverage: w*min(1, b/a)).
 * Weights are summed in 2^-40 fixed point relative to the largest weight, so
 * a score does not depend on the order of items or members, and ties are
 * exact. An empty denominator scores 0.
 *
 * Candidates are every member except the failed VM itself (its name or its
 * kvrecover.io/vm label equal to the failed VM's name), sorted by score
 * descending, then name ascending. A candidate is eligible unless, in this
 * order, the first that applies being its reason:
 *   RequiredMismatch  a required category differs;
 *   BelowThreshold    its score is below the threshold (compared with a 1e-9
 *                     tolerance so that 0.5 is not below 0.5 after rounding);
 *   NoTemplate        it has no template to build a replacement from;
 *   SharedDisk        its template uses a disk that is not its own (a PVC or
 *                     DataVolume that none of its dataVolumeTemplates makes):
 *                     two VMs must not share a disk (replica.h).
 * The comparison comes first because it is what a reader of the ranking
 * looks at; the template's flaws follow (NoTemplate and SharedDisk never
 * both apply). NoCapacity is never set here: the caller refuses eligible
 * candidates whose replacement fits no node with sim_result_refuse() after
 * ranking. The first eligible candidate is selected.
 *
 * A pool is not thread-safe while it is being built; once finished it may be
 * ranked from several threads, each with its own ranker.
 */
#ifndef KVR_SIM_H
#define KVR_SIM_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sim/features.h"
#include "sim/policy.h"

struct sim_pool;
struct sim_ranker;

/* Why a candidate is not eligible; see sim_reason_name(). */
enum sim_reason {
    SIM_ELIGIBLE,          /* "" */
    SIM_REQUIRED_MISMATCH, /* "RequiredMismatch": a required category differs */
    SIM_BELOW_THRESHOLD,   /* "BelowThreshold" */
    SIM_NO_TEMPLATE,       /* "NoTemplate": no VirtualMachine to build from */
    SIM_SHARED_DISK,       /* "SharedDisk": its template uses a disk that is not its own */
    SIM_NO_CAPACITY,       /* "NoCapacity": its replacement fits no node (set by the caller) */
};

/* Flags of a member (struct sim_member): what is known of its template. */
#define SIM_MEMBER_TEMPLATE 1u    /* it has one: a replacement can be built from it */
#define SIM_MEMBER_SHARED_DISK 2u /* it uses a disk that is not its own (replica_shared_disk()) */

/* A member as sim_pool_put() adds it. */
struct sim_member {
    const char *name;                /* a ConfigMap name, unique in the pool */
    const char *vm;                  /* its kvrecover.io/vm label, or NULL */
    const struct features *features; /* what it is made of (copied) */
    unsigned flags;                  /* SIM_MEMBER_* */
    const char *disk;                /* SIM_MEMBER_SHARED_DISK: which volume uses which disk,
                                        for the candidate's detail (copied), or NULL */
    const void *data;                /* the caller's, returned by sim_pool_data() */
};

/* The failed VM, as sim_rank() compares it. */
struct sim_query {
    const char *name;                /* its name; members named so or labelled
                                        kvrecover.io/vm with it are left out */
    const char *alias;               /* another name to leave out (the ConfigMap
                                        it was read from), or NULL */
    const struct features *features; /* what it was made of */
};

struct sim_candidate {
    uint32_t member;        /* index in the pool: sim_pool_name(), sim_pool_data() */
    uint32_t required;      /* SIM_REQUIRED_MISMATCH: index in policy.required */
    enum sim_reason reason; /* SIM_ELIGIBLE, or why not */
    double score;           /* in [0, 1] */
    const char *disk;       /* SIM_SHARED_DISK: the member's disk detail (owned by the
                               pool, valid until it changes), else NULL */
};

/*
 * A ranking. A zeroed struct is an empty result; sim_rank() refills it and
 * grows cand only when it is too small, so one result can be reused.
 */
struct sim_result {
    struct sim_candidate *cand; /* candidates, best first */
    size_t n;                   /* candidates in use */
    size_t cap;                 /* candidates allocated */
    long selected;              /* index in cand of the selected one, or -1 */
};

/* Flags of sim_result_json(). */
#define SIM_JSON_DETAIL 1u /* add "detail" to ineligible candidates */

/** A new, empty pool. Never NULL. */
struct sim_pool *sim_pool_new(void);

/** Frees the pool; NULL is fine. */
void sim_pool_free(struct sim_pool *p);

/** Removes every member and interned string, keeping memory for reuse. */
void sim_pool_clear(struct sim_pool *p);

/**
 * Adds a member (see struct sim_member): its features are copied (interned,
 * any order, duplicates ignored), and so is its disk detail. The pool is
 * unfinished afterwards. Returns 0; -EEXIST when the name is already in the
 * pool; -E2BIG when the features hold more than FEATURES_MAX_ITEMS items or
 * the pool would exceed 2^32 - 2 members or items.
 */
int sim_pool_put(struct sim_pool *p, const struct sim_member *m);

/**
 * sim_pool_put() of a member without a disk detail: flags is SIM_MEMBER_*
 * (1, "has a template", is what a true has_template always was).
 */
int sim_pool_add(struct sim_pool *p, const char *name, const char *vm, const struct features *f,
                 unsigned flags, const void *data);

/**
 * Orders the members by name, which fixes their indices until the next
 * sim_pool_add(). Must be called after adding and before ranking; calling it
 * on a finished pool does nothing.
 */
void sim_pool_finish(struct sim_pool *p);

/** The number of members. */
size_t sim_pool_size(const struct sim_pool *p);

/** Member i's name (i < sim_pool_size() of a finished pool). Owned by p. */
const char *sim_pool_name(const struct sim_pool *p, size_t i);

/** Member i's kvrecover.io/vm label, or NULL. Owned by p. */
const char *sim_pool_vm(const struct sim_pool *p, size_t i);

/** Member i's data pointer, as given to sim_pool_add(). */
const void *sim_pool_data(const struct sim_pool *p, size_t i);

/** A new ranker with empty scratch space. Never NULL. */
struct sim_ranker *sim_ranker_new(void);

/** Frees the ranker; NULL is fine. */
void sim_ranker_free(struct sim_ranker *r);

/**
 * Scores every member of p (finished) against q under pol's weights, mode,
 * required categories and threshold, and fills *out, best first. r keeps
 * what sim_explain() needs until its next ranking. Returns 0; -EINVAL when p
 * is not finished; -E2BIG when q's features hold more than
 * FEATURES_MAX_ITEMS items. Never allocates except to grow r's scratch space
 * or out->cand.
 */
int sim_rank(struct sim_ranker *r, const struct sim_pool *p, const struct policy *pol,
             const struct sim_query *q, struct sim_result *out);

/**
 * Per-category contributions to member's score numerator in r's last
 * ranking (same pool and policy, unchanged): for each pol->weights[k],
 * contrib[k] is the weight its matched items (or numeric resource) added and
 * present[k] whether the category occurs on either side. Both arrays hold
 * pol->nweights entries.
 */
void sim_explain(const struct sim_ranker *r, const struct sim_pool *p, const struct policy *pol,
                 uint32_t member, double *contrib, unsigned char *present);

/**
 * The ranking as CONTRACT.md's JSON object: failed, mode, threshold,
 * selected (or null), candidates with name, score (rounded to 6 decimals),
 * eligible, reason ("" when eligible) and contributions (categories with a
 * weight > 0 that occur on either side, in the policy's order). r must hold
 * res's ranking (see sim_explain()). The caller frees the tree.
 */
cJSON *sim_result_json(const struct sim_ranker *r, const struct sim_pool *p,
                       const struct policy *pol, const struct sim_query *q,
                       const struct sim_result *res, unsigned flags);

/** Frees the candidate array and leaves res empty; NULL is fine. */
void sim_result_free(struct sim_result *res);

/**
 * Refuses candidate i after ranking, for a reason the ranking cannot know
 * (SIM_NO_CAPACITY: its replacement fits no node), and selects the first
 * eligible candidate again. A candidate that is already ineligible keeps
 * its first reason. Returns 0; -EINVAL when i is out of range or reason is
 * SIM_ELIGIBLE.
 */
int sim_result_refuse(struct sim_result *res, size_t i, enum sim_reason reason);

/**
 * "" for SIM_ELIGIBLE, else "RequiredMismatch", "BelowThreshold",
 * "NoTemplate", "SharedDisk", "NoCapacity".
 */
const char *sim_reason_name(enum sim_reason reason);

/**
 * A one-line explanation of an ineligible candidate ("required category os
 * differs", "score 0.3333 is below the threshold 0.5", "no data.vm to build
 * a replacement from", "volume data uses persistentVolumeClaim shared, not
 * one of its own dataVolumeTemplates", "its replacement fits no Ready,
 * schedulable node"), or "" when eligible. The caller frees.
 */
char *sim_candidate_detail(const struct sim_candidate *c, const struct policy *pol);

/** Rounds x to 6 decimals, as scores are shown in JSON. */
double sim_round6(double x);

#endif
