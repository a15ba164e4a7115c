/*
 * cmd_user — `nbhub user SUBCOMMAND`: users and API tokens.
 *
 * Two ways to reach the users:
 *   - through the REST API of a running server (the default), as any other
 *     client command, with an admin's token (or one's own, for one's own
 *     password and tokens);
 *   - locally, straight in $HOME/nbhub.db (store_open), with --home DIR, or
 *     when NBHUB_HOME is set and neither NBHUB_URL nor --url is.  This is how
 *     the very first admin and their first token come to exist: no token,
 *     no API call, so the bootstrap cannot go through the API.  Whoever can
 *     write the database owns the server anyway (it is created 0600), so the
 *     local mode asks for nothing more.  SQLite's WAL lets this run while
 *     the server runs; the server reads users and tokens per request.
 *
 * Secrets.  A password is read from the terminal (/dev/tty, not stdin, as
 * passwd and ssh do) with echo off, asked twice; or, for scripts, as one
 * line of stdin with --password-stdin, never from the command line, where
 * `ps` and the shell history would show it.  The terminal's settings are
 * restored on every path out, a Ctrl-C during the prompt included.  A new
 * token is printed once, alone on stdout, so
 * `export NBHUB_TOKEN=$(nbhub user token alice --home H)` works; only its
 * SHA-256 digest is stored.  Our own buffers that held a secret are wiped
 * (the copies inside jansson and libcurl are beyond our reach).
 */
#include "auth/passwd.h"
#include "auth/token.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/table.h"
#include "sched/flow.h"
#include "store/store.h"
#include "store/store_auth.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int cmd_user_add(int argc, char **argv);
static int cmd_user_passwd(int argc, char **argv);
static int cmd_user_token(int argc, char **argv);
static int cmd_user_list(int argc, char **argv);

static const char cmd_user_help[] =
    "Manage users and API tokens, through the server's API (an admin's token), or\n"
    "locally in DIR/nbhub.db with --home DIR (or NBHUB_HOME set and no NBHUB_URL):\n"
    "that is how the first admin is made:\n"
    "\n"
    "  nbhub user add alice --admin --home ~/.local/share/nbhub\n"
    "  export NBHUB_TOKEN=$(nbhub user token alice --home ~/.local/share/nbhub)\n";

#define CMD_USER_OPTS \
    "  --home DIR     work on DIR/nbhub.db directly instead of the API (default when\n" \
    "                 NBHUB_HOME is set and NBHUB_URL is not)\n" \
    CLIENT_OPTS_HELP \
    "  -h, --help     show this help\n"

static const char cmd_user_add_usage[] =
    "usage: nbhub user add NAME [--admin] [--trusted] [--password-stdin | --no-password] [--json]\n"
    "\n"
    "Create a user.  The password is asked twice on the terminal (echo off), or\n"
    "read as one line of stdin; at least 8 characters.\n"
    "\n"
    "Options:\n"
    "  --admin           the user may manage all flows and users\n"
    "  --trusted         the user may save command tasks and paths outside a flow's\n"
    "                    directory on a server with isolation: shared (docs/security.md)\n"
    "  --password-stdin  read the password from the first line of stdin\n"
    "  --no-password     no password login (API tokens only)\n"
    "  --json            print the new user as JSON\n"
    CMD_USER_OPTS;

static const char cmd_user_passwd_usage[] =
    "usage: nbhub user passwd NAME [--password-stdin] [--revoke-tokens]\n"
    "\n"
    "Set a user's password (asked twice on the terminal, or one line of stdin).\n"
    "The user's browser sessions end.  Through the API, changing one's own\n"
    "password (admins too) needs the current one: it is asked first on the\n"
    "terminal, or is the first line of stdin and the new one the second (an\n"
    "empty line for a user who has no password yet).  A wrong current password\n"
    "counts as a failed login.  An admin setting someone else's password, and\n"
    "the local mode (--home), need no current password.\n"
    "\n"
    "Options:\n"
    "  --password-stdin  read the password(s) from stdin, one per line\n"
    "  --revoke-tokens   also revoke all of the user's API tokens (the one this\n"
    "                    command uses too, when it is the user's own)\n"
    CMD_USER_OPTS;

