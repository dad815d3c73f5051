/*
 * Unit tests for capture: the clean copy of a VirtualMachine (no inline
 * cloud-init data), the YAML that holds it, the features and resources
 * texts, the ConfigMap and its digest, and capture_vm() against an
 * in-memory API server: written once, not again until the VM changes, never
 * over a ConfigMap capture did not write (checked on the live object, the
 * patch pinned to the version checked), only while leading, only for a
 * policy with capture on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/yaml.h"
#include "ctl_test.h"
#include "reconcile/capture.h"
#include "sim/pool.h"

#define CMS "/api/v1/namespaces/fx/configmaps"
#define VM5 "/apis/kubevirt.io/v1/namespaces/fx/virtualmachines/vm-005"

TEST(clean_vm_drops_what_the_server_and_kubevirt_own)
{
    cJSON *vm = ctl_load("ctl-vm.json"), *clean, *m, *ann;
    char *omitted = (char *)"x";

    CHECK(vm != NULL);
    clean = capture_clean_vm(vm, &omitted);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(clean, "apiVersion")->valuestring, "kubevirt.io/v1");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(clean, "kind")->valuestring, "VirtualMachine");
    CHECK(cJSON_GetObjectItemCaseSensitive(clean, "status") == NULL);
    m = ctl_meta(clean);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring, "vm-005");
    CHECK(cJSON_GetObjectItemCaseSensitive(m, "labels") != NULL);
    for (const char *const *k =
             (const char *const[]){"uid", "resourceVersion", "managedFields", "creationTimestamp",
                                   "generation", "ownerReferences", "namespace", NULL};
         *k; k++)
        CHECK(cJSON_GetObjectItemCaseSensitive(m, *k) == NULL);
    ann = cJSON_GetObjectItemCaseSensitive(m, "annotations");
    CHECK_INT(cJSON_GetArraySize(ann), 1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "team")->valuestring, "shop");
    CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(clean, "spec"),
                        cJSON_GetObjectItemCaseSensitive(vm, "spec"), 1));
    CHECK(omitted == NULL); /* nothing inline to leave out */
    cJSON_Delete(clean);
    cJSON_Delete(vm);
}

TEST(yaml_reads_back_as_the_same_tree)
{
    static const char *const tricky =
        "{\"a\":\"20.04\",\"b\":\"true\",\"c\":\"a: b\",\"d\":\"\",\"e\":\"-x\",\"f\":\"#c\","
        "\"g\":\"two\\nlines\",\"h\":\"Yes\",\"i\":\"null\",\"j\":\"ünï\",\"k\":\" pad \","
        "\"l\":[],\"m\":{},\"n\":[1,2.5,true,null,\"s\",[\"x\"],{\"y\":\"z\"}],"
        "\"o\":{\"p\":{\"q\":[{\"r\":1,\"s\":[{\"t\":\"u\"}]}]}},\"1x\":\"k\",\"~\":\"~\"}";
    cJSON *vm = ctl_load("ctl-vm.json"), *clean, *in = cJSON_Parse(tricky), *back = NULL;
    char *y, *err = NULL, *omitted = NULL;

    CHECK(vm && in);
    clean = capture_clean_vm(vm, &omitted);
    y = capture_yaml(clean);
    CHECK(strstr(y, "kind: VirtualMachine\n") != NULL); /* block style, readable */
    CHECK_INT(yaml_parse_one(y, strlen(y), &back, &err), 0);
    CHECK(cJSON_Compare(back, clean, 1));
    free(y);
    cJSON_Delete(back);
    back = NULL;
    y = capture_yaml(in);
    CHECK_INT(yaml_parse_one(y, strlen(y), &back, &err), 0);
    /* strings stay strings: "20.04", "true", "null" were quoted */
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "a")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "b")));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(back, "i")));
    CHECK(cJSON_Compare(back, in, 1));
    free(y);
    cJSON_Delete(back);
    cJSON_Delete(clean);
    cJSON_Delete(in);
    cJSON_Delete(vm);
}

