/*
 * health — is a protected VM well, is KubeVirt still bringing it back, and
 * has the time come for kvrecover to act? One pure function.
 *
 * kvrecover is the escalation for when KubeVirt's own restart does not
 * work (CONTRACT.md "When kvrecover acts"). health_eval() reads what
 * KubeVirt v1.8.4 reports (pkg/virt-controller/watch/vm/vm.go: the run
 * strategy, printableStatus, status.startFailure, the Ready condition; the
 * VMI's phase, node and deletion; the node's Ready condition and
 * virt-handler's kubevirt.io/heartbeat) and the policy's spec.trigger, and
 * says what state the VM is in and whether a trigger fires, for which
 * failed VMI uid, and when a pending one will:
 *
 *   immediate: true    the VM's first Failed VMI (the paper's behaviour);
 *   Manual, Once       a Failed VMI: KubeVirt will not restart it;
 *   CrashLoop          startFailure.consecutiveFailCount >= crashLoopThreshold
 *                      (between attempts there is no VMI: the VM's status says it);
 *   RestartTimeout     should run, no Running VMI, and printableStatus one of
 *                      ErrorUnschedulable, ErrImagePull, ImagePullBackOff,
 *                      ErrorPvcNotFound, DataVolumeError, CrashLoopBackOff for
 *                      restartTimeoutSeconds, counted from the earlier of when
 *                      this process first saw it not running and the Ready
 *                      condition's lastTransitionTime (durable across restarts
 *                      of the controller; later than the truth at worst);
 *   NodeLoss           its VMI is on a node whose Ready condition has not been
 *                      True for nodeLossSeconds, or whose heartbeat is stale
 *                      (older than HEALTH_HEARTBEAT_STALE_S) for that long;
 *                      0 turns it off. A node the cache does not know is not
 *                      lost: there is no data.
 *
 * A VM KubeVirt restarts successfully never triggers (a Failed VMI under
 * Always or RerunOnFailure is Restarting); a VMI being deleted is not
 * running and triggers nothing by itself (KubeVirt's halt of a VM on a dead
 * node leaves its VMI Running and deleting until the node returns); a
 * trigger whose failed uid is the one the VM's kvrecover.io/failed-uid
 * annotation names (set by kvrecover's halt) is spent.
 *
 * No I/O, no clock, no locks, no allocation: the caller copies the facts
 * out of the cache and passes the time.
 */
#ifndef KVR_HEALTH_H
#define KVR_HEALTH_H

#include <stdint.h>

#include "reconcile/cache.h"

/* virt-handler writes the heartbeat every 60 s (jittered up to 1.2x); one
 * older than two intervals and a half means it stopped: the node counts as
 * lost from that moment on. (KubeVirt itself waits 5 minutes before it
 * marks the node unschedulable.) Checking the heartbeat against
 * nodeLossSeconds directly would call every node lost whenever
 * nodeLossSeconds is below virt-handler's interval. */
#define HEALTH_HEARTBEAT_STALE_S 150

/* The state of a protected VM. */
enum health_state {
    HEALTH_RUNNING,       /* its VMI runs */
    HEALTH_STARTING,      /* KubeVirt is starting it */
    HEALTH_RESTARTING,    /* its VMI failed or is going; KubeVirt restarts it */
    HEALTH_CRASH_LOOPING, /* start failures, KubeVirt backing off */
    HEALTH_CANNOT_START,  /* printableStatus says KubeVirt cannot start it */
    HEALTH_NODE_LOST,     /* its VMI is on a node that is not Ready */
    HEALTH_FAILED,        /* its VMI failed and nobody restarts it (or immediate) */
    HEALTH_STOPPED,       /* not meant to run: halted by someone, completed, deleting */
    HEALTH_REPLACED,      /* halted by kvrecover, replaced */
};

