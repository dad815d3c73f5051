/*
 * httpd — the controller's read-only HTTP side, served by libwebsockets.
 *
 * Serves the live dashboard (the paper's figure 2) and the operational
 * endpoints from one listening socket:
 *
 *   GET /            the dashboard page      GET /api/state  latest state JSON
 *   GET /app.js      its script              GET /ws         WebSocket: the state
 *   GET /style.css   its style sheet                         on connect and on
 *   GET /metrics     metrics_render(), text/plain; version=0.0.4   every publish
 *   GET /healthz     200 "ok"                GET /readyz     200 when ready, else 503
 *
 * Anything but GET is answered 405 with `Allow: GET`; unknown paths 404.
 * The dashboard assets are compiled into the binary (dashboard_assets.c,
 * generated from controller/web/dashboard/), so nothing is read from disk.
 *
 * libwebsockets is single-threaded: every lws call happens on the server's
 * own thread. Other threads only hand over the newest state through a
 * mutex-guarded slot (httpd_publish) and wake the service loop with
 * lws_cancel_service(). It must never take a lock that the controller's
 * workers hold while doing I/O, and never expose anything but the state it
 * is given (no secrets: the state JSON is built by the controller for
 * display).
 */
#ifndef KVR_HTTPD_H
#define KVR_HTTPD_H

struct httpd;

struct httpd_config {
    const char *addr; /* address to bind, e.g. "127.0.0.1"; NULL or "" = all interfaces */
    int port;         /* TCP port; 0 = any free port (logged, see below) */
    /* Readiness for /readyz: nonzero when ready (caches synced). Called on
     * the server thread, so it must be thread-safe; NULL = always ready. */
    int (*ready)(void *ud);
    void *ud; /* passed to ready; not owned */
};

/**
 * Binds the listening socket and starts the server thread. The strings in
 * cfg are copied; cfg need not outlive the call. Until the first
 * httpd_publish(), /api/state and the WebSocket serve `{}`.
 * Logs {"msg":"http listening","addr":...,"port":N} (tests find the port
 * there). On success returns 0 and the server in *out (stop it with
 * httpd_stop()).
 * On failure returns a negative errno (-EINVAL for a bad port or address,
 * -EADDRINUSE/-EIO when the socket cannot be bound, -EAGAIN when the thread
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

/** Stops the server: closes every connection, joins the server thread and
 *  frees everything. NULL is allowed. Not callable from the server thread
 *  (that is, not from a ready() or a metrics collector). */
void httpd_stop(struct httpd *h);

#endif
