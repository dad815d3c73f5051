/*
 * sim: the paper's numbers in both modes, the edge cases of the formula,
 * eligibility (required, threshold, template), self-exclusion, ordering,
 * the JSON result, and properties over generated pools.
 */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/xalloc.h"
#include "base/yaml.h"
#include "sim/features.h"
#include "sim/policy.h"
#include "sim/sim.h"
#include "sim/sim_test.h"

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
    char *text = xasprintf("{\"selector\": {\"matchLabels\": {\"app\": \"x\"}}, \"poolSelector\": "
                           "{\"matchLabels\": {\"a\": \"b\"}}, "
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

/* One ranking's worth of state; a zeroed struct is empty. */
struct fx {
    struct sim_pool *p;
    struct sim_ranker *r;
    struct sim_result res;
    struct features a;
    struct policy po;
    struct sim_query q;
};

static void fx_free(struct fx *x)
{
    sim_pool_free(x->p);
    sim_ranker_free(x->r);
    sim_result_free(&x->res);
    features_free(&x->a);
    policy_free(&x->po);
    memset(x, 0, sizeof(*x));
}

/* Ranks x->p (finished here) for the failed VM name (alias may be NULL)
 * with the given features, resources and policy spec fields. */
static int fx_rank(struct fx *x, const char *name, const char *alias, const char *features,
                   const char *resources, const char *spec)
{
    features_free(&x->a);
    policy_free(&x->po);
    feat(&x->a, features, resources);
    pol(&x->po, spec);
    if (!x->r)
        x->r = sim_ranker_new();
    sim_pool_finish(x->p);
    x->q = (struct sim_query){name, alias, &x->a};
    return sim_rank(x->r, x->p, &x->po, &x->q, &x->res);
}

static const char *cand_name(const struct fx *x, size_t i)
{
    return i < x->res.n ? sim_pool_name(x->p, x->res.cand[i].member) : "(none)";
}

/* The candidate named name, or NULL when it is not among the candidates. */
static const struct sim_candidate *cand(const struct fx *x, const char *name)
{
    for (size_t i = 0; i < x->res.n; i++)
        if (strcmp(sim_pool_name(x->p, x->res.cand[i].member), name) == 0)
            return &x->res.cand[i];
    return NULL;
}

static const char *selected(const struct fx *x)
{
    return x->res.selected < 0 ? "(none)" : cand_name(x, (size_t)x->res.selected);
}

#define VM001 "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}"

TEST(sim_paper_jaccard_selects_vm005_at_two_thirds)
{
    struct fx x = {.p = paper_pool()};

    CHECK_INT(fx_rank(&x, "vm-001", NULL, VM001, NULL, PAPER_WEIGHTS ", \"threshold\": 0.5"), 0);
    CHECK_INT(x.res.n, 4);
    CHECK_STR(cand_name(&x, 0), "vm-005");
    CHECK_NEAR(x.res.cand[0].score, 2.0 / 3.0, 1e-12);
    CHECK_INT(x.res.cand[0].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(&x, 1), "vm-002");
    CHECK_NEAR(x.res.cand[1].score, 1.0 / 3.0, 1e-12);
    CHECK_INT(x.res.cand[1].reason, SIM_BELOW_THRESHOLD);
    CHECK_STR(cand_name(&x, 2), "vm-004");
    CHECK_NEAR(x.res.cand[2].score, 1.0 / 6.0, 1e-12);
    CHECK_STR(cand_name(&x, 3), "vm-003");
    CHECK_NEAR(x.res.cand[3].score, 0.0, 0);
    CHECK_INT(x.res.selected, 0);
    fx_free(&x);
}

TEST(sim_paper_coverage_vm005_full_vm002_half_eligible)
{
    struct fx x = {.p = paper_pool()};

    CHECK_INT(fx_rank(&x, "vm-001", NULL, VM001, NULL,
                      PAPER_WEIGHTS ", \"threshold\": 0.5, \"mode\": \"Coverage\""),
              0);
    CHECK_INT(x.res.n, 4);
    CHECK_STR(cand_name(&x, 0), "vm-005");
    CHECK_NEAR(x.res.cand[0].score, 1.0, 0);
    CHECK_INT(x.res.cand[0].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(&x, 1), "vm-002");
    CHECK_NEAR(x.res.cand[1].score, 0.5, 1e-12);
    /* 0.5 reached exactly or within rounding: not below the threshold */
    CHECK_INT(x.res.cand[1].reason, SIM_ELIGIBLE);
    CHECK_STR(cand_name(&x, 2), "vm-004");
    CHECK_NEAR(x.res.cand[2].score, 1.0 / 6.0, 1e-12);
    CHECK_STR(cand_name(&x, 3), "vm-003");
    CHECK_NEAR(x.res.cand[3].score, 0.0, 0);
    CHECK_INT(x.res.selected, 0);
    fx_free(&x);
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

TEST(sim_result_json_has_contract_fields_and_contributions)
{
    struct fx x = {.p = paper_pool()};
    cJSON *j;
    const cJSON *c0, *c2, *contrib;

    CHECK_INT(fx_rank(&x, "vm-001", NULL, VM001, NULL, PAPER_WEIGHTS), 0);
    j = sim_result_json(x.r, x.p, &x.po, &x.q, &x.res, 0);
    CHECK_STR(jget(j, "failed")->valuestring, "vm-001");
    CHECK_STR(jget(j, "mode")->valuestring, "Jaccard");
    CHECK_NEAR(jget(j, "threshold")->valuedouble, 0.5, 0);
    CHECK_STR(jget(j, "selected")->valuestring, "vm-005");
    CHECK_INT(cJSON_GetArraySize(jget(j, "candidates")), 4);
    c0 = cJSON_GetArrayItem(jget(j, "candidates"), 0);
    CHECK_STR(jget(c0, "name")->valuestring, "vm-005");
    CHECK_NEAR(jget(c0, "score")->valuedouble, 0.666667, 0);
    CHECK(cJSON_IsTrue(jget(c0, "eligible")));
    CHECK_STR(jget(c0, "reason")->valuestring, "");
    CHECK(!jget(c0, "detail"));
    contrib = jget(c0, "contributions");
    /* the policy's order; os has no weight and is left out */
    CHECK_INT(cJSON_GetArraySize(contrib), 3);
    CHECK_STR(contrib->child->string, "language");
    CHECK_STR(contrib->child->next->string, "database");
    CHECK_NEAR(jget(contrib, "language")->valuedouble, 0.3, 0);
    CHECK_NEAR(jget(contrib, "database")->valuedouble, 0.2, 0);
    CHECK_NEAR(jget(contrib, "webserver")->valuedouble, 0.1, 0);
    /* vm-004 (nginx only): language and database occur on A's side only */
    c2 = cJSON_GetArrayItem(jget(j, "candidates"), 2);
    CHECK_STR(jget(c2, "name")->valuestring, "vm-004");
    CHECK(cJSON_IsFalse(jget(c2, "eligible")));
    CHECK_STR(jget(c2, "reason")->valuestring, "BelowThreshold");
    contrib = jget(c2, "contributions");
    CHECK_INT(cJSON_GetArraySize(contrib), 3);
    CHECK_NEAR(jget(contrib, "language")->valuedouble, 0, 0);
    CHECK_NEAR(jget(contrib, "webserver")->valuedouble, 0.1, 0);
    cJSON_Delete(j);
    /* with SIM_JSON_DETAIL the ineligible ones say why */
    j = sim_result_json(x.r, x.p, &x.po, &x.q, &x.res, SIM_JSON_DETAIL);
    c2 = cJSON_GetArrayItem(jget(j, "candidates"), 1);
    CHECK_STR(jget(c2, "detail")->valuestring, "score 0.3333 is below the threshold 0.5");
    CHECK(!jget(cJSON_GetArrayItem(jget(j, "candidates"), 0), "detail"));
    cJSON_Delete(j);
    fx_free(&x);
}

TEST(sim_result_json_selected_is_null_when_none_is_eligible)
{
    struct fx x = {.p = paper_pool()};
    cJSON *j;

    CHECK_INT(fx_rank(&x, "vm-001", NULL, VM001, NULL, PAPER_WEIGHTS ", \"threshold\": 0.9"), 0);
    CHECK_INT(x.res.selected, -1);
    j = sim_result_json(x.r, x.p, &x.po, &x.q, &x.res, 0);
    CHECK(cJSON_IsNull(jget(j, "selected")));
    CHECK_INT(cJSON_GetArraySize(jget(j, "candidates")), 4);
    cJSON_Delete(j);
    fx_free(&x);
}

TEST(sim_ties_are_ordered_by_name_whatever_the_insertion_order)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "zeta", NULL, "{language: go}", NULL, 1);
    add(x.p, "beta", NULL, "{language: go}", NULL, 1);
    add(x.p, "alpha", NULL, "{language: go, database: mysql}", NULL, 1);
    add(x.p, "gamma", NULL, "{language: go}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1}"),
              0);
    CHECK_INT(x.res.n, 4);
    CHECK_STR(cand_name(&x, 0), "beta");
    CHECK_STR(cand_name(&x, 1), "gamma");
    CHECK_STR(cand_name(&x, 2), "zeta");
    CHECK_STR(cand_name(&x, 3), "alpha");
    /* the tie is exact, not merely close */
    CHECK(x.res.cand[0].score == x.res.cand[2].score);
    CHECK_NEAR(x.res.cand[3].score, 0.5, 0);
    CHECK_STR(selected(&x), "beta");
    fx_free(&x);
}

