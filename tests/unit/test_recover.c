/*
 * Unit tests for recover: the replacement's name and object, ranking through
 * the per-policy index, where a failed VM's features come from, the book of
 * decisions, and recover_vmi() against an in-memory API server: one POST
 * per failed VMI uid, 409 as "already done", DryRun, no eligible member,
 * the Unknown grace period, leadership, haltFailed, refused templates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock_test.h"
#include "ctl_test.h"

#define UID1 "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c" /* vm-001's VMI in the fixture */
#define VMS "/apis/kubevirt.io/v1/namespaces/fx/virtualmachines"

static int dns_label(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return 0;
    return 1;
}

TEST(replacement_name_is_stable_dns1123_and_bounded)
{
    char *a = recover_replacement_name("vm-001", "94695d91-3a10-4d44-99d2-0d23d0751653");
    char *b = recover_replacement_name("vm-001", "94695d91-3a10-4d44-99d2-0d23d0751653");
    char *c = recover_replacement_name("vm-001", "another-uid");
    char *d = recover_replacement_name("My.VM_01", "u");
    char *e = recover_replacement_name(
        "a-very-long-virtual-machine-name-that-goes-on-and-on-and-on-beyond-sixty-three", "u");
    char *f = recover_replacement_name("---", "u");

    /* The name a controller of this version gave a replacement on the live
     * cluster: a new version must derive the same, or after an upgrade it
     * would not find its earlier replacements and create second ones. */
    CHECK_STR(a, "vm-001-606f7b115d");
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strncmp(d, "my-vm-01-", 9) == 0);
    CHECK(dns_label(a) && dns_label(c) && dns_label(d) && dns_label(e) && dns_label(f));
    CHECK(strlen(e) <= 63);
    CHECK(strncmp(e, "a-very-long-virtual-machine", 27) == 0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
}

TEST(replacement_object_carries_the_contract_and_nothing_server_owned)
{
    const char *tmpl =
        "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":"
        "\"vm-005\",\"namespace\":\"elsewhere\",\"uid\":\"u5\",\"resourceVersion\":\"9\","
        "\"generation\":3,\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"ownerReferences\":[{}],"
        "\"finalizers\":[\"x\"],\"labels\":{\"app\":\"paper\"},\"annotations\":{\"kubevirt.io/"
        "latest-observed-api-version\":\"v1\",\"team\":\"shop\"}},\"spec\":{\"runStrategy\":"
        "\"Halted\",\"template\":{\"spec\":{}}},\"status\":{\"ready\":true}}";
    char *err = NULL;
    cJSON *o = recover_build_replacement(tmpl, "fx", "vm-001-606f7b115d", "vm-001", "paper",
                                         "vm-005", 2.0 / 3.0, UID1, "2026-11-25T19:25:33Z", &err);
    cJSON *m, *labels, *ann, *spec;

    CHECK(o != NULL);
    m = ctl_meta(o);
    CHECK_INT(cJSON_GetArraySize(m), 4); /* name, namespace, labels, annotations */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring, "vm-001-606f7b115d");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(m, "namespace")->valuestring, "fx");
    labels = cJSON_GetObjectItemCaseSensitive(m, "labels");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(labels, "app")->valuestring, "paper");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(labels, "kvrecover.io/replaces")->valuestring,
              "vm-001");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(labels, "kvrecover.io/policy")->valuestring,
              "paper");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(labels, "kvrecover.io/template")->valuestring,
              "vm-005");
    ann = cJSON_GetObjectItemCaseSensitive(m, "annotations");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/score")->valuestring, "0.6667");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/failed-uid")->valuestring, UID1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/decided-at")->valuestring,
              "2026-11-25T19:25:33Z");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "team")->valuestring, "shop");
    CHECK(cJSON_GetObjectItemCaseSensitive(ann, "kubevirt.io/latest-observed-api-version") == NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "status") == NULL);
    spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
    /* built from a halted VM, it still runs */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(spec, "runStrategy")->valuestring, "Always");
    CHECK(cJSON_GetObjectItemCaseSensitive(spec, "template") != NULL);
    cJSON_Delete(o);

    o = recover_build_replacement("{\"kind\":\"Pod\"}", "fx", "n", "vm-001", "paper", "vm-009", 0.5,
                                  UID1, "t", &err);
    CHECK(o == NULL);
    CHECK(err != NULL && strstr(err, "vm-009") != NULL);
    free(err);
}

