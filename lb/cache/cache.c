/*
 * L1 response cache (see cache.h): a chained hash table of entries keyed by host + target,
 * an LRU list over the same entries, and the entries themselves. The pending fills that
 * build entries are in fill.c, the cacheability decision (Cache-Control, Vary,
 * Set-Cookie...) in policy.c.
 *
 * An entry is one allocation: the struct, then host, target, the Vary record, the header
 * block and the body. The Vary record holds, for each field name the response's Vary
 * listed, the filler's request value for it:
 *
 *     [u8 name_len][name, lowercase][NUL][u8 present][u32 value_len][value]   x nvary
 *
 * where value is every occurrence of the field joined by ",". A lookup compares the same
 * join of its own request against it, field by field, without building anything.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "conf/hash.h"
#include "lb/cache/internal.h"

#define CACHE_MIN_BUCKETS 64u
#define CACHE_MAX_BUCKETS (1u << 22)
#define CACHE_BYTES_PER_BUCKET 2048u

/* ---- keys ---- */

/*
 * Hash of host (letter case folded) and target: conf/hash.h's lb_hash64 rounds over the
 * host's words then the target's, with both lengths in the start, so neither is copied into
 * one buffer first. Folding ORs 0x20 into every host byte, which lowercases letters and
 * merges a few punctuation pairs ('[' and '{'): harmless, the comparison after the hash is
 * exact. Seeded per cache so that which targets collide cannot be worked out from outside.
 */
uint64_t cache_key_hash(uint64_t seed, const char *host, size_t hlen, const char *target,
                        size_t tlen)
{
    const uint64_t fold = 0x2020202020202020ull;
    const unsigned char *p = (const unsigned char *)host;
    uint64_t h = lb_hash_start(seed, (uint64_t)hlen << 32 | (uint32_t)tlen);
    size_t i = 0;

    for (; i + 8 <= hlen; i += 8)
        h = lb_hash_round(h, lb_load_le64(p + i) | fold);
    if (i < hlen)
        h = lb_hash_round(h, lb_load_le_tail(p + i, hlen - i) | fold >> (8 * (8 - (hlen - i))));
    p = (const unsigned char *)target;
    for (i = 0; i + 8 <= tlen; i += 8)
        h = lb_hash_round(h, lb_load_le64(p + i));
    if (i < tlen)
        h = lb_hash_round(h, lb_load_le_tail(p + i, tlen - i));
    return lb_hash_mix64(h);
}

/* Invalidation generations shared by every worker's cache: a key's slot changes when the
 * key is invalidated anywhere, and each cache drops its entries that recorded an older
 * value when a lookup meets them. Two keys sharing a slot only cost each other a miss. */
#define CACHE_INVAL_SLOTS 4096
#define CACHE_INVAL_SEED 0x9e3779b97f4a7c15ull
static _Atomic uint64_t inval_gens[CACHE_INVAL_SLOTS];

static _Atomic uint64_t *inval_slot(const char *host, size_t hlen, const char *target, size_t tlen)
{
    uint64_t h = cache_key_hash(CACHE_INVAL_SEED, host, hlen, target, tlen);
    return &inval_gens[h & (CACHE_INVAL_SLOTS - 1)];
}

uint64_t cache_inval_gen(const char *host, size_t hlen, const char *target, size_t tlen)
{
    return atomic_load_explicit(inval_slot(host, hlen, target, tlen), memory_order_acquire);
}

bool cache_req_cacheable(const char *buf, const struct http_req *req)
{
    return req->method == HTTP_M_GET;
}
static bool key_eq(const struct cache_entry *e, uint64_t h, const char *host, size_t hlen,
                   const char *target, size_t tlen)
{
    return e->hash == h && e->host_len == hlen && e->target_len == tlen &&
           memcmp(entry_target(e), target, tlen) == 0 && eq_nocase(e->data, host, hlen);
}

/* ---- Vary record ---- */