static const char cmd_user_token_usage[] =
    "usage: nbhub user token NAME [--name LABEL] [--expires-in DURATION] [--json]\n"
    "\n"
    "Create an API token for a user and print it, alone on stdout.  It is shown\n"
    "this once: only its digest is kept.\n"
    "\n"
    "  export NBHUB_TOKEN=$(nbhub user token alice)\n"
    "\n"
    "Options:\n"
    "  --name LABEL           what the token is for (default: cli)\n"
    "  --expires-in DURATION  e.g. 30d, 12h, 1h30m, or seconds (default: never)\n"
    "  --json                 print the token and its details as JSON\n"
    CMD_USER_OPTS;

static const char cmd_user_list_usage[] =
    "usage: nbhub user list [--json]\n"
    "\n"
    "List the users (admins only, through the API).\n"
    "\n"
    "Options:\n"
    "  --json         print the users as JSON\n"
    CMD_USER_OPTS;

static const struct client_sub cmd_user_subs[] = {
    { "add",    "create a user",                    cmd_user_add_usage,    cmd_user_add },
    { "passwd", "set a user's password",            cmd_user_passwd_usage, cmd_user_passwd },
    { "token",  "create an API token for a user",   cmd_user_token_usage,  cmd_user_token },
    { "list",   "list users",                       cmd_user_list_usage,   cmd_user_list },
};
#define CMD_USER_NSUBS (sizeof cmd_user_subs / sizeof cmd_user_subs[0])

int cmd_user(int argc, char **argv)
{
    return client_dispatch("user", cmd_user_help, cmd_user_subs, CMD_USER_NSUBS, argc, argv);
}

/* ------------------------------------------------------------ arguments */

struct cmd_user_args {
    struct client_opts o;
    const char *home;          /* --home */
    const char *name;          /* the user */
    const char *label;         /* token --name */
    const char *expires_in;
    int admin, pw_stdin, no_password, revoke_tokens, trusted;
};

/* Flags each subcommand accepts beyond the common ones. */
enum { U_ADMIN = 1, U_PWSTDIN = 2, U_NOPW = 4, U_LABEL = 8, U_EXPIRES = 16, U_NAME = 32,
       U_REVOKE = 64, U_TRUSTED = 128 };

static int cmd_user_parse(int argc, char **argv, const char *cmd, unsigned allowed,
                          struct cmd_user_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int r = client_opt_common(&a->o, argc, argv, &i, cmd);
        if (r == 0) r = client_opt_value(argc, argv, &i, "--home", &a->home, cmd);
        if (r == 0 && (allowed & U_LABEL))
            r = client_opt_value(argc, argv, &i, "--name", &a->label, cmd);
        if (r == 0 && (allowed & U_EXPIRES))
            r = client_opt_value(argc, argv, &i, "--expires-in", &a->expires_in, cmd);
        if (r < 0) return CLIENT_EXIT_USAGE;
        if (r) continue;
        if ((allowed & U_ADMIN) && strcmp(s, "--admin") == 0) a->admin = 1;
        else if ((allowed & U_TRUSTED) && strcmp(s, "--trusted") == 0) a->trusted = 1;
        else if ((allowed & U_PWSTDIN) && strcmp(s, "--password-stdin") == 0) a->pw_stdin = 1;
        else if ((allowed & U_NOPW) && strcmp(s, "--no-password") == 0) a->no_password = 1;
        else if ((allowed & U_REVOKE) && strcmp(s, "--revoke-tokens") == 0) a->revoke_tokens = 1;
        else if (s[0] == '-' && s[1]) return client_usage_error(cmd, "unknown option '%s'", s);
        else if (!(allowed & U_NAME) || a->name)
            return client_usage_error(cmd, "unexpected argument '%s'", s);
        else a->name = s;
    }
    if ((allowed & U_NAME) && !a->name) return client_usage_error(cmd, "missing user NAME");
    if (a->home && (a->o.url || a->o.token))
        return client_usage_error(cmd, "--home (local mode) and --url/--token exclude each other");
    if (a->pw_stdin && a->no_password)
        return client_usage_error(cmd, "--password-stdin and --no-password exclude each other");
    if (a->home && !a->home[0]) return client_usage_error(cmd, "--home needs a directory");
    return CLIENT_EXIT_OK;
}

/* The local home, or NULL for the API (see the essay for the rule). */
static const char *cmd_user_local_home(const struct cmd_user_args *a)
{
    if (a->home) return a->home;
    if (a->o.url || a->o.token) return NULL;
    const char *url = getenv("NBHUB_URL"), *home = getenv("NBHUB_HOME");
    if (url && url[0]) return NULL;
    return home && home[0] ? home : NULL;
}