/* Why kvrecover acts now. */
enum health_trigger {
    HEALTH_NONE,
    HEALTH_IMMEDIATE,            /* "Immediate" */
    HEALTH_FAILED_NOT_RESTARTED, /* "FailedNotRestarted" (Manual, Once) */
    HEALTH_CRASH_LOOP,           /* "CrashLoop" */
    HEALTH_RESTART_TIMEOUT,      /* "RestartTimeout" */
    HEALTH_NODE_LOSS,            /* "NodeLoss" */
};

/* The policy's spec.trigger (validated by sim/policy). */
struct health_config {
    int crash_loop_threshold; /* >= 1 */
    long restart_timeout_s;   /* >= 0 */
    long node_loss_s;         /* >= 0; 0: off */
    int immediate;            /* act on the first Failed VMI */
};

/* The VM's facts. Strings borrowed, may be NULL. Times are wall-clock
 * seconds; 0 means unknown. */
struct health_vm {
    const char *uid;             /* metadata.uid: the incident's name when no
                                    VMI uid can name it */
    enum cache_run_strategy rs;  /* its run strategy */
    const char *printable;       /* status.printableStatus */
    int fail_count;              /* status.startFailure.consecutiveFailCount */
    const char *fail_uid;        /* status.startFailure.lastFailedVMIUID */
    enum cache_cond ready;       /* the Ready condition */
    double ready_since;          /* its lastTransitionTime */
    int deleting;                /* metadata.deletionTimestamp set */
    const char *replaced_by;     /* kvrecover.io/replaced-by */
    const char *spent_uid;       /* kvrecover.io/failed-uid: an incident handled */
    const char *last_failed_uid; /* its last VMI seen Failed (by this process) */
    double down_seen;            /* when this process first saw it should run
                                    without a Running VMI */
};

/* Its VMI (the one cache_vm_vmi() gives), when exists. */
struct health_vmi {
    int exists;
    const char *uid;
    enum cache_phase phase;
    const char *node; /* status.nodeName, or NULL */
    int deleting;     /* metadata.deletionTimestamp set */
};

/* The node its VMI is on, when exists (the cache knows it). */
struct health_node {
    int exists;
    enum cache_cond ready; /* the Ready condition */
    double ready_since;    /* its lastTransitionTime, 0 unknown */
    double heartbeat;      /* kubevirt.io/heartbeat, < 0 without */
};

#define HEALTH_REASON_MAX 192

/* What health_eval() says. */
struct health_verdict {
    enum health_state state;
    enum health_trigger trigger;
    const char *failed_uid;         /* the uid the incident is about (borrowed from the
                                       input); never NULL when trigger != HEALTH_NONE */
    int down;                       /* counts towards a storm: CrashLooping, CannotStart,
                                       NodeLost, Failed, or a trigger */
    int not_running;                /* it should run and has no Running VMI: the caller
                                       remembers since when (health_vm.down_seen) */
    uint64_t wait_ms;               /* a trigger pending: it fires in this long; else 0 */
    double since;                   /* when the state began, as far as known; 0 */
    double trigger_at;              /* when a pending trigger fires (wall); 0 */
    char reason[HEALTH_REASON_MAX]; /* KubeVirt's signal in words */
};

/**
 * The verdict on vm (with its VMI vmi and that VMI's node, each zeroed when
 * absent) under cfg at wall-clock time now. Fills *out; see the top of this
 * file for the rules.
 */
void health_eval(const struct health_config *cfg, const struct health_vm *vm,
                 const struct health_vmi *vmi, const struct health_node *node, double now,
                 struct health_verdict *out);

/** "Running", "Starting", "Restarting", "CrashLooping", "CannotStart",
 *  "NodeLost", "Failed", "Stopped", "Replaced". */
const char *health_state_name(enum health_state s);

/** "", "Immediate", "FailedNotRestarted", "CrashLoop", "RestartTimeout",
 *  "NodeLoss". */
const char *health_trigger_name(enum health_trigger t);

/** Whether printableStatus p says KubeVirt cannot start the VM (the
 *  RestartTimeout list). */
int health_cannot_start(const char *p);

#endif
