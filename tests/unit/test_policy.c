/*
 * policy: RecoveryPolicy validation (every error names its field), defaults,
 * API server objects, and label selectors.
 */
#include "harness.h"
#include "model_test.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sim/policy.h"

#define SELECTORS                                                                                  \
    "  selector: {matchLabels: {app: shop}}\n  poolSelector: {matchLabels: {kvrecover.io/pool: "   \
    "web}}\n"
#define WEIGHTS "  weights: {language: 0.3, database: 0.2, webserver: 0.1}\n"

/* Parses a RecoveryPolicy's YAML; returns policy_from_json()'s rc. On error
 * *msg holds the message (the caller frees); on success *p is filled. */
static int parse(const char *yaml, struct policy *p, char **msg)
{
    cJSON *d = mt_doc(yaml);
    int rc = policy_from_json(d, p, msg);

    cJSON_Delete(d);
    return rc;
}

/* The policy of SELECTORS and WEIGHTS only: every default. */
static int parse_ok_default(struct policy *p)
{
    char *msg = NULL;
    int rc = parse("spec:\n" SELECTORS WEIGHTS, p, &msg);

    free(msg);
    return rc;
}

/* Whether a whole document fails with want. */
static int doc_error_is(const char *yaml, const char *want)
{
    char *msg = NULL;
    struct policy p;
    int rc = parse(yaml, &p, &msg), ok;

    ok = rc == -EINVAL && msg && strcmp(msg, want) == 0;
    if (!ok)
        fprintf(stderr, "for %s: rc %d, message \"%s\", want \"%s\"\n", yaml, rc,
                msg ? msg : "(none)", want);
    if (rc == 0)
        policy_free(&p);
    free(msg);
    return ok;
}

/* Whether a spec of SELECTORS, WEIGHTS and extra lines fails with want. */
static int spec_error_is(const char *extra, const char *want)
{
    size_t n = strlen(extra) + 512;
    char *yaml = malloc(n);
    int ok;

    /* extra may bring its own weights */
    snprintf(yaml, n, "spec:\n" SELECTORS "%s%s", strstr(extra, "weights:") ? "" : WEIGHTS, extra);
    ok = doc_error_is(yaml, want);
    free(yaml);
    return ok;
}

TEST(policy_contract_example_reads_every_field)
{
    struct policy p;
    char *msg = NULL;

    CHECK_INT(parse("apiVersion: kvrecover.io/v1alpha1\n"
                    "kind: RecoveryPolicy\n"
                    "metadata: {name: web, namespace: shop}\n"
                    "spec:\n" SELECTORS WEIGHTS "  threshold: 0.6\n"
                    "  mode: Coverage\n"
                    "  required: [OS, ' os ', arch]\n"
                    "  action: DryRun\n"
                    "  capture: false\n"
                    "  trigger: {crashLoopThreshold: 5, restartTimeoutSeconds: 0,\n"
                    "            nodeLossSeconds: 120, immediate: true}\n"
                    "  stormLimit: 2\n"
                    "  serviceAccountName: recoverer\n",
                    &p, &msg),
              0);
    CHECK_STR(p.name, "web");
    CHECK_STR(p.namespace, "shop");
    CHECK_INT(p.nweights, 3);
    CHECK_STR(p.weights[0].category, "language");
    CHECK_NEAR(p.weights[0].weight, 0.3, 0);
    CHECK_STR(p.weights[2].category, "webserver");
    CHECK_NEAR(p.threshold, 0.6, 0);
    CHECK_INT(p.mode, POLICY_COVERAGE);
    /* normalised and de-duplicated */
    CHECK_INT(p.nrequired, 2);
    CHECK_STR(p.required[0], "os");
    CHECK_STR(p.required[1], "arch");
    CHECK_INT(p.action, POLICY_DRYRUN);
    CHECK_INT(p.capture, 0);
    CHECK_INT(p.trigger.crash_loop_threshold, 5);
    CHECK_INT(p.trigger.restart_timeout_seconds, 0);
    CHECK_INT(p.trigger.node_loss_seconds, 120);
    CHECK_INT(p.trigger.immediate, 1);
    CHECK_INT(p.storm.percent, 0);
    CHECK_INT(p.storm.value, 2);
    CHECK_STR(p.service_account, "recoverer");
    CHECK_INT(p.selector.nlabels, 1);
    CHECK_STR(p.pool_selector.keys[0], "kvrecover.io/pool");
    CHECK_STR(p.pool_selector.values[0], "web");
    CHECK_NEAR(policy_weight(&p, "database"), 0.2, 0);
    CHECK_NEAR(policy_weight(&p, "os"), 0, 0);
    CHECK_STR(policy_mode_name(p.mode), "Coverage");
    CHECK_STR(policy_action_name(p.action), "DryRun");
    policy_free(&p);
    CHECK_INT(p.nweights, 0);
    policy_free(&p);
    policy_free(NULL);
}

