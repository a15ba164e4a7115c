/*
 * http/netguard — see netguard.h.  Addresses are compared as bytes: an
 * IPv4 address is 4 bytes, an IPv6 one 16, and an IPv6 address that only
 * carries an IPv4 address (mapped, compatible, NAT64) is turned into those
 * 4 bytes first, for the classes and for the allow-list alike, so that
 * [::ffff:10.1.2.3] is exactly as allowed as 10.1.2.3.
 */
#include "http/netguard.h"
#include "util/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ng_entry {
    int      family;          /* AF_INET, AF_INET6, or 0 for a host name */
    uint8_t  addr[16];
    int      prefix;          /* bits */
    char    *name;            /* host entries: lower case, no final dot */
    int      port;            /* 0 = any */
};

struct netguard {
    struct ng_entry *v;
    size_t           n;
};

/* ---- addresses -------------------------------------------------------- */

/* The address of sa as bytes (4 or 16), IPv4 carried in IPv6 unwrapped.
 * Returns the family, or 0 for anything else. */
static int addr_bytes(const struct sockaddr *sa, uint8_t out[16], int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(out, &s4->sin_addr, 4);
        if (port) *port = ntohs(s4->sin_port);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = s6->sin6_addr.s6_addr;
        if (port) *port = ntohs(s6->sin6_port);
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
        static const uint8_t zero12[12] = { 0 };
        int compat = !memcmp(a, zero12, 12) && (a[12] | a[13] | a[14]) != 0;   /* not :: or ::1 */
        if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12) || compat) {
            memcpy(out, a + 12, 4);
            return AF_INET;
        }
        memcpy(out, a, 16);
        return AF_INET6;
    }
    return 0;
}

static netguard_class_t classify4(const uint8_t *a)
{
    uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    if (x == 0xffffffffu) return NETGUARD_BROADCAST;
    if ((x >> 24) == 0) return NETGUARD_UNSPECIFIED;                /* 0/8 "this network" */
    if ((x >> 24) == 127) return NETGUARD_LOOPBACK;
    if ((x >> 24) == 10 || (x >> 20) == 0xac1 || (x >> 16) == 0xc0a8) return NETGUARD_PRIVATE;
    if ((x >> 22) == (100u << 2 | 1)) return NETGUARD_CGNAT;         /* 100.64/10 */
    if ((x >> 16) == 0xa9fe) return NETGUARD_LINK_LOCAL;             /* 169.254/16 */
    if ((x >> 28) == 0xe) return NETGUARD_MULTICAST;                 /* 224/4 */
    if ((x >> 28) == 0xf) return NETGUARD_RESERVED;                  /* 240/4 */
    return NETGUARD_PUBLIC;
}

static netguard_class_t classify6(const uint8_t *a)
{
    static const uint8_t zero15[15] = { 0 };
    if (!memcmp(a, zero15, 15)) return a[15] == 1 ? NETGUARD_LOOPBACK : NETGUARD_UNSPECIFIED;
    if (a[0] == 0xff) return NETGUARD_MULTICAST;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return NETGUARD_LINK_LOCAL;   /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return NETGUARD_PRIVATE;      /* fec0::/10 site-local */
    if ((a[0] & 0xfe) == 0xfc) return NETGUARD_UNIQUE_LOCAL;                 /* fc00::/7 */
    return NETGUARD_PUBLIC;
}

netguard_class_t netguard_classify(const struct sockaddr *sa)
{
    uint8_t a[16];
    int fam = sa ? addr_bytes(sa, a, NULL) : 0;
    if (fam == AF_INET) return classify4(a);
    if (fam == AF_INET6) return classify6(a);
    return NETGUARD_UNKNOWN;
}

const char *netguard_class_name(netguard_class_t c)
{
    static const char *const names[] = {
        "public", "loopback", "private", "shared (CGNAT)", "link-local", "unique-local",
        "unspecified", "multicast", "broadcast", "reserved", "not an IP",
    };
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

/* ---- the allow-list --------------------------------------------------- */

netguard_t *netguard_new(void)
{
    return xcalloc(1, sizeof(netguard_t));
}

void netguard_free(netguard_t *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n; i++) free(g->v[i].name);
    free(g->v);
    free(g);
}

size_t netguard_count(const netguard_t *g)
{
    return g ? g->n : 0;
}

static int parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    int v = atoi(s);
    if (v < 1 || v > 65535) return -1;
    *port = v;
    return 0;
}

