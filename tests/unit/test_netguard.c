/* Unit tests for http/netguard: the address classes webhooks may not reach,
 * IPv4 carried in IPv6, the allow-list's grammar and matching.  Addresses
 * are made with getaddrinfo(AI_NUMERICHOST) where a spelling matters, the
 * way curl turns a URL's host into the sockaddr it connects to. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "http/netguard.h"

/* ip (an IPv4 or IPv6 literal) and port as a sockaddr. */
static struct sockaddr_storage sa(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    }
    return ss;
}

static netguard_class_t cls(const char *ip)
{
    struct sockaddr_storage s = sa(ip, 80);
    return netguard_classify((struct sockaddr *)&s);
}

static void test_classes(void **state)
{
    (void)state;
    static const struct { const char *ip; netguard_class_t c; } cases[] = {
        { "127.0.0.1", NETGUARD_LOOPBACK },     { "127.255.1.2", NETGUARD_LOOPBACK },
        { "::1", NETGUARD_LOOPBACK },
        { "10.0.0.1", NETGUARD_PRIVATE },       { "172.16.0.1", NETGUARD_PRIVATE },
        { "172.31.255.255", NETGUARD_PRIVATE }, { "192.168.1.1", NETGUARD_PRIVATE },
        { "fec0::1", NETGUARD_PRIVATE },
        { "100.64.0.1", NETGUARD_CGNAT },       { "100.127.255.254", NETGUARD_CGNAT },
        { "169.254.169.254", NETGUARD_LINK_LOCAL }, { "fe80::1", NETGUARD_LINK_LOCAL },
        { "febf::1", NETGUARD_LINK_LOCAL },
        { "fc00::1", NETGUARD_UNIQUE_LOCAL },   { "fd12:3456::1", NETGUARD_UNIQUE_LOCAL },
        { "0.0.0.0", NETGUARD_UNSPECIFIED },    { "0.1.2.3", NETGUARD_UNSPECIFIED },
        { "::", NETGUARD_UNSPECIFIED },
        { "224.0.0.1", NETGUARD_MULTICAST },    { "239.255.255.250", NETGUARD_MULTICAST },
        { "ff02::1", NETGUARD_MULTICAST },
        { "255.255.255.255", NETGUARD_BROADCAST }, { "240.0.0.1", NETGUARD_RESERVED },
        /* IPv4 inside IPv6: judged by the IPv4 address */
        { "::ffff:127.0.0.1", NETGUARD_LOOPBACK }, { "::ffff:10.1.2.3", NETGUARD_PRIVATE },
        { "::ffff:169.254.169.254", NETGUARD_LINK_LOCAL }, { "::127.0.0.1", NETGUARD_LOOPBACK },
        { "64:ff9b::7f00:1", NETGUARD_LOOPBACK }, { "64:ff9b::8.8.8.8", NETGUARD_PUBLIC },
        { "::ffff:0.0.0.0", NETGUARD_UNSPECIFIED },
        /* the edges stay public */
        { "8.8.8.8", NETGUARD_PUBLIC },         { "172.15.255.255", NETGUARD_PUBLIC },
        { "172.32.0.1", NETGUARD_PUBLIC },      { "100.63.255.255", NETGUARD_PUBLIC },
        { "100.128.0.1", NETGUARD_PUBLIC },     { "169.253.1.1", NETGUARD_PUBLIC },
        { "11.0.0.1", NETGUARD_PUBLIC },        { "126.255.255.255", NETGUARD_PUBLIC },
        { "128.0.0.1", NETGUARD_PUBLIC },       { "223.255.255.255", NETGUARD_PUBLIC },
        { "2001:4860:4860::8888", NETGUARD_PUBLIC }, { "fbff::1", NETGUARD_PUBLIC },
        { "::2", NETGUARD_UNSPECIFIED },        /* IPv4-compatible 0.0.0.2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        netguard_class_t c = cls(cases[i].ip);
        if (c != cases[i].c)
            fail_msg("%s: %s, expected %s", cases[i].ip, netguard_class_name(c),
                     netguard_class_name(cases[i].c));
    }
}

/* The spellings of 127.0.0.1 a URL may use, resolved the way a resolver
 * (and curl's URL parser before it) does: all are the loopback. */
static void test_spellings_resolve_to_loopback(void **state)
{
    (void)state;
    static const char *const hosts[] = { "0x7f000001", "2130706433", "127.1", "0177.0.0.1",
                                         "127.0.0.1", "localhost", "::ffff:127.0.0.1", "::1",
                                         "0x7f.1" };
    netguard_t *g = netguard_new();
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(hosts[i], "80", &hints, &res);
        if (rc != 0) fail_msg("%s: %s", hosts[i], gai_strerror(rc));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            char why[128];
            netguard_class_t c;
            assert_int_equal(netguard_check(g, hosts[i], 80, ai->ai_addr, &c, why, sizeof why),
                             -EACCES);
            assert_int_equal(c, NETGUARD_LOOPBACK);
            assert_non_null(strstr(why, "loopback"));
        }
        freeaddrinfo(res);
    }
    netguard_free(g);
}

