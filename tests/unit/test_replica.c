/*
 * replica: the replacement VirtualMachine (CONTRACT.md "The replacement"
 * 3-5): the failed VM's identity, the member's cleaned machine, disks never
 * shared, and the name, pinned.
 */
#include "harness.h"
#include "model_test.h"

#include <errno.h>
#include <stdlib.h>

#include "sim/replica.h"

/* A member's VirtualMachine as KubeVirt leaves it once it has run: every
 * field replica_build() must drop or rewrite is there. */
static const char member_vm[] =
    "apiVersion: kubevirt.io/v1\n"
    "kind: VirtualMachine\n"
    "metadata:\n"
    "  name: web-5\n"
    "  namespace: shop\n"
    "  uid: 11111111-2222-3333-4444-555555555555\n"
    "  resourceVersion: '4711'\n"
    "  generation: 2\n"
    "  creationTimestamp: '2026-11-25T19:00:00Z'\n"
    "  finalizers: [kubevirt.io/virtualMachineControllerFinalize]\n"
    "  ownerReferences: [{apiVersion: v1, kind: Pod, name: x, uid: y}]\n"
    "  managedFields: [{manager: kubectl}]\n"
    "  labels: {app: member-app, tier: member}\n"
    "  annotations:\n"
    "    kubevirt.io/latest-observed-api-version: v1\n"
    "    kubectl.kubernetes.io/last-applied-configuration: '{}'\n"
    "    kvrecover.io/features: '{os: ubuntu}'\n"
    "    team: members\n"
    "spec:\n"
    "  running: false\n"
    "  instancetype: {name: u1.small, revisionName: web-5-u1.small-abc-1}\n"
    "  preference: {name: ubuntu, revisionName: web-5-ubuntu-def-1}\n"
    "  dataVolumeTemplates:\n"
    "    - metadata: {name: root}\n"
    "      spec: {storage: {resources: {requests: {storage: 10Gi}}}}\n"
    "    - metadata: {name: data}\n"
    "      spec: {storage: {resources: {requests: {storage: 1Gi}}}}\n"
    "  template:\n"
    "    metadata:\n"
    "      labels: {app: member-app, kubevirt.io/domain: web-5}\n"
    "      annotations: {kubevirt.io/allow-pod-bridge-network-live-migration: 'true',\n"
    "                    vm.kubevirt.io/os: ubuntu, kvrecover.io/features: '{os: ubuntu}'}\n"
    "    spec:\n"
    "      hostname: web-5\n"
    "      subdomain: members\n"
    "      domain:\n"
    "        firmware: {uuid: 6a1f0b28-9d6b-5b53-8f6a-5e7c3c2f1a11, serial: S-5}\n"
    "        devices:\n"
    "          interfaces:\n"
    "            - {name: default, masquerade: {}, macAddress: '02:00:00:00:00:05'}\n"
    "            - {name: second, bridge: {}}\n"
    "        resources: {requests: {memory: 1Gi}}\n"
    "      networks: [{name: default, pod: {}}]\n"
    "      volumes:\n"
    "        - {name: rootdisk, dataVolume: {name: root}}\n"
    "        - {name: datadisk, persistentVolumeClaim: {claimName: data}}\n"
    "        - {name: cloudinit, cloudInitNoCloud: {userData: '#cloud-config'}}\n"
    "status: {printableStatus: Stopped, created: false}\n";

/* member_vm as compact JSON, as the controller keeps templates. */
static char *member_json(const char *yaml)
{
    cJSON *d = mt_doc(yaml);
    char *s = cJSON_PrintUnformatted(d);

    cJSON_Delete(d);
    return s;
}

/* The spec of the failed VM vm-001 of policy web. */
static struct replica_spec spec_for(const cJSON *labels, const cJSON *tlabels)
{
    struct replica_spec s = {
        .namespace = "shop",
        .name = "vm-001-057c9867a0",
        .failed_vm = "vm-001",
        .labels = labels,
        .template_labels = tlabels,
        .policy = "web",
        .member = "web-5",
        .score = 0.666666,
        .failed_uid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        .decided_at = "2026-11-30T10:00:00Z",
    };
    return s;
}

