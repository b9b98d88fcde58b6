/* bench-rate: an open-loop HTTP/1.1 load generator (what wrk2 does; Debian has no wrk2), for
 * tools/bench/ramp.sh. It offers a fixed rate whatever the server does, so an overloaded server
 * shows as latency and errors rather than as a client that politely slows down.
 *
 *   bench-rate -r RATE -d SECONDS [-c CONNS] [-t THREADS] [-m METHOD] [-H 'Name: value']...
 *              [-b BODY] [-T TIMEOUT_S] http://HOST:PORT/PATH
 *
 * Request k (k = 0 .. RATE x SECONDS - 1) is due at start + k / RATE and its latency runs from
 * that intended time to the end of its response, not from when it was written: a request that
 * waits because every keep-alive connection is busy is late, and its wait counts (no
 * coordinated omission). One request at a time per connection, no pipelining. A request still
 * unanswered TIMEOUT seconds after its intended time is a timeout: in flight, its connection
 * is closed and opened again; not yet written, it is never written. The run ends when every
 * request is answered or timed out. Responses are framed by Content-Length, chunked encoding
 * or the server's close; anything else that does not parse is an error and the connection is
 * closed. A connection that cannot connect is retried every 10 ms and each failure counted.
 *
 * Output, one JSON line on stdout: offered and achieved rates, requests scheduled, sent and
 * completed, a count per status code, errors by kind and latency percentiles in ms from a
 * log-linear histogram (1 us .. 60 s, 128 buckets per power of two: under 0.8% error).
 * Exit 0 after a run (whatever the server answered), 1 when the target cannot be resolved or
 * a thread cannot start, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tools/bench/rate.h"

#define HIST_SUB 128            /* buckets per power of two, above 2 x HIST_SUB us */
#define HIST_MAX_US 60000000ULL /* 60 s */
#define HIST_N (HIST_SUB * 20)  /* 2^26 us > 60 s */
#define RETRY_NS 10000000LL     /* between connect attempts */
#define SCAN_NS 1000000LL       /* between scans for timed-out requests */

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct conn {
    int fd;
    enum conn_state st;
    int64_t due;     /* intended time of the request in flight (ns) */
    int64_t retry;   /* CONN_DOWN: when to connect again */
    uint32_t events; /* what epoll watches for */
    size_t wrote;    /* bytes of the request written */
    size_t len;      /* bytes in buf */
    struct rate_rsp r;
    struct worker *w;
    char buf[RATE_BUF];
};

struct counts {
    uint64_t sent, completed, timeouts, unsent, err_connect, err_io, err_parse;
    uint64_t status[600];
    uint64_t hist[HIST_N];
    uint64_t max_us;
    int64_t last_ns; /* end of the last response */
};

struct opts {
    double rate, secs, timeout;
    int conns, threads;
    const char *req; /* the whole request, written again for each */
    size_t req_len;
    struct sockaddr_storage sa;
    socklen_t sa_len;
};

struct worker {
    const struct opts *o;
    int id, ep, nconn;
    struct conn *c;
    struct conn **idle;
    int nidle;
    uint64_t total, next; /* requests of this worker; the next one to send */
    int64_t start;
    struct counts k;
    pthread_t th;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Histogram: values below 2 x HIST_SUB us have a bucket each; above, each power of two is cut
 * into HIST_SUB buckets, so a bucket is never wider than 1/HIST_SUB of its values. */
static unsigned hist_index(uint64_t us)
{
    unsigned shift;
    if (us < 2 * HIST_SUB)
        return (unsigned)us;
    shift = (unsigned)(63 - __builtin_clzll(us)) - 7; /* 7 = log2(HIST_SUB) */
    return shift * HIST_SUB + (unsigned)(us >> shift);
}

/* The highest value that lands in bucket @i. */
static uint64_t hist_value(unsigned i)
{
    unsigned shift;
    if (i < 2 * HIST_SUB)
        return i;
    shift = i / HIST_SUB - 1;
    return (((uint64_t)(i % HIST_SUB + HIST_SUB) + 1) << shift) - 1;
}

static void hist_add(struct counts *k, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    if (us > HIST_MAX_US)
        us = HIST_MAX_US;
    if (us > k->max_us)
        k->max_us = us;
    k->hist[hist_index(us)]++;
}

/* The value in ms at or below which @p percent of the recorded values fall. */
static double hist_pct(const struct counts *k, uint64_t n, double p)
{
    uint64_t want = (uint64_t)(p / 100.0 * (double)n + 0.999999), seen = 0;
    if (n == 0)
        return 0;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += k->hist[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return (double)(v < k->max_us ? v : k->max_us) / 1000.0;
        }
    }
    return (double)k->max_us / 1000.0;
}

