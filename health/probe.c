/*
 * The probe engine: the active probes of one checker on a ring that its caller owns (lb: the
 * control thread's), and the tick of the state machines (hc.c). health/ starts no thread: the
 * caller's loop hands completions back (hc_engine_on_cqe), ticks it (hc_engine_tick) and
 * submits. user_data: | tag:8 (the caller's) | op:8 | gen:16 | target:32 |.
 *
 * Each probe target has at most one probe in flight, and each probe at most one operation
 * in flight, always linked to a timeout for what is left of the probe's `timeout`:
 *
 *   tcp:  socket() -> connect                                    -> pass when it connects
 *   http: socket() -> connect -> send the request (resumed when short) -> recv until
 *         hc_http_verdict() decides (status line, and the body text when asked for)
 *
 * Sockets are ordinary descriptors made with socket(2): a handful of probes a second do not
 * need a fixed-file table, and nothing here is on the workers' data path. Probe sockets close
 * with SO_LINGER 0 (a reset), as HAProxy's checks do, so that thousands of probes leave no
 * TIME_WAIT sockets behind on the proxy host.
 *
 * Probes start on a schedule: the next one of a target starts `interval` +/- 10% after the
 * previous one started, so detection takes about fall x interval whatever the timeouts.
 *
 * Every SQE the engine queues is counted until its completion comes back (the operations,
 * their link timeouts, the wake read, cancellations), so that the caller knows when nothing of
 * a detached engine can reach the kernel or come back under its tag any more.
 */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health/internal.h"

enum probe_op {
    PROBE_OP_NONE,
    PROBE_OP_CONNECT,
    PROBE_OP_SEND,
    PROBE_OP_RECV,
    PROBE_OP_TIMEOUT, /* the link timeout of one of the above; its completion says nothing */
    PROBE_OP_CANCEL,  /* detach: cancellation of what is still in flight */
    PROBE_OP_WAKE,    /* read of hc->wake_fd: a worker tripped a passive threshold */
};

enum probe_phase {
    PROBE_IDLE,
    PROBE_CONNECT,
    PROBE_SEND,
    PROBE_RECV,
};

struct hc_probe {
    int fd;       /* -1 when idle */
    uint32_t gen; /* bumped per probe; completions of an older one are dropped */
    enum probe_phase phase;
    enum probe_op op;  /* connect, send or recv in flight; PROBE_OP_NONE when none */
    uint64_t next_ms;  /* when the next probe starts */
    uint64_t start_ns;
    uint64_t deadline_ns;
    size_t sent;                 /* http: request bytes sent */
    size_t len;                  /* http: response bytes received into buf */
    char *buf;                   /* http: HC_HTTP_MAX bytes */
    struct __kernel_timespec ts; /* the link timeout; read by the kernel at submission */
};

struct hc_engine {
    struct hc *hc;
    struct io_uring *ring; /* the caller's */
    uint64_t tag;          /* the caller's tag, in place in user_data's top byte */
    bool detached;         /* hc_engine_detach: completions are only counted */
    struct hc_probe *probes;
    uint32_t sqes;      /* queued, completion not handed back yet */
    bool wake_armed;    /* a read of hc->wake_fd is in flight */
    bool tick_now;      /* woken: run the state machines without waiting for the tick */
    uint64_t next_tick; /* ms: the next hc_tick */
    uint64_t wake_buf;  /* the eventfd counter lands here */
};

