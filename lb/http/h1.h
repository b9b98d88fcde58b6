/*
 * HTTP/1.1 message parsing (RFC 9112), strict, without allocation.
 *
 * Two parts:
 *
 * 1. The header section (request line or status line plus fields) is parsed from one
 *    contiguous buffer that holds everything received so far. http_parse_request() and
 *    http_parse_response() return 0 (HTTP_AGAIN) until the empty line that ends the
 *    section is in the buffer, then parse the whole section in one pass and fill a struct
 *    whose strings are spans (offset, length) into that buffer: nothing is copied. The
 *    result does not depend on how the bytes were split across calls; a caller that calls
 *    again with more bytes passes the same struct back, and the parser resumes its search
 *    for the end of the section where it stopped (no quadratic rescans).
 *
 * 2. The body is framed by http_body_feed(), an incremental state machine fed any split
 *    of the bytes after the header section. It does not decode: lb forwards chunked bodies
 *    as they came, so the body parser only validates chunk framing and says where the
 *    message ends (for pipelining and connection reuse).
 *
 * Strictness: anything whose framing a second reader could interpret differently is
 * rejected, never guessed. See the HTTP_E_* codes for what gets which status.
 */
#ifndef HTTP_H1_H
#define HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_AGAIN 0      /* header section incomplete: call again with more bytes */
#define HTTP_MAX_HDRS 100 /* more fields than this: 431 */

/* A string inside the caller's buffer. */
struct http_span {
    uint32_t off;
    uint32_t len;
};

struct http_hdr {
    struct http_span name;  /* token, letter case as received */
    struct http_span value; /* leading and trailing whitespace (SP, HTAB) stripped */
};

enum http_method {
    HTTP_M_OTHER, /* any other token: allowed, treated as not idempotent */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
    HTTP_M_PATCH,
    HTTP_M_CONNECT,
    HTTP_M_TRACE,
};

/* Message flags (both requests and responses unless said otherwise). */
#define HTTP_F_CHUNKED 0x0001         /* Transfer-Encoding: chunked (the only coding allowed) */
#define HTTP_F_LENGTH 0x0002          /* Content-Length present; see content_length */
#define HTTP_F_CLOSE 0x0004           /* Connection: close, or HTTP/1.0 without keep-alive */
#define HTTP_F_KEEPALIVE 0x0008       /* Connection: keep-alive (meaningful on HTTP/1.0) */
#define HTTP_F_EXPECT_CONTINUE 0x0010 /* request: Expect: 100-continue */
#define HTTP_F_UPGRADE_WS 0x0020      /* Upgrade names websocket and Connection names upgrade */
#define HTTP_F_UPGRADE_OTHER 0x0040   /* an Upgrade header naming something else (h2c...) */
#define HTTP_F_NO_BODY                                                                             \
    0x0080                        /* response: no body whatever the fields say                     \
                                         (HEAD, 1xx, 204, 304); set by parse_response */
#define HTTP_F_UNTIL_CLOSE 0x0100 /* response: body delimited by connection close */

/* Parser state kept between calls for one message; zero it before the first call. */
struct http_scan {
    uint32_t scanned; /* bytes already searched for the end of the section */
};

struct http_req {
    struct http_scan scan;
    enum http_method method;
    struct http_span method_text;
    struct http_span target; /* request-target as received */
    struct http_span path;   /* origin-form: target up to '?'; absolute-form: the path part */
    struct http_span host;   /* Host value (or absolute-form authority), port included */
    uint8_t version_minor;   /* 0 or 1 */
    uint32_t flags;          /* HTTP_F_* */
    uint64_t content_length; /* valid with HTTP_F_LENGTH */
    uint32_t header_len;     /* bytes of the section, final CRLF included */
    uint32_t nhdrs;
    struct http_hdr hdrs[HTTP_MAX_HDRS];
};

struct http_resp {
    struct http_scan scan;
    uint16_t status; /* 100..999 */
    struct http_span reason;
    uint8_t version_minor;
    uint32_t flags;
    uint64_t content_length;
    uint32_t header_len;
    uint32_t nhdrs;
    struct http_hdr hdrs[HTTP_MAX_HDRS];
};

/*
 * Errors, returned negated. For requests the value is the HTTP status lb answers with
 * before closing the connection: 400 (malformed, ambiguous framing, bad Host), 414 (target
 * longer than @max_target), 431 (section longer than @max_len, or more than
 * HTTP_MAX_HDRS fields), 501 (a transfer coding other than chunked), 505 (a well-formed
 * version other than 1.0 / 1.1). For responses any error means 502 to the client and the
 * backend connection is not reused.
 */