/* Members whose scores differ by a relative 1e-9 or so, which the ranking's
 * radix sort sees as equal on the high half of the score's bits: the order
 * must still be by exact score, then name. */
static int close_scores_are_ordered(size_t n)
{
    struct fx x = {.p = sim_pool_new()};
    char name[32], res[64];
    int ok = 1;

    for (size_t i = 0; i < n; i++) {
        /* names in an order unrelated to the score; some scores repeat */
        snprintf(name, sizeof(name), "m-%03zu", (i * 7919) % n);
        snprintf(res, sizeof(res), "{cpu: %.0f}", 1e12 - 1000.0 * (double)((i * 31) % (n / 2 + 1)));
        add(x.p, name, NULL, NULL, res, 1);
    }
    if (fx_rank(&x, "failed", NULL, NULL, "{cpu: 1e12}", "\"weights\": {\"cpu\": 1}") != 0 ||
        x.res.n != n)
        ok = 0;
    for (size_t i = 1; ok && i < n; i++) {
        double s0 = x.res.cand[i - 1].score, s1 = x.res.cand[i].score;

        ok = s0 > s1 || (s0 == s1 && strcmp(cand_name(&x, i - 1), cand_name(&x, i)) < 0);
        if (!ok)
            fprintf(stderr, "%zu: %s %.17g before %s %.17g\n", i, cand_name(&x, i - 1), s0,
                    cand_name(&x, i), s1);
    }
    /* the scores really are distinct, and really close */
    ok = ok && x.res.cand[0].score != x.res.cand[n - 1].score &&
         x.res.cand[0].score - x.res.cand[n - 1].score < 1e-6;
    fx_free(&x);
    return ok;
}

