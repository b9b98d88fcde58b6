/*
 * Operator purges of the L1 cache (lb/cache/purge.c, board.c) and their admin command
 * (lb/admin/cache.c): the argument rules, which keys a purge matches (a table), removal from
 * one cache with counts and pending fills, the board that carries purges to workers, and the
 * admin parser's answers to good and bad lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/cache/purge.h"
#include "lb/core/runtime.h"

static int t_set(struct cache_purge *p, const char *arg, const char *host)
{
    char err[256];
    return cache_purge_set(p, arg, strlen(arg), host ? host : "", host ? strlen(host) : 0, err,
                           sizeof(err));
}

static void test_purge_set(void **state)
{
    (void)state;
    struct cache_purge p;
    assert_int_equal(t_set(&p, "/a/b", NULL), 0);
    assert_false(p.prefix);
    assert_int_equal(p.path_len, 4);
    assert_int_equal(p.host_len, 0);
    assert_int_equal(t_set(&p, "/api/*", "Example.com:8080"), 0);
    assert_true(p.prefix);
    assert_int_equal(p.path_len, 5);
    assert_memory_equal(p.path, "/api/", 5);
    assert_int_equal(p.host_len, 16);
    assert_int_equal(t_set(&p, "/*", "[::1]"), 0);
    assert_int_equal(p.path_len, 1);
    assert_int_equal(t_set(&p, "/a?x=1&y=*", NULL), 0);
    char err[256];
    assert_int_equal(cache_purge_set(&p, "/a", 2, NULL, 0, err, sizeof(err)), 0);

    static const char *bad[] = {"", "*", "a/b", "/a*b", "/**", "/a b", "/a\x01", "/\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(t_set(&p, bad[i], NULL), -EINVAL);
    assert_int_equal(t_set(&p, "/a", "b@d"), -EINVAL);
    assert_int_equal(t_set(&p, "/a", "a b"), -EINVAL);
    static char long_path[CACHE_PURGE_PATH_MAX + 1];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    assert_int_equal(t_set(&p, long_path, NULL), -EINVAL);
    long_path[CACHE_PURGE_PATH_MAX - 1] = '\0'; /* 2047 bytes: the longest */
    assert_int_equal(t_set(&p, long_path, NULL), 0);
}

