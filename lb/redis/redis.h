/*
 * `protocol: redis` listeners (lb/redis): a sharding Redis proxy on the workers' rings.
 * lb/core/protocols.c maps such listeners to rds_client_ops and registers rds_module.
 */
#ifndef RDS_REDIS_H
#define RDS_REDIS_H

#include "lb/io/worker.h"

extern const struct io_conn_ops rds_client_ops;
extern struct io_module rds_module;

/* Gets the reply to an rds_call: one whole RESP value of @len bytes at @reply, valid during
 * the call only. */
typedef void (*rds_done_fn)(struct io_worker *w, uint64_t token, const char *reply, size_t len);

/*
 * Sends a command of lb's own (@len bytes of RESP at @cmd, copied) to server 0 of cluster
 * @cluster on the worker's pipelined connection, which follows the server's master. @done
 * gets the reply exactly once, perhaps before rds_call returns: Redis's own, or
 * "-ERR lb: ..." when the server cannot be reached, fails or answers later than the
 * cluster's response timeout. Returns 0, or -ENOMEM (@done is then not called).
 */
int rds_call(struct io_worker *w, uint16_t cluster, const char *cmd, size_t len, rds_done_fn done,
             uint64_t token);

/*
 * rds_call to the shard of cluster @cluster that owns @key (@klen bytes; the cluster's
 * Maglev or ring hash, as for a `protocol: redis` listener). Returns -EHOSTDOWN without
 * sending when that shard is down by its health checks (the caller does without it), or
 * rds_call's result.
 */
int rds_call_key(struct io_worker *w, uint16_t cluster, const char *key, size_t klen,
                 const char *cmd, size_t len, rds_done_fn done, uint64_t token);

#endif
