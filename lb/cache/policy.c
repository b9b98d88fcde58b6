/*
 * The storage decision of the cache (RFC 9111 3, 4.2; see cache_policy_eval() in cache.h):
 * whether a response may be stored, how long it stays fresh, how old it already is, and the
 * validators and Vary names to keep with it. Pure: no cache state, no allocation, no clock
 * of its own, so the L1 cache and a shared level make the same decision.
 */
#include <errno.h>
#include <string.h>

#include "lb/cache/internal.h"
#include "lb/cache/rfc9111.h"

/* Index of the next field @name of message @m at or after @from, or -1. */
#define NEXT(buf, m, name, from) http_find_hdr(buf, (m)->hdrs, (m)->nhdrs, name, (uint32_t)(from))

/* RFC 9110 15.1: status codes a cache may give heuristic freshness. 204 and 206 are left
 * out: no body to keep, and ranges are not cached. */
static bool heuristic_status(int status)
{
    static const int codes[] = {200, 203, 300, 301, 308, 404, 405, 410, 414, 501};
    for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++)
        if (codes[k] == status)
            return true;
    return false;
}

/* Final status codes this cache understands well enough to store with explicit freshness. */
static bool storable_status(int status)
{
    return status >= 200 && status <= 599 && status != 206 && status != 304 && status != 407;
}

/* The one value of field @name as Unix seconds: 0, -ENOENT (absent), -EINVAL (invalid,
 * or several lines that disagree). */
static int date_field(const char *buf, const struct http_resp *resp, const char *name,
                      int64_t now_s, int64_t *out)
{
    int rc = -ENOENT;
    for (int i = NEXT(buf, resp, name, 0); i >= 0; i = NEXT(buf, resp, name, i + 1)) {
        int64_t t;
        const char *v = buf + resp->hdrs[i].value.off;
        if (cache_http_date(v, resp->hdrs[i].value.len, now_s, &t) < 0 || (rc == 0 && t != *out))
            return -EINVAL;
        *out = t;
        rc = 0;
    }
    return rc;
}

/* Age (RFC 9111 5.1) in seconds: 0 when absent or unreadable; the largest when repeated. */
static uint64_t age_field(const char *buf, const struct http_resp *resp)
{
    uint64_t age = 0;
    for (int i = NEXT(buf, resp, "age", 0); i >= 0; i = NEXT(buf, resp, "age", i + 1)) {
        const char *v = buf + resp->hdrs[i].value.off;
        size_t n = resp->hdrs[i].value.len, k = 0;
        uint64_t a = 0;
        for (; k < n && v[k] >= '0' && v[k] <= '9'; k++)
            if (a < CACHE_DELTA_MAX)
                a = a * 10 + (uint64_t)(v[k] - '0');
        if (k == n && n > 0 && a > age)
            age = a < CACHE_DELTA_MAX ? a : CACHE_DELTA_MAX;
    }
    return age;
}

/* Keeps the validators: the ETag (when exactly one, well formed and short enough) and
 * Last-Modified (when valid). */
static void validators(const char *buf, const struct http_resp *resp, int64_t now_s,
                       struct cache_policy *p)
{
    p->etag_len = 0;
    int i = NEXT(buf, resp, "etag", 0);
    struct cache_etag t;
    if (i >= 0 && NEXT(buf, resp, "etag", i + 1) < 0 &&
        cache_etag_parse(buf + resp->hdrs[i].value.off, resp->hdrs[i].value.len, &t) == 0 &&
        t.len + 2 <= sizeof(p->etag)) {
        size_t o = 0;
        if (t.weak) {
            memcpy(p->etag, "W/", 2);
            o = 2;
        }
        memcpy(p->etag + o, t.opaque, t.len);
        p->etag_len = (uint32_t)(o + t.len);
    }
    if (date_field(buf, resp, "last-modified", now_s, &p->last_modified) < 0)
        p->last_modified = -1;
}

/*
 * Freshness lifetime in ms (RFC 9111 4.2.1): s-maxage, else max-age, else Expires - Date,
 * else the heuristic for responses allowed one. *@explicit_ says the origin gave one.
 */
static uint64_t lifetime_ms(const char *buf, const struct http_resp *resp,
                            const struct cache_cc *cc, const struct cache_rules *r, int64_t now_s,
                            int64_t date, bool *explicit_)
{
    uint64_t s;
    *explicit_ = true;
    /* an invalid or conflicting value: the response is stale (4.2.1) */
    if (cache_cc_get(cc, CACHE_CC_S_MAXAGE, 0, &s) || cache_cc_get(cc, CACHE_CC_MAX_AGE, 0, &s))
        return s * 1000;
    int64_t exp;
    int rc = date_field(buf, resp, "expires", now_s, &exp);
    if (rc == -EINVAL)
        return 0; /* 5.3: an invalid Expires means "already expired" */
    if (rc == 0)
        return exp > date ? (uint64_t)(exp - date) * 1000 : 0;
    *explicit_ = false;
    if (heuristic_status(resp->status) || (cc->flags & CACHE_CC_PUBLIC))
        return r->heuristic_ms;
    return 0;
}

