/*
 * What the files of lb/cache share among themselves and nobody else uses: the layout of the
 * cache, its entries and pending fills, and the few functions that cross files. cache.c owns
 * the table, the LRU and the entries; fill.c the pending fills; policy.c the cacheability
 * decision, which needs none of the structs.
 */
#ifndef CACHE_INTERNAL_H
#define CACHE_INTERNAL_H

#include "lb/cache/cache.h"

struct cache_entry {
    struct cache_entry *hnext;    /* hash chain */
    struct cache_entry *lru_prev; /* towards the most recently used */
    struct cache_entry *lru_next; /* towards the least recently used */
    uint64_t hash;                /* of host + target */
    uint64_t stored_ms;
    uint64_t expires_ms;   /* stored_ms + fresh_ms - age_ms: fresh before */
    uint64_t drop_ms;      /* removed from then on; later than expires_ms with a validator */
    uint64_t sie_ms;       /* stale-if-error: served stale on errors until expires_ms + this */
    uint64_t swr_ms;       /* stale-while-revalidate: served stale during a refresh, as long */
    uint64_t age_ms;       /* corrected initial age when stored */
    int64_t last_modified; /* Unix seconds, -1: none */
    uint64_t inval_gen;    /* cache_inval_gen() of its key when its fill began */
    size_t size;           /* allocation size, charged to the cache while linked */
    size_t body_len;       /* body bytes so far (a fill appends) */
    uint32_t refs;         /* the table holds one while linked */
    uint32_t host_len;
    uint32_t target_len;
    uint32_t vary_len; /* bytes of the Vary record */
    uint32_t hdr_len;
    uint16_t nvary;
    uint16_t status;
    uint8_t etag_len; /* 0: no ETag */
    bool linked;
    char etag[CACHE_ETAG_MAX];
    char data[]; /* host, target, Vary record, header, body */
};

struct cache_fill {
    struct cache_fill *hnext;
    uint64_t hash;
    uint64_t inval_gen;    /* cache_inval_gen() of the key when the fill began */
    struct cache_entry *e; /* being built, from fill_head on; refs 0 until linked */
    size_t cap;            /* allocation size of e */
    size_t limit;          /* the largest entry this fill builds (cache_fill_set_limit) */
    uint64_t content_length;
    bool has_length;
    uint32_t host_len;
    uint32_t target_len;
    uint32_t nwaiters;
    uint32_t wcap;
    uint64_t *waiters;
    char key[]; /* host then target */
};

struct cache {
    struct cache_entry **buckets;
    struct cache_fill **fills;
    uint32_t mask;  /* buckets - 1 */
    uint32_t fmask; /* fill buckets - 1 */
    uint32_t sweep_pos;
    uint64_t seed;
    size_t max_bytes;
    size_t item_max;
    struct cache_entry *lru_head; /* most recently used */
    struct cache_entry *lru_tail; /* next to evict */
    struct cache_stats st;
};

/* ---- small helpers ---- */

static inline uint8_t lower(uint8_t ch)
{
    return ch >= 'A' && ch <= 'Z' ? (uint8_t)(ch | 0x20) : ch;
}

static inline bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
            return false;
    return true;
}

static inline const char *entry_target(const struct cache_entry *e)
{
    return e->data + e->host_len;
}

static inline const char *entry_vary(const struct cache_entry *e)
{
    return e->data + e->host_len + e->target_len;
}

static inline const char *entry_hdr(const struct cache_entry *e)
{
    return entry_vary(e) + e->vary_len;
}

static inline size_t entry_used(const struct cache_entry *e)
{
    return sizeof(*e) + e->host_len + e->target_len + e->vary_len + e->hdr_len + e->body_len;
}

/* ---- crossing files (cache.c) ---- */

/*
 * Hash of host (letter case folded) and target, 8 bytes at a time, seeded with the cache's
 * seed.
 */
uint64_t cache_key_hash(uint64_t seed, const char *host, size_t hlen, const char *target,
                        size_t tlen);

/* True when @req may be answered from the cache or fill it: GET. */
bool cache_req_cacheable(const char *buf, const struct http_req *req);

/* Bytes of the Vary record of the fields @p names, with @req's values for them. */
size_t cache_vary_record_len(const struct cache_policy *p, const char *buf,
                             const struct http_req *req);

/* Writes that record (cache_vary_record_len() bytes) to @out. */
void cache_vary_record_write(char *out, const struct cache_policy *p, const char *buf,
                             const struct http_req *req);

/*
 * Links the complete entry @e (its size set, not linked yet) into the table and the LRU,
 * taking the table's reference: removes the entry it replaces and surplus variants, then
 * evicts least recently used entries until the bytes fit.
 */
void cache_entry_link(struct cache *c, struct cache_entry *e);

/* Removes *@pp (a linked entry) from its chain and the LRU, and drops the table's reference;
 * *@pp is then the next entry of the chain. Counts nothing: the caller says why it went. */
void cache_entry_drop(struct cache *c, struct cache_entry **pp);

/*
 * The invalidation generation of a host + target: a process-wide counter (one of
 * CACHE_INVAL_SLOTS, picked by a hash every worker computes alike) that cache_invalidate()
 * bumps. An entry or fill that recorded an older value is gone, on every worker.
 */
uint64_t cache_inval_gen(const char *host, size_t hlen, const char *target, size_t tlen);

/* An inval_gen no key ever has: an entry or fill marked with it goes at its first lookup. */
#define CACHE_INVAL_NEVER UINT64_MAX

/* ---- crossing files (fill.c) ---- */

/* Frees every pending fill without waking its waiters (cache_destroy). */
void cache_fills_free(struct cache *c);

#endif
