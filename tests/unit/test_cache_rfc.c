/*
 * RFC 9111's rules for the L1 cache as a table: each row is a response stored (with the
 * request that fetched it, the route's ttl and max_ttl, and the response delay), the
 * storage verdict expected, then a later request at a given time and the decision expected
 * (hit, 304, fill, pass, bypass, 504). Then the Age a hit reports, and invalidation seen
 * by a second worker's cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb/cache/cache.h"

#define T_WALL 1796000000 /* wall clock when the response arrives */
#define D_NOW "Mon, 30 Nov 2026 00:53:20 GMT"
#define D_M10 "Mon, 30 Nov 2026 00:53:10 GMT"
#define D_P60 "Mon, 30 Nov 2026 00:54:20 GMT"
#define D_P60_850 "Monday, 30-Nov-26 00:54:20 GMT"
#define D_P60_ASC "Mon Nov 30 00:54:20 2026"
#define D_PAST "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_M1H "Sun, 29 Nov 2026 23:53:20 GMT"

#define GET "GET /r HTTP/1.1\r\nHost: h\r\n"
#define Q(fields) GET fields "\r\n"
#define R(status, fields) "HTTP/1.1 " status "\r\n" fields "Content-Length: 1\r\n\r\n"
#define R200(fields) R("200 OK", "Date: " D_NOW "\r\n" fields)

struct row {
    const char *name;
    const char *store_req; /* NULL: plain GET */
    const char *resp;
    uint64_t ttl, max_ttl, delay; /* route ttl (heuristic), max_ttl, response delay (ms) */
    enum cache_verdict want_v;
    const char *req; /* the later request; NULL: plain GET */
    uint64_t at;     /* ms after the response arrived */
    enum cache_decision want_d;
};

