/*
 * What the files of lb/http call in one another; nothing outside lb/http includes it.
 */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sys/types.h>

#include "conf/conf.h"
#include "lb/http/conn.h"
#include "lb/metrics/stats.h"

struct cache_entry;

/* ---- small helpers ---- */

/* ---- small helpers: the peer link (client <-> upstream) and the stream calls ---- */

/* The listener @c came in on. */
static inline const struct conf_listener *lcf_of(struct io_worker *w, struct http_conn *c)
{
    return w->ls[c->base.listener].cf;
}

/* The connection at the other end of @c's exchange, or NULL when none (or gone). */
static inline struct http_conn *peer_of(struct io_worker *w, struct http_conn *c)
{
    if (c->h.peer == NONE)
        return NULL;
    return (struct http_conn *)io_conn_get(w, c->h.peer, c->h.peer_gen);
}

static inline void attach(struct io_worker *w, struct http_conn *c, struct http_conn *b)
{
    (void)w;
    c->h.peer = b->base.slot;
    c->h.peer_gen = b->base.gen;
    b->h.peer = c->base.slot;
    b->h.peer_gen = c->base.gen;
}

static inline void detach(struct http_conn *c, struct http_conn *b)
{
    if (c)
        c->h.peer = NONE;
    if (b)
        b->h.peer = NONE;
}

static inline struct http_conn *slot_conn(struct io_worker *w, uint32_t slot)
{
    return (struct http_conn *)w->slots[slot];
}

/* ---- header building: bytes appended to a fixed buffer, overflow sticky ---- */

struct http_out {
    char *p;
    size_t n, cap;
    bool overflow; /* something did not fit: the result is unusable */
};

static inline void http_out_put(struct http_out *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->n) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static inline void http_out_str(struct http_out *o, const char *s)
{
    http_out_put(o, s, strlen(s));
}

/* ---- streams ---- */

static inline uint32_t q_peek(struct io_worker *w, struct io_stream *s, uint32_t skip, char *dst,
                              uint32_t max)
{
    return io_stream_peek(w, s, skip, dst, max);
}

static inline void q_consume(struct io_worker *w, struct io_stream *s, uint32_t n)
{
    io_stream_consume(w, s, n);
}

static inline void q_drop(struct io_worker *w, struct io_stream *s)
{
    io_stream_drop(w, s);
}

static inline void arm_recv(struct io_worker *w, struct http_conn *c, struct io_stream *s)
{
    io_stream_arm_recv(w, &c->base, s);
}

/* Stops receiving on @s while its queue is over the high-water mark. */
static inline void maybe_pause(struct io_worker *w, struct http_conn *c, struct io_stream *s)
{
    if (s->qbytes >= io_high_water(w, HTTP_HIGH))
        io_stream_pause(w, &c->base, s);
}

static inline void maybe_resume(struct io_worker *w, struct http_conn *c, struct io_stream *s)
{
    if (s->qbytes < io_high_water(w, HTTP_HIGH) / 2)
        io_stream_resume(w, &c->base, s);
}

/* One send on @s (the stream of @c) of @len bytes at @p. */
static inline void send_on(struct io_worker *w, struct http_conn *c, struct io_stream *s,
                           const char *p, uint32_t len)
{
    io_stream_send(w, &c->base, s, p, len);
}

static inline void shutdown_wr(struct io_worker *w, struct http_conn *c, struct io_stream *s)
{
    io_stream_shutdown(w, &c->base, s);
}

/* A header buffer from the worker's pool (grown on first need up to one per slot), or NULL. */
char *http_hbuf_get(struct io_worker *w);

/* Gives @h's header buffer back to the pool and forgets the header state that lived in it. */
void http_hbuf_put(struct io_worker *w, struct http_state *h);

/* Gives the pages of header buffers unused for HBUF_TRIM_MS back to the kernel, all but
 * HBUF_WARM of them; called every tick, acts once per HBUF_TRIM_MS. */
#define HBUF_PAGE 4096
#define HBUF_TRIM_MS 1000
#define HBUF_WARM 16
void http_hbuf_trim(struct io_worker *w);
/* Unmaps header buffer @b (NULL: nothing); when the worker ends. */
void http_hbuf_release(struct io_worker *w, char *b);

/* Takes idle upstream @b off its server's pool list. */
void http_pool_unlink(struct io_worker *w, struct http_conn *b);

