/*
 * yaml — YAML text into cJSON trees, with libyaml.
 *
 * The one way YAML enters kvrecover: policies, pool ConfigMaps, VMs, the
 * annotations kvrecover.io/features and kvrecover.io/resources, and the
 * kubeconfig are all read into cJSON, the same representation the API server's
 * JSON gives, so every model parser has one input type.
 *
 * Scalars: quoted ones are strings; plain ones are null (null, ~, empty),
 * booleans (true/false, any case), numbers (JSON/YAML 1.2 core numbers) or
 * strings. A number keeps the text it was written with in its valuestring
 * ("1.10" stays "1.10"), so that a feature value written as a number compares
 * as written; cJSON frees and duplicates valuestring for any type.
 *
 * Untrusted input is bounded: nesting depth, the number of nodes, and NUL
 * bytes (binary files) are refused with an error, never a crash or a hang.
 * Duplicate mapping keys and non-scalar keys are errors.
 *
 * Aliases, and which text may use them. An alias (*a) copies the node its
 * anchor (&a) names, so a few bytes can stand for a large tree: a billion
 * laughs (nested lists of aliases) multiplies nodes, a string bomb (one long
 * string aliased a thousand times) multiplies bytes while the node count
 * stays small. Two policies, chosen by the caller with struct yaml_opts:
 *
 *  - Text from the API server (annotations, ConfigMap data) is parsed with
 *    no aliases at all: yaml_parse() and yaml_parse_one() refuse every one
 *    ("aliases are not allowed in ConfigMap data (at line 3)"). Tenants
 *    write that text, nothing a pool member or an annotation needs is
 *    shared structure, and a refusal is simpler to get right than one more
 *    budget. Without aliases a parse builds at most a fixed multiple of its
 *    input's bytes, so the caller's cap on a field's size bounds it.
 *  - Files a user hands the CLI keep aliases (people write anchors in big
 *    pool files), under a byte budget on what expansion adds: each alias
 *    counts the bytes of the copy it makes (every node's struct, key and
 *    string), summed over the whole stream, at most YAML_MAX_ALIAS_BYTES,
 *    on top of the node budget. Pass &yaml_opts_file.
 *
 * The default (a NULL opts, and the two functions without _opts) is the
 * API policy, so that text nobody thought about is held to the strict rule.
 */
#ifndef KVR_YAML_H
#define KVR_YAML_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define YAML_MAX_DEPTH 64      /* nesting of mappings and sequences */
#define YAML_MAX_NODES 1000000 /* nodes in one document, aliases expanded */
/* Bytes alias expansion may add to one file read by the CLI: far more than
 * anchors shared between a few thousand pool members need, far less than the
 * memory of the smallest machine that runs the CLI. */
#define YAML_MAX_ALIAS_BYTES ((size_t)64 << 20)

/* What one parse may build. A zeroed struct is the API policy. */
struct yaml_opts {
    size_t alias_bytes; /* bytes alias expansion may add to the stream; 0 refuses every alias */
    size_t max_nodes;   /* nodes per document, aliases expanded; 0 means YAML_MAX_NODES */
    const char *source; /* what the text is, for "aliases are not allowed in <source>"
                           ("annotations"); NULL says "this text" */
};

/* A file given to the CLI: aliases within YAML_MAX_ALIAS_BYTES. */
extern const struct yaml_opts yaml_opts_file;

/**
 * Parses every document in text[0..len) into *docs, a new cJSON array with
 * one item per non-empty document, in order, under the limits of opts (NULL:
 * the API policy, no aliases). Returns 0; or -EINVAL with *err set to a
 * one-line message ("line 3 column 7: did not find expected key",
 * "aliases are not allowed in annotations (at line 1)") and *docs NULL. The
 * caller frees *docs (cJSON_Delete) and *err (free). Running out of memory,
 * in libyaml or cJSON, aborts (xalloc.h): a partial tree never comes back.
 */
int yaml_parse_opts(const char *text, size_t len, const struct yaml_opts *opts, cJSON **docs,
                    char **err);

/** yaml_parse_opts() with the API policy: no aliases. */
int yaml_parse(const char *text, size_t len, cJSON **docs, char **err);

/**
 * Parses text that must hold exactly one document (an annotation's value, a
 * ConfigMap's data entry) under opts (NULL: no aliases). An empty text gives
 * a cJSON null. Same errors as yaml_parse_opts(), plus "expected one YAML
 * document, found N".
 */
int yaml_parse_one_opts(const char *text, size_t len, const struct yaml_opts *opts, cJSON **doc,
                        char **err);

/** yaml_parse_one_opts() with the API policy: no aliases. */
int yaml_parse_one(const char *text, size_t len, cJSON **doc, char **err);

#endif
