/*
 * HTTP/1.1 parsing (RFC 9112): request and response header sections into spans, and the
 * incremental body framing state machine. Owns nothing but code and constant tables: every
 * result points into the caller's buffer and nothing is allocated.
 *
 * How a header section is parsed. Each call first looks for the end of the section with
 * memchr() for LF, resuming at scan.scanned (always the start of a line), and checks on the
 * way that every LF follows a CR; a bare LF is rejected as soon as it arrives. Once the empty
 * line is in the buffer, one pass walks the section line by line with table lookups and
 * validates everything else. That pass relies on a sentinel: every line of a complete
 * section ends in CRLF, and CR belongs to no byte class, so every class loop stops inside
 * the section without a bounds check.
 *
 * The policy throughout is that of a proxy that must never frame a message differently
 * from the server behind it: where RFC 9112 permits a recipient to guess or to be lenient
 * about framing, we reject.
 */
#include <limits.h>
#include <string.h>

#include "lb/http/h1.h"

/* Status for any response error: the client gets a 502 and the backend connection goes. */
#define E_RESP 502

/* ---- byte classes ---- */

#define C_TCHAR 0x01  /* token character (RFC 9110 5.6.2) */
#define C_FVAL 0x02   /* allowed inside a field value: VCHAR, obs-text, SP, HTAB */
#define C_TARGET 0x04 /* allowed in a request-target: visible ASCII except '#' */
#define C_HEX 0x08
#define C_HOST 0x10   /* reg-name: unreserved, sub-delims except ',', and '%' */
#define C_QDTEXT 0x20 /* inside a quoted-string without escaping */

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_TCHAR(c)                                                                                \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_FVAL(c) (((c) >= 0x20 && (c) != 0x7f) || (c) == '\t')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
/* A fragment never travels in a request and servers disagree on what to do with one. */
#define IS_TARGET(c) ((c) > 0x20 && (c) < 0x7f && (c) != '#')
/* ',' is left out: a Host holding a comma is most likely two Hosts merged into a list. */
#define IS_HOST(c)                                                                                 \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||         \
     (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ';' || (c) == '=' || (c) == '%')
#define IS_QDTEXT(c)                                                                               \
    ((c) == '\t' || (c) == ' ' || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5b) ||                   \
     ((c) >= 0x5d && (c) <= 0x7e) || (c) >= 0x80)

#define CLS(c)                                                                                     \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_FVAL(c) ? C_FVAL : 0) | (IS_TARGET(c) ? C_TARGET : 0) |     \
     (IS_HEX(c) ? C_HEX : 0) | (IS_HOST(c) ? C_HOST : 0) | (IS_QDTEXT(c) ? C_QDTEXT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

static const uint8_t cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

static inline bool is(uint8_t c, uint8_t class)
{
    return cls[c] & class;
}

static inline bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static inline uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
}

/* Case-insensitive comparison of @n bytes of @s with the lowercase literal @lit. */
static bool eq_lower(const uint8_t *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    return true;
}

