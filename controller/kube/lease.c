/*
 * lease — leader election on a coordination.k8s.io/v1 Lease. See lease.h.
 *
 * One loop on the caller's thread, two phases as in client-go's
 * LeaderElector: acquire (try every retry period with jitter until the
 * Lease is ours), then renew (every retry period; give up once no attempt
 * has succeeded for the renew deadline, or at once when another holder is
 * seen). Each attempt reads the Lease, decides with lease__decide() and
 * writes with the resourceVersion it read, so that a racing replica gets
 * 409 Conflict. While leading, the next renewal first writes straight from
 * the object the last write returned (one request), and reads only when
 * that conflicts, as client-go does.
 */
#include "kube/lease.h"
#include "kube/lease_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/xalloc.h"

struct lease {
    struct kube *k;         /* borrowed client */
    char *ns;               /* Lease namespace */
    char *name;             /* Lease name */
    char *identity;         /* holderIdentity we write */
    char *obj_path;         /* .../namespaces/NS/leases/NAME */
    char *coll_path;        /* .../namespaces/NS/leases */
    long duration_ms;       /* lease duration */
    long renew_ms;          /* renew deadline */
    long retry_ms;          /* retry period */
    struct lease_config cb; /* callbacks and ud (strings not used) */
    uint64_t rng;           /* jitter; lease thread only */

    /* Lease thread only. */
    cJSON *observed;       /* the Lease as last read or written, or NULL */
    char *observed_rv;     /* its resourceVersion, or NULL */
    char *observed_holder; /* its holder, or NULL before the first read */
    long observed_at;      /* monotonic ms when observed_rv last changed */
    long deadline;         /* monotonic ms by which a renewal must be done, or 0 */

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* stop requests, lease_run() returning */
    bool running;         /* lease_run() is on a thread */
    bool stopped;         /* lease_stop() or lease_release() called */
    bool leading;         /* acquired and not yet given up */
    long renewed_at;      /* monotonic ms when the last good attempt began */
};

/* ---- pure pieces ---------------------------------------------------- */

void lease__record_free(struct lease_record *rec)
{
    if (rec == NULL)
        return;
    free(rec->holder);
    free(rec->acquire_time);
    free(rec->resource_version);
    memset(rec, 0, sizeof(*rec));
}

/* Reads an optional integer field: absent or null is 0. */
static int lease__opt_long(const cJSON *spec, const char *name, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, name);

    *out = 0;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9)
        return -EINVAL;
    *out = (long)v->valuedouble;
    return 0;
}

/* Reads an optional string field: absent or null is NULL. */
static int lease__opt_str(const cJSON *spec, const char *name, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, name);

    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v))
        return -EINVAL;
    *out = v->valuestring;
    return 0;
}

int lease__record_parse(const cJSON *obj, struct lease_record *rec)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(md, "resourceVersion");
    const char *holder, *acquire;

    memset(rec, 0, sizeof(*rec));
    if (!cJSON_IsObject(obj) || !cJSON_IsString(rv) || rv->valuestring[0] == '\0')
        return -EINVAL;
    if (spec != NULL && !cJSON_IsNull(spec) && !cJSON_IsObject(spec))
        return -EINVAL;
    if (lease__opt_str(spec, "holderIdentity", &holder) < 0 ||
        lease__opt_str(spec, "acquireTime", &acquire) < 0 ||
        lease__opt_long(spec, "leaseDurationSeconds", &rec->duration_s) < 0 ||
        lease__opt_long(spec, "leaseTransitions", &rec->transitions) < 0) {
        memset(rec, 0, sizeof(*rec));
        return -EINVAL;
    }
    rec->holder = xstrdup(holder ? holder : "");
    rec->acquire_time = xstrdup(acquire);
    rec->resource_version = xstrdup(rv->valuestring);
    return 0;
}

enum lease_decision lease__decide(const struct lease_record *rec, const char *identity,
                                  long unchanged_ms, long default_duration_ms)
{
    long valid_ms;

    if (rec == NULL)
        return LEASE_CREATE;
    if (strcmp(rec->holder, identity) == 0)
        return LEASE_RENEW;
    if (rec->holder[0] == '\0')
        return LEASE_ACQUIRE;
    valid_ms = rec->duration_s > 0 ? rec->duration_s * 1000 : default_duration_ms;
    return unchanged_ms >= valid_ms ? LEASE_ACQUIRE : LEASE_WAIT;
}

