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
 *                   creationTimestamp, generation or owner; and no inline
 *                   cloud-init data (userData, userDataBase64, networkData,
 *                   networkDataBase64 of cloudInitNoCloud and
 *                   cloudInitConfigDrive volumes: often passwords and keys,
 *                   which a ConfigMap must not hold); their Secret
 *                   references (secretRef, networkDataSecretRef) are kept;
 * labelled with the policy's poolSelector.matchLabels, kvrecover.io/pool
 * (the matchLabels value, else the policy's name) and kvrecover.io/vm=<vm>,
 * annotated kvrecover.io/capture-digest (a hash of the data and labels) so
 * that it is written only when something changed, and
 * kvrecover.io/capture-omitted (the fields left out) when inline data was
 * dropped; without owner references: it must outlive the VM it describes.
 *
 * Capture writes only ConfigMaps it created. The digest annotation is its
 * mark: it patches a ConfigMap only when, read just before, it is a pool
 * member labelled kvrecover.io/vm=<vm> and carries that annotation
 * (capture_not_ours()), and only at the resourceVersion it read. Anything
 * else in its way is left alone and reported: a Warning Event
 * CaptureSkipped on the VirtualMachine and a log line.
 *
 * The ConfigMap's name: the one capture already wrote for the VM (<vm> or
 * kvrecover-<vm>); else <vm>, or kvrecover-<vm> when a ConfigMap named <vm>
 * exists and is not ours. None is written when a member not written by
 * capture already describes the VM (it is its author's), or when both names
 * are taken.
 *
 * The VM is fetched whole (kube_get) only when its capture fingerprint
 * (generation, labels, annotations; see cache_vm_put()) differs from the
 * last one captured, so status updates cost nothing. It never deletes a
 * ConfigMap and never writes outside the VM's namespace.
 *
 * Its writes (create, patch) are made as the policy's spec.serviceAccountName,
 * else as env->default_service_account, in the VM's namespace, else as the
 * controller; its reads as the controller. A write the API server forbids
 * (the namespace did not grant the impersonation, or the ServiceAccount may
 * not write ConfigMaps) is reported, a Warning Event CaptureForbidden on the
 * VirtualMachine with the server's message, and retried with backoff.
 */
#ifndef KVR_CAPTURE_H
#define KVR_CAPTURE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "reconcile/env.h"
#include "sim/features.h"

/* Where capture notes the inline cloud-init fields it did not copy, e.g.
 * "volumes[cloudinitdisk].cloudInitNoCloud.userData"; at most
 * CAPTURE_OMITTED_MAX bytes. */
#define CAPTURE_OMITTED_ANNOTATION "kvrecover.io/capture-omitted"
#define CAPTURE_OMITTED_MAX 1024

struct capture_state; /* opaque, thread-safe: fingerprints captured */

/** A new state. Never NULL. */
struct capture_state *capture_state_new(void);

/** Frees it. NULL is fine. */
void capture_state_free(struct capture_state *s);

/** Forgets what st remembers of VM ns/name (it was deleted). */
void capture_forget(struct capture_state *st, const char *ns, const char *name);

/**
 * Forgets every VM the cache no longer holds, and returns how many. A
 * capture that read its VM before the delete handler's capture_forget() may
 * remember it after (bench_soak saw such entries stay, round after round);
 * controller_resync() calls this. Takes the cache's read lock, then st's.
 */
size_t capture_prune(struct capture_state *st, struct cache *c);

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
 * Returns a new object; *omitted receives the list of inline fields left
 * out (a new string the caller frees), or NULL when there were none.
 */
cJSON *capture_clean_vm(const cJSON *vm, char **omitted);

/**
 * Why capture must not write the ConfigMap cm (borrowed; as read from the
 * API) for VM vm: a static sentence naming the first reason (not a pool
 * member, kvrecover.io/vm missing or naming another VM, no
 * kvrecover.io/capture-digest annotation), or NULL when capture wrote it.
 */
const char *capture_not_ours(const cJSON *cm, const char *vm);

/**
 * The ConfigMap named cm_name in ns that captures vm (borrowed), labelled
 * with labels (borrowed: the pool labels, kvrecover.io/vm is added), with
 * its digest annotation (and the omitted-fields one, when any). *digest
 * (may be NULL) receives the digest (caller frees). Returns a new object,
 * or NULL with *err when the VM's features cannot be read.
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
