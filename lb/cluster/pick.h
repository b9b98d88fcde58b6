/*
 * A connection's choice of server: the cluster it goes to, the server it is committed to,
 * the servers tried so far (a retry goes elsewhere) and whether it holds that server's
 * active count. Embedded by the protocols that connect to clusters (l4, http).
 */
#ifndef CL_PICK_H
#define CL_PICK_H

#include <stdint.h>

#include "lb/cluster/cluster.h"

struct cl_pick {
    uint16_t cluster;
    uint8_t attempts; /* connect attempts so far */
    uint8_t counted;  /* the server's active count is held */
    int32_t server;   /* index in the cluster, -1 none */
    struct cl_exclude tried;
};

static inline void cl_pick_init(struct cl_pick *p, uint16_t cluster)
{
    *p = (struct cl_pick){.cluster = cluster, .server = -1};
}

/* Commits @p to server @idx of @cl: remembered as tried, counted as an attempt, its active
 * count taken (released by cl_pick_release). Returns the server. */
static inline struct cl_server *cl_pick_commit(struct cl_pick *p, struct cl_cluster *cl, int idx)
{
    struct cl_server *srv = &cl->servers[idx];
    p->server = idx;
    if (p->tried.n < sizeof(p->tried.idx) / sizeof(p->tried.idx[0]))
        p->tried.idx[p->tried.n++] = (uint32_t)idx;
    p->attempts++;
    cl_server_acquire(srv);
    p->counted = 1;
    return srv;
}

/* Gives back the active count @p holds, if any. */
static inline void cl_pick_release(struct cl_pick *p, struct cl_cluster *cl)
{
    if (p->counted) {
        cl_server_release(&cl->servers[p->server]);
        p->counted = 0;
    }
}

/* Takes back @p's commit as if it had never chosen its server: the active count, the try
 * and the attempt (the request will pick again). */
static inline void cl_pick_undo(struct cl_pick *p, struct cl_cluster *cl)
{
    cl_pick_release(p, cl);
    if (p->tried.n)
        p->tried.n--;
    if (p->attempts)
        p->attempts--;
}

#endif
