/*
 * Blocking HTTP/1.1 delivery over one keep-alive connection (see http.h). Timeouts: connect
 * by poll(), then SO_SNDTIMEO/SO_RCVTIMEO on every send and receive.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tools/lbq/http.h"

int lbq_url_parse(struct lbq_url *u, const char *s, struct lb_err *err)
{
    memset(u, 0, sizeof(*u));
    if (strncasecmp(s, "http://", 7) != 0) {
        lb_err_set(err, "%s: only http:// URLs are supported", s);
        return -EINVAL;
    }
    const char *a = s + 7, *slash = strchr(a, '/');
    size_t alen = slash ? (size_t)(slash - a) : strlen(a);
    if (!alen || alen >= sizeof(u->authority) || memchr(a, '@', alen)) {
        lb_err_set(err, "%s: bad host", s);
        return -EINVAL;
    }
    memcpy(u->authority, a, alen);
    const char *colon = strrchr(u->authority, ':'), *host = u->authority;
    size_t hlen = colon ? (size_t)(colon - host) : alen;
    if (u->authority[0] == '[') { /* [v6]:port */
        const char *close = strchr(u->authority, ']');
        if (!close || (close[1] && close[1] != ':')) {
            lb_err_set(err, "%s: bad IPv6 address", s);
            return -EINVAL;
        }
        host++;
        hlen = (size_t)(close - host);
        colon = close[1] ? close + 1 : NULL;
    }
    long port = 80;
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || port < 1 || port > 65535) {
            lb_err_set(err, "%s: bad port", s);
            return -EINVAL;
        }
    }
    if (!hlen || hlen >= sizeof(u->host)) {
        lb_err_set(err, "%s: bad host", s);
        return -EINVAL;
    }
    memcpy(u->host, host, hlen);
    snprintf(u->port, sizeof(u->port), "%ld", port);
    size_t plen = slash ? strlen(slash) : 0;
    while (plen && slash[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(u->path) || (slash && strpbrk(slash, " \t\r\n?#"))) {
        lb_err_set(err, "%s: bad path (no query, no spaces, under 1 KiB)", s);
        return -EINVAL;
    }
    if (plen)
        memcpy(u->path, slash, plen);
    return 0;
}

void lbq_http_init(struct lbq_http *h, const struct lbq_url *u, int timeout_ms)
{
    h->url = u;
    h->fd = -1;
    h->timeout_ms = timeout_ms;
    h->rlen = 0;
}

