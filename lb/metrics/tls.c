/*
 * TLS in /metrics, /stats, the status page and lbctl tls: handshakes by result and version,
 * resumptions, failures by reason, handshakes with servers, and every certificate of the
 * running generation with its expiry.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/metrics/metrics.h"
#include "lb/tls/tls.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void help(struct lb_jbuf *o, const char *name, const char *type, const char *text)
{
    lb_jbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static bool any_tls(const struct lb_runtime *rt)
{
    if (!rt->tls)
        return false;
    for (size_t i = 0; i < rt->tls->nlisteners; i++)
        if (rt->tls->listeners[i])
            return true;
    for (size_t i = 0; i < rt->tls->nclusters; i++)
        if (rt->tls->clusters[i])
            return true;
    return false;
}

void metrics_prom_tls(struct lb_runtime *rt, struct lb_jbuf *o)
{
    if (!any_tls(rt))
        return;
    struct tls_stats *s = &tls_stats;
    help(o, "lb_tls_handshakes_total", "counter",
         "TLS handshakes with clients that completed, by protocol version.");
    lb_jbuf_printf(o, "lb_tls_handshakes_total{version=\"TLSv1.2\"} %llu\n",
                   (unsigned long long)LOAD(s->handshakes[0]));
    lb_jbuf_printf(o, "lb_tls_handshakes_total{version=\"TLSv1.3\"} %llu\n",
                   (unsigned long long)LOAD(s->handshakes[1]));
    help(o, "lb_tls_resumptions_total", "counter",
         "Client handshakes that resumed a session from a ticket.");
    lb_jbuf_printf(o, "lb_tls_resumptions_total %llu\n", (unsigned long long)LOAD(s->resumed));
    help(o, "lb_tls_handshake_failures_total", "counter",
         "Client TLS handshakes (and records) that failed, by reason.");
    for (int f = 0; f < TLS_FAIL__COUNT; f++)
        lb_jbuf_printf(o, "lb_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
                       tls_fail_name((enum tls_fail)f), (unsigned long long)LOAD(s->failed[f]));
    help(o, "lb_tls_upstream_handshakes_total", "counter",
         "TLS handshakes with servers: ok, failed (verify_failed is a part of failed).");
    lb_jbuf_printf(o, "lb_tls_upstream_handshakes_total{result=\"ok\"} %llu\n",
                   (unsigned long long)LOAD(s->upstream_ok));
    lb_jbuf_printf(o, "lb_tls_upstream_handshakes_total{result=\"failed\"} %llu\n",
                   (unsigned long long)LOAD(s->upstream_failed));
    lb_jbuf_printf(o, "lb_tls_upstream_handshakes_total{result=\"verify_failed\"} %llu\n",
                   (unsigned long long)LOAD(s->upstream_verify_failed));
    help(o, "lb_tls_upstream_resumptions_total", "counter",
         "TLS handshakes with servers that resumed a session.");
    lb_jbuf_printf(o, "lb_tls_upstream_resumptions_total %llu\n",
                   (unsigned long long)LOAD(s->upstream_resumed));

    help(o, "lb_tls_cert_expiry_seconds", "gauge",
         "Seconds until a served certificate's notAfter (negative once expired).");
    time_t now = time(NULL);
    for (size_t i = 0; i < rt->tls->nlisteners; i++) {
        const struct tls_server *ts = rt->tls->listeners[i];
        for (size_t k = 0; ts && k < ts->ncerts; k++) {
            const struct tls_cert_info *ci = &ts->certs[k];
            lb_jbuf_printf(o, "lb_tls_cert_expiry_seconds{listener=\"");
            metrics_label_value(o, rt->conf->listeners[i].name,
                                strlen(rt->conf->listeners[i].name));
            lb_jbuf_printf(o, "\",file=\"");
            metrics_label_value(o, ci->file ? ci->file : "", ci->file ? strlen(ci->file) : 0);
            lb_jbuf_printf(o, "\",names=\"");
            metrics_label_value(o, ci->names ? ci->names : "", ci->names ? strlen(ci->names) : 0);
            lb_jbuf_printf(o, "\"} %lld\n", (long long)(ci->not_after - now));
        }
    }
}

static void jstr0(struct lb_jbuf *o, const char *s)
{
    s = s ? s : "";
    lb_jbuf_str(o, s, strlen(s));
}

void metrics_json_certs(struct lb_runtime *rt, struct lb_jbuf *o)
{
    time_t now = time(NULL);
    lb_jbuf_printf(o, "[");
    bool first = true;
    for (size_t i = 0; rt->tls && i < rt->tls->nlisteners; i++) {
        const struct tls_server *ts = rt->tls->listeners[i];
        for (size_t k = 0; ts && k < ts->ncerts; k++) {
            const struct tls_cert_info *ci = &ts->certs[k];
            char when[32] = "";
            struct tm tm;
            if (gmtime_r(&ci->not_after, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            long long left = (long long)(ci->not_after - now);
            /* Days left rounded down, so an expired certificate is negative. */
            long long days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
            lb_jbuf_printf(o, "%s{\"listener\":", first ? "" : ",");
            jstr0(o, rt->conf->listeners[i].name);
            lb_jbuf_printf(o, ",\"file\":");
            jstr0(o, ci->file);
            lb_jbuf_printf(o, ",\"names\":");
            jstr0(o, ci->names);
            lb_jbuf_printf(o, ",\"subject\":");
            jstr0(o, ci->subject);
            lb_jbuf_printf(o, ",\"issuer\":");
            jstr0(o, ci->issuer);
            lb_jbuf_printf(o, ",\"key\":");
            jstr0(o, ci->key);
            lb_jbuf_printf(o, ",\"not_after\":\"%s\",\"expires_in_s\":%lld,\"days_left\":%lld}",
                           when, left, days);
            first = false;
        }
    }
    lb_jbuf_printf(o, "]");
}