TEST(sim_scores_closer_than_the_sort_key_are_ordered_exactly)
{
    CHECK(close_scores_are_ordered(6));   /* a short run */
    CHECK(close_scores_are_ordered(200)); /* a long one */
}

TEST(sim_empty_sets_score_zero)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "empty", NULL, NULL, NULL, 1);
    add(x.p, "full", NULL, "{language: go}", NULL, 1);
    /* failed VM without features: empty denominator against "empty"; 0/1
     * against "full" */
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, NULL, "\"weights\": {\"language\": 1}"), 0);
    CHECK_INT(x.res.n, 2);
    CHECK_NEAR(cand(&x, "empty")->score, 0, 0);
    CHECK_NEAR(cand(&x, "full")->score, 0, 0);
    CHECK_INT(x.res.selected, -1);
    /* Coverage with nothing to cover: W(A) = 0, also 0 */
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, NULL,
                      "\"weights\": {\"language\": 1}, \"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "full")->score, 0, 0);
    /* a failed VM with features against an empty member */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_NEAR(cand(&x, "empty")->score, 0, 0);
    CHECK_NEAR(cand(&x, "full")->score, 1, 0);
    fx_free(&x);
}

TEST(sim_empty_pool_ranks_to_no_candidates)
{
    struct fx x = {.p = sim_pool_new()};

    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_INT(x.res.n, 0);
    CHECK_INT(x.res.selected, -1);
    fx_free(&x);
}

TEST(sim_zero_weight_categories_count_for_nothing)
{
    struct fx x = {.p = sim_pool_new()};
    cJSON *j;
    const cJSON *contrib;

    add(x.p, "m", NULL, "{language: go, os: debian, cache: redis}", NULL, 1);
    /* os differs and cache is extra, but neither weighs anything */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go, os: ubuntu}", NULL,
                      "\"weights\": {\"language\": 0.3, \"os\": 0}"),
              0);
    CHECK_NEAR(cand(&x, "m")->score, 1, 0);
    j = sim_result_json(x.r, x.p, &x.po, &x.q, &x.res, 0);
    contrib = jget(cJSON_GetArrayItem(jget(j, "candidates"), 0), "contributions");
    CHECK_INT(cJSON_GetArraySize(contrib), 1);
    CHECK_NEAR(jget(contrib, "language")->valuedouble, 0.3, 0);
    CHECK(!jget(contrib, "os"));
    cJSON_Delete(j);
    fx_free(&x);
}

TEST(sim_category_on_one_side_only_penalises_jaccard_not_coverage)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "extra", NULL, "{language: go, cache: redis}", NULL, 1);
    add(x.p, "less", NULL, "{cache: redis}", NULL, 1);
    /* extra: 0.3 / (0.3 + 0.2) = 0.6 in Jaccard, 1 in Coverage */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL,
                      "\"weights\": {\"language\": 0.3, \"cache\": 0.2}"),
              0);
    CHECK_NEAR(cand(&x, "extra")->score, 0.6, 1e-12);
    CHECK_NEAR(cand(&x, "less")->score, 0, 0);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL,
                      "\"weights\": {\"language\": 0.3, \"cache\": 0.2}, \"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "extra")->score, 1, 0);
    CHECK_NEAR(cand(&x, "less")->score, 0, 0);
    /* the other way round: A has the category, B lacks it */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go, cache: redis, database: pg}", NULL,
                      "\"weights\": {\"language\": 0.3, \"cache\": 0.2, \"database\": 0.5}, "
                      "\"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "extra")->score, 0.5, 1e-12);
    CHECK_NEAR(cand(&x, "less")->score, 0.2, 1e-12);
    fx_free(&x);
}

TEST(sim_items_unknown_to_the_pool_still_weigh_on_the_failed_side)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "m", NULL, "{database: mysql}", NULL, 1);
    /* language=rust and the category "queue" exist nowhere in the pool */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: rust, database: mysql, queue: kafka}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1, \"queue\": 2}"),
              0);
    CHECK_NEAR(cand(&x, "m")->score, 0.25, 1e-12);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: rust, database: mysql, queue: kafka}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1, \"queue\": 2}, "
                      "\"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "m")->score, 0.25, 1e-12);
    fx_free(&x);
}

TEST(sim_numeric_resources_score_min_over_max_in_jaccard)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "small", NULL, NULL, "{cpu: 2, memory: 2Gi}", 1);
    add(x.p, "big", NULL, NULL, "{cpu: 8, memory: 8Gi}", 1);
    add(x.p, "same", NULL, NULL, "{cpu: 4, memory: 4096Mi}", 1);
    add(x.p, "nomem", NULL, NULL, "{cpu: 4}", 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, "{cpu: 4, memory: 4Gi}",
                      "\"weights\": {\"cpu\": 1, \"memory\": 1}"),
              0);
    /* min/max is symmetric: half the size and twice the size score alike */
    CHECK_NEAR(cand(&x, "small")->score, 0.5, 1e-12);
    CHECK_NEAR(cand(&x, "big")->score, 0.5, 1e-12);
    CHECK_NEAR(cand(&x, "same")->score, 1, 0);
    /* memory on one side only: w in the denominator only */
    CHECK_NEAR(cand(&x, "nomem")->score, 0.5, 1e-12);
    CHECK_STR(cand_name(&x, 0), "same");
    CHECK_STR(cand_name(&x, 1), "big");
    fx_free(&x);
}

