/*
 * The running configuration: what a config generation turns into at startup, shared by
 * all threads. Immutable after lb_proxy_run builds it, except the atomics inside.
 */
#ifndef LB_RUNTIME_H
#define LB_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conf/conf.h"
#include "lb/cluster/cluster.h"
#include "lb/metrics/stats.h"
#include "static/snap.h"

struct io_worker;
struct hc;
struct tls_gen;
struct lb_limits;
struct cache_board;

struct lb_runtime {
    struct conf *conf;
    struct cl_cluster *clusters; /* conf->nclusters */
    struct metrics_listener_stats *lstats; /* conf->nlisteners; NULL in unit tests */
    struct metrics_l2_stats *l2stats;      /* conf->ncaches; NULL in unit tests */
    struct lb_limits **limits;   /* conf->nlisteners: per-address limits, NULL where none */
    uint32_t nworkers;
    uint32_t conns_per_worker;
    uint32_t files_per_worker;   /* fixed-file table of each worker's ring */
    struct io_worker *workers;
    int **listen_fds;            /* [worker][listener] */
    unsigned ring_flags;         /* setup flags that worked in the startup probe */
    bool has_peername;           /* SO_PEERNAME through uring_cmd works (kernel >= 6.7) */
    struct tls_gen *tls;         /* this generation's TLS contexts (lb/tls) */
    struct cache_board *cache_board; /* operator purges and L1 counters (lb/cache/purge.h) */
    struct snap_slot *snap_slots; /* conf->nstatics: the published snapshot sets */
    size_t nsnap_slots;           /* initialised so far */
    int access_fd;               /* access log: -1 off, 2 stderr, or an O_APPEND file */
    struct hc *hc;               /* health checker (lb/core/health.c); set before workers start */
    int hc_tag;                  /* its probe engine's tag on the control loop; 0: none */
    const char *file;            /* the config file, for reloads */
    pthread_t *threads;          /* nworkers */
    uint32_t started;            /* threads started */
    uint32_t nworkers_built;     /* workers initialised */
    size_t nclusters_built;      /* clusters initialised */
    _Atomic int stop;            /* 1: stop (the control thread: SIGTERM/SIGINT, reload);
                                    2: stop, failed (a worker or the start failed) */
};

#endif