TEST(policy_defaults_follow_the_crd)
{
    struct policy p;
    char *msg = NULL;

    CHECK_INT(parse("spec:\n" SELECTORS WEIGHTS, &p, &msg), 0);
    CHECK(p.name == NULL);
    CHECK_NEAR(p.threshold, 0.5, 0);
    CHECK_INT(p.mode, POLICY_JACCARD);
    CHECK_INT(p.action, POLICY_RECREATE);
    CHECK_INT(p.capture, 1);
    CHECK_INT(p.trigger.crash_loop_threshold, 3);
    CHECK_INT(p.trigger.restart_timeout_seconds, 300);
    CHECK_INT(p.trigger.node_loss_seconds, 300);
    CHECK_INT(p.trigger.immediate, 0);
    CHECK_INT(p.storm.percent, 1);
    CHECK_INT(p.storm.value, 50);
    CHECK(p.service_account == NULL);
    CHECK_INT(p.nrequired, 0);
    CHECK_STR(policy_mode_name(p.mode), "Jaccard");
    CHECK_STR(policy_action_name(p.action), "Recreate");
    policy_free(&p);
}

TEST(policy_reads_an_object_as_the_api_server_returns_it)
{
    static const char *const json =
        "{\"apiVersion\":\"kvrecover.io/v1alpha1\",\"kind\":\"RecoveryPolicy\","
        "\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\",\"uid\":\"0b1c\","
        "\"resourceVersion\":\"4711\",\"generation\":3,"
        "\"creationTimestamp\":\"2026-11-25T19:00:00Z\","
        "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"},"
        "\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\","
        "\"apiVersion\":\"kvrecover.io/v1alpha1\",\"fieldsType\":\"FieldsV1\","
        "\"fieldsV1\":{\"f:spec\":{}}}]},"
        "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"shop\"}},"
        "\"poolSelector\":{\"matchExpressions\":[{\"key\":\"kvrecover.io/pool\","
        "\"operator\":\"In\",\"values\":[\"web\"]}]},"
        "\"weights\":{\"language\":0.3},\"threshold\":0.5,\"mode\":\"Jaccard\","
        "\"action\":\"Recreate\",\"capture\":true,\"trigger\":{\"crashLoopThreshold\":3,"
        "\"restartTimeoutSeconds\":300,\"nodeLossSeconds\":300,\"immediate\":false},"
        "\"stormLimit\":\"50%\"},"
        "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
        "\"observedGeneration\":3,\"recoveries\":2}}";
    cJSON *d = cJSON_Parse(json);
    struct policy p;
    char *msg = NULL;

    CHECK(d);
    CHECK_INT(policy_from_json(d, &p, &msg), 0);
    CHECK_STR(p.name, "web");
    CHECK_INT(p.pool_selector.nexprs, 1);
    CHECK_INT(p.pool_selector.exprs[0].op, POLICY_OP_IN);
    CHECK_STR(p.pool_selector.exprs[0].values[0], "web");
    policy_free(&p);
    cJSON_Delete(d);
}