/* Sets spec[name] to a string or number, replacing what is there. */
static void lease__set_str(cJSON *spec, const char *name, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(spec, name);
    cJSON_AddStringToObject(spec, name, v);
}

static void lease__set_num(cJSON *spec, const char *name, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(spec, name);
    cJSON_AddNumberToObject(spec, name, v);
}

/* A copy of current (or a new Lease) with a spec object to fill. */
static cJSON *lease__base(const cJSON *current, const char *ns, const char *name, cJSON **spec)
{
    cJSON *obj;

    if (current) {
        obj = cJSON_Duplicate(current, true);
        if (obj == NULL)
            abort(); /* cJSON fails only on allocation */
    } else {
        obj = kube_object_new("coordination.k8s.io/v1", "Lease", ns, name, NULL);
    }
    *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (!cJSON_IsObject(*spec)) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
        *spec = cJSON_AddObjectToObject(obj, "spec");
    }
    return obj;
}

cJSON *lease__build(enum lease_decision d, const cJSON *current, const struct lease_record *rec,
                    const char *ns, const char *name, const char *identity, long duration_s,
                    const struct timespec *now)
{
    char t[CLOCK_TEXT_LEN];
    cJSON *obj, *spec;

    if (d == LEASE_WAIT || (d != LEASE_CREATE && current == NULL))
        return NULL;
    clock_format_ts(now, 6, t); /* a MicroTime: six digits, as the API server requires */
    obj = lease__base(d == LEASE_CREATE ? NULL : current, ns, name, &spec);
    lease__set_str(spec, "holderIdentity", identity);
    lease__set_num(spec, "leaseDurationSeconds", (double)duration_s);
    lease__set_str(spec, "renewTime", t);
    if (d == LEASE_CREATE) {
        lease__set_str(spec, "acquireTime", t);
        lease__set_num(spec, "leaseTransitions", 0);
    } else if (d == LEASE_ACQUIRE) {
        lease__set_str(spec, "acquireTime", t);
        lease__set_num(spec, "leaseTransitions", (double)((rec ? rec->transitions : 0) + 1));
    } else if (!cJSON_HasObjectItem(spec, "acquireTime")) {
        /* Renewing a record someone stripped: say when we know we held it. */
        lease__set_str(spec, "acquireTime", t);
    }
    return obj;
}

cJSON *lease__build_release(const cJSON *current, const struct timespec *now)
{
    char t[CLOCK_TEXT_LEN];
    cJSON *spec, *obj;

    clock_format_ts(now, 6, t);
    obj = lease__base(current, "", "", &spec);
    lease__set_str(spec, "holderIdentity", "");
    lease__set_num(spec, "leaseDurationSeconds", 1);
    lease__set_str(spec, "acquireTime", t);
    lease__set_str(spec, "renewTime", t);
    return obj;
}

/* ---- the elector ---------------------------------------------------- */

void lease_kube_options(const struct lease_config *cfg, struct kube_options *opts)
{
    long renew = cfg && cfg->renew_deadline_ms > 0 ? cfg->renew_deadline_ms
                                                   : LEASE_DEFAULT_RENEW_DEADLINE_MS;

    memset(opts, 0, sizeof(*opts));
    opts->qps = -1;
    opts->max_retries = -1;
    opts->timeout_ms = renew / 2;
    opts->connect_timeout_ms = renew / 2;
}

