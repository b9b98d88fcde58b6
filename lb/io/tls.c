/*
 * TLS streams (lb/io/tls.h): OpenSSL between a protocol and its socket, fed by io_uring
 * completions through a BIO of ours.
 *
 * Callbacks into the protocol (on_recv, on_sent) are made only from completions of this
 * stream's own operations, never from inside a call the protocol made (io_stream_send,
 * io_stream_shutdown): a failure found there is reported when the stream's next send
 * completes, or through a no-op standing in for one.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lb/core/log.h"
#include "lb/io/tls.h"
#include "lb/io/worker.h"
#include "lb/tls/tls.h"

#define CHUNK_DATA (64 * 1024 - 64)
#define WRITE_MAX (3 * 16 * 1024) /* plaintext per SSL_write: its records fit one chunk */
#define CHUNKS_KEEP 32            /* free chunks a worker keeps */

struct chunk {
    struct chunk *next;
    uint32_t len, sent;
    char data[CHUNK_DATA];
};

#define T_SERVER 0x01
#define T_DONE 0x02   /* handshake finished */
#define T_WIRE 0x04   /* a send (or the no-op standing in for one) is in flight */
#define T_FIN 0x08    /* shutdown(SHUT_WR) once the output is sent */
#define T_FAILED 0x10 /* fatal: nothing more is read or written */
#define T_EOF 0x20    /* the socket read FIN */
#define T_COUNTED 0x40

struct io_tls {
    SSL *ssl;
    struct io_worker *w;
    struct io_stream in; /* ciphertext received and not yet read by OpenSSL: its queue only */
    struct chunk *out, *out_tail;
    const char *pp; /* the protocol's send: its bytes, length and how many SSL_write took */
    uint32_t plen, taken;
    uint16_t flags;
};

/* ---- our BIO: reads the ciphertext queue, writes output chunks ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static struct chunk *chunk_get(struct io_worker *w)
{
    struct chunk *ch = w->tls_chunks;
    if (ch) {
        w->tls_chunks = ch->next;
        w->ntls_chunks--;
    } else if (!(ch = malloc(sizeof(*ch)))) {
        return NULL;
    }
    ch->next = NULL;
    ch->len = ch->sent = 0;
    return ch;
}

static void chunk_put(struct io_worker *w, struct chunk *ch)
{
    if (w->ntls_chunks >= CHUNKS_KEEP) {
        free(ch);
        return;
    }
    ch->next = w->tls_chunks;
    w->tls_chunks = ch;
    w->ntls_chunks++;
}

void io_tls_chunks_free(struct io_worker *w)
{
    while (w->tls_chunks) {
        struct chunk *ch = w->tls_chunks;
        w->tls_chunks = ch->next;
        free(ch);
    }
    w->ntls_chunks = 0;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    struct io_tls *t = BIO_get_data(b);
    int done = 0;
    BIO_clear_retry_flags(b);
    while (done < len) {
        struct chunk *ch = t->out_tail;
        /* A chunk partly sent may be in the kernel's hands: only its tail grows. */
        if (!ch || ch->len == CHUNK_DATA) {
            if (!(ch = chunk_get(t->w)))
                return done ? done : -1;
            if (t->out_tail)
                t->out_tail->next = ch;
            else
                t->out = ch;
            t->out_tail = ch;
        }
        uint32_t room = CHUNK_DATA - ch->len, n = (uint32_t)(len - done);
        if (n > room)
            n = room;
        memcpy(ch->data + ch->len, buf + done, n);
        ch->len += n;
        done += (int)n;
    }
    return done;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct io_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!t->in.qbytes) {
        if (t->flags & T_EOF)
            return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    uint32_t n = io_stream_peek(t->w, &t->in, 0, buf, (uint32_t)len);
    io_stream_consume(t->w, &t->in, n);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct io_tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)t->in.qbytes : 0;
    case BIO_CTRL_EOF:
        return t && (t->flags & T_EOF) && !t->in.qbytes;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lb ring");
    if (!bio_method)
        return;
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
    BIO_meth_set_create(bio_method, bio_create);
}

/* ---- setup ---- */

