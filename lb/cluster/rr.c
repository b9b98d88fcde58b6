/*
 * Smooth weighted round robin, as nginx does it: each pick adds every candidate's weight to
 * its current weight, takes the largest, and subtracts the total from the winner. Over any
 * window of total-weight picks each server is chosen exactly weight times, and the choices
 * are interleaved (5,1,1 gives a a b a c a a) instead of bursting five in a row at one server.
 *
 * Fleet-wide turns. Run per worker, that rotation is one per worker: with two workers, a
 * user sending requests one after another (each landing on whichever worker the kernel
 * chose for its connection) does not see the servers in turn. So the build precomputes one
 * period of the sequence for the tier's weights (b->servers, the configured or operator
 * weights; cl_cluster_reweigh builds a new balancer when an operator changes one), and a
 * pick takes the next turn with one relaxed fetch_add on a counter shared by every worker:
 * no lock, and consecutive picks anywhere in the process follow the sequence exactly.
 *
 * The sequence only holds while the view agrees with it. A pick falls back to the per-worker
 * rotation (st->current, effective weights read live) for this pick when:
 *  - some effective weight differs from the one the sequence was built for (slow start is
 *    ramping, or an operator weight has not been rebuilt into a table yet): the fleet order
 *    resumes by itself once the weights are back, and shares follow the live weights
 *    meanwhile;
 *  - the turn's server is unusable (down, draining, ejected, at its connection limit) or
 *    excluded by this request: its turn goes to the per-worker rotation among the usable
 *    servers, so the others keep their shares relative to each other.
 * Checking the weights costs what the per-worker pick costs anyway (one read per server,
 * O(n), like nginx), which is nothing next to a request for the cluster sizes we serve;
 * the one shared cache line costs a transfer between cores per pick, tens of nanoseconds.
 *
 * A tier whose period times its size exceeds CL_RR_MAX_BUILD_STEPS gets no sequence and
 * always uses the per-worker rotation: building it would stall the control thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/algo.h"

/* 16M steps: about 20 ms of control-thread time. 100 servers of weight 256, or 4096 of
 * weight 1, still get their sequence (at most 25,600 and 4,096 turns: 50 KiB, 8 KiB). */
#define CL_RR_MAX_BUILD_STEPS (1ull << 24)

/* One step of nginx's algorithm over the servers that view @v lets take a turn. */
static int cl_rr_local_pick(const struct cl_balancer *b, struct cl_bal_state *st,
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

/* Whether every effective weight is the one the shared sequence was built for. */
static bool cl_rr_weights_as_built(const struct cl_balancer *b, const struct cl_bal_view *v)
{
    for (uint32_t i = 0; i < b->n; i++)
        if (v->weight(v->arg, i) != b->servers[i].weight)
            return false;
    return true;
}

static int cl_rr_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                      const struct cl_bal_view *v)
{
    const struct cl_rr *rr = &b->u.rr;

    if (rr->order && cl_rr_weights_as_built(b, v)) {
        uint64_t t = st->peek ? atomic_load_explicit(&rr->turn->next, memory_order_relaxed)
                              : atomic_fetch_add_explicit(&rr->turn->next, 1, memory_order_relaxed);
        uint32_t s = rr->order[t % rr->len];
        if (v->usable(v->arg, s))
            return (int)s;
    }
    return cl_rr_local_pick(b, st, v);
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

/* The tier's own weights, every server usable: what the sequence and the offsets follow. */
static struct cl_bal_view cl_rr_built_view(const struct cl_balancer *b)
{
    return (struct cl_bal_view){
        .usable = cl_rr_all_usable,
        .active = cl_rr_no_load,
        .weight = cl_rr_configured_weight,
        .arg = b,
    };
}

/* One period of the sequence, by running the per-worker pick itself from zero: the shared
 * order is by construction the order one worker alone would give. */
static int cl_rr_build(struct cl_balancer *b, uint32_t table_size, struct lb_err *err)
{
    struct cl_rr *rr = &b->u.rr;
    uint32_t len = b->total_weight;

    memset(rr, 0, sizeof(*rr));
    if ((uint64_t)len * b->n > CL_RR_MAX_BUILD_STEPS)
        return 0;
    struct cl_bal_state tmp = {.n = b->n, .current = calloc(b->n, sizeof(int64_t))};
    rr->order = malloc((size_t)len * sizeof(*rr->order));
    rr->turn = aligned_alloc(_Alignof(struct cl_rr_turn), sizeof(*rr->turn));
    if (!tmp.current || !rr->order || !rr->turn) {
        free(tmp.current);
        free(rr->order);
        free(rr->turn);
        memset(rr, 0, sizeof(*rr));
        lb_err_set(err, "out of memory for a round robin sequence of %u turns", len);
        return -ENOMEM;
    }
    const struct cl_bal_view cfg = cl_rr_built_view(b);
    for (uint32_t t = 0; t < len; t++)
        rr->order[t] = (uint16_t)cl_rr_local_pick(b, &tmp, &cfg);
    free(tmp.current);
    atomic_init(&rr->turn->next, 0);
    rr->len = len;
    return 0;
}

static void cl_rr_destroy(struct cl_balancer *b)
{
    free(b->u.rr.order);
    b->u.rr.order = NULL;
    free(b->u.rr.turn);
    b->u.rr.turn = NULL;
}

/*
 * The per-worker rotation is the fallback (see above). Workers all starting it from zero
 * would all send their first fallback pick to the heaviest server together. Advancing each
 * worker's sequence by a seed-dependent number of steps (at most 255, at startup or reload)
 * puts them out of phase; seed 0 keeps the textbook sequence.
 */
static void cl_rr_state_init(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t seed)
{
    const struct cl_bal_view cfg = cl_rr_built_view(b);
    uint32_t period = b->total_weight < 256 ? b->total_weight : 256;
    uint32_t steps = (uint32_t)(seed % period);

    for (uint32_t s = 0; s < steps; s++)
        cl_rr_local_pick(b, st, &cfg);
}

const struct cl_bal_ops cl_bal_rr_ops = {
    .build = cl_rr_build,
    .destroy = cl_rr_destroy,
    .state_init = cl_rr_state_init,
    .pick = cl_rr_pick,
    .per_server_state = true,
    .weighted_tables = true,
};
