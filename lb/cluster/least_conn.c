/*
 * Weighted least connections: the server with the fewest active connections per unit of
 * effective weight. Ratios are compared cross-multiplied (a_i * w_j < a_j * w_i in 64 bits),
 * so there is no division and no floating point. Equal ratios go to the heavier server
 * (it has more room in absolute terms); servers still equal after that are taken in a
 * rotating order (st->rotor moves one place per pick), so on an idle cluster, where every
 * ratio is 0, equal servers share the load instead of the first one taking everything.
 */
#include <errno.h>

#include "lb/cluster/algo.h"

static int cl_least_conn_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                              const struct cl_bal_view *v)
{
    uint32_t n = b->n;
    uint32_t i = st->rotor;
    int best = -1;
    uint64_t best_a = 0, best_w = 0;

    if (++st->rotor >= n)
        st->rotor = 0;
    for (uint32_t k = 0; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
        uint64_t w = cl_bal_weight(v, i);
        if (w == 0)
            continue;
        uint64_t a = v->active(v->arg, i);
        if (best >= 0) {
            uint64_t lhs = a * best_w, rhs = best_a * w;
            if (lhs > rhs || (lhs == rhs && w <= best_w))
                continue;
        }
        best = (int)i;
        best_a = a;
        best_w = w;
    }
    return best < 0 ? -ENOENT : best;
}

const struct cl_bal_ops cl_bal_least_conn_ops = {
    .pick = cl_least_conn_pick,
};
