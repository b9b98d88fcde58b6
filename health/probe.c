/*
 * The health thread: one io_uring ring, the active probes on it, and the tick of the state
 * machines (hc.c).
 *
 * Each probe target has at most one probe in flight, and each probe at most one operation
 * in flight, always linked to a timeout for what is left of the probe's `timeout`:
 *
 *   tcp:  socket() -> connect                                    -> pass when it connects
 *   http: socket() -> connect -> send the request (resumed when short) -> recv until
 *         hc_http_verdict() decides (status line, and the body text when asked for)
 *
 * Sockets are ordinary descriptors made with socket(2) on this thread: a handful of probes a
 * second do not need the fixed-file table, and nothing here is on the workers' data path.
 * Probe sockets close with SO_LINGER 0 (a reset), as HAProxy's checks do, so that thousands
 * of probes leave no TIME_WAIT sockets behind on the proxy host.
 *
 * Probes start on a schedule: the next one of a target starts `interval` +/- 10% after the
 * previous one started, so detection takes about fall x interval whatever the timeouts.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
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
    PROBE_OP_CANCEL,  /* shutdown: cancellation of what is still in flight */
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
    bool op_in_flight; /* connect, send or recv submitted and not completed */
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
    struct io_uring ring;
    bool ring_ok;
    pthread_t thread;
    bool thread_ok;
    _Atomic int stop;
    struct hc_probe *probes;
    uint32_t ops_in_flight;
    bool wake_armed;   /* a read of hc->wake_fd is in flight */
    bool tick_now;     /* woken: run the state machines without waiting for the tick */
    uint64_t wake_buf; /* the eventfd counter lands here */
};

/* user_data layout: | op:8 | gen:24 | target:32 | */
static uint64_t probe_ud(enum probe_op op, uint32_t gen, uint32_t target)
{
    return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | target;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct io_uring_sqe *get_sqe(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    while (!sqe) {
        /* The SQ is full: hand it to the kernel to make room. */
        io_uring_submit(&e->ring);
        sqe = io_uring_get_sqe(&e->ring);
    }
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
    io_uring_sqe_set_data64(sqe, probe_ud(op, p->gen, ti));
    if (now >= p->deadline_ns) {
        /* Too late to start it: turn the prepared SQE into a no-op that says nothing. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, probe_ud(PROBE_OP_TIMEOUT, p->gen, ti));
        fail_errno(e, ti, op == PROBE_OP_CONNECT ? "connect" : "response", -ECANCELED);
        return false;
    }
    sqe->flags |= IOSQE_IO_LINK;
    uint64_t left = p->deadline_ns - now;
    p->ts.tv_sec = (long long)(left / 1000000000ull);
    p->ts.tv_nsec = (long long)(left % 1000000000ull);
    struct io_uring_sqe *t = get_sqe(e);
    io_uring_prep_link_timeout(t, &p->ts, 0);
    io_uring_sqe_set_data64(t, probe_ud(PROBE_OP_TIMEOUT, p->gen, ti));
    p->op_in_flight = true;
    e->ops_in_flight++;
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

static void on_cqe(struct hc_engine *e, const struct io_uring_cqe *cqe)
{
    enum probe_op op = (enum probe_op)(cqe->user_data >> 56);
    uint32_t gen = (uint32_t)(cqe->user_data >> 32) & 0xffffff;
    uint32_t ti = (uint32_t)cqe->user_data;
    if (op == PROBE_OP_WAKE) {
        e->wake_armed = false;
        e->ops_in_flight--;
        e->tick_now = true;
        return;
    }
    if (op == PROBE_OP_NONE || op >= PROBE_OP_TIMEOUT || ti >= e->hc->ntargets)
        return;
    struct hc_probe *p = &e->probes[ti];
    /* One operation per probe is in flight and every probe waits for its completion, so
     * this completion is the current probe's: the generation only guards that belief. */
    if (gen != (p->gen & 0xffffff) || !p->op_in_flight)
        return;
    p->op_in_flight = false;
    e->ops_in_flight--;
    if (atomic_load_explicit(&e->stop, memory_order_relaxed))
        return;
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

static void drain_cqes(struct hc_engine *e)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&e->ring, head, cqe)
    {
        on_cqe(e, cqe);
        n++;
    }
    io_uring_cq_advance(&e->ring, n);
}

/* Cancels what is in flight and waits (bounded) for it, so that no recv can write into a
 * buffer after it is freed. */
static void cancel_all(struct hc_engine *e)
{
    for (uint32_t i = 0; i < e->hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        if (!p->op_in_flight)
            continue;
        struct io_uring_sqe *sqe = get_sqe(e);
        io_uring_prep_cancel_fd(sqe, p->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, probe_ud(PROBE_OP_CANCEL, 0, 0));
    }
    if (e->wake_armed) {
        struct io_uring_sqe *sqe = get_sqe(e);
        io_uring_prep_cancel_fd(sqe, e->hc->wake_fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, probe_ud(PROBE_OP_CANCEL, 0, 0));
    }
    for (int round = 0; e->ops_in_flight && round < 50; round++) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
        drain_cqes(e);
    }
}

