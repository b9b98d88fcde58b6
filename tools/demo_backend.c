/*
 * demo-backend: a small HTTP/1.1 origin server of our own, used by `make run` and by the
 * end-to-end tests and benchmarks of lb. It owns nothing of lb's and links nothing of it, so a
 * bug in the proxy can never hide behind the same bug in the origin.
 *
 * Model: one listening socket shared by -t worker threads, each with its own epoll set (the
 * socket is added with EPOLLEXCLUSIVE so one connection wakes one worker). Sockets are
 * non-blocking and level-triggered. The main thread only waits for signals and writes the
 * counter file. Requests on a connection are answered strictly in order: while a response is
 * delayed (/delay) or being generated (/bytes, /chunked) no later pipelined request is parsed,
 * and the socket is not read, which is also our back-pressure on a client that never reads.
 *
 * Parsing follows RFC 9112 strictly enough to be a fair origin for a proxy's tests: token
 * methods, HTTP/1.0 or 1.1, no obs-fold, no control characters, one Host on 1.1, Content-Length
 * digits only, chunked as the only transfer coding and never together with Content-Length.
 * Anything else gets a 4xx/5xx with "Connection: close", then a lingering close so the client
 * reads the answer instead of a reset.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (64 * 1024)        /* request line + headers; more is a 431 */
#define HEADERS_MAX 100             /* header fields in one request; more is a 431 */
#define BODY_MAX (64 * 1024 * 1024) /* decoded request body; more is a 413 */
#define IN_FIRST (8 * 1024)         /* first input buffer; grows by doubling */
#define IN_MAX (HEAD_MAX + BODY_MAX + 64 * 1024)
#define OUT_FIRST (8 * 1024)
#define OUT_HIGH (256 * 1024) /* stop producing responses above this much unsent */
#define GEN_SLICE (16 * 1024) /* /bytes and /chunked produce this much at a time */
#define DELAY_MAX_MS 600000
#define BYTES_MAX (1ULL << 40)
#define LINGER_MS 2000 /* after an error answer: read and discard, then close */
#define NAME_MAX_LEN 63

/* Everything after /bytes/N or /chunked/N is this 64-byte line repeated, so a test can
 * rebuild the expected body with any tool: byte i is PATTERN[i % 64]. */
