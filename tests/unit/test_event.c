/*
 * Tests for event: the Event object written, and the recorder's
 * de-duplication (a repeat bumps count on the Event it made, a different
 * message makes a new one, a vanished Event is created again), against
 * fakeapi.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/event.h"
#include "kube/event_test.h"

static const char *str_at(const cJSON *obj, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, a);

    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const struct event_ref vmi = {
    .api_version = "kubevirt.io/v1",
    .kind = "VirtualMachineInstance",
    .ns = "prod",
    .name = "vm-001",
    .uid = "6b1f0c1e-0000-4000-8000-000000000001",
};

/* The Event carries what `kubectl describe` and `kubectl get events` read:
 * the involved object, type, reason, message, source and reporting
 * controller, both timestamps and count 1, in the object's namespace, with
 * a server-generated name. */
TEST(event_object_fields)
{
    cJSON *ev = event__object(&vmi, "Warning", "NoEligibleCandidate", "no member scored 0.5",
                              "kvrecover-controller", "host_1", "2024-05-01T12:00:00Z");

    CHECK(ev != NULL);
    CHECK_STR(str_at(ev, "apiVersion", NULL), "v1");
    CHECK_STR(str_at(ev, "kind", NULL), "Event");
    CHECK_STR(str_at(ev, "metadata", "namespace"), "prod");
    CHECK_STR(str_at(ev, "metadata", "generateName"), "vm-001.");
    CHECK(str_at(ev, "metadata", "name") == NULL);
    CHECK_STR(str_at(ev, "involvedObject", "apiVersion"), "kubevirt.io/v1");
    CHECK_STR(str_at(ev, "involvedObject", "kind"), "VirtualMachineInstance");
    CHECK_STR(str_at(ev, "involvedObject", "namespace"), "prod");
    CHECK_STR(str_at(ev, "involvedObject", "name"), "vm-001");
    CHECK_STR(str_at(ev, "involvedObject", "uid"), vmi.uid);
    CHECK_STR(str_at(ev, "type", NULL), "Warning");
    CHECK_STR(str_at(ev, "reason", NULL), "NoEligibleCandidate");
    CHECK_STR(str_at(ev, "message", NULL), "no member scored 0.5");
    CHECK_STR(str_at(ev, "source", "component"), "kvrecover-controller");
    CHECK_STR(str_at(ev, "reportingComponent", NULL), "kvrecover-controller");
    CHECK_STR(str_at(ev, "reportingInstance", NULL), "host_1");
    CHECK_STR(str_at(ev, "firstTimestamp", NULL), "2024-05-01T12:00:00Z");
    CHECK_STR(str_at(ev, "lastTimestamp", NULL), "2024-05-01T12:00:00Z");
    CHECK_INT(cJSON_GetObjectItemCaseSensitive(ev, "count")->valueint, 1);
    cJSON_Delete(ev);

    /* Without a uid the involvedObject simply has none. */
    struct event_ref no_uid = vmi;
    no_uid.uid = NULL;
    ev = event__object(&no_uid, "Normal", "Recovered", "m", "c", "i", "t");
    CHECK(str_at(ev, "involvedObject", "uid") == NULL);
    cJSON_Delete(ev);
}

/* An Events API: creates get names ev-1, ev-2, ...; patches succeed unless
 * patch_status says otherwise. Every request is kept for the checks. */
struct events_api {
    pthread_mutex_t lock;
    int created;       /* Events created */
    int patch_status;  /* 0: 200, else this status */
    struct buf bodies; /* "METHOD PATH BODY\n" per request */
};

static void events_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct events_api *a = ud;
    char reply[128];
    int status;

    pthread_mutex_lock(&a->lock);
    buf_printf(&a->bodies, "%s %s %s\n", req->method, req->path, req->body);
    if (strcmp(req->method, "POST") == 0) {
        snprintf(reply, sizeof(reply), "{\"metadata\":{\"name\":\"ev-%d\"}}", ++a->created);
        status = 201;
    } else {
        status = a->patch_status ? a->patch_status : 200;
        snprintf(reply, sizeof(reply), "{\"kind\":\"Status\",\"code\":%d,\"reason\":\"%s\"}",
                 status, status == 404 ? "NotFound" : "OK");
    }
    pthread_mutex_unlock(&a->lock);
    fake_reply(c, status, NULL, reply);
}

