/*
 * The admin socket: lbctl's side door into a running lb.
 *
 * A unix stream socket (global.admin.socket, mode 0600) served by the control thread's loop
 * (lb/core/control.h): one text command per line, one JSON object per answer line. Commands
 * change only the shared server table's atomics (lb/cluster/cluster.h), so the data path never
 * takes a lock or waits because of an operator. Drain and weight changes are kept in a
 * state file beside the socket (SOCKET.state) and restored at the next start.
 *
 * The parts are split so that they can be tested without a socket:
 *   admin_parse()  a pure function from a line to a struct admin_cmd (fuzzed);
 *   admin_exec()   runs a command against a runtime and writes the JSON answer;
 *   admin_start()  the socket on the control loop, the state file.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/cache/purge.h"

#define ADMIN_LINE_MAX 4096         /* longer lines get an error answer, then a close */
#define ADMIN_MAX_CLIENTS 16        /* more are told so and closed */
#define ADMIN_TIMEOUT_MS 10000      /* to send a whole command line, or to read an answer */
#define ADMIN_ANSWER_MAX (8u << 20) /* a status answer bigger than this is an error */

struct lb_runtime;
struct lb_jbuf;
struct lb_ctl;
struct admin;

enum admin_verb {
    ADMIN_STATUS,
    ADMIN_DRAIN,
    ADMIN_UNDRAIN,
    ADMIN_WEIGHT,
    ADMIN_RELOAD,
    ADMIN_SNAPSHOTS_RELOAD,
    ADMIN_EXPLAIN,
    ADMIN_EXPLAIN_KEY, /* explain redis KEY: the key is in request */
    ADMIN_TLS,
    ADMIN_QUEUES,      /* what lbctl queue stats reads Redis with (lb/admin/queues.c) */
    ADMIN_FLEET,       /* fleet [ack T]: the instances sharing global.redis (lb/admin/fleet.c) */
    ADMIN_CACHE_PURGE, /* cache purge PATH|PREFIX* [--host HOST] (lb/admin/cache.c) */
    ADMIN_CACHE_STATS, /* cache stats: L1 counters per worker and per listener */
};

#define ADMIN_EXPLAIN_MAX 4096 /* the request explain builds: request line and fields */

struct admin_cmd {
    enum admin_verb verb;
    char cluster[CONF_NAME_MAX]; /* drain, undrain, weight */
    char server[CONF_NAME_MAX];
    char set[CONF_NAME_MAX]; /* snapshots reload; "" = every set */
    uint32_t weight;         /* weight: 1..256 */
    bool local;              /* drain, undrain, weight --local: this instance only */
    uint64_t ack;            /* fleet ack T: the change whose acknowledgements are asked */
    /* explain METHOD URL [Name: value]...: the request as HTTP/1.1 bytes, ready to parse. */
    char request[ADMIN_EXPLAIN_MAX];
    size_t request_len;
    struct cache_purge purge; /* cache purge */
};

/*
 * explain (lb/admin/explain.c): which listener, route, hash key, server and failover order the
 * request in @cmd would get in @rt, as one JSON answer. Returns 0 or ADMIN_R_ERROR.
 */
int admin_explain(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out);

/*
 * cache.c: parses what follows "cache " (@p, @len bytes): "purge PATH [--host HOST]" or
 * "stats". Pure. Returns 0 or -EINVAL with the reason in @err.
 */
int admin_parse_cache(const char *p, size_t len, struct admin_cmd *cmd, struct lb_err *err);

/*
 * cache.c: cache purge: posts the purge to every worker's L1 cache and waits (at most
 * ADMIN_PURGE_WAIT_MS, blocking the control thread) for each worker's count. Returns 0 or
 * ADMIN_R_ERROR (no cached route, or workers not applying purges).
 */
int admin_cache_purge(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out);

/* cache.c: cache stats: the L1 counters per worker (as of their last tick) and the lookups
 * per listener. Returns 0 or ADMIN_R_ERROR (no cached route). */
int admin_cache_stats(struct lb_runtime *rt, struct lb_jbuf *out);

#define ADMIN_PURGE_WAIT_MS 2000 /* a worker applies a purge at its next tick (100 ms) */

/* explain redis KEY: for each redis listener, the shard that owns the key, and the member
 * its traffic goes to. Returns 0. */
int admin_explain_key(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out);

/*
 * Parses one command line @line of @len bytes (no newline; any bytes at all). Words are
 * separated by spaces or tabs; names follow the config's rules. Pure: no globals, no
 * allocation. Returns 0 with @cmd filled, or -EINVAL with a one-line reason in @err.
 */
int admin_parse(const char *line, size_t len, struct admin_cmd *cmd, struct lb_err *err);

