/*
 * L4 (protocol: tcp): bytes both ways between a client and one backend server.
 *
 *   accept -> PEERNAME (client address, for client_ip hashing and logs)
 *          -> CONNECTING (socket + TCP_NODELAY + connect, linked to the connect timeout)
 *          -> OPEN: each side's multishot recv queues buffers that are sent to the other
 *             side, one send in flight per socket; FIN is passed on with shutdown(SHUT_WR)
 *             once the queue behind it has drained; both FINs through -> close.
 *
 * The client's recv is armed from the start, so bytes it sends while we connect wait in
 * its queue; nothing reaches a backend before its connect succeeds, which is what makes
 * trying another server after a failed connect safe.
 *
 * Back-pressure: when a side's queue holds L4_HIGH bytes its recv is cancelled, and
 * it is re-armed once the queue is empty, so lb's memory never grows with a slow reader.
 * A recv that ends with ENOBUFS (the worker's buffers are all in queues) waits on the
 * worker's starved list until buffers come back.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "health/hc.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/io/worker.h"

#define L4_HIGH (64 * 1024)

#ifndef SO_PEERNAME
#define SO_PEERNAME 28
#endif
/* uring_cmd socket operations (linux/io_uring.h, kernel 6.7); liburing 2.3 predates them. */
#define LB_SOCKET_URING_OP_GETSOCKOPT 2
#define LB_SOCKET_URING_OP_SETSOCKOPT 3

static const int one = 1;

static void prep_sockopt(struct io_uring_sqe *sqe, int fidx, unsigned cmd, int level,
                         int optname, const void *optval, unsigned optlen)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fidx, NULL, 0, 0);
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->cmd_op = cmd;
    /* level and optname share the 64-bit addr field, optval is addr3, optlen file_index */
    sqe->addr = (uint64_t)(uint32_t)level | (uint64_t)(uint32_t)optname << 32;
    sqe->addr3 = (uint64_t)(uintptr_t)optval;
    sqe->file_index = optlen;
}

static struct cl_cluster *conn_cluster(struct io_worker *w, struct io_conn *c)
{
    return &w->rt->clusters[c->cluster];
}

static const char *server_name(struct io_worker *w, struct io_conn *c)
{
    return c->server >= 0 ? conn_cluster(w, c)->servers[c->server].cf->name : "-";
}

