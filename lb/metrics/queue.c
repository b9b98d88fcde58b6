/*
 * Enqueue routes and lb's own Redis (global.redis) in /metrics: whether that Redis answers
 * as master, and what became of every request to an enqueue route. The push latency is the
 * lb:redis cluster's lb_redis_command_duration_seconds, beside the shards' (metrics.c).
 * Listener names are conf names, which need no escaping in a label.
 */
#include <stdatomic.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"
#include "lb/metrics/stats.h"

void metrics_prom_queues(struct lb_runtime *rt, struct lb_jbuf *o)
{
    static const char *const results[4] = {"pushed", "full", "redis_down", "too_large"};
    const struct conf *cf = rt->conf;
    if (cf->redis_cluster < 0)
        return;
    const struct cl_server *s = &rt->clusters[cf->redis_cluster].servers[0];
    lb_jbuf_printf(o,
                   "# HELP lb_redis_up 1 when lb's Redis (global.redis) answers as master to "
                   "the health checks.\n# TYPE lb_redis_up gauge\nlb_redis_up %d\n",
                   !(atomic_load_explicit(&s->flags, memory_order_relaxed) & CL_SRV_F_DOWN));
    lb_jbuf_printf(o, "# HELP lb_enqueue_total Requests to enqueue routes by result: pushed (202), "
                      "full and redis_down (503), too_large (413, or 411 without "
                      "Content-Length).\n# TYPE lb_enqueue_total counter\n");
    for (size_t i = 0; rt->lstats && i < cf->nlisteners; i++)
        for (int k = 0; k < 4; k++)
            lb_jbuf_printf(o, "lb_enqueue_total{listener=\"%s\",result=\"%s\"} %llu\n",
                           cf->listeners[i].name, results[k],
                           (unsigned long long)atomic_load_explicit(&rt->lstats[i].enq[k],
                                                                    memory_order_relaxed));
}
