/*
 * L2 entries (lb/cache/l2.h): an L1 entry encoded and decoded back field for field, filled
 * into another cache and served with its age carried over; table-driven refusals (truncated
 * at every length, each header field corrupted, framing that lies); Vary variants and
 * staleness on the way back in.
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

#include "lb/cache/cache.h"
#include "lb/cache/l2.h"

#define T_WALL_MS 1796000000000ll

struct t_req {
    char buf[1024];
    struct http_req req;
};

static void t_req_parse(struct t_req *r, const char *text)
{
    size_t n = strlen(text);
    memcpy(r->buf, text, n + 1);
    memset(&r->req, 0, sizeof(r->req));
    assert_int_equal(http_parse_request(r->buf, n, 16384, 8192, &r->req), (int)n);
}

/* Stores @hdr + @body in @c for request @reqtext at @now, as the proxy's fill does. */
static struct cache_entry *t_store(struct cache *c, const char *reqtext, const char *hdr,
                                   const char *body, uint64_t now)
{
    struct t_req q;
    t_req_parse(&q, reqtext);
    static struct http_resp rs;
    memset(&rs, 0, sizeof(rs));
    size_t hl = strlen(hdr);
    assert_int_equal(http_parse_response(hdr, hl, 16384, HTTP_M_GET, &rs), (int)hl);
    struct cache_rules r = {.heuristic_ms = 0, .max_ttl_ms = 0, .max_body = 1 << 20};
    struct cache_times t = {.wall_s = T_WALL_MS / 1000, .delay_ms = 0};
    struct cache_policy p;
    assert_int_equal(cache_policy_eval(q.buf, &q.req, hdr, &rs, &r, &t, &p), CACHE_OK);
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 1, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, hdr, hl, now), 0);
    assert_int_equal(cache_fill_append(c, f, body, strlen(body)), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
    return cache_lookup(c, q.buf, &q.req, now);
}

static const char *const HDR = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                               "ETag: \"v1\"\r\nVary: Accept-Language\r\n"
                               "Content-Length: 5\r\n\r\n";
static const char *const REQ = "GET /a?x=1 HTTP/1.1\r\nHost: Example.COM\r\n"
                               "Accept-Language: fr\r\n\r\n";

/* An encoded entry of HDR + "hello" stored 10 s before it is encoded. */
static ssize_t t_blob(char **out)
{
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct cache_entry *e = t_store(c, REQ, HDR, "hello", 1000);
    assert_non_null(e);
    ssize_t n = cache_l2_encode(e, 11000, T_WALL_MS, out);
    cache_entry_unref(e);
    cache_destroy(c);
    return n;
}

static void test_roundtrip(void **state)
{
    (void)state;
    char *b;
    ssize_t n = t_blob(&b);
    assert_true(n > CACHE_L2_FIXED);
    struct cache_l2_view v;
    assert_int_equal(cache_l2_decode(b, (size_t)n, &v), 0);
    assert_int_equal(v.status, 200);
    assert_int_equal(v.nvary, 1);
    assert_int_equal(v.age_ms, 10000);
    assert_int_equal(v.fresh_ms, 60000);
    assert_int_equal(v.stored_at_ms, T_WALL_MS);
    assert_int_equal(v.etag_len, 4);
    assert_memory_equal(v.etag, "\"v1\"", 4);
    assert_int_equal(v.host_len, 11);
    assert_memory_equal(v.target, "/a?x=1", 6);
    assert_int_equal(v.body_len, 5);
    assert_memory_equal(v.body, "hello", 5);
    assert_int_equal(v.hdr_len, strlen(HDR));

    /* into another cache, 5 s later by the wall clock: age 15 s, served */
    struct cache *c2;
    assert_int_equal(cache_create(1 << 20, &c2), 0);
    struct t_req q;
    t_req_parse(&q, REQ);
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c2, q.buf, &q.req, 1, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_l2_fill(c2, f, &v, q.buf, &q.req, 500, T_WALL_MS + 5000), 0);
    assert_int_equal(cache_fill_commit(c2, f, NULL, NULL), 0);
    struct cache_entry *e = cache_lookup(c2, q.buf, &q.req, 500);
    assert_non_null(e);
    assert_int_equal(cache_entry_age_ms(e, 500), 15000);
    size_t bl;
    assert_memory_equal(cache_entry_body(e, &bl), "hello", 5);
    /* fresh for 45 s more, not 60 */
    struct cache_req any = {.max_age_ms = UINT64_MAX};
    assert_true(cache_entry_usable(e, &any, 500 + 44999));
    assert_false(cache_entry_usable(e, &any, 500 + 45000));
    cache_entry_unref(e);
    cache_destroy(c2);
    free(b);
}

static void test_fill_refusals(void **state)
{
    (void)state;
    char *b;
    ssize_t n = t_blob(&b);
    struct cache_l2_view v;
    assert_int_equal(cache_l2_decode(b, (size_t)n, &v), 0);
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    static const struct {
        const char *req;
        int64_t wall;
        int rc;
    } rows[] = {
        /* another Accept-Language: another variant */
        {"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept-Language: de\r\n\r\n", 0, -ENOENT},
        /* no Accept-Language: absent differs from present */
        {"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, -ENOENT},
        /* another target or host (a hash collision, or a planted value) */
        {"GET /a?x=2 HTTP/1.1\r\nHost: example.com\r\nAccept-Language: fr\r\n\r\n", 0, -ENOENT},
        {"GET /a?x=1 HTTP/1.1\r\nHost: example.org\r\nAccept-Language: fr\r\n\r\n", 0, -ENOENT},
        /* 50 s later: age 60 s = its freshness: stale */
        {"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept-Language: fr\r\n\r\n", 50000, -ESTALE},
        /* host letter case does not matter */
        {"GET /a?x=1 HTTP/1.1\r\nHost: EXAMPLE.com\r\nAccept-Language: fr\r\n\r\n", 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct t_req q;
        t_req_parse(&q, rows[i].req);
        struct cache_fill *f;
        assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 1, &f), CACHE_FILL_NEW);
        int rc = cache_l2_fill(c, f, &v, q.buf, &q.req, 100, T_WALL_MS + rows[i].wall);
        if (rc != rows[i].rc)
            fail_msg("row %zu: %d, expected %d", i, rc, rows[i].rc);
        if (rc == 0)
            assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
        else
            cache_fill_abort(c, f, NULL, NULL);
    }
    cache_destroy(c);
    free(b);
}

