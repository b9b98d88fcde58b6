/*
 * Operator purges of the L1 cache (lbctl cache purge) and the board that carries them from
 * the control thread to every worker's cache (lb/cache/purge.c, lb/cache/board.c).
 *
 * What a purge matches: entries whose request-target, as the client sent it, equals PATH
 * (query included: "/a" does not remove "/a?x=1"), or starts with PREFIX when the operator
 * wrote PREFIX then '*' (as in "/api/" then '*'; "/a?" then '*' for the query variants of
 * /a; "/" then '*' for everything). Every variant (Vary) of a matching
 * target goes. With a host, only entries whose Host (letter case ignored) is that host, or
 * that host and any port when the host given has none ("example.com" matches
 * "example.com:8080"); without one, every host.
 *
 * Why a board: an L1 cache belongs to one worker thread and has no locks. The control thread
 * posts a purge on the board; each worker applies it to its own cache at its next tick
 * (100 ms) and writes how many entries it removed, then the control thread reads the counts.
 * Workers also publish their cache counters there every tick, for lbctl cache stats and
 * /metrics, so that reading them never touches a cache.
 */
#ifndef CACHE_PURGE_H
#define CACHE_PURGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb/cache/cache.h"

#define CACHE_PURGE_PATH_MAX 2048 /* longest PATH or PREFIX, the '*' left out */
#define CACHE_PURGE_HOST_MAX 256  /* longest host */
#define CACHE_BOARD_QUEUE 16      /* purges posted and not yet applied by every worker */

struct cache_purge {
    uint32_t path_len;
    uint32_t host_len; /* 0: every host */
    bool prefix;       /* path is a prefix: every target that starts with it */
    char path[CACHE_PURGE_PATH_MAX];
    char host[CACHE_PURGE_HOST_MAX];
};

/*
 * Reads a purge argument @arg (@len bytes): an absolute path "/..." of visible ASCII, with
 * one optional '*' at its very end making it a prefix, and an optional @host (@hlen bytes,
 * @hlen 0: every host; @host may then be NULL) of letters, digits and "-._:[]". Pure. Returns 0
 * with @p filled, or -EINVAL with the reason in @err (@errlen bytes).
 */
int cache_purge_set(struct cache_purge *p, const char *arg, size_t len, const char *host,
                    size_t hlen, char *err, size_t errlen);

/* True when an entry for @host + @target is one @p removes (see above). Pure. */
bool cache_purge_match(const struct cache_purge *p, const char *host, size_t hlen,
                       const char *target, size_t tlen);

/*
 * Removes every entry of @c that @p matches (counted in cache_stats.purged) and marks the
 * pending fills it matches so that what they store is dropped at its first lookup: an answer
 * fetched before the purge is not served after it. Walks the whole table. Returns how many
 * entries went. Worker thread of @c.
 */
size_t cache_purge(struct cache *c, const struct cache_purge *p);

struct cache_board; /* opaque, one per generation (struct lb_runtime) */

/* A board for @nworkers workers. Returns 0 with *@out set, -EINVAL or -ENOMEM. */
int cache_board_create(uint32_t nworkers, struct cache_board **out);
/* NULL is allowed. Call once no worker ticks any more. */
void cache_board_free(struct cache_board *b);

/*
 * Worker @wi's tick: applies to @c (NULL: a worker without a cache, counted 0) the purges
 * posted since its last call, records their counts, and publishes @c's counters. Cheap when
 * nothing was posted (one atomic load). NULL @b is allowed.
 */
void cache_board_tick(struct cache_board *b, uint32_t wi, struct cache *c);

/*
 * Control thread: posts @p for every worker. Returns 0 with its sequence number in *@seq, or
 * -EBUSY when a worker has CACHE_BOARD_QUEUE purges still to apply (it is not ticking).
 */
int cache_board_post(struct cache_board *b, const struct cache_purge *p, uint64_t *seq);

/*
 * How far purge @seq went: returns the number of workers that applied it; @removed
 * (nworkers slots, or NULL) gets each one's count, UINT64_MAX where it is still pending.
 */
uint32_t cache_board_result(const struct cache_board *b, uint64_t seq, uint64_t *removed);

/* Workers of @b. */
uint32_t cache_board_workers(const struct cache_board *b);
/* Purges posted so far. */
uint64_t cache_board_purges(const struct cache_board *b);
/* Worker @wi's counters as of its last tick (zeros before its first, or without a cache);
 * false when that worker has no cache. */
bool cache_board_stats(const struct cache_board *b, uint32_t wi, struct cache_stats *out);

#endif
