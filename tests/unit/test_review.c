/*
 * Tests for review, against fakeapi playing the API server's
 * authentication and authorization APIs: the TokenReview carries the token
 * (and the client's own credential, not the token, authenticates the
 * call), the SubjectAccessReview carries the reviewed user, groups, uid
 * and extra with the path and verb as nonResourceAttributes, and the
 * answers map to allowed, unauthenticated and forbidden; failures of
 * either call are errors, never an allow.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/kube.h"
#include "kube/review.h"

#define TR_PATH "/apis/authentication.k8s.io/v1/tokenreviews"
#define SAR_PATH "/apis/authorization.k8s.io/v1/subjectaccessreviews"

/* The API: token "alice-token" is alice (groups readers and
 * system:authenticated, extra scopes [metrics]), "bob-token" is bob; only
 * group readers may get /metrics. tr_status/sar_status, when set, answer
 * that HTTP status instead; tr_body/sar_body replace the answer. */
struct api {
    pthread_mutex_t lock;
    int tr_status, sar_status;
    const char *tr_body, *sar_body;
    char *last_tr, *last_sar;         /* request bodies */
    char tr_auth[512], sar_auth[512]; /* their Authorization headers */
};

static void handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct api *a = ud;
    cJSON *body = cJSON_Parse(req->body), *spec = cJSON_GetObjectItem(body, "spec");

    pthread_mutex_lock(&a->lock);
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, TR_PATH) == 0) {
        const cJSON *tok = cJSON_GetObjectItem(spec, "token");
        free(a->last_tr);
        a->last_tr = xstrdup(req->body);
        snprintf(a->tr_auth, sizeof(a->tr_auth), "%s", req->auth);
        if (a->tr_status)
            fake_reply(c, a->tr_status, NULL,
                       "{\"kind\":\"Status\",\"code\":403,\"reason\":\"Forbidden\"}");
        else if (a->tr_body)
            fake_reply(c, 201, NULL, a->tr_body);
        else if (cJSON_IsString(tok) && strcmp(tok->valuestring, "alice-token") == 0)
            fake_reply(c, 201, NULL,
                       "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,"
                       "\"user\":{\"username\":\"alice\",\"uid\":\"u-1\",\"groups\":"
                       "[\"readers\",\"system:authenticated\"],\"extra\":{\"scopes\":"
                       "[\"metrics\"]}},\"audiences\":[\"https://kubernetes.default.svc\"]}}");
        else if (cJSON_IsString(tok) && strcmp(tok->valuestring, "bob-token") == 0)
            fake_reply(c, 201, NULL,
                       "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,"
                       "\"user\":{\"username\":\"bob\",\"groups\":[\"system:authenticated\"]}}}");
        else
            fake_reply(c, 201, NULL,
                       "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":false,"
                       "\"error\":\"invalid bearer token\"}}");
    } else if (strcmp(req->method, "POST") == 0 && strcmp(req->path, SAR_PATH) == 0) {
        const cJSON *groups = cJSON_GetObjectItem(spec, "groups"), *g;
        const cJSON *nra = cJSON_GetObjectItem(spec, "nonResourceAttributes");
        const cJSON *path = cJSON_GetObjectItem(nra, "path");
        int reader = 0;
        free(a->last_sar);
        a->last_sar = xstrdup(req->body);
        snprintf(a->sar_auth, sizeof(a->sar_auth), "%s", req->auth);
        cJSON_ArrayForEach(g, groups) reader |=
            cJSON_IsString(g) && !strcmp(g->valuestring, "readers");
        if (a->sar_status)
            fake_reply(c, a->sar_status, NULL, "{\"kind\":\"Status\",\"code\":500}");
        else if (a->sar_body)
            fake_reply(c, 201, NULL, a->sar_body);
        else if (reader && cJSON_IsString(path) && strcmp(path->valuestring, "/metrics") == 0)
            fake_reply(c, 201, NULL, "{\"status\":{\"allowed\":true}}");
        else
            fake_reply(c, 201, NULL, "{\"status\":{\"allowed\":false,\"reason\":\"no rule\"}}");
    } else {
        fake_reply(c, 404, NULL, "{\"kind\":\"Status\",\"code\":404}");
    }
    pthread_mutex_unlock(&a->lock);
    cJSON_Delete(body);
}

struct fixture {
    struct api api;
    struct fake_server *srv;
    struct kubeconfig *kc;
    struct kube *k;
};

static int setup(struct fixture *f)
{
    /* Generous timeouts: the first TLS handshake under valgrind on a busy
     * machine took longer than the default 10 s to connect. */
    const struct kube_options opts = {
        .max_retries = -1, .qps = -1, .connect_timeout_ms = 60000, .timeout_ms = 60000};
    char *err = NULL;
    int rc;

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->api.lock, NULL);
    f->srv = fake_start(handler, &f->api);
    if (f->srv == NULL)
        return -1;
    f->kc = fake_kubeconfig(f->srv, "controller-token");
    rc = kube_new(f->kc, &opts, &f->k, &err);
    free(err);
    return rc;
}

static void teardown(struct fixture *f)
{
    kube_free(f->k);
    kubeconfig_free(f->kc);
    fake_stop(f->srv);
    free(f->api.last_tr);
    free(f->api.last_sar);
    pthread_mutex_destroy(&f->api.lock);
}

static const cJSON *at(const cJSON *o, const char *a, const char *b, const char *c)
{
    o = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    if (c)
        o = cJSON_GetObjectItemCaseSensitive(o, c);
    return o;
}