static void arm_wake(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_read(sqe, e->hc->wake_fd, &e->wake_buf, sizeof(e->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, probe_ud(PROBE_OP_WAKE, 0, 0));
    e->wake_armed = true;
    e->ops_in_flight++;
}

static void *engine_main(void *arg)
{
    struct hc_engine *e = arg;
    struct hc *hc = e->hc;
    uint64_t now_ms = mono_ns() / 1000000;
    uint64_t next_tick = now_ms + HC_TICK_MS;

    /* First probes spread over the first tenth of an interval, so that a config with many
     * servers does not open all its probe sockets in the same millisecond. */
    for (uint32_t i = 0; i < hc->ntargets; i++)
        e->probes[i].next_ms = now_ms + hc_jitter(hc->targets[i].interval_ms, &hc->rng) / 10;

    while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
        if (!e->wake_armed)
            arm_wake(e);
        uint64_t now_ns = mono_ns();
        now_ms = now_ns / 1000000;
        uint64_t wake = next_tick;
        for (uint32_t i = 0; i < hc->ntargets; i++) {
            struct hc_probe *p = &e->probes[i];
            if (p->phase != PROBE_IDLE)
                continue;
            if (now_ms >= p->next_ms)
                start_probe(e, i, now_ns);
            if (p->phase == PROBE_IDLE && p->next_ms < wake)
                wake = p->next_ms;
        }
        if (e->tick_now) {
            e->tick_now = false;
            hc_tick(hc, now_ms);
        }
        if (now_ms >= next_tick) {
            hc_tick(hc, now_ms);
            next_tick = now_ms + HC_TICK_MS;
            if (next_tick < wake)
                wake = next_tick;
        }
        uint64_t wait_ms = wake > now_ms ? wake - now_ms : 1;
        if (wait_ms > HC_TICK_MS)
            wait_ms = HC_TICK_MS;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ms * 1000000};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
        (void)rc; /* -ETIME is the tick; anything else shows up as missing completions */
        drain_cqes(e);
    }
    cancel_all(e);
    return NULL;
}

int hc_start(struct hc *hc, struct lb_err *err)
{
    if (hc->eng || (!hc->ntargets && !hc->any_passive))
        return 0;
    int rc = -ENOMEM;
    struct hc_engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto fail_nomem;
    hc->eng = e;
    e->hc = hc;
    atomic_init(&e->stop, 0);
    e->probes = calloc(hc->ntargets ? hc->ntargets : 1, sizeof(*e->probes));
    if (!e->probes)
        goto fail_nomem;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        e->probes[i].fd = -1;
        if (hc->targets[i].h->check == CONF_CHECK_HTTP) {
            e->probes[i].buf = malloc(HC_HTTP_MAX);
            if (!e->probes[i].buf)
                goto fail_nomem;
        }
    }
    /* Two SQEs per probe step (the operation and its link timeout); get_sqe() submits
     * early if a very large config ever fills the ring. */
    unsigned entries = 16;
    while (entries < 2 * hc->ntargets + 8 && entries < 4096)
        entries *= 2;
    rc = io_uring_queue_init(entries, &e->ring, IORING_SETUP_COOP_TASKRUN);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(entries, &e->ring, 0);
    if (rc < 0) {
        lb_err_set(err, "health: io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    e->ring_ok = true;
    rc = -pthread_create(&e->thread, NULL, engine_main, e);
    if (rc < 0) {
        lb_err_set(err, "health: cannot start the health thread: %s", strerror(-rc));
        goto fail;
    }
    e->thread_ok = true;
    return 0;
fail_nomem:
    lb_err_set(err, "health: out of memory");
fail:
    hc_stop(hc);
    return rc;
}

void hc_stop(struct hc *hc)
{
    struct hc_engine *e = hc ? hc->eng : NULL;
    if (!e)
        return;
    if (e->thread_ok) {
        atomic_store(&e->stop, 1);
        eventfd_write(hc->wake_fd, 1); /* out of its wait now, and its wake read completes */
        pthread_join(e->thread, NULL);
    }
    if (e->ring_ok)
        io_uring_queue_exit(&e->ring);
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