/*
 * Word-at-a-time tests for the long runs (field values, targets): eight bytes are checked
 * with a few ALU operations and the byte loop only runs on the word that holds something
 * unusual. has_less() is only exact as "does any byte qualify", which is all we ask of it.
 * Byte order does not matter for that either.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

/* Any byte below @n (n <= 128); bytes >= 0x80 never count. */
static inline uint64_t has_less(uint64_t x, uint8_t n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

/*
 * On a little-endian machine the lowest flagged byte of those tests is exact (a borrow
 * only runs upwards from a byte that really qualifies), so the scan can jump straight to
 * it. Elsewhere the byte loop finishes the word.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HTTP_SWAR 1
#else
#define HTTP_SWAR 0
#endif

/* Skips field-value bytes from @i; stops on the first byte that is not one, at the latest
 * on the CR that ends the line. Words are only loaded below @end, the end of the section. */
static inline size_t skip_fval(const uint8_t *buf, size_t i, size_t end)
{
    while (HTTP_SWAR && i + 8 <= end) {
        uint64_t x = load64(buf + i);
        uint64_t m = has_less(x, 0x20) | has_zero(x ^ (ONES * 0x7f));
        if (!m) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(m) >> 3;
        if (buf[i] != '\t') /* HTAB is the one control byte a value may hold */
            return i;
        i++;
    }
    while (is(buf[i], C_FVAL))
        i++;
    return i;
}

/* The same for request-target bytes (visible ASCII but '#'). */
static inline size_t skip_target(const uint8_t *buf, size_t i, size_t end)
{
    while (HTTP_SWAR && i + 8 <= end) {
        uint64_t x = load64(buf + i);
        uint64_t m = has_less(x, 0x21) | (x & HIGHS) | has_zero(x ^ (ONES * 0x7f)) |
                     has_zero(x ^ (ONES * '#'));
        if (m)
            return i + ((size_t)__builtin_ctzll(m) >> 3);
        i += 8;
    }
    while (is(buf[i], C_TARGET))
        i++;
    return i;
}

static inline struct http_span span(size_t off, size_t len)
{
    return (struct http_span){.off = (uint32_t)off, .len = (uint32_t)len};
}

/* ---- comma-separated lists ---- */

/*
 * Iterates the elements of a #list (RFC 9110 5.6.1): returns false at the end, else the
 * next element with surrounding OWS trimmed in [*e0, *e1). Empty elements are returned as
 * such so that framing fields can refuse them. An unterminated quote runs to the end and
 * leaves an element that no validator accepts.
 */
static bool list_next(const uint8_t *v, size_t len, size_t *pos, size_t *e0, size_t *e1)
{
    size_t i = *pos;
    if (i > len)
        return false;
    while (i < len && is_ows(v[i]))
        i++;
    size_t start = i;
    bool quoted = false;
    /* A comma inside a quoted-string (a parameter value) does not end the element. */
    for (; i < len && (quoted || v[i] != ','); i++) {
        if (v[i] == '"')
            quoted = !quoted;
        else if (quoted && v[i] == '\\' && i + 1 < len)
            i++;
    }
    size_t end = i;
    while (end > start && is_ows(v[end - 1]))
        end--;
    *e0 = start;
    *e1 = end;
    *pos = i + 1; /* past the comma, or len + 1 at the end */
    return true;
}

bool http_list_has(const char *value, size_t len, const char *token)
{
    const uint8_t *v = (const uint8_t *)value;
    size_t tlen = strlen(token), pos = 0, e0, e1;
    while (list_next(v, len, &pos, &e0, &e1)) {
        if (e1 - e0 != tlen)
            continue;
        size_t k = 0;
        while (k < tlen && lower(v[e0 + k]) == lower((uint8_t)token[k]))
            k++;
        if (k == tlen)
            return true;
    }
    return false;
}

int http_find_hdr(const char *buf, const struct http_hdr *hdrs, uint32_t nhdrs, const char *name,
                  uint32_t from)
{
    size_t nlen = strlen(name);
    for (uint32_t i = from; i < nhdrs; i++) {
        if (hdrs[i].name.len != nlen)
            continue;
        const uint8_t *s = (const uint8_t *)buf + hdrs[i].name.off;
        size_t k = 0;
        while (k < nlen && lower(s[k]) == lower((uint8_t)name[k]))
            k++;
        if (k == nlen)
            return (int)i;
    }
    return -1;
}

/* ---- finding the end of the section ---- */

/*
 * Looks for the empty line that ends the section in @buf[0..lim), resuming at s->scanned.
 * Returns the section length, 0 when not there yet (s->scanned then holds the start of the
 * incomplete line), or -1 on a bare LF. With @skip_leading, empty lines before the first
 * line are not the end (RFC 9112 2.2 lets a server ignore them before a request-line).
 *
 * Whether a first line has been seen is not stored: scanned always points just after a
 * CRLF, and if the line that CRLF ended was empty and yet the section did not end there,
 * then we must still be among the leading empty lines.
 */
static size_t scan_end(const uint8_t *buf, size_t lim, struct http_scan *s, bool skip_leading,
                       int *bad)
{
    size_t pos = s->scanned;
    if (pos > lim)
        pos = 0; /* a caller that shrank the buffer: start over rather than trust it */
    bool seen = !skip_leading || (pos >= 2 && !(pos == 2 || buf[pos - 3] == '\n'));

    *bad = 0;
    for (;;) {
        const uint8_t *lf = memchr(buf + pos, '\n', lim - pos);
        if (!lf) {
            s->scanned = (uint32_t)pos;
            return 0;
        }
        size_t i = (size_t)(lf - buf);
        if (i == 0 || buf[i - 1] != '\r') {
            *bad = 1;
            return 0;
        }
        if (i - 1 == pos) {
            if (seen) {
                /* Stay on the empty line: a repeated call finds the same end again. */
                s->scanned = (uint32_t)pos;
                return i + 1;
            }
        } else {
            seen = true;
        }
        pos = i + 1;
    }
}

/* Clamps the limits so that every offset fits the uint32 spans and the int return value. */
static size_t section_limit(size_t len, size_t max_len)
{
    size_t lim = len < max_len ? len : max_len;
    return lim > 0x7fffffff ? 0x7fffffff : lim;
}

/* ---- pieces of the grammar ---- */

/*
 * Checks "HTTP/" DIGIT "." DIGIT at @p. The checks short-circuit left to right, so a
 * shorter line stops at its CR and nothing past the section is read. Returns 1 for a
 * well-formed version (major and minor in *maj, *min), 0 otherwise.
 */
static int parse_version(const uint8_t *p, int *maj, int *min)
{
    if (p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' && IS_DIGIT(p[5]) &&
        p[6] == '.' && IS_DIGIT(p[7])) {
        *maj = p[5] - '0';
        *min = p[7] - '0';
        return 1;
    }
    return 0;
}

/* Host or IP-literal, then an optional (or, for CONNECT, required) ":port" of 1-5 digits. */
static bool valid_authority(const uint8_t *a, size_t len, bool need_port)
{
    size_t i = 0;
    if (len > 0 && a[0] == '[') {
        /* IPv6 literal; IPvFuture is not something any backend of ours speaks. */
        bool colon = false;
        for (i = 1; i < len && a[i] != ']'; i++) {
            if (a[i] == ':')
                colon = true;
            else if (!is(a[i], C_HEX) && a[i] != '.')
                return false;
        }
        if (i == len || !colon)
            return false;
        i++;
    } else {
        while (i < len && is(a[i], C_HOST)) {
            if (a[i] == '%') {
                if (i + 2 >= len || !is(a[i + 1], C_HEX) || !is(a[i + 2], C_HEX))
                    return false;
                i += 2;
            }
            i++;
        }
        if (i == 0 && (need_port || len > 0))
            return false;
    }
    if (i == len)
        return !need_port;
    if (a[i] != ':')
        return false;
    i++;
    size_t digits = len - i;
    if (digits == 0 || digits > 5)
        return false;
    uint32_t port = 0;
    for (; i < len; i++) {
        if (!IS_DIGIT(a[i]))
            return false;
        port = port * 10 + (uint32_t)(a[i] - '0');
    }
    return port <= 65535;
}

/*
 * Content-Length: 1*DIGIT, or a list of identical values ("5, 5", which some senders make
 * of repeated fields). Returns 0 with the value in *out, or -1. A second field must give
 * the value of the first: *out holds it on entry when @have is set.
 */
static int parse_content_length(const uint8_t *v, size_t len, uint64_t *out, bool have)
{
    size_t pos = 0, e0, e1;
    if (len == 0)
        return -1;
    while (list_next(v, len, &pos, &e0, &e1)) {
        if (e0 == e1)
            return -1;
        uint64_t n = 0;
        for (size_t i = e0; i < e1; i++) {
            if (!IS_DIGIT(v[i]))
                return -1;
            uint64_t d = (uint64_t)(v[i] - '0');
            if (n > (INT64_MAX - d) / 10)
                return -1;
            n = n * 10 + d;
        }
        if (have && n != *out)
            return -1;
        *out = n;
        have = true;
    }
    return 0;
}

/*
 * Parameters after a token: *( OWS ";" OWS token "=" ( token / quoted-string ) ), from @i
 * to @end. Used for transfer codings, whose parameters we never interpret but must still
 * be well formed for the element to mean one thing.
 */
static bool valid_params(const uint8_t *v, size_t i, size_t end)
{
    while (i < end) {
        while (i < end && is_ows(v[i]))
            i++;
        if (i == end || v[i] != ';')
            return false;
        i++;
        while (i < end && is_ows(v[i]))
            i++;
        size_t n0 = i;
        while (i < end && is(v[i], C_TCHAR))
            i++;
        if (i == n0 || i == end || v[i] != '=')
            return false;
        i++;
        if (i < end && v[i] == '"') {
            for (i++; i < end && v[i] != '"'; i++) {
                if (v[i] == '\\') {
                    if (++i == end || !is(v[i], C_FVAL))
                        return false;
                } else if (!is(v[i], C_QDTEXT)) {
                    return false;
                }
            }
            if (i == end)
                return false;
            i++;
        } else {
            size_t t0 = i;
            while (i < end && is(v[i], C_TCHAR))
                i++;
            if (i == t0)
                return false;
        }
    }
    return true;
}

/* What the framing fields said, gathered over all lines of a section. */
struct framing {
    bool te; /* a Transfer-Encoding field was seen */
    bool te_last_chunked;
    bool te_other; /* some coding other than chunked */
    bool chunked;  /* chunked was named (a second time is refused at once) */
    uint8_t hosts;
    bool cl;
    uint64_t cl_value;
    bool conn_close, conn_keepalive, conn_upgrade;
    bool upgrade, upgrade_ws, expect_continue;
    struct http_span host;
};

/* Transfer-Encoding: a list of codings; returns 0 or -1 when an element is malformed. */
static int parse_te(const uint8_t *v, size_t len, struct framing *f)
{
    size_t pos = 0, e0, e1;
    f->te = true;
    if (len == 0)
        return -1;
    while (list_next(v, len, &pos, &e0, &e1)) {
        size_t t = e0;
        while (t < e1 && is(v[t], C_TCHAR))
            t++;
        if (t == e0 || !valid_params(v, t, e1))
            return -1;
        if (t - e0 == 7 && eq_lower(v + e0, "chunked", 7)) {
            /* chunked takes no parameters and is applied once. Refused here rather than
             * counted: a small counter would wrap after enough repeats. */
            if (t != e1 || f->chunked)
                return -1;
            f->chunked = true;
            f->te_last_chunked = true;
        } else {
            f->te_other = true;
            f->te_last_chunked = false;
        }
    }
    return 0;
}

/* Connection options we act on, in one walk over the list. */
static void connection_options(const uint8_t *v, size_t len, struct framing *f)
{
    size_t pos = 0, e0, e1;
    while (list_next(v, len, &pos, &e0, &e1)) {
        switch (e1 - e0) {
        case 5:
            f->conn_close |= eq_lower(v + e0, "close", 5);
            break;
        case 7:
            f->conn_upgrade |= eq_lower(v + e0, "upgrade", 7);
            break;
        case 10:
            f->conn_keepalive |= eq_lower(v + e0, "keep-alive", 10);
            break;
        }
    }
}

/*
 * Parses the field lines from @i to @hdr_end (the start of the final empty line) into
 * @hdrs, noting the fields that decide framing in @f. Returns 0, -400 for a malformed or
 * ambiguous field, or -431 for too many fields.
 */
static int parse_fields(const uint8_t *buf, size_t i, size_t hdr_end, struct http_hdr *hdrs,
                        uint32_t *nhdrs, struct framing *f)
{
    uint32_t n = 0;
    while (i < hdr_end) {
        size_t n0 = i;
        /* A line starting with SP or HTAB (obs-fold), with an empty name, or with a space
         * before the colon all stop this loop on something other than ':'. */
        while (is(buf[i], C_TCHAR))
            i++;
        if (i == n0 || buf[i] != ':')
            return -HTTP_E_BAD;
        size_t nlen = i - n0;
        i++;
        while (is_ows(buf[i]))
            i++;
        size_t v0 = i;
        i = skip_fval(buf, i, hdr_end + 2);
        /* The loop stopped on a CR (the line's end, or a bare CR) or a control byte. */
        if (buf[i] != '\r' || buf[i + 1] != '\n')
            return -HTTP_E_BAD;
        size_t v1 = i;
        while (v1 > v0 && is_ows(buf[v1 - 1]))
            v1--;
        i += 2;

        if (n == HTTP_MAX_HDRS)
            return -HTTP_E_TOO_BIG;
        hdrs[n].name = span(n0, nlen);
        hdrs[n].value = span(v0, v1 - v0);
        n++;

        const uint8_t *name = buf + n0, *v = buf + v0;
        size_t vlen = v1 - v0;
        switch (nlen) {
        case 4:
            if (eq_lower(name, "host", 4)) {
                if (++f->hosts > 1)
                    return -HTTP_E_BAD;
                f->host = span(v0, vlen);
            }
            break;
        case 6:
            if (eq_lower(name, "expect", 6) && vlen == 12 && eq_lower(v, "100-continue", 12))
                f->expect_continue = true;
            break;
        case 7:
            if (eq_lower(name, "upgrade", 7)) {
                f->upgrade = true;
                if (http_list_has((const char *)v, vlen, "websocket"))
                    f->upgrade_ws = true;
            }
            break;
        case 10:
            if (eq_lower(name, "connection", 10))
                connection_options(v, vlen, f);
            break;
        case 14:
            if (eq_lower(name, "content-length", 14)) {
                if (parse_content_length(v, vlen, &f->cl_value, f->cl) < 0)
                    return -HTTP_E_BAD;
                f->cl = true;
            }
            break;
        case 17:
            if (eq_lower(name, "transfer-encoding", 17) && parse_te(v, vlen, f) < 0)
                return -HTTP_E_BAD;
            break;
        }
    }
    *nhdrs = n;
    return 0;
}

/* Connection, Upgrade and Expect flags, common to requests and responses. */
static uint32_t conn_flags(const struct framing *f, int minor)
{
    uint32_t flags = 0;
    if (f->conn_keepalive)
        flags |= HTTP_F_KEEPALIVE;
    if (f->conn_close || (minor == 0 && !f->conn_keepalive))
        flags |= HTTP_F_CLOSE;
    /* HTTP/1.0 has no Upgrade (RFC 9110 7.8: ignore it there). */
    if (f->upgrade && minor == 1)
        flags |= (f->upgrade_ws && f->conn_upgrade) ? HTTP_F_UPGRADE_WS : HTTP_F_UPGRADE_OTHER;
    return flags;
}

/* ---- requests ---- */

static enum http_method method_of(const uint8_t *m, size_t len)
{
    switch (len) {
    case 3:
        if (!memcmp(m, "GET", 3))
            return HTTP_M_GET;
        if (!memcmp(m, "PUT", 3))
            return HTTP_M_PUT;
        break;
    case 4:
        if (!memcmp(m, "POST", 4))
            return HTTP_M_POST;
        if (!memcmp(m, "HEAD", 4))
            return HTTP_M_HEAD;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5))
            return HTTP_M_PATCH;
        if (!memcmp(m, "TRACE", 5))
            return HTTP_M_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6))
            return HTTP_M_DELETE;
        break;
    case 7:
        if (!memcmp(m, "OPTIONS", 7))
            return HTTP_M_OPTIONS;
        if (!memcmp(m, "CONNECT", 7))
            return HTTP_M_CONNECT;
        break;
    }
    return HTTP_M_OTHER;
}

