/*
 * Per-client-address limits of a listener (`limits: { per_ip_connections, per_ip_rate }`):
 * one fixed table per listener, shared by every worker, of counters picked by a hash of the
 * client's address. The table never grows: spoofed or countless addresses only share
 * counters (a collision makes two addresses share one budget, never lets one exceed it).
 * Lock-free: relaxed atomics and a compare-and-swap per rate check.
 */
#ifndef LB_LIMITS_H
#define LB_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define LB_LIMIT_SLOTS 16384 /* counters per listener (a power of two) */

struct lb_limit_slot {
    _Atomic uint32_t conns;
    _Atomic uint64_t rate; /* second (high 32 bits) and requests in it (low 32) */
};

struct lb_limits {
    uint32_t max_conns; /* 0: no connection limit */
    uint32_t max_rate;  /* per second; 0: no rate limit */
    _Atomic uint64_t refused_conns, refused_rate;
    struct lb_limit_slot slots[LB_LIMIT_SLOTS];
};

/* A table for @max_conns connections and @max_rate requests a second per address, or NULL
 * when both are 0 or memory is short. */
struct lb_limits *lb_limits_new(uint32_t max_conns, uint32_t max_rate);
void lb_limits_free(struct lb_limits *l);

/* One more connection from the address hashing to @h: true (counted: give it back with
 * lb_limit_conn_put) or false (over the limit, not counted). */
bool lb_limit_conn_take(struct lb_limits *l, uint64_t h);
void lb_limit_conn_put(struct lb_limits *l, uint64_t h);

/* One more request (http) or connection (tcp) this second (@now_ms): false when over. */
bool lb_limit_rate_take(struct lb_limits *l, uint64_t h, uint64_t now_ms);

#endif
