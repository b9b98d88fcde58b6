/*
 * L2 entries (see l2.h): an L1 entry encoded for Redis, decoded strictly (the bytes come
 * from a shared store anyone with access to it can write), and an L1 fill made from one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/internal.h"
#include "lb/cache/l2.h"

_Static_assert(CACHE_L2_FIXED == 4 + 4 * 2 + 6 * 8 + 4 * 4 + 8, "the fixed part");
#define L2_MAX_HDR (256u << 10)

static void put16(char **p, uint16_t v)
{
    (*p)[0] = (char)v, (*p)[1] = (char)(v >> 8);
    *p += 2;
}

static void put32(char **p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        (*p)[i] = (char)(v >> (8 * i));
    *p += 4;
}

static void put64(char **p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        (*p)[i] = (char)(v >> (8 * i));
    *p += 8;
}

static uint64_t get(const unsigned char **p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)(*p)[i] << (8 * i);
    *p += n;
    return v;
}

/* The header's framing: true for a response with Content-Length == @body_len, no chunking,
 * and status @status. */
static bool framed(const char *hdr, size_t hl, uint16_t status, uint64_t body_len)
{
    static __thread struct http_resp r;
    memset(&r.scan, 0, sizeof(r.scan));
    if (hl < 16 || hl > L2_MAX_HDR || memcmp(hdr, "HTTP/1.1 ", 9) != 0 ||
        http_parse_response(hdr, hl, hl, HTTP_M_GET, &r) != (int)hl)
        return false;
    return r.status == status && (r.flags & HTTP_F_LENGTH) && !(r.flags & HTTP_F_CHUNKED) &&
           r.content_length == body_len;
}

ssize_t cache_l2_encode(const struct cache_entry *e, uint64_t now_ms, int64_t wall_ms, char **out)
{
    *out = NULL;
    const char *hdr = entry_hdr(e);
    if (!framed(hdr, e->hdr_len, e->status, e->body_len))
        return -EINVAL;
    size_t len = CACHE_L2_FIXED + e->etag_len + e->host_len + e->target_len + e->vary_len +
                 e->hdr_len + e->body_len;
    char *b = malloc(len), *p = b;
    if (!b)
        return -ENOMEM;
    uint64_t fresh =
        e->expires_ms == UINT64_MAX ? UINT64_MAX / 4 : e->expires_ms - e->stored_ms + e->age_ms;
    memcpy(p, CACHE_L2_MAGIC, 4);
    p += 4;
    put16(&p, e->status);
    put16(&p, e->nvary);
    put16(&p, e->etag_len);
    put16(&p, 0);
    put64(&p, (uint64_t)wall_ms);
    put64(&p, cache_entry_age_ms(e, now_ms));
    put64(&p, fresh);
    put64(&p, e->sie_ms);
    put64(&p, e->swr_ms);
    put64(&p, (uint64_t)e->last_modified);
    put32(&p, e->host_len);
    put32(&p, e->target_len);
    put32(&p, e->vary_len);
    put32(&p, e->hdr_len);
    put64(&p, e->body_len);
    memcpy(p, e->etag, e->etag_len);
    p += e->etag_len;
    /* host, target, Vary record, header and body lie in this order in e->data */
    memcpy(p, e->data, len - (size_t)(p - b));
    *out = b;
    return (ssize_t)len;
}

