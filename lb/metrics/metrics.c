/*
 * The metrics endpoint's answers: the Prometheus text, the /stats JSON, the status page and
 * the request line parser. No sockets here (lb/metrics/http.c); see metrics.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "lb/admin/admin.h"
#include "lb/core/limits.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/io/worker.h"
#include "lb/metrics/metrics.h"

#ifndef LB_VERSION
#define LB_VERSION "0.1-dev"
#endif

/* ---- Prometheus text ------------------------------------------------------------------- */

void metrics_label_value(struct lb_jbuf *out, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc)
            continue;
        lb_jbuf_printf(out, "%.*s%s", (int)(i - start), s + start, esc);
        start = i + 1;
    }
    lb_jbuf_printf(out, "%.*s", (int)(len - start), s + start);
}

struct label {
    const char *k, *v;
};

static void family(struct lb_jbuf *o, const char *name, const char *type, const char *help)
{
    /* HELP text needs \\ and \n escaped; ours is fixed ASCII prose without either. */
    lb_jbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labels(struct lb_jbuf *o, const struct label *l, size_t n)
{
    if (!n)
        return;
    lb_jbuf_printf(o, "{");
    for (size_t i = 0; i < n; i++) {
        lb_jbuf_printf(o, "%s%s=\"", i ? "," : "", l[i].k);
        metrics_label_value(o, l[i].v, strlen(l[i].v));
        lb_jbuf_printf(o, "\"");
    }
    lb_jbuf_printf(o, "}");
}

static void sample_u64(struct lb_jbuf *o, const char *name, const struct label *l, size_t n,
                       uint64_t v)
{
    lb_jbuf_printf(o, "%s", name);
    labels(o, l, n);
    lb_jbuf_printf(o, " %llu\n", (unsigned long long)v);
}

static void sample_f(struct lb_jbuf *o, const char *name, const struct label *l, size_t n, double v)
{
    lb_jbuf_printf(o, "%s", name);
    labels(o, l, n);
    lb_jbuf_printf(o, " %.9g\n", v);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define NL(a) (sizeof(a) / sizeof((a)[0]))

static const char *const code_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

/* Whether requests on http listener @l can reach cluster @ci (a route to it, or a static
 * route whose set falls back to it): then its lb_requests_total series exist from the start
 * at 0, as Prometheus prefers, instead of appearing with the first response. */
static bool reaches(const struct conf *cf, const struct conf_listener *l, size_t ci)
{
    if (l->protocol != CONF_PROTO_HTTP)
        return false;
    for (size_t r = 0; r < l->nroutes; r++) {
        const struct conf_route *rt = &l->routes[r];
        if (rt->action == CONF_ACT_CLUSTER && rt->target_idx == (int)ci)
            return true;
        if (rt->action == CONF_ACT_STATIC && rt->target_idx >= 0 &&
            (size_t)rt->target_idx < cf->nstatics &&
            cf->statics[rt->target_idx].fallback_idx == (int)ci)
            return true;
    }
    return false;
}

/* A gauge with one sample per worker: the _Atomic uint32_t at @off in struct io_worker. */
static void per_worker(struct lb_runtime *rt, struct lb_jbuf *o, const char *name, const char *help,
                       size_t off)
{
    family(o, name, "gauge", help);
    for (uint32_t i = 0; rt->workers && i < rt->nworkers; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%u", i);
        sample_u64(o, name, (struct label[]){{"worker", id}}, 1,
                   LOAD(*(_Atomic uint32_t *)((char *)&rt->workers[i] + off)));
    }
}

static void prom_process(struct lb_runtime *rt, struct lb_jbuf *o)
{
    family(o, "lb_build_info", "gauge", "Always 1; the labels say which lb this is.");
    sample_u64(o, "lb_build_info", (struct label[]){{"version", LB_VERSION}}, 1, 1);
    family(o, "lb_workers", "gauge", "Worker threads, each with its own io_uring ring.");
    sample_u64(o, "lb_workers", NULL, 0, rt->nworkers);
    per_worker(rt, o, "lb_connections_active",
               "Connection slots in use per worker: client connections and L7 backend connections.",
               offsetof(struct io_worker, conns_open));
    per_worker(rt, o, "lb_worker_buffers_in_use",
               "Receive and TLS plaintext buffers held per worker (not free for the kernel).",
               offsetof(struct io_worker, bufs_in_use));
    per_worker(rt, o, "lb_worker_files_open",
               "Sockets per worker in its fixed-file table: clients and backends.",
               offsetof(struct io_worker, files_in_use));
    static const char *const ring[3][2] = {
        {"lb_worker_ring_sqes_total", "io_uring submission entries prepared per worker."},
        {"lb_worker_ring_cqes_total", "io_uring completions handled per worker."},
        {"lb_worker_ring_enters_total", "io_uring_enter calls per worker (waits, and submits of "
                                        "a full submission queue)."}};
    for (int k = 0; k < 3; k++) {
        family(o, ring[k][0], "counter", ring[k][1]);
        for (uint32_t i = 0; rt->workers && i < rt->nworkers; i++) {
            char id[16];
            snprintf(id, sizeof(id), "%u", i);
            sample_u64(o, ring[k][0], (struct label[]){{"worker", id}}, 1,
                       LOAD(rt->workers[i].ring_pub[k]));
        }
    }
    family(o, "lb_connections_max", "gauge", "Connection slots per worker (max_connections).");
    sample_u64(o, "lb_connections_max", NULL, 0, rt->conns_per_worker);
}

/* A counter with one sample per listener: the _Atomic uint64_t at @off in its stats. */
static void per_listener(struct lb_runtime *rt, struct lb_jbuf *o, const char *name,
                         const char *help, size_t off)
{
    const struct conf *cf = rt->conf;
    family(o, name, "counter", help);
    for (size_t i = 0; i < cf->nlisteners; i++)
        sample_u64(o, name, (struct label[]){{"listener", cf->listeners[i].name}}, 1,
                   LOAD(*(_Atomic uint64_t *)((char *)&rt->lstats[i] + off)));
}

static void prom_listeners(struct lb_runtime *rt, struct lb_jbuf *o)
{
    const struct conf *cf = rt->conf;
    if (!rt->lstats || !cf->nlisteners)
        return;
    family(o, "lb_listener_connections_total", "counter", "Client connections accepted.");
    for (size_t i = 0; i < cf->nlisteners; i++)
        sample_u64(o, "lb_listener_connections_total",
                   (struct label[]){{"listener", cf->listeners[i].name},
                                    {"protocol", conf_protocol_name(cf->listeners[i].protocol)}},
                   2, LOAD(rt->lstats[i].accepted));
    family(o, "lb_listener_connections_active", "gauge", "Client connections open.");
    for (size_t i = 0; i < cf->nlisteners; i++)
        sample_u64(o, "lb_listener_connections_active",
                   (struct label[]){{"listener", cf->listeners[i].name},
                                    {"protocol", conf_protocol_name(cf->listeners[i].protocol)}},
                   2, LOAD(rt->lstats[i].active));
    per_listener(rt, o, "lb_listener_refused_total",
                 "Connections accepted and closed at once: the worker was at max_connections.",
                 offsetof(struct metrics_listener_stats, refused));
    per_listener(rt, o, "lb_listener_accept_paused_total",
                 "Times accepting stopped for lack of a free file slot (ulimit -n), until a "
                 "connection closed.",
                 offsetof(struct metrics_listener_stats, paused));
    family(o, "lb_listener_limited_total", "counter",
           "Connections (reason=connections) and requests or tcp connections (reason=rate) "
           "refused by the listener's per-address limits.");
    for (size_t i = 0; rt->limits && i < cf->nlisteners; i++) {
        if (!rt->limits[i])
            continue;
        sample_u64(o, "lb_listener_limited_total",
                   (struct label[]){{"listener", cf->listeners[i].name}, {"reason", "connections"}},
                   2, LOAD(rt->limits[i]->refused_conns));
        sample_u64(o, "lb_listener_limited_total",
                   (struct label[]){{"listener", cf->listeners[i].name}, {"reason", "rate"}}, 2,
                   LOAD(rt->limits[i]->refused_rate));
    }
    family(o, "lb_listener_responses_total", "counter",
           "HTTP responses sent to clients by status class, lb's own answers included.");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        if (cf->listeners[i].protocol != CONF_PROTO_HTTP)
            continue;
        for (int k = 0; k < 5; k++)
            sample_u64(
                o, "lb_listener_responses_total",
                (struct label[]){{"listener", cf->listeners[i].name}, {"code", code_names[k]}}, 2,
                LOAD(rt->lstats[i].resp[k]));
    }
}

/* The route cache's results per listener (lb/http/answer_cache.c). */
static void prom_cache(struct lb_runtime *rt, struct lb_jbuf *o)
{
    static const char *const results[METRICS_CACHE_NRESULTS] = {
        [METRICS_CACHE_HIT] = "hit",     [METRICS_CACHE_NOT_MODIFIED] = "not_modified",
        [METRICS_CACHE_MISS] = "miss",   [METRICS_CACHE_REVALIDATED] = "revalidated",
        [METRICS_CACHE_STALE] = "stale", [METRICS_CACHE_BYPASS] = "bypass",
    };
    const struct conf *cf = rt->conf;
    if (!rt->lstats)
        return;
    family(o, "lb_cache_requests_total", "counter",
           "GET requests on cached routes: answered from memory (hit, or 304 not_modified), "
           "from memory after the origin's 304 to a revalidation (revalidated) or stale as the "
           "origin failed or while another request refreshed it (stale), by the origin "
           "(miss), or not for the cache (bypass: Range, If-Match...).");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        if (cf->listeners[i].protocol != CONF_PROTO_HTTP)
            continue;
        for (int k = 0; k < METRICS_CACHE_NRESULTS; k++)
            sample_u64(
                o, "lb_cache_requests_total",
                (struct label[]){{"listener", cf->listeners[i].name}, {"result", results[k]}}, 2,
                LOAD(rt->lstats[i].cache[k]));
    }
    per_listener(rt, o, "lb_cache_invalidations_total",
                 "Unsafe requests (POST, PUT, DELETE, PATCH...) answered 2xx or 3xx on cached "
                 "routes: their URI, Location and Content-Location left the cache.",
                 offsetof(struct metrics_listener_stats, cache_invalidations));
}

