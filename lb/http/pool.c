/*
 * HTTP pools: header buffers, each server's idle upstream connections, and requests waiting
 * for a free fixed-file entry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/cache.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "static/snap.h"

static size_t hbuf_map_size(const struct http_worker *x)
{
    return ((size_t)x->hbuf_size + HBUF_PAGE - 1) & ~(size_t)(HBUF_PAGE - 1);
}

char *http_hbuf_get(struct io_worker *w)
{
    struct http_worker *x = hw(w);
    if (x->hbuf_nfree) {
        char *b = x->hbuf_free[--x->hbuf_nfree];
        if (x->hbuf_nfree < x->hbuf_low)
            x->hbuf_low = x->hbuf_nfree;
        if (x->hbuf_nfree < x->hbuf_clean)
            x->hbuf_clean = x->hbuf_nfree;
        return b;
    }
    if (x->hbuf_total >= w->nconns)
        return NULL;
    /* The pool grows to its high-water mark once and then only recycles. A mapping of its
     * own, so that http_hbuf_trim can give every page of it back (from malloc, a chunk
     * header would keep a page of each buffer). */
    void *b =
        mmap(NULL, hbuf_map_size(x), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return NULL;
    x->hbuf_total++;
    return b;
}

void http_hbuf_release(struct io_worker *w, char *b)
{
    if (b)
        munmap(b, hbuf_map_size(hw(w)));
}

/* The free list is a stack: its bottom entries, below the lowest depth it fell to over a
 * period, were not used in that period. Those give their pages back to the kernel
 * (MADV_DONTNEED: the next use finds zeroed pages), all but HBUF_WARM kept for the next
 * burst; hbuf_clean counts the bottom entries already given back. A burst of requests
 * (hundreds of connections set up at once) then costs memory while it lasts, not for as
 * long as the worker lives. */
void http_hbuf_trim(struct io_worker *w)
{
    struct http_worker *x = hw(w);
    if (w->now_ms - x->hbuf_trim_ms < HBUF_TRIM_MS)
        return;
    x->hbuf_trim_ms = w->now_ms;
    uint32_t cold = x->hbuf_low;
    x->hbuf_low = x->hbuf_nfree;
    uint32_t warm_from = x->hbuf_nfree > HBUF_WARM ? x->hbuf_nfree - HBUF_WARM : 0;
    uint32_t end = cold < warm_from ? cold : warm_from;
    for (uint32_t i = x->hbuf_clean; i < end; i++)
        madvise(x->hbuf_free[i], hbuf_map_size(x), MADV_DONTNEED);
    if (end > x->hbuf_clean)
        x->hbuf_clean = end;
}

void http_hbuf_put(struct io_worker *w, struct http_state *h)
{
    if (!h->hbuf)
        return;
    hw(w)->hbuf_free[hw(w)->hbuf_nfree++] = h->hbuf;
    h->hbuf = NULL;
    h->hlen = h->scanned = 0;
    h->out_off = h->out_len = h->out_sent = 0;
}

/* ---- the backend pool ---- */

static struct http_srv_conns *srv_conns(struct io_worker *w, uint32_t cluster, uint32_t server)
{
    return &hw(w)->srv[cluster][server];
}

void http_pool_unlink(struct io_worker *w, struct http_conn *b)
{
    uint32_t *head = &srv_conns(w, b->pick.cluster, (uint32_t)b->pick.server)->idle;
    uint32_t slot = b->base.slot;
    if (b->h.pool_prev != NONE)
        slot_conn(w, b->h.pool_prev)->h.pool_next = b->h.pool_next;
    else if (*head == slot)
        *head = b->h.pool_next;
    if (b->h.pool_next != NONE)
        slot_conn(w, b->h.pool_next)->h.pool_prev = b->h.pool_prev;
    b->h.pool_prev = b->h.pool_next = NONE;
}

void http_pool_put(struct io_worker *w, struct http_conn *b)
{
    uint32_t *head = &srv_conns(w, b->pick.cluster, (uint32_t)b->pick.server)->idle;
    b->h.phase = HS_IDLE;
    b->h.pool_prev = NONE;
    b->h.pool_next = *head;
    if (*head != NONE)
        slot_conn(w, *head)->h.pool_prev = b->base.slot;
    *head = b->base.slot;
    b->base.last_ms = w->now_ms;
    http_hbuf_put(w, &b->h);
    /* A recv stays armed: it holds no buffer, and tells us at once when the server closes
     * the idle connection. */
    arm_recv(w, b, &b->st);
    /* A request queued for this server, or for a file slot, can have this connection. */
    http_cwait_wake(w, b->pick.cluster, (uint32_t)b->pick.server);
    io_fdwait_wake(w);
}

