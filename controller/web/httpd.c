/*
 * httpd — the dashboard, /metrics and the probes over libwebsockets. See
 * httpd.h.
 *
 * Each listener is an lws context of its own with one protocol that
 * handles both plain HTTP and the /ws WebSocket, serviced by its own
 * thread, so that neither's connections, timeouts or slow clients can
 * starve the other. The state shared with other threads is the publish
 * slot, the decisions reported by the authorization workers and the stop
 * flag, under h->lock; everything else (the current state, its version,
 * the sessions, the requests waiting for a decision, the peer table)
 * belongs to a server thread. httpd_publish() drops the JSON into the slot
 * and calls lws_cancel_service(), the one lws function documented as safe
 * from another thread; the server thread then sees
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED, takes the slot, and asks every
 * WebSocket session to write. A session remembers the version it last
 * sent, so a slow client skips to the newest state instead of queueing
 * every intermediate one. Decisions travel the same way.
 *
 * A request that needs a token decision nobody has cached yet waits: its
 * path is kept in its session, its wsi in h->waits under a ticket, and
 * the answer is written from the writeable callback once the decision
 * arrives. A WebSocket upgrade cannot wait (lws answers it in the same
 * callback chain), so an upgrade that passed every synchronous check is
 * accepted and sends nothing until its decision arrives, then either the
 * state or a close frame (1008).
 *
 * Connections per peer are counted between LWS_CALLBACK_FILTER_NETWORK_
 * CONNECTION, which sees the peer's address, and LWS_CALLBACK_WSI_DESTROY,
 * the last callback of every connection; the slot's handle rides in the
 * wsi's opaque user data, handed over by LWS_CALLBACK_SERVER_NEW_CLIENT_
 * INSTANTIATED, which lws makes for the accepted socket right after the
 * filter (and after setting that data itself, to NULL). When adoption
 * fails before it, the next filter gives the place back.
 *
 * HTTP bodies are snapshots taken when the request is answered (the state
 * can change while a large body is being written) and go out in chunks
 * from the writeable callback, so one slow reader never blocks the loop.
 */
#include "web/httpd.h"
#include "web/httpd_test.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "web/dashboard_assets.h"
#include "web/guard.h"
#include "web/metrics.h"

#define HTTPD__CHUNK 16384      /* bytes of body written per writeable callback */
#define HTTPD__HEADERS 1024     /* room for the response headers */
#define HTTPD__HEADER_DATA 8192 /* request header bytes: room for a bearer token */
#define HTTPD__WS_PATH "/ws"
#define HTTPD__PATH_MAX 256       /* longest path routed; no route is longer */
#define HTTPD__HOST_MAX 300       /* longest Host value parsed */
#define HTTPD__ORIGIN_MAX 512     /* longest Origin value parsed */
#define HTTPD__WAITS 64           /* requests waiting for a decision at once */
#define HTTPD__AUTH_WAIT_S 15     /* one waiting longer is closed */
#define HTTPD__LOG_EVERY_MS 1000L /* at most one refusal logged per listener per second */

/* The page may load only its own script and style, talk only to its own
 * origin (the WebSocket), and may not be framed. */
#define HTTPD__CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

enum httpd__role { HTTPD__MAIN, HTTPD__PROBES };

/* One listener: its lws context and the thread that services it. */
struct httpd__srv {
    struct httpd *h;
    enum httpd__role role;
    bool on;                 /* configured */
    struct lws_context *ctx; /* created by httpd_start, destroyed by the thread */
    pthread_t thread;
    bool started;              /* the thread runs */
    int port;                  /* the port listened on */
    int gone;                  /* under h->lock: set before the thread destroys ctx */
    lws_retry_bo_t ping;       /* the WebSocket ping policy; outlives ctx */
    struct guard_peers *peers; /* server thread: connections per peer */
    int accepted;              /* server thread: the just-accepted peer's handle + 1 */
    long log_next_ms;          /* server thread: when a refusal may be logged again */
    unsigned long log_dropped; /* server thread: refusals not logged since */
};

/* A request waiting for its token decision. Main server thread only. */
struct httpd__wait {
    uint64_t ticket; /* 0: the slot is free */
    struct lws *wsi;
};

/* A decision reported by a worker, for the main server thread. */
struct httpd__verdict {
    uint64_t ticket;
    int decision; /* enum authz_decision, or a negative errno */
    struct httpd__verdict *next;
};

struct httpd {
    struct httpd__srv srv[2]; /* [HTTPD__MAIN], [HTTPD__PROBES] */
    int (*ready)(void *ud);   /* readiness for /readyz, or NULL */
    void *ud;                 /* passed to ready */
    struct guard_hosts *hosts;
    enum httpd_auth auth;
    struct authz *authz; /* NULL when no token is ever asked for */

    pthread_mutex_t lock;            /* guards pending, stopping, verdicts and each srv.gone */
    char *pending;                   /* newest published state not yet taken, owned */
    int stopping;                    /* set by httpd_stop() */
    struct httpd__verdict *verdicts; /* reported, not yet taken; owned */

    /* Owned by the main server thread once it runs. */
    unsigned char *state; /* LWS_PRE bytes of headroom, then the state JSON */
    size_t state_len;     /* bytes of JSON after the headroom */
    uint64_t version;     /* bumped on every new state; sessions compare */
    struct httpd__wait waits[HTTPD__WAITS];
    uint64_t next_ticket;
};

enum httpd__kind { HTTPD__HTTP, HTTPD__WS };

/* Where a session's token decision stands. */
enum httpd__auth_state {
    HTTPD__FREE = 0, /* none needed, or it allowed: go on */
    HTTPD__WAITING,  /* asked; nothing is answered until it arrives */
    HTTPD__DECIDED,  /* arrived in decision; the writeable callback acts on it */
};

