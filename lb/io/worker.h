/*
 * Workers: one thread, one io_uring ring, its own listening sockets, provided-buffer ring,
 * fixed-file table and connection slots. Everything here is touched by its own thread only,
 * except the stop flag and the shared server table (lb/cluster/cluster.h).
 *
 * Life of an operation: a handler prepares SQEs through io_sqe(), which tags them with
 * io_ud(kind, gen, slot) and counts them in the connection's `inflight`. The loop submits
 * once per iteration, then dispatches each CQE through a table indexed by kind. A CQE
 * whose generation is not its slot's is stale and dropped. A slot is freed only when its
 * inflight count is back to zero, so a recycled slot never receives a completion meant for
 * the previous connection.
 */
#ifndef IO_WORKER_H
#define IO_WORKER_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/cluster/cluster.h"
#include "lb/http/h1.h"

struct lb_runtime;
struct snap_set;
struct cache;
struct cache_entry;
struct cache_fill;

enum io_op {
    IO_OP_NONE,
    IO_OP_ACCEPT,      /* slot = listener index */
    IO_OP_PEERNAME,    /* SO_PEERNAME through uring_cmd */
    IO_OP_RECV_CLI,    /* multishot recv on the client socket */
    IO_OP_RECV_SRV,    /* multishot recv on the backend socket */
    IO_OP_SEND_CLI,    /* send to the client (data received from the backend) */
    IO_OP_SEND_SRV,    /* send to the backend (data received from the client) */
    IO_OP_SOCKET,      /* backend socket into its fixed slot */
    IO_OP_CONNECT,     /* backend connect, linked to a timeout */
    IO_OP_AUX,         /* setsockopt, link timeout, shutdown, cancel, close: counted only */
    IO_OP_ORPHAN,      /* close of an accepted socket we had no slot for */
    IO_OP__COUNT,
};

#define IO_NOBUF 0xffffu

/* One socket of a connection, and the data received from it that waits to go to the
 * other socket (a linked list of provided buffers, oldest first). */
struct io_side {
    int32_t fidx;    /* fixed-file index, -1 when none */
    uint16_t qhead;  /* buffer id, IO_NOBUF when empty */
    uint16_t qtail;
    uint32_t qbytes; /* bytes queued */
    uint32_t flags;  /* IO_SIDE_F_* */
};

#define IO_SIDE_F_OPEN 0x0001     /* fidx holds a socket */
#define IO_SIDE_F_RECV 0x0002     /* a multishot recv is armed */
#define IO_SIDE_F_PAUSED 0x0004   /* receiving stopped: the other side is not draining */
#define IO_SIDE_F_EOF 0x0008      /* the peer sent FIN */
#define IO_SIDE_F_SENDING 0x0010  /* a send of this side's queue is in flight */
#define IO_SIDE_F_SHUT 0x0020     /* we sent FIN on this socket */
#define IO_SIDE_F_STARVED 0x0040  /* recv ended with ENOBUFS; waiting for free buffers */
#define IO_SIDE_F_CONNECTED 0x0080 /* backend: connect completed */

/* What a connection slot holds. */
enum io_conn_kind {
    IO_CK_L4,   /* tcp listener: client socket (cli) and its backend socket (srv) */
    IO_CK_HCLI, /* http listener: a client socket (cli); its backend is another slot */
    IO_CK_HSRV, /* http backend connection (srv): busy with one client's request, or idle
                   in its server's pool */
};

/* L7 state of a connection slot (IO_CK_HCLI or IO_CK_HSRV); lb/http/proxy.c owns it. */
struct http_state {
    char *hbuf;          /* pool buffer while a header is parsed, rewritten and sent */
    uint32_t hlen;       /* bytes of the incoming header copied into hbuf */
    uint32_t scanned;    /* the parser's resume point */
    uint32_t out_off;    /* the outgoing header (or a local reply) in hbuf */
    uint32_t out_len;
    uint32_t out_sent;
    uint32_t peer;       /* the other slot (client <-> backend), UINT32_MAX when none */
    uint32_t peer_gen;
    uint32_t pool_prev;  /* backend: idle pool links, UINT32_MAX at the ends */
    uint32_t pool_next;
    uint32_t qvalid;     /* bytes at the head of the queue checked as part of this message */
    uint32_t flags;      /* HTTP_F_* */
    struct http_body body; /* client: the request body; backend: the response body */
    uint64_t key;        /* client: the request's hash key (hash balancers) */
    struct snap_set *snap; /* client: the snapshot set a static answer is sent from (a ref) */
    struct cache_entry *centry; /* client: the cache entry an answer is sent from (a ref) */
    struct cache_fill *fill;    /* client: the cache fill this request's answer feeds */
    const char *xp[2];   /* client: a static answer, in up to two pieces (header, body) */
    uint32_t xl[2];
    uint32_t target_off; /* client: the request-target in hbuf, for the access log */
    uint32_t target_len;
    uint64_t t_start_ms; /* client: first byte of the request; backend: request started */
    uint64_t t_resp_ms;  /* client: response header from the backend */
    uint64_t bytes_in;   /* client: request bytes received; */
    uint64_t bytes_out;  /*          response bytes sent (for the access log) */
    uint16_t route;
    uint16_t status;     /* response status sent to the client */
    uint8_t phase;       /* enum http_phase (lb/http/proxy.c) */
    uint8_t method;      /* enum http_method */
    uint8_t retries;
};

