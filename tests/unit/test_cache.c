/*
 * Unit tests for the cache: compact records from objects as the API server
 * sends them (recorded fixtures tests/fixtures/ctl-*.json), change flags,
 * packed labels and selectors, the replacement index, pool versions, and
 * the bytes a cached VMI costs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_test.h"
#include "sim/pool.h"

/* Item i of a List fixture, or NULL. */
static cJSON *item(cJSON *list, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), i);
}

TEST(packed_labels_round_trip_and_lookup)
{
    cJSON *labels = cJSON_Parse("{\"app\":\"shop\",\"tier\":\"web\",\"n\":1,\"\":\"x\"}");
    char *p = cache_labels_pack(labels);
    cJSON *back = cache_labels_json(p);

    CHECK(p != NULL);
    CHECK_STR(cache_label(p, "app"), "shop");
    CHECK_STR(cache_label(p, "tier"), "web");
    /* non-string values and empty keys are not labels */
    CHECK(cache_label(p, "n") == NULL);
    CHECK(cache_label(p, "missing") == NULL);
    CHECK_INT(cJSON_GetArraySize(back), 2);
    CHECK(cache_label(NULL, "app") == NULL);
    CHECK(cache_labels_pack(NULL) == NULL);
    free(p);
    cJSON_Delete(back);
    cJSON_Delete(labels);
}

TEST(selector_on_packed_labels_agrees_with_policy_selector_matches)
{
    static const char *const sels[] = {
        "{\"matchLabels\":{\"app\":\"shop\"}}",
        "{\"matchLabels\":{\"app\":\"shop\",\"tier\":\"web\"}}",
        "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"web\","
        "\"db\"]}]}",
        "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":[\"db\"]}]}",
        "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}",
        "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}",
        "{\"matchLabels\":{\"app\":\"shop\"},\"matchExpressions\":[{\"key\":\"tier\","
        "\"operator\":\"NotIn\",\"values\":[\"web\"]}]}",
    };
    static const char *const label_sets[] = {
        "{}",
        "{\"app\":\"shop\"}",
        "{\"app\":\"shop\",\"tier\":\"web\"}",
        "{\"app\":\"other\",\"tier\":\"db\"}",
        "{\"tier\":\"cache\"}",
    };
    int agree = 0, total = 0, some_true = 0;

    for (size_t i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
        cJSON *sj = cJSON_Parse(sels[i]);
        struct policy_selector sel;
        char *err = NULL;

        CHECK(policy_parse_selector(sj, "spec.selector", &sel, &err) == 0);
        for (size_t k = 0; k < sizeof(label_sets) / sizeof(label_sets[0]); k++) {
            cJSON *lj = cJSON_Parse(label_sets[k]);
            char *packed = cache_labels_pack(lj);
            int a = policy_selector_matches(&sel, lj), b = cache_selector_matches(&sel, packed);

            agree += a == b;
            some_true += b;
            total++;
            free(packed);
            cJSON_Delete(lj);
        }
        policy_selector_free(&sel);
        cJSON_Delete(sj);
    }
    CHECK_INT(agree, total);
    /* the matrix exercises both outcomes */
    CHECK(some_true > 0 && some_true < total);
}

TEST(vmi_record_keeps_the_fields_recovery_needs)
{
    struct cache *c = cache_new();
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    struct cache_vmi *r;
    struct features f;
    char *err = NULL;
    double since;
    int chg;

    CHECK(vmi != NULL);
    chg = cache_vmi_put(c, vmi, 2000000000.0, 50.0);
    CHECK(chg & CACHE_CHG_NEW);
    cache_rdlock(c);
    r = cache_vmi_find(c, "fx", "vm-001");
    CHECK(r != NULL);
    CHECK_STR(r->ns, "fx");
    CHECK_STR(r->name, "vm-001");
    CHECK_STR(r->uid, "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c");
    CHECK(r->owner_uid == NULL); /* the fixture has no owner */
    CHECK_INT(r->phase, CACHE_PHASE_FAILED);
    CHECK_STR(cache_label(r->labels, "app"), "paper");
    /* the phase began when KubeVirt says, not when the cache saw it */
    CHECK_INT(clock_parse("2026-11-25T19:30:00Z", &since), 0);
    CHECK_NEAR(r->phase_since, since, 1e-6);
    CHECK_NEAR(r->seen_mono, 50.0, 1e-9);
    CHECK(r->spec.features != NULL);
    CHECK(r->spec.error == NULL);
    CHECK(cache_spec_features(&r->spec, &f, &err) == 0);
    cache_unlock(c);
    /* the same set features_from_vmi() reads from the whole object */
    {
        struct features whole;
        char *e2 = NULL;

        CHECK(features_from_vmi(vmi, &whole, &e2) == 0);
        CHECK_INT(f.n, whole.n);
        for (size_t i = 0; i < f.n; i++) {
            CHECK_STR(f.items[i].category, whole.items[i].category);
            CHECK_STR(f.items[i].value, whole.items[i].value);
        }
        CHECK_INT(f.has_res, whole.has_res);
        CHECK_NEAR(f.res[FEATURES_CPU], 2, 1e-9);
        CHECK_NEAR(f.res[FEATURES_MEMORY], 4.0 * 1024 * 1024 * 1024, 1);
        features_free(&whole);
    }
    features_free(&f);
    cJSON_Delete(vmi);
    cache_free(c);
}

TEST(vmi_change_flags_say_what_changed)
{
    struct cache *c = cache_new();
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    cJSON *status;

    CHECK(vmi != NULL);
    CHECK(cache_vmi_put(c, vmi, 1, 1) & CACHE_CHG_NEW);
    /* the same object again: nothing the controller reads changed */
    CHECK_INT(cache_vmi_put(c, vmi, 2, 2), 0);
    status = cJSON_GetObjectItemCaseSensitive(vmi, "status");
    ctl_set_str(status, "phase", "Running");
    CHECK_INT(cache_vmi_put(c, vmi, 3, 3), CACHE_CHG_PHASE);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(vmi), "labels"), "tier", "web");
    CHECK_INT(cache_vmi_put(c, vmi, 4, 4), CACHE_CHG_LABELS);
    ctl_set_str(ctl_meta(vmi), "uid", "another-uid");
    CHECK(cache_vmi_put(c, vmi, 5, 5) & CACHE_CHG_NEW);
    /* a phase seen without a transition timestamp begins now */
    ctl_set_str(status, "phase", "Unknown");
    CHECK_INT(cache_vmi_put(c, vmi, 6, 60), CACHE_CHG_PHASE);
    cache_rdlock(c);
    CHECK_NEAR(cache_vmi_find(c, "fx", "vm-001")->phase_since, 6, 1e-9);
    CHECK_NEAR(cache_vmi_find(c, "fx", "vm-001")->seen_mono, 60, 1e-9);
    cache_unlock(c);
    /* and keeps that start while it stays */
    CHECK_INT(cache_vmi_put(c, vmi, 7, 70), 0);
    cache_rdlock(c);
    CHECK_NEAR(cache_vmi_find(c, "fx", "vm-001")->phase_since, 6, 1e-9);
    cache_unlock(c);
    CHECK_INT(cache_vmi_del(c, vmi), 1);
    CHECK_INT(cache_vmi_del(c, vmi), 0);
    cJSON_Delete(vmi);
    cache_free(c);
}

