/*
 * The client side of `protocol: redis` listeners: commands parsed (lb/redis/cmd.c), each
 * sent to the shard that owns its key (the cluster's Maglev or ring hash, ignoring health:
 * a key never moves to a shard that does not hold it), multi-key commands split into one
 * command per key and their replies merged, a few commands answered by lb itself, and every
 * reply returned in the order the client sent its commands.
 *
 * Limits: a request over the listener's max_body_bytes, more than RDS_ARGS_MAX arguments or
 * malformed RESP gets "-ERR Protocol error: ..." and the connection closes after the replies
 * before it, as Redis does; other clients never notice. A client with RDS_PIPELINE_MAX
 * commands waiting is not read until half of them are answered.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/cluster/cluster.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/redis/internal.h"
#include "lb/redis/redis.h"

static struct rds_client *cli_of(struct io_conn *c)
{
    return (struct rds_client *)c;
}

static const struct conf_listener *lcf_of(struct io_worker *w, struct rds_client *c)
{
    return w->ls[c->base.listener].cf;
}

static void progress(struct io_worker *w, struct rds_client *c);

/* ---- requests ---- */

/* A request object: from the worker's free list (its reply buffer kept), else new. */
static struct rds_req *req_new(struct io_worker *w, struct rds_client *c)
{
    struct rds_worker *x = rw(w);
    struct rds_req *r = x->free_reqs;
    if (r) {
        x->free_reqs = r->next;
        x->nfree_reqs--;
        struct rds_buf keep = r->out;
        *r = (struct rds_req){.out = keep};
        r->out.len = 0;
    } else if (!(r = calloc(1, sizeof(*r)))) {
        return NULL;
    }
    r->cli = c;
    if (!c)
        return r; /* lb's own command: in no client's FIFO */
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nreqs++;
    return r;
}

/* Back to the worker's free list, so that the per-command path allocates nothing once warm;
 * a reply buffer grown by a big reply is not kept. */
static void req_free(struct io_worker *w, struct rds_req *r)
{
    struct rds_worker *x = rw(w);
    if (r->elems) {
        for (uint32_t i = 0; i < r->parts; i++)
            rds_buf_free(&r->elems[i]);
        free(r->elems);
        r->elems = NULL;
    }
    if (x->nfree_reqs >= RDS_FREE_REQS_MAX || r->out.cap > RDS_KEEP_REPLY_BYTES) {
        rds_buf_free(&r->out);
        free(r);
        return;
    }
    r->next = x->free_reqs;
    x->free_reqs = r;
    x->nfree_reqs++;
}

/* The request's last part is in: its reply is complete. */
static void req_done(struct io_worker *w, struct rds_req *r)
{
    rds_merge_finish(r);
    if (r->on_done) {
        r->on_done(w, r->token, r->out.p, r->out.len);
        req_free(w, r);
    } else if (!r->cli)
        req_free(w, r); /* orphaned: nobody waits for it */
    else
        progress(w, r->cli);
}

void rds_req_reply(struct io_worker *w, struct rds_req *r, uint32_t part, const char *p, size_t n)
{
    if (rds_merge_reply(r, part, p, n))
        req_done(w, r);
}

void rds_req_fail(struct io_worker *w, struct rds_req *r, uint32_t part, const char *msg)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "-ERR lb: %s\r\n", msg);
    if (n >= (int)sizeof(line)) {
        n = (int)sizeof(line) - 1;
        memcpy(line + n - 2, "\r\n", 2);
    }
    rds_req_reply(w, r, part, line, (size_t)n);
}

/* A command of lb's own to server @s of @cluster (see rds_call). */
static int call_on(struct io_worker *w, uint16_t cluster, uint32_t s, const char *cmd, size_t len,
                   rds_done_fn done, uint64_t token)
{
    struct rds_req *r = req_new(w, NULL);
    if (!r)
        return -ENOMEM;
    r->t_start_us = w->now_ms * 1000;
    r->parts = 1;
    r->on_done = done;
    r->token = token;
    rds_server_send(w, cluster, s, r, 0, cmd, len);
    return 0;
}

