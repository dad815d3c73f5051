/*
 * Tests for guard: which Host values name us (and which are DNS-rebinding
 * names or malformed), which Origin values are same-origin, which peers
 * are loopback, and the per-peer connection table's limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "web/guard.h"

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static struct guard_hosts *hosts(const char *bind, const char *const *extra, size_t n)
{
    struct guard_hosts *g = NULL;
    char *err = NULL;
    int rc = guard_hosts_new(bind, extra, n, &g, &err);

    if (rc != 0)
        fprintf(stderr, "guard_hosts_new: %d %s\n", rc, err ? err : "");
    free(err);
    return g;
}

TEST(host_check_accepts_our_own_names_with_any_port)
{
    struct guard_hosts *g = hosts("127.0.0.1", NULL, 0);
    static const char *const ok[] = {"localhost",  "localhost:8080", "LocalHost:9090",
                                     "127.0.0.1",  "127.0.0.1:8080", "[::1]",
                                     "[::1]:8080", "[0:0::1]:1",     "localhost:65535"};

    CHECK(g != NULL);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (guard_host_check(g, ok[i], NULL) != 0)
            fprintf(stderr, "refused: %s\n", ok[i]);
        CHECK_INT(guard_host_check(g, ok[i], NULL), 0);
    }
    guard_hosts_free(g);
}

TEST(host_check_refuses_other_names_as_a_rebinding_attack_sends_them)
{
    struct guard_hosts *g = hosts("127.0.0.1", NULL, 0);
    static const char *const other[] = {"attacker.example",
                                        "attacker.example:8080",
                                        "localhost.attacker.example",
                                        "127.0.0.1.nip.io:8080",
                                        "10.0.0.1:8080",
                                        "[::2]:8080",
                                        "localhost-evil:8080",
                                        "xlocalhost"};

    CHECK(g != NULL);
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        if (guard_host_check(g, other[i], NULL) != -EPERM)
            fprintf(stderr, "not refused: %s\n", other[i]);
        CHECK_INT(guard_host_check(g, other[i], NULL), -EPERM);
    }
    guard_hosts_free(g);
}

TEST(host_check_refuses_what_is_not_exactly_one_authority)
{
    struct guard_hosts *g = hosts(NULL, NULL, 0);
    static const char *const bad[] = {"",
                                      "localhost:",
                                      ":8080",
                                      "localhost:80:80",
                                      "localhost:99999",
                                      "localhost:8x",
                                      "::1",
                                      "[::1",
                                      "[::1]x",
                                      "[nothex]:80",
                                      "localhost, attacker.example",
                                      "localhost attacker.example",
                                      "user@localhost",
                                      "localhost/x",
                                      "127.1",
                                      "127.0.0.1.",
                                      "1234",
                                      "localhost\t"};

    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, NULL, NULL), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = guard_host_check(g, bad[i], NULL);
        if (rc == 0)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK(rc != 0);
    }
    guard_hosts_free(g);
}

TEST(host_check_accepts_the_address_the_connection_arrived_on)
{
    struct guard_hosts *g = hosts(NULL, NULL, 0); /* bound to every address */
    struct sockaddr_storage v4 = sa_of("10.1.2.3"), mapped = sa_of("::ffff:10.1.2.3"),
                            v6 = sa_of("fd00::5");

    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, "10.1.2.3:8080", SA(v4)), 0);
    CHECK_INT(guard_host_check(g, "10.1.2.3", SA(mapped)), 0);
    CHECK_INT(guard_host_check(g, "[fd00::5]:8080", SA(v6)), 0);
    CHECK_INT(guard_host_check(g, "[fd00:0::5]:8080", SA(v6)), 0);
    /* Another address, or a name that resolves to ours: refused. */
    CHECK_INT(guard_host_check(g, "10.1.2.4:8080", SA(v4)), -EPERM);
    CHECK_INT(guard_host_check(g, "kvrecover.example:8080", SA(v4)), -EPERM);
    CHECK_INT(guard_host_check(g, "10.1.2.3:8080", NULL), -EPERM);
    guard_hosts_free(g);
}

