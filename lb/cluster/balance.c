/*
 * The balancer front: validates and copies the servers, builds the algorithm's tables
 * through its ops, sets up per-worker state, and dispatches picks. Also owns the bounded-load
 * cap that both hash balancers share. The hash itself (lb_hash64) is conf/hash.h's.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/balance.h"
#include "lb/cluster/algo.h"

static const struct cl_bal_ops *const cl_bal_algos[] = {
    [CONF_BAL_ROUND_ROBIN] = &cl_bal_rr_ops,        /* rr.c */
    [CONF_BAL_LEAST_CONN] = &cl_bal_least_conn_ops, /* least_conn.c */
    [CONF_BAL_RANDOM_TWO] = &cl_bal_random_two_ops, /* random_two.c */
    [CONF_BAL_MAGLEV] = &cl_bal_maglev_ops,         /* maglev.c */
    [CONF_BAL_RING_HASH] = &cl_bal_ring_hash_ops,   /* ring_hash.c */
};

static const struct cl_bal_ops *cl_bal_ops_of(enum conf_balance algo)
{
    if ((unsigned)algo >= sizeof(cl_bal_algos) / sizeof(cl_bal_algos[0]))
        return NULL;
    return cl_bal_algos[algo];
}

bool cl_balance_weighted_tables(enum conf_balance algo)
{
    const struct cl_bal_ops *ops = cl_bal_ops_of(algo);
    return ops && ops->weighted_tables;
}