/*
 * Classifies the request-target (RFC 9112 3.2) and fills path, and host for absolute-form.
 * Every byte is already known to be visible ASCII other than '#'.
 */
static int parse_target(const uint8_t *buf, size_t t0, size_t tlen, struct http_req *req,
                        bool *authority)
{
    const uint8_t *t = buf + t0;
    *authority = false;
    if (req->method == HTTP_M_CONNECT) {
        /* authority-form only, and only for CONNECT */
        if (!valid_authority(t, tlen, true))
            return -HTTP_E_BAD;
        req->path = span(t0 + tlen, 0);
        return 0;
    }
    if (t[0] == '/') {
        const uint8_t *q = memchr(t, '?', tlen);
        req->path = span(t0, q ? (size_t)(q - t) : tlen);
        return 0;
    }
    if (tlen == 1 && t[0] == '*') {
        if (req->method != HTTP_M_OPTIONS)
            return -HTTP_E_BAD;
        req->path = span(t0, 1);
        return 0;
    }
    size_t a0;
    if (tlen >= 7 && eq_lower(t, "http://", 7))
        a0 = 7;
    else if (tlen >= 8 && eq_lower(t, "https://", 8))
        a0 = 8;
    else
        return -HTTP_E_BAD;
    size_t a1 = a0;
    while (a1 < tlen && t[a1] != '/' && t[a1] != '?')
        a1++;
    /* An http(s) URI needs a host; userinfo ('@') must not be sent (RFC 9110 4.2.4). */
    if (a1 == a0 || memchr(t + a0, '@', a1 - a0) || !valid_authority(t + a0, a1 - a0, false))
        return -HTTP_E_BAD;
    req->host = span(t0 + a0, a1 - a0);
    *authority = true;
    size_t p1 = a1;
    if (a1 < tlen && t[a1] == '/')
        while (p1 < tlen && t[p1] != '?')
            p1++;
    /* "http://h?q" has an empty path span; the proxy sends "/" for it. */
    req->path = span(t0 + a1, p1 - a1);
    return 0;
}