int rds_call(struct io_worker *w, uint16_t cluster, const char *cmd, size_t len, rds_done_fn done,
             uint64_t token)
{
    return call_on(w, cluster, 0, cmd, len, done, token);
}

int rds_call_key(struct io_worker *w, uint16_t cluster, const char *key, size_t klen,
                 const char *cmd, size_t len, rds_done_fn done, uint64_t token)
{
    const struct cl_cluster *cl = &w->rt->clusters[cluster];
    int s = cl_cluster_owner(cl, &w->cws[cluster], rds_key_hash(key, klen));
    if (s < 0 || atomic_load_explicit(&cl->servers[s].flags, memory_order_relaxed) & CL_SRV_F_DOWN)
        return -EHOSTDOWN;
    return call_on(w, cluster, (uint32_t)s, cmd, len, done, token);
}

/* A reply lb makes itself, ready at once. */
static void local_reply(struct rds_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void local_reply(struct rds_req *r, const char *fmt, ...)
{
    char tmp[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(tmp)) {
        n = (int)sizeof(tmp) - 1;
        memcpy(tmp + n - 2, "\r\n", 2);
    }
    rds_buf_put(&r->out, tmp, (size_t)(n > 0 ? n : 0));
}

/* A command name as an error message may show it: printable, at most 40 bytes. */
static const char *shown(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 40 && o + 1 < cap; i++)
        out[o++] = (p[i] > ' ' && p[i] < 127 && p[i] != '\'') ? p[i] : '?';
    out[o] = '\0';
    return out;
}

/* ---- routing ---- */

/* The shard owning key @a of the request at @raw. */
static int owner(struct io_worker *w, uint16_t ci, const char *raw, const struct rds_arg *a)
{
    return cl_cluster_owner(&w->rt->clusters[ci], &w->cws[ci], rds_key_hash(raw + a->off, a->len));
}

/* Sends @argc arguments (spans of @raw) as one RESP command: as received when it came as
 * RESP and is the whole request, re-encoded otherwise. */
static void forward(struct io_worker *w, uint16_t ci, int shard, struct rds_req *r, uint32_t part,
                    const char *raw, uint32_t rawlen, const struct rds_arg *v, uint32_t argc,
                    bool as_is)
{
    if (as_is) {
        rds_server_send(w, ci, (uint32_t)shard, r, part, raw, rawlen);
        return;
    }
    const char *stackv[4];
    size_t stackl[4];
    const char **av = argc <= 4 ? stackv : malloc(argc * sizeof(*av));
    size_t *al = argc <= 4 ? stackl : malloc(argc * sizeof(*al));
    char *cmd = NULL;
    int n = -1;
    if (av && al) {
        for (uint32_t i = 0; i < argc; i++) {
            av[i] = raw + v[i].off;
            al[i] = v[i].len;
        }
        n = redisFormatCommandArgv(&cmd, (int)argc, av, al);
    }
    if (n < 0)
        rds_req_fail(w, r, part, "out of memory");
    else
        rds_server_send(w, ci, (uint32_t)shard, r, part, cmd, (size_t)n);
    if (n >= 0)
        redisFreeCommand(cmd);
    if (av != stackv)
        free(av);
    if (al != stackl)
        free(al);
}

/* A command whose keys (@first..@last by @step) must share a shard, sent whole. */
static void keyed(struct io_worker *w, uint16_t ci, struct rds_req *r, const struct rds_cmd *cmd,
                  const char *raw, uint32_t rawlen, const struct rds_argv *a, int first, int last)
{
    int shard = owner(w, ci, raw, &a->v[first]);
    for (int k = first + cmd->step; k <= last && shard >= 0; k += cmd->step)
        if (owner(w, ci, raw, &a->v[k]) != shard) {
            local_reply(r, "-ERR lb: the keys of '%s' are on different shards\r\n", cmd->name);
            return;
        }
    if (shard < 0) {
        local_reply(r, "-ERR lb: the cluster has no shard\r\n");
        return;
    }
    r->parts = 1;
    forward(w, ci, shard, r, 0, raw, rawlen, a->v, a->n, !a->inline_form);
}