/* Parks upstream @b, its exchange over, in its server's idle pool (recv armed, so a close
 * by the server is seen at once); a request waiting for a file slot may take it. */
void http_pool_put(struct io_worker *w, struct http_conn *b);

/* An idle upstream of @server in @cluster, taken off the pool (busy now), or NULL. */
struct http_conn *http_pool_take(struct io_worker *w, uint32_t cluster, uint32_t server);

/* Client @c, its server picked (c->pick), waits for a connection to it: the server's
 * connect window is full (struct http_srv_conns). */
void http_cwait_push(struct io_worker *w, struct http_conn *c);

/* Takes client @c off its server's wait queue (no-op when not on it). */
void http_cwait_unlink(struct io_worker *w, struct http_conn *c);

/* Client @c, off the queue, waited as long as it would for an answer: 503. */
void http_cwait_shed(struct io_worker *w, struct http_conn *c);

/* Room in upstream @b's server's window: the server answered on @b, @b closes, or it was
 * connected HTTP_PROVE_MS ago. Serves the requests waiting. No-op unless H_F_UNPROVEN. */
void http_conn_proven(struct io_worker *w, struct http_conn *b);

/* Room in the connect window of @server, or an idle connection: serves waiting requests. */
void http_cwait_wake(struct io_worker *w, uint32_t cluster, uint32_t server);

/* Gets client @c (its server picked in c->pick) a connection to it: an idle one, a new one,
 * or a place in the server's wait queue (behind the requests already there, unless @in_turn:
 * it is the one taken off its head). */
void http_backend_use(struct io_worker *w, struct http_conn *c, bool in_turn);

/* Takes client @c off the list of requests waiting for a file slot (no-op when not on it). */
void http_fdwait_unlink(struct io_worker *w, struct http_conn *c);

/* The fixed-file table is full (every slot holds a client or a backend socket): the
 * request waits for one to close instead of failing (http_on_fd_ready); the tick bounds
 * the wait by the cluster's response timeout. */
void http_fdwait_push(struct io_worker *w, struct http_conn *c);

/* io_conn_ops.on_fd_ready of clients: a file slot (or an idle upstream) came free. */
void http_on_fd_ready(struct io_worker *w, struct io_conn *c);

/*
 * Sends the next piece of @src's queue to @dst (on connection @dc), as far as the body
 * framer @body allows. Returns 1 when a send was started, 0 when there is nothing to send
 * now, -1 on bad framing.
 */
int http_send_body(struct io_worker *w, struct http_state *h, struct io_stream *src,
                   struct http_conn *dc, struct io_stream *dst);

/* Picks a server for @c's request and starts it there, on a pooled connection or a new
 * one; answers 502/503 itself when no server can take it. */
void http_backend_acquire(struct io_worker *w, struct http_conn *c);

/*
 * The backend connection failed before the response began. Retries when that is safe,
 * else answers 502 (or 504 on a timeout).
 */
void http_request_failed(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                         bool connect_failed, int status, const char *why);

/* Sends the next piece of the request: its header, then its body. */
void http_backend_send(struct io_worker *w, struct http_conn *c, struct http_conn *b);

/* A request and its response are complete: log, recycle the backend, go on. */
void http_request_done(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                       bool reusable);

/* Moves the response along: parses headers while none is pending, then sends. */
void http_backend_progress(struct io_worker *w, struct http_conn *c, struct http_conn *b);

/* Answers @status from lb itself (with the @extra header lines, CRLF-terminated, or NULL);
 * @close: the connection closes after it. The request's body, if any, is not read. */
void http_local_reply(struct io_worker *w, struct http_conn *c, int status, bool close,
                      const char *extra);

/* Answers @status with a body of lb's own (@len bytes of @type at @body, copied). */
void http_local_answer(struct io_worker *w, struct http_conn *c, int status, bool close,
                       const char *extra, const char *type, const char *body, size_t len);

/* enqueue.c: an enqueue route took @req: read its body, push it, answer 202 or 503. */
void http_enq_begin(struct io_worker *w, struct http_conn *c, const struct http_req *req);

/* enqueue.c: more of the body arrived (phase HC_ENQ_BODY). */
void http_enq_progress(struct io_worker *w, struct http_conn *c);

