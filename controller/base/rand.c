/*
 * rand — xorshift64* and its seed. See rand.h.
 */
#include "base/rand.h"

#include <time.h>
#include <unistd.h>

#include "base/clock.h"

uint64_t rand_seed(const void *salt)
{
    struct timespec ts;
    uint64_t x;

    clock_wall_ts(&ts);
    x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() ^
        (uint64_t)(uintptr_t)salt;
    return x != 0 ? x : 0x9e3779b97f4a7c15ULL;
}

double rand_uniform(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
