/*
 * Workers: one thread, one io_uring ring, its own listening sockets, provided-buffer ring,
 * fixed-file table and connection slots. Everything here is touched by its own thread only,
 * except the stop flag and the shared server table (lb/cluster).
 *
 * The io layer knows no protocol. A connection slot holds an object whose first member is
 * a struct io_conn; the object's kind is a const table of operations (struct io_conn_ops)
 * that the loop calls: accepted, on_recv, on_sent, on_connect, tick, on_close, on_free.
 * A connection may change objects while it lives (io_conn_move: a compact one while it
 * rests, whose `wake` op brings the full one back before a completion is handled).
 * Each protocol (lb/l4, lb/http, later TLS and Redis) defines its kinds and keeps its own
 * state in its own object, so an L4 connection does not carry HTTP state. Per-worker
 * protocol state (pools, caches, logs) hangs off w->mod[] through struct io_module.
 *
 * Life of an operation: a handler prepares SQEs through io_sqe(), which tags them with
 * io_ud(op, gen, slot) and counts them in the connection's `inflight`. The loop submits
 * once per iteration, then dispatches each CQE through a table indexed by op. A CQE whose
 * generation is not its slot's is stale and dropped. A slot is freed only when its inflight
 * count is back to zero, so a recycled slot never receives a completion meant for the
 * previous connection.
 */
#ifndef IO_WORKER_H
#define IO_WORKER_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/io/stream.h"

struct lb_runtime;
struct cl_cluster_wstate;

enum io_op {
    IO_OP_NONE,
    IO_OP_ACCEPT,   /* slot = listener index */
    IO_OP_ORPHAN,   /* close of an accepted socket we had no slot for; listener cancels */
    IO_OP_PEERNAME, /* SO_PEERNAME through uring_cmd */
    IO_OP_RECV0,    /* multishot recv on stream 0 of the slot (IO_OP_RECV0 + idx) */
    IO_OP_RECV1,
    IO_OP_SEND0, /* the send in flight on stream 0 (IO_OP_SEND0 + idx) */
    IO_OP_SEND1,
    IO_OP_SOCKET,  /* a socket for a connect into its fixed slot */
    IO_OP_CONNECT, /* connect, linked to a timeout */
    IO_OP_AUX,     /* setsockopt, link timeout, shutdown, cancel, close: counted only */
    IO_OP__COUNT,
};

enum io_conn_state {
    IO_CONN_FREE,
    IO_CONN_PEERNAME,   /* accepted, learning the client address */
    IO_CONN_CONNECTING, /* a connect in flight */
    IO_CONN_OPEN,       /* bytes flowing */
    IO_CONN_CLOSING,    /* cancelling and closing; freed when inflight == 0 */
};

#define IO_CONN_F_ACCEPTED 0x01   /* came from a listener: counted in its active gauge */
#define IO_CONN_F_CLOSED_FDS 0x02 /* teardown closed sockets: freeing gives table entries */
#define IO_CONN_F_FDWAIT 0x04     /* waiting for a free fixed-file entry (io_fdwait_push) */

struct io_conn;
struct io_worker;

/* What a kind of connection does; the loop calls these and never looks at the kind. Ops
 * a kind does not use may be NULL. */
