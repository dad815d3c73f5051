/*
 * Tests for lease: the decision table, the objects written, record parsing,
 * and whole elections against a Lease kept by fakeapi (optimistic
 * concurrency included: a stale resourceVersion gets 409).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xalloc.h"
#include "fakeapi.h"
#include "harness.h"
#include "kube/lease.h"
#include "kube/lease_test.h"

static cJSON *fixture_json(const char *name)
{
    struct buf b = {0};
    cJSON *j = NULL;

    if (buf_read_file(&b, harness_fixture(name), 1 << 20) == 0)
        j = cJSON_Parse(b.data);
    buf_free(&b);
    return j;
}

static const char *spec_str(const cJSON *obj, const char *name)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double spec_num(const cJSON *obj, const char *name)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), name);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *meta_str(const cJSON *obj, const char *name)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- pure pieces ---------------------------------------------------- */

TEST(lease_decide_table)
{
    static struct lease_record held = {.holder = "b", .duration_s = 15, .resource_version = "7"};
    static struct lease_record released = {.holder = "", .duration_s = 1, .resource_version = "8"};
    static struct lease_record no_duration = {.holder = "b", .resource_version = "9"};
    static const struct {
        const struct lease_record *rec;
        const char *me;
        long unchanged_ms;
        enum lease_decision want;
    } rows[] = {
        {NULL, "a", 0, LEASE_CREATE},          /* no Lease */
        {&held, "b", 0, LEASE_RENEW},          /* ours */
        {&held, "b", 999999, LEASE_RENEW},     /* ours, however old */
        {&held, "a", 0, LEASE_WAIT},           /* theirs, fresh */
        {&held, "a", 14999, LEASE_WAIT},       /* theirs, 1 ms before expiry */
        {&held, "a", 15000, LEASE_ACQUIRE},    /* theirs, expired */
        {&released, "a", 0, LEASE_ACQUIRE},    /* released: at once */
        {&no_duration, "a", 4999, LEASE_WAIT}, /* default duration (5 s here) */
        {&no_duration, "a", 5000, LEASE_ACQUIRE},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_INT(lease__decide(rows[i].rec, rows[i].me, rows[i].unchanged_ms, 5000), rows[i].want);
}

TEST(lease_record_parse_fields_and_errors)
{
    cJSON *obj = fixture_json("lease-held.json");
    struct lease_record rec;

    CHECK(obj != NULL);
    CHECK_INT(lease__record_parse(obj, &rec), 0);
    CHECK_STR(rec.holder, "replica-b");
    CHECK_INT(rec.duration_s, 15);
    CHECK_INT(rec.transitions, 3);
    CHECK_STR(rec.acquire_time, "2024-05-01T11:00:00.000000Z");
    CHECK_STR(rec.resource_version, "4711");
    lease__record_free(&rec);
    lease__record_free(NULL);

    /* No spec at all: released, no duration. */
    cJSON *bare = cJSON_Parse("{\"metadata\":{\"resourceVersion\":\"1\"}}");
    CHECK_INT(lease__record_parse(bare, &rec), 0);
    CHECK_STR(rec.holder, "");
    CHECK_INT(rec.duration_s, 0);
    CHECK(rec.acquire_time == NULL);
    lease__record_free(&rec);
    cJSON_Delete(bare);

    static const char *const bad[] = {
        "{\"spec\":{}}", /* no resourceVersion */
        "[]",            /* not an object */
        "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"holderIdentity\":5}}",
        "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"leaseDurationSeconds\":\"x\"}}",
        "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"leaseTransitions\":-1}}",
        "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *b = cJSON_Parse(bad[i]);
        CHECK(b != NULL);
        CHECK_INT(lease__record_parse(b, &rec), -EINVAL);
        CHECK(rec.holder == NULL && rec.resource_version == NULL);
        cJSON_Delete(b);
    }
    cJSON_Delete(obj);
}

/* Create writes a whole new Lease; renew keeps acquireTime, transitions,
 * metadata and fields we do not own; acquire adds a transition. */
TEST(lease_build_create_renew_acquire)
{
    struct timespec now = {1714564800, 500000000};
    cJSON *cur = fixture_json("lease-held.json");
    struct lease_record rec;
    cJSON *o;

    CHECK(cur != NULL);
    CHECK_INT(lease__record_parse(cur, &rec), 0);

    o = lease__build(LEASE_CREATE, NULL, NULL, "sys", "ctl", "me", 15, &now);
    CHECK(o != NULL);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(o, "apiVersion")->valuestring,
              "coordination.k8s.io/v1");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, "Lease");
    CHECK_STR(meta_str(o, "namespace"), "sys");
    CHECK_STR(meta_str(o, "name"), "ctl");
    CHECK(meta_str(o, "resourceVersion") == NULL);
    CHECK_STR(spec_str(o, "holderIdentity"), "me");
    CHECK_INT(spec_num(o, "leaseDurationSeconds"), 15);
    CHECK_INT(spec_num(o, "leaseTransitions"), 0);
    CHECK_STR(spec_str(o, "acquireTime"), "2024-05-01T12:00:00.500000Z");
    CHECK_STR(spec_str(o, "renewTime"), "2024-05-01T12:00:00.500000Z");
    cJSON_Delete(o);

    o = lease__build(LEASE_RENEW, cur, &rec, "sys", "ctl", "replica-b", 20, &now);
    CHECK(o != NULL);
    CHECK_STR(meta_str(o, "resourceVersion"), "4711");
    CHECK_STR(meta_str(o, "uid"), "3f1c0a52-9c1e-4c59-a5a8-0d3b7c1d9e01");
    CHECK_STR(spec_str(o, "holderIdentity"), "replica-b");
    CHECK_INT(spec_num(o, "leaseDurationSeconds"), 20);
    CHECK_INT(spec_num(o, "leaseTransitions"), 3);
    CHECK_STR(spec_str(o, "acquireTime"), "2024-05-01T11:00:00.000000Z");
    CHECK_STR(spec_str(o, "renewTime"), "2024-05-01T12:00:00.500000Z");
    CHECK_STR(spec_str(o, "preferredHolder"), "replica-z"); /* not ours: kept */
    cJSON_Delete(o);

    o = lease__build(LEASE_ACQUIRE, cur, &rec, "sys", "ctl", "me", 15, &now);
    CHECK(o != NULL);
    CHECK_STR(meta_str(o, "resourceVersion"), "4711");
    CHECK_STR(spec_str(o, "holderIdentity"), "me");
    CHECK_INT(spec_num(o, "leaseTransitions"), 4);
    CHECK_STR(spec_str(o, "acquireTime"), "2024-05-01T12:00:00.500000Z");
    cJSON_Delete(o);

    CHECK(lease__build(LEASE_WAIT, cur, &rec, "sys", "ctl", "me", 15, &now) == NULL);
    /* The input is not modified. */
    CHECK_STR(spec_str(cur, "holderIdentity"), "replica-b");
    lease__record_free(&rec);
    cJSON_Delete(cur);
}

