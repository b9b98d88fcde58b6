/*
 * lb/redis/cmd.c: the client request parser (RESP and inline, split anywhere, limits), the
 * command table (sorted, found in any case, arities) and the key hash with hash tags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/hash.h"
#include "lb/redis/cmd.h"
#include "lb/redis/internal.h"

bool rds_cmd_table_sorted(void);

static struct rds_arg args[64];

static int64_t parse(const char *s, size_t n, uint64_t max, struct rds_argv *a, char *err)
{
    *a = (struct rds_argv){.v = args, .cap = 64};
    struct rds_limits lim = {.max_request = max, .max_args = 64};
    char *copy = malloc(n ? n : 1); /* exactly the bytes it may read */
    memcpy(copy, s, n);
    int64_t r = rds_parse(copy, n, &lim, a, err, 120);
    free(copy);
    return r;
}

static void arg_is(const char *req, const struct rds_argv *a, uint32_t i, const char *want)
{
    assert_true(i < a->n);
    assert_int_equal(a->v[i].len, strlen(want));
    assert_memory_equal(req + a->v[i].off, want, strlen(want));
}

static void test_resp(void **state)
{
    static const char req[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nx!\r\n*1\r\n$4\r\nPING\r\n";
    size_t first = strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nx!\r\n");
    struct rds_argv a;
    char err[120];
    assert_int_equal(parse(req, sizeof(req) - 1, 1 << 20, &a, err), first);
    assert_int_equal(a.n, 3);
    assert_false(a.inline_form);
    arg_is(req, &a, 0, "SET");
    arg_is(req, &a, 2, "v\r\nx!"); /* a bulk string may hold CRLF */
    /* Every shorter prefix asks for more. */
    for (size_t n = 0; n < first; n++)
        assert_int_equal(parse(req, n, 1 << 20, &a, err), RDS_AGAIN);
    /* Empty arrays and empty bulk strings are requests. */
    assert_int_equal(parse("*0\r\n", 4, 1024, &a, err), 4);
    assert_int_equal(a.n, 0);
    assert_int_equal(parse("*1\r\n$0\r\n\r\n", 10, 1024, &a, err), 10);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].len, 0);
}

static void test_inline(void **state)
{
    static const char req[] = "  GET \t{u}.a  \r\nPING\n";
    struct rds_argv a;
    char err[120];
    assert_int_equal(parse(req, sizeof(req) - 1, 1024, &a, err), 16);
    assert_true(a.inline_form);
    assert_int_equal(a.n, 2);
    arg_is(req, &a, 0, "GET");
    arg_is(req, &a, 1, "{u}.a");
    assert_int_equal(parse(req + 16, 5, 1024, &a, err), 5);
    arg_is(req + 16, &a, 0, "PING");
    assert_int_equal(parse("\r\n", 2, 1024, &a, err), 2);
    assert_int_equal(a.n, 0);
    assert_int_equal(parse("GET a", 5, 1024, &a, err), RDS_AGAIN);
    /* A line longer than the request limit never ends well. */
    assert_int_equal(parse("GET aaaaaaaaaaaaaaaaaaaa", 24, 16, &a, err), -1);
    assert_non_null(strstr(err, "too big inline request"));
}

static void test_bad(void **state)
{
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"*x\r\n", "invalid multibulk length"},
        {"*-1\r\n", "invalid multibulk length"},
        {"*1\r\n:5\r\n", "expected '$', got ':'"},
        {"*1\r\n$-1\r\n", "invalid bulk length"},
        {"*1\r\n$3\r\nGETX\r\n", "bulk string not followed by CRLF"},
        {"*1\r\n$3\rxGET\r\n", "invalid bulk length"},
        {"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"},
        {"*65\r\n", "too many arguments"},
        {"*2\r\n$3\r\nGET\r\n$2000\r\n", "request too big"},
        {"*1 \r\n", "invalid multibulk length"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rds_argv a;
        char err[120] = "";
        int64_t r = parse(bad[i].in, strlen(bad[i].in), 1024, &a, err);
        if (r != -1 || !strstr(err, bad[i].why))
            fail_msg("'%s': got %lld '%s', want '%s'", bad[i].in, (long long)r, err, bad[i].why);
    }
    /* At the limit: the request of exactly max_request bytes passes, one more byte fails. */
    static const char req[] = "*1\r\n$4\r\nPING\r\n";
    struct rds_argv a;
    char err[120];
    assert_int_equal(parse(req, 14, 14, &a, err), 14);
    assert_int_equal(parse("*1\r\n$5\r\nPINGG\r\n", 15, 14, &a, err), -1);
}

