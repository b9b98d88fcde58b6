/*
 * L1 response cache (see cache.h): a chained hash table of entries keyed by host + target,
 * an LRU list over the same entries, a second small table of pending fills, and the pure
 * cacheability decision (Cache-Control, Vary, Set-Cookie...).
 *
 * An entry is one allocation: the struct, then host, target, the Vary record, the header
 * block and the body. The Vary record holds, for each field name the response's Vary
 * listed, the filler's request value for it:
 *
 *     [u8 name_len][name, lowercase][NUL][u8 present][u32 value_len][value]   x nvary
 *
 * where value is every occurrence of the field joined by ",". A lookup compares the same
 * join of its own request against it, field by field, without building anything.
 *
 * A fill builds its entry in place: fill_head allocates it (exactly, when Content-Length is
 * known; growing by doubling for chunked bodies), fill_append copies body bytes into it, and
 * fill_commit links it, so a cacheable answer is copied once.
 */
#include "lb/cache/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "conf/hash.h"

#define CACHE_MIN_BUCKETS 64u
#define CACHE_MAX_BUCKETS (1u << 22)
#define CACHE_BYTES_PER_BUCKET 2048u
#define CACHE_FILL_FIRST_CHUNK 16384u   /* first allocation for a body of unknown length */
#define CACHE_MAX_AGE_CAP 2147483648ull /* RFC 9111 1.2.2: larger delta-seconds saturate */

struct cache_entry {
    struct cache_entry *hnext;    /* hash chain */
    struct cache_entry *lru_prev; /* towards the most recently used */
    struct cache_entry *lru_next; /* towards the least recently used */
    uint64_t hash;                   /* of host + target */
    uint64_t stored_ms;
    uint64_t expires_ms;
    size_t size;     /* allocation size, charged to the cache while linked */
    size_t body_len; /* body bytes so far (a fill appends) */
    uint32_t refs;   /* the table holds one while linked */
    uint32_t host_len;
    uint32_t target_len;
    uint32_t vary_len; /* bytes of the Vary record */
    uint32_t hdr_len;
    uint16_t nvary;
    bool linked;
    char data[]; /* host, target, Vary record, header, body */
};

struct cache_fill {
    struct cache_fill *hnext;
    uint64_t hash;
    struct cache_entry *e; /* being built, from fill_head on; refs 0 until linked */
    size_t cap;               /* allocation size of e */
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

static bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
            return false;
    return true;
}

/*
 * Hash of host (letter case folded) and target: conf/hash.h's lb_hash64 rounds over the
 * host's words then the target's, with both lengths in the start, so neither is copied into
 * one buffer first. Folding ORs 0x20 into every host byte, which lowercases letters and
 * merges a few punctuation pairs ('[' and '{'): harmless, the comparison after the hash is
 * exact. Seeded per cache so that which targets collide cannot be worked out from outside.
 */
