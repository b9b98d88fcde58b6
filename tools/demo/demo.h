/*
 * demo-backend: a small HTTP/1.1 origin server of our own, used by `make run` and by the
 * end-to-end tests and benchmarks of lb. It owns nothing of lb's and links nothing of it, so a
 * bug in the proxy can never hide behind the same bug in the origin.
 *
 * This header holds what the files of tools/demo/ share: the limits, a connection and the
 * request it is reading, the process-wide state (defined in main.c), and the functions that
 * one file calls in another, all named demo_*:
 *   main.c    options, the listening socket, worker threads, signals, the counter file
 *   loop.c    a worker's epoll loop: accept, read, run a connection, timers, close
 *   parse.c   request heads and chunked bodies (RFC 9112): framing the next request
 *   routes.c  the endpoints
 *   output.c  the output buffer, status line and headers, generated bodies, sending
 */
#ifndef TOOLS_DEMO_DEMO_H
#define TOOLS_DEMO_DEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HEAD_MAX (64 * 1024)        /* request line + headers; more is a 431 */
#define HEADERS_MAX 100             /* header fields in one request; more is a 431 */
#define BODY_MAX (64 * 1024 * 1024) /* decoded request body; more is a 413 */
#define IN_FIRST (8 * 1024)         /* first input buffer; grows by doubling */
#define IN_MAX (HEAD_MAX + BODY_MAX + 64 * 1024)
#define OUT_HIGH (256 * 1024) /* stop producing responses above this much unsent */
#define NAME_MAX_LEN 63

/* Process-wide state, defined in main.c. Counters are atomics because every worker updates
 * them. */
extern const char *g_name;
extern const char *g_health_file;
extern atomic_uint_fast64_t g_requests;
extern atomic_uint_fast64_t g_connections; /* accepted, ever */
extern atomic_uint_fast64_t g_active;      /* open now */
extern atomic_bool g_health_down;
extern atomic_bool g_stop;
extern int g_listen_fd;

enum src_kind {
    SRC_LISTEN,
    SRC_WAKE,
    SRC_CONN,
};

/* First member of everything registered with epoll, so data.ptr says what woke us. */
struct src {
    enum src_kind kind;
};

enum req_state {
    REQ_HEAD,         /* waiting for the blank line */
    REQ_BODY_LENGTH,  /* waiting for Content-Length bytes */
    REQ_BODY_CHUNKED, /* decoding chunks in place */
};

enum chunk_state {
    CHUNK_SIZE,     /* hex size line, with optional extensions */
    CHUNK_DATA,     /* chunk bytes */
    CHUNK_DATA_END, /* the CRLF after chunk bytes */
    CHUNK_TRAILER,  /* trailer fields up to the blank line */
};

enum conn_wait {
    WAIT_NONE,
    WAIT_DELAY,  /* a /delay response is due at deadline */
    WAIT_LINGER, /* answer sent, write side shut: discard input until EOF or deadline */
};

/* The request being read. Offsets are relative to conn->in + conn->in_off, which stays the
 * first byte of this request until it is consumed, so compaction cannot invalidate them. */
struct req {
    size_t head_len; /* through the blank line */
    size_t target_off, target_len;
    int minor; /* HTTP/1.minor */
    bool keep_alive;
    bool is_head;
    bool expect_continue;
    bool chunked_body;
    uint64_t content_length;
    /* Chunked bodies are decoded in place right after the head: decoded bytes never
     * outrun the raw ones, and the gap between them is squeezed out after each step. */
    size_t raw_pos; /* next raw body byte */
    size_t dec_len; /* decoded bytes stored at head_len */
    enum chunk_state chunk;
    uint64_t chunk_left;
};

struct conn {
    struct src src; /* first */
    int fd;
    uint32_t events; /* what epoll currently watches */
    char *in;
    size_t in_off, in_len, in_cap;
    size_t scan; /* the blank-line search resumes here, relative to in_off */
    char *out;
    size_t out_off, out_len, out_cap;
    enum req_state state;
    struct req req;
    /* A generated body still to produce (/bytes, /chunked). */
    bool gen_active;
    bool gen_chunked;
    uint64_t gen_left, gen_pos;
    enum conn_wait wait;
    uint64_t deadline_ms;
    bool closing; /* answer no more requests; close once output is flushed */
    bool rd_eof;
    bool broken; /* out of memory: drop the connection */
    bool dead;
    struct conn *tprev, *tnext; /* worker's timer list, while wait != WAIT_NONE */
    struct conn *dnext;         /* worker's list of connections to free after a batch */
    struct conn *aprev, *anext; /* worker's list of all live connections, for shutdown */
};

struct worker {
    int ep;
    pthread_t thread;
    struct conn *timers; /* unsorted: few connections wait at once */
    struct conn *dead;
    struct conn *all;
    int reserve_fd; /* spare descriptor, given up to accept-and-close when out of fds */
};

/* ---- loop.c ---------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t demo_now_ms(void);

/* Makes @c wait for @why until @at (a demo_now_ms() time), replacing any wait already set. */
void demo_timer_set(struct worker *w, struct conn *c, enum conn_wait why, uint64_t at);

/* A worker thread (@arg: its struct worker): serves connections until g_stop is set, then
 * closes them all. */
void *demo_worker_main(void *arg);

/* ---- parse.c --------------------------------------------------------------------------- */

/* Parses 1*DIGIT into @out; anything else, or a value above @max, is -EINVAL. */
int demo_parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out);

/* Reads, frames and answers the next request in the input buffer. Returns 1 when one was
 * handled, 0 when more input is needed, -1 when it was bad (answered; c->closing is set). */
int demo_conn_handle_one(struct worker *w, struct conn *c);

/* ---- routes.c -------------------------------------------------------------------------- */

/* Answers one complete request: @head is its head (c->req.head_len bytes), @body its decoded
 * body. A /delay or generated answer may be left to the worker's timer or demo_gen_fill(). */
void demo_dispatch(struct worker *w, struct conn *c, const char *head, const char *body,
                   size_t body_len);

/* 200 with the server's name as the body: the answer to / and to a /delay that is due. */
void demo_respond_name(struct conn *c);

/* ---- output.c -------------------------------------------------------------------------- */

#define BODY_NONE (-2)    /* no Content-Length, no body: 204, 304 */
#define BODY_CHUNKED (-1) /* Transfer-Encoding: chunked */

/* Bytes of output not sent yet. */
size_t demo_out_pending(const struct conn *c);

/* Appends @n bytes to the output; when memory runs out, marks the connection broken instead. */
void demo_out_put(struct conn *c, const void *data, size_t n);

/* A status line and headers; @length is the body size, BODY_CHUNKED or BODY_NONE. */
void demo_respond_head(struct conn *c, int status, const char *ctype, int64_t length);

/* A whole response with a body held in memory; HEAD gets the same headers and no body. */
void demo_respond(struct conn *c, int status, const char *ctype, const void *body, size_t len);

/* demo_respond() with a text/plain @text. */
void demo_respond_text(struct conn *c, int status, const char *text);

/* An error about the request itself: answers @status with @why, then closes. */
void demo_respond_error(struct conn *c, int status, const char *why);

/* Produces the next slice of a /bytes or /chunked body (the last call ends a chunked one). */
void demo_gen_fill(struct conn *c);

/* Sends what it can. Returns bytes written (0 when the socket is full) or -errno when the
 * peer is gone. */
ssize_t demo_conn_flush(struct conn *c);

#endif
