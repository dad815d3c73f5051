/*
 * capacity — does a replacement fit on a node? See capacity.h for what is
 * estimated and why. Node selection follows the scheduler's plugins that
 * matter here: NodeResourcesFit (cpu, memory, pods), TaintToleration
 * (NoSchedule, NoExecute), NodeAffinity (nodeSelector, required terms).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "reconcile/cache.h"
#include "reconcile/capacity.h"
#include "sim/quantity.h"

#define CAPACITY_MI (1024.0 * 1024.0)
/* KubeVirt's default developerConfiguration.cpuAllocationRatio. */
#define CAPACITY_CPU_ALLOCATION_RATIO 10.0
/* GetMemoryOverhead(): virt-launcher-monitor 25Mi, virt-launcher 100Mi,
 * virtlogd 25Mi, virtqemud 40Mi, qemu 30Mi. */
#define CAPACITY_OVERHEAD_FIXED (220.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_PER_VCPU (8.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_IOTHREAD (8.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_VIDEO (32.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_DEDICATED (100.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_PROBES (100.0 * CAPACITY_MI)
#define CAPACITY_OVERHEAD_PROBE (10.0 * CAPACITY_MI)
/* The launcher pod's other containers: the guest console log sidecar,
 * and one per container disk. */
#define CAPACITY_CONSOLE_CPU 0.005
#define CAPACITY_CONSOLE_MEM 35e6
#define CAPACITY_DISK_CPU 0.001
#define CAPACITY_DISK_MEM 1e6

static const cJSON *capacity__get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *capacity__str(const cJSON *o, const char *k)
{
    const cJSON *v = capacity__get(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A quantity field, or -1 when absent or unreadable. */
static double capacity__qty(const cJSON *list, const char *k)
{
    const cJSON *v = capacity__get(list, k);
    double q;
    char *err = NULL;

    if (!v)
        return -1;
    if (quantity_from_json(v, &q, &err) != 0) {
        free(err);
        return -1;
    }
    return q;
}

static double capacity__num(const cJSON *o, const char *k)
{
    const cJSON *v = capacity__get(o, k);

    return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 1e6 ? v->valuedouble : 0;
}

/* KubeVirt's GetNumberOfVCPUs(): cores x sockets x threads, each only when
 * set; 1 without a cpu section at all. */
static double capacity__vcpus(const cJSON *cpu)
{
    double v = capacity__num(cpu, "cores"), s = capacity__num(cpu, "sockets");
    double t = capacity__num(cpu, "threads");

    if (!cpu)
        return 1;
    if (s)
        v = v ? v * s : s;
    if (t)
        v = v ? v * t : t;
    return v;
}

static cJSON *capacity__copy(const cJSON *v, int want_array)
{
    if (want_array ? !cJSON_IsArray(v) : !cJSON_IsObject(v))
        return NULL;
    return cJSON_Duplicate(v, 1);
}

int capacity_need_of(const cJSON *vm, struct capacity_need *out)
{
    const cJSON *spec = capacity__get(capacity__get(capacity__get(vm, "spec"), "template"), "spec");
    const cJSON *domain = capacity__get(spec, "domain"), *res = capacity__get(domain, "resources");
    const cJSON *req = capacity__get(res, "requests"), *lim = capacity__get(res, "limits");
    const cJSON *cpu = capacity__get(domain, "cpu"), *vols = capacity__get(spec, "volumes"), *it;
    const cJSON *autovideo =
        capacity__get(capacity__get(domain, "devices"), "autoattachGraphicsDevice");
    double vcpus, mreq, mem, over;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(spec))
        return -EINVAL;
    vcpus = capacity__vcpus(cpu);
    /* cpu: WithoutDedicatedCPU() / WithCPUPinning(); the VM's own requests
     * win (copyResources() after the calculated ones) */
    out->cpu = capacity__qty(req, "cpu");
    if (out->cpu < 0)
        out->cpu = capacity__qty(lim, "cpu"); /* the API server defaults request to limit */
    if (out->cpu < 0)
        out->cpu = cJSON_IsTrue(capacity__get(cpu, "dedicatedCpuPlacement"))
                       ? (vcpus ? vcpus : 1)
                       : vcpus / CAPACITY_CPU_ALLOCATION_RATIO;
    /* memory: WithMemoryRequests() then WithMemoryOverhead() */
    mreq = capacity__qty(req, "memory");
    mem = mreq;
    if (mem <= 0)
        mem = capacity__qty(lim, "memory");
    if (mem <= 0)
        mem = capacity__qty(capacity__get(domain, "memory"), "guest");
    if (mem < 0)
        mem = 0;
    over = CAPACITY_OVERHEAD_FIXED + CAPACITY_OVERHEAD_PER_VCPU * (vcpus >= 1 ? vcpus : 1) +
           CAPACITY_OVERHEAD_IOTHREAD;
    if (mreq > 0)
        over += floor(mreq / 1000.0) * 1000.0 / 512.0; /* page tables, in kilo units */
    if (!cJSON_IsFalse(autovideo))
        over += CAPACITY_OVERHEAD_VIDEO;
    if (cJSON_IsTrue(capacity__get(cpu, "dedicatedCpuPlacement")))
        over += CAPACITY_OVERHEAD_DEDICATED;
    {
        int live = capacity__get(capacity__get(spec, "livenessProbe"), "exec") != NULL;
        int ready = capacity__get(capacity__get(spec, "readinessProbe"), "exec") != NULL;

        over += (live + ready) * CAPACITY_OVERHEAD_PROBE;
        if (live || ready)
            over += CAPACITY_OVERHEAD_PROBES;
    }
    if (!cJSON_IsTrue(capacity__get(res, "overcommitGuestOverhead")))
        mem += over;
    out->cpu += CAPACITY_CONSOLE_CPU;
    mem += CAPACITY_CONSOLE_MEM;
    cJSON_ArrayForEach(it, (cJSON_IsArray(vols) ? vols : NULL))
    {
        if (capacity__get(it, "containerDisk")) {
            out->cpu += CAPACITY_DISK_CPU;
            mem += CAPACITY_DISK_MEM;
        }
    }
    out->mem = mem;
    out->selector = capacity__copy(capacity__get(spec, "nodeSelector"), 0);
    out->terms = capacity__copy(
        capacity__get(capacity__get(capacity__get(capacity__get(spec, "affinity"), "nodeAffinity"),
                                    "requiredDuringSchedulingIgnoredDuringExecution"),
                      "nodeSelectorTerms"),
        1);
    out->tolerations = capacity__copy(capacity__get(spec, "tolerations"), 1);
    return 0;
}

void capacity_need_free(struct capacity_need *n)
{
    if (!n)
        return;
    cJSON_Delete(n->selector);
    cJSON_Delete(n->terms);
    cJSON_Delete(n->tolerations);
    memset(n, 0, sizeof(*n));
}

/* Whether value is one of a requirement's values. */
static int capacity__in(const cJSON *values, const char *value)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, (cJSON_IsArray(values) ? values : NULL))
    {
        if (cJSON_IsString(it) && value && strcmp(it->valuestring, value) == 0)
            return 1;
    }
    return 0;
}

