/*
 * Snapshot store: deciding the response to one request for one entry. Owns the parsers for
 * the request fields that matter to a static file (Accept-Encoding, If-None-Match,
 * If-Modified-Since, If-Range, Range) and the order in which RFC 9110 13.2.2 applies them.
 *
 * Everything here is a pure function of the entry and a few header values: no allocation,
 * no clock, no system call. Parsers read spans that are not NUL-terminated and never look
 * past them; a value they do not understand makes its header count as absent (or, for
 * conditions, as "no match"), which always falls back to sending the full 200 response —
 * the answer that is correct whatever the client meant.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "static/internal.h"

static const char snap_405[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
                               "Content-Length: 0\r\n\r\n";

static inline bool snap_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool snap_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- Accept-Encoding (RFC 9110 12.5.3) ---- */

/* True when qvalue @p[0..n) is zero: "0", "0.", "0.0", "0.00", "0.000". A malformed qvalue
 * also counts as zero: refusing a coding is the safe reading. */
static bool snap_q_zero(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return true;
    if (p[0] == '1') {
        for (size_t i = 1; i < n; i++)
            if ((i == 1 && p[i] != '.') || (i > 1 && p[i] != '0'))
                return true;
        return false;
    }
    if (p[0] != '0')
        return true;
    bool nonzero = false;
    for (size_t i = 1; i < n; i++) {
        if (i == 1) {
            if (p[i] != '.')
                return true;
        } else if (!snap_digit(p[i])) {
            return true;
        } else if (p[i] != '0') {
            nonzero = true;
        }
    }
    return !nonzero;
}

/* True when the client accepts gzip: "gzip" (or "x-gzip") with q > 0, or "*" with q > 0 and
 * gzip not listed. */
static bool snap_accepts_gzip(const char *p, size_t n)
{
    int gzip = -1, star = -1; /* -1 not listed, 0 refused, 1 accepted */
    size_t i = 0;
    while (i < n) {
        while (i < n && (snap_ows(p[i]) || p[i] == ','))
            i++;
        size_t cs = i;
        while (i < n && p[i] != ',' && p[i] != ';' && !snap_ows(p[i]))
            i++;
        size_t clen = i - cs;
        int q = 1;
        /* parameters: only q matters */
        while (i < n && p[i] != ',') {
            while (i < n && snap_ows(p[i]))
                i++;
            if (i >= n || p[i] != ';') {
                while (i < n && p[i] != ',')
                    i++;
                break;
            }
            i++;
            while (i < n && snap_ows(p[i]))
                i++;
            size_t ps = i;
            while (i < n && p[i] != ',' && p[i] != ';' && !snap_ows(p[i]))
                i++;
            if (i - ps >= 2 && (p[ps] == 'q' || p[ps] == 'Q') && p[ps + 1] == '=')
                q = !snap_q_zero(p + ps + 2, i - ps - 2);
        }
        if ((clen == 4 && strncasecmp(p + cs, "gzip", 4) == 0) ||
            (clen == 6 && strncasecmp(p + cs, "x-gzip", 6) == 0))
            gzip = gzip == 1 ? 1 : q;
        else if (clen == 1 && p[cs] == '*')
            star = q;
    }
    return gzip == 1 || (gzip == -1 && star == 1);
}

/* ---- entity tags (RFC 9110 8.8.3) ---- */

/* If-None-Match: "*" or a list of entity tags, compared weakly (W/ ignored). */
static bool snap_etag_match_weak(const struct snap_var *v, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && snap_ows(p[i]))
        i++;
    if (i < n && p[i] == '*')
        return true;
    while (i < n) {
        while (i < n && (snap_ows(p[i]) || p[i] == ','))
            i++;
        if (i == n)
            break;
        if (n - i >= 2 && p[i] == 'W' && p[i + 1] == '/')
            i += 2;
        if (i >= n || p[i] != '"')
            return false; /* malformed: no match */
        size_t s = ++i;
        while (i < n && p[i] != '"')
            i++;
        if (i >= n)
            return false;
        if (i - s == SNAP_ETAG_HEX && memcmp(p + s, v->etag, SNAP_ETAG_HEX) == 0)
            return true;
        i++;
    }
    return false;
}

/* ---- HTTP-date (RFC 9110 5.6.7) ---- */

static int snap_num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!snap_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int snap_month(const char *p)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++)
        if (memcmp(p, months + 3 * m, 3) == 0)
            return m;
    return -1;
}

