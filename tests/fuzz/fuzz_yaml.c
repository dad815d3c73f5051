/*
 * fuzz_yaml — untrusted YAML, under both alias policies of yaml.h: as text
 * from the API server (no aliases) and as a file the CLI reads (aliases
 * within the byte budget). Every document through the model parsers
 * (policy_from_json, pool_member_from_json, features_from_object), and, when
 * the input holds a valid policy and pool members, a whole ranking with its
 * JSON.
 *
 * Checks, beyond no crash, leak or hang: what the API policy accepts, the
 * file policy accepts as the same tree (the two differ only in aliases);
 * errors are one-line messages, parsed
 * policies and features keep their documented invariants, scores are in
 * [0, 1] and candidates come sorted by score, then name, with the first
 * eligible one selected.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/yaml.h"
#include "fuzz_check.h"
#include "sim/features.h"
#include "sim/policy.h"
#include "sim/pool.h"
#include "sim/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The file policy with a 1 MiB alias byte budget instead of 64 MiB: the same
 * code paths, without spending most executions copying bombs up to 64 MiB. */
static const struct yaml_opts fuzz_file_opts = {.alias_bytes = (size_t)1 << 20};

/* Ranks the members of pool against q under pol and checks the result. */
static void fuzz_rank(struct sim_pool *pool, const struct policy *pol, const struct sim_query *q)
{
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    double contrib[64];
    unsigned char present[64];
    long first_eligible = -1;
    cJSON *j;
    char *s;

    sim_pool_finish(pool);
    if (sim_rank(r, pool, pol, q, &res) == 0) {
        for (size_t i = 0; i < res.n; i++) {
            const struct sim_candidate *c = &res.cand[i];
            char *detail = sim_candidate_detail(c, pol);

            FUZZ_ASSERT(c->score >= 0 && c->score <= 1, "scores in [0, 1]");
            FUZZ_ASSERT(c->member < sim_pool_size(pool), "candidates are pool members");
            if (i) {
                const struct sim_candidate *b = &res.cand[i - 1];

                FUZZ_ASSERT(b->score > c->score || (b->score == c->score &&
                                                    strcmp(sim_pool_name(pool, b->member),
                                                           sim_pool_name(pool, c->member)) < 0),
                            "sorted by score descending, then name ascending");
            }
            if (c->reason == SIM_ELIGIBLE && first_eligible < 0)
                first_eligible = (long)i;
            FUZZ_ASSERT((c->reason == SIM_ELIGIBLE) == (*detail == '\0'),
                        "a detail exactly for ineligible candidates");
            free(detail);
            if (pol->nweights <= 64)
                sim_explain(r, pool, pol, c->member, contrib, present);
        }
        FUZZ_ASSERT(res.selected == first_eligible, "the first eligible candidate is selected");
        j = sim_result_json(r, pool, pol, q, &res, SIM_JSON_DETAIL);
        s = cJSON_PrintUnformatted(j);
        FUZZ_ASSERT(s != NULL, "the result prints");
        cJSON_free(s);
        cJSON_Delete(j);
    }
    sim_result_free(&res);
    sim_ranker_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *docs = NULL, *one = NULL, *file = NULL;
    const cJSON *doc;
    char *err = NULL;
    struct policy pol = {0};
    struct features query = {0};
    struct sim_pool *pool;
    int have_policy = 0, have_query = 0, rc;

    rc = yaml_parse_one((const char *)data, size, &one, &err);
    fuzz_check_result(rc, err, "yaml_parse_one");
    cJSON_Delete(one);

    err = NULL;
    rc = yaml_parse_opts((const char *)data, size, &fuzz_file_opts, &file, &err);
    fuzz_check_result(rc, err, "yaml_parse_opts (file)");

    err = NULL;
    rc = yaml_parse((const char *)data, size, &docs, &err);
    fuzz_check_result(rc, err, "yaml_parse");
    if (rc) {
        cJSON_Delete(file);
        return 0;
    }
    {
        /* compared printed: cJSON_Compare() finds .nan unequal to itself */
        char *a = xcjson_print(docs), *b = file ? xcjson_print(file) : NULL;

        FUZZ_ASSERT(b && strcmp(a, b) == 0, "a file parses as the same text from the API");
        free(a);
        free(b);
        cJSON_Delete(file);
    }
    FUZZ_ASSERT(cJSON_IsArray(docs), "yaml_parse gives an array of documents");

    pool = sim_pool_new();
    cJSON_ArrayForEach(doc, docs)
    {
        struct policy p = {0};
        struct pool_member m = {0};
        struct features f = {0};

        rc = policy_from_json(doc, &p, &err);
        if (rc == 0) {
            fuzz_check_policy(&p);
            if (!have_policy) {
                pol = p;
                have_policy = 1;
                memset(&p, 0, sizeof(p));
            }
        }
        fuzz_check_result(rc, err, "policy_from_json");
        policy_free(&p);

        if (pool_is_configmap(doc)) {
            rc = pool_member_from_json(doc, &m, &err);
            if (rc == 0) {
                fuzz_check_features(&m.features);
                FUZZ_ASSERT(m.name && *m.name, "a member has a name");
                sim_pool_add(pool, m.name, m.vm, &m.features, m.vm_template != NULL, NULL);
            }
            fuzz_check_result(rc, err, "pool_member_from_json");
            pool_member_free(&m);
        }

        rc = features_from_object(doc, &f, &err);
        if (rc == 0) {
            fuzz_check_features(&f);
            if (!have_query) {
                query = f;
                have_query = 1;
                memset(&f, 0, sizeof(f));
            }
        }
        fuzz_check_result(rc, err, "features_from_object");
        features_free(&f);
    }
    if (have_policy && have_query) {
        struct sim_query q = {.name = "vm-001", .alias = NULL, .features = &query};

        fuzz_rank(pool, &pol, &q);
    }
    sim_pool_free(pool);
    features_free(&query);
    policy_free(&pol);
    cJSON_Delete(docs);
    return 0;
}
