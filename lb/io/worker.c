/*
 * The worker loop: ring setup, provided buffers, connection slots, accept, dispatch,
 * timers and the stop sequence. Protocols plug in through their connection kinds
 * (struct io_conn_ops) and modules (struct io_module); nothing here knows one.
 *
 * One iteration: make returned buffers visible to the kernel, submit everything prepared
 * and wait for at least one completion (or the tick), dispatch every completion, then
 * re-arm receivers that ran out of buffers and run the timers when a tick is due.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lb/core/log.h"
#include "lb/core/protocols.h"
#include "lb/core/runtime.h"
#include "lb/io/internal.h"
#include "lb/io/tls.h"
#include "lb/io/worker.h"
#include "lb/tls/tls.h"

#define TICK_MS 100

/* The protocols' per-worker state, registered at startup (io_module_register). */
static struct io_module *mods[IO_MAX_MODULES];
static unsigned nmods;

void io_module_register(struct io_module *m)
{
    for (unsigned i = 0; i < nmods; i++)
        if (mods[i] == m)
            return;
    if (nmods == IO_MAX_MODULES)
        abort(); /* a startup invariant: IO_MAX_MODULES is sized for the protocols we have */
    m->id = nmods;
    mods[nmods++] = m;
}
#define LIST_END 0xffffffffu

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct io_uring_sqe *io_sqe(struct io_worker *w, enum io_op kind, struct io_conn *c, uint32_t slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    while (!sqe) {
        /* The SQ is full: hand what we have to the kernel and take a fresh entry. */
        io_uring_submit(&w->ring);
        w->ring_enters++;
        sqe = io_uring_get_sqe(&w->ring);
    }
    w->ring_sqes++;
    if (c) {
        c->inflight++;
        sqe->user_data = io_ud(kind, c->gen, c->slot);
    } else {
        sqe->user_data = io_ud(kind, 0, slot);
    }
    return sqe;
}

/* Free plaintext buffers whose memory is kept: enough for a burst, not for a crowd. */
#define IO_PLAIN_KEEP 256

uint16_t io_plain_get(struct io_worker *w)
{
    if (!w->nplain_free)
        return IO_NOBUF;
    uint16_t id = w->plain_free[w->nplain_free - 1];
    char **slot = &w->plain[id - w->nbufs];
    if (*slot)
        w->plain_held--;
    else if (!(*slot = malloc(w->buf_size)))
        return IO_NOBUF;
    w->nplain_free--;
    return id;
}

static void plain_put(struct io_worker *w, uint16_t id)
{
    char **slot = &w->plain[id - w->nbufs];
    if (w->plain_held >= IO_PLAIN_KEEP) {
        free(*slot);
        *slot = NULL;
    } else {
        w->plain_held++;
    }
    /* Ids with memory stay on top of the stack, so they are taken first. */
    if (*slot || !w->nplain_free) {
        w->plain_free[w->nplain_free++] = id;
    } else {
        w->plain_free[w->nplain_free++] = w->plain_free[0];
        w->plain_free[0] = id;
    }
}

void io_buf_put(struct io_worker *w, uint16_t bid)
{
    if (bid >= w->nbufs) {
        plain_put(w, bid);
        return;
    }
    io_uring_buf_ring_add(w->br, io_buf_addr(w, bid), w->buf_size, bid, (int)w->br_mask,
                          (int)w->br_pending++);
    w->bufs_free++;
}

/* ---- accept ---- */

static void arm_accept(struct io_worker *w, uint32_t li)
{
    struct io_listener *l = &w->ls[li];
    if (l->accepting || l->fd < 0 || w->stopping)
        return;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_ACCEPT, NULL, li);
    io_uring_prep_multishot_accept_direct(sqe, l->fd, NULL, NULL, 0);
    l->accepting = true;
}

void io_listeners_rearm(struct io_worker *w)
{
    for (uint32_t i = 0; i < w->nls; i++) {
        if (w->ls[i].full && !w->stopping) {
            w->ls[i].full = false;
            arm_accept(w, i);
        }
    }
}

/* A connection shed, or accepting paused: counted always, said at most once a second (an
 * attack or a leak would otherwise write a line per connection). */
