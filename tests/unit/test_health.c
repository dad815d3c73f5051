/*
 * Unit tests for health: every trigger, its pending state and how long it
 * waits, the spent-incident rule, VMIs being deleted, Manual and Once,
 * immediate, RerunOnFailure, nodes unknown to the cache, a stale
 * heartbeat, nodeLossSeconds 0, and that a VM KubeVirt restarts by itself
 * never triggers. The facts are those KubeVirt v1.8.4 reports
 * (KUBEVIRT-NOTES.md, tests/fixtures/kv-*.json).
 */
#include <string.h>

#include "harness.h"
#include "reconcile/health.h"

#define NOW 2000000000.0

static const struct health_config defaults = {3, 300, 300, 0};

/* An Always VM whose VMI runs on a Ready node with a fresh heartbeat. */
static void well(struct health_vm *vm, struct health_vmi *vmi, struct health_node *node)
{
    memset(vm, 0, sizeof(*vm));
    memset(vmi, 0, sizeof(*vmi));
    memset(node, 0, sizeof(*node));
    vm->uid = "vm-uid";
    vm->rs = CACHE_RS_ALWAYS;
    vm->printable = "Running";
    vm->ready = CACHE_COND_TRUE;
    vm->ready_since = NOW - 3600;
    vmi->exists = 1;
    vmi->uid = "vmi-1";
    vmi->phase = CACHE_PHASE_RUNNING;
    vmi->node = "node-2";
    node->exists = 1;
    node->ready = CACHE_COND_TRUE;
    node->ready_since = NOW - 7200;
    node->heartbeat = NOW - 30;
}

static struct health_verdict eval(const struct health_config *cfg, const struct health_vm *vm,
                                  const struct health_vmi *vmi, const struct health_node *node)
{
    struct health_verdict v;

    health_eval(cfg, vm, vmi, node, NOW, &v);
    /* every trigger names the incident's uid and fires now */
    if (v.trigger != HEALTH_NONE &&
        (!v.failed_uid || v.wait_ms || (!v.down && v.trigger != HEALTH_IMMEDIATE)))
        harness_fail(__FILE__, __LINE__, "trigger %s without a uid, pending or not down",
                     health_trigger_name(v.trigger));
    return v;
}

TEST(a_running_vm_is_well)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RUNNING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 0);
    CHECK_INT(v.not_running, 0);
    CHECK_INT(v.wait_ms, 0);
    CHECK(strstr(v.reason, "node-2") != NULL);
}

/* KUBEVIRT-NOTES: a single crash under Always, the Failed VMI is gone
 * within a second and a new one runs 2-3 s later. No replacement, ever. */
TEST(a_crash_kubevirt_restarts_never_triggers)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    vmi.phase = CACHE_PHASE_FAILED;
    vm.last_failed_uid = "vmi-1";
    vm.printable = "Stopped";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RESTARTING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 0);
    /* gone, then the new VMI Starting, then Running */
    vmi.exists = 0;
    vm.printable = "Starting";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_STARTING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.not_running, 1);
    well(&vm, &vmi, &node);
    vm.last_failed_uid = "vmi-1";
    vmi.uid = "vmi-2";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RUNNING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    /* RerunOnFailure alike; a completed one is stopped */
    vm.rs = CACHE_RS_RERUN_ON_FAILURE;
    vmi.phase = CACHE_PHASE_FAILED;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RESTARTING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    vmi.phase = CACHE_PHASE_SUCCEEDED;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_STOPPED);
    CHECK_INT(v.down, 0);
}

/* The paper's behaviour: the first Failed VMI, even one KubeVirt already
 * replaced by a new uid (the cache remembers it). */
