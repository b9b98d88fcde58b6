/*
 * The control thread's loop (lb/core/control.c): one io_uring ring for everything lb does
 * besides the data path. It owns signals (signalfd), config reloads and the generations that
 * drain after one, and carries the admin socket, the metrics endpoint and the health probes.
 *
 * Each of those is a *source*: a const table of callbacks (struct lb_ctl_ops) attached with
 * an argument under a tag. Every SQE a source queues carries its tag in the top byte of
 * user_data; the loop hands each completion to the source its tag names, through a table
 * indexed by the tag, and once per iteration asks every source what is due (tick) and when it
 * next needs the loop. Then it submits and waits once, until a completion or the earliest
 * deadline. Handlers never block; the reload itself, which reads files, runs between
 * iterations.
 *
 * A source that is detached (lb_ctl_detach) cancels what it has in flight and goes on
 * receiving its completions; the loop releases it (ops->release) once it says nothing is in
 * flight, and only then can its tag name another source.
 *
 * Everything here runs on the control thread (the main thread), which is also the thread that
 * created the ring (IORING_SETUP_SINGLE_ISSUER).
 */
#ifndef LB_CONTROL_H
#define LB_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/err.h"

struct io_uring;
struct io_uring_cqe;
struct io_uring_sqe;
struct lb_runtime;
struct lb_ctl;

#define LB_CTL_MAX_TAGS 64    /* sources attached at once, draining ones included */
#define LB_CTL_TICK_MS 200    /* the loop wakes at least this often (draining generations) */
#define LB_CTL_MAX_DRAINING 16 /* generations still draining after reloads */

/* Tag 0 names no source: completions that say nothing (cancellations) carry it. */
#define LB_CTL_TAG_NONE 0

/* user_data of the sources in lb/: | tag:8 | op:8 | gen:16 | slot:32 |. health/ lays out the
 * 56 bits below its tag itself. */
static inline uint64_t lb_ctl_ud(int tag, unsigned op, uint32_t gen, uint32_t slot)
{
    return (uint64_t)(tag & 0xff) << 56 | (uint64_t)(op & 0xff) << 48 |
           (uint64_t)(gen & 0xffff) << 32 | slot;
}
static inline unsigned lb_ctl_ud_op(uint64_t ud)
{
    return (unsigned)(ud >> 48) & 0xff;
}
static inline uint32_t lb_ctl_ud_slot(uint64_t ud)
{
    return (uint32_t)ud;
}

/* A completion whose user_data carries the source's tag. */
typedef void lb_ctl_cqe_fn(void *arg, const struct io_uring_cqe *cqe);
/* Once per iteration while attached: expire deadlines, queue what is due. Returns when it
 * next needs a tick (CLOCK_MONOTONIC ms; UINT64_MAX: only on completions). */
typedef uint64_t lb_ctl_tick_fn(void *arg, uint64_t now_ms);
/* Detached: queue the cancellation of everything in flight; start nothing new. */
typedef void lb_ctl_cancel_fn(void *arg);
/* SQEs queued whose completion has not come back. */
typedef unsigned lb_ctl_inflight_fn(const void *arg);
/* Detached and nothing in flight: free what the source owns. */
typedef void lb_ctl_release_fn(void *arg);

struct lb_ctl_ops {
    const char *name;
    lb_ctl_cqe_fn *cqe;           /* required */
    lb_ctl_tick_fn *tick;         /* may be NULL */
    lb_ctl_cancel_fn *cancel;     /* required */
    lb_ctl_inflight_fn *inflight; /* required */
    lb_ctl_release_fn *release;   /* may be NULL */
};

/* Attaches a source; returns its tag (1..LB_CTL_MAX_TAGS-1) or -EBUSY when all are taken.
 * Its first tick comes in the current iteration. */
int lb_ctl_attach(struct lb_ctl *ctl, const struct lb_ctl_ops *ops, void *arg);

/* Detaches the source of @tag (ops->cancel runs before it returns); it is released once
 * nothing of it is in flight, possibly before this returns. @tag 0 is ignored. */
void lb_ctl_detach(struct lb_ctl *ctl, int tag);

/* The ring, for sources that prepare their own SQEs (health/). */
struct io_uring *lb_ctl_ring(struct lb_ctl *ctl);

