/*
 * The probe engine: the active probes of one checker on a ring that its caller owns (lb: the
 * control thread's), and the tick of the state machines (hc.c). health/ starts no thread: the
 * caller's loop hands completions back (hc_engine_on_cqe), ticks it (hc_engine_tick) and
 * submits. user_data: | tag:8 (the caller's) | op:8 | gen:16 | target:32 |.
 *
 * Each probe target has at most one probe in flight, and each probe at most one operation
 * in flight, always linked to a timeout for what is left of the probe's `timeout`:
 *
 *   tcp:  socket() -> connect                                    -> pass when it connects
 *   http: socket() -> connect -> send the request (resumed when short) -> recv until
 *         hc_http_verdict() decides (status line, and the body text when asked for)
 *   redis: the same with [AUTH,] PING and ROLE pipelined; hc_redis_verdict() decides, and
 *          says whether the member is master
 *
 * For a cluster with tls: (hc_set_tls) the same steps run inside TLS: after the connect, an
 * SSL over two memory BIOs; each send carries what OpenSSL wrote, each recv feeds what came
 * back, until the handshake is done (a tcp check passes there) and, for http, until the
 * verdict. A failed verification fails the probe with "certificate verify failed: WHY".
 *
 * Sockets are ordinary descriptors made with socket(2): a handful of probes a second do not
 * need a fixed-file table, and nothing here is on the workers' data path. Probe sockets close
 * with SO_LINGER 0 (a reset), as HAProxy's checks do, so that thousands of probes leave no
 * TIME_WAIT sockets behind on the proxy host.
 *
 * Probes start on a schedule: the next one of a target starts `interval` +/- 10% after the
 * previous one started, so detection takes about fall x interval whatever the timeouts.
 *
 * Every SQE the engine queues is counted until its completion comes back (the operations,
 * their link timeouts, the wake read, cancellations), so that the caller knows when nothing of
 * a detached engine can reach the kernel or come back under its tag any more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "health/internal.h"

enum probe_op {
    PROBE_OP_NONE,
    PROBE_OP_CONNECT,
    PROBE_OP_SEND,
    PROBE_OP_RECV,
    PROBE_OP_TIMEOUT, /* the link timeout of one of the above; its completion says nothing */
    PROBE_OP_CANCEL,  /* detach: cancellation of what is still in flight */
    PROBE_OP_WAKE,    /* read of hc->wake_fd: a worker tripped a passive threshold */
};

enum probe_phase {
    PROBE_IDLE,
    PROBE_CONNECT,
    PROBE_SEND,
    PROBE_RECV,
};

struct hc_probe {
    int fd;       /* -1 when idle */
    uint32_t gen; /* bumped per probe; completions of an older one are dropped */
    enum probe_phase phase;
    enum probe_op op; /* connect, send or recv in flight; PROBE_OP_NONE when none */
    uint64_t next_ms; /* when the next probe starts */
    uint64_t start_ns;
    uint64_t deadline_ns;
    size_t sent;                 /* http: request bytes sent */
    size_t len;                  /* http: response bytes received into buf */
    char *buf;                   /* http: HC_HTTP_MAX bytes */
    SSL *ssl;                    /* TLS targets, during a probe; NULL otherwise */
    char *raw;                   /* TLS targets: ciphertext in or out, HC_HTTP_MAX bytes */
    size_t raw_len, raw_sent;    /* TLS: ciphertext to send, and sent of it */
    bool hs_done;                /* TLS: handshake complete */
    struct __kernel_timespec ts; /* the link timeout; read by the kernel at submission */
};

struct hc_engine {
    struct hc *hc;
    struct io_uring *ring; /* the caller's */
    uint64_t tag;          /* the caller's tag, in place in user_data's top byte */
    bool detached;         /* hc_engine_detach: completions are only counted */
    struct hc_probe *probes;
    uint32_t sqes;      /* queued, completion not handed back yet */
    bool wake_armed;    /* a read of hc->wake_fd is in flight */
    bool tick_now;      /* woken: run the state machines without waiting for the tick */
    uint64_t next_tick; /* ms: the next hc_tick */
    uint64_t wake_buf;  /* the eventfd counter lands here */
};

