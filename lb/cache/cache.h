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
 * What is not: see cache_policy_eval() (RFC 9111 3). What a request asks (its
 * Cache-Control, conditionals, Range) is read by cache_req_eval(); the caller applies it.
 *
 * Memory: the bytes of linked entries (allocation size, key and bookkeeping included) stay
 * under max_bytes, evicting least recently used entries first. One entry is at most
 * max_bytes / 8 (cache_item_max()). An entry evicted or replaced while a send holds a
 * reference stays allocated (not counted in max_bytes) until the last unref.
 *
 * Expiry: an entry is served while fresh (RFC 9111 4.2): it is stored with the age it had
 * on arrival and goes stale when that age plus its time here reaches its freshness
 * lifetime. Nothing is served stale, so must-revalidate always holds. A stale entry with a
 * validator (ETag, Last-Modified) stays a while longer (as long again as it was fresh, at
 * least CACHE_KEEP_STALE_MS) to be revalidated with a conditional request (cache_decide()
 * says CACHE_D_REVALIDATE); others go. Entries past that are removed when a lookup meets
 * them and by cache_tick(). Times are milliseconds on any monotonic clock the caller
 * chooses, passed in, so tests never sleep.
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

#define CACHE_MAX_VARY 8          /* more field names in Vary: not cacheable */
#define CACHE_VARY_BYTES 256      /* their lowercase names, each NUL-terminated, at most */
#define CACHE_MAX_VARIANTS 8      /* entries kept per host + target */
#define CACHE_MAX_WAITERS 10000   /* waiters per pending fill */
#define CACHE_SWEEP_BUCKETS 4096  /* hash buckets examined per cache_tick() */
#define CACHE_KEEP_STALE_MS 60000 /* least time a stale entry with a validator is kept */

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
    uint64_t invalidated; /* entries removed by cache_invalidate() */
    uint64_t purged;      /* entries removed by an operator (cache_purge(), lb/cache/purge.h) */
    uint64_t max_bytes;   /* the bound on bytes (not a counter) */
};

/*
 * Why a response is not stored: cache_policy_eval()'s results other than CACHE_OK.
 * Positive codes, so that a caller can count them in metrics.
 */
enum cache_verdict {
    CACHE_OK = 0,
    CACHE_NS_METHOD,     /* request method is not GET */
    CACHE_NS_AUTH,       /* request had Authorization and the answer is not public,
                            s-maxage or must-revalidate (RFC 9111 3.5) */
    CACHE_NS_STATUS,     /* a status not stored, or one without heuristic freshness and
                            no explicit expiration */
    CACHE_NS_NO_STORE,   /* Cache-Control: no-store in the request or the response */
    CACHE_NS_PRIVATE,    /* Cache-Control: private (any form) */
    CACHE_NS_NO_CACHE,   /* Cache-Control: no-cache (any form) and no validator */
    CACHE_NS_SET_COOKIE, /* a Set-Cookie field without Cache-Control: public */
    CACHE_NS_VARY,       /* Vary: *, or over CACHE_MAX_VARY / CACHE_VARY_BYTES */
    CACHE_NS_STALE,      /* no freshness left once its age is counted, and no validator */
    CACHE_NS_FRAMING,    /* body delimited by close, or no body, or an upgrade */
    CACHE_NS_TOO_BIG,    /* Content-Length over the caller's limit */
};

#define CACHE_ETAG_MAX 96 /* a longer ETag is not kept: no conditional answers from it */

/* The route's rules (struct conf_cache) as cache_policy_eval() reads them. */
struct cache_rules {
    uint64_t heuristic_ms; /* freshness when the origin gives none (route ttl; 0: none) */
    uint64_t max_ttl_ms;   /* cap on any freshness lifetime; 0: no cap */
    uint64_t max_body;     /* longest Content-Length stored */
};

/* When the response arrived, for its age (RFC 9111 4.2.3). */
struct cache_times {
    int64_t wall_s;    /* wall clock (Unix seconds) when the response header arrived */
    uint64_t delay_ms; /* response_time - request_time */
};

/* What cache_policy_eval() found; self-contained (copies, no spans). */
struct cache_policy {
    uint64_t fresh_ms;       /* freshness lifetime, max_ttl applied */
    uint64_t age_ms;         /* corrected initial age */
    uint64_t ttl_ms;         /* fresh_ms - age_ms > 0: how long it is served from now */
    uint64_t content_length; /* with has_length: the body must be exactly this long */
    int64_t last_modified;   /* Unix seconds, -1: none (or invalid) */
    int status;
    bool has_length;
    bool must_revalidate; /* must-revalidate, proxy-revalidate or s-maxage: never stale */
    uint64_t sie_ms;      /* stale-if-error (RFC 5861): may be served stale that long on errors */
    uint64_t swr_ms;      /* stale-while-revalidate: stale that long while one refresh runs */
    uint32_t etag_len;    /* 0: no (usable) ETag */
    char etag[CACHE_ETAG_MAX]; /* as received: [W/]"opaque" */
    uint32_t nvary;
    uint32_t vary_len;           /* bytes used in vary[] */
    char vary[CACHE_VARY_BYTES]; /* nvary lowercase field names, each NUL-terminated */
};

