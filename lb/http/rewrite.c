/*
 * Header rewriting: the request as forwarded (hop-by-hop fields dropped, X-Forwarded-For,
 * X-Forwarded-Proto and Via added) and the response as returned.
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

/* ---- requests ---- */

int http_client_ip_text(const struct http_conn *c, char *out, size_t n)
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
        {"connection", 10}, {"keep-alive", 10}, {"proxy-connection", 16},   {"te", 2},
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

/* Writes the request as the backend gets it into the second half of hbuf. */
bool http_build_request(struct io_worker *w, struct http_conn *c, const struct http_req *req)
{
    const char *buf = c->h.hbuf;
    struct http_out o = {.p = c->h.hbuf + hw(w)->hbuf_size / 2, .cap = hw(w)->hbuf_size / 2};
    http_out_put(&o, buf + req->method_text.off, req->method_text.len);
    http_out_put(&o, " ", 1);
    http_out_put(&o, buf + req->target.off, req->target.len);
    http_out_str(&o, " HTTP/1.1\r\n");

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
        if (hdr_is(buf, h, "x-forwarded-proto", 17) || hdr_is(buf, h, "x-request-id", 12))
            continue; /* X-Request-Id: the one kept or made, once, below */
        if (hdr_is(buf, h, "via", 3)) {
            via = h;
            continue;
        }
        if (hdr_is(buf, h, "host", 4) && req->version_minor == 0 && !req->host.len)
            continue;
        http_out_put(&o, buf + h->name.off, h->name.len);
        http_out_put(&o, ": ", 2);
        http_out_put(&o, buf + h->value.off, h->value.len);
        http_out_put(&o, "\r\n", 2);
    }
    char ip[INET6_ADDRSTRLEN + 1];
    http_client_ip_text(c, ip, sizeof(ip));
    http_out_str(&o, "X-Forwarded-For: ");
    if (xff && xff->value.len) {
        http_out_put(&o, buf + xff->value.off, xff->value.len);
        http_out_str(&o, ", ");
    }
    http_out_str(&o, ip);
    http_out_str(&o, c->st.tls ? "\r\nX-Forwarded-Proto: https\r\nVia: "
                               : "\r\nX-Forwarded-Proto: http\r\nVia: ");
    if (via && via->value.len) {
        http_out_put(&o, buf + via->value.off, via->value.len);
        http_out_str(&o, ", ");
    }
    http_out_str(&o, req->version_minor ? "1.1 lb\r\nX-Request-Id: " : "1.0 lb\r\nX-Request-Id: ");
    char rid[HTTP_RID_MAX];
    http_out_put(&o, rid, http_request_id(w, c, rid));
    http_out_put(&o, "\r\n", 2);
    if (c->h.flags & H_F_WS)
        http_out_str(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    http_out_put(&o, "\r\n", 2);
    if (o.overflow)
        return false;
    c->h.out_off = hw(w)->hbuf_size / 2;
    c->h.out_len = o.n;
    c->h.out_sent = 0;
    return true;
}

/* Writes the response as the client gets it into the second half of the backend's hbuf. */
bool http_build_response(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                         const struct http_resp *resp, bool interim)
{
    const char *buf = b->h.hbuf;
    struct http_out o = {.p = b->h.hbuf + hw(w)->hbuf_size / 2, .cap = hw(w)->hbuf_size / 2};
    char line[32];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %03u ", resp->status);
    http_out_put(&o, line, (size_t)n);
    http_out_put(&o, buf + resp->reason.off, resp->reason.len);
    http_out_put(&o, "\r\n", 2);
    const char *cv = NULL;
    size_t cl = 0;
    int ci = http_find_hdr(buf, resp->hdrs, resp->nhdrs, "connection", 0);
    if (ci >= 0) {
        cv = buf + resp->hdrs[ci].value.off;
        cl = resp->hdrs[ci].value.len;
    }
    bool upgrade = resp->status == 101;
    bool has_rid = false;
    for (uint32_t i = 0; i < resp->nhdrs; i++) {
        const struct http_hdr *h = &resp->hdrs[i];
        has_rid |= hdr_is(buf, h, "x-request-id", 12);
        if (upgrade && hdr_is(buf, h, "upgrade", 7)) {
            /* kept below */
        } else if (hop_by_hop(buf, h, cv, cl)) {
            continue;
        }
        http_out_put(&o, buf + h->name.off, h->name.len);
        http_out_put(&o, ": ", 2);
        http_out_put(&o, buf + h->value.off, h->value.len);
        http_out_put(&o, "\r\n", 2);
    }
    if (!interim && !has_rid && c->h.hbuf) {
        /* The client sees the id its request had, unless the backend set one of its own. */
        char rid[HTTP_RID_MAX];
        http_out_str(&o, "X-Request-Id: ");
        http_out_put(&o, rid, http_request_id(w, c, rid));
        http_out_put(&o, "\r\n", 2);
    }
    if (!interim && c->h.xcache == H_XC_MISS)
        http_out_str(&o, "X-Cache: MISS\r\n");
    if (upgrade)
        http_out_str(&o, "Connection: upgrade\r\n");
    else if (!interim && (c->h.flags & H_F_CLOSE))
        http_out_str(&o, "Connection: close\r\n");
    else if (!interim && (c->h.flags & H_F_KEEPALIVE10))
        http_out_str(&o, "Connection: keep-alive\r\n");
    http_out_put(&o, "\r\n", 2);
    if (o.overflow)
        return false;
    b->h.out_off = hw(w)->hbuf_size / 2;
    b->h.out_len = o.n;
    b->h.out_sent = 0;
    return true;
}
