/*
 * Per-worker HTTP state (http_module) and the timeouts of both HTTP connection kinds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/cache.h"
#include "lb/cache/purge.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/io/tls.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "lb/tls/tls.h"
#include "static/snap.h"

/* A backend connection: pooled ones close when idle too long or when their server is
 * drained or down. */
static void upstream_tick(struct io_worker *w, struct http_conn *c, uint64_t now)
{
    const struct conf_cluster *ccf = w->rt->clusters[c->pick.cluster].cf;
    if ((c->h.flags & H_F_UNPROVEN) && c->h.t_conn_ms && now - c->h.t_conn_ms >= HTTP_PROVE_MS)
        http_conn_proven(w, c); /* connected a while ago: the server took it */
    if (c->h.phase == HS_IDLE && ccf->idle_timeout_ms &&
        now - c->base.last_ms > ccf->idle_timeout_ms)
        io_conn_close(w, &c->base, "pooled connection idle");
    else if (c->h.phase == HS_IDLE &&
             (atomic_load_explicit(&w->rt->clusters[c->pick.cluster].servers[c->pick.server].flags,
                                   memory_order_relaxed) &
              (CL_SRV_F_DRAINING | CL_SRV_F_DOWN)))
        io_conn_close(w, &c->base, "server drained or down"); /* its pooled connections go */
}

/* A client sending its request body: lb waits on it (nothing of it is queued, so the delay is
 * not the server's), and it is behind timeouts.body plus a second per CONF_BODY_MIN_RATE
 * bytes received. */
static bool body_too_slow(const struct http_conn *c, const struct conf_listener *lcf, uint64_t now)
{
    /* With Expect: 100-continue the client may be waiting for the server's go-ahead. */
    if (!lcf->body_timeout_ms || c->h.body.done || c->st.qbytes ||
        (c->h.flags & (H_F_CLIENT_EOF | H_F_CONTINUE)) || (c->st.flags & IO_ST_F_PAUSED))
        return false;
    uint64_t allowed = lcf->body_timeout_ms + c->h.bytes_in * 1000 / CONF_BODY_MIN_RATE;
    return now - c->h.t_start_ms > allowed;
}

/* Answers 408 (or closes, once the answer began) a request whose body is too slow. */
static bool cut_slow_body(struct io_worker *w, struct http_conn *c, const struct conf_listener *lcf,
                          uint64_t now)
{
    if (!body_too_slow(c, lcf, now))
        return false;
    lb_info("request body too slow", "listener=%s bytes=%llu seconds=%llu", lcf->name,
            (unsigned long long)c->h.bytes_in,
            (unsigned long long)((now - c->h.t_start_ms) / 1000));
    if (c->h.flags & H_F_RESP_HDR)
        http_client_close(w, c, "request body too slow");
    else
        http_local_reply(w, c, 408, true, NULL);
    return true;
}

/* A request being forwarded: the cluster's response timeout, before the answer's header
 * (504, never retried: the server may have acted on it) and while its body stalls. */
static void forward_tick(struct io_worker *w, struct http_conn *c, uint64_t now)
{
    struct http_conn *b = peer_of(w, c);
    if (!b)
        return;
    const struct conf_cluster *ccf = w->rt->clusters[c->pick.cluster].cf;
    uint64_t rt = ccf->response_timeout_ms;
    if (rt && !(c->h.flags & H_F_RESP_HDR) && (c->h.flags & H_F_REQ_HDR_SENT) &&
        now - b->base.last_ms > rt && now - c->base.last_ms > rt) {
        c->h.flags |= H_F_RESP_BYTE; /* the server may have acted on it: no retry */
        http_request_failed(w, c, b, false, 504, "response timeout");
    } else if (rt && (c->h.flags & H_F_RESP_HDR) && now - b->base.last_ms > rt &&
               now - c->base.last_ms > rt) {
        http_client_close(w, c, "response stalled");
    }
}

