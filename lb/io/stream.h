/*
 * Streams: the one way every protocol reads and writes a socket. A stream is a connected
 * socket in the worker's fixed-file table plus the bytes received from it that its protocol
 * has not consumed yet (a queue of provided buffers, oldest first).
 *
 * Reading: io_stream_arm_recv() arms a multishot recv into the worker's provided buffers;
 * the worker appends each buffer to the stream's queue and then calls its connection's
 * on_recv op. The protocol looks at the queue (io_stream_head, io_stream_peek) and drops
 * what it is done with (io_stream_consume), which gives emptied buffers back at once.
 *
 * Writing: io_stream_send() starts the one send a stream may have in flight; the worker
 * calls on_sent with the bytes the kernel took, and a short send is resumed by the
 * protocol sending the rest. The bytes handed to a send stay where they are (a queued
 * buffer, a header buffer, a snapshot) until on_sent: a plain socket copies nothing.
 *
 * A TLS stream (s->tls set, lb/io/tls.h) sits behind the same calls, with OpenSSL between
 * these functions and the socket operations; protocols do not tell the two apart.
 */
#ifndef IO_STREAM_H
#define IO_STREAM_H

#include <stdbool.h>
#include <stdint.h>

struct io_worker;
struct io_conn;
struct io_tls;

#define IO_NOBUF 0xffffu

struct io_stream {
    int32_t fidx;   /* fixed-file index, -1 when none */
    uint16_t qhead; /* buffer id, IO_NOBUF when empty */
    uint16_t qtail;
    uint32_t qbytes; /* bytes queued */
    uint16_t flags;  /* IO_ST_F_* */
    uint8_t idx;     /* which stream of its connection (0 or 1): picks the op kinds */
    uint8_t pad;
    struct io_tls *tls; /* NULL: a plain socket (lb/io/tls.h) */
};

#define IO_ST_F_OPEN 0x0001      /* fidx holds a socket */
#define IO_ST_F_RECV 0x0002      /* a multishot recv is armed */
#define IO_ST_F_PAUSED 0x0004    /* receiving stopped: the queue is not draining */
#define IO_ST_F_EOF 0x0008       /* the peer sent FIN */
#define IO_ST_F_SENDING 0x0010   /* a send is in flight */
#define IO_ST_F_SHUT 0x0020      /* we sent FIN */
#define IO_ST_F_STARVED 0x0040   /* recv ended with ENOBUFS; waiting for free buffers */
#define IO_ST_F_CONNECTED 0x0080 /* accepted, or its connect completed */

/* An empty, closed stream; @idx is its position in its connection (0 or 1). */
void io_stream_init(struct io_stream *s, uint8_t idx);

/* An accepted socket in fixed-file slot @fidx. */
void io_stream_accepted(struct io_stream *s, int fidx);

/* Arms the multishot recv unless it is armed, paused, starved, at EOF, or the connection
 * is closing. */
void io_stream_arm_recv(struct io_worker *w, struct io_conn *c, struct io_stream *s);

/* Stops receiving (cancels the recv) until io_stream_resume(); for back-pressure. */
void io_stream_pause(struct io_worker *w, struct io_conn *c, struct io_stream *s);
void io_stream_resume(struct io_worker *w, struct io_conn *c, struct io_stream *s);

/* Starts the stream's one send: @len bytes at @p, which must stay valid until on_sent. */
void io_stream_send(struct io_worker *w, struct io_conn *c, struct io_stream *s, const char *p,
                    uint32_t len);

/* Sends FIN (once). */
void io_stream_shutdown(struct io_worker *w, struct io_conn *c, struct io_stream *s);

/* The queue. */
void io_stream_push(struct io_worker *w, struct io_stream *s, uint16_t bid, uint32_t len);
/* The first contiguous run of queued bytes (NULL and 0 when the queue is empty). */
const char *io_stream_head(const struct io_worker *w, const struct io_stream *s, uint32_t *len);
/* Copies up to @max queued bytes, skipping the first @skip, into @dst; returns the count. */
uint32_t io_stream_peek(const struct io_worker *w, const struct io_stream *s, uint32_t skip,
                        char *dst, uint32_t max);
/* Drops @n bytes from the head of the queue, giving emptied buffers back. */
void io_stream_consume(struct io_worker *w, struct io_stream *s, uint32_t n);
void io_stream_drop(struct io_worker *w, struct io_stream *s);

#endif
