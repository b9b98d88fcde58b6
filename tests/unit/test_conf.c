/*
 * conf/: valid configs load with the values and defaults docs/config.md promises; each class of
 * mistake is reported at the line and column of the offending key or value, and all of them in
 * one run. YAML here is written one line per string so that line numbers can be read off.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "conf/internal.h"

static struct conf_diags diags;

static struct conf *load(const char *yaml)
{
    return conf_load_buf("t.yaml", yaml, strlen(yaml), &diags);
}

static void dump(void)
{
    conf_diags_print(&diags, "t.yaml", stderr);
}

static struct conf *load_ok(const char *yaml)
{
    struct conf *c = load(yaml);
    if (!c)
        dump();
    assert_non_null(c);
    return c;
}

/* Asserts that @yaml fails with a diagnostic at @line:@col whose text contains @needle. */
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
    dump();
    fail_msg("no error at %u:%u containing '%s'", line, col, needle);
}

/* A cluster that routes can use; lines 1-4 of the configs that start with it. */
#define APP                                                                                        \
    "clusters:\n"                                                                                  \
    "  app:\n"                                                                                     \
    "    servers:\n"                                                                               \
    "      - { name: a1, address: 127.0.0.1:9001 }\n"

/* A listener sending everything to app; 5 lines. */
#define WEB                                                                                        \
    "listeners:\n"                                                                                 \
    "  - name: web\n"                                                                              \
    "    bind: 127.0.0.1:8080\n"                                                                   \
    "    routes:\n"                                                                                \
    "      - cluster: app\n"

/* ---- valid configs ---- */

static void test_minimal_defaults(void **state)
{
    struct conf *c = load_ok(APP WEB);
    assert_string_equal(c->file, "t.yaml");
    assert_int_equal(c->global.workers, 0);
    assert_int_equal(c->global.max_connections, 100000);
    assert_string_equal(c->global.admin_socket, "/tmp/lb.sock");
    assert_false(c->global.has_metrics);
    assert_int_equal(c->global.log_level, CONF_LOG_INFO);
    assert_int_equal(c->global.access, CONF_ACCESS_OFF);
    assert_null(c->global.access_file);
    assert_int_equal(c->global.nredis_nodes, 0);
    assert_int_equal(c->global.shutdown_timeout_ms, 10000);
    assert_string_equal(c->global.redis_prefix, "lb:");
    assert_int_equal(c->global.redis_timeout_ms, 250);
    assert_null(c->global.redis_password);

    assert_int_equal(c->nlisteners, 1);
    const struct conf_listener *l = &c->listeners[0];
    assert_string_equal(l->name, "web");
    assert_string_equal(l->bind.text, "127.0.0.1:8080");
    assert_int_equal(l->bind.ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&l->bind.ss)->sin_port), 8080);
    assert_int_equal(l->bind.len, sizeof(struct sockaddr_in));
    assert_int_equal(l->protocol, CONF_PROTO_HTTP);
    assert_false(l->tls.enabled);
    assert_int_equal(l->header_timeout_ms, 10000);
    assert_int_equal(l->idle_timeout_ms, 60000);
    assert_int_equal(l->max_header_bytes, 16 * 1024);
    assert_int_equal(l->max_body_bytes, 10 * 1024 * 1024);
    assert_int_equal(l->cluster_idx, -1);
    assert_int_equal(l->pos.line, 6);
    assert_int_equal(l->bind_pos.line, 7);
    assert_int_equal(l->bind_pos.col, 11);
    assert_int_equal(l->nroutes, 1);
    const struct conf_route *r = &l->routes[0];
    assert_false(r->has_match);
    assert_null(r->host);
    assert_null(r->path_prefix);
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->action, CONF_ACT_CLUSTER);
    assert_string_equal(r->target, "app");
    assert_int_equal(r->target_idx, 0);
    assert_int_equal(r->target_pos.line, 9);
    assert_int_equal(r->target_pos.col, 18);
    assert_int_equal(r->hash_key.kind, CONF_HASH_NONE);
    assert_false(r->cache.enabled);

    assert_int_equal(c->nclusters, 1);
    const struct conf_cluster *cl = &c->clusters[0];
    assert_string_equal(cl->name, "app");
    assert_int_equal(cl->pos.line, 2);
    assert_int_equal(cl->pos.col, 3);
    assert_int_equal(cl->balance, CONF_BAL_ROUND_ROBIN);
    assert_true(cl->bounded_load == 0);
    assert_int_equal(cl->table_size, 65537);
    assert_int_equal(cl->nservers, 1);
    assert_string_equal(cl->servers[0].name, "a1");
    assert_int_equal(cl->servers[0].weight, 1);
    assert_false(cl->servers[0].backup);
    assert_int_equal(cl->health.check, CONF_CHECK_NONE);
    assert_string_equal(cl->health.path, "/healthz");
    assert_null(cl->health.host);
    assert_null(cl->health.expect_body);
    assert_int_equal(cl->health.expect_status, 200);
    assert_int_equal(cl->health.interval_ms, 2000);
    assert_int_equal(cl->health.timeout_ms, 1000);
    assert_int_equal(cl->health.rise, 2);
    assert_int_equal(cl->health.fall, 3);
    assert_false(cl->passive.enabled);
    assert_int_equal(cl->passive.consecutive_failures, 5);
    assert_int_equal(cl->passive.ejection_ms, 10000);
    assert_int_equal(cl->passive.max_ejection_ms, 300000);
    assert_int_equal(cl->passive.max_ejected_percent, 50);
    assert_int_equal(cl->connect_timeout_ms, 1000);
    assert_int_equal(cl->response_timeout_ms, 30000);
    assert_int_equal(cl->idle_timeout_ms, 60000);
    assert_int_equal(cl->retries, 2);
    assert_int_equal(cl->slow_start_ms, 0);
    assert_int_equal(cl->max_connections_per_server, 0);
    assert_int_equal(c->nstatics, 0);
    assert_int_equal(conf_cluster_find(c, "app"), 0);
    assert_int_equal(conf_cluster_find(c, "nope"), -1);
    conf_free(c);
}

