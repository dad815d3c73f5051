/*
 * Tests for httpd: a real server on a free port, driven by libcurl for
 * HTTP and by a raw-socket WebSocket client (libcurl 7.88 cannot speak
 * WebSocket) — every endpoint, 404/405, readiness toggling, publish seen on
 * /api/state and pushed to a connected WebSocket, large bodies, and that
 * the embedded dashboard is the one in controller/web/dashboard/.
 */
#include <curl/curl.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "harness.h"
#include "web/httpd.h"
#include "web/httpd_test.h"
#include "web/metrics.h"
#include "web/metrics_test.h"

struct resp {
    long status;
    struct buf body;
    struct buf headers;
};

static void resp_free(struct resp *r)
{
    buf_free(&r->body);
    buf_free(&r->headers);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf_append(ud, p, size * n);
    return size * n;
}

/* A request beyond request()'s: to ip (default 127.0.0.1) from source (an
 * address of ours, default any), with extra header lines (NULL-ended),
 * giving up after timeout_ms (default 10 s). */
struct req {
    const char *ip, *source;
    int port;
    const char *method, *path, *body;
    const char *const *headers;
    long timeout_ms;
};

/* Sends q. Returns the curl code; the response in *r (free with
 * resp_free). */
static CURLcode request_ex(const struct req *q, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[256];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://%s:%d%s", q->ip ? q->ip : "127.0.0.1", q->port, q->path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (q->source)
        curl_easy_setopt(c, CURLOPT_INTERFACE, q->source);
    for (const char *const *h = q->headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (q->method != NULL && strcmp(q->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (q->method != NULL)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (q->body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    if (r->body.data == NULL)
        buf_puts(&r->body, "");
    if (r->headers.data == NULL)
        buf_puts(&r->headers, "");
    return rc;
}

/* One request with method (NULL = GET) and optional body. Returns the curl
 * code; the response in *r (free with resp_free). */
static CURLcode request(int port, const char *method, const char *path, const char *body,
                        struct resp *r)
{
    struct req q = {.port = port, .method = method, .path = path, .body = body};
    return request_ex(&q, r);
}

/* The status of a GET of path with the given extra header lines; -1 when
 * no answer came. */
static long status_with(int port, const char *path, const char *const *headers)
{
    struct req q = {.port = port, .path = path, .headers = headers};
    struct resp r;
    long st = request_ex(&q, &r) == CURLE_OK ? r.status : -1;
    resp_free(&r);
    return st;
}

/* Case-insensitive search for a header line "name: value" (value exact). */
static int has_header(const struct resp *r, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = r->headers.data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
        if (strncasecmp(p, line, n) == 0 && (p[n] == '\r' || p[n] == '\n'))
            return 1;
    }
    return 0;
}

static atomic_int ready_flag;

static int ready_cb(void *ud)
{
    (void)ud;
    return atomic_load(&ready_flag);
}

static struct httpd *start(void)
{
    struct httpd_config cfg = {.addr = "127.0.0.1", .ready = ready_cb};
    struct httpd *h = NULL;
    char *err = NULL;
    int rc = httpd_start(&cfg, &h, &err);
    if (rc != 0) {
        fprintf(stderr, "httpd_start: %d %s\n", rc, err ? err : "");
        free(err);
        return NULL;
    }
    return h;
}

/* ---- a minimal WebSocket client over a raw socket ---- */

/* A TCP connection to 127.0.0.1:port from source (NULL: any loopback
 * address); the fd or -1. */
static int tcp_connect(int port, const char *source)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    if (source != NULL) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        inet_pton(AF_INET, source, &src.sin_addr);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            close(fd);
            return -1;
        }
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends the upgrade request for path with Host host (NULL: 127.0.0.1:port)
 * and extra header lines (each ending "\r\n", may be NULL); returns the fd
 * after a 101 answer, or -1 (the status line, if any, in status). */
static int ws_connect_ex(int port, const char *path, const char *host, const char *extra,
                         char *status, size_t status_len)
{
    char req[8192], resp[2048], hostbuf[64];
    size_t got = 0;
    int fd = tcp_connect(port, NULL);

    status[0] = '\0';
    if (fd < 0)
        goto fail;
    if (host == NULL) {
        snprintf(hostbuf, sizeof(hostbuf), "127.0.0.1:%d", port);
        host = hostbuf;
    }
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             path, host, extra ? extra : "");
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        goto fail;
    /* Read the handshake byte by byte so no frame byte is swallowed. */
    while (got + 1 < sizeof(resp)) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0 || read(fd, resp + got, 1) != 1)
            break;
        got++;
        resp[got] = '\0';
        if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[got] = '\0';
    snprintf(status, status_len, "%.*s", (int)strcspn(resp, "\r\n"), resp);
    /* RFC 6455's own example key and its accept value. */
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0 ||
        strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == NULL)
        goto fail;
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Connects and sends the upgrade request for path; returns the fd after a
 * 101 answer, or -1 (the status line, if any, in status). */
static int ws_connect(int port, const char *path, char *status, size_t status_len)
{
    return ws_connect_ex(port, path, NULL, NULL, status, status_len);
}