static uint64_t probe_ud(const struct hc_engine *e, enum probe_op op, uint32_t gen, uint32_t target)
{
    return e->tag | (uint64_t)op << 48 | (uint64_t)(gen & 0xffff) << 32 | target;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An SQE, counted as in flight: the caller preps it, then sets its user_data. */
static struct io_uring_sqe *get_sqe(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(e->ring);
    while (!sqe) {
        /* The SQ is full: hand it to the kernel to make room. */
        io_uring_submit(e->ring);
        sqe = io_uring_get_sqe(e->ring);
    }
    e->sqes++;
    return sqe;
}

/* Ends the probe of target @ti: closes its socket and feeds the result to the servers. */
static void finish(struct hc_engine *e, uint32_t ti, bool ok, const char *reason)
{
    struct hc_probe *p = &e->probes[ti];
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->phase = PROBE_IDLE;
    SSL_free(p->ssl);
    p->ssl = NULL;
    p->hs_done = false;
    uint64_t now = mono_ns();
    uint64_t lat = (now - p->start_ns) / 1000;
    hc_probe_done(e->hc, ti, ok, reason, lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat,
                  now / 1000000);
}

static void fail_errno(struct hc_engine *e, uint32_t ti, const char *what, int res)
{
    char why[HC_REASON_MAX];
    if (res == -ECANCELED)
        snprintf(why, sizeof(why), "timeout after %llums (%s)",
                 (unsigned long long)e->hc->targets[ti].timeout_ms, what);
    else
        snprintf(why, sizeof(why), "%s: %s", what, strerror(-res));
    finish(e, ti, false, why);
}

/*
 * Queues @op for target @ti (the caller filled @sqe) linked to a timeout for the rest of the
 * probe's time. Returns false, after failing the probe, when that time is already over.
 */
static bool arm(struct hc_engine *e, uint32_t ti, struct io_uring_sqe *sqe, enum probe_op op)
{
    struct hc_probe *p = &e->probes[ti];
    uint64_t now = mono_ns();
    io_uring_sqe_set_data64(sqe, probe_ud(e, op, p->gen, ti));
    if (now >= p->deadline_ns) {
        /* Too late to start it: turn the prepared SQE into a no-op that says nothing. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_TIMEOUT, p->gen, ti));
        fail_errno(e, ti, op == PROBE_OP_CONNECT ? "connect" : "response", -ECANCELED);
        return false;
    }
    sqe->flags |= IOSQE_IO_LINK;
    uint64_t left = p->deadline_ns - now;
    p->ts.tv_sec = (long long)(left / 1000000000ull);
    p->ts.tv_nsec = (long long)(left % 1000000000ull);
    struct io_uring_sqe *t = get_sqe(e);
    io_uring_prep_link_timeout(t, &p->ts, 0);
    io_uring_sqe_set_data64(t, probe_ud(e, PROBE_OP_TIMEOUT, p->gen, ti));
    p->op = op;
    return true;
}

/* Sends the rest of the request, or with TLS the rest of the ciphertext in raw. */
static void arm_send(struct hc_engine *e, uint32_t ti)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    p->phase = PROBE_SEND;
    struct io_uring_sqe *sqe = get_sqe(e);
    if (p->ssl)
        io_uring_prep_send(sqe, p->fd, p->raw + p->raw_sent, p->raw_len - p->raw_sent,
                           MSG_NOSIGNAL);
    else
        io_uring_prep_send(sqe, p->fd, t->req + p->sent, t->req_len - p->sent, MSG_NOSIGNAL);
    arm(e, ti, sqe, PROBE_OP_SEND);
}

/* Receives more of the response, or with TLS the next ciphertext into raw. */
static void arm_recv(struct hc_engine *e, uint32_t ti)
{
    struct hc_probe *p = &e->probes[ti];
    p->phase = PROBE_RECV;
    struct io_uring_sqe *sqe = get_sqe(e);
    if (p->ssl)
        io_uring_prep_recv(sqe, p->fd, p->raw, HC_HTTP_MAX, 0);
    else
        io_uring_prep_recv(sqe, p->fd, p->buf + p->len, HC_HTTP_MAX - p->len, 0);
    arm(e, ti, sqe, PROBE_OP_RECV);
}

/* ---- TLS ---- */

/* Fails the probe with OpenSSL's reason: the verification's first, else the error queue's. */
static void tls_fail(struct hc_engine *e, uint32_t ti, const char *what)
{
    struct hc_probe *p = &e->probes[ti];
    char why[HC_REASON_MAX];
    long vr = SSL_get_verify_result(p->ssl);
    unsigned long err = ERR_peek_last_error();
    if (vr != X509_V_OK)
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (err)
        snprintf(why, sizeof(why), "TLS %s: %s", what, ERR_reason_error_string(err));
    else
        snprintf(why, sizeof(why), "TLS %s: the server closed the connection", what);
    ERR_clear_error();
    finish(e, ti, false, why);
}

/* Reads the response's plaintext and asks for a verdict. Returns false when the probe ended. */
static bool tls_read(struct hc_engine *e, uint32_t ti, bool eof)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    int err = SSL_ERROR_WANT_READ;
    while (p->len < HC_HTTP_MAX) {
        int n = SSL_read(p->ssl, p->buf + p->len, (int)(HC_HTTP_MAX - p->len));
        if (n <= 0) {
            err = SSL_get_error(p->ssl, n);
            break;
        }
        p->len += (size_t)n;
    }
    /* The server's close_notify, its FIN, or a full buffer: the response is all there is. */
    bool end = eof || err == SSL_ERROR_ZERO_RETURN || p->len == HC_HTTP_MAX;
    char why[HC_REASON_MAX];
    int v = hc_http_verdict(p->buf, p->len, end, t->h->expect_status, t->h->expect_body, why,
                            sizeof(why));
    if (v != -EAGAIN) {
        ERR_clear_error();
        finish(e, ti, v == 1, why);
        return false;
    }
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_ZERO_RETURN) {
        tls_fail(e, ti, "read");
        return false;
    }
    return true;
}

