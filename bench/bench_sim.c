/*
 * bench_sim — how fast the similarity engine ranks a spec pool, and how long
 * a large pool takes to load from YAML (make bench-sim; see bench/README.md).
 *
 * Pools are generated from a fixed seed: each member has 12 distinct items
 * drawn from 10 categories of 16 values, and cpu, memory and disk. Ranking
 * is timed with the pool in memory and the ranker and result warm (as the
 * controller keeps them); each figure is the median of several runs. The
 * YAML load writes a multi-document file of ConfigMaps (with a small
 * VirtualMachine in data.vm each) under the build directory and reads it
 * back through yaml_parse(), pool_member_from_json() and sim_pool_add().
 *
 * A benchmark, not a test: it prints figures and exits 0 unless something
 * fails outright. Usage: bench_sim [DIR [--rank-only]].
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "base/yaml.h"
#include "sim/features.h"
#include "sim/policy.h"
#include "sim/pool.h"
#include "sim/sim.h"

#define NCAT 10
#define NVAL 16
#define ITEMS 12
/* documents per yaml_parse() call when loading: one call may create at most
 * YAML_MAX_NODES nodes, which 100k ConfigMaps exceed */
#define CHUNK_DOCS 1000

static const char *const cats[NCAT] = {"os",    "language", "database", "webserver", "cache",
                                       "queue", "runtime",  "monitor",  "storage",   "network"};

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint32_t rng(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}

static double clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a machine shared with other work, the time
 * the ranking itself took, without the time it waited for a core. */
static double cpu_ms(void)
{
    return clock_ms(CLOCK_THREAD_CPUTIME_ID);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ITEMS distinct items: picks item ids (category * NVAL + value) without
 * repetition. */
static void gen_items(unsigned *ids)
{
    for (size_t i = 0; i < ITEMS; i++) {
        unsigned id;
        size_t j;

        do {
            id = rng(NCAT * NVAL);
            for (j = 0; j < i && ids[j] != id; j++)
                ;
        } while (j < i);
        ids[i] = id;
    }
}

static void gen_features(struct features *f)
{
    unsigned ids[ITEMS] = {0};
    char value[16], *err = NULL;

    memset(f, 0, sizeof(*f));
    gen_items(ids);
    for (size_t i = 0; i < ITEMS; i++) {
        snprintf(value, sizeof(value), "v%02u", ids[i] % NVAL);
        if (features_add(f, cats[ids[i] / NVAL], value, &err))
            abort();
    }
    features_sort(f);
    f->res[FEATURES_CPU] = 1 + rng(16);
    f->res[FEATURES_MEMORY] = (double)(1 + rng(64)) * 1073741824.0;
    f->res[FEATURES_DISK] = (double)(10 + rng(200)) * 1073741824.0;
    f->has_res = 7;
}

static void make_policy(struct policy *p, const char *mode)
{
    char *text = xasprintf(
        "{\"selector\": {\"matchLabels\": {\"app\": \"bench\"}}, "
        "\"poolSelector\": {\"matchLabels\": {\"kvrecover.io/pool\": \"b\"}}, "
        "\"weights\": {\"os\": 0.3, \"language\": 0.3, \"database\": 0.2, \"webserver\": 0.1, "
        "\"cache\": 0.1, \"queue\": 0.1, \"runtime\": 0.2, \"monitor\": 0.05, \"storage\": 0.1, "
        "\"network\": 0.05, \"cpu\": 0.2, \"memory\": 0.2, \"disk\": 0.1}, "
        "\"threshold\": 0.5, \"mode\": \"%s\"}",
        mode);
    cJSON *spec = cJSON_Parse(text);
    char *err = NULL;

    if (!spec || policy_parse_spec(spec, p, &err)) {
        fprintf(stderr, "bench policy: %s\n", err ? err : "bad JSON");
        exit(1);
    }
    cJSON_Delete(spec);
    free(text);
}

/* Ranks a generated pool of n members runs times; prints one row. */
static void bench_rank(size_t n, int runs, const char *mode)
{
    struct sim_pool *p = sim_pool_new();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct features f, a;
    struct policy pol;
    struct sim_query q;
    double *t = xcalloc((size_t)runs, sizeof(*t)), *c = xcalloc((size_t)runs, sizeof(*c));
    double med, wall;
    char name[32];

    make_policy(&pol, mode);
    for (size_t i = 0; i < n; i++) {
        gen_features(&f);
        snprintf(name, sizeof(name), "vm-%06zu", i);
        if (sim_pool_add(p, name, name, &f, 1, NULL))
            abort();
        features_free(&f);
    }
    sim_pool_finish(p);
    gen_features(&a);
    q = (struct sim_query){"failed-vm", NULL, &a};
    /* warm: grows the scratch space and the result once */
    if (sim_rank(r, p, &pol, &q, &res))
        abort();
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms(), c0 = cpu_ms();

        sim_rank(r, p, &pol, &q, &res);
        c[i] = cpu_ms() - c0;
        t[i] = now_ms() - t0;
    }
    wall = median(t, (size_t)runs);
    med = median(c, (size_t)runs);
    printf("%-9s %8zu %6d %9.3f %9.3f %10.1f %12.0f   %s %.4f\n", mode, n, runs, med, wall,
           med * 1e6 / n, n / (med / 1e3),
           res.selected >= 0 ? sim_pool_name(p, res.cand[res.selected].member) : "(none)",
           res.n ? res.cand[0].score : 0.0);
    free(t);
    free(c);
    features_free(&a);
    policy_free(&pol);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
}

