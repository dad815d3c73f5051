/*
 * bench_storm — what a mass failure costs the storm check (issue 11 (d);
 * make bench-storm; see bench/README.md).
 *
 * A namespace of 2N protected VMs under one policy (trigger.immediate):
 * N Running, N whose VMI has just Failed, every one in the cache at once,
 * as a rack lost in one go leaves them. The real incident_reconcile() runs
 * for each failed VM in turn, one thread, as a worker would, against an
 * in-process HTTPS fake API server (tests/unit/fakeapi.c) that admits every
 * dry run, halt and create. After each halt the bench puts the halted VM
 * into the cache, as the watch would deliver it, so the storm check sees
 * the fleet change while it works. Timed: from the first reconcile to the
 * last decision. Three stormLimits:
 *
 *   60%    the storm check lets every failure through (N of 2N down)
 *   40%    it holds every one (N down > 0.8 N)
 *   100%   it can never hold (no more can be down than are protected)
 *
 * A benchmark, not a test: it prints a row per case and exits 1 only when
 * a case does not end as its limit says (every VM replaced, or none).
 * STORM_NS is the comma-separated list of N (default 1000,10000);
 * STORM_BUDGET_S (default 300) stops a case early: the row then says how
 * many decisions were made in that time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "reconcile/cache.h"
#include "reconcile/incident.h"
#include "reconcile/recover.h"

#define STORM_NS "storm"

/* harness.h's, for fakeapi.c's certificates (the bench has no harness). */
const char *harness_fixture(const char *name)
{
    static char path[4096];
    const char *dir = getenv("KVR_FIXTURES");

    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", name);
    return path;
}

/* The fake API server: every write admitted, answered with its body. */
static void storm_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    (void)ud;
    if (strcmp(req->method, "POST") == 0)
        fake_reply(c, 201, NULL, req->body);
    else if (strcmp(req->method, "PATCH") == 0)
        fake_reply(c, 200, NULL, req->body);
    else
        fake_reply(c, 404, NULL,
                   "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                   "\"reason\":\"NotFound\",\"code\":404}");
}

static cJSON *storm_parse(const char *text)
{
    cJSON *o = cJSON_Parse(text);

    if (!o) {
        fprintf(stderr, "bench_storm: bad JSON: %.80s\n", text);
        exit(2);
    }
    return o;
}

/* The VM i: app=storm, runStrategy Always; halted by kvrecover when
 * replaced_by is set. */
static cJSON *storm_vm(int i, const char *replaced_by, const char *failed_uid)
{
    char *ann = replaced_by ? xasprintf("{\"kvrecover.io/replaced-by\":\"%s\","
                                        "\"kvrecover.io/failed-uid\":\"%s\"}",
                                        replaced_by, failed_uid)
                            : xstrdup("{}");
    char *text = xasprintf(
        "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachine\",\"metadata\":{"
        "\"name\":\"vm-%06d\",\"namespace\":\"" STORM_NS "\",\"uid\":\"vm-uid-%06d\","
        "\"resourceVersion\":\"%d\",\"labels\":{\"app\":\"storm\"},\"annotations\":%s},"
        "\"spec\":{\"runStrategy\":\"%s\",\"template\":{\"metadata\":{\"labels\":{\"app\":"
        "\"storm\"},\"annotations\":{\"kvrecover.io/features\":\"{os: ubuntu-20.04, language: "
        "nodejs, database: mysql}\"}},\"spec\":{\"domain\":{\"cpu\":{\"cores\":2},\"memory\":{"
        "\"guest\":\"4Gi\"},\"devices\":{}}}}}}",
        i, i, replaced_by ? 2 * i + 1 : 2 * i, ann, replaced_by ? "Halted" : "Always");
    cJSON *o = storm_parse(text);

    free(ann);
    free(text);
    return o;
}

