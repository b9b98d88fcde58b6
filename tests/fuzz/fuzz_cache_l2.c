/*
 * libFuzzer target for the L2 entry decoder (lb/cache/l2.h): the input is a value as a shard
 * would return it, which anyone with access to the shard can write.
 *
 * Checked beyond "no crash, no sanitizer report": an accepted value's spans lie inside the
 * input and add up to it exactly, its header frames exactly its body; filled into an L1
 * cache for the request its host and target name (when that request parses), it either
 * is refused cleanly or becomes an entry whose body and header are the value's, byte for
 * byte, which encodes again to a value that decodes to the same parts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/cache.h"
#include "lb/cache/l2.h"

#define FZ_WALL_MS 1796000000000ll

static struct cache *fz_cache;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (cache_create(4 << 20, &fz_cache) != 0)
        abort();
    return 0;
}

static void inside(const char *p, size_t n, const uint8_t *data, size_t size)
{
    if (n && ((const uint8_t *)p < data || (const uint8_t *)p + n > data + size))
        abort();
}

/* Fills the decoded @v for the request its own host + target make; checks the entry. */
static void refill(const struct cache_l2_view *v)
{
    static char buf[4096];
    static struct http_req rq;
    if (v->host_len + v->target_len > 2048)
        return;
    int n = snprintf(buf, sizeof(buf), "GET %.*s HTTP/1.1\r\nHost: %.*s\r\n\r\n",
                     (int)v->target_len, v->target, (int)v->host_len, v->host);
    memset(&rq, 0, sizeof(rq));
    if (n <= 0 || http_parse_request(buf, (size_t)n, 8192, 8192, &rq) != n)
        return;
    struct cache_fill *f;
    if (cache_fill_begin(fz_cache, buf, &rq, 1, &f) != CACHE_FILL_NEW)
        abort(); /* nothing else runs: no fill can be pending */
    if (cache_l2_fill(fz_cache, f, v, buf, &rq, 1000, FZ_WALL_MS) < 0) {
        cache_fill_abort(fz_cache, f, NULL, NULL);
        return;
    }
    if (cache_fill_commit(fz_cache, f, NULL, NULL) != 0)
        abort();
    struct cache_entry *e = cache_lookup(fz_cache, buf, &rq, 1000);
    if (!e)
        return; /* evicted at once: bigger than the cache's item limit */
    size_t hl, bl;
    const char *h = cache_entry_hdr(e, &hl), *b = cache_entry_body(e, &bl);
    if (hl != v->hdr_len || memcmp(h, v->hdr, hl) || bl != v->body_len || memcmp(b, v->body, bl))
        abort();
    char *again = NULL;
    ssize_t an = cache_l2_encode(e, 1000, FZ_WALL_MS, &again);
    struct cache_l2_view w;
    if (an < 0 || cache_l2_decode(again, (size_t)an, &w) != 0 || w.body_len != v->body_len ||
        w.hdr_len != v->hdr_len || w.vary_len != v->vary_len ||
        memcmp(w.vary, v->vary, v->vary_len) || w.status != v->status)
        abort();
    free(again);
    cache_entry_unref(e);
    cache_invalidate(fz_cache, buf + rq.host.off, rq.host.len, buf + rq.target.off, rq.target.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cache_l2_view v;
    if (cache_l2_decode(data, size, &v) != 0)
        return 0;
    inside(v.etag, v.etag_len, data, size);
    inside(v.host, v.host_len, data, size);
    inside(v.target, v.target_len, data, size);
    inside(v.vary, v.vary_len, data, size);
    inside(v.hdr, v.hdr_len, data, size);
    inside(v.body, v.body_len, data, size);
    if ((size_t)CACHE_L2_FIXED + v.etag_len + v.host_len + v.target_len + v.vary_len + v.hdr_len +
            v.body_len !=
        size)
        abort();
    refill(&v);
    return 0;
}
