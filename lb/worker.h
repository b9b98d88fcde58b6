/*
 * Workers: one thread, one io_uring ring, its own listening sockets, provided-buffer ring,
 * fixed-file table and connection slots. Everything here is touched by its own thread only,
 * except the stop flag and the shared server table (lb/cluster.h).
 *
 * Life of an operation: a handler prepares SQEs through lb_sqe(), which tags them with
 * lb_ud(kind, gen, slot) and counts them in the connection's `inflight`. The loop submits
 * once per iteration, then dispatches each CQE through a table indexed by kind. A CQE
 * whose generation is not its slot's is stale and dropped. A slot is freed only when its
 * inflight count is back to zero, so a recycled slot never receives a completion meant for
 * the previous connection.
 */
#ifndef LB_WORKER_H
#define LB_WORKER_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/cluster.h"
#include "lb/http1.h"

struct lb_runtime;
struct snap_set;
struct lb_cache;
struct lb_cache_entry;
struct lb_cache_fill;

enum lb_op {
    LB_OP_NONE,
    LB_OP_ACCEPT,      /* slot = listener index */
    LB_OP_PEERNAME,    /* SO_PEERNAME through uring_cmd */
    LB_OP_RECV_CLI,    /* multishot recv on the client socket */
    LB_OP_RECV_SRV,    /* multishot recv on the backend socket */
    LB_OP_SEND_CLI,    /* send to the client (data received from the backend) */
    LB_OP_SEND_SRV,    /* send to the backend (data received from the client) */
    LB_OP_SOCKET,      /* backend socket into its fixed slot */
    LB_OP_CONNECT,     /* backend connect, linked to a timeout */
    LB_OP_AUX,         /* setsockopt, link timeout, shutdown, cancel, close: counted only */
    LB_OP_ORPHAN,      /* close of an accepted socket we had no slot for */
    LB_OP__COUNT,
};

#define LB_NOBUF 0xffffu

/* One socket of a connection, and the data received from it that waits to go to the
 * other socket (a linked list of provided buffers, oldest first). */
struct lb_side {
    int32_t fidx;    /* fixed-file index, -1 when none */
    uint16_t qhead;  /* buffer id, LB_NOBUF when empty */
    uint16_t qtail;
    uint32_t qbytes; /* bytes queued */
    uint32_t flags;  /* LB_SIDE_F_* */
};

#define LB_SIDE_F_OPEN 0x0001     /* fidx holds a socket */
#define LB_SIDE_F_RECV 0x0002     /* a multishot recv is armed */
#define LB_SIDE_F_PAUSED 0x0004   /* receiving stopped: the other side is not draining */
#define LB_SIDE_F_EOF 0x0008      /* the peer sent FIN */
#define LB_SIDE_F_SENDING 0x0010  /* a send of this side's queue is in flight */
#define LB_SIDE_F_SHUT 0x0020     /* we sent FIN on this socket */
#define LB_SIDE_F_STARVED 0x0040  /* recv ended with ENOBUFS; waiting for free buffers */
#define LB_SIDE_F_CONNECTED 0x0080 /* backend: connect completed */

/* What a connection slot holds. */
enum lb_conn_kind {
    LB_CK_L4,   /* tcp listener: client socket (cli) and its backend socket (srv) */
    LB_CK_HCLI, /* http listener: a client socket (cli); its backend is another slot */
    LB_CK_HSRV, /* http backend connection (srv): busy with one client's request, or idle
                   in its server's pool */
};

/* L7 state of a connection slot (LB_CK_HCLI or LB_CK_HSRV); lb/http.c owns it. */
struct lb_hstate {
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
    uint32_t flags;      /* LB_H_F_* */
    struct lb_http1_body body; /* client: the request body; backend: the response body */
    uint64_t key;        /* client: the request's hash key (hash balancers) */
    struct snap_set *snap; /* client: the snapshot set a static answer is sent from (a ref) */
    struct lb_cache_entry *centry; /* client: the cache entry an answer is sent from (a ref) */
    struct lb_cache_fill *fill;    /* client: the cache fill this request's answer feeds */
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
    uint8_t phase;       /* enum lb_hphase (lb/http.c) */
    uint8_t method;      /* enum lb_http1_method */
    uint8_t retries;
};