static void test_table(void **state)
{
    assert_true(rds_cmd_table_sorted());
    const struct rds_cmd *c = rds_cmd_lookup("get", 3);
    assert_non_null(c);
    assert_string_equal(c->name, "GET");
    assert_int_equal(c->kind, RDS_K_KEYED);
    assert_true(rds_arity_ok(c, 2));
    assert_false(rds_arity_ok(c, 3));
    assert_null(rds_cmd_lookup("GETT", 4));
    assert_null(rds_cmd_lookup("", 0));
    assert_null(rds_cmd_lookup("AVERYLONGCOMMANDNAMEINDEED", 26));
    c = rds_cmd_lookup("mSeT", 4);
    assert_int_equal(c->kind, RDS_K_MSET);
    assert_true(rds_arity_ok(c, 3));
    assert_false(rds_arity_ok(c, 4));
    assert_true(rds_arity_ok(c, 5));
    static const char *const refused[] = {"KEYS",     "MULTI", "BLPOP",   "SUBSCRIBE",
                                          "FLUSHALL", "SCAN",  "CLUSTER", "SCRIPT"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        c = rds_cmd_lookup(refused[i], strlen(refused[i]));
        assert_non_null(c);
        assert_int_equal(c->kind, RDS_K_REFUSED);
        assert_non_null(c->why);
    }
    static const char *const split[] = {"DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "MSET"};
    for (size_t i = 0; i < sizeof(split) / sizeof(split[0]); i++) {
        c = rds_cmd_lookup(split[i], strlen(split[i]));
        assert_true(c->kind == RDS_K_SUM || c->kind == RDS_K_MGET || c->kind == RDS_K_MSET);
    }
}

static void test_hash_tags(void **state)
{
    assert_true(rds_key_hash("{user1}.a", 9) == rds_key_hash("{user1}.b", 9));
    assert_true(rds_key_hash("{user1}.a", 9) == lb_hash64("user1", 5, 0));
    assert_true(rds_key_hash("x{user1}", 8) == lb_hash64("user1", 5, 0));
    /* Only the first '{' counts, an empty tag hashes the whole key, as Redis Cluster does. */
    assert_true(rds_key_hash("{}.a", 4) == lb_hash64("{}.a", 4, 0));
    assert_true(rds_key_hash("{a{b}c}", 7) == lb_hash64("a{b", 3, 0));
    assert_true(rds_key_hash("a{b", 3) == lb_hash64("a{b", 3, 0));
    assert_true(rds_key_hash("plain", 5) == lb_hash64("plain", 5, 0));
}

/* ---- merging the replies of split commands ---- */

static void out_is(const struct rds_req *r, const char *want)
{
    if (r->out.len != strlen(want) || memcmp(r->out.p, want, r->out.len))
        fail_msg("reply '%.*s', want '%s'", (int)r->out.len, r->out.p, want);
}

static void reply(struct rds_req *r, uint32_t part, const char *p, bool last)
{
    assert_int_equal(rds_merge_reply(r, part, p, strlen(p)), last);
}

static void test_merge(void **state)
{
    /* DEL a b c on three shards: the counts add up. */
    struct rds_req del = {.merge = RDS_M_SUM, .parts = 3};
    reply(&del, 1, ":1\r\n", false);
    reply(&del, 0, ":0\r\n", false);
    reply(&del, 2, ":1\r\n", true);
    rds_merge_finish(&del);
    out_is(&del, ":2\r\n");
    rds_buf_free(&del.out);

    /* MGET a b c: elements in key order, whatever order the shards answer in. */
    struct rds_buf elems[3] = {{0}};
    struct rds_req mget = {.merge = RDS_M_ARRAY, .parts = 3, .elems = elems};
    reply(&mget, 2, "*1\r\n$1\r\nc\r\n", false);
    reply(&mget, 0, "*1\r\n$-1\r\n", false);
    reply(&mget, 1, "*1\r\n$2\r\nbb\r\n", true);
    rds_merge_finish(&mget);
    out_is(&mget, "*3\r\n$-1\r\n$2\r\nbb\r\n$1\r\nc\r\n");
    rds_buf_free(&mget.out);
    for (int i = 0; i < 3; i++)
        rds_buf_free(&elems[i]);

    /* MSET: +OK when every shard says so; the first error wins, later ones are dropped. */
    struct rds_req mset = {.merge = RDS_M_OK, .parts = 3};
    reply(&mset, 0, "+OK\r\n", false);
    reply(&mset, 1, "-ERR lb: shard s2 (127.0.0.1:1): connect failed\r\n", false);
    reply(&mset, 2, "-OOM command not allowed\r\n", true);
    rds_merge_finish(&mset);
    out_is(&mset, "-ERR lb: shard s2 (127.0.0.1:1): connect failed\r\n");
    rds_buf_free(&mset.out);

    /* A reply that does not fit the command's shape is an error, not a guess. */
    struct rds_req bad = {.merge = RDS_M_SUM, .parts = 1};
    reply(&bad, 0, "+OK\r\n", true);
    rds_merge_finish(&bad);
    out_is(&bad, "-ERR lb: a shard gave an unexpected reply\r\n");
    rds_buf_free(&bad.out);

    /* A keyed command passes its reply through as it is. */
    struct rds_req one = {.merge = RDS_M_ONE, .parts = 1};
    reply(&one, 0, "*2\r\n:1\r\n:2\r\n", true);
    rds_merge_finish(&one);
    out_is(&one, "*2\r\n:1\r\n:2\r\n");
    rds_buf_free(&one.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resp),      cmocka_unit_test(test_inline),
        cmocka_unit_test(test_bad),       cmocka_unit_test(test_table),
        cmocka_unit_test(test_hash_tags), cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