/* enqueue.c: a send of @c completed; true when it was the 100 Continue's (handled). */
bool http_enq_sent(struct io_worker *w, struct http_conn *c, int res);

/* enqueue.c: forgets the request's entry (its exchange ended or the client left). */
void http_enq_free(struct http_conn *c);

/* A redirect route's answer @status, with Location from @loc. */
struct route_location;
void http_redirect_reply(struct io_worker *w, struct http_conn *c, int status, bool close,
                         const struct route_location *loc);

/* @c's address as text into @out ("unknown" when not known); returns 0, or -1 when it does
 * not fit. */
int http_client_ip_text(const struct http_conn *c, char *out, size_t n);

/* Writes the request as the backend gets it into the second half of hbuf. */
bool http_build_request(struct io_worker *w, struct http_conn *c, const struct http_req *req);

/* Writes the response as the client gets it into the second half of the backend's hbuf. */
bool http_build_response(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                         const struct http_resp *resp, bool interim);

/* Sends the next piece of a static or cached answer from memory. */
void http_client_send_static(struct io_worker *w, struct http_conn *c);

/* Points the client's answer at @hdr (ending with its empty line) and @body, adding the
 * Connection field this client needs before the empty line (in hbuf's second half). */
void http_set_memory_answer(struct io_worker *w, struct http_conn *c, const char *hdr,
                            size_t hdr_len, const char *body, size_t body_len, bool contiguous);

/*
 * Answers from a snapshot set. Returns false when the set has nothing at that path and the
 * request should go to @fallback (set to the cluster index, -1 for none: answered 404).
 */
bool http_static_serve(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                       const struct http_req *req, int *fallback);

/* The token a cache fill wakes @c with: its slot and generation. */
uint64_t http_waiter_token(struct io_worker *w, struct http_conn *c);

/* Room a stored header leaves in hbuf's half for what a hit adds (Age, X-Cache,
 * Connection). */
#define HTTP_CACHE_HDR_ROOM 96

/* Sends a cached answer, its stored status or 304 (@status); takes the reference in @e. */
void http_cache_serve(struct io_worker *w, struct http_conn *c, struct cache_entry *e, int status);

/*
 * A GET on a route with a cache: answers it from the cache (or 504 for only-if-cached), or
 * parks it on another request's fill, and returns true; or returns false and the caller
 * sends it to the origin (with c->h.fill set when its answer is to fill the cache).
 */
bool http_cache_request(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                        const char *buf, const struct http_req *req);

/*
 * The origin failed @c's request (an error answer or none): when the stale entry that went
 * along allows it (stale-if-error), gives up the fill and the server connection and serves
 * that entry, and returns true; else returns false.
 */
bool http_cache_serve_stale(struct io_worker *w, struct http_conn *c);

/* The origin answered @c's request with something else than a 304 to the cache's
 * revalidation: counted as a miss if it was one; the stale entry goes. */
void http_cache_reval_answered(struct io_worker *w, struct http_conn *c);

/* Drops the stale entry @c was revalidating, if any. */
void http_cache_reval_drop(struct http_conn *c);

/*
 * The origin answered 304 to @c's revalidation (c->h.reval): stores the entry refreshed
 * with the 304's fields (RFC 9111 4.3.4), wakes the fill's waiters, and returns the entry
 * to serve with a reference for the caller: the refreshed one, or the stale one when it
 * could not be refreshed (the 304 says it is current all the same).
 */
struct cache_entry *http_cache_refresh(struct io_worker *w, struct http_conn *c,
                                       struct http_conn *b, const struct http_resp *resp);

/* An origin answered an unsafe request on a cached route with @resp: a 2xx or 3xx
 * invalidates its URI, and its Location and Content-Location on the same host, in the
 * cache of every worker (RFC 9111 4.4). */
void http_cache_unsafe_done(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                            const struct http_resp *resp);

/* A fill this request was waiting for ended: serve the new entry, or fetch ourselves. */
void http_cache_wake(void *arg, uint64_t waiter, struct cache_entry *e);

/* The client's request parsed again from its hbuf (per-thread storage), or NULL. */
const struct http_req *http_cache_reparse(struct io_worker *w, struct http_conn *c);

/* Counts @c's cache lookup result in its listener's lb_cache_requests_total. */
void http_cache_count(struct io_worker *w, struct http_conn *c, enum metrics_cache_result r);

