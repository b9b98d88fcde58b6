/*
 * The upstream side of the HTTP proxy (http_upstream_ops): taking a pooled connection or
 * connecting, sending the rewritten request and its body, parsing and relaying the
 * response, retries when a request failed before any answer began, and giving the
 * connection back to its server's pool.
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
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/io/tls.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "lb/tls/tls.h"
#include "static/snap.h"

/*
 * Sends the next piece of @src's queue to @dst (on connection @dc), as far as the body
 * framer @body allows. Returns 1 when a send was started, 0 when there is nothing to send
 * now, -1 on bad framing.
 */
int http_send_body(struct io_worker *w, struct http_state *h, struct io_stream *src,
                   struct http_conn *dc, struct io_stream *dst)
{
    uint32_t avail;
    const char *p = io_stream_head(w, src, &avail);
    if (!p)
        return 0;
    if (!h->qvalid) {
        if (h->body.done)
            return 0;
        ssize_t n = http_body_feed(&h->body, p, avail);
        if (n < 0)
            return -1;
        h->qvalid = (uint32_t)n;
        if (!n)
            return 0;
    }
    send_on(w, dc, dst, p, h->qvalid < avail ? h->qvalid : avail);
    return 1;
}

/* A cluster with tls: the new connection speaks TLS, offering the last session this worker
 * had with that server. */
static int start_tls(struct io_worker *w, struct http_conn *b, uint32_t server)
{
    const struct tls_client *tc = w->rt->tls ? w->rt->tls->clusters[b->pick.cluster] : NULL;
    if (!tc)
        return 0;
    const struct conf_addr *a = &w->rt->clusters[b->pick.cluster].servers[server].cf->addr;
    char ip[INET6_ADDRSTRLEN];
    const void *src = a->ss.ss_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
    if (!inet_ntop(a->ss.ss_family, src, ip, sizeof(ip)))
        ip[0] = '\0';
    return io_tls_client(w, &b->st, tc->ctx, tc->cf->sni, ip,
                         &hw(w)->tls_sess[b->pick.cluster][server]);
}

void http_backend_acquire(struct io_worker *w, struct http_conn *c)
{
    struct cl_cluster *cl = &w->rt->clusters[c->pick.cluster];
    for (;;) {
        int idx = cl_cluster_pick(cl, &w->cws[c->pick.cluster], c->h.key, &c->pick.tried);
        if (idx < 0) {
            if (!c->pick.tried.n) {
                lb_warn("no usable server", "listener=%s cluster=%s", lcf_of(w, c)->name,
                        cl->cf->name);
                http_local_reply(w, c, 503, false, "Retry-After: 1\r\n");
            } else {
                http_local_reply(w, c, 502, false, NULL);
            }
            return;
        }
        cl_pick_commit(&c->pick, cl, idx);
        c->h.t_pick_ms = w->now_ms;
        c->h.t_conn_ms = 0;
        http_backend_use(w, c, false);
        return;
    }
}

void http_backend_use(struct io_worker *w, struct http_conn *c, bool in_turn)
{
    struct cl_cluster *cl = &w->rt->clusters[c->pick.cluster];
    uint32_t idx = (uint32_t)c->pick.server;
    struct http_conn *b = http_pool_take(w, c->pick.cluster, idx);
    if (b) {
        attach(w, c, b);
        c->h.flags |= H_F_REUSED;
        c->h.phase = HC_FORWARD;
        c->h.t_conn_ms = w->now_ms;
        b->h.t_start_ms = w->now_ms;
        b->base.last_ms = w->now_ms;
        http_backend_send(w, c, b);
        return;
    }
    struct http_srv_conns *q = &hw(w)->srv[c->pick.cluster][idx];
    if (q->unproven >= HTTP_CONNECT_WINDOW || (!in_turn && q->wait_head != NONE)) {
        http_cwait_push(w, c); /* behind those already waiting */
        return;
    }
    b = (struct http_conn *)io_conn_alloc(w, &http_upstream_ops);
    if (!b) {
        lb_warn("request shed: no free slot for a backend connection", "cluster=%s",
                cl->cf->name);
        http_local_reply(w, c, 503, false, "Retry-After: 1\r\n");
        return;
    }
    b->base.state = IO_CONN_CONNECTING;
    b->pick.cluster = c->pick.cluster;
    b->pick.server = (int32_t)idx;
    b->h.peer = NONE;
    b->h.pool_prev = b->h.pool_next = NONE;
    b->h.phase = HS_BUSY;
    b->h.t_start_ms = w->now_ms;
    b->h.t_conn_ms = 0;
    b->h.flags |= H_F_UNPROVEN;
    q->unproven++;
    attach(w, c, b);
    c->h.flags &= ~H_F_REUSED;
    if (start_tls(w, b, idx) < 0) {
        detach(c, b);
        io_conn_close(w, &b->base, "out of memory for TLS");
        http_local_reply(w, c, 503, false, "Retry-After: 1\r\n");
        return;
    }
    io_conn_connect(w, &b->base, &b->st, &b->cx, &cl->servers[idx].cf->addr,
                    cl->cf->connect_timeout_ms);
}