static const char PATTERN[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";

/* Process-wide state. Counters are atomics because every worker updates them. */
static const char *g_name;
static const char *g_health_file;
static atomic_uint_fast64_t g_requests;
static atomic_uint_fast64_t g_connections; /* accepted, ever */
static atomic_uint_fast64_t g_active;      /* open now */
static atomic_bool g_health_down;
static atomic_bool g_stop;
static int g_listen_fd = -1;
static int g_wake_fd = -1; /* eventfd: readable once we stop, wakes every worker */

enum src_kind {
    SRC_LISTEN,
    SRC_WAKE,
    SRC_CONN,
};

/* First member of everything registered with epoll, so data.ptr says what woke us. */
struct src {
    enum src_kind kind;
};

static struct src g_listen_src = {SRC_LISTEN};
static struct src g_wake_src = {SRC_WAKE};

enum req_state {
    REQ_HEAD,         /* waiting for the blank line */
    REQ_BODY_LENGTH,  /* waiting for Content-Length bytes */
    REQ_BODY_CHUNKED, /* decoding chunks in place */
};

enum chunk_state {
    CHUNK_SIZE,     /* hex size line, with optional extensions */
    CHUNK_DATA,     /* chunk bytes */
    CHUNK_DATA_END, /* the CRLF after chunk bytes */
    CHUNK_TRAILER,  /* trailer fields up to the blank line */
};

enum conn_wait {
    WAIT_NONE,
    WAIT_DELAY,  /* a /delay response is due at deadline */
    WAIT_LINGER, /* answer sent, write side shut: discard input until EOF or deadline */
};

/* The request being read. Offsets are relative to conn->in + conn->in_off, which stays the
 * first byte of this request until it is consumed, so compaction cannot invalidate them. */
struct req {
    size_t head_len; /* through the blank line */
    size_t target_off, target_len;
    int minor; /* HTTP/1.minor */
    bool keep_alive;
    bool is_head;
    bool expect_continue;
    bool chunked_body;
    uint64_t content_length;
    /* Chunked bodies are decoded in place right after the head: decoded bytes never
     * outrun the raw ones, and the gap between them is squeezed out after each step. */
    size_t raw_pos; /* next raw body byte */
    size_t dec_len; /* decoded bytes stored at head_len */
    enum chunk_state chunk;
    uint64_t chunk_left;
};

struct conn {
    struct src src; /* first */
    int fd;
    uint32_t events; /* what epoll currently watches */
    char *in;
    size_t in_off, in_len, in_cap;
    size_t scan; /* the blank-line search resumes here, relative to in_off */
    char *out;
    size_t out_off, out_len, out_cap;
    enum req_state state;
    struct req req;
    /* A generated body still to produce (/bytes, /chunked). */
    bool gen_active;
    bool gen_chunked;
    uint64_t gen_left, gen_pos;
    enum conn_wait wait;
    uint64_t deadline_ms;
    bool closing; /* answer no more requests; close once output is flushed */
    bool rd_eof;
    bool broken; /* out of memory: drop the connection */
    bool dead;
    struct conn *tprev, *tnext; /* worker's timer list, while wait != WAIT_NONE */
    struct conn *dnext;         /* worker's list of connections to free after a batch */
    struct conn *aprev, *anext; /* worker's list of all live connections, for shutdown */
};

struct worker {
    int ep;
    pthread_t thread;
    struct conn *timers; /* unsorted: few connections wait at once */
    struct conn *dead;
    struct conn *all;
    int reserve_fd; /* spare descriptor, given up to accept-and-close when out of fds */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {417, "Expectation Failed"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Status"; /* the reason phrase is optional text; clients go by the code */
}

/* ---- timers ---------------------------------------------------------------------------- */

static void timer_set(struct worker *w, struct conn *c, enum conn_wait why, uint64_t at)
{
    if (c->wait == WAIT_NONE) {
        c->tprev = NULL;
        c->tnext = w->timers;
        if (w->timers)
            w->timers->tprev = c;
        w->timers = c;
    }
    c->wait = why;
    c->deadline_ms = at;
}

static void timer_clear(struct worker *w, struct conn *c)
{
    if (c->wait == WAIT_NONE)
        return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        w->timers = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    c->tprev = c->tnext = NULL;
    c->wait = WAIT_NONE;
}

/* ---- connection lifetime --------------------------------------------------------------- */

/* Closes now; the memory is freed after the current batch of events, so a later event or
 * timer in the same batch never touches freed memory. */
static void conn_close(struct worker *w, struct conn *c)
{
    if (c->dead)
        return;
    timer_clear(w, c);
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        w->all = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    close(c->fd);
    c->fd = -1;
    c->dead = true;
    c->dnext = w->dead;
    w->dead = c;
    atomic_fetch_sub(&g_active, 1);
}

static void conn_free_dead(struct worker *w)
{
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->dnext;
        free(c->in);
        c->in = NULL;
        free(c->out);
        c->out = NULL;
        free(c);
    }
}

static size_t out_pending(const struct conn *c)
{
    return c->out_len - c->out_off;
}

static void conn_watch(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    /* Cannot fail while the conn is alive: its fd is registered and open. */
    (void)epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* ---- output ---------------------------------------------------------------------------- */

/* Makes room for @n more output bytes. On failure marks the connection broken (it is then
 * dropped: a shortage sheds one connection, never the process) and returns -ENOMEM. */
static int out_reserve(struct conn *c, size_t n)
{
    if (c->broken)
        return -ENOMEM;
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len >= n)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : OUT_FIRST;
    while (cap - c->out_len < n)
        cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) {
        c->broken = true;
        return -ENOMEM;
    }
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static void out_put(struct conn *c, const void *data, size_t n)
{
    if (n == 0 || out_reserve(c, n) < 0)
        return;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
}

__attribute__((format(printf, 2, 3))) static void out_fmt(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || out_reserve(c, (size_t)n + 1) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(c->out + c->out_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->out_len += (size_t)n;
}

#define BODY_NONE (-2)    /* no Content-Length, no body: 204, 304 */
#define BODY_CHUNKED (-1) /* Transfer-Encoding: chunked */

/* Writes a status line and headers. @length is the body size, BODY_CHUNKED or BODY_NONE.
 * Connection: close is announced when c->closing is already set. */
static void respond_head(struct conn *c, int status, const char *ctype, int64_t length)
{
    out_fmt(c, "HTTP/1.1 %d %s\r\nX-Server: %s\r\n", status, reason(status), g_name);
    if (ctype)
        out_fmt(c, "Content-Type: %s\r\n", ctype);
    if (length >= 0)
        out_fmt(c, "Content-Length: %" PRId64 "\r\n", length);
    else if (length == BODY_CHUNKED)
        out_put(c, "Transfer-Encoding: chunked\r\n", 28);
    if (c->closing)
        out_put(c, "Connection: close\r\n", 19);
    else if (c->req.minor == 0)
        out_put(c, "Connection: keep-alive\r\n", 24);
    out_put(c, "\r\n", 2);
}

static bool status_has_body(int status)
{
    return status != 204 && status != 304;
}

/* A whole response with a body held in memory. HEAD gets the same headers and no body. */
static void respond(struct conn *c, int status, const char *ctype, const void *body, size_t len)
{
    if (!status_has_body(status)) {
        respond_head(c, status, NULL, BODY_NONE);
        return;
    }
    respond_head(c, status, ctype, (int64_t)len);
    if (!c->req.is_head)
        out_put(c, body, len);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    respond(c, status, "text/plain", text, strlen(text));
}

/* An error about the request itself: answer, then close, since the framing of whatever
 * follows on the connection can no longer be trusted. */
static void respond_error(struct conn *c, int status, const char *why)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason(status), why);
    c->closing = true;
    c->req.is_head = false;
    respond(c, status, "text/plain", body, (size_t)n);
}