/*
 * cache_l2.c, the shared level. http_l2_lookup: after an L1 miss that made @c the filler of
 * its key on a route with cache.shared, asks the key's shard; returns true when @c is parked
 * in HC_L2_WAIT (it is then served from L2 or sent to the origin), false when the caller
 * sends it to the origin now (shard down, no-cache...).
 */
bool http_l2_lookup(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                    const char *buf, const struct http_req *req);
/* Each tick in HC_L2_WAIT: looks again while another instance holds the key's lock. */
void http_l2_tick(struct io_worker *w, struct http_conn *c);
/* The fill of @c was committed (@blob, @n > 0: its L2 encoding, to live @ttl_ms) or given up
 * (@n < 0): stores it and/or releases the key's lock, as @c's flags say. */
void http_l2_store(struct io_worker *w, struct http_conn *c, const char *blob, ssize_t n,
                   uint64_t ttl_ms);
/* Deletes the L2 entry of @host + @target (an unsafe method succeeded on it). */
void http_l2_invalidate(struct io_worker *w, struct http_conn *c, const char *host, size_t hlen,
                        const char *target, size_t tlen);

/* Gives up @c's cache fill, if any: its waiters fetch for themselves. */
void http_fill_abort(struct io_worker *w, struct http_conn *c);

/* @c's answer is complete: the fill becomes a cache entry (or is dropped if it may not). */
void http_fill_commit(struct io_worker *w, struct http_conn *c);

/* The answer to a cache fill arrived: record its header if it may be stored, else give the
 * fill up (its waiters fetch for themselves). The cached header is the one clients get,
 * minus the Connection field each client gets its own of; then the client's own header is
 * built again over it. */
void http_fill_head(struct io_worker *w, struct http_conn *c, struct http_conn *b,
                    const struct http_resp *resp);

/* Sends the next piece of the response to the client: header, then body. */
void http_client_send(struct io_worker *w, struct http_conn *c);

/* Closes client @c (and its upstream), with @why for the debug log; NULL: a normal end. */
void http_client_close(struct io_worker *w, struct http_conn *c, const char *why);

/* The current exchange is over: close, or wait for (or parse) the next request. */
void http_client_next(struct io_worker *w, struct http_conn *c);

/* io_conn_ops.on_free of both kinds: header buffer, snapshot and cache references. */
void http_on_free(struct io_worker *w, struct io_conn *base);

/* Counts @c's answer in the listener's metrics and, with the access log on, buffers its
 * line (@server: the server's name, "-" for lb's own answers). */
void http_access_log(struct io_worker *w, struct http_conn *c, const char *server);

/* Request ids (X-Request-Id). begin: gives @c's new request a generated id (no syscall);
 * take: keeps the one the client sent instead when it is sane (1..HTTP_RID_MAX visible ASCII
 * bytes). http_request_id writes the id into @out (HTTP_RID_MAX bytes) and returns its length;
 * the client's id is read from hbuf, so only while the request header is there. */
void http_request_id_begin(struct io_worker *w, struct http_conn *c);
void http_request_id_take(struct http_conn *c, const char *buf, const struct http_req *req);
size_t http_request_id(const struct io_worker *w, const struct http_conn *c, char *out);

/* Writes the buffered access log lines. */
void http_flush_log(struct io_worker *w);

/* io_conn_ops.tick of both kinds: header, idle, response and tunnel timeouts, stopping. */
void http_tick(struct io_worker *w, struct io_conn *base);

/* Moves idle client @c into a compact object (http_parked_ops) when it holds nothing else;
 * true when it did, and @c is then gone. The tick calls it for every idle client, so the
 * full objects in use track the requests in flight within a tick; a busy connection caught
 * between two requests moves out and back in at most once a tick, which costs nothing that
 * shows. */
bool http_client_park(struct io_worker *w, struct http_conn *c);
/* Client @c is between requests with nothing queued: parked at the end of this loop turn,
 * once the handler that said so has returned. */
static inline void http_park_later(struct io_worker *w, struct http_conn *c)
{
    struct http_worker *x = hw(w);
    if (x->park_n < w->nconns)
        x->park_q[x->park_n++] = c->base.slot;
}
/* Parks the clients http_park_later named that are still idle (end of a loop turn). */
void http_park_idle(struct io_worker *w);

#endif