/* "HH:MM:SS" */
static bool snap_time(const char *p, struct tm *tm)
{
    if (p[2] != ':' || p[5] != ':')
        return false;
    tm->tm_hour = snap_num(p, 2);
    tm->tm_min = snap_num(p + 3, 2);
    tm->tm_sec = snap_num(p + 6, 2);
    return tm->tm_hour >= 0 && tm->tm_hour < 24 && tm->tm_min >= 0 && tm->tm_min < 60 &&
           tm->tm_sec >= 0 && tm->tm_sec <= 60;
}

/*
 * The three forms a recipient must accept:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * The day name is not checked against the date. Returns 0 or -EINVAL.
 */
static int snap_parse_date(const char *p, size_t n, time_t *out)
{
    struct tm tm = {0};
    int year;
    const char *comma = memchr(p, ',', n);

    if (n == 29 && comma == p + 3) {
        if (p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' || p[25] != ' ' ||
            memcmp(p + 26, "GMT", 3) != 0 || !snap_time(p + 17, &tm))
            return -EINVAL;
        tm.tm_mday = snap_num(p + 5, 2);
        tm.tm_mon = snap_month(p + 8);
        year = snap_num(p + 12, 4);
    } else if (comma && comma - p >= 6 && comma - p <= 9 && (size_t)(comma - p) + 24 == n) {
        const char *d = comma + 2; /* "06-Nov-94 08:49:37 GMT" */
        if (comma[1] != ' ' || d[2] != '-' || d[6] != '-' || d[9] != ' ' || d[18] != ' ' ||
            memcmp(d + 19, "GMT", 3) != 0 || !snap_time(d + 10, &tm))
            return -EINVAL;
        tm.tm_mday = snap_num(d, 2);
        tm.tm_mon = snap_month(d + 3);
        year = snap_num(d + 7, 2);
        if (year >= 0) /* RFC 9110: a two-digit year more than 50 years ahead is in the past */
            year += year < 70 ? 2000 : 1900;
    } else if (n == 24 && !comma) {
        if (p[3] != ' ' || p[7] != ' ' || p[10] != ' ' || p[19] != ' ' || !snap_time(p + 11, &tm))
            return -EINVAL;
        tm.tm_mon = snap_month(p + 4);
        tm.tm_mday = p[8] == ' ' ? snap_num(p + 9, 1) : snap_num(p + 8, 2);
        year = snap_num(p + 20, 4);
    } else {
        return -EINVAL;
    }
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || year < 1900)
        return -EINVAL;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return 0;
}

/* If-Range (RFC 9110 13.1.5): the range applies only when the validator still matches, by
 * strong comparison for a tag and exactly for a date. */
static bool snap_if_range_ok(const struct snap_var *v, const char *p, size_t n)
{
    if (n > 0 && (p[0] == '"' || p[0] == 'W'))
        return n == SNAP_ETAG_HEX + 2 && p[0] == '"' && p[n - 1] == '"' &&
               memcmp(p + 1, v->etag, SNAP_ETAG_HEX) == 0;
    time_t t;
    return snap_parse_date(p, n, &t) == 0 && t == v->mtime;
}

/* ---- Range (RFC 9110 14.1.2, 14.2) ---- */

/* Decimal digits to a value that saturates at UINT64_MAX: a first-pos past any length is
 * unsatisfiable, and a last-pos or suffix past it means "to the end", whatever the digits. */
static uint64_t snap_u64_sat(const char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return UINT64_MAX;
        v = v * 10 + d;
    }
    return v;
}

/*
 * Returns 1 with the inclusive range [*first, *last] of a single satisfiable range, -1 when
 * it is unsatisfiable (416), 0 when the header is to be ignored and the whole body sent:
 * another unit, bad syntax (including last < first), several ranges, or a suffix range on an
 * empty body (no 206 can describe "all of nothing").
 */
