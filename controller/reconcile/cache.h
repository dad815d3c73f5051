/*
 * cache — the controller's store: what the reflectors saw, in compact records.
 *
 * client-go's indexer for our six resources: VirtualMachineInstances,
 * VirtualMachines, RecoveryPolicies, pool ConfigMaps, Nodes and Pods. The
 * watch handlers put whole objects in; the cache keeps only the fields the
 * reconcilers use (names, uid, labels packed into one string, phase, the
 * features annotation as written with the numeric resources already read, a
 * VM's run strategy and what KubeVirt reports about it, a policy parsed and
 * validated, a member's features parsed and its template as compact JSON
 * text, a node's readiness and room, a pod's requests summed per node),
 * never whole JSON trees, so that 10,000 VMIs and 10,000 pool members fit in
 * a few megabytes. Bytes per record are reported by cache_stats().
 *
 * A VMI belongs to a VM only through an ownerReference with controller:
 * true, kind VirtualMachine, an apiVersion kubevirt.io/..., the VMI's own
 * name (KubeVirt names a VM's VMI after it) and the uid of the VM the cache
 * holds under that name (cache_vmi_vm()). Anything else — a forged or a
 * non-controller reference, a stale uid — makes the VMI nobody's: it is
 * never a reason to halt or replace a VM (issue 12).
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
/* On a VM that kvrecover halted (the incident): what it ran as, the
 * replacement's name, and the decision (failed uid above, policy, member and
 * score) that a restarted controller finishes with. */
#define CACHE_PREVIOUS_RS_ANNOTATION "kvrecover.io/previous-run-strategy"
#define CACHE_REPLACED_BY_ANNOTATION "kvrecover.io/replaced-by"
#define CACHE_POLICY_ANNOTATION "kvrecover.io/policy"
#define CACHE_TEMPLATE_ANNOTATION "kvrecover.io/template"
/* KubeVirt's: virt-handler's heartbeat on a Node (RFC 3339), and the label
 * virt-controller sets false on a node whose heartbeat is too old. */
#define CACHE_HEARTBEAT_ANNOTATION "kubevirt.io/heartbeat"
#define CACHE_SCHEDULABLE_LABEL "kubevirt.io/schedulable"

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

/* A VM's run strategy as KubeVirt reads it (VirtualMachine.RunStrategy()):
 * spec.runStrategy, else spec.running true (Always) or false (Halted), else
 * Halted; both set is an error KubeVirt refuses to act on (Unknown). */
enum cache_run_strategy {
    CACHE_RS_HALTED,
    CACHE_RS_ALWAYS,
    CACHE_RS_RERUN_ON_FAILURE,
    CACHE_RS_MANUAL,
    CACHE_RS_ONCE,
    CACHE_RS_WAIT_AS_RECEIVER,
    CACHE_RS_UNKNOWN, /* both fields set, or a value this version does not know */
};

/* A condition's status: True, False, or absent/Unknown. */
enum cache_cond { CACHE_COND_UNKNOWN = -1, CACHE_COND_FALSE = 0, CACHE_COND_TRUE = 1 };

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
#define CACHE_CHG_REPL 64u    /* a VM's replacement or incident annotations changed */
#define CACHE_CHG_HEALTH                                                                           \
    128u /* what health reads changed: a VM's run strategy or                                      \
            KubeVirt status, a VMI's node, deletion or history,                                    \
            a node's readiness or heartbeat */

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
    char *uid;                 /* metadata.uid */
    char *owner_uid;           /* the uid its controller ownerReference gives the VM of
                                  its own name (see above), else NULL: see cache_vmi_vm() */
    char *labels;              /* packed metadata.labels, see cache_label() */
    const char *node;          /* status.nodeName (interned), or NULL */
    enum cache_phase phase;    /* status.phase */
    unsigned deleting : 1;     /* metadata.deletionTimestamp is set */
    unsigned ever_running : 1; /* phase Running, or a Running phase transition */
    double phase_since;        /* wall clock (s): when the phase began */
    double seen_mono;          /* monotonic clock (s): when this cache saw it begin */
    struct cache_spec spec;    /* features and resources */
};

/* The facts a replacement VM carries about the decision that made it. Its
 * entry in the cache's failed-uid index is here, not in struct cache_vm:
 * few VMs are replacements, and a hash handle is 56 bytes (issue 11). */
struct cache_replacement {
    UT_hash_handle hh;   /* in the failed-uid index, keyed by failed_uid */
    struct cache_vm *vm; /* the VM that carries it (set when indexed) */
    char *failed_uid;    /* annotation kvrecover.io/failed-uid */
    char *policy;        /* label kvrecover.io/policy, or NULL */
    char *replaces;      /* label kvrecover.io/replaces, or NULL */
    char *tmpl;          /* label kvrecover.io/template, or NULL */
    char *decided_at;    /* annotation kvrecover.io/decided-at, or NULL */
    double score;        /* annotation kvrecover.io/score; -1 when absent */
};

