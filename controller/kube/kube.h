/*
 * kube — the Kubernetes API client, on libcurl and cJSON.
 *
 * One struct kube serves every thread of the controller (reflectors, workers,
 * the lease): each request takes an easy handle from a small pool (its own
 * keep-alive connections, HTTP/2 where offered) while DNS and TLS sessions are
 * shared between handles through a locked CURLSH. Requests pass a client-side
 * token bucket (QPS/burst), are retried with exponential backoff and jitter on
 * 429, 5xx and transport errors (honouring Retry-After) where a retry is safe,
 * and map the HTTP status to a negative errno exactly once, here. Error bodies
 * are Kubernetes Status objects: their code, reason and message reach the
 * caller in struct kube_error and the log.
 *
 * A request may be made as a ServiceAccount (struct kube_as, impersonation),
 * so that the API server judges a write made for a tenant by the tenant's
 * rights; the identity travels with that request only.
 *
 * It must never skip TLS verification, never log a token, key or request body,
 * and never retry a request whose repetition could apply a change twice
 * (JSON patch after the server may have seen it).
 */
#ifndef KVR_KUBE_H
#define KVR_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/buf.h"
#include "kube/kubeconfig.h"

struct kube; /* opaque, thread-safe client */

/* Defaults for struct kube_options fields left 0. client-go uses 5/10, which
 * is too slow to create 1,000 replacements promptly; kube-apiserver's default
 * max-requests-inflight (400) leaves ample room for 50/100. */
#define KUBE_DEFAULT_QPS 50.0
#define KUBE_DEFAULT_BURST 100
#define KUBE_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define KUBE_DEFAULT_TIMEOUT_MS 30000L
#define KUBE_DEFAULT_MAX_RETRIES 5
#define KUBE_DEFAULT_BACKOFF_MS 200L /* first retry delay (before jitter) */
#define KUBE_DEFAULT_MAX_BACKOFF_MS 10000L
#define KUBE_MAX_RETRY_AFTER_S 60L     /* longer Retry-After values are capped */
#define KUBE_MAX_RESPONSE (256u << 20) /* largest non-streamed body (bytes) */

/* Client settings; a zeroed struct gives the defaults above. */
struct kube_options {
    double qps;              /* sustained requests per second; < 0: no limit */
    int burst;               /* token bucket size */
    long connect_timeout_ms; /* TCP + TLS connect, per attempt */
    long timeout_ms;         /* whole request, per attempt (not streams) */
    int max_retries;         /* retries after the first attempt; < 0: none */
    long backoff_ms;         /* first retry delay */
    long max_backoff_ms;     /* cap on one retry delay */
    const char *user_agent;  /* default "kvrecover/<version>" */
};

/* Why a request failed, for the caller and the log. Fixed-size so that a
 * caller can keep one on the stack; long texts are truncated. */
struct kube_error {
    int http_code;     /* HTTP status; 0 when no response arrived */
    int code;          /* Status.code (usually == http_code), else 0 */
    char reason[64];   /* Status.reason ("NotFound", "AlreadyExists",
                          "Conflict", "Expired", "Gone", ...), else "" */
    char message[512]; /* Status.message, or the transport error, or "" */
    bool detailed;     /* Status.details named a kind, a name or a cause: the
                          refusal is about the object (validation, admission),
                          not a request the server could not apply */
};

/* Content types for kube_patch(). */
enum kube_patch_type {
    KUBE_PATCH_MERGE,     /* application/merge-patch+json (RFC 7386) */
    KUBE_PATCH_JSON,      /* application/json-patch+json (RFC 6902) */
    KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
    KUBE_PATCH_APPLY,     /* application/apply-patch+yaml (server-side apply;
                             add ?fieldManager=... to the path) */
};

/* A resource type, as in the API path. Plain value type. */
struct kube_resource {
    const char *group;    /* "" or NULL for the core group */
    const char *version;  /* "v1", "v1alpha1" */
    const char *resource; /* plural, lower case: "configmaps" */
};

/*
 * Who a request is made as, when not as the client itself: a ServiceAccount,
 * by Kubernetes impersonation. Only the header Impersonate-User:
 * system:serviceaccount:NS:NAME is sent. kube-apiserver then authorizes
 * "impersonate" on serviceaccounts/NAME in NS (a namespaced check, which a
 * Role in NS can grant) and, because no Impersonate-Group is sent, gives the
 * request exactly the groups a token of that ServiceAccount has
 * (system:serviceaccounts, system:serviceaccounts:NS, system:authenticated):
 * RBAC and admission judge it as that ServiceAccount. Sending any group
 * would need "impersonate" on groups, which is cluster-wide, and would
 * replace those groups. Plain value type; the strings are borrowed.
 */
struct kube_as {
    const char *ns;   /* the ServiceAccount's namespace (a DNS label) */
    const char *name; /* its name (a DNS subdomain) */
};

/**
 * The ServiceAccount name of namespace ns as *as, returned for kube_*_as();
 * or NULL (as the client itself) when name is NULL or "". Borrows both
 * strings.
 */
