/*
 * kube — the Kubernetes API client on libcurl. See kube.h.
 *
 * Threading: libcurl easy handles are single-threaded and, by libcurl's own
 * documentation, a shared connection cache must not be used by concurrent
 * threads. So each request borrows an easy handle from a pool (the handle
 * keeps its own keep-alive connections between uses) and only the DNS cache
 * and TLS session IDs are shared, through a CURLSH with one mutex per kind of
 * data.
 */
#include "kube/kube.h"
#include "kube/kube_test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/xalloc.h"

#define KUBE_POOL_MAX 16           /* idle easy handles kept */
#define KUBE_STATS_MAX 96          /* distinct (verb, code) pairs counted */
#define KUBE_TOKEN_REFRESH_S 60.0  /* re-read a token file this often */
#define KUBE_MAX_TOKEN (64u << 10) /* largest token file */
#define KUBE_CANCEL_POLL_MS 100L   /* cancel callback polling during retry sleeps */

struct kube_stat {
    const char *verb;    /* static string: "GET", "WATCH", ... */
    int code;            /* HTTP status, 0 = no response */
    unsigned long count; /* attempts */
};

struct kube {
    struct kubeconfig *cfg;  /* our copy */
    struct kube_options opt; /* with defaults filled in */
    char *user_agent;        /* owned copy of opt.user_agent */

    CURLSH *share;                                    /* DNS + TLS sessions */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST]; /* one per data kind */

    pthread_mutex_t pool_lock; /* guards pool, n_pool */
    CURL *pool[KUBE_POOL_MAX]; /* idle easy handles */
    int n_pool;                /* handles in pool */

    pthread_mutex_t lock;                   /* guards everything below */
    pthread_cond_t wake;                    /* signalled by kube_shutdown() */
    struct kube_bucket bucket;              /* the QPS/burst limiter */
    uint64_t rng;                           /* xorshift state for jitter */
    char *token;                            /* current bearer token, or NULL */
    double token_read;                      /* monotonic time token_file was read */
    struct kube_stat stats[KUBE_STATS_MAX]; /* request counts */
    int n_stats;                            /* used entries of stats */
    unsigned long retries;                  /* retries made */
    unsigned long throttled_ms;             /* time spent in the limiter */
    atomic_bool down;                       /* kube_shutdown() was called */
};

/* ---- small helpers -------------------------------------------------- */

/* Wipes a token or an Authorization header before freeing it, so it does
 * not linger in freed heap memory. Accepts NULL. */
