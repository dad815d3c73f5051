/*
 * fakeapi — a tiny HTTPS/1.1 server on 127.0.0.1 for unit tests of the API
 * client and the reflector, so that they run the real libcurl path (TLS
 * verified against tests/fixtures/kube-test-ca.pem, keep-alive, chunked
 * streams, aborted transfers) without a cluster.
 *
 * Each connection is served by a thread of its own; every request is passed
 * to the test's handler, which answers with fake_reply() or streams with
 * fake_stream_*(). Handlers may run concurrently (a watch and a list): keep
 * shared state under a lock or in atomics. It is test code: it trusts its
 * client, and gives up on anything it does not expect.
 */
#ifndef KVR_FAKEAPI_H
#define KVR_FAKEAPI_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/kubeconfig.h"

struct fake_server;
struct fake_conn;

/* One request as received. */
struct fake_req {
    char method[16];        /* "GET", "PUT", ... */
    char path[2048];        /* path and query, as sent */
    char auth[512];         /* Authorization header value, or "" */
    char content_type[128]; /* Content-Type header value, or "" */
    char impersonate[1024]; /* every Impersonate-* header line, as sent
                               ("Name: value"), each ending "\n"; or "" */
    char *body;             /* NUL-terminated body ("" when none) */
    size_t body_len;        /* bytes in body */
    int index;              /* 0-based order of arrival on the server */
};

/* Answers req on c; runs on the connection's thread. Must answer exactly
 * once (fake_reply, or fake_stream_begin ... fake_stream_end), or call
 * fake_close() to drop the connection without an answer. */
typedef void (*fake_handler_fn)(void *ud, const struct fake_req *req, struct fake_conn *c);

/** Starts a server on an ephemeral port of 127.0.0.1. NULL on failure. */
struct fake_server *fake_start(fake_handler_fn fn, void *ud);

/** Stops accepting, ends every connection (streams see fake_stream_wait()
 *  return true) and joins every thread, then frees s. NULL is fine. */
void fake_stop(struct fake_server *s);

/** A kubeconfig for s: server https://127.0.0.1:PORT, the test CA, and
 *  token (may be NULL). Free with kubeconfig_free(). */
struct kubeconfig *fake_kubeconfig(struct fake_server *s, const char *token);

/** The requests so far, one "METHOD PATH\n" line each, in order of arrival.
 *  A new string; the caller frees it. */
char *fake_log(struct fake_server *s);

/** How many requests have arrived. */
int fake_count(struct fake_server *s);

/** Sends a whole response: status, extra header lines (each ending "\r\n";
 *  may be NULL), and a JSON body (may be NULL). */
void fake_reply(struct fake_conn *c, int status, const char *headers, const char *body);

/** Starts a chunked 200 response (a watch). */
void fake_stream_begin(struct fake_conn *c);

/** Sends data[0..len) as one chunk and flushes it. Returns false once the
 *  client has gone away. */
bool fake_stream_send(struct fake_conn *c, const char *data, size_t len);

/** Ends the chunked response; the connection stays open for the next one. */
void fake_stream_end(struct fake_conn *c);

/** Waits up to ms for the client to close the connection or the server to
 *  stop. Returns true when either happened. */
bool fake_stream_wait(struct fake_conn *c, long ms);

/** Drops the connection at once (no response, or mid-stream). */
void fake_close(struct fake_conn *c);

#endif
