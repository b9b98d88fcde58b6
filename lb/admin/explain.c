/*
 * `explain METHOD URL [Name: value]...` on the admin socket: what lb would do with that
 * request, computed with the same parser, routing and balancers as the data path, without
 * sending anything anywhere. For every http listener: the route that takes it, the action,
 * the hash key and its value, the server a pick gives now, and the order the request would
 * fail over in (the next picks with the earlier ones excluded: primaries first, then
 * backups); or the answer lb gives itself ("answer", with "allow", "close" and "why"). The
 * decision is route_decide()'s, the data path's own (lb/route/route.h), after a parse with
 * the listener's limits, so explain reports every answer the data path gives before it
 * asks a server: parse errors, CONNECT, 404, 405, 413, 501, static misses. Servers that
 * are down, draining or ejected are skipped exactly as a real pick skips them.
 *
 * Balancers that do not hash (round robin, least connections, power of two) pick from each
 * worker's own state; the answer says so and shows a pick from a fresh state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/core/runtime.h"
#include "lb/http/h1.h"
#include "lb/redis/cmd.h"
#include "lb/route/route.h"
#include "static/snap.h"

/* A JSON string from @n bytes at @p. */
static void jstr(struct lb_jbuf *out, const char *p, size_t n)
{
    lb_jbuf_str(out, p, n);
}

/* "cluster" and "balance" of cluster @ci. */
static void explain_cluster_name(struct lb_runtime *rt, int ci, struct lb_jbuf *out)
{
    const struct conf_cluster *cf = rt->clusters[ci].cf;
    lb_jbuf_printf(out, ",\"cluster\":\"%s\",\"balance\":\"%s\"", cf->name,
                   conf_balance_name(cf->balance));
}

static void explain_cluster(struct lb_runtime *rt, int ci, uint64_t key, bool hashed,
                            struct lb_jbuf *out)
{
    struct cl_cluster *cl = &rt->clusters[ci];
    explain_cluster_name(rt, ci, out);
    if (!hashed && cl->cf->balance == CONF_BAL_ROUND_ROBIN)
        lb_jbuf_printf(out, ",\"note\":\"round_robin takes turns across all workers; the "
                            "first server below is the next turn, the rest a fresh rotation\"");
    else if (!hashed)
        lb_jbuf_printf(out,
                       ",\"note\":\"%s picks from each worker's own load or random "
                       "state; the order below is a fresh worker's\"",
                       conf_balance_name(cl->cf->balance));
    struct cl_cluster_wstate ws;
    if (cl_cluster_wstate_init(&ws, cl, 1) < 0) {
        lb_jbuf_printf(out, ",\"error\":\"out of memory\"");
        return;
    }
    /* Reading the next turn must not take it from the requests that follow. */
    cl_cluster_wstate_peek(&ws);
    struct cl_exclude ex = {0};
    lb_jbuf_printf(out, ",\"order\":[");
    for (uint32_t n = 0; n < sizeof(ex.idx) / sizeof(ex.idx[0]); n++) {
        int s = cl_cluster_pick(cl, &ws, key, &ex);
        if (s < 0)
            break;
        struct cl_server *srv = &cl->servers[s];
        lb_jbuf_printf(out, "%s{\"server\":\"%s\",\"address\":\"%s\",\"backup\":%s}", n ? "," : "",
                       srv->cf->name, srv->cf->addr.text, srv->cf->backup ? "true" : "false");
        ex.idx[ex.n++] = (uint32_t)s;
    }
    lb_jbuf_printf(out, "]");
    if (!ex.n)
        lb_jbuf_printf(out, ",\"answer\":503");
    else
        lb_jbuf_printf(out, ",\"server\":\"%s\"", cl->servers[ex.idx[0]].cf->name);
    cl_cluster_wstate_free(&ws);
}

/* lb's own answer @a: the status, the Allow value of a 405, whether the connection closes
 * after it, and why. */
static void explain_answer(const struct route_answer *a, struct lb_jbuf *out)
{
    lb_jbuf_printf(out, ",\"answer\":%u", a->status);
    if (a->allow[0])
        lb_jbuf_printf(out, ",\"allow\":\"%s\"", a->allow);
    lb_jbuf_printf(out, ",\"close\":%s", a->close ? "true" : "false");
    if (a->why)
        lb_jbuf_printf(out, ",\"why\":\"%s\"", a->why);
}