/* Produces the next slice of a /bytes or /chunked body (the last call ends a chunked one). */
static void gen_fill(struct conn *c)
{
    size_t n = c->gen_left < GEN_SLICE ? (size_t)c->gen_left : GEN_SLICE;
    if (n > 0) {
        if (c->gen_chunked)
            out_fmt(c, "%zx\r\n", n);
        if (out_reserve(c, n) < 0)
            return;
        for (size_t i = 0; i < n; i++)
            c->out[c->out_len + i] = PATTERN[(c->gen_pos + i) % 64];
        c->out_len += n;
        c->gen_pos += n;
        c->gen_left -= n;
        if (c->gen_chunked)
            out_put(c, "\r\n", 2);
    }
    if (c->gen_left == 0) {
        if (c->gen_chunked)
            out_put(c, "0\r\n\r\n", 5);
        c->gen_active = false;
    }
}

/* Returns bytes written (0 when the socket is full) or -errno when the peer is gone. */
static ssize_t conn_flush(struct conn *c)
{
    size_t total = 0;
    while (out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, out_pending(c), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        c->out_off += (size_t)n;
        total += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        /* A big response grew the buffer; an idle connection should not keep it. */
        if (c->out_cap > 4 * OUT_HIGH) {
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
    }
    return (ssize_t)total;
}

/* ---- request parsing ------------------------------------------------------------------- */

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
static int parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
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
        if (parse_u64(val, vlen, UINT64_MAX / 2, &n) < 0 ||
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

/* ---- endpoints ------------------------------------------------------------------------- */

static bool path_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* If @p starts with @prefix, points *rest at what follows it. */
static bool path_after(const char *p, size_t n, const char *prefix, const char **rest,
                       size_t *rest_len)
{
    size_t pl = strlen(prefix);
    if (n < pl || memcmp(p, prefix, pl) != 0)
        return false;
    *rest = p + pl;
    *rest_len = n - pl;
    return true;
}

static bool health_is_down(void)
{
    if (atomic_load(&g_health_down))
        return true;
    return g_health_file && access(g_health_file, F_OK) == 0;
}

static void respond_name(struct conn *c)
{
    char body[NAME_MAX_LEN + 2];
    int n = snprintf(body, sizeof(body), "%s\n", g_name);
    respond(c, 200, "text/plain", body, (size_t)n);
}

/* The path of the request target in @head: absolute-form (what a client sends to a forward
 * proxy) keeps only its path, and the query is left out. */
static void target_path(const char *head, const struct req *r, const char **path, size_t *len)
{
    const char *p = head + r->target_off;
    size_t n = r->target_len;
    const char *scheme = n > 3 ? memmem(p, n, "://", 3) : NULL;
    if (scheme && p[0] != '/') {
        const char *auth = scheme + 3;
        const char *slash = memchr(auth, '/', n - (size_t)(auth - p));
        n = slash ? n - (size_t)(slash - p) : 1;
        p = slash ? slash : "/";
    }
    const char *query = memchr(p, '?', n);
    if (query)
        n = (size_t)(query - p);
    *path = p;
    *len = n;
}

/* /status/NNN: an answer with that status and NNN as its body (none for 204 and 304). */
static void route_status(struct conn *c, const char *arg, size_t arg_len)
{
    uint64_t v;
    if (arg_len != 3 || parse_u64(arg, arg_len, 599, &v) < 0 || v < 200) {
        respond_text(c, 400, "usage: /status/NNN with NNN in 200..599\n");
        return;
    }
    char text[8];
    int tl = snprintf(text, sizeof(text), "%u\n", (unsigned)v);
    respond(c, (int)v, "text/plain", text, (size_t)tl);
}

/* /delay/MS: the name, MS milliseconds later (the worker's timer answers). */
static void route_delay(struct worker *w, struct conn *c, const char *arg, size_t arg_len)
{
    uint64_t v;
    if (parse_u64(arg, arg_len, DELAY_MAX_MS, &v) < 0)
        respond_text(c, 400, "usage: /delay/MS with MS at most 600000\n");
    else if (v == 0)
        respond_name(c);
    else
        timer_set(w, c, WAIT_DELAY, now_ms() + v);
}

/* /bytes/N and /chunked/N: N bytes of PATTERN, produced by gen_fill(). */
static void route_bytes(struct conn *c, const char *arg, size_t arg_len, bool chunked)
{
    uint64_t v;
    if (parse_u64(arg, arg_len, BYTES_MAX, &v) < 0) {
        respond_text(c, 400, "usage: /bytes/N or /chunked/N with N at most 2^40\n");
        return;
    }
    respond_head(c, 200, "application/octet-stream", chunked ? BODY_CHUNKED : (int64_t)v);
    if (!c->req.is_head && (v > 0 || chunked)) {
        c->gen_active = true;
        c->gen_chunked = chunked;
        c->gen_left = v;
        c->gen_pos = 0;
    }
}

/* /stats: the process-wide counters as JSON. */
static void route_stats(struct conn *c)
{
    char json[256];
    int jl = snprintf(json, sizeof(json),
                      "{\"name\":\"%s\",\"requests\":%" PRIuFAST64 ",\"connections\":%" PRIuFAST64
                      ",\"active\":%" PRIuFAST64 ",\"healthy\":%s}\n",
                      g_name, atomic_load(&g_requests), atomic_load(&g_connections),
                      atomic_load(&g_active), health_is_down() ? "false" : "true");
    respond(c, 200, "application/json", json, (size_t)jl);
}

/* Answers one complete request. @head is its head (c->req.head_len bytes), @body its decoded
 * body. A /delay answer is left to the worker's timer, a /bytes or /chunked body to
 * gen_fill(); in both cases no later request is parsed until that one is done. */
static void dispatch(struct worker *w, struct conn *c, const char *head, const char *body,
                     size_t body_len)
{
    struct req *r = &c->req;
    const char *p, *arg;
    size_t n, arg_len;
    target_path(head, r, &p, &n);

    if (path_is(p, n, "/healthz")) {
        if (health_is_down())
            respond_text(c, 500, "down\n");
        else
            respond_text(c, 200, "ok\n");
    } else if (path_is(p, n, "/admin/health/down")) {
        atomic_store(&g_health_down, true);
        respond_text(c, 200, "health: down\n");
    } else if (path_is(p, n, "/admin/health/up")) {
        atomic_store(&g_health_down, false);
        respond_text(c, 200, "health: up\n");
    } else if (path_after(p, n, "/status/", &arg, &arg_len)) {
        route_status(c, arg, arg_len);
    } else if (path_after(p, n, "/delay/", &arg, &arg_len)) {
        route_delay(w, c, arg, arg_len);
    } else if (path_after(p, n, "/bytes/", &arg, &arg_len)) {
        route_bytes(c, arg, arg_len, false);
    } else if (path_after(p, n, "/chunked/", &arg, &arg_len)) {
        route_bytes(c, arg, arg_len, r->minor == 1); /* HTTP/1.0 cannot take chunks */
    } else if (path_is(p, n, "/echo")) {
        respond(c, 200, "application/octet-stream", body, body_len);
    } else if (path_is(p, n, "/headers")) {
        respond(c, 200, "text/plain", head, r->head_len);
    } else if (path_is(p, n, "/stats")) {
        route_stats(c);
    } else {
        respond_name(c);
    }
}

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
        respond_error(c, 400, "bad method");
        return -1;
    }
    if (hl == 0 && avail <= HEAD_MAX)
        return 0;
    if (hl == 0 || hl > HEAD_MAX) {
        respond_error(c, 431, "request head too large");
        return -1;
    }
    memset(r, 0, sizeof(*r));
    r->head_len = hl;
    const char *why = "";
    int status = parse_head(c, base, hl, &why);
    if (status) {
        respond_error(c, status, why);
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
        out_put(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
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
            respond_error(c, rc == -EMSGSIZE ? 413 : 400,
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
static int conn_handle_one(struct worker *w, struct conn *c)
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
    dispatch(w, c, base, base + r->head_len, body_len);
    c->in_off += end;
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    c->state = REQ_HEAD;
    c->scan = 0;
    return 1;
}

/* ---- connection I/O -------------------------------------------------------------------- */

/* Reads what the socket has into the input buffer. Returns 0 (c->rd_eof set at EOF) or
 * -errno when the connection is finished. */
static int conn_read(struct conn *c)
{
    if (c->in_off > 0 && (c->in_off == c->in_len || c->in_cap - c->in_len < 4096)) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap == c->in_len) {
        /* Full with one incomplete request: the limits checked while framing keep it
         * under IN_MAX, so growing is always the answer. */
        size_t cap = c->in_cap ? c->in_cap * 2 : IN_FIRST;
        if (cap > IN_MAX)
            cap = IN_MAX;
        if (cap == c->in_cap)
            return -EMSGSIZE;
        char *p = realloc(c->in, cap);
        if (!p)
            return -ENOMEM;
        c->in = p;
        c->in_cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0) {
            c->rd_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

/* Makes all the progress possible without blocking: frame and answer buffered requests,
 * produce generated bodies, send; then decide what to wait for. */
static void conn_run(struct worker *w, struct conn *c)
{
    for (;;) {
        bool progress = false;
        while (c->wait == WAIT_NONE && !c->gen_active && !c->closing && !c->broken &&
               out_pending(c) < OUT_HIGH) {
            if (conn_handle_one(w, c) <= 0)
                break;
            progress = true;
        }
        while (c->gen_active && !c->broken && out_pending(c) < OUT_HIGH) {
            gen_fill(c);
            progress = true;
        }
        if (c->broken) {
            conn_close(w, c);
            return;
        }
        if (out_pending(c) > 0) {
            ssize_t n = conn_flush(c);
            if (n < 0) {
                conn_close(w, c);
                return;
            }
            progress |= n > 0;
        }
        if (!progress)
            break;
    }

    bool idle = out_pending(c) == 0 && !c->gen_active && c->wait == WAIT_NONE;
    if (idle && c->closing) {
        /* Shut our side and read until the peer closes: closing with unread input would
         * send a reset that can destroy the answer before the client reads it. */
        shutdown(c->fd, SHUT_WR);
        timer_set(w, c, WAIT_LINGER, now_ms() + LINGER_MS);
        conn_watch(w, c, EPOLLIN);
        return;
    }
    if (idle && c->rd_eof) {
        conn_close(w, c);
        return;
    }
    if (idle && c->in_len == 0 && c->in_cap > IN_FIRST) {
        free(c->in); /* a big upload is over; an idle connection keeps no big buffer */
        c->in = NULL;
        c->in_cap = 0;
    }
    uint32_t events = 0;
    if (out_pending(c) > 0)
        events |= EPOLLOUT;
    if (!c->rd_eof && !c->closing && c->wait == WAIT_NONE && !c->gen_active &&
        out_pending(c) < OUT_HIGH)
        events |= EPOLLIN;
    conn_watch(w, c, events);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->dead)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(w, c);
        return;
    }
    if (c->wait == WAIT_LINGER) {
        char scratch[4096];
        for (;;) {
            ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_close(w, c);
            return;
        }
    }
    if ((events & EPOLLIN) && conn_read(c) < 0) {
        conn_close(w, c);
        return;
    }
    conn_run(w, c);
}

static void do_accept(struct worker *w)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && w->reserve_fd >= 0) {
                /* Out of descriptors: use the spare one to accept and drop the connection,
                 * else the listening socket stays readable and the worker spins. */
                close(w->reserve_fd);
                fd = accept(g_listen_fd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fprintf(stderr, "demo-backend %s: out of file descriptors, dropped a client\n",
                        g_name);
            }
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->src.kind = SRC_CONN;
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->anext = w->all;
        if (w->all)
            w->all->aprev = c;
        w->all = c;
        atomic_fetch_add(&g_connections, 1);
        atomic_fetch_add(&g_active, 1);
    }
}

