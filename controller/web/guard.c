/*
 * guard — Host and Origin checks, loopback peers, connections per peer.
 * See guard.h.
 *
 * An authority is split once, by guard__authority(), into a name (or an
 * address, when it is an IP literal) and a port; every check compares
 * those parts, never raw text, so "localhost:8080" and "LOCALHOST:8080"
 * agree and "localhost.attacker.example" never matches "localhost". The
 * peer table is a flat array scanned linearly: it holds at most one entry
 * per open connection (256), and a scan is cheaper than the accept()
 * that precedes it.
 */
#include "web/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/xalloc.h"

/* One parsed authority: a name or an address, and a port (-1: none). */
struct guard__auth {
    char name[GUARD_NAME_MAX + 1]; /* lower case; "" for an IP literal */
    int family;                    /* AF_INET or AF_INET6 for a literal, else 0 */
    unsigned char addr[16];        /* the literal's address (4 or 16 bytes) */
    int port;                      /* 0..65535, or -1 when none was given */
};

struct guard_hosts {
    struct guard__auth *allow; /* owned */
    size_t n;
};

/* 0..65535 from the whole of s[0..len); -1 when it is not one. */
static int guard__port(const char *s, size_t len)
{
    long v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? (int)v : -1;
}

/* An IPv4-mapped IPv6 address becomes the IPv4 one, so that a dual-stack
 * socket's peers compare with IPv4 literals. */
static void guard__unmap(struct guard__auth *a)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (a->family == AF_INET6 && memcmp(a->addr, mapped, 12) == 0) {
        memmove(a->addr, a->addr + 12, 4);
        memset(a->addr + 4, 0, 12);
        a->family = AF_INET;
    }
}

/* Parses an IP literal s[0..len) (IPv6 without brackets) into a. Returns 0
 * or -EINVAL. */
static int guard__literal(const char *s, size_t len, int family, struct guard__auth *a)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    if (len == 0 || len >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (inet_pton(family, tmp, a->addr) != 1)
        return -EINVAL;
    a->family = family;
    a->name[0] = '\0';
    guard__unmap(a);
    return 0;
}

/* Splits one authority s[0..len) into a: "NAME[:PORT]", "IPV4[:PORT]" or
 * "[IPV6][:PORT]". Returns 0 or -EINVAL. */
static int guard__authority(const char *s, size_t len, struct guard__auth *a)
{
    const char *host = s, *colon;
    size_t hlen;

    memset(a, 0, sizeof(*a));
    a->port = -1;
    if (len == 0)
        return -EINVAL;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        size_t rest;

        if (close == NULL)
            return -EINVAL;
        rest = len - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':' || (a->port = guard__port(close + 2, rest - 1)) < 0)
                return -EINVAL;
        }
        return guard__literal(s + 1, (size_t)(close - s - 1), AF_INET6, a);
    }
    colon = memchr(s, ':', len);
    hlen = colon ? (size_t)(colon - s) : len;
    if (colon && (a->port = guard__port(colon + 1, len - hlen - 1)) < 0)
        return -EINVAL; /* a second ':' lands here too: bare IPv6 is not a Host */
    if (hlen == 0 || hlen > GUARD_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return -EINVAL;
    }
    /* Digits and dots only: it must be a whole dotted quad, never a name
     * ("127.1" is 127.0.0.1 to some resolvers and to nobody here). */
    if (strspn(host, "0123456789.") >= hlen)
        return guard__literal(host, hlen, AF_INET, a);
    for (size_t i = 0; i < hlen; i++)
        a->name[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] - 'A' + 'a' : host[i]);
    a->name[hlen] = '\0';
    return 0;
}

/* The address in sa as a literal authority (port -1). Returns 0, or
 * -EAFNOSUPPORT when sa is not IP. */
