/*
 * Per-listener counters: a small table of atomics beside the server table (lb/cluster/cluster.h),
 * one entry per configured listener, bumped by every worker and read by the control thread
 * for /metrics and /stats. Relaxed atomics only: the numbers are for people and Prometheus,
 * and nothing is decided from them.
 */
#ifndef METRICS_STATS_H
#define METRICS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* What became of a request to an enqueue route. */
enum metrics_enq_result {
    METRICS_ENQ_PUSHED,    /* in the list: 202 */
    METRICS_ENQ_FULL,      /* the list at max_length: 503 */
    METRICS_ENQ_DOWN,      /* Redis unreachable, failing or too slow: 503 */
    METRICS_ENQ_TOO_LARGE, /* body over max_body (413) or without a length (411) */
};

struct metrics_listener_stats {
    _Atomic uint64_t accepted; /* client connections accepted */
    _Atomic uint32_t active;   /* client connections open now */
    _Atomic uint64_t refused;  /* accepted and closed at once: the worker at max_connections */
    _Atomic uint64_t paused;   /* times accepting stopped: no free file slot (ulimit -n) */
    _Atomic uint64_t resp[5];  /* L7: responses sent by class 1xx..5xx, including lb's own
                                  (static snapshots, 404 no route, 502, 503...) */
    _Atomic uint64_t enq[4];   /* enqueue routes: requests by enum metrics_enq_result */
};

/* Data path, L7: a response with @status (100..599) went to a client of this listener.
 * Statuses outside 100..599 are not counted. */
static inline void metrics_listener_count_status(struct metrics_listener_stats *ls, int status)
{
    if (status >= 100 && status <= 599)
        atomic_fetch_add_explicit(&ls->resp[status / 100 - 1], 1, memory_order_relaxed);
}

#endif
