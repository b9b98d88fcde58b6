/*
 * Request parsing and framing: finds the next request head in the input buffer, validates
 * it, decodes a chunked body in place, and hands the complete request to demo_dispatch().
 *
 * Parsing follows RFC 9112 strictly enough to be a fair origin for a proxy's tests: token
 * methods, HTTP/1.0 or 1.1, no obs-fold, no control characters, one Host on 1.1, Content-Length
 * digits only, chunked as the only transfer coding and never together with Content-Length.
 * Anything else gets a 4xx/5xx with "Connection: close", then a lingering close so the client
 * reads the answer instead of a reset.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "tools/demo/demo.h"

static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)p[i]))
            return false;
    return true;
}

static bool eq_nocase(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Parses 1*DIGIT into @out; anything else, or a value above @max, is -EINVAL. */
int demo_parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Could @p (a request line still arriving) start with a method? Methods are tokens and none
 * in use is anywhere near 32 bytes long. */
static bool method_may_be_ok(const char *p, size_t n)
{
    if (n == 1 && p[0] == '\r')
        return true; /* the CR of an empty line before the request */
    for (size_t i = 0; i < n && i <= 32; i++) {
        if (p[i] == ' ')
            return i > 0;
        if (!is_tchar((unsigned char)p[i]))
            return false;
    }
    return n <= 32;
}

/* Does the comma-separated list @p (a Connection value) hold @tok? */
static bool list_has(const char *p, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
            i++;
        size_t s = i;
        while (i < n && p[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (eq_nocase(p + s, e - s, tok))
            return true;
    }
    return false;
}

/* Finds the end of a request head (just past the blank line) in @p. Lines end in LF with an
 * optional CR before it (RFC 9112 2.2 lets a recipient accept a bare LF). Returns 0 when the
 * head is not complete yet; *scan remembers where to resume so a head that trickles in is
 * not searched from the start each time. */
static size_t find_head_end(const char *p, size_t len, size_t *scan)
{
    size_t i = *scan;
    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        if (!nl) {
            *scan = len;
            return 0;
        }
        size_t k = (size_t)(nl - p) + 1;
        if (k == len || (p[k] == '\r' && k + 1 == len)) {
            *scan = (size_t)(nl - p); /* the blank line may still arrive */
            return 0;
        }
        if (p[k] == '\n')
            return k + 1;
        if (p[k] == '\r' && p[k + 1] == '\n')
            return k + 2;
        i = k;
    }
    *scan = i;
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, @ll bytes without the line end.
 * Fills the request-line part of @r. Returns 0, or the status to answer with and *why. */
static int parse_request_line(struct req *r, const char *p, size_t ll, const char **why)
{
    const char *sp1 = memchr(p, ' ', ll);
    if (!sp1 || !is_token(p, (size_t)(sp1 - p))) {
        *why = "bad method";
        return 400;
    }
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', ll - (size_t)(t - p));
    if (!sp2 || sp2 == t) {
        *why = "bad request line";
        return 400;
    }
    for (const char *q = t; q < sp2; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) {
            *why = "bad request target";
            return 400;
        }
    }
    const char *v = sp2 + 1;
    size_t vl = ll - (size_t)(v - p);
    if (vl != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9') {
        *why = "bad HTTP version";
        return 400;
    }
    if (v[5] != '1') {
        *why = "only HTTP/1.0 and HTTP/1.1";
        return 505;
    }
    r->minor = v[7] == '0' ? 0 : 1;
    r->is_head = (size_t)(sp1 - p) == 4 && memcmp(p, "HEAD", 4) == 0;
    r->target_off = (size_t)(t - p);
    r->target_len = (size_t)(sp2 - t);
    return 0;
}

/* What the header fields said about framing and the connection, gathered field by field. */
struct head_seen {
    bool conn_close, conn_keep, chunked, have_length;
    int hosts;
};

/* Notes a field that matters to us: framing, Host, Connection, Expect. The others are only
 * checked for syntax. Returns 0, or the status to answer with and *why. */
