/*
 * Enqueue routes: a request read whole, turned into one queue entry (lb/queue/entry.c) and
 * pushed onto the route's Redis list; the client gets 202 with the entry's id only once
 * Redis acknowledged the push.
 *
 *   dispatch -> HC_ENQ_BODY (the body is copied off the queue as it arrives, up to the
 *               route's max_body) -> HC_ENQ_WAIT (the push is in flight on the worker's
 *               pipelined connection to global.redis) -> 202, or 503 with Retry-After
 *
 * The push is a small Lua script, so that the length check and the push are one atomic step:
 * a full list (max_length) takes nothing and answers -1. An unreachable, failing or slow
 * Redis (the push unanswered within global.redis.timeout) gets 503 at once, never a hang; a
 * Redis that answers after that may still have stored the entry, which the consumer's
 * at-least-once contract covers. The body must come with Content-Length: a chunked one is
 * answered 411, so that no request is half-read into a list.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/metrics/stats.h"
#include "lb/queue/entry.h"
#include "lb/redis/redis.h"

/* KEYS[1] the list, ARGV[1] the entry, ARGV[2] max_length: the new length, or -1 when full. */
static const char push_script[] =
    "if redis.call('LLEN',KEYS[1])>=tonumber(ARGV[2]) then return -1 end "
    "return redis.call('LPUSH',KEYS[1],ARGV[1])";

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

#define ENQ_HDRS_MAX (CONF_ENQ_MAX_HEADERS + 2)

/* One request's entry while its body arrives and its push is in flight. */
struct http_enq {
    char id[QUEUE_ID_MAX];
    uint32_t id_len;
    uint32_t cont_sent; /* bytes of "100 Continue" sent */
    uint64_t ts_ms;
    uint64_t t_push_us;
    uint64_t len, cap; /* of @body */
    uint8_t body[];
};

/* ---- the process's part of an id: instance name and boot ---- */

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static uint32_t boot_id;
static char host_name[64];

static void boot_init(void)
{
    if (getrandom(&boot_id, sizeof(boot_id), 0) != sizeof(boot_id))
        boot_id = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
    if (gethostname(host_name, sizeof(host_name) - 1) < 0 || !host_name[0])
        snprintf(host_name, sizeof(host_name), "lb");
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void count(struct io_worker *w, struct http_conn *c, enum metrics_enq_result r)
{
    atomic_fetch_add_explicit(&w->rt->lstats[c->base.listener].enq[r], 1, memory_order_relaxed);
}

static const struct conf_route *route_of(struct io_worker *w, struct http_conn *c)
{
    return &lcf_of(w, c)->routes[c->h.route];
}

void http_enq_free(struct http_conn *c)
{
    free(c->h.enq);
    c->h.enq = NULL;
}

/* ---- the answer ---- */

/* Answers now, or once the 100 Continue in flight is out (http_enq_sent). */
static void answer(struct io_worker *w, struct http_conn *c, int status, const char *extra,
                   const char *body, size_t blen)
{
    http_local_answer(w, c, status, false, extra, "application/json", body, blen);
}

static void refuse(struct io_worker *w, struct http_conn *c, int status, enum metrics_enq_result r,
                   const char *why)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    count(w, c, r);
    answer(w, c, status, status == 503 ? "Retry-After: 1\r\n" : NULL, body, (size_t)n);
}

/* Redis answered the push (or lb on its behalf: "-ERR lb: ..."). */
static void pushed(struct io_worker *w, uint64_t token, const char *reply, size_t len)
{
    struct io_conn *ic = io_conn_get(w, (uint32_t)(token >> 32), (uint32_t)token);
    if (!ic || ic->ops != &http_client_ops)
        return; /* the client left: the entry, if stored, is delivered all the same */
    struct http_conn *c = hc(ic);
    struct http_enq *e = c->h.enq;
    if (c->h.phase != HC_ENQ_WAIT || !e)
        return;
    const struct conf_route *r = route_of(w, c);
    if (len > 1 && reply[0] == ':' && reply[1] != '-') {
        count(w, c, METRICS_ENQ_PUSHED);
        char body[QUEUE_ID_MAX + 300];
        ssize_t n = queue_reply_encode(
            (struct queue_str){e->id, e->id_len},
            (struct queue_str){r->enqueue.redis_list, strlen(r->enqueue.redis_list)}, body,
            sizeof(body) - 1);
        if (n > 0) {
            body[n++] = '\n';
            answer(w, c, 202, NULL, body, (size_t)n);
            return;
        }
        answer(w, c, 202, NULL, "{}\n", 3); /* a list name too long for the answer */
        return;
    }
    if (len > 1 && reply[0] == ':') {
        refuse(w, c, 503, METRICS_ENQ_FULL, "the queue is full");
        return;
    }
    size_t shown = len > 2 ? len - 2 : 0;
    /* Once a second per worker: a burst against a Redis that is down is one line, not one
     * per request (lb_enqueue_total counts them all). */
    if (w->now_ms - hw(w)->enq_warn_ms >= 1000 || !hw(w)->enq_warn_ms) {
        hw(w)->enq_warn_ms = w->now_ms;
        lb_warn("enqueue failed: Redis did not take the entry",
                "listener=%s list=%s reply=\"%.*s\"", lcf_of(w, c)->name, r->enqueue.redis_list,
                (int)(shown > 200 ? 200 : shown), reply + (len ? 1 : 0));
    }
    refuse(w, c, 503, METRICS_ENQ_DOWN, "the queue is unavailable");
}

