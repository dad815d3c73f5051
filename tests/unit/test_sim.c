/*
 * sim: the paper's numbers in both modes, the edge cases of the formula,
 * eligibility (required, threshold, template), self-exclusion, ordering,
 * the JSON result, and properties over generated pools.
 */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "features.h"
#include "policy.h"
#include "sim.h"
#include "xalloc.h"
#include "yaml.h"

/* A feature set from flow YAML ("{language: nodejs, database: [a, b]}") and
 * optional resources YAML; aborts the test binary on bad test input. */
static void feat(struct features *f, const char *features, const char *resources)
{
    cJSON *doc = NULL;
    char *err = NULL;

    memset(f, 0, sizeof(*f));
    if (features) {
        if (yaml_parse_one(features, strlen(features), &doc, &err) ||
            features_parse_map(f, doc, &err)) {
            fprintf(stderr, "bad test features %s: %s\n", features, err);
            abort();
        }
        cJSON_Delete(doc);
    }
    if (resources) {
        if (yaml_parse_one(resources, strlen(resources), &doc, &err) ||
            features_parse_resources(f, doc, &err)) {
            fprintf(stderr, "bad test resources %s: %s\n", resources, err);
            abort();
        }
        cJSON_Delete(doc);
    }
}

/* A policy from a JSON spec's extra fields, with the selectors filled in. */
static void pol(struct policy *p, const char *spec_fields)
{
    char *text =
        xasprintf("{\"selector\": {}, \"poolSelector\": {\"matchLabels\": {\"a\": \"b\"}}, "
                  "%s}",
                  spec_fields);
    cJSON *spec = cJSON_Parse(text);
    char *err = NULL;

    if (!spec || policy_parse_spec(spec, p, &err)) {
        fprintf(stderr, "bad test policy %s: %s\n", text, err ? err : "JSON");
        abort();
    }
    cJSON_Delete(spec);
    free(text);
}

static void add(struct sim_pool *p, const char *name, const char *vm, const char *features,
                const char *resources, int has_template)
{
    struct features f;

    feat(&f, features, resources);
    if (sim_pool_add(p, name, vm, &f, has_template, NULL) != 0) {
        fprintf(stderr, "sim_pool_add %s failed\n", name);
        abort();
    }
    features_free(&f);
}

#define PAPER_WEIGHTS "\"weights\": {\"language\": 0.3, \"database\": 0.2, \"webserver\": 0.1}"

/* The paper's case study, section 4: VM-001 fails. */
static struct sim_pool *paper_pool(void)
{
    struct sim_pool *p = sim_pool_new();

    add(p, "vm-001", "vm-001",
        "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}", NULL, 1);
    add(p, "vm-002", "vm-002",
        "{os: ubuntu-20.04, language: nodejs, database: postgresql, webserver: apache}", NULL, 1);
    add(p, "vm-003", "vm-003", "{os: ubuntu-20.04, database: postgresql}", NULL, 1);
    add(p, "vm-004", "vm-004", "{os: ubuntu-20.04, webserver: nginx}", NULL, 1);
    add(p, "vm-005", "vm-005",
        "{os: ubuntu-20.04, language: nodejs, database: [mysql, postgresql], "
        "webserver: [nginx, apache]}",
        NULL, 1);
    sim_pool_finish(p);
    return p;
}

static const char *cand_name(const struct sim_pool *p, const struct sim_result *r, size_t i)
{
    return sim_pool_name(p, r->cand[i].member);
}

TEST(sim_paper_jaccard_selects_vm005_at_two_thirds)
{
    struct sim_pool *p = paper_pool();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct features a;
    struct policy po;
    struct sim_query q;

    feat(&a, "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}", NULL);
    pol(&po, PAPER_WEIGHTS ", \"threshold\": 0.5");
    q = (struct sim_query){"vm-001", NULL, &a};
    CHECK_INT(sim_rank(r, p, &po, &q, &res), 0);
    CHECK_INT(res.n, 4);
    CHECK_STR(cand_name(p, &res, 0), "vm-005");
    CHECK_NEAR(res.cand[0].score, 2.0 / 3.0, 1e-12);
    CHECK_INT(res.cand[0].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(p, &res, 1), "vm-002");
    CHECK_NEAR(res.cand[1].score, 1.0 / 3.0, 1e-12);
    CHECK_INT(res.cand[1].reason, SIM_BELOW_THRESHOLD);
    CHECK_STR(cand_name(p, &res, 2), "vm-004");
    CHECK_NEAR(res.cand[2].score, 1.0 / 6.0, 1e-12);
    CHECK_STR(cand_name(p, &res, 3), "vm-003");
    CHECK_NEAR(res.cand[3].score, 0.0, 0);
    CHECK_INT(res.selected, 0);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
    policy_free(&po);
    features_free(&a);
}

