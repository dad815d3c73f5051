/*
 * httpd — the dashboard, /metrics and the probes over libwebsockets. See
 * httpd.h.
 *
 * One lws context with one protocol that handles both plain HTTP and the
 * /ws WebSocket, serviced by one thread. The only state shared with other
 * threads is the publish slot and the stop flag, under h->lock; everything
 * else (the current state, its version, the sessions) belongs to the server
 * thread. httpd_publish() drops the JSON into the slot and calls
 * lws_cancel_service(), the one lws function documented as safe from
 * another thread; the server thread then sees LWS_CALLBACK_EVENT_WAIT_CANCELLED,
 * takes the slot, and asks every WebSocket session to write. A session
 * remembers the version it last sent, so a slow client skips to the newest
 * state instead of queueing every intermediate one.
 *
 * HTTP bodies are snapshots taken when the request arrives (the state can
 * change while a large body is being written) and go out in chunks from the
 * writeable callback, so one slow reader never blocks the loop.
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
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "web/dashboard_assets.h"
#include "web/metrics.h"

#define HTTPD__CHUNK 16384  /* bytes of body written per writeable callback */
#define HTTPD__MAX_FDS 256  /* connections (and lws' own fds) per server */
#define HTTPD__HEADERS 1024 /* room for the response headers */
#define HTTPD__WS_PATH "/ws"

/* The page may load only its own script and style, talk only to its own
 * origin (the WebSocket), and may not be framed. */
#define HTTPD__CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct httpd {
    struct lws_context *ctx; /* created by httpd_start, destroyed by the server thread */
    pthread_t thread;        /* the server thread */
    int port;                /* the port listened on */
    int (*ready)(void *ud);  /* readiness for /readyz, or NULL */
    void *ud;                /* passed to ready */

    pthread_mutex_t lock; /* guards pending, stopping and gone */
    char *pending;        /* newest published state not yet taken, owned */
    int stopping;         /* set by httpd_stop() */
    int gone;             /* set by the server thread before it destroys ctx */

    /* Owned by the server thread once it runs. */
    unsigned char *state; /* LWS_PRE bytes of headroom, then the state JSON */
    size_t state_len;     /* bytes of JSON after the headroom */
    uint64_t version;     /* bumped on every new state; sessions compare */
};

enum httpd__kind { HTTPD__HTTP, HTTPD__WS };

/* Per-connection data, zeroed by lws when the connection is accepted. */
struct httpd__session {
    enum httpd__kind kind; /* plain HTTP, or upgraded to the WebSocket */
    const char *body;      /* HTTP: body being written (points into owned or static data) */
    char *owned;           /* HTTP: body allocated for this response, or NULL */
    size_t len, off;       /* HTTP: body length and bytes already written */
    int close_after;       /* HTTP: close the connection once the body is out */
    int reject_after_body; /* HTTP: answer 405 once the request body is read */
    uint64_t sent;         /* WS: version of the state last sent */
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

/* Starts a response: writes the status and headers and schedules the body.
 * body is either static (owned NULL) or owned by the session afterwards.
 * Returns 0, or -1 to close the connection. */
static int httpd__respond(struct lws *wsi, struct httpd__session *s, unsigned status,
                          const char *ctype, const char *body, char *owned, size_t len)
{
    unsigned char hdr[LWS_PRE + HTTPD__HEADERS];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    int is_html = strncmp(ctype, "text/html", 9) == 0;

    httpd__session_reset(s);
    s->body = owned ? owned : body;
    s->owned = owned;
    s->len = len;
    s->close_after = status == HTTP_STATUS_METHOD_NOT_ALLOWED;

#define HTTPD__HDR(name, value)                                                                    \
    lws_add_http_header_by_name(wsi, (const unsigned char *)(name),                                \
                                (const unsigned char *)(value), (int)strlen(value), &p, end)
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        HTTPD__HDR("cache-control:", "no-store") ||
        HTTPD__HDR("x-content-type-options:", "nosniff") ||
        HTTPD__HDR("referrer-policy:", "no-referrer") ||
        (is_html && HTTPD__HDR("content-security-policy:", HTTPD__CSP)) ||
        (s->close_after && HTTPD__HDR("allow:", "GET")) ||
        (s->close_after && HTTPD__HDR("connection:", "close")) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
#undef HTTPD__HDR
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
static int httpd__text(struct lws *wsi, struct httpd__session *s, unsigned status, const char *msg)
{
    return httpd__respond(wsi, s, status, "text/plain; charset=utf-8", msg, NULL, strlen(msg));
}

/* The answer to every method but GET. */
static int httpd__reject(struct lws *wsi, struct httpd__session *s)
{
    return httpd__text(wsi, s, HTTP_STATUS_METHOD_NOT_ALLOWED,
                       "method not allowed: this server is read-only\n");
}

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

/* Routes one request. Every path answers GET only. */
static int httpd__on_http(struct httpd *h, struct lws *wsi, struct httpd__session *s,
                          const char *path)
{
    const struct dashboard_asset *a;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        /* lws writes nothing until a request body has been read, so a
         * request with one is answered at LWS_CALLBACK_HTTP_BODY_COMPLETION. */
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
            lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
            s->reject_after_body = 1;
            return 0;
        }
        return httpd__reject(wsi, s);
    }
    if (strcmp(path, "/healthz") == 0)
        return httpd__text(wsi, s, HTTP_STATUS_OK, "ok\n");
    if (strcmp(path, "/readyz") == 0) {
        if (h->ready == NULL || h->ready(h->ud))
            return httpd__text(wsi, s, HTTP_STATUS_OK, "ok\n");
        return httpd__text(wsi, s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                           "not ready: caches not synced\n");
    }
    if (strcmp(path, "/metrics") == 0) {
        struct buf b = {0};
        size_t n;
        metrics_render(&b);
        n = b.len;
        return httpd__respond(wsi, s, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8",
                              NULL, buf_steal(&b), n);
    }
    if (strcmp(path, "/api/state") == 0)
        return httpd__respond(wsi, s, HTTP_STATUS_OK, "application/json", NULL,
                              xstrndup((const char *)h->state + LWS_PRE, h->state_len),
                              h->state_len);
    if (strcmp(path, HTTPD__WS_PATH) == 0)
        return httpd__text(wsi, s, HTTP_STATUS_BAD_REQUEST, "this path is a WebSocket\n");
    a = httpd__asset(path);
    if (a != NULL)
        return httpd__respond(wsi, s, HTTP_STATUS_OK, a->content_type, a->data, NULL, a->len);
    return httpd__text(wsi, s, HTTP_STATUS_NOT_FOUND, "not found\n");
}

