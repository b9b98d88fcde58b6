/*
 * Plain-socket streams (lb/io/stream.h): recv, send, shutdown and the received-bytes queue.
 */
#include <string.h>
#include <sys/socket.h>

#include "lb/io/stream.h"
#include "lb/io/tls.h"
#include "lb/io/worker.h"

void io_stream_init(struct io_stream *s, uint8_t idx)
{
    *s = (struct io_stream){.fidx = -1, .qhead = IO_NOBUF, .qtail = IO_NOBUF, .idx = idx};
}

void io_stream_accepted(struct io_stream *s, int fidx)
{
    s->fidx = fidx;
    s->flags = IO_ST_F_OPEN | IO_ST_F_CONNECTED;
}

void io_stream_arm_recv(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    const uint32_t block = IO_ST_F_RECV | IO_ST_F_PAUSED | IO_ST_F_EOF | IO_ST_F_STARVED;
    if (c->state == IO_CONN_CLOSING || !(s->flags & IO_ST_F_OPEN) ||
        !(s->flags & IO_ST_F_CONNECTED) || (s->flags & block))
        return;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_RECV0 + s->idx, c, 0);
    /* A multishot recv takes all the socket holds, a buffer per piece, before a pause can
     * stop it; while the ring is short, one buffer per arm lets io_high_water() hold. */
    if (io_ring_short(w))
        io_uring_prep_recv(sqe, s->fidx, NULL, 0, 0);
    else
        io_uring_prep_recv_multishot(sqe, s->fidx, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    s->flags |= IO_ST_F_RECV;
}

void io_stream_pause(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    if (!(s->flags & IO_ST_F_RECV) || (s->flags & IO_ST_F_PAUSED))
        return;
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_cancel64(sqe, io_ud(IO_OP_RECV0 + s->idx, c->gen, c->slot), 0);
    s->flags |= IO_ST_F_PAUSED;
}

void io_stream_resume(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    if (!(s->flags & IO_ST_F_PAUSED))
        return;
    s->flags &= (uint16_t)~IO_ST_F_PAUSED;
    io_stream_arm_recv(w, c, s);
}

void io_stream_send(struct io_worker *w, struct io_conn *c, struct io_stream *s, const char *p,
                    uint32_t len)
{
    if (s->tls) {
        io_tls_send(w, c, s, p, len);
        return;
    }
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_SEND0 + s->idx, c, 0);
    io_uring_prep_send(sqe, s->fidx, p, len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
    s->flags |= IO_ST_F_SENDING;
}

void io_stream_shutdown(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    if (s->flags & IO_ST_F_SHUT)
        return;
    if (s->tls) {
        io_tls_shutdown(w, c, s);
        return;
    }
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_shutdown(sqe, s->fidx, SHUT_WR);
    sqe->flags |= IOSQE_FIXED_FILE;
    s->flags |= IO_ST_F_SHUT;
}

/* ---- the queue ---- */

/* A piece this small that fits behind the queue's last bytes is copied there. */
#define IO_COALESCE_MAX 4096

void io_stream_push(struct io_worker *w, struct io_stream *s, uint16_t b, uint32_t len)
{
    /* Small pieces (a header sent a byte at a time, a TLS record trickling in) join the tail
     * buffer when it has room, and the buffer they came in goes straight back to the ring:
     * a slow client holds one buffer, not one per piece, and a thousand of them cannot
     * drain the ring that every other connection receives into. Appending is safe while a
     * send of the tail is in flight: that send covers only the bytes that were there. The
     * fast path never copies: a request that arrives whole finds the queue empty. */
    uint16_t t = s->qtail;
    if (t != IO_NOBUF && len <= IO_COALESCE_MAX && w->buf_len[t] + len <= w->buf_size) {
        memcpy(io_buf_addr(w, t) + w->buf_len[t], io_buf_addr(w, b), len);
        w->buf_len[t] = (uint16_t)(w->buf_len[t] + len);
        s->qbytes += len;
        io_buf_put(w, b);
        return;
    }
    w->buf_len[b] = (uint16_t)len;
    w->buf_off[b] = 0;
    w->buf_next[b] = IO_NOBUF;
    if (s->qtail == IO_NOBUF)
        s->qhead = b;
    else
        w->buf_next[s->qtail] = b;
    s->qtail = b;
    s->qbytes += len;
}

const char *io_stream_head(const struct io_worker *w, const struct io_stream *s, uint32_t *len)
{
    uint16_t b = s->qhead;
    if (b == IO_NOBUF) {
        *len = 0;
        return NULL;
    }
    *len = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
    return io_buf_addr(w, b) + w->buf_off[b];
}

uint32_t io_stream_peek(const struct io_worker *w, const struct io_stream *s, uint32_t skip,
                        char *dst, uint32_t max)
{
    uint32_t n = 0;
    for (uint16_t b = s->qhead; b != IO_NOBUF && n < max; b = w->buf_next[b]) {
        uint32_t avail = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
        if (skip >= avail) {
            skip -= avail;
            continue;
        }
        uint32_t take = avail - skip;
        if (take > max - n)
            take = max - n;
        memcpy(dst + n, io_buf_addr(w, b) + w->buf_off[b] + skip, take);
        n += take;
        skip = 0;
    }
    return n;
}

void io_stream_consume(struct io_worker *w, struct io_stream *s, uint32_t n)
{
    while (n && s->qhead != IO_NOBUF) {
        uint16_t b = s->qhead;
        uint32_t avail = (uint32_t)(w->buf_len[b] - w->buf_off[b]);
        uint32_t take = n < avail ? n : avail;
        w->buf_off[b] = (uint16_t)(w->buf_off[b] + take);
        s->qbytes -= take;
        n -= take;
        if (w->buf_off[b] >= w->buf_len[b]) {
            s->qhead = w->buf_next[b];
            if (s->qhead == IO_NOBUF)
                s->qtail = IO_NOBUF;
            io_buf_put(w, b);
        }
    }
}

void io_stream_drop(struct io_worker *w, struct io_stream *s)
{
    while (s->qhead != IO_NOBUF) {
        uint16_t b = s->qhead;
        s->qhead = w->buf_next[b];
        io_buf_put(w, b);
    }
    s->qtail = IO_NOBUF;
    s->qbytes = 0;
}
