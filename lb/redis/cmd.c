/*
 * The request parser, the command table and the key hash (lb/redis/cmd.h).
 *
 * The parser is strict where a guess could split one client's stream differently from what
 * the client meant: lengths are decimal digits only, within limits, each followed by CRLF;
 * a bulk string must end with CRLF exactly where its length says. Inline commands (what a
 * person types into telnet) are split on spaces and tabs, without quoting.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/hash.h"
#include "lb/redis/cmd.h"

/* ---- the parser ---- */

/* A decimal length ending at CRLF, from @p; *@end past the CRLF. Returns the value, -2 when
 * the line is not complete, -1 when malformed or above @max. */
static int64_t read_len(const char *p, const char *lim, uint64_t max, const char **end)
{
    const char *q = p;
    uint64_t v = 0;
    /* "*-1" and "$-1" are nil: replies, never requests. */
    while (q < lim && *q >= '0' && *q <= '9') {
        v = v * 10 + (uint64_t)(*q - '0');
        if (v > max)
            return -1;
        q++;
    }
    if (q < lim && (*q != '\r' || q == p))
        return -1;
    if (q + 1 >= lim)
        return -2;
    if (q[1] != '\n')
        return -1;
    *end = q + 2;
    return (int64_t)v;
}

static int64_t perr(char *err, size_t n, const char *msg)
{
    snprintf(err, n, "Protocol error: %s", msg);
    return -1;
}

static int64_t parse_inline(const char *buf, size_t len, const struct rds_limits *lim,
                            struct rds_argv *a, char *err, size_t errlen)
{
    size_t max = lim->max_request < RDS_INLINE_MAX ? lim->max_request : RDS_INLINE_MAX;
    const char *nl = memchr(buf, '\n', len < max ? len : max);
    if (!nl)
        return len >= max ? perr(err, errlen, "too big inline request") : RDS_AGAIN;
    size_t end = (size_t)(nl - buf);
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    a->inline_form = true;
    for (size_t i = 0; i < end;) {
        while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        if (i == end)
            break;
        size_t s = i;
        while (i < end && buf[i] != ' ' && buf[i] != '\t')
            i++;
        if (a->n >= lim->max_args || a->n >= a->cap)
            return perr(err, errlen, "too many arguments");
        a->v[a->n++] = (struct rds_arg){(uint32_t)s, (uint32_t)(i - s)};
    }
    return (int64_t)(nl - buf) + 1;
}

int64_t rds_parse(const char *buf, size_t len, const struct rds_limits *lim, struct rds_argv *a,
                  char *err, size_t errlen)
{
    a->n = 0;
    a->inline_form = false;
    if (len == 0)
        return RDS_AGAIN;
    if (buf[0] != '*')
        return parse_inline(buf, len, lim, a, err, errlen);
    /* More bytes can help only while the request is within its limit. */
    bool full = len >= lim->max_request;
    const char *lim_p = buf + (full ? lim->max_request : len);
    const char *p;
    int64_t n = read_len(buf + 1, lim_p, UINT32_MAX, &p);
    if (n == -1)
        return perr(err, errlen, "invalid multibulk length");
    if (n == -2)
        return full ? perr(err, errlen, "request too big") : RDS_AGAIN;
    if ((uint64_t)n > a->cap || (uint64_t)n > lim->max_args)
        return perr(err, errlen, "too many arguments");
    for (int64_t i = 0; i < n; i++) {
        if (p >= lim_p)
            return full ? perr(err, errlen, "request too big") : RDS_AGAIN;
        if (*p != '$') {
            char m[48];
            snprintf(m, sizeof(m), "expected '$', got '%c'", isprint((unsigned char)*p) ? *p : '?');
            return perr(err, errlen, m);
        }
        const char *data;
        int64_t bl = read_len(p + 1, lim_p, (uint64_t)1 << 40, &data);
        if (bl == -1)
            return perr(err, errlen, "invalid bulk length");
        if (bl == -2)
            return full ? perr(err, errlen, "request too big") : RDS_AGAIN;
        if ((uint64_t)(data - buf) + (uint64_t)bl + 2 > lim->max_request)
            return perr(err, errlen, "request too big");
        if (data + bl + 2 > lim_p)
            return RDS_AGAIN;
        if (data[bl] != '\r' || data[bl + 1] != '\n')
            return perr(err, errlen, "bulk string not followed by CRLF");
        a->v[a->n++] = (struct rds_arg){(uint32_t)(data - buf), (uint32_t)bl};
        p = data + bl + 2;
    }
    return p - buf;
}

