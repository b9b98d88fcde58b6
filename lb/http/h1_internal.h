/*
 * What the files of the HTTP/1.1 parser share among themselves and nobody else uses: byte
 * classes, the word-at-a-time scan of field values, and the framing facts that the field
 * parser (h1_fields.c) gathers for the request and response parsers (h1_parse.c).
 * The body framer (h1_body.c) only needs the byte classes.
 */
#ifndef HTTP_H1_INTERNAL_H
#define HTTP_H1_INTERNAL_H

#include <string.h>

#include "lb/http/h1.h"

/* ---- byte classes ---- */

#define C_TCHAR 0x01 /* token character (RFC 9110 5.6.2) */
#define C_FVAL 0x02  /* allowed inside a field value: VCHAR, obs-text, SP, HTAB */
#define C_TARGET 0x04 /* allowed in a request-target: visible ASCII except '#' */
#define C_HEX 0x08
#define C_HOST 0x10   /* reg-name: unreserved, sub-delims except ',', and '%' */
#define C_QDTEXT 0x20 /* inside a quoted-string without escaping */

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* C_* bits of every byte value (h1_parse.c). */
extern const uint8_t http_h1_cls[256];

static inline bool is(uint8_t c, uint8_t class)
{
    return http_h1_cls[c] & class;
}

static inline bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static inline uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
}

/* Case-insensitive comparison of @n bytes of @s with the lowercase literal @lit. */
static inline bool eq_lower(const uint8_t *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (uint8_t)lit[i])
            return false;
    return true;
}

/*
 * Word-at-a-time tests for the long runs (field values, targets): eight bytes are checked
 * with a few ALU operations and the byte loop only runs on the word that holds something
 * unusual. has_less() is only exact as "does any byte qualify", which is all we ask of it.
 * Byte order does not matter for that either.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

/* Any byte below @n (n <= 128); bytes >= 0x80 never count. */
static inline uint64_t has_less(uint64_t x, uint8_t n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

/*
 * On a little-endian machine the lowest flagged byte of those tests is exact (a borrow
 * only runs upwards from a byte that really qualifies), so the scan can jump straight to
 * it. Elsewhere the byte loop finishes the word.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HTTP_SWAR 1
#else
#define HTTP_SWAR 0
#endif

/* Skips field-value bytes from @i; stops on the first byte that is not one, at the latest
 * on the CR that ends the line. Words are only loaded below @end, the end of the section. */
static inline size_t skip_fval(const uint8_t *buf, size_t i, size_t end)
{
    while (HTTP_SWAR && i + 8 <= end) {
        uint64_t x = load64(buf + i);
        uint64_t m = has_less(x, 0x20) | has_zero(x ^ (ONES * 0x7f));
        if (!m) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(m) >> 3;
        if (buf[i] != '\t') /* HTAB is the one control byte a value may hold */
            return i;
        i++;
    }
    while (is(buf[i], C_FVAL))
        i++;
    return i;
}

static inline struct http_span span(size_t off, size_t len)
{
    return (struct http_span){.off = (uint32_t)off, .len = (uint32_t)len};
}

/* ---- the field lines (h1_fields.c) ---- */

/* What the framing fields said, gathered over all lines of a section. */
struct framing {
    bool te;           /* a Transfer-Encoding field was seen */
    bool te_last_chunked;
    bool te_other;     /* some coding other than chunked */
    bool chunked;      /* chunked was named (a second time is refused at once) */
    uint8_t hosts;
    bool cl;
    uint64_t cl_value;
    bool conn_close, conn_keepalive, conn_upgrade;
    bool upgrade, upgrade_ws, expect_continue;
    struct http_span host;
};

/*
 * Parses the field lines from @i to @hdr_end (the start of the final empty line) of a
 * complete section in @buf into @hdrs, noting the fields that decide framing in @f (zeroed
 * by the caller). Returns 0, -400 for a malformed or ambiguous field, or -431 for too many
 * fields.
 */
int http_h1_parse_fields(const uint8_t *buf, size_t i, size_t hdr_end, struct http_hdr *hdrs,
                         uint32_t *nhdrs, struct framing *f);

/* Connection, Upgrade and Expect flags (HTTP_F_*), common to requests and responses. */
uint32_t http_h1_conn_flags(const struct framing *f, int minor);

#endif
