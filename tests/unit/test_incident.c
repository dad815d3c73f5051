/*
 * Unit tests for incident: the reconcile of a protected VM against an
 * in-memory API server (ctl_test.h). The paper's case: vm-001 (runStrategy
 * Always) has a Failed VMI; with trigger.immediate that is an incident.
 * Halt first, after a dry-run create; the resourceVersion precondition; the
 * crash-safe completion from the halted VM's annotations; one replacement
 * across two replicas; NoEligibleCandidate and refusals without a halt;
 * DryRun; the storm hold, exact at its boundary and counted a few times,
 * not once per VM, in a mass failure; NoCapacity on a lost node; NameTaken;
 * leadership.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_test.h"
#include "reconcile/incident.h"
#include "reconcile/incident_test.h"

#define UID1 "f4795ca0-05c4-42b8-b9bb-c9a9082ab47c" /* vm-001's VMI in the fixture */
#define VMS "/apis/kubevirt.io/v1/namespaces/fx/virtualmachines"

/* The policy fixture with spec fields set from a JSON object text, as a
 * new generation. */
static void edit_policy(struct ctl_rig *r, const char *fields)
{
    static int generation = 10;
    cJSON *pol = ctl_load("ctl-policy.json"), *f = cJSON_Parse(fields), *it;
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(pol, "spec");

    cJSON_ArrayForEach(it, f)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, it->string);
        cJSON_AddItemToObject(spec, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(pol), "generation",
                                           cJSON_CreateNumber(++generation));
    cache_policy_put(r->cache, pol);
    cJSON_Delete(pol);
    cJSON_Delete(f);
}

static int up(struct ctl_rig *r)
{
    int rc = ctl_up(r);

    edit_policy(r, "{\"trigger\":{\"immediate\":true}}");
    return rc;
}

static int reconcile(struct ctl_rig *r, uint64_t *requeue)
{
    return incident_reconcile(&r->env, r->rk, "fx", "vm-001", requeue);
}

static char *repl_name(void)
{
    return recover_replacement_name("vm-001", UID1);
}

/* The replacement the fake stores, or NULL. */
static const cJSON *stored_replacement(struct ctl_rig *r)
{
    char *name = repl_name(), *path = xasprintf(VMS "/%s", name);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->store, path);

    free(name);
    free(path);
    return o;
}

/* vm-001 of the VM fixture, halted as the patch the fake recorded says:
 * what the watch would deliver after the halt. */
static void deliver_halt(struct ctl_rig *r)
{
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);
    const cJSON *patch =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->patches, 0), "body");
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)patch), "annotations");
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(vm, "spec");

    cJSON_ReplaceItemInObjectCaseSensitive(ctl_meta(vm), "annotations", cJSON_Duplicate(ann, 1));
    cJSON_ReplaceItemInObjectCaseSensitive(spec, "runStrategy", cJSON_CreateString("Halted"));
    ctl_set_str(ctl_meta(vm), "resourceVersion", "999");
    cache_vm_put(r->cache, vm);
    /* and the API server has it so too (step 1 reads it before creating) */
    cJSON_DeleteItemFromObjectCaseSensitive(r->store, VMS "/vm-001");
    cJSON_AddItemToObject(r->store, VMS "/vm-001", vm);
    cJSON_Delete(vms);
}

/* The ranking of the newest decision recorded in the rig's book, or NULL
 * (borrowed from a copy kept until the next call). */
static const cJSON *recorded_ranking(struct ctl_rig *r)
{
    static cJSON *kept;
    struct recover_decision *out = NULL;
    size_t n;

    cJSON_Delete(kept);
    kept = NULL;
    n = recover_book_recent(r->book, "fx", "paper", 1, 1, &out);
    if (n > 0 && out[0].ranking)
        kept = cJSON_Duplicate(out[0].ranking, 1);
    for (size_t i = 0; i < n; i++)
        recover_decision_free(&out[i]);
    free(out);
    return kept;
}

/* The value recorded patch p's JSON patch "test" of path compares with
 * (JSON null for "absent"), or NULL when it has no such test. */
static const cJSON *tested(const cJSON *p, const char *path)
{
    const cJSON *op;

    cJSON_ArrayForEach(op, cJSON_GetObjectItemCaseSensitive(p, "ops"))
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "op")), "test") == 0 &&
            strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(op, "path")), path) == 0)
            return cJSON_GetObjectItemCaseSensitive(op, "value");
    }
    return NULL;
}

