/*
 * kvrecover-controller — entry point: the flags, and the process settings
 * that must come before any thread (the heap, SIGPIPE). What runs is the
 * manager's (reconcile/manager.h): the clients, sync, leader election,
 * workers, the HTTP side, signals and teardown.
 *
 * Log lines other tools rely on (tests, benchmarks): {"msg":"started"},
 * {"msg":"http listening","port":N} (httpd.c), {"msg":"caches synced"},
 * {"msg":"leader"} when this replica starts acting (manager.c),
 * {"msg":"decision"} per failed VMI (recover.c), {"msg":"stopped"}.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xalloc.h"
#include "kube/kube.h"
#include "kube/lease.h"
#include "reconcile/controller.h"
#include "reconcile/manager.h"
#include "sim/policy.h"

#define VERSION "0.1.0"

/* The flags: what the manager runs, and what main itself uses. */
struct flags {
    struct manager_config run;
    const char *id;        /* --id; NULL or "": <hostname>_<pid> */
    const char *log_level; /* --log-level */
};

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

static int parse_flags(int argc, char **argv, struct flags *f)
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
        O_DEFAULT_SA,
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

int main(int argc, char **argv)
{
    const char *pod_ns = getenv("POD_NAMESPACE");
    struct flags f = {
        .run =
            {
                .qps = KUBE_DEFAULT_QPS,
                .burst = KUBE_DEFAULT_BURST,
                .workers = CONTROLLER_DEFAULT_WORKERS,
                .leader_elect = true,
                .lease_ns = pod_ns && *pod_ns ? pod_ns : "kvrecover-system",
                .lease_name = "kvrecover-controller",
                .lease_duration_ms = LEASE_DEFAULT_DURATION_MS,
                .renew_deadline_ms = LEASE_DEFAULT_RENEW_DEADLINE_MS,
                .retry_period_ms = LEASE_DEFAULT_RETRY_PERIOD_MS,
                .http_addr = ":8080",
                .version = VERSION,
            },
        .log_level = "info",
    };
    enum log_level lvl;
    char *id;
    int exit_code;

    if (parse_flags(argc, argv, &f) != 0)
        return 2;
    if (log_parse_level(f.log_level, &lvl) != 0) {
        fprintf(stderr, "kvrecover-controller: bad --log-level %s\n", f.log_level);
        return 2;
    }
    log_set_level(lvl);
    /* Few arenas: a controller with a dozen threads would otherwise keep a
     * heap per thread, and the RSS target is tight. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    signal(SIGPIPE, SIG_IGN);
    id = identity(f.id);
    f.run.identity = id;
    exit_code = manager_run(&f.run);
    free(id);
    return exit_code;
}
