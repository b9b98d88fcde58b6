/*
 * Connection slots (lb/io/worker.h): objects from per-size pools, slot generations, the
 * two-phase teardown, waiting for file slots and buffers, and the socket operations every
 * kind shares (connect chain, peer address).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "conf/hash.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/io/internal.h"
#include "lb/io/tls.h"
#include "lb/io/worker.h"
#include "lb/metrics/stats.h"

#define NOT_STARVED 0xfffffffeu
#define LIST_END 0xffffffffu
#define POOL_CHUNK 64

#ifndef SO_PEERNAME
#define SO_PEERNAME 28
#endif
/* uring_cmd socket operations (linux/io_uring.h, kernel 6.7); liburing 2.3 predates them. */
#define IO_SOCKET_URING_OP_GETSOCKOPT 2
#define IO_SOCKET_URING_OP_SETSOCKOPT 3

/* ---- object pools ---- */

static void *pool_get(struct io_pool *p)
{
    if (!p->free) {
        if (p->nchunks == p->cap) {
            uint32_t cap = p->cap ? p->cap * 2 : 8;
            void **n = realloc(p->chunks, cap * sizeof(*n));
            if (!n)
                return NULL;
            p->chunks = n;
            p->cap = cap;
        }
        char *chunk = malloc((size_t)p->size * POOL_CHUNK);
        if (!chunk)
            return NULL;
        p->chunks[p->nchunks++] = chunk;
        for (int i = POOL_CHUNK - 1; i >= 0; i--) {
            void *o = chunk + (size_t)i * p->size;
            *(void **)o = p->free;
            p->free = o;
        }
    }
    void *o = p->free;
    p->free = *(void **)o;
    return o;
}

static void pool_put(struct io_pool *p, void *o)
{
    *(void **)o = p->free;
    p->free = o;
}

static struct io_pool *pool_of(struct io_worker *w, uint32_t size)
{
    uint32_t cls = (size + IO_POOL_ALIGN - 1) / IO_POOL_ALIGN;
    if (cls == 0 || cls > IO_NPOOLS)
        return NULL;
    struct io_pool *p = &w->pools[cls - 1];
    p->size = cls * IO_POOL_ALIGN;
    return p;
}

void io_pools_free(struct io_worker *w)
{
    for (int i = 0; i < IO_NPOOLS; i++) {
        struct io_pool *p = &w->pools[i];
        for (uint32_t j = 0; j < p->nchunks; j++)
            free(p->chunks[j]);
        free(p->chunks);
        *p = (struct io_pool){0};
    }
}

/* ---- slots ---- */

static void publish_open(struct io_worker *w)
{
    atomic_store_explicit(&w->conns_open, w->nconns - w->nfree, memory_order_relaxed);
}

struct io_conn *io_conn_alloc(struct io_worker *w, const struct io_conn_ops *ops)
{
    struct io_pool *p = pool_of(w, ops->size);
    if (!w->nfree || !p)
        return NULL;
    struct io_conn *c = pool_get(p);
    if (!c)
        return NULL;
    uint32_t slot = w->free_slots[--w->nfree];
    publish_open(w);
    memset(c, 0, ops->size);
    c->ops = ops;
    c->slot = slot;
    c->gen = w->slot_gen[slot];
    c->state = IO_CONN_OPEN;
    c->next_starved = NOT_STARVED;
    c->fdwait_prev = c->fdwait_next = LIST_END;
    c->last_ms = w->now_ms;
    for (unsigned i = 0; i < ops->nstreams; i++)
        io_stream_init(io_conn_stream(c, i), (uint8_t)i);
    w->slots[slot] = c;
    return c;
}

struct io_conn *io_conn_move_begin(struct io_worker *w, struct io_conn *c,
                                   const struct io_conn_ops *ops)
{
    struct io_pool *p = pool_of(w, ops->size);
    struct io_conn *to = p ? pool_get(p) : NULL;
    if (!to)
        return NULL;
    memset(to, 0, ops->size);
    *to = *c;
    to->ops = ops;
    return to;
}

void io_conn_move(struct io_worker *w, struct io_conn *c, struct io_conn *to)
{
    w->slots[c->slot] = to;
    c->state = IO_CONN_FREE;
    pool_put(pool_of(w, c->ops->size), c);
}

struct io_conn *io_conn_get(struct io_worker *w, uint32_t slot, uint32_t gen)
{
    if (slot >= w->nconns)
        return NULL;
    struct io_conn *c = w->slots[slot];
    if (!c || c->gen != gen || c->state == IO_CONN_CLOSING)
        return NULL;
    return c;
}

/* Takes @c off the list of starved connections. The list is singly linked and short-lived
 * (it exists only while the ring has run dry), so a walk is fine. */