struct io_conn_ops {
    const char *name;
    uint32_t size;          /* bytes of the kind's object, struct io_conn first */
    uint8_t nstreams;       /* streams the object holds (0..2), at stream_off[] */
    uint16_t stream_off[2]; /* offsetof the streams in the object */
    uint8_t connect_stream; /* the stream io_conn_connect connects, if the kind connects */
    uint16_t connect_off;   /* offsetof its struct io_connect */
    /* A listener of this kind handed over an accepted socket, in stream 0. */
    void (*accepted)(struct io_worker *w, struct io_conn *c);
    /* Stream @s got @res: > 0 bytes appended to its queue, 0 end of stream (IO_ST_F_EOF
     * set), < 0 an error (not ENOBUFS or ECANCELED, which the io layer handles). The
     * recv is re-armed after it returns unless paused or closing. */
    void (*on_recv)(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res);
    /* The send in flight on @s ended: @res bytes taken, or -errno. */
    void (*on_sent)(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res);
    /* io_conn_connect on @s finished: 0 connected, -errno (-ECANCELED: timed out). */
    void (*on_connect)(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res);
    /* io_conn_ask_peername finished: the address is in place when @res >= 0. */
    void (*on_peername)(struct io_worker *w, struct io_conn *c, int res);
    /* A fixed-file entry came free while @c waited for one (io_fdwait_push). */
    void (*on_fd_ready)(struct io_worker *w, struct io_conn *c);
    /* Every tick (100 ms) for every open connection: timeouts. */
    void (*tick)(struct io_worker *w, struct io_conn *c);
    /* First step of io_conn_close, before its streams are cancelled: detach from peers. */
    void (*on_close)(struct io_worker *w, struct io_conn *c);
    /* The slot is being freed: give back what the object holds. */
    void (*on_free)(struct io_worker *w, struct io_conn *c);
    /* Set by a compact kind that stands for a connection at rest (an idle keep-alive
     * client): before a completion with a handler is dispatched on @c, returns the full
     * object that replaced it in its slot (io_conn_move), or @c closed when none could be
     * had. */
    struct io_conn *(*wake)(struct io_worker *w, struct io_conn *c);
};

/* The part of every connection object the loop needs. */
struct io_conn {
    const struct io_conn_ops *ops;
    uint32_t gen; /* 24 bits used; the slot's generation when this object took it */
    uint32_t slot;
    uint8_t state;    /* enum io_conn_state */
    uint8_t flags;    /* IO_CONN_F_* */
    uint8_t listener; /* index into the worker's listeners (accepted connections) */
    uint8_t pad;
    uint16_t inflight;     /* SQEs submitted and not yet completed */
    uint32_t next_starved; /* intrusive list of connections waiting for buffers */
    uint32_t fdwait_prev;  /* list of connections waiting for a file slot */
    uint32_t fdwait_next;
    uint64_t last_ms; /* last activity, for idle timeouts */
};

/* A client address, learned with io_conn_ask_peername. */
union io_peer {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
};

/* What a connect needs until it is submitted (the kernel reads the timespec then). */
struct io_connect {
    struct __kernel_timespec ts;
    const struct conf_addr *addr;
};

/* Per-worker state of a protocol: set up before the loop, torn down after it. */
struct io_module {
    const char *name;
    int (*init)(struct io_worker *w, void **state, struct lb_err *err);
    void (*destroy)(struct io_worker *w, void *state);
    void (*tick)(struct io_worker *w, void *state);     /* every tick, before connections' */
    void (*loop_end)(struct io_worker *w, void *state); /* end of every loop iteration */
    unsigned id;                                        /* index in w->mod, set by io */
};
#define IO_MAX_MODULES 4

struct io_listener {
    int fd; /* this worker's SO_REUSEPORT socket, -1 when closed */
    const struct conf_listener *cf;
    const struct io_conn_ops *ops; /* what an accepted connection becomes */
    struct ssl_ctx_st *tls;        /* the default context of a TLS listener, else NULL */
    bool accepting;                /* a multishot accept is armed */
    bool full;                     /* stopped accepting: no free slot or file index */
};

/* A size class of connection objects: a free list, refilled a chunk at a time. */
struct io_pool {
    uint32_t size;
    void *free; /* singly linked through the first word of each free object */
    void **chunks;
    uint32_t nchunks, cap;
};
/* Size classes of 8 bytes, objects up to 1 KiB: an idle HTTP client (104 bytes) takes no
 * more than it needs, times every idle connection. */
#define IO_POOL_ALIGN 8
#define IO_NPOOLS 128

struct io_worker {
    int id;
    struct lb_runtime *rt;
    struct io_uring ring;
    bool ring_ok;

