/*
 * metrics — the process-wide Prometheus registry. See metrics.h.
 *
 * One mutex guards a hash table of series keyed by "name{labels}". Rendering
 * copies the series pointers into an array under the lock, sorts them
 * (family order of the static table, then labels) and writes the text while
 * still holding it: formatting is cheap and does no I/O. Collectors run
 * under a second mutex only, so that a collector may itself record metrics
 * and metrics_remove_collector() waits for a render that is calling it.
 *
 * Names and label strings are checked against the exposition grammar when a
 * series is created; a bad one is logged and dropped rather than breaking
 * every later scrape.
 */
#include "web/metrics.h"
#include "web/metrics_test.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/xalloc.h"

#define uthash_malloc(sz) xmalloc(sz)
#define uthash_free(p, sz) free(p)
#include <uthash.h>

enum metrics__kind { METRICS__COUNTER, METRICS__GAUGE, METRICS__HISTOGRAM };

static const char *const metrics__type_names[] = {"counter", "gauge", "histogram"};

/* Upper bounds for the recovery duration: a recovery is an API call or
 * two (milliseconds) but may wait on a slow API server (seconds). */
static const double metrics__buckets[] = {.001, .0025, .005, .01, .025, .05, .1,
                                          .25,  .5,    1,    2.5, 5,    10};
#define METRICS__NBUCKETS (sizeof(metrics__buckets) / sizeof(metrics__buckets[0]))

struct metrics__family {
    const char *name;
    enum metrics__kind kind;
    const char *help;
};

/* The families we export, in the order /metrics shows them. */
static const struct metrics__family metrics__families[] = {
    {METRICS_RECOVERIES, METRICS__COUNTER,
     "Failed VMIs handled, by policy and result (Recovered, DryRun, NoCandidate, Failed)."},
    {METRICS_RECOVERY_DURATION, METRICS__HISTOGRAM,
     "Seconds from a VMI's failure being seen to its replacement VirtualMachine being created."},
    {METRICS_POOL_MEMBERS, METRICS__GAUGE, "Members in the policy's spec pool."},
    {METRICS_PROTECTED_VMS, METRICS__GAUGE, "VMIs the policy protects."},
    {METRICS_UNPROTECTED_VMS, METRICS__GAUGE,
     "Protected VMIs with no eligible substitute in the pool (no recovery possible)."},
    {METRICS_API_REQUESTS, METRICS__COUNTER,
     "Kubernetes API requests, by verb and HTTP status code (0 = no response)."},
    {METRICS_WATCH_RESTARTS, METRICS__COUNTER,
     "Watches restarted (relist or re-watch), by resource."},
    {METRICS_LEADER, METRICS__GAUGE, "1 when this replica holds the leader lease, else 0."},
    {METRICS_INCIDENTS, METRICS__GAUGE,
     "Protected VMs in an incident, by policy and state (Restarting, Waiting, Recovering, "
     "Halted, Blocked)."},
    {METRICS_STORM_HOLD, METRICS__GAUGE,
     "1 while more protected VMs are down than the policy's stormLimit allows: none is "
     "replaced."},
    {METRICS_BLOCKED_INCIDENTS, METRICS__GAUGE,
     "Incidents whose recovery cannot go on, by policy and reason."},
    {METRICS_HTTP_REFUSED, METRICS__COUNTER,
     "HTTP requests and connections refused, by reason (host, origin, unauthenticated, "
     "forbidden, peer_limit, auth_unavailable)."},
    {METRICS_HTTP_AUTH_REVIEWS, METRICS__COUNTER,
     "Bearer-token decisions asked of the API server (TokenReview and SubjectAccessReview; "
     "cached ones are not counted), by result (allowed, unauthenticated, forbidden, error)."},
    {METRICS_EVENTS_DROPPED, METRICS__COUNTER,
     "Events not posted because the backlog to the API server was full (a mass failure "
     "makes more than it takes); the decisions are still in the log and the policy status."},
};
#define METRICS__NFAMILIES (sizeof(metrics__families) / sizeof(metrics__families[0]))

