/*
 * Tests for metrics: the Prometheus text exposition the /metrics endpoint
 * serves — HELP/TYPE lines, escaping, histogram buckets, deterministic
 * order, collectors, and that it is safe from several threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "harness.h"
#include "web/metrics.h"
#include "web/metrics_test.h"

/* Renders the registry into a fresh string; the caller frees. */
static char *render(void)
{
    struct buf b = {0};
    metrics_render(&b);
    return buf_steal(&b);
}

/* Counts the occurrences of needle in s. */
static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

TEST(label_escape_backslash_quote_newline)
{
    char *e = metrics_label_escape("a\\b\"c\nd");
    CHECK_STR(e, "a\\\\b\\\"c\\nd");
    free(e);
    e = metrics_label_escape(NULL);
    CHECK_STR(e, "");
    free(e);
}

TEST(labels_builds_escaped_pairs)
{
    char *l = metrics_labels("policy", "shop/web", "result", "Re\"covered");
    CHECK_STR(l, "policy=\"shop/web\",result=\"Re\\\"covered\"");
    free(l);
    l = metrics_labels("resource", "vmis", NULL, NULL);
    CHECK_STR(l, "resource=\"vmis\"");
    free(l);
}

TEST(counter_renders_help_type_and_value)
{
    char *out;
    metrics_reset();
    metrics_counter_add(METRICS_RECOVERIES, "policy=\"shop/web\",result=\"Recovered\"", 1);
    metrics_counter_add(METRICS_RECOVERIES, "policy=\"shop/web\",result=\"Recovered\"", 2);
    out = render();
    CHECK_STR(out, "# HELP kvrecover_recoveries_total Failed VMIs handled, by policy and result "
                   "(Recovered, DryRun, NoCandidate, Failed).\n"
                   "# TYPE kvrecover_recoveries_total counter\n"
                   "kvrecover_recoveries_total{policy=\"shop/web\",result=\"Recovered\"} 3\n");
    free(out);
    metrics_reset();
}

TEST(counter_ignores_negative_and_nan)
{
    char *out;
    metrics_reset();
    metrics_counter_add(METRICS_WATCH_RESTARTS, "resource=\"vmis\"", 1);
    metrics_counter_add(METRICS_WATCH_RESTARTS, "resource=\"vmis\"", -5);
    metrics_counter_add(METRICS_WATCH_RESTARTS, "resource=\"vmis\"", NAN);
    out = render();
    CHECK(strstr(out, "kvrecover_watch_restarts_total{resource=\"vmis\"} 1\n") != NULL);
    free(out);
    metrics_reset();
}

TEST(gauge_set_overwrites_and_delete_removes)
{
    char *out;
    metrics_reset();
    metrics_gauge_set(METRICS_POOL_MEMBERS, "policy=\"shop/web\"", 5);
    metrics_gauge_set(METRICS_POOL_MEMBERS, "policy=\"shop/web\"", 4);
    metrics_gauge_set(METRICS_LEADER, NULL, 1);
    out = render();
    CHECK(strstr(out, "kvrecover_pool_members{policy=\"shop/web\"} 4\n") != NULL);
    CHECK(strstr(out, "\nkvrecover_leader 1\n") != NULL);
    free(out);
    metrics_gauge_delete(METRICS_POOL_MEMBERS, "policy=\"shop/web\"");
    metrics_gauge_delete(METRICS_POOL_MEMBERS, "policy=\"absent\"");
    out = render();
    CHECK(strstr(out, "kvrecover_pool_members") == NULL);
    CHECK(strstr(out, "kvrecover_leader 1\n") != NULL);
    free(out);
    metrics_reset();
}