static uint64_t probe_ud(const struct hc_engine *e, enum probe_op op, uint32_t gen, uint32_t target)
{
    return e->tag | (uint64_t)op << 48 | (uint64_t)(gen & 0xffff) << 32 | target;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An SQE, counted as in flight: the caller preps it, then sets its user_data. */
static struct io_uring_sqe *get_sqe(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(e->ring);
    while (!sqe) {
        /* The SQ is full: hand it to the kernel to make room. */
        io_uring_submit(e->ring);
        sqe = io_uring_get_sqe(e->ring);
    }
    e->sqes++;
    return sqe;
}

/* Ends the probe of target @ti: closes its socket and feeds the result to the servers. */
static void finish(struct hc_engine *e, uint32_t ti, bool ok, const char *reason)
{
    struct hc_probe *p = &e->probes[ti];
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->phase = PROBE_IDLE;
    uint64_t now = mono_ns();
    uint64_t lat = (now - p->start_ns) / 1000;
    hc_probe_done(e->hc, ti, ok, reason, lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat,
                  now / 1000000);
}

static void fail_errno(struct hc_engine *e, uint32_t ti, const char *what, int res)
{
    char why[HC_REASON_MAX];
    if (res == -ECANCELED)
        snprintf(why, sizeof(why), "timeout after %llums (%s)",
                 (unsigned long long)e->hc->targets[ti].timeout_ms, what);
    else
        snprintf(why, sizeof(why), "%s: %s", what, strerror(-res));
    finish(e, ti, false, why);
}

/*
 * Queues @op for target @ti (the caller filled @sqe) linked to a timeout for the rest of the
 * probe's time. Returns false, after failing the probe, when that time is already over.
 */
static bool arm(struct hc_engine *e, uint32_t ti, struct io_uring_sqe *sqe, enum probe_op op)
{
    struct hc_probe *p = &e->probes[ti];
    uint64_t now = mono_ns();
    io_uring_sqe_set_data64(sqe, probe_ud(e, op, p->gen, ti));
    if (now >= p->deadline_ns) {
        /* Too late to start it: turn the prepared SQE into a no-op that says nothing. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_TIMEOUT, p->gen, ti));
        fail_errno(e, ti, op == PROBE_OP_CONNECT ? "connect" : "response", -ECANCELED);
        return false;
    }
    sqe->flags |= IOSQE_IO_LINK;
    uint64_t left = p->deadline_ns - now;
    p->ts.tv_sec = (long long)(left / 1000000000ull);
    p->ts.tv_nsec = (long long)(left % 1000000000ull);
    struct io_uring_sqe *t = get_sqe(e);
    io_uring_prep_link_timeout(t, &p->ts, 0);
    io_uring_sqe_set_data64(t, probe_ud(e, PROBE_OP_TIMEOUT, p->gen, ti));
    p->op = op;
    return true;
}

static void arm_send(struct hc_engine *e, uint32_t ti)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    p->phase = PROBE_SEND;
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_send(sqe, p->fd, t->req + p->sent, t->req_len - p->sent, MSG_NOSIGNAL);
    arm(e, ti, sqe, PROBE_OP_SEND);
}

static void arm_recv(struct hc_engine *e, uint32_t ti)
{
    struct hc_probe *p = &e->probes[ti];
    p->phase = PROBE_RECV;
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_recv(sqe, p->fd, p->buf + p->len, HC_HTTP_MAX - p->len, 0);
    arm(e, ti, sqe, PROBE_OP_RECV);
}

static void start_probe(struct hc_engine *e, uint32_t ti, uint64_t now_ns)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    p->gen++;
    p->start_ns = now_ns;
    p->deadline_ns = now_ns + t->timeout_ms * 1000000ull;
    p->next_ms = now_ns / 1000000 + hc_jitter(t->interval_ms, &e->hc->rng);
    p->sent = 0;
    p->len = 0;
    p->phase = PROBE_CONNECT;
    p->fd = socket(t->addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        fail_errno(e, ti, "socket", -errno);
        return;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_connect(sqe, p->fd, (const struct sockaddr *)&t->addr->ss, t->addr->len);
    arm(e, ti, sqe, PROBE_OP_CONNECT);
}

void hc_engine_on_cqe(struct hc *hc, const struct io_uring_cqe *cqe)
{
    struct hc_engine *e = hc->eng;
    if (!e)
        return;
    if (e->sqes)
        e->sqes--;
    enum probe_op op = (enum probe_op)((cqe->user_data >> 48) & 0xff);
    uint32_t gen = (uint32_t)(cqe->user_data >> 32) & 0xffff;
    uint32_t ti = (uint32_t)cqe->user_data;
    if (op == PROBE_OP_WAKE) {
        e->wake_armed = false;
        e->tick_now = !e->detached;
        return;
    }
    if (op == PROBE_OP_NONE || op >= PROBE_OP_TIMEOUT || ti >= hc->ntargets)
        return;
    struct hc_probe *p = &e->probes[ti];
    /* One operation per probe is in flight and every probe waits for its completion, so
     * this completion is the current probe's: the generation only guards that belief. */
    if (gen != (p->gen & 0xffff) || p->op != op)
        return;
    p->op = PROBE_OP_NONE;
    if (e->detached) {
        /* Abandoned. Closing now is safe: its cancellation goes by user_data, not by fd. */
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
        p->phase = PROBE_IDLE;
        return;
    }
    int res = cqe->res;
    const struct hc_target *t = &e->hc->targets[ti];
    switch (op) {
    case PROBE_OP_CONNECT:
        if (res < 0)
            fail_errno(e, ti, "connect", res);
        else if (t->h->check == CONF_CHECK_TCP)
            finish(e, ti, true, "connected");
        else
            arm_send(e, ti);
        break;
    case PROBE_OP_SEND:
        if (res < 0) {
            fail_errno(e, ti, "send", res);
            break;
        }
        p->sent += (size_t)res;
        if (p->sent < t->req_len)
            arm_send(e, ti);
        else
            arm_recv(e, ti);
        break;
    case PROBE_OP_RECV: {
        if (res < 0) {
            fail_errno(e, ti, "response", res);
            break;
        }
        p->len += (size_t)res;
        char why[HC_REASON_MAX];
        int v = hc_http_verdict(p->buf, p->len, res == 0, t->h->expect_status, t->h->expect_body,
                                why, sizeof(why));
        if (v == -EAGAIN)
            arm_recv(e, ti);
        else
            finish(e, ti, v == 1, why);
        break;
    }
    default:
        break;
    }
}

static void arm_wake(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_read(sqe, e->hc->wake_fd, &e->wake_buf, sizeof(e->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_WAKE, 0, 0));
    e->wake_armed = true;
}

uint64_t hc_engine_tick(struct hc *hc, uint64_t now_ms)
{
    struct hc_engine *e = hc->eng;
    if (!e || e->detached)
        return UINT64_MAX;
    if (!e->wake_armed)
        arm_wake(e);
    uint64_t wake = e->next_tick;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        if (p->phase != PROBE_IDLE)
            continue;
        if (now_ms >= p->next_ms)
            start_probe(e, i, mono_ns());
        if (p->phase == PROBE_IDLE && p->next_ms < wake)
            wake = p->next_ms;
    }
    if (e->tick_now) {
        e->tick_now = false;
        hc_tick(hc, now_ms);
    }
    if (now_ms >= e->next_tick) {
        hc_tick(hc, now_ms);
        e->next_tick = now_ms + HC_TICK_MS;
    }
    return wake < e->next_tick ? wake : e->next_tick;
}

static void cancel(struct hc_engine *e, uint64_t ud)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    /* By user_data, not by descriptor: a probe socket closed meanwhile may have its number
     * reused by the time the cancellation runs. */
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_CANCEL, 0, 0));
}

