/*
 * The request's side of RFC 9111: what a client's Cache-Control, conditionals and Range ask
 * of the cache (cache_req_eval()), whether a stored entry satisfies that
 * (cache_entry_usable()), and the answer to a conditional request from a stored entry
 * (cache_entry_cond()). Storage-agnostic apart from reading an entry's few fields.
 */
#include <stdint.h>
#include <string.h>

#include "lb/cache/internal.h"
#include "lb/cache/rfc9111.h"

static bool has_hdr(const char *buf, const struct http_req *req, const char *name)
{
    return http_find_hdr(buf, req->hdrs, req->nhdrs, name, 0) >= 0;
}

/* The value of the single field @name; NULL when absent or repeated. */
static const char *one_hdr(const char *buf, const struct http_req *req, const char *name,
                           size_t *len)
{
    int i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, 0);
    if (i < 0 || http_find_hdr(buf, req->hdrs, req->nhdrs, name, (uint32_t)i + 1u) >= 0)
        return NULL;
    *len = req->hdrs[i].value.len;
    return buf + req->hdrs[i].value.off;
}

void cache_req_eval(const char *buf, const struct http_req *req, struct cache_req *out)
{
    struct cache_cc cc = {0};
    bool any_cc = false;
    for (int i = http_find_hdr(buf, req->hdrs, req->nhdrs, "cache-control", 0); i >= 0;
         i = http_find_hdr(buf, req->hdrs, req->nhdrs, "cache-control", (uint32_t)i + 1u)) {
        cache_cc_parse(&cc, buf + req->hdrs[i].value.off, req->hdrs[i].value.len);
        any_cc = true;
    }
    out->flags = 0;
    out->max_age_ms = UINT64_MAX;
    out->min_fresh_ms = 0;
    if (cc.flags & CACHE_CC_NO_CACHE)
        out->flags |= CACHE_RQ_NO_CACHE;
    if (cc.flags & CACHE_CC_NO_STORE)
        out->flags |= CACHE_RQ_NO_STORE;
    if (cc.flags & CACHE_CC_ONLY_IF_CACHED)
        out->flags |= CACHE_RQ_ONLY_IF_CACHED;
    /* RFC 9111 5.4: Pragma: no-cache counts only without Cache-Control */
    for (int i = http_find_hdr(buf, req->hdrs, req->nhdrs, "pragma", 0); !any_cc && i >= 0;
         i = http_find_hdr(buf, req->hdrs, req->nhdrs, "pragma", (uint32_t)i + 1u))
        if (http_list_has(buf + req->hdrs[i].value.off, req->hdrs[i].value.len, "no-cache"))
            out->flags |= CACHE_RQ_NO_CACHE;
    uint64_t s;
    /* an unreadable max-age asks for nothing older than 0 s: a refetch */
    if (cache_cc_get(&cc, CACHE_CC_MAX_AGE, 0, &s))
        out->max_age_ms = s * 1000;
    /* an unreadable min-fresh is ignored */
    if (cache_cc_get(&cc, CACHE_CC_MIN_FRESH, 0, &s))
        out->min_fresh_ms = s * 1000;
    if (has_hdr(buf, req, "range") || has_hdr(buf, req, "if-match") ||
        has_hdr(buf, req, "if-unmodified-since") || has_hdr(buf, req, "if-range"))
        out->flags |= CACHE_RQ_BYPASS;
    size_t n;
    if (has_hdr(buf, req, "if-none-match")) {
        const char *v = one_hdr(buf, req, "if-none-match", &n);
        if (!v || cache_inm_match(v, n, NULL) < 0)
            out->flags |= CACHE_RQ_BYPASS;
        out->flags |= CACHE_RQ_COND;
    } else if (has_hdr(buf, req, "if-modified-since")) {
        out->flags |= CACHE_RQ_COND;
    }
}

bool cache_entry_usable(const struct cache_entry *e, const struct cache_req *rq, uint64_t now_ms)
{
    if (now_ms >= e->expires_ms)
        return false;
    uint64_t age = cache_entry_age_ms(e, now_ms);
    if (age > rq->max_age_ms)
        return false;
    return e->expires_ms - now_ms > rq->min_fresh_ms;
}