static int read_full(int fd, unsigned char *p, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -ETIMEDOUT;
        r = read(fd, p + got, n - got);
        if (r <= 0)
            return -EIO;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one unfragmented server text frame; returns its payload (caller
 * frees) or NULL on timeout, close or a frame we do not expect. */
static char *ws_read_text(int fd, int timeout_ms)
{
    unsigned char hdr[2], ext[8];
    uint64_t len;
    char *payload;

    if (read_full(fd, hdr, 2, timeout_ms) != 0)
        return NULL;
    if (hdr[0] != 0x81 || (hdr[1] & 0x80)) /* FIN + text, unmasked */
        return NULL;
    len = hdr[1] & 0x7f;
    if (len == 126) {
        if (read_full(fd, ext, 2, timeout_ms) != 0)
            return NULL;
        len = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (len == 127) {
        if (read_full(fd, ext, 8, timeout_ms) != 0)
            return NULL;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | ext[i];
    }
    if (len > 64u << 20)
        return NULL;
    payload = xmalloc(len + 1);
    if (read_full(fd, (unsigned char *)payload, len, timeout_ms) != 0) {
        free(payload);
        return NULL;
    }
    payload[len] = '\0';
    return payload;
}

/* Polls /api/state until it equals want or 5 s pass; 1 when it did. */
static int wait_state(int port, const char *want)
{
    for (int i = 0; i < 500; i++) {
        struct resp r;
        int same = request(port, NULL, "/api/state", NULL, &r) == CURLE_OK && r.status == 200 &&
                   strcmp(r.body.data, want) == 0;
        resp_free(&r);
        if (same)
            return 1;
        usleep(10000);
    }
    return 0;
}

/* ---- tests ---- */

TEST(start_on_port_zero_picks_a_port_and_stop_joins)
{
    struct httpd *h = start();
    CHECK(h != NULL);
    CHECK(httpd_port(h) > 0 && httpd_port(h) < 65536);
    httpd_stop(h);
    httpd_stop(NULL);
    httpd_publish(NULL, xstrdup("{}")); /* freed, no crash */
}

TEST(healthz_and_unknown_path)
{
    struct httpd *h = start();
    struct resp r;
    CHECK(h != NULL);
    CHECK_INT(request(httpd_port(h), NULL, "/healthz", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body.data, "ok\n");
    resp_free(&r);
    CHECK_INT(request(httpd_port(h), NULL, "/nope", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK_INT(request(httpd_port(h), NULL, "/ws", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 400); /* a plain GET of the WebSocket path */
    resp_free(&r);
    httpd_stop(h);
}

TEST(readyz_follows_the_ready_callback)
{
    struct httpd *h = start();
    struct resp r;
    CHECK(h != NULL);
    atomic_store(&ready_flag, 0);
    CHECK_INT(request(httpd_port(h), NULL, "/readyz", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 503);
    resp_free(&r);
    atomic_store(&ready_flag, 1);
    CHECK_INT(request(httpd_port(h), NULL, "/readyz", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    atomic_store(&ready_flag, 0);
    CHECK_INT(request(httpd_port(h), NULL, "/readyz", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 503);
    resp_free(&r);
    httpd_stop(h);
}

TEST(readyz_without_callback_is_ready)
{
    struct httpd_config cfg = {.addr = "127.0.0.1"};
    struct httpd *h = NULL;
    struct resp r;
    CHECK_INT(httpd_start(&cfg, &h, NULL), 0);
    CHECK_INT(request(httpd_port(h), NULL, "/readyz", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    httpd_stop(h);
}

TEST(metrics_endpoint_serves_the_registry_as_text_0_0_4)
{
    struct httpd *h = start();
    struct resp r;
    CHECK(h != NULL);
    metrics_reset();
    metrics_counter_add(METRICS_RECOVERIES, "policy=\"shop/web\",result=\"Recovered\"", 1);
    CHECK_INT(request(httpd_port(h), NULL, "/metrics", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK(has_header(&r, "content-type: text/plain; version=0.0.4; charset=utf-8"));
    CHECK(strstr(r.body.data,
                 "kvrecover_recoveries_total{policy=\"shop/web\",result=\"Recovered\"} 1\n") !=
          NULL);
    resp_free(&r);
    metrics_reset();
    httpd_stop(h);
}

TEST(other_methods_get_405_with_allow_get)
{
    static const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    struct httpd *h = start();
    CHECK(h != NULL);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct resp r;
        const char *body = strcmp(methods[i], "HEAD") && strcmp(methods[i], "DELETE") &&
                                   strcmp(methods[i], "OPTIONS")
                               ? "{\"x\":1}"
                               : NULL;
        CHECK_INT(request(httpd_port(h), methods[i], "/api/state", body, &r), CURLE_OK);
        if (r.status != 405)
            fprintf(stderr, "%s gave %ld\n", methods[i], r.status);
        CHECK_INT(r.status, 405);
        CHECK(has_header(&r, "allow: GET"));
        resp_free(&r);
    }
    /* The server still answers afterwards. */
    {
        struct resp r;
        CHECK_INT(request(httpd_port(h), NULL, "/healthz", NULL, &r), CURLE_OK);
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
    httpd_stop(h);
}

/* The embedded copy must be byte-for-byte the file in the source tree:
 * catches a dashboard edit without rerunning embed.sh. */
static void check_asset(int port, const char *path, const char *file, const char *ctype)
{
    struct buf want = {0};
    struct resp r;
    CHECK_INT(buf_read_file(&want, file, 1 << 20), 0);
    CHECK_INT(request(port, NULL, path, NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK(has_header(&r, ctype));
    CHECK(has_header(&r, "x-content-type-options: nosniff"));
    CHECK_INT(r.body.len, want.len);
    CHECK(memcmp(r.body.data, want.data, want.len) == 0);
    resp_free(&r);
    buf_free(&want);
}

TEST(dashboard_assets_are_the_files_in_controller_dashboard)
{
    struct httpd *h = start();
    struct resp r;
    CHECK(h != NULL);
    check_asset(httpd_port(h), "/", "controller/web/dashboard/index.html",
                "content-type: text/html; charset=utf-8");
    check_asset(httpd_port(h), "/index.html", "controller/web/dashboard/index.html",
                "content-type: text/html; charset=utf-8");
    check_asset(httpd_port(h), "/app.js", "controller/web/dashboard/app.js",
                "content-type: text/javascript; charset=utf-8");
    check_asset(httpd_port(h), "/style.css", "controller/web/dashboard/style.css",
                "content-type: text/css; charset=utf-8");
    check_asset(httpd_port(h), "/favicon.svg", "controller/web/dashboard/favicon.svg",
                "content-type: image/svg+xml");
    /* The page may load only its own script and style (no CDN, no inline). */
    CHECK_INT(request(httpd_port(h), NULL, "/", NULL, &r), CURLE_OK);
    CHECK(strstr(r.headers.data, "script-src 'self'") != NULL);
    CHECK(strstr(r.body.data, "://") == NULL); /* no absolute URL to anywhere */
    resp_free(&r);
    httpd_stop(h);
}

TEST(dashboard_script_never_uses_innerHTML)
{
    struct buf js = {0};
    CHECK_INT(buf_read_file(&js, "controller/web/dashboard/app.js", 1 << 20), 0);
    CHECK(strstr(js.data, "textContent") != NULL);
    CHECK(strstr(js.data, ".innerHTML") == NULL);
    CHECK(strstr(js.data, "outerHTML") == NULL);
    CHECK(strstr(js.data, "insertAdjacentHTML") == NULL);
    CHECK(strstr(js.data, "document.write") == NULL);
    buf_free(&js);
}

TEST(api_state_is_empty_object_then_the_latest_publish)
{
    struct httpd *h = start();
    CHECK(h != NULL);
    CHECK(wait_state(httpd_port(h), "{}"));
    httpd_publish(h, xstrdup("{\"policies\":[1]}"));
    CHECK(wait_state(httpd_port(h), "{\"policies\":[1]}"));
    /* Publishes faster than the server runs: the newest one wins. */
    for (int i = 0; i < 100; i++)
        httpd_publish(h, xasprintf("{\"n\":%d}", i));
    CHECK(wait_state(httpd_port(h), "{\"n\":99}"));
    httpd_stop(h);
}

TEST(websocket_gets_the_state_on_connect_and_on_every_publish)
{
    struct httpd *h = start();
    char status[128], *msg;
    int fd;
    CHECK(h != NULL);
    httpd_publish(h, xstrdup("{\"v\":1}"));
    CHECK(wait_state(httpd_port(h), "{\"v\":1}"));
    fd = ws_connect(httpd_port(h), "/ws", status, sizeof(status));
    CHECK(fd >= 0);
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{\"v\":1}");
    free(msg);
    httpd_publish(h, xstrdup("{\"v\":2}"));
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{\"v\":2}");
    free(msg);
    close(fd);
    httpd_stop(h);
}

TEST(websocket_elsewhere_than_ws_is_refused)
{
    struct httpd *h = start();
    char status[128];
    int fd;
    CHECK(h != NULL);
    fd = ws_connect(httpd_port(h), "/other", status, sizeof(status));
    CHECK_INT(fd, -1);
    httpd_stop(h);
}

TEST(large_state_arrives_whole_over_http_and_websocket)
{
    struct httpd *h = start();
    struct buf big = {0};
    struct resp r;
    char status[128], *msg;
    int fd;
    CHECK(h != NULL);
    buf_puts(&big, "{\"pad\":\"");
    for (int i = 0; i < 300000; i++)
        buf_append(&big, &"abcdefghij"[i % 10], 1);
    buf_puts(&big, "\"}");
    fd = ws_connect(httpd_port(h), "/ws", status, sizeof(status));
    CHECK(fd >= 0);
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{}");
    free(msg);
    httpd_publish(h, xstrdup(big.data));
    msg = ws_read_text(fd, 10000);
    CHECK(msg != NULL);
    CHECK_INT(strlen(msg), big.len);
    CHECK(strcmp(msg, big.data) == 0);
    free(msg);
    close(fd);
    CHECK_INT(request(httpd_port(h), NULL, "/api/state", NULL, &r), CURLE_OK);
    CHECK_INT(r.body.len, big.len);
    CHECK(strcmp(r.body.data, big.data) == 0);
    resp_free(&r);
    buf_free(&big);
    httpd_stop(h);
}

TEST(stop_with_clients_connected_closes_them)
{
    struct httpd *h = start();
    char status[128], *msg;
    unsigned char byte;
    int fd;
    CHECK(h != NULL);
    fd = ws_connect(httpd_port(h), "/ws", status, sizeof(status));
    CHECK(fd >= 0);
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{}");
    free(msg);
    httpd_stop(h); /* must not hang on the open connection */
    /* The client sees the connection end (a close frame, or EOF). */
    {
        struct pollfd pfd = {fd, POLLIN, 0};
        CHECK(poll(&pfd, 1, 5000) == 1);
        CHECK(read(fd, &byte, 1) <= 1);
    }
    close(fd);
}

TEST(busy_port_and_bad_address_are_errors_with_messages)
{
    struct httpd *h = start(), *h2 = NULL;
    struct httpd_config cfg = {.addr = "127.0.0.1"};
    char *err = NULL;
    CHECK(h != NULL);
    cfg.port = httpd_port(h);
    CHECK_INT(httpd_start(&cfg, &h2, &err), -EADDRINUSE);
    CHECK(h2 == NULL);
    CHECK(err != NULL && strstr(err, "in use") != NULL);
    free(err);
    err = NULL;
    cfg.addr = "not-an-address";
    cfg.port = 0;
    CHECK_INT(httpd_start(&cfg, &h2, &err), -EINVAL);
    CHECK(err != NULL && strstr(err, "not-an-address") != NULL);
    free(err);
    err = NULL;
    cfg.addr = NULL;
    cfg.port = 70000;
    CHECK_INT(httpd_start(&cfg, &h2, &err), -EINVAL);
    free(err);
    httpd_stop(h);
}

/* ---- Host and Origin: DNS rebinding, cross-site WebSocket hijacking ---- */

/* Reads one server frame of any kind: its opcode (and, for a close frame,
 * the status code in *code), or -1 on timeout or EOF. */
static int ws_read_frame(int fd, int timeout_ms, int *code)
{
    unsigned char hdr[2], ext[8], payload[256];
    size_t len;

    if (read_full(fd, hdr, 2, timeout_ms) != 0)
        return -1;
    len = hdr[1] & 0x7f;
    if (len == 126) {
        if (read_full(fd, ext, 2, timeout_ms) != 0)
            return -1;
        len = ((size_t)ext[0] << 8) | ext[1];
    } else if (len == 127) {
        return -1; /* not expected here */
    }
    while (len > 0) {
        size_t n = len > sizeof(payload) ? sizeof(payload) : len;
        if (read_full(fd, payload, n, timeout_ms) != 0)
            return -1;
        if ((hdr[0] & 0x0f) == 0x8 && code && n >= 2)
            *code = (payload[0] << 8) | payload[1];
        len -= n;
    }
    return hdr[0] & 0x0f;
}

/* True when the server closed fd (EOF or reset) within timeout_ms. */
static int closed_within(int fd, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    char b[256];

    for (;;) {
        ssize_t n;
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return 0;
        n = read(fd, b, sizeof(b));
        if (n <= 0)
            return 1;
    }
}

static struct httpd *start_cfg(struct httpd_config *cfg)
{
    struct httpd *h = NULL;
    char *err = NULL;
    int rc;

    if (cfg->addr == NULL)
        cfg->addr = "127.0.0.1";
    rc = httpd_start(cfg, &h, &err);
    if (rc != 0)
        fprintf(stderr, "httpd_start: %d %s\n", rc, err ? err : "");
    free(err);
    return h;
}

TEST(a_host_that_is_not_ours_is_refused_as_dns_rebinding_is)
{
    struct httpd *h = start();
    char host[64], ok[64];
    const char *const rebind[] = {host, NULL}, *const own[] = {ok, NULL},
                      *const none[] = {"Host:", NULL};
    struct req q = {.path = "/api/state", .headers = rebind};
    struct resp r;

    CHECK(h != NULL);
    httpd_publish(h, xstrdup("{\"secret\":\"policies\"}"));
    CHECK(wait_state(httpd_port(h), "{\"secret\":\"policies\"}"));
    q.port = httpd_port(h);
    snprintf(host, sizeof(host), "Host: attacker.example:%d", httpd_port(h));
    snprintf(ok, sizeof(ok), "Host: localhost:%d", httpd_port(h));
    CHECK_INT(request_ex(&q, &r), CURLE_OK);
    CHECK_INT(r.status, 403);
    CHECK(strstr(r.body.data, "policies") == NULL);
    resp_free(&r);
    static const char *const paths[] = {"/", "/app.js", "/metrics", "/healthz", "/readyz", "/x"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        CHECK_INT(status_with(httpd_port(h), paths[i], rebind), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", own), 200);
    /* curl leaves the header out: an HTTP/1.1 request without Host. */
    CHECK_INT(status_with(httpd_port(h), "/api/state", none), 400);
    httpd_stop(h);
}

TEST(a_request_from_a_foreign_origin_is_refused_and_our_own_page_is_served)
{
    struct httpd *h = start();
    char same[64], other_port[64];
    const char *const evil[] = {"Origin: http://attacker.example", NULL},
                      *const null_origin[] = {"Origin: null", NULL}, *const own[] = {same, NULL},
                      *const port[] = {other_port, NULL};

    CHECK(h != NULL);
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d", httpd_port(h));
    snprintf(other_port, sizeof(other_port), "Origin: http://127.0.0.1:%d", httpd_port(h) + 1);
    CHECK_INT(status_with(httpd_port(h), "/api/state", evil), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", null_origin), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", port), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", own), 200);
    CHECK_INT(status_with(httpd_port(h), "/api/state", NULL), 200); /* curl sends no Origin */
    httpd_stop(h);
}

TEST(a_websocket_upgrade_from_a_foreign_origin_is_refused_403_before_it_happens)
{
    struct httpd *h = start();
    char status[128], host[64], same[96], *msg;
    int fd;

    CHECK(h != NULL);
    httpd_publish(h, xstrdup("{\"v\":1}"));
    CHECK(wait_state(httpd_port(h), "{\"v\":1}"));
    fd = ws_connect_ex(httpd_port(h), "/ws", NULL, "Origin: http://attacker.example\r\n", status,
                       sizeof(status));
    CHECK_INT(fd, -1);
    CHECK(strstr(status, " 403 ") != NULL);
    fd = ws_connect_ex(httpd_port(h), "/ws", NULL, "Origin: null\r\n", status, sizeof(status));
    CHECK_INT(fd, -1);
    CHECK(strstr(status, " 403 ") != NULL);
    /* DNS rebinding: the attacker's page is same-origin with its own name. */
    snprintf(host, sizeof(host), "attacker.example:%d", httpd_port(h));
    snprintf(same, sizeof(same), "Origin: http://%s\r\n", host);
    fd = ws_connect_ex(httpd_port(h), "/ws", host, same, status, sizeof(status));
    CHECK_INT(fd, -1);
    CHECK(strstr(status, " 403 ") != NULL);
    /* Our own page's WebSocket works. */
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d\r\n", httpd_port(h));
    fd = ws_connect_ex(httpd_port(h), "/ws", NULL, same, status, sizeof(status));
    CHECK(fd >= 0);
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{\"v\":1}");
    free(msg);
    close(fd);
    /* So does one through a port-forward, whose local port differs. */
    snprintf(same, sizeof(same), "Origin: http://localhost:9999\r\n");
    fd = ws_connect_ex(httpd_port(h), "/ws", "localhost:9999", same, status, sizeof(status));
    CHECK(fd >= 0);
    close(fd);
    httpd_stop(h);
}

TEST(allowed_hosts_extend_the_names_and_refusals_are_counted_by_reason)
{
    static const char *const extra[] = {"kvrecover.example"};
    struct httpd_config cfg = {.allowed_hosts = extra, .n_allowed_hosts = 1};
    struct httpd *h;
    char host[64];
    const char *const named[] = {host, NULL}, *const evil[] = {"Origin: https://x.example", NULL};
    struct resp r;

    metrics_reset();
    h = start_cfg(&cfg);
    CHECK(h != NULL);
    snprintf(host, sizeof(host), "Host: kvrecover.example:%d", httpd_port(h));
    CHECK_INT(status_with(httpd_port(h), "/api/state", named), 200);
    snprintf(host, sizeof(host), "Host: other.example:%d", httpd_port(h));
    CHECK_INT(status_with(httpd_port(h), "/api/state", named), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", named), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", evil), 403);
    CHECK_INT(request(httpd_port(h), NULL, "/metrics", NULL, &r), CURLE_OK);
    CHECK(strstr(r.body.data, "kvrecover_http_refused_total{reason=\"host\"} 2\n") != NULL);
    CHECK(strstr(r.body.data, "kvrecover_http_refused_total{reason=\"origin\"} 1\n") != NULL);
    resp_free(&r);
    httpd_stop(h);
    metrics_reset();
}

/* ---- the probe listener ------------------------------------------------- */

TEST(the_probe_listener_serves_only_the_probes_and_checks_nothing_else)
{
    struct httpd_config cfg = {.probe = true, .probe_addr = "127.0.0.1", .ready = ready_cb};
    const char *const evil[] = {"Host: attacker.example", "Origin: null", NULL};
    char status[128];
    struct httpd *h = start_cfg(&cfg);
    int pp;

    CHECK(h != NULL);
    pp = httpd_probe_port(h);
    CHECK(pp > 0 && pp != httpd_port(h));
    atomic_store(&ready_flag, 1);
    CHECK_INT(status_with(pp, "/healthz", NULL), 200);
    CHECK_INT(status_with(pp, "/healthz", evil), 200);
    CHECK_INT(status_with(pp, "/readyz", NULL), 200);
    atomic_store(&ready_flag, 0);
    CHECK_INT(status_with(pp, "/readyz", NULL), 503);
    CHECK_INT(status_with(pp, "/api/state", NULL), 404);
    CHECK_INT(status_with(pp, "/metrics", NULL), 404);
    CHECK_INT(status_with(pp, "/", NULL), 404);
    CHECK_INT(ws_connect(pp, "/ws", status, sizeof(status)), -1);
    CHECK(strstr(status, " 404 ") != NULL);
    /* The probes stay on the main listener too. */
    CHECK_INT(status_with(httpd_port(h), "/healthz", NULL), 200);
    httpd_stop(h);
}

TEST(the_probe_listener_can_run_alone_and_something_must_listen)
{
    struct httpd_config cfg = {.port = -1, .probe = true, .probe_addr = "127.0.0.1"};
    struct httpd *h = start_cfg(&cfg), *none = NULL;
    char *err = NULL;

    CHECK(h != NULL);
    CHECK_INT(httpd_port(h), -1);
    CHECK_INT(status_with(httpd_probe_port(h), "/healthz", NULL), 200);
    httpd_publish(h, xstrdup("{}")); /* nobody to tell: freed */
    httpd_stop(h);
    cfg.probe = false;
    CHECK_INT(httpd_start(&cfg, &none, &err), -EINVAL);
    CHECK(none == NULL && err != NULL);
    free(err);
}

/* ---- bearer tokens -------------------------------------------------------- */

/* The fake authorizer: "viewer" may get everything, "reader" /metrics only,
 * "discovery" /api and below as every authenticated user may by Kubernetes' default
 * roles, "broken" cannot be decided, anything else is not a valid token.
 * Every path it is asked about must be one httpd documents. */
static atomic_int authorize_calls, authorize_odd_paths;

static int fake_authorize(void *ud, const char *token, const char *path, const char *verb)
{
    (void)ud;
    atomic_fetch_add(&authorize_calls, 1);
    if (strcmp(path, "/metrics") != 0 && strcmp(path, HTTPD_AUTHZ_DASHBOARD_PATH) != 0)
        atomic_fetch_add(&authorize_odd_paths, 1);
    usleep(20000); /* a review takes a round trip or two */
    if (strcmp(verb, "get") != 0)
        return AUTHZ_FORBIDDEN;
    if (strcmp(token, "broken") == 0)
        return -ETIMEDOUT;
    if (strcmp(token, "viewer") == 0)
        return AUTHZ_ALLOW;
    if (strcmp(token, "reader") == 0)
        return strcmp(path, "/metrics") == 0 ? AUTHZ_ALLOW : AUTHZ_FORBIDDEN;
    if (strcmp(token, "discovery") == 0)
        return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 ? AUTHZ_ALLOW
                                                                           : AUTHZ_FORBIDDEN;
    return AUTHZ_UNAUTHENTICATED;
}

static struct httpd *start_auth(enum httpd_auth mode, const char *addr)
{
    struct httpd_config cfg = {
        .addr = addr, .auth = mode, .authorize = fake_authorize, .ready = ready_cb};

    atomic_store(&authorize_calls, 0);
    atomic_store(&authorize_odd_paths, 0);
    atomic_store(&ready_flag, 1);
    return start_cfg(&cfg);
}

TEST(with_token_auth_no_token_is_401_with_a_bearer_challenge)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    static const char *const bad[][2] = {{"Authorization: Basic dXNlcjpwdw==", NULL},
                                         {"Authorization: Bearer", NULL},
                                         {"Authorization: Bearer a b", NULL},
                                         {"Authorization: Bearer ", NULL}};
    struct resp r;

    CHECK(h != NULL);
    CHECK_INT(request(httpd_port(h), NULL, "/api/state", NULL, &r), CURLE_OK);
    CHECK_INT(r.status, 401);
    CHECK(has_header(&r, "www-authenticate: Bearer realm=\"kvrecover\""));
    resp_free(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(status_with(httpd_port(h), "/metrics", bad[i]), 401);
    CHECK_INT(atomic_load(&authorize_calls), 0); /* nothing worth asking about */
    httpd_stop(h);
}

TEST(with_token_auth_the_role_decides_and_a_decision_is_cached)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    const char *const reader[] = {"Authorization: Bearer reader", NULL},
                      *const viewer[] = {"authorization: bearer viewer", NULL},
                      *const forged[] = {"Authorization: Bearer forged", NULL};
    struct req q = {.path = "/metrics", .headers = reader};
    struct resp r;

    CHECK(h != NULL);
    q.port = httpd_port(h);
    CHECK_INT(request_ex(&q, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "# TYPE kvrecover_http_refused_total counter") != NULL);
    resp_free(&r);
    CHECK_INT(status_with(httpd_port(h), "/metrics", reader), 200);
    CHECK_INT(status_with(httpd_port(h), "/metrics", reader), 200);
    CHECK_INT(atomic_load(&authorize_calls), 1); /* one review, three scrapes */
    CHECK_INT(status_with(httpd_port(h), "/api/state", reader), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", viewer), 200);
    CHECK_INT(status_with(httpd_port(h), "/", viewer), 200);
    CHECK_INT(status_with(httpd_port(h), "/api/state", forged), 401);
    CHECK_INT(status_with(httpd_port(h), "/api/state", forged), 401);
    CHECK_INT(atomic_load(&authorize_calls), 4); /* the forged token's 401 is cached too,
                                                    and / is decided with /api/state */
    /* The probes need no token. */
    CHECK_INT(status_with(httpd_port(h), "/healthz", NULL), 200);
    CHECK_INT(status_with(httpd_port(h), "/readyz", NULL), 200);
    httpd_stop(h);
}

/* Found end to end: a SubjectAccessReview of "/api/state" itself is
 * allowed for every ServiceAccount (system:discovery grants /api and below), so
 * the dashboard's paths are asked about as HTTPD_AUTHZ_DASHBOARD_PATH,
 * once for all of them. */
TEST(the_dashboard_paths_are_authorized_as_one_path_that_kubernetes_grants_nobody)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    const char *const discovery[] = {"Authorization: Bearer discovery", NULL},
                      *const viewer[] = {"Authorization: Bearer viewer", NULL};

    CHECK(h != NULL);
    CHECK_INT(status_with(httpd_port(h), "/api/state", discovery), 403);
    CHECK_INT(status_with(httpd_port(h), "/metrics", discovery), 403);
    CHECK_INT(status_with(httpd_port(h), "/api/state", viewer), 200);
    CHECK_INT(status_with(httpd_port(h), "/", viewer), 200);
    CHECK_INT(status_with(httpd_port(h), "/app.js", viewer), 200);
    CHECK_INT(status_with(httpd_port(h), "/no/such/page", viewer), 404);
    CHECK_INT(atomic_load(&authorize_calls), 3); /* discovery twice, viewer once */
    CHECK_INT(atomic_load(&authorize_odd_paths), 0);
    httpd_stop(h);
}

TEST(an_undecidable_token_is_503_and_asked_again)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    const char *const broken[] = {"Authorization: Bearer broken", NULL};

    CHECK(h != NULL);
    CHECK_INT(status_with(httpd_port(h), "/metrics", broken), 503);
    CHECK_INT(status_with(httpd_port(h), "/metrics", broken), 503);
    CHECK_INT(atomic_load(&authorize_calls), 2);
    httpd_stop(h);
}

TEST(a_websocket_with_token_auth_gets_the_state_only_once_allowed)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    char status[128], *msg;
    int fd, code = 0;

    CHECK(h != NULL);
    httpd_publish(h, xstrdup("{\"v\":7}"));
    CHECK(wait_state(httpd_port(h), "{}") || 1);
    /* No token: refused with a status, before the upgrade. */
    CHECK_INT(ws_connect(httpd_port(h), "/ws", status, sizeof(status)), -1);
    CHECK(strstr(status, " 401 ") != NULL);
    /* Allowed: the state arrives once the decision has. */
    fd = ws_connect_ex(httpd_port(h), "/ws", NULL, "Authorization: Bearer viewer\r\n", status,
                       sizeof(status));
    CHECK(fd >= 0);
    msg = ws_read_text(fd, 5000);
    CHECK_STR(msg, "{\"v\":7}");
    free(msg);
    close(fd);
    /* Forbidden: a close frame (1008, policy violation) and no state. */
    fd = ws_connect_ex(httpd_port(h), "/ws", NULL, "Authorization: Bearer reader\r\n", status,
                       sizeof(status));
    CHECK(fd >= 0);
    CHECK_INT(ws_read_frame(fd, 5000, &code), 0x8);
    CHECK_INT(code, 1008);
    close(fd);
    /* Now that the denial is cached, it is refused before the upgrade. */
    CHECK_INT(ws_connect_ex(httpd_port(h), "/ws", NULL, "Authorization: Bearer reader\r\n", status,
                            sizeof(status)),
              -1);
    CHECK(strstr(status, " 403 ") != NULL);
    httpd_stop(h);
}

TEST(a_client_that_leaves_while_its_decision_is_made_is_forgotten)
{
    struct httpd *h = start_auth(HTTPD_AUTH_TOKEN, NULL);
    char req[256];
    int fd;

    CHECK(h != NULL);
    for (int i = 0; i < 20; i++) {
        fd = tcp_connect(httpd_port(h), NULL);
        CHECK(fd >= 0);
        snprintf(req, sizeof(req),
                 "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t%d\r\n\r\n",
                 i);
        CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
        close(fd); /* gone before the 20 ms review ends */
    }
    usleep(300000);
    CHECK_INT(status_with(httpd_port(h), "/healthz", NULL), 200);
    httpd_stop(h);
}

/* A non-loopback IPv4 address of this machine into out, or 0 when it has
 * none. */
static int local_ipv4(char *out, size_t len)
{
    struct ifaddrs *ifs = NULL;
    int found = 0;

    if (getifaddrs(&ifs) != 0)
        return 0;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)i->ifa_addr;
        if (a == NULL || a->sin_family != AF_INET || (ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        found = inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)len) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

TEST(auto_auth_asks_a_token_of_every_peer_but_loopback)
{
    char ip[64];
    struct httpd *h;
    const char *const viewer[] = {"Authorization: Bearer viewer", NULL};
    struct req q = {.ip = ip, .path = "/api/state"};
    struct resp r;

    if (!local_ipv4(ip, sizeof(ip))) {
        fprintf(stderr, "# skipped: this machine has no IPv4 address but loopback\n");
        return;
    }
    h = start_auth(HTTPD_AUTH_AUTO, "0.0.0.0");
    CHECK(h != NULL);
    q.port = httpd_port(h);
    CHECK_INT(request_ex(&q, &r), CURLE_OK);
    CHECK_INT(r.status, 401); /* the peer is this machine's own non-loopback address */
    resp_free(&r);
    q.headers = viewer;
    CHECK_INT(request_ex(&q, &r), CURLE_OK);
    CHECK_INT(r.status, 200); /* Host: the address it arrived on */
    resp_free(&r);
    CHECK_INT(status_with(httpd_port(h), "/api/state", NULL), 200); /* loopback */
    httpd_stop(h);
}

TEST(auto_auth_beyond_loopback_needs_an_authorizer)
{
    struct httpd_config cfg = {.addr = "0.0.0.0"};
    struct httpd *h = NULL;
    char *err = NULL;

    CHECK_INT(httpd_start(&cfg, &h, &err), -EINVAL);
    CHECK(err != NULL && strstr(err, "authorizer") != NULL);
    free(err);
    err = NULL;
    cfg.auth = HTTPD_AUTH_NONE; /* the operator's explicit choice (logged) */
    CHECK_INT(httpd_start(&cfg, &h, &err), 0);
    httpd_stop(h);
    cfg.addr = "127.0.0.1";
    cfg.auth = HTTPD_AUTH_AUTO;
    CHECK_INT(httpd_start(&cfg, &h, &err), 0);
    httpd_stop(h);
}

/* ---- connections per peer, idle connections ------------------------------- */

TEST(one_peer_holds_at_most_max_per_peer_connections_and_others_are_served)
{
    struct httpd_config cfg = {.max_per_peer = 4};
    struct httpd *h = start_cfg(&cfg);
    struct req q = {.source = "127.0.0.2", .path = "/healthz"};
    struct resp r;
    int fd[4], extra;

    CHECK(h != NULL);
    q.port = httpd_port(h);
    for (int i = 0; i < 4; i++) {
        fd[i] = tcp_connect(httpd_port(h), "127.0.0.2");
        CHECK(fd[i] >= 0);
    }
    usleep(100000);
    extra = tcp_connect(httpd_port(h), "127.0.0.2");
    CHECK(extra >= 0);
    CHECK(closed_within(extra, 5000)); /* the fifth is closed at once */
    close(extra);
    CHECK_INT(status_with(httpd_port(h), "/healthz", NULL), 200); /* another peer */
    CHECK(!closed_within(fd[0], 100));
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    /* Their places are given back once they are closed. */
    for (int i = 0; i < 50; i++) {
        if (request_ex(&q, &r) == CURLE_OK && r.status == 200) {
            resp_free(&r);
            break;
        }
        resp_free(&r);
        usleep(20000);
    }
    CHECK_INT(request_ex(&q, &r), CURLE_OK);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    httpd_stop(h);
}

/* Issue 12: 400 idle TCP connections from one peer made 12 of 13 /healthz
 * probes fail over 50 s. Now the probe listener is out of their reach and
 * the main listener keeps room for other peers. Each probe is given the
 * kubelet's default timeout, one second. */
TEST(four_hundred_idle_connections_from_one_peer_fail_no_probe)
{
    struct httpd_config cfg = {.probe = true, .probe_addr = "127.0.0.1", .ready = ready_cb};
    struct httpd *h = start_cfg(&cfg);
    static int fds[800];
    int n = 0, failed = 0;

    CHECK(h != NULL);
    atomic_store(&ready_flag, 1);
    for (int i = 0; i < 400; i++) {
        fds[n] = tcp_connect(httpd_port(h), "127.0.0.3");
        if (fds[n] >= 0)
            n++;
        fds[n] = tcp_connect(httpd_probe_port(h), "127.0.0.3");
        if (fds[n] >= 0)
            n++;
    }
    CHECK(n >= 400);
    for (int i = 0; i < 13; i++) {
        struct req probe = {.port = httpd_probe_port(h),
                            .path = i % 2 ? "/readyz" : "/healthz",
                            .timeout_ms = 1000};
        struct req main = {.port = httpd_port(h), .path = "/healthz", .timeout_ms = 1000};
        struct resp r;
        failed += request_ex(&probe, &r) != CURLE_OK || r.status != 200;
        resp_free(&r);
        failed += request_ex(&main, &r) != CURLE_OK || r.status != 200;
        resp_free(&r);
        usleep(50000);
    }
    CHECK_INT(failed, 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    httpd_stop(h);
}

TEST(a_connection_without_a_complete_request_is_closed_after_idle_seconds)
{
    struct httpd_config cfg = {.idle_seconds = 1};
    struct httpd *h = start_cfg(&cfg);
    const char *partial = "GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    int silent, slow;

    CHECK(h != NULL);
    silent = tcp_connect(httpd_port(h), NULL);
    slow = tcp_connect(httpd_port(h), NULL);
    CHECK(silent >= 0 && slow >= 0);
    CHECK(write(slow, partial, strlen(partial)) == (ssize_t)strlen(partial));
    CHECK(closed_within(silent, 8000));
    for (int i = 0; i < 3; i++) { /* a byte a second does not keep it open */
        usleep(300000);
        if (write(slow, "x", 1) != 1)
            break;
    }
    CHECK(closed_within(slow, 8000));
    close(silent);
    close(slow);
    httpd_stop(h);
}

/* Sends a masked pong (client frames are masked). */
static int ws_pong(int fd)
{
    const unsigned char frame[] = {0x8A, 0x80, 1, 2, 3, 4};
    return write(fd, frame, sizeof(frame)) == (ssize_t)sizeof(frame) ? 0 : -1;
}

TEST(a_websocket_that_does_not_answer_pings_is_closed)
{
    struct httpd_config cfg = {.ws_ping_seconds = 1};
    struct httpd *h = start_cfg(&cfg);
    char status[128], *msg;
    int quiet, alive, op, pongs = 0;

    CHECK(h != NULL);
    quiet = ws_connect(httpd_port(h), "/ws", status, sizeof(status));
    alive = ws_connect(httpd_port(h), "/ws", status, sizeof(status));
    CHECK(quiet >= 0 && alive >= 0);
    msg = ws_read_text(quiet, 5000);
    free(msg);
    msg = ws_read_text(alive, 5000);
    free(msg);
    /* alive answers every ping for four seconds and stays open. */
    for (int i = 0; i < 40; i++) {
        op = ws_read_frame(alive, 100, NULL);
        if (op == 0x9) {
            CHECK_INT(ws_pong(alive), 0);
            pongs++;
        }
        CHECK(op != 0x8);
    }
    CHECK(pongs >= 2);
    CHECK(closed_within(quiet, 5000));
    CHECK(!closed_within(alive, 10));
    close(quiet);
    close(alive);
    httpd_stop(h);
}
