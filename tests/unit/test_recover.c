/*
 * Unit tests for recover: the replacement's name, ranking through the
 * per-policy index (with an accept function refusing candidates), where a
 * failed VM's features come from, and the book of decisions and incidents
 * (what it remembers per VM, and that it forgets it). The incident
 * reconcile is tested in test_incident.c.
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
        rc = recover_rank(r->book, r->rk, r->cache, p, &q, NULL, NULL, pick, json);
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
    CHECK_INT(recover_book_add(b, &d), 0);
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_RECOVERED), 8);
    /* seeding from a status: entries become handled, known ones stay */
    status = cJSON_Parse("{\"recent\":[{\"failedVM\":\"x\",\"failedUID\":\"s1\",\"decision\":"
                         "\"DryRun\",\"replacement\":\"x-1\",\"template\":\"t\",\"score\":0.7,"
                         "\"time\":\"2026-11-25T19:00:00Z\"},{\"failedUID\":\"s2\",\"decision\":"
                         "\"Bogus\"}]}");
    recover_book_seed(b, "fx", "paper", status);
    {
        struct recover_note note;

        CHECK_INT(recover_book_note(b, "fx", "x", &note), 1);
        CHECK_STR(note.decided_uid, "s1");
        CHECK_INT(note.decided, RECOVER_DRYRUN);
        recover_note_free(&note);
    }
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_DRYRUN), 5);
    recover_book_forget(b, "fx", "paper");
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_DRYRUN), 0);
    CHECK_INT(recover_book_recent(b, "fx", "paper", 10, 0, &out), 0);
    cJSON_Delete(status);
    recover_book_free(b);
}

/* Issue 13: the status is read back after the book moved on. A decision
 * the ring let go, seeded again from that stale status, would count twice
 * and bring back the entry of its VM, deleted since and never forgotten
 * again: one entry per VM per round of a soak. */
TEST(a_stale_status_seeds_nothing_the_book_let_go)
{
    struct recover_book *b = recover_book_new();
    struct recover_decision d;
    cJSON *status = cJSON_Parse("{\"recent\":[]}"), *recent;
    char name[16], ts[CLOCK_TEXT_LEN];
    size_t vms = 99;

    recent = cJSON_GetObjectItemCaseSensitive(status, "recent");
    for (int i = 0; i < 15; i++) {
        snprintf(name, sizeof(name), "vm-%02d", i);
        d = decision(name + 3, RECOVER_RECOVERED, 1000 + i);
        free(d.failed_vm);
        d.failed_vm = xstrdup(name);
        CHECK_INT(recover_book_add(b, &d), 1);
        if (i < 10) {
            /* the status written when the first ten were the recent ones */
            cJSON *e = cJSON_CreateObject();

            clock_format(1000 + i, ts);
            cJSON_AddStringToObject(e, "failedVM", name);
            cJSON_AddStringToObject(e, "failedUID", name + 3);
            cJSON_AddStringToObject(e, "decision", "Recovered");
            cJSON_AddStringToObject(e, "time", ts);
            cJSON_AddItemToArray(recent, e);
        }
    }
    /* every VM deleted: the controller forgets them */
    for (int i = 0; i < 15; i++) {
        snprintf(name, sizeof(name), "vm-%02d", i);
        recover_book_forget_vm(b, "fx", name);
    }
    recover_book_size(b, NULL, &vms);
    CHECK_INT(vms, 0);
    recover_book_seed(b, "fx", "paper", status);
    recover_book_size(b, NULL, &vms);
    CHECK_INT(vms, 0);
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_RECOVERED), 15);
    {
        struct recover_decision *out = NULL;
        size_t n = recover_book_recent(b, "fx", "paper", 10, 0, &out);

        CHECK_INT(n, 10);
        CHECK_STR(out[0].failed_uid, "14");
        CHECK_STR(out[9].failed_uid, "05");
        for (size_t i = 0; i < n; i++)
            recover_decision_free(&out[i]);
        free(out);
    }
    /* a restarted process (a new book) still seeds what the status says */
    recover_book_free(b);
    b = recover_book_new();
    recover_book_seed(b, "fx", "paper", status);
    recover_book_size(b, NULL, &vms);
    CHECK_INT(vms, 10);
    CHECK_INT(recover_book_count(b, "fx", "paper", RECOVER_RECOVERED), 10);
    cJSON_Delete(status);
    recover_book_free(b);
}

/* Refuses vm-005 (NoCapacity), accepts the rest. */
static enum sim_reason refuse_vm005(void *ud, const char *member, double score, cJSON **obj,
                                    char **why)
{
    (void)score;
    (*(int *)ud)++;
    if (strcmp(member, "vm-005") == 0) {
        *why = xstrdup("fits no node");
        return SIM_NO_CAPACITY;
    }
    *obj = cJSON_CreateString(member);
    return SIM_ELIGIBLE;
}

