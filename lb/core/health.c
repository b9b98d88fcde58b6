/*
 * The callbacks health/ calls on the control thread: flags and weights into the shared server
 * table (atomics that workers read on every pick), one log line per state change; and the
 * source that runs a generation's probe engine on the control loop's ring. See health.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/core/control.h"
#include "lb/core/health.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/tls/tls.h"

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

/* Copies of the last probe for status and /metrics, kept in the shared server table beside
 * the flags the workers read. */
static void on_probe(void *arg, uint32_t cluster, uint32_t server, bool ok, uint32_t latency_us)
{
    struct lb_runtime *rt = arg;
    struct cl_server *s = &rt->clusters[cluster].servers[server];
    atomic_store_explicit(&s->probe_latency_us, latency_us, memory_order_relaxed);
    atomic_store_explicit(&s->probe_result, ok ? CL_PROBE_OK : CL_PROBE_FAIL, memory_order_relaxed);
}

/* check: redis: the shard's traffic follows the member that says it is master. */
static void on_member(void *arg, uint32_t cluster, uint32_t server, uint32_t member,
                      const char *reason)
{
    struct lb_runtime *rt = arg;
    struct cl_server *s = &rt->clusters[cluster].servers[server];
    atomic_store_explicit(&s->member, member, memory_order_relaxed);
    lb_warn("redis master moved", "cluster=%s server=%s address=%s reason=\"%s\"",
            rt->clusters[cluster].cf->name, s->cf->name, cl_server_addr(s)->text, reason);
}

int lb_health_init(struct lb_runtime *rt, struct lb_err *err)
{
    struct hc_ops ops = {
        .member = on_member, .event = on_event, .weight = on_weight, .probe = on_probe, .arg = rt};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid();
    rt->hc = hc_new(rt->conf, &ops, seed, err);
    return rt->hc ? 0 : -ENOMEM;
}

/* The probe engine as a source of the control loop; its argument is the generation. */
static void src_cqe(void *arg, const struct io_uring_cqe *cqe)
{
    struct lb_runtime *rt = arg;
    hc_engine_on_cqe(rt->hc, cqe);
}

static uint64_t src_tick(void *arg, uint64_t now_ms)
{
    struct lb_runtime *rt = arg;
    return hc_engine_tick(rt->hc, now_ms);
}

static void src_cancel(void *arg)
{
    struct lb_runtime *rt = arg;
    hc_engine_detach(rt->hc);
}

static unsigned src_inflight(const void *arg)
{
    const struct lb_runtime *rt = arg;
    return hc_engine_inflight(rt->hc);
}

static void src_release(void *arg)
{
    struct lb_runtime *rt = arg;
    rt->hc_tag = LB_CTL_TAG_NONE;
}

static const struct lb_ctl_ops health_ops = {
    .name = "health",
    .cqe = src_cqe,
    .tick = src_tick,
    .cancel = src_cancel,
    .inflight = src_inflight,
    .release = src_release,
};

int lb_health_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err)
{
    uint32_t servers = 0, passive = 0;
    for (size_t i = 0; i < rt->conf->nclusters; i++) {
        servers += (uint32_t)rt->conf->clusters[i].nservers;
        passive += rt->conf->clusters[i].passive.enabled;
    }
    if (!hc_ntargets(rt->hc) && !passive)
        return 0; /* nothing to probe or to decide */
    int tag = lb_ctl_attach(ctl, &health_ops, rt);
    if (tag < 0) {
        lb_err_set(err, "health: no tag left on the control loop");
        return tag;
    }
    /* Clusters with tls: are probed over TLS, with the context their traffic uses. */
    for (size_t i = 0; rt->tls && i < rt->tls->nclusters; i++) {
        const struct tls_client *tc = rt->tls->clusters[i];
        if (tc)
            hc_set_tls(rt->hc, (uint32_t)i, tc->ctx, tc->cf->sni);
    }
    int rc = hc_engine_attach(rt->hc, lb_ctl_ring(ctl), (uint8_t)tag, err);
    rt->hc_tag = tag;
    if (rc < 0) {
        lb_ctl_detach(ctl, tag); /* nothing in flight: released at once */
        return rc;
    }
    lb_info("health checker started", "probe_targets=%u servers=%u passive_clusters=%u",
            hc_ntargets(rt->hc), servers, passive);
    return 0;
}

void lb_health_stop(struct lb_runtime *rt, struct lb_ctl *ctl)
{
    lb_ctl_detach(ctl, rt->hc_tag);
}

void lb_health_free(struct lb_runtime *rt)
{
    hc_free(rt->hc);
    rt->hc = NULL;
}
