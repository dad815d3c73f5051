/*
 * Unit tests for status: the status object (Ready reasons, transition times,
 * recent decisions), the merge patch (written only on change), and
 * status_reconcile() on the paper's case against an in-memory API server:
 * counts computed before any failure, InvalidPolicy and InvalidPoolMember
 * announced once, the dashboard view, postponement of a busy policy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_test.h"
#include "reconcile/incident.h"
#include "reconcile/status.h"
#include "sim/replica.h"

#define STATUS_PATH "/apis/kvrecover.io/v1alpha1/namespaces/fx/recoverypolicies/paper/status"

static const cJSON *ready_of(const cJSON *st)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "conditions"), 0);
}

static const char *field(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

TEST(ready_reasons_follow_the_spec_and_the_pool)
{
    struct status_facts f = {0};
    cJSON *st;

    f.generation = 3;
    f.valid = 1;
    f.pool_size = 5;
    f.protected_vms = 5;
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(ready_of(st), "type"), "Ready");
    CHECK_STR(field(ready_of(st), "status"), "True");
    CHECK_STR(field(ready_of(st), "reason"), "Valid");
    CHECK_NEAR(num(ready_of(st), "observedGeneration"), 3, 0);
    CHECK_NEAR(num(st, "observedGeneration"), 3, 0);
    CHECK_NEAR(num(st, "poolSize"), 5, 0);
    CHECK_NEAR(num(st, "protected"), 5, 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(st, "lastRecovery") == NULL);
    cJSON_Delete(st);

    f.valid = 0;
    f.error = "spec.weights.language: given twice (Language and language)";
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(ready_of(st), "status"), "False");
    CHECK_STR(field(ready_of(st), "reason"), "InvalidPolicy");
    CHECK(strstr(field(ready_of(st), "message"), "spec.weights") != NULL);
    cJSON_Delete(st);

    f.valid = 1;
    f.pool_invalid = 5;
    f.first_invalid = "ConfigMap vm-000: data.features: line 1 column 9: bad";
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(ready_of(st), "status"), "False");
    CHECK_STR(field(ready_of(st), "reason"), "InvalidPool");
    CHECK(strstr(field(ready_of(st), "message"), "vm-000") != NULL);
    cJSON_Delete(st);

    f.pool_invalid = 1;
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(ready_of(st), "status"), "True");
    CHECK(strstr(field(ready_of(st), "message"), "vm-000") != NULL);
    cJSON_Delete(st);

    f.pool_size = f.pool_invalid = 0;
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(ready_of(st), "status"), "True");
    CHECK_STR(field(ready_of(st), "reason"), "EmptyPool");
    cJSON_Delete(st);
}

TEST(last_transition_time_moves_only_when_ready_changes)
{
    struct status_facts f = {0};
    cJSON *a, *b, *c;

    f.valid = 1;
    f.pool_size = 2;
    a = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    f.protected_vms = 4; /* other facts change, Ready stays True */
    b = status_build(&f, a, "2026-11-25T19:05:00Z");
    CHECK_STR(field(ready_of(b), "lastTransitionTime"), "2026-11-25T19:00:00Z");
    f.valid = 0;
    f.error = "spec.selector: required";
    c = status_build(&f, b, "2026-11-25T19:10:00Z");
    CHECK_STR(field(ready_of(c), "lastTransitionTime"), "2026-11-25T19:10:00Z");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