static void prom_requests(struct lb_runtime *rt, struct lb_jbuf *o)
{
    const struct conf *cf = rt->conf;
    family(o, "lb_requests_total", "counter",
           "HTTP requests answered by a server, by listener and response status class.");
    for (size_t ci = 0; ci < cf->nclusters; ci++) {
        for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
            const struct cl_server *s = &rt->clusters[ci].servers[si];
            for (size_t li = 0; li < cf->nlisteners; li++) {
                uint64_t v[5] = {0}, any = 0;
                for (int k = 0; s->resp_by_listener && li < s->nlisteners && k < 5; k++)
                    any |= v[k] = LOAD(s->resp_by_listener[li][k]);
                if (!any && !reaches(cf, &cf->listeners[li], ci))
                    continue;
                for (int k = 0; k < 5; k++)
                    sample_u64(o, "lb_requests_total",
                               (struct label[]){{"listener", cf->listeners[li].name},
                                                {"cluster", cf->clusters[ci].name},
                                                {"server", s->cf->name},
                                                {"code", code_names[k]}},
                               4, v[k]);
            }
        }
    }
}

/* The per-server families with one plain value each, in the order they are written. */
enum srv_field {
    F_PICKS, F_ACTIVE, F_BYTES_IN, F_BYTES_OUT, F_CONNECT_ERRORS, F_RETRIES, F_CONNECT_QUEUED,
    F_UP, F_WEIGHT, F_CONFIG_WEIGHT,
};

