/*
 * Unit tests for the random source: draws stay in [0, 1) and spread over it,
 * the step is the xorshift64* it always was, and seeds are never 0 and
 * differ between objects.
 */
#include <stdint.h>

#include "base/rand.h"
#include "harness.h"

TEST(draws_are_in_0_1_and_spread)
{
    static const char salt;
    uint64_t s = rand_seed(&salt);
    int low = 0, high = 0;

    for (int i = 0; i < 10000; i++) {
        double r = rand_uniform(&s);

        CHECK(r >= 0 && r < 1);
        low += r < 0.5;
        high += r >= 0.5;
    }
    CHECK(low > 4000 && high > 4000);
}

TEST(the_step_is_xorshift64_star)
{
    uint64_t s = 1;

    CHECK_NEAR(rand_uniform(&s), 0.28083505005035947, 1e-15);
    CHECK(s == 0x2000001ull);
}

TEST(seeds_are_not_zero_and_differ_by_salt)
{
    static const char a, b;
    uint64_t sa = rand_seed(&a), sb = rand_seed(&b);

    CHECK(sa != 0 && sb != 0);
    CHECK(sa != sb);
}
