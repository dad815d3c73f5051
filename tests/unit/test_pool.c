/*
 * pool: members from ConfigMaps, their templates, and errors that name the
 * ConfigMap and the data key.
 */
#include "harness.h"
#include "hostile.h"
#include "model_test.h"

#include <errno.h>
#include <stdlib.h>

#include "base/buf.h"
#include "sim/pool.h"

/* Reads a member from YAML; returns the rc, *err kept for the caller. */
static int member(const char *yaml, struct pool_member *m, char **err)
{
    cJSON *d = mt_doc(yaml);
    int rc = pool_member_from_json(d, m, err);

    cJSON_Delete(d);
    return rc;
}

/* Whether the member in YAML is refused with exactly want. */
static int refused_with(const char *yaml, const char *want)
{
    struct pool_member m;
    char *err = NULL;
    int rc = member(yaml, &m, &err);
    int ok = rc == -EINVAL && err && strcmp(err, want) == 0;

    if (!ok)
        fprintf(stderr, "rc %d, \"%s\", want \"%s\"\n", rc, err ? err : "(none)", want);
    if (rc == 0)
        pool_member_free(&m);
    else if (m.name || m.vm_template || m.features.n)
        ok = 0; /* an error leaves the member empty */
    free(err);
    return ok;
}

TEST(pool_member_reads_the_contract_example)
{
    struct buf b = {0};
    struct pool_member m;
    char *err = NULL;
    const cJSON *kind;

    CHECK_INT(buf_read_file(&b, harness_fixture("pool-member.yaml"), 1 << 20), 0);
    buf_puts(&b, "");
    CHECK_INT(member(b.data, &m, &err), 0);
    buf_free(&b);
    CHECK_STR(m.name, "vm-005");
    CHECK_STR(m.namespace, "shop");
    CHECK_STR(m.vm, "vm-005");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(m.labels, "kvrecover.io/pool")->valuestring, "web");
    CHECK_INT(m.features.n, 6);
    CHECK_INT(m.features.has_res, 7);
    CHECK_NEAR(m.features.res[FEATURES_DISK], 20.0 * 1073741824.0, 0);
    CHECK(m.vm_template);
    kind = cJSON_GetObjectItemCaseSensitive(m.vm_template, "kind");
    CHECK_STR(kind->valuestring, "VirtualMachine");
    CHECK(cJSON_GetObjectItemCaseSensitive(m.vm_template, "spec"));
    pool_member_free(&m);
    CHECK(m.name == NULL);
    pool_member_free(&m);
    pool_member_free(NULL);
}

TEST(pool_member_without_vm_has_no_template)
{
    struct pool_member m;
    char *err = NULL;

    CHECK_INT(
        member("kind: ConfigMap\nmetadata: {name: a}\ndata: {features: '{os: x}'}\n", &m, &err), 0);
    CHECK(m.vm_template == NULL);
    CHECK(m.vm == NULL);
    CHECK(m.labels == NULL);
    CHECK_INT(m.features.n, 1);
    pool_member_free(&m);
    /* blank counts as absent, and so does an empty kvrecover.io/vm label */
    CHECK_INT(member("metadata: {name: a, labels: {kvrecover.io/vm: ''}}\ndata: {vm: \"  \\n\"}\n",
                     &m, &err),
              0);
    CHECK(m.vm_template == NULL);
    CHECK(m.vm == NULL);
    pool_member_free(&m);
    /* no data at all */
    CHECK_INT(member("metadata: {name: a}\n", &m, &err), 0);
    CHECK_INT(m.features.n, 0);
    pool_member_free(&m);
}

TEST(pool_member_template_may_be_json)
{
    struct pool_member m;
    char *err = NULL;

    CHECK_INT(member("metadata: {name: a}\ndata:\n  vm: '{\"apiVersion\": \"kubevirt.io/v1\", "
                     "\"kind\": \"VirtualMachine\", \"spec\": {}}'\n",
                     &m, &err),
              0);
    CHECK(m.vm_template);
    pool_member_free(&m);
}

TEST(pool_member_template_must_be_a_kubevirt_virtual_machine)
{
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {vm: 'kind: Pod'}\n",
                       "ConfigMap vm-003: data.vm: kind must be VirtualMachine"));
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {vm: '{kind: VirtualMachine, apiVersion: "
                       "v1}'}\n",
                       "ConfigMap vm-003: data.vm: apiVersion must be kubevirt.io/v1"));
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {vm: '[a]'}\n",
                       "ConfigMap vm-003: data.vm: must be a VirtualMachine mapping"));
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {vm: {kind: VirtualMachine}}\n",
                       "ConfigMap vm-003: data.vm: must be a string"));
}

