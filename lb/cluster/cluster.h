/*
 * Runtime clusters: the shared server table and server selection.
 *
 * Each server's live state (up/down/draining/ejected flags, effective weight, active
 * connections, counters) is a set of atomics in one table shared by all workers and the
 * control thread: workers read it on every pick and bump the counters, health checks and
 * lbctl write the flags and weights. Nothing on this path takes a lock.
 *
 * A cluster owns two balancer tiers (lb/cluster/balance.h): its primaries and its backups. A pick
 * asks the primaries first; only when none is usable does it ask the backups, so backups
 * get traffic exactly while no primary can take it and give it back as soon as one can.
 */
#ifndef CL_CLUSTER_H
#define CL_CLUSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/cluster/balance.h"

#define CL_SRV_F_DOWN 0x0001     /* active health checks failed (fall reached) */
#define CL_SRV_F_DRAINING 0x0002 /* operator drain: no new connections or requests */
#define CL_SRV_F_EJECTED 0x0004  /* passive detection: too many consecutive failures */

/*
 * Request latency histogram buckets, upper bounds in microseconds (Prometheus's "le", shown
 * in seconds). Fixed so that every cluster's histogram aggregates with every other's; the
 * last, implicit bucket is +Inf.
 */
#define CL_LAT_NBUCKETS 14
extern const uint64_t cl_lat_bounds_us[CL_LAT_NBUCKETS];

struct cl_latency {
    _Atomic uint64_t bucket[CL_LAT_NBUCKETS + 1]; /* not cumulative; [CL_LAT_NBUCKETS]: +Inf */
    _Atomic uint64_t sum_us;
};

struct cl_server {
    const struct conf_server *cf; /* name, address, configured weight, backup */
    uint32_t idx;                 /* in its cluster */
    _Atomic uint32_t flags;       /* CL_SRV_F_*; 0 means usable */
    _Atomic uint32_t weight;      /* effective weight (lbctl weight, slow start) */
    _Atomic uint32_t op_weight;   /* lbctl weight; 0: the configured weight. Slow start ramps
                                     toward this, so neither overwrites the other */
    _Atomic uint32_t active;      /* connections (L4) or requests (L7) in flight */
    _Atomic uint32_t consecutive_failures;
    _Atomic uint64_t picks; /* times chosen */
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t retries; /* requests that failed here and were sent again */
    _Atomic uint64_t connect_queued; /* requests that waited for its connect window (http) */
    _Atomic uint64_t resp[5]; /* responses from this server by class: 1xx..5xx */
    /* [listener][class]: the same responses split by the listener that took the request, so
     * that /metrics can label them as DESIGN.md's example does. NULL until
     * cl_cluster_stats_init() (unit tests that never call it just lose the split). */
    _Atomic uint64_t (*resp_by_listener)[5];
    uint32_t nlisteners;
    /* The last active probe as the control thread saw it (lb/core/health.c writes these so that
     * other threads need not ask health/, whose tables are the control thread's own). */
    _Atomic uint32_t probe_result; /* CL_PROBE_* */
    _Atomic uint32_t probe_latency_us;
    /* check: redis: the member traffic goes to, 0 (the address) or i (cf->replicas[i - 1]):
     * the one whose ROLE says master, written by the control thread. */
    _Atomic uint32_t member;
    /* protocol: redis: commands answered with an error (by the shard, or by lb for it), and
     * the round trip of each command to the shard; http: each request answered by the server,
     * first request byte to last response byte (the status page's per-server p99). */
    _Atomic uint64_t errors;
    struct cl_latency latency;
};

/* The address traffic for @s goes to now: its address, or the replica that is master. */
static inline const struct conf_addr *cl_server_addr(const struct cl_server *s)
{
    uint32_t m = atomic_load_explicit(&s->member, memory_order_relaxed);
    return m && m <= s->cf->nreplicas ? &s->cf->replicas[m - 1] : &s->cf->addr;
}

#define CL_PROBE_NONE 0 /* no probe yet, or the cluster has no active checks */
#define CL_PROBE_OK 1
#define CL_PROBE_FAIL 2

struct cl_tier {
    /* NULL when the tier is empty. Swapped whole (cl_cluster_reweigh) when an operator
     * weight changes a hash balancer's table; pickers load it once per pick. */
    struct cl_balancer *_Atomic bal;
    struct cl_balancer *retired; /* replaced tables, freed with the cluster: a worker may
                                    still be reading one (a few per operator change) */
    uint32_t *map;               /* tier index -> cluster server index */
    uint32_t n;
};

struct cl_cluster {
    const struct conf_cluster *cf;
    struct cl_server *servers;
    uint32_t n;
    struct cl_tier tiers[2];   /* [0] primaries, [1] backups */
    struct cl_latency latency; /* requests answered by this cluster's servers */
};

