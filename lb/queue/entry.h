/*
 * Queue entries (lb/queue/entry.c): the JSON object an enqueue route pushes onto its Redis
 * list, the 202 answer that names it, and the entry id. DESIGN.md gives the format:
 *
 *   {"id":"...","ts":UNIX_MS,"method":"POST","uri":"...","headers":{...},"body":"..."}
 *
 * with "body_b64" (standard base64, padded) instead of "body" when the body is not valid
 * UTF-8. Header names are written lowercased; header values, the method and the URI that are
 * not valid UTF-8 have each bad byte replaced by U+FFFD, so that the entry is always valid
 * JSON. Pure functions over caller buffers: no I/O, no allocation, written to be fuzzed.
 */
#ifndef QUEUE_ENTRY_H
#define QUEUE_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QUEUE_ID_MAX 96 /* an id with its NUL, see queue_id_format */

/* A byte string that need not be NUL-terminated. */
struct queue_str {
    const char *p;
    size_t len;
};

/* One header kept in the entry. The caller merges repeated headers (", ") and appends the
 * client address to X-Forwarded-For before encoding; names are written lowercased. */
struct queue_hdr {
    struct queue_str name, value;
};

struct queue_entry {
    struct queue_str id;
    uint64_t ts_ms; /* Unix time of arrival, milliseconds */
    struct queue_str method, uri;
    const struct queue_hdr *hdrs;
    size_t nhdrs;
    const uint8_t *body;
    size_t body_len;
};

/* True when @p[0..@n) is well-formed UTF-8 (no overlong forms, no surrogates, at most
 * U+10FFFF). */
bool queue_utf8_valid(const uint8_t *p, size_t n);

/* An upper bound of the bytes queue_entry_encode writes for @e; a caller sizes its buffer
 * with it. */
size_t queue_entry_bound(const struct queue_entry *e);

/* Writes @e as one JSON object into @buf (no NUL). Returns its length, or -ENOBUFS when it
 * does not fit in @cap bytes. */
ssize_t queue_entry_encode(const struct queue_entry *e, char *buf, size_t cap);

/* Writes the 202 answer body {"id":"...","queue":"..."}. Returns its length or -ENOBUFS. */
ssize_t queue_reply_encode(struct queue_str id, struct queue_str queue, char *buf, size_t cap);

/* Writes an id unique across instances, boots and workers: INSTANCE-BOOT-WORKER-SEQ, with
 * BOOT a random 32-bit value drawn once per process and SEQ the worker's counter, in hex.
 * @instance is cut to 48 bytes. Returns the length, or -ENOBUFS when @cap is too small. */
ssize_t queue_id_format(char *buf, size_t cap, const char *instance, uint32_t boot, unsigned worker,
                        uint64_t seq);

#endif