static int check(const netguard_t *g, const char *host, const char *ip, int port)
{
    struct sockaddr_storage s = sa(ip, port);
    return netguard_check(g, host, port, (struct sockaddr *)&s, NULL, NULL, 0);
}

static void test_allow_list(void **state)
{
    (void)state;
    netguard_t *g = netguard_new();
    static const char *const ok[] = {
        "10.0.0.0/8", "127.0.0.1:9000", "hooks.internal:8080", "Build.Local.", "fd00::/8",
        "[::1]:7000", "192.168.0.0/16:443", "[fe80::/10]:8443", "::ffff:172.16.0.0/108",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        nb_err_t err;
        if (netguard_allow(g, ok[i], &err) != 0) fail_msg("%s: %s", ok[i], err.msg);
    }
    assert_int_equal(netguard_count(g), 9);
    assert_int_equal(check(g, NULL, "10.9.8.7", 80), 0);
    assert_int_equal(check(g, NULL, "::ffff:10.9.8.7", 80), 0);     /* the same address */
    assert_int_equal(check(g, NULL, "127.0.0.1", 9000), 0);
    assert_int_equal(check(g, NULL, "127.0.0.1", 9001), -EACCES);   /* another port */
    assert_int_equal(check(g, NULL, "127.0.0.2", 9000), -EACCES);
    assert_int_equal(check(g, "hooks.internal", "127.0.0.5", 8080), 0);
    assert_int_equal(check(g, "HOOKS.internal.", "127.0.0.5", 8080), 0);
    assert_int_equal(check(g, "hooks.internal", "127.0.0.5", 8081), -EACCES);
    assert_int_equal(check(g, "other.internal", "127.0.0.5", 8080), -EACCES);
    assert_int_equal(check(g, "build.local", "192.168.9.9", 1234), 0);  /* any port */
    assert_int_equal(check(g, NULL, "fd99::1", 80), 0);
    assert_int_equal(check(g, NULL, "fc00::1", 80), -EACCES);
    assert_int_equal(check(g, NULL, "::1", 7000), 0);
    assert_int_equal(check(g, NULL, "::1", 7001), -EACCES);
    assert_int_equal(check(g, NULL, "192.168.3.4", 443), 0);
    assert_int_equal(check(g, NULL, "192.168.3.4", 80), -EACCES);
    assert_int_equal(check(g, NULL, "fe80::5", 8443), 0);
    assert_int_equal(check(g, NULL, "172.17.0.1", 80), 0);          /* 172.16/12 written mapped */
    assert_int_equal(check(g, NULL, "172.32.0.1", 80), 0);          /* public anyway */
    assert_int_equal(check(g, NULL, "169.254.169.254", 80), -EACCES);
    assert_int_equal(check(g, NULL, "93.184.216.34", 443), 0);      /* public: always */
    netguard_free(g);

    static const char *const bad[] = {
        "", "10.0.0.0/33", "127.1", "0x7f000001", "10.0.0.1:0", "10.0.0.1:70000", "host:port",
        "[::1", "[::1]x", "fd00::/129", "a b", "10.0.0.0/", "2130706433", "[hooks.internal]:80",
    };
    g = netguard_new();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nb_err_t err;
        if (netguard_allow(g, bad[i], &err) != -EINVAL) fail_msg("'%s' was accepted", bad[i]);
    }
    assert_int_equal(netguard_count(g), 0);
    netguard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_spellings_resolve_to_loopback),
        cmocka_unit_test(test_allow_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
