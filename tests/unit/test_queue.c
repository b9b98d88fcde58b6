/* Unit tests for lb/queue: the queue entry encoding (JSON escaping, UTF-8, base64 bodies),
 * the 202 answer and entry ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/queue/entry.h"
#include "tools/ctl_json.c" /* lbctl's JSON reader, to check that entries parse */

#define S(lit) ((struct queue_str){(lit), sizeof(lit) - 1})

static char out[1 << 20];

/* Encodes @e, checks the result against the bound and returns it NUL-terminated. */
static const char *enc(const struct queue_entry *e)
{
    ssize_t n = queue_entry_encode(e, out, sizeof(out) - 1);
    assert_true(n > 0);
    assert_true((size_t)n <= queue_entry_bound(e));
    out[n] = '\0';
    return out;
}

static struct queue_entry base(void)
{
    return (struct queue_entry){.id = S("lb-a-0000002a-1-7"),
                                .ts_ms = 1700000000123ull,
                                .method = S("POST"),
                                .uri = S("/flash/buy?x=1")};
}

static void test_empty_body(void **state)
{
    struct queue_entry e = base();
    assert_string_equal(enc(&e), "{\"id\":\"lb-a-0000002a-1-7\",\"ts\":1700000000123,"
                                 "\"method\":\"POST\",\"uri\":\"/flash/buy?x=1\","
                                 "\"headers\":{},\"body\":\"\"}");
}

static void test_headers_and_escaping(void **state)
{
    struct queue_hdr h[] = {
        {S("Content-Type"), S("application/json")},
        {S("X-Forwarded-For"), S("10.0.0.1, 127.0.0.1")},
        {S("X-Note"), S("say \"hi\"\\ \t\x01\x7f")},
    };
    struct queue_entry e = base();
    e.hdrs = h;
    e.nhdrs = 3;
    e.body = (const uint8_t *)"{\"sku\":\"A\\1\"}\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    e.body_len = strlen((const char *)e.body);
    assert_string_equal(enc(&e),
                        "{\"id\":\"lb-a-0000002a-1-7\",\"ts\":1700000000123,\"method\":\"POST\","
                        "\"uri\":\"/flash/buy?x=1\",\"headers\":{\"content-type\":"
                        "\"application/json\",\"x-forwarded-for\":\"10.0.0.1, 127.0.0.1\","
                        "\"x-note\":\"say \\\"hi\\\"\\\\ \\t\\u0001\\u007f\"},"
                        "\"body\":\"{\\\"sku\\\":\\\"A\\\\1\\\"}\\n\xc3\xa9\xe2\x82\xac"
                        "\xf0\x9f\x98\x80\"}");
}