/* Why the parser refuses a request with @status (h1.h's HTTP_E_* codes). */
static const char *parse_why(int status)
{
    switch (status) {
    case HTTP_E_TARGET:
        return "request target longer than this listener takes";
    case HTTP_E_TOO_BIG:
        return "header section over this listener's max_header_bytes, or over 100 fields";
    case HTTP_E_CODING:
        return "a transfer coding other than chunked";
    case HTTP_E_VERSION:
        return "an HTTP version other than 1.0 and 1.1";
    default:
        return "malformed or ambiguous request (strict HTTP/1.1 parsing)";
    }
}

/*
 * A static route's snapshot lookup, as the data path makes it (static_serve): "snapshot"
 * found, bad path or miss. Returns true when that ends the explanation (a snapshot answers,
 * or lb does); false when the request goes on to the fallback cluster.
 */
static bool explain_static(struct lb_runtime *rt, const struct conf_route *r, const char *buf,
                           const struct http_req *req, struct route_decision *d,
                           struct lb_jbuf *out)
{
    lb_jbuf_printf(out, ",\"action\":\"static\",\"set\":\"%s\"", rt->conf->statics[d->set].name);
    size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;
    struct snap_set *set = snap_slot_get(&rt->snap_slots[d->set]);
    char pbuf[SNAP_PATH_MAX];
    const struct snap_entry *e = NULL;
    int lr =
        set ? snap_lookup(set, buf + req->path.off + pl, req->path.len - pl, pbuf, sizeof(pbuf), &e)
            : -ENOENT;
    snap_set_unref(set);
    if (lr == 0) {
        lb_jbuf_printf(out, ",\"snapshot\":\"found\"");
        return true;
    }
    lb_jbuf_printf(out, ",\"snapshot\":\"%s\"", lr == -EINVAL ? "bad path" : "miss");
    int status = route_static_miss(d, req, lr);
    if (lr == -ENOENT && d->cluster >= 0)
        lb_jbuf_printf(out, ",\"fallback\":true");
    if (!status)
        return false;
    if (status == 413)
        explain_cluster_name(rt, d->cluster, out);
    explain_answer(&d->answer, out);
    return true;
}