/* ---- the entry ---- */

/* Header @name's values (repeats joined by ", "), appended to @o; false when absent. */
static bool header_value(const char *buf, const struct http_req *rq, const char *name, char *o,
                         size_t cap, size_t *len)
{
    bool found = false;
    for (uint32_t i = 0; i < rq->nhdrs; i++) {
        const struct http_hdr *h = &rq->hdrs[i];
        if (h->name.len != strlen(name) || strncasecmp(buf + h->name.off, name, h->name.len))
            continue;
        if (found && *len + 2 <= cap) {
            memcpy(o + *len, ", ", 2);
            *len += 2;
        }
        size_t n = h->value.len < cap - *len ? h->value.len : cap - *len;
        memcpy(o + *len, buf + h->value.off, n);
        *len += n;
        found = true;
    }
    return found;
}

/* The entry's headers: Content-Type, X-Forwarded-For with the client's address appended, and
 * the route's headers: list, their values written into @scratch (@cap bytes). */
static size_t pick_headers(struct io_worker *w, struct http_conn *c, const struct http_req *rq,
                           struct queue_hdr *hd, char *scratch, size_t cap)
{
    const struct conf_enqueue *q = &route_of(w, c)->enqueue;
    const char *names[ENQ_HDRS_MAX] = {"content-type", "x-forwarded-for"};
    size_t nn = 2, nh = 0, used = 0;
    for (size_t i = 0; i < q->nheaders && nn < ENQ_HDRS_MAX; i++)
        if (strcasecmp(q->headers[i], names[0]) && strcasecmp(q->headers[i], names[1]))
            names[nn++] = q->headers[i];
    for (size_t i = 0; i < nn; i++) {
        size_t start = used;
        bool found = header_value(c->h.hbuf, rq, names[i], scratch, cap, &used);
        if (i == 1) { /* X-Forwarded-For: the chain, then the client */
            char ip[64];
            int n = http_client_ip_text(c, ip, sizeof(ip)) < 0 ? 0 : (int)strlen(ip);
            if (found && used + 2 <= cap) {
                memcpy(scratch + used, ", ", 2);
                used += 2;
            }
            if (n > 0 && used + (size_t)n <= cap) {
                memcpy(scratch + used, ip, (size_t)n);
                used += (size_t)n;
            }
            found = used > start;
        }
        if (found)
            hd[nh++] =
                (struct queue_hdr){{names[i], strlen(names[i])}, {scratch + start, used - start}};
    }
    return nh;
}

/* Encodes the entry and sends the push. Answers 503 itself when that cannot be done. */
static void push(struct io_worker *w, struct http_conn *c)
{
    static __thread struct http_req rq;
    struct http_enq *e = c->h.enq;
    const struct conf_route *r = route_of(w, c);
    memset(&rq.scan, 0, sizeof(rq.scan));
    size_t max = hw(w)->hbuf_size / 2;
    struct queue_hdr hd[ENQ_HDRS_MAX];
    char *scratch = malloc(max + 128);
    char *json = NULL, *cmd = NULL;
    if (!scratch || http_parse_request(c->h.hbuf, c->h.hlen, max, max, &rq) <= 0)
        goto fail;
    struct queue_entry qe = {
        .id = {e->id, e->id_len},
        .ts_ms = e->ts_ms,
        .method = {c->h.hbuf + rq.method_text.off, rq.method_text.len},
        .uri = {c->h.hbuf + rq.target.off, rq.target.len},
        .hdrs = hd,
        .nhdrs = pick_headers(w, c, &rq, hd, scratch, max + 128),
        .body = e->body,
        .body_len = e->len,
    };
    size_t bound = queue_entry_bound(&qe);
    ssize_t jl = (json = malloc(bound)) ? queue_entry_encode(&qe, json, bound) : -ENOMEM;
    if (jl < 0)
        goto fail;
    char maxlen[24];
    snprintf(maxlen, sizeof(maxlen), "%llu", (unsigned long long)r->enqueue.max_length);
    const char *av[6] = {"EVAL", push_script, "1", r->enqueue.redis_list, json, maxlen};
    size_t al[6] = {4,          sizeof(push_script) - 1, 1, strlen(r->enqueue.redis_list),
                    (size_t)jl, strlen(maxlen)};
    int n = redisFormatCommandArgv(&cmd, 6, av, al);
    free(json);
    free(scratch);
    json = scratch = NULL;
    if (n < 0)
        goto fail;
    c->h.phase = HC_ENQ_WAIT;
    e->t_push_us = mono_us();
    /* The reply may come at once (Redis known down): pushed() answers then. */
    int rc = rds_call(w, (uint16_t)w->rt->conf->redis_cluster, cmd, (size_t)n, pushed,
                      http_waiter_token(w, c));
    redisFreeCommand(cmd);
    if (rc < 0)
        refuse(w, c, 503, METRICS_ENQ_DOWN, "out of memory");
    return;
fail:
    free(json);
    free(scratch);
    lb_warn("enqueue failed: the entry could not be built", "listener=%s", lcf_of(w, c)->name);
    refuse(w, c, 503, METRICS_ENQ_DOWN, "out of memory");
}