    /* Provided buffers: one group, nbufs buffers of buf_size bytes. */
    struct io_uring_buf_ring *br;
    char *buf_base;
    uint32_t nbufs, buf_size, br_mask;
    uint32_t bufs_free;  /* buffers the kernel can still hand out */
    uint32_t bufs_added; /* buffers put in the ring so far (it grows on demand) */
    uint32_t br_pending; /* buffers added since the last advance */
    uint16_t *buf_next;  /* per buffer: next in its queue */
    uint16_t *buf_off;   /* per buffer: bytes already sent */
    uint16_t *buf_len;   /* per buffer: bytes received */
    /* Plaintext buffers of TLS streams: ids nbufs.. nbufs + IO_PLAIN_MAX - 1 in the same
     * queues, buf_size bytes each, malloc'd on first use and never handed to the kernel. */
    char **plain;
    uint16_t *plain_free; /* ids free to take, a stack */
    uint32_t nplain_free;
    uint32_t plain_held; /* free ids whose memory is kept for reuse */
    void *tls_chunks;    /* free TLS output chunks (lb/io/tls.c) */
    uint32_t ntls_chunks;

    /* Connection slots: slot -> object, and each slot's generation. */
    struct io_conn **slots;
    uint32_t *slot_gen;
    uint32_t nconns;
    uint32_t nfiles; /* fixed-file table size: accepted and connected sockets alike */
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t starved_head; /* UINT32_MAX when empty */
    uint32_t fdwait_head;  /* connections waiting for a file slot, oldest first */
    uint32_t fdwait_tail;
    struct io_pool pools[IO_NPOOLS];

    struct io_listener *ls;
    uint32_t nls;
    struct cl_cluster_wstate *cws; /* per cluster */
    void *mod[IO_MAX_MODULES];     /* per-module state (struct io_module) */

    uint64_t now_ms;
    uint64_t next_tick_ms;
    bool stopping;
    uint64_t stop_deadline_ms;
    uint64_t stale_cqes; /* completions for recycled slots: should stay 0 */
    uint64_t accepted, rejected;
    uint64_t shed_log_ms;          /* the last "refused"/"paused" warning: at most one a second */
    uint32_t shed_quiet;           /* refusals and pauses since then, said in the next warning */
    _Atomic uint32_t conns_open;   /* slots in use (nconns - nfree), for the control thread */
    uint32_t files_open;           /* fixed-file entries holding a socket of ours */
    _Atomic uint32_t bufs_in_use;  /* provided and plaintext buffers lb holds (each tick) */
    _Atomic uint32_t files_in_use; /* files_open, published each tick */
    /* The ring's work, counted for the benchmarks' per-request accounting: SQEs prepared,
     * CQEs reaped, io_uring_enter calls (waits and submits of a full SQ). Plain counters,
     * published each tick in ring_pub (sqes, cqes, enters). */
    uint64_t ring_sqes, ring_cqes, ring_enters;
    _Atomic uint64_t ring_pub[3];
};

/* user_data layout: | op:8 | gen:24 | slot:32 |; gen changes each time a slot is reused. */
static inline uint64_t io_ud(enum io_op op, uint32_t gen, uint32_t slot)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}
static inline enum io_op io_ud_kind(uint64_t ud)
{
    return (enum io_op)(ud >> 56);
}
static inline uint32_t io_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & 0xffffff;
}
static inline uint32_t io_ud_slot(uint64_t ud)
{
    return (uint32_t)ud;
}

/* The stream @idx of @c (by its kind's layout). */
static inline struct io_stream *io_conn_stream(struct io_conn *c, unsigned idx)
{
    return (struct io_stream *)((char *)c + c->ops->stream_off[idx]);
}

/* Registers a protocol's per-worker state (startup, before any worker is made). */
void io_module_register(struct io_module *m);
static inline void *io_mod(const struct io_worker *w, const struct io_module *m)
{
    return w->mod[m->id];
}

/* The high-water mark for a stream's queue: @high bytes normally; while the worker's ring
 * is short of buffers (under a quarter left to hand out, growth included), one buffer's
 * worth. Slow readers then hold a buffer or two each instead of @high, and the ring keeps
 * buffers for connections that have nothing queued: hundreds of clients reading a byte a
 * second cannot starve everyone else. */
static inline bool io_ring_short(const struct io_worker *w)
{
    return w->bufs_free + (w->nbufs - w->bufs_added) < w->nbufs / 4;
}
static inline uint32_t io_high_water(const struct io_worker *w, uint32_t high)
{
    return io_ring_short(w) ? w->buf_size : high;
}

