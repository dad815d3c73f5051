/*
 * recover — what the reconciles share about recovery: the book of decisions
 * and incidents, the per-policy ranking index, which policy protects a VM,
 * where a failed VM's features come from, and the ranking itself.
 *
 * The incident reconcile (incident.h) decides and acts; status.h reports;
 * both read and write the book, which remembers what only this process
 * knows: the last decisions per policy (status.recent, the dashboard), per
 * protected VM when it was first seen down, the decision announced for its
 * failed uid (so that a DryRun or NoEligibleCandidate is announced once),
 * why its incident is blocked and how often it was retried, the last Event
 * announced for it, and per policy whether it is in a storm hold. What must
 * survive a restart is on the objects themselves (the halted VM's
 * annotations, the replacement's labels), never only here.
 *
 * Memory that grows with history is pruned: a VM's entries when the VM is
 * deleted (recover_book_forget_vm(), and recover_book_prune() for what a
 * reconcile in flight wrote after that), a policy's entry, decisions and index
 * when the policy is (recover_book_forget()).
 *
 * Ranking goes through a per-policy index that is built once and rebuilt
 * only when a member of the namespace or the policy changed, so a failure
 * costs one ranking. Scope: everything a policy reads is in its own
 * namespace.
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

/* What was decided for a failed VM. */
enum recover_result {
    RECOVER_RECOVERED,    /* "Recovered": the replacement exists */
    RECOVER_DRYRUN,       /* "DryRun": it would have been created */
    RECOVER_NO_CANDIDATE, /* "NoEligibleCandidate": no member is eligible */
};

/* Candidates in a ranking's JSON (and the dashboard) are cut to this many. */
#define RECOVER_RANKING_MAX 50
/* Eligible candidates a recovery may try, best first: when admission refuses
 * a replacement (422), the next one is used, as a bad member must not
 * block. Candidates refused for lack of room do not count. */
#define RECOVER_MAX_TRIES 3
/* Decisions kept per policy for status.recent and the dashboard. */
#define RECOVER_RECENT 10
/* A decision keeps at most this many of its replacement's changes, and at
 * most RECOVER_CHANGES_BYTES of them as compact JSON: a tenant writes the
 * member's VirtualMachine and can make it differ from its replacement in
 * thousands of ways (an interface each with its macAddress, annotations),
 * and the book holds RECOVER_RECENT decisions of every policy. What is cut
 * is counted (changes_omitted) and the dashboard says so; `kvrecover score`
 * lists every change. */
#define RECOVER_CHANGES_MAX 50
#define RECOVER_CHANGES_BYTES 16384
/* A change's path longer than this is left out (its text still says what). */
#define RECOVER_CHANGE_PATH_MAX 256

/* One decision. Every pointer is owned; see recover_decision_free(). */
struct recover_decision {
    char *ns;                   /* the policy's (and the VM's) namespace */
    char *policy;               /* the policy's name */
    char *failed_vm;            /* the failed VM */
    char *failed_uid;           /* the incident's failed VMI uid */
    char *trigger;              /* why it was acted on ("CrashLoop"), or NULL */
    char *replacement;          /* the VM created (or that DryRun would create), or NULL */
    char *tmpl;                 /* the pool member it is built from, or NULL */
    double score;               /* the selected member's score; 0 when none */
    double when;                /* wall clock, epoch seconds */
    enum recover_result result; /* what was done */
    cJSON *ranking;             /* sim_result_json (cut), or NULL when not ranked here */
    cJSON *changes;             /* what the replacement changes of its member, in
                                   replica_build()'s order: [{"op", "path", "text"}] (a JSON
                                   Patch op and path on the member's data.vm, no path when
                                   longer than RECOVER_CHANGE_PATH_MAX, and the line
                                   `kvrecover score` prints), cut to RECOVER_CHANGES_MAX items
                                   and RECOVER_CHANGES_BYTES; NULL when this process did not
                                   build the replacement */
    size_t changes_omitted;     /* changes cut from changes */
};

struct recover_book;   /* opaque, thread-safe: indexes, decisions, incidents */
struct recover_ranker; /* per worker: scratch space of rankings */