/* An SQE to prepare (never NULL: submits to make room when the SQ is full). Set user_data
 * after the prep helper, which clears the flags but not user_data. */
struct io_uring_sqe *lb_ctl_sqe(struct lb_ctl *ctl);

/* Queues the cancellation of the request with user_data @ud (its completion is dropped). */
void lb_ctl_cancel(struct lb_ctl *ctl, uint64_t ud);

uint64_t lb_ctl_now_ms(void);

/* ---- connections of the control sources (admin and metrics clients) -------------------- */

enum lb_ctl_conn_op {
    LB_CTL_OP_NONE,
    LB_CTL_OP_RECV,
    LB_CTL_OP_SEND,
    LB_CTL_OP_ACCEPT, /* the sources' listening sockets (not through lb_ctl_conn) */
};

/*
 * One client socket with at most one operation (recv or send) in flight: a source reads a
 * request, then writes its answer, then maybe reads again. Its slot may be reused only when
 * lb_ctl_conn_idle() says so: a closed connection with an operation in flight keeps its
 * descriptor open until the cancelled operation's completion comes back.
 */
struct lb_ctl_conn {
    int fd;       /* -1: closed */
    int tag;      /* the owner's */
    uint32_t slot; /* the owner's index for it, in user_data */
    uint16_t gen; /* changes each time the slot is reused: older completions are dropped */
    uint8_t op;   /* enum lb_ctl_conn_op in flight */
    bool closing; /* closed with @op in flight: the fd closes at its completion */
};

void lb_ctl_conn_init(struct lb_ctl_conn *c, int tag, uint32_t slot);
/* Takes @fd; @c must be idle. */
void lb_ctl_conn_open(struct lb_ctl_conn *c, int fd);
bool lb_ctl_conn_idle(const struct lb_ctl_conn *c);
/* Queues a recv into @buf (@len > 0); nothing must be in flight. */
void lb_ctl_conn_recv(struct lb_ctl *ctl, struct lb_ctl_conn *c, void *buf, size_t len);
/* Queues a send of @len - *@off bytes from @p + *@off; nothing must be in flight. */
void lb_ctl_conn_send(struct lb_ctl *ctl, struct lb_ctl_conn *c, const char *p, size_t len,
                      const size_t *off);
/*
 * The one send loop of the control sources. After a send completion of @res: advances *@off
 * and, when the send was short, queues the rest. Returns 1 when all @len bytes are out, 0 when
 * the rest is queued, -errno when the peer is gone (a send of 0 bytes counts as -EPIPE).
 */
int lb_ctl_conn_sent(struct lb_ctl *ctl, struct lb_ctl_conn *c, const char *p, size_t len,
                     size_t *off, int res);
/*
 * First call of the owner's handler for a completion in @c's slot. Returns the operation that
 * completed (LB_CTL_OP_RECV or _SEND), or LB_CTL_OP_NONE when the completion must be
 * ignored: stale, or the connection was closed meanwhile (its fd is closed now).
 */
unsigned lb_ctl_conn_complete(struct lb_ctl_conn *c, const struct io_uring_cqe *cqe);
/* Closes at once when idle, else cancels the operation in flight and closes at its end. */
void lb_ctl_conn_close(struct lb_ctl *ctl, struct lb_ctl_conn *c);

/* ---- the loop --------------------------------------------------------------------------- */

/*
 * Sets up the ring and the signalfd (SIGTERM, SIGINT, SIGHUP, which the caller blocked in
 * every thread) and opens the admin socket and the metrics endpoint of @rt, before its workers
 * start: a drain restored from the state file holds from the first connection. On success the
 * loop owns @rt; NULL with a message in @err on failure (@rt is left to the caller).
 */
struct lb_ctl *lb_ctl_new(struct lb_runtime *rt, struct lb_err *err);

/*
 * Runs until SIGTERM/SIGINT (or a generation that failed to start) and until every
 * generation's workers have finished their connections; keeps answering lbctl, scrapes and
 * probes meanwhile. Returns the process exit code.
 */
int lb_ctl_run(struct lb_ctl *ctl);

/* Closes the sources, waits (bounded) for their last completions, destroys the generations
 * and the ring. NULL is fine. */
void lb_ctl_free(struct lb_ctl *ctl);

#endif
