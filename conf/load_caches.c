/*
 * caches: (shared L2 response caches over Redis shards) and the route key that names one,
 * `cache: { shared: NAME }`: loading, the check that every name resolves, and the cluster of
 * lb's own each entry becomes (CONF_CACHE_CLUSTER_PREFIX + name, a name no config can give):
 * its servers hashed with ring_hash and checked with `check: redis`, so a shard's health,
 * latency and errors show in lbctl status and /metrics like any cluster's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/load.h"

#define Q(buf, n) conf_quote((buf), sizeof(buf), (n)->str, (n)->len)
#define SEC 1000ull
#define KIB 1024ull
#define MIB (1024 * KIB)
#define CACHES_MAX_SERVERS 256

static int set_servers(struct conf_ctx *x, const struct conf_node *n, void *field,
                       const struct conf_key *k)
{
    struct conf_shared_cache *sc = field;
    if (!conf_expect(x, n, CONF_NODE_SEQ, "a list of Redis addresses [ IP:PORT, ... ]"))
        return -EINVAL;
    if (n->nkids == 0 || n->nkids > CACHES_MAX_SERVERS) {
        conf_err(x, n->pos, "between 1 and %d Redis servers are needed", CACHES_MAX_SERVERS);
        return -EINVAL;
    }
    if (!(sc->servers = calloc(n->nkids, sizeof(*sc->servers)))) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n->nkids; i++) {
        const struct conf_node *v = n->kids[i];
        size_t mark = conf_path_push(x, "[%zu]", i);
        struct conf_addr *a = &sc->servers[sc->nservers];
        bool twice = false;
        if (v->bad || conf_set_addr(x, v, a, k) < 0) {
            rc = -EINVAL;
        } else {
            for (size_t j = 0; j < sc->nservers && !twice; j++)
                twice = conf_addr_cmp(a, &sc->servers[j]) == 0;
            if (twice) {
                conf_err(x, v->pos, "server %s is listed twice", a->text);
                rc = -EINVAL;
            } else {
                sc->nservers++;
            }
        }
        conf_path_pop(x, mark);
    }
    return rc;
}

static const struct conf_key cache_def_keys[] = {
    {.name = "servers", .set = set_servers, .flags = CONF_K_REQUIRED},
    {.name = "max_object",
     .set = conf_set_size,
     .off = offsetof(struct conf_shared_cache, max_object),
     .min = 1,
     .max = 256 * MIB},
    {.name = "timeout",
     .set = conf_set_duration,
     .off = offsetof(struct conf_shared_cache, timeout_ms),
     .min = 1,
     .max = 10 * SEC},
    {.name = "lock",
     .set = conf_set_duration,
     .off = offsetof(struct conf_shared_cache, lock_ms),
     .min = 10,
     .max = 60 * SEC},
    {.name = NULL},
};

int conf_set_caches(struct conf_ctx *x, const struct conf_node *n, void *field,
                    const struct conf_key *k)
{
    struct conf *c = field;
    char q[48];
    if (!conf_expect(x, n, CONF_NODE_MAP, "a mapping of cache names to { servers: [...] }"))
        return -EINVAL;
    size_t npairs = n->nkids / 2;
    if (npairs == 0)
        return 0;
    if (!(c->caches = calloc(npairs, sizeof(*c->caches)))) {
        conf_err(x, n->pos, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npairs; i++) {
        const struct conf_node *key = n->kids[2 * i], *v = n->kids[2 * i + 1];
        if (key->bad)
            continue;
        if (key->dup_of) {
            conf_err(x, key->pos, "duplicate cache '%s' (first at %u:%u)", Q(q, key),
                     key->dup_of->pos.line, key->dup_of->pos.col);
            continue;
        }
        struct conf_shared_cache *sc = &c->caches[c->ncaches++];
        sc->pos = key->pos;
        sc->cluster_idx = -1;
        sc->max_object = 1 * MIB;
        sc->timeout_ms = 100;
        sc->lock_ms = 2 * SEC;
        sc->name = conf_object_name(x, key, "cache name");
        size_t mark = conf_path_push(x, ".%s", Q(q, key));
        if (!v->bad)
            conf_map(x, v, sc, cache_def_keys, NULL);
        conf_path_pop(x, mark);
    }
    return 0;
}

int conf_set_cache_shared(struct conf_ctx *x, const struct conf_node *n, void *field,
                          const struct conf_key *k)
{
    struct conf_cache *cc =
        (struct conf_cache *)((char *)field - offsetof(struct conf_cache, shared));
    int rc = conf_set_name(x, n, field, k);
    if (rc == 0)
        cc->shared_pos = n->pos;
    return rc;
}

static void undefined_cache(struct conf_ctx *x, size_t li, size_t ri, const struct conf_cache *cc)
{
    const struct conf *c = x->c;
    const char *names[64];
    size_t n = 0;
    for (size_t k = 0; k < c->ncaches && n < 64; k++)
        if (c->caches[k].name)
            names[n++] = c->caches[k].name;
    const char *best = n ? conf_suggest(cc->shared, names, n) : NULL;
    if (best)
        conf_diag(x->d, cc->shared_pos,
                  "listeners[%zu].routes[%zu].cache.shared: undefined cache '%s'; did you "
                  "mean '%s'?",
                  li, ri, cc->shared, best);
    else
        conf_diag(x->d, cc->shared_pos,
                  "listeners[%zu].routes[%zu].cache.shared: undefined cache '%s'; define it "
                  "under caches: { %s: { servers: [ IP:PORT, ... ] } }",
                  li, ri, cc->shared, cc->shared);
}

void conf_validate_caches(struct conf_ctx *x)
{
    struct conf *c = x->c;
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        for (size_t j = 0; j < l->nroutes; j++) {
            struct conf_cache *cc = &l->routes[j].cache;
            cc->shared_idx = -1;
            if (!cc->shared)
                continue;
            for (size_t k = 0; k < c->ncaches && cc->shared_idx < 0; k++)
                if (c->caches[k].name && strcmp(c->caches[k].name, cc->shared) == 0)
                    cc->shared_idx = (int)k;
            if (cc->shared_idx < 0)
                undefined_cache(x, i, j, cc);
        }
    }
}

/* Cache @sc as a cluster (@cl zeroed): one server per shard, named by its address. */
static int fill_cluster(const struct conf_shared_cache *sc, struct conf_cluster *cl)
{
    char name[CONF_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", CONF_CACHE_CLUSTER_PREFIX, sc->name);
    cl->balance = CONF_BAL_RING_HASH;
    cl->health.check = CONF_CHECK_REDIS;
    cl->health.expect_status = 200;
    cl->health.interval_ms = 1000;
    cl->health.timeout_ms = sc->timeout_ms < 1000 ? 1000 : sc->timeout_ms;
    cl->health.rise = 1;
    cl->health.fall = 2;
    cl->connect_timeout_ms = sc->timeout_ms;
    /* An answer later than this is a shard skipped: the request goes to the origin. */
    cl->response_timeout_ms = sc->timeout_ms;
    cl->idle_timeout_ms = 60 * SEC;
    if (!(cl->name = strdup(name)) || !(cl->health.path = strdup("/")) ||
        !(cl->servers = calloc(sc->nservers, sizeof(*cl->servers))))
        return -1;
    for (size_t i = 0; i < sc->nservers; i++) {
        struct conf_server *s = &cl->servers[i];
        if (!(s->name = strdup(sc->servers[i].text)))
            return -1;
        s->addr = sc->servers[i];
        s->weight = 1;
        cl->nservers++;
    }
    return 0;
}

int conf_add_cache_clusters(struct conf *c)
{
    if (!c->ncaches)
        return 0;
    struct conf_cluster *cls = realloc(c->clusters, (c->nclusters + c->ncaches) * sizeof(*cls));
    if (!cls)
        return -1;
    c->clusters = cls;
    for (size_t i = 0; i < c->ncaches; i++) {
        struct conf_cluster *cl = &cls[c->nclusters];
        memset(cl, 0, sizeof(*cl));
        c->caches[i].cluster_idx = (int)c->nclusters++;
        if (fill_cluster(&c->caches[i], cl) < 0)
            return -1;
    }
    return 0;
}

void conf_free_caches(struct conf *c)
{
    for (size_t i = 0; i < c->ncaches; i++) {
        free(c->caches[i].name);
        free(c->caches[i].servers);
    }
    free(c->caches);
    c->caches = NULL;
    c->ncaches = 0;
}

/* For conf_keys_each() (keys.c). */
const struct conf_key_root conf_roots_caches[] = {{"caches.NAME", cache_def_keys}, {NULL, NULL}};