static void test_binary_body_base64(void **state)
{
    static const uint8_t bin[] = {0x00, 0xff, 0x10, 0x80, 'a'};
    struct queue_entry e = base();
    for (size_t n = 1; n <= 5; n++) {
        static const char *const want[] = {"", "AA==", "AP8=", "AP8Q", "AP8QgA==", "AP8QgGE="};
        char exp[128];
        e.body = bin;
        e.body_len = n;
        const char *s = enc(&e);
        if (n == 1) { /* a lone NUL is valid UTF-8: escaped, not base64 */
            assert_non_null(strstr(s, "\"body\":\"\\u0000\"}"));
            continue;
        }
        snprintf(exp, sizeof(exp), "\"body_b64\":\"%s\"}", want[n]);
        assert_non_null(strstr(s, exp));
        assert_null(strstr(s, "\"body\":"));
    }
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xc3",             /* cut short */
        "\xe2\x82",         /* cut short */
        "\x80",             /* lone continuation */
        "\xfe",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(queue_utf8_valid((const uint8_t *)bad[i], strlen(bad[i])));
    assert_true(queue_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf\xef\xbf\xbd", 7));
    assert_true(queue_utf8_valid(NULL, 0));

    /* In a header value or URI each bad byte becomes U+FFFD; good sequences stay. */
    struct queue_hdr h[] = {{S("X-Name"), S("a\xc3\xa9\xff\xc3z")}};
    struct queue_entry e = base();
    e.uri = S("/p\xe2\x82");
    e.hdrs = h;
    e.nhdrs = 1;
    e.body = (const uint8_t *)"ok\xc3";
    e.body_len = 3;
    const char *s = enc(&e);
    assert_non_null(strstr(s, "\"uri\":\"/p\\ufffd\\ufffd\""));
    assert_non_null(strstr(s, "\"x-name\":\"a\xc3\xa9\\ufffd\\ufffdz\""));
    assert_non_null(strstr(s, "\"body_b64\":\"b2vD\"}"));
}

static void test_large_headers(void **state)
{
    static char big[16 * 1024];
    memset(big, 'v', sizeof(big));
    big[100] = '"';
    struct queue_hdr h[16];
    for (size_t i = 0; i < 16; i++)
        h[i] = (struct queue_hdr){S("X-Big"), {big, sizeof(big)}};
    struct queue_entry e = base();
    size_t plain = strlen(enc(&e));
    e.hdrs = h;
    e.nhdrs = 16;
    /* Each: "x-big":"VALUE" with its quote escaped, and a comma between two. */
    assert_int_equal(strlen(enc(&e)), plain + 16 * (7 + 1 + 2 + sizeof(big) + 1) + 15);

    /* Too small a buffer: -ENOBUFS at every cut, never a write past it. */
    static char small[8192];
    struct queue_entry f = base();
    f.hdrs = h;
    f.nhdrs = 1;
    h[0].value.len = 4000;
    ssize_t whole = queue_entry_encode(&f, small, sizeof(small));
    assert_true(whole > 4000);
    for (size_t cap = 0; cap < (size_t)whole; cap += 97) {
        memset(small, '#', sizeof(small));
        assert_int_equal(queue_entry_encode(&f, small, cap), -ENOBUFS);
        assert_int_equal(small[cap], '#');
    }
}

/* Random bytes everywhere: the output is always well-formed UTF-8 with no raw control
 * characters, within the bound. */
static void test_random_input_stays_json_safe(void **state)
{
    static uint8_t junk[512];
    srand(7);
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)rand();
        size_t a = (size_t)rand() % 128, b = (size_t)rand() % 128, c = (size_t)rand() % 256;
        struct queue_hdr h[] = {{{(char *)junk, a}, {(char *)junk + a, b}}};
        struct queue_entry e = base();
        e.uri = (struct queue_str){(char *)junk + 256, c};
        e.hdrs = h;
        e.nhdrs = 1;
        e.body = junk + (size_t)rand() % 256;
        e.body_len = (size_t)rand() % 256;
        ssize_t n = queue_entry_encode(&e, out, sizeof(out));
        assert_true(n > 0 && (size_t)n <= queue_entry_bound(&e));
        assert_true(queue_utf8_valid((const uint8_t *)out, (size_t)n));
        for (ssize_t i = 0; i < n; i++)
            assert_true((uint8_t)out[i] >= 0x20 && out[i] != 0x7f);
        char err[128];
        struct ctl_json *j = ctl_json_parse(out, (size_t)n, err, sizeof(err));
        if (!j)
            fail_msg("not JSON (%s): %.*s", err, (int)n, out);
        assert_string_equal(ctl_json_str(j, "method", ""), "POST");
        assert_int_equal(ctl_json_num(j, "ts", 0), 1700000000123.0);
        const struct ctl_json *hs = ctl_json_get(j, "headers");
        assert_non_null(hs);
        assert_int_equal(hs->type, CTL_JSON_OBJ);
        assert_true(ctl_json_get(j, "body") || ctl_json_get(j, "body_b64"));
        ctl_json_free(j);
    }
}

static void test_reply_and_ids(void **state)
{
    char buf[128];
    ssize_t n = queue_reply_encode(S("i-1"), S("flash:\"orders\""), buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"id\":\"i-1\",\"queue\":\"flash:\\\"orders\\\"\"}\n");
    assert_int_equal(queue_reply_encode(S("i-1"), S("q"), buf, 10), -ENOBUFS);

    char id[QUEUE_ID_MAX], id2[QUEUE_ID_MAX];
    assert_true(queue_id_format(id, sizeof(id), "lb-a", 0xdeadbeef, 1, 255) > 0);
    assert_string_equal(id, "lb-a-deadbeef-1-ff");
    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_true(queue_id_format(id, sizeof(id), longname, 0xffffffff, 255, UINT64_MAX) > 0);
    assert_true(strlen(id) < QUEUE_ID_MAX);
    assert_true(queue_id_format(id, sizeof(id), NULL, 1, 0, 1) > 0);
    assert_true(queue_id_format(id2, sizeof(id2), NULL, 1, 1, 1) > 0);
    assert_string_not_equal(id, id2);
    assert_int_equal(queue_id_format(id, 8, "lb-a", 1, 0, 1), -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_headers_and_escaping),
        cmocka_unit_test(test_binary_body_base64),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_large_headers),
        cmocka_unit_test(test_random_input_stays_json_safe),
        cmocka_unit_test(test_reply_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