TEST(immediate_acts_on_the_first_failed_vmi_and_only_once)
{
    struct health_config cfg = defaults;
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    cfg.immediate = 1;
    well(&vm, &vmi, &node);
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NONE);
    vmi.phase = CACHE_PHASE_FAILED;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_IMMEDIATE);
    CHECK_STR(v.failed_uid, "vmi-1");
    CHECK_INT(v.state, HEALTH_FAILED);
    CHECK_INT(v.down, 1);
    /* KubeVirt was quicker: a new VMI runs, the failed one is remembered */
    vmi.phase = CACHE_PHASE_RUNNING;
    vmi.uid = "vmi-2";
    vm.last_failed_uid = "vmi-1";
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_IMMEDIATE);
    CHECK_STR(v.failed_uid, "vmi-1");
    /* ... but it runs again: not down (stormLimit counts it no more) */
    CHECK_INT(v.down, 0);
    vmi.phase = CACHE_PHASE_SCHEDULED;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_IMMEDIATE);
    CHECK_INT(v.down, 1);
    vmi.phase = CACHE_PHASE_RUNNING;
    /* handled (the halt wrote kvrecover.io/failed-uid): spent */
    vm.spent_uid = "vmi-1";
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.state, HEALTH_RUNNING);
    /* a Manual VM too */
    well(&vm, &vmi, &node);
    vm.rs = CACHE_RS_MANUAL;
    vmi.phase = CACHE_PHASE_FAILED;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_IMMEDIATE);
}

TEST(manual_and_once_vms_are_replaced_as_soon_as_their_vmi_fails)
{
    static const enum cache_run_strategy rss[] = {CACHE_RS_MANUAL, CACHE_RS_ONCE};
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    for (size_t i = 0; i < 2; i++) {
        well(&vm, &vmi, &node);
        vm.rs = rss[i];
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.state, HEALTH_RUNNING);
        /* KUBEVIRT-NOTES: Manual + crash: the VMI stays Failed, printableStatus
         * Stopped, never restarted */
        vmi.phase = CACHE_PHASE_FAILED;
        vm.printable = "Stopped";
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_FAILED_NOT_RESTARTED);
        CHECK_INT(v.state, HEALTH_FAILED);
        CHECK_STR(v.failed_uid, "vmi-1");
        CHECK(strstr(v.reason, cache_run_strategy_name(rss[i])) != NULL);
        /* handled */
        vm.spent_uid = "vmi-1";
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_NONE);
        /* never started, or finished: not meant to run */
        vm.spent_uid = NULL;
        vmi.exists = 0;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.state, HEALTH_STOPPED);
        CHECK_INT(v.down, 0);
        vmi.exists = 1;
        vmi.phase = CACHE_PHASE_SUCCEEDED;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.state, HEALTH_STOPPED);
    }
}

/* KUBEVIRT-NOTES: failstart: count 1 at once, 2 after 14-17 s; between
 * attempts there is no VMI, printableStatus CrashLoopBackOff. */
TEST(crash_loop_triggers_at_the_threshold_from_the_vms_status)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    vmi.exists = 0;
    vm.printable = "CrashLoopBackOff";
    vm.ready = CACHE_COND_FALSE;
    vm.ready_since = NOW - 5;
    vm.fail_count = 2;
    vm.fail_uid = "vmi-9";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_CRASH_LOOPING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 1);
    /* CrashLoopBackOff is also a RestartTimeout status: pending 295 s */
    CHECK(v.wait_ms > 294000 && v.wait_ms <= 295001);
    CHECK_NEAR(v.trigger_at, NOW + 295, 1e-6);
    vm.fail_count = 3;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_CRASH_LOOP);
    CHECK_STR(v.failed_uid, "vmi-9");
    CHECK(strstr(v.reason, "consecutiveFailCount 3 >= 3") != NULL);
    /* the count 3 incident handled */
    vm.spent_uid = "vmi-9";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.state, HEALTH_CRASH_LOOPING);
    /* while an attempt runs (Scheduled), count 1 < 3: KubeVirt retries */
    well(&vm, &vmi, &node);
    vm.fail_count = 1;
    vm.printable = "Starting";
    vmi.phase = CACHE_PHASE_SCHEDULED;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_CRASH_LOOPING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    /* a threshold of 1: the first start failure */
    {
        struct health_config one = defaults;

        one.crash_loop_threshold = 1;
        v = eval(&one, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_CRASH_LOOP);
        CHECK_STR(v.failed_uid, "vmi-1"); /* no lastFailedVMIUID: its VMI */
    }
}