struct metrics__series {
    char *key;                           /* "name{labels}", the hash key, owned */
    char *name;                          /* metric name, owned */
    char *labels;                        /* preformatted labels, "" for none, owned */
    enum metrics__kind kind;             /* fixed at creation */
    size_t family;                       /* index in metrics__families, or METRICS__NFAMILIES */
    double value;                        /* counter or gauge value */
    double sum;                          /* histogram: sum of observations */
    uint64_t count;                      /* histogram: number of observations */
    uint64_t buckets[METRICS__NBUCKETS]; /* histogram: per-bucket, not cumulative */
    UT_hash_handle hh;
};

struct metrics__collector {
    metrics_collect_fn fn;
    void *ud;
};

static pthread_mutex_t metrics__lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics__series *metrics__table; /* guarded by metrics__lock */

static pthread_mutex_t metrics__clock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics__collector *metrics__collectors; /* guarded by metrics__clock */
static size_t metrics__ncollectors, metrics__collectors_cap;

static size_t metrics__family_index(const char *name)
{
    for (size_t i = 0; i < METRICS__NFAMILIES; i++)
        if (strcmp(metrics__families[i].name, name) == 0)
            return i;
    return METRICS__NFAMILIES;
}

static int metrics__is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int metrics__is_name_char(char c)
{
    return metrics__is_name_start(c) || (c >= '0' && c <= '9');
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static int metrics__valid_name(const char *s)
{
    if (s == NULL || !(metrics__is_name_start(*s) || *s == ':'))
        return 0;
    for (; *s; s++)
        if (!metrics__is_name_char(*s) && *s != ':')
            return 0;
    return 1;
}

/* name="value"(,name="value")*, values escaped; "" is valid (no labels). */
static int metrics__valid_labels(const char *s)
{
    while (*s) {
        if (!metrics__is_name_start(*s))
            return 0;
        while (metrics__is_name_char(*s))
            s++;
        if (s[0] != '=' || s[1] != '"')
            return 0;
        for (s += 2; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n')
                return 0;
            if (*s == '\\') {
                s++;
                if (*s != '\\' && *s != '"' && *s != 'n')
                    return 0;
            }
        }
        s++;
        if (*s == ',' && s[1] != '\0')
            s++;
        else if (*s != '\0')
            return 0;
    }
    return 1;
}

static void metrics__free_series(struct metrics__series *s)
{
    free(s->key);
    free(s->name);
    free(s->labels);
    free(s);
}

/* Finds or creates a series; NULL (logged) for a bad name or labels or a
 * name already used with another type. Called with metrics__lock held. */
static struct metrics__series *metrics__get(const char *name, const char *labels,
                                            enum metrics__kind kind)
{
    struct metrics__series *s = NULL;
    char *key;

    if (labels == NULL)
        labels = "";
    key = xasprintf("%s{%s}", name ? name : "", labels);
    HASH_FIND_STR(metrics__table, key, s);
    if (s != NULL) {
        free(key);
        if (s->kind != kind) {
            log_warn("metrics: %s used as a %s, is a %s", s->name, metrics__type_names[kind],
                     metrics__type_names[s->kind]);
            return NULL;
        }
        return s;
    }
    if (!metrics__valid_name(name) || !metrics__valid_labels(labels)) {
        log_warn("metrics: bad series %s dropped", key);
        free(key);
        return NULL;
    }
    s = xcalloc(1, sizeof(*s));
    s->key = key;
    s->name = xstrdup(name);
    s->labels = xstrdup(labels);
    s->kind = kind;
    s->family = metrics__family_index(name);
    if (s->family < METRICS__NFAMILIES && metrics__families[s->family].kind != kind) {
        log_warn("metrics: %s is a %s, not a %s", name,
                 metrics__type_names[metrics__families[s->family].kind], metrics__type_names[kind]);
        metrics__free_series(s);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, metrics__table, s->key, strlen(s->key), s);
    return s;
}

void metrics_counter_add(const char *name, const char *labels, double v)
{
    struct metrics__series *s;

    if (!(v >= 0))
        return;
    pthread_mutex_lock(&metrics__lock);
    s = metrics__get(name, labels, METRICS__COUNTER);
    if (s != NULL)
        s->value += v;
    pthread_mutex_unlock(&metrics__lock);
}

void metrics_gauge_set(const char *name, const char *labels, double v)
{
    struct metrics__series *s;

    pthread_mutex_lock(&metrics__lock);
    s = metrics__get(name, labels, METRICS__GAUGE);
    if (s != NULL)
        s->value = v;
    pthread_mutex_unlock(&metrics__lock);
}

void metrics_gauge_delete(const char *name, const char *labels)
{
    struct metrics__series *s = NULL;
    char *key = xasprintf("%s{%s}", name ? name : "", labels ? labels : "");

    pthread_mutex_lock(&metrics__lock);
    HASH_FIND_STR(metrics__table, key, s);
    if (s != NULL) {
        HASH_DEL(metrics__table, s);
        metrics__free_series(s);
    }
    pthread_mutex_unlock(&metrics__lock);
    free(key);
}

void metrics_histogram_observe(const char *name, const char *labels, double v)
{
    struct metrics__series *s;

    if (isnan(v))
        return;
    pthread_mutex_lock(&metrics__lock);
    s = metrics__get(name, labels, METRICS__HISTOGRAM);
    if (s != NULL) {
        /* Only the first bucket that holds v counts it; rendering makes the
         * counts cumulative. Larger values land in +Inf, i.e. only count. */
        for (size_t i = 0; i < METRICS__NBUCKETS; i++) {
            if (v <= metrics__buckets[i]) {
                s->buckets[i]++;
                break;
            }
        }
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&metrics__lock);
}

/* The shortest %g text that strtod() reads back as exactly v. */
static void metrics__format_value(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Counts read better as "8000" than as "8e+03"; below 2^53 they are exact. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(out, n, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

void metrics_write_sample(struct buf *out, const char *name, const char *labels, double v)
{
    char num[40];

    metrics__format_value(num, sizeof(num), v);
    if (labels != NULL && labels[0] != '\0')
        buf_printf(out, "%s{%s} %s\n", name, labels, num);
    else
        buf_printf(out, "%s %s\n", name, num);
}

/* HELP text escaping: backslash and newline (quotes stay as they are). */
static void metrics__put_help(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_append(out, s, 1);
    }
}

void metrics_write_header(struct buf *out, const char *name)
{
    size_t i = metrics__family_index(name);

    if (i == METRICS__NFAMILIES)
        return;
    buf_printf(out, "# HELP %s ", name);
    metrics__put_help(out, metrics__families[i].help);
    buf_printf(out, "\n# TYPE %s %s\n", name, metrics__type_names[metrics__families[i].kind]);
}

static int metrics__cmp(const void *a, const void *b)
{
    const struct metrics__series *x = *(struct metrics__series *const *)a;
    const struct metrics__series *y = *(struct metrics__series *const *)b;
    int c;

    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return strcmp(x->labels, y->labels);
}

static void metrics__write_histogram(struct buf *out, const struct metrics__series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    char le[40];

    for (size_t i = 0; i < METRICS__NBUCKETS; i++) {
        cum += s->buckets[i];
        metrics__format_value(le, sizeof(le), metrics__buckets[i]);
        buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", s->name, s->labels, sep, le,
                   (unsigned long long)cum);
    }
    buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep,
               (unsigned long long)s->count);
    {
        struct buf name = {0};
        buf_printf(&name, "%s_sum", s->name);
        metrics_write_sample(out, name.data, s->labels, s->sum);
        buf_reset(&name);
        buf_printf(&name, "%s_count", s->name);
        metrics_write_sample(out, name.data, s->labels, (double)s->count);
        buf_free(&name);
    }
}

