/*
 * quantity: the Kubernetes quantity grammar, refusals with messages that
 * quote the input, values from JSON and YAML, and formatting for people.
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "base/yaml.h"
#include "sim/quantity.h"

/* Parses s; returns the value, or -1 when refused (err freed). */
static double q(const char *s)
{
    double v = -2;
    char *err = NULL;

    if (quantity_parse(s, &v, &err)) {
        free(err);
        return -1;
    }
    return v;
}

/* Whether quantity_parse() refuses s with exactly the message want. */
static int refused_with(const char *s, const char *want)
{
    double v;
    char *err = NULL;
    int ok = quantity_parse(s, &v, &err) == -EINVAL && err && strcmp(err, want) == 0;

    if (!ok)
        fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", s, err ? err : "(accepted)", want);
    free(err);
    return ok;
}

TEST(quantity_parses_the_contract_examples)
{
    CHECK_NEAR(q("500m"), 0.5, 0);
    CHECK_NEAR(q("2"), 2, 0);
    CHECK_NEAR(q("1.5"), 1.5, 0);
    CHECK_NEAR(q("4Gi"), 4294967296.0, 0);
    CHECK_NEAR(q("4096Mi"), 4294967296.0, 0);
    CHECK_NEAR(q("1G"), 1e9, 0);
    CHECK_NEAR(q("1e3"), 1000, 0);
}

TEST(quantity_parses_every_suffix)
{
    CHECK_NEAR(q("1n"), 1e-9, 1e-24);
    CHECK_NEAR(q("1u"), 1e-6, 1e-21);
    CHECK_NEAR(q("1k"), 1e3, 0);
    CHECK_NEAR(q("1M"), 1e6, 0);
    CHECK_NEAR(q("1T"), 1e12, 0);
    CHECK_NEAR(q("1P"), 1e15, 0);
    CHECK_NEAR(q("1E"), 1e18, 0);
    CHECK_NEAR(q("1Ki"), 1024, 0);
    CHECK_NEAR(q("1Ti"), 1099511627776.0, 0);
    CHECK_NEAR(q("1Pi"), 1125899906842624.0, 0);
    CHECK_NEAR(q("1Ei"), 1152921504606846976.0, 0);
    CHECK_NEAR(q("2E-2"), 0.02, 1e-18);
    CHECK_NEAR(q("1e+2"), 100, 0);
    CHECK_NEAR(q("+3"), 3, 0);
    CHECK_NEAR(q(".5"), 0.5, 0);
    CHECK_NEAR(q("5."), 5, 0);
    CHECK_NEAR(q("0"), 0, 0);
    CHECK_NEAR(q("0.25Gi"), 268435456.0, 0);
}

TEST(quantity_refuses_garbage)
{
    static const char *const bad[] = {"",     " 1",  "1 ",  "abc",  "4Qi",   "1K",    "1ki",
                                      "0x10", "inf", "nan", "1e",   "1e3Mi", "1.2.3", "--1",
                                      "1mi",  "Gi",  ".",   "1 Gi", "1e3.5", "1GiB"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (q(bad[i]) != -1)
            fprintf(stderr, "accepted %s\n", bad[i]);
        CHECK(q(bad[i]) == -1);
    }
}

TEST(quantity_errors_quote_the_input_and_say_what_is_wrong)
{
    CHECK(refused_with("4Qi", "\"4Qi\" is not a valid quantity"));
    CHECK(refused_with("-1", "\"-1\" must not be negative"));
    CHECK(refused_with("-500m", "\"-500m\" must not be negative"));
    CHECK(refused_with("9Ei", "\"9Ei\" is too large (at most 2^63-1)"));
    CHECK(refused_with("1e400", "\"1e400\" is too large (at most 2^63-1)"));
    /* control bytes do not break the one-line message */
    CHECK(refused_with("1\nGi", "\"1\\nGi\" is not a valid quantity"));
}

TEST(quantity_refuses_overflow_at_2_to_the_63)
{
    CHECK(q("8Ei") == -1);
    CHECK(q("9223372036854775808") == -1);
    CHECK_NEAR(q("7Ei"), 7.0 * 1152921504606846976.0, 0);
    CHECK_NEAR(q("9223372036854774784"), 9223372036854774784.0, 0);
}

/* The quantity of a YAML scalar, through the loader, or -1 when refused. */
static double qy(const char *yaml)
{
    cJSON *doc = NULL;
    char *err = NULL;
    double v = -2;

    if (yaml_parse_one(yaml, strlen(yaml), &doc, &err)) {
        free(err);
        return -3;
    }
    if (quantity_from_json(doc, &v, &err)) {
        free(err);
        v = -1;
    }
    cJSON_Delete(doc);
    return v;
}

TEST(quantity_from_yaml_numbers_use_the_text_as_written)
{
    CHECK_NEAR(qy("2"), 2, 0);
    CHECK_NEAR(qy("1e3"), 1000, 0);
    CHECK_NEAR(qy("'4Gi'"), 4294967296.0, 0);
    CHECK_NEAR(qy("4Gi"), 4294967296.0, 0);
    CHECK_NEAR(qy("-1"), -1, 0);
    CHECK_NEAR(qy("{a: 1}"), -1, 0);
    CHECK_NEAR(qy("[1]"), -1, 0);
    CHECK_NEAR(qy("true"), -1, 0);
    CHECK_NEAR(qy("null"), -1, 0);
}

TEST(quantity_from_json_numbers_are_checked)
{
    cJSON *n;
    double v = 0;
    char *err = NULL;

    n = cJSON_CreateNumber(3.5);
    CHECK_INT(quantity_from_json(n, &v, &err), 0);
    CHECK_NEAR(v, 3.5, 0);
    cJSON_Delete(n);
    n = cJSON_CreateNumber(-2);
    CHECK_INT(quantity_from_json(n, &v, &err), -EINVAL);
    CHECK_STR(err, "\"-2\" must not be negative");
    free(err);
    cJSON_Delete(n);
    n = cJSON_CreateNumber(1e300);
    CHECK_INT(quantity_from_json(n, &v, &err), -EINVAL);
    CHECK(strstr(err, "too large") != NULL);
    free(err);
    cJSON_Delete(n);
    n = cJSON_CreateObject();
    CHECK_INT(quantity_from_json(n, &v, &err), -EINVAL);
    CHECK_STR(err, "must be a quantity, not a mapping");
    free(err);
    cJSON_Delete(n);
}

TEST(quantity_format_uses_binary_suffixes_when_exact)
{
    char b[32];

    quantity_format(4294967296.0, b, sizeof(b));
    CHECK_STR(b, "4Gi");
    quantity_format(1536.0 * 1048576.0, b, sizeof(b));
    CHECK_STR(b, "1536Mi");
    quantity_format(0.5, b, sizeof(b));
    CHECK_STR(b, "0.5");
    quantity_format(2, b, sizeof(b));
    CHECK_STR(b, "2");
    quantity_format(1e9, b, sizeof(b));
    CHECK_STR(b, "1e+09");
    quantity_format(4294967296.0, b, 3);
    CHECK_STR(b, "4G");
}