TEST(recent_and_last_recovery_and_unprotected_names)
{
    struct status_recent recent[2] = {
        {"vm-004", "u4", "", "", "NoEligibleCandidate", 0, 1795635300.0},
        {"vm-001", "u1", "vm-001-x", "vm-005", "Recovered", 0.6667, 1795635000.0},
    };
    const char *names[] = {"vm-003", "vm-004"};
    struct status_facts f = {0};
    cJSON *st;
    const cJSON *r0, *r1;

    f.valid = 1;
    f.pool_size = 5;
    f.recent = recent;
    f.nrecent = 2;
    f.recoveries = 1;
    f.unprotected = 2;
    f.unprotected_names = names;
    f.nunprotected_names = 2;
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "recent"), 0);
    r1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "recent"), 1);
    CHECK_STR(field(r0, "decision"), "NoEligibleCandidate");
    CHECK_STR(field(r0, "replacement"), "");
    CHECK_STR(field(r1, "failedVM"), "vm-001");
    CHECK_STR(field(r1, "failedUID"), "u1");
    CHECK_STR(field(r1, "replacement"), "vm-001-x");
    CHECK_STR(field(r1, "template"), "vm-005");
    CHECK_NEAR(num(r1, "score"), 0.6667, 1e-12);
    CHECK_STR(field(r1, "time"), "2026-11-25T19:30:00Z");
    /* the last recovery is the newest Recovered or DryRun, not a failure
     * that found no candidate */
    CHECK_STR(field(st, "lastRecovery"), "2026-11-25T19:30:00Z");
    CHECK_NEAR(num(st, "recoveries"), 1, 0);
    CHECK_NEAR(num(st, "unprotected"), 2, 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "unprotectedVMs")), 2);
    cJSON_Delete(st);
}

TEST(patch_is_null_when_equal_and_nulls_removed_fields)
{
    cJSON *old = cJSON_Parse("{\"protected\":5,\"lastRecovery\":\"t\",\"poolSize\":5}");
    cJSON *same = cJSON_Parse("{\"poolSize\":5,\"protected\":5,\"lastRecovery\":\"t\"}");
    cJSON *new_st = cJSON_Parse("{\"protected\":6,\"poolSize\":5}");
    cJSON *p;
    const cJSON *st;

    CHECK(status_patch(old, same) == NULL);
    p = status_patch(old, new_st);
    CHECK(p != NULL);
    st = cJSON_GetObjectItemCaseSensitive(p, "status");
    CHECK_NEAR(num(st, "protected"), 6, 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "lastRecovery")));
    cJSON_Delete(p);
    p = status_patch(NULL, new_st);
    CHECK(p != NULL);
    cJSON_Delete(p);
    cJSON_Delete(old);
    cJSON_Delete(same);
    cJSON_Delete(new_st);
}

/* The status the reconcile patched last, or NULL. */
static const cJSON *last_status(struct ctl_rig *r)
{
    const cJSON *p = cJSON_GetArrayItem(r->patches, cJSON_GetArraySize(r->patches) - 1);

    if (!p || strcmp(field(p, "path"), STATUS_PATH) != 0)
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "body"), "status");
}

/* Feeds the last patched status back into the cache, as the watch would. */
static void echo_status(struct ctl_rig *r)
{
    cJSON *pol = ctl_load("ctl-policy.json");

    cJSON_AddItemToObject(pol, "status", cJSON_Duplicate(last_status(r), 1));
    cache_policy_put(r->cache, pol);
    cJSON_Delete(pol);
}

static void wait_out(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A status reconcile that runs in full: it waits out the interval the
 * previous one asked for (two times its own duration, at least
 * STATUS_MIN_INTERVAL_S: longer than any fixed sleep under valgrind), as
 * the work queue would. Returns status_reconcile()'s result. */
static int reconcile_when_due(struct ctl_rig *r, struct status_state *st)
{
    uint64_t requeue = 0;
    int rc, tries = 0;

    do {
        if (requeue)
            wait_out(requeue);
        rc = status_reconcile(&r->env, st, r->rk, "fx", "paper", &requeue);
    } while (rc == 0 && requeue && ++tries < 100);
    return rc;
}

TEST(reconcile_counts_the_paper_case_before_any_failure)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;
    const cJSON *s;
    cJSON *views, *v, *prot;

    CHECK_INT(ctl_up(&r), 0);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(requeue, 0);
    s = last_status(&r);
    CHECK(s != NULL);
    CHECK_STR(field(ready_of(s), "status"), "True");
    CHECK_NEAR(num(s, "protected"), 5, 0);
    CHECK_NEAR(num(s, "poolSize"), 5, 0);
    CHECK_NEAR(num(s, "unprotected"), 2, 0);
    CHECK_STR(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "unprotectedVMs"), 0)->valuestring,
        "vm-003");
    CHECK_STR(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "unprotectedVMs"), 1)->valuestring,
        "vm-004");
    CHECK_NEAR(num(s, "recoveries"), 0, 0);
    /* the dashboard's view of it */
    views = status_views(st);
    v = cJSON_GetArrayItem(views, 0);
    CHECK_STR(field(v, "namespace"), "fx");
    CHECK_STR(field(v, "pool"), "paper");
    CHECK_STR(field(v, "mode"), "Jaccard");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ready")));
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "members")), 5);
    prot = cJSON_GetObjectItemCaseSensitive(v, "protected");
    CHECK_INT(cJSON_GetArraySize(prot), 5);
    CHECK_STR(field(cJSON_GetArrayItem(prot, 0), "vm"), "vm-001");
    CHECK_STR(field(cJSON_GetArrayItem(prot, 0), "phase"), "Failed");
    CHECK_STR(field(cJSON_GetArrayItem(prot, 0), "best"), "vm-005");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(prot, 2), "eligible")));
    cJSON_Delete(views);
    status_state_free(st);
    ctl_down(&r);
}