/* VM i's VMI, Running or Failed, controlled by it. */
static cJSON *storm_vmi(int i, int failed)
{
    char *text = xasprintf(
        "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\",\"metadata\":{"
        "\"name\":\"vm-%06d\",\"namespace\":\"" STORM_NS "\",\"uid\":\"vmi-uid-%06d\","
        "\"labels\":{\"app\":\"storm\"},\"ownerReferences\":[{\"apiVersion\":\"kubevirt.io/v1\","
        "\"kind\":\"VirtualMachine\",\"name\":\"vm-%06d\",\"uid\":\"vm-uid-%06d\","
        "\"controller\":true}]},\"status\":{\"phase\":\"%s\"}}",
        i, i, i, i, failed ? "Failed" : "Running");
    cJSON *o = storm_parse(text);

    free(text);
    return o;
}

static void storm_policy(struct cache *c, const char *limit)
{
    const struct cache_policy *p;
    char *text = xasprintf(
        "{\"apiVersion\":\"kvrecover.io/v1alpha1\",\"kind\":\"RecoveryPolicy\",\"metadata\":{"
        "\"name\":\"storm\",\"namespace\":\"" STORM_NS "\",\"uid\":\"policy-uid\","
        "\"generation\":1},\"spec\":{\"action\":\"Recreate\",\"mode\":\"Jaccard\",\"selector\":"
        "{\"matchLabels\":{\"app\":\"storm\"}},\"poolSelector\":{\"matchLabels\":{"
        "\"kvrecover.io/"
        "pool\":\"storm\"}},\"threshold\":0.1,\"weights\":{\"database\":0.2,\"language\":0.3,"
        "\"webserver\":0.1},\"stormLimit\":\"%s\","
        "\"trigger\":{\"immediate\":true}}}",
        limit);
    cJSON *o = storm_parse(text);

    cache_policy_put(c, o);
    cJSON_Delete(o);
    free(text);
    p = cache_policy_find(c, STORM_NS, "storm");
    if (!p || !p->valid) {
        fprintf(stderr, "bench_storm: the policy is refused: %s\n",
                p && p->error ? p->error : "not stored");
        exit(2);
    }
}

/* Ten pool members, each sharing some of the VMs' features. */
static void storm_pool(struct cache *c)
{
    static const char *const feats[] = {"os: ubuntu-20.04", "language: nodejs", "database: mysql",
                                        "webserver: nginx", "cache: redis"};

    for (int i = 0; i < 10; i++) {
        struct buf f = {0};
        cJSON *cm, *data;
        char *text;

        for (int k = 0; k < 5; k++)
            if ((i >> (k % 3)) & 1 || k == 0)
                buf_printf(&f, "%s\n", feats[k]);
        text = xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
                         "\"name\":\"member-%02d\",\"namespace\":\"" STORM_NS "\","
                         "\"uid\":\"cm-%02d\",\"labels\":{\"kvrecover.io/pool\":\"storm\"}}}",
                         i, i);
        cm = storm_parse(text);
        data = cJSON_AddObjectToObject(cm, "data");
        cJSON_AddStringToObject(data, "features", f.data ? f.data : "os: ubuntu-20.04\n");
        cJSON_AddStringToObject(
            data, "vm",
            "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: m\nspec:\n"
            "  runStrategy: Always\n  template:\n    spec:\n      domain:\n        cpu:\n"
            "          cores: 2\n        memory:\n          guest: 4Gi\n        devices: {}\n");
        cache_member_put(c, cm);
        cJSON_Delete(cm);
        buf_free(&f);
        free(text);
    }
}

static double storm_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One case: N failed of 2N under stormLimit limit. Returns 0 when it ended
 * as the limit says (expect_replaced: every failed VM halted, else none). */