TEST(policy_weights_must_be_finite_and_not_negative)
{
    CHECK(spec_error_is("  weights: {language: -0.1}\n",
                        "spec.weights.language: must be a finite number >= 0"));
    CHECK(spec_error_is("  weights: {language: .nan}\n",
                        "spec.weights.language: must be a finite number >= 0"));
    CHECK(spec_error_is("  weights: {language: .inf}\n",
                        "spec.weights.language: must be a finite number >= 0"));
    CHECK(spec_error_is("  weights: {language: -.inf}\n",
                        "spec.weights.language: must be a finite number >= 0"));
    CHECK(spec_error_is("  weights: {language: high}\n",
                        "spec.weights.language: must be a finite number >= 0"));
    CHECK(spec_error_is("  weights: {Language: 1, language: 2}\n",
                        "spec.weights.language: the category \"language\" is given twice"));
    CHECK(spec_error_is("  weights: {' ': 1}\n", "spec.weights.\" \": the category name is empty"));
    CHECK(spec_error_is("  weights: [language]\n",
                        "spec.weights: must be a mapping of category to weight, not a list"));
    /* as the CRD: one weight at least must count */
    CHECK(spec_error_is("  weights: {language: 0, os: 0}\n",
                        "spec.weights: at least one category needs a weight > 0"));
    CHECK(
        spec_error_is("  weights: {}\n", "spec.weights: at least one category needs a weight > 0"));
}

/* weights given once in the spec only: SELECTORS without WEIGHTS */
TEST(policy_weights_are_required)
{
    CHECK(doc_error_is("spec:\n" SELECTORS, "spec.weights: required"));
    CHECK(doc_error_is("spec:\n" SELECTORS "  weights: null\n", "spec.weights: required"));
}

TEST(policy_threshold_must_be_in_unit_interval)
{
    CHECK(spec_error_is("  threshold: -0.1\n", "spec.threshold: must be a number in [0, 1]"));
    CHECK(spec_error_is("  threshold: 1.01\n", "spec.threshold: must be a number in [0, 1]"));
    CHECK(spec_error_is("  threshold: .nan\n", "spec.threshold: must be a number in [0, 1]"));
    CHECK(spec_error_is("  threshold: .inf\n", "spec.threshold: must be a number in [0, 1]"));
    CHECK(spec_error_is("  threshold: '0.5'\n", "spec.threshold: must be a number in [0, 1]"));
}

TEST(policy_threshold_bounds_are_allowed)
{
    struct policy p;
    char *msg = NULL;

    CHECK_INT(parse("spec:\n" SELECTORS WEIGHTS "  threshold: 0\n", &p, &msg), 0);
    CHECK_NEAR(p.threshold, 0, 0);
    policy_free(&p);
    CHECK_INT(parse("spec:\n" SELECTORS WEIGHTS "  threshold: 1\n", &p, &msg), 0);
    CHECK_NEAR(p.threshold, 1, 0);
    policy_free(&p);
}

TEST(policy_mode_and_action_are_case_sensitive_enums)
{
    CHECK(spec_error_is("  mode: jaccard\n",
                        "spec.mode: must be Jaccard or Coverage, not \"jaccard\""));
    CHECK(spec_error_is("  mode: Cosine\n",
                        "spec.mode: must be Jaccard or Coverage, not \"Cosine\""));
    CHECK(spec_error_is("  mode: 1\n", "spec.mode: must be Jaccard or Coverage, not a number"));
    CHECK(spec_error_is("  action: Delete\n",
                        "spec.action: must be Recreate or DryRun, not \"Delete\""));
    CHECK(spec_error_is("  action: [DryRun]\n",
                        "spec.action: must be Recreate or DryRun, not a list"));
}

