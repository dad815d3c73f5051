/*
 * recover — the reconcile of a failed VMI: rank the spec pool, create the
 * replacement VirtualMachine exactly once, announce the decision.
 *
 * Level-triggered, as every reconcile: recover_vmi() looks at the VMI in the
 * cache now. A protected VMI in phase Failed, or Unknown for longer than its
 * policy's unknownGracePeriodSeconds, is a failure. Its features (annotation
 * on the VMI, else its VM's template, else its captured pool entry) are
 * ranked against the policy's pool through a per-policy index that is built
 * once and rebuilt only when a member of the namespace or the policy changed,
 * so a failure costs one ranking and, for Recreate, one POST.
 *
 * Exactly once: the replacement's name is derived from the failed VM's name
 * and a hash of the VMI's uid (recover_replacement_name()), so a retry, a
 * restart or a second replica that gets as far as the POST receives 409
 * AlreadyExists instead of creating another; the existing VM is then checked
 * to carry the same kvrecover.io/failed-uid. Before the POST, the cache's
 * index of replacements by failed uid and the book of decisions made by this
 * process skip VMIs already handled without any request.
 *
 * Scope: everything a policy reads (members) and writes (the replacement,
 * the halt patch, Events) is in its own namespace. It must never act when
 * env->leading says this replica does not lead, and never create a second
 * replacement for one VMI uid.
 */
#ifndef KVR_RECOVER_H
#define KVR_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kube/event.h"
#include "kube/kube.h"
#include "reconcile/cache.h"
#include "reconcile/env.h"
#include "sim/sim.h"

/* What was decided for a failed VMI. */
enum recover_result {
    RECOVER_RECOVERED,    /* "Recovered": the replacement exists */
    RECOVER_DRYRUN,       /* "DryRun": it would have been created */
    RECOVER_NO_CANDIDATE, /* "NoEligibleCandidate": no member is eligible */
};

/* Candidates in a ranking's JSON (and the dashboard) are cut to this many. */
#define RECOVER_RANKING_MAX 50
/* Eligible candidates tried, best first, when the API server refuses a
 * template (422): the next one is used, as a bad member must not block. */
#define RECOVER_MAX_TRIES 3
/* Decisions kept per policy for status.recent and the dashboard. */
#define RECOVER_RECENT 10

/* One decision. Every pointer is owned; see recover_decision_free(). */
struct recover_decision {
    char *ns;                   /* the policy's (and the VMI's) namespace */
    char *policy;               /* the policy's name */
    char *vmi;                  /* the failed VMI's name */
    char *failed_vm;            /* the VM it belongs to */
    char *failed_uid;           /* the VMI's uid */
    char *replacement;          /* the VM created (or that DryRun would create), or NULL */
    char *tmpl;                 /* the pool member it is built from, or NULL */
    double score;               /* the selected member's score; 0 when none */
    double when;                /* wall clock, epoch seconds */
    enum recover_result result; /* what was done */
    cJSON *ranking;             /* sim_result_json (cut), or NULL when not ranked here */
};

struct recover_book;   /* opaque, thread-safe: indexes and decisions */
struct recover_ranker; /* per worker: scratch space of rankings */

/* The best candidates of a ranking, copied out of the index. */
struct recover_pick {
    char *best;                          /* the top candidate, or NULL (empty pool) */
    double best_score;                   /* its score */
    char *best_reason;                   /* why it is not eligible ("" when eligible) */
    size_t nsel;                         /* eligible candidates below, best first */
    char *sel[RECOVER_MAX_TRIES];        /* their member names */
    double sel_score[RECOVER_MAX_TRIES]; /* their scores */
};

/** "Recovered", "DryRun" or "NoEligibleCandidate". */
const char *recover_result_name(enum recover_result r);

/** Parses a name recover_result_name() gives; returns 0 or -EINVAL. */
int recover_result_parse(const char *s, enum recover_result *out);

/** Frees what d owns (not d itself) and zeroes it. NULL is fine. */
void recover_decision_free(struct recover_decision *d);

/** Frees what p owns and zeroes it. NULL is fine. */
void recover_pick_free(struct recover_pick *p);

/** A new, empty book. Never NULL. */
struct recover_book *recover_book_new(void);

/** Frees the book. NULL is fine. */
void recover_book_free(struct recover_book *b);

/** Whether a decision for this VMI uid is recorded. */
int recover_book_handled(struct recover_book *b, const char *uid);

/** Records d (taken: d's contents are moved, d is zeroed). A decision for a
 *  uid already recorded replaces the older one. */
void recover_book_add(struct recover_book *b, struct recover_decision *d);

