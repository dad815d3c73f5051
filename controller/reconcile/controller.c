/*
 * controller — reflectors, queues, workers and the Event thread. See
 * controller.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "kube/event.h"
#include "kube/watch.h"
#include "reconcile/cache.h"
#include "reconcile/capture.h"
#include "reconcile/controller.h"
#include "reconcile/controller_test.h"
#include "reconcile/incident.h"
#include "reconcile/recover.h"
#include "reconcile/status.h"
#include "reconcile/wq.h"
#include "web/metrics.h"

/* Events waiting for the Event thread; more are dropped (and counted). */
#define CONTROLLER_EVENT_BACKLOG 10000
/* The Event thread waits this long while the main queue has work. */
#define CONTROLLER_EVENT_YIELD_MS 50
/* A capture key waits this long while the main queue has work. */
#define CONTROLLER_CAPTURE_YIELD_MS 1000
/* A key that keeps failing is retried for ever, with a per-key exponential
 * backoff from 5 ms capped at CONTROLLER_RETRY_CAP_MS. Never dropping it is
 * the point (issue 13): a 403, a quota, an invalid template or an API server
 * that is down for minutes are all things an admin fixes, and the failed VM
 * must then be recovered without anyone touching it. Why 30 s: after the fix
 * the replacement follows within 30 s; one request per blocked VM per 30 s is
 * far below the client's 50 QPS even for hundreds of blocked VMs; client-go's
 * 1000 s cap would leave a VM down for a quarter of an hour after the fix. */
#define CONTROLLER_RETRY_BASE_MS 5
#define CONTROLLER_RETRY_CAP_MS 30000
/* Failures of one key logged at warn level: the first few, then one in this
 * many (the rest at debug), so that a key blocked for hours does not flood
 * the log. */
#define CONTROLLER_RETRY_LOG_EVERY 20

enum controller_kind { CTL_VMI, CTL_VM, CTL_POLICY, CTL_MEMBER, CTL_NODE, CTL_POD, CTL_NKINDS };

struct controller;

/* The ud of one reflector's handlers. */
struct controller_watch {
    struct controller *c;
    enum controller_kind kind;
    struct watch *w;
};

struct controller_event {
    struct controller_event *next;
    char *api_version, *kind, *ns, *name, *uid, *type, *reason, *message;
};

struct controller {
    struct controller_config cfg;
    char *ns;              /* NULL: all namespaces */
    char *identity;        /* copied */
    char *default_sa;      /* copied; NULL: none */
    char *policy_selector; /* copied; NULL: every policy */
    struct cache *cache;
    struct recover_book *book;
    struct status_state *status;
    struct capture_state *capture;
    struct event_recorder *events;
    struct recover_env env;
    struct controller_watch watches[CTL_NKINDS];
    struct wq *q;       /* vm/ and policy/ keys */
    struct wq *capq;    /* capture/ keys */
    atomic_int running; /* workers started: handlers queue keys */
    atomic_int dirty;   /* the dashboard state changed */
    pthread_t *threads; /* workers, then the capture worker */
    int nthreads;
    int stopped_workers;

    /* the Event thread */
    pthread_t event_thread;
    int event_thread_started;
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    struct controller_event *ev_head, *ev_tail;
    size_t ev_len;
    unsigned long ev_dropped;
    int ev_stop;
    double ev_deadline; /* monotonic: stop posting after this once stopping */
};

/* ---- Events ----------------------------------------------------------- */

static void controller__event_free(struct controller_event *e)
{
    free(e->api_version);
    free(e->kind);
    free(e->ns);
    free(e->name);
    free(e->uid);
    free(e->type);
    free(e->reason);
    free(e->message);
    free(e);
}

