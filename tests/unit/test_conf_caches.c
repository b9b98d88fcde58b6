/*
 * caches: and a route's cache.shared: defaults, the cluster of lb's own each cache becomes
 * (ring_hash, check: redis, the cache's timeout), and errors at their FILE:LINE:COLUMN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"

static struct conf_diags diags;

static struct conf *load(const char *yaml)
{
    return conf_load_buf("t.yaml", yaml, strlen(yaml), &diags);
}

static void expect_err(const char *yaml, unsigned line, unsigned col, const char *needle)
{
    struct conf *c = load(yaml);
    if (c) {
        conf_free(c);
        fail_msg("loaded, expected an error at %u:%u containing '%s'", line, col, needle);
    }
    for (size_t i = 0; i < diags.n; i++)
        if (diags.items[i].pos.line == line && diags.items[i].pos.col == col &&
            strstr(diags.items[i].msg, needle))
            return;
    conf_diags_print(&diags, "t.yaml", stderr);
    fail_msg("no error at %u:%u containing '%s'", line, col, needle);
}

/* lines 1-5 */
#define WEB(shared)                                                                                \
    "listeners:\n"                                                                                 \
    "  - name: web\n"                                                                              \
    "    bind: 127.0.0.1:8080\n"                                                                   \
    "    routes:\n"                                                                                \
    "      - { cluster: app, cache: { ttl: 1s, shared: " shared " } }\n"                           \
    "clusters:\n"                                                                                  \
    "  app: { servers: [ { name: a1, address: 127.0.0.1:9001 } ] }\n"

static void test_defaults_and_cluster(void **state)
{
    (void)state;
    struct conf *c = load(WEB("pages") "caches:\n"
                                       "  pages:\n"
                                       "    servers: [ 127.0.0.1:6381, 127.0.0.1:6382 ]\n");
    if (!c)
        conf_diags_print(&diags, "t.yaml", stderr);
    assert_non_null(c);
    assert_int_equal(c->ncaches, 1);
    const struct conf_shared_cache *sc = &c->caches[0];
    assert_string_equal(sc->name, "pages");
    assert_int_equal(sc->nservers, 2);
    assert_int_equal(sc->max_object, 1 << 20);
    assert_int_equal(sc->timeout_ms, 100);
    assert_int_equal(sc->lock_ms, 2000);
    assert_int_equal(c->listeners[0].routes[0].cache.shared_idx, 0);
    assert_true(sc->cluster_idx >= 0 && (size_t)sc->cluster_idx < c->nclusters);
    const struct conf_cluster *cl = &c->clusters[sc->cluster_idx];
    assert_string_equal(cl->name, "lb:cache:pages");
    assert_int_equal(cl->balance, CONF_BAL_RING_HASH);
    assert_int_equal(cl->health.check, CONF_CHECK_REDIS);
    assert_int_equal(cl->response_timeout_ms, 100);
    assert_int_equal(cl->nservers, 2);
    assert_string_equal(cl->servers[1].name, "127.0.0.1:6382");
    conf_free(c);

    c = load(WEB("p") "caches:\n"
                      "  p: { servers: [ 127.0.0.1:6381 ], max_object: 4m, timeout: 50ms, "
                      "lock: 5s }\n");
    assert_non_null(c);
    assert_int_equal(c->caches[0].max_object, 4 << 20);
    assert_int_equal(c->caches[0].timeout_ms, 50);
    assert_int_equal(c->caches[0].lock_ms, 5000);
    conf_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_err(WEB("pagez") "caches: { pages: { servers: [ 127.0.0.1:6381 ] } }\n", 5, 51,
               "undefined cache 'pagez'; did you mean 'pages'?");
    expect_err(WEB("x") "\n", 5, 51, "undefined cache 'x'; define it under caches:");
    expect_err(WEB("p") "caches: { p: { max_object: 1m } }\n", 8, 14, "servers");
    expect_err(WEB("p") "caches: { p: { servers: [] } }\n", 8, 25, "between 1 and 256");
    expect_err(WEB("p") "caches: { p: { servers: [ 127.0.0.1:1, 127.0.0.1:1 ] } }\n", 8, 40,
               "listed twice");
    expect_err(WEB("p") "caches: { p: { servers: [ redis.local:6379 ] } }\n", 8, 27, "numeric IP");
    expect_err(WEB("p") "caches: { p: { servers: [ 127.0.0.1:1 ], max_object: 0 } }\n", 8, 54,
               "out of range");
    expect_err(WEB("p") "caches: { p: { servers: [ 127.0.0.1:1 ], lock: 1ms } }\n", 8, 48,
               "out of range");
    expect_err(WEB("p") "caches: { p: { servers: [ 127.0.0.1:1 ], nope: 1 } }\n", 8, 42,
               "unknown key 'nope'");
    expect_err(WEB("p") "caches: [ p ]\n", 8, 9, "a mapping of cache names");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_cluster),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
