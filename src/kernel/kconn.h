/*
 * kconn — a kernel's connection info: transport, addresses, ports, key.
 *
 * Local kernels get the "ipc" transport by default: each channel is a Unix
 * socket at "<ip>-<port>" inside a private 0700 directory, so parallel runs
 * never race for TCP ports (papermill #511) and nothing listens on the
 * network.  "tcp" picks free ports on 127.0.0.1 by binding to port 0.
 * The key is 32 random bytes in hex; the file is written 0600.
 */
#ifndef NBHUB_KCONN_H
#define NBHUB_KCONN_H

#include <jansson.h>
#include "util/err.h"

enum kchan { KCHAN_SHELL, KCHAN_IOPUB, KCHAN_STDIN, KCHAN_CONTROL, KCHAN_HB, KCHAN_COUNT };

typedef struct kconn {
    int   ipc;                 /* 1 = ipc transport, 0 = tcp */
    char *ip;                  /* tcp: address; ipc: path prefix */
    int   ports[KCHAN_COUNT];
    char  key[65];
    char *file;                /* path of the connection file, or NULL */
    char *dir;                 /* private directory we created (removed on free) */
} kconn_t;

/* Fresh connection info in a new private directory under the runtime dir
 * ($XDG_RUNTIME_DIR/nbhub, else /tmp/nbhub-<uid>), and its file written. */
int  kconn_new(int ipc, kconn_t **out, nb_err_t *err);
/* The same under root (an existing directory), for a kernel that runs as
 * another account (a Livy session's under isolation: system): the caller
 * hands the new directory and file to that account. */
int  kconn_new_in(const char *root, int ipc, kconn_t **out, nb_err_t *err);
/* Load a connection file written by someone else (to attach to a kernel),
 * through fs_read_regular: a symlink, a FIFO, a file with another hard
 * link or over KCONN_FILE_MAX bytes is refused (never followed, never
 * blocking, never read whole). */
int  kconn_load(const char *path, kconn_t **out, nb_err_t *err);
/* The same for a file that must also be owned by uid or root (uid < 0:
 * anyone): the daemon reading a file in a directory of another account's
 * (fs_read_owned). */
int  kconn_load_owned(const char *path, long uid, kconn_t **out, nb_err_t *err);
#define KCONN_FILE_MAX (64 * 1024)
/* "ipc:///dir/k-ipc-1" or "tcp://127.0.0.1:5555"; fresh string. */
char *kconn_endpoint(const kconn_t *c, enum kchan ch);
/* Remove the file, the ipc sockets and our private directory, then free. */
void kconn_free(kconn_t *c);
const char *kconn_chan_name(enum kchan ch);

#endif