struct http_conn *http_pool_take(struct io_worker *w, uint32_t cluster, uint32_t server)
{
    uint32_t slot = srv_conns(w, cluster, server)->idle;
    if (slot == NONE)
        return NULL;
    struct http_conn *b = slot_conn(w, slot);
    http_pool_unlink(w, b);
    b->h.phase = HS_BUSY;
    return b;
}

/* ---- the connect window: requests waiting for a connection to their server ---- */

void http_cwait_push(struct io_worker *w, struct http_conn *c)
{
    struct http_srv_conns *q = srv_conns(w, c->pick.cluster, (uint32_t)c->pick.server);
    c->h.phase = HC_CONNECT;
    c->h.flags |= H_F_CWAIT;
    c->base.last_ms = w->now_ms;
    c->h.pool_next = NONE;
    c->h.pool_prev = q->wait_tail;
    if (q->wait_tail == NONE)
        q->wait_head = c->base.slot;
    else
        slot_conn(w, q->wait_tail)->h.pool_next = c->base.slot;
    q->wait_tail = c->base.slot;
    atomic_fetch_add_explicit(
        &w->rt->clusters[c->pick.cluster].servers[c->pick.server].connect_queued, 1,
        memory_order_relaxed);
}

void http_cwait_unlink(struct io_worker *w, struct http_conn *c)
{
    if (!(c->h.flags & H_F_CWAIT))
        return;
    struct http_srv_conns *q = srv_conns(w, c->pick.cluster, (uint32_t)c->pick.server);
    if (c->h.pool_prev == NONE)
        q->wait_head = c->h.pool_next;
    else
        slot_conn(w, c->h.pool_prev)->h.pool_next = c->h.pool_next;
    if (c->h.pool_next == NONE)
        q->wait_tail = c->h.pool_prev;
    else
        slot_conn(w, c->h.pool_next)->h.pool_prev = c->h.pool_prev;
    c->h.pool_prev = c->h.pool_next = NONE;
    c->h.flags &= ~H_F_CWAIT;
}

void http_cwait_shed(struct io_worker *w, struct http_conn *c)
{
    struct cl_cluster *cl = &w->rt->clusters[c->pick.cluster];
    lb_warn("request shed: no connection to its server came free in time",
            "listener=%s cluster=%s server=%s", lcf_of(w, c)->name, cl->cf->name,
            cl->servers[c->pick.server].cf->name);
    http_local_reply(w, c, 503, false, "Retry-After: 1\r\n");
}

void http_conn_proven(struct io_worker *w, struct http_conn *b)
{
    if (!(b->h.flags & H_F_UNPROVEN))
        return;
    b->h.flags &= ~H_F_UNPROVEN;
    srv_conns(w, b->pick.cluster, (uint32_t)b->pick.server)->unproven--;
    http_cwait_wake(w, b->pick.cluster, (uint32_t)b->pick.server);
}

void http_cwait_wake(struct io_worker *w, uint32_t cluster, uint32_t server)
{
    struct http_srv_conns *q = srv_conns(w, cluster, server);
    struct cl_cluster *cl = &w->rt->clusters[cluster];
    while (q->wait_head != NONE && (q->idle != NONE || q->unproven < HTTP_CONNECT_WINDOW)) {
        struct http_conn *c = slot_conn(w, q->wait_head);
        http_cwait_unlink(w, c);
        if (atomic_load_explicit(&cl->servers[server].flags, memory_order_relaxed)) {
            /* Down, ejected or draining meanwhile: the request picks again, as if it had
             * never chosen this server. */
            cl_pick_undo(&c->pick, cl);
            http_backend_acquire(w, c);
        } else {
            http_backend_use(w, c, true);
        }
    }
}

/* ---- waiting for a file slot ---- */

void http_fdwait_unlink(struct io_worker *w, struct http_conn *c)
{
    io_fdwait_unlink(w, &c->base);
}

/* The fixed-file table is full (every slot holds a client or a backend socket): the
 * request waits for one to close instead of failing (http_on_fd_ready); the tick bounds
 * the wait by the cluster's response timeout. */
void http_fdwait_push(struct io_worker *w, struct http_conn *c)
{
    c->h.phase = HC_CONNECT;
    c->base.last_ms = w->now_ms;
    io_fdwait_push(w, &c->base);
}

void http_on_fd_ready(struct io_worker *w, struct io_conn *c)
{
    http_backend_acquire(w, hc(c));
}
