/*
 * Tests for kube: paths, error mapping, the limiter and backoff arithmetic,
 * and the whole request path (TLS, retries, Retry-After, Status bodies,
 * streams, cancellation) against fakeapi on 127.0.0.1.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/kube.h"
#include "kube/kube_test.h"

static const char *fixture_text(const char *name, struct buf *b)
{
    buf_reset(b);
    if (buf_read_file(b, harness_fixture(name), 1 << 20) < 0)
        return NULL;
    return b->data;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure pieces ---------------------------------------------------- */

TEST(kube_path_core_group_and_subresource)
{
    struct kube_resource cm = {"", "v1", "configmaps"};
    struct kube_resource vmi = {"kubevirt.io", "v1", "virtualmachineinstances"};
    char *p;

    p = kube_path(&cm, NULL, NULL, NULL);
    CHECK_STR(p, "/api/v1/configmaps");
    free(p);
    p = kube_path(&cm, "ns", "a b", NULL);
    CHECK_STR(p, "/api/v1/namespaces/ns/configmaps/a%20b");
    free(p);
    p = kube_path(&vmi, "prod", "vm-1", "status");
    CHECK_STR(p, "/apis/kubevirt.io/v1/namespaces/prod/virtualmachineinstances/vm-1/status");
    free(p);
    /* A subresource without a name is meaningless and is left out. */
    p = kube_path(&vmi, "", NULL, "status");
    CHECK_STR(p, "/apis/kubevirt.io/v1/virtualmachineinstances");
    free(p);
}

TEST(kube_object_new_has_kind_and_metadata_in_order)
{
    cJSON *meta = NULL, *o = kube_object_new("v1", "ConfigMap", "fx", "vm-005", &meta);
    cJSON *bare = kube_object_new("v1", "Event", NULL, NULL, NULL);
    char *a = cJSON_PrintUnformatted(o), *b = cJSON_PrintUnformatted(bare);

    CHECK(meta == cJSON_GetObjectItemCaseSensitive(o, "metadata"));
    CHECK_STR(a, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"vm-005\","
                 "\"namespace\":\"fx\"}}");
    CHECK_STR(b, "{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{}}");
    free(a);
    free(b);
    cJSON_Delete(o);
    cJSON_Delete(bare);
}

TEST(kube_query_encodes_and_chains)
{
    struct buf b = {0};

    buf_puts(&b, "/api/v1/configmaps");
    kube_query_add(&b, "labelSelector", "kvrecover.io/pool in (a,b)");
    kube_query_add(&b, "continue", NULL); /* nothing */
    kube_query_add_long(&b, "limit", 500);
    CHECK_STR(b.data, "/api/v1/configmaps?labelSelector=kvrecover.io%2Fpool%20in%20%28a%2Cb%29"
                      "&limit=500");
    buf_free(&b);
}

TEST(kube_errno_for_each_status)
{
    CHECK_INT(kube_errno_for_status(200), 0);
    CHECK_INT(kube_errno_for_status(201), 0);
    CHECK_INT(kube_errno_for_status(0), -EIO);
    CHECK_INT(kube_errno_for_status(400), -EINVAL);
    CHECK_INT(kube_errno_for_status(422), -EINVAL);
    CHECK_INT(kube_errno_for_status(401), -EACCES);
    CHECK_INT(kube_errno_for_status(403), -EACCES);
    CHECK_INT(kube_errno_for_status(404), -ENOENT);
    CHECK_INT(kube_errno_for_status(409), -EEXIST);
    CHECK_INT(kube_errno_for_status(410), -ESTALE);
    CHECK_INT(kube_errno_for_status(429), -EAGAIN);
    CHECK_INT(kube_errno_for_status(503), -EAGAIN);
    CHECK_INT(kube_errno_for_status(302), -EPROTO);
}

/* A recorded Status body gives its code, reason and message. */
TEST(kube_error_from_status_body)
{
    struct buf b = {0};
    struct kube_error e;
    const char *body = fixture_text("kube-status-conflict.json", &b);

    CHECK(body != NULL);
    CHECK_INT(kube_error_from_response(409, body, strlen(body), &e), -EEXIST);
    CHECK_INT(e.http_code, 409);
    CHECK_INT(e.code, 409);
    CHECK_STR(e.reason, "Conflict");
    CHECK(strstr(e.message, "the object has been modified") != NULL);
    CHECK(kube_error_is(&e, "Conflict"));
    CHECK(!kube_error_is(&e, "AlreadyExists"));
    buf_free(&b);
}