TEST(features_and_resources_texts_parse_back_to_the_same_set)
{
    cJSON *vm = ctl_load("ctl-vm.json");
    struct features f, g = {0};
    char *ft, *rt, *err = NULL;
    cJSON *doc = NULL;

    CHECK(vm != NULL);
    CHECK_INT(features_from_vm(vm, &f, &err), 0);
    ft = capture_features_yaml(&f);
    rt = capture_resources_yaml(&f);
    CHECK(strstr(ft, "database: [mysql, postgresql]\n") != NULL);
    CHECK(strstr(ft, "os: ubuntu-20.04\n") != NULL);
    CHECK_STR(rt, "cpu: 4\nmemory: 8Gi\ndisk: 40Gi\n");
    CHECK_INT(yaml_parse_one(ft, strlen(ft), &doc, &err), 0);
    CHECK_INT(features_parse_map(&g, doc, &err), 0);
    cJSON_Delete(doc);
    doc = NULL;
    CHECK_INT(yaml_parse_one(rt, strlen(rt), &doc, &err), 0);
    CHECK_INT(features_parse_resources(&g, doc, &err), 0);
    CHECK_INT(g.n, f.n);
    for (size_t i = 0; i < f.n; i++) {
        CHECK_STR(g.items[i].category, f.items[i].category);
        CHECK_STR(g.items[i].value, f.items[i].value);
    }
    CHECK_INT(g.has_res, f.has_res);
    for (int i = 0; i < FEATURES_NRES; i++)
        CHECK_NEAR(g.res[i], f.res[i], 1e-6);
    /* no features: empty texts */
    features_free(&g);
    free(ft);
    free(rt);
    ft = capture_features_yaml(&g);
    rt = capture_resources_yaml(&g);
    CHECK_STR(ft, "");
    CHECK_STR(rt, "");
    free(ft);
    free(rt);
    cJSON_Delete(doc);
    features_free(&f);
    cJSON_Delete(vm);
}

TEST(configmap_is_a_valid_pool_member_with_labels_and_a_digest)
{
    cJSON *vm = ctl_load("ctl-vm.json"), *labels = cJSON_Parse("{\"kvrecover.io/pool\":\"paper\","
                                                               "\"tier\":\"gold\"}");
    cJSON *cm, *cm2, *l;
    char *d1 = NULL, *d2 = NULL, *err = NULL;
    struct pool_member pm;

    CHECK(vm && labels);
    cm = capture_configmap(vm, "fx", "vm-005", labels, &d1, &err);
    CHECK(cm != NULL && d1 != NULL);
    l = cJSON_GetObjectItemCaseSensitive(ctl_meta(cm), "labels");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(l, "kvrecover.io/pool")->valuestring, "paper");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(l, "tier")->valuestring, "gold");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(l, "kvrecover.io/vm")->valuestring, "vm-005");
    CHECK(cJSON_GetObjectItemCaseSensitive(ctl_meta(cm), "ownerReferences") == NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(ctl_meta(cm), "annotations"),
                  "kvrecover.io/capture-digest")
                  ->valuestring,
              d1);
    /* what the controller wrote, the controller reads as a member */
    CHECK_INT(pool_member_from_json(cm, &pm, &err), 0);
    CHECK_STR(pm.vm, "vm-005");
    CHECK(pm.vm_template != NULL);
    CHECK(pm.features.n >= 6);
    pool_member_free(&pm);
    /* same input, same digest; a status change does not matter, a spec
     * change does */
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "status"), "printableStatus", "Stopped");
    cm2 = capture_configmap(vm, "fx", "vm-005", labels, &d2, &err);
    CHECK_STR(d1, d2);
    cJSON_Delete(cm2);
    free(d2);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Manual");
    cm2 = capture_configmap(vm, "fx", "vm-005", labels, &d2, &err);
    CHECK(strcmp(d1, d2) != 0);
    cJSON_Delete(cm2);
    free(d2);
    cJSON_Delete(cm);
    free(d1);
    cJSON_Delete(labels);
    cJSON_Delete(vm);
}

/* The rig with vm-005's whole object on the fake server. */
static int capture_up(struct ctl_rig *r)
{
    cJSON *vm = ctl_load("ctl-vm.json");

    if (ctl_up(r) != 0 || !vm)
        return -1;
    ctl_set_str(ctl_meta(vm), "namespace", "fx");
    cJSON_AddItemToObject(r->store, VM5, vm);
    return 0;
}

/* vm-005's pool member from the fixtures, renamed name, labelled for vm and
 * marked with capture's digest annotation (digest NULL: unmarked, as a
 * member someone wrote by hand), put into the cache and, as the API server
 * holds it, into the store. */