/* The best candidates of a ranking, copied out of the index. */
struct recover_pick {
    char *best;                          /* the top candidate, or NULL (empty pool) */
    double best_score;                   /* its score */
    char *best_reason;                   /* why it is not eligible, "Reason: detail"
                                            ("" when eligible) */
    size_t nsel;                         /* accepted candidates below, best first */
    char *sel[RECOVER_MAX_TRIES];        /* their member names */
    double sel_score[RECOVER_MAX_TRIES]; /* their scores */
    cJSON *sel_obj[RECOVER_MAX_TRIES];   /* what the accept function made of them, or NULL */
    size_t nrefused;                     /* eligible candidates the accept function refused */
    char *refused;                       /* why the first of them was refused, or NULL */
};

/* What the book remembers of a protected VM (a copy; strings owned, see
 * recover_note_free()). */
struct recover_note {
    double down_seen;            /* when first seen meant to run without a Running VMI (wall); 0 */
    char *decided_uid;           /* the failed uid of the last decision announced, or NULL */
    enum recover_result decided; /* that decision */
    char *blocked;               /* why its incident is blocked (Forbidden, QuotaExceeded,
                                    NoEligibleCandidate, StormHold, NameTaken, Invalid,
                                    Unavailable), or NULL */
    char *blocked_msg;           /* the API's or the ranking's message, or NULL */
    char *blocked_uid;           /* the failed uid of the blocked incident, or NULL */
    double blocked_since;        /* when it was first blocked for that reason (wall) */
    unsigned tries;              /* retries since it was blocked */
};

/** "Recovered", "DryRun" or "NoEligibleCandidate". */
const char *recover_result_name(enum recover_result r);

/** Parses a name recover_result_name() gives; returns 0 or -EINVAL. */
int recover_result_parse(const char *s, enum recover_result *out);

/** Frees what d owns (not d itself) and zeroes it. NULL is fine. */
void recover_decision_free(struct recover_decision *d);

/** Frees what p owns and zeroes it. NULL is fine. */
void recover_pick_free(struct recover_pick *p);

/** Frees what n owns and zeroes it. NULL is fine. */
void recover_note_free(struct recover_note *n);

/** A new, empty book. Never NULL. */
struct recover_book *recover_book_new(void);

/** Frees the book. NULL is fine. */
void recover_book_free(struct recover_book *b);

/**
 * Records d (taken: d's contents are moved, d is zeroed) in its policy's
 * recent decisions, and as the decision announced for its VM. A decision
 * for a failed uid already recorded replaces the older one. Returns 1, or 0
 * when the same decision for that uid was recorded already (a repeat: the
 * ranking and the changes it brings are kept when the older one had none).
 */
int recover_book_add(struct recover_book *b, struct recover_decision *d);

/**
 * Seeds the book from a policy's status as the API server has it (its
 * recent entries), so that after a restart a DryRun or NoEligibleCandidate
 * decision is not announced twice. Entries already known are kept, and so
 * are decisions no newer than one the book's ring of RECOVER_RECENT has let
 * go: the status lags the book, and those are history it dropped.
 */
void recover_book_seed(struct recover_book *b, const char *ns, const char *policy,
                       const cJSON *status);

/**
 * Copies the policy's decisions, newest first, at most max, into *out (a
 * new array the caller frees with recover_decision_free() on each entry and
 * free()); returns the count. with_ranking copies the rankings and the
 * changes too.
 */
size_t recover_book_recent(struct recover_book *b, const char *ns, const char *policy, size_t max,
                           int with_ranking, struct recover_decision **out);

/** The number of the policy's decisions with result r known to the book. */
size_t recover_book_count(struct recover_book *b, const char *ns, const char *policy,
                          enum recover_result r);

/** Forgets a deleted policy: its index, decisions and storm state. */
void recover_book_forget(struct recover_book *b, const char *ns, const char *policy);

/** Copies what the book remembers of VM ns/name into *out (zeroed when
 *  nothing). Returns 1 when it remembers anything, else 0. */
int recover_book_note(struct recover_book *b, const char *ns, const char *name,
                      struct recover_note *out);

/** Sets when VM ns/name was first seen down (0 forgets it). */
void recover_book_set_down(struct recover_book *b, const char *ns, const char *name, double when);

/**
 * Marks VM ns/name's incident (failed uid uid) blocked for reason (a word)
 * with message msg, at wall time now, and counts a retry. Returns 1 when the
 * reason or the incident changed (announce it: an Event once per change),
 * else 0. *tries (may be NULL) receives the retries counted so far.
 */
int recover_book_block(struct recover_book *b, const char *ns, const char *name, const char *uid,
                       const char *reason, const char *msg, double now, unsigned *tries);

