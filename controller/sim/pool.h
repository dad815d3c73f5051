/*
 * pool — one spec-pool member, read from its ConfigMap.
 *
 * A member is what the similarity engine scores and what a replacement is
 * built from: the ConfigMap's name and namespace, its kvrecover.io/vm label
 * (the VM it describes), its features and resources (features.h) and the
 * VirtualMachine template from data.vm, parsed (YAML or JSON) and kept as
 * cJSON. A member without data.vm is valid: it is scored but never selected
 * (NoTemplate).
 *
 * A malformed member is an error naming the ConfigMap and the data key
 * ("ConfigMap vm-003: data.resources: memory: \"4Qi\" is not a valid
 * quantity"); the controller logs it and skips the member, the CLI stops.
 */
#ifndef KVR_POOL_H
#define KVR_POOL_H

#include <cjson/cJSON.h>

#include "sim/features.h"

/* The label naming the VM a member describes. */
#define POOL_VM_LABEL "kvrecover.io/vm"

/*
 * A pool member. Every pointer is owned by the struct and released by
 * pool_member_free(); a zeroed struct is empty and safe to free.
 */
struct pool_member {
    char *name;               /* metadata.name of the ConfigMap; never NULL once read */
    char *namespace;          /* metadata.namespace, or NULL */
    char *vm;                 /* the kvrecover.io/vm label, or NULL */
    cJSON *labels;            /* a copy of metadata.labels, or NULL */
    struct features features; /* from data.features and data.resources */
    cJSON *vm_template;       /* data.vm parsed: a VirtualMachine, or NULL (NoTemplate) */
};

/**
 * Reads a ConfigMap object into *out. Returns 0; or -EINVAL with *out empty
 * and *err one line naming the ConfigMap and the key ("ConfigMap vm-003:
 * data.vm: kind must be VirtualMachine"; a ConfigMap without a name is
 * "ConfigMap (unnamed): metadata.name: required"). data.vm must be a YAML or
 * JSON mapping of kind VirtualMachine with an apiVersion kubevirt.io/...;
 * an empty or blank data.vm counts as absent. The caller frees *err, and
 * *out with pool_member_free().
 */
int pool_member_from_json(const cJSON *cm, struct pool_member *out, char **err);

/** Frees what m owns and leaves it empty; NULL is fine. */
void pool_member_free(struct pool_member *m);

/** Whether obj is a ConfigMap (apiVersion v1 or absent, kind ConfigMap). */
int pool_is_configmap(const cJSON *obj);

#endif
