/*
 * L7 (protocol: http): an HTTP/1.1 reverse proxy on the worker's ring. This file: the
 * client side (http_client_ops).
 *
 * A client connection (IO_CK_HCLI) owns its socket and a queue of received buffers. Each
 * request's header section is copied from that queue into a pool buffer (hbuf), parsed
 * strictly (lb/http/h1_parse.c), routed, and rewritten into the second half of the same hbuf
 * (hop-by-hop fields dropped, X-Forwarded-For/-Proto and Via added). The request is then
 * sent on a backend connection (IO_CK_HSRV, its own slot) taken from the server's idle pool
 * or connected anew; the body follows straight from the client's queue, checked by the
 * body framer as it goes, never buffered whole. The response comes back the same way: its
 * header is parsed and rewritten in the backend's hbuf, its body streamed from the
 * backend's queue. When both messages are complete the backend goes back to its pool (if
 * its framing allows reuse) and the client's next request, perhaps already queued behind
 * this one (pipelining), is parsed.
 *
 *   client phases: IDLE -> HEADER -> (CONNECT) -> FORWARD -> IDLE ...
 *                  any -> LOCAL (an answer of lb's own) -> IDLE or LINGER -> closed
 *                  FORWARD -> TUNNEL (after 101 Switching Protocols to a WebSocket upgrade)
 *
 * Back-pressure: a queue over HTTP_HIGH bytes stops its socket's recv until it drains,
 * exactly as in L4. One send in flight per socket.
 *
 * Retries: a connect failure is retried on another server whatever the method (nothing
 * reached the failed one). A reused pooled connection that dies before any response byte
 * is retried on a fresh connection for idempotent methods only, and only when no body
 * byte was sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/cache.h"
#include "lb/core/limits.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "static/snap.h"

/* Per-address limits of the listener: true when lb answered 429 instead of the request. */
static bool over_limit(struct io_worker *w, struct http_conn *c)
{
    struct lb_limits *lim = w->rt->limits ? w->rt->limits[c->base.listener] : NULL;
    if (!lim)
        return false;
    if (c->h.limit & H_LIMIT_OVER) {
        http_local_reply(w, c, 429, true, "Retry-After: 1\r\n");
        return true;
    }
    if (lim->max_rate && !lb_limit_rate_take(lim, io_peer_hash(&c->peer), w->now_ms)) {
        http_local_reply(w, c, 429, false, "Retry-After: 1\r\n");
        return true;
    }
    return false;
}

/* Routes a parsed request and starts it on its way. */
static void client_dispatch(struct io_worker *w, struct http_conn *c, struct http_req *req)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    const char *buf = c->h.hbuf;
    /* CONNECT, 404/405, 501 and 413 are route_decide's answers (and explain's). */
    struct route_decision d;
    if (over_limit(w, c))
        return;
    if (route_decide(w->rt->conf, lcf, buf, req, io_peer_hash(&c->peer), &d)) {
        if (d.route >= 0 && d.action == CONF_ACT_REDIRECT && d.answer.status < 400) {
            c->h.route = (uint16_t)d.route;
            http_redirect_reply(w, c, d.answer.status, d.answer.close, &d.location);
            return;
        }
        if (d.route >= 0 && d.action == CONF_ACT_ENQUEUE && d.answer.status == 413)
            atomic_fetch_add_explicit(&w->rt->lstats[c->base.listener].enq[METRICS_ENQ_TOO_LARGE],
                                      1, memory_order_relaxed);
        http_local_reply(w, c, d.answer.status, d.answer.close,
                         d.answer.hdr[0] ? d.answer.hdr : NULL);
        return;
    }
    const struct conf_route *r = &lcf->routes[d.route];
    c->h.route = (uint16_t)d.route;
    if (d.action == CONF_ACT_ENQUEUE) {
        http_enq_begin(w, c, req);
        return;
    }
    if (d.set >= 0) {
        int fallback;
        if (http_static_serve(w, c, r, req, &fallback))
            return;
        /* static_serve answered hits and bad paths; fallback < 0 also when no snapshot can
         * have the path. */
        if (route_static_miss(&d, req, fallback < 0 ? -ENAMETOOLONG : -ENOENT)) {
            http_local_reply(w, c, d.answer.status, d.answer.close, NULL);
            return;
        }
    }
    c->pick.cluster = (uint16_t)d.cluster;
    if (!http_build_request(w, c, req)) {
        http_local_reply(w, c, 431, true, NULL);
        return;
    }
    c->h.key = d.key_hash;
    memset(&c->pick.tried, 0, sizeof(c->pick.tried));
    c->pick.attempts = 0;
    c->h.phase = HC_CONNECT;
    if (r->cache.enabled && hw(w)->cache && req->method == HTTP_M_GET &&
        http_cache_request(w, c, r, buf, req))
        return;
    http_backend_acquire(w, c);
}