/* Fires due timers; returns the epoll timeout until the next one (-1: none). */
static int timers_run(struct worker *w)
{
    uint64_t now = now_ms();
    struct conn *c, *tnext;
    for (c = w->timers; c; c = tnext) {
        tnext = c->tnext;
        if (c->deadline_ms > now)
            continue;
        enum conn_wait why = c->wait;
        timer_clear(w, c);
        if (why == WAIT_DELAY) {
            respond_name(c);
            /* May set a linger timer on c, at the head of the list: tnext is unaffected. */
            conn_run(w, c);
        } else {
            conn_close(w, c);
        }
    }
    /* A second pass, since firing may have added timers (lingering closes). */
    uint64_t next = UINT64_MAX;
    for (c = w->timers; c; c = c->tnext)
        if (c->deadline_ms < next)
            next = c->deadline_ms;
    if (next == UINT64_MAX)
        return -1;
    return next > now ? (int)(next - now) : 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    int timeout = -1;

    while (!atomic_load(&g_stop)) {
        int n = epoll_wait(w->ep, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "demo-backend %s: epoll_wait: %s\n", g_name, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct src *s = evs[i].data.ptr;
            if (s->kind == SRC_LISTEN)
                do_accept(w);
            else if (s->kind == SRC_CONN)
                conn_event(w, (struct conn *)s, evs[i].events);
            /* SRC_WAKE: g_stop is set; the loop condition sees it. */
        }
        timeout = timers_run(w);
        conn_free_dead(w);
    }
    while (w->all)
        conn_close(w, w->all);
    conn_free_dead(w);
    return NULL;
}

