/* bench-floor: the cheapest HTTP/1.1 server this machine can run, as the floor every figure
 * of tools/bench/floor.sh is divided by. It answers every request on a keep-alive connection
 * with the same fixed response (a 100-byte body, as l7_http.sh's origin) and does nothing
 * else: it finds the end of each request header and writes the response, no parsing, no
 * routing, no logging, one thread.
 *
 *   bench-floor uring PORT    io_uring: multishot accept, one recv and one send in flight
 *                             per connection, one io_uring_submit_and_wait per loop turn
 *   bench-floor epoll PORT    epoll: level-triggered, read(2) then write(2) per wakeup
 *   bench-floor uring PORT FILE   the same io_uring server answering with FILE's bytes as the
 *                             body (application/json), for the static benchmark
 *   bench-floor proxy PORT ORIGIN_PORT
 *                             the cheapest proxy: io_uring, each client connection paired with
 *                             a connection of its own to 127.0.0.1:ORIGIN_PORT, bytes passed
 *                             through untouched both ways: a multishot recv per socket into
 *                             a provided-buffer ring (as lb does), each piece sent to the
 *                             peer as it came, one send in flight per direction; no parsing
 *                             at all: what any proxy must spend at least, here, for the
 *                             same traffic
 *
 * Listens on 127.0.0.1:PORT until SIGTERM or SIGINT. Pipelined requests are answered in one
 * write. Exit 0 on a signal, 1 on an error (on stderr), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define BUF 16384
#define QMAX PBUFS     /* proxy: pieces queued per direction (every buffer, at worst) */
#define PBUFS 4096     /* proxy: provided buffers */
#define PBUF_SIZE 4096 /* proxy: bytes each */

static const char fixed_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
    "lb-bench: L7 keep-alive benchmark; a small, fixed body of exactly one hundred bytes "
    "through a proxy.";
static const char *response = fixed_response;
static size_t response_len = sizeof(fixed_response) - 1;

struct conn {
    int fd;
    int peer;       /* proxy: the other connection of the pair; -1 otherwise */
    uint32_t state; /* the last bytes seen, to find CRLFCRLF across reads */
    /* proxy: pieces received, waiting for the send in flight to the peer (a FIFO of
     * buffer ids and lengths); the head is the one being sent, @off of it sent so far */
    uint16_t q_bid[QMAX];
    uint16_t q_len[QMAX];
    uint32_t q_head, q_n, off;
    bool starved; /* proxy: its recv ended for want of buffers; armed again when one is back */
    bool eof;     /* proxy: the end of its stream came: the pair closes once the queue is sent */
    char in[BUF];
    char out[BUF];
};

static struct conn *conns[MAX_CONNS];
static volatile sig_atomic_t stop;

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

/* Counts the requests that end in @p[0..n) (CRLFCRLF), across calls. */
static unsigned requests_in(struct conn *c, const char *p, size_t n)
{
    unsigned k = 0;
    uint32_t s = c->state;
    for (size_t i = 0; i < n; i++) {
        s = (s << 8) | (uint8_t)p[i];
        if (s == 0x0d0a0d0a) {
            k++;
            s = 0;
        }
    }
    c->state = s;
    return k;
}

/* The answers to @k requests in c->out; their length (at most what fits). */
static size_t answers(struct conn *c, unsigned k)
{
    size_t one = response_len, len = 0;
    for (unsigned i = 0; i < k && len + one <= sizeof(c->out); i++, len += one)
        memcpy(c->out + len, response, one);
    return len;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        perror("bench-floor: listen");
        exit(1);
    }
    return fd;
}

