/*
 * `explain METHOD URL [Name: value]...` on the admin socket: what lb would do with that
 * request, computed with the same parser, routing and balancers as the data path, without
 * sending anything anywhere. For every http listener: the route that takes it (or the
 * 404/405 lb would answer), the action, the hash key and its value, the server a pick gives
 * now, and the order the request would fail over in (the next picks with the earlier ones
 * excluded: primaries first, then backups). Servers that are down, draining or ejected are
 * skipped exactly as a real pick skips them.
 *
 * Balancers that do not hash (round robin, least connections, power of two) pick from each
 * worker's own state; the answer says so and shows a pick from a fresh state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/admin.h"
#include "lb/http/h1.h"
#include "lb/route/route.h"
#include "lb/core/runtime.h"
#include "static/snap.h"

/* A JSON string from @n bytes at @p. */
static void jstr(struct lb_jbuf *out, const char *p, size_t n)
{
    lb_jbuf_str(out, p, n);
}

static void explain_cluster(struct lb_runtime *rt, int ci, uint64_t key, bool hashed,
                            struct lb_jbuf *out)
{
    struct cl_cluster *cl = &rt->clusters[ci];
    lb_jbuf_printf(out, ",\"cluster\":\"%s\",\"balance\":\"%s\"", cl->cf->name,
                   conf_balance_name(cl->cf->balance));
    if (!hashed)
        lb_jbuf_printf(out, ",\"note\":\"%s picks from each worker's own rotation or load; "
                            "the order below is a fresh worker's\"",
                       conf_balance_name(cl->cf->balance));
    struct cl_cluster_wstate ws;
    if (cl_cluster_wstate_init(&ws, cl, 1) < 0) {
        lb_jbuf_printf(out, ",\"error\":\"out of memory\"");
        return;
    }
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

int admin_explain(struct lb_runtime *rt, const struct admin_cmd *cmd, struct lb_jbuf *out)
{
    static __thread struct http_req req;
    const char *buf = cmd->request;
    memset(&req.scan, 0, sizeof(req.scan));
    int rc = http_parse_request(buf, cmd->request_len, sizeof(cmd->request), 8192, &req);
    if (rc <= 0) {
        lb_jbuf_printf(out, "{\"ok\":true,\"answer\":%d,\"why\":\"lb would refuse this "
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
        lb_jbuf_printf(out, "%s{\"listener\":\"%s\",\"bind\":\"%s\"", first ? "" : ",", l->name,
                       l->bind.text);
        first = false;
        uint32_t allowed = 0;
        int ri = route_match(l, buf, &req, &allowed);
        if (ri < 0) {
            lb_jbuf_printf(out, ",\"route\":null,\"answer\":%d}", allowed ? 405 : 404);
            continue;
        }
        const struct conf_route *r = &l->routes[ri];
        lb_jbuf_printf(out, ",\"route\":%d,\"route_line\":%u", ri, r->pos.line);
        int cluster = -1;
        uint64_t key = 0;
        bool hashed = false;
        if (r->action == CONF_ACT_STATIC) {
            const struct conf_static *st = &c->statics[r->target_idx];
            lb_jbuf_printf(out, ",\"action\":\"static\",\"set\":\"%s\"", st->name);
            size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;
            struct snap_set *set = snap_slot_get(&rt->snap_slots[r->target_idx]);
            char pbuf[SNAP_PATH_MAX];
            const struct snap_entry *e = NULL;
            int lr = set ? snap_lookup(set, buf + req.path.off + pl, req.path.len - pl, pbuf,
                                       sizeof(pbuf), &e)
                         : -ENOENT;
            snap_set_unref(set);
            if (lr == 0) {
                lb_jbuf_printf(out, ",\"snapshot\":\"found\"}");
                continue;
            }
            if (lr == -EINVAL) {
                lb_jbuf_printf(out, ",\"snapshot\":\"bad path\",\"answer\":400}");
                continue;
            }
            lb_jbuf_printf(out, ",\"snapshot\":\"miss\"");
            if (st->fallback_idx < 0) {
                lb_jbuf_printf(out, ",\"answer\":404}");
                continue;
            }
            cluster = st->fallback_idx;
            lb_jbuf_printf(out, ",\"fallback\":true");
        } else if (r->action == CONF_ACT_ENQUEUE) {
            lb_jbuf_printf(out, ",\"action\":\"enqueue\",\"list\":\"%s\"}", r->enqueue.redis_list);
            continue;
        } else {
            cluster = r->target_idx;
            lb_jbuf_printf(out, ",\"action\":\"cluster\"");
            if (r->cache.enabled)
                lb_jbuf_printf(out, ",\"cache_ttl_ms\":%llu",
                               (unsigned long long)r->cache.ttl_ms);
        }
        hashed = conf_balance_is_hash(c->clusters[cluster].balance);
        if (hashed) {
            const char *v = NULL;
            size_t vl = 0;
            key = r->action == CONF_ACT_CLUSTER ? route_key(r, buf, &req, 0, &v, &vl) : 0;
            lb_jbuf_printf(out, ",\"hash_key\":\"%s%s%s\"", conf_hash_kind_name(r->hash_key.kind),
                           r->hash_key.name ? ":" : "", r->hash_key.name ? r->hash_key.name : "");
            if (v) {
                lb_jbuf_printf(out, ",\"key\":");
                jstr(out, v, vl);
            } else {
                lb_jbuf_printf(out, ",\"key\":null,\"key_note\":\"the client's address is the "
                                    "key (no value in this request)\"");
            }
        }
        explain_cluster(rt, cluster, key, hashed, out);
        lb_jbuf_printf(out, "}");
    }
    lb_jbuf_printf(out, "]}");
    return 0;
}