TEST(vmi_with_unreadable_features_is_kept_with_the_error)
{
    struct cache *c = cache_new();
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    struct features f;
    char *err = NULL;

    CHECK(vmi != NULL);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(vmi), "annotations"),
                "kvrecover.io/features", "{os: [unclosed");
    CHECK(cache_vmi_put(c, vmi, 1, 1) > 0);
    cache_rdlock(c);
    CHECK(cache_vmi_find(c, "fx", "vm-001")->spec.error != NULL);
    CHECK_INT(cache_spec_features(&cache_vmi_find(c, "fx", "vm-001")->spec, &f, &err), -EINVAL);
    cache_unlock(c);
    CHECK(err != NULL && strstr(err, "kvrecover.io/features") != NULL);
    free(err);
    cJSON_Delete(vmi);
    cache_free(c);
}

TEST(vm_fingerprint_ignores_status_and_generated_annotations)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("ctl-vm.json"), *ann;
    uint64_t fp;

    CHECK(vm != NULL);
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_CAPTURE);
    cache_rdlock(c);
    fp = cache_vm_find(c, "paper", "vm-005")->fingerprint;
    CHECK_STR(cache_label(cache_vm_find(c, "paper", "vm-005")->tlabels, "app"), "paper");
    CHECK(cache_vm_find(c, "paper", "vm-005")->spec.features != NULL);
    CHECK_INT(cache_vm_find(c, "paper", "vm-005")->run_strategy, CACHE_RS_ALWAYS);
    cache_unlock(c);
    /* status and resourceVersion change: no capture */
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "status"), "printableStatus", "Stopped");
    ctl_set_str(ctl_meta(vm), "resourceVersion", "999");
    CHECK_INT(cache_vm_put(c, vm) & CACHE_CHG_CAPTURE, 0);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations");
    ctl_set_str(ann, "kubevirt.io/latest-observed-api-version", "v2");
    CHECK_INT(cache_vm_put(c, vm) & CACHE_CHG_CAPTURE, 0);
    cache_rdlock(c);
    CHECK(cache_vm_find(c, "paper", "vm-005")->fingerprint == fp);
    cache_unlock(c);
    /* a user's annotation, or a spec change (generation), does */
    ctl_set_str(ann, "team", "billing");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_CAPTURE);
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vm), "generation", cJSON_CreateNumber(2));
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_CAPTURE);
    /* runStrategy Halted */
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Halted");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "paper", "vm-005")->run_strategy, CACHE_RS_HALTED);
    cache_unlock(c);
    cJSON_Delete(vm);
    cache_free(c);
}

TEST(replacements_are_indexed_by_failed_uid)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("ctl-vm.json"), *ann, *labels;
    struct cache_vm *r;

    CHECK(vm != NULL);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations");
    labels = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "labels");
    ctl_set_str(ctl_meta(vm), "name", "vm-001-606f7b115d");
    ctl_set_str(ann, CACHE_FAILED_UID_ANNOTATION, "uid-1");
    ctl_set_str(ann, CACHE_SCORE_ANNOTATION, "0.6667");
    ctl_set_str(ann, CACHE_DECIDED_AT_ANNOTATION, "2026-11-25T19:25:33Z");
    ctl_set_str(labels, CACHE_POLICY_LABEL, "paper");
    ctl_set_str(labels, CACHE_REPLACES_LABEL, "vm-001");
    ctl_set_str(labels, CACHE_TEMPLATE_LABEL, "vm-005");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_REPL);
    cache_rdlock(c);
    r = cache_vm_find_replacement(c, "uid-1");
    CHECK(r != NULL);
    CHECK_STR(r->name, "vm-001-606f7b115d");
    CHECK_STR(r->repl->policy, "paper");
    CHECK_STR(r->repl->replaces, "vm-001");
    CHECK_STR(r->repl->tmpl, "vm-005");
    CHECK_NEAR(r->repl->score, 0.6667, 1e-9);
    CHECK(cache_vm_find_replacement(c, "uid-2") == NULL);
    cache_unlock(c);
    /* an update keeps it indexed; a delete removes it */
    CHECK_INT(cache_vm_put(c, vm), 0);
    cache_rdlock(c);
    CHECK(cache_vm_find_replacement(c, "uid-1") != NULL);
    cache_unlock(c);
    CHECK_INT(cache_vm_del(c, vm), 1);
    cache_rdlock(c);
    CHECK(cache_vm_find_replacement(c, "uid-1") == NULL);
    cache_unlock(c);
    cJSON_Delete(vm);
    cache_free(c);
}

TEST(policy_is_parsed_once_per_generation_and_invalid_ones_are_kept)
{
    struct cache *c = cache_new();
    cJSON *p = ctl_load("ctl-policy.json"), *w;
    struct cache_policy *r;

    CHECK(p != NULL);
    CHECK(cache_policy_put(c, p) & CACHE_CHG_NEW);
    cache_rdlock(c);
    r = cache_policy_find(c, "fx", "paper");
    CHECK(r != NULL && r->valid);
    CHECK_INT(r->generation, 1);
    CHECK_INT(r->pol.nweights, 3);
    CHECK_NEAR(r->pol.threshold, 0.5, 1e-12);
    cache_unlock(c);
    /* a status update: STATUS only, the parse is kept */
    cJSON_AddItemToObject(p, "status", cJSON_Parse("{\"protected\":5}"));
    CHECK_INT(cache_policy_put(c, p), CACHE_CHG_STATUS);
    cache_rdlock(c);
    r = cache_policy_find(c, "fx", "paper");
    CHECK(r->valid && r->pol.nweights == 3);
    CHECK(r->status != NULL);
    cache_unlock(c);
    /* Language and language: the schema allows it, the controller does not */
    w = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "spec"), "weights");
    cJSON_AddNumberToObject(w, "Language", 0.2);
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(p), "generation", cJSON_CreateNumber(2));
    CHECK(cache_policy_put(c, p) & CACHE_CHG_SPEC);
    cache_rdlock(c);
    r = cache_policy_find(c, "fx", "paper");
    CHECK(!r->valid);
    CHECK(r->error != NULL && strstr(r->error, "spec.weights") != NULL);
    cache_unlock(c);
    CHECK_INT(cache_policy_del(c, p), 1);
    cJSON_Delete(p);
    cache_free(c);
}

/* walk_KIND(c, ns, keep): the records a walk of ns (NULL: all) meets, in
 * order, as "ns/name,..." ("" for none), keeping only those of namespace
 * keep (NULL: every one). A static buffer: compare it before the next walk. */