/*
 * Moves a TLS probe on, after a connect, a send of all of raw, or a recv fed into the
 * SSL (@eof: the server closed): handshake, then the request, then the response; then sends
 * what OpenSSL wrote, or else receives.
 */
static void tls_step(struct hc_engine *e, uint32_t ti, bool eof)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    if (!p->hs_done) {
        int r = SSL_do_handshake(p->ssl);
        if (r != 1) {
            if (SSL_get_error(p->ssl, r) != SSL_ERROR_WANT_READ || eof) {
                tls_fail(e, ti, "handshake");
                return;
            }
        } else {
            p->hs_done = true;
            if (t->h->check != CONF_CHECK_HTTP) {
                finish(e, ti, true, "TLS handshake done");
                return;
            }
            /* A memory BIO takes all of it. */
            if (SSL_write(p->ssl, t->req, (int)t->req_len) != (int)t->req_len) {
                tls_fail(e, ti, "write");
                return;
            }
        }
    } else if (!tls_read(e, ti, eof)) {
        return;
    }
    BIO *out = SSL_get_wbio(p->ssl);
    if (BIO_ctrl_pending(out) > 0) {
        int n = BIO_read(out, p->raw, HC_HTTP_MAX);
        p->raw_len = n > 0 ? (size_t)n : 0;
        p->raw_sent = 0;
        arm_send(e, ti);
    } else if (eof) {
        tls_fail(e, ti, "response");
    } else {
        arm_recv(e, ti);
    }
}

/* After the connect: a client SSL over two memory BIOs, set up as the data path's. */
static void tls_begin(struct hc_engine *e, uint32_t ti)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    if (!t->ssl_ctx) {
        finish(e, ti, false, "no TLS context for this cluster");
        return;
    }
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    p->ssl = SSL_new(t->ssl_ctx);
    if (!p->ssl || !in || !out) {
        BIO_free(in);
        BIO_free(out);
        finish(e, ti, false, "out of memory for TLS");
        return;
    }
    BIO_set_mem_eof_return(in, -1); /* empty: "retry", not end of stream */
    SSL_set_bio(p->ssl, in, out);
    SSL_set_connect_state(p->ssl);
    int ok = 1;
    bool verify = SSL_get_verify_mode(p->ssl) != SSL_VERIFY_NONE;
    if (t->sni) {
        ok = SSL_set_tlsext_host_name(p->ssl, t->sni);
        if (ok && verify)
            ok = SSL_set1_host(p->ssl, t->sni);
    } else if (verify) {
        char ip[INET6_ADDRSTRLEN];
        const struct sockaddr_storage *ss = &t->addr->ss;
        const void *a = ss->ss_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
        ok = inet_ntop(ss->ss_family, a, ip, sizeof(ip)) &&
             X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), ip);
    }
    if (!ok) {
        finish(e, ti, false, "out of memory for TLS");
        return;
    }
    tls_step(e, ti, false);
}