static void arm_recv(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    const uint32_t block = IO_SIDE_F_RECV | IO_SIDE_F_PAUSED | IO_SIDE_F_EOF | IO_SIDE_F_STARVED;
    if (c->state == IO_CONN_CLOSING || !(s->flags & IO_SIDE_F_OPEN) ||
        !(s->flags & IO_SIDE_F_CONNECTED) || (s->flags & block))
        return;
    struct io_uring_sqe *sqe =
        io_sqe(w, s == &c->cli ? IO_OP_RECV_CLI : IO_OP_RECV_SRV, c, 0);
    io_uring_prep_recv_multishot(sqe, s->fidx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    s->flags |= IO_SIDE_F_RECV;
}

/* Sends what side @s received to side @o, or passes its FIN on when nothing is left. */
static void pump(struct io_worker *w, struct io_conn *c, struct io_side *s, struct io_side *o)
{
    if ((s->flags & IO_SIDE_F_SENDING) || !(o->flags & IO_SIDE_F_CONNECTED) ||
        !(o->flags & IO_SIDE_F_OPEN))
        return;
    if (s->qhead != IO_NOBUF) {
        uint16_t b = s->qhead;
        struct io_uring_sqe *sqe =
            io_sqe(w, o == &c->srv ? IO_OP_SEND_SRV : IO_OP_SEND_CLI, c, 0);
        io_uring_prep_send(sqe, o->fidx, io_buf_addr(w, b) + w->buf_off[b],
                           (size_t)(w->buf_len[b] - w->buf_off[b]), MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        s->flags |= IO_SIDE_F_SENDING;
    } else if ((s->flags & IO_SIDE_F_EOF) && !(o->flags & IO_SIDE_F_SHUT)) {
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_shutdown(sqe, o->fidx, SHUT_WR);
        sqe->flags |= IOSQE_FIXED_FILE;
        o->flags |= IO_SIDE_F_SHUT;
    }
}

static void maybe_finish(struct io_worker *w, struct io_conn *c)
{
    const uint32_t done = IO_SIDE_F_EOF | IO_SIDE_F_SHUT;
    if ((c->cli.flags & done) == done && (c->srv.flags & done) == done &&
        !((c->cli.flags | c->srv.flags) & IO_SIDE_F_SENDING))
        io_conn_close(w, c, NULL);
}

static void start_connect(struct io_worker *w, struct io_conn *c)
{
    struct cl_cluster *cl = conn_cluster(w, c);
    int idx = cl_cluster_pick(cl, &w->cws[c->cluster], io_conn_client_hash(c), &c->tried);
    if (idx < 0) {
        lb_warn("no usable server", "listener=%s cluster=%s", w->ls[c->listener].cf->name,
                cl->cf->name);
        io_conn_close(w, c, "no usable server");
        return;
    }
    struct cl_server *srv = io_conn_commit(w, c, idx);
    c->state = IO_CONN_CONNECTING;

    io_conn_connect(w, c, &srv->cf->addr, conn_cluster(w, c)->cf->connect_timeout_ms);
}

void io_conn_connect(struct io_worker *w, struct io_conn *c, const struct conf_addr *a,
                     uint64_t timeout_ms)
{
    /* Two steps: the kernel picks the socket's fixed-file slot (from the same range as
     * accepted sockets, so one table holds both and a slot costs one entry, not two), and
     * once io_conn_socket_done() knows it: TCP_NODELAY -> connect -> timeout, one chain. */
    c->connect_addr = a;
    c->connect_ts.tv_sec = (long long)(timeout_ms / 1000);
    c->connect_ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
    c->srv.fidx = -1;
    c->srv.flags = 0;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_SOCKET, c, 0);
    io_uring_prep_socket_direct_alloc(sqe, a->ss.ss_family, SOCK_STREAM, 0, 0);
}

int io_conn_socket_done(struct io_worker *w, struct io_conn *c, int res)
{
    if (res < 0)
        return res;
    c->srv.fidx = res;
    c->srv.flags = IO_SIDE_F_OPEN;
    const struct conf_addr *a = c->connect_addr;
    /* The setsockopt is hard-linked: a kernel without uring_cmd sockopts still connects. */
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    prep_sockopt(sqe, c->srv.fidx, LB_SOCKET_URING_OP_SETSOCKOPT, IPPROTO_TCP, TCP_NODELAY,
                 &one, sizeof(one));
    sqe->flags |= IOSQE_IO_HARDLINK;
    sqe = io_sqe(w, IO_OP_CONNECT, c, 0);
    io_uring_prep_connect(sqe, c->srv.fidx, (const struct sockaddr *)&a->ss, a->len);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
    sqe = io_sqe(w, IO_OP_AUX, c, 0);
    /* The kernel copies the timespec when it prepares the linked timeout, at submission;
     * io_sqe may submit early when the SQ is full, so it lives in the slot, not the stack. */
    io_uring_prep_link_timeout(sqe, &c->connect_ts, 0);
    return 0;
}

void l4_accepted(struct io_worker *w, struct io_conn *c)
{
    const struct conf_listener *lcf = w->ls[c->listener].cf;
    c->cluster = (uint16_t)lcf->cluster_idx;
    c->state = IO_CONN_PEERNAME;
    arm_recv(w, c, &c->cli);
    if (!w->rt->has_peername) {
        start_connect(w, c);
        return;
    }
    io_conn_ask_peername(w, c, lcf);
}

void io_conn_ask_peername(struct io_worker *w, struct io_conn *c, const struct conf_listener *lcf)
{
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_PEERNAME, c, 0);
    unsigned len = lcf->bind.ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in);
    prep_sockopt(sqe, c->cli.fidx, LB_SOCKET_URING_OP_GETSOCKOPT, SOL_SOCKET, SO_PEERNAME,
                 &c->peer, len);
}

uint64_t io_conn_client_hash(const struct io_conn *c)
{
    if (c->peer.v4.sin_family == AF_INET)
        return lb_hash64(&c->peer.v4.sin_addr, 4, 0);
    if (c->peer.v6.sin6_family == AF_INET6)
        return lb_hash64(&c->peer.v6.sin6_addr, 16, 0);
    return 0;
}