#define WALKER(kind)                                                                               \
    static const char *walk_##kind(struct cache *c, const char *ns, const char *keep)              \
    {                                                                                              \
        static char out[1024];                                                                     \
        size_t n = 0;                                                                              \
                                                                                                   \
        out[0] = '\0';                                                                             \
        cache_rdlock(c);                                                                           \
        for (struct cache_##kind *r = cache_##kind##_first(c, ns); r;                              \
             r = cache_##kind##_next(r, ns))                                                       \
            if ((!keep || strcmp(r->ns, keep) == 0) && n < sizeof(out))                            \
                n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s/%s", n ? "," : "", r->ns,    \
                                      r->name);                                                    \
        cache_unlock(c);                                                                           \
        return out;                                                                                \
    }
WALKER(vmi)
WALKER(vm)
WALKER(policy)
WALKER(member)

static int vmi_put(struct cache *c, const cJSON *obj)
{
    return cache_vmi_put(c, obj, 1, 1);
}

/* Stores (or deletes) a copy of obj as ns/name (name NULL: its own) with
 * op, one of the put and del functions. Returns what op does. */
static int as(struct cache *c, int (*op)(struct cache *, const cJSON *), const cJSON *obj,
              const char *ns, const char *name)
{
    cJSON *o = cJSON_Duplicate(obj, 1);
    int rc;

    ctl_set_str(ctl_meta(o), "namespace", ns);
    if (name)
        ctl_set_str(ctl_meta(o), "name", name);
    rc = op(c, o);
    cJSON_Delete(o);
    return rc;
}

TEST(members_keep_features_and_compact_template_and_bump_the_pool_version)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *bad, *tmpl, *pol = ctl_load("ctl-policy.json");
    struct cache_member *m;
    uint64_t v;

    CHECK(list != NULL && pol != NULL);
    CHECK(cache_policy_put(c, pol) & CACHE_CHG_NEW); /* members are parsed where a policy is */
    for (int i = 0; i < 5; i++)
        CHECK(cache_member_put(c, item(list, i)) & CACHE_CHG_NEW);
    cache_rdlock(c);
    v = cache_pool_version(c, "fx");
    CHECK(v >= 5);
    CHECK(cache_pool_version(c, "elsewhere") == 0);
    m = cache_member_find(c, "fx", "vm-005");
    CHECK(m != NULL && m->error == NULL);
    CHECK_STR(m->vm, "vm-005");
    CHECK_INT(m->nitems, 6); /* os, language, 2 databases, 2 webservers */
    {
        struct features f;
        char *text = cache_member_template(m);

        CHECK_INT(cache_member_features(m, &f), 0);
        CHECK_INT(f.n, 6);
        CHECK_STR(f.items[0].category, "database");
        CHECK_STR(f.items[0].value, "mysql");
        features_free(&f);
        /* kept deflated: well under the JSON's size */
        CHECK(m->tmpl_z != NULL && m->tmpl_zlen * 2 < m->tmpl_len);
        CHECK(text != NULL && strlen(text) == m->tmpl_len);
        CHECK(strchr(text, '\n') == NULL); /* compact */
        tmpl = cJSON_Parse(text);
        free(text);
        CHECK_STR(cJSON_GetObjectItemCaseSensitive(tmpl, "kind")->valuestring, "VirtualMachine");
        CHECK_STR(cJSON_GetObjectItemCaseSensitive(
                      cJSON_GetObjectItemCaseSensitive(tmpl, "metadata"), "name")
                      ->valuestring,
                  "vm-005");
        cJSON_Delete(tmpl);
    }
    cache_unlock(c);
    /* an identical put changes nothing */
    CHECK_INT(cache_member_put(c, item(list, 4)), 0);
    cache_rdlock(c);
    CHECK(cache_pool_version(c, "fx") == v);
    cache_unlock(c);
    /* a bad member is kept, with an error naming it */
    bad = cJSON_Duplicate(item(list, 0), 1);
    ctl_set_str(ctl_meta(bad), "name", "vm-000");
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(bad, "data"), "features",
                "os: [ubuntu, {unclosed");
    CHECK(cache_member_put(c, bad) & CACHE_CHG_NEW);
    cache_rdlock(c);
    CHECK(cache_pool_version(c, "fx") > v);
    m = cache_member_find(c, "fx", "vm-000");
    CHECK(m != NULL && m->error != NULL && strstr(m->error, "vm-000") != NULL);
    /* refused: its labels (for the policies' selectors) and nothing else */
    CHECK(m->labels != NULL && m->vm == NULL && m->digest == NULL && m->nitems == 0);
    v = cache_pool_version(c, "fx");
    cache_unlock(c);
    CHECK_INT(cache_member_del(c, bad), 1);
    cache_rdlock(c);
    CHECK(cache_pool_version(c, "fx") > v);
    CHECK(cache_member_find(c, "fx", "vm-000") == NULL);
    cache_unlock(c);
    cJSON_Delete(bad);
    cJSON_Delete(list);
    cJSON_Delete(pol);
    cache_free(c);
}

/* A copy of pool member i of list named name, with data.features text
 * (NULL: as it is). The caller deletes it. */
static cJSON *member_as(cJSON *list, int i, const char *name, const char *features)
{
    cJSON *m = cJSON_Duplicate(item(list, i), 1);

    ctl_set_str(ctl_meta(m), "name", name);
    if (features)
        ctl_set_str(cJSON_GetObjectItemCaseSensitive(m, "data"), "features", features);
    return m;
}

/* Issue 12: a namespace without a policy does not pay for parsing its pool
 * (a hostile ConfigMap there costs what it weighs, deflated, and nothing
 * reports it); the policy's arrival parses it, refusals included. */
TEST(pool_configmaps_are_parsed_only_once_their_namespace_has_a_policy)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *pol = ctl_load("ctl-policy.json");
    cJSON *bad, *good;
    struct cache_member *m;
    struct cache_stats st;
    uint64_t v;

    CHECK(list != NULL && pol != NULL);
    bad = member_as(list, 0, "vm-bad", "os: [ubuntu, {unclosed");
    good = member_as(list, 4, "vm-good", NULL);
    CHECK_INT(cache_member_put(c, bad), 0);
    CHECK_INT(cache_member_put(c, good), 0);
    CHECK_INT(cache_member_put(c, good), 0);
    CHECK_STR(walk_member(c, "fx", NULL), "");
    CHECK_STR(walk_member(c, NULL, NULL), "");
    cache_rdlock(c);
    CHECK(cache_member_find(c, "fx", "vm-bad") == NULL);
    CHECK(cache_member_find(c, "fx", "vm-good") == NULL);
    CHECK(cache_pool_version(c, "fx") == 0);
    cache_unlock(c);
    cache_stats(c, &st);
    CHECK_INT(st.members, 0);
    CHECK_INT(st.pending, 2);
    /* a policy elsewhere changes nothing here */
    CHECK(as(c, cache_policy_put, pol, "other", NULL) & CACHE_CHG_NEW);
    CHECK_STR(walk_member(c, NULL, NULL), "");
    /* the namespace's policy arrives: both are parsed, the bad one refused */
    CHECK(cache_policy_put(c, pol) & CACHE_CHG_NEW);
    cache_stats(c, &st);
    CHECK_INT(st.members, 2);
    CHECK_INT(st.pending, 0);
    cache_rdlock(c);
    v = cache_pool_version(c, "fx");
    CHECK(v >= 2);
    m = cache_member_find(c, "fx", "vm-bad");
    CHECK(m != NULL && m->error != NULL && strstr(m->error, "vm-bad") != NULL &&
          strstr(m->error, "data.features") != NULL);
    m = cache_member_find(c, "fx", "vm-good");
    CHECK(m != NULL && m->error == NULL);
    CHECK_STR(m->vm, "vm-005");
    CHECK_INT(m->nitems, 6);
    {
        char *text = cache_member_template(m);

        CHECK(text != NULL && strstr(text, "\"kind\":\"VirtualMachine\"") != NULL);
        free(text);
    }
    cache_unlock(c);
    /* stored again as it is: no change */
    CHECK_INT(cache_member_put(c, good), 0);
    /* the policy goes; an update puts the member back to waiting */
    CHECK_INT(cache_policy_del(c, pol), 1);
    CHECK(cache_member_put(c, bad) & CACHE_CHG_SPEC);
    CHECK_STR(walk_member(c, "fx", NULL), "fx/vm-good");
    cache_stats(c, &st);
    CHECK_INT(st.pending, 1);
    /* a waiting member is deleted like any */
    CHECK_INT(cache_member_del(c, bad), 0);
    cache_stats(c, &st);
    CHECK_INT(st.pending, 0);
    cJSON_Delete(bad);
    cJSON_Delete(good);
    cJSON_Delete(list);
    cJSON_Delete(pol);
    cache_free(c);
}

