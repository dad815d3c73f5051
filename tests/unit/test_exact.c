/*
 * exact: decimals read from text and recovered from doubles, rounding to a
 * scale, and the big naturals that compare two fractions exactly.
 */
#include "harness.h"

#include <errno.h>
#include <string.h>

#include "sim/exact.h"

/* Whether text reads as digits x 10^exp. */
static int reads_as(const char *text, uint64_t digits, int exp)
{
    struct exact_dec d = {99, 99};
    int rc = exact_dec_parse(text, &d);

    if (rc || d.digits != digits || d.exp != exp) {
        fprintf(stderr, "%s: rc %d, %llu e%d\n", text, rc, (unsigned long long)d.digits,
                (int)d.exp);
        return 0;
    }
    return 1;
}

TEST(exact_decimals_read_as_written_without_trailing_zeros)
{
    struct exact_dec d;

    CHECK(reads_as("0.3", 3, -1));
    CHECK(reads_as("0.30", 3, -1));
    CHECK(reads_as("300", 3, 2));
    CHECK(reads_as("10.5", 105, -1));
    CHECK(reads_as(".5", 5, -1));
    CHECK(reads_as("+2.5E-1", 25, -2));
    CHECK(reads_as("1e3", 1, 3));
    CHECK(reads_as("0", 0, 0));
    CHECK(reads_as("0.000", 0, 0));
    CHECK(reads_as("0.300000001", 300000001, -9));
    /* trailing zeros are not significant digits; 19 significant ones are */
    CHECK(reads_as("1.000000000000000000000000", 1, 0));
    CHECK_INT(exact_dec_parse("1234567890123456789", &d), -ERANGE);
    CHECK_INT(exact_dec_parse("1e500", &d), -ERANGE);
    CHECK_INT(exact_dec_parse("-1", &d), -EINVAL);
    CHECK_INT(exact_dec_parse("0x10", &d), -EINVAL);
    CHECK_INT(exact_dec_parse("1e", &d), -EINVAL);
    CHECK_INT(exact_dec_parse(".", &d), -EINVAL);
    CHECK_INT(exact_dec_parse("", &d), -EINVAL);
    CHECK_INT(exact_dec_parse("nan", &d), -EINVAL);
    CHECK_INT(exact_dec_parse("1 ", &d), -EINVAL);
}

TEST(exact_decimals_come_back_from_doubles)
{
    struct exact_dec d;

    d = exact_dec_from_double(0.1);
    CHECK(d.digits == 1 && d.exp == -1);
    d = exact_dec_from_double(0.1 + 0.2); /* 0.30000000000000004, not 0.3 */
    CHECK(d.digits == 30000000000000004ull && d.exp == -17);
    d = exact_dec_from_double(999.123456789);
    CHECK(d.digits == 999123456789ull && d.exp == -9);
    d = exact_dec_from_double(4294967296.0);
    CHECK(d.digits == 4294967296ull && d.exp == 0);
    d = exact_dec_from_double(1.0 / 3.0);
    CHECK(exact_dec_double(d) == 1.0 / 3.0);
    d = exact_dec_from_double(0);
    CHECK(d.digits == 0 && d.exp == 0);
    d = exact_dec_from_double(-1);
    CHECK(d.digits == 0);
}

TEST(exact_decimals_round_to_a_scale_never_to_zero)
{
    struct exact_dec d = {123456789012ull, -12};

    d = exact_dec_round(d, 9); /* 0.123456789012 */
    CHECK(d.digits == 123456789 && d.exp == -9);
    d = exact_dec_round((struct exact_dec){1234567895ull, -10}, 9);
    CHECK(d.digits == 12345679 && d.exp == -8); /* 0.12345679, half away */
    d = exact_dec_round((struct exact_dec){1, -12}, 9);
    CHECK(d.digits == 1 && d.exp == -9); /* 1p is 1n, not 0 */
    d = exact_dec_round((struct exact_dec){999999999999999999ull, -27}, 9);
    CHECK(d.digits == 1 && d.exp == -9);
    d = exact_dec_round((struct exact_dec){5, -1}, 9);
    CHECK(d.digits == 5 && d.exp == -1);
    CHECK_INT(exact_dec_scale((struct exact_dec){5, -3}), 3);
    CHECK_INT(exact_dec_scale((struct exact_dec){5, 3}), 0);
}

TEST(exact_decimal_units_and_order)
{
    int64_t u = 0;

    CHECK_INT(exact_dec_units((struct exact_dec){3, -1}, 9, &u), 0);
    CHECK(u == 300000000);
    CHECK_INT(exact_dec_units((struct exact_dec){1, 3}, 9, &u), 0);
    CHECK(u == 1000000000000ll);
    CHECK_INT(exact_dec_units((struct exact_dec){1, -10}, 9, &u), -ERANGE);
    CHECK_INT(exact_dec_units((struct exact_dec){1, 10}, 9, &u), -ERANGE);
    CHECK_INT(exact_dec_cmp((struct exact_dec){3, -1}, (struct exact_dec){3, -1}), 0);
    CHECK_INT(exact_dec_cmp((struct exact_dec){3, -1}, (struct exact_dec){29, -2}), 1);
    CHECK_INT(exact_dec_cmp((struct exact_dec){1, 2}, (struct exact_dec){99, 0}), 1);
    CHECK_INT(exact_dec_cmp((struct exact_dec){99, 0}, (struct exact_dec){1, 2}), -1);
    CHECK_INT(exact_dec_cmp((struct exact_dec){0, 0}, (struct exact_dec){1, -30}), -1);
    CHECK_INT(exact_dec_cmp((struct exact_dec){123, -2}, (struct exact_dec){1231, -3}), -1);
}

TEST(exact_big_naturals_multiply_add_and_compare)
{
    struct exact_big a, b, c, d;

    /* (2^64 - 1)^2 = 2^128 - 2^65 + 1, against (2^64 - 2) * 2^64 + 1 */
    exact_big_set(&a, UINT64_MAX);
    exact_big_mul(&c, &a, &a);
    CHECK_INT((int)c.n, 4);
    CHECK(c.limb[0] == 1 && c.limb[1] == 0 && c.limb[2] == 0xfffffffe && c.limb[3] == 0xffffffff);
    exact_big_set(&b, 1);
    exact_big_add(&c, &b);
    CHECK(c.limb[0] == 2);
    /* 10^30 two ways */
    exact_big_set(&a, 1000000000000000ull);
    exact_big_mul(&d, &a, &a);
    exact_big_set(&b, 1);
    exact_big_pow10(&b, 30);
    CHECK_INT(exact_big_cmp(&d, &b), 0);
    exact_big_add(&d, &b);
    CHECK_INT(exact_big_cmp(&d, &b), 1);
    CHECK_INT(exact_big_cmp(&b, &d), -1);
    exact_big_set(&a, 0);
    exact_big_mul(&c, &a, &d);
    CHECK_INT((int)c.n, 0);
    CHECK_INT(exact_big_cmp(&c, &a), 0);
}
