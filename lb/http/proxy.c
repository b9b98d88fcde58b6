/*
 * L7 (protocol: http): an HTTP/1.1 reverse proxy on the worker's ring.
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

#include "lb/core/log.h"
#include "lb/route/route.h"
#include "lb/metrics/stats.h"
#include "lb/core/runtime.h"
#include "lb/io/worker.h"
#include "health/hc.h"
#include "lb/cache/cache.h"
#include "static/snap.h"

#define HTTP_HIGH (64 * 1024)
#define NONE UINT32_MAX
#define ALOG_SIZE (64 * 1024)
#define LINGER_MS 1000

enum http_phase {
    HC_IDLE,    /* between requests */
    HC_HEADER,  /* part of a request header received */
    HC_CONNECT, /* request parsed, waiting for a backend connection */
    HC_FORWARD, /* request going up, response coming down */
    HC_LOCAL,   /* sending an answer of our own */
    HC_LINGER,  /* answered and shut down for writing; waiting for the client's FIN */
    HC_TUNNEL,  /* WebSocket after 101: bytes both ways */
    HC_STATIC,  /* sending a snapshot or a cached answer from memory */
    HC_CACHE_WAIT, /* waiting for another request to fetch the answer this one wants */
    HS_BUSY,    /* backend: serving its client */
    HS_IDLE,    /* backend: in its server's pool */
};

/* Client flags (h.flags). */
#define H_F_REQ_HDR_SENT 0x0001  /* rewritten request header fully sent */
#define H_F_REQ_DONE 0x0002      /* request body fully sent */
#define H_F_RESP_HDR 0x0004      /* final response header parsed and rewritten */
#define H_F_RESP_DONE 0x0008     /* response body fully received and checked */
#define H_F_CLOSE 0x0010         /* close the client connection after this response */
#define H_F_SENDING_HDR 0x0020   /* the send in flight is a header (not queue bytes) */
#define H_F_BODY_SENT 0x0040     /* some request body byte reached the backend */
#define H_F_REUSED 0x0080        /* the backend connection came from the pool */
#define H_F_WS 0x0100            /* the request asks for a WebSocket upgrade */
#define H_F_RESP_BYTE 0x0200     /* some response byte arrived from the backend */
#define H_F_IDEMPOTENT 0x0400
#define H_F_HEAD 0x0800          /* HEAD request: the response has no body */
#define H_F_CLIENT_EOF 0x1000    /* the client sent FIN */
#define H_F_KEEPALIVE10 0x2000   /* HTTP/1.0 client asked for keep-alive */
#define H_F_CONTINUE 0x4000      /* the request has Expect: 100-continue */
#define H_F_FDWAIT 0x8000        /* queued for a free file slot (fdwait list) */
#define H_F_CLIENT_CLOSE 0x10000 /* the client said it sends nothing more (Connection: close,
                                    or HTTP/1.0 without keep-alive) */

/* ---- small helpers ---- */

static const struct conf_listener *lcf_of(struct io_worker *w, struct io_conn *c)
{
    return w->ls[c->listener].cf;
}

static struct io_conn *peer_of(struct io_worker *w, struct io_conn *c)
{
    if (c->h.peer == NONE)
        return NULL;
    struct io_conn *p = &w->conns[c->h.peer];
    if (p->gen != c->h.peer_gen || p->state == IO_CONN_FREE || p->state == IO_CONN_CLOSING)
        return NULL;
    return p;
}

static void attach(struct io_worker *w, struct io_conn *c, struct io_conn *b)
{
    c->h.peer = io_conn_slot(w, b);
    c->h.peer_gen = b->gen;
    b->h.peer = io_conn_slot(w, c);
    b->h.peer_gen = c->gen;
}

static void detach(struct io_conn *c, struct io_conn *b)
{
    if (c)
        c->h.peer = NONE;
    if (b)
        b->h.peer = NONE;
}

static char *hbuf_get(struct io_worker *w)
{
    if (w->hbuf_nfree)
        return w->hbuf_free[--w->hbuf_nfree];
    if (w->hbuf_total >= w->nconns)
        return NULL;
    /* The pool grows to its high-water mark once and then only recycles. */
    char *b = malloc(w->hbuf_size);
    if (b)
        w->hbuf_total++;
    return b;
}

static void hbuf_put(struct io_worker *w, struct http_state *h)
{
    if (!h->hbuf)
        return;
    w->hbuf_free[w->hbuf_nfree++] = h->hbuf;
    h->hbuf = NULL;
    h->hlen = h->scanned = 0;
    h->out_off = h->out_len = h->out_sent = 0;
}

/* ---- buffer queues ---- */

static void q_push(struct io_worker *w, struct io_side *s, uint16_t b, uint32_t len)
{
    w->buf_len[b] = (uint16_t)len;
    w->buf_off[b] = 0;
    w->buf_next[b] = IO_NOBUF;
    if (s->qtail == IO_NOBUF)
        s->qhead = b;
    else
        w->buf_next[s->qtail] = b;
    s->qtail = b;
    s->qbytes += len;
}

/* Copies up to @max queued bytes, skipping the first @skip, into @dst. */
static uint32_t q_peek(struct io_worker *w, struct io_side *s, uint32_t skip, char *dst,
                       uint32_t max)
{
    uint32_t n = 0;
    for (uint16_t b = s->qhead; b != IO_NOBUF && n < max; b = w->buf_next[b]) {
        uint32_t avail = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
        if (skip >= avail) {
            skip -= avail;
            continue;
        }
        uint32_t take = avail - skip;
        if (take > max - n)
            take = max - n;
        memcpy(dst + n, io_buf_addr(w, b) + w->buf_off[b] + skip, take);
        n += take;
        skip = 0;
    }
    return n;
}

/* Drops @n bytes from the head of the queue, giving emptied buffers back. */
static void q_consume(struct io_worker *w, struct io_side *s, uint32_t n)
{
    while (n && s->qhead != IO_NOBUF) {
        uint16_t b = s->qhead;
        uint32_t avail = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
        uint32_t take = n < avail ? n : avail;
        w->buf_off[b] = (uint16_t)(w->buf_off[b] + take);
        s->qbytes -= take;
        n -= take;
        if (w->buf_off[b] >= w->buf_len[b]) {
            s->qhead = w->buf_next[b];
            if (s->qhead == IO_NOBUF)
                s->qtail = IO_NOBUF;
            io_buf_put(w, b);
        }
    }
}

static void q_drop(struct io_worker *w, struct io_side *s)
{
    q_consume(w, s, s->qbytes);
}

/* ---- socket operations ---- */

