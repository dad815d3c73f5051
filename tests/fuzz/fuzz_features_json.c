/*
 * fuzz_features_json — API objects as the controller receives them: JSON
 * from the API server (cJSON_Parse) through features_from_object() and each
 * of its three ways in, pool_member_from_json(), policy_from_json() and the
 * selector matcher.
 *
 * Checks: errors are one-line messages; features come sorted, unique,
 * trimmed and lower-cased, resources finite and >= 0; a validated policy
 * keeps its ranges.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fuzz_check.h"
#include "sim/features.h"
#include "sim/policy.h"
#include "sim/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*fuzz_features_fn)(const cJSON *obj, struct features *out, char **err);

static void fuzz_features(fuzz_features_fn fn, const cJSON *obj, const char *who)
{
    struct features f = {0};
    char *err = NULL;
    int rc = fn(obj, &f, &err);

    if (rc == 0)
        fuzz_check_features(&f);
    else
        FUZZ_ASSERT(f.n == 0 && f.items == NULL, "no half-filled set after an error");
    fuzz_check_result(rc, err, who);
    features_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *meta, *labels;
    struct pool_member m = {0};
    struct policy p = {0};
    char *err = NULL;
    int rc;

    if (!obj)
        return 0;
    fuzz_features(features_from_object, obj, "features_from_object");
    fuzz_features(features_from_configmap, obj, "features_from_configmap");
    fuzz_features(features_from_vmi, obj, "features_from_vmi");
    fuzz_features(features_from_vm, obj, "features_from_vm");

    rc = pool_member_from_json(obj, &m, &err);
    if (rc == 0) {
        FUZZ_ASSERT(m.name && *m.name, "a member has a name");
        fuzz_check_features(&m.features);
    }
    fuzz_check_result(rc, err, "pool_member_from_json");
    pool_member_free(&m);

    err = NULL;
    rc = policy_from_json(obj, &p, &err);
    if (rc == 0) {
        fuzz_check_policy(&p);
        meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
        (void)policy_selector_matches(&p.selector, labels);
        (void)policy_selector_matches(&p.pool_selector, labels);
    }
    fuzz_check_result(rc, err, "policy_from_json");
    policy_free(&p);
    cJSON_Delete(obj);
    return 0;
}