/*
 * What a request asks of the cache (RFC 9111 5.2.1), from cache_req_eval(). A shared
 * cache never serves stale here, so max-stale needs no field: it only ever widens.
 */
#define CACHE_RQ_NO_CACHE 0x01       /* no-cache (or Pragma: no-cache): go to the origin */
#define CACHE_RQ_NO_STORE 0x02       /* no-store: do not store the answer */
#define CACHE_RQ_ONLY_IF_CACHED 0x04 /* only-if-cached: 504 rather than the origin */
#define CACHE_RQ_BYPASS                                                                            \
    0x08                   /* Range, If-Match, If-Unmodified-Since, If-Range, or an                \
                              If-None-Match we cannot read: neither served nor                     \
                              stored, the origin answers */
#define CACHE_RQ_COND 0x10 /* If-None-Match or If-Modified-Since: maybe 304 */

struct cache_req {
    uint32_t flags;
    uint64_t max_age_ms;   /* UINT64_MAX: none */
    uint64_t min_fresh_ms; /* 0: none */
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
 * send is done), or NULL. A request that is not GET is never
 * answered and not counted as a miss. Expired entries met on the way are removed. Never
 * allocates.
 */
struct cache_entry *cache_lookup(struct cache *c, const char *buf, const struct http_req *req,
                                 uint64_t now_ms);

/*
 * True when entry @e answers request @req: same host (letter case ignored), same target and
 * the same values of the fields the entry's Vary names (absent and empty differ; repeated
 * fields compare as their values joined by ","). Ignores expiry.
 */
bool cache_entry_match(const struct cache_entry *e, const char *buf, const struct http_req *req);

/* The header block (status line to the empty line included) and its length. */
const char *cache_entry_hdr(const struct cache_entry *e, size_t *len);
/* The body bytes and their length (may be 0). */
const char *cache_entry_body(const struct cache_entry *e, size_t *len);
/* The response's current age (RFC 9111 4.2.3) in ms at @now_ms, for its Age field. */
uint64_t cache_entry_age_ms(const struct cache_entry *e, uint64_t now_ms);

/* Takes a reference: the bytes stay valid until the matching unref, evicted or not. */
void cache_entry_ref(struct cache_entry *e);
/* Drops a reference; frees the entry when it was the last one (it was evicted). */
void cache_entry_unref(struct cache_entry *e);

/*
 * Decides whether the response @resp (parsed from @resp_buf) to request @req (parsed from
 * @req_buf) may be stored, and for how long (RFC 9111 3 and 4.2). Pure: reads its
 * arguments, writes only @p.
 *
 * Stored: a GET answer with a status this cache keeps (explicit expiration: any final
 * status but 206 and 304; heuristic: RFC 9110 15.1's list without 204/206), its body framed
 * by Content-Length (at most @r->max_body) or chunked; not no-store (request or response),
 * private, nor no-cache without a validator; Authorization only with public, s-maxage or
 * must-revalidate; Set-Cookie only with public; no Vary: *. Freshness lifetime: s-maxage, max-age,
 * Expires - Date (an invalid or conflicting value: stale), else @r->heuristic_ms for the heuristic
 * statuses (and public); capped at @r->max_ttl_ms; 0 with no-cache. Age: RFC 9111 4.2.3's
 * corrected initial age from Age, Date and @t. Stored when freshness outlives that age, or
 * with a validator (ETag or Last-Modified) to revalidate it with.
 *
 * Returns CACHE_OK with @p filled, or an CACHE_NS_* reason (@p then undefined).
 */
enum cache_verdict cache_policy_eval(const char *req_buf, const struct http_req *req,
                                     const char *resp_buf, const struct http_resp *resp,
                                     const struct cache_rules *r, const struct cache_times *t,
                                     struct cache_policy *p);

/* Reads what request @req asks of a cache (see struct cache_req). Pure. */
void cache_req_eval(const char *buf, const struct http_req *req, struct cache_req *out);

/*
 * True when entry @e may answer a request asking @rq at @now_ms: it is fresh, its current
 * age is at most max-age, and it stays fresh for min-fresh more.
 */
bool cache_entry_usable(const struct cache_entry *e, const struct cache_req *rq, uint64_t now_ms);

/*
 * The answer to a conditional request @req (CACHE_RQ_COND) from entry @e: 304 when its
 * If-None-Match matches the stored ETag (weak comparison), or, without If-None-Match, when
 * the stored Last-Modified is not after If-Modified-Since; else 200. @now_s for dates.
 */
int cache_entry_cond(const struct cache_entry *e, const char *buf, const struct http_req *req,
                     int64_t now_s);

