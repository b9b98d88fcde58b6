/*
 * The cacheability decision of the L1 cache (RFC 9111 3 and 4.2.1, see cache_policy_eval()
 * in cache.h): whether a response may be stored and for how long, from the request method
 * and Authorization, the status and framing, Cache-Control, Set-Cookie and Vary. Pure: no
 * cache state, no allocation.
 */
#include <string.h>

#include "lb/cache/internal.h"

#define CACHE_MAX_AGE_CAP 2147483648ull /* RFC 9111 1.2.2: larger delta-seconds saturate */

static inline bool is_ows(uint8_t ch)
{
    return ch == ' ' || ch == '\t';
}

/* tchar of RFC 9110 5.6.2 */
static bool is_tchar(uint8_t ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * delta-seconds in @s[0..n) as milliseconds, saturating at CACHE_MAX_AGE_CAP seconds.
 * Anything but one or more digits gives 0: the response is then treated as stale.
 */
static uint64_t delta_ms(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v < CACHE_MAX_AGE_CAP)
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return (v < CACHE_MAX_AGE_CAP ? v : CACHE_MAX_AGE_CAP) * 1000;
}

struct cc_state {
    bool no_store, private_, no_cache;
    bool has_max_age, has_s_maxage;
    uint64_t max_age_ms, s_maxage_ms;
};

static void cc_apply(struct cc_state *cc, const uint8_t *name, size_t nlen, const uint8_t *arg,
                     size_t alen, bool has_arg)
{
    uint64_t ms = has_arg ? delta_ms(arg, alen) : 0;
    if (nlen == 8 && eq_nocase((const char *)name, "no-store", 8)) {
        cc->no_store = true;
    } else if (nlen == 7 && eq_nocase((const char *)name, "private", 7)) {
        cc->private_ = true;
    } else if (nlen == 8 && eq_nocase((const char *)name, "no-cache", 8)) {
        cc->no_cache = true;
    } else if (nlen == 7 && eq_nocase((const char *)name, "max-age", 7)) {
        if (!cc->has_max_age || ms < cc->max_age_ms)
            cc->max_age_ms = ms;
        cc->has_max_age = true;
    } else if (nlen == 8 && eq_nocase((const char *)name, "s-maxage", 8)) {
        if (!cc->has_s_maxage || ms < cc->s_maxage_ms)
            cc->s_maxage_ms = ms;
        cc->has_s_maxage = true;
    }
}

/*
 * One Cache-Control field value: #( token [ "=" ( token / quoted-string ) ] ). Lenient
 * where leniency cannot make us cache more: an element we cannot read is skipped up to the
 * next comma, and an argument we cannot read counts as 0 (stale) for max-age / s-maxage.
 */
static void cc_parse(struct cc_state *cc, const uint8_t *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t n0 = i;
        while (i < len && is_tchar(v[i]))
            i++;
        size_t n1 = i;
        while (i < len && is_ows(v[i]))
            i++;
        const uint8_t *arg = NULL;
        size_t alen = 0;
        bool has_arg = false, bad = false;
        if (i < len && v[i] == '=') {
            has_arg = true;
            i++;
            while (i < len && is_ows(v[i]))
                i++;
            if (i < len && v[i] == '"') {
                size_t a0 = ++i;
                while (i < len && v[i] != '"') {
                    if (v[i] == '\\') {
                        bad = true; /* an escape in a number: not a number */
                        i++;
                    }
                    i++;
                }
                if (i >= len)
                    bad = true; /* unterminated */
                arg = v + a0;
                alen = (i < len ? i : len) - a0;
                if (i < len)
                    i++;
            } else {
                size_t a0 = i;
                while (i < len && is_tchar(v[i]))
                    i++;
                arg = v + a0;
                alen = i - a0;
            }
            while (i < len && is_ows(v[i]))
                i++;
        }
        if (i < len && v[i] != ',') {
            bad = true;
            while (i < len && v[i] != ',')
                i++;
        }
        if (n1 > n0)
            cc_apply(cc, v + n0, n1 - n0, arg, bad ? 0 : alen, has_arg);
        else if (i < len)
            i++;
    }
}