/* ---- the body ---- */

/* Copies what arrived of the body; pushes once it is whole. */
void http_enq_progress(struct io_worker *w, struct http_conn *c)
{
    struct http_enq *e = c->h.enq;
    if (c->h.phase != HC_ENQ_BODY || !e)
        return;
    uint32_t avail;
    const char *p;
    while (e->len < e->cap && (p = io_stream_head(w, &c->st, &avail))) {
        uint64_t take = e->cap - e->len < avail ? e->cap - e->len : avail;
        memcpy(e->body + e->len, p, take);
        e->len += take;
        c->h.bytes_in += take;
        q_consume(w, &c->st, (uint32_t)take);
    }
    if (e->len < e->cap) {
        if (c->st.flags & IO_ST_F_EOF)
            http_client_close(w, c, "client closed during the request body");
        return;
    }
    c->h.body.done = true;
    c->h.body.remaining = 0;
    push(w, c);
}

void http_enq_begin(struct io_worker *w, struct http_conn *c, const struct http_req *req)
{
    const struct conf_route *r = route_of(w, c);
    pthread_once(&boot_once, boot_init);
    if (req->flags & HTTP_F_CHUNKED) {
        /* Refused before a byte of it is read: the connection closes after the answer. */
        c->h.flags |= H_F_CLOSE;
        count(w, c, METRICS_ENQ_TOO_LARGE);
        http_local_reply(w, c, 411, true, NULL);
        return;
    }
    uint64_t blen = (req->flags & HTTP_F_LENGTH) ? req->content_length : 0;
    if (blen > r->enqueue.max_body) { /* route_decide refused it already; to be safe */
        count(w, c, METRICS_ENQ_TOO_LARGE);
        http_local_reply(w, c, 413, true, NULL);
        return;
    }
    struct http_enq *e = malloc(sizeof(*e) + blen);
    if (!e) {
        refuse(w, c, 503, METRICS_ENQ_DOWN, "out of memory");
        return;
    }
    *e = (struct http_enq){.cap = blen, .ts_ms = wall_ms()};
    const char *inst = w->rt->conf->global.redis_instance;
    ssize_t n = queue_id_format(e->id, sizeof(e->id), inst ? inst : host_name, boot_id,
                                (unsigned)w->id, ++hw(w)->enq_seq);
    e->id_len = n > 0 ? (uint32_t)n : 0;
    c->h.enq = e;
    c->h.phase = HC_ENQ_BODY;
    bool expects = c->h.flags & H_F_CONTINUE;
    c->h.flags &= ~H_F_CONTINUE; /* from now on, timeouts.body runs */
    if (expects && blen && !c->st.qbytes && !(c->st.flags & IO_ST_F_SENDING)) {
        /* The client waits for the go-ahead before it sends the body. */
        c->h.flags |= H_F_SENDING_CONT;
        send_on(w, c, &c->st, continue_100, sizeof(continue_100) - 1);
    }
    http_enq_progress(w, c);
}

bool http_enq_sent(struct io_worker *w, struct http_conn *c, int res)
{
    if (!(c->h.flags & H_F_SENDING_CONT))
        return false;
    struct http_enq *e = c->h.enq;
    uint32_t total = sizeof(continue_100) - 1;
    if (e && (e->cont_sent += (uint32_t)res) < total) {
        send_on(w, c, &c->st, continue_100 + e->cont_sent, total - e->cont_sent);
        return true;
    }
    c->h.flags &= ~H_F_SENDING_CONT;
    /* An answer made while the 100 was on the wire waits in hbuf: send it now. */
    if (c->h.phase == HC_LOCAL) {
        c->h.flags |= H_F_SENDING_HDR;
        send_on(w, c, &c->st, c->h.hbuf + c->h.out_off, c->h.out_len);
    }
    return true;
}