static int note_field(struct req *r, struct head_seen *s, const char *name, size_t nlen,
                      const char *val, size_t vlen, const char **why)
{
    if (eq_nocase(name, nlen, "content-length")) {
        uint64_t n;
        if (demo_parse_u64(val, vlen, UINT64_MAX / 2, &n) < 0 ||
            (s->have_length && n != r->content_length)) {
            *why = "bad Content-Length";
            return 400;
        }
        s->have_length = true;
        r->content_length = n;
    } else if (eq_nocase(name, nlen, "transfer-encoding")) {
        if (s->chunked) {
            *why = "chunked applied twice";
            return 400;
        }
        if (!eq_nocase(val, vlen, "chunked")) {
            *why = "only the chunked transfer coding is supported";
            return 501;
        }
        s->chunked = true;
    } else if (eq_nocase(name, nlen, "host")) {
        s->hosts++;
    } else if (eq_nocase(name, nlen, "connection")) {
        s->conn_close |= list_has(val, vlen, "close");
        s->conn_keep |= list_has(val, vlen, "keep-alive");
    } else if (eq_nocase(name, nlen, "expect")) {
        if (!eq_nocase(val, vlen, "100-continue")) {
            *why = "unknown expectation";
            return 417;
        }
        r->expect_continue = true;
    }
    return 0;
}

/* Checks one field line @q (@ll bytes without the line end) and notes it. Returns 0, or the
 * status to answer with and *why. */
static int parse_field(struct req *r, struct head_seen *s, const char *q, size_t ll,
                       const char **why)
{
    /* obs-fold is obsolete and a smuggling vector: RFC 9112 5.2 lets us reject it. */
    if (q[0] == ' ' || q[0] == '\t') {
        *why = "obsolete line folding";
        return 400;
    }
    const char *colon = memchr(q, ':', ll);
    if (!colon || !is_token(q, (size_t)(colon - q))) {
        *why = "bad header field name";
        return 400;
    }
    const char *val = colon + 1, *vend = q + ll;
    while (val < vend && (*val == ' ' || *val == '\t'))
        val++;
    while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    for (const char *x = val; x < vend; x++) {
        unsigned char ch = (unsigned char)*x;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            *why = "control character in header field";
            return 400;
        }
    }
    return note_field(r, s, q, (size_t)(colon - q), val, (size_t)(vend - val), why);
}

/* Checks what the fields said together and settles framing and keep-alive. Returns 0, or the
 * status to answer with and *why. */
static int check_framing(struct req *r, const struct head_seen *s, const char **why)
{
    /* Both framings at once is how requests get smuggled past a proxy: refuse it. */
    if (s->chunked && s->have_length) {
        *why = "both Transfer-Encoding and Content-Length";
        return 400;
    }
    if (s->chunked && r->minor == 0) {
        *why = "Transfer-Encoding in an HTTP/1.0 request";
        return 400;
    }
    if (r->minor == 1 && s->hosts != 1) {
        *why = s->hosts ? "more than one Host" : "missing Host";
        return 400;
    }
    if (r->content_length > BODY_MAX) {
        *why = "body too large";
        return 413;
    }
    r->chunked_body = s->chunked;
    r->keep_alive = r->minor == 1 ? !s->conn_close : s->conn_keep && !s->conn_close;
    return 0;
}

/* Validates the head in @p (@len bytes, through the blank line) and fills c->req. Returns 0,
 * or the status to answer with, and *why says what was wrong. */
