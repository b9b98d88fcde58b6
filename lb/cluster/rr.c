/*
 * Smooth weighted round robin, as nginx does it: each pick adds every candidate's weight to
 * its current weight, takes the largest, and subtracts the total from the winner. Over any
 * window of total-weight picks each server is chosen exactly weight times, and the choices
 * are interleaved (5,1,1 gives a a b a c a a) instead of bursting five in a row at one server.
 *
 * Effective weights (slow start, `lbctl weight`) are read on every pick, so a change shows at
 * once; an unusable server's current weight is left alone until it returns. The current
 * weights are per worker (st->current); O(n) per pick, like nginx, which is nothing next to
 * a request for the cluster sizes we serve.
 */
#include <errno.h>

#include "lb/cluster/algo.h"

static int cl_rr_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                      const struct cl_bal_view *v)
{
    int64_t *cur = st->current;
    int64_t total = 0;
    int best = -1;

    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t w = cl_bal_weight(v, i);
        if (w == 0)
            continue;
        cur[i] += w;
        total += w;
        /* Strictly greater: the first of equal servers wins, which gives the classic order. */
        if (best < 0 || cur[i] > cur[best])
            best = (int)i;
    }
    if (best < 0)
        return -ENOENT;
    cur[best] -= total;
    return best;
}

static bool cl_rr_all_usable(const void *arg, uint32_t i)
{
    return true;
}

static uint32_t cl_rr_no_load(const void *arg, uint32_t i)
{
    return 0;
}

static uint32_t cl_rr_configured_weight(const void *arg, uint32_t i)
{
    const struct cl_balancer *b = arg;
    return b->servers[i].weight;
}

/*
 * Workers all starting from zero would all send their first request to the heaviest server
 * together. Advancing each worker's sequence by a seed-dependent number of steps (at most
 * 255, at startup or reload) puts them out of phase; seed 0 keeps the textbook sequence.
 */
static void cl_rr_state_init(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t seed)
{
    const struct cl_bal_view cfg = {
        .usable = cl_rr_all_usable,
        .active = cl_rr_no_load,
        .weight = cl_rr_configured_weight,
        .arg = b,
    };
    uint32_t period = b->total_weight < 256 ? b->total_weight : 256;
    uint32_t steps = (uint32_t)(seed % period);

    for (uint32_t s = 0; s < steps; s++)
        cl_rr_pick(b, st, 0, &cfg);
}

const struct cl_bal_ops cl_bal_rr_ops = {
    .state_init = cl_rr_state_init,
    .pick = cl_rr_pick,
    .per_server_state = true,
};