int cache_entry_cond(const struct cache_entry *e, const char *buf, const struct http_req *req,
                     int64_t now_s)
{
    size_t n;
    if (has_hdr(buf, req, "if-none-match")) {
        const char *v = one_hdr(buf, req, "if-none-match", &n);
        struct cache_etag t;
        bool have = e->etag_len && cache_etag_parse(e->etag, e->etag_len, &t) == 0;
        return v && cache_inm_match(v, n, have ? &t : NULL) == 1 ? 304 : 200;
    }
    const char *v = one_hdr(buf, req, "if-modified-since", &n);
    int64_t ims;
    /* RFC 9110 13.1.3: an invalid date, or a date in the future, is ignored */
    if (!v || e->last_modified < 0 || cache_http_date(v, n, now_s, &ims) < 0 || ims > now_s)
        return 200;
    return e->last_modified <= ims ? 304 : 200;
}

bool cache_entry_stale_if_error(const struct cache_entry *e, uint64_t now_ms)
{
    return e->sie_ms && now_ms >= e->expires_ms && now_ms - e->expires_ms < e->sie_ms;
}

bool cache_entry_stale_while_revalidate(const struct cache_entry *e, uint64_t now_ms)
{
    return e->swr_ms && now_ms >= e->expires_ms && now_ms - e->expires_ms < e->swr_ms;
}

int cache_entry_status(const struct cache_entry *e)
{
    return e->status;
}

size_t cache_entry_validator(const struct cache_entry *e, char *out, size_t cap)
{
    char date[30];
    const char *name = "If-None-Match: ", *v = e->etag;
    size_t vl = e->etag_len;
    if (!vl) {
        if (e->last_modified < 0)
            return 0;
        cache_http_date_fmt(e->last_modified, date);
        name = "If-Modified-Since: ";
        v = date;
        vl = 29;
    }
    size_t nl = strlen(name);
    if (nl + vl + 2 > cap)
        return 0;
    memcpy(out, name, nl);
    memcpy(out + nl, v, vl);
    memcpy(out + nl + vl, "\r\n", 2);
    return nl + vl + 2;
}

enum cache_decision cache_decide(struct cache *c, const char *buf, const struct http_req *req,
                                 uint64_t now_ms, int64_t now_s, struct cache_entry **out)
{
    struct cache_req rq;
    cache_req_eval(buf, req, &rq);
    *out = NULL;
    if (rq.flags & CACHE_RQ_BYPASS)
        return CACHE_D_BYPASS;
    struct cache_entry *e = cache_lookup(c, buf, req, now_ms);
    if (e && ((rq.flags & CACHE_RQ_NO_CACHE) || !cache_entry_usable(e, &rq, now_ms))) {
        c->st.hits--; /* the lookup counted it: it was not one */
        c->st.misses++;
        /* 4.3.1: what cannot be used as it is may be revalidated, unless the client sends
         * its own conditionals (they go to the origin as they are) */
        bool validator = e->etag_len || e->last_modified >= 0;
        if (!(rq.flags & (CACHE_RQ_COND | CACHE_RQ_ONLY_IF_CACHED))) {
            if (validator) {
                *out = e;
                return CACHE_D_REVALIDATE;
            }
            /* kept for the fetch to fall back on if the origin fails (stale-if-error), or
             * for requests that come while it runs (stale-while-revalidate) */
            if (cache_entry_stale_if_error(e, now_ms) ||
                cache_entry_stale_while_revalidate(e, now_ms)) {
                *out = e;
                return CACHE_D_FILL;
            }
        }
        cache_entry_unref(e);
        e = NULL;
    }
    if (e) {
        *out = e;
        /* RFC 9110 13.2.1: preconditions apply when the answer would be 2xx */
        if ((rq.flags & CACHE_RQ_COND) && e->status >= 200 && e->status < 300 &&
            cache_entry_cond(e, buf, req, now_s) == 304)
            return CACHE_D_304;
        return CACHE_D_HIT;
    }
    if (rq.flags & CACHE_RQ_ONLY_IF_CACHED)
        return CACHE_D_504;
    /* a conditional request may get a 304, which is not stored: it goes alone */
    return (rq.flags & (CACHE_RQ_COND | CACHE_RQ_NO_STORE)) ? CACHE_D_PASS : CACHE_D_FILL;
}
