/*
 * Operator purges (see purge.h): reading the argument, matching a key, and removing the
 * matching entries of one worker's cache. The board that carries a purge to every worker is
 * in board.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb/cache/internal.h"
#include "lb/cache/purge.h"

static bool visible(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static bool host_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == ':' || ch == '[' || ch == ']';
}

int cache_purge_set(struct cache_purge *p, const char *arg, size_t len, const char *host,
                    size_t hlen, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (len == 0 || arg[0] != '/') {
        snprintf(err, errlen,
                 "bad path '%.*s': an absolute path such as /a/b, or a prefix "
                 "such as /api/*",
                 (int)(len > 64 ? 64 : len), arg);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)arg[i];
        if (!visible(ch)) {
            snprintf(err, errlen, "bad path: byte 0x%02x at offset %zu (visible ASCII only)", ch,
                     i);
            return -EINVAL;
        }
        if (ch == '*' && i + 1 != len) {
            snprintf(err, errlen, "bad path '%.*s': '*' only at the end, for a prefix",
                     (int)(len > 64 ? 64 : len), arg);
            return -EINVAL;
        }
    }
    p->prefix = arg[len - 1] == '*';
    p->path_len = (uint32_t)(len - p->prefix);
    if (p->path_len >= CACHE_PURGE_PATH_MAX) {
        snprintf(err, errlen, "path too long: at most %d bytes", CACHE_PURGE_PATH_MAX - 1);
        return -EINVAL;
    }
    memcpy(p->path, arg, p->path_len);
    if (hlen >= CACHE_PURGE_HOST_MAX) {
        snprintf(err, errlen, "host too long: at most %d bytes", CACHE_PURGE_HOST_MAX - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (!host_char((unsigned char)host[i])) {
            snprintf(err, errlen,
                     "bad host '%.*s': letters, digits, '-', '.', '_', ':', '[', "
                     "']'",
                     (int)(hlen > 64 ? 64 : hlen), host);
            return -EINVAL;
        }
    }
    if (hlen) /* @host may be NULL then */
        memcpy(p->host, host, hlen);
    p->host_len = (uint32_t)hlen;
    return 0;
}

/* The stored host @h is @p's host, or (when @p's has no port) that host with a port. */
static bool host_match(const struct cache_purge *p, const char *h, size_t hl)
{
    size_t n = p->host_len;
    if (hl < n || !eq_nocase(h, p->host, n))
        return false;
    if (hl == n)
        return true;
    if (h[n] != ':' || hl == n + 1 || (memchr(p->host, ':', n) && p->host[n - 1] != ']'))
        return false; /* "example.com:80" given: exactly that */
    for (size_t i = n + 1; i < hl; i++)
        if (h[i] < '0' || h[i] > '9')
            return false;
    return true;
}

bool cache_purge_match(const struct cache_purge *p, const char *host, size_t hlen,
                       const char *target, size_t tlen)
{
    if (p->prefix ? tlen < p->path_len : tlen != p->path_len)
        return false;
    if (memcmp(target, p->path, p->path_len) != 0)
        return false;
    return p->host_len == 0 || host_match(p, host, hlen);
}

size_t cache_purge(struct cache *c, const struct cache_purge *p)
{
    size_t removed = 0;
    for (uint32_t i = 0; i <= c->mask; i++) {
        struct cache_entry **pp = &c->buckets[i];
        while (*pp) {
            struct cache_entry *e = *pp;
            if (cache_purge_match(p, e->data, e->host_len, entry_target(e), e->target_len)) {
                cache_entry_drop(c, pp);
                removed++;
            } else {
                pp = &e->hnext;
            }
        }
    }
    /* A fill under way fetched (or asked) before the purge: its waiters get its answer, but
     * the entry it makes must not outlive this purge. */
    for (uint32_t i = 0; i <= c->fmask; i++)
        for (struct cache_fill *f = c->fills[i]; f; f = f->hnext)
            if (cache_purge_match(p, f->key, f->host_len, f->key + f->host_len, f->target_len)) {
                f->inval_gen = CACHE_INVAL_NEVER;
                if (f->e)
                    f->e->inval_gen = CACHE_INVAL_NEVER;
            }
    c->st.purged += removed;
    return removed;
}