/* Two 422s recorded from kube-apiserver v1.35 with KubeVirt v1.8.4: a JSON
 * patch whose "test" failed comes back with empty details, an admission
 * refusal names its causes. Only the second is about the object. */
TEST(kube_error_detailed)
{
    struct buf b = {0};
    struct kube_error e;
    const char *body = fixture_text("kube-status-patch-not-applied.json", &b);

    CHECK(body != NULL);
    CHECK_INT(kube_error_from_response(422, body, strlen(body), &e), -EINVAL);
    CHECK_STR(e.reason, "Invalid");
    CHECK(!e.detailed);
    buf_free(&b);
    body = fixture_text("kube-status-webhook-denied.json", &b);
    CHECK(body != NULL);
    CHECK_INT(kube_error_from_response(422, body, strlen(body), &e), -EINVAL);
    CHECK(e.detailed);
    buf_free(&b);
    body = fixture_text("kube-status-conflict.json", &b);
    CHECK(body != NULL);
    CHECK_INT(kube_error_from_response(409, body, strlen(body), &e), -EEXIST);
    CHECK(e.detailed); /* names the object */
    buf_free(&b);
}

/* A body that is not a Status (a proxy's page) is kept, truncated and
 * stripped of control characters, so that it cannot forge log lines. */
TEST(kube_error_from_html_body)
{
    struct kube_error e;
    const char *html = "<html>\n<b>Bad Gateway</b>\r\n</html>";

    CHECK_INT(kube_error_from_response(502, html, strlen(html), &e), -EAGAIN);
    CHECK_STR(e.reason, "");
    CHECK_STR(e.message, "<html> <b>Bad Gateway</b>  </html>");
    CHECK_INT(e.code, 0);
    CHECK_INT(kube_error_from_response(404, NULL, 0, NULL), -ENOENT);
}

TEST(kube_bucket_burst_then_rate)
{
    struct kube_bucket b;

    kube__bucket_init(&b, 10, 2, 100.0);
    CHECK_NEAR(kube__bucket_reserve(&b, 100.0), 0, 1e-9);
    CHECK_NEAR(kube__bucket_reserve(&b, 100.0), 0, 1e-9);
    /* Burst spent: the next waits one token's time, the one after two. */
    CHECK_NEAR(kube__bucket_reserve(&b, 100.0), 0.1, 1e-9);
    CHECK_NEAR(kube__bucket_reserve(&b, 100.0), 0.2, 1e-9);
    /* Refill never exceeds the burst. */
    kube__bucket_init(&b, 10, 2, 0.0);
    CHECK_NEAR(kube__bucket_reserve(&b, 1000.0), 0, 1e-9);
    CHECK_NEAR(b.tokens, 1, 1e-9);
    kube__bucket_init(&b, 0, 1, 0.0); /* unlimited */
    for (int i = 0; i < 100; i++)
        CHECK_NEAR(kube__bucket_reserve(&b, 0.0), 0, 1e-9);
}

TEST(kube_retry_after_forms)
{
    CHECK_INT(kube__parse_retry_after("3", 0), 3);
    CHECK_INT(kube__parse_retry_after(" 7\r\n", 0), 7);
    CHECK_INT(kube__parse_retry_after("100000", 0), KUBE_MAX_RETRY_AFTER_S);
    CHECK_INT(kube__parse_retry_after("3x", 0), -1);
    CHECK_INT(kube__parse_retry_after("soon", 0), -1);
    CHECK_INT(kube__parse_retry_after(NULL, 0), -1);
    /* HTTP-date: 784111777 is Sun, 06 Nov 1994 08:49:37 GMT. */
    CHECK_INT(kube__parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 5), 5);
    CHECK_INT(kube__parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 5), 0);
}

TEST(kube_backoff_doubles_caps_and_jitters)
{
    CHECK_INT(kube_backoff_ms(1, 200, 10000, 0.0), 100);
    CHECK_INT(kube_backoff_ms(1, 200, 10000, 0.999999), 199);
    CHECK_INT(kube_backoff_ms(3, 200, 10000, 0.0), 400);
    CHECK_INT(kube_backoff_ms(30, 200, 10000, 0.0), 5000);
    CHECK_INT(kube_backoff_ms(1000, 200, 10000, 0.5), 7500);
}

