/*
 * Every Redis key lbq reads or writes (the layout is in lbq.h). Blocking hiredis: each
 * delivery thread and the control loop own one context each.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/lbq/entry.h"
#include "tools/lbq/lbq.h"

/* KEYS: heartbeat, processing list, queue, owner set; ARGV: owner, "dead" or "mine".
 * LMOVE LEFT->RIGHT: the processing list's left end holds the entry taken last, so the
 * entry taken first ends at the queue's right (consuming) end and goes out first again. */
static const char requeue_lua[] =
    "if ARGV[2] == 'dead' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do n = n + 1 end\n"
    "if ARGV[2] == 'dead' then redis.call('SREM', KEYS[4], ARGV[1]) end\n"
    "return n\n";

int64_t lbq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lbq_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

int lbq_key(char *buf, const char *queue, const char *suffix)
{
    int n = snprintf(buf, LBQ_KEY_MAX, "%s:%s", queue, suffix);
    return n < 0 || n >= LBQ_KEY_MAX ? -ENAMETOOLONG : 0;
}

redisReply *lbq_cmd(redisContext *c, int type, struct lb_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        lb_err_set(err, "redis: %s", c->errstr[0] ? c->errstr : "connection lost");
        return NULL;
    }
    if (r->type == type || (type == REDIS_REPLY_NIL && r->type == REDIS_REPLY_STRING))
        return r;
    lb_err_set(err, "redis: unexpected reply%s%.*s", r->type == REDIS_REPLY_ERROR ? ": " : "",
               r->type == REDIS_REPLY_ERROR ? (int)r->len : 0, r->str ? r->str : "");
    freeReplyObject(r);
    return NULL;
}

