/*
 * kvrecover-controller — entry point: the flags, and the process settings
 * that must come before any thread (the heap, SIGPIPE). What runs is the
 * manager's (reconcile/manager.h): the clients, sync, leader election,
 * workers, the HTTP side, signals and teardown.
 *
 * Log lines other tools rely on (tests, benchmarks): {"msg":"started"},
 * {"msg":"http listening","port":N} and {"msg":"probes listening","port":N}
 * (httpd.c), {"msg":"caches synced"},
 * {"msg":"leader"} when this replica starts acting (manager.c),
 * {"msg":"decision"} per failed VMI (recover.c), {"msg":"stopped"}.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "kube/kube.h"
#include "kube/kubeconfig.h"
#include "kube/lease.h"
#include "kube/review.h"
#include "reconcile/controller.h"
#include "reconcile/manager.h"
#include "sim/policy.h"
#include "web/httpd.h"

#define VERSION "0.1.0"

/* The flags: what the manager runs, and what main itself uses. */
struct flags {
    struct manager_config run;
    const char *id;             /* --id; NULL or "": <hostname>_<pid> */
    const char *log_level;      /* --log-level */
    struct httpd_config http;   /* --http-allowed-host, --http-auth (run.http points here) */
    const char **allowed_hosts; /* --http-allowed-host values, argv's strings */
};

