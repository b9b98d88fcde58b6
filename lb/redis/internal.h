/*
 * lb/redis internals shared by client.c (the client connections of `protocol: redis`
 * listeners) and server.c (each worker's pipelined connections to the shards).
 *
 * A client's command becomes a request (struct rds_req) in the client's FIFO. Its parts (one
 * for a keyed command, one per key for DEL, MGET, MSET ...) go to the shards' connections,
 * whose FIFOs say which part each reply answers; replies come back in each shard's order,
 * are merged into the request, and requests leave in the client's order. A request whose
 * client left stays alive, orphaned, until its last part is answered.
 */
#ifndef RDS_INTERNAL_H
#define RDS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lb/io/worker.h"
#include "lb/redis/cmd.h"
#include "lb/redis/redis.h"

#define RDS_PIPELINE_MAX 1024     /* requests of one client in flight: more pauses its reads */
#define RDS_ARGS_MAX 65536        /* arguments of one command */
#define RDS_FREE_REQS_MAX 4096    /* request objects a worker keeps for reuse */
#define RDS_KEEP_REPLY_BYTES 4096 /* a kept request's reply buffer at most */

/* A growable byte buffer (malloc'd). */
struct rds_buf {
    char *p;
    uint32_t len, cap;
};

int rds_buf_put(struct rds_buf *b, const void *p, size_t n);
int rds_buf_printf(struct rds_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rds_buf_free(struct rds_buf *b);

/* Bytes for one socket: appended to @out while @sending is on the wire (one send in flight,
 * short sends resumed), then the two swap. */
struct rds_wire {
    struct rds_buf out, sending;
    uint32_t sent; /* of @sending */
};

/* merge.c: sends what @wr->out holds on stream @st of @c unless a send is in flight. */
void rds_wire_start(struct io_worker *w, struct io_conn *c, struct io_stream *st,
                    struct rds_wire *wr);

/* merge.c: the send in flight took @res (> 0) bytes. Returns true when all of @sending went
 * (the caller may start the next), false when the rest was sent again. */
bool rds_wire_sent(struct io_worker *w, struct io_conn *c, struct io_stream *st,
                   struct rds_wire *wr, int res);

void rds_wire_free(struct rds_wire *wr);

enum rds_merge {
    RDS_M_ONE,   /* the one part's reply as it is */
    RDS_M_SUM,   /* integers added */
    RDS_M_ARRAY, /* MGET: each part is "*1" + an element; the elements in part order */
    RDS_M_OK,    /* MSET: +OK when every part is */
};

struct rds_client;

struct rds_req {
    struct rds_req *next;   /* the client's FIFO */
    struct rds_client *cli; /* NULL: orphaned (the client left) */
    uint32_t parts, done;   /* replies expected and received */
    enum rds_merge merge;
    bool failed;           /* a part answered an error: @out holds the first */
    bool quit;             /* QUIT: the connection ends after this reply */
    int64_t sum;           /* RDS_M_SUM */
    struct rds_buf out;    /* the reply, once done == parts (or the first error) */
    struct rds_buf *elems; /* RDS_M_ARRAY: one per part */
    uint64_t t_start_us;
    rds_done_fn on_done; /* lb's own command (rds_call): gets the reply; @cli is NULL */
    uint64_t token;
};

struct rds_client {
    struct io_conn base;
    struct io_stream st;
    struct rds_buf in;           /* received, not parsed yet */
    struct rds_req *head, *tail; /* in the client's order */
    uint32_t nreqs;
    struct rds_wire wire; /* replies ready; the send in flight */
    bool close_after;     /* QUIT, EOF or a protocol error: close once answered */
    bool paused;          /* reads stopped: RDS_PIPELINE_MAX requests wait */
    bool busy, again;     /* progress() is running; run it once more */
};

/* One part waiting for its reply on a shard connection. */
struct rds_pend {
    struct rds_req *req; /* NULL: lb's own command (AUTH) */
    uint32_t part;
    uint64_t t_ms; /* the worker's clock when queued: the response timeout */
    uint64_t t_us; /* CLOCK_MONOTONIC when queued: the shard's latency */
};

struct rds_server;

/* Per worker. */
struct rds_worker {
    struct rds_server ***srv;  /* [cluster][server]: the shard connection, or NULL */
    uint64_t **retry_ms;       /* [cluster][server]: no new connection before this */
    char ***why;               /* [cluster][server]: why the last connection failed */
    struct rds_argv argv;      /* the parser's scratch */
    struct rds_req *free_reqs; /* finished requests for reuse (their reply buffers kept) */
    uint32_t nfree_reqs;
};

extern struct io_module rds_module; /* lb/redis/module.c */

static inline struct rds_worker *rw(struct io_worker *w)
{
    return io_mod(w, &rds_module);
}

/* merge.c: adds the reply @p (@len bytes, one RESP value) of part @part to @r by its merge
 * rule (the first error wins); true when it was the last part. */
bool rds_merge_reply(struct rds_req *r, uint32_t part, const char *p, size_t n);

/* merge.c: completes @r->out once every part replied (the sum, +OK, the array). */
void rds_merge_finish(struct rds_req *r);

/* server.c: queues part @part of @req (@cmd, RESP, @len bytes) on the connection of server
 * @server of cluster @cluster, connecting it when needed. On a shard that cannot be reached
 * the part is answered at once with an error. */
void rds_server_send(struct io_worker *w, uint16_t cluster, uint32_t server, struct rds_req *req,
                     uint32_t part, const char *cmd, size_t len);

/* client.c: the reply @p (@len bytes, one whole RESP value) to part @part of @req. */
void rds_req_reply(struct io_worker *w, struct rds_req *req, uint32_t part, const char *p,
                   size_t len);

/* client.c: answers part @part of @req with "-ERR lb: MSG". */
void rds_req_fail(struct io_worker *w, struct rds_req *req, uint32_t part, const char *msg);

extern const struct io_conn_ops rds_server_ops;

#endif
