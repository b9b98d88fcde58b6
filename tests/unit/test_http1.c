/*
 * HTTP/1.1 parsing (lb/http/h1_*.c): valid requests and responses come out as the right spans
 * and flags, every class of malformed or ambiguous message gets its exact status, and no
 * result depends on how the bytes were split: every split point of the header section and
 * byte-by-byte and random splits of bodies give the same answer as one whole buffer. Each
 * prefix is parsed from a heap copy of exactly its length, so under ASan any read past
 * len fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/http/h1.h"

/* Every test binary links all of lb/, and lb/proxy.o calls conf_free(); in a tree where the
 * conf module has not landed this weak stand-in lets the test link. The real one wins. */
struct conf;
void conf_free(struct conf *c);
__attribute__((weak)) void conf_free(struct conf *c)
{
    (void)c;
}

#define T_MAX_LEN 16384
#define T_MAX_TARGET 2048

/* A private heap copy of exactly @len bytes, so that ASan sees any read past the end. */
static char *t_copy(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static int t_req_once(const char *s, size_t len, size_t max_len, size_t max_target,
                      struct http_req *req)
{
    char *p = t_copy(s, len);
    int rc = http_parse_request(p, len, max_len, max_target, req);
    free(p);
    return rc;
}

/* Compares what two parses of the same request produced (the scan state may differ). */
static void t_same_req(const struct http_req *a, const struct http_req *b)
{
    assert_int_equal(a->method, b->method);
    assert_memory_equal(&a->method_text, &b->method_text, sizeof(a->method_text));
    assert_memory_equal(&a->target, &b->target, sizeof(a->target));
    assert_memory_equal(&a->path, &b->path, sizeof(a->path));
    assert_memory_equal(&a->host, &b->host, sizeof(a->host));
    assert_int_equal(a->version_minor, b->version_minor);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->header_len, b->header_len);
    assert_int_equal(a->nhdrs, b->nhdrs);
    assert_memory_equal(a->hdrs, b->hdrs, a->nhdrs * sizeof(a->hdrs[0]));
}

/*
 * Parses @s whole and checks the result is @expect; then feeds it with a growing len into
 * one struct, as the proxy does, and checks that every call answers what a fresh parse of
 * that prefix answers, AGAIN until the end, then the same result as the whole buffer.
 */
static void t_req_lim(const char *s, size_t max_len, size_t max_target, int expect,
                      struct http_req *out)
{
    size_t n = strlen(s);
    struct http_req whole = {0}, inc = {0}, fresh;
    int rc = t_req_once(s, n, max_len, max_target, &whole);
    if (rc != expect)
        print_error("request %.200s: got %d, expected %d\n", s, rc, expect);
    assert_int_equal(rc, expect);

    int last = HTTP_AGAIN;
    for (size_t k = 0; k <= n; k++) {
        memset(&fresh, 0, sizeof(fresh));
        int rk = t_req_once(s, k, max_len, max_target, &inc);
        int rf = t_req_once(s, k, max_len, max_target, &fresh);
        if (rk != rf)
            print_error("request %.200s: prefix %zu: incremental %d, fresh %d\n", s, k, rk, rf);
        assert_int_equal(rk, rf);
        last = rk;
        if (rk != HTTP_AGAIN)
            break;
    }
    assert_int_equal(last, expect);
    if (expect > 0) {
        t_same_req(&whole, &inc);
        /* A call again after completion finds the same answer. */
        assert_int_equal(t_req_once(s, n, max_len, max_target, &inc), expect);
        t_same_req(&whole, &inc);
    }
    if (out)
        *out = whole;
}

static void t_req(const char *s, int expect, struct http_req *out)
{
    t_req_lim(s, T_MAX_LEN, T_MAX_TARGET, expect, out);
}

static bool t_span_is(const char *buf, struct http_span sp, const char *want)
{
    return sp.len == strlen(want) && memcmp(buf + sp.off, want, sp.len) == 0;
}

#define assert_span(buf, sp, want)                                                            \
    do {                                                                                      \
        if (!t_span_is((buf), (sp), (want)))                                                  \
            print_error("span [%u,+%u) is '%.*s', expected '%s'\n", (sp).off, (sp).len,       \
                        (int)(sp).len, (buf) + (sp).off, (want));                             \
        assert_true(t_span_is((buf), (sp), (want)));                                          \
    } while (0)

/* ---- valid requests ---- */

static void test_req_simple(void **state)
{
    static struct http_req r;
    const char *s = "GET /a/b?x=1&y HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "User-Agent:  curl/8 \t\r\n"
                    "X-Empty:\r\n"
                    "Accept: */*\r\n"
                    "\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_int_equal(r.method, HTTP_M_GET);
    assert_span(s, r.method_text, "GET");
    assert_span(s, r.target, "/a/b?x=1&y");
    assert_span(s, r.path, "/a/b");
    assert_span(s, r.host, "example.com:8080");
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.flags, 0);
    assert_int_equal(r.header_len, strlen(s));
    assert_int_equal(r.nhdrs, 4);
    assert_span(s, r.hdrs[0].name, "Host");
    assert_span(s, r.hdrs[1].name, "User-Agent");
    assert_span(s, r.hdrs[1].value, "curl/8");
    assert_span(s, r.hdrs[2].name, "X-Empty");
    assert_span(s, r.hdrs[2].value, "");
    assert_span(s, r.hdrs[3].value, "*/*");
}

