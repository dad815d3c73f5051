/*
 * env — what a reconcile works with: the store, the API client, the book of
 * decisions, and the controller's callbacks.
 *
 * incident_reconcile(), status_reconcile() and capture_vm() all take one, so it
 * stands apart from recover.h: capture and status need the environment,
 * not the recovery reconcile. Plain value types and forward declarations
 * only, so that including it costs nothing.
 */
#ifndef KVR_ENV_H
#define KVR_ENV_H

struct cache;
struct event_ref;
struct kube;
struct recover_book;

/* Receives an Event to record (asynchronously, best effort); obj and the
 * strings are borrowed for the call. */
typedef void (*recover_event_fn)(void *ud, const struct event_ref *obj, const char *type,
                                 const char *reason, const char *message);

/* What a reconcile works with. Borrowed pointers; the controller owns them.
 * incident_reconcile(), status_reconcile() and capture_vm() share it. */
struct recover_env {
    struct cache *cache;       /* the store the reflectors fill */
    struct kube *kube;         /* the API client */
    struct recover_book *book; /* shared state between reconciles */
    recover_event_fn event;    /* may be NULL: no Events */
    int (*leading)(void *ud);  /* may be NULL: always leading */
    /* A policy's status (and the dashboard) needs recomputing; may be NULL. */
    void (*changed)(void *ud, const char *ns, const char *policy);
    void *ud; /* passed to the callbacks */
    /* --default-service-account: the ServiceAccount, in the policy's
     * namespace, that a write made for a policy naming none is made as;
     * NULL: such writes are made as the controller itself. */
    const char *default_service_account;
};

#endif