/* Release as client-go's ReleaseOnCancel: empty holder, 1 s, times now,
 * transitions kept, resourceVersion kept for the conflict check. */
TEST(lease_build_release_fields)
{
    struct timespec now = {1714564800, 0};
    cJSON *cur = fixture_json("lease-held.json");
    cJSON *o;

    CHECK(cur != NULL);
    o = lease__build_release(cur, &now);
    CHECK_STR(spec_str(o, "holderIdentity"), "");
    CHECK_INT(spec_num(o, "leaseDurationSeconds"), 1);
    CHECK_INT(spec_num(o, "leaseTransitions"), 3);
    CHECK_STR(spec_str(o, "renewTime"), "2024-05-01T12:00:00.000000Z");
    CHECK_STR(spec_str(o, "acquireTime"), "2024-05-01T12:00:00.000000Z");
    CHECK_STR(meta_str(o, "resourceVersion"), "4711");
    cJSON_Delete(o);
    cJSON_Delete(cur);
}

TEST(lease_new_validates_durations)
{
    struct lease_config c = {.ns = "sys", .name = "ctl", .identity = "me"};
    struct lease *l = NULL;
    struct kube_options o;

    CHECK_INT(lease_new(NULL, &c, &l), 0); /* defaults: 15 > 10 > 2.4 */
    CHECK_STR(lease_identity(l), "me");
    CHECK(!lease_is_leader(l));
    lease_free(l);
    c.lease_duration_ms = 10000; /* not longer than the renew deadline */
    CHECK_INT(lease_new(NULL, &c, &l), -EINVAL);
    c.lease_duration_ms = 0;
    c.renew_deadline_ms = 2000; /* not above retry * 1.2 = 2400 */
    CHECK_INT(lease_new(NULL, &c, &l), -EINVAL);
    c.renew_deadline_ms = 0;
    c.name = "";
    CHECK_INT(lease_new(NULL, &c, &l), -EINVAL);
    c.name = "ctl";
    c.identity = NULL; /* hostname_pid */
    CHECK_INT(lease_new(NULL, &c, &l), 0);
    CHECK(strchr(lease_identity(l), '_') != NULL);
    lease_free(l);

    lease_kube_options(NULL, &o);
    CHECK(o.qps < 0);
    CHECK(o.max_retries < 0);
    CHECK_INT(o.timeout_ms, LEASE_DEFAULT_RENEW_DEADLINE_MS / 2);
}