/* Per-connection data, zeroed by lws when the connection is accepted and
 * again after every HTTP transaction. */
struct httpd__session {
    enum httpd__kind kind; /* plain HTTP, or upgraded to the WebSocket */
    const char *body;      /* HTTP: body being written (points into owned or static data) */
    char *owned;           /* HTTP: body allocated for this response, or NULL */
    size_t len, off;       /* HTTP: body length and bytes already written */
    int close_after;       /* HTTP: close the connection once the body is out */
    unsigned after_body;   /* HTTP: status to answer once the request body is read */
    const char *after_msg; /* HTTP: ... with this text */
    uint64_t sent;         /* WS: version of the state last sent */
    enum httpd__auth_state wait;
    int decision;                   /* when DECIDED */
    char path[HTTPD__PATH_MAX + 1]; /* HTTP: the path while WAITING */
};

/* What the checks before routing decided. */
struct httpd__gate {
    unsigned status;    /* 0: go on; else refuse with this status */
    const char *msg;    /* the refusal's body */
    const char *reason; /* its label in kvrecover_http_refused_total */
    char *token;        /* a token to decide (status 0, not cached); owned */
};

static int httpd__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len);

static const struct lws_protocols httpd__protocols[] = {
    {"kvrecover", httpd__callback, sizeof(struct httpd__session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* lws' own messages go through our JSON log, errors and warnings only. */
static void httpd__lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_LVL_ERROR : LOG_LVL_WARN, "libwebsockets: %.*s", (int)n, line);
}

/* Replaces the current state with json (owned) and bumps the version. */
static void httpd__set_state(struct httpd *h, char *json)
{
    size_t n = strlen(json);

    free(h->state);
    h->state = xmalloc(LWS_PRE + n + 1);
    memcpy(h->state + LWS_PRE, json, n + 1);
    h->state_len = n;
    h->version++;
    free(json);
}

static void httpd__session_reset(struct httpd__session *s)
{
    free(s->owned);
    s->owned = NULL;
    s->body = NULL;
    s->len = s->off = 0;
    s->close_after = 0;
}

/* ---- refusals --------------------------------------------------------- */

/* The peer's or our own address of wsi's socket; 0 or -1. */
static int httpd__sockaddr(struct lws *wsi, int peer, struct sockaddr_storage *ss)
{
    socklen_t n = sizeof(*ss);
    int fd = lws_get_socket_fd(wsi);

    memset(ss, 0, sizeof(*ss));
    if (fd < 0)
        return -1;
    return (peer ? getpeername(fd, (struct sockaddr *)ss, &n)
                 : getsockname(fd, (struct sockaddr *)ss, &n)) == 0
               ? 0
               : -1;
}

/* Counts a refusal and logs it at debug level, at most once a second per
 * listener (with how many were not logged since). peer may be NULL; what
 * (a header value, attacker-controlled) is truncated by the JSON log's
 * escaping only, so it is cut here. */
static void httpd__refused(struct httpd__srv *srv, const struct sockaddr *peer, const char *reason,
                           const char *what)
{
    char *labels = metrics_labels("reason", reason, NULL, NULL);
    long now = clock_mono_ms();

    metrics_counter_add(METRICS_HTTP_REFUSED, labels, 1);
    free(labels);
    if (now < srv->log_next_ms) {
        srv->log_dropped++;
        return;
    }
    srv->log_next_ms = now + HTTPD__LOG_EVERY_MS;
    {
        cJSON *f = cJSON_CreateObject();
        char addr[64];

        guard_addr_text(peer, addr, sizeof(addr));
        cJSON_AddStringToObject(f, "reason", reason);
        cJSON_AddStringToObject(f, "peer", addr);
        if (what != NULL) {
            char cut[129];
            snprintf(cut, sizeof(cut), "%s", what);
            cJSON_AddStringToObject(f, "value", cut);
        }
        cJSON_AddNumberToObject(f, "notLogged", (double)srv->log_dropped);
        log_fields(LOG_LVL_DEBUG, "http request refused", f);
    }
    srv->log_dropped = 0;
}

/* ---- responses -------------------------------------------------------- */

enum {
    HTTPD__R_CLOSE = 1,  /* 405: Allow: GET, and close the connection */
    HTTPD__R_BEARER = 2, /* 401: WWW-Authenticate: Bearer */
};

/* Writes the status line and headers into [*p, end). Returns 0 or -1. */
static int httpd__headers(struct lws *wsi, unsigned status, const char *ctype, size_t len,
                          int flags, unsigned char **p, unsigned char *end)
{
    int is_html = strncmp(ctype, "text/html", 9) == 0;

#define HTTPD__HDR(name, value)                                                                    \
    lws_add_http_header_by_name(wsi, (const unsigned char *)(name),                                \
                                (const unsigned char *)(value), (int)strlen(value), p, end)
    if (lws_add_http_common_headers(wsi, status, ctype, len, p, end) ||
        HTTPD__HDR("cache-control:", "no-store") ||
        HTTPD__HDR("x-content-type-options:", "nosniff") ||
        HTTPD__HDR("referrer-policy:", "no-referrer") ||
        (is_html && HTTPD__HDR("content-security-policy:", HTTPD__CSP)) ||
        ((flags & HTTPD__R_CLOSE) && HTTPD__HDR("allow:", "GET")) ||
        ((flags & HTTPD__R_CLOSE) && HTTPD__HDR("connection:", "close")) ||
        ((flags & HTTPD__R_BEARER) &&
         HTTPD__HDR("www-authenticate:", "Bearer realm=\"kvrecover\"")))
        return -1;
#undef HTTPD__HDR
    return 0;
}

/* Starts a response: writes the status and headers and schedules the body.
 * body is either static (owned NULL) or owned by the session afterwards.
 * Returns 0, or -1 to close the connection. */
static int httpd__respond(struct lws *wsi, struct httpd__session *s, unsigned status,
                          const char *ctype, const char *body, char *owned, size_t len, int flags)
{
    unsigned char hdr[LWS_PRE + HTTPD__HEADERS];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;

    httpd__session_reset(s);
    s->body = owned ? owned : body;
    s->owned = owned;
    s->len = len;
    s->close_after = (flags & HTTPD__R_CLOSE) != 0;
    if (httpd__headers(wsi, status, ctype, len, flags, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Writes the next chunk of the session's body; ends the transaction after
 * the last one. Returns 0, or -1 to close the connection. */
static int httpd__write_body(struct lws *wsi, struct httpd__session *s)
{
    unsigned char chunk[LWS_PRE + HTTPD__CHUNK];
    size_t n;
    enum lws_write_protocol wp = LWS_WRITE_HTTP;

    if (s->body == NULL)
        return 0; /* a spurious writeable between requests */
    n = s->len - s->off;
    if (n > HTTPD__CHUNK)
        n = HTTPD__CHUNK;
    if (s->off + n == s->len)
        wp = LWS_WRITE_HTTP_FINAL;
    memcpy(chunk + LWS_PRE, s->body + s->off, n);
    if (lws_write(wsi, chunk + LWS_PRE, n, wp) != (int)n)
        return -1;
    s->off += n;
    if (s->off < s->len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_after)
        return -1;
    httpd__session_reset(s);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* A short static plain-text answer. */
static int httpd__text(struct lws *wsi, struct httpd__session *s, unsigned status, const char *msg,
                       int flags)
{
    return httpd__respond(wsi, s, status, "text/plain; charset=utf-8", msg, NULL, strlen(msg),
                          flags);
}

/* A short plain-text answer written at once, headers and body together:
 * for an upgrade refused before it happens, where lws completes the
 * transaction as soon as the callback returns. Returns 1 (lws' "answered")
 * or -1 to close the connection. */
static int httpd__text_now(struct lws *wsi, unsigned status, const char *msg, int flags)
{
    unsigned char buf[LWS_PRE + HTTPD__HEADERS + 256];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 256;
    size_t n = strlen(msg);

    if (httpd__headers(wsi, status, "text/plain; charset=utf-8", n, flags, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || n > 255)
        return -1;
    memcpy(p, msg, n);
    p += n;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) != (int)(p - start))
        return -1;
    return 1;
}

/* The answer to every method but GET. */
static int httpd__reject(struct lws *wsi, struct httpd__session *s)
{
    return httpd__text(wsi, s, HTTP_STATUS_METHOD_NOT_ALLOWED,
                       "method not allowed: this server is read-only\n", HTTPD__R_CLOSE);
}

/* ---- the checks before routing ----------------------------------------- */

static bool httpd__is_probe(const char *path)
{
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
}

/* Header h of wsi into buf (size n), NUL-terminated. Returns its length,
 * 0 when absent, -1 when longer than buf allows or repeated. */
static int httpd__header(struct lws *wsi, enum lws_token_indexes h, char *buf, size_t n)
{
    int len = lws_hdr_total_length(wsi, h);

    buf[0] = '\0';
    if (len <= 0)
        return 0;
    if ((size_t)len >= n || lws_hdr_fragment_length(wsi, h, 1) > 0)
        return -1;
    return lws_hdr_copy(wsi, buf, (int)n, h) == len ? len : -1;
}

/* The bearer token of the Authorization header: a new string (the caller
 * wipes and frees it), or NULL when there is none, or it is not
 * "Bearer <b64token>" (RFC 6750) of at most AUTHZ_TOKEN_MAX bytes. */
static char *httpd__bearer(struct lws *wsi)
{
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    char *v, *tok = NULL;
    size_t n;

    if (len <= 7 || len > AUTHZ_TOKEN_MAX + 7 ||
        lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 1) > 0)
        return NULL;
    v = xmalloc((size_t)len + 1);
    if (lws_hdr_copy(wsi, v, len + 1, WSI_TOKEN_HTTP_AUTHORIZATION) != len ||
        strncasecmp(v, "bearer ", 7) != 0)
        goto out;
    n = strspn(v + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    n += strspn(v + 7 + n, "=");
    if (n == 0 || v[7 + n] != '\0')
        goto out;
    tok = xstrdup(v + 7);
out:
    explicit_bzero(v, (size_t)len);
    free(v);
    return tok;
}

/* The non-resource path a token's SubjectAccessReview asks about for a
 * request of path: /metrics as it is, everything else (the page, its
 * assets, /api/state, /ws, unknown paths) as HTTPD_AUTHZ_DASHBOARD_PATH.
 * The request paths themselves would not do: the API server's default
 * ClusterRole system:discovery lets every authenticated user get /api and below,
 * which would hand /api/state to any ServiceAccount of the cluster. */
static const char *httpd__authz_path(const char *path)
{
    return strcmp(path, "/metrics") == 0 ? "/metrics" : HTTPD_AUTHZ_DASHBOARD_PATH;
}

/* Whether this connection's requests must carry a token. */
static bool httpd__needs_token(const struct httpd *h, const struct sockaddr *peer)
{
    switch (h->auth) {
    case HTTPD_AUTH_NONE:
        return false;
    case HTTPD_AUTH_TOKEN:
        return true;
    case HTTPD_AUTH_AUTO:
    default:
        return !guard_is_loopback(peer);
    }
}

/* Host, Origin and token checks for a request for path on the main
 * listener, into *g. A token decision that is not cached is left in
 * g->token for the caller to ask for. */
static void httpd__gate(struct httpd__srv *srv, struct lws *wsi, const char *path,
                        struct httpd__gate *g)
{
    struct httpd *h = srv->h;
    struct sockaddr_storage peer, local;
    char host[HTTPD__HOST_MAX], origin[HTTPD__ORIGIN_MAX];
    int hl, ol, rc;

    memset(g, 0, sizeof(*g));
    if (srv->role == HTTPD__PROBES)
        return;
    httpd__sockaddr(wsi, 1, &peer);
    httpd__sockaddr(wsi, 0, &local);
    hl = httpd__header(wsi, WSI_TOKEN_HOST, host, sizeof(host));
    rc = hl <= 0 ? -EINVAL : guard_host_check(h->hosts, host, (struct sockaddr *)&local);
    if (rc != 0) {
        g->status = rc == -EINVAL ? HTTP_STATUS_BAD_REQUEST : HTTP_STATUS_FORBIDDEN;
        g->msg = rc == -EINVAL ? "missing or malformed Host header\n"
                               : "Host not allowed: this server answers only to its own names\n";
        g->reason = "host";
        httpd__refused(srv, (struct sockaddr *)&peer, g->reason, host);
        return;
    }
    ol = httpd__header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
    if (ol != 0 && (ol < 0 || guard_origin_check(origin, host) != 0)) {
        g->status = HTTP_STATUS_FORBIDDEN;
        g->msg = "cross-origin request refused\n";
        g->reason = "origin";
        httpd__refused(srv, (struct sockaddr *)&peer, g->reason, origin);
        return;
    }
    if (httpd__is_probe(path) || !httpd__needs_token(h, (struct sockaddr *)&peer))
        return;
    g->token = httpd__bearer(wsi);
    rc = g->token ? authz_cached(h->authz, g->token, httpd__authz_path(path), "get")
                  : AUTHZ_UNAUTHENTICATED;
    if (rc == -ENOENT)
        return; /* to be asked */
    if (g->token) {
        explicit_bzero(g->token, strlen(g->token));
        free(g->token);
        g->token = NULL;
    }
    if (rc == AUTHZ_UNAUTHENTICATED) {
        g->status = HTTP_STATUS_UNAUTHORIZED;
        g->msg = "unauthorized: a valid bearer token is required\n";
        g->reason = "unauthenticated";
    } else if (rc == AUTHZ_FORBIDDEN) {
        g->status = HTTP_STATUS_FORBIDDEN;
        g->msg = "forbidden: the token's user may not get this path\n";
        g->reason = "forbidden";
    }
    if (g->status)
        httpd__refused(srv, (struct sockaddr *)&peer, g->reason, NULL);
}

/* The answer for a token decision that is not an allow. */
static void httpd__decision_refusal(int decision, struct httpd__gate *g)
{
    memset(g, 0, sizeof(*g));
    switch (decision) {
    case AUTHZ_ALLOW:
        break;
    case AUTHZ_UNAUTHENTICATED:
        g->status = HTTP_STATUS_UNAUTHORIZED;
        g->msg = "unauthorized: a valid bearer token is required\n";
        g->reason = "unauthenticated";
        break;
    case AUTHZ_FORBIDDEN:
        g->status = HTTP_STATUS_FORBIDDEN;
        g->msg = "forbidden: the token's user may not get this path\n";
        g->reason = "forbidden";
        break;
    default:
        g->status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        g->msg = "authorization unavailable: try again\n";
        g->reason = "auth_unavailable";
        break;
    }
}

/* Asks for a decision on token for wsi's request of path; frees token.
 * Returns 0 (the request now waits) or -EBUSY (too many wait already). */
static int httpd__ask(struct httpd *h, struct lws *wsi, char *token, const char *path)
{
    struct httpd__wait *w = NULL;
    int rc = -EBUSY;

    for (int i = 0; i < HTTPD__WAITS && w == NULL; i++)
        if (h->waits[i].ticket == 0)
            w = &h->waits[i];
    if (w != NULL) {
        uint64_t ticket = ++h->next_ticket;
        rc = authz_submit(h->authz, ticket, token, httpd__authz_path(path), "get");
        if (rc == 0) {
            w->ticket = ticket;
            w->wsi = wsi;
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTPD__AUTH_WAIT_S);
        }
    }
    explicit_bzero(token, strlen(token));
    free(token);
    return rc;
}

/* Forgets wsi's waiting request, if any (the connection is going away). */
static void httpd__unwait(struct httpd *h, const struct lws *wsi)
{
    for (int i = 0; i < HTTPD__WAITS; i++)
        if (h->waits[i].ticket != 0 && h->waits[i].wsi == wsi)
            memset(&h->waits[i], 0, sizeof(h->waits[i]));
}

/* ---- plain HTTP ------------------------------------------------------- */

/* The embedded file served at path; "/" is the page. */
static const struct dashboard_asset *httpd__asset(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < dashboard_nassets; i++)
        if (strcmp(dashboard_assets[i].path, path) == 0)
            return &dashboard_assets[i];
    return NULL;
}

/* Answers a GET of path that passed every check. */
static int httpd__route(struct httpd__srv *srv, struct lws *wsi, struct httpd__session *s,
                        const char *path)
{
    struct httpd *h = srv->h;
    const struct dashboard_asset *a;

    if (strcmp(path, "/healthz") == 0)
        return httpd__text(wsi, s, HTTP_STATUS_OK, "ok\n", 0);
    if (strcmp(path, "/readyz") == 0) {
        if (h->ready == NULL || h->ready(h->ud))
            return httpd__text(wsi, s, HTTP_STATUS_OK, "ok\n", 0);
        return httpd__text(wsi, s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                           "not ready: caches not synced\n", 0);
    }
    if (srv->role == HTTPD__PROBES)
        return httpd__text(wsi, s, HTTP_STATUS_NOT_FOUND, "not found: this port serves probes\n",
                           0);
    if (strcmp(path, "/metrics") == 0) {
        struct buf b = {0};
        size_t n;
        metrics_render(&b);
        n = b.len;
        return httpd__respond(wsi, s, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8",
                              NULL, buf_steal(&b), n, 0);
    }
    if (strcmp(path, "/api/state") == 0)
        return httpd__respond(wsi, s, HTTP_STATUS_OK, "application/json", NULL,
                              xstrndup((const char *)h->state + LWS_PRE, h->state_len),
                              h->state_len, 0);
    if (strcmp(path, HTTPD__WS_PATH) == 0)
        return httpd__text(wsi, s, HTTP_STATUS_BAD_REQUEST, "this path is a WebSocket\n", 0);
    a = httpd__asset(path);
    if (a != NULL)
        return httpd__respond(wsi, s, HTTP_STATUS_OK, a->content_type, a->data, NULL, a->len, 0);
    return httpd__text(wsi, s, HTTP_STATUS_NOT_FOUND, "not found\n", 0);
}

/* Answers now, or once the request's body has been read: lws writes
 * nothing until then. */
static int httpd__answer(struct lws *wsi, struct httpd__session *s, unsigned status,
                         const char *msg, int flags)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
        lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        s->after_body = status;
        s->after_msg = msg;
        return 0;
    }
    return httpd__text(wsi, s, status, msg, flags);
}

