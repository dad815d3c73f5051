/*
 * kvrecover-controller — entry point: flags, clients, leader election, the
 * HTTP side, signals.
 *
 * The main thread only waits for signals (SIGTERM/SIGINT stop, SIGUSR1 is a
 * wake-up from the lease thread) and, every 200 ms at most, publishes the
 * dashboard state when it changed. Every other thread has those signals
 * blocked, so a signal never interrupts a request.
 *
 * Log lines other tools rely on (tests, benchmarks): {"msg":"started"},
 * {"msg":"http listening","port":N}, {"msg":"caches synced"},
 * {"msg":"leader"} when this replica starts acting, {"msg":"decision"} per
 * failed VMI (recover.c), {"msg":"stopped"}.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reconcile/controller.h"
#include "web/httpd.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "kube/lease.h"
#include "base/log.h"
#include "web/metrics.h"
#include "base/xalloc.h"

#define VERSION "0.1.0"

struct opts {
    const char *kubeconfig, *context, *ns, *lease_name, *lease_ns, *id, *http_addr, *log_level;
    double qps;
    int burst, workers, leader_elect;
    long lease_ms, renew_ms, retry_ms;
};

static pthread_t main_thread;
static atomic_int lease_started, lease_lost;

static void usage(FILE *f)
{
    fputs("Usage: kvrecover-controller [flags]\n"
          "Recovers failed KubeVirt VMIs from the most similar spec-pool member.\n\n"
          "  --kubeconfig PATH       kubeconfig (else $KUBECONFIG, in-cluster, ~/.kube/config)\n"
          "  --context NAME          kubeconfig context (default: current-context)\n"
          "  --namespace NS          watch only NS (default: all namespaces)\n"
          "  --qps N                 API requests per second (default 50; < 0: no limit)\n"
          "  --burst N               API request burst (default 100)\n"
          "  --workers N             reconcile workers (default 4)\n"
          "  --leader-elect[=BOOL]   leader election on a Lease (default true)\n"
          "  --lease-name NAME       Lease name (default kvrecover-controller)\n"
          "  --lease-namespace NS    Lease namespace (default $POD_NAMESPACE or kvrecover-system)\n"
          "  --lease-duration D      Lease duration (default 15s)\n"
          "  --renew-deadline D      give up leading after D without renewal (default 10s)\n"
          "  --retry-period D        between election attempts (default 2s)\n"
          "  --id ID                 this replica's identity (default <hostname>_<pid>)\n"
          "  --http-addr HOST:PORT   dashboard, /metrics, /healthz, /readyz (default :8080;\n"
          "                          port 0: any free port; empty: off)\n"
          "  --log-level LEVEL       debug, info, warn or error (default info)\n"
          "  --version               print the version and exit\n"
          "  --help                  print this help and exit\n",
          f);
}

/* "15s", "500ms", "1m", "1.5s", "2" (seconds) -> milliseconds. */
static int parse_duration(const char *s, long *ms)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || !(v >= 0))
        return -EINVAL;
    if (strcmp(end, "ms") == 0)
        *ms = (long)v;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        *ms = (long)(v * 1000.0);
    else if (strcmp(end, "m") == 0)
        *ms = (long)(v * 60000.0);
    else
        return -EINVAL;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!s || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return -EINVAL;
}