/* A name the rest of nbhub can carry: in a flow's owner: field, in URL
 * paths, in "user:" log fields, in JSON — UTF-8, no blanks, no '/' or ':'. */
static int cmd_user_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64) return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '/' || *p == ':') return 0;
    json_t *utf8 = json_string(name);   /* jansson validates UTF-8 */
    int ok = utf8 != NULL;
    json_decref(utf8);
    return ok;
}

/* ------------------------------------------------------------ passwords */

static int cmd_user_tty_fd = -1;
static struct termios cmd_user_tty_saved;

/* A signal while echo is off: put the terminal back, then die of it. */
static void cmd_user_tty_restore_sig(int sig)
{
    if (cmd_user_tty_fd >= 0) tcsetattr(cmd_user_tty_fd, TCSAFLUSH, &cmd_user_tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from fd into buf (NUL-terminated, newline dropped); -1 on EOF
 * before any byte or on an error, -2 when longer than the buffer. */
static int cmd_user_read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    int got = 0, too_long = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got = 1;
        if (ch == '\n') break;
        if (n + 1 < size) buf[n++] = ch;
        else too_long = 1;
    }
    if (n && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    if (too_long) return -2;
    return got ? 0 : -1;
}

/* Ask on the terminal with echo off. */
static int cmd_user_ask(int fd, const char *prompt, char *buf, size_t size)
{
    struct termios t;
    if (tcgetattr(fd, &cmd_user_tty_saved) < 0) return -1;
    t = cmd_user_tty_saved;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_lflag |= ICANON;
    struct sigaction sa = { 0 }, old_int, old_term, old_hup, old_quit;
    sa.sa_handler = cmd_user_tty_restore_sig;
    sigemptyset(&sa.sa_mask);
    cmd_user_tty_fd = fd;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sigaction(SIGQUIT, &sa, &old_quit);
    /* Echo off before the prompt shows: whatever is typed after seeing it
     * must not be echoed (and TCSAFLUSH drops typeahead, as getpass does). */
    tcsetattr(fd, TCSAFLUSH, &t);
    if (write(fd, prompt, strlen(prompt)) < 0) { /* the read below reports a dead tty */ }
    int rc = cmd_user_read_line(fd, buf, size);
    tcsetattr(fd, TCSAFLUSH, &cmd_user_tty_saved);
    cmd_user_tty_fd = -1;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    if (write(fd, "\n", 1) < 0) { /* the Enter was not echoed; nothing else to do */ }
    return rc;
}

/*
 * The new password of `user` into a fresh string (*out; wipe and free),
 * from stdin or the terminal.  Returns an exit code, the message printed.
 */
static int cmd_user_password(const char *user, int from_stdin, char **out)
{
    char a[PASSWD_MAX_LEN + 2], b[PASSWD_MAX_LEN + 2];
    int rc = CLIENT_EXIT_OK;
    *out = NULL;
    if (from_stdin) {
        int r = cmd_user_read_line(STDIN_FILENO, a, sizeof a);
        if (r == -1) {
            cli_errorf("no password on stdin");
            return CLIENT_EXIT_INVALID;
        }
        if (r == -2) a[PASSWD_MAX_LEN + 1] = '\0';   /* too long: caught below */
    } else {
        int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            cli_errorf("no terminal to ask for the password on: use --password-stdin");
            return CLIENT_EXIT_USAGE;
        }
        char *p1 = xasprintf("New password for %s: ", user);
        int r1 = cmd_user_ask(fd, p1, a, sizeof a);
        int r2 = r1 == -1 ? -1 : cmd_user_ask(fd, "Repeat it: ", b, sizeof b);
        free(p1);
        close(fd);
        if (r1 == -1 || r2 == -1) {
            cli_errorf("no password given");
            rc = CLIENT_EXIT_INVALID;
        } else if (strcmp(a, b) != 0) {
            cli_errorf("the two passwords differ");
            rc = CLIENT_EXIT_INVALID;
        }
        explicit_bzero(b, sizeof b);
    }
    if (rc == CLIENT_EXIT_OK && strlen(a) < PASSWD_MIN_LEN) {
        cli_errorf("the password must be at least %d characters", PASSWD_MIN_LEN);
        rc = CLIENT_EXIT_INVALID;
    } else if (rc == CLIENT_EXIT_OK && strlen(a) > PASSWD_MAX_LEN) {
        cli_errorf("the password must be at most %d characters", PASSWD_MAX_LEN);
        rc = CLIENT_EXIT_INVALID;
    }
    if (rc == CLIENT_EXIT_OK) *out = xstrdup(a);
    explicit_bzero(a, sizeof a);
    return rc;
}

