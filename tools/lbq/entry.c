/*
 * The strict decoder of queue entries (see entry.h). One pass over the input with a cursor;
 * decoded strings go into one arena of len + 1 bytes, which always suffices because no
 * decoded string (plus its NUL) is longer than its quoted, escaped form.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tools/ctl_json.h"
#include "tools/lbq/entry.h"

struct ps {
    const unsigned char *start, *p, *end;
    char *out; /* arena cursor */
    struct lb_err *err;
};

#define F_ID 0x01
#define F_TS 0x02
#define F_METHOD 0x04
#define F_URI 0x08
#define F_HEADERS 0x10
#define F_BODY 0x20
#define F_BODY_B64 0x40

static int bad(struct ps *s, const char *why)
{
    lb_err_set(s->err, "byte %zu: %s", (size_t)(s->p - s->start), why);
    return -EINVAL;
}

static void skip_ws(struct ps *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int expect(struct ps *s, char c, const char *why)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != (unsigned char)c)
        return bad(s, why);
    s->p++;
    return 0;
}

static int hex4(struct ps *s, unsigned *v)
{
    if (s->end - s->p < 4)
        return bad(s, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s->p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return bad(s, "bad hex digit in \\u escape");
        *v = *v << 4 | d;
    }
    s->p += 4;
    return 0;
}

/* \uXXXX (the backslash and 'u' already taken), with a following low surrogate when the
 * first is a high one. Returns the code point's length in UTF-8 written to @o (if any). */
static int unicode_escape(struct ps *s, char *o, size_t *n)
{
    unsigned hi, lo;
    if (hex4(s, &hi) < 0)
        return -EINVAL;
    if (hi >= 0xdc00 && hi <= 0xdfff)
        return bad(s, "lone low surrogate in \\u escape");
    if (hi >= 0xd800 && hi <= 0xdbff) {
        if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
            return bad(s, "high surrogate not followed by a low one");
        s->p += 2;
        if (hex4(s, &lo) < 0)
            return -EINVAL;
        if (lo < 0xdc00 || lo > 0xdfff)
            return bad(s, "high surrogate not followed by a low one");
        hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    }
    char tmp[4];
    *n = ctl_utf8_put(o ? o : tmp, hi);
    return 0;
}

/* Length of the valid UTF-8 sequence at s->p (first byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    unsigned cp, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f, min = 0x80;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int escape(struct ps *s, char *o, size_t *n)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (s->p >= s->end)
        return bad(s, "unterminated string");
    unsigned char c = *s->p++;
    if (c == 'u')
        return unicode_escape(s, o, n);
    const char *k = c ? strchr(from, c) : NULL;
    if (!k) {
        s->p--;
        return bad(s, "invalid escape");
    }
    if (o)
        *o = to[k - from];
    *n = 1;
    return 0;
}

/* A string at s->p (the opening quote next after whitespace). With @keep, its decoded bytes
 * go to the arena, NUL-terminated, at *@str with length *@len; without, it is only checked. */
static int string(struct ps *s, bool keep, char **str, size_t *len)
{
    if (expect(s, '"', "expected a string") < 0)
        return -EINVAL;
    char *o = keep ? s->out : NULL, *o0 = o;
    size_t total = 0;
    for (;;) {
        if (s->p >= s->end)
            return bad(s, "unterminated string");
        unsigned char c = *s->p;
        size_t n = 1;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c < 0x20)
            return bad(s, "control character in string");
        if (c == '\\') {
            s->p++;
            if (escape(s, o, &n) < 0)
                return -EINVAL;
        } else if (c >= 0x80) {
            n = utf8_len(s->p, s->end);
            if (!n)
                return bad(s, "invalid UTF-8 in string");
            if (o)
                memcpy(o, s->p, n);
            s->p += n;
        } else {
            if (o)
                *o = (char)c;
            s->p++;
        }
        if (o)
            o += n;
        total += n;
    }
    if (keep) {
        *o++ = '\0';
        *str = o0;
        *len = total;
        s->out = o;
    }
    return 0;
}

