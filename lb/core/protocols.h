/*
 * Where lb/core wires the protocols to the io layer: which connection kind a listener's
 * accepted sockets become, and which protocols keep per-worker state. lb/io calls these and
 * so never names a protocol itself.
 */
#ifndef LB_PROTOCOLS_H
#define LB_PROTOCOLS_H

#include "conf/conf.h"

struct io_conn_ops;

/* Registers every protocol's io_module once (any thread, any number of times). */
void lb_protocols_init(void);

/* The connection kind of sockets accepted on listener @l. */
const struct io_conn_ops *lb_listener_ops(const struct conf_listener *l);

#endif
