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
#include "lb/cache/l2.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/fleet/fleet.h"
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
const struct http_req *http_cache_reparse(struct io_worker *w, struct http_conn *c)
{
    static __thread struct http_req rq;
    memset(&rq.scan, 0, sizeof(rq.scan));
    size_t max = hw(w)->hbuf_size / 2;
    if (http_parse_request(c->h.hbuf, c->h.hlen, max, max, &rq) <= 0)
        return NULL;
    return &rq;
}

void http_cache_count(struct io_worker *w, struct http_conn *c, enum metrics_cache_result r)
{
    if (w->rt->lstats)
        metrics_listener_count_cache(&w->rt->lstats[c->base.listener], r);
}

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* Fields a 304 keeps from the stored 200 (RFC 9110 15.4.5), besides Age and ours. */
static bool keep_in_304(const char *name, size_t n)
{
    static const char *const keep[] = {
        "cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"};
    for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
        if (strlen(keep[k]) == n && strncasecmp(name, keep[k], n) == 0)
            return true;
    return false;
}

/*
 * The header a hit sends, into @o: the stored one (for a 304: its status line changed and
 * only the fields a 304 keeps) without the stored Age, then Age (RFC 9111 5.1: the
 * current age, on every hit), X-Cache and this client's Connection field.
 */
static void hit_header(struct io_worker *w, struct http_conn *c, struct cache_entry *e, int status,
                       struct http_out *o)
{
    size_t hl;
    const char *hdr = cache_entry_hdr(e, &hl);
    const char *end = hdr + hl - 2; /* the empty line */
    const char *line = memchr(hdr, '\n', hl);
    if (!line)
        return;
    line++;
    if (status == 304)
        http_out_put(o, "HTTP/1.1 304 Not Modified\r\n", 27);
    else
        http_out_put(o, hdr, (size_t)(line - hdr));
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *colon = memchr(line, ':', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl + 1 - line) : (size_t)(end - line);
        size_t nlen = colon ? (size_t)(colon - line) : 0;
        bool drop = (nlen == 3 && strncasecmp(line, "age", 3) == 0) ||
                    (status == 304 && !keep_in_304(line, nlen));
        if (!drop)
            http_out_put(o, line, len);
        line += len;
    }
    char age[48];
    int n = snprintf(age, sizeof(age), "Age: %llu\r\n",
                     (unsigned long long)(cache_entry_age_ms(e, w->now_ms) / 1000));
    http_out_put(o, age, (size_t)n);
    if (c->h.xcache == H_XC_HIT_L2)
        http_out_put(o, "X-Cache: HIT-L2\r\n", 17);
    else if (c->h.xcache == H_XC_REVALIDATED)
        http_out_put(o, "X-Cache: REVALIDATED\r\n", 22);
    else if (c->h.xcache == H_XC_STALE)
        http_out_put(o, "X-Cache: STALE\r\n", 16);
    else if (c->h.xcache)
        http_out_put(o, "X-Cache: HIT\r\n", 14);
    if (w->stopping)
        c->h.flags |= H_F_CLOSE;
    if (c->h.flags & H_F_CLOSE)
        http_out_put(o, "Connection: close\r\n", 19);
    else if (c->h.flags & H_F_KEEPALIVE10)
        http_out_put(o, "Connection: keep-alive\r\n", 24);
    http_out_put(o, "\r\n", 2);
}

/* Sends a cached answer, 200 (its stored status) or 304; takes the reference in @e. */
void http_cache_serve(struct io_worker *w, struct http_conn *c, struct cache_entry *e, int status)
{
    size_t bl;
    const char *body = cache_entry_body(e, &bl);
    if (!c->h.body.done)
        c->h.flags |= H_F_CLOSE;
    c->h.centry = e;
    c->h.status = (uint16_t)(status == 304 ? 304 : cache_entry_status(e));
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_STATIC;
    if (c->h.xcache == H_XC_MISS)
        c->h.xcache = H_XC_HIT;
    /* the stored header left room for what is added (http_fill_head) */
    struct http_out o = {.p = c->h.hbuf + hw(w)->hbuf_size / 2, .cap = hw(w)->hbuf_size / 2};
    hit_header(w, c, e, status, &o);
    bool nobody = status == 304 || (c->h.flags & H_F_HEAD);
    c->h.xp[0] = o.p;
    c->h.xl[0] = o.overflow ? 0 : (uint32_t)o.n;
    c->h.xp[1] = nobody ? NULL : body;
    c->h.xl[1] = nobody || o.overflow ? 0 : (uint32_t)bl;
    if (o.overflow)
        c->h.flags |= H_F_CLOSE; /* cannot happen (see above); never send half a header */
    if (!(c->st.flags & IO_ST_F_SENDING))
        http_client_send_static(w, c);
}