TEST(policy_selectors_are_required_and_not_empty)
{
    CHECK(doc_error_is("spec:\n  poolSelector: {matchLabels: {a: b}}\n" WEIGHTS,
                       "spec.selector: required"));
    CHECK(doc_error_is("spec:\n  selector: {matchLabels: {a: b}}\n" WEIGHTS,
                       "spec.poolSelector: required"));
    CHECK(doc_error_is("spec:\n  selector: {}\n  poolSelector: {matchLabels: {a: b}}\n" WEIGHTS,
                       "spec.selector: must not be empty: set matchLabels or matchExpressions"));
    CHECK(doc_error_is("spec:\n  selector: {matchLabels: {a: b}}\n  poolSelector: {}\n" WEIGHTS,
                       "spec.poolSelector: must not be empty: set matchLabels or "
                       "matchExpressions"));
    CHECK(doc_error_is("spec:\n  selector: x\n  poolSelector: {matchLabels: {a: b}}\n" WEIGHTS,
                       "spec.selector: must be a mapping, not a string"));
}

TEST(policy_controller_fields_are_validated)
{
    CHECK(spec_error_is("  capture: 'yes'\n", "spec.capture: must be true or false, not a string"));
    CHECK(spec_error_is("  trigger: 3\n", "spec.trigger: must be a mapping, not a number"));
    CHECK(spec_error_is("  trigger: {crashLoop: 3}\n", "spec.trigger.crashLoop: unknown field"));
    CHECK(spec_error_is("  trigger: {crashLoopThreshold: 0}\n",
                        "spec.trigger.crashLoopThreshold: must be an integer in [1, 2147483647]"));
    CHECK(spec_error_is("  trigger: {crashLoopThreshold: 2.5}\n",
                        "spec.trigger.crashLoopThreshold: must be an integer in [1, 2147483647]"));
    CHECK(spec_error_is("  trigger: {restartTimeoutSeconds: -1}\n",
                        "spec.trigger.restartTimeoutSeconds: must be an integer in [0, "
                        "2147483647]"));
    CHECK(spec_error_is("  trigger: {nodeLossSeconds: 2147483648}\n",
                        "spec.trigger.nodeLossSeconds: must be an integer in [0, 2147483647]"));
    CHECK(spec_error_is("  trigger: {nodeLossSeconds: '300'}\n",
                        "spec.trigger.nodeLossSeconds: must be an integer in [0, 2147483647]"));
    CHECK(spec_error_is("  trigger: {immediate: 1}\n",
                        "spec.trigger.immediate: must be true or false, not a number"));
}

/* What replaced the two removed fields is in the message, so that an admin
 * with an old policy knows what to write instead. */
TEST(policy_removed_fields_are_refused_with_what_replaced_them)
{
    CHECK(spec_error_is("  haltFailed: false\n",
                        "spec.haltFailed: removed: kvrecover now always halts the failed VM "
                        "before it creates the replacement; delete the field"));
    CHECK(spec_error_is("  unknownGracePeriodSeconds: 60\n",
                        "spec.unknownGracePeriodSeconds: removed: KubeVirt never sets phase "
                        "Unknown; use spec.trigger.nodeLossSeconds (a lost node) and "
                        "spec.trigger.restartTimeoutSeconds (a VM KubeVirt cannot start)"));
    /* even null: the field is there, written for the old controller */
    CHECK(spec_error_is("  haltFailed: null\n",
                        "spec.haltFailed: removed: kvrecover now always halts the failed VM "
                        "before it creates the replacement; delete the field"));
}