TEST(a_reader_token_is_allowed_after_both_reviews)
{
    struct fixture f;
    enum review_decision d = REVIEW_FORBIDDEN;
    cJSON *tr, *sar;
    char *log;

    CHECK_INT(setup(&f), 0);
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_ALLOWED);
    log = fake_log(f.srv);
    CHECK_STR(log, "POST " TR_PATH "\nPOST " SAR_PATH "\n");
    free(log);
    /* The calls authenticate as the controller; the token is only data. */
    CHECK_STR(f.api.tr_auth, "Bearer controller-token");
    CHECK_STR(f.api.sar_auth, "Bearer controller-token");
    tr = cJSON_Parse(f.api.last_tr);
    CHECK_STR(cJSON_GetStringValue(at(tr, "apiVersion", NULL, NULL)), "authentication.k8s.io/v1");
    CHECK_STR(cJSON_GetStringValue(at(tr, "kind", NULL, NULL)), "TokenReview");
    CHECK_STR(cJSON_GetStringValue(at(tr, "spec", "token", NULL)), "alice-token");
    cJSON_Delete(tr);
    sar = cJSON_Parse(f.api.last_sar);
    CHECK_STR(cJSON_GetStringValue(at(sar, "apiVersion", NULL, NULL)), "authorization.k8s.io/v1");
    CHECK_STR(cJSON_GetStringValue(at(sar, "kind", NULL, NULL)), "SubjectAccessReview");
    CHECK_STR(cJSON_GetStringValue(at(sar, "spec", "user", NULL)), "alice");
    CHECK_STR(cJSON_GetStringValue(at(sar, "spec", "uid", NULL)), "u-1");
    CHECK_INT(cJSON_GetArraySize(at(sar, "spec", "groups", NULL)), 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(at(sar, "spec", "groups", NULL), 0)),
              "readers");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(at(sar, "spec", "extra", "scopes"), 0)),
              "metrics");
    CHECK_STR(cJSON_GetStringValue(at(sar, "spec", "nonResourceAttributes", "path")), "/metrics");
    CHECK_STR(cJSON_GetStringValue(at(sar, "spec", "nonResourceAttributes", "verb")), "get");
    CHECK(at(sar, "spec", "resourceAttributes", NULL) == NULL);
    CHECK(strstr(f.api.last_sar, "alice-token") == NULL); /* the token goes no further */
    cJSON_Delete(sar);
    teardown(&f);
}

TEST(a_valid_token_without_the_role_is_forbidden)
{
    struct fixture f;
    enum review_decision d = REVIEW_ALLOWED;

    CHECK_INT(setup(&f), 0);
    CHECK_INT(review_nonresource(f.k, "bob-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_FORBIDDEN);
    /* alice may get /metrics but not the dashboard's state */
    CHECK_INT(review_nonresource(f.k, "alice-token", "/api/state", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_FORBIDDEN);
    CHECK_INT(fake_count(f.srv), 4);
    teardown(&f);
}

TEST(an_invalid_or_empty_token_is_unauthenticated_without_a_second_review)
{
    struct fixture f;
    enum review_decision d = REVIEW_ALLOWED;

    CHECK_INT(setup(&f), 0);
    CHECK_INT(review_nonresource(f.k, "forged", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_UNAUTHENTICATED);
    CHECK_INT(fake_count(f.srv), 1);
    d = REVIEW_ALLOWED;
    CHECK_INT(review_nonresource(f.k, "", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_UNAUTHENTICATED);
    d = REVIEW_ALLOWED;
    CHECK_INT(review_nonresource(f.k, NULL, "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_UNAUTHENTICATED);
    CHECK_INT(fake_count(f.srv), 1);
    /* authenticated without a username, or not a boolean true: not valid */
    f.api.tr_body = "{\"status\":{\"authenticated\":true,\"user\":{}}}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_UNAUTHENTICATED);
    f.api.tr_body = "{\"status\":{\"authenticated\":\"true\",\"user\":{\"username\":\"x\"}}}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_UNAUTHENTICATED);
    teardown(&f);
}

TEST(a_denied_or_malformed_access_review_is_never_an_allow)
{
    struct fixture f;
    enum review_decision d = REVIEW_ALLOWED;

    CHECK_INT(setup(&f), 0);
    f.api.sar_body = "{\"status\":{\"allowed\":true,\"denied\":true}}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_FORBIDDEN);
    f.api.sar_body = "{\"status\":{\"allowed\":\"yes\"}}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), 0);
    CHECK_INT(d, REVIEW_FORBIDDEN);
    f.api.sar_body = "{\"kind\":\"SubjectAccessReview\"}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), -EBADMSG);
    f.api.tr_body = "{\"kind\":\"TokenReview\"}";
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, NULL), -EBADMSG);
    teardown(&f);
}

TEST(api_failures_are_errors_the_caller_sees)
{
    struct fixture f;
    enum review_decision d = REVIEW_ALLOWED;
    struct kube_error err;

    CHECK_INT(setup(&f), 0);
    /* The controller may not create TokenReviews (its ClusterRole lacks the rule). */
    f.api.tr_status = 403;
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, &err), -EACCES);
    CHECK_INT(err.http_code, 403);
    f.api.tr_status = 0;
    f.api.sar_status = 500;
    CHECK_INT(review_nonresource(f.k, "alice-token", "/metrics", "get", &d, &err), -EAGAIN);
    teardown(&f);
}
