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
 * Untrusted input is bounded: nesting depth, the number of nodes after alias
 * expansion (alias bombs), and NUL bytes (binary files) are refused with an
 * error, never a crash or a hang. Duplicate mapping keys and non-scalar keys
 * are errors.
 */
#ifndef KVR_YAML_H
#define KVR_YAML_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define YAML_MAX_DEPTH 64      /* nesting of mappings and sequences */
#define YAML_MAX_NODES 1000000 /* nodes in one document, aliases expanded */

/**
 * Parses every document in text[0..len) into *docs, a new cJSON array with
 * one item per non-empty document, in order. Returns 0; or -EINVAL with
 * *err set to a one-line message ("line 3 column 7: did not find expected
 * key") and *docs NULL. The caller frees *docs (cJSON_Delete) and *err (free).
 */
int yaml_parse(const char *text, size_t len, cJSON **docs, char **err);

/**
 * Parses text that must hold exactly one document (an annotation's value, a
 * ConfigMap's data entry). An empty text gives a cJSON null. Same errors as
 * yaml_parse(), plus "expected one YAML document, found N".
 */
int yaml_parse_one(const char *text, size_t len, cJSON **doc, char **err);

#endif
