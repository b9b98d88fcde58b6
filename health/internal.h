/*
 * health/ internals shared by hc.c (the state machines) and probe.c (the probe engine on its
 * caller's ring). Nothing outside health/ includes this.
 */
#ifndef HEALTH_INTERNAL_H
#define HEALTH_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "health/hc.h"

enum hc_active_state {
    HC_ACTIVE_UP,
    HC_ACTIVE_DOWN,
};

enum hc_passive_state {
    HC_PASSIVE_IN,
    HC_PASSIVE_EJECTED,
};

struct hc_server {
    /* Written by workers (hc_passive_report), read and reset by the engine's thread. */
    _Atomic uint32_t consecutive; /* failures reported in a row */
    _Atomic uint32_t tripped;     /* consecutive reached the threshold since the last tick */

    /* Everything below belongs to the engine's thread. */
    uint32_t cluster, server;
    uint32_t tier;      /* 0 primaries, 1 backups */
    int32_t target;     /* -1: no active checks */
    uint32_t next_user; /* next server of the same target, UINT32_MAX ends the list */
    uint32_t weight;    /* configured */

    enum hc_active_state active;
    uint32_t ok_run, fail_run;
    uint64_t probes, probe_failures;
    bool last_ok;
    uint32_t latency_us;
    char reason[HC_REASON_MAX];

    enum hc_passive_state passive;
    uint32_t ejections;
    uint64_t eject_until_ms;
    uint64_t in_since_ms; /* when it last came back in (ejection count expiry) */

    int32_t members[1 + CONF_MAX_REPLICAS]; /* check: redis: each member's target */
    uint32_t nmembers;                      /* 0 for other checks */
    uint32_t master;                        /* the member traffic goes to */

    bool ramping; /* slow start in progress */
    uint64_t ramp_start_ms;
    uint32_t cur_weight; /* last weight reported */
};

struct hc_cluster {
    const struct conf_cluster *cf;
    uint32_t base; /* its first server in hc->servers */
    uint32_t n;
    uint32_t tier_n[2];       /* servers per tier */
    uint32_t tier_ejected[2]; /* ejected now, per tier */
};

struct hc_target {
    const struct conf_addr *addr;
    const struct conf_health *h; /* the definition (of the first cluster that uses it) */
    uint64_t interval_ms;        /* smallest among the clusters that use it */
    uint64_t timeout_ms;
    uint32_t first_user; /* head of the server list (hc_server.next_user) */
    char *req;           /* http: the request, built once */
    size_t req_len;
    uint32_t redis_server;      /* check: redis: the one server this member target belongs
                                   to (hc->servers index), else UINT32_MAX */
    uint32_t member;            /* its member index: 0 the address, i replicas[i - 1] */
    bool last_ok;               /* redis: the last probe answered */
    bool master;                /* redis: and its ROLE said master */
    const char *password;       /* redis: AUTH first (the cluster's password), or NULL */
    int32_t tls_cluster;        /* the cluster whose tls: the probes use, or -1: plain */
    struct ssl_ctx_st *ssl_ctx; /* hc_set_tls: the context of that cluster (the caller's) */
    const char *sni;            /* its name to send and verify, or NULL: verify the address */
};

struct hc_engine;

struct hc {
    const struct conf *conf;
    struct hc_ops ops;
    uint64_t rng;
    struct hc_cluster *clusters;
    uint32_t nclusters;
    struct hc_server *servers;
    uint32_t nservers;
    struct hc_target *targets;
    uint32_t ntargets;
    bool any_passive;
    int wake_fd;           /* eventfd: a worker that trips a passive threshold wakes the engine */
    struct hc_engine *eng; /* probe.c: the probes on the caller's ring, NULL until attached */
};

/* hc.c: the verdict on a redis probe's replies ([AUTH], PING, ROLE) in @buf: 1 pass (*@master
 * says whether ROLE said master), 0 fail (reason in @why), -EAGAIN need more (@eof: no more
 * will come). */
int hc_redis_verdict(const char *buf, size_t len, bool eof, bool auth, bool *master, char *why,
                     size_t n);

/* probe.c: frees the engine (closing its probe sockets); nothing of it may be in flight. */
void hc_engine_free(struct hc *hc);

#endif
