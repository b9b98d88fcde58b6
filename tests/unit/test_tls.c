/*
 * lb/tls: SNI picks the exact name, then a one-label wildcard, else the first certificate;
 * an RSA and an ECDSA certificate for one name share a context; ticket keys rotate and the
 * previous key still decrypts (renewing), two rotations later it does not; bad files are
 * errors and expired certificates warnings, each at the line that named the file.
 * Certificates are made here with OpenSSL, in a temporary directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "lb/tls/tls.h"

static char dir[] = "/tmp/lb-test-tls-XXXXXX";

/* Writes DIR/NAME.pem and DIR/NAME.key: a self-signed certificate for @sans (a
 * subjectAltName value such as "DNS:a.test,DNS:b.test"), valid from @from to @to days from
 * now, with an EC P-256 key or an RSA 2048 one. */
static void make_cert(const char *name, const char *sans, bool rsa, long from, long to)
{
    EVP_PKEY *pk = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pk);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), to * 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, sans);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);

    char path[256];
    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    make_cert("a", "DNS:a.test,DNS:www.a.test", false, 0, 30);
    make_cert("a-rsa", "DNS:a.test,DNS:www.a.test", true, 0, 30);
    make_cert("b", "DNS:b.test", false, 0, 30);
    make_cert("wild", "DNS:*.w.test", false, 0, 30);
    make_cert("old", "DNS:old.test", false, -30, -1);
    char path[300];
    snprintf(path, sizeof(path), "%s/junk.pem", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("not a certificate\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct conf_diags errs, warns;

/* A config with one TLS listener whose certificates are @certs (YAML flow items). */
static struct conf *load(const char *certs, const char *routes)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "listeners:\n"
             "  - name: web\n"
             "    bind: 127.0.0.1:8443\n"
             "    tls:\n"
             "      certificates: [ %s ]\n"
             "    routes: [ %s ]\n"
             "clusters:\n"
             "  app: { servers: [ { name: a, address: 127.0.0.1:9000 } ] }\n",
             certs, routes);
    char file[300];
    snprintf(file, sizeof(file), "%s/t.yaml", dir);
    struct conf_diags d = {0};
    struct conf *c = conf_load_buf(file, yaml, strlen(yaml), &d);
    if (!c)
        conf_diags_print(&d, file, stderr);
    assert_non_null(c);
    return c;
}

static struct tls_gen *build(struct conf *c)
{
    memset(&errs, 0, sizeof(errs));
    memset(&warns, 0, sizeof(warns));
    return tls_gen_build(c, &errs, &warns);
}

static const char *cn_of(SSL_CTX *ctx)
{
    static char cn[64];
    X509 *x = SSL_CTX_get0_certificate(ctx);
    assert_non_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    return cn;
}

static void test_sni_picks(void **state)
{
    struct conf *c = load("{ cert: b.pem, key: b.key }, { cert: a.pem, key: a.key }, "
                          "{ cert: wild.pem, key: wild.key }",
                          "{ cluster: app }");
    struct tls_gen *g = build(c);
    assert_non_null(g);
    const struct tls_server *ts = g->listeners[0];
    assert_non_null(ts);
    assert_int_equal(ts->nctxs, 3);
    assert_string_equal(cn_of(tls_server_pick(ts, "a.test")), "a");
    assert_string_equal(cn_of(tls_server_pick(ts, "WWW.A.Test")), "a"); /* names are caseless */
    assert_string_equal(cn_of(tls_server_pick(ts, "b.test")), "b");
    assert_string_equal(cn_of(tls_server_pick(ts, "x.w.test")), "wild");
    /* A wildcard covers one label: not the bare domain, not two labels. */
    assert_string_equal(cn_of(tls_server_pick(ts, "w.test")), "b");
    assert_string_equal(cn_of(tls_server_pick(ts, "y.x.w.test")), "b");
    /* No SNI, or a name nobody serves: the first certificate. */
    assert_string_equal(cn_of(tls_server_pick(ts, NULL)), "b");
    assert_string_equal(cn_of(tls_server_pick(ts, "")), "b");
    assert_string_equal(cn_of(tls_server_pick(ts, "nobody.test")), "b");
    assert_string_equal(cn_of(tls_server_pick(ts, ".w.test")), "b");
    assert_int_equal(ts->ncerts, 3);
    assert_string_equal(ts->certs[1].names, "a.test,www.a.test");
    assert_string_equal(ts->certs[1].key, "EC 256");
    tls_gen_free(g);
    conf_free(c);
}

static void test_rsa_and_ecdsa_share_a_name(void **state)
{
    struct conf *c = load("{ cert: a.pem, key: a.key }, { cert: a-rsa.pem, key: a-rsa.key }",
                          "{ cluster: app }");
    struct tls_gen *g = build(c);
    assert_non_null(g);
    const struct tls_server *ts = g->listeners[0];
    assert_int_equal(ts->nctxs, 1); /* one context holds both keys */
    assert_string_equal(ts->certs[1].key, "RSA 2048");
    tls_gen_free(g);
    conf_free(c);

    /* Two certificates of one key type for the same names: which would serve is a guess. */
    c = load("{ cert: a.pem, key: a.key }, { cert: a.pem, key: a.key }", "{ cluster: app }");
    assert_null(build(c));
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].pos.line, 5);
    assert_non_null(strstr(errs.items[0].msg, "same key type"));
    conf_free(c);
}

