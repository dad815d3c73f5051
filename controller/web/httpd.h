/*
 * httpd — the controller's read-only HTTP side, served by libwebsockets.
 *
 * Two listeners, each with its own thread and connection budget:
 *
 * The main listener (default 127.0.0.1:8080) serves the live dashboard
 * (the paper's figure 2) and the operational endpoints:
 *
 *   GET /            the dashboard page      GET /api/state  latest state JSON
 *   GET /app.js      its script              GET /ws         WebSocket: the state
 *   GET /style.css   its style sheet                         on connect and on
 *   GET /metrics     metrics_render(), text/plain; version=0.0.4   every publish
 *   GET /healthz     200 "ok"                GET /readyz     200 when ready, else 503
 *
 * The probe listener (default :8081) serves /healthz and /readyz only, so
 * that the kubelet's probes are answered whatever the main listener is
 * going through (the probes stay on the main listener too, for tools that
 * already use them there).
 *
 * On the main listener every request passes, in order: the Host check and,
 * when it carries an Origin, the Origin check (web/guard.h; 400/403, and a
 * WebSocket upgrade is refused before it happens); then, except for the
 * probes, bearer-token authentication when cfg->auth asks for it (401
 * without a valid token, 403 when its user may not), decided by
 * cfg->authorize on worker threads (web/authz.h) and cached briefly. The
 * authorizer is asked about verb "get" on "/metrics" for /metrics and on
 * HTTPD_AUTHZ_DASHBOARD_PATH for every other path.
 * Refusals are counted in kvrecover_http_refused_total{reason} and logged
 * at debug level, at most one line a second. The probe listener checks
 * none of that: it says "ok" and nothing else.
 *
 * On both, one peer address may hold at most max_per_peer connections
 * (more are closed at once), a connection that has not sent a complete
 * request within idle_seconds is closed, and so is a WebSocket that has
 * not answered a ping a third of ws_ping_seconds after it was sent.
 *
 * Anything but GET is answered 405 with `Allow: GET`; unknown paths 404.
 * The dashboard assets are compiled into the binary (dashboard_assets.c,
 * generated from controller/web/dashboard/), so nothing is read from disk.
 *
 * libwebsockets is single-threaded: every lws call happens on a server's
 * own thread. Other threads only hand over the newest state through a
 * mutex-guarded slot (httpd_publish) or a decision through a mutex-guarded
 * list, and wake the service loop with lws_cancel_service(). It must never
 * take a lock that the controller's workers hold while doing I/O, and
 * never expose anything but the state it is given (no secrets: the state
 * JSON is built by the controller for display).
 */
#ifndef KVR_HTTPD_H
#define KVR_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "web/authz.h"

/* Who must show a bearer token on the main listener (README, "The HTTP
 * surface"). The probes never need one. */
enum httpd_auth {
    HTTPD_AUTH_AUTO = 0, /* every peer that is not loopback; loopback peers (the
                            pod's own containers, kubectl port-forward) need none */
    HTTPD_AUTH_TOKEN,    /* every peer, loopback included */
    HTTPD_AUTH_NONE,     /* nobody */
};

/* The non-resource path that stands for the dashboard, its assets,
 * /api/state and /ws in a token's SubjectAccessReview (RBAC:
 * nonResourceURLs). Not their own paths: Kubernetes' default ClusterRole
 * system:discovery grants every authenticated user /api and below. */
#define HTTPD_AUTHZ_DASHBOARD_PATH "/kvrecover/dashboard"

/* Connections the main listener holds at most, and one peer of them: a
 * browser opens up to six per host and a WebSocket per tab, a scraper one
 * or two; 16 leaves room for a few admins behind one port-forward (they
 * all come from 127.0.0.1) while no single peer can take more than a
 * sixteenth of the budget. */
#define HTTPD_MAX_CONNS 256
#define HTTPD_MAX_PER_PEER 16
/* The probe listener's: the kubelet runs at most three probes at once
 * (startup, liveness, readiness), from the node's address. */