/* A new request begins on @c: its per-request state starts over. */
static void request_begin(struct io_worker *w, struct http_conn *c)
{
    c->h.phase = HC_HEADER;
    c->h.t_start_ms = w->now_ms;
    c->h.flags = 0;
    c->h.bytes_in = c->h.bytes_out = 0;
    c->h.status = 0;
    c->h.target_len = 0;
    c->h.t_resp_ms = c->h.t_pick_ms = c->h.t_conn_ms = 0;
    http_request_id_begin(w, c);
    memset(&c->h.body, 0, sizeof(c->h.body));
    c->h.body.done = true;
    c->h.route = 0;
    c->h.xcache = H_XC_NONE;
    http_cache_reval_drop(c);
}

/* The H_F_* flags a parsed request gives its exchange. */
static uint32_t request_flags(const struct http_req *req)
{
    uint32_t f = 0;
    if (req->flags & HTTP_F_CLOSE)
        f |= H_F_CLOSE | H_F_CLIENT_CLOSE;
    if (req->version_minor == 0 && (req->flags & HTTP_F_KEEPALIVE) && !(req->flags & HTTP_F_CLOSE))
        f |= H_F_KEEPALIVE10;
    if (req->flags & HTTP_F_UPGRADE_WS)
        f |= H_F_WS;
    if (req->flags & HTTP_F_EXPECT_CONTINUE)
        f |= H_F_CONTINUE;
    switch (req->method) {
    case HTTP_M_GET:
    case HTTP_M_HEAD:
    case HTTP_M_OPTIONS:
    case HTTP_M_PUT:
    case HTTP_M_DELETE:
    case HTTP_M_TRACE:
        f |= H_F_IDEMPOTENT;
        break;
    default:
        break;
    }
    if (req->method == HTTP_M_HEAD)
        f |= H_F_HEAD;
    return f;
}

/* The request header is not complete (@rc HTTP_AGAIN) or is refused (@rc < 0). */
static void request_unparsed(struct io_worker *w, struct http_conn *c, int rc, uint32_t max)
{
    if (rc == HTTP_AGAIN) {
        if (c->h.hlen >= max)
            http_local_reply(w, c, 431, true, NULL);
        else if (c->st.flags & IO_ST_F_EOF)
            http_client_close(w, c, c->h.hlen ? "client closed mid-header" : NULL);
        return;
    }
    c->h.method = HTTP_M_OTHER;
    lb_info("bad request", "listener=%s status=%d", lcf_of(w, c)->name, -rc);
    http_local_reply(w, c, -rc, true, NULL);
}

/* Bytes arrived while a request header is due: parse what is there, and route the request
 * once its header is whole. */
static void client_on_header(struct io_worker *w, struct http_conn *c)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    uint32_t max = (uint32_t)lcf->max_header_bytes;
    if (max > hw(w)->hbuf_size / 2)
        max = hw(w)->hbuf_size / 2;
    if (!c->h.hbuf) {
        c->h.hbuf = http_hbuf_get(w);
        if (!c->h.hbuf) {
            lb_warn("request shed: no header buffer", "listener=%s", lcf->name);
            http_client_close(w, c, "no header buffer");
            return;
        }
        c->h.hlen = c->h.scanned = 0;
    }
    if (c->h.phase == HC_IDLE)
        request_begin(w, c);
    /* Copy what arrived since the last look; one byte past the limit tells "too big"
     * apart from "exactly at the limit". While the header is incomplete, hbuf holds all of
     * it and the queue none: what was copied leaves the queue at once, so a client sending
     * its header a byte at a time holds no receive buffer of the ring, only its hbuf. */
    uint32_t had = c->h.hlen;
    uint32_t got = q_peek(w, &c->st, 0, c->h.hbuf + had, max - had);
    c->h.hlen += got;

    static __thread struct http_req req;
    req.scan.scanned = c->h.scanned;
    size_t max_target = max < 8192 ? max : 8192;
    int rc = http_parse_request(c->h.hbuf, c->h.hlen, max, max_target, &req);
    c->h.scanned = req.scan.scanned;
    if (rc <= 0) {
        if (rc == HTTP_AGAIN)
            q_consume(w, &c->st, got);
        request_unparsed(w, c, rc, max);
        return;
    }
    q_consume(w, &c->st, (uint32_t)rc - had);
    c->h.bytes_in += (uint32_t)rc;
    c->h.method = (uint8_t)req.method;
    c->h.target_off = req.target.off;
    c->h.target_len = req.target.len;
    http_request_id_take(c, c->h.hbuf, &req);
    c->h.t_resp_ms = 0;
    http_body_init_req(&c->h.body, &req);
    c->h.qvalid = 0;
    c->h.flags |= request_flags(&req);
    client_dispatch(w, c, &req);
}