static const struct {
    const char *name, *type, *help;
    enum srv_field field;
} srv_families[] = {
    {"lb_server_picks_total", "counter",
     "Times the balancer chose the server (connections for tcp, requests for http).", F_PICKS},
    {"lb_server_active", "gauge", "Connections (tcp) or requests (http) in flight on the server.",
     F_ACTIVE},
    {"lb_server_received_bytes_total", "counter", "Bytes received from the server.", F_BYTES_IN},
    {"lb_server_sent_bytes_total", "counter", "Bytes sent to the server.", F_BYTES_OUT},
    {"lb_server_connect_errors_total", "counter",
     "Connections to the server that failed or timed out.", F_CONNECT_ERRORS},
    {"lb_server_retries_total", "counter",
     "Requests that failed on the server and were sent again.", F_RETRIES},
    {"lb_server_connect_queued_total", "counter",
     "HTTP requests that waited for a connection: new connects to the server were paced.",
     F_CONNECT_QUEUED},
    {"lb_server_up", "gauge",
     "1 unless health checks took the server down or passive detection ejected it.", F_UP},
    {"lb_server_weight", "gauge", "Effective weight (operator weight, slow start).", F_WEIGHT},
    {"lb_server_config_weight", "gauge", "Weight in the configuration file.", F_CONFIG_WEIGHT},
};