static void shed(struct io_worker *w, struct io_listener *l, uint32_t li, bool paused)
{
    if (w->rt->lstats)
        atomic_fetch_add_explicit(paused ? &w->rt->lstats[li].paused : &w->rt->lstats[li].refused,
                                  1, memory_order_relaxed);
    if (w->now_ms - w->shed_log_ms < 1000) {
        w->shed_quiet++;
        return;
    }
    if (paused)
        lb_warn("accept paused: no free file slot, resumed when a connection closes",
                "listener=%s files_per_worker=%u hint=\"raise ulimit -n\" since_last=%u",
                l->cf->name, w->rt->files_per_worker, w->shed_quiet);
    else
        lb_warn("connection refused: worker at max_connections",
                "listener=%s max_connections=%u workers=%u since_last=%u", l->cf->name,
                w->rt->conf->global.max_connections, w->rt->nworkers, w->shed_quiet);
    w->shed_log_ms = w->now_ms;
    w->shed_quiet = 0;
}

static void on_accept(struct io_worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t li = io_ud_slot(cqe->user_data);
    struct io_listener *l = &w->ls[li];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->accepting = false;

    if (cqe->res < 0) {
        if (cqe->res == -ENFILE || cqe->res == -EMFILE) {
            /* The fixed-file table is full; accept again when a connection closes. */
            l->full = true;
            shed(w, l, li, true);
        } else if (cqe->res != -ECANCELED) {
            lb_warn("accept failed", "listener=%s err=%s", l->cf->name, strerror(-cqe->res));
        }
    } else {
        struct io_conn *c = io_conn_alloc(w, l->ops);
        if (!c) {
            /* Shed this one connection, never the process. */
            w->rejected++;
            struct io_uring_sqe *sqe = io_sqe(w, IO_OP_ORPHAN, NULL, 0);
            io_uring_prep_close_direct(sqe, (unsigned)cqe->res);
            shed(w, l, li, false);
        } else {
            w->accepted++;
            c->listener = (uint8_t)li;
            c->flags |= IO_CONN_F_ACCEPTED;
            if (w->rt->lstats) {
                atomic_fetch_add_explicit(&w->rt->lstats[li].accepted, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&w->rt->lstats[li].active, 1, memory_order_relaxed);
            }
            struct io_stream *s = io_conn_stream(c, 0);
            io_stream_accepted(s, cqe->res);
            w->files_open++;
            if (l->tls && io_tls_server(w, s, l->tls) < 0)
                io_conn_close(w, c, "out of memory for TLS");
            else
                c->ops->accepted(w, c);
        }
    }
    if (!l->accepting && !l->full)
        arm_accept(w, li);
}

/* ---- dispatch ---- */

static void on_orphan(struct io_worker *w, const struct io_uring_cqe *cqe)
{
    (void)w;
    (void)cqe;
}

static void conn_recv(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    struct io_stream *s = io_conn_stream(c, io_ud_kind(cqe->user_data) - IO_OP_RECV0);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        s->flags &= (uint16_t)~IO_ST_F_RECV;
    int res = cqe->res;
    if (s->tls && res != -ENOBUFS && res != -ECANCELED) {
        io_tls_recv(w, c, s, res, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    } else if (res > 0) {
        io_stream_push(w, s, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT), (uint32_t)res);
        c->last_ms = w->now_ms;
        c->ops->on_recv(w, c, s, res);
    } else if (res == 0) {
        s->flags |= IO_ST_F_EOF;
        c->ops->on_recv(w, c, s, 0);
    } else if (res == -ENOBUFS) {
        s->flags |= IO_ST_F_STARVED;
        io_worker_starve(w, c);
    } else if (res != -ECANCELED) {
        c->ops->on_recv(w, c, s, res);
    }
    io_stream_arm_recv(w, c, s);
}

static void conn_sent(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    struct io_stream *s = io_conn_stream(c, io_ud_kind(cqe->user_data) - IO_OP_SEND0);
    if (s->tls) {
        io_tls_sent(w, c, s, cqe->res);
        return;
    }
    s->flags &= (uint16_t)~IO_ST_F_SENDING;
    if (cqe->res > 0)
        c->last_ms = w->now_ms;
    c->ops->on_sent(w, c, s, cqe->res);
}