/* What the annotations of a VM that kvrecover halted say (the incident it is
 * in); present when kvrecover.io/replaced-by is. */
struct cache_incident {
    char *replaced_by; /* kvrecover.io/replaced-by: the replacement's name */
    char *failed_uid;  /* kvrecover.io/failed-uid: the incident's failed VMI uid, or NULL */
    char *previous_rs; /* kvrecover.io/previous-run-strategy, or NULL */
    char *policy;      /* kvrecover.io/policy, or NULL */
    char *tmpl;        /* kvrecover.io/template: the member chosen, or NULL */
    double score;      /* kvrecover.io/score; -1 when absent */
};

struct cache_vm {
    CACHE_RECORD_HEAD(struct cache_vm);
    char *uid;                            /* metadata.uid */
    char *resource_version;               /* metadata.resourceVersion */
    long generation;                      /* metadata.generation, 0 when absent: any
                                             spec change bumps it, status writes do not */
    char *labels;                         /* packed metadata.labels */
    char *tlabels;                        /* packed spec.template.metadata.labels */
    struct cache_spec spec;               /* from the template (features_from_vm) */
    uint64_t fingerprint;                 /* of what capture copies; see cache_vm_put() */
    enum cache_run_strategy run_strategy; /* see the enum */
    const char *printable;                /* status.printableStatus (interned), or NULL */
    char *fail_uid;                       /* status.startFailure.lastFailedVMIUID, or NULL */
    int fail_count;                       /* status.startFailure.consecutiveFailCount */
    enum cache_cond ready;                /* the Ready condition's status */
    unsigned deleting : 1;                /* metadata.deletionTimestamp is set */
    double ready_since;                   /* its lastTransitionTime (wall, s), 0 when absent */
    struct cache_replacement *repl;       /* a replacement: labelled kvrecover.io/replaces and
                                             annotated kvrecover.io/failed-uid; else NULL */
    struct cache_incident *inc;           /* halted by kvrecover: annotated
                                             kvrecover.io/replaced-by; else NULL */
    /* Kept across updates of the same VM (uid), from its VMIs: KubeVirt
     * deletes a Failed VMI of a VM it restarts within a second. */
    char *last_failed_uid;   /* the last of its VMIs seen Failed, or NULL */
    double last_failed_when; /* when it failed (wall, s) */
    double last_failed_mono; /* when this cache saw it fail (monotonic, s) */
    struct cache_spec *seen; /* the features its VMIs last carried, or NULL when they
                                never carried any (most VMs: 40 bytes each saved) */
};

/* A Node, as health and capacity read it. Cluster-scoped: no namespace. */
struct cache_node {
    UT_hash_handle hh;
    char *name;                  /* metadata.name */
    char *labels;                /* packed metadata.labels */
    char *taints;                /* packed spec.taints: "key\0value\0effect\0" per taint,
                                    then "\0"; NULL when none */
    enum cache_cond ready;       /* the Ready condition */
    unsigned unschedulable : 1;  /* spec.unschedulable */
    unsigned kv_schedulable : 1; /* label kubevirt.io/schedulable is "true" */
    double ready_since;          /* the Ready condition's lastTransitionTime (wall, s), 0 */
    double heartbeat;            /* annotation kubevirt.io/heartbeat (wall, s), -1 without */
    double alloc_cpu;            /* status.allocatable.cpu, cores */
    double alloc_mem;            /* status.allocatable.memory, bytes */
    double alloc_pods;           /* status.allocatable.pods */
};

/* What the non-terminal pods bound to one node request, summed. Kept per
 * node name whether or not the Node is cached (pods may be seen first). */
struct cache_node_use {
    double cpu; /* cores */
    double mem; /* bytes */
    long pods;  /* pods counted */
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
    char *disk;         /* replica_shared_disk()'s detail: its template uses a
                           disk that is not its own (SharedDisk); else NULL */
    char *digest;       /* kvrecover.io/capture-digest annotation, or NULL */
    char *error;        /* why the member is invalid (then skipped), or NULL */
};

/* Record counts and the heap bytes they hold (strings, structs, parsed
 * features; hash overhead included), for the log and the benchmark. */
struct cache_stats {
    size_t vmis, vms, policies, members, nodes, pods;
    size_t vmi_bytes, vm_bytes, policy_bytes, member_bytes, node_bytes, pod_bytes;
    size_t shared_bytes;           /* interned strings (features texts and items), counted once */
    size_t pending, pending_bytes; /* pool ConfigMaps kept unparsed: their namespace
                                      has no policy (cache_member_put()) */
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
 * kept with its error) and keeps a copy of its status. Parses the pool
 * members of its namespace kept unparsed (cache_member_put()), under the
 * write lock. Returns CACHE_CHG_
 * flags (CACHE_CHG_SPEC when the generation or validity changed), or -EINVAL.
 */
int cache_policy_put(struct cache *c, const cJSON *obj);

/** Forgets a policy. Returns 1 when it was known, else 0. */
int cache_policy_del(struct cache *c, const cJSON *obj);

