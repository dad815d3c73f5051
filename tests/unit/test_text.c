/*
 * text: normalising categories and values, and quoting untrusted input for
 * one-line messages.
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "base/text.h"

static int norm_is(const char *in, const char *want)
{
    char *s = text_norm(in);
    int ok = strcmp(s, want) == 0;

    if (!ok)
        fprintf(stderr, "text_norm(\"%s\") = \"%s\", want \"%s\"\n", in, s, want);
    free(s);
    return ok;
}

static int quote_is(const char *in, const char *want)
{
    char *s = text_quote(in);
    int ok = strcmp(s, want) == 0;

    if (!ok)
        fprintf(stderr, "text_quote = %s, want %s\n", s, want);
    free(s);
    return ok;
}

TEST(text_norm_trims_and_lower_cases_ascii)
{
    CHECK(norm_is("  MySQL ", "mysql"));
    CHECK(norm_is("\t\r\n\f\vUbuntu-20.04\n", "ubuntu-20.04"));
    CHECK(norm_is("Node JS", "node js"));
    CHECK(norm_is("", ""));
    CHECK(norm_is("   ", ""));
    CHECK(norm_is("already", "already"));
}

TEST(text_norm_keeps_non_ascii_bytes)
{
    /* UTF-8 "É" stays as it is: no locale-dependent case mapping */
    CHECK(norm_is(" \xc3\x89"
                  "Cole ",
                  "\xc3\x89"
                  "cole"));
}

TEST(text_quote_escapes_quotes_backslashes_and_controls)
{
    CHECK(quote_is("plain", "\"plain\""));
    CHECK(quote_is("a\"b\\c", "\"a\\\"b\\\\c\""));
    CHECK(quote_is("a\nb\tc\x01\x7f", "\"a\\nb\\tc\\x01\\x7f\""));
    CHECK(quote_is("", "\"\""));
    CHECK(quote_is(NULL, "null"));
}

TEST(text_quote_cuts_long_input)
{
    char in[200], want[100];

    memset(in, 'x', sizeof(in) - 1);
    in[sizeof(in) - 1] = 0;
    want[0] = '"';
    memset(want + 1, 'x', TEXT_QUOTE_MAX);
    memcpy(want + 1 + TEXT_QUOTE_MAX, "\"...", 5);
    CHECK(quote_is(in, want));
    /* exactly TEXT_QUOTE_MAX bytes: no "..." */
    in[TEXT_QUOTE_MAX] = 0;
    want[1 + TEXT_QUOTE_MAX + 1] = 0;
    CHECK(quote_is(in, want));
}

TEST(text_json_type_names_every_kind)
{
    cJSON *o =
        cJSON_Parse("{\"m\": {}, \"l\": [], \"s\": \"x\", \"n\": 1, \"b\": true, \"z\": null}");

    CHECK(o);
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "m")), "a mapping");
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "l")), "a list");
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "s")), "a string");
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "n")), "a number");
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "b")), "a boolean");
    CHECK_STR(text_json_type(cJSON_GetObjectItemCaseSensitive(o, "z")), "null");
    CHECK_STR(text_json_type(NULL), "null");
    cJSON_Delete(o);
}

static int name_is(const char *in, const char *want)
{
    char *s = text_name(in);
    int ok = strcmp(s, want) == 0;

    if (!ok)
        fprintf(stderr, "text_name = %s, want %s\n", s, want);
    free(s);
    return ok;
}

TEST(text_name_quotes_only_what_could_mislead)
{
    char longest[TEXT_QUOTE_MAX + 2];

    CHECK(name_is("vm-005", "vm-005"));
    CHECK(name_is("kvrecover.io/vm", "kvrecover.io/vm"));
    CHECK(name_is("", "\"\""));
    CHECK(name_is("a b", "\"a b\""));
    CHECK(name_is("a:b", "\"a:b\""));
    CHECK(name_is("a]b", "\"a]b\""));
    CHECK(name_is("a\x01", "\"a\\x01\""));
    CHECK(name_is(NULL, "null"));
    memset(longest, 'x', sizeof(longest) - 1);
    longest[TEXT_QUOTE_MAX] = '\0';
    CHECK(name_is(longest, longest));
    longest[TEXT_QUOTE_MAX] = 'x';
    longest[TEXT_QUOTE_MAX + 1] = '\0';
    {
        char *q = text_name(longest);

        CHECK(q[0] == '"' && strcmp(q + strlen(q) - 4, "\"...") == 0);
        free(q);
    }
}

TEST(text_check_len_just_under_and_just_over)
{
    char *err = NULL;

    CHECK_INT(text_check_len("abcd", 4, "data.x", &err), 0);
    CHECK(err == NULL);
    CHECK_INT(text_check_len(NULL, 0, "data.x", &err), 0);
    CHECK_INT(text_check_len("", 0, "data.x", &err), 0);
    CHECK_INT(text_check_len("abcde", 4, "data.x", &err), -EINVAL);
    CHECK_STR(err, "data.x: too large: 5 bytes (at most 4)");
    free(err);
}