/* Every key of the schema, with values unlike the defaults. */
static const char full_yaml[] =
    "global:\n"
    "  workers: 4\n"
    "  max_connections: 5000\n"
    "  admin: { socket: /tmp/lb-test.sock }\n"
    "  metrics: { listen: 127.0.0.1:9100 }\n"
    "  log: { level: debug, access: /tmp/lb-access.log }\n"
    "  redis: { nodes: [127.0.0.1:6379, '[::1]:6380'], instance: lb-a, prefix: 'a:', "
    "timeout: 1s, password: s3cret }\n"
    "  shutdown_timeout: 3s\n"
    "listeners:\n"
    "  - name: web\n"
    "    bind: '[::1]:8080'\n"
    "    protocol: http\n"
    "    timeouts: { header: 5s, idle: 2m }\n"
    "    limits: { max_header_bytes: 32k, max_body_bytes: 1g }\n"
    "    routes:\n"
    "      - match: { path_prefix: /snapshots/ }\n"
    "        static: catalog\n"
    "      - match: { host: API.Example.com, path_prefix: /orders, methods: [GET, HEAD] }\n"
    "        cluster: orders\n"
    "        hash_key: header:X-User-Id\n"
    "        cache: { ttl: 1s, max_bytes: 1m, max_ttl: 1h, debug_header: on }\n"
    "      - match: { path_prefix: /flash/, methods: [POST] }\n"
    "        enqueue: { redis_list: 'flash:orders', max_length: 500, max_body: 1k, "
    "headers: [X-User-Id, Idempotency-Key] }\n"
    "      - cluster: app\n"
    "  - name: redis\n"
    "    bind: 127.0.0.1:7000\n"
    "    protocol: tcp\n"
    "    cluster: cache\n"
    "    hash_key: client_ip\n"
    "clusters:\n"
    "  app:\n"
    "    balance: least_conn\n"
    "    servers:\n"
    "      - { name: app1, address: 127.0.0.1:9001, weight: 3 }\n"
    "      - { name: app2, address: 'localhost:9002' }\n"
    "      - { name: standby1, address: 127.0.0.1:9003, backup: true }\n"
    "    health:\n"
    "      check: http\n"
    "      path: /ready\n"
    "      host: app.internal\n"
    "      expect_status: 204\n"
    "      expect_body: ok\n"
    "      interval: 500ms\n"
    "      timeout: 250ms\n"
    "      rise: 1\n"
    "      fall: 5\n"
    "    passive: { consecutive_failures: 3, ejection: 5s, max_ejection: 1m, "
    "max_ejected_percent: 30 }\n"
    "    timeouts: { connect: 2s, response: 1m, idle: 1h }\n"
    "    retries: 0\n"
    "    slow_start: 10s\n"
    "    max_connections_per_server: 1000\n"
    "  orders:\n"
    "    balance: maglev\n"
    "    bounded_load: 1.25\n"
    "    table_size: 1009\n"
    "    servers:\n"
    "      - { name: o1, address: 10.0.0.1:80 }\n"
    "  cache:\n"
    "    balance: ring_hash\n"
    "    servers: [ { name: r1, address: 10.0.0.2:6379 } ]\n"
    "static:\n"
    "  catalog:\n"
    "    dir: /tmp\n"
    "    fallback: app\n"
    "    max_age: 5m\n"
    "    max_file_size: 2m\n";

static void test_full_schema(void **state)
{
    struct conf *c = load_ok(full_yaml);
    const struct conf_global *g = &c->global;
    assert_int_equal(g->workers, 4);
    assert_int_equal(g->max_connections, 5000);
    assert_string_equal(g->admin_socket, "/tmp/lb-test.sock");
    assert_true(g->has_metrics);
    assert_string_equal(g->metrics_listen.text, "127.0.0.1:9100");
    assert_int_equal(g->metrics_pos.line, 5);
    assert_int_equal(g->log_level, CONF_LOG_DEBUG);
    assert_int_equal(g->access, CONF_ACCESS_FILE);
    assert_string_equal(g->access_file, "/tmp/lb-access.log");
    assert_int_equal(g->nredis_nodes, 2);
    assert_string_equal(g->redis_nodes[1], "[::1]:6380");
    assert_string_equal(g->redis_instance, "lb-a");
    assert_string_equal(g->redis_prefix, "a:");
    assert_int_equal(g->redis_timeout_ms, 1000);
    assert_string_equal(g->redis_password, "s3cret");
    assert_int_equal(g->shutdown_timeout_ms, 3000);

    assert_int_equal(c->nlisteners, 2);
    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->bind.ss.ss_family, AF_INET6);
    assert_int_equal(l->bind.len, sizeof(struct sockaddr_in6));
    assert_int_equal(l->header_timeout_ms, 5000);
    assert_int_equal(l->idle_timeout_ms, 120000);
    assert_int_equal(l->max_header_bytes, 32768);
    assert_int_equal(l->max_body_bytes, 1ull << 30);
    assert_int_equal(l->nroutes, 4);
    assert_int_equal(l->routes[0].action, CONF_ACT_STATIC);
    assert_string_equal(l->routes[0].target, "catalog");
    assert_int_equal(l->routes[0].target_idx, 0);
    assert_true(l->routes[0].has_match);
    assert_string_equal(l->routes[0].path_prefix, "/snapshots/");
    const struct conf_route *r = &l->routes[1];
    assert_string_equal(r->host, "api.example.com"); /* lowercased */
    assert_int_equal(r->methods, CONF_M_GET | CONF_M_HEAD);
    assert_int_equal(r->target_idx, 1);
    assert_int_equal(r->hash_key.kind, CONF_HASH_HEADER);
    assert_string_equal(r->hash_key.name, "X-User-Id");
    assert_int_equal(r->hash_key_pos.line, 20);
    assert_int_equal(r->hash_key_pos.col, 19);
    assert_true(r->cache.enabled);
    assert_int_equal(r->cache.ttl_ms, 1000);
    assert_int_equal(r->cache.max_ttl_ms, 3600000);
    assert_true(r->cache.debug_header);
    assert_int_equal(r->cache.max_bytes, 1 << 20);
    r = &l->routes[2];
    assert_int_equal(r->action, CONF_ACT_ENQUEUE);
    assert_string_equal(r->enqueue.redis_list, "flash:orders");
    assert_int_equal(r->enqueue.max_length, 500);
    assert_int_equal(r->enqueue.max_body, 1024);
    assert_int_equal(r->enqueue.nheaders, 2);
    assert_string_equal(r->enqueue.headers[0], "x-user-id");
    assert_string_equal(r->enqueue.headers[1], "idempotency-key");
    assert_int_equal(r->methods, CONF_M_POST);
    assert_false(l->routes[3].has_match);

    l = &c->listeners[1];
    assert_int_equal(l->protocol, CONF_PROTO_TCP);
    assert_string_equal(l->cluster, "cache");
    assert_int_equal(l->cluster_idx, 2);
    assert_int_equal(l->hash_key.kind, CONF_HASH_CLIENT_IP);

    const struct conf_cluster *cl = &c->clusters[0];
    assert_int_equal(cl->balance, CONF_BAL_LEAST_CONN);
    assert_int_equal(cl->nservers, 3);
    assert_int_equal(cl->servers[0].weight, 3);
    assert_string_equal(cl->servers[1].addr.text, "localhost:9002");
    assert_int_equal(((struct sockaddr_in *)&cl->servers[1].addr.ss)->sin_addr.s_addr,
                     htonl(INADDR_LOOPBACK));
    assert_true(cl->servers[2].backup);
    assert_int_equal(cl->health.check, CONF_CHECK_HTTP);
    assert_string_equal(cl->health.path, "/ready");
    assert_string_equal(cl->health.host, "app.internal");
    assert_int_equal(cl->health.expect_status, 204);
    assert_string_equal(cl->health.expect_body, "ok");
    assert_int_equal(cl->health.interval_ms, 500);
    assert_int_equal(cl->health.timeout_ms, 250);
    assert_int_equal(cl->health.rise, 1);
    assert_int_equal(cl->health.fall, 5);
    assert_true(cl->passive.enabled);
    assert_int_equal(cl->passive.consecutive_failures, 3);
    assert_int_equal(cl->passive.ejection_ms, 5000);
    assert_int_equal(cl->passive.max_ejection_ms, 60000);
    assert_int_equal(cl->passive.max_ejected_percent, 30);
    assert_int_equal(cl->connect_timeout_ms, 2000);
    assert_int_equal(cl->response_timeout_ms, 60000);
    assert_int_equal(cl->idle_timeout_ms, 3600000);
    assert_int_equal(cl->retries, 0);
    assert_int_equal(cl->slow_start_ms, 10000);
    assert_int_equal(cl->max_connections_per_server, 1000);
    cl = &c->clusters[1];
    assert_int_equal(cl->balance, CONF_BAL_MAGLEV);
    assert_true(cl->bounded_load > 1.249 && cl->bounded_load < 1.251);
    assert_int_equal(cl->table_size, 1009);
    assert_int_equal(c->clusters[2].balance, CONF_BAL_RING_HASH);

    assert_int_equal(c->nstatics, 1);
    const struct conf_static *st = &c->statics[0];
    assert_string_equal(st->name, "catalog");
    assert_string_equal(st->dir, "/tmp");
    assert_string_equal(st->fallback, "app");
    assert_int_equal(st->fallback_idx, 0);
    assert_int_equal(st->max_age_ms, 300000);
    assert_int_equal(st->max_file_bytes, 2 << 20);
    conf_free(c);
}

