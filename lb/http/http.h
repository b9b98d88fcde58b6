/*
 * L7 (protocol: http): the HTTP/1.1 reverse proxy's connection kinds and per-worker state.
 */
#ifndef HTTP_H
#define HTTP_H

#include "lb/io/worker.h"

/* The connection kind of an http listener's accepted sockets (the client side). */
extern const struct io_conn_ops http_client_ops;
/* An idle keep-alive client at rest, in a compact object (lb/http/park.c). */
extern const struct io_conn_ops http_parked_ops;
/* Connections to servers, pooled while idle. */
extern const struct io_conn_ops http_upstream_ops;
/* Header buffers, server pools, snapshot references, the L1 cache and the access log. */
extern struct io_module http_module;

#endif