/* A field over its cap is measured, not kept: the waiting member holds the
 * refusal and its labels (within their caps), so that the policy's arrival
 * reports it as it reports one refused after it came: a member of its pool
 * (the status counts it invalid), with no template and no VM. */
TEST(a_waiting_member_over_a_cap_keeps_its_refusal_and_labels)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *pol = ctl_load("ctl-policy.json"), *fat;
    size_t n = POOL_MAX_VM_TEXT + 1;
    char *big = xmalloc(n + 1);
    struct cache_member *m;
    struct cache_policy *p;
    struct cache_stats st;

    CHECK(list != NULL && pol != NULL);
    memset(big, 'a', n);
    big[n] = '\0';
    fat = member_as(list, 1, "vm-fat", NULL);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(fat, "data"), "vm", big);
    free(big);
    CHECK_INT(cache_member_put(c, fat), 0);
    cache_stats(c, &st);
    CHECK_INT(st.pending, 1);
    CHECK(st.pending_bytes < 1024);
    CHECK(cache_policy_put(c, pol) & CACHE_CHG_NEW);
    cache_rdlock(c);
    m = cache_member_find(c, "fx", "vm-fat");
    CHECK(m != NULL && m->error != NULL && strstr(m->error, "vm-fat") != NULL &&
          strstr(m->error, "data.vm: too large") != NULL);
    CHECK(m->tmpl_z == NULL && m->vm == NULL);
    p = cache_policy_find(c, "fx", "paper");
    CHECK(p != NULL && p->valid);
    CHECK(m->labels != NULL && cache_selector_matches(&p->pol.pool_selector, m->labels));
    CHECK_STR(cache_label(m->labels, CACHE_VM_LABEL), "vm-002");
    cache_unlock(c);
    /* the same ConfigMap once the policy is there: the same record */
    CHECK_INT(cache_member_put(c, fat), 0);
    cache_rdlock(c);
    m = cache_member_find(c, "fx", "vm-fat");
    CHECK(m != NULL && m->error != NULL && strstr(m->error, "data.vm: too large") != NULL);
    CHECK_STR(cache_label(m->labels, CACHE_VM_LABEL), "vm-002");
    cache_unlock(c);
    cJSON_Delete(fat);
    cJSON_Delete(list);
    cJSON_Delete(pol);
    cache_free(c);
}

/* The digest annotation is measured like the rest, and only kept once the
 * member is accepted. */
TEST(a_member_with_an_oversized_capture_digest_is_refused)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *pol = ctl_load("ctl-policy.json"), *mem;
    cJSON *ann;
    char digest[66];
    struct cache_member *m;

    CHECK(list != NULL && pol != NULL);
    CHECK(cache_policy_put(c, pol) & CACHE_CHG_NEW);
    memset(digest, 'f', 65);
    digest[65] = '\0';
    mem = member_as(list, 2, "vm-dig", NULL);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(mem), "annotations");
    if (!ann)
        ann = cJSON_AddObjectToObject(ctl_meta(mem), "annotations");
    ctl_set_str(ann, CACHE_DIGEST_ANNOTATION, digest);
    CHECK(cache_member_put(c, mem) & CACHE_CHG_NEW);
    cache_rdlock(c);
    m = cache_member_find(c, "fx", "vm-dig");
    CHECK(m != NULL && m->error != NULL && strstr(m->error, CACHE_DIGEST_ANNOTATION) != NULL &&
          strstr(m->error, "too large") != NULL);
    CHECK(m->digest == NULL && m->vm == NULL);
    cache_unlock(c);
    /* 16 hex digits, as capture writes them: kept */
    ctl_set_str(ann, CACHE_DIGEST_ANNOTATION, "0123456789abcdef");
    CHECK(cache_member_put(c, mem) & CACHE_CHG_SPEC);
    cache_rdlock(c);
    m = cache_member_find(c, "fx", "vm-dig");
    CHECK(m != NULL && m->error == NULL);
    CHECK_STR(m->digest, "0123456789abcdef");
    cache_unlock(c);
    cJSON_Delete(mem);
    cJSON_Delete(list);
    cJSON_Delete(pol);
    cache_free(c);
}

TEST(iteration_filters_by_namespace)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-vm-list.json"), *other;
    int in_fx = 0, all = 0;

    CHECK(list != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(cache_vm_put(c, item(list, i)) > 0);
    other = cJSON_Duplicate(item(list, 0), 1);
    ctl_set_str(ctl_meta(other), "namespace", "b");
    CHECK(cache_vm_put(c, other) > 0);
    cache_rdlock(c);
    for (struct cache_vm *r = cache_vm_first(c, "fx"); r; r = cache_vm_next(r, "fx"))
        in_fx += strcmp(r->ns, "fx") == 0 ? 1 : 100;
    for (struct cache_vm *r = cache_vm_first(c, NULL); r; r = cache_vm_next(r, NULL))
        all++;
    cache_unlock(c);
    CHECK_INT(in_fx, 5);
    CHECK_INT(all, 6);
    cJSON_Delete(other);
    cJSON_Delete(list);
    cache_free(c);
}

TEST(namespace_walks_meet_their_records_only_in_store_order)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-vm-list.json");

    CHECK(list != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(cache_vm_put(c, item(list, i)) > 0);
    CHECK(as(c, cache_vm_put, item(list, 0), "b", NULL) > 0);
    CHECK(as(c, cache_vm_put, item(list, 1), "b", NULL) > 0);
    CHECK(as(c, cache_vm_put, item(list, 1), "c", "only") > 0);
    /* storing fx/vm-003 again puts it last, as in the walk of all */
    CHECK(cache_vm_put(c, item(list, 2)) == 0);
    CHECK_STR(walk_vm(c, "fx", NULL), "fx/vm-001,fx/vm-002,fx/vm-004,fx/vm-005,fx/vm-003");
    CHECK_STR(walk_vm(c, NULL, "fx"), "fx/vm-001,fx/vm-002,fx/vm-004,fx/vm-005,fx/vm-003");
    CHECK_STR(walk_vm(c, "b", NULL), "b/vm-001,b/vm-002");
    CHECK_STR(walk_vm(c, "c", NULL), "c/only");
    CHECK_STR(walk_vm(c, "nowhere", NULL), "");
    /* deleted: gone from its namespace's walk only; added again: last */
    CHECK_INT(as(c, cache_vm_del, item(list, 1), "fx", NULL), 1);
    CHECK_INT(as(c, cache_vm_del, item(list, 0), "b", NULL), 1);
    CHECK_INT(as(c, cache_vm_del, item(list, 1), "c", "only"), 1);
    CHECK_STR(walk_vm(c, "fx", NULL), "fx/vm-001,fx/vm-004,fx/vm-005,fx/vm-003");
    CHECK_STR(walk_vm(c, "b", NULL), "b/vm-002");
    CHECK_STR(walk_vm(c, "c", NULL), "");
    CHECK(as(c, cache_vm_put, item(list, 1), "fx", NULL) > 0);
    CHECK(as(c, cache_vm_put, item(list, 0), "b", NULL) > 0);
    CHECK_STR(walk_vm(c, "fx", NULL), "fx/vm-001,fx/vm-004,fx/vm-005,fx/vm-003,fx/vm-002");
    CHECK_STR(walk_vm(c, "b", NULL), "b/vm-002,b/vm-001");
    CHECK_STR(walk_vm(c, NULL, NULL),
              "fx/vm-001,fx/vm-004,fx/vm-005,b/vm-002,fx/vm-003,fx/vm-002,b/vm-001");
    cJSON_Delete(list);
    cache_free(c);
}