static int parse_head(struct conn *c, const char *p, size_t len, const char **why)
{
    struct req *r = &c->req;
    const char *nl = memchr(p, '\n', len);
    size_t ll = (size_t)(nl - p);
    if (ll > 0 && p[ll - 1] == '\r')
        ll--;
    int status = parse_request_line(r, p, ll, why);
    if (status)
        return status;

    struct head_seen seen = {0};
    int fields = 0;
    const char *q = nl + 1;
    const char *end = p + len;
    for (;;) {
        nl = memchr(q, '\n', (size_t)(end - q));
        ll = (size_t)(nl - q);
        if (ll > 0 && q[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break;
        if (++fields > HEADERS_MAX) {
            *why = "too many header fields";
            return 431;
        }
        status = parse_field(r, &seen, q, ll, why);
        if (status)
            return status;
        q = nl + 1;
    }
    return check_framing(r, &seen, why);
}

/* ---- chunked bodies -------------------------------------------------------------------- */

/* What one step of the chunked decoder did. */
enum chunk_step {
    STEP_MORE, /* needs more input */
    STEP_ON,   /* made progress: take another step */
    STEP_DONE, /* the blank line after the trailers: the body is complete */
};

/* CHUNK_DATA: moves what has arrived of the chunk (@n raw bytes at @p) down to the end of the
 * decoded bytes. */
static int chunk_data(char *base, struct req *r, const char *p, size_t n)
{
    size_t take = n < r->chunk_left ? n : (size_t)r->chunk_left;
    if (take == 0)
        return STEP_MORE;
    memmove(base + r->head_len + r->dec_len, p, take);
    r->dec_len += take;
    r->raw_pos += take;
    r->chunk_left -= take;
    if (r->chunk_left == 0)
        r->chunk = CHUNK_DATA_END;
    return STEP_ON;
}

/* CHUNK_DATA_END: the line end after the chunk bytes (LF, or CRLF). */
static int chunk_data_end(struct req *r, const char *p, size_t n)
{
    if (n >= 1 && p[0] == '\n')
        r->raw_pos += 1;
    else if (n >= 2 && p[0] == '\r' && p[1] == '\n')
        r->raw_pos += 2;
    else if (n == 0 || (n == 1 && p[0] == '\r'))
        return STEP_MORE;
    else
        return -EBADMSG;
    r->chunk = CHUNK_SIZE;
    return STEP_ON;
}

/* chunk-size = 1*HEXDIG, then optional whitespace and extensions, in the line @p (@ll bytes
 * without the line end). Returns 0 or -EBADMSG. */
static int parse_chunk_size(const char *p, size_t ll, uint64_t *out)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < ll && isxdigit((unsigned char)p[i]); i++) {
        if (i == 15)
            return -EBADMSG; /* would overflow; no real chunk is that big */
        int d = p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10;
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0)
        return -EBADMSG;
    while (i < ll && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i < ll && p[i] != ';')
        return -EBADMSG; /* only chunk extensions may follow the size */
    *out = size;
    return 0;
}

/* CHUNK_SIZE and CHUNK_TRAILER: one whole line of the @n raw bytes at @p. */
static int chunk_line(struct req *r, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    if (!nl)
        return n > HEAD_MAX ? -EBADMSG : STEP_MORE;
    size_t ll = (size_t)(nl - p);
    if (ll > 0 && p[ll - 1] == '\r')
        ll--;
    for (size_t i = 0; i < ll; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -EBADMSG;
    }
    r->raw_pos += (size_t)(nl - p) + 1;
    if (r->chunk == CHUNK_TRAILER)
        return ll == 0 ? STEP_DONE : STEP_ON; /* trailer fields are allowed and ignored */
    uint64_t size;
    if (parse_chunk_size(p, ll, &size) < 0)
        return -EBADMSG;
    if (size == 0) {
        r->chunk = CHUNK_TRAILER;
        return STEP_ON;
    }
    if (r->dec_len + size > BODY_MAX)
        return -EMSGSIZE;
    r->chunk_left = size;
    r->chunk = CHUNK_DATA;
    return STEP_ON;
}

/* Advances the in-place chunked decoder over what has arrived. Returns 1 when the body is
 * complete (c->req.raw_pos is then the end of the request), 0 when more input is needed,
 * -EBADMSG on bad framing, -EMSGSIZE when the body is over BODY_MAX. */
static int chunked_step(struct conn *c)
{
    struct req *r = &c->req;
    char *base = c->in + c->in_off;
    size_t avail = c->in_len - c->in_off;
    int step;

    do {
        const char *p = base + r->raw_pos;
        size_t n = avail - r->raw_pos;
        if (r->chunk == CHUNK_DATA)
            step = chunk_data(base, r, p, n);
        else if (r->chunk == CHUNK_DATA_END)
            step = chunk_data_end(r, p, n);
        else
            step = chunk_line(r, p, n);
        if (step < 0)
            return step;
    } while (step == STEP_ON);

    /* Squeeze out the raw bytes already decoded, so a long upload in small chunks needs no
     * more buffer than its decoded size plus what is still unparsed. */
    size_t gap = r->raw_pos - (r->head_len + r->dec_len);
    if (gap > 0 && step == STEP_MORE) {
        memmove(base + r->head_len + r->dec_len, base + r->raw_pos, avail - r->raw_pos);
        c->in_len -= gap;
        r->raw_pos -= gap;
    }
    return step == STEP_DONE;
}

