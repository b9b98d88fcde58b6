/*
 * The admin socket's `queues`: what lbctl queue stats needs from lb to read the queues in
 * Redis itself: the Redis nodes of global.redis (lbctl finds the master with ROLE, as lbq
 * does), whether AUTH is configured (the password itself is never sent), the lists of the
 * enqueue routes, and lb's own counts of what it pushed and refused per listener.
 */
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/metrics/stats.h"

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void queue_list(const struct conf *cf, struct lb_jbuf *out)
{
    bool first = true;
    lb_jbuf_printf(out, ",\"queues\":[");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        const struct conf_listener *l = &cf->listeners[i];
        for (size_t j = 0; j < l->nroutes; j++) {
            const struct conf_route *r = &l->routes[j];
            if (r->action != CONF_ACT_ENQUEUE)
                continue;
            lb_jbuf_printf(out, "%s{\"name\":", first ? "" : ",");
            lb_jbuf_str(out, r->enqueue.redis_list, strlen(r->enqueue.redis_list));
            lb_jbuf_printf(out, ",\"listener\":\"%s\",\"route\":%zu,\"max_length\":%llu}", l->name,
                           j, (unsigned long long)r->enqueue.max_length);
            first = false;
        }
    }
    lb_jbuf_printf(out, "]");
}

int admin_queues(struct lb_runtime *rt, struct lb_jbuf *out)
{
    const struct conf *cf = rt->conf;
    if (cf->redis_cluster < 0) {
        admin_error(out, "this configuration has no global.redis: lb has no queues");
        return ADMIN_R_ERROR;
    }
    const struct cl_server *s = &rt->clusters[cf->redis_cluster].servers[0];
    lb_jbuf_printf(out, "{\"ok\":true,\"redis\":{\"nodes\":[");
    for (size_t i = 0; i < cf->global.nredis_nodes; i++) {
        lb_jbuf_printf(out, "%s", i ? "," : "");
        lb_jbuf_str(out, cf->global.redis_nodes[i], strlen(cf->global.redis_nodes[i]));
    }
    lb_jbuf_printf(out, "],\"auth\":%s,\"up\":%s}", cf->global.redis_password ? "true" : "false",
                   atomic_load(&s->flags) & CL_SRV_F_DOWN ? "false" : "true");
    queue_list(cf, out);
    lb_jbuf_printf(out, ",\"listeners\":[");
    bool first = true;
    for (size_t i = 0; rt->lstats && i < cf->nlisteners; i++) {
        const _Atomic uint64_t *e = rt->lstats[i].enq;
        if (cf->listeners[i].protocol != CONF_PROTO_HTTP)
            continue;
        lb_jbuf_printf(out,
                       "%s{\"listener\":\"%s\",\"pushed\":%llu,\"full\":%llu,\"redis_down\":%llu,"
                       "\"too_large\":%llu}",
                       first ? "" : ",", cf->listeners[i].name,
                       (unsigned long long)load(&e[METRICS_ENQ_PUSHED]),
                       (unsigned long long)load(&e[METRICS_ENQ_FULL]),
                       (unsigned long long)load(&e[METRICS_ENQ_DOWN]),
                       (unsigned long long)load(&e[METRICS_ENQ_TOO_LARGE]));
        first = false;
    }
    lb_jbuf_printf(out, "]}");
    return 0;
}