/* ---- against fakeapi ------------------------------------------------ */

/* A scripted server: the n-th request gets script[n] ("status|headers|body";
 * the last entry repeats). Requests are recorded by fakeapi itself. */
struct script {
    const char *const *steps; /* the answers */
    int n;                    /* entries in steps */
    atomic_int next;          /* next step */
    char last_auth[512];      /* Authorization of the last request */
    char last_type[128];      /* Content-Type of the last request */
    char last_body[1024];     /* body of the last request */
};

static void scripted(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct script *s = ud;
    int i = atomic_fetch_add(&s->next, 1);
    const char *step = s->steps[i < s->n ? i : s->n - 1];
    const char *bar1 = strchr(step, '|');
    const char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    char *headers = bar2 ? xstrndup(bar1 + 1, (size_t)(bar2 - bar1 - 1)) : NULL;

    snprintf(s->last_auth, sizeof(s->last_auth), "%s", req->auth);
    snprintf(s->last_type, sizeof(s->last_type), "%s", req->content_type);
    snprintf(s->last_body, sizeof(s->last_body), "%s", req->body);
    fake_reply(c, (int)strtol(step, NULL, 10), headers && headers[0] ? headers : NULL,
               bar2 ? bar2 + 1 : NULL);
    free(headers);
}

/* Fast retries so the tests stay quick. */
static const struct kube_options fast = {
    .qps = -1, .max_retries = 3, .backoff_ms = 10, .max_backoff_ms = 40, .timeout_ms = 5000};

struct rig {
    struct fake_server *srv;
    struct kube *k;
};

static int rig_up(struct rig *r, fake_handler_fn fn, void *ud, const struct kube_options *o)
{
    struct kubeconfig *cfg;
    char *err = NULL;
    int rc;

    r->k = NULL;
    r->srv = fake_start(fn, ud);
    if (r->srv == NULL)
        return -EIO;
    cfg = fake_kubeconfig(r->srv, "sekret");
    rc = kube_new(cfg, o, &r->k, &err);
    if (rc < 0)
        fprintf(stderr, "kube_new: %s\n", err);
    free(err);
    kubeconfig_free(cfg);
    return rc;
}

static void rig_down(struct rig *r)
{
    kube_free(r->k);
    fake_stop(r->srv);
}

/* A GET over verified TLS returns the parsed body and sends the token. */
TEST(kube_get_ok_with_bearer_token)
{
    static const char *const steps[] = {"200||{\"kind\":\"ConfigMap\",\"data\":{\"a\":\"1\"}}"};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;
    struct kube_error e;
    cJSON *out = NULL;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_get(r.k, "/api/v1/namespaces/a/configmaps/x", &out, &e), 0);
    CHECK(out != NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(out, "kind")->valuestring, "ConfigMap");
    CHECK_INT(e.http_code, 200);
    CHECK_STR(s.last_auth, "Bearer sekret");
    cJSON_Delete(out);
    char *log = fake_log(r.srv);
    CHECK_STR(log, "GET /api/v1/namespaces/a/configmaps/x\n");
    free(log);
    rig_down(&r);
}

/* A Status error body reaches the caller as errno and kube_error, without
 * retries for a client error. */
TEST(kube_status_errors_not_retried)
{
    struct buf b = {0};
    const char *nf = fixture_text("kube-status-notfound.json", &b);
    char *step = xasprintf("404||%s", nf);
    const char *steps[] = {step};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;
    struct kube_error e;
    cJSON *out = (cJSON *)1;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_get(r.k, "/api/v1/namespaces/a/configmaps/nope", &out, &e), -ENOENT);
    CHECK(out == NULL);
    CHECK_INT(e.http_code, 404);
    CHECK_STR(e.reason, "NotFound");
    CHECK_STR(e.message, "configmaps \"nope\" not found");
    CHECK_INT(fake_count(r.srv), 1);
    rig_down(&r);
    free(step);
    buf_free(&b);
}