/* A JSON number, checked by the RFC 8259 grammar; with @ts, a non-negative integer only. */
static int number(struct ps *s, int64_t *ts)
{
    skip_ws(s);
    const unsigned char *b = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return bad(s, "expected a number");
    if (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9')
        return bad(s, "leading zero in number");
    uint64_t v = 0;
    bool over = false;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        unsigned d = *s->p++ - '0';
        over |= v > (uint64_t)(INT64_MAX - d) / 10;
        v = v * 10 + d;
    }
    bool integer = true;
    if (s->p < s->end && *s->p == '.') {
        integer = false;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return bad(s, "expected a digit after '.'");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        integer = false;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return bad(s, "expected a digit in exponent");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (!ts)
        return 0;
    if (*b == '-' || !integer || over) {
        s->p = b;
        return bad(s, "\"ts\" must be a non-negative integer of milliseconds");
    }
    *ts = (int64_t)v;
    return 0;
}

static int literal(struct ps *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return bad(s, "invalid literal");
    s->p += n;
    return 0;
}

/* Any JSON value, checked and dropped (unknown keys). */
static int skip_value(struct ps *s, int depth)
{
    if (depth > LBQ_ENTRY_MAX_DEPTH)
        return bad(s, "nested too deeply");
    skip_ws(s);
    if (s->p >= s->end)
        return bad(s, "expected a value");
    char open = (char)*s->p;
    if (open == '"')
        return string(s, false, NULL, NULL);
    if (open == 't')
        return literal(s, "true");
    if (open == 'f')
        return literal(s, "false");
    if (open == 'n')
        return literal(s, "null");
    if (open != '{' && open != '[')
        return number(s, NULL);
    char close = open == '{' ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == (unsigned char)close) {
        s->p++;
        return 0;
    }
    for (;;) {
        if (open == '{' && (string(s, false, NULL, NULL) < 0 || expect(s, ':', "expected ':'") < 0))
            return -EINVAL;
        if (skip_value(s, depth + 1) < 0)
            return -EINVAL;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, close, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *v, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)v[i]))
            return false;
    return true;
}

/* Field values may hold HTAB, visible ASCII and obs-text, never other controls (CR, LF). */
static bool is_field_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static int headers(struct ps *s, struct lbq_entry *e)
{
    if (expect(s, '{', "\"headers\" must be an object") < 0)
        return -EINVAL;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (e->nheaders == LBQ_ENTRY_MAX_HEADERS)
            return bad(s, "too many headers");
        struct lbq_header *h = &e->headers[e->nheaders];
        const unsigned char *at = s->p;
        char *name, *value;
        if (string(s, true, &name, &h->name_len) < 0 || expect(s, ':', "expected ':'") < 0)
            return -EINVAL;
        if (!is_token(name, h->name_len)) {
            s->p = at;
            return bad(s, "header name is not an HTTP token");
        }
        skip_ws(s);
        at = s->p;
        if (string(s, true, &value, &h->value_len) < 0)
            return -EINVAL;
        if (!is_field_value(value, h->value_len)) {
            s->p = at;
            return bad(s, "control character in header value");
        }
        h->name = name;
        h->value = value;
        e->nheaders++;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, '}', "expected ',' or '}' in \"headers\"");
    }
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Canonical base64 (RFC 4648 section 4, padded, no line breaks, zero pad bits), decoded in
 * place. Returns the decoded length or -1. */
static long b64_decode(char *buf, size_t n)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)buf[i + k];
            if (c == '=' && i + 4 == n && k >= 2 && (k == 3 || buf[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            if ((v[k] = b64_val(c)) < 0)
                return -1;
        }
        if ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf)))
            return -1; /* non-zero bits under the padding: not canonical */
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[o++] = (char)(w >> 16);
        if (pad < 2)
            buf[o++] = (char)(w >> 8 & 0xff);
        if (pad < 1)
            buf[o++] = (char)(w & 0xff);
    }
    return (long)o;
}

static int check_visible(struct ps *s, const unsigned char *at, const char *v, size_t n, size_t max,
                         const char *why)
{
    bool ok = n > 0 && n <= max;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f;
    if (ok)
        return 0;
    s->p = at;
    return bad(s, why);
}

