/*
 * pool: members from ConfigMaps, their templates, and errors that name the
 * ConfigMap and the data key.
 */
#include "harness.h"
#include "model_test.h"

#include <errno.h>
#include <stdlib.h>

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
