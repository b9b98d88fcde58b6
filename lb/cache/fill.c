/*
 * Pending fills of the L1 cache (see cache.h, "Miss coalescing"): a small hash table of the
 * misses being fetched, keyed by host + target, each with the waiters parked on it.
 *
 * A fill builds its entry in place: fill_head allocates it (exactly, when Content-Length is
 * known; growing by doubling for chunked bodies), fill_append copies body bytes into it, and
 * fill_commit links it, so a cacheable answer is copied once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/internal.h"

#define CACHE_FILL_FIRST_CHUNK 16384u /* first allocation for a body of unknown length */

static void fill_free(struct cache_fill *f)
{
    free(f->e);
    f->e = NULL;
    free(f->waiters);
    f->waiters = NULL;
    free(f);
}

void cache_fills_free(struct cache *c)
{
    for (uint32_t i = 0; i <= c->fmask; i++) {
        while (c->fills[i]) {
            struct cache_fill *f = c->fills[i];
            c->fills[i] = f->hnext;
            fill_free(f);
        }
    }
}

static struct cache_fill **fill_find(struct cache *c, uint64_t h, const char *host, size_t hlen,
                                     const char *target, size_t tlen)
{
    struct cache_fill **pp = &c->fills[h & c->fmask];
    for (; *pp; pp = &(*pp)->hnext) {
        const struct cache_fill *f = *pp;
        if (f->hash == h && f->host_len == hlen && f->target_len == tlen &&
            memcmp(f->key + hlen, target, tlen) == 0 && eq_nocase(f->key, host, hlen))
            break;
    }
    return pp;
}

int cache_fill_begin(struct cache *c, const char *buf, const struct http_req *req, uint64_t waiter,
                     struct cache_fill **fill)
{
    if (!cache_req_cacheable(buf, req))
        return -EINVAL;
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    size_t hlen = req->host.len, tlen = req->target.len;
    uint64_t h = cache_key_hash(c->seed, host, hlen, target, tlen);
    struct cache_fill **pp = fill_find(c, h, host, hlen, target, tlen);
    struct cache_fill *f = *pp;
    if (f) {
        if (f->nwaiters == CACHE_MAX_WAITERS)
            return -ENOSPC;
        if (f->nwaiters == f->wcap) {
            uint32_t cap = f->wcap ? f->wcap * 2 : 8;
            if (cap > CACHE_MAX_WAITERS)
                cap = CACHE_MAX_WAITERS;
            uint64_t *w = realloc(f->waiters, cap * sizeof(*w));
            if (!w)
                return -ENOMEM;
            f->waiters = w;
            f->wcap = cap;
        }
        f->waiters[f->nwaiters++] = waiter;
        c->st.coalesced++;
        *fill = f;
        return CACHE_FILL_WAIT;
    }
    f = calloc(1, sizeof(*f) + hlen + tlen);
    if (!f)
        return -ENOMEM;
    f->hash = h;
    f->limit = c->item_max;
    f->inval_gen = cache_inval_gen(host, hlen, target, tlen);
    f->host_len = (uint32_t)hlen;
    f->target_len = (uint32_t)tlen;
    memcpy(f->key, host, hlen);
    memcpy(f->key + hlen, target, tlen);
    *pp = f;
    *fill = f;
    return CACHE_FILL_NEW;
}

uint32_t cache_fill_waiters(const struct cache_fill *f)
{
    return f->nwaiters;
}

/*
 * When an entry that goes stale at @expires is removed: then, unless it can still serve.
 * With a validator it is revalidated rather than fetched again: kept as long again as it
 * was fresh, at least CACHE_KEEP_STALE_MS; with stale-if-error or stale-while-revalidate,
 * for that long. A day at most.
 */
static uint64_t drop_time(const struct cache_policy *p, uint64_t expires)
{
    uint64_t keep = 0;
    if (p->etag_len || p->last_modified >= 0)
        keep = p->fresh_ms > CACHE_KEEP_STALE_MS ? p->fresh_ms : CACHE_KEEP_STALE_MS;
    if (p->sie_ms > keep)
        keep = p->sie_ms;
    if (p->swr_ms > keep)
        keep = p->swr_ms;
    keep = keep < 86400000 ? keep : 86400000;
    return expires + keep < expires ? UINT64_MAX : expires + keep;
}