TEST(every_kind_has_a_namespace_index)
{
    struct cache *c = cache_new();
    cJSON *vmi = ctl_load("ctl-vmi-failed.json"), *pol = ctl_load("ctl-policy.json");
    cJSON *pool = ctl_load("ctl-pool-list.json");

    CHECK(vmi && pol && pool);
    for (int i = 0; i < 3; i++) {
        const char *ns = i == 1 ? "b" : "fx";
        char name[16];

        snprintf(name, sizeof(name), "r%d", i);
        CHECK(as(c, vmi_put, vmi, ns, name) > 0);
        CHECK(as(c, cache_policy_put, pol, ns, name) > 0);
        CHECK(as(c, cache_member_put, item(pool, i), ns, name) > 0);
    }
    CHECK_INT(as(c, cache_vmi_del, vmi, "fx", "r0"), 1);
    CHECK_INT(as(c, cache_policy_del, pol, "fx", "r2"), 1);
    CHECK_INT(as(c, cache_member_del, item(pool, 1), "b", "r1"), 1);
    CHECK_STR(walk_vmi(c, "fx", NULL), "fx/r2");
    CHECK_STR(walk_vmi(c, "b", NULL), "b/r1");
    CHECK_STR(walk_policy(c, "fx", NULL), "fx/r0");
    CHECK_STR(walk_policy(c, "b", NULL), "b/r1");
    CHECK_STR(walk_member(c, "fx", NULL), "fx/r0,fx/r2");
    CHECK_STR(walk_member(c, "b", NULL), "");
    cJSON_Delete(vmi);
    cJSON_Delete(pol);
    cJSON_Delete(pool);
    cache_free(c);
}

TEST(failed_means_failed_or_unknown_for_the_controller_and_the_reconcile_alike)
{
    for (int p = CACHE_PHASE_NONE; p <= CACHE_PHASE_OTHER; p++) {
        CHECK_INT(cache_phase_parse(cache_phase_name((enum cache_phase)p)), p);
        CHECK_INT(cache_phase_failed((enum cache_phase)p),
                  p == CACHE_PHASE_FAILED || p == CACHE_PHASE_UNKNOWN);
    }
    CHECK_INT(cache_phase_parse(NULL), CACHE_PHASE_NONE);
    CHECK_INT(cache_phase_parse("failed"), CACHE_PHASE_OTHER); /* as KubeVirt writes it only */
    CHECK(!cache_phase_failed(cache_phase_parse("failed")));
    CHECK(cache_phase_failed(cache_phase_parse("Unknown")));
}

/* A namespace of 1,000 pool ConfigMaps and no policy costs their fields
 * deflated: under a kilobyte each, about what they cost parsed. */
TEST(a_waiting_member_costs_under_a_kilobyte)
{
    struct cache *c = cache_new();
    cJSON *list = ctl_load("ctl-pool-list.json"), *pol = ctl_load("ctl-policy.json");
    struct cache_stats st;
    size_t waiting;
    char name[32];

    CHECK(list != NULL && pol != NULL);
    for (int i = 0; i < 1000; i++) {
        cJSON *m;

        snprintf(name, sizeof(name), "vm-%04d", i);
        m = member_as(list, i % 5, name, NULL);
        CHECK_INT(cache_member_put(c, m), 0);
        cJSON_Delete(m);
    }
    cache_stats(c, &st);
    CHECK_INT(st.pending, 1000);
    CHECK_INT(st.members, 0);
    waiting = st.pending_bytes;
    CHECK(waiting / 1000 < 1024);
    CHECK(cache_policy_put(c, pol) & CACHE_CHG_NEW);
    cache_stats(c, &st);
    CHECK_INT(st.pending, 0);
    CHECK_INT(st.members, 1000);
    /* about what they cost parsed (457 and 417 bytes when measured) */
    CHECK(waiting < 2 * st.member_bytes);
    cJSON_Delete(list);
    cJSON_Delete(pol);
    cache_free(c);
}

/* The RSS target (10,000 VMIs and 10,000 members in 30 MB) needs compact
 * records: a VMI like the paper's must stay well under a kilobyte. */
TEST(a_cached_vmi_costs_a_few_hundred_bytes)
{
    struct cache *c = cache_new();
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    struct cache_stats st;
    char name[32], uid[64];

    CHECK(vmi != NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "vm-%04d", i);
        snprintf(uid, sizeof(uid), "f4795ca0-05c4-42b8-b9bb-%012d", i);
        ctl_set_str(ctl_meta(vmi), "name", name);
        ctl_set_str(ctl_meta(vmi), "uid", uid);
        CHECK(cache_vmi_put(c, vmi, 1, 1) & CACHE_CHG_NEW);
    }
    cache_stats(c, &st);
    CHECK_INT(st.vmis, 1000);
    CHECK(st.vmi_bytes / st.vmis > 100);
    CHECK(st.vmi_bytes / st.vmis < 600);
    /* one features text for all of them */
    CHECK(st.shared_bytes > 0 && st.shared_bytes < 1000);
    cJSON_Delete(vmi);
    cache_free(c);
}

/* ---- VMs, VMIs, nodes and pods as KubeVirt v1.8.4 and Kubernetes write
 * them (recorded on the test cluster: tests/fixtures/kv-*.json) ---------- */

#define KV_VM_UID "9f5b29f3-64df-401a-bc0f-11942f6b1dd8"
#define KV_VMI_UID "b35d892f-84bb-4dc7-a9ae-2cf6e097e658"

/* The first ownerReference of o. */
static cJSON *owner_ref(cJSON *o)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ctl_meta(o), "ownerReferences"), 0);
}

TEST(a_vmi_belongs_to_the_vm_its_controller_reference_names_with_that_vms_uid)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("kv-vm-running.json"), *vmi = ctl_load("kv-vmi-running.json");
    struct cache_vmi *r;

    CHECK(vm != NULL && vmi != NULL);
    /* the VMI first (reflectors race), then its VM */
    CHECK(cache_vmi_put(c, vmi, 1, 1) & CACHE_CHG_NEW);
    cache_rdlock(c);
    r = cache_vmi_find(c, "exp", "small");
    CHECK(r != NULL);
    CHECK_STR(r->owner_uid, KV_VM_UID);
    CHECK(cache_vmi_vm(c, r) == NULL); /* no VM cached yet */
    CHECK_STR(r->node, "node-2");
    CHECK_INT(r->phase, CACHE_PHASE_RUNNING);
    CHECK(r->ever_running);
    CHECK(!r->deleting);
    cache_unlock(c);
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_NEW);
    cache_rdlock(c);
    r = cache_vmi_find(c, "exp", "small");
    CHECK(cache_vmi_vm(c, r) == cache_vm_find(c, "exp", "small"));
    CHECK(cache_vm_vmi(c, cache_vm_find(c, "exp", "small")) == r);
    cache_unlock(c);
    cJSON_Delete(vm);
    cJSON_Delete(vmi);
    cache_free(c);
}