TEST(policy_storm_limit_is_a_count_or_a_share)
{
    static const char want[] =
        "spec.stormLimit: must be a count (an integer >= 1) or a share (\"0%\" to \"100%\"), not ";
    char buf[256];

    snprintf(buf, sizeof(buf), "%s0", want);
    CHECK(spec_error_is("  stormLimit: 0\n", buf));
    snprintf(buf, sizeof(buf), "%s1.5", want);
    CHECK(spec_error_is("  stormLimit: 1.5\n", buf));
    snprintf(buf, sizeof(buf), "%s\"101%%\"", want);
    CHECK(spec_error_is("  stormLimit: 101%\n", buf));
    snprintf(buf, sizeof(buf), "%s\"50\"", want);
    CHECK(spec_error_is("  stormLimit: '50'\n", buf));
    snprintf(buf, sizeof(buf), "%s\"12.5%%\"", want);
    CHECK(spec_error_is("  stormLimit: 12.5%\n", buf));
    snprintf(buf, sizeof(buf), "%s\"%%\"", want);
    CHECK(spec_error_is("  stormLimit: '%'\n", buf));
    snprintf(buf, sizeof(buf), "%s\"0100%%\"", want);
    CHECK(spec_error_is("  stormLimit: 0100%\n", buf));
    snprintf(buf, sizeof(buf), "%sa list", want);
    CHECK(spec_error_is("  stormLimit: [1]\n", buf));
}

/* A policy with stormLimit given as YAML text; 0 and *out on success. */
static int storm_policy(const char *limit, struct policy *out)
{
    char yaml[512];
    char *msg = NULL;
    int rc;

    snprintf(yaml, sizeof(yaml), "spec:\n" SELECTORS WEIGHTS "  stormLimit: %s\n", limit);
    rc = parse(yaml, out, &msg);
    if (rc)
        fprintf(stderr, "stormLimit %s: %s\n", limit, msg);
    free(msg);
    return rc;
}

/* CONTRACT.md's examples: "1 of 1: limit 1; 2 of 4: no storm; 3 of 4: storm". */
TEST(policy_storm_limit_rounds_a_share_up_and_never_below_one)
{
    struct policy p;

    CHECK_INT(parse_ok_default(&p), 0);
    CHECK_INT(policy_storm_limit(&p, 1), 1);
    CHECK_INT(policy_storm_limit(&p, 4), 2); /* 2 of 4 down: 2 <= 2, no storm; 3 > 2 */
    CHECK_INT(policy_storm_limit(&p, 3), 2); /* 1.5 rounds up */
    CHECK_INT(policy_storm_limit(&p, 0), 1);
    CHECK_INT(policy_storm_limit(&p, 1000001), 500001);
    policy_free(&p);
    CHECK_INT(storm_policy("'0%'", &p), 0);
    CHECK_INT(policy_storm_limit(&p, 100), 1); /* one VM down is never a storm */
    policy_free(&p);
    CHECK_INT(storm_policy("100%", &p), 0);
    CHECK_INT(policy_storm_limit(&p, 7), 7);
    policy_free(&p);
    CHECK_INT(storm_policy("1%", &p), 0);
    CHECK_INT(policy_storm_limit(&p, 101), 2);
    policy_free(&p);
    CHECK_INT(storm_policy("3", &p), 0);
    CHECK_INT(policy_storm_limit(&p, 1), 3);
    CHECK_INT(policy_storm_limit(&p, 100), 3);
    policy_free(&p);
}

TEST(policy_service_account_must_be_a_dns_subdomain)
{
    static const char *const bad[] = {"Recoverer", "-a",  "a-", "a..b", ".a",
                                      "a.",        "a_b", "",   "a.-b", "a b"};
    char yaml[512], want[512];
    char long_ok[254], long_bad[255];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(yaml, sizeof(yaml), "  serviceAccountName: '%s'\n", bad[i]);
        snprintf(want, sizeof(want),
                 "spec.serviceAccountName: must be a ServiceAccount name (a DNS-1123 subdomain: "
                 "lower-case letters, digits, '-' and '.', at most 253), not \"%s\"",
                 bad[i]);
        CHECK(spec_error_is(yaml, want));
    }
    CHECK(spec_error_is("  serviceAccountName: 3\n",
                        "spec.serviceAccountName: must be a ServiceAccount name (a DNS-1123 "
                        "subdomain: lower-case letters, digits, '-' and '.', at most 253), not a "
                        "number"));
    memset(long_ok, 'a', sizeof(long_ok) - 1);
    long_ok[sizeof(long_ok) - 1] = '\0';
    memset(long_bad, 'a', sizeof(long_bad) - 1);
    long_bad[sizeof(long_bad) - 1] = '\0';
    CHECK(policy_is_dns_subdomain(long_ok));
    CHECK(!policy_is_dns_subdomain(long_bad));
    CHECK(policy_is_dns_subdomain("a"));
    CHECK(policy_is_dns_subdomain("kv-recover.team-1"));
    CHECK(policy_is_dns_subdomain("a--b"));
    CHECK(policy_is_dns_subdomain("0"));
}

