/*
 * capacity — would a replacement fit anywhere? The room check behind
 * NoCapacity (CONTRACT.md "The replacement" 6).
 *
 * When a VM cannot start for lack of room (printableStatus
 * ErrorUnschedulable, or its node is lost), the best similar member is
 * useless if its replacement cannot be scheduled either: the point of a
 * similar replacement is to choose the best member that *can run*. A
 * replacement fits when some node is Ready, schedulable (KubeVirt's
 * kubevirt.io/schedulable=true, not spec.unschedulable), carries no
 * NoSchedule or NoExecute taint the replacement does not tolerate, is
 * allowed by its nodeSelector and required node affinity, and has room:
 * allocatable cpu, memory and pods minus what the non-terminal pods bound
 * to it request.
 *
 * What the replacement requests is estimated as KubeVirt v1.8.4 renders its
 * launcher pod (pkg/virt-controller/services/renderresources.go, and
 * GetMemoryOverhead in pkg/hypervisor/kvm/hypervisorbackend.go): cpu is
 * domain.resources.requests.cpu, else its limit, else the vCPUs (dedicated
 * placement) or vCPUs / 10 (the default cpuAllocationRatio; a cluster that
 * changes it in the KubeVirt CR is estimated wrongly, and this module cannot
 * read that CR); memory is domain.resources.requests.memory, else its
 * limit, else domain.memory.guest, plus KubeVirt's overhead (220Mi for its
 * processes, 8Mi per vCPU, 8Mi for the IO thread, 32Mi of video RAM unless
 * autoattachGraphicsDevice is false, 1/512 of the guest memory for page
 * tables, 110Mi and more for exec probes) unless overcommitGuestOverhead,
 * plus the launcher's other containers (the console log sidecar 5m and
 * 35M, 1m and 1M per container disk). The estimate matched the launcher
 * pod of a 1-vCPU 128Mi VM on the test cluster to the byte (396Mi compute).
 *
 * Pure: no cache, no locks. The caller copies the nodes out.
 */
#ifndef KVR_CAPACITY_H
#define KVR_CAPACITY_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* What a replacement asks of a node. */
struct capacity_need {
    double cpu;         /* cores its launcher pod requests */
    double mem;         /* bytes */
    cJSON *selector;    /* spec.template.spec.nodeSelector (a copy), or NULL */
    cJSON *terms;       /* ...affinity.nodeAffinity.requiredDuringScheduling...
                           .nodeSelectorTerms (a copy), or NULL */
    cJSON *tolerations; /* spec.template.spec.tolerations (a copy), or NULL */
};

/* A node as the fit reads it. Strings borrowed. */
struct capacity_node {
    const char *name;
    const char *labels; /* packed, as the cache keeps them */
    const char *taints; /* packed, as the cache keeps them */
    int usable;         /* Ready, kubevirt.io/schedulable=true, not unschedulable */
    double free_cpu;    /* allocatable minus requested, cores */
    double free_mem;    /* bytes */
    double free_pods;   /* pods */
};

/**
 * What the VirtualMachine vm (borrowed: a replacement as built) asks of a
 * node; see above. Fills *out (free with capacity_need_free()). Returns 0,
 * or -EINVAL when vm has no spec.template.spec (*out is then empty).
 */
int capacity_need_of(const cJSON *vm, struct capacity_need *out);

/** Frees what n holds and zeroes it. NULL is fine. */
void capacity_need_free(struct capacity_need *n);

/**
 * The first node of nodes[0..n) where need fits, or -1; then why (may be
 * NULL; size whylen) says, for a few nodes, why not ("node-1: 0.30 of 4 CPU
 * free; node-2: not Ready; node-3: taint dedicated=db:NoSchedule").
 */
long capacity_fit(const struct capacity_need *need, const struct capacity_node *nodes, size_t n,
                  char *why, size_t whylen);

/** Whether the node's labels satisfy need's nodeSelector and required node
 *  affinity (name is the node's metadata.name, for matchFields). */
int capacity_allows(const struct capacity_need *need, const char *name, const char *labels);

/** The first NoSchedule or NoExecute taint of taints that need does not
 *  tolerate, as "key=value:effect" in buf (size n); 0 when every one is
 *  tolerated. */
int capacity_untolerated(const struct capacity_need *need, const char *taints, char *buf, size_t n);

#endif
