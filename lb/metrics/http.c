/*
 * The metrics endpoint's socket: a listening TCP socket and up to METRICS_MAX_CLIENTS
 * connections, driven by the admin thread's poll() loop through two hooks (metrics.h).
 *
 * A connection lives through three phases: READ (collect the request head, at most
 * METRICS_REQ_MAX bytes, within METRICS_READ_MS), WRITE (send the answer built in one
 * go, within METRICS_WRITE_MS), LINGER (after shutting down our side, read and discard
 * until the client closes, at most METRICS_LINGER_MS: closing with unread bytes in the
 * receive buffer would send a reset that can destroy the answer before the client reads it).
 * Every socket is non-blocking, every phase has a deadline, so a slow or hostile client costs
 * one slot for a bounded time and never stalls the thread, which also serves lbctl.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lb/admin/admin.h"
#include "lb/core/log.h"
#include "lb/metrics/metrics.h"
#include "lb/core/runtime.h"

enum mc_phase {
    MC_FREE,
    MC_READ,
    MC_WRITE,
    MC_LINGER,
};

struct metrics_client {
    int fd;
    enum mc_phase phase;
    uint64_t deadline; /* ms: the phase must be over by then */
    size_t inlen;
    size_t outoff;
    struct lb_jbuf out;
    char in[METRICS_REQ_MAX];
};

struct metrics {
    struct lb_runtime *rt;
    int lfd;
    uint64_t accept_pause_until; /* ms: after an accept error other than EAGAIN */
    struct metrics_client clients[METRICS_MAX_CLIENTS];
    int slot[METRICS_NPOLL]; /* poll entry -> client, -1 for the listening socket */
};

static void mc_close(struct metrics_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->phase = MC_FREE;
    c->inlen = c->outoff = 0;
    lb_jbuf_reset(&c->out);
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

static void mc_answer(struct metrics *m, struct metrics_client *c, const double *const *rates,
                      uint64_t now)
{
    int status;
    if (!head_complete(c->in, c->inlen)) {
        static const char big[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
        lb_jbuf_printf(&c->out, "%s", big);
        status = 431;
    } else {
        status = metrics_answer(m->rt, rates, c->in, c->inlen, &c->out);
    }
    if (c->out.overflow) { /* cannot even say 500: just close */
        mc_close(c);
        return;
    }
    if (status != 200)
        lb_debug("metrics: request refused", "status=%d", status);
    c->phase = MC_WRITE;
    c->outoff = 0;
    c->deadline = now + METRICS_WRITE_MS;
}

static void mc_read(struct metrics *m, struct metrics_client *c, const double *const *rates,
                    uint64_t now)
{
    char scratch[4096];
    char *dst = c->phase == MC_READ ? c->in + c->inlen : scratch;
    size_t room = c->phase == MC_READ ? sizeof(c->in) - c->inlen : sizeof(scratch);
    ssize_t n = recv(c->fd, dst, room, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* error, or the client is gone before asking or after our answer */
        mc_close(c);
        return;
    }
    if (c->phase != MC_READ)
        return; /* LINGER: discarded */
    c->inlen += (size_t)n;
    if (head_complete(c->in, c->inlen) || c->inlen == sizeof(c->in))
        mc_answer(m, c, rates, now);
}

static void mc_write(struct metrics_client *c, uint64_t now)
{
    while (c->outoff < c->out.len) {
        ssize_t n =
            send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            mc_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    lb_jbuf_reset(&c->out);
    if (shutdown(c->fd, SHUT_WR) < 0) {
        mc_close(c);
        return;
    }
    c->phase = MC_LINGER;
    c->deadline = now + METRICS_LINGER_MS;
}

static void accept_clients(struct metrics *m, uint64_t now)
{
    for (;;) {
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* EMFILE and friends leave the connection queued and the socket readable:
             * pause instead of spinning on it. */
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                m->accept_pause_until = now + 100;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        struct metrics_client *c = NULL;
        for (int i = 0; i < METRICS_MAX_CLIENTS && !c; i++)
            if (m->clients[i].phase == MC_FREE)
                c = &m->clients[i];
        if (!c) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Retry-After: 1\r\nConnection: close\r\n\r\n";
            /* Best effort: a fresh connection's send buffer has room for this. */
            ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
            continue;
        }
        c->fd = fd;
        c->phase = MC_READ;
        c->inlen = c->outoff = 0;
        lb_jbuf_reset(&c->out);
        c->deadline = now + METRICS_READ_MS;
    }
}

size_t metrics_poll_prepare(struct metrics *m, struct pollfd *pfd, uint64_t now,
                               uint64_t *next)
{
    size_t n = 0;
    m->slot[n] = -1;
    pfd[n++] = (struct pollfd){.fd = m->lfd, .events = now >= m->accept_pause_until ? POLLIN : 0};
    if (now < m->accept_pause_until && m->accept_pause_until < *next)
        *next = m->accept_pause_until;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        struct metrics_client *c = &m->clients[i];
        if (c->phase == MC_FREE)
            continue;
        if (now >= c->deadline) {
            mc_close(c); /* too slow to ask, to read the answer, or to close */
            continue;
        }
        if (c->deadline < *next)
            *next = c->deadline;
        m->slot[n] = i;
        pfd[n++] = (struct pollfd){.fd = c->fd, .events = c->phase == MC_WRITE ? POLLOUT : POLLIN};
    }
    return n;
}

void metrics_poll_done(struct metrics *m, const struct pollfd *pfd, size_t n,
                          const double *const *rates, uint64_t now)
{
    for (size_t i = 1; i < n; i++) {
        struct metrics_client *c = &m->clients[m->slot[i]];
        short re = pfd[i].revents;
        if (!re || c->phase == MC_FREE)
            continue;
        /* POLLHUP while writing: the client is gone both ways and nothing more can be
         * delivered; left open, poll would report it again at once until the deadline. */
        if (re & POLLERR || (re & POLLHUP && c->phase == MC_WRITE)) {
            mc_close(c);
            continue;
        }
        if (c->phase != MC_WRITE && re & (POLLIN | POLLHUP))
            mc_read(m, c, rates, now);
        /* An answer built just now is usually sent at once: no wait for the next poll. */
        if (c->phase == MC_WRITE && (re & POLLOUT || c->outoff == 0))
            mc_write(c, now);
    }
    if (n && pfd[0].revents)
        accept_clients(m, now);
}

struct metrics *metrics_open(struct lb_runtime *rt, struct lb_err *err)
{
    const struct conf_addr *a = &rt->conf->global.metrics_listen;
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        lb_err_set(err, "metrics: out of memory");
        return NULL;
    }
    m->rt = rt;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        m->clients[i].fd = -1;
        lb_jbuf_init(&m->clients[i].out, METRICS_ANSWER_MAX + 4096);
    }
    m->lfd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)) < 0 ||
        bind(m->lfd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(m->lfd, 64) < 0) {
        lb_err_set(err, "metrics: cannot listen on %s: %s", a->text, strerror(errno));
        metrics_close(m);
        return NULL;
    }
    lb_info("metrics listening", "address=%s paths=\"/metrics /stats /\"", a->text);
    return m;
}

void metrics_close(struct metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        mc_close(&m->clients[i]);
        lb_jbuf_free(&m->clients[i].out);
    }
    if (m->lfd >= 0)
        close(m->lfd);
    free(m);
}
