/*
 * libFuzzer target for the TLS record path of lb/io/tls.c: what a client (or, with bit 0 of
 * byte 0 set, a server lb connects to) sends, fed to a TLS stream the way the worker loop
 * feeds it: received bytes in buffers of varying sizes, sends completing in between, the
 * protocol sending while the handshake runs, then FIN. Beyond the sanitizers the target
 * traps when the stream hands the protocol bytes it did not decrypt, or reports a send the
 * protocol did not make.
 *
 * Input layout: byte 0: bit 0 client mode, bits 1-2 a protocol send (none, before, after
 * the bytes), bit 3 paired mode, bits 4-7 seed the split points; the rest is what the peer
 * sends. In paired mode a real client (OpenSSL over memory BIOs) first completes a
 * handshake with the stream, reading what the stream sends from the SQEs it prepared; the
 * rest of the input then goes through the client's SSL_write (bit 0 clear: valid records
 * of fuzzed plaintext, checked to arrive intact) or straight after the handshake as raw
 * records (bit 0 set).
 */
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/io/tls.h"
#include "lb/io/worker.h"
#include "lb/tls/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct fz_conn {
    struct io_conn base;
    struct io_stream st;
    uint64_t plain; /* bytes the protocol was handed */
    int sends;      /* sends made and not yet reported */
    bool failed;
};

static void fz_on_recv(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    struct fz_conn *f = (struct fz_conn *)c;
    if (res < 0) {
        f->failed = true;
        return;
    }
    CHECK(s->qbytes >= (uint32_t)res);
    f->plain += (uint64_t)res;
    io_stream_consume(w, s, s->qbytes);
}

static void fz_on_sent(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res)
{
    struct fz_conn *f = (struct fz_conn *)c;
    CHECK(f->sends == 1);
    f->sends--;
}

static const struct io_conn_ops fz_ops = {
    .name = "fuzz",
    .size = sizeof(struct fz_conn),
    .nstreams = 1,
    .stream_off = {offsetof(struct fz_conn, st)},
    .on_recv = fz_on_recv,
    .on_sent = fz_on_sent,
};

static struct io_worker w;
static SSL_CTX *server_ctx, *client_ctx;
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static SSL_CTX *make_server_ctx(void)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"a.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, pk, EVP_sha256());
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, pk);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ctx;
}

static void setup(void)
{
    w.nbufs = 0; /* every buffer id is a plaintext-pool id: no kernel buffer ring needed */
    w.buf_size = 16 * 1024;
    w.buf_next = calloc(IO_PLAIN_MAX, sizeof(*w.buf_next));
    w.buf_off = calloc(IO_PLAIN_MAX, sizeof(*w.buf_off));
    w.buf_len = calloc(IO_PLAIN_MAX, sizeof(*w.buf_len));
    w.plain = calloc(IO_PLAIN_MAX, sizeof(*w.plain));
    w.plain_free = calloc(IO_PLAIN_MAX, sizeof(*w.plain_free));
    for (uint32_t i = 0; i < IO_PLAIN_MAX; i++)
        w.plain_free[i] = (uint16_t)(IO_PLAIN_MAX - 1 - i);
    w.nplain_free = IO_PLAIN_MAX;
    CHECK(io_uring_queue_init(256, &w.ring, 0) == 0);
    w.ring_ok = true;
    tls_keys_init();
    server_ctx = make_server_ctx();
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
}

/* What the kernel would do with the SQEs: they name no registered file, so they just fail;
 * their completions are dropped. */
static void drain_ring(void)
{
    io_uring_submit(&w.ring);
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&w.ring, &cqe) == 0)
        io_uring_cqe_seen(&w.ring, cqe);
}

/* A send the stream made completes: all of it taken (or the no-op in its place). */
static void complete_send(struct fz_conn *f)
{
    io_tls_sent(&w, &f->base, &f->st, 1 << 20);
}

static void protocol_send(struct fz_conn *f);

/* The bytes of the sends the stream prepared since the last drain, in order, appended to
 * @bio (the client's view of the wire); each such send then completes. */
static void wire_to(struct fz_conn *f, BIO *bio)
{
    struct io_uring_sq *sq = &w.ring.sq;
    for (unsigned h = sq->sqe_head; h != sq->sqe_tail; h++) {
        struct io_uring_sqe *sqe = &sq->sqes[h & sq->ring_mask];
        if (sqe->opcode == IORING_OP_SEND && sqe->len)
            BIO_write(bio, (const void *)(uintptr_t)sqe->addr, (int)sqe->len);
    }
    drain_ring();
    complete_send(f);
}