/* Adds the field that revalidates @e to the request built for the origin (before its empty
 * line, in hbuf's second half). Returns false when it does not fit. */
static bool add_validator(struct io_worker *w, struct http_conn *c, const struct cache_entry *e)
{
    char *o = c->h.hbuf + c->h.out_off;
    size_t room = hw(w)->hbuf_size - c->h.out_off - c->h.out_len;
    if (c->h.out_len < 2 || room < 160)
        return false;
    size_t n = cache_entry_validator(e, o + c->h.out_len - 2, room);
    if (!n)
        return false;
    memcpy(o + c->h.out_len - 2 + n, "\r\n", 2);
    c->h.out_len += (uint32_t)n;
    return true;
}

bool http_cache_request(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                        const char *buf, const struct http_req *req)
{
    c->h.xcache = r->cache.debug_header ? H_XC_MISS : H_XC_NONE;
    struct cache_entry *e;
    enum cache_decision d = cache_decide(hw(w)->cache, buf, req, w->now_ms, wall_now(), &e);
    switch (d) {
    case CACHE_D_HIT:
    case CACHE_D_304:
        http_cache_count(w, c, d == CACHE_D_304 ? METRICS_CACHE_NOT_MODIFIED : METRICS_CACHE_HIT);
        http_cache_serve(w, c, e, d == CACHE_D_304 ? 304 : 200);
        return true;
    case CACHE_D_504: /* RFC 9111 5.2.1.7 */
        http_cache_count(w, c, METRICS_CACHE_MISS);
        http_local_reply(w, c, 504, !c->h.body.done, NULL);
        return true;
    case CACHE_D_BYPASS:
        http_cache_count(w, c, METRICS_CACHE_BYPASS);
        return false;
    case CACHE_D_PASS:
        http_cache_count(w, c, METRICS_CACHE_MISS);
        return false;
    case CACHE_D_REVALIDATE:
    case CACHE_D_FILL:
        break;
    }
    struct cache_fill *f = NULL;
    int rc = cache_fill_begin(hw(w)->cache, buf, req, http_waiter_token(w, c), &f);
    if (rc == CACHE_FILL_WAIT && e && cache_entry_stale_while_revalidate(e, w->now_ms)) {
        /* another request refreshes it: this one need not wait (RFC 5861) */
        http_cache_count(w, c, METRICS_CACHE_STALE);
        if (c->h.xcache)
            c->h.xcache = H_XC_STALE;
        http_cache_serve(w, c, e, 200);
        return true;
    }
    if (rc == CACHE_FILL_WAIT) {
        if (e)
            cache_entry_unref(e);
        http_cache_count(w, c, METRICS_CACHE_MISS);
        c->h.phase = HC_CACHE_WAIT; /* http_cache_wake() takes it from here */
        return true;
    }
    if (rc == CACHE_FILL_NEW)
        c->h.fill = f;
    /* the stale entry goes along: revalidated by a 304, served if the origin fails and
     * stale-if-error allows it, else replaced by the answer as a miss would be */
    bool keep = e && rc == CACHE_FILL_NEW;
    if (keep && d == CACHE_D_REVALIDATE) {
        if (add_validator(w, c, e))
            c->h.flags |= H_F_REVALIDATING; /* counted when the origin answers */
        else
            keep = cache_entry_stale_if_error(e, w->now_ms);
    }
    if (e && !keep) {
        cache_entry_unref(e);
        e = NULL;
    }
    c->h.reval = e;
    if (!e && c->h.fill && r->cache.shared_idx >= 0 && http_l2_lookup(w, c, r, buf, req))
        return true; /* counted once the shard answered */
    if (!(c->h.flags & H_F_REVALIDATING))
        http_cache_count(w, c, METRICS_CACHE_MISS);
    return false;
}

