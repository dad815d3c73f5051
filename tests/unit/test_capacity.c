/*
 * Unit tests for capacity: what a replacement's launcher pod requests (as
 * KubeVirt v1.8.4 renders it: checked against a launcher pod recorded on the
 * test cluster), and whether it fits a node: readiness, taints and
 * tolerations, nodeSelector, required node affinity, room.
 */
#include <errno.h>
#include <string.h>

#include "ctl_test.h"
#include "reconcile/capacity.h"

#define MI (1024.0 * 1024.0)
#define GI (1024.0 * MI)

/* The template spec of the recorded 1-vCPU, 128Mi VM, edited by a JSON
 * merge of extra into spec.template.spec (NULL: as recorded). */
static cJSON *vm_with(const char *extra)
{
    cJSON *vm = ctl_load("kv-vm-running.json");
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vm, "spec"), "template"),
        "spec");
    cJSON *add = extra ? cJSON_Parse(extra) : NULL, *it;

    cJSON_ArrayForEach(it, add)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, it->string);
        cJSON_AddItemToObject(spec, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_Delete(add);
    return vm;
}

TEST(the_estimate_matches_the_launcher_pod_kubevirt_made)
{
    struct cache *c = cache_new();
    cJSON *vm = vm_with(NULL), *pod = ctl_load("kv-pod-launcher.json");
    struct capacity_need need;
    struct cache_node_use u;

    CHECK(vm != NULL && pod != NULL);
    CHECK_INT(capacity_need_of(vm, &need), 0);
    CHECK_INT(cache_pod_put(c, pod), 0);
    cache_rdlock(c);
    u = cache_node_use(c, "node-2");
    cache_unlock(c);
    CHECK_NEAR(need.cpu, u.cpu, 1e-9);
    CHECK_NEAR(need.mem, u.mem, 1);
    CHECK(need.selector == NULL && need.terms == NULL && need.tolerations == NULL);
    capacity_need_free(&need);
    cJSON_Delete(vm);
    cJSON_Delete(pod);
    cache_free(c);
}

TEST(requests_follow_kubevirts_rules)
{
    struct capacity_need n;
    cJSON *vm;

    /* 4 vCPUs at the default allocation ratio: 400m (+ the sidecars') */
    vm = vm_with("{\"domain\":{\"cpu\":{\"cores\":2,\"sockets\":2},\"memory\":{\"guest\":\"1Gi\"},"
                 "\"devices\":{}}}");
    CHECK_INT(capacity_need_of(vm, &n), 0);
    CHECK_NEAR(n.cpu, 0.4 + 0.006, 1e-9);
    CHECK_NEAR(n.mem, GI + (220 + 4 * 8 + 8 + 32) * MI + 35e6 + 1e6, 1);
    capacity_need_free(&n);
    cJSON_Delete(vm);
    /* explicit requests win; page tables count on them; no video */
    vm = vm_with("{\"domain\":{\"cpu\":{\"cores\":4},\"resources\":{\"requests\":{\"cpu\":\"4\","
                 "\"memory\":\"2Gi\"}},\"devices\":{\"autoattachGraphicsDevice\":false}}}");
    CHECK_INT(capacity_need_of(vm, &n), 0);
    CHECK_NEAR(n.cpu, 4.006, 1e-9);
    CHECK_NEAR(n.mem, 2 * GI + (220 + 32 + 8) * MI + 2147483 * 1000.0 / 512.0 + 36e6, 1);
    capacity_need_free(&n);
    cJSON_Delete(vm);
    /* dedicated CPUs: one core each, and 100Mi more */
    vm = vm_with("{\"domain\":{\"cpu\":{\"cores\":2,\"dedicatedCpuPlacement\":true},\"memory\":"
                 "{\"guest\":\"128Mi\"},\"devices\":{}}}");
    CHECK_INT(capacity_need_of(vm, &n), 0);
    CHECK_NEAR(n.cpu, 2.006, 1e-9);
    CHECK_NEAR(n.mem, 128 * MI + (220 + 16 + 8 + 32 + 100) * MI + 36e6, 1);
    capacity_need_free(&n);
    cJSON_Delete(vm);
    /* overcommitGuestOverhead: no overhead */
    vm = vm_with("{\"domain\":{\"memory\":{\"guest\":\"128Mi\"},\"resources\":{"
                 "\"overcommitGuestOverhead\":true},\"devices\":{}}}");
    CHECK_INT(capacity_need_of(vm, &n), 0);
    CHECK_NEAR(n.mem, 128 * MI + 36e6, 1);
    CHECK_NEAR(n.cpu, 0.1 + 0.006, 1e-9); /* no cpu section: 1 vCPU */
    capacity_need_free(&n);
    cJSON_Delete(vm);
    /* not a VM */
    vm = cJSON_Parse("{\"spec\":{}}");
    CHECK_INT(capacity_need_of(vm, &n), -EINVAL);
    cJSON_Delete(vm);
}

