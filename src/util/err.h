/*
 * err — the one error convention: functions return 0 on success or a
 * negative errno-style code, and fill an nb_err_t with a message for the
 * user when they fail.  `return err_set(err, -ENOENT, "...")` does both.
 * A NULL err is allowed and means "caller does not want the message".
 */
#ifndef NBHUB_ERR_H
#define NBHUB_ERR_H

typedef struct nb_err {
    int  code;
    char msg[1024];
} nb_err_t;

int err_set(nb_err_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_clear(nb_err_t *err);

#endif