static uint64_t srv_value(const struct cl_server *s, enum srv_field f)
{
    switch (f) {
    case F_PICKS:
        return LOAD(s->picks);
    case F_ACTIVE:
        return LOAD(s->active);
    case F_BYTES_IN:
        return LOAD(s->bytes_in);
    case F_BYTES_OUT:
        return LOAD(s->bytes_out);
    case F_CONNECT_ERRORS:
        return LOAD(s->connect_failures);
    case F_RETRIES:
        return LOAD(s->retries);
    case F_CONNECT_QUEUED:
        return LOAD(s->connect_queued);
    case F_UP:
        return !(LOAD(s->flags) & (CL_SRV_F_DOWN | CL_SRV_F_EJECTED));
    case F_WEIGHT:
        return LOAD(s->weight);
    case F_CONFIG_WEIGHT:
        return s->cf->weight;
    }
    return 0;
}

static void prom_servers(struct lb_runtime *rt, struct lb_jbuf *o)
{
    static const char *const states[] = {"up", "backup", "draining", "down", "ejected"};
    const struct conf *cf = rt->conf;

    for (size_t fi = 0; fi < NL(srv_families); fi++) {
        family(o, srv_families[fi].name, srv_families[fi].type, srv_families[fi].help);
        for (size_t ci = 0; ci < cf->nclusters; ci++) {
            for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
                const struct cl_server *s = &rt->clusters[ci].servers[si];
                struct label l[] = {{"cluster", cf->clusters[ci].name}, {"server", s->cf->name}};
                sample_u64(o, srv_families[fi].name, l, 2, srv_value(s, srv_families[fi].field));
            }
        }
    }

    family(o, "lb_server_state", "gauge",
           "1 for the state the server is in: draining wins over down, down over ejected.");
    for (size_t ci = 0; ci < cf->nclusters; ci++) {
        for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
            const struct cl_server *s = &rt->clusters[ci].servers[si];
            const char *cur = cl_server_state(s);
            for (size_t k = 0; k < NL(states); k++) {
                struct label l[] = {{"cluster", cf->clusters[ci].name},
                                    {"server", s->cf->name},
                                    {"state", states[k]}};
                sample_u64(o, "lb_server_state", l, 3, !strcmp(cur, states[k]));
            }
        }
    }

    /* Health check results exist only for servers that have been probed. */
    family(o, "lb_server_check_success", "gauge",
           "1 if the last active health check passed, 0 if it failed.");
    for (size_t ci = 0; ci < cf->nclusters; ci++) {
        for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
            const struct cl_server *s = &rt->clusters[ci].servers[si];
            uint32_t pr = LOAD(s->probe_result);
            struct label l[] = {{"cluster", cf->clusters[ci].name}, {"server", s->cf->name}};
            if (pr != CL_PROBE_NONE)
                sample_u64(o, "lb_server_check_success", l, 2, pr == CL_PROBE_OK);
        }
    }
    family(o, "lb_server_check_duration_seconds", "gauge", "How long the last health check took.");
    for (size_t ci = 0; ci < cf->nclusters; ci++) {
        for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
            const struct cl_server *s = &rt->clusters[ci].servers[si];
            struct label l[] = {{"cluster", cf->clusters[ci].name}, {"server", s->cf->name}};
            if (LOAD(s->probe_result) != CL_PROBE_NONE)
                sample_f(o, "lb_server_check_duration_seconds", l, 2,
                         LOAD(s->probe_latency_us) / 1e6);
        }
    }
}

