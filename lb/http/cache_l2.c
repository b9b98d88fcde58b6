/*
 * The shared (L2) level of the route cache: `cache: { shared: NAME }` with NAME under
 * caches:, a set of Redis shards (the cluster lb:cache:NAME). Entry format and key layout:
 * lb/cache/l2.h.
 *
 * Lookup order L1, then L2, then the origin. Only the request that owns the L1 fill of a key
 * (cache_fill_begin said CACHE_FILL_NEW) talks to L2; the others of its worker wait on that
 * fill as for any miss. It parks in HC_L2_WAIT and sends one script to the key's shard:
 *
 *   the entry when there is one -> decoded (strictly), checked against the request (host,
 *       target, Vary values), still fresh: it fills L1 and is served (X-Cache: HIT-L2);
 *       otherwise a miss, and the answer from the origin replaces it
 *   else SET lock NX PX caches.NAME.lock; 1 -> this request fetches from the origin, then
 *       stores the answer (SET key entry PX ttl) and deletes the lock in one script
 *   0 -> another instance is fetching: looked again each worker tick (100ms) until the entry
 *       is there, the lock is free (then taken), or caches.NAME.lock has passed (the origin)
 *
 * So a burst of misses for a key across the fleet reaches the origin about once. A shard
 * that is down (its health checks), slower than caches.NAME.timeout or answering an error
 * is skipped: the request goes to the origin, nothing fails, it is counted
 * (lb_cache_l2_total{result="error"}) and logged at most once a second per worker.
 *
 * An unsafe method that succeeds deletes the URI's keys (and its Location's and
 * Content-Location's) on their shards, so that other instances stop serving them; their own
 * L1 copies live out their freshness (at most max_ttl).
 *
 * Left to L1: revalidation (a stale L2 entry is a miss), chunked answers (not stored in L2).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb/cache/cache.h"
#include "lb/cache/l2.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/metrics/stats.h"
#include "lb/redis/redis.h"

/* KEYS[1] the entry, KEYS[2] its lock, ARGV[1] the lock's time (ms). */
static const char lookup_script[] =
    "local v=redis.call('GET',KEYS[1]) if v then return v end "
    "if redis.call('SET',KEYS[2],'1','NX','PX',ARGV[1]) then return 1 end return 0";

/* KEYS[1] the entry, KEYS[2] its lock, ARGV[1] the entry, ARGV[2] its time (ms). */
static const char store_script[] = "redis.call('SET',KEYS[1],ARGV[1],'PX',ARGV[2]) "
                                   "redis.call('DEL',KEYS[2]) return 1";

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct conf_route *route_of(struct io_worker *w, struct http_conn *c)
{
    return &lcf_of(w, c)->routes[c->h.route];
}

static void count(struct io_worker *w, int ci, enum metrics_l2_result r)
{
    if (w->rt->l2stats && ci >= 0)
        atomic_fetch_add_explicit(&w->rt->l2stats[ci].n[r], 1, memory_order_relaxed);
}

/* Logs an L2 problem, once a second per worker at most (the metrics count them all). */
static void warn(struct io_worker *w, int ci, const char *what, const char *reply, size_t len)
{
    if (w->now_ms - hw(w)->l2_warn_ms < 1000 && hw(w)->l2_warn_ms)
        return;
    hw(w)->l2_warn_ms = w->now_ms;
    size_t shown = len > 2 ? len - 2 : 0;
    lb_warn("shared cache skipped: the request goes to the origin",
            "cache=%s problem=\"%s\" "
            "reply=\"%.*s\"",
            w->rt->conf->caches[ci].name, what, (int)(shown > 120 ? 120 : shown),
            reply && len ? reply + 1 : "");
}