/*
 * The backend connection failed before the response began. Retries when that is safe,
 * else answers 502 (or 504 on a timeout).
 */
void http_request_failed(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                         bool connect_failed, int status, const char *why)
{
    struct cl_cluster *cl = &w->rt->clusters[c->pick.cluster];
    struct cl_server *srv = &cl->servers[c->pick.server];
    detach(c, b);
    io_conn_close(w, &b->base, why);
    if (c->pick.counted) {
        cl_server_release(srv);
        c->pick.counted = 0;
    }
    bool retry = !(c->h.flags & (H_F_RESP_BYTE | H_F_BODY_SENT)) &&
                 (connect_failed || (c->h.flags & H_F_IDEMPOTENT)) &&
                 c->pick.attempts <= cl->cf->retries;
    /* A reused connection that the server had just closed costs no retry budget. */
    if (!connect_failed && (c->h.flags & H_F_REUSED) && !(c->h.flags & H_F_RESP_BYTE) &&
        !(c->h.flags & H_F_BODY_SENT) && (c->h.flags & H_F_IDEMPOTENT)) {
        retry = true;
        c->pick.attempts--;
        c->pick.tried.n--; /* the same server may be asked again, on a fresh connection */
    }
    lb_warn(connect_failed ? "connect failed" : "backend failed",
            "server=%s address=%s err=%s "
            "attempt=%u retry=%s",
            srv->cf->name, srv->cf->addr.text, why, c->pick.attempts, retry ? "yes" : "no");
    /* A pooled connection the server had closed while idle says nothing about its health;
     * everything else here is a failure of that server. */
    if (connect_failed || (c->h.flags & (H_F_RESP_BYTE | H_F_BODY_SENT)) ||
        !(c->h.flags & H_F_REUSED))
        hc_passive_report(w->rt->hc, c->pick.cluster, (uint32_t)c->pick.server, true);
    if (retry) {
        cl_server_count_retry(srv);
        c->h.flags &= ~(H_F_REQ_HDR_SENT | H_F_REQ_DONE | H_F_SENDING_HDR);
        c->h.out_sent = 0;
        c->h.phase = HC_CONNECT;
        http_backend_acquire(w, c);
        return;
    }
    http_local_reply(w, c, status, (c->h.flags & H_F_BODY_SENT) != 0, NULL);
}

/* Sends the next piece of the request: its header, then its body. */
void http_backend_send(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    if ((b->st.flags & IO_ST_F_SENDING) || !(b->st.flags & IO_ST_F_CONNECTED) ||
        (c->h.flags & H_F_REQ_DONE))
        return;
    if (!(c->h.flags & H_F_REQ_HDR_SENT)) {
        b->h.flags |= H_F_SENDING_HDR;
        send_on(w, b, &b->st, c->h.hbuf + c->h.out_off + c->h.out_sent,
                c->h.out_len - c->h.out_sent);
        return;
    }
    b->h.flags &= ~H_F_SENDING_HDR;
    int rc = http_send_body(w, &c->h, &c->st, b, &b->st);
    if (rc < 0) {
        http_local_reply(w, c, 400, true, NULL);
        return;
    }
    if (!rc && c->h.body.done && !c->h.qvalid) {
        c->h.flags |= H_F_REQ_DONE;
        maybe_resume(w, c, &c->st);
    } else if (!rc && (c->st.flags & IO_ST_F_EOF) && c->h.body.mode != HTTP_BODY_CLOSE) {
        /* The client went away in the middle of its body. */
        http_client_close(w, c, "client closed mid-body");
    }
}