/* Reads a cluster's histogram once: the cumulative counts and _count come from the same
 * reads, so that +Inf equals _count even while workers keep adding. */
static uint64_t latency_read(const struct cl_latency *h, uint64_t cum[CL_LAT_NBUCKETS + 1])
{
    uint64_t total = 0;
    for (int i = 0; i <= CL_LAT_NBUCKETS; i++) {
        total += LOAD(h->bucket[i]);
        cum[i] = total;
    }
    return total;
}

/* One histogram's samples: NAME_bucket{LABELS,le}, NAME_sum{LABELS}, NAME_count{LABELS}.
 * @l has room for one more label (le) after its @n. */
static void histogram(struct lb_jbuf *o, const char *name, struct label *l, size_t n,
                      const struct cl_latency *h)
{
    char sub[96];
    uint64_t cum[CL_LAT_NBUCKETS + 1];
    uint64_t count = latency_read(h, cum);
    snprintf(sub, sizeof(sub), "%s_bucket", name);
    for (int i = 0; i <= CL_LAT_NBUCKETS; i++) {
        char le[32];
        if (i < CL_LAT_NBUCKETS)
            snprintf(le, sizeof(le), "%g", cl_lat_bounds_us[i] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        l[n] = (struct label){"le", le};
        sample_u64(o, sub, l, n + 1, cum[i]);
    }
    snprintf(sub, sizeof(sub), "%s_sum", name);
    sample_f(o, sub, l, n, LOAD(h->sum_us) / 1e6);
    snprintf(sub, sizeof(sub), "%s_count", name);
    sample_u64(o, sub, l, n, count);
}

static void prom_latency(struct lb_runtime *rt, struct lb_jbuf *o)
{
    const char *name = "lb_request_duration_seconds";
    family(o, name, "histogram",
           "HTTP requests answered by the cluster's servers: first request byte to last "
           "response byte.");
    for (size_t ci = 0; ci < rt->conf->nclusters; ci++) {
        struct label l[2] = {{"cluster", rt->conf->clusters[ci].name}};
        histogram(o, name, l, 1, &rt->clusters[ci].latency);
    }
}

/* Whether a redis listener shards over cluster @ci. */
static bool sharded(const struct conf *cf, size_t ci)
{
    if ((int)ci == cf->redis_cluster)
        return true; /* lb's own Redis: its round trips are the enqueue pushes */
    for (size_t i = 0; i < cf->ncaches; i++)
        if (cf->caches[i].cluster_idx == (int)ci)
            return true; /* a shared cache's shards */
    for (size_t i = 0; i < cf->nlisteners; i++)
        if (cf->listeners[i].protocol == CONF_PROTO_REDIS &&
            cf->listeners[i].cluster_idx == (int)ci)
            return true;
    return false;
}

/* The shards of redis listeners: commands, errors and round trips (lb/redis counts them). */
static void prom_redis(struct lb_runtime *rt, struct lb_jbuf *o)
{
    static const char *const fam[][3] = {
        {"lb_redis_commands_total", "counter",
         "Commands (or parts of split ones) sent to the shard."},
        {"lb_redis_errors_total", "counter",
         "Commands the shard answered with an error, or that failed on it (lb's -ERR lb: ...)."},
        {"lb_redis_command_duration_seconds", "histogram",
         "Round trip of a command to the shard: queued to reply."},
    };
    const struct conf *cf = rt->conf;
    bool any = false;
    for (size_t ci = 0; ci < cf->nclusters; ci++)
        any |= sharded(cf, ci);
    for (int f = 0; any && f < 3; f++) {
        family(o, fam[f][0], fam[f][1], fam[f][2]);
        for (size_t ci = 0; ci < cf->nclusters; ci++) {
            for (uint32_t si = 0; sharded(cf, ci) && si < rt->clusters[ci].n; si++) {
                const struct cl_server *s = &rt->clusters[ci].servers[si];
                struct label l[3] = {{"cluster", cf->clusters[ci].name}, {"server", s->cf->name}};
                if (f == 2)
                    histogram(o, fam[f][0], l, 2, &s->latency);
                else
                    sample_u64(o, fam[f][0], l, 2, f == 0 ? LOAD(s->picks) : LOAD(s->errors));
            }
        }
    }
}

void metrics_prom(struct lb_runtime *rt, struct lb_jbuf *out)
{
    prom_process(rt, out);
    prom_listeners(rt, out);
    metrics_prom_queues(rt, out);
    metrics_prom_cache_l2(rt, out);
    prom_cache(rt, out);
    metrics_prom_cache_l1(rt, out);
    prom_requests(rt, out);
    prom_servers(rt, out);
    prom_latency(rt, out);
    metrics_prom_tls(rt, out);
    prom_redis(rt, out);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void jstr(struct lb_jbuf *o, const char *s)
{
    lb_jbuf_str(o, s, strlen(s));
}

/* Each server of cluster @ci: its latency histogram as cumulative counts at the cluster's
 * bucket bounds (buckets_ms), for the status page's per-server p99. */
static void json_server_latency(struct lb_runtime *rt, size_t ci, struct lb_jbuf *out)
{
    for (uint32_t si = 0; si < rt->clusters[ci].n; si++) {
        const struct cl_server *s = &rt->clusters[ci].servers[si];
        uint64_t cum[CL_LAT_NBUCKETS + 1];
        uint64_t count = latency_read(&s->latency, cum);
        lb_jbuf_printf(out, "%s{\"name\":", si ? "," : "");
        jstr(out, s->cf->name);
        lb_jbuf_printf(out, ",\"count\":%llu,\"cum\":[", (unsigned long long)count);
        for (int i = 0; i < CL_LAT_NBUCKETS; i++)
            lb_jbuf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)cum[i]);
        lb_jbuf_printf(out, "]}");
    }
}

