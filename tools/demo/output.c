/*
 * Output: a connection's output buffer, status lines and headers, whole responses, the
 * generated bodies of /bytes and /chunked, and sending. A shortage of memory marks the one
 * connection broken (the loop then drops it); it never stops the process.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tools/demo/demo.h"

#define OUT_FIRST (8 * 1024)
#define GEN_SLICE (16 * 1024) /* /bytes and /chunked produce this much at a time */

/* Everything after /bytes/N or /chunked/N is this 64-byte line repeated, so a test can
 * rebuild the expected body with any tool: byte i is PATTERN[i % 64]. */
static const char PATTERN[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";

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

size_t demo_out_pending(const struct conn *c)
{
    return c->out_len - c->out_off;
}

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

void demo_out_put(struct conn *c, const void *data, size_t n)
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

/* Writes a status line and headers. @length is the body size, BODY_CHUNKED or BODY_NONE.
 * Connection: close is announced when c->closing is already set. */
void demo_respond_head(struct conn *c, int status, const char *ctype, int64_t length)
{
    out_fmt(c, "HTTP/1.1 %d %s\r\nX-Server: %s\r\n", status, reason(status), g_name);
    if (ctype)
        out_fmt(c, "Content-Type: %s\r\n", ctype);
    if (length >= 0)
        out_fmt(c, "Content-Length: %" PRId64 "\r\n", length);
    else if (length == BODY_CHUNKED)
        demo_out_put(c, "Transfer-Encoding: chunked\r\n", 28);
    if (c->closing)
        demo_out_put(c, "Connection: close\r\n", 19);
    else if (c->req.minor == 0)
        demo_out_put(c, "Connection: keep-alive\r\n", 24);
    demo_out_put(c, "\r\n", 2);
}

static bool status_has_body(int status)
{
    return status != 204 && status != 304;
}

/* A whole response with a body held in memory. HEAD gets the same headers and no body. */
void demo_respond(struct conn *c, int status, const char *ctype, const void *body, size_t len)
{
    if (!status_has_body(status)) {
        demo_respond_head(c, status, NULL, BODY_NONE);
        return;
    }
    demo_respond_head(c, status, ctype, (int64_t)len);
    if (!c->req.is_head)
        demo_out_put(c, body, len);
}

void demo_respond_text(struct conn *c, int status, const char *text)
{
    demo_respond(c, status, "text/plain", text, strlen(text));
}

/* An error about the request itself: answer, then close, since the framing of whatever
 * follows on the connection can no longer be trusted. */
void demo_respond_error(struct conn *c, int status, const char *why)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason(status), why);
    c->closing = true;
    c->req.is_head = false;
    demo_respond(c, status, "text/plain", body, (size_t)n);
}

/* Produces the next slice of a /bytes or /chunked body (the last call ends a chunked one). */
void demo_gen_fill(struct conn *c)
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
            demo_out_put(c, "\r\n", 2);
    }
    if (c->gen_left == 0) {
        if (c->gen_chunked)
            demo_out_put(c, "0\r\n\r\n", 5);
        c->gen_active = false;
    }
}

/* Returns bytes written (0 when the socket is full) or -errno when the peer is gone. */
ssize_t demo_conn_flush(struct conn *c)
{
    size_t total = 0;
    while (demo_out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, demo_out_pending(c), MSG_NOSIGNAL);
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