static int storm_case(struct kube *kube, int n, const char *limit, int expect_replaced,
                      double budget)
{
    struct cache *c = cache_new();
    struct recover_book *book = recover_book_new();
    struct recover_ranker *rk = recover_ranker_new();
    struct recover_env env = {c, kube, book, NULL, NULL, NULL, NULL, NULL};
    int decided = 0, replaced = 0, held = 0, errors = 0;
    double t0, t, worst = 0;

    storm_policy(c, limit);
    storm_pool(c);
    for (int i = 0; i < 2 * n; i++) {
        cJSON *vm = storm_vm(i, NULL, NULL), *vmi = storm_vmi(i, i < n);

        cache_vm_put(c, vm);
        cache_vmi_put(c, vmi, clock_wall(), clock_mono());
        cJSON_Delete(vm);
        cJSON_Delete(vmi);
    }
    t0 = storm_now();
    for (int i = 0; i < n; i++) {
        char name[32], uid[32];
        uint64_t requeue = 0;
        struct recover_note note;
        double t1 = storm_now();
        int rc;

        snprintf(name, sizeof(name), "vm-%06d", i);
        rc = incident_reconcile(&env, rk, STORM_NS, name, &requeue);
        t = storm_now() - t1;
        worst = t > worst ? t : worst;
        errors += rc != 0;
        recover_book_note(book, STORM_NS, name, &note);
        if (note.blocked && strcmp(note.blocked, "StormHold") == 0) {
            held++;
        } else if (note.decided_uid) {
            /* the watch delivers the halt */
            char *repl;
            cJSON *vm;

            snprintf(uid, sizeof(uid), "vmi-uid-%06d", i);
            repl = recover_replacement_name(name, uid);
            vm = storm_vm(i, repl, uid);
            cache_vm_put(c, vm);
            cJSON_Delete(vm);
            free(repl);
            replaced++;
        }
        recover_note_free(&note);
        decided++;
        if (storm_now() - t0 > budget)
            break;
    }
    t = storm_now() - t0;
    printf("%-6s %6d %6d %9d %6d %6d %9.2f %11.0f %10.3f%s\n", limit, 2 * n, n, decided, replaced,
           held, t, decided / t, worst * 1e3, decided < n ? "  (budget spent)" : "");
    fflush(stdout);
    recover_ranker_free(rk);
    recover_book_free(book);
    cache_free(c);
    if (decided < n)
        return 0;
    return errors == 0 &&
                   (expect_replaced ? replaced == n && held == 0 : replaced == 0 && held == n)
               ? 0
               : 1;
}

/* A positive integer from text at *p (advanced past it), or -1. */
static long storm_number(const char **p)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(*p, &end, 10);
    if (errno || end == *p || v <= 0)
        return -1;
    *p = end;
    return v;
}

int main(void)
{
    static const struct kube_options opts = {
        .qps = -1, .max_retries = 1, .backoff_ms = 10, .max_backoff_ms = 20, .timeout_ms = 10000};
    const char *ns = getenv("STORM_NS") ? getenv("STORM_NS") : "1000,10000";
    const char *b = getenv("STORM_BUDGET_S") ? getenv("STORM_BUDGET_S") : "300";
    long budget = storm_number(&b);
    struct fake_server *srv;
    struct kubeconfig *cfg;
    struct kube *kube = NULL;
    char *err = NULL;
    int status = 0;

    if (budget < 0 || *b) {
        fprintf(stderr, "bench_storm: STORM_BUDGET_S: not a positive integer\n");
        return 2;
    }
    srv = fake_start(storm_handler, NULL);
    if (!srv) {
        fprintf(stderr, "bench_storm: the fake API server did not start\n");
        return 2;
    }
    cfg = fake_kubeconfig(srv, NULL);
    if (kube_new(cfg, &opts, &kube, &err) != 0) {
        fprintf(stderr, "bench_storm: %s\n", err ? err : "no client");
        return 2;
    }
    kubeconfig_free(cfg);
    log_set_level(getenv("STORM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    printf("# a mass failure: N of 2N protected VMs failed at once, one reconcile each\n");
    printf("%-6s %6s %6s %9s %6s %6s %9s %11s %10s\n", "limit", "VMs", "N", "decided", "repl",
           "held", "seconds", "decisions/s", "worst ms");
    while (*ns) {
        long n = storm_number(&ns);

        if (n < 0 || n > 1000000 || (*ns && *ns != ',')) {
            fprintf(stderr, "bench_storm: STORM_NS: a comma-separated list of counts\n");
            return 2;
        }
        ns += *ns == ',';
        status |= storm_case(kube, (int)n, "60%", 1, (double)budget);
        status |= storm_case(kube, (int)n, "40%", 0, (double)budget);
        status |= storm_case(kube, (int)n, "100%", 1, (double)budget);
    }
    kube_free(kube);
    fake_stop(srv);
    return status;
}
