/*
 * Health checking: active probes (tcp, http, redis; over TLS for clusters with tls:) and passive
 * outlier detection, and the up/down/ejected state they decide for every server of every cluster.
 *
 * health/ knows clusters and servers only by their indices in the configuration (struct conf)
 * and never includes lb/ headers: whoever runs it (lb/core/health.c) passes a table of callbacks
 * that turn each decision into server flags, effective weights and log lines. Dependencies
 * point one way, lb -> health -> conf.
 *
 * Threads. Everything except hc_passive_report() runs on one thread: the thread whose loop
 * runs the probe engine (hc_engine_attach: lb's control thread, which owns the ring the probes
 * run on and ticks the state machines every HC_TICK_MS through hc_engine_tick), or the caller
 * of hc_tick()/hc_probe_done() in unit tests. health/ starts no thread and owns no ring.
 * hc_passive_report() is for the workers' data path: it touches two atomics of one server,
 * takes no lock and never blocks; when a server crosses its failure threshold it also writes a
 * non-blocking eventfd (once per crossing) that the engine keeps a read on, so that the
 * ejection is decided at once instead of at the next tick.
 *
 * The state machines, per server:
 *   active (when the cluster has health.check):  UP --fall failures in a row--> DOWN
 *                                                DOWN --rise passes in a row--> UP
 *     Servers start UP (as HAProxy does): a server that is dead at startup goes down after
 *     its first `fall` probes, and no traffic waits for probes before lb serves.
 *   passive (when the cluster has a passive: block):
 *     IN --consecutive_failures reports in a row--> EJECTED for ejection x 2^(n-1), capped at
 *     max_ejection (n = times ejected; the count is forgotten after the server has stayed in
 *     for max_ejection). At most floor(tier size x max_ejected_percent / 100) servers of a
 *     tier (primaries, backups) are ejected at once: half of one primary is zero, so a lone
 *     primary is never ejected passively. EJECTED --time over--> IN when the cluster has no
 *     active checks; with active checks, only the first passing probe after the time is over
 *     brings it back.
 *   A server is usable while UP and IN. When it becomes usable again and the cluster has
 *   slow_start, its effective weight ramps linearly from 1 to its configured weight.
 * Every change of either state machine is reported through hc_ops.event exactly once, with a
 * reason.
 */
#ifndef HEALTH_HC_H
#define HEALTH_HC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "conf/err.h"

#define HC_TICK_MS 100          /* passive decisions, ejection expiry and slow start steps */
#define HC_HTTP_MAX (16 * 1024) /* http probes read at most this much of a response */
#define HC_REASON_MAX 96

struct hc;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct io_uring;
struct io_uring_cqe;

enum hc_event_kind {
    HC_EV_DOWN,          /* active: `fall` failed probes in a row */
    HC_EV_UP,            /* active: `rise` passing probes in a row */
    HC_EV_EJECTED,       /* passive: `consecutive_failures` failures reported in a row */
    HC_EV_RETURNED,      /* passive: ejection over (time passed, or a probe passed after it) */
    HC_EV_EJECT_SKIPPED, /* passive threshold reached, but max_ejected_percent of the tier is
                            already ejected: no state change, reported so people see it */
};

struct hc_event {
    enum hc_event_kind kind;
    uint32_t cluster;     /* index in conf->clusters */
    uint32_t server;      /* index in that cluster's servers */
    const char *reason;   /* one line for people, no double quotes; valid during the call */
    uint32_t latency_us;  /* of the probe that decided it; 0 when no probe did */
    uint64_t ejection_ms; /* HC_EV_EJECTED: how long at least */
    uint32_t ejections;   /* HC_EV_EJECTED: times ejected, this one included */
};

/* A state changed: set or clear the server's flag and log it. */
typedef void hc_event_fn(void *arg, const struct hc_event *ev);
/* Slow start: the server's effective weight is now @weight (1..configured weight). */
typedef void hc_weight_fn(void *arg, uint32_t cluster, uint32_t server, uint32_t weight);

/* Every active probe result of a server (state change or not), for status displays. */
typedef void hc_probe_fn(void *arg, uint32_t cluster, uint32_t server, bool ok,
                         uint32_t latency_us);

/* check: redis: traffic for the server now goes to member @member (0 its address, i its
 * replica i - 1), whose ROLE said master. */
typedef void hc_member_fn(void *arg, uint32_t cluster, uint32_t server, uint32_t member,
                          const char *reason);

struct hc_ops {
    hc_member_fn *member; /* may be NULL */
    hc_event_fn *event;   /* required */
    hc_weight_fn *weight; /* may be NULL: no slow start */
    hc_probe_fn *probe;   /* may be NULL */
    void *arg;
};

/* A server's health as the engine sees it (hc_server_status). */
struct hc_status {
    bool checked;      /* the cluster has active checks */
    bool down;         /* active state DOWN */
    bool ejected;      /* passive state EJECTED */
    uint32_t ok_run;   /* passing probes in a row */
    uint32_t fail_run; /* failed probes in a row */
    uint64_t probes;   /* probe results seen */
    uint64_t probe_failures;
    bool last_ok;               /* the last probe passed (false before the first) */
    uint32_t latency_us;        /* of the last probe */
    char reason[HC_REASON_MAX]; /* of the last probe */
    uint32_t ejections;         /* times ejected (reset after max_ejection in) */
    uint64_t eject_until_ms;
    uint32_t weight; /* effective weight that slow start last set */
};

/*
 * Builds the checker for @c (which must outlive it): one state per server, one probe target
 * per distinct address and probe definition (check, path, host, expect_status, expect_body):
 * a server listed in several clusters is probed once and the result goes to every one of
 * them, each with its own cluster's rise and fall. A shared target probes at the smallest
 * interval and timeout among its clusters. @seed feeds the interval jitter. Starts no thread
 * and opens no socket. Returns NULL with a message in @err on allocation failure.
 */
