/*
 * The metrics endpoint (global.metrics.listen): a tiny HTTP/1.1 server on the admin thread.
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
 *   metrics_open() and the poll hooks   the socket, driven by lb/admin/admin.c's poll loop.
 */
#ifndef METRICS_H
#define METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/err.h"

struct lb_runtime;
struct lb_jbuf;
struct metrics;

#define METRICS_REQ_MAX 8192           /* request head, request line included */
#define METRICS_MAX_CLIENTS 16         /* more get a 503 and are closed */
#define METRICS_READ_MS 5000           /* to send the whole request head */
#define METRICS_WRITE_MS 10000         /* to read the whole answer */
#define METRICS_LINGER_MS 1000         /* after the answer, to let the client close first */
#define METRICS_ANSWER_MAX (16u << 20) /* a bigger body is answered 500 */
#define METRICS_NPOLL (1 + METRICS_MAX_CLIENTS)

/* Appends @s (@len bytes) as the inside of a Prometheus label value: backslash, double quote
 * and line feed escaped as \\, \" and \n; every other byte as it is. */
void metrics_label_value(struct lb_jbuf *out, const char *s, size_t len);

/* Appends the whole /metrics body for @rt. Reads atomics only. */
void metrics_prom(struct lb_runtime *rt, struct lb_jbuf *out);

/* Appends the /stats JSON object. @rates: [cluster][server] picks per second, or NULL. */
void metrics_json(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out);

/* Appends the status page, with the current /stats embedded so that it renders at once. */
void metrics_page(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out);

/*
 * Answers one request: @req holds @len bytes of a request head (request line and header
 * lines, up to and including the empty line). Appends the whole response (status line,
 * headers with Content-Length and Connection: close, and the body unless HEAD) to @out.
 * Returns the status: 200, 400 (malformed request line), 404 (unknown path), 405 (a method
 * other than GET or HEAD), 500 (the body did not fit), 505 (not HTTP/1.x).
 */
int metrics_answer(struct lb_runtime *rt, const double *const *rates, const char *req,
                      size_t len, struct lb_jbuf *out);

/*
 * Opens the listening socket rt->conf->global.metrics_listen (non-blocking). Returns the
 * server, or NULL with a message in @err. Call on the thread that will poll it, or before
 * starting that thread.
 */
struct metrics *metrics_open(struct lb_runtime *rt, struct lb_err *err);

/*
 * Poll hooks for the owner's loop. prepare fills at most METRICS_NPOLL entries of @pfd
 * (closing clients whose time is up first), lowers *@next (ms, CLOCK_MONOTONIC) to the
 * earliest deadline, and returns how many it filled. done takes the same entries after
 * poll() and serves them. @now is CLOCK_MONOTONIC ms.
 */
size_t metrics_poll_prepare(struct metrics *m, struct pollfd *pfd, uint64_t now,
                               uint64_t *next);
void metrics_poll_done(struct metrics *m, const struct pollfd *pfd, size_t n,
                          const double *const *rates, uint64_t now);

/* Closes the socket and every client. NULL is allowed. */
void metrics_close(struct metrics *m);

#endif