/* One per worker and cluster: the balancers' mutable state. */
struct cl_cluster_wstate {
    struct cl_bal_state st[2];
};

/* Builds @c from @cf. Returns 0 or -errno with a message in @err. */
int cl_cluster_init(struct cl_cluster *c, const struct conf_cluster *cf, struct lb_err *err);
void cl_cluster_destroy(struct cl_cluster *c);

/* Gives every server of @c its per-listener response counters (@nlisteners of them).
 * Startup only. Returns 0 or -ENOMEM. */
int cl_cluster_stats_init(struct cl_cluster *c, uint32_t nlisteners);

int cl_cluster_wstate_init(struct cl_cluster_wstate *ws, const struct cl_cluster *c, uint64_t seed);
void cl_cluster_wstate_free(struct cl_cluster_wstate *ws);

/* After init, for `lbctl explain`: picks through @ws read round robin's next fleet-wide turn
 * without taking it, so explaining a request does not move the rotation real requests see. */
static inline void cl_cluster_wstate_peek(struct cl_cluster_wstate *ws)
{
    ws->st[0].peek = true;
    ws->st[1].peek = true;
}

/* Servers a pick must not return (already tried by this request or connection). */
struct cl_exclude {
    uint32_t idx[8];
    uint32_t n;
};

/*
 * Picks a usable server not in @ex (may be NULL) for hash @key. Returns the server index,
 * or -ENOENT when no primary or backup can take it. Does not touch the active count: the
 * caller increments it when it commits to the server (cl_server_acquire).
 */
int cl_cluster_pick(const struct cl_cluster *c, struct cl_cluster_wstate *ws, uint64_t key,
                    const struct cl_exclude *ex);

/*
 * The server that owns hash @key among the primaries, whatever their health: a sharded
 * store's key lives on that server only, so it must not move when the server is down
 * (lb/redis). -ENOENT when the cluster has no primary.
 */
int cl_cluster_owner(const struct cl_cluster *c, struct cl_cluster_wstate *ws, uint64_t key);

bool cl_server_usable(const struct cl_cluster *c, const struct cl_server *s);

/*
 * For balancers whose tables hold the weights (maglev, ring_hash, round_robin's fleet-wide
 * turn order; cl_balance_weighted_tables): builds the tables again from each server's
 * operator weight (lbctl weight; the configured one when unset) and swaps them in, off the
 * data path. Call it after every operator weight change, whatever the algorithm: it returns
 * 0 at once for the balancers that read weights live. Until it runs, round robin still
 * honours the new weight, from each worker's own rotation instead of the shared one.
 * Slow start needs no call: round robin falls back to the per-worker rotation while a
 * weight ramps and returns to the shared order when the ramp ends.
 * Control thread only. Returns 0 or -errno with a message in @err.
 */
int cl_cluster_reweigh(struct cl_cluster *c, struct lb_err *err);

/* Reload: @dst (new generation) takes @src's down and drain flags, operator weight and
 * counters. Not its active count (connections stay with their generation) nor an
 * ejection (passive detection starts over). */
void cl_server_carry(struct cl_server *dst, const struct cl_server *src);

/* "draining", "down", "ejected", "backup" or "up": the state people see (lbctl, metrics). */
const char *cl_server_state(const struct cl_server *s);

static inline void cl_server_acquire(struct cl_server *s)
{
    atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->picks, 1, memory_order_relaxed);
}

static inline void cl_server_release(struct cl_server *s)
{
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_relaxed);
}

/*
 * Data path, L7: server @s sent the final response @status (100..599) to a request that came
 * in on listener @listener (index in conf->listeners). Relaxed atomics, no lock. Statuses
 * outside 100..599 are not counted.
 */
static inline void cl_server_count_status(struct cl_server *s, uint32_t listener, int status)
{
    if (status < 100 || status > 599)
        return;
    uint32_t k = (uint32_t)status / 100 - 1;
    atomic_fetch_add_explicit(&s->resp[k], 1, memory_order_relaxed);
    if (s->resp_by_listener && listener < s->nlisteners)
        atomic_fetch_add_explicit(&s->resp_by_listener[listener][k], 1, memory_order_relaxed);
}

/* Data path: a request that failed on @s is being retried (on another server). */
static inline void cl_server_count_retry(struct cl_server *s)
{
    atomic_fetch_add_explicit(&s->retries, 1, memory_order_relaxed);
}

/* Data path: one request answered by a server of @c took @us microseconds, from its first
 * byte to the end of the response. Two relaxed atomic adds. */
static inline void cl_latency_observe(struct cl_latency *h, uint64_t us)
{
    uint32_t i = 0;
    while (i < CL_LAT_NBUCKETS && us > cl_lat_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

static inline void cl_cluster_observe_latency(struct cl_cluster *c, uint64_t us)
{
    cl_latency_observe(&c->latency, us);
}

#endif
