/*
 * cmd_kernel — `nbhub kernel SUBCOMMAND`: kernelspec management, mirroring
 * `jupyter kernelspec`.
 *
 * Subcommands live in a table (name, summary, usage, function) so adding
 * install-spark or remove later is one row plus one function; --help for the
 * group and for each subcommand is generated from the same rows.
 *
 * `list` reproduces `jupyter kernelspec list`: the human form lists every
 * directory holding a kernel.json (even one that fails to load, as jupyter
 * does) sorted by (index of the jupyter data dir it lives under, path), with
 * names left-justified to the longest; it prints "No kernels available" when
 * no spec loads.  --json prints only the specs that load, exactly
 * kspec_list_json(), serialised the way Python's json.dumps(indent=2) does
 * (see cmd_kernel_json_dump) so the two outputs can be diffed.
 * Specs that fail to load get a warning on stderr in both forms.
 */
#include "cli/cli.h"
#include "kernel/kspec.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cmd_kernel_sub {
    const char *name;
    const char *summary;
    const char *usage;      /* printed by `nbhub kernel NAME --help` */
    int (*fn)(int argc, char **argv);
};

static int cmd_kernel_list(int argc, char **argv);

static const char cmd_kernel_list_usage[] =
      "usage: nbhub kernel list [--json] [--missing]\n"
      "\n"
      "List the kernel specs found on the Jupyter search path (JUPYTER_PATH,\n"
      "the user data dir, the active environment's share/jupyter, the system dirs).\n"
      "\n"
      "Options:\n"
      "  --json      print the specs as JSON, like `jupyter kernelspec list --json`\n"
      "  --missing   only list specs whose argv[0] is not found\n"
      "  -h, --help  show this help\n"
      "\n"
      "Exit codes: 0 success, 2 usage error, 7 stdout could not be written.\n";

static const struct cmd_kernel_sub cmd_kernel_subs[] = {
    { "list", "list installed kernel specs", cmd_kernel_list_usage, cmd_kernel_list },
    { "install-spark", "write a PySpark kernel spec (docs/spark.md)", cmd_kernel_install_spark_usage,
      cmd_kernel_install_spark },
    { "remove", "remove kernel specs", cmd_kernel_remove_usage, cmd_kernel_remove },
};
#define CMD_KERNEL_NSUBS (sizeof cmd_kernel_subs / sizeof cmd_kernel_subs[0])

static void cmd_kernel_usage(FILE *f)
{
    fprintf(f, "usage: nbhub kernel <subcommand> [options]\n\nSubcommands:\n");
    for (size_t i = 0; i < CMD_KERNEL_NSUBS; i++)
        fprintf(f, "  %-14s %s\n", cmd_kernel_subs[i].name, cmd_kernel_subs[i].summary);
    fprintf(f, "\nRun 'nbhub kernel <subcommand> --help' for its options.\n");
}

static int cmd_kernel_is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* shutil.which-ish: a name with '/' is taken as a path; else search PATH. */
static int cmd_kernel_which(const char *exe)
{
    struct stat st;
    if (strchr(exe, '/')) return stat(exe, &st) == 0;
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        size_t len = strcspn(p, ":");
        char *cand = xasprintf("%.*s/%s", (int)len, len ? p : ".", exe);
        int ok = stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0;
        free(cand);
        if (ok) return 1;
        p += len;
        if (*p == ':') p++;
    }
    return 0;
}

/* jupyter's _limit_to_missing test: argv[0] exists as a path or is on PATH. */
static int cmd_kernel_present(const kspec_t *k)
{
    struct stat st;
    return stat(k->argv[0], &st) == 0 || cmd_kernel_which(k->argv[0]);
}

/*
 * Python's json.dumps(v, indent=2) byte for byte, so `--json` output diffs
 * clean against jupyter's: jansson differs in three places — uppercase hex
 * in \uXXXX, DEL (0x7f) left raw, and floats printed with %.17g where Python
 * prints the shortest repr that round-trips ("0.1", "1e+100", "1.5e-07").
 */