/* An SQE for @op on connection @c (NULL: not tied to a connection, slot = @slot).
 * Submits to make room when the SQ is full; never returns NULL. */
struct io_uring_sqe *io_sqe(struct io_worker *w, enum io_op op, struct io_conn *c, uint32_t slot);

/* Gives buffer @bid back to the kernel (made visible at the end of the loop iteration). */
void io_buf_put(struct io_worker *w, uint16_t bid);
static inline char *io_buf_addr(const struct io_worker *w, uint16_t bid)
{
    if (bid >= w->nbufs)
        return w->plain[bid - w->nbufs];
    return w->buf_base + (size_t)bid * w->buf_size;
}

#define IO_PLAIN_MAX 8192
/* A plaintext buffer (buf_size bytes) for a TLS stream's queue, or IO_NOBUF when none. */
uint16_t io_plain_get(struct io_worker *w);

/* Takes a free slot with a zeroed object of kind @ops (NULL when none): state OPEN, its
 * streams empty and closed. */
struct io_conn *io_conn_alloc(struct io_worker *w, const struct io_conn_ops *ops);

/* Moving a connection to another object (a compact form while it rests, the full one when
 * it works again): io_conn_move_begin returns a zeroed object of kind @ops holding @c's
 * io_conn part (slot, generation, in-flight count, list links; its own ops), NULL when
 * none can be had. The kind copies the rest of its state (its streams included) from @c,
 * then io_conn_move puts @to in @c's slot and gives @c back to its pool without its
 * on_free: whatever @c held now belongs to @to. Completions find @to by slot and
 * generation; nothing may keep a pointer to @c. */
struct io_conn *io_conn_move_begin(struct io_worker *w, struct io_conn *c,
                                   const struct io_conn_ops *ops);
void io_conn_move(struct io_worker *w, struct io_conn *c, struct io_conn *to);

/* The open connection in @slot with generation @gen, or NULL (freed, reused, closing). */
struct io_conn *io_conn_get(struct io_worker *w, uint32_t slot, uint32_t gen);

/* Starts tearing @c down: its kind's on_close, then cancels what is in flight on its
 * streams and returns their queued buffers. Its sockets are closed and the slot freed once
 * the last completion arrives. */
void io_conn_close(struct io_worker *w, struct io_conn *c, const char *why);

/* Connects stream @s of @c to @a: a socket in a kernel-chosen fixed-file slot, then
 * TCP_NODELAY, connect and a link timeout of @timeout_ms in one chain. @cx holds what the
 * kernel reads at submission. The kind's on_connect tells the result. */
void io_conn_connect(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                     struct io_connect *cx, const struct conf_addr *a, uint64_t timeout_ms);

/* Asks the kernel for the address of the client on stream @s into @peer (the kind's
 * on_peername follows); only when rt->has_peername. */
void io_conn_ask_peername(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                          union io_peer *peer, const struct conf_listener *lcf);

/* The hash of a client address (client_ip keys); 0 when it is unknown. */
uint64_t io_peer_hash(const union io_peer *p);

/* Queues @c until a fixed-file entry comes free (its kind's on_fd_ready is called then);
 * io_fdwait_unlink takes it off. */
void io_fdwait_push(struct io_worker *w, struct io_conn *c);
void io_fdwait_unlink(struct io_worker *w, struct io_conn *c);
/* Wakes the oldest waiter, if any: an entry came free, or something it can use instead. */
void io_fdwait_wake(struct io_worker *w);

/* Closes the socket of @s in its fixed-file slot (the stream is no longer open). Only once
 * nothing is in flight on it, or after a cancel of everything that is. */
void io_stream_close_file(struct io_worker *w, struct io_conn *c, struct io_stream *s);

/* Puts @c on the list of connections whose recv ended with ENOBUFS; their starved streams
 * are re-armed once buffers come back. */
void io_worker_starve(struct io_worker *w, struct io_conn *c);

/* Worker thread body: @arg is the struct io_worker. */
void *io_worker_main(void *arg);

/* Allocates a worker's slots and buffers (startup, any thread). 0 or -errno. */
int io_worker_init(struct io_worker *w, struct lb_runtime *rt, int id, struct lb_err *err);
void io_worker_destroy(struct io_worker *w);

#endif