/* What forbids storing, from the request, the status and Cache-Control; CACHE_OK if none. */
static enum cache_verdict forbidden(const char *req_buf, const struct http_req *req,
                                    const char *resp_buf, const struct http_resp *resp,
                                    const struct cache_cc *cc)
{
    if (req->method != HTTP_M_GET)
        return CACHE_NS_METHOD;
    struct cache_cc rq = {0};
    for (int i = NEXT(req_buf, req, "cache-control", 0); i >= 0;
         i = NEXT(req_buf, req, "cache-control", i + 1))
        cache_cc_parse(&rq, req_buf + req->hdrs[i].value.off, req->hdrs[i].value.len);
    if (rq.flags & CACHE_CC_NO_STORE)
        return CACHE_NS_NO_STORE;
    if (!storable_status(resp->status))
        return CACHE_NS_STATUS;
    if ((resp->flags & (HTTP_F_NO_BODY | HTTP_F_UNTIL_CLOSE | HTTP_F_UPGRADE_WS)) ||
        !(resp->flags & (HTTP_F_LENGTH | HTTP_F_CHUNKED)))
        return CACHE_NS_FRAMING;
    if (cc->flags & CACHE_CC_NO_STORE)
        return CACHE_NS_NO_STORE;
    if (cc->flags & CACHE_CC_PRIVATE)
        return CACHE_NS_PRIVATE;
    /* 3.5: a response to an authorized request only when a shared cache may store it */
    if (http_find_hdr(req_buf, req->hdrs, req->nhdrs, "authorization", 0) >= 0 &&
        !(cc->flags & (CACHE_CC_PUBLIC | CACHE_CC_MUST_REVALIDATE)) &&
        !(cc->has & (1u << CACHE_CC_S_MAXAGE)))
        return CACHE_NS_AUTH;
    /* a cookie set for one client must not reach the others, unless the origin says the
     * whole answer is public */
    if (http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "set-cookie", 0) >= 0 &&
        !(cc->flags & CACHE_CC_PUBLIC))
        return CACHE_NS_SET_COOKIE;
    return CACHE_OK;
}

/* 4.2.3: the corrected initial age in ms, from Date, Age and the response delay. */
static uint64_t initial_age_ms(const char *buf, const struct http_resp *resp,
                               const struct cache_times *t, int64_t date)
{
    uint64_t apparent = t->wall_s > date ? (uint64_t)(t->wall_s - date) * 1000 : 0;
    uint64_t corrected = age_field(buf, resp) * 1000 + t->delay_ms;
    return apparent > corrected ? apparent : corrected;
}

enum cache_verdict cache_policy_eval(const char *req_buf, const struct http_req *req,
                                     const char *resp_buf, const struct http_resp *resp,
                                     const struct cache_rules *r, const struct cache_times *t,
                                     struct cache_policy *p)
{
    struct cache_cc cc = {0};
    for (int i = NEXT(resp_buf, resp, "cache-control", 0); i >= 0;
         i = NEXT(resp_buf, resp, "cache-control", i + 1))
        cache_cc_parse(&cc, resp_buf + resp->hdrs[i].value.off, resp->hdrs[i].value.len);
    enum cache_verdict v = forbidden(req_buf, req, resp_buf, resp, &cc);
    if (v != CACHE_OK)
        return v;

    memset(p, 0, offsetof(struct cache_policy, vary));
    p->vary[0] = '\0';
    for (int i = NEXT(resp_buf, resp, "vary", 0); i >= 0; i = NEXT(resp_buf, resp, "vary", i + 1))
        if (cache_vary_add(p->vary, &p->vary_len, sizeof(p->vary), &p->nvary, CACHE_MAX_VARY,
                           resp_buf + resp->hdrs[i].value.off, resp->hdrs[i].value.len) != 0)
            return CACHE_NS_VARY;

    /* 4.2.3: date_value is the time of receipt when Date is missing or invalid */
    int64_t date = t->wall_s;
    if (date_field(resp_buf, resp, "date", t->wall_s, &date) < 0)
        date = t->wall_s;
    bool explicit_;
    uint64_t fresh = lifetime_ms(resp_buf, resp, &cc, r, t->wall_s, date, &explicit_);
    if (!explicit_ && !heuristic_status(resp->status) && !(cc.flags & CACHE_CC_PUBLIC))
        return CACHE_NS_STATUS;
    if (r->max_ttl_ms && fresh > r->max_ttl_ms)
        fresh = r->max_ttl_ms;
    uint64_t age = initial_age_ms(resp_buf, resp, t, date);
    validators(resp_buf, resp, t->wall_s, p);
    bool validator = p->etag_len || p->last_modified >= 0;
    /* Stale on arrival, or to be revalidated at every use (no-cache, 5.2.2.4): worth
     * keeping only with a validator to revalidate it with. */
    if (cc.flags & CACHE_CC_NO_CACHE) {
        if (!validator)
            return CACHE_NS_NO_CACHE;
        fresh = 0;
    }
    if (fresh <= age && !validator)
        return CACHE_NS_STALE;

    if (resp->flags & HTTP_F_LENGTH) {
        if (resp->content_length > r->max_body)
            return CACHE_NS_TOO_BIG;
        p->has_length = true;
        p->content_length = resp->content_length;
    }
    p->fresh_ms = fresh;
    p->status = resp->status;
    p->age_ms = age;
    p->ttl_ms = fresh > age ? fresh - age : 0;
    p->must_revalidate = (cc.flags & (CACHE_CC_MUST_REVALIDATE | CACHE_CC_PROXY_REVALIDATE)) ||
                         (cc.has & (1u << CACHE_CC_S_MAXAGE));
    uint64_t sie = 0;
    if (!p->must_revalidate && cache_cc_get(&cc, CACHE_CC_SIE, 0, &sie))
        p->sie_ms = sie * 1000;
    if (!p->must_revalidate && cache_cc_get(&cc, CACHE_CC_SWR, 0, &sie))
        p->swr_ms = sie * 1000;
    return CACHE_OK;
}