TEST(values_use_shortest_exact_text_and_special_spellings)
{
    char *out;
    metrics_reset();
    metrics_gauge_set("test_a", NULL, 0.1);
    metrics_gauge_set("test_b", NULL, 0.6666666666666666);
    metrics_gauge_set("test_c", NULL, INFINITY);
    metrics_gauge_set("test_d", NULL, -INFINITY);
    metrics_gauge_set("test_e", NULL, NAN);
    metrics_gauge_set("test_f", NULL, 1e21);
    out = render();
    CHECK(strstr(out, "test_a 0.1\n") != NULL);
    CHECK(strstr(out, "test_b 0.6666666666666666\n") != NULL);
    CHECK(strstr(out, "test_c +Inf\n") != NULL);
    CHECK(strstr(out, "test_d -Inf\n") != NULL);
    CHECK(strstr(out, "test_e NaN\n") != NULL);
    CHECK(strstr(out, "test_f 1e+21\n") != NULL);
    /* Names outside the table get a TYPE line but no HELP. */
    CHECK(strstr(out, "# TYPE test_a gauge\n") != NULL);
    CHECK(strstr(out, "# HELP test_a") == NULL);
    free(out);
    metrics_reset();
}

TEST(histogram_buckets_are_cumulative_with_sum_and_count)
{
    char *out;
    const char *l = "policy=\"shop/web\"";
    metrics_reset();
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, l, 0.001); /* on a bound: le="0.001" */
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, l, 0.03);
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, l, 0.2);
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, l, 60); /* only +Inf */
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, l, NAN);
    out = render();
    CHECK(strstr(out, "# TYPE kvrecover_recovery_duration_seconds histogram\n") != NULL);
    CHECK(strstr(out,
                 "kvrecover_recovery_duration_seconds_bucket{policy=\"shop/web\",le=\"0.001\"} "
                 "1\n"
                 "kvrecover_recovery_duration_seconds_bucket{policy=\"shop/web\",le=\"0.0025\"} "
                 "1\n") != NULL);
    CHECK(strstr(out, "_bucket{policy=\"shop/web\",le=\"0.025\"} 1\n") != NULL);
    CHECK(strstr(out, "_bucket{policy=\"shop/web\",le=\"0.05\"} 2\n") != NULL);
    CHECK(strstr(out, "_bucket{policy=\"shop/web\",le=\"0.25\"} 3\n") != NULL);
    CHECK(strstr(out, "_bucket{policy=\"shop/web\",le=\"10\"} 3\n") != NULL);
    CHECK(strstr(out, "_bucket{policy=\"shop/web\",le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_sum{policy=\"shop/web\"} 60.231\n") !=
          NULL);
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_count{policy=\"shop/web\"} 4\n") !=
          NULL);
    CHECK_INT(count_of(out, "_bucket{"), 14);
    free(out);
    metrics_reset();
}

TEST(histogram_without_labels_has_only_le)
{
    char *out;
    metrics_reset();
    metrics_histogram_observe(METRICS_RECOVERY_DURATION, NULL, 1);
    out = render();
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_bucket{le=\"1\"} 1\n") != NULL);
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_bucket{le=\"0.5\"} 0\n") != NULL);
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_sum 1\n") != NULL);
    free(out);
    metrics_reset();
}

TEST(order_is_table_order_then_labels_whatever_the_insertion_order)
{
    char *out;
    const char *a, *b, *c, *d;
    metrics_reset();
    metrics_gauge_set("zz_unknown", NULL, 1);
    metrics_gauge_set(METRICS_LEADER, NULL, 0);
    metrics_gauge_set(METRICS_POOL_MEMBERS, "policy=\"b/x\"", 1);
    metrics_gauge_set(METRICS_POOL_MEMBERS, "policy=\"a/x\"", 2);
    metrics_counter_add(METRICS_RECOVERIES, "policy=\"a/x\",result=\"Recovered\"", 1);
    out = render();
    a = strstr(out, "kvrecover_recoveries_total{");
    b = strstr(out, "kvrecover_pool_members{policy=\"a/x\"}");
    c = strstr(out, "kvrecover_pool_members{policy=\"b/x\"}");
    d = strstr(out, "kvrecover_leader 0");
    CHECK(a && b && c && d);
    CHECK(a < b && b < c && c < d);
    CHECK(d < strstr(out, "zz_unknown 1"));
    /* Each family's HELP/TYPE appears once, before its first sample. */
    CHECK_INT(count_of(out, "# TYPE kvrecover_pool_members gauge"), 1);
    CHECK(strstr(out, "# TYPE kvrecover_pool_members gauge") < b);
    free(out);
    metrics_reset();
}