static void put_member(struct ctl_rig *r, const char *name, const char *vm, const char *digest)
{
    cJSON *list = ctl_load("ctl-pool-list.json"), *m, *ann;
    char *path = xasprintf(CMS "/%s", name);

    m = cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), 4), 1);
    ctl_set_str(ctl_meta(m), "name", name);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(m), "labels"), "kvrecover.io/vm", vm);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(m), "annotations");
    if (digest)
        ctl_set_str(ann, "kvrecover.io/capture-digest", digest);
    cache_member_put(r->cache, m);
    cJSON_DeleteItemFromObjectCaseSensitive(r->store, path);
    cJSON_AddItemToObject(r->store, path, m);
    free(path);
    cJSON_Delete(list);
}

/* The patch recorded at i: its body's metadata. */
static const cJSON *patch_meta(struct ctl_rig *r, int i)
{
    return ctl_meta(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->patches, i), "body"));
}

TEST(capture_writes_once_then_only_on_change)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    const cJSON *cm, *ann;
    cJSON *vms = ctl_load("ctl-vm-list.json"), *vm;

    CHECK_INT(capture_up(&r), 0);
    /* vm-005's member is one capture wrote, with an older digest: the live
     * ConfigMap is read, then patched in place at the version read */
    put_member(&r, "vm-005", "vm-005", "0000000000000000");
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets, 2);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.patches, 0), "path")->valuestring,
        CMS "/vm-005");
    cm = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.patches, 0), "body");
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cm, "data"), "vm"));
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(patch_meta(&r, 0), "resourceVersion")->valuestring,
              "543");
    /* a note about omitted inline data, left from an earlier capture, goes */
    ann = cJSON_GetObjectItemCaseSensitive(patch_meta(&r, 0), "annotations");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/capture-omitted")));
    CHECK_INT(ctl_events(&r, "Warning CaptureSkipped"), 0);
    /* nothing changed: no request at all */
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets, 2);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    /* the VM changes (its generation): fetched and written again */
    vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), 4);
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vm), "generation", cJSON_CreateNumber(2));
    CHECK(cache_vm_put(r.cache, vm) & CACHE_CHG_CAPTURE);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets, 4);
    CHECK_INT(cJSON_GetArraySize(r.patches), 2);
    cJSON_Delete(vms);
    capture_state_free(st);
    ctl_down(&r);
}

/* The case: both names taken by ConfigMaps capture did not write.
 * Before, two 409s ended in a merge patch of kvrecover-<vm>. */
TEST(capture_never_patches_a_configmap_it_did_not_write)
{
    static const char *const squatters[] = {
        /* outside the pool */
        "{\"metadata\":{\"name\":\"kvrecover-vm-005\",\"resourceVersion\":\"7\","
        "\"labels\":{\"app\":\"billing\"}},\"data\":{\"k\":\"v\"}}",
        /* the labels capture would write, but not capture's mark */
        "{\"metadata\":{\"name\":\"kvrecover-vm-005\",\"resourceVersion\":\"7\","
        "\"labels\":{\"kvrecover.io/pool\":\"paper\",\"kvrecover.io/vm\":\"vm-005\"}},"
        "\"data\":{\"k\":\"v\"}}",
        /* the mark, about another VM */
        "{\"metadata\":{\"name\":\"kvrecover-vm-005\",\"resourceVersion\":\"7\","
        "\"labels\":{\"kvrecover.io/pool\":\"paper\",\"kvrecover.io/vm\":\"vm-004\"},"
        "\"annotations\":{\"kvrecover.io/capture-digest\":\"1\"}},\"data\":{\"k\":\"v\"}}",
    };
    cJSON *list = ctl_load("ctl-pool-list.json"), *it;

    CHECK(list != NULL);
    for (size_t i = 0; i < sizeof(squatters) / sizeof(squatters[0]); i++) {
        struct ctl_rig r;
        struct capture_state *st = capture_state_new();

        CHECK_INT(capture_up(&r), 0);
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
        {
            cache_member_del(r.cache, it);
        }
        cJSON_AddItemToObject(r.store, CMS "/vm-005", cJSON_Parse("{\"data\":{\"x\":\"y\"}}"));
        cJSON_AddItemToObject(r.store, CMS "/kvrecover-vm-005", cJSON_Parse(squatters[i]));
        CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
        CHECK_INT(r.posts, 2);
        CHECK_INT(cJSON_GetArraySize(r.patches), 0);
        CHECK_INT(ctl_events(&r, "Warning CaptureSkipped VirtualMachine/vm-005: not capturing "
                                 "into ConfigMap kvrecover-vm-005"),
                  1);
        /* reported once, not on every pass */
        CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
        CHECK_INT(ctl_events(&r, "Warning CaptureSkipped"), 1);
        capture_state_free(st);
        ctl_down(&r);
    }
    cJSON_Delete(list);
}

