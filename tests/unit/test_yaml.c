/*
 * yaml: documents, scalar types, aliases and the limits on untrusted input:
 * no aliases in text from the API server, a byte budget on them in files.
 */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "hostile.h"

/* Parses text as the CLI reads a file (aliases within the byte budget). */
static cJSON *parse(const char *text, char **err)
{
    cJSON *docs = NULL;

    *err = NULL;
    if (yaml_parse_opts(text, strlen(text), &yaml_opts_file, &docs, err))
        return NULL;
    return docs;
}

TEST(yaml_multiple_documents_in_order_empty_ones_skipped)
{
    char *err;
    cJSON *d = parse("a: 1\n---\n---\nb: 2\n...\n---\n- x\n", &err);

    CHECK(d);
    CHECK_INT(cJSON_GetArraySize(d), 3);
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "a"));
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 1), "b"));
    CHECK(cJSON_IsArray(cJSON_GetArrayItem(d, 2)));
    cJSON_Delete(d);
}

TEST(yaml_empty_input_is_zero_documents)
{
    char *err;
    cJSON *d = parse("", &err);

    CHECK(d);
    CHECK_INT(cJSON_GetArraySize(d), 0);
    cJSON_Delete(d);
    d = parse("# only a comment\n", &err);
    CHECK(d);
    CHECK_INT(cJSON_GetArraySize(d), 0);
    cJSON_Delete(d);
}

TEST(yaml_scalars_resolve_like_the_core_schema)
{
    char *err;
    cJSON *d = parse("{s: ubuntu-20.04, n: 2, f: 1.10, q: '2', t: true, F: False, z: ~, e: ,"
                     " h: 0x1F, x: 1e3, inf: .inf, str: !!str 12, yes: yes}",
                     &err);
    cJSON *o;

    CHECK(d);
    o = cJSON_GetArrayItem(d, 0);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(o, "s")->valuestring, "ubuntu-20.04");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "n")));
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "n")->valuedouble, 2);
    /* a number keeps its text: 1.10 must not become 1.1 */
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "f")));
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(o, "f")->valuestring, "1.10");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "q")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "t")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "F")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "z")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "e")));
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "h")->valuedouble, 31);
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(o, "x")->valuedouble, 1000);
    CHECK(isinf(cJSON_GetObjectItemCaseSensitive(o, "inf")->valuedouble));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "str")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "yes"))); /* YAML 1.2: not a bool */
    cJSON_Delete(d);
}

TEST(yaml_block_literal_keeps_newlines)
{
    char *err;
    cJSON *d = parse("data:\n  features: |\n    os: ubuntu\n    db: [a, b]\n", &err);

    CHECK(d);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "data"), "features")
                  ->valuestring,
              "os: ubuntu\ndb: [a, b]\n");
    cJSON_Delete(d);
}

TEST(yaml_aliases_are_expanded_in_files)
{
    char *err;
    cJSON *d = parse("base: &b {cpu: 2, tags: [x, y]}\ncopy: *b\n&k key: v\nother: *k\n", &err);
    cJSON *o;

    CHECK(d);
    o = cJSON_GetArrayItem(d, 0);
    CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(o, "base"),
                        cJSON_GetObjectItemCaseSensitive(o, "copy"), 1));
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(o, "other")->valuestring, "key");
    cJSON_Delete(d);
}

TEST(yaml_alias_bomb_is_refused)
{
    char *err;
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    cJSON *d = parse(bomb, &err);

    CHECK(d == NULL);
    CHECK(err && strstr(err, "too large"));
    free(err);
}

TEST(yaml_node_budget_is_per_document_so_large_pools_load)
{
    struct buf b = {0};
    cJSON *docs = NULL;
    char *err = NULL;
    int rc;

    /* 3,000 documents of 500 nodes each: 1.5 million nodes in the stream,
     * more than YAML_MAX_NODES in total but far below it per document. */
    for (int d = 0; d < 3000; d++) {
        buf_puts(&b, "---\n[");
        for (int i = 0; i < 499; i++)
            buf_puts(&b, i ? ", x" : "x");
        buf_puts(&b, "]\n");
    }
    rc = yaml_parse(b.data, b.len, &docs, &err);
    buf_free(&b);
    CHECK_INT(rc, 0);
    CHECK_INT(cJSON_GetArraySize(docs), 3000);
    cJSON_Delete(docs);
    free(err);
}

TEST(yaml_deep_nesting_is_refused)
{
    struct buf b = {0};
    char *err;
    cJSON *d;

    for (int i = 0; i < 200; i++)
        buf_puts(&b, "[");
    for (int i = 0; i < 200; i++)
        buf_puts(&b, "]");
    d = parse(b.data, &err);
    CHECK(d == NULL);
    CHECK(err && strstr(err, "nested deeper"));
    free(err);
    buf_free(&b);
}