#define HTTPD_PROBE_MAX_CONNS 64
#define HTTPD_PROBE_MAX_PER_PEER 4
/* A connection without a complete request this long is closed (a request
 * line and headers take milliseconds; a keep-alive client reconnects). */
#define HTTPD_IDLE_SECONDS 10
/* A WebSocket is pinged after this long without a pong and closed a third
 * of it later (browsers answer pings by themselves). */
#define HTTPD_WS_PING_SECONDS 30

struct httpd;

struct httpd_config {
    const char *addr;       /* main listener: address to bind, e.g. "127.0.0.1"; NULL or
                               "" = all interfaces */
    int port;               /* its TCP port; 0 = any free port (logged); -1 = no main
                               listener (the probe listener alone) */
    bool probe;             /* also start the probe listener */
    const char *probe_addr; /* its address, as addr */
    int probe_port;         /* its port; 0 = any free port (logged) */
    /* Readiness for /readyz: nonzero when ready (caches synced). Called on
     * a server thread, so it must be thread-safe; NULL = always ready. */
    int (*ready)(void *ud);
    void *ud; /* passed to ready; not owned */

    /* Host values accepted besides localhost, 127.0.0.1, [::1], addr and
     * the address each connection arrived on: guard_hosts_new()'s extra
     * entries. Copied. */
    const char *const *allowed_hosts;
    size_t n_allowed_hosts;
    enum httpd_auth auth; /* who must show a token */
    /* Decides a token for a path (e.g. kube/review through cmd); called on
     * worker threads. Required unless auth is HTTPD_AUTH_NONE or the main
     * listener is loopback-only with HTTPD_AUTH_AUTO. */
    authz_fn authorize;
    void *authorize_ud; /* not owned */

    /* Limits; 0 = the defaults above. Tests shorten them. */
    int max_per_peer;    /* main listener's connections per peer */
    int idle_seconds;    /* both listeners */
    int ws_ping_seconds; /* the WebSocket's ping interval */
    long auth_ttl_ms;    /* how long a decision is remembered (authz.h) */
};

/**
 * Splits a listen address "HOST:PORT", ":PORT" or "[V6]:PORT" into *host
 * (NULL for all interfaces; the caller frees) and *port (0..65535). Returns
 * 0, or -EINVAL (then *host is NULL).
 */
int httpd_parse_addr(const char *s, char **host, int *port);

/**
 * Binds the listening sockets and starts the server threads (and, when a
 * token may be needed, the authorization workers). The strings in cfg are
 * copied; cfg need not outlive the call. Until the first httpd_publish(),
 * /api/state and the WebSocket serve `{}`.
 * Logs {"msg":"http listening","addr":...,"port":N} for the main listener
 * and {"msg":"probes listening",...} for the probe listener (tests find the
 * ports there). On success returns 0 and the server in *out (stop it with
 * httpd_stop()).
 * On failure returns a negative errno (-EINVAL for a bad port, address or
 * allowed host, for neither listener, or for a missing authorizer;
 * -EADDRINUSE/-EIO when a socket cannot be bound, -EAGAIN when a thread
 * cannot be started) and, when err is not NULL, a message in *err that the
 * caller frees.
 */
int httpd_start(const struct httpd_config *cfg, struct httpd **out, char **err);

/**
 * Replaces the state served on /api/state and pushes it to every WebSocket
 * client. Takes ownership of state_json (a NUL-terminated JSON document
 * allocated with malloc/xmalloc), which it frees. Callable from any thread;
 * never blocks on the network. When several publishes come faster than the
 * server thread runs, only the newest is sent. h NULL or state_json NULL:
 * nothing happens (state_json is still freed).
 */
void httpd_publish(struct httpd *h, char *state_json);

/** Stops the server: closes every connection, joins the server threads and
 *  the authorization workers, and frees everything. NULL is allowed. Not
 *  callable from a server thread (that is, not from a ready(), a metrics
 *  collector or an authorizer). */
void httpd_stop(struct httpd *h);

#endif