static struct conn *conn_new(int fd)
{
    if (fd < 0 || fd >= MAX_CONNS) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct conn *c = conns[fd] ? conns[fd] : malloc(sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->peer = -1;
    c->state = 0;
    conns[fd] = c;
    return c;
}

/* ---- epoll ---- */

static int run_epoll(int lfd)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, evs[256];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("bench-floor: epoll");
        return 1;
    }
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 500);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                struct conn *c = conn_new(accept4(lfd, NULL, NULL, SOCK_NONBLOCK));
                ev = (struct epoll_event){.events = EPOLLIN, .data.fd = c ? c->fd : -1};
                if (c)
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                continue;
            }
            struct conn *c = conns[fd];
            ssize_t r = read(fd, c->in, sizeof(c->in));
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                close(fd); /* also leaves the epoll set */
                continue;
            }
            size_t len = answers(c, requests_in(c, c->in, (size_t)r));
            if (len && write(fd, c->out, len) != (ssize_t)len)
                close(fd); /* a full socket buffer: the floor does not queue */
        }
    }
    return 0;
}

/* ---- io_uring ---- */

enum { OP_ACCEPT, OP_RECV, OP_SEND };

static uint64_t ud(int op, int fd)
{
    return (uint64_t)op << 48 | (uint32_t)fd;
}

/* An SQE, submitting what is queued when the SQ is full. */
static struct io_uring_sqe *get_sqe(struct io_uring *r)
{
    struct io_uring_sqe *s;
    while (!(s = io_uring_get_sqe(r)))
        io_uring_submit(r);
    return s;
}

static void prep_recv(struct io_uring *r, struct conn *c)
{
    struct io_uring_sqe *s = get_sqe(r);
    io_uring_prep_recv(s, c->fd, c->in, sizeof(c->in), 0);
    s->user_data = ud(OP_RECV, c->fd);
}

static void prep_accept(struct io_uring *r, int lfd)
{
    struct io_uring_sqe *s = get_sqe(r);
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
    s->user_data = ud(OP_ACCEPT, lfd);
}

static void on_cqe(struct io_uring *r, int lfd, const struct io_uring_cqe *cqe)
{
    int op = (int)(cqe->user_data >> 48), fd = (int)(uint32_t)cqe->user_data;
    if (op == OP_ACCEPT) {
        struct conn *c = cqe->res >= 0 ? conn_new(cqe->res) : NULL;
        if (c)
            prep_recv(r, c);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            prep_accept(r, lfd);
        return;
    }
    struct conn *c = conns[fd];
    if (cqe->res <= 0) {
        close(fd);
        return;
    }
    if (op == OP_SEND) {
        prep_recv(r, c);
        return;
    }
    size_t len = answers(c, requests_in(c, c->in, (size_t)cqe->res));
    if (!len) {
        prep_recv(r, c);
        return;
    }
    struct io_uring_sqe *s = get_sqe(r);
    io_uring_prep_send(s, fd, c->out, len, 0);
    s->user_data = ud(OP_SEND, fd);
}

/* ---- proxy ---- */

static int origin_port;
static struct io_uring_buf_ring *pring;
static char *pbufs;

/* A connection to the origin for client @c, paired with it; false (and @c closed) when the
 * origin cannot be reached. A blocking connect: it happens once per client connection, when
 * wrk opens its connections, not per request. */
static bool pair(struct conn *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)origin_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd >= 0 && (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
                    connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)) {
        close(fd);
        fd = -1;
    }
    struct conn *o = conn_new(fd);
    if (!o) {
        close(c->fd);
        return false;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->peer = o->fd;
    o->peer = c->fd;
    c->q_n = o->q_n = c->q_head = o->q_head = c->off = o->off = 0;
    c->starved = o->starved = c->eof = o->eof = false;
    return true;
}

static int starved[MAX_CONNS]; /* fds whose recv waits for a buffer */
static int nstarved;
static void arm_recv(struct io_uring *r, struct conn *c);

/* Gives buffer @bid back to the ring, and a connection that stopped receiving for want of
 * buffers its recv back: the back-pressure of a slow reader on a fast writer. */