/* Issue 12: a Failed VMI naming `victim` with a wrong uid made the
 * controller halt the healthy VM `victim`. A reference that is forged (wrong
 * uid), not a controller's, of another kind or group, or for another name,
 * makes the VMI nobody's. */
TEST(a_forged_or_non_controller_owner_reference_is_ignored)
{
    static const char *const edits[][2] = {
        {"uid", "00000000-0000-0000-0000-000000000000"}, /* forged: wrong uid */
        {"kind", "VirtualMachinePool"},
        {"apiVersion", "example.com/v1"},
        {"name", "someone-else"},
    };
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("kv-vm-running.json"), *vmi;

    CHECK(vm != NULL);
    ctl_set_str(ctl_meta(vm), "name", "victim");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_NEW);
    for (size_t i = 0; i <= sizeof(edits) / sizeof(edits[0]); i++) {
        struct cache_vmi *r;

        vmi = ctl_load("kv-vmi-running.json");
        ctl_set_str(ctl_meta(vmi), "name", "victim");
        ctl_set_str(owner_ref(vmi), "name", "victim");
        ctl_set_str(cJSON_GetObjectItemCaseSensitive(vmi, "status"), "phase", "Failed");
        if (i < sizeof(edits) / sizeof(edits[0]))
            ctl_set_str(owner_ref(vmi), edits[i][0], edits[i][1]);
        else /* not the controller */
            cJSON_ReplaceItemInObjectCaseSensitive(owner_ref(vmi), "controller",
                                                   cJSON_CreateFalse());
        CHECK(cache_vmi_put(c, vmi, 1, 1) >= 0);
        cache_rdlock(c);
        r = cache_vmi_find(c, "exp", "victim");
        CHECK(r != NULL);
        if (cache_vmi_vm(c, r) != NULL || cache_vm_vmi(c, cache_vm_find(c, "exp", "victim")))
            harness_fail(__FILE__, __LINE__, "edit %zu: the VMI was taken for victim's", i);
        /* and the VM does not remember it as a failure of its own */
        CHECK(cache_vm_find(c, "exp", "victim")->last_failed_uid == NULL);
        cache_unlock(c);
        cJSON_Delete(vmi);
    }
    /* the real owner's uid: it is victim's */
    vmi = ctl_load("kv-vmi-running.json");
    ctl_set_str(ctl_meta(vmi), "name", "victim");
    ctl_set_str(owner_ref(vmi), "name", "victim");
    CHECK(cache_vmi_put(c, vmi, 1, 1) >= 0);
    cache_rdlock(c);
    CHECK(cache_vmi_vm(c, cache_vmi_find(c, "exp", "victim")) == cache_vm_find(c, "exp", "victim"));
    cache_unlock(c);
    cJSON_Delete(vmi);
    cJSON_Delete(vm);
    cache_free(c);
}

TEST(a_vm_record_keeps_what_kubevirt_reports_about_it)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("kv-vm-running.json"), *loop = ctl_load("kv-vm-crashloop.json");
    cJSON *spec;
    struct cache_vm *r;
    double t;

    CHECK(vm != NULL && loop != NULL);
    CHECK(cache_vm_put(c, vm) > 0);
    CHECK(cache_vm_put(c, loop) > 0);
    cache_rdlock(c);
    r = cache_vm_find(c, "exp", "small");
    CHECK_INT(r->run_strategy, CACHE_RS_ALWAYS);
    CHECK_STR(r->printable, "Running");
    CHECK_INT(r->ready, CACHE_COND_TRUE);
    CHECK_INT(r->fail_count, 0);
    CHECK(r->fail_uid == NULL);
    CHECK(!r->deleting && r->inc == NULL && r->repl == NULL);
    CHECK_INT(r->generation, 1);
    r = cache_vm_find(c, "exp", "loop");
    CHECK_STR(r->printable, "CrashLoopBackOff");
    CHECK_INT(r->fail_count, 2);
    CHECK_STR(r->fail_uid, "9233d226-78e9-4928-aa70-175bbab75b12");
    CHECK_INT(r->ready, CACHE_COND_FALSE);
    CHECK_INT(clock_parse("2026-11-30T09:33:51Z", &t), 0);
    CHECK_NEAR(r->ready_since, t, 1e-6);
    cache_unlock(c);
    /* spec.running, the older form, and both at once (KubeVirt refuses) */
    spec = cJSON_GetObjectItemCaseSensitive(vm, "spec");
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "runStrategy");
    cJSON_AddFalseToObject(spec, "running");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "exp", "small")->run_strategy, CACHE_RS_HALTED);
    cache_unlock(c);
    cJSON_ReplaceItemInObjectCaseSensitive(spec, "running", cJSON_CreateTrue());
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "exp", "small")->run_strategy, CACHE_RS_ALWAYS);
    cache_unlock(c);
    cJSON_AddStringToObject(spec, "runStrategy", "Manual");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "exp", "small")->run_strategy, CACHE_RS_UNKNOWN);
    cache_unlock(c);
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "running");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "exp", "small")->run_strategy, CACHE_RS_MANUAL);
    cache_unlock(c);
    /* a status update that changes nothing health reads is no change */
    ctl_set_str(ctl_meta(vm), "resourceVersion", "123456");
    CHECK_INT(cache_vm_put(c, vm) & CACHE_CHG_HEALTH, 0);
    /* a generation no API server writes is none (never converted) */
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vm), "generation", cJSON_CreateNumber(1e300));
    cache_vm_put(c, vm);
    cache_rdlock(c);
    CHECK_INT(cache_vm_find(c, "exp", "small")->generation, 0);
    cache_unlock(c);
    cJSON_Delete(vm);
    cJSON_Delete(loop);
    cache_free(c);
}

/* The failed VM kvrecover halted carries kvrecover.io/failed-uid too: it is
 * an incident, never taken for a replacement of that uid. */