static int guard__from_sockaddr(const struct sockaddr *sa, struct guard__auth *a)
{
    memset(a, 0, sizeof(*a));
    a->port = -1;
    if (sa == NULL)
        return -EAFNOSUPPORT;
    if (sa->sa_family == AF_INET) {
        memcpy(a->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        a->family = AF_INET;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(a->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        a->family = AF_INET6;
        guard__unmap(a);
        return 0;
    }
    return -EAFNOSUPPORT;
}

static bool guard__same_host(const struct guard__auth *x, const struct guard__auth *y)
{
    if (x->family != y->family)
        return false;
    if (x->family == 0)
        return strcmp(x->name, y->name) == 0;
    return memcmp(x->addr, y->addr, x->family == AF_INET ? 4 : 16) == 0;
}

static bool guard__is_wildcard(const struct guard__auth *a)
{
    static const unsigned char zero[16];

    return a->family != 0 && memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16) == 0;
}

static bool guard__loopback(const struct guard__auth *a)
{
    static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    if (a->family == AF_INET)
        return a->addr[0] == 127;
    return a->family == AF_INET6 && memcmp(a->addr, v6, 16) == 0;
}

int guard_hosts_new(const char *bind_addr, const char *const *extra, size_t n,
                    struct guard_hosts **out, char **err)
{
    static const char *const builtin[] = {"localhost", "127.0.0.1", "[::1]"};
    struct guard_hosts *g = xcalloc(1, sizeof(*g));
    size_t nb = sizeof(builtin) / sizeof(builtin[0]);

    if (err)
        *err = NULL;
    *out = NULL;
    g->allow = xcalloc(nb + 1 + n, sizeof(*g->allow));
    for (size_t i = 0; i < nb; i++)
        guard__authority(builtin[i], strlen(builtin[i]), &g->allow[g->n++]);
    if (bind_addr && *bind_addr) {
        struct guard__auth *a = &g->allow[g->n];
        int rc;

        a->port = -1; /* any: kubectl port-forward picks the local port */
        rc = strchr(bind_addr, ':') ? guard__literal(bind_addr, strlen(bind_addr), AF_INET6, a)
                                    : guard__literal(bind_addr, strlen(bind_addr), AF_INET, a);
        if (rc != 0) {
            if (err)
                *err = xasprintf("listen address \"%s\": not an IP address", bind_addr);
            guard_hosts_free(g);
            return -EINVAL;
        }
        if (!guard__is_wildcard(a))
            g->n++;
    }
    for (size_t i = 0; i < n; i++) {
        const char *e = extra[i] ? extra[i] : "";
        if (guard__authority(e, strlen(e), &g->allow[g->n]) != 0 ||
            guard__is_wildcard(&g->allow[g->n])) {
            if (err)
                *err = xasprintf("allowed host \"%.*s\": not NAME[:PORT], IPV4[:PORT] or "
                                 "[IPV6][:PORT]",
                                 GUARD_NAME_MAX, e);
            guard_hosts_free(g);
            return -EINVAL;
        }
        g->n++;
    }
    *out = g;
    return 0;
}

void guard_hosts_free(struct guard_hosts *g)
{
    if (g == NULL)
        return;
    free(g->allow);
    free(g);
}

int guard_host_check(const struct guard_hosts *g, const char *host, const struct sockaddr *local)
{
    struct guard__auth h, l;

    if (host == NULL || guard__authority(host, strlen(host), &h) != 0)
        return -EINVAL;
    for (size_t i = 0; i < g->n; i++) {
        const struct guard__auth *a = &g->allow[i];
        if (guard__same_host(a, &h) && (a->port < 0 || a->port == (h.port < 0 ? 80 : h.port)))
            return 0;
    }
    if (h.family != 0 && guard__from_sockaddr(local, &l) == 0 && guard__same_host(&h, &l))
        return 0;
    return -EPERM;
}

/* s[0..len) with the port dropped when it is the scheme's default. */
static size_t guard__strip_default_port(const char *s, size_t len, const char *def)
{
    size_t dl = strlen(def);

    if (len > dl + 1 && s[len - dl - 1] == ':' && memcmp(s + len - dl, def, dl) == 0 &&
        s[len - dl - 2] != ':') /* not the inside of a bare IPv6 address */
        return len - dl - 1;
    return len;
}

int guard_origin_check(const char *origin, const char *host)
{
    const char *auth, *def;
    size_t alen, hlen;
    struct guard__auth parsed;

    if (origin == NULL || host == NULL)
        return -EPERM;
    if (strncasecmp(origin, "http://", 7) == 0) {
        auth = origin + 7;
        def = "80";
    } else if (strncasecmp(origin, "https://", 8) == 0) {
        auth = origin + 8;
        def = "443";
    } else {
        return -EPERM; /* "null", other schemes, garbage */
    }
    alen = strlen(auth);
    /* One authority and nothing else: no path, query, fragment, user
     * info or second origin. */
    if (guard__authority(auth, alen, &parsed) != 0)
        return -EPERM;
    alen = guard__strip_default_port(auth, alen, def);
    hlen = guard__strip_default_port(host, strlen(host), def);
    if (alen != hlen || strncasecmp(auth, host, alen) != 0)
        return -EPERM;
    return 0;
}

bool guard_is_loopback(const struct sockaddr *sa)
{
    struct guard__auth a;

    return guard__from_sockaddr(sa, &a) == 0 && guard__loopback(&a);
}

bool guard_addr_is_loopback(const char *addr)
{
    struct guard__auth a;

    if (addr == NULL || *addr == '\0')
        return false;
    if (guard__literal(addr, strlen(addr), strchr(addr, ':') ? AF_INET6 : AF_INET, &a) != 0)
        return false;
    return guard__loopback(&a);
}

void guard_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    struct guard__auth a;

    if (guard__from_sockaddr(sa, &a) != 0 ||
        inet_ntop(a.family, a.addr, out, (socklen_t)len) == NULL)
        snprintf(out, len, "?");
}