/* A redirect route's "location", as the data path writes it (http_redirect_reply). */
static void explain_location(const struct route_location *loc, struct lb_jbuf *out)
{
    static __thread char text[ADMIN_EXPLAIN_MAX + 64];
    int n = snprintf(text, sizeof(text), "%s://%.*s%s%.*s", loc->scheme, (int)loc->host_len,
                     loc->host, loc->port, (int)loc->uri_len, loc->uri);
    lb_jbuf_printf(out, ",\"location\":");
    jstr(out, text, n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

/* One listener's object, without its closing brace. @req is parsed again with the
 * listener's limits. */
static void explain_listener(struct lb_runtime *rt, const struct conf_listener *l, const char *buf,
                             size_t len, struct http_req *req, struct lb_jbuf *out)
{
    lb_jbuf_printf(out, "{\"listener\":\"%s\",\"bind\":\"%s\"", l->name, l->bind.text);
    int rc = route_parse(l, buf, len, req);
    if (rc <= 0) {
        struct route_answer a = {.status = (uint16_t)(rc < 0 ? -rc : HTTP_E_BAD),
                                 .close = true,
                                 .why = parse_why(rc < 0 ? -rc : HTTP_E_BAD)};
        lb_jbuf_printf(out, ",\"route\":null");
        explain_answer(&a, out);
        return;
    }
    /* explain has no client: the client address's hash is 0. */
    struct route_decision d;
    route_decide(rt->conf, l, buf, req, 0, &d);
    if (d.route < 0) {
        lb_jbuf_printf(out, ",\"route\":null");
        explain_answer(&d.answer, out);
        return;
    }
    const struct conf_route *r = &l->routes[d.route];
    lb_jbuf_printf(out, ",\"route\":%d,\"route_line\":%u", d.route, r->pos.line);
    if (d.set >= 0) {
        if (explain_static(rt, r, buf, req, &d, out))
            return;
    } else if (d.action == CONF_ACT_ENQUEUE) {
        lb_jbuf_printf(out, ",\"action\":\"enqueue\",\"list\":\"%s\"", r->enqueue.redis_list);
    } else if (d.action == CONF_ACT_REDIRECT) {
        lb_jbuf_printf(out, ",\"action\":\"redirect\"");
        if (d.answer.status < 400)
            explain_location(&d.location, out);
    } else {
        lb_jbuf_printf(out, ",\"action\":\"cluster\"");
        if (r->cache.enabled)
            lb_jbuf_printf(out, ",\"cache_ttl_ms\":%llu,\"cache_max_ttl_ms\":%llu",
                           (unsigned long long)r->cache.ttl_ms,
                           (unsigned long long)r->cache.max_ttl_ms);
    }
    if (d.answer.status) {
        if (d.cluster >= 0)
            explain_cluster_name(rt, d.cluster, out);
        explain_answer(&d.answer, out);
        return;
    }
    if (d.hashed) {
        lb_jbuf_printf(out, ",\"hash_key\":\"%s%s%s\"", conf_hash_kind_name(r->hash_key.kind),
                       r->hash_key.name ? ":" : "", r->hash_key.name ? r->hash_key.name : "");
        if (d.key) {
            lb_jbuf_printf(out, ",\"key\":");
            jstr(out, d.key, d.key_len);
        } else {
            lb_jbuf_printf(out, ",\"key\":null,\"key_note\":\"the client's address is the "
                                "key (no value in this request)\"");
        }
    }
    explain_cluster(rt, d.cluster, d.key_hash, d.hashed, out);
}

int admin_explain(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    static __thread struct http_req req;
    const char *buf = cmd->request;
    memset(&req.scan, 0, sizeof(req.scan));
    int rc = http_parse_request(buf, cmd->request_len, sizeof(cmd->request), 8192, &req);
    if (rc <= 0) {
        lb_jbuf_printf(out,
                       "{\"ok\":true,\"answer\":%d,\"why\":\"lb would refuse this "
                       "request itself (strict HTTP/1.1 parsing)\"}",
                       rc < 0 ? -rc : 400);
        return 0;
    }
    lb_jbuf_printf(out, "{\"ok\":true,\"request\":{\"method\":");
    jstr(out, buf + req.method_text.off, req.method_text.len);
    lb_jbuf_printf(out, ",\"host\":");
    jstr(out, buf + req.host.off, req.host.len);
    lb_jbuf_printf(out, ",\"target\":");
    jstr(out, buf + req.target.off, req.target.len);
    lb_jbuf_printf(out, "},\"listeners\":[");
    bool first = true;
    const struct conf *c = rt->conf;
    for (size_t li = 0; li < c->nlisteners; li++) {
        const struct conf_listener *l = &c->listeners[li];
        if (l->protocol != CONF_PROTO_HTTP)
            continue;
        lb_jbuf_printf(out, "%s", first ? "" : ",");
        first = false;
        explain_listener(rt, l, buf, cmd->request_len, &req, out);
        lb_jbuf_printf(out, "}");
    }
    lb_jbuf_printf(out, "]}");
    return 0;
}

int admin_explain_key(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    const char *key = cmd->request;
    size_t kl = cmd->request_len;
    lb_jbuf_printf(out, "{\"ok\":true,\"key\":");
    jstr(out, key, kl);
    const char *open = memchr(key, '{', kl);
    const char *close = open ? memchr(open + 1, '}', kl - (size_t)(open + 1 - key)) : NULL;
    if (close && close > open + 1) {
        lb_jbuf_printf(out, ",\"hash_tag\":");
        jstr(out, open + 1, (size_t)(close - open - 1));
    }
    lb_jbuf_printf(out, ",\"listeners\":[");
    bool first = true;
    for (size_t li = 0; li < rt->conf->nlisteners; li++) {
        const struct conf_listener *l = &rt->conf->listeners[li];
        if (l->protocol != CONF_PROTO_REDIS || l->cluster_idx < 0)
            continue;
        struct cl_cluster *cl = &rt->clusters[l->cluster_idx];
        lb_jbuf_printf(out, "%s{\"listener\":\"%s\",\"bind\":\"%s\"", first ? "" : ",", l->name,
                       l->bind.text);
        first = false;
        explain_cluster_name(rt, l->cluster_idx, out);
        struct cl_cluster_wstate ws;
        int s = -ENOMEM;
        if (cl_cluster_wstate_init(&ws, cl, 1) == 0) {
            cl_cluster_wstate_peek(&ws);
            s = cl_cluster_owner(cl, &ws, rds_key_hash(key, kl));
            cl_cluster_wstate_free(&ws);
        }
        if (s >= 0) {
            const struct cl_server *srv = &cl->servers[s];
            lb_jbuf_printf(out, ",\"server\":\"%s\",\"address\":\"%s\",\"state\":\"%s\"",
                           srv->cf->name, cl_server_addr(srv)->text, cl_server_state(srv));
        }
        lb_jbuf_printf(out, "}");
    }
    lb_jbuf_printf(out, "]}");
    return 0;
}