static void start_probe(struct hc_engine *e, uint32_t ti, uint64_t now_ns)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    p->gen++;
    p->start_ns = now_ns;
    p->deadline_ns = now_ns + t->timeout_ms * 1000000ull;
    p->next_ms = now_ns / 1000000 + hc_jitter(t->interval_ms, &e->hc->rng);
    p->sent = 0;
    p->len = 0;
    p->phase = PROBE_CONNECT;
    p->fd = socket(t->addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        fail_errno(e, ti, "socket", -errno);
        return;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_connect(sqe, p->fd, (const struct sockaddr *)&t->addr->ss, t->addr->len);
    arm(e, ti, sqe, PROBE_OP_CONNECT);
}

/* A send of the probe's request (or, with TLS, of its ciphertext) completed. */
static void on_sent(struct hc_engine *e, uint32_t ti, int res)
{
    struct hc_probe *p = &e->probes[ti];
    if (res < 0) {
        fail_errno(e, ti, "send", res);
        return;
    }
    if (p->ssl) {
        p->raw_sent += (size_t)res;
        if (p->raw_sent < p->raw_len)
            arm_send(e, ti);
        else
            tls_step(e, ti, false);
        return;
    }
    p->sent += (size_t)res;
    if (p->sent < e->hc->targets[ti].req_len)
        arm_send(e, ti);
    else
        arm_recv(e, ti);
}

/* A recv of the response (or, with TLS, of ciphertext) completed. */
static void on_received(struct hc_engine *e, uint32_t ti, int res)
{
    struct hc_probe *p = &e->probes[ti];
    const struct hc_target *t = &e->hc->targets[ti];
    if (res < 0) {
        fail_errno(e, ti, "response", res);
        return;
    }
    if (p->ssl) {
        if (res > 0 && BIO_write(SSL_get_rbio(p->ssl), p->raw, res) != res)
            finish(e, ti, false, "out of memory for TLS");
        else
            tls_step(e, ti, res == 0);
        return;
    }
    p->len += (size_t)res;
    char why[HC_REASON_MAX];
    int v;
    if (t->h->check == CONF_CHECK_REDIS) {
        bool master;
        v = hc_redis_verdict(p->buf, p->len, res == 0 || p->len == HC_HTTP_MAX, t->password,
                             &master, why, sizeof(why));
        e->hc->targets[ti].master = master;
    } else {
        v = hc_http_verdict(p->buf, p->len, res == 0, t->h->expect_status, t->h->expect_body, why,
                            sizeof(why));
    }
    if (v == -EAGAIN)
        arm_recv(e, ti);
    else
        finish(e, ti, v == 1, why);
}

void hc_engine_on_cqe(struct hc *hc, const struct io_uring_cqe *cqe)
{
    struct hc_engine *e = hc->eng;
    if (!e)
        return;
    if (e->sqes)
        e->sqes--;
    enum probe_op op = (enum probe_op)((cqe->user_data >> 48) & 0xff);
    uint32_t gen = (uint32_t)(cqe->user_data >> 32) & 0xffff;
    uint32_t ti = (uint32_t)cqe->user_data;
    if (op == PROBE_OP_WAKE) {
        e->wake_armed = false;
        e->tick_now = !e->detached;
        return;
    }
    if (op == PROBE_OP_NONE || op >= PROBE_OP_TIMEOUT || ti >= hc->ntargets)
        return;
    struct hc_probe *p = &e->probes[ti];
    /* One operation per probe is in flight and every probe waits for its completion, so
     * this completion is the current probe's: the generation only guards that belief. */
    if (gen != (p->gen & 0xffff) || p->op != op)
        return;
    p->op = PROBE_OP_NONE;
    if (e->detached) {
        /* Abandoned. Closing now is safe: its cancellation goes by user_data, not by fd. */
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
        p->phase = PROBE_IDLE;
        SSL_free(p->ssl);
        p->ssl = NULL;
        return;
    }
    int res = cqe->res;
    const struct hc_target *t = &e->hc->targets[ti];
    switch (op) {
    case PROBE_OP_CONNECT:
        if (res < 0)
            fail_errno(e, ti, "connect", res);
        else if (t->tls_cluster >= 0)
            tls_begin(e, ti);
        else if (t->h->check == CONF_CHECK_TCP)
            finish(e, ti, true, "connected");
        else
            arm_send(e, ti);
        break;
    case PROBE_OP_SEND:
        on_sent(e, ti, res);
        break;
    case PROBE_OP_RECV:
        on_received(e, ti, res);
        break;
    default:
        break;
    }
}