static void buf_put(struct io_uring *r, uint16_t bid)
{
    io_uring_buf_ring_add(pring, pbufs + (size_t)bid * PBUF_SIZE, PBUF_SIZE, bid,
                          io_uring_buf_ring_mask(PBUFS), 0);
    io_uring_buf_ring_advance(pring, 1);
    while (nstarved) {
        struct conn *c = conns[starved[--nstarved]];
        if (c && c->starved && c->peer >= 0) {
            c->starved = false;
            arm_recv(r, c);
            break;
        }
    }
}

static uint64_t ud_buf(int op, uint16_t bid, int fd)
{
    return (uint64_t)op << 48 | (uint64_t)bid << 32 | (uint32_t)fd;
}

static void arm_recv(struct io_uring *r, struct conn *c)
{
    struct io_uring_sqe *s = get_sqe(r);
    io_uring_prep_recv_multishot(s, c->fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = 0;
    s->user_data = ud_buf(OP_RECV, 0, c->fd);
}

/* Sends the rest of the head piece of @c's queue to its peer. */
static void send_head(struct io_uring *r, struct conn *c)
{
    uint16_t bid = c->q_bid[c->q_head];
    struct io_uring_sqe *s = get_sqe(r);
    io_uring_prep_send(s, c->peer, pbufs + (size_t)bid * PBUF_SIZE + c->off,
                       c->q_len[c->q_head] - c->off, 0);
    s->user_data = ud_buf(OP_SEND, bid, c->fd);
}

/* Closes both connections of a pair, giving back the buffers queued but not in flight (the
 * one in flight comes back with its send's completion). */
static void unpair(struct io_uring *r, struct conn *c)
{
    struct conn *pr[2] = {c, c->peer >= 0 ? conns[c->peer] : NULL};
    for (int k = 0; k < 2 && pr[k]; k++) {
        struct conn *x = pr[k];
        for (uint32_t i = 1; i < x->q_n; i++)
            buf_put(r, x->q_bid[(x->q_head + i) % QMAX]);
        x->q_n = 0;
        x->peer = -1;
        x->starved = x->eof = false;
        close(x->fd);
    }
}

static void on_proxy_cqe(struct io_uring *r, int lfd, const struct io_uring_cqe *cqe)
{
    int op = (int)(cqe->user_data >> 48), fd = (int)(uint32_t)cqe->user_data;
    if (op == OP_ACCEPT) {
        struct conn *c = cqe->res >= 0 ? conn_new(cqe->res) : NULL;
        if (c && pair(c)) {
            arm_recv(r, c);
            arm_recv(r, conns[c->peer]);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE))
            prep_accept(r, lfd);
        return;
    }
    struct conn *c = conns[fd];
    if (op == OP_SEND) {
        uint16_t bid = (uint16_t)(cqe->user_data >> 32);
        if (!c || c->peer < 0 || cqe->res <= 0) {
            buf_put(r, bid);
            if (c && c->peer >= 0)
                unpair(r, c);
            return;
        }
        c->off += (uint32_t)cqe->res;
        if (c->off < c->q_len[c->q_head]) {
            send_head(r, c);
            return;
        }
        buf_put(r, bid);
        c->q_head = (c->q_head + 1) % QMAX;
        c->off = 0;
        if (--c->q_n)
            send_head(r, c);
        else if (c->eof)
            unpair(r, c);
        return;
    }
    bool live = c && c->peer >= 0;
    if ((cqe->flags & IORING_CQE_F_BUFFER) && (!live || cqe->res <= 0))
        buf_put(r, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    if (!live)
        return;
    if (cqe->res > 0) {
        uint32_t t = (c->q_head + c->q_n) % QMAX;
        c->q_bid[t] = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        c->q_len[t] = (uint16_t)cqe->res;
        if (c->q_n++ == 0) {
            c->off = 0;
            send_head(r, c);
        }
    } else if (cqe->res == -ENOBUFS) {
        c->starved = true; /* every buffer is queued: wait until a send gives one back */
        starved[nstarved++] = c->fd;
        return;
    } else {
        if (cqe->res == 0 && c->q_n)
            c->eof = true; /* the end of the stream: what is queued goes first */
        else
            unpair(r, c); /* the end of the stream, or an error */
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_recv(r, c);
}

/* The provided-buffer ring of the proxy: PBUFS buffers of PBUF_SIZE bytes, group 0. */
static int setup_pring(struct io_uring *r)
{
    size_t sz = PBUFS * sizeof(struct io_uring_buf);
    pring = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pbufs = malloc((size_t)PBUFS * PBUF_SIZE);
    if (pring == MAP_FAILED || !pbufs)
        return -ENOMEM;
    io_uring_buf_ring_init(pring);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)pring, .ring_entries = PBUFS, .bgid = 0};
    int rc = io_uring_register_buf_ring(r, &reg, 0);
    if (rc < 0)
        return rc;
    for (uint16_t b = 0; b < PBUFS; b++)
        io_uring_buf_ring_add(pring, pbufs + (size_t)b * PBUF_SIZE, PBUF_SIZE, b,
                              io_uring_buf_ring_mask(PBUFS), b);
    io_uring_buf_ring_advance(pring, PBUFS);
    return 0;
}