TEST(sim_numeric_resources_score_min_one_b_over_a_in_coverage)
{
    struct fx x = {.p = sim_pool_new()};
    double contrib[1];
    unsigned char present[1];

    add(x.p, "small", NULL, NULL, "{cpu: 1}", 1);
    add(x.p, "big", NULL, NULL, "{cpu: 16}", 1);
    add(x.p, "nocpu", NULL, "{language: go}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, "{cpu: 4}",
                      "\"weights\": {\"cpu\": 0.5}, \"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "small")->score, 0.25, 1e-12);
    /* more than A had is not penalised, and not rewarded beyond 1 */
    CHECK_NEAR(cand(&x, "big")->score, 1, 0);
    CHECK_NEAR(cand(&x, "nocpu")->score, 0, 0);
    sim_explain(x.r, x.p, &x.po, cand(&x, "small")->member, contrib, present);
    CHECK_NEAR(contrib[0], 0.125, 1e-12);
    CHECK_INT(present[0], 1);
    /* a resource only B has adds nothing to Coverage's denominator */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL,
                      "\"weights\": {\"cpu\": 0.5, \"language\": 1}, \"mode\": \"Coverage\""),
              0);
    CHECK_NEAR(cand(&x, "nocpu")->score, 1, 0);
    CHECK_NEAR(cand(&x, "big")->score, 0, 0);
    fx_free(&x);
}

TEST(sim_numeric_zero_values_compare_equal)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "zero", NULL, NULL, "{disk: 0}", 1);
    add(x.p, "some", NULL, NULL, "{disk: 10Gi}", 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, "{disk: 0}", "\"weights\": {\"disk\": 1}"), 0);
    CHECK_NEAR(cand(&x, "zero")->score, 1, 0);
    CHECK_NEAR(cand(&x, "some")->score, 0, 0);
    fx_free(&x);
}

TEST(sim_required_category_must_hold_the_same_values)
{
    struct fx x = {.p = sim_pool_new()};
    char *d;

    add(x.p, "same-os", NULL, "{os: ubuntu, language: go}", NULL, 1);
    add(x.p, "other-os", NULL, "{os: debian, language: go, database: pg}", NULL, 1);
    add(x.p, "no-os", NULL, "{language: go}", NULL, 1);
    add(x.p, "two-os", NULL, "{os: [ubuntu, debian], language: go}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{os: ubuntu, language: go, database: pg}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1}, "
                      "\"required\": [\"os\"], \"threshold\": 0"),
              0);
    /* other-os scores best (1.0) but is not eligible */
    CHECK_STR(cand_name(&x, 0), "other-os");
    CHECK_NEAR(x.res.cand[0].score, 1, 0);
    CHECK_INT(x.res.cand[0].reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(x.res.cand[0].required, 0);
    CHECK_INT(cand(&x, "no-os")->reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(cand(&x, "two-os")->reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(cand(&x, "same-os")->reason, SIM_ELIGIBLE);
    CHECK_STR(selected(&x), "same-os");
    d = sim_candidate_detail(&x.res.cand[0], &x.po);
    CHECK_STR(d, "required category os differs");
    free(d);
    fx_free(&x);
}

TEST(sim_required_category_absent_on_both_sides_is_equal)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "m", NULL, "{language: go}", NULL, 1);
    add(x.p, "with-os", NULL, "{language: go, os: ubuntu}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go}", NULL,
                      "\"weights\": {\"language\": 1}, \"required\": [\"os\"]"),
              0);
    CHECK_INT(cand(&x, "m")->reason, SIM_ELIGIBLE);
    CHECK_INT(cand(&x, "with-os")->reason, SIM_REQUIRED_MISMATCH);
    fx_free(&x);
}

TEST(sim_required_reports_the_first_differing_category_in_policy_order)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "m", NULL, "{os: ubuntu, arch: arm64, zone: b}", NULL, 1);
    add(x.p, "n", NULL, "{os: debian, arch: amd64, zone: a}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{os: ubuntu, arch: amd64, zone: a}", NULL,
                      "\"weights\": {\"os\": 1}, \"required\": [\"zone\", \"arch\", \"os\"]"),
              0);
    CHECK_INT(cand(&x, "m")->reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(cand(&x, "m")->required, 0); /* zone */
    CHECK_INT(cand(&x, "n")->required, 2); /* os */
    fx_free(&x);
}

TEST(sim_required_multi_valued_sets_compare_as_sets)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "same", NULL, "{database: [pg, mysql]}", NULL, 1);
    add(x.p, "subset", NULL, "{database: [pg]}", NULL, 1);
    add(x.p, "superset", NULL, "{database: [pg, mysql, redis]}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{database: [mysql, pg]}", NULL,
                      "\"weights\": {\"database\": 1}, \"required\": [\"database\"], "
                      "\"threshold\": 0"),
              0);
    CHECK_INT(cand(&x, "same")->reason, SIM_ELIGIBLE);
    CHECK_INT(cand(&x, "subset")->reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(cand(&x, "superset")->reason, SIM_REQUIRED_MISMATCH);
    fx_free(&x);
}

TEST(sim_required_resource_must_be_equal)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "same", NULL, NULL, "{cpu: 2000m}", 1);
    add(x.p, "other", NULL, NULL, "{cpu: 4}", 1);
    add(x.p, "none", NULL, NULL, NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, NULL, "{cpu: 2}",
                      "\"weights\": {\"cpu\": 1}, \"required\": [\"cpu\"], \"threshold\": 0"),
              0);
    CHECK_INT(cand(&x, "same")->reason, SIM_ELIGIBLE);
    CHECK_INT(cand(&x, "other")->reason, SIM_REQUIRED_MISMATCH);
    CHECK_INT(cand(&x, "none")->reason, SIM_REQUIRED_MISMATCH);
    fx_free(&x);
}

