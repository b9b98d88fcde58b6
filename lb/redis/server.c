/*
 * Each worker's connections to the shards of `protocol: redis` listeners: one per server,
 * opened on first use and kept, carrying the parts of every client's commands pipelined
 * (appended to one buffer, one send in flight, replies matched in order).
 *
 * Replies are framed with hiredis's reader, given object functions that build nothing: it
 * says where each reply ends, and the bytes themselves are taken from a copy of what the
 * socket delivered (the reader keeps its own buffer, and compacts it as it goes, so its
 * bytes cannot be handed out). A protocol error from a server, a closed connection or no
 * reply within the cluster's response timeout fails every part waiting on it with an error
 * naming the shard, and closes the connection; the next command opens a new one, but not
 * before a short backoff after a failed connect, during which commands for that shard get
 * the error at once. Keys of other shards never notice.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/redis/internal.h"

#define RETRY_MS 200 /* after a failed connect, commands for the shard fail this long */

struct rds_server {
    struct io_conn base;
    struct io_stream st;
    struct io_connect cx;
    uint16_t cluster;
    uint32_t server;
    struct rds_wire wire;  /* commands queued; the send in flight */
    struct rds_pend *fifo; /* a ring of @fcap */
    uint32_t fhead, fn, fcap;
    redisReader *reader;
    struct rds_buf raw; /* what the reader was fed and has not framed yet */
    uint32_t roff;      /* start of the reply being read in @raw */
    uint64_t rbytes;    /* bytes of that reply the reader consumed so far */
    uint32_t member;    /* the member it connected to (cl_server.member then) */
    bool connected;
    bool retired; /* the shard's master moved: finish what waits, take nothing new */
};

static struct rds_server *srv_of(struct io_conn *c)
{
    return (struct rds_server *)c;
}

static const struct cl_server *cl_srv(struct io_worker *w, const struct rds_server *s)
{
    return &w->rt->clusters[s->cluster].servers[s->server];
}

/* ---- the reader, building nothing ---- */

static char nothing;
static void *mk_str(const redisReadTask *t, char *s, size_t n)
{
    (void)t, (void)s, (void)n;
    return &nothing;
}
static void *mk_arr(const redisReadTask *t, int n)
{
    (void)t, (void)n;
    return &nothing;
}
static void *mk_int(const redisReadTask *t, long long v)
{
    (void)t, (void)v;
    return &nothing;
}
static void *mk_nil(const redisReadTask *t)
{
    (void)t;
    return &nothing;
}
static void free_obj(void *o)
{
    (void)o;
}
static redisReplyObjectFunctions frame_only = {mk_str, mk_arr, mk_int, mk_nil, free_obj};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the FIFO of parts waiting for replies ---- */