/* ---- process --------------------------------------------------------------------------- */

/* Writes the request count to @path atomically (temp file + rename), so a reader never sees
 * a half-written number. Returns 0 or -errno. */
static int counter_write(const char *path, uint64_t count)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%" PRIu64 "\n", count);
    if (fclose(f) != 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

/* Binds and listens on "HOST:PORT" or "[V6]:PORT". Returns the socket or -errno; *bound gets
 * the address actually bound (port 0 asks the kernel for one). */
static int listen_on(const char *spec, char *bound, size_t bound_len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(colon + 1) == 0)
        return -EINVAL;
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (spec[0] == '[') {
        if (hl < 2 || spec[hl - 1] != ']')
            return -EINVAL;
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(ai);
        return -e;
    }
    /* Reuse an address in TIME_WAIT, but not SO_REUSEPORT: a second server on a port that
     * is taken must fail loudly, not silently share the traffic. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(ai);
        return -e;
    }
    freeaddrinfo(ai);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char a[INET6_ADDRSTRLEN + 1], port[16];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, a, sizeof(a), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(bound, bound_len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", a, port);
    else
        snprintf(bound, bound_len, "%s", spec);
    return fd;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: demo-backend -l HOST:PORT -n NAME [-c COUNTER_FILE] [-H DOWN_FILE] [-t N]\n"
            "\n"
            "  -l HOST:PORT  listen address (port 0: any free port, printed on stdout)\n"
            "  -n NAME       server name: body of /, X-Server header ([A-Za-z0-9._-], <= 63)\n"
            "  -c FILE       keep the request count in FILE (updated every 200ms and at exit)\n"
            "  -H FILE       /healthz answers 500 while FILE exists\n"
            "  -t N          worker threads (default 1)\n"
            "\n"
            "Endpoints: / (and unknown paths), /healthz, /admin/health/down, /admin/health/up,\n"
            "/status/NNN, /delay/MS, /bytes/N, /chunked/N, /echo, /headers, /stats.\n"
            "SIGTERM or SIGINT: stop, write the counter file, exit 0.\n");
}

struct options {
    const char *listen_spec;
    const char *counter_file;
    int threads;
};

/* Reads the command line into @o and g_name, g_health_file. Returns -1 to go on, or the
 * status to exit with (0 after -h, 2 on a usage error, already reported). */
static int parse_options(int argc, char **argv, struct options *o)
{
    int opt;
    while ((opt = getopt(argc, argv, "l:n:c:H:t:h")) != -1) {
        switch (opt) {
        case 'l':
            o->listen_spec = optarg;
            break;
        case 'n':
            g_name = optarg;
            break;
        case 'c':
            o->counter_file = optarg;
            break;
        case 'H':
            g_health_file = optarg;
            break;
        case 't':
            o->threads = atoi(optarg);
            if (o->threads < 1 || o->threads > 64) {
                fprintf(stderr, "demo-backend: -t wants 1..64\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o->listen_spec || !g_name || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!name_ok(g_name)) {
        fprintf(stderr, "demo-backend: bad name '%s' (want [A-Za-z0-9._-], 1..63)\n", g_name);
        return 2;
    }
    return -1;
}

/* Tests open thousands of connections: take every descriptor we are allowed. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Starts @n workers on the listening socket. Returns how many started; on a failure it says
 * why and sets g_stop, so those that did start stop at once. */
static int start_workers(struct worker *workers, int n)
{
    int started = 0;
    for (; started < n; started++) {
        struct worker *w = &workers[started];
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* EPOLLEXCLUSIVE: a new connection wakes one worker, not all of them. */
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &g_listen_src};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &g_wake_src};
        if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, g_listen_fd, &lev) < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, g_wake_fd, &wev) < 0 ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fprintf(stderr, "demo-backend %s: cannot start worker: %s\n", g_name, strerror(errno));
            atomic_store(&g_stop, true);
            break;
        }
    }
    return started;
}