void http_tick(struct io_worker *w, struct io_conn *base)
{
    struct http_conn *c = hc(base);
    uint64_t now = w->now_ms;
    if (w->stopping) {
        /* Stopping (SIGTERM, or a reload replaced this generation): pooled backend
         * connections go now; a busy client connection gets Connection: close on its
         * answer (http_client_next sees the flag); an idle one is closed once it has been idle
         * for LINGER_MS, since closing it at once would race with a request the client
         * may be sending on it right now. */
        if (c->h.phase == HS_IDLE ||
            (c->h.phase == HC_IDLE && now - c->base.last_ms >= LINGER_MS)) {
            io_conn_close(w, &c->base, "stopping");
            return;
        }
    }
    if (base->ops == &http_upstream_ops) {
        upstream_tick(w, c, now);
        return;
    }
    const struct conf_listener *lcf = lcf_of(w, c);
    switch (c->h.phase) {
    case HC_IDLE:
        if (io_tls_handshaking(&c->st)) {
            if (lcf->header_timeout_ms && now - c->h.t_start_ms > lcf->header_timeout_ms)
                io_conn_close(w, &c->base, "tls handshake timeout");
        } else if (lcf->idle_timeout_ms && now - c->base.last_ms > lcf->idle_timeout_ms) {
            io_conn_close(w, &c->base, "idle timeout");
        } else {
            http_client_park(w, c); /* @c may be gone: nothing follows */
        }
        break;
    case HC_HEADER:
        if (lcf->header_timeout_ms && now - c->h.t_start_ms > lcf->header_timeout_ms)
            http_local_reply(w, c, 408, true, NULL);
        break;
    case HC_CONNECT:
        /* Queued for a file slot or a connection: as long as it would wait for an answer. */
        if ((c->h.flags & H_F_CWAIT) &&
            now - c->base.last_ms > w->rt->clusters[c->pick.cluster].cf->response_timeout_ms) {
            http_cwait_unlink(w, c);
            http_cwait_shed(w, c);
        } else if ((c->base.flags & IO_CONN_F_FDWAIT) &&
            now - c->base.last_ms > w->rt->clusters[c->pick.cluster].cf->response_timeout_ms) {
            http_fdwait_unlink(w, c);
            lb_warn("request shed: no file slot came free in time", "listener=%s", lcf->name);
            http_local_reply(w, c, 503, false, "Retry-After: 1\r\n");
        }
        break;
    case HC_FORWARD:
        if (!cut_slow_body(w, c, lcf, now))
            forward_tick(w, c, now);
        break;
    case HC_L2_WAIT: /* a lookup in flight is bounded by caches.NAME.timeout */
        http_l2_tick(w, c);
        break;
    case HC_ENQ_BODY: /* HC_ENQ_WAIT: bounded by global.redis.timeout */
        cut_slow_body(w, c, lcf, now);
        break;
    case HC_TUNNEL:
        if (lcf->idle_timeout_ms && now - c->base.last_ms > lcf->idle_timeout_ms) {
            struct http_conn *b = peer_of(w, c);
            if (!b || now - b->base.last_ms > lcf->idle_timeout_ms)
                http_client_close(w, c, "tunnel idle");
        }
        break;
    case HC_LINGER:
        if (now - c->base.last_ms > LINGER_MS)
            io_conn_close(w, &c->base, NULL);
        break;
    default:
        break;
    }
}

/* ---- per-worker state ---- */

static int http_mod_init(struct io_worker *w, void **state, struct lb_err *err)
{
    const struct conf *cf = w->rt->conf;
    struct http_worker *x = calloc(1, sizeof(*x));
    if (!x)
        goto fail;
    *state = x;
    uint64_t maxh = 0;
    bool any = false;
    for (size_t i = 0; i < cf->nlisteners; i++) {
        if (cf->listeners[i].protocol != CONF_PROTO_HTTP)
            continue;
        any = true;
        if (cf->listeners[i].max_header_bytes > maxh)
            maxh = cf->listeners[i].max_header_bytes;
    }
    hw(w)->alog_fd = w->rt->access_fd;
    hw(w)->alog_json = cf->global.access_format == CONF_ACCESS_JSON;
    if (getrandom(&hw(w)->rid_prefix, sizeof(hw(w)->rid_prefix), GRND_NONBLOCK) !=
        sizeof(hw(w)->rid_prefix)) {
        struct timespec ts; /* no entropy yet (early boot): time, pid and worker differ */
        clock_gettime(CLOCK_REALTIME, &ts);
        hw(w)->rid_prefix = (uint64_t)ts.tv_sec << 32 ^ (uint64_t)ts.tv_nsec ^
                            (uint64_t)getpid() << 16 ^ (uint64_t)w->id;
    }
    if (!any)
        return 0;
    if (maxh < 4096)
        maxh = 4096;
    /* First half: the header as received; second half: as forwarded (a little longer). */
    hw(w)->hbuf_size = (uint32_t)(2 * maxh + 2048);
    hw(w)->hbuf_free = calloc(w->nconns, sizeof(*hw(w)->hbuf_free));
    hw(w)->park_q = calloc(w->nconns, sizeof(*hw(w)->park_q));
    hw(w)->srv = calloc(cf->nclusters ? cf->nclusters : 1, sizeof(*hw(w)->srv));
    hw(w)->tls_sess = calloc(cf->nclusters ? cf->nclusters : 1, sizeof(*hw(w)->tls_sess));
    if (!hw(w)->hbuf_free || !hw(w)->park_q || !hw(w)->srv || !hw(w)->tls_sess)
        goto fail;
    for (size_t i = 0; i < cf->nclusters; i++) {
        size_t n = cf->clusters[i].nservers;
        hw(w)->srv[i] = calloc(n ? n : 1, sizeof(**hw(w)->srv));
        if (!hw(w)->srv[i])
            goto fail;
        if (cf->clusters[i].tls.enabled &&
            !(hw(w)->tls_sess[i] = calloc(n ? n : 1, sizeof(**hw(w)->tls_sess))))
            goto fail;
        for (size_t j = 0; j < n; j++)
            hw(w)->srv[i][j].idle = hw(w)->srv[i][j].wait_head = hw(w)->srv[i][j].wait_tail =
                NONE;
    }
    uint64_t cache_bytes = 0;
    for (size_t i = 0; i < cf->nlisteners; i++)
        for (size_t j = 0; j < cf->listeners[i].nroutes; j++)
            if (cf->listeners[i].routes[j].cache.enabled &&
                cf->listeners[i].routes[j].cache.max_bytes > cache_bytes)
                cache_bytes = cf->listeners[i].routes[j].cache.max_bytes;
    if (cache_bytes && cache_create(cache_bytes, &hw(w)->cache) < 0)
        goto fail;
    hw(w)->snaps = calloc(cf->nstatics ? cf->nstatics : 1, sizeof(*hw(w)->snaps));
    hw(w)->snap_gen = calloc(cf->nstatics ? cf->nstatics : 1, sizeof(*hw(w)->snap_gen));
    if (!hw(w)->snaps || !hw(w)->snap_gen)
        goto fail;
    if (hw(w)->alog_fd >= 0) {
        hw(w)->alog = malloc(ALOG_SIZE);
        if (!hw(w)->alog)
            goto fail;
    }
    return 0;
fail:
    lb_err_set(err, "worker %d: out of memory for http state", w->id);
    return -ENOMEM;
}