static void conn_close(struct conn *c, int64_t retry_at)
{
    struct worker *w = c->w;
    for (int i = 0; c->st == CONN_IDLE && i < w->nidle; i++)
        if (w->idle[i] == c)
            w->idle[i] = w->idle[--w->nidle];
    if (c->fd >= 0) {
        epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = CONN_DOWN;
    c->retry = retry_at;
    c->len = 0;
    c->r.st = RATE_RSP_HEAD;
}

/* Makes epoll watch @c for @events (EPOLLIN, EPOLLOUT). */
static void conn_want(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (c->events != events && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

static void conn_idle(struct conn *c)
{
    c->st = CONN_IDLE;
    c->w->idle[c->w->nidle++] = c;
}

/* Starts a non-blocking connect; the result comes as EPOLLOUT (or an error event). */
static void conn_open(struct conn *c, int64_t now)
{
    const struct opts *o = c->w->o;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->fd = socket(o->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->w->k.err_connect++;
        conn_close(c, now + RETRY_NS);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((connect(c->fd, (const struct sockaddr *)&o->sa, o->sa_len) < 0 && errno != EINPROGRESS) ||
        epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        c->w->k.err_connect++;
        conn_close(c, now + RETRY_NS);
        return;
    }
    c->events = EPOLLOUT;
    c->st = CONN_CONNECTING;
}

/* Writes what is left of the request; waits for EPOLLOUT when the socket is full. Returns 0,
 * or -1 after closing the connection on an error. */
static int conn_write(struct conn *c, int64_t now)
{
    const struct opts *o = c->w->o;
    uint32_t want = EPOLLIN;

    while (c->wrote < o->req_len) {
        ssize_t n = send(c->fd, o->req + c->wrote, o->req_len - c->wrote, MSG_NOSIGNAL);
        if (n > 0) {
            c->wrote += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            want |= EPOLLOUT;
            break;
        }
        c->w->k.err_io++;
        conn_close(c, now);
        return -1;
    }
    conn_want(c, want);
    return 0;
}

/* The response on @c ended: its latency counts from the request's intended time. */
static void conn_done(struct conn *c, int64_t now)
{
    struct counts *k = &c->w->k;
    k->completed++;
    k->status[c->r.status < 600 ? c->r.status : 0]++;
    hist_add(k, now - c->due);
    k->last_ns = now;
    if (c->r.close)
        conn_close(c, now);
    else
        conn_idle(c);
}

static void conn_read(struct conn *c, int64_t now)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, RATE_BUF - c->len, 0);
        size_t used;
        int rc;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 || c->st != CONN_BUSY) {
            /* EOF ends a response framed by the close; anything else loses the request. */
            if (n == 0 && c->st == CONN_BUSY && c->r.st == RATE_RSP_UNTIL_EOF)
                conn_done(c, now);
            else if (c->st == CONN_BUSY)
                c->w->k.err_io++;
            conn_close(c, now);
            return;
        }
        c->len += (size_t)n;
        rc = rate_rsp_feed(&c->r, c->buf, c->len, &used);
        if (rc < 0) {
            c->w->k.err_parse++;
            conn_close(c, now);
            return;
        }
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        if (rc == 1) {
            conn_done(c, now);
            if (c->len > 0) { /* bytes nobody asked for: the stream is out of step */
                c->w->k.err_parse++;
                conn_close(c, now);
            }
            return;
        }
    }
}

static void conn_event(struct conn *c, uint32_t events, int64_t now)
{
    if (c->st == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err ||
            (events & (EPOLLERR | EPOLLHUP))) {
            c->w->k.err_connect++;
            conn_close(c, now + RETRY_NS);
            return;
        }
        conn_want(c, EPOLLIN);
        conn_idle(c);
        return;
    }
    if ((events & EPOLLOUT) && c->st == CONN_BUSY && conn_write(c, now) < 0)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(c, now);
}

