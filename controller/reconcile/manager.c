/*
 * manager — clients, sync, leader, workers, publish, teardown. See
 * manager.h.
 *
 * The lease thread only tells: its callbacks set a flag and wake this
 * thread with SIGUSR1, and everything that starts or stops happens here, in
 * one place and one order.
 */
#include "reconcile/manager.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "kube/lease.h"
#include "reconcile/controller.h"
#include "web/httpd.h"
#include "web/metrics.h"

/* How long the loop waits for a signal before it looks at the rest. */
#define MANAGER_TICK_NS (200 * 1000 * 1000L)
/* Every this many ticks the heap gives its free pages back: list pages and
 * rankings leave holes that would otherwise stay resident. */
#define MANAGER_TRIM_TICKS (MANAGER_HEAP_TRIM_MS * 1000000L / MANAGER_TICK_NS)
/* A trim holds the heap's one lock while it gives pages back: tens of ms
 * on a fragmented heap (bench/README.md), so it is made only once this
 * much more is resident and unused than after the last one. */
#define MANAGER_TRIM_MIN_BYTES (2u << 20)
/* Blocks this big and bigger get an mmap of their own (see manager.h). */
#define MANAGER_MMAP_THRESHOLD (64 * 1024)

struct manager {
    const struct manager_config *cfg;
    pthread_t thread; /* the one that waits for signals */
    sigset_t signals; /* SIGTERM, SIGINT, SIGUSR1 */

    struct kubeconfig *kc;
    struct kube *kube;       /* reflectors and reconciles */
    struct kube *event_kube; /* Events, with a budget of their own */
    struct kube *lease_kube; /* the Lease, never throttled behind the rest */
    struct controller *ctl;
    struct httpd *http;
    char *http_host;  /* parsed from cfg->http_addr */
    char *probe_host; /* parsed from cfg->probe_addr */

    struct lease *lease; /* NULL without leader election */
    pthread_t lease_thread;
    bool lease_thread_started;
    int lease_rc;          /* what lease_run() returned */
    atomic_int leading;    /* set by the lease thread (or at once) */
    atomic_int lease_lost; /* set by the lease thread */
    bool synced, workers;  /* caches synced; workers started */
};

/* ---- the heap ------------------------------------------------------------ */

void manager_heap_init(void)
{
    /* One arena: the threads mostly wait on the network, so contention
     * on its lock costs little (bench/README.md: the soak's CPU seconds
     * and decision latency did not move measurably), while an arena per
     * thread keeps each one's peak resident. */
    mallopt(M_ARENA_MAX, 1);
    /* Fixed, which also stops glibc raising it (up to 32 MiB) after the
     * first big free: a 10,000-object list's pages, freed, would then stay
     * in the heap. */
    mallopt(M_MMAP_THRESHOLD, MANAGER_MMAP_THRESHOLD);
}

/* The process's resident anonymous bytes (/proc/self/statm: resident less
 * shared, the file-backed pages), or 0 when it cannot be read. */
static size_t manager__anon_bytes(void)
{
    unsigned long size, resident, shared;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "%lu %lu %lu", &size, &resident, &shared);
    fclose(f);
    if (n != 3 || shared > resident)
        return 0;
    return (size_t)(resident - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

/* Resident anonymous bytes that hold nothing malloc hands out: the heap's
 * free pages still in RAM (plus stacks and the like, which barely move). */
static size_t manager__idle_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    size_t anon = manager__anon_bytes(), used = mi.uordblks + mi.hblkhd;

    return anon > used ? anon - used : 0;
}

double manager_heap_trim(void)
{
    /* Resident but unused bytes after the last trim. Not the free bytes,
     * as before: a burst that allocates and frees less than the threshold
     * many times over (the status and ranking passes after a sync) leaves
     * pages resident without adding to the free count, and those stayed
     * (issue 11: 6 MB of 36 at 10,000 VMs + 10,000 members). */
    static size_t idle_after;
    size_t idle = manager__idle_bytes();
    double t0;

    if (idle < idle_after)
        idle_after = idle; /* reused since: measure from here */
    if (idle < idle_after + MANAGER_TRIM_MIN_BYTES)
        return -1;
    t0 = clock_mono();
    malloc_trim(0);
    idle_after = manager__idle_bytes();
    return (clock_mono() - t0) * 1000.0;
}