TEST(a_halted_failed_vm_is_an_incident_not_a_replacement)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("kv-vm-running.json"), *ann = cJSON_CreateObject();
    struct cache_vm *r;

    CHECK(vm != NULL);
    cJSON_AddStringToObject(ann, CACHE_FAILED_UID_ANNOTATION, KV_VMI_UID);
    cJSON_AddStringToObject(ann, CACHE_REPLACED_BY_ANNOTATION, "small-0123456789");
    cJSON_AddStringToObject(ann, CACHE_PREVIOUS_RS_ANNOTATION, "Always");
    cJSON_AddStringToObject(ann, CACHE_POLICY_ANNOTATION, "web");
    cJSON_AddStringToObject(ann, CACHE_TEMPLATE_ANNOTATION, "vm-005");
    cJSON_AddStringToObject(ann, CACHE_SCORE_ANNOTATION, "0.6667");
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vm), "annotations", ann);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Halted");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_REPL);
    cache_rdlock(c);
    r = cache_vm_find(c, "exp", "small");
    CHECK(r->repl == NULL);
    CHECK(cache_vm_find_replacement(c, KV_VMI_UID) == NULL);
    CHECK(r->inc != NULL);
    CHECK_STR(r->inc->replaced_by, "small-0123456789");
    CHECK_STR(r->inc->failed_uid, KV_VMI_UID);
    CHECK_STR(r->inc->previous_rs, "Always");
    CHECK_STR(r->inc->policy, "web");
    CHECK_STR(r->inc->tmpl, "vm-005");
    CHECK_NEAR(r->inc->score, 0.6667, 1e-9);
    CHECK_INT(r->run_strategy, CACHE_RS_HALTED);
    cache_unlock(c);
    cJSON_Delete(vm);
    cache_free(c);
}

/* KubeVirt deletes a Failed VMI of an Always VM within a second: the VM
 * remembers its uid and the features it carried, across updates of the VM,
 * whichever of the two the cache saw first. */
TEST(a_vm_remembers_its_last_failed_vmi_and_its_features)
{
    struct cache *c = cache_new();
    cJSON *vm = ctl_load("kv-vm-running.json"), *vmi = ctl_load("kv-vmi-running.json");
    cJSON *ann = cJSON_CreateObject();
    struct cache_vm *r;
    struct features f;
    char *err = NULL;

    CHECK(vm != NULL && vmi != NULL);
    cJSON_AddStringToObject(ann, "kvrecover.io/features", "{os: ubuntu-20.04, language: go}");
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vmi), "annotations", ann);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vmi, "status"), "phase", "Failed");
    CHECK(cache_vmi_put(c, vmi, 100, 1) >= 0);
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_NEW);
    CHECK_INT(cache_vmi_del(c, vmi), 1);
    ctl_set_str(ctl_meta(vm), "resourceVersion", "999999");
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "status"), "printableStatus", "Starting");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    r = cache_vm_find(c, "exp", "small");
    CHECK_STR(r->last_failed_uid, KV_VMI_UID);
    /* no Failed transition in the fixture: when the cache saw it (100) */
    CHECK_NEAR(r->last_failed_when, 100, 1e-9);
    CHECK(r->seen && r->seen->features != NULL);
    CHECK_INT(cache_spec_features(r->seen, &f, &err), 0);
    CHECK_INT(f.n, 2);
    features_free(&f);
    cache_unlock(c);
    /* a new VM of the same name (another uid) remembers nothing */
    ctl_set_str(ctl_meta(vm), "uid", "another-uid");
    CHECK(cache_vm_put(c, vm) & CACHE_CHG_NEW);
    cache_rdlock(c);
    r = cache_vm_find(c, "exp", "small");
    CHECK(r->last_failed_uid == NULL && r->seen == NULL);
    cache_unlock(c);
    cJSON_Delete(vm);
    cJSON_Delete(vmi);
    cache_free(c);
}

TEST(a_node_record_keeps_readiness_heartbeat_taints_and_room)
{
    struct cache *c = cache_new();
    cJSON *node = ctl_load("kv-node.json"), *taints;
    struct cache_node *n;
    const char *it, *k, *v, *e;
    double t;

    CHECK(node != NULL);
    CHECK(cache_node_put(c, node) & CACHE_CHG_NEW);
    cache_rdlock(c);
    n = cache_node_find(c, "node-2");
    CHECK(n != NULL);
    CHECK_INT(n->ready, CACHE_COND_TRUE);
    CHECK(n->kv_schedulable && !n->unschedulable);
    CHECK_INT(clock_parse("2026-11-30T09:32:20Z", &t), 0);
    CHECK_NEAR(n->heartbeat, t, 1e-6);
    CHECK_NEAR(n->alloc_cpu, 4, 1e-9);
    CHECK_NEAR(n->alloc_mem, 8.0 * 1024 * 1024 * 1024, 1);
    CHECK_NEAR(n->alloc_pods, 110, 1e-9);
    CHECK(n->taints == NULL);
    CHECK(cache_node_first(c) == n && cache_node_next(n) == NULL);
    cache_unlock(c);
    /* the same node again: nothing; a heartbeat: health; a taint: spec */
    CHECK_INT(cache_node_put(c, node), 0);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(node), "annotations"),
                CACHE_HEARTBEAT_ANNOTATION, "2026-11-30T09:33:20Z");
    CHECK_INT(cache_node_put(c, node), CACHE_CHG_HEALTH);
    taints = cJSON_Parse("[{\"key\":\"node.kubernetes.io/out-of-service\",\"value\":"
                         "\"nodeshutdown\",\"effect\":\"NoExecute\"},{\"key\":\"k\",\"effect\":"
                         "\"NoSchedule\"}]");
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(node, "spec"), "taints", taints);
    CHECK_INT(cache_node_put(c, node), CACHE_CHG_SPEC);
    cache_rdlock(c);
    it = cache_node_find(c, "node-2")->taints;
    CHECK(cache_taint_next(&it, &k, &v, &e));
    CHECK_STR(k, "node.kubernetes.io/out-of-service");
    CHECK_STR(v, "nodeshutdown");
    CHECK_STR(e, "NoExecute");
    CHECK(cache_taint_next(&it, &k, &v, &e));
    CHECK_STR(k, "k");
    CHECK_STR(v, "");
    CHECK_STR(e, "NoSchedule");
    CHECK(!cache_taint_next(&it, &k, &v, &e));
    cache_unlock(c);
    /* NotReady */
    ctl_set_str(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                               cJSON_GetObjectItemCaseSensitive(node, "status"), "conditions"),
                           0),
        "status", "Unknown");
    CHECK(cache_node_put(c, node) & CACHE_CHG_HEALTH);
    cache_rdlock(c);
    CHECK_INT(cache_node_find(c, "node-2")->ready, CACHE_COND_UNKNOWN);
    cache_unlock(c);
    CHECK_INT(cache_node_del(c, node), 1);
    CHECK_INT(cache_node_del(c, node), 0);
    cJSON_Delete(node);
    cache_free(c);
}

/* The launcher pod KubeVirt made for a 1-CPU, 128Mi VM: compute 100m and
 * 396Mi, a container disk 1m and 1M, the console log sidecar 5m and 35M;
 * its other init containers run before and ask for less. */
