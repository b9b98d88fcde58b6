/*
 * The access log: one line per answered request, buffered per worker and written at the end
 * of each loop iteration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/cache.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/io/tls.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "static/snap.h"

void http_access_log(struct io_worker *w, struct http_conn *c, const char *server)
{
    metrics_listener_count_status(&w->rt->lstats[c->base.listener], c->h.status);
    if (!hw(w)->alog)
        return;
    if (hw(w)->alog_len > ALOG_SIZE - 1024)
        http_flush_log(w);
    char ip[INET6_ADDRSTRLEN + 1];
    http_client_ip_text(c, ip, sizeof(ip));
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *m = "-";
    static const char *const mn[] = {"OTHER",  "GET",     "HEAD",  "POST",    "PUT",
                                     "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    if (c->h.method < sizeof(mn) / sizeof(mn[0]))
        m = mn[c->h.method];
    /* The target is in the incoming header, still in hbuf. */
    const char *target = "-";
    int tlen = 1;
    if (c->h.hbuf && c->h.target_len && c->h.target_off + c->h.target_len <= c->h.hlen) {
        target = c->h.hbuf + c->h.target_off;
        tlen = c->h.target_len > 1024 ? 1024 : (int)c->h.target_len;
    }
    uint64_t total = w->now_ms - c->h.t_start_ms;
    long up = c->h.t_resp_ms >= c->h.t_start_ms && c->h.status && c->h.t_resp_ms < w->now_ms + 1
                  ? (long)(c->h.t_resp_ms - c->h.t_start_ms)
                  : -1;
    int n = snprintf(hw(w)->alog + hw(w)->alog_len, ALOG_SIZE - hw(w)->alog_len,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ client=%s method=%s target=%.*s "
                     "status=%u bytes_in=%lu bytes_out=%lu listener=%s server=%s "
                     "upstream_ms=%ld total_ms=%lu\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, ip, m, tlen, target, c->h.status,
                     (unsigned long)c->h.bytes_in, (unsigned long)c->h.bytes_out,
                     lcf_of(w, c)->name, server, up, (unsigned long)total);
    if (n > 0 && (uint32_t)n < ALOG_SIZE - hw(w)->alog_len)
        hw(w)->alog_len += (uint32_t)n;
    else
        return;
    if (c->st.tls) {
        /* TLS connections: the version, cipher and the name the client asked for. */
        struct io_tls_info ti;
        io_tls_get_info(&c->st, &ti);
        char *end = hw(w)->alog + hw(w)->alog_len - 1; /* the newline */
        n = snprintf(end, ALOG_SIZE - hw(w)->alog_len + 1, " tls=%s cipher=%s sni=%.*s%s\n",
                     ti.version, ti.cipher, 253, ti.sni[0] ? ti.sni : "-",
                     ti.resumed ? " resumed=1" : "");
        if (n > 0 && (uint32_t)n <= ALOG_SIZE - hw(w)->alog_len)
            hw(w)->alog_len += (uint32_t)n - 1;
        else
            *end = '\n';
    }
}

void http_flush_log(struct io_worker *w)
{
    if (hw(w)->alog && hw(w)->alog_len && hw(w)->alog_fd >= 0) {
        ssize_t r = write(hw(w)->alog_fd, hw(w)->alog, hw(w)->alog_len);
        (void)r;
    }
    hw(w)->alog_len = 0;
}