/* Writes n pool ConfigMaps as one multi-document YAML file. */
static void write_yaml(const char *path, size_t n)
{
    FILE *out = fopen(path, "w");
    unsigned ids[ITEMS] = {0};

    if (!out) {
        perror(path);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        fprintf(out,
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vm-%06zu\n"
                "  namespace: bench\n"
                "  labels: {kvrecover.io/pool: bench, kvrecover.io/vm: vm-%06zu}\n"
                "data:\n  features: |\n",
                i, i);
        gen_items(ids);
        for (unsigned c = 0; c < NCAT; c++) {
            int any = 0;

            for (size_t k = 0; k < ITEMS; k++) {
                if (ids[k] / NVAL != c)
                    continue;
                if (!any)
                    fprintf(out, "    %s: [v%02u", cats[c], ids[k] % NVAL);
                else
                    fprintf(out, ", v%02u", ids[k] % NVAL);
                any = 1;
            }
            if (any)
                fputs("]\n", out);
        }
        fprintf(out,
                "  resources: |\n    cpu: %u\n    memory: %uGi\n    disk: %uGi\n"
                "  vm: |\n"
                "    apiVersion: kubevirt.io/v1\n    kind: VirtualMachine\n"
                "    metadata: {name: vm-%06zu}\n"
                "    spec:\n      runStrategy: Always\n      template:\n        spec:\n"
                "          domain:\n            cpu: {cores: 2}\n"
                "            memory: {guest: 4Gi}\n"
                "            devices: {disks: [{name: root, disk: {bus: virtio}}]}\n"
                "          volumes: [{name: root, containerDisk: {image: "
                "quay.io/containerdisks/ubuntu:22.04}}]\n",
                1 + rng(16), 1 + rng(64), 10 + rng(200), i);
    }
    if (fclose(out)) {
        perror(path);
        exit(1);
    }
}

/* Loads path into a pool: read, parse in chunks of CHUNK_DOCS documents,
 * members, pool. Prints the phases' times. */
static void bench_load(const char *path, size_t n)
{
    struct buf b = {0};
    struct sim_pool *p = sim_pool_new();
    struct pool_member *m = xcalloc(n, sizeof(*m));
    double t0, t_read, t_parse = 0, t_member = 0, t_add, t1, c0, c_total, w_total;
    size_t count = 0, docs = 0;
    char *err = NULL;
    const char *at, *end;

    t0 = now_ms();
    c0 = cpu_ms();
    if (buf_read_file(&b, path, (size_t)1 << 31)) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    t_read = now_ms() - t0;
    at = b.data;
    end = b.data + b.len;
    while (at < end) {
        /* the next chunk ends before the (CHUNK_DOCS + 1)th "---" line */
        const char *cut = at;
        size_t k = 0;
        cJSON *chunk = NULL, *doc;

        while (cut < end && k <= CHUNK_DOCS) {
            const char *nl = memchr(cut, '\n', (size_t)(end - cut));

            if (strncmp(cut, "---\n", 4) == 0 && ++k > CHUNK_DOCS)
                break;
            cut = nl ? nl + 1 : end;
        }
        t1 = now_ms();
        if (yaml_parse(at, (size_t)(cut - at), &chunk, &err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            exit(1);
        }
        t_parse += now_ms() - t1;
        t1 = now_ms();
        cJSON_ArrayForEach(doc, chunk)
        {
            if (count >= n || pool_member_from_json(doc, &m[count], &err)) {
                fprintf(stderr, "%s: %s\n", path, err ? err : "too many documents");
                exit(1);
            }
            count++;
            docs++;
        }
        t_member += now_ms() - t1;
        cJSON_Delete(chunk);
        at = cut;
    }
    t1 = now_ms();
    for (size_t i = 0; i < count; i++)
        if (sim_pool_add(p, m[i].name, m[i].vm, &m[i].features, m[i].vm_template != NULL, &m[i]))
            abort();
    sim_pool_finish(p);
    t_add = now_ms() - t1;
    c_total = cpu_ms() - c0;
    w_total = now_ms() - t0;
    printf("load %zu members from %s (%.1f MB): cpu %.0f ms, wall %.0f ms\n"
           "  wall by phase: read %.0f ms, YAML parse %.0f ms, ConfigMaps to members "
           "(features, resources, data.vm) %.0f ms, pool %.0f ms\n",
           docs, path, b.len / 1e6, c_total, w_total, t_read, t_parse, t_member, t_add);
    for (size_t i = 0; i < count; i++)
        pool_member_free(&m[i]);
    free(m);
    sim_pool_free(p);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build";
    char *path = xasprintf("%s/bench-pool-100k.yaml", dir);

    printf("bench-sim: ranking, %d items and 3 resources per member, 13 weights; "
           "median of the runs\n",
           ITEMS);
    printf("(cpu: this thread's CPU time; wall: elapsed; per member and per second from cpu)\n");
    printf("%-9s %8s %6s %9s %9s %10s %12s   %s\n", "mode", "members", "runs", "cpu ms", "wall ms",
           "ns/member", "members/s", "selected, best score");
    bench_rank(1000, 201, "Jaccard");
    bench_rank(10000, 51, "Jaccard");
    bench_rank(100000, 21, "Jaccard");
    bench_rank(100000, 21, "Coverage");
    if (argc > 2 && strcmp(argv[2], "--rank-only") == 0) {
        free(path);
        return 0;
    }
    write_yaml(path, 100000);
    bench_load(path, 100000);
    free(path);
    return 0;
}