static int64_t due_of(const struct worker *w, uint64_t j)
{
    double k = (double)j * w->o->threads + w->id;
    return w->start + (int64_t)(k / w->o->rate * 1e9);
}

/* Times out requests: in flight too long (the connection goes) or never written in time. */
static void expire(struct worker *w, int64_t now)
{
    int64_t limit = (int64_t)(w->o->timeout * 1e9);
    for (int i = 0; i < w->nconn; i++) {
        struct conn *c = &w->c[i];
        if (c->st == CONN_BUSY && now - c->due > limit) {
            w->k.timeouts++;
            conn_close(c, now);
        }
    }
    while (w->next < w->total && now - due_of(w, w->next) > limit) {
        w->k.unsent++;
        w->next++;
    }
}

/* Sends every request now due on an idle connection; opens connections due again. Returns the
 * time of the next thing to do when nothing else happens. */
static int64_t dispatch(struct worker *w, int64_t now)
{
    int64_t wake = now + SCAN_NS;
    for (int i = 0; i < w->nconn; i++) {
        struct conn *c = &w->c[i];
        if (c->st == CONN_DOWN && c->retry <= now)
            conn_open(c, now);
        if (c->st == CONN_DOWN && c->retry < wake)
            wake = c->retry;
    }
    while (w->next < w->total && w->nidle > 0) {
        int64_t due = due_of(w, w->next);
        struct conn *c;
        if (due > now) {
            if (due < wake)
                wake = due;
            break;
        }
        c = w->idle[--w->nidle];
        if (c->st != CONN_IDLE) /* closed while idle */
            continue;
        c->st = CONN_BUSY;
        c->due = due;
        c->wrote = 0;
        w->next++;
        w->k.sent++;
        conn_write(c, now);
    }
    return wake;
}

static int busy(const struct worker *w)
{
    for (int i = 0; i < w->nconn; i++)
        if (w->c[i].st == CONN_BUSY)
            return 1;
    return 0;
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    int64_t scan = 0;

    for (int i = 0; i < w->nconn; i++) {
        w->c[i].w = w;
        w->c[i].fd = -1;
        conn_close(&w->c[i], 0);
    }
    for (;;) {
        int64_t now = now_ns(), wake;
        struct timespec ts;
        int n;
        if (now >= scan) {
            expire(w, now);
            scan = now + SCAN_NS;
        }
        wake = dispatch(w, now);
        if (w->next >= w->total && !busy(w))
            break;
        if (wake > scan)
            wake = scan;
        wake -= now_ns();
        if (wake < 0)
            wake = 0;
        ts.tv_sec = wake / 1000000000LL;
        ts.tv_nsec = wake % 1000000000LL;
        n = epoll_pwait2(w->ep, evs, 64, &ts, NULL);
        if (n < 0 && errno == ENOSYS)
            n = epoll_wait(w->ep, evs, 64, (int)((wake + 999999) / 1000000));
        now = now_ns();
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    for (int i = 0; i < w->nconn; i++)
        conn_close(&w->c[i], 0);
    return NULL;
}

static void merge(struct counts *t, const struct counts *k)
{
    t->sent += k->sent, t->completed += k->completed, t->timeouts += k->timeouts;
    t->unsent += k->unsent, t->err_connect += k->err_connect, t->err_io += k->err_io;
    t->err_parse += k->err_parse;
    for (int i = 0; i < 600; i++)
        t->status[i] += k->status[i];
    for (int i = 0; i < HIST_N; i++)
        t->hist[i] += k->hist[i];
    if (k->max_us > t->max_us)
        t->max_us = k->max_us;
    if (k->last_ns > t->last_ns)
        t->last_ns = k->last_ns;
}

static void report(const struct opts *o, const struct counts *t, uint64_t total, int64_t start)
{
    double secs = t->last_ns > start ? (double)(t->last_ns - start) / 1e9 : 0;
    const char *sep = "";

    if (secs < o->secs)
        secs = o->secs;
    printf("{\"offered_rps\":%.1f,\"duration_s\":%.3f,\"connections\":%d,\"threads\":%d,"
           "\"scheduled\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"completed\":%" PRIu64
           ",\"achieved_rps\":%.1f,\"status\":{",
           o->rate, o->secs, o->conns, o->threads, total, t->sent, t->completed,
           (double)t->completed / secs);
    for (int i = 0; i < 600; i++)
        if (t->status[i]) {
            printf("%s\"%d\":%" PRIu64, sep, i, t->status[i]);
            sep = ",";
        }
    printf("},\"errors\":{\"connect\":%" PRIu64 ",\"io\":%" PRIu64 ",\"parse\":%" PRIu64
           ",\"timeout\":%" PRIu64 ",\"unsent\":%" PRIu64 "},",
           t->err_connect, t->err_io, t->err_parse, t->timeouts, t->unsent);
    printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f}}\n",
           hist_pct(t, t->completed, 50), hist_pct(t, t->completed, 90),
           hist_pct(t, t->completed, 99), hist_pct(t, t->completed, 99.9),
           (double)t->max_us / 1000.0);
}