/**
 * Seeds the book from a policy's status as the API server has it (its
 * recent entries), so that after a restart a DryRun or NoEligibleCandidate
 * decision is not announced twice. Entries already known are kept.
 */
void recover_book_seed(struct recover_book *b, const char *ns, const char *policy,
                       const cJSON *status);

/**
 * Copies the policy's decisions, newest first, at most max, into *out (a
 * new array the caller frees with recover_decision_free() on each entry and
 * free()); returns the count. with_ranking copies the rankings too.
 */
size_t recover_book_recent(struct recover_book *b, const char *ns, const char *policy, size_t max,
                           int with_ranking, struct recover_decision **out);

/** The number of the policy's decisions with result r known to the book. */
size_t recover_book_count(struct recover_book *b, const char *ns, const char *policy,
                          enum recover_result r);

/** Forgets a deleted policy's index and decisions. */
void recover_book_forget(struct recover_book *b, const char *ns, const char *policy);

/** A new ranker. Never NULL. Use one per thread. */
struct recover_ranker *recover_ranker_new(void);

/** Frees the ranker. NULL is fine. */
void recover_ranker_free(struct recover_ranker *r);

/**
 * The first valid policy (by name) in ns whose selector matches packed
 * labels, or NULL. *invalid (may be NULL) is set when an invalid policy
 * matches: it is never acted on. Cache read lock held.
 */
struct cache_policy *recover_policy_for(struct cache *c, const char *ns, const char *labels,
                                        int *invalid);

/**
 * The features of VM vm_name in ns for ranking under policy p: those of its
 * VMI (may be NULL) when the VMI carries the features annotation, else the
 * VM's template's, else its captured entry's (a member of p's pool labelled
 * kvrecover.io/vm=vm_name, or named so). *alias (may be NULL) gets the
 * captured entry's name when that was used (borrowed from the cache), else
 * NULL. Returns 0 and *out (features_free()), or -EINVAL with *err. Cache
 * read lock held.
 */
int recover_vm_features(struct cache *c, const struct cache_policy *p, const char *vm_name,
                        const struct cache_vmi *vmi, struct features *out, const char **alias,
                        char **err);

/**
 * Ranks p's pool (members of p's namespace matching its poolSelector; invalid
 * members are left out) for q, through the policy's index in b, rebuilt
 * first when stale. Fills *pick, and *ranking (may be NULL) with
 * sim_result_json() cut to RECOVER_RANKING_MAX candidates. Returns 0, or
 * sim_rank()'s error. Cache read lock held; p must be valid.
 */
int recover_rank(struct recover_book *b, struct recover_ranker *rk, struct cache *c,
                 const struct cache_policy *p, const struct sim_query *q, struct recover_pick *pick,
                 cJSON **ranking);

/**
 * Reconciles VMI ns/name: recovers it when it failed, at most once per uid.
 * *requeue_ms is set (else 0) when the VMI is Unknown and its grace period
 * has not passed: look again then. Returns 0 (done, or nothing to do), or a
 * negative errno worth a retry with backoff (API errors other than those
 * that a retry cannot fix, which are logged and reported instead).
 */
int recover_vmi(const struct recover_env *env, struct recover_ranker *rk, const char *ns,
                const char *name, uint64_t *requeue_ms);

/* ---- pieces exposed for unit tests ---------------------------------- */

/**
 * The replacement's name for failed VM vm and VMI uid: vm made DNS-1123
 * (lower case, [a-z0-9-], at most 52 characters, no '-' at either end),
 * '-', and 10 hex digits of hash_fnv_str(HASH_FNV_INIT, uid). At most 63 characters; the same
 * for the same inputs in every version. The caller frees.
 */
char *recover_replacement_name(const char *vm, const char *uid);

/**
 * The replacement object built from a member's template (vm_json, as the
 * cache keeps it): metadata reduced to name, namespace ns, the template's
 * labels and annotations (without KubeVirt's and kubectl's) plus CONTRACT.md's
 * labels (kvrecover.io/replaces = failed_vm, kvrecover.io/policy = policy,
 * kvrecover.io/template = member) and annotations (kvrecover.io/score with 4
 * decimals, kvrecover.io/failed-uid, kvrecover.io/decided-at); no status; a
 * template that would not run (runStrategy Halted, running false) runs
 * (runStrategy Always). Returns a new object, or NULL with *err when vm_json
 * is not a VirtualMachine.
 */
cJSON *recover_build_replacement(const char *vm_json, const char *ns, const char *name,
                                 const char *failed_vm, const char *policy, const char *member,
                                 double score, const char *failed_uid, const char *decided_at,
                                 char **err);

#endif