/*
 * The current password of `user` (for a change of one's own through the
 * API) into a fresh string, or NULL when given empty (a user who has none
 * yet); from the first line of stdin or asked once on the terminal.
 */
static int cmd_user_old_password(const char *user, int from_stdin, char **out)
{
    char a[PASSWD_MAX_LEN + 2];
    int r;
    *out = NULL;
    if (from_stdin) {
        r = cmd_user_read_line(STDIN_FILENO, a, sizeof a);
    } else {
        int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            cli_errorf("no terminal to ask for the password on: use --password-stdin");
            return CLIENT_EXIT_USAGE;
        }
        char *p = xasprintf("Current password for %s: ", user);
        r = cmd_user_ask(fd, p, a, sizeof a);
        free(p);
        close(fd);
    }
    if (r == -1) {
        cli_errorf(from_stdin ? "no current password on stdin (the first line; the new one is the second)"
                              : "no current password given");
        return CLIENT_EXIT_INVALID;
    }
    if (r == 0 && a[0]) *out = xstrdup(a);
    explicit_bzero(a, sizeof a);
    return r == -2 ? (cli_errorf("the current password is too long"), CLIENT_EXIT_INVALID)
                   : CLIENT_EXIT_OK;
}

static void cmd_user_secret_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ------------------------------------------------------------ local store */

/* API time text of store microseconds ("...Z", fraction only when not 0),
 * or JSON null for 0. */
static json_t *cmd_user_time(int64_t us)
{
    if (!us) return json_null();
    char t[64];
    time_iso8601_utc(us, t, sizeof t, 1);
    if (us % 1000000 == 0) strcpy(t + 19, "Z");
    return json_string(t);
}

static json_t *cmd_user_json(const store_user_t *u)
{
    return json_pack("{s:I, s:s, s:b, s:o, s:b, s:b}", "id", (json_int_t)u->id, "name", u->name,
                     "admin", u->is_admin, "created_at", cmd_user_time(u->created_at),
                     "disabled", u->disabled, "trusted", u->trusted);
}

/* The exit code of a store error, its message printed. */
static int cmd_user_store_err(int rc, const nb_err_t *err)
{
    cli_errorf("%s", err->msg);
    switch (rc) {
    case -EEXIST: return CLIENT_EXIT_CONFLICT;
    case -ENOENT: return CLIENT_EXIT_NOT_FOUND;
    case -EINVAL: return CLIENT_EXIT_INVALID;
    default:      return CLIENT_EXIT_UNREACHABLE;
    }
}

/* Open DIR/nbhub.db; `create` makes DIR (0700) and the database when
 * missing, else a missing database is "not found". */
static int cmd_user_open(const char *home, int create, store_t **st)
{
    nb_err_t err;
    char *db = xasprintf("%s/nbhub.db", home);
    int rc = CLIENT_EXIT_OK;
    if (!create && !fs_exists(db)) {
        cli_errorf("no nbhub database in %s; make the first user with: nbhub user add NAME "
                   "--admin --home %s", home, home);
        rc = CLIENT_EXIT_NOT_FOUND;
    } else if (create && fs_mkdir_p(home, 0700, &err) < 0) {
        cli_errorf("%s", err.msg);
        rc = CLIENT_EXIT_FAILED;
    } else {
        int e = store_open(db, st, &err);
        if (e < 0) rc = cmd_user_store_err(e, &err);
    }
    free(db);
    return rc;
}

/* Look up a user by name in an open store; an exit code. */
static int cmd_user_find(store_t *st, const char *name, store_user_t *u)
{
    nb_err_t err;
    int e = store_user_by_name(st, name, u, &err);
    if (e == -ENOENT) {
        cli_errorf("no user named '%s'", name);
        return CLIENT_EXIT_NOT_FOUND;
    }
    return e < 0 ? cmd_user_store_err(e, &err) : CLIENT_EXIT_OK;
}

/* ------------------------------------------------------------ add */