/* ---- the lease thread's callbacks --------------------------------------- */

static void manager__on_started_leading(void *ud)
{
    struct manager *m = ud;

    atomic_store(&m->leading, 1);
    pthread_kill(m->thread, SIGUSR1);
}

static void manager__on_stopped_leading(void *ud)
{
    struct manager *m = ud;

    atomic_store(&m->lease_lost, 1);
    pthread_kill(m->thread, SIGUSR1);
}

static void manager__on_new_leader(void *ud, const char *identity)
{
    cJSON *f = cJSON_CreateObject();

    (void)ud;
    cJSON_AddStringToObject(f, "holder", identity);
    log_fields(LOG_LVL_INFO, "new leader", f);
}

static void *manager__lease_main(void *arg)
{
    struct manager *m = arg;

    m->lease_rc = lease_run(m->lease);
    if (m->lease_rc) {
        atomic_store(&m->lease_lost, 1);
        pthread_kill(m->thread, SIGUSR1);
    }
    return NULL;
}

/* controller_config.leading: ask the elector. */
static int manager__is_leader(void *ud)
{
    return lease_is_leader(ud);
}

/* httpd_config.ready: /readyz says ready once the caches synced. */
static int manager__ready(void *ud)
{
    return controller_synced(ud);
}

/* ---- starting ----------------------------------------------------------- */

static void manager__log_started(const struct manager *m)
{
    const struct manager_config *cfg = m->cfg;
    cJSON *f = cJSON_CreateObject();

    cJSON_AddStringToObject(f, "version", cfg->version ? cfg->version : "");
    cJSON_AddStringToObject(f, "identity", cfg->identity);
    cJSON_AddStringToObject(f, "namespace", cfg->ns ? cfg->ns : "");
    cJSON_AddStringToObject(f, "policySelector", cfg->policy_selector ? cfg->policy_selector : "");
    cJSON_AddNumberToObject(f, "workers", cfg->workers);
    cJSON_AddNumberToObject(f, "resyncPeriodMs", (double)cfg->resync_ms);
    cJSON_AddBoolToObject(f, "leaderElect", cfg->leader_elect);
    cJSON_AddStringToObject(f, "server", m->kc->server ? m->kc->server : "");
    cJSON_AddStringToObject(f, "kubeconfig", m->kc->source ? m->kc->source : "");
    log_fields(LOG_LVL_INFO, "started", f);
}

/* The API clients. Returns 0, or -1 after logging why not. */
static int manager__clients(struct manager *m)
{
    const struct kube_options main_opts = {.qps = m->cfg->qps, .burst = m->cfg->burst};
    /* Events have a budget of their own so that they never take tokens a
     * replacement needs. */
    const struct kube_options event_opts = {.qps = 20, .burst = 50};
    char *err = NULL;
    int rc;

    rc = kubeconfig_resolve(m->cfg->kubeconfig, m->cfg->context, &m->kc, &err);
    if (rc) {
        log_error("kubeconfig: %s", err ? err : "not found");
        goto out;
    }
    rc = kube_new(m->kc, &main_opts, &m->kube, &err);
    if (!rc)
        rc = kube_new(m->kc, &event_opts, &m->event_kube, &err);
    if (rc)
        log_error("API client: %s", err ? err : "failed");
out:
    free(err);
    return rc ? -1 : 0;
}

/* The elector and its client, when leader election is on. Returns 0, or -1
 * after logging why not. */