/* Checks and routes one request. Every path answers GET only. */
static int httpd__on_http(struct httpd__srv *srv, struct lws *wsi, struct httpd__session *s,
                          const char *path)
{
    struct httpd__gate g;

    httpd__gate(srv, wsi, path, &g);
    if (g.status)
        return httpd__answer(wsi, s, g.status, g.msg,
                             g.status == HTTP_STATUS_UNAUTHORIZED ? HTTPD__R_BEARER : 0);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        if (g.token) {
            explicit_bzero(g.token, strlen(g.token));
            free(g.token);
        }
        return httpd__answer(wsi, s, HTTP_STATUS_METHOD_NOT_ALLOWED,
                             "method not allowed: this server is read-only\n", HTTPD__R_CLOSE);
    }
    if (g.token == NULL)
        return httpd__route(srv, wsi, s, path);
    /* Paths longer than any route are not found, whoever asks. */
    if (strlen(path) > HTTPD__PATH_MAX) {
        explicit_bzero(g.token, strlen(g.token));
        free(g.token);
        return httpd__text(wsi, s, HTTP_STATUS_NOT_FOUND, "not found\n", 0);
    }
    snprintf(s->path, sizeof(s->path), "%s", path);
    if (httpd__ask(srv->h, wsi, g.token, s->path) != 0) {
        httpd__refused(srv, NULL, "auth_unavailable", NULL);
        return httpd__text(wsi, s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                           "authorization busy: try again\n", 0);
    }
    s->wait = HTTPD__WAITING;
    return 0;
}