static struct io_connect *conn_cx(struct io_conn *c)
{
    return (struct io_connect *)((char *)c + c->ops->connect_off);
}

static void conn_socket(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    struct io_stream *s = io_conn_stream(c, c->ops->connect_stream);
    if (io_conn_socket_done(w, c, s, conn_cx(c), cqe->res) < 0)
        c->ops->on_connect(w, c, s, cqe->res); /* no socket: a failed connect */
}

static void conn_connect(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    struct io_stream *s = io_conn_stream(c, c->ops->connect_stream);
    if (cqe->res == 0) {
        s->flags |= IO_ST_F_CONNECTED;
        c->last_ms = w->now_ms;
        if (s->tls)
            io_tls_connected(w, c, s);
    }
    c->ops->on_connect(w, c, s, cqe->res);
}

static void conn_peername(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    c->ops->on_peername(w, c, cqe->res);
}

typedef void io_conn_cqe_fn(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe);

static io_conn_cqe_fn *const conn_handlers[IO_OP__COUNT] = {
    [IO_OP_RECV0] = conn_recv,        [IO_OP_RECV1] = conn_recv,    [IO_OP_SEND0] = conn_sent,
    [IO_OP_SEND1] = conn_sent,        [IO_OP_SOCKET] = conn_socket, [IO_OP_CONNECT] = conn_connect,
    [IO_OP_PEERNAME] = conn_peername,
};