static void kube__free_secret(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

static pthread_once_t kube__once = PTHREAD_ONCE_INIT;
static CURLcode kube__global_rc;

static void kube__global_init(void)
{
    kube__global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A uniform double in [0,1) from the client's generator, shared by the
 * threads that retry. */
static double kube__rand01(struct kube *k)
{
    double r;

    pthread_mutex_lock(&k->lock);
    r = rand_uniform(&k->rng);
    pthread_mutex_unlock(&k->lock);
    return r;
}

/*
 * Sleeps ms milliseconds unless kube_shutdown() is called meanwhile. Returns
 * 0, or -ECANCELED when shut down.
 */
static int kube__sleep(struct kube *k, long ms)
{
    struct timespec until;
    int rc = 0;

    clock_deadline(&until, ms);
    pthread_mutex_lock(&k->lock);
    while (!atomic_load(&k->down)) {
        if (pthread_cond_timedwait(&k->wake, &k->lock, &until) == ETIMEDOUT)
            break;
    }
    if (atomic_load(&k->down))
        rc = -ECANCELED;
    pthread_mutex_unlock(&k->lock);
    return rc;
}

/*
 * kube__sleep(), cut short when cancel (may be NULL) returns true: it is
 * polled every KUBE_CANCEL_POLL_MS, so that a reflector's stop does not wait
 * for a retry delay. Returns 0 or -ECANCELED.
 */
static int kube__sleep_cancel(struct kube *k, long ms, kube_cancel_fn cancel, void *ud)
{
    if (cancel == NULL)
        return kube__sleep(k, ms);
    while (ms > 0) {
        long step = ms < KUBE_CANCEL_POLL_MS ? ms : KUBE_CANCEL_POLL_MS;
        if (cancel(ud) || kube__sleep(k, step) < 0)
            return -ECANCELED;
        ms -= step;
    }
    return cancel(ud) ? -ECANCELED : 0;
}

static void kube__stat(struct kube *k, const char *verb, int code)
{
    pthread_mutex_lock(&k->lock);
    for (int i = 0; i < k->n_stats; i++) {
        if (k->stats[i].code == code && strcmp(k->stats[i].verb, verb) == 0) {
            k->stats[i].count++;
            goto out;
        }
    }
    if (k->n_stats < KUBE_STATS_MAX) {
        k->stats[k->n_stats].verb = verb;
        k->stats[k->n_stats].code = code;
        k->stats[k->n_stats].count = 1;
        k->n_stats++;
    }
out:
    pthread_mutex_unlock(&k->lock);
}

/* ---- pieces exposed for tests --------------------------------------- */

void kube__bucket_init(struct kube_bucket *b, double rate, int burst, double now)
{
    b->rate = rate;
    b->burst = burst > 0 ? burst : 1;
    b->tokens = b->burst;
    b->last = now;
}

double kube__bucket_reserve(struct kube_bucket *b, double now)
{
    if (b->rate <= 0)
        return 0;
    if (now > b->last) {
        b->tokens += (now - b->last) * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last = now;
    }
    /* Take the token now even if it is not there yet: the debt orders the
     * waiters fairly without a queue, as golang.org/x/time/rate does. */
    b->tokens -= 1;
    return b->tokens >= 0 ? 0 : -b->tokens / b->rate;
}

long kube__parse_retry_after(const char *value, long now)
{
    char *end;
    long s;

    if (value == NULL)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        errno = 0;
        s = strtol(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end != '\0')
            return -1;
        if (errno == ERANGE || s > KUBE_MAX_RETRY_AFTER_S)
            return KUBE_MAX_RETRY_AFTER_S;
        return s;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if ((long)t <= now)
        return 0;
    s = (long)t - now;
    return s > KUBE_MAX_RETRY_AFTER_S ? KUBE_MAX_RETRY_AFTER_S : s;
}

long kube_backoff_ms(int attempt, long base, long max, double rnd)
{
    double d = (double)base;

    for (int i = 1; i < attempt && d < (double)max; i++)
        d *= 2;
    if (d > (double)max)
        d = (double)max;
    return (long)(d / 2 + d / 2 * rnd);
}

/* ---- errors --------------------------------------------------------- */

int kube_errno_for_status(long http_code)
{
    if (http_code >= 200 && http_code < 300)
        return 0;
    switch (http_code) {
    case 0:
        return -EIO;
    case 400:
    case 422:
        return -EINVAL;
    case 401:
    case 403:
        return -EACCES;
    case 404:
        return -ENOENT;
    case 409:
        return -EEXIST;
    case 410:
        return -ESTALE;
    case 429:
        return -EAGAIN;
    default:
        return http_code >= 500 && http_code < 600 ? -EAGAIN : -EPROTO;
    }
}

/* Copies s into dst[cap], replacing control bytes so that a hostile body
 * cannot forge log lines, and truncating. */
static void kube__copy_clean(char *dst, size_t cap, const char *s, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; i < n && j + 1 < cap && s[i]; i++)
        dst[j++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    dst[j] = '\0';
}

/* Whether obj has a non-empty string member key. */
static bool kube__nonempty(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) && v->valuestring[0] != '\0';
}

int kube_error_from_response(long http_code, const char *body, size_t len, struct kube_error *err)
{
    int rc = kube_errno_for_status(http_code);
    cJSON *st = NULL;

    if (err == NULL)
        return rc;
    memset(err, 0, sizeof(*err));
    err->http_code = (int)http_code;
    if (body == NULL || len == 0)
        return rc;
    st = cJSON_ParseWithLength(body, len);
    if (cJSON_IsObject(st)) {
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(st, "reason");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(st, "message");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(st, "code");
        const cJSON *details = cJSON_GetObjectItemCaseSensitive(st, "details");
        if (cJSON_IsString(reason))
            kube__copy_clean(err->reason, sizeof(err->reason), reason->valuestring,
                             strlen(reason->valuestring));
        if (cJSON_IsString(message))
            kube__copy_clean(err->message, sizeof(err->message), message->valuestring,
                             strlen(message->valuestring));
        if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble < 1000)
            err->code = code->valueint;
        err->detailed = kube__nonempty(details, "kind") || kube__nonempty(details, "name") ||
                        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(details, "causes")) > 0;
    } else {
        /* Not a Status (a proxy's HTML page, say): keep its start. */
        kube__copy_clean(err->message, sizeof(err->message) > 200 ? 200 : sizeof(err->message),
                         body, len);
    }
    cJSON_Delete(st);
    return rc;
}

bool kube_error_is(const struct kube_error *err, const char *reason)
{
    return err != NULL && reason != NULL && strcmp(err->reason, reason) == 0;
}

/* ---- paths ---------------------------------------------------------- */

char *kube_urlencode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    struct buf b = {0};

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_append(&b, p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(&b, e, 3);
        }
    }
    return buf_steal(&b);
}

/* Appends "/" and the percent-encoded segment. */
static void kube__segment(struct buf *b, const char *seg)
{
    char *e = kube_urlencode(seg);

    buf_puts(b, "/");
    buf_puts(b, e);
    free(e);
}