static const char *str_at(const cJSON *o, const char *path)
{
    char buf[256], *save = buf, *part;

    snprintf(buf, sizeof(buf), "%s", path);
    for (part = buf; o && part; part = save) {
        save = strchr(part, '.');
        if (save)
            *save++ = '\0';
        if (cJSON_IsArray(o))
            o = cJSON_GetArrayItem(o, (int)strtol(part, NULL, 10));
        else
            o = cJSON_GetObjectItemCaseSensitive(o, part);
    }
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

static const cJSON *at(const cJSON *o, const char *a, const char *b)
{
    o = cJSON_GetObjectItemCaseSensitive(o, a);
    return b ? cJSON_GetObjectItemCaseSensitive(o, b) : o;
}

static int has_line_quiet(const struct replica_changes *c, const char *want)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->line[i], want) == 0)
            return 1;
    return 0;
}

static int has_line(const struct replica_changes *c, const char *want)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->line[i], want) == 0)
            return 1;
    fprintf(stderr, "no change \"%s\" among %zu:\n", want, c->n);
    for (size_t i = 0; i < c->n; i++)
        fprintf(stderr, "  %s\n", c->line[i]);
    return 0;
}

/* Values computed by recover_replacement_name() before it moved here: a
 * restarted controller must find the replacements it made by these names. */
TEST(replica_name_is_pinned)
{
    static const char *const cases[][3] = {
        {"vm-001", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "vm-001-057c9867a0"},
        {"VM_001.Web", "uid", "vm-001-web-193e0b272d"},
        {"-x-", "u", "x-4c860200f0"},
        {"", "u", "vm-4c860200f0"},
        {"...", "u", "vm-4c860200f0"},
        {"a-very-long-virtual-machine-name-that-goes-past-fifty-two-characters-easily", "0b1c",
         "a-very-long-virtual-machine-name-that-goes-past-fift-facdcd3a43"},
        {"web", "0b1c", "web-facdcd3a43"},
        {"Web.Shop", "a", "web-shop-4c8601ec8c"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *n = replica_name(cases[i][0], cases[i][1]);

        CHECK_STR(n, cases[i][2]);
        CHECK(strlen(n) <= 63);
        free(n);
    }
}

TEST(replica_carries_the_failed_vms_identity_and_the_decision)
{
    cJSON *labels = mt_doc("{app: shop, tier: web, kvrecover.io/template: old}");
    cJSON *tlabels = mt_doc("{app: shop, kubevirt.io/domain: vm-001}");
    struct replica_spec s = spec_for(labels, tlabels);
    char *json = member_json(member_vm), *err = NULL;
    cJSON *vm = NULL;
    const cJSON *meta, *ann;

    CHECK_INT(replica_build(json, &s, &vm, NULL, &err), 0);
    CHECK_STR(str_at(vm, "apiVersion"), "kubevirt.io/v1");
    CHECK_STR(str_at(vm, "kind"), "VirtualMachine");
    meta = at(vm, "metadata", NULL);
    /* only what a new object may carry */
    CHECK_INT(cJSON_GetArraySize(meta), 4);
    CHECK_STR(str_at(meta, "name"), "vm-001-057c9867a0");
    CHECK_STR(str_at(meta, "namespace"), "shop");
    CHECK_STR(str_at(meta, "labels.app"), "shop");
    CHECK_STR(str_at(meta, "labels.tier"), "web");
    ann = at(meta, "annotations", NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(at(meta, "labels", NULL), "kvrecover.io/replaces")
                  ->valuestring,
              "vm-001");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(at(meta, "labels", NULL), "kvrecover.io/policy")
                  ->valuestring,
              "web");
    /* the failed VM's own kvrecover.io/template (it was a replacement) is
     * replaced by this decision's */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(at(meta, "labels", NULL), "kvrecover.io/template")
                  ->valuestring,
              "web-5");
    CHECK_INT(cJSON_GetArraySize(at(meta, "labels", NULL)), 5);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/score")->valuestring, "0.6667");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/failed-uid")->valuestring,
              "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/decided-at")->valuestring,
              "2026-11-30T10:00:00Z");
    /* what the replacement is made of stays; the member's bookkeeping does not */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/features")->valuestring,
              "{os: ubuntu}");
    CHECK_INT(cJSON_GetArraySize(ann), 4);
    CHECK(!at(vm, "status", NULL));
    CHECK_INT(cJSON_GetArraySize(vm), 4);
    cJSON_Delete(vm);
    cJSON_Delete(labels);
    cJSON_Delete(tlabels);
    cJSON_free(json);
}

