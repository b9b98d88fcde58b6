/*
 * The validation pass: rules that span objects, run on the loaded structs once the whole file
 * is read (so order in the file never matters). Listener names and addresses must be unique;
 * every route, tcp listener and static fallback must name something that exists (resolved here
 * into indices); a hash_key needs a hashing balancer; enqueue needs Redis. Whatever the loader
 * could not fill in (a NULL name, an unset address) is skipped: it was reported already.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/load.h"

/* Names sorted for lookups, so that a file with many routes and many clusters stays fast. */
struct name_index {
    const char **names; /* sorted, NULLs left out */
    int *idx;           /* position of each in the conf array */
    size_t n;
};

static int name_ptr_cmp(const void *a, const void *b, void *names)
{
    const char *const *nm = names;
    return strcmp(nm[*(const size_t *)a], nm[*(const size_t *)b]);
}

/* Builds an index over @n names taken @stride bytes apart from @first. */
static int index_build(struct name_index *ix, const void *first, size_t n, size_t stride)
{
    const char **raw = calloc(n ? n : 1, sizeof(*raw));
    size_t *order = calloc(n ? n : 1, sizeof(*order));
    ix->names = calloc(n ? n : 1, sizeof(*ix->names));
    ix->idx = calloc(n ? n : 1, sizeof(*ix->idx));
    ix->n = 0;
    if (!raw || !order || !ix->names || !ix->idx) {
        free(raw);
        free(order);
        return -ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        raw[i] = *(char *const *)((const char *)first + i * stride);
        if (raw[i])
            order[m++] = i;
    }
    qsort_r(order, m, sizeof(*order), name_ptr_cmp, raw);
    for (size_t i = 0; i < m; i++) {
        ix->names[i] = raw[order[i]];
        ix->idx[i] = (int)order[i];
    }
    ix->n = m;
    free(raw);
    free(order);
    return 0;
}

static void index_free(struct name_index *ix)
{
    free(ix->names);
    free(ix->idx);
    ix->names = NULL;
    ix->idx = NULL;
}

