/*
 * health — the verdict on a protected VM. See health.h for the rules and
 * where they come from in KubeVirt. Pure: everything it reads is an
 * argument; it must stay cheap, as status runs it for every protected VM.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "reconcile/health.h"

static const char *const health__states[] = {
    "Running",  "Starting", "Restarting", "CrashLooping", "CannotStart",
    "NodeLost", "Failed",   "Stopped",    "Replaced",
};

static const char *const health__triggers[] = {
    "", "Immediate", "FailedNotRestarted", "CrashLoop", "RestartTimeout", "NodeLoss",
};

/* printableStatus values that say KubeVirt cannot start the VM (CONTRACT.md). */
static const char *const health__cannot[] = {
    "ErrorUnschedulable", "ErrImagePull",    "ImagePullBackOff",
    "ErrorPvcNotFound",   "DataVolumeError", "CrashLoopBackOff",
};

const char *health_state_name(enum health_state s)
{
    return (unsigned)s <= HEALTH_REPLACED ? health__states[s] : "Unknown";
}

const char *health_trigger_name(enum health_trigger t)
{
    return (unsigned)t <= HEALTH_NODE_LOSS ? health__triggers[t] : "";
}

int health_cannot_start(const char *p)
{
    for (size_t i = 0; p && i < sizeof(health__cannot) / sizeof(health__cannot[0]); i++)
        if (strcmp(p, health__cannot[i]) == 0)
            return 1;
    return 0;
}

