/*
 * The access log: one line per answered request (key=value text or a JSON object), buffered
 * per worker and written at the end of each loop iteration; and the request id each request
 * carries (X-Request-Id).
 *
 * Lines are put together by hand, not with printf: with the log on this runs for every
 * request. With it off, http_access_log only counts the status.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/io/tls.h"
#include "lb/metrics/stats.h"

/* The most a line can take: a 1024-byte target escaped six-fold for JSON, plus the rest. */
#define ALOG_LINE_MAX (8 * 1024)

static const char hexd[] = "0123456789abcdef";

static void hex64(char *out, uint64_t v)
{
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hexd[v & 15];
}

void http_request_id_begin(struct io_worker *w, struct http_conn *c)
{
    c->h.rid_len = 0;
    c->h.rid_seq = ++hw(w)->rid_next;
}

void http_request_id_take(struct http_conn *c, const char *buf, const struct http_req *req)
{
    int i = http_find_hdr(buf, req->hdrs, req->nhdrs, "x-request-id", 0);
    if (i < 0)
        return;
    const struct http_hdr *h = &req->hdrs[i];
    if (!h->value.len || h->value.len > HTTP_RID_MAX)
        return;
    for (uint32_t k = 0; k < h->value.len; k++) {
        unsigned char ch = (unsigned char)buf[h->value.off + k];
        if (ch < 0x21 || ch > 0x7e)
            return;
    }
    c->h.rid_off = h->value.off;
    c->h.rid_len = (uint8_t)h->value.len;
}

size_t http_request_id(const struct io_worker *w, const struct http_conn *c, char *out)
{
    if (c->h.rid_len && c->h.hbuf) {
        memcpy(out, c->h.hbuf + c->h.rid_off, c->h.rid_len);
        return c->h.rid_len;
    }
    hex64(out, hw(w)->rid_prefix);
    hex64(out + 16, c->h.rid_seq);
    return 32;
}

/* ---- a line under construction ---- */

struct lbuf {
    char *p;
    uint32_t n, cap;
    bool json;
};

static void put(struct lbuf *b, const char *s, size_t n)
{
    if (n > b->cap - b->n)
        n = b->cap - b->n; /* cannot happen with ALOG_LINE_MAX room; cut rather than overrun */
    memcpy(b->p + b->n, s, n);
    b->n += (uint32_t)n;
}

static void put_s(struct lbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_u64(struct lbuf *b, uint64_t v)
{
    char t[20];
    int i = sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, t + i, sizeof(t) - (size_t)i);
}

/* A string value: as is in text ("-" when empty), quoted and escaped in JSON. Bytes outside
 * printable ASCII become \u00XX so that every line is valid JSON (and valid UTF-8). */
static void put_str(struct lbuf *b, const char *s, size_t n)
{
    if (!b->json) {
        if (n)
            put(b, s, n);
        else
            put(b, "-", 1);
        return;
    }
    put(b, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            continue;
        put(b, s + from, i - from);
        char e[6] = {'\\', 'u', '0', '0', hexd[ch >> 4], hexd[ch & 15]};
        if (ch == '"' || ch == '\\') {
            e[1] = (char)ch;
            put(b, e, 2);
        } else {
            put(b, e, 6);
        }
        from = i + 1;
    }
    put(b, s + from, n - from);
    put(b, "\"", 1);
}

/* The key: " key=" in text, ",\"key\":" in JSON. */
static void put_key(struct lbuf *b, const char *key)
{
    put(b, b->json ? ",\"" : " ", 1 + b->json);
    put_s(b, key);
    put(b, b->json ? "\":" : "=", 1 + b->json);
}

static void put_ms(struct lbuf *b, const char *key, bool known, uint64_t ms)
{
    put_key(b, key);
    if (known)
        put_u64(b, ms);
    else
        put_s(b, b->json ? "null" : "-");
}

/* "2026-11-25T10:00:00.123Z", the seconds formatted once a second per thread. */
static void put_time(struct lbuf *b)
{
    static __thread time_t last;
    static __thread char text[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last = ts.tv_sec;
    }
    char t[24];
    memcpy(t, text, 20);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    t[20] = (char)('0' + ms / 100);
    t[21] = (char)('0' + ms / 10 % 10);
    t[22] = (char)('0' + ms % 10);
    t[23] = 'Z';
    put_str(b, t, 24);
}