static redisContext *connect_node(const struct lbq_opts *o, const char *node, bool *master,
                                  struct lb_err *err)
{
    char host[280];
    const char *colon = strrchr(node, ':');
    if (!colon || (size_t)(colon - node) >= sizeof(host)) {
        lb_err_set(err, "%s: expected HOST:PORT", node);
        return NULL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - node), node);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host) - 2);
        host[strlen(host) - 2] = '\0';
    }
    int ms = o->redis_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};
    redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    if (!c || c->err) {
        lb_err_set(err, "redis %s: %s", node, c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    redisReply *r;
    if (o->password) {
        if (!(r = lbq_cmd(c, REDIS_REPLY_STATUS, err, "AUTH %s", o->password)))
            goto fail;
        freeReplyObject(r);
    }
    if (!(r = lbq_cmd(c, REDIS_REPLY_ARRAY, err, "ROLE")))
        goto fail;
    *master = r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
              !strcmp(r->element[0]->str, "master");
    freeReplyObject(r);
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

redisContext *lbq_redis_connect(const struct lbq_opts *o, struct lb_err *err)
{
    for (size_t i = 0; i < o->nnodes; i++) {
        bool master = false;
        redisContext *c = connect_node(o, o->nodes[i], &master, err);
        if (c && master)
            return c;
        if (c) {
            lb_err_set(err, "redis %s: not a master", o->nodes[i]);
            redisFree(c);
        }
    }
    if (o->nnodes > 1)
        lb_err_set(err, "redis: none of the %zu nodes answers ROLE as master", o->nnodes);
    return NULL;
}

/* Runs one command that must succeed, dropping its reply. */
static int run(redisContext *c, int type, struct lb_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || (r->type != type && !(type == -1 && r->type != REDIS_REPLY_ERROR))) {
        lb_err_set(err, "redis: %s", !r ? c->errstr : r->str ? r->str : "unexpected reply");
        if (r)
            freeReplyObject(r);
        return -EIO;
    }
    freeReplyObject(r);
    return 0;
}

int lbq_heartbeat(redisContext *c, const struct lbq_opts *o, const char *owner, struct lb_err *err)
{
    char hb[LBQ_KEY_MAX + 128], set[LBQ_KEY_MAX];
    snprintf(hb, sizeof(hb), "%s:heartbeat:%s", o->queue, owner);
    lbq_key(set, o->queue, "consumers");
    /* Heartbeat before membership: a recovering consumer that sees the owner in the set
     * always finds the heartbeat too, so it never takes a live owner's list. */
    if (run(c, REDIS_REPLY_STATUS, err, "SET %s %lld EX %u", hb, (long long)lbq_now_ms(),
            o->hb_ttl) < 0)
        return -EIO;
    return run(c, REDIS_REPLY_INTEGER, err, "SADD %s %s", set, owner);
}

long lbq_requeue(redisContext *c, const struct lbq_opts *o, const char *owner, bool only_dead,
                 struct lb_err *err)
{
    char hb[LBQ_KEY_MAX + 128], proc[LBQ_KEY_MAX + 128], set[LBQ_KEY_MAX];
    snprintf(hb, sizeof(hb), "%s:heartbeat:%s", o->queue, owner);
    snprintf(proc, sizeof(proc), "%s:processing:%s", o->queue, owner);
    lbq_key(set, o->queue, "consumers");
    redisReply *r = lbq_cmd(c, REDIS_REPLY_INTEGER, err, "EVAL %s 4 %s %s %s %s %s %s", requeue_lua,
                            hb, proc, o->queue, set, owner, only_dead ? "dead" : "mine");
    if (!r)
        return -EIO;
    long n = (long)r->integer;
    freeReplyObject(r);
    return n < 0 ? -EAGAIN : n;
}

long lbq_recover(redisContext *c, const struct lbq_opts *o, struct lb_err *err)
{
    char set[LBQ_KEY_MAX];
    lbq_key(set, o->queue, "consumers");
    redisReply *r = lbq_cmd(c, REDIS_REPLY_ARRAY, err, "SMEMBERS %s", set);
    if (!r)
        return -EIO;
    long total = 0;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i]->len > 127)
            continue;
        long n = lbq_requeue(c, o, r->element[i]->str, true, err);
        if (n == -EIO) {
            total = -EIO;
            break;
        }
        if (n > 0) {
            fprintf(stderr, "lbq: took back %ld entries of consumer %s (no heartbeat)\n", n,
                    r->element[i]->str);
            total += n;
        }
    }
    freeReplyObject(r);
    return total;
}

int lbq_release(redisContext *c, const struct lbq_opts *o, const char *owner, struct lb_err *err)
{
    char hb[LBQ_KEY_MAX + 128], set[LBQ_KEY_MAX];
    snprintf(hb, sizeof(hb), "%s:heartbeat:%s", o->queue, owner);
    lbq_key(set, o->queue, "consumers");
    if (lbq_requeue(c, o, owner, false, err) < 0 ||
        run(c, REDIS_REPLY_INTEGER, err, "DEL %s", hb) < 0)
        return -EIO;
    return run(c, REDIS_REPLY_INTEGER, err, "SREM %s %s", set, owner);
}

int lbq_take(redisContext *c, const struct lbq_opts *o, const char *proc, double wait_s, char **raw,
             size_t *len, struct lb_err *err)
{
    redisReply *r =
        lbq_cmd(c, REDIS_REPLY_NIL, err, "BLMOVE %s %s RIGHT LEFT %.3f", o->queue, proc, wait_s);
    if (!r)
        return -EIO;
    int got = 0;
    if (r->type == REDIS_REPLY_STRING) {
        *raw = malloc(r->len + 1);
        if (*raw) {
            memcpy(*raw, r->str, r->len);
            (*raw)[r->len] = '\0';
            *len = r->len;
            got = 1;
        } else {
            lb_err_set(err, "out of memory"); /* the entry waits in @proc for a requeue */
            got = -EIO;
        }
    }
    freeReplyObject(r);
    return got;
}