static void on_connect(struct io_worker *w, struct io_conn *c, int res)
{
    struct cl_server *srv = &conn_cluster(w, c)->servers[c->server];
    if (res == 0) {
        hc_passive_report(w->rt->hc, c->cluster, (uint32_t)c->server, false);
        atomic_store_explicit(&srv->consecutive_failures, 0, memory_order_relaxed);
        c->state = IO_CONN_OPEN;
        c->srv.flags |= IO_SIDE_F_CONNECTED;
        c->last_ms = w->now_ms;
        arm_recv(w, c, &c->srv);
        pump(w, c, &c->cli, &c->srv);
        return;
    }
    atomic_fetch_add_explicit(&srv->connect_failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
    lb_warn("connect failed", "server=%s address=%s err=%s attempt=%u", srv->cf->name,
            srv->cf->addr.text, res == -ECANCELED ? "timeout" : strerror(-res), c->attempts);
    /* After the line above: an ejection this causes is logged after the failure behind it. */
    hc_passive_report(w->rt->hc, c->cluster, (uint32_t)c->server, true);
    cl_server_release(srv);
    c->counted = 0;

    /* Close the failed socket, if one was made (cancel first: the link timeout may still be
     * pending). Nothing else refers to its slot: the connect and its setsockopt are done. */
    if (c->srv.flags & IO_SIDE_F_OPEN) {
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_cancel_fd(sqe, c->srv.fidx,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_close_direct(sqe, (unsigned)c->srv.fidx);
    }
    c->srv.flags = 0;
    c->srv.fidx = -1;

    /* Nothing was forwarded yet, so another server can take this client. */
    if (c->attempts <= conn_cluster(w, c)->cf->retries) {
        cl_server_count_retry(srv);
        start_connect(w, c);
    }
    else
        io_conn_close(w, c, "connect failed");
}

static void on_recv(struct io_worker *w, struct io_conn *c, struct io_side *s, struct io_side *o,
                    const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        s->flags &= ~IO_SIDE_F_RECV;
    int res = cqe->res;
    if (res > 0) {
        uint16_t b = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        w->buf_len[b] = (uint16_t)res;
        w->buf_off[b] = 0;
        w->buf_next[b] = IO_NOBUF;
        if (s->qtail == IO_NOBUF)
            s->qhead = b;
        else
            w->buf_next[s->qtail] = b;
        s->qtail = b;
        s->qbytes += (uint32_t)res;
        c->last_ms = w->now_ms;
        if (c->server >= 0) {
            struct cl_server *srv = &conn_cluster(w, c)->servers[c->server];
            atomic_fetch_add_explicit(s == &c->cli ? &srv->bytes_out : &srv->bytes_in,
                                      (uint64_t)res, memory_order_relaxed);
        }
        pump(w, c, s, o);
        if (s->qbytes >= L4_HIGH && (s->flags & IO_SIDE_F_RECV) &&
            !(s->flags & IO_SIDE_F_PAUSED)) {
            struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
            io_uring_prep_cancel64(
                sqe, io_ud(s == &c->cli ? IO_OP_RECV_CLI : IO_OP_RECV_SRV, c->gen,
                           io_conn_slot(w, c)),
                0);
            s->flags |= IO_SIDE_F_PAUSED;
        }
    } else if (res == 0) {
        s->flags |= IO_SIDE_F_EOF;
        pump(w, c, s, o);
    } else if (res == -ENOBUFS) {
        s->flags |= IO_SIDE_F_STARVED;
        io_worker_starve(w, c);
    } else if (res != -ECANCELED) {
        lb_debug("recv failed", "side=%s err=%s", s == &c->cli ? "client" : "server",
                 strerror(-res));
        io_conn_close(w, c, "recv error");
        return;
    }
    arm_recv(w, c, s);
    maybe_finish(w, c);
}

static void on_send(struct io_worker *w, struct io_conn *c, struct io_side *s, struct io_side *o,
                    int res)
{
    s->flags &= ~IO_SIDE_F_SENDING;
    if (res < 0) {
        lb_debug("send failed", "to=%s err=%s", o == &c->cli ? "client" : "server",
                 strerror(-res));
        io_conn_close(w, c, "send error");
        return;
    }
    uint16_t b = s->qhead;
    w->buf_off[b] = (uint16_t)(w->buf_off[b] + res);
    s->qbytes -= (uint32_t)res;
    if (w->buf_off[b] >= w->buf_len[b]) {
        s->qhead = w->buf_next[b];
        if (s->qhead == IO_NOBUF)
            s->qtail = IO_NOBUF;
        io_buf_put(w, b);
    }
    c->last_ms = w->now_ms;
    pump(w, c, s, o);
    if ((s->flags & IO_SIDE_F_PAUSED) && s->qhead == IO_NOBUF) {
        s->flags &= ~IO_SIDE_F_PAUSED;
        arm_recv(w, c, s);
    }
    maybe_finish(w, c);
}

void l4_on_cqe(struct io_worker *w, struct io_conn *c, enum io_op kind,
                   const struct io_uring_cqe *cqe)
{
    switch (kind) {
    case IO_OP_PEERNAME:
        if (cqe->res < 0)
            memset(&c->peer, 0, sizeof(c->peer));
        start_connect(w, c);
        break;
    case IO_OP_CONNECT:
        on_connect(w, c, cqe->res);
        break;
    case IO_OP_RECV_CLI:
        on_recv(w, c, &c->cli, &c->srv, cqe);
        break;
    case IO_OP_RECV_SRV:
        on_recv(w, c, &c->srv, &c->cli, cqe);
        break;
    case IO_OP_SEND_SRV:
        on_send(w, c, &c->cli, &c->srv, cqe->res);
        break;
    case IO_OP_SEND_CLI:
        on_send(w, c, &c->srv, &c->cli, cqe->res);
        break;
    case IO_OP_SOCKET:
        if (io_conn_socket_done(w, c, cqe->res) < 0) {
            lb_warn("backend socket failed", "server=%s err=%s", server_name(w, c),
                    strerror(-cqe->res));
            on_connect(w, c, cqe->res);
        }
        break;
    default:
        break;
    }
}

void l4_on_starved(struct io_worker *w, struct io_conn *c)
{
    c->cli.flags &= ~IO_SIDE_F_STARVED;
    c->srv.flags &= ~IO_SIDE_F_STARVED;
    arm_recv(w, c, &c->cli);
    arm_recv(w, c, &c->srv);
}

void l4_tick(struct io_worker *w, struct io_conn *c)
{
    uint64_t idle = w->ls[c->listener].cf->idle_timeout_ms;
    if (c->state == IO_CONN_OPEN && idle && w->now_ms - c->last_ms > idle)
        io_conn_close(w, c, "idle timeout");
}