/* The key of @host + @target in cache @ci, with @suffix, malloc'd (see l2.h). */
static char *make_key(struct io_worker *w, int ci, const char *host, size_t hlen,
                      const char *target, size_t tlen, const char *suffix, size_t *len)
{
    const struct conf *cf = w->rt->conf;
    const char *pre = cf->global.redis_prefix ? cf->global.redis_prefix : "lb:";
    const char *name = cf->caches[ci].name;
    size_t n = strlen(pre) + 2 + strlen(name) + 1 + hlen + tlen + strlen(suffix);
    char *k = malloc(n + 1);
    if (!k)
        return NULL;
    size_t o = (size_t)snprintf(k, n + 1, "%sc:%s:", pre, name);
    for (size_t i = 0; i < hlen; i++)
        k[o++] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] | 0x20) : host[i];
    memcpy(k + o, target, tlen);
    o += tlen;
    memcpy(k + o, suffix, strlen(suffix) + 1);
    *len = n;
    return k;
}

static char *req_key(struct io_worker *w, struct http_conn *c, int ci, const char *suffix,
                     size_t *len)
{
    const struct http_req *rq = http_cache_reparse(w, c);
    if (!rq)
        return NULL;
    const char *b = c->h.hbuf;
    return make_key(w, ci, b + rq->host.off, rq->host.len, b + rq->target.off, rq->target.len,
                    suffix, len);
}

/* Sends @argc arguments to the shard owning @key; @done gets the reply (perhaps at once).
 * Returns 0, or -errno when nothing was sent (@done not called). */
static int send_argv(struct io_worker *w, int ci, const char *key, size_t klen, int argc,
                     const char **av, const size_t *al, rds_done_fn done, uint64_t token)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, av, al);
    if (n < 0)
        return -ENOMEM;
    int rc = rds_call_key(w, (uint16_t)w->rt->conf->caches[ci].cluster_idx, key, klen, cmd,
                          (size_t)n, done, token);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- lookups ---- */

static void looked_up(struct io_worker *w, uint64_t token, const char *reply, size_t len);

/* Sends the lookup for @c's key. Returns 0, or -errno when nothing was sent. */
static int send_lookup(struct io_worker *w, struct http_conn *c, int ci)
{
    size_t kl, ll;
    char *key = req_key(w, c, ci, "", &kl), *lock = req_key(w, c, ci, "#lock", &ll);
    char ms[24];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)w->rt->conf->caches[ci].lock_ms);
    int rc = -ENOMEM;
    if (key && lock) {
        const char *av[6] = {"EVAL", lookup_script, "2", key, lock, ms};
        size_t al[6] = {4, sizeof(lookup_script) - 1, 1, kl, ll, strlen(ms)};
        c->h.flags |= H_F_L2_CALL;
        rc = send_argv(w, ci, key, kl, 6, av, al, looked_up, http_waiter_token(w, c));
        if (rc < 0)
            c->h.flags &= ~H_F_L2_CALL;
    }
    free(key);
    free(lock);
    return rc;
}

/* L2 has nothing for @c (or cannot say): the origin answers; @store: and the answer goes to
 * L2 too. */
static void to_origin(struct io_worker *w, struct http_conn *c, bool store)
{
    c->h.flags &= ~(H_F_L2_CALL | H_F_L2_POLL);
    if (store)
        c->h.flags |= H_F_L2_STORE;
    c->h.phase = HC_CONNECT;
    http_cache_count(w, c, METRICS_CACHE_MISS);
    http_backend_acquire(w, c);
}

/* An entry came from the shard: fill L1 with it and serve it. False when it cannot be
 * (malformed, another variant, stale...): the caller goes to the origin. */
