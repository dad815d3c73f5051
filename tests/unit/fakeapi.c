/*
 * fakeapi — a tiny HTTPS/1.1 test server. See fakeapi.h.
 *
 * Blocking sockets with poll() before every read, so that each thread
 * notices fake_stop() within a tenth of a second. One TLS record per chunk
 * written, so that the client sees the chunk boundaries the test chose.
 */
#include "fakeapi.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "base/xalloc.h"
#include "harness.h"

#define FAKE_POLL_MS 100
#define FAKE_MAX_HEAD (64u << 10)

struct fake_conn {
    struct fake_server *s;  /* the server */
    int fd;                 /* the accepted socket */
    SSL *ssl;               /* its TLS session */
    pthread_t thread;       /* serving it */
    bool closed;            /* fake_close() or a failed write */
    struct fake_conn *next; /* all connections, for fake_stop() */
};

struct fake_server {
    int fd;                  /* listening socket */
    int port;                /* its port */
    SSL_CTX *ctx;            /* server TLS context */
    fake_handler_fn fn;      /* the test's handler */
    void *ud;                /* for fn */
    pthread_t acceptor;      /* the accept loop */
    atomic_bool stopping;    /* fake_stop() called */
    pthread_mutex_t lock;    /* guards conns, log, count */
    struct fake_conn *conns; /* every connection accepted */
    struct buf log;          /* "METHOD PATH\n" per request */
    int count;               /* requests so far */
};

/* Waits until fd is readable or the server stops; true when readable. */
static bool fake__readable(struct fake_conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    while (!atomic_load(&c->s->stopping)) {
        int n = poll(&p, 1, FAKE_POLL_MS);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
    return false;
}

/* Reads more bytes into b. Returns false at EOF, on error or at stop. */
static bool fake__read_more(struct fake_conn *c, struct buf *b)
{
    char tmp[16384];
    int n;

    if (SSL_pending(c->ssl) == 0 && !fake__readable(c))
        return false;
    n = SSL_read(c->ssl, tmp, sizeof(tmp));
    if (n <= 0)
        return false;
    buf_append(b, tmp, (size_t)n);
    return true;
}

static void fake__header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);

    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            const char *end = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t n = end ? (size_t)(end - v) : strlen(v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

/* Collects every header line whose name starts with "Impersonate-" into
 * out, one "Name: value\n" each, in the order sent (the client's
 * impersonation tests check exactly what went out). */
static void fake__impersonate(const char *head, char *out, size_t cap)
{
    static const char prefix[] = "impersonate-";
    size_t used = 0;

    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        const char *end = strstr(line, "\r\n");
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (strncasecmp(line, prefix, sizeof(prefix) - 1) != 0 || used + n + 2 > cap)
            continue;
        memcpy(out + used, line, n);
        used += n;
        out[used++] = '\n';
        out[used] = '\0';
    }
}

/* Reads one request from in (which may already hold bytes of it) into req;
 * bytes after it stay in in. Returns false when the connection ends. */