TEST(pods_requests_are_summed_per_node_as_the_scheduler_counts_them)
{
    struct cache *c = cache_new();
    cJSON *pod = ctl_load("kv-pod-launcher.json"), *pod2;
    struct cache_node_use u;
    const double mi = 1024.0 * 1024.0;

    CHECK(pod != NULL);
    CHECK_INT(cache_pod_put(c, pod), 0);
    cache_rdlock(c);
    u = cache_node_use(c, "node-2");
    cache_unlock(c);
    CHECK_INT(u.pods, 1);
    CHECK_NEAR(u.cpu, 0.106, 1e-9);
    CHECK_NEAR(u.mem, 396 * mi + 1e6 + 35e6, 1);
    /* the same pod again counts once; another one adds */
    CHECK_INT(cache_pod_put(c, pod), 0);
    pod2 = cJSON_Duplicate(pod, 1);
    ctl_set_str(ctl_meta(pod2), "name", "virt-launcher-other");
    CHECK_INT(cache_pod_put(c, pod2), 0);
    cache_rdlock(c);
    u = cache_node_use(c, "node-2");
    cache_unlock(c);
    CHECK_INT(u.pods, 2);
    CHECK_NEAR(u.cpu, 0.212, 1e-9);
    /* moved to another node (a new binding), then finished: counted there,
     * then nowhere */
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(pod2, "spec"), "nodeName", "node-3");
    CHECK_INT(cache_pod_put(c, pod2), 0);
    cache_rdlock(c);
    CHECK_INT(cache_node_use(c, "node-2").pods, 1);
    CHECK_INT(cache_node_use(c, "node-3").pods, 1);
    cache_unlock(c);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(pod2, "status"), "phase", "Succeeded");
    CHECK_INT(cache_pod_put(c, pod2), 0);
    cache_rdlock(c);
    CHECK_INT(cache_node_use(c, "node-3").pods, 0);
    CHECK_NEAR(cache_node_use(c, "node-3").cpu, 0, 1e-12);
    cache_unlock(c);
    CHECK_INT(cache_pod_del(c, pod2), 0); /* not counted any more */
    CHECK_INT(cache_pod_del(c, pod), 1);
    cache_rdlock(c);
    u = cache_node_use(c, "node-2");
    cache_unlock(c);
    CHECK_INT(u.pods, 0);
    CHECK_NEAR(u.mem, 0, 1e-6);
    cJSON_Delete(pod);
    cJSON_Delete(pod2);
    cache_free(c);
}

/* 10,000 launcher pods must not cost the controller's memory target: a pod
 * is a key and two numbers. */
TEST(a_counted_pod_costs_under_two_hundred_bytes)
{
    struct cache *c = cache_new();
    cJSON *pod = ctl_load("kv-pod-launcher.json");
    struct cache_stats st;
    char name[64];

    CHECK(pod != NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "virt-launcher-vm-%04d-abcde", i);
        ctl_set_str(ctl_meta(pod), "name", name);
        ctl_set_str(cJSON_GetObjectItemCaseSensitive(pod, "spec"), "nodeName",
                    i % 2 ? "node-1" : "node-2");
        CHECK_INT(cache_pod_put(c, pod), 0);
    }
    cache_stats(c, &st);
    CHECK_INT(st.pods, 1000);
    CHECK(st.pod_bytes / st.pods < 200);
    cJSON_Delete(pod);
    cache_free(c);
}

static struct cache_versions versions(struct cache *c, const char *ns)
{
    struct cache_versions v;

    cache_rdlock(c);
    cache_versions(c, ns, &v);
    cache_unlock(c);
    return v;
}

TEST(versions_say_what_can_change_a_namespaces_health)
{
    struct cache *c = cache_new(), *other = cache_new();
    cJSON *pol = ctl_load("ctl-policy.json"), *vms = ctl_load("ctl-vm-list.json");
    cJSON *vmi = ctl_load("ctl-vmi-failed.json"), *node = ctl_load("kv-node.json");
    cJSON *status, *ann;
    struct cache_versions a, b;

    CHECK(pol && vms && vmi && node);
    CHECK_INT(cache_policy_put(c, pol) >= 0, 1);
    CHECK_INT(cache_node_put(c, node) >= 0, 1);
    a = versions(c, "fx");
    CHECK(a.policies != 0);
    CHECK(versions(c, "elsewhere").vm_changes == 0);
    /* every put and delete of a VM or VMI is one change */
    cache_vm_put(c, item(vms, 0));
    cache_vmi_put(c, vmi, clock_wall(), clock_mono());
    cache_vmi_del(c, vmi);
    cache_vm_del(c, item(vms, 0));
    b = versions(c, "fx");
    CHECK(b.vm_changes == a.vm_changes + 4);
    CHECK(b.policies == a.policies && b.nodes == a.nodes);
    /* a policy's status is no new spec; a new generation is */
    status = cJSON_AddObjectToObject(pol, "status");
    cJSON_AddNumberToObject(status, "observedGeneration", 1);
    cache_policy_put(c, pol);
    CHECK(versions(c, "fx").policies == b.policies);
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(pol), "generation", cJSON_CreateNumber(2));
    cache_policy_put(c, pol);
    a = versions(c, "fx");
    CHECK(a.policies != b.policies);
    cache_policy_del(c, pol);
    CHECK(versions(c, "fx").policies != a.policies);
    /* a Node's heartbeat is its health; its room is not */
    a = versions(c, "fx");
    status = cJSON_GetObjectItemCaseSensitive(node, "status");
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(status, "allocatable"), "pods", "111");
    cache_node_put(c, node);
    CHECK(versions(c, "fx").nodes == a.nodes);
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(node), "annotations");
    ctl_set_str(ann, "kubevirt.io/heartbeat", "2026-11-30T09:33:20Z");
    cache_node_put(c, node);
    b = versions(c, "fx");
    CHECK(b.nodes != a.nodes);
    cache_node_del(c, node);
    CHECK(versions(c, "fx").nodes != b.nodes);
    /* no other cache ever hands out the same stamps */
    CHECK_INT(cache_policy_put(other, pol) >= 0, 1);
    CHECK(versions(other, "fx").policies != versions(c, "fx").policies);
    CHECK(versions(other, "fx").nodes != versions(c, "fx").nodes);
    cJSON_Delete(pol);
    cJSON_Delete(vms);
    cJSON_Delete(vmi);
    cJSON_Delete(node);
    cache_free(c);
    cache_free(other);
}

struct policy_race {
    struct cache *c;
    cJSON *pol;
    volatile int stop;
};

static void *policy_race_writer(void *arg)
{
    struct policy_race *pr = arg;

    /* status updates: the same generation, the parse kept */
    for (int i = 0; !pr->stop && i < 200000; i++) {
        cJSON *status = cJSON_GetObjectItemCaseSensitive(pr->pol, "status");

        cJSON_ReplaceItemInObjectCaseSensitive(status, "observedGeneration", cJSON_CreateNumber(i));
        cache_policy_put(pr->c, pr->pol);
    }
    return NULL;
}

TEST(a_policy_status_update_never_shows_readers_a_valid_policy_without_its_spec)
{
    struct policy_race pr = {cache_new(), ctl_load("ctl-policy.json"), 0};
    pthread_t w;
    long seen = 0, bad = 0;
    double end = clock_mono() + 1.0;

    CHECK(pr.pol != NULL);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(pr.pol, "status"), "observedGeneration", 0);
    CHECK_INT(cache_policy_put(pr.c, pr.pol) >= 0, 1);
    CHECK_INT(pthread_create(&w, NULL, policy_race_writer, &pr), 0);
    while (clock_mono() < end) {
        const struct cache_policy *p;

        cache_rdlock(pr.c);
        p = cache_policy_find(pr.c, "fx", "paper");
        if (p && p->valid) {
            seen++;
            /* the default stormLimit (50%) and the fixture's selector */
            bad +=
                !p->pol.storm.percent || p->pol.storm.value != 50 || p->pol.selector.nlabels != 1;
        }
        cache_unlock(pr.c);
    }
    pr.stop = 1;
    pthread_join(w, NULL);
    CHECK(seen > 0);
    CHECK_INT(bad, 0);
    cJSON_Delete(pr.pol);
    cache_free(pr.c);
}