cJSON *kube_object_new(const char *api_version, const char *kind, const char *ns, const char *name,
                       cJSON **meta)
{
    cJSON *obj = cJSON_CreateObject(), *md;

    cJSON_AddStringToObject(obj, "apiVersion", api_version);
    cJSON_AddStringToObject(obj, "kind", kind);
    md = cJSON_AddObjectToObject(obj, "metadata");
    if (name)
        cJSON_AddStringToObject(md, "name", name);
    if (ns)
        cJSON_AddStringToObject(md, "namespace", ns);
    if (meta)
        *meta = md;
    return obj;
}

char *kube_path(const struct kube_resource *r, const char *ns, const char *name,
                const char *subresource)
{
    struct buf b = {0};

    if (r->group && r->group[0]) {
        buf_puts(&b, "/apis");
        kube__segment(&b, r->group);
    } else {
        buf_puts(&b, "/api");
    }
    kube__segment(&b, r->version);
    if (ns && ns[0]) {
        buf_puts(&b, "/namespaces");
        kube__segment(&b, ns);
    }
    kube__segment(&b, r->resource);
    if (name && name[0]) {
        kube__segment(&b, name);
        if (subresource && subresource[0])
            kube__segment(&b, subresource);
    }
    return buf_steal(&b);
}

void kube_query_add(struct buf *path, const char *key, const char *value)
{
    char *k, *v;

    if (value == NULL)
        return;
    k = kube_urlencode(key);
    v = kube_urlencode(value);
    buf_puts(path, path->data && strchr(path->data, '?') ? "&" : "?");
    buf_printf(path, "%s=%s", k, v);
    free(k);
    free(v);
}

void kube_query_add_long(struct buf *path, const char *key, long value)
{
    char v[32];

    snprintf(v, sizeof(v), "%ld", value);
    kube_query_add(path, key, v);
}

/* ---- the client ----------------------------------------------------- */

static void kube__share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct kube *k = ud;

    (void)h;
    (void)access;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&k->share_locks[data]);
}

static void kube__share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    struct kube *k = ud;

    (void)h;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&k->share_locks[data]);
}

/* Checks that a credential file can be read now, so that a typo fails at
 * start-up with its name rather than later as a TLS error. */
