/*
 * replica — the replacement VirtualMachine, built from a pool member's
 * template and the failed VM's identity (CONTRACT.md "The replacement" 3-5).
 *
 * Pure: text and cJSON in, cJSON out; no I/O, no clock (decided-at is
 * given). The controller creates what replica_build() returns and the CLI
 * shows what it changed, so the two never disagree about what a
 * replacement is.
 *
 * A replacement is the failed VM to the rest of the cluster (its labels and
 * its template's labels, so that its Services route to the replacement) and
 * the member to KubeVirt (the member's template spec), cleaned of what
 * identifies another machine: the firmware uuid and serial, every interface
 * macAddress, hostname and subdomain, the instancetype and preference
 * revisionName. Disks are never shared: each dataVolumeTemplate is renamed
 * "<replacement>-<name>" and the volumes that use it follow, and a member
 * whose volumes use a PVC or DataVolume it does not make itself is refused
 * (replica_shared_disk(); sim.h never selects it, reason SharedDisk).
 *
 * Must never: carry the member's labels, uid, resourceVersion, managedFields,
 * ownerReferences or status into the replacement, or produce a name longer
 * than Kubernetes allows.
 */
#ifndef KVR_REPLICA_H
#define KVR_REPLICA_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The labels and annotations a replacement carries (CONTRACT.md). */
#define REPLICA_REPLACES_LABEL "kvrecover.io/replaces"
#define REPLICA_POLICY_LABEL "kvrecover.io/policy"
#define REPLICA_TEMPLATE_LABEL "kvrecover.io/template"
#define REPLICA_SCORE_ANNOTATION "kvrecover.io/score"
#define REPLICA_FAILED_UID_ANNOTATION "kvrecover.io/failed-uid"
#define REPLICA_DECIDED_AT_ANNOTATION "kvrecover.io/decided-at"

/* The longest DataVolume name: a DNS-1123 subdomain. */
#define REPLICA_MAX_DV_NAME 253

/* What a replacement is made for: the failed VM and the decision. Nothing
 * here is kept by replica_build(); every string is copied. */
struct replica_spec {
    const char *namespace;        /* the policy's (and the failed VM's) namespace, or NULL
                                     (none set: the offline CLI may not know it) */
    const char *name;             /* the replacement's name (replica_name()) */
    const char *failed_vm;        /* the failed VM's name */
    const cJSON *labels;          /* the failed VM's metadata.labels, or NULL */
    const cJSON *template_labels; /* its spec.template.metadata.labels, or NULL */
    const char *policy;           /* the policy's name */
    const char *member;           /* the pool member's (ConfigMap's) name */
    double score;                 /* the member's score, written with 4 decimals */
    const char *failed_uid;       /* the failed VMI's uid, or NULL (no annotation: the
                                     offline CLI may not know it) */
    const char *decided_at;       /* RFC 3339 time of the decision, or NULL (no
                                     annotation: the offline CLI decides nothing) */
};

/* One change as data: a JSON Patch operation (RFC 6902) on the member's
 * VirtualMachine that the replacement differs by. Together the items are
 * not a patch to apply (the replacement's object is assembled, not
 * patched); each says what one step did, for scripts. */
struct replica_change {
    const char *op; /* "add", "replace" or "remove" (static) */
    char *path;     /* a JSON Pointer (RFC 6901) into the member's data.vm, owned */
    cJSON *value;   /* add, replace: the replacement's value, owned; remove: NULL */
    cJSON *old;     /* replace, remove: the member's value, owned; add: NULL */
};

/* What replica_build() changed, in order, one short line each ("dropped
 * domain.firmware.uuid") and the same as data: item[i] is line[i]. The
 * replacement's metadata comes first (its name, labels, annotations, what
 * of the member's metadata was left out), then its spec. A zeroed struct
 * is empty. */
struct replica_changes {
    char **line;                 /* owned */
    size_t n;                    /* lines, and items */
    struct replica_change *item; /* n entries, owned */
};

/**
 * The replacement's name for failed VM vm and failed VMI uid uid:
 * "<vm>-<10 hex digits>", at most 63 characters: vm lower-cased, every
 * character other than a letter or digit made '-', leading and trailing
 * '-' dropped, cut to 52 characters ("vm" when nothing is left), then 40
 * bits of FNV-1a of uid. The same inputs give the same name in every
 * process and version (a restarted controller finds its replacement by
 * name); tests/unit/test_replica.c pins values. The caller frees.
 */
char *replica_name(const char *vm, const char *uid);

/**
 * Whether the template of a member (a VirtualMachine) uses a disk that is
 * not its own: a spec.template.spec.volumes entry whose
 * persistentVolumeClaim.claimName or dataVolume.name is not the name of one
 * of its spec.dataVolumeTemplates. Returns 1 with *detail set ("volume data
 * uses persistentVolumeClaim shared-data, not one of its own
 * dataVolumeTemplates"; the caller frees), or 0 with *detail NULL. A
 * template that is not a mapping, or has no volumes, shares nothing.
 */
int replica_shared_disk(const cJSON *vm, char **detail);

/**
 * Builds the replacement from vm_json, a member's VirtualMachine as compact
 * JSON text, for s: apiVersion and kind as the member's; metadata = name,
 * namespace, the failed VM's labels plus kvrecover.io/replaces, /policy and
 * /template, annotations kvrecover.io/score, /failed-uid and /decided-at
 * (plus the member's kvrecover.io/features and /resources annotations, which
 * describe what the replacement is made of); spec = the member's with
 * runStrategy Always and no running, no instancetype/preference
 * revisionName, every dataVolumeTemplate renamed and its volumes rewritten;
 * spec.template.metadata = the failed VM's template labels and the member's
 * template annotations without KubeVirt's and kubectl's; the template spec
 * without firmware uuid and serial, interface macAddress, hostname and
 * subdomain; no status.
 *
 * Returns 0 with *out the new object (the caller frees with cJSON_Delete)
 * and, when changes is not NULL, what was changed appended to it, as lines
 * and as items (free with replica_changes_free()); a member field that was
 * already as the replacement needs it is no change. Returns -EINVAL with *out NULL and *err one
 * line naming the member ("pool member web-1: data.vm: spec.dataVolumeTemplates[0]: the renamed
 * DataVolume ... is longer than 253 characters") when the text is not a VirtualMachine, a
 * dataVolumeTemplate has no name, a renamed one is too long, or the template uses a disk that is
 * not its own. The caller frees *err.
 */
int replica_build(const char *vm_json, const struct replica_spec *s, cJSON **out,
                  struct replica_changes *changes, char **err);

/** Frees the lines and items of c and leaves it empty; NULL is fine. */
void replica_changes_free(struct replica_changes *c);

#endif