TEST(reconcile_writes_only_when_something_changed_and_postpones_a_busy_policy)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;

    CHECK_INT(ctl_up(&r), 0);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    /* at once again: postponed, not skipped (how long depends on how long
     * the first one took: no bound here, a loaded machine or valgrind
     * makes it longer) */
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK(requeue > 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    /* the watch brings the status back: nothing to write */
    echo_status(&r);
    wait_out(requeue);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(requeue, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    status_state_free(st);
    ctl_down(&r);
}

TEST(reconcile_reports_a_recovery_from_the_replacement_itself)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;
    const cJSON *s, *r0;
    cJSON *views;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "trigger", cJSON_Parse("{\"immediate\":true}"));
    CHECK_INT(incident_reconcile(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    /* the watch delivers the replacement */
    {
        const cJSON *vm = r.store->child; /* the only object stored: the replacement */
        cJSON *copy = cJSON_Duplicate(vm, 1);

        ctl_set_str(ctl_meta(copy), "uid", "new-vm-uid");
        CHECK(cache_vm_put(r.cache, copy) & CACHE_CHG_REPL);
        cJSON_Delete(copy);
    }
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    s = last_status(&r);
    CHECK(s != NULL);
    CHECK_NEAR(num(s, "recoveries"), 1, 0);
    r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "recent"), 0);
    CHECK_STR(field(r0, "decision"), "Recovered");
    CHECK_STR(field(r0, "failedVM"), "vm-001");
    CHECK_STR(field(r0, "template"), "vm-005");
    CHECK_NEAR(num(r0, "score"), 0.6667, 1e-12);
    CHECK(strncmp(field(r0, "replacement"), "vm-001-", 7) == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(s, "lastRecovery") != NULL);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "recent")), 1);
    /* the dashboard carries the ranking of this process's decision */
    views = status_views(st);
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(views, 0), "recoveries"), 0),
        "ranking")));
    cJSON_Delete(views);
    status_state_free(st);
    ctl_down(&r);
}

TEST(invalid_policy_and_invalid_member_are_announced_once)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;
    cJSON *list = ctl_load("ctl-pool-list.json"), *bad;
    const cJSON *s;

    CHECK_INT(ctl_up(&r), 0);
    bad =
        cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), 0), 1);
    ctl_set_str(ctl_meta(bad), "name", "vm-000");
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(bad, "data"), "features", "os: [ubuntu, {x");
    CHECK(cache_member_put(r.cache, bad) > 0);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPoolMember RecoveryPolicy/paper"), 1);
    s = last_status(&r);
    CHECK_NEAR(num(s, "poolSize"), 6, 0); /* valid or not */
    CHECK_STR(field(ready_of(s), "status"), "True");
    CHECK_INT(reconcile_when_due(&r, st), 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPoolMember"), 1);

    ctl_edit_policy(&r, "weights", cJSON_Parse("{\"language\":0.3,\"Language\":0.2}"));
    CHECK_INT(reconcile_when_due(&r, st), 0);
    s = last_status(&r);
    CHECK_STR(field(ready_of(s), "status"), "False");
    CHECK_STR(field(ready_of(s), "reason"), "InvalidPolicy");
    CHECK_NEAR(num(ready_of(s), "observedGeneration"), 7, 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPolicy RecoveryPolicy/paper"), 1);
    CHECK_INT(reconcile_when_due(&r, st), 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPolicy"), 1);
    cJSON_Delete(bad);
    cJSON_Delete(list);
    status_state_free(st);
    ctl_down(&r);
}

TEST(a_deleted_policy_is_forgotten)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;
    cJSON *pol = ctl_load("ctl-policy.json"), *views;

    CHECK_INT(ctl_up(&r), 0);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(cache_policy_del(r.cache, pol), 1);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    CHECK_INT(requeue, 0);
    views = status_views(st);
    CHECK_INT(cJSON_GetArraySize(views), 0);
    cJSON_Delete(views);
    cJSON_Delete(pol);
    status_state_free(st);
    ctl_down(&r);
}

/* The condition of type in st, or NULL. */
static const cJSON *cond_of(const cJSON *st, const char *type)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(st, "conditions"))
    {
        if (strcmp(field(it, "type"), type) == 0)
            return it;
    }
    return NULL;
}