static int cmd_user_add_local(const struct cmd_user_args *a, const char *home, const char *pw)
{
    store_t *st;
    int rc = cmd_user_open(home, 1, &st);
    if (rc) return rc;
    nb_err_t err;
    char *hash = NULL;
    if (pw && passwd_hash(pw, &hash, &err) < 0) {
        store_close(st);
        cli_errorf("%s", err.msg);
        return CLIENT_EXIT_INVALID;
    }
    int64_t id;
    int e = store_user_add(st, a->name, hash, a->admin, time_now_us(), &id, &err);
    free(hash);
    if (e == 0 && a->trusted) e = store_user_set_trusted(st, id, 1, &err);
    if (e < 0) {
        store_close(st);
        return cmd_user_store_err(e, &err);
    }
    store_user_t u = { 0 };
    rc = cmd_user_find(st, a->name, &u);
    store_close(st);
    if (rc) return rc;
    if (a->o.json) {
        json_t *j = cmd_user_json(&u);
        rc = client_print_json(j);
        json_decref(j);
    } else {
        printf("created user %s%s\n", u.name, u.is_admin ? " (admin)" : "");
    }
    store_user_clear(&u);
    return rc ? rc : client_flush();
}

static int cmd_user_add_api(const struct cmd_user_args *a, const char *pw)
{
    client_t *c;
    int rc = client_open(&a->o, &c);
    if (rc) return rc;
    /* json_pack refuses text that is not UTF-8: such a name or password
     * cannot travel in JSON. */
    json_t *body = json_pack("{s:s, s:b}", "name", a->name, "admin", a->admin);
    if (body && a->trusted) json_object_set_new(body, "trusted", json_true());
    if (!body || (pw && json_object_set_new(body, "password", json_string(pw)) < 0)) {
        json_decref(body);
        client_close(c);
        cli_errorf("user add: the name and the password must be UTF-8 text");
        return CLIENT_EXIT_INVALID;
    }
    json_t *u = NULL;
    rc = client_call(c, "POST", "/api/v1/users", body, &u);
    json_decref(body);
    client_close(c);
    if (rc) return rc;
    if (a->o.json) {
        rc = client_print_json(u);
    } else {
        char *n = table_clean(client_str(u, "name") ? client_str(u, "name") : a->name, 0);
        printf("created user %s%s\n", n, json_is_true(json_object_get(u, "admin")) ? " (admin)" : "");
        free(n);
    }
    json_decref(u);
    return rc ? rc : client_flush();
}

static int cmd_user_add(int argc, char **argv)
{
    struct cmd_user_args a;
    int rc = cmd_user_parse(argc, argv, "user add", U_NAME | U_ADMIN | U_TRUSTED | U_PWSTDIN | U_NOPW, &a);
    if (rc) return rc;
    if (!cmd_user_name_ok(a.name)) {
        cli_errorf("user add: bad user name '%s': 1 to 64 bytes of UTF-8, no spaces, '/' or ':'",
                   a.name);
        return CLIENT_EXIT_INVALID;
    }
    const char *home = cmd_user_local_home(&a);
    char *pw = NULL;
    if (!a.no_password && (rc = cmd_user_password(a.name, a.pw_stdin, &pw))) return rc;
    rc = home ? cmd_user_add_local(&a, home, pw) : cmd_user_add_api(&a, pw);
    cmd_user_secret_free(pw);
    return rc;
}

/* ------------------------------------------------------------ passwd */

static int cmd_user_passwd_local(const struct cmd_user_args *a, const char *home, const char *pw)
{
    store_t *st;
    int rc = cmd_user_open(home, 0, &st);
    if (rc) return rc;
    store_user_t u = { 0 };
    nb_err_t err;
    char *hash = NULL;
    if ((rc = cmd_user_find(st, a->name, &u)) == CLIENT_EXIT_OK) {
        if (passwd_hash(pw, &hash, &err) < 0) {
            cli_errorf("%s", err.msg);
            rc = CLIENT_EXIT_INVALID;
        } else {
            int e = store_user_change_password(st, u.id, hash, NULL, a->revoke_tokens, &err);
            if (e < 0) rc = cmd_user_store_err(e, &err);
        }
    }
    free(hash);
    store_user_clear(&u);
    store_close(st);
    return rc;
}