const struct kube_as *kube_as_sa(struct kube_as *as, const char *ns, const char *name);

/**
 * Creates a client for cfg (copied; the caller keeps cfg) with opts (NULL for
 * the defaults). Initialises libcurl once per process. Returns 0 and *out, or
 * -EINVAL with *err (caller frees) when cfg lacks a server or a credential
 * file cannot be read. Free the client with kube_free().
 */
int kube_new(const struct kubeconfig *cfg, const struct kube_options *opts, struct kube **out,
             char **err);

/** Frees the client. No request may be running on it. NULL is fine. */
void kube_free(struct kube *k);

/**
 * Sends one request and waits for the whole response. method is "GET",
 * "POST", "PUT", "PATCH" or "DELETE"; path starts with '/' and may carry a
 * query string (build it with kube_path/kube_query_add); body (may be NULL) is
 * sent with content_type (NULL means application/json).
 *
 * Returns 0 for 2xx with *out (if out is not NULL) set to the parsed body, or
 * NULL when the body is empty; the caller frees it with cJSON_Delete. A 2xx
 * body that is not JSON gives -EBADMSG. Otherwise returns, after any retries,
 * -ENOENT (404), -EEXIST (409: read err->reason to tell "AlreadyExists" from
 * "Conflict"), -ESTALE (410), -EAGAIN (429, 5xx), -EACCES (401, 403),
 * -EINVAL (400, 422), -EPROTO (other status), -ETIMEDOUT or -EIO (no response),
 * -ECANCELED (kube_shutdown); *out is then NULL and err (may be NULL) is
 * filled. Non-2xx answers are logged at debug level (404) or warn level.
 *
 * Retries (with backoff, jitter and Retry-After): 429 and connection
 * failures for every method; 5xx and other transport errors for all but a
 * JSON patch. A POST retried after the server acted answers 409
 * AlreadyExists, which the caller treats as done. Thread-safe.
 */
int kube_request(struct kube *k, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, cJSON **out, struct kube_error *err);

/**
 * kube_request() made as the ServiceAccount as (NULL: as the client itself,
 * exactly kube_request()). The impersonation header goes with this request's
 * attempts only, never with another request on a reused connection. An as
 * whose namespace is not a DNS label or whose name is not a DNS subdomain
 * is refused with -EINVAL and err->message naming it, before anything is
 * sent: the names come from tenants' objects and must not shape headers.
 * A server that does not let the client act as it answers 403 (-EACCES),
 * its Status message in err ("... cannot impersonate resource
 * \"serviceaccounts\" ..."); a 403 for the request itself names the
 * ServiceAccount as the user. A failure is logged with the identity
 * ("as"), never with a credential. Thread-safe.
 */
int kube_request_as(struct kube *k, const struct kube_as *as, const char *method, const char *path,
                    const char *content_type, const char *body, size_t body_len, cJSON **out,
                    struct kube_error *err);

/** GET path. As kube_request(). */
int kube_get(struct kube *k, const char *path, cJSON **out, struct kube_error *err);

/** POST obj (borrowed) to the collection path. As kube_request(). */
int kube_create(struct kube *k, const char *path, const cJSON *obj, cJSON **out,
                struct kube_error *err);

/** PUT obj (borrowed; carry metadata.resourceVersion for optimistic locking)
 *  to the object path. A stale resourceVersion gives -EEXIST with reason
 *  "Conflict". As kube_request(). */
int kube_update(struct kube *k, const char *path, const cJSON *obj, cJSON **out,
                struct kube_error *err);

/** PATCH path with patch (borrowed) of the given type. As kube_request(). */
int kube_patch(struct kube *k, const char *path, enum kube_patch_type type, const cJSON *patch,
               cJSON **out, struct kube_error *err);

/** kube_get() as the ServiceAccount as (NULL: as the client). As
 *  kube_request_as(). */
int kube_get_as(struct kube *k, const struct kube_as *as, const char *path, cJSON **out,
                struct kube_error *err);

/** kube_create() as the ServiceAccount as (NULL: as the client). As
 *  kube_request_as(). */
int kube_create_as(struct kube *k, const struct kube_as *as, const char *path, const cJSON *obj,
                   cJSON **out, struct kube_error *err);

/** kube_patch() as the ServiceAccount as (NULL: as the client). As
 *  kube_request_as(). */
int kube_patch_as(struct kube *k, const struct kube_as *as, const char *path,
                  enum kube_patch_type type, const cJSON *patch, cJSON **out,
                  struct kube_error *err);

/* Receives a streamed response body as it arrives, in arbitrary pieces.
 * Return 0 to go on, nonzero to stop the transfer (kube_stream then returns
 * -ECANCELED). */
typedef int (*kube_chunk_fn)(void *ud, const char *data, size_t len);

/* Polled every 100 ms during a stream (about once a second during
 * kube_get_cancel) and whenever data arrives; returns true to abort the
 * request promptly, even when the server sends nothing. */
