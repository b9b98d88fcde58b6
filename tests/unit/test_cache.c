/*
 * L1 response cache (lb/cache): hits and misses, expiry with time passed in, LRU eviction
 * by bytes, Vary variants, the Cache-Control decision, references outliving eviction, and
 * miss coalescing (one fill for a thousand waiters; abort; fills over the size limit).
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

#define T_TTL 10000 /* route ttl, ms */

/* A request parsed from a string kept alive in the struct. */
struct t_req {
    char buf[2048];
    struct http_req req;
};

static void t_req_parse(struct t_req *r, const char *text)
{
    size_t n = strlen(text);
    assert_true(n < sizeof(r->buf));
    memcpy(r->buf, text, n + 1);
    memset(&r->req, 0, sizeof(r->req));
    assert_int_equal(http_parse_request(r->buf, n, 16384, 8192, &r->req), (int)n);
}

struct t_resp {
    char buf[2048];
    struct http_resp resp;
};

static void t_resp_parse(struct t_resp *r, const char *text)
{
    size_t n = strlen(text);
    assert_true(n < sizeof(r->buf));
    memcpy(r->buf, text, n + 1);
    memset(&r->resp, 0, sizeof(r->resp));
    assert_int_equal(http_parse_response(r->buf, n, 16384, HTTP_M_GET, &r->resp), (int)n);
}

#define T_WALL 1796000000 /* wall clock when responses arrive (2026-11-30) */

/* The policy with route ttl @ttl as the heuristic, no max_ttl, no response delay. */
static enum cache_verdict t_pol(const struct t_req *q, const struct t_resp *s, uint64_t ttl,
                                uint64_t max_body, struct cache_policy *p)
{
    struct cache_rules r = {.heuristic_ms = ttl, .max_ttl_ms = 0, .max_body = max_body};
    struct cache_times t = {.wall_s = T_WALL, .delay_ms = 0};
    return cache_policy_eval(q->buf, &q->req, s->buf, &s->resp, &r, &t, p);
}

static enum cache_verdict t_eval(const char *req, const char *resp, uint64_t ttl,
                                 struct cache_policy *p)
{
    struct t_req q;
    struct t_resp s;
    t_req_parse(&q, req);
    t_resp_parse(&s, resp);
    return t_pol(&q, &s, ttl, 1 << 20, p);
}

/* Waiters woken, in order, with whether they got an entry. */
struct t_woken {
    uint32_t n;
    uint32_t with_entry;
    uint64_t sum;
    struct cache *c;
    int begin_again; /* a wake that begins a new fill for the key: its result */
    struct t_req *req;
};

static void t_wake(void *arg, uint64_t waiter, struct cache_entry *e)
{
    struct t_woken *w = arg;
    w->n++;
    w->sum += waiter;
    if (e) {
        w->with_entry++;
        if (w->req)
            assert_true(cache_entry_match(e, w->req->buf, &w->req->req));
    }
}

/*
 * Runs a whole miss: begin, head with the response @hdr, the body in two appends, commit.
 * Returns commit's result, or the policy verdict as a positive number when not cacheable.
 */
static int t_store(struct cache *c, const char *req, const char *hdr, const char *body,
                   size_t body_len, uint64_t now)
{
    struct t_req q;
    struct t_resp s;
    struct cache_policy p;
    struct cache_fill *f;
    t_req_parse(&q, req);
    t_resp_parse(&s, hdr);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    enum cache_verdict v = t_pol(&q, &s, T_TTL, cache_item_max(c), &p);
    if (v != CACHE_OK) {
        cache_fill_abort(c, f, NULL, NULL);
        return (int)v;
    }
    int rc = cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), now);
    if (rc == 0)
        rc = cache_fill_append(c, f, body, body_len / 2);
    if (rc == 0)
        rc = cache_fill_append(c, f, body + body_len / 2, body_len - body_len / 2);
    if (rc != 0) {
        cache_fill_abort(c, f, NULL, NULL);
        return rc;
    }
    return cache_fill_commit(c, f, NULL, NULL);
}

