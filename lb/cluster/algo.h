/*
 * Private to lb/cluster/'s balancer files: the balancer object, the per-algorithm ops table
 * and the small helpers the algorithms share (candidate test, bounded-load cap, the capped
 * walk of the hash balancers, random numbers).
 * Nothing outside the balance files includes this; everyone else sees only balance.h.
 */
#ifndef CL_ALGO_H
#define CL_ALGO_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/err.h"
#include "conf/hash.h"
#include "lb/cluster/balance.h"

/* Maglev and ring tables store server indexes as uint16_t; 0xffff marks an empty slot. */
#define CL_BAL_MAX_SERVERS 65535u
#define CL_BAL_MAX_WEIGHT 256u
/* bounded_load is kept as an integer in thousandths, so 1.25 is exact and the cap needs no
 * floating point on the data path; 100 is far above any useful factor. */
#define CL_BAL_MAX_LOAD 100.0

struct cl_balancer;

struct cl_bal_ops {
    /* Builds the algorithm's immutable tables from b->servers (control thread). May be NULL.
     * Returns 0 or -errno with a message in @err. */
    int (*build)(struct cl_balancer *b, uint32_t table_size, struct lb_err *err);
    /* Frees what build allocated. May be NULL. */
    void (*destroy)(struct cl_balancer *b);
    /* Optional per-worker set-up after the common fields are filled. */
    void (*state_init)(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t seed);
    int (*pick)(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                const struct cl_bal_view *v);
    bool per_server_state; /* st->current holds one int64_t per server */
    bool weighted_tables;  /* build() bakes the weights in: cl_cluster_reweigh rebuilds */
};

struct cl_maglev {
    uint16_t *table; /* server index per slot */
    uint32_t size;   /* prime */
};

struct cl_ring_point {
    uint32_t hash;
    uint32_t server;
};

struct cl_ring {
    struct cl_ring_point *points; /* sorted by hash */
    uint32_t npoints;
};

/* Round robin's next turn, shared by every worker of the process: alone on its cache line,
 * since every pick writes it and nothing else should move with it. */
struct cl_rr_turn {
    _Alignas(64) _Atomic uint64_t next;
};

struct cl_rr {
    uint16_t *order;         /* server index per turn: one period of the smooth sequence for
                                the weights in b->servers; NULL when too big to precompute */
    uint32_t len;            /* its length: the sum of those weights */
    struct cl_rr_turn *turn; /* NULL with order */
};

struct cl_balancer {
    const struct cl_bal_ops *ops;
    enum conf_balance algo;
    uint32_t n;
    uint32_t load_milli;           /* bounded_load x 1000; 0 = off */
    uint32_t total_weight;         /* sum of the weights it was built with */
    struct cl_bal_server *servers; /* names point into the same allocation */
    struct cl_balancer *next_retired; /* cl_cluster_reweigh's list of replaced tables */
    union {
        struct cl_maglev maglev;
        struct cl_ring ring;
        struct cl_rr rr;
    } u;
};

extern const struct cl_bal_ops cl_bal_rr_ops;
extern const struct cl_bal_ops cl_bal_least_conn_ops;
extern const struct cl_bal_ops cl_bal_random_two_ops;
extern const struct cl_bal_ops cl_bal_maglev_ops;
extern const struct cl_bal_ops cl_bal_ring_hash_ops;

/* xorshift64*: tiny, fast, and plenty for spreading load; the state is never 0. */
static inline uint64_t cl_bal_rand(struct cl_bal_state *st)
{
    uint64_t x = st->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A number in [0, bound) for bound < 2^32, by multiply-shift: no division, and the bias
 * (at most bound / 2^32) is far below anything a load balancer could notice. */
static inline uint32_t cl_bal_rand_below(struct cl_bal_state *st, uint32_t bound)
{
    return (uint32_t)(((cl_bal_rand(st) >> 32) * (uint64_t)bound) >> 32);
}

/* Effective weight of server @i for this pick: 0 when it must take nothing. */
static inline uint32_t cl_bal_weight(const struct cl_bal_view *v, uint32_t i)
{
    if (!v->usable(v->arg, i))
        return 0;
    return v->weight(v->arg, i);
}

/*
 * Bounded load (hash balancers): the most connections a candidate may already hold plus the
 * new one, ceil(C * (total active of usable + 1) / usable), where "usable" also requires a
 * non-zero effective weight. Returns 0 when bounded load is off (no cap); sets *n_usable
 * when it is on (so the caller can answer -ENOENT at once when it is 0).
 */
uint32_t cl_bal_load_cap(const struct cl_balancer *b, const struct cl_bal_view *v,
                         uint32_t *n_usable);

/* Whether server @i may take the key now: usable, weighted, and under @cap (0 = no cap). */
static inline bool cl_bal_candidate(const struct cl_bal_view *v, uint32_t i, uint32_t cap)
{
    if (cl_bal_weight(v, i) == 0)
        return false;
    return cap == 0 || (uint64_t)v->active(v->arg, i) + 1 <= cap;
}

/* Whether any server could take a key under @cap: the slow, exact answer a hash balancer
 * asks only after its fast walk found nothing. */
bool cl_bal_any_candidate(const struct cl_balancer *b, const struct cl_bal_view *v, uint32_t cap);

/*
 * The capped walk both hash balancers do after the lookup (maglev.c, ring_hash.c): their
 * per-key order of servers, from the key's position on, until one is a candidate (usable,
 * weighted, under the bounded-load cap). The order is fixed per key, so when a server
 * cannot take keys only its own keys move, and they come back when it does.
 *
 * @step gives the server at walk position *@pos and advances *@pos; it is called with
 * step 0, 1, ... up to @max_steps - 1. A server the walk just refused is not asked about
 * again when the order repeats it (neighbouring ring points, a rehash landing on the same
 * slot). After CL_BAL_WALK_CHECK steps without a candidate the walk asks whether any exists
 * at all, so "everything is down" costs O(n), not O(max_steps). After @max_steps it scans the
 * servers in index order from *@pos % n, which finds a candidate whenever there is one.
 *
 * Returns the server index, or -ENOENT when no server can take the key. Inline, and called
 * with a constant @step, so the compiler folds the step in: no indirect call per step.
 */
#define CL_BAL_WALK_CHECK 64u

typedef uint32_t cl_bal_step_fn(const struct cl_balancer *b, uint64_t key, uint32_t step,
                                uint64_t *pos);

static inline int cl_bal_walk(const struct cl_balancer *b, const struct cl_bal_view *v,
                              uint64_t key, uint64_t pos, uint32_t max_steps, cl_bal_step_fn *step)
{
    uint32_t cap = 0, live, last = UINT32_MAX;

    if (b->load_milli) {
        cap = cl_bal_load_cap(b, v, &live);
        if (live == 0)
            return -ENOENT;
    }
    for (uint32_t s = 0; s < max_steps; s++) {
        uint32_t srv = step(b, key, s, &pos);
        if (srv != last) {
            if (cl_bal_candidate(v, srv, cap))
                return (int)srv;
            last = srv;
        }
        if (s == CL_BAL_WALK_CHECK && !cl_bal_any_candidate(b, v, cap))
            return -ENOENT;
    }
    uint32_t i = (uint32_t)(pos % b->n);
    for (uint32_t j = 0; j < b->n; j++, i = i + 1 == b->n ? 0 : i + 1)
        if (cl_bal_candidate(v, i, cap))
            return (int)i;
    return -ENOENT;
}

#endif