/* DEL, EXISTS, MGET, MSET ...: one command per key (with its value for MSET). */
static void split(struct io_worker *w, uint16_t ci, struct rds_req *r, const struct rds_cmd *cmd,
                  const char *raw, const struct rds_argv *a)
{
    uint32_t nkeys = (a->n - 1) / (uint32_t)cmd->step;
    r->merge = cmd->kind == RDS_K_SUM    ? RDS_M_SUM
               : cmd->kind == RDS_K_MGET ? RDS_M_ARRAY
                                         : RDS_M_OK;
    if (r->merge == RDS_M_ARRAY && !(r->elems = calloc(nkeys, sizeof(*r->elems)))) {
        local_reply(r, "-ERR lb: out of memory\r\n");
        return;
    }
    r->parts = nkeys;
    for (uint32_t i = 0; i < nkeys; i++) {
        const struct rds_arg *k = &a->v[1 + i * (uint32_t)cmd->step];
        struct rds_arg sub[3] = {a->v[0], k[0], cmd->step == 2 ? k[1] : k[0]};
        int shard = owner(w, ci, raw, k);
        if (shard < 0)
            rds_req_fail(w, r, i, "the cluster has no shard");
        else
            forward(w, ci, shard, r, i, raw, 0, sub, (uint32_t)cmd->step + 1, false);
    }
}

/* PING, ECHO, QUIT, SELECT, COMMAND. */
static void local(struct rds_req *r, const struct rds_cmd *cmd, const char *raw,
                  const struct rds_argv *a)
{
    const struct rds_arg *v = a->v;
    switch (cmd->name[0]) {
    case 'P': /* PING [message] */
        if (a->n == 1)
            local_reply(r, "+PONG\r\n");
        else if (a->n == 2)
            local_reply(r, "$%u\r\n%.*s\r\n", v[1].len, (int)v[1].len, raw + v[1].off);
        else
            local_reply(r, "-ERR wrong number of arguments for 'ping' command\r\n");
        return;
    case 'E':
        if (v[1].len > 300) { /* local_reply's room; long echoes go the slow way */
            rds_buf_printf(&r->out, "$%u\r\n", v[1].len);
            rds_buf_put(&r->out, raw + v[1].off, v[1].len);
            rds_buf_put(&r->out, "\r\n", 2);
        } else {
            local_reply(r, "$%u\r\n%.*s\r\n", v[1].len, (int)v[1].len, raw + v[1].off);
        }
        return;
    case 'Q':
        r->quit = true;
        local_reply(r, "+OK\r\n");
        return;
    case 'S':
        if (v[1].len == 1 && raw[v[1].off] == '0')
            local_reply(r, "+OK\r\n");
        else
            local_reply(r, "-ERR lb: only database 0 is served through this proxy\r\n");
        return;
    default: /* COMMAND: nothing to describe */
        local_reply(r, "*0\r\n");
    }
}

/* EVAL script numkeys key... arg...: its keys on one shard. */
static void eval(struct io_worker *w, uint16_t ci, struct rds_req *r, const struct rds_cmd *cmd,
                 const char *raw, uint32_t rawlen, const struct rds_argv *a)
{
    const struct rds_arg *nk = &a->v[2];
    long n = 0;
    for (uint32_t i = 0; i < nk->len && n <= RDS_ARGS_MAX; i++) {
        char d = raw[nk->off + i];
        n = (d >= '0' && d <= '9') ? n * 10 + (d - '0') : RDS_ARGS_MAX + 1;
    }
    if (nk->len == 0 || n > (long)a->n - 3)
        local_reply(r, "-ERR Number of keys can't be greater than number of args\r\n");
    else if (n == 0)
        local_reply(r, "-ERR lb: '%s' without keys cannot be sent to a shard\r\n", cmd->name);
    else
        keyed(w, ci, r, cmd, raw, rawlen, a, 3, 2 + (int)n);
}

