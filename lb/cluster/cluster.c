/*
 * Runtime clusters: shared server table, tiers and the pick; see cluster.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/cluster.h"

/* 1 ms to 10 s, roughly 1-2.5-5 per decade: HTTP backends answer in milliseconds, and the
 * slow tail up to a typical response timeout still lands in a bucket of its own. */
const uint64_t cl_lat_bounds_us[CL_LAT_NBUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 7500000, 10000000,
};

int cl_cluster_init(struct cl_cluster *c, const struct conf_cluster *cf, struct lb_err *err)
{
    memset(c, 0, sizeof(*c));
    c->cf = cf;
    c->n = (uint32_t)cf->nservers;
    c->servers = calloc(c->n, sizeof(*c->servers));
    struct cl_bal_server *bs = calloc(c->n, sizeof(*bs));
    if (!c->servers || !bs) {
        lb_err_set(err, "cluster %s: out of memory", cf->name);
        goto fail;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        struct cl_server *s = &c->servers[i];
        s->cf = &cf->servers[i];
        s->idx = i;
        atomic_init(&s->weight, s->cf->weight);
    }
    for (int t = 0; t < 2; t++) {
        struct cl_tier *tier = &c->tiers[t];
        tier->map = calloc(c->n, sizeof(*tier->map));
        if (!tier->map) {
            lb_err_set(err, "cluster %s: out of memory", cf->name);
            goto fail;
        }
        for (uint32_t i = 0; i < c->n; i++) {
            if (cf->servers[i].backup != (t == 1))
                continue;
            bs[tier->n].name = cf->servers[i].name;
            bs[tier->n].weight = cf->servers[i].weight;
            tier->map[tier->n++] = i;
        }
        if (!tier->n)
            continue;
        /* Maglev's table must be at least 100x the tier; grow the default to a prime
         * that is, unless the operator chose a size (then the loader checked it). */
        tier->bal =
            cl_balancer_new(cf->balance, bs, tier->n, cf->bounded_load, cf->table_size, err);
        if (!tier->bal)
            goto fail;
    }
    free(bs);
    return 0;
fail:
    free(bs);
    cl_cluster_destroy(c);
    return -EINVAL;
}

void cl_cluster_destroy(struct cl_cluster *c)
{
    for (int t = 0; t < 2; t++) {
        while (c->tiers[t].retired) {
            struct cl_balancer *r = c->tiers[t].retired;
            c->tiers[t].retired = cl_balancer_next_retired(r);
            cl_balancer_free(r);
        }
        if (c->tiers[t].bal)
            cl_balancer_free(c->tiers[t].bal);
        free(c->tiers[t].map);
        c->tiers[t].map = NULL;
        c->tiers[t].bal = NULL;
    }
    for (uint32_t i = 0; c->servers && i < c->n; i++) {
        free(c->servers[i].resp_by_listener);
        c->servers[i].resp_by_listener = NULL;
    }
    free(c->servers);
    c->servers = NULL;
}

int cl_cluster_stats_init(struct cl_cluster *c, uint32_t nlisteners)
{
    for (uint32_t i = 0; i < c->n; i++) {
        struct cl_server *s = &c->servers[i];
        if (!nlisteners || s->resp_by_listener)
            continue;
        s->resp_by_listener = calloc(nlisteners, sizeof(*s->resp_by_listener));
        if (!s->resp_by_listener)
            return -ENOMEM;
        s->nlisteners = nlisteners;
    }
    return 0;
}

const char *cl_server_state(const struct cl_server *s)
{
    uint32_t f = atomic_load_explicit(&s->flags, memory_order_relaxed);
    if (f & CL_SRV_F_DRAINING)
        return "draining";
    if (f & CL_SRV_F_DOWN)
        return "down";
    if (f & CL_SRV_F_EJECTED)
        return "ejected";
    return s->cf->backup ? "backup" : "up";
}

int cl_cluster_wstate_init(struct cl_cluster_wstate *ws, const struct cl_cluster *c, uint64_t seed)
{
    memset(ws, 0, sizeof(*ws));
    for (int t = 0; t < 2; t++) {
        if (!c->tiers[t].bal)
            continue;
        int rc = cl_bal_state_init(&ws->st[t], c->tiers[t].bal, seed * 2 + (uint64_t)t + 1);
        if (rc < 0) {
            cl_cluster_wstate_free(ws);
            return rc;
        }
    }
    return 0;
}

void cl_cluster_wstate_free(struct cl_cluster_wstate *ws)
{
    for (int t = 0; t < 2; t++)
        cl_bal_state_free(&ws->st[t]);
}

bool cl_server_usable(const struct cl_cluster *c, const struct cl_server *s)
{
    if (atomic_load_explicit(&s->flags, memory_order_relaxed))
        return false;
    uint32_t cap = c->cf->max_connections_per_server;
    return !cap || atomic_load_explicit(&s->active, memory_order_relaxed) < cap;
}

/* The balancer's view of one tier: indices are tier indices, mapped to the cluster. */
struct pick_view {
    const struct cl_cluster *c;
    const struct cl_tier *tier;
    const struct cl_exclude *ex;
};