TEST(sim_paper_coverage_vm005_full_vm002_half_eligible)
{
    struct sim_pool *p = paper_pool();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct features a;
    struct policy po;
    struct sim_query q;

    feat(&a, "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}", NULL);
    pol(&po, PAPER_WEIGHTS ", \"threshold\": 0.5, \"mode\": \"Coverage\"");
    q = (struct sim_query){"vm-001", NULL, &a};
    CHECK_INT(sim_rank(r, p, &po, &q, &res), 0);
    CHECK_INT(res.n, 4);
    CHECK_STR(cand_name(p, &res, 0), "vm-005");
    CHECK_NEAR(res.cand[0].score, 1.0, 0);
    CHECK_INT(res.cand[0].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(p, &res, 1), "vm-002");
    CHECK_NEAR(res.cand[1].score, 0.5, 1e-12);
    /* 0.5 reached exactly or within rounding: not below the threshold */
    CHECK_INT(res.cand[1].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(p, &res, 2), "vm-004");
    CHECK_NEAR(res.cand[2].score, 1.0 / 6.0, 1e-12);
    CHECK_STR(cand_name(p, &res, 3), "vm-003");
    CHECK_NEAR(res.cand[3].score, 0.0, 0);
    CHECK_INT(res.selected, 0);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
    policy_free(&po);
    features_free(&a);
}

TEST(sim_result_json_has_contract_fields_and_contributions)
{
    struct sim_pool *p = paper_pool();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct features a;
    struct policy po;
    struct sim_query q;
    cJSON *j, *c0, *c1, *contrib;
    char *text;

    feat(&a, "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}", NULL);
    pol(&po, PAPER_WEIGHTS);
    q = (struct sim_query){"vm-001", NULL, &a};
    CHECK_INT(sim_rank(r, p, &po, &q, &res), 0);
    j = sim_result_json(r, p, &po, &q, &res, 0);
    text = cJSON_PrintUnformatted(j);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "failed")->valuestring, "vm-001");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "mode")->valuestring, "Jaccard");
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(j, "threshold")->valuedouble, 0.5, 0);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "selected")->valuestring, "vm-005");
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "candidates"), 0);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(c0, "name")->valuestring, "vm-005");
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(c0, "score")->valuedouble, 0.666667, 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c0, "eligible")));
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(c0, "reason")->valuestring, "");
    CHECK(!cJSON_GetObjectItemCaseSensitive(c0, "detail"));
    contrib = cJSON_GetObjectItemCaseSensitive(c0, "contributions");
    CHECK_INT(cJSON_GetArraySize(contrib), 3);
    CHECK_STR(contrib->child->string, "language");
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(contrib, "language")->valuedouble, 0.3, 0);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(contrib, "database")->valuedouble, 0.2, 0);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(contrib, "webserver")->valuedouble, 0.1, 0);
    /* vm-004 (nginx only): language and database occur on A's side, score nothing */
    c1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "candidates"), 2);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(c1, "name")->valuestring, "vm-004");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(c1, "reason")->valuestring, "BelowThreshold");
    contrib = cJSON_GetObjectItemCaseSensitive(c1, "contributions");
    CHECK_INT(cJSON_GetArraySize(contrib), 3);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(contrib, "language")->valuedouble, 0, 0);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(contrib, "webserver")->valuedouble, 0.1, 0);
    free(text);
    cJSON_Delete(j);
    /* with SIM_JSON_DETAIL the ineligible ones say why */
    j = sim_result_json(r, p, &po, &q, &res, SIM_JSON_DETAIL);
    c1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "candidates"), 1);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(c1, "detail")->valuestring,
              "score 0.3333 is below the threshold 0.5");
    cJSON_Delete(j);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
    policy_free(&po);
    features_free(&a);
}