TEST(a_failure_is_halted_after_a_dry_run_then_replaced_once)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    const cJSON *o, *patch, *ann, *spec;
    char *name = repl_name();

    CHECK_INT(up(&r), 0);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(requeue, 0);
    /* the order: dry run, halt, create */
    CHECK_INT(r.dry_posts, 1);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_INT(r.posts, 1);
    patch = cJSON_GetArrayItem(r.patches, 0);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(patch, "path")->valuestring, VMS "/vm-001");
    /* the preconditions: what the decision read (the failed VMI is the
     * evidence: the VM's status and resourceVersion are not among them) */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(patch, "type")), "json");
    CHECK_STR(cJSON_GetStringValue(tested(patch, "/metadata/uid")), CTL_VM001_UID);
    CHECK_STR(cJSON_GetStringValue(tested(patch, "/spec/runStrategy")), "Always");
    CHECK(cJSON_IsNull(tested(patch, "/metadata/deletionTimestamp")));
    CHECK(cJSON_IsNull(tested(patch, "/metadata/annotations/kvrecover.io~1replaced-by")));
    CHECK_STR(cJSON_GetStringValue(
                  cJSON_GetObjectItemCaseSensitive(tested(patch, "/metadata/labels"), "app")),
              "paper");
    CHECK_INT(cJSON_GetNumberValue(tested(patch, "/metadata/generation")), 1);
    CHECK(tested(patch, "/metadata/resourceVersion") == NULL);
    patch = cJSON_GetObjectItemCaseSensitive(patch, "body");
    spec = cJSON_GetObjectItemCaseSensitive(patch, "spec");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(spec, "runStrategy")->valuestring, "Halted");
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)patch), "annotations");
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/previous-run-strategy")->valuestring,
        "Always");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/replaced-by")->valuestring, name);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/failed-uid")->valuestring, UID1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/policy")->valuestring, "paper");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/template")->valuestring,
              "vm-005");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/score")->valuestring, "0.6667");
    o = stored_replacement(&r);
    CHECK(o != NULL);
    CHECK_INT(cJSON_GetArraySize(r.store), 1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)o), "labels"),
                  "kvrecover.io/replaces")
                  ->valuestring,
              "vm-001");
    CHECK_INT(ctl_events(&r, "Normal Halted VirtualMachine/vm-001"), 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered RecoveryPolicy/paper"), 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered VirtualMachine/vm-001"), 1);
    CHECK_INT(recover_book_count(r.book, "fx", "paper", RECOVER_RECOVERED), 1);

    /* the watch delivers the halt and the replacement: nothing more */
    deliver_halt(&r);
    {
        cJSON *copy = cJSON_Duplicate(o, 1);

        ctl_set_str(ctl_meta(copy), "uid", "repl-uid");
        cache_vm_put(r.cache, copy);
        cJSON_Delete(copy);
    }
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 2);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_INT(ctl_events(&r, "Normal Recovered"), 2);
    free(name);
    ctl_down(&r);
}

TEST(killed_between_halt_and_create_a_restart_finishes_with_the_same_name)
{
    struct ctl_rig r, r2;
    uint64_t requeue;

    CHECK_INT(up(&r), 0);
    r.post_status = 500; /* the create never happens: as if killed after the halt */
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK(stored_replacement(&r) == NULL);
    /* a new process: a fresh book, the halted VM in its cache */
    CHECK_INT(up(&r2), 0);
    cJSON_AddItemToArray(r2.patches, cJSON_Duplicate(cJSON_GetArrayItem(r.patches, 0), 1));
    deliver_halt(&r2);
    cJSON_DeleteItemFromArray(r2.patches, 0);
    /* even with a pool where another member now ranks first: the member
     * chosen at halt time is used */
    edit_policy(&r2, "{\"trigger\":{\"immediate\":true},\"threshold\":0.99}");
    CHECK_INT(incident_reconcile(&r2.env, r2.rk, "fx", "vm-001", &requeue), 0);
    CHECK_INT(r2.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r2.patches), 0); /* no second halt */
    CHECK_INT(r2.posts, 1);
    CHECK(stored_replacement(&r2) != NULL);
    CHECK_STR(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)stored_replacement(&r2)), "labels"),
            "kvrecover.io/template")
            ->valuestring,
        "vm-005");
    CHECK_INT(ctl_events(&r2, "Normal Recovered"), 2);
    /* the ranking now selects none: the decision keeps no ranking that
     * would contradict the member used */
    CHECK(recorded_ranking(&r2) == NULL);
    ctl_down(&r);
    ctl_down(&r2);
}

/* Finished by a later pass (the first create timed out), the decision
 * still carries the ranking that chose its member, for status and the
 * dashboard. */
TEST(an_incident_finished_by_a_later_pass_records_its_ranking)
{
    struct ctl_rig r;
    uint64_t requeue;
    const cJSON *rk;

    CHECK_INT(up(&r), 0);
    r.post_status = 500; /* the create fails after the halt */
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    deliver_halt(&r);
    r.post_status = 0;
    CHECK_INT(incident_reconcile(&r.env, r.rk, "fx", "vm-001", &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    rk = recorded_ranking(&r);
    CHECK(rk != NULL);
    CHECK(rk && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rk, "selected")) &&
          strcmp(cJSON_GetObjectItemCaseSensitive(rk, "selected")->valuestring, "vm-005") == 0);
    ctl_down(&r);
}

/* Step 1 reads the halted VM from the cache, which lags: deleted (with its
 * replacement) since, it gets no replacement again, which nothing would
 * ever delete (bench_soak's 2,001 replacements for 2,000 VMs). */