TEST(policy_label_selector_is_checked_before_the_api_sees_it)
{
    static const char *const good[] = {"a",
                                       "!a",
                                       "a=b",
                                       "a==b",
                                       "a!=b",
                                       "a=",
                                       "e2e.kvrecover.io/run=42-x",
                                       "a=b,c!=d,!e,f",
                                       "A_b.c-D=x.Y_z",
                                       "x/y"};
    static const char *const bad[] = {"",         "a b",  "a=b,",  ",a",   "a=b=c", "a!b",  "!a=b",
                                      "a in (b)", "=b",   "-a=b",  "a-=b", "a=-b",  "/a",   "a/",
                                      "A/b",      "a//b", "a=b c", "!",    "a,,b",  "a=b\n"};
    char long_name[80], long_text[POLICY_SELECTOR_TEXT_MAX + 2];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!policy_is_label_selector(good[i]))
            harness_fail(__FILE__, __LINE__, "refused: \"%s\"", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (policy_is_label_selector(bad[i]))
            harness_fail(__FILE__, __LINE__, "taken: \"%s\"", bad[i]);
    CHECK(!policy_is_label_selector(NULL));
    /* a name is at most 63 */
    memset(long_name, 'a', 63);
    long_name[63] = '\0';
    CHECK(policy_is_label_selector(long_name));
    long_name[63] = 'a';
    long_name[64] = '\0';
    CHECK(!policy_is_label_selector(long_name));
    /* the whole text is bounded: "a,a,...,a" past the limit */
    for (size_t i = 0; i < sizeof(long_text) - 1; i++)
        long_text[i] = i % 2 ? ',' : 'a';
    long_text[sizeof(long_text) - 1] = '\0';
    if (long_text[sizeof(long_text) - 2] == ',')
        long_text[sizeof(long_text) - 2] = 'a';
    CHECK(!policy_is_label_selector(long_text));
    long_text[POLICY_SELECTOR_TEXT_MAX - 1] = '\0';
    if (long_text[POLICY_SELECTOR_TEXT_MAX - 2] == ',')
        long_text[POLICY_SELECTOR_TEXT_MAX - 2] = '\0';
    CHECK(policy_is_label_selector(long_text));
}

TEST(policy_required_entries_are_non_empty_strings)
{
    CHECK(spec_error_is("  required: os\n",
                        "spec.required: must be a list of categories, not a string"));
    CHECK(
        spec_error_is("  required: [os, 3]\n", "spec.required[1]: must be a string, not a number"));
    CHECK(spec_error_is("  required: [os, '  ']\n", "spec.required[1]: must not be empty"));
}

TEST(policy_unknown_fields_and_wrong_envelopes_are_refused)
{
    CHECK(spec_error_is("  treshold: 0.5\n", "spec.treshold: unknown field"));
    CHECK(spec_error_is("  'a b': 1\n", "spec.\"a b\": unknown field"));
    CHECK(doc_error_is("apiVersion: v1\nspec: {}\n", "apiVersion: must be kvrecover.io/v1alpha1"));
    CHECK(doc_error_is("kind: ConfigMap\nspec: {}\n", "kind: must be RecoveryPolicy"));
    CHECK(doc_error_is("metadata: [x]\nspec: {}\n", "metadata: must be a mapping, not a list"));
    CHECK(doc_error_is("metadata: {name: 3}\nspec: {}\n",
                       "metadata.name: must be a string, not a number"));
    CHECK(doc_error_is("metadata: {name: x}\n", "spec: required"));
    CHECK(doc_error_is("spec: [x]\n", "spec: must be a mapping, not a list"));
    CHECK(doc_error_is("[x]\n", "a RecoveryPolicy must be a mapping, not a list"));
}