static void arm_recv(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    const uint32_t block = IO_SIDE_F_RECV | IO_SIDE_F_PAUSED | IO_SIDE_F_EOF | IO_SIDE_F_STARVED;
    if (c->state == IO_CONN_CLOSING || !(s->flags & IO_SIDE_F_OPEN) ||
        !(s->flags & IO_SIDE_F_CONNECTED) || (s->flags & block))
        return;
    struct io_uring_sqe *sqe = io_sqe(w, s == &c->cli ? IO_OP_RECV_CLI : IO_OP_RECV_SRV, c, 0);
    io_uring_prep_recv_multishot(sqe, s->fidx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    s->flags |= IO_SIDE_F_RECV;
}

/* Stops receiving on @s while its queue is over the high-water mark. */
static void maybe_pause(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    if (s->qbytes < HTTP_HIGH || !(s->flags & IO_SIDE_F_RECV) || (s->flags & IO_SIDE_F_PAUSED))
        return;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_cancel64(sqe,
                           io_ud(s == &c->cli ? IO_OP_RECV_CLI : IO_OP_RECV_SRV, c->gen,
                                 io_conn_slot(w, c)),
                           0);
    s->flags |= IO_SIDE_F_PAUSED;
}

static void maybe_resume(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    if ((s->flags & IO_SIDE_F_PAUSED) && s->qbytes < HTTP_HIGH / 2) {
        s->flags &= ~IO_SIDE_F_PAUSED;
        arm_recv(w, c, s);
    }
}

/* One send on @s (the socket of @c) of @len bytes at @p. */
static void send_on(struct io_worker *w, struct io_conn *c, struct io_side *s, const char *p,
                    uint32_t len)
{
    struct io_uring_sqe *sqe = io_sqe(w, s == &c->cli ? IO_OP_SEND_CLI : IO_OP_SEND_SRV, c, 0);
    io_uring_prep_send(sqe, s->fidx, p, len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    s->flags |= IO_SIDE_F_SENDING;
}

static void shutdown_wr(struct io_worker *w, struct io_conn *c, struct io_side *s)
{
    if (s->flags & IO_SIDE_F_SHUT)
        return;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_shutdown(sqe, s->fidx, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
    s->flags |= IO_SIDE_F_SHUT;
}

/*
 * Sends the next piece of @src's queue to @dst (on connection @dc), as far as the body
 * framer @body allows. Returns 1 when a send was started, 0 when there is nothing to send
 * now, -1 on bad framing.
 */
static int send_body(struct io_worker *w, struct http_state *h, struct io_side *src,
                     struct io_conn *dc, struct io_side *dst)
{
    if (src->qhead == IO_NOBUF)
        return 0;
    uint16_t b = src->qhead;
    const char *p = io_buf_addr(w, b) + w->buf_off[b];
    uint32_t avail = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
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

/* ---- local answers ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 500: return "Internal Server Error";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void access_log(struct io_worker *w, struct io_conn *c, const char *server);
static void client_next(struct io_worker *w, struct io_conn *c);
static void client_close(struct io_worker *w, struct io_conn *c, const char *why);

/*
 * Answers the current request with @status and a short text body. @close: the connection
 * ends after it (the request's framing is unknown or its body unread). @extra: more header
 * lines, each ending in CRLF, or NULL.
 */
static void fill_abort(struct io_worker *w, struct io_conn *c);

static void local_reply(struct io_worker *w, struct io_conn *c, int status, bool close,
                        const char *extra)
{
    fill_abort(w, c);
    struct io_conn *b = peer_of(w, c);
    if (b) {
        detach(c, b);
        io_conn_close(w, b, "request answered by lb");
    }
    if (c->counted) {
        cl_server_release(&w->rt->clusters[c->cluster].servers[c->server]);
        c->counted = 0;
    }
    if (!c->h.hbuf)
        c->h.hbuf = hbuf_get(w);
    if (!c->h.hbuf) {
        client_close(w, c, "no header buffer for an error answer");
        return;
    }
    /* An unread request body would be taken for the next request. */
    if (w->stopping || (c->h.flags & (H_F_CLOSE | H_F_BODY_SENT)) ||
        (c->h.phase != HC_HEADER && c->h.phase != HC_IDLE && !c->h.body.done))
        close = true;
    const char *reason = reason_of(status);
    char body[96];
    int blen = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    /* The answer goes after whatever the incoming header occupies. */
    uint32_t off = w->hbuf_size / 2;
    int n = snprintf(c->h.hbuf + off, w->hbuf_size - off,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "%s%s\r\n%s",
                     status, reason, blen, extra ? extra : "",
                     close ? "Connection: close\r\n" : "",
                     (c->h.flags & H_F_HEAD) ? "" : body);
    c->h.out_off = off;
    c->h.out_len = (uint32_t)n;
    c->h.out_sent = 0;
    c->h.status = (uint16_t)status;
    c->h.phase = HC_LOCAL;
    if (close)
        c->h.flags |= H_F_CLOSE;
    lb_info("request answered by lb", "listener=%s status=%d", lcf_of(w, c)->name, status);
    if (!(c->cli.flags & IO_SIDE_F_SENDING)) {
        c->h.flags |= H_F_SENDING_HDR;
        send_on(w, c, &c->cli, c->h.hbuf + off, c->h.out_len);
    }
}

/* ---- the backend pool ---- */

static void pool_unlink(struct io_worker *w, struct io_conn *b)
{
    uint32_t *head = &w->pool_head[b->cluster][b->server];
    uint32_t slot = io_conn_slot(w, b);
    if (b->h.pool_prev != NONE)
        w->conns[b->h.pool_prev].h.pool_next = b->h.pool_next;
    else if (*head == slot)
        *head = b->h.pool_next;
    if (b->h.pool_next != NONE)
        w->conns[b->h.pool_next].h.pool_prev = b->h.pool_prev;
    b->h.pool_prev = b->h.pool_next = NONE;
}

static void pool_put(struct io_worker *w, struct io_conn *b)
{
    uint32_t *head = &w->pool_head[b->cluster][b->server];
    b->h.phase = HS_IDLE;
    b->h.pool_prev = NONE;
    b->h.pool_next = *head;
    if (*head != NONE)
        w->conns[*head].h.pool_prev = io_conn_slot(w, b);
    *head = io_conn_slot(w, b);
    b->last_ms = w->now_ms;
    hbuf_put(w, &b->h);
    /* A recv stays armed: it holds no buffer, and tells us at once when the server closes
     * the idle connection. */
    arm_recv(w, b, &b->srv);
    /* A request queued for a file slot can have this connection instead. */
    if (w->fdwait_head != NONE)
        http_fd_freed(w);
}

static struct io_conn *pool_take(struct io_worker *w, uint32_t cluster, uint32_t server)
{
    uint32_t slot = w->pool_head[cluster][server];
    if (slot == NONE)
        return NULL;
    struct io_conn *b = &w->conns[slot];
    pool_unlink(w, b);
    b->h.phase = HS_BUSY;
    return b;
}

/* ---- requests ---- */

static int client_ip_text(const struct io_conn *c, char *out, size_t n)
{
    if (c->peer.v4.sin_family == AF_INET)
        return inet_ntop(AF_INET, &c->peer.v4.sin_addr, out, (socklen_t)n) ? 0 : -1;
    if (c->peer.v6.sin6_family == AF_INET6)
        return inet_ntop(AF_INET6, &c->peer.v6.sin6_addr, out, (socklen_t)n) ? 0 : -1;
    snprintf(out, n, "unknown");
    return 0;
}


static bool hdr_is(const char *buf, const struct http_hdr *h, const char *name, size_t nl)
{
    return h->name.len == nl && !strncasecmp(buf + h->name.off, name, nl);
}

/* True for fields that describe one connection and must not be forwarded (RFC 9110 7.6.1),
 * and for those lb writes itself. Transfer-Encoding stays: lb relays chunked bodies as
 * they are, so the framing on both hops is the same. */
static bool hop_by_hop(const char *buf, const struct http_hdr *h, const char *conn_val,
                       size_t conn_len)
{
    static const struct {
        const char *n;
        size_t l;
    } drop[] = {
        {"connection", 10}, {"keep-alive", 10}, {"proxy-connection", 16}, {"te", 2},
        {"upgrade", 7},     {"trailer", 7},     {"proxy-authenticate", 18},
    };
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (hdr_is(buf, h, drop[i].n, drop[i].l))
            return true;
    if (conn_val && h->name.len < 64) {
        char name[64];
        memcpy(name, buf + h->name.off, h->name.len);
        name[h->name.len] = 0;
        /* Fields named in Connection are hop-by-hop too, except the framing ones. */
        if (strcasecmp(name, "transfer-encoding") && strcasecmp(name, "content-length") &&
            http_list_has(conn_val, conn_len, name))
            return true;
    }
    return false;
}

struct out {
    char *p;
    uint32_t n, cap;
    bool overflow;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->n + n > o->cap) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += (uint32_t)n;
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* Writes the request as the backend gets it into the second half of hbuf. */
static bool build_request(struct io_worker *w, struct io_conn *c, const struct http_req *req)
{
    const char *buf = c->h.hbuf;
    struct out o = {.p = c->h.hbuf + w->hbuf_size / 2, .cap = w->hbuf_size / 2};
    out_put(&o, buf + req->method_text.off, req->method_text.len);
    out_put(&o, " ", 1);
    out_put(&o, buf + req->target.off, req->target.len);
    out_str(&o, " HTTP/1.1\r\n");

    const char *cv = NULL;
    size_t cl = 0;
    int ci = http_find_hdr(buf, req->hdrs, req->nhdrs, "connection", 0);
    if (ci >= 0) {
        cv = buf + req->hdrs[ci].value.off;
        cl = req->hdrs[ci].value.len;
    }
    const struct http_hdr *xff = NULL, *via = NULL;
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const struct http_hdr *h = &req->hdrs[i];
        if (hop_by_hop(buf, h, cv, cl))
            continue;
        if (hdr_is(buf, h, "x-forwarded-for", 15)) {
            xff = h; /* the parser collapses nothing here: keep the last one's chain */
            continue;
        }
        if (hdr_is(buf, h, "x-forwarded-proto", 17))
            continue;
        if (hdr_is(buf, h, "via", 3)) {
            via = h;
            continue;
        }
        if (hdr_is(buf, h, "host", 4) && req->version_minor == 0 && !req->host.len)
            continue;
        out_put(&o, buf + h->name.off, h->name.len);
        out_put(&o, ": ", 2);
        out_put(&o, buf + h->value.off, h->value.len);
        out_put(&o, "\r\n", 2);
    }
    char ip[INET6_ADDRSTRLEN + 1];
    client_ip_text(c, ip, sizeof(ip));
    out_str(&o, "X-Forwarded-For: ");
    if (xff && xff->value.len) {
        out_put(&o, buf + xff->value.off, xff->value.len);
        out_str(&o, ", ");
    }
    out_str(&o, ip);
    out_str(&o, "\r\nX-Forwarded-Proto: http\r\nVia: ");
    if (via && via->value.len) {
        out_put(&o, buf + via->value.off, via->value.len);
        out_str(&o, ", ");
    }
    out_str(&o, req->version_minor ? "1.1 lb\r\n" : "1.0 lb\r\n");
    if (c->h.flags & H_F_WS)
        out_str(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    out_put(&o, "\r\n", 2);
    if (o.overflow)
        return false;
    c->h.out_off = w->hbuf_size / 2;
    c->h.out_len = o.n;
    c->h.out_sent = 0;
    return true;
}

/* Writes the response as the client gets it into the second half of the backend's hbuf. */
static bool build_response(struct io_worker *w, struct io_conn *c, struct io_conn *b,
                           const struct http_resp *resp, bool interim)
{
    const char *buf = b->h.hbuf;
    struct out o = {.p = b->h.hbuf + w->hbuf_size / 2, .cap = w->hbuf_size / 2};
    char line[32];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %03u ", resp->status);
    out_put(&o, line, (size_t)n);
    out_put(&o, buf + resp->reason.off, resp->reason.len);
    out_put(&o, "\r\n", 2);
    const char *cv = NULL;
    size_t cl = 0;
    int ci = http_find_hdr(buf, resp->hdrs, resp->nhdrs, "connection", 0);
    if (ci >= 0) {
        cv = buf + resp->hdrs[ci].value.off;
        cl = resp->hdrs[ci].value.len;
    }
    bool upgrade = resp->status == 101;
    for (uint32_t i = 0; i < resp->nhdrs; i++) {
        const struct http_hdr *h = &resp->hdrs[i];
        if (upgrade && hdr_is(buf, h, "upgrade", 7)) {
            /* kept below */
        } else if (hop_by_hop(buf, h, cv, cl)) {
            continue;
        }
        out_put(&o, buf + h->name.off, h->name.len);
        out_put(&o, ": ", 2);
        out_put(&o, buf + h->value.off, h->value.len);
        out_put(&o, "\r\n", 2);
    }
    if (upgrade)
        out_str(&o, "Connection: upgrade\r\n");
    else if (!interim && (c->h.flags & H_F_CLOSE))
        out_str(&o, "Connection: close\r\n");
    else if (!interim && (c->h.flags & H_F_KEEPALIVE10))
        out_str(&o, "Connection: keep-alive\r\n");
    out_put(&o, "\r\n", 2);
    if (o.overflow)
        return false;
    b->h.out_off = w->hbuf_size / 2;
    b->h.out_len = o.n;
    b->h.out_sent = 0;
    return true;
}

static void backend_acquire(struct io_worker *w, struct io_conn *c);

static struct snap_span snap_span_of(const char *buf, struct http_span s)
{
    return (struct snap_span){s.len ? buf + s.off : NULL, s.len};
}

/* Fills @sr's conditional, range and encoding fields in one pass over the request's fields
 * (the first of each name counts, as http_find_hdr would find it). */
static void snap_req_fields(const char *buf, const struct http_req *req, struct snap_req *sr)
{
    static const struct {
        const char *name;
        size_t len;
        size_t off;
    } want[] = {
        {"if-none-match", 13, offsetof(struct snap_req, if_none_match)},
        {"if-modified-since", 17, offsetof(struct snap_req, if_modified_since)},
        {"range", 5, offsetof(struct snap_req, range)},
        {"if-range", 8, offsetof(struct snap_req, if_range)},
        {"accept-encoding", 15, offsetof(struct snap_req, accept_encoding)},
    };
    unsigned seen = 0;
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const struct http_hdr *h = &req->hdrs[i];
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            if (h->name.len != want[k].len || (seen & 1u << k) ||
                strncasecmp(buf + h->name.off, want[k].name, want[k].len))
                continue;
            seen |= 1u << k;
            /* An empty value reads as absent, as it always has. */
            *(struct snap_span *)((char *)sr + want[k].off) = snap_span_of(buf, h->value);
            break;
        }
    }
}


/* The worker's reference to static set @i, refreshed when the control thread published a
 * new one. Sends in flight hold their own references to the set they point into. */
static struct snap_set *worker_snap(struct io_worker *w, int i)
{
    struct snap_slot *slot = &w->rt->snap_slots[i];
    uint64_t gen = snap_slot_gen(slot);
    if (!w->snaps[i] || gen != w->snap_gen[i]) {
        struct snap_set *n = snap_slot_get(slot);
        snap_set_unref(w->snaps[i]);
        w->snaps[i] = n;
        w->snap_gen[i] = gen;
    }
    return w->snaps[i];
}

static void client_send_static(struct io_worker *w, struct io_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->h.xl[i]) {
            send_on(w, c, &c->cli, c->h.xp[i], c->h.xl[i]);
            return;
        }
    }
    access_log(w, c, c->h.centry ? "cache" : "-");
    snap_set_unref(c->h.snap);
    c->h.snap = NULL;
    if (c->h.centry) {
        cache_entry_unref(c->h.centry);
        c->h.centry = NULL;
    }
    client_next(w, c);
}