void metrics_json(struct lb_runtime *rt, const double *const *rates, struct lb_jbuf *out)
{
    const struct conf *cf = rt->conf;
    lb_jbuf_printf(out, "{\"ok\":true,\"version\":\"%s\",\"workers\":[", LB_VERSION);
    for (uint32_t i = 0; rt->workers && i < rt->nworkers; i++)
        lb_jbuf_printf(out, "%s{\"id\":%u,\"connections\":%u}", i ? "," : "", i,
                       LOAD(rt->workers[i].conns_open));
    lb_jbuf_printf(out, "],\"listeners\":[");
    for (size_t i = 0; i < cf->nlisteners; i++) {
        const struct conf_listener *l = &cf->listeners[i];
        lb_jbuf_printf(out, "%s{\"name\":", i ? "," : "");
        jstr(out, l->name);
        lb_jbuf_printf(out, ",\"bind\":");
        jstr(out, l->bind.text);
        lb_jbuf_printf(out, ",\"protocol\":\"%s\"", conf_protocol_name(l->protocol));
        if (rt->lstats) {
            const struct metrics_listener_stats *ls = &rt->lstats[i];
            lb_jbuf_printf(out, ",\"accepted\":%llu,\"active\":%u,\"responses\":{",
                           (unsigned long long)LOAD(ls->accepted), LOAD(ls->active));
            for (int k = 0; k < 5; k++)
                lb_jbuf_printf(out, "%s\"%s\":%llu", k ? "," : "", code_names[k],
                               (unsigned long long)LOAD(ls->resp[k]));
            lb_jbuf_printf(out, "}");
        }
        lb_jbuf_printf(out, "}");
    }
    lb_jbuf_printf(out, "],");
    admin_status_clusters(rt, rates, out);
    lb_jbuf_printf(out, ",\"latency\":[");
    for (size_t ci = 0; ci < cf->nclusters; ci++) {
        uint64_t cum[CL_LAT_NBUCKETS + 1];
        uint64_t count = latency_read(&rt->clusters[ci].latency, cum);
        lb_jbuf_printf(out, "%s{\"cluster\":", ci ? "," : "");
        jstr(out, cf->clusters[ci].name);
        lb_jbuf_printf(out, ",\"count\":%llu,\"sum_ms\":%.3f,\"buckets_ms\":[",
                       (unsigned long long)count, LOAD(rt->clusters[ci].latency.sum_us) / 1000.0);
        for (int i = 0; i < CL_LAT_NBUCKETS; i++)
            lb_jbuf_printf(out, "%s[%g,%llu]", i ? "," : "", cl_lat_bounds_us[i] / 1000.0,
                           (unsigned long long)cum[i]);
        lb_jbuf_printf(out, "],\"servers\":[");
        json_server_latency(rt, ci, out);
        lb_jbuf_printf(out, "]}");
    }
    lb_jbuf_printf(out, "],\"snapshots\":[");
    for (size_t i = 0; i < rt->nsnap_slots && i < cf->nstatics; i++) {
        lb_jbuf_printf(out, "%s{\"name\":", i ? "," : "");
        jstr(out, cf->statics[i].name);
        struct snap_set *set = snap_slot_get(&rt->snap_slots[i]);
        lb_jbuf_printf(out, ",\"generation\":%llu",
                       (unsigned long long)snap_slot_gen(&rt->snap_slots[i]));
        if (set) {
            struct snap_stats st;
            snap_set_stats(set, &st);
            snap_set_unref(set);
            lb_jbuf_printf(out,
                           ",\"files\":%llu,\"gzip\":%llu,\"body_bytes\":%llu,"
                           "\"memory_bytes\":%llu,\"skipped\":%llu",
                           (unsigned long long)st.files, (unsigned long long)st.gzip,
                           (unsigned long long)st.body_bytes, (unsigned long long)st.memory_bytes,
                           (unsigned long long)st.skipped);
        }
        lb_jbuf_printf(out, "}");
    }
    lb_jbuf_printf(out, "],\"certificates\":");
    metrics_json_certs(rt, out);
    lb_jbuf_printf(out, "}");
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Error";
}

