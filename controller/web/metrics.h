/*
 * metrics — the process-wide Prometheus registry behind /metrics.
 *
 * Code that does the work records counters, gauges and histograms here by
 * metric name and a preformatted label string; httpd renders everything in
 * the Prometheus text exposition format 0.0.4 when /metrics is scraped.
 * Modules that already keep their own numbers (the API client's request
 * counts, the reflectors' restarts) register a collector instead, which
 * writes its samples at render time.
 *
 * HELP and TYPE come from a static table of the names we export (see
 * metrics.c), so the exposition stays self-describing and a typo in a name
 * shows up as a family without HELP. Output order is deterministic: families
 * in the table's order (unknown names after, by name), series by label
 * string, collectors last in registration order.
 *
 * It must never block a caller for long (one mutex, no I/O) and never emit
 * text a Prometheus parser rejects. Every function is thread-safe.
 */
#ifndef KVR_METRICS_H
#define KVR_METRICS_H

#include "base/buf.h"

/* Names of the families we export; use these, not literals. */
#define METRICS_RECOVERIES "kvrecover_recoveries_total"                 /* {policy,result} */
#define METRICS_RECOVERY_DURATION "kvrecover_recovery_duration_seconds" /* {policy} */
#define METRICS_POOL_MEMBERS "kvrecover_pool_members"                   /* {policy} */
#define METRICS_PROTECTED_VMS "kvrecover_protected_vms"                 /* {policy} */
#define METRICS_UNPROTECTED_VMS "kvrecover_unprotected_vms"             /* {policy} */
#define METRICS_API_REQUESTS "kvrecover_api_requests_total"             /* {verb,code} */
#define METRICS_WATCH_RESTARTS "kvrecover_watch_restarts_total"         /* {resource} */
#define METRICS_LEADER "kvrecover_leader"                               /* no labels */
#define METRICS_INCIDENTS "kvrecover_incidents"                         /* {policy,state} */
#define METRICS_STORM_HOLD "kvrecover_storm_hold"                       /* {policy} */
#define METRICS_BLOCKED_INCIDENTS "kvrecover_blocked_incidents"         /* {policy,reason} */
#define METRICS_HTTP_REFUSED "kvrecover_http_refused_total"             /* {reason} */
#define METRICS_HTTP_AUTH_REVIEWS "kvrecover_http_auth_reviews_total"   /* {result} */
#define METRICS_EVENTS_DROPPED "kvrecover_events_dropped_total"         /* no labels */

/**
 * Adds v (>= 0) to the counter name{labels}, creating it at 0 first.
 * labels is the inside of the braces, already formatted and escaped
 * (`policy="shop/web",result="Recovered"`), or NULL/"" for none; it is
 * copied. A negative or NaN v is ignored: counters only go up.
 */
void metrics_counter_add(const char *name, const char *labels, double v);

/** Sets the gauge name{labels} to v, creating it if needed. */
void metrics_gauge_set(const char *name, const char *labels, double v);

/** Removes the series name{labels} (e.g. when its policy is deleted), of
 *  any type; nothing happens when it does not exist. */
void metrics_gauge_delete(const char *name, const char *labels);

/**
 * Records one observation v in the histogram name{labels}. Known names use
 * the buckets in the table (for the recovery duration: .001 .0025 .005 .01
 * .025 .05 .1 .25 .5 1 2.5 5 10 seconds); others use those same buckets.
 * NaN is ignored.
 */
void metrics_histogram_observe(const char *name, const char *labels, double v);

/**
 * A collector writes complete families (HELP/TYPE lines and samples, e.g.
 * with metrics_write_header() and metrics_write_sample()) to out when
 * /metrics is rendered. It runs with the registry's lock released, on the
 * HTTP thread, so it must be thread-safe with respect to its own data and
 * must not emit a family that is also recorded through this registry.
 */
typedef void (*metrics_collect_fn)(struct buf *out, void *ud);

/** Registers a collector called with ud on every render, after the
 *  registry's own families. ud is not owned. Registering the same (fn, ud)
 *  twice has no effect. */
void metrics_add_collector(metrics_collect_fn fn, void *ud);

/** Removes a collector registered with the same (fn, ud); call it before
 *  freeing ud. Nothing happens when it is not registered. */
void metrics_remove_collector(metrics_collect_fn fn, void *ud);

/** Appends the whole exposition (text format 0.0.4) to out. */
void metrics_render(struct buf *out);

/**
 * Returns a copy of v escaped for use inside a label value's double quotes
 * (backslash, double quote and newline become \\, \" and \n). NULL gives "".
 * The caller frees.
 */
char *metrics_label_escape(const char *v);

/**
 * Returns `k1="v1"` or, when k2 is not NULL, `k1="v1",k2="v2"`, the values
 * escaped as metrics_label_escape() does (NULL values give ""); keys are used
 * as they are. E.g. metrics_labels("policy", "shop/web", "result",
 * "Recovered"). The caller frees.
 */
char *metrics_labels(const char *k1, const char *v1, const char *k2, const char *v2);

/** Appends the `# HELP` and `# TYPE` lines of a family from the table;
 *  for a name not in the table it appends nothing (the format allows
 *  untyped families). For collectors. */
void metrics_write_header(struct buf *out, const char *name);

/** Appends one sample line `name{labels} value`; labels NULL or "" gives no
 *  braces. Values use the shortest text that reads back exactly, and +Inf,
 *  -Inf and NaN as Prometheus spells them. For collectors. */
void metrics_write_sample(struct buf *out, const char *name, const char *labels, double v);

#endif