typedef bool (*kube_cancel_fn)(void *ud);

/**
 * A long-running GET (a watch): passes the 2xx body to on_chunk as it
 * arrives, and returns 0 when the server ends it. No total timeout applies
 * except timeout_ms (0 = none; use the watch's timeoutSeconds plus a margin);
 * TCP keepalive detects a dead peer. Not retried: the caller resumes. cancel
 * (may be NULL) aborts it. Returns the errno of kube_request() for a non-2xx
 * status (on_chunk is then never called), -ECANCELED when on_chunk or cancel
 * stopped it, -EIO/-ETIMEDOUT when the connection failed. Thread-safe; it
 * holds one connection for its whole duration.
 */
int kube_stream(struct kube *k, const char *path, long timeout_ms, kube_chunk_fn on_chunk,
                kube_cancel_fn cancel, void *ud, struct kube_error *err);

/**
 * GET path as kube_get(), but cancel (may be NULL) is polled while the
 * request runs and during retry delays, and returning true ends it promptly
 * with -ECANCELED. For a reflector's list pages, which watch_stop() must be
 * able to abort. Thread-safe.
 */
int kube_get_cancel(struct kube *k, const char *path, kube_cancel_fn cancel, void *ud, cJSON **out,
                    struct kube_error *err);

/**
 * Makes every request in flight and every later one fail promptly with
 * -ECANCELED (backoff sleeps and rate-limit waits end too). For shutdown;
 * irreversible. Thread-safe.
 */
void kube_shutdown(struct kube *k);

/* ---- objects and paths ---------------------------------------------- */

/**
 * A new object to create: {"apiVersion", "kind", "metadata": {"name",
 * "namespace"}}, in that order; name or ns NULL leaves that field out. *meta
 * (meta may be NULL) gets the metadata object, borrowed, for more fields.
 * The caller frees the object with cJSON_Delete().
 */
cJSON *kube_object_new(const char *api_version, const char *kind, const char *ns, const char *name,
                       cJSON **meta);

/**
 * The API path of a collection (name NULL) or an object, optionally of its
 * subresource (NULL, or e.g. "status"): "/api/v1/namespaces/NS/configmaps/N"
 * or "/apis/GROUP/VERSION/...". ns NULL or "" gives the cluster-wide path
 * (all namespaces, or a cluster-scoped resource). Path segments are
 * percent-encoded. Returns a new string; the caller frees it.
 */
char *kube_path(const struct kube_resource *r, const char *ns, const char *name,
                const char *subresource);

/**
 * Appends "?key=value" (or "&key=value" when path already holds a '?') to
 * path, percent-encoding value (and key). value NULL appends nothing.
 */
void kube_query_add(struct buf *path, const char *key, const char *value);

/** kube_query_add() with a long value. */
void kube_query_add_long(struct buf *path, const char *key, long value);

/**
 * Percent-encodes s for a URL query value or path segment: every byte but
 * the unreserved A-Z a-z 0-9 - . _ ~ becomes %XX. Returns a new string; the
 * caller frees it.
 */
char *kube_urlencode(const char *s);

/* ---- errors --------------------------------------------------------- */

/**
 * Maps an HTTP status (0 = no response) to the errno kube_request() returns,
 * as described there. 2xx gives 0.
 */
int kube_errno_for_status(long http_code);

/**
 * Fills err from a response: http_code, and code/reason/message from body
 * [0..len) when it is a Status object (else message is the start of the body,
 * sanitized). err may be NULL. Returns kube_errno_for_status(http_code).
 */
int kube_error_from_response(long http_code, const char *body, size_t len, struct kube_error *err);

/** True when err holds this Status reason (e.g. "AlreadyExists"). */
bool kube_error_is(const struct kube_error *err, const char *reason);

/* ---- statistics, for the metrics module ----------------------------- */

/* Called once per (verb, code) pair seen: code is the HTTP status, 0 for a
 * request that got no response. Counts include retried attempts. */
typedef void (*kube_stats_fn)(void *ud, const char *verb, int code, unsigned long count);

/** Reports the request counts so far, under a lock (do not call kube_ from
 *  fn). Verbs: GET, LIST (a GET on a collection is not distinguished: GET),
 *  WATCH (kube_stream), POST, PUT, PATCH, DELETE. */
void kube_stats_foreach(struct kube *k, kube_stats_fn fn, void *ud);

/** Totals since kube_new(): retries made, and milliseconds spent waiting for
 *  the rate limiter. Either pointer may be NULL. */
void kube_stats_totals(struct kube *k, unsigned long *retries, unsigned long *throttled_ms);

/* ---- retry policy, shared with the reflector ------------------------ */

/**
 * The delay before retry number attempt (1-based): base * 2^(attempt-1)
 * milliseconds, capped at max, then with "equal jitter": half of it fixed,
 * half scaled by rnd in [0, 1) (rand_uniform()). The client's retries and
 * the reflector's re-watches both wait this long.
 */
long kube_backoff_ms(int attempt, long base, long max, double rnd);

#endif