static void starved_unlink(struct io_worker *w, struct io_conn *c)
{
    uint32_t *link = &w->starved_head;
    while (*link != LIST_END && *link != c->slot)
        link = &w->slots[*link]->next_starved;
    if (*link == c->slot)
        *link = c->next_starved;
    c->next_starved = NOT_STARVED;
}

static void conn_free(struct io_worker *w, struct io_conn *c)
{
    /* A connection closed while it waited for buffers must not stay on the list: its slot
     * would be NULL (or someone else's) when the buffers come back. */
    if (c->next_starved != NOT_STARVED)
        starved_unlink(w, c);
    for (unsigned i = 0; i < c->ops->nstreams; i++)
        io_tls_free(w, io_conn_stream(c, i));
    if (c->ops->on_free)
        c->ops->on_free(w, c);
    if ((c->flags & IO_CONN_F_ACCEPTED) && w->rt->lstats)
        atomic_fetch_sub_explicit(&w->rt->lstats[c->listener].active, 1, memory_order_relaxed);
    bool gave_files = c->flags & IO_CONN_F_CLOSED_FDS;
    uint32_t slot = c->slot;
    w->slots[slot] = NULL;
    w->slot_gen[slot] = (w->slot_gen[slot] + 1) & 0xffffff;
    w->free_slots[w->nfree++] = slot;
    c->state = IO_CONN_FREE;
    pool_put(pool_of(w, c->ops->size), c);
    publish_open(w);
    /* Only a slot whose sockets were closed gives table entries back: waking a waiter for
     * any other would have it fail again at once, and again, while the table stays full. */
    if (gave_files)
        io_fdwait_wake(w);
    io_listeners_rearm(w);
}

/* Cancels what is in flight on @s and returns its queued buffers. The socket itself stays in
 * its fixed slot until every operation of the connection has completed (conn_reap): an
 * operation that the kernel punted to a worker thread (shutdown, for one) resolves its fixed
 * file only when it runs, so closing the slot earlier would let it act on whatever socket the
 * next accept put in that slot. */
static void stream_cancel(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    if (s->flags & IO_ST_F_OPEN) {
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_cancel_fd(sqe, s->fidx,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
    }
    io_stream_drop(w, s);
}

void io_stream_close_file(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_close_direct(sqe, (unsigned)s->fidx);
    s->flags &= (uint16_t)~IO_ST_F_OPEN;
    w->files_open--;
}

void io_conn_reap(struct io_worker *w, struct io_conn *c)
{
    bool closing = false;
    for (unsigned i = 0; i < c->ops->nstreams; i++) {
        struct io_stream *s = io_conn_stream(c, i);
        if (!(s->flags & IO_ST_F_OPEN))
            continue;
        io_stream_close_file(w, c, s);
        closing = true;
    }
    if (closing)
        c->flags |= IO_CONN_F_CLOSED_FDS;
    else
        conn_free(w, c);
}

void io_conn_close(struct io_worker *w, struct io_conn *c, const char *why)
{
    if (c->state == IO_CONN_CLOSING || c->state == IO_CONN_FREE)
        return;
    lb_debug("connection closed", "slot=%u kind=%s reason=\"%s\"", c->slot, c->ops->name,
             why ? why : "done");
    c->state = IO_CONN_CLOSING;
    if (c->ops->on_close)
        c->ops->on_close(w, c);
    io_fdwait_unlink(w, c);
    for (unsigned i = 0; i < c->ops->nstreams; i++)
        io_tls_close_notify(w, c, io_conn_stream(c, i));
    for (unsigned i = 0; i < c->ops->nstreams; i++)
        stream_cancel(w, c, io_conn_stream(c, i));
    if (!c->inflight)
        io_conn_reap(w, c);
}

/* ---- waiting for file slots and buffers ---- */

void io_fdwait_push(struct io_worker *w, struct io_conn *c)
{
    if (c->flags & IO_CONN_F_FDWAIT)
        return;
    c->flags |= IO_CONN_F_FDWAIT;
    c->fdwait_next = LIST_END;
    c->fdwait_prev = w->fdwait_tail;
    if (w->fdwait_tail == LIST_END)
        w->fdwait_head = c->slot;
    else
        w->slots[w->fdwait_tail]->fdwait_next = c->slot;
    w->fdwait_tail = c->slot;
}

void io_fdwait_unlink(struct io_worker *w, struct io_conn *c)
{
    if (!(c->flags & IO_CONN_F_FDWAIT))
        return;
    c->flags &= (uint8_t)~IO_CONN_F_FDWAIT;
    if (c->fdwait_prev == LIST_END)
        w->fdwait_head = c->fdwait_next;
    else
        w->slots[c->fdwait_prev]->fdwait_next = c->fdwait_next;
    if (c->fdwait_next == LIST_END)
        w->fdwait_tail = c->fdwait_prev;
    else
        w->slots[c->fdwait_next]->fdwait_prev = c->fdwait_prev;
    c->fdwait_prev = c->fdwait_next = LIST_END;
}

void io_fdwait_wake(struct io_worker *w)
{
    if (w->fdwait_head == LIST_END)
        return;
    struct io_conn *q = w->slots[w->fdwait_head];
    io_fdwait_unlink(w, q);
    q->ops->on_fd_ready(w, q);
}

void io_worker_starve(struct io_worker *w, struct io_conn *c)
{
    if (c->next_starved != NOT_STARVED)
        return;
    c->next_starved = w->starved_head;
    w->starved_head = c->slot;
}

void io_feed_starved(struct io_worker *w)
{
    uint32_t i = w->starved_head;
    w->starved_head = LIST_END;
    while (i != LIST_END) {
        struct io_conn *c = w->slots[i];
        i = c->next_starved;
        c->next_starved = NOT_STARVED;
        if (c->state == IO_CONN_CLOSING)
            continue;
        for (unsigned k = 0; k < c->ops->nstreams; k++) {
            struct io_stream *s = io_conn_stream(c, k);
            if (s->flags & IO_ST_F_STARVED) {
                s->flags &= (uint16_t)~IO_ST_F_STARVED;
                io_stream_arm_recv(w, c, s);
            }
        }
    }
}

/* ---- socket operations ---- */

static const int one = 1;

static void prep_sockopt(struct io_uring_sqe *sqe, int fidx, unsigned cmd, int level, int optname,
                         const void *optval, unsigned optlen)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fidx, NULL, 0, 0);
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->cmd_op = cmd;
    /* level and optname share the 64-bit addr field, optval is addr3, optlen file_index */
    sqe->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)optname << 32;
    sqe->addr3 = (uint64_t)(uintptr_t)optval;
    sqe->file_index = optlen;
}