TEST(yaml_binary_input_is_refused)
{
    const char bin[] = "a: 1\n\0\x01\x02";
    cJSON *d;
    char *err;

    CHECK(yaml_parse(bin, sizeof(bin) - 1, &d, &err) == -EINVAL);
    CHECK(d == NULL);
    CHECK(strstr(err, "NUL byte at offset 5"));
    free(err);
    CHECK(yaml_parse("a: \xc3\x28 garbage", 13, &d, &err) == -EINVAL);
    free(err);
}

TEST(yaml_syntax_errors_say_where)
{
    char *err;
    cJSON *d = parse("a: 1\nb: [unclosed\nc: 3\n", &err);

    CHECK(d == NULL);
    CHECK(err && strstr(err, "line "));
    free(err);
    d = parse("a: *nope\n", &err);
    CHECK(d == NULL);
    CHECK(err && strstr(err, "unknown alias \"*nope\""));
    free(err);
    d = parse("? [a, b]\n: c\n", &err);
    CHECK(d == NULL);
    CHECK(err && strstr(err, "must be a scalar"));
    free(err);
}

TEST(yaml_duplicate_keys_are_refused_in_small_and_large_mappings)
{
    struct buf b = {0};
    char *err;
    cJSON *d = parse("a: 1\nb: 2\na: 3\n", &err);

    CHECK(d == NULL);
    CHECK(err && strstr(err, "duplicate mapping key \"a\""));
    free(err);
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "k%d: %d\n", i, i);
    d = parse(b.data, &err);
    CHECK(d);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetArrayItem(d, 0)), 1000);
    cJSON_Delete(d);
    buf_puts(&b, "k517: again\n");
    d = parse(b.data, &err);
    CHECK(d == NULL);
    CHECK(err && strstr(err, "duplicate mapping key \"k517\""));
    free(err);
    buf_free(&b);
}

TEST(yaml_parse_one_wants_exactly_one_document)
{
    cJSON *doc;
    char *err;

    CHECK(yaml_parse_one("", 0, &doc, &err) == 0);
    CHECK(cJSON_IsNull(doc));
    cJSON_Delete(doc);
    CHECK(yaml_parse_one("{os: ubuntu}", 12, &doc, &err) == 0);
    CHECK(cJSON_IsObject(doc));
    cJSON_Delete(doc);
    CHECK(yaml_parse_one("a: 1\n---\nb: 2\n", 14, &doc, &err) == -EINVAL);
    CHECK(doc == NULL);
    CHECK_STR(err, "expected one YAML document, found 2");
    free(err);
}

TEST(yaml_api_text_refuses_every_alias_and_says_where)
{
    const char *text = "a: &x 1\nb: [2,\n  *x]\n";
    struct yaml_opts ann = {.source = "annotations"};
    cJSON *d = NULL;
    char *err = NULL;

    /* the default, and the functions without opts, are the API policy */
    CHECK_INT(yaml_parse(text, strlen(text), &d, &err), -EINVAL);
    CHECK(d == NULL);
    CHECK_STR(err, "aliases are not allowed in this text (at line 3)");
    free(err);
    CHECK_INT(yaml_parse_one(text, strlen(text), &d, &err), -EINVAL);
    CHECK_STR(err, "aliases are not allowed in this text (at line 3)");
    free(err);
    CHECK_INT(yaml_parse_one_opts(text, strlen(text), &ann, &d, &err), -EINVAL);
    CHECK_STR(err, "aliases are not allowed in annotations (at line 3)");
    free(err);
    /* an alias of an anchor that does not exist is refused as an alias */
    CHECK_INT(yaml_parse_one_opts("*nope", 5, &ann, &d, &err), -EINVAL);
    CHECK_STR(err, "aliases are not allowed in annotations (at line 1)");
    free(err);
    /* an anchor alone shares nothing: it is fine */
    CHECK_INT(yaml_parse_one("a: &x 1\nb: 2\n", 13, &d, &err), 0);
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(d, "a")->valuedouble, 1);
    cJSON_Delete(d);
}

/* The string bomb: one 100 KB string aliased 30,000 times, 3 GB
 * once expanded, 30,004 nodes. */
static int yaml__string_bomb(void *opts)
{
    struct buf b = {0};
    cJSON *d = NULL;
    char *err = NULL;
    int rc, want;

    hostile_string_bomb(&b, 100000, 30000);
    rc = yaml_parse_one_opts(b.data, b.len, opts, &d, &err);
    want = opts ? strstr(err ? err : "", "too large once aliases are expanded") != NULL
                : err && strcmp(err, "aliases are not allowed in this text (at line 2)") == 0;
    buf_free(&b);
    cJSON_Delete(d);
    free(err);
    return rc == -EINVAL && want ? 0 : 1;
}