static void test_req_methods(void **state)
{
    static const struct {
        const char *m;
        enum http_method e;
    } t[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},
        {"POST", HTTP_M_POST},       {"PUT", HTTP_M_PUT},
        {"DELETE", HTTP_M_DELETE},   {"OPTIONS", HTTP_M_OPTIONS},
        {"PATCH", HTTP_M_PATCH},     {"TRACE", HTTP_M_TRACE},
        {"PROPFIND", HTTP_M_OTHER},  {"get", HTTP_M_OTHER},
        {"M-SEARCH", HTTP_M_OTHER},  {"X!#$%&'*+-.^_`|~9", HTTP_M_OTHER},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char s[256];
        static struct http_req r;
        int n = snprintf(s, sizeof(s), "%s / HTTP/1.1\r\nHost: h\r\n\r\n", t[i].m);
        t_req(s, n, &r);
        assert_int_equal(r.method, t[i].e);
        assert_span(s, r.method_text, t[i].m);
    }
}

static void test_req_leading_empty_lines(void **state)
{
    static struct http_req r;
    const char *s = "\r\n\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_int_equal(r.header_len, strlen(s));
    assert_span(s, r.method_text, "POST");
    assert_int_equal(r.flags, HTTP_F_LENGTH);
    assert_int_equal(r.content_length, 3);
    /* Only empty lines so far: more is needed, however many there are. */
    t_req("\r\n", HTTP_AGAIN, NULL);
    t_req("\r\n\r\n\r\n", HTTP_AGAIN, NULL);
}

static void test_req_target_forms(void **state)
{
    static struct http_req r;
    const char *s = "GET http://Example.com:81/p/q?z HTTP/1.1\r\nHost: other\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.host, "Example.com:81");
    assert_span(s, r.path, "/p/q");
    assert_span(s, r.target, "http://Example.com:81/p/q?z");

    s = "GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.host, "h");
    assert_span(s, r.path, "");

    s = "GET http://[::1]:8080 HTTP/1.1\r\nHost: h\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.host, "[::1]:8080");
    assert_span(s, r.path, "");

    s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_int_equal(r.method, HTTP_M_CONNECT);
    assert_span(s, r.target, "example.com:443");
    assert_span(s, r.host, "example.com:443");

    s = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.target, "*");

    s = "GET /%7Euser/a%20b;p=1?q=[x]&r=a:b@c HTTP/1.1\r\nHost: h\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.path, "/%7Euser/a%20b;p=1");
}

static void test_req_hosts(void **state)
{
    static const char *ok[] = {"h", "example.com", "a-b.c_d~e:1", "[2001:db8::1]:443",
                               "127.0.0.1:65535", "xn--bcher-kva.example", "a%41b", ""};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char s[256];
        static struct http_req r;
        int n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", ok[i]);
        t_req(s, n, &r);
        assert_span(s, r.host, ok[i]);
    }
    static const char *bad[] = {"a b",  "a,b", "h:", "h:65536", "h:123456", "h:8x", ":80",
                                "[::1", "[]",  "[x::1]", "a%4", "a%zz", "h/x", "a@b", "h\"x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char s[256];
        snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        t_req(s, -HTTP_E_BAD, NULL);
    }
}

static void test_req_connection_flags(void **state)
{
    static const struct {
        const char *s;
        uint32_t flags;
    } t[] = {
        {"GET / HTTP/1.0\r\n\r\n", HTTP_F_CLOSE},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", HTTP_F_KEEPALIVE},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
         HTTP_F_KEEPALIVE | HTTP_F_CLOSE},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", HTTP_F_CLOSE},
        {"GET / HTTP/1.1\r\nHost: h\r\nconnection: foo\r\nCONNECTION: Close\r\n\r\n",
         HTTP_F_CLOSE},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", HTTP_F_KEEPALIVE},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
         HTTP_F_EXPECT_CONTINUE | HTTP_F_LENGTH},
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
         HTTP_F_CLOSE | HTTP_F_LENGTH},
        {"GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 0},
        {"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
         "\r\n\r\n",
         HTTP_F_UPGRADE_WS | HTTP_F_KEEPALIVE},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
         "\r\n",
         HTTP_F_UPGRADE_OTHER},
        {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", HTTP_F_UPGRADE_OTHER},
        {"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
         HTTP_F_CLOSE},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static struct http_req r;
        t_req(t[i].s, (int)strlen(t[i].s), &r);
        if (r.flags != t[i].flags)
            print_error("%s: flags %#x, expected %#x\n", t[i].s, r.flags, t[i].flags);
        assert_int_equal(r.flags, t[i].flags);
    }
}

