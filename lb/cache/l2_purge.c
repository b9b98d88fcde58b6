/*
 * Purging a shared (L2) cache from the control thread (lbctl cache purge): every shard of
 * the cache scanned (SCAN MATCH over the cache's keys, l2.h) and the keys that match the
 * prefix deleted, with blocking hiredis calls each bounded by caches.NAME.timeout. Never
 * called on a worker.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lb/cache/l2.h"
#include "lb/cache/purge.h"

#define PURGE_MAX_SCANS 100000 /* SCAN calls per shard: a bound on the work, whatever the data */

static redisContext *open_shard(const struct conf_addr *a, uint64_t timeout_ms)
{
    char host[64];
    const char *colon = strrchr(a->text, ':');
    if (!colon || (size_t)(colon - a->text) >= sizeof(host))
        return NULL;
    size_t hl = (size_t)(colon - a->text);
    memcpy(host, a->text, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct timeval tv = {(long)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* True when key @k (@n bytes, after the cache's base: lowercase host, then the target) is
 * one @p removes, by the same rules as in L1 (purge.h). Locks never are. */
static bool matches(const char *k, size_t n, const struct cache_purge *p)
{
    if (memchr(k, '#', n))
        return false;
    const char *t = memchr(k, '/', n);
    if (!t)
        return false;
    return cache_purge_match(p, k, (size_t)(t - k), t, (size_t)(k + n - t));
}

/* Deletes the matching keys of one shard. Returns how many, or -EIO with @why set. */
static long purge_shard(redisContext *c, const char *pattern, size_t base_len,
                        const struct cache_purge *p, const char **why)
{
    char cursor[32] = "0";
    long deleted = 0;
    for (int round = 0; round < PURGE_MAX_SCANS; round++) {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(cursor) ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            *why = r && r->type == REDIS_REPLY_ERROR ? "SCAN refused" : "no answer to SCAN";
            if (r)
                freeReplyObject(r);
            return -EIO;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < base_len ||
                !matches(k->str + base_len, k->len - base_len, p))
                continue;
            redisReply *d = redisCommand(c, "DEL %b", k->str, (size_t)k->len);
            if (!d) {
                freeReplyObject(r);
                *why = "no answer to DEL";
                return -EIO;
            }
            if (d->type == REDIS_REPLY_INTEGER)
                deleted += (long)d->integer;
            freeReplyObject(d);
        }
        freeReplyObject(r);
        if (!strcmp(cursor, "0"))
            return deleted;
    }
    *why = "too many keys to scan";
    return -EIO;
}

/* Writes @s into @o with the glob characters of SCAN MATCH escaped. */
static void glob_escape(char *o, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '*' || *s == '?' || *s == '[' || *s == ']' || *s == '\\')
            o[n++] = '\\';
        o[n++] = *s;
    }
    o[n] = '\0';
}

long cache_l2_purge(const struct conf *cf, const char *cache, const struct cache_purge *p,
                    struct lb_err *err)
{
    const struct conf_shared_cache *sc = NULL;
    for (size_t i = 0; i < cf->ncaches && !sc; i++)
        if (!strcmp(cf->caches[i].name, cache))
            sc = &cf->caches[i];
    if (!sc) {
        lb_err_set(err, "no shared cache named '%s' (caches: in the config)", cache);
        return -ENOENT;
    }
    char base[160], esc[320], pattern[330];
    snprintf(base, sizeof(base),
             "%sc:%s:", cf->global.redis_prefix ? cf->global.redis_prefix : "lb:", sc->name);
    glob_escape(esc, sizeof(esc), base);
    snprintf(pattern, sizeof(pattern), "%s*", esc);
    long total = 0;
    int failed = 0;
    for (size_t i = 0; i < sc->nservers; i++) {
        const char *why = "cannot connect";
        redisContext *c = open_shard(&sc->servers[i], sc->timeout_ms);
        long n = c ? purge_shard(c, pattern, strlen(base), p, &why) : -EIO;
        if (c)
            redisFree(c);
        if (n < 0) {
            if (!failed++)
                lb_err_set(err, "shard %s: %s", sc->servers[i].text, why);
            continue;
        }
        total += n;
    }
    if (failed) {
        char first[sizeof(err->msg)];
        snprintf(first, sizeof(first), "%s", err ? err->msg : "");
        lb_err_set(err, "%ld keys deleted, %d of %zu shards failed (%s)", total, failed,
                   sc->nservers, first);
        return -EIO;
    }
    return total;
}
