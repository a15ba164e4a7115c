/*
 * http/netguard — which addresses an outgoing request may connect to.
 *
 * Webhook URLs are written by flow owners, so without a guard a flow could
 * make the daemon POST to anything the daemon's host can reach: nbhub
 * itself on 127.0.0.1, a database's HTTP port on the loopback, a cloud
 * metadata service on 169.254.169.254, the office network.  The guard is
 * applied to the socket address the connection is actually made to (by
 * hclient's CURLOPT_OPENSOCKETFUNCTION, after name resolution), never to
 * the URL's text: 0x7f000001, 2130706433, 127.1, [::ffff:127.0.0.1] and
 * localhost. all arrive here as the same sockaddr for 127.0.0.1, and a DNS
 * name that answers differently the second time has no second time.
 *
 * Refused classes (netguard_classify): loopback (127/8, ::1), private
 * (10/8, 172.16/12, 192.168/16, fec0::/10), CGNAT shared space (100.64/10),
 * link-local (169.254/16, fe80::/10), unique-local (fc00::/7), unspecified
 * ("this network" 0/8, ::), multicast (224/4, ff00::/8), broadcast
 * (255.255.255.255) and the rest of 240/4 (reserved).  IPv6 forms that
 * carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, the deprecated
 * IPv4-compatible ::/96, NAT64 64:ff9b::/96) are judged by the IPv4
 * address inside.
 *
 * The allow-list (nbhub.yaml `webhooks: {allow: [...]}`) lets an admin
 * name internal receivers.  An entry is one of
 *     10.0.0.0/8          an IPv4 or IPv6 CIDR, any port
 *     10.1.2.3            one address (= /32 or /128)
 *     10.1.2.3:8080       one address and port; IPv6 as [fd00::1]:8080,
 *                         a CIDR with a port as 10.0.0.0/8:8080 or
 *                         [fd00::/8]:8080
 *     hooks.internal      a host name (as written in the URL, case and a
 *     hooks.internal:8080 final dot ignored), any port or this port: every
 *                         address the name resolves to is allowed
 * An allowed address skips the class check entirely (so a listed
 * 127.0.0.1:9000 is reachable, and nothing else on the loopback is).
 *
 * Ownership: netguard_new returns a guard owned by the caller; the hclient
 * requests that use it borrow it, so it must outlive them.  A guard is not
 * changed once requests use it; reading it from one thread is all it does.
 */
#ifndef NBHUB_HTTP_NETGUARD_H
#define NBHUB_HTTP_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>
#include "util/err.h"

typedef enum netguard_class {
    NETGUARD_PUBLIC = 0,
    NETGUARD_LOOPBACK,
    NETGUARD_PRIVATE,
    NETGUARD_CGNAT,
    NETGUARD_LINK_LOCAL,
    NETGUARD_UNIQUE_LOCAL,
    NETGUARD_UNSPECIFIED,
    NETGUARD_MULTICAST,
    NETGUARD_BROADCAST,
    NETGUARD_RESERVED,
    NETGUARD_UNKNOWN,       /* not AF_INET / AF_INET6 (a Unix socket, ...) */
} netguard_class_t;

/* The class of an address (AF_INET or AF_INET6 sockaddr). */
netguard_class_t netguard_classify(const struct sockaddr *sa);
/* "loopback", "private", ...: for messages. */
const char *netguard_class_name(netguard_class_t c);

typedef struct netguard netguard_t;

/* A guard with an empty allow-list: public addresses only. */
netguard_t *netguard_new(void);
void        netguard_free(netguard_t *g);
/* Add one allow-list entry (grammar above).  0, or -EINVAL with a message. */
int         netguard_allow(netguard_t *g, const char *entry, nb_err_t *err);
/* Entries added (tests, logs). */
size_t      netguard_count(const netguard_t *g);

/*
 * May a request for URL host `host` (as curl normalised it, "[v6]" for
 * IPv6 literals; NULL if unknown) and port `port` connect to sa?
 * 0 if so; -EACCES if not, with a message naming the address and its
 * class in why[0..n) (for the admin's log; users get the class only).
 * *cls (may be NULL) gets the class.
 */
int netguard_check(const netguard_t *g, const char *host, int port, const struct sockaddr *sa,
                   netguard_class_t *cls, char *why, size_t n);

#endif