bool http_cache_serve_stale(struct io_worker *w, struct http_conn *c)
{
    struct cache_entry *e = c->h.reval;
    if (!e || !cache_entry_stale_if_error(e, w->now_ms))
        return false;
    c->h.reval = NULL;
    http_fill_abort(w, c); /* its waiters try the origin themselves */
    struct http_conn *b = peer_of(w, c);
    if (b) {
        detach(c, b);
        io_conn_close(w, &b->base, "origin failed: stale answer served");
    }
    if (c->pick.counted) {
        cl_server_release(&w->rt->clusters[c->pick.cluster].servers[c->pick.server]);
        c->pick.counted = 0;
    }
    http_cache_count(w, c, METRICS_CACHE_STALE);
    if (c->h.xcache)
        c->h.xcache = H_XC_STALE;
    c->h.flags |= H_F_RESP_HDR | H_F_RESP_DONE;
    http_cache_serve(w, c, e, 200);
    return true;
}

void http_cache_reval_answered(struct io_worker *w, struct http_conn *c)
{
    if (c->h.flags & H_F_REVALIDATING)
        http_cache_count(w, c, METRICS_CACHE_MISS); /* the origin sent a new answer */
    c->h.flags &= ~H_F_REVALIDATING;
    http_cache_reval_drop(c);
}

void http_cache_reval_drop(struct http_conn *c)
{
    if (c->h.reval)
        cache_entry_unref(c->h.reval);
    c->h.reval = NULL;
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
    const struct http_req *rq = e ? http_cache_reparse(w, c) : NULL;
    if (e && rq && cache_entry_match(e, c->h.hbuf, rq)) {
        cache_entry_ref(e);
        http_cache_serve(w, c, e, 200);
        return;
    }
    c->h.phase = HC_CONNECT;
    http_backend_acquire(w, c);
}

void http_fill_abort(struct io_worker *w, struct http_conn *c)
{
    if (c->h.flags & H_F_L2_LOCK)
        http_l2_store(w, c, NULL, -1, 0); /* releases the lock */
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
    char *blob = NULL;
    ssize_t n = -1;
    uint64_t ttl = 0;
    const struct cache_entry *fe = cache_fill_entry(f);
    if ((c->h.flags & H_F_L2_STORE) && fe) {
        n = cache_l2_encode(fe, w->now_ms, (int64_t)wall_now() * 1000, &blob);
        ttl = cache_l2_ttl_ms(fe, w->now_ms);
    }
    if (cache_fill_commit(hw(w)->cache, f, http_cache_wake, w) < 0) {
        lb_debug("cache fill not stored", "target_len=%u", c->h.target_len);
        n = -1;
    }
    if (c->h.flags & (H_F_L2_STORE | H_F_L2_LOCK))
        http_l2_store(w, c, blob, n, ttl);
    free(blob);
}

/* The route's rules and the exchange's times, for cache_policy_eval. The request time is
 * when the request began, which can only make an answer's age larger (RFC 9111 4.2.3). */
static void policy_inputs(struct io_worker *w, const struct http_conn *c,
                          const struct conf_route *r, struct cache_rules *rules,
                          struct cache_times *t)
{
    *rules = (struct cache_rules){.heuristic_ms = r->cache.ttl_ms,
                                  .max_ttl_ms = r->cache.max_ttl_ms,
                                  .max_body = cache_item_max(hw(w)->cache)};
    /* An answer for a shared cache may be larger than L1 keeps: up to its max_object. */
    if (r->cache.shared_idx >= 0) {
        uint64_t mo = w->rt->conf->caches[r->cache.shared_idx].max_object;
        if (mo > rules->max_body)
            rules->max_body = mo;
    }
    *t = (struct cache_times){.wall_s = wall_now(),
                              .delay_ms =
                                  w->now_ms > c->h.t_start_ms ? w->now_ms - c->h.t_start_ms : 0};
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
    const struct http_req *rq = http_cache_reparse(w, c);
    struct cache_rules rules;
    struct cache_times t;
    policy_inputs(w, c, r, &rules, &t);
    struct cache_policy p;
    enum cache_verdict v =
        rq ? cache_policy_eval(c->h.hbuf, rq, b->h.hbuf, resp, &rules, &t, &p) : CACHE_NS_METHOD;
    /* For a shared cache the entry may outgrow L1's: its body, with room for the header,
     * the key and the bookkeeping (each bounded by a header buffer). */
    if (r->cache.shared_idx >= 0 && c->h.fill)
        cache_fill_set_limit(hw(w)->cache, c->h.fill, rules.max_body + 3 * hw(w)->hbuf_size);
    /* The stored header is built without Connection and X-Cache (interim); a hit adds Age,
     * X-Cache and its client's Connection field to it in the second half of hbuf
     * (http_cache_serve): keep room for them. */
    if (v != CACHE_OK || !http_build_response(w, c, b, resp, true) ||
        b->h.out_len + HTTP_CACHE_HDR_ROOM > hw(w)->hbuf_size / 2 ||
        cache_fill_head(hw(w)->cache, c->h.fill, &p, c->h.hbuf, rq, b->h.hbuf + b->h.out_off,
                        b->h.out_len, w->now_ms) < 0) {
        http_fill_abort(w, c);
    }
    http_build_response(w, c, b, resp, false);
}

