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
 *
 * Whoever can write a ConfigMap in a namespace writes these: every field is
 * measured against its cap (below, and features.h) before any of the
 * ConfigMap is parsed, and data.vm is YAML without aliases (yaml.h).
 */
#ifndef KVR_POOL_H
#define KVR_POOL_H

#include <cjson/cJSON.h>

#include "sim/features.h"

/* The label naming the VM a member describes. */
#define POOL_VM_LABEL "kvrecover.io/vm"

/* Bytes of data.vm. A VirtualMachine is a few KiB; inline cloud-init user
 * data takes it to tens. A quarter of a ConfigMap's 1 MiB leaves room for
 * that and bounds what one member costs to parse. */
#define POOL_MAX_VM_TEXT (256u << 10)
/* Nodes of data.vm once parsed: a VM with fifty disks and interfaces has a
 * thousand. Without aliases a text's nodes are bounded by its bytes anyway;
 * this keeps a 256 KiB "[a,a,a,...]" from becoming a 9 MB tree. */
#define POOL_MAX_VM_NODES 16384u
/* The API server's own limits, applied to files read by the CLI too:
 * metadata.name is a DNS subdomain, metadata.namespace a DNS label, a label
 * key an optional DNS-subdomain prefix, "/" and a 63-byte name, a label value
 * at most 63 bytes. */
#define POOL_MAX_NAME 253u
#define POOL_MAX_NAMESPACE 63u
#define POOL_MAX_LABEL_KEY 317u
#define POOL_MAX_LABEL_VALUE 63u

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
 * "ConfigMap (unnamed): metadata.name: required"; a field over its cap is
 * "ConfigMap vm-003: data.vm: too large: 300000 bytes (at most 262144)").
 * data.vm must be a YAML or JSON mapping of kind VirtualMachine with an
 * apiVersion kubevirt.io/...; an empty or blank data.vm counts as absent.
 * The caller frees *err, and *out with pool_member_free().
 */
int pool_member_from_json(const cJSON *cm, struct pool_member *out, char **err);

/** Frees what m owns and leaves it empty; NULL is fine. */
void pool_member_free(struct pool_member *m);

/** Whether obj is a ConfigMap (apiVersion v1 or absent, kind ConfigMap). */
int pool_is_configmap(const cJSON *obj);

#endif
