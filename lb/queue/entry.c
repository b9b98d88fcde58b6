/*
 * Queue entries as JSON (lb/queue/entry.h).
 *
 * Every string goes through one escaper: quote, backslash and control characters are
 * escaped, well-formed UTF-8 is copied as it is, and each byte that does not start a
 * well-formed sequence becomes \ufffd. The body alone is not altered: when it is not valid
 * UTF-8 it is written whole in base64 under "body_b64", so binary bodies survive the trip.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lb/queue/entry.h"

struct jw {
    char *buf;
    size_t cap, len;
    bool full;
};

static void jw_put(struct jw *w, const void *p, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void jw_lit(struct jw *w, const char *s)
{
    jw_put(w, s, strlen(s));
}

/* The length of the well-formed UTF-8 sequence at @p (at most @n bytes), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t k;
    uint8_t lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < k || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return k;
}

bool queue_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static void jw_escaped(struct jw *w, const uint8_t *p, size_t n, bool lower)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && !w->full;) {
        uint8_t c = p[i];
        size_t k = utf8_seq(p + i, n - i);
        if (!k) {
            jw_lit(w, "\\ufffd");
            i++;
        } else if (k > 1) {
            jw_put(w, p + i, k);
            i += k;
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jw_put(w, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            const char *s = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if (s)
                jw_lit(w, s);
            else
                jw_put(w, u, 6);
            i++;
        } else {
            char ch = (char)(lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
            jw_put(w, &ch, 1);
            i++;
        }
    }
}

static void jw_str(struct jw *w, struct queue_str s, bool lower)
{
    jw_lit(w, "\"");
    jw_escaped(w, (const uint8_t *)s.p, s.p ? s.len : 0, lower);
    jw_lit(w, "\"");
}

static void jw_base64(struct jw *w, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n && !w->full; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        jw_put(w, q, 4);
    }
}

size_t queue_entry_bound(const struct queue_entry *e)
{
    /* 6 output bytes per input byte at worst (\u00XX, \ufffd); base64 is below that. */
    size_t n = 128 + 6 * (e->id.len + e->method.len + e->uri.len + e->body_len);
    for (size_t i = 0; i < e->nhdrs; i++)
        n += 6 + 6 * (e->hdrs[i].name.len + e->hdrs[i].value.len);
    return n;
}

ssize_t queue_entry_encode(const struct queue_entry *e, char *buf, size_t cap)
{
    struct jw w = {.buf = buf, .cap = cap};
    char ts[32];
    jw_lit(&w, "{\"id\":");
    jw_str(&w, e->id, false);
    snprintf(ts, sizeof(ts), ",\"ts\":%llu,\"method\":", (unsigned long long)e->ts_ms);
    jw_lit(&w, ts);
    jw_str(&w, e->method, false);
    jw_lit(&w, ",\"uri\":");
    jw_str(&w, e->uri, false);
    jw_lit(&w, ",\"headers\":{");
    for (size_t i = 0; i < e->nhdrs; i++) {
        if (i)
            jw_lit(&w, ",");
        jw_str(&w, e->hdrs[i].name, true);
        jw_lit(&w, ":");
        jw_str(&w, e->hdrs[i].value, false);
    }
    const uint8_t *body = e->body_len ? e->body : (const uint8_t *)"";
    if (queue_utf8_valid(body, e->body_len)) {
        jw_lit(&w, "},\"body\":");
        jw_str(&w, (struct queue_str){(const char *)body, e->body_len}, false);
    } else {
        jw_lit(&w, "},\"body_b64\":\"");
        jw_base64(&w, body, e->body_len);
        jw_lit(&w, "\"");
    }
    jw_lit(&w, "}");
    return w.full ? -ENOBUFS : (ssize_t)w.len;
}

ssize_t queue_reply_encode(struct queue_str id, struct queue_str queue, char *buf, size_t cap)
{
    struct jw w = {.buf = buf, .cap = cap};
    jw_lit(&w, "{\"id\":");
    jw_str(&w, id, false);
    jw_lit(&w, ",\"queue\":");
    jw_str(&w, queue, false);
    jw_lit(&w, "}\n");
    return w.full ? -ENOBUFS : (ssize_t)w.len;
}

ssize_t queue_id_format(char *buf, size_t cap, const char *instance, uint32_t boot, unsigned worker,
                        uint64_t seq)
{
    int n = snprintf(buf, cap, "%.48s-%08x-%u-%llx", instance ? instance : "lb", boot, worker,
                     (unsigned long long)seq);
    if (n < 0 || (size_t)n >= cap)
        return -ENOBUFS;
    return n;
}