static struct io_tls *tls_new(struct io_worker *w, struct io_stream *s, SSL_CTX *ctx)
{
    pthread_once(&bio_once, make_bio_method);
    struct io_tls *t = calloc(1, sizeof(*t));
    BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
    if (t)
        t->ssl = SSL_new(ctx);
    if (!t || !bio || !t->ssl) {
        BIO_free(bio);
        if (t)
            SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    t->w = w;
    io_stream_init(&t->in, s->idx);
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    s->tls = t;
    return t;
}

int io_tls_server(struct io_worker *w, struct io_stream *s, SSL_CTX *ctx)
{
    struct io_tls *t = tls_new(w, s, ctx);
    if (!t)
        return -ENOMEM;
    t->flags = T_SERVER;
    SSL_set_accept_state(t->ssl);
    return 0;
}

int io_tls_client(struct io_worker *w, struct io_stream *s, SSL_CTX *ctx, const char *sni,
                  const char *ip, SSL_SESSION **sess)
{
    struct io_tls *t = tls_new(w, s, ctx);
    if (!t)
        return -ENOMEM;
    SSL_set_connect_state(t->ssl);
    SSL_set_ex_data(t->ssl, tls_session_slot_index(), sess);
    if (sess && *sess)
        SSL_set_session(t->ssl, *sess);
    int ok = 1;
    if (sni) {
        ok = SSL_set_tlsext_host_name(t->ssl, sni);
        if (ok && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE)
            ok = SSL_set1_host(t->ssl, sni);
    } else if (ip && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ip);
    }
    if (!ok) {
        io_tls_free(w, s);
        return -ENOMEM;
    }
    return 0;
}

bool io_tls_handshaking(const struct io_stream *s)
{
    return s->tls && !(s->tls->flags & T_DONE);
}

void io_tls_get_info(const struct io_stream *s, struct io_tls_info *out)
{
    *out = (struct io_tls_info){.sni = "", .version = "", .cipher = ""};
    if (!s->tls || !(s->tls->flags & T_DONE))
        return;
    SSL *ssl = s->tls->ssl;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    out->sni = sni ? sni : "";
    out->version = SSL_get_version(ssl);
    out->cipher = SSL_get_cipher_name(ssl);
    out->resumed = SSL_session_reused(ssl);
}

/* ---- the wire ---- */

static void flush(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if ((t->flags & T_WIRE) || c->state == IO_CONN_CLOSING || !(s->flags & IO_ST_F_OPEN))
        return;
    if (t->out) {
        struct chunk *ch = t->out;
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_SEND0 + s->idx, c, 0);
        io_uring_prep_send(sqe, s->fidx, ch->data + ch->sent, ch->len - ch->sent, MSG_NOSIGNAL);
        sqe->flags |= IOSQE_FIXED_FILE;
        t->flags |= T_WIRE;
        return;
    }
    if ((t->flags & T_FAILED) && (s->flags & IO_ST_F_SENDING)) {
        /* A send the protocol made on a failed stream: its error comes as a completion. */
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_SEND0 + s->idx, c, 0);
        io_uring_prep_nop(sqe);
        t->flags |= T_WIRE;
        return;
    }
    if (t->flags & T_FIN) {
        t->flags &= (uint16_t)~T_FIN;
        struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
        io_uring_prep_shutdown(sqe, s->fidx, SHUT_WR);
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

static const char *listener_name(struct io_worker *w, struct io_conn *c)
{
    if ((c->flags & IO_CONN_F_ACCEPTED) && c->listener < w->nls)
        return w->ls[c->listener].cf->name;
    return "-";
}

/* A fatal error: counted, logged, the alert OpenSSL wrote is still sent. */
static void fail(struct io_worker *w, struct io_conn *c, struct io_stream *s, int ssl_err)
{
    struct io_tls *t = s->tls;
    unsigned long e = ERR_peek_last_error();
    char why[160];
    if (e)
        ERR_error_string_n(e, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s",
                 ssl_err == SSL_ERROR_SYSCALL ? "connection closed" : "unknown error");
    ERR_clear_error();
    t->flags |= T_FAILED;
    if (t->flags & T_COUNTED)
        return;
    t->flags |= T_COUNTED;
    if (t->flags & T_SERVER) {
        enum tls_fail f = TLS_FAIL_PROTOCOL;
        if (!(t->flags & T_DONE))
            f = (t->flags & T_EOF) && !e ? TLS_FAIL_EOF : tls_fail_classify(e, ssl_err);
        atomic_fetch_add_explicit(&tls_stats.failed[f], 1, memory_order_relaxed);
        /* Scanners make the other failures common; a refused client certificate is news. */
        lb_log(f == TLS_FAIL_CLIENT_CERT ? CONF_LOG_INFO : CONF_LOG_DEBUG, "tls failed",
               "listener=%s stage=%s reason=%s detail=\"%s\"", listener_name(w, c),
               (t->flags & T_DONE) ? "record" : "handshake", tls_fail_name(f), why);
        return;
    }
    atomic_fetch_add_explicit(&tls_stats.upstream_failed, 1, memory_order_relaxed);
    long vr = SSL_get_verify_result(t->ssl);
    if (!(t->flags & T_DONE) && vr != X509_V_OK) {
        atomic_fetch_add_explicit(&tls_stats.upstream_verify_failed, 1, memory_order_relaxed);
        lb_warn("tls to server failed", "reason=\"certificate verify failed: %s\"",
                X509_verify_cert_error_string(vr));
    } else {
        lb_warn("tls to server failed", "reason=\"%s\"", why);
    }
}

static void handshake_done(struct io_tls *t)
{
    t->flags |= T_DONE | T_COUNTED;
    bool resumed = SSL_session_reused(t->ssl);
    if (t->flags & T_SERVER) {
        int v = SSL_version(t->ssl) == TLS1_3_VERSION;
        atomic_fetch_add_explicit(&tls_stats.handshakes[v], 1, memory_order_relaxed);
        if (resumed)
            atomic_fetch_add_explicit(&tls_stats.resumed, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&tls_stats.upstream_ok, 1, memory_order_relaxed);
        if (resumed)
            atomic_fetch_add_explicit(&tls_stats.upstream_resumed, 1, memory_order_relaxed);
    }
}

/* Drives the handshake: 1 done, 0 waiting for the peer, -1 failed. */
static int handshake(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if (t->flags & T_DONE)
        return 1;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        handshake_done(t);
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !(t->flags & T_EOF))
        return 0;
    fail(w, c, s, e);
    return -1;
}

