/*
 * `protocol: redis` listeners (lb/redis): a sharding Redis proxy on the workers' rings.
 * lb/core/protocols.c maps such listeners to rds_client_ops and registers rds_module.
 */
#ifndef RDS_REDIS_H
#define RDS_REDIS_H

#include "lb/io/worker.h"

extern const struct io_conn_ops rds_client_ops;
extern struct io_module rds_module;

#endif