TEST(a_halted_vm_deleted_since_the_cache_read_gets_no_replacement)
{
    static const char *const cases[] = {"deleted", "uid", "deleting", "running", "renamed"};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_rig r;
        uint64_t requeue;
        cJSON *vm;

        CHECK_INT(up(&r), 0);
        r.post_status = 500; /* the create fails after the halt */
        CHECK(reconcile(&r, &requeue) < 0);
        deliver_halt(&r);
        r.post_status = 0;
        r.posts = 0;
        /* what happened at the API server since the cache read */
        vm = cJSON_GetObjectItemCaseSensitive(r.store, VMS "/vm-001");
        if (strcmp(cases[i], "deleted") == 0)
            cJSON_DeleteItemFromObjectCaseSensitive(r.store, VMS "/vm-001");
        else if (strcmp(cases[i], "uid") == 0)
            ctl_set_str(ctl_meta(vm), "uid", "00000000-0000-4000-8000-000000000001");
        else if (strcmp(cases[i], "deleting") == 0)
            ctl_set_str(ctl_meta(vm), "deletionTimestamp", "2026-11-30T17:20:18Z");
        else if (strcmp(cases[i], "running") == 0)
            ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Always");
        else
            ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations"),
                        "kvrecover.io/replaced-by", "vm-001-0123456789");
        CHECK_INT(reconcile(&r, &requeue), 0);
        CHECK_INT(r.posts, 0);
        CHECK(stored_replacement(&r) == NULL);
        if (r.posts || stored_replacement(&r))
            printf("  case %s\n", cases[i]);
        ctl_down(&r);
    }
}

TEST(halted_with_its_member_gone_and_none_eligible_the_incident_is_blocked)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_note n;
    cJSON *list = ctl_load("ctl-pool-list.json"), *it;

    int posts;

    CHECK_INT(up(&r), 0);
    r.post_status = 500; /* halted, not created */
    CHECK(reconcile(&r, &requeue) < 0);
    r.post_status = 0;
    posts = r.posts;
    deliver_halt(&r);
    /* vm-005 is deleted and nothing else is good enough */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
    {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(ctl_meta(it), "name")->valuestring, "vm-005") ==
            0)
            cache_member_del(r.cache, it);
    }
    CHECK_INT(reconcile(&r, &requeue), -EAGAIN);
    CHECK_INT(r.posts, posts); /* no create */
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_STR(n.blocked, "NoEligibleCandidate");
    recover_note_free(&n);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate VirtualMachine/vm-001"), 1);
    cJSON_Delete(list);
    ctl_down(&r);
}

/* Whether the VMs the tests below build crash-loop (status.startFailure
 * at the default crashLoopThreshold, the VMI the fixture's failed one): a
 * trigger read from the VM's status, whose halt is conditional on the
 * resourceVersion. */
static int crash_looping;

/* vm-001 of the VM fixture at resourceVersion rv; KubeVirt's status write
 * after its VMI failed (printableStatus Starting) when rv is not the
 * fixture's; with label "edited" when edit_labels (an edit kvrecover must
 * not halt past). */
static cJSON *vm001(const char *rv, int edit_labels)
{
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);
    cJSON *status = cJSON_GetObjectItemCaseSensitive(vm, "status");

    if (!status)
        status = cJSON_AddObjectToObject(vm, "status");
    if (strcmp(rv, "544") != 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(status, "printableStatus");
        cJSON_AddStringToObject(status, "printableStatus", "Starting");
    }
    if (crash_looping) {
        cJSON *sf = cJSON_AddObjectToObject(status, "startFailure");

        cJSON_AddNumberToObject(sf, "consecutiveFailCount", 3);
        cJSON_AddStringToObject(sf, "lastFailedVMIUID", UID1);
    }
    if (edit_labels) {
        cJSON *labels = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "labels");

        if (!labels)
            labels = cJSON_AddObjectToObject(ctl_meta(vm), "labels");
        cJSON_AddStringToObject(labels, "edited", "yes");
    }
    ctl_set_str(ctl_meta(vm), "resourceVersion", rv);
    cJSON_Delete(vms);
    return vm;
}

/* The cache sees vm001(rv, edit_labels), as the watch would deliver it. */
static void vm_seen(struct ctl_rig *r, const char *rv, int edit_labels)
{
    cJSON *vm = vm001(rv, edit_labels);

    cache_vm_put(r->cache, vm);
    cJSON_Delete(vm);
}

/* The API server holds vm001(rv, edit_labels) (the cache may lag). */
static void vm_stored(struct ctl_rig *r, const char *rv, int edit_labels)
{
    cJSON_DeleteItemFromObjectCaseSensitive(r->store, VMS "/vm-001");
    cJSON_AddItemToObject(r->store, VMS "/vm-001", vm001(rv, edit_labels));
}

static void status_written(struct ctl_rig *r)
{
    vm_stored(r, "545", 0);
    vm_seen(r, "545", 0);
}

static void labels_edited(struct ctl_rig *r)
{
    vm_stored(r, "545", 1);
    vm_seen(r, "545", 1);
}

/* up() with vm-001 crash-looping (the default trigger, no immediate), in
 * the cache and at the API server at the fixture's resourceVersion. */