static int run_loop(int lfd, void (*on)(struct io_uring *, int, const struct io_uring_cqe *))
{
    struct io_uring r;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (io_uring_queue_init_params(4096, &r, &p) < 0 && io_uring_queue_init(4096, &r, 0) < 0) {
        fprintf(stderr, "bench-floor: io_uring_queue_init failed\n");
        return 1;
    }
    if (on == on_proxy_cqe && setup_pring(&r) < 0) {
        fprintf(stderr, "bench-floor: cannot register the buffer ring\n");
        return 1;
    }
    prep_accept(&r, lfd);
    while (!stop) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 500000000};
        io_uring_submit_and_wait_timeout(&r, &cqe, 1, &ts, NULL);
        unsigned head, n = 0;
        io_uring_for_each_cqe(&r, head, cqe)
        {
            on(&r, lfd, cqe);
            n++;
        }
        io_uring_cq_advance(&r, n);
    }
    io_uring_queue_exit(&r);
    return 0;
}

/* The fixed response with FILE's bytes as its body; false when FILE cannot be read or is
 * too big for one response buffer. */
static bool load_body(const char *path)
{
    static char buf[BUF];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char body[BUF];
    size_t n = fread(body, 1, sizeof(body), f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    if (!whole)
        return false;
    int h = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n\r\n",
                     n);
    if (h < 0 || (size_t)h + n > sizeof(buf))
        return false;
    memcpy(buf + h, body, n);
    response = buf;
    response_len = (size_t)h + n;
    return true;
}

static int port_arg(const char *s)
{
    int p = atoi(s);
    return p > 0 && p <= 65535 ? p : 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    bool ok = (argc == 3 && (!strcmp(mode, "uring") || !strcmp(mode, "epoll"))) ||
              (argc == 4 && (!strcmp(mode, "uring") || !strcmp(mode, "proxy")));
    if (!ok || !port_arg(argv[2]) || (!strcmp(mode, "proxy") && !port_arg(argv[3]))) {
        fprintf(stderr, "usage: bench-floor uring|epoll PORT | uring PORT BODY_FILE | "
                        "proxy PORT ORIGIN_PORT\n");
        return 2;
    }
    if (argc == 4 && !strcmp(mode, "uring") && !load_body(argv[3])) {
        fprintf(stderr, "bench-floor: cannot use %s as a body (unreadable, or over %d bytes)\n",
                argv[3], BUF - 128);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_on(port_arg(argv[2]));
    if (!strcmp(mode, "proxy")) {
        origin_port = port_arg(argv[3]);
        return run_loop(lfd, on_proxy_cqe);
    }
    return strcmp(mode, "uring") ? run_epoll(lfd) : run_loop(lfd, on_cqe);
}