/* Whether a selector with these matchExpressions items (flow YAML, one per
 * line) fails with want. */
static int exprs_error_is(const char *items, const char *want)
{
    char yaml[512];

    snprintf(yaml, sizeof(yaml),
             "spec:\n  selector:\n    matchExpressions:\n%s"
             "  poolSelector: {matchLabels: {a: b}}\n" WEIGHTS,
             items);
    return doc_error_is(yaml, want);
}

TEST(policy_selector_expressions_are_validated)
{
    CHECK(exprs_error_is("      - {key: app, operator: In}\n",
                         "spec.selector.matchExpressions[0].values: required (non-empty) for In"));
    CHECK(exprs_error_is("      - {key: app, operator: Exists}\n"
                         "      - {key: app, operator: Exists, values: [x]}\n",
                         "spec.selector.matchExpressions[1].values: must be empty for Exists"));
    CHECK(exprs_error_is("      - {key: app, operator: in, values: [x]}\n",
                         "spec.selector.matchExpressions[0].operator: must be In, NotIn, Exists "
                         "or DoesNotExist"));
    CHECK(exprs_error_is("      - {operator: Exists}\n",
                         "spec.selector.matchExpressions[0].key: required"));
    CHECK(exprs_error_is("      - {key: app, operator: NotIn, values: [1]}\n",
                         "spec.selector.matchExpressions[0].values[0]: must be a string, not a "
                         "number"));
    CHECK(exprs_error_is("      - {key: app, operator: Exists, extra: 1}\n",
                         "spec.selector.matchExpressions[0].extra: unknown field"));
    CHECK(exprs_error_is("      - {key: '', operator: Exists}\n",
                         "spec.selector.matchExpressions[0].key: must be a non-empty string"));
    CHECK(doc_error_is("spec:\n  selector: {matchLabels: {app: 3}}\n  poolSelector: {matchLabels: "
                       "{a: b}}\n" WEIGHTS,
                       "spec.selector.matchLabels.app: must be a string, not a number"));
    CHECK(doc_error_is("spec:\n  selector: {matchLabel: {app: x}}\n  poolSelector: {matchLabels: "
                       "{a: b}}\n" WEIGHTS,
                       "spec.selector.matchLabel: unknown field"));
}

/* Whether the selector in YAML matches the labels in YAML. */
static int matches(const char *sel_yaml, const char *labels_yaml)
{
    cJSON *s = mt_doc(sel_yaml), *l = mt_doc(labels_yaml);
    struct policy_selector sel;
    char *err = NULL;
    int m = -1;

    if (policy_parse_selector(s, "sel", &sel, &err) == 0) {
        m = policy_selector_matches(&sel, l);
        policy_selector_free(&sel);
    } else {
        fprintf(stderr, "selector %s: %s\n", sel_yaml, err);
        free(err);
    }
    cJSON_Delete(s);
    cJSON_Delete(l);
    return m;
}

TEST(policy_selector_matching_follows_kubernetes)
{
    CHECK_INT(matches("{}", "{a: b}"), 1);
    CHECK_INT(matches("{}", "null"), 1);
    CHECK_INT(matches("{matchLabels: {a: b}}", "{a: b, c: d}"), 1);
    CHECK_INT(matches("{matchLabels: {a: b}}", "{a: c}"), 0);
    CHECK_INT(matches("{matchLabels: {a: b}}", "null"), 0);
    CHECK_INT(matches("{matchLabels: {a: b, c: d}}", "{a: b}"), 0);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: In, values: [x, y]}]}", "{a: y}"), 1);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: In, values: [x, y]}]}", "{a: z}"), 0);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: In, values: [x]}]}", "{}"), 0);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: NotIn, values: [x]}]}", "{}"), 1);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: NotIn, values: [x]}]}", "{a: x}"), 0);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: Exists}]}", "{a: ''}"), 1);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: Exists}]}", "{b: x}"), 0);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: DoesNotExist}]}", "{b: x}"), 1);
    CHECK_INT(matches("{matchExpressions: [{key: a, operator: DoesNotExist}]}", "{a: x}"), 0);
    /* a label value that is not a string never matches */
    CHECK_INT(matches("{matchLabels: {a: '1'}}", "{a: 1}"), 0);
    /* matchLabels and matchExpressions are ANDed */
    CHECK_INT(
        matches("{matchLabels: {a: b}, matchExpressions: [{key: c, operator: Exists}]}", "{a: b}"),
        0);
}