static int up_crash_looping(struct ctl_rig *r)
{
    int rc = ctl_up(r);

    crash_looping = 1;
    edit_policy(r, "{\"trigger\":{\"crashLoopThreshold\":3}}");
    vm_seen(r, "544", 0);
    vm_stored(r, "544", 0);
    return rc;
}

/* The fixture's failed VMI is the evidence of an immediate trigger: the
 * status write KubeVirt makes at that moment does not stand in the halt's
 * way (it did: 409 Conflict, a cache wait and a second PATCH). */
TEST(a_status_write_before_an_immediate_halt_does_not_stop_it)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    const cJSON *stored, *ann;

    crash_looping = 0;
    CHECK_INT(up(&r), 0);
    vm_stored(&r, "545", 0); /* the cache still has 544 */
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.dry_posts, 1);
    CHECK_INT(cJSON_GetArraySize(r.write_as), 3); /* dry run, one PATCH, create */
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    stored = cJSON_GetObjectItemCaseSensitive(r.store, VMS "/vm-001");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(stored, "spec"), "runStrategy")),
              "Halted");
    ann = cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)stored), "annotations");
    CHECK_STR(
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, "kvrecover.io/failed-uid")),
        UID1);
    CHECK_INT(r.posts, 1);
    CHECK(stored_replacement(&r) != NULL);
    ctl_down(&r);
}

/* An edit of what the replacement copies is not halted past: the JSON
 * patch's test fails, the resourceVersion-conditional halt then meets the
 * edit too, and the reconcile starts over with the edited VM. */
TEST(an_edit_before_an_immediate_halt_is_not_halted_past)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    const cJSON *labels;

    crash_looping = 0;
    CHECK_INT(up(&r), 0);
    vm_stored(&r, "545", 1); /* labels edited; the cache still has 544 */
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(cJSON_GetArraySize(r.write_as), 3); /* dry run, the JSON patch, the merge patch */
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(r.posts, 0);
    /* the watch delivers the edit: recovered once, with the edited labels */
    vm_seen(&r, "545", 1);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_INT(r.posts, 1);
    labels = cJSON_GetObjectItemCaseSensitive(ctl_meta((cJSON *)stored_replacement(&r)), "labels");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, "edited")), "yes");
    ctl_down(&r);
}

/* A VM without annotations (KubeVirt annotates every VM it has seen, but a
 * VM may come from elsewhere) cannot take the JSON patch's annotation adds:
 * the halt falls back to the resourceVersion-conditional merge patch. */
TEST(a_vm_the_json_patch_does_not_fit_is_halted_by_resource_version)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    cJSON *stored;

    crash_looping = 0;
    CHECK_INT(up(&r), 0);
    vm_stored(&r, "544", 0);
    stored = cJSON_GetObjectItemCaseSensitive(r.store, VMS "/vm-001");
    cJSON_DeleteItemFromObjectCaseSensitive(ctl_meta(stored), "annotations");
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_STR(cJSON_GetStringValue(
                  cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r.patches, 0), "type")),
              "merge");
    CHECK_INT(r.posts, 1);
    ctl_down(&r);
}

/* A crash loop is read from the VM's status: its halt is conditional on
 * the resourceVersion, and KubeVirt's status write meanwhile costs one more
 * PATCH once the cache shows the decision still holds, not a second dry run. */
TEST(a_status_write_during_a_crash_loop_halt_costs_one_more_patch_not_a_second_dry_run)
{
    struct ctl_rig r;
    uint64_t requeue = 1;
    const cJSON *p;

    CHECK_INT(up_crash_looping(&r), 0);
    r.patch_conflicts = 1;
    r.on_conflict = status_written;
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.dry_posts, 1);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    p = cJSON_GetArrayItem(r.patches, 0);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type")), "merge");
    /* conditional still: on the resourceVersion KubeVirt's write left */
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  ctl_meta(cJSON_GetObjectItemCaseSensitive(p, "body")), "resourceVersion")),
              "545");
    CHECK_INT(r.posts, 1);
    CHECK(stored_replacement(&r) != NULL);
    crash_looping = 0;
    ctl_down(&r);
}

TEST(an_edit_during_a_crash_loop_halt_starts_the_reconcile_over)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(up_crash_looping(&r), 0);
    r.patch_conflicts = 1;
    r.on_conflict = labels_edited;
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(r.dry_posts, 1);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0); /* no halt past the edit */
    CHECK_INT(r.posts, 0);
    /* the next reconcile reads the edited VM and recovers it, once */
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK_INT(r.posts, 1);
    crash_looping = 0;
    ctl_down(&r);
}

