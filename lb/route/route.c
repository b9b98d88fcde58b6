/*
 * The route decision for HTTP requests; see route.h. Owns route matching, the 405 Allow
 * list, the body limit and the hash key: nothing else in lb decides these.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lb/cluster/balance.h"
#include "lb/route/route.h"

/* CONF_M_* bit of a parsed method (0 for methods routes cannot name). */
static uint32_t method_bit(enum http_method m)
{
    switch (m) {
    case HTTP_M_GET:
        return CONF_M_GET;
    case HTTP_M_HEAD:
        return CONF_M_HEAD;
    case HTTP_M_POST:
        return CONF_M_POST;
    case HTTP_M_PUT:
        return CONF_M_PUT;
    case HTTP_M_DELETE:
        return CONF_M_DELETE;
    case HTTP_M_OPTIONS:
        return CONF_M_OPTIONS;
    case HTTP_M_PATCH:
        return CONF_M_PATCH;
    case HTTP_M_CONNECT:
        return CONF_M_CONNECT;
    case HTTP_M_TRACE:
        return CONF_M_TRACE;
    default:
        return 0;
    }
}

/* The request's Host without its port ("[v6]:port" keeps its brackets). */
static size_t host_len_no_port(const char *h, size_t hl)
{
    for (size_t i = hl; i > 0; i--) {
        if (h[i - 1] == ':')
            return i - 1;
        if (h[i - 1] == ']')
            break;
    }
    return hl;
}

/* True when @r takes the request; *@method_only when only the method kept it from it. */
static bool route_takes(const struct conf_route *r, const char *buf, const struct http_req *req,
                        uint32_t mbit, bool *method_only)
{
    *method_only = false;
    if (!r->has_match)
        return true;
    if (r->host) {
        const char *h = buf + req->host.off;
        size_t hl = host_len_no_port(h, req->host.len);
        if (strlen(r->host) != hl || strncasecmp(r->host, h, hl))
            return false;
    }
    if (r->path_prefix) {
        size_t pl = strlen(r->path_prefix);
        if (req->path.len < pl || memcmp(buf + req->path.off, r->path_prefix, pl))
            return false;
    }
    if (r->methods && !(r->methods & mbit)) {
        *method_only = true;
        return false;
    }
    return true;
}

/*
 * The first route of @l that takes @req, or -1. When none does, *@allowed gets the methods of
 * the routes that matched but for the method (non-zero: 405 with Allow), else 0 (404).
 */
static int match(const struct conf_listener *l, const char *buf, const struct http_req *req,
                 uint32_t *allowed)
{
    uint32_t mbit = method_bit(req->method);
    *allowed = 0;
    for (size_t i = 0; i < l->nroutes; i++) {
        bool method_only;
        if (route_takes(&l->routes[i], buf, req, mbit, &method_only)) {
            *allowed = 0;
            return (int)i;
        }
        if (method_only)
            *allowed |= l->routes[i].methods;
    }
    return -1;
}

/* The value of cookie @name in the Cookie fields, or false. */
static bool find_cookie(const char *buf, const struct http_req *req, const char *name,
                        const char **v, size_t *vl)
{
    size_t nl = strlen(name);
    for (int i = http_find_hdr(buf, req->hdrs, req->nhdrs, "cookie", 0); i >= 0;
         i = http_find_hdr(buf, req->hdrs, req->nhdrs, "cookie", (uint32_t)i + 1)) {
        const char *p = buf + req->hdrs[i].value.off;
        const char *end = p + req->hdrs[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *semi = memchr(p, ';', (size_t)(end - p));
            if (!semi)
                semi = end;
            if (eq && eq < semi && (size_t)(eq - p) == nl && !memcmp(p, name, nl)) {
                *v = eq + 1;
                *vl = (size_t)(semi - eq - 1);
                return true;
            }
            p = semi;
        }
    }
    return false;
}

/*
 * The hash of @req's key for route @r. A missing header or cookie, and client_ip, give
 * @client_hash, so that such clients still stick to one server. *@vout and *@vlout get the
 * key's text (NULL when the client address was used).
 */