static bool view_usable(const void *arg, uint32_t i)
{
    const struct pick_view *v = arg;
    uint32_t si = v->tier->map[i];
    if (v->ex) {
        for (uint32_t k = 0; k < v->ex->n; k++)
            if (v->ex->idx[k] == si)
                return false;
    }
    return cl_server_usable(v->c, &v->c->servers[si]);
}

static uint32_t view_active(const void *arg, uint32_t i)
{
    const struct pick_view *v = arg;
    return atomic_load_explicit(&v->c->servers[v->tier->map[i]].active, memory_order_relaxed);
}

static uint32_t view_weight(const void *arg, uint32_t i)
{
    const struct pick_view *v = arg;
    return atomic_load_explicit(&v->c->servers[v->tier->map[i]].weight, memory_order_relaxed);
}

int cl_cluster_pick(const struct cl_cluster *c, struct cl_cluster_wstate *ws, uint64_t key,
                    const struct cl_exclude *ex)
{
    for (int t = 0; t < 2; t++) {
        const struct cl_tier *tier = &c->tiers[t];
        struct cl_balancer *bal = atomic_load_explicit(&tier->bal, memory_order_acquire);
        if (!bal)
            continue;
        struct pick_view pv = {.c = c, .tier = tier, .ex = ex};
        struct cl_bal_view v = {
            .usable = view_usable, .active = view_active, .weight = view_weight, .arg = &pv};
        int i = cl_balancer_pick(bal, &ws->st[t], key, &v);
        if (i >= 0)
            return (int)tier->map[i];
    }
    return -ENOENT;
}

static bool view_every(const void *arg, uint32_t i)
{
    (void)arg, (void)i;
    return true;
}

int cl_cluster_owner(const struct cl_cluster *c, struct cl_cluster_wstate *ws, uint64_t key)
{
    const struct cl_tier *tier = &c->tiers[0];
    struct cl_balancer *bal = atomic_load_explicit(&tier->bal, memory_order_acquire);
    if (!bal)
        return -ENOENT;
    struct pick_view pv = {.c = c, .tier = tier, .ex = NULL};
    struct cl_bal_view v = {
        .usable = view_every, .active = view_active, .weight = view_weight, .arg = &pv};
    int i = cl_balancer_pick(bal, &ws->st[0], key, &v);
    return i >= 0 ? (int)tier->map[i] : i;
}

void cl_server_carry(struct cl_server *dst, const struct cl_server *src)
{
    uint32_t f = atomic_load(&src->flags) & (CL_SRV_F_DOWN | CL_SRV_F_DRAINING);
    atomic_fetch_or(&dst->flags, f);
    uint32_t opw = atomic_load(&src->op_weight);
    atomic_store(&dst->op_weight, opw);
    if (opw)
        atomic_store(&dst->weight, opw);
    atomic_store(&dst->picks, atomic_load(&src->picks));
    atomic_store(&dst->connect_failures, atomic_load(&src->connect_failures));
    atomic_store(&dst->bytes_in, atomic_load(&src->bytes_in));
    atomic_store(&dst->bytes_out, atomic_load(&src->bytes_out));
    atomic_store(&dst->retries, atomic_load(&src->retries));
    for (int i = 0; i < 5; i++)
        atomic_store(&dst->resp[i], atomic_load(&src->resp[i]));
    atomic_store(&dst->probe_result, atomic_load(&src->probe_result));
    atomic_store(&dst->probe_latency_us, atomic_load(&src->probe_latency_us));
    /* The master a reload finds is the one the old generation followed, when the members
     * are the same; the probes take over from there. */
    uint32_t m = atomic_load(&src->member);
    if (m <= dst->cf->nreplicas && !strcmp(m ? src->cf->replicas[m - 1].text : src->cf->addr.text,
                                           m ? dst->cf->replicas[m - 1].text : dst->cf->addr.text))
        atomic_store(&dst->member, m);
}

int cl_cluster_reweigh(struct cl_cluster *c, struct lb_err *err)
{
    if (!cl_balance_weighted_tables(c->cf->balance))
        return 0;
    struct cl_bal_server *bs = calloc(c->n ? c->n : 1, sizeof(*bs));
    if (!bs) {
        lb_err_set(err, "cluster %s: out of memory", c->cf->name);
        return -ENOMEM;
    }
    int rc = 0;
    for (int t = 0; t < 2 && !rc; t++) {
        struct cl_tier *tier = &c->tiers[t];
        if (!tier->n)
            continue;
        for (uint32_t k = 0; k < tier->n; k++) {
            const struct cl_server *s = &c->servers[tier->map[k]];
            uint32_t w = atomic_load(&s->op_weight);
            bs[k].name = s->cf->name;
            bs[k].weight = w ? w : s->cf->weight;
        }
        struct cl_balancer *nb = cl_balancer_new(c->cf->balance, bs, tier->n, c->cf->bounded_load,
                                                 c->cf->table_size, err);
        if (!nb) {
            rc = -ENOMEM;
            break;
        }
        struct cl_balancer *old = atomic_exchange_explicit(&tier->bal, nb, memory_order_acq_rel);
        cl_balancer_set_next_retired(old, tier->retired);
        tier->retired = old;
    }
    free(bs);
    return rc;
}