static int snap_parse_range(const char *p, size_t n, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (n < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return 0;
    size_t i = 6, es = 0, ee = 0;
    int count = 0;
    while (i < n) {
        while (i < n && snap_ows(p[i]))
            i++;
        size_t s = i;
        while (i < n && p[i] != ',')
            i++;
        size_t e = i;
        while (e > s && snap_ows(p[e - 1]))
            e--;
        if (e > s) {
            count++;
            es = s;
            ee = e;
        }
        if (i < n)
            i++; /* the comma */
    }
    if (count != 1)
        return 0;

    const char *r = p + es;
    size_t rn = ee - es;
    const char *dash = memchr(r, '-', rn);
    if (!dash)
        return 0;
    size_t alen = (size_t)(dash - r), blen = rn - alen - 1;
    for (size_t k = 0; k < rn; k++)
        if (k != alen && !snap_digit(r[k]))
            return 0;
    if (alen == 0) {
        if (blen == 0)
            return 0;
        uint64_t suffix = snap_u64_sat(dash + 1, blen);
        if (suffix == 0)
            return -1;
        if (size == 0)
            return 0;
        *first = suffix >= size ? 0 : size - suffix;
        *last = size - 1;
        return 1;
    }
    uint64_t a = snap_u64_sat(r, alen);
    uint64_t b = blen ? snap_u64_sat(dash + 1, blen) : UINT64_MAX;
    if (b < a)
        return 0;
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

/* ---- the decision ---- */

/* RFC 9110 13.2.2: If-None-Match, when present, decides alone; else If-Modified-Since. */
static bool snap_not_modified(const struct snap_var *v, const struct snap_req *req)
{
    if (req->if_none_match.p)
        return snap_etag_match_weak(v, req->if_none_match.p, req->if_none_match.len);
    if (req->if_modified_since.p) {
        time_t t;
        return snap_parse_date(req->if_modified_since.p, req->if_modified_since.len, &t) == 0 &&
               v->mtime <= t;
    }
    return false;
}

/* A GET with a Range (and an If-Range, if any, that holds): 206 with that one range, written
 * into @buf, or 416. Returns 1 when @resp is that answer, 0 when the whole representation is
 * to be sent instead (no range, a failed If-Range, a range that is ignored), or -ENOSPC. */
static int snap_eval_range(const struct snap_var *v, const struct snap_req *req, char *buf,
                           size_t cap, struct snap_resp *resp)
{
    if (req->method != SNAP_M_GET || !req->range.p ||
        (req->if_range.p && !snap_if_range_ok(v, req->if_range.p, req->if_range.len)))
        return 0;
    uint64_t first = 0, last = 0;
    int r = snap_parse_range(req->range.p, req->range.len, v->body_len, &first, &last);
    int n = 0;
    if (r > 0) {
        size_t rest = v->hdr_len - v->rest_off;
        n = snprintf(buf, cap,
                     "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %llu-%llu/%llu\r\n"
                     "Content-Length: %llu\r\n",
                     (unsigned long long)first, (unsigned long long)last,
                     (unsigned long long)v->body_len, (unsigned long long)(last - first + 1));
        if (n < 0 || (size_t)n + rest > cap)
            return -ENOSPC;
        memcpy(buf + n, v->hdr + v->rest_off, rest);
        resp->status = 206;
        resp->hdr = buf;
        resp->hdr_len = (size_t)n + rest;
        resp->body = v->body + first;
        resp->body_len = last - first + 1;
        return 1;
    }
    if (r < 0) {
        n = snprintf(buf, cap,
                     "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%llu\r\n"
                     "Content-Length: 0\r\n\r\n",
                     (unsigned long long)v->body_len);
        if (n < 0 || (size_t)n >= cap)
            return -ENOSPC;
        resp->status = 416;
        resp->hdr = buf;
        resp->hdr_len = (size_t)n;
        return 1;
    }
    return 0;
}

int snap_eval(const struct snap_entry *e, const struct snap_req *req, char *buf, size_t cap,
              struct snap_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (cap < SNAP_HDR_MAX)
        return -ENOSPC;
    if (req->method != SNAP_M_GET && req->method != SNAP_M_HEAD) {
        resp->status = 405;
        resp->hdr = snap_405;
        resp->hdr_len = sizeof(snap_405) - 1;
        return 0;
    }
    if (e->kind == SNAP_K_REDIRECT) {
        resp->status = 301;
        resp->hdr = e->id.hdr;
        resp->hdr_len = e->id.hdr_len;
        return 0;
    }

    const struct snap_var *v = &e->id;
    if (e->has_gz && req->accept_encoding.p &&
        snap_accepts_gzip(req->accept_encoding.p, req->accept_encoding.len))
        v = &e->gz;

    if (snap_not_modified(v, req)) {
        resp->status = 304;
        resp->hdr = v->hdr304;
        resp->hdr_len = v->hdr304_len;
        return 0;
    }
    int rc = snap_eval_range(v, req, buf, cap, resp);
    if (rc != 0)
        return rc < 0 ? rc : 0;

    resp->status = 200;
    resp->hdr = v->hdr;
    resp->hdr_len = v->hdr_len;
    if (req->method == SNAP_M_GET) {
        resp->body = v->body;
        resp->body_len = v->body_len;
        resp->contiguous = true;
    }
    return 0;
}