static void http_mod_destroy(struct io_worker *w, void *state)
{
    if (!w->rt)
        return;
    if (hw(w)->alog)
        http_flush_log(w);
    free(hw(w)->alog);
    hw(w)->alog = NULL;
    for (uint32_t i = 0; i < hw(w)->hbuf_nfree; i++)
        http_hbuf_release(w, hw(w)->hbuf_free[i]);
    /* Buffers still held by connections (none after a clean stop). */
    for (uint32_t i = 0; w->slots && i < w->nconns; i++) {
        struct io_conn *c = w->slots[i];
        if (c && (c->ops == &http_client_ops || c->ops == &http_upstream_ops)) {
            http_hbuf_release(w, hc(c)->h.hbuf);
            hc(c)->h.hbuf = NULL;
        }
    }
    free(hw(w)->hbuf_free);
    hw(w)->hbuf_free = NULL;
    free(hw(w)->park_q);
    hw(w)->park_q = NULL;
    hw(w)->hbuf_nfree = 0;
    if (hw(w)->srv)
        for (size_t i = 0; i < w->rt->conf->nclusters; i++)
            free(hw(w)->srv[i]);
    free(hw(w)->srv);
    hw(w)->srv = NULL;
    for (size_t i = 0; hw(w)->tls_sess && i < w->rt->conf->nclusters; i++) {
        for (size_t j = 0; hw(w)->tls_sess[i] && j < w->rt->conf->clusters[i].nservers; j++)
            SSL_SESSION_free(hw(w)->tls_sess[i][j]);
        free(hw(w)->tls_sess[i]);
    }
    free(hw(w)->tls_sess);
    hw(w)->tls_sess = NULL;
    if (hw(w)->cache)
        cache_destroy(hw(w)->cache);
    hw(w)->cache = NULL;
    if (hw(w)->snaps)
        for (size_t i = 0; i < w->rt->conf->nstatics; i++)
            snap_set_unref(hw(w)->snaps[i]);
    free(hw(w)->snaps);
    free(hw(w)->snap_gen);
    hw(w)->snaps = NULL;
    hw(w)->snap_gen = NULL;
    free(state);
}

static void http_mod_tick(struct io_worker *w, void *state)
{
    struct http_worker *x = state;
    if (x->cache)
        cache_tick(x->cache, w->now_ms);
    /* Operator purges (lbctl cache purge) and the counters lbctl cache stats reads. */
    cache_board_tick(w->rt ? w->rt->cache_board : NULL, (uint32_t)w->id, x->cache);
    if (x->hbuf_size)
        http_hbuf_trim(w);
}

static void http_mod_loop_end(struct io_worker *w, void *state)
{
    struct http_worker *x = state;
    if (x->alog_len)
        http_flush_log(w);
    if (x->park_n)
        http_park_idle(w);
}

struct io_module http_module = {
    .name = "http",
    .init = http_mod_init,
    .destroy = http_mod_destroy,
    .tick = http_mod_tick,
    .loop_end = http_mod_loop_end,
};
