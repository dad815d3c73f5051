/*
 * capture — the paper's step 1: keep a pool ConfigMap current for every
 * protected VM.
 *
 * For a VirtualMachine whose template labels a valid policy with capture on
 * selects (the first such policy by name, when several do), capture_vm()
 * writes a ConfigMap in the VM's namespace holding:
 *   data.features   the VM's features as YAML (template annotation, else the
 *                   VM's own), absent when it has none;
 *   data.resources  cpu, memory, disk as YAML quantities, when known;
 *   data.vm         a clean copy of the VirtualMachine as YAML: apiVersion,
 *                   kind, metadata with only name, labels and annotations
 *                   (without kubevirt.io/... and kubectl's last-applied), and
 *                   spec; no status, uid, resourceVersion, managedFields,
 *                   creationTimestamp, generation or owner;
 * labelled with the policy's poolSelector.matchLabels, kvrecover.io/pool
 * (the matchLabels value, else the policy's name) and kvrecover.io/vm=<vm>,
 * annotated kvrecover.io/capture-digest (a hash of the data and labels) so
 * that it is written only when something changed, and without owner
 * references: it must outlive the VM it describes.
 *
 * The ConfigMap's name: <vm> when no pool ConfigMap of that name exists or
 * the one that exists is labelled kvrecover.io/vm=<vm>; otherwise (it
 * describes something else, or a ConfigMap named <vm> outside the pool
 * exists) kvrecover-<vm>. An entry already written under kvrecover-<vm> is
 * kept there.
 *
 * The VM is fetched whole (kube_get) only when its capture fingerprint
 * (generation, labels, annotations; see cache_vm_put()) differs from the
 * last one captured, so status updates cost nothing. It never deletes a
 * ConfigMap and never writes outside the VM's namespace.
 */
#ifndef KVR_CAPTURE_H
#define KVR_CAPTURE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "reconcile/env.h"
#include "sim/features.h"

struct capture_state; /* opaque, thread-safe: fingerprints captured */

/** A new state. Never NULL. */
struct capture_state *capture_state_new(void);

/** Frees it. NULL is fine. */
void capture_state_free(struct capture_state *s);

/** Forgets what st remembers of VM ns/name (it was deleted). */
void capture_forget(struct capture_state *st, const char *ns, const char *name);

/** VMs st remembers, for tests and the log. */
size_t capture_size(struct capture_state *st);

/**
 * Captures VM ns/name when a policy asks for it (see above). Returns 0 (done,
 * or nothing to do), or the negative errno of a failed request (worth a
 * retry).
 */
int capture_vm(const struct recover_env *env, struct capture_state *st, const char *ns,
               const char *name);

/* ---- pieces exposed for unit tests ---------------------------------- */

/**
 * The VirtualMachine vm (borrowed) cleaned as data.vm holds it (see above).
 * Returns a new object.
 */
cJSON *capture_clean_vm(const cJSON *vm);

/**
 * The ConfigMap named cm_name in ns that captures vm (borrowed), labelled
 * with labels (borrowed: the pool labels, kvrecover.io/vm is added), with
 * its digest annotation. *digest (may be NULL) receives the digest (caller
 * frees). Returns a new object, or NULL with *err when the VM's features
 * cannot be read.
 */
cJSON *capture_configmap(const cJSON *vm, const char *ns, const char *cm_name, const cJSON *labels,
                         char **digest, char **err);

/**
 * v as block-style YAML that yaml_parse_one() reads back as v: strings are
 * plain only where that cannot change their type, else double-quoted (JSON
 * escapes). The caller frees.
 */
char *capture_yaml(const cJSON *v);

/** The YAML text of data.features for f ("" when f has no items). The
 *  caller frees. */
char *capture_features_yaml(const struct features *f);

/** The YAML text of data.resources for f ("" when f has none). The caller
 *  frees. */
char *capture_resources_yaml(const struct features *f);

#endif