static void health__say(struct health_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void health__say(struct health_verdict *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

static long health__secs(double d)
{
    return d > 0 ? (long)(d + 0.5) : 0;
}

/* A trigger for uid, unless the VM's kvrecover.io/failed-uid says that
 * incident was handled. */
static void health__fire(struct health_verdict *v, const struct health_vm *vm,
                         enum health_trigger t, const char *uid)
{
    size_t n;

    if (vm->spent_uid && uid && strcmp(vm->spent_uid, uid) == 0) {
        n = strlen(v->reason);
        snprintf(v->reason + n, sizeof(v->reason) - n, "; VMI %s was handled already", uid);
        return;
    }
    v->trigger = t;
    v->failed_uid = uid;
    v->wait_ms = 0;
    v->trigger_at = 0;
}

/* A trigger pending until since + after: fires now or says when. */
static void health__wait(struct health_verdict *v, const struct health_vm *vm,
                         enum health_trigger t, const char *uid, double since, long after,
                         double now)
{
    double at = since + (double)after;

    if (now >= at) {
        health__fire(v, vm, t, uid);
        return;
    }
    v->trigger_at = at;
    v->wait_ms = (uint64_t)((at - now) * 1000.0) + 1;
}

/* NodeLost when the VMI's node is not Ready or its heartbeat is stale;
 * returns 1 when so (the verdict filled), 0 when the node is well or
 * unknown. */
static int health__node(const struct health_config *cfg, const struct health_vm *vm,
                        const struct health_vmi *vmi, const struct health_node *node, double now,
                        struct health_verdict *v)
{
    double lost = -1, stale;

    if (!vmi->node || !node || !node->exists)
        return 0;
    if (node->ready != CACHE_COND_TRUE) {
        lost = node->ready_since > 0 ? node->ready_since : now;
        health__say(v, "node %s Ready=%s for %lds", vmi->node,
                    node->ready == CACHE_COND_FALSE ? "False" : "Unknown",
                    health__secs(now - lost));
    }
    if (node->heartbeat >= 0 && now - node->heartbeat > HEALTH_HEARTBEAT_STALE_S) {
        stale = node->heartbeat + HEALTH_HEARTBEAT_STALE_S;
        if (lost < 0 || stale < lost) {
            lost = stale;
            health__say(v, "node %s: KubeVirt's heartbeat is %lds old", vmi->node,
                        health__secs(now - node->heartbeat));
        }
    }
    if (lost < 0)
        return 0;
    v->state = HEALTH_NODE_LOST;
    v->since = lost;
    if (cfg->node_loss_s > 0)
        health__wait(v, vm, HEALTH_NODE_LOSS, vmi->uid, lost, cfg->node_loss_s, now);
    return 1;
}

/* Manual and Once: KubeVirt does not restart a failed VMI. */
static void health__manual(const struct health_config *cfg, const struct health_vm *vm,
                           const struct health_vmi *vmi, const struct health_node *node, double now,
                           struct health_verdict *v)
{
    const char *rs = cache_run_strategy_name(vm->rs);

    if (vmi->exists && vmi->phase == CACHE_PHASE_FAILED) {
        v->state = HEALTH_FAILED;
        health__say(v, "VMI failed and runStrategy %s does not restart it", rs);
        health__fire(v, vm, HEALTH_FAILED_NOT_RESTARTED, vmi->uid);
    } else if (vmi->exists && !vmi->deleting &&
               (vmi->phase == CACHE_PHASE_RUNNING || vmi->phase == CACHE_PHASE_SCHEDULED) &&
               health__node(cfg, vm, vmi, node, now, v)) {
        /* NodeLost */
    } else if (vmi->exists && vmi->phase == CACHE_PHASE_RUNNING && !vmi->deleting) {
        v->state = HEALTH_RUNNING;
        health__say(v, "VMI Running on %s", vmi->node ? vmi->node : "?");
    } else if (!vmi->exists || vmi->phase == CACHE_PHASE_SUCCEEDED || vmi->deleting) {
        v->state = HEALTH_STOPPED;
        health__say(v, "runStrategy %s, %s", rs,
                    vmi->exists ? "its VMI is finished" : "not started");
    } else {
        v->state = HEALTH_STARTING;
        health__say(v, "VMI %s", cache_phase_name(vmi->phase));
    }
}

/* Always and RerunOnFailure: KubeVirt restarts it; kvrecover acts when
 * that does not work. */
static void health__always(const struct health_config *cfg, const struct health_vm *vm,
                           const struct health_vmi *vmi, const struct health_node *node, double now,
                           struct health_verdict *v)
{
    int threshold = cfg->crash_loop_threshold >= 1 ? cfg->crash_loop_threshold : 1;
    const char *uid;
    double since;

    if (vm->rs == CACHE_RS_RERUN_ON_FAILURE && vmi->exists && vmi->phase == CACHE_PHASE_SUCCEEDED) {
        v->state = HEALTH_STOPPED;
        health__say(v, "completed; runStrategy RerunOnFailure does not restart it");
        return;
    }
    if (vm->fail_count >= threshold) {
        v->state = HEALTH_CRASH_LOOPING;
        health__say(v, "startFailure.consecutiveFailCount %d >= %d", vm->fail_count, threshold);
        uid = vm->fail_uid ? vm->fail_uid : vmi->exists ? vmi->uid : vm->uid;
        health__fire(v, vm, HEALTH_CRASH_LOOP, uid);
        return;
    }
    if (vmi->exists && !vmi->deleting &&
        (vmi->phase == CACHE_PHASE_RUNNING || vmi->phase == CACHE_PHASE_SCHEDULED) &&
        health__node(cfg, vm, vmi, node, now, v)) {
        v->not_running = vmi->phase != CACHE_PHASE_RUNNING;
        return;
    }
    if (vmi->exists && vmi->phase == CACHE_PHASE_RUNNING && !vmi->deleting) {
        v->state = HEALTH_RUNNING;
        health__say(v, "VMI Running on %s", vmi->node ? vmi->node : "?");
        return;
    }
    v->not_running = 1;
    if (health_cannot_start(vm->printable)) {
        since = vm->down_seen > 0 && vm->down_seen < now ? vm->down_seen : now;
        if (vm->ready != CACHE_COND_TRUE && vm->ready_since > 0 && vm->ready_since < since)
            since = vm->ready_since;
        v->state = vm->fail_count > 0 ? HEALTH_CRASH_LOOPING : HEALTH_CANNOT_START;
        v->since = since;
        health__say(v, "printableStatus %s for %lds", vm->printable, health__secs(now - since));
        uid = vmi->exists ? vmi->uid : vm->fail_uid ? vm->fail_uid : vm->uid;
        health__wait(v, vm, HEALTH_RESTART_TIMEOUT, uid, since, cfg->restart_timeout_s, now);
        return;
    }
    if (vmi->exists && (vmi->phase == CACHE_PHASE_FAILED || vmi->deleting)) {
        v->state = HEALTH_RESTARTING;
        health__say(v, "VMI %s; KubeVirt restarts it (runStrategy %s)",
                    vmi->deleting ? "going" : "failed", cache_run_strategy_name(vm->rs));
    } else if (vm->fail_count > 0) {
        v->state = HEALTH_CRASH_LOOPING;
        health__say(v, "startFailure.consecutiveFailCount %d < %d; KubeVirt retries",
                    vm->fail_count, threshold);
    } else {
        v->state = HEALTH_STARTING;
        health__say(v, "printableStatus %s", vm->printable ? vm->printable : "(none)");
    }
}

void health_eval(const struct health_config *cfg, const struct health_vm *vm,
                 const struct health_vmi *vmi, const struct health_node *node, double now,
                 struct health_verdict *out)
{
    static const struct health_vmi none;
    const char *uid;

    memset(out, 0, sizeof(*out));
    if (!vmi)
        vmi = &none;
    if (vm->deleting) {
        out->state = HEALTH_STOPPED;
        health__say(out, "the VM is being deleted");
        return;
    }
    if (vm->rs == CACHE_RS_HALTED || vm->rs == CACHE_RS_WAIT_AS_RECEIVER ||
        vm->rs == CACHE_RS_UNKNOWN) {
        if (vm->rs == CACHE_RS_HALTED && vm->replaced_by) {
            out->state = HEALTH_REPLACED;
            health__say(out, "halted by kvrecover, replaced by %s", vm->replaced_by);
        } else {
            out->state = HEALTH_STOPPED;
            if (vm->rs == CACHE_RS_UNKNOWN)
                health__say(out, "spec.running and spec.runStrategy conflict: KubeVirt does "
                                 "not run it");
            else
                health__say(out, "runStrategy %s", cache_run_strategy_name(vm->rs));
        }
        return;
    }
    if (cfg->immediate) {
        /* The paper's rule: the first Failed VMI, whatever KubeVirt does. */
        uid = vmi->exists && vmi->phase == CACHE_PHASE_FAILED ? vmi->uid : vm->last_failed_uid;
        if (uid && !(vm->spent_uid && strcmp(vm->spent_uid, uid) == 0)) {
            out->state = HEALTH_FAILED;
            /* The failure still fires, but a VM that KubeVirt already runs
             * again (a newer VMI Running) is not down: it does not count
             * towards stormLimit, whatever became of the incident (one
             * blocked for want of a member would hold it there forever). */
            out->down = !(vmi->exists && !vmi->deleting && vmi->phase == CACHE_PHASE_RUNNING &&
                          vmi->uid && strcmp(vmi->uid, uid) != 0);
            health__say(out, "VMI %s failed (immediate)%s", uid,
                        out->down ? "" : "; KubeVirt runs it again");
            health__fire(out, vm, HEALTH_IMMEDIATE, uid);
            return;
        }
    }
    if (vm->rs == CACHE_RS_MANUAL || vm->rs == CACHE_RS_ONCE)
        health__manual(cfg, vm, vmi, node, now, out);
    else
        health__always(cfg, vm, vmi, node, now, out);
    out->down = out->trigger != HEALTH_NONE || out->state == HEALTH_CRASH_LOOPING ||
                out->state == HEALTH_CANNOT_START || out->state == HEALTH_NODE_LOST ||
                out->state == HEALTH_FAILED;
}