/* Bytes of the join of every @name field of @req, or -1 when there is none. */
static int64_t req_value_len(const char *buf, const struct http_req *req, const char *name)
{
    int64_t len = -1;
    for (int i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, 0); i >= 0;
         i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, (uint32_t)i + 1))
        len += (int64_t)req->hdrs[i].value.len + 1; /* the first +1 cancels the -1 */
    return len;
}

size_t cache_vary_record_len(const struct cache_policy *p, const char *buf,
                             const struct http_req *req)
{
    size_t n = 0;
    const char *name = p->vary;
    for (uint32_t k = 0; k < p->nvary; k++) {
        size_t nl = strlen(name);
        int64_t vl = req_value_len(buf, req, name);
        n += 1 + nl + 1 + 1 + 4 + (vl > 0 ? (size_t)vl : 0);
        name += nl + 1;
    }
    return n;
}

void cache_vary_record_write(char *out, const struct cache_policy *p, const char *buf,
                             const struct http_req *req)
{
    const char *name = p->vary;
    for (uint32_t k = 0; k < p->nvary; k++) {
        size_t nl = strlen(name);
        *out++ = (char)nl;
        memcpy(out, name, nl + 1);
        out += nl + 1;
        char *present = out++;
        char *lenp = out;
        out += 4;
        uint32_t vl = 0;
        *present = 0;
        for (int i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, 0); i >= 0;
             i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, (uint32_t)i + 1)) {
            if (*present)
                out[vl++] = ',';
            *present = 1;
            memcpy(out + vl, buf + req->hdrs[i].value.off, req->hdrs[i].value.len);
            vl += req->hdrs[i].value.len;
        }
        memcpy(lenp, &vl, 4);
        out += vl;
        name += nl + 1;
    }
}

/* True when @req's values of the record's fields equal the stored ones. */
static bool vary_match(const char *rec, uint16_t nvary, const char *buf, const struct http_req *req)
{
    for (uint16_t k = 0; k < nvary; k++) {
        size_t nl = (uint8_t)*rec++;
        const char *name = rec;
        rec += nl + 1;
        bool present = *rec++ != 0;
        uint32_t vl;
        memcpy(&vl, rec, 4);
        rec += 4;
        const char *val = rec;
        rec += vl;

        int i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, 0);
        if ((i >= 0) != present)
            return false;
        size_t pos = 0;
        for (bool first = true; i >= 0; first = false) {
            const struct http_span *v = &req->hdrs[i].value;
            if (!first) {
                if (pos >= vl || val[pos] != ',')
                    return false;
                pos++;
            }
            if (v->len > vl - pos || memcmp(val + pos, buf + v->off, v->len) != 0)
                return false;
            pos += v->len;
            i = http_find_hdr(buf, req->hdrs, req->nhdrs, name, (uint32_t)i + 1);
        }
        if (pos != vl)
            return false;
    }
    return true;
}

/* True when two records name the same fields in the same order (values aside). */
static bool vary_same_names(const struct cache_entry *a, const struct cache_entry *b)
{
    if (a->nvary != b->nvary)
        return false;
    const char *p = entry_vary(a), *q = entry_vary(b);
    for (uint16_t k = 0; k < a->nvary; k++) {
        size_t nl = (uint8_t)*p;
        if ((uint8_t)*q != nl || memcmp(p + 1, q + 1, nl) != 0)
            return false;
        uint32_t pl, ql;
        memcpy(&pl, p + nl + 3, 4);
        memcpy(&ql, q + nl + 3, 4);
        p += nl + 7 + pl;
        q += nl + 7 + ql;
    }
    return true;
}

/* ---- entries, table and LRU ---- */

void cache_entry_ref(struct cache_entry *e)
{
    e->refs++;
}

void cache_entry_unref(struct cache_entry *e)
{
    if (e && --e->refs == 0)
        free(e);
}

const char *cache_entry_hdr(const struct cache_entry *e, size_t *len)
{
    *len = e->hdr_len;
    return entry_hdr(e);
}

