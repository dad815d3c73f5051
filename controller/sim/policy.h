/*
 * policy — the RecoveryPolicy spec, validated, and Kubernetes label selectors.
 *
 * A RecoveryPolicy arrives as cJSON (from the API server, or from YAML through
 * yaml.h) and leaves as a plain struct policy that nothing downstream needs
 * to check again: 1 to 64 weights, each 0 to 1000 with at most 9 decimals
 * and at least one > 0, threshold in [0, 1] with at most 9 decimals, at most
 * 32 required categories, a known mode and action, both selectors present and
 * the pool selector not empty (the CRD's rules, so that the CLI refuses what
 * the API server would), capture a boolean, trigger's integers in range,
 * stormLimit a count or a percentage, serviceAccountName a DNS-1123
 * subdomain. The removed fields haltFailed and unknownGracePeriodSeconds are
 * refused with a message saying what replaced them. Every error names the
 * field the way kubectl would ("spec.weights.language: must be a finite
 * number >= 0"), so that it can go into status.conditions or a CLI message
 * as it is.
 *
 * Category names (weights keys, required entries) are trimmed and
 * lower-cased like feature categories; mode and action are case-sensitive
 * enums, as in Kubernetes APIs.
 */
#ifndef KVR_POLICY_H
#define KVR_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* How candidates are scored; see SPEC.md. */
enum policy_mode {
    POLICY_JACCARD,  /* WeightScore(A and B) / WeightScore(A or B) */
    POLICY_COVERAGE, /* WeightScore(A and B) / WeightScore(A) */
};

/* What the controller does with the selected candidate. */
enum policy_action {
    POLICY_RECREATE, /* create the replacement VirtualMachine */
    POLICY_DRYRUN,   /* only report the decision */
};

/* A matchExpressions operator. */
enum policy_op { POLICY_OP_IN, POLICY_OP_NOTIN, POLICY_OP_EXISTS, POLICY_OP_DOESNOTEXIST };

struct policy_requirement {
    char *key;         /* the label key */
    enum policy_op op; /* how it is tested */
    char **values;     /* In/NotIn: one or more values; Exists/DoesNotExist: none */
    size_t nvalues;    /* entries in values */
};

/*
 * A LabelSelector. Its requirements are ANDed; an empty selector (present,
 * no requirements) matches everything, as in Kubernetes.
 */
struct policy_selector {
    char **keys;                      /* matchLabels keys... */
    char **values;                    /* ...and their values */
    size_t nlabels;                   /* matchLabels entries */
    struct policy_requirement *exprs; /* matchExpressions */
    size_t nexprs;                    /* entries in exprs */
};

/* spec.trigger: when kvrecover acts on a VM KubeVirt cannot bring back
 * (CONTRACT.md "When kvrecover acts"). */
struct policy_trigger {
    long crash_loop_threshold;    /* crashLoopThreshold, >= 1, default 3 */
    long restart_timeout_seconds; /* restartTimeoutSeconds, >= 0, default 300 */
    long node_loss_seconds;       /* nodeLossSeconds, >= 0, default 300; 0 is off */
    bool immediate;               /* immediate: act on the first Failed VMI, default false */
};

/* Trigger defaults, as the CRD's. */
#define POLICY_CRASH_LOOP_THRESHOLD 3
#define POLICY_RESTART_TIMEOUT_SECONDS 300
#define POLICY_NODE_LOSS_SECONDS 300
/* stormLimit's default, "50%". */
#define POLICY_STORM_PERCENT 50

/* spec.stormLimit, an int-or-string as Kubernetes' maxUnavailable: a count
 * (the integer 3) or a share (the string "50%"). */
struct policy_storm {
    bool percent; /* value is a percentage (0..100), else a count (>= 1) */
    long value;   /* the percentage or the count */
};

/*
 * Bounds of spec.weights, as the CRD's. Weights are exact decimals (exact.h)
 * of at most POLICY_DECIMALS digits after the point, so that sim.c sums them
 * as integers of 10^-9 and candidates equal in exact arithmetic tie. The
 * maximum keeps those integers exact: 2^20 items of 10^12 units each stay
 * below 2^63, and every printed contribution is finite. Only the ratios
 * between weights matter, so 1000 with 9 decimals (10^12 steps) loses
 * nothing a policy could want.
 */
#define POLICY_MAX_WEIGHTS 64
#define POLICY_WEIGHT_MAX 1000.0
#define POLICY_DECIMALS 9
/* Most spec.required entries, as the CRD's maxItems. */
#define POLICY_MAX_REQUIRED 32

struct policy_weight {
    char *category; /* trimmed, lower-cased; cpu, memory, disk are numeric */
    double weight;  /* 0..POLICY_WEIGHT_MAX, at most POLICY_DECIMALS decimals */
};

/*
 * A validated RecoveryPolicy. Every pointer is owned by the struct and
 * released by policy_free(); a zeroed struct is empty and safe to free.
 */