static uint64_t key_of(const struct conf_route *r, const char *buf, const struct http_req *req,
                       uint64_t client_hash, const char **vout, size_t *vlout)
{
    const char *v = NULL;
    size_t vl = 0;
    switch (r->hash_key.kind) {
    case CONF_HASH_HEADER: {
        int i = http_find_hdr(buf, req->hdrs, req->nhdrs, r->hash_key.name, 0);
        if (i >= 0) {
            v = buf + req->hdrs[i].value.off;
            vl = req->hdrs[i].value.len;
        }
        break;
    }
    case CONF_HASH_COOKIE:
        find_cookie(buf, req, r->hash_key.name, &v, &vl);
        break;
    case CONF_HASH_PATH:
        v = buf + req->path.off;
        vl = req->path.len;
        break;
    case CONF_HASH_URI:
        v = buf + req->target.off;
        vl = req->target.len;
        break;
    case CONF_HASH_CLIENT_IP:
    case CONF_HASH_NONE:
        break;
    }
    *vout = v;
    *vlout = vl;
    return v ? lb_hash64(v, vl, 0) : client_hash;
}

/* ---- the decision ---- */

/* What CONNECT gets: lb proxies no tunnels, so Allow names the methods it does proxy. */
#define CONNECT_ALLOW "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"

static int answer(struct route_answer *a, uint16_t status, bool close, const char *why)
{
    a->status = status;
    a->close = close;
    a->why = why;
    return status;
}

/* Makes @a a 405 whose Allow field lists @allow (a comma-separated value). */
static int answer_405(struct route_answer *a, bool close, const char *allow, const char *why)
{
    snprintf(a->allow, sizeof(a->allow), "%s", allow);
    snprintf(a->hdr, sizeof(a->hdr), "Allow: %s\r\n", allow);
    return answer(a, 405, close, why);
}

/* The Allow value for the CONF_M_* bits in @methods, in RFC 9110's order of methods. */
static void allow_list(uint32_t methods, char *out, size_t n)
{
    static const char *const names[] = {"GET",     "HEAD",  "POST",    "PUT",  "DELETE",
                                        "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (methods & (1u << i))
            o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", names[i]);
    }
}

/* Fills d->location for redirect route @r and answers its code, or 400 when the request
 * gives nothing to keep: no Host (HTTP/1.0) or no path (asterisk-form). */
static int redirect(const struct conf_listener *l, const struct conf_route *r, const char *buf,
                    const struct http_req *req, bool close, struct route_decision *d)
{
    const struct conf_redirect *rd = &r->redirect;
    struct route_location *loc = &d->location;
    bool https =
        rd->scheme == CONF_SCHEME_HTTPS || (rd->scheme == CONF_SCHEME_SAME && l->tls.enabled);
    loc->scheme = https ? "https" : "http";
    if (rd->host) {
        loc->host = rd->host;
        loc->host_len = strlen(rd->host);
    } else {
        loc->host = buf + req->host.off;
        loc->host_len = host_len_no_port(loc->host, req->host.len);
    }
    loc->port[0] = '\0';
    if (rd->port && rd->port != (https ? 443u : 80u))
        snprintf(loc->port, sizeof(loc->port), ":%u", rd->port & 0xffffu);
    /* The path and query: all of an origin-form target, the tail of an absolute-form one. */
    loc->uri = buf + req->path.off;
    loc->uri_len = req->target.off + req->target.len - req->path.off;
    if (loc->host_len == 0 || req->path.len == 0 || loc->uri[0] != '/')
        return answer(&d->answer, 400, true, "a redirect needs the request's Host and path");
    return answer(&d->answer, (uint16_t)rd->code, close, "redirected by the route");
}