TEST(two_replicas_make_one_replacement)
{
    struct ctl_rig r;
    uint64_t requeue;
    char *name = repl_name(), *path = xasprintf(VMS "/%s", name);

    CHECK_INT(up(&r), 0);
    /* the other replica halted it first: our resourceVersion is stale */
    r.patch_status = 409;
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(ctl_events(&r, ""), 0);
    /* ...and created the replacement; we see the halted VM, not yet the
     * replacement: the API server has it for the same failed uid, done,
     * without a create */
    r.patch_status = 0;
    cJSON_AddItemToObject(
        r.store, path,
        cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvrecover.io/failed-uid\":\"" UID1 "\"}}}"));
    {
        cJSON *p = cJSON_CreateObject(), *body = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(body, "metadata");
        cJSON *ann = cJSON_AddObjectToObject(meta, "annotations");

        cJSON_AddStringToObject(ann, "kvrecover.io/replaced-by", name);
        cJSON_AddStringToObject(ann, "kvrecover.io/failed-uid", UID1);
        cJSON_AddStringToObject(ann, "kvrecover.io/policy", "paper");
        cJSON_AddStringToObject(ann, "kvrecover.io/template", "vm-005");
        cJSON_AddItemToObject(p, "body", body);
        cJSON_AddItemToArray(r.patches, p);
        deliver_halt(&r);
        cJSON_DeleteItemFromArray(r.patches, 0);
    }
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts, 0);
    CHECK_INT(r.gets, 1);
    CHECK_INT(cJSON_GetArraySize(r.store), 2); /* the halted VM and its replacement */
    CHECK_INT(ctl_events(&r, "Normal Recovered"), 2);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    free(name);
    free(path);
    ctl_down(&r);
}

TEST(no_eligible_candidate_halts_nothing_and_is_announced_once)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_note n;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"threshold\":0.9}");
    CHECK(reconcile(&r, &requeue) < 0); /* retried with backoff: never given up */
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate RecoveryPolicy/paper"), 1);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate VirtualMachine/vm-001"), 1);
    CHECK_INT(recover_book_count(r.book, "fx", "paper", RECOVER_NO_CANDIDATE), 1);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_STR(n.blocked, "NoEligibleCandidate");
    CHECK_INT(n.tries, 1);
    recover_note_free(&n);
    /* a pool that can: recovered, unblocked */
    edit_policy(&r, "{\"trigger\":{\"immediate\":true}}");
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK(n.blocked == NULL);
    recover_note_free(&n);
    ctl_down(&r);
}

TEST(dry_run_writes_nothing_and_announces_once)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_decision *out = NULL;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"action\":\"DryRun\"}");
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Normal DryRun"), 2);
    CHECK_INT(recover_book_recent(r.book, "fx", "paper", 10, 1, &out), 1);
    CHECK_INT(out[0].result, RECOVER_DRYRUN);
    CHECK_STR(out[0].tmpl, "vm-005");
    CHECK_STR(out[0].trigger, "Immediate");
    CHECK(out[0].ranking != NULL);
    recover_decision_free(&out[0]);
    free(out);
    ctl_down(&r);
}

TEST(admission_refusing_every_candidate_halts_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(up(&r), 0);
    r.dry_status = 422;
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(r.dry_posts, 1);
    CHECK_INT(r.posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning InvalidPoolMember RecoveryPolicy/paper"), 1);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate"), 2);
    ctl_down(&r);
}

TEST(a_forbidden_dry_run_blocks_the_incident_until_fixed)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_note n;

    CHECK_INT(up(&r), 0);
    r.dry_status = 403;
    CHECK_INT(reconcile(&r, &requeue), -EACCES);
    CHECK_INT(reconcile(&r, &requeue), -EACCES);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning RecoveryBlocked VirtualMachine/vm-001"), 1);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_STR(n.blocked, "Forbidden");
    recover_note_free(&n);
    /* an admin fixes RBAC: the next retry recovers */
    r.dry_status = 0;
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    ctl_down(&r);
}

TEST(a_name_taken_by_another_vm_halts_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;
    char *name = repl_name(), *path = xasprintf(VMS "/%s", name);

    CHECK_INT(up(&r), 0);
    cJSON_AddItemToObject(
        r.store, path,
        cJSON_Parse("{\"metadata\":{\"annotations\":{\"kvrecover.io/failed-uid\":\"other\"}}}"));
    CHECK_INT(reconcile(&r, &requeue), -EEXIST);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning RecoveryBlocked"), 2);
    free(name);
    free(path);
    ctl_down(&r);
}

TEST(without_immediate_a_restarting_vm_is_left_to_kubevirt)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(ctl_up(&r), 0); /* the fixture's policy: default trigger */
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(requeue, 0);
    CHECK_INT(r.posts + r.dry_posts + r.gets, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, ""), 0);
    ctl_down(&r);
}

TEST(a_handled_failure_that_runs_again_is_not_an_incident)
{
    struct ctl_rig r;
    uint64_t requeue;
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);

    CHECK_INT(up(&r), 0);
    /* an admin ran the original again after an incident about UID1 */
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations"),
                "kvrecover.io/failed-uid", UID1);
    ctl_set_str(cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations"),
                "kvrecover.io/replaced-by", "vm-001-606f7b115d");
    cache_vm_put(r.cache, vm);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    cJSON_Delete(vms);
    ctl_down(&r);
}

TEST(a_replica_that_does_not_lead_writes_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(up(&r), 0);
    r.leading = 0;
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    r.leading = 1;
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts, 1);
    ctl_down(&r);
}