/* A member someone wrote by hand for the VM is theirs: capture neither
 * overwrites it nor writes a second member for the same VM beside it. */
TEST(capture_leaves_a_hand_written_member_alone)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();

    CHECK_INT(capture_up(&r), 0);
    /* the fixtures' vm-005 member: labelled for vm-005, no digest */
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets + r.posts + cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning CaptureSkipped VirtualMachine/vm-005: not capturing into "
                             "ConfigMap vm-005: capture did not write it"),
              1);
    capture_state_free(st);
    ctl_down(&r);
}

/* The cache may be behind: a member capture wrote, replaced since by one
 * written by hand, is checked on the live object and left alone. */
TEST(capture_checks_the_live_configmap_before_patching)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    cJSON *live;

    CHECK_INT(capture_up(&r), 0);
    put_member(&r, "vm-005", "vm-005", "0000000000000000");
    live = cJSON_GetObjectItemCaseSensitive(r.store, CMS "/vm-005");
    cJSON_DeleteItemFromObjectCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ctl_meta(live), "annotations"),
        "kvrecover.io/capture-digest");
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(ctl_events(&r, "Warning CaptureSkipped"), 1);
    capture_state_free(st);
    ctl_down(&r);
}

TEST(capture_not_ours_names_the_first_reason)
{
    static const struct {
        const char *cm;
        const char *why; /* a piece of the reason, or NULL: ours */
    } cases[] = {
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/pool\":\"p\",\"kvrecover.io/vm\":\"a\"},"
         "\"annotations\":{\"kvrecover.io/capture-digest\":\"0\"}}}",
         NULL},
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/vm\":\"a\"},"
         "\"annotations\":{\"kvrecover.io/capture-digest\":\"0\"}}}",
         "not a pool member"},
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/pool\":\"p\"},"
         "\"annotations\":{\"kvrecover.io/capture-digest\":\"0\"}}}",
         "describes no VM"},
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/pool\":\"p\",\"kvrecover.io/vm\":\"b\"},"
         "\"annotations\":{\"kvrecover.io/capture-digest\":\"0\"}}}",
         "names another VM"},
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/pool\":\"p\",\"kvrecover.io/vm\":\"a\"}}}",
         "capture did not write it"},
        {"{\"metadata\":{\"labels\":{\"kvrecover.io/pool\":\"p\",\"kvrecover.io/vm\":\"a\"},"
         "\"annotations\":{\"kvrecover.io/capture-digest\":7}}}",
         "capture did not write it"},
        {"[]", "not a pool member"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *cm = cJSON_Parse(cases[i].cm);
        const char *why = capture_not_ours(cm, "a");

        if (cases[i].why == NULL)
            CHECK(why == NULL);
        else
            CHECK(why != NULL && strstr(why, cases[i].why) != NULL);
        cJSON_Delete(cm);
    }
}

/* Inline cloud-init data (passwords, keys) never reaches a ConfigMap; the
 * Secret references do, and an annotation says what was left out. */
