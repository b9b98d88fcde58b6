/*
 * What the files of lb/http share: the connection object of both HTTP kinds (client and
 * upstream), its phases and flags, and the per-worker HTTP state.
 */
#ifndef HTTP_CONN_H
#define HTTP_CONN_H

#include <stdint.h>

#include "lb/cluster/pick.h"
#include "lb/http/h1.h"
#include "lb/http/http.h"
#include "lb/io/worker.h"

struct snap_set;
struct cache;
struct cache_entry;
struct cache_fill;

#define HTTP_HIGH (64 * 1024)
#define NONE UINT32_MAX
#define ALOG_SIZE (64 * 1024)
#define LINGER_MS 1000
#define HTTP_RID_MAX 128 /* longest X-Request-Id kept from a client; >= 32, <= 255 */

enum http_phase {
    HC_IDLE,       /* between requests */
    HC_HEADER,     /* part of a request header received */
    HC_CONNECT,    /* request parsed, waiting for a backend connection */
    HC_FORWARD,    /* request going up, response coming down */
    HC_LOCAL,      /* sending an answer of our own */
    HC_LINGER,     /* answered and shut down for writing; waiting for the client's FIN */
    HC_TUNNEL,     /* WebSocket after 101: bytes both ways */
    HC_STATIC,     /* sending a snapshot or a cached answer from memory */
    HC_CACHE_WAIT, /* waiting for another request to fetch the answer this one wants */
    HC_ENQ_BODY,   /* enqueue route: reading the request body */
    HC_ENQ_WAIT,   /* enqueue route: the push is in flight to Redis */
    HC_L2_WAIT,    /* the shared cache's shard is asked for the answer (cache_l2.c) */
    HS_BUSY,       /* backend: serving its client */
    HS_IDLE,       /* backend: in its server's pool */
};

/* Client flags (h.flags). */
#define H_F_REQ_HDR_SENT 0x0001 /* rewritten request header fully sent */
#define H_F_REQ_DONE 0x0002     /* request body fully sent */
#define H_F_RESP_HDR 0x0004     /* final response header parsed and rewritten */
#define H_F_RESP_DONE 0x0008    /* response body fully received and checked */
#define H_F_CLOSE 0x0010        /* close the client connection after this response */
#define H_F_SENDING_HDR 0x0020  /* the send in flight is a header (not queue bytes) */
#define H_F_BODY_SENT 0x0040    /* some request body byte reached the backend */
#define H_F_REUSED 0x0080       /* the backend connection came from the pool */
#define H_F_WS 0x0100           /* the request asks for a WebSocket upgrade */
#define H_F_RESP_BYTE 0x0200    /* some response byte arrived from the backend */
#define H_F_IDEMPOTENT 0x0400
#define H_F_HEAD 0x0800          /* HEAD request: the response has no body */
#define H_F_CLIENT_EOF 0x1000    /* the client sent FIN */
#define H_F_KEEPALIVE10 0x2000   /* HTTP/1.0 client asked for keep-alive */
#define H_F_CONTINUE 0x4000      /* the request has Expect: 100-continue */
#define H_F_SENDING_CONT 0x20000 /* the send in flight is an enqueue route's 100 Continue */
#define H_F_REVALIDATING 0x8000  /* the request to the origin carries the cache's validator */
#define H_F_L2_CALL 0x40000      /* a shared cache lookup is in flight */
#define H_F_L2_POLL 0x80000      /* another instance fills the key: look again at the next tick */
#define H_F_L2_WAITED 0x100000   /* counted as locked_wait once */
#define H_F_L2_LOCK 0x200000     /* this request holds the key's L2 lock: store, or release it */
#define H_F_L2_STORE 0x400000    /* the origin's answer, if stored in L1, goes to L2 too */
#define H_F_CWAIT 0x800000       /* client: queued for its server's connect window */
#define H_F_UNPROVEN 0x1000000   /* upstream: opened, the server has not been seen serving it */
#define H_F_CLIENT_CLOSE                                                                           \
    0x10000 /* the client said it sends nothing more (Connection: close,                           \
               or HTTP/1.0 without keep-alive) */