/* A request and its response are complete: log, recycle the backend, go on. */
void http_request_done(struct io_worker *w, struct http_conn *c, struct http_conn *b, bool reusable)
{
    struct cl_server *srv = &w->rt->clusters[c->pick.cluster].servers[c->pick.server];
    cl_server_count_status(srv, c->base.listener, c->h.status);
    cl_cluster_observe_latency(&w->rt->clusters[c->pick.cluster],
                               (w->now_ms - c->h.t_start_ms) * 1000);
    cl_latency_observe(&srv->latency, (w->now_ms - c->h.t_start_ms) * 1000);
    http_access_log(w, c, srv->cf->name);
    if (c->pick.counted) {
        cl_server_release(srv);
        c->pick.counted = 0;
    }
    if (b) {
        detach(c, b);
        if (reusable && b->st.qbytes == 0 && !(b->st.flags & IO_ST_F_EOF) &&
            atomic_load_explicit(&srv->flags, memory_order_relaxed) == 0)
            http_pool_put(w, b);
        else
            io_conn_close(w, &b->base, NULL);
    }
    http_client_next(w, c);
}

/* Reads the response header from the backend's queue. Returns false when the caller must
 * stop (error answered, or more bytes needed). */
static const char *server_name_of(struct io_worker *w, struct http_conn *c)
{
    return w->rt->clusters[c->pick.cluster].servers[c->pick.server].cf->name;
}

/* The response header could not be taken (@rc from the parser): fails the request when it
 * never will be. Returns false. */
static bool response_unparsed(struct io_worker *w, struct http_conn *c, struct http_conn *b, int rc,
                              uint32_t max)
{
    if (rc == HTTP_AGAIN && b->h.hlen < max)
        return false; /* more to come */
    if (rc < 0)
        c->h.flags |= H_F_RESP_BYTE; /* no retry: the server answered, badly */
    /* The parser refuses a section that fills the buffer without ending: too large. */
    if (rc == HTTP_AGAIN || b->h.hlen >= max) {
        char why[96];
        snprintf(why, sizeof(why), "response header too large (%u bytes, limit %u)", b->h.hlen,
                 max);
        lb_warn("bad response", "server=%s reason=\"%s\"", server_name_of(w, c), why);
        http_request_failed(w, c, b, false, 502, why);
        return false;
    }
    lb_warn("bad response", "server=%s", server_name_of(w, c));
    http_request_failed(w, c, b, false, 502, "malformed response");
    return false;
}

/* Decides how this exchange ends before the final header that says so is written. A
 * stopping worker (SIGTERM, or a reload replaced its generation) ends it here, and says so
 * in this answer: closing after an answer that did not say it would race with the client's
 * next request on the connection. */
static void response_decide_close(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                                  const struct http_resp *resp)
{
    if (w->stopping)
        c->h.flags |= H_F_CLOSE;
    if (resp->flags & HTTP_F_UNTIL_CLOSE)
        c->h.flags |= H_F_CLOSE;
    if (resp->flags & HTTP_F_CLOSE)
        b->h.flags |= H_F_CLOSE;
    if (!(c->h.flags & H_F_REQ_DONE)) {
        /* Answered before the whole body went up: the rest is unread on both hops. */
        b->h.flags |= H_F_CLOSE;
        c->h.flags |= H_F_CLOSE;
    }
}