/**
 * Stores a pool ConfigMap. In a namespace with a policy: features parsed,
 * data.vm validated and kept as compact JSON, then the labels and the
 * digest annotation (at most 64 bytes); an invalid member is kept with its
 * error alone. In a namespace without one, nobody ranks it: it is kept
 * unparsed, the fields the parse reads measured against their caps and
 * deflated, and no reader meets it (cache_member_find() and the walks do
 * not) until cache_policy_put() stores the namespace's first policy, which
 * parses it. Bumps the pool version of its namespace when a member readers
 * see changed. Returns CACHE_CHG_ flags (0 for a member kept unparsed), or
 * -EINVAL.
 */
int cache_member_put(struct cache *c, const cJSON *obj);

/** Forgets a member (and bumps its namespace's pool version). Returns 1
 *  when it was known, else 0. */
int cache_member_del(struct cache *c, const cJSON *obj);

/**
 * Stores a Node: readiness, heartbeat, schedulability, labels, taints and
 * allocatable cpu, memory and pods. Returns CACHE_CHG_ flags
 * (CACHE_CHG_HEALTH when readiness or the heartbeat changed, CACHE_CHG_SPEC
 * for the rest), or -EINVAL.
 */
int cache_node_put(struct cache *c, const cJSON *obj);

/** Forgets a Node. Returns 1 when it was known, else 0. */
int cache_node_del(struct cache *c, const cJSON *obj);

/**
 * Accounts a Pod's requests on its node (spec.nodeName): the sum of its
 * containers' and sidecars' (init containers with restartPolicy Always)
 * cpu and memory requests, or its largest other init container's when
 * larger, plus spec.overhead, as the scheduler counts them. A pod without a
 * node, or in phase Succeeded or Failed, counts nothing (an earlier
 * version's share is taken back). Returns 0 (nothing health reads changes),
 * or -EINVAL.
 */
int cache_pod_put(struct cache *c, const cJSON *obj);

/** Takes a deleted Pod's requests back from its node. Returns 1 when it was
 *  counted, else 0. */
int cache_pod_del(struct cache *c, const cJSON *obj);

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

/**
 * The VM that controls vmi (see above): the cached VM of the VMI's name and
 * namespace, when the VMI's controller ownerReference carries its uid; else
 * NULL (standalone, forged, or the VM is not cached yet).
 */
struct cache_vm *cache_vmi_vm(struct cache *c, const struct cache_vmi *vmi);

/** The VMI that vm controls (cache_vmi_vm() of it is vm), or NULL. */
struct cache_vmi *cache_vm_vmi(struct cache *c, const struct cache_vm *vm);

/** The Node name, or NULL. */
struct cache_node *cache_node_find(struct cache *c, const char *name);

/** Iteration over every Node, in no particular order. */
struct cache_node *cache_node_first(struct cache *c);
struct cache_node *cache_node_next(struct cache_node *n);

/** What the non-terminal pods bound to node name request (zeros when
 *  none). */
struct cache_node_use cache_node_use(struct cache *c, const char *name);

/** The replacement VM (labelled kvrecover.io/replaces) annotated
 *  kvrecover.io/failed-uid = uid, or NULL. */
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

/* What can change the health of a namespace's VMs (cache_versions()). */
struct cache_versions {
    uint64_t vm_changes; /* puts and deletes of its VMs and VMIs: each one can change
                            the health of one VM at most */
    uint64_t policies;   /* a stamp, new whenever a policy of it is added, deleted or
                            given a new spec; 0 for a namespace never seen */
    uint64_t nodes;      /* a stamp, new whenever a Node is added or deleted or its
                            Ready condition or KubeVirt heartbeat changes */
};

/**
 * Fills *out for namespace ns (read lock held). Stamps are unique in the
 * process, never reused by another cache: equal stamps mean no change.
 * Lets a reader that counted something over the namespace's VMs (the storm
 * check) know how far that count may be off now without counting again.
 */
void cache_versions(struct cache *c, const char *ns, struct cache_versions *out);

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

/** The run strategy's name as KubeVirt writes it ("Always", ...;
 *  "Unknown"). */
const char *cache_run_strategy_name(enum cache_run_strategy rs);

/** The phase's name as KubeVirt writes it ("" for none, "Other"). */
const char *cache_phase_name(enum cache_phase p);

/** The phase KubeVirt names s ("Failed"): CACHE_PHASE_NONE for NULL or "",
 *  CACHE_PHASE_OTHER for a name this version does not know. */
enum cache_phase cache_phase_parse(const char *s);

/**
 * Whether a VMI in phase p has failed, the one test of it: Failed, or
 * Unknown (its node stopped reporting). What it means for the VM is
 * health_eval()'s to say (reconcile/health.h).
 */
int cache_phase_failed(enum cache_phase p);

/** Each (key, value, effect) of packed taints in turn: start with *it =
 *  packed (may be NULL); returns 0 at the end. */
int cache_taint_next(const char **it, const char **key, const char **value, const char **effect);

#endif