/** Clears a block of VM ns/name. Returns 1 when it was blocked. */
int recover_book_unblock(struct recover_book *b, const char *ns, const char *name);

/** Whether key (e.g. "Halted|<uid>") differs from the last per-VM Event key
 *  announced for VM ns/name; it becomes the last one. 1: announce it. */
int recover_book_once(struct recover_book *b, const char *ns, const char *name, const char *key);

/** Forgets everything about a deleted VM. */
void recover_book_forget_vm(struct recover_book *b, const char *ns, const char *name);

/**
 * Forgets every VM the cache no longer holds, and returns how many. A
 * reconcile that read its VM before the delete handler forgot it may write
 * the book after (a few entries a round in bench_soak, never pruned
 * otherwise); controller_resync() calls this. Takes the cache's read lock,
 * then the book's.
 */
size_t recover_book_prune(struct recover_book *b, struct cache *c);

/**
 * Records whether policy ns/name holds back in a storm. Returns 1 when it
 * just began to (announce it), else 0.
 */
int recover_book_storm(struct recover_book *b, const char *ns, const char *policy, int held);

/** Entries the book holds (policies, VMs), for tests and the log. */
void recover_book_size(struct recover_book *b, size_t *policies, size_t *vms);

/** A new ranker. Never NULL. Use one per thread. */
struct recover_ranker *recover_ranker_new(void);

/** Frees the ranker. NULL is fine. */
void recover_ranker_free(struct recover_ranker *r);

/**
 * Gives back the ranker's scratch space and last result (their size grows
 * with the largest pool ranked: about 0.4 MB at 10,000 members), keeping
 * the ranker usable: a worker calls it when its queue is empty, so that an
 * idle controller does not hold a ranking's worth per worker (issue 11).
 */
void recover_ranker_idle(struct recover_ranker *r);

/**
 * The first valid policy (by name) in ns whose selector matches packed
 * labels, or NULL. *invalid (may be NULL) is set when an invalid policy
 * matches: it is never acted on. Cache read lock held.
 */
struct cache_policy *recover_policy_for(struct cache *c, const char *ns, const char *labels,
                                        int *invalid);

/**
 * The features of VM vm (may be NULL) named vm_name in p's namespace for
 * ranking under policy p: those of its VMI (may be NULL) when the VMI
 * carries the features annotation, else the VM's template's, else the last
 * ones its VMIs carried (kept since the failure), else its captured entry's
 * (a member of p's pool labelled kvrecover.io/vm=vm_name, or named so).
 * *alias (may be NULL) gets the captured entry's name when that was used
 * (borrowed from the cache), else NULL. Returns 0 and *out
 * (features_free()), or -EINVAL with *err. Cache read lock held.
 */
int recover_vm_features(struct cache *c, const struct cache_policy *p, const char *vm_name,
                        const struct cache_vmi *vmi, struct features *out, const char **alias,
                        char **err);

/* Decides on an eligible candidate after ranking (recover_rank()): returns
 * SIM_ELIGIBLE to accept it (*obj may receive what was built of it, kept in
 * the pick), or the reason to refuse it (SIM_NO_CAPACITY...) with *why (may
 * be set; the caller frees). Called with the cache read lock held. */
typedef enum sim_reason (*recover_accept_fn)(void *ud, const char *member, double score,
                                             cJSON **obj, char **why);

/**
 * Ranks p's pool (members of p's namespace matching its poolSelector; invalid
 * members are left out) for q, through the policy's index in b, rebuilt
 * first when stale. Eligible candidates are offered to accept (may be NULL:
 * all accepted), best first, until RECOVER_MAX_TRIES are accepted; refused
 * ones are refused in the ranking too (sim_result_refuse()). Fills *pick,
 * and *ranking (may be NULL) with sim_result_json() cut to
 * RECOVER_RANKING_MAX candidates. Returns 0, or sim_rank()'s error. Cache
 * read lock held; p must be valid.
 */
int recover_rank(struct recover_book *b, struct recover_ranker *rk, struct cache *c,
                 const struct cache_policy *p, const struct sim_query *q, recover_accept_fn accept,
                 void *ud, struct recover_pick *pick, cJSON **ranking);

/**
 * The replacement's name for failed VM vm and failed uid uid: replica_name()
 * (sim/replica.h), kept under this name as well because names must stay the
 * same across versions (tests/unit/test_hash.c pins them). The caller frees.
 */
char *recover_replacement_name(const char *vm, const char *uid);

#endif
