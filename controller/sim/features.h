/*
 * features — what a VM is made of, as the similarity engine sees it.
 *
 * A feature set is a set of (category, value) items — os=ubuntu-20.04,
 * database=mysql, database=postgresql — plus up to three numeric resources
 * (cpu in cores, memory and disk in bytes). It is read from a pool
 * ConfigMap (data.features, data.resources), from a VirtualMachineInstance or
 * a VirtualMachine (annotations kvrecover.io/features and
 * kvrecover.io/resources, else the domain's cpu and memory), always from
 * cJSON: the API server's JSON and YAML files (through yaml.h) both arrive
 * as cJSON, and the features text inside them goes through yaml_parse_one().
 *
 * Categories and values are trimmed and lower-cased ("  MySQL " is "mysql")
 * so that they compare as CONTRACT.md says. The categories cpu, memory and
 * disk are reserved for resources.
 */
#ifndef KVR_FEATURES_H
#define KVR_FEATURES_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The numeric resources, in the order of features.res[]. */
enum features_res { FEATURES_CPU, FEATURES_MEMORY, FEATURES_DISK, FEATURES_NRES };

/* Most items one feature set may hold; a bound on hostile input. */
#define FEATURES_MAX_ITEMS (1u << 20)

/*
 * What one VM or pool member may say about itself. Tenants write these
 * texts, and the controller parses every one it is shown, so each is capped
 * far above what a real VM needs and far below what would hurt the
 * controller; a text over its cap is refused before anything of its object
 * is parsed.
 */
/* Bytes of the features text (annotation kvrecover.io/features,
 * data.features): the paper's VM takes 70; forty categories with a few
 * values each take 2 KiB. */
#define FEATURES_MAX_TEXT (16u << 10)
/* Bytes of the resources text (kvrecover.io/resources, data.resources):
 * three quantities take 40 bytes; room for comments. */
#define FEATURES_MAX_RES_TEXT 1024u
/* Categories in one features mapping: a policy weighs a handful. */
#define FEATURES_MAX_CATEGORIES 128u
/* Values of one category (database: [mysql, postgresql]). */
#define FEATURES_MAX_VALUES 256u
/* Bytes of one category or value, trimmed: the longest DNS name, which
 * every package name and version string fits. */
#define FEATURES_MAX_LEN 253u

/* The annotations read from a VirtualMachineInstance or VirtualMachine. */
#define FEATURES_ANNOTATION "kvrecover.io/features"
#define FEATURES_RES_ANNOTATION "kvrecover.io/resources"

struct features_item {
    char *category; /* trimmed, lower-cased, non-empty; never cpu/memory/disk */
    char *value;    /* trimmed, lower-cased, non-empty */
};

/*
 * A feature set. A zeroed struct is a valid empty set; every pointer is owned
 * by the struct and released by features_free(). The parsers below leave
 * items sorted by (category, value) without duplicates.
 */
struct features {
    struct features_item *items; /* the items */
    size_t n;                    /* items in use */
    size_t cap;                  /* items allocated */
    double res[FEATURES_NRES];   /* resource values: cores, bytes, bytes */
    unsigned has_res;            /* bit (1u << FEATURES_x) set when res[x] is known */
    int has_features;            /* 1 when a features mapping was found at all */
};

/** The name of a resource: "cpu", "memory" or "disk". */
const char *features_res_name(enum features_res r);

/** Returns the resource named name (exact, lower-case), or -1. */
int features_res_lookup(const char *name);

/**
 * Adds one item, trimming and lower-casing both strings (a duplicate is
 * removed by features_sort()). Returns 0; or -EINVAL with *err set ("empty
 * value", "cpu is a resource, not a feature category", "value too long: 300
 * bytes (at most 253)", "more than 1048576 items"), the set unchanged. The
 * caller frees *err.
 */
int features_add(struct features *f, const char *category, const char *value, char **err);

/** Sorts the items by (category, value) and removes duplicates. */
void features_sort(struct features *f);

/** Frees everything f owns and leaves it empty; NULL is fine. */
void features_free(struct features *f);

/**
 * Adds the items of a features mapping (category -> a scalar or a list of
 * scalars; null means no value) to f, then sorts. A cJSON null adds nothing.
 * At most FEATURES_MAX_CATEGORIES categories of FEATURES_MAX_VALUES values.
 * Returns 0; or -EINVAL with *err naming the category ("database: must be a
 * string or a list of strings", "database: too many values: 300 (at most
 * 256)"); f may then hold some of the items.
 */
int features_parse_map(struct features *f, const cJSON *map, char **err);

/**
 * Sets f's resources from a resources mapping (cpu, memory, disk ->
 * quantity). A cJSON null sets nothing. Returns 0; or -EINVAL with *err
 * naming the resource ("memory: \"4Qi\" is not a valid quantity", "gpu:
 * unknown resource (cpu, memory, disk)").
 */
int features_parse_resources(struct features *f, const cJSON *map, char **err);

/**
 * Features and resources of a pool ConfigMap, from data.features and
 * data.resources (YAML text without aliases, see yaml.h; either may be
 * absent). Both sizes are checked before either is parsed. On success *out
 * is filled (the caller frees it with features_free()); on error it is
 * empty and *err names the data key: "data.resources: memory: \"4Qi\" is
 * not a valid quantity", "data.features: too large: 20000 bytes (at most
 * 16384)". Returns 0 or -EINVAL.
 */
int features_from_configmap(const cJSON *cm, struct features *out, char **err);

/**
 * Features and resources of a VirtualMachineInstance: the annotation
 * kvrecover.io/features (and kvrecover.io/resources); without the latter,
 * cpu = cores x sockets x threads of spec.domain.cpu (each defaulting to 1)
 * or else spec.domain.resources.requests.cpu, and memory =
 * spec.domain.memory.guest or else spec.domain.resources.requests.memory.
 * A VMI without the features annotation is not an error (has_features 0).
 * The annotations are YAML without aliases and are size-checked (the same
 * caps as a ConfigMap's) before either is parsed. Errors name the field
 * but not the object, which the caller names: "metadata.annotations[
 * kvrecover.io/features]: line 1 column 9: ...", "spec.domain.cpu.cores:
 * must be a positive integer".
 */
int features_from_vmi(const cJSON *vmi, struct features *out, char **err);

/**
 * Same as features_from_vmi() for a VirtualMachine: annotations of
 * spec.template.metadata, else of metadata; the domain under
 * spec.template.spec.
 */
int features_from_vm(const cJSON *vm, struct features *out, char **err);

/**
 * Dispatches on obj's kind: ConfigMap, VirtualMachineInstance or
 * VirtualMachine. Another kind is -EINVAL ("kind Pod is not a
 * VirtualMachineInstance, VirtualMachine or ConfigMap").
 */
int features_from_object(const cJSON *obj, struct features *out, char **err);

#endif
