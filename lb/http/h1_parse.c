/*
 * HTTP/1.1 parsing (RFC 9112): request and response header sections into spans. Owns the
 * byte-class table and the parts of the grammar outside the field lines (finding the end of
 * the section, the request line and its target, the status line); the field lines are read
 * by h1_fields.c and bodies framed by h1_body.c. Nothing is allocated: every result points
 * into the caller's buffer.
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

#include "lb/http/h1_internal.h"

/* Status for any response error: the client gets a 502 and the backend connection goes. */
#define E_RESP 502

/* ---- byte classes ---- */

#define IS_TCHAR(c)                                                                           \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||    \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||     \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_FVAL(c) (((c) >= 0x20 && (c) != 0x7f) || (c) == '\t')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
/* A fragment never travels in a request and servers disagree on what to do with one. */
#define IS_TARGET(c) ((c) > 0x20 && (c) < 0x7f && (c) != '#')
/* ',' is left out: a Host holding a comma is most likely two Hosts merged into a list. */
#define IS_HOST(c)                                                                            \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||    \
     (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||     \
     (c) == '*' || (c) == '+' || (c) == ';' || (c) == '=' || (c) == '%')
#define IS_QDTEXT(c)                                                                          \
    ((c) == '\t' || (c) == ' ' || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5b) ||              \
     ((c) >= 0x5d && (c) <= 0x7e) || (c) >= 0x80)

#define CLS(c)                                                                                \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_FVAL(c) ? C_FVAL : 0) | (IS_TARGET(c) ? C_TARGET : 0) | \
     (IS_HEX(c) ? C_HEX : 0) | (IS_HOST(c) ? C_HOST : 0) | (IS_QDTEXT(c) ? C_QDTEXT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

const uint8_t http_h1_cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

/* Skips request-target bytes (visible ASCII but '#') from @i as skip_fval() skips a value:
 * word-at-a-time below @end, then byte by byte up to the first byte that is not one. */
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
static size_t scan_end(const uint8_t *buf, size_t lim, struct http_scan *s,
                       bool skip_leading, int *bad)
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
    if (p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
        IS_DIGIT(p[5]) && p[6] == '.' && IS_DIGIT(p[7])) {
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

/*
 * The request line of the complete section @buf[0..end), after any leading empty lines:
 * request-line = method SP request-target SP HTTP-version CRLF. Fills method, method_text,
 * target and version_minor. Returns the offset of the first field line, or -HTTP_E_*.
 */
static int parse_request_line(const uint8_t *buf, size_t end, size_t max_target,
                              struct http_req *req)
{
    size_t i = 0;
    while (i + 2 < end && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;

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
    return (int)i;
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

    int rc = parse_request_line(buf, end, max_target, req);
    if (rc < 0)
        return rc;
    size_t i = (size_t)rc;
    int min = req->version_minor;
    bool absolute;
    rc = parse_target(buf, req->target.off, req->target.len, req, &absolute);
    if (rc < 0)
        return rc;

    struct framing f = {0};
    rc = http_h1_parse_fields(buf, i, end - 2, req->hdrs, &req->nhdrs, &f);
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
    req->flags |= http_h1_conn_flags(&f, min);
    if (f.expect_continue && min == 1)
        req->flags |= HTTP_F_EXPECT_CONTINUE;
    req->header_len = (uint32_t)end;
    return (int)end;
}

/* ---- responses ---- */

int http_parse_response(const char *cbuf, size_t len, size_t max_len,
                            enum http_method req_method, struct http_resp *resp)
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
    if (http_h1_parse_fields(buf, i, end - 2, resp->hdrs, &resp->nhdrs, &f) < 0)
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
    resp->flags |= http_h1_conn_flags(&f, min);
    resp->header_len = (uint32_t)end;
    return (int)end;
}