static void test_req_framing_accepted(void **state)
{
    static const struct {
        const char *s;
        uint32_t flags;
        uint64_t cl;
    } t[] = {
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", HTTP_F_LENGTH, 0},
        {"POST / HTTP/1.1\r\nHost: h\r\ncontent-LENGTH: 0042\r\n\r\n", HTTP_F_LENGTH, 42},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", HTTP_F_LENGTH, 5},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n",
         HTTP_F_LENGTH, 5},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n",
         HTTP_F_LENGTH, 9223372036854775807ull},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_F_CHUNKED,
         0},
        {"POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING:  Chunked \r\n\r\n",
         HTTP_F_CHUNKED, 0},
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static struct http_req r;
        t_req(t[i].s, (int)strlen(t[i].s), &r);
        assert_int_equal(r.flags, t[i].flags);
        assert_int_equal(r.content_length, t[i].cl);
    }
}

static void test_req_value_bytes(void **state)
{
    /* HTAB and obs-text are allowed inside values and whitespace around them is stripped. */
    static struct http_req r;
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-A:\t a\tb \xc3\xa9\xff \t\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.hdrs[1].value, "a\tb \xc3\xa9\xff");
    s = "GET / HTTP/1.1\r\nHost: h\r\nX-A:    \r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_span(s, r.hdrs[1].value, "");
}

/*
 * Values and targets are scanned eight bytes at a time: every byte value at every offset
 * of a long run must be judged exactly as the grammar says, whatever word it falls in.
 */
static void test_req_every_byte_everywhere(void **state)
{
    static char s[256];
    static struct http_req r;
    for (int c = 0; c < 256; c++) {
        bool in_value = (c >= 0x20 && c != 0x7f) || c == '\t';
        bool in_target = c > 0x20 && c < 0x7f && c != '#';
        for (int pos = 0; pos < 24; pos++) {
            char run[25];
            memset(run, 'a', 24);
            run[24] = '\0';
            run[pos] = (char)c;

            int n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: h\r\nX-A: a");
            memcpy(s + n, run, 24);
            n += 24;
            n += snprintf(s + n, sizeof(s) - (size_t)n, "b\r\n\r\n");
            memset(&r, 0, sizeof(r));
            int rc = t_req_once(s, (size_t)n, T_MAX_LEN, T_MAX_TARGET, &r);
            /* a LF is refused as bare LF, a CR as bare CR: both 400 */
            if ((rc == n) != in_value)
                print_error("value byte %#x at %d: %d\n", c, pos, rc);
            assert_int_equal(rc == n, in_value);
            if (!in_value)
                assert_int_equal(rc, -HTTP_E_BAD);

            n = snprintf(s, sizeof(s), "GET /");
            memcpy(s + n, run, 24);
            n += 24;
            n += snprintf(s + n, sizeof(s) - (size_t)n, " HTTP/1.1\r\nHost: h\r\n\r\n");
            memset(&r, 0, sizeof(r));
            rc = t_req_once(s, (size_t)n, T_MAX_LEN, T_MAX_TARGET, &r);
            if ((rc == n) != in_target)
                print_error("target byte %#x at %d: %d\n", c, pos, rc);
            /* a space ends the target early and leaves a malformed version */
            assert_int_equal(rc == n, in_target);
            if (rc == n)
                assert_int_equal(r.target.len, 25);
        }
    }
}

/* ---- rejected requests ---- */

struct t_case {
    const char *s;
    int expect;
};

static void t_cases(const struct t_case *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t_req(t[i].s, t[i].expect, NULL);
}

#define H "Host: h\r\n"
#define BAD (-HTTP_E_BAD)

static void test_req_reject_content_length(void **state)
{
    static const struct t_case t[] = {
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5,,5\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5,\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: -5\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: a\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 1.0\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length:   \r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999999\r\n\r\n", BAD},
    };
    t_cases(t, sizeof(t) / sizeof(t[0]));
}

static void test_req_reject_transfer_encoding(void **state)
{
    static const struct t_case t[] = {
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
         "\r\n",
         BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
         BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,chunked\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunk\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", BAD},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip;level, chunked\r\n\r\n", BAD},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BAD},
        /* Well-formed, final chunked, but a coding lb does not implement. */
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n",
         -HTTP_E_CODING},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: x-foo;a=\"b,c\"\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         -HTTP_E_CODING},
        {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity, chunked\r\n\r\n",
         -HTTP_E_CODING},
    };
    t_cases(t, sizeof(t) / sizeof(t[0]));

    /* chunked repeated so often that a narrow counter would wrap back to "once" */
    static char s[8192];
    size_t n = (size_t)snprintf(s, sizeof(s), "POST / HTTP/1.1\r\n" H "Transfer-Encoding: ");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "chunked, ");
    snprintf(s + n, sizeof(s) - n, "chunked\r\n\r\n");
    t_req(s, BAD, NULL);
}

