/*
 * sim_test — for unit tests only: a look into a finished pool's name index.
 * Only sim.c and tests include this header (make lint checks).
 */
#ifndef KVR_SIM_TEST_H
#define KVR_SIM_TEST_H

#include <stddef.h>

#include "sim/sim.h"

/** Member i's index by name in a finished pool: 0 and *i set, or -ENOENT. */
int sim_pool_find(const struct sim_pool *p, const char *name, size_t *i);

#endif