static void cmd_kernel_json_str(buf_t *b, const char *s, size_t len)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t n;
        /* jansson only holds valid UTF-8, so the lead byte gives the length. */
        if (c < 0x80) { cp = c; n = 1; }
        else if (c < 0xe0) { cp = c & 0x1fu; n = 2; }
        else if (c < 0xf0) { cp = c & 0x0fu; n = 3; }
        else { cp = c & 0x07u; n = 4; }
        for (size_t k = 1; k < n && i + k < len; k++)
            cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3fu);
        i += n;
        switch (cp) {
        case '"':  buf_puts(b, "\\\""); continue;
        case '\\': buf_puts(b, "\\\\"); continue;
        case '\n': buf_puts(b, "\\n"); continue;
        case '\r': buf_puts(b, "\\r"); continue;
        case '\t': buf_puts(b, "\\t"); continue;
        case '\b': buf_puts(b, "\\b"); continue;
        case '\f': buf_puts(b, "\\f"); continue;
        default: break;
        }
        if (cp >= 0x20 && cp < 0x7f) buf_putc(b, (char)cp);
        else if (cp < 0x10000) buf_printf(b, "\\u%04x", cp);
        else {
            cp -= 0x10000;
            buf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ffu));
        }
    }
    buf_putc(b, '"');
}

/* float.__repr__: shortest round-trip digits, fixed notation when the
 * decimal exponent is in [-4, 16), else d.ddde+XX. */
static void cmd_kernel_json_real(buf_t *b, double d)
{
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    const char *p = tmp;
    if (*p == '-') buf_putc(b, *p++);
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < sizeof digits - 1) digits[nd++] = *p;
    digits[nd] = '\0';
    int decpt = (*p == 'e' ? atoi(p + 1) : 0) + 1;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            buf_puts(b, "0.");
            for (int i = decpt; i < 0; i++) buf_putc(b, '0');
            buf_puts(b, digits);
        } else if ((size_t)decpt >= nd) {
            buf_puts(b, digits);
            for (size_t i = nd; i < (size_t)decpt; i++) buf_putc(b, '0');
            buf_puts(b, ".0");
        } else {
            buf_append(b, digits, (size_t)decpt);
            buf_putc(b, '.');
            buf_puts(b, digits + decpt);
        }
    } else {
        buf_putc(b, digits[0]);
        if (nd > 1) {
            buf_putc(b, '.');
            buf_puts(b, digits + 1);
        }
        buf_printf(b, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    }
}

static void cmd_kernel_json_dump(buf_t *b, json_t *v, int depth)
{
    const char *key;
    json_t *item;
    size_t i = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 0) { buf_puts(b, "{}"); return; }
        buf_putc(b, '{');
        json_object_foreach(v, key, item) {
            buf_printf(b, "%s\n%*s", i++ ? "," : "", 2 * (depth + 1), "");
            cmd_kernel_json_str(b, key, strlen(key));
            buf_puts(b, ": ");
            cmd_kernel_json_dump(b, item, depth + 1);
        }
        buf_printf(b, "\n%*s}", 2 * depth, "");
        return;
    case JSON_ARRAY:
        if (json_array_size(v) == 0) { buf_puts(b, "[]"); return; }
        buf_putc(b, '[');
        json_array_foreach(v, i, item) {
            buf_printf(b, "%s\n%*s", i ? "," : "", 2 * (depth + 1), "");
            cmd_kernel_json_dump(b, item, depth + 1);
        }
        buf_printf(b, "\n%*s]", 2 * depth, "");
        return;
    case JSON_STRING:
        cmd_kernel_json_str(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    case JSON_REAL:
        cmd_kernel_json_real(b, json_real_value(v));
        return;
    case JSON_TRUE:  buf_puts(b, "true"); return;
    case JSON_FALSE: buf_puts(b, "false"); return;
    case JSON_NULL:  buf_puts(b, "null"); return;
    }
}

/* Sort key of `jupyter kernelspec list`: data-dir rank, then path. */
static int cmd_kernel_ref_cmp(const void *a, const void *b)
{
    const kspec_ref_t *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->resource_dir, y->resource_dir);
}