/* A route to a hashing cluster without hash_key hashes the client address. */
static void test_hash_key_default(void **state)
{
    struct conf *c =
        load_ok("clusters:\n"
                "  app:\n"
                "    balance: ring_hash\n"
                "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB
                "  - { name: t, bind: 127.0.0.1:7000, protocol: tcp, cluster: app }\n");
    assert_int_equal(c->listeners[0].routes[0].hash_key.kind, CONF_HASH_CLIENT_IP);
    assert_int_equal(c->listeners[1].hash_key.kind, CONF_HASH_CLIENT_IP);
    conf_free(c);
}

/* Maglev needs a table of at least 100 entries per server; the default grows to fit. */
static void test_table_size_default_grows(void **state)
{
    size_t cap = 800 * 64 + 4096, o = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    o += (size_t)snprintf(y + o, cap - o, "clusters:\n  app:\n    balance: maglev\n    servers:\n");
    for (int i = 0; i < 800; i++)
        o += (size_t)snprintf(y + o, cap - o, "      - { name: s%d, address: 10.0.%d.%d:80 }\n", i,
                              i / 250, i % 250 + 1);
    snprintf(y + o, cap - o, WEB);
    struct conf *c = load_ok(y);
    assert_int_equal(c->clusters[0].nservers, 800);
    assert_int_equal(c->clusters[0].table_size, 80021); /* the first prime >= 80000 */
    conf_free(c);
    free(y);
}

static void test_workers_and_limits(void **state)
{
    struct conf *c = load_ok("global: { workers: auto, max_connections: 1 }\n" APP WEB);
    assert_int_equal(c->global.workers, 0);
    assert_int_equal(c->global.max_connections, 1);
    conf_free(c);
    c = load_ok("global: { workers: 256, log: { access: stderr, level: error } }\n" APP WEB);
    assert_int_equal(c->global.workers, 256);
    assert_int_equal(c->global.access, CONF_ACCESS_STDERR);
    assert_int_equal(c->global.log_level, CONF_LOG_ERROR);
    conf_free(c);
    expect_err("global: { workers: 0 }\n" APP WEB, 1, 20, "1..256");
    expect_err("global: { workers: 257 }\n" APP WEB, 1, 20, "1..256");
    expect_err("global: { workers: lots }\n" APP WEB, 1, 20, "'auto' or an integer 1..256");
    expect_err("global: { max_connections: 0 }\n" APP WEB, 1, 28, "1..10000000");
    expect_err("global: { max_connections: 10000001 }\n" APP WEB, 1, 28, "out of range");
}

static void test_access_and_level(void **state)
{
    expect_err("global:\n  log: { access: stdrr }\n" APP WEB, 2, 18, "off, stderr or a file path");
    expect_err("global:\n  log: { level: verbose }\n" APP WEB, 2, 17,
               "expected one of: error, warn, info, debug");
    expect_err("global:\n  log: { level: inf }\n" APP WEB, 2, 17, "did you mean 'info'?");
    expect_err("global:\n  log: { format: xml }\n" APP WEB, 2, 18, "expected one of: text, json");
    struct conf *c = load_ok("global: { log: { format: json } }\n" APP WEB);
    assert_int_equal(c->global.access_format, CONF_ACCESS_JSON);
    conf_free(c);
    c = load_ok(APP WEB);
    assert_int_equal(c->global.access_format, CONF_ACCESS_TEXT);
    conf_free(c);
}

