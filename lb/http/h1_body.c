/*
 * HTTP/1.1 body framing (RFC 9112 6 and 7): http_body_feed() says how many of the bytes
 * after a header section belong to the message, whatever way they are split across calls.
 * Bodies are not decoded: lb forwards chunked bodies as they came, so the chunked framer
 * only validates the chunk framing and finds where the message ends. Owns nothing but code
 * and constant tables.
 *
 * As for header sections, anything a second reader could frame differently is refused
 * (CS_ERROR, sticky), never guessed.
 */
#include <limits.h>
#include <string.h>

#include "lb/http/h1_internal.h"

/* Chunked decoder states (struct http_body.state). */
enum {
    CS_SIZE0,        /* first hex digit of a chunk size */
    CS_SIZE,         /* more hex digits, ';' or CR */
    CS_EXT_NAME0,    /* after ';': BWS, then the first byte of an extension name */
    CS_EXT_NAME,     /* name bytes, then BWS, '=', ';' or CR */
    CS_EXT_NAME_WS,  /* BWS after a name: more BWS, '=' or ';' */
    CS_EXT_VAL0,     /* after '=': BWS, then a token or a quoted-string */
    CS_EXT_TOKEN,    /* token value bytes, then BWS, ';' or CR */
    CS_EXT_QUOTED,   /* inside a quoted value */
    CS_EXT_ESCAPE,   /* after a backslash inside a quoted value */
    CS_EXT_VAL_END,  /* after the closing quote: BWS, ';' or CR */
    CS_EXT_VAL_WS,   /* BWS after a value: more BWS or ';' */
    CS_SIZE_LF,      /* the LF that ends the chunk-size line */
    CS_DATA,         /* chunk data, @remaining bytes left */
    CS_DATA_CR,      /* the CRLF after chunk data */
    CS_DATA_LF,
    CS_TRL_START,    /* start of a trailer field line, or the CR of the final empty line */
    CS_TRL_NAME,     /* trailer field name bytes, then ':' */
    CS_TRL_VALUE,    /* trailer field value bytes, then CR */
    CS_TRL_LF,
    CS_END_LF,       /* the LF of the final empty line */
    CS_ERROR,        /* sticky: the caller closes, but a second feed must not resume */
};

/* Trailer names that would change framing or routing if a later hop merged them into the
 * header section (RFC 9110 6.5.1). While a name is read, body.remaining holds the bitmask
 * of these still matching and body.line_len the position in the name. */
static const char *const forbidden_trailers[] = {"content-length", "transfer-encoding", "host"};
#define N_FORBIDDEN (sizeof(forbidden_trailers) / sizeof(forbidden_trailers[0]))

void http_body_init_req(struct http_body *b, const struct http_req *req)
{
    memset(b, 0, sizeof(*b));
    if (req->flags & HTTP_F_CHUNKED) {
        b->mode = HTTP_BODY_CHUNKED;
        b->state = CS_SIZE0;
    } else if (req->flags & HTTP_F_LENGTH) {
        /* "Content-Length: 0" is LENGTH, done at once, as for responses. */
        b->mode = HTTP_BODY_LENGTH;
        b->remaining = req->content_length;
        b->done = req->content_length == 0;
    } else {
        b->mode = HTTP_BODY_NONE;
        b->done = true;
    }
}

void http_body_init_resp(struct http_body *b, const struct http_resp *resp)
{
    memset(b, 0, sizeof(*b));
    if (resp->flags & HTTP_F_NO_BODY) {
        b->mode = HTTP_BODY_NONE;
        b->done = true;
    } else if (resp->flags & HTTP_F_CHUNKED) {
        b->mode = HTTP_BODY_CHUNKED;
        b->state = CS_SIZE0;
    } else if (resp->flags & HTTP_F_LENGTH) {
        b->mode = HTTP_BODY_LENGTH;
        b->remaining = resp->content_length;
        b->done = resp->content_length == 0;
    } else {
        b->mode = HTTP_BODY_CLOSE;
    }
}

