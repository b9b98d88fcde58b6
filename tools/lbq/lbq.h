/*
 * lbq, the queue consumer: what its files share. main.c reads the command line, store.c
 * owns every Redis key lbq touches, consume.c runs the delivery threads, http.c talks to the
 * application, entry.c decodes what lb pushed.
 *
 * Keys, for a queue Q (the list lb LPUSHes onto; lbq takes from its right end, so FIFO):
 *   Q:processing:OWNER   entries an owner (one delivery thread) has taken and not finished
 *   Q:heartbeat:OWNER    exists while the owner lives (SET ... EX ttl, refreshed)
 *   Q:consumers          set of owners that may have a processing list
 *   Q:tries              hash id -> delivery attempts so far (survives restarts)
 *   Q:dead               dead letters: malformed entries and entries out of tries (LPUSH)
 */
#ifndef TOOLS_LBQ_LBQ_H
#define TOOLS_LBQ_LBQ_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/err.h"
#include "tools/lbq/http.h"

#define LBQ_KEY_MAX 512
#define LBQ_MAX_THREADS 256
#define LBQ_MAX_NODES 16

struct lbq_opts {
    const char *queue;
    char nodes[LBQ_MAX_NODES][280]; /* host:port */
    size_t nnodes;
    const char *password; /* $LBQ_REDIS_PASSWORD, or NULL */
    struct lbq_url url;
    unsigned threads;   /* default 4 */
    unsigned max_tries; /* default 5 */
    double rate;        /* deliveries per second overall; 0: unlimited */
    bool json;
    unsigned hb_ttl;         /* heartbeat TTL in seconds, default 10 */
    int timeout_ms;          /* HTTP connect/send/receive, default 10 s */
    int redis_timeout_ms;    /* Redis connect and replies (beyond BLMOVE's wait), default 5 s */
    unsigned backoff_ms;     /* first retry delay, doubled each try, default 200 ms */
    unsigned backoff_max_ms; /* cap, default 10 s */
    char consumer[96];       /* HOST-PID-RANDOM; owners are CONSUMER.THREAD */
};

/* Names Q:SUFFIX into @buf (LBQ_KEY_MAX); -ENAMETOOLONG when the queue name is too long. */
int lbq_key(char *buf, const char *queue, const char *suffix);

/*
 * Connects to the node of @o that answers ROLE as master (AUTH first with a password), with
 * @o->redis_timeout_ms for connect and commands. Returns the context or NULL with a message.
 */
redisContext *lbq_redis_connect(const struct lbq_opts *o, struct lb_err *err);

/* A reply of the expected type, or NULL (freed) with the error in @err. */
redisReply *lbq_cmd(redisContext *c, int type, struct lb_err *err, const char *fmt, ...);

/* Registers @owner (heartbeat first, then the set) or refreshes it. 0 or -EIO. */
int lbq_heartbeat(redisContext *c, const struct lbq_opts *o, const char *owner, struct lb_err *err);

/*
 * Moves the processing list of @owner back to the consuming end of the queue, atomically (one
 * Lua script), oldest entry last so it is taken first again. With @only_dead the script does
 * nothing when the owner's heartbeat exists, and forgets the owner when it acts; without, it
 * always acts (a thread taking back its own list after a Redis error) and keeps the owner.
 * Returns the number of entries moved, -EAGAIN (owner alive) or -EIO.
 */
long lbq_requeue(redisContext *c, const struct lbq_opts *o, const char *owner, bool only_dead,
                 struct lb_err *err);

/* Requeues the lists of every registered owner whose heartbeat is gone; returns the total. */
long lbq_recover(redisContext *c, const struct lbq_opts *o, struct lb_err *err);

/* Forgets @owner after a clean stop: its list back to the queue, heartbeat deleted. */
int lbq_release(redisContext *c, const struct lbq_opts *o, const char *owner, struct lb_err *err);

/*
 * BLMOVE Q -> @proc (right to left), waiting up to @wait_s. Returns 1 with the raw entry in
 * *@raw (malloc'd, the caller frees it), 0 when nothing came, or -EIO.
 */
int lbq_take(redisContext *c, const struct lbq_opts *o, const char *proc, double wait_s, char **raw,
             size_t *len, struct lb_err *err);

/* Counts one more attempt for entry @id; returns the count so far (>= 1) or -EIO. */
long long lbq_count_try(redisContext *c, const struct lbq_opts *o, const char *id,
                        struct lb_err *err);

enum lbq_fate {
    LBQ_DONE, /* delivered: gone from the processing list, tries forgotten */
    LBQ_DEAD, /* to Q:dead, tries forgotten */
    LBQ_BACK, /* to the consuming end of Q, tries kept (a stop during a retry wait) */
};

/* Takes @raw out of @proc and gives it its fate, in one MULTI/EXEC. @id may be NULL
 * (malformed entry). 0 or -EIO. */
int lbq_finish(redisContext *c, const struct lbq_opts *o, const char *proc, const char *raw,
               size_t len, const char *id, enum lbq_fate fate, struct lb_err *err);

struct lbq_qstats {
    long long length, dead, processing, consumers, live_consumers, tries_pending;
    long long oldest_age_ms; /* -1: empty queue, -2: oldest entry unreadable */
};

int lbq_stats_get(redisContext *c, const struct lbq_opts *o, struct lbq_qstats *s,
                  struct lb_err *err);

/* Runs `consume` until SIGTERM/SIGINT; returns the process exit code. */
int lbq_consume(struct lbq_opts *o);

int64_t lbq_now_ms(void);

/* Writes @s as a JSON string (quoted, escaped) to @out. */
void lbq_json_str(FILE *out, const char *s);

#endif