/* Starts the workers, waits for them, prints the report. Returns the exit status. */
static int run(struct opts *o)
{
    uint64_t total = (uint64_t)(o->rate * o->secs + 0.5);
    struct worker *ws = calloc((size_t)o->threads, sizeof(*ws));
    struct counts *t = calloc(1, sizeof(*t));
    int64_t start = now_ns() + 20000000LL; /* every thread starts at the same moment */
    int rc = 0, started = 0;

    for (int i = 0; ws && t && i < o->threads; i++) {
        struct worker *w = &ws[i];
        w->o = o, w->id = i, w->start = start;
        w->total = total / (uint64_t)o->threads + ((uint64_t)i < total % (uint64_t)o->threads);
        w->nconn = o->conns / o->threads + (i < o->conns % o->threads);
        w->c = calloc((size_t)w->nconn, sizeof(*w->c));
        w->idle = calloc((size_t)w->nconn, sizeof(*w->idle));
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w->c || !w->idle || w->ep < 0 || pthread_create(&w->th, NULL, worker_run, w) != 0) {
            fprintf(stderr, "bench-rate: cannot start thread %d: %s\n", i, strerror(errno));
            rc = 1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        merge(t, &ws[i].k);
    }
    if (rc == 0)
        report(o, t, total, start);
    for (int i = 0; ws && i < o->threads; i++) {
        free(ws[i].c);
        free(ws[i].idle);
        if (ws[i].ep > 0)
            close(ws[i].ep);
    }
    free(ws);
    free(t);
    return rc;
}

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "bench-rate: %s\n", why);
    fprintf(stderr, "usage: bench-rate -r RATE -d SECONDS [-c CONNS] [-t THREADS] [-m METHOD]\n"
                    "                  [-H 'Name: value']... [-b BODY] [-T TIMEOUT_S]"
                    " http://HOST:PORT/PATH\n");
    return 2;
}

/* Splits http://HOST[:PORT][/PATH] and resolves HOST. Returns 0, 2 (bad URL) or 1. */
static int target(struct opts *o, const char *url, char *host, size_t hsz, const char **path)
{
    const char *h = url + 7, *slash, *colon;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char port[8] = "80";
    int rc;

    if (strncmp(url, "http://", 7) != 0)
        return 2;
    slash = strchr(h, '/');
    *path = slash ? slash : "/";
    if (!slash)
        slash = h + strlen(h);
    if ((size_t)(slash - h) >= hsz || slash == h)
        return 2;
    memcpy(host, h, (size_t)(slash - h));
    host[slash - h] = '\0';
    colon = strrchr(host, ':');
    if (colon) {
        if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port) ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1))
            return 2;
        strcpy(port, colon + 1);
    }
    if (colon)
        host[colon - host] = '\0';
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        fprintf(stderr, "bench-rate: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    memcpy(&o->sa, ai->ai_addr, ai->ai_addrlen);
    o->sa_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (colon)
        host[strlen(host)] = ':'; /* the Host header keeps the port */
    return 0;
}