/* 429 with Retry-After: 1 waits at least a second, then succeeds. */
TEST(kube_429_honours_retry_after)
{
    static const char *const steps[] = {
        "429|Retry-After: 1\r\n|{\"kind\":\"Status\",\"code\":429,\"reason\":\"TooManyRequests\"}",
        "200||{\"ok\":true}"};
    struct script s = {.steps = steps, .n = 2};
    struct rig r;
    cJSON *out = NULL;
    unsigned long retries = 0;
    long t0;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    t0 = now_ms();
    CHECK_INT(kube_get(r.k, "/api/v1/pods", &out, NULL), 0);
    CHECK(now_ms() - t0 >= 1000);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(out, "ok")));
    CHECK_INT(fake_count(r.srv), 2);
    kube_stats_totals(r.k, &retries, NULL);
    CHECK_INT(retries, 1);
    cJSON_Delete(out);
    rig_down(&r);
}

/* 5xx are retried with backoff until success... */
TEST(kube_5xx_retried_then_ok)
{
    static const char *const steps[] = {"500||{\"kind\":\"Status\",\"code\":500}", "503||",
                                        "201||{\"created\":1}"};
    struct script s = {.steps = steps, .n = 3};
    struct rig r;
    cJSON *body = cJSON_Parse("{\"metadata\":{\"name\":\"x\"}}");
    cJSON *out = NULL;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_create(r.k, "/api/v1/namespaces/a/configmaps", body, &out, NULL), 0);
    CHECK_INT(fake_count(r.srv), 3);
    CHECK_STR(s.last_type, "application/json");
    CHECK_STR(s.last_body, "{\"metadata\":{\"name\":\"x\"}}");
    cJSON_Delete(out);
    cJSON_Delete(body);
    rig_down(&r);
}

/* ...and give -EAGAIN once the retries are spent. */
TEST(kube_5xx_gives_up_after_max_retries)
{
    static const char *const steps[] = {"503||{\"kind\":\"Status\",\"code\":503,"
                                        "\"reason\":\"ServiceUnavailable\"}"};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;
    struct kube_error e;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_get(r.k, "/api/v1/pods", NULL, &e), -EAGAIN);
    CHECK_INT(fake_count(r.srv), 1 + fast.max_retries);
    CHECK_STR(e.reason, "ServiceUnavailable");
    rig_down(&r);
}

/* A JSON patch is not retried after a 5xx (it could apply twice), but is
 * after a 429 (the server did nothing). */
TEST(kube_json_patch_not_retried_on_5xx)
{
    static const char *const steps[] = {"500||", "200||{}"};
    static const char *const steps429[] = {"429||", "200||{}"};
    struct script s = {.steps = steps, .n = 2};
    struct script s429 = {.steps = steps429, .n = 2};
    struct rig r;
    cJSON *patch = cJSON_Parse("[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]");

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(
        kube_patch(r.k, "/api/v1/namespaces/a/configmaps/x", KUBE_PATCH_JSON, patch, NULL, NULL),
        -EAGAIN);
    CHECK_INT(fake_count(r.srv), 1);
    CHECK_STR(s.last_type, "application/json-patch+json");
    rig_down(&r);
    CHECK_INT(rig_up(&r, scripted, &s429, &fast), 0);
    CHECK_INT(
        kube_patch(r.k, "/api/v1/namespaces/a/configmaps/x", KUBE_PATCH_JSON, patch, NULL, NULL),
        0);
    CHECK_INT(fake_count(r.srv), 2);
    rig_down(&r);
    cJSON_Delete(patch);
}

/* A 2xx body that is not JSON is an error, not a crash or a NULL object. */
TEST(kube_non_json_2xx_is_ebadmsg)
{
    static const char *const steps[] = {"200||<html>"};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;
    cJSON *out = (cJSON *)1;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_get(r.k, "/api/v1/pods", &out, NULL), -EBADMSG);
    CHECK(out == NULL);
    rig_down(&r);
}

/* Without the test CA the server's certificate is refused (the system
 * store does not know it): TLS is never skipped, and not retried. */
TEST(kube_tls_unknown_ca_refused)
{
    static const char *const steps[] = {"200||{}"};
    struct script s = {.steps = steps, .n = 1};
    struct fake_server *srv = fake_start(scripted, &s);
    struct kubeconfig *cfg;
    struct kube *k = NULL;
    struct kube_error e;
    char *err = NULL;

    CHECK(srv != NULL);
    cfg = fake_kubeconfig(srv, NULL);
    free(cfg->ca_file);
    cfg->ca_file = NULL;
    CHECK_INT(kube_new(cfg, &fast, &k, &err), 0);
    CHECK_INT(kube_get(k, "/api/v1/pods", NULL, &e), -EIO);
    CHECK(e.message[0] != '\0');
    CHECK_INT(fake_count(srv), 0);
    kube_free(k);
    kubeconfig_free(cfg);
    fake_stop(srv);
}

