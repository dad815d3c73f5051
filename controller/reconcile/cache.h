/*
 * cache — the controller's store: what the reflectors saw, in compact records.
 *
 * client-go's indexer for our four resources: VirtualMachineInstances,
 * VirtualMachines, RecoveryPolicies and pool ConfigMaps. The watch handlers
 * put whole objects in; the cache keeps only the fields the reconcilers use
 * (names, uid, labels packed into one string, phase, the features annotation
 * as written with the numeric resources already read, a policy parsed and
 * validated, a member's features parsed and its template as compact JSON
 * text), never whole JSON trees, so that 10,000 VMIs and 10,000 pool members
 * fit in a few megabytes. Bytes per record are reported by cache_stats().
 *
 * One rwlock guards everything: the reflector threads write, the workers and
 * the dashboard read. Readers take cache_rdlock(), look records up or walk
 * them, copy what they need, and cache_unlock(): a record pointer is never
 * kept past the unlock. The cache never calls the API server and never
 * queues work: the controller decides what a change means.
 */
#ifndef KVR_CACHE_H
#define KVR_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uthash.h>

#include "sim/features.h"
#include "sim/policy.h"

struct cache;

/* Labels and annotations the controller reads and writes (CONTRACT.md). */
#define CACHE_POOL_LABEL "kvrecover.io/pool"
#define CACHE_VM_LABEL "kvrecover.io/vm"
#define CACHE_REPLACES_LABEL "kvrecover.io/replaces"
#define CACHE_POLICY_LABEL "kvrecover.io/policy"
#define CACHE_TEMPLATE_LABEL "kvrecover.io/template"
#define CACHE_SCORE_ANNOTATION "kvrecover.io/score"
#define CACHE_FAILED_UID_ANNOTATION "kvrecover.io/failed-uid"
#define CACHE_DECIDED_AT_ANNOTATION "kvrecover.io/decided-at"
#define CACHE_DIGEST_ANNOTATION "kvrecover.io/capture-digest"

/* A VMI's status.phase, as KubeVirt names them. */
enum cache_phase {
    CACHE_PHASE_NONE, /* "" : not set yet */
    CACHE_PHASE_PENDING,
    CACHE_PHASE_SCHEDULING,
    CACHE_PHASE_SCHEDULED,
    CACHE_PHASE_RUNNING,
    CACHE_PHASE_SUCCEEDED,
    CACHE_PHASE_FAILED,
    CACHE_PHASE_UNKNOWN,
    CACHE_PHASE_OTHER, /* a phase this version does not know */
};

/* What a VM is made of, compactly: the features annotation as written (parsed
 * again when needed, see cache_spec_features()) and the numeric resources
 * already read from the resources annotation or the domain. */
struct cache_spec {
    const char *features;      /* kvrecover.io/features text, or NULL (interned: shared) */
    double res[FEATURES_NRES]; /* as struct features.res */
    unsigned has_res;          /* as struct features.has_res */
    char *error;               /* why the features could not be read, or NULL */
};

/* Change flags returned by the put functions. */
#define CACHE_CHG_NEW 1u      /* the record did not exist (or had another uid) */
#define CACHE_CHG_PHASE 2u    /* a VMI's phase changed */
#define CACHE_CHG_LABELS 4u   /* labels (or a VM's template labels) changed */
#define CACHE_CHG_SPEC 8u     /* features, resources, policy spec or member data changed */
#define CACHE_CHG_STATUS 16u  /* a policy's status changed */
#define CACHE_CHG_CAPTURE 32u /* a VM's capture fingerprint changed */
#define CACHE_CHG_REPL 64u    /* a VM's replacement annotations changed */

/*
 * The head every record starts with. hh is its entry in the table of its
 * kind; key is "namespace\0name", ns its first string and name its second;
 * ns_prev/ns_next place it in its namespace's list of that kind, in the
 * table's order, so that a walk of one namespace visits nothing else. key
 * and ns share their bytes, which pays for the list: a record is no larger
 * for it.
 */
#define CACHE_RECORD_HEAD(type)                                                                    \
    UT_hash_handle hh;                                                                             \
    union {                                                                                        \
        char *key;      /* hash key: ns, NUL, name (owned) */                                      \
        const char *ns; /* metadata.namespace */                                                   \
    };                                                                                             \
    const char *name; /* metadata.name (into key) */                                               \
    type *ns_prev, *ns_next

struct cache_vmi {
    CACHE_RECORD_HEAD(struct cache_vmi);
    char *uid;              /* metadata.uid */
    char *vm;               /* the owning VirtualMachine when not named as the VMI, else NULL */
    char *labels;           /* packed metadata.labels, see cache_label() */
    enum cache_phase phase; /* status.phase */
    double phase_since;     /* wall clock (s): when the phase began */
    double seen_mono;       /* monotonic clock (s): when this cache saw it begin */
    struct cache_spec spec; /* features and resources */
};