static void on_conn_cqe(struct io_worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t slot = io_ud_slot(cqe->user_data);
    enum io_op op = io_ud_kind(cqe->user_data);
    struct io_conn *c = slot < w->nconns ? w->slots[slot] : NULL;

    if (cqe->flags & IORING_CQE_F_BUFFER)
        w->bufs_free--;
    if (!c || c->gen != io_ud_gen(cqe->user_data)) {
        /* Cannot happen while slots are freed only at inflight == 0; count it and make
         * sure a buffer it carries is not lost. */
        w->stale_cqes++;
        if (cqe->flags & IORING_CQE_F_BUFFER)
            io_buf_put(w, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        return;
    }
    /* A connection at rest in a compact object becomes its full self before its handler
     * runs (a close or cancel completion has no handler and needs nothing of it). */
    if (c->ops->wake && conn_handlers[op] && c->state != IO_CONN_CLOSING)
        c = c->ops->wake(w, c);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->inflight--;

    if (c->state == IO_CONN_CLOSING) {
        if (cqe->flags & IORING_CQE_F_BUFFER)
            io_buf_put(w, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        /* A socket made for a connection already closing: io_conn_reap closes it. */
        if (op == IO_OP_SOCKET && cqe->res >= 0) {
            struct io_stream *s = io_conn_stream(c, c->ops->connect_stream);
            s->fidx = cqe->res;
            s->flags |= IO_ST_F_OPEN;
            w->files_open++;
        }
    } else if (conn_handlers[op]) {
        conn_handlers[op](w, c, cqe);
    }
    if (c->state == IO_CONN_CLOSING && !c->inflight)
        io_conn_reap(w, c);
}

typedef void io_cqe_fn(struct io_worker *w, const struct io_uring_cqe *cqe);

static io_cqe_fn *const handlers[IO_OP__COUNT] = {
    [IO_OP_ACCEPT] = on_accept,  [IO_OP_ORPHAN] = on_orphan,   [IO_OP_PEERNAME] = on_conn_cqe,
    [IO_OP_RECV0] = on_conn_cqe, [IO_OP_RECV1] = on_conn_cqe,  [IO_OP_SEND0] = on_conn_cqe,
    [IO_OP_SEND1] = on_conn_cqe, [IO_OP_SOCKET] = on_conn_cqe, [IO_OP_CONNECT] = on_conn_cqe,
    [IO_OP_AUX] = on_conn_cqe,
};

/* ---- buffers starved ---- */

#define IO_BUFS_STEP 256

/* Adds IO_BUFS_STEP never-used buffers to the ring while it runs low. The ring hands buffers
 * out in order, so every buffer in it gets touched sooner or later: starting small and
 * growing only while receivers keep the buffers busy makes memory follow the data in
 * flight, not the pool's size. */
static void grow_bufs(struct io_worker *w)
{
    uint32_t n = w->nbufs - w->bufs_added;
    if (n > IO_BUFS_STEP)
        n = IO_BUFS_STEP;
    for (uint32_t i = 0; i < n; i++)
        io_buf_put(w, (uint16_t)(w->bufs_added + i));
    w->bufs_added += n;
}

/* Re-arms receivers that hit ENOBUFS once a useful share of the buffers is back. */
static void feed_starved(struct io_worker *w)
{
    if (w->bufs_free < IO_BUFS_STEP / 4 && w->bufs_added < w->nbufs)
        grow_bufs(w);
    if (w->starved_head == LIST_END || w->bufs_free < w->bufs_added / 8)
        return;
    io_feed_starved(w);
}

/* ---- timers and stop ---- */

static void begin_stop(struct io_worker *w)
{
    w->stopping = true;
    w->stop_deadline_ms = w->now_ms + w->rt->conf->global.shutdown_timeout_ms;
    for (uint32_t i = 0; i < w->nls; i++) {
        struct io_listener *l = &w->ls[i];
        if (l->accepting) {
            struct io_uring_sqe *sqe = io_sqe(w, IO_OP_ORPHAN, NULL, 0);
            io_uring_prep_cancel64(sqe, io_ud(IO_OP_ACCEPT, 0, i), 0);
        }
        if (l->fd >= 0)
            close(l->fd); /* the cancelled accept holds its own reference */
        l->fd = -1;
    }
    lb_info("stopping: no longer accepting", "connections=%u", w->nconns - w->nfree);
}

/* What this worker holds, for the control thread's metrics: a test that ends with every
 * client and backend gone expects all three at zero, and a leak shows as a figure that
 * never comes back down. */
static void publish_held(struct io_worker *w)
{
    uint32_t plain = IO_PLAIN_MAX - w->nplain_free;
    atomic_store_explicit(&w->bufs_in_use, w->bufs_added - w->bufs_free + plain,
                          memory_order_relaxed);
    atomic_store_explicit(&w->files_in_use, w->files_open, memory_order_relaxed);
    atomic_store_explicit(&w->ring_pub[0], w->ring_sqes, memory_order_relaxed);
    atomic_store_explicit(&w->ring_pub[1], w->ring_cqes, memory_order_relaxed);
    atomic_store_explicit(&w->ring_pub[2], w->ring_enters, memory_order_relaxed);
}

static void tick(struct io_worker *w)
{
    bool expired = w->stopping && w->now_ms >= w->stop_deadline_ms;
    publish_held(w);
    for (unsigned m = 0; m < nmods; m++)
        if (mods[m]->tick)
            mods[m]->tick(w, w->mod[m]);
    if (w->nfree == w->nconns)
        return;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct io_conn *c = w->slots[i];
        if (!c || c->state == IO_CONN_CLOSING)
            continue;
        if (expired)
            io_conn_close(w, c, "shutdown timeout");
        else if (c->ops->tick)
            c->ops->tick(w, c);
    }
}

static bool accept_in_flight(const struct io_worker *w)
{
    for (uint32_t i = 0; i < w->nls; i++)
        if (w->ls[i].accepting)
            return true;
    return false;
}

/* ---- setup ---- */

int io_worker_init(struct io_worker *w, struct lb_runtime *rt, int id, struct lb_err *err)
{
    memset(w, 0, sizeof(*w));
    lb_protocols_init();
    w->id = id;
    w->rt = rt;
    w->nconns = rt->conns_per_worker;
    w->nfiles = rt->files_per_worker;
    w->starved_head = LIST_END;
    w->buf_size = 16 * 1024;
    /* Enough buffers for every connection's burst on a busy worker, a power of two as
     * the buffer ring requires; idle connections hold none. */
    w->nbufs = 4096;
    w->br_mask = w->nbufs - 1;

    w->fdwait_head = w->fdwait_tail = LIST_END;
    w->slots = calloc(w->nconns, sizeof(*w->slots));
    w->slot_gen = calloc(w->nconns, sizeof(*w->slot_gen));
    w->free_slots = calloc(w->nconns, sizeof(*w->free_slots));
    w->buf_next = calloc(w->nbufs + IO_PLAIN_MAX, sizeof(*w->buf_next));
    w->buf_off = calloc(w->nbufs + IO_PLAIN_MAX, sizeof(*w->buf_off));
    w->buf_len = calloc(w->nbufs + IO_PLAIN_MAX, sizeof(*w->buf_len));
    w->plain = calloc(IO_PLAIN_MAX, sizeof(*w->plain));
    w->plain_free = calloc(IO_PLAIN_MAX, sizeof(*w->plain_free));
    w->nls = (uint32_t)rt->conf->nlisteners;
    w->ls = calloc(w->nls ? w->nls : 1, sizeof(*w->ls));
    w->cws = calloc(rt->conf->nclusters ? rt->conf->nclusters : 1, sizeof(*w->cws));
    w->buf_base = mmap(NULL, (size_t)w->nbufs * w->buf_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->buf_base == MAP_FAILED)
        w->buf_base = NULL;
    if (!w->slots || !w->slot_gen || !w->free_slots || !w->buf_next || !w->buf_off || !w->buf_len ||
        !w->plain || !w->plain_free || !w->ls || !w->cws || !w->buf_base) {
        lb_err_set(err, "worker %d: out of memory for %u connections", id, w->nconns);
        goto fail;
    }
    for (uint32_t i = 0; i < w->nconns; i++)
        w->free_slots[i] = w->nconns - 1 - i;
    for (uint32_t i = 0; i < IO_PLAIN_MAX; i++)
        w->plain_free[i] = (uint16_t)(w->nbufs + IO_PLAIN_MAX - 1 - i);
    w->nplain_free = IO_PLAIN_MAX;
    w->nfree = w->nconns;
    for (uint32_t i = 0; i < w->nls; i++) {
        w->ls[i].cf = &rt->conf->listeners[i];
        w->ls[i].fd = rt->listen_fds[id][i];
        w->ls[i].ops = lb_listener_ops(w->ls[i].cf);
        if (rt->tls && rt->tls->listeners[i])
            w->ls[i].tls = rt->tls->listeners[i]->ctxs[0];
    }
    for (uint32_t i = 0; i < rt->conf->nclusters; i++) {
        if (cl_cluster_wstate_init(&w->cws[i], &rt->clusters[i], (uint64_t)id * 7919 + i) < 0) {
            lb_err_set(err, "worker %d: out of memory", id);
            goto fail;
        }
    }
    for (unsigned m = 0; m < nmods; m++)
        if (mods[m]->init && mods[m]->init(w, &w->mod[m], err) < 0)
            goto fail;
    return 0;
fail:
    io_worker_destroy(w);
    return -ENOMEM;
}

void io_worker_destroy(struct io_worker *w)
{
    for (unsigned m = 0; m < nmods; m++) {
        if (mods[m]->destroy && w->mod[m])
            mods[m]->destroy(w, w->mod[m]);
        w->mod[m] = NULL;
    }
    /* Objects of connections still open at exit (none after a clean stop). */
    io_pools_free(w);
    /* Listening sockets a worker never got to close (it did not start). */
    for (uint32_t i = 0; w->ls && i < w->nls; i++) {
        if (w->ls[i].fd >= 0)
            close(w->ls[i].fd);
        w->ls[i].fd = -1;
    }
    if (w->ring_ok)
        io_uring_queue_exit(&w->ring);
    w->ring_ok = false;
    if (w->br)
        munmap(w->br, w->nbufs * sizeof(struct io_uring_buf));
    w->br = NULL;
    if (w->buf_base)
        munmap(w->buf_base, (size_t)w->nbufs * w->buf_size);
    w->buf_base = NULL;
    if (w->cws && w->rt)
        for (uint32_t i = 0; i < w->rt->conf->nclusters; i++)
            cl_cluster_wstate_free(&w->cws[i]);
    free(w->cws);
    free(w->ls);
    for (uint32_t i = 0; w->plain && i < IO_PLAIN_MAX; i++)
        free(w->plain[i]);
    free(w->plain);
    free(w->plain_free);
    w->plain = NULL;
    w->plain_free = NULL;
    io_tls_chunks_free(w);
    free(w->buf_len);
    free(w->buf_off);
    free(w->buf_next);
    free(w->free_slots);
    free(w->slots);
    free(w->slot_gen);
    w->cws = NULL;
    w->ls = NULL;
    w->buf_len = w->buf_off = w->buf_next = NULL;
    w->free_slots = NULL;
    w->slots = NULL;
    w->slot_gen = NULL;
}

/* Ring, fixed files and buffer ring: done on the worker thread, because a
 * SINGLE_ISSUER ring belongs to the thread that creates it. */
static int ring_setup(struct io_worker *w)
{
    struct io_uring_params p = {0};
    p.flags = w->rt->ring_flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = 16384;
    int rc = io_uring_queue_init_params(4096, &w->ring, &p);
    if (rc < 0) {
        lb_error("io_uring setup failed", "err=%s", strerror(-rc));
        return rc;
    }
    w->ring_ok = true;

    /* Accepted and backend sockets alike take a kernel-chosen slot of one table: an L7
     * connection slot needs one entry, an L4 one two. Running out is back-pressure (accept
     * pauses, a connect fails over), never a crash. */
    rc = io_uring_register_files_sparse(&w->ring, w->nfiles);
    if (rc < 0) {
        lb_error("cannot register fixed files", "count=%u err=%s", w->nfiles, strerror(-rc));
        return rc;
    }
    rc = io_uring_register_file_alloc_range(&w->ring, 0, w->nfiles);
    if (rc < 0) {
        lb_error("cannot set the file allocation range", "err=%s", strerror(-rc));
        return rc;
    }

    size_t brsz = w->nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, brsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return -ENOMEM;
    w->br = br;
    io_uring_buf_ring_init(w->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = w->nbufs, .bgid = 0};
    rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (rc < 0) {
        lb_error("cannot register the buffer ring", "err=%s", strerror(-rc));
        return rc;
    }
    w->bufs_free = 0;
    grow_bufs(w);
    return 0;
}

void *io_worker_main(void *arg)
{
    struct io_worker *w = arg;
    lb_log_set_thread(w->id);
    w->now_ms = mono_ms();
    if (ring_setup(w) < 0) {
        /* The startup probe passed on the main thread, so this is a resource problem. */
        atomic_store(&w->rt->stop, 2);
        return NULL;
    }
    for (uint32_t i = 0; i < w->nls; i++)
        arm_accept(w, i);
    w->next_tick_ms = w->now_ms + TICK_MS;

    for (;;) {
        if (w->br_pending) {
            io_uring_buf_ring_advance(w->br, (int)w->br_pending);
            w->br_pending = 0;
        }
        if (!w->stopping && atomic_load_explicit(&w->rt->stop, memory_order_relaxed))
            begin_stop(w);
        if (w->stopping && w->nfree == w->nconns && !accept_in_flight(w) &&
            !io_uring_sq_ready(&w->ring))
            break;

        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = TICK_MS * 1000000L};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            lb_warn("io_uring_enter failed", "err=%s", strerror(-rc));
        w->now_ms = mono_ms();

        unsigned head, n = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            enum io_op kind = io_ud_kind(cqe->user_data);
            if (kind < IO_OP__COUNT && handlers[kind])
                handlers[kind](w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        w->ring_cqes += n;
        w->ring_enters++;

        feed_starved(w);
        for (unsigned m = 0; m < nmods; m++)
            if (mods[m]->loop_end)
                mods[m]->loop_end(w, w->mod[m]);
        if (w->now_ms >= w->next_tick_ms) {
            w->next_tick_ms = w->now_ms + TICK_MS;
            tick(w);
        }
    }
    if (w->stale_cqes)
        lb_warn("stale completions seen", "count=%lu", (unsigned long)w->stale_cqes);
    lb_info("worker stopped", "accepted=%lu refused=%lu", (unsigned long)w->accepted,
            (unsigned long)w->rejected);
    return NULL;
}