const char *cache_entry_body(const struct cache_entry *e, size_t *len)
{
    *len = e->body_len;
    return entry_hdr(e) + e->hdr_len;
}

uint64_t cache_entry_age_ms(const struct cache_entry *e, uint64_t now_ms)
{
    return e->age_ms + (now_ms > e->stored_ms ? now_ms - e->stored_ms : 0);
}

bool cache_entry_match(const struct cache_entry *e, const char *buf, const struct http_req *req)
{
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    return e->host_len == req->host.len && e->target_len == req->target.len &&
           memcmp(entry_target(e), target, e->target_len) == 0 &&
           eq_nocase(e->data, host, e->host_len) && vary_match(entry_vary(e), e->nvary, buf, req);
}

static void lru_remove(struct cache *c, struct cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(struct cache *c, struct cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
}

/* Removes *@pp from its chain and the LRU and drops the table's reference. */
static void entry_unlink(struct cache *c, struct cache_entry **pp)
{
    struct cache_entry *e = *pp;
    *pp = e->hnext;
    e->hnext = NULL;
    lru_remove(c, e);
    e->linked = false;
    c->st.entries--;
    c->st.bytes -= e->size;
    cache_entry_unref(e);
}

void cache_entry_drop(struct cache *c, struct cache_entry **pp)
{
    entry_unlink(c, pp);
}

/* The link that points at @e in its chain. */
static struct cache_entry **chain_find(struct cache *c, const struct cache_entry *e)
{
    struct cache_entry **pp = &c->buckets[e->hash & c->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    return pp;
}

static void evict_lru(struct cache *c)
{
    entry_unlink(c, chain_find(c, c->lru_tail));
    c->st.evictions++;
}

/*
 * Before @n (not linked yet) joins its chain: removes the entry it replaces (same Vary
 * names and values) and the entries whose Vary names differ (the backend changed its Vary:
 * they would never be refreshed), then the oldest variants beyond CACHE_MAX_VARIANTS - 1.
 */
static void make_room_for_variant(struct cache *c, const struct cache_entry *n)
{
    struct cache_entry **pp, *oldest;
    unsigned variants;
    do {
        variants = 0;
        oldest = NULL;
        for (pp = &c->buckets[n->hash & c->mask]; *pp;) {
            struct cache_entry *e = *pp;
            if (!key_eq(e, n->hash, n->data, n->host_len, entry_target(n), n->target_len)) {
                pp = &e->hnext;
                continue;
            }
            if (!vary_same_names(e, n) ||
                (e->vary_len == n->vary_len &&
                 memcmp(entry_vary(e), entry_vary(n), n->vary_len) == 0)) {
                entry_unlink(c, pp);
                continue;
            }
            variants++;
            if (!oldest || e->stored_ms < oldest->stored_ms)
                oldest = e;
            pp = &e->hnext;
        }
        if (variants >= CACHE_MAX_VARIANTS) {
            entry_unlink(c, chain_find(c, oldest));
            c->st.evictions++;
        }
    } while (variants > CACHE_MAX_VARIANTS);
}

void cache_entry_link(struct cache *c, struct cache_entry *e)
{
    make_room_for_variant(c, e);
    while (c->st.bytes + e->size > c->max_bytes && c->lru_tail)
        evict_lru(c);
    struct cache_entry **b = &c->buckets[e->hash & c->mask];
    e->hnext = *b;
    *b = e;
    lru_push_head(c, e);
    e->refs++;
    e->linked = true;
    c->st.entries++;
    c->st.bytes += e->size;
}

/* ---- the cache ---- */

int cache_create(uint64_t max_bytes, struct cache **out)
{
    if (max_bytes == 0 || max_bytes > SIZE_MAX / 2)
        return -EINVAL;
    struct cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    uint64_t want = max_bytes / CACHE_BYTES_PER_BUCKET;
    uint32_t n = CACHE_MIN_BUCKETS;
    while (n < want && n < CACHE_MAX_BUCKETS)
        n <<= 1;
    uint32_t fn = n / 8 > CACHE_MIN_BUCKETS ? n / 8 : CACHE_MIN_BUCKETS;
    c->buckets = calloc(n, sizeof(*c->buckets));
    c->fills = calloc(fn, sizeof(*c->fills));
    if (!c->buckets || !c->fills) {
        free(c->fills);
        free(c->buckets);
        free(c);
        return -ENOMEM;
    }
    c->mask = n - 1;
    c->fmask = fn - 1;
    c->max_bytes = (size_t)max_bytes;
    c->item_max = (size_t)(max_bytes / 8);
    if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != sizeof(c->seed))
        c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
    *out = c;
    return 0;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i <= c->mask; i++)
        while (c->buckets[i])
            entry_unlink(c, &c->buckets[i]);
    cache_fills_free(c);
    free(c->fills);
    free(c->buckets);
    free(c);
}