/* global.admin.http: the token is read from its file when the config is loaded. */
static void test_admin_http(void **state)
{
    char dir[] = "/tmp/lb-test-token.XXXXXX", good[64], bad[64], yaml[512];
    assert_non_null(mkdtemp(dir));
    snprintf(good, sizeof(good), "%s/good", dir);
    snprintf(bad, sizeof(bad), "%s/bad", dir);
    FILE *f = fopen(good, "w");
    fputs("0123456789abcdef0123 \nignored\n", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("short\n", f);
    fclose(f);

    snprintf(yaml, sizeof(yaml),
             "global:\n  admin: { socket: /tmp/x.sock, http: { listen: 127.0.0.1:9101, "
             "token_file: %s } }\n" APP WEB,
             good);
    struct conf *c = load_ok(yaml);
    assert_true(c->global.has_admin_http);
    assert_string_equal(c->global.admin_http_token, "0123456789abcdef0123");
    assert_string_equal(c->global.admin_http_listen.text, "127.0.0.1:9101");
    conf_free(c);

    snprintf(yaml, sizeof(yaml),
             "global:\n  admin: { socket: /tmp/x.sock, http: { listen: 127.0.0.1:9101, "
             "token_file: %s } }\n" APP WEB,
             bad);
    expect_err(yaml, 2, 77, "visible ASCII characters");
    expect_err(
        "global:\n  admin: { socket: /tmp/x.sock, http: { listen: 127.0.0.1:9101 } }\n" APP WEB, 2,
        39, "token_file");
    snprintf(yaml, sizeof(yaml),
             "global:\n  metrics: { listen: 127.0.0.1:9101 }\n"
             "  admin: { socket: /tmp/x.sock, http: { listen: 127.0.0.1:9101, "
             "token_file: %s } }\n" APP WEB,
             good);
    expect_err(yaml, 3, 49, "clashes with global.metrics.listen");
    unlink(good);
    unlink(bad);
    rmdir(dir);
}

/* ---- scalar forms ---- */

static void test_parse_duration(void **state)
{
    uint64_t ms;
    assert_int_equal(conf_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(conf_parse_duration("2s", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(conf_parse_duration("1m", &ms), 0);
    assert_int_equal(ms, 60000);
    assert_int_equal(conf_parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(conf_parse_duration("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(conf_parse_duration("5", &ms), -EINVAL); /* no unit */
    assert_int_equal(conf_parse_duration("-1s", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("+1s", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("1.5s", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("2 s", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("2d", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("s", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("", &ms), -EINVAL);
    assert_int_equal(conf_parse_duration("99999999999999999999s", &ms), -ERANGE);
    assert_int_equal(conf_parse_duration("9999999999999999h", &ms), -ERANGE);
}

static void test_parse_size(void **state)
{
    uint64_t b;
    assert_int_equal(conf_parse_size("512", &b), 0);
    assert_int_equal(b, 512);
    assert_int_equal(conf_parse_size("16k", &b), 0);
    assert_int_equal(b, 16384);
    assert_int_equal(conf_parse_size("10m", &b), 0);
    assert_int_equal(b, 10 << 20);
    assert_int_equal(conf_parse_size("1g", &b), 0);
    assert_int_equal(b, 1 << 30);
    assert_int_equal(conf_parse_size("2K", &b), 0);
    assert_int_equal(b, 2048);
    assert_int_equal(conf_parse_size("10mb", &b), -EINVAL);
    assert_int_equal(conf_parse_size("-1", &b), -EINVAL);
    assert_int_equal(conf_parse_size("1t", &b), -EINVAL);
    assert_int_equal(conf_parse_size("k", &b), -EINVAL);
    assert_int_equal(conf_parse_size("18446744073709551615g", &b), -ERANGE);
}

static void test_parse_addr(void **state)
{
    struct conf_addr a;
    assert_int_equal(conf_parse_addr("127.0.0.1:80", &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_string_equal(a.text, "127.0.0.1:80");
    assert_int_equal(conf_parse_addr("[::1]:443", &a), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), 443);
    assert_int_equal(conf_parse_addr("localhost:65535", &a), 0);
    assert_int_equal(conf_parse_addr("0.0.0.0:1", &a), 0);
    assert_int_equal(conf_parse_addr("127.0.0.1:0", &a), -ERANGE);
    assert_int_equal(conf_parse_addr("127.0.0.1:65536", &a), -ERANGE);
    assert_int_equal(conf_parse_addr("127.0.0.1:123456", &a), -ERANGE);
    assert_int_equal(conf_parse_addr("127.0.0.1", &a), -EINVAL);
    assert_int_equal(conf_parse_addr("127.0.0.1:", &a), -EINVAL);
    assert_int_equal(conf_parse_addr("127.0.0.1:-1", &a), -EINVAL);
    assert_int_equal(conf_parse_addr(":80", &a), -EINVAL);
    assert_int_equal(conf_parse_addr("example.com:80", &a), -EINVAL); /* no DNS */
    assert_int_equal(conf_parse_addr("::1:80", &a), -EINVAL);         /* brackets needed */
    assert_int_equal(conf_parse_addr("[::1]80", &a), -EINVAL);
    assert_int_equal(conf_parse_addr("[127.0.0.1]:80", &a), -EINVAL);
    assert_int_equal(conf_parse_addr("1.2.3:80", &a), -EINVAL);
}

/* ---- error classes, each at its line and column ---- */

static void test_unknown_keys(void **state)
{
    expect_err(APP WEB "listners: []\n", 10, 1,
               "unknown key 'listners'; did you mean 'listeners'?");
    expect_err("clusters:\n"
               "  app:\n"
               "    balanse: maglev\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 5, "clusters.app: unknown key 'balanse'; did you mean 'balance'?");
    /* No near miss: the valid keys are listed instead. */
    expect_err(APP WEB "    frobnicate: 1\n", 10, 5, "expected one of: name, bind, protocol");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1, wieght: 2 } ]\n" WEB,
               3, 49, "did you mean 'weight'?");
}

static void test_wrong_types(void **state)
{
    expect_err("global: 5\n" APP WEB, 1, 9, "global: expected a mapping");
    expect_err(APP "listeners: { web: 1 }\n", 5, 12,
               "listeners: expected a list of listeners, "
               "got a mapping");
    expect_err("global: { workers: [1] }\n" APP WEB, 1, 20, "got a list");
    expect_err(APP WEB "clusters2: 1\n", 10, 1, "unknown key");
    expect_err("clusters:\n"
               "  app:\n"
               "    retries: two\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14, "expected an integer 0..10, got 'two'");
    expect_err("clusters:\n"
               "  app:\n"
               "    retries: 1.5\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14, "expected an integer");
    /* -2^63 used to be negated as an int64_t: undefined behaviour, caught under SAN=undefined. */
    expect_err("clusters:\n"
               "  app:\n"
               "    retries: -9223372036854775808\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14, "-9223372036854775808 is out of range: expected an integer 0..10");
    expect_err("clusters:\n"
               "  app:\n"
               "    retries: 18446744073709551616\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14, "is out of range");
    /* An empty value is reported at its key, not wherever libyaml found the next token. */
    expect_err("clusters:\n"
               "  app:\n"
               "    health:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 5,
               "clusters.app.health: expected a mapping (key: value lines or { ... }), "
               "got nothing");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: { name: a }\n" WEB,
               3, 14, "expected a list of servers, got a mapping");
    expect_err(APP WEB "    name: [web]\n", 10, 5, "duplicate key 'name' (first at 6:5)");
}

static const char *with_health(const char *health_line)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "clusters:\n"
             "  app:\n"
             "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n"
             "    health: { %s }\n" WEB,
             health_line);
    return buf;
}

static void test_durations(void **state)
{
    expect_err(with_health("interval: 2x"), 4, 25, "expected a duration such as 250ms");
    expect_err(with_health("interval: -1s"), 4, 25, "units: ms, s, m, h");
    expect_err(with_health("interval: 5"), 4, 25, "got '5'");
    expect_err(with_health("interval: 99999999999999999999s"), 4, 25, "out of range");
    expect_err(with_health("interval: 2h"), 4, 25, "out of range: expected 100ms..1h");
    expect_err(with_health("interval: 1s, timeout: 2s"), 4, 38,
               "timeout 2s is longer than "
               "interval 1s");
    struct conf *c = load_ok(with_health("interval: 1m, timeout: 250ms"));
    assert_int_equal(c->clusters[0].health.interval_ms, 60000);
    conf_free(c);
}

static void test_sizes(void **state)
{
    expect_err(APP WEB "    limits: { max_header_bytes: 16kb }\n", 10, 33,
               "expected a size such as 512, 16k, 10m or 1g, got '16kb'");
    expect_err(APP WEB "    limits: { max_body_bytes: -1 }\n", 10, 31, "expected a size");
    expect_err(APP WEB "    limits: { max_header_bytes: 512 }\n", 10, 33,
               "out of range: expected 1k..1m");
    struct conf *c = load_ok(APP WEB "    limits: { max_header_bytes: 1024, max_body_bytes: 0 }\n");
    assert_int_equal(c->listeners[0].max_header_bytes, 1024);
    assert_int_equal(c->listeners[0].max_body_bytes, 0);
    conf_free(c);
}

static void test_addresses(void **state)
{
    expect_err(
        APP "listeners:\n  - { name: w, bind: web.example.com:80, routes: [ { cluster: app } ] }\n",
        6, 22, "numeric IP (or localhost; no DNS names)");
    expect_err(APP "listeners:\n  - { name: w, bind: 127.0.0.1, routes: [ { cluster: app } ] }\n",
               6, 22, "expected an address IP:PORT");
    expect_err(APP
               "listeners:\n  - { name: w, bind: '127.0.0.1:0', routes: [ { cluster: app } ] }\n",
               6, 22, "bad port in '127.0.0.1:0': expected 1..65535");
    expect_err(APP
               "listeners:\n  - { name: w, bind: 127.0.0.1:70000, routes: [ { cluster: app } ] }\n",
               6, 22, "expected 1..65535");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: '::1:80' } ]\n" WEB,
               3, 36, "IP:PORT or [IPv6]:PORT");
    expect_err("global: { redis: { nodes: [ 127.0.0.1:6379, redis:6379 ] } }\n" APP WEB, 1, 45,
               "global.redis.nodes[1]: expected an address");
}

static void test_yaml_syntax(void **state)
{
    expect_err(APP WEB "    bad: [1, 2\n", 11, 1, "YAML syntax error");
    expect_err("global:\n  workers: 2\n   max_connections: 3\n" APP WEB, 3, 19,
               "YAML syntax error: mapping values are not allowed");
    /* A tab where indentation should be. */
    expect_err("global:\n\tworkers: 2\n" APP WEB, 2, 1, "YAML syntax error");
    expect_err("global: { workers: 2 }\n---\nglobal: {}\n", 2, 1, "single document");
}

static void test_duplicates(void **state)
{
    /* Within a mapping. */
    expect_err(APP WEB "    bind: 127.0.0.1:8081\n", 10, 5, "duplicate key 'bind' (first at 7:5)");
    /* Names. */
    expect_err(APP WEB "  - { name: web, bind: 127.0.0.1:8081, routes: [ { cluster: app } ] }\n",
               10, 13, "duplicate listener 'web' (first at 6:11)");
    expect_err(APP "  app:\n    servers: [ { name: b, address: 127.0.0.1:2 } ]\n" WEB, 5, 3,
               "duplicate cluster 'app' (first at 2:3)");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers:\n"
               "      - { name: a1, address: 127.0.0.1:9001 }\n"
               "      - { name: a1, address: 127.0.0.1:9002 }\n" WEB,
               5, 17, "servers[1].name: duplicate server name 'a1' (first at 4:17)");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers:\n"
               "      - { name: a1, address: 127.0.0.1:9001 }\n"
               "      - { name: a2, address: 127.0.0.1:9001 }\n" WEB,
               5, 30, "127.0.0.1:9001 is already used by server 'a1' (4:30)");
    expect_err(APP WEB "static:\n  s: { dir: /tmp }\n  s: { dir: /tmp }\n", 12, 3,
               "duplicate static set 's' (first at 11:3)");
}

static void test_address_clash(void **state)
{
    expect_err(APP WEB "  - { name: web2, bind: '127.0.0.1:8080', routes: [ { cluster: app } ] }\n",
               10, 25, "127.0.0.1:8080 clashes with listener 'web' on 127.0.0.1:8080 (7:11)");
    /* A wildcard takes the port on every address of its family. */
    expect_err(APP WEB "  - { name: any, bind: '0.0.0.0:8080', routes: [ { cluster: app } ] }\n", 7,
               11, "clashes with listener 'any' on 0.0.0.0:8080");
    expect_err("global: { metrics: { listen: 127.0.0.1:8080 } }\n" APP WEB, 1, 30,
               "global.metrics.listen: 127.0.0.1:8080 clashes with listener 'web'");
    /* Same port, other address: fine. */
    struct conf *c =
        load_ok(APP WEB "  - { name: w2, bind: '127.0.0.2:8080', routes: [ { cluster: app } ] }\n");
    conf_free(c);
}

static void test_undefined_references(void **state)
{
    expect_err(APP WEB "      - { match: { path_prefix: /x }, cluster: ap }\n", 10, 48,
               "routes[1].cluster: undefined cluster 'ap'; did you mean 'app'?");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, cluster: zzzzzz }\n", 10, 48,
               "undefined cluster 'zzzzzz' (defined: app)");
    expect_err(APP WEB "      - { match: { path_prefix: /s }, static: snaps }\n", 10, 47,
               "undefined static set 'snaps': none is defined");
    expect_err(APP WEB "  - { name: t, bind: 127.0.0.1:1, protocol: tcp, cluster: cache }\n", 10,
               59, "listeners[1].cluster: undefined cluster 'cache'");
    expect_err(APP WEB "static:\n  s: { dir: /tmp, fallback: nope }\n", 11, 29,
               "static.s.fallback: undefined cluster 'nope'");
    /* Order in the file does not matter: listeners may come before clusters. */
    struct conf *c = load_ok(WEB APP);
    assert_int_equal(c->listeners[0].routes[0].target_idx, 0);
    conf_free(c);
}

static void test_unknown_names(void **state)
{
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: fastest\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14,
               "unknown balance 'fastest'; expected one of: round_robin, least_conn, random_two, "
               "maglev, ring_hash");
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: round_robbin\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 14, "did you mean 'round_robin'?");
    expect_err(APP WEB "    protocol: udp\n", 10, 15, "expected one of: http, tcp");
    expect_err(with_health("check: icmp"), 4, 22, "unknown check 'icmp'");
    expect_err(with_health("check: icmp"), 4, 22, "expected one of: http, redis, tcp, none");
    expect_err(APP WEB
               "      - { match: { path_prefix: /x, methods: [GET, FETCH] }, cluster: app }\n",
               10, 52, "unknown method 'FETCH'");
    expect_err(APP WEB "      - { match: { methods: [GET, GET] }, cluster: app }\n", 10, 35,
               "GET is listed twice");
}

static void test_weights_and_backups(void **state)
{
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1, weight: 0 } ]\n" WEB,
               3, 57, "expected an integer 1..256");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1, weight: 257 } ]\n" WEB,
               3, 57, "257 is out of range");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers:\n"
               "      - { name: a, address: 127.0.0.1:1, backup: true }\n"
               "      - { name: b, address: 127.0.0.1:2, backup: true }\n" WEB,
               4, 7, "every server is a backup");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: []\n" WEB,
               3, 14, "at least one server");
    expect_err("clusters:\n"
               "  app: { balance: maglev }\n" WEB,
               2, 8, "missing required key 'servers'");
}

