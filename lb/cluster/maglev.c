/*
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of M slots, M prime,
 * each slot holding a server index; a key goes to table[key % M], one memory read.
 *
 * Building (control thread, cl_balancer_new): every server has its own permutation of the
 * slots, slot(j) = (offset + j * skip) % M, with offset and skip taken from two hashes of
 * its NAME (so an address change moves nothing, and the table is the same on every lb
 * instance). Servers take turns claiming the next free slot of their permutation until the
 * table is full; a server of weight w takes w turns per round. The turns are interleaved
 * (sub-round t of a round gives one turn to every server with weight > t), so when the table
 * fills part-way through a round each server is at most one slot short of its exact share.
 * Because each server's preferences do not depend on the others, removing one server from
 * the config moves little beyond its own slots.
 *
 * Lookup never rebuilds. When the slot's server is not a candidate (unusable, weight 0, or
 * over the bounded-load cap) the key is rehashed with an attempt counter and looked up again:
 * a fixed sequence per key, so only that server's keys move, they spread over the others in
 * proportion to their slots, and they come back when it does. After CL_MAGLEV_ATTEMPTS
 * misses (only when most of the table is unusable) a linear scan from a key-chosen start
 * finishes the job.
 *
 * Effective weights: the table is immutable, so slow start and `lbctl weight` cannot reshape
 * it; here weight() only decides "takes nothing" (0) or "takes its table share" (non-zero).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/algo.h"

#define CL_MAGLEV_DEFAULT_SIZE 65537u
#define CL_MAGLEV_MAX_SIZE (1u << 24) /* 32 MiB of table; far beyond any real cluster */
#define CL_MAGLEV_EMPTY 0xffffu
#define CL_MAGLEV_SEED_OFFSET 0x6d61676c65762d6full /* "maglev-o" */
#define CL_MAGLEV_SEED_SKIP 0x6d61676c65762d73ull   /* "maglev-s" */
#define CL_MAGLEV_REHASH 0x9e3779b97f4a7c15ull
/* With a fraction f of the table unusable, a key needs the linear scan with probability
 * f^32: 2e-10 at half the servers down, 3% with nine of ten down. */
#define CL_MAGLEV_ATTEMPTS 32

static bool cl_is_prime(uint32_t m)
{
    if (m < 2)
        return false;
    if (m % 2 == 0)
        return m == 2;
    for (uint32_t d = 3; (uint64_t)d * d <= m; d += 2)
        if (m % d == 0)
            return false;
    return true;
}

static int cl_maglev_build(struct cl_balancer *b, uint32_t table_size, struct lb_err *err)
{
    uint32_t m = table_size ? table_size : CL_MAGLEV_DEFAULT_SIZE;
    uint32_t n = b->n;

    if (!cl_is_prime(m)) {
        lb_err_set(err, "maglev table_size %u is not a prime", m);
        return -EINVAL;
    }
    if ((uint64_t)m < 100ull * n) {
        lb_err_set(err, "maglev table_size %u is too small for %u servers (needs >= %llu)", m, n,
                   100ull * n);
        return -EINVAL;
    }
    if (m > CL_MAGLEV_MAX_SIZE) {
        lb_err_set(err, "maglev table_size %u is above the maximum %u", m, CL_MAGLEV_MAX_SIZE);
        return -EINVAL;
    }

    uint16_t *table = malloc((size_t)m * sizeof(*table));
    uint32_t *pos = malloc((size_t)n * 2 * sizeof(*pos));
    if (!table || !pos) {
        free(table);
        free(pos);
        lb_err_set(err, "out of memory for a maglev table of %u slots", m);
        return -ENOMEM;
    }
    uint32_t *skip = pos + n;
    memset(table, 0xff, (size_t)m * sizeof(*table));
    for (uint32_t i = 0; i < n; i++) {
        const char *name = b->servers[i].name;
        size_t len = strlen(name);
        pos[i] = (uint32_t)(lb_hash64(name, len, CL_MAGLEV_SEED_OFFSET) % m);
        skip[i] = (uint32_t)(lb_hash64(name, len, CL_MAGLEV_SEED_SKIP) % (m - 1)) + 1;
    }

    /* pos[i] walks server i's permutation; m is prime and 0 < skip < m, so the walk visits
     * every slot and always finds a free one while the table is not full. */
    uint32_t filled = 0, max_w = 0;
    for (uint32_t i = 0; i < n; i++)
        max_w = b->servers[i].weight > max_w ? b->servers[i].weight : max_w;
    for (;;) {
        for (uint32_t t = 0; t < max_w; t++) {
            for (uint32_t i = 0; i < n; i++) {
                if (b->servers[i].weight <= t)
                    continue;
                uint32_t c = pos[i];
                while (table[c] != CL_MAGLEV_EMPTY) {
                    c += skip[i];
                    if (c >= m)
                        c -= m;
                }
                table[c] = (uint16_t)i;
                c += skip[i];
                pos[i] = c >= m ? c - m : c;
                if (++filled == m)
                    goto done;
            }
        }
    }
done:
    free(pos);
    b->u.maglev.table = table;
    b->u.maglev.size = m;
    return 0;
}

static void cl_maglev_destroy(struct cl_balancer *b)
{
    free(b->u.maglev.table);
    b->u.maglev.table = NULL;
}

/* Attempt @step reads the slot of *@pos, then moves *@pos to the key rehashed with the next
 * attempt number: the key itself first, then mix(key + a * REHASH) for a = 1, 2, ... */
static inline uint32_t cl_maglev_step(const struct cl_balancer *b, uint64_t key, uint32_t step,
                                      uint64_t *pos)
{
    const struct cl_maglev *mg = &b->u.maglev;
    uint32_t s = mg->table[*pos % mg->size];
    *pos = lb_hash_mix64(key + (uint64_t)(step + 1) * CL_MAGLEV_REHASH);
    return s;
}

static int cl_maglev_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                          const struct cl_bal_view *v)
{
    return cl_bal_walk(b, v, key, key, CL_MAGLEV_ATTEMPTS, cl_maglev_step);
}

const struct cl_bal_ops cl_bal_maglev_ops = {
    .build = cl_maglev_build,
    .destroy = cl_maglev_destroy,
    .pick = cl_maglev_pick,
    .weighted_tables = true,
};