/* The writeable callback of a request whose decision arrived. */
static int httpd__on_decided(struct httpd__srv *srv, struct lws *wsi, struct httpd__session *s)
{
    struct httpd__gate g;

    s->wait = HTTPD__FREE;
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTPD__AUTH_WAIT_S);
    httpd__decision_refusal(s->decision, &g);
    if (g.status == 0)
        return httpd__route(srv, wsi, s, s->path);
    httpd__refused(srv, NULL, g.reason, NULL);
    return httpd__text(wsi, s, g.status, g.msg,
                       g.status == HTTP_STATUS_UNAUTHORIZED ? HTTPD__R_BEARER : 0);
}

/* ---- the WebSocket ------------------------------------------------------ */

/* The URI of an upgrade request is the WebSocket's path. */
static bool httpd__is_ws_path(struct lws *wsi)
{
    char uri[sizeof(HTTPD__WS_PATH) + 1];

    return lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) >= 0 &&
           strcmp(uri, HTTPD__WS_PATH) == 0;
}

/* Before an upgrade: everything that can be refused with a status. Returns
 * 0 to let the upgrade happen, 1 after answering, -1 to close. */
static int httpd__on_upgrade(struct httpd__srv *srv, struct lws *wsi)
{
    struct httpd__gate g;

    if (srv->role == HTTPD__PROBES || !httpd__is_ws_path(wsi))
        return httpd__text_now(wsi, HTTP_STATUS_NOT_FOUND, "not found\n", 0);
    httpd__gate(srv, wsi, HTTPD__WS_PATH, &g);
    if (g.token) {
        /* Asked for once the upgrade is accepted (httpd__on_ws_filter). */
        explicit_bzero(g.token, strlen(g.token));
        free(g.token);
    }
    if (g.status)
        return httpd__text_now(wsi, g.status, g.msg,
                               g.status == HTTP_STATUS_UNAUTHORIZED ? HTTPD__R_BEARER : 0);
    return 0;
}