TEST(bad_names_labels_and_type_clashes_are_dropped)
{
    char *out;
    metrics_reset();
    metrics_gauge_set("1bad", NULL, 1);
    metrics_gauge_set("bad-name", NULL, 1);
    metrics_gauge_set("ok_a", "policy=unquoted", 1);
    metrics_gauge_set("ok_b", "policy=\"x\",", 1);
    metrics_gauge_set("ok_c", "policy=\"x\ny\"", 1);
    metrics_gauge_set("ok_d", "policy=\"bad\\escape\"", 1);
    metrics_gauge_set(METRICS_RECOVERIES, "policy=\"x\"", 1);    /* the table says counter */
    metrics_counter_add("ok_e", "policy=\"a\\\\b\\\"c\\n\"", 1); /* well-escaped: kept */
    metrics_gauge_set("ok_e", "policy=\"a\\\\b\\\"c\\n\"", 7);   /* now a gauge: dropped */
    out = render();
    CHECK_STR(out, "# TYPE ok_e counter\nok_e{policy=\"a\\\\b\\\"c\\n\"} 1\n");
    free(out);
    metrics_reset();
}

static void collect_api(struct buf *out, void *ud)
{
    int *calls = ud;
    (*calls)++;
    metrics_write_header(out, METRICS_API_REQUESTS);
    metrics_write_sample(out, METRICS_API_REQUESTS, "verb=\"GET\",code=\"200\"", 12);
}

TEST(collectors_run_after_the_registry_once_each)
{
    int calls = 0;
    char *out;
    metrics_reset();
    metrics_gauge_set(METRICS_LEADER, NULL, 1);
    metrics_add_collector(collect_api, &calls);
    metrics_add_collector(collect_api, &calls); /* a duplicate is ignored */
    out = render();
    CHECK_INT(calls, 1);
    CHECK(strstr(out, "# HELP kvrecover_api_requests_total ") != NULL);
    CHECK(strstr(out, "# TYPE kvrecover_api_requests_total counter\n"
                      "kvrecover_api_requests_total{verb=\"GET\",code=\"200\"} 12\n") != NULL);
    CHECK(strstr(out, "kvrecover_leader 1") < strstr(out, "kvrecover_api_requests_total"));
    free(out);
    metrics_remove_collector(collect_api, &calls);
    out = render();
    CHECK_INT(calls, 1);
    CHECK(strstr(out, "api_requests") == NULL);
    free(out);
    metrics_reset();
}

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        metrics_counter_add(METRICS_RECOVERIES, "policy=\"p\",result=\"Recovered\"", 1);
        metrics_histogram_observe(METRICS_RECOVERY_DURATION, "policy=\"p\"", 0.01);
        if (i % 100 == 0) {
            struct buf b = {0};
            metrics_render(&b);
            buf_free(&b);
        }
    }
    return NULL;
}

TEST(concurrent_updates_are_not_lost)
{
    pthread_t t[4];
    char *out;
    metrics_reset();
    for (int i = 0; i < 4; i++)
        CHECK_INT(pthread_create(&t[i], NULL, bump, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    out = render();
    CHECK(strstr(out, "kvrecover_recoveries_total{policy=\"p\",result=\"Recovered\"} 8000\n") !=
          NULL);
    CHECK(strstr(out, "kvrecover_recovery_duration_seconds_count{policy=\"p\"} 8000\n") != NULL);
    free(out);
    metrics_reset();
}