static int kube__check_file(const char *what, const char *path, char **err)
{
    if (path && access(path, R_OK) != 0) {
        *err = xasprintf("%s %s: %s", what, path, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

int kube_new(const struct kubeconfig *cfg, const struct kube_options *opts, struct kube **out,
             char **err)
{
    struct kube *k = NULL;
    int rc = -EINVAL;

    *out = NULL;
    *err = NULL;
    pthread_once(&kube__once, kube__global_init);
    if (kube__global_rc != CURLE_OK) {
        *err = xasprintf("curl_global_init: %s", curl_easy_strerror(kube__global_rc));
        return -EIO;
    }
    if (cfg == NULL || cfg->server == NULL || cfg->server[0] == '\0') {
        *err = xstrdup("no API server configured");
        return -EINVAL;
    }
    if (cfg->tls_server_name) {
        /* libcurl has no SNI/verification name override short of rewriting
         * the URL; refuse rather than verify against the wrong name. */
        *err = xstrdup("tls-server-name is not supported");
        return -EINVAL;
    }
    if (kube__check_file("certificate-authority", cfg->ca_file, err) < 0 ||
        kube__check_file("client-certificate", cfg->cert_file, err) < 0 ||
        kube__check_file("client-key", cfg->key_file, err) < 0 ||
        kube__check_file("token file", cfg->token_file, err) < 0)
        return -EINVAL;

    k = xcalloc(1, sizeof(*k));
    k->cfg = kubeconfig_dup(cfg);
    if (opts)
        k->opt = *opts;
    if (k->opt.qps == 0)
        k->opt.qps = KUBE_DEFAULT_QPS;
    if (k->opt.burst <= 0)
        k->opt.burst = KUBE_DEFAULT_BURST;
    if (k->opt.connect_timeout_ms <= 0)
        k->opt.connect_timeout_ms = KUBE_DEFAULT_CONNECT_TIMEOUT_MS;
    if (k->opt.timeout_ms <= 0)
        k->opt.timeout_ms = KUBE_DEFAULT_TIMEOUT_MS;
    if (k->opt.max_retries == 0)
        k->opt.max_retries = KUBE_DEFAULT_MAX_RETRIES;
    if (k->opt.max_retries < 0)
        k->opt.max_retries = 0;
    if (k->opt.backoff_ms <= 0)
        k->opt.backoff_ms = KUBE_DEFAULT_BACKOFF_MS;
    if (k->opt.max_backoff_ms <= 0)
        k->opt.max_backoff_ms = KUBE_DEFAULT_MAX_BACKOFF_MS;
    k->user_agent = xstrdup(k->opt.user_agent ? k->opt.user_agent : "kvrecover/0.1");
    k->opt.user_agent = k->user_agent;

    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&k->share_locks[i], NULL);
    pthread_mutex_init(&k->pool_lock, NULL);
    pthread_mutex_init(&k->lock, NULL);
    clock_cond_init(&k->wake);
    atomic_init(&k->down, false);
    kube__bucket_init(&k->bucket, k->opt.qps, k->opt.burst, clock_mono());
    k->rng = rand_seed(k);
    if (k->cfg->token)
        k->token = xstrdup(k->cfg->token);

    k->share = curl_share_init();
    if (k->share == NULL) {
        *err = xstrdup("curl_share_init failed");
        rc = -ENOMEM;
        goto out;
    }
    curl_share_setopt(k->share, CURLSHOPT_USERDATA, k);
    curl_share_setopt(k->share, CURLSHOPT_LOCKFUNC, kube__share_lock);
    curl_share_setopt(k->share, CURLSHOPT_UNLOCKFUNC, kube__share_unlock);
    curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(k->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = k;
    k = NULL;
    rc = 0;
out:
    kube_free(k);
    return rc;
}

void kube_free(struct kube *k)
{
    if (k == NULL)
        return;
    for (int i = 0; i < k->n_pool; i++)
        curl_easy_cleanup(k->pool[i]);
    if (k->share)
        curl_share_cleanup(k->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&k->share_locks[i]);
    pthread_mutex_destroy(&k->pool_lock);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->wake);
    kube__free_secret(k->token);
    kubeconfig_free(k->cfg);
    free(k->user_agent);
    free(k);
}

void kube_shutdown(struct kube *k)
{
    pthread_mutex_lock(&k->lock);
    atomic_store(&k->down, true);
    pthread_cond_broadcast(&k->wake);
    pthread_mutex_unlock(&k->lock);
}

void kube_stats_foreach(struct kube *k, kube_stats_fn fn, void *ud)
{
    pthread_mutex_lock(&k->lock);
    for (int i = 0; i < k->n_stats; i++)
        fn(ud, k->stats[i].verb, k->stats[i].code, k->stats[i].count);
    pthread_mutex_unlock(&k->lock);
}

void kube_stats_totals(struct kube *k, unsigned long *retries, unsigned long *throttled_ms)
{
    pthread_mutex_lock(&k->lock);
    if (retries)
        *retries = k->retries;
    if (throttled_ms)
        *throttled_ms = k->throttled_ms;
    pthread_mutex_unlock(&k->lock);
}

/* Waits for a token from the limiter. Returns 0 or -ECANCELED. */
static int kube__throttle(struct kube *k)
{
    double wait;

    pthread_mutex_lock(&k->lock);
    wait = kube__bucket_reserve(&k->bucket, clock_mono());
    if (wait > 0)
        k->throttled_ms += (unsigned long)(wait * 1000);
    pthread_mutex_unlock(&k->lock);
    if (wait <= 0)
        return atomic_load(&k->down) ? -ECANCELED : 0;
    return kube__sleep(k, (long)ceil(wait * 1000));
}

/*
 * The "Authorization: Bearer ..." header value to send, as a new string
 * (NULL without a token); the caller wipes and frees it. A token file is
 * re-read when older than KUBE_TOKEN_REFRESH_S or when force is set (after a
 * 401), so that rotated service-account tokens are picked up; a failed read
 * keeps the previous token.
 */
static char *kube__auth_header(struct kube *k, bool force)
{
    char *hdr = NULL;
    double now = clock_mono();

    pthread_mutex_lock(&k->lock);
    if (k->cfg->token_file &&
        (force || k->token == NULL || now - k->token_read >= KUBE_TOKEN_REFRESH_S)) {
        struct buf t = {0};
        int rc = buf_read_file(&t, k->cfg->token_file, KUBE_MAX_TOKEN);
        if (rc == 0) {
            size_t n = t.len;
            while (n > 0 &&
                   (t.data[n - 1] == '\n' || t.data[n - 1] == '\r' || t.data[n - 1] == ' '))
                n--;
            if (n > 0) {
                kube__free_secret(k->token);
                k->token = xstrndup(t.data, n);
            }
            explicit_bzero(t.data, t.len);
        } else {
            log_warn("cannot read token file %s: %s", k->cfg->token_file, strerror(-rc));
        }
        k->token_read = now;
        buf_free(&t);
    }
    if (k->token)
        hdr = xasprintf("Authorization: Bearer %s", k->token);
    pthread_mutex_unlock(&k->lock);
    return hdr;
}

static CURL *kube__handle_get(struct kube *k)
{
    CURL *h = NULL;

    pthread_mutex_lock(&k->pool_lock);
    if (k->n_pool > 0)
        h = k->pool[--k->n_pool];
    pthread_mutex_unlock(&k->pool_lock);
    if (h == NULL) {
        h = curl_easy_init();
        if (h == NULL)
            abort(); /* out of memory, as xmalloc */
    }
    return h;
}

static void kube__handle_put(struct kube *k, CURL *h)
{
    pthread_mutex_lock(&k->pool_lock);
    if (k->n_pool < KUBE_POOL_MAX) {
        k->pool[k->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&k->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* One transfer's state, shared with the libcurl callbacks. */
struct kube_xfer {
    struct kube *k;         /* the client */
    CURL *h;                /* the easy handle */
    struct buf body;        /* response body (all of it, or an error body) */
    long retry_after;       /* Retry-After seconds, or -1 */
    bool too_large;         /* body exceeded KUBE_MAX_RESPONSE */
    kube_chunk_fn on_chunk; /* streaming: receives 2xx data */
    kube_cancel_fn cancel;  /* streaming: polled */
    void *ud;               /* for on_chunk and cancel */
    bool stopped;           /* on_chunk or cancel asked to stop */
    int status_known;       /* 0: not yet; 1: 2xx; -1: not 2xx */
};

static size_t kube__on_header(char *data, size_t size, size_t n, void *ud)
{
    struct kube_xfer *x = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";

    if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char *v = xstrndup(data + sizeof(name) - 1, len - (sizeof(name) - 1));
        x->retry_after = kube__parse_retry_after(v, (long)clock_wall());
        free(v);
    }
    return len;
}

static size_t kube__on_body(char *data, size_t size, size_t n, void *ud)
{
    struct kube_xfer *x = ud;
    size_t len = size * n;

    if (x->on_chunk) {
        if (x->status_known == 0) {
            long code = 0;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
            x->status_known = code >= 200 && code < 300 ? 1 : -1;
        }
        if (x->status_known > 0) {
            if (x->on_chunk(x->ud, data, len) != 0) {
                x->stopped = true;
                return 0; /* makes libcurl abort with CURLE_WRITE_ERROR */
            }
            return len;
        }
        /* An error body from a stream request: collect it as usual. */
    }
    if (x->body.len + len > KUBE_MAX_RESPONSE) {
        x->too_large = true;
        return 0;
    }
    buf_append(&x->body, data, len);
    return len;
}

static int kube__on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow)
{
    struct kube_xfer *x = ud;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (atomic_load(&x->k->down))
        return 1;
    if (x->cancel && x->cancel(x->ud)) {
        x->stopped = true;
        return 1;
    }
    return 0;
}

/*
 * Configures h for one attempt. headers receives the list the caller frees
 * after the transfer; url too.
 */
static void kube__setup(struct kube *k, struct kube_xfer *x, const char *method, const char *url,
                        struct curl_slist *headers, const char *body, size_t body_len,
                        long timeout_ms, char *errbuf)
{
    CURL *h = x->h;
    struct kubeconfig *c = k->cfg;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_SHARE, k->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* we are multi-threaded */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, k->opt.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, k->user_agent);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip for big lists */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);

    /* TLS: always verified. Without a CA, the system store is used. */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_data) {
        struct curl_blob b = {c->ca_data, c->ca_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    } else if (c->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    }
    if (c->cert_data) {
        struct curl_blob b = {c->cert_data, c->cert_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (c->cert_file) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->key_data) {
        struct curl_blob b = {c->key_data, c->key_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (c->key_file) {
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        } else if (strcmp(method, "DELETE") != 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, kube__on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kube__on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, kube__on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
}

/*
 * Runs one transfer. A stream with a cancel callback runs on a multi handle
 * polled every KUBE_CANCEL_POLL_MS: while a stream is idle libcurl calls
 * the progress callback only about once a second, and a reflector's stop
 * should not wait that long. Everything else is a plain easy transfer, which
 * keeps its connection alive in the handle for the next request.
 */
static CURLcode kube__run(struct kube_xfer *x)
{
    CURLcode rc = CURLE_OK;
    CURLM *m;
    int running = 1;

    if (x->on_chunk == NULL || x->cancel == NULL)
        return curl_easy_perform(x->h);
    m = curl_multi_init();
    if (m == NULL)
        abort(); /* out of memory, as xmalloc */
    curl_multi_add_handle(m, x->h);
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (!running)
            break;
        if (atomic_load(&x->k->down) || x->cancel(x->ud)) {
            x->stopped = true;
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        curl_multi_poll(m, NULL, 0, (int)KUBE_CANCEL_POLL_MS, NULL);
    }
    if (!running) {
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->h)
                rc = msg->data.result;
    }
    curl_multi_remove_handle(m, x->h);
    curl_multi_cleanup(m);
    return rc;
}

/* Whether a transport failure happened before the request could reach the
 * server, so that any method may be retried. */
static bool kube__not_sent(CURLcode rc)
{
    return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_SSL_CONNECT_ERROR;
}

/* Whether a transport failure may go away by itself. Certificate problems
 * and refused credentials do not. */
static bool kube__transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:
        return false;
    default:
        return true;
    }
}

/* Builds the request headers. auth is wiped by the caller after use; as_user
 * (NULL: none) is the user to impersonate, already validated. */
static struct curl_slist *kube__headers(const char *content_type, const char *auth,
                                        const char *as_user)
{
    struct curl_slist *l = NULL;

    l = curl_slist_append(l, "Accept: application/json");
    if (content_type) {
        char *ct = xasprintf("Content-Type: %s", content_type);
        l = curl_slist_append(l, ct);
        free(ct);
    }
    /* Large bodies would otherwise wait for "100 Continue" on HTTP/1.1. */
    l = curl_slist_append(l, "Expect:");
    if (auth)
        l = curl_slist_append(l, auth);
    if (as_user) {
        char *imp = xasprintf("Impersonate-User: %s", as_user);
        l = curl_slist_append(l, imp);
        free(imp);
    }
    if (l == NULL)
        abort();
    return l;
}

/* Logs a failed request once, with the Status facts and the identity it
 * was made as (as_user, NULL for the client's own). */
static void kube__log_failure(const char *verb, const char *path, const char *as_user, int rc,
                              const struct kube_error *e, int attempts)
{
    enum log_level lvl = LOG_LVL_WARN;
    cJSON *f = cJSON_CreateObject();

    /* Not found and already exists/conflict are routine answers for a
     * level-triggered controller; the caller decides whether they matter. */
    if (rc == -ENOENT || rc == -EEXIST || rc == -ECANCELED)
        lvl = LOG_LVL_DEBUG;
    cJSON_AddStringToObject(f, "verb", verb);
    cJSON_AddStringToObject(f, "path", path);
    if (as_user)
        cJSON_AddStringToObject(f, "as", as_user);
    cJSON_AddNumberToObject(f, "code", e->http_code);
    cJSON_AddStringToObject(f, "reason", e->reason);
    cJSON_AddStringToObject(f, "message", e->message);
    cJSON_AddStringToObject(f, "error", strerror(-rc));
    cJSON_AddNumberToObject(f, "attempts", attempts);
    log_fields(lvl, "kube request failed", f);
}

/* Fills e for a transport failure and returns the errno. */
static int kube__transport_error(CURLcode crc, const char *errbuf, const struct kube_xfer *x,
                                 struct kube_error *e)
{
    memset(e, 0, sizeof(*e));
    if (x->too_large) {
        snprintf(e->message, sizeof(e->message), "response larger than %u bytes",
                 KUBE_MAX_RESPONSE);
        return -EFBIG;
    }
    snprintf(e->message, sizeof(e->message), "%s", errbuf[0] ? errbuf : curl_easy_strerror(crc));
    if (crc == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    return -EIO;
}

/*
 * The request loop shared by kube_request() and kube_stream(). For a stream
 * (on_chunk set) there are no retries after the response has started.
 */
static int kube__perform(struct kube *k, const char *verb, const char *method, const char *path,
                         const char *as_user, const char *content_type, const char *body,
                         size_t body_len, bool retry_5xx, long timeout_ms, kube_chunk_fn on_chunk,
                         kube_cancel_fn cancel, void *ud, cJSON **out, struct kube_error *err)
{
    struct kube_error scratch = {0};
    struct kube_error *e = err ? err : &scratch;
    char *url = xasprintf("%s%s", k->cfg->server, path);
    char errbuf[CURL_ERROR_SIZE];
    bool reauth = false, reauthed = false;
    int attempt = 0, rc = -EIO;
    int max_retries = on_chunk ? 0 : k->opt.max_retries;

    if (out)
        *out = NULL;
    memset(e, 0, sizeof(*e));
    for (;;) {
        struct kube_xfer x = {
            .k = k, .retry_after = -1, .on_chunk = on_chunk, .cancel = cancel, .ud = ud};
        struct curl_slist *hdrs;
        char *auth;
        CURLcode crc;
        long code = 0;
        bool retry = false;

        attempt++;
        rc = kube__throttle(k);
        if (rc < 0) {
            memset(e, 0, sizeof(*e));
            snprintf(e->message, sizeof(e->message), "client shut down");
            break;
        }
        auth = kube__auth_header(k, reauth);
        reauth = false;
        hdrs = kube__headers(content_type, auth, as_user);
        x.h = kube__handle_get(k);
        errbuf[0] = '\0';
        kube__setup(k, &x, method, url, hdrs, body, body_len, timeout_ms, errbuf);
        crc = kube__run(&x);
        curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, &code);
        /* Drop the references to our header list and blobs before the
         * handle goes back to the pool. */
        curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(x.h, CURLOPT_ERRORBUFFER, NULL);
        kube__handle_put(k, x.h);
        curl_slist_free_all(hdrs);
        kube__free_secret(auth);

        if (crc != CURLE_OK && (x.stopped || atomic_load(&k->down))) {
            memset(e, 0, sizeof(*e));
            e->http_code = (int)code;
            snprintf(e->message, sizeof(e->message), "cancelled");
            kube__stat(k, verb, (int)code);
            buf_free(&x.body);
            rc = -ECANCELED;
            break;
        }
        if (crc != CURLE_OK && !(code >= 300 && x.body.len > 0)) {
            kube__stat(k, verb, 0);
            rc = kube__transport_error(crc, errbuf, &x, e);
            retry = kube__transient(crc) && !x.too_large && (retry_5xx || kube__not_sent(crc)) &&
                    x.status_known >= 0;
        } else if (code >= 200 && code < 300) {
            kube__stat(k, verb, (int)code);
            e->http_code = (int)code;
            rc = 0;
            if (out && x.body.len > 0) {
                *out = cJSON_ParseWithLength(x.body.data, x.body.len);
                if (*out == NULL) {
                    rc = -EBADMSG;
                    snprintf(e->message, sizeof(e->message), "response is not JSON");
                }
            }
            buf_free(&x.body);
            break;
        } else {
            kube__stat(k, verb, (int)code);
            rc = kube_error_from_response(code, x.body.data, x.body.len, e);
            if (code == 401 && k->cfg->token_file && !reauthed) {
                /* The token may have rotated under us: re-read it once. */
                reauth = reauthed = true;
                buf_free(&x.body);
                continue;
            }
            retry = code == 429 || (code >= 500 && code < 600 && retry_5xx);
        }
        buf_free(&x.body);
        if (!retry || attempt > max_retries)
            break;

        long delay =
            kube_backoff_ms(attempt, k->opt.backoff_ms, k->opt.max_backoff_ms, kube__rand01(k));
        if (x.retry_after >= 0 && x.retry_after * 1000 > delay)
            delay = x.retry_after * 1000;
        pthread_mutex_lock(&k->lock);
        k->retries++;
        pthread_mutex_unlock(&k->lock);
        log_debug("kube %s %s: %s (%d), retry %d in %ld ms", verb, path,
                  e->reason[0] ? e->reason : e->message, e->http_code, attempt, delay);
        if (kube__sleep_cancel(k, delay, cancel, ud) < 0) {
            memset(e, 0, sizeof(*e));
            snprintf(e->message, sizeof(e->message), "cancelled");
            rc = -ECANCELED;
            break;
        }
    }
    /* Streams are logged by their caller: a 410 there is routine. */
    if (rc < 0 && on_chunk == NULL)
        kube__log_failure(verb, path, as_user, rc, e, attempt);
    free(url);
    return rc;
}

/* Whether s is what Kubernetes accepts as a DNS-1123 label (dots false: at
 * most 63 of [a-z0-9-]) or subdomain (dots true: at most 253, labels joined
 * by single dots), each label starting and ending with [a-z0-9]. */
static bool kube__dns_name(const char *s, bool dots)
{
    size_t n = strlen(s), max = dots ? 253 : 63;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        bool edge = i == 0 || i == n - 1 || s[i - 1] == '.' || s[i + 1] == '.';
        if (alnum)
            continue;
        if ((c == '-' || (c == '.' && dots)) && !edge)
            continue;
        return false;
    }
    return true;
}

/* Fills err (may be NULL) with a request refused before sending; returns
 * -EINVAL. */
static int kube__refuse(cJSON **out, struct kube_error *err, const char *what)
{
    if (out)
        *out = NULL;
    if (err) {
        memset(err, 0, sizeof(*err));
        kube__copy_clean(err->message, sizeof(err->message), what, strlen(what));
    }
    return -EINVAL;
}

const struct kube_as *kube_as_sa(struct kube_as *as, const char *ns, const char *name)
{
    if (!name || !*name)
        return NULL;
    as->ns = ns;
    as->name = name;
    return as;
}

int kube_request_as(struct kube *k, const struct kube_as *as, const char *method, const char *path,
                    const char *content_type, const char *body, size_t body_len, cJSON **out,
                    struct kube_error *err)
{
    static const char *const verbs[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
    const char *verb = NULL;
    char *as_user = NULL;
    int rc;

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(method, verbs[i]) == 0)
            verb = verbs[i];
    if (verb == NULL || path == NULL || path[0] != '/')
        return kube__refuse(out, err, "bad method or path");
    if (as) {
        if (as->ns == NULL || as->name == NULL || !kube__dns_name(as->ns, false) ||
            !kube__dns_name(as->name, true)) {
            char *why = xasprintf("cannot act as ServiceAccount \"%s/%s\": not a valid "
                                  "namespace and name",
                                  as->ns ? as->ns : "", as->name ? as->name : "");
            rc = kube__refuse(out, err, why);
            free(why);
            return rc;
        }
        as_user = xasprintf("system:serviceaccount:%s:%s", as->ns, as->name);
    }
    if (body && content_type == NULL)
        content_type = "application/json";
    /* A JSON patch ("add" to a list) applied twice is not the same change:
     * after a 5xx the server may have applied it, so only retry when it
     * certainly did not (429, no connection). */
    bool retry_5xx = !(content_type && strcmp(content_type, "application/json-patch+json") == 0);
    rc = kube__perform(k, verb, method, path, as_user, content_type, body, body_len, retry_5xx,
                       k->opt.timeout_ms, NULL, NULL, NULL, out, err);
    free(as_user);
    return rc;
}

int kube_request(struct kube *k, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, cJSON **out, struct kube_error *err)
{
    return kube_request_as(k, NULL, method, path, content_type, body, body_len, out, err);
}

/* Sends obj (may be NULL) printed compactly, as as (NULL: the client). */
static int kube__send_json(struct kube *k, const struct kube_as *as, const char *method,
                           const char *path, const char *content_type, const cJSON *obj,
                           cJSON **out, struct kube_error *err)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    int rc;

    if (obj && text == NULL)
        abort(); /* cJSON prints only fail on allocation */
    rc = kube_request_as(k, as, method, path, obj ? content_type : NULL, text,
                         text ? strlen(text) : 0, out, err);
    free(text);
    return rc;
}

