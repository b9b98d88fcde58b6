/*
 * libFuzzer target for the caching field-value parsers (lb/cache/rfc9111.c). Every input
 * goes through each parser whole: Cache-Control, HTTP-date, entity-tag, If-None-Match (with
 * and without a stored tag), Vary.
 *
 * Checked beyond "no crash, no sanitizer report": delta values stay at or under 2^31 and bad
 * implies has; a date that parses formats back to an IMF-fixdate that parses to the same
 * instant; a parsed entity-tag lies inside the input between two quotes; If-None-Match says
 * 1, 0 or -EINVAL, and a list holding the stored tag itself matches it; Vary names are
 * lowercase tokens, distinct, and packed exactly in the bytes it reports.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/rfc9111.h"

#define FZ_NOW 1796000000

static void fz_cc(const char *s, size_t n)
{
    struct cache_cc cc = {0};
    cache_cc_parse(&cc, s, n);
    for (int d = 0; d < CACHE_CC_NDELTA; d++)
        if (cc.delta[d] > CACHE_DELTA_MAX)
            abort();
    if ((cc.bad & ~cc.has) || (cc.has >> CACHE_CC_NDELTA))
        abort();
}

static void fz_date(const char *s, size_t n)
{
    int64_t t, back;
    if (cache_http_date(s, n, FZ_NOW, &t) != 0)
        return;
    if (t < 0 || t > 253402300799) /* 9999-12-31 */
        abort();
    char out[30];
    cache_http_date_fmt(t, out);
    if (strlen(out) != 29 || cache_http_date(out, 29, FZ_NOW, &back) != 0 || back != t)
        abort();
}

static void fz_etag(const char *s, size_t n)
{
    struct cache_etag e;
    if (cache_etag_parse(s, n, &e) == 0) {
        if (e.opaque < s || e.opaque + e.len > s + n || e.len < 2 || e.opaque[0] != '"' ||
            e.opaque[e.len - 1] != '"')
            abort();
        /* a list of just that tag matches it, weak or strong */
        if (cache_inm_match(s, n, &e) != 1)
            abort();
    }
    int rc = cache_inm_match(s, n, NULL);
    if (rc != 0 && rc != -EINVAL)
        abort();
    struct cache_etag st = {.opaque = "\"a\"", .len = 3, .weak = false};
    rc = cache_inm_match(s, n, &st);
    if (rc != 0 && rc != 1 && rc != -EINVAL)
        abort();
}

static void fz_vary(const char *s, size_t n)
{
    char names[64];
    uint32_t len = 0, count = 0;
    int rc = cache_vary_add(names, &len, sizeof(names), &count, 4, s, n);
    if (rc != 0 && rc != CACHE_VARY_STAR && rc != -EINVAL && rc != -E2BIG)
        abort();
    if (count > 4 || len > sizeof(names))
        abort();
    size_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t l = strnlen(names + used, len - used);
        if (l == 0 || l == len - used)
            abort();
        for (size_t k = 0; k < l; k++)
            if (names[used + k] >= 'A' && names[used + k] <= 'Z')
                abort();
        const char *o = names;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(o, names + used) == 0)
                abort();
            o += strlen(o) + 1;
        }
        used += l + 1;
    }
    if (used != len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy exactly the input's size, so ASan sees any read past the span */
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    fz_cc(s, size);
    fz_date(s, size);
    fz_etag(s, size);
    fz_vary(s, size);
    free(s);
    return 0;
}