TEST(storm_hold_and_blocked_are_conditions_with_the_counts_and_generation)
{
    struct status_facts f = {0};
    cJSON *st, *st2, *inc = cJSON_Parse("[{\"vm\":\"a\",\"state\":\"Blocked\"}]");

    f.generation = 4;
    f.valid = 1;
    f.pool_size = 5;
    f.protected_vms = 8;
    f.down = 4;
    f.storm_limit = 4;
    st = status_build(&f, NULL, "2026-11-25T19:00:00Z");
    CHECK_STR(field(cond_of(st, "StormHold"), "status"), "False");
    CHECK_STR(field(cond_of(st, "Blocked"), "status"), "False");
    CHECK_NEAR(num(cond_of(st, "StormHold"), "observedGeneration"), 4, 0);
    CHECK_NEAR(num(st, "down"), 4, 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "incidents")), 0);
    /* one more down than the limit: held; and an incident blocked */
    f.down = 5;
    f.blocked = 1;
    f.blocked_msg = "a: Forbidden";
    f.incidents = inc;
    st2 = status_build(&f, st, "2026-11-25T19:05:00Z");
    CHECK_STR(field(cond_of(st2, "StormHold"), "status"), "True");
    CHECK_STR(field(cond_of(st2, "StormHold"), "reason"), "TooManyDown");
    CHECK(strstr(field(cond_of(st2, "StormHold"), "message"), "5 of 8") != NULL);
    CHECK_STR(field(cond_of(st2, "StormHold"), "lastTransitionTime"), "2026-11-25T19:05:00Z");
    CHECK_STR(field(cond_of(st2, "Blocked"), "status"), "True");
    CHECK(strstr(field(cond_of(st2, "Blocked"), "message"), "a: Forbidden") != NULL);
    CHECK_NEAR(num(cond_of(st2, "Blocked"), "observedGeneration"), 4, 0);
    /* Ready did not change: its time stays */
    CHECK_STR(field(cond_of(st2, "Ready"), "lastTransitionTime"), "2026-11-25T19:00:00Z");
    CHECK_NEAR(num(st2, "blocked"), 1, 0);
    CHECK_STR(
        field(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st2, "incidents"), 0), "vm"),
        "a");
    cJSON_Delete(st);
    cJSON_Delete(st2);
    cJSON_Delete(inc);
}