enum lb_conn_state {
    LB_CONN_FREE,
    LB_CONN_PEERNAME,   /* accepted, learning the client address */
    LB_CONN_CONNECTING, /* backend connect in flight */
    LB_CONN_OPEN,       /* both sides connected, bytes flowing */
    LB_CONN_CLOSING,    /* cancelling and closing; freed when inflight == 0 */
};

struct lb_conn {
    uint32_t gen;        /* 24 bits used; bumped each time the slot is freed */
    uint8_t state;       /* enum lb_conn_state */
    uint8_t kind;        /* enum lb_conn_kind */
    uint8_t listener;    /* index into the worker's listeners */
    uint8_t attempts;    /* connect attempts so far */
    uint8_t counted;     /* server->active was incremented */
    uint8_t closed_fds;  /* teardown closed sockets: freeing the slot frees table entries */
    uint16_t inflight;   /* SQEs submitted and not yet completed */
    uint16_t cluster;
    int32_t server;      /* index in cluster, -1 none */
    uint32_t next_starved; /* intrusive list of connections waiting for buffers */
    uint32_t fdwait_prev;  /* L7 client waiting for a free file slot (lb/http.c) */
    uint32_t fdwait_next;
    uint64_t last_ms;    /* last activity, for the idle timeout */
    struct lb_side cli, srv;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    struct lb_exclude tried;
    struct __kernel_timespec connect_ts; /* read by the kernel when the connect is submitted */
    const struct conf_addr *connect_addr; /* where lb_conn_socket_done() connects */
    struct lb_hstate h;
};

struct lb_wlistener {
    int fd;                          /* this worker's SO_REUSEPORT socket, -1 when closed */
    const struct conf_listener *cf;
    bool accepting;                  /* a multishot accept is armed */
    bool full;                       /* stopped accepting: no free slot or file index */
};

struct lb_worker {
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
    struct lb_conn *conns;
    uint32_t nconns;
    uint32_t nfiles;        /* fixed-file table size: accepted and backend sockets alike */
    uint32_t *free_slots;
    uint32_t nfree;
    uint32_t starved_head;  /* UINT32_MAX when empty */

    struct lb_wlistener *ls;
    uint32_t nls;
    struct lb_cluster_wstate *cws; /* per cluster */

    uint64_t now_ms;
    uint64_t next_tick_ms;
    bool stopping;
    uint64_t stop_deadline_ms;
    uint64_t stale_cqes;     /* completions for recycled slots: should stay 0 */

    /* L7 (lb/http.c): header buffers, idle backend pools, access log. */
    char **hbuf_free;        /* free list of header buffers, allocated on first need */
    uint32_t hbuf_nfree, hbuf_total, hbuf_size;
    uint32_t **pool_head;    /* [cluster][server]: idle backend slot, UINT32_MAX when none */
    struct snap_set **snaps; /* [static set]: the worker's reference to the current set */
    struct lb_cache *cache;  /* L1 response cache of the routes with cache:, NULL when none */
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
static inline uint64_t lb_ud(enum lb_op kind, uint32_t gen, uint32_t slot)
{
    return (uint64_t)kind << 56 | (uint64_t)(gen & 0xffffff) << 32 | slot;
}
static inline enum lb_op lb_ud_kind(uint64_t ud)
{
    return (enum lb_op)(ud >> 56);
}
static inline uint32_t lb_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & 0xffffff;
}
static inline uint32_t lb_ud_slot(uint64_t ud)
{
    return (uint32_t)ud;
}

static inline uint32_t lb_conn_slot(const struct lb_worker *w, const struct lb_conn *c)
{
    return (uint32_t)(c - w->conns);
}

/* An SQE for @kind on connection @c (NULL: not tied to a connection, slot = @slot).
 * Submits to make room when the SQ is full; never returns NULL. */
struct io_uring_sqe *lb_sqe(struct lb_worker *w, enum lb_op kind, struct lb_conn *c,
                            uint32_t slot);

/* Gives buffer @bid back to the kernel (made visible at the end of the loop iteration). */
void lb_buf_put(struct lb_worker *w, uint16_t bid);
static inline char *lb_buf_addr(const struct lb_worker *w, uint16_t bid)
{
    return w->buf_base + (size_t)bid * w->buf_size;
}

/* Commits @c to server @idx of its cluster: remembered as tried (a retry goes elsewhere),
 * counted as an attempt, its active count taken (released by lb_conn_close or the caller).
 * Returns the server. */