/* The facts a replacement VM carries about the decision that made it. */
struct cache_replacement {
    char *failed_uid; /* annotation kvrecover.io/failed-uid */
    char *policy;     /* label kvrecover.io/policy, or NULL */
    char *replaces;   /* label kvrecover.io/replaces, or NULL */
    char *tmpl;       /* label kvrecover.io/template, or NULL */
    char *decided_at; /* annotation kvrecover.io/decided-at, or NULL */
    double score;     /* annotation kvrecover.io/score; -1 when absent */
};

struct cache_vm {
    CACHE_RECORD_HEAD(struct cache_vm);
    UT_hash_handle hh_uid;          /* in the failed-uid index, when repl */
    char *uid;                      /* metadata.uid */
    char *resource_version;         /* metadata.resourceVersion */
    char *labels;                   /* packed metadata.labels */
    char *tlabels;                  /* packed spec.template.metadata.labels */
    struct cache_spec spec;         /* from the template (features_from_vm) */
    uint64_t fingerprint;           /* of what capture copies; see cache_vm_put() */
    int halted;                     /* runStrategy Halted, or running: false */
    struct cache_replacement *repl; /* NULL unless annotated kvrecover.io/failed-uid */
};

struct cache_policy {
    CACHE_RECORD_HEAD(struct cache_policy);
    char *uid;         /* metadata.uid */
    long generation;   /* metadata.generation */
    struct policy pol; /* the parsed spec; empty when !valid */
    int valid;         /* policy_from_json() accepted it */
    char *error;       /* why not, naming the field; NULL when valid */
    cJSON *status;     /* the status as last seen, or NULL */
};

struct cache_member {
    CACHE_RECORD_HEAD(struct cache_member);
    char *labels;   /* packed metadata.labels */
    const char *vm; /* kvrecover.io/vm label (into labels), or NULL */
    /* data.features, as interned (category, value) pairs, sorted; and
     * data.resources. Read them with cache_member_features(). */
    const char **items;        /* 2 * nitems interned strings */
    uint32_t nitems;           /* items */
    int has_features;          /* as struct features */
    unsigned has_res;          /* as struct features */
    double res[FEATURES_NRES]; /* as struct features */
    /* data.vm as compact JSON, deflated (cache_member_template()); NULL:
     * no template (NoTemplate) */
    unsigned char *tmpl_z;
    uint32_t tmpl_zlen; /* deflated bytes */
    uint32_t tmpl_len;  /* JSON bytes */
    char *digest;       /* kvrecover.io/capture-digest annotation, or NULL */
    char *error;        /* why the member is invalid (then skipped), or NULL */
};

/* Record counts and the heap bytes they hold (strings, structs, parsed
 * features; hash overhead included), for the log and the benchmark. */
struct cache_stats {
    size_t vmis, vms, policies, members;
    size_t vmi_bytes, vm_bytes, policy_bytes, member_bytes;
    size_t shared_bytes; /* interned strings (features texts and items), counted once */
};

/** A new, empty cache. Never NULL. */
struct cache *cache_new(void);

/** Frees the cache and every record. NULL is fine. */
void cache_free(struct cache *c);

/** Takes the read lock (shared). Pair with cache_unlock(). */
void cache_rdlock(struct cache *c);

/** Releases the lock cache_rdlock() took. */
void cache_unlock(struct cache *c);

/* ---- writers: the watch handlers; each takes the write lock itself ---- */

/**
 * Stores the fields of a VirtualMachineInstance obj (borrowed). now_wall and
 * now_mono are the current wall-clock and monotonic times in seconds: a phase
 * seen for the first time began at status.phaseTransitionTimestamps' entry
 * for it when there is one, else now. Returns the CACHE_CHG_ flags that
 * apply (0: nothing the controller reads changed), or -EINVAL when obj has
 * no namespace or name. Features that cannot be read are not an error: the
 * record carries spec.error.
 */
int cache_vmi_put(struct cache *c, const cJSON *obj, double now_wall, double now_mono);

/** Forgets the VMI obj names (a full object or a watch stub). Returns 1 when
 *  it was known, else 0. */
int cache_vmi_del(struct cache *c, const cJSON *obj);

/**
 * Stores the fields of a VirtualMachine. The capture fingerprint hashes
 * metadata.generation (which any spec change bumps) with the labels and the
 * annotations other than KubeVirt's and kubectl's, so that status updates do
 * not make capture fetch the VM again. Returns CACHE_CHG_ flags, or -EINVAL.
 */
int cache_vm_put(struct cache *c, const cJSON *obj);

/** Forgets a VM. Returns 1 when it was known, else 0. */
int cache_vm_del(struct cache *c, const cJSON *obj);

/**
 * Stores a RecoveryPolicy: parses and validates its spec (an invalid one is
 * kept with its error) and keeps a copy of its status. Returns CACHE_CHG_
 * flags (CACHE_CHG_SPEC when the generation or validity changed), or -EINVAL.
 */
int cache_policy_put(struct cache *c, const cJSON *obj);

