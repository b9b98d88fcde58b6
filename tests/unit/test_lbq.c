/*
 * lbq's queue entry decoder (tools/lbq/entry.c): well-formed entries decoded field by field
 * (escapes, \u sequences with surrogate pairs, raw UTF-8, binary bodies through body_b64,
 * many and large headers, unknown keys skipped), then malformed ones each rejected with a
 * message that names the byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/lbq/entry.h"

static int parse_str(struct lbq_entry *e, const char *s, struct lb_err *err)
{
    return lbq_entry_parse(e, s, strlen(s), err);
}

static void test_minimal(void **state)
{
    struct lbq_entry e;
    struct lb_err err = {{0}};
    const char *s =
        " {\"id\":\"a1\",\"ts\":1700000000123,\"method\":\"POST\",\"uri\":\"/flash/x?q=1\"}\n";
    assert_int_equal(parse_str(&e, s, &err), 0);
    assert_string_equal(e.id, "a1");
    assert_true(e.ts == 1700000000123LL);
    assert_string_equal(e.method, "POST");
    assert_string_equal(e.uri, "/flash/x?q=1");
    assert_int_equal(e.nheaders, 0);
    assert_int_equal(e.body_len, 0);
    assert_non_null(e.body);
    lbq_entry_free(&e);
}

static void test_full_with_escapes(void **state)
{
    struct lbq_entry e;
    struct lb_err err = {{0}};
    const char *s =
        "{\"id\":\"x\",\"ts\":0,\"method\":\"PUT\",\"uri\":\"/a\","
        "\"headers\":{\"Content-Type\":\"application/json\",\"X-Q\":\"a\\\"b\\\\c\\/d\\te\"},"
        "\"body\":\"{\\\"k\\\":1}\\n\\r\\b\\f\\u00e9\\u20ac\\ud83d\\ude00\\u0000z\","
        "\"future\":{\"a\":[1,2.5e3,-0.5,true,false,null,\"s\"]}}";
    assert_int_equal(parse_str(&e, s, &err), 0);
    assert_int_equal(e.nheaders, 2);
    assert_memory_equal(e.headers[0].name, "Content-Type", 12);
    assert_int_equal(e.headers[0].name_len, 12);
    assert_int_equal(e.headers[1].value_len, 9);
    assert_memory_equal(e.headers[1].value, "a\"b\\c/d\te", 9);
    const char want[] = "{\"k\":1}\n\r\b\f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
    assert_int_equal(e.body_len, sizeof(want) - 1);
    assert_memory_equal(e.body, want, sizeof(want) - 1);
    lbq_entry_free(&e);
}

static void test_raw_utf8(void **state)
{
    struct lbq_entry e;
    const char *s = "{\"id\":\"u\",\"ts\":5,\"method\":\"POST\",\"uri\":\"/\",\"headers\":{\"X-N\":"
                    "\"caf\xc3\xa9\"},\"body\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}";
    assert_int_equal(parse_str(&e, s, NULL), 0);
    assert_int_equal(e.body_len, 7);
    assert_int_equal(e.headers[0].value_len, 5);
    lbq_entry_free(&e);
}

static void test_body_b64(void **state)
{
    static const struct {
        const char *b64;
        const char *raw;
        size_t n;
    } cases[] = {
        {"", "", 0},
        {"AA==", "\0", 1},
        {"/w==", "\xff", 1},
        {"AP8=", "\0\xff", 2},
        {"AP+A", "\0\xff\x80", 3},
        {"3q2+7wCAgQ==", "\xde\xad\xbe\xef\0\x80\x81", 7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char s[256];
        struct lbq_entry e;
        struct lb_err err = {{0}};
        snprintf(s, sizeof(s),
                 "{\"id\":\"b\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\",\"body_b64\":\"%s\"}",
                 cases[i].b64);
        assert_int_equal(parse_str(&e, s, &err), 0);
        assert_int_equal(e.body_len, cases[i].n);
        assert_memory_equal(e.body, cases[i].raw, cases[i].n);
        lbq_entry_free(&e);
    }
}

/* 200 headers of 4 KiB values each, and one header value of 256 KiB. */
static void test_large_headers(void **state)
{
    size_t cap = 2 << 20, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)sprintf(s + n,
                         "{\"id\":\"h\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\",\"headers\":{");
    for (int i = 0; i < 200; i++) {
        n += (size_t)sprintf(s + n, "%s\"X-H-%d\":\"", i ? "," : "", i);
        memset(s + n, 'a' + i % 26, 4096);
        n += 4096;
        s[n++] = '"';
    }
    n += (size_t)sprintf(s + n, ",\"X-Big\":\"");
    memset(s + n, 'z', 256 << 10);
    n += 256 << 10;
    n += (size_t)sprintf(s + n, "\"}}");
    struct lbq_entry e;
    struct lb_err err = {{0}};
    assert_int_equal(lbq_entry_parse(&e, s, n, &err), 0);
    assert_int_equal(e.nheaders, 201);
    assert_int_equal(e.headers[199].value_len, 4096);
    assert_int_equal(e.headers[199].value[4095], 'a' + 199 % 26);
    assert_int_equal(e.headers[200].value_len, 256 << 10);
    lbq_entry_free(&e);
    free(s);
}

static void test_too_many_headers(void **state)
{
    char *s = malloc(64 << 10);
    size_t n = (size_t)sprintf(
        s, "{\"id\":\"h\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\",\"headers\":{");
    for (int i = 0; i <= LBQ_ENTRY_MAX_HEADERS; i++)
        n += (size_t)sprintf(s + n, "%s\"X-%d\":\"v\"", i ? "," : "", i);
    n += (size_t)sprintf(s + n, "}}");
    struct lbq_entry e;
    struct lb_err err = {{0}};
    assert_int_equal(lbq_entry_parse(&e, s, n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "too many headers"));
    free(s);
}