/* SSL_write of the protocol's pending bytes, once the handshake is done. */
static void pump(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if ((t->flags & (T_DONE | T_FAILED)) == T_DONE && t->pp && !t->taken) {
        uint32_t n = t->plen < WRITE_MAX ? t->plen : WRITE_MAX;
        int r = SSL_write(t->ssl, t->pp, (int)n);
        if (r > 0)
            t->taken = (uint32_t)r;
        else
            fail(w, c, s, SSL_get_error(t->ssl, r));
    }
    flush(w, c, s);
}

/* Decrypts everything queued into plaintext buffers on the stream's queue. Returns the
 * bytes added, sets *@eof at close_notify or FIN, -1 on failure. */
static int64_t decrypt(struct io_worker *w, struct io_conn *c, struct io_stream *s, bool *eof)
{
    struct io_tls *t = s->tls;
    int64_t got = 0;
    for (;;) {
        uint16_t id = io_plain_get(w);
        if (id == IO_NOBUF) {
            lb_warn("tls: out of plaintext buffers", "listener=%s", listener_name(w, c));
            t->flags |= T_FAILED;
            return -1;
        }
        int n = SSL_read(t->ssl, io_buf_addr(w, id), (int)w->buf_size);
        if (n > 0) {
            io_stream_push(w, s, id, (uint32_t)n);
            got += n;
            continue;
        }
        io_buf_put(w, id);
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ && !(t->flags & T_EOF))
            return got;
        if (e == SSL_ERROR_ZERO_RETURN || ((t->flags & T_EOF) && !t->in.qbytes)) {
            /* close_notify, or a FIN (no close_notify: the protocol's framing judges). */
            ERR_clear_error();
            *eof = true;
            return got;
        }
        fail(w, c, s, e);
        return -1;
    }
}

/* The stream failed where the protocol was not waiting on a send of its own (a session
 * ticket or an alert that could not be sent, a FIN after a failure): it learns it as a
 * failed read, and nothing more is read, so that no recv is armed again on a dead socket. */
static void dead(struct io_worker *w, struct io_conn *c, struct io_stream *s, int err)
{
    s->flags |= IO_ST_F_EOF;
    c->ops->on_recv(w, c, s, err);
}