static void test_hash_rules(void **state)
{
    expect_err(APP WEB "        hash_key: header:X-User\n", 10, 19,
               "hash_key needs a hashing balancer (maglev or ring_hash), but cluster 'app' uses "
               "round_robin");
    expect_err(APP WEB "        hash_key: 'header:'\n", 10, 19, "bad header name");
    expect_err(APP WEB "        hash_key: ip\n", 10, 19,
               "expected header:NAME, cookie:NAME, path, uri or client_ip");
    expect_err("clusters:\n"
               "  app:\n"
               "    bounded_load: 1.25\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 5, "bounded_load needs a hashing balancer (maglev or ring_hash)");
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: maglev\n"
               "    bounded_load: 1.0\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               4, 19, "a number above 1.0");
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: maglev\n"
               "    bounded_load: nan\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               4, 19, "a number above 1.0");
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: maglev\n"
               "    table_size: 1000\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               4, 17, "table_size 1000 is not a prime; try 1009");
    expect_err("clusters:\n"
               "  app:\n"
               "    balance: maglev\n"
               "    table_size: 101\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 }, { name: b, address: "
               "127.0.0.1:2 } ]\n" WEB,
               4, 17, "too small for 2 servers");
    expect_err("clusters:\n"
               "  app:\n"
               "    table_size: 1009\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               3, 5, "table_size applies to maglev only");
    /* A bad balance name is reported once, not again by the rules that depend on it. */
    struct conf *c =
        load("clusters:\n"
             "  app:\n"
             "    balance: maglevv\n"
             "    bounded_load: 1.5\n"
             "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB "        hash_key: path\n");
    assert_null(c);
    assert_int_equal(diags.n, 1);
    assert_int_equal(diags.items[0].pos.line, 3);
}

static void test_listener_kinds(void **state)
{
    expect_err(APP WEB "    cluster: app\n", 10, 5, "'cluster' is for tcp listeners");
    expect_err(APP "listeners:\n"
                   "  - name: t\n"
                   "    bind: 127.0.0.1:7000\n"
                   "    protocol: tcp\n"
                   "    cluster: app\n"
                   "    routes: [ { cluster: app } ]\n",
               10, 5, "a tcp listener has no routes");
    expect_err(APP "listeners:\n"
                   "  - name: t\n"
                   "    bind: 127.0.0.1:7000\n"
                   "    protocol: tcp\n"
                   "    hash_key: header:X\n"
                   "    cluster: app\n",
               9, 15, "listeners[0].hash_key: a tcp listener can only hash client_ip");
    expect_err(APP "listeners:\n"
                   "  - name: t\n"
                   "    bind: 127.0.0.1:7000\n",
               6, 5, "an http listener needs routes");
    expect_err(APP "listeners:\n"
                   "  - { name: t, bind: 127.0.0.1:7000, protocol: tcp }\n",
               6, 5, "a tcp listener needs 'cluster'");
    expect_err(APP "listeners:\n  - { bind: 127.0.0.1:7000, routes: [ { cluster: app } ] }\n", 6, 5,
               "missing required key 'name'");
    expect_err(APP "listeners: []\n", 5, 12, "at least one listener");
    expect_err(APP, 1, 1, "missing required key 'listeners'");
    expect_err(APP "listeners:\n  - { name: 'bad name', bind: 127.0.0.1:1, routes: [] }\n", 6, 13,
               "bad a name 'bad name'");
}

static void test_route_actions(void **state)
{
    expect_err(APP WEB "        static: snaps\n", 10, 9,
               "a route takes exactly one action, and it already has 'cluster' (9:9)");
    expect_err(APP WEB "      - match: { path_prefix: /x }\n", 10, 9,
               "a route needs an action: cluster, static, enqueue or redirect");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, enqueue: { redis_list: q } }\n", 10,
               48, "enqueue needs Redis");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, enqueue: { max_length: 5 } }\n", 10,
               48, "missing required key 'redis_list'");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, enqueue: { redis_list: q, "
                       "headers: [ok, 'a b'] } }\n",
               10, 79, "'a b' is not a header name");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, enqueue: { redis_list: q, "
                       "headers: [X-A, x-a] } }\n",
               10, 80, "header 'x-a' is listed twice");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, enqueue: { redis_list: q, "
                       "max_body: 1g } }\n",
               10, 75, "max_body");
    expect_err("global: { redis: { nodes: [127.0.0.1:6379], timeout: 0s } }\n" APP WEB, 1, 54,
               "timeout");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, static: s, cache: { ttl: 1s } }\n"
                       "static: { s: { dir: /tmp } }\n",
               10, 50, "cache applies only to routes with a cluster");
    expect_err(APP WEB "        cache: { max_ttl: 721h }\n", 10, 27, "max_ttl");
    expect_err(APP WEB "        cache: { ttl: 25h }\n", 10, 23, "ttl");
    expect_err(APP WEB "        cache: { debug_header: yes }\n", 10, 32, "expected on or off");
    expect_err(APP WEB "      - { match: { path_prefix: /x }, cluster: app }\n", 10, 9,
               "this route can never match");
    expect_err(APP WEB "      - { match: { host: 'a.com:80' }, cluster: app }\n", 10, 26,
               "hosts are matched without their port");
}

