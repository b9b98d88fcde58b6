/*
 * The worker loop: ring setup, provided buffers, connection slots, accept, dispatch,
 * timers and the stop sequence. Protocol logic lives in tcp.c (L4).
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
#include "lb/core/runtime.h"
#include "lb/io/worker.h"

#define TICK_MS 100
#define NOT_STARVED 0xfffffffeu
#define LIST_END 0xffffffffu

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct io_uring_sqe *io_sqe(struct io_worker *w, enum io_op kind, struct io_conn *c,
                            uint32_t slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    while (!sqe) {
        /* The SQ is full: hand what we have to the kernel and take a fresh entry. */
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
    }
    if (c) {
        c->inflight++;
        sqe->user_data = io_ud(kind, c->gen, io_conn_slot(w, c));
    } else {
        sqe->user_data = io_ud(kind, 0, slot);
    }
    return sqe;
}

void io_buf_put(struct io_worker *w, uint16_t bid)
{
    io_uring_buf_ring_add(w->br, io_buf_addr(w, bid), w->buf_size, bid, (int)w->br_mask,
                          (int)w->br_pending++);
    w->bufs_free++;
}

/* ---- slots ---- */

struct io_conn *io_conn_alloc(struct io_worker *w)
{
    if (!w->nfree)
        return NULL;
    struct io_conn *c = &w->conns[w->free_slots[--w->nfree]];
    atomic_store_explicit(&w->conns_open, w->nconns - w->nfree, memory_order_relaxed);
    uint32_t gen = c->gen;
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->server = -1;
    c->cli.fidx = c->srv.fidx = -1;
    c->cli.qhead = c->cli.qtail = c->srv.qhead = c->srv.qtail = IO_NOBUF;
    c->next_starved = NOT_STARVED;
    c->last_ms = w->now_ms;
    return c;
}

static void arm_accept(struct io_worker *w, uint32_t li);

static void conn_free(struct io_worker *w, struct io_conn *c)
{
    if (c->kind != IO_CK_L4)
        http_on_free(w, c);
    /* Every slot but an L7 backend connection was an accepted client (on_accept). */
    if (c->kind != IO_CK_HSRV && w->rt->lstats)
        atomic_fetch_sub_explicit(&w->rt->lstats[c->listener].active, 1, memory_order_relaxed);
    c->state = IO_CONN_FREE;
    c->gen = (c->gen + 1) & 0xffffff;
    w->free_slots[w->nfree++] = io_conn_slot(w, c);
    /* Only a slot whose sockets were closed gives table entries back: waking a waiter for
     * any other would have it fail again at once, and again, while the table stays full. */
    if (c->closed_fds && w->fdwait_head != UINT32_MAX)
        http_fd_freed(w);
    atomic_store_explicit(&w->conns_open, w->nconns - w->nfree, memory_order_relaxed);
    /* A slot is back: listeners that stopped for lack of one may accept again. */
    for (uint32_t i = 0; i < w->nls; i++) {
        if (w->ls[i].full && !w->stopping) {
            w->ls[i].full = false;
            arm_accept(w, i);
        }
    }
}

static void side_drop_queue(struct io_worker *w, struct io_side *s)
{
    while (s->qhead != IO_NOBUF) {
        uint16_t b = s->qhead;
        s->qhead = w->buf_next[b];
        io_buf_put(w, b);
    }
    s->qtail = IO_NOBUF;
    s->qbytes = 0;
}

/* Cancels what is in flight on @s and returns its queued buffers. The socket itself stays in
 * its fixed slot until every operation of the connection has completed (conn_reap): an
 * operation that the kernel punted to a worker thread (shutdown, for one) resolves its fixed
 * file only when it runs, so closing the slot earlier would let it act on whatever socket the
 * next accept put in that slot. */
static void side_cancel(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    if (s->flags & IO_SIDE_F_OPEN) {
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_cancel_fd(sqe, s->fidx, IORING_ASYNC_CANCEL_ALL |
                                                  IORING_ASYNC_CANCEL_FD_FIXED);
    }
    side_drop_queue(w, s);
}

/* Called when a closing connection has nothing in flight: closes its sockets (their slots
 * are free once the closes complete), or frees the slot when they are closed already. */