/* A 101 to a WebSocket upgrade went through: both directions become plain byte streams. */
static void response_tunnel(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    c->h.status = 101;
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_TUNNEL;
    c->h.body.mode = HTTP_BODY_CLOSE;
    c->h.body.done = false;
    b->h.body.mode = HTTP_BODY_CLOSE;
    b->h.body.done = false;
    b->h.qvalid = 0;
    c->h.flags |= H_F_RESP_HDR;
    c->h.flags &= ~H_F_REQ_DONE;
}

/*
 * The origin answered 304 to the cache's revalidation: the server's part is over (a 304 has
 * no body), as in http_request_done(), and the client gets the refreshed entry from memory.
 */
static void response_revalidated(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                                 const struct http_resp *resp)
{
    struct cl_server *srv = &w->rt->clusters[c->pick.cluster].servers[c->pick.server];
    struct cache_entry *e = http_cache_refresh(w, c, b, resp);
    cl_server_count_status(srv, c->base.listener, 304);
    cl_cluster_observe_latency(&w->rt->clusters[c->pick.cluster],
                               (w->now_ms - c->h.t_start_ms) * 1000);
    if (c->pick.counted) {
        cl_server_release(srv);
        c->pick.counted = 0;
    }
    bool reusable = !(b->h.flags & H_F_CLOSE) && (c->h.flags & H_F_REQ_DONE) && b->st.qbytes == 0 &&
                    !(b->st.flags & IO_ST_F_EOF) &&
                    atomic_load_explicit(&srv->flags, memory_order_relaxed) == 0;
    b->h.out_len = b->h.out_sent = 0;
    detach(c, b);
    if (reusable)
        http_pool_put(w, b);
    else
        io_conn_close(w, &b->base, NULL);
    /* the answer is in hand: http_backend_progress() stops here */
    c->h.flags |= H_F_RESP_HDR | H_F_RESP_DONE;
    http_cache_serve(w, c, e, 200);
}

/* The final response header is parsed and rewritten: its body follows. */
static void response_final(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                           const struct http_resp *resp)
{
    const struct conf_route *r = &lcf_of(w, c)->routes[c->h.route];
    hc_passive_report(w->rt->hc, c->pick.cluster, (uint32_t)c->pick.server, resp->status >= 500);
    if (c->h.reval && resp->status == 304) {
        response_revalidated(w, c, b, resp);
        return;
    }
    if (resp->status >= 500 && http_cache_serve_stale(w, c))
        return; /* stale-if-error: the error answer is dropped with its connection */
    http_cache_reval_answered(w, c); /* a new answer: it fills the cache as a miss would */
    if (c->h.fill)
        http_fill_head(w, c, b, resp);
    else if (r->cache.enabled && hw(w)->cache && c->h.method != HTTP_M_GET)
        http_cache_unsafe_done(w, c, b, resp);
    c->h.status = resp->status;
    c->h.t_resp_ms = w->now_ms;
    http_body_init_resp(&b->h.body, resp);
    b->h.qvalid = 0;
    c->h.flags |= H_F_RESP_HDR;
}

/* Parses the response header queued on @b and rewrites it for @c. Returns true when a
 * header (interim or final) is ready to go to the client. */
static bool backend_on_header(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    uint32_t max = hw(w)->hbuf_size / 2;
    if (!b->h.hbuf) {
        b->h.hbuf = http_hbuf_get(w);
        if (!b->h.hbuf) {
            http_request_failed(w, c, b, false, 502, "no header buffer");
            return false;
        }
        b->h.hlen = b->h.scanned = 0;
    }
    b->h.hlen += q_peek(w, &b->st, b->h.hlen, b->h.hbuf + b->h.hlen, max - b->h.hlen);
    static __thread struct http_resp resp;
    resp.scan.scanned = b->h.scanned;
    int rc = http_parse_response(b->h.hbuf, b->h.hlen, max, (enum http_method)c->h.method, &resp);
    b->h.scanned = resp.scan.scanned;
    if (rc <= 0)
        return response_unparsed(w, c, b, rc, max);
    q_consume(w, &b->st, (uint32_t)rc);
    bool interim = resp.status >= 100 && resp.status < 200;
    bool ws = resp.status == 101 && (c->h.flags & H_F_WS) && (resp.flags & HTTP_F_UPGRADE_WS);
    c->h.flags |= H_F_RESP_BYTE;
    if (resp.status == 101 && !ws) {
        http_request_failed(w, c, b, false, 502, "unrequested protocol switch");
        return false;
    }
    if (!interim)
        response_decide_close(w, c, b, &resp);
    if (!http_build_response(w, c, b, &resp, interim && !ws)) {
        http_request_failed(w, c, b, false, 502, "response header too large");
        return false;
    }
    /* The rewritten header waits in the second half of hbuf; a fresh parse for what
     * follows it. */
    b->h.hlen = b->h.scanned = 0;
    if (ws)
        response_tunnel(w, c, b);
    else if (!interim)
        response_final(w, c, b, &resp);
    /* else: 100 Continue and friends go to the client as they are; the final answer is
     * still to come. */
    return true;
}