/* kube_new refuses a config without a server or with an unreadable file. */
TEST(kube_new_checks_config)
{
    struct kubeconfig cfg = {0};
    struct kube *k = NULL;
    char *err = NULL;

    CHECK_INT(kube_new(&cfg, NULL, &k, &err), -EINVAL);
    CHECK(err != NULL && strstr(err, "server") != NULL);
    free(err);
    cfg.server = "https://127.0.0.1:1";
    cfg.ca_file = "/nonexistent/ca.pem";
    CHECK_INT(kube_new(&cfg, NULL, &k, &err), -EINVAL);
    CHECK(err != NULL && strstr(err, "/nonexistent/ca.pem") != NULL);
    free(err);
    CHECK(k == NULL);
}

/* The counters per verb and code include retried attempts. */
struct stat_sum {
    unsigned long get200, get500;
};

static void sum_stats(void *ud, const char *verb, int code, unsigned long count)
{
    struct stat_sum *s = ud;

    if (strcmp(verb, "GET") == 0 && code == 200)
        s->get200 += count;
    if (strcmp(verb, "GET") == 0 && code == 500)
        s->get500 += count;
}

TEST(kube_stats_count_attempts)
{
    static const char *const steps[] = {"500||", "200||{}"};
    struct script s = {.steps = steps, .n = 2};
    struct rig r;
    struct stat_sum sum = {0};

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    CHECK_INT(kube_get(r.k, "/api/v1/pods", NULL, NULL), 0);
    kube_stats_foreach(r.k, sum_stats, &sum);
    CHECK_INT(sum.get200, 1);
    CHECK_INT(sum.get500, 1);
    rig_down(&r);
}

/* ---- acting as a ServiceAccount -------------------------------------- */

/* What each request carried: its Authorization and its Impersonate-*
 * headers, in order of arrival; answered from a script as scripted(). */
struct seen {
    struct script s;      /* the answers */
    pthread_mutex_t lock; /* guards the arrays */
    char auth[8][512];    /* Authorization of request i */
    char imp[8][1024];    /* Impersonate-* lines of request i */
    int n;                /* requests recorded (at most 8) */
};

static void recording(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct seen *w = ud;

    pthread_mutex_lock(&w->lock);
    if (w->n < 8) {
        snprintf(w->auth[w->n], sizeof(w->auth[0]), "%s", req->auth);
        snprintf(w->imp[w->n], sizeof(w->imp[0]), "%s", req->impersonate);
        w->n++;
    }
    pthread_mutex_unlock(&w->lock);
    scripted(&w->s, req, c);
}

#define AS_SHOP "Impersonate-User: system:serviceaccount:shop:recoverer\n"

/* An identity goes out as Impersonate-User alone (no group, so that the API
 * server gives the ServiceAccount its own groups, and no uid), on every
 * attempt of that request, and never on a request that did not ask for it,
 * though the same connection and handle carry them all. */
