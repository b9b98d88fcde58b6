/* bench-rate's response framing (tools/bench/rate_rsp.c): which bytes of a stream of
 * HTTP/1.x responses belong to which response. Pure, no I/O, so that it can be fuzzed. */
#ifndef TOOLS_BENCH_RATE_H
#define TOOLS_BENCH_RATE_H

#include <stddef.h>
#include <stdint.h>

#define RATE_BUF 16384 /* a response head must fit */

enum rate_rsp_state {
    RATE_RSP_HEAD,
    RATE_RSP_BODY,
    RATE_RSP_CHUNK_SIZE,
    RATE_RSP_CHUNK_DATA,
    RATE_RSP_CHUNK_END,
    RATE_RSP_TRAILER,
    RATE_RSP_UNTIL_EOF
};

/* One response being framed. */
struct rate_rsp {
    enum rate_rsp_state st;
    int status;
    int close;     /* Connection: close, or framed by EOF */
    uint64_t left; /* body or chunk bytes still to skip */
};

/* Feeds @n received bytes to @r (zeroed before the first response). Returns 1 when a final
 * response ended (*used bytes taken; r->status and r->close tell about it), 0 when more bytes
 * are needed (*used bytes taken, keep the rest for the next call), -1 when the response is
 * malformed or its head does not fit in RATE_BUF bytes. A 1xx head is skipped. */
int rate_rsp_feed(struct rate_rsp *r, const char *p, size_t n, size_t *used);

#endif