TEST(replica_template_has_the_failed_vms_labels_and_the_members_clean_spec)
{
    cJSON *tlabels = mt_doc("{app: shop, kubevirt.io/domain: vm-001}");
    struct replica_spec s = spec_for(NULL, tlabels);
    struct replica_changes ch = {0};
    char *json = member_json(member_vm), *err = NULL;
    cJSON *vm = NULL;
    const cJSON *spec, *tmeta, *tspec, *ifaces;

    CHECK_INT(replica_build(json, &s, &vm, &ch, &err), 0);
    spec = at(vm, "spec", NULL);
    CHECK_STR(str_at(spec, "runStrategy"), "Always");
    CHECK(!at(spec, "running", NULL));
    CHECK(!at(spec, "instancetype", "revisionName"));
    CHECK_STR(str_at(spec, "instancetype.name"), "u1.small");
    CHECK(!at(spec, "preference", "revisionName"));
    tmeta = at(at(spec, "template", NULL), "metadata", NULL);
    CHECK(cJSON_Compare(at(tmeta, "labels", NULL), tlabels, 1));
    /* the member's annotations without KubeVirt's (any *.kubevirt.io) */
    CHECK_INT(cJSON_GetArraySize(at(tmeta, "annotations", NULL)), 1);
    CHECK(at(tmeta, "annotations", "kvrecover.io/features"));
    tspec = at(at(spec, "template", NULL), "spec", NULL);
    CHECK(!at(tspec, "hostname", NULL));
    CHECK(!at(tspec, "subdomain", NULL));
    CHECK(!at(at(tspec, "domain", NULL), "firmware", NULL));
    ifaces = at(at(at(tspec, "domain", NULL), "devices", NULL), "interfaces", NULL);
    CHECK_INT(cJSON_GetArraySize(ifaces), 2);
    CHECK(!cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ifaces, 0), "macAddress"));
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ifaces, 0), "masquerade"));
    /* the rest of the machine is the member's */
    CHECK_STR(str_at(tspec, "domain.resources.requests.memory"), "1Gi");
    CHECK_STR(str_at(tspec, "volumes.2.cloudInitNoCloud.userData"), "#cloud-config");
    CHECK(has_line(&ch, "set runStrategy Always"));
    CHECK(has_line(&ch, "dropped running (runStrategy says it)"));
    CHECK(has_line(&ch, "dropped instancetype.revisionName"));
    CHECK(has_line(&ch, "dropped preference.revisionName"));
    CHECK(has_line(&ch, "set the template's labels to the failed VM's (app=shop, "
                        "kubevirt.io/domain=vm-001), not the member's (app=member-app, "
                        "kubevirt.io/domain=web-5)"));
    CHECK(has_line(&ch, "dropped template annotation "
                        "kubevirt.io/allow-pod-bridge-network-live-migration"));
    CHECK(has_line(&ch, "dropped template annotation vm.kubevirt.io/os"));
    CHECK(has_line(&ch, "dropped domain.firmware.uuid"));
    CHECK(has_line(&ch, "dropped domain.firmware.serial"));
    CHECK(has_line(&ch, "dropped macAddress of interface default"));
    CHECK(has_line(&ch, "dropped hostname"));
    CHECK(has_line(&ch, "dropped subdomain"));
    replica_changes_free(&ch);
    CHECK_INT(ch.n, 0);
    cJSON_Delete(vm);
    cJSON_Delete(tlabels);
    cJSON_free(json);
}

/* The change at path, when its op is op; NULL (and what there is, on
 * stderr) otherwise. */