/* "ADDR" or "ADDR/N" (no brackets) into e; 0, or -1 if it is not one. */
static int parse_cidr(const char *s, struct ng_entry *e)
{
    char tmp[64];
    if (strlen(s) >= sizeof tmp) return -1;
    snprintf(tmp, sizeof tmp, "%s", s);
    char *slash = strchr(tmp, '/');
    int prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3) return -1;
        for (const char *q = p; *q; q++)
            if (*q < '0' || *q > '9') return -1;
        prefix = atoi(p);
    }
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;
    memset(&s6, 0, sizeof s6);
    memset(&s4, 0, sizeof s4);
    int fam;
    uint8_t a[16];
    if (inet_pton(AF_INET, tmp, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        fam = addr_bytes((struct sockaddr *)&s4, a, NULL);
    } else if (inet_pton(AF_INET6, tmp, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        fam = addr_bytes((struct sockaddr *)&s6, a, NULL);
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8 */
        if (fam == AF_INET && prefix >= 0) prefix -= 96;
    } else {
        return -1;
    }
    int max = fam == AF_INET ? 32 : 128;
    if (prefix < 0 && slash) return -1;
    if (prefix < 0) prefix = max;
    if (prefix > max) return -1;
    e->family = fam;
    e->prefix = prefix;
    memset(e->addr, 0, sizeof e->addr);
    memcpy(e->addr, a, fam == AF_INET ? 4 : 16);
    return 0;
}

static int name_ok(const char *s)
{
    if (!*s || strlen(s) > 253) return 0;
    int alpha = 0;
    for (const char *p = s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_') alpha = 1;
        else if (!((*p >= '0' && *p <= '9') || *p == '.')) return 0;
    }
    struct in_addr a;
    /* all digits and dots, or 0x7f000001 and the like: an IPv4 spelling
     * (inet_aton's), not a name */
    return alpha && inet_aton(s, &a) == 0;
}

/* Lower case, without one final dot. */
static char *name_norm(const char *s, size_t n)
{
    if (n && s[n - 1] == '.') n--;
    char *o = xstrndup(s, n);
    for (char *p = o; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return o;
}

int netguard_allow(netguard_t *g, const char *entry, nb_err_t *err)
{
    struct ng_entry e;
    memset(&e, 0, sizeof e);
    char body[300];
    const char *port = NULL;
    if (!entry || !*entry || strlen(entry) >= sizeof body)
        return err_set(err, -EINVAL, "an allow-list entry must be a CIDR, an address or a host[:port]");
    if (entry[0] == '[') {
        const char *rb = strchr(entry, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            return err_set(err, -EINVAL, "'%s': write an IPv6 entry as [ADDR], [ADDR/N] or [ADDR]:PORT",
                           entry);
        snprintf(body, sizeof body, "%.*s", (int)(rb - entry - 1), entry + 1);
        if (rb[1] == ':') port = rb + 2;
        if (parse_cidr(body, &e) < 0 || e.family == 0)
            return err_set(err, -EINVAL, "'%s': not an IPv6 address or CIDR", entry);
    } else {
        const char *c1 = strchr(entry, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c1 && !c2) {                       /* ADDR:PORT, ADDR/N:PORT or NAME:PORT */
            snprintf(body, sizeof body, "%.*s", (int)(c1 - entry), entry);
            port = c1 + 1;
        } else {                               /* no port; bare IPv6 keeps its colons */
            snprintf(body, sizeof body, "%s", entry);
        }
        if (parse_cidr(body, &e) < 0) {
            if (strchr(body, '/') || (c1 && c2))
                return err_set(err, -EINVAL, "'%s': not a valid CIDR (such as 10.0.0.0/8 or fd00::/8)",
                               entry);
            if (!name_ok(body))
                return err_set(err, -EINVAL,
                               "'%s': not an address, a CIDR or a host name (IPv4 addresses are "
                               "written as four decimal numbers, such as 10.0.0.1)", entry);
            e.name = name_norm(body, strlen(body));
        }
    }
    if (port && parse_port(port, &e.port) < 0) {
        free(e.name);
        return err_set(err, -EINVAL, "'%s': the port must be a number from 1 to 65535", entry);
    }
    g->v = xrealloc(g->v, (g->n + 1) * sizeof *g->v);
    g->v[g->n++] = e;
    return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *net, int bits)
{
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, net, (size_t)bytes)) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (net[bytes] & mask);
}

static int host_match(const char *want, const char *host)
{
    if (!host) return 0;
    size_t n = strlen(host);
    if (n && host[n - 1] == '.') n--;
    return strlen(want) == n && strncasecmp(want, host, n) == 0;
}

int netguard_check(const netguard_t *g, const char *host, int port, const struct sockaddr *sa,
                   netguard_class_t *cls, char *why, size_t n)
{
    uint8_t a[16];
    int sport = 0;
    int fam = sa ? addr_bytes(sa, a, &sport) : 0;
    netguard_class_t c = fam == AF_INET ? classify4(a) : fam == AF_INET6 ? classify6(a)
                                                                        : NETGUARD_UNKNOWN;
    if (cls) *cls = c;
    if (fam == 0) {
        if (why && n) snprintf(why, n, "not an IP address");
        return -EACCES;
    }
    if (!sport) sport = port;
    for (size_t i = 0; g && i < g->n; i++) {
        const struct ng_entry *e = &g->v[i];
        if (e->port && e->port != sport) continue;
        if (e->name ? host_match(e->name, host)
                    : e->family == fam && prefix_match(a, e->addr, e->prefix))
            return 0;
    }
    if (c == NETGUARD_PUBLIC) return 0;
    if (why && n) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(fam, a, ip, sizeof ip);
        snprintf(why, n, "%s is a %s address", ip, netguard_class_name(c));
    }
    return -EACCES;
}
