/*
 * Shared (L2) caches in /metrics: what each caches: entry did with the lookups, stores and
 * invalidations of every worker. The shards themselves (up, latency, errors) are the
 * lb:cache:NAME cluster's ordinary families. Cache names are conf names: no escaping needed.
 */
#include <stdatomic.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"
#include "lb/metrics/stats.h"

static unsigned long long ld(_Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

void metrics_prom_cache_l2(struct lb_runtime *rt, struct lb_jbuf *o)
{
    static const char *const results[METRICS_L2_NRESULTS] = {"hit",   "miss",        "error",
                                                             "store", "locked_wait", "invalidate"};
    const struct conf *cf = rt->conf;
    if (!cf->ncaches || !rt->l2stats)
        return;
    lb_jbuf_printf(o, "# HELP lb_cache_l2_total Shared cache operations by result: hit, miss, "
                      "error (shard down, slow or failing, or a malformed entry), store, "
                      "locked_wait (another instance was fetching), invalidate.\n"
                      "# TYPE lb_cache_l2_total counter\n");
    for (size_t i = 0; i < cf->ncaches; i++)
        for (int k = 0; k < METRICS_L2_NRESULTS; k++)
            lb_jbuf_printf(o, "lb_cache_l2_total{cache=\"%s\",result=\"%s\"} %llu\n",
                           cf->caches[i].name, results[k], ld(&rt->l2stats[i].n[k]));
    lb_jbuf_printf(o, "# HELP lb_cache_l2_bytes_total Entry bytes read from (hits) and written "
                      "to (stores) the shards.\n# TYPE lb_cache_l2_bytes_total counter\n");
    for (size_t i = 0; i < cf->ncaches; i++) {
        lb_jbuf_printf(o, "lb_cache_l2_bytes_total{cache=\"%s\",dir=\"read\"} %llu\n",
                       cf->caches[i].name, ld(&rt->l2stats[i].bytes_read));
        lb_jbuf_printf(o, "lb_cache_l2_bytes_total{cache=\"%s\",dir=\"written\"} %llu\n",
                       cf->caches[i].name, ld(&rt->l2stats[i].bytes_written));
    }
}
