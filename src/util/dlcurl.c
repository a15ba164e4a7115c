/* dlcurl — see dlcurl.h. */
#include "util/dlcurl.h"

#include "util/buf.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static struct dlcurl dlcurl_table;
static pthread_once_t dlcurl_once = PTHREAD_ONCE_INIT;

static void *dlcurl_sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "nbhub: libcurl lacks %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

static void dlcurl_load(void)
{
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "nbhub: cannot load libcurl (install libcurl4): %s\n", dlerror());
        exit(1);
    }
    /* Function pointers from dlsym: the POSIX way (void * to function pointer). */
    *(void **)&dlcurl_table.global_init = dlcurl_sym(lib, "curl_global_init");
    *(void **)&dlcurl_table.global_cleanup = dlcurl_sym(lib, "curl_global_cleanup");
    *(void **)&dlcurl_table.easy_init = dlcurl_sym(lib, "curl_easy_init");
    *(void **)&dlcurl_table.easy_cleanup = dlcurl_sym(lib, "curl_easy_cleanup");
    *(void **)&dlcurl_table.easy_reset = dlcurl_sym(lib, "curl_easy_reset");
    *(void **)&dlcurl_table.easy_setopt = dlcurl_sym(lib, "curl_easy_setopt");
    *(void **)&dlcurl_table.easy_getinfo = dlcurl_sym(lib, "curl_easy_getinfo");
    *(void **)&dlcurl_table.easy_perform = dlcurl_sym(lib, "curl_easy_perform");
    *(void **)&dlcurl_table.easy_strerror = dlcurl_sym(lib, "curl_easy_strerror");
    *(void **)&dlcurl_table.slist_append = dlcurl_sym(lib, "curl_slist_append");
    *(void **)&dlcurl_table.slist_free_all = dlcurl_sym(lib, "curl_slist_free_all");
    *(void **)&dlcurl_table.free = dlcurl_sym(lib, "curl_free");
    *(void **)&dlcurl_table.multi_init = dlcurl_sym(lib, "curl_multi_init");
    *(void **)&dlcurl_table.multi_cleanup = dlcurl_sym(lib, "curl_multi_cleanup");
    *(void **)&dlcurl_table.multi_setopt = dlcurl_sym(lib, "curl_multi_setopt");
    *(void **)&dlcurl_table.multi_add_handle = dlcurl_sym(lib, "curl_multi_add_handle");
    *(void **)&dlcurl_table.multi_remove_handle = dlcurl_sym(lib, "curl_multi_remove_handle");
    *(void **)&dlcurl_table.multi_socket_action = dlcurl_sym(lib, "curl_multi_socket_action");
    *(void **)&dlcurl_table.multi_assign = dlcurl_sym(lib, "curl_multi_assign");
    *(void **)&dlcurl_table.multi_info_read = dlcurl_sym(lib, "curl_multi_info_read");
    *(void **)&dlcurl_table.multi_perform = dlcurl_sym(lib, "curl_multi_perform");
    *(void **)&dlcurl_table.multi_poll = dlcurl_sym(lib, "curl_multi_poll");
    *(void **)&dlcurl_table.url = dlcurl_sym(lib, "curl_url");
    *(void **)&dlcurl_table.url_cleanup = dlcurl_sym(lib, "curl_url_cleanup");
    *(void **)&dlcurl_table.url_set = dlcurl_sym(lib, "curl_url_set");
    *(void **)&dlcurl_table.url_get = dlcurl_sym(lib, "curl_url_get");
}

const struct dlcurl *dlcurl(void)
{
    pthread_once(&dlcurl_once, dlcurl_load);
    return &dlcurl_table;
}

int dlcurl_get(const char *url, long timeout_ms, buf_t *body, long *status)
{
    *status = 0;
    body->data = NULL;
    body->len = 0;
    CURL *h = curl_easy_init();
    if (!h) return -EIO;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    FILE *mem = open_memstream(&body->data, &body->len);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    fclose(mem);
    return rc == CURLE_OK ? 0 : -EIO;
}
