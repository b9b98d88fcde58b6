/*
 * The admin socket's cache commands: `cache purge PATH|PREFIX* [--host HOST]` and
 * `cache stats`, over the L1 caches of the workers (one per worker, shared by every cached
 * route) through the purge board (lb/cache/purge.h).
 *
 * A purge is applied by each worker at its next tick; the control thread waits for every
 * worker's count, at most ADMIN_PURGE_WAIT_MS (a worker that does not tick in that time is
 * wedged or stopping), and answers with what it has: "removed" (the sum), "per_worker", and
 * "pending" when some worker has not applied it yet (it will, at its next tick).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb/admin/admin.h"
#include "lb/cache/l2.h"
#include "lb/core/runtime.h"
#include "lb/metrics/stats.h"

#define PURGE_POLL_MS 2

/* ---- parser ---- */

/* The next word of @p[*i..len) (blank separated) into @w/@wl; false at the end. */
static bool next_word(const char *p, size_t len, size_t *i, const char **w, size_t *wl)
{
    while (*i < len && (p[*i] == ' ' || p[*i] == '\t'))
        (*i)++;
    if (*i == len)
        return false;
    *w = p + *i;
    while (*i < len && p[*i] != ' ' && p[*i] != '\t')
        (*i)++;
    *wl = (size_t)(p + *i - *w);
    return true;
}

static bool is(const char *w, size_t wl, const char *s)
{
    return wl == strlen(s) && !memcmp(w, s, wl);
}

int admin_parse_cache(const char *p, size_t len, struct admin_cmd *cmd, struct lb_err *err)
{
    const char *w[5] = {0};
    size_t wl[5] = {0}, nw = 0, i = 0;
    while (nw < 5 && next_word(p, len, &i, &w[nw], &wl[nw]))
        nw++;
    if (nw == 0 || nw == 5) {
        lb_err_set(err, "usage: cache purge PATH|PREFIX* [--host HOST] | cache stats");
        return -EINVAL;
    }
    if (is(w[0], wl[0], "stats")) {
        cmd->verb = ADMIN_CACHE_STATS;
        if (nw == 1)
            return 0;
        lb_err_set(err, "usage: cache stats");
        return -EINVAL;
    }
    if (!is(w[0], wl[0], "purge")) {
        lb_err_set(err, "unknown command 'cache %.*s': cache purge, cache stats",
                   (int)(wl[0] > 32 ? 32 : wl[0]), w[0]);
        return -EINVAL;
    }
    cmd->verb = ADMIN_CACHE_PURGE;
    const char *host = NULL;
    size_t hl = 0;
    if (nw == 4 && is(w[2], wl[2], "--host")) {
        host = w[3], hl = wl[3];
    } else if (nw == 4 && is(w[1], wl[1], "--host")) { /* --host HOST PATH */
        host = w[2], hl = wl[2];
        w[1] = w[3], wl[1] = wl[3];
    } else if (nw != 2 || (wl[1] > 1 && w[1][0] == '-' && w[1][1] == '-')) {
        lb_err_set(err, "usage: cache purge PATH|PREFIX* [--host HOST]");
        return -EINVAL;
    }
    if (host && hl == 0) {
        lb_err_set(err, "--host needs a host name");
        return -EINVAL;
    }
    char msg[sizeof(err->msg)];
    if (cache_purge_set(&cmd->purge, w[1], wl[1], host, hl, msg, sizeof(msg)) < 0) {
        lb_err_set(err, "cache purge: %s", msg);
        return -EINVAL;
    }
    return 0;
}

/* ---- commands ---- */

static bool any_cached_route(const struct conf *cf)
{
    for (size_t i = 0; i < cf->nlisteners; i++)
        for (size_t j = 0; j < cf->listeners[i].nroutes; j++)
            if (cf->listeners[i].routes[j].cache.enabled)
                return true;
    return false;
}

static bool no_cache(struct lb_runtime *rt, struct lb_jbuf *out)
{
    if (rt->cache_board && any_cached_route(rt->conf))
        return false;
    admin_error(out, "no route of this configuration has a cache");
    return true;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The shared (L2) caches' part of a purge: every cache under caches: purged on its shards
 * (blocking, on this thread, each Redis call bounded by the cache's timeout), answered as
 * ,"l2":{"keys":N} with "error" when a shard could not be reached or failed. */
static void purge_l2(const struct conf *cf, const struct cache_purge *p, struct lb_jbuf *out)
{
    if (!cf->ncaches)
        return;
    long keys = 0;
    struct lb_err first = {{0}};
    for (size_t i = 0; i < cf->ncaches; i++) {
        struct lb_err e = {{0}};
        long n = cache_l2_purge(cf, cf->caches[i].name, p, &e);
        if (n >= 0)
            keys += n;
        else if (!first.msg[0])
            lb_err_set(&first, "cache %s: %s", cf->caches[i].name, e.msg);
    }
    lb_jbuf_printf(out, ",\"l2\":{\"keys\":%ld", keys);
    if (first.msg[0]) {
        lb_jbuf_printf(out, ",\"error\":");
        lb_jbuf_str(out, first.msg, strlen(first.msg));
    }
    lb_jbuf_printf(out, "}");
}

int admin_cache_purge(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    if (no_cache(rt, out))
        return ADMIN_R_ERROR;
    struct cache_board *b = rt->cache_board;
    const struct cache_purge *p = &cmd->purge;
    uint64_t seq;
    if (cache_board_post(b, p, &seq) < 0) {
        admin_error(out, "workers are not applying purges (stopping or wedged): try again");
        return ADMIN_R_ERROR;
    }
    uint32_t n = cache_board_workers(b), applied = 0;
    for (unsigned waited = 0; waited < ADMIN_PURGE_WAIT_MS; waited += PURGE_POLL_MS) {
        if ((applied = cache_board_result(b, seq, NULL)) == n)
            break;
        sleep_ms(PURGE_POLL_MS);
    }
    uint64_t *removed = calloc(n, sizeof(*removed)), sum = 0;
    if (!removed) {
        admin_error(out, "out of memory");
        return ADMIN_R_ERROR;
    }
    applied = cache_board_result(b, seq, removed);
    lb_jbuf_printf(out, "{\"ok\":true,\"path\":");
    lb_jbuf_str(out, p->path, p->path_len);
    lb_jbuf_printf(out, ",\"prefix\":%s,\"host\":", p->prefix ? "true" : "false");
    if (p->host_len)
        lb_jbuf_str(out, p->host, p->host_len);
    else
        lb_jbuf_printf(out, "null");
    lb_jbuf_printf(out, ",\"workers\":%u,\"applied\":%u,\"per_worker\":[", n, applied);
    for (uint32_t i = 0; i < n; i++) {
        if (removed[i] == UINT64_MAX) {
            lb_jbuf_printf(out, "%snull", i ? "," : "");
            continue;
        }
        sum += removed[i];
        lb_jbuf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)removed[i]);
    }
    free(removed);
    lb_jbuf_printf(out, "],\"removed\":%llu,\"pending\":%u", (unsigned long long)sum, n - applied);
    purge_l2(rt->conf, p, out);
    lb_jbuf_printf(out, "}");
    return 0;
}