#define HEAD "{\"id\":\"i\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\""

static void test_malformed(void **state)
{
    static const char *bad[] = {
        "",
        "   ",
        "[]",
        "{}",
        "null",
        "{\"id\":\"i\"}",
        HEAD,
        HEAD "}x",
        HEAD "}}",
        HEAD ",}",
        HEAD ",\"id\":\"j\"}",                         /* duplicate key */
        "{\"id\":\"i\",\"ts\":1,\"method\":\"POST\"}", /* no uri */
        "{\"id\":\"\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"a b\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":7,\"ts\":1,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":-1,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":1.5,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":1e3,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":01,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":99999999999999999999,\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":\"1\",\"method\":\"POST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":1,\"method\":\"PO ST\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":1,\"method\":\"\",\"uri\":\"/\"}",
        "{\"id\":\"i\",\"ts\":1,\"method\":\"POST\",\"uri\":\"x\"}",
        "{\"id\":\"i\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/a b\"}",
        "{\"id\":\"i\",\"ts\":1,\"method\":\"POST\",\"uri\":\"/a\\r\\nX: y\"}",
        HEAD ",\"headers\":[]}",
        HEAD ",\"headers\":{\"X\":1}}",
        HEAD ",\"headers\":{\"X Y\":\"v\"}}",
        HEAD ",\"headers\":{\"\":\"v\"}}",
        HEAD ",\"headers\":{\"X\":\"a\\r\\nEvil: 1\"}}",
        HEAD ",\"headers\":{\"X\":\"a\\u0000\"}}",
        HEAD ",\"headers\":{\"X\":\"v\",}}",
        HEAD ",\"body\":\"a\",\"body_b64\":\"YQ==\"}",
        HEAD ",\"body\":\"a\\x\"}",
        HEAD ",\"body\":\"a\\u12\"}",
        HEAD ",\"body\":\"a\\u12g4\"}",
        HEAD ",\"body\":\"\\ud800\"}",          /* lone high surrogate */
        HEAD ",\"body\":\"\\ud800\\u0041\"}",   /* high then not low */
        HEAD ",\"body\":\"\\udc00\"}",          /* lone low surrogate */
        HEAD ",\"body\":\"raw\ttab\"}",         /* control character */
        HEAD ",\"body\":\"\xc3\"}",             /* truncated UTF-8 */
        HEAD ",\"body\":\"\xc0\xaf\"}",         /* overlong */
        HEAD ",\"body\":\"\xed\xa0\x80\"}",     /* surrogate in UTF-8 */
        HEAD ",\"body\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        HEAD ",\"body\":\"\xff\"}",
        HEAD ",\"body\":\"unterminated}",
        HEAD ",\"body\":5}",
        HEAD ",\"body_b64\":\"YQ\"}",   /* unpadded */
        HEAD ",\"body_b64\":\"YR==\"}", /* non-zero pad bits */
        HEAD ",\"body_b64\":\"Y===\"}",
        HEAD ",\"body_b64\":\"YQ==YQ==\"}", /* padding in the middle */
        HEAD ",\"body_b64\":\"Y Q==\"}",
        HEAD ",\"body_b64\":\"YQ-_\"}", /* url alphabet */
        HEAD ",\"x\":tru}",
        HEAD ",\"x\":[1,]}",
        HEAD ",\"x\":{\"a\"}}",
        HEAD ",\"x\":-}",
        HEAD ",\"x\":1.}",
        HEAD ",\"x\":1e}",
        HEAD ",\"x\":NaN}",
        HEAD ",\"x\":'s'}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct lbq_entry e;
        struct lb_err err = {{0}};
        int rc = parse_str(&e, bad[i], &err);
        if (rc != -EINVAL)
            fail_msg("accepted case %zu: %s", i, bad[i]);
        assert_non_null(strstr(err.msg, "byte "));
    }
}

static void test_depth_limit(void **state)
{
    char s[512];
    size_t n = (size_t)sprintf(s, HEAD ",\"x\":");
    for (int i = 0; i < 40; i++)
        s[n++] = '[';
    for (int i = 0; i < 40; i++)
        s[n++] = ']';
    s[n++] = '}';
    struct lbq_entry e;
    struct lb_err err = {{0}};
    assert_int_equal(lbq_entry_parse(&e, s, n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nested"));
    n = (size_t)sprintf(s, HEAD ",\"x\":[[[[[[[[{\"a\":[]}]]]]]]]]}");
    assert_int_equal(lbq_entry_parse(&e, s, n, &err), 0);
    lbq_entry_free(&e);
}

/* The input need not be NUL-terminated: a prefix of a valid entry is always rejected. */
static void test_prefixes(void **state)
{
    const char *s = HEAD ",\"headers\":{\"A\":\"\\u00e9\"},\"body\":\"\\ud83d\\ude00\"}";
    size_t n = strlen(s);
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1);
        memcpy(copy, s, k);
        struct lbq_entry e;
        assert_int_equal(lbq_entry_parse(&e, copy, k, NULL), -EINVAL);
        free(copy);
    }
    struct lbq_entry e;
    assert_int_equal(lbq_entry_parse(&e, s, n, NULL), 0);
    lbq_entry_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),       cmocka_unit_test(test_full_with_escapes),
        cmocka_unit_test(test_raw_utf8),      cmocka_unit_test(test_body_b64),
        cmocka_unit_test(test_large_headers), cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_malformed),     cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