/* The upgrade is about to be accepted: ask for its decision if one is
 * needed and not cached (the checks with a status already passed).
 * Returns 0, or 1 to drop the connection. */
static int httpd__on_ws_filter(struct httpd__srv *srv, struct lws *wsi, struct httpd__session *s)
{
    struct httpd__gate g;

    if (srv->role == HTTPD__PROBES || !httpd__is_ws_path(wsi))
        return 1;
    httpd__gate(srv, wsi, HTTPD__WS_PATH, &g);
    if (g.status)
        return 1; /* a cached denial appeared since the upgrade was confirmed */
    s->wait = HTTPD__FREE;
    if (g.token == NULL)
        return 0;
    if (httpd__ask(srv->h, wsi, g.token, HTTPD__WS_PATH) != 0) {
        httpd__refused(srv, NULL, "auth_unavailable", NULL);
        return 1;
    }
    s->wait = HTTPD__WAITING;
    return 0;
}

/* Sends the current state if this session has not seen it yet, once it
 * may; closes it when its decision was not an allow. */
static int httpd__ws_send(struct httpd__srv *srv, struct lws *wsi, struct httpd__session *s)
{
    struct httpd *h = srv->h;

    if (s->wait == HTTPD__WAITING)
        return 0;
    if (s->wait == HTTPD__DECIDED) {
        struct httpd__gate g;
        static const char *const why[] = {"", "unauthorized", "forbidden"};

        s->wait = HTTPD__FREE;
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        httpd__decision_refusal(s->decision, &g);
        if (g.status) {
            const char *w = s->decision > 0 ? why[s->decision] : "authorization unavailable";
            httpd__refused(srv, NULL, g.reason, NULL);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)w, strlen(w));
            return -1;
        }
    }
    if (s->sent == h->version)
        return 0;
    /* lws writes the frame header into the LWS_PRE headroom and copies what
     * the socket does not take at once, so the shared buffer can be handed
     * to every session in turn. */
    if (lws_write(wsi, h->state + LWS_PRE, h->state_len, LWS_WRITE_TEXT) != (int)h->state_len)
        return -1;
    s->sent = h->version;
    return 0;
}

