/*
 * Answers lb gives itself (400, 404, 405, 408, 413, 414, 429, 431, 501, 502, 503, 504, 505), and
 * redirect routes' 301, 302, 307 and 308.
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
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "static/snap.h"

/* ---- local answers ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 411:
        return "Length Required";
    case 500:
        return "Internal Server Error";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* The body of an answer: "STATUS REASON\n" as text/plain unless given. */
struct answer_body {
    const char *type, *p;
    size_t len;
};

/* The answer, with header lines @extra and a Location field when @loc is not NULL. */
static void local_reply(struct io_worker *w, struct http_conn *c, int status, bool close,
                        const char *extra, const struct route_location *loc,
                        const struct answer_body *ab)
{
    /* the origin failed (502, 503, 504): a stale cached answer may do (stale-if-error) */
    if (status >= 500 && c->h.reval && http_cache_serve_stale(w, c))
        return;
    http_fill_abort(w, c);
    struct http_conn *b = peer_of(w, c);
    if (b) {
        detach(c, b);
        io_conn_close(w, &b->base, "request answered by lb");
    }
    if (c->pick.counted) {
        cl_server_release(&w->rt->clusters[c->pick.cluster].servers[c->pick.server]);
        c->pick.counted = 0;
    }
    if (!c->h.hbuf)
        c->h.hbuf = http_hbuf_get(w);
    if (!c->h.hbuf) {
        http_client_close(w, c, "no header buffer for an error answer");
        return;
    }
    /* An unread request body would be taken for the next request. */
    if (w->stopping || (c->h.flags & (H_F_CLOSE | H_F_BODY_SENT)) ||
        (c->h.phase != HC_HEADER && c->h.phase != HC_IDLE && !c->h.body.done))
        close = true;
    const char *reason = reason_of(status);
    char rid[HTTP_RID_MAX];
    int rlen = (int)http_request_id(w, c, rid); /* echoed, and logged, for correlation */
    char text[96];
    struct answer_body own = {"text/plain", text, 0};
    own.len = (size_t)snprintf(text, sizeof(text), "%d %s\n", status, reason);
    if (!ab)
        ab = &own;
    /* The answer goes after whatever the incoming header occupies. */
    uint32_t off = hw(w)->hbuf_size / 2;
    /* A Location fits: its host and URI came in the header, which takes at most half. */
    int n = snprintf(c->h.hbuf + off, hw(w)->hbuf_size - off,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "X-Request-Id: %.*s\r\n%s%s%s%s%.*s%s%.*s%s%s\r\n%.*s",
                     status, reason, ab->type, ab->len, rlen, rid, extra ? extra : "",
                     loc ? "Location: " : "", loc ? loc->scheme : "", loc ? "://" : "",
                     loc ? (int)loc->host_len : 0, loc ? loc->host : "", loc ? loc->port : "",
                     loc ? (int)loc->uri_len : 0, loc ? loc->uri : "", loc ? "\r\n" : "",
                     close ? "Connection: close\r\n" : "",
                     (c->h.flags & H_F_HEAD) ? 0 : (int)ab->len, ab->p);
    if (n < 0 || (uint32_t)n >= hw(w)->hbuf_size - off) {
        http_client_close(w, c, "an answer longer than the header buffer");
        return;
    }
    c->h.out_off = off;
    c->h.out_len = (uint32_t)n;
    c->h.out_sent = 0;
    c->h.status = (uint16_t)status;
    c->h.phase = HC_LOCAL;
    if (close)
        c->h.flags |= H_F_CLOSE;
    if (!loc && ab == &own) /* redirects and enqueue answers are routes' normal work */
        lb_info("request answered by lb", "listener=%s status=%d request_id=%.*s",
                lcf_of(w, c)->name, status, rlen, rid);
    if (!(c->st.flags & IO_ST_F_SENDING)) { /* else http_enq_sent() sends it */
        c->h.flags |= H_F_SENDING_HDR;
        send_on(w, c, &c->st, c->h.hbuf + off, c->h.out_len);
    }
}

void http_local_reply(struct io_worker *w, struct http_conn *c, int status, bool close,
                      const char *extra)
{
    local_reply(w, c, status, close, extra, NULL, NULL);
}

void http_local_answer(struct io_worker *w, struct http_conn *c, int status, bool close,
                       const char *extra, const char *type, const char *body, size_t len)
{
    struct answer_body ab = {type, body, len};
    local_reply(w, c, status, close, extra, NULL, &ab);
}

void http_redirect_reply(struct io_worker *w, struct http_conn *c, int status, bool close,
                         const struct route_location *loc)
{
    local_reply(w, c, status, close, NULL, loc, NULL);
}
