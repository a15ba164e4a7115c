/* Unit tests for cli/table: widths of UTF-8 text, sanitising, cutting with
 * an ellipsis, alignment, and the time/duration cell formatters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/table.h"
#include "util/buf.h"

#define US 1000000LL

static void test_width(void **state)
{
    (void)state;
    assert_int_equal(table_width(""), 0);
    assert_int_equal(table_width("abc"), 3);
    assert_int_equal(table_width("h\xc3\xa9llo"), 5);              /* é precomposed */
    assert_int_equal(table_width("he\xcc\x81llo"), 5);             /* e + U+0301 combining */
    assert_int_equal(table_width("\xe6\x97\xa5\xe6\x9c\xac"), 4);  /* 日本: wide */
    assert_int_equal(table_width("\xed\x95\x9c"), 2);              /* 한 */
    assert_int_equal(table_width("\xf0\x9f\x98\x80"), 2);          /* 😀 */
    assert_int_equal(table_width("\xef\xbc\xa1"), 2);              /* fullwidth Ａ */
    assert_int_equal(table_width("a\tb\nc"), 5);                   /* blanks count 1 */
    assert_int_equal(table_width("\xff\xfe"), 2);                  /* invalid: U+FFFD each */
}

static void test_clean(void **state)
{
    (void)state;
    char *s = table_clean("a\x1b[31mred\x1b[0m\tx\ny", 0);
    assert_string_equal(s, "a?[31mred?[0m x y");                  /* no ESC reaches the tty */
    free(s);
    s = table_clean("\xc2\x9b" "2J", 0);                            /* C1 CSI */
    assert_string_equal(s, "?2J");
    free(s);
    s = table_clean("ok\xc3(", 0);                                  /* truncated sequence */
    assert_string_equal(s, "ok\xef\xbf\xbd(");
    free(s);
    s = table_clean("\xed\xa0\x80", 0);                             /* a surrogate is not UTF-8 */
    assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
    s = table_clean("\xe0\x80\xaf", 0);                             /* overlong '/' */
    assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
}

static void test_cut(void **state)
{
    (void)state;
    char *s = table_clean("abcdefghij", 5);
    assert_string_equal(s, "abcd\xe2\x80\xa6");
    assert_int_equal(table_width(s), 5);
    free(s);
    s = table_clean("abcde", 5);                                    /* fits: untouched */
    assert_string_equal(s, "abcde");
    free(s);
    /* A wide character that would straddle the limit is left out whole. */
    s = table_clean("ab\xe6\x97\xa5\xe6\x9c\xac", 4);                /* ab日本 is 6 wide */
    assert_string_equal(s, "ab\xe2\x80\xa6");
    assert_int_equal(table_width(s), 3);
    free(s);
    s = table_clean("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 5);      /* 日本語 */
    assert_string_equal(s, "\xe6\x97\xa5\xe6\x9c\xac\xe2\x80\xa6");
    assert_int_equal(table_width(s), 5);
    free(s);
    /* A combining mark stays with its base character. */
    s = table_clean("e\xcc\x81" "e\xcc\x81" "e\xcc\x81" "e\xcc\x81", 3);
    assert_string_equal(s, "e\xcc\x81" "e\xcc\x81\xe2\x80\xa6");
    free(s);
}

static void test_render_alignment(void **state)
{
    (void)state;
    static const char *const hdr[] = { "ID", "NAME", "NOTE" };
    table_t *t = table_new(3, hdr);
    table_set_align(t, 0, TABLE_RIGHT);
    table_add_row(t);
    table_add_cell(t, "7");
    table_add_cell(t, "\xe6\x97\xa5\xe6\x9c\xac");                  /* 2 chars, 4 columns */
    table_add_cell(t, "first");
    table_add_row(t);
    table_add_cellf(t, "%d", 123);
    table_add_cell(t, "abcdef");
    table_add_cell(t, NULL);                                         /* shown as "-" */
    table_add_row(t);
    table_add_cell(t, "9");
    table_add_cell(t, "x");                                          /* missing last cell */
    assert_int_equal(table_rows(t), 3);
    buf_t b = BUF_INIT;
    table_render(t, &b);
    assert_string_equal(b.data,
                        " ID  NAME    NOTE\n"
                        "  7  \xe6\x97\xa5\xe6\x9c\xac    first\n"
                        "123  abcdef  -\n"
                        "  9  x\n");                                /* no trailing blanks */
    buf_free(&b);
    table_free(t);
}

static void test_render_max_width(void **state)
{
    (void)state;
    static const char *const hdr[] = { "TASK", "ERROR" };
    table_t *t = table_new(2, hdr);
    table_set_max_width(t, 1, 10);
    table_add_row(t);
    table_add_cell(t, "a");
    table_add_cell(t, "Traceback (most recent call last): boom");
    table_add_row(t);
    table_add_cell(t, "long-task-name");
    table_add_cell(t, "ok");
    buf_t b = BUF_INIT;
    table_render(t, &b);
    assert_string_equal(b.data,
                        "TASK            ERROR\n"
                        "a               Traceback\xe2\x80\xa6\n"
                        "long-task-name  ok\n");
    buf_free(&b);
    table_free(t);

    /* The default limit applies to every column. */
    static const char *const one[] = { "X" };
    t = table_new(1, one);
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    table_add_row(t);
    table_add_cell(t, big);
    b = (buf_t)BUF_INIT;
    table_render(t, &b);
    char *nl = strchr(b.data, '\n');
    assert_non_null(nl);
    assert_int_equal(table_width(nl + 1), TABLE_DEFAULT_MAX + 1);   /* + its newline */
    buf_free(&b);
    table_free(t);
}

static void test_print(void **state)
{
    (void)state;
    static const char *const hdr[] = { "A" };
    table_t *t = table_new(1, hdr);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(table_print(t, f), 0);
    rewind(f);
    char line[16] = { 0 };
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "A\n");
    fclose(f);
    table_free(t);
}

