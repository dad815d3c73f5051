/*
 * json_patch.h — the part of kube-apiserver's JSON patch (RFC 6902)
 * that kvrecover sends: "test", "add" and "replace" on object members.
 * For the fake API servers of the unit tests (ctl_test.h) and of
 * bench/bench_soak.c, so that both apply a halt as the API server does.
 */
#ifndef KVR_JSON_PATCH_H
#define KVR_JSON_PATCH_H

#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

/* JSON pointer segment seg of n bytes as a key (RFC 6901: "~0" is "~",
 * "~1" is "/"), into key of 256 bytes. */
static inline void json_patch_key(char key[256], const char *seg, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 1 < 256; i++) {
        if (seg[i] == '~' && i + 1 < n && (seg[i + 1] == '0' || seg[i + 1] == '1'))
            key[k++] = seg[++i] == '0' ? '~' : '/';
        else
            key[k++] = seg[i];
    }
    key[k] = '\0';
}

/*
 * Applies one JSON patch operation (test, add, replace; objects only) to
 * doc as kube-apiserver's json-patch does: the parent must exist, a "test"
 * of null passes for an absent member, "add" sets or replaces. Returns 0 or
 * -1 (the patch does not apply). view gets the merge patch the adds and
 * replaces amount to, for the checks; doc may be NULL (nothing stored).
 */
static inline int json_patch_op(cJSON *doc, cJSON *view, const cJSON *op)
{
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "op"));
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "path"));
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
    cJSON *parent = doc, *vparent = view, *target = NULL;
    const char *seg, *next;
    int test;
    char key[256];

    if (!kind || !path || path[0] != '/')
        return -1;
    test = strcmp(kind, "test") == 0;
    for (seg = path + 1; (next = strchr(seg, '/')) != NULL; seg = next + 1) {
        json_patch_key(key, seg, (size_t)(next - seg));
        if (doc && !(parent = cJSON_GetObjectItemCaseSensitive(parent, key)))
            return -1;
        if (!test && !cJSON_GetObjectItemCaseSensitive(vparent, key))
            cJSON_AddObjectToObject(vparent, key);
        vparent = cJSON_GetObjectItemCaseSensitive(vparent, key);
    }
    json_patch_key(key, seg, strlen(seg));
    if (doc && cJSON_IsObject(parent))
        target = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (test)
        return !doc || (!target && cJSON_IsNull(value)) ||
                       (target && cJSON_Compare(target, value, 1))
                   ? 0
                   : -1;
    if (doc && (!cJSON_IsObject(parent) || (strcmp(kind, "replace") == 0 && !target)))
        return -1;
    if (doc) {
        cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
        cJSON_AddItemToObject(parent, key, cJSON_Duplicate(value, 1));
    }
    cJSON_DeleteItemFromObjectCaseSensitive(vparent, key);
    cJSON_AddItemToObject(vparent, key, cJSON_Duplicate(value, 1));
    return 0;
}

/* The bare 422 kube-apiserver answers a JSON patch it could not apply. */
#define JSON_PATCH_NOT_APPLIED                                                                     \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"the server rejected our request due to an error in our request\","              \
    "\"reason\":\"Invalid\",\"details\":{},\"code\":422}"

#endif
