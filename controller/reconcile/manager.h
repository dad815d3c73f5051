/*
 * manager — the controller process's life: sync, leader, workers, publish.
 *
 * kvrecover-controller's main parses flags and hands them here. The
 * manager makes the API clients (one for the reflectors and reconciles, one
 * with its own budget for Events, one for the Lease), the controller, the
 * HTTP side and the leader elector, and starts the reflectors. Then the
 * calling thread only waits for signals (SIGTERM/SIGINT stop; SIGUSR1 is a
 * wake-up from the lease thread) and, every 200 ms at most: logs once that
 * the caches synced; starts the workers once the caches synced and this
 * replica leads; publishes the dashboard state when it changed; resyncs
 * (controller_resync()) every resync_ms while leading. Every other
 * thread has those signals blocked, so a signal never interrupts a request.
 *
 * Stopping keeps an order: finish the keys in flight, release the Lease so
 * that another replica takes over at once, stop the watches, free
 * everything. Leadership lost ends the process, as client-go controllers
 * do: the Deployment restarts it as a standby.
 *
 * Log lines other tools rely on (tests, benchmarks): {"msg":"started"},
 * {"msg":"caches synced"}, {"msg":"leader"} when this replica starts
 * acting, {"msg":"lease released"}, {"msg":"stopped","exitCode":N}.
 */
#ifndef KVR_MANAGER_H
#define KVR_MANAGER_H

#include <stdbool.h>

struct httpd_config;

/* What to run; strings are borrowed for manager_run(). */
struct manager_config {
    const char *kubeconfig;          /* path, or NULL: $KUBECONFIG, in-cluster, ~/.kube/config */
    const char *context;             /* kubeconfig context, or NULL: its current-context */
    const char *ns;                  /* namespace to watch; NULL or "": all */
    const char *policy_selector;     /* serve only the policies it matches; NULL: all */
    double qps;                      /* API requests per second; < 0: no limit */
    int burst;                       /* API request burst */
    int workers;                     /* reconcile workers */
    long resync_ms;                  /* --resync-period: controller_resync() this often; 0: never */
    bool leader_elect;               /* elect a leader on a Lease; false: act at once */
    const char *lease_ns;            /* the Lease's namespace */
    const char *lease_name;          /* the Lease's name */
    long lease_duration_ms;          /* lease_config's durations (lease.h) */
    long renew_deadline_ms;          /* ... */
    long retry_period_ms;            /* ... */
    const char *identity;            /* this replica: holderIdentity, Events, dashboard */
    const char *http_addr;           /* "HOST:PORT", ":PORT", "[V6]:PORT"; port 0: any
                                        free port; NULL or "": no dashboard listener */
    const char *probe_addr;          /* the same for the probe listener (/healthz and
                                        /readyz alone); NULL or "": none */
    const struct httpd_config *http; /* the HTTP side's other settings
                               (web/httpd.h: allowed hosts, token
                               authentication, limits); NULL: httpd's
                               defaults. Addresses, ready and ud are ours. */
    const char *version;             /* logged in {"msg":"started"} */
    /* --default-service-account: writes for a policy naming no
     * ServiceAccount are made as this one of its namespace; NULL: as the
     * controller itself. */
    const char *default_service_account;
};

/* How often the manager gives the heap's free pages back
 * (manager_heap_trim()). */
#define MANAGER_HEAP_TRIM_MS 10000

/**
 * Tunes glibc's malloc for the controller: one arena for every thread, and
 * blocks of 64 KiB and more (list pages, the cache's tables, rankings of a
 * big pool) in mmaps of their own, returned whole when freed. Without it a
 * dozen threads each keep a heap of their own at its high-water mark after
 * every burst. Call before any thread exists: kvrecover-controller's main
 * does, and so must anything that runs the controller in process and
 * measures its memory (bench_soak).
 */
void manager_heap_init(void);

/**
 * Gives the free pages inside the heap back to the system (malloc_trim(0))
 * when 2 MiB or more of the process's resident anonymous memory holds
 * nothing in use beyond what did after the last trim (a mass failure, a
 * relist, the first status and ranking passes after a sync): such pages
 * stay resident otherwise. A trim holds the heap's lock
 * for milliseconds to tens of them, so steady state makes none. The
 * manager calls it every MANAGER_HEAP_TRIM_MS; call it from one thread.
 * Returns how long the trim took in ms, or -1 when none was made.
 */
double manager_heap_trim(void);

/**
 * Runs the controller described by cfg until SIGTERM or SIGINT (returns 0)
 * or until leadership is lost or something cannot start (returns 1, after
 * logging why); either way logs {"msg":"stopped"} last. First blocks
 * SIGTERM, SIGINT and SIGUSR1 in the calling thread, which every thread it
 * starts inherits: call it before any other thread exists, and only once.
 * The return value is the process's exit code.
 */
int manager_run(const struct manager_config *cfg);

#endif
