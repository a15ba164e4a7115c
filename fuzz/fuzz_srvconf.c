/*
 * libFuzzer harness for srvconf (nbhub.yaml).  srvconf_load reads a path,
 * so the input goes into a memfd read through /proc/self/fd.  Invariants
 * beyond "no crash, no leak": a failed load reports at least one problem,
 * every problem is labelled with the file name, and a successful load
 * reports none; after a successful load the hub: section has a profile
 * to start, each with a valid name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/srvconf.h"
#include "util/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("nbhub.yaml", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    srvconf_t c;
    srvconf_init(&c);
    nb_errlist_t errs = ERRLIST_INIT;
    int rc = srvconf_load(path, &c, &errs);
    if (rc < 0) NB_ASSERT(errlist_count(&errs) > 0);
    else NB_ASSERT(errlist_count(&errs) == 0);
    for (size_t i = 0; i < errs.n; i++) NB_ASSERT(strcmp(errs.v[i].file, path) == 0);
    /* hub: a loaded file leaves a profile to start, each with a valid name */
    if (rc == 0) {
        NB_ASSERT(c.hub.nprofiles >= 1);
        for (size_t i = 0; i < c.hub.nprofiles; i++) NB_ASSERT(hub_name_valid(c.hub.profiles[i].name));
    }
    errlist_free(&errs);
    srvconf_clear(&c);
    close(fd);
    return 0;
}
