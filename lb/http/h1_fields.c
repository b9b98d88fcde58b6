/*
 * HTTP/1.1 field lines (RFC 9112 5, RFC 9110 5): splitting a complete header section's
 * field lines into spans, and reading the fields that decide framing and connection handling
 * (Content-Length, Transfer-Encoding, Host, Connection, Upgrade, Expect) as they go by.
 * Also the two field helpers of h1.h, http_find_hdr() and http_list_has(). Owns nothing but
 * code: every result points into the caller's buffer.
 *
 * Like the rest of the parser, this refuses where RFC 9112 would let a recipient guess:
 * a proxy must never frame a message differently from the server behind it.
 */
#include <limits.h>
#include <string.h>

#include "lb/http/h1_internal.h"

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

int http_find_hdr(const char *buf, const struct http_hdr *hdrs, uint32_t nhdrs,
                      const char *name, uint32_t from)
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


/* ---- framing fields ---- */

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

/* ---- the field lines ---- */

int http_h1_parse_fields(const uint8_t *buf, size_t i, size_t hdr_end, struct http_hdr *hdrs,
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

uint32_t http_h1_conn_flags(const struct framing *f, int minor)
{
    uint32_t flags = 0;
    if (f->conn_keepalive)
        flags |= HTTP_F_KEEPALIVE;
    if (f->conn_close || (minor == 0 && !f->conn_keepalive))
        flags |= HTTP_F_CLOSE;
    /* HTTP/1.0 has no Upgrade (RFC 9110 7.8: ignore it there). */
    if (f->upgrade && minor == 1)
        flags |= (f->upgrade_ws && f->conn_upgrade) ? HTTP_F_UPGRADE_WS
                                                    : HTTP_F_UPGRADE_OTHER;
    return flags;
}