TEST(reconcile_lists_a_blocked_incident_and_counts_it_down)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    uint64_t requeue = 0;
    const cJSON *s, *e;

    CHECK_INT(ctl_up(&r), 0);
    ctl_edit_policy(&r, "trigger", cJSON_Parse("{\"immediate\":true}"));
    /* no member is good enough: the incident is blocked, nothing halted */
    {
        cJSON *pol = ctl_load("ctl-policy.json");
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(pol, "spec");

        cJSON_ReplaceItemInObjectCaseSensitive(spec, "threshold", cJSON_CreateNumber(0.9));
        cJSON_AddItemToObject(spec, "trigger", cJSON_Parse("{\"immediate\":true}"));
        cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(pol), "generation", cJSON_CreateNumber(9));
        cache_policy_put(r.cache, pol);
        cJSON_Delete(pol);
    }
    CHECK(incident_reconcile(&r.env, r.rk, "fx", "vm-001", &requeue) < 0);
    CHECK_INT(status_reconcile(&r.env, st, r.rk, "fx", "paper", &requeue), 0);
    s = last_status(&r);
    CHECK(s != NULL);
    CHECK_NEAR(num(s, "down"), 1, 0);
    CHECK_NEAR(num(s, "blocked"), 1, 0);
    e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "incidents"), 0);
    CHECK_STR(field(e, "vm"), "vm-001");
    CHECK_STR(field(e, "state"), "Blocked");
    CHECK_STR(field(e, "reason"), "NoEligibleCandidate");
    CHECK_STR(field(e, "failedUID"), "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c");
    CHECK_STR(field(cond_of(s, "Blocked"), "status"), "True");
    CHECK(strstr(field(cond_of(s, "Blocked"), "message"), "vm-001: NoEligibleCandidate"));
    CHECK_STR(field(cond_of(s, "StormHold"), "status"), "False");
    CHECK_NEAR(num(cond_of(s, "Blocked"), "observedGeneration"), 9, 0);
    status_state_free(st);
    ctl_down(&r);
}

/* vm-005's member with data.vm made to differ from its replacement in
 * every way a tenant can: runStrategy Manual, a dataVolumeTemplate, a
 * firmware uuid, nics MAC addressed interfaces, and, first in the order of
 * changes, nkeys metadata keys of key_len bytes (each of these is a
 * change). */
static void hostile_member(struct ctl_rig *r, int nics, int nkeys, size_t key_len)
{
    cJSON *list = ctl_load("ctl-pool-list.json"), *m, *vm, *ifs;
    char *key = xmalloc(key_len + 1), *text;

    m = cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "items"), 4), 1);
    vm =
        cJSON_Parse("{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\","
                    "\"metadata\":{\"name\":\"vm-005\"},"
                    "\"spec\":{\"runStrategy\":\"Manual\","
                    "\"dataVolumeTemplates\":[{\"metadata\":{\"name\":\"root\"},"
                    "\"spec\":{\"storage\":{\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}}}}],"
                    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"paper\"}},\"spec\":{"
                    "\"domain\":{\"cpu\":{\"cores\":4},\"memory\":{\"guest\":\"8Gi\"},"
                    "\"firmware\":{\"uuid\":\"5d307ca9-b3ef-428c-8861-06e72d69f223\"},"
                    "\"devices\":{\"interfaces\":[]}},"
                    "\"volumes\":[{\"name\":\"root\",\"dataVolume\":{\"name\":\"root\"}}]}}}}");
    memset(key, 'k', key_len);
    key[key_len] = '\0';
    for (int i = 0; i < nkeys; i++) {
        snprintf(key, key_len + 1, "%03d", i);
        key[3] = 'k';
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(vm, "metadata"), key, "x");
    }
    ifs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "spec"),
                                                     "template"),
                    "spec"),
                "domain"),
            "devices"),
        "interfaces");
    for (int i = 0; i < nics; i++) {
        cJSON *nic = cJSON_CreateObject();
        char name[16], mac[32];

        snprintf(name, sizeof(name), "nic%d", i);
        snprintf(mac, sizeof(mac), "02:00:00:00:%02x:%02x", i / 256, i % 256);
        cJSON_AddStringToObject(nic, "name", name);
        cJSON_AddStringToObject(nic, "macAddress", mac);
        cJSON_AddItemToObject(nic, "masquerade", cJSON_CreateObject());
        cJSON_AddItemToArray(ifs, nic);
    }
    text = cJSON_PrintUnformatted(vm);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(m, "data"), "vm", text);
    CHECK(cache_member_put(r->cache, m) > 0);
    cJSON_free(text);
    free(key);
    cJSON_Delete(vm);
    cJSON_Delete(m);
    cJSON_Delete(list);
}

/* How many changes replica_build() makes of vm-005 for vm-001: what the
 * controller's replacement changes, before any cut. */
