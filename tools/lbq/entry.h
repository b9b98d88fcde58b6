/*
 * The queue entry that lb's enqueue routes push and lbq delivers (DESIGN.md):
 *   {"id": "...", "ts": UNIX_MS, "method": "POST", "uri": "...", "headers": {...},
 *    "body": "..."}            ("body_b64" instead of "body" when the body is not UTF-8)
 *
 * lbq_entry_parse() is a strict decoder: it is fed whatever sits in a Redis list, so anything
 * that is not exactly such an object is rejected with a message (and lbq dead-letters it).
 * Strict means: valid JSON (RFC 8259) in valid UTF-8, no duplicate top-level keys, every
 * required key present with the right type, \u escapes with surrogate pairs joined and lone
 * surrogates refused, canonical padded base64, and nothing that could not be written back as
 * an HTTP/1.1 request without reinterpretation (a method that is a token, a URI and header
 * values without control characters, header names that are tokens). Unknown top-level keys
 * are skipped (after being checked as JSON) so that lb may add fields later.
 */
#ifndef TOOLS_LBQ_ENTRY_H
#define TOOLS_LBQ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "conf/err.h"

#define LBQ_ENTRY_MAX_HEADERS 256
#define LBQ_ENTRY_MAX_DEPTH 32 /* nesting allowed inside unknown keys */

struct lbq_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct lbq_entry {
    char *id;   /* NUL-terminated; id, method and uri point into @mem */
    int64_t ts; /* milliseconds since the epoch, as lb wrote it */
    char *method;
    char *uri;
    struct lbq_header headers[LBQ_ENTRY_MAX_HEADERS];
    size_t nheaders;
    char *body; /* may hold NUL bytes; NULL-free only through lbq_entry_free */
    size_t body_len;
    char *mem; /* one allocation that every string above points into */
};

/*
 * Decodes @len bytes at @buf (need not be NUL-terminated) into @e. Returns 0, -EINVAL with
 * "byte N: why" in @err for anything malformed, or -ENOMEM. On failure @e holds nothing to
 * free; on success the caller frees it with lbq_entry_free().
 */
int lbq_entry_parse(struct lbq_entry *e, const char *buf, size_t len, struct lb_err *err);

void lbq_entry_free(struct lbq_entry *e);

#endif