/* redirect: { scheme, host, port, code }; lines 5-8 hold the listener. */
#define RLIS                                                                                       \
    "listeners:\n"                                                                                 \
    "  - name: web\n"                                                                              \
    "    bind: 127.0.0.1:8080\n"                                                                   \
    "    routes:\n"

static void test_per_ip_limits(void **state)
{
    struct conf *c = load(APP "listeners:\n"
                              "  - name: web\n"
                              "    bind: 127.0.0.1:8080\n"
                              "    limits: { per_ip_connections: 10, per_ip_rate: 100/s }\n"
                              "    routes: [ { cluster: app } ]\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].per_ip_connections, 10);
    assert_int_equal(c->listeners[0].per_ip_rate, 100);
    conf_free(c);
    expect_err(APP "listeners:\n"
                   "  - name: web\n"
                   "    bind: 127.0.0.1:8080\n"
                   "    limits: { per_ip_rate: 100/m }\n"
                   "    routes: [ { cluster: app } ]\n",
               8, 28, "expected a rate such as 100/s");
}

static void test_redirects(void **state)
{
    struct conf *c = load(APP RLIS "      - redirect: { scheme: https, port: 8443 }\n");
    assert_non_null(c);
    const struct conf_route *r = &c->listeners[0].routes[0];
    assert_int_equal(r->action, CONF_ACT_REDIRECT);
    assert_int_equal(r->redirect.scheme, CONF_SCHEME_HTTPS);
    assert_int_equal(r->redirect.port, 8443);
    assert_int_equal(r->redirect.code, 308);
    assert_null(r->redirect.host);
    conf_free(c);
    c = load(APP RLIS "      - redirect: { host: New.Example.com, code: 301 }\n");
    assert_non_null(c);
    assert_string_equal(c->listeners[0].routes[0].redirect.host, "new.example.com");
    assert_int_equal(c->listeners[0].routes[0].redirect.code, 301);
    conf_free(c);

    expect_err(APP RLIS "      - redirect: { code: 308 }\n", 9, 19,
               "sends clients back to the same http URL");
    expect_err(APP RLIS "      - redirect: { scheme: http }\n", 9, 19,
               "sends clients back to the same http URL");
    expect_err(APP RLIS "      - redirect: { scheme: https, code: 303 }\n", 9, 42,
               "unknown code '303'");
    expect_err(APP RLIS "      - redirect: { scheme: ftp }\n", 9, 29, "ftp");
    expect_err(APP RLIS "      - redirect: { port: 0 }\n", 9, 27, "port");
    expect_err(APP RLIS "      - redirect: { host: 'a b' }\n", 9, 27, "expected a host name");
    expect_err(APP RLIS "      - { redirect: { scheme: https }, cluster: app }\n", 9, 40,
               "a route takes exactly one action, and it already has 'redirect' (9:11)");
    expect_err(APP RLIS "      - { redirect: { scheme: https }, cache: { ttl: 1s } }\n", 9, 40,
               "cache applies only to routes with a cluster, not to 'redirect'");
}

/* protocol: redis: a cluster of shards, hashed by each command's key. */
static void test_redis_listeners(void **state)
{
#define SHARDS                                                                                     \
    "clusters:\n"                                                                                  \
    "  shards:\n"                                                                                  \
    "    balance: maglev\n"                                                                        \
    "    password: pw\n"                                                                           \
    "    servers: [ { name: s1, address: 127.0.0.1:6381 } ]\n"
    struct conf *c = load(SHARDS "listeners:\n"
                                 "  - { name: r, bind: 127.0.0.1:7000, protocol: redis, "
                                 "cluster: shards }\n");
    assert_non_null(c);
    assert_int_equal(c->listeners[0].protocol, CONF_PROTO_REDIS);
    assert_int_equal(c->listeners[0].cluster_idx, 0);
    assert_string_equal(c->clusters[0].password, "pw");
    conf_free(c);
    expect_err(SHARDS "listeners:\n  - { name: r, bind: 127.0.0.1:7000, protocol: redis }\n", 7, 5,
               "a redis listener needs 'cluster'");
    expect_err(APP "listeners:\n  - { name: r, bind: 127.0.0.1:7000, protocol: redis, cluster: app "
                   "}\n",
               6, 64, "must use balance: maglev or ring_hash (cluster 'app' uses round_robin)");
    expect_err(SHARDS "listeners:\n  - { name: r, bind: 127.0.0.1:7000, protocol: redis, cluster: "
                      "shards, hash_key: client_ip }\n",
               7, 72, "takes no hash_key");
    expect_err(SHARDS "listeners:\n  - { name: r, bind: 127.0.0.1:7000, protocol: redis, "
                      "routes: [ { cluster: shards } ] }\n",
               7, 55, "a redis listener has no routes");
    expect_err("clusters:\n"
               "  shards:\n"
               "    balance: ring_hash\n"
               "    servers: [ { name: s1, address: 127.0.0.1:6381 },\n"
               "               { name: s2, address: 127.0.0.1:6382, backup: true } ]\n"
               "listeners:\n"
               "  - { name: r, bind: 127.0.0.1:7000, protocol: redis, cluster: shards }\n",
               7, 64, "server 's2' cannot be a backup");

    /* Shard failover: replicas need a check that asks each member its role. */
    c = load("clusters:\n"
             "  shards:\n"
             "    balance: maglev\n"
             "    health: { check: redis }\n"
             "    servers:\n"
             "      - { name: s1, address: 127.0.0.1:6381, replicas: [ 127.0.0.1:6391, "
             "127.0.0.1:6392 ] }\n"
             "listeners:\n"
             "  - { name: r, bind: 127.0.0.1:7000, protocol: redis, cluster: shards }\n");
    assert_non_null(c);
    assert_int_equal(c->clusters[0].health.check, CONF_CHECK_REDIS);
    assert_int_equal(c->clusters[0].servers[0].nreplicas, 2);
    assert_string_equal(c->clusters[0].servers[0].replicas[1].text, "127.0.0.1:6392");
    conf_free(c);
    expect_err("clusters:\n"
               "  shards:\n"
               "    servers:\n"
               "      - { name: s1, address: 127.0.0.1:6381, replicas: [ 127.0.0.1:6391 ] }\n"
               "listeners:\n"
               "  - { name: r, bind: 127.0.0.1:7000, protocol: tcp, cluster: shards }\n",
               4, 56, "replicas need health: { check: redis }");
    expect_err("clusters:\n"
               "  shards:\n"
               "    health: { check: redis }\n"
               "    servers:\n"
               "      - { name: s1, address: 127.0.0.1:6381, replicas: [ nowhere ] }\n"
               "listeners:\n"
               "  - { name: r, bind: 127.0.0.1:7000, protocol: tcp, cluster: shards }\n",
               5, 58, "got 'nowhere'");
}

static void test_text_checks(void **state)
{
    static const char bad_utf8[] = APP WEB "    name: w\xc3\x28\n";
    expect_err(bad_utf8, 10, 12, "invalid UTF-8 (byte 0xc3)");
    /* Columns count characters: the é before the bad byte is one column. */
    static const char after_multibyte[] = "# caf\xc3\xa9 \xff\n" APP WEB;
    expect_err(after_multibyte, 1, 8, "invalid UTF-8 (byte 0xff)");

    static const char nul[] = "global:\n  workers: 2\0\n";
    struct conf *c = conf_load_buf("t.yaml", nul, sizeof(nul) - 1, &diags);
    assert_null(c);
    assert_int_equal(diags.n, 1);
    assert_int_equal(diags.items[0].pos.line, 2);
    assert_int_equal(diags.items[0].pos.col, 13);
    assert_non_null(strstr(diags.items[0].msg, "NUL byte"));

    expect_err("global:\n  workers: \x01\n", 2, 12, "control character U+0001");
    expect_err("global: { workers: \"2\\0\" }\n", 1, 20, "must not contain NUL");
    /* A UTF-16 byte order mark is not UTF-8. */
    expect_err("\xff\xfeg\0", 1, 1, "invalid UTF-8");
    /* CRLF line endings count as one line break. */
    expect_err("global:\r\n  workers: x\r\n" APP WEB, 2, 12, "workers");
}

static void test_aliases_and_depth(void **state)
{
    expect_err("x: &a { y: 1 }\n" APP WEB, 1, 4, "anchors and aliases are not supported");
    expect_err(APP WEB "static: *a\n", 10, 9, "alias '*a'");
    expect_err("global: !!map { workers: 2 }\n" APP WEB, 1, 9, "YAML tags are not supported");
    char deep[200] = "global: ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    expect_err(deep, 1, 40, "nesting is deeper than 32 levels");
    /* A billion laughs cannot even start. */
    expect_err("a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n", 2, 8, "alias '*a'");
}

/* Hostile sizes are bounded, and the refusal still points at a line and column. */
static void test_limits(void **state)
{
    /* Block style nesting: collection n starts at line n, column 2(n - 1) + 1. */
    char *y = malloc(64 * 1024);
    assert_non_null(y);
    y[0] = '\0';
    for (int i = 0; i < 40; i++)
        sprintf(y + strlen(y), "%*sk%d:\n", 2 * i, "", i);
    expect_err(y, 33, 65, "nesting is deeper than 32 levels");
    free(y);

    /* One value too many: the root list is value 1, so the 250,000th item is the first over. */
    size_t cap = 2 * 250001 + 16;
    y = malloc(cap);
    assert_non_null(y);
    y[0] = '[';
    size_t o = 1;
    for (int i = 0; i < 250001; i++, o += 2)
        memcpy(y + o, "1,", 2);
    memcpy(y + o, "]\n", 3);
    expect_err(y, 1, 2 + 2 * (250000 - 1), "more than 250000 values in one file");
    free(y);

    /* A file over 4 MiB is refused before it is parsed. */
    y = malloc(CONF_MAX_FILE + 2);
    assert_non_null(y);
    memset(y, '#', CONF_MAX_FILE + 1);
    y[CONF_MAX_FILE + 1] = '\0';
    expect_err(y, 1, 1, "file is too large");
    free(y);
}

/* Thousands of long cluster names sharing a prefix, then listeners naming @ref. */
static char *many_clusters(const char *ref)
{
    size_t cap = 27000 * 120 + 60 * 200, o = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    o += (size_t)snprintf(y + o, cap - o, "clusters:\n");
    for (int i = 0; i < 27000; i++)
        o += (size_t)snprintf(y + o, cap - o,
                              "  c%061d: {servers: [{name: a, address: 127.0.0.1:1}]}\n", i);
    o += (size_t)snprintf(y + o, cap - o, "listeners:\n");
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(y + o, cap - o,
                              "  - {name: t%d, bind: 127.0.0.1:%d, protocol: tcp, cluster: %s}\n",
                              i, 1000 + i, ref);
    return y;
}

/*
 * "Did you mean" must stay cheap on a hostile file: undefined 63-character references
 * against 27,000 63-character names used to cost a full 63-row edit-distance table per pair
 * (about 15 seconds for lb -t); now a candidate is dropped as soon as a row shows it cannot
 * come within 2 edits, which for unrelated names is after 3 rows. The bound is on the rows
 * computed, not on time, so it holds on a busy machine and under sanitizers alike.
 */
static void test_suggestions_bounded(void **state)
{
    char name[64];
    memset(name, 'x', 63);
    name[63] = '\0';
    char *bad = many_clusters(name);
    conf_suggest_rows = 0;
    assert_null(load(bad));
    uint64_t rows = conf_suggest_rows;
    free(bad);
    assert_int_equal(diags.n, CONF_MAX_ERRORS);
    assert_non_null(strstr(diags.items[0].msg, "undefined cluster 'xxxx"));
    /* 60 references x 27,000 names x at most 3 rows; a full table would be 63 rows. */
    uint64_t bound = 60ull * 27000 * 3;
    if (rows > bound)
        fail_msg("suggestions computed %llu rows; the bound is %llu", (unsigned long long)rows,
                 (unsigned long long)bound);
}

/* hash_key on a tcp listener follows the same rule as on a route: it needs a hashing cluster. */
static void test_tcp_hash_key_needs_hash_balancer(void **state)
{
    expect_err(APP "listeners:\n"
                   "  - name: t\n"
                   "    bind: 127.0.0.1:7000\n"
                   "    protocol: tcp\n"
                   "    cluster: app\n"
                   "    hash_key: client_ip\n",
               10, 15, "listeners[0].hash_key: hash_key needs a hashing balancer");
}

static void test_error_cap(void **state)
{
    char *y = malloc(64 * 40 + 256);
    assert_non_null(y);
    strcpy(y, APP WEB);
    for (int i = 0; i < 60; i++)
        sprintf(y + strlen(y), "    bogus%02d: 1\n", i);
    struct conf *c = load(y);
    assert_null(c);
    assert_int_equal(diags.n, CONF_MAX_ERRORS);
    assert_true(diags.dropped >= 10);
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    conf_diags_print(&diags, "x.yaml", f);
    fclose(f);
    assert_non_null(strstr(out, "x.yaml:10:5: listeners[0]: unknown key 'bogus00'"));
    char tail[64];
    snprintf(tail, sizeof(tail), "x.yaml: %zu more errors\n", diags.dropped);
    assert_non_null(strstr(out, tail));
    free(out);
    free(y);
}

/* Diagnostics come sorted by position even when the validator adds some after the loader. */
static void test_errors_sorted(void **state)
{
    struct conf *c = load(APP WEB "      - { match: { path_prefix: /x }, cluster: nope }\n"
                                  "    protocol: bogus\n");
    assert_null(c);
    assert_int_equal(diags.n, 3); /* unreachable route, undefined cluster, bad protocol */
    assert_int_equal(diags.items[0].pos.line, 10);
    assert_int_equal(diags.items[0].pos.col, 9);
    assert_int_equal(diags.items[1].pos.line, 10);
    assert_int_equal(diags.items[1].pos.col, 48);
    assert_int_equal(diags.items[2].pos.line, 11);
}

static void test_misc_values(void **state)
{
    expect_err(APP WEB "    tls: { certificates: [] }\n", 10, 26, "at least one certificate");
    expect_err(APP WEB "    tls: { certificates: [ { cert: /nonexistent.pem, key: /tmp } ] }\n", 10,
               36, "cannot read '/nonexistent.pem'");
    expect_err(APP WEB "    tls: { certificates: [ { cert: /tmp, key: /tmp } ] }\n", 10, 36,
               "is not a regular file");
    expect_err(APP WEB "static: { s: { dir: /nonexistent-dir } }\n", 10, 21, "No such file");
    expect_err(APP WEB "static: { s: { dir: /etc/hostname } }\n", 10, 21, "is not a directory");
    expect_err(APP WEB "static: { s: { fallback: app } }\n", 10, 14, "missing required key 'dir'");
    expect_err(with_health("path: healthz"), 4, 21, "a path starting with '/'");
    expect_err(with_health("expect_status: 99"), 4, 30, "100..599");
    expect_err(with_health("rise: 0"), 4, 21, "1..100");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n"
               "    passive: { ejection: 1m, max_ejection: 10s }\n" WEB,
               4, 44, "max_ejection 10s is shorter than ejection 1m");
    expect_err("clusters:\n"
               "  app:\n"
               "    servers: [ { name: a, address: 127.0.0.1:1, backup: yes } ]\n" WEB,
               3, 57, "expected true or false, got 'yes'");
    expect_err(
        "global: { admin: { socket: /tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock } }\n" APP WEB,
        1, 28, "too long");
    expect_err("global: { shutdown_timeout: 2h }\n" APP WEB, 1, 29, "0ms..1h");
    expect_err("clusters:\n"
               "  'a b':\n"
               "    servers: [ { name: a, address: 127.0.0.1:1 } ]\n" WEB,
               2, 3, "bad cluster name 'a b'");
}