static inline int hexval(uint8_t c)
{
    if (IS_DIGIT(c))
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* A chunk of 2^62 bytes is far past anything real and keeps the arithmetic clear of
 * overflow with room to spare. */
#define CHUNK_MAX ((uint64_t)1 << 62)

static ssize_t chunked_feed(struct http_body *b, const uint8_t *d, size_t len)
{
    size_t i = 0;
    uint8_t st = b->state;
    if (st == CS_ERROR)
        return -HTTP_E_BAD;
    while (i < len) {
        uint8_t c = d[i];
        /* The chunk-size line, extensions included, is bounded as a whole. */
        if (st <= CS_EXT_VAL_WS && ++b->line_len > HTTP_MAX_CHUNK_LINE)
            goto bad;
        switch (st) {
        case CS_SIZE0:
            if (!is(c, C_HEX))
                goto bad;
            b->remaining = (uint64_t)hexval(c);
            st = CS_SIZE;
            break;
        case CS_SIZE:
            if (is(c, C_HEX)) {
                if (b->remaining > CHUNK_MAX >> 4)
                    goto bad;
                b->remaining = b->remaining << 4 | (uint64_t)hexval(c);
                if (b->remaining > CHUNK_MAX)
                    goto bad;
            } else if (c == ';') {
                st = CS_EXT_NAME0;
            } else if (c == '\r') {
                st = CS_SIZE_LF;
            } else {
                /* Whitespace after the size is legal BWS before ';', but readers that stop
                 * at the space disagree with those that skip it, so it is refused. */
                goto bad;
            }
            break;
        case CS_EXT_NAME0:
            if (is(c, C_TCHAR))
                st = CS_EXT_NAME;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_NAME:
            if (is_ows(c))
                st = CS_EXT_NAME_WS;
            else if (c == '=')
                st = CS_EXT_VAL0;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else if (!is(c, C_TCHAR))
                goto bad;
            break;
        case CS_EXT_NAME_WS:
            if (c == '=')
                st = CS_EXT_VAL0;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_VAL0:
            if (c == '"')
                st = CS_EXT_QUOTED;
            else if (is(c, C_TCHAR))
                st = CS_EXT_TOKEN;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_EXT_TOKEN:
            if (is_ows(c))
                st = CS_EXT_VAL_WS;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else if (!is(c, C_TCHAR))
                goto bad;
            break;
        case CS_EXT_QUOTED:
            if (c == '"')
                st = CS_EXT_VAL_END;
            else if (c == '\\')
                st = CS_EXT_ESCAPE;
            else if (!is(c, C_QDTEXT))
                goto bad;
            break;
        case CS_EXT_ESCAPE:
            if (!is(c, C_FVAL))
                goto bad;
            st = CS_EXT_QUOTED;
            break;
        case CS_EXT_VAL_END:
            if (is_ows(c))
                st = CS_EXT_VAL_WS;
            else if (c == ';')
                st = CS_EXT_NAME0;
            else if (c == '\r')
                st = CS_SIZE_LF;
            else
                goto bad;
            break;
        case CS_EXT_VAL_WS:
            if (c == ';')
                st = CS_EXT_NAME0;
            else if (!is_ows(c))
                goto bad;
            break;
        case CS_SIZE_LF:
            if (c != '\n')
                goto bad;
            b->line_len = 0;
            if (b->remaining == 0) {
                st = CS_TRL_START;
            } else {
                st = CS_DATA;
            }
            break;
        case CS_DATA: {
            /* The bulk of a chunked body: skip it without looking at it. */
            size_t n = len - i;
            if (n > b->remaining)
                n = (size_t)b->remaining;
            b->remaining -= n;
            i += n;
            if (b->remaining == 0)
                st = CS_DATA_CR;
            continue;
        }
        case CS_DATA_CR:
            if (c != '\r')
                goto bad;
            st = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (c != '\n')
                goto bad;
            st = CS_SIZE0;
            b->line_len = 0;
            break;
        case CS_TRL_START:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            if (c == '\r') {
                st = CS_END_LF;
                break;
            }
            /* SP or HTAB here would be obs-fold; ':' an empty name. */
            if (!is(c, C_TCHAR))
                goto bad;
            b->line_len = 0;
            b->remaining = (1u << N_FORBIDDEN) - 1;
            st = CS_TRL_NAME;
            goto trl_name;
        case CS_TRL_NAME:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            if (c == ':') {
                for (size_t k = 0; k < N_FORBIDDEN; k++)
                    if ((b->remaining >> k & 1) && strlen(forbidden_trailers[k]) == b->line_len)
                        goto bad;
                b->line_len++;
                st = CS_TRL_VALUE;
                break;
            }
            if (!is(c, C_TCHAR))
                goto bad;
        trl_name:
            for (size_t k = 0; k < N_FORBIDDEN; k++) {
                const char *name = forbidden_trailers[k];
                if (b->line_len >= strlen(name) || (uint8_t)name[b->line_len] != lower(c))
                    b->remaining &= ~((uint64_t)1 << k);
            }
            if (++b->line_len > HTTP_MAX_CHUNK_LINE)
                goto bad;
            break;
        case CS_TRL_VALUE:
            if (++b->trailer_bytes > HTTP_MAX_TRAILERS ||
                ++b->line_len > HTTP_MAX_CHUNK_LINE)
                goto bad;
            if (c == '\r')
                st = CS_TRL_LF;
            else if (!is(c, C_FVAL))
                goto bad;
            break;
        case CS_TRL_LF:
            if (c != '\n' || ++b->trailer_bytes > HTTP_MAX_TRAILERS)
                goto bad;
            st = CS_TRL_START;
            break;
        case CS_END_LF:
            if (c != '\n')
                goto bad;
            b->state = st;
            b->done = true;
            b->remaining = 0;
            return (ssize_t)(i + 1);
        default:
            goto bad;
        }
        i++;
    }
    b->state = st;
    return (ssize_t)len;
bad:
    b->state = CS_ERROR;
    return -HTTP_E_BAD;
}

ssize_t http_body_feed(struct http_body *b, const char *data, size_t len)
{
    if (b->done)
        return 0;
    switch (b->mode) {
    case HTTP_BODY_NONE:
        b->done = true;
        return 0;
    case HTTP_BODY_LENGTH: {
        size_t n = len < b->remaining ? len : (size_t)b->remaining;
        b->remaining -= n;
        b->done = b->remaining == 0;
        return (ssize_t)n;
    }
    case HTTP_BODY_CHUNKED:
        if (len > SSIZE_MAX)
            len = SSIZE_MAX;
        return chunked_feed(b, (const uint8_t *)data, len);
    case HTTP_BODY_CLOSE:
        return (ssize_t)len;
    }
    return -HTTP_E_BAD;
}