/* Points the client's answer at @hdr (ending with its empty line) and @body, adding the
 * Connection field this client needs before the empty line (in hbuf's second half). */
static void set_memory_answer(struct io_worker *w, struct io_conn *c, const char *hdr,
                              size_t hdr_len, const char *body, size_t body_len,
                              bool contiguous)
{
    c->h.xl[0] = c->h.xl[1] = 0;
    if (w->stopping)
        c->h.flags |= H_F_CLOSE;
    if (!(c->h.flags & (H_F_CLOSE | H_F_KEEPALIVE10))) {
        c->h.xp[0] = hdr;
        c->h.xl[0] = (uint32_t)(hdr_len + (contiguous ? body_len : 0));
        if (!contiguous) {
            c->h.xp[1] = body;
            c->h.xl[1] = (uint32_t)body_len;
        }
        return;
    }
    char *o = c->h.hbuf + w->hbuf_size / 2;
    size_t hl = hdr_len - 2;
    const char *tail = (c->h.flags & H_F_CLOSE) ? "Connection: close\r\n\r\n"
                                                : "Connection: keep-alive\r\n\r\n";
    size_t tl = strlen(tail);
    /* Fits: snapshot headers are at most SNAP_HDR_MAX, cached ones leave 32 bytes of the
     * half free (fill_head). */
    memmove(o, hdr, hl);
    memcpy(o + hl, tail, tl);
    c->h.xp[0] = o;
    c->h.xl[0] = (uint32_t)(hl + tl);
    c->h.xp[1] = body;
    c->h.xl[1] = body ? (uint32_t)body_len : 0;
}

/*
 * Answers from a snapshot set. Returns false when the set has nothing at that path and the
 * request should go to @fallback (set to the cluster index, -1 for none: answered 404).
 */
static bool static_serve(struct io_worker *w, struct io_conn *c, const struct conf_route *r,
                         const struct http_req *req, int *fallback)
{
    const char *buf = c->h.hbuf;
    struct snap_set *set = worker_snap(w, r->target_idx);
    *fallback = w->rt->conf->statics[r->target_idx].fallback_idx;
    size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;
    const char *path = buf + req->path.off + pl;
    size_t len = req->path.len - pl;
    /* The path scratch goes after the forwarded-header half of hbuf's space. */
    char pbuf[SNAP_PATH_MAX];
    const struct snap_entry *e = NULL;
    int rc = set ? snap_lookup(set, path, len, pbuf, sizeof(pbuf), &e) : -ENOENT;
    if (rc == -ENOENT)
        return false;
    if (rc == -EINVAL) {
        local_reply(w, c, 400, false, NULL);
        return true;
    }
    if (rc < 0) {
        *fallback = -1;
        return false;
    }
    struct snap_req sr = {
        .method = req->method == HTTP_M_GET    ? SNAP_M_GET
                  : req->method == HTTP_M_HEAD ? SNAP_M_HEAD
                                                   : SNAP_M_OTHER,
    };
    snap_req_fields(buf, req, &sr);
    uint32_t half = w->hbuf_size / 2;
    char *hdr_scratch = c->h.hbuf + half + 1024;
    struct snap_resp resp;
    if (snap_eval(e, &sr, hdr_scratch, w->hbuf_size - half - 1024, &resp) < 0) {
        local_reply(w, c, 500, true, NULL);
        return true;
    }
    /* A request body (unusual on GET) is not read: the connection cannot be reused. */
    if (!c->h.body.done)
        c->h.flags |= H_F_CLOSE;
    c->h.snap = snap_set_ref(set);
    c->h.status = resp.status;
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_STATIC;
    set_memory_answer(w, c, resp.hdr, resp.hdr_len, resp.body, resp.body ? resp.body_len : 0,
                      resp.contiguous);
    if (!(c->cli.flags & IO_SIDE_F_SENDING))
        client_send_static(w, c);
    return true;
}

/* ---- the L1 cache ---- */

static uint64_t waiter_token(struct io_worker *w, struct io_conn *c)
{
    return (uint64_t)io_conn_slot(w, c) << 32 | c->gen;
}

/* Parses the client's request again from hbuf (the cache needs its fields after the
 * per-thread parse result was reused). */
static const struct http_req *reparse(struct io_worker *w, struct io_conn *c)
{
    static __thread struct http_req rq;
    memset(&rq.scan, 0, sizeof(rq.scan));
    size_t max = w->hbuf_size / 2;
    if (http_parse_request(c->h.hbuf, c->h.hlen, max, max, &rq) <= 0)
        return NULL;
    return &rq;
}

/* Sends a cached answer; takes the reference in @e. */
static void cache_serve(struct io_worker *w, struct io_conn *c, struct cache_entry *e)
{
    size_t hl, bl;
    const char *hdr = cache_entry_hdr(e, &hl);
    const char *body = cache_entry_body(e, &bl);
    if (!c->h.body.done)
        c->h.flags |= H_F_CLOSE;
    c->h.centry = e;
    c->h.status = 200;
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_STATIC;
    set_memory_answer(w, c, hdr, hl, (c->h.flags & H_F_HEAD) ? NULL : body,
                      (c->h.flags & H_F_HEAD) ? 0 : bl, body == hdr + hl && !(c->h.flags & H_F_HEAD));
    if (!(c->cli.flags & IO_SIDE_F_SENDING))
        client_send_static(w, c);
}