TEST(host_check_accepts_a_specific_bind_address_and_not_a_wildcard)
{
    struct guard_hosts *g = hosts("10.0.0.7", NULL, 0);

    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, "10.0.0.7:8080", NULL), 0);
    guard_hosts_free(g);
    g = hosts("0.0.0.0", NULL, 0);
    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, "0.0.0.0:8080", NULL), -EPERM);
    guard_hosts_free(g);
    g = hosts("::", NULL, 0);
    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, "[::]:8080", NULL), -EPERM);
    guard_hosts_free(g);
}

TEST(allowed_hosts_match_by_name_and_by_port_when_given)
{
    static const char *const extra[] = {"kvrecover.example", "svc.cluster.local:8080",
                                        "[fd00::1]:443", "192.0.2.9"};
    struct guard_hosts *g = hosts("127.0.0.1", extra, 4);

    CHECK(g != NULL);
    CHECK_INT(guard_host_check(g, "kvrecover.example", NULL), 0);
    CHECK_INT(guard_host_check(g, "KVRECOVER.example:1234", NULL), 0);
    CHECK_INT(guard_host_check(g, "svc.cluster.local:8080", NULL), 0);
    CHECK_INT(guard_host_check(g, "svc.cluster.local:8081", NULL), -EPERM);
    CHECK_INT(guard_host_check(g, "svc.cluster.local", NULL), -EPERM); /* that is port 80 */
    CHECK_INT(guard_host_check(g, "[fd00::1]:443", NULL), 0);
    CHECK_INT(guard_host_check(g, "[fd00::1]:80", NULL), -EPERM);
    CHECK_INT(guard_host_check(g, "192.0.2.9:8080", NULL), 0);
    CHECK_INT(guard_host_check(g, "sub.kvrecover.example", NULL), -EPERM);
    guard_hosts_free(g);
}

TEST(bad_allowed_hosts_and_bind_addresses_are_refused_by_name)
{
    static const char *const bad[] = {"",          "evil:", "a b",     "0.0.0.0",
                                      "*.example", "[::1",  "http://x"};
    struct guard_hosts *g = NULL;
    char *err = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(guard_hosts_new(NULL, &bad[i], 1, &g, &err), -EINVAL);
        CHECK(g == NULL);
        CHECK(err != NULL && strstr(err, "allowed host") != NULL);
        free(err);
        err = NULL;
    }
    CHECK_INT(guard_hosts_new("my-host", NULL, 0, &g, &err), -EINVAL);
    CHECK(err != NULL && strstr(err, "my-host") != NULL);
    free(err);
}

TEST(origin_check_accepts_exactly_the_page_we_served)
{
    CHECK_INT(guard_origin_check("http://localhost:8080", "localhost:8080"), 0);
    CHECK_INT(guard_origin_check("HTTP://LocalHost:8080", "localhost:8080"), 0);
    CHECK_INT(guard_origin_check("http://127.0.0.1:8080", "127.0.0.1:8080"), 0);
    CHECK_INT(guard_origin_check("http://[::1]:8080", "[::1]:8080"), 0);
    /* Behind a TLS-terminating proxy the page is https: the same authority. */
    CHECK_INT(guard_origin_check("https://kvrecover.example", "kvrecover.example"), 0);
    CHECK_INT(guard_origin_check("https://kvrecover.example", "kvrecover.example:443"), 0);
    CHECK_INT(guard_origin_check("http://kvrecover.example:80", "kvrecover.example"), 0);
}

TEST(origin_check_refuses_every_other_origin)
{
    static const char *const bad[] = {"null",
                                      "http://attacker.example",
                                      "http://attacker.example:8080",
                                      "http://localhost:8081",
                                      "http://localhost",
                                      "http://127.0.0.1:8080",
                                      "http://localhost:8080/",
                                      "http://localhost:8080/x",
                                      "http://user@localhost:8080",
                                      "http://localhost:8080 http://attacker.example",
                                      "ws://localhost:8080",
                                      "file://",
                                      "localhost:8080",
                                      "",
                                      "https://localhost:8080:443"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (guard_origin_check(bad[i], "localhost:8080") != -EPERM)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK_INT(guard_origin_check(bad[i], "localhost:8080"), -EPERM);
    }
    CHECK_INT(guard_origin_check(NULL, "localhost:8080"), -EPERM);
    CHECK_INT(guard_origin_check("http://localhost:8080", NULL), -EPERM);
}

