/*
 * dlcurl — libcurl loaded with dlopen on first use instead of linked.
 *
 * Why: libcurl pulls in some 30 shared libraries (TLS, GSSAPI, LDAP, SSH,
 * IDN, ...) and resolving their symbols at every start of the nbhub binary
 * costs about 10 ms (perf: ld.so's do_lookup_x).  Only the webhook client
 * of the daemon and the CLI's API client need curl, while `nbhub run` and
 * the task wrapper are started for every task of every flow, where those
 * 10 ms twice per task were half of the latency between a task and its
 * dependent.  So curl is opened when first used, and the binary does not
 * link it.
 *
 * Use: include "util/dlcurl.h" instead of <curl/curl.h>; call curl as usual
 * (each function name is a macro through the table).  The typecheck macros
 * of curl.h are disabled, so pass setopt values of the right type (long,
 * pointer, curl_off_t) as curl's documentation says.
 *
 * If libcurl.so.4 is missing the process exits with a message (status 1):
 * it is a dependency of nbhub's install, like any linked library.
 */
#ifndef NBHUB_DLCURL_H
#define NBHUB_DLCURL_H
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

struct dlcurl {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL * (*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURLcode (*easy_perform)(CURL *);
    const char * (*easy_strerror)(CURLcode);
    struct curl_slist * (*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    void (*free)(void *);
    CURLM * (*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMsg * (*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLU * (*url)(void);
    void (*url_cleanup)(CURLU *);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
};

/* The table, loading libcurl on the first call (thread-safe). */
const struct dlcurl *dlcurl(void);

#undef curl_global_init
#define curl_global_init (dlcurl()->global_init)
#undef curl_global_cleanup
#define curl_global_cleanup (dlcurl()->global_cleanup)
#undef curl_easy_init
#define curl_easy_init (dlcurl()->easy_init)
#undef curl_easy_cleanup
#define curl_easy_cleanup (dlcurl()->easy_cleanup)
#undef curl_easy_reset
#define curl_easy_reset (dlcurl()->easy_reset)
#undef curl_easy_setopt
#define curl_easy_setopt (dlcurl()->easy_setopt)
#undef curl_easy_getinfo
#define curl_easy_getinfo (dlcurl()->easy_getinfo)
#undef curl_easy_perform
#define curl_easy_perform (dlcurl()->easy_perform)
#undef curl_easy_strerror
#define curl_easy_strerror (dlcurl()->easy_strerror)
#undef curl_slist_append
#define curl_slist_append (dlcurl()->slist_append)
#undef curl_slist_free_all
#define curl_slist_free_all (dlcurl()->slist_free_all)
#undef curl_free
#define curl_free (dlcurl()->free)
#undef curl_multi_init
#define curl_multi_init (dlcurl()->multi_init)
#undef curl_multi_cleanup
#define curl_multi_cleanup (dlcurl()->multi_cleanup)
#undef curl_multi_setopt
#define curl_multi_setopt (dlcurl()->multi_setopt)
#undef curl_multi_add_handle
#define curl_multi_add_handle (dlcurl()->multi_add_handle)
#undef curl_multi_remove_handle
#define curl_multi_remove_handle (dlcurl()->multi_remove_handle)
#undef curl_multi_socket_action
#define curl_multi_socket_action (dlcurl()->multi_socket_action)
#undef curl_multi_assign
#define curl_multi_assign (dlcurl()->multi_assign)
#undef curl_multi_info_read
#define curl_multi_info_read (dlcurl()->multi_info_read)
#undef curl_multi_perform
#define curl_multi_perform (dlcurl()->multi_perform)
#undef curl_multi_poll
#define curl_multi_poll (dlcurl()->multi_poll)
#undef curl_url
#define curl_url (dlcurl()->url)
#undef curl_url_cleanup
#define curl_url_cleanup (dlcurl()->url_cleanup)
#undef curl_url_set
#define curl_url_set (dlcurl()->url_set)
#undef curl_url_get
#define curl_url_get (dlcurl()->url_get)

/* A blocking GET of a local URL (the Spark master's /json/, an
 * application's REST API) within timeout_ms: the body in *body (caller
 * frees body->data), the HTTP status in *status.  0, or -EIO when no answer
 * came.  For short requests on processes with nothing else to do. */
struct buf;
int dlcurl_get(const char *url, long timeout_ms, struct buf *body, long *status);

#endif
