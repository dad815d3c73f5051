/*
 * event — Kubernetes Events about our objects, as `kubectl describe` shows.
 *
 * A small recorder in the manner of client-go's: an Event is created for the
 * first occurrence of (object, type, reason, message); a repeat within the
 * recorder's memory bumps the existing Event's count and lastTimestamp instead
 * of creating another. Recording is best effort: a failure is logged, never
 * returned to the reconciler, because an Event is never worth a retry of the
 * decision it describes.
 *
 * Must never: create Events outside the involved object's namespace; block
 * for long (one API call per record).
 */
#ifndef KVR_EVENT_H
#define KVR_EVENT_H

#include "kube/kube.h"

struct event_recorder; /* opaque, thread-safe */

/* The object an Event is about. Plain value type; strings borrowed. */
struct event_ref {
    const char *api_version; /* "kvrecover.io/v1alpha1", "kubevirt.io/v1" */
    const char *kind;        /* "RecoveryPolicy", "VirtualMachineInstance" */
    const char *ns;          /* namespace; the Event is created there */
    const char *name;
    const char *uid; /* may be NULL */
};

/** A recorder posting through k (borrowed; must outlive it) as component
 *  (e.g. "kvrecover-controller") and instance (the replica's identity). */
struct event_recorder *event_recorder_new(struct kube *k, const char *component,
                                          const char *instance);

/** Frees the recorder. NULL is fine. */
void event_recorder_free(struct event_recorder *r);

/**
 * Records an Event: type "Normal" or "Warning", reason a CamelCase word
 * ("Recovered", "NoEligibleCandidate", ...), message printf-formatted (cut
 * at 1 KiB, as the API server would refuse much longer). Logged on failure.
 */
void event_record(struct event_recorder *r, const struct event_ref *obj, const char *type,
                  const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