static char *take_requests(struct events_api *a)
{
    char *s;

    pthread_mutex_lock(&a->lock);
    s = buf_steal(&a->bodies);
    pthread_mutex_unlock(&a->lock);
    return s;
}

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;

    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

/* A server, a client and a recorder on them. */
struct rig {
    struct fake_server *srv;
    struct kube *k;
    struct event_recorder *r;
};

static int rig_up(struct rig *g, struct events_api *a)
{
    struct kube_options o = {.qps = -1, .max_retries = -1};
    struct kubeconfig *cfg;
    char *err = NULL;
    int rc;

    memset(g, 0, sizeof(*g));
    g->srv = fake_start(events_handler, a);
    if (g->srv == NULL)
        return -EIO;
    cfg = fake_kubeconfig(g->srv, "t");
    rc = kube_new(cfg, &o, &g->k, &err);
    kubeconfig_free(cfg);
    free(err);
    g->r = event_recorder_new(g->k, "kvrecover-controller", "host_1");
    return rc;
}

static void rig_down(struct rig *g)
{
    event_recorder_free(g->r);
    kube_free(g->k);
    fake_stop(g->srv);
}

/* The same (object, type, reason, message) twice: one Event, then a merge
 * patch of count 2 on it; the same again gives count 3. A different
 * message or another object is a new Event. */
TEST(event_repeat_bumps_count)
{
    struct events_api a = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct rig g;
    struct event_recorder *r;
    char *reqs;

    CHECK_INT(rig_up(&g, &a), 0);
    r = g.r;

    event_record(r, &vmi, "Normal", "Recovered", "replaced by %s", "vm-001-r");
    event_record(r, &vmi, "Normal", "Recovered", "replaced by %s", "vm-001-r");
    event_record(r, &vmi, "Normal", "Recovered", "replaced by %s", "vm-001-r");
    reqs = take_requests(&a);
    CHECK_INT(count_lines(reqs, "POST /api/v1/namespaces/prod/events "), 1);
    CHECK(strstr(reqs, "PATCH /api/v1/namespaces/prod/events/ev-1 {\"count\":2,") != NULL);
    CHECK(strstr(reqs, "PATCH /api/v1/namespaces/prod/events/ev-1 {\"count\":3,") != NULL);
    free(reqs);

    event_record(r, &vmi, "Normal", "Recovered", "replaced by %s", "other");
    struct event_ref other = vmi;
    other.name = "vm-002";
    other.uid = "6b1f0c1e-0000-4000-8000-000000000002";
    event_record(r, &other, "Normal", "Recovered", "replaced by %s", "vm-001-r");
    reqs = take_requests(&a);
    CHECK_INT(count_lines(reqs, "POST "), 2);
    CHECK_INT(count_lines(reqs, "PATCH "), 0);
    CHECK(strstr(reqs, "\"generateName\":\"vm-002.\"") != NULL);
    free(reqs);

    rig_down(&g);
}

/* When the Event to bump is gone (expired or deleted: 404), the recorder
 * creates a new one and bumps that next time. */
TEST(event_vanished_event_is_recreated)
{
    struct events_api a = {.lock = PTHREAD_MUTEX_INITIALIZER, .patch_status = 404};
    struct rig g;
    struct event_recorder *r;
    char *reqs;

    CHECK_INT(rig_up(&g, &a), 0);
    r = g.r;

    event_record(r, &vmi, "Warning", "InvalidPoolMember", "bad");
    event_record(r, &vmi, "Warning", "InvalidPoolMember", "bad");
    pthread_mutex_lock(&a.lock);
    a.patch_status = 0;
    pthread_mutex_unlock(&a.lock);
    event_record(r, &vmi, "Warning", "InvalidPoolMember", "bad");
    reqs = take_requests(&a);
    CHECK_INT(count_lines(reqs, "POST "), 2);
    CHECK(strstr(reqs, "PATCH /api/v1/namespaces/prod/events/ev-1 {\"count\":2,") != NULL);
    CHECK(strstr(reqs, "PATCH /api/v1/namespaces/prod/events/ev-2 {\"count\":2,") != NULL);
    free(reqs);

    rig_down(&g);
}