/* When the section overflows: a request line that has not ended yet but already holds a
 * target longer than @max_target deserves 414 rather than 431. */
static int too_big_status(const uint8_t *buf, size_t lim, size_t max_target)
{
    size_t i = 0;
    while (i + 1 < lim && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;
    if (memchr(buf + i, '\n', lim - i))
        return -HTTP_E_TOO_BIG;
    const uint8_t *sp = memchr(buf + i, ' ', lim - i);
    if (!sp)
        return -HTTP_E_TOO_BIG;
    size_t t0 = (size_t)(sp - buf) + 1;
    const uint8_t *sp2 = memchr(buf + t0, ' ', lim - t0);
    size_t tlen = (sp2 ? (size_t)(sp2 - buf) : lim) - t0;
    return tlen > max_target ? -HTTP_E_TARGET : -HTTP_E_TOO_BIG;
}

int http_parse_request(const char *cbuf, size_t len, size_t max_len, size_t max_target,
                       struct http_req *req)
{
    const uint8_t *buf = (const uint8_t *)cbuf;
    size_t lim = section_limit(len, max_len);
    int bad;
    size_t end = scan_end(buf, lim, &req->scan, true, &bad);
    if (bad)
        return -HTTP_E_BAD;
    if (end == 0)
        return lim < len || lim == max_len || lim == 0x7fffffff
                   ? too_big_status(buf, lim, max_target)
                   : HTTP_AGAIN;

    struct http_scan scan = req->scan;
    memset(req, 0, offsetof(struct http_req, hdrs));
    req->scan = scan;

    size_t i = 0;
    while (i + 2 < end && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;

    /* request-line = method SP request-target SP HTTP-version CRLF */
    size_t m0 = i;
    while (is(buf[i], C_TCHAR))
        i++;
    if (i == m0 || buf[i] != ' ')
        return -HTTP_E_BAD;
    req->method_text = span(m0, i - m0);
    req->method = method_of(buf + m0, i - m0);
    size_t t0 = ++i;
    i = skip_target(buf, i, end);
    size_t tlen = i - t0;
    /* An empty target (two spaces), a CR right after it (HTTP/0.9), or a byte that is not
     * visible ASCII all land here. */
    if (tlen == 0 || buf[i] != ' ')
        return -HTTP_E_BAD;
    req->target = span(t0, tlen);
    i++;
    int maj, min;
    if (!parse_version(buf + i, &maj, &min) || buf[i + 8] != '\r' || buf[i + 9] != '\n')
        return -HTTP_E_BAD;
    if (maj != 1 || min > 1)
        return -HTTP_E_VERSION;
    req->version_minor = (uint8_t)min;
    i += 10;
    if (tlen > max_target)
        return -HTTP_E_TARGET;
    bool absolute;
    int rc = parse_target(buf, t0, tlen, req, &absolute);
    if (rc < 0)
        return rc;

    struct framing f = {0};
    rc = parse_fields(buf, i, end - 2, req->hdrs, &req->nhdrs, &f);
    if (rc < 0)
        return rc;

    if (f.hosts == 0 && min == 1)
        return -HTTP_E_BAD;
    if (f.hosts && !valid_authority(buf + f.host.off, f.host.len, false))
        return -HTTP_E_BAD;
    if (!absolute)
        req->host = f.host;

    if (f.te) {
        /* HTTP/1.0 has no chunked: a TE there means the framing is faulty (RFC 9112 6.1). */
        if (f.cl || min == 0 || !f.te_last_chunked)
            return -HTTP_E_BAD;
        if (f.te_other)
            return -HTTP_E_CODING;
        req->flags |= HTTP_F_CHUNKED;
    } else if (f.cl) {
        req->flags |= HTTP_F_LENGTH;
        req->content_length = f.cl_value;
    }
    req->flags |= conn_flags(&f, min);
    if (f.expect_continue && min == 1)
        req->flags |= HTTP_F_EXPECT_CONTINUE;
    req->header_len = (uint32_t)end;
    return (int)end;
}

/* ---- responses ---- */

int http_parse_response(const char *cbuf, size_t len, size_t max_len, enum http_method req_method,
                        struct http_resp *resp)
{
    const uint8_t *buf = (const uint8_t *)cbuf;
    size_t lim = section_limit(len, max_len);
    int bad;
    size_t end = scan_end(buf, lim, &resp->scan, false, &bad);
    if (bad)
        return -E_RESP;
    if (end == 0)
        return lim < len || lim == max_len || lim == 0x7fffffff ? -E_RESP : HTTP_AGAIN;

    struct http_scan scan = resp->scan;
    memset(resp, 0, offsetof(struct http_resp, hdrs));
    resp->scan = scan;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF. The space
     * before an empty reason is often left out by servers; that changes no framing, so a
     * status line ending right after the code is accepted. */
    int maj, min;
    if (!parse_version(buf, &maj, &min) || maj != 1 || min > 1 || buf[8] != ' ')
        return -E_RESP;
    resp->version_minor = (uint8_t)min;
    if (!(buf[9] >= '1' && buf[9] <= '9') || !IS_DIGIT(buf[10]) || !IS_DIGIT(buf[11]))
        return -E_RESP;
    uint16_t status = (uint16_t)((buf[9] - '0') * 100 + (buf[10] - '0') * 10 + buf[11] - '0');
    resp->status = status;
    size_t i = 12;
    if (buf[i] == ' ')
        i++;
    else if (buf[i] != '\r')
        return -E_RESP;
    size_t r0 = i;
    i = skip_fval(buf, i, end);
    if (buf[i] != '\r' || buf[i + 1] != '\n')
        return -E_RESP;
    resp->reason = span(r0, i - r0);
    i += 2;

    struct framing f = {0};
    if (parse_fields(buf, i, end - 2, resp->hdrs, &resp->nhdrs, &f) < 0)
        return -E_RESP;

    /* Ambiguous framing is refused whatever the status, even where the body rules would
     * make the fields moot: a server that sends it is confused about something. */
    if (f.te && (f.cl || min == 0 || !f.te_last_chunked || f.te_other))
        return -E_RESP;
    bool info = status < 200;
    if ((info || status == 204) && (f.te || (f.cl && f.cl_value > 0)))
        return -E_RESP;

    if (f.te)
        resp->flags |= HTTP_F_CHUNKED;
    if (f.cl) {
        resp->flags |= HTTP_F_LENGTH;
        resp->content_length = f.cl_value;
    }
    /* RFC 9112 6.3: HEAD, 1xx, 204 and 304 end at the header section; so does a 2xx to
     * CONNECT, after which the connection is a tunnel. */
    if (req_method == HTTP_M_HEAD || info || status == 204 || status == 304 ||
        (req_method == HTTP_M_CONNECT && status >= 200 && status < 300))
        resp->flags |= HTTP_F_NO_BODY;
    else if (!f.te && !f.cl)
        resp->flags |= HTTP_F_UNTIL_CLOSE;
    resp->flags |= conn_flags(&f, min);
    resp->header_len = (uint32_t)end;
    return (int)end;
}

/* ---- body framing ---- */

/* Chunked decoder states (struct http_body.state). */
enum {
    CS_SIZE0,       /* first hex digit of a chunk size */
    CS_SIZE,        /* more hex digits, ';' or CR */
    CS_EXT_NAME0,   /* after ';': BWS, then the first byte of an extension name */
    CS_EXT_NAME,    /* name bytes, then BWS, '=', ';' or CR */
    CS_EXT_NAME_WS, /* BWS after a name: more BWS, '=' or ';' */
    CS_EXT_VAL0,    /* after '=': BWS, then a token or a quoted-string */
    CS_EXT_TOKEN,   /* token value bytes, then BWS, ';' or CR */
    CS_EXT_QUOTED,  /* inside a quoted value */
    CS_EXT_ESCAPE,  /* after a backslash inside a quoted value */
    CS_EXT_VAL_END, /* after the closing quote: BWS, ';' or CR */
    CS_EXT_VAL_WS,  /* BWS after a value: more BWS or ';' */
    CS_SIZE_LF,     /* the LF that ends the chunk-size line */
    CS_DATA,        /* chunk data, @remaining bytes left */
    CS_DATA_CR,     /* the CRLF after chunk data */
    CS_DATA_LF,
    CS_TRL_START, /* start of a trailer field line, or the CR of the final empty line */
    CS_TRL_NAME,  /* trailer field name bytes, then ':' */
    CS_TRL_VALUE, /* trailer field value bytes, then CR */
    CS_TRL_LF,
    CS_END_LF, /* the LF of the final empty line */
    CS_ERROR,  /* sticky: the caller closes, but a second feed must not resume */
};

/* Trailer names that would change framing or routing if a later hop merged them into the
 * header section (RFC 9110 6.5.1). While a name is read, body.remaining holds the bitmask
 * of these still matching and body.line_len the position in the name. */
static const char *const forbidden_trailers[] = {"content-length", "transfer-encoding", "host"};
#define N_FORBIDDEN (sizeof(forbidden_trailers) / sizeof(forbidden_trailers[0]))

void http_body_init_req(struct http_body *b, const struct http_req *req)
{
    memset(b, 0, sizeof(*b));
    if (req->flags & HTTP_F_CHUNKED) {
        b->mode = HTTP_BODY_CHUNKED;
        b->state = CS_SIZE0;
    } else if (req->flags & HTTP_F_LENGTH) {
        /* "Content-Length: 0" is LENGTH, done at once, as for responses. */
        b->mode = HTTP_BODY_LENGTH;
        b->remaining = req->content_length;
        b->done = req->content_length == 0;
    } else {
        b->mode = HTTP_BODY_NONE;
        b->done = true;
    }
}

void http_body_init_resp(struct http_body *b, const struct http_resp *resp)
{
    memset(b, 0, sizeof(*b));
    if (resp->flags & HTTP_F_NO_BODY) {
        b->mode = HTTP_BODY_NONE;
        b->done = true;
    } else if (resp->flags & HTTP_F_CHUNKED) {
        b->mode = HTTP_BODY_CHUNKED;
        b->state = CS_SIZE0;
    } else if (resp->flags & HTTP_F_LENGTH) {
        b->mode = HTTP_BODY_LENGTH;
        b->remaining = resp->content_length;
        b->done = resp->content_length == 0;
    } else {
        b->mode = HTTP_BODY_CLOSE;
    }
}

static inline int hexval(uint8_t c)
{
    if (IS_DIGIT(c))
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* A chunk of 2^62 bytes is far past anything real and keeps the arithmetic clear of
 * overflow with room to spare. */
#define CHUNK_MAX ((uint64_t)1 << 62)

static ssize_t chunked_feed(struct http_body *b, const uint8_t *d, size_t len)
{
    size_t i = 0;
    uint8_t st = b->state;
    if (st == CS_ERROR)
        return -HTTP_E_BAD;
    while (i < len) {
        uint8_t c = d[i];
        /* The chunk-size line, extensions included, is bounded as a whole. */
        if (st <= CS_EXT_VAL_WS && ++b->line_len > HTTP_MAX_CHUNK_LINE)
            goto bad;
        switch (st) {
        case CS_SIZE0:
            if (!is(c, C_HEX))
                goto bad;
            b->remaining = (uint64_t)hexval(c);
            st = CS_SIZE;
            break;
        case CS_SIZE:
            if (is(c, C_HEX)) {
                if (b->remaining > CHUNK_MAX >> 4)
                    goto bad;
                b->remaining = b->remaining << 4 | (uint64_t)hexval(c);
                if (b->remaining > CHUNK_MAX)
                    goto bad;
            } else if (c == ';') {
                st = CS_EXT_NAME0;
            } else if (c == '\r') {
                st = CS_SIZE_LF;
            } else {
                /* Whitespace after the size is legal BWS before ';', but readers that stop
                 * at the space disagree with those that skip it, so it is refused. */
                goto bad;
            }
            break;
        case CS_EXT_NAME0:
            if (is(c, C_TCHAR))
                st = CS_EXT_NAME;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_NAME:
            if (is_ows(c))
                st = CS_EXT_NAME_WS;
            else if (c == '=')
                st = CS_EXT_VAL0;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else if (!is(c, C_TCHAR))
                goto bad;
            break;
        case CS_EXT_NAME_WS:
            if (c == '=')
                st = CS_EXT_VAL0;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_VAL0:
            if (c == '"')
                st = CS_EXT_QUOTED;
            else if (is(c, C_TCHAR))
                st = CS_EXT_TOKEN;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_TOKEN:
            if (is_ows(c))
                st = CS_EXT_VAL_WS;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else if (!is(c, C_TCHAR))
                goto bad;
            break;
        case CS_EXT_QUOTED:
            if (c == '"')
                st = CS_EXT_VAL_END;
            else if (c == '\\')
                st = CS_EXT_ESCAPE;
            else if (!is(c, C_QDTEXT))
                goto bad;
            break;
        case CS_EXT_ESCAPE:
            if (!is(c, C_FVAL))
                goto bad;
            st = CS_EXT_QUOTED;
            break;
        case CS_EXT_VAL_END:
            if (is_ows(c))
                st = CS_EXT_VAL_WS;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else
                goto bad;
            break;
        case CS_EXT_VAL_WS:
            if (c == ';')
                st = CS_EXT_NAME0;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_SIZE_LF:
            if (c != '\n')
                goto bad;
            b->line_len = 0;
            if (b->remaining == 0) {
                st = CS_TRL_START;
            } else {
                st = CS_DATA;
            }
            break;
        case CS_DATA: {
            /* The bulk of a chunked body: skip it without looking at it. */
            size_t n = len - i;
            if (n > b->remaining)
                n = (size_t)b->remaining;
            b->remaining -= n;
            i += n;
            if (b->remaining == 0)
                st = CS_DATA_CR;
            continue;
        }
        case CS_DATA_CR:
            if (c != '\r')
                goto bad;
            st = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (c != '\n')
                goto bad;
            st = CS_SIZE0;
            b->line_len = 0;
            break;
        case CS_TRL_START:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            if (c == '\r') {
                st = CS_END_LF;
                break;
            }
            /* SP or HTAB here would be obs-fold; ':' an empty name. */
            if (!is(c, C_TCHAR))
                goto bad;
            b->line_len = 0;
            b->remaining = (1u << N_FORBIDDEN) - 1;
            st = CS_TRL_NAME;
            goto trl_name;
        case CS_TRL_NAME:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            if (c == ':') {
                for (size_t k = 0; k < N_FORBIDDEN; k++)
                    if ((b->remaining >> k & 1) && strlen(forbidden_trailers[k]) == b->line_len)
                        goto bad;
                b->line_len++;
                st = CS_TRL_VALUE;
                break;
            }
            if (!is(c, C_TCHAR))
                goto bad;
        trl_name:
            for (size_t k = 0; k < N_FORBIDDEN; k++) {
                const char *name = forbidden_trailers[k];
                if (b->line_len >= strlen(name) || (uint8_t)name[b->line_len] != lower(c))
                    b->remaining &= ~((uint64_t)1 << k);
            }
            if (++b->line_len > HTTP_MAX_CHUNK_LINE)
                goto bad;
            break;
        case CS_TRL_VALUE:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS || ++b->line_len > HTTP_MAX_CHUNK_LINE)
                goto bad;
            if (c == '\r')
                st = CS_TRL_LF;
            else if (!is(c, C_FVAL))
                goto bad;
            break;
        case CS_TRL_LF:
            if (c != '\n' || ++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            st = CS_TRL_START;
            break;
        case CS_END_LF:
            if (c != '\n')
                goto bad;
            b->state = st;
            b->done = true;
            b->remaining = 0;
            return (ssize_t)(i + 1);
        default:
            goto bad;
        }
        i++;
    }
    b->state = st;
    return (ssize_t)len;
bad:
    b->state = CS_ERROR;
    return -HTTP_E_BAD;
}

ssize_t http_body_feed(struct http_body *b, const char *data, size_t len)
{
    if (b->done)
        return 0;
    switch (b->mode) {
    case HTTP_BODY_NONE:
        b->done = true;
        return 0;
    case HTTP_BODY_LENGTH: {
        size_t n = len < b->remaining ? len : (size_t)b->remaining;
        b->remaining -= n;
        b->done = b->remaining == 0;
        return (ssize_t)n;
    }
    case HTTP_BODY_CHUNKED:
        if (len > SSIZE_MAX)
            len = SSIZE_MAX;
        return chunked_feed(b, (const uint8_t *)data, len);
    case HTTP_BODY_CLOSE:
        return (ssize_t)len;
    }
    return -HTTP_E_BAD;
}