/* One top-level member whose key is @k; @seen collects the F_* flags. */
static int member(struct ps *s, struct lbq_entry *e, const char *k, size_t klen, unsigned *seen)
{
    static const struct {
        const char *name;
        unsigned flag;
    } keys[] = {{"id", F_ID},           {"ts", F_TS},     {"method", F_METHOD},    {"uri", F_URI},
                {"headers", F_HEADERS}, {"body", F_BODY}, {"body_b64", F_BODY_B64}};
    unsigned flag = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i].name) == klen && !memcmp(keys[i].name, k, klen))
            flag = keys[i].flag;
    if (!flag)
        return skip_value(s, 1);
    if (*seen & flag)
        return bad(s, "duplicate key");
    *seen |= flag;
    skip_ws(s);
    const unsigned char *at = s->p;
    size_t n;
    switch (flag) {
    case F_TS:
        return number(s, &e->ts);
    case F_HEADERS:
        return headers(s, e);
    case F_ID:
        if (string(s, true, &e->id, &n) < 0)
            return -EINVAL;
        return check_visible(s, at, e->id, n, 200, "\"id\" must be 1-200 visible ASCII characters");
    case F_METHOD:
        if (string(s, true, &e->method, &n) < 0)
            return -EINVAL;
        if (n > 32 || !is_token(e->method, n)) {
            s->p = at;
            return bad(s, "\"method\" must be an HTTP token of at most 32 characters");
        }
        return 0;
    case F_URI:
        if (string(s, true, &e->uri, &n) < 0)
            return -EINVAL;
        if (check_visible(s, at, e->uri, n, 65536, "\"uri\" must be visible ASCII") < 0)
            return -EINVAL;
        return e->uri[0] == '/' ? 0 : (s->p = at, bad(s, "\"uri\" must start with '/'"));
    default: /* F_BODY, F_BODY_B64 */
        if (string(s, true, &e->body, &e->body_len) < 0)
            return -EINVAL;
        if (flag == F_BODY)
            return 0;
        long d = b64_decode(e->body, e->body_len);
        if (d < 0) {
            s->p = at;
            return bad(s, "\"body_b64\" is not canonical padded base64");
        }
        e->body_len = (size_t)d;
        return 0;
    }
}

static int object(struct ps *s, struct lbq_entry *e)
{
    unsigned seen = 0;
    if (expect(s, '{', "an entry must be a JSON object") < 0)
        return -EINVAL;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}')
        return bad(s, "empty object");
    for (;;) {
        char *k;
        size_t klen;
        char *mark = s->out;
        skip_ws(s);
        if (string(s, true, &k, &klen) < 0 || expect(s, ':', "expected ':'") < 0)
            return -EINVAL;
        s->out = mark; /* the key is not kept */
        if (member(s, e, k, klen, &seen) < 0)
            return -EINVAL;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (expect(s, '}', "expected ',' or '}'") < 0)
            return -EINVAL;
        break;
    }
    skip_ws(s);
    if (s->p != s->end)
        return bad(s, "trailing bytes after the object");
    if ((seen & (F_ID | F_TS | F_METHOD | F_URI)) != (F_ID | F_TS | F_METHOD | F_URI))
        return bad(s, "missing one of \"id\", \"ts\", \"method\", \"uri\"");
    if ((seen & F_BODY) && (seen & F_BODY_B64))
        return bad(s, "both \"body\" and \"body_b64\"");
    return 0;
}

int lbq_entry_parse(struct lbq_entry *e, const char *buf, size_t len, struct lb_err *err)
{
    memset(e, 0, offsetof(struct lbq_entry, headers));
    e->nheaders = 0;
    e->body = NULL;
    e->body_len = 0;
    e->mem = malloc(len + 1);
    if (!e->mem) {
        lb_err_set(err, "out of memory");
        return -ENOMEM;
    }
    struct ps s = {.start = (const unsigned char *)buf,
                   .p = (const unsigned char *)buf,
                   .end = (const unsigned char *)buf + len,
                   .out = e->mem,
                   .err = err};
    if (object(&s, e) < 0) {
        free(e->mem);
        e->mem = NULL;
        return -EINVAL;
    }
    if (!e->body)
        e->body = s.out; /* empty body: a valid pointer, length 0 */
    return 0;
}

void lbq_entry_free(struct lbq_entry *e)
{
    free(e->mem);
    e->mem = NULL;
}