void hc_engine_detach(struct hc *hc)
{
    struct hc_engine *e = hc ? hc->eng : NULL;
    if (!e || e->detached)
        return;
    e->detached = true;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        if (p->op != PROBE_OP_NONE)
            cancel(e, probe_ud(e, p->op, p->gen, i));
    }
    if (e->wake_armed)
        cancel(e, probe_ud(e, PROBE_OP_WAKE, 0, 0));
}

unsigned hc_engine_inflight(const struct hc *hc)
{
    return hc && hc->eng ? hc->eng->sqes : 0;
}

int hc_engine_attach(struct hc *hc, struct io_uring *ring, uint8_t tag, struct lb_err *err)
{
    if (hc->eng) {
        lb_err_set(err, "health: the probe engine is attached already");
        return -EALREADY;
    }
    struct hc_engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto nomem;
    hc->eng = e;
    e->hc = hc;
    e->ring = ring;
    e->tag = (uint64_t)tag << 56;
    e->probes = calloc(hc->ntargets ? hc->ntargets : 1, sizeof(*e->probes));
    if (!e->probes)
        goto nomem;
    uint64_t now_ms = mono_ns() / 1000000;
    e->next_tick = now_ms + HC_TICK_MS;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        p->fd = -1;
        if (hc->targets[i].h->check == CONF_CHECK_HTTP && !(p->buf = malloc(HC_HTTP_MAX)))
            goto nomem;
        /* First probes spread over the first tenth of an interval, so that a config with
         * many servers does not open all its probe sockets in the same millisecond. */
        p->next_ms = now_ms + hc_jitter(hc->targets[i].interval_ms, &hc->rng) / 10;
    }
    return 0;
nomem:
    lb_err_set(err, "health: out of memory");
    hc_engine_free(hc);
    return -ENOMEM;
}

void hc_engine_free(struct hc *hc)
{
    struct hc_engine *e = hc ? hc->eng : NULL;
    if (!e)
        return;
    for (uint32_t i = 0; e->probes && i < hc->ntargets; i++) {
        if (e->probes[i].fd >= 0)
            close(e->probes[i].fd);
        free(e->probes[i].buf);
        e->probes[i].buf = NULL;
    }
    free(e->probes);
    free(e);
    hc->eng = NULL;
}