/* A fill this request was waiting for ended: serve the new entry, or fetch ourselves. */
static void cache_wake(void *arg, uint64_t waiter, struct cache_entry *e)
{
    struct io_worker *w = arg;
    uint32_t slot = (uint32_t)(waiter >> 32), gen = (uint32_t)waiter;
    if (slot >= w->nconns)
        return;
    struct io_conn *c = &w->conns[slot];
    if (c->gen != gen || c->state == IO_CONN_FREE || c->state == IO_CONN_CLOSING ||
        c->kind != IO_CK_HCLI || c->h.phase != HC_CACHE_WAIT)
        return;
    const struct http_req *rq = e ? reparse(w, c) : NULL;
    if (e && rq && cache_entry_match(e, c->h.hbuf, rq)) {
        cache_entry_ref(e);
        cache_serve(w, c, e);
        return;
    }
    c->h.phase = HC_CONNECT;
    backend_acquire(w, c);
}

static void fill_abort(struct io_worker *w, struct io_conn *c)
{
    if (!c->h.fill)
        return;
    struct cache_fill *f = c->h.fill;
    c->h.fill = NULL;
    cache_fill_abort(w->cache, f, cache_wake, w);
}

static void fill_commit(struct io_worker *w, struct io_conn *c)
{
    if (!c->h.fill)
        return;
    struct cache_fill *f = c->h.fill;
    c->h.fill = NULL;
    if (cache_fill_commit(w->cache, f, cache_wake, w) < 0)
        lb_debug("cache fill not stored", "target_len=%u", c->h.target_len);
}

void http_worker_tick(struct io_worker *w)
{
    if (w->cache)
        cache_tick(w->cache, w->now_ms);
}

/* Routes a parsed request and starts it on its way. */
static void client_dispatch(struct io_worker *w, struct io_conn *c, struct http_req *req)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    const char *buf = c->h.hbuf;
    /* CONNECT, 404/405, 501 and 413 are route_decide's answers (and explain's). */
    struct route_decision d;
    if (route_decide(w->rt->conf, lcf, buf, req, io_conn_client_hash(c), &d)) {
        local_reply(w, c, d.answer.status, d.answer.close, d.answer.hdr[0] ? d.answer.hdr : NULL);
        return;
    }
    const struct conf_route *r = &lcf->routes[d.route];
    c->h.route = (uint16_t)d.route;
    if (d.set >= 0) {
        int fallback;
        if (static_serve(w, c, r, req, &fallback))
            return;
        /* static_serve answered hits and bad paths; fallback < 0 also when no snapshot can
         * have the path. */
        if (route_static_miss(&d, req, fallback < 0 ? -ENAMETOOLONG : -ENOENT)) {
            local_reply(w, c, d.answer.status, d.answer.close, NULL);
            return;
        }
    }
    c->cluster = (uint16_t)d.cluster;
    if (!build_request(w, c, req)) {
        local_reply(w, c, 431, true, NULL);
        return;
    }
    c->h.key = d.key_hash;
    memset(&c->tried, 0, sizeof(c->tried));
    c->attempts = 0;
    c->h.phase = HC_CONNECT;
    if (r->cache.enabled && w->cache && req->method == HTTP_M_GET) {
        struct cache_entry *e = cache_lookup(w->cache, buf, req, w->now_ms);
        if (e) {
            cache_serve(w, c, e);
            return;
        }
        struct cache_fill *f = NULL;
        int rc = cache_fill_begin(w->cache, buf, req, waiter_token(w, c), &f);
        if (rc == CACHE_FILL_WAIT) {
            c->h.phase = HC_CACHE_WAIT; /* cache_wake() takes it from here */
            return;
        }
        if (rc == CACHE_FILL_NEW)
            c->h.fill = f;
    }
    backend_acquire(w, c);
}

static void client_on_header(struct io_worker *w, struct io_conn *c)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    uint32_t max = (uint32_t)lcf->max_header_bytes;
    if (max > w->hbuf_size / 2)
        max = w->hbuf_size / 2;
    if (!c->h.hbuf) {
        c->h.hbuf = hbuf_get(w);
        if (!c->h.hbuf) {
            lb_warn("request shed: no header buffer", "listener=%s", lcf->name);
            client_close(w, c, "no header buffer");
            return;
        }
        c->h.hlen = c->h.scanned = 0;
    }
    if (c->h.phase == HC_IDLE) {
        c->h.phase = HC_HEADER;
        c->h.t_start_ms = w->now_ms;
        c->h.flags = 0;
        c->h.bytes_in = c->h.bytes_out = 0;
        c->h.status = 0;
        c->h.target_len = 0;
        c->h.t_resp_ms = 0;
        memset(&c->h.body, 0, sizeof(c->h.body));
        c->h.body.done = true;
        c->h.route = 0;
    }
    /* Copy what arrived since the last look; one byte past the limit tells "too big"
     * apart from "exactly at the limit". */
    c->h.hlen += q_peek(w, &c->cli, c->h.hlen, c->h.hbuf + c->h.hlen, max - c->h.hlen);

    static __thread struct http_req req;
    req.scan.scanned = c->h.scanned;
    size_t max_target = max < 8192 ? max : 8192;
    int rc = http_parse_request(c->h.hbuf, c->h.hlen, max, max_target, &req);
    c->h.scanned = req.scan.scanned;
    if (rc == HTTP_AGAIN) {
        if (c->h.hlen >= max)
            local_reply(w, c, 431, true, NULL);
        else if (c->cli.flags & IO_SIDE_F_EOF)
            client_close(w, c, c->h.hlen ? "client closed mid-header" : NULL);
        return;
    }
    if (rc < 0) {
        c->h.method = HTTP_M_OTHER;
        lb_info("bad request", "listener=%s status=%d", lcf->name, -rc);
        local_reply(w, c, -rc, true, NULL);
        return;
    }
    q_consume(w, &c->cli, (uint32_t)rc);
    c->h.bytes_in += (uint32_t)rc;
    c->h.method = (uint8_t)req.method;
    c->h.target_off = req.target.off;
    c->h.target_len = req.target.len;
    c->h.t_resp_ms = 0;
    http_body_init_req(&c->h.body, &req);
    c->h.qvalid = 0;
    uint32_t f = 0;
    if (req.flags & HTTP_F_CLOSE)
        f |= H_F_CLOSE | H_F_CLIENT_CLOSE;
    if (req.version_minor == 0 && (req.flags & HTTP_F_KEEPALIVE) &&
        !(req.flags & HTTP_F_CLOSE))
        f |= H_F_KEEPALIVE10;
    if (req.flags & HTTP_F_UPGRADE_WS)
        f |= H_F_WS;
    if (req.flags & HTTP_F_EXPECT_CONTINUE)
        f |= H_F_CONTINUE;
    switch (req.method) {
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
    if (req.method == HTTP_M_HEAD)
        f |= H_F_HEAD;
    c->h.flags |= f;
    client_dispatch(w, c, &req);
}

/* ---- backends ---- */

static void backend_send(struct io_worker *w, struct io_conn *c, struct io_conn *b);
static void client_send(struct io_worker *w, struct io_conn *c);

/* ---- waiting for a file slot ---- */

static void fdwait_unlink(struct io_worker *w, struct io_conn *c)
{
    if (!(c->h.flags & H_F_FDWAIT))
        return;
    c->h.flags &= ~H_F_FDWAIT;
    if (c->fdwait_prev != NONE)
        w->conns[c->fdwait_prev].fdwait_next = c->fdwait_next;
    else
        w->fdwait_head = c->fdwait_next;
    if (c->fdwait_next != NONE)
        w->conns[c->fdwait_next].fdwait_prev = c->fdwait_prev;
    else
        w->fdwait_tail = c->fdwait_prev;
}

/* The fixed-file table is full (every slot holds a client or a backend socket): the
 * request waits for one to close instead of failing; the tick bounds the wait by the
 * cluster's connect timeout. */
static void fdwait_push(struct io_worker *w, struct io_conn *c)
{
    uint32_t slot = io_conn_slot(w, c);
    c->h.flags |= H_F_FDWAIT;
    c->h.phase = HC_CONNECT;
    c->last_ms = w->now_ms;
    c->fdwait_next = NONE;
    c->fdwait_prev = w->fdwait_tail;
    if (w->fdwait_tail != NONE)
        w->conns[w->fdwait_tail].fdwait_next = slot;
    else
        w->fdwait_head = slot;
    w->fdwait_tail = slot;
}

void http_fd_freed(struct io_worker *w)
{
    uint32_t slot = w->fdwait_head;
    if (slot == NONE)
        return;
    struct io_conn *c = &w->conns[slot];
    fdwait_unlink(w, c);
    backend_acquire(w, c);
}