struct policy {
    char *name;                           /* metadata.name, or NULL */
    char *namespace;                      /* metadata.namespace, or NULL */
    struct policy_selector selector;      /* spec.selector: protected VMIs */
    struct policy_selector pool_selector; /* spec.poolSelector: pool ConfigMaps */
    struct policy_weight *weights;        /* spec.weights, in the order written */
    size_t nweights;                      /* entries in weights */
    double threshold;                     /* spec.threshold, [0, 1], default 0.5 */
    enum policy_mode mode;                /* spec.mode, default Jaccard */
    char **required;                      /* spec.required categories, lower-cased */
    size_t nrequired;                     /* entries in required */
    enum policy_action action;            /* spec.action, default Recreate */
    bool capture;                  /* spec.capture: keep pool ConfigMaps current, default true */
    struct policy_trigger trigger; /* spec.trigger, defaults filled in */
    struct policy_storm storm;     /* spec.stormLimit, default 50% */
    char *service_account;         /* spec.serviceAccountName, or NULL: writes as the controller */
    /* removed: always 0, delete with reconcile's rewrite (the fields
     * unknownGracePeriodSeconds and haltFailed are refused) */
    long unknown_grace_seconds;
    bool halt_failed;
};

/**
 * Reads a whole RecoveryPolicy object (apiVersion kvrecover.io/v1alpha1 when
 * given, kind RecoveryPolicy when given, metadata, spec; other top-level
 * fields such as status, and metadata fields such as managedFields, are
 * ignored, so that an object from the API server reads as it is) into *out. Returns
 * 0; or -EINVAL with *out empty and *err one line naming the field
 * ("spec.threshold: must be a number in [0, 1]", "spec.selector: required",
 * "spec.treshold: unknown field"). The caller frees *err and, on success,
 * policy_free(out).
 */
int policy_from_json(const cJSON *obj, struct policy *out, char **err);

/**
 * Reads only a spec mapping, as policy_from_json() reads spec. Field names
 * in errors still start with "spec.".
 */
int policy_parse_spec(const cJSON *spec, struct policy *out, char **err);

/**
 * Reads a LabelSelector (matchLabels, matchExpressions with In, NotIn,
 * Exists, DoesNotExist). path names the field in errors
 * ("spec.selector.matchExpressions[0].values: required for In"). Returns 0 or
 * -EINVAL; on error *out is empty. The caller frees with
 * policy_selector_free().
 */
int policy_parse_selector(const cJSON *sel, const char *path, struct policy_selector *out,
                          char **err);

/**
 * Whether a labels object (metadata.labels: a mapping of strings; NULL or
 * null means no labels) satisfies sel. Non-string label values never match.
 */
int policy_selector_matches(const struct policy_selector *sel, const cJSON *labels);

/* A label's value in some representation of an object's labels, or NULL. */
typedef const char *(*policy_label_fn)(const void *labels, const char *key);

/**
 * policy_selector_matches() over labels kept in any form: label(labels, key)
 * gives a label's value or NULL. The cache uses it on its packed labels, so
 * that Kubernetes' selector semantics live in one place.
 */
int policy_selector_matches_with(const struct policy_selector *sel, policy_label_fn label,
                                 const void *labels);

/** Frees what sel owns and leaves it empty; NULL is fine. */
void policy_selector_free(struct policy_selector *sel);

/** Frees what p owns and leaves it empty; NULL is fine. */
void policy_free(struct policy *p);

/**
 * The largest number of the policy's protected VMs that may be down at once
 * without a storm (CONTRACT.md, stormLimit): a count as it is; a share of
 * protected rounded up, never below 1, so that one VM down is never a storm
 * ("50%": 1 of 1 gives 1, 4 gives 2, so 2 of 4 down is no storm and 3 of 4
 * is one). More than this many down is a storm.
 */
size_t policy_storm_limit(const struct policy *p, size_t protected);

/**
 * Whether s is a DNS-1123 subdomain, as Kubernetes names most objects
 * (ServiceAccounts among them): 1 to 253 characters of lower-case letters,
 * digits, '-' and '.', in dot-separated parts that start and end with a
 * letter or digit.
 */
int policy_is_dns_subdomain(const char *s);

/**
 * Whether s is an equality-based label selector, as `kubectl -l` takes one
 * and the API's labelSelector parameter: requirements "key", "!key",
 * "key=value", "key==value" or "key!=value", separated by commas, no
 * blanks; a key is a label name (1 to 63 of letters, digits, '-', '_',
 * '.', starting and ending with a letter or digit) with an optional
 * DNS-subdomain prefix and '/'; a value is empty or such a name; at most
 * POLICY_SELECTOR_TEXT_MAX bytes. Set-based requirements ("in (...)") are
 * refused.
 */
#define POLICY_SELECTOR_TEXT_MAX 1024
int policy_is_label_selector(const char *s);

/** The weight of category (lower-case), 0 when the policy gives none. */
double policy_weight(const struct policy *p, const char *category);

/** "Jaccard" or "Coverage". */
const char *policy_mode_name(enum policy_mode m);

/** "Recreate" or "DryRun". */
const char *policy_action_name(enum policy_action a);

#endif