static void test_bad_files_and_warnings(void **state)
{
    /* A key that belongs to another certificate: an error at the key's value. */
    struct conf *c = load("{ cert: a.pem, key: b.key }", "{ cluster: app }");
    assert_null(build(c));
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].pos.line, 5);
    assert_int_equal(errs.items[0].pos.col, 43);
    if (!strstr(errs.items[0].msg, "does not match"))
        fail_msg("%s", errs.items[0].msg);
    conf_free(c);

    /* A file that is not PEM. */
    c = load("{ cert: junk.pem, key: a.key }", "{ cluster: app }");
    assert_null(build(c));
    assert_int_equal(errs.n, 1);
    assert_int_equal(errs.items[0].pos.col, 31);
    assert_non_null(strstr(errs.items[0].msg, "no PEM certificate"));
    conf_free(c);

    /* Expired: a warning, not an error. A route host no certificate serves: a warning. */
    c = load("{ cert: a.pem, key: a.key }, { cert: old.pem, key: old.key }",
             "{ match: { host: a.test }, cluster: app }, { match: { host: z.test }, "
             "cluster: app }");
    struct tls_gen *g = build(c);
    assert_non_null(g);
    assert_int_equal(errs.n, 0);
    assert_int_equal(warns.n, 2);
    bool expired = false, uncovered = false;
    for (size_t i = 0; i < warns.n; i++) {
        expired |= strstr(warns.items[i].msg, "expired on") != NULL;
        uncovered |= strstr(warns.items[i].msg, "serves host z.test") != NULL;
    }
    assert_true(expired);
    assert_true(uncovered);
    tls_gen_free(g);
    conf_free(c);
}

/* Runs the ticket callback the way OpenSSL does. */
static int ticket(unsigned char name[16], unsigned char iv[16], int enc)
{
    EVP_CIPHER_CTX *ectx = EVP_CIPHER_CTX_new();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *hctx = EVP_MAC_CTX_new(mac);
    int rc = tls_ticket_cb(NULL, name, iv, ectx, hctx, enc);
    EVP_MAC_CTX_free(hctx);
    EVP_MAC_free(mac);
    EVP_CIPHER_CTX_free(ectx);
    return rc;
}

static void test_ticket_keys_rotate(void **state)
{
    assert_int_equal(tls_keys_init(), 0);
    struct tls_ticket_key k0, k1, prev;
    tls_keys_peek(&k0, NULL);

    unsigned char name[16], iv[16];
    assert_int_equal(ticket(name, iv, 1), 1); /* encrypts with the current key */
    assert_memory_equal(name, k0.name, 16);
    assert_int_equal(ticket(name, iv, 0), 1);

    assert_int_equal(tls_keys_rotate(), 0);
    assert_int_equal(tls_keys_peek(&k1, &prev), 2);
    assert_memory_equal(prev.name, k0.name, 16);
    assert_memory_not_equal(k1.name, k0.name, 16);
    /* A ticket of the previous key still decrypts, and is to be renewed. */
    assert_int_equal(ticket(name, iv, 0), 2);
    unsigned char fresh[16];
    assert_int_equal(ticket(fresh, iv, 1), 1);
    assert_memory_equal(fresh, k1.name, 16);

    /* Two rotations later the old ticket means a full handshake. */
    assert_int_equal(tls_keys_rotate(), 0);
    assert_int_equal(ticket(name, iv, 0), 0);
    assert_int_equal(ticket(fresh, iv, 0), 2);

    /* The clock: nothing before 12 h, a rotation after. */
    struct tls_ticket_key before, after;
    uint64_t due = tls_keys_tick(1000);
    assert_int_equal(due, 1000 + TLS_ROTATE_MS);
    tls_keys_peek(&before, NULL);
    tls_keys_tick(1000 + TLS_ROTATE_MS - 1);
    tls_keys_peek(&after, NULL);
    assert_memory_equal(before.name, after.name, 16);
    tls_keys_tick(1000 + TLS_ROTATE_MS);
    tls_keys_peek(&after, NULL);
    assert_memory_not_equal(before.name, after.name, 16);
}

static void test_fail_names(void **state)
{
    for (int f = 0; f < TLS_FAIL__COUNT; f++)
        assert_non_null(tls_fail_name((enum tls_fail)f));
    assert_int_equal(tls_fail_classify(0, SSL_ERROR_SYSCALL), TLS_FAIL_EOF);
    assert_int_equal(
        tls_fail_classify(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNSUPPORTED_PROTOCOL), SSL_ERROR_SSL),
        TLS_FAIL_VERSION);
    assert_int_equal(
        tls_fail_classify(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_NO_SHARED_CIPHER), SSL_ERROR_SSL),
        TLS_FAIL_CIPHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_picks),
        cmocka_unit_test(test_rsa_and_ecdsa_share_a_name),
        cmocka_unit_test(test_bad_files_and_warnings),
        cmocka_unit_test(test_ticket_keys_rotate),
        cmocka_unit_test(test_fail_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
