/*
 * A worker's loop: its epoll set, accepting, reading, running each connection as far as it
 * can go without blocking, the timers of delayed answers and lingering closes, and closing.
 * Every connection belongs to the worker that accepted it; nothing here takes a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/demo/demo.h"

#define LINGER_MS 2000 /* after an error answer: read and discard, then close */

uint64_t demo_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- timers ---------------------------------------------------------------------------- */

void demo_timer_set(struct worker *w, struct conn *c, enum conn_wait why, uint64_t at)
{
    if (c->wait == WAIT_NONE) {
        c->tprev = NULL;
        c->tnext = w->timers;
        if (w->timers)
            w->timers->tprev = c;
        w->timers = c;
    }
    c->wait = why;
    c->deadline_ms = at;
}

static void timer_clear(struct worker *w, struct conn *c)
{
    if (c->wait == WAIT_NONE)
        return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        w->timers = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    c->tprev = c->tnext = NULL;
    c->wait = WAIT_NONE;
}

/* ---- connection lifetime --------------------------------------------------------------- */

/* Closes now; the memory is freed after the current batch of events, so a later event or
 * timer in the same batch never touches freed memory. */
static void conn_close(struct worker *w, struct conn *c)
{
    if (c->dead)
        return;
    timer_clear(w, c);
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        w->all = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->dnext = w->dead;
    w->dead = c;
    atomic_fetch_sub(&g_active, 1);
}

static void conn_free_dead(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->dnext;
        free(c->in);
        c->in = NULL;
        free(c->out);
        c->out = NULL;
        free(c);
    }
}

static void conn_watch(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    /* Cannot fail while the conn is alive: its fd is registered and open. */
    (void)epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* ---- connection I/O -------------------------------------------------------------------- */

/* Reads what the socket has into the input buffer. Returns 0 (c->rd_eof set at EOF) or
 * -errno when the connection is finished. */
static int conn_read(struct conn *c)
{
    if (c->in_off > 0 && (c->in_off == c->in_len || c->in_cap - c->in_len < 4096)) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap == c->in_len) {
        /* Full with one incomplete request: the limits checked while framing keep it
         * under IN_MAX, so growing is always the answer. */
        size_t cap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
        if (cap > IN_MAX)
            cap = IN_MAX;
        if (cap == c->in_cap)
            return -EMSGSIZE;
        char *p = realloc(c->in, cap);
        if (!p)
            return -ENOMEM;
        c->in = p;
        c->in_cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0) {
            c->rd_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

/* Makes all the progress possible without blocking: frame and answer buffered requests,
 * produce generated bodies, send; then decide what to wait for. */
static void conn_run(struct worker *w, struct conn *c)
{
    for (;;) {
        bool progress = false;
        while (c->wait == WAIT_NONE && !c->gen_active && !c->closing && !c->broken &&
               demo_out_pending(c) < OUT_HIGH) {
            if (demo_conn_handle_one(w, c) <= 0)
                break;
            progress = true;
        }
        while (c->gen_active && !c->broken && demo_out_pending(c) < OUT_HIGH) {
            demo_gen_fill(c);
            progress = true;
        }
        if (c->broken) {
            conn_close(w, c);
            return;
        }
        if (demo_out_pending(c) > 0) {
            ssize_t n = demo_conn_flush(c);
            if (n < 0) {
                conn_close(w, c);
                return;
            }
            progress |= n > 0;
        }
        if (!progress)
            break;
    }

    bool idle = demo_out_pending(c) == 0 && !c->gen_active && c->wait == WAIT_NONE;
    if (idle && c->closing) {
        /* Shut our side and read until the peer closes: closing with unread input would
         * send a reset that can destroy the answer before the client reads it. */
        shutdown(c->fd, SHUT_WR);
        demo_timer_set(w, c, WAIT_LINGER, demo_now_ms() + LINGER_MS);
        conn_watch(w, c, EPOLLIN);
        return;
    }
    if (idle && c->rd_eof) {
        conn_close(w, c);
        return;
    }
    if (idle && c->in_len == 0 && c->in_cap > IN_FIRST) {
        free(c->in); /* a big upload is over; an idle connection keeps no big buffer */
        c->in = NULL;
        c->in_cap = 0;
    }
    uint32_t events = 0;
    if (demo_out_pending(c) > 0)
        events |= EPOLLOUT;
    if (!c->rd_eof && !c->closing && c->wait == WAIT_NONE && !c->gen_active &&
        demo_out_pending(c) < OUT_HIGH)
        events |= EPOLLIN;
    conn_watch(w, c, events);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->dead)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(w, c);
        return;
    }
    if (c->wait == WAIT_LINGER) {
        char scratch[4096];
        for (;;) {
            ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_close(w, c);
            return;
        }
    }
    if ((events & EPOLLIN) && conn_read(c) < 0) {
        conn_close(w, c);
        return;
    }
    conn_run(w, c);
}

static void do_accept(struct worker *w)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && w->reserve_fd >= 0) {
                /* Out of descriptors: use the spare one to accept and drop the connection,
                 * else the listening socket stays readable and the worker spins. */
                close(w->reserve_fd);
                fd = accept(g_listen_fd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fprintf(stderr, "demo-backend %s: out of file descriptors, dropped a client\n",
                        g_name);
            }
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->src.kind = SRC_CONN;
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->anext = w->all;
        if (w->all)
            w->all->aprev = c;
        w->all = c;
        atomic_fetch_add(&g_connections, 1);
        atomic_fetch_add(&g_active, 1);
    }
}

/* Fires due timers; returns the epoll timeout until the next one (-1: none). */
static int timers_run(struct worker *w)
{
    uint64_t now = demo_now_ms();
    struct conn *c, *tnext;
    for (c = w->timers; c; c = tnext) {
        tnext = c->tnext;
        if (c->deadline_ms > now)
            continue;
        enum conn_wait why = c->wait;
        timer_clear(w, c);
        if (why == WAIT_DELAY) {
            demo_respond_name(c);
            /* May set a linger timer on c, at the head of the list: tnext is unaffected. */
            conn_run(w, c);
        } else {
            conn_close(w, c);
        }
    }
    /* A second pass, since firing may have added timers (lingering closes). */
    uint64_t next = UINT64_MAX;
    for (c = w->timers; c; c = c->tnext)
        if (c->deadline_ms < next)
            next = c->deadline_ms;
    if (next == UINT64_MAX)
        return -1;
    return next > now ? (int)(next - now) : 0;
}

void *demo_worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    int timeout = -1;

    while (!atomic_load(&g_stop)) {
        int n = epoll_wait(w->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "demo-backend %s: epoll_wait: %s\n", g_name, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct src *s = evs[i].data.ptr;
            if (s->kind == SRC_LISTEN)
                do_accept(w);
            else if (s->kind == SRC_CONN)
                conn_event(w, (struct conn *)s, evs[i].events);
            /* SRC_WAKE: g_stop is set; the loop condition sees it. */
        }
        timeout = timers_run(w);
        conn_free_dead(w);
    }
    while (w->all)
        conn_close(w, w->all);
    conn_free_dead(w);
    return NULL;
}