/* A small body already received goes out with the response header, in one send: one
 * submission and one completion fewer per request (a third of the sends of a keep-alive
 * exchange). Content-Length bodies only (their framing cannot fail), never while a cache
 * fill copies the body from the queue, and only what fits behind the header in hbuf. */
#define HTTP_JOIN_MAX 4096

static void join_small_body(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    if (b->h.out_sent || c->h.fill || !(c->h.flags & H_F_RESP_HDR) ||
        b->h.body.mode != HTTP_BODY_LENGTH || (b->h.body.done && !b->h.qvalid))
        return;
    uint32_t avail;
    const char *p = io_stream_head(w, &b->st, &avail);
    if (!p)
        return;
    if (!b->h.qvalid)
        b->h.qvalid = (uint32_t)http_body_feed(&b->h.body, p, avail);
    uint32_t take = b->h.qvalid < avail ? b->h.qvalid : avail;
    uint32_t end = b->h.out_off + b->h.out_len;
    if (!take || take > HTTP_JOIN_MAX || take > hw(w)->hbuf_size - end)
        return;
    memcpy(b->h.hbuf + end, p, take);
    b->h.out_len += take;
    q_consume(w, &b->st, take);
    b->h.qvalid -= take;
}

/* Sends the next piece of the response to the client: header, then body. */
void http_client_send(struct io_worker *w, struct http_conn *c)
{
    struct http_conn *b = peer_of(w, c);
    if (!b || (c->st.flags & IO_ST_F_SENDING))
        return;
    if (b->h.out_len && b->h.out_sent < b->h.out_len) {
        join_small_body(w, c, b);
        c->h.flags |= H_F_SENDING_HDR;
        send_on(w, c, &c->st, b->h.hbuf + b->h.out_off + b->h.out_sent,
                b->h.out_len - b->h.out_sent);
        return;
    }
    c->h.flags &= ~H_F_SENDING_HDR;
    if (!(c->h.flags & H_F_RESP_HDR))
        return;
    int rc = http_send_body(w, &b->h, &b->st, c, &c->st);
    if (rc < 0) {
        lb_warn("bad response body framing", "server=%s",
                w->rt->clusters[c->pick.cluster].servers[c->pick.server].cf->name);
        /* The header is out: all we can do is cut the connection. */
        http_client_close(w, c, "bad response framing");
        return;
    }
    if (rc)
        return;
    maybe_resume(w, b, &b->st);
    if (c->h.phase == HC_TUNNEL) {
        if (b->st.flags & IO_ST_F_EOF)
            http_client_close(w, c, NULL);
        return;
    }
    bool eof_end = b->h.body.mode == HTTP_BODY_CLOSE && (b->st.flags & IO_ST_F_EOF);
    if ((b->h.body.done && !b->h.qvalid) || eof_end) {
        c->h.flags |= H_F_RESP_DONE;
        if (!(c->h.flags & H_F_REQ_DONE))
            c->h.flags |= H_F_CLOSE;
        bool reusable = !(b->h.flags & H_F_CLOSE) && !eof_end && (c->h.flags & H_F_REQ_DONE);
        b->h.out_len = b->h.out_sent = 0;
        if (eof_end)
            http_fill_abort(w, c);
        else
            http_fill_commit(w, c);
        http_request_done(w, c, b, reusable);
    } else if (b->st.flags & IO_ST_F_EOF) {
        lb_warn("backend closed mid-response", "server=%s",
                w->rt->clusters[c->pick.cluster].servers[c->pick.server].cf->name);
        http_client_close(w, c, "backend closed mid-response");
    }
}