/* Adds the field names of one Vary value to @p. Returns CACHE_OK or CACHE_NS_VARY. */
static enum cache_verdict vary_parse(struct cache_policy *p, const uint8_t *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i >= len)
            break;
        size_t n0 = i;
        while (i < len && v[i] != ',' && !is_ows(v[i]))
            i++;
        size_t nl = i - n0;
        while (i < len && is_ows(v[i]))
            i++;
        if (i < len && v[i] != ',')
            return CACHE_NS_VARY; /* "a b": not a list of names */
        for (size_t k = n0; k < n0 + nl; k++)
            if (!is_tchar(v[k]) || v[k] == '*')
                return CACHE_NS_VARY; /* "*", or a name no request can carry */
        /* already listed? */
        const char *name = p->vary;
        bool dup = false;
        for (uint32_t k = 0; k < p->nvary && !dup; k++) {
            size_t l = strlen(name);
            dup = l == nl && eq_nocase(name, (const char *)v + n0, nl);
            name += l + 1;
        }
        if (dup)
            continue;
        if (p->nvary == CACHE_MAX_VARY || nl > 255 || p->vary_len + nl + 1 > sizeof(p->vary))
            return CACHE_NS_VARY;
        for (size_t k = 0; k < nl; k++)
            p->vary[p->vary_len + k] = (char)lower(v[n0 + k]);
        p->vary[p->vary_len + nl] = '\0';
        p->vary_len += (uint32_t)nl + 1;
        p->nvary++;
    }
    return CACHE_OK;
}

enum cache_verdict cache_policy_eval(const char *req_buf, const struct http_req *req,
                                           const char *resp_buf, const struct http_resp *resp,
                                           uint64_t route_ttl_ms, uint64_t max_body,
                                           struct cache_policy *p)
{
    if (req->method != HTTP_M_GET)
        return CACHE_NS_METHOD;
    if (http_find_hdr(req_buf, req->hdrs, req->nhdrs, "authorization", 0) >= 0)
        return CACHE_NS_AUTH;
    if (resp->status != 200)
        return CACHE_NS_STATUS;
    if ((resp->flags & (HTTP_F_NO_BODY | HTTP_F_UNTIL_CLOSE | HTTP_F_UPGRADE_WS)) ||
        !(resp->flags & (HTTP_F_LENGTH | HTTP_F_CHUNKED)))
        return CACHE_NS_FRAMING;

    struct cc_state cc = {0};
    for (int i = http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "cache-control", 0); i >= 0;
         i = http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "cache-control", i + 1u))
        cc_parse(&cc, (const uint8_t *)resp_buf + resp->hdrs[i].value.off, resp->hdrs[i].value.len);
    if (cc.no_store)
        return CACHE_NS_NO_STORE;
    if (cc.private_)
        return CACHE_NS_PRIVATE;
    if (cc.no_cache)
        return CACHE_NS_NO_CACHE;
    if (http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "set-cookie", 0) >= 0)
        return CACHE_NS_SET_COOKIE;

    memset(p, 0, offsetof(struct cache_policy, vary));
    p->vary[0] = '\0';
    for (int i = http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "vary", 0); i >= 0;
         i = http_find_hdr(resp_buf, resp->hdrs, resp->nhdrs, "vary", i + 1u)) {
        enum cache_verdict v = vary_parse(p, (const uint8_t *)resp_buf + resp->hdrs[i].value.off,
                                             resp->hdrs[i].value.len);
        if (v != CACHE_OK)
            return v;
    }

    uint64_t ttl = route_ttl_ms;
    if (cc.has_s_maxage)
        ttl = cc.s_maxage_ms < ttl ? cc.s_maxage_ms : ttl;
    else if (cc.has_max_age)
        ttl = cc.max_age_ms < ttl ? cc.max_age_ms : ttl;
    if (ttl == 0)
        return CACHE_NS_STALE;

    if (resp->flags & HTTP_F_LENGTH) {
        if (resp->content_length > max_body)
            return CACHE_NS_TOO_BIG;
        p->has_length = true;
        p->content_length = resp->content_length;
    }
    p->ttl_ms = ttl;
    return CACHE_OK;
}