/* recover_event_fn: queue the Event for the Event thread. */
static void controller__event(void *ud, const struct event_ref *obj, const char *type,
                              const char *reason, const char *message)
{
    struct controller *c = ud;
    struct controller_event *e;

    pthread_mutex_lock(&c->ev_lock);
    if (c->ev_len >= CONTROLLER_EVENT_BACKLOG || c->ev_stop) {
        if (c->ev_dropped++ % 1000 == 0)
            log_warn("Event backlog full: %lu Events dropped", c->ev_dropped);
        pthread_mutex_unlock(&c->ev_lock);
        metrics_counter_add(METRICS_EVENTS_DROPPED, NULL, 1);
        return;
    }
    pthread_mutex_unlock(&c->ev_lock);
    e = xcalloc(1, sizeof(*e));
    e->api_version = xstrdup(obj->api_version);
    e->kind = xstrdup(obj->kind);
    e->ns = xstrdup(obj->ns);
    e->name = xstrdup(obj->name);
    e->uid = xstrdup(obj->uid);
    e->type = xstrdup(type);
    e->reason = xstrdup(reason);
    e->message = xstrdup(message);
    pthread_mutex_lock(&c->ev_lock);
    if (c->ev_tail)
        c->ev_tail->next = e;
    else
        c->ev_head = e;
    c->ev_tail = e;
    c->ev_len++;
    pthread_cond_signal(&c->ev_cond);
    pthread_mutex_unlock(&c->ev_lock);
}

static void *controller__event_main(void *arg)
{
    struct controller *c = arg;

    for (;;) {
        struct controller_event *e;

        pthread_mutex_lock(&c->ev_lock);
        while (!c->ev_head && !c->ev_stop)
            pthread_cond_wait(&c->ev_cond, &c->ev_lock);
        e = c->ev_head;
        if (!e || (c->ev_stop && clock_mono() > c->ev_deadline)) {
            pthread_mutex_unlock(&c->ev_lock);
            break;
        }
        if (!c->ev_stop && wq_len(c->q) > 0) {
            /* Recoveries first: while failures wait for a worker, an Event
             * would only take API server time a replacement needs. */
            struct timespec ts;

            clock_deadline(&ts, CONTROLLER_EVENT_YIELD_MS);
            pthread_cond_timedwait(&c->ev_cond, &c->ev_lock, &ts);
            pthread_mutex_unlock(&c->ev_lock);
            continue;
        }
        c->ev_head = e->next;
        if (!c->ev_head)
            c->ev_tail = NULL;
        c->ev_len--;
        pthread_mutex_unlock(&c->ev_lock);
        {
            struct event_ref ref = {e->api_version, e->kind, e->ns, e->name, e->uid};
            event_record(c->events, &ref, e->type, e->reason, "%s", e->message);
        }
        controller__event_free(e);
    }
    return NULL;
}

/* ---- keys ------------------------------------------------------------- */

static void controller__add(struct wq *q, const char *kind, const char *ns, const char *name)
{
    char *key = xasprintf("%s/%s/%s", kind, ns, name);

    wq_add(q, key);
    free(key);
}

/* Queues keys (gathered under the cache lock, queued after it) and frees
 * them and the array. */
static void controller__add_all(struct wq *q, char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wq_add(q, keys[i]);
        free(keys[i]);
    }
    free(keys);
}

/* Queues the status of every policy in ns. */
static void controller__policies(struct controller *c, const char *ns)
{
    char **keys = NULL;
    size_t n = 0;

    cache_rdlock(c->cache);
    for (struct cache_policy *p = cache_policy_first(c->cache, ns); p;
         p = cache_policy_next(p, ns)) {
        keys = xreallocarray(keys, n + 1, sizeof(*keys));
        keys[n++] = xasprintf("policy/%s/%s", p->ns, p->name);
    }
    cache_unlock(c->cache);
    controller__add_all(c->q, keys, n);
}

/* Queues what a new or changed policy in ns affects: its VMs, for the
 * incident reconcile and for capture. Level-triggered: the reconciles
 * decide. */
static void controller__namespace(struct controller *c, const char *ns)
{
    char **vms = NULL, **caps = NULL;
    size_t nvm = 0;

    cache_rdlock(c->cache);
    for (struct cache_vm *r = cache_vm_first(c->cache, ns); r; r = cache_vm_next(r, ns)) {
        vms = xreallocarray(vms, nvm + 1, sizeof(*vms));
        caps = xreallocarray(caps, nvm + 1, sizeof(*caps));
        vms[nvm] = xasprintf("vm/%s/%s", r->ns, r->name);
        caps[nvm++] = xasprintf("capture/%s/%s", r->ns, r->name);
    }
    cache_unlock(c->cache);
    controller__add_all(c->q, vms, nvm);
    controller__add_all(c->capq, caps, nvm);
}