/* ---- client life ---- */

void http_client_close(struct io_worker *w, struct http_conn *c, const char *why)
{
    if (c->h.phase != HC_IDLE && c->h.phase != HC_LINGER && c->h.status == 0 && why)
        lb_info("request aborted", "listener=%s reason=\"%s\"", lcf_of(w, c)->name, why);
    io_conn_close(w, &c->base, why);
}

/* The current exchange is over: close, or wait for (or parse) the next request. */
void http_client_next(struct io_worker *w, struct http_conn *c)
{
    http_enq_free(c);
    if (c->h.flags & H_F_CLOSE) {
        /* The client asked for the close, its whole request was read and nothing more is
         * queued: closing now sends FIN after the answer, and nothing unread can turn it
         * into a reset. That saves the shutdown, which io_uring runs on a worker thread. */
        if ((c->h.flags & H_F_CLIENT_CLOSE) && c->h.body.done && !c->st.qbytes) {
            http_hbuf_put(w, &c->h);
            io_conn_close(w, &c->base, NULL);
            return;
        }
        /* Otherwise let the client read the answer before the socket closes: FIN now,
         * close when it answers with its own or after LINGER_MS. */
        c->h.phase = HC_LINGER;
        c->base.last_ms = w->now_ms;
        q_drop(w, &c->st);
        shutdown_wr(w, c, &c->st);
        http_hbuf_put(w, &c->h);
        if (c->st.flags & IO_ST_F_EOF)
            io_conn_close(w, &c->base, NULL);
        else
            maybe_resume(w, c, &c->st);
        return;
    }
    c->h.phase = HC_IDLE;
    c->h.flags = 0;
    c->h.qvalid = 0;
    c->base.last_ms = w->now_ms;
    http_hbuf_put(w, &c->h);
    maybe_resume(w, c, &c->st);
    if (c->st.qbytes)
        client_on_header(w, c); /* a pipelined request is already here */
    else if (c->st.flags & IO_ST_F_EOF)
        io_conn_close(w, &c->base, NULL);
    else
        http_park_later(w, c);
}

/* ---- completions ---- */

static void client_on_recv(struct io_worker *w, struct http_conn *c, int res)
{
    if (res > 0) {
        if (c->h.phase == HC_LINGER)
            q_drop(w, &c->st); /* answered already: the rest is discarded */
        else
            maybe_pause(w, c, &c->st);
    } else if (res == 0) {
        c->h.flags |= H_F_CLIENT_EOF;
    } else {
        http_client_close(w, c, "client recv error");
        return;
    }
    switch (c->h.phase) {
    case HC_IDLE:
    case HC_HEADER:
        if (c->st.qbytes)
            client_on_header(w, c);
        else if (c->st.flags & IO_ST_F_EOF)
            io_conn_close(w, &c->base, NULL);
        break;
    case HC_FORWARD:
    case HC_TUNNEL: {
        struct http_conn *b = peer_of(w, c);
        if (b)
            http_backend_send(w, c, b);
        if (c->h.phase == HC_TUNNEL && (c->st.flags & IO_ST_F_EOF) && !c->st.qbytes && b &&
            !(b->st.flags & IO_ST_F_SENDING))
            shutdown_wr(w, b, &b->st);
        break;
    }
    case HC_LINGER:
        if (c->st.flags & IO_ST_F_EOF)
            io_conn_close(w, &c->base, NULL);
        break;
    case HC_ENQ_BODY:
        http_enq_progress(w, c);
        break;
    default:
        break;
    }
}

