/*
 * Field-value parsers for HTTP caching (see rfc9111.h): Cache-Control, HTTP-date,
 * entity-tags and If-None-Match, Vary. They read spans that need not be NUL-terminated and
 * never look past them.
 */
#include <errno.h>
#include <string.h>

#include "lb/cache/rfc9111.h"

static inline bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static inline char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch | 0x20) : ch;
}

static bool eq_lower(const char *a, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lit[i])
            return false;
    return true;
}

/* tchar of RFC 9110 5.6.2 */
static bool is_tchar(char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* ---- Cache-Control ---- */

/* delta-seconds in @s[0..n): 0 with *@out (saturated at CACHE_DELTA_MAX), or -EINVAL. */
static int delta_read(const char *s, size_t n, uint32_t *out)
{
    if (n == 0)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        if (v < CACHE_DELTA_MAX)
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = (uint32_t)(v < CACHE_DELTA_MAX ? v : CACHE_DELTA_MAX);
    return 0;
}

static const struct {
    const char *name;
    uint32_t flag;
} cc_flags[] = {
    {"no-store", CACHE_CC_NO_STORE},
    {"no-cache", CACHE_CC_NO_CACHE},
    {"private", CACHE_CC_PRIVATE},
    {"public", CACHE_CC_PUBLIC},
    {"must-revalidate", CACHE_CC_MUST_REVALIDATE},
    {"proxy-revalidate", CACHE_CC_PROXY_REVALIDATE},
    {"only-if-cached", CACHE_CC_ONLY_IF_CACHED},
};

static const char *const cc_deltas[CACHE_CC_NDELTA] = {
    [CACHE_CC_MAX_AGE] = "max-age",
    [CACHE_CC_S_MAXAGE] = "s-maxage",
    [CACHE_CC_MAX_STALE] = "max-stale",
    [CACHE_CC_MIN_FRESH] = "min-fresh",
    [CACHE_CC_SWR] = "stale-while-revalidate",
    [CACHE_CC_SIE] = "stale-if-error",
};

/* Flags that only ever make the cache do less: honoured even in a malformed element. */
#define CC_RESTRICTIVE                                                                             \
    (CACHE_CC_NO_STORE | CACHE_CC_NO_CACHE | CACHE_CC_PRIVATE | CACHE_CC_MUST_REVALIDATE |         \
     CACHE_CC_PROXY_REVALIDATE)

/*
 * One directive: @arg is NULL when it had none; @arg_ok false when it was malformed;
 * @junk when something that is not a list separator followed it ("max-age=5 x"): then a
 * delta counts as bad and only restrictive flags count.
 */
static void cc_apply(struct cache_cc *cc, const char *name, size_t nlen, const char *arg,
                     size_t alen, bool arg_ok, bool junk)
{
    for (size_t k = 0; k < sizeof(cc_flags) / sizeof(cc_flags[0]); k++)
        if (eq_lower(name, nlen, cc_flags[k].name)) {
            if (!junk || (cc_flags[k].flag & CC_RESTRICTIVE))
                cc->flags |= cc_flags[k].flag;
            return;
        }
    for (int d = 0; d < CACHE_CC_NDELTA; d++) {
        if (!eq_lower(name, nlen, cc_deltas[d]))
            continue;
        uint32_t bit = 1u << d, v = 0;
        if (d == CACHE_CC_MAX_STALE && !arg) {
            if (!junk)
                cc->flags |= CACHE_CC_MAX_STALE_ANY;
            return;
        }
        bool ok = !junk && arg && arg_ok && delta_read(arg, alen, &v) == 0;
        if (!ok || ((cc->has & bit) && cc->delta[d] != v))
            cc->bad |= bit;
        if (!(cc->has & bit))
            cc->delta[d] = v;
        cc->has |= bit;
        return;
    }
}

/* Skips a quoted-string starting at @v[*i] == '"'; false when it does not end. */
static bool skip_quoted(const char *v, size_t n, size_t *i, bool *escaped)
{
    for (size_t k = *i + 1; k < n; k++) {
        if (v[k] == '\\') {
            *escaped = true;
            k++;
        } else if (v[k] == '"') {
            *i = k + 1;
            return true;
        }
    }
    *i = n;
    return false;
}

void cache_cc_parse(struct cache_cc *cc, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t n0 = i;
        while (i < n && is_tchar(v[i]))
            i++;
        size_t n1 = i;
        while (i < n && is_ows(v[i]))
            i++;
        const char *arg = NULL;
        size_t alen = 0;
        bool ok = true;
        if (i < n && v[i] == '=') {
            i++;
            while (i < n && is_ows(v[i]))
                i++;
            size_t a0 = i;
            if (i < n && v[i] == '"') {
                bool esc = false;
                ok = skip_quoted(v, n, &i, &esc) && !esc;
                arg = v + a0 + 1;
                alen = ok ? i - a0 - 2 : 0;
            } else {
                while (i < n && is_tchar(v[i]))
                    i++;
                arg = v + a0;
                alen = i - a0;
            }
            while (i < n && is_ows(v[i]))
                i++;
        }
        bool junk = i < n && v[i] != ',';
        while (i < n && v[i] != ',') /* junk after the element: skip to the next comma */
            i++;
        if (n1 > n0)
            cc_apply(cc, v + n0, n1 - n0, arg, alen, ok, junk);
    }
}

