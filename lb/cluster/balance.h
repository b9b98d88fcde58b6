/*
 * Balancing: one interface, one file per algorithm (rr.c, least_conn.c, random_two.c,
 * maglev.c, ring_hash.c); balance.c dispatches.
 *
 * A struct cl_balancer covers one tier of a cluster: its primaries, or its backups. The
 * cluster code asks the primary tier first and the backup tier only when that returns
 * -ENOENT, so the algorithms know nothing of failover. A balancer's tables are immutable
 * after cl_balancer_new() (Maglev tables, rings and round robin's turn order are built
 * there, by the control thread, off the data path) and shared read-only by every worker.
 * The little mutable state a pick needs lives in a per-worker struct cl_bal_state (smooth
 * round robin's current weights, a random generator), except one atomic counter: round
 * robin's next turn, which every worker of the process takes with one fetch_add so that
 * consecutive requests see the servers in turn whichever worker accepted them. No pick
 * takes a lock.
 *
 * Health, drain, ejection and connection limits reach the algorithms only through the
 * view's usable() predicate; load through active(), slow start and `lbctl weight` through
 * weight(). Hash balancers never reshuffle on a usable() change: a key whose server is not
 * usable walks to the next candidate in a fixed per-key order, so only that server's keys
 * move, and they come back when it does. bounded_load walks the same way.
 */
#ifndef CL_BALANCE_H
#define CL_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/hash.h" /* lb_hash64: callers hash their keys with it */

struct cl_bal_server {
    const char *name; /* hash identity (Maglev, ring): a name, so an address change moves no key */
    uint32_t weight;  /* configured weight, 1..256 */
};

/* What a pick may read about the servers of the tier, by index 0..n-1. Called during the
 * pick only; each must be cheap, lock-free and must not block. */
struct cl_bal_view {
    bool (*usable)(const void *arg, uint32_t i);
    uint32_t (*active)(const void *arg, uint32_t i); /* connections or requests in flight */
    uint32_t (*weight)(const void *arg, uint32_t i); /* effective weight now, 0..256 */
    const void *arg;
};

struct cl_balancer;

/* Per worker, per balancer. Zero it, then cl_bal_state_init(). */
struct cl_bal_state {
    int64_t *current; /* smooth WRR: one per server */
    uint32_t n;
    uint32_t rotor;   /* tie rotation */
    uint64_t rng;     /* xorshift state, never 0 */
    bool peek;        /* read shared state, never advance it (lbctl explain); init clears it */
};

/*
 * Builds a balancer for @n servers (n >= 1) copied from @servers. @bounded_load is 0 (off)
 * or > 1.0 and only meaningful for hash algorithms; @table_size is Maglev's table size
 * (0 = default 65537; must be a prime >= 100 * n). Returns NULL with a message in @err.
 */
struct cl_balancer *cl_balancer_new(enum conf_balance algo, const struct cl_bal_server *servers,
                                    uint32_t n, double bounded_load, uint32_t table_size,
                                    struct lb_err *err);
void cl_balancer_free(struct cl_balancer *b);

uint32_t cl_balancer_size(const struct cl_balancer *b);

/* Whether @algo's tables hold the weights (Maglev slots, ring points, round robin's
 * precomputed turns), so that an operator weight change needs new tables. */
bool cl_balance_weighted_tables(enum conf_balance algo);

/* A singly linked list of replaced balancers, kept until their cluster goes (lb/cluster/cluster.c). */
struct cl_balancer *cl_balancer_next_retired(const struct cl_balancer *b);
void cl_balancer_set_next_retired(struct cl_balancer *b, struct cl_balancer *next);
enum conf_balance cl_balancer_algo(const struct cl_balancer *b);

/* 0 or -ENOMEM. @seed makes workers' random streams differ. */
int cl_bal_state_init(struct cl_bal_state *st, const struct cl_balancer *b, uint64_t seed);
void cl_bal_state_free(struct cl_bal_state *st);

/*
 * Picks a server. @key is the request's hash (lb_hash64 of its hash key) for hash
 * algorithms and ignored by the others. Returns the index, or -ENOENT when no server of the
 * tier is usable (or, with bounded load, every usable one is at its cap).
 */
int cl_balancer_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                     const struct cl_bal_view *v);

#endif