/* One parsed request (@rawlen bytes at @raw, arguments in @a) becomes a request. */
static void dispatch(struct io_worker *w, struct rds_client *c, const char *raw, uint32_t rawlen,
                     const struct rds_argv *a)
{
    if (a->n == 0)
        return; /* an empty line: Redis ignores it too */
    struct rds_req *r = req_new(w, c);
    if (!r) {
        c->close_after = true;
        return;
    }
    r->t_start_us = w->now_ms * 1000;
    const struct rds_cmd *cmd = rds_cmd_lookup(raw + a->v[0].off, a->v[0].len);
    char nm[48];
    uint16_t ci = (uint16_t)lcf_of(w, c)->cluster_idx;
    if (!cmd) {
        local_reply(r, "-ERR unknown command '%s' (lb does not proxy it)\r\n",
                    shown(raw + a->v[0].off, a->v[0].len, nm, sizeof(nm)));
    } else if (!rds_arity_ok(cmd, a->n)) {
        local_reply(r, "-ERR wrong number of arguments for '%s' command\r\n", cmd->name);
    } else if (cmd->kind == RDS_K_REFUSED) {
        local_reply(r, "-ERR lb: '%s' is not supported through this proxy: %s\r\n", cmd->name,
                    cmd->why);
    } else if (cmd->kind == RDS_K_LOCAL) {
        local(r, cmd, raw, a);
    } else if (cmd->kind == RDS_K_EVAL) {
        eval(w, ci, r, cmd, raw, rawlen, a);
    } else if (cmd->kind == RDS_K_KEYED) {
        int last = cmd->last < 0 ? (int)a->n + cmd->last : cmd->last;
        keyed(w, ci, r, cmd, raw, rawlen, a, cmd->first, last);
    } else {
        split(w, ci, r, cmd, raw, a);
    }
}

/* ---- the connection ---- */

/* Parses and dispatches what came in, as far as it goes. Returns the requests it made. */
static uint32_t parse_all(struct io_worker *w, struct rds_client *c)
{
    const struct conf_listener *l = lcf_of(w, c);
    struct rds_worker *x = rw(w);
    struct rds_limits lim = {.max_request = l->max_body_bytes ? l->max_body_bytes : 512u << 20,
                             .max_args = x->argv.cap};
    uint32_t off = 0, made = 0;
    while (!c->close_after && c->nreqs < RDS_PIPELINE_MAX && off < c->in.len) {
        char err[120];
        int64_t n = rds_parse(c->in.p + off, c->in.len - off, &lim, &x->argv, err, sizeof(err));
        if (n == RDS_AGAIN)
            break;
        if (n < 0) {
            struct rds_req *r = req_new(w, c);
            if (r)
                local_reply(r, "-ERR %s\r\n", err);
            lb_info("redis client refused", "listener=%s reason=\"%s\"", l->name, err);
            c->close_after = true;
            made++;
            break;
        }
        dispatch(w, c, c->in.p + off, (uint32_t)n, &x->argv);
        off += (uint32_t)n;
        made++;
    }
    if (off) {
        memmove(c->in.p, c->in.p + off, c->in.len - off);
        c->in.len -= off;
    }
    if (!c->in.len && c->in.cap > 64 * 1024)
        rds_buf_free(&c->in); /* an idle client holds no buffer */
    return made;
}