static size_t all_changes(struct ctl_rig *r)
{
    struct cache_vm *vm;
    struct replica_changes ch = {0};
    cJSON *labels, *tlabels, *out = NULL;
    char *tmpl, *err = NULL, *name = recover_replacement_name("vm-001", "u");
    size_t n;

    cache_rdlock(r->cache);
    vm = cache_vm_find(r->cache, "fx", "vm-001");
    labels = cache_labels_json(vm->labels);
    tlabels = cache_labels_json(vm->tlabels);
    tmpl = cache_member_template(cache_member_find(r->cache, "fx", "vm-005"));
    cache_unlock(r->cache);
    {
        struct replica_spec s = {"fx",    name,     "vm-001", labels, tlabels,
                                 "paper", "vm-005", 0.6667,   "u",    "2026-11-30T17:00:00Z"};

        if (replica_build(tmpl, &s, &out, &ch, &err) != 0)
            replica_changes_free(&ch); /* 0 changes: the test's counts fail */
    }
    n = ch.n;
    replica_changes_free(&ch);
    cJSON_Delete(out);
    cJSON_Delete(labels);
    cJSON_Delete(tlabels);
    free(tmpl);
    free(err);
    free(name);
    return n;
}

/* Whether a change in list has text t. */
static int has_change(const cJSON *list, const char *t)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, list)
    {
        if (strcmp(field(c, "text"), t) == 0)
            return 1;
    }
    return 0;
}

/* vm-001's failure decided (under action, with trigger.immediate) from the
 * hostile vm-005 through the incident path; *views the dashboard's view
 * (the caller frees) and *rec its recovery. */
static void decided_view(struct ctl_rig *r, struct status_state *st, const char *action,
                         cJSON **views, const cJSON **rec)
{
    cJSON *pol = ctl_load("ctl-policy.json");
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(pol, "spec");
    uint64_t requeue = 0;

    *views = NULL;
    *rec = NULL;
    cJSON_ReplaceItemInObjectCaseSensitive(spec, "action", cJSON_CreateString(action));
    cJSON_AddItemToObject(spec, "trigger", cJSON_Parse("{\"immediate\":true}"));
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(pol), "generation", cJSON_CreateNumber(9));
    cache_policy_put(r->cache, pol);
    cJSON_Delete(pol);
    CHECK_INT(incident_reconcile(&r->env, r->rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(status_reconcile(&r->env, st, r->rk, "fx", "paper", &requeue), 0);
    *views = status_views(st);
    *rec = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(*views, 0), "recoveries"), 0);
    CHECK_STR(field(*rec, "decision"), strcmp(action, "DryRun") == 0 ? "DryRun" : "Recovered");
    CHECK_STR(field(*rec, "template"), "vm-005");
}

TEST(the_dashboard_shows_what_a_replacement_changes_of_its_member)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    cJSON *views;
    const cJSON *rec, *ch, *c;
    char *repl = recover_replacement_name("vm-001", "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c");
    char *renamed = xasprintf("renamed dataVolumeTemplate root to %s-root", repl);
    size_t total;
    int pathless = 0;

    CHECK_INT(ctl_up(&r), 0);
    /* a metadata key of 1000 bytes (YAML's simple keys stop at 1024) */
    hostile_member(&r, 3, 1, 1000);
    total = all_changes(&r);
    decided_view(&r, st, "Recreate", &views, &rec);
    CHECK_STR(field(rec, "replacement"), repl);
    ch = cJSON_GetObjectItemCaseSensitive(rec, "changes");
    CHECK(cJSON_IsArray(ch));
    /* the lines `kvrecover score` prints, with the JSON Patch op and path */
    CHECK(has_change(ch, "set runStrategy Always (was Manual)"));
    CHECK(has_change(ch, renamed));
    CHECK(has_change(ch, "dropped domain.firmware.uuid"));
    CHECK(has_change(ch, "dropped macAddress of interface nic0"));
    cJSON_ArrayForEach(c, ch)
    {
        if (!cJSON_GetObjectItemCaseSensitive(c, "path")) {
            /* the 1000-byte key's: its text names it, quoted and cut */
            pathless++;
            CHECK(strncmp(field(c, "text"), "dropped metadata.\"000kkk", 24) == 0);
            CHECK(strlen(field(c, "text")) < 100);
        }
        if (strcmp(field(c, "text"), "dropped domain.firmware.uuid") == 0) {
            CHECK_STR(field(c, "op"), "remove");
            CHECK_STR(field(c, "path"), "/spec/template/spec/domain/firmware/uuid");
        }
    }
    CHECK_INT(pathless, 1);
    CHECK_INT(cJSON_GetArraySize(ch), (int)total);
    CHECK_NEAR(num(rec, "changesOmitted"), 0, 0);
    /* the policy's status keeps its bounded summary, not the changes */
    CHECK(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(last_status(&r), "recent"), 0),
              "changes") == NULL);
    cJSON_Delete(views);
    free(renamed);
    free(repl);
    status_state_free(st);
    ctl_down(&r);
}