size_t cache_item_max(const struct cache *c)
{
    return c->item_max;
}

void cache_stats_get(const struct cache *c, struct cache_stats *out)
{
    *out = c->st;
    out->max_bytes = c->max_bytes;
}

struct cache_entry *cache_lookup(struct cache *c, const char *buf, const struct http_req *req,
                                 uint64_t now_ms)
{
    if (!cache_req_cacheable(buf, req))
        return NULL;
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    uint64_t h = cache_key_hash(c->seed, host, req->host.len, target, req->target.len);
    struct cache_entry **pp = &c->buckets[h & c->mask];
    while (*pp) {
        struct cache_entry *e = *pp;
        if (!key_eq(e, h, host, req->host.len, target, req->target.len)) {
            pp = &e->hnext;
            continue;
        }
        if (now_ms >= e->drop_ms) {
            entry_unlink(c, pp);
            c->st.expired++;
            continue;
        }
        if (e->inval_gen != cache_inval_gen(host, req->host.len, target, req->target.len)) {
            entry_unlink(c, pp); /* invalidated, maybe by another worker */
            c->st.invalidated++;
            continue;
        }
        if (!vary_match(entry_vary(e), e->nvary, buf, req)) {
            pp = &e->hnext;
            continue;
        }
        if (c->lru_head != e) {
            lru_remove(c, e);
            lru_push_head(c, e);
        }
        e->refs++;
        c->st.hits++;
        return e;
    }
    c->st.misses++;
    return NULL;
}

size_t cache_invalidate(struct cache *c, const char *host, size_t hlen, const char *target,
                        size_t tlen)
{
    atomic_fetch_add_explicit(inval_slot(host, hlen, target, tlen), 1, memory_order_acq_rel);
    size_t removed = 0;
    uint64_t h = cache_key_hash(c->seed, host, hlen, target, tlen);
    struct cache_entry **pp = &c->buckets[h & c->mask];
    while (*pp) {
        if (key_eq(*pp, h, host, hlen, target, tlen)) {
            entry_unlink(c, pp);
            removed++;
        } else {
            pp = &(*pp)->hnext;
        }
    }
    c->st.invalidated += removed;
    return removed;
}

size_t cache_tick(struct cache *c, uint64_t now_ms)
{
    size_t removed = 0;
    uint32_t n = c->mask + 1 < CACHE_SWEEP_BUCKETS ? c->mask + 1 : CACHE_SWEEP_BUCKETS;
    for (uint32_t k = 0; k < n; k++) {
        struct cache_entry **pp = &c->buckets[c->sweep_pos];
        while (*pp) {
            if (now_ms >= (*pp)->drop_ms) {
                entry_unlink(c, pp);
                c->st.expired++;
                removed++;
            } else {
                pp = &(*pp)->hnext;
            }
        }
        c->sweep_pos = (c->sweep_pos + 1) & c->mask;
    }
    return removed;
}