/* Gt and Lt compare integers (the value of the label and the one value). */
static int capacity__cmp(const cJSON *values, const char *value, int gt)
{
    const cJSON *v = cJSON_GetArrayItem(values, 0);
    char *e1, *e2;
    long long a, b;

    if (!value || cJSON_GetArraySize(values) != 1 || !cJSON_IsString(v))
        return 0;
    a = strtoll(value, &e1, 10);
    b = strtoll(v->valuestring, &e2, 10);
    if (e1 == value || *e1 || e2 == v->valuestring || *e2)
        return 0;
    return gt ? a > b : a < b;
}

/* One node selector requirement against a value (NULL: the label is
 * absent). Unknown operators match nothing, as the API server refuses
 * them anyway. */
static int capacity__requirement(const cJSON *r, const char *value)
{
    const char *op = capacity__str(r, "operator");
    const cJSON *values = capacity__get(r, "values");

    if (!op)
        return 0;
    if (strcmp(op, "In") == 0)
        return capacity__in(values, value);
    if (strcmp(op, "NotIn") == 0)
        return !capacity__in(values, value);
    if (strcmp(op, "Exists") == 0)
        return value != NULL;
    if (strcmp(op, "DoesNotExist") == 0)
        return value == NULL;
    if (strcmp(op, "Gt") == 0)
        return capacity__cmp(values, value, 1);
    if (strcmp(op, "Lt") == 0)
        return capacity__cmp(values, value, 0);
    return 0;
}

/* A nodeSelectorTerm: its expressions (labels) and fields (metadata.name)
 * all hold; a term with neither matches nothing, as in Kubernetes. */