/* Ranks vm-001's features (from its cached VMI) against the policy's pool. */
static int rank_vm001(struct ctl_rig *r, struct recover_pick *pick, cJSON **json,
                      const char **alias_out)
{
    struct cache_policy *p;
    struct cache_vmi *vmi;
    struct features f;
    const char *alias = NULL;
    char *err = NULL;
    int rc = -1;

    cache_rdlock(r->cache);
    p = cache_policy_find(r->cache, "fx", "paper");
    vmi = cache_vmi_find(r->cache, "fx", "vm-001");
    if (p && recover_vm_features(r->cache, p, "vm-001", vmi, &f, &alias, &err) == 0) {
        struct sim_query q = {"vm-001", alias, &f};
        rc = recover_rank(r->book, r->rk, r->cache, p, &q, pick, json);
        features_free(&f);
    }
    if (alias_out)
        *alias_out = alias ? "captured" : NULL;
    cache_unlock(r->cache);
    free(err);
    return rc;
}

TEST(ranking_the_paper_case_selects_vm005_at_two_thirds)
{
    struct ctl_rig r;
    struct recover_pick pick;
    cJSON *json = NULL, *cands;

    CHECK_INT(ctl_up(&r), 0);
    CHECK_INT(rank_vm001(&r, &pick, &json, NULL), 0);
    CHECK_STR(pick.best, "vm-005");
    CHECK_NEAR(pick.best_score, 2.0 / 3.0, 1e-9);
    CHECK_INT(pick.nsel, 1); /* vm-002 scores 1/3: below the threshold */
    CHECK_STR(pick.sel[0], "vm-005");
    cands = cJSON_GetObjectItemCaseSensitive(json, "candidates");
    CHECK_INT(cJSON_GetArraySize(cands), 4); /* vm-001 itself is left out */
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(json, "selected")->valuestring, "vm-005");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cands, 1), "name")->valuestring,
              "vm-002");
    recover_pick_free(&pick);
    cJSON_Delete(json);
    ctl_down(&r);
}

TEST(the_pool_index_follows_member_changes)
{
    struct ctl_rig r;
    struct recover_pick pick;
    cJSON *list = ctl_load("ctl-pool-list.json"), *twin;

    CHECK_INT(ctl_up(&r), 0);
    CHECK(list != NULL);
    CHECK_INT(rank_vm001(&r, &pick, NULL, NULL), 0);
    CHECK_STR(pick.best, "vm-005");
    recover_pick_free(&pick);
    /* a twin of vm-001 under another name joins the pool: it wins, 1.0 */
    twin =
        cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), 0), 1);
    ctl_set_str(ctl_meta(twin), "name", "vm-001-twin");
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(twin), "labels"), "kvrecover.io/vm",
                "vm-001-twin");
    CHECK(cache_member_put(r.cache, twin) > 0);
    CHECK_INT(rank_vm001(&r, &pick, NULL, NULL), 0);
    CHECK_STR(pick.best, "vm-001-twin");
    CHECK_NEAR(pick.best_score, 1.0, 1e-9);
    recover_pick_free(&pick);
    /* gone again: vm-005 */
    CHECK_INT(cache_member_del(r.cache, twin), 1);
    CHECK_INT(rank_vm001(&r, &pick, NULL, NULL), 0);
    CHECK_STR(pick.best, "vm-005");
    recover_pick_free(&pick);
    cJSON_Delete(twin);
    cJSON_Delete(list);
    ctl_down(&r);
}

TEST(features_come_from_the_vmi_then_the_vm_then_the_captured_entry)
{
    struct ctl_rig r;
    struct recover_pick pick;
    cJSON *vmi = ctl_load("ctl-vmi-failed.json"), *vms = ctl_load("ctl-vm-list.json"), *vm;
    const char *alias = NULL;

    CHECK_INT(ctl_up(&r), 0);
    CHECK(vmi && vms);
    /* the VM's template says python: not used while the VMI has features */
    vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(
                    ctl_meta(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(vm, "spec"), "template")),
                    "annotations"),
                "kvrecover.io/features", "{os: ubuntu-20.04, webserver: nginx}");
    CHECK(cache_vm_put(r.cache, vm) > 0);
    CHECK_INT(rank_vm001(&r, &pick, NULL, &alias), 0);
    CHECK_STR(pick.best, "vm-005");
    CHECK(alias == NULL);
    recover_pick_free(&pick);
    /* without the VMI's annotation: the VM template's ({os, nginx} -> vm-004) */
    cJSON_DeleteItemFromObjectCaseSensitive(ctl_meta(vmi), "annotations");
    CHECK(cache_vmi_put(r.cache, vmi, 1, 1) > 0);
    CHECK_INT(rank_vm001(&r, &pick, NULL, &alias), 0);
    CHECK_STR(pick.best, "vm-004");
    CHECK(alias == NULL);
    recover_pick_free(&pick);
    /* without either: the captured entry (ConfigMap vm-001, labelled for it) */
    CHECK_INT(cache_vm_del(r.cache, vm), 1);
    CHECK_INT(rank_vm001(&r, &pick, NULL, &alias), 0);
    CHECK_STR(pick.best, "vm-005");
    CHECK(alias != NULL);
    recover_pick_free(&pick);
    cJSON_Delete(vmi);
    cJSON_Delete(vms);
    ctl_down(&r);
}