/* ---- elections against fakeapi -------------------------------------- */

/* One Lease kept as the API server keeps it: resourceVersion bumped on
 * every write, 409 for a stale one or a second create. */
struct store {
    pthread_mutex_t lock;
    cJSON *lease;        /* NULL: absent */
    long rv;             /* last resourceVersion handed out */
    atomic_bool fail;    /* answer 500 to everything */
    atomic_int delay_ms; /* answer this late (0: at once) */
    atomic_int writes;   /* successful writes */
};

static void store_put(struct store *s, cJSON *obj)
{
    cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    char rv[32];

    snprintf(rv, sizeof(rv), "%ld", ++s->rv);
    cJSON_DeleteItemFromObjectCaseSensitive(md, "resourceVersion");
    cJSON_AddStringToObject(md, "resourceVersion", rv);
    cJSON_Delete(s->lease);
    s->lease = obj;
    atomic_fetch_add(&s->writes, 1);
}

static void status(struct fake_conn *c, int code, const char *reason)
{
    char body[200];

    snprintf(body, sizeof(body), "{\"kind\":\"Status\",\"code\":%d,\"reason\":\"%s\"}", code,
             reason);
    fake_reply(c, code, NULL, body);
}

static void store_handler(void *ud, const struct fake_req *req, struct fake_conn *c)
{
    struct store *s = ud;
    cJSON *body = req->body_len ? cJSON_Parse(req->body) : NULL;
    char *out = NULL;
    int code = 200;

    if (atomic_load(&s->fail)) {
        cJSON_Delete(body);
        status(c, 500, "InternalError");
        return;
    }
    if (atomic_load(&s->delay_ms) > 0 && fake_stream_wait(c, atomic_load(&s->delay_ms))) {
        cJSON_Delete(body); /* the client gave up waiting */
        fake_close(c);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (strcmp(req->method, "GET") == 0) {
        if (s->lease == NULL)
            code = 404;
    } else if (strcmp(req->method, "POST") == 0) {
        if (s->lease) {
            code = 409;
        } else {
            store_put(s, body);
            body = NULL;
            code = 201;
        }
    } else if (strcmp(req->method, "PUT") == 0) {
        const char *rv = meta_str(body, "resourceVersion");
        if (s->lease == NULL) {
            code = 404;
        } else if (rv == NULL || strcmp(rv, meta_str(s->lease, "resourceVersion")) != 0) {
            code = 409;
        } else {
            store_put(s, body);
            body = NULL;
        }
    } else {
        code = 405;
    }
    if (code < 300)
        out = cJSON_PrintUnformatted(s->lease);
    pthread_mutex_unlock(&s->lock);
    cJSON_Delete(body);
    if (out)
        fake_reply(c, code, NULL, out);
    else
        status(c, code, code == 404 ? "NotFound" : code == 409 ? "Conflict" : "MethodNotAllowed");
    free(out);
}

static void store_down(struct fake_server *srv, struct store *s)
{
    fake_stop(srv);
    cJSON_Delete(s->lease);
}

/* Sets the stored Lease's spec to holder/duration, as another replica
 * would write it. */
static void store_set_holder(struct store *s, const char *holder, long duration_s)
{
    cJSON *obj;

    pthread_mutex_lock(&s->lock);
    obj = s->lease ? cJSON_Duplicate(s->lease, true)
                   : cJSON_Parse("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                                 "\"metadata\":{\"name\":\"ctl\",\"namespace\":\"sys\"},"
                                 "\"spec\":{}}");
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "holderIdentity");
    cJSON_AddStringToObject(spec, "holderIdentity", holder);
    cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseDurationSeconds");
    cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (double)duration_s);
    store_put(s, obj);
    pthread_mutex_unlock(&s->lock);
}