static void test_req_reject_fields(void **state)
{
    static const struct t_case t[] = {
        /* obs-fold, on the first field line and later */
        {"GET / HTTP/1.1\r\n" H "X-A: a\r\n b\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\r\n\tb\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", BAD},
        /* whitespace between name and colon */
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "Content-Length\t: 5\r\n\r\n", BAD},
        /* bare CR */
        {"GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\r\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X\rA: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "\rX-A: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\r\n\r\r\n\r\n", BAD},
        /* bare LF */
        {"GET / HTTP/1.1\n" H "\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\nb\r\n\r\n", BAD},
        {"\nGET / HTTP/1.1\r\n" H "\r\n", BAD},
        {"\r\n\nGET / HTTP/1.1\r\n" H "\r\n", BAD},
        /* NUL and control bytes */
        {"GET / HTTP/1.1\r\n" H "X-A: a\x01\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\x1f\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\x7f\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A: a\x0b\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X\x01: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X\tA: a\r\n\r\n", BAD},
        /* non-token names */
        {"GET / HTTP/1.1\r\n" H "X(A): a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X\"A: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X/A: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "\xc3\xa9: a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H ": a\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\n" H "X-A a\r\n\r\n", BAD},
    };
    t_cases(t, sizeof(t) / sizeof(t[0]));
    /* strlen would cut these, so they are fed with their real length. */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    static const char nul_name[] = "GET / HTTP/1.1\r\nHost: h\r\nX\0A: a\r\n\r\n";
    static struct http_req r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(t_req_once(nul, sizeof(nul) - 1, T_MAX_LEN, T_MAX_TARGET, &r), BAD);
    memset(&r, 0, sizeof(r));
    assert_int_equal(t_req_once(nul_name, sizeof(nul_name) - 1, T_MAX_LEN, T_MAX_TARGET, &r),
                     BAD);
}

