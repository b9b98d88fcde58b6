/*
 * What the files of lb/io share among themselves and nobody else calls.
 */
#ifndef IO_INTERNAL_H
#define IO_INTERNAL_H

#include "lb/io/worker.h"

/* Frees the chunks of every object pool (worker teardown). */
void io_pools_free(struct io_worker *w);

/* Called when a closing connection has nothing in flight: closes its sockets (their slots
 * are free once the closes complete), or frees the slot when they are closed already. */
void io_conn_reap(struct io_worker *w, struct io_conn *c);

/* A slot came free: listeners that stopped for lack of one accept again. */
void io_listeners_rearm(struct io_worker *w);

/* Re-arms the starved streams of the connections on the starved list. */
void io_feed_starved(struct io_worker *w);

/* The IO_OP_SOCKET completion of io_conn_connect: 0 when the connect is on its way, or @res
 * (< 0) when no socket could be made (reported as a failed connect). */
int io_conn_socket_done(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                        struct io_connect *cx, int res);

#endif
