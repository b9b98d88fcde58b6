/*
 * Per-address limits (lb/core/limits.h). The rate is a fixed one-second window per counter:
 * simple and cheap; a client may get up to twice its rate across a second's boundary.
 */
#include <stdlib.h>

#include "lb/core/limits.h"

struct lb_limits *lb_limits_new(uint32_t max_conns, uint32_t max_rate)
{
    if (!max_conns && !max_rate)
        return NULL;
    struct lb_limits *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->max_conns = max_conns;
    l->max_rate = max_rate;
    return l;
}

void lb_limits_free(struct lb_limits *l)
{
    free(l);
}

static struct lb_limit_slot *slot(struct lb_limits *l, uint64_t h)
{
    return &l->slots[(h ^ (h >> 32)) & (LB_LIMIT_SLOTS - 1)];
}

bool lb_limit_conn_take(struct lb_limits *l, uint64_t h)
{
    struct lb_limit_slot *s = slot(l, h);
    uint32_t n = atomic_fetch_add_explicit(&s->conns, 1, memory_order_relaxed) + 1;
    if (n <= l->max_conns)
        return true;
    atomic_fetch_sub_explicit(&s->conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->refused_conns, 1, memory_order_relaxed);
    return false;
}

void lb_limit_conn_put(struct lb_limits *l, uint64_t h)
{
    atomic_fetch_sub_explicit(&slot(l, h)->conns, 1, memory_order_relaxed);
}

bool lb_limit_rate_take(struct lb_limits *l, uint64_t h, uint64_t now_ms)
{
    struct lb_limit_slot *s = slot(l, h);
    uint64_t sec = (now_ms / 1000) & 0xffffffffu;
    uint64_t old = atomic_load_explicit(&s->rate, memory_order_relaxed);
    for (;;) {
        uint64_t next;
        if (old >> 32 != sec)
            next = sec << 32 | 1;
        else if ((old & 0xffffffffu) >= l->max_rate)
            break;
        else
            next = old + 1;
        if (atomic_compare_exchange_weak_explicit(&s->rate, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    atomic_fetch_add_explicit(&l->refused_rate, 1, memory_order_relaxed);
    return false;
}