/* Removes @host + @target from L1 and, on a route with a shared cache, from L2. */
static void drop(struct io_worker *w, struct http_conn *c, const char *host, size_t hlen,
                 const char *target, size_t tlen)
{
    cache_invalidate(hw(w)->cache, host, hlen, target, tlen);
    fleet_inval_send(host, hlen, target, tlen); /* the other instances' L1 */
    if (lcf_of(w, c)->routes[c->h.route].cache.shared_idx >= 0)
        http_l2_invalidate(w, c, host, hlen, target, tlen);
}

/* Removes @host + the path of URI @v (absolute on the same host, or absolute-path). */
static void invalidate_uri(struct io_worker *w, struct http_conn *c, const char *host, size_t hlen,
                           const char *v, size_t n)
{
    if (n > 7 && strncasecmp(v, "http://", 7) == 0) {
        v += 7, n -= 7;
    } else if (n > 8 && strncasecmp(v, "https://", 8) == 0) {
        v += 8, n -= 8;
    } else if (n == 0 || v[0] != '/' || (n > 1 && v[1] == '/')) {
        return; /* relative references and other schemes: not ours */
    } else {
        drop(w, c, host, hlen, v, n);
        return;
    }
    const char *slash = memchr(v, '/', n);
    size_t alen = slash ? (size_t)(slash - v) : n;
    /* RFC 9111 4.4: only a URI with the same host (a different one could be a DoS) */
    if (alen != hlen || strncasecmp(v, host, hlen) != 0)
        return;
    drop(w, c, host, hlen, slash ? slash : "/", slash ? n - alen : 1);
}

void http_cache_unsafe_done(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                            const struct http_resp *resp)
{
    if (resp->status < 200 || resp->status >= 400)
        return;
    const struct http_req *rq = http_cache_reparse(w, c);
    if (!rq || rq->method == HTTP_M_GET || rq->method == HTTP_M_HEAD ||
        rq->method == HTTP_M_OPTIONS || rq->method == HTTP_M_TRACE)
        return;
    const char *buf = c->h.hbuf, *host = buf + rq->host.off;
    drop(w, c, host, rq->host.len, buf + rq->target.off, rq->target.len);
    if (w->rt->lstats)
        atomic_fetch_add_explicit(&w->rt->lstats[c->base.listener].cache_invalidations, 1,
                                  memory_order_relaxed);
    static const char *const names[] = {"location", "content-location"};
    for (int k = 0; k < 2; k++) {
        int i = http_find_hdr(b->h.hbuf, resp->hdrs, resp->nhdrs, names[k], 0);
        if (i >= 0)
            invalidate_uri(w, c, host, rq->host.len, b->h.hbuf + resp->hdrs[i].value.off,
                           resp->hdrs[i].value.len);
    }
}

/* Fields of a 304 that do not update the stored header: hop-by-hop ones and the framing of
 * a message that has no body. */
static bool not_updating(const char *name, size_t n)
{
    static const char *const skip[] = {
        "connection", "keep-alive", "transfer-encoding", "te",
        "trailer",    "upgrade",    "proxy-connection",  "content-length"};
    for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
        if (strlen(skip[k]) == n && strncasecmp(name, skip[k], n) == 0)
            return true;
    return false;
}

/*
 * The stored header of @old with the fields of the 304 @resp (in @rbuf) put in place of the
 * stored ones of the same name (RFC 9111 3.2), into @o. The stored Age goes: the 304's own,
 * if any, is its age now.
 */