TEST(kube_as_sends_impersonate_user_only_when_asked)
{
    static const char *const steps[] = {
        "201||{}", "200||{}", "503||{\"kind\":\"Status\",\"code\":503}",
        "200||{}", "200||{}", "200||{}"};
    struct seen w = {.s = {.steps = steps, .n = 6}, .lock = PTHREAD_MUTEX_INITIALIZER};
    const struct kube_as as = {"shop", "recoverer"};
    struct rig r;
    cJSON *obj = cJSON_Parse("{\"kind\":\"VirtualMachine\"}");

    CHECK_INT(rig_up(&r, recording, &w, &fast), 0);
    CHECK_INT(kube_create_as(r.k, &as, "/apis/kubevirt.io/v1/namespaces/shop/virtualmachines", obj,
                             NULL, NULL),
              0);
    CHECK_INT(kube_get(r.k, "/api/v1/namespaces/shop/configmaps/x", NULL, NULL), 0);
    /* a retried request carries the identity on each attempt */
    CHECK_INT(kube_patch_as(r.k, &as, "/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/a",
                            KUBE_PATCH_MERGE, obj, NULL, NULL),
              0);
    CHECK_INT(kube_get_as(r.k, NULL, "/api/v1/namespaces/shop/configmaps/x", NULL, NULL), 0);
    CHECK_INT(
        kube_request(r.k, "GET", "/api/v1/namespaces/shop/configmaps/y", NULL, NULL, 0, NULL, NULL),
        0);
    CHECK_INT(w.n, 6);
    CHECK_STR(w.imp[0], AS_SHOP);
    CHECK_STR(w.imp[1], "");
    CHECK_STR(w.imp[2], AS_SHOP);
    CHECK_STR(w.imp[3], AS_SHOP);
    CHECK_STR(w.imp[4], "");
    CHECK_STR(w.imp[5], "");
    /* the client still authenticates as itself */
    for (int i = 0; i < w.n; i++)
        CHECK_STR(w.auth[i], "Bearer sekret");
    cJSON_Delete(obj);
    rig_down(&r);
}

/* Names from a tenant's policy never shape a header: anything that is not a
 * namespace and a ServiceAccount name Kubernetes would accept is refused
 * before a byte is sent. */
TEST(kube_as_refuses_names_kubernetes_would_not_accept)
{
    static const char *const steps[] = {"200||{}"};
    struct seen w = {.s = {.steps = steps, .n = 1}, .lock = PTHREAD_MUTEX_INITIALIZER};
    char long_name[300];
    const struct kube_as bad[] = {
        {"shop", "a\r\nImpersonate-Group: system:masters"},
        {"shop", "x:y"},
        {"Shop", "x"},
        {"a.b", "x"},
        {"shop", ""},
        {"", "x"},
        {NULL, "x"},
        {"shop", NULL},
        {"-shop", "x"},
        {"shop", "x."},
        {"shop", "a..b"},
        {"shop", long_name},
    };
    const struct kube_as good = {"shop", "a.b-c9"};
    struct rig r;
    struct kube_error e;
    cJSON *out = (cJSON *)1;

    memset(long_name, 'a', 254);
    long_name[254] = '\0';
    CHECK_INT(rig_up(&r, recording, &w, &fast), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(kube_get_as(r.k, &bad[i], "/api/v1/namespaces/shop/configmaps", &out, &e),
                  -EINVAL);
        CHECK(out == NULL);
        CHECK(strstr(e.message, "cannot act as ServiceAccount") != NULL);
        CHECK(strchr(e.message, '\r') == NULL && strchr(e.message, '\n') == NULL);
    }
    CHECK_INT(fake_count(r.srv), 0);
    long_name[253] = '\0'; /* 253: the longest name allowed */
    CHECK_INT(kube_get_as(r.k, &(struct kube_as){"shop", long_name}, "/api/v1/pods", NULL, NULL),
              0);
    CHECK_INT(kube_get_as(r.k, &good, "/api/v1/pods", NULL, NULL), 0);
    CHECK_INT(w.n, 2);
    CHECK_STR(w.imp[1], "Impersonate-User: system:serviceaccount:shop:a.b-c9\n");
    rig_down(&r);
}

/* Runs fn with stderr (the log) going to a temporary file, and returns what
 * was written there (caller frees). */
static char *stderr_of(void (*fn)(void *), void *ud)
{
    FILE *tmp = tmpfile();
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    int saved;

    if (tmp == NULL)
        return NULL;
    fflush(stderr);
    saved = dup(2);
    dup2(fileno(tmp), 2);
    fn(ud);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    while ((n = fread(chunk, 1, sizeof(chunk), tmp)) > 0)
        buf_append(&b, chunk, n);
    fclose(tmp);
    buf_puts(&b, "");
    return buf_steal(&b);
}

struct forbidden_call {
    struct rig *r;
    struct kube_error e;
    int rc;
};

static void create_as_recoverer(void *ud)
{
    struct forbidden_call *f = ud;
    const struct kube_as as = {"shop", "recoverer"};
    cJSON *obj = cJSON_Parse("{\"kind\":\"VirtualMachine\"}");

    log_set_level(LOG_LVL_DEBUG);
    f->rc = kube_create_as(f->r->k, &as, "/apis/kubevirt.io/v1/namespaces/shop/virtualmachines",
                           obj, NULL, &f->e);
    log_set_level(LOG_LVL_INFO);
    cJSON_Delete(obj);
}