/* "HOST:PORT", ":PORT", "[V6]:PORT" -> host (NULL: all) and port. */
static int parse_addr(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    long p;

    *host = NULL;
    if (!colon || parse_long(colon + 1, 0, 65535, &p) != 0)
        return -EINVAL;
    if (colon > s) {
        if (s[0] == '[' && colon[-1] == ']')
            *host = xstrndup(s + 1, (size_t)(colon - s - 2));
        else
            *host = xstrndup(s, (size_t)(colon - s));
    }
    *port = (int)p;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        O_KUBECONFIG = 256,
        O_CONTEXT,
        O_NS,
        O_QPS,
        O_BURST,
        O_WORKERS,
        O_LEADER,
        O_LNAME,
        O_LNS,
        O_LDUR,
        O_RENEW,
        O_RETRY,
        O_ID,
        O_HTTP,
        O_LOG,
        O_VERSION,
        O_HELP
    };
    static const struct option longopts[] = {
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"context", required_argument, NULL, O_CONTEXT},
        {"namespace", required_argument, NULL, O_NS},
        {"qps", required_argument, NULL, O_QPS},
        {"burst", required_argument, NULL, O_BURST},
        {"workers", required_argument, NULL, O_WORKERS},
        {"leader-elect", optional_argument, NULL, O_LEADER},
        {"lease-name", required_argument, NULL, O_LNAME},
        {"lease-namespace", required_argument, NULL, O_LNS},
        {"lease-duration", required_argument, NULL, O_LDUR},
        {"renew-deadline", required_argument, NULL, O_RENEW},
        {"retry-period", required_argument, NULL, O_RETRY},
        {"id", required_argument, NULL, O_ID},
        {"http-addr", required_argument, NULL, O_HTTP},
        {"log-level", required_argument, NULL, O_LOG},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    long v;
    int opt;
    char *end;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;

        switch (opt) {
        case O_KUBECONFIG:
            o->kubeconfig = optarg;
            break;
        case O_CONTEXT:
            o->context = optarg;
            break;
        case O_NS:
            o->ns = optarg;
            break;
        case O_QPS:
            o->qps = strtod(optarg, &end);
            bad = end == optarg || *end;
            break;
        case O_BURST:
            bad = parse_long(optarg, 1, 100000, &v) != 0;
            o->burst = (int)v;
            break;
        case O_WORKERS:
            bad = parse_long(optarg, 1, 256, &v) != 0;
            o->workers = (int)v;
            break;
        case O_LEADER:
            bad = parse_bool(optarg, &o->leader_elect) != 0;
            break;
        case O_LNAME:
            o->lease_name = optarg;
            break;
        case O_LNS:
            o->lease_ns = optarg;
            break;
        case O_LDUR:
            bad = parse_duration(optarg, &o->lease_ms) != 0;
            break;
        case O_RENEW:
            bad = parse_duration(optarg, &o->renew_ms) != 0;
            break;
        case O_RETRY:
            bad = parse_duration(optarg, &o->retry_ms) != 0;
            break;
        case O_ID:
            o->id = optarg;
            break;
        case O_HTTP:
            o->http_addr = optarg;
            break;
        case O_LOG:
            o->log_level = optarg;
            break;
        case O_VERSION:
            printf("kvrecover-controller %s\n", VERSION);
            exit(0);
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
        if (bad) {
            fprintf(stderr, "kvrecover-controller: bad value for --%s: %s\n",
                    longopts[opt - O_KUBECONFIG].name, optarg ? optarg : "");
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvrecover-controller: unexpected argument %s\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* ---- leader election -------------------------------------------------- */

struct elector {
    struct lease *lease;
    pthread_t thread;
    int started;
    int rc;
};

static void on_started_leading(void *ud)
{
    (void)ud;
    atomic_store(&lease_started, 1);
    pthread_kill(main_thread, SIGUSR1);
}

static void on_stopped_leading(void *ud)
{
    (void)ud;
    atomic_store(&lease_lost, 1);
    pthread_kill(main_thread, SIGUSR1);
}

static void on_new_leader(void *ud, const char *identity)
{
    cJSON *f = cJSON_CreateObject();

    (void)ud;
    cJSON_AddStringToObject(f, "holder", identity);
    log_fields(LOG_LVL_INFO, "new leader", f);
}

static void *lease_main(void *arg)
{
    struct elector *e = arg;

    e->rc = lease_run(e->lease);
    if (e->rc) {
        atomic_store(&lease_lost, 1);
        pthread_kill(main_thread, SIGUSR1);
    }
    return NULL;
}

static int is_leader(void *ud)
{
    return lease_is_leader(ud);
}

/* ---- main ------------------------------------------------------------- */

static int http_ready(void *ud)
{
    return controller_synced(ud);
}

static void log_started(const struct opts *o, const char *id, const struct kubeconfig *cfg)
{
    cJSON *f = cJSON_CreateObject();

    cJSON_AddStringToObject(f, "version", VERSION);
    cJSON_AddStringToObject(f, "identity", id);
    cJSON_AddStringToObject(f, "namespace", o->ns ? o->ns : "");
    cJSON_AddNumberToObject(f, "workers", o->workers);
    cJSON_AddBoolToObject(f, "leaderElect", o->leader_elect);
    cJSON_AddStringToObject(f, "server", cfg->server ? cfg->server : "");
    cJSON_AddStringToObject(f, "kubeconfig", cfg->source ? cfg->source : "");
    log_fields(LOG_LVL_INFO, "started", f);
}

int main(int argc, char **argv)
{
    struct opts o = {NULL,
                     NULL,
                     NULL,
                     "kvrecover-controller",
                     NULL,
                     NULL,
                     ":8080",
                     "info",
                     KUBE_DEFAULT_QPS,
                     KUBE_DEFAULT_BURST,
                     CONTROLLER_DEFAULT_WORKERS,
                     1,
                     LEASE_DEFAULT_DURATION_MS,
                     LEASE_DEFAULT_RENEW_DEADLINE_MS,
                     LEASE_DEFAULT_RETRY_PERIOD_MS};
    struct kubeconfig *kc = NULL;
    struct kube *kube = NULL, *ev_kube = NULL, *lease_kube = NULL;
    struct controller *c = NULL;
    struct httpd *http = NULL;
    struct elector el = {0};
    struct controller_config cc = {0};
    struct kube_options ko = {0}, eko = {0}, lko;
    struct lease_config lc = {0};
    enum log_level lvl;
    sigset_t set;
    char *err = NULL, *id = NULL, *host = NULL;
    int rc, exit_code = 1, synced = 0, workers = 0, port = 0;
    unsigned long ticks = 0;
    const char *pod_ns = getenv("POD_NAMESPACE");

    o.lease_ns = pod_ns && *pod_ns ? pod_ns : "kvrecover-system";
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (log_parse_level(o.log_level, &lvl) != 0) {
        fprintf(stderr, "kvrecover-controller: bad --log-level %s\n", o.log_level);
        return 2;
    }
    log_set_level(lvl);
    /* Few arenas: a controller with a dozen threads would otherwise keep a
     * heap per thread, and the RSS target is tight. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    main_thread = pthread_self();

    if (o.id && *o.id) {
        id = xstrdup(o.id);
    } else {
        char hn[256] = "kvrecover";
        gethostname(hn, sizeof(hn) - 1);
        id = xasprintf("%s_%ld", hn, (long)getpid());
    }
    rc = kubeconfig_resolve(o.kubeconfig, o.context, &kc, &err);
    if (rc) {
        log_error("kubeconfig: %s", err ? err : "not found");
        goto out;
    }
    ko.qps = o.qps;
    ko.burst = o.burst;
    rc = kube_new(kc, &ko, &kube, &err);
    /* Events have a budget of their own so that they never take tokens a
     * replacement needs. */
    eko.qps = 20;
    eko.burst = 50;
    if (!rc)
        rc = kube_new(kc, &eko, &ev_kube, &err);
    if (rc) {
        log_error("API client: %s", err ? err : "failed");
        goto out;
    }
    log_started(&o, id, kc);

    cc.kube = kube;
    cc.event_kube = ev_kube;
    cc.ns = o.ns;
    cc.workers = o.workers;
    cc.identity = id;
    if (o.leader_elect) {
        lc.ns = o.lease_ns;
        lc.name = o.lease_name;
        lc.identity = id;
        lc.lease_duration_ms = o.lease_ms;
        lc.renew_deadline_ms = o.renew_ms;
        lc.retry_period_ms = o.retry_ms;
        lc.on_started_leading = on_started_leading;
        lc.on_stopped_leading = on_stopped_leading;
        lc.on_new_leader = on_new_leader;
        lease_kube_options(&lc, &lko);
        rc = kube_new(kc, &lko, &lease_kube, &err);
        if (!rc)
            rc = lease_new(lease_kube, &lc, &el.lease);
        if (rc) {
            log_error("leader election: %s", err ? err : "bad lease settings");
            goto out;
        }
        cc.extra_kube = lease_kube;
        cc.leading = is_leader;
        cc.ud = el.lease;
    }
    rc = controller_new(&cc, &c);
    if (rc) {
        log_error("controller: %d", rc);
        goto out;
    }
    if (o.http_addr && *o.http_addr) {
        struct httpd_config hc = {0};

        if (parse_addr(o.http_addr, &host, &port) != 0) {
            log_error("bad --http-addr %s (HOST:PORT)", o.http_addr);
            goto out;
        }
        hc.addr = host;
        hc.port = port;
        hc.ready = http_ready;
        hc.ud = c;
        rc = httpd_start(&hc, &http, &err);
        if (rc) {
            log_error("http: %s", err ? err : "cannot listen");
            goto out;
        }
        /* httpd logs {"msg":"http listening","addr":...,"port":N} itself */
    }
    metrics_gauge_set(METRICS_LEADER, NULL, 0);
    rc = controller_start(c);
    if (rc) {
        log_error("starting the reflectors: %d", rc);
        goto stop;
    }
    if (el.lease) {
        if (pthread_create(&el.thread, NULL, lease_main, &el) == 0)
            el.started = 1;
    } else {
        atomic_store(&lease_started, 1);
    }

    for (;;) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);

        if (sig == SIGTERM || sig == SIGINT) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            log_fields(LOG_LVL_INFO, "shutting down", f);
            exit_code = 0;
            break;
        }
        if (!synced && controller_synced(c)) {
            synced = 1;
            log_fields(LOG_LVL_INFO, "caches synced", NULL);
            controller_log_cache(c);
            malloc_trim(0);
        }
        if (atomic_load(&lease_lost)) {
            log_error("leader election lost (%d): stopping", el.rc);
            exit_code = 1;
            break;
        }
        if (synced && !workers && atomic_load(&lease_started)) {
            cJSON *f = cJSON_CreateObject();

            cJSON_AddStringToObject(f, "identity", id);
            cJSON_AddBoolToObject(f, "leaderElect", o.leader_elect);
            if (el.lease) {
                char *lk = xasprintf("%s/%s", o.lease_ns, o.lease_name);
                cJSON_AddStringToObject(f, "lease", lk);
                free(lk);
            }
            log_fields(LOG_LVL_INFO, "leader", f);
            metrics_gauge_set(METRICS_LEADER, NULL, 1);
            controller_start_workers(c);
            workers = 1;
        }
        if (http && controller_take_dirty(c))
            httpd_publish(http, controller_state_json(c, workers != 0));
        /* Give the heap's free pages back now and then: list pages and
         * rankings leave holes that would otherwise stay resident. */
        if (++ticks % 50 == 0)
            malloc_trim(0);
    }

stop:
    /* Finish the keys in flight, then let another replica take over at
     * once, then stop watching. */
    controller_stop_workers(c);
    metrics_gauge_set(METRICS_LEADER, NULL, 0);
    if (el.started) {
        rc = lease_release(el.lease);
        pthread_join(el.thread, NULL);
        if (rc)
            log_warn("releasing the lease failed: %d", rc);
        else if (workers)
            log_fields(LOG_LVL_INFO, "lease released", NULL);
    }
    /* Nothing writes any more: end the watches' requests at once. */
    kube_shutdown(kube);
    controller_stop(c);
out:
    httpd_stop(http);
    controller_free(c);
    lease_free(el.lease);
    kube_free(lease_kube);
    kube_free(ev_kube);
    kube_free(kube);
    kubeconfig_free(kc);
    free(err);
    free(host);
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "exitCode", exit_code);
        log_fields(LOG_LVL_INFO, "stopped", f);
    }
    free(id);
    return exit_code;
}