/* Queues the VMs whose VMIs run on node name: its readiness or heartbeat
 * changed. A scan of the VMI cache by nodeName rather than a node -> VMI
 * index: a node's health changes about once a minute (the heartbeat), and
 * the scan of 10,000 VMIs takes well under a millisecond, while an index
 * would cost memory on every VMI. */
static void controller__node(struct controller *c, const char *name)
{
    char **keys = NULL;
    size_t n = 0;

    cache_rdlock(c->cache);
    for (struct cache_vmi *r = cache_vmi_first(c->cache, NULL); r; r = cache_vmi_next(r, NULL)) {
        struct cache_vm *vm;

        if (!r->node || strcmp(r->node, name) != 0 || !(vm = cache_vmi_vm(c->cache, r)))
            continue;
        keys = xreallocarray(keys, n + 1, sizeof(*keys));
        keys[n++] = xasprintf("vm/%s/%s", vm->ns, vm->name);
    }
    cache_unlock(c->cache);
    controller__add_all(c->q, keys, n);
}

/* Queues the VM that controls VMI ns/name (verified owner only). */
static void controller__owner(struct controller *c, const char *ns, const char *name)
{
    char *key = NULL;

    cache_rdlock(c->cache);
    {
        struct cache_vmi *vmi = cache_vmi_find(c->cache, ns, name);
        struct cache_vm *vm = vmi ? cache_vmi_vm(c->cache, vmi) : NULL;

        if (vm)
            key = xasprintf("vm/%s/%s", vm->ns, vm->name);
    }
    cache_unlock(c->cache);
    if (key)
        wq_add(c->q, key);
    free(key);
}

/* ---- watch handlers --------------------------------------------------- */

