/*
 * exact — exact decimals and big naturals. See exact.h.
 *
 * Must never: read past a string, overflow a limb array silently (it
 * aborts: the bound is proven by the caller), or allocate.
 */
#include "sim/exact.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 10^18: digits stay below it. */
#define EXACT__DIGITS_END 1000000000000000000ull

/* Drops trailing zeros of d.digits into d.exp; 0 is {0, 0}. */
static struct exact_dec exact__norm(struct exact_dec d)
{
    if (!d.digits)
        return (struct exact_dec){0, 0};
    while (d.digits % 10 == 0) {
        d.digits /= 10;
        d.exp++;
    }
    return d;
}

int exact_dec_parse(const char *s, struct exact_dec *out)
{
    uint64_t digits = 0;
    int sig = 0, seen = 0, eneg = 0;
    long exp = 0, e = 0, pending = 0;

    if (*s == '+')
        s++;
    for (int frac = 0;; s++) {
        if (*s == '.' && !frac) {
            frac = 1;
            continue;
        }
        if (*s < '0' || *s > '9')
            break;
        seen = 1;
        /* every fraction digit moves the point; bounded so that a long run
         * of zeros cannot overflow */
        if (frac && exp > -100000)
            exp--;
        if (*s == '0') {
            /* leading zeros are nothing; others wait for a digit after them,
             * so that trailing zeros are not significant */
            pending += sig > 0;
            continue;
        }
        if (sig + pending + 1 > 18)
            return -ERANGE;
        for (; pending > 0; pending--, sig++)
            digits *= 10;
        digits = digits * 10 + (uint64_t)(*s - '0');
        sig++;
    }
    if (!seen)
        return -EINVAL;
    if (*s == 'e' || *s == 'E') {
        int any = 0;

        s++;
        if (*s == '+' || *s == '-')
            eneg = *s++ == '-';
        for (; *s >= '0' && *s <= '9'; s++) {
            any = 1;
            if (e < 100000)
                e = e * 10 + (*s - '0');
        }
        if (!any)
            return -EINVAL;
    }
    if (*s)
        return -EINVAL;
    e = (eneg ? -e : e) + exp + pending;
    if (digits && (e > 400 || e < -400))
        return -ERANGE;
    *out = exact__norm((struct exact_dec){digits, digits ? (int32_t)e : 0});
    return 0;
}

/* The decimal that "%.*e" prints for v with prec digits after the point. */
static struct exact_dec exact__print(double v, int prec)
{
    char buf[64];
    struct exact_dec d = {0, 0};

    snprintf(buf, sizeof(buf), "%.*e", prec, v);
    /* "%.16e" of a finite v >= 0 is at most 17 digits and an exponent */
    if (exact_dec_parse(buf, &d))
        return (struct exact_dec){0, 0};
    return d;
}

struct exact_dec exact_dec_from_double(double v)
{
    if (!isfinite(v) || !(v > 0))
        return (struct exact_dec){0, 0};
    /* 15 digits first: every decimal this short that reads back as v is the
     * only one (DBL_DIG), and it is what people write; 17 always reads back */
    for (int prec = 14; prec < 16; prec++) {
        struct exact_dec d = exact__print(v, prec);

        if (exact_dec_double(d) == v)
            return d;
    }
    return exact__print(v, 16);
}

struct exact_dec exact_dec_round(struct exact_dec d, int scale)
{
    int drop = -scale - d.exp;
    uint64_t p = 1;

    if (drop <= 0 || !d.digits)
        return d;
    if (drop > 18) /* below half of 10^-scale: digits < 10^18 */
        return (struct exact_dec){1, -scale};
    for (int i = 0; i < drop; i++)
        p *= 10;
    d.digits = (d.digits + p / 2) / p;
    d.exp = -scale;
    if (!d.digits)
        d.digits = 1;
    /* a carry can make 10^18 - 1 into 10^18: norm divides it back */
    return exact__norm(d);
}

int exact_dec_scale(struct exact_dec d)
{
    return d.exp < 0 ? -d.exp : 0;
}

