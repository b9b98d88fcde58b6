/*
 * L1 response cache: one per worker thread, no locks, no allocation on the hit path.
 *
 * What is stored: complete 200 responses to GET, as the bytes the proxy sends to a client
 * (the header block the caller built, then the body exactly as forwarded: a chunked body
 * keeps its chunk framing). Header and body live in one allocation with the key.
 *
 * The key is the Host (letter case ignored) and the request-target as received, plus the
 * values of the request fields named in the stored response's Vary. Entries for one
 * host + target hash to one chain, so a lookup is one hash of host + target, then a walk of
 * that chain comparing host, target and, for each entry, the request's values of the fields
 * that entry's Vary names. Variants of one URL (Accept-Encoding: gzip, identity...) are
 * separate entries; at most CACHE_MAX_VARIANTS are kept per URL.
 *
 * What is not: see cache_policy_eval(). Requests carrying Authorization never hit and
 * are never stored (RFC 9111 3.5 would allow some; we keep it simple and safe). Request
 * Cache-Control is ignored: a client cannot force the backend to be hit.
 *
 * Memory: the bytes of linked entries (allocation size, key and bookkeeping included) stay
 * under max_bytes, evicting least recently used entries first. One entry is at most
 * max_bytes / 8 (cache_item_max()). An entry evicted or replaced while a send holds a
 * reference stays allocated (not counted in max_bytes) until the last unref.
 *
 * Expiry: now + min(route ttl, s-maxage or max-age). Expired entries are removed when a
 * lookup meets them and by cache_tick(). Times are milliseconds on any monotonic clock
 * the caller chooses, passed in, so tests never sleep.
 *
 * Miss coalescing: after a miss the caller calls cache_fill_begin(). The first caller
 * for a host + target gets a fill and fetches from the backend; later callers are recorded
 * as waiters (a 64-bit token the caller chooses, e.g. slot | generation of the client
 * connection, so a waiter that went away meanwhile is recognised as stale when woken) and
 * park their connection. The filler then calls fill_head (response header), fill_append
 * (body chunks as they stream through) and fill_commit, or fill_abort at any point. Both
 * wake every waiter through a callback. Fills are keyed by host + target only (the Vary of
 * the answer is not known yet), so a woken waiter must check that the new entry is its
 * variant (cache_entry_match() or a fresh cache_lookup()).
 */
#ifndef CACHE_H
#define CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb/http/h1.h"

#define CACHE_MAX_VARY 8         /* more field names in Vary: not cacheable */
#define CACHE_VARY_BYTES 256     /* their lowercase names, each NUL-terminated, at most */
#define CACHE_MAX_VARIANTS 8     /* entries kept per host + target */
#define CACHE_MAX_WAITERS 10000  /* waiters per pending fill */
#define CACHE_SWEEP_BUCKETS 4096 /* hash buckets examined per cache_tick() */

struct cache;       /* opaque, one per worker */
struct cache_entry; /* opaque, refcounted */
struct cache_fill;  /* opaque, a pending miss */

struct cache_stats {
    uint64_t entries;     /* linked entries */
    uint64_t bytes;       /* their bytes, <= max_bytes */
    uint64_t hits;        /* lookups answered */
    uint64_t misses;      /* lookups not answered (cacheable requests only) */
    uint64_t coalesced;   /* requests that waited on another request's fill */
    uint64_t evictions;   /* entries removed to make room (LRU or the variant bound) */
    uint64_t expired;     /* entries removed because their time was up */
    uint64_t fills;       /* fills committed into entries */
    uint64_t fill_aborts; /* fills aborted: not cacheable, too big, error */
};

/*
 * Why a response is not stored: cache_policy_eval()'s results other than CACHE_OK.
 * Positive codes, so that a caller can count them in metrics.
 */