enum io_conn_state {
    IO_CONN_FREE,
    IO_CONN_PEERNAME,   /* accepted, learning the client address */
    IO_CONN_CONNECTING, /* backend connect in flight */
    IO_CONN_OPEN,       /* both sides connected, bytes flowing */
    IO_CONN_CLOSING,    /* cancelling and closing; freed when inflight == 0 */
};

struct io_conn {
    uint32_t gen;        /* 24 bits used; bumped each time the slot is freed */
    uint8_t state;       /* enum io_conn_state */
    uint8_t kind;        /* enum io_conn_kind */
    uint8_t listener;    /* index into the worker's listeners */
    uint8_t attempts;    /* connect attempts so far */
    uint8_t counted;     /* server->active was incremented */
    uint8_t closed_fds;  /* teardown closed sockets: freeing the slot frees table entries */
    uint16_t inflight;   /* SQEs submitted and not yet completed */
    uint16_t cluster;
    int32_t server;      /* index in cluster, -1 none */
    uint32_t next_starved; /* intrusive list of connections waiting for buffers */
    uint32_t fdwait_prev;  /* L7 client waiting for a free file slot (lb/http/proxy.c) */
    uint32_t fdwait_next;
    uint64_t last_ms;    /* last activity, for the idle timeout */
    struct io_side cli, srv;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    struct cl_exclude tried;
    struct __kernel_timespec connect_ts; /* read by the kernel when the connect is submitted */
    const struct conf_addr *connect_addr; /* where io_conn_socket_done() connects */
    struct http_state h;
};

struct io_listener {
    int fd;                          /* this worker's SO_REUSEPORT socket, -1 when closed */
    const struct conf_listener *cf;
    bool accepting;                  /* a multishot accept is armed */
    bool full;                       /* stopped accepting: no free slot or file index */
};

struct io_worker {
    int id;
    struct lb_runtime *rt;
    struct io_uring ring;
    bool ring_ok;

    /* Provided buffers: one group, nbufs buffers of buf_size bytes. */
    struct io_uring_buf_ring *br;
    char *buf_base;
    uint32_t nbufs, buf_size, br_mask;
    uint32_t bufs_free;     /* buffers the kernel can still hand out */
    uint32_t bufs_added;    /* buffers put in the ring so far (it grows on demand) */
    uint32_t br_pending;    /* buffers added since the last advance */
    uint16_t *buf_next;     /* per buffer: next in its queue */
    uint16_t *buf_off;      /* per buffer: bytes already sent */
    uint16_t *buf_len;      /* per buffer: bytes received */

    /* Connection slots. */
    struct io_conn *conns;
    uint32_t nconns;
    uint32_t nfiles;        /* fixed-file table size: accepted and backend sockets alike */
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t starved_head;  /* UINT32_MAX when empty */

    struct io_listener *ls;
    uint32_t nls;
    struct cl_cluster_wstate *cws; /* per cluster */

    uint64_t now_ms;
    uint64_t next_tick_ms;
    bool stopping;
    uint64_t stop_deadline_ms;
    uint64_t stale_cqes;     /* completions for recycled slots: should stay 0 */

    /* L7 (lb/http/proxy.c): header buffers, idle backend pools, access log. */
    char **hbuf_free;        /* free list of header buffers, allocated on first need */
    uint32_t hbuf_nfree, hbuf_total, hbuf_size;
    uint32_t **pool_head;    /* [cluster][server]: idle backend slot, UINT32_MAX when none */
    struct snap_set **snaps; /* [static set]: the worker's reference to the current set */
    struct cache *cache;  /* L1 response cache of the routes with cache:, NULL when none */
    uint64_t *snap_gen;      /* [static set]: the slot generation it was taken at */
    uint32_t fdwait_head;    /* L7 clients waiting for a file slot, oldest first */
    uint32_t fdwait_tail;
    char *alog;              /* access log lines waiting for the end of the iteration */
    uint32_t alog_len;
    int alog_fd;             /* -1: access log off */
    uint64_t accepted, rejected;
    _Atomic uint32_t conns_open; /* slots in use (nconns - nfree), for the admin thread */
};

