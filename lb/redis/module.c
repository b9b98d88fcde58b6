/*
 * The per-worker state of lb/redis: for every cluster a redis listener uses, each server's
 * shard connection, its reconnect backoff and the reason of its last failure; and the
 * parser's argument array.
 */
#include <errno.h>
#include <stdlib.h>

#include "lb/core/runtime.h"
#include "lb/redis/internal.h"
#include "lb/redis/redis.h"

#define WHY_MAX 96

static void rds_mod_destroy(struct io_worker *w, void *state)
{
    struct rds_worker *x = state;
    if (!x)
        return;
    const struct conf *cf = w->rt->conf;
    for (size_t i = 0; i < cf->nclusters; i++) {
        if (x->why && x->why[i])
            for (size_t j = 0; j < cf->clusters[i].nservers; j++)
                free(x->why[i][j]);
        if (x->srv)
            free(x->srv[i]);
        if (x->retry_ms)
            free(x->retry_ms[i]);
        if (x->why)
            free(x->why[i]);
    }
    free(x->srv);
    free(x->retry_ms);
    free(x->why);
    free(x->argv.v);
    while (x->free_reqs) {
        struct rds_req *r = x->free_reqs;
        x->free_reqs = r->next;
        rds_buf_free(&r->out);
        free(r);
    }
    free(x);
}

static int rds_mod_init(struct io_worker *w, void **state, struct lb_err *err)
{
    const struct conf *cf = w->rt->conf;
    bool any = false;
    for (size_t i = 0; i < cf->nlisteners; i++)
        any |= cf->listeners[i].protocol == CONF_PROTO_REDIS;
    any |= cf->redis_cluster >= 0; /* enqueue routes push through it */
    any |= cf->ncaches > 0;        /* shared caches (lb/http/cache_l2.c) */
    *state = NULL;
    if (!any)
        return 0;
    struct rds_worker *x = calloc(1, sizeof(*x));
    if (!x)
        goto fail;
    *state = x;
    size_t nc = cf->nclusters ? cf->nclusters : 1;
    x->srv = calloc(nc, sizeof(*x->srv));
    x->retry_ms = calloc(nc, sizeof(*x->retry_ms));
    x->why = calloc(nc, sizeof(*x->why));
    x->argv.cap = RDS_ARGS_MAX;
    x->argv.v = malloc(RDS_ARGS_MAX * sizeof(*x->argv.v));
    if (!x->srv || !x->retry_ms || !x->why || !x->argv.v)
        goto fail;
    for (size_t i = 0; i < cf->nclusters; i++) {
        size_t n = cf->clusters[i].nservers ? cf->clusters[i].nservers : 1;
        x->srv[i] = calloc(n, sizeof(**x->srv));
        x->retry_ms[i] = calloc(n, sizeof(**x->retry_ms));
        x->why[i] = calloc(n, sizeof(**x->why));
        if (!x->srv[i] || !x->retry_ms[i] || !x->why[i])
            goto fail;
        for (size_t j = 0; j < cf->clusters[i].nservers; j++)
            if (!(x->why[i][j] = calloc(1, WHY_MAX)))
                goto fail;
    }
    return 0;
fail:
    rds_mod_destroy(w, x);
    *state = NULL;
    lb_err_set(err, "worker %d: out of memory for redis state", w->id);
    return -ENOMEM;
}

struct io_module rds_module = {
    .name = "redis",
    .init = rds_mod_init,
    .destroy = rds_mod_destroy,
};
