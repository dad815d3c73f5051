/*
 * Tests for httpd: a real server on a free port, driven by libcurl for
 * HTTP and by a raw-socket WebSocket client (libcurl 7.88 cannot speak
 * WebSocket) — every endpoint, 404/405, readiness toggling, publish seen on
 * /api/state and pushed to a connected WebSocket, large bodies, and that
 * the embedded dashboard is the one in controller/web/dashboard/.
 */
#include <curl/curl.h>
#include <errno.h>
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

/* One request with method (NULL = GET) and optional body. Returns the curl
 * code; the response in *r (free with resp_free). */
static CURLcode request(int port, const char *method, const char *path, const char *body,
                        struct resp *r)
{
    CURL *c = curl_easy_init();
    char url[256];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (method != NULL && strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method != NULL)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    if (r->body.data == NULL)
        buf_puts(&r->body, "");
    if (r->headers.data == NULL)
        buf_puts(&r->headers, "");
    return rc;
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
    struct httpd_config cfg = {"127.0.0.1", 0, ready_cb, NULL};
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

/* Connects and sends the upgrade request for path; returns the fd after a
 * 101 answer, or -1 (the status line, if any, in status). */
static int ws_connect(int port, const char *path, char *status, size_t status_len)
{
    struct sockaddr_in sa = {0};
    char req[512], resp[2048];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    status[0] = '\0';
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail;
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             path, port);
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
    struct httpd_config cfg = {"127.0.0.1", 0, NULL, NULL};
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
    struct httpd_config cfg = {"127.0.0.1", 0, NULL, NULL};
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
