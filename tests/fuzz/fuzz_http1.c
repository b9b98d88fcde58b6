/*
 * libFuzzer target for lb/http/h1_*.c: request and response header parsing and body framing.
 *
 * Input layout: byte 0 picks what to parse (bit 0: request or response; bits 1-4: the
 * request method a response answers), byte 1 seeds the split points, byte 2 picks the
 * limits, and the rest is the message: a header section, then its body, then whatever
 * follows. Beyond the sanitizers' checks the target traps when a result depends on how
 * the bytes were split or a span points outside the section. Every call gets a heap copy
 * of exactly the bytes it may read, so ASan catches a read past len.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The weak stand-in the unit tests use: lb/proxy.o needs conf_free() to link. */
struct conf;
void conf_free(struct conf *c);
__attribute__((weak)) void conf_free(struct conf *c)
{
    (void)c;
}

#define CHECK(x)                                                                              \
    do {                                                                                      \
        if (!(x))                                                                             \
            __builtin_trap();                                                                 \
    } while (0)

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void check_span(struct http_span sp, size_t end)
{
    CHECK(sp.off <= end && sp.len <= end - sp.off);
}

static void check_hdrs(const char *buf, const struct http_hdr *h, uint32_t n, size_t end)
{
    CHECK(n <= HTTP_MAX_HDRS);
    for (uint32_t i = 0; i < n; i++) {
        check_span(h[i].name, end);
        check_span(h[i].value, end);
        CHECK(h[i].name.len > 0);
        /* Any field must be found by its own name, at or before its index. */
        char name[64];
        if (h[i].name.len < sizeof(name)) {
            memcpy(name, buf + h[i].name.off, h[i].name.len);
            name[h[i].name.len] = '\0';
            int k = http_find_hdr(buf, h, n, name, 0);
            CHECK(k >= 0 && (uint32_t)k <= i);
        }
        (void)http_list_has(buf + h[i].value.off, h[i].value.len, "close");
    }
}

static int parse(bool request, const char *buf, size_t len, size_t max_len, size_t max_target,
                 enum http_method m, void *msg)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, buf, len);
    int rc = request ? http_parse_request(copy, len, max_len, max_target, msg)
                     : http_parse_response(copy, len, max_len, m, msg);
    free(copy);
    return rc;
}

/* Feeds @len body bytes in pieces (all at once when @seed is NULL) and returns what the
 * message took, or the error. */
static ssize_t feed(struct http_body b, const char *buf, size_t len, uint32_t *seed,
                    bool *done)
{
    size_t off = 0;
    ssize_t rc = 0;
    while (off < len) {
        size_t n = len - off;
        if (seed) {
            size_t cap = 1 + next_rand(seed) % 17;
            n = n < cap ? n : cap;
        }
        char *copy = malloc(n);
        if (!copy)
            abort();
        memcpy(copy, buf + off, n);
        rc = http_body_feed(&b, copy, n);
        free(copy);
        if (rc < 0)
            break;
        CHECK((size_t)rc <= n);
        off += (size_t)rc;
        if (b.done)
            break;
        CHECK((size_t)rc == n);
    }
    *done = b.done;
    return rc < 0 ? rc : (ssize_t)off;
}

static struct http_req req_whole, req_inc;
static struct http_resp resp_whole, resp_inc;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    bool request = !(data[0] & 1);
    enum http_method m = (enum http_method)((data[0] >> 1) % (HTTP_M_TRACE + 1));
    uint32_t seed = 0x9e3779b9u ^ data[1];
    size_t max_len = data[2] & 0x80 ? 16384 : 16 + (size_t)(data[2] & 0x7f) * 8;
    size_t max_target = data[2] & 0x40 ? 8192 : 4 + (size_t)(data[2] & 0x3f) * 4;
    const char *msg = (const char *)data + 3;
    size_t len = size - 3;

    void *whole = request ? (void *)&req_whole : (void *)&resp_whole;
    void *inc = request ? (void *)&req_inc : (void *)&resp_inc;
    size_t msg_size = request ? sizeof(req_whole) : sizeof(resp_whole);
    memset(whole, 0, msg_size);
    memset(inc, 0, msg_size);

    int rc = parse(request, msg, len, max_len, max_target, m, whole);
    CHECK(rc <= (int)len);

    /* The same bytes arriving in pieces: AGAIN until the same answer. */
    size_t have = 0;
    int ri = HTTP_AGAIN;
    while (have < len) {
        have += 1 + next_rand(&seed) % 64;
        if (have > len)
            have = len;
        ri = parse(request, msg, have, max_len, max_target, m, inc);
        if (ri != HTTP_AGAIN)
            break;
    }
    if (len == 0)
        ri = parse(request, msg, 0, max_len, max_target, m, inc);
    CHECK(ri == rc);
    if (rc <= 0)
        return 0;

    struct http_body body;
    if (request) {
        CHECK(req_whole.header_len == (uint32_t)rc && req_inc.header_len == (uint32_t)rc);
        CHECK(req_whole.flags == req_inc.flags && req_whole.nhdrs == req_inc.nhdrs);
        CHECK(!memcmp(req_whole.hdrs, req_inc.hdrs, req_whole.nhdrs * sizeof(req_whole.hdrs[0])));
        CHECK(req_whole.version_minor <= 1);
        CHECK(req_whole.target.len <= max_target);
        check_span(req_whole.method_text, (size_t)rc);
        check_span(req_whole.target, (size_t)rc);
        check_span(req_whole.path, (size_t)rc);
        check_span(req_whole.host, (size_t)rc);
        check_hdrs(msg, req_whole.hdrs, req_whole.nhdrs, (size_t)rc);
        CHECK(!((req_whole.flags & HTTP_F_CHUNKED) && (req_whole.flags & HTTP_F_LENGTH)));
        http_body_init_req(&body, &req_whole);
    } else {
        CHECK(resp_whole.header_len == (uint32_t)rc && resp_inc.header_len == (uint32_t)rc);
        CHECK(resp_whole.flags == resp_inc.flags && resp_whole.status == resp_inc.status);
        CHECK(resp_whole.status >= 100 && resp_whole.status <= 999);
        check_span(resp_whole.reason, (size_t)rc);
        check_hdrs(msg, resp_whole.hdrs, resp_whole.nhdrs, (size_t)rc);
        CHECK(!((resp_whole.flags & HTTP_F_CHUNKED) &&
                (resp_whole.flags & HTTP_F_LENGTH)));
        http_body_init_resp(&body, &resp_whole);
    }

    /* The body: whole, byte by byte and in random pieces must agree. */
    const char *b = msg + rc;
    size_t blen = len - (size_t)rc;
    bool done_whole, done_pieces, done_bytes;
    ssize_t fw = feed(body, b, blen, NULL, &done_whole);
    ssize_t fp = feed(body, b, blen, &seed, &done_pieces);
    CHECK(fw == fp && done_whole == done_pieces);
    if (blen <= 4096) {
        uint32_t one = 0; /* next_rand(&one) stays 0: pieces of exactly one byte */
        ssize_t fb = feed(body, b, blen, &one, &done_bytes);
        CHECK(fw == fb && done_whole == done_bytes);
    }
    if (fw >= 0 && body.mode == HTTP_BODY_CLOSE)
        CHECK((size_t)fw == blen && !done_whole);
    if (fw >= 0 && done_whole && body.mode == HTTP_BODY_LENGTH)
        CHECK((uint64_t)fw == body.remaining);
    return 0;
}