/* ---- connections per peer ---------------------------------------------- */

struct guard__peer {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* the peer's address */
    int count;              /* open connections; 0: the slot is free */
};

struct guard_peers {
    struct guard__peer *slot; /* owned, capacity entries */
    int capacity;
    int max_per_peer;
};

struct guard_peers *guard_peers_new(int max_per_peer, int capacity)
{
    struct guard_peers *p = xcalloc(1, sizeof(*p));

    p->capacity = capacity > 0 ? capacity : 1;
    p->max_per_peer = max_per_peer > 0 ? max_per_peer : 1;
    p->slot = xcalloc((size_t)p->capacity, sizeof(*p->slot));
    return p;
}

void guard_peers_free(struct guard_peers *p)
{
    if (p == NULL)
        return;
    free(p->slot);
    free(p);
}

/* The slot of sa's peer, or -1; *free_slot gets a free one (or -1). */
static int guard__find(const struct guard_peers *p, const struct guard__auth *a, int *free_slot)
{
    size_t n = a->family == AF_INET ? 4 : 16;

    if (free_slot)
        *free_slot = -1;
    for (int i = 0; i < p->capacity; i++) {
        const struct guard__peer *s = &p->slot[i];
        if (s->count == 0) {
            if (free_slot && *free_slot < 0)
                *free_slot = i;
            continue;
        }
        if (s->family == a->family && memcmp(s->addr, a->addr, n) == 0)
            return i;
    }
    return -1;
}

int guard_peer_acquire(struct guard_peers *p, const struct sockaddr *sa)
{
    struct guard__auth a;
    int i, free_slot;

    if (guard__from_sockaddr(sa, &a) != 0)
        return -EAFNOSUPPORT;
    i = guard__find(p, &a, &free_slot);
    if (i >= 0) {
        if (p->slot[i].count >= p->max_per_peer)
            return -EMFILE;
        p->slot[i].count++;
        return i;
    }
    if (free_slot < 0)
        return -ENOSPC;
    p->slot[free_slot].family = a.family;
    memcpy(p->slot[free_slot].addr, a.addr, sizeof(a.addr));
    p->slot[free_slot].count = 1;
    return free_slot;
}

void guard_peer_release(struct guard_peers *p, int handle)
{
    if (p == NULL || handle < 0 || handle >= p->capacity || p->slot[handle].count == 0)
        return;
    p->slot[handle].count--;
}

int guard_peer_count(const struct guard_peers *p, const struct sockaddr *sa)
{
    struct guard__auth a;
    int i;

    if (guard__from_sockaddr(sa, &a) != 0)
        return 0;
    i = guard__find(p, &a, NULL);
    return i >= 0 ? p->slot[i].count : 0;
}