/* L7 state of a connection (client or upstream). */
struct http_state {
    char *hbuf;       /* pool buffer while a header is parsed, rewritten and sent */
    uint32_t hlen;    /* bytes of the incoming header copied into hbuf */
    uint32_t scanned; /* the parser's resume point */
    uint32_t out_off; /* the outgoing header (or a local reply) in hbuf */
    uint32_t out_len;
    uint32_t out_sent;
    uint32_t peer; /* the other slot (client <-> upstream), NONE when none */
    uint32_t peer_gen;
    uint32_t pool_prev; /* upstream: idle pool links; client: its server's wait queue */
    uint32_t pool_next; /*   links (H_F_CWAIT); NONE at the ends */
    uint32_t qvalid;            /* bytes at the head of the queue checked as part of this message */
    uint32_t flags;             /* H_F_* */
    struct http_body body;      /* client: the request body; upstream: the response body */
    uint64_t key;               /* client: the request's hash key (hash balancers) */
    struct snap_set *snap;      /* client: the snapshot set a static answer is sent from (a ref) */
    struct cache_entry *centry; /* client: the cache entry an answer is sent from (a ref) */
    struct cache_fill *fill;    /* client: the cache fill this request's answer feeds */
    struct http_enq *enq;       /* client: an enqueue route's entry being read and pushed */
    struct cache_entry *reval;  /* client: the stale entry being revalidated (a ref) */
    const char *xp[2];          /* client: a static answer, in up to two pieces (header, body) */
    uint32_t xl[2];
    uint32_t target_off; /* client: the request-target in hbuf, for the access log */
    uint32_t target_len;
    uint64_t t_start_ms; /* client: first byte of the request; upstream: request started */
    uint64_t t_resp_ms;  /* client: response header from the upstream */
    uint64_t t_pick_ms;  /* client: a backend was picked (the last try's) */
    uint64_t t_conn_ms;  /* client: its connection was ready (0: never); upstream: connected */
    uint64_t rid_seq;    /* client: the generated request id's counter part */
    uint64_t l2_ms;      /* client: when the shared cache lookup began */
    uint32_t rid_off;    /* client: the id the client sent (X-Request-Id) in hbuf, */
    uint8_t rid_len;     /*         rid_len bytes; 0: the generated one is used */
    uint64_t bytes_in;   /* client: request bytes received; */
    uint64_t bytes_out;  /*          response bytes sent (for the access log) */
    uint16_t route;
    uint16_t status; /* response status sent to the client */
    uint8_t phase;   /* enum http_phase */
    uint8_t method;  /* enum http_method */
    uint8_t retries;
    uint8_t limit;  /* client: H_LIMIT_*, for the connection's life */
    uint8_t xcache; /* client: H_XC_*, the X-Cache value to send (route debug_header) */
};

#define H_XC_NONE 0        /* no X-Cache field */
#define H_XC_HIT 1         /* answered from the cache (200 or 304) */
#define H_XC_MISS 2        /* answered by the origin */
#define H_XC_REVALIDATED 3 /* answered from the cache after the origin's 304 */
#define H_XC_STALE 4       /* answered stale from the cache: the origin failed */
#define H_XC_HIT_L2 5      /* answered from the shared cache (X-Cache: HIT-L2) */

#define H_LIMIT_COUNTED 1 /* counted in its listener's per-address connections */
#define H_LIMIT_OVER 2    /* over that limit: its first request is answered 429, then close */

/* Both HTTP kinds: a client (http_client_ops) or an upstream (http_upstream_ops). */
struct http_conn {
    struct io_conn base;
    struct io_stream st;
    struct cl_pick pick; /* client: the request's server; upstream: the server it is to */
    struct http_state h;
    union {
        union io_peer peer;   /* client: its address */
        struct io_connect cx; /* upstream: its connect */
    };
};

/*
 * One server's connections on one worker: the idle ones, and the requests waiting for one.
 * New connections to a server are paced by a window: at most HTTP_CONNECT_WINDOW of them
 * may be unproven (opened, and the server not yet seen serving them: no byte back, and
 * connected less than HTTP_PROVE_MS ago). A burst of requests beyond it waits, in order,
 * for an idle connection or room in the window, instead of sending the server a burst of
 * connects that overflows its listen queue (each SYN dropped there costs a second's
 * retransmit, as long as the connect timeout's default). lb/http/pool.c.
 */
#define HTTP_CONNECT_WINDOW 64
#define HTTP_PROVE_MS 100
struct http_srv_conns {
    uint32_t idle;      /* the idle list's head slot, NONE when empty */
    uint32_t wait_head; /* clients waiting, oldest first; NONE when none */
    uint32_t wait_tail;
    uint32_t unproven; /* connections in the window */
};

/* Per-worker HTTP state (http_module). */
struct http_worker {
    char **hbuf_free; /* free list of header buffers, allocated on first need */
    uint32_t hbuf_nfree, hbuf_total, hbuf_size;
    uint32_t hbuf_low;     /* the free list's lowest depth since the last trim */
    uint32_t hbuf_clean;   /* free list entries from the bottom whose pages were given back */
    uint64_t hbuf_trim_ms; /* the last http_hbuf_trim */
    struct http_srv_conns **srv; /* [cluster][server] */
    struct ssl_session_st ***tls_sess; /* [cluster][server]: the session to resume (tls:) */
    struct snap_set **snaps;           /* [static set]: the worker's reference to the current set */
    struct cache *cache; /* L1 response cache of the routes with cache:, NULL when none */
    uint64_t *snap_gen;  /* [static set]: the slot generation it was taken at */
    char *alog;          /* access log lines waiting for the end of the iteration */
    uint32_t alog_len;
    int alog_fd;          /* -1: access log off */
    bool alog_json;       /* log.format: json */
    uint64_t rid_prefix;  /* random, drawn when the worker starts: ids unique across workers */
    uint64_t rid_next;    /* and restarts; the counter of the generated ids */
    uint64_t enq_seq;     /* the last queue entry id's sequence number on this worker */
    uint64_t enq_warn_ms; /* when an enqueue failure was last logged */
    uint64_t l2_warn_ms;  /* when a shared cache problem was last logged */
    uint32_t *park_q;     /* slots of clients that went idle this loop turn (lb/http/park.c) */
    uint32_t park_n;
};

static inline struct http_worker *hw(const struct io_worker *w)
{
    return io_mod(w, &http_module);
}

static inline struct http_conn *hc(struct io_conn *c)
{
    return (struct http_conn *)c;
}

#endif