/* A growing output buffer for JSON answers, capped at @max bytes. */
struct lb_jbuf {
    char *p;
    size_t len, cap, max;
    bool overflow; /* an append did not fit (allocation failed or @max reached) */
};

void lb_jbuf_init(struct lb_jbuf *j, size_t max);
void lb_jbuf_free(struct lb_jbuf *j);
void lb_jbuf_reset(struct lb_jbuf *j);
__attribute__((format(printf, 2, 3))) void lb_jbuf_printf(struct lb_jbuf *j, const char *fmt, ...);
/* Appends @s (@len bytes, any bytes) as a quoted JSON string: control bytes escaped, bytes
 * above 0x7f shown as U+FFFD (lb's answers are ASCII; this keeps them valid UTF-8). */
void lb_jbuf_str(struct lb_jbuf *j, const char *s, size_t len);

/* Result bits of admin_exec(). */
#define ADMIN_R_ERROR 0x1   /* the answer is {"ok":false,...} */
#define ADMIN_R_CHANGED 0x2 /* drain or weight state changed: persist it */

/*
 * Runs @cmd against @rt's clusters and appends one JSON answer (no newline) to @out.
 * @rates is [cluster][server] picks per second, or NULL (then 0). Drain and undrain set the
 * flag with a seq_cst read-modify-write before returning, so any pick that starts after the
 * answer is sent sees it. Returns ADMIN_R_* bits.
 */
int admin_exec(struct lb_runtime *rt, const double *const *rates, const struct admin_cmd *cmd,
                  struct lb_jbuf *out);

/* admin_exec() for @a's runtime, then the state file saved when a drain or weight changed
 * (a failure to save is logged). The admin socket and global.admin.http run commands
 * through it. Returns ADMIN_R_* bits. Control thread. */
int admin_run(struct admin *a, const struct admin_cmd *cmd, struct lb_jbuf *out);

/*
 * Appends "clusters":[...] (every cluster and server with state, weights, counters, last
 * health check) to @out: the body of `status`, shared with the metrics endpoint's /stats.
 * @rates as for admin_exec().
 */
void admin_status_clusters(struct lb_runtime *rt, const double *const *rates,
                              struct lb_jbuf *out);

/* Appends {"ok":false,"error":MSG} to @out. */
void admin_error(struct lb_jbuf *out, const char *msg);

/* queues: global.redis's nodes, the enqueue routes' lists and lb's push counts. Returns 0 or
 * ADMIN_R_ERROR (no global.redis). */
int admin_queues(struct lb_runtime *rt, struct lb_jbuf *out);

/* fleet.c: `status`: every cluster and server, and whether the fleet's Redis answers. */
void admin_status(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out);

/* fleet.c: `fleet` and `fleet ack T`. Returns 0 or ADMIN_R_ERROR (no fleet). */
int admin_fleet(const struct admin_cmd *cmd, struct lb_jbuf *out);

/* fleet.c: after a drain, undrain or weight answered in @out: shares it with the fleet
 * (unless --local, or without global.redis) and adds "fleet":{t, reachable, live}. */
void admin_fleet_share(const struct admin_cmd *cmd, struct lb_jbuf *out);

struct fleet_change;
/* Applies a change another instance made, as lbctl would here (state file saved); false
 * when it names a server this configuration does not have. */
bool admin_apply_change(struct admin *a, const struct fleet_change *c);

/*
 * Writes the drain and weight changes of @rt's servers to @path atomically (a temp file,
 * fsync, rename). Returns 0 or -errno with a message in @err.
 */
int admin_state_save(struct lb_runtime *rt, const char *path, struct lb_err *err);

/*
 * Restores a state file written by admin_state_save() into @rt: entries whose cluster and
 * server still exist are applied, others are logged and skipped. A missing file is not an
 * error. Returns the number of entries applied, or -errno with a message in @err.
 */
int admin_state_load(struct lb_runtime *rt, const char *path, struct lb_err *err);

/*
 * Opens the admin socket rt->conf->global.admin_socket (removing a stale socket file only
 * when nothing answers on it; refusing when another lb answers) and the metrics endpoint
 * (global.metrics.listen), restores the state file and attaches both to the control loop
 * @ctl, which serves them from its next iteration on. Call after the clusters are built and
 * before the workers start, so that a restored drain holds from the first pick. Returns an
 * object for admin_stop(), or NULL with a message in @err. Control thread.
 */
struct admin *admin_start(struct lb_runtime *rt, struct lb_ctl *ctl, struct lb_err *err);

/* Removes the socket file (if still ours) at once, so that a successor can bind the path;
 * closes every client and the metrics endpoint, and frees @a once the control loop has the
 * cancelled operations back. NULL is allowed. Control thread. */
void admin_stop(struct admin *a);

#endif