static bool serve_entry(struct io_worker *w, struct http_conn *c, int ci, const char *p, size_t n)
{
    struct cache_l2_view v;
    if (cache_l2_decode(p, n, &v) < 0) {
        count(w, ci, METRICS_L2_ERROR);
        warn(w, ci, "a malformed entry", NULL, 0);
        return false;
    }
    const struct http_req *rq = http_cache_reparse(w, c);
    struct cache *cache = hw(w)->cache;
    /* an entry L1 is too small to keep is still built, served and handed to the waiters */
    if (c->h.fill)
        cache_fill_set_limit(cache, c->h.fill,
                             w->rt->conf->caches[ci].max_object + 3 * hw(w)->hbuf_size);
    int rc =
        rq ? cache_l2_fill(cache, c->h.fill, &v, c->h.hbuf, rq, w->now_ms, wall_ms()) : -EINVAL;
    if (rc < 0) {
        count(w, ci, METRICS_L2_MISS);
        if (rc != -ENOENT && rc != -ESTALE)
            http_fill_abort(w, c); /* half built: its waiters fetch for themselves */
        return false;
    }
    struct cache_fill *f = c->h.fill;
    c->h.fill = NULL;
    /* its waiters are served from the new entry before this returns */
    struct cache_entry *e = NULL;
    cache_fill_commit_take(cache, f, http_cache_wake, w, &e);
    struct cache_req want;
    /* parsed again: the waiters woken above reused the per-thread parse of @rq */
    cache_req_eval(c->h.hbuf, http_cache_reparse(w, c), &want);
    if (e && !cache_entry_usable(e, &want, w->now_ms)) {
        cache_entry_unref(e); /* fresh, but not as fresh as this request asks */
        e = NULL;
    }
    if (!e) {
        count(w, ci, METRICS_L2_MISS);
        to_origin(w, c, false);
        return true;
    }
    count(w, ci, METRICS_L2_HIT);
    if (w->rt->l2stats)
        atomic_fetch_add_explicit(&w->rt->l2stats[ci].bytes_read, n, memory_order_relaxed);
    http_cache_count(w, c, METRICS_CACHE_HIT);
    if (c->h.xcache)
        c->h.xcache = H_XC_HIT_L2;
    http_cache_serve(w, c, e, 200);
    return true;
}

/* The shard's answer to a lookup: see the file's comment. */
static void looked_up(struct io_worker *w, uint64_t token, const char *reply, size_t len)
{
    struct io_conn *ic = io_conn_get(w, (uint32_t)(token >> 32), (uint32_t)token);
    if (!ic || ic->ops != &http_client_ops)
        return; /* the client left: its lock, if taken, expires */
    struct http_conn *c = hc(ic);
    if (c->h.phase != HC_L2_WAIT || !(c->h.flags & H_F_L2_CALL))
        return;
    c->h.flags &= ~H_F_L2_CALL;
    int ci = route_of(w, c)->cache.shared_idx;
    if (len > 3 && reply[0] == '$' && reply[1] != '-') {
        const char *nl = memchr(reply, '\n', len);
        size_t n = strtoull(reply + 1, NULL, 10);
        size_t off = nl ? (size_t)(nl + 1 - reply) : len;
        if (off + n + 2 == len && c->h.fill && serve_entry(w, c, ci, reply + off, n))
            return;
        to_origin(w, c, true); /* the answer replaces what is there */
        return;
    }
    if (len >= 3 && memcmp(reply, ":1\r", 3) == 0) {
        c->h.flags |= H_F_L2_LOCK;
        count(w, ci, METRICS_L2_MISS);
        to_origin(w, c, true);
        return;
    }
    if (len >= 3 && memcmp(reply, ":0\r", 3) == 0) {
        if (!(c->h.flags & H_F_L2_WAITED))
            count(w, ci, METRICS_L2_LOCKED_WAIT);
        c->h.flags |= H_F_L2_WAITED;
        if (w->now_ms - c->h.l2_ms >= w->rt->conf->caches[ci].lock_ms)
            to_origin(w, c, true);
        else
            c->h.flags |= H_F_L2_POLL; /* http_l2_tick looks again */
        return;
    }
    count(w, ci, METRICS_L2_ERROR);
    warn(w, ci, "the shard failed", reply, len);
    to_origin(w, c, false);
}

bool http_l2_lookup(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                    const char *buf, const struct http_req *req)
{
    int ci = r->cache.shared_idx;
    struct cache_req want;
    cache_req_eval(buf, req, &want);
    if (want.flags & CACHE_RQ_NO_CACHE) {
        c->h.flags |= H_F_L2_STORE; /* the origin's answer goes to L2 all the same */
        return false;
    }
    c->h.l2_ms = w->now_ms;
    c->h.phase = HC_L2_WAIT;
    int rc = send_lookup(w, c, ci);
    if (rc < 0) {
        c->h.phase = HC_CONNECT;
        count(w, ci, METRICS_L2_ERROR);
        warn(w, ci, rc == -EHOSTDOWN ? "the key's shard is down" : "out of memory", NULL, 0);
        return false;
    }
    return true; /* looked_up() may have run already */
}