TEST(policy_weights_are_bounded_decimals)
{
    struct policy p;
    char *msg = NULL;
    cJSON *spec;

    CHECK(spec_error_is("  weights: {language: 1000.5}\n",
                        "spec.weights.language: must be at most 1000, not 1000.5"));
    CHECK(spec_error_is("  weights: {language: 1.7e308}\n",
                        "spec.weights.language: must be at most 1000, not 1.7e+308"));
    CHECK(spec_error_is("  weights: {language: 0.1234567891}\n",
                        "spec.weights.language: at most 9 digits after the decimal point, not "
                        "\"0.1234567891\""));
    /* the text decides: this reads as the double of 0.1, but was not written so */
    CHECK(spec_error_is("  weights: {language: 0.1000000000000000000001}\n",
                        "spec.weights.language: at most 9 digits after the decimal point, not "
                        "\"0.1000000000000000000001\""));
    CHECK(spec_error_is("  threshold: 0.5000000001\n",
                        "spec.threshold: at most 9 digits after the decimal point, not "
                        "\"0.5000000001\""));
    /* from the API server, JSON: only the double is there */
    spec = cJSON_Parse("{\"selector\": {\"matchLabels\": {\"a\": \"b\"}}, \"poolSelector\": "
                       "{\"matchLabels\": {\"a\": \"b\"}}, \"weights\": {\"x\": 0.1234567891}}");
    CHECK_INT(policy_parse_spec(spec, &p, &msg), -EINVAL);
    CHECK_STR(msg, "spec.weights.x: at most 9 digits after the decimal point, not 0.1234567891");
    free(msg);
    msg = NULL;
    cJSON_Delete(spec);
    spec = cJSON_Parse("{\"selector\": {\"matchLabels\": {\"a\": \"b\"}}, \"poolSelector\": "
                       "{\"matchLabels\": {\"a\": \"b\"}}, \"weights\": {\"x\": 999.123456789, "
                       "\"y\": 0.000000001}, \"threshold\": 0.123456789}");
    CHECK_INT(policy_parse_spec(spec, &p, &msg), 0);
    CHECK(p.weights[0].weight == 999.123456789 && p.weights[1].weight == 1e-9);
    CHECK(p.threshold == 0.123456789);
    policy_free(&p);
    cJSON_Delete(spec);
}

TEST(policy_bounds_categories_and_reads_a_huge_mapping_in_one_pass)
{
    size_t n = 300000, len = 0, cap = n * 24 + 256;
    char *yaml = malloc(cap);

    CHECK(yaml != NULL);
    len += (size_t)snprintf(yaml, cap, "spec:\n" SELECTORS "  weights:\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "    c%zu: 1\n", i);
    /* refused at once, before any of them is read */
    CHECK(doc_error_is(yaml, "spec.weights: at most 64 categories, not 300000"));
    len = (size_t)snprintf(yaml, cap, "spec:\n" SELECTORS WEIGHTS "  required: [");
    for (size_t i = 0; i < 33; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "%sr%zu", i ? ", " : "", i);
    snprintf(yaml + len, cap - len, "]\n");
    CHECK(doc_error_is(yaml, "spec.required: at most 32 categories, not 33"));
    free(yaml);
}