void io_tls_recv(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res, uint16_t bid)
{
    struct io_tls *t = s->tls;
    if (res > 0) {
        io_stream_push(w, &t->in, bid, (uint32_t)res);
        c->last_ms = w->now_ms;
    } else if (res == 0) {
        t->flags |= T_EOF;
    } else {
        c->ops->on_recv(w, c, s, res);
        return;
    }
    if (t->flags & T_FAILED) {
        dead(w, c, s, -EPROTO);
        return;
    }
    bool eof = false;
    int64_t got = 0;
    int hs = handshake(w, c, s);
    if (hs > 0)
        got = decrypt(w, c, s, &eof);
    if (hs < 0 || got < 0) {
        flush(w, c, s); /* the alert */
        c->ops->on_recv(w, c, s, -EPROTO);
        return;
    }
    pump(w, c, s);
    if (got > 0) {
        c->ops->on_recv(w, c, s, (int)(got > INT32_MAX ? INT32_MAX : got));
        if (c->state == IO_CONN_CLOSING)
            return;
    }
    if (eof && !(s->flags & IO_ST_F_EOF)) {
        s->flags |= IO_ST_F_EOF;
        c->ops->on_recv(w, c, s, 0);
    }
}

void io_tls_sent(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    struct io_tls *t = s->tls;
    t->flags &= (uint16_t)~T_WIRE;
    if (res < 0) {
        t->flags |= T_FAILED;
    } else if (res > 0 && t->out) {
        c->last_ms = w->now_ms;
        struct chunk *ch = t->out;
        ch->sent += (uint32_t)res;
        if (ch->sent >= ch->len) {
            t->out = ch->next;
            if (!t->out)
                t->out_tail = NULL;
            chunk_put(w, ch);
        }
    }
    if (t->flags & T_FAILED) {
        if (s->flags & IO_ST_F_SENDING) {
            s->flags &= (uint16_t)~IO_ST_F_SENDING;
            c->ops->on_sent(w, c, s, res < 0 ? res : -EPROTO);
        } else if (c->state != IO_CONN_CLOSING) {
            dead(w, c, s, res < 0 ? res : -EPROTO);
        }
        return;
    }
    if (!t->out && t->taken) {
        uint32_t n = t->taken;
        t->taken = t->plen = 0;
        t->pp = NULL;
        s->flags &= (uint16_t)~IO_ST_F_SENDING;
        c->ops->on_sent(w, c, s, (int)n);
        if (c->state == IO_CONN_CLOSING)
            return;
    }
    flush(w, c, s);
}

void io_tls_connected(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    handshake(w, c, s); /* the ClientHello */
    flush(w, c, s);
}

void io_tls_send(struct io_worker *w, struct io_conn *c, struct io_stream *s, const char *p,
                 uint32_t len)
{
    struct io_tls *t = s->tls;
    s->flags |= IO_ST_F_SENDING;
    t->pp = p;
    t->plen = len;
    t->taken = 0;
    pump(w, c, s);
}

void io_tls_shutdown(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if (s->flags & IO_ST_F_SHUT)
        return;
    s->flags |= IO_ST_F_SHUT;
    if ((t->flags & (T_DONE | T_FAILED)) == T_DONE) {
        SSL_shutdown(t->ssl); /* writes close_notify; the peer's comes as EOF */
        ERR_clear_error();
    }
    t->flags |= T_FIN;
    flush(w, c, s);
}

void io_tls_close_notify(struct io_worker *w, struct io_conn *c, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if (!t || (t->flags & (T_DONE | T_FAILED | T_WIRE)) != T_DONE || (s->flags & IO_ST_F_SHUT) ||
        !(s->flags & IO_ST_F_OPEN) || t->out)
        return;
    s->flags |= IO_ST_F_SHUT;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (!t->out)
        return;
    /* Not tracked: the chunk stays until the slot is freed, after this completes. */
    struct io_uring_sqe *sqe = io_sqe(w, IO_OP_AUX, c, 0);
    io_uring_prep_send(sqe, s->fidx, t->out->data, t->out->len, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_FIXED_FILE;
}

void io_tls_free(struct io_worker *w, struct io_stream *s)
{
    struct io_tls *t = s->tls;
    if (!t)
        return;
    if ((t->flags & (T_SERVER | T_COUNTED)) == T_SERVER) {
        /* Closed before the handshake ended: the peer left, or we timed it out. */
        enum tls_fail f = (t->flags & T_EOF) ? TLS_FAIL_EOF : TLS_FAIL_TIMEOUT;
        atomic_fetch_add_explicit(&tls_stats.failed[f], 1, memory_order_relaxed);
    }
    SSL_free(t->ssl);
    io_stream_drop(w, &t->in);
    while (t->out) {
        struct chunk *ch = t->out;
        t->out = ch->next;
        chunk_put(w, ch);
    }
    free(t);
    s->tls = NULL;
}
