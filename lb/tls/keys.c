/*
 * Session ticket keys (lb/tls/tls.h): a current and a previous key for the whole process.
 * Workers only read them, under a read lock taken once per ticket; the control thread
 * rotates them.
 */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#include "lb/tls/tls.h"

static struct {
    pthread_rwlock_t lock;
    struct tls_ticket_key cur, prev;
    int nkeys; /* 0 before init, then 1, then 2 */
    uint64_t rotated_ms;
} keys = {.lock = PTHREAD_RWLOCK_INITIALIZER};

struct tls_stats tls_stats;

static int new_key(struct tls_ticket_key *k)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -EIO;
    return 0;
}

int tls_keys_init(void)
{
    int rc = 0;
    pthread_rwlock_wrlock(&keys.lock);
    if (keys.nkeys == 0) {
        rc = new_key(&keys.cur);
        if (rc == 0)
            keys.nkeys = 1;
    }
    pthread_rwlock_unlock(&keys.lock);
    return rc;
}

int tls_keys_rotate(void)
{
    struct tls_ticket_key k;
    if (new_key(&k) < 0)
        return -EIO;
    pthread_rwlock_wrlock(&keys.lock);
    if (keys.nkeys > 0) {
        keys.prev = keys.cur;
        keys.nkeys = 2;
    } else {
        keys.nkeys = 1;
    }
    keys.cur = k;
    keys.rotated_ms = 0;
    pthread_rwlock_unlock(&keys.lock);
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}

uint64_t tls_keys_tick(uint64_t now_ms)
{
    /* The first tick after a rotation only starts the clock. */
    if (!keys.rotated_ms) {
        keys.rotated_ms = now_ms;
    } else if (now_ms - keys.rotated_ms >= TLS_ROTATE_MS) {
        tls_keys_rotate();
        keys.rotated_ms = now_ms;
    }
    return keys.rotated_ms + TLS_ROTATE_MS;
}

int tls_keys_peek(struct tls_ticket_key *cur, struct tls_ticket_key *prev)
{
    pthread_rwlock_rdlock(&keys.lock);
    int n = keys.nkeys;
    if (cur)
        *cur = keys.cur;
    if (prev && n > 1)
        *prev = keys.prev;
    pthread_rwlock_unlock(&keys.lock);
    return n;
}

static int key_setup(const struct tls_ticket_key *k, const unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_CTX_set_params(hctx, params))
        return -1;
    if (!EVP_CipherInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv, enc))
        return -1;
    return 0;
}

/* OpenSSL's contract: 1 the key is good; 2 good but renew the ticket; 0 no such key (a full
 * handshake follows); -1 error. */
int tls_ticket_cb(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                  EVP_MAC_CTX *hctx, int enc)
{
    struct tls_ticket_key k;
    int rc = 0;
    pthread_rwlock_rdlock(&keys.lock);
    int n = keys.nkeys;
    if (enc) {
        k = keys.cur;
        rc = n > 0 ? 1 : -1;
    } else if (n > 0 && !memcmp(key_name, keys.cur.name, sizeof(k.name))) {
        k = keys.cur;
        rc = 1;
    } else if (n > 1 && !memcmp(key_name, keys.prev.name, sizeof(k.name))) {
        k = keys.prev;
        rc = 2;
    }
    pthread_rwlock_unlock(&keys.lock);
    if (rc <= 0)
        return rc;
    if (enc) {
        memcpy(key_name, k.name, sizeof(k.name));
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            rc = -1;
    }
    if (rc > 0 && key_setup(&k, iv, ectx, hctx, enc) < 0)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

static const char *const fail_names[TLS_FAIL__COUNT] = {
    [TLS_FAIL_PROTOCOL] = "protocol",       [TLS_FAIL_VERSION] = "version",
    [TLS_FAIL_CIPHER] = "no_shared_cipher", [TLS_FAIL_CLIENT_CERT] = "client_certificate",
    [TLS_FAIL_PEER_ALERT] = "peer_alert",   [TLS_FAIL_EOF] = "eof",
    [TLS_FAIL_TIMEOUT] = "timeout",         [TLS_FAIL_OTHER] = "other",
};

const char *tls_fail_name(enum tls_fail f)
{
    return (unsigned)f < TLS_FAIL__COUNT ? fail_names[f] : "other";
}

enum tls_fail tls_fail_classify(unsigned long err, int ssl_error)
{
    if (ssl_error == SSL_ERROR_SYSCALL && !err)
        return TLS_FAIL_EOF;
    if (ERR_GET_LIB(err) != ERR_LIB_SSL)
        return TLS_FAIL_OTHER;
    int r = ERR_GET_REASON(err);
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_WRONG_SSL_VERSION:
        return TLS_FAIL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        return TLS_FAIL_CIPHER;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return TLS_FAIL_CLIENT_CERT;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return TLS_FAIL_EOF;
    default:
        break;
    }
    /* Alerts the peer sent are reported as SSL_R_SSLV3_ALERT_* / SSL_R_TLSV1_ALERT_*. */
    if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
        return TLS_FAIL_PEER_ALERT;
    return TLS_FAIL_PROTOCOL;
}