/* Puts VM vm-00(idx+1)'s VMI (controlled by it, its uid from the VM fixture
 * list), uid "failed-IDX" as the fixture has it, or with node "running-IDX"
 * Running on node. */
static void put_vmi_of(struct ctl_rig *r, int idx, const char *node)
{
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), idx);
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    cJSON *st = cJSON_GetObjectItemCaseSensitive(vmi, "status");
    const char *name = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "name")->valuestring;
    char uid[64];

    snprintf(uid, sizeof(uid), "%s-%d", node ? "running" : "failed", idx);
    ctl_set_str(ctl_meta(vmi), "name", name);
    ctl_set_str(ctl_meta(vmi), "uid", uid);
    ctl_own(vmi, name, cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "uid")->valuestring);
    if (node) {
        ctl_set_str(st, "phase", "Running");
        ctl_set_str(st, "nodeName", node);
        cJSON_DeleteItemFromObjectCaseSensitive(st, "phaseTransitionTimestamps");
    }
    cache_vmi_put(r->cache, vmi, clock_wall(), clock_mono());
    cJSON_Delete(vmi);
    cJSON_Delete(vms);
}

/* Puts a Failed VMI owned by VM name (uid from the VM fixture list). */
static void fail_vm(struct ctl_rig *r, int idx)
{
    put_vmi_of(r, idx, NULL);
}

TEST(a_storm_holds_every_incident_of_the_policy)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_note n;

    CHECK_INT(up(&r), 0);
    /* 5 protected, limit 50% = 3: 4 down is a storm */
    fail_vm(&r, 1);
    fail_vm(&r, 2);
    fail_vm(&r, 3);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(requeue, INCIDENT_STORM_RECHECK_MS);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning StormHold RecoveryPolicy/paper"), 1);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_STR(n.blocked, "StormHold");
    recover_note_free(&n);
    /* an admin lets it proceed: stormLimit 4 */
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"stormLimit\":4}");
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    ctl_down(&r);
}

/* VM m-NNN, a copy of vm-001 of the VM fixture (policy paper protects it);
 * with halted_for, as kvrecover's halt for that failed uid leaves it. */
static void put_fleet_vm(struct ctl_rig *r, int i, const char *halted_for)
{
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);
    char name[32], uid[32];

    snprintf(name, sizeof(name), "m-%03d", i);
    snprintf(uid, sizeof(uid), "m-uid-%03d", i);
    ctl_set_str(ctl_meta(vm), "name", name);
    ctl_set_str(ctl_meta(vm), "uid", uid);
    if (halted_for) {
        cJSON *ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations");
        char *repl = recover_replacement_name(name, halted_for);

        ctl_set_str(ann, "kvrecover.io/replaced-by", repl);
        ctl_set_str(ann, "kvrecover.io/failed-uid", halted_for);
        ctl_set_str(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "runStrategy", "Halted");
        free(repl);
    }
    cache_vm_put(r->cache, vm);
    cJSON_Delete(vms);
}

/* VM m-NNN's VMI, Failed (uid m-failed-NNN). */
static void fail_fleet_vm(struct ctl_rig *r, int i)
{
    cJSON *vmi = ctl_load("ctl-vmi-failed.json");
    char name[32], uid[32], vm_uid[32];

    snprintf(name, sizeof(name), "m-%03d", i);
    snprintf(uid, sizeof(uid), "m-failed-%03d", i);
    snprintf(vm_uid, sizeof(vm_uid), "m-uid-%03d", i);
    ctl_set_str(ctl_meta(vmi), "name", name);
    ctl_set_str(ctl_meta(vmi), "uid", uid);
    ctl_own(vmi, name, vm_uid);
    cache_vmi_put(r->cache, vmi, clock_wall(), clock_mono());
    cJSON_Delete(vmi);
}

static int reconcile_fleet_vm(struct ctl_rig *r, int i, uint64_t *requeue)
{
    char name[32];

    snprintf(name, sizeof(name), "m-%03d", i);
    return incident_reconcile(&r->env, r->rk, "fx", name, requeue);
}

/* Whether a reconcile of VM name holds it in a storm, with still only
 * writes writes made (one halt and one create each). */
static int held_with(struct ctl_rig *r, const char *name, int writes)
{
    uint64_t requeue = 0;

    return incident_reconcile(&r->env, r->rk, "fx", name, &requeue) == 0 &&
           requeue == INCIDENT_STORM_RECHECK_MS && r->posts == writes &&
           cJSON_GetArraySize(r->patches) == writes;
}

/* VMs m-000 to m-(n-1), the first failed of them failed; the walks
 * counted from here. */
static void put_fleet(struct ctl_rig *r, int n, int failed)
{
    for (int i = 0; i < n; i++) {
        put_fleet_vm(r, i, NULL);
        if (i < failed)
            fail_fleet_vm(r, i);
    }
    incident_storm_forget();
}

