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
 * Back-pressure: when a stream's queue holds L4_HIGH bytes its recv is paused, and
 * resumed once the queue is empty, so lb's memory never grows with a slow reader.
 * A recv that ends with ENOBUFS (the worker's buffers are all in queues) waits on the
 * worker's starved list until buffers come back.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "health/hc.h"
#include "lb/cluster/pick.h"
#include "lb/core/limits.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/io/tls.h"
#include "lb/l4/l4.h"

#define L4_HIGH (64 * 1024)

struct l4_conn {
    struct io_conn base;
    struct io_stream cli; /* stream 0: the accepted client */
    struct io_stream srv; /* stream 1: the server */
    struct cl_pick pick;
    struct io_connect cx;
    union io_peer peer;
    uint64_t t_accept_ms; /* a TLS handshake must end within the listener's header timeout */
    bool limit_counted;   /* counted in its listener's per-address connections */
};

static struct l4_conn *l4(struct io_conn *c)
{
    return (struct l4_conn *)c;
}

static struct cl_cluster *conn_cluster(struct io_worker *w, struct l4_conn *c)
{
    return &w->rt->clusters[c->pick.cluster];
}

static const char *server_name(struct io_worker *w, struct l4_conn *c)
{
    return c->pick.server >= 0 ? conn_cluster(w, c)->servers[c->pick.server].cf->name : "-";
}

static struct io_stream *other(struct l4_conn *c, struct io_stream *s)
{
    return s == &c->cli ? &c->srv : &c->cli;
}

/* Sends what stream @s received to stream @o, or passes its FIN on when nothing is left. */
static void pump(struct io_worker *w, struct l4_conn *c, struct io_stream *s, struct io_stream *o)
{
    if ((o->flags & IO_ST_F_SENDING) || !(o->flags & IO_ST_F_CONNECTED) ||
        !(o->flags & IO_ST_F_OPEN))
        return;
    uint32_t len;
    const char *p = io_stream_head(w, s, &len);
    if (p)
        io_stream_send(w, &c->base, o, p, len);
    else if (s->flags & IO_ST_F_EOF)
        io_stream_shutdown(w, &c->base, o);
}

static void maybe_finish(struct io_worker *w, struct l4_conn *c)
{
    const uint32_t done = IO_ST_F_EOF | IO_ST_F_SHUT;
    if ((c->cli.flags & done) == done && (c->srv.flags & done) == done &&
        !((c->cli.flags | c->srv.flags) & IO_ST_F_SENDING))
        io_conn_close(w, &c->base, NULL);
}

static void start_connect(struct io_worker *w, struct l4_conn *c)
{
    struct cl_cluster *cl = conn_cluster(w, c);
    int idx = cl_cluster_pick(cl, &w->cws[c->pick.cluster], io_peer_hash(&c->peer), &c->pick.tried);
    if (idx < 0) {
        lb_warn("no usable server", "listener=%s cluster=%s", w->ls[c->base.listener].cf->name,
                cl->cf->name);
        io_conn_close(w, &c->base, "no usable server");
        return;
    }
    struct cl_server *srv = cl_pick_commit(&c->pick, cl, idx);
    c->base.state = IO_CONN_CONNECTING;
    io_conn_connect(w, &c->base, &c->srv, &c->cx, cl_server_addr(srv), cl->cf->connect_timeout_ms);
}

static void l4_accepted(struct io_worker *w, struct io_conn *base)
{
    struct l4_conn *c = l4(base);
    const struct conf_listener *lcf = w->ls[base->listener].cf;
    cl_pick_init(&c->pick, (uint16_t)lcf->cluster_idx);
    c->t_accept_ms = w->now_ms;
    base->state = IO_CONN_PEERNAME;
    io_stream_arm_recv(w, base, &c->cli);
    if (!w->rt->has_peername) {
        start_connect(w, c);
        return;
    }
    io_conn_ask_peername(w, base, &c->cli, &c->peer, lcf);
}

/* Per-address limits of the listener: a connection over them is closed before any server is
 * asked. Returns false when it was. */
static bool within_limits(struct io_worker *w, struct l4_conn *c)
{
    struct lb_limits *lim = w->rt->limits ? w->rt->limits[c->base.listener] : NULL;
    if (!lim)
        return true;
    uint64_t h = io_peer_hash(&c->peer);
    if (lim->max_conns) {
        if (!lb_limit_conn_take(lim, h)) {
            io_conn_close(w, &c->base, "per-address connection limit");
            return false;
        }
        c->limit_counted = true;
    }
    if (lim->max_rate && !lb_limit_rate_take(lim, h, w->now_ms)) {
        io_conn_close(w, &c->base, "per-address rate limit");
        return false;
    }
    return true;
}

static void l4_on_peername(struct io_worker *w, struct io_conn *base, int res)
{
    struct l4_conn *c = l4(base);
    if (res < 0)
        memset(&c->peer, 0, sizeof(c->peer));
    else if (!within_limits(w, c))
        return;
    start_connect(w, c);
}

static void l4_on_connect(struct io_worker *w, struct io_conn *base, struct io_stream *s, int res)
{
    struct l4_conn *c = l4(base);
    struct cl_server *srv = &conn_cluster(w, c)->servers[c->pick.server];
    if (res == 0) {
        hc_passive_report(w->rt->hc, c->pick.cluster, (uint32_t)c->pick.server, false);
        atomic_store_explicit(&srv->consecutive_failures, 0, memory_order_relaxed);
        base->state = IO_CONN_OPEN;
        io_stream_arm_recv(w, base, &c->srv);
        pump(w, c, &c->cli, &c->srv);
        return;
    }
    if (!(c->srv.flags & IO_ST_F_OPEN))
        lb_warn("backend socket failed", "server=%s err=%s", server_name(w, c), strerror(-res));
    atomic_fetch_add_explicit(&srv->connect_failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
    lb_warn("connect failed", "server=%s address=%s err=%s attempt=%u", srv->cf->name,
            srv->cf->addr.text, res == -ECANCELED ? "timeout" : strerror(-res), c->pick.attempts);
    /* After the line above: an ejection this causes is logged after the failure behind it. */
    hc_passive_report(w->rt->hc, c->pick.cluster, (uint32_t)c->pick.server, true);
    cl_pick_release(&c->pick, conn_cluster(w, c));

    /* Close the failed socket, if one was made (cancel first: the link timeout may still be
     * pending). Nothing else refers to its slot: the connect and its setsockopt are done. */
    if (c->srv.flags & IO_ST_F_OPEN) {
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, base, 0);
        io_uring_prep_cancel_fd(sqe, c->srv.fidx,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        io_stream_close_file(w, base, &c->srv);
    }
    io_stream_init(&c->srv, 1);

    /* Nothing was forwarded yet, so another server can take this client. */
    if (c->pick.attempts <= conn_cluster(w, c)->cf->retries) {
        cl_server_count_retry(srv);
        start_connect(w, c);
    } else {
        io_conn_close(w, base, "connect failed");
    }
}

static void l4_on_recv(struct io_worker *w, struct io_conn *base, struct io_stream *s, int res)
{
    struct l4_conn *c = l4(base);
    struct io_stream *o = other(c, s);
    if (res < 0) {
        lb_debug("recv failed", "side=%s err=%s", s == &c->cli ? "client" : "server",
                 strerror(-res));
        io_conn_close(w, base, "recv error");
        return;
    }
    if (res > 0 && c->pick.server >= 0) {
        struct cl_server *srv = &conn_cluster(w, c)->servers[c->pick.server];
        atomic_fetch_add_explicit(s == &c->cli ? &srv->bytes_out : &srv->bytes_in, (uint64_t)res,
                                  memory_order_relaxed);
    }
    pump(w, c, s, o);
    if (s->qbytes >= io_high_water(w, L4_HIGH))
        io_stream_pause(w, base, s);
    maybe_finish(w, c);
}

/* The send in flight on @o carried bytes of the other stream's queue. */
static void l4_on_sent(struct io_worker *w, struct io_conn *base, struct io_stream *o, int res)
{
    struct l4_conn *c = l4(base);
    struct io_stream *s = other(c, o);
    if (res < 0) {
        lb_debug("send failed", "to=%s err=%s", o == &c->cli ? "client" : "server", strerror(-res));
        io_conn_close(w, base, "send error");
        return;
    }
    io_stream_consume(w, s, (uint32_t)res);
    pump(w, c, s, o);
    if (!s->qbytes)
        io_stream_resume(w, base, s);
    maybe_finish(w, c);
}

static void l4_on_close(struct io_worker *w, struct io_conn *base)
{
    struct l4_conn *c = l4(base);
    if (c->limit_counted)
        lb_limit_conn_put(w->rt->limits[base->listener], io_peer_hash(&c->peer));
    c->limit_counted = false;
    cl_pick_release(&c->pick, conn_cluster(w, c));
}

static void l4_tick(struct io_worker *w, struct io_conn *base)
{
    const struct conf_listener *lcf = w->ls[base->listener].cf;
    uint64_t idle = lcf->idle_timeout_ms;
    if (io_tls_handshaking(&l4(base)->cli) &&
        w->now_ms - l4(base)->t_accept_ms > lcf->header_timeout_ms)
        io_conn_close(w, base, "tls handshake timeout");
    else if (base->state == IO_CONN_OPEN && idle && w->now_ms - base->last_ms > idle)
        io_conn_close(w, base, "idle timeout");
}

const struct io_conn_ops l4_ops = {
    .name = "l4",
    .size = sizeof(struct l4_conn),
    .nstreams = 2,
    .stream_off = {offsetof(struct l4_conn, cli), offsetof(struct l4_conn, srv)},
    .connect_stream = 1,
    .connect_off = offsetof(struct l4_conn, cx),
    .accepted = l4_accepted,
    .on_recv = l4_on_recv,
    .on_sent = l4_on_sent,
    .on_connect = l4_on_connect,
    .on_peername = l4_on_peername,
    .tick = l4_tick,
    .on_close = l4_on_close,
};