enum cache_verdict {
    CACHE_OK = 0,
    CACHE_NS_METHOD,     /* request method is not GET */
    CACHE_NS_AUTH,       /* request had Authorization */
    CACHE_NS_STATUS,     /* status is not 200 */
    CACHE_NS_NO_STORE,   /* Cache-Control: no-store */
    CACHE_NS_PRIVATE,    /* Cache-Control: private (any form) */
    CACHE_NS_NO_CACHE,   /* Cache-Control: no-cache (any form): we never revalidate */
    CACHE_NS_SET_COOKIE, /* a Set-Cookie field */
    CACHE_NS_VARY,       /* Vary: *, or over CACHE_MAX_VARY / CACHE_VARY_BYTES */
    CACHE_NS_STALE,      /* ttl 0: max-age=0, an invalid max-age, or route ttl 0 */
    CACHE_NS_FRAMING,    /* body delimited by close, or no body, or an upgrade */
    CACHE_NS_TOO_BIG,    /* Content-Length over the caller's limit */
};

/* What cache_policy_eval() found; self-contained (copies, no spans). */
struct cache_policy {
    uint64_t ttl_ms;         /* > 0 */
    uint64_t content_length; /* with has_length: the body must be exactly this long */
    bool has_length;
    uint32_t nvary;
    uint32_t vary_len;              /* bytes used in vary[] */
    char vary[CACHE_VARY_BYTES]; /* nvary lowercase field names, each NUL-terminated */
};

/*
 * Called once per waiter by fill_commit and fill_abort, before they return, after the fill
 * has left the cache: the callback may call any cache_* function (lookup, fill_begin for
 * a waiter whose variant differs...). @e is the new entry (commit) or NULL (abort: the
 * waiter goes to the backend itself). @e is borrowed for the call; take a reference with
 * cache_entry_ref() to keep it, and check it is the waiter's variant first.
 */
typedef void cache_wake_fn(void *arg, uint64_t waiter, struct cache_entry *e);

/*
 * Creates a cache bounded to @max_bytes (> 0; struct conf_cache.max_bytes). The hash table
 * is sized from it (about one bucket per 2 KiB, 64 at least). Returns 0 with *@out set, or
 * -EINVAL, -ENOMEM.
 */
int cache_create(uint64_t max_bytes, struct cache **out);

/*
 * Frees the cache and every linked entry whose only reference was the cache's; entries
 * still referenced by a send live on until their last cache_entry_unref(). Pending fills
 * are freed without waking their waiters: call it only when the worker is stopping, or after
 * aborting them. NULL is allowed.
 */
void cache_destroy(struct cache *c);

/* Largest entry the cache stores (key, header and body together): max_bytes / 8. */
size_t cache_item_max(const struct cache *c);

/*
 * Looks up the response for request @req (parsed from @buf) at time @now_ms. Returns an
 * entry with a reference taken for the caller (drop it with cache_entry_unref() when the
 * send is done), or NULL. A request that is not GET or carries Authorization is never
 * answered and not counted as a miss. Expired entries met on the way are removed. Never
 * allocates.
 */
struct cache_entry *cache_lookup(struct cache *c, const char *buf,
                                       const struct http_req *req, uint64_t now_ms);

/*
 * True when entry @e answers request @req: same host (letter case ignored), same target and
 * the same values of the fields the entry's Vary names (absent and empty differ; repeated
 * fields compare as their values joined by ","). Ignores expiry.
 */
bool cache_entry_match(const struct cache_entry *e, const char *buf,
                          const struct http_req *req);

/* The header block (status line to the empty line included) and its length. */
const char *cache_entry_hdr(const struct cache_entry *e, size_t *len);
/* The body bytes and their length (may be 0). */
const char *cache_entry_body(const struct cache_entry *e, size_t *len);
/* Milliseconds since the response was stored, for an Age field (0 if @now_ms is earlier). */
uint64_t cache_entry_age_ms(const struct cache_entry *e, uint64_t now_ms);

/* Takes a reference: the bytes stay valid until the matching unref, evicted or not. */
void cache_entry_ref(struct cache_entry *e);
/* Drops a reference; frees the entry when it was the last one (it was evicted). */
void cache_entry_unref(struct cache_entry *e);

