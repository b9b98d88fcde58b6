/*
 * Route matching and hash keys for HTTP requests; see route.h.
 */
#include <string.h>
#include <strings.h>

#include "lb/cluster/balance.h"
#include "lb/route/route.h"

uint32_t route_method_bit(enum http_method m)
{
    switch (m) {
    case HTTP_M_GET: return CONF_M_GET;
    case HTTP_M_HEAD: return CONF_M_HEAD;
    case HTTP_M_POST: return CONF_M_POST;
    case HTTP_M_PUT: return CONF_M_PUT;
    case HTTP_M_DELETE: return CONF_M_DELETE;
    case HTTP_M_OPTIONS: return CONF_M_OPTIONS;
    case HTTP_M_PATCH: return CONF_M_PATCH;
    case HTTP_M_CONNECT: return CONF_M_CONNECT;
    case HTTP_M_TRACE: return CONF_M_TRACE;
    default: return 0;
    }
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
        uint32_t hl = req->host.len;
        /* Compare without the port ("[v6]:port" keeps its brackets). */
        for (uint32_t i = hl; i > 0; i--) {
            if (h[i - 1] == ':') {
                hl = i - 1;
                break;
            }
            if (h[i - 1] == ']')
                break;
        }
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

int route_match(const struct conf_listener *l, const char *buf, const struct http_req *req,
                   uint32_t *allowed)
{
    uint32_t mbit = route_method_bit(req->method);
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

uint64_t route_key(const struct conf_route *r, const char *buf, const struct http_req *req,
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
    if (vout)
        *vout = v;
    if (vlout)
        *vlout = vl;
    return v ? lb_hash64(v, vl, 0) : client_hash;
}