/* ---- what other threads hand over ---------------------------------------- */

/* Takes a published state, if any, and wakes every WebSocket session. */
static void httpd__take_pending(struct httpd *h)
{
    char *json;

    pthread_mutex_lock(&h->lock);
    json = h->pending;
    h->pending = NULL;
    pthread_mutex_unlock(&h->lock);
    if (json == NULL)
        return;
    httpd__set_state(h, json);
    lws_callback_on_writable_all_protocol(h->srv[HTTPD__MAIN].ctx, &httpd__protocols[0]);
}

/* Hands each reported decision to the request waiting for it, if it is
 * still there, and wakes it. */
static void httpd__take_verdicts(struct httpd *h)
{
    struct httpd__verdict *v;

    pthread_mutex_lock(&h->lock);
    v = h->verdicts;
    h->verdicts = NULL;
    pthread_mutex_unlock(&h->lock);
    while (v != NULL) {
        struct httpd__verdict *next = v->next;
        for (int i = 0; i < HTTPD__WAITS; i++) {
            struct httpd__wait *w = &h->waits[i];
            struct httpd__session *s;
            if (w->ticket != v->ticket)
                continue;
            s = lws_wsi_user(w->wsi);
            if (s != NULL && s->wait == HTTPD__WAITING) {
                s->wait = HTTPD__DECIDED;
                s->decision = v->decision;
                lws_callback_on_writable(w->wsi);
            }
            memset(w, 0, sizeof(*w));
        }
        free(v);
        v = next;
    }
}

/* authz_config.done, on a worker: queue the decision, wake the server. */
static void httpd__on_verdict(void *ud, uint64_t ticket, int decision)
{
    struct httpd *h = ud;
    struct httpd__verdict *v = xcalloc(1, sizeof(*v));

    v->ticket = ticket;
    v->decision = decision;
    pthread_mutex_lock(&h->lock);
    v->next = h->verdicts;
    h->verdicts = v;
    if (h->srv[HTTPD__MAIN].started && !h->srv[HTTPD__MAIN].gone)
        lws_cancel_service(h->srv[HTTPD__MAIN].ctx);
    pthread_mutex_unlock(&h->lock);
}

/* ---- the callback ----------------------------------------------------- */