static const char *method_name(unsigned m)
{
    static const char *const mn[] = {"OTHER",  "GET",     "HEAD",  "POST",    "PUT",
                                     "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    return m < sizeof(mn) / sizeof(mn[0]) ? mn[m] : "-";
}

/* Connect time (backend picked to connection ready), response time (connection ready to the
 * response header) and the whole exchange, in milliseconds; unknown ones are "-" / null. */
static void put_timing(struct io_worker *w, struct lbuf *b, const struct http_conn *c)
{
    const struct http_state *h = &c->h;
    bool conn = h->t_conn_ms && h->t_conn_ms >= h->t_pick_ms;
    put_ms(b, "connect_ms", conn, h->t_conn_ms - h->t_pick_ms);
    bool resp = conn && h->t_resp_ms >= h->t_conn_ms;
    put_ms(b, "response_ms", resp, h->t_resp_ms - h->t_conn_ms);
    put_ms(b, "total_ms", true, w->now_ms - h->t_start_ms);
}

static void put_tls(struct lbuf *b, struct http_conn *c)
{
    struct io_tls_info ti;
    io_tls_get_info(&c->st, &ti);
    put_key(b, "tls");
    put_str(b, ti.version, strlen(ti.version));
    put_key(b, "cipher");
    put_str(b, ti.cipher, strlen(ti.cipher));
    put_key(b, "sni");
    put_str(b, ti.sni, strnlen(ti.sni, 253));
    if (ti.resumed) {
        put_key(b, "resumed");
        put_s(b, b->json ? "true" : "1");
    }
}

static void put_line(struct io_worker *w, struct lbuf *b, struct http_conn *c, const char *server)
{
    put(b, "{\"ts\":", b->json ? 6 : 0);
    put_time(b);
    char rid[HTTP_RID_MAX];
    put_key(b, "request_id");
    put_str(b, rid, http_request_id(w, c, rid));
    char ip[INET6_ADDRSTRLEN + 1];
    http_client_ip_text(c, ip, sizeof(ip));
    put_key(b, "client");
    put_str(b, ip, strlen(ip));
    put_key(b, "method");
    put_str(b, method_name(c->h.method), strlen(method_name(c->h.method)));
    /* The target is in the incoming header, still in hbuf. */
    put_key(b, "target");
    if (c->h.hbuf && c->h.target_len && c->h.target_off + c->h.target_len <= c->h.hlen)
        put_str(b, c->h.hbuf + c->h.target_off, c->h.target_len > 1024 ? 1024 : c->h.target_len);
    else
        put_str(b, "-", 1);
    put_key(b, "status");
    put_u64(b, c->h.status);
    put_key(b, "bytes_in");
    put_u64(b, c->h.bytes_in);
    put_key(b, "bytes_out");
    put_u64(b, c->h.bytes_out);
    put_key(b, "listener");
    put_str(b, lcf_of(w, c)->name, strlen(lcf_of(w, c)->name));
    put_key(b, "server");
    put_str(b, server, strlen(server));
    put_timing(w, b, c);
    if (c->st.tls)
        put_tls(b, c); /* TLS connections: the version, cipher and the name the client asked */
    if (b->json)
        put(b, "}\n", 2);
    else
        put(b, "\n", 1);
}

void http_access_log(struct io_worker *w, struct http_conn *c, const char *server)
{
    metrics_listener_count_status(&w->rt->lstats[c->base.listener], c->h.status);
    struct http_worker *x = hw(w);
    if (!x->alog)
        return;
    if (x->alog_len > ALOG_SIZE - ALOG_LINE_MAX)
        http_flush_log(w);
    struct lbuf b = {.p = x->alog + x->alog_len, .cap = ALOG_LINE_MAX, .json = x->alog_json};
    put_line(w, &b, c, server);
    x->alog_len += b.n;
}

void http_flush_log(struct io_worker *w)
{
    if (hw(w)->alog && hw(w)->alog_len && hw(w)->alog_fd >= 0) {
        ssize_t r = write(hw(w)->alog_fd, hw(w)->alog, hw(w)->alog_len);
        (void)r;
    }
    hw(w)->alog_len = 0;
}