int cache_fill_head(struct cache *c, struct cache_fill *f, const struct cache_policy *p,
                    const char *req_buf, const struct http_req *req, const char *hdr,
                    size_t hdr_len, uint64_t now_ms)
{
    if (f->e)
        return -EALREADY;
    size_t vlen = cache_vary_record_len(p, req_buf, req);
    size_t base = sizeof(struct cache_entry) + f->host_len + f->target_len + vlen + hdr_len;
    if (base > f->limit || (p->has_length && p->content_length > f->limit - base))
        return -EFBIG;
    size_t cap = base + (size_t)p->content_length;
    if (!p->has_length)
        cap = f->limit - base < CACHE_FILL_FIRST_CHUNK ? f->limit : base + CACHE_FILL_FIRST_CHUNK;
    struct cache_entry *e = malloc(cap);
    if (!e)
        return -ENOMEM;
    memset(e, 0, sizeof(*e));
    e->hash = f->hash;
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + p->ttl_ms < now_ms ? UINT64_MAX : now_ms + p->ttl_ms;
    e->drop_ms = drop_time(p, e->expires_ms);
    e->sie_ms = p->sie_ms;
    e->swr_ms = p->swr_ms;
    e->age_ms = p->age_ms;
    e->inval_gen = f->inval_gen;
    e->last_modified = p->last_modified;
    e->status = (uint16_t)p->status;
    e->etag_len = (uint8_t)p->etag_len;
    memcpy(e->etag, p->etag, p->etag_len);
    e->host_len = f->host_len;
    e->target_len = f->target_len;
    e->vary_len = (uint32_t)vlen;
    e->hdr_len = (uint32_t)hdr_len;
    e->nvary = (uint16_t)p->nvary;
    memcpy(e->data, f->key, f->host_len + f->target_len);
    cache_vary_record_write(e->data + f->host_len + f->target_len, p, req_buf, req);
    memcpy((char *)entry_hdr(e), hdr, hdr_len);
    f->e = e;
    f->cap = cap;
    f->has_length = p->has_length;
    f->content_length = p->content_length;
    return 0;
}

int cache_fill_append(struct cache *c, struct cache_fill *f, const void *data, size_t len)
{
    struct cache_entry *e = f->e;
    if (!e)
        return -EPROTO;
    if (f->has_length && len > f->content_length - e->body_len)
        return -EFBIG;
    size_t used = entry_used(e);
    (void)c;
    if (len > f->limit - used)
        return -EFBIG;
    if (used + len > f->cap) {
        size_t cap = f->cap * 2;
        if (cap < used + len)
            cap = used + len;
        if (cap > f->limit)
            cap = f->limit;
        e = realloc(e, cap);
        if (!e)
            return -ENOMEM;
        f->e = e;
        f->cap = cap;
    }
    memcpy((char *)entry_hdr(e) + e->hdr_len + e->body_len, data, len);
    e->body_len += len;
    return 0;
}

/* Takes @f out of the table and wakes its waiters with @e (may be NULL), then frees it. */
static void fill_finish(struct cache *c, struct cache_fill *f, struct cache_entry *e,
                        cache_wake_fn *wake, void *arg)
{
    struct cache_fill **pp = &c->fills[f->hash & c->fmask];
    while (*pp != f)
        pp = &(*pp)->hnext;
    *pp = f->hnext;
    /* from here the callbacks may begin a new fill for this key or evict @e */
    if (e)
        cache_entry_ref(e);
    for (uint32_t i = 0; i < f->nwaiters && wake; i++)
        wake(arg, f->waiters[i], e);
    if (e)
        cache_entry_unref(e);
    fill_free(f);
}

void cache_fill_abort(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg)
{
    c->st.fill_aborts++;
    fill_finish(c, f, NULL, wake, arg);
}

int cache_fill_commit(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg)
{
    return cache_fill_commit_take(c, f, wake, arg, NULL);
}

int cache_fill_commit_take(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg,
                           struct cache_entry **out)
{
    if (out)
        *out = NULL;
    struct cache_entry *e = f->e;
    if (!e || (f->has_length && e->body_len != f->content_length)) {
        cache_fill_abort(c, f, wake, arg);
        return -EPROTO;
    }
    size_t used = entry_used(e);
    if (f->cap - used > 4096 && f->cap - used > used / 8) {
        struct cache_entry *s = realloc(e, used);
        if (s) {
            e = s;
            f->cap = used;
        }
    }
    f->e = NULL; /* the table owns it now, or its waiters only when it is too big for it */
    e->size = f->cap;
    if (used <= c->item_max) {
        cache_entry_link(c, e);
        c->st.fills++;
    }
    if (out) {
        cache_entry_ref(e);
        *out = e;
    }
    fill_finish(c, f, e, wake, arg); /* an entry left unlinked goes with its last reference */
    return 0;
}

void cache_fill_set_limit(struct cache *c, struct cache_fill *f, size_t limit)
{
    f->limit = limit > c->item_max && limit < SIZE_MAX / 2 ? limit : c->item_max;
}