static void client_on_send(struct io_worker *w, struct http_conn *c, int res)
{
    if (res < 0) {
        http_client_close(w, c, "client send error");
        return;
    }
    c->h.bytes_out += (uint32_t)res;
    if (http_enq_sent(w, c, res))
        return;
    if (c->h.phase == HC_STATIC) {
        uint32_t n = (uint32_t)res;
        for (int i = 0; i < 2 && n; i++) {
            uint32_t take = n < c->h.xl[i] ? n : c->h.xl[i];
            c->h.xp[i] += take;
            c->h.xl[i] -= take;
            n -= take;
        }
        http_client_send_static(w, c);
        return;
    }
    if (c->h.phase == HC_LOCAL) {
        c->h.out_sent += (uint32_t)res;
        if (c->h.out_sent < c->h.out_len) {
            send_on(w, c, &c->st, c->h.hbuf + c->h.out_off + c->h.out_sent,
                    c->h.out_len - c->h.out_sent);
            return;
        }
        c->h.flags &= ~H_F_SENDING_HDR;
        http_access_log(w, c, "-");
        http_client_next(w, c);
        return;
    }
    struct http_conn *b = peer_of(w, c);
    if (!b) {
        http_client_close(w, c, "backend gone");
        return;
    }
    if (c->h.flags & H_F_SENDING_HDR) {
        b->h.out_sent += (uint32_t)res;
        if (b->h.out_sent >= b->h.out_len) {
            b->h.out_len = b->h.out_sent = 0;
            c->h.flags &= ~H_F_SENDING_HDR;
            if (c->h.phase == HC_TUNNEL) {
                /* The 101 is out: the request side becomes a plain byte stream too. */
                c->h.qvalid = 0;
                http_backend_send(w, c, b);
            }
            if (!(c->h.flags & H_F_RESP_HDR)) {
                /* An interim answer went out; the final one may be queued already. */
                http_backend_progress(w, c, b);
                return;
            }
        }
    } else {
        if (c->h.fill) {
            uint32_t hl;
            const char *hp = io_stream_head(w, &b->st, &hl);
            if (cache_fill_append(hw(w)->cache, c->h.fill, hp, (size_t)res) < 0)
                http_fill_abort(w, c);
        }
        q_consume(w, &b->st, (uint32_t)res);
        b->h.qvalid -= (uint32_t)res;
    }
    http_client_send(w, c);
}

/* ---- connection kinds ---- */

static void client_accepted(struct io_worker *w, struct io_conn *base)
{
    struct http_conn *c = hc(base);
    c->h.peer = NONE;
    c->h.pool_prev = c->h.pool_next = NONE;
    c->h.phase = HC_IDLE;
    c->h.t_start_ms = w->now_ms; /* a TLS handshake must end within the header timeout */
    if (w->rt->has_peername) {
        /* The address is needed only when the request is forwarded, by which time this
         * completion is long in: it was submitted first. */
        io_conn_ask_peername(w, base, &c->st, &c->peer, lcf_of(w, c));
    }
    arm_recv(w, c, &c->st);
}

static void client_on_peername(struct io_worker *w, struct io_conn *base, int res)
{
    struct http_conn *c = hc(base);
    if (res < 0) {
        memset(&c->peer, 0, sizeof(c->peer));
        return;
    }
    struct lb_limits *lim = w->rt->limits ? w->rt->limits[base->listener] : NULL;
    if (lim && lim->max_conns)
        c->h.limit =
            lb_limit_conn_take(lim, io_peer_hash(&c->peer)) ? H_LIMIT_COUNTED : H_LIMIT_OVER;
}

static void client_recv_op(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    client_on_recv(w, hc(c), res);
}

static void client_sent_op(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    client_on_send(w, hc(c), res);
}

static void client_on_close(struct io_worker *w, struct io_conn *base)
{
    struct http_conn *c = hc(base);
    if (c->h.limit & H_LIMIT_COUNTED)
        lb_limit_conn_put(w->rt->limits[base->listener], io_peer_hash(&c->peer));
    c->h.limit = 0;
    http_enq_free(c);
    http_fill_abort(w, c);
    http_fdwait_unlink(w, c);
    http_cwait_unlink(w, c);
    cl_pick_release(&c->pick, &w->rt->clusters[c->pick.cluster]);
    struct http_conn *b = peer_of(w, c);
    if (b) {
        detach(c, b);
        io_conn_close(w, &b->base, "client closed");
    }
}

void http_on_free(struct io_worker *w, struct io_conn *base)
{
    struct http_conn *c = hc(base);
    http_hbuf_put(w, &c->h);
    snap_set_unref(c->h.snap);
    c->h.snap = NULL;
    if (c->h.centry)
        cache_entry_unref(c->h.centry);
    c->h.centry = NULL;
    http_cache_reval_drop(c);
}

const struct io_conn_ops http_client_ops = {
    .name = "http-client",
    .size = sizeof(struct http_conn),
    .nstreams = 1,
    .stream_off = {offsetof(struct http_conn, st)},
    .accepted = client_accepted,
    .on_recv = client_recv_op,
    .on_sent = client_sent_op,
    .on_peername = client_on_peername,
    .on_fd_ready = http_on_fd_ready,
    .tick = http_tick,
    .on_close = client_on_close,
    .on_free = http_on_free,
};