int lease_new(struct kube *k, const struct lease_config *cfg, struct lease **out)
{
    static const struct kube_resource leases = {"coordination.k8s.io", "v1", "leases"};
    struct lease *l;
    long dur, renew, retry;

    *out = NULL;
    if (cfg == NULL || cfg->ns == NULL || cfg->ns[0] == '\0' || cfg->name == NULL ||
        cfg->name[0] == '\0')
        return -EINVAL;
    dur = cfg->lease_duration_ms > 0 ? cfg->lease_duration_ms : LEASE_DEFAULT_DURATION_MS;
    renew = cfg->renew_deadline_ms > 0 ? cfg->renew_deadline_ms : LEASE_DEFAULT_RENEW_DEADLINE_MS;
    retry = cfg->retry_period_ms > 0 ? cfg->retry_period_ms : LEASE_DEFAULT_RETRY_PERIOD_MS;
    /* client-go's own checks: a leader must stop before its record can
     * expire for others, and must get more than one attempt per deadline. */
    if (!(dur > renew && (double)renew > (double)retry * LEASE_JITTER && retry > 0) ||
        cfg->lease_duration_ms < 0 || cfg->renew_deadline_ms < 0 || cfg->retry_period_ms < 0)
        return -EINVAL;
    l = xcalloc(1, sizeof(*l));
    l->k = k;
    l->ns = xstrdup(cfg->ns);
    l->name = xstrdup(cfg->name);
    if (cfg->identity && cfg->identity[0]) {
        l->identity = xstrdup(cfg->identity);
    } else {
        char host[256] = "unknown";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        l->identity = xasprintf("%s_%ld", host, (long)getpid());
    }
    l->obj_path = kube_path(&leases, l->ns, l->name, NULL);
    l->coll_path = kube_path(&leases, l->ns, NULL, NULL);
    l->duration_ms = dur;
    l->renew_ms = renew;
    l->retry_ms = retry;
    l->cb = *cfg;
    l->cb.ns = l->cb.name = l->cb.identity = NULL; /* not ours to keep */
    l->rng = rand_seed(l);
    pthread_mutex_init(&l->lock, NULL);
    clock_cond_init(&l->cond);
    *out = l;
    return 0;
}

void lease_free(struct lease *l)
{
    if (l == NULL)
        return;
    cJSON_Delete(l->observed);
    free(l->observed_rv);
    free(l->observed_holder);
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l->obj_path);
    free(l->coll_path);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}

const char *lease_identity(const struct lease *l)
{
    return l->identity;
}

bool lease_is_leader(struct lease *l)
{
    bool r;

    pthread_mutex_lock(&l->lock);
    r = l->leading && clock_mono_ms() - l->renewed_at < l->renew_ms;
    pthread_mutex_unlock(&l->lock);
    return r;
}

static bool lease__stopping(struct lease *l)
{
    bool s;

    pthread_mutex_lock(&l->lock);
    s = l->stopped;
    pthread_mutex_unlock(&l->lock);
    return s;
}

/* Whether the attempt in progress is past the renew deadline: a leader
 * stops trying then, as client-go's renew context expires. */
static bool lease__late(const struct lease *l)
{
    return l->deadline > 0 && clock_mono_ms() >= l->deadline;
}

static bool lease__cancelled(void *ud)
{
    return lease__stopping(ud) || lease__late(ud);
}

/* Sleeps ms unless stopped first. Returns true when stopped. */
static bool lease__sleep(struct lease *l, long ms)
{
    struct timespec until;
    bool stopped;

    clock_deadline(&until, ms);
    pthread_mutex_lock(&l->lock);
    while (!l->stopped)
        if (pthread_cond_timedwait(&l->cond, &l->lock, &until) == ETIMEDOUT)
            break;
    stopped = l->stopped;
    pthread_mutex_unlock(&l->lock);
    return stopped;
}

/*
 * Remembers obj (owned; NULL: the Lease does not exist) as the record last
 * seen. The expiry clock restarts only when the record changed: any write
 * to a Lease changes its resourceVersion.
 */
static void lease__observe(struct lease *l, cJSON *obj, const struct lease_record *rec)
{
    const char *rv = rec ? rec->resource_version : NULL;
    const char *holder = rec ? rec->holder : "";

    if (rv == NULL || l->observed_rv == NULL || strcmp(rv, l->observed_rv) != 0) {
        free(l->observed_rv);
        l->observed_rv = xstrdup(rv);
        l->observed_at = clock_mono_ms();
    }
    cJSON_Delete(l->observed);
    l->observed = obj;
    if (l->observed_holder == NULL || strcmp(l->observed_holder, holder) != 0) {
        /* No Lease, or a released one, at the first look is no news. */
        bool news = l->observed_holder != NULL || holder[0] != '\0';
        free(l->observed_holder);
        l->observed_holder = xstrdup(holder);
        if (holder[0])
            log_info("lease %s/%s: holder is now %s", l->ns, l->name, holder);
        if (news && l->cb.on_new_leader)
            l->cb.on_new_leader(l->cb.ud, holder);
    }
}