static char *store_holder(struct store *s, double *transitions)
{
    char *h;

    pthread_mutex_lock(&s->lock);
    h = xstrdup(s->lease ? spec_str(s->lease, "holderIdentity") : NULL);
    if (transitions)
        *transitions = s->lease ? spec_num(s->lease, "leaseTransitions") : -1;
    pthread_mutex_unlock(&s->lock);
    return h;
}

/* A replica: its client, elector, thread and what its callbacks saw. */
struct replica {
    struct kube *k;
    struct lease *l;
    pthread_t t;
    int rc;               /* lease_run's result */
    bool joined;          /* the thread has been joined */
    atomic_int started;   /* on_started_leading calls */
    atomic_int stopped;   /* on_stopped_leading calls */
    char new_leader[64];  /* last on_new_leader identity */
    pthread_mutex_t lock; /* guards new_leader */
};

static void cb_started(void *ud)
{
    struct replica *r = ud;

    atomic_fetch_add(&r->started, 1);
}

static void cb_stopped(void *ud)
{
    struct replica *r = ud;

    atomic_fetch_add(&r->stopped, 1);
}

static void cb_new_leader(void *ud, const char *id)
{
    struct replica *r = ud;

    pthread_mutex_lock(&r->lock);
    snprintf(r->new_leader, sizeof(r->new_leader), "%s", id);
    pthread_mutex_unlock(&r->lock);
}

static void *replica_thread(void *arg)
{
    struct replica *r = arg;

    r->rc = lease_run(r->l);
    return NULL;
}

/* Short timings: a 3 s lease, 2 s renew deadline, 400 ms retry (the renew
 * deadline leaves room for the slow first TLS handshakes under valgrind). */
static int replica_up(struct replica *r, struct fake_server *srv, const char *id)
{
    struct lease_config c = {
        .ns = "sys",
        .name = "ctl",
        .identity = id,
        .lease_duration_ms = 3000,
        .renew_deadline_ms = 2000,
        .retry_period_ms = 400,
        .on_started_leading = cb_started,
        .on_stopped_leading = cb_stopped,
        .on_new_leader = cb_new_leader,
        .ud = r,
    };
    struct kube_options o;
    struct kubeconfig *cfg = fake_kubeconfig(srv, "t");
    char *err = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    lease_kube_options(&c, &o);
    rc = kube_new(cfg, &o, &r->k, &err);
    kubeconfig_free(cfg);
    free(err);
    if (rc < 0)
        return rc;
    rc = lease_new(r->k, &c, &r->l);
    if (rc < 0)
        return rc;
    return -pthread_create(&r->t, NULL, replica_thread, r);
}

/* Waits for lease_run to return on its own. */
static void replica_join(struct replica *r)
{
    if (!r->joined)
        pthread_join(r->t, NULL);
    r->joined = true;
}

static void replica_down(struct replica *r)
{
    lease_stop(r->l);
    replica_join(r);
    lease_free(r->l);
    kube_free(r->k);
    pthread_mutex_destroy(&r->lock);
}

static long ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&d, NULL);
}