static struct capacity_node node(const char *name, const char *labels, double cpu, double mem)
{
    struct capacity_node n = {name, labels, NULL, 1, cpu, mem, 10};

    return n;
}

TEST(a_replacement_fits_the_first_ready_node_with_room)
{
    cJSON *vm = vm_with(NULL);
    struct capacity_need need;
    struct capacity_node nodes[3];
    char why[512];

    CHECK_INT(capacity_need_of(vm, &need), 0);
    nodes[0] = node("node-1", NULL, 4, 100 * MI);  /* too little memory */
    nodes[1] = node("node-2", NULL, 0.05, 8 * GI); /* too little cpu */
    nodes[2] = node("node-3", NULL, 4, 8 * GI);
    nodes[2].usable = 0;
    CHECK_INT(capacity_fit(&need, nodes, 3, why, sizeof(why)), -1);
    CHECK(strstr(why, "node-1: 4.00 CPU and 100Mi free, needs 0.11 and 430Mi") != NULL);
    CHECK(strstr(why, "node-2: 0.05 CPU") != NULL);
    CHECK(strstr(why, "node-3: not Ready or not schedulable") != NULL);
    nodes[2].usable = 1;
    CHECK_INT(capacity_fit(&need, nodes, 3, why, sizeof(why)), 2);
    /* no pod room */
    nodes[2].free_pods = 0;
    CHECK_INT(capacity_fit(&need, nodes, 3, NULL, 0), -1);
    CHECK_INT(capacity_fit(&need, nodes, 0, why, sizeof(why)), -1);
    CHECK_STR(why, "no nodes");
    capacity_need_free(&need);
    cJSON_Delete(vm);
}

