/*
 * Field-value parsers of lb/cache/rfc9111.c, table by table: Cache-Control (flags, delta
 * values, quoting, duplicates, junk), HTTP-date (the three formats, the RFC's own examples,
 * impossible dates), entity-tags and If-None-Match (weak and strong comparison), Vary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb/cache/rfc9111.h"

#define NOW 1796000000 /* 2026-11-30, for two-digit years */

static void test_cc(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        uint32_t flags, has, bad;
        int d;        /* a delta to check, or -1 */
        uint32_t val; /* its value */
    } t[] = {
        {"no-store", CACHE_CC_NO_STORE, 0, 0, -1, 0},
        {"No-Cache, PRIVATE", CACHE_CC_NO_CACHE | CACHE_CC_PRIVATE, 0, 0, -1, 0},
        {"no-cache=\"Set-Cookie, X\"", CACHE_CC_NO_CACHE, 0, 0, -1, 0},
        {"private=\"a\", public", CACHE_CC_PRIVATE | CACHE_CC_PUBLIC, 0, 0, -1, 0},
        {"must-revalidate,proxy-revalidate", CACHE_CC_MUST_REVALIDATE | CACHE_CC_PROXY_REVALIDATE,
         0, 0, -1, 0},
        {"only-if-cached", CACHE_CC_ONLY_IF_CACHED, 0, 0, -1, 0},
        {"max-age=60", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 60},
        {"max-age=\"60\"", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 60},
        {"max-age = 60", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 60},
        {"max-age=60, max-age=60", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 60},
        /* RFC 9111 4.2.1: conflicting duplicates may make the response stale */
        {"max-age=60, max-age=10", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE,
         CACHE_CC_MAX_AGE, 60},
        {"max-age=-1", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        {"max-age=1.5", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        {"max-age", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        {"max-age=\"6\\0\"", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        {"max-age=\"60", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        /* RFC 9111 1.2.2: saturate at 2^31 */
        {"s-maxage=99999999999999999999", 0, 1u << CACHE_CC_S_MAXAGE, 0, CACHE_CC_S_MAXAGE,
         2147483648u},
        {"max-stale", CACHE_CC_MAX_STALE_ANY, 0, 0, -1, 0},
        {"max-stale=5, min-fresh=3", 0, 1u << CACHE_CC_MAX_STALE | 1u << CACHE_CC_MIN_FRESH, 0,
         CACHE_CC_MIN_FRESH, 3},
        {"stale-while-revalidate=30, stale-if-error=600", 0,
         1u << CACHE_CC_SWR | 1u << CACHE_CC_SIE, 0, CACHE_CC_SIE, 600},
        /* unknown directives and junk are skipped, the rest is read */
        {"foo=\"a,b\", bar, max-age=5", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 5},
        {"no-store junk, public", CACHE_CC_NO_STORE | CACHE_CC_PUBLIC, 0, 0, -1, 0},
        {"public junk", 0, 0, 0, -1, 0},
        {"max-age=5 junk", 0, 1u << CACHE_CC_MAX_AGE, 1u << CACHE_CC_MAX_AGE, -1, 0},
        {"x=\"no-store\"", 0, 0, 0, -1, 0},
        {",,, ,", 0, 0, 0, -1, 0},
        {"", 0, 0, 0, -1, 0},
        {"=5, max-age=2", 0, 1u << CACHE_CC_MAX_AGE, 0, CACHE_CC_MAX_AGE, 2},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct cache_cc cc = {0};
        cache_cc_parse(&cc, t[i].v, strlen(t[i].v));
        if (cc.flags != t[i].flags || cc.has != t[i].has || cc.bad != t[i].bad ||
            (t[i].d >= 0 && cc.delta[t[i].d] != t[i].val))
            fail_msg("row %zu \"%s\": flags %x has %x bad %x", i, t[i].v, cc.flags, cc.has, cc.bad);
    }
    /* two field lines add up; a bad value reads as the caller's choice */
    struct cache_cc cc = {0};
    cache_cc_parse(&cc, "public", 6);
    cache_cc_parse(&cc, "max-age=x", 9);
    uint64_t s = 7;
    assert_true(cache_cc_get(&cc, CACHE_CC_MAX_AGE, 0, &s));
    assert_int_equal(s, 0);
    assert_false(cache_cc_get(&cc, CACHE_CC_S_MAXAGE, 0, &s));
    assert_int_equal(cc.flags, CACHE_CC_PUBLIC);
}

static void test_date(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int64_t t; /* -1: invalid */
    } t[] = {
        /* RFC 9110 5.6.7's three forms of one instant */
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
        {"Sun Nov  6 08:49:37 1994", 784111777},
        {"  Sun, 06 Nov 1994 08:49:37 GMT ", 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Tue, 29 Feb 2028 23:59:59 GMT", 1835481599},
        {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
        {"Fri, 29 Feb 2030 00:00:00 GMT", -1},
        {"Mon, 31 Apr 2026 00:00:00 GMT", -1},
        {"Mon, 01 Jan 2026 24:00:00 GMT", -1},
        {"Mon, 01 Jan 2026 00:60:00 GMT", -1},
        {"Mon, 1 Jan 2026 00:00:00 GMT", -1},
        {"Mon, 01 Jan 2026 00:00:00 UTC", -1},
        {"Mon, 01 jan 2026 00:00:00 GMT", -1},
        {"Mon, 01 Jan 2026 00:00:00 GMT x", -1},
        {"Mon, 00 Jan 2026 00:00:00 GMT", -1},
        {"0", -1},
        {"-1", -1},
        {"", -1},
        {"Sunday, 06-Nov-94 08:49:37", -1},
        {"Sun Nov 6 08:49:37 1994", -1},
        /* two-digit years: not more than 50 years after now (2026) */
        {"Saturday, 01-Jan-77 00:00:00 GMT", 220924800},
        {"Saturday, 01-Jan-76 00:00:00 GMT", 3345062400}, /* 2076: exactly 50 years on */
        {"Friday, 01-Jan-60 00:00:00 GMT", 2840140800},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int64_t v = -2;
        int rc = cache_http_date(t[i].v, strlen(t[i].v), NOW, &v);
        if ((t[i].t < 0 && rc != -EINVAL) || (t[i].t >= 0 && (rc != 0 || v != t[i].t)))
            fail_msg("row %zu \"%s\": rc %d value %lld", i, t[i].v, rc, (long long)v);
    }
    /* formatting round-trips */
    static const int64_t ts[] = {0, 784111777, 1835481599, 951782400, 4102444799};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        char out[30];
        int64_t back = -1;
        cache_http_date_fmt(ts[i], out);
        assert_int_equal(strlen(out), 29);
        assert_int_equal(cache_http_date(out, 29, NOW, &back), 0);
        assert_int_equal(back, ts[i]);
    }
    char out[30];
    cache_http_date_fmt(784111777, out);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static void test_etag(void **state)
{
    (void)state;
    struct cache_etag a, b;
    assert_int_equal(cache_etag_parse("\"xyzzy\"", 7, &a), 0);
    assert_false(a.weak);
    assert_int_equal(a.len, 7);
    assert_int_equal(cache_etag_parse(" W/\"xyzzy\" ", 11, &b), 0);
    assert_true(b.weak);
    assert_int_equal(cache_etag_parse("\"\"", 2, &b), 0);
    static const char *const bad[] = {"xyzzy", "\"a", "w/\"a\"", "\"a\" \"b\"", "\"a\"b\"", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cache_etag_parse(bad[i], strlen(bad[i]), &b), -EINVAL);

    /* RFC 9110 8.8.3.2's table: ETag 1, ETag 2, strong, weak */
    static const struct {
        const char *x, *y;
        bool strong, weak;
    } cmp[] = {
        {"W/\"1\"", "W/\"1\"", false, true},
        {"W/\"1\"", "W/\"2\"", false, false},
        {"W/\"1\"", "\"1\"", false, true},
        {"\"1\"", "\"1\"", true, true},
    };
    for (size_t i = 0; i < sizeof(cmp) / sizeof(cmp[0]); i++) {
        assert_int_equal(cache_etag_parse(cmp[i].x, strlen(cmp[i].x), &a), 0);
        assert_int_equal(cache_etag_parse(cmp[i].y, strlen(cmp[i].y), &b), 0);
        assert_int_equal(cache_etag_eq(&a, &b, false), cmp[i].strong);
        assert_int_equal(cache_etag_eq(&a, &b, true), cmp[i].weak);
    }

    static const struct {
        const char *inm, *stored; /* stored NULL: the response has no ETag */
        int want;
    } inm[] = {
        {"\"1\"", "\"1\"", 1},
        {"\"1\"", "W/\"1\"", 1}, /* weak comparison */
        {"W/\"1\"", "\"1\"", 1},
        {"\"2\"", "\"1\"", 0},
        {"\"2\", \"3\" ,W/\"1\"", "\"1\"", 1},
        {"\"2\",\"3\"", "\"1\"", 0},
        {"*", "\"1\"", 1},
        {"*", NULL, 0},
        {"\"1\"", NULL, 0},
        {" * ", "W/\"x\"", 1},
        {"\"1", "\"1\"", -EINVAL},
        {"1", "\"1\"", -EINVAL},
        {"*, \"1\"", "\"1\"", -EINVAL},
        {"\"1\" \"2\"", "\"1\"", -EINVAL},
        {"", "\"1\"", -EINVAL},
        {" , ", "\"1\"", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(inm) / sizeof(inm[0]); i++) {
        struct cache_etag st;
        if (inm[i].stored)
            assert_int_equal(cache_etag_parse(inm[i].stored, strlen(inm[i].stored), &st), 0);
        int rc = cache_inm_match(inm[i].inm, strlen(inm[i].inm), inm[i].stored ? &st : NULL);
        if (rc != inm[i].want)
            fail_msg("If-None-Match row %zu '%s': %d, want %d", i, inm[i].inm, rc, inm[i].want);
    }
}

static void test_vary(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int rc;
        uint32_t count;
        const char *first;
    } t[] = {
        {"Accept-Encoding", 0, 1, "accept-encoding"},
        {"accept-encoding, ACCEPT-ENCODING ,User-Agent", 0, 2, "accept-encoding"},
        {" , ", 0, 0, NULL},
        {"*", CACHE_VARY_STAR, 0, NULL},
        {"Accept, *", CACHE_VARY_STAR, 1, "accept"},
        {"a b", -EINVAL, 0, NULL},
        {"a/b", -EINVAL, 0, NULL},
        {"a,b,c,d,e", -E2BIG, 4, "a"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char names[64];
        uint32_t len = 0, count = 0;
        int rc = cache_vary_add(names, &len, sizeof(names), &count, 4, t[i].v, strlen(t[i].v));
        if (rc != t[i].rc || count != t[i].count || (t[i].first && strcmp(names, t[i].first) != 0))
            fail_msg("row %zu \"%s\": rc %d count %u", i, t[i].v, rc, count);
    }
    /* bytes bound */
    char small[8];
    uint32_t len = 0, count = 0;
    assert_int_equal(cache_vary_add(small, &len, sizeof(small), &count, 8, "abc, defgh", 10),
                     -E2BIG);
    assert_int_equal(count, 1);
    assert_int_equal(len, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cc),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_vary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