static int capacity__term(const cJSON *term, const char *name, const char *labels)
{
    const cJSON *exprs = capacity__get(term, "matchExpressions");
    const cJSON *fields = capacity__get(term, "matchFields"), *it;
    int n = 0;

    cJSON_ArrayForEach(it, (cJSON_IsArray(exprs) ? exprs : NULL))
    {
        const char *key = capacity__str(it, "key");

        if (!key || !capacity__requirement(it, cache_label(labels, key)))
            return 0;
        n++;
    }
    cJSON_ArrayForEach(it, (cJSON_IsArray(fields) ? fields : NULL))
    {
        const char *key = capacity__str(it, "key");

        if (!key || strcmp(key, "metadata.name") != 0 || !capacity__requirement(it, name))
            return 0;
        n++;
    }
    return n > 0;
}

int capacity_allows(const struct capacity_need *need, const char *name, const char *labels)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, need->selector)
    {
        if (!cJSON_IsString(it) || !it->string)
            return 0;
        if (!labels || !cache_label(labels, it->string) ||
            strcmp(cache_label(labels, it->string), it->valuestring) != 0)
            return 0;
    }
    if (!need->terms)
        return 1;
    cJSON_ArrayForEach(it, need->terms)
    {
        if (capacity__term(it, name, labels))
            return 1;
    }
    return 0;
}

/* Whether one toleration tolerates the taint (key, value, effect). */
static int capacity__tolerates(const cJSON *t, const char *key, const char *value,
                               const char *effect)
{
    const char *tk = capacity__str(t, "key"), *op = capacity__str(t, "operator");
    const char *tv = capacity__str(t, "value"), *te = capacity__str(t, "effect");

    if (te && *te && strcmp(te, effect) != 0)
        return 0;
    if (op && strcmp(op, "Exists") == 0)
        return !tk || !*tk || strcmp(tk, key) == 0;
    /* Equal (the default) */
    return tk && strcmp(tk, key) == 0 && strcmp(tv ? tv : "", value) == 0;
}

int capacity_untolerated(const struct capacity_need *need, const char *taints, char *buf, size_t n)
{
    const char *it = taints, *k, *v, *e;

    while (cache_taint_next(&it, &k, &v, &e)) {
        const cJSON *t;
        int ok = 0;

        if (strcmp(e, "NoSchedule") != 0 && strcmp(e, "NoExecute") != 0)
            continue;
        cJSON_ArrayForEach(t, need->tolerations)
        {
            if (capacity__tolerates(t, k, v, e)) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            if (buf && n)
                snprintf(buf, n, "%s%s%s:%s", k, *v ? "=" : "", v, e);
            return 1;
        }
    }
    return 0;
}

/* Appends to why (bounded, "; " between parts). */
static void capacity__why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void capacity__why(char *why, size_t whylen, const char *fmt, ...)
{
    size_t len;
    va_list ap;

    if (!why || !whylen)
        return;
    len = strlen(why);
    if (len + 8 >= whylen)
        return;
    if (len)
        len += (size_t)snprintf(why + len, whylen - len, "; ");
    va_start(ap, fmt);
    vsnprintf(why + len, whylen - len, fmt, ap);
    va_end(ap);
}

long capacity_fit(const struct capacity_need *need, const struct capacity_node *nodes, size_t n,
                  char *why, size_t whylen)
{
    char taint[128];

    if (why && whylen)
        why[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct capacity_node *nd = &nodes[i];

        if (!nd->usable) {
            capacity__why(why, whylen, "%s: not Ready or not schedulable", nd->name);
        } else if (!capacity_allows(need, nd->name, nd->labels)) {
            capacity__why(why, whylen, "%s: nodeSelector or affinity", nd->name);
        } else if (capacity_untolerated(need, nd->taints, taint, sizeof(taint))) {
            capacity__why(why, whylen, "%s: taint %s", nd->name, taint);
        } else if (nd->free_cpu < need->cpu || nd->free_mem < need->mem || nd->free_pods < 1) {
            capacity__why(why, whylen, "%s: %.2f CPU and %.0fMi free, needs %.2f and %.0fMi",
                          nd->name, nd->free_cpu > 0 ? nd->free_cpu : 0,
                          (nd->free_mem > 0 ? nd->free_mem : 0) / CAPACITY_MI, need->cpu,
                          need->mem / CAPACITY_MI);
        } else {
            return (long)i;
        }
    }
    if (n == 0)
        capacity__why(why, whylen, "no nodes");
    return -1;
}