/* Builds the request every connection writes: method, path, Host (unless given), headers,
 * Content-Length when there is a body or the method is POST or PUT. */
static char *request(const char *method, const char *host, const char *path, char **hdrs, int nh,
                     const char *body, size_t *len)
{
    size_t cap = strlen(method) + strlen(host) + strlen(path) + 128 + (body ? strlen(body) : 0);
    int has_host = 0, need_len = body || !strcmp(method, "POST") || !strcmp(method, "PUT");
    char *r, *p;

    for (int i = 0; i < nh; i++) {
        cap += strlen(hdrs[i]) + 2;
        has_host |= strncasecmp(hdrs[i], "host:", 5) == 0;
    }
    if (!(r = malloc(cap)))
        return NULL;
    p = r + sprintf(r, "%s %s HTTP/1.1\r\n", method, path);
    if (!has_host)
        p += sprintf(p, "Host: %s\r\n", host);
    for (int i = 0; i < nh; i++)
        p += sprintf(p, "%s\r\n", hdrs[i]);
    if (need_len)
        p += sprintf(p, "Content-Length: %zu\r\n", body ? strlen(body) : 0);
    p += sprintf(p, "\r\n%s", body ? body : "");
    *len = (size_t)(p - r);
    return r;
}

static int num(const char *s, double lo, double hi, double *out)
{
    char *e;
    errno = 0;
    *out = strtod(s, &e);
    return errno || e == s || *e || !(*out >= lo && *out <= hi) ? -1 : 0;
}

struct args {
    const char *method, *body;
    char *hdrs[64];
    int nh;
};

/* Takes option @opt with @arg into @o or @a. Returns 0, or 2 after a usage message. */
static int option(struct opts *o, struct args *a, int opt, char *arg)
{
    double v;
    switch (opt) {
    case 'r':
        return num(arg, 1, 1e7, &o->rate) ? usage("-r: a rate from 1 to 10000000") : 0;
    case 'd':
        return num(arg, 0.1, 86400, &o->secs) ? usage("-d: seconds, 0.1 to 86400") : 0;
    case 'T':
        return num(arg, 0.001, 60, &o->timeout) ? usage("-T: seconds, 0.001 to 60") : 0;
    case 'c':
    case 't':
        if (num(arg, 1, opt == 'c' ? 100000 : 256, &v) || v != (int)v)
            return usage(opt == 'c' ? "-c: 1 to 100000" : "-t: 1 to 256");
        *(opt == 'c' ? &o->conns : &o->threads) = (int)v;
        return 0;
    case 'm':
        /* A response to HEAD has a Content-Length and no body: we could not frame it. */
        if (!*arg || strpbrk(arg, " \t\r\n") || !strcmp(arg, "HEAD"))
            return usage("-m: a method other than HEAD");
        a->method = arg;
        return 0;
    case 'b':
        a->body = arg;
        return 0;
    case 'H':
        if (a->nh == 64 || !strchr(arg, ':') || strpbrk(arg, "\r\n"))
            return usage("-H: 'Name: value', at most 64 of them");
        a->hdrs[a->nh++] = arg;
        return 0;
    default:
        return usage(NULL);
    }
}

int main(int argc, char **argv)
{
    struct opts o = {.conns = 64, .threads = 1, .timeout = 5};
    struct args a = {.method = "GET"};
    const char *path;
    char host[256], *req;
    int opt, rc;

    while ((opt = getopt(argc, argv, "r:d:c:t:m:H:b:T:")) != -1)
        if (option(&o, &a, opt, optarg) != 0)
            return 2;
    if (optind != argc - 1)
        return usage("one URL, after the options");
    if (o.rate == 0 || o.secs == 0)
        return usage("-r and -d are required");
    if (o.threads > o.conns)
        return usage("-t: at most one thread per connection");
    if ((rc = target(&o, argv[optind], host, sizeof(host), &path)) != 0)
        return rc == 2 ? usage("the URL: http://HOST[:PORT][/PATH]") : rc;
    if (!(req = request(a.method, host, path, a.hdrs, a.nh, a.body, &o.req_len)))
        return 1;
    o.req = req;
    signal(SIGPIPE, SIG_IGN);
    rc = run(&o);
    free(req);
    return rc;
}