/* Waits until r leads (or ms pass). */
static bool wait_leader(struct replica *r, long ms)
{
    long end = ms_now() + ms;

    while (ms_now() < end) {
        if (lease_is_leader(r->l))
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Two replicas: exactly one leads, for as long as we watch; when the leader
 * releases, the other takes over at once (well before the 3 s duration),
 * with one more transition. */
TEST(lease_two_replicas_one_leader_then_handover)
{
    struct store s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct fake_server *srv = fake_start(store_handler, &s);
    struct replica a, b;
    double transitions;
    char *holder;
    long t0;

    CHECK(srv != NULL);
    CHECK_INT(replica_up(&a, srv, "replica-a"), 0);
    CHECK(wait_leader(&a, 20000));
    CHECK_INT(replica_up(&b, srv, "replica-b"), 0);
    for (int i = 0; i < 100; i++) { /* 2 s: several renewals */
        CHECK(lease_is_leader(a.l));
        CHECK(!lease_is_leader(b.l));
        sleep_ms(20);
    }
    CHECK_INT(atomic_load(&a.started), 1);
    CHECK_INT(atomic_load(&b.started), 0);
    CHECK_STR(b.new_leader, "replica-a");
    holder = store_holder(&s, &transitions);
    CHECK_STR(holder, "replica-a");
    free(holder);
    CHECK_INT(transitions, 0);

    t0 = ms_now();
    CHECK_INT(lease_release(a.l), 0);
    CHECK(!lease_is_leader(a.l));
    CHECK_INT(atomic_load(&a.stopped), 1);
    CHECK_INT(a.rc, 0);
    CHECK(wait_leader(&b, 20000));
    CHECK(ms_now() - t0 < 2500);
    holder = store_holder(&s, &transitions);
    CHECK_STR(holder, "replica-b");
    free(holder);
    CHECK_INT(transitions, 1);
    replica_down(&a);
    replica_down(&b);
    store_down(srv, &s);
}

/* When the API fails (500) or hangs, the leader gives up on time:
 * lease_is_leader turns false at the renew deadline (the last good renewal
 * began before the API broke), and lease_run returns -ETIMEDOUT at most one
 * request timeout (half the deadline) later. */
TEST(lease_broken_api_gives_up_on_time)
{
    for (int hang = 0; hang < 2; hang++) {
        struct store s = {.lock = PTHREAD_MUTEX_INITIALIZER};
        struct fake_server *srv = fake_start(store_handler, &s);
        struct replica a;
        long t0;

        CHECK(srv != NULL);
        CHECK_INT(replica_up(&a, srv, "replica-a"), 0);
        CHECK(wait_leader(&a, 20000));
        if (hang)
            atomic_store(&s.delay_ms, 20000);
        else
            atomic_store(&s.fail, true);
        t0 = ms_now();
        while (lease_is_leader(a.l) && ms_now() - t0 < 5000)
            sleep_ms(10);
        CHECK(ms_now() - t0 <= 2000 + 100);
        replica_join(&a);
        CHECK(ms_now() - t0 <= 2000 + 1000 + 500);
        CHECK_INT(a.rc, -ETIMEDOUT);
        CHECK_INT(atomic_load(&a.stopped), 1);
        replica_down(&a);
        store_down(srv, &s);
    }
}

/* A dead holder's record is taken only after it stayed unchanged for its
 * duration on our clock; a leader that sees another holder take over stops
 * with -EBUSY. */
TEST(lease_expired_takeover_and_lost_lease)
{
    struct store s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct fake_server *srv = fake_start(store_handler, &s);
    struct replica a;
    double transitions;
    char *holder;
    long t0 = ms_now();

    CHECK(srv != NULL);
    store_set_holder(&s, "dead", 1);
    CHECK_INT(replica_up(&a, srv, "replica-a"), 0);
    CHECK(wait_leader(&a, 20000));
    CHECK(ms_now() - t0 >= 1000);
    holder = store_holder(&s, &transitions);
    CHECK_STR(holder, "replica-a");
    free(holder);
    CHECK_INT(transitions, 1);

    store_set_holder(&s, "usurper", 15);
    replica_join(&a);
    CHECK_INT(a.rc, -EBUSY);
    CHECK(!lease_is_leader(a.l));
    CHECK_STR(a.new_leader, "usurper");
    /* Not ours any more: release writes nothing. */
    int writes = atomic_load(&s.writes);
    CHECK_INT(lease_release(a.l), 0);
    CHECK_INT(atomic_load(&s.writes), writes);
    replica_down(&a);
    store_down(srv, &s);
}

/* lease_run refuses to run twice at once; a stopped elector returns at
 * once without leading. */
TEST(lease_run_twice_and_after_stop)
{
    struct store s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct fake_server *srv = fake_start(store_handler, &s);
    struct replica a;

    CHECK(srv != NULL);
    CHECK_INT(replica_up(&a, srv, "replica-a"), 0);
    CHECK(wait_leader(&a, 20000));
    CHECK_INT(lease_run(a.l), -EALREADY);
    lease_stop(a.l);
    replica_join(&a);
    CHECK_INT(a.rc, 0);
    CHECK_INT(atomic_load(&a.stopped), 1);
    CHECK_INT(lease_run(a.l), 0); /* stopped: returns without leading */
    CHECK(!lease_is_leader(a.l));
    CHECK_INT(atomic_load(&a.started), 1);
    replica_down(&a);
    store_down(srv, &s);
}
