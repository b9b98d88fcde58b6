/*
 * Idle keep-alive clients at rest (http_parked_ops): a client connection that has waited
 * between requests for a tick moves out of its struct http_conn (about 400 bytes, most of
 * it per-request state: parser, header buffer, upstream link, cache, enqueue and log
 * fields) into a struct http_parked holding only what outlives a request: the io part
 * (slot, generation, timers, lists), its stream (socket, TLS state), the client's address
 * and its per-address limit. Its next completion (the request's first bytes, a FIN)
 * moves it back into a full object before the completion is handled (io_conn_ops.wake),
 * so the rest of lb/http never sees a parked client. Both objects come from the worker's
 * pools: no allocation per request, and a busy connection (idle for less than a tick)
 * never moves at all.
 */
#include <stddef.h>
#include <string.h>

#include "lb/core/limits.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/io/tls.h"

/* What an idle client keeps. */
struct http_parked {
    struct io_conn base;
    struct io_stream st;
    union io_peer peer; /* the client's address (per-address limits, client_ip hashes) */
    uint8_t limit;      /* H_LIMIT_* */
};

static struct http_parked *parked(struct io_conn *c)
{
    return (struct http_parked *)c;
}

/* True when @c holds nothing but what struct http_parked keeps: between requests, nothing
 * queued, sent or waited for, no buffer, reference or upstream, and a recv armed to wake
 * it. The recv must be its only operation in flight: the kernel writes some results into
 * the object itself (the peer address of io_conn_ask_peername), and must not find it
 * moved. */
static bool restful(const struct http_conn *c)
{
    const struct http_state *h = &c->h;
    uint16_t busy = IO_ST_F_PAUSED | IO_ST_F_EOF | IO_ST_F_SENDING | IO_ST_F_SHUT | IO_ST_F_STARVED;
    return c->base.state == IO_CONN_OPEN && c->base.inflight == 1 &&
           !(c->base.flags & IO_CONN_F_FDWAIT) && h->phase == HC_IDLE && !h->flags && !h->hbuf &&
           h->peer == NONE && !h->snap && !h->centry && !h->fill && !h->enq && !h->reval &&
           !c->pick.counted && !c->st.qbytes && (c->st.flags & IO_ST_F_RECV) &&
           !(c->st.flags & busy) && !io_tls_handshaking(&c->st);
}

bool http_client_park(struct io_worker *w, struct http_conn *c)
{
    if (!restful(c))
        return false;
    struct io_conn *to = io_conn_move_begin(w, &c->base, &http_parked_ops);
    if (!to)
        return false;
    struct http_parked *p = parked(to);
    p->st = c->st;
    p->peer = c->peer;
    p->limit = c->h.limit;
    io_conn_move(w, &c->base, to);
    return true;
}

void http_park_idle(struct io_worker *w)
{
    struct http_worker *x = hw(w);
    for (uint32_t i = 0; i < x->park_n; i++) {
        struct io_conn *c = w->slots[x->park_q[i]];
        if (c && c->ops == &http_client_ops)
            http_client_park(w, hc(c));
    }
    x->park_n = 0;
}

/* A completion for the parked client: back into a full, idle http_conn. */
static struct io_conn *parked_wake(struct io_worker *w, struct io_conn *base)
{
    struct http_parked *p = parked(base);
    struct io_conn *to = io_conn_move_begin(w, base, &http_client_ops);
    if (!to) {
        io_conn_close(w, base, "out of memory for a request");
        return base;
    }
    struct http_conn *c = hc(to);
    c->st = p->st;
    c->peer = p->peer;
    c->h.limit = p->limit;
    c->h.peer = NONE;
    c->h.pool_prev = c->h.pool_next = NONE;
    c->h.phase = HC_IDLE;
    io_conn_move(w, base, to);
    return to;
}

/* The idle client's timeouts, as http_tick has them for HC_IDLE. */
static void parked_tick(struct io_worker *w, struct io_conn *base)
{
    uint64_t idle = w->now_ms - base->last_ms;
    uint64_t limit = w->ls[base->listener].cf->idle_timeout_ms;
    if (w->stopping && idle >= LINGER_MS)
        io_conn_close(w, base, "stopping");
    else if (limit && idle > limit)
        io_conn_close(w, base, "idle timeout");
}

static void parked_on_close(struct io_worker *w, struct io_conn *base)
{
    struct http_parked *p = parked(base);
    if (p->limit & H_LIMIT_COUNTED)
        lb_limit_conn_put(w->rt->limits[base->listener], io_peer_hash(&p->peer));
    p->limit = 0;
}

const struct io_conn_ops http_parked_ops = {
    .name = "http-client-idle",
    .size = sizeof(struct http_parked),
    .nstreams = 1,
    .stream_off = {offsetof(struct http_parked, st)},
    .tick = parked_tick,
    .on_close = parked_on_close,
    .wake = parked_wake,
};