/* Writes obj as decided; on success observes the object the server
 * returned. Returns 0 or the -errno of the write. */
static int lease__write(struct lease *l, enum lease_decision d, const cJSON *obj)
{
    struct kube_error err;
    struct lease_record rec;
    cJSON *out = NULL;
    int rc;

    if (d == LEASE_CREATE)
        rc = kube_create(l->k, l->coll_path, obj, &out, &err);
    else
        rc = kube_update(l->k, l->obj_path, obj, &out, &err);
    if (rc == 0 && lease__record_parse(out, &rec) == 0) {
        lease__observe(l, out, &rec);
        lease__record_free(&rec);
        return 0;
    }
    cJSON_Delete(out);
    if (rc == 0) {
        /* Written, but the answer is unusable: read it next time. */
        free(l->observed_rv);
        l->observed_rv = NULL;
        return -EBADMSG;
    }
    if (rc == -EEXIST)
        log_debug("lease %s/%s: %s lost a race (%s)", l->ns, l->name,
                  d == LEASE_CREATE ? "create" : "update", err.reason);
    return rc;
}

/*
 * One attempt (client-go's tryAcquireOrRenew). Returns 0 when the Lease is
 * ours now; -EBUSY when another holder's record is still valid; -EEXIST when
 * a racing write won (try again); another -errno when the API failed.
 */
static int lease__try(struct lease *l, bool leading)
{
    struct lease_record rec;
    struct kube_error err;
    struct timespec now;
    enum lease_decision d;
    cJSON *cur = NULL, *obj;
    int rc;

    clock_wall_ts(&now);
    if (lease__late(l))
        return -ETIMEDOUT;
    /* Fast path for a leader: renew from the object we wrote last. */
    if (leading && l->observed && l->observed_holder &&
        strcmp(l->observed_holder, l->identity) == 0 &&
        lease__record_parse(l->observed, &rec) == 0) {
        obj = lease__build(LEASE_RENEW, l->observed, &rec, l->ns, l->name, l->identity,
                           (l->duration_ms + 999) / 1000, &now);
        lease__record_free(&rec);
        rc = lease__write(l, LEASE_RENEW, obj);
        cJSON_Delete(obj);
        if (rc != -EEXIST || lease__late(l))
            return rc;
    }
    rc = kube_get_cancel(l->k, l->obj_path, lease__cancelled, l, &cur, &err);
    if (rc == -ENOENT) {
        lease__observe(l, NULL, NULL);
        d = LEASE_CREATE;
    } else if (rc < 0) {
        return rc;
    } else if (lease__record_parse(cur, &rec) < 0) {
        log_warn("lease %s/%s: unreadable Lease", l->ns, l->name);
        cJSON_Delete(cur);
        return -EBADMSG;
    } else {
        lease__observe(l, cur, &rec);
        d = lease__decide(&rec, l->identity, clock_mono_ms() - l->observed_at, l->duration_ms);
        lease__record_free(&rec);
    }
    if (d == LEASE_WAIT)
        return -EBUSY;
    if (lease__late(l))
        return -ETIMEDOUT;
    if (d == LEASE_RENEW || d == LEASE_ACQUIRE)
        lease__record_parse(l->observed, &rec);
    else
        memset(&rec, 0, sizeof(rec));
    obj = lease__build(d, l->observed, &rec, l->ns, l->name, l->identity,
                       (l->duration_ms + 999) / 1000, &now);
    lease__record_free(&rec);
    rc = lease__write(l, d, obj);
    cJSON_Delete(obj);
    return rc;
}

static void lease__set_leading(struct lease *l, bool leading, long renewed_at)
{
    pthread_mutex_lock(&l->lock);
    l->leading = leading;
    if (renewed_at >= 0)
        l->renewed_at = renewed_at;
    pthread_mutex_unlock(&l->lock);
}