/* Sends the current state if this session has not seen it yet. */
static int httpd__ws_send(struct httpd *h, struct lws *wsi, struct httpd__session *s)
{
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
    lws_callback_on_writable_all_protocol(h->ctx, &httpd__protocols[0]);
}

static int httpd__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    struct httpd *h = lws_context_user(lws_get_context(wsi));
    struct httpd__session *s = user;
    char uri[sizeof(HTTPD__WS_PATH) + 1];

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return httpd__on_http(h, wsi, s, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return httpd__write_body(wsi, s);
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* a body sent with POST/PUT is read and dropped; the answer is 405 */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!s->reject_after_body)
            return -1;
        s->reject_after_body = 0;
        return httpd__reject(wsi, s);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s != NULL)
            httpd__session_reset(s);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* The WebSocket lives at /ws only; refuse upgrades elsewhere. */
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
            strcmp(uri, HTTPD__WS_PATH) != 0)
            return 1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        httpd__session_reset(s);
        s->kind = HTTPD__WS;
        s->sent = 0; /* versions start at 1: the first writeable sends the state */
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s->kind == HTTPD__WS ? httpd__ws_send(h, wsi, s) : 0;
    case LWS_CALLBACK_RECEIVE:
        return 0; /* the dashboard only listens */
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (h != NULL)
            httpd__take_pending(h);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

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
    struct httpd *h = arg;

    while (!httpd__stopping(h)) {
        if (lws_service(h->ctx, 0) < 0) {
            log_error("dashboard server stopped: libwebsockets service failed");
            break;
        }
    }
    /* From here on nobody may wake ctx: httpd_publish() and httpd_stop()
     * call lws_cancel_service() only under the lock and while !gone. */
    pthread_mutex_lock(&h->lock);
    h->gone = 1;
    pthread_mutex_unlock(&h->lock);
    /* Destroying here keeps every lws call, and every callback it makes
     * while closing connections, on this thread. */
    lws_context_destroy(h->ctx);
    return NULL;
}

/* Binds the address once ourselves, so that a busy port or a bad address
 * is reported with its real errno instead of lws' log line. */
static int httpd__probe(const char *addr, int port, char **err)
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

int httpd_start(const struct httpd_config *cfg, struct httpd **out, char **err)
{
    struct lws_context_creation_info info;
    struct httpd *h = NULL;
    const char *addr;
    int rc;

    if (err)
        *err = NULL;
    *out = NULL;
    if (cfg == NULL || cfg->port < 0 || cfg->port > 65535) {
        if (err)
            *err = xasprintf("listen port %d: not in 0..65535", cfg ? cfg->port : -1);
        return -EINVAL;
    }
    addr = cfg->addr && cfg->addr[0] ? cfg->addr : NULL;
    rc = httpd__probe(addr, cfg->port, err);
    if (rc != 0)
        return rc;

    h = xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->ready = cfg->ready;
    h->ud = cfg->ud;
    httpd__set_state(h, xstrdup("{}"));

    lws_set_log_level(LLL_ERR | LLL_WARN, httpd__lws_log);
    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface = addr;
    info.protocols = httpd__protocols;
    info.user = h;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = HTTPD__MAX_FDS;
    info.server_string = "kvrecover";
    h->ctx = lws_create_context(&info);
    if (h->ctx == NULL) {
        if (err)
            *err = xasprintf("listen on %s:%d: libwebsockets could not start", addr ? addr : "*",
                             cfg->port);
        rc = -EIO;
        goto fail;
    }
    h->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(h->ctx, "default"));
    if (pthread_create(&h->thread, NULL, httpd__run, h) != 0) {
        if (err)
            *err = xstrdup("cannot start the HTTP server thread");
        lws_context_destroy(h->ctx);
        rc = -EAGAIN;
        goto fail;
    }
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "addr", addr ? addr : "*");
        cJSON_AddNumberToObject(f, "port", h->port);
        log_fields(LOG_LVL_INFO, "http listening", f);
    }
    *out = h;
    return 0;
fail:
    pthread_mutex_destroy(&h->lock);
    free(h->state);
    free(h);
    return rc;
}

int httpd_port(const struct httpd *h)
{
    return h ? h->port : -1;
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
    if (!h->gone)
        lws_cancel_service(h->ctx);
    pthread_mutex_unlock(&h->lock);
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    if (!h->gone)
        lws_cancel_service(h->ctx);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_mutex_destroy(&h->lock);
    free(h->pending);
    free(h->state);
    free(h);
}