static const struct replica_change *item_at(const struct replica_changes *c, const char *op,
                                            const char *path)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->item[i].path, path) == 0 && strcmp(c->item[i].op, op) == 0)
            return &c->item[i];
    fprintf(stderr, "no change %s %s among %zu:\n", op, path, c->n);
    for (size_t i = 0; i < c->n; i++)
        fprintf(stderr, "  %s %s\n", c->item[i].op, c->item[i].path);
    return NULL;
}

/* Whether v is the string want. */
static int is_str(const cJSON *v, const char *want)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

/* What `kvrecover score` shows: each change as a line and as data, the
 * replacement's metadata first. */
TEST(replica_changes_say_each_change_as_a_line_and_as_data)
{
    cJSON *labels = mt_doc("{app: shop}");
    cJSON *tlabels = mt_doc("{app: shop}");
    struct replica_spec s = spec_for(labels, tlabels);
    struct replica_changes ch = {0};
    char *json = member_json(member_vm), *err = NULL;
    cJSON *vm = NULL, *plain = NULL;
    const struct replica_change *c;

    CHECK_INT(replica_build(json, &s, &vm, &ch, &err), 0);
    CHECK(ch.item != NULL);
    CHECK_STR(ch.line[0], "set metadata.name vm-001-057c9867a0");
    CHECK(has_line(&ch, "set metadata.labels: the failed VM's (app=shop) plus "
                        "kvrecover.io/replaces=vm-001, kvrecover.io/policy=web, "
                        "kvrecover.io/template=web-5; not the member's (app=member-app, "
                        "tier=member)"));
    CHECK(has_line(&ch, "set metadata.annotations: kvrecover.io/score=0.6667, "
                        "kvrecover.io/failed-uid=3f2504e0-4f89-11d3-9a0c-0305e82c3301, "
                        "kvrecover.io/decided-at=\"2026-11-30T10:00:00Z\"; kept the member's "
                        "kvrecover.io/features; dropped the member's "
                        "kubevirt.io/latest-observed-api-version, "
                        "kubectl.kubernetes.io/last-applied-configuration, team"));
    CHECK(has_line(&ch, "dropped metadata.uid"));
    CHECK(has_line(&ch, "dropped metadata.managedFields"));
    CHECK(has_line(&ch, "dropped status"));
    /* the namespace was already the policy's: no change */
    for (size_t i = 0; i < ch.n; i++)
        CHECK(strcmp(ch.item[i].path, "/metadata/namespace") != 0);

    CHECK((c = item_at(&ch, "replace", "/metadata/name")) && is_str(c->old, "web-5") &&
          is_str(c->value, "vm-001-057c9867a0"));
    CHECK((c = item_at(&ch, "replace", "/metadata/labels")) &&
          is_str(cJSON_GetObjectItemCaseSensitive(c->old, "app"), "member-app") &&
          is_str(cJSON_GetObjectItemCaseSensitive(c->value, "kvrecover.io/replaces"), "vm-001") &&
          is_str(cJSON_GetObjectItemCaseSensitive(c->value, "app"), "shop"));
    CHECK((c = item_at(&ch, "remove", "/status")) && c->value == NULL &&
          is_str(cJSON_GetObjectItemCaseSensitive(c->old, "printableStatus"), "Stopped"));
    CHECK((c = item_at(&ch, "add", "/spec/runStrategy")) && is_str(c->value, "Always") &&
          c->old == NULL);
    CHECK((c = item_at(&ch, "remove", "/spec/running")) && cJSON_IsFalse(c->old));
    CHECK((c = item_at(&ch, "replace", "/spec/template/metadata/labels")) &&
          cJSON_Compare(c->value, tlabels, 1));
    /* a key with a '/' is one reference token: "~1" (RFC 6901) */
    CHECK((c = item_at(&ch, "remove", "/spec/template/metadata/annotations/vm.kubevirt.io~1os")) &&
          is_str(c->old, "ubuntu"));
    CHECK((c = item_at(&ch, "remove", "/spec/template/spec/domain/firmware/uuid")) &&
          is_str(c->old, "6a1f0b28-9d6b-5b53-8f6a-5e7c3c2f1a11"));
    CHECK((c = item_at(&ch, "remove",
                       "/spec/template/spec/domain/devices/interfaces/0/macAddress")) &&
          is_str(c->old, "02:00:00:00:00:05"));
    CHECK((c = item_at(&ch, "remove", "/spec/template/spec/hostname")) && is_str(c->old, "web-5"));
    CHECK((c = item_at(&ch, "replace", "/spec/dataVolumeTemplates/1/metadata/name")) &&
          is_str(c->old, "data") && is_str(c->value, "vm-001-057c9867a0-data"));
    CHECK((c = item_at(&ch, "replace",
                       "/spec/template/spec/volumes/1/persistentVolumeClaim/claimName")) &&
          is_str(c->old, "data") && is_str(c->value, "vm-001-057c9867a0-data"));
    /* the object is the same whether or not the changes are asked for */
    CHECK_INT(replica_build(json, &s, &plain, NULL, &err), 0);
    CHECK(cJSON_Compare(vm, plain, 1));
    replica_changes_free(&ch);
    CHECK(ch.item == NULL && ch.line == NULL);
    cJSON_Delete(vm);
    cJSON_Delete(plain);
    cJSON_Delete(labels);
    cJSON_Delete(tlabels);
    cJSON_free(json);
}