TEST(cannot_start_waits_restart_timeout_from_the_earlier_known_start)
{
    static const char *const statuses[] = {"ErrorUnschedulable", "ErrImagePull",
                                           "ImagePullBackOff",   "ErrorPvcNotFound",
                                           "DataVolumeError",    "CrashLoopBackOff"};
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        well(&vm, &vmi, &node);
        vm.printable = statuses[i];
        vmi.phase = CACHE_PHASE_SCHEDULING;
        vmi.node = NULL;
        vm.ready = CACHE_COND_FALSE;
        vm.ready_since = NOW - 10;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.state, HEALTH_CANNOT_START);
        CHECK_INT(v.trigger, HEALTH_NONE);
        CHECK_INT(v.down, 1);
        CHECK_INT(v.not_running, 1);
        CHECK(v.wait_ms > 289000 && v.wait_ms <= 290001);
        CHECK_NEAR(v.since, NOW - 10, 1e-6);
        CHECK(strstr(v.reason, statuses[i]) != NULL);
        /* this process saw it earlier than the Ready condition says */
        vm.down_seen = NOW - 301;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_RESTART_TIMEOUT);
        CHECK_STR(v.failed_uid, "vmi-1");
        /* or the condition says so (a restarted controller) */
        vm.down_seen = 0;
        vm.ready_since = NOW - 300;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_RESTART_TIMEOUT);
        CHECK(strstr(v.reason, "for 300s") != NULL);
        /* a Ready=True condition's time says nothing about being down */
        vm.ready = CACHE_COND_TRUE;
        v = eval(&defaults, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_NONE);
        CHECK_INT(v.state, HEALTH_CANNOT_START);
    }
    /* no VMI and no start failure to name it: the VM's uid does */
    well(&vm, &vmi, &node);
    vmi.exists = 0;
    vm.printable = "DataVolumeError";
    vm.ready = CACHE_COND_FALSE;
    vm.ready_since = NOW - 400;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_RESTART_TIMEOUT);
    CHECK_STR(v.failed_uid, "vm-uid");
    /* restartTimeoutSeconds 0: at once */
    {
        struct health_config now0 = defaults;

        now0.restart_timeout_s = 0;
        vm.ready_since = 0;
        v = eval(&now0, &vm, &vmi, &node);
        CHECK_INT(v.trigger, HEALTH_RESTART_TIMEOUT);
    }
    /* Starting (not in the list) never times out */
    vm.printable = "Starting";
    vm.ready_since = NOW - 100000;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.state, HEALTH_STARTING);
    CHECK_INT(v.down, 0);
}

/* KUBEVIRT-NOTES: a killed node goes Ready=Unknown after 33-46 s; the VMI
 * and printableStatus stay Running: KubeVirt alone never recovers it. */
TEST(node_loss_waits_node_loss_seconds_from_not_ready)
{
    struct health_config off = defaults;
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    node.ready = CACHE_COND_UNKNOWN;
    node.ready_since = NOW - 100;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_NODE_LOST);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 1);
    CHECK(v.wait_ms > 199000 && v.wait_ms <= 200001);
    CHECK_NEAR(v.trigger_at, NOW + 200, 1e-6);
    CHECK(strstr(v.reason, "node node-2 Ready=Unknown for 100s") != NULL);
    node.ready_since = NOW - 300;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NODE_LOSS);
    CHECK_STR(v.failed_uid, "vmi-1");
    node.ready = CACHE_COND_FALSE;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NODE_LOSS);
    /* a VMI Scheduled there, not yet running, alike */
    vmi.phase = CACHE_PHASE_SCHEDULED;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NODE_LOSS);
    /* nodeLossSeconds 0: the state shows, nothing fires or waits */
    off.node_loss_s = 0;
    vmi.phase = CACHE_PHASE_RUNNING;
    v = eval(&off, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_NODE_LOST);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.wait_ms, 0);
    CHECK_INT(v.down, 1);
    /* handled */
    vm.spent_uid = "vmi-1";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NONE);
}

