/*
 * rand — the one random source: xorshift64*, for jitter.
 *
 * Retry backoff, watch timeouts and election retries draw from it so that
 * replicas and reflectors started together do not act in step. Nothing
 * here is fit for secrets. The state is the caller's, one uint64_t per
 * object, and is not locked.
 */
#ifndef KVR_RAND_H
#define KVR_RAND_H

#include <stdint.h>

/** A non-zero seed mixed from the wall clock (clock.h), the process id and
 *  salt (an object's address, so that two objects made at once differ). */
uint64_t rand_seed(const void *salt);

/** Advances *state (from rand_seed(), never 0) one xorshift64* step and
 *  returns a uniform double in [0, 1). */
double rand_uniform(uint64_t *state);

#endif