int exact_dec_units(struct exact_dec d, int scale, int64_t *out)
{
    int e = d.exp + scale;
    uint64_t v = d.digits;

    if (!v) {
        *out = 0;
        return 0;
    }
    if (e < 0)
        return -ERANGE;
    for (; e > 0; e--) {
        if (v > (uint64_t)INT64_MAX / 10)
            return -ERANGE;
        v *= 10;
    }
    if (v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

double exact_dec_double(struct exact_dec d)
{
    char buf[48];

    snprintf(buf, sizeof(buf), "%llue%d", (unsigned long long)d.digits, (int)d.exp);
    return strtod(buf, NULL);
}

/* The number of decimal digits of v > 0. */
static int exact__ndigits(uint64_t v)
{
    int n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

int exact_dec_cmp(struct exact_dec a, struct exact_dec b)
{
    int la, lb;

    if (!a.digits || !b.digits)
        return (a.digits > 0) - (b.digits > 0);
    /* the magnitudes first: the position of the leading digit */
    la = exact__ndigits(a.digits);
    lb = exact__ndigits(b.digits);
    if (la + a.exp != lb + b.exp)
        return la + a.exp < lb + b.exp ? -1 : 1;
    /* the same magnitude: pad the shorter to the same number of digits (at
     * most 18, so that it fits) */
    for (; la < lb; la++)
        a.digits *= 10;
    for (; lb < la; lb++)
        b.digits *= 10;
    return (a.digits > b.digits) - (a.digits < b.digits);
}

/* ---- big naturals ---- */

static void exact__trim(struct exact_big *b)
{
    while (b->n && !b->limb[b->n - 1])
        b->n--;
}

void exact_big_set(struct exact_big *b, uint64_t v)
{
    b->limb[0] = (uint32_t)v;
    b->limb[1] = (uint32_t)(v >> 32);
    b->n = 2;
    exact__trim(b);
}

/* b *= m (m < 2^32). */
static void exact__mul_small(struct exact_big *b, uint32_t m)
{
    uint64_t carry = 0;

    for (uint32_t i = 0; i < b->n; i++) {
        uint64_t t = (uint64_t)b->limb[i] * m + carry;

        b->limb[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry) {
        if (b->n >= EXACT_BIG_LIMBS)
            abort();
        b->limb[b->n++] = (uint32_t)carry;
    }
    exact__trim(b);
}

void exact_big_pow10(struct exact_big *b, int e)
{
    for (; e >= 9; e -= 9)
        exact__mul_small(b, 1000000000u);
    for (; e > 0; e--)
        exact__mul_small(b, 10u);
}

void exact_big_mul(struct exact_big *out, const struct exact_big *a, const struct exact_big *b)
{
    uint32_t n = a->n + b->n;

    if (!a->n || !b->n) {
        out->n = 0;
        return;
    }
    if (n > EXACT_BIG_LIMBS)
        abort();
    memset(out->limb, 0, n * sizeof(out->limb[0]));
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t carry = 0;

        for (uint32_t j = 0; j < b->n; j++) {
            uint64_t t = (uint64_t)a->limb[i] * b->limb[j] + out->limb[i + j] + carry;

            out->limb[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        out->limb[i + b->n] = (uint32_t)carry;
    }
    out->n = n;
    exact__trim(out);
}

void exact_big_add(struct exact_big *a, const struct exact_big *b)
{
    uint32_t n = a->n > b->n ? a->n : b->n;
    uint64_t carry = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t t = carry + (i < a->n ? a->limb[i] : 0) + (i < b->n ? b->limb[i] : 0);

        a->limb[i] = (uint32_t)t;
        carry = t >> 32;
    }
    a->n = n;
    if (carry) {
        if (n >= EXACT_BIG_LIMBS)
            abort();
        a->limb[a->n++] = (uint32_t)carry;
    }
}

int exact_big_cmp(const struct exact_big *a, const struct exact_big *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (uint32_t i = a->n; i-- > 0;)
        if (a->limb[i] != b->limb[i])
            return a->limb[i] < b->limb[i] ? -1 : 1;
    return 0;
}