/* Moves the response along: parses headers while none is pending, then sends. */
void http_backend_progress(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    while (!(c->h.flags & H_F_RESP_HDR) && !b->h.out_len && b->st.qbytes) {
        if (!backend_on_header(w, c, b))
            return;
    }
    if (!(c->h.flags & H_F_RESP_HDR) && !b->h.out_len && (b->st.flags & IO_ST_F_EOF)) {
        http_request_failed(w, c, b, false, 502, b->h.hlen ? "closed mid-header" : "closed");
        return;
    }
    http_client_send(w, c);
}

static void backend_on_connect(struct io_worker *w, struct http_conn *b, int res)
{
    struct http_conn *c = peer_of(w, b);
    struct cl_server *srv = &w->rt->clusters[b->pick.cluster].servers[b->pick.server];
    if (res == 0) {
        b->base.state = IO_CONN_OPEN;
        b->h.t_conn_ms = w->now_ms;
        atomic_store_explicit(&srv->consecutive_failures, 0, memory_order_relaxed);
        if (!c) {
            hc_passive_report(w->rt->hc, b->pick.cluster, (uint32_t)b->pick.server, false);
            io_conn_close(w, &b->base, "client gone");
            return;
        }
        c->h.phase = HC_FORWARD;
        c->h.t_conn_ms = w->now_ms;
        arm_recv(w, b, &b->st);
        http_backend_send(w, c, b);
        return;
    }
    atomic_fetch_add_explicit(&srv->connect_failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
    if (!c) {
        hc_passive_report(w->rt->hc, b->pick.cluster, (uint32_t)b->pick.server, true);
        io_conn_close(w, &b->base, "connect failed");
        return;
    }
    if ((res == -ENFILE || res == -EMFILE) && !(b->st.flags & IO_ST_F_OPEN)) {
        /* No socket could be made: the file table is full, the server is not at fault. */
        atomic_fetch_sub_explicit(&srv->connect_failures, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
        detach(c, b);
        io_conn_close(w, &b->base, "no file slot");
        cl_pick_undo(&c->pick, &w->rt->clusters[c->pick.cluster]);
        http_fdwait_push(w, c);
        return;
    }
    http_request_failed(w, c, b, true, res == -ECANCELED ? 504 : 502,
                        res == -ECANCELED ? "connect timeout" : strerror(-res));
}

static void backend_on_recv(struct io_worker *w, struct http_conn *b, int res)
{
    struct http_conn *c = peer_of(w, b);
    if (res > 0) {
        if (!c) {
            /* Bytes from an idle server are a protocol error: it cannot be reused. */
            io_conn_close(w, &b->base, "unexpected bytes on an idle connection");
            return;
        }
        struct cl_server *srv = &w->rt->clusters[b->pick.cluster].servers[b->pick.server];
        atomic_fetch_add_explicit(&srv->bytes_in, (uint64_t)res, memory_order_relaxed);
        if (b->h.flags & H_F_UNPROVEN)
            http_conn_proven(w, b); /* the server serves it: room for another connect */
        maybe_pause(w, b, &b->st);
    } else if (res < 0) {
        if (c && !(c->h.flags & H_F_RESP_HDR)) {
            http_request_failed(w, c, b, false, 502, strerror(-res));
            return;
        }
        if (c)
            http_client_close(w, c, "backend recv error");
        io_conn_close(w, &b->base, "backend recv error");
        return;
    }
    if (!c) {
        if (b->st.flags & IO_ST_F_EOF)
            io_conn_close(w, &b->base, NULL); /* an idle pooled connection closed by the server */
        return;
    }
    if (c->h.phase == HC_TUNNEL && (b->st.flags & IO_ST_F_EOF) && !b->st.qbytes &&
        !(c->st.flags & IO_ST_F_SENDING) && !b->h.out_len) {
        http_client_close(w, c, NULL);
        return;
    }
    http_backend_progress(w, c, b);
}

static void backend_on_send(struct io_worker *w, struct http_conn *b, int res)
{
    struct http_conn *c = peer_of(w, b);
    if (!c) {
        io_conn_close(w, &b->base, "client gone");
        return;
    }
    if (res < 0) {
        if (!(c->h.flags & H_F_RESP_HDR)) {
            http_request_failed(w, c, b, false, 502, strerror(-res));
            return;
        }
        http_client_close(w, c, "backend send error");
        return;
    }
    struct cl_server *srv = &w->rt->clusters[b->pick.cluster].servers[b->pick.server];
    atomic_fetch_add_explicit(&srv->bytes_out, (uint64_t)res, memory_order_relaxed);
    if (b->h.flags & H_F_SENDING_HDR) {
        c->h.out_sent += (uint32_t)res;
        if (c->h.out_sent >= c->h.out_len) {
            c->h.flags |= H_F_REQ_HDR_SENT;
            b->h.flags &= ~H_F_SENDING_HDR;
            b->h.t_start_ms = w->now_ms;
        }
    } else {
        q_consume(w, &c->st, (uint32_t)res);
        c->h.qvalid -= (uint32_t)res;
        c->h.bytes_in += (uint32_t)res;
        c->h.flags |= H_F_BODY_SENT;
        maybe_resume(w, c, &c->st);
    }
    http_backend_send(w, c, b);
    if (c->h.phase == HC_TUNNEL && (c->st.flags & IO_ST_F_EOF) && !c->st.qbytes &&
        !(b->st.flags & IO_ST_F_SENDING))
        shutdown_wr(w, b, &b->st);
}

static void upstream_recv_op(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    backend_on_recv(w, hc(c), res);
}

static void upstream_sent_op(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    backend_on_send(w, hc(c), res);
}

static void upstream_connect_op(struct io_worker *w, struct io_conn *c, struct io_stream *s,
                                int res)
{
    backend_on_connect(w, hc(c), res);
}

static void upstream_on_close(struct io_worker *w, struct io_conn *base)
{
    struct http_conn *c = hc(base);
    if (c->h.phase == HS_IDLE)
        http_pool_unlink(w, c);
    http_conn_proven(w, c); /* its place in the window is free */
    c->h.phase = HS_BUSY;
    struct http_conn *cl = peer_of(w, c);
    detach(NULL, c);
    if (cl) {
        cl->h.peer = NONE;
        if (!(cl->h.flags & H_F_RESP_HDR) && cl->h.phase == HC_FORWARD) {
            /* Closed under a request before it was answered. */
            http_local_reply(w, cl, 502, true, NULL);
        } else if (cl->h.phase == HC_FORWARD || cl->h.phase == HC_TUNNEL ||
                   cl->h.phase == HC_CONNECT) {
            io_conn_close(w, &cl->base, "backend closed");
        }
    }
}

const struct io_conn_ops http_upstream_ops = {
    .name = "http-upstream",
    .size = sizeof(struct http_conn),
    .nstreams = 1,
    .stream_off = {offsetof(struct http_conn, st)},
    .connect_stream = 0,
    .connect_off = offsetof(struct http_conn, cx),
    .on_recv = upstream_recv_op,
    .on_sent = upstream_sent_op,
    .on_connect = upstream_connect_op,
    .tick = http_tick,
    .on_close = upstream_on_close,
    .on_free = http_on_free,
};