static int respond(struct lb_jbuf *out, int status, const char *type, const struct lb_jbuf *body,
                   const char *text, bool head, const char *extra)
{
    size_t blen = body ? body->len : strlen(text);
    lb_jbuf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                   status, reason(status), type, blen, extra ? extra : "");
    if (!head)
        lb_jbuf_printf(out, "%.*s", (int)blen, body ? body->p : text);
    return status;
}

static int respond_text(struct lb_jbuf *out, int status, bool head, const char *extra)
{
    char text[64];
    snprintf(text, sizeof(text), "%d %s\n", status, reason(status));
    return respond(out, status, "text/plain; charset=utf-8", NULL, text, head, extra);
}

/* The value of field @name (lower case) in the request head @req, trimmed; NULL when absent. */
static const char *head_field(const char *req, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = req + len;
    const char *p = memchr(req, '\n', len);
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            while (le > v && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
                le--;
            *vlen = (size_t)(le - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Authorization: Bearer TOKEN, compared in constant time: both sides are hashed first, so
 * neither the content nor the length of the right token shows in the time taken. */
static bool token_ok(const char *token, const char *req, size_t len)
{
    size_t vlen;
    const char *v = head_field(req, len, "authorization", &vlen);
    if (!token || !v || vlen < 8 || strncasecmp(v, "Bearer ", 7))
        return false;
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)v + 7, vlen - 7, a);
    SHA256((const unsigned char *)token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

/* The value of @key in the query @q (@qlen bytes): a name ([A-Za-z0-9._-], < CONF_NAME_MAX)
 * copied into @out. Returns false when absent or not a name. */
static bool query_name(const char *q, size_t qlen, const char *key, char *out)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < qlen;) {
        size_t j = i;
        while (j < qlen && q[j] != '&')
            j++;
        if (j - i > kl && !memcmp(q + i, key, kl) && q[i + kl] == '=') {
            size_t n = j - i - kl - 1;
            if (!n || n >= CONF_NAME_MAX)
                return false;
            for (size_t k = 0; k < n; k++) {
                char ch = q[i + kl + 1 + k];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
                    return false;
            }
            memcpy(out, q + i + kl + 1, n);
            out[n] = 0;
            return true;
        }
        i = j + 1;
    }
    return false;
}

/* POST /admin/drain or /admin/undrain ?cluster=NAME&server=NAME on the admin address. */
static int admin_post(struct lb_runtime *rt, const double *const *rates,
                      const struct metrics_admin *adm, const char *req, size_t len,
                      const char *path, size_t plen, const char *q, size_t qlen,
                      struct lb_jbuf *out)
{
    bool drain = plen == 12 && !memcmp(path, "/admin/drain", 12);
    if (!drain && !(plen == 14 && !memcmp(path, "/admin/undrain", 14)))
        return respond_text(out, 404, false, NULL);
    if (!token_ok(adm->token, req, len)) {
        lb_warn("admin http: request refused: missing or wrong token", "");
        return respond_text(out, 401, false, "WWW-Authenticate: Bearer\r\n");
    }
    char cluster[CONF_NAME_MAX], server[CONF_NAME_MAX];
    if (!q || !query_name(q, qlen, "cluster", cluster) || !query_name(q, qlen, "server", server))
        return respond_text(out, 400, false, NULL);
    struct admin_cmd cmd = {.verb = drain ? ADMIN_DRAIN : ADMIN_UNDRAIN};
    memcpy(cmd.cluster, cluster, sizeof(cluster));
    memcpy(cmd.server, server, sizeof(server));
    struct lb_jbuf body;
    lb_jbuf_init(&body, 64 * 1024);
    int r = adm->admin ? admin_run(adm->admin, &cmd, &body) : admin_exec(rt, rates, &cmd, &body);
    int status =
        respond(out, r & ADMIN_R_ERROR ? 404 : 200, "application/json", &body, NULL, false, NULL);
    lb_jbuf_free(&body);
    return status;
}

int metrics_answer(struct lb_runtime *rt, const double *const *rates,
                   const struct metrics_admin *adm, const char *req, size_t len,
                   struct lb_jbuf *out)
{
    /* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 3); a bare LF
     * is accepted as the line end, as 9112 2.2 allows. Only origin-form targets. */
    const char *eol = memchr(req, '\n', len);
    if (!eol)
        return respond_text(out, 400, false, NULL);
    size_t ll = (size_t)(eol - req);
    if (ll && req[ll - 1] == '\r')
        ll--;
    size_t i = 0;
    while (i < ll && tchar((unsigned char)req[i]))
        i++;
    size_t mlen = i;
    if (!mlen || i >= ll || req[i] != ' ')
        return respond_text(out, 400, false, NULL);
    size_t tstart = ++i;
    while (i < ll && (unsigned char)req[i] > 0x20 && (unsigned char)req[i] < 0x7f)
        i++;
    size_t tlen = i - tstart;
    if (!tlen || req[tstart] != '/' || i >= ll || req[i] != ' ')
        return respond_text(out, 400, false, NULL);
    const char *ver = req + i + 1;
    size_t vlen = ll - (i + 1);
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) || ver[6] != '.' || ver[5] < '0' || ver[5] > '9' ||
        ver[7] < '0' || ver[7] > '9')
        return respond_text(out, 400, false, NULL);
    if (ver[5] != '1')
        return respond_text(out, 505, false, NULL);

    bool head = mlen == 4 && !memcmp(req, "HEAD", 4);
    const char *q = memchr(req + tstart, '?', tlen);
    size_t plen = q ? (size_t)(q - (req + tstart)) : tlen;
    const char *path = req + tstart;
    if (adm && mlen == 4 && !memcmp(req, "POST", 4))
        return admin_post(rt, rates, adm, req, len, path, plen, q ? q + 1 : NULL,
                          q ? tlen - plen - 1 : 0, out);
    if (!head && !(mlen == 3 && !memcmp(req, "GET", 3)))
        return respond_text(out, 405, false,
                            adm ? "Allow: GET, HEAD, POST\r\n" : "Allow: GET, HEAD\r\n");

    struct lb_jbuf body;
    const char *type;
    lb_jbuf_init(&body, METRICS_ANSWER_MAX);
    if (plen == 8 && !memcmp(path, "/metrics", 8)) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        metrics_prom(rt, &body);
    } else if (plen == 6 && !memcmp(path, "/stats", 6)) {
        type = "application/json";
        metrics_json(rt, rates, &body);
    } else if (plen == 1) {
        type = "text/html; charset=utf-8";
        metrics_page(rt, rates, adm != NULL, &body);
    } else {
        lb_jbuf_free(&body);
        return respond_text(out, 404, head, NULL);
    }
    int status;
    if (body.overflow)
        status = respond_text(out, 500, head, NULL);
    else
        status = respond(out, 200, type, &body, NULL, head, NULL);
    lb_jbuf_free(&body);
    return status;
}
