/* bench-rate's response framing: status line, Content-Length, chunked encoding (with
 * extensions and trailers skipped), a body that ends with the connection, 1xx heads skipped.
 * Strict where framing depends on it: two lengths, a length and chunked, another transfer
 * coding, a bad chunk size or a header line without a colon are errors, never guesses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tools/bench/rate.h"

/* Reads digits of @base (10 or 16) from @p up to @end into *@out, at least one and a value of
 * at most 2^40; *@stop is the first byte after them. Returns 0 or -1. The buffer is not a C
 * string, so strtoull (which skips white space, line ends included) will not do. */
static int rsp_num(const char *p, const char *end, int base, uint64_t *out, const char **stop)
{
    uint64_t v = 0;
    const char *at = p;
    for (; at < end; at++) {
        int d = *at >= '0' && *at <= '9' ? *at - '0' : -1;
        if (base == 16 && (*at | 0x20) >= 'a' && (*at | 0x20) <= 'f')
            d = (*at | 0x20) - 'a' + 10;
        if (d < 0)
            break;
        v = v * (uint64_t)base + (uint64_t)d;
        if (v > (1ULL << 40))
            return -1;
    }
    *out = v;
    *stop = at;
    return at == p ? -1 : 0;
}

/* Whether the bytes from @p to @end start with @word, ignoring case. The head is not a C
 * string: the comparison must not run past @end, even where it would stop at a mismatch. */
static int starts(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && strncasecmp(p, word, n) == 0;
}

/* Parses the status line and the headers that frame the body, @n bytes ending in CRLF CRLF.
 * Returns 0 or -1 when the head is malformed or the framing cannot be told. */
static int rsp_head(struct rate_rsp *r, const char *p, size_t n)
{
    const char *end = p + n, *line, *eol;
    int cl = 0, te = 0;

    if (n < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r'))
        return -1;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->close = p[7] == '0';
    r->left = 0;
    line = memchr(p, '\n', n) + 1;
    for (; line < end && *line != '\r'; line = eol + 1) {
        const char *v;
        eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol || eol[-1] != '\r' || !(v = memchr(line, ':', (size_t)(eol - line))))
            return -1;
        for (v++; *v == ' ' || *v == '\t'; v++)
            ;
        if (starts(line, v, "content-length:")) {
            const char *e;
            if (cl++ || rsp_num(v, eol, 10, &r->left, &e) < 0 || (*e != '\r' && *e != ' '))
                return -1;
        } else if (starts(line, v, "transfer-encoding:")) {
            if (!starts(v, eol, "chunked\r"))
                return -1;
            te = 1;
        } else if (starts(line, v, "connection:")) {
            if (starts(v, eol, "close"))
                r->close = 1;
            else if (starts(v, eol, "keep-alive"))
                r->close = 0;
        }
    }
    if (cl && te)
        return -1;
    if (r->status < 200 || r->status == 204 || r->status == 304)
        r->st = RATE_RSP_HEAD, r->left = 0; /* no body; a 1xx is followed by the real head */
    else if (te)
        r->st = RATE_RSP_CHUNK_SIZE;
    else if (cl)
        r->st = r->left ? RATE_RSP_BODY : RATE_RSP_HEAD; /* HEAD: ended already */
    else
        r->st = RATE_RSP_UNTIL_EOF, r->close = 1;
    return 0;
}

/* Frames a chunked body: one step on @p[0..@n). Returns bytes used (0: need more) or -1. */
static long rsp_chunked(struct rate_rsp *r, const char *p, size_t n)
{
    const char *eol = memchr(p, '\n', n);
    size_t use;

    if (r->st == RATE_RSP_CHUNK_DATA) {
        use = n < r->left ? n : (size_t)r->left;
        r->left -= use;
        if (r->left == 0)
            r->st = RATE_RSP_CHUNK_END;
        return (long)use;
    }
    if (!eol)
        return n >= 256 ? -1 : 0;
    if (eol == p || eol[-1] != '\r')
        return -1;
    use = (size_t)(eol - p) + 1;
    if (r->st == RATE_RSP_CHUNK_END) {
        if (use != 2)
            return -1;
        r->st = RATE_RSP_CHUNK_SIZE;
    } else if (r->st == RATE_RSP_TRAILER) {
        if (use == 2)
            r->st = RATE_RSP_HEAD; /* done */
    } else {
        const char *e;
        if (rsp_num(p, eol, 16, &r->left, &e) < 0 || (*e != '\r' && *e != ';'))
            return -1;
        r->st = r->left ? RATE_RSP_CHUNK_DATA : RATE_RSP_TRAILER;
    }
    return (long)use;
}

int rate_rsp_feed(struct rate_rsp *r, const char *p, size_t n, size_t *used)
{
    size_t at = 0;
    for (;;) {
        long step;
        if (r->st == RATE_RSP_HEAD) {
            const char *e = memmem(p + at, n - at, "\r\n\r\n", 4);
            size_t hl;
            if (!e) {
                *used = at;
                return n - at >= RATE_BUF ? -1 : 0;
            }
            hl = (size_t)(e - (p + at)) + 4;
            if (rsp_head(r, p + at, hl) < 0)
                return -1;
            at += hl;
            if (r->st == RATE_RSP_HEAD && r->status >= 200)
                break;
            continue;
        }
        if (at == n) {
            *used = at;
            return 0;
        }
        if (r->st == RATE_RSP_UNTIL_EOF) {
            *used = n;
            return 0;
        }
        if (r->st == RATE_RSP_BODY) {
            size_t use = n - at < r->left ? n - at : (size_t)r->left;
            r->left -= use;
            at += use;
            if (r->left == 0)
                break;
            continue;
        }
        step = rsp_chunked(r, p + at, n - at);
        if (step < 0)
            return -1;
        if (step == 0) {
            *used = at;
            return 0;
        }
        at += (size_t)step;
        if (r->st == RATE_RSP_HEAD)
            break;
    }
    r->st = RATE_RSP_HEAD;
    *used = at;
    return 1;
}
