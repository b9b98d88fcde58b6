/*
 * The L1 cache's own counters in /metrics, as the workers publish them on the purge board
 * (lb/cache/purge.h) at each tick: entries, bytes and evictions per worker, and the operator
 * purges (lbctl cache purge). Per worker rather than per listener: the L1 cache is one per
 * worker, shared by every cached route, and its keys (host + target) do not say which
 * listener filled them. What the cache did per listener is lb_cache_requests_total
 * (metrics.c). Nothing is written when no route has a cache.
 */
#include <stddef.h>
#include <stdio.h>

#include "lb/admin/admin.h"
#include "lb/cache/purge.h"
#include "lb/core/runtime.h"
#include "lb/fleet/fleet.h"
#include "lb/metrics/metrics.h"

static bool cached(const struct conf *cf)
{
    for (size_t i = 0; i < cf->nlisteners; i++)
        for (size_t j = 0; j < cf->listeners[i].nroutes; j++)
            if (cf->listeners[i].routes[j].cache.enabled)
                return true;
    return false;
}

/* One family with a sample per worker: the field at @off of struct cache_stats. */
static void per_worker(struct cache_board *b, struct lb_jbuf *o, const char *name, const char *type,
                       const char *help, size_t off)
{
    lb_jbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (uint32_t i = 0; i < cache_board_workers(b); i++) {
        struct cache_stats st;
        cache_board_stats(b, i, &st);
        lb_jbuf_printf(o, "%s{worker=\"%u\"} %llu\n", name, i,
                       (unsigned long long)*(const uint64_t *)((const char *)&st + off));
    }
}

void metrics_prom_cache_l1(struct lb_runtime *rt, struct lb_jbuf *o)
{
    struct cache_board *b = rt->cache_board;
    if (!b || !cached(rt->conf))
        return;
    per_worker(b, o, "lb_cache_entries", "gauge", "Entries in the worker's L1 cache.",
               offsetof(struct cache_stats, entries));
    per_worker(b, o, "lb_cache_bytes", "gauge",
               "Bytes of the worker's L1 cache entries (bounded by max_bytes).",
               offsetof(struct cache_stats, bytes));
    per_worker(b, o, "lb_cache_evictions_total", "counter",
               "L1 entries removed to make room (least recently used first).",
               offsetof(struct cache_stats, evictions));
    per_worker(b, o, "lb_cache_purged_total", "counter", "L1 entries removed by lbctl cache purge.",
               offsetof(struct cache_stats, purged));
    lb_jbuf_printf(o,
                   "# HELP lb_cache_purges_total Purge commands (lbctl cache purge) run.\n"
                   "# TYPE lb_cache_purges_total counter\nlb_cache_purges_total %llu\n",
                   (unsigned long long)cache_board_purges(b));
    uint64_t sent, received, dropped;
    fleet_inval_counts(&sent, &received, &dropped);
    lb_jbuf_printf(o,
                   "# HELP lb_cache_fleet_invalidations_total Cached URIs invalidated by an "
                   "unsafe method, told to the other instances (sent), taken from them "
                   "(received), or lost (dropped).\n"
                   "# TYPE lb_cache_fleet_invalidations_total counter\n"
                   "lb_cache_fleet_invalidations_total{dir=\"sent\"} %llu\n"
                   "lb_cache_fleet_invalidations_total{dir=\"received\"} %llu\n"
                   "lb_cache_fleet_invalidations_total{dir=\"dropped\"} %llu\n",
                   (unsigned long long)sent, (unsigned long long)received,
                   (unsigned long long)dropped);
}