/** Forgets a policy. Returns 1 when it was known, else 0. */
int cache_policy_del(struct cache *c, const cJSON *obj);

/**
 * Stores a pool ConfigMap: features parsed, data.vm validated and kept as
 * compact JSON; an invalid member is kept with its error. Bumps the pool
 * version of its namespace when anything changed. Returns CACHE_CHG_ flags,
 * or -EINVAL.
 */
int cache_member_put(struct cache *c, const cJSON *obj);

/** Forgets a member (and bumps its namespace's pool version). Returns 1
 *  when it was known, else 0. */
int cache_member_del(struct cache *c, const cJSON *obj);

/* ---- readers: call with the read lock held -------------------------- */

/** m's features as a struct features the caller owns (features_free()).
 *  Returns 0. */
int cache_member_features(const struct cache_member *m, struct features *out);

/** m's data.vm as compact JSON (a new string the caller frees), or NULL
 *  when it has none. */
char *cache_member_template(const struct cache_member *m);

/** The VMI ns/name, or NULL. */
struct cache_vmi *cache_vmi_find(struct cache *c, const char *ns, const char *name);

/** The VM ns/name, or NULL. */
struct cache_vm *cache_vm_find(struct cache *c, const char *ns, const char *name);

/** The VM annotated kvrecover.io/failed-uid = uid (a replacement), or NULL. */
struct cache_vm *cache_vm_find_replacement(struct cache *c, const char *failed_uid);

/** The policy ns/name, or NULL. */
struct cache_policy *cache_policy_find(struct cache *c, const char *ns, const char *name);

/** The member ns/name, or NULL. */
struct cache_member *cache_member_find(struct cache *c, const char *ns, const char *name);

/* Iteration: the first record (of namespace ns, or of all when ns is NULL)
 * and the next one after r (which must be of ns). A namespace's walk visits
 * only its own records, through the cache's namespace index. Order is
 * unspecified (it is the order records were last stored). */
struct cache_vmi *cache_vmi_first(struct cache *c, const char *ns);
struct cache_vmi *cache_vmi_next(struct cache_vmi *r, const char *ns);
struct cache_vm *cache_vm_first(struct cache *c, const char *ns);
struct cache_vm *cache_vm_next(struct cache_vm *r, const char *ns);
struct cache_policy *cache_policy_first(struct cache *c, const char *ns);
struct cache_policy *cache_policy_next(struct cache_policy *r, const char *ns);
struct cache_member *cache_member_first(struct cache *c, const char *ns);
struct cache_member *cache_member_next(struct cache_member *r, const char *ns);

/** A counter bumped whenever a member of namespace ns changes; 0 for a
 *  namespace never seen. Lets a policy keep its ranking index until then. */
uint64_t cache_pool_version(struct cache *c, const char *ns);

/** Fills *st. Takes the read lock itself. */
void cache_stats(struct cache *c, struct cache_stats *st);

/* ---- record helpers (no lock needed: they read only their arguments) ---- */

/** The value of label key in packed labels (NULL is no labels), or NULL. */
const char *cache_label(const char *packed, const char *key);

/** Whether packed labels satisfy sel, with policy_selector_matches()'s
 *  semantics. */
int cache_selector_matches(const struct policy_selector *sel, const char *packed);

/** metadata.labels (a mapping, or NULL) packed as "k\0v\0...k\0v\0\0"; NULL
 *  when there are no string labels. The caller frees. */
char *cache_labels_pack(const cJSON *labels);

/** Packed labels back as a cJSON object (NULL gives an empty object). */
cJSON *cache_labels_json(const char *packed);

/**
 * The feature set s describes: the features text parsed and the resources
 * copied. Returns 0 and *out (features_free() it), or -EINVAL with *err
 * (s->error, or the parse error) and *out empty.
 */
int cache_spec_features(const struct cache_spec *s, struct features *out, char **err);

/** A new "ns\0name" hash key (the caller frees it); *len is the key length
 *  uthash uses (both strings and the NUL between them). */
char *cache_key(const char *ns, const char *name, size_t *len);

/** Whether an annotation key is one KubeVirt or kubectl writes for itself
 *  (kubevirt.io/..., kubectl.kubernetes.io/last-applied-configuration): capture
 *  never copies those. */
int cache_annotation_is_generated(const char *key);

/** The phase's name as KubeVirt writes it ("" for none, "Other"). */
const char *cache_phase_name(enum cache_phase p);

/** The phase KubeVirt names s ("Failed"): CACHE_PHASE_NONE for NULL or "",
 *  CACHE_PHASE_OTHER for a name this version does not know. */
enum cache_phase cache_phase_parse(const char *s);

/**
 * Whether a VMI in phase p has failed, the one test of it: Failed, or
 * Unknown (its node stopped reporting). The controller queues such a VMI
 * and recover_vmi() acts on it, an Unknown one once its policy's grace
 * period has passed.
 */
int cache_phase_failed(enum cache_phase p);

#endif
