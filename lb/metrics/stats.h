/*
 * Per-listener counters: a small table of atomics beside the server table (lb/cluster/cluster.h),
 * one entry per configured listener, bumped by every worker and read by the control thread
 * for /metrics and /stats. Relaxed atomics only: the numbers are for people and Prometheus,
 * and nothing is decided from them.
 */
#ifndef METRICS_STATS_H
#define METRICS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* What became of a request to an enqueue route. */
enum metrics_enq_result {
    METRICS_ENQ_PUSHED,    /* in the list: 202 */
    METRICS_ENQ_FULL,      /* the list at max_length: 503 */
    METRICS_ENQ_DOWN,      /* Redis unreachable, failing or too slow: 503 */
    METRICS_ENQ_TOO_LARGE, /* body over max_body (413) or without a length (411) */
};

/* What the route cache did with a GET on a cached route (lb_cache_requests_total). */
enum metrics_cache_result {
    METRICS_CACHE_HIT,          /* answered 200 from memory */
    METRICS_CACHE_NOT_MODIFIED, /* a conditional request answered 304 from memory */
    METRICS_CACHE_MISS,         /* went to the origin (nothing fresh stored, or no-cache) */
    METRICS_CACHE_REVALIDATED,  /* stale, the origin said 304: served from memory */
    METRICS_CACHE_STALE,        /* stale, served because the origin failed (stale-if-error) */
    METRICS_CACHE_BYPASS,       /* not for the cache: Range, If-Match... */
    METRICS_CACHE_NRESULTS,
};

/* What a shared (L2) cache did (lb_cache_l2_total), per caches: entry. */
enum metrics_l2_result {
    METRICS_L2_HIT,         /* an L1 miss answered from the shard */
    METRICS_L2_MISS,        /* nothing (usable) in the shard: the origin answers */
    METRICS_L2_ERROR,       /* shard down, slow, failing, or a malformed entry: skipped */
    METRICS_L2_STORE,       /* an answer written to its shard */
    METRICS_L2_LOCKED_WAIT, /* another instance was filling: this one waited */
    METRICS_L2_INVALIDATE,  /* keys deleted after an unsafe method */
    METRICS_L2_NRESULTS,
};

struct metrics_l2_stats {
    _Atomic uint64_t n[METRICS_L2_NRESULTS];
    _Atomic uint64_t bytes_read;    /* entry bytes of L2 hits */
    _Atomic uint64_t bytes_written; /* entry bytes stored */
};

struct metrics_listener_stats {
    _Atomic uint64_t accepted; /* client connections accepted */
    _Atomic uint32_t active;   /* client connections open now */
    _Atomic uint64_t refused;  /* accepted and closed at once: the worker at max_connections */
    _Atomic uint64_t paused;   /* times accepting stopped: no free file slot (ulimit -n) */
    _Atomic uint64_t resp[5];  /* L7: responses sent by class 1xx..5xx, including lb's own
                                  (static snapshots, 404 no route, 502, 503...) */
    _Atomic uint64_t enq[4];   /* enqueue routes: requests by enum metrics_enq_result */
    _Atomic uint64_t cache[METRICS_CACHE_NRESULTS]; /* route cache lookups by result */
    _Atomic uint64_t cache_invalidations;           /* unsafe requests that invalidated a URI */
};

/* Data path: the route cache answered (or not) a request of this listener. */
static inline void metrics_listener_count_cache(struct metrics_listener_stats *ls,
                                                enum metrics_cache_result r)
{
    atomic_fetch_add_explicit(&ls->cache[r], 1, memory_order_relaxed);
}

/* Data path, L7: a response with @status (100..599) went to a client of this listener.
 * Statuses outside 100..599 are not counted. */
static inline void metrics_listener_count_status(struct metrics_listener_stats *ls, int status)
{
    if (status >= 100 && status <= 599)
        atomic_fetch_add_explicit(&ls->resp[status / 100 - 1], 1, memory_order_relaxed);
}

#endif
