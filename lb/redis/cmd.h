/*
 * Redis commands as a sharding proxy sees them (lb/redis/cmd.c): the parser of what clients
 * send (RESP arrays of bulk strings, and inline commands), the table that says where each
 * command's keys are and how its replies combine, and the hash of a key ({hash tag}
 * honoured). Pure functions over caller buffers: no I/O, no allocation, fuzzed by
 * tests/fuzz/fuzz_resp.c.
 */
#ifndef RDS_CMD_H
#define RDS_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RDS_AGAIN 0          /* rds_parse: the request is not complete yet */
#define RDS_INLINE_MAX 65536 /* an inline command's line, as Redis allows */

/* One argument: @len bytes at @off from the start of the request. */
struct rds_arg {
    uint32_t off, len;
};

/* The arguments of one request; the caller owns @v (room for @cap). */
struct rds_argv {
    struct rds_arg *v;
    uint32_t n, cap;
    bool inline_form; /* came as an inline command: forwarded re-encoded as RESP */
};

struct rds_limits {
    uint64_t max_request; /* bytes of one request, all of it */
    uint32_t max_args;    /* arguments of one request (<= @argv->cap) */
};

/*
 * Parses one request at @buf (@len bytes available). Returns its length (> 0) with its
 * arguments in @a, RDS_AGAIN when more bytes are needed (never when @len already exceeds the
 * limits), or -1 with a message for the client in @err ("Protocol error: ..."): malformed
 * RESP, a bulk or array length out of range, a request over the limits. An empty inline line
 * is a request with no arguments (Redis ignores it).
 */
int64_t rds_parse(const char *buf, size_t len, const struct rds_limits *lim, struct rds_argv *a,
                  char *err, size_t errlen);

/* How a command's reply is made. */
enum rds_kind {
    RDS_K_KEYED,   /* its keys (one, or several on one shard) decide the shard: forwarded */
    RDS_K_EVAL,    /* EVAL/EVALSHA: keys after numkeys, all on one shard */
    RDS_K_SUM,     /* DEL, UNLINK, EXISTS, TOUCH: one per key, integer replies added */
    RDS_K_MGET,    /* one MGET per key, replies in key order */
    RDS_K_MSET,    /* one MSET per key/value pair, +OK when all are */
    RDS_K_LOCAL,   /* answered by lb: PING, ECHO, QUIT, SELECT, COMMAND */
    RDS_K_REFUSED, /* cannot work through a sharding proxy: -ERR naming it */
};

struct rds_cmd {
    const char *name; /* upper case */
    enum rds_kind kind;
    int arity;       /* Redis's: N exactly N arguments (the name included), -N at least N */
    int first;       /* the first key's argument index (0: none) */
    int last;        /* the last key's index; -1 the last argument, -2 the one before it */
    int step;        /* between keys */
    const char *why; /* RDS_K_REFUSED: what to tell the client */
};

/* The command named by @name (any case), or NULL when lb does not know it. */
const struct rds_cmd *rds_cmd_lookup(const char *name, size_t len);

/* Whether @argc arguments (the name included) suit @c's arity. */
bool rds_arity_ok(const struct rds_cmd *c, uint32_t argc);

/* The hash that picks a key's shard: of the part between the first '{' and the next '}'
 * when that part is not empty (a hash tag, as Redis Cluster and twemproxy do), else of the
 * whole key. */
uint64_t rds_key_hash(const char *key, size_t len);

#endif