static void merge_header(const struct cache_entry *old, const char *rbuf,
                         const struct http_resp *resp, struct http_out *o)
{
    size_t hl;
    const char *hdr = cache_entry_hdr(old, &hl), *end = hdr + hl - 2;
    const char *line = memchr(hdr, '\n', hl);
    if (!line) {
        o->overflow = true;
        return;
    }
    line++;
    http_out_put(o, hdr, (size_t)(line - hdr));
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *colon = memchr(line, ':', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl + 1 - line) : (size_t)(end - line);
        size_t nlen = colon ? (size_t)(colon - line) : 0;
        bool drop = nlen == 3 && strncasecmp(line, "age", 3) == 0;
        for (uint32_t i = 0; i < resp->nhdrs && !drop; i++) {
            const struct http_hdr *h = &resp->hdrs[i];
            drop = h->name.len == nlen && strncasecmp(rbuf + h->name.off, line, nlen) == 0 &&
                   !not_updating(line, nlen);
        }
        if (!drop)
            http_out_put(o, line, len);
        line += len;
    }
    for (uint32_t i = 0; i < resp->nhdrs; i++) {
        const struct http_hdr *h = &resp->hdrs[i];
        if (not_updating(rbuf + h->name.off, h->name.len))
            continue;
        http_out_put(o, rbuf + h->name.off, h->name.len);
        http_out_put(o, ": ", 2);
        http_out_put(o, rbuf + h->value.off, h->value.len);
        http_out_put(o, "\r\n", 2);
    }
    http_out_put(o, "\r\n", 2);
}

/* Stores @old's body under the merged header @hdr through @c's fill. Returns 0 or -errno. */
static int refresh_store(struct io_worker *w, struct http_conn *c, const struct cache_entry *old,
                         char *hdr, size_t hl)
{
    const struct conf_route *r = &lcf_of(w, c)->routes[c->h.route];
    const struct http_req *rq = http_cache_reparse(w, c);
    static __thread struct http_resp mr;
    memset(&mr.scan, 0, sizeof(mr.scan));
    if (!rq || !c->h.fill ||
        http_parse_response(hdr, hl, hw(w)->hbuf_size / 2, HTTP_M_GET, &mr) != (int)hl)
        return -EINVAL;
    struct cache_rules rules;
    struct cache_times t;
    policy_inputs(w, c, r, &rules, &t);
    struct cache_policy p;
    size_t bl;
    const char *body = cache_entry_body(old, &bl);
    if (cache_policy_eval(c->h.hbuf, rq, hdr, &mr, &rules, &t, &p) != CACHE_OK ||
        hl + HTTP_CACHE_HDR_ROOM > hw(w)->hbuf_size / 2)
        return -EINVAL;
    int rc = cache_fill_head(hw(w)->cache, c->h.fill, &p, c->h.hbuf, rq, hdr, hl, w->now_ms);
    if (rc == 0)
        rc = cache_fill_append(hw(w)->cache, c->h.fill, body, bl);
    if (rc == 0) {
        struct cache_fill *f = c->h.fill;
        c->h.fill = NULL;
        rc = cache_fill_commit(hw(w)->cache, f, http_cache_wake, w);
    }
    return rc;
}

struct cache_entry *http_cache_refresh(struct io_worker *w, struct http_conn *c,
                                       struct http_conn *b, const struct http_resp *resp)
{
    struct cache_entry *old = c->h.reval;
    c->h.reval = NULL;
    /* the header rewritten for the client waits in b's second half: not needed now */
    struct http_out o = {.p = b->h.hbuf + hw(w)->hbuf_size / 2, .cap = hw(w)->hbuf_size / 2};
    merge_header(old, b->h.hbuf, resp, &o);
    struct cache_entry *e = NULL;
    if (!o.overflow && refresh_store(w, c, old, o.p, o.n) == 0) {
        const struct http_req *rq = http_cache_reparse(w, c);
        e = rq ? cache_lookup(hw(w)->cache, c->h.hbuf, rq, w->now_ms) : NULL;
    }
    http_fill_abort(w, c); /* when it could not be stored: its waiters fetch themselves */
    http_cache_count(w, c, METRICS_CACHE_REVALIDATED);
    if (c->h.xcache)
        c->h.xcache = H_XC_REVALIDATED;
    if (!e)
        return old;
    cache_entry_unref(old);
    return e;
}