TEST(capture_drops_inline_cloud_init_and_keeps_secret_references)
{
    cJSON *vm = ctl_load("ctl-vm.json"), *vols, *labels = cJSON_Parse("{}"), *cm, *clean;
    char *digest = NULL, *err = NULL, *text, *omitted = NULL;
    const cJSON *ann;

    CHECK(vm && labels);
    vols = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "spec"),
                                             "template"),
            "spec"),
        "volumes");
    cJSON_AddItemToArray(
        vols, cJSON_Parse("{\"name\":\"cloudinitdisk\",\"cloudInitNoCloud\":{\"userData\":"
                          "\"#cloud-config\\npassword: hunter2\\n\",\"networkData\":\"net-s3cret\","
                          "\"secretRef\":{\"name\":\"ud-secret\"}}}"));
    cJSON_AddItemToArray(
        vols, cJSON_Parse("{\"name\":\"drive\",\"cloudInitConfigDrive\":{\"userDataBase64\":"
                          "\"aHVudGVyMg==\",\"networkDataBase64\":\"bmV0\","
                          "\"networkDataSecretRef\":{\"name\":\"net-secret-ref\"}}}"));
    cm = capture_configmap(vm, "fx", "vm-005", labels, &digest, &err);
    CHECK(cm != NULL);
    text = cJSON_PrintUnformatted(cm);
    CHECK(strstr(text, "hunter2") == NULL);
    CHECK(strstr(text, "net-s3cret") == NULL);
    CHECK(strstr(text, "aHVudGVyMg") == NULL);
    CHECK(strstr(text, "bmV0") == NULL);
    CHECK(strstr(text, "ud-secret") != NULL);
    CHECK(strstr(text, "net-secret-ref") != NULL);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(cm), "annotations");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/capture-omitted")->valuestring,
              "volumes[cloudinitdisk].cloudInitNoCloud.userData, "
              "volumes[cloudinitdisk].cloudInitNoCloud.networkData, "
              "volumes[drive].cloudInitConfigDrive.userDataBase64, "
              "volumes[drive].cloudInitConfigDrive.networkDataBase64");
    /* the VM itself is untouched */
    free(text);
    text = cJSON_PrintUnformatted(vm);
    CHECK(strstr(text, "hunter2") != NULL);
    /* many volumes: the note stays bounded */
    for (int i = 0; i < 200; i++) {
        char *v = xasprintf("{\"name\":\"volume-with-a-rather-long-name-%03d\","
                            "\"cloudInitNoCloud\":{\"userData\":\"x\"}}",
                            i);
        cJSON_AddItemToArray(vols, cJSON_Parse(v));
        free(v);
    }
    clean = capture_clean_vm(vm, &omitted);
    CHECK(omitted != NULL);
    CHECK(strlen(omitted) < CAPTURE_OMITTED_MAX);
    CHECK(strcmp(omitted + strlen(omitted) - 5, ", ...") == 0);
    cJSON_Delete(clean);
    free(omitted);
    free(text);
    free(digest);
    cJSON_Delete(cm);
    cJSON_Delete(labels);
    cJSON_Delete(vm);
}

/* Empties the cached pool: every member of the fixture is deleted. */
static void drop_members(struct ctl_rig *r)
{
    cJSON *list = ctl_load("ctl-pool-list.json"), *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
    {
        cache_member_del(r->cache, it);
    }
    cJSON_Delete(list);
}

TEST(capture_creates_a_member_when_there_is_none)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    const cJSON *cm;

    CHECK_INT(capture_up(&r), 0);
    drop_members(&r);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.posts, 1);
    cm = cJSON_GetObjectItemCaseSensitive(r.store, CMS "/vm-005");
    CHECK(cm != NULL);
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)cm), "labels"), "kvrecover.io/pool")
            ->valuestring,
        "paper");
    capture_state_free(st);
    ctl_down(&r);
}

TEST(capture_keeps_out_of_the_way_of_a_configmap_about_something_else)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *m5;

    CHECK_INT(capture_up(&r), 0);
    /* member vm-005 now describes another VM */
    m5 = cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), 4), 1);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(m5), "labels"), "kvrecover.io/vm",
                "legacy");
    CHECK(cache_member_put(r.cache, m5) > 0);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.posts, 1);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(r.store, CMS "/kvrecover-vm-005") != NULL);
    cJSON_Delete(m5);
    cJSON_Delete(list);
    capture_state_free(st);
    ctl_down(&r);
}

TEST(capture_falls_back_when_the_name_is_taken_outside_the_pool)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *it;

    CHECK_INT(capture_up(&r), 0);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
    {
        cache_member_del(r.cache, it);
    }
    /* a ConfigMap vm-005 without the pool label: invisible to the cache */
    cJSON_AddItemToObject(r.store, CMS "/vm-005", cJSON_Parse("{\"data\":{\"x\":\"y\"}}"));
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.posts, 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(r.store, CMS "/kvrecover-vm-005") != NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(r.store, CMS "/vm-005"), "data")
                  ->child->valuestring,
              "y");
    cJSON_Delete(list);
    capture_state_free(st);
    ctl_down(&r);
}

TEST(capture_off_or_not_leading_writes_nothing)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();

    CHECK_INT(capture_up(&r), 0);
    r.leading = 0;
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets + r.posts + cJSON_GetArraySize(r.patches), 0);
    r.leading = 1;
    ctl_edit_policy(&r, "capture", cJSON_CreateFalse());
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.gets + r.posts + cJSON_GetArraySize(r.patches), 0);
    /* a VM no policy selects */
    ctl_edit_policy(&r, "capture", cJSON_CreateTrue());
    CHECK_INT(capture_vm(&r.env, st, "fx", "no-such-vm"), 0);
    CHECK_INT(r.gets + r.posts + cJSON_GetArraySize(r.patches), 0);
    capture_state_free(st);
    ctl_down(&r);
}