/* A refused impersonation is a 403 whose Status message reaches the caller
 * untouched and is not retried; the log names the identity, never the
 * token or a header. */
TEST(kube_as_forbidden_reaches_the_caller_and_the_log_without_secrets)
{
    static const char *const steps[] = {
        "403||{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
        "\"serviceaccounts \\\"recoverer\\\" is forbidden: User "
        "\\\"system:serviceaccount:kvrecover-system:kvrecover-controller\\\" cannot impersonate "
        "resource \\\"serviceaccounts\\\" in API group \\\"\\\" in the namespace "
        "\\\"shop\\\"\",\"reason\":\"Forbidden\",\"details\":{\"name\":\"recoverer\",\"kind\":"
        "\"serviceaccounts\"},\"code\":403}"};
    struct seen w = {.s = {.steps = steps, .n = 1}, .lock = PTHREAD_MUTEX_INITIALIZER};
    struct rig r;
    struct forbidden_call f = {.r = &r};
    char *log;

    CHECK_INT(rig_up(&r, recording, &w, &fast), 0);
    log = stderr_of(create_as_recoverer, &f);
    CHECK(log != NULL);
    CHECK_INT(f.rc, -EACCES);
    CHECK_INT(f.e.http_code, 403);
    CHECK_STR(f.e.reason, "Forbidden");
    CHECK(strstr(f.e.message, "cannot impersonate resource \"serviceaccounts\"") != NULL);
    CHECK_INT(fake_count(r.srv), 1);
    CHECK(strstr(log, "\"as\":\"system:serviceaccount:shop:recoverer\"") != NULL);
    CHECK(strstr(log, "sekret") == NULL);
    CHECK(strstr(log, "Bearer") == NULL);
    CHECK(strstr(log, "Impersonate") == NULL);
    free(log);
    rig_down(&r);
}

/* ---- streams -------------------------------------------------------- */

/* The stream handler: sends the text in pieces of the sizes in cuts, then
 * ends the response; or answers 410; or holds the stream open silently. */
struct streamer {
    const char *text; /* what to send */
    const int *cuts;  /* piece sizes, 0-terminated; the rest goes last */
    int status;       /* 200 to stream, else a plain error answer */
    bool hold;        /* keep the stream open until the client leaves */
    atomic_bool left; /* the client went away during a held stream */
};

static void streaming(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct streamer *st = ud;
    size_t off = 0, n = strlen(st->text);

    (void)req;
    if (st->status != 200) {
        fake_reply(c, st->status, NULL,
                   "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\","
                   "\"message\":\"too old resource version: 1 (5)\"}");
        return;
    }
    fake_stream_begin(c);
    for (const int *cut = st->cuts; cut && *cut && off < n; cut++) {
        size_t m = (size_t)*cut < n - off ? (size_t)*cut : n - off;
        fake_stream_send(c, st->text + off, m);
        off += m;
        fake_stream_wait(c, 5); /* let each piece travel on its own */
    }
    fake_stream_send(c, st->text + off, n - off);
    if (st->hold) {
        if (fake_stream_wait(c, 10000))
            atomic_store(&st->left, true);
        fake_close(c);
        return;
    }
    fake_stream_end(c);
}

struct sink {
    struct buf got;     /* every byte received */
    atomic_int calls;   /* on_chunk calls */
    atomic_bool cancel; /* what the cancel callback answers */
};

static int sink_chunk(void *ud, const char *data, size_t len)
{
    struct sink *s = ud;

    buf_append(&s->got, data, len);
    s->calls++;
    return 0;
}

static bool sink_cancel(void *ud)
{
    struct sink *s = ud;

    return atomic_load(&s->cancel);
}

/* A chunked body cut at odd places arrives whole, in order, in several
 * calls, and the stream returns 0 when the server ends it. */
TEST(kube_stream_delivers_chunks)
{
    static const int cuts[] = {1, 2, 7, 3, 0};
    struct streamer st = {
        .text = "{\"type\":\"ADDED\"}\n{\"type\":\"BOOKMARK\"}\n", .cuts = cuts, .status = 200};
    struct sink sk = {0};
    struct rig r;

    CHECK_INT(rig_up(&r, streaming, &st, &fast), 0);
    CHECK_INT(kube_stream(r.k, "/api/v1/configmaps?watch=true", 0, sink_chunk, NULL, &sk, NULL), 0);
    CHECK_STR(sk.got.data, st.text);
    CHECK(sk.calls >= 2);
    rig_down(&r);
    buf_free(&sk.got);
}

