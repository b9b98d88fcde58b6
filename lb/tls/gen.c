/*
 * One configuration's TLS contexts (lb/tls/tls.h), their diagnostics, and the contexts lb
 * uses to reach servers over TLS.
 */
#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/tls/internal.h"

static void vdiag(struct conf_diags *d, struct conf_pos pos, const char *prefix, const char *fmt,
                  va_list ap)
{
    if (!d)
        return;
    char msg[200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (d->n < CONF_MAX_ERRORS) {
        struct conf_diag *e = &d->items[d->n++];
        e->pos = pos;
        snprintf(e->msg, sizeof(e->msg), "%s%s", prefix, msg);
    } else {
        d->dropped++;
    }
}

void tls_diag_err(struct tls_diag *dg, struct conf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(dg->errs, pos, "", fmt, ap);
    va_end(ap);
}

void tls_diag_warn(struct tls_diag *dg, struct conf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdiag(dg->warns, pos, "warning: ", fmt, ap);
    va_end(ap);
}

void tls_diag_ssl(struct tls_diag *dg, struct conf_pos pos, const char *fmt, ...)
{
    char msg[160], why[120] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The deepest error is the most specific one. */
    unsigned long e, last = 0;
    while ((e = ERR_get_error()))
        last = e;
    if (last) {
        const char *r = ERR_reason_error_string(last);
        snprintf(why, sizeof(why), ": %s", r ? r : "unknown OpenSSL error");
    }
    tls_diag_err(dg, pos, "%s%s", msg, why);
}

time_t tls_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

void tls_check_dates(struct tls_diag *dg, struct conf_pos pos, const char *file, X509 *x)
{
    time_t now = time(NULL);
    time_t nb = tls_asn1_time(X509_get0_notBefore(x)), na = tls_asn1_time(X509_get0_notAfter(x));
    char when[32];
    if (na && na < now) {
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&na));
        tls_diag_warn(dg, pos, "certificate %s expired on %s; clients will refuse it", file, when);
    } else if (nb && nb > now) {
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&nb));
        tls_diag_warn(dg, pos, "certificate %s is not valid before %s", file, when);
    }
}

/* ---- contexts towards servers ---- */

static int slot_idx = -1;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void make_slot_idx(void)
{
    slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int tls_session_slot_index(void)
{
    pthread_once(&slot_once, make_slot_idx);
    return slot_idx;
}

/* A session from a server (TLS 1.2 at the handshake, TLS 1.3 tickets after it): kept in the
 * slot of the worker and server the connection belongs to, replacing the older one. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_ex_data(ssl, tls_session_slot_index());
    if (!slot)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1; /* we keep the reference */
}

struct tls_client *tls_client_build(const struct conf_upstream_tls *cf, struct tls_diag *dg)
{
    struct tls_client *tc = calloc(1, sizeof(*tc));
    if (!tc || !(tc->ctx = SSL_CTX_new(TLS_client_method()))) {
        free(tc);
        tls_diag_err(dg, cf->pos, "cannot make a TLS context");
        return NULL;
    }
    tc->cf = cf;
    SSL_CTX *ctx = tc->ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Sessions are kept per server by the workers (lb/io/tls.c), not in OpenSSL's cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (cf->verify) {
        ERR_clear_error();
        int ok = cf->ca ? SSL_CTX_load_verify_locations(ctx, cf->ca, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            tls_diag_ssl(dg, cf->ca_pos, "ca %s holds no usable CA certificate",
                         cf->ca ? cf->ca : "(system default)");
            tls_client_free(tc);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return tc;
}

void tls_client_free(struct tls_client *tc)
{
    if (!tc)
        return;
    SSL_CTX_free(tc->ctx);
    free(tc);
}

/* ---- the generation ---- */

/* Hosts that a TLS listener's routes match and that no certificate serves. */
static void check_hosts(const struct conf_listener *l, const struct tls_server *ts,
                        struct tls_diag *dg)
{
    for (size_t i = 0; i < l->nroutes; i++) {
        const struct conf_route *r = &l->routes[i];
        if (r->host && r->host[0] != '[' && !tls_server_covers(ts, r->host))
            tls_diag_warn(dg, r->pos,
                          "no certificate of listener %s serves host %s; its clients get the "
                          "first certificate and a name mismatch",
                          l->name, r->host);
    }
}

struct tls_gen *tls_gen_build(const struct conf *c, struct conf_diags *errs,
                              struct conf_diags *warns)
{
    struct tls_diag dg = {.errs = errs, .warns = warns};
    size_t before = errs->n + errs->dropped;
    struct tls_gen *g = calloc(1, sizeof(*g));
    if (!g || tls_keys_init() < 0) {
        free(g);
        tls_diag_err(&dg, (struct conf_pos){0, 0}, "cannot set up TLS (out of memory or no RNG)");
        return NULL;
    }
    g->nlisteners = c->nlisteners;
    g->nclusters = c->nclusters;
    g->listeners = calloc(c->nlisteners ? c->nlisteners : 1, sizeof(*g->listeners));
    g->clusters = calloc(c->nclusters ? c->nclusters : 1, sizeof(*g->clusters));
    if (!g->listeners || !g->clusters) {
        tls_gen_free(g);
        tls_diag_err(&dg, (struct conf_pos){0, 0}, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (!l->tls.enabled)
            continue;
        g->listeners[i] = tls_server_build(&l->tls, &dg);
        if (g->listeners[i])
            check_hosts(l, g->listeners[i], &dg);
    }
    for (size_t i = 0; i < c->nclusters; i++)
        if (c->clusters[i].tls.enabled)
            g->clusters[i] = tls_client_build(&c->clusters[i].tls, &dg);
    if (errs->n + errs->dropped > before) {
        tls_gen_free(g);
        return NULL;
    }
    return g;
}

void tls_gen_free(struct tls_gen *g)
{
    if (!g)
        return;
    for (size_t i = 0; g->listeners && i < g->nlisteners; i++)
        tls_server_free(g->listeners[i]);
    for (size_t i = 0; g->clusters && i < g->nclusters; i++)
        tls_client_free(g->clusters[i]);
    free(g->listeners);
    free(g->clusters);
    free(g);
}