static const char *controller__meta(const cJSON *obj, const char *key)
{
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* cache_vmi_put() at the clock's now: when a phase began, if the VMI does
 * not say. */
static int controller__vmi_put(struct cache *cache, const cJSON *obj)
{
    return cache_vmi_put(cache, obj, clock_wall(), clock_mono());
}

/* The kinds of object watched: the resource a reflector lists and watches
 * (its plural names the kind in the metrics), and how the cache stores and
 * forgets one. */
static const struct controller__kind {
    struct kube_resource res;
    int (*put)(struct cache *cache, const cJSON *obj);
    int (*del)(struct cache *cache, const cJSON *obj);
} controller__kinds[CTL_NKINDS] = {
    [CTL_VMI] = {{"kubevirt.io", "v1", "virtualmachineinstances"},
                 controller__vmi_put,
                 cache_vmi_del},
    [CTL_VM] = {{"kubevirt.io", "v1", "virtualmachines"}, cache_vm_put, cache_vm_del},
    [CTL_POLICY] = {{"kvrecover.io", "v1alpha1", "recoverypolicies"},
                    cache_policy_put,
                    cache_policy_del},
    [CTL_MEMBER] = {{"", "v1", "configmaps"}, cache_member_put, cache_member_del},
    [CTL_NODE] = {{"", "v1", "nodes"}, cache_node_put, cache_node_del},
    [CTL_POD] = {{"", "v1", "pods"}, cache_pod_put, cache_pod_del},
};

static void controller__put(void *ud, const cJSON *obj)
{
    struct controller_watch *cw = ud;
    struct controller *c = cw->c;
    const char *ns = controller__meta(obj, "namespace"), *name = controller__meta(obj, "name");
    int chg, running;

    if (!name || (!ns && cw->kind != CTL_NODE))
        return;
    chg = controller__kinds[cw->kind].put(c->cache, obj);
    if (chg <= 0)
        return;
    running = atomic_load(&c->running);
    if (!running)
        return;
    switch (cw->kind) {
    case CTL_VMI:
        controller__owner(c, ns, name);
        controller__policies(c, ns);
        break;
    case CTL_VM:
        if (chg & (CACHE_CHG_CAPTURE | CACHE_CHG_LABELS))
            controller__add(c->capq, "capture", ns, name);
        if (chg & (CACHE_CHG_NEW | CACHE_CHG_LABELS | CACHE_CHG_HEALTH | CACHE_CHG_REPL))
            controller__add(c->q, "vm", ns, name);
        if (chg &
            (CACHE_CHG_NEW | CACHE_CHG_LABELS | CACHE_CHG_SPEC | CACHE_CHG_REPL | CACHE_CHG_HEALTH))
            controller__policies(c, ns);
        break;
    case CTL_NODE:
        if (chg & CACHE_CHG_HEALTH)
            controller__node(c, name);
        break;
    case CTL_POLICY:
        if (chg & (CACHE_CHG_NEW | CACHE_CHG_SPEC)) {
            controller__add(c->q, "policy", ns, name);
            controller__namespace(c, ns);
        }
        break;
    case CTL_MEMBER:
        controller__policies(c, ns);
        break;
    default:
        break;
    }
}

static void controller__del(void *ud, const cJSON *obj, bool final_state_unknown)
{
    struct controller_watch *cw = ud;
    struct controller *c = cw->c;
    const char *ns = controller__meta(obj, "namespace"), *name = controller__meta(obj, "name");
    int known;

    (void)final_state_unknown;
    if (!name || (!ns && cw->kind != CTL_NODE))
        return;
    if (cw->kind == CTL_VMI && atomic_load(&c->running)) {
        /* its VM is looked at once the VMI is gone (the owner is found
         * before the record goes) */
        controller__owner(c, ns, name);
    }
    known = controller__kinds[cw->kind].del(c->cache, obj);
    if (cw->kind == CTL_VM && known) {
        /* what this process remembers of it goes with it */
        recover_book_forget_vm(c->book, ns, name);
        capture_forget(c->capture, ns, name);
    }
    if (!known || !atomic_load(&c->running))
        return;
    switch (cw->kind) {
    case CTL_POLICY:
        controller__add(c->q, "policy", ns, name);
        controller__namespace(c, ns);
        break;
    case CTL_NODE:
        controller__node(c, name);
        break;
    case CTL_POD:
        break;
    default:
        controller__policies(c, ns);
        break;
    }
}

static void controller__synced(void *ud)
{
    struct controller_watch *cw = ud;

    log_debug("reflector %d synced", (int)cw->kind);
}

/* ---- the env's callbacks ---------------------------------------------- */

static void controller__changed(void *ud, const char *ns, const char *policy)
{
    struct controller *c = ud;

    controller__add(c->q, "policy", ns, policy);
    atomic_store(&c->dirty, 1);
}

static int controller__leading(void *ud)
{
    struct controller *c = ud;

    return c->cfg.leading ? c->cfg.leading(c->cfg.ud) : 1;
}

/* ---- metrics collector ------------------------------------------------ */

struct controller__api {
    char verb[16];
    int code;
    unsigned long count;
};

struct controller__api_set {
    struct controller__api *v;
    size_t n;
};

static void controller__api_add(void *ud, const char *verb, int code, unsigned long count)
{
    struct controller__api_set *s = ud;
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->v[i].code == code && strcmp(s->v[i].verb, verb) == 0)
            break;
    if (i == s->n) {
        s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
        memset(&s->v[i], 0, sizeof(s->v[i]));
        snprintf(s->v[i].verb, sizeof(s->v[i].verb), "%s", verb);
        s->v[i].code = code;
        s->n++;
    }
    s->v[i].count += count;
}

