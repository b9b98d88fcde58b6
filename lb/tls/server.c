/*
 * Server contexts (lb/tls/tls.h): certificates grouped by the names they serve, the SNI
 * tables, policy (versions, ciphers, ALPN, tickets, client certificates) and OCSP staples.
 * Everything is checked here, at load, so that a bad file is an lb -t error at the line
 * that named it and never a failure at run time.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lb/tls/internal.h"

/* Mozilla's "intermediate" TLS 1.2 suites (TLS 1.3 keeps OpenSSL's three). */
static const char intermediate_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static const char groups[] = "X25519:P-256:P-384";

struct tls_ocsp {
    X509 *leaf;
    unsigned char *der;
    long len;
};

/* ---- SNI ---- */

static int sni_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct tls_sni *)a)->name, ((const struct tls_sni *)b)->name);
}

static SSL_CTX *sni_find(const struct tls_sni *tab, size_t n, const char *name)
{
    struct tls_sni key = {.name = (char *)name};
    const struct tls_sni *hit = bsearch(&key, tab, n, sizeof(*tab), sni_cmp);
    return hit ? hit->ctx : NULL;
}

SSL_CTX *tls_server_pick(const struct tls_server *ts, const char *name)
{
    if (name && *name) {
        SSL_CTX *ctx = sni_find(ts->exact, ts->nexact, name);
        if (ctx)
            return ctx;
        /* A wildcard covers exactly one label: *.example.com matches a.example.com only. */
        const char *dot = strchr(name, '.');
        if (dot && dot != name && dot[1] && (ctx = sni_find(ts->wild, ts->nwild, dot + 1)))
            return ctx;
    }
    return ts->ctxs[0];
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const struct tls_server *ts = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx = tls_server_pick(ts, name);
    if (ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    const struct tls_server *ts = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ts->alpn, ts->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no protocol in common: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int on_ocsp(SSL *ssl, void *arg)
{
    const struct tls_server *ts = arg;
    X509 *leaf = SSL_get_certificate(ssl);
    for (size_t i = 0; leaf && i < ts->nocsp; i++) {
        if (ts->ocsp[i].leaf != leaf)
            continue;
        unsigned char *copy = OPENSSL_memdup(ts->ocsp[i].der, (size_t)ts->ocsp[i].len);
        if (copy && !SSL_set_tlsext_status_ocsp_resp(ssl, copy, ts->ocsp[i].len))
            OPENSSL_free(copy);
        return copy ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Mutual TLS: the reason a client certificate failed goes to the log. */
static int on_verify(int ok, X509_STORE_CTX *xs)
{
    if (!ok) {
        int e = X509_STORE_CTX_get_error(xs);
        X509 *cert = X509_STORE_CTX_get_current_cert(xs);
        char subj[256] = "?";
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
        lb_info("tls client certificate rejected", "reason=\"%s\" subject=\"%s\"",
                X509_verify_cert_error_string(e), subj);
    }
    return ok;
}

/* ---- one context ---- */

static SSL_CTX *new_server_ctx(const struct conf_tls *cf, struct tls_server *ts,
                               struct tls_diag *dg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_diag_err(dg, cf->pos, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, cf->min_version == CONF_TLS_1_3 ? TLS1_3_VERSION
                                                                       : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_cipher_list(ctx, intermediate_ciphers);
    SSL_CTX_set1_groups_list(ctx, groups);
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, ts);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, ts);
    SSL_CTX_set_tlsext_status_cb(ctx, on_ocsp);
    SSL_CTX_set_tlsext_status_arg(ctx, ts);
    /* Resumption is by tickets only: they work on every worker; a session cache would not. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char sid_ctx[] = "lb";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (cf->session_tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (cf->client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cf->client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, cf->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            tls_diag_ssl(dg, cf->client_ca_pos, "client_ca %s holds no usable CA certificate",
                         cf->client_ca);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, on_verify);
    }
    return ctx;
}

/* ---- certificates ---- */

struct loaded {
    X509 *leaf;
    char *names; /* comma-separated, lowercased */
    int key_type;
    SSL_CTX *ctx;
};

static int add_name(char *buf, size_t size, const char *name, size_t len)
{
    size_t used = strlen(buf);
    if (used + len + 2 > size)
        return -1;
    if (used)
        buf[used++] = ',';
    for (size_t i = 0; i < len; i++)
        buf[used + i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    buf[used + len] = '\0';
    return 0;
}

/* The DNS names of @x: subjectAltName entries, else the common name. */
static char *cert_names(X509 *x)
{
    char buf[4096] = "";
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            add_name(buf, sizeof(buf), (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                     (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (!buf[0]) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        if (n > 0)
            add_name(buf, sizeof(buf), cn, (size_t)n);
    }
    return strdup(buf);
}

static void fill_info(struct tls_cert_info *ci, const struct conf_tls_cert *cc, X509 *x,
                      const char *names)
{
    char line[512];
    ci->file = strdup(cc->cert);
    ci->names = strdup(names);
    X509_NAME_oneline(X509_get_subject_name(x), line, sizeof(line));
    ci->subject = strdup(line);
    X509_NAME_oneline(X509_get_issuer_name(x), line, sizeof(line));
    ci->issuer = strdup(line);
    ci->not_before = tls_asn1_time(X509_get0_notBefore(x));
    ci->not_after = tls_asn1_time(X509_get0_notAfter(x));
    EVP_PKEY *pk = X509_get0_pubkey(x);
    int bits = pk ? EVP_PKEY_get_bits(pk) : 0;
    if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC)
        snprintf(ci->key, sizeof(ci->key), "EC %d", bits);
    else if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
        snprintf(ci->key, sizeof(ci->key), "RSA %d", bits);
    else
        snprintf(ci->key, sizeof(ci->key), "%s", pk ? OBJ_nid2sn(EVP_PKEY_get_base_id(pk)) : "?");
}

static X509 *read_leaf(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static EVP_PKEY *read_key(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return pk;
}

static int load_ocsp(struct tls_server *ts, const struct conf_tls_cert *cc, X509 *leaf,
                     struct tls_diag *dg)
{
    BIO *b = BIO_new_file(cc->ocsp, "rb");
    OCSP_RESPONSE *r = b ? d2i_OCSP_RESPONSE_bio(b, NULL) : NULL;
    BIO_free(b);
    if (!r) {
        tls_diag_ssl(dg, cc->ocsp_pos, "ocsp %s is not a DER OCSP response", cc->ocsp);
        return -EINVAL;
    }
    struct tls_ocsp *o = &ts->ocsp[ts->nocsp];
    o->len = i2d_OCSP_RESPONSE(r, &o->der);
    OCSP_RESPONSE_free(r);
    if (o->len <= 0) {
        tls_diag_err(dg, cc->ocsp_pos, "ocsp %s cannot be encoded", cc->ocsp);
        return -EINVAL;
    }
    X509_up_ref(leaf);
    o->leaf = leaf;
    ts->nocsp++;
    return 0;
}

/* Loads certificate @i into a context: a new one, or the one of an earlier certificate that
 * serves the same names with another key type. */
static int load_cert(struct tls_server *ts, struct loaded *ld, size_t i, struct tls_diag *dg)
{
    const struct conf_tls_cert *cc = &ts->cf->certs[i];
    X509 *x = read_leaf(cc->cert);
    if (!x) {
        tls_diag_ssl(dg, cc->cert_pos, "%s holds no PEM certificate", cc->cert);
        return -EINVAL;
    }
    ld[i].leaf = x;
    ld[i].names = cert_names(x);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    ld[i].key_type = pub ? EVP_PKEY_get_base_id(pub) : 0;
    fill_info(&ts->certs[i], cc, x, ld[i].names ? ld[i].names : "");
    tls_check_dates(dg, cc->cert_pos, cc->cert, x);

    SSL_CTX *ctx = NULL;
    for (size_t j = 0; j < i; j++) {
        if (ld[j].ctx && ld[j].names && ld[i].names && !strcmp(ld[j].names, ld[i].names)) {
            if (ld[j].key_type == ld[i].key_type) {
                tls_diag_err(dg, cc->pos,
                             "certificate %zu serves the same names with the same key type as "
                             "certificate %zu (%s); give one of each key type at most",
                             i + 1, j + 1, ld[j].names);
                return -EINVAL;
            }
            ctx = ld[j].ctx;
        }
    }
    bool fresh = !ctx;
    if (fresh && !(ctx = new_server_ctx(ts->cf, ts, dg)))
        return -EINVAL;
    int rc = -EINVAL;
    ERR_clear_error();
    EVP_PKEY *pk = read_key(cc->key);
    if (!pk)
        tls_diag_ssl(dg, cc->key_pos, "%s holds no PEM private key", cc->key);
    else if (X509_check_private_key(x, pk) != 1)
        tls_diag_err(dg, cc->key_pos, "key %s does not match certificate %s", cc->key, cc->cert);
    else if (SSL_CTX_use_certificate_chain_file(ctx, cc->cert) != 1)
        tls_diag_ssl(dg, cc->cert_pos, "cannot use certificate %s", cc->cert);
    else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1)
        tls_diag_ssl(dg, cc->key_pos, "cannot use key %s", cc->key);
    else
        rc = 0;
    EVP_PKEY_free(pk);
    ERR_clear_error();
    if (rc == 0 && cc->ocsp)
        rc = load_ocsp(ts, cc, x, dg);
    if (rc < 0) {
        if (fresh)
            SSL_CTX_free(ctx);
        return rc;
    }
    ld[i].ctx = ctx;
    if (fresh)
        ts->ctxs[ts->nctxs++] = ctx;
    return 0;
}

/* Fills the SNI tables from the names of each context; the first certificate to name a
 * host keeps it. */
static int build_sni(struct tls_server *ts, struct loaded *ld, size_t n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *p = ld[i].names; p && *p; p++)
            cap += *p == ',';
    cap += n;
    ts->exact = calloc(cap, sizeof(*ts->exact));
    ts->wild = calloc(cap, sizeof(*ts->wild));
    if (!ts->exact || !ts->wild)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *copy = ld[i].names ? strdup(ld[i].names) : NULL, *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save)) {
            bool wild = t[0] == '*' && t[1] == '.';
            struct tls_sni *tab = wild ? ts->wild : ts->exact;
            size_t *cnt = wild ? &ts->nwild : &ts->nexact;
            const char *name = wild ? t + 2 : t;
            bool seen = false;
            for (size_t k = 0; k < *cnt && !seen; k++)
                seen = !strcasecmp(tab[k].name, name);
            if (seen || *cnt >= cap)
                continue;
            tab[*cnt] = (struct tls_sni){.name = strdup(name), .ctx = ld[i].ctx};
            if (tab[*cnt].name)
                (*cnt)++;
        }
        free(copy);
    }
    qsort(ts->exact, ts->nexact, sizeof(*ts->exact), sni_cmp);
    qsort(ts->wild, ts->nwild, sizeof(*ts->wild), sni_cmp);
    return 0;
}

static void alpn_wire(struct tls_server *ts)
{
    for (size_t i = 0; i < ts->cf->nalpn; i++) {
        size_t len = strlen(ts->cf->alpn[i]);
        if (len == 0 || len > 255 || ts->alpn_len + 1 + len > sizeof(ts->alpn))
            continue;
        ts->alpn[ts->alpn_len++] = (unsigned char)len;
        memcpy(ts->alpn + ts->alpn_len, ts->cf->alpn[i], len);
        ts->alpn_len += (unsigned)len;
    }
}

struct tls_server *tls_server_build(const struct conf_tls *cf, struct tls_diag *dg)
{
    struct tls_server *ts = calloc(1, sizeof(*ts));
    struct loaded *ld = calloc(cf->ncerts, sizeof(*ld));
    if (ts) {
        ts->cf = cf;
        ts->ctxs = calloc(cf->ncerts, sizeof(*ts->ctxs));
        ts->certs = calloc(cf->ncerts, sizeof(*ts->certs));
        ts->ocsp = calloc(cf->ncerts, sizeof(*ts->ocsp));
        ts->ncerts = cf->ncerts;
    }
    if (!ts || !ld || !ts->ctxs || !ts->certs || !ts->ocsp) {
        tls_diag_err(dg, cf->pos, "out of memory");
        free(ld);
        tls_server_free(ts);
        return NULL;
    }
    alpn_wire(ts);
    int rc = 0;
    for (size_t i = 0; i < cf->ncerts; i++)
        if (load_cert(ts, ld, i, dg) < 0)
            rc = -EINVAL;
    if (rc == 0 && build_sni(ts, ld, cf->ncerts) < 0) {
        tls_diag_err(dg, cf->pos, "out of memory");
        rc = -ENOMEM;
    }
    for (size_t i = 0; i < cf->ncerts; i++) {
        X509_free(ld[i].leaf);
        free(ld[i].names);
    }
    free(ld);
    if (rc < 0) {
        tls_server_free(ts);
        return NULL;
    }
    return ts;
}

bool tls_server_covers(const struct tls_server *ts, const char *host)
{
    if (sni_find(ts->exact, ts->nexact, host))
        return true;
    const char *dot = strchr(host, '.');
    return dot && dot != host && dot[1] && sni_find(ts->wild, ts->nwild, dot + 1);
}

void tls_server_free(struct tls_server *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->nctxs; i++)
        SSL_CTX_free(ts->ctxs[i]);
    for (size_t i = 0; i < ts->nexact; i++)
        free(ts->exact[i].name);
    for (size_t i = 0; i < ts->nwild; i++)
        free(ts->wild[i].name);
    for (size_t i = 0; ts->certs && i < ts->ncerts; i++) {
        free(ts->certs[i].file);
        free(ts->certs[i].names);
        free(ts->certs[i].subject);
        free(ts->certs[i].issuer);
    }
    for (size_t i = 0; i < ts->nocsp; i++) {
        X509_free(ts->ocsp[i].leaf);
        OPENSSL_free(ts->ocsp[i].der);
    }
    free(ts->ocsp);
    free(ts->certs);
    free(ts->exact);
    free(ts->wild);
    free(ts->ctxs);
    free(ts);
}