static void backend_acquire(struct io_worker *w, struct io_conn *c)
{
    struct cl_cluster *cl = &w->rt->clusters[c->cluster];
    for (;;) {
        int idx = cl_cluster_pick(cl, &w->cws[c->cluster], c->h.key, &c->tried);
        if (idx < 0) {
            if (!c->tried.n) {
                lb_warn("no usable server", "listener=%s cluster=%s", lcf_of(w, c)->name,
                        cl->cf->name);
                local_reply(w, c, 503, false, "Retry-After: 1\r\n");
            } else {
                local_reply(w, c, 502, false, NULL);
            }
            return;
        }
        struct cl_server *srv = io_conn_commit(w, c, idx);

        struct io_conn *b = pool_take(w, c->cluster, (uint32_t)idx);
        if (b) {
            attach(w, c, b);
            c->h.flags |= H_F_REUSED;
            c->h.phase = HC_FORWARD;
            b->h.t_start_ms = w->now_ms;
            b->last_ms = w->now_ms;
            backend_send(w, c, b);
            return;
        }
        b = io_conn_alloc(w);
        if (!b) {
            lb_warn("request shed: no free slot for a backend connection", "cluster=%s",
                    cl->cf->name);
            local_reply(w, c, 503, false, "Retry-After: 1\r\n");
            return;
        }
        b->kind = IO_CK_HSRV;
        b->state = IO_CONN_CONNECTING;
        b->cluster = c->cluster;
        b->server = idx;
        b->h.peer = NONE;
        b->h.pool_prev = b->h.pool_next = NONE;
        b->h.phase = HS_BUSY;
        b->h.t_start_ms = w->now_ms;
        attach(w, c, b);
        c->h.flags &= ~H_F_REUSED;
        io_conn_connect(w, b, &srv->cf->addr, cl->cf->connect_timeout_ms);
        return;
    }
}

/*
 * The backend connection failed before the response began. Retries when that is safe,
 * else answers 502 (or 504 on a timeout).
 */
static void request_failed(struct io_worker *w, struct io_conn *c, struct io_conn *b,
                           bool connect_failed, int status, const char *why)
{
    struct cl_cluster *cl = &w->rt->clusters[c->cluster];
    struct cl_server *srv = &cl->servers[c->server];
    detach(c, b);
    io_conn_close(w, b, why);
    if (c->counted) {
        cl_server_release(srv);
        c->counted = 0;
    }
    bool retry = !(c->h.flags & (H_F_RESP_BYTE | H_F_BODY_SENT)) &&
                 (connect_failed || (c->h.flags & H_F_IDEMPOTENT)) &&
                 c->attempts <= cl->cf->retries;
    /* A reused connection that the server had just closed costs no retry budget. */
    if (!connect_failed && (c->h.flags & H_F_REUSED) && !(c->h.flags & H_F_RESP_BYTE) &&
        !(c->h.flags & H_F_BODY_SENT) && (c->h.flags & H_F_IDEMPOTENT)) {
        retry = true;
        c->attempts--;
        c->tried.n--; /* the same server may be asked again, on a fresh connection */
    }
    lb_warn(connect_failed ? "connect failed" : "backend failed", "server=%s address=%s err=%s "
            "attempt=%u retry=%s", srv->cf->name, srv->cf->addr.text, why, c->attempts,
            retry ? "yes" : "no");
    /* A pooled connection the server had closed while idle says nothing about its health;
     * everything else here is a failure of that server. */
    if (connect_failed || (c->h.flags & (H_F_RESP_BYTE | H_F_BODY_SENT)) ||
        !(c->h.flags & H_F_REUSED))
        hc_passive_report(w->rt->hc, c->cluster, (uint32_t)c->server, true);
    if (retry) {
        cl_server_count_retry(srv);
        c->h.flags &= ~(H_F_REQ_HDR_SENT | H_F_REQ_DONE | H_F_SENDING_HDR);
        c->h.out_sent = 0;
        c->h.phase = HC_CONNECT;
        backend_acquire(w, c);
        return;
    }
    local_reply(w, c, status, (c->h.flags & H_F_BODY_SENT) != 0, NULL);
}

/* Sends the next piece of the request: its header, then its body. */
static void backend_send(struct io_worker *w, struct io_conn *c, struct io_conn *b)
{
    if ((b->srv.flags & IO_SIDE_F_SENDING) || !(b->srv.flags & IO_SIDE_F_CONNECTED) ||
        (c->h.flags & H_F_REQ_DONE))
        return;
    if (!(c->h.flags & H_F_REQ_HDR_SENT)) {
        b->h.flags |= H_F_SENDING_HDR;
        send_on(w, b, &b->srv, c->h.hbuf + c->h.out_off + c->h.out_sent,
                c->h.out_len - c->h.out_sent);
        return;
    }
    b->h.flags &= ~H_F_SENDING_HDR;
    int rc = send_body(w, &c->h, &c->cli, b, &b->srv);
    if (rc < 0) {
        local_reply(w, c, 400, true, NULL);
        return;
    }
    if (!rc && c->h.body.done && !c->h.qvalid) {
        c->h.flags |= H_F_REQ_DONE;
        maybe_resume(w, c, &c->cli);
    } else if (!rc && (c->cli.flags & IO_SIDE_F_EOF) && c->h.body.mode != HTTP_BODY_CLOSE) {
        /* The client went away in the middle of its body. */
        client_close(w, c, "client closed mid-body");
    }
}

/* A request and its response are complete: log, recycle the backend, go on. */
static void request_done(struct io_worker *w, struct io_conn *c, struct io_conn *b,
                         bool reusable)
{
    struct cl_server *srv = &w->rt->clusters[c->cluster].servers[c->server];
    cl_server_count_status(srv, c->listener, c->h.status);
    cl_cluster_observe_latency(&w->rt->clusters[c->cluster], (w->now_ms - c->h.t_start_ms) * 1000);
    access_log(w, c, srv->cf->name);
    if (c->counted) {
        cl_server_release(srv);
        c->counted = 0;
    }
    if (b) {
        detach(c, b);
        if (reusable && b->srv.qbytes == 0 && !(b->srv.flags & IO_SIDE_F_EOF) &&
            atomic_load_explicit(&srv->flags, memory_order_relaxed) == 0)
            pool_put(w, b);
        else
            io_conn_close(w, b, NULL);
    }
    client_next(w, c);
}

/* The answer to a cache fill arrived: record its header if it may be stored, else give the
 * fill up (its waiters fetch for themselves). The cached header is the one clients get,
 * minus the Connection field each client gets its own of; then the client's own header is
 * built again over it. */
static void fill_head(struct io_worker *w, struct io_conn *c, struct io_conn *b,
                            const struct http_resp *resp)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    const struct conf_route *r = &lcf->routes[c->h.route];
    const struct http_req *rq = reparse(w, c);
    struct cache_policy p;
    enum cache_verdict v =
        rq ? cache_policy_eval(c->h.hbuf, rq, b->h.hbuf, resp, r->cache.ttl_ms,
                                  cache_item_max(w->cache), &p)
           : CACHE_NS_METHOD;
    /* A hit adds its client's Connection field to the stored header in the second half of
     * hbuf (set_memory_answer): keep room for it. */
    if (v != CACHE_OK || !build_response(w, c, b, resp, true) ||
        b->h.out_len + 32 > w->hbuf_size / 2 ||
        cache_fill_head(w->cache, c->h.fill, &p, c->h.hbuf, rq, b->h.hbuf + b->h.out_off,
                           b->h.out_len, w->now_ms) < 0) {
        fill_abort(w, c);
    }
    build_response(w, c, b, resp, false);
}

/* Reads the response header from the backend's queue. Returns false when the caller must
 * stop (error answered, or more bytes needed). */
static bool backend_on_header(struct io_worker *w, struct io_conn *c, struct io_conn *b)
{
    uint32_t max = w->hbuf_size / 2;
    if (!b->h.hbuf) {
        b->h.hbuf = hbuf_get(w);
        if (!b->h.hbuf) {
            request_failed(w, c, b, false, 502, "no header buffer");
            return false;
        }
        b->h.hlen = b->h.scanned = 0;
    }
    b->h.hlen += q_peek(w, &b->srv, b->h.hlen, b->h.hbuf + b->h.hlen, max - b->h.hlen);
    static __thread struct http_resp resp;
    resp.scan.scanned = b->h.scanned;
    int rc = http_parse_response(b->h.hbuf, b->h.hlen, max,
                                     (enum http_method)c->h.method, &resp);
    b->h.scanned = resp.scan.scanned;
    if (rc == HTTP_AGAIN) {
        if (b->h.hlen >= max) {
            lb_warn("bad response: header too large", "server=%s",
                    w->rt->clusters[c->cluster].servers[c->server].cf->name);
            request_failed(w, c, b, false, 502, "response header too large");
        }
        return false;
    }
    if (rc < 0) {
        lb_warn("bad response", "server=%s",
                w->rt->clusters[c->cluster].servers[c->server].cf->name);
        c->h.flags |= H_F_RESP_BYTE; /* no retry: the server answered, badly */
        request_failed(w, c, b, false, 502, "malformed response");
        return false;
    }
    q_consume(w, &b->srv, (uint32_t)rc);
    bool interim = resp.status >= 100 && resp.status < 200;
    bool ws = resp.status == 101 && (c->h.flags & H_F_WS) &&
              (resp.flags & HTTP_F_UPGRADE_WS);
    c->h.flags |= H_F_RESP_BYTE;
    if (resp.status == 101 && !ws) {
        request_failed(w, c, b, false, 502, "unrequested protocol switch");
        return false;
    }
    if (!interim) {
        /* Decide how this exchange ends before the header that says so is written. A
         * stopping worker (SIGTERM, or a reload replaced its generation) ends it here, and
         * says so in this answer: closing after an answer that did not say it would race
         * with the client's next request on the connection. */
        if (w->stopping)
            c->h.flags |= H_F_CLOSE;
        if (resp.flags & HTTP_F_UNTIL_CLOSE)
            c->h.flags |= H_F_CLOSE;
        if (resp.flags & HTTP_F_CLOSE)
            b->h.flags |= H_F_CLOSE;
        if (!(c->h.flags & H_F_REQ_DONE)) {
            /* Answered before the whole body went up: the rest is unread on both hops. */
            b->h.flags |= H_F_CLOSE;
            c->h.flags |= H_F_CLOSE;
        }
    }
    if (!build_response(w, c, b, &resp, interim && !ws)) {
        request_failed(w, c, b, false, 502, "response header too large");
        return false;
    }
    /* The rewritten header waits in the second half of hbuf; a fresh parse for what
     * follows it. */
    b->h.hlen = b->h.scanned = 0;
    if (ws) {
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
    } else if (!interim) {
        if (c->h.fill)
            fill_head(w, c, b, &resp);
        hc_passive_report(w->rt->hc, c->cluster, (uint32_t)c->server, resp.status >= 500);
        c->h.status = resp.status;
        c->h.t_resp_ms = w->now_ms;
        http_body_init_resp(&b->h.body, &resp);
        b->h.qvalid = 0;
        c->h.flags |= H_F_RESP_HDR;
    }
    /* else: 100 Continue and friends go to the client as they are; the final answer is
     * still to come. */
    return true;
}

