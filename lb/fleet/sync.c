/*
 * The fleet thread: two connections to the Redis node answering ROLE as master (one for
 * commands, one subscribed to the events channel), every call bounded by
 * global.redis.timeout. Each turn it writes the local changes (unless Redis holds a newer
 * one for that server), acknowledges the changes applied here, sends the heartbeat and reads
 * the others' (every second), reads the whole state again (every two seconds: events missed
 * while disconnected or dropped are repaired), counts acknowledgements of recent local
 * changes, and waits up to 100 ms for events. Any failure drops both connections; the next
 * turn connects again (at most once a second), and the log says so once per outage.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lb/core/log.h"
#include "lb/fleet/internal.h"

#define KEY_MAX 512

static void key(const struct fleet *f, char *buf, const char *suffix)
{
    snprintf(buf, KEY_MAX, "%sfleet:%s", f->prefix, suffix);
}

static redisReply *cmd(redisContext *c, int want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r && want >= 0 && r->type != want) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Reads the replies of @n pipelined commands; -1 when one failed or is an error (a READONLY
 * from a master that became a replica: the next connection finds the new master). */
static int replies(redisContext *c, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            return -1;
        if (r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
    return rc;
}

/* ---- connecting ---- */

static redisContext *open_node(const struct fleet *f, const char *node, bool *master)
{
    char host[64];
    const char *colon = strrchr(node, ':');
    if (!colon || (size_t)(colon - node) >= sizeof(host))
        return NULL;
    size_t hl = (size_t)(colon - node);
    memcpy(host, node, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct timeval tv = {(long)(f->timeout_ms / 1000), (long)(f->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (f->password) {
        redisReply *a = cmd(c, REDIS_REPLY_STATUS, "AUTH %s", f->password);
        if (!a) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(a);
    }
    redisReply *r = cmd(c, REDIS_REPLY_ARRAY, "ROLE");
    *master = r && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING &&
              !strcmp(r->element[0]->str, "master");
    if (r)
        freeReplyObject(r);
    return c;
}

/* Drops both connections. @why may be a context's own errstr: it is copied first. */
static void disconnect(struct fleet *f, const char *why)
{
    char reason[160];
    snprintf(reason, sizeof(reason), "%s", why);
    if (f->cmd)
        redisFree(f->cmd);
    if (f->sub)
        redisFree(f->sub);
    f->cmd = f->sub = NULL;
    atomic_store(&f->up, false);
    atomic_store(&f->first_read, true);
    if (!f->logged_down) {
        lb_warn("fleet: Redis unreachable: serving with the last state; changes apply here "
                "and reach Redis when it is back",
                "reason=\"%s\"", reason);
        f->logged_down = true;
    }
}

static bool connect_master(struct fleet *f)
{
    for (size_t i = 0; i < f->nnodes; i++) {
        bool master = false, m2 = false;
        redisContext *c = open_node(f, f->nodes[i], &master);
        if (!c || !master) {
            if (c)
                redisFree(c);
            continue;
        }
        redisContext *s = open_node(f, f->nodes[i], &m2);
        char ch[KEY_MAX];
        key(f, ch, "events");
        redisReply *r = s ? cmd(s, REDIS_REPLY_ARRAY, "SUBSCRIBE %s", ch) : NULL;
        if (!r) {
            redisFree(c);
            if (s)
                redisFree(s);
            continue;
        }
        freeReplyObject(r);
        f->cmd = c;
        f->sub = s;
        return true;
    }
    return false;
}

/* ---- writing ---- */

/* Writes @c unless Redis holds a newer change for its server; tells the others. */
static int write_change(struct fleet *f, const struct fleet_change *c)
{
    char st[KEY_MAX], ev[KEY_MAX], ack[KEY_MAX + 64], field[256], value[256], msg[512];
    key(f, st, "state");
    key(f, ev, "events");
    snprintf(ack, sizeof(ack), "%sfleet:ack:%llu:%s", f->prefix, (unsigned long long)c->t,
             c->instance);
    if (fleet_field_format(c, field, sizeof(field)) < 0 ||
        fleet_value_format(c, value, sizeof(value)) < 0 ||
        fleet_event_format(c, msg, sizeof(msg)) < 0)
        return 0;
    redisReply *r = cmd(f->cmd, -1, "HGET %s %s", st, field);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    struct fleet_change there;
    const char *why;
    bool newer_there = r->type == REDIS_REPLY_STRING &&
                       !fleet_state_parse(field, strlen(field), r->str, r->len, &there, &why) &&
                       fleet_newer(&there, c);
    freeReplyObject(r);
    if (newer_there) {
        lb_info("fleet: a newer change made elsewhere wins over this instance's",
                "field=\"%s\" by=%s", field, there.instance);
        return 0;
    }
    redisAppendCommand(f->cmd, "HSET %s %s %s", st, field, value);
    redisAppendCommand(f->cmd, "PUBLISH %s %s", ev, msg);
    redisAppendCommand(f->cmd, "SADD %s %s", ack, f->instance);
    redisAppendCommand(f->cmd, "PEXPIRE %s 60000", ack);
    return replies(f->cmd, 4);
}

/* Takes a copy of a queue under the lock and empties it. */
static size_t grab(struct fleet *f, struct fleet_change *q, size_t *n, struct fleet_change *out)
{
    pthread_mutex_lock(&f->mu);
    size_t k = *n;
    memcpy(out, q, k * sizeof(*out));
    *n = 0;
    pthread_mutex_unlock(&f->mu);
    return k;
}

/* Puts back what could not be written (in front of what came meanwhile). */
static void put_back(struct fleet *f, struct fleet_change *q, size_t *n,
                     const struct fleet_change *rest, size_t k)
{
    pthread_mutex_lock(&f->mu);
    size_t room = FLEET_QUEUE_MAX - *n < k ? FLEET_QUEUE_MAX - *n : k;
    memmove(q + room, q, *n * sizeof(*q));
    memcpy(q, rest + (k - room), room * sizeof(*q));
    *n += room;
    pthread_mutex_unlock(&f->mu);
}

static int flush_out(struct fleet *f, struct fleet_change *tmp)
{
    size_t k = grab(f, f->out, &f->nout, tmp);
    for (size_t i = 0; i < k; i++)
        if (write_change(f, &tmp[i]) < 0) {
            put_back(f, f->out, &f->nout, tmp + i, k - i);
            return -1;
        }
    k = grab(f, f->acked, &f->nacked, tmp);
    for (size_t i = 0; i < k; i++) {
        char ack[KEY_MAX + 64];
        snprintf(ack, sizeof(ack), "%sfleet:ack:%llu:%s", f->prefix, (unsigned long long)tmp[i].t,
                 tmp[i].instance);
        redisReply *r = cmd(f->cmd, REDIS_REPLY_INTEGER, "SADD %s %s", ack, f->instance);
        if (!r) {
            put_back(f, f->acked, &f->nacked, tmp + i, k - i);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* ---- reading ---- */

/* A change read from Redis: queued for the control loop when newer than what is known. */
static void offer(struct fleet *f, const struct fleet_change *c)
{
    if (!strcmp(c->instance, f->instance))
        return; /* ours: applied when made */
    pthread_mutex_lock(&f->mu);
    if (fleet_note_locked(f, c))
        fleet_queue_push(f->in, &f->nin, c);
    pthread_mutex_unlock(&f->mu);
}

static void refuse(const char *what, const char *text, size_t len, const char *why)
{
    lb_warn("fleet: ignored a malformed or foreign value in Redis",
            "where=%s value=\"%.*s\" why=\"%s\"", what, (int)(len > 120 ? 120 : len), text, why);
}

static int read_state(struct fleet *f)
{
    char st[KEY_MAX];
    key(f, st, "state");
    redisReply *r = cmd(f->cmd, REDIS_REPLY_ARRAY, "HGETALL %s", st);
    if (!r)
        return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        struct fleet_change c;
        const char *why;
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (fleet_state_parse(k->str, k->len, v->str, v->len, &c, &why) < 0)
            refuse("state", v->str, v->len, why);
        else
            offer(f, &c);
    }
    freeReplyObject(r);
    atomic_store(&f->first_read, true);
    return 0;
}

static void take_event(struct fleet *f, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    struct fleet_change c;
    const char *why;
    if (fleet_is_inval(r->element[2]->str, r->element[2]->len)) {
        static struct fleet_inval v; /* 2 KiB: the fleet thread's */
        if (fleet_inval_parse(r->element[2]->str, r->element[2]->len, &v, &why) < 0)
            refuse("event", r->element[2]->str, r->element[2]->len, why);
        else
            fleet_inval_receive(f, &v);
        return;
    }
    if (fleet_event_parse(r->element[2]->str, r->element[2]->len, &c, &why) < 0)
        refuse("event", r->element[2]->str, r->element[2]->len, why);
    else
        offer(f, &c);
}

/* Waits up to @ms for events and takes them. */
static int read_events(struct fleet *f, int ms)
{
    struct pollfd p = {.fd = f->sub->fd, .events = POLLIN};
    int n = poll(&p, 1, ms);
    if (n <= 0)
        return n < 0 && errno != EINTR ? -1 : 0;
    if (redisBufferRead(f->sub) != REDIS_OK)
        return -1;
    for (;;) {
        void *rep = NULL;
        if (redisReaderGetReply(f->sub->reader, &rep) != REDIS_OK)
            return -1;
        if (!rep)
            return 0;
        take_event(f, rep);
        freeReplyObject(rep);
    }
}

/* ---- heartbeats ---- */

static int heartbeat(struct fleet *f)
{
    char k[KEY_MAX], set[KEY_MAX];
    snprintf(k, sizeof(k), "%sfleet:instance:%s", f->prefix, f->instance);
    key(f, set, "instances");
    pthread_mutex_lock(&f->mu);
    size_t vl = f->view_len;
    char *text = malloc(vl + 160);
    if (text) {
        int n = snprintf(text, 160, "lb1 %s %llu %d %llu\n", f->instance,
                         (unsigned long long)f->started_ms, (int)getpid(),
                         (unsigned long long)fleet_wall_ms());
        memcpy(text + n, f->view ? f->view : "", vl);
        vl += (size_t)n;
    }
    pthread_mutex_unlock(&f->mu);
    if (!text)
        return 0;
    redisAppendCommand(f->cmd, "SET %s %b PX %d", k, text, vl, FLEET_TTL_MS);
    redisAppendCommand(f->cmd, "SADD %s %s", set, f->instance);
    free(text);
    return replies(f->cmd, 2);
}

/* One member's heartbeat into @m (false when gone or malformed: logged). */
static bool member(const redisReply *v, struct fleet_member_view *m)
{
    const char *why;
    struct fleet_view *views = malloc(FLEET_VIEWS_MAX * sizeof(*views));
    if (!views || v->type != REDIS_REPLY_STRING) {
        free(views);
        return false;
    }
    if (fleet_heartbeat_parse(v->str, v->len, &m->m, views, FLEET_VIEWS_MAX, &m->nv, &why) < 0) {
        refuse("heartbeat", v->str, v->len, why);
        free(views);
        return false;
    }
    m->v = views;
    return true;
}

/* Reads every member's heartbeat; forgets the names whose heartbeat expired. */
static int read_members(struct fleet *f)
{
    char set[KEY_MAX];
    key(f, set, "instances");
    redisReply *names = cmd(f->cmd, REDIS_REPLY_ARRAY, "SMEMBERS %s", set);
    if (!names)
        return -1;
    struct fleet_member_view got[FLEET_MEMBERS_MAX];
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < names->elements && n < FLEET_MEMBERS_MAX; i++) {
        const redisReply *nm = names->element[i];
        if (nm->type != REDIS_REPLY_STRING)
            continue;
        char k[KEY_MAX];
        snprintf(k, sizeof(k), "%sfleet:instance:%s", f->prefix, nm->str);
        redisReply *v = cmd(f->cmd, -1, "GET %s", k);
        if (!v) {
            rc = -1;
            break;
        }
        if (v->type == REDIS_REPLY_NIL) {
            redisReply *d = cmd(f->cmd, -1, "SREM %s %s", set, nm->str);
            if (d)
                freeReplyObject(d);
        } else if (member(v, &got[n])) {
            n++;
        }
        freeReplyObject(v);
    }
    freeReplyObject(names);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nmembers; i++)
        free(f->members[i].v);
    memcpy(f->members, got, n * sizeof(*got));
    f->nmembers = n;
    f->live = (unsigned)n;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Counts the acknowledgements of this instance's recent changes. */
static int count_acks(struct fleet *f)
{
    uint64_t now = fleet_mono_ms();
    for (size_t i = 0; i < FLEET_ACKS_MAX; i++) {
        pthread_mutex_lock(&f->mu);
        struct fleet_ack a = f->acks[i];
        pthread_mutex_unlock(&f->mu);
        if (!a.t || a.until_ms < now)
            continue;
        char ack[KEY_MAX + 64];
        snprintf(ack, sizeof(ack), "%sfleet:ack:%llu:%s", f->prefix, (unsigned long long)a.t,
                 f->instance);
        redisReply *r = cmd(f->cmd, REDIS_REPLY_INTEGER, "SCARD %s", ack);
        if (!r)
            return -1;
        pthread_mutex_lock(&f->mu);
        if (f->acks[i].t == a.t) {
            f->acks[i].acks = (unsigned)r->integer;
            f->acks[i].live = f->live;
        }
        pthread_mutex_unlock(&f->mu);
        freeReplyObject(r);
    }
    return 0;
}

/* ---- the thread ---- */

/* Waits up to @ms, or until the fleet stops (or a change is queued: the caller waits again). */
static void nap(struct fleet *f, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->stop))
        pthread_cond_timedwait(&f->cond, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

void *fleet_thread(void *arg)
{
    struct fleet *f = arg;
    struct fleet_change *tmp = malloc(FLEET_QUEUE_MAX * sizeof(*tmp));
    uint64_t next_sync = 0, next_beat = 0, next_try = 0;
    while (tmp && !atomic_load(&f->stop)) {
        uint64_t now = fleet_mono_ms();
        if (!f->cmd) {
            if (now < next_try) {
                nap(f, next_try - now);
                continue;
            }
            next_try = now + 1000;
            if (!connect_master(f)) {
                disconnect(f, "no node answers ROLE as master");
                continue;
            }
            next_sync = next_beat = 0;
        }
        const char *fail = NULL;
        if (flush_out(f, tmp) < 0 || fleet_inval_publish(f) < 0)
            fail = "write failed";
        else if (now >= next_sync && read_state(f) < 0)
            fail = "state read failed";
        else if (now >= next_beat && (heartbeat(f) < 0 || read_members(f) < 0))
            fail = "heartbeat failed";
        else if (count_acks(f) < 0)
            fail = "ack count failed";
        else if (read_events(f, 100) < 0)
            fail = "event read failed";
        if (fail) {
            disconnect(f, f->cmd && f->cmd->err ? f->cmd->errstr : fail);
            continue;
        }
        if (now >= next_sync)
            next_sync = now + FLEET_SYNC_MS;
        if (now >= next_beat)
            next_beat = now + FLEET_HEARTBEAT_MS;
        if (!atomic_load(&f->up)) {
            atomic_store(&f->up, true);
            if (f->logged_down)
                lb_info("fleet: Redis reachable again", "instance=%s", f->instance);
            f->logged_down = false;
        }
    }
    if (f->cmd || f->sub) {
        f->logged_down = true; /* stopping: not an outage */
        disconnect(f, "stopping");
    }
    free(tmp);
    return NULL;
}