int route_decide(const struct conf *cf, const struct conf_listener *l, const char *buf,
                 const struct http_req *req, uint64_t client_hash, struct route_decision *d)
{
    d->answer.status = d->miss.status = 0;
    d->answer.close = d->miss.close = false;
    d->answer.why = d->miss.why = NULL;
    d->answer.hdr[0] = d->answer.allow[0] = d->miss.hdr[0] = d->miss.allow[0] = '\0';
    d->route = d->set = d->cluster = -1;
    d->action = CONF_ACT_CLUSTER;
    d->body_refused = d->hashed = false;
    d->key = NULL;
    d->key_len = 0;
    d->key_hash = 0;

    /* The client said it sends nothing more: every answer closes. A body that follows an
     * answer given before it was read would be taken for the next request. */
    bool client_close = req->flags & HTTP_F_CLOSE;
    bool body = req->flags & (HTTP_F_CHUNKED | HTTP_F_LENGTH);
    if (req->method == HTTP_M_CONNECT)
        return answer_405(&d->answer, true, CONNECT_ALLOW, "lb proxies no CONNECT tunnels");

    uint32_t allowed = 0;
    int ri = match(l, buf, req, &allowed);
    if (ri < 0) {
        if (!allowed)
            return answer(&d->answer, 404, body || client_close, "no route matches");
        char list[ROUTE_ALLOW_MAX];
        allow_list(allowed, list, sizeof(list));
        return answer_405(&d->answer, body || client_close, list,
                          "routes match all but the method");
    }
    const struct conf_route *r = &l->routes[ri];
    d->route = ri;
    d->action = r->action;
    d->body_refused = (req->flags & HTTP_F_LENGTH) && l->max_body_bytes &&
                      req->content_length > l->max_body_bytes;
    switch (r->action) {
    case CONF_ACT_STATIC:
        d->set = r->target_idx;
        d->cluster = cf->statics[r->target_idx].fallback_idx;
        if (d->cluster < 0)
            answer(&d->miss, 404, body || client_close,
                   "no snapshot at this path and no fallback cluster");
        else if (d->body_refused)
            answer(&d->miss, 413, true, "Content-Length over the listener's max_body_bytes");
        break;
    case CONF_ACT_REDIRECT:
        return redirect(l, r, buf, req, body || client_close, d);
    case CONF_ACT_CLUSTER:
        d->cluster = r->target_idx;
        if (d->body_refused)
            return answer(&d->answer, 413, true,
                          "Content-Length over the listener's max_body_bytes");
        break;
    case CONF_ACT_ENQUEUE:
        /* The body is read whole before the push: a declared length over the route's
         * max_body is refused before any of it is read. */
        if (d->body_refused ||
            ((req->flags & HTTP_F_LENGTH) && req->content_length > r->enqueue.max_body))
            return answer(&d->answer, 413, true, "Content-Length over the route's max_body");
        if (cf->redis_cluster < 0)
            return answer(&d->answer, 503, true, "enqueue without global.redis");
        d->cluster = cf->redis_cluster;
        return 0;
    default:
        return answer(&d->answer, 501, true, "lb does not serve this route's action yet");
    }
    if (d->cluster >= 0 && conf_balance_is_hash(cf->clusters[d->cluster].balance)) {
        d->hashed = true;
        /* A static route names no key: its fallback sticks clients by address. */
        d->key_hash = r->action == CONF_ACT_CLUSTER
                          ? key_of(r, buf, req, client_hash, &d->key, &d->key_len)
                          : client_hash;
    }
    return 0;
}

int route_static_miss(struct route_decision *d, const struct http_req *req, int lookup_rc)
{
    bool client_close = req->flags & HTTP_F_CLOSE;
    bool body = req->flags & (HTTP_F_CHUNKED | HTTP_F_LENGTH);
    if (lookup_rc == -ENOENT)
        d->answer = d->miss;
    else if (lookup_rc == -EINVAL)
        /* static_serve answers this one itself, keeping the connection (and so reading an
         * unread body as the next request): said here as it happens. */
        answer(&d->answer, 400, client_close, "the path is not a valid snapshot path");
    else
        answer(&d->answer, 404, body || client_close, "no snapshot can have this path");
    return d->answer.status;
}

int route_parse(const struct conf_listener *l, const char *buf, size_t len, struct http_req *req)
{
    /* client_on_header reads at most max_header_bytes into its buffer, then parses that. */
    size_t max = l->max_header_bytes;
    size_t max_target = max < 8192 ? max : 8192;
    memset(&req->scan, 0, sizeof(req->scan));
    return http_parse_request(buf, len < max ? len : max, max, max_target, req);
}