/* What to do with a GET on a cached route: cache_decide()'s answer. */
enum cache_decision {
    CACHE_D_HIT,        /* serve the entry: its stored status */
    CACHE_D_304,        /* serve the entry as 304 Not Modified */
    CACHE_D_FILL,       /* go to the origin, and store its answer if allowed (fill_begin) */
    CACHE_D_PASS,       /* go to the origin, store nothing (a conditional or no-store request) */
    CACHE_D_BYPASS,     /* go to the origin: not a request for the cache (Range, If-Match...) */
    CACHE_D_504,        /* only-if-cached and nothing usable: answer 504 */
    CACHE_D_REVALIDATE, /* a stale entry with a validator: a conditional request to the
                           origin (cache_entry_validator()), filling as CACHE_D_FILL */
};

/*
 * The whole lookup of RFC 9111 4 for a GET @req (parsed from @buf) at @now_ms (monotonic)
 * and @now_s (wall clock): the request's Cache-Control and conditionals, the lookup, the
 * entry's freshness against max-age and min-fresh. For CACHE_D_HIT, CACHE_D_304 and
 * CACHE_D_REVALIDATE, *@out is the entry with a reference for the caller; for CACHE_D_FILL
 * too when the stale entry may be served if the origin fails (stale-if-error) or while
 * another request refreshes it (stale-while-revalidate); else NULL.
 */
enum cache_decision cache_decide(struct cache *c, const char *buf, const struct http_req *req,
                                 uint64_t now_ms, int64_t now_s, struct cache_entry **out);

/*
 * True when @e, stale, may still be served because the origin failed (RFC 5861
 * stale-if-error; never with must-revalidate, proxy-revalidate or s-maxage).
 */
bool cache_entry_stale_if_error(const struct cache_entry *e, uint64_t now_ms);

/*
 * True when @e, stale, may be served to a request that arrives while another one refreshes
 * it (RFC 5861 stale-while-revalidate; never with must-revalidate, proxy-revalidate or
 * s-maxage).
 */
bool cache_entry_stale_while_revalidate(const struct cache_entry *e, uint64_t now_ms);

/* The stored response's status code. */
int cache_entry_status(const struct cache_entry *e);

/*
 * Writes the field line that revalidates @e ("If-None-Match: ETAG\r\n", else
 * "If-Modified-Since: DATE\r\n") into @out[@cap]. Returns its length, 0 when @e has no
 * validator or it does not fit.
 */
size_t cache_entry_validator(const struct cache_entry *e, char *out, size_t cap);

/*
 * Removes every entry (all variants) for @host + @target (invalidation after an unsafe
 * method, RFC 9111 4.4). Returns how many went.
 */
size_t cache_invalidate(struct cache *c, const char *host, size_t hlen, const char *target,
                        size_t tlen);

#define CACHE_FILL_NEW 0  /* *fill is yours: fetch, then head/append/commit or abort */
#define CACHE_FILL_WAIT 1 /* @waiter recorded on a pending fill: park until woken */

/*
 * After a lookup miss for @req: returns CACHE_FILL_NEW with *@fill set when no fill is
 * pending for its host + target (the caller owns the fill until it commits or aborts it),
 * or CACHE_FILL_WAIT after recording @waiter on the pending one (*@fill set to it, for
 * information only). Errors, after which the caller simply goes to the backend uncached:
 * -EINVAL (not GET), -ENOSPC (CACHE_MAX_WAITERS already waiting),
 * -ENOMEM. Allocates (the miss path).
 */
int cache_fill_begin(struct cache *c, const char *buf, const struct http_req *req, uint64_t waiter,
                     struct cache_fill **fill);

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
 * key and variant, evicting LRU entries to make room) unless it is larger than
 * cache_item_max() (a limit raised by cache_fill_set_limit: then it is not kept, only handed
 * to the waiters), and every waiter is woken with it through @wake(@arg, waiter, entry)
 * before this returns. Returns 0, or -EPROTO when there
 * was no head or the body length differs from Content-Length: then it behaves as
 * cache_fill_abort() (waiters woken with NULL). @wake may be NULL when nobody waits.
 */
int cache_fill_commit(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg);

/* cache_fill_commit(), and on success the entry in *@out with a reference the caller drops
 * (cache_entry_unref): kept in L1 or not (too big for it), the filler may serve it. */
int cache_fill_commit_take(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg,
                           struct cache_entry **out);

/*
 * Lets @f build an entry of up to @limit bytes (never less than cache_item_max()), before
 * cache_fill_head: for a route whose answers also go to a shared (L2) cache, whose objects
 * may be larger than what this L1 keeps. An entry over cache_item_max() is built, encoded
 * for L2 by the caller and handed to the waiters, but not kept here.
 */
void cache_fill_set_limit(struct cache *c, struct cache_fill *f, size_t limit);

/*
 * Abandons @f (takes @f: it is freed) because the answer is not cacheable, too big, or the
 * fetch failed: every waiter is woken with a NULL entry through @wake before this returns.
 */
void cache_fill_abort(struct cache *c, struct cache_fill *f, cache_wake_fn *wake, void *arg);

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