static void test_req_reject_request_line(void **state)
{
    static const struct t_case t[] = {
        {"G(T / HTTP/1.1\r\n" H "\r\n", BAD},
        {"GE T / HTTP/1.1\r\n" H "\r\n", BAD},
        {"G\x80T / HTTP/1.1\r\n" H "\r\n", BAD},
        {"G:T / HTTP/1.1\r\n" H "\r\n", BAD},
        {" GET / HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET  / HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /  HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET\t/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /\tHTTP/1.1\r\n" H "\r\n", BAD},
        {"GET / HTTP/1.1 \r\n" H "\r\n", BAD},
        {"GET / HTTP/1.1\t\r\n" H "\r\n", BAD},
        {"GET / http/1.1\r\n" H "\r\n", BAD},
        {"GET / HTTP/1.1x\r\n" H "\r\n", BAD},
        {"GET / HTTP/1.10\r\n" H "\r\n", BAD},
        {"GET / HTTP/11\r\n" H "\r\n", BAD},
        {"GET / HTTP/1\r\n" H "\r\n", BAD},
        {"GET / HTTP/1.\r\n" H "\r\n", BAD},
        {"GET / HTTP/a.1\r\n" H "\r\n", BAD},
        {"GET / HTTP\r\n" H "\r\n", BAD},
        {"GET / H\r\n\r\n", BAD},
        {"GET / \r\n" H "\r\n", BAD},
        {"GET /\r\n\r\n", BAD},  /* HTTP/0.9 */
        {"GET\r\n\r\n", BAD},
        {"/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET / HTTP/1.1 extra\r\n" H "\r\n", BAD},
        /* targets */
        {"GET a/b HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET * HTTP/1.1\r\n" H "\r\n", BAD},
        {"OPTIONS *x HTTP/1.1\r\n" H "\r\n", BAD},
        {"CONNECT / HTTP/1.1\r\n" H "\r\n", BAD},
        {"CONNECT h HTTP/1.1\r\n" H "\r\n", BAD},
        {"CONNECT http://h:80/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /a#frag HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /a\x7f HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /a\x80 HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET /a\x01 HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET ftp://h/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET http:/h/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET http:// HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET http:///x HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET http://u:p@h/ HTTP/1.1\r\n" H "\r\n", BAD},
        {"GET http://h:x/ HTTP/1.1\r\n" H "\r\n", BAD},
        /* versions */
        {"GET / HTTP/2.0\r\n" H "\r\n", -HTTP_E_VERSION},
        {"GET / HTTP/1.2\r\n" H "\r\n", -HTTP_E_VERSION},
        {"GET / HTTP/0.9\r\n\r\n", -HTTP_E_VERSION},
        {"GET / HTTP/9.9\r\n" H "\r\n", -HTTP_E_VERSION},
        /* Host */
        {"GET / HTTP/1.1\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", BAD},
        {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", BAD},
        {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", BAD},
        {"GET http://h/ HTTP/1.1\r\n\r\n", BAD},
    };
    t_cases(t, sizeof(t) / sizeof(t[0]));
}

static void test_req_limits(void **state)
{
    /* 414: a target over max_target, in a complete section and in a request line that
     * overflows the section before it ends. */
    static const char ten[] = "GET /0123456789 HTTP/1.1\r\n" H "\r\n";
    t_req_lim(ten, 1024, 11, (int)sizeof(ten) - 1, NULL);
    t_req_lim(ten, 1024, 10, -HTTP_E_TARGET, NULL);
    t_req_lim("GET /0123456789012345678901234567890123456789", 32, 10, -HTTP_E_TARGET, NULL);
    t_req_lim("\r\nGET /0123456789012345678901234567890123456789", 32, 10, -HTTP_E_TARGET,
              NULL);
    /* 431: the section does not fit max_len (it must fit whole, final CRLF included). */
    const char *s = "GET / HTTP/1.1\r\n" H "X-A: 0123456789\r\n\r\n";
    size_t n = strlen(s);
    t_req_lim(s, n, 64, (int)n, NULL);
    t_req_lim(s, n - 1, 64, -HTTP_E_TOO_BIG, NULL);
    t_req_lim(s, 20, 64, -HTTP_E_TOO_BIG, NULL);
    t_req_lim("GET /0123456789012345678901234567890123456789", 32, 1000, -HTTP_E_TOO_BIG,
              NULL);
    t_req_lim("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 8, 1000, -HTTP_E_TOO_BIG, NULL);

    /* 100 fields fit, 101 do not. */
    static char big[8192];
    size_t off = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n" H);
    for (int i = 1; i < HTTP_MAX_HDRS; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off, "X-%d: %d\r\n", i, i);
    strcpy(big + off, "\r\n");
    static struct http_req r;
    t_req(big, (int)(off + 2), &r);
    assert_int_equal(r.nhdrs, HTTP_MAX_HDRS);
    snprintf(big + off, sizeof(big) - off, "X-Last: 1\r\n\r\n");
    t_req(big, -HTTP_E_TOO_BIG, NULL);
}

/* ---- responses ---- */

static int t_resp(const char *s, enum http_method m, struct http_resp *out)
{
    size_t n = strlen(s);
    static struct http_resp whole, inc, fresh;
    memset(&whole, 0, sizeof(whole));
    memset(&inc, 0, sizeof(inc));
    char *p = t_copy(s, n);
    int rc = http_parse_response(p, n, T_MAX_LEN, m, &whole);
    free(p);
    for (size_t k = 0; k <= n; k++) {
        memset(&fresh, 0, sizeof(fresh));
        p = t_copy(s, k);
        int rk = http_parse_response(p, k, T_MAX_LEN, m, &inc);
        int rf = http_parse_response(p, k, T_MAX_LEN, m, &fresh);
        free(p);
        assert_int_equal(rk, rf);
        if (rk != HTTP_AGAIN) {
            assert_int_equal(rk, rc);
            if (rc > 0) {
                assert_int_equal(inc.flags, whole.flags);
                assert_int_equal(inc.status, whole.status);
                assert_int_equal(inc.nhdrs, whole.nhdrs);
            }
            break;
        }
    }
    if (out)
        *out = whole;
    return rc;
}

static void test_resp_valid(void **state)
{
    static const struct {
        const char *s;
        enum http_method m;
        uint16_t status;
        uint32_t flags;
        uint64_t cl;
    } t[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", HTTP_M_GET, 200,
         HTTP_F_LENGTH, 12},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_POST, 200,
         HTTP_F_CHUNKED, 0},
        {"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", HTTP_M_GET, 200, HTTP_F_UNTIL_CLOSE,
         0},
        {"HTTP/1.0 200 OK\r\n\r\n", HTTP_M_GET, 200,
         HTTP_F_UNTIL_CLOSE | HTTP_F_CLOSE, 0},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
         HTTP_M_GET, 200, HTTP_F_LENGTH | HTTP_F_KEEPALIVE, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", HTTP_M_HEAD, 200,
         HTTP_F_LENGTH | HTTP_F_NO_BODY, 12},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD, 200,
         HTTP_F_CHUNKED | HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 200 OK\r\n\r\n", HTTP_M_HEAD, 200, HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 204 No Content\r\n\r\n", HTTP_M_GET, 204, HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET, 204,
         HTTP_F_NO_BODY | HTTP_F_LENGTH, 0},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\n\r\n", HTTP_M_GET, 304,
         HTTP_F_NO_BODY | HTTP_F_LENGTH, 500},
        {"HTTP/1.1 304 Not Modified\r\n\r\n", HTTP_M_GET, 304, HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST, 100, HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         HTTP_M_GET, 101, HTTP_F_NO_BODY | HTTP_F_UPGRADE_WS, 0},
        {"HTTP/1.1 200 Connection established\r\n\r\n", HTTP_M_CONNECT, 200,
         HTTP_F_NO_BODY, 0},
        {"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", HTTP_M_CONNECT, 407,
         HTTP_F_LENGTH, 2},
        {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, 200, HTTP_F_LENGTH, 1},
        {"HTTP/1.1 599 \r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, 599, HTTP_F_LENGTH,
         1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n", HTTP_M_GET,
         200, HTTP_F_LENGTH | HTTP_F_CLOSE, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n", HTTP_M_GET,
         200, HTTP_F_LENGTH, 7},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static struct http_resp r;
        int rc = t_resp(t[i].s, t[i].m, &r);
        if (rc != (int)strlen(t[i].s) || r.flags != t[i].flags)
            print_error("%s: rc %d flags %#x, expected flags %#x\n", t[i].s, rc, r.flags,
                        t[i].flags);
        assert_int_equal(rc, strlen(t[i].s));
        assert_int_equal(r.status, t[i].status);
        assert_int_equal(r.flags, t[i].flags);
        assert_int_equal(r.content_length, t[i].cl);
    }
    static struct http_resp r;
    const char *s = "HTTP/1.1 404 Not  Found\r\nX-A: b\r\n\r\n";
    assert_int_equal(t_resp(s, HTTP_M_GET, &r), strlen(s));
    assert_span(s, r.reason, "Not  Found");
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.nhdrs, 1);
    assert_span(s, r.hdrs[0].value, "b");
}

