/*
 * libFuzzer target for the L1 cache's cacheability decision (cache_policy_eval(): the
 * Cache-Control and Vary parsers above all) and for the Vary record a fill builds from it.
 *
 * Input: request field lines, an empty line, then response field lines, separated by '\n'
 * ("Accept-Encoding: gzip\n\nCache-Control: max-age=5\nVary: accept-encoding"). They are
 * wrapped into "GET /f HTTP/1.1" + Host and "HTTP/1.1 200 OK" with CRLFs; inputs that the
 * HTTP parser refuses are skipped.
 *
 * Checked beyond "no crash, no sanitizer report": a verdict is a known one; an accepted
 * response has ttl = freshness - age <= max_ttl (0 only with a validator; no-cache: 0), at most
 * CACHE_MAX_VARY distinct lowercase Vary names packed exactly in vary_len, no Set-Cookie and no
 * Authorization without an unquoted "public", and no bare "no-store" / "private" directive in an
 * unquoted Cache-Control value; once stored it is found again by the very request that filled it,
 * byte for byte, and cache_decide() on that request answers with the entry or sends it on,
 * consistently.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cache/cache.h"

#define FZ_TTL 60000
#define FZ_MAX_TTL 3600000
#define FZ_WALL 1796000000
#define FZ_MAX_BODY 4096

static struct cache *fz_cache;
static uint64_t fz_now;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (cache_create(1 << 20, &fz_cache) != 0)
        abort();
    return 0;
}

/* Appends "@p[0..n)\r\n" for each '\n'-separated line; returns the new length or 0. */
static size_t fz_lines(char *out, size_t o, size_t cap, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t l = nl ? (size_t)(nl - p) : n;
        if (o + l + 2 > cap)
            return 0;
        memcpy(out + o, p, l);
        o += l;
        out[o++] = '\r';
        out[o++] = '\n';
        if (!nl)
            break;
        n -= l + 1;
        p = nl + 1;
    }
    return o;
}

static bool fz_lower_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'+-.^_`|~", ch) != NULL);
}

/* True when an unquoted Cache-Control value of @resp lists @directive on its own, or
 * (@with_arg) with anything after its name. */
static bool fz_cc_find(const char *buf, const struct http_resp *resp, const char *directive,
                       bool with_arg)
{
    size_t dl = strlen(directive);
    for (int i = http_find_hdr(buf, resp->hdrs, resp->nhdrs, "cache-control", 0); i >= 0;
         i = http_find_hdr(buf, resp->hdrs, resp->nhdrs, "cache-control", i + 1u)) {
        const char *v = buf + resp->hdrs[i].value.off;
        size_t len = resp->hdrs[i].value.len;
        if (memchr(v, '"', len))
            continue;
        size_t s = 0;
        while (s <= len) {
            size_t e = s;
            while (e < len && v[e] != ',')
                e++;
            size_t a = s, b = e;
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (b - a == dl && strncasecmp(v + a, directive, dl) == 0)
                return true;
            if (with_arg && b - a > dl && strncasecmp(v + a, directive, dl) == 0 &&
                (v[a + dl] == '=' || v[a + dl] == ' ' || v[a + dl] == '\t'))
                return true;
            s = e + 1;
        }
    }
    return false;
}

static void fz_wake(void *arg, uint64_t waiter, struct cache_entry *e)
{
    (void)arg;
    (void)waiter;
    (void)e;
}

static bool fz_cc_has(const char *buf, const struct http_resp *resp, const char *directive)
{
    return fz_cc_find(buf, resp, directive, false);
}

static void fz_check_policy(const struct cache_policy *p)
{
    bool validator = p->etag_len || p->last_modified >= 0;
    if ((p->ttl_ms == 0 && !validator) || p->ttl_ms > FZ_MAX_TTL ||
        p->ttl_ms != (p->fresh_ms > p->age_ms ? p->fresh_ms - p->age_ms : 0) ||
        p->fresh_ms > FZ_MAX_TTL || p->nvary > CACHE_MAX_VARY || p->etag_len > CACHE_ETAG_MAX)
        abort();
    if (p->has_length && p->content_length > FZ_MAX_BODY)
        abort();
    size_t off = 0;
    for (uint32_t k = 0; k < p->nvary; k++) {
        size_t l = strnlen(p->vary + off, sizeof(p->vary) - off);
        if (l == 0 || off + l >= sizeof(p->vary))
            abort();
        for (size_t j = 0; j < l; j++)
            if (!fz_lower_tchar(p->vary[off + j]))
                abort();
        for (size_t o2 = 0; o2 < off; o2 += strlen(p->vary + o2) + 1)
            if (strcmp(p->vary + o2, p->vary + off) == 0)
                abort(); /* duplicate name */
        off += l + 1;
    }
    if (off != p->vary_len)
        abort();
}