TEST(a_candidate_the_accept_function_refuses_is_refused_in_the_ranking)
{
    struct ctl_rig r;
    struct recover_pick pick;
    struct cache_policy *p;
    struct features f;
    cJSON *json = NULL, *cands, *it;
    const char *alias = NULL;
    char *err = NULL;
    int calls = 0;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "threshold", cJSON_CreateNumber(0.3)); /* vm-002 (1/3) eligible too */
    cache_rdlock(r.cache);
    p = cache_policy_find(r.cache, "fx", "paper");
    CHECK_INT(recover_vm_features(r.cache, p, "vm-001", cache_vmi_find(r.cache, "fx", "vm-001"), &f,
                                  &alias, &err),
              0);
    {
        struct sim_query q = {"vm-001", alias, &f};
        CHECK_INT(recover_rank(r.book, r.rk, r.cache, p, &q, refuse_vm005, &calls, &pick, &json),
                  0);
    }
    cache_unlock(r.cache);
    features_free(&f);
    CHECK_INT(calls, 2);
    CHECK_INT(pick.nsel, 1);
    CHECK_STR(pick.sel[0], "vm-002");
    CHECK_STR(pick.sel_obj[0]->valuestring, "vm-002");
    CHECK_INT(pick.nrefused, 1);
    CHECK(pick.refused && strstr(pick.refused, "vm-005: fits no node"));
    /* the top candidate is vm-005, refused: the ranking says so */
    CHECK_STR(pick.best, "vm-005");
    CHECK(strstr(pick.best_reason, "node") != NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(json, "selected")->valuestring, "vm-002");
    cands = cJSON_GetObjectItemCaseSensitive(json, "candidates");
    cJSON_ArrayForEach(it, cands)
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(it, "name")->valuestring, "vm-005") == 0)
            CHECK_STR(cJSON_GetObjectItemCaseSensitive(it, "reason")->valuestring, "NoCapacity");
    }
    recover_pick_free(&pick);
    cJSON_Delete(json);
    ctl_down(&r);
}

TEST(the_book_remembers_a_vm_and_forgets_it_when_deleted)
{
    struct recover_book *b = recover_book_new();
    struct recover_decision d = decision("u1", RECOVER_NO_CANDIDATE, 100);
    struct recover_note n;
    size_t np, nv;
    unsigned tries = 9;

    CHECK_INT(recover_book_note(b, "fx", "vm", &n), 0);
    recover_book_set_down(b, "fx", "vm", 50);
    CHECK_INT(recover_book_add(b, &d), 1);
    /* blocked: announced once per reason, retries counted */
    CHECK_INT(recover_book_block(b, "fx", "vm", "u1", "Forbidden", "no", 60, &tries), 1);
    CHECK_INT(tries, 0);
    CHECK_INT(recover_book_block(b, "fx", "vm", "u1", "Forbidden", "still no", 61, &tries), 0);
    CHECK_INT(tries, 1);
    CHECK_INT(recover_book_block(b, "fx", "vm", "u1", "QuotaExceeded", "q", 62, &tries), 1);
    CHECK_INT(recover_book_block(b, "fx", "vm", "u2", "QuotaExceeded", "q", 63, &tries), 1);
    CHECK_INT(recover_book_once(b, "fx", "vm", "Halted|u2"), 1);
    CHECK_INT(recover_book_once(b, "fx", "vm", "Halted|u2"), 0);
    CHECK_INT(recover_book_note(b, "fx", "vm", &n), 1);
    CHECK_NEAR(n.down_seen, 50, 0);
    CHECK_STR(n.decided_uid, "u1");
    CHECK_STR(n.blocked, "QuotaExceeded");
    CHECK_STR(n.blocked_msg, "q");
    CHECK_STR(n.blocked_uid, "u2");
    CHECK_NEAR(n.blocked_since, 63, 0);
    recover_note_free(&n);
    CHECK_INT(recover_book_unblock(b, "fx", "vm"), 1);
    CHECK_INT(recover_book_unblock(b, "fx", "vm"), 0);
    /* storm: announced when it begins, not while it lasts */
    CHECK_INT(recover_book_storm(b, "fx", "paper", 1), 1);
    CHECK_INT(recover_book_storm(b, "fx", "paper", 1), 0);
    CHECK_INT(recover_book_storm(b, "fx", "paper", 0), 0);
    CHECK_INT(recover_book_storm(b, "fx", "paper", 1), 1);
    recover_book_size(b, &np, &nv);
    CHECK_INT(np, 1);
    CHECK_INT(nv, 1);
    /* pruned on delete: the VM, then the policy */
    recover_book_forget_vm(b, "fx", "vm");
    CHECK_INT(recover_book_note(b, "fx", "vm", &n), 0);
    recover_book_forget(b, "fx", "paper");
    recover_book_size(b, &np, &nv);
    CHECK_INT(np, 0);
    CHECK_INT(nv, 0);
    /* forgotten, the next decision for that VM is new again */
    d = decision("u1", RECOVER_NO_CANDIDATE, 100);
    CHECK_INT(recover_book_add(b, &d), 1);
    recover_book_free(b);
}

/* A reconcile in flight when its VM is deleted writes the book after the
 * delete handler forgot the VM; the resync's prune forgets it then, and
 * only VMs the cache no longer holds. */
TEST(the_book_forgets_what_a_reconcile_wrote_after_its_vm_was_deleted)
{
    struct ctl_rig r;
    struct recover_note n;
    size_t nv;

    CHECK_INT(ctl_up(&r), 0);
    recover_book_set_down(r.book, "fx", "vm-001", 50); /* in the cache */
    recover_book_forget_vm(r.book, "fx", "gone");      /* the delete handler */
    recover_book_set_down(r.book, "fx", "gone", 60);   /* ...then the reconcile */
    CHECK_INT(recover_book_once(r.book, "gone2", "vm-001", "Halted|u"), 1); /* other ns */
    recover_book_size(r.book, NULL, &nv);
    CHECK_INT(nv, 3);
    CHECK_INT(recover_book_prune(r.book, r.cache), 2);
    CHECK_INT(recover_book_note(r.book, "fx", "gone", &n), 0);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_NEAR(n.down_seen, 50, 0);
    recover_note_free(&n);
    CHECK_INT(recover_book_prune(r.book, r.cache), 0);
    ctl_down(&r);
}
