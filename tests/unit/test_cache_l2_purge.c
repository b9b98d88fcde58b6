/*
 * cache_l2_purge (lb/cache/l2_purge.c) against a real redis-server started on a port from
 * tests/e2e/ports.py (skipped when redis-server is not installed): path and host prefixes,
 * locks and other caches left alone, an unknown cache, and a shard that cannot be reached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb/cache/l2.h"
#include "lb/cache/purge.h"

/* A purge of @arg ("/x" exact, "/x*" prefix) for @host (NULL: every host). */
static const struct cache_purge *purge(const char *arg, const char *host)
{
    static struct cache_purge p;
    char err[128];
    assert_int_equal(
        cache_purge_set(&p, arg, strlen(arg), host, host ? strlen(host) : 0, err, sizeof(err)), 0);
    return &p;
}

static void release_ports(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "python3 tests/e2e/ports.py release %d >/dev/null", (int)getpid());
    if (system(cmd) != 0)
        fprintf(stderr, "could not release the ports\n");
}

static pid_t redis_pid; /* stopped by the teardown, pass or fail */

static int teardown(void **state)
{
    (void)state;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    release_ports();
    return 0;
}

static int claim_port(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "python3 tests/e2e/ports.py claim %d", (int)getpid());
    FILE *p = popen(cmd, "r");
    int port = 0;
    if (!p || fscanf(p, "%d", &port) != 1)
        port = 0;
    if (p)
        pclose(p);
    return port;
}

static redisContext *wait_redis(int port)
{
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err)
            return c;
        if (c)
            redisFree(c);
        usleep(50000);
    }
    return NULL;
}

static long keys(redisContext *c)
{
    redisReply *r = redisCommand(c, "DBSIZE");
    long n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r)
        freeReplyObject(r);
    return n;
}

static void test_purge(void **state)
{
    (void)state;
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        skip();
    int port = claim_port(), dead = claim_port();
    assert_true(port > 0 && dead > 0);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    pid_t pid = redis_pid = fork();
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", "/tmp", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    redisContext *c = wait_redis(port);
    assert_non_null(c);
    static const char *const set[] = {
        "lb:c:pages:www.example/a/1",      "lb:c:pages:www.example/a/2",
        "lb:c:pages:www.example/b/1",      "lb:c:pages:other.host/a/1",
        "lb:c:pages:www.example/a/1#lock", "lb:c:other:www.example/a/1",
        "lb:c:pages*:www.example/a/9",
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        freeReplyObject(redisCommand(c, "SET %s x", set[i]));

    struct conf cf = {0};
    struct conf_shared_cache sc = {.name = "pages", .nservers = 1, .timeout_ms = 1000};
    struct conf_addr addrs[2] = {0};
    snprintf(addrs[0].text, sizeof(addrs[0].text), "127.0.0.1:%d", port);
    snprintf(addrs[1].text, sizeof(addrs[1].text), "127.0.0.1:%d", dead);
    sc.servers = addrs;
    cf.caches = &sc;
    cf.ncaches = 1;
    struct lb_err err = {{0}};
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/a/2", NULL), &err), 1);
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/a/*", NULL), &err), 2);
    assert_int_equal(keys(c), 4); /* b/1, the lock, the other cache's, pages*'s */
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/b/1", "other.host"), &err), 0);
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/b*", "WWW.Example"), &err), 1);
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/b*", "www.example"), &err), 0);
    assert_int_equal(cache_l2_purge(&cf, "nope", purge("/*", NULL), &err), -ENOENT);
    assert_non_null(strstr(err.msg, "nope"));
    /* a second shard that cannot be reached: the first is purged all the same */
    freeReplyObject(redisCommand(c, "SET lb:c:pages:h/z x"));
    sc.nservers = 2;
    assert_int_equal(cache_l2_purge(&cf, "pages", purge("/*", NULL), &err), -EIO);
    assert_non_null(strstr(err.msg, "1 keys deleted, 1 of 2 shards failed"));
    assert_int_equal(keys(c), 3);

    redisFree(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_purge, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