TEST(sim_values_compare_after_trim_and_lower_case)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "m", NULL, "{' Database ': '  MySQL ', language: NodeJS}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{database: mysql, LANGUAGE: '\tnodejs'}", NULL,
                      "\"weights\": {\"database\": 1, \" Language\": 1}"),
              0);
    CHECK_NEAR(cand(&x, "m")->score, 1, 0);
    fx_free(&x);
}

TEST(sim_no_template_is_scored_but_never_selected)
{
    struct fx x = {.p = sim_pool_new()};
    char *d;

    add(x.p, "best", NULL, "{language: go, database: pg}", NULL, 0);
    add(x.p, "good", NULL, "{language: go}", NULL, 1);
    add(x.p, "poor", NULL, "{database: mysql}", NULL, 0);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go, database: pg}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1}"),
              0);
    CHECK_STR(cand_name(&x, 0), "best");
    CHECK_NEAR(x.res.cand[0].score, 1, 0);
    CHECK_INT(x.res.cand[0].reason, SIM_NO_TEMPLATE);
    CHECK_STR(sim_reason_name(x.res.cand[0].reason), "NoTemplate");
    CHECK_STR(selected(&x), "good");
    d = sim_candidate_detail(&x.res.cand[0], &x.po);
    CHECK_STR(d, "no data.vm to build a replacement from");
    free(d);
    /* below the threshold comes first among the reasons */
    CHECK_INT(cand(&x, "poor")->reason, SIM_BELOW_THRESHOLD);
    fx_free(&x);
}

/* A member added with flags and a disk detail, as the controller and the
 * CLI add members whose template shares a disk. */
static void add_flagged(struct sim_pool *p, const char *name, const char *features, unsigned flags,
                        const char *disk)
{
    struct features f;
    struct sim_member m = {name, NULL, &f, flags, disk, NULL};

    feat(&f, features, NULL);
    if (sim_pool_put(p, &m) != 0)
        abort();
    features_free(&f);
}

TEST(sim_shared_disk_is_scored_but_never_selected_and_says_which_disk)
{
    struct fx x = {.p = sim_pool_new()};
    char *d;

    add_flagged(x.p, "best", "{language: go, database: pg}",
                SIM_MEMBER_TEMPLATE | SIM_MEMBER_SHARED_DISK,
                "volume data uses persistentVolumeClaim db, not one of its own "
                "dataVolumeTemplates");
    add_flagged(x.p, "bare", "{language: go, database: pg}", SIM_MEMBER_SHARED_DISK, NULL);
    add_flagged(x.p, "good", "{language: go}", SIM_MEMBER_TEMPLATE, NULL);
    add_flagged(x.p, "poor", "{database: mysql}", SIM_MEMBER_TEMPLATE | SIM_MEMBER_SHARED_DISK,
                "x");
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go, database: pg}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1}"),
              0);
    CHECK_STR(cand_name(&x, 1), "best");
    CHECK_NEAR(x.res.cand[1].score, 1, 0);
    CHECK_INT(x.res.cand[1].reason, SIM_SHARED_DISK);
    CHECK_STR(sim_reason_name(SIM_SHARED_DISK), "SharedDisk");
    d = sim_candidate_detail(&x.res.cand[1], &x.po);
    CHECK_STR(d, "volume data uses persistentVolumeClaim db, not one of its own "
                 "dataVolumeTemplates");
    free(d);
    CHECK_STR(selected(&x), "good");
    /* the order of reasons: a member without a template has no disks, and
     * a score below the threshold is said first */
    CHECK_INT(cand(&x, "bare")->reason, SIM_NO_TEMPLATE);
    CHECK_INT(cand(&x, "poor")->reason, SIM_BELOW_THRESHOLD);
    CHECK(cand(&x, "good")->disk == NULL);
    fx_free(&x);
}

TEST(sim_result_refuse_takes_a_candidate_out_and_selects_the_next)
{
    struct fx x = {.p = sim_pool_new()};
    char *d;

    add(x.p, "a", NULL, "{language: go, database: pg}", NULL, 1);
    add(x.p, "b", NULL, "{language: go, database: pg, cache: x}", NULL, 1);
    add(x.p, "c", NULL, "{language: go}", NULL, 0);
    add(x.p, "d", NULL, "{language: go, cache: y}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{language: go, database: pg}", NULL,
                      "\"weights\": {\"language\": 1, \"database\": 1, \"cache\": 1}, "
                      "\"threshold\": 0"),
              0);
    CHECK_STR(selected(&x), "a");
    CHECK_INT(sim_result_refuse(&x.res, 0, SIM_NO_CAPACITY), 0);
    CHECK_INT(x.res.cand[0].reason, SIM_NO_CAPACITY);
    CHECK_STR(selected(&x), "b");
    d = sim_candidate_detail(&x.res.cand[0], &x.po);
    CHECK_STR(d, "its replacement fits no Ready, schedulable node");
    free(d);
    CHECK_STR(sim_reason_name(SIM_NO_CAPACITY), "NoCapacity");
    /* an ineligible candidate keeps its first reason; selected stays */
    CHECK_STR(cand_name(&x, 2), "c");
    CHECK_INT(sim_result_refuse(&x.res, 2, SIM_NO_CAPACITY), 0);
    CHECK_INT(x.res.cand[2].reason, SIM_NO_TEMPLATE);
    CHECK_STR(selected(&x), "b");
    CHECK_INT(sim_result_refuse(&x.res, 1, SIM_NO_CAPACITY), 0);
    CHECK_STR(selected(&x), "d");
    CHECK_INT(sim_result_refuse(&x.res, 3, SIM_NO_CAPACITY), 0);
    CHECK_INT(x.res.selected, -1);
    /* nothing to refuse */
    CHECK_INT(sim_result_refuse(&x.res, 4, SIM_NO_CAPACITY), -EINVAL);
    CHECK_INT(sim_result_refuse(&x.res, 0, SIM_ELIGIBLE), -EINVAL);
    CHECK_INT(sim_result_refuse(&x.res, 0, (enum sim_reason)99), -EINVAL);
    fx_free(&x);
}

