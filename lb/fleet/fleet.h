/*
 * Fleet state (lb/fleet): drains and weights shared by every lb instance that names the same
 * global.redis, and each instance's heartbeat. A thread of its own talks to Redis with
 * blocking hiredis calls bounded by global.redis.timeout, so that a slow or dead Redis never
 * holds the control loop or the data path; the control loop hands it local changes and takes
 * the changes of other instances from it, applying them as lbctl would (lb/admin).
 *
 * With Redis unreachable every instance keeps serving with its last state; a local change is
 * applied at once and written to Redis when it is back, unless a newer one is there already.
 */
#ifndef FLEET_FLEET_H
#define FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb/fleet/wire.h"

struct fleet;
struct lb_jbuf;
struct lb_err;

/* Starts the fleet of @cf's global.redis (NULL with no error when it has none), and makes it
 * the one fleet_current() returns. */
struct fleet *fleet_start(const struct conf *cf, struct lb_err *err);

/* True when @f was started from the same global.redis as @cf has (a reload keeps it). */
bool fleet_same_conf(const struct fleet *f, const struct conf *cf);

/* Stops the thread and frees @f (NULL is fine). */
void fleet_stop(struct fleet *f);

/* The running fleet, or NULL. */
struct fleet *fleet_current(void);

/* Waits until the fleet state was read once (or Redis was found unreachable), at most
 * @timeout_ms: what an instance does before it takes traffic. */
void fleet_wait_first_read(struct fleet *f, uint64_t timeout_ms);

/* A change made on this instance (lbctl): stamps c->t and c->instance, remembers it as the
 * latest for its server, and queues it for Redis. *@reachable: Redis answered lately;
 * *@live: the instances with a heartbeat, this one included. */
void fleet_local(struct fleet *f, struct fleet_change *c, bool *reachable, unsigned *live);

/* Takes up to @max changes of other instances to apply, oldest first. */
size_t fleet_take(struct fleet *f, struct fleet_change *out, size_t max);

/* This instance applied @c (taken with fleet_take): acknowledged in Redis. */
void fleet_applied(struct fleet *f, const struct fleet_change *c);

/* The instances that acknowledged change @t made here (this one included), and the live
 * instances when last counted; false when @t is unknown (too old, or not made here). */
bool fleet_acks(struct fleet *f, uint64_t t, unsigned *acks, unsigned *live);

/* This instance's servers for its heartbeat: lines "CLUSTER SERVER STATE ACTIVE\n". */
void fleet_set_view(struct fleet *f, const char *text, size_t len);

/* True when the last Redis exchange succeeded. */
bool fleet_up(const struct fleet *f);

/*
 * Worker: a successful unsafe method removed @host + @target from this instance's caches;
 * the fleet thread tells the other instances (inval.c). Never waits: when too many are
 * waiting it is dropped and counted. Does nothing without a fleet.
 */
void fleet_inval_send(const char *host, size_t hlen, const char *target, size_t tlen);

struct cache_board;
/* Control thread: posts the other instances' invalidations on @b (NULL: none is cached
 * here, they go) as exact purges; those the board has no room for wait for the next call. */
void fleet_inval_apply(struct cache_board *b);

/* Invalidations published, received from other instances, and dropped (a ring full, Redis
 * failing, or a host or target too long to send). */
void fleet_inval_counts(uint64_t *sent, uint64_t *received, uint64_t *dropped);

/* The fleet as JSON for lbctl fleet: {"up":..,"instance":..,"members":[...]}. */
void fleet_describe(struct fleet *f, struct lb_jbuf *out);

#endif
