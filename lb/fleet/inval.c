/*
 * Cache invalidations across the fleet (fleet.h): a worker whose unsafe request succeeded
 * hands HOST + TARGET to the fleet thread through a lock-free ring (a worker never waits:
 * when the ring is full the invalidation is dropped and counted); the fleet thread publishes
 * them on the events channel; the events of other instances go through a second, locked ring
 * (fleet thread and control thread only) to the control thread, which posts each as an exact
 * purge on the cache board, so that every worker applies it at its next tick.
 *
 * Both rings are process-wide rather than the fleet's own: a worker may still hold the
 * fleet pointer while a reload stops that fleet; what it pushes then waits for the next one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lb/cache/purge.h"
#include "lb/core/log.h"
#include "lb/fleet/internal.h"

_Static_assert(FLEET_INVAL_HOST_MAX <= CACHE_PURGE_HOST_MAX, "a host fits a purge");
_Static_assert(FLEET_INVAL_TARGET_MAX <= CACHE_PURGE_PATH_MAX, "a target fits a purge");

#define RING 64 /* a power of two */

/*
 * The workers' ring (many producers, the fleet thread consuming): slot i's turn tells whose
 * it is. turn == pos: free for the producer of position pos; turn == pos + 1: filled, for the
 * consumer. Turns are stored minus the slot's index so that the zeroed ring starts right.
 */
static struct {
    struct {
        _Atomic size_t turn;
        struct fleet_inval v;
    } s[RING];
    _Atomic size_t head; /* next position to fill */
    size_t tail;         /* next position to read: the fleet thread's */
} out;

/* Other instances' invalidations for the control thread. */
static struct {
    pthread_mutex_t mu;
    struct fleet_inval v[RING];
    size_t first, n;
} in = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint64_t n_sent, n_received, n_dropped;

static size_t turn(size_t i)
{
    return atomic_load_explicit(&out.s[i].turn, memory_order_acquire) + i;
}

static void set_turn(size_t i, size_t t)
{
    atomic_store_explicit(&out.s[i].turn, t - i, memory_order_release);
}

void fleet_inval_send(const char *host, size_t hlen, const char *target, size_t tlen)
{
    if (!fleet_current())
        return; /* no global.redis: nobody to tell */
    if (!fleet_inval_ok(host, hlen, target, tlen)) {
        atomic_fetch_add_explicit(&n_dropped, 1, memory_order_relaxed);
        return;
    }
    size_t pos = atomic_load_explicit(&out.head, memory_order_relaxed);
    for (;;) {
        size_t t = turn(pos % RING);
        if (t == pos) {
            if (atomic_compare_exchange_weak_explicit(&out.head, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if ((ptrdiff_t)(t - pos) < 0) {
            atomic_fetch_add_explicit(&n_dropped, 1, memory_order_relaxed);
            return; /* full: the fleet thread is behind (or Redis is down) */
        } else {
            pos = atomic_load_explicit(&out.head, memory_order_relaxed);
        }
    }
    struct fleet_inval *v = &out.s[pos % RING].v;
    memcpy(v->host, host, hlen);
    memcpy(v->target, target, tlen);
    v->host_len = (uint32_t)hlen;
    v->target_len = (uint32_t)tlen;
    set_turn(pos % RING, pos + 1);
}

/* The oldest invalidation a worker queued, into @v; false when none. Fleet thread. */
static bool out_take(struct fleet_inval *v)
{
    size_t pos = out.tail;
    if (turn(pos % RING) != pos + 1)
        return false;
    *v = out.s[pos % RING].v;
    set_turn(pos % RING, pos + RING);
    out.tail = pos + 1;
    return true;
}

int fleet_inval_publish(struct fleet *f)
{
    static struct fleet_inval v;
    static char msg[FLEET_INVAL_HOST_MAX + FLEET_INVAL_TARGET_MAX + CONF_NAME_MAX + 16];
    char ev[512];
    snprintf(ev, sizeof(ev), "%sfleet:events", f->prefix);
    int n = 0;
    while (n < RING && out_take(&v)) {
        snprintf(v.instance, sizeof(v.instance), "%s", f->instance);
        int len = fleet_inval_format(&v, msg, sizeof(msg));
        if (len < 0)
            continue;
        redisAppendCommand(f->cmd, "PUBLISH %s %b", ev, msg, (size_t)len);
        n++;
    }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(f->cmd, (void **)&r) != REDIS_OK) {
            atomic_fetch_add_explicit(&n_dropped, (uint64_t)(n - i), memory_order_relaxed);
            return -1;
        }
        atomic_fetch_add_explicit(r->type == REDIS_REPLY_ERROR ? &n_dropped : &n_sent, 1,
                                  memory_order_relaxed);
        freeReplyObject(r);
    }
    return 0;
}

void fleet_inval_receive(struct fleet *f, const struct fleet_inval *v)
{
    if (!strcmp(v->instance, f->instance))
        return; /* ours: applied here when it happened */
    pthread_mutex_lock(&in.mu);
    bool room = in.n < RING;
    if (room)
        in.v[(in.first + in.n++) % RING] = *v;
    pthread_mutex_unlock(&in.mu);
    atomic_fetch_add_explicit(room ? &n_received : &n_dropped, 1, memory_order_relaxed);
}

void fleet_inval_apply(struct cache_board *b)
{
    static struct cache_purge p; /* the control thread's */
    for (;;) {
        pthread_mutex_lock(&in.mu);
        bool any = in.n > 0;
        if (any) {
            const struct fleet_inval *v = &in.v[in.first];
            memset(&p, 0, sizeof(p));
            memcpy(p.path, v->target, v->target_len);
            p.path_len = v->target_len;
            memcpy(p.host, v->host, v->host_len);
            p.host_len = v->host_len;
        }
        pthread_mutex_unlock(&in.mu);
        uint64_t seq;
        if (!any || (b && cache_board_post(b, &p, &seq) == -EBUSY))
            return; /* none, or the workers are behind: the next turn tries again */
        pthread_mutex_lock(&in.mu);
        in.first = (in.first + 1) % RING;
        in.n--;
        pthread_mutex_unlock(&in.mu);
    }
}

void fleet_inval_counts(uint64_t *sent, uint64_t *received, uint64_t *dropped)
{
    *sent = atomic_load_explicit(&n_sent, memory_order_relaxed);
    *received = atomic_load_explicit(&n_received, memory_order_relaxed);
    *dropped = atomic_load_explicit(&n_dropped, memory_order_relaxed);
}
