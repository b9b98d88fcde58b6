/*
 * Static routes: answers from the published snapshot sets, sent from memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "health/hc.h"
#include "lb/cache/cache.h"
#include "lb/core/log.h"
#include "lb/core/runtime.h"
#include "lb/http/internal.h"
#include "lb/metrics/stats.h"
#include "lb/route/route.h"
#include "static/snap.h"

static struct snap_span snap_span_of(const char *buf, struct http_span s)
{
    return (struct snap_span){s.len ? buf + s.off : NULL, s.len};
}

/* Fills @sr's conditional, range and encoding fields in one pass over the request's fields
 * (the first of each name counts, as http_find_hdr would find it). */
static void snap_req_fields(const char *buf, const struct http_req *req, struct snap_req *sr)
{
    static const struct {
        const char *name;
        size_t len;
        size_t off;
    } want[] = {
        {"if-none-match", 13, offsetof(struct snap_req, if_none_match)},
        {"if-modified-since", 17, offsetof(struct snap_req, if_modified_since)},
        {"range", 5, offsetof(struct snap_req, range)},
        {"if-range", 8, offsetof(struct snap_req, if_range)},
        {"accept-encoding", 15, offsetof(struct snap_req, accept_encoding)},
    };
    unsigned seen = 0;
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const struct http_hdr *h = &req->hdrs[i];
        for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
            if (h->name.len != want[k].len || (seen & 1u << k) ||
                strncasecmp(buf + h->name.off, want[k].name, want[k].len))
                continue;
            seen |= 1u << k;
            /* An empty value reads as absent, as it always has. */
            *(struct snap_span *)((char *)sr + want[k].off) = snap_span_of(buf, h->value);
            break;
        }
    }
}

/* The worker's reference to static set @i, refreshed when the control thread published a
 * new one. Sends in flight hold their own references to the set they point into. */
static struct snap_set *worker_snap(struct io_worker *w, int i)
{
    struct snap_slot *slot = &w->rt->snap_slots[i];
    uint64_t gen = snap_slot_gen(slot);
    if (!hw(w)->snaps[i] || gen != hw(w)->snap_gen[i]) {
        struct snap_set *n = snap_slot_get(slot);
        snap_set_unref(hw(w)->snaps[i]);
        hw(w)->snaps[i] = n;
        hw(w)->snap_gen[i] = gen;
    }
    return hw(w)->snaps[i];
}

void http_client_send_static(struct io_worker *w, struct http_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->h.xl[i]) {
            send_on(w, c, &c->st, c->h.xp[i], c->h.xl[i]);
            return;
        }
    }
    http_access_log(w, c, c->h.centry ? "cache" : "-");
    snap_set_unref(c->h.snap);
    c->h.snap = NULL;
    if (c->h.centry) {
        cache_entry_unref(c->h.centry);
        c->h.centry = NULL;
    }
    http_client_next(w, c);
}

/* Points the client's answer at @hdr (ending with its empty line) and @body, adding the
 * Connection field this client needs before the empty line (in hbuf's second half). */
void http_set_memory_answer(struct io_worker *w, struct http_conn *c, const char *hdr,
                            size_t hdr_len, const char *body, size_t body_len, bool contiguous)
{
    c->h.xl[0] = c->h.xl[1] = 0;
    if (w->stopping)
        c->h.flags |= H_F_CLOSE;
    if (!(c->h.flags & (H_F_CLOSE | H_F_KEEPALIVE10))) {
        c->h.xp[0] = hdr;
        c->h.xl[0] = (uint32_t)(hdr_len + (contiguous ? body_len : 0));
        if (!contiguous) {
            c->h.xp[1] = body;
            c->h.xl[1] = (uint32_t)body_len;
        }
        return;
    }
    char *o = c->h.hbuf + hw(w)->hbuf_size / 2;
    size_t hl = hdr_len - 2;
    const char *tail =
        (c->h.flags & H_F_CLOSE) ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
    size_t tl = strlen(tail);
    /* Fits: snapshot headers are at most SNAP_HDR_MAX, cached ones leave 32 bytes of the
     * half free (http_fill_head). */
    memmove(o, hdr, hl);
    memcpy(o + hl, tail, tl);
    c->h.xp[0] = o;
    c->h.xl[0] = (uint32_t)(hl + tl);
    c->h.xp[1] = body;
    c->h.xl[1] = body ? (uint32_t)body_len : 0;
}

/*
 * Answers from a snapshot set. Returns false when the set has nothing at that path and the
 * request should go to @fallback (set to the cluster index, -1 for none: answered 404).
 */
bool http_static_serve(struct io_worker *w, struct http_conn *c, const struct conf_route *r,
                       const struct http_req *req, int *fallback)
{
    const char *buf = c->h.hbuf;
    struct snap_set *set = worker_snap(w, r->target_idx);
    *fallback = w->rt->conf->statics[r->target_idx].fallback_idx;
    size_t pl = r->path_prefix ? strlen(r->path_prefix) : 0;
    const char *path = buf + req->path.off + pl;
    size_t len = req->path.len - pl;
    /* The path scratch goes after the forwarded-header half of hbuf's space. */
    char pbuf[SNAP_PATH_MAX];
    const struct snap_entry *e = NULL;
    int rc = set ? snap_lookup(set, path, len, pbuf, sizeof(pbuf), &e) : -ENOENT;
    if (rc == -ENOENT)
        return false;
    if (rc == -EINVAL) {
        /* An unread body would be parsed as the next request. */
        http_local_reply(w, c, 400, !c->h.body.done, NULL);
        return true;
    }
    if (rc < 0) {
        *fallback = -1;
        return false;
    }
    struct snap_req sr = {
        .method = req->method == HTTP_M_GET    ? SNAP_M_GET
                  : req->method == HTTP_M_HEAD ? SNAP_M_HEAD
                                               : SNAP_M_OTHER,
    };
    snap_req_fields(buf, req, &sr);
    uint32_t half = hw(w)->hbuf_size / 2;
    char *hdr_scratch = c->h.hbuf + half + 1024;
    struct snap_resp resp;
    if (snap_eval(e, &sr, hdr_scratch, hw(w)->hbuf_size - half - 1024, &resp) < 0) {
        http_local_reply(w, c, 500, true, NULL);
        return true;
    }
    /* A request body (unusual on GET) is not read: the connection cannot be reused. */
    if (!c->h.body.done)
        c->h.flags |= H_F_CLOSE;
    c->h.snap = snap_set_ref(set);
    c->h.status = resp.status;
    c->h.t_resp_ms = w->now_ms;
    c->h.phase = HC_STATIC;
    http_set_memory_answer(w, c, resp.hdr, resp.hdr_len, resp.body, resp.body ? resp.body_len : 0,
                           resp.contiguous);
    if (!(c->st.flags & IO_ST_F_SENDING))
        http_client_send_static(w, c);
    return true;
}