/* The main thread's loop: waits for SIGTERM or SIGINT (@sigs, blocked in every thread) and
 * meanwhile keeps @counter_file up to date every 200ms. */
static void serve_until_signal(const sigset_t *sigs, const char *counter_file)
{
    uint64_t written = 0;
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
    while (!atomic_load(&g_stop)) {
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        uint64_t n = atomic_load(&g_requests);
        if (counter_file && n != written && counter_write(counter_file, n) == 0)
            written = n;
    }
}

/* Stops the first @started workers, waits for them and closes what they held. */
static void stop_workers(struct worker *workers, int started)
{
    atomic_store(&g_stop, true);
    uint64_t one = 1;
    if (write(g_wake_fd, &one, sizeof(one)) < 0) {
        /* Cannot happen with a fresh eventfd; workers would still stop at their next event. */
    }
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        close(workers[i].ep);
        if (workers[i].reserve_fd >= 0)
            close(workers[i].reserve_fd);
    }
}

int main(int argc, char **argv)
{
    struct options o = {.threads = 1};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    raise_fd_limit();

    char bound[128];
    g_listen_fd = listen_on(o.listen_spec, bound, sizeof(bound));
    if (g_listen_fd < 0) {
        fprintf(stderr, "demo-backend %s: cannot listen on %s: %s\n", g_name, o.listen_spec,
                g_listen_fd == -EINVAL ? "bad address" : strerror(-g_listen_fd));
        return 1;
    }
    if (o.counter_file && (rc = counter_write(o.counter_file, 0)) < 0) {
        fprintf(stderr, "demo-backend %s: %s: %s\n", g_name, o.counter_file, strerror(-rc));
        return 1;
    }

    /* Workers inherit this mask, so signals reach only the main thread's sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct worker *workers = calloc((size_t)o.threads, sizeof(*workers));
    if (g_wake_fd < 0 || !workers) {
        fprintf(stderr, "demo-backend %s: startup: %s\n", g_name, strerror(errno));
        return 1;
    }
    int started = start_workers(workers, o.threads);
    if (!atomic_load(&g_stop)) {
        printf("demo-backend %s: listening on %s (%d thread%s)\n", g_name, bound, o.threads,
               o.threads == 1 ? "" : "s");
        fflush(stdout);
    }
    serve_until_signal(&sigs, o.counter_file);
    stop_workers(workers, started);
    free(workers);
    close(g_listen_fd);
    close(g_wake_fd);
    rc = 0;
    if (o.counter_file && counter_write(o.counter_file, atomic_load(&g_requests)) < 0) {
        fprintf(stderr, "demo-backend %s: cannot write %s\n", g_name, o.counter_file);
        rc = 1;
    }
    return started == o.threads ? rc : 1;
}
