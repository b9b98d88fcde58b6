/*
 * Ketama-style consistent hash ring: every server owns CL_RING_POINTS_PER_WEIGHT x weight
 * points, each the hash of its NAME seeded with the replica index; a key goes to the first
 * point at or after it (clockwise), found by binary search over the sorted points.
 *
 * A server's points depend only on its own name and weight, never on the other servers or
 * the total, so adding or removing a server in the config moves exactly the keys on its own
 * points. (Ketama's normalising by total weight would move some keys between the survivors.)
 * The price is ring size: the share a server gets varies by about 1 / sqrt(points), so we
 * use many points: 1024 per weight unit gives about 3% for a weight-1 server, 1.8% at 3.
 *
 * When the point's server is not a candidate (unusable, weight 0, over the bounded-load cap)
 * the key walks on clockwise to the next distinct server: a fixed order per key, so only
 * that server's keys move, spread over the servers whose points follow its points, and they
 * return when it does.
 *
 * Effective weights: the table is immutable, so slow start and `lbctl weight` cannot reshape
 * it; here weight() only decides "takes nothing" (0) or "takes its table share" (non-zero).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/algo.h"

#define CL_RING_POINTS_PER_WEIGHT 1024u
/* 4M points is 32 MiB; a ring that would be bigger gets fewer points per weight unit
 * (a config with total weight above 4096), trading a little evenness for memory. */
#define CL_RING_MAX_POINTS (1u << 22)
#define CL_RING_SEED 0x72696e672d707473ull /* "ring-pts" */

static int cl_ring_point_cmp(const void *pa, const void *pb)
{
    const struct cl_ring_point *a = pa, *b = pb;

    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    /* Equal hashes (rare in 32 bits) are ordered by server so the ring is deterministic. */
    return a->server < b->server ? -1 : a->server > b->server;
}

static int cl_ring_build(struct cl_balancer *b, uint32_t table_size, struct lb_err *err)
{
    uint32_t per = CL_RING_POINTS_PER_WEIGHT;

    if ((uint64_t)b->total_weight * per > CL_RING_MAX_POINTS)
        per = CL_RING_MAX_POINTS / b->total_weight ? CL_RING_MAX_POINTS / b->total_weight : 1;
    uint32_t np = b->total_weight * per;

    struct cl_ring_point *pts = malloc((size_t)np * sizeof(*pts));
    if (!pts) {
        lb_err_set(err, "out of memory for a hash ring of %u points", np);
        return -ENOMEM;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        const char *name = b->servers[i].name;
        size_t len = strlen(name);
        uint32_t reps = b->servers[i].weight * per;
        for (uint32_t r = 0; r < reps; r++) {
            pts[k].hash = (uint32_t)(lb_hash64(name, len, CL_RING_SEED + r) >> 32);
            pts[k].server = i;
            k++;
        }
    }
    qsort(pts, np, sizeof(*pts), cl_ring_point_cmp);
    b->u.ring.points = pts;
    b->u.ring.npoints = np;
    return 0;
}

static void cl_ring_destroy(struct cl_balancer *b)
{
    free(b->u.ring.points);
    b->u.ring.points = NULL;
}

/* Index of the first point with hash >= @h, or npoints when there is none. */
static uint32_t cl_ring_lower_bound(const struct cl_ring *r, uint32_t h)
{
    uint32_t lo = 0, len = r->npoints;

    while (len > 0) {
        uint32_t half = len / 2;
        if (r->points[lo + half].hash < h) {
            lo += half + 1;
            len -= half + 1;
        } else {
            len = half;
        }
    }
    return lo;
}

/* Step @step reads the point at *@pos and moves *@pos one point clockwise. */
static inline uint32_t cl_ring_step(const struct cl_balancer *b, uint64_t key, uint32_t step,
                                    uint64_t *pos)
{
    const struct cl_ring *r = &b->u.ring;
    uint32_t srv = r->points[*pos].server;
    *pos = *pos + 1 == r->npoints ? 0 : *pos + 1;
    return srv;
}

static int cl_ring_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                        const struct cl_bal_view *v)
{
    const struct cl_ring *r = &b->u.ring;
    uint32_t idx = cl_ring_lower_bound(r, (uint32_t)(key >> 32));

    /* One lap visits every point, so every server: the walk's final scan only runs when
     * the view changed under it. */
    return cl_bal_walk(b, v, key, idx == r->npoints ? 0 : idx, r->npoints, cl_ring_step);
}

const struct cl_bal_ops cl_bal_ring_hash_ops = {
    .build = cl_ring_build,
    .destroy = cl_ring_destroy,
    .pick = cl_ring_pick,
    .weighted_tables = true,
};