/* ---- framing --------------------------------------------------------------------------- */

/* RFC 9112 2.2: ignore empty lines before a request line (some clients send a CRLF after a
 * POST body). */
static void skip_empty_lines(struct conn *c)
{
    while (c->scan == 0 && c->in_off < c->in_len) {
        const char *base = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        if (base[0] == '\n')
            c->in_off += 1;
        else if (avail >= 2 && base[0] == '\r' && base[1] == '\n')
            c->in_off += 2;
        else
            break;
    }
}

/* State REQ_HEAD: frames and parses the next request head. Returns 1 when it is parsed
 * (c->state then says which body follows), 0 when more input is needed, -1 when it was bad
 * (answered; c->closing is set). */
static int take_head(struct conn *c)
{
    struct req *r = &c->req;
    skip_empty_lines(c);
    const char *base = c->in + c->in_off;
    size_t avail = c->in_len - c->in_off;
    size_t hl = find_head_end(base, avail, &c->scan);
    if (hl == 0 && !method_may_be_ok(base, avail)) {
        /* TLS or other binary input would otherwise wait for a line end that never
         * comes: say 400 now. */
        demo_respond_error(c, 400, "bad method");
        return -1;
    }
    if (hl == 0 && avail <= HEAD_MAX)
        return 0;
    if (hl == 0 || hl > HEAD_MAX) {
        demo_respond_error(c, 431, "request head too large");
        return -1;
    }
    memset(r, 0, sizeof(*r));
    r->head_len = hl;
    const char *why = "";
    int status = parse_head(c, base, hl, &why);
    if (status) {
        demo_respond_error(c, status, why);
        return -1;
    }
    c->scan = 0;
    if (r->chunked_body) {
        c->state = REQ_BODY_CHUNKED;
        r->raw_pos = hl;
    } else if (r->content_length > 0) {
        c->state = REQ_BODY_LENGTH;
    }
    /* The client waits for this before sending a body; answer it only when none of the
     * body is here yet (then it cannot have given up waiting). */
    if (c->state != REQ_HEAD && r->expect_continue && avail == hl)
        demo_out_put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 1;
}

/* Once the head is parsed: is the whole body here? Returns 1 with *end (the end of the
 * request) and *body_len (its decoded body) set, 0 when more input is needed, -1 when the
 * body was bad (answered; c->closing is set). */
static int take_body(struct conn *c, size_t *end, size_t *body_len)
{
    struct req *r = &c->req;
    if (c->state == REQ_BODY_LENGTH) {
        if (c->in_len - c->in_off < r->head_len + r->content_length)
            return 0;
        *end = r->head_len + r->content_length;
        *body_len = r->content_length;
    } else if (c->state == REQ_BODY_CHUNKED) {
        int rc = chunked_step(c);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            demo_respond_error(c, rc == -EMSGSIZE ? 413 : 400,
                               rc == -EMSGSIZE ? "body too large" : "bad chunked framing");
            return -1;
        }
        *end = r->raw_pos;
        *body_len = r->dec_len;
    } else {
        *end = r->head_len;
        *body_len = 0;
    }
    return 1;
}

/* Reads, frames and answers the next request in the input buffer. Returns 1 when one was
 * handled, 0 when more input is needed, -1 when it was bad (answered; c->closing is set). */
int demo_conn_handle_one(struct worker *w, struct conn *c)
{
    struct req *r = &c->req;
    int rc;
    if (c->state == REQ_HEAD && (rc = take_head(c)) <= 0)
        return rc;
    size_t end, body_len;
    if ((rc = take_body(c, &end, &body_len)) <= 0)
        return rc;

    char *base = c->in + c->in_off;
    c->closing = !r->keep_alive;
    atomic_fetch_add(&g_requests, 1);
    demo_dispatch(w, c, base, base + r->head_len, body_len);
    c->in_off += end;
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    c->state = REQ_HEAD;
    c->scan = 0;
    return 1;
}
