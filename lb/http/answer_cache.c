/*
 * The L1 cache on the data path: hits served from memory, one fill per key with the other
 * requests for it waiting, and the fill fed from the upstream's answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* ---- the L1 cache ---- */

uint64_t http_waiter_token(struct io_worker *w, struct http_conn *c)
{
    return (uint64_t)c->base.slot << 32 | c->base.gen;
}

/* Parses the client's request again from hbuf (the cache needs its fields after the
 * per-thread parse result was reused). */
static const struct http_req *reparse(struct io_worker *w, struct http_conn *c)
{
    static __thread struct http_req rq;
    memset(&rq.scan, 0, sizeof(rq.scan));
    size_t max = hw(w)->hbuf_size / 2;
    if (http_parse_request(c->h.hbuf, c->h.hlen, max, max, &rq) <= 0)
        return NULL;
    return &rq;
}

/* Sends a cached answer; takes the reference in @e. */
void http_cache_serve(struct io_worker *w, struct http_conn *c, struct cache_entry *e)
{
    size_t hl, bl;
    const char *hdr = cache_entry_hdr(e, &hl);
    const char *body = cache_entry_body(e, &bl);
    if (!c->h.body.done)
        c->h.flags |= H_F_CLOSE;
    c->h.centry = e;
    c->h.status = 200;
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_STATIC;
    http_set_memory_answer(w, c, hdr, hl, (c->h.flags & H_F_HEAD) ? NULL : body,
                           (c->h.flags & H_F_HEAD) ? 0 : bl,
                           body == hdr + hl && !(c->h.flags & H_F_HEAD));
    if (!(c->st.flags & IO_ST_F_SENDING))
        http_client_send_static(w, c);
}

/* A fill this request was waiting for ended: serve the new entry, or fetch ourselves. */
void http_cache_wake(void *arg, uint64_t waiter, struct cache_entry *e)
{
    struct io_worker *w = arg;
    uint32_t slot = (uint32_t)(waiter >> 32), gen = (uint32_t)waiter;
    struct io_conn *ic = io_conn_get(w, slot, gen);
    if (!ic || ic->ops != &http_client_ops)
        return;
    struct http_conn *c = hc(ic);
    if (c->h.phase != HC_CACHE_WAIT)
        return;
    const struct http_req *rq = e ? reparse(w, c) : NULL;
    if (e && rq && cache_entry_match(e, c->h.hbuf, rq)) {
        cache_entry_ref(e);
        http_cache_serve(w, c, e);
        return;
    }
    c->h.phase = HC_CONNECT;
    http_backend_acquire(w, c);
}

void http_fill_abort(struct io_worker *w, struct http_conn *c)
{
    if (!c->h.fill)
        return;
    struct cache_fill *f = c->h.fill;
    c->h.fill = NULL;
    cache_fill_abort(hw(w)->cache, f, http_cache_wake, w);
}

void http_fill_commit(struct io_worker *w, struct http_conn *c)
{
    if (!c->h.fill)
        return;
    struct cache_fill *f = c->h.fill;
    c->h.fill = NULL;
    if (cache_fill_commit(hw(w)->cache, f, http_cache_wake, w) < 0)
        lb_debug("cache fill not stored", "target_len=%u", c->h.target_len);
}

/* The answer to a cache fill arrived: record its header if it may be stored, else give the
 * fill up (its waiters fetch for themselves). The cached header is the one clients get,
 * minus the Connection field each client gets its own of; then the client's own header is
 * built again over it. */
void http_fill_head(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                    const struct http_resp *resp)
{
    const struct conf_listener *lcf = lcf_of(w, c);
    const struct conf_route *r = &lcf->routes[c->h.route];
    const struct http_req *rq = reparse(w, c);
    struct cache_policy p;
    enum cache_verdict v = rq ? cache_policy_eval(c->h.hbuf, rq, b->h.hbuf, resp, r->cache.ttl_ms,
                                                  cache_item_max(hw(w)->cache), &p)
                              : CACHE_NS_METHOD;
    /* A hit adds its client's Connection field to the stored header in the second half of
     * hbuf (http_set_memory_answer): keep room for it. */
    if (v != CACHE_OK || !http_build_response(w, c, b, resp, true) ||
        b->h.out_len + 32 > hw(w)->hbuf_size / 2 ||
        cache_fill_head(hw(w)->cache, c->h.fill, &p, c->h.hbuf, rq, b->h.hbuf + b->h.out_off,
                        b->h.out_len, w->now_ms) < 0) {
        http_fill_abort(w, c);
    }
    http_build_response(w, c, b, resp, false);
}
