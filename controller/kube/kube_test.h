/*
 * kube_test — for unit tests only: the client's token bucket and its
 * Retry-After parser, pure pieces of kube.c. Only kube.c and tests include
 * this header (make lint checks).
 */
#ifndef KVR_KUBE_TEST_H
#define KVR_KUBE_TEST_H

/* The client-side token bucket: plain value type, no locking of its own. */
struct kube_bucket {
    double rate;   /* tokens per second; <= 0: unlimited */
    double burst;  /* capacity */
    double tokens; /* available now (may go negative: reserved) */
    double last;   /* time of the last refill, seconds (monotonic) */
};

/** Initialises b full. */
void kube__bucket_init(struct kube_bucket *b, double rate, int burst, double now);

/** Takes one token at time now; returns how many seconds the caller must
 *  wait before sending (0 when a token was available). */
double kube__bucket_reserve(struct kube_bucket *b, double now);

/** Parses a Retry-After header value (delta-seconds or an HTTP-date, relative
 *  to now, epoch seconds); returns seconds >= 0, capped at
 *  KUBE_MAX_RETRY_AFTER_S, or -1 when unparsable. */
long kube__parse_retry_after(const char *value, long now);

#endif
