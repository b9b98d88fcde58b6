/*
 * HTTP/1.1 body framing (RFC 9112 6 and 7): http_body_feed() says how many of the bytes
 * after a header section belong to the message, whatever way they are split across calls.
 * Bodies are not decoded: lb forwards chunked bodies as they came, so the chunked framer
 * only validates the chunk framing and finds where the message ends. Owns nothing but code
 * and constant tables.
 *
 * The chunked framer is a byte-at-a-time state machine whose state lives in struct
 * http_body between calls. Each state but CS_DATA has a step function, cs_<state>(), that
 * takes one byte and returns the next state; chunk_step() dispatches to them, and
 * chunked_feed() runs the loop, skipping the data of a chunk (CS_DATA) in one go without
 * looking at it. As for header sections, anything a second reader could frame differently
 * is refused (CS_ERROR, sticky), never guessed.
 */
#include <limits.h>
#include <string.h>

#include "lb/http/h1_internal.h"

/* Chunked framer states (struct http_body.state). */
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

/* A chunk of 2^62 bytes is far past anything real and keeps the arithmetic clear of
 * overflow with room to spare. */
#define CHUNK_MAX ((uint64_t)1 << 62)

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

/* ---- the chunk-size line: size, then extensions ---- */

/*
 * The steps of the chunked framer, cs_<state>(): each takes byte @c in the state it is named
 * after and returns the next state, or CS_ERROR to refuse the body. A step may update
 * b->remaining (the chunk size, or the trailer name match), b->line_len, b->trailer_bytes and
 * b->done; what it changed before refusing stays changed, which matters to no one once the
 * state is CS_ERROR.
 */

static uint8_t cs_size0(struct http_body *b, uint8_t c)
{
    if (!is(c, C_HEX))
        return CS_ERROR;
    b->remaining = (uint64_t)hexval(c);
    return CS_SIZE;
}

static uint8_t cs_size(struct http_body *b, uint8_t c)
{
    if (is(c, C_HEX)) {
        if (b->remaining > CHUNK_MAX >> 4)
            return CS_ERROR;
        b->remaining = b->remaining << 4 | (uint64_t)hexval(c);
        return b->remaining > CHUNK_MAX ? CS_ERROR : CS_SIZE;
    }
    if (c == ';')
        return CS_EXT_NAME0;
    if (c == '\r')
        return CS_SIZE_LF;
    /* Whitespace after the size is legal BWS before ';', but readers that stop at the space
     * disagree with those that skip it, so it is refused. */
    return CS_ERROR;
}

/* What may follow a complete extension name or value: BWS (state @ws), ';' (another
 * extension) or the CR that ends the line. */
static uint8_t ext_next(uint8_t c, uint8_t ws)
{
    if (is_ows(c))
        return ws;
    if (c == ';')
        return CS_EXT_NAME0;
    if (c == '\r')
        return CS_SIZE_LF;
    return CS_ERROR;
}

static uint8_t cs_ext_name0(struct http_body *b, uint8_t c)
{
    if (is(c, C_TCHAR))
        return CS_EXT_NAME;
    return is_ows(c) ? CS_EXT_NAME0 : CS_ERROR;
}

static uint8_t cs_ext_name(struct http_body *b, uint8_t c)
{
    if (is(c, C_TCHAR))
        return CS_EXT_NAME;
    if (c == '=')
        return CS_EXT_VAL0;
    return ext_next(c, CS_EXT_NAME_WS);
}

static uint8_t cs_ext_name_ws(struct http_body *b, uint8_t c)
{
    if (c == '=')
        return CS_EXT_VAL0;
    if (c == ';')
        return CS_EXT_NAME0;
    return is_ows(c) ? CS_EXT_NAME_WS : CS_ERROR;
}

static uint8_t cs_ext_val0(struct http_body *b, uint8_t c)
{
    if (c == '"')
        return CS_EXT_QUOTED;
    if (is(c, C_TCHAR))
        return CS_EXT_TOKEN;
    return is_ows(c) ? CS_EXT_VAL0 : CS_ERROR;
}