#define HTTP_E_BAD 400
#define HTTP_E_TARGET 414
#define HTTP_E_TOO_BIG 431
#define HTTP_E_CODING 501
#define HTTP_E_VERSION 505

/*
 * Parses a request header section from @buf[0..len). Leading empty lines (CRLF) before the
 * request line are skipped and counted in header_len. Returns header_len (> 0) when the
 * section is complete and valid, HTTP_AGAIN when more bytes are needed (and len is
 * still within @max_len), or -HTTP_E_*. @max_len bounds the section (limits
 * max_header_bytes), @max_target the request-target.
 *
 * Rejected with 400, at least: Content-Length with Transfer-Encoding; differing or
 * repeated-differing Content-Length (identical repeats, also as a list "5, 5", collapse);
 * Content-Length that is empty, signed, hex, non-digit or overflows 2^63; Transfer-Encoding
 * whose final coding is not chunked, or chunked repeated; obs-fold; whitespace before the
 * colon; bare CR anywhere; bare LF; NUL or other control bytes (except HTAB in values) in
 * field names or values; non-token bytes in the method or a field name; a malformed
 * request line (not exactly METHOD SP TARGET SP HTTP/x.y); HTTP/0.9 (no version); a target
 * that is not origin-form ("/..."), absolute-form (http:// or https://), authority-form
 * (CONNECT only) or "*" (OPTIONS only), or holds bytes outside visible ASCII; HTTP/1.1 without
 * Host, or with more than one Host; a Host value that is not a valid authority.
 * Accepted: any letter case in field names, leading zeros in Content-Length (decimal).
 */
int http_parse_request(const char *buf, size_t len, size_t max_len, size_t max_target,
                       struct http_req *req);

/*
 * Parses a response header section. @req_method is the method of the request it answers
 * (HEAD and CONNECT change the body rules). Returns header_len, HTTP_AGAIN or -502 (any
 * malformation, both Content-Length and Transfer-Encoding, differing Content-Lengths, a
 * transfer coding other than a final chunked, a 1xx/204 with Content-Length > 0 or chunked,
 * section over @max_len). Sets HTTP_F_NO_BODY and HTTP_F_UNTIL_CLOSE as RFC 9112
 * section 6.3 says.
 */
int http_parse_response(const char *buf, size_t len, size_t max_len, enum http_method req_method,
                        struct http_resp *resp);

/* Finds field @name (case-insensitive) from index @from on; returns its index or -1. */
int http_find_hdr(const char *buf, const struct http_hdr *hdrs, uint32_t nhdrs, const char *name,
                  uint32_t from);

/* True when the comma-separated list in @value contains @token (case-insensitive). */
bool http_list_has(const char *value, size_t len, const char *token);

/* ---- body framing ---- */

enum http_body_mode {
    HTTP_BODY_NONE,   /* no body: done at once */
    HTTP_BODY_LENGTH, /* Content-Length bytes */
    HTTP_BODY_CHUNKED,
    HTTP_BODY_CLOSE, /* response only: everything until the server closes */
};

struct http_body {
    enum http_body_mode mode;
    uint64_t remaining;     /* LENGTH: bytes left; CHUNKED: bytes left in the current chunk */
    uint8_t state;          /* chunked decoder state (private) */
    uint16_t line_len;      /* length of the chunk-size line or trailer field so far (private) */
    uint32_t trailer_bytes; /* trailer section so far (private) */
    bool done;              /* the message ended */
};

#define HTTP_MAX_CHUNK_LINE 4096 /* chunk-size line with extensions, and each trailer field */
#define HTTP_MAX_TRAILERS 16384

/* Sets up @b for a request after parse_request (NONE, LENGTH or CHUNKED). */
void http_body_init_req(struct http_body *b, const struct http_req *req);
/* Sets up @b for a response after parse_response (NONE, LENGTH, CHUNKED or CLOSE). */
void http_body_init_resp(struct http_body *b, const struct http_resp *resp);

/*
 * Feeds @len body bytes. Returns how many of them belong to this message (<= len; fewer
 * only when the message ended inside @data, which sets b->done, and the rest is the next
 * message), or -400 on bad chunk framing: a chunk size with a sign, "0x", spaces, no digits
 * or over 2^62; chunk data not followed by CRLF; a bare LF or CR; a malformed or
 * oversized (HTTP_MAX_CHUNK_LINE) chunk extension; a trailer section over
 * HTTP_MAX_TRAILERS or holding a malformed field or a framing field (Content-Length,
 * Transfer-Encoding, Host). With CLOSE the whole input always belongs to the message.
 */
ssize_t http_body_feed(struct http_body *b, const char *data, size_t len);

#endif