static void test_truncated(void **state)
{
    (void)state;
    char *b;
    ssize_t n = t_blob(&b);
    struct cache_l2_view v;
    for (ssize_t k = 0; k < n; k++) {
        char *t = malloc((size_t)k + 1); /* exactly k bytes readable for ASan */
        memcpy(t, b, (size_t)k);
        if (cache_l2_decode(t, (size_t)k, &v) != -EBADMSG)
            fail_msg("truncated at %zd accepted", k);
        free(t);
    }
    /* one byte more is refused too */
    char *t = malloc((size_t)n + 1);
    memcpy(t, b, (size_t)n);
    t[n] = 'x';
    assert_int_equal(cache_l2_decode(t, (size_t)n + 1, &v), -EBADMSG);
    free(t);
    free(b);
}

static void put(char *b, size_t off, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b[off + (size_t)i] = (char)(v >> (8 * i));
}

static void test_corrupt(void **state)
{
    (void)state;
    char *b;
    ssize_t n = t_blob(&b);
    /* offsets of the fixed part (l2.h) and a bad value for each */
    static const struct {
        size_t off;
        int width;
        uint64_t val;
        const char *what;
    } rows[] = {
        {0, 1, 'X', "magic"},
        {3, 1, '2', "version"},
        {4, 2, 304, "status, not the header's"},
        {4, 2, 99, "status out of range"},
        {6, 2, 9, "nvary over CACHE_MAX_VARY"},
        {6, 2, 0, "nvary, not the record's"},
        {8, 2, 200, "etag_len too long"},
        {10, 2, 1, "reserved not zero"},
        {12, 8, UINT64_MAX, "negative stored_at"},
        {20, 8, UINT64_MAX, "age"},
        {28, 8, UINT64_MAX, "fresh"},
        {52, 8, (uint64_t)-2, "last_modified below -1"},
        {60, 4, 0, "empty host"},
        {60, 4, 0xffffffff, "host_len"},
        {64, 4, 0xffffffff, "target_len"},
        {68, 4, 0xffffffff, "vary_len"},
        {72, 4, 0xffffffff, "hdr_len"},
        {76, 8, UINT64_MAX, "body_len"},
        {76, 8, 4, "body_len short by one, lengths still adding up wrong"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *t = malloc((size_t)n);
        memcpy(t, b, (size_t)n);
        put(t, rows[i].off, rows[i].val, rows[i].width);
        struct cache_l2_view v;
        if (cache_l2_decode(t, (size_t)n, &v) != -EBADMSG)
            fail_msg("row %zu (%s) accepted", i, rows[i].what);
        free(t);
    }
    /* a header whose Content-Length lies about the body, lengths otherwise right */
    char *t = malloc((size_t)n);
    memcpy(t, b, (size_t)n);
    char *cl = memmem(t, (size_t)n, "Content-Length: 5", 17);
    assert_non_null(cl);
    cl[16] = '6';
    struct cache_l2_view v;
    assert_int_equal(cache_l2_decode(t, (size_t)n, &v), -EBADMSG);
    /* the Vary record's name in upper case, or its present flag out of range */
    memcpy(t, b, (size_t)n);
    char *vn = memmem(t, (size_t)n, "accept-language", 15);
    assert_non_null(vn);
    vn[0] = 'A';
    assert_int_equal(cache_l2_decode(t, (size_t)n, &v), -EBADMSG);
    memcpy(t, b, (size_t)n);
    vn = memmem(t, (size_t)n, "accept-language", 15);
    vn[16] = 2;
    assert_int_equal(cache_l2_decode(t, (size_t)n, &v), -EBADMSG);
    free(t);
    free(b);
}

static void test_garbage(void **state)
{
    (void)state;
    struct cache_l2_view v;
    static const char *const rows[] = {"", "LBC1", "garbage", "LBC1 not an entry at all",
                                       "HTTP/1.1 200 OK\r\n\r\n"};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(cache_l2_decode(rows[i], strlen(rows[i]), &v), -EBADMSG);
    /* random bytes after a right magic */
    char buf[512];
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        memcpy(buf, CACHE_L2_MAGIC, 4);
        for (size_t i = 4; i < sizeof(buf); i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (char)(x >> 16);
        }
        assert_int_equal(cache_l2_decode(buf, 84 + (size_t)(x % 400), &v), -EBADMSG);
    }
}

static void test_chunked_not_encoded(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct cache_entry *e = t_store(c, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
                                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n",
                                    "5\r\nhello\r\n0\r\n\r\n", 0);
    assert_non_null(e);
    char *b = NULL;
    assert_int_equal(cache_l2_encode(e, 0, T_WALL_MS, &b), -EINVAL);
    assert_null(b);
    cache_entry_unref(e);
    cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_fill_refusals),
        cmocka_unit_test(test_truncated), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_garbage),   cmocka_unit_test(test_chunked_not_encoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