static void metrics__render_registry(struct buf *out)
{
    struct metrics__series *s, **all;
    size_t n, i = 0;

    pthread_mutex_lock(&metrics__lock);
    n = HASH_COUNT(metrics__table);
    all = xcalloc(n ? n : 1, sizeof(*all));
    for (s = metrics__table; s != NULL; s = s->hh.next)
        all[i++] = s;
    qsort(all, n, sizeof(*all), metrics__cmp);
    for (i = 0; i < n; i++) {
        s = all[i];
        if (i == 0 || strcmp(all[i - 1]->name, s->name) != 0) {
            if (s->family < METRICS__NFAMILIES)
                metrics_write_header(out, s->name);
            else
                buf_printf(out, "# TYPE %s %s\n", s->name, metrics__type_names[s->kind]);
        }
        if (s->kind == METRICS__HISTOGRAM)
            metrics__write_histogram(out, s);
        else
            metrics_write_sample(out, s->name, s->labels, s->value);
    }
    pthread_mutex_unlock(&metrics__lock);
    free(all);
}

void metrics_render(struct buf *out)
{
    metrics__render_registry(out);
    pthread_mutex_lock(&metrics__clock);
    for (size_t i = 0; i < metrics__ncollectors; i++)
        metrics__collectors[i].fn(out, metrics__collectors[i].ud);
    pthread_mutex_unlock(&metrics__clock);
}

