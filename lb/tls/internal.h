/*
 * Private to lb/tls: diagnostics while building contexts, and the builders of one listener's
 * and one cluster's contexts.
 */
#ifndef LB_TLS_INTERNAL_H
#define LB_TLS_INTERNAL_H

#include <openssl/x509.h>
#include <pthread.h>

#include "lb/core/log.h"
#include "lb/tls/tls.h"

struct tls_diag {
    struct conf_diags *errs;
    struct conf_diags *warns; /* may be NULL */
};

__attribute__((format(printf, 3, 4))) void tls_diag_err(struct tls_diag *dg, struct conf_pos pos,
                                                        const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void tls_diag_warn(struct tls_diag *dg, struct conf_pos pos,
                                                         const char *fmt, ...);
/* An error followed by what OpenSSL's error queue says (which it empties). */
__attribute__((format(printf, 3, 4))) void tls_diag_ssl(struct tls_diag *dg, struct conf_pos pos,
                                                        const char *fmt, ...);

/* Warns when @x is expired or not yet valid. */
void tls_check_dates(struct tls_diag *dg, struct conf_pos pos, const char *file, X509 *x);
time_t tls_asn1_time(const ASN1_TIME *t);

struct tls_server *tls_server_build(const struct conf_tls *cf, struct tls_diag *dg);
void tls_server_free(struct tls_server *ts);
/* True when a certificate of @ts serves @host (exactly or by a wildcard). */
bool tls_server_covers(const struct tls_server *ts, const char *host);

struct tls_client *tls_client_build(const struct conf_upstream_tls *cf, struct tls_diag *dg);
void tls_client_free(struct tls_client *tc);

#endif
