/*
 * Helpers shared by the model's unit tests (features, policy, pool, sim):
 * test input written as YAML. Header-only, because the Makefile links each
 * test_*.c with the harness alone.
 */
#ifndef KVR_MODEL_TEST_H
#define KVR_MODEL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/yaml.h"

/* One YAML document as cJSON; a broken test input aborts the test binary,
 * since it is the test that is wrong. The caller frees with cJSON_Delete. */
static inline cJSON *mt_doc(const char *text)
{
    cJSON *d = NULL;
    char *err = NULL;

    if (yaml_parse_one(text, strlen(text), &d, &err)) {
        fprintf(stderr, "bad test YAML: %s\n%s\n", err, text);
        abort();
    }
    return d;
}

/* A file under tests/fixtures/ as one document (JSON is YAML too). */
static inline cJSON *mt_fixture(const char *name)
{
    struct buf b = {0};
    cJSON *d;

    if (buf_read_file(&b, harness_fixture(name), 1 << 20)) {
        fprintf(stderr, "no fixture %s\n", name);
        abort();
    }
    buf_puts(&b, "");
    d = mt_doc(b.data);
    buf_free(&b);
    return d;
}

#endif