/* user_data layout: | kind:8 | gen:24 | slot:32 |; gen changes each time a slot is reused. */
static inline uint64_t io_ud(enum io_op kind, uint32_t gen, uint32_t slot)
{
    return (uint64_t)kind << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
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

static inline uint32_t io_conn_slot(const struct io_worker *w, const struct io_conn *c)
{
    return (uint32_t)(c - w->conns);
}

/* An SQE for @kind on connection @c (NULL: not tied to a connection, slot = @slot).
 * Submits to make room when the SQ is full; never returns NULL. */
struct io_uring_sqe *io_sqe(struct io_worker *w, enum io_op kind, struct io_conn *c,
                            uint32_t slot);

/* Gives buffer @bid back to the kernel (made visible at the end of the loop iteration). */
void io_buf_put(struct io_worker *w, uint16_t bid);
static inline char *io_buf_addr(const struct io_worker *w, uint16_t bid)
{
    return w->buf_base + (size_t)bid * w->buf_size;
}

/* Commits @c to server @idx of its cluster: remembered as tried (a retry goes elsewhere),
 * counted as an attempt, its active count taken (released by io_conn_close or the caller).
 * Returns the server. */
static inline struct cl_server *io_conn_commit(struct io_worker *w, struct io_conn *c, int idx);

/* Takes a free slot (NULL when none): zeroed, its generation kept. */
struct io_conn *io_conn_alloc(struct io_worker *w);

/* Puts @c on the list of connections whose recv ended with ENOBUFS; they are re-armed
 * (l4_on_starved) once buffers come back. */
void io_worker_starve(struct io_worker *w, struct io_conn *c);

/* Starts tearing @c down: cancels what is in flight, closes both sockets, returns queued
 * buffers. The slot is freed once the last completion arrives. */
void io_conn_close(struct io_worker *w, struct io_conn *c, const char *why);

/* Worker thread body: @arg is the struct io_worker. */
void *io_worker_main(void *arg);

/* Allocates a worker's slots and buffers (startup, any thread). 0 or -errno. */
int io_worker_init(struct io_worker *w, struct lb_runtime *rt, int id, struct lb_err *err);
void io_worker_destroy(struct io_worker *w);

/* Starts a backend connection for @c's srv side: a socket in a kernel-chosen fixed-file slot
 * (IO_OP_SOCKET completes with it), then io_conn_socket_done() chains TCP_NODELAY, connect
 * and a link timeout; the IO_OP_CONNECT completion tells the result. */
void io_conn_connect(struct io_worker *w, struct io_conn *c, const struct conf_addr *a,
                     uint64_t timeout_ms);
/* Asks the kernel for the client's address into c->peer (IO_OP_PEERNAME completes); only
 * when rt->has_peername. */
void io_conn_ask_peername(struct io_worker *w, struct io_conn *c, const struct conf_listener *lcf);
/* The hash of the client's address (client_ip keys); 0 when it is unknown. */
uint64_t io_conn_client_hash(const struct io_conn *c);
/* The IO_OP_SOCKET completion: 0 when the connect is on its way, or @res (< 0) when no
 * socket could be made (the caller treats it as a failed connect). */
int io_conn_socket_done(struct io_worker *w, struct io_conn *c, int res);

/* L7 (lb/http/proxy.c). */
int http_worker_init(struct io_worker *w, struct lb_err *err);
void http_worker_destroy(struct io_worker *w);
void http_accepted(struct io_worker *w, struct io_conn *c);
void http_on_cqe(struct io_worker *w, struct io_conn *c, enum io_op kind,
                    const struct io_uring_cqe *cqe);
void http_on_starved(struct io_worker *w, struct io_conn *c);
void http_tick(struct io_worker *w, struct io_conn *c);
/* io_conn_close calls this first for L7 slots: detach from the peer, leave the pool. */
void http_on_close(struct io_worker *w, struct io_conn *c);
/* Releases what an L7 slot holds once it is free (header buffer). */
void http_on_free(struct io_worker *w, struct io_conn *c);
/* A slot's sockets were closed: a request waiting for a file slot may go now. */
void http_fd_freed(struct io_worker *w);
/* Once per worker tick: cache expiry. */
void http_worker_tick(struct io_worker *w);
/* Writes buffered access log lines (end of each loop iteration). */
void http_flush_log(struct io_worker *w);

/* L4 (lb/l4/tcp.c). */
void l4_accepted(struct io_worker *w, struct io_conn *c);
void l4_on_cqe(struct io_worker *w, struct io_conn *c, enum io_op kind,
                   const struct io_uring_cqe *cqe);
void l4_on_starved(struct io_worker *w, struct io_conn *c);
void l4_tick(struct io_worker *w, struct io_conn *c);

#include "lb/core/runtime.h"

static inline struct cl_server *io_conn_commit(struct io_worker *w, struct io_conn *c, int idx)
{
    struct cl_server *srv = &w->rt->clusters[c->cluster].servers[idx];
    c->server = idx;
    if (c->tried.n < sizeof(c->tried.idx) / sizeof(c->tried.idx[0]))
        c->tried.idx[c->tried.n++] = (uint32_t)idx;
    c->attempts++;
    cl_server_acquire(srv);
    c->counted = 1;
    return srv;
}

#endif