static void arm_wake(struct hc_engine *e)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    io_uring_prep_read(sqe, e->hc->wake_fd, &e->wake_buf, sizeof(e->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_WAKE, 0, 0));
    e->wake_armed = true;
}

uint64_t hc_engine_tick(struct hc *hc, uint64_t now_ms)
{
    struct hc_engine *e = hc->eng;
    if (!e || e->detached)
        return UINT64_MAX;
    if (!e->wake_armed)
        arm_wake(e);
    uint64_t wake = e->next_tick;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        if (p->phase != PROBE_IDLE)
            continue;
        if (now_ms >= p->next_ms)
            start_probe(e, i, mono_ns());
        if (p->phase == PROBE_IDLE && p->next_ms < wake)
            wake = p->next_ms;
    }
    if (e->tick_now) {
        e->tick_now = false;
        hc_tick(hc, now_ms);
    }
    if (now_ms >= e->next_tick) {
        hc_tick(hc, now_ms);
        e->next_tick = now_ms + HC_TICK_MS;
    }
    return wake < e->next_tick ? wake : e->next_tick;
}

static void cancel(struct hc_engine *e, uint64_t ud)
{
    struct io_uring_sqe *sqe = get_sqe(e);
    /* By user_data, not by descriptor: a probe socket closed meanwhile may have its number
     * reused by the time the cancellation runs. */
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, probe_ud(e, PROBE_OP_CANCEL, 0, 0));
}

void hc_engine_detach(struct hc *hc)
{
    struct hc_engine *e = hc ? hc->eng : NULL;
    if (!e || e->detached)
        return;
    e->detached = true;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        if (p->op != PROBE_OP_NONE)
            cancel(e, probe_ud(e, p->op, p->gen, i));
    }
    if (e->wake_armed)
        cancel(e, probe_ud(e, PROBE_OP_WAKE, 0, 0));
}

unsigned hc_engine_inflight(const struct hc *hc)
{
    return hc && hc->eng ? hc->eng->sqes : 0;
}

int hc_engine_attach(struct hc *hc, struct io_uring *ring, uint8_t tag, struct lb_err *err)
{
    if (hc->eng) {
        lb_err_set(err, "health: the probe engine is attached already");
        return -EALREADY;
    }
    struct hc_engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto nomem;
    hc->eng = e;
    e->hc = hc;
    e->ring = ring;
    e->tag = (uint64_t)tag << 56;
    e->probes = calloc(hc->ntargets ? hc->ntargets : 1, sizeof(*e->probes));
    if (!e->probes)
        goto nomem;
    uint64_t now_ms = mono_ns() / 1000000;
    e->next_tick = now_ms + HC_TICK_MS;
    for (uint32_t i = 0; i < hc->ntargets; i++) {
        struct hc_probe *p = &e->probes[i];
        p->fd = -1;
        enum conf_check chk = hc->targets[i].h->check;
        if ((chk == CONF_CHECK_HTTP || chk == CONF_CHECK_REDIS) && !(p->buf = malloc(HC_HTTP_MAX)))
            goto nomem;
        if (hc->targets[i].tls_cluster >= 0 && !(p->raw = malloc(HC_HTTP_MAX)))
            goto nomem;
        /* First probes spread over the first tenth of an interval, so that a config with
         * many servers does not open all its probe sockets in the same millisecond. */
        p->next_ms = now_ms + hc_jitter(hc->targets[i].interval_ms, &hc->rng) / 10;
    }
    return 0;
nomem:
    lb_err_set(err, "health: out of memory");
    hc_engine_free(hc);
    return -ENOMEM;
}

void hc_engine_free(struct hc *hc)
{
    struct hc_engine *e = hc ? hc->eng : NULL;
    if (!e)
        return;
    for (uint32_t i = 0; e->probes && i < hc->ntargets; i++) {
        if (e->probes[i].fd >= 0)
            close(e->probes[i].fd);
        SSL_free(e->probes[i].ssl);
        free(e->probes[i].buf);
        free(e->probes[i].raw);
        e->probes[i].buf = NULL;
    }
    free(e->probes);
    free(e);
    hc->eng = NULL;
}