static void controller__collect(struct buf *out, void *ud)
{
    struct controller *c = ud;
    struct controller__api_set set = {0};
    struct kube *clients[3] = {c->cfg.kube, c->cfg.event_kube, c->cfg.extra_kube};

    for (int i = 0; i < 3; i++) {
        int dup = 0;
        for (int k = 0; k < i; k++)
            dup |= clients[k] == clients[i];
        if (clients[i] && !dup)
            kube_stats_foreach(clients[i], controller__api_add, &set);
    }
    metrics_write_header(out, METRICS_API_REQUESTS);
    for (size_t i = 0; i < set.n; i++) {
        char code[16];
        char *labels;

        snprintf(code, sizeof(code), "%d", set.v[i].code);
        labels = metrics_labels("verb", set.v[i].verb, "code", code);
        metrics_write_sample(out, METRICS_API_REQUESTS, labels, (double)set.v[i].count);
        free(labels);
    }
    free(set.v);
    metrics_write_header(out, METRICS_WATCH_RESTARTS);
    for (int k = 0; k < CTL_NKINDS; k++) {
        struct watch_stats st;
        char *labels;

        if (!c->watches[k].w)
            continue;
        watch_get_stats(c->watches[k].w, &st);
        labels = metrics_labels("resource", controller__kinds[k].res.resource, NULL, NULL);
        metrics_write_sample(out, METRICS_WATCH_RESTARTS, labels, (double)st.restarts);
        free(labels);
    }
}

/* ---- lifecycle -------------------------------------------------------- */