TEST(taints_keep_out_what_does_not_tolerate_them)
{
    cJSON *vm = vm_with(NULL);
    struct capacity_need need;
    struct capacity_node nd = node("n", NULL, 8, 8 * GI);
    /* packed as the cache keeps them */
    static const char oos[] = "node.kubernetes.io/out-of-service\0nodeshutdown\0NoExecute\0";
    static const char soft[] = "k\0v\0PreferNoSchedule\0";
    static const char ded[] = "dedicated\0db\0NoSchedule\0";
    char buf[128];

    CHECK_INT(capacity_need_of(vm, &need), 0);
    nd.taints = oos;
    CHECK_INT(capacity_fit(&need, &nd, 1, NULL, 0), -1);
    CHECK_INT(capacity_untolerated(&need, oos, buf, sizeof(buf)), 1);
    CHECK_STR(buf, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute");
    nd.taints = soft; /* only steers */
    CHECK_INT(capacity_fit(&need, &nd, 1, NULL, 0), 0);
    nd.taints = ded;
    CHECK_INT(capacity_fit(&need, &nd, 1, NULL, 0), -1);
    capacity_need_free(&need);
    cJSON_Delete(vm);
    /* tolerated: Equal with the value, Exists on the key, Exists on all */
    {
        static const char *const tols[] = {
            "[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"db\",\"effect\":"
            "\"NoSchedule\"}]",
            "[{\"key\":\"dedicated\",\"operator\":\"Exists\"}]",
            "[{\"operator\":\"Exists\"}]",
            "[{\"key\":\"dedicated\",\"value\":\"db\"}]",
        };
        static const char *const not_tols[] = {
            "[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"web\"}]",
            "[{\"key\":\"dedicated\",\"operator\":\"Exists\",\"effect\":\"NoExecute\"}]",
            "[{\"key\":\"other\",\"operator\":\"Exists\"}]",
        };

        for (size_t i = 0; i < sizeof(tols) / sizeof(tols[0]); i++) {
            char *x = xasprintf("{\"tolerations\":%s}", tols[i]);

            vm = vm_with(x);
            free(x);
            CHECK_INT(capacity_need_of(vm, &need), 0);
            if (capacity_fit(&need, &nd, 1, NULL, 0) != 0)
                harness_fail(__FILE__, __LINE__, "%s should tolerate dedicated=db", tols[i]);
            capacity_need_free(&need);
            cJSON_Delete(vm);
        }
        for (size_t i = 0; i < sizeof(not_tols) / sizeof(not_tols[0]); i++) {
            char *x = xasprintf("{\"tolerations\":%s}", not_tols[i]);

            vm = vm_with(x);
            free(x);
            CHECK_INT(capacity_need_of(vm, &need), 0);
            if (capacity_fit(&need, &nd, 1, NULL, 0) != -1)
                harness_fail(__FILE__, __LINE__, "%s should not tolerate it", not_tols[i]);
            capacity_need_free(&need);
            cJSON_Delete(vm);
        }
    }
}

TEST(node_selector_and_required_affinity_choose_the_nodes)
{
    static const char big[] = "pool\0big\0zone\0a\0cores\0"
                              "16\0";
    static const char small[] = "pool\0small\0zone\0b\0cores\0"
                                "4\0";
    static const struct {
        const char *spec;
        int big, small;
    } cases[] = {
        {"{\"nodeSelector\":{\"pool\":\"big\"}}", 1, 0},
        {"{\"nodeSelector\":{\"pool\":\"big\",\"zone\":\"b\"}}", 0, 0},
        {"{\"nodeSelector\":{\"absent\":\"x\"}}", 0, 0},
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\","
         "\"values\":[\"b\",\"c\"]}]}]}}}}",
         0, 1},
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"NotIn\","
         "\"values\":[\"b\"]}]}]}}}}",
         1, 0},
        /* terms are ORed, expressions ANDed */
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"pool\",\"operator\":"
         "\"Exists\"},{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\"]}]},{"
         "\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":["
         "\"small-1\"]}]}]}}}}",
         1, 1},
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":"
         "\"DoesNotExist\"},{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"8\"]}]}]}}}}",
         1, 0},
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Lt\","
         "\"values\":[\"8\"]}]}]}}}}",
         0, 1},
        /* an empty term matches nothing */
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{"
         "\"nodeSelectorTerms\":[{}]}}}}",
         0, 0},
        /* preferred terms do not restrict */
        {"{\"affinity\":{\"nodeAffinity\":{\"preferredDuringSchedulingIgnoredDuringExecution\":[{"
         "\"weight\":1,\"preference\":{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":"
         "\"In\",\"values\":[\"z\"]}]}}]}}}",
         1, 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *vm = vm_with(cases[i].spec);
        struct capacity_need need;

        CHECK_INT(capacity_need_of(vm, &need), 0);
        if (capacity_allows(&need, "big-1", big) != cases[i].big ||
            capacity_allows(&need, "small-1", small) != cases[i].small)
            harness_fail(__FILE__, __LINE__, "case %zu: big %d small %d", i,
                         capacity_allows(&need, "big-1", big),
                         capacity_allows(&need, "small-1", small));
        capacity_need_free(&need);
        cJSON_Delete(vm);
    }
}