static int manager__elector(struct manager *m)
{
    const struct manager_config *cfg = m->cfg;
    const struct lease_config lc = {
        .ns = cfg->lease_ns,
        .name = cfg->lease_name,
        .identity = cfg->identity,
        .lease_duration_ms = cfg->lease_duration_ms,
        .renew_deadline_ms = cfg->renew_deadline_ms,
        .retry_period_ms = cfg->retry_period_ms,
        .ud = m,
        .on_started_leading = manager__on_started_leading,
        .on_stopped_leading = manager__on_stopped_leading,
        .on_new_leader = manager__on_new_leader,
    };
    struct kube_options lko;
    char *err = NULL;
    int rc;

    lease_kube_options(&lc, &lko);
    rc = kube_new(m->kc, &lko, &m->lease_kube, &err);
    if (!rc)
        rc = lease_new(m->lease_kube, &lc, &m->lease);
    if (rc)
        log_error("leader election: %s", err ? err : "bad lease settings");
    free(err);
    return rc ? -1 : 0;
}

/* The HTTP side, when cfg->http_addr or cfg->probe_addr asks for one.
 * Returns 0, or -1 after logging why not. */
static int manager__http(struct manager *m)
{
    const char *ha = m->cfg->http_addr, *pa = m->cfg->probe_addr;
    struct httpd_config hc = {0};
    char *err = NULL;
    int rc;

    if ((!ha || !*ha) && (!pa || !*pa))
        return 0;
    if (m->cfg->http)
        hc = *m->cfg->http;
    hc.ready = manager__ready;
    hc.ud = m->ctl;
    hc.port = -1;
    if (ha && *ha && httpd_parse_addr(ha, &m->http_host, &hc.port) != 0) {
        log_error("bad --http-addr %s (HOST:PORT)", ha);
        return -1;
    }
    hc.probe = pa && *pa;
    if (hc.probe && httpd_parse_addr(pa, &m->probe_host, &hc.probe_port) != 0) {
        log_error("bad --probe-addr %s (HOST:PORT)", pa);
        return -1;
    }
    hc.addr = m->http_host;
    hc.probe_addr = m->probe_host;
    rc = httpd_start(&hc, &m->http, &err);
    if (rc)
        log_error("http: %s", err ? err : "cannot listen");
    /* httpd logs {"msg":"http listening"} and {"msg":"probes listening"} */
    free(err);
    return rc ? -1 : 0;
}

/* Everything up to the running reflectors. Returns 0; -1 when something
 * could not be made (nothing runs); -2 when the reflectors did not start
 * (stop what did). Logs why. */
static int manager__open(struct manager *m)
{
    struct controller_config cc = {.workers = m->cfg->workers,
                                   .ns = m->cfg->ns,
                                   .policy_selector = m->cfg->policy_selector,
                                   .identity = m->cfg->identity,
                                   .default_service_account = m->cfg->default_service_account};
    int rc;

    if (manager__clients(m) < 0)
        return -1;
    manager__log_started(m);
    cc.kube = m->kube;
    cc.event_kube = m->event_kube;
    if (m->cfg->leader_elect) {
        if (manager__elector(m) < 0)
            return -1;
        cc.extra_kube = m->lease_kube;
        cc.leading = manager__is_leader;
        cc.ud = m->lease;
    }
    rc = controller_new(&cc, &m->ctl);
    if (rc) {
        log_error("controller: %d", rc);
        return -1;
    }
    if (manager__http(m) < 0)
        return -1;
    metrics_gauge_set(METRICS_LEADER, NULL, 0);
    rc = controller_start(m->ctl);
    if (rc) {
        log_error("starting the reflectors: %d", rc);
        return -2;
    }
    if (m->lease) {
        if (pthread_create(&m->lease_thread, NULL, manager__lease_main, m) == 0)
            m->lease_thread_started = true;
    } else {
        atomic_store(&m->leading, 1);
    }
    return 0;
}

/* ---- running ------------------------------------------------------------ */

/* This replica starts acting: the workers, once. */
static void manager__lead(struct manager *m)
{
    cJSON *f = cJSON_CreateObject();

    cJSON_AddStringToObject(f, "identity", m->cfg->identity);
    cJSON_AddBoolToObject(f, "leaderElect", m->cfg->leader_elect);
    if (m->lease) {
        char *lk = xasprintf("%s/%s", m->cfg->lease_ns, m->cfg->lease_name);
        cJSON_AddStringToObject(f, "lease", lk);
        free(lk);
    }
    log_fields(LOG_LVL_INFO, "leader", f);
    metrics_gauge_set(METRICS_LEADER, NULL, 1);
    controller_start_workers(m->ctl);
    m->workers = true;
}

