/*
 * lease_test — for unit tests only: the election's pure pieces (reading a
 * Lease, the decision table, the objects written). Only lease.c and tests
 * include this header (make lint checks).
 */
#ifndef KVR_LEASE_TEST_H
#define KVR_LEASE_TEST_H

#include <time.h>

#include <cjson/cJSON.h>

/* The fields of a Lease the election reads. Strings are owned. */
struct lease_record {
    char *holder;           /* spec.holderIdentity; "" when absent (released) */
    long duration_s;        /* spec.leaseDurationSeconds; 0 when absent */
    long transitions;       /* spec.leaseTransitions; 0 when absent */
    char *acquire_time;     /* spec.acquireTime as the server sent it, or NULL */
    char *resource_version; /* metadata.resourceVersion; never NULL */
};

/* What to do with a Lease, given what we see. */
enum lease_decision {
    LEASE_CREATE,  /* there is no Lease: create it, held by us */
    LEASE_RENEW,   /* we hold it: write a new renewTime */
    LEASE_ACQUIRE, /* released or expired: take it over (transitions + 1) */
    LEASE_WAIT,    /* another holder's record is still valid */
};

/**
 * Reads obj (a Lease as the API server returns it) into *rec. Returns 0, or
 * -EINVAL (with *rec zeroed) when obj is not an object with
 * metadata.resourceVersion or a field has the wrong type. Free with
 * lease__record_free().
 */
int lease__record_parse(const cJSON *obj, struct lease_record *rec);

/** Frees the strings of rec and zeroes it. NULL is fine. */
void lease__record_free(struct lease_record *rec);

/**
 * The decision for identity, given rec (NULL: the Lease does not exist) that
 * this replica has seen unchanged for unchanged_ms on its monotonic clock. A
 * record is expired once unchanged_ms reaches its leaseDurationSeconds (or
 * default_duration_ms when it has none). Pure.
 */
enum lease_decision lease__decide(const struct lease_record *rec, const char *identity,
                                  long unchanged_ms, long default_duration_ms);

/**
 * The object to write for decision d (LEASE_CREATE, LEASE_RENEW or
 * LEASE_ACQUIRE) at wall-clock time now: current (borrowed; NULL for
 * LEASE_CREATE) is copied with its metadata, resourceVersion included, and
 * only the spec fields the election owns are set, so that anything else on
 * the object survives. Renewing keeps acquireTime and leaseTransitions;
 * acquiring sets acquireTime and adds one transition. Returns a new object
 * (cJSON_Delete), or NULL for LEASE_WAIT.
 */
cJSON *lease__build(enum lease_decision d, const cJSON *current, const struct lease_record *rec,
                    const char *ns, const char *name, const char *identity, long duration_s,
                    const struct timespec *now);

/**
 * The released form of current (borrowed), as client-go writes it on
 * ReleaseOnCancel: holderIdentity "", leaseDurationSeconds 1, acquireTime and
 * renewTime now, leaseTransitions kept. Returns a new object.
 */
cJSON *lease__build_release(const cJSON *current, const struct timespec *now);

#endif