static void stats_json(struct lb_jbuf *out, const struct cache_stats *s)
{
    lb_jbuf_printf(out,
                   "\"entries\":%llu,\"bytes\":%llu,\"max_bytes\":%llu,\"hits\":%llu,"
                   "\"misses\":%llu,\"coalesced\":%llu,\"evictions\":%llu,\"expired\":%llu,"
                   "\"invalidated\":%llu,\"purged\":%llu,\"fills\":%llu,\"fill_aborts\":%llu",
                   (unsigned long long)s->entries, (unsigned long long)s->bytes,
                   (unsigned long long)s->max_bytes, (unsigned long long)s->hits,
                   (unsigned long long)s->misses, (unsigned long long)s->coalesced,
                   (unsigned long long)s->evictions, (unsigned long long)s->expired,
                   (unsigned long long)s->invalidated, (unsigned long long)s->purged,
                   (unsigned long long)s->fills, (unsigned long long)s->fill_aborts);
}

static void stats_add(struct cache_stats *t, const struct cache_stats *s)
{
    uint64_t a[sizeof(*t) / 8], b[sizeof(*t) / 8];
    memcpy(a, t, sizeof(a));
    memcpy(b, s, sizeof(b));
    for (size_t i = 0; i < sizeof(a) / 8; i++)
        a[i] += b[i];
    memcpy(t, a, sizeof(a));
}

static unsigned long long load(const _Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

/* "listeners":[...]: each listener with a cached route: those routes, lookups by result. */
static void listeners_json(struct lb_runtime *rt, struct lb_jbuf *out)
{
    static const char *const names[METRICS_CACHE_NRESULTS] = {
        "hit", "not_modified", "miss", "revalidated", "stale", "bypass"};
    const struct conf *cf = rt->conf;
    const char *sep = "";
    lb_jbuf_printf(out, ",\"listeners\":[");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        const struct conf_listener *l = &cf->listeners[i];
        const char *rsep = "";
        for (size_t j = 0; j < l->nroutes; j++) {
            if (!l->routes[j].cache.enabled)
                continue;
            if (!rsep[0]) {
                lb_jbuf_printf(out, "%s{\"listener\":", sep);
                lb_jbuf_str(out, l->name, strlen(l->name));
                lb_jbuf_printf(out, ",\"routes\":[");
            }
            lb_jbuf_printf(out, "%s%zu", rsep, j);
            rsep = ",";
        }
        if (!rsep[0])
            continue;
        sep = ",";
        lb_jbuf_printf(out, "]");
        for (int k = 0; k < METRICS_CACHE_NRESULTS; k++)
            lb_jbuf_printf(out, ",\"%s\":%llu", names[k],
                           rt->lstats ? load(&rt->lstats[i].cache[k]) : 0ull);
        lb_jbuf_printf(out, ",\"invalidations\":%llu}",
                       rt->lstats ? load(&rt->lstats[i].cache_invalidations) : 0ull);
    }
    lb_jbuf_printf(out, "]");
}

int admin_cache_stats(struct lb_runtime *rt, struct lb_jbuf *out)
{
    if (no_cache(rt, out))
        return ADMIN_R_ERROR;
    struct cache_board *b = rt->cache_board;
    struct cache_stats total = {0}, s;
    lb_jbuf_printf(out, "{\"ok\":true,\"workers\":[");
    for (uint32_t i = 0; i < cache_board_workers(b); i++) {
        bool has = cache_board_stats(b, i, &s);
        lb_jbuf_printf(out, "%s{\"worker\":%u,\"cache\":%s,", i ? "," : "", i,
                       has ? "true" : "false");
        stats_json(out, &s);
        lb_jbuf_printf(out, "}");
        stats_add(&total, &s);
    }
    lb_jbuf_printf(out, "],\"total\":{");
    stats_json(out, &total);
    lb_jbuf_printf(out, "}");
    listeners_json(rt, out);
    lb_jbuf_printf(out, ",\"purges\":%llu}", (unsigned long long)cache_board_purges(b));
    return 0;
}