long long lbq_count_try(redisContext *c, const struct lbq_opts *o, const char *id,
                        struct lb_err *err)
{
    char tries[LBQ_KEY_MAX];
    lbq_key(tries, o->queue, "tries");
    redisReply *r = lbq_cmd(c, REDIS_REPLY_INTEGER, err, "HINCRBY %s %s 1", tries, id);
    if (!r)
        return -EIO;
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

int lbq_finish(redisContext *c, const struct lbq_opts *o, const char *proc, const char *raw,
               size_t len, const char *id, enum lbq_fate fate, struct lb_err *err)
{
    char tries[LBQ_KEY_MAX], dead[LBQ_KEY_MAX];
    lbq_key(tries, o->queue, "tries");
    lbq_key(dead, o->queue, "dead");
    int n = 2;
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "LREM %s 1 %b", proc, raw, len);
    if (fate == LBQ_DEAD)
        n++, redisAppendCommand(c, "LPUSH %s %b", dead, raw, len);
    if (fate == LBQ_BACK)
        n++, redisAppendCommand(c, "RPUSH %s %b", o->queue, raw, len);
    if (id && fate != LBQ_BACK)
        n++, redisAppendCommand(c, "HDEL %s %s", tries, id);
    redisAppendCommand(c, "EXEC");
    int rc = 0;
    for (int i = 0; i <= n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            lb_err_set(err, "redis: %s", c->errstr);
            return -EIO; /* the context is unusable now; the caller reconnects */
        }
        if (i == n && (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n - 1)) {
            lb_err_set(err, "redis: transaction failed");
            rc = -EIO;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* The age of the entry at the consuming end of the queue. */
static long long oldest_age(redisContext *c, const struct lbq_opts *o, struct lb_err *err)
{
    redisReply *r = lbq_cmd(c, REDIS_REPLY_NIL, err, "LINDEX %s -1", o->queue);
    if (!r)
        return -3;
    long long age = -1;
    if (r->type == REDIS_REPLY_STRING) {
        struct lbq_entry e;
        age = -2;
        if (lbq_entry_parse(&e, r->str, r->len, NULL) == 0) {
            age = lbq_now_ms() - e.ts;
            lbq_entry_free(&e);
        }
    }
    freeReplyObject(r);
    return age;
}

static long long count(redisContext *c, struct lb_err *err, const char *cmd, const char *key)
{
    redisReply *r = lbq_cmd(c, REDIS_REPLY_INTEGER, err, "%s %s", cmd, key);
    if (!r)
        return -1;
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

int lbq_stats_get(redisContext *c, const struct lbq_opts *o, struct lbq_qstats *s,
                  struct lb_err *err)
{
    char k[LBQ_KEY_MAX + 128];
    memset(s, 0, sizeof(*s));
    s->length = count(c, err, "LLEN", o->queue);
    lbq_key(k, o->queue, "dead");
    s->dead = count(c, err, "LLEN", k);
    lbq_key(k, o->queue, "tries");
    s->tries_pending = count(c, err, "HLEN", k);
    if (s->length < 0 || s->dead < 0 || s->tries_pending < 0)
        return -EIO;
    if ((s->oldest_age_ms = oldest_age(c, o, err)) == -3)
        return -EIO;
    lbq_key(k, o->queue, "consumers");
    redisReply *r = lbq_cmd(c, REDIS_REPLY_ARRAY, err, "SMEMBERS %s", k);
    if (!r)
        return -EIO;
    int rc = 0;
    for (size_t i = 0; i < r->elements && !rc; i++) {
        const char *owner = r->element[i]->str;
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        s->consumers++;
        snprintf(k, sizeof(k), "%s:processing:%s", o->queue, owner);
        long long n = count(c, err, "LLEN", k);
        snprintf(k, sizeof(k), "%s:heartbeat:%s", o->queue, owner);
        long long live = count(c, err, "EXISTS", k);
        if (n < 0 || live < 0)
            rc = -EIO;
        s->processing += n;
        s->live_consumers += live;
    }
    freeReplyObject(r);
    return rc;
}
