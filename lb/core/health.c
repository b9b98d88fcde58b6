/*
 * The callbacks health/ calls on its thread: flags and weights into the shared server table
 * (atomics that workers read on every pick), one log line per state change. See health.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/core/health.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"

static void on_event(void *arg, const struct hc_event *ev)
{
    struct lb_runtime *rt = arg;
    struct cl_cluster *cl = &rt->clusters[ev->cluster];
    struct cl_server *s = &cl->servers[ev->server];
    const char *cn = cl->cf->name, *sn = s->cf->name, *addr = s->cf->addr.text;
    double lat_ms = ev->latency_us / 1000.0;

    switch (ev->kind) {
    case HC_EV_DOWN:
        atomic_fetch_or_explicit(&s->flags, CL_SRV_F_DOWN, memory_order_relaxed);
        lb_warn("server down", "cluster=%s server=%s address=%s reason=\"%s\" latency_ms=%.1f", cn,
                sn, addr, ev->reason, lat_ms);
        break;
    case HC_EV_UP:
        atomic_fetch_and_explicit(&s->flags, ~(uint32_t)CL_SRV_F_DOWN, memory_order_relaxed);
        lb_info("server up", "cluster=%s server=%s address=%s reason=\"%s\" latency_ms=%.1f", cn,
                sn, addr, ev->reason, lat_ms);
        break;
    case HC_EV_EJECTED:
        atomic_fetch_or_explicit(&s->flags, CL_SRV_F_EJECTED, memory_order_relaxed);
        lb_warn("server ejected",
                "cluster=%s server=%s address=%s reason=\"%s\" ejection_ms=%llu ejections=%u", cn,
                sn, addr, ev->reason, (unsigned long long)ev->ejection_ms, ev->ejections);
        break;
    case HC_EV_RETURNED:
        atomic_fetch_and_explicit(&s->flags, ~(uint32_t)CL_SRV_F_EJECTED, memory_order_relaxed);
        lb_info("server returned", "cluster=%s server=%s address=%s reason=\"%s\"", cn, sn, addr,
                ev->reason);
        break;
    case HC_EV_EJECT_SKIPPED:
        lb_warn("ejection skipped", "cluster=%s server=%s address=%s reason=\"%s\"", cn, sn, addr,
                ev->reason);
        break;
    }
}

static void on_weight(void *arg, uint32_t cluster, uint32_t server, uint32_t weight)
{
    struct lb_runtime *rt = arg;
    struct cl_server *s = &rt->clusters[cluster].servers[server];
    /* @weight ramps 1..configured; an operator weight (lbctl) scales the ramp's end. */
    uint32_t cfg = s->cf->weight ? s->cf->weight : 1;
    uint32_t base = atomic_load_explicit(&s->op_weight, memory_order_relaxed);
    if (!base)
        base = cfg;
    uint32_t eff = (uint32_t)((uint64_t)weight * base / cfg);
    weight = eff ? eff : 1;
    atomic_store_explicit(&s->weight, weight, memory_order_relaxed);
    lb_debug("slow start", "cluster=%s server=%s weight=%u", rt->clusters[cluster].cf->name,
             s->cf->name, weight);
}

/* Copies of the last probe for the admin thread (status, /metrics): health/'s own table is
 * the health thread's alone. */
static void on_probe(void *arg, uint32_t cluster, uint32_t server, bool ok, uint32_t latency_us)
{
    struct lb_runtime *rt = arg;
    struct cl_server *s = &rt->clusters[cluster].servers[server];
    atomic_store_explicit(&s->probe_latency_us, latency_us, memory_order_relaxed);
    atomic_store_explicit(&s->probe_result, ok ? CL_PROBE_OK : CL_PROBE_FAIL,
                          memory_order_relaxed);
}

int lb_health_init(struct lb_runtime *rt, struct lb_err *err)
{
    struct hc_ops ops = {.event = on_event, .weight = on_weight, .probe = on_probe, .arg = rt};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid();
    rt->hc = hc_new(rt->conf, &ops, seed, err);
    return rt->hc ? 0 : -ENOMEM;
}

int lb_health_start(struct lb_runtime *rt, struct lb_err *err)
{
    int rc = hc_start(rt->hc, err);
    if (rc < 0)
        return rc;
    uint32_t servers = 0, passive = 0;
    for (size_t i = 0; i < rt->conf->nclusters; i++) {
        servers += (uint32_t)rt->conf->clusters[i].nservers;
        passive += rt->conf->clusters[i].passive.enabled;
    }
    if (hc_ntargets(rt->hc) || passive)
        lb_info("health checker started", "probe_targets=%u servers=%u passive_clusters=%u",
                hc_ntargets(rt->hc), servers, passive);
    return 0;
}

void lb_health_free(struct lb_runtime *rt)
{
    hc_free(rt->hc);
    rt->hc = NULL;
}