TEST(pool_member_broken_template_yaml_names_the_key)
{
    struct pool_member m;
    char *err = NULL;

    CHECK_INT(member("metadata: {name: vm-003}\ndata: {vm: 'kind: [x'}\n", &m, &err), -EINVAL);
    CHECK(strncmp(err, "ConfigMap vm-003: data.vm: line ", 32) == 0);
    free(err);
}

TEST(pool_member_errors_name_the_configmap_and_the_key)
{
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {resources: '{memory: 4Qi}'}\n",
                       "ConfigMap vm-003: data.resources: memory: \"4Qi\" is not a valid "
                       "quantity"));
    CHECK(refused_with("metadata: {name: vm-003}\ndata: {features: '{cpu: 2}'}\n",
                       "ConfigMap vm-003: data.features: cpu: cpu is a resource, not a feature "
                       "category (put it in resources)"));
    CHECK(refused_with("metadata: {labels: {a: b}}\n",
                       "ConfigMap (unnamed): metadata.name: required"));
    CHECK(refused_with("metadata: {name: ''}\n", "ConfigMap (unnamed): metadata.name: required"));
    CHECK(refused_with("metadata: {name: 'a b'}\ndata: [x]\n",
                       "ConfigMap \"a b\": data: must be a mapping, not a list"));
    CHECK(refused_with("metadata: {name: a, labels: [x]}\n",
                       "ConfigMap a: metadata.labels: must be a mapping"));
    CHECK(refused_with("metadata: {name: a, labels: {kvrecover.io/vm: 3}}\n",
                       "ConfigMap a: metadata.labels[kvrecover.io/vm]: must be a string"));
    CHECK(refused_with("metadata: {name: a, namespace: [x]}\n",
                       "ConfigMap a: metadata.namespace: must be a string"));
    CHECK(refused_with("[x]\n", "ConfigMap: must be a mapping"));
}

TEST(pool_is_configmap_checks_kind_and_api_version)
{
    cJSON *d = mt_doc("{apiVersion: v1, kind: ConfigMap}");

    CHECK(pool_is_configmap(d));
    cJSON_Delete(d);
    d = mt_doc("{kind: ConfigMap}");
    CHECK(pool_is_configmap(d));
    cJSON_Delete(d);
    d = mt_doc("{apiVersion: v2, kind: ConfigMap}");
    CHECK(!pool_is_configmap(d));
    cJSON_Delete(d);
    d = mt_doc("{apiVersion: v1, kind: Secret}");
    CHECK(!pool_is_configmap(d));
    cJSON_Delete(d);
    d = mt_doc("[ConfigMap]");
    CHECK(!pool_is_configmap(d));
    cJSON_Delete(d);
    CHECK(!pool_is_configmap(NULL));
}

/* A ConfigMap named name, built in cJSON, so that sizes are exact. */
static cJSON *cm_named(const char *name)
{
    cJSON *cm = cJSON_CreateObject();

    cJSON_AddStringToObject(cm, "apiVersion", "v1");
    cJSON_AddStringToObject(cm, "kind", "ConfigMap");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(cm, "metadata"), "name", name);
    cJSON_AddObjectToObject(cm, "data");
    return cm;
}

/* Reads cm (and frees it); returns the rc, *err kept for the caller. */
static int member_of(cJSON *cm, char **err)
{
    struct pool_member m;
    int rc = pool_member_from_json(cm, &m, err);

    cJSON_Delete(cm);
    pool_member_free(&m);
    return rc;
}

/* A VirtualMachine as YAML text of exactly n bytes, padded by a comment. */
static char *vm_text(size_t n)
{
    const char *vm = "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n#";
    size_t k = strlen(vm);
    char *s = malloc(n + 1);

    memcpy(s, vm, k);
    memset(s + k, 'x', n - k);
    s[n] = '\0';
    return s;
}

/* A string of n copies of c. */
static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

TEST(pool_member_vm_text_cap_just_under_and_just_over)
{
    char *ok = vm_text(POOL_MAX_VM_TEXT), *big = vm_text(POOL_MAX_VM_TEXT + 1);
    cJSON *cm = cm_named("big");
    char *err = NULL;

    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", ok);
    CHECK_INT(member_of(cm, &err), 0);
    cm = cm_named("big");
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", big);
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK_STR(err, "ConfigMap big: data.vm: too large: 262145 bytes (at most 262144)");
    free(err);
    /* measured before anything is parsed: broken features are not reached */
    cm = cm_named("big");
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", big);
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "features", "{os: [x");
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK_STR(err, "ConfigMap big: data.vm: too large: 262145 bytes (at most 262144)");
    free(err);
    free(ok);
    free(big);
}