/* The acquire phase. Returns 0 once leading, or -ECANCELED when stopped. */
static int lease__acquire(struct lease *l)
{
    for (;;) {
        long t0 = clock_mono_ms();
        int rc;

        if (lease__stopping(l))
            return -ECANCELED;
        rc = lease__try(l, false);
        if (rc == 0) {
            lease__set_leading(l, true, t0);
            log_info("lease %s/%s: acquired by %s", l->ns, l->name, l->identity);
            return 0;
        }
        if (rc != -EBUSY && rc != -EEXIST && rc != -ECANCELED)
            log_warn("lease %s/%s: cannot acquire: %s", l->ns, l->name, strerror(-rc));
        if (lease__sleep(l, l->retry_ms +
                                (long)(rand_uniform(&l->rng) * LEASE_JITTER * (double)l->retry_ms)))
            return -ECANCELED;
    }
}

/* The renew phase. Returns 0 when stopped, -ETIMEDOUT or -EBUSY when
 * leadership was lost. */
static int lease__renew(struct lease *l)
{
    long last_ok = clock_mono_ms();

    for (;;) {
        long t0;
        int rc;

        if (lease__sleep(l, l->retry_ms))
            return 0;
        t0 = clock_mono_ms();
        l->deadline = last_ok + l->renew_ms;
        rc = lease__try(l, true);
        l->deadline = 0;
        if (lease__stopping(l))
            return 0;
        /* A renewal that ends after the deadline does not count: by then
         * lease_is_leader() has said false, and the workers may have
         * stopped. */
        if (rc == 0 && clock_mono_ms() - last_ok < l->renew_ms) {
            last_ok = t0;
            lease__set_leading(l, true, t0);
            continue;
        }
        if (rc == -EBUSY) {
            log_warn("lease %s/%s: taken over by %s", l->ns, l->name,
                     l->observed_holder ? l->observed_holder : "?");
            return -EBUSY;
        }
        if (rc < 0)
            log_warn("lease %s/%s: renewal failed: %s", l->ns, l->name, strerror(-rc));
        if (clock_mono_ms() - last_ok >= l->renew_ms) {
            log_warn("lease %s/%s: no renewal for %ld ms, giving up leadership", l->ns, l->name,
                     l->renew_ms);
            return -ETIMEDOUT;
        }
    }
}

int lease_run(struct lease *l)
{
    int rc;

    pthread_mutex_lock(&l->lock);
    if (l->running) {
        pthread_mutex_unlock(&l->lock);
        return -EALREADY;
    }
    l->running = true;
    pthread_mutex_unlock(&l->lock);

    rc = lease__acquire(l);
    if (rc == 0) {
        if (l->cb.on_started_leading)
            l->cb.on_started_leading(l->cb.ud);
        rc = lease__renew(l);
        lease__set_leading(l, false, -1);
        if (l->cb.on_stopped_leading)
            l->cb.on_stopped_leading(l->cb.ud);
    } else {
        rc = 0; /* stopped before leading */
    }

    pthread_mutex_lock(&l->lock);
    l->running = false;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void lease_stop(struct lease *l)
{
    pthread_mutex_lock(&l->lock);
    l->stopped = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

int lease_release(struct lease *l)
{
    struct timespec now;
    cJSON *obj;
    int rc;

    lease_stop(l);
    pthread_mutex_lock(&l->lock);
    while (l->running)
        pthread_cond_wait(&l->cond, &l->lock);
    pthread_mutex_unlock(&l->lock);
    /* lease_run() has returned: the observed record is ours to read. Only
     * a record naming us is released, and only as we last saw it (its
     * resourceVersion): if anyone wrote it since, the write conflicts and
     * their record stands. */
    if (l->observed == NULL || l->observed_holder == NULL ||
        strcmp(l->observed_holder, l->identity) != 0)
        return 0;
    clock_wall_ts(&now);
    obj = lease__build_release(l->observed, &now);
    rc = kube_update(l->k, l->obj_path, obj, NULL, NULL);
    cJSON_Delete(obj);
    if (rc == -EEXIST)
        return 0; /* someone else holds it now */
    if (rc == 0) {
        log_info("lease %s/%s: released by %s", l->ns, l->name, l->identity);
        free(l->observed_holder);
        l->observed_holder = xstrdup("");
    }
    return rc;
}
