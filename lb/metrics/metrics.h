/*
 * The metrics endpoint (global.metrics.listen): a tiny HTTP/1.1 server on the control thread.
 *
 *   GET /metrics   Prometheus text exposition format 0.0.4, every name prefixed lb_
 *   GET /stats     the same numbers as JSON (the admin `status` body plus listeners,
 *                  workers, latency histograms and snapshot sets)
 *   GET /          a self-contained status page that renders /stats and refreshes every 2 s
 *
 * Everything is read from the shared atomics (lb/cluster/cluster.h, lb/metrics/stats.h), so serving a scrape
 * never takes a lock a worker could wait on. One request per connection: the answer says
 * Connection: close and lb closes after it, so there is no keep-alive state to bound.
 *
 * The parts are split so that tests need no socket:
 *   metrics_prom(), metrics_json(), metrics_page()   the bodies;
 *   metrics_answer()   one request head in, one whole HTTP response out;
 *   metrics_open()   the socket, a source of the control loop (lb/core/control.h).
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/err.h"

struct lb_runtime;
struct lb_jbuf;
struct lb_ctl;
struct metrics;
struct admin;

/* The admin address (global.admin.http): the page gets drain/undrain buttons and POST
 * /admin/drain|undrain?cluster=C&server=S is served for a request with "Authorization: Bearer
 * TOKEN". @admin runs the change and saves the state file (NULL in tests: admin_exec only). */
struct metrics_admin {
    struct admin *admin;
    const char *token;
};

#define METRICS_REQ_MAX 8192           /* request head, request line included */
#define METRICS_MAX_CLIENTS 16         /* more get a 503 and are closed */
#define METRICS_READ_MS 5000           /* to send the whole request head */
#define METRICS_WRITE_MS 10000         /* to read the whole answer */
#define METRICS_LINGER_MS 1000         /* after the answer, to let the client close first */
#define METRICS_ANSWER_MAX (16u << 20) /* a bigger body is answered 500 */

/* Appends @s (@len bytes) as the inside of a Prometheus label value: backslash, double quote
 * and line feed escaped as \\, \" and \n; every other byte as it is. */
void metrics_label_value(struct lb_jbuf *out, const char *s, size_t len);

/* Appends the whole /metrics body for @rt. Reads atomics only. */
void metrics_prom(struct lb_runtime *rt, struct lb_jbuf *out);

/* Appends the /stats JSON object. @rates: [cluster][server] picks per second, or NULL. */
void metrics_json(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out);

/* TLS (lb/metrics/tls.c): the /metrics families (nothing when no listener or cluster uses
 * TLS), and the JSON array of every certificate served with its expiry, for /stats, the status
 * page and lbctl tls. */
void metrics_prom_tls(struct lb_runtime *rt, struct lb_jbuf *out);

/* queue.c: lb_redis_up and lb_enqueue_total (global.redis, enqueue routes). */
void metrics_prom_queues(struct lb_runtime *rt, struct lb_jbuf *out);

/* cache.c: the L1 caches' entries, bytes, evictions and purges per worker (nothing when no
 * route has a cache). */
void metrics_prom_cache_l1(struct lb_runtime *rt, struct lb_jbuf *out);
/* cache_l2.c: lb_cache_l2_total and lb_cache_l2_bytes_total (caches:). */
void metrics_prom_cache_l2(struct lb_runtime *rt, struct lb_jbuf *out);
void metrics_json_certs(struct lb_runtime *rt, struct lb_jbuf *out);

/* Appends the status page (lb/metrics/page.c), with the current /stats embedded so that it
 * renders at once; @admin: with drain/undrain buttons (served on the admin address). */
void metrics_page(struct lb_runtime *rt, const double *const *rates, bool admin,
                  struct lb_jbuf *out);

/*
 * Answers one request: @req holds @len bytes of a request head (request line and header
 * lines, up to and including the empty line). Appends the whole response (status line,
 * headers with Content-Length and Connection: close, and the body unless HEAD) to @out.
 * @adm: NULL on the metrics address (read-only), else the admin address's token and admin.
 * Returns the status: 200, 400 (malformed request line or admin query), 401 (admin POST
 * without the right token), 404 (unknown path, cluster or server), 405 (a method other than
 * GET or HEAD, or POST on the admin address), 500 (the body did not fit), 505 (not HTTP/1.x).
 */
int metrics_answer(struct lb_runtime *rt, const double *const *rates,
                   const struct metrics_admin *adm, const char *req, size_t len,
                   struct lb_jbuf *out);

/*
 * Opens the listening socket rt->conf->global.metrics_listen and attaches it to the control
 * loop @ctl, which serves it from its next iteration on. @rates ([cluster][server] picks per
 * second, for /stats) must stay valid until metrics_close(). Returns the server, or NULL with
 * a message in @err. Control thread.
 */
struct metrics *metrics_open(struct lb_runtime *rt, struct lb_ctl *ctl,
                             const double *const *rates, struct lb_err *err);

/* The same server on global.admin.http.listen, answering as the admin address (@adm is
 * copied; its token must outlive the server: it is the running config's). */
struct metrics *metrics_open_admin(struct lb_runtime *rt, struct lb_ctl *ctl,
                                   const double *const *rates, const struct metrics_admin *adm,
                                   struct lb_err *err);

/* Stops listening at once (the address can be bound again right after), closes every client
 * and frees @m once the control loop has the cancelled operations back. NULL is allowed. */
void metrics_close(struct metrics *m);

#endif