/* Looks @req up; returns the body's first byte (or -1 on a miss) and drops the ref. */
static int t_get(struct cache *c, const char *req, uint64_t now)
{
    struct t_req q;
    t_req_parse(&q, req);
    struct cache_entry *e = cache_lookup(c, q.buf, &q.req, now);
    if (!e)
        return -1;
    size_t len;
    const char *b = cache_entry_body(e, &len);
    int r = len ? (uint8_t)b[0] : 0;
    cache_entry_unref(e);
    return r;
}

static struct cache_stats t_stats(struct cache *c)
{
    struct cache_stats st;
    cache_stats_get(c, &st);
    return st;
}

#define REQ_A "GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
#define RESP_5 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"

static void test_hit_miss(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    assert_int_equal(t_get(c, REQ_A, 0), -1);
    assert_int_equal(t_store(c, REQ_A, RESP_5, "hello", 5, 0), 0);

    struct t_req q;
    t_req_parse(&q, REQ_A);
    struct cache_entry *e = cache_lookup(c, q.buf, &q.req, 10);
    assert_non_null(e);
    size_t len;
    const char *h = cache_entry_hdr(e, &len);
    assert_int_equal(len, strlen(RESP_5));
    assert_memory_equal(h, RESP_5, len);
    const char *b = cache_entry_body(e, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(b, "hello", 5);
    assert_int_equal(cache_entry_age_ms(e, 10), 10);
    cache_entry_unref(e);

    /* host letter case does not matter, the target does */
    assert_int_equal(t_get(c, "GET /a?x=1 HTTP/1.1\r\nHost: EXAMPLE.com\r\n\r\n", 1), 'h');
    assert_int_equal(t_get(c, "GET /a?x=2 HTTP/1.1\r\nHost: example.com\r\n\r\n", 1), -1);
    assert_int_equal(t_get(c, "GET /a?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n", 1), -1);
    /* not GET: neither answered nor counted */
    assert_int_equal(t_get(c, "HEAD /a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 1), -1);
    /* Authorization: a stored answer may be used (RFC 9111 3.5 is about storing) */
    assert_int_equal(
        t_get(c, "GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nAuthorization: x\r\n\r\n", 1), 'h');

    struct cache_stats st = t_stats(c);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.entries, 1);
    assert_true(st.bytes > 5 && st.bytes < 1024);
    assert_int_equal(st.fills, 1);

    /* a second answer for the same key replaces the first */
    assert_int_equal(t_store(c, REQ_A, RESP_5, "world", 5, 20), 0);
    assert_int_equal(t_get(c, REQ_A, 21), 'w');
    assert_int_equal(t_stats(c).entries, 1);
    cache_destroy(c);
}

static void test_ttl_expiry(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    assert_int_equal(t_store(c, REQ_A, RESP_5, "hello", 5, 100), 0);
    assert_int_equal(t_get(c, REQ_A, 100 + T_TTL - 1), 'h');
    assert_int_equal(t_get(c, REQ_A, 100 + T_TTL), -1);
    struct cache_stats st = t_stats(c);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);

    /* max-age shorter than the route ttl wins */
    assert_int_equal(
        t_store(c, REQ_A,
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=2\r\nContent-Length: 1\r\n\r\n", "x", 1,
                0),
        0);
    assert_int_equal(t_get(c, REQ_A, 1999), 'x');
    assert_int_equal(t_get(c, REQ_A, 2000), -1);

    /* the sweep removes what nobody looks up */
    char req[128];
    for (int i = 0; i < 50; i++) {
        snprintf(req, sizeof(req), "GET /s/%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        assert_int_equal(t_store(c, req, RESP_5, "hello", 5, 1000), 0);
    }
    assert_int_equal(t_stats(c).entries, 50);
    assert_int_equal(cache_tick(c, 1000 + T_TTL - 1), 0);
    assert_int_equal(cache_tick(c, 1000 + T_TTL), 50);
    st = t_stats(c);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    cache_destroy(c);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    struct cache *c;
    const size_t max = 64 * 1024;
    assert_int_equal(cache_create(max, &c), 0);
    static char body[4000];
    char req[128];
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(body));
    for (int i = 0; i < 40; i++) {
        memset(body, 'a' + i % 26, sizeof(body));
        snprintf(req, sizeof(req), "GET /e/%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        assert_int_equal(t_store(c, req, hdr, body, sizeof(body), 0), 0);
        /* keep /e/0 recently used: LRU, not FIFO */
        assert_int_equal(t_get(c, "GET /e/0 HTTP/1.1\r\nHost: h\r\n\r\n", 1), 'a');
        assert_true(t_stats(c).bytes <= max);
    }
    struct cache_stats st = t_stats(c);
    assert_true(st.evictions > 20);
    assert_int_equal(st.entries + st.evictions, 40);
    assert_true(st.bytes + sizeof(body) + 200 > max); /* full, not over-evicted */
    assert_int_equal(t_get(c, "GET /e/1 HTTP/1.1\r\nHost: h\r\n\r\n", 2), -1);
    assert_int_equal(t_get(c, "GET /e/39 HTTP/1.1\r\nHost: h\r\n\r\n", 2), 'a' + 39 % 26);

    /* over max_bytes / 8 is never stored */
    static char big[9000];
    snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(big));
    assert_int_equal(t_store(c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n", hdr, big, sizeof(big), 0),
                     CACHE_NS_TOO_BIG);
    cache_destroy(c);
}

#define VARY_RESP "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nContent-Length: 1\r\n\r\n"
#define REQ_V(ae) "GET /v HTTP/1.1\r\nHost: h\r\n" ae "\r\n"

static void test_vary(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    assert_int_equal(t_store(c, REQ_V("Accept-Encoding: gzip\r\n"), VARY_RESP, "g", 1, 0), 0);
    assert_int_equal(t_get(c, REQ_V("accept-encoding: gzip\r\n"), 1), 'g');
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: br\r\n"), 1), -1);
    assert_int_equal(t_get(c, REQ_V(""), 1), -1);
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: \r\n"), 1), -1);
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip\r\nAccept-Encoding: br\r\n"), 1), -1);

    /* the identity variant is a separate entry; both stay */
    assert_int_equal(t_store(c, REQ_V(""), VARY_RESP, "i", 1, 0), 0);
    assert_int_equal(
        t_store(c, REQ_V("Accept-Encoding: gzip\r\nAccept-Encoding: br\r\n"), VARY_RESP, "2", 1, 0),
        0);
    assert_int_equal(t_stats(c).entries, 3);
    assert_int_equal(t_get(c, REQ_V(""), 1), 'i');
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip\r\n"), 1), 'g');
    /* repeated fields compare as their join */
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip\r\nAccept-Encoding: br\r\n"), 1), '2');
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip,br\r\n"), 1), '2');
    /* an unrelated field does not matter */
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip\r\nX-Other: 1\r\n"), 1), 'g');

    /* replacing one variant keeps the others */
    assert_int_equal(t_store(c, REQ_V("Accept-Encoding: gzip\r\n"), VARY_RESP, "G", 1, 5), 0);
    assert_int_equal(t_stats(c).entries, 3);
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: gzip\r\n"), 6), 'G');
    assert_int_equal(t_get(c, REQ_V(""), 6), 'i');

    /* the backend changed its Vary: the old variants go */
    assert_int_equal(t_store(c, REQ_V("Accept-Encoding: gzip\r\n"), RESP_5, "plain", 5, 7), 0);
    assert_int_equal(t_stats(c).entries, 1);
    assert_int_equal(t_get(c, REQ_V("Accept-Encoding: br\r\n"), 8), 'p');

    /* at most CACHE_MAX_VARIANTS per URL: the oldest goes */
    char req[128];
    for (int i = 0; i < CACHE_MAX_VARIANTS + 4; i++) {
        snprintf(req, sizeof(req), REQ_V("X-V: %d\r\n"), i);
        assert_int_equal(t_store(c, req,
                                 "HTTP/1.1 200 OK\r\nVary: x-v, X-V\r\nContent-Length: 1\r\n\r\n",
                                 "v", 1, 10 + (uint64_t)i),
                         0);
    }
    assert_int_equal(t_stats(c).entries, CACHE_MAX_VARIANTS);
    snprintf(req, sizeof(req), REQ_V("X-V: %d\r\n"), 0);
    assert_int_equal(t_get(c, req, 30), -1);
    snprintf(req, sizeof(req), REQ_V("X-V: %d\r\n"), CACHE_MAX_VARIANTS + 3);
    assert_int_equal(t_get(c, req, 30), 'v');
    cache_destroy(c);
}

static void test_policy(void **state)
{
    (void)state;
    struct cache_policy p;
    const char *get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
#define R200(fields) "HTTP/1.1 200 OK\r\n" fields "Content-Length: 0\r\n\r\n"
    static const struct {
        const char *resp;
        enum cache_verdict v;
        uint64_t ttl;
    } cases[] = {
        {R200(""), CACHE_OK, T_TTL},
        {R200("Cache-Control: public\r\n"), CACHE_OK, T_TTL},
        {R200("Cache-Control: no-store\r\n"), CACHE_NS_NO_STORE, 0},
        {R200("Cache-Control: max-age=60, NO-STORE\r\n"), CACHE_NS_NO_STORE, 0},
        {R200("Cache-Control: private\r\n"), CACHE_NS_PRIVATE, 0},
        {R200("Cache-Control: private=\"Set-Cookie, X-A\"\r\n"), CACHE_NS_PRIVATE, 0},
        {R200("Cache-Control: no-cache\r\n"), CACHE_NS_NO_CACHE, 0},
        {R200("Cache-Control: x=\"no-store, private\", max-age=3\r\n"), CACHE_OK, 3000},
        {R200("Cache-Control: max-age=5\r\n"), CACHE_OK, 5000},
        {R200("Cache-Control: MAX-AGE = 5\r\n"), CACHE_OK, 5000},
        {R200("Cache-Control: max-age=\"4\"\r\n"), CACHE_OK, 4000},
        /* the origin decides: the route ttl is only the heuristic */
        {R200("Cache-Control: max-age=60\r\n"), CACHE_OK, 60000},
        {R200("Cache-Control: max-age=99999999999999999999999\r\n"), CACHE_OK, 2147483648000ull},
        {R200("Cache-Control: max-age=5, s-maxage=2\r\n"), CACHE_OK, 2000},
        {R200("Cache-Control: s-maxage=8, max-age=1\r\n"), CACHE_OK, 8000},
        {R200("Cache-Control: max-age=7\r\nCache-Control: max-age=3\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: max-age=0\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: max-age=abc\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: max-age=-1\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: max-age\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: max-age=5 junk\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: s-maxage=0, max-age=9\r\n"), CACHE_NS_STALE, 0},
        {R200("Cache-Control: public\r\nCache-Control: private\r\n"), CACHE_NS_PRIVATE, 0},
        {R200("Set-Cookie: a=b\r\n"), CACHE_NS_SET_COOKIE, 0},
        {R200("Vary: *\r\n"), CACHE_NS_VARY, 0},
        {R200("Vary: Accept-Encoding, *\r\n"), CACHE_NS_VARY, 0},
        {R200("Vary: a,b,c,d,e,f,g,h,i\r\n"), CACHE_NS_VARY, 0},
        {R200("Vary: a,b,c,d,e,f,g,h,a\r\n"), CACHE_OK, T_TTL},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", CACHE_OK, T_TTL},
        {"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n", CACHE_NS_STATUS, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", CACHE_OK, T_TTL},
        {"HTTP/1.1 200 OK\r\nX: y\r\n\r\n", CACHE_NS_FRAMING, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", CACHE_NS_TOO_BIG, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum cache_verdict v = t_eval(get, cases[i].resp, T_TTL, &p);
        if (v != cases[i].v || (v == CACHE_OK && p.ttl_ms != cases[i].ttl))
            fail_msg("case %zu (%s): verdict %d ttl %llu, want %d %llu", i, cases[i].resp, (int)v,
                     (unsigned long long)(v == CACHE_OK ? p.ttl_ms : 0), (int)cases[i].v,
                     (unsigned long long)cases[i].ttl);
    }

    assert_int_equal(
        t_eval("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", R200(""), T_TTL, &p),
        CACHE_NS_METHOD);
    assert_int_equal(t_eval("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eA==\r\n\r\n",
                            R200(""), T_TTL, &p),
                     CACHE_NS_AUTH);
    assert_int_equal(t_eval(get, R200(""), 0, &p), CACHE_NS_STALE);

    assert_int_equal(
        t_eval(get, R200("Vary: Accept-Encoding\r\nvary: X-A ,accept-encoding\r\n"), T_TTL, &p),
        CACHE_OK);
    assert_int_equal(p.nvary, 2);
    assert_memory_equal(p.vary, "accept-encoding\0x-a\0", p.vary_len);
    assert_true(p.has_length);
    assert_int_equal(p.content_length, 0);
#undef R200
}

static void test_ref_outlives_eviction(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(16 * 1024, &c), 0);
    assert_int_equal(t_store(c, REQ_A, RESP_5, "hello", 5, 0), 0);
    struct t_req q;
    t_req_parse(&q, REQ_A);
    struct cache_entry *held = cache_lookup(c, q.buf, &q.req, 1);
    assert_non_null(held);
    cache_entry_ref(held); /* a second send */

    /* replaced, then pushed out by others: the held bytes stay readable */
    assert_int_equal(t_store(c, REQ_A, RESP_5, "world", 5, 2), 0);
    char req[128];
    static char body[1500];
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(body));
    for (int i = 0; i < 30; i++) {
        snprintf(req, sizeof(req), "GET /f/%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        assert_int_equal(t_store(c, req, hdr, body, sizeof(body), 3), 0);
    }
    assert_true(t_stats(c).evictions > 0);
    assert_int_equal(t_get(c, REQ_A, 4), -1);
    size_t len;
    const char *b = cache_entry_body(held, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(b, "hello", 5);
    cache_entry_unref(held);
    b = cache_entry_body(held, &len);
    assert_memory_equal(b, "hello", 5);
    cache_entry_unref(held); /* freed here: ASan would see a use after this */

    /* and an entry still held when the cache goes away */
    assert_int_equal(t_store(c, REQ_A, RESP_5, "again", 5, 5), 0);
    held = cache_lookup(c, q.buf, &q.req, 6);
    assert_non_null(held);
    cache_destroy(c);
    b = cache_entry_body(held, &len);
    assert_memory_equal(b, "again", 5);
    cache_entry_unref(held);
}

static void test_coalesce_commit(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct t_req q;
    t_req_parse(&q, REQ_A);
    assert_null(cache_lookup(c, q.buf, &q.req, 0));

    struct cache_fill *f, *f2;
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    uint64_t want = 0;
    for (uint64_t w = 1; w <= 1000; w++) {
        /* each waiter looked up first and missed */
        assert_null(cache_lookup(c, q.buf, &q.req, 1));
        assert_int_equal(cache_fill_begin(c, q.buf, &q.req, w << 32 | w, &f2), CACHE_FILL_WAIT);
        assert_ptr_equal(f2, f);
        want += w << 32 | w;
    }
    assert_int_equal(cache_fill_waiters(f), 1000);
    struct cache_stats st = t_stats(c);
    assert_int_equal(st.coalesced, 1000);
    assert_int_equal(st.misses, 1001);

    struct t_resp s;
    struct cache_policy p;
    t_resp_parse(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(t_pol(&q, &s, T_TTL, cache_item_max(c), &p), CACHE_OK);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), 2), 0);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), 2), -EALREADY);
    assert_int_equal(cache_fill_append(c, f, "5\r\nhello\r\n", 10), 0);
    assert_int_equal(cache_fill_append(c, f, "0\r\n\r\n", 5), 0);
    struct t_woken wk = {.c = c, .req = &q};
    assert_int_equal(cache_fill_commit(c, f, t_wake, &wk), 0);
    assert_int_equal(wk.n, 1000);
    assert_int_equal(wk.with_entry, 1000);
    assert_int_equal(wk.sum, want);

    /* woken waiters are then served from the entry */
    struct cache_entry *e = cache_lookup(c, q.buf, &q.req, 3);
    assert_non_null(e);
    size_t len;
    const char *b = cache_entry_body(e, &len);
    assert_int_equal(len, 15);
    assert_memory_equal(b, "5\r\nhello\r\n0\r\n\r\n", 15);
    cache_entry_unref(e);
    st = t_stats(c);
    assert_int_equal(st.fills, 1);
    assert_int_equal(st.hits, 1);
    /* the fill is gone: the next miss begins a new one */
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    cache_fill_abort(c, f, NULL, NULL);
    cache_destroy(c);
}