TEST(a_node_the_cache_does_not_know_is_not_lost)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    node.exists = 0;
    node.ready = CACHE_COND_UNKNOWN;
    node.ready_since = NOW - 100000;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RUNNING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    v = eval(&defaults, &vm, &vmi, NULL);
    CHECK_INT(v.state, HEALTH_RUNNING);
}

TEST(a_stale_heartbeat_counts_as_lost_from_when_it_went_stale)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    /* one missed beat is normal (virt-handler writes every 60 s) */
    node.heartbeat = NOW - 140;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RUNNING);
    /* stale since NOW - 400 + 150 = NOW - 250: 50 s to go */
    node.heartbeat = NOW - 400;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_NODE_LOST);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK(v.wait_ms > 49000 && v.wait_ms <= 50001);
    CHECK(strstr(v.reason, "heartbeat is 400s old") != NULL);
    node.heartbeat = NOW - 450;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.trigger, HEALTH_NODE_LOSS);
    /* no heartbeat at all: KubeVirt never judges such a node; nor do we */
    node.heartbeat = -1;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RUNNING);
}

/* KUBEVIRT-NOTES: halting a VM whose VMI is on a dead node leaves the VMI
 * Running with a deletionTimestamp until the node returns. It must neither
 * count as running nor trigger again. */
TEST(a_vmi_being_deleted_is_not_running_and_triggers_nothing)
{
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    well(&vm, &vmi, &node);
    node.ready = CACHE_COND_UNKNOWN;
    node.ready_since = NOW - 1000;
    vmi.deleting = 1;
    /* halted by kvrecover: replaced */
    vm.rs = CACHE_RS_HALTED;
    vm.replaced_by = "vm-001-0123456789";
    vm.spent_uid = "vmi-1";
    vm.printable = "Stopping";
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_REPLACED);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 0);
    CHECK(strstr(v.reason, "vm-001-0123456789") != NULL);
    /* still Always (someone deletes the VMI): KubeVirt makes a new one */
    vm.rs = CACHE_RS_ALWAYS;
    vm.replaced_by = NULL;
    vm.spent_uid = NULL;
    v = eval(&defaults, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_RESTARTING);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.not_running, 1);
}

TEST(vms_not_meant_to_run_are_stopped_and_never_down)
{
    struct health_config cfg = defaults;
    struct health_vm vm;
    struct health_vmi vmi;
    struct health_node node;
    struct health_verdict v;

    cfg.immediate = 1;
    well(&vm, &vmi, &node);
    vm.last_failed_uid = "vmi-0";
    vm.rs = CACHE_RS_HALTED;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_STOPPED);
    CHECK_INT(v.trigger, HEALTH_NONE);
    CHECK_INT(v.down, 0);
    vm.rs = CACHE_RS_UNKNOWN;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_STOPPED);
    CHECK(strstr(v.reason, "conflict") != NULL);
    vm.rs = CACHE_RS_ALWAYS;
    vm.deleting = 1;
    v = eval(&cfg, &vm, &vmi, &node);
    CHECK_INT(v.state, HEALTH_STOPPED);
    CHECK_INT(v.trigger, HEALTH_NONE);
}

TEST(names_are_as_the_status_and_the_events_write_them)
{
    CHECK_STR(health_state_name(HEALTH_CRASH_LOOPING), "CrashLooping");
    CHECK_STR(health_state_name(HEALTH_CANNOT_START), "CannotStart");
    CHECK_STR(health_state_name(HEALTH_NODE_LOST), "NodeLost");
    CHECK_STR(health_state_name(HEALTH_REPLACED), "Replaced");
    CHECK_STR(health_trigger_name(HEALTH_NONE), "");
    CHECK_STR(health_trigger_name(HEALTH_FAILED_NOT_RESTARTED), "FailedNotRestarted");
    CHECK_STR(health_trigger_name(HEALTH_RESTART_TIMEOUT), "RestartTimeout");
    CHECK_STR(health_trigger_name(HEALTH_NODE_LOSS), "NodeLoss");
    CHECK(health_cannot_start("ErrorUnschedulable"));
    CHECK(!health_cannot_start("Starting"));
    CHECK(!health_cannot_start(NULL));
}