bool cache_cc_get(const struct cache_cc *cc, enum cache_cc_delta d, uint64_t if_bad, uint64_t *sec)
{
    uint32_t bit = 1u << d;
    if (!(cc->has & bit))
        return false;
    *sec = (cc->bad & bit) ? if_bad : cc->delta[d];
    return true;
}

/* ---- HTTP-date ---- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_days[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};

/* Days from 1970-01-01 to @y-@m-@d (proleptic Gregorian; m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* A small cursor over the date text. */
struct dcur {
    const char *s;
    size_t n, i;
};

static bool d_lit(struct dcur *c, const char *lit)
{
    size_t l = strlen(lit);
    if (c->n - c->i < l || memcmp(c->s + c->i, lit, l) != 0)
        return false;
    c->i += l;
    return true;
}

/* Exactly @w digits (a leading space counts as 0 when @sp, for asctime's day). */
static bool d_num(struct dcur *c, unsigned w, bool sp, int *out)
{
    if (c->n - c->i < w)
        return false;
    int v = 0;
    for (unsigned k = 0; k < w; k++) {
        char ch = c->s[c->i + k];
        if (sp && k == 0 && ch == ' ' && w > 1)
            continue;
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    c->i += w;
    *out = v;
    return true;
}

static bool d_month(struct dcur *c, int *m)
{
    for (int k = 0; k < 12; k++)
        if (d_lit(c, months[k])) {
            *m = k + 1;
            return true;
        }
    return false;
}

static bool d_time(struct dcur *c, int *hh, int *mm, int *ss)
{
    return d_num(c, 2, false, hh) && d_lit(c, ":") && d_num(c, 2, false, mm) && d_lit(c, ":") &&
           d_num(c, 2, false, ss);
}

/* The day name: 0..6, and whether it was the long (RFC 850) form. */
static int d_dayname(struct dcur *c, bool *is_long)
{
    for (int k = 0; k < 7; k++)
        if (d_lit(c, long_days[k])) {
            *is_long = true;
            return k;
        }
    for (int k = 0; k < 7; k++)
        if (d_lit(c, days[k])) {
            *is_long = false;
            return k;
        }
    return -1;
}

static int year_from_two(int yy, int64_t now_s)
{
    int64_t ny;
    unsigned m, d;
    civil_from_days((now_s > 0 ? now_s : 0) / 86400, &ny, &m, &d);
    int64_t y = ny - ny % 100 + yy;
    if (y > ny + 50)
        y -= 100;
    return (int)y;
}

int cache_http_date(const char *s, size_t n, int64_t now_s, int64_t *out)
{
    while (n > 0 && is_ows(*s))
        s++, n--;
    while (n > 0 && is_ows(s[n - 1]))
        n--;
    struct dcur c = {s, n, 0};
    bool is_long = false;
    int y = 0, m = 0, d = 0, hh = 0, mm = 0, ss = 0;
    if (d_dayname(&c, &is_long) < 0)
        return -EINVAL;
    bool ok;
    if (is_long) { /* Sunday, 06-Nov-94 08:49:37 GMT */
        ok = d_lit(&c, ", ") && d_num(&c, 2, false, &d) && d_lit(&c, "-") && d_month(&c, &m) &&
             d_lit(&c, "-") && d_num(&c, 2, false, &y) && d_lit(&c, " ") &&
             d_time(&c, &hh, &mm, &ss) && d_lit(&c, " GMT");
        y = year_from_two(y, now_s);
    } else if (c.i < n && c.s[c.i] == ',') { /* Sun, 06 Nov 1994 08:49:37 GMT */
        ok = d_lit(&c, ", ") && d_num(&c, 2, false, &d) && d_lit(&c, " ") && d_month(&c, &m) &&
             d_lit(&c, " ") && d_num(&c, 4, false, &y) && d_lit(&c, " ") &&
             d_time(&c, &hh, &mm, &ss) && d_lit(&c, " GMT");
    } else { /* Sun Nov  6 08:49:37 1994 */
        ok = d_lit(&c, " ") && d_month(&c, &m) && d_lit(&c, " ") && d_num(&c, 2, true, &d) &&
             d_lit(&c, " ") && d_time(&c, &hh, &mm, &ss) && d_lit(&c, " ") &&
             d_num(&c, 4, false, &y);
    }
    if (!ok || c.i != n || y < 1970 || d < 1 || hh > 23 || mm > 59 || ss > 60)
        return -EINVAL;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return -EINVAL;
    *out = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

void cache_http_date_fmt(int64_t t, char out[30])
{
    if (t < 0)
        t = 0;
    int64_t y;
    unsigned m, d;
    int64_t days_n = t / 86400, sec = t % 86400;
    civil_from_days(days_n, &y, &m, &d);
    unsigned wd = (unsigned)((days_n + 4) % 7); /* 1970-01-01 was a Thursday */
    unsigned hh = (unsigned)(sec / 3600), mm = (unsigned)(sec / 60 % 60), ss = (unsigned)(sec % 60);
    char *o = out;
    memcpy(o, days[wd], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    *o++ = (char)('0' + d / 10);
    *o++ = (char)('0' + d % 10);
    *o++ = ' ';
    memcpy(o, months[m - 1], 3);
    o += 3;
    *o++ = ' ';
    unsigned yy = (unsigned)(y % 10000);
    *o++ = (char)('0' + yy / 1000);
    *o++ = (char)('0' + yy / 100 % 10);
    *o++ = (char)('0' + yy / 10 % 10);
    *o++ = (char)('0' + yy % 10);
    unsigned f[3] = {hh, mm, ss};
    for (int k = 0; k < 3; k++) {
        *o++ = k ? ':' : ' ';
        *o++ = (char)('0' + f[k] / 10);
        *o++ = (char)('0' + f[k] % 10);
    }
    memcpy(o, " GMT", 5);
}

/* ---- entity-tags ---- */

/* etagc of RFC 9110 8.8.3: %x21 / %x23-7E / obs-text */
static bool is_etagc(unsigned char ch)
{
    return ch == 0x21 || (ch >= 0x23 && ch != 0x7f);
}

/* One entity-tag at @s[*i] (no whitespace skipped); advances *@i past it. */
static int etag_at(const char *s, size_t n, size_t *i, struct cache_etag *out)
{
    size_t k = *i;
    out->weak = false;
    if (n - k >= 2 && s[k] == 'W' && s[k + 1] == '/') {
        out->weak = true;
        k += 2;
    }
    if (k >= n || s[k] != '"')
        return -EINVAL;
    size_t o0 = k++;
    while (k < n && is_etagc((unsigned char)s[k]))
        k++;
    if (k >= n || s[k] != '"')
        return -EINVAL;
    k++;
    out->opaque = s + o0;
    out->len = k - o0;
    *i = k;
    return 0;
}

int cache_etag_parse(const char *s, size_t n, struct cache_etag *out)
{
    size_t i = 0;
    while (i < n && is_ows(s[i]))
        i++;
    if (etag_at(s, n, &i, out) < 0)
        return -EINVAL;
    while (i < n && is_ows(s[i]))
        i++;
    return i == n ? 0 : -EINVAL;
}

bool cache_etag_eq(const struct cache_etag *a, const struct cache_etag *b, bool weak)
{
    if (!weak && (a->weak || b->weak))
        return false;
    return a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

int cache_inm_match(const char *v, size_t n, const struct cache_etag *etag)
{
    size_t i = 0;
    while (i < n && is_ows(v[i]))
        i++;
    if (i < n && v[i] == '*') {
        i++;
        while (i < n && is_ows(v[i]))
            i++;
        return i == n ? (etag ? 1 : 0) : -EINVAL;
    }
    bool any = false, match = false;
    while (i < n) {
        if (v[i] == ',' || is_ows(v[i])) {
            i++;
            continue;
        }
        struct cache_etag t;
        if (etag_at(v, n, &i, &t) < 0)
            return -EINVAL;
        any = true;
        if (etag && cache_etag_eq(&t, etag, true))
            match = true;
        while (i < n && is_ows(v[i]))
            i++;
        if (i < n && v[i] != ',')
            return -EINVAL;
    }
    if (!any)
        return -EINVAL;
    return match ? 1 : 0;
}

/* ---- Vary ---- */

int cache_vary_add(char *names, uint32_t *len, size_t cap, uint32_t *count, uint32_t max,
                   const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i >= n)
            break;
        size_t n0 = i;
        while (i < n && v[i] != ',' && !is_ows(v[i]))
            i++;
        size_t nl = i - n0;
        while (i < n && is_ows(v[i]))
            i++;
        if (i < n && v[i] != ',')
            return -EINVAL; /* "a b": not a list of names */
        if (nl == 1 && v[n0] == '*')
            return CACHE_VARY_STAR;
        for (size_t k = n0; k < n0 + nl; k++)
            if (!is_tchar(v[k]) || v[k] == '*')
                return -EINVAL; /* a name no request can carry */
        const char *name = names;
        bool dup = false;
        for (uint32_t k = 0; k < *count && !dup; k++) {
            size_t l = strlen(name);
            dup = l == nl && eq_lower(v + n0, nl, name);
            name += l + 1;
        }
        if (dup)
            continue;
        if (*count == max || nl > 255 || *len + nl + 1 > cap)
            return -E2BIG;
        for (size_t k = 0; k < nl; k++)
            names[*len + k] = lower(v[n0 + k]);
        names[*len + nl] = '\0';
        *len += (uint32_t)nl + 1;
        (*count)++;
    }
    return 0;
}