static const struct row rows[] = {
    /* 4.2.1: freshness lifetime, in order s-maxage, max-age, Expires - Date, heuristic */
    {"max-age fresh", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 59999,
     CACHE_D_HIT},
    {"max-age stale", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 60000,
     CACHE_D_FILL},
    {"s-maxage over max-age", 0, R200("Cache-Control: max-age=60, s-maxage=10\r\n"), 0, 0, 0,
     CACHE_OK, 0, 10000, CACHE_D_FILL},
    {"s-maxage fresh", 0, R200("Cache-Control: max-age=1, s-maxage=10\r\n"), 0, 0, 0, CACHE_OK, 0,
     9999, CACHE_D_HIT},
    {"Expires IMF-fixdate", 0, R200("Expires: " D_P60 "\r\n"), 0, 0, 0, CACHE_OK, 0, 59999,
     CACHE_D_HIT},
    {"Expires IMF-fixdate stale", 0, R200("Expires: " D_P60 "\r\n"), 0, 0, 0, CACHE_OK, 0, 60000,
     CACHE_D_FILL},
    {"Expires RFC 850", 0, R200("Expires: " D_P60_850 "\r\n"), 0, 0, 0, CACHE_OK, 0, 59999,
     CACHE_D_HIT},
    {"Expires asctime", 0, R200("Expires: " D_P60_ASC "\r\n"), 0, 0, 0, CACHE_OK, 0, 59999,
     CACHE_D_HIT},
    {"Expires past", 0, R200("Expires: " D_PAST "\r\n"), 5000, 0, 0, CACHE_NS_STALE, 0, 0, 0},
    {"Expires invalid = past", 0, R200("Expires: 0\r\n"), 5000, 0, 0, CACHE_NS_STALE, 0, 0, 0},
    {"Expires twice, different", 0, R200("Expires: " D_P60 "\r\nExpires: " D_P60_ASC "x\r\n"), 5000,
     0, 0, CACHE_NS_STALE, 0, 0, 0},
    {"Expires without Date: from receipt", 0, R("200 OK", "Expires: " D_P60 "\r\n"), 0, 0, 0,
     CACHE_OK, 0, 59999, CACHE_D_HIT},
    {"max-age over Expires", 0, R200("Cache-Control: max-age=5\r\nExpires: " D_PAST "\r\n"), 0, 0,
     0, CACHE_OK, 0, 4999, CACHE_D_HIT},
    {"max-age invalid = stale", 0, R200("Cache-Control: max-age=ten\r\n"), 5000, 0, 0,
     CACHE_NS_STALE, 0, 0, 0},
    {"max-age conflicting = stale", 0, R200("Cache-Control: max-age=60, max-age=30\r\n"), 0, 0, 0,
     CACHE_NS_STALE, 0, 0, 0},
    /* 4.2.2: the route ttl is the heuristic, only without explicit freshness */
    {"heuristic ttl", 0, R200(""), 5000, 0, 0, CACHE_OK, 0, 4999, CACHE_D_HIT},
    {"heuristic ttl ends", 0, R200(""), 5000, 0, 0, CACHE_OK, 0, 5000, CACHE_D_FILL},
    {"ttl 0: only what the origin marks", 0, R200(""), 0, 0, 0, CACHE_NS_STALE, 0, 0, 0},
    {"max_ttl caps max-age", 0, R200("Cache-Control: max-age=60\r\n"), 0, 2000, 0, CACHE_OK, 0,
     2000, CACHE_D_FILL},
    /* 4.2.3: current age from Age, Date and the response delay */
    {"Age counted", 0, R200("Age: 50\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0,
     10000, CACHE_D_FILL},
    {"Age counted, fresh", 0, R200("Age: 50\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     0, 9999, CACHE_D_HIT},
    {"apparent age from Date", 0, R("200 OK", "Date: " D_M10 "\r\nCache-Control: max-age=60\r\n"),
     0, 0, 0, CACHE_OK, 0, 50000, CACHE_D_FILL},
    {"response delay", 0, R200("Age: 5\r\nCache-Control: max-age=10\r\n"), 0, 0, 3000, CACHE_OK, 0,
     2000, CACHE_D_FILL},
    {"response delay, fresh", 0, R200("Age: 5\r\nCache-Control: max-age=10\r\n"), 0, 0, 3000,
     CACHE_OK, 0, 1999, CACHE_D_HIT},
    {"older than its lifetime", 0, R200("Age: 60\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_NS_STALE, 0, 0, 0},
    {"Date an hour ago, max-age 1h", 0,
     R("200 OK", "Date: " D_M1H "\r\nCache-Control: max-age=3600\r\n"), 0, 0, 0, CACHE_NS_STALE, 0,
     0, 0},
    /* 3: what may be stored */
    {"no-store", 0, R200("Cache-Control: no-store, max-age=60\r\n"), 0, 0, 0, CACHE_NS_NO_STORE, 0,
     0, 0},
    {"request no-store", Q("Cache-Control: no-store\r\n"), R200("Cache-Control: max-age=60\r\n"), 0,
     0, 0, CACHE_NS_NO_STORE, 0, 0, 0},
    {"private", 0, R200("Cache-Control: private, max-age=60\r\n"), 0, 0, 0, CACHE_NS_PRIVATE, 0, 0,
     0},
    {"no-cache", 0, R200("Cache-Control: no-cache, max-age=60\r\n"), 0, 0, 0, CACHE_NS_NO_CACHE, 0,
     0, 0},
    {"Authorization", Q("Authorization: Basic eA==\r\n"), R200("Cache-Control: max-age=60\r\n"), 0,
     0, 0, CACHE_NS_AUTH, 0, 0, 0},
    {"Authorization, public", Q("Authorization: Basic eA==\r\n"),
     R200("Cache-Control: public, max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"Authorization, s-maxage", Q("Authorization: Basic eA==\r\n"),
     R200("Cache-Control: s-maxage=60\r\n"), 0, 0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"Authorization, must-revalidate", Q("Authorization: Basic eA==\r\n"),
     R200("Cache-Control: must-revalidate, max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"Set-Cookie", 0, R200("Set-Cookie: a=b\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_NS_SET_COOKIE, 0, 0, 0},
    {"Set-Cookie, public", 0, R200("Set-Cookie: a=b\r\nCache-Control: public, max-age=60\r\n"), 0,
     0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"404 heuristic", 0, R("404 Not Found", ""), 5000, 0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"410 heuristic", 0, R("410 Gone", ""), 5000, 0, 0, CACHE_OK, 0, 1, CACHE_D_HIT},
    {"302 not heuristic", 0, R("302 Found", "Location: /x\r\n"), 5000, 0, 0, CACHE_NS_STATUS, 0, 0,
     0},
    {"302 with max-age", 0, R("302 Found", "Cache-Control: max-age=5\r\n"), 0, 0, 0, CACHE_OK, 0, 1,
     CACHE_D_HIT},
    {"500 not heuristic", 0, R("500 Oops", ""), 5000, 0, 0, CACHE_NS_STATUS, 0, 0, 0},
    {"206 never", 0, R("206 Partial Content", "Cache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_NS_STATUS, 0, 0, 0},
    {"public allows heuristic", 0, R("302 Found", "Cache-Control: public\r\n"), 5000, 0, 0,
     CACHE_OK, 0, 1, CACHE_D_HIT},
    /* 4.1: Vary */
    {"Vary *", 0, R200("Vary: *\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_NS_VARY, 0, 0,
     0},
    {"Vary same value", Q("Accept-Language: fr\r\n"),
     R200("Vary: accept-language\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Accept-Language: fr\r\n"), 1, CACHE_D_HIT},
    {"Vary other value", Q("Accept-Language: fr\r\n"),
     R200("Vary: accept-language\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Accept-Language: de\r\n"), 1, CACHE_D_FILL},
    {"Vary field absent", Q("Accept-Language: fr\r\n"),
     R200("Vary: accept-language\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 1,
     CACHE_D_FILL},
    /* 5.2.1: request directives */
    {"request no-cache", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: no-cache\r\n"), 1, CACHE_D_FILL},
    {"request Pragma: no-cache", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Pragma: no-cache\r\n"), 1, CACHE_D_FILL},
    {"Pragma ignored beside Cache-Control", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("Pragma: no-cache\r\nCache-Control: max-age=100\r\n"), 1, CACHE_D_HIT},
    {"request no-store still served", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: no-store\r\n"), 1, CACHE_D_HIT},
    {"request no-store, miss: not stored", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("Cache-Control: no-store\r\n"), 60000, CACHE_D_PASS},
    {"request max-age, older", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: max-age=5\r\n"), 5001, CACHE_D_FILL},
    {"request max-age, young enough", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: max-age=5\r\n"), 5000, CACHE_D_HIT},
    {"request max-age=0", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: max-age=0\r\n"), 1, CACHE_D_FILL},
    {"request min-fresh, not enough", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: min-fresh=10\r\n"), 50000, CACHE_D_FILL},
    {"request min-fresh, enough", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: min-fresh=10\r\n"), 49999, CACHE_D_HIT},
    {"request max-stale: never stale here", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("Cache-Control: max-stale=100\r\n"), 60001, CACHE_D_FILL},
    {"must-revalidate never stale", 0, R200("Cache-Control: max-age=1, must-revalidate\r\n"), 0, 0,
     0, CACHE_OK, Q("Cache-Control: max-stale\r\n"), 1000, CACHE_D_FILL},
    {"only-if-cached, fresh", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: only-if-cached\r\n"), 1, CACHE_D_HIT},
    {"only-if-cached, stale: 504", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: only-if-cached\r\n"), 60000, CACHE_D_504},
    /* RFC 9110 13: conditional requests answered from the cache */
    {"If-None-Match matches", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("If-None-Match: \"v0\", \"v1\"\r\n"), 1, CACHE_D_304},
    {"If-None-Match weak comparison", 0, R200("ETag: W/\"v1\"\r\nCache-Control: max-age=60\r\n"), 0,
     0, 0, CACHE_OK, Q("If-None-Match: \"v1\"\r\n"), 1, CACHE_D_304},
    {"If-None-Match differs", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("If-None-Match: \"v2\"\r\n"), 1, CACHE_D_HIT},
    {"If-None-Match, no stored ETag", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-None-Match: \"v1\"\r\n"), 1, CACHE_D_HIT},
    {"If-None-Match *", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-None-Match: *\r\n"), 1, CACHE_D_304},
    {"If-None-Match malformed", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("If-None-Match: v1\r\n"), 1, CACHE_D_BYPASS},
    {"If-None-Match miss: not stored", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=1\r\n"), 0,
     0, 0, CACHE_OK, Q("If-None-Match: \"v1\"\r\n"), 1000, CACHE_D_PASS},
    {"If-Modified-Since, not modified", 0,
     R200("Last-Modified: " D_M1H "\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-Modified-Since: " D_M10 "\r\n"), 1, CACHE_D_304},
    {"If-Modified-Since, modified since", 0,
     R200("Last-Modified: " D_M10 "\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-Modified-Since: " D_M1H "\r\n"), 1, CACHE_D_HIT},
    {"If-Modified-Since ignored under If-None-Match", 0,
     R200("ETag: \"v1\"\r\nLast-Modified: " D_M1H "\r\nCache-Control: max-age=60\r\n"), 0, 0, 0,
     CACHE_OK, Q("If-None-Match: \"v2\"\r\nIf-Modified-Since: " D_NOW "\r\n"), 1, CACHE_D_HIT},
    {"If-Modified-Since invalid", 0,
     R200("Last-Modified: " D_M1H "\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-Modified-Since: yesterday\r\n"), 1, CACHE_D_HIT},
    /* 4.3: revalidation of stored answers with a validator */
    {"stale with ETag: revalidate", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=1\r\n"), 0, 0,
     0, CACHE_OK, 0, 1000, CACHE_D_REVALIDATE},
    {"stale with Last-Modified: revalidate", 0,
     R200("Last-Modified: " D_M1H "\r\nCache-Control: max-age=1\r\n"), 0, 0, 0, CACHE_OK, 0, 1000,
     CACHE_D_REVALIDATE},
    {"stale with ETag, kept a minute at least", 0,
     R200("ETag: \"v1\"\r\nCache-Control: max-age=1\r\n"), 0, 0, 0, CACHE_OK, 0, 60999,
     CACHE_D_REVALIDATE},
    {"stale with ETag, then dropped", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=1\r\n"), 0, 0,
     0, CACHE_OK, 0, 61000, CACHE_D_FILL},
    {"no-cache with ETag: stored, revalidated at every use", 0,
     R200("ETag: \"v1\"\r\nCache-Control: no-cache, max-age=60\r\n"), 0, 0, 0, CACHE_OK, 0, 0,
     CACHE_D_REVALIDATE},
    {"stale on arrival with ETag: stored to revalidate", 0,
     R200("ETag: \"v1\"\r\nExpires: " D_PAST "\r\n"), 0, 0, 0, CACHE_OK, 0, 0, CACHE_D_REVALIDATE},
    {"request no-cache with ETag: revalidate", 0,
     R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: no-cache\r\n"), 1, CACHE_D_REVALIDATE},
    {"request max-age=0 with ETag: revalidate", 0,
     R200("ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Cache-Control: max-age=0\r\n"), 1, CACHE_D_REVALIDATE},
    {"only-if-cached never revalidates", 0, R200("ETag: \"v1\"\r\nCache-Control: max-age=1\r\n"), 0,
     0, 0, CACHE_OK, Q("Cache-Control: only-if-cached\r\n"), 1000, CACHE_D_504},
    {"If-None-Match on a stored 404: the 404", 0,
     R("404 Not Found", "ETag: \"v1\"\r\nCache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-None-Match: \"v1\"\r\n"), 1, CACHE_D_HIT},
    {"Range bypasses", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("Range: bytes=0-0\r\n"), 1, CACHE_D_BYPASS},
    {"If-Match bypasses", 0, R200("Cache-Control: max-age=60\r\n"), 0, 0, 0, CACHE_OK,
     Q("If-Match: \"v1\"\r\n"), 1, CACHE_D_BYPASS},
};

static void parse_req(char *buf, size_t cap, const char *text, struct http_req *req)
{
    size_t n = strlen(text);
    assert_true(n < cap);
    memcpy(buf, text, n + 1);
    memset(req, 0, sizeof(*req));
    assert_int_equal(http_parse_request(buf, n, 16384, 8192, req), (int)n);
}

static void run_row(size_t i, const struct row *r)
{
    static char qb[1024], sb[1024], lb[1024];
    struct http_req q, l;
    struct http_resp s;
    parse_req(qb, sizeof(qb), r->store_req ? r->store_req : Q(""), &q);
    size_t n = strlen(r->resp);
    memcpy(sb, r->resp, n + 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(http_parse_response(sb, n, 16384, HTTP_M_GET, &s), (int)n);

    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct cache_rules rules = {
        .heuristic_ms = r->ttl, .max_ttl_ms = r->max_ttl, .max_body = 1 << 16};
    struct cache_times t = {.wall_s = T_WALL, .delay_ms = r->delay};
    struct cache_policy p;
    enum cache_verdict v = cache_policy_eval(qb, &q, sb, &s, &rules, &t, &p);
    if (v != r->want_v)
        fail_msg("row %zu (%s): verdict %d, want %d", i, r->name, (int)v, (int)r->want_v);
    if (v != CACHE_OK) {
        cache_destroy(c);
        return;
    }
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c, qb, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &p, qb, &q, sb, n, 1000), 0);
    assert_int_equal(cache_fill_append(c, f, "x", 1), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);

    parse_req(lb, sizeof(lb), r->req ? r->req : Q(""), &l);
    struct cache_entry *e;
    enum cache_decision d =
        cache_decide(c, lb, &l, 1000 + r->at, T_WALL + (int64_t)(r->at / 1000), &e);
    if (d != r->want_d)
        fail_msg("row %zu (%s): decision %d, want %d", i, r->name, (int)d, (int)r->want_d);
    /* FILL may carry a stale entry to fall back on (stale-if-error): test_stale_if_error */
    if (d != CACHE_D_FILL)
        assert_int_equal(e != NULL,
                         d == CACHE_D_HIT || d == CACHE_D_304 || d == CACHE_D_REVALIDATE);
    if (e)
        cache_entry_unref(e);
    cache_destroy(c);
}

static void test_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

/* Age on a hit: the age it arrived with plus its time here (4.2.3, 5.1). */
static void test_age(void **state)
{
    (void)state;
    static char qb[256], sb[256];
    struct http_req q;
    struct http_resp s;
    parse_req(qb, sizeof(qb), Q(""), &q);
    strcpy(sb, R("200 OK", "Date: " D_M10 "\r\nAge: 3\r\nCache-Control: max-age=60\r\n"));
    assert_int_equal(http_parse_response(sb, strlen(sb), 16384, HTTP_M_GET, &s), (int)strlen(sb));
    struct cache *c;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    struct cache_rules rules = {.max_body = 1 << 16};
    struct cache_times t = {.wall_s = T_WALL, .delay_ms = 500};
    struct cache_policy p;
    assert_int_equal(cache_policy_eval(qb, &q, sb, &s, &rules, &t, &p), CACHE_OK);
    assert_int_equal(p.age_ms, 10000); /* apparent age 10 s beats 3 s + 0.5 s */
    assert_int_equal(p.fresh_ms, 60000);
    assert_int_equal(p.ttl_ms, 50000);
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c, qb, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &p, qb, &q, sb, strlen(sb), 0), 0);
    assert_int_equal(cache_fill_append(c, f, "x", 1), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
    struct cache_entry *e = cache_lookup(c, qb, &q, 7000);
    assert_non_null(e);
    assert_int_equal(cache_entry_age_ms(e, 7000), 17000);
    assert_int_equal(cache_entry_status(e), 200);
    char line[64];
    assert_int_equal(cache_entry_validator(e, line, sizeof(line)), 0); /* none stored */
    cache_entry_unref(e);
    cache_destroy(c);
}

/* The field that revalidates an entry: its ETag, else its Last-Modified. */
static void test_validator(void **state)
{
    (void)state;
    static const struct {
        const char *fields, *want;
    } t[] = {
        {"ETag: W/\"a-b\"\r\nLast-Modified: " D_M1H "\r\n", "If-None-Match: W/\"a-b\"\r\n"},
        {"ETag: \"a b\"\r\n", ""}, /* not an entity-tag: no validator */
        {"Last-Modified: " D_M1H "\r\n", "If-Modified-Since: " D_M1H "\r\n"},
        {"ETag: bad\r\nLast-Modified: " D_M1H "\r\n", "If-Modified-Since: " D_M1H "\r\n"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static char qb[256], sb[512];
        struct http_req q;
        struct http_resp s;
        parse_req(qb, sizeof(qb), Q(""), &q);
        snprintf(sb, sizeof(sb),
                 "HTTP/1.1 200 OK\r\nCache-Control: max-age=9\r\n%s"
                 "Content-Length: 0\r\n\r\n",
                 t[i].fields);
        memset(&s, 0, sizeof(s));
        assert_int_equal(http_parse_response(sb, strlen(sb), 16384, HTTP_M_GET, &s),
                         (int)strlen(sb));
        struct cache *c;
        assert_int_equal(cache_create(1 << 20, &c), 0);
        struct cache_rules rules = {.max_body = 1 << 16};
        struct cache_times tm = {.wall_s = T_WALL};
        struct cache_policy p;
        struct cache_fill *f;
        assert_int_equal(cache_policy_eval(qb, &q, sb, &s, &rules, &tm, &p), CACHE_OK);
        assert_int_equal(cache_fill_begin(c, qb, &q, 0, &f), CACHE_FILL_NEW);
        assert_int_equal(cache_fill_head(c, f, &p, qb, &q, sb, strlen(sb), 0), 0);
        assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
        struct cache_entry *e = cache_lookup(c, qb, &q, 1);
        assert_non_null(e);
        char line[128];
        size_t n = cache_entry_validator(e, line, sizeof(line));
        line[n] = '\0';
        assert_string_equal(line, t[i].want);
        assert_int_equal(cache_entry_validator(e, line, 10), 0); /* does not fit */
        cache_entry_unref(e);
        cache_destroy(c);
    }
}

/* stale-if-error and stale-while-revalidate (RFC 5861): a stale entry goes along with the
 * fetch, for its window. */
static void test_stale_if_error(void **state)
{
    (void)state;
    static const struct {
        const char *cc;
        uint64_t at; /* ms after storing (it is stored at 0 with 1 s of freshness) */
        bool fallback;
    } t[] = {
        {"max-age=1, stale-if-error=60", 999, false}, /* fresh: a hit, no fallback needed */
        {"max-age=1, stale-if-error=60", 1000, true},
        {"max-age=1, stale-if-error=60", 60999, true},
        {"max-age=1, stale-if-error=60", 61000, false},
        {"max-age=1, stale-if-error=x", 1000, false},
        {"max-age=1, must-revalidate, stale-if-error=60", 1000, false},
        {"s-maxage=1, stale-if-error=60", 1000, false},
        {"max-age=1", 1000, false},
        {"max-age=1, stale-while-revalidate=30", 1000, true},
        {"max-age=1, stale-while-revalidate=30", 30999, true},
        {"max-age=1, stale-while-revalidate=30", 31000, false},
        {"max-age=1, proxy-revalidate, stale-while-revalidate=30", 1000, false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        static char qb[256], sb[512];
        struct http_req q;
        struct http_resp s;
        parse_req(qb, sizeof(qb), Q(""), &q);
        snprintf(sb, sizeof(sb),
                 "HTTP/1.1 200 OK\r\nCache-Control: %s\r\nContent-Length: 0\r\n\r\n", t[i].cc);
        memset(&s, 0, sizeof(s));
        assert_int_equal(http_parse_response(sb, strlen(sb), 16384, HTTP_M_GET, &s),
                         (int)strlen(sb));
        struct cache *c;
        assert_int_equal(cache_create(1 << 20, &c), 0);
        struct cache_rules rules = {.max_body = 1 << 16};
        struct cache_times tm = {.wall_s = T_WALL};
        struct cache_policy p;
        struct cache_fill *f;
        assert_int_equal(cache_policy_eval(qb, &q, sb, &s, &rules, &tm, &p), CACHE_OK);
        assert_int_equal(cache_fill_begin(c, qb, &q, 0, &f), CACHE_FILL_NEW);
        assert_int_equal(cache_fill_head(c, f, &p, qb, &q, sb, strlen(sb), 0), 0);
        assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
        struct cache_entry *e;
        enum cache_decision d = cache_decide(c, qb, &q, t[i].at, T_WALL, &e);
        bool fresh = t[i].at < 1000;
        if ((fresh && d != CACHE_D_HIT) || (!fresh && d != CACHE_D_FILL) ||
            (!fresh && (e != NULL) != t[i].fallback))
            fail_msg("row %zu (%s at %llu): decision %d, entry %d", i, t[i].cc,
                     (unsigned long long)t[i].at, (int)d, e != NULL);
        if (e && !fresh)
            assert_true(cache_entry_stale_if_error(e, t[i].at) ||
                        cache_entry_stale_while_revalidate(e, t[i].at));
        if (e && !fresh && strstr(t[i].cc, "while"))
            assert_false(cache_entry_stale_if_error(e, t[i].at));
        if (e)
            cache_entry_unref(e);
        cache_destroy(c);
    }
}

/* Invalidation by one worker's cache reaches another's (4.4). */
static void test_invalidate(void **state)
{
    (void)state;
    static char qb[256], sb[256];
    struct http_req q;
    struct http_resp s;
    parse_req(qb, sizeof(qb), "GET /inv HTTP/1.1\r\nHost: H\r\nAccept: a\r\n\r\n", &q);
    strcpy(sb, R200("Cache-Control: max-age=60\r\nVary: accept\r\n"));
    assert_int_equal(http_parse_response(sb, strlen(sb), 16384, HTTP_M_GET, &s), (int)strlen(sb));
    struct cache *c[2];
    struct cache_rules rules = {.max_body = 1 << 16};
    struct cache_times t = {.wall_s = T_WALL};
    struct cache_policy p;
    assert_int_equal(cache_policy_eval(qb, &q, sb, &s, &rules, &t, &p), CACHE_OK);
    for (int k = 0; k < 2; k++) {
        struct cache_fill *f;
        assert_int_equal(cache_create(1 << 20, &c[k]), 0);
        assert_int_equal(cache_fill_begin(c[k], qb, &q, 0, &f), CACHE_FILL_NEW);
        assert_int_equal(cache_fill_head(c[k], f, &p, qb, &q, sb, strlen(sb), 0), 0);
        assert_int_equal(cache_fill_append(c[k], f, "x", 1), 0);
        assert_int_equal(cache_fill_commit(c[k], f, NULL, NULL), 0);
    }
    /* a fill begun before the invalidation is stale when it lands */
    struct cache_fill *late;
    static char ob[256];
    struct http_req o;
    parse_req(ob, sizeof(ob), "GET /other HTTP/1.1\r\nHost: h\r\n\r\n", &o);
    assert_int_equal(cache_fill_begin(c[1], qb, &q, 0, &late), CACHE_FILL_NEW);

    assert_int_equal(cache_invalidate(c[0], "h", 1, "/inv", 4), 1); /* host case folded */
    assert_null(cache_lookup(c[0], qb, &q, 1));
    assert_null(cache_lookup(c[1], qb, &q, 1));
    struct cache_stats st;
    cache_stats_get(c[1], &st);
    assert_int_equal(st.invalidated, 1);

    assert_int_equal(cache_fill_head(c[1], late, &p, qb, &q, sb, strlen(sb), 2), 0);
    assert_int_equal(cache_fill_append(c[1], late, "x", 1), 0);
    assert_int_equal(cache_fill_commit(c[1], late, NULL, NULL), 0);
    assert_null(cache_lookup(c[1], qb, &q, 3));
    /* a fill begun after it stores for good */
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c[1], qb, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c[1], f, &p, qb, &q, sb, strlen(sb), 4), 0);
    assert_int_equal(cache_fill_append(c[1], f, "x", 1), 0);
    assert_int_equal(cache_fill_commit(c[1], f, NULL, NULL), 0);
    struct cache_entry *e = cache_lookup(c[1], qb, &q, 5);
    assert_non_null(e);
    cache_entry_unref(e);
    cache_destroy(c[0]);
    cache_destroy(c[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),      cmocka_unit_test(test_age),
        cmocka_unit_test(test_validator),  cmocka_unit_test(test_stale_if_error),
        cmocka_unit_test(test_invalidate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