uint32_t cl_bal_load_cap(const struct cl_balancer *b, const struct cl_bal_view *v,
                         uint32_t *n_usable)
{
    uint64_t total = 0;
    uint32_t nu = 0;

    for (uint32_t i = 0; i < b->n; i++) {
        if (cl_bal_weight(v, i) == 0)
            continue;
        total += v->active(v->arg, i);
        nu++;
    }
    *n_usable = nu;
    if (nu == 0)
        return 0;
    /* ceil(C * (total + 1) / nu) with C = load_milli / 1000; 128 bits because total can
     * reach 2^48 in theory and C 100. */
    unsigned __int128 num = (unsigned __int128)b->load_milli * (total + 1);
    unsigned __int128 den = (unsigned __int128)1000 * nu;
    unsigned __int128 cap = (num + den - 1) / den;
    return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

bool cl_bal_any_candidate(const struct cl_balancer *b, const struct cl_bal_view *v, uint32_t cap)
{
    for (uint32_t i = 0; i < b->n; i++)
        if (cl_bal_candidate(v, i, cap))
            return true;
    return false;
}

/* Copies @servers and their names into one allocation, so the caller's config may go. */
static int cl_bal_copy_servers(struct cl_balancer *b, const struct cl_bal_server *servers,
                               uint32_t n, bool need_names, struct lb_err *err)
{
    size_t names = 0;

    for (uint32_t i = 0; i < n; i++) {
        if (servers[i].weight < 1 || servers[i].weight > CL_BAL_MAX_WEIGHT) {
            lb_err_set(err, "server %u (%s): weight %u is not in 1..%u", i,
                       servers[i].name ? servers[i].name : "?", servers[i].weight,
                       CL_BAL_MAX_WEIGHT);
            return -EINVAL;
        }
        if (!servers[i].name) {
            if (need_names) {
                lb_err_set(err, "server %u has no name (hash balancers hash names)", i);
                return -EINVAL;
            }
            continue;
        }
        names += strlen(servers[i].name) + 1;
    }

    b->servers = malloc(n * sizeof(*b->servers) + names);
    if (!b->servers) {
        lb_err_set(err, "out of memory for %u servers", n);
        return -ENOMEM;
    }
    char *p = (char *)(b->servers + n);
    for (uint32_t i = 0; i < n; i++) {
        b->servers[i].weight = servers[i].weight;
        b->servers[i].name = NULL;
        b->total_weight += servers[i].weight;
        if (servers[i].name) {
            size_t len = strlen(servers[i].name) + 1;
            memcpy(p, servers[i].name, len);
            b->servers[i].name = p;
            p += len;
        }
    }
    return 0;
}

struct cl_balancer *cl_balancer_new(enum conf_balance algo, const struct cl_bal_server *servers,
                                    uint32_t n, double bounded_load, uint32_t table_size,
                                    struct lb_err *err)
{
    struct cl_balancer *b = NULL;

    if (!cl_bal_ops_of(algo)) {
        lb_err_set(err, "unknown balancing algorithm %d", (int)algo);
        goto fail;
    }
    if (n < 1 || n > CL_BAL_MAX_SERVERS || !servers) {
        lb_err_set(err, "a balancer needs 1..%u servers, not %u", CL_BAL_MAX_SERVERS, n);
        goto fail;
    }
    bool hash = conf_balance_is_hash(algo);
    /* Written so that NaN fails too. */
    if (hash && bounded_load != 0 && !(bounded_load > 1.0 && bounded_load <= CL_BAL_MAX_LOAD)) {
        lb_err_set(err, "bounded_load %g must be 0 (off) or in (1, %g]", bounded_load,
                   CL_BAL_MAX_LOAD);
        goto fail;
    }

    b = calloc(1, sizeof(*b));
    if (!b) {
        lb_err_set(err, "out of memory");
        goto fail;
    }
    b->ops = cl_bal_algos[algo];
    b->algo = algo;
    b->n = n;
    /* Rounded to thousandths: configs write 1.25, and an exact integer keeps the cap free of
     * floating point. Hash balancers only; the others have no per-key order to walk. */
    b->load_milli = hash && bounded_load != 0 ? (uint32_t)(bounded_load * 1000.0 + 0.5) : 0;
    if (cl_bal_copy_servers(b, servers, n, hash, err) < 0)
        goto fail;
    if (b->ops->build && b->ops->build(b, table_size, err) < 0)
        goto fail;
    return b;

fail:
    cl_balancer_free(b);
    return NULL;
}

void cl_balancer_free(struct cl_balancer *b)
{
    if (!b)
        return;
    if (b->ops && b->ops->destroy)
        b->ops->destroy(b);
    free(b->servers);
    b->servers = NULL;
    free(b);
}

uint32_t cl_balancer_size(const struct cl_balancer *b)
{
    return b->n;
}

enum conf_balance cl_balancer_algo(const struct cl_balancer *b)
{
    return b->algo;
}

int cl_bal_state_init(struct cl_bal_state *st, const struct cl_balancer *b, uint64_t seed)
{
    st->current = NULL;
    if (b->ops->per_server_state) {
        st->current = calloc(b->n, sizeof(*st->current));
        if (!st->current)
            return -ENOMEM;
    }
    st->n = b->n;
    st->peek = false;
    /* Different seeds start ties and random streams at different places, so the workers do
     * not all send their first requests to the same server. */
    uint64_t m = lb_hash_mix64(seed ^ LB_H_K2);
    st->rotor = (uint32_t)(m % b->n);
    st->rng = lb_hash_mix64(m + LB_H_K3);
    if (st->rng == 0)
        st->rng = LB_H_K1;
    if (b->ops->state_init)
        b->ops->state_init(b, st, seed);
    return 0;
}

void cl_bal_state_free(struct cl_bal_state *st)
{
    free(st->current);
    st->current = NULL;
    st->n = 0;
}

int cl_balancer_pick(const struct cl_balancer *b, struct cl_bal_state *st, uint64_t key,
                     const struct cl_bal_view *v)
{
    /* A state belongs to one balancer: a worker re-inits it when a reload swaps balancers. */
    assert(st->n == b->n);
    return b->ops->pick(b, st, key, v);
}

struct cl_balancer *cl_balancer_next_retired(const struct cl_balancer *b)
{
    return b->next_retired;
}

void cl_balancer_set_next_retired(struct cl_balancer *b, struct cl_balancer *next)
{
    b->next_retired = next;
}
