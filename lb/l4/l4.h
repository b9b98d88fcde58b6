/*
 * L4 (protocol: tcp): bytes both ways between a client and one server of a cluster.
 */
#ifndef L4_H
#define L4_H

#include "lb/io/worker.h"

/* The connection kind of a tcp listener's accepted sockets. */
extern const struct io_conn_ops l4_ops;

#endif