void io_conn_connect(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                     struct io_connect *cx, const struct conf_addr *a, uint64_t timeout_ms)
{
    /* Two steps: the kernel picks the socket's fixed-file slot (from the same range as
     * accepted sockets, so one table holds both and a slot costs one entry, not two), and
     * once io_conn_socket_done() knows it: TCP_NODELAY -> connect -> timeout, one chain. */
    cx->addr = a;
    cx->ts.tv_sec = (long long)(timeout_ms / 1000);
    cx->ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
    s->fidx = -1;
    s->flags = 0;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_SOCKET, c, 0);
    io_uring_prep_socket_direct_alloc(sqe, a->ss.ss_family, SOCK_STREAM, 0, 0);
}

int io_conn_socket_done(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                        struct io_connect *cx, int res)
{
    if (res < 0)
        return res;
    s->fidx = res;
    s->flags = IO_ST_F_OPEN;
    w->files_open++;
    const struct conf_addr *a = cx->addr;
    /* The setsockopt is hard-linked: a kernel without uring_cmd sockopts still connects. */
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    prep_sockopt(sqe, s->fidx, IO_SOCKET_URING_OP_SETSOCKOPT, IPPROTO_TCP, TCP_NODELAY, &one,
                 sizeof(one));
    sqe->flags |= IOSQE_IO_HARDLINK;
    sqe = io_sqe(w, IO_OP_CONNECT, c, 0);
    io_uring_prep_connect(sqe, s->fidx, (const struct sockaddr *)&a->ss, a->len);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
    sqe = io_sqe(w, IO_OP_AUX, c, 0);
    /* The kernel copies the timespec when it prepares the linked timeout, at submission;
     * io_sqe may submit early when the SQ is full, so it lives in the object, not the
     * stack. */
    io_uring_prep_link_timeout(sqe, &cx->ts, 0);
    return 0;
}

void io_conn_ask_peername(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                          union io_peer *peer, const struct conf_listener *lcf)
{
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_PEERNAME, c, 0);
    unsigned len = lcf->bind.ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in);
    prep_sockopt(sqe, s->fidx, IO_SOCKET_URING_OP_GETSOCKOPT, SOL_SOCKET, SO_PEERNAME, peer, len);
}

uint64_t io_peer_hash(const union io_peer *p)
{
    if (p->v4.sin_family == AF_INET)
        return lb_hash64(&p->v4.sin_addr, 4, 0);
    if (p->v6.sin6_family == AF_INET6)
        return lb_hash64(&p->v6.sin6_addr, 16, 0);
    return 0;
}
