/*
 * TLS streams: the same stream calls (lb/io/stream.h) with OpenSSL between the protocol and
 * the socket. The kernel has no kTLS here, so records are handled in user space:
 *
 *   socket -> provided buffers -> ciphertext queue -> SSL_read -> plaintext buffers -> queue
 *   protocol bytes -> SSL_write -> output chunks -> one send in flight -> socket
 *
 * The SSL object reads and writes through a BIO of ours (a memory BIO over those queues):
 * ciphertext is not copied into OpenSSL's own memory BIOs, and plaintext lands straight in
 * buffers the protocol reads like any other queued bytes. An idle TLS connection holds no
 * buffer: OpenSSL releases its record buffers (SSL_MODE_RELEASE_BUFFERS), the queues are
 * empty and output chunks are returned once sent.
 *
 * The protocol sees what it sees on a plain socket: on_recv when plaintext arrived (never
 * during the handshake), on_sent once the ciphertext of what it handed over is all sent,
 * on_recv(0) at close_notify or FIN, a negative res when the handshake or a record fails.
 * Renegotiation is refused; close_notify is sent by io_stream_shutdown before the FIN.
 */
#ifndef IO_TLS_H
#define IO_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

struct io_worker;
struct io_conn;
struct io_stream;

/* Makes @s (accepted, not yet receiving) a server-side TLS stream. 0 or -ENOMEM. */
int io_tls_server(struct io_worker *w, struct io_stream *s, SSL_CTX *ctx);

/* Makes @s a client-side TLS stream before it connects: @sni is sent and, with verification
 * on, checked against the certificate (NULL: the IP address @ip is checked). A session in
 * *@sess is offered, and *@sess receives the server's new sessions. 0 or -ENOMEM. */
int io_tls_client(struct io_worker *w, struct io_stream *s, SSL_CTX *ctx, const char *sni,
                  const char *ip, SSL_SESSION **sess);

/* What the worker loop hands a TLS stream (see lb/io/worker.c). */
void io_tls_recv(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res,
                 uint16_t bid);
void io_tls_sent(struct io_worker *w, struct io_conn *c, struct io_stream *s, int res);
void io_tls_connected(struct io_worker *w, struct io_conn *c, struct io_stream *s);
void io_tls_send(struct io_worker *w, struct io_conn *c, struct io_stream *s, const char *p,
                 uint32_t len);
void io_tls_shutdown(struct io_worker *w, struct io_conn *c, struct io_stream *s);
/* Closing: sends close_notify when the stream is idle and has not sent it (best effort: the
 * connection is going away either way). */
void io_tls_close_notify(struct io_worker *w, struct io_conn *c, struct io_stream *s);
void io_tls_free(struct io_worker *w, struct io_stream *s);
void io_tls_chunks_free(struct io_worker *w);

/* True while the handshake has not finished (for handshake timeouts). */
bool io_tls_handshaking(const struct io_stream *s);

/* What the access log shows of a TLS stream; fields are "" on a plain one. */
struct io_tls_info {
    const char *sni;
    const char *version;
    const char *cipher;
    bool resumed;
};
void io_tls_get_info(const struct io_stream *s, struct io_tls_info *out);

#endif
