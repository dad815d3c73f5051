/*
 * guard — who may talk to the HTTP side: the Host and Origin checks, which
 * peers are loopback, and how many connections one peer may hold.
 *
 * Two browser attacks reach a server on 127.0.0.1 from any web page its
 * admin opens. DNS rebinding: a page on attacker.example whose name is
 * then made to resolve to 127.0.0.1 talks to us as its own origin, and
 * only the Host header says so (it reads attacker.example). Cross-site
 * WebSocket hijacking: any page may open ws://127.0.0.1:8080/ws (the
 * same-origin policy does not cover WebSockets), and only the Origin
 * header says so. Hence: every request's Host must name us, and a request
 * that carries an Origin must come from a page we served under that Host.
 *
 * Pure functions and one small table: nothing here opens a socket,
 * resolves a name or blocks, so httpd calls it on its service thread and
 * the tests call it directly. It must never accept a Host or an Origin it
 * cannot parse completely, and it compares names as text and IP literals
 * as addresses, never by resolving anything.
 */
#ifndef KVR_GUARD_H
#define KVR_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest host name we compare (DNS allows 253 characters). */
#define GUARD_NAME_MAX 253

struct guard_hosts; /* the names a Host may carry; immutable once made */

/**
 * Makes the allow-list of Host values: `localhost`, `127.0.0.1` and
 * `[::1]` with any port (kubectl port-forward picks the local port),
 * bind_addr with any port when it is a specific IP literal (NULL, "" and
 * the wildcards 0.0.0.0 and :: add nothing: guard_host_check() then takes
 * the address each connection arrived on), and each of extra[0..n):
 * `NAME`, `NAME:PORT`, `IPV4[:PORT]` or `[IPV6][:PORT]` — without a port
 * any port matches, with one only that port (absent in a Host means 80).
 * Names are letters, digits, '.', '-' and '_', compared case-insensitively.
 * Returns 0 and *out (free with guard_hosts_free()), or -EINVAL and, when
 * err is not NULL, a message naming the bad entry in *err (caller frees).
 */
int guard_hosts_new(const char *bind_addr, const char *const *extra, size_t n,
                    struct guard_hosts **out, char **err);

/** Frees g. NULL is fine. */
void guard_hosts_free(struct guard_hosts *g);

/**
 * Checks a Host header value (NULL when the request had none) for a
 * connection that arrived on the local address local (may be NULL). The
 * value must be exactly one authority, `NAME[:PORT]`, `IPV4[:PORT]` or
 * `[IPV6][:PORT]`. Accepted when it matches an entry of g, or when it is
 * an IP literal equal to local (the listener bound to every address is
 * reached by the pod's own IP; no rebinding attack can send a literal).
 * Returns 0 when accepted, -EINVAL when missing or malformed, -EPERM when
 * it names another host.
 */
int guard_host_check(const struct guard_hosts *g, const char *host, const struct sockaddr *local);

/**
 * Checks an Origin header value against the request's Host value (one
 * that guard_host_check() accepted). Same origin means `http://` or
 * `https://` followed by exactly the Host's authority, compared
 * case-insensitively, a port equal to the scheme's default being the same
 * as none. Returns 0 when same origin; -EPERM for anything else: `null`,
 * another host or port, a path, a list, or an unparsable value.
 */
int guard_origin_check(const char *origin, const char *host);

/** True when sa is a loopback address: 127.0.0.0/8, ::1, or an IPv4-mapped
 *  127.0.0.0/8 (a dual-stack socket's IPv4 peer). False for NULL. */
bool guard_is_loopback(const struct sockaddr *sa);

/** True when addr is an IP literal in loopback space ("127.0.0.1", "::1");
 *  false for NULL, "", names and the wildcards. */
bool guard_addr_is_loopback(const char *addr);

/**
 * Writes sa's address as text ("10.1.2.3", "fd00::1"; an IPv4-mapped
 * address as IPv4) into out (at least 48 bytes); "?" when sa is NULL or
 * not IP. For logs.
 */
void guard_addr_text(const struct sockaddr *sa, char *out, size_t len);

/* ---- connections per peer ---------------------------------------------- */

struct guard_peers; /* a table of peer addresses and their open connections */

/**
 * A table for at most capacity connections (> 0), of which one peer
 * address may hold max_per_peer (> 0). An IPv4 peer reaching a dual-stack
 * socket counts as its IPv4 address. Not thread-safe: each server thread
 * keeps its own. Free with guard_peers_free().
 */
struct guard_peers *guard_peers_new(int max_per_peer, int capacity);

/** Frees p. NULL is fine. */
void guard_peers_free(struct guard_peers *p);

/**
 * Counts a new connection from sa. Returns a handle (>= 0) to give to
 * guard_peer_release() when it closes, -EMFILE when that peer already
 * holds max_per_peer connections, -ENOSPC when the table is full, or
 * -EAFNOSUPPORT when sa is not IPv4 or IPv6.
 */
int guard_peer_acquire(struct guard_peers *p, const struct sockaddr *sa);

/** Counts one connection of the handle's peer as closed. A handle that
 *  holds nothing (released too often, or out of range) is ignored. */
void guard_peer_release(struct guard_peers *p, int handle);

/** The connections sa's peer holds now. */
int guard_peer_count(const struct guard_peers *p, const struct sockaddr *sa);

#endif