static struct recover_decision decision(const char *uid, enum recover_result res, double when)
{
    struct recover_decision d = {0};

    d.ns = xstrdup("fx");
    d.policy = xstrdup("paper");
    d.vmi = xstrdup("vm");
    d.failed_vm = xstrdup("vm");
    d.failed_uid = xstrdup(uid);
    d.result = res;
    d.when = when;
    return d;
}

TEST(book_keeps_the_last_ten_newest_first_and_counts_by_result)
{
    struct recover_book *b = recover_book_new();
    struct recover_decision *out = NULL, d;
    char uid[16];
    size_t n;
    cJSON *status;

    for (int i = 0; i < 12; i++) {
        snprintf(uid, sizeof(uid), "u%02d", i);
        d = decision(uid, i % 3 == 0 ? RECOVER_DRYRUN : RECOVER_RECOVERED, 100 + i);
        recover_book_add(b, &d);
        CHECK(d.failed_uid == NULL); /* taken */
    }
    CHECK(recover_book_handled(b, "u00"));
    CHECK(!recover_book_handled(b, "u99"));
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_DRYRUN), 4);
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_RECOVERED), 8);
    n = recover_book_recent(b, "fx", "paper", 10, 0, &out);
    CHECK_INT(n, 10);
    CHECK_STR(out[0].failed_uid, "u11");
    CHECK_STR(out[9].failed_uid, "u02");
    for (size_t i = 0; i < n; i++)
        recover_decision_free(&out[i]);
    free(out);
    /* the same decision again is not counted twice */
    d = decision("u11", RECOVER_RECOVERED, 200);
    recover_book_add(b, &d);
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_RECOVERED), 8);
    /* seeding from a status: entries become handled, known ones stay */
    status = cJSON_Parse("{\"recent\":[{\"failedVM\":\"x\",\"failedUID\":\"s1\",\"decision\":"
                         "\"DryRun\",\"replacement\":\"x-1\",\"template\":\"t\",\"score\":0.7,"
                         "\"time\":\"2026-11-25T19:00:00Z\"},{\"failedUID\":\"s2\",\"decision\":"
                         "\"Bogus\"}]}");
    recover_book_seed(b, "fx", "paper", status);
    CHECK(recover_book_handled(b, "s1"));
    CHECK(!recover_book_handled(b, "s2"));
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_DRYRUN), 5);
    recover_book_forget(b, "fx", "paper");
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_DRYRUN), 0);
    CHECK_INT(recover_book_recent(b, "fx", "paper", 10, 0, &out), 0);
    cJSON_Delete(status);
    recover_book_free(b);
}

TEST(a_failed_vmi_gets_exactly_one_replacement)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    const cJSON *o;
    const cJSON *labels;

    CHECK_INT(ctl_up(&r), 0);
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(requeue, 0);
    CHECK_INT(r.posts, 1);
    {
        char *name = recover_replacement_name("vm-001", UID1), *path = xasprintf(VMS "/%s", name);

        o = cJSON_GetObjectItemCaseSensitive(r.store, path);
        free(name);
        free(path);
    }
    CHECK(o != NULL);
    CHECK_INT(cJSON_GetArraySize(r.store), 1);
    labels = cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)o), "labels");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(labels, "kvrecover.io/template")->valuestring,
              "vm-005");
    CHECK_INT(ctl_events(&r, "Normal Recovered RecoveryPolicy/paper"), 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered VirtualMachineInstance/vm-001"), 1);
    CHECK(recover_book_handled(r.book, UID1));
    CHECK_INT(cJSON_GetArraySize(r.changed), 1);
    /* again (a repeated event, a resync): nothing more */
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered"), 2);
    ctl_down(&r);
}