/* A wake callback that re-enters the cache: the first woken waiter begins the next fill. */
static void t_wake_refill(void *arg, uint64_t waiter, struct cache_entry *e)
{
    struct t_woken *w = arg;
    t_wake(arg, waiter, e);
    if (w->n == 1) {
        struct cache_fill *f;
        w->begin_again = cache_fill_begin(w->c, w->req->buf, &w->req->req, waiter, &f);
        cache_fill_abort(w->c, f, NULL, NULL);
    }
}

static void test_coalesce_abort(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct t_req q;
    t_req_parse(&q, REQ_A);
    struct cache_fill *f, *f2;
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    for (uint64_t w = 1; w <= 1000; w++)
        assert_int_equal(cache_fill_begin(c, q.buf, &q.req, w, &f2), CACHE_FILL_WAIT);
    /* another key is not coalesced with it */
    struct t_req o;
    t_req_parse(&o, "GET /other HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_int_equal(cache_fill_begin(c, o.buf, &o.req, 0, &f2), CACHE_FILL_NEW);
    cache_fill_abort(c, f2, NULL, NULL);

    struct t_woken wk = {.c = c, .req = &q, .begin_again = -1};
    cache_fill_abort(c, f, t_wake_refill, &wk);
    assert_int_equal(wk.n, 1000);
    assert_int_equal(wk.with_entry, 0);
    assert_int_equal(wk.sum, 1000 * 1001 / 2);
    assert_int_equal(wk.begin_again, CACHE_FILL_NEW);
    assert_int_equal(t_stats(c).fill_aborts, 3);
    assert_int_equal(t_stats(c).entries, 0);

    /* requests that cannot be cached get no fill */
    struct t_req a;
    t_req_parse(&a, "HEAD /a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_int_equal(cache_fill_begin(c, a.buf, &a.req, 0, &f), -EINVAL);

    /* the waiter bound */
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    for (uint64_t w = 1; w <= CACHE_MAX_WAITERS; w++)
        assert_int_equal(cache_fill_begin(c, q.buf, &q.req, w, &f2), CACHE_FILL_WAIT);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f2), -ENOSPC);
    wk = (struct t_woken){0};
    cache_fill_abort(c, f, t_wake, &wk);
    assert_int_equal(wk.n, CACHE_MAX_WAITERS);
    cache_destroy(c);
}