static void conn_reap(struct io_worker *w, struct io_conn *c)
{
    bool closing = false;
    struct io_side *sides[2] = {&c->cli, &c->srv};
    for (int i = 0; i < 2; i++) {
        struct io_side *s = sides[i];
        if (!(s->flags & IO_SIDE_F_OPEN))
            continue;
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_close_direct(sqe, (unsigned)s->fidx);
        s->flags &= ~IO_SIDE_F_OPEN;
        closing = true;
    }
    if (closing)
        c->closed_fds = 1;
    else
        conn_free(w, c);
}

void io_conn_close(struct io_worker *w, struct io_conn *c, const char *why)
{
    if (c->state == IO_CONN_CLOSING || c->state == IO_CONN_FREE)
        return;
    lb_debug("connection closed", "slot=%u reason=\"%s\"", io_conn_slot(w, c), why ? why : "done");
    c->state = IO_CONN_CLOSING;
    if (c->kind != IO_CK_L4)
        http_on_close(w, c);
    side_cancel(w, c, &c->cli);
    side_cancel(w, c, &c->srv);
    if (c->counted) {
        cl_server_release(&w->rt->clusters[c->cluster].servers[c->server]);
        c->counted = 0;
    }
    if (!c->inflight)
        conn_reap(w, c);
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
            lb_warn("accept paused: no free file slot", "listener=%s", l->cf->name);
        } else if (cqe->res != -ECANCELED) {
            lb_warn("accept failed", "listener=%s err=%s", l->cf->name, strerror(-cqe->res));
        }
    } else {
        struct io_conn *c = io_conn_alloc(w);
        if (!c) {
            /* Shed this one connection, never the process. */
            w->rejected++;
            struct io_uring_sqe *sqe = io_sqe(w, IO_OP_ORPHAN, NULL, 0);
            io_uring_prep_close_direct(sqe, (unsigned)cqe->res);
            lb_warn("connection refused: worker at max_connections", "listener=%s",
                    l->cf->name);
        } else {
            w->accepted++;
            c->listener = (uint8_t)li;
            if (w->rt->lstats) {
                atomic_fetch_add_explicit(&w->rt->lstats[li].accepted, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&w->rt->lstats[li].active, 1, memory_order_relaxed);
            }
            c->cli.fidx = cqe->res;
            c->cli.flags = IO_SIDE_F_OPEN | IO_SIDE_F_CONNECTED;
            if (l->cf->protocol == CONF_PROTO_HTTP) {
                c->kind = IO_CK_HCLI;
                http_accepted(w, c);
            } else {
                l4_accepted(w, c);
            }
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

static void on_conn_cqe(struct io_worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t slot = io_ud_slot(cqe->user_data);
    enum io_op kind = io_ud_kind(cqe->user_data);
    struct io_conn *c = slot < w->nconns ? &w->conns[slot] : NULL;

    if (cqe->flags & IORING_CQE_F_BUFFER)
        w->bufs_free--;
    if (!c || c->state == IO_CONN_FREE || c->gen != io_ud_gen(cqe->user_data)) {
        /* Cannot happen while slots are freed only at inflight == 0; count it and make
         * sure a buffer it carries is not lost. */
        w->stale_cqes++;
        if (cqe->flags & IORING_CQE_F_BUFFER)
            io_buf_put(w, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->inflight--;

    if (c->state == IO_CONN_CLOSING) {
        if (cqe->flags & IORING_CQE_F_BUFFER)
            io_buf_put(w, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        /* A socket made for a connection already closing: conn_reap closes it. */
        if (kind == IO_OP_SOCKET && cqe->res >= 0) {
            c->srv.fidx = cqe->res;
            c->srv.flags |= IO_SIDE_F_OPEN;
        }
    } else if (c->kind == IO_CK_L4) {
        l4_on_cqe(w, c, kind, cqe);
    } else {
        http_on_cqe(w, c, kind, cqe);
    }
    if (c->state == IO_CONN_CLOSING && !c->inflight)
        conn_reap(w, c);
}

typedef void io_cqe_fn(struct io_worker *w, const struct io_uring_cqe *cqe);

static io_cqe_fn *const handlers[IO_OP__COUNT] = {
    [IO_OP_ACCEPT] = on_accept,     [IO_OP_ORPHAN] = on_orphan,
    [IO_OP_PEERNAME] = on_conn_cqe, [IO_OP_RECV_CLI] = on_conn_cqe,
    [IO_OP_RECV_SRV] = on_conn_cqe, [IO_OP_SEND_CLI] = on_conn_cqe,
    [IO_OP_SEND_SRV] = on_conn_cqe, [IO_OP_SOCKET] = on_conn_cqe,
    [IO_OP_CONNECT] = on_conn_cqe,  [IO_OP_AUX] = on_conn_cqe,
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

void io_worker_starve(struct io_worker *w, struct io_conn *c)
{
    if (c->next_starved != NOT_STARVED)
        return;
    c->next_starved = w->starved_head;
    w->starved_head = io_conn_slot(w, c);
}

/* Re-arms receivers that hit ENOBUFS once a useful share of the buffers is back. */
static void feed_starved(struct io_worker *w)
{
    if (w->bufs_free < IO_BUFS_STEP / 4 && w->bufs_added < w->nbufs)
        grow_bufs(w);
    if (w->starved_head == LIST_END || w->bufs_free < w->bufs_added / 8)
        return;
    uint32_t i = w->starved_head;
    w->starved_head = LIST_END;
    while (i != LIST_END) {
        struct io_conn *c = &w->conns[i];
        i = c->next_starved;
        c->next_starved = NOT_STARVED;
        if (c->state == IO_CONN_FREE || c->state == IO_CONN_CLOSING)
            continue;
        if (c->kind == IO_CK_L4)
            l4_on_starved(w, c);
        else
            http_on_starved(w, c);
    }
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

static void tick(struct io_worker *w)
{
    bool expired = w->stopping && w->now_ms >= w->stop_deadline_ms;
    http_worker_tick(w);
    if (w->nfree == w->nconns)
        return;
    for (uint32_t i = 0; i < w->nconns; i++) {
        struct io_conn *c = &w->conns[i];
        if (c->state == IO_CONN_FREE || c->state == IO_CONN_CLOSING)
            continue;
        if (expired)
            io_conn_close(w, c, "shutdown timeout");
        else if (c->kind == IO_CK_L4)
            l4_tick(w, c);
        else
            http_tick(w, c);
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

    w->conns = calloc(w->nconns, sizeof(*w->conns));
    w->free_slots = calloc(w->nconns, sizeof(*w->free_slots));
    w->buf_next = calloc(w->nbufs, sizeof(*w->buf_next));
    w->buf_off = calloc(w->nbufs, sizeof(*w->buf_off));
    w->buf_len = calloc(w->nbufs, sizeof(*w->buf_len));
    w->nls = (uint32_t)rt->conf->nlisteners;
    w->ls = calloc(w->nls ? w->nls : 1, sizeof(*w->ls));
    w->cws = calloc(rt->conf->nclusters ? rt->conf->nclusters : 1, sizeof(*w->cws));
    w->buf_base = mmap(NULL, (size_t)w->nbufs * w->buf_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->buf_base == MAP_FAILED)
        w->buf_base = NULL;
    if (!w->conns || !w->free_slots || !w->buf_next || !w->buf_off || !w->buf_len || !w->ls ||
        !w->cws || !w->buf_base) {
        lb_err_set(err, "worker %d: out of memory for %u connections", id, w->nconns);
        goto fail;
    }
    for (uint32_t i = 0; i < w->nconns; i++)
        w->free_slots[i] = w->nconns - 1 - i;
    w->nfree = w->nconns;
    for (uint32_t i = 0; i < w->nls; i++) {
        w->ls[i].cf = &rt->conf->listeners[i];
        w->ls[i].fd = rt->listen_fds[id][i];
    }
    for (uint32_t i = 0; i < rt->conf->nclusters; i++) {
        if (cl_cluster_wstate_init(&w->cws[i], &rt->clusters[i], (uint64_t)id * 7919 + i) < 0) {
            lb_err_set(err, "worker %d: out of memory", id);
            goto fail;
        }
    }
    if (http_worker_init(w, err) < 0)
        goto fail;
    return 0;
fail:
    io_worker_destroy(w);
    return -ENOMEM;
}

void io_worker_destroy(struct io_worker *w)
{
    http_worker_destroy(w);
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
    free(w->buf_len);
    free(w->buf_off);
    free(w->buf_next);
    free(w->free_slots);
    free(w->conns);
    w->cws = NULL;
    w->ls = NULL;
    w->buf_len = w->buf_off = w->buf_next = NULL;
    w->free_slots = NULL;
    w->conns = NULL;
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
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
                                   .ring_entries = w->nbufs,
                                   .bgid = 0};
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

        feed_starved(w);
        if (w->alog_len)
            http_flush_log(w);
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