TEST(loopback_peers_and_addresses)
{
    struct sockaddr_storage a = sa_of("127.0.0.1"), b = sa_of("127.9.9.9"), c = sa_of("::1"),
                            d = sa_of("::ffff:127.0.0.1"), e = sa_of("10.0.0.1"),
                            f = sa_of("::ffff:10.0.0.1"), g = sa_of("::");

    CHECK(guard_is_loopback(SA(a)) && guard_is_loopback(SA(b)) && guard_is_loopback(SA(c)) &&
          guard_is_loopback(SA(d)));
    CHECK(!guard_is_loopback(SA(e)) && !guard_is_loopback(SA(f)) && !guard_is_loopback(SA(g)));
    CHECK(!guard_is_loopback(NULL));
    CHECK(guard_addr_is_loopback("127.0.0.1") && guard_addr_is_loopback("::1") &&
          guard_addr_is_loopback("127.0.0.2"));
    CHECK(!guard_addr_is_loopback("0.0.0.0") && !guard_addr_is_loopback("::") &&
          !guard_addr_is_loopback("") && !guard_addr_is_loopback(NULL) &&
          !guard_addr_is_loopback("localhost") && !guard_addr_is_loopback("10.0.0.1"));
}

TEST(addr_text_writes_ipv4_for_mapped_addresses)
{
    struct sockaddr_storage a = sa_of("::ffff:10.0.0.1"), b = sa_of("fd00::1");
    char out[64];

    guard_addr_text(SA(a), out, sizeof(out));
    CHECK_STR(out, "10.0.0.1");
    guard_addr_text(SA(b), out, sizeof(out));
    CHECK_STR(out, "fd00::1");
    guard_addr_text(NULL, out, sizeof(out));
    CHECK_STR(out, "?");
}

TEST(peers_are_limited_each_and_in_total)
{
    struct guard_peers *p = guard_peers_new(3, 5);
    struct sockaddr_storage a = sa_of("10.0.0.1"), a6 = sa_of("::ffff:10.0.0.1"),
                            b = sa_of("10.0.0.2"), c = sa_of("10.0.0.3");
    int h[3], hb, hc;

    for (int i = 0; i < 3; i++) {
        h[i] = guard_peer_acquire(p, SA(a));
        CHECK(h[i] >= 0);
    }
    CHECK_INT(guard_peer_acquire(p, SA(a)), -EMFILE);
    CHECK_INT(guard_peer_acquire(p, SA(a6)), -EMFILE); /* the same peer, dual-stack */
    CHECK_INT(guard_peer_count(p, SA(a)), 3);
    hb = guard_peer_acquire(p, SA(b));
    CHECK(hb >= 0);
    CHECK_INT(guard_peer_count(p, SA(b)), 1);
    guard_peer_release(p, h[0]);
    CHECK_INT(guard_peer_count(p, SA(a)), 2);
    CHECK(guard_peer_acquire(p, SA(a6)) >= 0);
    /* Five slots: a and b take two; three more peers need three. */
    CHECK(guard_peer_acquire(p, SA(c)) >= 0);
    {
        struct sockaddr_storage d = sa_of("10.0.0.4"), e = sa_of("10.0.0.5"), f = sa_of("10.0.0.6");
        CHECK(guard_peer_acquire(p, SA(d)) >= 0);
        CHECK(guard_peer_acquire(p, SA(e)) >= 0);
        CHECK_INT(guard_peer_acquire(p, SA(f)), -ENOSPC);
        guard_peer_release(p, hb); /* b's slot is free again */
        CHECK(guard_peer_acquire(p, SA(f)) >= 0);
    }
    hc = guard_peer_acquire(p, NULL);
    CHECK_INT(hc, -EAFNOSUPPORT);
    /* Out of range is ignored. */
    guard_peer_release(p, -1);
    guard_peer_release(p, 99);
    CHECK_INT(guard_peer_count(p, SA(b)), 0);
    guard_peers_free(p);
    guard_peers_free(NULL);
}