static int httpd__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct httpd__srv *srv = lws_context_user(lws_get_context(wsi));
    struct httpd__session *s = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        const struct lws_filter_network_conn_args *fa = user;
        int handle;

        if (srv->accepted) /* the last one accepted never became a connection */
            guard_peer_release(srv->peers, srv->accepted - 1);
        srv->accepted = 0;
        handle = guard_peer_acquire(srv->peers, (const struct sockaddr *)&fa->cli_addr);
        if (handle < 0) {
            httpd__refused(srv, (const struct sockaddr *)&fa->cli_addr, "peer_limit", NULL);
            return 1;
        }
        srv->accepted = handle + 1;
        return 0;
    }
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (srv != NULL && srv->accepted) {
            lws_set_opaque_user_data(wsi, (void *)(intptr_t)srv->accepted);
            srv->accepted = 0;
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY: {
        intptr_t handle = (intptr_t)lws_get_opaque_user_data(wsi);

        if (srv == NULL)
            return 0;
        if (handle > 0) {
            guard_peer_release(srv->peers, (int)handle - 1);
            lws_set_opaque_user_data(wsi, NULL);
        }
        if (srv->role == HTTPD__MAIN)
            httpd__unwait(srv->h, wsi);
        if (s != NULL)
            httpd__session_reset(s);
        return 0;
    }
    case LWS_CALLBACK_HTTP:
        return httpd__on_http(srv, wsi, s, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s->wait == HTTPD__WAITING)
            return 0;
        if (s->wait == HTTPD__DECIDED)
            return httpd__on_decided(srv, wsi, s);
        return httpd__write_body(wsi, s);
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* a body sent with POST/PUT is read and dropped; the answer is 405 */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        unsigned status = s->after_body;

        if (status == 0)
            return -1;
        s->after_body = 0;
        if (status == HTTP_STATUS_METHOD_NOT_ALLOWED)
            return httpd__reject(wsi, s);
        return httpd__text(wsi, s, status, s->after_msg,
                           status == HTTP_STATUS_UNAUTHORIZED ? HTTPD__R_BEARER : 0);
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s != NULL)
            httpd__session_reset(s);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return httpd__on_upgrade(srv, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return httpd__on_ws_filter(srv, wsi, s);
    case LWS_CALLBACK_ESTABLISHED:
        httpd__session_reset(s);
        s->kind = HTTPD__WS;
        s->sent = 0; /* versions start at 1: the first writeable sends the state */
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s->kind == HTTPD__WS ? httpd__ws_send(srv, wsi, s) : 0;
    case LWS_CALLBACK_RECEIVE:
        return 0; /* the dashboard only listens */
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv != NULL && srv->role == HTTPD__MAIN) {
            httpd__take_pending(srv->h);
            httpd__take_verdicts(srv->h);
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- starting and stopping ---------------------------------------------- */

static int httpd__stopping(struct httpd *h)
{
    int stop;

    pthread_mutex_lock(&h->lock);
    stop = h->stopping;
    pthread_mutex_unlock(&h->lock);
    return stop;
}

static void *httpd__run(void *arg)
{
    struct httpd__srv *srv = arg;
    struct httpd *h = srv->h;

    while (!httpd__stopping(h)) {
        if (lws_service(srv->ctx, 0) < 0) {
            log_error("%s server stopped: libwebsockets service failed",
                      srv->role == HTTPD__MAIN ? "dashboard" : "probe");
            break;
        }
    }
    /* From here on nobody may wake ctx: httpd_publish(), the verdicts and
     * httpd_stop() call lws_cancel_service() only under the lock and while
     * !gone. */
    pthread_mutex_lock(&h->lock);
    srv->gone = 1;
    pthread_mutex_unlock(&h->lock);
    /* Destroying here keeps every lws call, and every callback it makes
     * while closing connections, on this thread. */
    lws_context_destroy(srv->ctx);
    return NULL;
}

int httpd_parse_addr(const char *s, char **host, int *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    char *end;
    long p;

    *host = NULL;
    if (!colon)
        return -EINVAL;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
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

/* Binds the address once ourselves, so that a busy port or a bad address
 * is reported with its real errno instead of lws' log line. */
static int httpd__probe_bind(const char *addr, int port, char **err)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char service[16];
    int fd = -1, one = 1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(addr, service, &hints, &ai);
    if (rc != 0) {
        if (err)
            *err = xasprintf("listen address \"%s\": not an IP address", addr ? addr : "");
        return -EINVAL;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
out:
    if (rc != 0 && err)
        *err = xasprintf("listen on %s:%d: %s", addr ? addr : "*", port, strerror(-rc));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

/* Creates srv's context on addr:port. Returns 0 or a negative errno with
 * *err. */
static int httpd__listen(struct httpd__srv *srv, const char *addr, int port,
                         const struct httpd_config *cfg, char **err)
{
    struct lws_context_creation_info info;
    int idle = cfg->idle_seconds > 0 ? cfg->idle_seconds : HTTPD_IDLE_SECONDS;
    int ping = cfg->ws_ping_seconds > 0 ? cfg->ws_ping_seconds : HTTPD_WS_PING_SECONDS;
    bool probes = srv->role == HTTPD__PROBES;
    int conns = probes ? HTTPD_PROBE_MAX_CONNS : HTTPD_MAX_CONNS;
    int per_peer = probes ? HTTPD_PROBE_MAX_PER_PEER
                          : (cfg->max_per_peer > 0 ? cfg->max_per_peer : HTTPD_MAX_PER_PEER);
    int rc;

    rc = httpd__probe_bind(addr, port, err);
    if (rc != 0)
        return rc;
    srv->ping.secs_since_valid_ping = (uint16_t)ping;
    /* An unanswered ping closes the WebSocket a third of the interval
     * later (40 s after the last pong by default). */
    srv->ping.secs_since_valid_hangup = (uint16_t)(ping + (ping + 2) / 3);
    srv->peers = guard_peers_new(per_peer, conns);
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = addr;
    info.protocols = httpd__protocols;
    info.user = srv;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = (unsigned)conns;
    info.max_http_header_data = HTTPD__HEADER_DATA;
    info.timeout_secs = (unsigned)idle;
    info.timeout_secs_ah_idle = (unsigned)idle;
    info.keepalive_timeout = idle;
    info.retry_and_idle_policy = &srv->ping;
    info.server_string = "kvrecover";
    srv->ctx = lws_create_context(&info);
    if (srv->ctx == NULL) {
        if (err)
            *err = xasprintf("listen on %s:%d: libwebsockets could not start", addr ? addr : "*",
                             port);
        return -EIO;
    }
    srv->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(srv->ctx, "default"));
    if (pthread_create(&srv->thread, NULL, httpd__run, srv) != 0) {
        if (err)
            *err = xstrdup("cannot start an HTTP server thread");
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
        return -EAGAIN;
    }
    srv->started = true;
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "addr", addr ? addr : "*");
        cJSON_AddNumberToObject(f, "port", srv->port);
        if (!probes) {
            cJSON_AddNumberToObject(f, "maxPerPeer", per_peer);
            cJSON_AddStringToObject(f, "auth",
                                    srv->h->auth == HTTPD_AUTH_NONE    ? "none"
                                    : srv->h->auth == HTTPD_AUTH_TOKEN ? "tokenreview"
                                                                       : "auto");
        }
        log_fields(LOG_LVL_INFO, probes ? "probes listening" : "http listening", f);
    }
    return 0;
}