/*
 * Decides whether the response @resp (parsed from @resp_buf) to request @req (parsed from
 * @req_buf) may be stored, and for how long. Pure: reads its arguments, writes only @p.
 *
 * Stored: GET without Authorization; status 200; a body framed by Content-Length (at most
 * @max_body) or chunked; no Set-Cookie; no Vary: * and at most CACHE_MAX_VARY names;
 * Cache-Control (all its fields) without no-store, private or no-cache. TTL = @route_ttl_ms,
 * lowered to s-maxage when present, else to max-age when present (seconds; repeated
 * directives: the smallest wins; a value that is not a plain decimal number counts as 0,
 * i.e. stale). Expires and Pragma are ignored: the route ttl bounds everything.
 *
 * Returns CACHE_OK with @p filled, or an CACHE_NS_* reason (@p then undefined).
 */
enum cache_verdict cache_policy_eval(const char *req_buf, const struct http_req *req,
                                           const char *resp_buf, const struct http_resp *resp,
                                           uint64_t route_ttl_ms, uint64_t max_body,
                                           struct cache_policy *p);

#define CACHE_FILL_NEW 0  /* *fill is yours: fetch, then head/append/commit or abort */
#define CACHE_FILL_WAIT 1 /* @waiter recorded on a pending fill: park until woken */

/*
 * After a lookup miss for @req: returns CACHE_FILL_NEW with *@fill set when no fill is
 * pending for its host + target (the caller owns the fill until it commits or aborts it),
 * or CACHE_FILL_WAIT after recording @waiter on the pending one (*@fill set to it, for
 * information only). Errors, after which the caller simply goes to the backend uncached:
 * -EINVAL (not GET, or Authorization), -ENOSPC (CACHE_MAX_WAITERS already waiting),
 * -ENOMEM. Allocates (the miss path).
 */
int cache_fill_begin(struct cache *c, const char *buf, const struct http_req *req,
                        uint64_t waiter, struct cache_fill **fill);

/*
 * Records the answer's header for @f, once, when the backend's header section arrived and
 * cache_policy_eval() said CACHE_OK with @p: copies @hdr[0..hdr_len) (the header block
 * as the proxy sends it to clients) and the values of @p's Vary fields from the filler's
 * request @req/@req_buf (which need not outlive the call). The entry expires at @now_ms +
 * p->ttl_ms, counted from the header as RFC 9111 counts age (a body slower than the ttl
 * gives an entry that goes at its first lookup). Returns 0, -EFBIG (key + header + Content-Length
 * over cache_item_max()), -EALREADY (called twice) or -ENOMEM; on error call
 * cache_fill_abort().
 */
int cache_fill_head(struct cache *c, struct cache_fill *f, const struct cache_policy *p,
                       const char *req_buf, const struct http_req *req, const char *hdr,
                       size_t hdr_len, uint64_t now_ms);

/*
 * Appends body bytes to @f (after fill_head), copying them. Returns 0, -EFBIG (the entry
 * would pass cache_item_max(), or the body passes Content-Length), -EPROTO (no head yet)
 * or -ENOMEM; on error call cache_fill_abort().
 */
int cache_fill_append(struct cache *c, struct cache_fill *f, const void *data, size_t len);

/*
 * Completes @f (takes @f: it is freed): the entry is linked (replacing an entry for the same
 * key and variant, evicting LRU entries to make room) and every waiter is woken with it
 * through @wake(@arg, waiter, entry) before this returns. Returns 0, or -EPROTO when there
 * was no head or the body length differs from Content-Length: then it behaves as
 * cache_fill_abort() (waiters woken with NULL). @wake may be NULL when nobody waits.
 */
int cache_fill_commit(struct cache *c, struct cache_fill *f, cache_wake_fn *wake,
                         void *arg);

/*
 * Abandons @f (takes @f: it is freed) because the answer is not cacheable, too big, or the
 * fetch failed: every waiter is woken with a NULL entry through @wake before this returns.
 */
void cache_fill_abort(struct cache *c, struct cache_fill *f, cache_wake_fn *wake,
                         void *arg);

/* Waiters recorded on @f so far. */
uint32_t cache_fill_waiters(const struct cache_fill *f);

/*
 * Periodic sweep: removes expired entries from the next CACHE_SWEEP_BUCKETS buckets,
 * resuming where the previous call stopped, so a call has a bounded cost. Returns how many
 * entries it removed.
 */
size_t cache_tick(struct cache *c, uint64_t now_ms);

/* Copies the counters. */
void cache_stats_get(const struct cache *c, struct cache_stats *out);

#endif