static uint8_t cs_ext_token(struct http_body *b, uint8_t c)
{
    if (is(c, C_TCHAR))
        return CS_EXT_TOKEN;
    return ext_next(c, CS_EXT_VAL_WS);
}

static uint8_t cs_ext_quoted(struct http_body *b, uint8_t c)
{
    if (c == '"')
        return CS_EXT_VAL_END;
    if (c == '\\')
        return CS_EXT_ESCAPE;
    return is(c, C_QDTEXT) ? CS_EXT_QUOTED : CS_ERROR;
}

static uint8_t cs_ext_escape(struct http_body *b, uint8_t c)
{
    return is(c, C_FVAL) ? CS_EXT_QUOTED : CS_ERROR;
}

static uint8_t cs_ext_val_end(struct http_body *b, uint8_t c)
{
    return ext_next(c, CS_EXT_VAL_WS);
}

static uint8_t cs_ext_val_ws(struct http_body *b, uint8_t c)
{
    if (c == ';')
        return CS_EXT_NAME0;
    return is_ows(c) ? CS_EXT_VAL_WS : CS_ERROR;
}

/* The size line ended: the chunk's data, or the trailer section after the last chunk. */
static uint8_t cs_size_lf(struct http_body *b, uint8_t c)
{
    if (c != '\n')
        return CS_ERROR;
    b->line_len = 0;
    return b->remaining == 0 ? CS_TRL_START : CS_DATA;
}

/* ---- after chunk data ---- */

static uint8_t cs_data_cr(struct http_body *b, uint8_t c)
{
    return c == '\r' ? CS_DATA_LF : CS_ERROR;
}

static uint8_t cs_data_lf(struct http_body *b, uint8_t c)
{
    if (c != '\n')
        return CS_ERROR;
    b->line_len = 0;
    return CS_SIZE0;
}

/* ---- the trailer section ---- */

/* Byte @c (a tchar) of a trailer name: narrows the forbidden names it may still be. */
static uint8_t trl_name_byte(struct http_body *b, uint8_t c)
{
    for (size_t k = 0; k < N_FORBIDDEN; k++) {
        const char *name = forbidden_trailers[k];
        if (b->line_len >= strlen(name) || (uint8_t)name[b->line_len] != lower(c))
            b->remaining &= ~((uint64_t)1 << k);
    }
    if (++b->line_len > HTTP_MAX_CHUNK_LINE)
        return CS_ERROR;
    return CS_TRL_NAME;
}

static uint8_t cs_trl_start(struct http_body *b, uint8_t c)
{
    if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
        return CS_ERROR;
    if (c == '\r')
        return CS_END_LF;
    /* SP or HTAB here would be obs-fold; ':' an empty name. */
    if (!is(c, C_TCHAR))
        return CS_ERROR;
    b->line_len = 0;
    b->remaining = (1u << N_FORBIDDEN) - 1;
    return trl_name_byte(b, c);
}

static uint8_t cs_trl_name(struct http_body *b, uint8_t c)
{
    if (++b->trailer_bytes > HTTP_MAX_TRAILERS)
        return CS_ERROR;
    if (c == ':') {
        /* The whole name matched one of them. */
        for (size_t k = 0; k < N_FORBIDDEN; k++)
            if ((b->remaining >> k & 1) && strlen(forbidden_trailers[k]) == b->line_len)
                return CS_ERROR;
        b->line_len++;
        return CS_TRL_VALUE;
    }
    if (!is(c, C_TCHAR))
        return CS_ERROR;
    return trl_name_byte(b, c);
}

static uint8_t cs_trl_value(struct http_body *b, uint8_t c)
{
    if (++b->trailer_bytes > HTTP_MAX_TRAILERS || ++b->line_len > HTTP_MAX_CHUNK_LINE)
        return CS_ERROR;
    if (c == '\r')
        return CS_TRL_LF;
    return is(c, C_FVAL) ? CS_TRL_VALUE : CS_ERROR;
}