/* Moves finished requests, in order, to the output; reads on; sends; ends when asked to. */
static void progress(struct io_worker *w, struct rds_client *c)
{
    if (c->busy) {
        c->again = true;
        return;
    }
    c->busy = true;
    do {
        c->again = false;
        while (c->head && c->head->done == c->head->parts) {
            struct rds_req *r = c->head;
            rds_buf_put(&c->wire.out, r->out.p, r->out.len);
            if (r->quit)
                c->close_after = true;
            c->head = r->next;
            if (!c->head)
                c->tail = NULL;
            c->nreqs--;
            req_free(w, r);
        }
        if (c->paused && c->nreqs < RDS_PIPELINE_MAX / 2) {
            c->paused = false;
            io_stream_resume(w, &c->base, &c->st);
        }
        /* Local answers are ready at once: round again to move them out. */
        if (c->in.len && !c->close_after && c->nreqs < RDS_PIPELINE_MAX && parse_all(w, c))
            c->again = true;
    } while (c->again);
    c->busy = false;
    if (c->nreqs >= RDS_PIPELINE_MAX && !c->paused) {
        c->paused = true;
        io_stream_pause(w, &c->base, &c->st);
    }
    rds_wire_start(w, &c->base, &c->st, &c->wire);
    if (c->close_after && !c->wire.sending.len && !c->wire.out.len &&
        (!c->nreqs || c->st.flags & IO_ST_F_EOF))
        io_conn_close(w, &c->base, NULL);
}

static void cli_accepted(struct io_worker *w, struct io_conn *base)
{
    base->state = IO_CONN_OPEN;
    io_stream_arm_recv(w, base, &cli_of(base)->st);
}

static void cli_on_recv(struct io_worker *w, struct io_conn *base, struct io_stream *st, int res)
{
    struct rds_client *c = cli_of(base);
    if (res < 0) {
        io_conn_close(w, base, "recv error");
        return;
    }
    if (res == 0) {
        /* The client sends nothing more: answer what it asked, then close. */
        c->close_after = true;
        progress(w, c);
        return;
    }
    uint32_t len;
    const char *p;
    while ((p = io_stream_head(w, st, &len))) {
        if (rds_buf_put(&c->in, p, len) < 0) {
            io_conn_close(w, base, "out of memory");
            return;
        }
        io_stream_consume(w, st, len);
    }
    progress(w, c);
}

static void cli_on_sent(struct io_worker *w, struct io_conn *base, struct io_stream *st, int res)
{
    struct rds_client *c = cli_of(base);
    if (res < 0) {
        io_conn_close(w, base, "send error");
        return;
    }
    if (rds_wire_sent(w, base, st, &c->wire, res))
        progress(w, c);
}

static void cli_tick(struct io_worker *w, struct io_conn *base)
{
    struct rds_client *c = cli_of(base);
    uint64_t idle = lcf_of(w, c)->idle_timeout_ms;
    if (w->stopping && !c->nreqs && !c->wire.sending.len)
        io_conn_close(w, base, "stopping");
    else if (idle && !c->nreqs && w->now_ms - base->last_ms > idle)
        io_conn_close(w, base, "idle timeout");
}

static void cli_on_close(struct io_worker *w, struct io_conn *base)
{
    struct rds_client *c = cli_of(base);
    /* Requests still waiting on shards stay until answered, then go unseen. */
    for (struct rds_req *r = c->head, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->done < r->parts)
            r->cli = NULL;
        else
            req_free(w, r);
    }
    c->head = c->tail = NULL;
    c->nreqs = 0;
}

static void cli_on_free(struct io_worker *w, struct io_conn *base)
{
    struct rds_client *c = cli_of(base);
    rds_buf_free(&c->in);
    rds_wire_free(&c->wire);
}

const struct io_conn_ops rds_client_ops = {
    .name = "redis",
    .size = sizeof(struct rds_client),
    .nstreams = 1,
    .stream_off = {offsetof(struct rds_client, st)},
    .accepted = cli_accepted,
    .on_recv = cli_on_recv,
    .on_sent = cli_on_sent,
    .tick = cli_tick,
    .on_close = cli_on_close,
    .on_free = cli_on_free,
};