/* The offline CLI knows no decision time, and may know no uid or
 * namespace: those are left out, not written empty. */
TEST(replica_without_uid_time_or_namespace_leaves_them_out)
{
    struct replica_spec s = spec_for(NULL, NULL);
    struct replica_changes ch = {0};
    char *json = member_json("{apiVersion: kubevirt.io/v1, kind: VirtualMachine, metadata: {name: "
                             "m}, spec: {runStrategy: Always, template: {metadata: {labels: {app: "
                             "m}, creationTimestamp: null}}}}"),
         *err = NULL;
    cJSON *vm = NULL;
    const cJSON *meta, *ann;

    s.namespace = NULL;
    s.failed_uid = NULL;
    s.decided_at = NULL;
    CHECK_INT(replica_build(json, &s, &vm, &ch, &err), 0);
    meta = at(vm, "metadata", NULL);
    CHECK(!at(meta, "namespace", NULL));
    ann = at(meta, "annotations", NULL);
    CHECK_INT(cJSON_GetArraySize(ann), 1);
    CHECK(is_str(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/score"), "0.6667"));
    CHECK(has_line(&ch, "set metadata.annotations: kvrecover.io/score=0.6667"));
    CHECK(has_line(&ch, "set metadata.labels: the failed VM's (none) plus "
                        "kvrecover.io/replaces=vm-001, kvrecover.io/policy=web, "
                        "kvrecover.io/template=web-5"));
    /* runStrategy was Always already: no change; the template loses its
     * labels (the failed VM has none) and kubectl's creationTimestamp */
    CHECK(!has_line_quiet(&ch, "set runStrategy Always"));
    CHECK(has_line(&ch, "set the template's labels to the failed VM's (none), not the "
                        "member's (app=m)"));
    CHECK(item_at(&ch, "remove", "/spec/template/metadata/labels"));
    CHECK(has_line(&ch, "dropped spec.template.metadata.creationTimestamp"));
    replica_changes_free(&ch);
    cJSON_Delete(vm);
    cJSON_free(json);
}

TEST(replica_renames_data_volume_templates_and_the_volumes_that_use_them)
{
    struct replica_spec s = spec_for(NULL, NULL);
    struct replica_changes ch = {0};
    char *json = member_json(member_vm), *err = NULL;
    cJSON *vm = NULL;
    const cJSON *spec;

    CHECK_INT(replica_build(json, &s, &vm, &ch, &err), 0);
    spec = at(vm, "spec", NULL);
    CHECK_STR(str_at(spec, "dataVolumeTemplates.0.metadata.name"), "vm-001-057c9867a0-root");
    CHECK_STR(str_at(spec, "dataVolumeTemplates.1.metadata.name"), "vm-001-057c9867a0-data");
    CHECK_STR(str_at(spec, "dataVolumeTemplates.0.spec.storage.resources.requests.storage"),
              "10Gi");
    CHECK_STR(str_at(spec, "template.spec.volumes.0.dataVolume.name"), "vm-001-057c9867a0-root");
    CHECK_STR(str_at(spec, "template.spec.volumes.1.persistentVolumeClaim.claimName"),
              "vm-001-057c9867a0-data");
    CHECK(has_line(&ch, "renamed dataVolumeTemplate root to vm-001-057c9867a0-root"));
    CHECK(has_line(&ch, "renamed dataVolumeTemplate data to vm-001-057c9867a0-data"));
    CHECK(has_line(&ch, "pointed volume rootdisk at dataVolume vm-001-057c9867a0-root"));
    CHECK(has_line(&ch, "pointed volume datadisk at persistentVolumeClaim vm-001-057c9867a0-data"));
    /* no template labels on the failed VM: none on the replacement's either */
    CHECK(!at(at(at(spec, "template", NULL), "metadata", NULL), "labels", NULL));
    cJSON_Delete(vm);
    replica_changes_free(&ch);
    cJSON_free(json);
}

/* Two failures replaced from one member get two distinct disks. */
TEST(replica_two_replacements_of_one_member_get_distinct_disks)
{
    struct replica_spec s = spec_for(NULL, NULL);
    char *json = member_json(member_vm), *err = NULL;
    char *n1 = replica_name("vm-001", "uid-1"), *n2 = replica_name("vm-001", "uid-2");
    cJSON *a = NULL, *b = NULL;

    s.name = n1;
    CHECK_INT(replica_build(json, &s, &a, NULL, &err), 0);
    s.name = n2;
    CHECK_INT(replica_build(json, &s, &b, NULL, &err), 0);
    CHECK(strcmp(str_at(a, "spec.dataVolumeTemplates.0.metadata.name"),
                 str_at(b, "spec.dataVolumeTemplates.0.metadata.name")) != 0);
    CHECK(strcmp(str_at(a, "spec.template.spec.volumes.0.dataVolume.name"),
                 str_at(b, "spec.template.spec.volumes.0.dataVolume.name")) != 0);
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(n1);
    free(n2);
    cJSON_free(json);
}

/* Whether building from the template in YAML fails with want. */
static int build_refused(const char *yaml, const char *name, const char *want)
{
    struct replica_spec s = spec_for(NULL, NULL);
    struct replica_changes ch = {0};
    char *json = member_json(yaml), *err = NULL;
    cJSON *vm = (cJSON *)1;
    int rc, ok;

    if (name)
        s.name = name;
    rc = replica_build(json, &s, &vm, &ch, &err);
    ok = rc == -EINVAL && vm == NULL && ch.n == 0 && err && strcmp(err, want) == 0;
    if (!ok)
        fprintf(stderr, "rc %d, \"%s\", want \"%s\"\n", rc, err ? err : "(none)", want);
    if (rc == 0)
        cJSON_Delete(vm);
    free(err);
    cJSON_free(json);
    return ok;
}

TEST(replica_refuses_what_it_cannot_build)
{
    char name[200];

    CHECK(build_refused("{apiVersion: v1, kind: Pod}", NULL,
                        "pool member web-5: data.vm: not a VirtualMachine (kubevirt.io)"));
    CHECK(build_refused("{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {}}", NULL,
                        "pool member web-5: data.vm: spec.template: required"));
    CHECK(build_refused("{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {template: {},"
                        " dataVolumeTemplates: [{spec: {}}]}}",
                        NULL,
                        "pool member web-5: data.vm: spec.dataVolumeTemplates[0].metadata.name: "
                        "required"));
    CHECK(build_refused("{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {template: {},"
                        " dataVolumeTemplates: {a: 1}}}",
                        NULL,
                        "pool member web-5: data.vm: spec.dataVolumeTemplates: must be a list, "
                        "not a mapping"));
    /* 63 + 1 + 190 = 254 characters: one too many for a DataVolume */
    memset(name, 'd', 190);
    name[190] = '\0';
    {
        char yaml[512], want[700], repl[64];

        memset(repl, 'r', 63);
        repl[63] = '\0';
        snprintf(yaml, sizeof(yaml),
                 "{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {template: {},"
                 " dataVolumeTemplates: [{metadata: {name: %s}}]}}",
                 name);
        snprintf(want, sizeof(want),
                 "pool member web-5: data.vm: spec.dataVolumeTemplates[0]: renamed for the "
                 "replacement, %s-%s would be longer than 253 characters",
                 repl, name);
        CHECK(build_refused(yaml, repl, want));
        name[189] = '\0'; /* 253: allowed */
        snprintf(yaml, sizeof(yaml),
                 "{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {template: {},"
                 " dataVolumeTemplates: [{metadata: {name: %s}}]}}",
                 name);
        {
            struct replica_spec s = spec_for(NULL, NULL);
            char *json = member_json(yaml), *err = NULL;
            cJSON *vm = NULL;

            s.name = repl;
            CHECK_INT(replica_build(json, &s, &vm, NULL, &err), 0);
            CHECK_INT(strlen(str_at(vm, "spec.dataVolumeTemplates.0.metadata.name")), 253);
            cJSON_Delete(vm);
            cJSON_free(json);
        }
    }
    /* a member that shares a disk is never built from */
    CHECK(build_refused("{apiVersion: kubevirt.io/v1, kind: VirtualMachine, spec: {template: "
                        "{spec: {volumes: [{name: data, persistentVolumeClaim: {claimName: "
                        "shared}}]}}}}",
                        NULL,
                        "pool member web-5: data.vm: volume data uses persistentVolumeClaim "
                        "shared, not one of its own dataVolumeTemplates"));
    CHECK(build_refused("not json at all", NULL,
                        "pool member web-5: data.vm: not a VirtualMachine (kubevirt.io)"));
}

/* Whether replica_shared_disk() says detail (NULL: shares nothing) for the
 * VirtualMachine in YAML. */
static int shares(const char *yaml, const char *want)
{
    cJSON *vm = mt_doc(yaml);
    char *detail = (char *)"x";
    int rc = replica_shared_disk(vm, &detail), ok;

    ok = want ? rc == 1 && detail && strcmp(detail, want) == 0 : rc == 0 && detail == NULL;
    if (!ok)
        fprintf(stderr, "rc %d, \"%s\", want \"%s\"\n", rc, detail ? detail : "(none)",
                want ? want : "(none)");
    free(detail);
    cJSON_Delete(vm);
    return ok;
}

#define VM_WITH(dvts, vols)                                                                        \
    "{kind: VirtualMachine, spec: {dataVolumeTemplates: " dvts                                     \
    ", template: {spec: {volumes: " vols "}}}}"

TEST(replica_shared_disk_is_a_volume_on_a_disk_the_member_does_not_make)
{
    CHECK(shares(member_vm, NULL));
    CHECK(shares(VM_WITH("[]", "[{name: d, containerDisk: {image: x}}]"), NULL));
    CHECK(shares("{kind: VirtualMachine}", NULL));
    CHECK(shares("[1]", NULL));
    CHECK(shares(VM_WITH("[{metadata: {name: root}}]", "[{name: r, dataVolume: {name: other}}]"),
                 "volume r uses dataVolume other, not one of its own dataVolumeTemplates"));
    CHECK(shares(VM_WITH("[{metadata: {name: root}}]",
                         "[{name: r, dataVolume: {name: root}}, "
                         "{name: p, persistentVolumeClaim: {claimName: db-data}}]"),
                 "volume p uses persistentVolumeClaim db-data, not one of its own "
                 "dataVolumeTemplates"));
    /* a PVC made by one of its own DataVolume templates is its own */
    CHECK(shares(VM_WITH("[{metadata: {name: root}}]",
                         "[{name: p, persistentVolumeClaim: {claimName: root}}]"),
                 NULL));
    CHECK(shares(VM_WITH("[]", "[{persistentVolumeClaim: {}}]"),
                 "volume (unnamed) uses persistentVolumeClaim without a claimName, not one of "
                 "its own dataVolumeTemplates"));
    CHECK(shares(VM_WITH("[]", "[{name: 'a b', dataVolume: {name: \"x\\ny\"}}]"),
                 "volume \"a b\" uses dataVolume \"x\\ny\", not one of its own "
                 "dataVolumeTemplates"));
}