/* Moves the response along: parses headers while none is pending, then sends. */
static void backend_progress(struct io_worker *w, struct io_conn *c, struct io_conn *b)
{
    while (!(c->h.flags & H_F_RESP_HDR) && !b->h.out_len && b->srv.qbytes) {
        if (!backend_on_header(w, c, b))
            return;
    }
    if (!(c->h.flags & H_F_RESP_HDR) && !b->h.out_len && (b->srv.flags & IO_SIDE_F_EOF)) {
        request_failed(w, c, b, false, 502, b->h.hlen ? "closed mid-header" : "closed");
        return;
    }
    client_send(w, c);
}

/* Sends the next piece of the response to the client: header, then body. */
static void client_send(struct io_worker *w, struct io_conn *c)
{
    struct io_conn *b = peer_of(w, c);
    if (!b || (c->cli.flags & IO_SIDE_F_SENDING))
        return;
    if (b->h.out_len && b->h.out_sent < b->h.out_len) {
        c->h.flags |= H_F_SENDING_HDR;
        send_on(w, c, &c->cli, b->h.hbuf + b->h.out_off + b->h.out_sent,
                b->h.out_len - b->h.out_sent);
        return;
    }
    c->h.flags &= ~H_F_SENDING_HDR;
    if (!(c->h.flags & H_F_RESP_HDR))
        return;
    int rc = send_body(w, &b->h, &b->srv, c, &c->cli);
    if (rc < 0) {
        lb_warn("bad response body framing", "server=%s",
                w->rt->clusters[c->cluster].servers[c->server].cf->name);
        /* The header is out: all we can do is cut the connection. */
        client_close(w, c, "bad response framing");
        return;
    }
    if (rc)
        return;
    maybe_resume(w, b, &b->srv);
    if (c->h.phase == HC_TUNNEL) {
        if (b->srv.flags & IO_SIDE_F_EOF)
            client_close(w, c, NULL);
        return;
    }
    bool eof_end = b->h.body.mode == HTTP_BODY_CLOSE && (b->srv.flags & IO_SIDE_F_EOF);
    if ((b->h.body.done && !b->h.qvalid) || eof_end) {
        c->h.flags |= H_F_RESP_DONE;
        if (!(c->h.flags & H_F_REQ_DONE))
            c->h.flags |= H_F_CLOSE;
        bool reusable = !(b->h.flags & H_F_CLOSE) && !eof_end &&
                        (c->h.flags & H_F_REQ_DONE);
        b->h.out_len = b->h.out_sent = 0;
        if (eof_end)
            fill_abort(w, c);
        else
            fill_commit(w, c);
        request_done(w, c, b, reusable);
    } else if (b->srv.flags & IO_SIDE_F_EOF) {
        lb_warn("backend closed mid-response", "server=%s",
                w->rt->clusters[c->cluster].servers[c->server].cf->name);
        client_close(w, c, "backend closed mid-response");
    }
}

/* ---- client life ---- */

static void client_close(struct io_worker *w, struct io_conn *c, const char *why)
{
    if (c->h.phase != HC_IDLE && c->h.phase != HC_LINGER && c->h.status == 0 && why)
        lb_info("request aborted", "listener=%s reason=\"%s\"", lcf_of(w, c)->name, why);
    io_conn_close(w, c, why);
}

/* The current exchange is over: close, or wait for (or parse) the next request. */
static void client_next(struct io_worker *w, struct io_conn *c)
{
    if (c->h.flags & H_F_CLOSE) {
        /* The client asked for the close, its whole request was read and nothing more is
         * queued: closing now sends FIN after the answer, and nothing unread can turn it
         * into a reset. That saves the shutdown, which io_uring runs on a worker thread. */
        if ((c->h.flags & H_F_CLIENT_CLOSE) && c->h.body.done && !c->cli.qbytes) {
            hbuf_put(w, &c->h);
            io_conn_close(w, c, NULL);
            return;
        }
        /* Otherwise let the client read the answer before the socket closes: FIN now,
         * close when it answers with its own or after LINGER_MS. */
        c->h.phase = HC_LINGER;
        c->last_ms = w->now_ms;
        q_drop(w, &c->cli);
        shutdown_wr(w, c, &c->cli);
        hbuf_put(w, &c->h);
        if (c->cli.flags & IO_SIDE_F_EOF)
            io_conn_close(w, c, NULL);
        else
            maybe_resume(w, c, &c->cli);
        return;
    }
    c->h.phase = HC_IDLE;
    c->h.flags = 0;
    c->h.qvalid = 0;
    c->last_ms = w->now_ms;
    hbuf_put(w, &c->h);
    maybe_resume(w, c, &c->cli);
    if (c->cli.qbytes)
        client_on_header(w, c); /* a pipelined request is already here */
    else if (c->cli.flags & IO_SIDE_F_EOF)
        io_conn_close(w, c, NULL);
}

static void access_log(struct io_worker *w, struct io_conn *c, const char *server)
{
    metrics_listener_count_status(&w->rt->lstats[c->listener], c->h.status);
    if (!w->alog)
        return;
    if (w->alog_len > ALOG_SIZE - 1024)
        http_flush_log(w);
    char ip[INET6_ADDRSTRLEN + 1];
    client_ip_text(c, ip, sizeof(ip));
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *m = "-";
    static const char *const mn[] = {"OTHER", "GET", "HEAD", "POST", "PUT", "DELETE",
                                     "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    if (c->h.method < sizeof(mn) / sizeof(mn[0]))
        m = mn[c->h.method];
    /* The target is in the incoming header, still in hbuf. */
    const char *target = "-";
    int tlen = 1;
    if (c->h.hbuf && c->h.target_len && c->h.target_off + c->h.target_len <= c->h.hlen) {
        target = c->h.hbuf + c->h.target_off;
        tlen = c->h.target_len > 1024 ? 1024 : (int)c->h.target_len;
    }
    uint64_t total = w->now_ms - c->h.t_start_ms;
    long up = c->h.t_resp_ms >= c->h.t_start_ms && c->h.status && c->h.t_resp_ms < w->now_ms + 1
                  ? (long)(c->h.t_resp_ms - c->h.t_start_ms)
                  : -1;
    int n = snprintf(w->alog + w->alog_len, ALOG_SIZE - w->alog_len,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ client=%s method=%s target=%.*s "
                     "status=%u bytes_in=%lu bytes_out=%lu listener=%s server=%s "
                     "upstream_ms=%ld total_ms=%lu\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, ip, m, tlen, target, c->h.status,
                     (unsigned long)c->h.bytes_in, (unsigned long)c->h.bytes_out,
                     lcf_of(w, c)->name, server, up, (unsigned long)total);
    if (n > 0 && (uint32_t)n < ALOG_SIZE - w->alog_len)
        w->alog_len += (uint32_t)n;
}

void http_flush_log(struct io_worker *w)
{
    if (w->alog && w->alog_len && w->alog_fd >= 0) {
        ssize_t r = write(w->alog_fd, w->alog, w->alog_len);
        (void)r;
    }
    w->alog_len = 0;
}

/* ---- completions ---- */

static void client_on_recv(struct io_worker *w, struct io_conn *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->cli.flags &= ~IO_SIDE_F_RECV;
    int res = cqe->res;
    if (res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        c->last_ms = w->now_ms;
        if (c->h.phase == HC_LINGER) {
            io_buf_put(w, bid); /* answered already: the rest is discarded */
        } else {
            q_push(w, &c->cli, bid, (uint32_t)res);
            maybe_pause(w, c, &c->cli);
        }
    } else if (res == 0) {
        c->cli.flags |= IO_SIDE_F_EOF;
        c->h.flags |= H_F_CLIENT_EOF;
    } else if (res == -ENOBUFS) {
        c->cli.flags |= IO_SIDE_F_STARVED;
        io_worker_starve(w, c);
    } else if (res != -ECANCELED) {
        client_close(w, c, "client recv error");
        return;
    }
    switch (c->h.phase) {
    case HC_IDLE:
    case HC_HEADER:
        if (c->cli.qbytes)
            client_on_header(w, c);
        else if (c->cli.flags & IO_SIDE_F_EOF)
            io_conn_close(w, c, NULL);
        break;
    case HC_FORWARD:
    case HC_TUNNEL: {
        struct io_conn *b = peer_of(w, c);
        if (b)
            backend_send(w, c, b);
        if (c->h.phase == HC_TUNNEL && (c->cli.flags & IO_SIDE_F_EOF) && !c->cli.qbytes &&
            b && !(b->srv.flags & IO_SIDE_F_SENDING))
            shutdown_wr(w, b, &b->srv);
        break;
    }
    case HC_LINGER:
        if (c->cli.flags & IO_SIDE_F_EOF)
            io_conn_close(w, c, NULL);
        break;
    default:
        break;
    }
    if (c->state != IO_CONN_CLOSING)
        arm_recv(w, c, &c->cli);
}

static void client_on_send(struct io_worker *w, struct io_conn *c, int res)
{
    c->cli.flags &= ~IO_SIDE_F_SENDING;
    if (res < 0) {
        client_close(w, c, "client send error");
        return;
    }
    c->last_ms = w->now_ms;
    c->h.bytes_out += (uint32_t)res;
    if (c->h.phase == HC_STATIC) {
        uint32_t n = (uint32_t)res;
        for (int i = 0; i < 2 && n; i++) {
            uint32_t take = n < c->h.xl[i] ? n : c->h.xl[i];
            c->h.xp[i] += take;
            c->h.xl[i] -= take;
            n -= take;
        }
        client_send_static(w, c);
        return;
    }
    if (c->h.phase == HC_LOCAL) {
        c->h.out_sent += (uint32_t)res;
        if (c->h.out_sent < c->h.out_len) {
            send_on(w, c, &c->cli, c->h.hbuf + c->h.out_off + c->h.out_sent,
                    c->h.out_len - c->h.out_sent);
            return;
        }
        c->h.flags &= ~H_F_SENDING_HDR;
        access_log(w, c, "-");
        client_next(w, c);
        return;
    }
    struct io_conn *b = peer_of(w, c);
    if (!b) {
        client_close(w, c, "backend gone");
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
                backend_send(w, c, b);
            }
            if (!(c->h.flags & H_F_RESP_HDR)) {
                /* An interim answer went out; the final one may be queued already. */
                backend_progress(w, c, b);
                return;
            }
        }
    } else {
        if (c->h.fill) {
            uint16_t hb = b->srv.qhead;
            if (cache_fill_append(w->cache, c->h.fill, io_buf_addr(w, hb) + w->buf_off[hb],
                                     (size_t)res) < 0)
                fill_abort(w, c);
        }
        q_consume(w, &b->srv, (uint32_t)res);
        b->h.qvalid -= (uint32_t)res;
    }
    client_send(w, c);
}