/* Through the API: whose token this is decides whether the current
 * password is needed (the server decides too; asking only when it will
 * be checked spares an admin a pointless prompt). */
static int cmd_user_passwd_api(const struct cmd_user_args *a)
{
    client_t *c;
    int rc = client_open(&a->o, &c);
    if (rc) return rc;
    json_t *me = NULL;
    if ((rc = client_call(c, "GET", "/api/v1/me", NULL, &me))) {
        client_close(c);
        return rc;
    }
    const char *me_name = client_str(me, "name");
    int self = me_name && strcmp(me_name, a->name) == 0;
    json_decref(me);
    char *old = NULL, *pw = NULL;
    if (self) rc = cmd_user_old_password(a->name, a->pw_stdin, &old);
    if (rc == CLIENT_EXIT_OK && (rc = cmd_user_password(a->name, a->pw_stdin, &pw)) && self && a->pw_stdin)
        cli_errorf("changing your own password: stdin holds the current password on its first "
                   "line and the new one on the second");
    json_t *body = NULL;
    if (rc == CLIENT_EXIT_OK) {
        body = json_pack("{s:s}", "password", pw);
        if (body && old && json_object_set_new(body, "old_password", json_string(old)) < 0) {
            json_decref(body);
            body = NULL;
        }
        if (body && a->revoke_tokens) json_object_set_new(body, "revoke_tokens", json_true());
        if (!body) {
            cli_errorf("the passwords must be UTF-8 text");
            rc = CLIENT_EXIT_INVALID;
        }
    }
    if (rc == CLIENT_EXIT_OK) {
        char *e = client_esc(a->name);
        char *path = xasprintf("/api/v1/users/%s/password", e);
        rc = client_call(c, "PUT", path, body, NULL);
        free(path);
        free(e);
    }
    json_decref(body);
    cmd_user_secret_free(old);
    cmd_user_secret_free(pw);
    client_close(c);
    return rc;
}

static int cmd_user_passwd(int argc, char **argv)
{
    struct cmd_user_args a;
    int rc = cmd_user_parse(argc, argv, "user passwd", U_NAME | U_PWSTDIN | U_REVOKE, &a);
    if (rc) return rc;
    if (a.o.json) return client_usage_error("user passwd", "--json is not supported here");
    const char *home = cmd_user_local_home(&a);
    if (home) {
        char *pw = NULL;
        if ((rc = cmd_user_password(a.name, a.pw_stdin, &pw))) return rc;
        rc = cmd_user_passwd_local(&a, home, pw);
        cmd_user_secret_free(pw);
    } else {
        rc = cmd_user_passwd_api(&a);
    }
    if (rc) return rc;
    printf("password of %s changed%s\n", a.name, a.revoke_tokens ? "; its API tokens are revoked" : "");
    return client_flush();
}

/* ------------------------------------------------------------ token */

static int cmd_user_token_local(const struct cmd_user_args *a, const char *home, int64_t ttl)
{
    store_t *st;
    int rc = cmd_user_open(home, 0, &st);
    if (rc) return rc;
    store_user_t u = { 0 };
    if ((rc = cmd_user_find(st, a->name, &u))) {
        store_close(st);
        return rc;
    }
    char tok[TOKEN_LEN + 1], digest[TOKEN_DIGEST_LEN + 1];
    nb_err_t err;
    const char *label = a->label ? a->label : "cli";
    int64_t now = time_now_us(), expires = ttl ? now + ttl * 1000000 : 0, id = 0;
    int e = token_new(TOKEN_API, tok);
    if (e < 0) {
        cli_errorf("cannot make a token: no random bytes");
        rc = CLIENT_EXIT_FAILED;
    } else {
        token_digest(tok, digest);
        e = store_token_add(st, u.id, label, digest, now, expires, &id, &err);
        if (e < 0) rc = cmd_user_store_err(e, &err);
    }
    store_user_clear(&u);
    store_close(st);
    if (rc == CLIENT_EXIT_OK) {
        if (a->o.json) {
            json_t *j = json_pack("{s:I, s:s, s:s, s:o, s:o}", "id", (json_int_t)id, "name", label,
                                  "token", tok, "created_at", cmd_user_time(now), "expires_at",
                                  cmd_user_time(expires));
            rc = client_print_json(j);
            json_decref(j);
        } else {
            printf("%s\n", tok);
        }
    }
    explicit_bzero(tok, sizeof tok);
    return rc ? rc : client_flush();
}