int kube_get(struct kube *k, const char *path, cJSON **out, struct kube_error *err)
{
    return kube_get_as(k, NULL, path, out, err);
}

int kube_get_as(struct kube *k, const struct kube_as *as, const char *path, cJSON **out,
                struct kube_error *err)
{
    return kube_request_as(k, as, "GET", path, NULL, NULL, 0, out, err);
}

int kube_create(struct kube *k, const char *path, const cJSON *obj, cJSON **out,
                struct kube_error *err)
{
    return kube_create_as(k, NULL, path, obj, out, err);
}

int kube_create_as(struct kube *k, const struct kube_as *as, const char *path, const cJSON *obj,
                   cJSON **out, struct kube_error *err)
{
    return kube__send_json(k, as, "POST", path, "application/json", obj, out, err);
}

int kube_update(struct kube *k, const char *path, const cJSON *obj, cJSON **out,
                struct kube_error *err)
{
    return kube__send_json(k, NULL, "PUT", path, "application/json", obj, out, err);
}

int kube_patch(struct kube *k, const char *path, enum kube_patch_type type, const cJSON *patch,
               cJSON **out, struct kube_error *err)
{
    return kube_patch_as(k, NULL, path, type, patch, out, err);
}

int kube_patch_as(struct kube *k, const struct kube_as *as, const char *path,
                  enum kube_patch_type type, const cJSON *patch, cJSON **out,
                  struct kube_error *err)
{
    static const char *const types[] = {
        [KUBE_PATCH_MERGE] = "application/merge-patch+json",
        [KUBE_PATCH_JSON] = "application/json-patch+json",
        [KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
        [KUBE_PATCH_APPLY] = "application/apply-patch+yaml",
    };

    if ((unsigned)type >= sizeof(types) / sizeof(types[0]) || patch == NULL)
        return kube__refuse(out, err, "bad patch");
    return kube__send_json(k, as, "PATCH", path, types[type], patch, out, err);
}

int kube_get_cancel(struct kube *k, const char *path, kube_cancel_fn cancel, void *ud, cJSON **out,
                    struct kube_error *err)
{
    if (path == NULL || path[0] != '/')
        return kube__refuse(out, err, "bad path");
    return kube__perform(k, "GET", "GET", path, NULL, NULL, NULL, 0, true, k->opt.timeout_ms, NULL,
                         cancel, ud, out, err);
}

int kube_stream(struct kube *k, const char *path, long timeout_ms, kube_chunk_fn on_chunk,
                kube_cancel_fn cancel, void *ud, struct kube_error *err)
{
    if (path == NULL || path[0] != '/' || on_chunk == NULL) {
        if (err) {
            memset(err, 0, sizeof(*err));
            snprintf(err->message, sizeof(err->message), "bad path or callback");
        }
        return -EINVAL;
    }
    return kube__perform(k, "WATCH", "GET", path, NULL, NULL, NULL, 0, false,
                         timeout_ms > 0 ? timeout_ms : 0, on_chunk, cancel, ud, NULL, err);
}