TEST(yaml_string_bomb_is_refused_with_bounded_memory_from_the_api_and_in_files)
{
    /* the text is 220 KB; refusing it builds nothing like the 3 GB */
    CHECK(hostile_bounded(yaml__string_bomb, NULL, 4096));
    /* a file may use aliases, up to the byte budget: 64 MiB, then refused */
    CHECK(hostile_bounded(yaml__string_bomb, (void *)&yaml_opts_file, 80 * 1024));
}

/* The text of n aliases of a len-byte string, and the bytes each adds. */
static size_t yaml__aliases(struct buf *b, size_t len, size_t n)
{
    buf_reset(b);
    hostile_string_bomb(b, len, n);
    return sizeof(cJSON) + len + 1;
}

TEST(yaml_alias_byte_budget_just_under_and_just_over)
{
    struct yaml_opts o = {0};
    struct buf b = {0};
    cJSON *d = NULL;
    char *err = NULL;
    size_t each = yaml__aliases(&b, 1000, 3);

    /* exactly the budget: three copies fit, a fourth does not */
    o.alias_bytes = 3 * each;
    CHECK_INT(yaml_parse_one_opts(b.data, b.len, &o, &d, &err), 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "t")), 3);
    cJSON_Delete(d);
    yaml__aliases(&b, 1000, 4);
    CHECK_INT(yaml_parse_one_opts(b.data, b.len, &o, &d, &err), -EINVAL);
    CHECK(strstr(err, "too large once aliases are expanded: more than"));
    free(err);
    /* the budget is for the whole stream: a second document shares it */
    yaml__aliases(&b, 1000, 2);
    buf_puts(&b, "---\n");
    hostile_string_bomb(&b, 1000, 2);
    CHECK_INT(yaml_parse_opts(b.data, b.len, &o, &d, &err), -EINVAL);
    free(err);
    o.alias_bytes = 4 * each;
    CHECK_INT(yaml_parse_opts(b.data, b.len, &o, &d, &err), 0);
    cJSON_Delete(d);
    /* the files' budget itself: 64 copies of 1 MiB (each counted with its
     * node) are YAML_MAX_ALIAS_BYTES, a 65th is over */
    each = yaml__aliases(&b, ((size_t)1 << 20) - sizeof(cJSON) - 1, 64);
    CHECK_INT(64 * each, YAML_MAX_ALIAS_BYTES);
    CHECK_INT(yaml_parse_one_opts(b.data, b.len, &yaml_opts_file, &d, &err), 0);
    cJSON_Delete(d);
    yaml__aliases(&b, ((size_t)1 << 20) - sizeof(cJSON) - 1, 65);
    CHECK_INT(yaml_parse_one_opts(b.data, b.len, &yaml_opts_file, &d, &err), -EINVAL);
    CHECK(strstr(err, "more than 67108864 bytes"));
    free(err);
    buf_free(&b);
}

TEST(yaml_anchors_in_a_pool_file_load_and_count_what_they_copy)
{
    struct buf b = {0};
    cJSON *docs = NULL, *items, *a, *z;
    char *err = NULL;

    CHECK_INT(buf_read_file(&b, harness_fixture("limits-pool-anchors.yaml"), 1 << 20), 0);
    CHECK_INT(yaml_parse_opts(b.data, b.len, &yaml_opts_file, &docs, &err), 0);
    items = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(docs, 0), "items");
    CHECK_INT(cJSON_GetArraySize(items), 3);
    /* every member got its own copy of the shared template */
    a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 0), "data");
    z = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, 2), "data");
    CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "vm"),
                        cJSON_GetObjectItemCaseSensitive(z, "vm"), 1));
    CHECK(cJSON_GetObjectItemCaseSensitive(a, "vm") != cJSON_GetObjectItemCaseSensitive(z, "vm"));
    cJSON_Delete(docs);
    /* the same file as API text is refused */
    CHECK_INT(yaml_parse(b.data, b.len, &docs, &err), -EINVAL);
    CHECK(strstr(err, "aliases are not allowed"));
    free(err);
    buf_free(&b);
}

TEST(yaml_node_budget_from_opts_just_under_and_just_over)
{
    struct yaml_opts o = {.max_nodes = 4};
    cJSON *d = NULL;
    char *err = NULL;

    /* a list and three items: four nodes */
    CHECK_INT(yaml_parse_one_opts("[a, b, c]", 9, &o, &d, &err), 0);
    cJSON_Delete(d);
    CHECK_INT(yaml_parse_one_opts("[a, b, c, d]", 12, &o, &d, &err), -EINVAL);
    CHECK_STR(err, "line 1 column 11: document too large: more than 4 nodes (aliases expanded)");
    free(err);
}
