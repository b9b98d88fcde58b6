/*
 * TLS contexts: what lb knows about certificates, keys and policy, built once per
 * configuration generation and shared read-only by every worker of that generation.
 *
 * A listener with `tls:` gets a struct tls_server: one SSL_CTX per group of certificates
 * that name the same hosts (an RSA and an ECDSA certificate for one name share a context,
 * and the client's signature algorithms pick), and a table of names for SNI: the exact
 * name first, then a wildcard one label deep (*.example.com), else the first certificate.
 * A cluster with `tls:` gets a struct tls_client: the context lb uses to reach its servers.
 *
 * Session tickets are encrypted with keys held by the process, not by a context, so every
 * worker of every generation decrypts every ticket: a client resumes on any worker, and
 * across reloads. The keys rotate every 12 h and on each reload; the previous key is kept
 * to decrypt (tickets it made are renewed with the current one).
 *
 * The connection side (the TLS stream: SSL over our own memory BIOs) is lb/io/tls.c.
 */
#ifndef LB_TLS_TLS_H
#define LB_TLS_TLS_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/conf.h"

#define TLS_ROTATE_MS (12ull * 3600 * 1000)

/* One certificate as lbctl tls and the metrics show it. */
struct tls_cert_info {
    char *file;
    char *names;   /* the names it serves, comma-separated (SAN DNS names, else its CN) */
    char *subject; /* one line */
    char *issuer;
    char key[16]; /* "RSA 2048", "EC P-256" */
    time_t not_before, not_after;
};

struct tls_server {
    const struct conf_tls *cf;
    SSL_CTX **ctxs; /* one per group of certificates with the same names; [0] is the default */
    size_t nctxs;
    struct tls_sni *exact; /* sorted by name */
    size_t nexact;
    struct tls_sni *wild; /* "*.example.com" stored as "example.com", sorted */
    size_t nwild;
    struct tls_cert_info *certs; /* conf order */
    size_t ncerts;
    unsigned char alpn[64]; /* the configured protocols in ALPN wire format */
    unsigned alpn_len;
    struct tls_ocsp *ocsp; /* staples, one per certificate with ocsp: */
    size_t nocsp;
};

struct tls_sni {
    char *name;
    SSL_CTX *ctx;
};

struct tls_client {
    const struct conf_upstream_tls *cf;
    SSL_CTX *ctx;
};

/* Every TLS context of one configuration. */
struct tls_gen {
    struct tls_server **listeners; /* conf->nlisteners entries, NULL where no tls: */
    struct tls_client **clusters;  /* conf->nclusters entries, NULL where no tls: */
    size_t nlisteners, nclusters;
};

/*
 * Builds the contexts of @c: reads every certificate, key, CA and OCSP file and checks them
 * (unreadable, not PEM, key does not match, CA unusable: errors; expired, not yet valid, a
 * route's host no certificate covers: warnings), each at the position of the key that named
 * the file. Returns the generation (an empty one when nothing uses TLS), or NULL when @errs
 * has errors. @warns may be NULL.
 */
struct tls_gen *tls_gen_build(const struct conf *c, struct conf_diags *errs,
                              struct conf_diags *warns);
void tls_gen_free(struct tls_gen *g);

/* The context for a ClientHello that asked for @name (NULL: no SNI). */
SSL_CTX *tls_server_pick(const struct tls_server *ts, const char *name);

/* The SSL ex_data index under which a client SSL keeps its SSL_SESSION ** slot: the
 * context's new-session callback stores the server's sessions there. */
int tls_session_slot_index(void);

/* ---- session ticket keys (keys.c) ---- */

struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* Makes the first key (startup; idempotent). 0 or -EIO when the RNG fails. */
int tls_keys_init(void);
/* A new current key; the current one becomes the previous one. */
int tls_keys_rotate(void);
/* Rotates when TLS_ROTATE_MS passed since the last rotation (control thread); returns when
 * it is next due. */
uint64_t tls_keys_tick(uint64_t now_ms);
/* Copies the current and previous keys (tests, lbctl). Returns how many exist (1 or 2). */
int tls_keys_peek(struct tls_ticket_key *cur, struct tls_ticket_key *prev);
/* The OpenSSL ticket callback every server context uses. */
int tls_ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                  EVP_MAC_CTX *hctx, int enc);

/* ---- counters (process-wide, for /metrics) ---- */

enum tls_fail {
    TLS_FAIL_PROTOCOL,    /* not TLS, or a malformed or unexpected message */
    TLS_FAIL_VERSION,     /* a version below min_version (TLS 1.0/1.1) */
    TLS_FAIL_CIPHER,      /* no cipher or group in common */
    TLS_FAIL_CLIENT_CERT, /* mutual TLS: no client certificate, or it did not verify */
    TLS_FAIL_PEER_ALERT,  /* the peer sent a fatal alert */
    TLS_FAIL_EOF,         /* the peer closed during the handshake */
    TLS_FAIL_TIMEOUT,     /* the handshake did not finish within the header timeout */
    TLS_FAIL_OTHER,
    TLS_FAIL__COUNT,
};

struct tls_stats {
    _Atomic uint64_t handshakes[2]; /* completed, by version: [0] TLS 1.2, [1] TLS 1.3 */
    _Atomic uint64_t resumed;       /* of those, resumed from a ticket */
    _Atomic uint64_t failed[TLS_FAIL__COUNT];
    _Atomic uint64_t upstream_ok; /* handshakes with servers */
    _Atomic uint64_t upstream_resumed;
    _Atomic uint64_t upstream_failed; /* including certificate verify failures */
    _Atomic uint64_t upstream_verify_failed;
};
extern struct tls_stats tls_stats;

const char *tls_fail_name(enum tls_fail f);
/* What the error queue after a failed handshake says, as a reason. */
enum tls_fail tls_fail_classify(unsigned long err, int ssl_error);

#endif