static void test_fill_limits(void **state)
{
    (void)state;
    struct cache *c;
    assert_int_equal(cache_create(64 * 1024, &c), 0);
    size_t max = cache_item_max(c);
    assert_int_equal(max, 8 * 1024);
    struct t_req q;
    struct t_resp s;
    struct cache_policy p;
    struct cache_fill *f, *f2;
    t_req_parse(&q, REQ_A);

    /* chunked: grows until the limit, then -EFBIG; the abort releases the waiters */
    t_resp_parse(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(t_pol(&q, &s, T_TTL, max, &p), CACHE_OK);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_append(c, f, "x", 1), -EPROTO); /* before the head */
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 7, &f2), CACHE_FILL_WAIT);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), 0), 0);
    static char chunk[1000];
    int rc = 0, n = 0;
    while ((rc = cache_fill_append(c, f, chunk, sizeof(chunk))) == 0)
        n++;
    assert_int_equal(rc, -EFBIG);
    assert_true(n >= 6 && n <= 8);
    struct t_woken wk = {0};
    cache_fill_abort(c, f, t_wake, &wk);
    assert_int_equal(wk.n, 1);
    assert_int_equal(wk.sum, 7);

    /* Content-Length: a body longer, or shorter at commit, is refused */
    t_resp_parse(&s, RESP_5);
    assert_int_equal(t_pol(&q, &s, T_TTL, max, &p), CACHE_OK);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), 0), 0);
    assert_int_equal(cache_fill_append(c, f, "hello!", 6), -EFBIG);
    assert_int_equal(cache_fill_append(c, f, "hell", 4), 0);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 9, &f2), CACHE_FILL_WAIT);
    wk = (struct t_woken){0};
    assert_int_equal(cache_fill_commit(c, f, t_wake, &wk), -EPROTO);
    assert_int_equal(wk.n, 1);
    assert_int_equal(wk.with_entry, 0);
    assert_int_equal(t_stats(c).entries, 0);

    /* commit without a head */
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), -EPROTO);

    /* a header that alone passes the limit */
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    static char hdr[9000];
    memset(hdr, 'h', sizeof(hdr));
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, hdr, sizeof(hdr), 0), -EFBIG);
    cache_fill_abort(c, f, NULL, NULL);
    assert_int_equal(t_stats(c).fill_aborts, 4);

    /* a limit raised for a shared cache: the entry is built and handed to the waiters, but
     * L1 does not keep what is larger than its item limit; a limit below it changes nothing */
    t_resp_parse(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(t_pol(&q, &s, T_TTL, 64 * 1024, &p), CACHE_OK);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 0, &f), CACHE_FILL_NEW);
    cache_fill_set_limit(c, f, 100);
    cache_fill_set_limit(c, f, 64 * 1024);
    assert_int_equal(cache_fill_begin(c, q.buf, &q.req, 11, &f2), CACHE_FILL_WAIT);
    assert_int_equal(cache_fill_head(c, f, &p, q.buf, &q.req, s.buf, strlen(s.buf), 0), 0);
    for (n = 0; n < 20; n++)
        assert_int_equal(cache_fill_append(c, f, chunk, sizeof(chunk)), 0);
    wk = (struct t_woken){0};
    assert_int_equal(cache_fill_commit(c, f, t_wake, &wk), 0);
    assert_int_equal(wk.n, 1);
    assert_int_equal(wk.with_entry, 1);
    assert_int_equal(t_stats(c).entries, 0);
    assert_null(cache_lookup(c, q.buf, &q.req, 1));
    cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_lru_eviction),    cmocka_unit_test(test_vary),
        cmocka_unit_test(test_policy),          cmocka_unit_test(test_ref_outlives_eviction),
        cmocka_unit_test(test_coalesce_commit), cmocka_unit_test(test_coalesce_abort),
        cmocka_unit_test(test_fill_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