static void test_resp_reject(void **state)
{
    static const char *t[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r",
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = t_resp(t[i], HTTP_M_GET, NULL);
        int expect = strcmp(t[i], "HTTP/1.1 200 OK\r\n\r") ? -502 : HTTP_AGAIN;
        if (rc != expect)
            print_error("%s: got %d\n", t[i], rc);
        assert_int_equal(rc, expect);
    }
    /* Over max_len. */
    static struct http_resp r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    assert_int_equal(http_parse_response(s, strlen(s), 20, HTTP_M_GET, &r), -502);
}

static void test_find_hdr_list_has(void **state)
{
    static struct http_req r;
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Id: 1\r\nx-id: 2\r\nAccept: a, B ,c\r\n\r\n";
    t_req(s, (int)strlen(s), &r);
    assert_int_equal(http_find_hdr(s, r.hdrs, r.nhdrs, "X-ID", 0), 1);
    assert_int_equal(http_find_hdr(s, r.hdrs, r.nhdrs, "x-id", 2), 2);
    assert_int_equal(http_find_hdr(s, r.hdrs, r.nhdrs, "x-id", 3), -1);
    assert_int_equal(http_find_hdr(s, r.hdrs, r.nhdrs, "x-i", 0), -1);
    assert_int_equal(http_find_hdr(s, r.hdrs, r.nhdrs, "host", 0), 0);
    const char *v = s + r.hdrs[3].value.off;
    assert_true(http_list_has(v, r.hdrs[3].value.len, "b"));
    assert_true(http_list_has(v, r.hdrs[3].value.len, "A"));
    assert_true(http_list_has(v, r.hdrs[3].value.len, "c"));
    assert_false(http_list_has(v, r.hdrs[3].value.len, "d"));
    assert_false(http_list_has(v, r.hdrs[3].value.len, "a, B"));
    assert_false(http_list_has("", 0, "a"));
    assert_false(http_list_has("ab", 2, "a"));
    assert_true(http_list_has(",,  x\t,", 7, "x"));
}

/* ---- bodies ---- */

static void t_body_chunked(struct http_body *b)
{
    static struct http_req r;
    memset(&r, 0, sizeof(r));
    r.flags = HTTP_F_CHUNKED;
    http_body_init_req(b, &r);
    assert_int_equal(b->mode, HTTP_BODY_CHUNKED);
    assert_false(b->done);
}

/* Feeds @len bytes to @b in pieces given by @next_piece; stops at the end or an error.
 * Returns the total consumed or the error. */
static ssize_t t_feed_pieces(struct http_body *b, const char *s, size_t len, uint32_t *seed,
                             size_t piece)
{
    size_t off = 0;
    while (off < len) {
        size_t n = piece;
        if (seed) {
            *seed = *seed * 1103515245u + 12345u;
            n = 1 + (*seed >> 16) % 23;
        }
        if (n > len - off)
            n = len - off;
        char *p = t_copy(s + off, n);
        ssize_t rc = http_body_feed(b, p, n);
        free(p);
        if (rc < 0)
            return rc;
        assert_true((size_t)rc <= n);
        off += (size_t)rc;
        if (b->done)
            return (ssize_t)off;
        assert_int_equal(rc, n); /* only the end of the message stops short */
    }
    return (ssize_t)off;
}

/*
 * Feeds the chunked body @s (@len bytes) whole, byte by byte, and in 200 random splits;
 * all must give @expect (bytes of the message, or the error) and the same done flag.
 */
static void t_chunked(const char *s, size_t len, ssize_t expect, bool done)
{
    struct http_body b;
    t_body_chunked(&b);
    ssize_t whole = t_feed_pieces(&b, s, len, NULL, len ? len : 1);
    if (whole != expect || b.done != done)
        print_error("chunked body '%.*s': got %zd done %d, expected %zd done %d\n", (int)len, s,
                    whole, b.done, expect, done);
    assert_int_equal(whole, expect);
    assert_int_equal(b.done, done);

    t_body_chunked(&b);
    assert_int_equal(t_feed_pieces(&b, s, len, NULL, 1), expect);
    assert_int_equal(b.done, done);

    uint32_t seed = (uint32_t)len * 2654435761u;
    for (int i = 0; i < 200; i++) {
        t_body_chunked(&b);
        assert_int_equal(t_feed_pieces(&b, s, len, &seed, 0), expect);
        assert_int_equal(b.done, done);
    }
}

#define T_CHUNKED_OK(s) t_chunked((s), sizeof(s) - 1, (ssize_t)(sizeof(s) - 1), true)
#define T_CHUNKED_BAD(s) t_chunked((s), sizeof(s) - 1, -HTTP_E_BAD, false)