/* ---- the command table ---- */

#define KEYED(nm, ar, f, l, s)                                                                     \
    {                                                                                              \
        nm, RDS_K_KEYED, ar, f, l, s, NULL                                                         \
    }
#define ONE(nm, ar) KEYED(nm, ar, 1, 1, 1)
#define NO(nm, why)                                                                                \
    {                                                                                              \
        nm, RDS_K_REFUSED, -1, 0, 0, 0, why                                                        \
    }

static const char TXN[] = "transactions cannot span shards";
static const char BLOCK[] = "blocking commands are not proxied";
static const char PUBSUB[] = "pub/sub is not proxied";
static const char ALL[] = "it would need every shard";
static const char ADMIN[] = "administration goes to each server directly";

/* Sorted by name (strcmp) for the binary search. */
static const struct rds_cmd cmds[] = {
    ONE("APPEND", 3),
    NO("AUTH", "lb authenticates to the shards itself"),
    NO("BGREWRITEAOF", ADMIN),
    NO("BGSAVE", ADMIN),
    ONE("BITCOUNT", -2),
    ONE("BITFIELD", -2),
    ONE("BITPOS", -3),
    NO("BLMOVE", BLOCK),
    NO("BLMPOP", BLOCK),
    NO("BLPOP", BLOCK),
    NO("BRPOP", BLOCK),
    NO("BRPOPLPUSH", BLOCK),
    NO("BZMPOP", BLOCK),
    NO("BZPOPMAX", BLOCK),
    NO("BZPOPMIN", BLOCK),
    NO("CLIENT", ADMIN),
    NO("CLUSTER", "lb is not a Redis Cluster node"),
    {"COMMAND", RDS_K_LOCAL, -1, 0, 0, 0, NULL},
    NO("CONFIG", ADMIN),
    KEYED("COPY", -3, 1, 2, 1),
    NO("DBSIZE", ALL),
    NO("DEBUG", ADMIN),
    ONE("DECR", 2),
    ONE("DECRBY", 3),
    {"DEL", RDS_K_SUM, -2, 1, -1, 1, NULL},
    NO("DISCARD", TXN),
    ONE("DUMP", 2),
    {"ECHO", RDS_K_LOCAL, 2, 0, 0, 0, NULL},
    {"EVAL", RDS_K_EVAL, -3, 0, 0, 0, NULL},
    {"EVALSHA", RDS_K_EVAL, -3, 0, 0, 0, NULL},
    NO("EXEC", TXN),
    {"EXISTS", RDS_K_SUM, -2, 1, -1, 1, NULL},
    ONE("EXPIRE", -3),
    ONE("EXPIREAT", -3),
    ONE("EXPIRETIME", 2),
    NO("FLUSHALL", ALL),
    NO("FLUSHDB", ALL),
    ONE("GEOADD", -5),
    ONE("GEODIST", -4),
    ONE("GEOHASH", -2),
    ONE("GEOPOS", -2),
    ONE("GEORADIUSBYMEMBER_RO", -5),
    ONE("GEORADIUS_RO", -6),
    ONE("GEOSEARCH", -7),
    ONE("GET", 2),
    ONE("GETBIT", 3),
    ONE("GETDEL", 2),
    ONE("GETEX", -2),
    ONE("GETRANGE", 4),
    ONE("GETSET", 3),
    ONE("HDEL", -3),
    NO("HELLO", "lb speaks RESP2"),
    ONE("HEXISTS", 3),
    ONE("HGET", 3),
    ONE("HGETALL", 2),
    ONE("HINCRBY", 4),
    ONE("HINCRBYFLOAT", 4),
    ONE("HKEYS", 2),
    ONE("HLEN", 2),
    ONE("HMGET", -3),
    ONE("HMSET", -4),
    ONE("HRANDFIELD", -2),
    ONE("HSCAN", -3),
    ONE("HSET", -4),
    ONE("HSETNX", 4),
    ONE("HSTRLEN", 3),
    ONE("HVALS", 2),
    ONE("INCR", 2),
    ONE("INCRBY", 3),
    ONE("INCRBYFLOAT", 3),
    NO("INFO", ADMIN),
    NO("KEYS", ALL),
    NO("LASTSAVE", ADMIN),
    ONE("LINDEX", 3),
    ONE("LINSERT", 5),
    ONE("LLEN", 2),
    KEYED("LMOVE", 5, 1, 2, 1),
    ONE("LPOP", -2),
    ONE("LPOS", -3),
    ONE("LPUSH", -3),
    ONE("LPUSHX", -3),
    ONE("LRANGE", 4),
    ONE("LREM", 4),
    ONE("LSET", 4),
    ONE("LTRIM", 4),
    {"MGET", RDS_K_MGET, -2, 1, -1, 1, NULL},
    NO("MIGRATE", ADMIN),
    NO("MONITOR", ADMIN),
    NO("MOVE", "lb serves database 0 only"),
    {"MSET", RDS_K_MSET, -3, 1, -2, 2, NULL},
    NO("MSETNX", "its keys would have to be set atomically across shards"),
    NO("MULTI", TXN),
    ONE("PERSIST", 2),
    ONE("PEXPIRE", -3),
    ONE("PEXPIREAT", -3),
    ONE("PEXPIRETIME", 2),
    ONE("PFADD", -2),
    KEYED("PFCOUNT", -2, 1, -1, 1),
    KEYED("PFMERGE", -2, 1, -1, 1),
    {"PING", RDS_K_LOCAL, -1, 0, 0, 0, NULL},
    ONE("PSETEX", 4),
    NO("PSUBSCRIBE", PUBSUB),
    ONE("PTTL", 2),
    NO("PUBLISH", PUBSUB),
    NO("PUNSUBSCRIBE", PUBSUB),
    {"QUIT", RDS_K_LOCAL, -1, 0, 0, 0, NULL},
    NO("RANDOMKEY", ALL),
    KEYED("RENAME", 3, 1, 2, 1),
    KEYED("RENAMENX", 3, 1, 2, 1),
    NO("REPLICAOF", ADMIN),
    ONE("RESTORE", -4),
    ONE("RPOP", -2),
    KEYED("RPOPLPUSH", 3, 1, 2, 1),
    ONE("RPUSH", -3),
    ONE("RPUSHX", -3),
    ONE("SADD", -3),
    NO("SAVE", ADMIN),
    NO("SCAN", ALL),
    ONE("SCARD", 2),
    NO("SCRIPT", "scripts are loaded on each shard directly"),
    KEYED("SDIFF", -2, 1, -1, 1),
    KEYED("SDIFFSTORE", -3, 1, -1, 1),
    {"SELECT", RDS_K_LOCAL, 2, 0, 0, 0, NULL},
    ONE("SET", -3),
    ONE("SETBIT", 4),
    ONE("SETEX", 4),
    ONE("SETNX", 3),
    ONE("SETRANGE", 4),
    NO("SHUTDOWN", ADMIN),
    KEYED("SINTER", -2, 1, -1, 1),
    KEYED("SINTERSTORE", -3, 1, -1, 1),
    ONE("SISMEMBER", 3),
    NO("SLAVEOF", ADMIN),
    ONE("SMEMBERS", 2),
    ONE("SMISMEMBER", -3),
    KEYED("SMOVE", 4, 1, 2, 1),
    ONE("SPOP", -2),
    ONE("SRANDMEMBER", -2),
    ONE("SREM", -3),
    ONE("SSCAN", -3),
    ONE("STRLEN", 2),
    NO("SUBSCRIBE", PUBSUB),
    ONE("SUBSTR", 4),
    KEYED("SUNION", -2, 1, -1, 1),
    KEYED("SUNIONSTORE", -3, 1, -1, 1),
    NO("SWAPDB", ADMIN),
    {"TOUCH", RDS_K_SUM, -2, 1, -1, 1, NULL},
    ONE("TTL", 2),
    ONE("TYPE", 2),
    {"UNLINK", RDS_K_SUM, -2, 1, -1, 1, NULL},
    NO("UNSUBSCRIBE", PUBSUB),
    NO("UNWATCH", TXN),
    NO("WAIT", ADMIN),
    NO("WATCH", TXN),
    ONE("XADD", -5),
    ONE("XDEL", -3),
    ONE("XLEN", 2),
    ONE("XRANGE", -4),
    NO("XREAD", BLOCK),
    NO("XREADGROUP", BLOCK),
    ONE("XREVRANGE", -4),
    ONE("XTRIM", -4),
    ONE("ZADD", -4),
    ONE("ZCARD", 2),
    ONE("ZCOUNT", 4),
    ONE("ZINCRBY", 4),
    ONE("ZLEXCOUNT", 4),
    ONE("ZMSCORE", -3),
    ONE("ZPOPMAX", -2),
    ONE("ZPOPMIN", -2),
    ONE("ZRANDMEMBER", -2),
    ONE("ZRANGE", -4),
    ONE("ZRANGEBYLEX", -4),
    ONE("ZRANGEBYSCORE", -4),
    ONE("ZRANK", -3),
    ONE("ZREM", -3),
    ONE("ZREMRANGEBYLEX", 4),
    ONE("ZREMRANGEBYRANK", 4),
    ONE("ZREMRANGEBYSCORE", 4),
    ONE("ZREVRANGE", -4),
    ONE("ZREVRANGEBYLEX", -4),
    ONE("ZREVRANGEBYSCORE", -4),
    ONE("ZREVRANK", -3),
    ONE("ZSCAN", -3),
    ONE("ZSCORE", 3),
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

const struct rds_cmd *rds_cmd_lookup(const char *name, size_t len)
{
    char up[24];
    if (len == 0 || len >= sizeof(up))
        return NULL;
    for (size_t i = 0; i < len; i++)
        up[i] = (char)toupper((unsigned char)name[i]);
    up[len] = '\0';
    size_t lo = 0, hi = NCMDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(up, cmds[mid].name);
        if (c == 0)
            return &cmds[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool rds_arity_ok(const struct rds_cmd *c, uint32_t argc)
{
    if (c->arity >= 0 ? argc != (uint32_t)c->arity : argc < (uint32_t)-c->arity)
        return false;
    /* MSET takes pairs. */
    return c->kind != RDS_K_MSET || (argc % 2) == 1;
}

uint64_t rds_key_hash(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *tag = open + 1;
        const char *close = memchr(tag, '}', len - (size_t)(tag - key));
        if (close && close > tag)
            return lb_hash64(tag, (size_t)(close - tag), 0);
    }
    return lb_hash64(key, len, 0);
}

/* For the unit tests: the table must stay sorted for the search to find every entry. */
bool rds_cmd_table_sorted(void);
bool rds_cmd_table_sorted(void)
{
    for (size_t i = 1; i < NCMDS; i++)
        if (strcmp(cmds[i - 1].name, cmds[i].name) >= 0)
            return false;
    return true;
}