/* ---- the identity of capture's writes (issue 12: no confused deputy) ---- */

TEST(capture_writes_as_the_policys_service_account_else_the_default_one)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    int n;

    CHECK_INT(capture_up(&r), 0);
    /* a patch of capture's own member, as the policy's ServiceAccount */
    ctl_edit_policy(&r, "serviceAccountName", cJSON_CreateString("recoverer"));
    r.env.default_service_account = "kvrecover-recoverer";
    put_member(&r, "vm-005", "vm-005", "0000000000000000");
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK(ctl_writes_all_as(&r, "Impersonate-User: system:serviceaccount:fx:recoverer\n", &n));
    CHECK_INT(n, 1);
    ctl_down(&r);
    capture_state_free(st);

    /* a create, for a policy naming none: as the default one */
    st = capture_state_new();
    CHECK_INT(capture_up(&r), 0);
    r.env.default_service_account = "kvrecover-recoverer";
    drop_members(&r);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(r.posts, 1);
    CHECK(ctl_writes_all_as(&r, "Impersonate-User: system:serviceaccount:fx:kvrecover-recoverer\n",
                            &n));
    CHECK_INT(n, 1);
    capture_state_free(st);
    ctl_down(&r);
}

TEST(capture_forbidden_as_the_tenant_writes_nothing_and_says_why)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();

    CHECK_INT(capture_up(&r), 0);
    ctl_edit_policy(&r, "serviceAccountName", cJSON_CreateString("recoverer"));
    drop_members(&r);
    r.deny_as = 1;
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), -EACCES);
    CHECK(cJSON_GetObjectItemCaseSensitive(r.store, CMS "/vm-005") == NULL);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning CaptureForbidden VirtualMachine/vm-005"), 1);
    CHECK_INT(ctl_events_with(&r, "cannot impersonate resource \"serviceaccounts\""), 1);
    /* granted: the retry captures */
    r.deny_as = 0;
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(r.store, CMS "/vm-005") != NULL);
    capture_state_free(st);
    ctl_down(&r);
}

/* A deleted VM's memory goes with it: a VM created again under the name
 * is captured afresh. */
TEST(capture_forgets_a_deleted_vm)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    int before;

    CHECK_INT(capture_up(&r), 0);
    drop_members(&r); /* capture writes only members it made: let it make one */
    CHECK_INT(capture_size(st), 0);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(capture_size(st), 1);
    CHECK_INT(r.posts, 1);
    capture_forget(st, "fx", "other");
    CHECK_INT(capture_size(st), 1);
    capture_forget(st, "fx", "vm-005");
    CHECK_INT(capture_size(st), 0);
    /* forgotten: looked at again (without the memory, nothing says it is current) */
    before = r.gets + r.posts + cJSON_GetArraySize(r.patches);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK(r.gets + r.posts + cJSON_GetArraySize(r.patches) > before);
    CHECK_INT(capture_size(st), 1);
    capture_state_free(st);
    ctl_down(&r);
}

/* A capture that read its VM before the delete handler forgot it leaves an
 * entry behind: the resync's prune takes it, and only it. */
TEST(capture_prune_forgets_what_a_late_capture_left_of_a_deleted_vm)
{
    struct ctl_rig r;
    struct capture_state *st = capture_state_new();
    cJSON *del = cJSON_Parse("{\"metadata\":{\"namespace\":\"fx\",\"name\":\"vm-005\"}}");

    CHECK_INT(capture_up(&r), 0);
    drop_members(&r);
    CHECK_INT(capture_vm(&r.env, st, "fx", "vm-005"), 0);
    CHECK_INT(capture_size(st), 1);
    CHECK_INT(capture_prune(st, r.cache), 0); /* still in the cache: kept */
    CHECK_INT(capture_size(st), 1);
    /* deleted from the cache, and the delete handler's forget came first */
    CHECK_INT(cache_vm_del(r.cache, del), 1);
    CHECK_INT(capture_prune(st, r.cache), 1);
    CHECK_INT(capture_size(st), 0);
    cJSON_Delete(del);
    capture_state_free(st);
    ctl_down(&r);
}
