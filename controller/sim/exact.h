/*
 * exact — exact decimals and big naturals, so that scores that are equal in
 * exact arithmetic compare equal (CONTRACT.md "The offline CLI": 0.1 + 0.2
 * weighs exactly what 0.3 weighs).
 *
 * A weight or a quantity reaches the engine as a double: cJSON keeps only
 * the double of a JSON number. The decimal a person wrote is recovered from
 * it as the shortest decimal of at most 17 significant digits that reads
 * back as the same double (exact_dec_from_double()). Every decimal of at
 * most 15 significant digits survives the trip through a double unchanged
 * (DBL_DIG is 15: two such decimals never share a double), so the recovery
 * is exact for every weight policy.h accepts (at most 1000 with at most 9
 * digits after the point: 13 significant digits) and for every quantity
 * written with 15 significant digits or fewer. Longer quantities become the
 * decimal of their double, the same on every side, so equal inputs still
 * compare equal.
 *
 * The big naturals are a fixed-size array of 32-bit limbs with the few
 * operations an exact comparison of two fractions needs (multiply, add,
 * compare). Their capacity is a proven bound for sim.c's use (see
 * EXACT_BIG_LIMBS); exceeding it is a programming error and aborts.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef KVR_EXACT_H
#define KVR_EXACT_H

#include <stdint.h>

/* A non-negative decimal, digits x 10^exp, with digits < 10^18 and no
 * trailing zero in digits (0 is {0, 0}), so that equal values have equal
 * representations. */
struct exact_dec {
    uint64_t digits;
    int32_t exp;
};

/*
 * Limbs of a big natural: 24 x 32 = 768 bits. sim.c's largest number is a
 * cross product P1 * Q2 of two scores P/Q, each below 2^342 (sim.c, "the
 * exact comparison", proves it), so below 2^684: 22 limbs.
 */
#define EXACT_BIG_LIMBS 24

/* A big natural: limb[0..n) little-endian, limb[n-1] != 0 unless n == 0. */
struct exact_big {
    uint32_t n;
    uint32_t limb[EXACT_BIG_LIMBS];
};

/**
 * Reads a plain decimal as YAML and JSON write numbers: digits, an optional
 * '.' and fraction, an optional exponent ("0.3", "1e3", "2.5E-1", ".5", a
 * leading '+'). No sign '-', no spaces, no hex, inf or nan. Returns 0;
 * -EINVAL when s is not such a number; -ERANGE when it has more than 18
 * significant digits or its exponent is beyond +-400.
 */
int exact_dec_parse(const char *s, struct exact_dec *out);

/**
 * The shortest decimal (at most 17 significant digits) that reads back as
 * v, for a finite v >= 0 (anything else gives 0). See the top of this file
 * for when that is the decimal the user wrote.
 */
struct exact_dec exact_dec_from_double(double v);

/**
 * d rounded to at most scale digits after the point, to nearest with halves
 * away from zero; a value > 0 never rounds to 0 but to 10^-scale (as
 * Kubernetes rounds a quantity finer than its precision up, never to 0).
 */
struct exact_dec exact_dec_round(struct exact_dec d, int scale);

/** The number of digits after the point: max(0, -exp). */
int exact_dec_scale(struct exact_dec d);

/**
 * d x 10^scale as an integer into *out. Returns 0; -ERANGE when that is not
 * an integer or does not fit 63 bits.
 */
int exact_dec_units(struct exact_dec d, int scale, int64_t *out);

/** The double nearest to d (correctly rounded, through strtod()). */
double exact_dec_double(struct exact_dec d);

/** Whether a < b, a == b or a > b: -1, 0 or 1. */
int exact_dec_cmp(struct exact_dec a, struct exact_dec b);

/** b = v. */
void exact_big_set(struct exact_big *b, uint64_t v);

/** b *= 10^e (e >= 0). Aborts past EXACT_BIG_LIMBS. */
void exact_big_pow10(struct exact_big *b, int e);

/** out = a * b; out may not be a or b. Aborts past EXACT_BIG_LIMBS. */
void exact_big_mul(struct exact_big *out, const struct exact_big *a, const struct exact_big *b);

/** a += b. Aborts past EXACT_BIG_LIMBS. */
void exact_big_add(struct exact_big *a, const struct exact_big *b);

/** -1, 0 or 1 as a < b, a == b, a > b. */
int exact_big_cmp(const struct exact_big *a, const struct exact_big *b);

#endif