static void test_empty_and_top(void **state)
{
    expect_err("", 1, 1, "the file is empty");
    expect_err("# only a comment\n", 1, 1, "the file is empty");
    expect_err("- a\n- b\n", 1, 1, "expected a mapping with global, listeners");
    expect_err("just text\n", 1, 1, "expected a mapping");
}

/* conf_load reads a real file and resolves relative paths against its directory. */
static void test_load_file_relative_paths(void **state)
{
    char dir[] = "/tmp/conf-test.XXXXXX";
    char path[256], sub[256], cert[256];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/snap", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    FILE *f = fopen(cert, "w");
    assert_non_null(f);
    fputs("not really a certificate; the loader only checks it is readable\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/lb.yaml", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(APP "listeners:\n"
              "  - name: web\n"
              "    bind: 127.0.0.1:8443\n"
              "    tls: { certificates: [ { cert: c.pem, key: ./c.pem } ] }\n"
              "    routes: [ { static: s } ]\n"
              "static: { s: { dir: snap } }\n"
              "global: { log: { access: logs/access.log } }\n",
          f);
    fclose(f);

    struct conf *c = conf_load(path, &diags);
    if (!c)
        conf_diags_print(&diags, path, stderr);
    assert_non_null(c);
    char want[300];
    snprintf(want, sizeof(want), "%s/snap", dir);
    assert_string_equal(c->statics[0].dir, want);
    assert_string_equal(c->listeners[0].tls.certs[0].cert, cert);
    snprintf(want, sizeof(want), "%s/./c.pem", dir);
    assert_string_equal(c->listeners[0].tls.certs[0].key, want);
    assert_true(c->listeners[0].tls.enabled);
    snprintf(want, sizeof(want), "%s/logs/access.log", dir);
    assert_string_equal(c->global.access_file, want);
    conf_free(c);

    /* A missing file is an error without a position. */
    snprintf(want, sizeof(want), "%s/missing.yaml", dir);
    assert_null(conf_load(want, &diags));
    assert_int_equal(diags.n, 1);
    assert_int_equal(diags.items[0].pos.line, 0);
    assert_non_null(strstr(diags.items[0].msg, "No such file"));
    assert_null(conf_load(dir, &diags));
    assert_non_null(strstr(diags.items[0].msg, "not a regular file"));

    unlink(cert);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

static void test_names(void **state)
{
    assert_string_equal(conf_balance_name(CONF_BAL_MAGLEV), "maglev");
    assert_string_equal(conf_balance_name(CONF_BAL_ROUND_ROBIN), "round_robin");
    assert_string_equal(conf_check_name(CONF_CHECK_HTTP), "http");
    assert_string_equal(conf_protocol_name(CONF_PROTO_TCP), "tcp");
    assert_string_equal(conf_hash_kind_name(CONF_HASH_COOKIE), "cookie");
}

/* Long and odd values are quoted safely in messages, never overflowing them. */
static void test_long_values_in_messages(void **state)
{
    char y[2048];
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(y, sizeof(y), APP WEB "    %s: 1\n", big);
    expect_err(y, 10, 5, "unknown key 'xxxx");
    snprintf(y, sizeof(y), APP WEB "    protocol: \"a\\tb\"\n");
    expect_err(y, 10, 15, "unknown protocol 'a\\x09b'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_full_schema),
        cmocka_unit_test(test_hash_key_default),
        cmocka_unit_test(test_table_size_default_grows),
        cmocka_unit_test(test_workers_and_limits),
        cmocka_unit_test(test_access_and_level),
        cmocka_unit_test(test_admin_http),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_address_clash),
        cmocka_unit_test(test_undefined_references),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_weights_and_backups),
        cmocka_unit_test(test_hash_rules),
        cmocka_unit_test(test_listener_kinds),
        cmocka_unit_test(test_route_actions),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_per_ip_limits),
        cmocka_unit_test(test_redis_listeners),
        cmocka_unit_test(test_text_checks),
        cmocka_unit_test(test_aliases_and_depth),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_tcp_hash_key_needs_hash_balancer),
        cmocka_unit_test(test_suggestions_bounded),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_errors_sorted),
        cmocka_unit_test(test_misc_values),
        cmocka_unit_test(test_empty_and_top),
        cmocka_unit_test(test_load_file_relative_paths),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_long_values_in_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
