/*
 * lbctl queue stats [NAME]: the queues of lb's enqueue routes, read from Redis by lbctl
 * itself. lb's `queues` answer gives the Redis nodes of global.redis and the lists; lbctl
 * finds the master (ROLE) and reads each list's length, dead entries, entries in consumers'
 * hands and the oldest entry's age with lbq's own code (tools/lbq/store.c), beside lb's
 * counts of pushes and refusals. A password comes from $LBQ_REDIS_PASSWORD, as for lbq: lb
 * never sends it over the admin socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/ctl_json.h"
#include "tools/ctl_queue.h"
#include "tools/lbq/lbq.h"

/* The Redis nodes of lb's answer into @o; -1 (reported) when there are none. */
static int redis_opts(const struct ctl_json *v, struct lbq_opts *o)
{
    const struct ctl_json *redis = ctl_json_get(v, "redis");
    const struct ctl_json *nodes = ctl_json_get(redis, "nodes");
    for (const struct ctl_json *n = nodes ? nodes->child : NULL; n && o->nnodes < LBQ_MAX_NODES;
         n = n->next)
        if (n->type == CTL_JSON_STR)
            snprintf(o->nodes[o->nnodes++], sizeof(o->nodes[0]), "%s", n->str);
    if (!o->nnodes) {
        fprintf(stderr, "lbctl: lb named no Redis node\n");
        return -1;
    }
    o->password = getenv("LBQ_REDIS_PASSWORD");
    if (ctl_json_bool(redis, "auth", false) && !o->password) {
        fprintf(stderr, "lbctl: lb's Redis needs a password: set LBQ_REDIS_PASSWORD\n");
        return -1;
    }
    o->redis_timeout_ms = 2000;
    return 0;
}

static void json_stats(const char *name, const char *listener, const struct lbq_qstats *s,
                       bool *first)
{
    printf("%s{\"queue\":", *first ? "" : ",");
    lbq_json_str(stdout, name);
    printf(",\"listener\":");
    lbq_json_str(stdout, listener);
    printf(",\"length\":%lld,\"dead\":%lld,\"processing\":%lld,\"consumers\":%lld,"
           "\"live_consumers\":%lld,\"retrying\":%lld,\"oldest_age_ms\":",
           s->length, s->dead, s->processing, s->consumers, s->live_consumers, s->tries_pending);
    if (s->oldest_age_ms >= 0)
        printf("%lld}", s->oldest_age_ms);
    else
        printf("null}");
    *first = false;
}

static void text_stats(const char *name, const struct lbq_qstats *s)
{
    char age[32] = "-";
    if (s->oldest_age_ms >= 0)
        snprintf(age, sizeof(age), "%.3fs", (double)s->oldest_age_ms / 1000);
    else if (s->oldest_age_ms == -2)
        snprintf(age, sizeof(age), "unreadable");
    printf("%-24s %10lld %8lld %10lld %6lld/%-6lld %s\n", name, s->length, s->dead, s->processing,
           s->live_consumers, s->consumers, age);
}

/* lb's counts per listener, under the queues. */
static void text_counts(const struct ctl_json *v)
{
    const struct ctl_json *ls = ctl_json_get(v, "listeners");
    for (const struct ctl_json *l = ls ? ls->child : NULL; l; l = l->next)
        if (ctl_json_num(l, "pushed", 0) + ctl_json_num(l, "full", 0) +
                ctl_json_num(l, "redis_down", 0) + ctl_json_num(l, "too_large", 0) >
            0)
            printf("listener %s: pushed %.0f, refused: full %.0f, redis down %.0f, too large "
                   "%.0f\n",
                   ctl_json_str(l, "listener", "?"), ctl_json_num(l, "pushed", 0),
                   ctl_json_num(l, "full", 0), ctl_json_num(l, "redis_down", 0),
                   ctl_json_num(l, "too_large", 0));
}

int ctl_queue_stats(const struct ctl_json *v, const char *only, bool json)
{
    static struct lbq_opts o;
    memset(&o, 0, sizeof(o));
    if (redis_opts(v, &o) < 0)
        return 1;
    struct lb_err err = {{0}};
    redisContext *c = lbq_redis_connect(&o, &err);
    if (!c) {
        fprintf(stderr, "lbctl: %s\n", err.msg);
        return 1;
    }
    const struct ctl_json *qs = ctl_json_get(v, "queues");
    int rc = 0, shown = 0;
    bool first = true;
    if (json)
        printf("{\"queues\":[");
    else
        printf("%-24s %10s %8s %10s %13s %s\n", "QUEUE", "LENGTH", "DEAD", "PROCESSING",
               "CONSUMERS", "OLDEST");
    for (const struct ctl_json *q = qs ? qs->child : NULL; q && !rc; q = q->next) {
        const char *name = ctl_json_str(q, "name", NULL);
        struct lbq_qstats s;
        if (!name || (only && strcmp(only, name)))
            continue;
        o.queue = name;
        if (lbq_stats_get(c, &o, &s, &err) < 0) {
            fprintf(stderr, "lbctl: queue %s: %s\n", name, err.msg);
            rc = 1;
            break;
        }
        if (json)
            json_stats(name, ctl_json_str(q, "listener", ""), &s, &first);
        else
            text_stats(name, &s);
        shown++;
    }
    redisFree(c);
    if (json)
        printf("]}\n");
    else if (!rc)
        text_counts(v);
    if (!rc && only && !shown) {
        fprintf(stderr, "lbctl: no enqueue route pushes onto '%s'\n", only);
        rc = 1;
    }
    return rc;
}