void http_l2_tick(struct io_worker *w, struct http_conn *c)
{
    if (!(c->h.flags & H_F_L2_POLL))
        return;
    c->h.flags &= ~H_F_L2_POLL;
    int ci = route_of(w, c)->cache.shared_idx;
    if (w->now_ms - c->h.l2_ms >= w->rt->conf->caches[ci].lock_ms || send_lookup(w, c, ci) < 0)
        to_origin(w, c, true);
}

/* ---- stores, releases, invalidations ---- */

/* A command whose reply only counts: @token is the cache's index. */
static void answered(struct io_worker *w, uint64_t token, const char *reply, size_t len)
{
    if (len && reply[0] == '-') {
        count(w, (int)token, METRICS_L2_ERROR);
        warn(w, (int)token, "a store or delete failed", reply, len);
    }
}

void http_l2_store(struct io_worker *w, struct http_conn *c, const char *blob, ssize_t n,
                   uint64_t ttl_ms)
{
    int ci = route_of(w, c)->cache.shared_idx;
    bool lock = c->h.flags & H_F_L2_LOCK;
    c->h.flags &= ~(H_F_L2_LOCK | H_F_L2_STORE);
    if (ci < 0)
        return;
    if (n > (ssize_t)w->rt->conf->caches[ci].max_object)
        n = -EFBIG;
    size_t kl, ll;
    char *key = req_key(w, c, ci, "", &kl), *lk = req_key(w, c, ci, "#lock", &ll);
    char ms[24];
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    int rc = 0;
    if (key && lk && n > 0 && lock) {
        const char *av[7] = {"EVAL", store_script, "2", key, lk, blob, ms};
        size_t al[7] = {4, sizeof(store_script) - 1, 1, kl, ll, (size_t)n, strlen(ms)};
        rc = send_argv(w, ci, key, kl, 7, av, al, answered, (uint64_t)ci);
    } else if (key && n > 0) {
        const char *av[5] = {"SET", key, blob, "PX", ms};
        size_t al[5] = {3, kl, (size_t)n, 2, strlen(ms)};
        rc = send_argv(w, ci, key, kl, 5, av, al, answered, (uint64_t)ci);
    } else if (lk && lock) { /* nothing to store: others need not wait for the lock's end */
        const char *av[2] = {"DEL", lk};
        size_t al[2] = {3, ll};
        rc = send_argv(w, ci, key ? key : lk, key ? kl : ll, 2, av, al, answered, (uint64_t)ci);
    }
    if (rc < 0)
        count(w, ci, METRICS_L2_ERROR);
    else if (n > 0 && key && w->rt->l2stats) {
        count(w, ci, METRICS_L2_STORE);
        atomic_fetch_add_explicit(&w->rt->l2stats[ci].bytes_written, (uint64_t)n,
                                  memory_order_relaxed);
    }
    free(key);
    free(lk);
}

void http_l2_invalidate(struct io_worker *w, struct http_conn *c, const char *host, size_t hlen,
                        const char *target, size_t tlen)
{
    int ci = route_of(w, c)->cache.shared_idx;
    if (ci < 0)
        return;
    size_t kl;
    char *key = make_key(w, ci, host, hlen, target, tlen, "", &kl);
    if (!key)
        return;
    const char *av[2] = {"DEL", key};
    size_t al[2] = {3, kl};
    if (send_argv(w, ci, key, kl, 2, av, al, answered, (uint64_t)ci) < 0) {
        count(w, ci, METRICS_L2_ERROR);
        warn(w, ci, "an invalidation could not be sent", NULL, 0);
    } else {
        count(w, ci, METRICS_L2_INVALIDATE);
    }
    free(key);
}