TEST(a_mass_failure_let_through_counts_the_fleet_a_few_times_not_once_per_vm)
{
    struct ctl_rig r;
    uint64_t requeue;
    int made = 0;

    CHECK_INT(up(&r), 0);
    /* 205 protected, 101 down (vm-001 and 100 of the fleet), limit 60%
     * (123): every failure goes through */
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"stormLimit\":\"60%\"}");
    put_fleet(&r, 200, 100);
    for (int i = 0; i < 100; i++) {
        char uid[32];

        if (reconcile_fleet_vm(&r, i, &requeue) == 0 && requeue == 0)
            made++;
        /* the watch delivers the halt: the fleet changes under the check */
        snprintf(uid, sizeof(uid), "m-failed-%03d", i);
        put_fleet_vm(&r, i, uid);
    }
    CHECK_INT(made, 100);
    CHECK_INT(r.posts, 100);
    CHECK_INT(ctl_events(&r, "Warning StormHold"), 0);
    /* one count per VM was 100; the memo's range decides the rest */
    CHECK(incident_storm_walks() >= 1);
    CHECK(incident_storm_walks() <= 10);
    ctl_down(&r);
}

TEST(a_mass_failure_held_counts_the_fleet_once)
{
    struct ctl_rig r;
    uint64_t requeue;
    int held = 0;

    CHECK_INT(up(&r), 0);
    /* 205 protected, 151 down, limit 50% (103): a storm */
    put_fleet(&r, 200, 150);
    for (int i = 0; i < 150; i++) {
        CHECK_INT(reconcile_fleet_vm(&r, i, &requeue), 0);
        held += requeue == INCIDENT_STORM_RECHECK_MS;
    }
    /* and each held VM's recheck */
    for (int i = 0; i < 150; i++)
        CHECK_INT(reconcile_fleet_vm(&r, i, &requeue), 0);
    CHECK_INT(held, 150);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning StormHold RecoveryPolicy/paper"), 1);
    CHECK_INT(incident_storm_walks(), 1);
    ctl_down(&r);
}

TEST(one_more_failure_than_storm_limit_in_one_burst_creates_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;
    static const char *const names[] = {"vm-001", "vm-002", "vm-003"};

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"stormLimit\":2}");
    fail_vm(&r, 1);
    fail_vm(&r, 2);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++) {
            CHECK_INT(incident_reconcile(&r.env, r.rk, "fx", names[i], &requeue), 0);
            CHECK_INT(requeue, INCIDENT_STORM_RECHECK_MS);
        }
    }
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    ctl_down(&r);
}

TEST(a_failure_just_after_a_count_is_held_and_released_when_one_recovers)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"stormLimit\":2}");
    /* 2 down of 5, the limit: vm-001 goes through */
    fail_vm(&r, 1);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts, 1);
    /* its halt not delivered yet, vm-001 still counts as down; a third
     * failure right after the count is one too many: held, exactly as a
     * count now would say */
    fail_vm(&r, 2);
    CHECK(held_with(&r, "vm-003", 1));
    /* vm-001's halt arrives: 2 down again, vm-003 goes through at once */
    deliver_halt(&r);
    CHECK_INT(incident_reconcile(&r.env, r.rk, "fx", "vm-003", &requeue), 0);
    CHECK_INT(requeue, 0);
    CHECK_INT(r.posts, 2);
    CHECK_INT(cJSON_GetArraySize(r.patches), 2);
    ctl_down(&r);
}

static void put_node(struct ctl_rig *r, const char *name, const char *ready, const char *cpu,
                     const char *mem);

TEST(a_node_lost_just_after_a_count_holds_the_next_failure)
{
    struct ctl_rig r;
    uint64_t requeue;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"stormLimit\":2}");
    put_node(&r, "n1", "True", "64", "256Gi");
    put_vmi_of(&r, 1, "n1");
    put_vmi_of(&r, 2, "n1");
    put_vmi_of(&r, 3, "n1");
    /* 1 down of 5: vm-001 goes through */
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts, 1);
    /* n1 is lost (three VMs down at once, one change of the node) and
     * vm-005 fails: one VM change since the count, but five are down */
    put_node(&r, "n1", "False", "64", "256Gi");
    fail_vm(&r, 4);
    CHECK(held_with(&r, "vm-005", 1));
    ctl_down(&r);
}

/* A Node as the API sends it. */
static void put_node(struct ctl_rig *r, const char *name, const char *ready, const char *cpu,
                     const char *mem)
{
    char *text = xasprintf(
        "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"kubevirt.io/schedulable\":\"true\"}},"
        "\"status\":{\"allocatable\":{\"cpu\":\"%s\",\"memory\":\"%s\",\"pods\":\"110\"},"
        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\",\"lastTransitionTime\":"
        "\"2026-01-01T00:00:00Z\"}]}}",
        name, cpu, mem, ready);
    cJSON *o = cJSON_Parse(text);

    cache_node_put(r->cache, o);
    cJSON_Delete(o);
    free(text);
}