static void test_purge_match(void **state)
{
    (void)state;
    static const struct {
        const char *arg, *phost, *host, *target;
        bool match;
    } rows[] = {
        /* exact: the target as received, query included */
        {"/a", NULL, "x", "/a", true},
        {"/a", NULL, "x", "/a?q=1", false},
        {"/a", NULL, "x", "/ab", false},
        {"/a", NULL, "x", "/", false},
        {"/a?q=1", NULL, "x", "/a?q=1", true},
        /* prefix */
        {"/api/*", NULL, "x", "/api/", true},
        {"/api/*", NULL, "x", "/api/v1/users?id=3", true},
        {"/api/*", NULL, "x", "/api", false},
        {"/api/*", NULL, "x", "/apix", false},
        {"/a?*", NULL, "x", "/a?q=1", true},
        {"/a?*", NULL, "x", "/a", false},
        {"/*", NULL, "anything", "/whatever", true},
        /* hosts: letter case ignored; no port given: any port */
        {"/a", "example.com", "Example.COM", "/a", true},
        {"/a", "example.com", "example.com:8080", "/a", true},
        {"/a", "example.com", "example.com:", "/a", false},
        {"/a", "example.com", "example.com:80x", "/a", false},
        {"/a", "example.com", "example.com.evil", "/a", false},
        {"/a", "example.com", "example.co", "/a", false},
        {"/a", "example.com:8080", "example.com:8080", "/a", true},
        {"/a", "example.com:8080", "example.com", "/a", false},
        {"/a", "example.com:80", "example.com:8080", "/a", false},
        {"/a", "[::1]", "[::1]:8080", "/a", true},
        {"/a", "[::1]:80", "[::1]:8080", "/a", false},
        {"/a", "other", "example.com", "/a", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct cache_purge p;
        assert_int_equal(t_set(&p, rows[i].arg, rows[i].phost), 0);
        bool m = cache_purge_match(&p, rows[i].host, strlen(rows[i].host), rows[i].target,
                                   strlen(rows[i].target));
        if (m != rows[i].match)
            fail_msg("row %zu: %s (host %s) on %s %s: got %d", i, rows[i].arg,
                     rows[i].phost ? rows[i].phost : "*", rows[i].host, rows[i].target, m);
    }
}

/* Stores a 200 with max-age=60 for @target on @host. */
static void t_store(struct cache *c, const char *host, const char *target)
{
    char rq[512],
        rs[] = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\n";
    snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);
    struct http_req q = {0};
    struct http_resp s = {0};
    assert_int_equal(http_parse_request(rq, strlen(rq), 16384, 8192, &q), (int)strlen(rq));
    assert_int_equal(http_parse_response(rs, strlen(rs), 16384, HTTP_M_GET, &s), (int)strlen(rs));
    struct cache_rules r = {.max_body = 1 << 20};
    struct cache_times t = {.wall_s = 0};
    struct cache_policy p;
    assert_int_equal(cache_policy_eval(rq, &q, rs, &s, &r, &t, &p), CACHE_OK);
    struct cache_fill *f;
    assert_int_equal(cache_fill_begin(c, rq, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &p, rq, &q, rs, strlen(rs), 0), 0);
    assert_int_equal(cache_fill_append(c, f, "ok", 2), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
}

static bool t_hit(struct cache *c, const char *host, const char *target)
{
    char rq[512];
    snprintf(rq, sizeof(rq), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);
    struct http_req q = {0};
    assert_int_equal(http_parse_request(rq, strlen(rq), 16384, 8192, &q), (int)strlen(rq));
    struct cache_entry *e = cache_lookup(c, rq, &q, 1);
    cache_entry_unref(e);
    return e != NULL;
}

static void test_cache_purge(void **state)
{
    (void)state;
    struct cache *c;
    struct cache_purge p;
    struct cache_stats st;
    assert_int_equal(cache_create(1 << 20, &c), 0);
    t_store(c, "a.test", "/api/1");
    t_store(c, "a.test", "/api/2?x=1");
    t_store(c, "b.test:81", "/api/3");
    t_store(c, "a.test", "/web");
    t_store(c, "a.test", "/web?v=2");

    assert_int_equal(t_set(&p, "/web", NULL), 0);
    assert_int_equal(cache_purge(c, &p), 1);
    assert_false(t_hit(c, "a.test", "/web"));
    assert_true(t_hit(c, "a.test", "/web?v=2"));

    assert_int_equal(t_set(&p, "/api/*", "b.test"), 0);
    assert_int_equal(cache_purge(c, &p), 1);
    assert_true(t_hit(c, "a.test", "/api/1"));
    assert_int_equal(t_set(&p, "/api/*", NULL), 0);
    assert_int_equal(cache_purge(c, &p), 2);
    assert_false(t_hit(c, "a.test", "/api/1"));
    assert_false(t_hit(c, "a.test", "/api/2?x=1"));
    assert_int_equal(cache_purge(c, &p), 0);
    cache_stats_get(c, &st);
    assert_int_equal(st.purged, 4);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.invalidated, 0);
    assert_int_equal(st.max_bytes, 1 << 20);

    /* A fill under way when the purge comes: its entry does not outlive the purge. */
    char rq[] = "GET /api/9 HTTP/1.1\r\nHost: a.test\r\n\r\n";
    char rs[] = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\n";
    struct http_req q = {0};
    struct http_resp s = {0};
    assert_true(http_parse_request(rq, strlen(rq), 16384, 8192, &q) > 0);
    assert_true(http_parse_response(rs, strlen(rs), 16384, HTTP_M_GET, &s) > 0);
    struct cache_rules r = {.max_body = 1 << 20};
    struct cache_times t = {0};
    struct cache_policy pol;
    struct cache_fill *f;
    assert_int_equal(cache_policy_eval(rq, &q, rs, &s, &r, &t, &pol), CACHE_OK);
    assert_int_equal(cache_fill_begin(c, rq, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_fill_head(c, f, &pol, rq, &q, rs, strlen(rs), 0), 0);
    assert_int_equal(cache_purge(c, &p), 0);
    assert_int_equal(cache_fill_append(c, f, "ok", 2), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
    assert_false(t_hit(c, "a.test", "/api/9"));
    /* ...and a fill that had not its head yet */
    assert_int_equal(cache_fill_begin(c, rq, &q, 0, &f), CACHE_FILL_NEW);
    assert_int_equal(cache_purge(c, &p), 0);
    assert_int_equal(cache_fill_head(c, f, &pol, rq, &q, rs, strlen(rs), 0), 0);
    assert_int_equal(cache_fill_append(c, f, "ok", 2), 0);
    assert_int_equal(cache_fill_commit(c, f, NULL, NULL), 0);
    assert_false(t_hit(c, "a.test", "/api/9"));
    /* a fill after the purge is kept */
    t_store(c, "a.test", "/api/9");
    assert_true(t_hit(c, "a.test", "/api/9"));
    cache_destroy(c);
}

static void test_board(void **state)
{
    (void)state;
    struct cache_board *b;
    struct cache *c0, *c1;
    struct cache_purge p;
    struct cache_stats st;
    uint64_t seq, removed[2];
    assert_int_equal(cache_board_create(0, &b), -EINVAL);
    assert_int_equal(cache_board_create(2, &b), 0);
    assert_int_equal(cache_create(1 << 20, &c0), 0);
    assert_int_equal(cache_create(1 << 20, &c1), 0);
    t_store(c0, "h", "/x/1");
    t_store(c0, "h", "/x/2");
    t_store(c1, "h", "/x/1");
    assert_false(cache_board_stats(b, 0, &st)); /* nothing published yet */
    cache_board_tick(b, 0, c0);
    assert_true(cache_board_stats(b, 0, &st));
    assert_int_equal(st.entries, 2);

    assert_int_equal(t_set(&p, "/x/*", NULL), 0);
    assert_int_equal(cache_board_post(b, &p, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(cache_board_result(b, seq, removed), 0);
    assert_true(removed[0] == UINT64_MAX && removed[1] == UINT64_MAX);
    cache_board_tick(b, 0, c0);
    assert_int_equal(cache_board_result(b, seq, removed), 1);
    assert_int_equal(removed[0], 2);
    assert_true(removed[1] == UINT64_MAX);
    cache_board_stats(b, 0, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.purged, 2);
    cache_board_tick(b, 1, c1);
    assert_int_equal(cache_board_result(b, seq, removed), 2);
    assert_int_equal(removed[1], 1);

    /* A worker that does not tick: CACHE_BOARD_QUEUE purges wait for it, then -EBUSY. */
    for (int i = 0; i < CACHE_BOARD_QUEUE; i++) {
        assert_int_equal(cache_board_post(b, &p, &seq), 0);
        cache_board_tick(b, 0, c0);
    }
    assert_int_equal(cache_board_post(b, &p, &seq), -EBUSY);
    t_store(c1, "h", "/x/3");
    cache_board_tick(b, 1, c1); /* applies all sixteen: the first removes the entry */
    assert_int_equal(cache_board_result(b, seq, removed), 2);
    assert_int_equal(removed[1], 0);
    assert_int_equal(cache_board_result(b, 2, NULL), 2);
    assert_int_equal(cache_board_post(b, &p, &seq), 0);
    assert_int_equal(cache_board_purges(b), 18);
    cache_board_tick(b, 1, NULL); /* a worker without a cache counts 0 */
    cache_board_tick(NULL, 0, c0);
    cache_board_tick(b, 7, c0); /* not a worker of this board: ignored */
    cache_destroy(c0);
    cache_destroy(c1);
    cache_board_free(b);
    cache_board_free(NULL);
}

static void test_admin_parse(void **state)
{
    (void)state;
    struct admin_cmd c;
    struct lb_err e;
#define P(s) admin_parse(s, strlen(s), &c, &e)
    assert_int_equal(P("cache stats"), 0);
    assert_int_equal(c.verb, ADMIN_CACHE_STATS);
    assert_int_equal(P("cache\tstats \r"), 0);
    assert_int_equal(P("cache purge /a"), 0);
    assert_int_equal(c.verb, ADMIN_CACHE_PURGE);
    assert_false(c.purge.prefix);
    assert_int_equal(c.purge.host_len, 0);
    assert_int_equal(P("cache purge /api/* --host example.com"), 0);
    assert_true(c.purge.prefix);
    assert_int_equal(c.purge.host_len, 11);
    assert_int_equal(P("cache purge --host h /b"), 0);
    assert_int_equal(c.purge.host_len, 1);
    assert_int_equal(c.purge.path_len, 2);

    static const char *bad[] = {
        "cache",
        "cache ",
        "cachestats",
        "cache stats x",
        "cache purge",
        "cache purge a",
        "cache purge /a /b",
        "cache purge /a --host",
        "cache purge /a --hostx h",
        "cache purge --host h",
        "cache purge /a* --host h x",
        "cache purge /a --host b@d",
        "cache frob",
        "cache purge /a*b",
        "cache purge --x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e.msg[0] = '\0';
        if (P(bad[i]) != -EINVAL)
            fail_msg("'%s' parsed", bad[i]);
        assert_true(e.msg[0] != '\0');
    }
    assert_int_equal(admin_parse("cache purge /a\0b", 16, &c, &e), -EINVAL);
#undef P
}

/* Runs @line through admin_parse and admin_exec; returns the answer (static buffer). */
static const char *t_exec(struct lb_runtime *rt, const char *line)
{
    static char ans[8192];
    struct admin_cmd c;
    struct lb_err e;
    struct lb_jbuf j;
    assert_int_equal(admin_parse(line, strlen(line), &c, &e), 0);
    lb_jbuf_init(&j, 1 << 20);
    admin_exec(rt, NULL, &c, &j);
    assert_non_null(j.p);
    snprintf(ans, sizeof(ans), "%s", j.p);
    lb_jbuf_free(&j);
    return ans;
}

static void test_admin_exec(void **state)
{
    (void)state;
    static const char yaml[] = "listeners:\n"
                               "  - name: web\n"
                               "    bind: 127.0.0.1:7000\n"
                               "    routes:\n"
                               "      - { match: { path_prefix: /a }, cluster: app }\n"
                               "      - { cluster: app, cache: { ttl: 1s } }\n"
                               "clusters:\n"
                               "  app: { servers: [ { name: a1, address: 127.0.0.1:9001 } ] }\n";
    struct conf_diags d = {0};
    struct lb_runtime rt = {0};
    /* No board (no cached route in a runtime): a clear error. */
    assert_non_null(strstr(t_exec(&rt, "cache stats"), "\"ok\":false"));
    assert_non_null(strstr(t_exec(&rt, "cache purge /a"), "has a cache"));

    rt.conf = conf_load_buf("t.yaml", yaml, sizeof(yaml) - 1, &d);
    assert_non_null(rt.conf);
    assert_int_equal(cache_board_create(2, &rt.cache_board), 0);
    struct cache *c0;
    assert_int_equal(cache_create(1 << 20, &c0), 0);
    t_store(c0, "h", "/x");
    cache_board_tick(rt.cache_board, 0, c0);
    const char *a = t_exec(&rt, "cache stats");
    assert_non_null(strstr(a, "{\"ok\":true,\"workers\":[{\"worker\":0,\"cache\":true,"
                              "\"entries\":1,"));
    assert_non_null(strstr(a, "{\"worker\":1,\"cache\":false,\"entries\":0,"));
    assert_non_null(strstr(a, "\"listeners\":[{\"listener\":\"web\",\"routes\":[1],\"hit\":0,"));
    assert_non_null(strstr(a, "\"purges\":0}"));

    /* Nobody ticks here: after ADMIN_PURGE_WAIT_MS the answer says both are pending. */
    a = t_exec(&rt, "cache purge /x --host h");
    assert_non_null(strstr(a, "\"path\":\"/x\",\"prefix\":false,\"host\":\"h\",\"workers\":2,"
                              "\"applied\":0,\"per_worker\":[null,null],\"removed\":0,"
                              "\"pending\":2}"));
    cache_board_tick(rt.cache_board, 0, c0); /* ...and they apply it later */
    assert_int_equal(cache_board_result(rt.cache_board, 1, NULL), 1);
    assert_non_null(strstr(t_exec(&rt, "cache stats"), "\"purged\":1,"));
    cache_destroy(c0);
    cache_board_free(rt.cache_board);
    conf_free(rt.conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purge_set),   cmocka_unit_test(test_purge_match),
        cmocka_unit_test(test_cache_purge), cmocka_unit_test(test_board),
        cmocka_unit_test(test_admin_parse), cmocka_unit_test(test_admin_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