void metrics_add_collector(metrics_collect_fn fn, void *ud)
{
    if (fn == NULL)
        return;
    pthread_mutex_lock(&metrics__clock);
    for (size_t i = 0; i < metrics__ncollectors; i++) {
        if (metrics__collectors[i].fn == fn && metrics__collectors[i].ud == ud)
            goto out;
    }
    if (metrics__ncollectors == metrics__collectors_cap) {
        metrics__collectors_cap = metrics__collectors_cap ? 2 * metrics__collectors_cap : 4;
        metrics__collectors = xreallocarray(metrics__collectors, metrics__collectors_cap,
                                            sizeof(*metrics__collectors));
    }
    metrics__collectors[metrics__ncollectors].fn = fn;
    metrics__collectors[metrics__ncollectors].ud = ud;
    metrics__ncollectors++;
out:
    pthread_mutex_unlock(&metrics__clock);
}

void metrics_remove_collector(metrics_collect_fn fn, void *ud)
{
    pthread_mutex_lock(&metrics__clock);
    for (size_t i = 0; i < metrics__ncollectors; i++) {
        if (metrics__collectors[i].fn == fn && metrics__collectors[i].ud == ud) {
            memmove(&metrics__collectors[i], &metrics__collectors[i + 1],
                    (metrics__ncollectors - i - 1) * sizeof(*metrics__collectors));
            metrics__ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&metrics__clock);
}

void metrics_reset(void)
{
    struct metrics__series *s, *tmp;

    pthread_mutex_lock(&metrics__lock);
    HASH_ITER(hh, metrics__table, s, tmp)
    {
        HASH_DEL(metrics__table, s);
        metrics__free_series(s);
    }
    pthread_mutex_unlock(&metrics__lock);
    pthread_mutex_lock(&metrics__clock);
    free(metrics__collectors);
    metrics__collectors = NULL;
    metrics__ncollectors = metrics__collectors_cap = 0;
    pthread_mutex_unlock(&metrics__clock);
}

char *metrics_label_escape(const char *v)
{
    struct buf b = {0};

    for (; v != NULL && *v; v++) {
        if (*v == '\\')
            buf_puts(&b, "\\\\");
        else if (*v == '"')
            buf_puts(&b, "\\\"");
        else if (*v == '\n')
            buf_puts(&b, "\\n");
        else
            buf_append(&b, v, 1);
    }
    return buf_steal(&b);
}

char *metrics_labels(const char *k1, const char *v1, const char *k2, const char *v2)
{
    char *e1 = metrics_label_escape(v1), *e2 = metrics_label_escape(v2), *out;

    if (k2 != NULL)
        out = xasprintf("%s=\"%s\",%s=\"%s\"", k1, e1, k2, e2);
    else
        out = xasprintf("%s=\"%s\"", k1, e1);
    free(e1);
    free(e2);
    return out;
}