static void backend_on_connect(struct io_worker *w, struct io_conn *b, int res)
{
    struct io_conn *c = peer_of(w, b);
    struct cl_server *srv = &w->rt->clusters[b->cluster].servers[b->server];
    if (res == 0) {
        b->state = IO_CONN_OPEN;
        b->srv.flags |= IO_SIDE_F_CONNECTED;
        b->last_ms = w->now_ms;
        atomic_store_explicit(&srv->consecutive_failures, 0, memory_order_relaxed);
        if (!c) {
            hc_passive_report(w->rt->hc, b->cluster, (uint32_t)b->server, false);
            io_conn_close(w, b, "client gone");
            return;
        }
        c->h.phase = HC_FORWARD;
        arm_recv(w, b, &b->srv);
        backend_send(w, c, b);
        return;
    }
    atomic_fetch_add_explicit(&srv->connect_failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
    if (!c) {
        hc_passive_report(w->rt->hc, b->cluster, (uint32_t)b->server, true);
        io_conn_close(w, b, "connect failed");
        return;
    }
    if ((res == -ENFILE || res == -EMFILE) && !(b->srv.flags & IO_SIDE_F_OPEN)) {
        /* No socket could be made: the file table is full, the server is not at fault. */
        atomic_fetch_sub_explicit(&srv->connect_failures, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&srv->consecutive_failures, 1, memory_order_relaxed);
        detach(c, b);
        io_conn_close(w, b, "no file slot");
        if (c->counted) {
            cl_server_release(srv);
            c->counted = 0;
        }
        if (c->tried.n)
            c->tried.n--;
        if (c->attempts)
            c->attempts--;
        fdwait_push(w, c);
        return;
    }
    request_failed(w, c, b, true, res == -ECANCELED ? 504 : 502,
                   res == -ECANCELED ? "connect timeout" : strerror(-res));
}

static void backend_on_recv(struct io_worker *w, struct io_conn *b, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        b->srv.flags &= ~IO_SIDE_F_RECV;
    int res = cqe->res;
    struct io_conn *c = peer_of(w, b);
    if (res > 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        b->last_ms = w->now_ms;
        if (!c) {
            /* Bytes from an idle server are a protocol error: it cannot be reused. */
            io_buf_put(w, bid);
            io_conn_close(w, b, "unexpected bytes on an idle connection");
            return;
        }
        q_push(w, &b->srv, bid, (uint32_t)res);
        struct cl_server *srv = &w->rt->clusters[b->cluster].servers[b->server];
        atomic_fetch_add_explicit(&srv->bytes_in, (uint64_t)res, memory_order_relaxed);
        maybe_pause(w, b, &b->srv);
    } else if (res == 0) {
        b->srv.flags |= IO_SIDE_F_EOF;
    } else if (res == -ENOBUFS) {
        b->srv.flags |= IO_SIDE_F_STARVED;
        io_worker_starve(w, b);
    } else if (res != -ECANCELED) {
        if (c && !(c->h.flags & H_F_RESP_HDR)) {
            request_failed(w, c, b, false, 502, strerror(-res));
            return;
        }
        if (c)
            client_close(w, c, "backend recv error");
        io_conn_close(w, b, "backend recv error");
        return;
    }
    if (!c) {
        if (b->srv.flags & IO_SIDE_F_EOF)
            io_conn_close(w, b, NULL); /* an idle pooled connection closed by the server */
        else
            arm_recv(w, b, &b->srv);
        return;
    }
    if (c->h.phase == HC_TUNNEL && (b->srv.flags & IO_SIDE_F_EOF) && !b->srv.qbytes &&
        !(c->cli.flags & IO_SIDE_F_SENDING) && !b->h.out_len) {
        client_close(w, c, NULL);
        return;
    }
    bool closing = b->state == IO_CONN_CLOSING;
    backend_progress(w, c, b);
    if (!closing && b->state != IO_CONN_CLOSING && peer_of(w, b) == c)
        arm_recv(w, b, &b->srv);
}

static void backend_on_send(struct io_worker *w, struct io_conn *b, int res)
{
    b->srv.flags &= ~IO_SIDE_F_SENDING;
    struct io_conn *c = peer_of(w, b);
    if (!c) {
        io_conn_close(w, b, "client gone");
        return;
    }
    if (res < 0) {
        if (!(c->h.flags & H_F_RESP_HDR)) {
            request_failed(w, c, b, false, 502, strerror(-res));
            return;
        }
        client_close(w, c, "backend send error");
        return;
    }
    b->last_ms = w->now_ms;
    struct cl_server *srv = &w->rt->clusters[b->cluster].servers[b->server];
    atomic_fetch_add_explicit(&srv->bytes_out, (uint64_t)res, memory_order_relaxed);
    if (b->h.flags & H_F_SENDING_HDR) {
        c->h.out_sent += (uint32_t)res;
        if (c->h.out_sent >= c->h.out_len) {
            c->h.flags |= H_F_REQ_HDR_SENT;
            b->h.flags &= ~H_F_SENDING_HDR;
            b->h.t_start_ms = w->now_ms;
        }
    } else {
        q_consume(w, &c->cli, (uint32_t)res);
        c->h.qvalid -= (uint32_t)res;
        c->h.bytes_in += (uint32_t)res;
        c->h.flags |= H_F_BODY_SENT;
        maybe_resume(w, c, &c->cli);
    }
    backend_send(w, c, b);
    if (c->h.phase == HC_TUNNEL && (c->cli.flags & IO_SIDE_F_EOF) && !c->cli.qbytes &&
        !(b->srv.flags & IO_SIDE_F_SENDING))
        shutdown_wr(w, b, &b->srv);
}

void http_on_cqe(struct io_worker *w, struct io_conn *c, enum io_op kind,
                    const struct io_uring_cqe *cqe)
{
    switch (kind) {
    case IO_OP_PEERNAME:
        if (cqe->res < 0)
            memset(&c->peer, 0, sizeof(c->peer));
        break;
    case IO_OP_RECV_CLI:
        client_on_recv(w, c, cqe);
        break;
    case IO_OP_SEND_CLI:
        client_on_send(w, c, cqe->res);
        break;
    case IO_OP_SOCKET:
        if (io_conn_socket_done(w, c, cqe->res) < 0)
            backend_on_connect(w, c, cqe->res); /* no socket: a failed connect */
        break;
    case IO_OP_CONNECT:
        backend_on_connect(w, c, cqe->res);
        break;
    case IO_OP_RECV_SRV:
        backend_on_recv(w, c, cqe);
        break;
    case IO_OP_SEND_SRV:
        backend_on_send(w, c, cqe->res);
        break;
    default:
        break;
    }
}

void http_accepted(struct io_worker *w, struct io_conn *c)
{
    c->h.peer = NONE;
    c->h.pool_prev = c->h.pool_next = NONE;
    c->h.phase = HC_IDLE;
    c->state = IO_CONN_OPEN;
    c->last_ms = w->now_ms;
    if (w->rt->has_peername) {
        /* The address is needed only when the request is forwarded, by which time this
         * completion is long in: it was submitted first. */
        io_conn_ask_peername(w, c, lcf_of(w, c));
    }
    arm_recv(w, c, &c->cli);
}

void http_on_starved(struct io_worker *w, struct io_conn *c)
{
    struct io_side *s = c->kind == IO_CK_HCLI ? &c->cli : &c->srv;
    s->flags &= ~IO_SIDE_F_STARVED;
    arm_recv(w, c, s);
}

void http_tick(struct io_worker *w, struct io_conn *c)
{
    uint64_t now = w->now_ms;
    if (w->stopping) {
        /* Stopping (SIGTERM, or a reload replaced this generation): pooled backend
         * connections go now; a busy client connection gets Connection: close on its
         * answer (client_next sees the flag); an idle one is closed once it has been idle
         * for LINGER_MS, since closing it at once would race with a request the client
         * may be sending on it right now. */
        if (c->h.phase == HS_IDLE || (c->h.phase == HC_IDLE && now - c->last_ms >= LINGER_MS)) {
            io_conn_close(w, c, "stopping");
            return;
        }
    }
    if (c->kind == IO_CK_HSRV) {
        const struct conf_cluster *ccf = w->rt->clusters[c->cluster].cf;
        if (c->h.phase == HS_IDLE && ccf->idle_timeout_ms && now - c->last_ms > ccf->idle_timeout_ms)
            io_conn_close(w, c, "pooled connection idle");
        else if (c->h.phase == HS_IDLE &&
                 (atomic_load_explicit(&w->rt->clusters[c->cluster].servers[c->server].flags,
                                       memory_order_relaxed) &
                  (CL_SRV_F_DRAINING | CL_SRV_F_DOWN)))
            io_conn_close(w, c, "server drained or down"); /* its pooled connections go */
        return;
    }
    const struct conf_listener *lcf = lcf_of(w, c);
    switch (c->h.phase) {
    case HC_IDLE:
        if (lcf->idle_timeout_ms && now - c->last_ms > lcf->idle_timeout_ms)
            io_conn_close(w, c, "idle timeout");
        break;
    case HC_HEADER:
        if (lcf->header_timeout_ms && now - c->h.t_start_ms > lcf->header_timeout_ms)
            local_reply(w, c, 408, true, NULL);
        break;
    case HC_CONNECT:
        /* Queued for a file slot: as long as it would wait for an answer. */
        if ((c->h.flags & H_F_FDWAIT) &&
            now - c->last_ms > w->rt->clusters[c->cluster].cf->response_timeout_ms) {
            fdwait_unlink(w, c);
            lb_warn("request shed: no file slot came free in time", "listener=%s", lcf->name);
            local_reply(w, c, 503, false, "Retry-After: 1\r\n");
        }
        break;
    case HC_FORWARD: {
        struct io_conn *b = peer_of(w, c);
        if (!b)
            break;
        const struct conf_cluster *ccf = w->rt->clusters[c->cluster].cf;
        uint64_t rt = ccf->response_timeout_ms;
        if (rt && !(c->h.flags & H_F_RESP_HDR) && (c->h.flags & H_F_REQ_HDR_SENT) &&
            now - b->last_ms > rt && now - c->last_ms > rt) {
            c->h.flags |= H_F_RESP_BYTE; /* the server may have acted on it: no retry */
            request_failed(w, c, b, false, 504, "response timeout");
        } else if (rt && (c->h.flags & H_F_RESP_HDR) && now - b->last_ms > rt &&
                   now - c->last_ms > rt) {
            client_close(w, c, "response stalled");
        }
        break;
    }
    case HC_TUNNEL:
        if (lcf->idle_timeout_ms && now - c->last_ms > lcf->idle_timeout_ms) {
            struct io_conn *b = peer_of(w, c);
            if (!b || now - b->last_ms > lcf->idle_timeout_ms)
                client_close(w, c, "tunnel idle");
        }
        break;
    case HC_LINGER:
        if (now - c->last_ms > LINGER_MS)
            io_conn_close(w, c, NULL);
        break;
    default:
        break;
    }
}

void http_on_close(struct io_worker *w, struct io_conn *c)
{
    if (c->kind == IO_CK_HSRV) {
        if (c->h.phase == HS_IDLE)
            pool_unlink(w, c);
        c->h.phase = HS_BUSY;
        struct io_conn *cl = peer_of(w, c);
        detach(NULL, c);
        if (cl) {
            cl->h.peer = NONE;
            if (!(cl->h.flags & H_F_RESP_HDR) && cl->h.phase == HC_FORWARD) {
                /* Closed under a request before it was answered. */
                local_reply(w, cl, 502, true, NULL);
            } else if (cl->h.phase == HC_FORWARD || cl->h.phase == HC_TUNNEL ||
                       cl->h.phase == HC_CONNECT) {
                io_conn_close(w, cl, "backend closed");
            }
        }
        return;
    }
    fill_abort(w, c);
    fdwait_unlink(w, c);
    struct io_conn *b = peer_of(w, c);
    if (b) {
        detach(c, b);
        io_conn_close(w, b, "client closed");
    }
}

void http_on_free(struct io_worker *w, struct io_conn *c)
{
    hbuf_put(w, &c->h);
    snap_set_unref(c->h.snap);
    c->h.snap = NULL;
    if (c->h.centry)
        cache_entry_unref(c->h.centry);
    c->h.centry = NULL;
    c->kind = IO_CK_L4;
}

int http_worker_init(struct io_worker *w, struct lb_err *err)
{
    const struct conf *cf = w->rt->conf;
    uint64_t maxh = 0;
    bool any = false;
    for (size_t i = 0; i < cf->nlisteners; i++) {
        if (cf->listeners[i].protocol != CONF_PROTO_HTTP)
            continue;
        any = true;
        if (cf->listeners[i].max_header_bytes > maxh)
            maxh = cf->listeners[i].max_header_bytes;
    }
    w->alog_fd = w->rt->access_fd;
    w->fdwait_head = w->fdwait_tail = NONE;
    if (!any)
        return 0;
    if (maxh < 4096)
        maxh = 4096;
    /* First half: the header as received; second half: as forwarded (a little longer). */
    w->hbuf_size = (uint32_t)(2 * maxh + 2048);
    w->hbuf_free = calloc(w->nconns, sizeof(*w->hbuf_free));
    w->pool_head = calloc(cf->nclusters ? cf->nclusters : 1, sizeof(*w->pool_head));
    if (!w->hbuf_free || !w->pool_head)
        goto fail;
    for (size_t i = 0; i < cf->nclusters; i++) {
        size_t n = cf->clusters[i].nservers;
        w->pool_head[i] = malloc((n ? n : 1) * sizeof(**w->pool_head));
        if (!w->pool_head[i])
            goto fail;
        for (size_t j = 0; j < n; j++)
            w->pool_head[i][j] = NONE;
    }
    uint64_t cache_bytes = 0;
    for (size_t i = 0; i < cf->nlisteners; i++)
        for (size_t j = 0; j < cf->listeners[i].nroutes; j++)
            if (cf->listeners[i].routes[j].cache.enabled &&
                cf->listeners[i].routes[j].cache.max_bytes > cache_bytes)
                cache_bytes = cf->listeners[i].routes[j].cache.max_bytes;
    if (cache_bytes && cache_create(cache_bytes, &w->cache) < 0)
        goto fail;
    w->snaps = calloc(cf->nstatics ? cf->nstatics : 1, sizeof(*w->snaps));
    w->snap_gen = calloc(cf->nstatics ? cf->nstatics : 1, sizeof(*w->snap_gen));
    if (!w->snaps || !w->snap_gen)
        goto fail;
    if (w->alog_fd >= 0) {
        w->alog = malloc(ALOG_SIZE);
        if (!w->alog)
            goto fail;
    }
    return 0;
fail:
    lb_err_set(err, "worker %d: out of memory for http state", w->id);
    return -ENOMEM;
}

void http_worker_destroy(struct io_worker *w)
{
    if (!w->rt)
        return;
    if (w->alog)
        http_flush_log(w);
    free(w->alog);
    w->alog = NULL;
    for (uint32_t i = 0; i < w->hbuf_nfree; i++)
        free(w->hbuf_free[i]);
    /* Buffers still held by connections are freed with them; at exit none are. */
    if (w->conns)
        for (uint32_t i = 0; i < w->nconns; i++) {
            free(w->conns[i].h.hbuf);
            w->conns[i].h.hbuf = NULL;
        }
    free(w->hbuf_free);
    w->hbuf_free = NULL;
    w->hbuf_nfree = 0;
    if (w->pool_head)
        for (size_t i = 0; i < w->rt->conf->nclusters; i++)
            free(w->pool_head[i]);
    free(w->pool_head);
    w->pool_head = NULL;
    if (w->cache)
        cache_destroy(w->cache);
    w->cache = NULL;
    if (w->snaps)
        for (size_t i = 0; i < w->rt->conf->nstatics; i++)
            snap_set_unref(w->snaps[i]);
    free(w->snaps);
    free(w->snap_gen);
    w->snaps = NULL;
    w->snap_gen = NULL;
}