TEST(pool_member_vm_node_cap_just_under_and_just_over)
{
    struct buf b = {0};
    cJSON *cm;
    char *err = NULL;

    /* the mapping, two keys with their values, the key x and its list: 7
     * nodes, then one per item */
    buf_puts(&b, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nx: [");
    for (unsigned i = 0; i < POOL_MAX_VM_NODES - 7; i++)
        buf_puts(&b, i ? ",1" : "1");
    buf_puts(&b, "]\n");
    cm = cm_named("nodes");
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", b.data);
    CHECK_INT(member_of(cm, &err), 0);
    b.len -= 2;
    buf_puts(&b, ",1]\n");
    cm = cm_named("nodes");
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", b.data);
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK(strstr(err, "ConfigMap nodes: data.vm: line 3 column "));
    CHECK(strstr(err, ": document too large: more than 16384 nodes (aliases expanded)"));
    free(err);
    buf_free(&b);
}

TEST(pool_member_names_and_labels_caps_just_under_and_just_over)
{
    char *name = rep('n', POOL_MAX_NAME), *name1 = rep('n', POOL_MAX_NAME + 1);
    char *ns = rep('s', POOL_MAX_NAMESPACE), *ns1 = rep('s', POOL_MAX_NAMESPACE + 1);
    char *key = rep('k', POOL_MAX_LABEL_KEY), *key1 = rep('k', POOL_MAX_LABEL_KEY + 1);
    char *val = rep('v', POOL_MAX_LABEL_VALUE), *val1 = rep('v', POOL_MAX_LABEL_VALUE + 1);
    cJSON *cm, *labels;
    char *err = NULL;

    cm = cm_named(name);
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "metadata"), "namespace", ns);
    labels = cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels");
    cJSON_AddStringToObject(labels, key, val);
    cJSON_AddStringToObject(labels, POOL_VM_LABEL, val);
    CHECK_INT(member_of(cm, &err), 0);

    CHECK_INT(member_of(cm_named(name1), &err), -EINVAL);
    CHECK(strncmp(err, "ConfigMap \"nnnn", 15) == 0);
    CHECK(strstr(err, "\"...: metadata.name: too large: 254 bytes (at most 253)"));
    free(err);

    cm = cm_named("x");
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "metadata"), "namespace", ns1);
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK_STR(err, "ConfigMap x: metadata.namespace: too large: 64 bytes (at most 63)");
    free(err);

    cm = cm_named("x");
    labels = cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels");
    cJSON_AddStringToObject(labels, key1, "v");
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK(strstr(err, "ConfigMap x: metadata.labels[\"kkkk"));
    CHECK(strstr(err, "\"...]: too large: 318 bytes (at most 317)"));
    free(err);

    cm = cm_named("x");
    labels = cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels");
    cJSON_AddStringToObject(labels, POOL_VM_LABEL, val1);
    CHECK_INT(member_of(cm, &err), -EINVAL);
    CHECK_STR(err,
              "ConfigMap x: metadata.labels[kvrecover.io/vm]: too large: 64 bytes (at most 63)");
    free(err);
    free(name);
    free(name1);
    free(ns);
    free(ns1);
    free(key);
    free(key1);
    free(val);
    free(val1);
}

TEST(pool_member_template_from_the_api_refuses_aliases)
{
    CHECK(refused_with("metadata: {name: al}\n"
                       "data:\n"
                       "  vm: |\n"
                       "    apiVersion: kubevirt.io/v1\n"
                       "    kind: &k VirtualMachine\n"
                       "    metadata: {name: *k}\n",
                       "ConfigMap al: data.vm: aliases are not allowed in ConfigMap data (at line "
                       "3)"));
}

/* The issue's string bomb, as the API server hands it over: a 300 KB
 * ConfigMap whose data.vm aliases one 100 KB string 38,000 times. */
static int pool__string_bomb(void *unused)
{
    struct buf b = {0};
    cJSON *cm = cm_named("string-bomb");
    char *err = NULL;
    int rc;

    (void)unused;
    buf_puts(&b, "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n");
    hostile_string_bomb(&b, 100000, 38000);
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "vm", b.data);
    cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "notes", b.data + b.len - 45000);
    buf_free(&b);
    rc = member_of(cm, &err);
    rc = rc == -EINVAL && err &&
                 strcmp(err, "ConfigMap string-bomb: data.vm: aliases are not allowed in "
                             "ConfigMap data (at line 4)") == 0
             ? 0
             : 1;
    free(err);
    return rc;
}

TEST(pool_member_string_bomb_is_refused_with_bounded_memory)
{
    CHECK(hostile_bounded(pool__string_bomb, NULL, 4096));
}
