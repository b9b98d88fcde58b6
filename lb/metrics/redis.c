/*
 * Redis shards in /metrics: for every cluster a `protocol: redis` listener shards over, each
 * shard's commands, errors and command round trips (lb/redis counts them on the workers).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static bool sharded(const struct conf *cf, size_t ci)
{
    for (size_t i = 0; i < cf->nlisteners; i++)
        if (cf->listeners[i].protocol == CONF_PROTO_REDIS &&
            cf->listeners[i].cluster_idx == (int)ci)
            return true;
    return false;
}

static void histogram(struct lb_jbuf *o, const char *cl, const struct cl_server *s)
{
    uint64_t cum = 0;
    for (int i = 0; i <= CL_LAT_NBUCKETS; i++) {
        cum += LOAD(s->latency.bucket[i]);
        char le[32];
        if (i < CL_LAT_NBUCKETS)
            snprintf(le, sizeof(le), "%g", cl_lat_bounds_us[i] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        lb_jbuf_printf(o,
                       "lb_redis_command_duration_seconds_bucket{cluster=\"%s\",server=\"%s\","
                       "le=\"%s\"} %llu\n",
                       cl, s->cf->name, le, (unsigned long long)cum);
    }
    lb_jbuf_printf(o, "lb_redis_command_duration_seconds_sum{cluster=\"%s\",server=\"%s\"} %g\n",
                   cl, s->cf->name, LOAD(s->latency.sum_us) / 1e6);
    lb_jbuf_printf(o,
                   "lb_redis_command_duration_seconds_count{cluster=\"%s\",server=\"%s\"} %llu\n",
                   cl, s->cf->name, (unsigned long long)cum);
}

void metrics_prom_redis(struct lb_runtime *rt, struct lb_jbuf *o)
{
    const struct conf *cf = rt->conf;
    static const char *const fam[][3] = {
        {"lb_redis_commands_total", "counter",
         "Commands (or parts of split ones) sent to the shard."},
        {"lb_redis_errors_total", "counter",
         "Commands the shard answered with an error, or that failed on it (lb's -ERR lb: ...)."},
        {"lb_redis_command_duration_seconds", "histogram",
         "Round trip of a command to the shard: queued to reply."},
    };
    bool any = false;
    for (size_t ci = 0; ci < cf->nclusters; ci++)
        any |= sharded(cf, ci);
    if (!any)
        return;
    for (int f = 0; f < 3; f++) {
        lb_jbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0],
                       fam[f][1]);
        for (size_t ci = 0; ci < cf->nclusters; ci++) {
            if (!sharded(cf, ci))
                continue;
            const struct cl_cluster *c = &rt->clusters[ci];
            for (uint32_t si = 0; si < c->n; si++) {
                const struct cl_server *s = &c->servers[si];
                if (f == 2) {
                    histogram(o, cf->clusters[ci].name, s);
                    continue;
                }
                uint64_t v = f == 0 ? LOAD(s->picks) : LOAD(s->errors);
                lb_jbuf_printf(o, "%s{cluster=\"%s\",server=\"%s\"} %llu\n", fam[f][0],
                               cf->clusters[ci].name, s->cf->name, (unsigned long long)v);
            }
        }
    }
}
