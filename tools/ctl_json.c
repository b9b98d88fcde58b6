/*
 * lbctl's JSON reader: a recursive-descent parser into a tree; see ctl_json.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/ctl_json.h"

struct jp {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    bool failed;
};

static void jp_fail(struct jp *p, const char *what)
{
    if (p->failed)
        return;
    p->failed = true;
    if (p->errlen)
        snprintf(p->err, p->errlen, "%s at offset %zu", what, p->pos);
}

static void skip_ws(struct jp *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool literal(struct jp *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n)) {
        jp_fail(p, "bad literal");
        return false;
    }
    p->pos += n;
    return true;
}

static int hex4(struct jp *p, uint32_t *out)
{
    uint32_t v = 0;
    if (p->len - p->pos < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

size_t ctl_utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* At the opening quote. Returns a new decoded string or NULL. The decoded form is never
 * longer than the escaped one (\uXXXX is 6 bytes for at most 3; a pair 12 for 4). */
static char *parse_string(struct jp *p)
{
    p->pos++; /* " */
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] != '"')
        p->pos += p->s[p->pos] == '\\' ? 2 : 1;
    if (p->pos >= p->len) {
        jp_fail(p, "unterminated string");
        return NULL;
    }
    size_t end = p->pos;
    char *out = malloc(end - start + 1), *o = out;
    if (!out) {
        jp_fail(p, "out of memory");
        return NULL;
    }
    p->pos = start;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c < 0x20) {
            jp_fail(p, "control character in string");
            goto fail;
        }
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        c = (unsigned char)p->s[p->pos++]; /* pos < end: the scan above skipped pairs */
        switch (c) {
        case '"':
        case '\\':
        case '/':
            *o++ = (char)c;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (p->pos + 4 > end || hex4(p, &cp) < 0) {
                jp_fail(p, "bad \\u escape");
                goto fail;
            }
            if (cp >= 0xd800 && cp < 0xdc00 && p->pos + 6 <= end && p->s[p->pos] == '\\' &&
                p->s[p->pos + 1] == 'u') {
                size_t save = p->pos;
                p->pos += 2;
                if (hex4(p, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    p->pos = save;
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd; /* a lone surrogate */
            o += ctl_utf8_put(o, cp);
            break;
        }
        default:
            jp_fail(p, "bad escape");
            goto fail;
        }
    }
    *o = '\0';
    p->pos = end + 1;
    return out;
fail:
    free(out);
    return NULL;
}

static bool parse_number(struct jp *p, double *out)
{
    size_t start = p->pos;
    char buf[64];
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    if (p->pos == digits || (p->s[digits] == '0' && p->pos - digits > 1)) {
        jp_fail(p, "bad number");
        return false;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        size_t f = ++p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == f) {
            jp_fail(p, "bad number");
            return false;
        }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        size_t e = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == e) {
            jp_fail(p, "bad number");
            return false;
        }
    }
    if (p->pos - start >= sizeof(buf)) {
        jp_fail(p, "number too long");
        return false;
    }
    memcpy(buf, p->s + start, p->pos - start);
    buf[p->pos - start] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

static struct ctl_json *parse_value(struct jp *p, int depth);

/* Parses the elements (or members) of an array (object) into v->child. */
static bool parse_container(struct jp *p, struct ctl_json *v, int depth)
{
    bool obj = v->type == CTL_JSON_OBJ;
    char close = obj ? '}' : ']';
    struct ctl_json **tail = &v->child;

    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                jp_fail(p, "expected a member name");
                return false;
            }
            if (!(key = parse_string(p)))
                return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                jp_fail(p, "expected ':'");
                return false;
            }
            p->pos++;
        }
        struct ctl_json *e = parse_value(p, depth + 1);
        if (!e) {
            free(key);
            return false;
        }
        e->key = key;
        *tail = e;
        tail = &e->next;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return true;
        }
        jp_fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static struct ctl_json *parse_value(struct jp *p, int depth)
{
    if (depth > CTL_JSON_MAX_DEPTH) {
        jp_fail(p, "nested too deep");
        return NULL;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        jp_fail(p, "unexpected end");
        return NULL;
    }
    struct ctl_json *v = calloc(1, sizeof(*v));
    if (!v) {
        jp_fail(p, "out of memory");
        return NULL;
    }
    bool ok;
    switch (p->s[p->pos]) {
    case '{':
        v->type = CTL_JSON_OBJ;
        ok = parse_container(p, v, depth);
        break;
    case '[':
        v->type = CTL_JSON_ARR;
        ok = parse_container(p, v, depth);
        break;
    case '"':
        v->type = CTL_JSON_STR;
        ok = (v->str = parse_string(p)) != NULL;
        break;
    case 't':
        v->type = CTL_JSON_BOOL;
        v->b = true;
        ok = literal(p, "true");
        break;
    case 'f':
        v->type = CTL_JSON_BOOL;
        ok = literal(p, "false");
        break;
    case 'n':
        ok = literal(p, "null");
        break;
    default:
        v->type = CTL_JSON_NUM;
        ok = parse_number(p, &v->num);
        break;
    }
    if (!ok) {
        ctl_json_free(v);
        return NULL;
    }
    return v;
}

struct ctl_json *ctl_json_parse(const char *s, size_t len, char *err, size_t errlen)
{
    struct jp p = {.s = s, .len = len, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    struct ctl_json *v = parse_value(&p, 0);
    if (!v)
        return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        jp_fail(&p, "trailing data");
        ctl_json_free(v);
        return NULL;
    }
    return v;
}

void ctl_json_free(struct ctl_json *v)
{
    /* Siblings iteratively, children recursively: depth is capped at parse time. */
    while (v) {
        struct ctl_json *next = v->next;
        ctl_json_free(v->child);
        free(v->key);
        free(v->str);
        free(v);
        v = next;
    }
}

const struct ctl_json *ctl_json_get(const struct ctl_json *obj, const char *key)
{
    if (!obj || obj->type != CTL_JSON_OBJ)
        return NULL;
    for (const struct ctl_json *m = obj->child; m; m = m->next)
        if (m->key && !strcmp(m->key, key))
            return m;
    return NULL;
}

const char *ctl_json_str(const struct ctl_json *obj, const char *key, const char *dflt)
{
    const struct ctl_json *m = ctl_json_get(obj, key);
    return m && m->type == CTL_JSON_STR ? m->str : dflt;
}

double ctl_json_num(const struct ctl_json *obj, const char *key, double dflt)
{
    const struct ctl_json *m = ctl_json_get(obj, key);
    return m && m->type == CTL_JSON_NUM ? m->num : dflt;
}

bool ctl_json_bool(const struct ctl_json *obj, const char *key, bool dflt)
{
    const struct ctl_json *m = ctl_json_get(obj, key);
    return m && m->type == CTL_JSON_BOOL ? m->b : dflt;
}

void ctl_human_bytes(char *out, size_t len, double b)
{
    static const char unit[] = " KMGTP";
    int u = 0;
    while (b >= 1024 && u < 5) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%.0f", b);
    else
        snprintf(out, len, "%.1f%c", b, unit[u]);
}