TEST(the_changes_a_decision_keeps_are_cut_at_an_item_count)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    cJSON *views;
    const cJSON *rec, *ch, *c;
    size_t total;
    int macs = 0;

    CHECK_INT(ctl_up(&r), 0);
    /* 300 interfaces, each with a MAC address to drop */
    hostile_member(&r, 300, 0, 0);
    total = all_changes(&r);
    CHECK(total > 300);
    decided_view(&r, st, "Recreate", &views, &rec);
    ch = cJSON_GetObjectItemCaseSensitive(rec, "changes");
    CHECK_INT(cJSON_GetArraySize(ch), RECOVER_CHANGES_MAX);
    /* kept in order: the first ones, then the first interfaces */
    CHECK(has_change(ch, "set runStrategy Always (was Manual)"));
    CHECK(has_change(ch, "dropped domain.firmware.uuid"));
    cJSON_ArrayForEach(c, ch)
    {
        macs += strncmp(field(c, "text"), "dropped macAddress of interface nic", 35) == 0;
    }
    CHECK(macs > 30 && macs < RECOVER_CHANGES_MAX);
    CHECK(has_change(ch, "dropped macAddress of interface nic0"));
    CHECK_NEAR(num(rec, "changesOmitted"), (double)(total - RECOVER_CHANGES_MAX), 0);
    cJSON_Delete(views);
    status_state_free(st);
    ctl_down(&r);
}

TEST(the_changes_a_decision_keeps_are_cut_at_a_byte_budget)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    cJSON *views;
    const cJSON *rec, *ch;
    char *printed;
    size_t total, n;

    CHECK_INT(ctl_up(&r), 0);
    /* 45 changes with 250-byte paths come first: fewer items than
     * RECOVER_CHANGES_MAX, more bytes than RECOVER_CHANGES_BYTES */
    hostile_member(&r, 0, 45, RECOVER_CHANGE_PATH_MAX - 10);
    total = all_changes(&r);
    decided_view(&r, st, "Recreate", &views, &rec);
    ch = cJSON_GetObjectItemCaseSensitive(rec, "changes");
    n = (size_t)cJSON_GetArraySize(ch);
    printed = cJSON_PrintUnformatted(ch);
    CHECK(strlen(printed) <= RECOVER_CHANGES_BYTES);
    CHECK(strlen(printed) > RECOVER_CHANGES_BYTES - 1024);
    CHECK(n > 10 && n < 45);
    CHECK(!has_change(ch, "dropped domain.firmware.uuid"));
    CHECK_NEAR(num(rec, "changesOmitted"), (double)(total - n), 0);
    cJSON_free(printed);
    cJSON_Delete(views);
    status_state_free(st);
    ctl_down(&r);
}

TEST(a_dry_run_shows_what_its_replacement_would_change)
{
    struct ctl_rig r;
    struct status_state *st = status_state_new();
    cJSON *views;
    const cJSON *rec, *ch;
    char *repl = recover_replacement_name("vm-001", "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c");
    char *named = xasprintf("set metadata.name %s", repl);

    CHECK_INT(ctl_up(&r), 0);
    hostile_member(&r, 1, 0, 0);
    decided_view(&r, st, "DryRun", &views, &rec);
    CHECK(r.store->child == NULL); /* nothing created */
    ch = cJSON_GetObjectItemCaseSensitive(rec, "changes");
    CHECK(has_change(ch, named));
    CHECK(has_change(ch, "dropped domain.firmware.uuid"));
    CHECK(has_change(ch, "dropped macAddress of interface nic0"));
    cJSON_Delete(views);
    free(named);
    free(repl);
    status_state_free(st);
    ctl_down(&r);
}