/* An error status on a stream is an errno with the Status, and no data
 * reaches on_chunk. */
TEST(kube_stream_410_is_estale)
{
    struct streamer st = {.text = "", .status = 410};
    struct sink sk = {0};
    struct rig r;
    struct kube_error e;

    CHECK_INT(rig_up(&r, streaming, &st, &fast), 0);
    CHECK_INT(kube_stream(r.k, "/api/v1/configmaps?watch=true", 0, sink_chunk, NULL, &sk, &e),
              -ESTALE);
    CHECK_INT(sk.calls, 0);
    CHECK_STR(e.reason, "Expired");
    CHECK_INT(fake_count(r.srv), 1); /* streams are never retried */
    rig_down(&r);
    buf_free(&sk.got);
}

/* Sets the sink's cancel flag 300 ms after the server has the request
 * and, for a stream, data has arrived (TLS handshakes are slow under
 * valgrind), and notes when. */
struct canceller {
    struct sink *sk;         /* whose cancel flag to set */
    struct fake_server *srv; /* to see the request arrive */
    bool want_data;          /* wait for data on the stream too */
    long at;                 /* monotonic ms when cancelled */
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;
    struct timespec tick = {0, 10 * 1000000L}, d = {0, 300 * 1000000L};

    for (int i = 0;
         i < 3000 && (fake_count(c->srv) < 1 || (c->want_data && atomic_load(&c->sk->calls) < 1));
         i++)
        nanosleep(&tick, NULL);
    nanosleep(&d, NULL);
    c->at = now_ms();
    atomic_store(&c->sk->cancel, true);
    return NULL;
}

/* A silent stream is aborted by the cancel callback within a poll period
 * (not libcurl's one-second progress interval), and the server sees the
 * client leave. */
TEST(kube_stream_cancel_on_silent_stream)
{
    struct streamer st = {.text = "{\"type\":\"ADDED\"}\n", .status = 200, .hold = true};
    struct sink sk = {0};
    struct rig r;
    pthread_t t;

    CHECK_INT(rig_up(&r, streaming, &st, &fast), 0);
    struct canceller c = {.sk = &sk, .srv = r.srv, .want_data = true};
    pthread_create(&t, NULL, cancel_later, &c);
    CHECK_INT(
        kube_stream(r.k, "/api/v1/configmaps?watch=true", 0, sink_chunk, sink_cancel, &sk, NULL),
        -ECANCELED);
    long done = now_ms();
    pthread_join(t, NULL);
    CHECK(done - c.at < 500);
    CHECK_STR(sk.got.data, st.text);
    rig_down(&r);
    CHECK(atomic_load(&st.left));
    buf_free(&sk.got);
}

/* kube_get_cancel ends a retry loop promptly when cancelled. */
TEST(kube_get_cancel_cuts_retry_sleep)
{
    static const char *const steps[] = {"429|Retry-After: 30\r\n|"};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;
    struct sink sk = {0};
    pthread_t t;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    struct canceller c = {.sk = &sk, .srv = r.srv};
    pthread_create(&t, NULL, cancel_later, &c);
    CHECK_INT(kube_get_cancel(r.k, "/api/v1/pods", sink_cancel, &sk, NULL, NULL), -ECANCELED);
    long done = now_ms();
    pthread_join(t, NULL);
    CHECK(done - c.at < 500);
    CHECK_INT(fake_count(r.srv), 1);
    rig_down(&r);
}

/* kube_shutdown makes requests fail with -ECANCELED. */
TEST(kube_shutdown_cancels)
{
    static const char *const steps[] = {"200||{}"};
    struct script s = {.steps = steps, .n = 1};
    struct rig r;

    CHECK_INT(rig_up(&r, scripted, &s, &fast), 0);
    kube_shutdown(r.k);
    CHECK_INT(kube_get(r.k, "/api/v1/pods", NULL, NULL), -ECANCELED);
    CHECK_INT(fake_count(r.srv), 0);
    rig_down(&r);
}