static int cmd_user_token_api(const struct cmd_user_args *a, int64_t ttl)
{
    client_t *c;
    int rc = client_open(&a->o, &c);
    if (rc) return rc;
    json_t *body = json_pack("{s:s}", "name", a->label ? a->label : "cli");
    if (!body) {
        client_close(c);
        cli_errorf("user token: --name must be UTF-8 text");
        return CLIENT_EXIT_INVALID;
    }
    if (ttl) json_object_set_new(body, "expires_in", json_integer(ttl));
    char *e = client_esc(a->name);
    char *path = xasprintf("/api/v1/users/%s/tokens", e);
    json_t *ans = NULL;
    rc = client_call(c, "POST", path, body, &ans);
    free(path);
    free(e);
    json_decref(body);
    client_close(c);
    if (rc) return rc;
    const char *tok = client_str(ans, "token");
    if (a->o.json) {
        rc = client_print_json(ans);
    } else if (!tok || !token_is(tok, TOKEN_API)) {
        cli_errorf("the server's answer holds no token");
        rc = CLIENT_EXIT_UNREACHABLE;
    } else {
        printf("%s\n", tok);
    }
    json_decref(ans);
    return rc ? rc : client_flush();
}

static int cmd_user_token(int argc, char **argv)
{
    struct cmd_user_args a;
    int rc = cmd_user_parse(argc, argv, "user token", U_NAME | U_LABEL | U_EXPIRES, &a);
    if (rc) return rc;
    int64_t ttl = 0;
    if (a.expires_in && (flow_duration_parse(a.expires_in, &ttl) < 0 || ttl <= 0))
        return client_usage_error("user token", "--expires-in wants a duration like 30d, 12h, "
                                  "1h30m or a number of seconds, got '%s'", a.expires_in);
    if (a.label && (!a.label[0] || strlen(a.label) > 100))
        return client_usage_error("user token", "--name wants 1 to 100 characters");
    const char *home = cmd_user_local_home(&a);
    return home ? cmd_user_token_local(&a, home, ttl) : cmd_user_token_api(&a, ttl);
}

/* ------------------------------------------------------------ list */

static int cmd_user_list(int argc, char **argv)
{
    struct cmd_user_args a;
    int rc = cmd_user_parse(argc, argv, "user list", 0, &a);
    if (rc) return rc;
    const char *home = cmd_user_local_home(&a);
    json_t *ans = NULL;
    if (home) {
        store_t *st;
        if ((rc = cmd_user_open(home, 0, &st))) return rc;
        store_users_t l = { 0 };
        nb_err_t err;
        int e = store_users_list(st, &l, &err);
        if (e < 0) rc = cmd_user_store_err(e, &err);
        else {
            json_t *users = json_array();
            for (size_t i = 0; i < l.n; i++) json_array_append_new(users, cmd_user_json(&l.v[i]));
            ans = json_pack("{s:o}", "users", users);
        }
        store_users_free(&l);
        store_close(st);
    } else {
        client_t *c;
        if ((rc = client_open(&a.o, &c))) return rc;
        rc = client_call(c, "GET", "/api/v1/users", NULL, &ans);
        client_close(c);
    }
    if (rc) return rc;
    if (a.o.json) {
        rc = client_print_json(ans);
        json_decref(ans);
        return rc ? rc : client_flush();
    }
    static const char *const hdr[] = { "ID", "NAME", "ADMIN", "DISABLED", "CREATED" };
    table_t *tb = table_new(5, hdr);
    table_set_align(tb, 0, TABLE_RIGHT);
    int64_t now = time_now_us();
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(ans, "users"), i, u) {
        char t[96];
        table_add_row(tb);
        table_add_cellf(tb, "%lld", (long long)client_int(u, "id", 0));
        table_add_cell(tb, client_str(u, "name"));
        table_add_cell(tb, json_is_true(json_object_get(u, "admin")) ? "yes" : "no");
        table_add_cell(tb, json_is_true(json_object_get(u, "disabled")) ? "yes" : "no");
        table_time(client_str(u, "created_at"), now, t, sizeof t);
        table_add_cell(tb, t);
    }
    buf_t out = BUF_INIT;
    if (table_rows(tb)) table_render(tb, &out);
    else buf_puts(&out, "No users.\n");
    table_free(tb);
    json_decref(ans);
    fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return client_flush();
}
