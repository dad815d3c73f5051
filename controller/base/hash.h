/*
 * hash — FNV-1a, 64 bits: the one hash of kvrecover.
 *
 * Used where a value is kept or compared across processes (the 10 hex
 * digits in a replacement's name, a captured ConfigMap's digest, the
 * capture fingerprint) and for the buckets of in-memory tables (the work
 * queue, yaml's duplicate-key set, sim's string table, the Event recorder's
 * slots). The values must never change: a restarted controller finds the
 * replacements it made earlier by name, and a digest written into a
 * ConfigMap is compared by the next version. tests/unit/test_hash.c pins
 * them. Not for anything an attacker may choose keys against at scale.
 */
#ifndef KVR_HASH_H
#define KVR_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a's 64-bit offset basis: the start of a name's, a digest's and a
 * fingerprint's hash. */
#define HASH_FNV_INIT 14695981039346656037ull

/* The start the in-memory tables have always used: the offset basis with
 * its last digit missing. Any start spreads keys as well; this one is kept
 * so that every value stays what it was. */
#define HASH_TABLE_INIT 1469598103934665603ull

/** Continues hash h over p[0..n) and returns it (start from one of the
 *  _INIT values). */
uint64_t hash_fnv(uint64_t h, const void *p, size_t n);

/** Continues h over the bytes of s, not its terminator; NULL adds nothing. */
uint64_t hash_fnv_str(uint64_t h, const char *s);

/** Continues h over s as one field of several: its bytes and its
 *  terminator, so that "ab","c" and "a","bc" differ; NULL is one 0xff byte,
 *  so that it differs from "". */
uint64_t hash_fnv_field(uint64_t h, const char *s);

#endif
