/*
 * The L2 entry: an L1 entry (lb/cache/cache.h) as bytes for a shared cache in Redis
 * (caches:, lb/http/cache_l2.c), and back.
 *
 * Key layout in a shard (the owner of the key by the cache cluster's ring hash):
 *   PREFIX "c:" NAME ":" HOST TARGET       the entry (PREFIX is global.redis.prefix, "lb:")
 *   the same + "#lock"                     the fill lock (SET NX PX lock), same shard
 * HOST is the request's Host in lowercase, TARGET the request-target as received; '#' never
 * appears in a request-target, so a lock key is never an entry key.
 *
 * Entry format, version 1, all integers little-endian:
 *   "LBC1"                     magic and version
 *   u16 status, u16 nvary, u16 etag_len, u16 0
 *   i64 stored_at              wall clock (Unix ms) when the entry was written
 *   u64 age                    its age (ms, RFC 9111 4.2.3) at stored_at
 *   u64 fresh                  its freshness lifetime (ms)
 *   u64 stale_if_error, u64 stale_while_revalidate   (ms)
 *   i64 last_modified          Unix seconds, -1: none
 *   u32 host_len, u32 target_len, u32 vary_len, u32 hdr_len, u64 body_len
 *   etag, host, target, vary record (L1's: per field u8 name_len, name, NUL, u8 present,
 *   u32 value_len in host order, value), header block, body
 * The lengths add up to the value exactly. The header must parse as an HTTP/1.1 response
 * with the same status, framed by a Content-Length equal to body_len (chunked answers are
 * not stored in L2). Bytes from Redis are untrusted: anything else is refused.
 */
#ifndef CACHE_L2_H
#define CACHE_L2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "lb/cache/cache.h"

#define CACHE_L2_MAGIC "LBC1"
#define CACHE_L2_FIXED 84          /* bytes before the variable parts */
#define CACHE_L2_MAX_VARY_REC 8192 /* a longer Vary record is refused */

/* A decoded entry: spans into the value it was decoded from. */
struct cache_l2_view {
    uint16_t status, nvary;
    int64_t stored_at_ms;
    uint64_t age_ms, fresh_ms, sie_ms, swr_ms;
    int64_t last_modified;
    const char *etag, *host, *target, *vary, *hdr, *body;
    uint32_t etag_len, host_len, target_len, vary_len, hdr_len;
    uint64_t body_len;
};

/*
 * Encodes @e (complete, linked or just filled) as it is at @now_ms (monotonic) and
 * @wall_ms (Unix ms) into a malloc'd buffer at *@out. Returns its length, or -EINVAL (a
 * chunked or headless entry: not for L2), -ENOMEM.
 */
ssize_t cache_l2_encode(const struct cache_entry *e, uint64_t now_ms, int64_t wall_ms, char **out);

/* Decodes @len bytes at @p into @v (spans into @p). Returns 0 or -EBADMSG. Never reads
 * outside @p. */
int cache_l2_decode(const void *p, size_t len, struct cache_l2_view *v);

/*
 * Fills @f (fresh from cache_fill_begin) from @v for request @req (parsed from @buf) at
 * @now_ms / @wall_ms: head and body; the caller commits. Returns 0, -ENOENT (another
 * host, target or Vary variant), -ESTALE (no freshness left), or cache_fill_head's and
 * cache_fill_append's errors (then the caller aborts the fill).
 */
int cache_l2_fill(struct cache *c, struct cache_fill *f, const struct cache_l2_view *v,
                  const char *buf, const struct http_req *req, uint64_t now_ms, int64_t wall_ms);

/* How long its shard keeps @e from @now_ms: its freshness left, plus stale-if-error or
 * stale-while-revalidate; at least 1. */
uint64_t cache_l2_ttl_ms(const struct cache_entry *e, uint64_t now_ms);

/* The entry a fill builds (NULL before cache_fill_head): to encode it before the commit. */
const struct cache_entry *cache_fill_entry(const struct cache_fill *f);

/*
 * Control thread only (blocking): deletes the entries of shared cache @cache (its name under
 * caches:) that purge @p matches, by the rules of the L1 purge (lb/cache/purge.h: an exact
 * target or a prefix, any host or one), on every shard. SCAN and DEL, each call bounded by
 * caches.NAME.timeout. Returns the keys deleted, or -ENOENT (no such cache) or -EIO (a shard
 * could not be reached or failed; the others are purged all the same), with a message in
 * @err (may be NULL). The workers' L1 copies are not touched (the L1 purge does that).
 */
struct cache_purge;
long cache_l2_purge(const struct conf *cf, const char *cache, const struct cache_purge *p,
                    struct lb_err *err);

#endif