static int fifo_push(struct rds_server *s, struct rds_req *req, uint32_t part, uint64_t now)
{
    if (s->fn == s->fcap) {
        uint32_t ncap = s->fcap ? 2 * s->fcap : 64;
        struct rds_pend *f = malloc(ncap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        for (uint32_t i = 0; i < s->fn; i++)
            f[i] = s->fifo[(s->fhead + i) % s->fcap];
        free(s->fifo);
        s->fifo = f;
        s->fcap = ncap;
        s->fhead = 0;
    }
    s->fifo[(s->fhead + s->fn) % s->fcap] = (struct rds_pend){req, part, now, mono_us()};
    s->fn++;
    return 0;
}

static struct rds_pend fifo_pop(struct rds_server *s)
{
    struct rds_pend p = s->fifo[s->fhead];
    s->fhead = (s->fhead + 1) % s->fcap;
    s->fn--;
    return p;
}

/* The address @s connected to: the server's, or the replica that was master then. */
static const char *conn_addr(const struct cl_server *cs, const struct rds_server *s)
{
    return s->member && s->member <= cs->cf->nreplicas ? cs->cf->replicas[s->member - 1].text
                                                       : cs->cf->addr.text;
}

/* Fails every part waiting on @s with "shard NAME (ADDRESS): WHY". */
static void fail_all(struct io_worker *w, struct rds_server *s, const char *why)
{
    if (!s->fn)
        return;
    const struct cl_server *cs = cl_srv(w, s);
    char msg[200];
    snprintf(msg, sizeof(msg), "shard %s (%s): %s", cs->cf->name, conn_addr(cs, s), why);
    lb_warn("redis shard failed", "cluster=%s server=%s reason=\"%s\" waiting=%u",
            w->rt->clusters[s->cluster].cf->name, cs->cf->name, why, s->fn);
    struct cl_server *csw = &w->rt->clusters[s->cluster].servers[s->server];
    while (s->fn) {
        struct rds_pend p = fifo_pop(s);
        if (p.req) {
            atomic_fetch_add_explicit(&csw->errors, 1, memory_order_relaxed);
            rds_req_fail(w, p.req, p.part, msg);
        }
    }
}

static void kick(struct io_worker *w, struct rds_server *s)
{
    if (s->connected)
        rds_wire_start(w, &s->base, &s->st, &s->wire);
}

/* ---- opening ---- */

static struct rds_server *open_conn(struct io_worker *w, uint16_t ci, uint32_t si)
{
    struct rds_worker *x = rw(w);
    struct cl_cluster *cl = &w->rt->clusters[ci];
    struct rds_server *s = (struct rds_server *)io_conn_alloc(w, &rds_server_ops);
    if (!s) {
        snprintf(x->why[ci][si], 96, "no free connection slot");
        return NULL;
    }
    s->cluster = ci;
    s->server = si;
    s->reader = redisReaderCreateWithFunctions(&frame_only);
    if (s->reader && cl->cf->password) {
        char *cmd;
        const char *argv[2] = {"AUTH", cl->cf->password};
        size_t lens[2] = {4, strlen(cl->cf->password)};
        int n = redisFormatCommandArgv(&cmd, 2, argv, lens);
        if (n < 0 || rds_buf_put(&s->wire.out, cmd, (size_t)n) < 0 ||
            fifo_push(s, NULL, 0, w->now_ms) < 0) {
            redisReaderFree(s->reader);
            s->reader = NULL;
        }
        if (n >= 0)
            redisFreeCommand(cmd);
    }
    if (!s->reader) {
        io_conn_close(w, &s->base, "out of memory");
        snprintf(x->why[ci][si], 96, "out of memory");
        return NULL;
    }
    s->base.state = IO_CONN_CONNECTING;
    x->srv[ci][si] = s;
    s->member = atomic_load_explicit(&cl->servers[si].member, memory_order_relaxed);
    io_conn_connect(w, &s->base, &s->st, &s->cx, cl_server_addr(&cl->servers[si]),
                    cl->cf->connect_timeout_ms);
    return s;
}

void rds_server_send(struct io_worker *w, uint16_t cluster, uint32_t server, struct rds_req *req,
                     uint32_t part, const char *cmd, size_t len)
{
    struct rds_worker *x = rw(w);
    struct rds_server *s = x->srv[cluster][server];
    const struct cl_server *cs0 = &w->rt->clusters[cluster].servers[server];
    if (s && s->member != atomic_load_explicit(&cs0->member, memory_order_relaxed)) {
        /* Health checks found the shard's master elsewhere: new commands go there; those
         * sent to the old one get its replies (or its failure). */
        s->retired = true;
        x->srv[cluster][server] = s = NULL;
        x->retry_ms[cluster][server] = 0;
    }
    if (!s && w->now_ms < x->retry_ms[cluster][server]) {
        const struct cl_server *cs = &w->rt->clusters[cluster].servers[server];
        char msg[200];
        snprintf(msg, sizeof(msg), "shard %s (%s) unavailable: %s", cs->cf->name,
                 cl_server_addr(cs)->text, x->why[cluster][server]);
        atomic_fetch_add_explicit(&w->rt->clusters[cluster].servers[server].errors, 1,
                                  memory_order_relaxed);
        rds_req_fail(w, req, part, msg);
        return;
    }
    if (!s && !(s = open_conn(w, cluster, server))) {
        atomic_fetch_add_explicit(&w->rt->clusters[cluster].servers[server].errors, 1,
                                  memory_order_relaxed);
        rds_req_fail(w, req, part, "no connection to the shard (lb is out of slots or memory)");
        return;
    }
    if (rds_buf_put(&s->wire.out, cmd, len) < 0 || fifo_push(s, req, part, w->now_ms) < 0) {
        rds_req_fail(w, req, part, "out of memory");
        return;
    }
    atomic_fetch_add_explicit(&w->rt->clusters[cluster].servers[server].picks, 1,
                              memory_order_relaxed);
    kick(w, s);
}

/* ---- the connection's life ---- */

static void srv_on_connect(struct io_worker *w, struct io_conn *base, struct io_stream *st, int res)
{
    struct rds_server *s = srv_of(base);
    struct rds_worker *x = rw(w);
    if (res < 0) {
        const char *e = res == -ECANCELED ? "connect timed out" : strerror(-res);
        char why[96];
        snprintf(why, sizeof(why), "connect failed: %s", e);
        if (x->srv[s->cluster][s->server] == s) {
            snprintf(x->why[s->cluster][s->server], 96, "%s", why);
            x->retry_ms[s->cluster][s->server] = w->now_ms + RETRY_MS;
        }
        fail_all(w, s, why);
        io_conn_close(w, base, "connect failed");
        return;
    }
    base->state = IO_CONN_OPEN;
    s->connected = true;
    io_stream_arm_recv(w, base, &s->st);
    kick(w, s);
}

/* One whole reply of @n bytes at the start of the unframed bytes: to its part. */
static bool deliver(struct io_worker *w, struct rds_server *s, const char *p, size_t n)
{
    if (!s->fn) {
        fail_all(w, s, "a reply to no command");
        io_conn_close(w, &s->base, "redis: unexpected reply");
        return false;
    }
    struct rds_pend pd = fifo_pop(s);
    if (pd.req) {
        struct cl_server *cs = &w->rt->clusters[s->cluster].servers[s->server];
        cl_latency_observe(&cs->latency, mono_us() - pd.t_us);
        if (p[0] == '-')
            atomic_fetch_add_explicit(&cs->errors, 1, memory_order_relaxed);
        rds_req_reply(w, pd.req, pd.part, p, n);
        return true;
    }
    if (p[0] == '-') { /* AUTH refused */
        char why[120];
        snprintf(why, sizeof(why), "AUTH refused: %.*s", (int)(n > 100 ? 100 : n - 2), p + 1);
        struct rds_worker *x = rw(w);
        snprintf(x->why[s->cluster][s->server], 96, "%.90s", why);
        x->retry_ms[s->cluster][s->server] = w->now_ms + RETRY_MS;
        fail_all(w, s, why);
        io_conn_close(w, &s->base, "redis AUTH refused");
        return false;
    }
    return true;
}

/* Feeds what arrived to the reader and hands every complete reply to its part. */
static void frame(struct io_worker *w, struct rds_server *s)
{
    uint32_t len;
    const char *p;
    while ((p = io_stream_head(w, &s->st, &len))) {
        if (redisReaderFeed(s->reader, p, len) != REDIS_OK || rds_buf_put(&s->raw, p, len) < 0) {
            fail_all(w, s, "out of memory");
            io_conn_close(w, &s->base, "out of memory");
            return;
        }
        io_stream_consume(w, &s->st, len);
    }
    redisReader *r = s->reader;
    for (;;) {
        size_t l0 = r->len, p0 = r->pos;
        void *reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK) {
            char why[160];
            snprintf(why, sizeof(why), "bad reply: %s", r->errstr);
            fail_all(w, s, why);
            io_conn_close(w, &s->base, "redis protocol error");
            return;
        }
        /* The reader drops consumed bytes from its buffer now and then (len shrinks and
         * pos restarts): what it consumed in this call is the sum of both moves. */
        s->rbytes += (l0 - r->len) + r->pos - p0;
        if (!reply)
            break;
        size_t n = (size_t)s->rbytes;
        s->rbytes = 0;
        const char *rp = s->raw.p + s->roff;
        s->roff += (uint32_t)n;
        if (!deliver(w, s, rp, n))
            return;
    }
    if (s->retired && !s->fn) {
        io_conn_close(w, &s->base, "redis master moved");
        return;
    }
    if (s->roff == s->raw.len) {
        s->roff = s->raw.len = 0;
    } else if (s->roff > s->raw.len / 2) {
        memmove(s->raw.p, s->raw.p + s->roff, s->raw.len - s->roff);
        s->raw.len -= s->roff;
        s->roff = 0;
    }
}