struct hc *hc_new(const struct conf *c, const struct hc_ops *ops, uint64_t seed,
                  struct lb_err *err);

/*
 * Before hc_engine_attach: the probes of @cluster (one with a tls: block) speak TLS with @ctx,
 * sending and verifying @sni, or verifying the server's address when @sni is NULL, as the data
 * path does. A tcp check passes when the handshake completes (the certificate verified when
 * the context verifies); an http check sends its request inside TLS. @ctx and @sni must
 * outlive @hc. A TLS cluster left without a context fails its probes, saying so.
 */
void hc_set_tls(struct hc *hc, uint32_t cluster, struct ssl_ctx_st *ctx, const char *sni);

/*
 * Before hc_engine_attach: @server of @cluster starts DOWN (it was down in the generation a reload
 * replaces) and needs `rise` passing probes to come up. Returns false, changing nothing,
 * when its cluster has no active checks: nothing could bring it up again, so the caller
 * must not keep it down.
 */
bool hc_seed_down(struct hc *hc, uint32_t cluster, uint32_t server);

/* Frees everything, the engine included. NULL is fine. With an engine attached, call it only
 * once hc_engine_inflight() is 0: the kernel may still write into a probe's buffer before. */
void hc_free(struct hc *hc);

/*
 * The probe engine runs on a ring its caller owns, submits and waits on; health/ never
 * submits except to make room when the SQ is full. Every SQE it queues carries @tag in the top
 * byte of user_data (the other 56 bits are the engine's); the caller hands each completion
 * with that tag to hc_engine_on_cqe(), calls hc_engine_tick() once per loop iteration before
 * it submits, and keeps the loop's wait no longer than the time hc_engine_tick() returns.
 *
 * hc_engine_attach: allocates the probes (first ones due within a tenth of their interval)
 * and queues nothing yet. Call it after hc_seed_down(). Returns 0 or -errno with a message in
 * @err. Callbacks run on the ring's thread, inside hc_engine_on_cqe() and hc_engine_tick().
 */
int hc_engine_attach(struct hc *hc, struct io_uring *ring, uint8_t tag, struct lb_err *err);

/* One completion whose user_data carries the engine's tag. */
void hc_engine_on_cqe(struct hc *hc, const struct io_uring_cqe *cqe);

/*
 * Starts the probes that are due, runs the state machines when a worker woke the engine or
 * every HC_TICK_MS, and keeps a read armed on the wake eventfd. @now_ms: CLOCK_MONOTONIC ms.
 * Returns when it next needs to run (CLOCK_MONOTONIC ms; UINT64_MAX when detached).
 */
uint64_t hc_engine_tick(struct hc *hc, uint64_t now_ms);

/*
 * Stops the engine: queues the cancellation of everything it has in flight and abandons the
 * probes. No callback runs after it returns; completions still come back (hand them to
 * hc_engine_on_cqe) until hc_engine_inflight() says 0. Safe to call twice or unattached.
 */
void hc_engine_detach(struct hc *hc);

/* SQEs the engine queued whose completion has not been handed back yet (0 unattached). */
unsigned hc_engine_inflight(const struct hc *hc);

/*
 * Data path: the outcome of one use of a server (L4: a connect; L7: a request, where a reset
 * or a 5xx answer is a failure). Touches atomics (and, once per threshold crossing, writes a
 * non-blocking eventfd); never blocks, takes no lock, never calls back.
 * A no-op when @hc is NULL or the cluster has no passive detection.
 */
void hc_passive_report(struct hc *hc, uint32_t cluster, uint32_t server, bool failure);

/*
 * Runs the timed part of the state machines at @now_ms (CLOCK_MONOTONIC milliseconds):
 * ejections for servers that crossed the passive threshold, returns for ejections whose
 * time is over (clusters without active checks), slow start weights. The engine calls it
 * every HC_TICK_MS; tests call it directly. Callbacks fire before it returns.
 */
void hc_tick(struct hc *hc, uint64_t now_ms);

/* Probe targets: how many, and which one probes a server (-1: its cluster has no checks). */
uint32_t hc_ntargets(const struct hc *hc);
int hc_target_of(const struct hc *hc, uint32_t cluster, uint32_t server);

/*
 * The result of one probe of @target at @now_ms: fed to every server behind it. @reason says
 * why it failed or what passed ("status 200"). Callbacks fire before it returns.
 */
void hc_probe_done(struct hc *hc, uint32_t target, bool ok, const char *reason, uint32_t latency_us,
                   uint64_t now_ms);

/* Copies a server's state; 0, or -ENOENT for a bad index. On the engine's thread only. */
int hc_server_status(const struct hc *hc, uint32_t cluster, uint32_t server, struct hc_status *out);

/* The next probe's delay: @interval_ms +/- 10%, uniformly, from the xorshift state @rng. */
uint64_t hc_jitter(uint64_t interval_ms, uint64_t *rng);

/*
 * Judges the first @len bytes of an http probe's response (@eof: the server closed, nothing
 * more will come). Returns 1 (pass), 0 (fail) with a reason in @reason, or -EAGAIN when it
 * needs more bytes (never when @eof or @len >= HC_HTTP_MAX). The status line must be
 * "HTTP/1.x NNN"; NNN must equal @expect_status; when @expect_body is not NULL the body part
 * of the first HC_HTTP_MAX bytes must contain it.
 */
int hc_http_verdict(const char *buf, size_t len, bool eof, int expect_status,
                    const char *expect_body, char *reason, size_t reason_len);

#endif