static void test_body_chunked_valid(void **state)
{
    T_CHUNKED_OK("5\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_OK("0\r\n\r\n");
    T_CHUNKED_OK("A\r\n0123456789\r\n1\r\n\n\r\n0\r\n\r\n");
    T_CHUNKED_OK("00a\r\n0123456789\r\nf\r\n0123456789abcde\r\n0000\r\n\r\n");
    T_CHUNKED_OK("5;name\r\nhello\r\n0;a=b;c=\"d;e\\\"f\"\r\n\r\n");
    T_CHUNKED_OK("5; a = b ;c=d\t;e\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_OK("5;a=\"\"\r\nhello\r\n0;x=\"\xe9\\\xff\"\r\n\r\n");
    T_CHUNKED_OK("5\r\nhello\r\n0\r\nX-Trailer: v\r\nChecksum:abc \r\n\r\n");
    T_CHUNKED_OK("0\r\nContent-Lengthx: 1\r\nHos: h\r\nX-Host: h\r\nTransfer-Encodin: x\r\n\r\n");
    T_CHUNKED_OK("0\r\nX-Empty:\r\n\r\n");
    /* the data itself may hold anything, CR and LF included */
    T_CHUNKED_OK("4\r\n\r\n\r\n\r\n0\r\n\r\n");
    /* a chunk size up to 2^62 is accepted (not fed here) */
    struct http_body b;
    t_body_chunked(&b);
    assert_int_equal(http_body_feed(&b, "4000000000000000\r\nab", 20), 20);
    assert_int_equal(b.remaining, ((uint64_t)1 << 62) - 2);
}

static void test_body_chunked_invalid(void **state)
{
    T_CHUNKED_BAD("-5\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("+5\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("0x5\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD(" 5\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5 \r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5\t\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5 ;a\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD(";a\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("g\r\n");
    T_CHUNKED_BAD("5\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5\rhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5\r\nhelloX\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5\r\nhello\n0\r\n\r\n");
    T_CHUNKED_BAD("5\r\nhello\r0\r\n\r\n");
    T_CHUNKED_BAD("5\r\nhello\r\n0\r\n\n");
    T_CHUNKED_BAD("5\r\nhello\r\n0\n\r\n");
    T_CHUNKED_BAD("5\r\nhello\r\n0\r\n\r\r\n");
    /* over 2^62, and 2^64 that would wrap */
    T_CHUNKED_BAD("4000000000000001\r\n");
    T_CHUNKED_BAD("10000000000000000\r\n");
    T_CHUNKED_BAD("ffffffffffffffffffff\r\n");
    /* extensions */
    T_CHUNKED_BAD("5;\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;=b\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=b=c\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a \r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=b \r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=\"b\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=\"b\\\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a(b\r\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a\nhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a\rhello\r\n0\r\n\r\n");
    T_CHUNKED_BAD("5;a\x00\r\nhello\r\n0\r\n\r\n");
    /* trailers */
    T_CHUNKED_BAD("0\r\nContent-Length: 5\r\n\r\n");
    T_CHUNKED_BAD("0\r\ncontent-length: 5\r\n\r\n");
    T_CHUNKED_BAD("0\r\nTransfer-Encoding: chunked\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A: 1\r\nHOST: h\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A: 1\r\n folded\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A : 1\r\n\r\n");
    T_CHUNKED_BAD("0\r\n: 1\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A: 1\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A: 1\rx\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX-A: \x7f\r\n\r\n");
    T_CHUNKED_BAD("0\r\nX\x01: 1\r\n\r\n");

    /* an oversized chunk-size line, and an oversized trailer field and section */
    static char s[40000];
    size_t n = (size_t)snprintf(s, sizeof(s), "5;a=\"");
    memset(s + n, 'x', HTTP_MAX_CHUNK_LINE);
    n += HTTP_MAX_CHUNK_LINE;
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\"\r\nhello\r\n0\r\n\r\n");
    t_chunked(s, n, -HTTP_E_BAD, false);
    /* a leading-zero run is part of the line, so it cannot dodge the bound either */
    memset(s, '0', HTTP_MAX_CHUNK_LINE + 1);
    memcpy(s + HTTP_MAX_CHUNK_LINE + 1, "\r\n\r\n", 4);
    t_chunked(s, HTTP_MAX_CHUNK_LINE + 5, -HTTP_E_BAD, false);
    memset(s, '0', HTTP_MAX_CHUNK_LINE - 2);
    memcpy(s + HTTP_MAX_CHUNK_LINE - 2, "\r\n\r\n", 4);
    t_chunked(s, HTTP_MAX_CHUNK_LINE + 2, HTTP_MAX_CHUNK_LINE + 2, true);

    n = (size_t)snprintf(s, sizeof(s), "0\r\nX-A: ");
    memset(s + n, 'v', HTTP_MAX_CHUNK_LINE);
    n += HTTP_MAX_CHUNK_LINE;
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n\r\n");
    t_chunked(s, n, -HTTP_E_BAD, false);

    n = (size_t)snprintf(s, sizeof(s), "0\r\n");
    while (n < 3 + HTTP_MAX_TRAILERS)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "X-Trailer-Field: 0123456789\r\n");
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n");
    t_chunked(s, n, -HTTP_E_BAD, false);

    /* an error sticks */
    struct http_body b;
    t_body_chunked(&b);
    assert_int_equal(http_body_feed(&b, "x", 1), -HTTP_E_BAD);
    assert_int_equal(http_body_feed(&b, "0\r\n\r\n", 5), -HTTP_E_BAD);
    assert_int_equal(http_body_feed(&b, "", 0), -HTTP_E_BAD);
}

static void test_body_pipelined(void **state)
{
    /* A chunked body followed by the next request: feed stops at the end of the body. */
    static const char s[] = "3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t body = sizeof("3\r\nabc\r\n0\r\nT: 1\r\n\r\n") - 1;
    struct http_body b;
    t_body_chunked(&b);
    assert_int_equal(http_body_feed(&b, s, sizeof(s) - 1), body);
    assert_true(b.done);
    assert_int_equal(http_body_feed(&b, s + body, sizeof(s) - 1 - body), 0);
    t_chunked(s, sizeof(s) - 1, (ssize_t)body, true);

    /* The same through the request parser: header, body, then the second request. */
    static const char two[] = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    static struct http_req r;
    memset(&r, 0, sizeof(r));
    int hl = http_parse_request(two, sizeof(two) - 1, T_MAX_LEN, T_MAX_TARGET, &r);
    assert_int_equal(hl, sizeof("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n") - 1);
    http_body_init_req(&b, &r);
    assert_int_equal(b.mode, HTTP_BODY_LENGTH);
    assert_int_equal(http_body_feed(&b, two + hl, 3), 3);
    assert_false(b.done);
    assert_int_equal(http_body_feed(&b, two + hl + 3, sizeof(two) - 1 - (size_t)hl - 3), 2);
    assert_true(b.done);
    const char *next = two + hl + 5;
    memset(&r, 0, sizeof(r));
    int hl2 = http_parse_request(next, strlen(next), T_MAX_LEN, T_MAX_TARGET, &r);
    assert_int_equal(hl2, strlen(next));
    assert_span(next, r.path, "/b");
}

static void test_body_modes(void **state)
{
    struct http_body b;
    static struct http_req rq;
    static struct http_resp rs;

    memset(&rq, 0, sizeof(rq));
    http_body_init_req(&b, &rq);
    assert_int_equal(b.mode, HTTP_BODY_NONE);
    assert_true(b.done);
    assert_int_equal(http_body_feed(&b, "GET", 3), 0);

    rq.flags = HTTP_F_LENGTH;
    rq.content_length = 0;
    http_body_init_req(&b, &rq);
    assert_int_equal(b.mode, HTTP_BODY_LENGTH);
    assert_true(b.done);
    assert_int_equal(http_body_feed(&b, "GET", 3), 0);

    /* LENGTH fed byte by byte and in random splits */
    rq.content_length = 1000;
    uint32_t seed = 7;
    static char data[1200];
    memset(data, 'z', sizeof(data));
    for (int i = 0; i < 50; i++) {
        http_body_init_req(&b, &rq);
        assert_int_equal(t_feed_pieces(&b, data, sizeof(data), i ? &seed : NULL, 1), 1000);
        assert_true(b.done);
    }

    /* Responses: HEAD, 204, 304 and 1xx carry no body whatever the fields say. */
    static const struct {
        const char *s;
        enum http_method m;
        enum http_body_mode mode;
    } t[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP_M_HEAD, HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD,
         HTTP_BODY_NONE},
        {"HTTP/1.1 204 No Content\r\n\r\n", HTTP_M_GET, HTTP_BODY_NONE},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_NONE},
        {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", HTTP_M_GET, HTTP_BODY_NONE},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_CHUNKED},
        {"HTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET, HTTP_BODY_CLOSE},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        memset(&rs, 0, sizeof(rs));
        int rc = http_parse_response(t[i].s, strlen(t[i].s), T_MAX_LEN, t[i].m, &rs);
        assert_int_equal(rc, strlen(t[i].s));
        http_body_init_resp(&b, &rs);
        assert_int_equal(b.mode, t[i].mode);
        ssize_t fed = http_body_feed(&b, "0123456789HTTP/1.1", 18);
        switch (t[i].mode) {
        case HTTP_BODY_NONE:
            assert_true(b.done);
            assert_int_equal(fed, 0);
            break;
        case HTTP_BODY_LENGTH:
            assert_true(b.done);
            assert_int_equal(fed, rs.content_length);
            break;
        case HTTP_BODY_CHUNKED:
            assert_int_equal(fed, -HTTP_E_BAD); /* "0123456789H" is no chunk size */
            break;
        case HTTP_BODY_CLOSE:
            assert_false(b.done);
            assert_int_equal(fed, 18);
            assert_int_equal(http_body_feed(&b, "x", 1), 1);
            break;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_simple),
        cmocka_unit_test(test_req_methods),
        cmocka_unit_test(test_req_leading_empty_lines),
        cmocka_unit_test(test_req_target_forms),
        cmocka_unit_test(test_req_hosts),
        cmocka_unit_test(test_req_connection_flags),
        cmocka_unit_test(test_req_framing_accepted),
        cmocka_unit_test(test_req_value_bytes),
        cmocka_unit_test(test_req_every_byte_everywhere),
        cmocka_unit_test(test_req_reject_content_length),
        cmocka_unit_test(test_req_reject_transfer_encoding),
        cmocka_unit_test(test_req_reject_fields),
        cmocka_unit_test(test_req_reject_request_line),
        cmocka_unit_test(test_req_limits),
        cmocka_unit_test(test_resp_valid),
        cmocka_unit_test(test_resp_reject),
        cmocka_unit_test(test_find_hdr_list_has),
        cmocka_unit_test(test_body_chunked_valid),
        cmocka_unit_test(test_body_chunked_invalid),
        cmocka_unit_test(test_body_pipelined),
        cmocka_unit_test(test_body_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