TEST(on_a_lost_node_a_member_that_fits_no_node_is_refused)
{
    struct ctl_rig r;
    uint64_t requeue;
    cJSON *vmi = ctl_load("ctl-vmi-failed.json"), *st;

    CHECK_INT(ctl_up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"nodeLossSeconds\":30}}");
    /* vm-001 Running on n1, which is NotReady since long ago */
    ctl_own(vmi, "vm-001", CTL_VM001_UID);
    st = cJSON_GetObjectItemCaseSensitive(vmi, "status");
    ctl_set_str(st, "phase", "Running");
    ctl_set_str(st, "nodeName", "n1");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "phaseTransitionTimestamps");
    cache_vmi_put(r.cache, vmi, clock_wall(), clock_mono());
    put_node(&r, "n1", "False", "64", "256Gi");
    put_node(&r, "n2", "True", "64", "1Gi"); /* vm-005's replacement (4Gi) does not fit */
    CHECK(reconcile(&r, &requeue) < 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(ctl_events(&r, "Warning NoEligibleCandidate VirtualMachine/vm-001"), 1);
    /* room appears: recovered */
    put_node(&r, "n2", "True", "64", "64Gi");
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 1);
    CHECK(stored_replacement(&r) != NULL);
    CHECK_INT(r.posts, 1);
    cJSON_Delete(vmi);
    ctl_down(&r);
}

/* Whoever may patch a VM may write kvrecover's annotations: a halted VM
 * whose replaced-by is not the name its failed uid gives is not an
 * incident of kvrecover's, and no VM of the name the tenant chose is made. */
TEST(forged_incident_annotations_create_nothing)
{
    struct ctl_rig r;
    uint64_t requeue;
    cJSON *vms = ctl_load("ctl-vm-list.json");
    cJSON *vm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(vms, "items"), 0);
    cJSON *ann = cJSON_GetObjectItemCaseSensitive(ctl_meta(vm), "annotations");

    CHECK_INT(up(&r), 0);
    ctl_set_str(ann, "kvrecover.io/replaced-by", "chosen-by-tenant");
    ctl_set_str(ann, "kvrecover.io/failed-uid", UID1);
    ctl_set_str(ann, "kvrecover.io/template", "vm-005");
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "spec"),
                                           "runStrategy", cJSON_CreateString("Halted"));
    cache_vm_put(r.cache, vm);
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK_INT(r.posts + r.dry_posts, 0);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(cJSON_GetArraySize(r.store), 0);
    cJSON_Delete(vms);
    ctl_down(&r);
}

/* ---- the identity of the writes (issue 12: no confused deputy) ---------- */

#define AS_RECOVERER "Impersonate-User: system:serviceaccount:fx:recoverer\n"

TEST(every_write_for_a_policy_is_made_as_its_service_account)
{
    struct ctl_rig r;
    uint64_t requeue;
    int n;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"serviceAccountName\":\"recoverer\"}");
    /* the policy's own ServiceAccount wins over the default one */
    r.env.default_service_account = "kvrecover-recoverer";
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    /* dry run, halt, create: each as fx's recoverer, and only that header */
    CHECK(ctl_writes_all_as(&r, AS_RECOVERER, &n));
    CHECK_INT(n, 3);
    ctl_down(&r);
}

TEST(a_policy_naming_no_service_account_writes_as_the_default_one)
{
    struct ctl_rig r;
    uint64_t requeue;
    int n;

    CHECK_INT(up(&r), 0);
    r.env.default_service_account = "kvrecover-recoverer";
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    CHECK(ctl_writes_all_as(&r, "Impersonate-User: system:serviceaccount:fx:kvrecover-recoverer\n",
                            &n));
    CHECK_INT(n, 3);
    ctl_down(&r);
}

TEST(a_namespace_that_grants_no_impersonation_gets_nothing_written)
{
    struct ctl_rig r;
    uint64_t requeue;
    struct recover_note n;
    int writes;

    CHECK_INT(up(&r), 0);
    edit_policy(&r, "{\"trigger\":{\"immediate\":true},\"serviceAccountName\":\"recoverer\"}");
    r.deny_as = 1;
    CHECK_INT(reconcile(&r, &requeue), -EACCES);
    /* refused at the dry run: no halt, no replacement, nothing as ourselves */
    CHECK(ctl_writes_all_as(&r, AS_RECOVERER, &writes));
    CHECK_INT(writes, 1);
    CHECK_INT(cJSON_GetArraySize(r.patches), 0);
    CHECK_INT(cJSON_GetArraySize(r.store), 0);
    CHECK_INT(recover_book_note(r.book, "fx", "vm-001", &n), 1);
    CHECK_STR(n.blocked, "Forbidden");
    recover_note_free(&n);
    /* the Event carries the API server's reason, for the tenant to act on */
    CHECK_INT(ctl_events(&r, "Warning RecoveryBlocked VirtualMachine/vm-001"), 1);
    CHECK(ctl_events_with(&r, "cannot impersonate resource \"serviceaccounts\"") >= 1);
    /* the namespace's owner applies the grant: the next retry recovers */
    r.deny_as = 0;
    CHECK_INT(reconcile(&r, &requeue), 0);
    CHECK(stored_replacement(&r) != NULL);
    ctl_down(&r);
}
