/*
 * global.redis as a cluster of lb's own: the workers reach Redis (enqueue routes) through the
 * same pipelined connections as `protocol: redis` shards, and the health checker follows its
 * primary with the same ROLE probes as for a shard with replicas. The cluster is named
 * CONF_REDIS_CLUSTER, a name no config can give (names start with a letter or digit), so it
 * shows in lbctl status, /stats and /metrics like any other, as the state of lb's Redis.
 */
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

/* One server: the first node, the others as the members that may be master instead. */
static int fill_server(const struct conf_global *g, struct conf_server *s)
{
    if (!(s->name = strdup("redis")) || conf_parse_addr(g->redis_nodes[0], &s->addr) < 0)
        return -1;
    s->weight = 1;
    for (size_t i = 1; i < g->nredis_nodes && i <= CONF_MAX_REPLICAS; i++)
        if (conf_parse_addr(g->redis_nodes[i], &s->replicas[s->nreplicas++]) < 0)
            return -1;
    return 0;
}

int conf_add_redis_cluster(struct conf *c)
{
    const struct conf_global *g = &c->global;
    c->redis_cluster = -1;
    if (!g->nredis_nodes)
        return 0;
    struct conf_cluster *cls = realloc(c->clusters, (c->nclusters + 1) * sizeof(*cls));
    if (!cls)
        return -1;
    c->clusters = cls;
    struct conf_cluster *cl = &cls[c->nclusters];
    memset(cl, 0, sizeof(*cl));
    c->redis_cluster = (int)c->nclusters++;
    cl->balance = CONF_BAL_ROUND_ROBIN;
    cl->health.check = CONF_CHECK_REDIS;
    cl->health.expect_status = 200;
    cl->health.interval_ms = 1000;
    cl->health.timeout_ms = g->redis_timeout_ms;
    cl->health.rise = 1;
    cl->health.fall = 2;
    cl->connect_timeout_ms = g->redis_timeout_ms;
    /* A push answered later than this is a Redis that counts as down: the request gets 503
     * rather than waiting on; a slow Redis may still have applied it (at least once). */
    cl->response_timeout_ms = g->redis_timeout_ms;
    cl->idle_timeout_ms = 60 * 1000;
    if (!(cl->name = strdup(CONF_REDIS_CLUSTER)) || !(cl->health.path = strdup("/")) ||
        (g->redis_password && !(cl->password = strdup(g->redis_password))) ||
        !(cl->servers = calloc(1, sizeof(*cl->servers))))
        return -1;
    cl->nservers = 1;
    return fill_server(g, &cl->servers[0]);
}
