/*
 * Replies of a request's parts merged into the client's reply (lb/redis/internal.h), and the
 * growable buffers they go in. No I/O: the unit tests drive it directly.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/redis/internal.h"

/* A failed part: the request answers with the first error. */
static void first_error(struct rds_req *r, const char *p, size_t n)
{
    if (r->failed)
        return;
    r->failed = true;
    r->out.len = 0;
    rds_buf_put(&r->out, p, n);
}

bool rds_merge_reply(struct rds_req *r, uint32_t part, const char *p, size_t n)
{
    if (r->merge == RDS_M_ONE) {
        rds_buf_put(&r->out, p, n);
    } else if (p[0] == '-') {
        first_error(r, p, n);
    } else if (r->merge == RDS_M_SUM && p[0] == ':') {
        r->sum += strtoll(p + 1, NULL, 10);
    } else if (r->merge == RDS_M_OK && p[0] == '+') {
        /* one more +OK */
    } else if (r->merge == RDS_M_ARRAY && n > 4 && !memcmp(p, "*1\r\n", 4)) {
        rds_buf_put(&r->elems[part], p + 4, n - 4);
    } else {
        static const char bad[] = "-ERR lb: a shard gave an unexpected reply\r\n";
        first_error(r, bad, sizeof(bad) - 1);
    }
    return ++r->done == r->parts;
}

void rds_merge_finish(struct rds_req *r)
{
    if (r->failed)
        return;
    if (r->merge == RDS_M_SUM) {
        rds_buf_printf(&r->out, ":%lld\r\n", (long long)r->sum);
    } else if (r->merge == RDS_M_OK) {
        rds_buf_put(&r->out, "+OK\r\n", 5);
    } else if (r->merge == RDS_M_ARRAY) {
        rds_buf_printf(&r->out, "*%u\r\n", r->parts);
        for (uint32_t i = 0; i < r->parts; i++)
            rds_buf_put(&r->out, r->elems[i].p, r->elems[i].len);
    }
}

/* ---- buffers ---- */

void rds_wire_start(struct io_worker *w, struct io_conn *c, struct io_stream *st,
                    struct rds_wire *wr)
{
    if (wr->sending.len || !wr->out.len)
        return;
    struct rds_buf t = wr->sending;
    wr->sending = wr->out;
    wr->out = t;
    wr->out.len = 0;
    wr->sent = 0;
    io_stream_send(w, c, st, wr->sending.p, wr->sending.len);
}

bool rds_wire_sent(struct io_worker *w, struct io_conn *c, struct io_stream *st,
                   struct rds_wire *wr, int res)
{
    wr->sent += (uint32_t)res;
    if (wr->sent < wr->sending.len) {
        io_stream_send(w, c, st, wr->sending.p + wr->sent, wr->sending.len - wr->sent);
        return false;
    }
    wr->sending.len = 0;
    if (wr->sending.cap > 256 * 1024) /* after a burst: an idle connection keeps no big buffer */
        rds_buf_free(&wr->sending);
    return true;
}

void rds_wire_free(struct rds_wire *wr)
{
    rds_buf_free(&wr->out);
    rds_buf_free(&wr->sending);
}

int rds_buf_put(struct rds_buf *b, const void *p, size_t n)
{
    if (b->len + n > UINT32_MAX)
        return -ENOMEM;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n)
            ncap *= 2;
        if (ncap > UINT32_MAX)
            ncap = UINT32_MAX;
        char *q = realloc(b->p, ncap);
        if (!q)
            return -ENOMEM;
        b->p = q;
        b->cap = (uint32_t)ncap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += (uint32_t)n;
    return 0;
}

int rds_buf_printf(struct rds_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    return rds_buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void rds_buf_free(struct rds_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