static void feed(struct fz_conn *f, const uint8_t *p, size_t n)
{
    while (n && !f->failed) {
        size_t k = n < w.buf_size ? n : w.buf_size;
        uint16_t id = io_plain_get(&w);
        CHECK(id != IO_NOBUF);
        memcpy(io_buf_addr(&w, id), p, k);
        io_tls_recv(&w, &f->base, &f->st, (int)k, id);
        p += k;
        n -= k;
    }
}

/* Moves what the client SSL wrote to the stream. */
static void client_to_stream(struct fz_conn *f, BIO *cw)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(cw, buf, sizeof(buf))) > 0)
        feed(f, (const uint8_t *)buf, (size_t)n);
}

static int paired(const uint8_t *data, size_t size, uint8_t mode, uint32_t seed)
{
    static struct fz_conn f;
    memset(&f, 0, sizeof(f));
    f.base.ops = &fz_ops;
    f.base.state = IO_CONN_OPEN;
    io_stream_init(&f.st, 0);
    io_stream_accepted(&f.st, 0);
    CHECK(io_tls_server(&w, &f.st, server_ctx) == 0);
    drain_ring();

    SSL *cli = SSL_new(client_ctx);
    BIO *cr = BIO_new(BIO_s_mem()), *cw = BIO_new(BIO_s_mem());
    SSL_set_bio(cli, cr, cw);
    SSL_set_connect_state(cli);
    SSL_set_tlsext_host_name(cli, "a.test");
    for (int round = 0; round < 8 && !f.failed && SSL_do_handshake(cli) != 1; round++) {
        client_to_stream(&f, cw);
        wire_to(&f, cr);
    }
    CHECK(f.failed || SSL_is_init_finished(cli));
    if (!f.failed && !(mode & 1)) {
        /* Valid records: what the client writes is what the protocol gets. */
        size_t off = 0;
        while (off < size && !f.failed) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 40000;
            if (n > size - off)
                n = size - off;
            CHECK(SSL_write(cli, data + off, (int)n) == (int)n);
            client_to_stream(&f, cw);
            off += n;
            if ((mode >> 1 & 3) == 2)
                protocol_send(&f);
            wire_to(&f, cr);
        }
        CHECK(f.failed || f.plain == size);
        if (getenv("FUZZ_TLS_DEBUG"))
            fprintf(stderr, "paired: failed=%d plain=%llu of %zu\n", f.failed,
                    (unsigned long long)f.plain, size);
        SSL_shutdown(cli); /* close_notify: the protocol sees the end */
        client_to_stream(&f, cw);
    } else if (!f.failed) {
        feed(&f, data, size);
    }
    wire_to(&f, cr);
    io_stream_shutdown(&w, &f.base, &f.st);
    wire_to(&f, cr);
    SSL_free(cli);
    io_tls_free(&w, &f.st);
    io_stream_drop(&w, &f.st);
    drain_ring();
    CHECK(w.nplain_free == IO_PLAIN_MAX);
    return 0;
}

static void protocol_send(struct fz_conn *f)
{
    if (f->sends || f->failed || (f->st.flags & IO_ST_F_SENDING))
        return;
    f->sends++;
    io_stream_send(&w, &f->base, &f->st, reply, sizeof(reply) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server_ctx)
        setup();
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    uint32_t seed = (uint32_t)(mode >> 4) * 2654435761u + 1;
    if (mode & 8)
        return paired(data + 1, size - 1, mode, seed);
    data++;
    size--;

    static struct fz_conn f;
    memset(&f, 0, sizeof(f));
    f.base.ops = &fz_ops;
    f.base.state = IO_CONN_OPEN;
    io_stream_init(&f.st, 0);
    io_stream_accepted(&f.st, 0);
    int rc = (mode & 1) ? io_tls_client(&w, &f.st, client_ctx, "a.test", NULL, NULL)
                        : io_tls_server(&w, &f.st, server_ctx);
    CHECK(rc == 0);
    if (mode & 1)
        io_tls_connected(&w, &f.base, &f.st);
    if ((mode >> 1 & 3) == 1)
        protocol_send(&f);

    size_t off = 0;
    while (off < size && !f.failed) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 2048;
        if (n > size - off)
            n = size - off;
        uint16_t id = io_plain_get(&w);
        CHECK(id != IO_NOBUF);
        memcpy(io_buf_addr(&w, id), data + off, n);
        io_tls_recv(&w, &f.base, &f.st, (int)n, id);
        off += n;
        complete_send(&f);
        if ((mode >> 1 & 3) == 2)
            protocol_send(&f);
    }
    if (!f.failed)
        io_tls_recv(&w, &f.base, &f.st, 0, 0); /* FIN */
    complete_send(&f);
    io_stream_shutdown(&w, &f.base, &f.st);
    complete_send(&f);
    io_tls_free(&w, &f.st);
    io_stream_drop(&w, &f.st);
    drain_ring();
    CHECK(w.nplain_free == IO_PLAIN_MAX); /* every plaintext buffer came back */
    return 0;
}
