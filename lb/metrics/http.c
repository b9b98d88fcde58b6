/*
 * The metrics endpoint's socket: a listening TCP socket and up to METRICS_MAX_CLIENTS
 * connections, a source of the control loop (lb/core/control.h) on the control thread's ring.
 *
 * A connection lives through three phases: READ (collect the request head, at most
 * METRICS_REQ_MAX bytes, within METRICS_READ_MS), WRITE (send the answer built in one
 * go, within METRICS_WRITE_MS), LINGER (after shutting down our side, read and discard
 * until the client closes, at most METRICS_LINGER_MS: closing with unread bytes in the
 * receive buffer would send a reset that can destroy the answer before the client reads it).
 * One operation at a time per connection, every phase has a deadline, so a slow or hostile
 * client costs one slot for a bounded time and never stalls the loop, which also serves lbctl
 * and runs the health probes.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/control.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"

#define ACCEPT_PAUSE_MS 100 /* after an accept error other than a vanished connection */

enum mc_phase {
    MC_FREE,
    MC_READ,
    MC_WRITE,
    MC_LINGER,
};

struct metrics_client {
    struct lb_ctl_conn conn;
    enum mc_phase phase;
    uint64_t deadline; /* ms: the phase must be over by then */
    size_t inlen;
    size_t outoff;
    struct lb_jbuf out;
    char in[METRICS_REQ_MAX]; /* the request head; LINGER discards into it */
};

struct metrics {
    struct lb_runtime *rt;
    struct lb_ctl *ctl;
    int tag;
    const double *const *rates; /* the admin socket's, which outlives our answers */
    bool is_admin;              /* global.admin.http: answers as the admin address */
    struct metrics_admin adm;
    int lfd;
    bool accepting; /* an accept is in flight */
    bool stopped;   /* metrics_close: completions are only counted */
    uint64_t accept_pause_until; /* ms */
    struct metrics_client clients[METRICS_MAX_CLIENTS];
};

static void mc_close(struct metrics *m, struct metrics_client *c)
{
    lb_ctl_conn_close(m->ctl, &c->conn);
    c->phase = MC_FREE;
    c->inlen = c->outoff = 0;
    lb_jbuf_reset(&c->out); /* keeps its memory: a cancelled send may still point into it */
}

/* The end of the request head: an empty line (CRLF CRLF, or bare LFs). */
static bool head_complete(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n'))
            return true;
    }
    return false;
}

static void mc_answer(struct metrics *m, struct metrics_client *c, uint64_t now)
{
    int status;
    if (!head_complete(c->in, c->inlen)) {
        static const char big[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
        lb_jbuf_printf(&c->out, "%s", big);
        status = 431;
    } else {
        status =
            metrics_answer(m->rt, m->rates, m->is_admin ? &m->adm : NULL, c->in, c->inlen, &c->out);
    }
    if (c->out.overflow) { /* cannot even say 500: just close */
        mc_close(m, c);
        return;
    }
    if (status != 200)
        lb_debug("metrics: request refused", "status=%d", status);
    c->phase = MC_WRITE;
    c->outoff = 0;
    c->deadline = now + METRICS_WRITE_MS;
    lb_ctl_conn_send(m->ctl, &c->conn, c->out.p, c->out.len, &c->outoff);
}

static void mc_recv(struct metrics *m, struct metrics_client *c)
{
    if (c->phase == MC_READ)
        lb_ctl_conn_recv(m->ctl, &c->conn, c->in + c->inlen, sizeof(c->in) - c->inlen);
    else
        lb_ctl_conn_recv(m->ctl, &c->conn, c->in, sizeof(c->in)); /* LINGER: discarded */
}

static void mc_received(struct metrics *m, struct metrics_client *c, int res)
{
    if (res <= 0) { /* error, or the client is gone before asking or after our answer */
        mc_close(m, c);
        return;
    }
    if (c->phase == MC_READ) {
        c->inlen += (size_t)res;
        if (head_complete(c->in, c->inlen) || c->inlen == sizeof(c->in)) {
            mc_answer(m, c, lb_ctl_now_ms());
            return;
        }
    }
    mc_recv(m, c);
}

static void mc_sent(struct metrics *m, struct metrics_client *c, int res)
{
    int r = lb_ctl_conn_sent(m->ctl, &c->conn, c->out.p, c->out.len, &c->outoff, res);
    if (r < 0)
        mc_close(m, c);
    if (r <= 0)
        return;
    lb_jbuf_reset(&c->out);
    if (shutdown(c->conn.fd, SHUT_WR) < 0) {
        mc_close(m, c);
        return;
    }
    c->phase = MC_LINGER;
    c->deadline = lb_ctl_now_ms() + METRICS_LINGER_MS;
    mc_recv(m, c);
}

static void arm_accept(struct metrics *m)
{
    struct io_uring_sqe *sqe = lb_ctl_sqe(m->ctl);
    io_uring_prep_accept(sqe, m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, lb_ctl_ud(m->tag, LB_CTL_OP_ACCEPT, 0, 0));
    m->accepting = true;
}

static void accepted(struct metrics *m, int fd)
{
    uint64_t now = lb_ctl_now_ms();
    if (fd < 0) {
        /* EMFILE and friends leave the connection queued: pause instead of spinning on it. */
        if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED)
            m->accept_pause_until = now + ACCEPT_PAUSE_MS;
        return;
    }
    struct metrics_client *c = NULL;
    for (int i = 0; i < METRICS_MAX_CLIENTS && !c; i++)
        if (lb_ctl_conn_idle(&m->clients[i].conn))
            c = &m->clients[i];
    if (!c) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Retry-After: 1\r\nConnection: close\r\n\r\n";
        /* Best effort: a fresh connection's send buffer has room for this. */
        ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        close(fd);
        return;
    }
    lb_ctl_conn_open(&c->conn, fd);
    c->phase = MC_READ;
    c->inlen = c->outoff = 0;
    lb_jbuf_reset(&c->out);
    c->deadline = now + METRICS_READ_MS;
    mc_recv(m, c);
}