static inline struct lb_server *lb_conn_commit(struct lb_worker *w, struct lb_conn *c, int idx);

/* Takes a free slot (NULL when none): zeroed, its generation kept. */
struct lb_conn *lb_conn_alloc(struct lb_worker *w);

/* Puts @c on the list of connections whose recv ended with ENOBUFS; they are re-armed
 * (lb_tcp_on_starved) once buffers come back. */
void lb_worker_starve(struct lb_worker *w, struct lb_conn *c);

/* Starts tearing @c down: cancels what is in flight, closes both sockets, returns queued
 * buffers. The slot is freed once the last completion arrives. */
void lb_conn_close(struct lb_worker *w, struct lb_conn *c, const char *why);

/* Worker thread body: @arg is the struct lb_worker. */
void *lb_worker_main(void *arg);

/* Allocates a worker's slots and buffers (startup, any thread). 0 or -errno. */
int lb_worker_init(struct lb_worker *w, struct lb_runtime *rt, int id, struct lb_err *err);
void lb_worker_destroy(struct lb_worker *w);

/* Starts a backend connection for @c's srv side: a socket in a kernel-chosen fixed-file slot
 * (LB_OP_SOCKET completes with it), then lb_conn_socket_done() chains TCP_NODELAY, connect
 * and a link timeout; the LB_OP_CONNECT completion tells the result. */
void lb_conn_connect(struct lb_worker *w, struct lb_conn *c, const struct conf_addr *a,
                     uint64_t timeout_ms);
/* Asks the kernel for the client's address into c->peer (LB_OP_PEERNAME completes); only
 * when rt->has_peername. */
void lb_conn_ask_peername(struct lb_worker *w, struct lb_conn *c, const struct conf_listener *lcf);
/* The hash of the client's address (client_ip keys); 0 when it is unknown. */
uint64_t lb_conn_client_hash(const struct lb_conn *c);
/* The LB_OP_SOCKET completion: 0 when the connect is on its way, or @res (< 0) when no
 * socket could be made (the caller treats it as a failed connect). */
int lb_conn_socket_done(struct lb_worker *w, struct lb_conn *c, int res);

/* L7 (lb/http.c). */
int lb_http_worker_init(struct lb_worker *w, struct lb_err *err);
void lb_http_worker_destroy(struct lb_worker *w);
void lb_http_accepted(struct lb_worker *w, struct lb_conn *c);
void lb_http_on_cqe(struct lb_worker *w, struct lb_conn *c, enum lb_op kind,
                    const struct io_uring_cqe *cqe);
void lb_http_on_starved(struct lb_worker *w, struct lb_conn *c);
void lb_http_tick(struct lb_worker *w, struct lb_conn *c);
/* lb_conn_close calls this first for L7 slots: detach from the peer, leave the pool. */
void lb_http_on_close(struct lb_worker *w, struct lb_conn *c);
/* Releases what an L7 slot holds once it is free (header buffer). */
void lb_http_on_free(struct lb_worker *w, struct lb_conn *c);
/* A slot's sockets were closed: a request waiting for a file slot may go now. */
void lb_http_fd_freed(struct lb_worker *w);
/* Once per worker tick: cache expiry. */
void lb_http_worker_tick(struct lb_worker *w);
/* Writes buffered access log lines (end of each loop iteration). */
void lb_http_flush_log(struct lb_worker *w);

/* L4 (lb/tcp.c). */
void lb_tcp_accepted(struct lb_worker *w, struct lb_conn *c);
void lb_tcp_on_cqe(struct lb_worker *w, struct lb_conn *c, enum lb_op kind,
                   const struct io_uring_cqe *cqe);
void lb_tcp_on_starved(struct lb_worker *w, struct lb_conn *c);
void lb_tcp_tick(struct lb_worker *w, struct lb_conn *c);

#include "lb/runtime.h"

static inline struct lb_server *lb_conn_commit(struct lb_worker *w, struct lb_conn *c, int idx)
{
    struct lb_server *srv = &w->rt->clusters[c->cluster].servers[idx];
    c->server = idx;
    if (c->tried.n < sizeof(c->tried.idx) / sizeof(c->tried.idx[0]))
        c->tried.idx[c->tried.n++] = (uint32_t)idx;
    c->attempts++;
    lb_server_acquire(srv);
    c->counted = 1;
    return srv;
}

#endif