/* Stops the server threads that run and frees what httpd_start made. */
static void httpd__free(struct httpd *h)
{
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    for (int i = 0; i < 2; i++)
        if (h->srv[i].started && !h->srv[i].gone)
            lws_cancel_service(h->srv[i].ctx);
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < 2; i++)
        if (h->srv[i].started)
            pthread_join(h->srv[i].thread, NULL);
    /* The workers may still report: their lws_cancel_service() is skipped
     * now that every srv is gone. */
    authz_free(h->authz);
    while (h->verdicts != NULL) {
        struct httpd__verdict *v = h->verdicts;
        h->verdicts = v->next;
        free(v);
    }
    for (int i = 0; i < 2; i++)
        guard_peers_free(h->srv[i].peers);
    guard_hosts_free(h->hosts);
    pthread_mutex_destroy(&h->lock);
    free(h->pending);
    free(h->state);
    free(h);
}

int httpd_start(const struct httpd_config *cfg, struct httpd **out, char **err)
{
    struct httpd *h;
    const char *addr, *paddr;
    bool token_possible;
    int rc;

    if (err)
        *err = NULL;
    *out = NULL;
    if (cfg == NULL || (cfg->port < 0 && !cfg->probe)) {
        if (err)
            *err = xstrdup("nothing to listen on");
        return -EINVAL;
    }
    if (cfg->port > 65535 || (cfg->probe && (cfg->probe_port < 0 || cfg->probe_port > 65535))) {
        if (err)
            *err = xasprintf("listen port %d: not in 0..65535",
                             cfg->port > 65535 ? cfg->port : cfg->probe_port);
        return -EINVAL;
    }
    addr = cfg->addr && cfg->addr[0] ? cfg->addr : NULL;
    paddr = cfg->probe_addr && cfg->probe_addr[0] ? cfg->probe_addr : NULL;

    h = xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->ready = cfg->ready;
    h->ud = cfg->ud;
    h->auth = cfg->auth;
    for (int i = 0; i < 2; i++) {
        h->srv[i].h = h;
        h->srv[i].role = i == 0 ? HTTPD__MAIN : HTTPD__PROBES;
    }
    h->srv[HTTPD__MAIN].on = cfg->port >= 0;
    h->srv[HTTPD__PROBES].on = cfg->probe;
    httpd__set_state(h, xstrdup("{}"));
    rc = guard_hosts_new(addr, cfg->allowed_hosts, cfg->n_allowed_hosts, &h->hosts, err);
    if (rc != 0)
        goto fail;
    /* A loopback-only listener has only loopback peers: with AUTO none of
     * them needs a token. */
    token_possible =
        h->srv[HTTPD__MAIN].on && (cfg->auth == HTTPD_AUTH_TOKEN ||
                                   (cfg->auth == HTTPD_AUTH_AUTO && !guard_addr_is_loopback(addr)));
    if (token_possible) {
        struct authz_config ac = {.decide = cfg->authorize,
                                  .decide_ud = cfg->authorize_ud,
                                  .done = httpd__on_verdict,
                                  .done_ud = h,
                                  .queue = HTTPD__WAITS,
                                  .ttl_ms = cfg->auth_ttl_ms};
        if (cfg->authorize == NULL) {
            if (err)
                *err = xstrdup("token authentication on a listener that is not loopback-only "
                               "needs an authorizer");
            rc = -EINVAL;
            goto fail;
        }
        rc = authz_new(&ac, &h->authz);
        if (rc != 0) {
            if (err)
                *err = xstrdup("cannot start the authorization workers");
            goto fail;
        }
    } else if (cfg->auth == HTTPD_AUTH_NONE && h->srv[HTTPD__MAIN].on &&
               !guard_addr_is_loopback(addr)) {
        log_warn("http: --http-auth=none on %s: the dashboard, /api/state and /metrics are open "
                 "to everyone who can reach it",
                 addr ? addr : "every address");
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, httpd__lws_log);
    if (h->srv[HTTPD__MAIN].on) {
        rc = httpd__listen(&h->srv[HTTPD__MAIN], addr, cfg->port, cfg, err);
        if (rc != 0)
            goto fail;
    }
    if (h->srv[HTTPD__PROBES].on) {
        rc = httpd__listen(&h->srv[HTTPD__PROBES], paddr, cfg->probe_port, cfg, err);
        if (rc != 0)
            goto fail;
    }
    *out = h;
    return 0;
fail:
    httpd__free(h);
    return rc;
}

int httpd_port(const struct httpd *h)
{
    return h && h->srv[HTTPD__MAIN].started ? h->srv[HTTPD__MAIN].port : -1;
}

int httpd_probe_port(const struct httpd *h)
{
    return h && h->srv[HTTPD__PROBES].started ? h->srv[HTTPD__PROBES].port : -1;
}

void httpd_publish(struct httpd *h, char *state_json)
{
    if (h == NULL || state_json == NULL) {
        free(state_json);
        return;
    }
    pthread_mutex_lock(&h->lock);
    free(h->pending); /* superseded before the server thread took it */
    h->pending = state_json;
    if (h->srv[HTTPD__MAIN].started && !h->srv[HTTPD__MAIN].gone)
        lws_cancel_service(h->srv[HTTPD__MAIN].ctx);
    pthread_mutex_unlock(&h->lock);
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    httpd__free(h);
}