static void usage(FILE *f)
{
    fputs("Usage: kvrecover-controller [flags]\n"
          "Recovers failed KubeVirt VMIs from the most similar spec-pool member.\n\n"
          "  --kubeconfig PATH       kubeconfig (else $KUBECONFIG, in-cluster, ~/.kube/config)\n"
          "  --context NAME          kubeconfig context (default: current-context)\n"
          "  --namespace NS          watch only NS (default: all namespaces)\n"
          "  --policy-selector SEL   serve only the RecoveryPolicies with these labels, an\n"
          "                          equality-based selector as kubectl -l takes (k=v,k2!=v2,k3);\n"
          "                          for controllers that share a cluster (default: all)\n"
          "  --qps N                 API requests per second (default 50; < 0: no limit)\n"
          "  --burst N               API request burst (default 100)\n"
          "  --workers N             reconcile workers (default 4)\n"
          "  --resync-period D       reconcile every VM that is down or in an incident, and\n"
          "                          every policy, this often (default 60s; 0: never)\n"
          "  --leader-elect[=BOOL]   leader election on a Lease (default true)\n"
          "  --lease-name NAME       Lease name (default kvrecover-controller)\n"
          "  --lease-namespace NS    Lease namespace (default $POD_NAMESPACE or kvrecover-system)\n"
          "  --lease-duration D      Lease duration (default 15s)\n"
          "  --renew-deadline D      give up leading after D without renewal (default 10s)\n"
          "  --retry-period D        between election attempts (default 2s)\n"
          "  --id ID                 this replica's identity (default <hostname>_<pid>)\n"
          "  --http-addr HOST:PORT   dashboard, /api/state, /ws, /metrics (and the probes)\n"
          "                          (default 127.0.0.1:8080; port 0: any free port; empty: off)\n"
          "  --probe-addr HOST:PORT  /healthz and /readyz alone, for the kubelet (default :8081;\n"
          "                          port 0: any free port; empty: off)\n"
          "  --http-allowed-host H   a Host the dashboard listener also answers to, NAME or\n"
          "                          NAME:PORT (repeatable; localhost, 127.0.0.1, [::1] and\n"
          "                          the listener's own addresses always are)\n"
          "  --http-auth MODE        who needs a bearer token (TokenReview and\n"
          "                          SubjectAccessReview): auto (default: every peer but\n"
          "                          loopback), tokenreview (every peer), none\n"
          "  --log-level LEVEL       debug, info, warn or error (default info)\n"
          "  --default-service-account NAME\n"
          "                          make the writes for a policy that names no\n"
          "                          spec.serviceAccountName as ServiceAccount NAME of the\n"
          "                          policy's namespace (default: as the controller itself)\n"
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

static int parse_bool(const char *s, bool *out)
{
    if (!s || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

static int parse_http_auth(const char *s, enum httpd_auth *out)
{
    if (strcmp(s, "auto") == 0)
        *out = HTTPD_AUTH_AUTO;
    else if (strcmp(s, "tokenreview") == 0)
        *out = HTTPD_AUTH_TOKEN;
    else if (strcmp(s, "none") == 0)
        *out = HTTPD_AUTH_NONE;
    else
        return -EINVAL;
    return 0;
}

static int parse_flags(int argc, char **argv, struct flags *f)
{
    enum {
        O_KUBECONFIG = 256,
        O_CONTEXT,
        O_NS,
        O_POLICY_SELECTOR,
        O_QPS,
        O_BURST,
        O_WORKERS,
        O_RESYNC,
        O_LEADER,
        O_LNAME,
        O_LNS,
        O_LDUR,
        O_RENEW,
        O_RETRY,
        O_ID,
        O_HTTP,
        O_PROBE,
        O_ALLOWED_HOST,
        O_HTTP_AUTH,
        O_LOG,
        O_DEFAULT_SA,
        O_VERSION,
        O_HELP
    };
    static const struct option longopts[] = {
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"context", required_argument, NULL, O_CONTEXT},
        {"namespace", required_argument, NULL, O_NS},
        {"policy-selector", required_argument, NULL, O_POLICY_SELECTOR},
        {"qps", required_argument, NULL, O_QPS},
        {"burst", required_argument, NULL, O_BURST},
        {"workers", required_argument, NULL, O_WORKERS},
        {"resync-period", required_argument, NULL, O_RESYNC},
        {"leader-elect", optional_argument, NULL, O_LEADER},
        {"lease-name", required_argument, NULL, O_LNAME},
        {"lease-namespace", required_argument, NULL, O_LNS},
        {"lease-duration", required_argument, NULL, O_LDUR},
        {"renew-deadline", required_argument, NULL, O_RENEW},
        {"retry-period", required_argument, NULL, O_RETRY},
        {"id", required_argument, NULL, O_ID},
        {"http-addr", required_argument, NULL, O_HTTP},
        {"probe-addr", required_argument, NULL, O_PROBE},
        {"http-allowed-host", required_argument, NULL, O_ALLOWED_HOST},
        {"http-auth", required_argument, NULL, O_HTTP_AUTH},
        {"log-level", required_argument, NULL, O_LOG},
        {"default-service-account", required_argument, NULL, O_DEFAULT_SA},
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
            f->run.kubeconfig = optarg;
            break;
        case O_CONTEXT:
            f->run.context = optarg;
            break;
        case O_NS:
            f->run.ns = optarg;
            break;
        case O_POLICY_SELECTOR:
            /* refused here rather than by the API server on every list */
            bad = !policy_is_label_selector(optarg);
            f->run.policy_selector = optarg;
            break;
        case O_QPS:
            f->run.qps = strtod(optarg, &end);
            bad = end == optarg || *end;
            break;
        case O_BURST:
            bad = parse_long(optarg, 1, 100000, &v) != 0;
            f->run.burst = (int)v;
            break;
        case O_WORKERS:
            bad = parse_long(optarg, 1, 256, &v) != 0;
            f->run.workers = (int)v;
            break;
        case O_LEADER:
            bad = parse_bool(optarg, &f->run.leader_elect) != 0;
            break;
        case O_LNAME:
            f->run.lease_name = optarg;
            break;
        case O_LNS:
            f->run.lease_ns = optarg;
            break;
        case O_LDUR:
            bad = parse_duration(optarg, &f->run.lease_duration_ms) != 0;
            break;
        case O_RESYNC:
            bad = parse_duration(optarg, &f->run.resync_ms) != 0;
            break;
        case O_RENEW:
            bad = parse_duration(optarg, &f->run.renew_deadline_ms) != 0;
            break;
        case O_RETRY:
            bad = parse_duration(optarg, &f->run.retry_period_ms) != 0;
            break;
        case O_ID:
            f->id = optarg;
            break;
        case O_HTTP:
            f->run.http_addr = optarg;
            break;
        case O_PROBE:
            f->run.probe_addr = optarg;
            break;
        case O_ALLOWED_HOST:
            f->allowed_hosts[f->http.n_allowed_hosts++] = optarg;
            break;
        case O_HTTP_AUTH:
            bad = parse_http_auth(optarg, &f->http.auth) != 0;
            break;
        case O_LOG:
            f->log_level = optarg;
            break;
        case O_DEFAULT_SA:
            /* a ServiceAccount's name; it goes into Impersonate-User */
            bad = !policy_is_dns_subdomain(optarg);
            f->run.default_service_account = optarg;
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

/* This replica's identity: --id, else "<hostname>_<pid>". The caller
 * frees. */
static char *identity(const char *id)
{
    char hn[256] = "kvrecover";

    if (id && *id)
        return xstrdup(id);
    gethostname(hn, sizeof(hn) - 1);
    return xasprintf("%s_%ld", hn, (long)getpid());
}

/* The values kube/review answers are web/authz's decisions, passed
 * through as they are. */
_Static_assert((int)REVIEW_ALLOWED == (int)AUTHZ_ALLOW &&
                   (int)REVIEW_UNAUTHENTICATED == (int)AUTHZ_UNAUTHENTICATED &&
                   (int)REVIEW_FORBIDDEN == (int)AUTHZ_FORBIDDEN,
               "review and authz decisions differ");

/* httpd_config.authorize: a TokenReview and a SubjectAccessReview. */
static int http_authorize(void *ud, const char *token, const char *path, const char *verb)
{
    enum review_decision d;
    int rc = review_nonresource(ud, token, path, verb, &d, NULL);

    return rc ? rc : (int)d;
}

/* The API client the HTTP side's token reviews use: one of its own, so
 * that a flood of tokens never spends the reconciles' request budget, with
 * short timeouts, so that a waiting request is answered (503) soon when
 * the API server is slow. Returns 0, or -1 after logging why not. */
static int http_review_client(const struct flags *f, struct kubeconfig **kc, struct kube **k)
{
    const struct kube_options opts = {
        .qps = 20, .burst = 40, .connect_timeout_ms = 3000, .timeout_ms = 5000, .max_retries = 1};
    char *err = NULL;
    int rc = kubeconfig_resolve(f->run.kubeconfig, f->run.context, kc, &err);

    if (!rc)
        rc = kube_new(*kc, &opts, k, &err);
    if (rc)
        log_error("http token authentication: %s", err ? err : "no API client");
    free(err);
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    xalloc_init(); /* first: cJSON allocates through xmalloc from here on */
    const char *pod_ns = getenv("POD_NAMESPACE");
    struct flags f = {
        .run =
            {
                .qps = KUBE_DEFAULT_QPS,
                .burst = KUBE_DEFAULT_BURST,
                .workers = CONTROLLER_DEFAULT_WORKERS,
                .resync_ms = CONTROLLER_DEFAULT_RESYNC_MS,
                .leader_elect = true,
                .lease_ns = pod_ns && *pod_ns ? pod_ns : "kvrecover-system",
                .lease_name = "kvrecover-controller",
                .lease_duration_ms = LEASE_DEFAULT_DURATION_MS,
                .renew_deadline_ms = LEASE_DEFAULT_RENEW_DEADLINE_MS,
                .retry_period_ms = LEASE_DEFAULT_RETRY_PERIOD_MS,
                .http_addr = "127.0.0.1:8080",
                .probe_addr = ":8081",
                .version = VERSION,
            },
        .log_level = "info",
    };
    struct kubeconfig *review_kc = NULL;
    struct kube *review_kube = NULL;
    enum log_level lvl;
    char *id;
    int exit_code = 1;

    f.allowed_hosts = xcalloc((size_t)argc + 1, sizeof(*f.allowed_hosts));
    f.http.allowed_hosts = f.allowed_hosts;
    f.run.http = &f.http;
    if (parse_flags(argc, argv, &f) != 0) {
        free(f.allowed_hosts);
        return 2;
    }
    if (log_parse_level(f.log_level, &lvl) != 0) {
        fprintf(stderr, "kvrecover-controller: bad --log-level %s\n", f.log_level);
        free(f.allowed_hosts);
        return 2;
    }
    log_set_level(lvl);
    manager_heap_init(); /* before any thread */
    signal(SIGPIPE, SIG_IGN);
    id = identity(f.id);
    f.run.identity = id;
    if (f.http.auth != HTTPD_AUTH_NONE && f.run.http_addr && *f.run.http_addr) {
        if (http_review_client(&f, &review_kc, &review_kube) != 0)
            goto out;
        f.http.authorize = http_authorize;
        f.http.authorize_ud = review_kube;
    }
    exit_code = manager_run(&f.run);
out:
    kube_free(review_kube);
    kubeconfig_free(review_kc);
    free(f.allowed_hosts);
    free(id);
    return exit_code;
}