static void fz_store_and_find(const char *qbuf, const struct http_req *req, const char *sbuf,
                              size_t slen, const struct cache_policy *p)
{
    static char body[FZ_MAX_BODY];
    size_t blen = p->has_length ? (size_t)p->content_length : 100;
    struct cache_fill *f;
    fz_now += 1000;
    int rc = cache_fill_begin(fz_cache, qbuf, req, 0, &f);
    if (rc != CACHE_FILL_NEW)
        abort(); /* nothing else is pending, and the request was accepted */
    rc = cache_fill_head(fz_cache, f, p, qbuf, req, sbuf, slen, fz_now);
    if (rc == -EFBIG) {
        cache_fill_abort(fz_cache, f, fz_wake, NULL);
        return;
    }
    memset(body, 'b', blen);
    if (rc != 0 || cache_fill_append(fz_cache, f, body, blen) != 0 ||
        cache_fill_commit(fz_cache, f, fz_wake, NULL) != 0)
        abort();
    struct cache_entry *e = cache_lookup(fz_cache, qbuf, req, fz_now);
    if (!e || !cache_entry_match(e, qbuf, req))
        abort();
    size_t hl, bl;
    const char *h = cache_entry_hdr(e, &hl);
    const char *b = cache_entry_body(e, &bl);
    if (hl != slen || memcmp(h, sbuf, slen) != 0 || bl != blen || memcmp(b, body, blen) != 0)
        abort();
    cache_entry_unref(e);
    enum cache_decision d = cache_decide(fz_cache, qbuf, req, fz_now, FZ_WALL, &e);
    bool with_entry = d == CACHE_D_HIT || d == CACHE_D_304 || d == CACHE_D_REVALIDATE;
    if ((unsigned)d > CACHE_D_REVALIDATE || (e != NULL) != with_entry)
        abort();
    /* a stale entry is revalidated only when it has a validator to send */
    char line[160];
    if (d == CACHE_D_REVALIDATE && cache_entry_validator(e, line, sizeof(line)) == 0)
        abort();
    if (e)
        cache_entry_unref(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char qbuf[8192], sbuf[8192];
    static struct http_req req;
    static struct http_resp resp;
    const char *in = (const char *)data;
    if (size > 4096 || memchr(in, '\r', size))
        return 0;
    const char *sep = memmem(in, size, "\n\n", 2);
    size_t qn = sep ? (size_t)(sep - in) : 0;
    const char *s = sep ? sep + 2 : in;
    size_t sn = size - (size_t)(s - in);

    static const char qhead[] = "GET /f HTTP/1.1\r\nHost: h\r\n";
    memcpy(qbuf, qhead, sizeof(qhead) - 1);
    size_t ql = fz_lines(qbuf, sizeof(qhead) - 1, sizeof(qbuf) - 2, in, qn);
    if (ql == 0)
        return 0;
    memcpy(qbuf + ql, "\r\n", 2);
    ql += 2;
    static const char shead[] = "HTTP/1.1 200 OK\r\n";
    memcpy(sbuf, shead, sizeof(shead) - 1);
    size_t sl = fz_lines(sbuf, sizeof(shead) - 1, sizeof(sbuf) - 2, s, sn);
    if (sl == 0)
        return 0;
    memcpy(sbuf + sl, "\r\n", 2);
    sl += 2;

    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    if (http_parse_request(qbuf, ql, sizeof(qbuf), sizeof(qbuf), &req) != (int)ql)
        return 0;
    if (http_parse_response(sbuf, sl, sizeof(sbuf), HTTP_M_GET, &resp) != (int)sl)
        return 0;

    struct cache_policy p;
    struct cache_rules rules = {
        .heuristic_ms = FZ_TTL, .max_ttl_ms = FZ_MAX_TTL, .max_body = FZ_MAX_BODY};
    struct cache_times t = {.wall_s = FZ_WALL, .delay_ms = 0};
    enum cache_verdict v = cache_policy_eval(qbuf, &req, sbuf, &resp, &rules, &t, &p);
    if ((unsigned)v > CACHE_NS_TOO_BIG)
        abort();
    if (v != CACHE_OK)
        return 0;
    fz_check_policy(&p);
    /* a quoted "public" could hide in another directive's argument: only then skip */
    bool quoted = false;
    for (int i = http_find_hdr(sbuf, resp.hdrs, resp.nhdrs, "cache-control", 0); i >= 0;
         i = http_find_hdr(sbuf, resp.hdrs, resp.nhdrs, "cache-control", i + 1u))
        quoted |= memchr(sbuf + resp.hdrs[i].value.off, '"', resp.hdrs[i].value.len) != NULL;
    if (fz_cc_has(sbuf, &resp, "no-store") || fz_cc_has(sbuf, &resp, "private"))
        abort();
    /* no-cache: kept only to be revalidated at every use */
    if (fz_cc_has(sbuf, &resp, "no-cache") &&
        (p.ttl_ms != 0 || (!p.etag_len && p.last_modified < 0)))
        abort();
    if (!quoted && http_find_hdr(sbuf, resp.hdrs, resp.nhdrs, "set-cookie", 0) >= 0 &&
        !fz_cc_find(sbuf, &resp, "public", true))
        abort();
    fz_store_and_find(qbuf, &req, sbuf, sl, &p);
    return 0;
}
