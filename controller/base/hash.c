/*
 * hash — FNV-1a, 64 bits. See hash.h; the values must never change.
 */
#include "base/hash.h"

#include <string.h>

#define HASH__FNV_PRIME 1099511628211ull

uint64_t hash_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= HASH__FNV_PRIME;
    }
    return h;
}

uint64_t hash_fnv_str(uint64_t h, const char *s)
{
    return s ? hash_fnv(h, s, strlen(s)) : h;
}

uint64_t hash_fnv_field(uint64_t h, const char *s)
{
    return s ? hash_fnv(h, s, strlen(s) + 1) : hash_fnv(h, "\xff", 1);
}