TEST(sim_failed_vm_is_left_out_by_name_by_label_and_by_alias)
{
    struct fx x = {.p = sim_pool_new()};

    add(x.p, "vm-a", NULL, "{language: go}", NULL, 1);
    add(x.p, "cm-of-b", "vm-b", "{language: go}", NULL, 1);
    add(x.p, "cm-c", "vm-c", "{language: go}", NULL, 1);
    add(x.p, "other", NULL, "{language: go}", NULL, 1);
    CHECK_INT(fx_rank(&x, "vm-a", NULL, "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_INT(x.res.n, 3);
    CHECK(!cand(&x, "vm-a"));
    CHECK_INT(fx_rank(&x, "vm-b", NULL, "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_INT(x.res.n, 3);
    CHECK(!cand(&x, "cm-of-b"));
    /* read from ConfigMap cm-c: both its name and its label are the failed VM */
    CHECK_INT(fx_rank(&x, "vm-c", "cm-c", "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_INT(x.res.n, 3);
    CHECK(!cand(&x, "cm-c"));
    CHECK_INT(
        fx_rank(&x, "unknown", "other", "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
        0);
    CHECK_INT(x.res.n, 3);
    CHECK(!cand(&x, "other"));
    /* a name no member has leaves every member in */
    CHECK_INT(fx_rank(&x, "nobody", NULL, "{language: go}", NULL, "\"weights\": {\"language\": 1}"),
              0);
    CHECK_INT(x.res.n, 4);
    fx_free(&x);
}

TEST(sim_threshold_is_reached_within_tolerance_and_missed_beyond_it)
{
    struct fx x = {.p = sim_pool_new()};
    char spec[256];
    double s;

    add(x.p, "m", NULL, "{a: x, b: x, c: x}", NULL, 1);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{a: x, b: x, c: y}", NULL,
                      "\"weights\": {\"a\": 0.1, \"b\": 0.2, \"c\": 0.15}, \"mode\": \"Coverage\""),
              0);
    s = cand(&x, "m")->score;
    CHECK_NEAR(s, 2.0 / 3.0, 1e-12);
    /* a threshold a rounding error above the score is still reached */
    snprintf(spec, sizeof(spec),
             "\"weights\": {\"a\": 0.1, \"b\": 0.2, \"c\": 0.15}, \"mode\": \"Coverage\", "
             "\"threshold\": %.17g",
             s + 5e-10);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{a: x, b: x, c: y}", NULL, spec), 0);
    CHECK_INT(cand(&x, "m")->reason, SIM_ELIGIBLE);
    /* one clearly above it is not */
    snprintf(spec, sizeof(spec),
             "\"weights\": {\"a\": 0.1, \"b\": 0.2, \"c\": 0.15}, \"mode\": \"Coverage\", "
             "\"threshold\": %.17g",
             s + 2e-9);
    CHECK_INT(fx_rank(&x, "failed", NULL, "{a: x, b: x, c: y}", NULL, spec), 0);
    CHECK_INT(cand(&x, "m")->reason, SIM_BELOW_THRESHOLD);
    /* threshold 1 with an identical member */
    CHECK_INT(fx_rank(&x, "failed", NULL, "{a: x, b: x, c: x}", NULL,
                      "\"weights\": {\"a\": 0.1, \"b\": 0.2, \"c\": 0.7}, \"threshold\": 1"),
              0);
    CHECK_INT(cand(&x, "m")->reason, SIM_ELIGIBLE);
    fx_free(&x);
}

TEST(sim_duplicate_and_unsorted_query_items_count_once)
{
    struct fx x = {.p = sim_pool_new()};
    struct features a = {0};
    char *err = NULL;

    add(x.p, "m", NULL, "{language: go, database: pg}", NULL, 1);
    CHECK_INT(
        fx_rank(&x, "failed", NULL, NULL, NULL, "\"weights\": {\"language\": 1, \"database\": 1}"),
        0);
    /* built by hand, not sorted: the duplicates must not count twice */
    CHECK_INT(features_add(&a, "language", "go", &err), 0);
    CHECK_INT(features_add(&a, "database", "pg", &err), 0);
    CHECK_INT(features_add(&a, "language", "GO", &err), 0);
    CHECK_INT(features_add(&a, "queue", "kafka", &err), 0);
    CHECK_INT(features_add(&a, "queue", "kafka", &err), 0);
    x.q.features = &a;
    CHECK_INT(sim_rank(x.r, x.p, &x.po, &x.q, &x.res), 0);
    CHECK_NEAR(cand(&x, "m")->score, 1, 0);
    features_free(&a);
    fx_free(&x);
}

TEST(sim_pool_refuses_duplicate_names_and_ranking_before_finish)
{
    struct sim_pool *p = sim_pool_new();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct features f = {0};
    struct policy po;
    struct sim_query q = {"x", NULL, &f};
    size_t i = 99;
    int marker = 0;

    pol(&po, "\"weights\": {\"language\": 1}");
    CHECK_INT(sim_pool_add(p, "b", "vm-b", &f, 1, &marker), 0);
    CHECK_INT(sim_pool_add(p, "a", NULL, &f, 0, NULL), 0);
    CHECK_INT(sim_pool_add(p, "b", NULL, &f, 1, NULL), -EEXIST);
    CHECK_INT(sim_rank(r, p, &po, &q, &res), -EINVAL);
    CHECK_INT(sim_pool_find(p, "a", &i), -ENOENT);
    sim_pool_finish(p);
    CHECK_INT(sim_pool_size(p), 2);
    CHECK_INT(sim_pool_find(p, "b", &i), 0);
    CHECK_INT(i, 1);
    CHECK_STR(sim_pool_name(p, i), "b");
    CHECK_STR(sim_pool_vm(p, i), "vm-b");
    CHECK(sim_pool_data(p, i) == &marker);
    CHECK(sim_pool_vm(p, 0) == NULL);
    CHECK_INT(sim_pool_find(p, "c", &i), -ENOENT);
    CHECK_INT(sim_pool_find(p, "vm-b", &i), -ENOENT);
    CHECK_INT(sim_rank(r, p, &po, &q, &res), 0);
    CHECK_INT(res.n, 2);
    sim_pool_clear(p);
    CHECK_INT(sim_pool_size(p), 0);
    CHECK_INT(sim_pool_add(p, "b", NULL, &f, 1, NULL), 0);
    sim_pool_finish(p);
    CHECK_INT(sim_rank(r, p, &po, &q, &res), 0);
    CHECK_INT(res.n, 1);
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
    policy_free(&po);
}

TEST(sim_ranker_and_result_are_reused_without_growing)
{
    struct fx x = {.p = paper_pool()};
    struct sim_pool *small = sim_pool_new();
    struct sim_candidate *first;

    CHECK_INT(fx_rank(&x, "vm-001", NULL, VM001, NULL, PAPER_WEIGHTS), 0);
    first = x.res.cand;
    CHECK_INT(sim_rank(x.r, x.p, &x.po, &x.q, &x.res), 0);
    CHECK(x.res.cand == first);
    CHECK_STR(selected(&x), "vm-005");
    /* the same ranker on another pool, then back: no stale stamps */
    add(small, "vm-005", NULL, "{language: cobol}", NULL, 1);
    sim_pool_finish(small);
    CHECK_INT(sim_rank(x.r, small, &x.po, &x.q, &x.res), 0);
    CHECK_INT(x.res.n, 1);
    CHECK_NEAR(x.res.cand[0].score, 0, 0);
    CHECK_INT(sim_rank(x.r, x.p, &x.po, &x.q, &x.res), 0);
    CHECK_NEAR(x.res.cand[0].score, 2.0 / 3.0, 1e-12);
    sim_pool_free(small);
    fx_free(&x);
}

TEST(sim_reason_names_and_round6)
{
    CHECK_STR(sim_reason_name(SIM_ELIGIBLE), "");
    CHECK_STR(sim_reason_name(SIM_REQUIRED_MISMATCH), "RequiredMismatch");
    CHECK_STR(sim_reason_name(SIM_BELOW_THRESHOLD), "BelowThreshold");
    CHECK_STR(sim_reason_name(SIM_NO_TEMPLATE), "NoTemplate");
    CHECK_STR(sim_reason_name(SIM_SHARED_DISK), "SharedDisk");
    CHECK_STR(sim_reason_name(SIM_NO_CAPACITY), "NoCapacity");
    CHECK_NEAR(sim_round6(2.0 / 3.0), 0.666667, 0);
    CHECK_NEAR(sim_round6(1.0 / 3.0), 0.333333, 0);
    CHECK_NEAR(sim_round6(1), 1, 0);
}

/* ---- properties over generated pools ---- */

/* xorshift64*: a fixed seed gives the same pools on every run. */
static uint64_t rng_state;

static uint32_t rng(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}

static const char *const gen_cats[] = {"os", "language", "database", "webserver", "cache", "queue"};
static const char *const gen_vals[] = {"a", "b", "c", "d", "e"};

/* A random feature set: up to 8 items over 6 categories, random resources. */
static void gen_features(struct features *f)
{
    char *err = NULL;
    size_t n = rng(9);

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++)
        if (features_add(f, gen_cats[rng(6)], gen_vals[rng(5)], &err))
            abort();
    for (int r = 0; r < FEATURES_NRES; r++) {
        if (rng(3)) {
            f->res[r] = rng(4) ? (double)(1 + rng(64)) : 0;
            f->has_res |= 1u << r;
        }
    }
    if (rng(2))
        features_sort(f);
}

/* A random policy: random weights (some 0), mode, maybe a required category. */
static void gen_policy(struct policy *po, int coverage)
{
    static const char *const cats[] = {"os",    "language", "database", "webserver", "cache",
                                       "queue", "cpu",      "memory",   "disk"};
    char spec[1024];
    size_t len = 0;

    len +=
        (size_t)snprintf(spec + len, sizeof(spec) - len, "\"weights\": {\"os\": %u", 1 + rng(10));
    for (size_t i = 1; i < 9; i++)
        if (rng(4))
            len += (size_t)snprintf(spec + len, sizeof(spec) - len, ", \"%s\": %g", cats[i],
                                    rng(5) * 0.25);
    len +=
        (size_t)snprintf(spec + len, sizeof(spec) - len, "}, \"mode\": \"%s\", \"threshold\": %g",
                         coverage ? "Coverage" : "Jaccard", rng(11) / 10.0);
    if (!rng(4))
        snprintf(spec + len, sizeof(spec) - len, ", \"required\": [\"%s\"]", cats[rng(9)]);
    pol(po, spec);
}

/* The score of b for a, alone in a pool. */
static double score_pair(const struct policy *po, const struct features *a,
                         const struct features *b)
{
    struct sim_pool *p = sim_pool_new();
    struct sim_ranker *r = sim_ranker_new();
    struct sim_result res = {0};
    struct sim_query q = {"a", NULL, a};
    double s = -1;

    if (sim_pool_add(p, "b", NULL, b, 1, NULL))
        abort();
    sim_pool_finish(p);
    if (sim_rank(r, p, po, &q, &res) == 0 && res.n == 1)
        s = res.cand[0].score;
    sim_result_free(&res);
    sim_ranker_free(r);
    sim_pool_free(p);
    return s;
}

TEST(sim_property_scores_in_unit_interval_and_jaccard_symmetric)
{
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 400; round++) {
        struct features a, b;
        struct policy pj, pc;
        double ab, ba, cov;

        gen_features(&a);
        gen_features(&b);
        gen_policy(&pj, 0);
        gen_policy(&pc, 1);
        ab = score_pair(&pj, &a, &b);
        ba = score_pair(&pj, &b, &a);
        cov = score_pair(&pc, &a, &b);
        if (!(ab >= 0 && ab <= 1 && cov >= 0 && cov <= 1) || ab != ba)
            fprintf(stderr, "round %d: jaccard %.17g / %.17g, coverage %.17g\n", round, ab, ba,
                    cov);
        features_free(&a);
        features_free(&b);
        policy_free(&pj);
        policy_free(&pc);
        CHECK(ab >= 0 && ab <= 1);
        CHECK(cov >= 0 && cov <= 1);
        /* exactly symmetric, not merely close */
        CHECK(ab == ba);
    }
}

TEST(sim_property_identical_member_scores_one)
{
    rng_state = 0x2545f4914f6cdd1dull;
    for (int round = 0; round < 400; round++) {
        struct features a;
        struct policy po;
        double s;
        int weighted = 0;

        gen_features(&a);
        gen_policy(&po, round & 1);
        s = score_pair(&po, &a, &a);
        /* with nothing weighted on either side the denominator is empty */
        for (size_t i = 0; i < a.n; i++)
            weighted |= policy_weight(&po, a.items[i].category) > 0;
        for (int r = 0; r < FEATURES_NRES; r++)
            weighted |= (a.has_res & (1u << r)) &&
                        policy_weight(&po, features_res_name((enum features_res)r)) > 0;
        features_free(&a);
        policy_free(&po);
        if (weighted)
            CHECK_NEAR(s, 1.0, 0);
        else
            CHECK_NEAR(s, 0.0, 0);
    }
}

TEST(sim_property_ranking_independent_of_pool_order)
{
    enum { N = 60 };

    rng_state = 0xdeadbeefcafef00dull;
    for (int round = 0; round < 40; round++) {
        struct features f[N], a;
        char names[N][24];
        uint32_t order[N];
        struct sim_pool *p1 = sim_pool_new(), *p2 = sim_pool_new();
        struct sim_ranker *r = sim_ranker_new();
        struct sim_result r1 = {0}, r2 = {0};
        struct policy po;
        struct sim_query q;
        int same = 1;

        for (uint32_t i = 0; i < N; i++) {
            gen_features(&f[i]);
            /* unique, in an order unrelated to i */
            snprintf(names[i], sizeof(names[i]), "m-%03u-%02u", (unsigned)rng(1000), (unsigned)i);
            order[i] = i;
        }
        gen_features(&a);
        gen_policy(&po, round & 1);
        for (uint32_t i = N - 1; i > 0; i--) {
            uint32_t j = rng(i + 1), t = order[i];

            order[i] = order[j];
            order[j] = t;
        }
        for (uint32_t i = 0; i < N; i++)
            CHECK_INT(sim_pool_add(p1, names[i], NULL, &f[i], (int)(i % 5), NULL), 0);
        for (uint32_t i = 0; i < N; i++)
            CHECK_INT(
                sim_pool_add(p2, names[order[i]], NULL, &f[order[i]], (int)(order[i] % 5), NULL),
                0);
        sim_pool_finish(p1);
        sim_pool_finish(p2);
        q = (struct sim_query){names[0], NULL, &a};
        if (sim_rank(r, p1, &po, &q, &r1) || sim_rank(r, p2, &po, &q, &r2))
            same = 0;
        same &= r1.n == r2.n && r1.selected == r2.selected;
        for (size_t i = 0; same && i < r1.n; i++)
            same &= strcmp(sim_pool_name(p1, r1.cand[i].member),
                           sim_pool_name(p2, r2.cand[i].member)) == 0 &&
                    r1.cand[i].score == r2.cand[i].score && r1.cand[i].reason == r2.cand[i].reason;
        /* and the order is the contract's: score descending, then name */
        for (size_t i = 1; same && i < r1.n; i++)
            same &= r1.cand[i - 1].score > r1.cand[i].score ||
                    (r1.cand[i - 1].score == r1.cand[i].score &&
                     strcmp(sim_pool_name(p1, r1.cand[i - 1].member),
                            sim_pool_name(p1, r1.cand[i].member)) < 0);
        for (uint32_t i = 0; i < N; i++)
            features_free(&f[i]);
        features_free(&a);
        policy_free(&po);
        sim_result_free(&r1);
        sim_result_free(&r2);
        sim_ranker_free(r);
        sim_pool_free(p1);
        sim_pool_free(p2);
        CHECK(same);
    }
}
