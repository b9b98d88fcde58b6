/*
 * The purge board (see purge.h): the control thread posts purges into a small ring, each
 * worker applies the ones it has not applied yet at its tick, writes its count per purge and
 * publishes its cache counters. The ring's slots are guarded by a mutex (a purge is rare, and
 * a worker takes it only when a purge is waiting); everything a worker reports is atomics,
 * so the control thread reads them without waiting on anybody.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/purge.h"

#define NSTATS (sizeof(struct cache_stats) / sizeof(uint64_t))
_Static_assert(sizeof(struct cache_stats) % sizeof(uint64_t) == 0,
               "struct cache_stats is published as an array of uint64_t");

struct board_worker {
    _Atomic uint64_t done;                       /* the last purge it applied */
    _Atomic uint64_t removed[CACHE_BOARD_QUEUE]; /* purge seq's count at seq % QUEUE */
    _Atomic uint64_t st[NSTATS];                 /* struct cache_stats, each tick */
    _Atomic bool has_cache;
    char pad[64]; /* workers write here each tick: keep them off each other's lines */
};

struct cache_board {
    pthread_mutex_t mu;                         /* guards reqs[] */
    _Atomic uint64_t seq;                       /* purges posted; the last one's number */
    struct cache_purge reqs[CACHE_BOARD_QUEUE]; /* purge seq at seq % QUEUE */
    uint32_t nworkers;
    struct board_worker w[];
};

int cache_board_create(uint32_t nworkers, struct cache_board **out)
{
    if (nworkers == 0 || nworkers > 4096)
        return -EINVAL;
    struct cache_board *b = calloc(1, sizeof(*b) + nworkers * sizeof(b->w[0]));
    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    b->nworkers = nworkers;
    *out = b;
    return 0;
}

void cache_board_free(struct cache_board *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void publish(struct board_worker *me, const struct cache *c)
{
    struct cache_stats st;
    uint64_t v[NSTATS];
    if (!c)
        return;
    cache_stats_get(c, &st);
    memcpy(v, &st, sizeof(v));
    for (size_t i = 0; i < NSTATS; i++)
        atomic_store_explicit(&me->st[i], v[i], memory_order_relaxed);
    atomic_store_explicit(&me->has_cache, true, memory_order_relaxed);
}

void cache_board_tick(struct cache_board *b, uint32_t wi, struct cache *c)
{
    if (!b || wi >= b->nworkers)
        return;
    struct board_worker *me = &b->w[wi];
    uint64_t seq = atomic_load_explicit(&b->seq, memory_order_acquire);
    uint64_t done = atomic_load_explicit(&me->done, memory_order_relaxed);
    if (done == seq) {
        publish(me, c);
        return;
    }
    static _Thread_local struct cache_purge p; /* 2 KiB: off the worker's stack */
    for (uint64_t s = done + 1; s <= seq; s++) {
        pthread_mutex_lock(&b->mu);
        p = b->reqs[s % CACHE_BOARD_QUEUE];
        pthread_mutex_unlock(&b->mu);
        size_t n = c ? cache_purge(c, &p) : 0;
        atomic_store_explicit(&me->removed[s % CACHE_BOARD_QUEUE], n, memory_order_relaxed);
    }
    publish(me, c); /* before done: whoever sees done sees the counters after the purge */
    atomic_store_explicit(&me->done, seq, memory_order_release);
}

int cache_board_post(struct cache_board *b, const struct cache_purge *p, uint64_t *seq)
{
    uint64_t next = atomic_load_explicit(&b->seq, memory_order_relaxed) + 1;
    for (uint32_t i = 0; i < b->nworkers; i++)
        if (next - atomic_load_explicit(&b->w[i].done, memory_order_acquire) > CACHE_BOARD_QUEUE)
            return -EBUSY;
    pthread_mutex_lock(&b->mu);
    b->reqs[next % CACHE_BOARD_QUEUE] = *p;
    pthread_mutex_unlock(&b->mu);
    atomic_store_explicit(&b->seq, next, memory_order_release);
    *seq = next;
    return 0;
}

uint32_t cache_board_result(const struct cache_board *b, uint64_t seq, uint64_t *removed)
{
    uint32_t applied = 0;
    for (uint32_t i = 0; i < b->nworkers; i++) {
        struct board_worker *w = (struct board_worker *)&b->w[i];
        bool done = atomic_load_explicit(&w->done, memory_order_acquire) >= seq;
        applied += done;
        if (removed)
            removed[i] = done ? atomic_load_explicit(&w->removed[seq % CACHE_BOARD_QUEUE],
                                                     memory_order_relaxed)
                              : UINT64_MAX;
    }
    return applied;
}

uint32_t cache_board_workers(const struct cache_board *b)
{
    return b->nworkers;
}

uint64_t cache_board_purges(const struct cache_board *b)
{
    return atomic_load_explicit(&((struct cache_board *)b)->seq, memory_order_relaxed);
}

bool cache_board_stats(const struct cache_board *b, uint32_t wi, struct cache_stats *out)
{
    struct board_worker *w = (struct board_worker *)&b->w[wi];
    uint64_t v[NSTATS];
    for (size_t i = 0; i < NSTATS; i++)
        v[i] = atomic_load_explicit(&w->st[i], memory_order_relaxed);
    memcpy(out, v, sizeof(v));
    return atomic_load_explicit(&w->has_cache, memory_order_relaxed);
}