/* Waits for signals and keeps sync, leader, workers and publish going until
 * a stop. Returns the exit code: 0 for SIGTERM/SIGINT, 1 for a lost lease. */
static int manager__loop(struct manager *m)
{
    unsigned long ticks = 0;
    double next_resync = 0;

    for (;;) {
        struct timespec ts = {0, MANAGER_TICK_NS};
        int sig = sigtimedwait(&m->signals, NULL, &ts);

        if (sig == SIGTERM || sig == SIGINT) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            log_fields(LOG_LVL_INFO, "shutting down", f);
            return 0;
        }
        if (!m->synced && controller_synced(m->ctl)) {
            m->synced = true;
            log_fields(LOG_LVL_INFO, "caches synced", NULL);
            controller_log_cache(m->ctl);
            manager_heap_trim();
        }
        if (atomic_load(&m->lease_lost)) {
            log_error("leader election lost (%d): stopping", m->lease_rc);
            return 1;
        }
        if (m->synced && !m->workers && atomic_load(&m->leading))
            manager__lead(m);
        if (m->workers && m->cfg->resync_ms > 0) {
            double now = clock_mono();

            if (next_resync == 0)
                next_resync = now + (double)m->cfg->resync_ms / 1000.0;
            else if (now >= next_resync) {
                controller_resync(m->ctl);
                next_resync = now + (double)m->cfg->resync_ms / 1000.0;
            }
        }
        if (m->http && controller_take_dirty(m->ctl))
            httpd_publish(m->http, controller_state_json(m->ctl, m->workers));
        if (++ticks % MANAGER_TRIM_TICKS == 0)
            manager_heap_trim();
    }
}

/* ---- stopping ----------------------------------------------------------- */

/* Finishes the keys in flight, then lets another replica take over at
 * once, then stops watching. */
static void manager__stop(struct manager *m)
{
    controller_stop_workers(m->ctl);
    metrics_gauge_set(METRICS_LEADER, NULL, 0);
    if (m->lease_thread_started) {
        int rc = lease_release(m->lease);

        pthread_join(m->lease_thread, NULL);
        if (rc)
            log_warn("releasing the lease failed: %d", rc);
        else if (m->workers)
            log_fields(LOG_LVL_INFO, "lease released", NULL);
    }
    /* Nothing writes any more: end the watches' requests at once. */
    kube_shutdown(m->kube);
    controller_stop(m->ctl);
}

/* Frees whatever was made; logs the last line. */
static void manager__close(struct manager *m, int exit_code)
{
    cJSON *f = cJSON_CreateObject();

    httpd_stop(m->http);
    controller_free(m->ctl);
    lease_free(m->lease);
    kube_free(m->lease_kube);
    kube_free(m->event_kube);
    kube_free(m->kube);
    kubeconfig_free(m->kc);
    free(m->http_host);
    free(m->probe_host);
    cJSON_AddNumberToObject(f, "exitCode", exit_code);
    log_fields(LOG_LVL_INFO, "stopped", f);
}

int manager_run(const struct manager_config *cfg)
{
    struct manager m = {.cfg = cfg};
    int exit_code = 1, rc;

    sigemptyset(&m.signals);
    sigaddset(&m.signals, SIGTERM);
    sigaddset(&m.signals, SIGINT);
    sigaddset(&m.signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &m.signals, NULL);
    m.thread = pthread_self();
    atomic_init(&m.leading, 0);
    atomic_init(&m.lease_lost, 0);

    rc = manager__open(&m);
    if (rc == 0)
        exit_code = manager__loop(&m);
    if (rc == 0 || rc == -2)
        manager__stop(&m);
    manager__close(&m, exit_code);
    return exit_code;
}