static void test_parse_time(void **state)
{
    (void)state;
    int64_t us;
    assert_int_equal(table_parse_time("2026-11-22T05:00:00Z", &us), 0);
    assert_true(us == 1795323600LL * US);
    assert_int_equal(table_parse_time("2026-11-22T05:00:00.123456Z", &us), 0);
    assert_true(us == 1795323600LL * US + 123456);
    assert_int_equal(table_parse_time("2026-11-22T05:00:00.5Z", &us), 0);
    assert_true(us == 1795323600LL * US + 500000);
    assert_int_equal(table_parse_time("2026-11-22T06:00:00+01:00", &us), 0);
    assert_true(us == 1795323600LL * US);
    assert_int_equal(table_parse_time("2026-11-22 04:30:00-00:30", &us), 0);
    assert_true(us == 1795323600LL * US);
    assert_int_equal(table_parse_time("2026-11-22T05:00:00", &us), -EINVAL);   /* no zone */
    assert_int_equal(table_parse_time("2026-13-22T05:00:00Z", &us), -EINVAL);
    assert_int_equal(table_parse_time("2026-11-22T05:00:00Zjunk", &us), -EINVAL);
    assert_int_equal(table_parse_time("2026-11-22T05:00:00.Z", &us), -EINVAL);
    assert_int_equal(table_parse_time("yesterday", &us), -EINVAL);
    assert_int_equal(table_parse_time(NULL, &us), -EINVAL);
}

static void test_ago(void **state)
{
    (void)state;
    char s[32];
    int64_t now = 1795323600LL * US;
    table_ago(now, now, s, sizeof s);
    assert_string_equal(s, "now");
    table_ago(now - 999999, now, s, sizeof s);
    assert_string_equal(s, "now");
    table_ago(now - 5 * US, now, s, sizeof s);
    assert_string_equal(s, "5s ago");
    table_ago(now - 185 * US, now, s, sizeof s);
    assert_string_equal(s, "3m ago");
    table_ago(now - 7200 * US, now, s, sizeof s);
    assert_string_equal(s, "2h ago");
    table_ago(now - 3 * 86400 * US, now, s, sizeof s);
    assert_string_equal(s, "3d ago");
    table_ago(now + 90 * US, now, s, sizeof s);
    assert_string_equal(s, "in 1m");
}

static void test_time_local(void **state)
{
    (void)state;
    char s[96];
    int64_t now = (1795323600LL + 180) * US;
    setenv("TZ", "UTC", 1);
    tzset();
    table_time("2026-11-22T05:00:00Z", now, s, sizeof s);
    assert_string_equal(s, "2026-11-22 05:00:00 (3m ago)");
    setenv("TZ", "Europe/Berlin", 1);   /* CET in November: +1 */
    tzset();
    table_time("2026-11-22T05:00:00Z", now, s, sizeof s);
    assert_string_equal(s, "2026-11-22 06:00:00 (3m ago)");
    table_time(NULL, now, s, sizeof s);
    assert_string_equal(s, "-");
    table_time("not a time", now, s, sizeof s);
    assert_string_equal(s, "not a time");
    setenv("TZ", "UTC", 1);
    tzset();
}

static void test_duration(void **state)
{
    (void)state;
    char s[32];
    table_duration(400000, s, sizeof s);
    assert_string_equal(s, "0.4s");
    table_duration(12 * US, s, sizeof s);
    assert_string_equal(s, "12s");
    table_duration(125 * US, s, sizeof s);
    assert_string_equal(s, "2m05s");
    table_duration(3720 * US, s, sizeof s);
    assert_string_equal(s, "1h02m");
    table_duration((3 * 86400 + 4 * 3600) * US, s, sizeof s);
    assert_string_equal(s, "3d04h");
    table_duration(-1, s, sizeof s);
    assert_string_equal(s, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_width),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_render_alignment),
        cmocka_unit_test(test_render_max_width),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_ago),
        cmocka_unit_test(test_time_local),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