static uint64_t key_hash(uint64_t seed, const char *host, size_t hlen, const char *target,
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

static bool req_cacheable(const char *buf, const struct http_req *req)
{
    return req->method == HTTP_M_GET &&
           http_find_hdr(buf, req->hdrs, req->nhdrs, "authorization", 0) < 0;
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

static size_t vary_record_len(const struct cache_policy *p, const char *buf,
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

static void vary_record_write(char *out, const struct cache_policy *p, const char *buf,
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
static bool vary_match(const char *rec, uint16_t nvary, const char *buf,
                       const struct http_req *req)
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
    return now_ms > e->stored_ms ? now_ms - e->stored_ms : 0;
}

bool cache_entry_match(const struct cache_entry *e, const char *buf,
                          const struct http_req *req)
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

static void entry_link(struct cache *c, struct cache_entry *e)
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

static void fill_free(struct cache_fill *f)
{
    free(f->e);
    f->e = NULL;
    free(f->waiters);
    f->waiters = NULL;
    free(f);
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i <= c->mask; i++)
        while (c->buckets[i])
            entry_unlink(c, &c->buckets[i]);
    for (uint32_t i = 0; i <= c->fmask; i++) {
        while (c->fills[i]) {
            struct cache_fill *f = c->fills[i];
            c->fills[i] = f->hnext;
            fill_free(f);
        }
    }
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
}

struct cache_entry *cache_lookup(struct cache *c, const char *buf,
                                       const struct http_req *req, uint64_t now_ms)
{
    if (!req_cacheable(buf, req))
        return NULL;
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    uint64_t h = key_hash(c->seed, host, req->host.len, target, req->target.len);
    struct cache_entry **pp = &c->buckets[h & c->mask];
    while (*pp) {
        struct cache_entry *e = *pp;
        if (!key_eq(e, h, host, req->host.len, target, req->target.len)) {
            pp = &e->hnext;
            continue;
        }
        if (now_ms >= e->expires_ms) {
            entry_unlink(c, pp);
            c->st.expired++;
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

size_t cache_tick(struct cache *c, uint64_t now_ms)
{
    size_t removed = 0;
    uint32_t n = c->mask + 1 < CACHE_SWEEP_BUCKETS ? c->mask + 1 : CACHE_SWEEP_BUCKETS;
    for (uint32_t k = 0; k < n; k++) {
        struct cache_entry **pp = &c->buckets[c->sweep_pos];
        while (*pp) {
            if (now_ms >= (*pp)->expires_ms) {
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

/* ---- the cacheability decision ---- */

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

/* ---- fills ---- */

static struct cache_fill **fill_find(struct cache *c, uint64_t h, const char *host,
                                        size_t hlen, const char *target, size_t tlen)
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

int cache_fill_begin(struct cache *c, const char *buf, const struct http_req *req,
                        uint64_t waiter, struct cache_fill **fill)
{
    if (!req_cacheable(buf, req))
        return -EINVAL;
    const char *host = buf + req->host.off, *target = buf + req->target.off;
    size_t hlen = req->host.len, tlen = req->target.len;
    uint64_t h = key_hash(c->seed, host, hlen, target, tlen);
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

int cache_fill_head(struct cache *c, struct cache_fill *f, const struct cache_policy *p,
                       const char *req_buf, const struct http_req *req, const char *hdr,
                       size_t hdr_len, uint64_t now_ms)
{
    if (f->e)
        return -EALREADY;
    size_t vlen = vary_record_len(p, req_buf, req);
    size_t base = sizeof(struct cache_entry) + f->host_len + f->target_len + vlen + hdr_len;
    if (base > c->item_max || (p->has_length && p->content_length > c->item_max - base))
        return -EFBIG;
    size_t cap = base + (size_t)p->content_length;
    if (!p->has_length)
        cap = c->item_max - base < CACHE_FILL_FIRST_CHUNK ? c->item_max
                                                          : base + CACHE_FILL_FIRST_CHUNK;
    struct cache_entry *e = malloc(cap);
    if (!e)
        return -ENOMEM;
    memset(e, 0, sizeof(*e));
    e->hash = f->hash;
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + p->ttl_ms < now_ms ? UINT64_MAX : now_ms + p->ttl_ms;
    e->host_len = f->host_len;
    e->target_len = f->target_len;
    e->vary_len = (uint32_t)vlen;
    e->hdr_len = (uint32_t)hdr_len;
    e->nvary = (uint16_t)p->nvary;
    memcpy(e->data, f->key, f->host_len + f->target_len);
    vary_record_write(e->data + f->host_len + f->target_len, p, req_buf, req);
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
    if (len > c->item_max - used)
        return -EFBIG;
    if (used + len > f->cap) {
        size_t cap = f->cap * 2;
        if (cap < used + len)
            cap = used + len;
        if (cap > c->item_max)
            cap = c->item_max;
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

void cache_fill_abort(struct cache *c, struct cache_fill *f, cache_wake_fn *wake,
                         void *arg)
{
    c->st.fill_aborts++;
    fill_finish(c, f, NULL, wake, arg);
}

int cache_fill_commit(struct cache *c, struct cache_fill *f, cache_wake_fn *wake,
                         void *arg)
{
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
    f->e = NULL; /* the table owns it now */
    e->size = f->cap;
    entry_link(c, e);
    c->st.fills++;
    fill_finish(c, f, e, wake, arg);
    return 0;
}