int controller_new(const struct controller_config *cfg, struct controller **out)
{
    struct controller *c;
    int rc = 0;

    *out = NULL;
    if (!cfg || !cfg->kube)
        return -EINVAL;
    c = xcalloc(1, sizeof(*c));
    c->cfg = *cfg;
    if (c->cfg.workers <= 0)
        c->cfg.workers = CONTROLLER_DEFAULT_WORKERS;
    if (!c->cfg.event_kube)
        c->cfg.event_kube = cfg->kube;
    c->ns = cfg->ns && *cfg->ns ? xstrdup(cfg->ns) : NULL;
    c->identity = xstrdup(cfg->identity ? cfg->identity : "kvrecover-controller");
    c->cfg.ns = c->ns;
    c->cfg.identity = c->identity;
    c->default_sa = cfg->default_service_account && *cfg->default_service_account
                        ? xstrdup(cfg->default_service_account)
                        : NULL;
    c->cfg.default_service_account = c->default_sa;
    c->policy_selector =
        cfg->policy_selector && *cfg->policy_selector ? xstrdup(cfg->policy_selector) : NULL;
    c->cfg.policy_selector = c->policy_selector;
    c->cache = cache_new();
    c->book = recover_book_new();
    c->status = status_state_new();
    c->capture = capture_state_new();
    c->events = event_recorder_new(c->cfg.event_kube, "kvrecover-controller", c->identity);
    c->q = wq_new(&controller__queue_config);
    c->capq = wq_new(&controller__queue_config);
    pthread_mutex_init(&c->ev_lock, NULL);
    clock_cond_init(&c->ev_cond);
    c->env = (struct recover_env){c->cache,
                                  c->cfg.kube,
                                  c->book,
                                  controller__event,
                                  controller__leading,
                                  controller__changed,
                                  c,
                                  c->default_sa};
    for (int k = 0; k < CTL_NKINDS; k++) {
        struct watch_config wc = {0};

        c->watches[k].c = c;
        c->watches[k].kind = (enum controller_kind)k;
        wc.res = controller__kinds[k].res;
        /* Nodes and Pods are cluster-wide whatever the namespace: room
         * is the cluster's. Terminal pods request nothing. */
        wc.namespace = k == CTL_NODE || k == CTL_POD ? NULL : c->ns;
        /* a policy outside the selector is never cached: nothing it
         * selects is protected, nothing of it is written */
        wc.label_selector = k == CTL_MEMBER   ? CACHE_POOL_LABEL
                            : k == CTL_POLICY ? c->policy_selector
                                              : NULL;
        wc.field_selector = k == CTL_POD ? "status.phase!=Succeeded,status.phase!=Failed" : NULL;
        wc.handlers.on_add = controller__put;
        wc.handlers.on_update = controller__put;
        wc.handlers.on_delete = controller__del;
        wc.handlers.on_synced = controller__synced;
        wc.ud = &c->watches[k];
        rc = watch_new(cfg->kube, &wc, &c->watches[k].w);
        if (rc)
            break;
    }
    if (rc) {
        controller_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int controller_start(struct controller *c)
{
    int rc;

    metrics_add_collector(controller__collect, c);
    if (pthread_create(&c->event_thread, NULL, controller__event_main, c) == 0)
        c->event_thread_started = 1;
    for (int k = 0; k < CTL_NKINDS; k++) {
        rc = watch_start(c->watches[k].w);
        if (rc)
            return rc;
    }
    return 0;
}

bool controller_synced(struct controller *c)
{
    for (int k = 0; k < CTL_NKINDS; k++)
        if (!watch_has_synced(c->watches[k].w))
            return false;
    return true;
}

/* ---- keys to reconciles ---------------------------------------------- */

/* What a worker thread reconciles with: the controller and its own ranker. */
struct controller__worker {
    struct controller *c;
    struct recover_ranker *rk;
};

/* "vm/NS/NAME": a protected VM's health, and its incident. */
static int controller__reconcile_vm(void *ud, const char *ns, const char *name,
                                    uint64_t *requeue_ms)
{
    struct controller__worker *w = ud;

    return incident_reconcile(&w->c->env, w->rk, ns, name, requeue_ms);
}

/* "policy/NS/NAME": a policy's status, Events and dashboard view. */
static int controller__reconcile_policy(void *ud, const char *ns, const char *name,
                                        uint64_t *requeue_ms)
{
    struct controller__worker *w = ud;
    int rc = status_reconcile(&w->c->env, w->c->status, w->rk, ns, name, requeue_ms);

    if (!*requeue_ms)
        atomic_store(&w->c->dirty, 1);
    return rc;
}

/* "capture/NS/NAME": a protected VM's spec to capture into the pool. */
static int controller__reconcile_capture(void *ud, const char *ns, const char *name,
                                         uint64_t *requeue_ms)
{
    struct controller__worker *w = ud;

    (void)requeue_ms;
    return capture_vm(&w->c->env, w->c->capture, ns, name);
}

const struct controller_route controller__routes[] = {
    {"vm", controller__reconcile_vm},
    {"policy", controller__reconcile_policy},
    {"capture", controller__reconcile_capture},
};
const size_t controller__nroutes = sizeof(controller__routes) / sizeof(controller__routes[0]);

const struct controller_route *controller__dispatch(const struct controller_route *routes, size_t n,
                                                    const char *key, void *ud, uint64_t *requeue_ms,
                                                    int *rc)
{
    char *kind = xstrdup(key), *ns = strchr(kind, '/'), *name = ns ? strchr(ns + 1, '/') : NULL;
    const struct controller_route *route = NULL;

    *requeue_ms = 0;
    *rc = 0;
    if (name) {
        *ns++ = '\0';
        *name++ = '\0';
        for (size_t i = 0; i < n && !route; i++)
            if (strcmp(routes[i].kind, kind) == 0)
                route = &routes[i];
    }
    if (!route || !*ns || !*name) {
        log_error("bad work queue key %s", key);
        route = NULL;
    } else {
        *rc = route->reconcile(ud, ns, name, requeue_ms);
    }
    free(kind);
    return route;
}

const struct wq_config controller__queue_config = {CONTROLLER_RETRY_BASE_MS,
                                                   CONTROLLER_RETRY_CAP_MS, -1, 0};

uint64_t controller__retry(struct wq *q, const char *key, int rc, uint64_t requeue_ms)
{
    uint64_t delay = 0;

    if (rc && rc != -ECANCELED) {
        unsigned n = wq_num_requeues(q, key);

        delay = wq_add_rate_limited(q, key);
        if (n < 3 || n % CONTROLLER_RETRY_LOG_EVERY == 0)
            log_warn("%s failed (%d), attempt %u: retrying in %llu ms", key, rc, n + 1,
                     (unsigned long long)delay);
        else
            log_debug("%s failed (%d), attempt %u: retrying in %llu ms", key, rc, n + 1,
                      (unsigned long long)delay);
    } else {
        wq_forget(q, key);
        if (requeue_ms) {
            wq_add_after(q, key, requeue_ms);
            delay = requeue_ms;
        }
    }
    wq_done(q, key);
    return delay;
}

static void *controller__worker(void *arg)
{
    struct controller__worker w = {arg, recover_ranker_new()};
    char *key;

    while (wq_get(w.c->q, &key) == 0) {
        uint64_t requeue;
        int rc;

        controller__dispatch(controller__routes, controller__nroutes, key, &w, &requeue, &rc);
        controller__retry(w.c->q, key, rc, requeue);
        free(key);
        if (wq_len(w.c->q) == 0)
            recover_ranker_idle(w.rk); /* nothing waiting: no ranking's scratch kept */
    }
    recover_ranker_free(w.rk);
    return NULL;
}

static void *controller__capture_worker(void *arg)
{
    struct controller__worker w = {arg, recover_ranker_new()};
    struct controller *c = w.c;
    char *key;

    while (wq_get(c->capq, &key) == 0) {
        uint64_t requeue;
        int rc;

        if (wq_len(c->q) > 0) {
            /* recoveries first */
            wq_add_after(c->capq, key, CONTROLLER_CAPTURE_YIELD_MS);
            wq_done(c->capq, key);
            free(key);
            continue;
        }
        controller__dispatch(controller__routes, controller__nroutes, key, &w, &requeue, &rc);
        controller__retry(c->capq, key, rc, requeue);
        free(key);
        if (wq_len(c->capq) == 0)
            recover_ranker_idle(w.rk);
    }
    recover_ranker_free(w.rk);
    return NULL;
}

void controller_start_workers(struct controller *c)
{
    if (c->threads)
        return;
    atomic_store(&c->running, 1);
    /* The resync: every policy, every VM, once. */
    controller__policies(c, c->ns);
    controller__namespace(c, c->ns);
    c->threads = xcalloc((size_t)c->cfg.workers + 1, sizeof(*c->threads));
    for (int i = 0; i < c->cfg.workers; i++)
        if (pthread_create(&c->threads[c->nthreads], NULL, controller__worker, c) == 0)
            c->nthreads++;
    if (pthread_create(&c->threads[c->nthreads], NULL, controller__capture_worker, c) == 0)
        c->nthreads++;
    atomic_store(&c->dirty, 1);
}

void controller_stop_workers(struct controller *c)
{
    if (!c || c->stopped_workers)
        return;
    c->stopped_workers = 1;
    atomic_store(&c->running, 0);
    wq_shutdown(c->capq);
    wq_shutdown_drain(c->q);
    for (int i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL);
    c->nthreads = 0;
}

void controller_stop(struct controller *c)
{
    if (!c)
        return;
    for (int k = 0; k < CTL_NKINDS; k++)
        watch_stop(c->watches[k].w);
    if (c->event_thread_started) {
        pthread_mutex_lock(&c->ev_lock);
        c->ev_stop = 1;
        c->ev_deadline = clock_mono() + 2.0;
        pthread_cond_signal(&c->ev_cond);
        pthread_mutex_unlock(&c->ev_lock);
        pthread_join(c->event_thread, NULL);
        c->event_thread_started = 0;
    }
}

void controller_free(struct controller *c)
{
    struct controller_event *e, *next;

    if (!c)
        return;
    metrics_remove_collector(controller__collect, c);
    for (int k = 0; k < CTL_NKINDS; k++)
        watch_free(c->watches[k].w);
    if (!c->stopped_workers) {
        wq_shutdown(c->q);
        wq_shutdown(c->capq);
    }
    free(c->threads);
    wq_free(c->q);
    wq_free(c->capq);
    for (e = c->ev_head; e; e = next) {
        next = e->next;
        controller__event_free(e);
    }
    pthread_mutex_destroy(&c->ev_lock);
    pthread_cond_destroy(&c->ev_cond);
    event_recorder_free(c->events);
    capture_state_free(c->capture);
    status_state_free(c->status);
    recover_book_free(c->book);
    cache_free(c->cache);
    free(c->ns);
    free(c->identity);
    free(c->default_sa);
    free(c->policy_selector);
    free(c);
}

size_t controller__resync_keys(struct cache *cache, struct recover_book *book, const char *ns,
                               double now, char ***keys)
{
    size_t n = 0;

    *keys = NULL;
    cache_rdlock(cache);
    for (struct cache_vm *vm = cache_vm_first(cache, ns); vm; vm = cache_vm_next(vm, ns)) {
        struct cache_policy *p = recover_policy_for(cache, vm->ns, vm->tlabels, NULL);
        struct recover_note note;
        struct health_verdict v;
        int open;

        if (!p)
            continue;
        recover_book_note(book, vm->ns, vm->name, &note);
        incident_health(cache, p, vm, note.down_seen, now, &v);
        open = v.down || v.state == HEALTH_REPLACED || note.blocked != NULL || v.trigger_at > 0;
        recover_note_free(&note);
        if (!open)
            continue;
        *keys = xreallocarray(*keys, n + 1, sizeof(**keys));
        (*keys)[n++] = xasprintf("vm/%s/%s", vm->ns, vm->name);
    }
    cache_unlock(cache);
    return n;
}

size_t controller_resync(struct controller *c)
{
    char **keys;
    size_t n;

    if (!atomic_load(&c->running))
        return 0;
    controller__policies(c, c->ns);
    recover_book_prune(c->book, c->cache);
    capture_prune(c->capture, c->cache);
    n = controller__resync_keys(c->cache, c->book, c->ns, clock_wall(), &keys);
    controller__add_all(c->q, keys, n);
    if (n)
        log_debug("resync: %zu VMs down or in an incident", n);
    return n;
}

bool controller_take_dirty(struct controller *c)
{
    return atomic_exchange(&c->dirty, 0) != 0;
}

char *controller_state_json(struct controller *c, bool leader)
{
    cJSON *root = cJSON_CreateObject();
    char now[CLOCK_TEXT_LEN], *text;

    clock_format(clock_wall(), now);
    cJSON_AddStringToObject(root, "generatedAt", now);
    cJSON_AddBoolToObject(root, "leader", leader);
    cJSON_AddStringToObject(root, "identity", c->identity);
    cJSON_AddItemToObject(root, "policies", status_views(c->status));
    text = xcjson_print(root);
    cJSON_Delete(root);
    return text;
}

void controller_log_cache(struct controller *c)
{
    struct cache_stats st;
    cJSON *f = cJSON_CreateObject();
    size_t book_policies = 0, book_vms = 0;

    cache_stats(c->cache, &st);
    recover_book_size(c->book, &book_policies, &book_vms);
    cJSON_AddNumberToObject(f, "vmis", (double)st.vmis);
    cJSON_AddNumberToObject(f, "vms", (double)st.vms);
    cJSON_AddNumberToObject(f, "policies", (double)st.policies);
    cJSON_AddNumberToObject(f, "members", (double)st.members);
    cJSON_AddNumberToObject(f, "vmiBytes", (double)st.vmi_bytes);
    cJSON_AddNumberToObject(f, "vmBytes", (double)st.vm_bytes);
    cJSON_AddNumberToObject(f, "memberBytes", (double)st.member_bytes);
    cJSON_AddNumberToObject(f, "sharedBytes", (double)st.shared_bytes);
    /* pool ConfigMaps of namespaces without a policy, kept unparsed */
    cJSON_AddNumberToObject(f, "pending", (double)st.pending);
    cJSON_AddNumberToObject(f, "pendingBytes", (double)st.pending_bytes);
    cJSON_AddNumberToObject(f, "bytesPerVMI", st.vmis ? (double)st.vmi_bytes / st.vmis : 0);
    cJSON_AddNumberToObject(f, "bytesPerMember",
                            st.members ? (double)st.member_bytes / st.members : 0);
    /* what this process remembers beside the cache: both must shrink as VMs
     * go (issue 13; bench-soak reads this line) */
    cJSON_AddNumberToObject(f, "bookPolicies", (double)book_policies);
    cJSON_AddNumberToObject(f, "bookVMs", (double)book_vms);
    cJSON_AddNumberToObject(f, "captured", (double)capture_size(c->capture));
    log_fields(LOG_LVL_INFO, "cache", f);
}