static bool fake__read_request(struct fake_conn *c, struct buf *in, struct fake_req *req)
{
    char *end, clen[32];
    size_t head_len, body_len;

    while ((end = in->data ? strstr(in->data, "\r\n\r\n") : NULL) == NULL) {
        if (in->len > FAKE_MAX_HEAD || !fake__read_more(c, in))
            return false;
    }
    head_len = (size_t)(end - in->data) + 4;
    *end = '\0';
    memset(req, 0, sizeof(*req));
    {
        const char *sp1 = strchr(in->data, ' ');
        const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (sp1 == NULL || sp2 == NULL || (size_t)(sp1 - in->data) >= sizeof(req->method) ||
            (size_t)(sp2 - sp1 - 1) >= sizeof(req->path))
            return false;
        memcpy(req->method, in->data, (size_t)(sp1 - in->data));
        req->method[sp1 - in->data] = '\0';
        memcpy(req->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
        req->path[sp2 - sp1 - 1] = '\0';
    }
    fake__header(in->data, "authorization", req->auth, sizeof(req->auth));
    fake__header(in->data, "content-type", req->content_type, sizeof(req->content_type));
    fake__impersonate(in->data, req->impersonate, sizeof(req->impersonate));
    fake__header(in->data, "content-length", clen, sizeof(clen));
    body_len = clen[0] ? strtoul(clen, NULL, 10) : 0;
    *end = '\r';
    while (in->len < head_len + body_len)
        if (!fake__read_more(c, in))
            return false;
    req->body = xstrndup(in->data + head_len, body_len);
    req->body_len = body_len;
    buf_consume(in, head_len + body_len);
    return true;
}

static bool fake__write(struct fake_conn *c, const char *data, size_t len)
{
    if (c->closed)
        return false;
    while (len > 0) {
        int n = SSL_write(c->ssl, data, (int)len);
        if (n <= 0) {
            c->closed = true;
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static const char *fake__reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void fake_reply(struct fake_conn *c, int status, const char *headers, const char *body)
{
    struct buf b = {0};
    size_t n = body ? strlen(body) : 0;

    buf_printf(&b,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
               status, fake__reason(status), n, headers ? headers : "");
    if (body)
        buf_append(&b, body, n);
    fake__write(c, b.data, b.len);
    buf_free(&b);
}

void fake_stream_begin(struct fake_conn *c)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";

    fake__write(c, head, sizeof(head) - 1);
}

bool fake_stream_send(struct fake_conn *c, const char *data, size_t len)
{
    struct buf b = {0};
    bool ok;

    if (len == 0)
        return !c->closed; /* a zero chunk would end the stream */
    buf_printf(&b, "%zx\r\n", len);
    buf_append(&b, data, len);
    buf_puts(&b, "\r\n");
    ok = fake__write(c, b.data, b.len);
    buf_free(&b);
    return ok;
}

void fake_stream_end(struct fake_conn *c)
{
    fake__write(c, "0\r\n\r\n", 5);
}

bool fake_stream_wait(struct fake_conn *c, long ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    for (long waited = 0; waited < ms; waited += FAKE_POLL_MS) {
        if (atomic_load(&c->s->stopping) || c->closed)
            return true;
        /* The client sends nothing during a response: anything readable
         * is its close (a TLS alert or EOF). */
        if (poll(&p, 1, FAKE_POLL_MS) > 0)
            return true;
    }
    return atomic_load(&c->s->stopping);
}

void fake_close(struct fake_conn *c)
{
    c->closed = true;
}

static void *fake__serve(void *arg)
{
    struct fake_conn *c = arg;
    struct fake_server *s = c->s;
    struct buf in = {0};

    if (SSL_accept(c->ssl) != 1)
        goto out;
    while (!c->closed && !atomic_load(&s->stopping)) {
        struct fake_req req;
        if (!fake__read_request(c, &in, &req))
            break;
        pthread_mutex_lock(&s->lock);
        req.index = s->count++;
        buf_printf(&s->log, "%s %s\n", req.method, req.path);
        pthread_mutex_unlock(&s->lock);
        s->fn(s->ud, &req, c);
        free(req.body);
    }
out:
    buf_free(&in);
    SSL_shutdown(c->ssl);
    shutdown(c->fd, SHUT_RDWR);
    return NULL;
}

static void *fake__accept(void *arg)
{
    struct fake_server *s = arg;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};

    while (!atomic_load(&s->stopping)) {
        if (poll(&p, 1, FAKE_POLL_MS) <= 0)
            continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            continue;
        struct fake_conn *c = xcalloc(1, sizeof(*c));
        c->s = s;
        c->fd = fd;
        c->ssl = SSL_new(s->ctx);
        SSL_set_fd(c->ssl, fd);
        pthread_mutex_lock(&s->lock);
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_unlock(&s->lock);
        pthread_create(&c->thread, NULL, fake__serve, c);
    }
    return NULL;
}

struct fake_server *fake_start(fake_handler_fn fn, void *ud)
{
    struct fake_server *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    char cert[1024], key[1024];

    signal(SIGPIPE, SIG_IGN); /* writes to a client that went away */
    s->fn = fn;
    s->ud = ud;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->stopping, false);
    snprintf(cert, sizeof(cert), "%s", harness_fixture("kube-test-server.pem"));
    snprintf(key, sizeof(key), "%s", harness_fixture("kube-test-server-key.pem"));
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL || SSL_CTX_use_certificate_chain_file(s->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1)
        goto fail;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 64) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->acceptor, NULL, fake__accept, s) != 0)
        goto fail;
    return s;
fail:
    ERR_print_errors_fp(stderr);
    if (s->fd > 0)
        close(s->fd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

void fake_stop(struct fake_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    pthread_join(s->acceptor, NULL);
    while (s->conns) {
        struct fake_conn *c = s->conns;
        s->conns = c->next;
        pthread_join(c->thread, NULL);
        SSL_free(c->ssl);
        close(c->fd);
        free(c);
    }
    close(s->fd);
    SSL_CTX_free(s->ctx);
    buf_free(&s->log);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct kubeconfig *fake_kubeconfig(struct fake_server *s, const char *token)
{
    struct kubeconfig *c = xcalloc(1, sizeof(*c));

    c->server = xasprintf("https://127.0.0.1:%d", s->port);
    c->ca_file = xstrdup(harness_fixture("kube-test-ca.pem"));
    c->token = xstrdup(token);
    c->context = xstrdup("fake");
    c->source = xstrdup("fakeapi");
    return c;
}

char *fake_log(struct fake_server *s)
{
    char *out;

    pthread_mutex_lock(&s->lock);
    out = xstrdup(s->log.data ? s->log.data : "");
    pthread_mutex_unlock(&s->lock);
    return out;
}

int fake_count(struct fake_server *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}