void lbq_http_close(struct lbq_http *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->rlen = 0;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        rc = poll(&p, 1, timeout_ms);
        if (rc == 0)
            errno = ETIMEDOUT;
        else if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            errno = soerr;
        rc = rc > 0 && soerr == 0 ? 0 : -1;
    }
    if (rc < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int one = 1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static int http_connect(struct lbq_http *h, struct lb_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(h->url->host, h->url->port, &hints, &res);
    if (rc) {
        lb_err_set(err, "%s: %s", h->url->host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    int fd = -ENOENT;
    for (ai = res; ai; ai = ai->ai_next)
        if ((fd = connect_one(ai, h->timeout_ms)) >= 0)
            break;
    freeaddrinfo(res);
    if (fd < 0) {
        lb_err_set(err, "connect %s: %s", h->url->authority, strerror(-fd));
        return fd;
    }
    h->fd = fd;
    h->rlen = 0;
    return 0;
}

/* Headers lbq writes itself, or that describe the hop from the client to lb. */
static bool hop_header(const char *n, size_t len)
{
    static const char *const skip[] = {
        "host",    "content-length", "transfer-encoding", "connection", "keep-alive", "te",
        "trailer", "upgrade",        "proxy-connection",  "expect",     "x-lbq-id",   "x-lbq-try"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strlen(skip[i]) == len && !strncasecmp(skip[i], n, len))
            return true;
    return false;
}

/* The request head in a malloc'd buffer (*@out, length returned), or -ENOMEM. */
static long build_head(const struct lbq_http *h, const struct lbq_entry *e, unsigned attempt,
                       char **out)
{
    size_t cap = 1024 + strlen(h->url->path) + strlen(e->uri) + strlen(e->id);
    for (size_t i = 0; i < e->nheaders; i++)
        cap += e->headers[i].name_len + e->headers[i].value_len + 4;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    size_t n = (size_t)snprintf(b, cap, "%s %s%s HTTP/1.1\r\nHost: %s\r\n", e->method, h->url->path,
                                e->uri, h->url->authority);
    for (size_t i = 0; i < e->nheaders; i++) {
        const struct lbq_header *x = &e->headers[i];
        if (hop_header(x->name, x->name_len))
            continue;
        memcpy(b + n, x->name, x->name_len);
        n += x->name_len;
        memcpy(b + n, ": ", 2);
        memcpy(b + n + 2, x->value, x->value_len);
        n += 2 + x->value_len;
        memcpy(b + n, "\r\n", 2);
        n += 2;
    }
    n += (size_t)snprintf(b + n, cap - n,
                          "X-Lbq-Id: %s\r\nX-Lbq-Try: %u\r\nContent-Length: %zu\r\n\r\n", e->id,
                          attempt, e->body_len);
    *out = b;
    return (long)n;
}

static int send_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads more into rbuf. >0: bytes read; 0: EOF; -errno (-ETIMEDOUT, -ENOBUFS when full). */
static int fill(struct lbq_http *h)
{
    if (h->rlen == sizeof(h->rbuf))
        return -ENOBUFS;
    for (;;) {
        ssize_t r = recv(h->fd, h->rbuf + h->rlen, sizeof(h->rbuf) - h->rlen, 0);
        if (r >= 0) {
            h->rlen += (size_t)r;
            return (int)r;
        }
        if (errno != EINTR)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
}

static void consume(struct lbq_http *h, size_t n)
{
    memmove(h->rbuf, h->rbuf + n, h->rlen - n);
    h->rlen -= n;
}

/* Waits until rbuf holds a line (ending in CRLF); returns its length with the CRLF. */
static long get_line(struct lbq_http *h)
{
    for (;;) {
        char *nl = memmem(h->rbuf, h->rlen, "\r\n", 2);
        if (nl)
            return nl - h->rbuf + 2;
        int r = fill(h);
        if (r <= 0)
            return r ? r : -ECONNRESET;
    }
}

/* Drops @n body bytes. */
static int discard(struct lbq_http *h, unsigned long long n)
{
    while (n) {
        if (!h->rlen) {
            int r = fill(h);
            if (r <= 0)
                return r ? r : -ECONNRESET;
        }
        size_t k = h->rlen < n ? h->rlen : (size_t)n;
        consume(h, k);
        n -= k;
    }
    return 0;
}

static int read_chunked(struct lbq_http *h)
{
    for (;;) {
        long l = get_line(h);
        if (l < 0)
            return (int)l;
        char *end;
        unsigned long long sz = strtoull(h->rbuf, &end, 16);
        if (end == h->rbuf || (*end != '\r' && *end != ';') || sz > (1ULL << 40))
            return -EPROTO;
        consume(h, (size_t)l);
        if (sz == 0)
            break;
        int rc = discard(h, sz + 2);
        if (rc < 0)
            return rc;
    }
    for (;;) { /* trailers, then the empty line */
        long l = get_line(h);
        if (l < 0)
            return (int)l;
        consume(h, (size_t)l);
        if (l == 2)
            return 0;
    }
}

struct resp {
    int status;
    bool chunked, has_length, close;
    unsigned long long length;
};

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    *value = v;
    return true;
}

/* Parses the head at rbuf (@hlen bytes, ending in an empty line, NUL put in its place). */
static int parse_head(struct lbq_http *h, size_t hlen, struct resp *r)
{
    char *p = h->rbuf, *end = h->rbuf + hlen;
    memset(r, 0, sizeof(*r));
    if (memchr(p, '\0', hlen - 1))
        return -EPROTO; /* the string functions below must see the whole head */
    if (hlen < 14 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r'))
        return -EPROTO;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->close = p[7] == '0';
    p = strstr(p, "\r\n") + 2;
    while (p < end - 2) {
        char *eol = strstr(p, "\r\n");
        const char *v;
        if (!eol)
            return -EPROTO;
        size_t len = (size_t)(eol - p);
        *eol = '\0';
        if (header_is(p, len, "content-length", &v)) {
            char *e;
            if (*v < '0' || *v > '9')
                return -EPROTO;
            unsigned long long cl = strtoull(v, &e, 10);
            while (*e == ' ' || *e == '\t')
                e++;
            if (*e || (r->has_length && cl != r->length))
                return -EPROTO;
            r->has_length = true;
            r->length = cl;
        } else if (header_is(p, len, "transfer-encoding", &v)) {
            r->chunked = strcasestr(v, "chunked") != NULL;
            if (!r->chunked)
                return -EPROTO; /* another coding: length unknown to us */
        } else if (header_is(p, len, "connection", &v)) {
            r->close |= strcasestr(v, "close") != NULL;
        }
        p = eol + 2;
    }
    return 0;
}

/* Reads one response head into @r and consumes it; 1xx heads are skipped. */
static int read_head(struct lbq_http *h, struct resp *r, bool *got_any)
{
    for (;;) {
        char *blank;
        while (!(blank = memmem(h->rbuf, h->rlen, "\r\n\r\n", 4))) {
            int n = fill(h);
            if (n <= 0)
                return n ? n : -ECONNRESET;
            *got_any = true;
        }
        size_t hlen = (size_t)(blank - h->rbuf) + 4;
        h->rbuf[hlen - 1] = '\0'; /* strstr stops inside the head */
        int rc = parse_head(h, hlen, r);
        consume(h, hlen);
        if (rc < 0)
            return rc;
        if (r->status >= 200 || r->status == 101)
            return 0;
    }
}

static int exchange(struct lbq_http *h, const struct lbq_entry *e, const char *head, size_t hlen,
                    bool *got_any, struct resp *r)
{
    struct iovec iov[2] = {{(void *)head, hlen}, {e->body, e->body_len}};
    int rc = send_all(h->fd, iov, e->body_len ? 2 : 1);
    if (rc < 0)
        return rc;
    if ((rc = read_head(h, r, got_any)) < 0)
        return rc;
    bool no_body = r->status == 204 || r->status == 304 || !strcmp(e->method, "HEAD");
    if (r->status == 101)
        return -EPROTO;
    if (no_body)
        return 0;
    if (r->chunked)
        return read_chunked(h);
    if (r->has_length)
        return discard(h, r->length);
    r->close = true; /* the body runs to the end of the connection */
    for (;;) {
        h->rlen = 0;
        int n = fill(h);
        if (n <= 0)
            return n;
    }
}

int lbq_http_deliver(struct lbq_http *h, const struct lbq_entry *e, unsigned attempt,
                     struct lb_err *err)
{
    char *head;
    long hlen = build_head(h, e, attempt, &head);
    if (hlen < 0) {
        lb_err_set(err, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (int pass = 0; pass < 2; pass++) {
        bool reused = h->fd >= 0, got_any = false;
        struct resp r;
        if (!reused && (rc = http_connect(h, err)) < 0)
            break;
        rc = exchange(h, e, head, (size_t)hlen, &got_any, &r);
        if (rc == 0) {
            if (r.close)
                lbq_http_close(h);
            rc = r.status;
            break;
        }
        lbq_http_close(h);
        bool stale = reused && !got_any && (rc == -ECONNRESET || rc == -EPIPE);
        lb_err_set(err, "%s: %s", h->url->authority,
                   rc == -EPROTO    ? "malformed response"
                   : rc == -ENOBUFS ? "response head over 64 KiB"
                                    : strerror(-rc));
        if (!stale)
            break;
    }
    free(head);
    return rc;
}