static int index_find(const struct name_index *ix, const char *name)
{
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(ix->names[mid], name);
        if (r == 0)
            return ix->idx[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Reports an undefined reference, with a suggestion or the list of what exists. */
static void undefined(struct conf_ctx *x, struct conf_pos pos, const char *what, const char *name,
                      const struct name_index *ix)
{
    char q[48], list[120] = "";
    conf_quote(q, sizeof(q), name, strlen(name));
    if (conf_diags_full(x->d)) {
        conf_err(x, pos, "undefined %s '%s'", what, q);
        return;
    }
    const char *best = conf_suggest(name, ix->names, ix->n ? ix->n : 1);
    if (ix->n == 0)
        best = NULL;
    if (best) {
        conf_err(x, pos, "undefined %s '%s'; did you mean '%s'?", what, q, best);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < ix->n && o + 1 < sizeof(list); i++) {
        int r = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", ix->names[i]);
        o += r > 0 ? (size_t)r : 0;
    }
    if (o >= sizeof(list) - 1)
        strcpy(list + sizeof(list) - 5, "...");
    if (ix->n)
        conf_err(x, pos, "undefined %s '%s' (defined: %s)", what, q, list);
    else
        conf_err(x, pos, "undefined %s '%s': none is defined", what, q);
}

/* A cluster route or tcp listener: @h is its hash key (defaulted here), @hpos where written. */
static void check_hash_key(struct conf_ctx *x, int ci, struct conf_hash_key *h,
                           struct conf_pos hpos)
{
    const struct conf_cluster *cl = &x->c->clusters[ci];
    if (x->cluster_flags && (x->cluster_flags[ci] & CONF_CF_BAD_BALANCE))
        return;
    if (h->kind != CONF_HASH_NONE && !conf_balance_is_hash(cl->balance)) {
        conf_err(x, hpos,
                 "hash_key needs a hashing balancer (maglev or ring_hash), but cluster '%s' "
                 "uses %s",
                 cl->name, conf_balance_name(cl->balance));
    } else if (h->kind == CONF_HASH_NONE && conf_balance_is_hash(cl->balance)) {
        h->kind = CONF_HASH_CLIENT_IP; /* documented default */
    }
}

/* A redirect to this listener's own scheme with nothing else changed would send the client
 * back here forever. (A port or host that happens to be this listener's own is the
 * operator's business: lb cannot tell which names reach it.) */
static void check_redirect(struct conf_ctx *x, const struct conf_listener *l,
                           const struct conf_route *r)
{
    const struct conf_redirect *rd = &r->redirect;
    enum conf_scheme own = l->tls.enabled ? CONF_SCHEME_HTTPS : CONF_SCHEME_HTTP;
    if (!rd->host && !rd->port && (rd->scheme == CONF_SCHEME_SAME || rd->scheme == own))
        conf_err(x, r->target_pos,
                 "this redirect sends clients back to the same %s URL: give another scheme, "
                 "host or port",
                 own == CONF_SCHEME_HTTPS ? "https" : "http");
}

/* The cluster of a redis listener is a set of shards: a key's owner must not change with
 * health or load, and a shard has no stand-in. */
static void check_shards(struct conf_ctx *x, const struct conf_listener *l)
{
    const struct conf_cluster *cl = &x->c->clusters[l->cluster_idx];
    if (!conf_balance_is_hash(cl->balance))
        conf_err(x, l->cluster_pos,
                 "a redis listener shards keys over its cluster, which must use balance: "
                 "maglev or ring_hash (cluster '%s' uses %s)",
                 cl->name, conf_balance_name(cl->balance));
    else if (cl->bounded_load > 0)
        conf_err(x, l->cluster_pos,
                 "cluster '%s' shards a redis listener's keys: bounded_load would move keys "
                 "to a shard that does not hold them",
                 cl->name);
    for (size_t i = 0; i < cl->nservers; i++)
        if (cl->servers[i].backup)
            conf_err(x, l->cluster_pos,
                     "cluster '%s' shards a redis listener's keys: server '%s' cannot be a "
                     "backup (a backup shard holds none of the keys)",
                     cl->name, cl->servers[i].name);
}

static void check_routes(struct conf_ctx *x, struct conf_listener *l, const struct name_index *cix,
                         const struct name_index *six)
{
    for (size_t j = 0; j < l->nroutes; j++) {
        struct conf_route *r = &l->routes[j];
        size_t mark = conf_path_push(x, ".routes[%zu]", j);
        if (r->action == CONF_ACT_REDIRECT) {
            check_redirect(x, l, r);
        } else if (r->action == CONF_ACT_ENQUEUE) {
            if (x->c->global.nredis_nodes == 0 && r->target_pos.line)
                conf_err(x, r->target_pos,
                         "enqueue needs Redis: add global: { redis: { nodes: [ IP:PORT ] } }");
        } else if (r->target) {
            bool cluster = r->action == CONF_ACT_CLUSTER;
            const struct name_index *ix = cluster ? cix : six;
            size_t m2 = conf_path_push(x, cluster ? ".cluster" : ".static");
            r->target_idx = index_find(ix, r->target);
            if (r->target_idx < 0)
                undefined(x, r->target_pos, cluster ? "cluster" : "static set", r->target, ix);
            conf_path_pop(x, m2);
            if (cluster && r->target_idx >= 0) {
                m2 = conf_path_push(x, ".hash_key");
                check_hash_key(x, r->target_idx, &r->hash_key, r->hash_key_pos);
                conf_path_pop(x, m2);
            }
        }
        conf_path_pop(x, mark);
    }
}

struct listener_dups {
    struct conf_ctx *x;
    struct conf *c;
};

static int listener_name_cmp(size_t a, size_t b, void *arg)
{
    const struct listener_dups *s = arg;
    const char *na = s->c->listeners[a].name, *nb = s->c->listeners[b].name;
    if (!na || !nb)
        return a < b ? -1 : a > b;
    return strcmp(na, nb);
}

static void listener_name_dup(size_t dup, size_t first, void *arg)
{
    const struct listener_dups *s = arg;
    const struct conf_listener *d = &s->c->listeners[dup], *f = &s->c->listeners[first];
    conf_err(s->x, d->name_pos, "listeners[%zu].name: duplicate listener '%s' (first at %u:%u)",
             dup, d->name, f->name_pos.line, f->name_pos.col);
}

static uint16_t addr_port(const struct conf_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static bool addr_is_any(const struct conf_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(a6);
}

/* Two sockets that cannot both be bound (or would silently share traffic through
 * SO_REUSEPORT): the same address, or a wildcard and any address of its family, same port. */
static bool addr_clash(const struct conf_addr *a, const struct conf_addr *b)
{
    if (!a->len || !b->len || a->ss.ss_family != b->ss.ss_family || addr_port(a) != addr_port(b))
        return false;
    return addr_is_any(a) || addr_is_any(b) || conf_addr_cmp(a, b) == 0;
}

/* Sorted by family and port, wildcards first within a port. */
static int bind_cmp(const void *pa, const void *pb, void *arg)
{
    const struct conf *c = arg;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct conf_addr *x = &c->listeners[a].bind, *y = &c->listeners[b].bind;
    if (x->ss.ss_family != y->ss.ss_family)
        return x->ss.ss_family < y->ss.ss_family ? -1 : 1;
    if (addr_port(x) != addr_port(y))
        return addr_port(x) < addr_port(y) ? -1 : 1;
    if (addr_is_any(x) != addr_is_any(y))
        return addr_is_any(x) ? -1 : 1;
    int r = conf_addr_cmp(x, y);
    if (r)
        return r;
    return a < b ? -1 : a > b;
}

static void report_clash(struct conf_ctx *x, size_t dup, size_t first)
{
    const struct conf_listener *d = &x->c->listeners[dup], *f = &x->c->listeners[first];
    conf_err(x, d->bind_pos,
             "listeners[%zu].bind: %s clashes with listener '%s' on %s (%u:%u): two listeners "
             "cannot share an address",
             dup, d->bind.text, f->name ? f->name : "?", f->bind.text, f->bind_pos.line,
             f->bind_pos.col);
}

/* Every clash is reported once, against the first listener (in sort order) it clashes with:
 * a wildcard on the port, else an identical address. */
static void check_binds(struct conf_ctx *x)
{
    struct conf *c = x->c;
    size_t *order = malloc((c->nlisteners ? c->nlisteners : 1) * sizeof(*order)), m = 0;
    if (!order) {
        conf_diag(x->d, (struct conf_pos){1, 1}, "out of memory");
        return;
    }
    for (size_t i = 0; i < c->nlisteners; i++)
        if (c->listeners[i].bind.len)
            order[m++] = i;
    qsort_r(order, m, sizeof(*order), bind_cmp, c);
    size_t group = 0; /* first entry with this family and port */
    for (size_t i = 1; i < m; i++) {
        const struct conf_addr *g = &c->listeners[order[group]].bind;
        const struct conf_addr *cur = &c->listeners[order[i]].bind;
        const struct conf_addr *prev = &c->listeners[order[i - 1]].bind;
        if (g->ss.ss_family != cur->ss.ss_family || addr_port(g) != addr_port(cur)) {
            group = i;
            continue;
        }
        if (addr_is_any(g))
            report_clash(x, order[i], order[group]);
        else if (conf_addr_cmp(prev, cur) == 0)
            report_clash(x, order[i], order[i - 1]);
    }
    free(order);

    const struct conf_global *gl = &c->global;
    if (gl->has_admin_http && gl->has_metrics &&
        addr_clash(&gl->admin_http_listen, &gl->metrics_listen))
        conf_diag(x->d, gl->admin_http_pos,
                  "global.admin.http.listen: %s clashes with global.metrics.listen %s (%u:%u)",
                  gl->admin_http_listen.text, gl->metrics_listen.text, gl->metrics_pos.line,
                  gl->metrics_pos.col);
    for (size_t i = 0; gl->has_admin_http && i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (addr_clash(&gl->admin_http_listen, &l->bind)) {
            conf_diag(x->d, gl->admin_http_pos,
                      "global.admin.http.listen: %s clashes with listener '%s' on %s (%u:%u)",
                      gl->admin_http_listen.text, l->name ? l->name : "?", l->bind.text,
                      l->bind_pos.line, l->bind_pos.col);
            break;
        }
    }
    for (size_t i = 0; gl->has_metrics && i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (addr_clash(&gl->metrics_listen, &l->bind)) {
            conf_diag(x->d, gl->metrics_pos,
                      "global.metrics.listen: %s clashes with listener '%s' on %s (%u:%u)",
                      gl->metrics_listen.text, l->name ? l->name : "?", l->bind.text,
                      l->bind_pos.line, l->bind_pos.col);
            break;
        }
    }
}

void conf_validate(struct conf_ctx *x)
{
    struct conf *c = x->c;
    struct name_index cix = {0}, six = {0};

    if (index_build(&cix, c->clusters ? &c->clusters[0].name : NULL, c->nclusters,
                    sizeof(struct conf_cluster)) < 0 ||
        index_build(&six, c->statics ? &c->statics[0].name : NULL, c->nstatics,
                    sizeof(struct conf_static)) < 0) {
        conf_diag(x->d, (struct conf_pos){1, 1}, "out of memory");
        goto out;
    }

    struct listener_dups ld = {x, c};
    if (conf_find_dups(c->nlisteners, listener_name_cmp, listener_name_dup, &ld) < 0)
        conf_diag(x->d, (struct conf_pos){1, 1}, "out of memory");
    check_binds(x);

    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        size_t mark = conf_path_push(x, "listeners[%zu]", i);
        if (l->protocol == CONF_PROTO_TCP && l->cluster) {
            size_t m2 = conf_path_push(x, ".cluster");
            l->cluster_idx = index_find(&cix, l->cluster);
            if (l->cluster_idx < 0)
                undefined(x, l->cluster_pos, "cluster", l->cluster, &cix);
            conf_path_pop(x, m2);
            if (l->cluster_idx >= 0) {
                m2 = conf_path_push(x, ".hash_key");
                check_hash_key(x, l->cluster_idx, &l->hash_key, l->hash_key_pos);
                conf_path_pop(x, m2);
            }
        } else if (l->protocol == CONF_PROTO_REDIS && l->cluster) {
            size_t m2 = conf_path_push(x, ".cluster");
            l->cluster_idx = index_find(&cix, l->cluster);
            if (l->cluster_idx < 0)
                undefined(x, l->cluster_pos, "cluster", l->cluster, &cix);
            else
                check_shards(x, l);
            conf_path_pop(x, m2);
        } else if (l->protocol == CONF_PROTO_HTTP) {
            check_routes(x, l, &cix, &six);
        }
        conf_path_pop(x, mark);
    }

    for (size_t i = 0; i < c->nstatics; i++) {
        struct conf_static *st = &c->statics[i];
        if (!st->fallback || !st->name)
            continue;
        size_t mark = conf_path_push(x, "static.%s.fallback", st->name);
        st->fallback_idx = index_find(&cix, st->fallback);
        if (st->fallback_idx < 0)
            undefined(x, st->fallback_pos, "cluster", st->fallback, &cix);
        conf_path_pop(x, mark);
    }
out:
    index_free(&cix);
    index_free(&six);
}
