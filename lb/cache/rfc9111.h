/*
 * Field-value parsers for HTTP caching (RFC 9111 and the parts of RFC 9110 it leans on):
 * Cache-Control (requests and responses), HTTP-date (all three formats), entity-tags and
 * If-None-Match lists, Vary. Pure functions over byte spans: no allocation, no cache state,
 * so the L1 policy and a shared level use the same ones. Each is fuzzed
 * (tests/fuzz/fuzz_rfc9111.c).
 */
#ifndef CACHE_RFC9111_H
#define CACHE_RFC9111_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 9111 1.2.2: a larger delta-seconds, or an overflow while reading one, is this. */
#define CACHE_DELTA_MAX 2147483648ull

/* Cache-Control directives without an argument we act on (bits of cache_cc.flags). */
#define CACHE_CC_NO_STORE 0x0001         /* request or response */
#define CACHE_CC_NO_CACHE 0x0002         /* any form: qualified no-cache="F" counts whole */
#define CACHE_CC_PRIVATE 0x0004          /* any form: qualified private="F" counts whole */
#define CACHE_CC_PUBLIC 0x0008           /* response */
#define CACHE_CC_MUST_REVALIDATE 0x0010  /* response */
#define CACHE_CC_PROXY_REVALIDATE 0x0020 /* response */
#define CACHE_CC_ONLY_IF_CACHED 0x0040   /* request */
#define CACHE_CC_MAX_STALE_ANY 0x0080    /* request: max-stale without a value */

/* Directives with delta-seconds: index into cache_cc.delta[]. */
enum cache_cc_delta {
    CACHE_CC_MAX_AGE,
    CACHE_CC_S_MAXAGE,
    CACHE_CC_MAX_STALE,
    CACHE_CC_MIN_FRESH,
    CACHE_CC_SWR, /* stale-while-revalidate */
    CACHE_CC_SIE, /* stale-if-error */
    CACHE_CC_NDELTA,
};

/*
 * Directives read from every Cache-Control field line of one message. has and bad are bit
 * sets over enum cache_cc_delta: has = the directive appeared; bad = its argument was
 * missing or not delta-seconds (quoted digits are accepted, RFC 9111 5.2), or it appeared
 * twice with different values (4.2.1 lets a cache then treat the response as stale). What a
 * bad value means is the policy's choice (cache_cc_get()).
 */
struct cache_cc {
    uint32_t flags;
    uint32_t has;
    uint32_t bad;
    uint32_t delta[CACHE_CC_NDELTA]; /* seconds, at most CACHE_DELTA_MAX */
};

/*
 * Adds the directives of one Cache-Control field value @v[0..n) to @cc (zero it before the
 * first line). Names are case-insensitive; unknown directives are ignored. An element that
 * is not `token [ "=" ( token / quoted-string ) ]` is read up to the next comma, erring on
 * the side of caching less: a delta in it is bad, and only flags that restrict (no-store,
 * no-cache, private, must-revalidate, proxy-revalidate) count. Never fails.
 */
void cache_cc_parse(struct cache_cc *cc, const char *v, size_t n);

/*
 * The value of delta directive @d: returns false when absent; else true with *@sec set to
 * its value, or to @if_bad when it was bad.
 */
bool cache_cc_get(const struct cache_cc *cc, enum cache_cc_delta d, uint64_t if_bad, uint64_t *sec);

/*
 * Parses an HTTP-date (RFC 9110 5.6.7): IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
 * obsolete RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994",
 * surrounding whitespace allowed. A two-digit year is taken as the one of its century
 * nearest to but not more than 50 years after @now_s (Unix seconds). Returns 0 with *@out
 * set to Unix seconds, or -EINVAL (anything else, an impossible date or time, before 1970).
 */
int cache_http_date(const char *s, size_t n, int64_t now_s, int64_t *out);

/* Writes @t (Unix seconds, >= 0) as an IMF-fixdate: 29 bytes and a NUL into @out[30]. */
void cache_http_date_fmt(int64_t t, char out[30]);

/* An entity-tag: its opaque-tag (quotes included) as a span of the parsed text. */
struct cache_etag {
    const char *opaque;
    size_t len;
    bool weak;
};

/*
 * Parses one entity-tag (`[W/] DQUOTE *etagc DQUOTE`, whitespace around allowed) from
 * @s[0..n). Returns 0, or -EINVAL.
 */
int cache_etag_parse(const char *s, size_t n, struct cache_etag *out);

/* RFC 9110 8.8.3.2: strong comparison (neither weak, same opaque-tag) or weak (same tag). */
bool cache_etag_eq(const struct cache_etag *a, const struct cache_etag *b, bool weak);

/*
 * Evaluates an If-None-Match value @v[0..n) (`*` or a list of entity-tags) against the
 * stored @etag (NULL when the response has none) with the weak comparison, as RFC 9110
 * 13.1.2 asks. Returns 1 when it matches (a GET gets 304), 0 when not, -EINVAL when the
 * value is not a valid list (the caller should not answer it from the cache).
 */
int cache_inm_match(const char *v, size_t n, const struct cache_etag *etag);

#define CACHE_VARY_STAR 1 /* cache_vary_add(): Vary: * */

/*
 * Adds the field names of one Vary value @v[0..n) to the list @names (each lowercase and
 * NUL-terminated, *@len bytes used of @cap, *@count of them, at most @max): a name already
 * there is not added again. Returns 0, CACHE_VARY_STAR when the value lists "*", -EINVAL
 * when it is not a list of field names, -E2BIG when they do not fit.
 */
int cache_vary_add(char *names, uint32_t *len, size_t cap, uint32_t *count, uint32_t max,
                   const char *v, size_t n);

#endif