static void metrics_cqe(void *arg, const struct io_uring_cqe *cqe)
{
    struct metrics *m = arg;
    if (lb_ctl_ud_op(cqe->user_data) == LB_CTL_OP_ACCEPT) {
        m->accepting = false;
        if (m->stopped && cqe->res >= 0)
            close(cqe->res);
        else if (!m->stopped)
            accepted(m, cqe->res);
        return; /* the next accept is armed by the tick, which knows about pauses */
    }
    uint32_t slot = lb_ctl_ud_slot(cqe->user_data);
    if (slot >= METRICS_MAX_CLIENTS)
        return;
    struct metrics_client *c = &m->clients[slot];
    unsigned op = lb_ctl_conn_complete(&c->conn, cqe);
    if (op == LB_CTL_OP_NONE)
        return;
    if (m->stopped)
        mc_close(m, c);
    else if (op == LB_CTL_OP_RECV)
        mc_received(m, c, cqe->res);
    else
        mc_sent(m, c, cqe->res);
}

static uint64_t metrics_tick(void *arg, uint64_t now)
{
    struct metrics *m = arg;
    uint64_t next = UINT64_MAX;
    if (!m->accepting && now >= m->accept_pause_until)
        arm_accept(m);
    else if (!m->accepting)
        next = m->accept_pause_until;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        struct metrics_client *c = &m->clients[i];
        if (c->phase == MC_FREE)
            continue;
        if (now >= c->deadline) {
            mc_close(m, c); /* too slow to ask, to read the answer, or to close */
            continue;
        }
        next = c->deadline < next ? c->deadline : next;
    }
    return next;
}

static void metrics_cancel(void *arg)
{
    struct metrics *m = arg;
    m->stopped = true;
    if (m->accepting)
        lb_ctl_cancel(m->ctl, lb_ctl_ud(m->tag, LB_CTL_OP_ACCEPT, 0, 0));
    /* Out of LISTEN now, not when the cancelled accept is back: a successor binds the same
     * address right after this (SO_REUSEADDR lets it while this socket does not listen). */
    if (m->lfd >= 0)
        shutdown(m->lfd, SHUT_RDWR);
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        mc_close(m, &m->clients[i]);
}

static unsigned metrics_inflight(const void *arg)
{
    const struct metrics *m = arg;
    unsigned n = m->accepting;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        n += m->clients[i].conn.op != LB_CTL_OP_NONE;
    return n;
}

/* Nothing of @m is in flight (or it never was attached). */
static void metrics_free(struct metrics *m)
{
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        if (m->clients[i].conn.fd >= 0)
            close(m->clients[i].conn.fd);
        lb_jbuf_free(&m->clients[i].out);
    }
    if (m->lfd >= 0)
        close(m->lfd);
    free(m);
}

static void metrics_release(void *arg)
{
    metrics_free(arg);
}

static const struct lb_ctl_ops metrics_ops = {
    .name = "metrics",
    .cqe = metrics_cqe,
    .tick = metrics_tick,
    .cancel = metrics_cancel,
    .inflight = metrics_inflight,
    .release = metrics_release,
};

static struct metrics *open_at(struct lb_runtime *rt, struct lb_ctl *ctl,
                               const double *const *rates, const struct conf_addr *a,
                               const struct metrics_admin *adm, struct lb_err *err)
{
    const char *what = adm ? "admin http" : "metrics";
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        lb_err_set(err, "metrics: out of memory");
        return NULL;
    }
    m->rt = rt;
    m->ctl = ctl;
    m->rates = rates;
    m->is_admin = adm != NULL;
    if (adm)
        m->adm = *adm;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        lb_ctl_conn_init(&m->clients[i].conn, LB_CTL_TAG_NONE, (uint32_t)i);
        lb_jbuf_init(&m->clients[i].out, METRICS_ANSWER_MAX + 4096);
    }
    m->lfd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)) < 0 ||
        bind(m->lfd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(m->lfd, 64) < 0) {
        lb_err_set(err, "%s: cannot listen on %s: %s", what, a->text, strerror(errno));
        metrics_free(m);
        return NULL;
    }
    m->tag = lb_ctl_attach(ctl, &metrics_ops, m);
    if (m->tag < 0) {
        lb_err_set(err, "%s: no tag left on the control loop", what);
        metrics_free(m);
        return NULL;
    }
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        m->clients[i].conn.tag = m->tag;
    if (adm)
        lb_info("admin http listening", "address=%s paths=\"/ /stats /metrics POST /admin/\"",
                a->text);
    else
        lb_info("metrics listening", "address=%s paths=\"/metrics /stats /\"", a->text);
    return m;
}

struct metrics *metrics_open(struct lb_runtime *rt, struct lb_ctl *ctl,
                             const double *const *rates, struct lb_err *err)
{
    return open_at(rt, ctl, rates, &rt->conf->global.metrics_listen, NULL, err);
}

struct metrics *metrics_open_admin(struct lb_runtime *rt, struct lb_ctl *ctl,
                                   const double *const *rates, const struct metrics_admin *adm,
                                   struct lb_err *err)
{
    return open_at(rt, ctl, rates, &rt->conf->global.admin_http_listen, adm, err);
}

void metrics_close(struct metrics *m)
{
    if (m)
        lb_ctl_detach(m->ctl, m->tag); /* frees @m once its cancelled operations are back */
}