static void srv_on_recv(struct io_worker *w, struct io_conn *base, struct io_stream *st, int res)
{
    struct rds_server *s = srv_of(base);
    if (res > 0) {
        base->last_ms = w->now_ms;
        frame(w, s);
        return;
    }
    fail_all(w, s, res == 0 ? "the server closed the connection" : strerror(-res));
    io_conn_close(w, base, "redis server connection ended");
}

static void srv_on_sent(struct io_worker *w, struct io_conn *base, struct io_stream *st, int res)
{
    struct rds_server *s = srv_of(base);
    if (res < 0) {
        fail_all(w, s, strerror(-res));
        io_conn_close(w, base, "redis send failed");
        return;
    }
    if (rds_wire_sent(w, base, st, &s->wire, res))
        kick(w, s);
}

static void srv_tick(struct io_worker *w, struct io_conn *base)
{
    struct rds_server *s = srv_of(base);
    uint64_t limit = w->rt->clusters[s->cluster].cf->response_timeout_ms;
    if ((w->stopping || s->retired) && !s->fn) {
        io_conn_close(w, base, s->retired ? "redis master moved" : "stopping");
        return;
    }
    if (s->fn && limit && w->now_ms - s->fifo[s->fhead].t_ms > limit) {
        char why[64];
        snprintf(why, sizeof(why), "no reply within %llums", (unsigned long long)limit);
        fail_all(w, s, why);
        io_conn_close(w, base, "redis reply timeout");
    }
}

static void srv_on_close(struct io_worker *w, struct io_conn *base)
{
    struct rds_server *s = srv_of(base);
    struct rds_worker *x = rw(w);
    if (x && x->srv[s->cluster][s->server] == s)
        x->srv[s->cluster][s->server] = NULL;
    fail_all(w, s, "the connection closed");
}

static void srv_on_free(struct io_worker *w, struct io_conn *base)
{
    struct rds_server *s = srv_of(base);
    if (s->reader)
        redisReaderFree(s->reader);
    s->reader = NULL;
    rds_wire_free(&s->wire);
    rds_buf_free(&s->raw);
    free(s->fifo);
    s->fifo = NULL;
}

const struct io_conn_ops rds_server_ops = {
    .name = "redis-server",
    .size = sizeof(struct rds_server),
    .nstreams = 1,
    .stream_off = {offsetof(struct rds_server, st)},
    .connect_stream = 0,
    .connect_off = offsetof(struct rds_server, cx),
    .on_recv = srv_on_recv,
    .on_sent = srv_on_sent,
    .on_connect = srv_on_connect,
    .tick = srv_tick,
    .on_close = srv_on_close,
    .on_free = srv_on_free,
};