static uint8_t cs_trl_lf(struct http_body *b, uint8_t c)
{
    if (c != '\n' || ++b->trailer_bytes > HTTP_MAX_TRAILERS)
        return CS_ERROR;
    return CS_TRL_START;
}

/* The LF of the final empty line: the message ends here. */
static uint8_t cs_end_lf(struct http_body *b, uint8_t c)
{
    if (c != '\n')
        return CS_ERROR;
    b->done = true;
    b->remaining = 0;
    return CS_END_LF;
}

/* ---- the framer ---- */

/* Counts one more byte of the chunk-size line, which is bounded as a whole, extensions
 * included: false when that makes it too long. */
static inline bool size_line_byte(struct http_body *b)
{
    return ++b->line_len <= HTTP_MAX_CHUNK_LINE;
}

/*
 * One byte @c in state @st outside chunk data: the next state, or CS_ERROR. A switch rather
 * than a table of step pointers, and the size-line bound checked in each case rather than
 * once in front of the switch, so that the compiler inlines the steps and, seeing the state
 * each returns, jumps from one byte's step straight to the next one's. Framing small chunks
 * took 2.5 times longer without that.
 */
static uint8_t chunk_step(struct http_body *b, uint8_t st, uint8_t c)
{
    switch (st) {
    case CS_SIZE0:
        return size_line_byte(b) ? cs_size0(b, c) : CS_ERROR;
    case CS_SIZE:
        return size_line_byte(b) ? cs_size(b, c) : CS_ERROR;
    case CS_EXT_NAME0:
        return size_line_byte(b) ? cs_ext_name0(b, c) : CS_ERROR;
    case CS_EXT_NAME:
        return size_line_byte(b) ? cs_ext_name(b, c) : CS_ERROR;
    case CS_EXT_NAME_WS:
        return size_line_byte(b) ? cs_ext_name_ws(b, c) : CS_ERROR;
    case CS_EXT_VAL0:
        return size_line_byte(b) ? cs_ext_val0(b, c) : CS_ERROR;
    case CS_EXT_TOKEN:
        return size_line_byte(b) ? cs_ext_token(b, c) : CS_ERROR;
    case CS_EXT_QUOTED:
        return size_line_byte(b) ? cs_ext_quoted(b, c) : CS_ERROR;
    case CS_EXT_ESCAPE:
        return size_line_byte(b) ? cs_ext_escape(b, c) : CS_ERROR;
    case CS_EXT_VAL_END:
        return size_line_byte(b) ? cs_ext_val_end(b, c) : CS_ERROR;
    case CS_EXT_VAL_WS:
        return size_line_byte(b) ? cs_ext_val_ws(b, c) : CS_ERROR;
    case CS_SIZE_LF:
        return cs_size_lf(b, c);
    case CS_DATA_CR:
        return cs_data_cr(b, c);
    case CS_DATA_LF:
        return cs_data_lf(b, c);
    case CS_TRL_START:
        return cs_trl_start(b, c);
    case CS_TRL_NAME:
        return cs_trl_name(b, c);
    case CS_TRL_VALUE:
        return cs_trl_value(b, c);
    case CS_TRL_LF:
        return cs_trl_lf(b, c);
    case CS_END_LF:
        return cs_end_lf(b, c);
    }
    return CS_ERROR; /* CS_DATA is not a one-byte state; others are never set */
}

/* Frames up to @len bytes of a chunked body; see http_body_feed(). */
static ssize_t chunked_feed(struct http_body *b, const uint8_t *d, size_t len)
{
    size_t i = 0;
    uint8_t st = b->state;
    if (st == CS_ERROR)
        return -HTTP_E_BAD;
    while (i < len) {
        if (st == CS_DATA) {
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
        st = chunk_step(b, st, d[i++]);
        if (st == CS_ERROR) {
            b->state = CS_ERROR;
            return -HTTP_E_BAD;
        }
        if (b->done) { /* the final CRLF: the rest is the next message */
            b->state = st;
            return (ssize_t)i;
        }
    }
    b->state = st;
    return (ssize_t)len;
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
