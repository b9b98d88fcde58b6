/*
 * What lb/fleet's files share: the fleet object (fleet.c: its API, under the mutex) and its
 * thread's Redis work (sync.c: connections, reads and writes).
 */
#ifndef FLEET_INTERNAL_H
#define FLEET_INTERNAL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "lb/fleet/fleet.h"

#define FLEET_MAX_NODES (CONF_MAX_REPLICAS + 1)
#define FLEET_QUEUE_MAX 4096 /* changes waiting either way; beyond, the oldest go */
#define FLEET_MEMBERS_MAX 64 /* instances shown by lbctl fleet */
#define FLEET_VIEWS_MAX 256  /* servers per instance kept from its heartbeat */
#define FLEET_ACKS_MAX 16    /* recent local changes whose acks are counted */
#define FLEET_HEARTBEAT_MS 1000
#define FLEET_TTL_MS 5000  /* a heartbeat older than this: the instance is gone */
#define FLEET_SYNC_MS 2000 /* the whole state is read again this often (missed events) */
#define FLEET_ACK_WINDOW_MS 5000

struct fleet_member_view {
    struct fleet_member m;
    struct fleet_view *v; /* malloc'd, @nv */
    size_t nv;
};

struct fleet_ack {
    uint64_t t;
    uint64_t until_ms; /* monotonic: counted until then */
    unsigned acks, live;
};

struct fleet {
    /* From the config; read-only once started. */
    char nodes[FLEET_MAX_NODES][64];
    size_t nnodes;
    char *password, *prefix;
    char instance[CONF_NAME_MAX];
    uint64_t timeout_ms;
    uint64_t started_ms; /* Unix ms */

    pthread_t thread;
    bool thread_ok;
    atomic_bool stop, up;
    atomic_bool first_read; /* the state was read once, or Redis found unreachable */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    struct fleet_change *latest; /* the newest known change per server and kind */
    size_t nlatest, caplatest;
    struct fleet_change out[FLEET_QUEUE_MAX]; /* local changes for Redis */
    size_t nout;
    struct fleet_change in[FLEET_QUEUE_MAX]; /* other instances' changes to apply */
    size_t nin;
    struct fleet_change acked[FLEET_QUEUE_MAX]; /* applied here: to acknowledge */
    size_t nacked;
    struct fleet_ack acks[FLEET_ACKS_MAX];
    char *view; /* this instance's server lines */
    size_t view_len;
    struct fleet_member_view members[FLEET_MEMBERS_MAX];
    size_t nmembers;
    unsigned live;

    /* The thread's own. */
    redisContext *cmd, *sub;
    bool logged_down;
};

/* fleet.c, with @f->mu held: true (and @c recorded as the latest) when @c is newer than what
 * is known for its server and kind. */
bool fleet_note_locked(struct fleet *f, const struct fleet_change *c);

/* fleet.c: appends @c to a queue of FLEET_QUEUE_MAX (@n entries), dropping the oldest when
 * full. The caller holds @f->mu. */
void fleet_queue_push(struct fleet_change *q, size_t *n, const struct fleet_change *c);

/* inval.c, fleet thread: publishes what the workers queued (-1: Redis failed), and takes
 * another instance's invalidation for the control thread. */
int fleet_inval_publish(struct fleet *f);
void fleet_inval_receive(struct fleet *f, const struct fleet_inval *v);

/* sync.c: the thread. */
void *fleet_thread(void *arg);

uint64_t fleet_wall_ms(void);
uint64_t fleet_mono_ms(void);

#endif