/* Checks the Vary record (@n bytes, @nvary fields): names lowercase tokens, each once. */
static bool vary_ok(const char *rec, size_t n, uint16_t nvary)
{
    size_t o = 0;
    for (uint16_t k = 0; k < nvary; k++) {
        if (o >= n)
            return false;
        size_t nl = (uint8_t)rec[o++];
        if (nl == 0 || nl > n - o || n - o - nl < 1 + 1 + 4 || rec[o + nl] != '\0')
            return false;
        for (size_t i = 0; i < nl; i++) {
            char ch = rec[o + i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
                return false;
        }
        o += nl + 1;
        uint8_t present = (uint8_t)rec[o++];
        uint32_t vl;
        memcpy(&vl, rec + o, 4);
        o += 4;
        if (present > 1 || (!present && vl) || vl > n - o)
            return false;
        o += vl;
    }
    return o == n;
}

int cache_l2_decode(const void *in, size_t len, struct cache_l2_view *v)
{
    const unsigned char *p = in;
    memset(v, 0, sizeof(*v));
    if (len < CACHE_L2_FIXED || memcmp(p, CACHE_L2_MAGIC, 4) != 0)
        return -EBADMSG;
    p += 4;
    v->status = (uint16_t)get(&p, 2);
    v->nvary = (uint16_t)get(&p, 2);
    v->etag_len = (uint32_t)get(&p, 2);
    uint64_t zero = get(&p, 2);
    v->stored_at_ms = (int64_t)get(&p, 8);
    v->age_ms = get(&p, 8);
    v->fresh_ms = get(&p, 8);
    v->sie_ms = get(&p, 8);
    v->swr_ms = get(&p, 8);
    v->last_modified = (int64_t)get(&p, 8);
    v->host_len = (uint32_t)get(&p, 4);
    v->target_len = (uint32_t)get(&p, 4);
    v->vary_len = (uint32_t)get(&p, 4);
    v->hdr_len = (uint32_t)get(&p, 4);
    v->body_len = get(&p, 8);
    /* each length is bounded before they are added: no sum can wrap */
    if (zero || v->status < 200 || v->status > 599 || v->nvary > CACHE_MAX_VARY ||
        v->etag_len >= CACHE_ETAG_MAX || v->host_len == 0 || v->host_len > 1024 ||
        v->target_len == 0 || v->target_len > 65536 || v->vary_len > CACHE_L2_MAX_VARY_REC ||
        v->hdr_len > L2_MAX_HDR || v->body_len > len || v->stored_at_ms < 0 ||
        v->last_modified < -1 || v->fresh_ms > UINT64_MAX / 4 || v->age_ms > UINT64_MAX / 4 ||
        v->sie_ms > 86400000ull * 365 || v->swr_ms > 86400000ull * 365)
        return -EBADMSG;
    uint64_t want = (uint64_t)CACHE_L2_FIXED + v->etag_len + v->host_len + v->target_len +
                    v->vary_len + v->hdr_len + v->body_len;
    if (want != len)
        return -EBADMSG;
    const char *q = (const char *)p;
    v->etag = q, q += v->etag_len;
    v->host = q, q += v->host_len;
    v->target = q, q += v->target_len;
    v->vary = q, q += v->vary_len;
    v->hdr = q, q += v->hdr_len;
    v->body = q;
    if (v->target[0] != '/' || memchr(v->host, '\0', v->host_len) ||
        memchr(v->target, '\0', v->target_len) || !vary_ok(v->vary, v->vary_len, v->nvary) ||
        !framed(v->hdr, v->hdr_len, v->status, v->body_len))
        return -EBADMSG;
    return 0;
}

/* The policy cache_fill_head needs, from @v at @wall_ms; false when it is stale. */
static bool view_policy(const struct cache_l2_view *v, int64_t wall_ms, struct cache_policy *p)
{
    memset(p, 0, sizeof(*p));
    uint64_t since = wall_ms > v->stored_at_ms ? (uint64_t)(wall_ms - v->stored_at_ms) : 0;
    p->age_ms = v->age_ms + since;
    if (p->age_ms >= v->fresh_ms)
        return false;
    p->fresh_ms = v->fresh_ms;
    p->ttl_ms = v->fresh_ms - p->age_ms;
    p->status = v->status;
    p->has_length = true;
    p->content_length = v->body_len;
    p->last_modified = v->last_modified;
    p->sie_ms = v->sie_ms;
    p->swr_ms = v->swr_ms;
    p->etag_len = v->etag_len;
    memcpy(p->etag, v->etag, v->etag_len);
    /* the names, NUL-terminated, from the record (vary_ok checked its shape) */
    size_t o = 0;
    for (uint16_t k = 0; k < v->nvary; k++) {
        size_t nl = (uint8_t)v->vary[o++];
        if (p->vary_len + nl + 1 > CACHE_VARY_BYTES)
            return false;
        memcpy(p->vary + p->vary_len, v->vary + o, nl + 1);
        p->vary_len += (uint32_t)nl + 1;
        p->nvary++;
        o += nl + 1 + 1;
        uint32_t vl;
        memcpy(&vl, v->vary + o, 4);
        o += 4 + vl;
    }
    return true;
}

int cache_l2_fill(struct cache *c, struct cache_fill *f, const struct cache_l2_view *v,
                  const char *buf, const struct http_req *req, uint64_t now_ms, int64_t wall_ms)
{
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    if (v->host_len != req->host.len || v->target_len != req->target.len ||
        !eq_nocase(v->host, host, v->host_len) || memcmp(v->target, target, v->target_len))
        return -ENOENT;
    struct cache_policy p;
    if (!view_policy(v, wall_ms, &p))
        return -ESTALE;
    /* the variant: this request's values of the Vary fields must be the stored ones */
    if (cache_vary_record_len(&p, buf, req) != v->vary_len)
        return -ENOENT;
    char stack[512];
    char *rec = v->vary_len <= sizeof(stack) ? stack : malloc(v->vary_len);
    if (!rec)
        return -ENOMEM;
    cache_vary_record_write(rec, &p, buf, req);
    bool same = memcmp(rec, v->vary, v->vary_len) == 0;
    if (rec != stack)
        free(rec);
    if (!same)
        return -ENOENT;
    int rc = cache_fill_head(c, f, &p, buf, req, v->hdr, v->hdr_len, now_ms);
    if (rc == 0)
        rc = cache_fill_append(c, f, v->body, v->body_len);
    return rc;
}

uint64_t cache_l2_ttl_ms(const struct cache_entry *e, uint64_t now_ms)
{
    uint64_t left = e->expires_ms > now_ms ? e->expires_ms - now_ms : 0;
    uint64_t extra = e->sie_ms > e->swr_ms ? e->sie_ms : e->swr_ms;
    uint64_t t = left + extra < left ? UINT64_MAX / 4 : left + extra;
    return t ? t : 1;
}

const struct cache_entry *cache_fill_entry(const struct cache_fill *f)
{
    return f->e;
}