static int cmd_kernel_list(int argc, char **argv)
{
    int json = 0, missing = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--missing") == 0) {
            missing = 1;
        } else {
            cli_errorf(argv[i][0] == '-' ? "kernel list: unknown option '%s'"
                                         : "kernel list: unexpected argument '%s'", argv[i]);
            fprintf(stderr, "Try 'nbhub kernel list --help'.\n");
            return NB_EXIT_USAGE;
        }
    }

    /* Load every spec once: for the warnings, --missing and the
     * "No kernels available" test; `keep` marks what is listed. */
    size_t n;
    kspec_ref_t *refs = kspec_scan(&n);
    char *keep = xcalloc(n ? n : 1, 1);
    size_t nloaded = 0;
    for (size_t i = 0; i < n; i++) {
        kspec_t *k;
        nb_err_t err = { 0 };
        if (kspec_load_dir(refs[i].name, refs[i].resource_dir, &k, &err) < 0) {
            cli_errorf("warning: skipping kernel '%s': %s", refs[i].name, err.msg);
            keep[i] = !missing;   /* jupyter's human list still shows it */
            continue;
        }
        nloaded++;
        keep[i] = !missing || !cmd_kernel_present(k);
        kspec_free(k);
    }

    if (json) {
        json_t *all = kspec_list_json();
        if (missing) {
            json_t *specs = json_object_get(all, "kernelspecs");
            for (size_t i = 0; i < n; i++)
                if (!keep[i]) json_object_del(specs, refs[i].name);
        }
        buf_t out = BUF_INIT;
        cmd_kernel_json_dump(&out, all, 0);
        buf_putc(&out, '\n');
        fwrite(out.data, 1, out.len, stdout);
        buf_free(&out);
        json_decref(all);
    } else {
        size_t shown = 0, width = 0;
        for (size_t i = 0; i < n; i++)
            if (keep[i]) {
                shown++;
                if (strlen(refs[i].name) > width) width = strlen(refs[i].name);
            }
        if (nloaded == 0 || shown == 0) {
            printf("No kernels available\n");
        } else {
            kspec_ref_t *sorted = xmalloc(shown * sizeof *sorted);
            size_t j = 0;
            for (size_t i = 0; i < n; i++)
                if (keep[i]) sorted[j++] = refs[i];
            qsort(sorted, shown, sizeof *sorted, cmd_kernel_ref_cmp);
            printf("Available kernels:\n");
            for (size_t i = 0; i < shown; i++)
                printf("  %-*s    %s\n", (int)width, sorted[i].name, sorted[i].resource_dir);
            free(sorted);
        }
    }
    free(keep);
    kspec_scan_free(refs, n);
    if (fflush(stdout) != 0) {
        cli_errorf("kernel list: cannot write to stdout");
        return NB_EXIT_OUTPUT;
    }
    return NB_EXIT_OK;
}

int cmd_kernel(int argc, char **argv)
{
    if (argc < 2) {
        cli_errorf("kernel: missing subcommand");
        cmd_kernel_usage(stderr);
        return NB_EXIT_USAGE;
    }
    if (cmd_kernel_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        cmd_kernel_usage(stdout);
        return NB_EXIT_OK;
    }
    for (size_t i = 0; i < CMD_KERNEL_NSUBS; i++) {
        const struct cmd_kernel_sub *sub = &cmd_kernel_subs[i];
        if (strcmp(argv[1], sub->name) != 0) continue;
        /* --help anywhere wins over everything else, so the subcommand
         * functions only parse real options. */
        for (int j = 2; j < argc; j++)
            if (cmd_kernel_is_help(argv[j])) {
                fputs(sub->usage, stdout);
                return NB_EXIT_OK;
            }
        return sub->fn(argc - 1, argv + 1);
    }
    cli_errorf("kernel: unknown subcommand '%s'", argv[1]);
    cmd_kernel_usage(stderr);
    return NB_EXIT_USAGE;
}