TEST(after_a_restart_409_already_exists_for_the_same_uid_means_done)
{
    struct ctl_rig r;
    uint64_t requeue;
    char *name = recover_replacement_name("vm-001", UID1), *path = xasprintf(VMS "/%s", name);
    cJSON *existing = cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvrecover.io/failed-uid\":"
                                  "\"" UID1 "\"}}}");

    CHECK_INT(ctl_up(&r), 0);
    /* created by an earlier process, not yet in this one's cache */
    cJSON_AddItemToObject(r.store, path, existing);
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 1);
    CHECK_INT(r.gets, 1);
    CHECK_INT(cJSON_GetArraySize(r.store), 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered"), 2);
    CHECK(recover_book_handled(r.book, UID1));
    ctl_down(&r);
    free(name);
    free(path);
}

TEST(a_name_taken_by_another_failure_is_not_claimed)
{
    struct ctl_rig r;
    uint64_t requeue;
    char *name = recover_replacement_name("vm-001", UID1), *path = xasprintf(VMS "/%s", name);
    cJSON *existing = cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvrecover.io/failed-uid\":"
                                  "\"someone-else\"}}}");

    CHECK_INT(ctl_up(&r), 0);
    cJSON_AddItemToObject(r.store, path, existing);
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(ctl_events(&r, "Normal Recovered"), 0);
    CHECK(!recover_book_handled(r.book, UID1));
    ctl_down(&r);
    free(name);
    free(path);
}

TEST(a_replacement_in_the_cache_skips_the_request)
{
    struct ctl_rig r;
    uint64_t requeue;
    cJSON *vm = ctl_load("ctl-vm.json"), *ann;

    CHECK_INT(ctl_up(&r), 0);
    CHECK(vm != NULL);
    ctl_set_str(ctl_meta(vm), "namespace", "fx");
    ctl_set_str(ctl_meta(vm), "name", "vm-001-done");
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations");
    ctl_set_str(ann, CACHE_FAILED_UID_ANNOTATION, UID1);
    CHECK(cache_vm_put(r.cache, vm) > 0);
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts + r.gets, 0);
    CHECK_INT(ctl_events(&r, ""), 0);
    CHECK(recover_book_handled(r.book, UID1));
    cJSON_Delete(vm);
    ctl_down(&r);
}

TEST(dry_run_announces_and_creates_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_decision *out = NULL;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "action", cJSON_CreateString("DryRun"));
    ctl_edit_policy(&r, "haltFailed", cJSON_CreateTrue());
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Normal DryRun"), 2);
    CHECK_INT(recover_book_recent(r.book, "fx", "paper", 10, 1, &out), 1);
    CHECK_INT(out[0].result, RECOVER_DRYRUN);
    CHECK_STR(out[0].tmpl, "vm-005");
    CHECK(out[0].replacement != NULL && strncmp(out[0].replacement, "vm-001-", 7) == 0);
    CHECK_NEAR(out[0].score, 0.6667, 1e-9);
    CHECK(out[0].ranking != NULL);
    recover_decision_free(&out[0]);
    free(out);
    ctl_down(&r);
}

TEST(no_eligible_member_gives_a_warning_and_nothing_else)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "threshold", cJSON_CreateNumber(0.9));
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate"), 2);
    CHECK_INT(recover_book_count(r.book, "fx", "paper", RECOVER_NO_CANDIDATE), 1);
    ctl_down(&r);
}

TEST(an_invalid_policy_is_never_acted_on)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "weights", cJSON_Parse("{\"language\":0.3,\"Language\":0.2}"));
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(ctl_events(&r, ""), 0);
    CHECK(!recover_book_handled(r.book, UID1));
    ctl_down(&r);
}

TEST(a_replica_that_does_not_lead_creates_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0);
    r.leading = 0;
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 0);
    CHECK(!recover_book_handled(r.book, UID1));
    r.leading = 1;
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r.posts, 1);
    ctl_down(&r);
}

TEST(a_template_the_server_refuses_is_reported_and_not_retried)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0);
    r.post_status = 422;
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPoolMember RecoveryPolicy/paper"), 1);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate"), 2);
    CHECK_INT(recover_book_count(r.book, "fx", "paper", RECOVER_NO_CANDIDATE), 1);
    ctl_down(&r);
}

TEST(a_server_error_is_returned_for_a_retry)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0);
    r.post_status = 500;
    CHECK(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue) < 0);
    CHECK(!recover_book_handled(r.book, UID1));
    CHECK_INT(ctl_events(&r, ""), 0);
    r.post_status = 0;
    CHECK_INT(recover_vmi(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK(recover_book_handled(r.book, UID1));
    ctl_down(&r);
}
